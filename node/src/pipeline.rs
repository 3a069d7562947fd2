//! The batches one session received, in order. Each is verified on the blocking pool as soon
//! as it arrives, while the writer applies the batch before it, and is queued at the writer
//! only after the batch before it was (so a log's entries apply in the order they were sent);
//! the session takes the results in that order and acknowledges each once it is durable.
//! A peer has at most `BATCHES_IN_FLIGHT_MAX` batches unacknowledged, so at most that many
//! are here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use spindel_protocol::NodeId;
use spindel_protocol::sync::Session;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::local::NodeError;
use crate::received::{AppliedBatch, Received};
use crate::shared::Shared;

/// One batch: per author the highest seq the peer sent in it, and its verification and apply.
type Pending = (
    BTreeMap<NodeId, u64>,
    JoinHandle<Result<AppliedBatch, NodeError>>,
);

/// The received batches not yet taken back by the session (module docs).
#[derive(Debug, Default)]
pub(crate) struct Pipeline {
    pending: VecDeque<Pending>,
    /// Fires once the batch pushed last is queued at the writer (or has failed before).
    queued: Option<oneshot::Receiver<()>>,
    /// New heads this node announced of authors a pending batch carries: told to the session
    /// once no pending batch carries them (until its batch is acknowledged, the session would
    /// take the peer's own entries for news and send them back).
    deferred: BTreeMap<NodeId, u64>,
}

impl Drop for Pipeline {
    /// The session ended: its batches are not checked or queued any further (one already
    /// queued is still applied by the writer; its result goes nowhere).
    fn drop(&mut self) {
        for (_, task) in &self.pending {
            task.abort();
        }
    }
}

impl Pipeline {
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether a pending batch holds entries of `author`.
    fn carries(&self, author: &NodeId) -> bool {
        self.pending
            .iter()
            .any(|(sent, _)| sent.contains_key(author))
    }

    /// This node's new head of `author`, for the session: now, or once no pending batch
    /// carries the author.
    pub(crate) fn local_head(&mut self, session: &mut Session, author: NodeId, seq: u64) {
        if self.carries(&author) {
            let d = self.deferred.entry(author).or_insert(0);
            *d = (*d).max(seq);
        } else {
            session.local_head(author, seq);
        }
    }

    /// Takes back every batch, in order, acknowledging each (anything else the session does
    /// touches what they change).
    pub(crate) async fn drain(
        &mut self,
        session: &mut Session,
        mut sent_by_peer: Option<&mut BTreeMap<NodeId, u64>>,
    ) -> Result<(), NodeError> {
        while let Some((sent, applied)) = self.next().await {
            self.acknowledge(session, sent_by_peer.as_deref_mut(), sent, applied?);
        }
        Ok(())
    }

    /// A batch of the pipeline is applied ([`Pipeline::next`]): the session acknowledges it,
    /// then hears the heads deferred for authors no pending batch carries any more. With
    /// `sent_by_peer` (a dialed, pinned aggregator) what it sent of each author is noted: an
    /// author whose entries this node refused in this session is not one the aggregator
    /// withheld (`u64::MAX`: it sent them all).
    pub(crate) fn acknowledge(
        &mut self,
        session: &mut Session,
        sent_by_peer: Option<&mut BTreeMap<NodeId, u64>>,
        sent: BTreeMap<NodeId, u64>,
        applied: AppliedBatch,
    ) {
        if let Some(sent_by_peer) = sent_by_peer {
            for (author, last) in sent {
                let took = applied
                    .heads
                    .iter()
                    .any(|(x, s)| *x == author && *s >= last);
                let s = sent_by_peer.entry(author).or_insert(0);
                *s = if took { (*s).max(last) } else { u64::MAX };
            }
        }
        session.applied(applied.heads, &applied.held_by_peer);
        let free: Vec<NodeId> = self
            .deferred
            .keys()
            .filter(|a| !self.carries(a))
            .copied()
            .collect();
        for author in free {
            if let Some(seq) = self.deferred.remove(&author) {
                session.local_head(author, seq);
            }
        }
    }

    /// Starts `received` (whose entries reach per author the seqs in `sent`): verified now,
    /// queued at the writer after the batch pushed before it.
    pub(crate) fn push(
        &mut self,
        shared: &Arc<Shared>,
        received: Received,
        sent: BTreeMap<NodeId, u64>,
    ) {
        let before = self.queued.take();
        let (queued, queued_rx) = oneshot::channel();
        self.queued = Some(queued_rx);
        let shared = shared.clone();
        let task = tokio::spawn(async move {
            let checked = shared.blocking(move |n| received.check(n)).await;
            if let Some(before) = before {
                // Dropped unsent: that batch failed before the writer; this one goes on.
                let _ = before.await;
            }
            let answer = match checked {
                Ok(checked) => shared.writer.queue_ingest(checked).await,
                Err(e) => Err(e),
            };
            let _ = queued.send(());
            let applied = answer?.wait().await?;
            shared.metrics.accepted(applied.accepted);
            Ok(applied)
        });
        self.pending.push_back((sent, task));
    }

    /// The oldest batch's result, once it is applied; `None` when nothing is pending.
    /// Cancel-safe: a batch leaves only with its result.
    pub(crate) async fn next(
        &mut self,
    ) -> Option<(BTreeMap<NodeId, u64>, Result<AppliedBatch, NodeError>)> {
        let (_, task) = self.pending.front_mut()?;
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(NodeError::Task(e.to_string())),
        };
        let (sent, _) = self.pending.pop_front()?;
        Some((sent, result))
    }
}
