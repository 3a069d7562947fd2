//! What a [`Session`] asks for once the peer's heads are in, and when: this node's tips, the
//! records a pinned aggregator should send whole, fork proofs, admission lists, the timers,
//! and the close of a one-shot session (the rules the driver used to keep in its own flags).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{Lifetime, Output, PeerStanding, Session, State};
use crate::keys::NodeId;
use crate::sync::message::{ErrorCode, Message, PeerRole, WANT_ENTRIES_MAX};

/// A live session asks to re-read the store's heads this often ([`Output::Rescan`]), so a
/// head it was never told of (a bug, a lagged channel) is still sent within this time.
pub const HEADS_RESCAN: Duration = Duration::from_secs(10);
/// How often a session sends again what its peer refused (an entry from the future is taken
/// once the peer's clock has caught up): [`Session::retry_stalled`].
pub const STALLED_RETRY: Duration = Duration::from_secs(30);
/// A timer handled later than this after its deadline was missed: the next one follows the
/// time it was handled (as tokio's `MissedTickBehavior::Delay`), not the deadline.
const TIMER_SLACK: Duration = Duration::from_millis(5);

/// What an admission list did to an aggregator's session ([`Session::admission_list`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionOutcome {
    /// The list went to the region.
    Sent,
    /// The list leaves the region out: the session ends with `NotAdmitted`.
    PeerNoLongerAdmitted,
}

impl Session {
    pub(super) fn decide(&mut self) {
        if self.state != State::Syncing {
            return;
        }
        if !self.tips_asked {
            // Head hashes go out once: equal seqs with different entries are a fork that
            // heads alone never show (an old copy that signed offline).
            self.tips_asked = true;
            let pinned = self.peer_is_pinned_aggregator();
            if pinned {
                let own = self.peer.get(&self.me).copied().unwrap_or(0);
                self.out.push_back(Output::LinkUp);
                self.out.push_back(Output::OwnLogAt(own));
            }
            self.out.push_back(Output::ReadTips);
            if pinned {
                self.out.push_back(Output::ReadHeaderOnly {
                    max: WANT_ENTRIES_MAX,
                });
            }
        } else if self.forks_sent != Some(self.forks_generation) {
            // Every fork proof goes to the peer once heads are exchanged, and again on
            // every new generation, so every node names a fork.
            self.forks_sent = Some(self.forks_generation);
            self.out.push_back(Output::ReadForks);
        } else if self.admissions_due() {
            self.read_admissions();
        } else if self.checkpoint_covered() {
            if let Some(cp) = self.take_checkpoint() {
                self.out.push_back(Output::Send(Message::Checkpoint {
                    checkpoint: cp.signed.clone(),
                }));
            }
        } else if self.lifetime == Lifetime::UntilCaughtUp && self.caught_up() {
            // No error frame: the close code says it all.
            self.state = State::Closed;
            self.out.push_back(Output::Close {
                code: ErrorCode::Done,
                reason: "caught up".into(),
            });
        }
    }

    /// Nothing is left to ask for after the heads (tips, forks, admissions).
    pub(super) fn decided(&self) -> bool {
        self.tips_asked
            && self.forks_sent == Some(self.forks_generation)
            && !self.admissions_reading
            && !self.admissions_due()
    }

    /// When [`Session::handle_timeout`] is next due, while the session lasts.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state != State::Closed).then(|| self.rescan_at.min(self.retry_at))
    }

    /// The driver's clock reached `now`: every [`HEADS_RESCAN`] the session asks for the
    /// store's heads ([`Output::Rescan`]), every [`STALLED_RETRY`] it retries what the peer
    /// refused ([`Session::retry_stalled`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if now >= self.rescan_at {
            self.rescan_at = next_tick(self.rescan_at, now, HEADS_RESCAN);
            self.out.push_back(Output::Rescan);
        }
        if now >= self.retry_at {
            self.retry_at = next_tick(self.retry_at, now, STALLED_RETRY);
            self.retry_stalled();
        }
    }

    /// This node learnt of fork proofs: `generation` counts them. A new one is sent to the
    /// peer once heads are exchanged ([`Output::ReadForks`]).
    pub fn forks_changed(&mut self, generation: u64) {
        self.forks_generation = generation;
    }

    /// The admission list (under a charter: membership) changed here: `generation` counts the
    /// changes. An aggregator serving a region reads the list the region does not have yet
    /// ([`Output::ReadAdmissions`]) once heads are exchanged, before any head told after this
    /// one is offered. A region (or a mirror) asks the aggregator it dialed to send again
    /// what it refused, which it may take now ([`Message::Retry`]).
    pub fn admissions_changed(&mut self, generation: u64) {
        let changed = generation != self.admissions_generation;
        self.admissions_generation = generation;
        if changed && self.state == State::Syncing && self.peer_is_pinned_aggregator() {
            self.out.push_back(Output::Send(Message::Retry));
        }
    }

    pub(super) fn admissions_due(&self) -> bool {
        self.role == PeerRole::Aggregator
            && self.standing != PeerStanding::Upstream
            && !self.admissions_reading
            && self.admissions_generation != self.admissions_sent
    }

    pub(super) fn read_admissions(&mut self) {
        self.admissions_sent = self.admissions_generation;
        self.admissions_reading = true;
        self.out.push_back(Output::ReadAdmissions);
    }

    /// Aggregator: the admission list read for [`Output::ReadAdmissions`]. A list without the
    /// region this session serves ends the session (as a new one would be refused); otherwise
    /// the session stops relaying the regions no longer admitted (their heads told later are
    /// ignored), sends the region the list, asks for the store's heads if a withdrawn region
    /// is admitted again ([`Output::Rescan`]), then offers the heads held back for the list.
    pub fn admission_list(&mut self, list: Vec<(NodeId, Option<String>)>) -> AdmissionOutcome {
        self.admissions_reading = false;
        let held = std::mem::take(&mut self.held_heads);
        // A mirror is never in the list (it is no region); `disallow` ends it through
        // [`Session::no_longer_mirrored`].
        if self.standing != PeerStanding::Mirror && !list.iter().any(|(id, _)| *id == self.peer_id)
        {
            self.no_longer_admitted();
            return AdmissionOutcome::PeerNoLongerAdmitted;
        }
        let listed: BTreeSet<NodeId> = list.iter().map(|(id, _)| *id).collect();
        let before = self.withdrawn.len();
        self.withdrawn.retain(|a| !listed.contains(a));
        let readmitted = self.withdrawn.len() < before;
        let gone: Vec<NodeId> = self
            .local
            .keys()
            .filter(|a| !listed.contains(a))
            .copied()
            .collect();
        for a in gone {
            self.withdraw(&a);
            self.withdrawn.insert(a);
        }
        self.send_admitted(list);
        if readmitted && self.state == State::Syncing {
            self.out.push_back(Output::Rescan);
        }
        for (author, seq) in held {
            self.local_head(author, seq);
        }
        AdmissionOutcome::Sent
    }
}

/// The deadline after `deadline`, handled at `now`: on time, one period on; late, one period
/// after `now` (a missed tick is not made up).
fn next_tick(deadline: Instant, now: Instant, period: Duration) -> Instant {
    if now > deadline + TIMER_SLACK {
        now + period
    } else {
        deadline + period
    }
}

/// Why an aggregator refuses a key that handed its region over.
pub(super) const ROTATED: &str = "this key handed its region over to a new key (a rotation this aggregator holds): the node runs under the new key from now on";

/// How a session ends for a peer this node no longer takes.
impl Session {
    /// Aggregator: the peer's key handed its region over (a rotation): when the session ends
    /// for it, it ends with [`ErrorCode::Rotated`].
    pub fn peer_rotated(&mut self) {
        self.peer_rotated = true;
    }

    /// Aggregator: the region this session serves is no longer admitted (`spindel
    /// disallow`, or under a charter the regions' acts): the session ends with
    /// [`ErrorCode::NotAdmitted`] ([`ErrorCode::Rotated`] for a key that handed its region
    /// over), as a new one would be refused.
    pub fn no_longer_admitted(&mut self) {
        if self.peer_rotated {
            self.close(ErrorCode::Rotated, ROTATED.into());
            return;
        }
        let reason = if self.charter.is_some() {
            "this region is no longer a member of the network: the member regions revoked it, or endorsed a new key for it"
        } else {
            "this region is no longer admitted by the aggregator (spindel disallow)"
        };
        self.close(ErrorCode::NotAdmitted, reason.into());
    }

    /// Upstream aggregator: the mirror this session serves is no longer allowed (`spindel
    /// disallow`): the session ends with [`ErrorCode::NotAdmitted`], as a new one would be
    /// refused.
    pub fn no_longer_mirrored(&mut self) {
        self.close(
            ErrorCode::NotAdmitted,
            "this aggregator is no longer allowed to mirror the upstream aggregator (spindel disallow)"
                .into(),
        );
    }

    /// Stops offering `author`'s entries in this session (an aggregator no longer relays a
    /// region it no longer admits). What the peer acknowledged is kept, so a later
    /// [`Session::local_head`] of the author (admitted again) resumes from there. A batch
    /// already loading for it is dropped when it arrives.
    pub fn withdraw(&mut self, author: &NodeId) {
        self.local.remove(author);
        self.stalled.remove(author);
    }
}
