//! What every task of a running node holds: the node (reads), its one [`Writer`] (writes and
//! their announcements), the catch-up [`Gate`], the peer table `status` shows, counters, and
//! the blocking-pool helper. Nothing here decides protocol or writes the store itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use spindel_protocol::NodeId;
use spindel_protocol::checkpoint::{SignedCosignature, VerifiedCheckpoint};
use tokio::sync::{broadcast, oneshot, watch};

use crate::gate::Gate;
pub use crate::link::PeerStatus;
use crate::local::{LocalNode, NodeError};
use crate::read::{ReadError, ReadModel, Reads};
use crate::writer::Writer;

/// Imports received at once: each may hold a file of [`crate::local::IMPORT_BYTES_MAX`] in the data
/// directory while it waits for the own-log lock (imports are signed one at a time anyway).
pub const CONTROL_UPLOADS_MAX: usize = 2;
/// The places to receive imports, [`CONTROL_UPLOADS_MAX`] of them, shared by the control
/// socket and the editor (held in [`Shared::uploads`]).
#[derive(Debug, Clone)]
pub struct Uploads(std::sync::Arc<tokio::sync::Semaphore>);

impl Default for Uploads {
    fn default() -> Uploads {
        Uploads(std::sync::Arc::new(tokio::sync::Semaphore::new(
            CONTROL_UPLOADS_MAX,
        )))
    }
}

impl Uploads {
    /// A place to receive one more import (held until it is dropped), or why there is none.
    pub fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, UploadsBusy> {
        self.0.clone().try_acquire_owned().map_err(|_| UploadsBusy)
    }
}

/// No place is free to receive another import.
#[derive(Debug, thiserror::Error)]
#[error(
    "{CONTROL_UPLOADS_MAX} imports are being received already; try again when they have finished"
)]
pub struct UploadsBusy;

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
        let mut map = lock(&self.shared.per_peer);
        if let Some(n) = map.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

/// The live sync session of one key at this node (an aggregator holds at most one per key).
#[derive(Debug, Clone)]
pub struct Signer {
    pub address: std::net::SocketAddr,
    /// When its session was accepted (Unix ms).
    pub since_ms: u64,
    /// Sessions of the same key refused while this one lives (the first is logged).
    pub refused: u64,
    /// Its connection, to tell a live session from one whose peer is gone.
    pub conn: quinn::Connection,
    token: u64,
}

/// The claim of one key's sync session, released when the session ends.
#[derive(Debug)]
pub struct SignerSlot {
    shared: Arc<Shared>,
    peer: NodeId,
    token: u64,
}

impl Drop for SignerSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.shared.signers);
        if map.get(&self.peer).is_some_and(|s| s.token == self.token) {
            map.remove(&self.peer);
        }
    }
}

/// A live sync session whose connection received nothing (keep-alives go out every second)
/// for this long, while another session of its key asks in, is taken as gone.
pub const SILENT_FOR: std::time::Duration = std::time::Duration::from_millis(2_500);

/// The time now as Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A served session held by [`Shared::hold_next_session`]: `paused` fires once it has read its
/// opening heads and waits; sending on (or dropping) `release` lets it go on.
#[derive(Debug)]
pub struct HeldSession {
    pub paused: oneshot::Receiver<()>,
    pub release: oneshot::Sender<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// State shared by every task of a running node.
pub struct Shared {
    /// The node's read model: it cannot write; writes go through [`Shared::writer`].
    pub node: ReadModel,
    pub writer: Writer,
    pub gate: Arc<Gate>,
    peers: Mutex<BTreeMap<String, PeerStatus>>,
    shutdown: watch::Receiver<bool>,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Live incoming connections per peer key.
    per_peer: Mutex<BTreeMap<NodeId, usize>>,
    /// The one live sync session per key (see [`Shared::claim_signer`]).
    signers: Mutex<BTreeMap<NodeId, Signer>>,
    next_signer_token: std::sync::atomic::AtomicU64,
    /// Fault injection for tests: holds the next served session between reading the heads it
    /// opens with and starting it (`None` in normal operation; see [`Shared::hold_next_session`]).
    held_session: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    /// The staff: accounts, sessions, the login guard (the editor and the control channel).
    pub staff: Arc<crate::staff::Staff>,
    /// Proxies whose `X-Forwarded-For` names the client (settings: `trusted_proxies`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Imports being received (control socket and editor together, at most
    /// [`CONTROL_UPLOADS_MAX`]).
    pub uploads: Uploads,
    /// Contact details served per client address ([`crate::ratelimit::contacts`]).
    contacts: Mutex<crate::ratelimit::Limiter>,
    /// Aggregator: its newest checkpoint, offered to every session (the checkpoint task in
    /// `runtime.rs` signs it).
    pub checkpoint: watch::Sender<Option<Arc<VerifiedCheckpoint>>>,
    /// Aggregator: the regions' cosignatures it kept, relayed to every session.
    pub cosignatures: broadcast::Sender<Arc<Vec<SignedCosignature>>>,
    /// True once the data directory switched to a rotated key: whoever runs the node starts
    /// it again, under the new key (see `crate::local::Handover`).
    pub switched: watch::Sender<bool>,
    /// A pinned aggregator refused this node's key as one that handed its region over
    /// ([`ErrorCode::Rotated`]): it holds the rotation.
    rotation_held: std::sync::atomic::AtomicBool,
}

/// Cosignature messages waiting for a slow session, at most (a lagging one skips to the
/// newest: every region cosigns again at the next checkpoint).
const COSIGNATURE_QUEUE: usize = 64;

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Starts the node's writer; `shutdown` turns true when the node stops.
    pub fn new(
        node: Arc<LocalNode>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Shared>, NodeError> {
        Shared::with_proxies(node, shutdown, Vec::new())
    }

    /// [`Shared::new`], taking the client address from `X-Forwarded-For` when a request comes
    /// from one of `trusted_proxies`.
    pub fn with_proxies(
        node: Arc<LocalNode>,
        shutdown: watch::Receiver<bool>,
        trusted_proxies: Vec<std::net::IpAddr>,
    ) -> Result<Arc<Shared>, NodeError> {
        let gate = Arc::new(Gate::default());
        let writer = Writer::start(node.clone(), gate.clone())?;
        let staff = Arc::new(crate::staff::Staff::new(
            node.dir(),
            node.key().to_bytes().as_slice(),
        ));
        let trusted_proxies = trusted_proxies
            .into_iter()
            .map(|ip| ip.to_canonical())
            .collect();
        Ok(Arc::new(Shared {
            node: ReadModel::of(&node),
            writer,
            gate,
            peers: Mutex::new(BTreeMap::new()),
            shutdown,
            metrics: crate::metrics::Metrics::default(),
            per_peer: Mutex::new(BTreeMap::new()),
            signers: Mutex::new(BTreeMap::new()),
            next_signer_token: std::sync::atomic::AtomicU64::new(0),
            held_session: Mutex::new(None),
            staff,
            trusted_proxies,
            uploads: Uploads::default(),
            contacts: Mutex::new(crate::ratelimit::contacts()),
            checkpoint: watch::Sender::new(None),
            cosignatures: broadcast::Sender::new(COSIGNATURE_QUEUE),
            switched: watch::Sender::new(false),
            rotation_held: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// A pinned aggregator refused this node's key as one that handed its region over: it
    /// holds the rotation.
    pub(crate) fn note_rotation_held(&self) {
        self.rotation_held
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// An aggregator holds this node's own log up to `seq`: its acknowledgement said so, or
    /// (after a rotation) it refused the key for the rotation it holds. Both are the
    /// aggregator's own word; nothing else counts.
    pub(crate) fn own_log_delivered(&self, seq: u64) -> bool {
        lock(&self.peers)
            .values()
            .any(|p| p.own_acked.is_some_and(|a| a >= seq))
            || self
                .rotation_held
                .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The client address of a request (see `crate::login::client_address`).
    pub fn client_address(
        &self,
        peer: std::net::SocketAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        crate::login::client_address(peer, headers, &self.trusted_proxies)
    }

    /// May `client` be shown one more researcher's contact details now? `Err(wait)`: not
    /// before `wait` (counted in `/metrics`).
    pub fn contact_view(&self, client: std::net::IpAddr) -> Result<(), std::time::Duration> {
        let key = crate::login::address_key(client);
        let r = lock(&self.contacts).take(key, std::time::Instant::now());
        if r.is_err() {
            self.metrics
                .contacts_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    /// A slot for one more connection from `peer`, held while it lives; `None` when the peer
    /// has [`PEER_CONNECTIONS_MAX`] already.
    pub fn peer_connection(self: &Arc<Self>, peer: NodeId) -> Option<PeerSlot> {
        let mut map = lock(&self.per_peer);
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

    /// Claims the one sync session `peer` may hold here, from `address`: `Err` with the live
    /// session of that key (its refusals counted) when it has one. Two running copies of one
    /// key would sign the same seqs and fork its log; the first keeps its session.
    pub fn claim_signer(
        self: &Arc<Self>,
        peer: NodeId,
        conn: &quinn::Connection,
    ) -> Result<SignerSlot, Signer> {
        self.claim_signer_over(peer, conn, None)
    }

    /// [`Shared::claim_signer`], taking the place of `stale` (the token of a session found
    /// dead) if it still holds it.
    fn claim_signer_over(
        self: &Arc<Self>,
        peer: NodeId,
        conn: &quinn::Connection,
        stale: Option<u64>,
    ) -> Result<SignerSlot, Signer> {
        let address = conn.remote_address();
        let mut map = lock(&self.signers);
        if let Some(live) = map.get_mut(&peer)
            && Some(live.token) != stale
        {
            let seen = live.clone();
            live.refused += 1;
            return Err(seen);
        }
        let token = self
            .next_signer_token
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        map.insert(
            peer,
            Signer {
                address,
                since_ms: now_ms(),
                refused: 0,
                conn: conn.clone(),
                token,
            },
        );
        Ok(SignerSlot {
            shared: self.clone(),
            peer,
            token,
        })
    }

    /// A sync session of `peer` met `live`, the session that key holds here. If `live`'s peer
    /// is gone (a crash, a lost network: nothing arrived on its connection, keep-alives
    /// included, for `SILENT_FOR`), it is closed and the new session takes its place; a
    /// session that answers keeps it (`Err`: the second running copy is refused).
    pub async fn claim_signer_from(
        self: &Arc<Self>,
        peer: NodeId,
        conn: &quinn::Connection,
        live: Signer,
    ) -> Result<SignerSlot, Signer> {
        let before = live.conn.stats().udp_rx.datagrams;
        let gone = live.conn.close_reason().is_some()
            || tokio::select! {
                _ = tokio::time::sleep(SILENT_FOR) => live.conn.stats().udp_rx.datagrams == before,
                _ = live.conn.closed() => true,
            };
        if !gone {
            return Err(live);
        }
        live.conn.close(
            spindel_protocol::sync::ErrorCode::Done.code().into(),
            b"replaced by a new session of this key",
        );
        tracing::info!(peer = %peer.short(), old_address = %live.address, address = %conn.remote_address(), "a region's previous session was silent; its new session takes its place");
        self.claim_signer_over(peer, conn, Some(live.token))
    }

    /// Fault injection for tests: holds the next served session after it read its opening
    /// heads, until released, so other sessions can announce new heads in between (an event,
    /// not a guessed duration).
    pub fn hold_next_session(&self) -> HeldSession {
        let (paused_tx, paused) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        *lock(&self.held_session) = Some((paused_tx, release_rx));
        HeldSession { paused, release }
    }

    /// Waits here if a test holds the next session (see [`Shared::hold_next_session`]).
    pub(crate) async fn pass_held_session(&self) {
        let held = lock(&self.held_session).take();
        if let Some((paused, release)) = held {
            let _ = paused.send(());
            let _ = release.await;
        }
    }

    /// Every new head this node announces (for benchmarks and tests).
    pub fn subscribe_heads(&self) -> broadcast::Receiver<(NodeId, u64)> {
        self.writer.events().subscribe_heads()
    }

    /// The peers this node dials, the sessions it serves, and on an aggregator every region
    /// it admits, connected or not (by its admitted name), so a lost region stays in view.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let mut out: Vec<PeerStatus> = lock(&self.peers).values().cloned().collect();
        let now = now_ms();
        for p in out.iter_mut().filter(|p| p.connected) {
            p.last_seen_ms = Some(now);
        }
        if out.iter().any(|p| p.own_acked.is_some()) {
            let own = self.node.own_head().ok().flatten().map_or(0, |h| h.seq);
            for p in &mut out {
                p.own_not_sent = p.own_acked.map(|a| own.saturating_sub(a));
            }
        }
        if self.node.config().role != crate::local::Role::Aggregator {
            return out;
        }
        let Ok(list) = self.node.admission_list() else {
            return out;
        };
        let names: BTreeMap<String, Option<String>> =
            list.into_iter().map(|(id, n)| (id.to_hex(), n)).collect();
        // A region no longer admitted is shown while its session lasts only.
        out.retain(|p| p.role != "region" || p.connected || names.contains_key(&p.node_id));
        for p in out.iter_mut().filter(|p| p.role == "region") {
            if let Some(name) = names.get(&p.node_id) {
                p.name = name.clone();
            }
        }
        for (id, name) in names {
            if !out.iter().any(|p| p.role == "region" && p.node_id == id) {
                out.push(PeerStatus {
                    node_id: id,
                    name,
                    last_seen_ms: None,
                    address: String::new(),
                    role: "region".into(),
                    connected: false,
                    lag: 0,
                    last_error: None,
                    retry_in_ms: None,
                    own_acked: None,
                    own_not_sent: None,
                });
            }
        }
        out
    }

    pub(crate) fn set_peer(&self, key: &str, update: impl FnOnce(&mut PeerStatus)) {
        if let Some(p) = lock(&self.peers).get_mut(key) {
            update(p);
        }
    }

    pub(crate) fn add_peer(&self, key: String, status: PeerStatus) {
        lock(&self.peers).insert(key, status);
    }

    pub(crate) fn remove_peer(&self, key: &str) {
        lock(&self.peers).remove(key);
    }

    /// `status` of the running node, with its live peers.
    pub async fn status(&self) -> Result<crate::local::Status, NodeError> {
        let mut status = self.blocking(|n| Ok(n.status()?)).await?;
        status.peers = self
            .peers()
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect();
        status.other_copy = self.gate.other_copy();
        if self.node.config().role == crate::local::Role::Region {
            status.not_sent = self.not_sent();
            if let (Some(copy), Some(range)) = (&status.other_copy, &status.not_sent) {
                status.other_copy_advice = Some(crate::local::other_copy_advice(
                    range,
                    crate::gate::other_copy_address(copy),
                    self.gate.other_copy_held(),
                ));
            }
            status.offline = self.gate.offline();
        }
        Ok(status)
    }

    /// Own entries this node holds that no pinned aggregator has acknowledged (see
    /// `crate::gate::not_sent`).
    pub fn not_sent(&self) -> Option<crate::local::NotSent> {
        let own = self.node.own_head().ok().flatten().map_or(0, |h| h.seq);
        let acked = lock(&self.peers).values().filter_map(|p| p.own_acked).max();
        let held = self.gate.other_copy_held();
        crate::gate::not_sent(own, acked, self.node.offline_from(), held).map(|(first, last)| {
            crate::local::NotSent {
                first,
                last,
                count: last - first + 1,
            }
        })
    }

    /// A receiver that turns true when the node shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Runs reads of the node on the blocking pool; they answer as the read model does.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadModel) -> Result<T, ReadError> + Send + 'static,
    ) -> Result<T, ReadError> {
        let node = self.node.clone();
        match tokio::task::spawn_blocking(move || f(&node)).await {
            Ok(r) => r,
            Err(e) => Err(ReadError::Task(e.to_string())),
        }
    }

    /// Runs work on the node (reads, a backup, its marker files) on the blocking pool.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadModel) -> Result<T, NodeError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let node = self.node.clone();
        match tokio::task::spawn_blocking(move || f(&node)).await {
            Ok(r) => r,
            Err(e) => Err(NodeError::Task(e.to_string())),
        }
    }
}
