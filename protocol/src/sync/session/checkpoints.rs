//! What a [`Session`] does with checkpoints and cosignatures: an aggregator's session holds
//! its newest checkpoint until it has sent every entry the checkpoint names; a region's takes
//! them only from the aggregator it pinned (decision 0039). And which peers may sync with each
//! other at all: aggregators only as a mirror and its upstream (decision 0040), and nodes of
//! one charter only (decision 0041).

use std::sync::Arc;

use super::{Output, PeerStanding, Session, SessionError, State, violation};
use crate::checkpoint::{SignedCosignature, VerifiedCheckpoint};
use crate::entry::Hash;
use crate::sync::message::{COSIGNATURES_MAX, ErrorCode, Message, PeerRole};

impl Session {
    /// A checkpoint or cosignatures from the peer (after the opening heads).
    pub(super) fn handle_witness(&mut self, message: Message) -> Result<(), SessionError> {
        match message {
            Message::Checkpoint { checkpoint } => {
                if !self.peer_is_pinned_aggregator() {
                    return Err(violation("only a pinned aggregator sends checkpoints"));
                }
                self.out.push_back(Output::Checkpoint(checkpoint));
                Ok(())
            }
            Message::Cosignatures { cosignatures } => {
                let most = match self.role {
                    PeerRole::Aggregator => 1,
                    _ => COSIGNATURES_MAX,
                };
                if cosignatures.is_empty() || cosignatures.len() > most {
                    return Err(violation(format!(
                        "cosignatures message of {}",
                        cosignatures.len()
                    )));
                }
                if self.role == PeerRole::Region && !self.peer_is_pinned_aggregator() {
                    return Err(violation("only a pinned aggregator relays cosignatures"));
                }
                self.out.push_back(Output::Cosignatures(cosignatures));
                Ok(())
            }
            other => Err(violation(format!("unexpected {} message", other.name()))),
        }
    }

    /// Aggregator: a new checkpoint. It goes to the peer once the session has sent every
    /// entry it names that the peer lacked (a newer one replaces it meanwhile).
    /// Not to the upstream a mirror dialed: checkpoints go to those who pinned this node.
    pub fn offer_checkpoint(&mut self, checkpoint: Arc<VerifiedCheckpoint>) {
        if self.role == PeerRole::Aggregator
            && self.standing != PeerStanding::Upstream
            && self.state != State::Closed
        {
            self.pending_checkpoint = Some(checkpoint);
        }
    }

    /// Sends cosignatures: a region its own, an aggregator those it relays (at most
    /// [`COSIGNATURES_MAX`] a message).
    pub fn send_cosignatures(&mut self, cosignatures: Vec<SignedCosignature>) {
        if self.state != State::Syncing {
            return;
        }
        for chunk in cosignatures.chunks(COSIGNATURES_MAX) {
            self.out.push_back(Output::Send(Message::Cosignatures {
                cosignatures: chunk.to_vec(),
            }));
        }
    }

    /// The pending checkpoint, once every entry it names that this session relays has been
    /// sent: an author the session offers but has not been told of up to the checkpoint's
    /// head waits for [`Session::local_head`] (or the next rescan); one the peer refused, or
    /// whose admission ended, does not hold it back. One naming less of the peer's own log
    /// than the session acknowledged waits for a newer one.
    pub(super) fn checkpoint_covered(&self) -> bool {
        let Some(cp) = &self.pending_checkpoint else {
            return false;
        };
        let own = cp.checkpoint.head(&self.peer_id).map_or(0, |h| h.seq);
        if own < self.acked_own {
            return false;
        }
        cp.checkpoint.heads.iter().all(|h| {
            if self.withdrawn.contains(&h.author) || self.stalled.contains(&h.author) {
                return true;
            }
            let sent = self.sent.get(&h.author).copied().unwrap_or(0);
            sent >= h.seq
        })
    }

    pub(super) fn take_checkpoint(&mut self) -> Option<Arc<VerifiedCheckpoint>> {
        self.pending_checkpoint.take()
    }
}

/// Between two aggregators only a mirror and its upstream sync, and only as what each side was
/// set up as: a key allowed as a region that says it is an aggregator (or the reverse), or an
/// upstream that turns out to be a region, is refused by role.
pub(super) fn mirror_pair_matches(
    mine: PeerRole,
    theirs: PeerRole,
    standing: PeerStanding,
) -> Result<(), SessionError> {
    let both_aggregators = mine == PeerRole::Aggregator && theirs == PeerRole::Aggregator;
    if both_aggregators == standing.is_mirror_pair() {
        return Ok(());
    }
    let reason = match standing {
        PeerStanding::Mirror => "this key is allowed as a mirror aggregator, not as a region",
        PeerStanding::Upstream => "the peer dialed as the upstream aggregator is not an aggregator",
        _ => {
            "this key is admitted as a region; an aggregator mirrors only when allowed as one (spindel allow NODEID --mirror)"
        }
    };
    Err(SessionError {
        code: ErrorCode::Role,
        reason: reason.into(),
    })
}

/// Why two nodes of different charters do not sync, said so either operator knows what to do.
pub(super) fn charter_mismatch(theirs: Option<Hash>, mine: Option<Hash>) -> String {
    let short = |h: Hash| h.to_hex()[..16].to_string();
    match (theirs, mine) {
        (None, Some(mine)) => format!(
            "the peer runs without a charter; this node's network has charter {} (on the peer: spindel charter adopt)",
            short(mine)
        ),
        (Some(theirs), None) => format!(
            "the peer's network has charter {}; this node has none (spindel charter adopt --data-dir DIR FILE)",
            short(theirs)
        ),
        (Some(theirs), Some(mine)) => format!(
            "the peer holds charter {}, this node {}: another network, or one side holds an older charter",
            short(theirs),
            short(mine)
        ),
        (None, None) => "the charters differ".to_string(),
    }
}
