//! A hostile aggregator against a region under a charter (decision 0041), over real QUIC: a
//! fake aggregator, speaking the protocol by hand, admits a key that is no member in its
//! admission list and relays that key's log, an endorsement the key signed of itself, and an
//! endorsement forged in a founder's name. The region refuses and counts each; only the
//! founders' own endorsements make the key a member there, and then its log is taken under the
//! name they gave.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

#[path = "kit/mod.rs"]
mod kit;

use spindel_node::Reads;
use spindel_node::local::LocalNode;
use spindel_node::transport::{FramedRecv, FramedSend, Limits, PeerAddr, Transport};
use spindel_protocol::charter::{Charter, Founder, SignedCharter};
use spindel_protocol::entry::{Entry, Hash, Head, Payload, RecordId, next_header};
use spindel_protocol::record::Kind;
use spindel_protocol::sync::{FRAME_BYTES_MAX, Message, PROTOCOL_VERSION, PeerRole, SyncEntry};
use spindel_protocol::{NodeId, SecretKey};

/// One signed entry of `key`'s log after `head`, holding `body` as a record of `kind`.
fn entry(key: &SecretKey, head: Option<Head>, kind: Kind, rid: u8, body: String) -> SyncEntry {
    let payload = Payload::seal(&mut rand_core::OsRng, body);
    let h = next_header(
        key.node_id(),
        head,
        spindel_node::local::now_ms(),
        kind,
        RecordId([rid; 16]),
        Some(&payload),
    );
    SyncEntry {
        entry: Entry::sign(key, h).to_wire(),
        payload: Some(payload),
    }
}

fn endorse(of: &NodeId, name: &str) -> String {
    serde_json::json!({"node": of.to_hex(), "name": name}).to_string()
}

/// An aggregator that speaks the protocol by hand: it gives the charter id it is told,
/// announces `admitted`, then sends each batch the test hands it and passes back the acks.
struct Fake {
    addr: PeerAddr,
    batches: tokio::sync::mpsc::UnboundedSender<Vec<SyncEntry>>,
    acks: tokio::sync::mpsc::UnboundedReceiver<Vec<(NodeId, u64)>>,
    /// One message per `Retry` the region sent.
    retries: tokio::sync::mpsc::UnboundedReceiver<()>,
    _transport: Transport,
}

impl Fake {
    fn start(charter: Hash, admitted: Vec<(NodeId, Option<String>)>) -> Fake {
        let key = SecretKey::generate(&mut rand_core::OsRng);
        let transport =
            Transport::bind(&key, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
        let addr = PeerAddr {
            node_id: key.node_id(),
            host: "127.0.0.1".into(),
            port: transport.local_addr().unwrap().port(),
        };
        let (batches, mut to_send) = tokio::sync::mpsc::unbounded_channel::<Vec<SyncEntry>>();
        let (ack_tx, acks) = tokio::sync::mpsc::unbounded_channel();
        let (retry_tx, retries) = tokio::sync::mpsc::unbounded_channel();
        let t = transport.clone();
        tokio::spawn(async move {
            let incoming = t.accept().await.unwrap();
            let (conn, _region) = t.handshake(incoming).await.unwrap();
            let (s, r) = conn.accept_bi().await.unwrap();
            let mut send = FramedSend::new(s);
            let mut recv = FramedRecv::new(r, FRAME_BYTES_MAX);
            for m in [
                Message::Hello {
                    version: PROTOCOL_VERSION,
                    role: PeerRole::Aggregator,
                    name: "falsk".into(),
                },
                Message::Charter { id: Some(charter) },
                Message::Heads {
                    heads: vec![],
                    admitted,
                },
            ] {
                send.send(&m).await.unwrap();
            }
            loop {
                tokio::select! {
                    batch = to_send.recv() => match batch {
                        Some(entries) => send.send(&Message::Entries { entries }).await.unwrap(),
                        None => return,
                    },
                    m = recv.recv() => match m {
                        Ok(Some(Message::Ack { heads })) => {
                            if ack_tx.send(heads).is_err() {
                                return;
                            }
                        }
                        Ok(Some(Message::Retry)) => {
                            let _ = retry_tx.send(());
                        }
                        Ok(Some(_)) => {}
                        _ => return,
                    },
                }
            }
        });
        Fake {
            addr,
            batches,
            acks,
            retries,
            _transport: transport,
        }
    }

    /// Sends one batch and returns the region's ack of it.
    async fn relay(&mut self, entries: Vec<SyncEntry>) -> Vec<(NodeId, u64)> {
        self.batches.send(entries).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(20), self.acks.recv())
            .await
            .expect("an ack within 20 s")
            .expect("the session lasts")
    }
}

/// `skane` running with the hand-driven aggregator of charter `id` as its only aggregator.
async fn behind_a_fake(
    skane: Arc<LocalNode>,
    id: Hash,
) -> (Fake, spindel_node::server::NodeHandle) {
    let fake = Fake::start(id, vec![]);
    let running = kit::run_shared(skane, false, vec![fake.addr.clone()], Limits::default()).await;
    (fake, running)
}

/// A region "skane" not running yet, a founder of a charter of three (threshold 2) whose other
/// founders' keys the test holds, with the charter adopted.
struct Chartered {
    dir: tempfile::TempDir,
    skane: LocalNode,
    dalarna: SecretKey,
    stockholm: SecretKey,
    id: Hash,
}

fn chartered() -> Chartered {
    let dir = tempfile::tempdir().unwrap();
    let skane = kit::new_node(dir.path(), "skane", spindel_node::local::Role::Region, &[]);
    let (signed, dalarna, stockholm) = charter_of(&skane);
    let adopted = skane.adopt_charter(&signed).unwrap();
    assert_eq!(adopted.standing, "member");
    Chartered {
        dir,
        skane,
        dalarna,
        stockholm,
        id: signed.id(),
    }
}

/// A charter of three founders (threshold 2), `skane` one of them, signed by all, with the
/// other two founders' keys.
fn charter_of(skane: &LocalNode) -> (SignedCharter, SecretKey, SecretKey) {
    let dalarna = SecretKey::generate(&mut rand_core::OsRng);
    let stockholm = SecretKey::generate(&mut rand_core::OsRng);
    let mut founders: Vec<Founder> = [
        (skane.node_id(), "skane"),
        (dalarna.node_id(), "dalarna"),
        (stockholm.node_id(), "stockholm"),
    ]
    .into_iter()
    .map(|(node, name)| Founder {
        node,
        name: name.into(),
    })
    .collect();
    founders.sort_by_key(|f| f.node);
    let mut signed = SignedCharter::new(&Charter {
        network: "SOUL".into(),
        threshold: 2,
        created_ms: spindel_node::local::now_ms(),
        founders,
    })
    .unwrap();
    signed.sign(skane.key()).unwrap();
    signed.sign(&dalarna).unwrap();
    signed.sign(&stockholm).unwrap();
    (signed, dalarna, stockholm)
}

/// A node that held a record and the order that erases it before it knew the charter takes
/// the record down when it adopts the charter, and it stays down after a reopen.
#[test]
fn adopting_a_charter_takes_down_what_the_held_acts_erase() {
    let dir = tempfile::tempdir().unwrap();
    let skane = kit::new_node(dir.path(), "skane", spindel_node::local::Role::Region, &[]);
    let now = spindel_node::local::now_ms;
    let canary = "Kanarieslingan";
    let p = skane
        .publish(
            Kind::Method,
            &method(canary),
            None,
            &mut rand_core::OsRng,
            now(),
        )
        .unwrap();
    let order = serde_json::json!({
        "author": skane.node_id().to_hex(),
        "record": p.record_id,
        "reason": "Personen bad om det",
    })
    .to_string();
    let ordered_ms = now();
    skane
        .publish(
            Kind::Erasure,
            &order,
            None,
            &mut rand_core::OsRng,
            ordered_ms,
        )
        .unwrap();
    let shown = |n: &LocalNode| {
        n.query(&spindel_node::query::Query {
            limit: Some(100),
            ..Default::default()
        })
        .unwrap()
        .records
        .iter()
        .any(|r| r.data["title"] == canary)
    };
    assert!(shown(&skane), "without a charter an order counts nothing");
    let on_disk = |dir: &std::path::Path| {
        walk(dir).iter().any(|f| {
            std::fs::read(f).is_ok_and(|b| b.windows(canary.len()).any(|w| w == canary.as_bytes()))
        })
    };
    assert!(on_disk(&dir.path().join("skane")));
    let (signed, _, _) = charter_of(&skane);
    skane.adopt_charter(&signed).unwrap();
    assert!(
        !shown(&skane),
        "the region's own order erases it once the charter is held"
    );
    drop(skane);
    let reopened = LocalNode::open(&dir.path().join("skane")).unwrap();
    assert!(!shown(&reopened));
    assert!(
        on_disk(&dir.path().join("skane")),
        "held, hidden, until the order settles"
    );
    // The bytes go once the order settled: the settle time after it began to be held.
    let early = reopened.purge_settled_erasures(now()).unwrap();
    assert_eq!(early.purged, 0);
    let due = early.next_due_ms.unwrap();
    assert!(due >= ordered_ms + spindel_node::store::ERASURE_SETTLE.as_millis() as u64);
    assert_eq!(reopened.purge_settled_erasures(due).unwrap().purged, 1);
    assert!(
        !on_disk(&dir.path().join("skane")),
        "the record's bytes are off the disk"
    );
    assert!(!shown(&reopened));
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn method(title: &str) -> String {
    serde_json::json!({"title": title, "summary": "s"}).to_string()
}

/// A revoked region's records up to the cut its revokers named stay; the rest stop showing
/// everywhere: one shown before the revocation arrived is taken down (its payload purged),
/// and one that arrives afterwards is taken without its payload. Its log stays whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_regions_records_past_its_cut_show_nowhere() {
    let Chartered {
        dir: _dir,
        skane,
        dalarna,
        stockholm,
        id,
    } = chartered();
    let member = SecretKey::generate(&mut rand_core::OsRng);
    let (mut fake, running) = behind_a_fake(Arc::new(skane), id).await;
    let node = running.shared().node.clone();
    let endorse_by = |key: &SecretKey| {
        entry(
            key,
            None,
            Kind::Endorsement,
            1,
            endorse(&member.node_id(), "jamtland"),
        )
    };
    let (by_dalarna, by_stockholm) = (endorse_by(&dalarna), endorse_by(&stockholm));
    fake.relay(vec![by_dalarna.clone()]).await;
    fake.relay(vec![by_stockholm.clone()]).await;
    let mut log = Vec::new();
    let mut at = None;
    for (i, title) in ["Första", "Andra", "Tredje"].into_iter().enumerate() {
        let e = entry(&member, at, Kind::Method, 10 + i as u8, method(title));
        at = Some(head(&e));
        log.push(e);
    }
    let ack = fake.relay(log).await;
    assert_eq!(held(&ack, &member.node_id()), 3);
    let titles = |node: &spindel_node::ReadModel| -> Vec<String> {
        let mut t = kit::titles_of(node, spindel_node::query::Query::default());
        t.sort();
        t
    };
    assert_eq!(titles(&node), ["Andra", "Första", "Tredje"]);
    kit::tally_agrees(&node);
    // Revoked by both other founders; the cut is the most either saw: seq 2.
    let revoke = |key: &SecretKey, after: &SyncEntry, upto: u64| {
        let body = serde_json::json!({"node": member.node_id().to_hex(), "reason": "Nedlagd", "upto": upto});
        entry(
            key,
            Some(head(after)),
            Kind::Revocation,
            2,
            body.to_string(),
        )
    };
    fake.relay(vec![revoke(&dalarna, &by_dalarna, 1)]).await;
    assert_eq!(
        titles(&node).len(),
        3,
        "one revocation of two changes nothing"
    );
    fake.relay(vec![revoke(&stockholm, &by_stockholm, 2)]).await;
    assert_eq!(titles(&node), ["Andra", "Första"]);
    kit::tally_agrees(&node);
    // Its next entry is taken (its log stays whole) and shows nowhere.
    let fourth = entry(&member, at, Kind::Method, 20, method("Fjärde"));
    let ack = fake.relay(vec![fourth]).await;
    assert_eq!(held(&ack, &member.node_id()), 4);
    assert_eq!(titles(&node), ["Andra", "Första"]);
    let report = node.membership().unwrap();
    let region = report
        .regions
        .iter()
        .find(|r| r.name == "jamtland")
        .unwrap();
    assert_eq!(region.state, "former");
    assert_eq!(region.keys[0].until, Some(2));
    assert_eq!(region.revoked.as_ref().unwrap().by.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_takes_membership_from_signed_acts_not_from_its_aggregator() {
    let Chartered {
        dir,
        skane,
        dalarna,
        stockholm,
        id,
    } = chartered();
    let stranger = SecretKey::generate(&mut rand_core::OsRng);

    // The fake aggregator lists the stranger as admitted, under a name.
    let mut fake = Fake::start(id, vec![(stranger.node_id(), Some("jamtland".into()))]);
    let skane = Arc::new(skane);
    let running = kit::run_shared(
        skane.clone(),
        false,
        vec![fake.addr.clone()],
        Limits::default(),
    )
    .await;
    let node = running.shared().node.clone();

    // The stranger's log: an endorsement of itself, then a record.
    let own = entry(
        &stranger,
        None,
        Kind::Endorsement,
        1,
        endorse(&stranger.node_id(), "jamtland"),
    );
    let own_head = head(&own);
    let record = entry(
        &stranger,
        Some(own_head),
        Kind::Method,
        2,
        serde_json::json!({"title": "Jämtlands metod", "summary": "s"}).to_string(),
    );
    let ack = fake.relay(vec![own.clone(), record.clone()]).await;
    assert_eq!(
        held(&ack, &stranger.node_id()),
        0,
        "a non-member's entries are refused"
    );
    // An endorsement in a founder's name that the stranger signed.
    let genuine = entry(
        &dalarna,
        None,
        Kind::Endorsement,
        3,
        endorse(&stranger.node_id(), "jamtland"),
    );
    let header = genuine.entry.header.clone();
    let forged = SyncEntry {
        entry: spindel_protocol::entry::WireEntry {
            signature: stranger.sign(&header).to_vec(),
            header,
        },
        payload: genuine.payload,
    };
    let ack = fake.relay(vec![forged]).await;
    assert_eq!(
        held(&ack, &dalarna.node_id()),
        0,
        "a forged endorsement is refused"
    );
    let refusals = node.refusals().unwrap();
    assert!(
        refusals.get("not_admitted").copied().unwrap_or(0) >= 2,
        "{refusals:?}"
    );
    assert!(
        refusals.get("bad_signature").copied().unwrap_or(0) >= 1,
        "{refusals:?}"
    );
    assert!(
        !node
            .author(&stranger.node_id())
            .unwrap()
            .is_some_and(|m| m.admitted)
    );

    // One founder's endorsement is not enough; the second makes it a member, and its log is
    // taken when relayed again.
    let by_dalarna = entry(
        &dalarna,
        None,
        Kind::Endorsement,
        4,
        endorse(&stranger.node_id(), "jamtland"),
    );
    fake.relay(vec![by_dalarna.clone()]).await;
    let ack = fake.relay(vec![own.clone(), record.clone()]).await;
    assert_eq!(held(&ack, &stranger.node_id()), 0, "one endorsement of two");
    let by_stockholm = entry(
        &stockholm,
        None,
        Kind::Endorsement,
        5,
        endorse(&stranger.node_id(), "jamtland"),
    );
    while fake.retries.try_recv().is_ok() {}
    fake.relay(vec![by_stockholm]).await;
    // Its membership changed: the region asks the aggregator to send again what it refused
    // (the stranger's log, refused before), instead of waiting for the session's retry.
    tokio::time::timeout(std::time::Duration::from_secs(20), fake.retries.recv())
        .await
        .expect("a retry within 20 s")
        .expect("the session lasts");
    let ack = fake.relay(vec![own, record]).await;
    assert_eq!(
        held(&ack, &stranger.node_id()),
        2,
        "a member now: its log is taken"
    );
    let meta = node.author(&stranger.node_id()).unwrap().unwrap();
    assert!(meta.admitted);
    assert_eq!(meta.admitted_name.as_deref(), Some("jamtland"));
    // Acts are no knowledge: only the record shows, under the name the members gave.
    let page = node
        .query(&spindel_node::query::Query {
            limit: Some(100),
            ..Default::default()
        })
        .unwrap();
    let shown: Vec<(Kind, Option<String>)> = page
        .records
        .iter()
        .map(|r| (r.kind, r.region.clone()))
        .collect();
    assert!(
        shown.contains(&(Kind::Method, Some("jamtland".into()))),
        "{shown:?}"
    );
    assert!(!shown.iter().any(|(k, _)| k.is_membership()), "{shown:?}");
    // One founder deleting its endorsement after it took effect undoes nothing: a withdrawal
    // is replayed at its own time, after the admission.
    let withdrawal = tombstone_of(&dalarna, &by_dalarna);
    let ack = fake.relay(vec![withdrawal]).await;
    assert_eq!(held(&ack, &dalarna.node_id()), 2);
    let is_member = |n: &dyn Fn() -> Option<spindel_node::local::MembershipReport>| {
        n().is_some_and(|m| {
            m.regions
                .iter()
                .any(|r| r.name == "jamtland" && r.state == "member")
        })
    };
    assert!(is_member(&|| node.membership()));
    assert!(node.author(&stranger.node_id()).unwrap().unwrap().admitted);
    // The store computes the same membership after a restart, from the acts it keeps (the
    // withdrawn one's payload is gone).
    drop(node);
    running.stop().await.unwrap();
    drop(skane);
    let reopened = LocalNode::open(&dir.path().join("skane")).unwrap();
    assert!(is_member(&|| reopened.membership()));
}

/// A region's rotation counts only when its own key signed it: a rotation in dalarna's log
/// signed by another key, and an endorsement by stockholm "replacing" dalarna (one vote of
/// two), change nothing; dalarna's own rotation hands the region over at once. After it, the
/// old key's entries are taken (its log stays whole) and show nowhere, and the new key
/// publishes under the region's name. A rotation naming another seq as its cut is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_counts_only_when_the_old_key_signed_it() {
    let Chartered {
        dir: _dir,
        skane,
        dalarna,
        stockholm,
        id,
    } = chartered();
    let successor = SecretKey::generate(&mut rand_core::OsRng);
    let (mut fake, running) = behind_a_fake(Arc::new(skane), id).await;
    let node = running.shared().node.clone();
    let rotation = |upto: u64| {
        serde_json::json!({
            "node": successor.node_id().to_hex(),
            "name": "dalarna",
            "replaces": dalarna.node_id().to_hex(),
            "upto": upto,
        })
        .to_string()
    };
    let is_key_of_dalarna = |node: &spindel_node::ReadModel| {
        node.membership().is_some_and(|m| {
            m.regions
                .iter()
                .any(|r| r.name == "dalarna" && r.node == successor.node_id().to_hex())
        })
    };
    // Forged: in dalarna's log, signed by the successor's key.
    let genuine = entry(&dalarna, None, Kind::Endorsement, 1, rotation(1));
    let header = genuine.entry.header.clone();
    let forged = SyncEntry {
        entry: spindel_protocol::entry::WireEntry {
            signature: successor.sign(&header).to_vec(),
            header,
        },
        payload: genuine.payload.clone(),
    };
    let ack = fake.relay(vec![forged]).await;
    assert_eq!(
        held(&ack, &dalarna.node_id()),
        0,
        "a forged rotation is refused"
    );
    assert!(
        node.refusals()
            .unwrap()
            .get("bad_signature")
            .copied()
            .unwrap_or(0)
            >= 1
    );
    // Another member's endorsement of a replacement is one vote, not a rotation.
    let vote = entry(&stockholm, None, Kind::Endorsement, 2, rotation(0));
    fake.relay(vec![vote]).await;
    assert!(!is_key_of_dalarna(&node));
    // A rotation that names another cut than itself is refused.
    let off = entry(&dalarna, None, Kind::Endorsement, 3, rotation(0));
    let ack = fake.relay(vec![off]).await;
    assert_eq!(held(&ack, &dalarna.node_id()), 0);
    assert!(
        node.refusals()
            .unwrap()
            .get("rotation_upto")
            .copied()
            .unwrap_or(0)
            >= 1
    );
    // Dalarna's own rotation: the region is the successor's at once.
    let ack = fake.relay(vec![genuine.clone()]).await;
    assert_eq!(held(&ack, &dalarna.node_id()), 1);
    assert!(is_key_of_dalarna(&node));
    // The old key's entries after it are taken and show nowhere; the new key's show under
    // the region's name.
    let late = entry(
        &dalarna,
        Some(head(&genuine)),
        Kind::Method,
        4,
        method("Gammal nyckel"),
    );
    let fresh = entry(&successor, None, Kind::Method, 5, method("Ny nyckel"));
    let ack = fake.relay(vec![late, fresh]).await;
    assert_eq!(held(&ack, &dalarna.node_id()), 2);
    assert_eq!(held(&ack, &successor.node_id()), 1);
    let page = node
        .query(&spindel_node::query::Query {
            limit: Some(100),
            ..Default::default()
        })
        .unwrap();
    let shown: Vec<(String, Option<String>)> = page
        .records
        .iter()
        .filter(|r| r.kind == Kind::Method)
        .map(|r| {
            (
                r.data["title"].as_str().unwrap_or("").to_string(),
                r.region.clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [("Ny nyckel".to_string(), Some("dalarna".to_string()))]
    );
    let report = node.membership().unwrap();
    let region = report.regions.iter().find(|r| r.name == "dalarna").unwrap();
    assert_eq!(region.keys[0].ended.as_deref(), Some("rotated"));
    assert_eq!(region.keys[0].until, Some(1));
    running.stop().await.unwrap();
}

/// An erasure order counts only from member regions: a stranger's (as a hostile aggregator
/// would relay its own) is refused, a forged one in a founder's name is refused, another
/// member's order alone erases nothing, and the record's own region's order erases it at
/// once, its log whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_order_counts_only_from_members() {
    let Chartered {
        dir: _dir,
        skane,
        dalarna,
        stockholm,
        id,
    } = chartered();
    let (mut fake, running) = behind_a_fake(Arc::new(skane), id).await;
    let node = running.shared().node.clone();
    // Dalarna's record, the one to erase.
    let record = entry(&dalarna, None, Kind::Method, 1, method("Om en person"));
    fake.relay(vec![record.clone()]).await;
    let titles = |node: &spindel_node::ReadModel| kit::titles_of(node, Default::default());
    assert!(titles(&node).contains(&"Om en person".to_string()));
    let order = serde_json::json!({
        "author": dalarna.node_id().to_hex(),
        "record": RecordId([1; 16]).to_hex(),
        "reason": "Personen har begärt radering",
    })
    .to_string();
    let stranger = SecretKey::generate(&mut rand_core::OsRng);
    let by_stranger = entry(&stranger, None, Kind::Erasure, 2, order.clone());
    let ack = fake.relay(vec![by_stranger]).await;
    assert_eq!(
        held(&ack, &stranger.node_id()),
        0,
        "a non-member's order is refused"
    );
    let genuine = entry(&stockholm, None, Kind::Erasure, 3, order.clone());
    let header = genuine.entry.header.clone();
    let forged = SyncEntry {
        entry: spindel_protocol::entry::WireEntry {
            signature: stranger.sign(&header).to_vec(),
            header,
        },
        payload: genuine.payload.clone(),
    };
    let ack = fake.relay(vec![forged]).await;
    assert_eq!(
        held(&ack, &stockholm.node_id()),
        0,
        "a forged order is refused"
    );
    // One member's order of two: nothing yet.
    fake.relay(vec![genuine]).await;
    assert!(titles(&node).contains(&"Om en person".to_string()));
    let report = node.membership().unwrap();
    assert_eq!(report.erasures[0].state, "pending");
    // An order from the record's own region (its live key) counts with it: here dalarna
    // orders its own record erased, the second of two.
    let by_dalarna = entry(&dalarna, Some(head(&record)), Kind::Erasure, 4, order);
    let ack = fake.relay(vec![by_dalarna]).await;
    assert_eq!(held(&ack, &dalarna.node_id()), 2, "its log stays whole");
    assert!(!titles(&node).contains(&"Om en person".to_string()));
    let report = node.membership().unwrap();
    assert_eq!(report.erasures[0].state, "erased");
    // The reasons shown are those of the orders that decided it.
    let mut by = report.erasures[0].ordered_by.clone();
    by.sort();
    assert_eq!(by, ["dalarna", "stockholm"]);
    assert_eq!(report.erasures[0].reasons.len(), 2);
    running.stop().await.unwrap();
}

/// An erasure order is decided by the signed times of the acts before it, and an act signed
/// earlier can arrive later: a withdrawal signed before the deciding order undoes the
/// erasure. The node hides the record at once but holds its bytes until the order settles, so
/// the late withdrawal shows it again (as on a node that took the acts in signed order); an
/// order that stands is erased for good once it settled, by the running node on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_undone_by_a_late_earlier_withdrawal_shows_the_record_again() {
    let Chartered {
        dir,
        skane,
        dalarna,
        stockholm,
        id,
    } = chartered();
    let skane = Arc::new(skane);
    let (mut fake, running) = behind_a_fake(skane.clone(), id).await;
    let node = running.shared().node.clone();
    let canary = "Ingridsdotter-Zetterlund";
    let record = entry(&dalarna, None, Kind::Method, 1, method(canary));
    fake.relay(vec![record.clone()]).await;
    let shown = || kit::titles_of(&node, Default::default()).contains(&canary.to_string());
    let on_disk = || {
        walk(dir.path()).iter().any(|f| {
            std::fs::read(f).is_ok_and(|b| b.windows(canary.len()).any(|w| w == canary.as_bytes()))
        })
    };
    assert!(shown());
    kit::tally_agrees(&node);
    let order = serde_json::json!({
        "author": dalarna.node_id().to_hex(),
        "record": RecordId([1; 16]).to_hex(),
        "reason": "Personen har begärt radering",
    })
    .to_string();
    let first = entry(&stockholm, None, Kind::Erasure, 2, order.clone());
    fake.relay(vec![first.clone()]).await;
    // Stockholm withdraws its order; the withdrawal is signed now but travels late.
    let withdrawal = tombstone_of(&stockholm, &first);
    let signed_ms = Entry::from_wire(withdrawal.entry.clone())
        .unwrap()
        .header()
        .timestamp_ms;
    kit::eventually("the clock past the withdrawal's time", || {
        spindel_node::local::now_ms() > signed_ms
    })
    .await;
    // Skåne's order arrives second: with Stockholm's (as this node knows it), the threshold.
    running
        .shared()
        .writer
        .publish(Kind::Erasure, order.clone(), None)
        .await
        .unwrap();
    assert!(!shown(), "hidden at once");
    kit::tally_agrees(&node);
    let report = node.membership().unwrap();
    assert_eq!(report.erasures[0].state, "erased");
    assert!(
        report.erasures[0].held_until.is_some(),
        "held here until it settles: {:?}",
        report.erasures[0]
    );
    assert!(on_disk(), "held, not erased yet");
    // The withdrawal arrives: signed before Skåne's order, it took Stockholm's vote back
    // first. One order of two: the record shows again, from the held bytes.
    fake.relay(vec![withdrawal.clone()]).await;
    assert!(shown(), "the undone order shows the record again");
    kit::tally_agrees(&node);
    let report = node.membership().unwrap();
    assert_eq!(report.erasures[0].state, "pending");
    assert_eq!(report.erasures[0].held_until, None);
    // Stockholm orders it again: erased, and with a settle time of nothing the running
    // node erases the bytes for good on its own.
    skane.set_erasure_settle(std::time::Duration::ZERO);
    let again = entry(&stockholm, Some(head(&withdrawal)), Kind::Erasure, 3, order);
    fake.relay(vec![again]).await;
    assert!(!shown());
    kit::eventually("the bytes erased for good", || !on_disk()).await;
    assert!(!shown());
    kit::tally_agrees(&node);
    let report = node.membership().unwrap();
    assert_eq!(report.erasures[0].state, "erased");
    assert_eq!(report.erasures[0].held_until, None);
    running.stop().await.unwrap();
}

/// Erasure orders are listed a page at a time (ERASURES_PER_PAGE), pending first, so a
/// network with thousands of orders costs a page's reads per request; erasure orders have a
/// quota of their own, apart from the endorsements and revocations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_orders_are_listed_a_page_at_a_time() {
    use spindel_node::local::ERASURES_PER_PAGE;
    let Chartered {
        dir: _dir,
        skane,
        dalarna,
        stockholm,
        id,
    } = chartered();
    let (mut fake, running) = behind_a_fake(Arc::new(skane), id).await;
    let node = running.shared().node.clone();
    let mut orders = Vec::new();
    let mut prev = None;
    for i in 0..=ERASURES_PER_PAGE {
        let order = serde_json::json!({
            "author": dalarna.node_id().to_hex(),
            "record": RecordId([i as u8; 16]).to_hex(),
            "reason": format!("Begäran nummer {i}"),
        })
        .to_string();
        let e = entry(&stockholm, prev, Kind::Erasure, i as u8, order);
        prev = Some(head(&e));
        orders.push(e);
    }
    let ack = fake.relay(orders).await;
    assert_eq!(
        held(&ack, &stockholm.node_id()),
        ERASURES_PER_PAGE as u64 + 1
    );
    let first = node.membership_page(1).unwrap();
    assert_eq!(first.erasures.len(), ERASURES_PER_PAGE);
    assert_eq!(first.erasures_total, ERASURES_PER_PAGE + 1);
    assert_eq!(first.erasures_pages, 2);
    assert!(first.erasures.iter().all(|e| e.reasons.len() == 1));
    let second = node.membership_page(2).unwrap();
    assert_eq!(second.erasures.len(), 1);
    assert_eq!(second.erasures_page, 2);
    assert_eq!(second.erasures[0].state, "pending");
    assert!(node.membership_page(3).unwrap().erasures.is_empty());
    running.stop().await.unwrap();
}

/// Held payloads whose orders settled are erased a pass of HELD_PURGED_PER_PASS at a time, so
/// a peer's batch waits for one pass at most; the next pass is due at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_erasures_are_erased_a_pass_at_a_time() {
    use spindel_node::store::HELD_PURGED_PER_PASS;
    let Chartered {
        dir: _dir,
        skane,
        dalarna,
        stockholm: _stockholm,
        id,
    } = chartered();
    let skane = Arc::new(skane);
    let (mut fake, running) = behind_a_fake(skane.clone(), id).await;
    let n = HELD_PURGED_PER_PASS + 1;
    let mut batch = Vec::new();
    let mut prev = None;
    for i in 0..n {
        let e = entry(
            &dalarna,
            prev,
            Kind::Method,
            i as u8,
            method(&format!("Post {i}")),
        );
        prev = Some(head(&e));
        batch.push(e);
    }
    fake.relay(std::mem::take(&mut batch)).await;
    // Dalarna orders its own records erased (its live key: each order decides alone).
    for i in 0..n {
        let order = serde_json::json!({
            "author": dalarna.node_id().to_hex(),
            "record": RecordId([i as u8; 16]).to_hex(),
            "reason": "Personerna har begärt radering",
        })
        .to_string();
        let e = entry(&dalarna, prev, Kind::Erasure, 200 - i as u8, order);
        prev = Some(head(&e));
        batch.push(e);
    }
    fake.relay(batch).await;
    let node = running.shared().node.clone();
    assert!(kit::titles_of(&node, Default::default()).is_empty());
    let later =
        spindel_node::local::now_ms() + 10 * spindel_node::store::ERASURE_SETTLE.as_millis() as u64;
    let first = skane.purge_settled_erasures(later).unwrap();
    assert_eq!(first.purged, HELD_PURGED_PER_PASS);
    assert_eq!(first.next_due_ms, Some(later), "the rest is due at once");
    let second = skane.purge_settled_erasures(later).unwrap();
    assert_eq!(second.purged, 1);
    assert_eq!(second.next_due_ms, None);
    running.stop().await.unwrap();
}

/// The author's tombstone of the record `put` made, next in its log.
fn tombstone_of(key: &SecretKey, put: &SyncEntry) -> SyncEntry {
    let entry = Entry::from_wire(put.entry.clone()).unwrap();
    let h = next_header(
        key.node_id(),
        Some(head(put)),
        spindel_node::local::now_ms(),
        entry.header().kind,
        entry.header().record_id,
        None,
    );
    SyncEntry {
        entry: Entry::sign(key, h).to_wire(),
        payload: None,
    }
}

fn head(e: &SyncEntry) -> Head {
    let entry = Entry::from_wire(e.entry.clone()).unwrap();
    Head {
        seq: entry.header().seq,
        hash: entry.hash(),
    }
}

/// The seq an ack says the region holds of `author`.
fn held(ack: &[(NodeId, u64)], author: &NodeId) -> u64 {
    ack.iter().find(|(a, _)| a == author).map_or(0, |(_, s)| *s)
}

/// A backup carries the charter: the restored node runs under it, and its own acts count the
/// same.
#[test]
fn a_backup_carries_the_charter_and_the_restored_node_computes_the_same_members() {
    let Chartered {
        dir,
        skane,
        id,
        dalarna: _dalarna_key,
        ..
    } = chartered();
    let newcomer = SecretKey::generate(&mut rand_core::OsRng);
    let act = spindel_node::local::ActRequest::Endorse {
        node: newcomer.node_id().to_hex(),
        name: "gotland".into(),
        replaces: None,
        upto: None,
    };
    // --upto only with --replaces, and only as far as this node holds the replaced log.
    let upto = |upto: u64| spindel_node::local::ActRequest::Endorse {
        node: newcomer.node_id().to_hex(),
        name: "dalarna".into(),
        replaces: Some(_dalarna_key.node_id().to_hex()),
        upto: Some(upto),
    };
    assert!(
        skane
            .act_record(&spindel_node::local::ActRequest::Endorse {
                node: newcomer.node_id().to_hex(),
                name: "gotland".into(),
                replaces: None,
                upto: Some(1),
            })
            .unwrap_err()
            .to_string()
            .contains("only with --replaces")
    );
    assert!(
        skane
            .act_record(&upto(1))
            .unwrap_err()
            .to_string()
            .contains("up to entry 0 only")
    );
    let (_, json) = skane.act_record(&upto(0)).unwrap();
    assert!(json.contains("\"upto\":0"), "{json}");
    let (kind, json) = skane.act_record(&act).unwrap();
    skane
        .publish(
            kind,
            &json,
            None,
            &mut rand_core::OsRng,
            spindel_node::local::now_ms(),
        )
        .unwrap();
    let before = skane.membership().unwrap();
    let file = dir.path().join("skane.backup");
    spindel_node::backup::write(&skane, &file).unwrap();
    drop(skane);
    let to = dir.path().join("skane-ny");
    spindel_node::backup::restore(&file, &to).unwrap();
    let restored = LocalNode::open(&to).unwrap();
    let after = restored
        .membership()
        .expect("the restored node holds the charter");
    assert_eq!(after.charter, id.to_hex());
    assert_eq!(after, before);
    assert_eq!(after.pending[0].endorsed_by, ["skane"]);
}
