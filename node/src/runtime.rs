//! The running node (`spindel run`): QUIC listener, dialers to aggregators, sync sessions,
//! live push, remote queries, and the local control channel.
//!
//! Every connection runs one sync session ([`spindel_protocol::sync::Session`]) on one
//! bidirectional stream opened by the dialer; a query client opens one stream per query. A
//! dedicated reader task per stream is the only thing that awaits the socket, so no frame is
//! ever cut by a cancelled read. Store work (sled, tantivy) runs on the blocking pool.
//!
//! New heads (a local publish, or entries accepted from a peer) go out on a broadcast channel;
//! every live session hears them and pushes what its peer lacks at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use spindel_protocol::entry::{Entry, RecordId};
use spindel_protocol::sync::{
    BATCH_BYTES_MAX, ErrorCode, Message, Output, PeerRole, QueryRequest, Session, SyncEntry,
};
use spindel_protocol::{NodeId, SecretKey};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::link::LinkError;
use crate::local::{LocalNode, NodeError, Role};
use crate::query::Query;
use crate::store::{ApplyOptions, Incoming, Outcome};
use crate::transport::{
    FramedRecv, FramedSend, Limits, PeerAddr, Traffic, Transport, TransportError,
};

/// Incoming connections one key may hold at once (a region needs one per aggregator link,
/// plus a query or two).
pub const PEER_CONNECTIONS_MAX: usize = 4;

/// One live incoming connection of a peer, counted in [`Shared::peer_connection`].
#[derive(Debug)]
pub struct PeerSlot {
    shared: Arc<Shared>,
    peer: NodeId,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .per_peer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

/// How often a session refreshes the lag it reports in `status`.
const LAG_REFRESH: Duration = Duration::from_millis(250);
/// A live session re-reads the store's heads this often, so a head it was never told of
/// (a bug, a lagged channel) is still sent within this time.
const HEADS_RESCAN: Duration = Duration::from_secs(10);
/// How often a session sends again what its peer refused (an entry from the future is taken
/// once the peer's clock has caught up).
pub const STALLED_RETRY: Duration = Duration::from_secs(30);
/// How long a closing side waits for the peer to read its error frame.
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// Frames buffered between a stream's reader task and its session.
const READ_QUEUE_FRAMES: usize = 2;
/// Capacity of the new-heads broadcast; a session that lags re-reads all heads.
const HEADS_CHANNEL_CAPACITY: usize = 4096;

/// How long a starting region waits for an aggregator to tell it how far its own log goes
/// before it signs anything; then it publishes offline (regions keep working while the
/// aggregator is down), except a node `spindel restore` made, which waits until caught up.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(5);
/// The answer to a query from a key that is neither an admitted region nor a pinned
/// aggregator (nor the node itself).
pub const NOT_A_MEMBER: &str = "this node answers queries from member nodes only (admitted regions and their \
     aggregators); ask as one: spindel query --from PEER --data-dir DIR";
/// How often purged payloads whose erasure failed are tried again.
pub const ERASE_RETRY: Duration = Duration::from_secs(30);
/// How long a publish on a restored node that has not caught up waits before it gives up.
pub const RESTORED_PUBLISH_WAIT: Duration = Duration::from_secs(30);

/// Whether this node may sign new entries of its own log yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Waiting to learn from an aggregator whether it holds own entries beyond the head.
    Waiting,
    /// Caught up (or offline after [`CATCH_UP_WAIT`]): publishing goes on.
    Ready,
}

/// The catch-up gate's knowledge (see [`CatchUp`]).
#[derive(Debug, Default)]
struct GateState {
    /// Pinned aggregators whose opening heads arrived.
    answered: std::collections::BTreeSet<NodeId>,
    /// The furthest own-log head any of them holds.
    target: u64,
    /// [`CATCH_UP_WAIT`] has passed since the start.
    waited: bool,
}

/// What `spindel run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub listen: Option<SocketAddr>,
    pub aggregators: Vec<PeerAddr>,
    pub limits: Limits,
}

impl RunOptions {
    /// A node on this machine only (the demo, tests, benchmarks): listening on an ephemeral
    /// loopback port when `listen`, dialing `aggregators`, default limits.
    pub fn loopback(listen: bool, aggregators: Vec<PeerAddr>) -> RunOptions {
        RunOptions {
            listen: listen.then(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            aggregators,
            limits: Limits::default(),
        }
    }
}

/// A peer as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerStatus {
    pub node_id: String,
    pub address: String,
    pub role: String,
    pub connected: bool,
    /// Entries this node holds that the peer does not (yet), for the authors sent to it.
    pub lag: u64,
    pub last_error: Option<String>,
    /// Dialed peers: the wait before the next attempt after the last failure (0 while
    /// connected); long after a refusal only an operator can lift (see `link::Backoff`).
    pub retry_in_ms: u64,
}

/// State shared by every task of a running node.
pub struct Shared {
    pub node: Arc<LocalNode>,
    heads: broadcast::Sender<(NodeId, u64)>,
    peers: Mutex<BTreeMap<String, PeerStatus>>,
    shutdown: watch::Receiver<bool>,
    /// The aggregators this node dials and pins (`--aggregator`): the only peers a region
    /// syncs with, and whose relayed entries and admission lists it trusts.
    pinned: Mutex<std::collections::BTreeSet<NodeId>>,
    /// The gate every own-log write passes: closed while a starting region catches up with
    /// its own log at its aggregators (a restored copy must not fork it).
    catch_up: watch::Sender<CatchUp>,
    /// What the gate knows: which pinned aggregators have said how far the own log goes
    /// there, the furthest of those heads, and whether the offline wait has passed.
    gate: Mutex<GateState>,
    /// Bumped whenever this node learns of a fork, so every session passes the proof on.
    forks_seen: watch::Sender<u64>,
    /// Aggregator: bumped whenever an admission changes, so every region's session sends the
    /// new list (the names regions show) before relaying entries of a newly admitted region.
    admissions: watch::Sender<u64>,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Live incoming connections per peer key.
    per_peer: Mutex<BTreeMap<NodeId, usize>>,
    /// Fault injection for tests: holds the next served session between reading the heads it
    /// opens with and starting it (`None` in normal operation; see [`Shared::hold_next_session`]).
    session_setup_gate: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

/// A served session held by [`Shared::hold_next_session`]: `paused` fires once it has read its
/// opening heads and waits; sending on (or dropping) `release` lets it go on.
#[derive(Debug)]
pub struct HeldSession {
    pub paused: oneshot::Receiver<()>,
    pub release: oneshot::Sender<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(node: Arc<LocalNode>, shutdown: watch::Receiver<bool>) -> Arc<Shared> {
        let (heads, _) = broadcast::channel(HEADS_CHANNEL_CAPACITY);
        // Every own write, through whatever path, announces its new head.
        let announce = heads.clone();
        node.on_own_entry(move |author, seq| {
            let _ = announce.send((author, seq));
        });
        Arc::new(Shared {
            node,
            heads,
            peers: Mutex::new(BTreeMap::new()),
            shutdown,
            pinned: Mutex::new(std::collections::BTreeSet::new()),
            catch_up: watch::Sender::new(CatchUp::Ready),
            gate: Mutex::new(GateState::default()),
            forks_seen: watch::Sender::new(0),
            admissions: watch::Sender::new(0),
            metrics: crate::metrics::Metrics::default(),
            per_peer: Mutex::new(BTreeMap::new()),
            session_setup_gate: Mutex::new(None),
        })
    }

    /// A slot for one more connection from `peer`, held while it lives; `None` when the peer
    /// has [`PEER_CONNECTIONS_MAX`] already.
    pub fn peer_connection(self: &Arc<Self>, peer: NodeId) -> Option<PeerSlot> {
        let mut map = self
            .per_peer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(peer).or_insert(0);
        if *n >= PEER_CONNECTIONS_MAX {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            shared: self.clone(),
            peer,
        })
    }

    /// Aggregator: admits a region ([`LocalNode::allow`]) and sends every connected region
    /// the new admission list.
    pub async fn allow(
        &self,
        id: NodeId,
        name: Option<String>,
    ) -> Result<crate::local::Allowed, String> {
        let allowed = self.run_blocking(move |n| n.allow(id, name)).await?;
        tracing::info!(region = %id.short(), name = allowed.name.as_deref().unwrap_or("-"), "admitted a region");
        self.admissions.send_modify(|g| *g += 1);
        Ok(allowed)
    }

    /// Waits until own-log writes may go on (see [`CatchUp`]).
    pub async fn own_log_ready(&self) -> Result<(), NodeError> {
        let mut rx = self.catch_up.subscribe();
        let wait = if self.node.restored() {
            RESTORED_PUBLISH_WAIT
        } else {
            // The offline fallback opens the gate after CATCH_UP_WAIT; this is a backstop.
            CATCH_UP_WAIT * 3
        };
        match tokio::time::timeout(wait, rx.wait_for(|c| *c == CatchUp::Ready)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(NodeError::CatchingUp {
                waited_s: wait.as_secs(),
                restored: self.node.restored(),
            }),
        }
    }

    /// A pinned aggregator said (in its opening heads) how far this node's own log goes there.
    fn own_log_at(&self, aggregator: NodeId, head: u64) {
        {
            let mut gate = self
                .gate
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            gate.answered.insert(aggregator);
            gate.target = gate.target.max(head);
        }
        self.consider_gate();
    }

    /// Opens the gate when this node holds its own log as far as any aggregator that answered
    /// holds it, and either every pinned aggregator answered or [`CATCH_UP_WAIT`] passed. A
    /// node that knows an aggregator holds more never opens it: signing would fork the log. A
    /// restored node needs an answer; any other opens offline when nobody answered.
    fn consider_gate(&self) {
        if *self.catch_up.borrow() == CatchUp::Ready {
            return;
        }
        let me = self.node.node_id();
        let here = self
            .node
            .store()
            .head(&me)
            .ok()
            .flatten()
            .map_or(0, |h| h.seq);
        let pinned = self
            .pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        let (answered, target, waited) = {
            let gate = self
                .gate
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (gate.answered.len(), gate.target, gate.waited)
        };
        let restored = self.node.restored();
        let open = here >= target
            && ((answered > 0 && answered >= pinned) || (waited && (answered > 0 || !restored)));
        if !open {
            return;
        }
        // The restore marker goes first: a publish woken by the gate must find it gone.
        if restored && answered > 0 {
            match self.node.clear_restored() {
                Ok(()) => tracing::info!("the restored node has caught up with its aggregator"),
                Err(e) => tracing::error!(error = %e, "cannot remove the restore marker"),
            }
        }
        if self.catch_up.send_replace(CatchUp::Ready) == CatchUp::Waiting {
            if answered > 0 {
                tracing::info!(
                    head = here,
                    aggregators = answered,
                    "caught up with the own log held at the aggregators; publishing"
                );
            } else {
                tracing::warn!(
                    waited_s = CATCH_UP_WAIT.as_secs(),
                    "no aggregator answered; publishing offline (entries go out when a link is up)"
                );
            }
        }
    }

    /// Publishes a record while the node runs and pushes it to live peers.
    pub async fn publish(
        &self,
        kind: spindel_protocol::record::Kind,
        json: String,
        record_id: Option<RecordId>,
    ) -> Result<crate::local::Published, NodeError> {
        self.own_log_ready().await?;
        let published = self
            .blocking(move |n| {
                n.publish(
                    kind,
                    &json,
                    record_id,
                    &mut rand_core::OsRng,
                    crate::local::now_ms(),
                )
            })
            .await?;
        Ok(published)
    }

    /// Records the aggregators this node dials (a region syncs with these only).
    pub fn pin_aggregators(&self, ids: impl IntoIterator<Item = NodeId>) {
        self.pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(ids);
    }

    fn is_pinned(&self, id: &NodeId) -> bool {
        self.pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(id)
    }

    /// Fault injection for tests: holds the next served session after it read its opening
    /// heads, until released, so other sessions can announce new heads in between (an event,
    /// not a guessed duration).
    pub fn hold_next_session(&self) -> HeldSession {
        let (paused_tx, paused) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        *self
            .session_setup_gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((paused_tx, release_rx));
        HeldSession { paused, release }
    }

    /// Every new head this node announces (for benchmarks and tests).
    pub fn subscribe_heads(&self) -> broadcast::Receiver<(NodeId, u64)> {
        self.heads.subscribe()
    }

    /// Tells every live session what was just stored here: the heads that advanced, and
    /// whether a fork was proven (its proof then goes to every peer).
    fn after_apply(&self, advanced: Vec<(NodeId, u64)>, forked: bool) {
        for (author, seq) in advanced {
            self.announce(author, seq);
        }
        if forked {
            self.forks_seen.send_modify(|n| *n += 1);
        }
    }

    /// Announces a new head to every live session.
    pub fn announce(&self, author: NodeId, seq: u64) {
        let _ = self.heads.send((author, seq));
    }

    pub fn peers(&self) -> Vec<PeerStatus> {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn set_peer(&self, key: &str, update: impl FnOnce(&mut PeerStatus)) {
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = peers.get_mut(key) {
            update(p);
        }
    }

    pub(crate) fn add_peer(&self, key: String, status: PeerStatus) {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, status);
    }

    fn remove_peer(&self, key: &str) {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// `status` of the running node, with its live peers.
    pub async fn status(&self) -> Result<crate::local::Status, NodeError> {
        let mut status = self.blocking(|n| n.status()).await?;
        status.peers = self
            .peers()
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect();
        Ok(status)
    }

    /// A receiver that turns true when the node shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Runs a node operation on the blocking pool; errors as one-line text.
    pub async fn run_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LocalNode) -> Result<T, NodeError> + Send + 'static,
    ) -> Result<T, String> {
        self.blocking(f).await.map_err(|e| e.to_string())
    }

    /// Runs a node operation (store work) on the blocking pool.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LocalNode) -> Result<T, NodeError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let node = self.node.clone();
        match tokio::task::spawn_blocking(move || f(&node)).await {
            Ok(r) => r,
            Err(e) => Err(NodeError::Task(e.to_string())),
        }
    }
}

/// Loads up to `max` entries of `author` from `from_seq`, cut at [`BATCH_BYTES_MAX`] bytes.
fn load_batch(
    node: &LocalNode,
    author: NodeId,
    from_seq: u64,
    max: usize,
) -> Result<Vec<SyncEntry>, NodeError> {
    Ok(within_batch_bytes(
        node.store().entries_from(&author, from_seq, max)?,
    ))
}

/// Stored entries as they travel, cut where they would pass [`BATCH_BYTES_MAX`] (at least
/// one): a batch, or a want's answer, stays well under the frame cap.
fn within_batch_bytes(entries: impl IntoIterator<Item = Incoming>) -> Vec<SyncEntry> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for inc in entries {
        let e = SyncEntry {
            entry: inc.entry.to_wire(),
            payload: inc.payload,
        };
        bytes += e.size();
        if bytes > BATCH_BYTES_MAX && !out.is_empty() {
            break;
        }
        out.push(e);
    }
    out
}

/// What applying a received batch gave.
struct AppliedBatch {
    /// This node's heads of the batch's authors, after it (acked back).
    heads: Vec<(NodeId, u64)>,
    /// Per author, the highest seq the peer proved it holds (an entry accepted or replayed).
    held_by_peer: Vec<(NodeId, u64)>,
    /// The heads that advanced.
    advanced: Vec<(NodeId, u64)>,
    /// The batch proved a fork.
    forked: bool,
    accepted: u64,
}

/// Outcome of applying one received batch: the heads of its authors and what was accepted.
fn apply_batch(
    node: &LocalNode,
    from: NodeId,
    entries: Vec<SyncEntry>,
    expected_author: Option<NodeId>,
    vouched: bool,
    now_ms: u64,
) -> Result<AppliedBatch, NodeError> {
    let mut batch = Vec::with_capacity(entries.len());
    let mut authors = std::collections::BTreeSet::new();
    let mut malformed = 0u64;
    for e in entries {
        match Entry::from_wire(e.entry) {
            Ok(entry) => {
                authors.insert(entry.header().author);
                batch.push(Incoming {
                    entry,
                    payload: e.payload,
                });
            }
            Err(err) => {
                malformed += 1;
                tracing::debug!(%err, "malformed entry in batch");
            }
        }
    }
    if malformed > 0 {
        node.store().count_refusal("malformed", malformed)?;
    }
    if vouched {
        // From the aggregator this region pinned: it relays only authors it admitted, so its
        // sending them vouches for them, also for regions admitted after this session began.
        // Each entry must still be signed by its author.
        for a in authors
            .iter()
            .filter(|a| **a != node.node_id() && a.is_usable())
        {
            node.store().vouch(a, None)?;
        }
    }
    let sent: Vec<(NodeId, u64)> = batch
        .iter()
        .map(|i| (i.entry.header().author, i.entry.header().seq))
        .collect();
    let outcomes = node.store().apply(
        batch,
        ApplyOptions {
            expected_author,
            now_ms,
            all_or_nothing: false,
        },
    )?;
    let mut held: BTreeMap<NodeId, u64> = BTreeMap::new();
    for ((author, seq), o) in sent.iter().zip(&outcomes) {
        if matches!(
            o,
            Outcome::Accepted | Outcome::Refused(spindel_protocol::ingest::Refusal::Replay(_))
        ) {
            let h = held.entry(*author).or_default();
            *h = (*h).max(*seq);
        }
    }
    let accepted = outcomes.iter().filter(|o| **o == Outcome::Accepted).count();
    // One line per batch with refusals, naming the peer and the reasons (a replay is routine:
    // a region with two aggregators hears most entries twice).
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut first = None;
    for o in &outcomes {
        if let Outcome::Refused(r) = o
            && !matches!(r, spindel_protocol::ingest::Refusal::Replay(_))
        {
            *reasons.entry(r.reason()).or_default() += 1;
            first.get_or_insert_with(|| r.to_string());
        }
    }
    if let Some(first) = first {
        let counts: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
        tracing::warn!(peer = %from.short(), refused = %counts.join(", "), first = %first, "refused entries from a peer");
    }
    let mut heads = Vec::new();
    for a in authors {
        heads.push((a, node.store().head(&a)?.map_or(0, |h| h.seq)));
    }
    let advanced = if accepted > 0 {
        heads.clone()
    } else {
        Vec::new()
    };
    let forked = outcomes.iter().any(|o| {
        matches!(
            o,
            Outcome::Refused(spindel_protocol::ingest::Refusal::Fork { .. })
        )
    });
    Ok(AppliedBatch {
        heads,
        held_by_peer: held.into_iter().collect(),
        advanced,
        forked,
        accepted: accepted as u64,
    })
}

/// What a session driver works with.
struct SessionCtx {
    shared: Arc<Shared>,
    conn: quinn::Connection,
    peer: NodeId,
    /// Key of the peer in the status table.
    peer_key: String,
    /// An aggregator takes only the region's own entries from it.
    expected_author: Option<NodeId>,
    /// One-shot sync: stop once caught up.
    until_caught_up: bool,
    /// The peer is an aggregator this node dialed and pinned (`--aggregator`): its admission
    /// list, and the authors it sends, are trusted. Never true for a session a node accepted.
    trusted_aggregator: bool,
    /// Aggregator serving a region: told of admission changes, to send the region the list;
    /// with the generation the opening heads' list was read at.
    admissions: Option<(watch::Receiver<u64>, u64)>,
}

/// Aggregator: every region it admitted, with the name it admitted it under.
fn admission_list(n: &LocalNode) -> Result<Vec<(NodeId, Option<String>)>, NodeError> {
    Ok(n.store()
        .authors()?
        .into_iter()
        .filter(|(a, m)| m.admitted && *a != n.node_id())
        // A region admitted before names were required has none stored: it is known by the
        // name made from its key, here and everywhere (never by what its profile claims).
        .map(|(a, m)| (a, Some(m.name_or_key(&a))))
        .collect())
}

/// Whether the admission list changed since the one the region has (and marks it sent).
fn admissions_due(rx: &mut Option<watch::Receiver<u64>>, sent: &mut u64) -> bool {
    match rx {
        Some(rx) => {
            let now = *rx.borrow_and_update();
            let due = now != *sent;
            *sent = now;
            due
        }
        None => false,
    }
}

/// Resolves when `rx` sees a new value; never when there is none to watch.
async fn changed(rx: &mut Option<watch::Receiver<u64>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Drives one sync session over one stream until it ends.
async fn drive_session(
    ctx: SessionCtx,
    mut send: FramedSend,
    recv: FramedRecv,
    mut session: Session,
    mut heads_rx: broadcast::Receiver<(NodeId, u64)>,
) -> Result<(), LinkError> {
    let SessionCtx {
        shared,
        conn,
        peer,
        peer_key,
        expected_author,
        until_caught_up,
        trusted_aggregator,
        admissions,
    } = ctx;
    let (mut admissions, mut admissions_sent) = match admissions {
        Some((rx, generation)) => (Some(rx), generation),
        None => (None, 0),
    };
    let (tx, mut rx) = mpsc::channel::<Result<Option<Message>, TransportError>>(READ_QUEUE_FRAMES);
    let reader = tokio::spawn(read_frames(recv, tx));
    let mut shutdown = shared.shutdown.clone();
    let mut rescan =
        tokio::time::interval_at(tokio::time::Instant::now() + HEADS_RESCAN, HEADS_RESCAN);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry =
        tokio::time::interval_at(tokio::time::Instant::now() + STALLED_RETRY, STALLED_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let me = shared.node.node_id();
    let mut last_lag = Instant::now()
        .checked_sub(LAG_REFRESH)
        .unwrap_or_else(Instant::now);
    // A dialed aggregator's heads say how far this node's own log goes there; once this node
    // holds that much, own-log writes may go on.
    let mut own_log_reported = false;
    let mut forks_sent: Option<u64> = None;
    let mut tips_sent = false;
    let mut forks_rx = shared.forks_seen.subscribe();
    let result = loop {
        while let Some(out) = session.poll() {
            match out {
                Output::Send(m) => {
                    if let Err(e) = send.send(&m).await {
                        return finish(&reader, Err(e.into()));
                    }
                }
                Output::Load {
                    author,
                    from_seq,
                    max,
                } => {
                    let entries = shared
                        .blocking(move |n| load_batch(n, author, from_seq, max))
                        .await;
                    match entries {
                        Ok(entries) => session.loaded(author, entries),
                        Err(e) => {
                            conn.close(ErrorCode::Internal.code().into(), b"store");
                            return finish(&reader, Err(e.into()));
                        }
                    }
                }
                Output::Apply { entries } => {
                    let now = crate::local::now_ms();
                    let applied = shared
                        .blocking(move |n| {
                            apply_batch(n, peer, entries, expected_author, trusted_aggregator, now)
                        })
                        .await;
                    match applied {
                        Ok(a) => {
                            shared.metrics.accepted(a.accepted);
                            shared.after_apply(a.advanced, a.forked);
                            session.applied(a.heads, &a.held_by_peer);
                        }
                        Err(e) => {
                            conn.close(ErrorCode::Internal.code().into(), b"store");
                            return finish(&reader, Err(e.into()));
                        }
                    }
                }
                Output::Forks(proofs) => {
                    let r = shared.blocking(move |n| keep_fork_proofs(n, proofs)).await;
                    match r {
                        Ok(new) => shared.after_apply(Vec::new(), new > 0),
                        Err(e) => return finish(&reader, Err(e.into())),
                    }
                }
                Output::Tips(tips) => {
                    let wanted = shared.blocking(move |n| differing_tips(n, tips)).await;
                    match wanted {
                        Ok(w) => session.send_want(w),
                        Err(e) => return finish(&reader, Err(e.into())),
                    }
                }
                Output::Want(list) => {
                    let only = (my_role(&shared.node) == PeerRole::Region).then_some(me);
                    let loaded = shared.blocking(move |n| load_wanted(n, list, only)).await;
                    match loaded {
                        Ok(entries) => session.send_wanted(entries),
                        Err(e) => return finish(&reader, Err(e.into())),
                    }
                }
                Output::Wanted(entries) => {
                    let now = crate::local::now_ms();
                    let applied = shared
                        .blocking(move |n| {
                            apply_batch(n, peer, entries, expected_author, false, now)
                        })
                        .await;
                    match applied {
                        Ok(a) => {
                            shared.metrics.accepted(a.accepted);
                            shared.after_apply(a.advanced, a.forked);
                        }
                        Err(e) => {
                            conn.close(ErrorCode::Internal.code().into(), b"store");
                            return finish(&reader, Err(e.into()));
                        }
                    }
                }
                Output::Admitted(_) if !trusted_aggregator => {
                    tracing::debug!(peer = %peer.short(), "ignored an admission list from a peer this node did not dial");
                }
                Output::Admitted(list) => {
                    let r = shared
                        .blocking(move |n| Ok(n.store().take_admissions(&list, &n.node_id())?))
                        .await;
                    match r {
                        Ok(renamed) => {
                            let own = &shared.node.config().name;
                            for (id, name) in renamed {
                                let shown = name.as_deref().unwrap_or("(none)");
                                if id == me && name.as_deref() != Some(own.as_str()) {
                                    tracing::warn!(admitted_as = %shown, own_name = %own, aggregator = %peer.short(), "the aggregator does not list this region under its own name; the network shows its records under the admitted name");
                                } else {
                                    tracing::info!(author = %id.short(), name = %shown, "a region's admitted name, from the aggregator");
                                }
                            }
                        }
                        Err(e) => return finish(&reader, Err(e.into())),
                    }
                }
                Output::Close { code, reason } => {
                    send.finish();
                    if code != ErrorCode::Done {
                        // Let the peer read the error frame; it closes on reading it.
                        let _ = tokio::time::timeout(CLOSE_GRACE, conn.closed()).await;
                    }
                    conn.close(code.code().into(), reason.as_bytes());
                    let r = if code == ErrorCode::Done {
                        Ok(())
                    } else {
                        Err(LinkError::Closed { code, reason })
                    };
                    return finish(&reader, r);
                }
            }
        }
        // Head hashes go out once: equal seqs with different entries are a fork that heads
        // alone never show (an old copy that signed offline).
        if !tips_sent && session.heads_received() {
            tips_sent = true;
            // A dialed aggregator took the session (a refusal comes before its heads).
            if trusted_aggregator {
                shared.set_peer(&peer_key, |p| {
                    p.connected = true;
                    p.last_error = None;
                    p.retry_in_ms = 0;
                });
                if !until_caught_up {
                    tracing::info!(peer = %peer.short(), address = %conn.remote_address(), "link to aggregator up");
                }
            }
            if let Ok(heads) = shared.node.store().heads() {
                session.send_tips(heads.into_iter().map(|(a, h)| (a, h.seq, h.hash)).collect());
            }
            // Records held without their payload (a relay stripped it): ask the aggregator
            // for them whole; a matching payload completes them.
            if trusted_aggregator
                && let Ok(missing) = shared
                    .node
                    .store()
                    .header_only_current(spindel_protocol::sync::WANT_ENTRIES_MAX)
                && !missing.is_empty()
            {
                tracing::info!(peer = %peer.short(), records = missing.len(), "asking the aggregator for records held without their content");
                session.send_want(missing);
            }
            continue;
        }
        // Every fork proof this node holds goes to the peer once heads are exchanged, and
        // again whenever it learns of a new one, so every node names a fork.
        if session.heads_received() && forks_sent != Some(*forks_rx.borrow_and_update()) {
            forks_sent = Some(*forks_rx.borrow());
            let forks = shared
                .blocking(|n| Ok(n.store().forks()?))
                .await
                .unwrap_or_default();
            if !forks.is_empty() {
                session.send_forks(
                    forks
                        .into_iter()
                        .map(|(_, p)| (p.first, p.second))
                        .collect(),
                );
                continue;
            }
        }
        // A changed admission list goes to the region at once (the first was in the heads).
        if session.heads_received() && admissions_due(&mut admissions, &mut admissions_sent) {
            match shared.blocking(admission_list).await {
                Ok(list) => session.send_admitted(list),
                Err(e) => {
                    conn.close(ErrorCode::Internal.code().into(), b"store");
                    return finish(&reader, Err(e.into()));
                }
            }
            continue;
        }
        if trusted_aggregator
            && session.heads_received()
            && *shared.catch_up.borrow() == CatchUp::Waiting
        {
            if !own_log_reported {
                // Fixed at the aggregator's opening heads (later acks raise what the session
                // knows of the peer).
                own_log_reported = true;
                shared.own_log_at(peer, session.peer_heads().get(&me).copied().unwrap_or(0));
            } else {
                // Entries of the own log may have arrived.
                shared.consider_gate();
            }
        }
        if until_caught_up && session.caught_up() {
            send.finish();
            conn.close(ErrorCode::Done.code().into(), b"caught up");
            return finish(&reader, Ok(()));
        }
        // The lag shown in `status`: a scan of the store's heads, so at most every 250 ms.
        if last_lag.elapsed() >= LAG_REFRESH || session.is_idle() {
            let lag =
                shared_heads_lag(&shared, me, session.peer_heads(), expected_author.is_none());
            shared.set_peer(&peer_key, |p| p.lag = lag);
            last_lag = Instant::now();
        }
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(Ok(Some(m))) => {
                    if let Err(e) = session.handle(m) {
                        tracing::warn!(peer = %peer.short(), error = %e, "peer broke the protocol");
                    }
                }
                Some(Ok(None)) | None => break Err(LinkError::StreamEnded),
                Some(Err(e @ TransportError::Frame(_))) => {
                    conn.close(ErrorCode::Protocol.code().into(), b"bad frame");
                    break Err(e.into());
                }
                Some(Err(e)) => break Err(e.into()),
            },
            head = heads_rx.recv() => match head {
                // A newly admitted region's first entries: its name goes out before them.
                Ok((author, seq))
                    if session.heads_received()
                        && admissions_due(&mut admissions, &mut admissions_sent) =>
                {
                    match shared.blocking(admission_list).await {
                        Ok(list) => session.send_admitted(list),
                        Err(e) => break Err(e.into()),
                    }
                    session.local_head(author, seq);
                }
                Ok((author, seq)) => session.local_head(author, seq),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    rescan_heads(&shared, &mut session).await;
                }
                Err(broadcast::error::RecvError::Closed) => break Ok(()),
            },
            _ = rescan.tick() => rescan_heads(&shared, &mut session).await,
            _ = retry.tick() => session.retry_stalled(),
            // A new fork proof: the check at the top of the loop passes it on.
            _ = forks_rx.changed() => {}
            // Admissions changed: the check at the top of the loop sends the list.
            () = changed(&mut admissions) => {}
            _ = shutdown.changed() => {
                conn.close(ErrorCode::Done.code().into(), b"node shutting down");
                break Ok(());
            }
        }
    };
    finish(&reader, result)
}

/// The (author, seq) of every tip the peer sent whose entry here has another hash.
fn differing_tips(
    node: &LocalNode,
    tips: Vec<(NodeId, u64, spindel_protocol::entry::Hash)>,
) -> Result<Vec<(NodeId, u64)>, NodeError> {
    let mut want = Vec::new();
    for (author, seq, hash) in tips {
        if let Some(entry) = node.store().entry(&author, seq)?
            && entry.hash() != hash
        {
            want.push((author, seq));
            if want.len() >= spindel_protocol::sync::WANT_ENTRIES_MAX {
                break;
            }
        }
    }
    if let Some((author, seq)) = want.first() {
        tracing::warn!(author = %author.short(), seq, differing = want.len(), "a peer holds other entries at the same seq; fetching them as proof");
    }
    Ok(want)
}

/// The entries a peer wants, as stored here (`only`: of that author alone), within a batch's
/// bytes; what does not fit is asked for again on the next link.
fn load_wanted(
    node: &LocalNode,
    list: Vec<(NodeId, u64)>,
    only: Option<NodeId>,
) -> Result<Vec<SyncEntry>, NodeError> {
    let mut found = Vec::new();
    for (author, seq) in list {
        if only.is_some_and(|o| o != author) {
            continue;
        }
        if let Some(inc) = node.store().entries_from(&author, seq, 1)?.pop()
            && inc.entry.header().seq == seq
        {
            found.push(inc);
        }
    }
    Ok(within_batch_bytes(found))
}

/// Checks fork proofs a peer sent and keeps those that hold (freezing their authors).
fn keep_fork_proofs(
    node: &LocalNode,
    proofs: Vec<(
        spindel_protocol::entry::WireEntry,
        spindel_protocol::entry::WireEntry,
    )>,
) -> Result<usize, NodeError> {
    let mut new = 0;
    for (first, second) in proofs {
        let (first, second) = match (Entry::from_wire(first), Entry::from_wire(second)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                node.store().count_refusal("bad_fork_proof", 1)?;
                continue;
            }
        };
        match spindel_protocol::ingest::check_fork_proof(&first, &second) {
            // Only authors this node takes entries of: a proof for a made-up key (anyone can
            // make one) is not kept, so nobody can fill a node with them.
            Ok((author, _)) if !node.store().is_admitted(&author)? => {
                node.store().count_refusal("fork_proof_unknown_author", 1)?;
            }
            Ok((author, seq)) => {
                if node.store().record_fork_proof(&first, &second)? {
                    let name = node
                        .store()
                        .author(&author)?
                        .and_then(|m| m.label().map(str::to_string));
                    tracing::warn!(author = %author, name = name.as_deref().unwrap_or("-"), seq, "fork proven by a peer's proof: two different entries signed with one seq; the author is frozen here");
                    new += 1;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "a peer sent a fork proof that does not hold");
                node.store().count_refusal("bad_fork_proof", 1)?;
            }
        }
    }
    Ok(new)
}

/// Tells the session every head of the store (after missed announcements).
async fn rescan_heads(shared: &Shared, session: &mut Session) {
    if let Ok(heads) = shared.blocking(|n| Ok(n.store().heads()?)).await {
        for (a, h) in heads {
            session.local_head(a, h.seq);
        }
    }
}

fn finish(reader: &tokio::task::JoinHandle<()>, r: Result<(), LinkError>) -> Result<(), LinkError> {
    reader.abort();
    r
}

/// Entries this node holds that the peer lacks, for the authors this node sends it.
fn shared_heads_lag(
    shared: &Shared,
    me: NodeId,
    peer: &BTreeMap<NodeId, u64>,
    send_all: bool,
) -> u64 {
    // Cheap: the store's heads are a small prefix scan.
    let Ok(heads) = shared.node.store().heads() else {
        return 0;
    };
    heads
        .iter()
        .filter(|(a, _)| send_all || **a == me)
        .map(|(a, h)| h.seq.saturating_sub(peer.get(a).copied().unwrap_or(0)))
        .sum()
}

async fn read_frames(
    mut recv: FramedRecv,
    tx: mpsc::Sender<Result<Option<Message>, TransportError>>,
) {
    loop {
        let frame = recv.recv().await;
        let end = !matches!(frame, Ok(Some(_)));
        if tx.send(frame).await.is_err() || end {
            return;
        }
    }
}

fn my_role(node: &LocalNode) -> PeerRole {
    match node.config().role {
        Role::Region => PeerRole::Region,
        Role::Aggregator => PeerRole::Aggregator,
    }
}

/// Handles one accepted connection: a sync session, or query streams.
async fn serve_connection(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    peer: NodeId,
    limits: crate::transport::Limits,
) {
    let peer_key = format!("in:{}:{}", peer, conn.remote_address());
    let first_frame_within = Duration::from_millis(limits.first_frame_timeout_ms);
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(_) => break,
        };
        let mut send = FramedSend::new(send);
        let mut recv = FramedRecv::new(recv, limits.frame_bytes_max);
        // The first frame arrives whole within the deadline, or the connection is closed.
        let first = match tokio::time::timeout(first_frame_within, recv.recv()).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                tracing::debug!(peer = %peer.short(), error = %e, "bad first frame");
                conn.close(ErrorCode::Protocol.code().into(), b"bad frame");
                break;
            }
            Err(_) => {
                tracing::info!(peer = %peer.short(), "closed a connection whose first frame did not arrive in time");
                conn.close(ErrorCode::Protocol.code().into(), b"first frame too slow");
                break;
            }
        };
        match first {
            Message::Query(request) => {
                // Records hold personal data (researcher contacts): only member nodes ask.
                let member = {
                    let pinned = shared.is_pinned(&peer);
                    shared
                        .blocking(move |n| {
                            Ok(pinned
                                || peer == n.node_id()
                                || n.store()
                                    .author(&peer)?
                                    .is_some_and(|m| m.admitted && !m.frozen))
                        })
                        .await
                        .unwrap_or(false)
                };
                let json = if member {
                    answer_query(&shared, request).await
                } else {
                    tracing::info!(peer = %peer.short(), "refused a query from a key that is not a member");
                    Err(NOT_A_MEMBER.to_string())
                };
                if !member {
                    // One refusal per connection: a key that is not a member gets its answer
                    // and the connection ends, so asking again costs it a new handshake (and
                    // counts against the connection limits).
                    let _ = tokio::time::timeout(
                        first_frame_within,
                        send.send(&Message::QueryResult { json }),
                    )
                    .await;
                    send.finish();
                    let _ = tokio::time::timeout(first_frame_within, conn.closed()).await;
                    conn.close(ErrorCode::NotAdmitted.code().into(), b"not a member");
                    break;
                }
                // An answer the asker does not read is dropped after the deadline.
                let _ = tokio::time::timeout(
                    first_frame_within,
                    send.send(&Message::QueryResult { json }),
                )
                .await;
                send.finish();
            }
            hello @ Message::Hello { .. } => {
                let role = my_role(&shared.node);
                // Subscribe before reading the heads: a head announced in between would
                // otherwise be missed by this session for as long as it lives.
                let heads_rx = shared.heads.subscribe();
                // Likewise for admissions: a change after this sends the list again.
                let admissions_rx = shared.admissions.subscribe();
                let admissions_at = *admissions_rx.borrow();
                let setup = shared
                    .blocking(move |n| {
                        let meta = n.store().author(&peer)?;
                        // A frozen region still gets its session: it learns of its fork
                        // (the proof) there; ingest refuses its entries as frozen.
                        let admitted = meta.as_ref().is_some_and(|m| m.admitted);
                        let heads = n
                            .store()
                            .heads()?
                            .into_iter()
                            .map(|(a, h)| (a, h.seq))
                            .collect();
                        Ok((admitted, heads, admission_list(n)?))
                    })
                    .await;
                let Ok((admitted, heads, list)) = setup else {
                    break;
                };
                let held = shared
                    .session_setup_gate
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                if let Some((paused, release)) = held {
                    let _ = paused.send(());
                    let _ = release.await;
                }
                // An aggregator syncs with the regions it admitted. A region syncs only with
                // the aggregators it pinned: any other key that dials it gets neither entries
                // in nor its log out (it is refused before heads are sent).
                let pinned = shared.is_pinned(&peer);
                let (peer_admitted, announce) = match role {
                    PeerRole::Aggregator => (admitted, list),
                    _ => (pinned, Vec::new()),
                };
                let mut session = Session::new(
                    shared.node.node_id(),
                    role,
                    &shared.node.config().name,
                    heads,
                    peer_admitted,
                    announce,
                );
                if let Err(e) = session.handle(hello) {
                    tracing::warn!(peer = %peer, address = %conn.remote_address(), error = %e, "refused a sync session");
                }
                shared.add_peer(
                    peer_key.clone(),
                    PeerStatus {
                        node_id: peer.to_hex(),
                        address: conn.remote_address().to_string(),
                        role: "incoming".into(),
                        connected: true,
                        lag: 0,
                        last_error: None,
                        retry_in_ms: 0,
                    },
                );
                // An aggregator takes only the region's own entries from the region.
                let expected = (role == PeerRole::Aggregator).then_some(peer);
                let ctx = SessionCtx {
                    shared: shared.clone(),
                    conn: conn.clone(),
                    peer,
                    peer_key: peer_key.clone(),
                    expected_author: expected,
                    until_caught_up: false,
                    trusted_aggregator: role == PeerRole::Region && pinned,
                    admissions: (role == PeerRole::Aggregator)
                        .then_some((admissions_rx, admissions_at)),
                };
                let began = Instant::now();
                let r = drive_session(ctx, send, recv, session, heads_rx).await;
                shared.metrics.session_ended(began.elapsed());
                if let Err(e) = r {
                    tracing::info!(peer = %peer.short(), error = %e, "sync session ended");
                }
                shared.remove_peer(&peer_key);
                break;
            }
            other => {
                tracing::debug!(peer = %peer.short(), message = other.name(), "unexpected first message");
                conn.close(
                    ErrorCode::Protocol.code().into(),
                    b"unexpected first message",
                );
                break;
            }
        }
    }
}

async fn answer_query(shared: &Arc<Shared>, request: QueryRequest) -> Result<String, String> {
    let query = query_from_request(&request)?;
    shared
        .blocking(move |n| {
            let mut page = n.query(&query)?;
            // An answer is a list: no contact fields in bulk.
            crate::http::leave_out_contacts(&mut page);
            serde_json::to_string(&page).map_err(|e| NodeError::Config {
                path: n.dir().to_path_buf(),
                reason: e.to_string(),
            })
        })
        .await
        .map_err(|e| e.to_string())
}

/// Turns a wire query into a store query, validating the kind.
pub fn query_from_request(r: &QueryRequest) -> Result<Query, String> {
    let kind = match &r.kind {
        Some(k) => Some(
            k.parse()
                .map_err(|e: spindel_protocol::record::ParseKindError| e.to_string())?,
        ),
        None => None,
    };
    Ok(Query {
        kind,
        region: r.region.clone(),
        tag: r.tag.clone(),
        text: r.text.clone(),
        author: None,
        limit: r.limit.map(|l| l as usize),
        cursor: r.cursor.clone(),
    })
}

/// Keeps a live link to one aggregator: dial, sync, and on any failure reconnect with
/// exponential backoff and jitter.
/// One-shot sync (`spindel sync`): one session with the aggregator until both sides hold what
/// the other had.
pub async fn sync_until_caught_up(
    shared: &Arc<Shared>,
    transport: &Transport,
    peer: &PeerAddr,
    key: &str,
) -> Result<SyncReport, LinkError> {
    session_with_aggregator(shared, transport, peer, key, SessionMode::UntilCaughtUp).await
}

/// What one sync session with an aggregator cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SyncReport {
    pub frames_sent: u64,
    pub frame_bytes_sent: u64,
    pub frames_received: u64,
    pub frame_bytes_received: u64,
    /// Everything on the wire, QUIC handshake and acknowledgements included.
    pub udp_bytes_sent: u64,
    pub udp_bytes_received: u64,
    pub rtt_us: u64,
}

/// How long a session with an aggregator lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// The permanent link: live push both ways until it breaks or the node stops.
    Live,
    /// One-shot (`spindel sync`): returns once both sides hold what the other had.
    UntilCaughtUp,
}

/// One sync session with an aggregator (see [`SessionMode`]).
pub async fn session_with_aggregator(
    shared: &Arc<Shared>,
    transport: &Transport,
    peer: &PeerAddr,
    key: &str,
    mode: SessionMode,
) -> Result<SyncReport, LinkError> {
    let until_caught_up = mode == SessionMode::UntilCaughtUp;
    let conn = transport.connect(peer).await?;
    let (send, recv) = conn.open_bi().await.map_err(TransportError::from)?;
    // Subscribe before reading the heads (see serve_connection).
    let heads_rx = shared.heads.subscribe();
    let heads = shared
        .blocking(|n| {
            Ok(n.store()
                .heads()?
                .into_iter()
                .map(|(a, h)| (a, h.seq))
                .collect())
        })
        .await?;
    let session = Session::new(
        shared.node.node_id(),
        PeerRole::Region,
        &shared.node.config().name,
        heads,
        true,
        Vec::new(),
    );
    let traffic = Arc::new(Traffic::default());
    let send = FramedSend::with_traffic(send, traffic.clone());
    let recv = FramedRecv::with_traffic(recv, transport.limits().frame_bytes_max, traffic.clone());
    let ctx = SessionCtx {
        shared: shared.clone(),
        conn: conn.clone(),
        peer: peer.node_id,
        peer_key: key.to_string(),
        expected_author: None,
        until_caught_up,
        trusted_aggregator: true,
        admissions: None,
    };
    let began = Instant::now();
    let result = drive_session(ctx, send, recv, session, heads_rx).await;
    shared.metrics.session_ended(began.elapsed());
    let stats = conn.stats();
    let (frames_sent, frame_bytes_sent, frames_received, frame_bytes_received) = traffic.snapshot();
    result.map(|()| SyncReport {
        frames_sent,
        frame_bytes_sent,
        frames_received,
        frame_bytes_received,
        udp_bytes_sent: stats.udp_tx.bytes,
        udp_bytes_received: stats.udp_rx.bytes,
        rtt_us: stats.path.rtt.as_micros() as u64,
    })
}

/// A running node's tasks.
#[derive(Debug)]
pub struct Running {
    pub shared: Arc<Shared>,
    pub listen_addr: Option<SocketAddr>,
    transport: Option<Transport>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Starts the node's network side.
    /// Starts `node` with its own key.
    pub async fn start_node(node: LocalNode, opts: RunOptions) -> Result<Running, TransportError> {
        let key = node.key().clone();
        Running::start(Arc::new(node), key, opts).await
    }

    /// Where peers reach this node (`NODEID@ADDR`), when it listens.
    pub fn peer_addr(&self) -> Option<PeerAddr> {
        self.listen_addr.map(|addr| PeerAddr {
            node_id: self.shared.node.node_id(),
            host: addr.ip().to_string(),
            port: addr.port(),
        })
    }

    pub async fn start(
        node: Arc<LocalNode>,
        key: SecretKey,
        opts: RunOptions,
    ) -> Result<Running, TransportError> {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Shared::new(node, shutdown_rx);
        let mut tasks = Vec::new();
        let transport = match opts.listen {
            Some(addr) => Transport::bind(&key, addr, opts.limits.clone())?,
            None => Transport::client(&key, opts.limits.clone())?,
        };
        let listen_addr = match opts.listen {
            Some(_) => transport.local_addr().ok(),
            None => None,
        };
        if opts.listen.is_some() {
            let shared = shared.clone();
            let t = transport.clone();
            let limits = opts.limits.clone();
            let connections = Arc::new(tokio::sync::Semaphore::new(opts.limits.connections_max));
            tasks.push(tokio::spawn(async move {
                while let Some(incoming) = t.accept().await {
                    // Each connection holds a permit for as long as it lives: at most
                    // `connections_max` at once, handshakes included; more are refused.
                    let Ok(permit) = connections.clone().try_acquire_owned() else {
                        tracing::warn!(address = %incoming.remote_address(), "refused a connection: at the connection limit");
                        incoming.refuse();
                        continue;
                    };
                    // Each handshake in a task of its own: a peer that never completes one holds
                    // up nobody else.
                    let (shared, t, limits) = (shared.clone(), t.clone(), limits.clone());
                    tokio::spawn(async move {
                        match t.handshake(incoming).await {
                            Ok((conn, peer)) => {
                                let Some(_per_peer) = shared.peer_connection(peer) else {
                                    tracing::warn!(peer = %peer.short(), "refused a connection: too many from one key");
                                    conn.close(ErrorCode::Protocol.code().into(), b"too many connections");
                                    return;
                                };
                                serve_connection(shared, conn, peer, limits).await;
                            }
                            Err(e) => tracing::debug!(error = %e, "incoming connection failed"),
                        }
                        drop(permit);
                    });
                }
            }));
        }
        {
            // A purged payload whose erasure failed (a full disk, an I/O error) is retried.
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(ERASE_RETRY);
                loop {
                    tick.tick().await;
                    if shared.node.store().erasures_pending()
                        && let Err(e) = shared.blocking(|n| Ok(n.store().erase_pending()?)).await
                    {
                        tracing::error!(error = %e, "erasing purged payloads failed; retried");
                    }
                }
            }));
        }
        shared.pin_aggregators(opts.aggregators.iter().map(|p| p.node_id));
        let is_region = shared.node.config().role == Role::Region;
        if is_region && (!opts.aggregators.is_empty() || shared.node.restored()) {
            shared.catch_up.send_replace(CatchUp::Waiting);
            let restored = shared.node.restored();
            let gate = shared.clone();
            tasks.push(tokio::spawn(async move {
                if restored {
                    tracing::warn!("this node was restored from a backup: it publishes once it has caught up with its aggregator");
                }
                tokio::time::sleep(CATCH_UP_WAIT).await;
                gate.gate
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .waited = true;
                gate.consider_gate();
            }));
        }
        for peer in opts.aggregators {
            tasks.push(tokio::spawn(crate::dialer::dial_loop(
                shared.clone(),
                transport.clone(),
                peer,
            )));
        }
        Ok(Running {
            shared,
            listen_addr,
            transport: Some(transport),
            shutdown_tx,
            tasks,
        })
    }

    /// Stops every task and closes the endpoint.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(t) = self.transport.take() {
            t.shutdown().await;
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

/// Parses a record id for control requests.
pub fn parse_record_id(s: &str) -> Result<RecordId, String> {
    s.parse::<RecordId>().map_err(|e| e.to_string())
}
