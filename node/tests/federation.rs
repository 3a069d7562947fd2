//! Federation over real QUIC on 127.0.0.1: an aggregator and regions as in-process nodes with
//! their own keys and sled stores on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

#[path = "kit/mod.rs"]
mod kit;

use kit::{TestNode, aggregator_of, eventually, eventually_within, method, prepare, start};
use spindel_node::Reads;
use spindel_node::local::{self, LocalNode, Role};
use spindel_node::query::Query;
use spindel_node::transport::{Limits, PeerAddr};
use spindel_protocol::SecretKey;
use spindel_protocol::record::Kind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_replicate_through_the_aggregator_both_ways() {
    let da = prepare("skane");
    let db = prepare("dalarna");
    let agg = aggregator_of(&[&da, &db]).await;
    let a = da.run(vec![agg.addr()]).await;
    let b = db.run(vec![agg.addr()]).await;

    // Profiles flow: each region ends up with both profiles, the aggregator too.
    eventually("profiles at the aggregator", || {
        agg.node().heads().unwrap().len() == 2
    })
    .await;
    eventually("profiles in every region", || {
        a.node().heads().unwrap().len() == 2 && b.node().heads().unwrap().len() == 2
    })
    .await;

    // A live publish reaches the aggregator and the other region.
    a.running
        .shared()
        .writer
        .publish(Kind::Method, method("Studiecirkel i Skåne"), None)
        .await
        .unwrap();
    eventually("the method in Dalarna", || {
        b.titles(Query::default()) == ["Studiecirkel i Skåne"]
    })
    .await;
    assert_eq!(
        agg.titles(Query {
            text: Some("föreningarna".into()),
            ..Query::default()
        }),
        ["Studiecirkel i Skåne"]
    );
    b.running
        .shared()
        .writer
        .publish(Kind::Method, method("Bygdegårdar i Dalarna"), None)
        .await
        .unwrap();
    eventually("the method in Skåne", || {
        a.titles(Query::default()).len() == 2
    })
    .await;
    // Region names travel with the profiles: --region works in the other region.
    assert_eq!(
        a.titles(Query {
            region: Some("dalarna".into()),
            ..Query::default()
        }),
        ["Bygdegårdar i Dalarna"]
    );

    // Live entries are not sent back to the region that pushed them: the aggregator's session
    // hears of its new head while the batch is still being applied (decision 0044), and
    // tells the session only once it is acknowledged. An entry that came back would be
    // counted as a replay.
    for i in 0..20 {
        a.running
            .shared()
            .writer
            .publish(Kind::Method, method(&format!("Metod {i}")), None)
            .await
            .unwrap();
    }
    eventually("every method in Dalarna", || {
        b.titles(Query::default()).len() == 22
    })
    .await;
    for region in [&a, &b] {
        assert!(
            region.node().refusals().unwrap().is_empty(),
            "nothing came back: {:?}",
            region.node().refusals()
        );
    }

    // The aggregator authored nothing and holds no record of its own.
    assert!(agg.node().head(&agg.id).unwrap().is_none());
    assert!(
        agg.node().refusals().unwrap().is_empty(),
        "{:?}",
        agg.node().refusals()
    );
    let st = a.running.shared().peers();
    assert_eq!(st.len(), 1);
    assert!(st[0].connected);

    b.running.stop().await.unwrap();
    a.running.stop().await.unwrap();
    agg.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unadmitted_region_and_wrong_pinned_key_are_refused() {
    let agg = start("nationell", Role::Aggregator, true, vec![], &[]).await;
    let stranger = start("okand", Role::Region, false, vec![agg.addr()], &[]).await;
    stranger
        .running
        .shared()
        .writer
        .publish(Kind::Method, method("Ska inte in"), None)
        .await
        .ok();
    eventually("a refused link", || {
        stranger.running.shared().peers().iter().any(|p| {
            p.last_error
                .as_deref()
                .is_some_and(|e| e.contains("not admitted"))
        })
    })
    .await;
    assert!(
        agg.node().heads().unwrap().is_empty(),
        "nothing of a stranger is stored"
    );
    // Only an operator can lift the refusal: it is not retried hot (a lost link is retried
    // within BACKOFF_MAX_MS), and status says when the next try comes.
    let refused_wait = |node: &TestNode| {
        node.running
            .shared()
            .peers()
            .iter()
            .find(|p| p.last_error.is_some())
            .and_then(|p| p.retry_in_ms)
    };
    eventually("the refusal's wait in status", || {
        refused_wait(&stranger).is_some_and(|w| w > 0)
    })
    .await;
    let wait = refused_wait(&stranger).unwrap();
    assert!(
        wait >= spindel_node::REFUSED_BACKOFF_MIN_MS,
        "a refused region tries again after {wait} ms"
    );

    // A dialer that pins another key does not get a connection, and does not retry hot either.
    let wrong: PeerAddr = format!(
        "{}@{}",
        SecretKey::from_bytes(&[9; 32]).node_id(),
        agg.running.bound.listen.unwrap()
    )
    .parse()
    .unwrap();
    let pinned_wrong = start("felnyckel", Role::Region, false, vec![wrong.clone()], &[]).await;
    eventually("a wrong key named", || {
        pinned_wrong.running.shared().peers().iter().any(|p| {
            p.last_error
                .as_deref()
                .is_some_and(|e| e.contains("not the pinned"))
                && p.retry_in_ms >= Some(spindel_node::REFUSED_BACKOFF_MIN_MS)
        })
    })
    .await;
    pinned_wrong.running.stop().await.unwrap();
    let err = spindel_node::remote_query(&wrong, Default::default(), Limits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            spindel_node::RemoteQueryError::Transport(
                spindel_node::transport::TransportError::WrongPeer { .. }
            )
        ),
        "{err}"
    );
    // The right key answers (to a member: here the aggregator's own key).
    let ok = spindel_node::remote_query_as(
        agg.local.key(),
        &agg.addr(),
        Default::default(),
        Limits::default(),
    )
    .await
    .unwrap();
    assert!(ok.contains("\"records\""), "{ok}");

    stranger.running.stop().await.unwrap();
    agg.running.stop().await.unwrap();
}

/// `disallow` at one of a region's two pinned aggregators: the region keeps admitting the
/// disallowed region while the other aggregator still lists it (vouched for by that one only),
/// and stops once the second disallows it too; its records stay everywhere, its session at
/// each aggregator ends, and what it publishes afterwards reaches nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_disallowed_at_one_of_two_aggregators_stays_until_both_end_it() {
    let da = prepare("skane");
    let a_id = da.id;
    let dg = prepare("gotland");
    let g_id = dg.id;
    let dd = prepare("dalarna");
    let nord = start(
        "nord",
        Role::Aggregator,
        true,
        vec![],
        &[da.admission(), dg.admission()],
    )
    .await;
    let syd = start(
        "syd",
        Role::Aggregator,
        true,
        vec![],
        &[da.admission(), dg.admission(), dd.admission()],
    )
    .await;
    let a = da.run(vec![nord.addr(), syd.addr()]).await;
    let g = dg.run(vec![nord.addr(), syd.addr()]).await;
    g.running
        .shared()
        .writer
        .publish(Kind::Method, method("Före"), None)
        .await
        .unwrap();
    eventually("Gotland's method in Skåne", || {
        a.titles(Query::default()) == ["Före"]
    })
    .await;
    let gone = nord.running.shared().writer.disallow(g_id).await.unwrap();
    assert_eq!(gone.name.as_deref(), Some("gotland"));
    assert!(!gone.admitted);
    eventually("only syd vouches for Gotland in Skåne", || {
        a.node().vouchers(&g_id).unwrap() == [syd.id]
    })
    .await;
    let meta = a.node().author(&g_id).unwrap().unwrap();
    assert!(meta.admitted, "nord's list removed what syd lists");
    assert_eq!(meta.label(), Some("gotland"));
    // At nord: not admitted, its name free, its session ended and refused from then on.
    let at_nord = nord.node().author(&g_id).unwrap().unwrap();
    assert!(!at_nord.admitted && at_nord.label().is_none());
    eventually("Gotland's link to nord refused", || {
        g.running.shared().peers().iter().any(|p| {
            p.node_id == nord.id.to_hex()
                && !p.connected
                && p.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("admitted"))
        })
    })
    .await;
    syd.running.shared().writer.disallow(g_id).await.unwrap();
    eventually("Gotland no longer admitted in Skåne", || {
        a.node()
            .author(&g_id)
            .unwrap()
            .is_some_and(|m| !m.admitted && m.label().is_none())
    })
    .await;
    eventually("Gotland's link to syd refused", || {
        g.running
            .shared()
            .peers()
            .iter()
            .all(|p| !p.connected && p.last_error.is_some())
    })
    .await;
    // Signed history stays; what it signs now goes nowhere.
    g.running
        .shared()
        .writer
        .publish(Kind::Method, method("Efter"), None)
        .await
        .unwrap();
    assert_eq!(a.titles(Query::default()), ["Före"]);
    for agg in [&nord, &syd] {
        assert_eq!(agg.titles(Query::default()), ["Före"]);
        assert_eq!(agg.node().head(&g_id).unwrap().map(|h| h.seq), Some(2));
    }
    // A region that joins later gets the others' logs but not the removed region's.
    let d = dd.run(vec![syd.addr()]).await;
    eventually("Skåne's method in Dalarna", || {
        d.node().head(&a_id).unwrap().is_some_and(|h| h.seq == 1)
    })
    .await;
    assert!(d.node().head(&g_id).unwrap().is_none());
    assert!(d.node().author(&g_id).unwrap().is_none_or(|m| !m.admitted));
    d.running.stop().await.unwrap();
    g.running.stop().await.unwrap();
    a.running.stop().await.unwrap();
    syd.running.stop().await.unwrap();
    nord.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_with_two_aggregators_reaches_both_and_hears_from_both() {
    let da = prepare("skane");
    let db = prepare("dalarna");
    let b_id = db.id;
    let agg1 = start(
        "nord",
        Role::Aggregator,
        true,
        vec![],
        &[da.admission(), db.admission()],
    )
    .await;
    let agg2 = start(
        "syd",
        Role::Aggregator,
        true,
        vec![],
        &[da.admission(), db.admission()],
    )
    .await;
    // Skåne talks to both aggregators; Dalarna only to the second.
    let a = da.run(vec![agg1.addr(), agg2.addr()]).await;
    let b = db.run(vec![agg2.addr()]).await;
    a.running
        .shared()
        .writer
        .publish(Kind::Method, method("Via två noder"), None)
        .await
        .unwrap();
    eventually("Skåne's method at both aggregators", || {
        agg1.titles(Query::default()) == ["Via två noder"]
            && agg2.titles(Query::default()) == ["Via två noder"]
    })
    .await;
    b.running
        .shared()
        .writer
        .publish(Kind::Method, method("Från Dalarna"), None)
        .await
        .unwrap();
    eventually(
        "Dalarna's method in Skåne through the second aggregator",
        || {
            a.titles(Query {
                region: Some("dalarna".into()),
                ..Query::default()
            }) == ["Från Dalarna"]
        },
    )
    .await;
    // The first aggregator never hears from Dalarna directly: it holds only what Skåne sent.
    assert!(agg1.node().head(&b_id).unwrap().is_none());
    assert_eq!(
        a.running
            .shared()
            .peers()
            .iter()
            .filter(|p| p.connected)
            .count(),
        2
    );
    for n in [b, a, agg2, agg1] {
        n.running.stop().await.unwrap();
    }
}

/// A head announced while a session is being set up reaches that session: it subscribes to
/// new heads before it reads the heads it opens with. (It used to subscribe after, and a
/// region that missed the first entries of another region never got them for as long as its
/// link lived; `spindel demo` timed out on it in CI.) The aggregator pauses Dalarna's session
/// after reading its opening heads, and Skåne's first entries arrive inside that pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_announced_while_a_session_opens_is_not_missed() {
    let da = prepare("skane");
    let a_id = da.id;
    let db = prepare("dalarna");
    let b_id = db.id;
    {
        let a = LocalNode::open(&da.path).unwrap();
        a.publish(
            Kind::Method,
            &method("Studiecirkel i Skåne"),
            None,
            &mut rand_core::OsRng,
            local::now_ms(),
        )
        .unwrap();
    }
    let agg = aggregator_of(&[&da, &db]).await;
    let held = agg.running.shared().hold_next_session();
    let b = db.run(vec![agg.addr()]).await;
    // Dalarna's session is paused at the aggregator, its opening heads (no Skåne) read.
    tokio::time::timeout(Duration::from_secs(20), held.paused)
        .await
        .expect("Dalarna's session reaches the aggregator")
        .unwrap();
    let a = da.run(vec![agg.addr()]).await;
    eventually("Skåne's log at the aggregator", || {
        agg.node().head(&a_id).unwrap().map(|h| h.seq) == Some(2)
    })
    .await;
    // Skåne's head was announced while Dalarna's session waited; now it goes on.
    held.release.send(()).unwrap();
    // Well before a live session's periodic rescan of the heads (10 s) would mend a miss.
    eventually_within(Duration::from_secs(5), "Skåne's log in Dalarna", || {
        b.node().head(&a_id).unwrap().map(|h| h.seq) == Some(2)
    })
    .await;
    eventually("Dalarna's profile in Skåne", || {
        a.node().head(&b_id).unwrap().is_some()
    })
    .await;
    b.running.stop().await.unwrap();
    a.running.stop().await.unwrap();
    agg.running.stop().await.unwrap();
}

/// A publish through the running node's writer reaches the aggregator at once, well before a
/// live session's periodic rescan (10 s) would send it. And a session re-reads the heads now
/// and then: an entry written behind the writer's back (unannounced) still reaches the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_writer_announce_and_the_rescan_sends_what_was_not() {
    let da = prepare("skane");
    let a_id = da.id;
    let agg = aggregator_of(&[&da]).await;
    let a = da.run(vec![agg.addr()]).await;
    eventually("Skåne's profile at the aggregator", || {
        agg.node().head(&a_id).unwrap().is_some()
    })
    .await;
    a.running
        .shared()
        .writer
        .publish(Kind::Method, method("Hörd metod"), None)
        .await
        .unwrap();
    eventually_within(
        Duration::from_secs(3),
        "the method at the aggregator at once",
        || agg.node().head(&a_id).unwrap().map(|h| h.seq) == Some(2),
    )
    .await;

    // Past the writer, straight to the node's own log: nothing announces it (only code
    // outside the node crate can do this; the session's rescan still finds it).
    a.local
        .publish(
            Kind::Method,
            &method("Tyst metod"),
            None,
            &mut rand_core::OsRng,
            local::now_ms(),
        )
        .unwrap();
    eventually("the unannounced method at the aggregator", || {
        agg.node().head(&a_id).unwrap().map(|h| h.seq) == Some(3)
    })
    .await;
    a.running.stop().await.unwrap();
    agg.running.stop().await.unwrap();
}

/// A region admitted while the network runs (`spindel allow` on a running aggregator) reaches
/// the regions that were already connected: their sessions started before the aggregator
/// vouched for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_admitted_while_running_reaches_the_connected_regions() {
    let da = prepare("skane");
    let a_id = da.id;
    let dc = prepare("dalarna");
    let c_id = dc.id;
    let agg = aggregator_of(&[&da]).await;
    let a = da.run(vec![agg.addr()]).await;
    eventually("Skåne at the aggregator", || {
        agg.node().head(&a_id).unwrap().is_some()
    })
    .await;
    agg.running
        .shared()
        .writer
        .allow(c_id, Some("dalarna".into()))
        .await
        .unwrap();
    let c = dc.run(vec![agg.addr()]).await;
    eventually("Dalarna's profile in Skåne", || {
        a.node().head(&c_id).unwrap().is_some()
    })
    .await;
    // Skåne knows it by its admitted name: the aggregator sent the new list at once.
    let meta = a.node().author(&c_id).unwrap().unwrap();
    assert_eq!(meta.label(), Some("dalarna"));
    eventually("Skåne's profile in Dalarna", || {
        c.node().head(&a_id).unwrap().is_some()
    })
    .await;
    assert!(a.node().refusals().unwrap().is_empty());
    c.running.stop().await.unwrap();
    a.running.stop().await.unwrap();
    agg.running.stop().await.unwrap();
}

/// A region holds another region's records without their payloads (a relay stripped them). On
/// its next link to its aggregator it asks for them whole, and the payloads complete them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_held_without_payload_are_fetched_whole_from_the_aggregator() {
    let xdir = prepare("skane");
    let xid = xdir.id;
    LocalNode::open(&xdir.path)
        .unwrap()
        .publish(
            Kind::Method,
            &method("Hel metod"),
            None,
            &mut rand_core::OsRng,
            local::now_ms(),
        )
        .unwrap();
    let rdir = prepare("dalarna");
    let agg = aggregator_of(&[&xdir, &rdir]).await;
    let x = xdir.run(vec![agg.addr()]).await;
    eventually("skane's method at the aggregator", || {
        agg.titles(Query::default())
            .contains(&"Hel metod".to_string())
    })
    .await;
    // Dalarna receives skane's log stripped of every payload (a hostile relay's doing).
    {
        let store = spindel_node::store::Store::open(&rdir.path).unwrap();
        store.vouch(&xid, &agg.node().node_id()).unwrap();
        let stripped: Vec<_> = agg
            .node()
            .entries_from(&xid, 1, 100)
            .unwrap()
            .into_iter()
            .map(|mut inc| {
                inc.payload = None;
                inc
            })
            .collect();
        assert_eq!(stripped.len(), 2);
        store
            .apply(
                stripped,
                spindel_node::store::ApplyOptions {
                    expected_author: None,
                    now_ms: local::now_ms(),
                    all_or_nothing: true,
                },
            )
            .unwrap();
        drop(store);
        let r = LocalNode::open(&rdir.path).unwrap();
        assert!(
            r.query(&Query::default())
                .unwrap()
                .records
                .iter()
                .all(|v| v.author != xid.to_hex())
        );
        assert_eq!(r.header_only_current(10).unwrap().len(), 2);
    }
    // Its heads equal the aggregator's: only the want brings the payloads.
    let r = rdir.run(vec![agg.addr()]).await;
    eventually("the stripped records completed in dalarna", || {
        r.titles(Query::default())
            .contains(&"Hel metod".to_string())
    })
    .await;
    assert!(r.node().header_only_current(10).unwrap().is_empty());
    assert_eq!(
        r.node()
            .query(&Query {
                text: Some("metod".into()),
                ..Query::default()
            })
            .unwrap()
            .records
            .len(),
        1
    );
    drop(x);
}

/// The gate of a node that pinned aggregators x and y: refused by both for another copy of its
/// key, it signs nothing (the error names where the other copy is, without the transport's
/// prefix); a session taken by x alone does not lift it while y still refuses; once y takes one
/// too, the node catches up as at a start and signs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_told_of_another_copy_signs_nothing_until_each_refusing_aggregator_takes_it() {
    use spindel_node::Gate;
    use spindel_node::local::NodeError;
    let dir = tempfile::tempdir().unwrap();
    let node = kit::new_node(dir.path(), "skane", Role::Region, &[]);
    let node = spindel_node::ReadModel::of(&std::sync::Arc::new(node));
    let (x, y) = (
        SecretKey::from_bytes(&[81; 32]).node_id(),
        SecretKey::from_bytes(&[82; 32]).node_id(),
    );
    let gate = Gate::default();
    gate.pin([x, y]);
    assert!(gate.ready(&node).await.is_ok());
    let said = "another copy of this node's key is connected to the aggregator at 192.0.2.1:4433 since 2026-12-05T14:00:00.000Z";
    gate.refused_as_copy(x, &format!("peer closed: {said}"));
    gate.refused_as_copy(y, &format!("peer closed: {said}"));
    assert_eq!(gate.other_copy().as_deref(), Some(said));
    match gate.ready(&node).await {
        Err(e @ NodeError::OtherCopy(_)) => {
            let line = e.to_string();
            assert!(line.starts_with(said), "{line}");
            assert!(line.contains("move its node.key away"), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
        other => panic!("signed while another copy holds the session: {other:?}"),
    }
    gate.session_accepted(x);
    assert!(gate.other_copy().is_some(), "lifted while y still refuses");
    assert!(gate.ready(&node).await.is_err());
    gate.session_accepted(y);
    assert_eq!(gate.other_copy(), None);
    assert!(gate.is_waiting(), "signs again before catching up");
    gate.own_log_at(&node, x, 0);
    gate.own_log_at(&node, y, 0);
    assert!(gate.ready(&node).await.is_ok());
}
