//! The connection driver: one sync session ([`spindel_protocol::sync::Session`], sans-IO) on one
//! QUIC stream, driven to its end, like quinn's `connection.rs` around `quinn-proto`.
//!
//! A dedicated reader task per stream is the only thing that awaits the socket, so no frame is
//! ever cut by a cancelled read. Reads of the store run on the blocking pool; every write the
//! session asks for (a batch to apply, fork proofs, an admission list) goes to the node's
//! [`crate::writer::Writer`], which announces new heads to every live session; each pushes
//! what its peer lacks at once. [`crate::accept`] answers what a peer opens (a session or
//! queries); [`session_with_aggregator`] is the dialing side.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use spindel_protocol::NodeId;
use spindel_protocol::sync::{
    AdmissionOutcome, BATCH_BYTES_MAX, ErrorCode, Lifetime, Message, Output, PeerRole,
    PeerStanding, Session, SessionConfig, SyncEntry,
};
use tokio::sync::{broadcast, mpsc, watch};

use crate::link::LinkError;
use crate::local::{NodeError, Role, WitnessJob};
use crate::pipeline::Pipeline;
use crate::read::{ReadModel, Reads};
use crate::received::{AppliedBatch, Received};
use crate::shared::Shared;
use crate::store::Incoming;
use crate::transport::{FramedRecv, FramedSend, PeerAddr, Traffic, Transport, TransportError};

/// How often a session refreshes the lag it reports in `status`.
const LAG_REFRESH: Duration = Duration::from_millis(250);
/// How long a closing side waits for the peer to read its error frame.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// Frames buffered between a stream's reader task and its session.
const READ_QUEUE_FRAMES: usize = 2;

/// Loads up to `max` entries of `author` from `from_seq`, cut at [`BATCH_BYTES_MAX`] bytes.
fn load_batch(
    node: &ReadModel,
    author: NodeId,
    from_seq: u64,
    max: usize,
) -> Result<Vec<SyncEntry>, NodeError> {
    Ok(within_batch_bytes(
        node.entries_from(&author, from_seq, max)?,
    ))
}

/// Stored entries as they travel, cut where they would pass [`BATCH_BYTES_MAX`] (at least
/// one): a batch, or a want's answer, stays well under the frame cap.
pub(crate) fn within_batch_bytes(entries: impl IntoIterator<Item = Incoming>) -> Vec<SyncEntry> {
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

/// What a session driver works with.
pub(crate) struct SessionCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: quinn::Connection,
    pub(crate) peer: NodeId,
    /// Key of the peer in the status table.
    pub(crate) peer_key: String,
    /// Told of admission (membership) changes: an aggregator serving a region sends it the
    /// list; a node that dialed an aggregator asks it to retry what it refused.
    pub(crate) admissions: Option<watch::Receiver<u64>>,
}

/// Resolves with the new value when `rx` sees one; never when there is none to watch.
async fn changed(rx: &mut Option<watch::Receiver<u64>>) -> u64 {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            *rx.borrow_and_update()
        }
        None => std::future::pending().await,
    }
}

/// Resolves at `deadline`; never without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// The session's clock: tokio's, so a test that pauses time pauses the session's timers.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// What the catch-up gate has of a pinned aggregator's opening heads ([`Output::OwnLogAt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnLog {
    /// Not heard yet (or the peer is no pinned aggregator).
    NotYet,
    /// Heard, not yet told: the gate was not waiting then.
    Heard(u64),
    /// Told; entries of the own log that arrive since may open the gate.
    Told,
}

/// While the gate waits: tells it how far a pinned aggregator holds the own log (once), or
/// has it look again (entries of the own log may have arrived).
fn tell_gate(shared: &Shared, peer: NodeId, own_log: &mut OwnLog) {
    if !shared.gate.is_waiting() {
        return;
    }
    match *own_log {
        OwnLog::NotYet => {}
        OwnLog::Heard(seq) => {
            *own_log = OwnLog::Told;
            shared.gate.own_log_at(&shared.node, peer, seq);
        }
        OwnLog::Told => shared.gate.consider(&shared.node),
    }
}

/// Drives one sync session over one stream until it ends: moves frames, runs the loads,
/// applies and store reads the session asks for, and turns the node's channels (heads, forks,
/// admissions), its clock and its shutdown into calls on the session.
pub(crate) async fn drive_session(
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
        mut admissions,
    } = ctx;
    let (tx, mut rx) = mpsc::channel::<Result<Option<Message>, TransportError>>(READ_QUEUE_FRAMES);
    let reader = tokio::spawn(read_frames(recv, tx));
    let mut shutdown = shared.shutdown_signal();
    let me = shared.node.node_id();
    let pinned = session.peer_is_pinned_aggregator();
    let expected_author = session.expected_author();
    let mut last_lag = Instant::now()
        .checked_sub(LAG_REFRESH)
        .unwrap_or_else(Instant::now);
    let mut own_log = OwnLog::NotYet;
    let mut forks_rx = shared.writer.events().subscribe_forks();
    session.forks_changed(*forks_rx.borrow_and_update());
    // Aggregator: its checkpoints and the regions' cosignatures go to every session.
    let mut checkpoint_rx = shared.checkpoint.subscribe();
    if let Some(cp) = checkpoint_rx.borrow_and_update().clone() {
        session.offer_checkpoint(cp);
    }
    let mut cosignatures_rx = shared.cosignatures.subscribe();
    // Region: how far the aggregator sent each author's entries in this session (an entry it
    // sent that this node refused was not withheld).
    let mut sent_by_peer: BTreeMap<NodeId, u64> = BTreeMap::new();
    // Received batches: verified while the batch before is applied, applied in order.
    let mut pipeline = Pipeline::default();
    let result = loop {
        while let Some(out) = session.poll() {
            // Anything else touches what those batches change: they are in first.
            if !matches!(
                out,
                Output::Send(_) | Output::Load { .. } | Output::Apply { .. }
            ) && let Err(e) = pipeline
                .drain(&mut session, pinned.then_some(&mut sent_by_peer))
                .await
            {
                return store_failed(&conn, &reader, e);
            }
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
                        Err(e) => return store_failed(&conn, &reader, e),
                    }
                }
                Output::Apply { entries } => {
                    let mut batch = BTreeMap::new();
                    note_sent(&mut batch, &entries);
                    let received = Received {
                        from: peer,
                        entries,
                        expected_author,
                        vouched: pinned,
                    };
                    pipeline.push(&shared, received, batch);
                }
                Output::Forks(proofs) => {
                    if let Err(e) = shared.writer.fork_proofs(proofs).await {
                        return finish(&reader, Err(e.into()));
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
                    let received = Received {
                        from: peer,
                        entries,
                        expected_author,
                        vouched: false,
                    };
                    if let Err(e) = ingest(&shared, received).await {
                        return store_failed(&conn, &reader, e);
                    }
                }
                Output::Admitted(_) if !pinned => {
                    tracing::debug!(peer = %peer.short(), "ignored an admission list from a peer this node did not dial");
                }
                Output::Admitted(list) => {
                    let r = shared.writer.take_admissions(peer, list).await;
                    match r {
                        Ok(changes) => {
                            for id in &changes.removed {
                                tracing::info!(author = %id.short(), aggregator = %peer.short(), "a region is no longer admitted: the aggregator's list leaves it out");
                            }
                            let own = &shared.node.config().name;
                            for (id, name) in changes.renamed {
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
                Output::LinkUp => {
                    shared.gate.session_accepted(peer);
                    shared.set_peer(&peer_key, |p| {
                        p.connected = true;
                        p.last_error = None;
                        p.retry_in_ms = Some(0);
                    });
                    if session.lifetime() == Lifetime::Live {
                        tracing::info!(peer = %peer.short(), address = %conn.remote_address(), "link to aggregator up");
                    }
                    // What the aggregator serves now, against what it signed and acknowledged.
                    let job = WitnessJob::Heads {
                        from: peer,
                        heads: session.peer_heads().clone(),
                    };
                    match shared.writer.witness(job).await {
                        Ok(done) => log_findings(peer, &done),
                        Err(e) => return store_failed(&conn, &reader, e),
                    }
                }
                Output::OwnLogAt(seq) => {
                    // Fixed at the aggregator's opening heads (later acks raise what the
                    // session knows of the peer).
                    own_log = OwnLog::Heard(seq);
                    tell_gate(&shared, peer, &mut own_log);
                }
                Output::ReadTips => {
                    if let Ok(heads) = shared.node.heads() {
                        session.send_tips(
                            heads.into_iter().map(|(a, h)| (a, h.seq, h.hash)).collect(),
                        );
                    }
                }
                Output::ReadHeaderOnly { max } => {
                    if let Ok(missing) = shared.node.header_only_current(max)
                        && !missing.is_empty()
                    {
                        tracing::info!(peer = %peer.short(), records = missing.len(), "asking the aggregator for records held without their content");
                        session.send_want(missing);
                    }
                }
                Output::ReadForks => {
                    let forks = shared
                        .blocking(|n| Ok(n.forks()?))
                        .await
                        .unwrap_or_default();
                    session.send_forks(
                        forks
                            .into_iter()
                            .map(|(_, p)| (p.first, p.second))
                            .collect(),
                    );
                }
                Output::ReadAdmissions => {
                    // A region whose session this node no longer takes (under a charter: a
                    // revoked or replaced key, still relayed) is left out of its own list, so
                    // its session ends.
                    let read = shared
                        .blocking(move |n| {
                            Ok((
                                n.admission_list()?,
                                n.admits_session(&peer)?,
                                n.handed_over(&peer),
                            ))
                        })
                        .await;
                    let list = match read {
                        Ok((mut list, admitted, rotated)) => {
                            if !admitted {
                                list.retain(|(a, _)| *a != peer);
                            }
                            if rotated {
                                session.peer_rotated();
                            }
                            list
                        }
                        Err(e) => return store_failed(&conn, &reader, e),
                    };
                    if session.peer_is_mirror()
                        && !shared
                            .blocking(move |n| Ok(n.is_mirror(&peer)?))
                            .await
                            .unwrap_or(false)
                    {
                        tracing::info!(peer = %peer.short(), "ended the session of an aggregator no longer allowed to mirror");
                        session.no_longer_mirrored();
                    } else if session.admission_list(list) == AdmissionOutcome::PeerNoLongerAdmitted
                    {
                        tracing::info!(peer = %peer.short(), "ended the session of a region no longer admitted");
                    }
                }
                Output::Rescan => rescan_heads(&shared, &mut session).await,
                Output::Checkpoint(signed) => {
                    let job = WitnessJob::Checkpoint {
                        from: peer,
                        signed,
                        acked: session.peer_heads().get(&me).copied().unwrap_or(0),
                        sent: sent_by_peer.clone(),
                    };
                    match shared.writer.witness(job).await {
                        Ok(done) => {
                            log_findings(peer, &done);
                            // Regions are the witnesses: a mirror checks its upstream's
                            // checkpoints (and logs what it finds) but does not cosign.
                            if let Some(c) = done.cosignature
                                && my_role(&shared.node) == PeerRole::Region
                            {
                                session.send_cosignatures(vec![c]);
                            }
                        }
                        Err(e) => return store_failed(&conn, &reader, e),
                    }
                }
                Output::Cosignatures(list) => {
                    let job = WitnessJob::Cosignatures {
                        from: peer,
                        list,
                        relayed: pinned,
                    };
                    match shared.writer.witness(job).await {
                        Ok(done) => {
                            log_findings(peer, &done);
                            if !done.kept.is_empty() && !pinned {
                                // Aggregator: every region sees who witnessed what.
                                let _ = shared.cosignatures.send(Arc::new(done.kept));
                            }
                        }
                        Err(e) => return store_failed(&conn, &reader, e),
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
        tell_gate(&shared, peer, &mut own_log);
        // The lag shown in `status`: a scan of the store's heads, so at most every 250 ms.
        if last_lag.elapsed() >= LAG_REFRESH || session.is_idle() {
            let lag = shared_heads_lag(
                &shared,
                me,
                session.local_heads(),
                session.peer_heads(),
                expected_author.is_none(),
            );
            // How far a dialed aggregator holds (acknowledged) this node's own log: its
            // opening heads, raised by every ack (sent once a batch is durable there).
            let acked = (pinned && session.heads_received())
                .then(|| session.peer_heads().get(&me).copied().unwrap_or(0));
            shared.set_peer(&peer_key, |p| {
                p.lag = lag;
                if acked.is_some() {
                    p.own_acked = acked;
                }
            });
            if let Some(acked) = acked
                && session.heads_received()
                && let Err(e) = shared.node.own_acked(acked)
            {
                tracing::warn!(error = %e, "cannot update the offline marker");
            }
            last_lag = Instant::now();
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            Some((sent, applied)) = pipeline.next(), if !pipeline.is_empty() => match applied {
                Ok(a) => pipeline.acknowledge(&mut session, pinned.then_some(&mut sent_by_peer), sent, a),
                Err(e) => return store_failed(&conn, &reader, e),
            },
            frame = rx.recv() => match frame {
                Some(Ok(Some(m))) => {
                    if let Err(e) = session.handle(m) {
                        if e.code == ErrorCode::Protocol {
                            tracing::warn!(peer = %peer.short(), error = %e, "peer broke the protocol");
                        } else if session.lifetime() == Lifetime::Live {
                            tracing::warn!(peer = %peer.short(), error = %e, "refused the peer's session");
                        } else {
                            // A one-shot sync says it once, as its error.
                            tracing::debug!(peer = %peer.short(), error = %e, "refused the peer's session");
                        }
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
                Ok((author, seq)) => {
                    // The admission channel first: a newly admitted region's name goes out
                    // before its first entries (the session holds the head for the list).
                    if let Some(rx) = admissions.as_mut() {
                        session.admissions_changed(*rx.borrow_and_update());
                    }
                    pipeline.local_head(&mut session, author, seq);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(e) = pipeline.drain(&mut session, pinned.then_some(&mut sent_by_peer)).await {
                        return store_failed(&conn, &reader, e);
                    }
                    rescan_heads(&shared, &mut session).await;
                }
                Err(broadcast::error::RecvError::Closed) => break Ok(()),
            },
            // The timer fired: its deadline has passed, whatever the clocks round to.
            () = sleep_until(deadline) => {
                session.handle_timeout(deadline.map_or_else(now, |d| now().max(d)));
            }
            _ = forks_rx.changed() => session.forks_changed(*forks_rx.borrow_and_update()),
            _ = checkpoint_rx.changed() => {
                if let Some(cp) = checkpoint_rx.borrow_and_update().clone() {
                    session.offer_checkpoint(cp);
                }
            }
            relayed = cosignatures_rx.recv() => {
                // To the regions this aggregator serves (not to an upstream or a mirror).
                if let Ok(list) = relayed
                    && expected_author.is_some()
                {
                    session.send_cosignatures(list.to_vec());
                }
            }
            generation = changed(&mut admissions) => session.admissions_changed(generation),
            _ = shutdown.changed() => {
                conn.close(ErrorCode::Done.code().into(), b"node shutting down");
                break Ok(());
            }
        }
    };
    finish(&reader, result)
}

/// Raises, per author, how far the peer sent entries (the batch's headers).
fn note_sent(sent: &mut BTreeMap<NodeId, u64>, entries: &[SyncEntry]) {
    for e in entries {
        if let Ok(h) = spindel_protocol::entry::Header::decode(&e.entry.header) {
            let s = sent.entry(h.author).or_insert(0);
            *s = (*s).max(h.seq);
        }
    }
}

/// Every finding of a witness job is a warning in the log; a refused checkpoint or
/// cosignature a line of its own.
fn log_findings(peer: NodeId, done: &crate::local::WitnessDone) {
    for f in &done.findings {
        tracing::warn!(
            finding = f.kind.name(),
            aggregator = %f.aggregator.short(),
            region = %f.region.map_or_else(|| "-".to_string(), |r| r.short()),
            detail = %f.detail,
            "audit finding"
        );
    }
    if let Some(reason) = done.refused {
        tracing::warn!(peer = %peer.short(), reason, "refused a checkpoint or cosignature");
    }
}

/// Verifies a received batch on the blocking pool, then has the writer apply it.
async fn ingest(shared: &Shared, received: Received) -> Result<AppliedBatch, NodeError> {
    let checked = shared.blocking(move |n| received.check(n)).await?;
    let applied = shared.writer.ingest(checked).await?;
    shared.metrics.accepted(applied.accepted);
    Ok(applied)
}

/// The store failed under a session: the peer is told (`Internal`) and the session ends.
fn store_failed(
    conn: &quinn::Connection,
    reader: &tokio::task::JoinHandle<()>,
    e: NodeError,
) -> Result<(), LinkError> {
    conn.close(ErrorCode::Internal.code().into(), b"store");
    finish(reader, Err(e.into()))
}

/// The (author, seq) of every tip the peer sent whose entry here has another hash.
fn differing_tips(
    node: &ReadModel,
    tips: Vec<(NodeId, u64, spindel_protocol::entry::Hash)>,
) -> Result<Vec<(NodeId, u64)>, NodeError> {
    let mut want = Vec::new();
    for (author, seq, hash) in tips {
        if let Some(entry) = node.entry(&author, seq)?
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
    node: &ReadModel,
    list: Vec<(NodeId, u64)>,
    only: Option<NodeId>,
) -> Result<Vec<SyncEntry>, NodeError> {
    let mut found = Vec::new();
    for (author, seq) in list {
        if only.is_some_and(|o| o != author) {
            continue;
        }
        if let Some(inc) = node.entries_from(&author, seq, 1)?.pop()
            && inc.entry.header().seq == seq
        {
            found.push(inc);
        }
    }
    Ok(within_batch_bytes(found))
}

/// Tells the session every head it relays (after missed announcements, and when it asks:
/// [`Output::Rescan`]): on an aggregator, of the authors it offers already, and of others only
/// when they are admitted (a region whose admission ended is not relayed; the session ignores
/// those whose admission ended during it).
async fn rescan_heads(shared: &Shared, session: &mut Session) {
    let Ok(heads) = shared.blocking(|n| Ok(n.heads()?)).await else {
        return;
    };
    let aggregator = my_role(&shared.node) == PeerRole::Aggregator;
    let mut others = Vec::new();
    for (a, h) in heads {
        if !aggregator || session.local_heads().contains_key(&a) {
            session.local_head(a, h.seq);
        } else {
            others.push((a, h.seq));
        }
    }
    if others.is_empty() {
        return;
    }
    // Few: a region admitted since the session began, or one whose admission ended earlier.
    let admitted = shared
        .blocking(move |n| {
            let mut out = Vec::new();
            for (a, seq) in others {
                if n.author(&a)?.is_some_and(|m| m.admitted) {
                    out.push((a, seq));
                }
            }
            Ok(out)
        })
        .await;
    if let Ok(admitted) = admitted {
        for (a, seq) in admitted {
            session.local_head(a, seq);
        }
    }
}

fn finish(reader: &tokio::task::JoinHandle<()>, r: Result<(), LinkError>) -> Result<(), LinkError> {
    reader.abort();
    r
}

/// Entries this node holds that the peer lacks, for the authors this node sends it (those the
/// session offers: `offered`).
fn shared_heads_lag(
    shared: &Shared,
    me: NodeId,
    offered: &BTreeMap<NodeId, u64>,
    peer: &BTreeMap<NodeId, u64>,
    send_all: bool,
) -> u64 {
    // Cheap: the store's heads are a small prefix scan.
    let Ok(heads) = shared.node.heads() else {
        return 0;
    };
    heads
        .iter()
        .filter(|(a, _)| (send_all || **a == me) && offered.contains_key(a))
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

pub(crate) fn my_role(node: &ReadModel) -> PeerRole {
    match node.config().role {
        Role::Region => PeerRole::Region,
        Role::Aggregator => PeerRole::Aggregator,
    }
}

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
    let conn = transport.connect(peer).await?;
    let (send, recv) = conn.open_bi().await.map_err(TransportError::from)?;
    // Subscribe before reading the heads (see serve_connection).
    let heads_rx = shared.subscribe_heads();
    // A change of membership here asks the aggregator to send again what was refused.
    let mut admissions_rx = shared.writer.events().subscribe_admissions();
    let admissions_generation = *admissions_rx.borrow_and_update();
    // An aggregator dials only the upstream it mirrors, and offers it the regions it admits.
    let role = my_role(&shared.node);
    let heads = shared
        .blocking(|n| {
            Ok(n.relay_heads()?
                .into_iter()
                .map(|(a, h)| (a, h.seq))
                .collect())
        })
        .await?;
    let session = Session::new(SessionConfig {
        me: shared.node.node_id(),
        peer: peer.node_id,
        role,
        name: shared.node.config().name.clone(),
        heads,
        // A dialed aggregator is pinned (by a mirror: its upstream).
        standing: match role {
            PeerRole::Aggregator => PeerStanding::Upstream,
            _ => PeerStanding::Member,
        },
        admitted: Vec::new(),
        admissions_generation,
        charter: shared.node.charter_id(),
        lifetime: match mode {
            SessionMode::Live => Lifetime::Live,
            SessionMode::UntilCaughtUp => Lifetime::UntilCaughtUp,
        },
        now: now(),
    });
    let traffic = Arc::new(Traffic::default());
    let send = FramedSend::with_traffic(send, traffic.clone());
    let recv = FramedRecv::with_traffic(recv, transport.limits().frame_bytes_max, traffic.clone());
    let ctx = SessionCtx {
        shared: shared.clone(),
        conn: conn.clone(),
        peer: peer.node_id,
        peer_key: key.to_string(),
        admissions: Some(admissions_rx),
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
