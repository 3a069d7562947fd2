//! A batch a peer sent ([`Received`]), decoded and its signatures checked on any thread into
//! [`Checked`] for the writer, and what applying it gave ([`AppliedBatch`]).

use std::collections::BTreeSet;

use spindel_protocol::NodeId;
use spindel_protocol::entry::Entry;
use spindel_protocol::sync::SyncEntry;

use crate::local::NodeError;
use crate::read::ReadModel;
use crate::store::{Incoming, Verified};

/// What applying a received batch gave.
#[derive(Debug)]
pub struct AppliedBatch {
    /// This node's heads of the batch's authors, after it (acked back).
    pub heads: Vec<(NodeId, u64)>,
    /// Per author, the highest seq the peer proved it holds (an entry accepted or replayed).
    pub held_by_peer: Vec<(NodeId, u64)>,
    pub accepted: u64,
}

/// A batch a peer sent, and how to take it; [`Received::check`] readies it for the writer.
#[derive(Debug)]
pub struct Received {
    pub from: NodeId,
    pub entries: Vec<SyncEntry>,
    /// An aggregator takes only the region's own entries from it.
    pub expected_author: Option<NodeId>,
    /// From the aggregator this region pinned: its sending an author vouches for it.
    pub vouched: bool,
}

impl Received {
    /// Decodes the batch and checks its signatures, on the caller's thread (a session's, on
    /// the blocking pool: batches of many sessions verify on all cores; the writer applies).
    pub fn check(self, node: &ReadModel) -> Result<Checked, NodeError> {
        let mut incoming = Vec::with_capacity(self.entries.len());
        let mut authors = BTreeSet::new();
        let mut malformed = 0u64;
        for e in self.entries {
            match Entry::from_wire(e.entry) {
                Ok(entry) => {
                    authors.insert(entry.header().author);
                    incoming.push(Incoming {
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
        Ok(Checked {
            from: self.from,
            verified: node.verify(incoming, self.expected_author)?,
            expected_author: self.expected_author,
            authors,
            malformed,
            vouched: self.vouched,
        })
    }
}

/// A received batch, decoded and verified, for [`crate::Writer::ingest`].
#[derive(Debug)]
pub struct Checked {
    pub(crate) from: NodeId,
    pub(crate) verified: Verified,
    pub(crate) expected_author: Option<NodeId>,
    pub(crate) authors: BTreeSet<NodeId>,
    pub(crate) malformed: u64,
    pub(crate) vouched: bool,
}
