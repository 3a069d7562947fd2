//! The node crate's test kit: nodes and small networks on this machine (real sled stores in
//! temporary directories, real QUIC on 127.0.0.1) for the integration tests, the adversary
//! tests and the benchmarks (`#[path = "../tests/kit/mod.rs"] mod kit;`). Every wait is for a
//! condition, with a deadline.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use spindel_node::Reads;
use spindel_node::local::{self, LocalNode, Role};
use spindel_node::query::Query;
use spindel_node::server::{NodeHandle, NodeSettings, PreBound};
use spindel_node::transport::{FramedRecv, FramedSend, Limits, PeerAddr, Transport};
use spindel_protocol::sync::{FRAME_BYTES_MAX, Message, PROTOCOL_VERSION, PeerRole};
use spindel_protocol::{NodeId, SecretKey};

/// A node running in a temporary directory of its own (removed when it is dropped).
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub running: NodeHandle,
    pub id: NodeId,
    /// The node itself, as only code outside the node crate can hold it beside a running
    /// node: for its key, and for tests that write past the writer (fault injection).
    pub local: std::sync::Arc<LocalNode>,
}

impl TestNode {
    pub fn node(&self) -> &spindel_node::ReadModel {
        &self.running.shared().node
    }

    /// Where peers dial it (it listens).
    pub fn addr(&self) -> PeerAddr {
        self.running.peer_addr().unwrap()
    }

    /// The titles of the records a query finds here.
    pub fn titles(&self, q: Query) -> Vec<String> {
        titles_of(self.node(), q)
    }
}

/// The titles of the records a query finds at `node` (at most 1000).
pub fn titles_of(node: &spindel_node::ReadModel, q: Query) -> Vec<String> {
    node.query(&Query {
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

/// The tally's counts (the facets of an empty search) agree with the records the query pages
/// through, read from sled: in all and per kind.
pub fn tally_agrees(node: &spindel_node::ReadModel) {
    let facets = node.facets(&Query::default()).unwrap();
    let mut by_kind: std::collections::BTreeMap<String, u64> = Default::default();
    let mut cursor = None;
    loop {
        let page = node
            .query(&Query {
                limit: Some(1000),
                cursor,
                ..Query::default()
            })
            .unwrap();
        for r in &page.records {
            *by_kind.entry(r.kind.as_str().to_string()).or_default() += 1;
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let counted: std::collections::BTreeMap<String, u64> = facets
        .kinds
        .iter()
        .map(|k| (k.value.clone(), k.count))
        .collect();
    assert_eq!(counted, by_kind, "the tally's kinds against the records");
    assert_eq!(facets.total, by_kind.values().sum::<u64>());
}

/// A new node `name` of `role` in `parent/name` that admits `admit` (with a name, or one made
/// from the key).
pub fn new_node(
    parent: &Path,
    name: &str,
    role: Role,
    admit: &[(NodeId, Option<&str>)],
) -> LocalNode {
    let node =
        local::init_open(&parent.join(name), name, role, None, &mut rand_core::OsRng).unwrap();
    for (id, admitted) in admit {
        node.allow(*id, admitted.map(str::to_string)).unwrap();
    }
    node
}

/// Starts `node` on loopback (listening when `listen`), dialing `aggregators`.
pub async fn run(
    node: LocalNode,
    listen: bool,
    aggregators: Vec<PeerAddr>,
    limits: Limits,
) -> NodeHandle {
    run_shared(std::sync::Arc::new(node), listen, aggregators, limits).await
}

/// [`run`] for a node the test holds too; assembled as `spindel run` assembles one.
pub async fn run_shared(
    node: std::sync::Arc<LocalNode>,
    listen: bool,
    aggregators: Vec<PeerAddr>,
    limits: Limits,
) -> NodeHandle {
    let settings = NodeSettings {
        listen: listen.then(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        aggregators,
        limits,
        ..NodeSettings::default()
    };
    NodeHandle::start_with(node, settings, PreBound::default())
        .await
        .unwrap()
}

/// A new node started in a temporary directory of its own.
pub async fn start(
    name: &str,
    role: Role,
    listen: bool,
    aggregators: Vec<PeerAddr>,
    admit: &[(NodeId, Option<&str>)],
) -> TestNode {
    start_with(name, role, listen, aggregators, admit, Limits::default()).await
}

/// [`start`] with other limits.
pub async fn start_with(
    name: &str,
    role: Role,
    listen: bool,
    aggregators: Vec<PeerAddr>,
    admit: &[(NodeId, Option<&str>)],
    limits: Limits,
) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let node = new_node(dir.path(), name, role, admit);
    let id = node.node_id();
    let local = std::sync::Arc::new(node);
    let running = run_shared(local.clone(), listen, aggregators, limits).await;
    TestNode {
        dir,
        running,
        id,
        local,
    }
}

/// The national aggregator "nationell", listening, admitting `admit`.
pub async fn aggregator(admit: &[(NodeId, Option<&str>)]) -> TestNode {
    start("nationell", Role::Aggregator, true, vec![], admit).await
}

/// A region made (its key known) before it starts, so an aggregator can admit it first.
pub struct Prepared {
    dir: tempfile::TempDir,
    pub path: PathBuf,
    pub id: NodeId,
    pub name: String,
}

/// A new region `name`, not running yet.
pub fn prepare(name: &str) -> Prepared {
    let dir = tempfile::tempdir().unwrap();
    let id = new_node(dir.path(), name, Role::Region, &[]).node_id();
    Prepared {
        path: dir.path().join(name),
        dir,
        id,
        name: name.to_string(),
    }
}

impl Prepared {
    /// How an aggregator admits it: under its own name.
    pub fn admission(&self) -> (NodeId, Option<&str>) {
        (self.id, Some(self.name.as_str()))
    }

    /// Starts it, dialing `aggregators`.
    pub async fn run(self, aggregators: Vec<PeerAddr>) -> TestNode {
        self.start(false, aggregators).await
    }

    /// Starts it, dialing `aggregators` and listening (other regions may reach it).
    pub async fn start_listening(self, aggregators: Vec<PeerAddr>) -> TestNode {
        self.start(true, aggregators).await
    }

    async fn start(self, listen: bool, aggregators: Vec<PeerAddr>) -> TestNode {
        let node = LocalNode::open(&self.path).unwrap();
        let local = std::sync::Arc::new(node);
        let running = run_shared(local.clone(), listen, aggregators, Limits::default()).await;
        TestNode {
            dir: self.dir,
            running,
            id: self.id,
            local,
        }
    }
}

/// The aggregator "nationell" admitting each of `regions` under its name.
pub async fn aggregator_of(regions: &[&Prepared]) -> TestNode {
    let admit: Vec<_> = regions.iter().map(|r| r.admission()).collect();
    aggregator(&admit).await
}

/// Waits (up to 20 s) until `cond` holds.
pub async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    eventually_within(Duration::from_secs(20), what, cond).await
}

/// Waits until `cond` holds, checking every 20 ms; fails the test after `within`.
pub async fn eventually_within(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    poll_until(within, what, || std::future::ready(cond().then_some(()))).await
}

/// Waits (up to 20 s) until `probe` gives a value, and returns it.
pub async fn eventually_async<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    probe: impl FnMut() -> F,
) -> T {
    poll_until(Duration::from_secs(20), what, probe).await
}

/// Asks `probe` every 20 ms until it gives a value (the condition waited for, not a guess at
/// how long it takes); fails the test after `within`.
async fn poll_until<T, F: std::future::Future<Output = Option<T>>>(
    within: Duration,
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A method record's JSON.
pub fn method(title: &str) -> String {
    serde_json::json!({"title": title, "summary": "Erfarenheter från föreningar"}).to_string()
}

/// A peer that speaks the sync protocol by hand over a real QUIC connection (adversary tests,
/// the raw ingest benchmark): it has sent `Hello` and its (empty) heads and read the node's.
pub struct RawPeer {
    pub send: FramedSend,
    pub recv: FramedRecv,
    pub conn: quinn::Connection,
    pub transport: Transport,
}

impl RawPeer {
    /// Opens a session as a region with no entries.
    pub async fn connect(key: &SecretKey, peer: &PeerAddr) -> RawPeer {
        RawPeer::connect_as(key, peer, PeerRole::Region, vec![]).await
    }

    /// Opens a session claiming `role`, announcing `admitted` authors with its heads.
    pub async fn connect_as(
        key: &SecretKey,
        peer: &PeerAddr,
        role: PeerRole,
        admitted: Vec<(NodeId, Option<String>)>,
    ) -> RawPeer {
        let transport = Transport::client(key, Limits::default()).unwrap();
        let conn = transport.connect(peer).await.unwrap();
        let (s, r) = conn.open_bi().await.unwrap();
        let mut p = RawPeer {
            send: FramedSend::new(s),
            recv: FramedRecv::new(r, FRAME_BYTES_MAX),
            conn,
            transport,
        };
        p.send
            .send(&Message::Hello {
                version: PROTOCOL_VERSION,
                role,
                name: "elak".into(),
            })
            .await
            .unwrap();
        assert!(matches!(
            p.recv.recv().await.unwrap(),
            Some(Message::Hello { .. })
        ));
        // Without a charter, like the nodes of these tests.
        p.send.send(&Message::Charter { id: None }).await.unwrap();
        assert_eq!(
            p.recv.recv().await.unwrap(),
            Some(Message::Charter { id: None })
        );
        p.send
            .send(&Message::Heads {
                heads: vec![],
                admitted,
            })
            .await
            .unwrap();
        assert!(matches!(
            p.recv.recv().await.unwrap(),
            Some(Message::Heads { .. })
        ));
        p
    }
}
