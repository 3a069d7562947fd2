//! What the writer tells the rest of the node after a write ([`Events`]): new heads, a new
//! fork proof, an admission change. Sessions subscribe; only the writer announces.

use spindel_protocol::NodeId;
use tokio::sync::{broadcast, watch};

/// Capacity of the new-heads broadcast; a session that lags re-reads all heads.
pub const HEADS_CHANNEL_CAPACITY: usize = 4096;

/// What the writer tells the rest of the node after a write.
#[derive(Debug)]
pub struct Events {
    /// Every head that advanced, own or a peer's.
    heads: broadcast::Sender<(NodeId, u64)>,
    /// Bumped whenever this node learns of a fork, so every session passes the proof on.
    forks: watch::Sender<u64>,
    /// Aggregator: bumped on every admission change: each session sends the new list before
    /// relaying a newly admitted region, stops relaying one no longer admitted (whose ends).
    admissions: watch::Sender<u64>,
}

impl Default for Events {
    fn default() -> Events {
        Events {
            heads: broadcast::channel(HEADS_CHANNEL_CAPACITY).0,
            forks: watch::Sender::new(0),
            admissions: watch::Sender::new(0),
        }
    }
}

impl Events {
    pub fn subscribe_heads(&self) -> broadcast::Receiver<(NodeId, u64)> {
        self.heads.subscribe()
    }

    pub fn subscribe_forks(&self) -> watch::Receiver<u64> {
        self.forks.subscribe()
    }

    pub fn subscribe_admissions(&self) -> watch::Receiver<u64> {
        self.admissions.subscribe()
    }

    pub(crate) fn head(&self, author: NodeId, seq: u64) {
        let _ = self.heads.send((author, seq));
    }

    pub(crate) fn admission(&self) {
        self.admissions.send_modify(|n| *n += 1);
    }

    pub(crate) fn fork(&self) {
        self.forks.send_modify(|n| *n += 1);
    }
}
