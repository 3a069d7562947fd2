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
    skane
        .publish(Kind::Erasure, &order, None, &mut rand_core::OsRng, now())
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
        !on_disk(&dir.path().join("skane")),
        "the record's bytes are off the disk"
    );
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
    let mut fake = Fake::start(id, vec![]);
    let running = kit::run_shared(
        Arc::new(skane),
        false,
        vec![fake.addr.clone()],
        Limits::default(),
    )
    .await;
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
    let mut fake = Fake::start(id, vec![]);
    let running = kit::run_shared(
        Arc::new(skane),
        false,
        vec![fake.addr.clone()],
        Limits::default(),
    )
    .await;
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
    let mut fake = Fake::start(id, vec![]);
    let running = kit::run_shared(
        Arc::new(skane),
        false,
        vec![fake.addr.clone()],
        Limits::default(),
    )
    .await;
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
    // An order from the record's own region (its live key) takes effect at once: here
    // dalarna orders its own record erased.
    let by_dalarna = entry(&dalarna, Some(head(&record)), Kind::Erasure, 4, order);
    let ack = fake.relay(vec![by_dalarna]).await;
    assert_eq!(held(&ack, &dalarna.node_id()), 2, "its log stays whole");
    assert!(!titles(&node).contains(&"Om en person".to_string()));
    let report = node.membership().unwrap();
    assert_eq!(report.erasures[0].state, "erased");
    // The reasons shown are those of the orders that decided it (here the region's own).
    assert_eq!(report.erasures[0].ordered_by, ["dalarna"]);
    assert_eq!(report.erasures[0].reasons.len(), 1);
    assert_eq!(report.erasures[0].reasons[0].region, "dalarna");
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
