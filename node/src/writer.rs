//! The one writer of a running node: an actor on a thread of its own, and the [`Writer`]
//! handle every other part holds (like iroh-docs' actor and handle).
//!
//! Every write of a running node is a job for it: publish, import, delete, allow, a batch a
//! peer sent, fork proofs, an aggregator's admission list, erasing purged payloads, the
//! witness's checkpoints. The actor runs them one at a time, so choosing the next own seq,
//! signing and applying never interleave, and after each it announces what changed
//! ([`Events`]): new heads, a new fork proof, a new admission. No write path forgets to.
//!
//! An import is long (a 50 MB file signs for tens of seconds). The actor hands it to a worker
//! thread and keeps the own log reserved for it: own-log jobs that arrive meanwhile (publish,
//! delete, another import) wait in order, while peers' batches and admissions go on, as they
//! did before the actor. Stopping the writer cancels an import before its commit point and
//! waits for one past it.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use spindel_protocol::NodeId;
use spindel_protocol::entry::{Entry, RecordId, WireEntry};
use spindel_protocol::ingest::Refusal;
use spindel_protocol::record::Kind;
use tokio::sync::{mpsc, oneshot, watch};

use crate::gate::Gate;
use crate::local::{
    Allowed, Deleted, Disallowed, Imported, LocalNode, NodeError, Published, WitnessDone,
    WitnessJob, now_ms,
};
use crate::read::{ReadModel, Reads};
use crate::received::{AppliedBatch, Checked};
use crate::store::{AdmissionChanges, ApplyOptions, Outcome};

/// Jobs queued for the writer; a sender waits while it is full.
pub const WRITER_QUEUE: usize = 256;
pub use crate::events::Events;

/// The answer to a job queued at the writer.
#[derive(Debug)]
pub struct Answer<T> {
    answer: oneshot::Receiver<Result<T, NodeError>>,
    stopped: watch::Receiver<bool>,
}

impl<T> Answer<T> {
    /// Waits until the writer has done the job.
    pub async fn wait(self) -> Result<T, NodeError> {
        // A reply dropped unanswered: the job was queued behind a stop, or it panicked (the
        // writer logged it and goes on).
        self.answer.await.map_err(|_| {
            if *self.stopped.borrow() {
                NodeError::Stopped
            } else {
                NodeError::Task(
                    "the write failed inside the writer; the node's log says why".into(),
                )
            }
        })?
    }
}

/// An import's file in the data directory.
#[derive(Debug)]
pub struct ImportJob {
    pub kind: Kind,
    /// The file to read.
    pub path: PathBuf,
    /// The name errors give it.
    pub name: String,
    /// Set when the asker went away: the import stops if it has not reached its commit point.
    pub cancel: Arc<AtomicBool>,
    /// Where the import reports how far its signing has come (the editor's progress page).
    pub progress: Option<Arc<ImportProgress>>,
}

/// How far an import has come: `(done, total)` records signed (`total` 0 while the lines are
/// still being checked), as a value to read and an event to wait for.
#[derive(Debug)]
pub struct ImportProgress(watch::Sender<(u64, u64)>);

impl Default for ImportProgress {
    fn default() -> ImportProgress {
        ImportProgress(watch::Sender::new((0, 0)))
    }
}

impl ImportProgress {
    /// `(done, total)` now.
    pub fn get(&self) -> (u64, u64) {
        *self.0.borrow()
    }

    /// Told of every step.
    pub fn subscribe(&self) -> watch::Receiver<(u64, u64)> {
        self.0.subscribe()
    }

    fn set(&self, done: u64, total: u64) {
        self.0.send_replace((done, total));
    }
}

type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

enum Job {
    Publish {
        kind: Kind,
        json: String,
        record_id: Option<RecordId>,
        /// The version the record must still be at (an edit from a form).
        expected: Option<u64>,
        reply: Reply<Published>,
    },
    Delete {
        record_id: RecordId,
        reply: Reply<Deleted>,
    },
    /// `spindel rotate-key`: the rotation entry, signed with the key it retires.
    Rotate {
        reply: Reply<crate::local::Rotated>,
    },
    Import {
        job: ImportJob,
        reply: Reply<Imported>,
    },
    /// The worker an import ran on is done.
    ImportEnded {
        result: Result<Imported, NodeError>,
        reply: Reply<Imported>,
    },
    Allow {
        id: NodeId,
        name: Option<String>,
        reply: Reply<Allowed>,
    },
    AllowMirror {
        id: NodeId,
        reply: Reply<Allowed>,
    },
    Disallow {
        id: NodeId,
        reply: Reply<Disallowed>,
    },
    Ingest {
        batch: Checked,
        reply: Reply<AppliedBatch>,
    },
    ForkProofs {
        proofs: Vec<(WireEntry, WireEntry)>,
        reply: Reply<usize>,
    },
    Admissions {
        from: NodeId,
        list: Vec<(NodeId, Option<String>)>,
        reply: Reply<AdmissionChanges>,
    },
    ErasePending {
        reply: Reply<()>,
    },
    PurgeSettled {
        reply: Reply<crate::store::SettledErasures>,
    },
    Witness {
        job: WitnessJob,
        reply: Reply<WitnessDone>,
    },
    Stop {
        done: oneshot::Sender<()>,
    },
}

impl Job {
    /// Waits while an import holds the own log (stopping too: it waits for the import).
    fn needs_own_log(&self) -> bool {
        matches!(
            self,
            Job::Publish { .. }
                | Job::Delete { .. }
                | Job::Rotate { .. }
                | Job::Import { .. }
                | Job::Stop { .. }
        )
    }
}

/// The handle: cheap to clone, every write of the node goes through it.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// True once the writer let go of the node.
    stopped: watch::Receiver<bool>,
    /// What the handle reads (the gate's questions); the actor alone holds the node.
    read: ReadModel,
    gate: Arc<Gate>,
    events: Arc<Events>,
}

impl Writer {
    /// Starts the writer of `node` on a thread of its own. Own-log writes wait at `gate`.
    pub fn start(node: Arc<LocalNode>, gate: Arc<Gate>) -> Result<Writer, NodeError> {
        let (jobs, rx) = mpsc::channel(WRITER_QUEUE);
        let (stopped_tx, stopped) = watch::channel(false);
        let events = Arc::new(Events::default());
        let actor = Actor {
            node: node.clone(),
            events: events.clone(),
            me: jobs.downgrade(),
            import: None,
            waiting: VecDeque::new(),
        };
        std::thread::Builder::new()
            .name("spindel-writer".into())
            .spawn(move || {
                actor.run(rx);
                stopped_tx.send_replace(true);
            })
            .map_err(|e| NodeError::Task(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            jobs,
            stopped,
            read: ReadModel::of(&node),
            gate,
            events,
        })
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, NodeError> {
        self.queue(job).await?.wait().await
    }

    /// Queues `job` (the writer takes jobs in the order they are queued); its answer comes
    /// with [`Answer::wait`].
    async fn queue<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<Answer<T>, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(job(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        Ok(Answer {
            answer,
            stopped: self.stopped.clone(),
        })
    }

    /// Publishes a record (see [`LocalNode::publish`]) once the own log may be written.
    pub async fn publish(
        &self,
        kind: Kind,
        json: String,
        record_id: Option<RecordId>,
    ) -> Result<Published, NodeError> {
        self.publish_expecting(kind, json, record_id, None).await
    }

    /// A new version written only if the record is still at version `expected` (see
    /// [`LocalNode::publish_expecting`]).
    pub async fn publish_expecting(
        &self,
        kind: Kind,
        json: String,
        record_id: Option<RecordId>,
        expected: Option<u64>,
    ) -> Result<Published, NodeError> {
        self.gate.ready(&self.read).await?;
        let offline = self.gate.offline();
        let mut p = self
            .ask(|reply| Job::Publish {
                kind,
                json,
                record_id,
                expected,
                reply,
            })
            .await?;
        p.offline = self.signed_offline(offline, p.seq).await;
        Ok(p)
    }

    /// Remembers that own entries from `first` on were signed offline (`DIR/offline-from`,
    /// see [`LocalNode::mark_offline`]); returns `offline`.
    async fn signed_offline(&self, offline: bool, first: u64) -> bool {
        if offline {
            let node = self.read.clone();
            let r = tokio::task::spawn_blocking(move || node.mark_offline(first)).await;
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "cannot write the offline marker");
            }
            tracing::warn!(seq = first, "{}", crate::local::OFFLINE_WARNING);
        }
        offline
    }

    /// Deletes an own record (see [`LocalNode::delete`]).
    pub async fn delete(&self, record_id: RecordId) -> Result<Deleted, NodeError> {
        self.gate.ready(&self.read).await?;
        let offline = self.gate.offline();
        let mut d = self.ask(|reply| Job::Delete { record_id, reply }).await?;
        d.offline = self.signed_offline(offline, d.seq).await;
        Ok(d)
    }

    /// Signs the rotation of this region's key (see [`LocalNode::rotate_key`]).
    pub async fn rotate_key(&self) -> Result<crate::local::Rotated, NodeError> {
        self.gate.ready(&self.read).await?;
        let offline = self.gate.offline();
        let r = self.ask(|reply| Job::Rotate { reply }).await?;
        self.signed_offline(offline, r.seq).await;
        Ok(r)
    }

    /// Imports a file of JSON Lines (see [`LocalNode::import`]), all or nothing.
    pub async fn import(&self, job: ImportJob) -> Result<Imported, NodeError> {
        self.read.import_allowed(job.kind)?;
        self.gate.ready(&self.read).await?;
        let offline = self.gate.offline();
        let mut i = self.ask(|reply| Job::Import { job, reply }).await?;
        i.offline = i.imported > 0 && self.signed_offline(offline, i.first_seq).await;
        Ok(i)
    }

    /// Aggregator: admits a region ([`LocalNode::allow`]); connected regions get the new list.
    pub async fn allow(&self, id: NodeId, name: Option<String>) -> Result<Allowed, NodeError> {
        self.ask(|reply| Job::Allow { id, name, reply }).await
    }

    /// Aggregator: allows an aggregator to mirror this one (see [`LocalNode::allow_mirror`]).
    pub async fn allow_mirror(&self, id: NodeId) -> Result<Allowed, NodeError> {
        self.ask(|reply| Job::AllowMirror { id, reply }).await
    }

    /// Aggregator: ends a region's admission ([`LocalNode::disallow`]) and its live session.
    pub async fn disallow(&self, id: NodeId) -> Result<Disallowed, NodeError> {
        self.ask(|reply| Job::Disallow { id, reply }).await
    }

    /// Applies a batch a peer sent ([`Received::check`]ed), announcing the heads it advanced.
    pub async fn ingest(&self, batch: Checked) -> Result<AppliedBatch, NodeError> {
        self.ask(|reply| Job::Ingest { batch, reply }).await
    }

    /// [`Writer::ingest`] in two steps: the batch is queued when this returns, behind every
    /// job queued before it; [`Answer::wait`] waits until it is applied.
    pub async fn queue_ingest(&self, batch: Checked) -> Result<Answer<AppliedBatch>, NodeError> {
        self.queue(|reply| Job::Ingest { batch, reply }).await
    }

    /// Checks fork proofs a peer sent and keeps those that hold; returns how many were new.
    pub async fn fork_proofs(
        &self,
        proofs: Vec<(WireEntry, WireEntry)>,
    ) -> Result<usize, NodeError> {
        self.ask(|reply| Job::ForkProofs { proofs, reply }).await
    }

    /// Region: takes the admission list of `from`, a pinned aggregator; returns what changed.
    pub async fn take_admissions(
        &self,
        from: NodeId,
        list: Vec<(NodeId, Option<String>)>,
    ) -> Result<AdmissionChanges, NodeError> {
        self.ask(|reply| Job::Admissions { from, list, reply })
            .await
    }

    /// Checkpoints and cosignatures: a region witnesses, an aggregator signs and keeps.
    pub async fn witness(&self, job: WitnessJob) -> Result<WitnessDone, NodeError> {
        self.ask(|reply| Job::Witness { job, reply }).await
    }

    /// Erases purged payloads whose erasure failed before.
    pub async fn erase_pending(&self) -> Result<(), NodeError> {
        self.ask(|reply| Job::ErasePending { reply }).await
    }

    /// Erases for good the payloads held for erasure orders that settled by now.
    pub async fn purge_settled(&self) -> Result<crate::store::SettledErasures, NodeError> {
        self.ask(|reply| Job::PurgeSettled { reply }).await
    }

    /// Finishes the queued jobs (an import before its commit point is cancelled) and stops;
    /// later jobs fail with [`NodeError::Stopped`]. Returns once it let go of the node.
    pub async fn stop(&self) {
        let (done, _) = oneshot::channel();
        // A second stop, or one after the queue closed, waits all the same.
        let _ = self.jobs.send(Job::Stop { done }).await;
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|s| *s).await;
    }
}

/// The writer's own state, on its thread.
struct Actor {
    node: Arc<LocalNode>,
    events: Arc<Events>,
    /// To hear back from an import's worker (weak: the handles alone keep the queue open).
    me: mpsc::WeakSender<Job>,
    /// The import that holds the own log, by its cancel flag.
    import: Option<Arc<AtomicBool>>,
    /// Own-log jobs that came while an import ran, in order.
    waiting: VecDeque<Job>,
}

impl Actor {
    /// Runs jobs until a stop (or until every handle is gone); the node is let go on return.
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.blocking_recv() {
            // A job that panics (a bug, a panic inside sled) loses its reply, not the writer.
            let members_at = self.node.store().members_generation();
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step(job)));
            // An act took effect: sessions read the admission list again, as after `allow`.
            if self.node.store().members_generation() != members_at {
                self.events.admission();
            }
            match step {
                Ok(Some(_done)) => {
                    rx.close();
                    // What was queued behind the stop is told the writer stopped.
                    while rx.try_recv().is_ok() {}
                    return;
                }
                Ok(None) => {}
                Err(_) => tracing::error!("a write panicked; the writer goes on"),
            }
        }
    }

    /// Runs one job, or queues it behind a running import; `Some` when it was the stop.
    fn step(&mut self, job: Job) -> Option<oneshot::Sender<()>> {
        if job.needs_own_log() && self.import.is_some() {
            if let Job::Stop { .. } = job {
                // Stopping cancels every import before its commit point: the running one and
                // those queued behind it.
                let queued = self.waiting.iter().filter_map(|j| match j {
                    Job::Import { job, .. } => Some(&job.cancel),
                    _ => None,
                });
                for cancel in self.import.iter().chain(queued) {
                    cancel.store(true, Ordering::Release);
                }
            }
            self.waiting.push_back(job);
            return None;
        }
        match job {
            Job::Publish {
                kind,
                json,
                record_id,
                expected,
                reply,
            } => {
                let r = self.node.publish_expecting(
                    kind,
                    &json,
                    record_id,
                    expected,
                    &mut rand_core::OsRng,
                    now_ms(),
                );
                self.own_written();
                let _ = reply.send(r);
            }
            Job::Delete { record_id, reply } => {
                let r = self.node.delete(record_id, now_ms());
                self.own_written();
                let _ = reply.send(r);
            }
            Job::Rotate { reply } => {
                let r = self.node.rotate_key(&mut rand_core::OsRng, now_ms());
                self.own_written();
                let _ = reply.send(r);
            }
            Job::Import { job, reply } => self.start_import(job, reply),
            Job::ImportEnded { result, reply } => {
                self.import = None;
                self.own_written();
                let _ = reply.send(result);
                while let Some(next) = self.waiting.pop_front() {
                    if let Some(done) = self.step(next) {
                        return Some(done);
                    }
                    if self.import.is_some() {
                        break;
                    }
                }
            }
            Job::Allow { id, name, reply } => {
                let r = self.node.allow(id, name);
                if let Ok(allowed) = &r {
                    tracing::info!(region = %id.short(), name = allowed.name.as_deref().unwrap_or("-"), "admitted a region");
                    self.events.admission();
                }
                let _ = reply.send(r);
            }
            Job::AllowMirror { id, reply } => {
                let r = self.node.allow_mirror(id);
                tracing::info!(aggregator = %id.short(), ok = r.is_ok(), "allow an aggregator to mirror this one");
                let _ = reply.send(r);
            }
            Job::Disallow { id, reply } => {
                let r = self.node.disallow(id);
                if let Ok(gone) = &r {
                    // A mirror's session ends when it reads the new generation, as a region's.
                    let what = if gone.mirror { "mirror" } else { "region" };
                    tracing::info!(key = %id.short(), name = gone.name.as_deref().unwrap_or("-"), what, "an admission ended");
                    self.events.admission();
                }
                let _ = reply.send(r);
            }
            Job::Ingest { batch, reply } => {
                let r = apply_batch(&self.node, batch, now_ms()).map(|done| {
                    if done.applied.accepted > 0 {
                        for (author, seq) in done.heads {
                            self.events.head(author, seq);
                        }
                    }
                    if done.forked {
                        self.events.fork();
                    }
                    done.applied
                });
                let _ = reply.send(r);
            }
            Job::ForkProofs { proofs, reply } => {
                let r = keep_fork_proofs(&self.node, proofs);
                if matches!(r, Ok(n) if n > 0) {
                    self.events.fork();
                }
                let _ = reply.send(r);
            }
            Job::Admissions { from, list, reply } => {
                let me = self.node.node_id();
                let r = self
                    .node
                    .store()
                    .take_admissions(&list, &from, &me)
                    .map_err(NodeError::from);
                // A mirror's regions are sent its upstream's changed list (decision 0040).
                let aggregator = self.node.config().role == crate::local::Role::Aggregator;
                if aggregator && r.as_ref().is_ok_and(AdmissionChanges::changed) {
                    self.events.admission();
                }
                let _ = reply.send(r);
            }
            Job::ErasePending { reply } => {
                let r = self.node.store().erase_pending().map(drop);
                let _ = reply.send(r.map_err(NodeError::from));
            }
            Job::PurgeSettled { reply } => {
                let r = self.node.purge_settled_erasures(crate::local::now_ms());
                let _ = reply.send(r);
            }
            Job::Witness { job, reply } => {
                let _ = reply.send(self.node.witness(job, crate::local::now_ms()));
            }
            Job::Stop { done } => return Some(done),
        }
        None
    }

    /// After an own-log job: its head goes to every live session (also after a failed write
    /// that finished an interrupted import first).
    fn own_written(&self) {
        let me = self.node.node_id();
        match self.node.own_head() {
            Ok(Some(head)) => self.events.head(me, head.seq),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the own head to announce it"),
        }
    }

    /// Runs an import on a worker thread; own-log jobs wait until it reports back.
    fn start_import(&mut self, job: ImportJob, reply: Reply<Imported>) {
        let Some(back) = self.me.upgrade() else {
            let _ = reply.send(Err(NodeError::Stopped));
            return;
        };
        let node = self.node.clone();
        let cancel = job.cancel.clone();
        let worker = std::thread::Builder::new()
            .name("spindel-import".into())
            .spawn(move || {
                // The actor must hear back whatever happens, or the own log stays reserved.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    node.import_cancellable(
                        job.kind,
                        crate::local::ImportSource::File {
                            path: &job.path,
                            name: &job.name,
                        },
                        &mut rand_core::OsRng,
                        now_ms(),
                        &|done, total| {
                            if let Some(p) = &job.progress {
                                p.set(done, total);
                            }
                        },
                        &job.cancel,
                    )
                }))
                .unwrap_or_else(|_| {
                    tracing::error!("an import panicked");
                    Err(NodeError::Task(
                        "the import failed; the node's log says why".into(),
                    ))
                });
                drop(node);
                // The actor is told even while its handles are gone: it holds the queue open
                // until it stops, and a stop waits for this.
                if let Err(mpsc::error::SendError(Job::ImportEnded { result, reply })) =
                    back.blocking_send(Job::ImportEnded { result, reply })
                {
                    let _ = reply.send(result);
                }
            });
        match worker {
            Ok(_) => self.import = Some(cancel),
            Err(e) => tracing::error!(error = %e, "cannot start an import worker"),
        }
    }
}

/// What applying a batch gave the actor.
struct Ingested {
    applied: AppliedBatch,
    /// The batch's authors' heads, announced when anything was accepted.
    heads: Vec<(NodeId, u64)>,
    /// The batch proved a fork.
    forked: bool,
}

/// Applies one received batch: the heads of its authors and what was accepted, and whether it
/// proved a fork.
fn apply_batch(node: &LocalNode, batch: Checked, now_ms: u64) -> Result<Ingested, NodeError> {
    let Checked {
        from,
        verified,
        expected_author,
        authors,
        malformed,
        vouched,
    } = batch;
    let store = node.store();
    if malformed > 0 {
        store.count_refusal("malformed", malformed)?;
    }
    if vouched {
        // From the aggregator this region pinned: it relays only authors it admits, so its
        // sending them vouches for them, also for regions admitted after this session began
        // (their entries are verified under the store's lock); its next admission list is the
        // truth for them again. Each entry must still be signed by its author.
        for a in authors
            .iter()
            .filter(|a| **a != node.node_id() && a.is_usable())
        {
            store.vouch(a, &from)?;
        }
    }
    let sent: Vec<(NodeId, u64)> = verified.entries().collect();
    let outcomes = store.apply_verified(
        verified,
        ApplyOptions {
            expected_author,
            now_ms,
            all_or_nothing: false,
        },
    )?;
    let mut held: BTreeMap<NodeId, u64> = BTreeMap::new();
    for ((author, seq), o) in sent.iter().zip(&outcomes) {
        if matches!(o, Outcome::Accepted | Outcome::Refused(Refusal::Replay(_))) {
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
            && !matches!(r, Refusal::Replay(_))
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
        heads.push((a, store.head(&a)?.map_or(0, |h| h.seq)));
    }
    let forked = outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Refused(Refusal::Fork { .. })));
    Ok(Ingested {
        applied: AppliedBatch {
            heads: heads.clone(),
            held_by_peer: held.into_iter().collect(),
            accepted: accepted as u64,
        },
        heads,
        forked,
    })
}

/// Checks fork proofs a peer sent and keeps those that hold (freezing their authors).
fn keep_fork_proofs(
    node: &LocalNode,
    proofs: Vec<(WireEntry, WireEntry)>,
) -> Result<usize, NodeError> {
    let store = node.store();
    let mut new = 0;
    for (first, second) in proofs {
        let (first, second) = match (Entry::from_wire(first), Entry::from_wire(second)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                store.count_refusal("bad_fork_proof", 1)?;
                continue;
            }
        };
        match spindel_protocol::ingest::check_fork_proof(&first, &second) {
            // Only authors this node takes entries of: a proof for a made-up key (anyone can
            // make one) is not kept, so nobody can fill a node with them.
            Ok((author, _)) if !store.is_admitted(&author)? => {
                store.count_refusal("fork_proof_unknown_author", 1)?;
            }
            Ok((author, seq)) => {
                if store.record_fork_proof(&first, &second)? {
                    let name = store
                        .author(&author)?
                        .and_then(|m| m.label().map(str::to_string));
                    tracing::warn!(author = %author, name = name.as_deref().unwrap_or("-"), seq, "fork proven by a peer's proof: two different entries signed with one seq; the author is frozen here");
                    new += 1;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "a peer sent a fork proof that does not hold");
                store.count_refusal("bad_fork_proof", 1)?;
            }
        }
    }
    Ok(new)
}
