//! Federation over real QUIC on 127.0.0.1: an aggregator and regions as in-process nodes with
//! their own keys and sled stores on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use spindel_node::local::{self, LocalNode, Role};
use spindel_node::query::Query;
use spindel_node::runtime::{RunOptions, Running};
use spindel_node::transport::{Limits, PeerAddr};
use spindel_protocol::record::Kind;
use spindel_protocol::{NodeId, SecretKey};

struct TestNode {
    _dir: tempfile::TempDir,
    running: Running,
    id: NodeId,
}

impl TestNode {
    fn node(&self) -> &LocalNode {
        &self.running.shared.node
    }

    fn addr(&self) -> PeerAddr {
        self.running.peer_addr().unwrap()
    }

    fn titles(&self, q: Query) -> Vec<String> {
        self.node()
            .query(&Query {
                limit: Some(1000),
                ..q
            })
            .unwrap()
            .records
            .iter()
            .filter_map(|r| {
                r.data
                    .get("title")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .collect()
    }
}

async fn start(
    name: &str,
    role: Role,
    listen: bool,
    aggregators: Vec<PeerAddr>,
    admit: &[(NodeId, &str)],
) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    local::init(&path, name, role, None, &mut rand_core::OsRng).unwrap();
    let node = LocalNode::open(&path).unwrap();
    for (id, name) in admit {
        node.allow(*id, Some(name.to_string())).unwrap();
    }
    let id = node.node_id();
    let running = Running::start_node(node, RunOptions::loopback(listen, aggregators))
        .await
        .unwrap();
    TestNode {
        _dir: dir,
        running,
        id,
    }
}

async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    eventually_within(Duration::from_secs(20), what, cond).await
}

async fn eventually_within(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn method(title: &str) -> String {
    serde_json::json!({"title": title, "summary": "Erfarenheter från föreningar"}).to_string()
}

/// A region's key, made before the region starts so the aggregator can admit it.
fn prepare_region(name: &str) -> (tempfile::TempDir, std::path::PathBuf, NodeId) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    local::init(&path, name, Role::Region, None, &mut rand_core::OsRng).unwrap();
    let id = LocalNode::open(&path).unwrap().node_id();
    (dir, path, id)
}

async fn run_prepared(
    dir: tempfile::TempDir,
    path: std::path::PathBuf,
    aggregators: Vec<PeerAddr>,
) -> TestNode {
    let node = LocalNode::open(&path).unwrap();
    let id = node.node_id();
    let running = Running::start_node(node, RunOptions::loopback(false, aggregators))
        .await
        .unwrap();
    TestNode {
        _dir: dir,
        running,
        id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_replicate_through_the_aggregator_both_ways() {
    let (da, pa, a_id) = prepare_region("skane");
    let (db, pb, b_id) = prepare_region("dalarna");
    let agg = start(
        "nationell",
        Role::Aggregator,
        true,
        vec![],
        &[(a_id, "skane"), (b_id, "dalarna")],
    )
    .await;
    let a = run_prepared(da, pa, vec![agg.addr()]).await;
    let b = run_prepared(db, pb, vec![agg.addr()]).await;

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
        .shared
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
        .shared
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

    // The aggregator authored nothing and holds no record of its own.
    assert!(agg.node().head(&agg.id).unwrap().is_none());
    assert!(
        agg.node().refusals().unwrap().is_empty(),
        "{:?}",
        agg.node().refusals()
    );
    let st = a.running.shared.peers();
    assert_eq!(st.len(), 1);
    assert!(st[0].connected);

    b.running.shutdown().await;
    a.running.shutdown().await;
    agg.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unadmitted_region_and_wrong_pinned_key_are_refused() {
    let agg = start("nationell", Role::Aggregator, true, vec![], &[]).await;
    let stranger = start("okand", Role::Region, false, vec![agg.addr()], &[]).await;
    stranger
        .running
        .shared
        .writer
        .publish(Kind::Method, method("Ska inte in"), None)
        .await
        .ok();
    eventually("a refused link", || {
        stranger.running.shared.peers().iter().any(|p| {
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
            .shared
            .peers()
            .iter()
            .find(|p| p.last_error.is_some())
            .map(|p| p.retry_in_ms)
    };
    eventually("the refusal's wait in status", || {
        refused_wait(&stranger).is_some_and(|w| w > 0)
    })
    .await;
    let wait = refused_wait(&stranger).unwrap();
    assert!(
        wait >= spindel_node::link::REFUSED_BACKOFF_MIN_MS,
        "a refused region tries again after {wait} ms"
    );

    // A dialer that pins another key does not get a connection, and does not retry hot either.
    let wrong: PeerAddr = format!(
        "{}@{}",
        SecretKey::from_bytes(&[9; 32]).node_id(),
        agg.running.listen_addr.unwrap()
    )
    .parse()
    .unwrap();
    let pinned_wrong = start("felnyckel", Role::Region, false, vec![wrong.clone()], &[]).await;
    eventually("a wrong key named", || {
        pinned_wrong.running.shared.peers().iter().any(|p| {
            p.last_error
                .as_deref()
                .is_some_and(|e| e.contains("not the pinned"))
                && p.retry_in_ms >= spindel_node::link::REFUSED_BACKOFF_MIN_MS
        })
    })
    .await;
    pinned_wrong.running.shutdown().await;
    let err = spindel_node::client::remote_query(&wrong, Default::default(), Limits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            spindel_node::client::RemoteQueryError::Transport(
                spindel_node::transport::TransportError::WrongPeer { .. }
            )
        ),
        "{err}"
    );
    // The right key answers (to a member: here the aggregator's own key).
    let ok = spindel_node::client::remote_query_as(
        agg.node().key(),
        &agg.addr(),
        Default::default(),
        Limits::default(),
    )
    .await
    .unwrap();
    assert!(ok.contains("\"records\""), "{ok}");

    stranger.running.shutdown().await;
    agg.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_with_two_aggregators_reaches_both_and_hears_from_both() {
    let (da, pa, a_id) = prepare_region("skane");
    let (db, pb, b_id) = prepare_region("dalarna");
    let agg1 = start(
        "nord",
        Role::Aggregator,
        true,
        vec![],
        &[(a_id, "skane"), (b_id, "dalarna")],
    )
    .await;
    let agg2 = start(
        "syd",
        Role::Aggregator,
        true,
        vec![],
        &[(a_id, "skane"), (b_id, "dalarna")],
    )
    .await;
    // Skåne talks to both aggregators; Dalarna only to the second.
    let a = run_prepared(da, pa, vec![agg1.addr(), agg2.addr()]).await;
    let b = run_prepared(db, pb, vec![agg2.addr()]).await;
    a.running
        .shared
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
        .shared
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
            .shared
            .peers()
            .iter()
            .filter(|p| p.connected)
            .count(),
        2
    );
    for n in [b, a, agg2, agg1] {
        n.running.shutdown().await;
    }
}

/// A head announced while a session is being set up reaches that session: it subscribes to
/// new heads before it reads the heads it opens with. (It used to subscribe after, and a
/// region that missed the first entries of another region never got them for as long as its
/// link lived; `spindel demo` timed out on it in CI.) The aggregator pauses Dalarna's session
/// after reading its opening heads, and Skåne's first entries arrive inside that pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_announced_while_a_session_opens_is_not_missed() {
    let (da, pa, a_id) = prepare_region("skane");
    let (db, pb, b_id) = prepare_region("dalarna");
    {
        let a = LocalNode::open(&pa).unwrap();
        a.publish(
            Kind::Method,
            &method("Studiecirkel i Skåne"),
            None,
            &mut rand_core::OsRng,
            local::now_ms(),
        )
        .unwrap();
    }
    let agg = start(
        "nationell",
        Role::Aggregator,
        true,
        vec![],
        &[(a_id, "skane"), (b_id, "dalarna")],
    )
    .await;
    let held = agg.running.shared.hold_next_session();
    let b = run_prepared(db, pb, vec![agg.addr()]).await;
    // Dalarna's session is paused at the aggregator, its opening heads (no Skåne) read.
    tokio::time::timeout(Duration::from_secs(20), held.paused)
        .await
        .expect("Dalarna's session reaches the aggregator")
        .unwrap();
    let a = run_prepared(da, pa, vec![agg.addr()]).await;
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
    b.running.shutdown().await;
    a.running.shutdown().await;
    agg.running.shutdown().await;
}

/// A publish through the running node's writer reaches the aggregator at once, well before a
/// live session's periodic rescan (10 s) would send it. And a session re-reads the heads now
/// and then: an entry written behind the writer's back (unannounced) still reaches the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_writer_announce_and_the_rescan_sends_what_was_not() {
    let (da, pa, a_id) = prepare_region("skane");
    let agg = start(
        "nationell",
        Role::Aggregator,
        true,
        vec![],
        &[(a_id, "skane")],
    )
    .await;
    let a = run_prepared(da, pa, vec![agg.addr()]).await;
    eventually("Skåne's profile at the aggregator", || {
        agg.node().head(&a_id).unwrap().is_some()
    })
    .await;
    a.running
        .shared
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
    a.node()
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
    a.running.shutdown().await;
    agg.running.shutdown().await;
}

/// A region admitted while the network runs (`spindel allow` on a running aggregator) reaches
/// the regions that were already connected: their sessions started before the aggregator
/// vouched for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_admitted_while_running_reaches_the_connected_regions() {
    let (da, pa, a_id) = prepare_region("skane");
    let (dc, pc, c_id) = prepare_region("dalarna");
    let agg = start(
        "nationell",
        Role::Aggregator,
        true,
        vec![],
        &[(a_id, "skane")],
    )
    .await;
    let a = run_prepared(da, pa, vec![agg.addr()]).await;
    eventually("Skåne at the aggregator", || {
        agg.node().head(&a_id).unwrap().is_some()
    })
    .await;
    agg.running
        .shared
        .writer
        .allow(c_id, Some("dalarna".into()))
        .await
        .unwrap();
    let c = run_prepared(dc, pc, vec![agg.addr()]).await;
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
    c.running.shutdown().await;
    a.running.shutdown().await;
    agg.running.shutdown().await;
}

/// A region holds another region's records without their payloads (a relay stripped them). On
/// its next link to its aggregator it asks for them whole, and the payloads complete them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_held_without_payload_are_fetched_whole_from_the_aggregator() {
    let (xdir, xpath, xid) = prepare_region("skane");
    LocalNode::open(&xpath)
        .unwrap()
        .publish(
            Kind::Method,
            &method("Hel metod"),
            None,
            &mut rand_core::OsRng,
            local::now_ms(),
        )
        .unwrap();
    let (rdir, rpath, rid) = prepare_region("dalarna");
    let agg = start(
        "nationell",
        Role::Aggregator,
        true,
        vec![],
        &[(xid, "skane"), (rid, "dalarna")],
    )
    .await;
    let x = run_prepared(xdir, xpath, vec![agg.addr()]).await;
    eventually("skane's method at the aggregator", || {
        agg.titles(Query::default())
            .contains(&"Hel metod".to_string())
    })
    .await;
    // Dalarna receives skane's log stripped of every payload (a hostile relay's doing).
    {
        let store = spindel_node::store::Store::open(&rpath).unwrap();
        store.vouch(&xid, None).unwrap();
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
        let r = LocalNode::open(&rpath).unwrap();
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
    let r = run_prepared(rdir, rpath, vec![agg.addr()]).await;
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
