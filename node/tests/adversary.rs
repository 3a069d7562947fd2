//! A hostile peer over a real QUIC connection to a running aggregator: forged entries built
//! with the protocol library are refused and counted; oversize and malformed frames close the
//! connection with a protocol error and the aggregator keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

#[path = "kit/mod.rs"]
mod kit;

use spindel_node::local::{self, Role};
use spindel_node::server::NodeHandle;
use spindel_node::transport::{FramedRecv, FramedSend, Limits, PeerAddr, Transport};
use spindel_node::{Reads, RemoteQueryError, remote_query, remote_query_as};
use spindel_protocol::SecretKey;
use spindel_protocol::entry::{Entry, Head, Payload, RecordId, next_header};
use spindel_protocol::record::Kind;
use spindel_protocol::sync::{
    ErrorCode, FRAME_BYTES_MAX, Message, PROTOCOL_VERSION, PeerRole, SyncEntry,
};

/// The aggregator admitting `admit` (names made from their keys), with `limits`.
async fn aggregator_with(
    admit: &[&SecretKey],
    limits: Limits,
) -> (tempfile::TempDir, NodeHandle, PeerAddr) {
    let admit: Vec<_> = admit.iter().map(|k| (k.node_id(), None)).collect();
    let kit::TestNode { dir, running, .. } =
        kit::start_with("nationell", Role::Aggregator, true, vec![], &admit, limits).await;
    let peer = running.peer_addr().unwrap();
    (dir, running, peer)
}

/// A QUIC connection of `key` to `peer` (the transport must live as long as it).
async fn connect(key: &SecretKey, peer: &PeerAddr) -> (Transport, quinn::Connection) {
    let t = Transport::client(key, Limits::default()).unwrap();
    let conn = t.connect(peer).await.unwrap();
    (t, conn)
}

async fn aggregator(admit: &[&SecretKey]) -> (tempfile::TempDir, NodeHandle, PeerAddr) {
    aggregator_with(admit, Limits::default()).await
}

fn entry(key: &SecretKey, head: Option<Head>, ts: u64, rid: u8, title: &str) -> SyncEntry {
    let body = serde_json::json!({"title": title, "summary": "s"}).to_string();
    let payload = Payload::seal(&mut rand_core::OsRng, body);
    let h = next_header(
        key.node_id(),
        head,
        ts,
        Kind::Method,
        RecordId([rid; 16]),
        Some(&payload),
    );
    SyncEntry {
        entry: Entry::sign(key, h).to_wire(),
        payload: Some(payload),
    }
}

fn head_of(e: &SyncEntry) -> Head {
    let entry = Entry::from_wire(e.entry.clone()).unwrap();
    Head {
        seq: entry.header().seq,
        hash: entry.hash(),
    }
}

/// A hostile peer speaking the protocol by hand (the kit's raw peer, with pushes).
use kit::RawPeer as Hostile;

impl Hostile {
    /// Pushes one batch and returns the peer's acked head for `author`.
    async fn push(&mut self, entries: Vec<SyncEntry>, author: spindel_protocol::NodeId) -> u64 {
        self.send.send(&Message::Entries { entries }).await.unwrap();
        loop {
            match self.recv.recv().await.unwrap() {
                Some(Message::Ack { heads }) => {
                    return heads
                        .iter()
                        .find(|(a, _)| *a == author)
                        .map_or(0, |(_, s)| *s);
                }
                // The aggregate flowing back; head hashes, fork proofs and the aggregator's
                // checkpoints after the heads.
                Some(
                    Message::Entries { .. }
                    | Message::Tips { .. }
                    | Message::Forks { .. }
                    | Message::Checkpoint { .. }
                    | Message::Cosignatures { .. },
                ) => {
                    continue;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

fn now() -> u64 {
    local::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_entries_over_quic_are_refused_and_counted() {
    let evil = SecretKey::from_bytes(&[66; 32]);
    let other = SecretKey::from_bytes(&[77; 32]);
    let (_dir, running, peer) = aggregator(&[&evil, &other]).await;
    let me = evil.node_id();
    let mut h = Hostile::connect(&evil, &peer).await;

    let e1 = entry(&evil, None, now(), 1, "Äkta");
    assert_eq!(h.push(vec![e1.clone()], me).await, 1);

    // Bad signature: the header of a valid entry with the signature of another key.
    let mut bad = entry(&evil, Some(head_of(&e1)), now(), 2, "Förfalskad");
    bad.entry.signature = other.sign(&bad.entry.header).to_vec();
    assert_eq!(h.push(vec![bad], me).await, 1);
    // Another author's entry (even an admitted one) pushed by this region.
    let foreign = entry(&other, None, now(), 3, "Någon annans");
    h.push(vec![foreign], me).await;
    // Replay, gap, far-future timestamp.
    assert_eq!(h.push(vec![e1.clone()], me).await, 1);
    let mut gap_head = head_of(&e1);
    gap_head.seq = 4;
    assert_eq!(
        h.push(vec![entry(&evil, Some(gap_head), now(), 4, "Lucka")], me)
            .await,
        1
    );
    let future = entry(&evil, Some(head_of(&e1)), now() + 3_600_000, 5, "Framtid");
    assert_eq!(h.push(vec![future], me).await, 1);
    // A payload that does not match its signed hash.
    let mut swapped = entry(&evil, Some(head_of(&e1)), now(), 6, "Byte");
    swapped.payload = entry(&evil, None, now(), 6, "Bytt").payload; // same length, other bytes
    assert_eq!(h.push(vec![swapped], me).await, 1);
    // Fork: a different signed entry with seq 1. The author is frozen after it.
    let twin = entry(&evil, None, now(), 7, "Tvilling");
    assert_eq!(h.push(vec![twin], me).await, 1);
    let e2 = entry(&evil, Some(head_of(&e1)), now(), 8, "Efter gaffeln");
    assert_eq!(h.push(vec![e2], me).await, 1);

    let store = &running.shared().node;
    let refused = store.refusals().unwrap();
    for reason in [
        "bad_signature",
        "wrong_author",
        "replay",
        "gap",
        "future_timestamp",
        "payload_hash_mismatch",
        "fork",
        "frozen",
    ] {
        assert_eq!(refused.get(reason), Some(&1), "{reason} in {refused:?}");
    }
    let forks = store.forks().unwrap();
    assert_eq!(forks.len(), 1);
    assert_eq!(forks[0].0, me);
    let status = running.shared().node.status().unwrap();
    assert_eq!(status.forks.len(), 1);
    assert!(
        status
            .authors
            .iter()
            .any(|a| a.node_id == me.to_hex() && a.frozen)
    );
    // Only the one honest entry is stored.
    assert_eq!(store.head(&me).unwrap().unwrap().seq, 1);
    assert!(store.head(&other.node_id()).unwrap().is_none());
    running.stop().await.unwrap();
}

async fn closed_with(conn: &quinn::Connection) -> Option<u64> {
    match tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .ok()?
    {
        quinn::ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_malformed_frames_disconnect_without_harm() {
    let region = SecretKey::from_bytes(&[11; 32]);
    let (_dir, running, peer) = aggregator(&[&region]).await;
    let t = Transport::client(&region, Limits::default()).unwrap();

    // A length prefix over the cap: closed before any body is buffered.
    let conn = t.connect(&peer).await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&((FRAME_BYTES_MAX as u32) + 1).to_be_bytes())
        .await
        .unwrap();
    assert_eq!(
        closed_with(&conn).await,
        Some(u64::from(ErrorCode::Protocol.code()))
    );

    // A frame of garbage.
    let conn = t.connect(&peer).await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0, 0, 0, 5, 0xff, 0xfe, 0xfd, 0xfc, 0xfb])
        .await
        .unwrap();
    assert_eq!(
        closed_with(&conn).await,
        Some(u64::from(ErrorCode::Protocol.code()))
    );

    // Garbage in the middle of a session.
    let conn = t.connect(&peer).await.unwrap();
    let (s, r) = conn.open_bi().await.unwrap();
    let mut send = FramedSend::new(s);
    let mut recv = FramedRecv::new(r, FRAME_BYTES_MAX);
    send.send(&Message::Hello {
        version: PROTOCOL_VERSION,
        role: PeerRole::Region,
        name: "x".into(),
    })
    .await
    .unwrap();
    recv.recv().await.unwrap();
    send.send(&Message::Ack { heads: vec![] }).await.unwrap();
    assert_eq!(
        closed_with(&conn).await,
        Some(u64::from(ErrorCode::Protocol.code()))
    );

    // A node of the previous protocol version (it cannot decode the kinds added since) is
    // refused at its hello, by name, before any entry could reach it (the heads sent in the
    // first flight, to a key the aggregator admits, carry none).
    let conn = t.connect(&peer).await.unwrap();
    let (s, r) = conn.open_bi().await.unwrap();
    let mut send = FramedSend::new(s);
    let mut recv = FramedRecv::new(r, FRAME_BYTES_MAX);
    send.send(&Message::Hello {
        version: PROTOCOL_VERSION - 1,
        role: PeerRole::Region,
        name: "x".into(),
    })
    .await
    .unwrap();
    let mut said = Vec::new();
    while let Ok(Some(m)) = recv.recv().await {
        said.push(m);
    }
    let why = format!(
        "peer speaks version {}, this node {PROTOCOL_VERSION}",
        PROTOCOL_VERSION - 1
    );
    assert!(
        said.iter().any(
            |m| matches!(m, Message::Error { code: ErrorCode::Version, message } if *message == why)
        ),
        "{said:?}"
    );
    assert!(
        !said
            .iter()
            .any(|m| matches!(m, Message::Entries { .. } | Message::Wanted { .. })),
        "{said:?}"
    );
    assert_eq!(
        closed_with(&conn).await,
        Some(u64::from(ErrorCode::Version.code()))
    );

    // The aggregator is unharmed and still answers (its member; a throwaway key is refused).
    let answer = remote_query_as(&region, &peer, Default::default(), Limits::default())
        .await
        .unwrap();
    assert!(answer.contains("records"));
    let refused = remote_query(&peer, Default::default(), Limits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, RemoteQueryError::Refused(why) if why.contains("member nodes only")),
        "{refused}"
    );
    running.stop().await.unwrap();
}

/// A node that dials a listening region and calls itself an aggregator is not that region's
/// aggregator: it is refused right after its hello, learns no heads, and nothing it sends
/// enters the region's store (neither entries in nor the log out); its admission lists (in its
/// heads, or on their own) remove nobody its pinned aggregator admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_that_is_not_a_pinned_aggregator_gets_nothing_from_a_region() {
    let kit::TestNode {
        dir: _dir,
        running: region,
        ..
    } = kit::start("skane", Role::Region, true, vec![], &[]).await;
    let peer = region.peer_addr().unwrap();
    // A region its aggregator admitted: a stranger's list must not remove it.
    let pinned = SecretKey::from_bytes(&[77; 32]).node_id();
    let victim = SecretKey::from_bytes(&[66; 32]).node_id();
    region
        .shared()
        .writer
        .take_admissions(pinned, vec![(victim, Some("dalarna".into()))])
        .await
        .unwrap();

    let rogue = SecretKey::from_bytes(&[88; 32]);
    let fake = SecretKey::from_bytes(&[99; 32]);
    let (_t, conn) = connect(&rogue, &peer).await;
    let (s, r) = conn.open_bi().await.unwrap();
    let mut send = FramedSend::new(s);
    let mut recv = FramedRecv::new(r, FRAME_BYTES_MAX);
    send.send(&Message::Hello {
        version: PROTOCOL_VERSION,
        role: PeerRole::Aggregator,
        name: "elak".into(),
    })
    .await
    .unwrap();
    let _ = send
        .send(&Message::Heads {
            heads: vec![],
            admitted: vec![(fake.node_id(), Some("falsk".into()))],
        })
        .await;
    let _ = send
        .send(&Message::Entries {
            entries: vec![entry(&fake, None, now(), 1, "Påhittad region")],
        })
        .await;
    let _ = send.send(&Message::Admitted { admitted: vec![] }).await;
    // Everything the region says: its hello, then the refusal; never its heads or entries.
    let mut said = Vec::new();
    while let Ok(Some(m)) = recv.recv().await {
        said.push(m);
    }
    assert!(
        matches!(said.first(), Some(Message::Hello { .. })),
        "{said:?}"
    );
    assert!(
        said.iter().any(|m| matches!(
            m,
            Message::Error {
                code: ErrorCode::NotAdmitted,
                ..
            }
        )),
        "{said:?}"
    );
    assert!(
        !said
            .iter()
            .any(|m| matches!(m, Message::Entries { .. } | Message::Wanted { .. })),
        "the region told a stranger its log: {said:?}"
    );
    let store = &region.shared().node;
    assert!(store.head(&fake.node_id()).unwrap().is_none());
    assert!(
        !store
            .author(&fake.node_id())
            .unwrap()
            .is_some_and(|m| m.admitted),
        "the fake region was admitted"
    );
    let kept = store.author(&victim).unwrap().unwrap();
    assert!(
        kept.admitted,
        "a stranger's list removed an admitted region"
    );
    assert_eq!(kept.label(), Some("dalarna"));
    region.stop().await.unwrap();
}

/// A method entry of `key` whose payload is `payload` (the bytes of any record).
fn entry_with_payload(
    key: &SecretKey,
    head: Option<Head>,
    rid: u8,
    payload: Vec<u8>,
    send_payload: bool,
) -> SyncEntry {
    let h = next_header(
        key.node_id(),
        head,
        now(),
        Kind::Method,
        RecordId([rid; 16]),
        Some(&payload),
    );
    SyncEntry {
        entry: Entry::sign(key, h).to_wire(),
        payload: send_payload.then_some(payload),
    }
}

fn tombstone(key: &SecretKey, head: Option<Head>, rid: u8) -> SyncEntry {
    let h = next_header(
        key.node_id(),
        head,
        now(),
        Kind::Method,
        RecordId([rid; 16]),
        None,
    );
    SyncEntry {
        entry: Entry::sign(key, h).to_wire(),
        payload: None,
    }
}

/// Headers are public, so an admitted region can name another region's payload hash. Its
/// tombstones purge its own payloads only: neither a header-only put naming the victim's hash
/// nor a full put of the victim's exact bytes lets it erase the victim's record anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_purges_only_its_own_authors_payloads() {
    let victim = SecretKey::from_bytes(&[21; 32]);
    let evil = SecretKey::from_bytes(&[22; 32]);
    let (_dir, running, peer) = aggregator(&[&victim, &evil]).await;
    let mut v = Hostile::connect(&victim, &peer).await;
    let real = entry(&victim, None, now(), 1, "Offrets metod");
    let victim_bytes = real.payload.clone().unwrap();
    assert_eq!(v.push(vec![real.clone()], victim.node_id()).await, 1);

    let mut e = Hostile::connect(&evil, &peer).await;
    // 1. A header naming the victim's payload hash, without the payload; then its tombstone.
    let named = entry_with_payload(&evil, None, 1, victim_bytes.clone(), false);
    let t1 = tombstone(&evil, Some(head_of(&named)), 1);
    assert_eq!(
        e.push(vec![named.clone(), t1.clone()], evil.node_id())
            .await,
        2
    );
    // 2. The victim's exact payload bytes as its own full put; then its tombstone.
    let copied = entry_with_payload(&evil, Some(head_of(&t1)), 2, victim_bytes.clone(), true);
    let t2 = tombstone(&evil, Some(head_of(&copied)), 2);
    assert_eq!(e.push(vec![copied, t2], evil.node_id()).await, 4);

    let node = &running.shared().node;
    let store = node;
    let rid = RecordId([1; 16]);
    assert_eq!(
        store.payload_at(&victim.node_id(), &rid, 1).unwrap(),
        Some(victim_bytes),
        "the victim's payload was purged by another author's tombstone"
    );
    let page = node.query(&Default::default()).unwrap();
    assert!(
        page.records
            .iter()
            .any(|r| r.author == victim.node_id().to_hex() && r.data["title"] == "Offrets metod"),
        "the victim's record is hidden: {page:?}"
    );
    // And it still travels to regions with its payload.
    let sent = store.entries_from(&victim.node_id(), 1, 10).unwrap();
    assert!(sent[0].payload.is_some());
    running.stop().await.unwrap();
}

/// A put that arrived without its payload (stripped on the way) is completed when the same
/// signed entry arrives with it, while it is still the record's current version; a superseded
/// version is never completed, and no record stays hidden for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripped_put_is_completed_when_its_payload_arrives() {
    let region = SecretKey::from_bytes(&[31; 32]);
    let (_dir, running, peer) = aggregator(&[&region]).await;
    let me = region.node_id();
    let mut h = Hostile::connect(&region, &peer).await;
    let full = entry(&region, None, now(), 1, "Gömd metod");
    let mut stripped = full.clone();
    stripped.payload = None;
    assert_eq!(h.push(vec![stripped], me).await, 1);
    let node = &running.shared().node;
    let visible = |title: &str| {
        node.query(&Default::default())
            .unwrap()
            .records
            .iter()
            .any(|r| r.data["title"] == title)
    };
    assert!(!visible("Gömd metod"));
    // The same entry with its payload: completed, not refused as a replay.
    assert_eq!(h.push(vec![full.clone()], me).await, 1);
    assert!(visible("Gömd metod"), "the stripped record stayed hidden");
    assert_eq!(
        node.query(&spindel_node::query::Query {
            text: Some("gömd".into()),
            ..Default::default()
        })
        .unwrap()
        .records
        .len(),
        1,
        "the completed record is not searchable"
    );
    // A superseded version is never completed: v2 arrives stripped, then v1 with payload.
    let v2 = entry(&region, Some(head_of(&full)), now(), 1, "Version två");
    let mut v2_stripped = v2.clone();
    v2_stripped.payload = None;
    assert_eq!(h.push(vec![v2_stripped], me).await, 2);
    assert_eq!(h.push(vec![full], me).await, 2);
    assert!(!visible("Gömd metod"), "a superseded version came back");
    assert_eq!(h.push(vec![v2], me).await, 2);
    assert!(visible("Version två"));
    running.stop().await.unwrap();
}

/// Fork proofs are checked and kept only for authors a node takes entries of: anyone can make
/// a "fork" of a throwaway key, so those are dropped (counted); a real one freezes its author.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_proofs_of_made_up_keys_are_dropped_and_real_ones_freeze() {
    let region = SecretKey::from_bytes(&[41; 32]);
    let (_dir, running, peer) = aggregator(&[&region]).await;
    let mut h = Hostile::connect(&region, &peer).await;
    let twins = |k: &SecretKey| {
        let a = entry(k, None, now(), 1, "Ett");
        let b = entry(k, None, now() + 1, 2, "Två");
        (a.entry, b.entry)
    };
    let junk: Vec<_> = (0..50u8)
        .map(|i| twins(&SecretKey::from_bytes(&[100 + i; 32])))
        .collect();
    h.send.send(&Message::Forks { proofs: junk }).await.unwrap();
    // Then a real proof of the region's own key (it signed two seq-1 entries).
    h.send
        .send(&Message::Forks {
            proofs: vec![twins(&region)],
        })
        .await
        .unwrap();
    // The session handles messages in order: the ack of a batch sent after the proofs says
    // both were dealt with (the batch itself is refused: the region is frozen by then).
    h.push(
        vec![entry(&region, None, now(), 3, "Efter beviset")],
        region.node_id(),
    )
    .await;
    let store = &running.shared().node;
    let forks = store.forks().unwrap();
    assert_eq!(forks.len(), 1, "made-up keys were kept: {}", forks.len());
    assert_eq!(forks[0].0, region.node_id());
    assert!(store.author(&region.node_id()).unwrap().unwrap().frozen);
    assert_eq!(
        store.refusals().unwrap().get("fork_proof_unknown_author"),
        Some(&50)
    );
    running.stop().await.unwrap();
}

/// A profile entry of `key` (record `rid`), or its tombstone when `body` is `None`.
fn profile_entry(key: &SecretKey, head: Option<Head>, rid: u8, body: Option<&str>) -> SyncEntry {
    let payload = body.map(|b| Payload::seal(&mut rand_core::OsRng, b.to_string()));
    let h = next_header(
        key.node_id(),
        head,
        now(),
        Kind::Profile,
        RecordId([rid; 16]),
        payload.as_deref(),
    );
    SyncEntry {
        entry: Entry::sign(key, h).to_wire(),
        payload,
    }
}

/// The profile rules hold at ingest on every node, not only where a region publishes: an
/// admitted region that signs a second profile, or a tombstone of its profile, gets neither
/// accepted; both are counted. Its profile's claimed names never become its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_cannot_sign_a_second_profile_or_delete_its_profile() {
    let evil = SecretKey::from_bytes(&[41; 32]);
    let (_dir, running, peer) = aggregator(&[&evil]).await;
    let me = evil.node_id();
    let mut h = Hostile::connect(&evil, &peer).await;
    let claim = r#"{"display_name":"Social ekonomi Dalarna","name":"dalarna"}"#;
    let first = profile_entry(&evil, None, 1, Some(claim));
    assert_eq!(h.push(vec![first.clone()], me).await, 1);
    let second = profile_entry(&evil, Some(head_of(&first)), 2, Some(claim));
    assert_eq!(
        h.push(vec![second], me).await,
        1,
        "a second profile was accepted"
    );
    let gone = profile_entry(&evil, Some(head_of(&first)), 1, None);
    assert_eq!(
        h.push(vec![gone], me).await,
        1,
        "the profile's tombstone was accepted"
    );
    // A new version of its one profile is fine.
    let edit = profile_entry(
        &evil,
        Some(head_of(&first)),
        1,
        Some(r#"{"display_name":"Ny text"}"#),
    );
    assert_eq!(h.push(vec![edit], me).await, 2);

    let status = running.shared().node.status().unwrap();
    assert_eq!(status.refused.get("second_profile"), Some(&1), "{status:?}");
    assert_eq!(
        status.refused.get("profile_deleted"),
        Some(&1),
        "{status:?}"
    );
    let author = status
        .authors
        .iter()
        .find(|a| a.node_id == me.to_hex())
        .unwrap();
    // Admitted without --name: a name made from its key, never the profile's "dalarna".
    assert_eq!(
        author.name.as_deref(),
        Some(format!("region-{}", &me.to_hex()[..8]).as_str())
    );
    let q = spindel_node::query::Query {
        region: Some("dalarna".into()),
        ..Default::default()
    };
    // No region here is called "dalarna": the query says so instead of finding its records.
    assert!(matches!(
        running.shared().node.query(&q),
        Err(spindel_node::ReadError::Question(
            spindel_node::query::QueryError::UnknownRegion(..)
        ))
    ));
    running.stop().await.unwrap();
}

/// A handshake that never completes holds up nobody (issue 9): a peer whose first flight
/// reaches the aggregator and then goes silent (a relay passes its first datagram and drops
/// everything after) leaves the handshake pending for the whole handshake timeout, and an
/// admitted region connecting meanwhile is served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_does_not_hold_up_the_others() {
    let region = SecretKey::from_bytes(&[51; 32]);
    // Long idle and handshake timeouts: a stalled handshake stays pending for 10 s.
    let limits = Limits {
        idle_timeout_ms: 30_000,
        handshake_timeout_ms: 10_000,
        ..Limits::default()
    };
    let (_dir, running, peer) = aggregator_with(&[&region], limits).await;
    let id = peer.node_id;
    let agg_addr = running.bound.listen.unwrap();

    // The relay: the first datagram from the client goes to the aggregator; nothing else
    // passes either way.
    let relay = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let (first_sent, first_flight) = tokio::sync::oneshot::channel();
    let forwarded = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let (n, _) = relay.recv_from(&mut buf).await.unwrap();
        relay.send_to(&buf[..n], agg_addr).await.unwrap();
        let _ = first_sent.send(());
        loop {
            if relay.recv_from(&mut buf).await.is_err() {
                break;
            }
        }
    });
    let staller = SecretKey::from_bytes(&[52; 32]);
    let stalled_peer: PeerAddr = format!("{id}@{relay_addr}").parse().unwrap();
    let stalled = tokio::spawn(async move {
        let t = Transport::client(&staller, Limits::default()).unwrap();
        let _ = t.connect(&stalled_peer).await;
    });
    // Once the first flight is on its way to the aggregator, connect as the admitted region.
    first_flight.await.unwrap();
    let started = std::time::Instant::now();
    let _h = tokio::time::timeout(Duration::from_secs(5), Hostile::connect(&region, &peer))
        .await
        .expect("the admitted region waited behind a stalled handshake");
    assert!(started.elapsed() < Duration::from_secs(5));
    stalled.abort();
    forwarded.abort();
    running.stop().await.unwrap();
}

/// One key holds at most `PEER_CONNECTIONS_MAX` connections at once (issue 9); one more is
/// closed with a protocol error, and a slot comes back when a connection ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_holds_a_bounded_number_of_connections() {
    use spindel_node::PEER_CONNECTIONS_MAX;
    let key = SecretKey::from_bytes(&[61; 32]);
    let (_dir, running, peer) = aggregator(&[&key]).await;
    let t = Transport::client(&key, Limits::default()).unwrap();
    let mut conns = Vec::new();
    for _ in 0..PEER_CONNECTIONS_MAX {
        let c = t.connect(&peer).await.unwrap();
        // Served: a stream opens and answers.
        let (s, r) = c.open_bi().await.unwrap();
        let (mut s, mut r) = (FramedSend::new(s), FramedRecv::new(r, FRAME_BYTES_MAX));
        s.send(&Message::Query(Default::default())).await.unwrap();
        assert!(matches!(
            r.recv().await.unwrap(),
            Some(Message::QueryResult { .. })
        ));
        conns.push(c);
    }
    let extra = t.connect(&peer).await.unwrap();
    assert_eq!(
        closed_with(&extra).await,
        Some(u64::from(ErrorCode::Protocol.code())),
        "a connection over the per-key limit was served"
    );
    // One ends: a new one is served again.
    conns.pop().unwrap().close(0u32.into(), b"done");
    let again = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            // Until the aggregator has counted the closed one gone, a new connection is
            // refused ("too many connections"), at the handshake or at its first stream.
            let Ok(c) = t.connect(&peer).await else {
                continue;
            };
            let Ok((s, r)) = c.open_bi().await else {
                continue;
            };
            let (mut s, mut r) = (FramedSend::new(s), FramedRecv::new(r, FRAME_BYTES_MAX));
            if s.send(&Message::Query(Default::default())).await.is_ok()
                && matches!(r.recv().await, Ok(Some(Message::QueryResult { .. })))
            {
                break;
            }
        }
    })
    .await;
    assert!(again.is_ok(), "the slot never came back");
    running.stop().await.unwrap();
}

/// At most `connections_max` connections are open at once, whoever holds them (issue 9): one
/// more is refused before its handshake, and the node serves the ones it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_holds_at_most_its_connection_limit() {
    let keys: Vec<SecretKey> = (70..73).map(|n| SecretKey::from_bytes(&[n; 32])).collect();
    let refs: Vec<&SecretKey> = keys.iter().collect();
    let limits = Limits {
        connections_max: 2,
        ..Limits::default()
    };
    let (_dir, running, peer) = aggregator_with(&refs, limits).await;
    let mut held = Vec::new();
    for k in &keys[..2] {
        let (t, c) = connect(k, &peer).await;
        held.push((t, c));
    }
    let t = Transport::client(&keys[2], Limits::default()).unwrap();
    assert!(
        t.connect(&peer).await.is_err(),
        "a connection over the limit was accepted"
    );
    for (_, c) in &held {
        assert!(c.close_reason().is_none(), "a held connection was dropped");
    }
    running.stop().await.unwrap();
}

/// A stream whose first frame never arrives whole is not waited on for ever (issue 9): a peer
/// that sends a length prefix announcing the largest frame and then nothing has its connection
/// closed at the first-frame deadline; the node goes on serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_frame_that_never_arrives_is_not_waited_on() {
    let key = SecretKey::from_bytes(&[81; 32]);
    let other = SecretKey::from_bytes(&[82; 32]);
    let limits = Limits {
        first_frame_timeout_ms: 500,
        ..Limits::default()
    };
    let (_dir, running, peer) = aggregator_with(&[&key, &other], limits).await;
    let (_t, conn) = connect(&key, &peer).await;
    let (mut s, _r) = conn.open_bi().await.unwrap();
    s.write_all(&(FRAME_BYTES_MAX as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&[0u8; 100]).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        closed_with(&conn).await,
        Some(u64::from(ErrorCode::Protocol.code())),
        "the stalled stream was not closed"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Others are served meanwhile and after.
    let _h = Hostile::connect(&other, &peer).await;
    running.stop().await.unwrap();
}

/// A key that is not a member gets one refusal per connection (issue 9): its query is
/// answered with the refusal and the connection then ends, so each further try costs it a new
/// handshake, bounded by the connection limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_gets_one_refusal_per_connection() {
    let member = SecretKey::from_bytes(&[91; 32]);
    let stranger = SecretKey::from_bytes(&[92; 32]);
    // The node waits at most this long for the stranger to read its refusal and go.
    let limits = Limits {
        first_frame_timeout_ms: 1_000,
        ..Limits::default()
    };
    let (_dir, running, peer) = aggregator_with(&[&member], limits).await;
    let (_t, conn) = connect(&stranger, &peer).await;
    let (s, r) = conn.open_bi().await.unwrap();
    let (mut s, mut r) = (FramedSend::new(s), FramedRecv::new(r, FRAME_BYTES_MAX));
    s.send(&Message::Query(Default::default())).await.unwrap();
    match r.recv().await.unwrap() {
        Some(Message::QueryResult { json: Err(e) }) => assert!(e.contains("member"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop((s, r));
    // The same connection serves no second query.
    let second = async {
        let (s, r) = conn.open_bi().await.ok()?;
        let (mut s, mut r) = (FramedSend::new(s), FramedRecv::new(r, FRAME_BYTES_MAX));
        s.send(&Message::Query(Default::default())).await.ok()?;
        r.recv().await.ok().flatten()
    };
    let answered = tokio::time::timeout(Duration::from_secs(15), second)
        .await
        .expect("the connection neither answered nor closed");
    assert!(
        answered.is_none(),
        "a second query was answered: {answered:?}"
    );
    // A member is answered as often as it asks.
    for _ in 0..2 {
        let answer = remote_query_as(&member, &peer, Default::default(), Limits::default())
            .await
            .unwrap();
        assert!(answer.contains("records"), "{answer}");
    }
    running.stop().await.unwrap();
}
