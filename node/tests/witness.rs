//! Dishonest aggregators against real regions over real QUIC: a fake aggregator, speaking the
//! protocol by hand, that withholds one region's entries from another while checkpointing
//! them, that signs two checkpoints with one counter for two regions, and that sends bad
//! checkpoints. The regions find `withheld` and `split-view` (the latter by comparing with each
//! other, as `spindel audit --peer` does), and refuse and count the bad ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[path = "kit/mod.rs"]
mod kit;

use spindel_node::local;
use spindel_node::transport::{FramedRecv, FramedSend, Limits, PeerAddr, Transport};
use spindel_node::{Reads, audit_peer_as};
use spindel_protocol::checkpoint::{
    CHECKPOINT_BYTES_MAX, CHECKPOINT_DOMAIN, Checkpoint, CheckpointHead, SignedCheckpoint,
};
use spindel_protocol::entry::Entry;
use spindel_protocol::sync::{FRAME_BYTES_MAX, Message, PROTOCOL_VERSION, PeerRole};
use spindel_protocol::{NodeId, SecretKey};
use tokio::sync::{Mutex, mpsc};

/// What the fake aggregator knows of one region's session.
struct Peer {
    send: FramedSend,
    /// The region's own entries it pushed: (seq, entry hash).
    heads: BTreeMap<NodeId, (u64, spindel_protocol::Hash)>,
}

/// An aggregator that speaks the protocol by hand: it admits the regions it is told of, acks
/// what they push, relays nothing, and sends whatever checkpoints the test makes it send.
struct Fake {
    key: SecretKey,
    addr: PeerAddr,
    peers: Arc<Mutex<BTreeMap<NodeId, Peer>>>,
    start_ms: u64,
    /// Every frame a region sent, by region (cosignatures among them).
    heard: mpsc::UnboundedReceiver<(NodeId, Message)>,
    _transport: Transport,
}

impl Fake {
    async fn start(admitted: Vec<(NodeId, Option<String>)>) -> Fake {
        let key = SecretKey::generate(&mut rand_core::OsRng);
        let transport =
            Transport::bind(&key, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
        let addr = PeerAddr {
            node_id: key.node_id(),
            host: "127.0.0.1".into(),
            port: transport.local_addr().unwrap().port(),
        };
        let peers: Arc<Mutex<BTreeMap<NodeId, Peer>>> = Arc::default();
        let (tx, heard) = mpsc::unbounded_channel();
        let (t, p) = (transport.clone(), peers.clone());
        tokio::spawn(async move {
            while let Some(incoming) = t.accept().await {
                let Ok((conn, region)) = t.handshake(incoming).await else {
                    continue;
                };
                let (p, tx, admitted) = (p.clone(), tx.clone(), admitted.clone());
                tokio::spawn(async move {
                    let (s, r) = conn.accept_bi().await.unwrap();
                    let mut send = FramedSend::new(s);
                    let mut recv = FramedRecv::new(r, FRAME_BYTES_MAX);
                    assert!(matches!(recv.recv().await, Ok(Some(Message::Hello { .. }))));
                    send.send(&Message::Hello {
                        version: PROTOCOL_VERSION,
                        role: PeerRole::Aggregator,
                        name: "falsk".into(),
                    })
                    .await
                    .unwrap();
                    send.send(&Message::Charter { id: None }).await.unwrap();
                    send.send(&Message::Heads {
                        heads: vec![],
                        admitted,
                    })
                    .await
                    .unwrap();
                    p.lock().await.insert(
                        region,
                        Peer {
                            send,
                            heads: BTreeMap::new(),
                        },
                    );
                    while let Ok(Some(m)) = recv.recv().await {
                        if let Message::Entries { entries } = &m {
                            let mut peers = p.lock().await;
                            let peer = peers.get_mut(&region).unwrap();
                            for e in entries {
                                let entry = Entry::from_wire(e.entry.clone()).unwrap();
                                peer.heads.insert(
                                    entry.header().author,
                                    (entry.header().seq, entry.hash()),
                                );
                            }
                            let heads = peer.heads.iter().map(|(a, (s, _))| (*a, *s)).collect();
                            peer.send.send(&Message::Ack { heads }).await.unwrap();
                        }
                        if tx.send((region, m)).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Fake {
            key,
            addr,
            peers,
            start_ms: local::now_ms(),
            heard,
            _transport: transport,
        }
    }

    /// Waits until `region` has pushed its log up to `seq`; its (seq, hash).
    async fn pushed(&self, region: NodeId, seq: u64) -> (u64, spindel_protocol::Hash) {
        kit::eventually_async("the region's log at the fake aggregator", || async {
            let peers = self.peers.lock().await;
            peers
                .get(&region)
                .and_then(|p| p.heads.get(&region).copied())
                .filter(|(s, _)| *s >= seq)
        })
        .await
    }

    /// A checkpoint of this aggregator with these heads.
    fn sign(
        &self,
        counter: u64,
        heads: &[(NodeId, (u64, spindel_protocol::Hash))],
    ) -> SignedCheckpoint {
        let mut heads: Vec<CheckpointHead> = heads
            .iter()
            .map(|(author, (seq, hash))| CheckpointHead {
                author: *author,
                seq: *seq,
                hash: *hash,
            })
            .collect();
        heads.sort_by_key(|h| h.author);
        // An honest counter is its time in ms: `counter` counts from this fake's start.
        SignedCheckpoint::sign(
            &self.key,
            &Checkpoint {
                aggregator: self.key.node_id(),
                counter: self.start_ms + counter,
                time_ms: self.start_ms + counter,
                heads,
            },
        )
        .signed
    }

    async fn send(&self, region: NodeId, checkpoint: SignedCheckpoint) {
        let mut peers = self.peers.lock().await;
        let peer = peers.get_mut(&region).expect("the region has a session");
        peer.send
            .send(&Message::Checkpoint { checkpoint })
            .await
            .unwrap();
    }

    /// The next cosignature `region` sends, within the deadline.
    async fn cosignature_from(&mut self, region: NodeId) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let (from, m) = self.heard.recv().await.unwrap();
                if from == region && matches!(m, Message::Cosignatures { .. }) {
                    return;
                }
            }
        })
        .await
        .expect("no cosignature within 10 s");
    }
}

/// Two regions pinning the fake aggregator, which admits both; each has published one method.
async fn two_regions(fake_admits: bool) -> (Fake, kit::TestNode, kit::TestNode) {
    let (a, b) = (kit::prepare("skane"), kit::prepare("dalarna"));
    let admitted = if fake_admits {
        vec![(a.id, Some("skane".into())), (b.id, Some("dalarna".into()))]
    } else {
        vec![]
    };
    let fake = Fake::start(admitted).await;
    let a = a.start_listening(vec![fake.addr.clone()]).await;
    let b = b.start_listening(vec![fake.addr.clone()]).await;
    for r in [&a, &b] {
        r.running
            .shared()
            .writer
            .publish(spindel_protocol::Kind::Method, kit::method("Metod"), None)
            .await
            .unwrap();
    }
    (fake, a, b)
}

fn findings(node: &kit::TestNode, kind: &str) -> Vec<spindel_node::local::AuditFinding> {
    node.running
        .shared()
        .node
        .audit(local::now_ms())
        .unwrap()
        .findings
        .into_iter()
        .filter(|f| f.kind == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_that_withholds_a_region_while_checkpointing_it_is_found() {
    let (fake, a, b) = two_regions(true).await;
    let a_head = fake.pushed(a.id, 2).await;
    fake.pushed(b.id, 2).await;
    // Dalarna is sent nothing of Skåne, yet the checkpoint it gets names Skåne's head.
    let b_head = fake.pushed(b.id, 2).await;
    fake.send(b.id, fake.sign(1, &[(a.id, a_head), (b.id, b_head)]))
        .await;
    kit::eventually("dalarna finds skane withheld", || {
        findings(&b, "withheld").iter().any(|f| {
            f.region.as_deref() == Some(a.id.to_hex().as_str())
                && f.aggregator == fake.key.node_id().to_hex()
        })
    })
    .await;
    // Leaving Skåne out of the next checkpoint altogether, while still listing it: the
    // picture lost it, a rollback.
    fake.send(b.id, fake.sign(2, &[(b.id, b_head)])).await;
    kit::eventually("dalarna finds skane left out", || {
        findings(&b, "rollback")
            .iter()
            .any(|f| f.region.as_deref() == Some(a.id.to_hex().as_str()))
    })
    .await;
    // Skåne, sent a checkpoint of only what it holds, finds nothing and cosigns.
    let mut fake = fake;
    fake.send(a.id, fake.sign(3, &[(a.id, a_head)])).await;
    fake.cosignature_from(a.id).await;
    assert!(findings(&a, "withheld").is_empty());
    a.running.stop().await.unwrap();
    b.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_checkpoints_with_one_counter_for_two_regions_are_a_split_view_between_them() {
    let (mut fake, a, b) = two_regions(true).await;
    let a_head = fake.pushed(a.id, 2).await;
    let b_head = fake.pushed(b.id, 2).await;
    // Each region is shown only itself under counter 7: each view holds on its own.
    fake.send(a.id, fake.sign(7, &[(a.id, a_head)])).await;
    fake.cosignature_from(a.id).await;
    fake.send(b.id, fake.sign(7, &[(b.id, b_head)])).await;
    fake.cosignature_from(b.id).await;
    assert!(findings(&a, "split-view").is_empty());
    // Skåne asks Dalarna directly (not through the aggregator), as `audit --peer` does.
    let mut bundle = a
        .running
        .shared()
        .node
        .audit_bundle(local::now_ms())
        .unwrap();
    let peer = b.running.peer_addr().unwrap();
    let (checkpoints, cosignatures) = audit_peer_as(a.local.key(), &peer, Limits::default())
        .await
        .unwrap();
    assert!(!checkpoints.is_empty());
    let bad = bundle.compare_with(&b.id, &checkpoints, &cosignatures, local::now_ms());
    assert_eq!(bad, 0);
    let split: Vec<_> = bundle
        .report
        .findings
        .iter()
        .filter(|f| f.kind == "split-view")
        .collect();
    assert!(!split.is_empty(), "{:?}", bundle.report.findings);
    assert!(
        split
            .iter()
            .all(|f| f.aggregator == fake.key.node_id().to_hex())
    );
    // A key that is not a member gets no evidence.
    let stranger = SecretKey::generate(&mut rand_core::OsRng);
    assert!(
        audit_peer_as(&stranger, &peer, Limits::default())
            .await
            .is_err()
    );
    a.running.stop().await.unwrap();
    b.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_wrong_oversize_and_replayed_checkpoints_are_refused_and_counted() {
    let (mut fake, a, b) = two_regions(true).await;
    let a_head = fake.pushed(a.id, 2).await;
    let good = fake.sign(10, &[(a.id, a_head)]);
    fake.send(a.id, good.clone()).await;
    fake.cosignature_from(a.id).await;
    // The newest again (as a new session offers it): nothing to do, nothing counted. Then a
    // newer one, and the first once more: a replay.
    fake.send(a.id, good.clone()).await;
    fake.send(a.id, fake.sign(11, &[(a.id, a_head)])).await;
    fake.cosignature_from(a.id).await;
    fake.send(a.id, good.clone()).await;
    // Signed by another key in the aggregator's name.
    let mut forged = fake.sign(12, &[(a.id, a_head)]);
    forged.signature = SecretKey::generate(&mut rand_core::OsRng)
        .sign(&forged.body)
        .to_vec();
    fake.send(a.id, forged).await;
    // A genuine checkpoint of another aggregator, relayed by this one.
    let other = SecretKey::generate(&mut rand_core::OsRng);
    let foreign = SignedCheckpoint::sign(
        &other,
        &Checkpoint {
            aggregator: other.node_id(),
            counter: 13,
            time_ms: local::now_ms(),
            heads: vec![],
        },
    )
    .signed;
    fake.send(a.id, foreign).await;
    // Over the size a checkpoint may have (still within one frame).
    let mut body = CHECKPOINT_DOMAIN.to_vec();
    body.push(1);
    body.resize(CHECKPOINT_BYTES_MAX + 100, 0);
    let signature = fake.key.sign(&body).to_vec();
    fake.send(a.id, SignedCheckpoint { body, signature }).await;
    let node = &a.running.shared().node;
    kit::eventually("every bad checkpoint counted", || {
        let r = node.refusals().unwrap();
        [
            "checkpoint_replayed",
            "checkpoint_bad_signature",
            "checkpoint_wrong_aggregator",
            "checkpoint_oversize",
        ]
        .iter()
        .all(|k| r.get(*k).copied() == Some(1))
    })
    .await;
    // Only the good one is kept, and the region's session is still up.
    let report = node.audit(local::now_ms()).unwrap();
    assert_eq!(report.aggregators.len(), 1);
    assert_eq!(report.aggregators[0].checkpoints_kept, 2);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    fake.send(a.id, fake.sign(14, &[(a.id, a_head)])).await;
    fake.cosignature_from(a.id).await;
    a.running.stop().await.unwrap();
    b.running.stop().await.unwrap();
}

/// A region's side against a real aggregator: it takes a region's own cosignature of a
/// checkpoint it signed, once; another key's, one of a checkpoint it never signed, or the same
/// region again for that checkpoint (which it would relay to everyone) are refused and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_takes_one_cosignature_per_region_and_checkpoint() {
    use spindel_protocol::checkpoint::SignedCosignature;
    let region = SecretKey::generate(&mut rand_core::OsRng);
    let agg = kit::aggregator(&[(region.node_id(), Some("skane"))]).await;
    let peer = agg.running.peer_addr().unwrap();
    let mut raw = kit::RawPeer::connect(&region, &peer).await;
    // The aggregator's checkpoint arrives on the session.
    let signed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(Message::Checkpoint { checkpoint }) = raw.recv.recv().await.unwrap() {
                return checkpoint;
            }
        }
    })
    .await
    .expect("a checkpoint within 10 s");
    let cp = signed.verify(Some(&agg.id)).unwrap();
    let send = |c: SignedCosignature| Message::Cosignatures {
        cosignatures: vec![c],
    };
    raw.send
        .send(&send(SignedCosignature::sign(
            &region,
            &cp,
            local::now_ms(),
        )))
        .await
        .unwrap();
    // Re-signed with another time, by another key, or of a checkpoint it did not sign.
    raw.send
        .send(&send(SignedCosignature::sign(
            &region,
            &cp,
            local::now_ms() + 1,
        )))
        .await
        .unwrap();
    let stranger = SecretKey::generate(&mut rand_core::OsRng);
    raw.send
        .send(&send(SignedCosignature::sign(
            &stranger,
            &cp,
            local::now_ms(),
        )))
        .await
        .unwrap();
    let other = SignedCheckpoint::sign(
        &stranger,
        &Checkpoint {
            aggregator: stranger.node_id(),
            counter: cp.checkpoint.counter,
            time_ms: 1,
            heads: vec![],
        },
    );
    raw.send
        .send(&send(SignedCosignature::sign(
            &region,
            &other,
            local::now_ms(),
        )))
        .await
        .unwrap();
    let node = &agg.running.shared().node;
    kit::eventually("three cosignatures refused", || {
        node.refusals().unwrap().get("cosignature_refused").copied() == Some(3)
    })
    .await;
    let report = node.audit(local::now_ms()).unwrap();
    let latest = report.aggregators[0].latest.as_ref().unwrap();
    assert_eq!(latest.counter, cp.checkpoint.counter);
    assert_eq!(latest.cosigned_by.len(), 1);
    assert_eq!(latest.cosigned_by[0].witness, region.node_id().to_hex());
    agg.running.stop().await.unwrap();
}
