//! [`Session`], one side of a sync session as a sans-IO state machine, after quinn-proto's
//! `Connection`: the session decides every frame that goes out and every store read that
//! feeds one; the driver moves frames, runs the loads, applies and reads the session asks for
//! ([`Output`]), turns its channels into calls ([`Session::local_head`],
//! [`Session::forks_changed`], [`Session::admissions_changed`]) and its clock into
//! [`Session::handle_timeout`] at [`Session::poll_timeout`]. No clock is read here: time
//! comes in as an [`Instant`].
//!
//! Once the peer's heads are in, the session asks, in this order and each after the last is
//! done: for this node's head hashes (sent once, [`Output::ReadTips`]), from a pinned
//! aggregator for the records held without their payload ([`Output::ReadHeaderOnly`]), for
//! the fork proofs held ([`Output::ReadForks`], again on every new generation), for an
//! aggregator's changed admission list ([`Output::ReadAdmissions`]; a new head waits for it,
//! so a newly admitted region's name reaches the peer before its first entries), and, in a
//! one-shot session, closes with `Done` once caught up.

mod checkpoints;
mod decide;

use checkpoints::{charter_mismatch, mirror_pair_matches};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::message::*;
use crate::checkpoint::{SignedCheckpoint, SignedCosignature, VerifiedCheckpoint};
use crate::entry::{Hash, WireEntry};
use crate::keys::NodeId;
pub use decide::{AdmissionOutcome, HEADS_RESCAN, STALLED_RETRY};

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Write this message to the peer.
    Send(Message),
    /// Load entries `from_seq..` of `author` (at most `max` entries, about `BATCH_BYTES_MAX`
    /// bytes) and hand them to [`Session::loaded`].
    Load {
        author: NodeId,
        from_seq: u64,
        max: usize,
    },
    /// Verify and store these entries, then report the resulting heads with
    /// [`Session::applied`].
    Apply { entries: Vec<SyncEntry> },
    /// The aggregator vouches for these authors: a region may accept their entries.
    Admitted(Vec<(NodeId, Option<String>)>),
    /// The peer sent fork proofs: check each, and keep (and freeze) what holds.
    Forks(Vec<(WireEntry, WireEntry)>),
    /// The peer's head hashes: want every entry whose hash differs from the one held here
    /// ([`Session::send_want`]).
    Tips(Vec<(NodeId, u64, Hash)>),
    /// Load these entries and answer with [`Session::send_wanted`].
    Want(Vec<(NodeId, u64)>),
    /// Apply these entries (no acknowledgement).
    Wanted(Vec<SyncEntry>),
    /// A pinned aggregator took this node's session (its heads arrived; a refusal comes
    /// before them): the link is up.
    LinkUp,
    /// A pinned aggregator's opening heads hold this node's own log up to this seq (the
    /// catch-up gate waits for it).
    OwnLogAt(u64),
    /// Read this node's heads with their hashes and hand them to [`Session::send_tips`].
    ReadTips,
    /// Read up to `max` current records this node holds without their payload (a relay
    /// stripped it) and ask the pinned aggregator for them with [`Session::send_want`].
    ReadHeaderOnly { max: usize },
    /// Read every fork proof this node holds and hand them to [`Session::send_forks`].
    ReadForks,
    /// Aggregator: read the admission list and hand it to [`Session::admission_list`].
    ReadAdmissions,
    /// Read the store's heads and tell [`Session::local_head`] of each this node relays.
    Rescan,
    /// Region: a pinned aggregator's checkpoint, after every entry it names that this node
    /// lacked: verify it, witness it ([`crate::witness::witness`]) and, if all holds, cosign
    /// it ([`Session::send_cosignatures`]).
    Checkpoint(SignedCheckpoint),
    /// Cosignatures: on an aggregator, the region's own (verify, keep, relay); on a region,
    /// those its pinned aggregator relays (verify, compare, keep).
    Cosignatures(Vec<SignedCosignature>),
    /// The session is over: close the connection with this code.
    Close { code: ErrorCode, reason: String },
}

/// A violation of the protocol by the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {reason}")]
pub struct SessionError {
    pub code: ErrorCode,
    pub reason: String,
}

fn violation(reason: impl Into<String>) -> SessionError {
    SessionError {
        code: ErrorCode::Protocol,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHello,
    AwaitCharter,
    AwaitHeads,
    Syncing,
    Closed,
}

/// Which of its authors a side sends to the peer (it follows from the side's role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendPolicy {
    /// A region sends only its own log to an aggregator.
    Own,
    /// An aggregator sends every author it holds (the aggregate) to a region.
    All,
}

impl SendPolicy {
    /// What a node of `role` sends.
    pub fn of(role: PeerRole) -> SendPolicy {
        match role {
            PeerRole::Aggregator => SendPolicy::All,
            PeerRole::Region | PeerRole::Client => SendPolicy::Own,
        }
    }
}

/// Whether the peer may sync with this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStanding {
    /// An aggregator admitted the region; a region pinned the aggregator (`--aggregator`)
    /// and trusts the admission list it sends and the authors it relays.
    Member,
    /// Neither: the peer is told why after its hello and learns no heads.
    Stranger,
    /// Aggregator: the peer's key handed its region over to a new key (a rotation this node
    /// holds): refused like a stranger, with [`ErrorCode::Rotated`], so the region's node
    /// knows the rotation arrived and switches to the new key.
    Rotated,
    /// Aggregator: the peer is an aggregator this one's operator allowed to mirror it
    /// (`spindel allow NODEID --mirror`). It gets the whole aggregate and the admission list,
    /// and may send entries of any author (each still checked as admitted here).
    Mirror,
    /// Aggregator: the peer is the aggregator this one mirrors (dialed with `--aggregator`):
    /// like a pinned aggregator at a region, its admission list becomes this node's own and
    /// the authors it relays are vouched for.
    Upstream,
}

impl PeerStanding {
    /// One of the two sides of an aggregator mirroring another.
    pub fn is_mirror_pair(self) -> bool {
        matches!(self, PeerStanding::Mirror | PeerStanding::Upstream)
    }
}

/// How long a session lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Live push both ways until the link breaks or the node stops.
    Live,
    /// One-shot (`spindel sync`): closed with `Done` once both sides hold what the other had.
    UntilCaughtUp,
}

/// Everything a [`Session`] starts from.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// This node's key.
    pub me: NodeId,
    /// The peer's key, as the transport pinned it.
    pub peer: NodeId,
    /// What this node is; it decides what it sends ([`SendPolicy::of`]).
    pub role: PeerRole,
    /// The name this node gives in its hello.
    pub name: String,
    /// This node's heads of the authors it offers the peer.
    pub heads: BTreeMap<NodeId, u64>,
    pub standing: PeerStanding,
    /// Aggregator: the admitted authors announced with the heads, and the generation of the
    /// admission list they were read at ([`Session::admissions_changed`]).
    pub admitted: Vec<(NodeId, Option<String>)>,
    pub admissions_generation: u64,
    /// The id of the charter this node runs under, if any (both sides must hold the same).
    pub charter: Option<Hash>,
    pub lifetime: Lifetime,
    /// When the session starts (its timers count from here).
    pub now: Instant,
}

/// One side of a sync session.
#[derive(Debug)]
pub struct Session {
    me: NodeId,
    peer_id: NodeId,
    role: PeerRole,
    standing: PeerStanding,
    policy: SendPolicy,
    lifetime: Lifetime,
    charter: Option<Hash>,
    state: State,
    local: BTreeMap<NodeId, u64>,
    /// What the peer has told us it holds (heads, acks).
    peer: BTreeMap<NodeId, u64>,
    /// The highest seq sent per author (>= peer's).
    sent: BTreeMap<NodeId, u64>,
    loading: BTreeSet<NodeId>,
    /// Authors the peer would not take in this session (no progress on ack).
    stalled: BTreeSet<NodeId>,
    /// Batches sent and not yet acknowledged, oldest first: (author, last seq of the batch).
    /// Acks come back in order, one per batch.
    in_flight: VecDeque<(NodeId, u64)>,
    /// Batches received and handed to the driver (`Output::Apply`), not yet applied: at most
    /// [`BATCHES_IN_FLIGHT_MAX`], applied and acknowledged in the order received.
    applying: usize,
    /// The peer's tips arrived (one message a session).
    tips_received: bool,
    /// Wants the peer sent this session.
    wants_received: u32,
    /// This node's tips were asked for (once, after the heads).
    tips_asked: bool,
    /// The newest fork generation this node knows of, and the one whose proofs were read.
    forks_generation: u64,
    forks_sent: Option<u64>,
    /// Aggregator: the newest admission generation, the one the region has (or is being
    /// read for it), whether that read is outstanding, and the heads held back until it is in.
    admissions_generation: u64,
    admissions_sent: u64,
    admissions_reading: bool,
    held_heads: BTreeMap<NodeId, u64>,
    /// Aggregator: regions whose admission ended during this session (not relayed).
    withdrawn: BTreeSet<NodeId>,
    /// Aggregator: the newest checkpoint, until the session has sent the peer every entry it
    /// names (then it goes out: a region lacking one after it was withheld).
    pending_checkpoint: Option<Arc<VerifiedCheckpoint>>,
    /// Aggregator: the most of the peer's own log this session told the peer it holds (its
    /// opening heads, its acks). A checkpoint naming less was signed before that and waits
    /// for a newer one: the region would take it for a rollback.
    acked_own: u64,
    /// Aggregator: the peer's [`Message::Retry`]s acted on in this session.
    retries_asked: u32,
    /// Aggregator: the peer's key handed its region over (learnt during the session): its
    /// end says so ([`ErrorCode::Rotated`]).
    peer_rotated: bool,
    rescan_at: Instant,
    retry_at: Instant,
    out: VecDeque<Output>,
}

impl Session {
    /// Starts a session: the hello goes out, and the heads in the same flight to a member
    /// (one round trip to resume); a stranger learns nothing but the refusal.
    pub fn new(config: SessionConfig) -> Session {
        let SessionConfig {
            me,
            peer,
            role,
            name,
            heads,
            standing,
            admitted,
            admissions_generation,
            charter,
            lifetime,
            now,
        } = config;
        let mut out = VecDeque::new();
        out.push_back(Output::Send(Message::Hello {
            version: PROTOCOL_VERSION,
            role,
            name,
        }));
        if !matches!(standing, PeerStanding::Stranger | PeerStanding::Rotated) {
            out.push_back(Output::Send(Message::Charter { id: charter }));
            out.push_back(Output::Send(Message::Heads {
                heads: heads.iter().map(|(a, s)| (*a, *s)).collect(),
                admitted,
            }));
        }
        let acked_own = heads.get(&peer).copied().unwrap_or(0);
        Session {
            me,
            peer_id: peer,
            role,
            standing,
            policy: SendPolicy::of(role),
            lifetime,
            charter,
            state: State::AwaitHello,
            local: heads,
            peer: BTreeMap::new(),
            sent: BTreeMap::new(),
            loading: BTreeSet::new(),
            stalled: BTreeSet::new(),
            in_flight: VecDeque::new(),
            applying: 0,
            tips_received: false,
            wants_received: 0,
            tips_asked: false,
            forks_generation: 0,
            forks_sent: None,
            admissions_generation,
            admissions_sent: admissions_generation,
            admissions_reading: false,
            held_heads: BTreeMap::new(),
            withdrawn: BTreeSet::new(),
            pending_checkpoint: None,
            acked_own,
            retries_asked: 0,
            peer_rotated: false,
            rescan_at: now + HEADS_RESCAN,
            retry_at: now + STALLED_RETRY,
            out,
        }
    }

    /// The next thing to do, if any. With nothing queued, the session decides what the
    /// exchange needs next (see the module docs).
    pub fn poll(&mut self) -> Option<Output> {
        if self.out.is_empty() {
            self.decide();
        }
        self.out.pop_front()
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True once heads are exchanged and nothing is in flight, waiting to be sent or to be
    /// asked for.
    pub fn is_idle(&self) -> bool {
        self.state == State::Syncing
            && self.in_flight.is_empty()
            && self.loading.is_empty()
            && self.applying == 0
            && self.out.is_empty()
            && self.decided()
            && self.wanted().next().is_none()
    }

    /// Idle, and this node holds at least what the peer said it held: a one-shot sync is done.
    pub fn caught_up(&self) -> bool {
        self.is_idle()
            && self
                .peer
                .iter()
                .all(|(a, s)| self.local.get(a).copied().unwrap_or(0) >= *s)
    }

    /// The peer's heads have arrived (the session is past its opening exchange).
    pub fn heads_received(&self) -> bool {
        self.state == State::Syncing
    }

    /// What the peer holds, as far as this session knows.
    pub fn peer_heads(&self) -> &BTreeMap<NodeId, u64> {
        &self.peer
    }

    /// The peer is an aggregator this node pinned: its admission list, and the authors it
    /// relays, are trusted. So is the upstream an aggregator mirrors ([`PeerStanding::Upstream`]).
    pub fn peer_is_pinned_aggregator(&self) -> bool {
        (self.role == PeerRole::Region && self.standing == PeerStanding::Member)
            || self.standing == PeerStanding::Upstream
    }

    /// The only author whose entries this node takes from the peer: an aggregator takes a
    /// region's own. Between a mirror and its upstream any author may travel (each entry still
    /// signed by its author, and its author admitted at the receiver).
    pub fn expected_author(&self) -> Option<NodeId> {
        (self.role == PeerRole::Aggregator && !self.standing.is_mirror_pair())
            .then_some(self.peer_id)
    }

    /// Upstream aggregator: the peer is a mirror its operator allowed (`allow --mirror`);
    /// the driver ends the session with [`Session::no_longer_mirrored`] once it is not.
    pub fn peer_is_mirror(&self) -> bool {
        self.standing == PeerStanding::Mirror
    }

    /// This side takes admission lists from the peer: a region from an aggregator, a mirror
    /// from its upstream.
    fn takes_admission_lists(&self) -> bool {
        self.role == PeerRole::Region || self.standing == PeerStanding::Upstream
    }

    pub fn lifetime(&self) -> Lifetime {
        self.lifetime
    }

    fn close(&mut self, code: ErrorCode, reason: String) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.out.push_back(Output::Send(Message::Error {
                code,
                message: reason.clone(),
            }));
            self.out.push_back(Output::Close { code, reason });
        }
    }
    /// Feeds a message from the peer. A protocol violation closes the session (the outputs
    /// say so) and is returned for logging.
    pub fn handle(&mut self, message: Message) -> Result<(), SessionError> {
        let result = self.handle_inner(message);
        if let Err(e) = &result {
            self.close(e.code, e.reason.clone());
        }
        result
    }

    fn handle_inner(&mut self, message: Message) -> Result<(), SessionError> {
        match (self.state, message) {
            (State::Closed, _) => Ok(()),
            (_, Message::Error { code, message }) => {
                self.state = State::Closed;
                self.out.push_back(Output::Close {
                    code,
                    reason: format!("peer closed: {message}"),
                });
                Ok(())
            }
            (State::AwaitHello, Message::Hello { version, role, .. }) => {
                if version != PROTOCOL_VERSION {
                    return Err(SessionError {
                        code: ErrorCode::Version,
                        reason: format!(
                            "peer speaks version {version}, this node {PROTOCOL_VERSION}"
                        ),
                    });
                }
                let pair_ok = matches!(
                    (self.role, role),
                    (PeerRole::Region, PeerRole::Aggregator)
                        | (PeerRole::Aggregator, PeerRole::Region)
                        | (PeerRole::Aggregator, PeerRole::Aggregator)
                );
                if !pair_ok {
                    return Err(SessionError {
                        code: ErrorCode::Role,
                        reason: format!("a {:?} does not sync with a {role:?}", self.role),
                    });
                }
                if self.standing == PeerStanding::Rotated {
                    return Err(SessionError {
                        code: ErrorCode::Rotated,
                        reason: decide::ROTATED.into(),
                    });
                }
                if self.standing == PeerStanding::Stranger {
                    let reason = match (self.role, role) {
                        (PeerRole::Aggregator, PeerRole::Aggregator) => {
                            "this aggregator is not allowed to mirror this one (on it: spindel allow NODEID --mirror)"
                        }
                        (PeerRole::Aggregator, _) if self.charter.is_some() => {
                            "this region is not a member of the network: the member regions decide (a new region is admitted by their spindel endorse NODEID --name NAME; a revoked or replaced key never comes back)"
                        }
                        (PeerRole::Aggregator, _) => {
                            "this region is not admitted by the aggregator (spindel allow)"
                        }
                        _ => "a region syncs only with the aggregators it pinned (--aggregator)",
                    };
                    return Err(SessionError {
                        code: ErrorCode::NotAdmitted,
                        reason: reason.into(),
                    });
                }
                mirror_pair_matches(self.role, role, self.standing)?;
                self.state = State::AwaitCharter;
                Ok(())
            }
            (State::AwaitCharter, Message::Charter { id }) => {
                if id != self.charter {
                    return Err(SessionError {
                        code: ErrorCode::Charter,
                        reason: charter_mismatch(id, self.charter),
                    });
                }
                self.state = State::AwaitHeads;
                Ok(())
            }
            (State::AwaitHeads, Message::Heads { heads, admitted }) => {
                if heads.len() > HEADS_AUTHORS_MAX || admitted.len() > HEADS_AUTHORS_MAX {
                    return Err(violation("heads list is too long"));
                }
                if !admitted.is_empty() {
                    if !self.takes_admission_lists() {
                        return Err(violation("only an aggregator announces admitted authors"));
                    }
                    self.out.push_back(Output::Admitted(admitted));
                }
                self.peer = heads.into_iter().collect();
                self.sent = self.peer.clone();
                self.state = State::Syncing;
                self.pump();
                Ok(())
            }
            (State::Syncing, Message::Entries { entries }) => {
                if self.applying >= BATCHES_IN_FLIGHT_MAX {
                    return Err(violation(format!(
                        "more than {BATCHES_IN_FLIGHT_MAX} batches unacknowledged"
                    )));
                }
                if entries.is_empty() || entries.len() > BATCH_ENTRIES_MAX {
                    return Err(violation(format!("batch of {} entries", entries.len())));
                }
                if !entries.iter().all(entry_within_limits) {
                    return Err(violation("entry over its size limit"));
                }
                self.applying += 1;
                self.out.push_back(Output::Apply { entries });
                Ok(())
            }
            (State::Syncing, Message::Retry) => {
                if self.peer_is_pinned_aggregator() {
                    return Err(violation(
                        "only a region or a mirror asks its aggregator to retry",
                    ));
                }
                if self.retries_asked < RETRIES_ASKED_MAX {
                    self.retries_asked += 1;
                    self.retry_stalled();
                }
                Ok(())
            }
            (State::Syncing, Message::Forks { proofs }) => {
                if proofs.is_empty() || proofs.len() > FORK_PROOFS_MAX {
                    return Err(violation(format!(
                        "forks message of {} proofs",
                        proofs.len()
                    )));
                }
                self.out.push_back(Output::Forks(proofs));
                Ok(())
            }
            (State::Syncing, Message::Admitted { admitted }) => {
                if !self.takes_admission_lists() {
                    return Err(violation("only an aggregator announces admitted authors"));
                }
                if admitted.len() > HEADS_AUTHORS_MAX {
                    return Err(violation("admitted list is too long"));
                }
                self.out.push_back(Output::Admitted(admitted));
                Ok(())
            }
            (State::Syncing, Message::Tips { tips }) => {
                if tips.len() > HEADS_AUTHORS_MAX {
                    return Err(violation("tips list is too long"));
                }
                if self.tips_received {
                    return Err(violation("a second tips message"));
                }
                self.tips_received = true;
                self.out.push_back(Output::Tips(tips));
                Ok(())
            }
            (State::Syncing, Message::Want { entries }) => {
                if entries.is_empty() || entries.len() > WANT_ENTRIES_MAX {
                    return Err(violation(format!("want of {} entries", entries.len())));
                }
                self.wants_received += 1;
                if self.wants_received > WANTS_PER_SESSION_MAX {
                    return Err(violation("too many wants in one session"));
                }
                self.out.push_back(Output::Want(entries));
                Ok(())
            }
            (State::Syncing, Message::Wanted { entries }) => {
                if entries.len() > WANT_ENTRIES_MAX || !entries.iter().all(entry_within_limits) {
                    return Err(violation("wanted entries over their limits"));
                }
                self.out.push_back(Output::Wanted(entries));
                Ok(())
            }
            (State::Syncing, m @ (Message::Checkpoint { .. } | Message::Cosignatures { .. })) => {
                self.handle_witness(m)
            }
            (State::Syncing, Message::Ack { heads }) => {
                let Some((author, last_sent)) = self.in_flight.pop_front() else {
                    return Err(violation("ack without a batch in flight"));
                };
                if heads.len() > HEADS_AUTHORS_MAX {
                    return Err(violation("ack is too long"));
                }
                for (a, seq) in heads {
                    // The ack is for one author's batch: it may raise what is known of that
                    // author or of one the peer already named, never add others (the session's
                    // state stays bounded by the opening heads, whatever a peer sends).
                    let Some(known) = (if a == author {
                        Some(self.peer.entry(a).or_insert(0))
                    } else {
                        self.peer.get_mut(&a)
                    }) else {
                        continue;
                    };
                    *known = (*known).max(seq);
                    if a == author && seq < last_sent {
                        // The peer refused part of the batch: do not resend it in this session.
                        self.stalled.insert(author);
                    }
                }
                self.pump();
                Ok(())
            }
            (state, message) => Err(violation(format!(
                "unexpected {} message in state {state:?}",
                message.name()
            ))),
        }
    }

    /// Sends again, from what the peer acknowledged, every author the peer refused part of a
    /// batch of earlier in this session: an entry from the future is accepted once the peer's
    /// clock has caught up. Done every [`STALLED_RETRY`] (not on every message: a refusal
    /// that lasts costs one batch a call).
    pub fn retry_stalled(&mut self) {
        if self.state != State::Syncing || self.stalled.is_empty() {
            return;
        }
        for author in std::mem::take(&mut self.stalled) {
            if self.loading.contains(&author) || self.in_flight.iter().any(|(a, _)| *a == author) {
                continue;
            }
            let acked = self.peer.get(&author).copied().unwrap_or(0);
            self.sent.insert(author, acked);
        }
        self.pump();
    }

    /// Sends this node's head hashes (once, after the opening heads).
    pub fn send_tips(&mut self, tips: Vec<(NodeId, u64, Hash)>) {
        if self.state == State::Syncing && !tips.is_empty() {
            self.out.push_back(Output::Send(Message::Tips { tips }));
        }
    }

    /// Aggregator: tells the region of a changed admission list (after the opening heads).
    pub fn send_admitted(&mut self, mut admitted: Vec<(NodeId, Option<String>)>) {
        admitted.truncate(HEADS_AUTHORS_MAX);
        if self.state == State::Syncing
            && self.role == PeerRole::Aggregator
            && self.standing != PeerStanding::Upstream
        {
            self.out
                .push_back(Output::Send(Message::Admitted { admitted }));
        }
    }

    /// Asks the peer for these entries (at most [`WANT_ENTRIES_MAX`] are sent).
    pub fn send_want(&mut self, mut entries: Vec<(NodeId, u64)>) {
        entries.truncate(WANT_ENTRIES_MAX);
        if self.state == State::Syncing && !entries.is_empty() {
            self.out.push_back(Output::Send(Message::Want { entries }));
        }
    }

    /// Answers a want with the entries loaded for it.
    pub fn send_wanted(&mut self, mut entries: Vec<SyncEntry>) {
        entries.truncate(WANT_ENTRIES_MAX);
        if self.state == State::Syncing && !entries.is_empty() {
            self.out
                .push_back(Output::Send(Message::Wanted { entries }));
        }
    }

    /// Tells the peer of fork proofs this node holds (after the opening heads only).
    pub fn send_forks(&mut self, proofs: Vec<(WireEntry, WireEntry)>) {
        if self.state != State::Syncing || proofs.is_empty() {
            return;
        }
        for chunk in proofs.chunks(FORK_PROOFS_MAX) {
            self.out.push_back(Output::Send(Message::Forks {
                proofs: chunk.to_vec(),
            }));
        }
    }

    /// The authors whose entries this session offers the peer, with this node's heads.
    pub fn local_heads(&self) -> &BTreeMap<NodeId, u64> {
        &self.local
    }

    /// A new local head (a publish, or entries accepted from elsewhere). A region whose
    /// admission ended in this session is not relayed; while a changed admission list is due
    /// the head waits for it (a newly admitted region's name goes out before its entries).
    pub fn local_head(&mut self, author: NodeId, seq: u64) {
        if self.withdrawn.contains(&author) {
            return;
        }
        if self.state == State::Syncing && self.admissions_due() {
            self.read_admissions();
        }
        if self.admissions_reading {
            let held = self.held_heads.entry(author).or_insert(0);
            *held = (*held).max(seq);
            return;
        }
        let entry = self.local.entry(author).or_insert(0);
        if seq > *entry {
            *entry = seq;
            self.pump();
        }
    }

    /// The driver loaded entries asked for with [`Output::Load`].
    pub fn loaded(&mut self, author: NodeId, entries: Vec<SyncEntry>) {
        self.loading.remove(&author);
        if self.state != State::Syncing {
            return;
        }
        if !self.local.contains_key(&author) {
            // Withdrawn while it loaded.
            self.pump();
            return;
        }
        let Some(last) = entries.last() else {
            // Nothing to send after all (the store does not hold it): stop trying this session.
            self.stalled.insert(author);
            return;
        };
        let last_seq = crate::entry::Header::decode(&last.entry.header)
            .map(|h| h.seq)
            .unwrap_or(0);
        if last_seq == 0 {
            self.stalled.insert(author);
            return;
        }
        self.sent.insert(author, last_seq);
        self.in_flight.push_back((author, last_seq));
        self.out
            .push_back(Output::Send(Message::Entries { entries }));
        self.pump();
    }

    /// The driver applied a batch (the oldest of those it was handed). `heads` are this node's heads for the batch's authors, after
    /// it was made durable (they go back in the ack). `held_by_peer` is, per author, the highest
    /// seq of an entry of the batch this node now holds as sent (accepted, or a replay of one it
    /// held): what the peer proved it holds. Only that raises what this session believes the
    /// peer has; a refused entry proves nothing, so a peer that sends another author's entry
    /// (or a bad one) is still sent what it lacks.
    pub fn applied(&mut self, heads: Vec<(NodeId, u64)>, held_by_peer: &[(NodeId, u64)]) {
        self.applying = self.applying.saturating_sub(1);
        if self.state != State::Syncing {
            return;
        }
        for (author, seq) in &heads {
            let e = self.local.entry(*author).or_insert(0);
            *e = (*e).max(*seq);
            if *author == self.peer_id {
                self.acked_own = self.acked_own.max(*seq);
            }
        }
        for (author, seq) in held_by_peer {
            // Bounded like the heads: only the batch's authors.
            if !heads.iter().any(|(a, _)| a == author) {
                continue;
            }
            let p = self.peer.entry(*author).or_insert(0);
            *p = (*p).max(*seq);
            let s = self.sent.entry(*author).or_insert(0);
            *s = (*s).max(*seq);
        }
        self.out.push_back(Output::Send(Message::Ack { heads }));
    }

    fn wanted(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.local.iter().filter_map(|(author, local)| {
            let allowed = match self.policy {
                SendPolicy::Own => *author == self.me,
                SendPolicy::All => true,
            };
            let sent = self.sent.get(author).copied().unwrap_or(0);
            (allowed
                && *local > sent
                && !self.stalled.contains(author)
                && !self.loading.contains(author))
            .then_some((*author, sent + 1))
        })
    }

    fn pump(&mut self) {
        if self.state != State::Syncing {
            return;
        }
        let room = BATCHES_IN_FLIGHT_MAX.saturating_sub(self.in_flight.len() + self.loading.len());
        let wanted: Vec<(NodeId, u64)> = self.wanted().take(room).collect();
        for (author, from_seq) in wanted {
            self.loading.insert(author);
            self.out.push_back(Output::Load {
                author,
                from_seq,
                max: BATCH_ENTRIES_MAX,
            });
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::entry::{Entry, Hash, Head, RecordId, next_header};
    use crate::keys::SecretKey;
    use crate::record::Kind;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes(&[n; 32])
    }

    /// A session's configuration, started at [`at`]; the peer is key 250.
    fn config(
        me: NodeId,
        role: PeerRole,
        heads: BTreeMap<NodeId, u64>,
        standing: PeerStanding,
        admitted: Vec<(NodeId, Option<String>)>,
    ) -> SessionConfig {
        SessionConfig {
            me,
            peer: key(250).node_id(),
            role,
            name: "s".into(),
            heads,
            standing,
            admitted,
            admissions_generation: 0,
            charter: None,
            lifetime: Lifetime::Live,
            now: at(0),
        }
    }

    /// The clock of the session tests and the simulation: `secs` after one fixed instant.
    pub(in crate::sync) fn at(secs: u64) -> Instant {
        static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *EPOCH.get_or_init(Instant::now) + std::time::Duration::from_secs(secs)
    }

    #[test]
    fn out_of_order_messages_close_the_session() {
        let mut s = Session::new(config(
            key(1).node_id(),
            PeerRole::Aggregator,
            BTreeMap::new(),
            PeerStanding::Member,
            vec![],
        ));
        assert!(matches!(
            s.poll(),
            Some(Output::Send(Message::Hello { .. }))
        ));
        // The charter and the heads go out in the same flight as the hello.
        assert_eq!(s.poll(), Some(Output::Send(Message::Charter { id: None })));
        assert!(matches!(
            s.poll(),
            Some(Output::Send(Message::Heads { .. }))
        ));
        let err = s.handle(Message::Ack { heads: vec![] }).unwrap_err();
        assert_eq!(err.code, ErrorCode::Protocol);
        assert!(matches!(
            s.poll(),
            Some(Output::Send(Message::Error { .. }))
        ));
        assert!(matches!(
            s.poll(),
            Some(Output::Close {
                code: ErrorCode::Protocol,
                ..
            })
        ));
        assert!(s.is_closed());
    }

    /// An aggregator's session with an admitted region, past the opening hello and heads.
    fn syncing_aggregator() -> Session {
        let mut agg = Session::new(config(
            key(1).node_id(),
            PeerRole::Aggregator,
            BTreeMap::new(),
            PeerStanding::Member,
            vec![],
        ));
        agg.handle(Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Region,
            name: "r".into(),
        })
        .unwrap();
        agg.handle(Message::Charter { id: None }).unwrap();
        agg.handle(Message::Heads {
            heads: vec![],
            admitted: vec![],
        })
        .unwrap();
        assert!(agg.heads_received());
        agg
    }

    #[test]
    fn tips_once_and_a_few_wants_per_session_then_a_violation() {
        let mut agg = syncing_aggregator();
        let tips = Message::Tips {
            tips: vec![(key(2).node_id(), 1, Hash::ZERO)],
        };
        agg.handle(tips.clone()).unwrap();
        assert_eq!(
            agg.handle(tips).unwrap_err().reason,
            "a second tips message"
        );
        let mut agg = syncing_aggregator();
        let want = Message::Want {
            entries: vec![(key(2).node_id(), 1)],
        };
        for _ in 0..WANTS_PER_SESSION_MAX {
            agg.handle(want.clone()).unwrap();
        }
        assert!(agg.handle(want).is_err());
        assert!(agg.is_closed());
        // Oversized wants and empty fork lists are violations too.
        let mut s = syncing_aggregator();
        assert!(
            s.handle(Message::Want {
                entries: vec![(key(2).node_id(), 1); WANT_ENTRIES_MAX + 1],
            })
            .is_err()
        );
        let mut s = syncing_aggregator();
        assert!(s.handle(Message::Forks { proofs: vec![] }).is_err());
    }

    /// A receiver takes up to BATCHES_IN_FLIGHT_MAX batches before it applied the first (its
    /// driver verifies one while the writer applies another), acknowledges them in order, and
    /// a batch past what a sender may have unacknowledged is a violation.
    #[test]
    fn batches_in_flight_are_taken_up_to_the_window_and_acknowledged_in_order() {
        let region = key(2);
        let batch = |seq: u64| Message::Entries {
            entries: vec![SyncEntry {
                entry: Entry::sign(
                    &region,
                    next_header(
                        region.node_id(),
                        None,
                        seq,
                        Kind::Method,
                        RecordId([1; 16]),
                        None,
                    ),
                )
                .to_wire(),
                payload: None,
            }],
        };
        let drain = |s: &mut Session| std::iter::from_fn(|| s.poll()).collect::<Vec<Output>>();
        let mut agg = syncing_aggregator();
        drain(&mut agg);
        for seq in 1..=BATCHES_IN_FLIGHT_MAX as u64 {
            agg.handle(batch(seq)).unwrap();
        }
        let applies = drain(&mut agg);
        assert_eq!(applies.len(), BATCHES_IN_FLIGHT_MAX);
        assert!(applies.iter().all(|o| matches!(o, Output::Apply { .. })));
        assert!(!agg.is_idle(), "batches are still being applied");
        agg.applied(vec![(region.node_id(), 1)], &[]);
        assert!(matches!(
            drain(&mut agg)[..],
            [Output::Send(Message::Ack { .. })]
        ));
        // One acknowledged: the sender may send one more, and no more than that.
        agg.handle(batch(5)).unwrap();
        let refused = agg.handle(batch(6)).unwrap_err();
        assert!(
            refused.reason.contains("unacknowledged"),
            "{}",
            refused.reason
        );
        assert!(agg.is_closed());
    }

    /// A checkpoint goes to the region only after the entries it names that the region
    /// lacked: a region lacking one afterwards knows it was withheld.
    #[test]
    fn a_checkpoint_follows_the_entries_it_names() {
        use crate::checkpoint::{Checkpoint, CheckpointHead, SignedCheckpoint};
        let region = key(3);
        let mut agg = syncing_aggregator();
        let drain = |s: &mut Session| std::iter::from_fn(|| s.poll()).collect::<Vec<Output>>();
        drain(&mut agg);
        let cp = SignedCheckpoint::sign(
            &key(1),
            &Checkpoint {
                aggregator: key(1).node_id(),
                counter: 1,
                time_ms: 1,
                heads: vec![CheckpointHead {
                    author: region.node_id(),
                    seq: 2,
                    hash: Hash::ZERO,
                }],
            },
        );
        agg.offer_checkpoint(Arc::new(cp.clone()));
        let is_checkpoint = |o: &Output| matches!(o, Output::Send(Message::Checkpoint { .. }));
        // The session has not been told of the author yet: the checkpoint waits.
        assert!(!drain(&mut agg).iter().any(is_checkpoint));
        agg.local_head(region.node_id(), 2);
        let outs = drain(&mut agg);
        assert!(
            !outs.iter().any(is_checkpoint),
            "not before the entries: {outs:?}"
        );
        assert!(matches!(outs[0], Output::Load { from_seq: 1, .. }));
        let entries: Vec<SyncEntry> = (1..=2)
            .scan(None, |head: &mut Option<Head>, seq| {
                let h = next_header(
                    region.node_id(),
                    *head,
                    seq,
                    Kind::Method,
                    RecordId([1; 16]),
                    None,
                );
                let e = Entry::sign(&region, h);
                *head = Some(Head {
                    seq,
                    hash: e.hash(),
                });
                Some(SyncEntry {
                    entry: e.to_wire(),
                    payload: None,
                })
            })
            .collect();
        agg.loaded(region.node_id(), entries);
        let outs = drain(&mut agg);
        let batch = outs
            .iter()
            .position(|o| matches!(o, Output::Send(Message::Entries { .. })));
        let checkpoint = outs.iter().position(is_checkpoint);
        assert!(batch.unwrap() < checkpoint.unwrap(), "{outs:?}");
        // A region takes checkpoints only from the aggregator it pinned; an aggregator
        // takes one cosignature at a time and never a checkpoint.
        let mut agg = syncing_aggregator();
        assert!(
            agg.handle(Message::Checkpoint {
                checkpoint: cp.signed
            })
            .is_err()
        );
        let mut agg = syncing_aggregator();
        assert!(
            agg.handle(Message::Cosignatures {
                cosignatures: vec![]
            })
            .is_err()
        );
    }

    /// A checkpoint signed before the session acknowledged more of the region's own log (an
    /// aggregator signs at most every `CHECKPOINT_INTERVAL_MS`) waits for a newer one: sent
    /// after the ack, the region would find it a rollback (`witness`: own head below the ack).
    #[test]
    fn a_checkpoint_naming_less_of_the_peers_log_than_was_acknowledged_waits() {
        use crate::checkpoint::{Checkpoint, CheckpointHead, SignedCheckpoint};
        let region = key(250);
        let peer = region.node_id();
        let agg_key = key(1);
        let sign = |counter: u64, seq: u64| {
            Arc::new(SignedCheckpoint::sign(
                &agg_key,
                &Checkpoint {
                    aggregator: agg_key.node_id(),
                    counter,
                    time_ms: 1,
                    heads: vec![CheckpointHead {
                        author: peer,
                        seq,
                        hash: Hash::ZERO,
                    }],
                },
            ))
        };
        let drain = |s: &mut Session| std::iter::from_fn(|| s.poll()).collect::<Vec<Output>>();
        let is_checkpoint = |o: &Output| matches!(o, Output::Send(Message::Checkpoint { .. }));
        let mut agg = syncing_aggregator();
        drain(&mut agg);
        let mut head = None;
        let entries: Vec<SyncEntry> = (1..=2u64)
            .map(|seq| {
                let h = next_header(peer, head, seq, Kind::Method, RecordId([1; 16]), None);
                let e = Entry::sign(&region, h);
                head = Some(Head {
                    seq,
                    hash: e.hash(),
                });
                SyncEntry {
                    entry: e.to_wire(),
                    payload: None,
                }
            })
            .collect();
        agg.handle(Message::Entries { entries }).unwrap();
        assert!(matches!(drain(&mut agg)[..], [Output::Apply { .. }]));
        // Signed when the aggregator held seq 1; the batch is acknowledged up to 2.
        agg.offer_checkpoint(sign(1, 1));
        agg.applied(vec![(peer, 2)], &[(peer, 2)]);
        let outs = drain(&mut agg);
        assert!(
            matches!(outs[..], [Output::Send(Message::Ack { .. })]),
            "{outs:?}"
        );
        agg.offer_checkpoint(sign(2, 2));
        assert!(drain(&mut agg).iter().any(is_checkpoint));
        // The opening heads count as acknowledged too.
        let mut agg = Session::new(config(
            key(1).node_id(),
            PeerRole::Aggregator,
            BTreeMap::from([(peer, 3)]),
            PeerStanding::Member,
            vec![],
        ));
        agg.handle(Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Region,
            name: "r".into(),
        })
        .unwrap();
        agg.handle(Message::Charter { id: None }).unwrap();
        agg.handle(Message::Heads {
            heads: vec![(peer, 3)],
            admitted: vec![],
        })
        .unwrap();
        agg.offer_checkpoint(sign(3, 2));
        assert!(!drain(&mut agg).iter().any(is_checkpoint));
        agg.offer_checkpoint(sign(4, 3));
        assert!(drain(&mut agg).iter().any(is_checkpoint));
    }

    #[test]
    fn admission_lists_flow_from_aggregator_to_region_only() {
        // A region's session, past hello and heads: a later list reaches its driver.
        let mut region = Session::new(config(
            key(2).node_id(),
            PeerRole::Region,
            BTreeMap::new(),
            PeerStanding::Member,
            vec![],
        ));
        region
            .handle(Message::Hello {
                version: PROTOCOL_VERSION,
                role: PeerRole::Aggregator,
                name: "agg".into(),
            })
            .unwrap();
        region.handle(Message::Charter { id: None }).unwrap();
        region
            .handle(Message::Heads {
                heads: vec![],
                admitted: vec![],
            })
            .unwrap();
        let list = vec![(key(3).node_id(), Some("ostra".to_string()))];
        region
            .handle(Message::Admitted {
                admitted: list.clone(),
            })
            .unwrap();
        let outs: Vec<Output> = std::iter::from_fn(|| region.poll()).collect();
        assert!(outs.contains(&Output::Admitted(list.clone())));
        // A region never sends one, and an aggregator refuses one.
        region.send_admitted(list.clone());
        assert!(std::iter::from_fn(|| region.poll()).next().is_none());
        let mut agg = syncing_aggregator();
        let err = agg
            .handle(Message::Admitted {
                admitted: list.clone(),
            })
            .unwrap_err();
        assert_eq!(err.reason, "only an aggregator announces admitted authors");
        // The aggregator sends it once syncing; an oversized one is a violation.
        let mut agg = syncing_aggregator();
        while agg.poll().is_some() {}
        agg.send_admitted(list.clone());
        assert_eq!(
            agg.poll(),
            Some(Output::Send(Message::Admitted { admitted: list }))
        );
        let mut region2 = Session::new(config(
            key(2).node_id(),
            PeerRole::Region,
            BTreeMap::new(),
            PeerStanding::Member,
            vec![],
        ));
        region2
            .handle(Message::Hello {
                version: PROTOCOL_VERSION,
                role: PeerRole::Aggregator,
                name: "agg".into(),
            })
            .unwrap();
        region2.handle(Message::Charter { id: None }).unwrap();
        region2
            .handle(Message::Heads {
                heads: vec![],
                admitted: vec![],
            })
            .unwrap();
        assert!(
            region2
                .handle(Message::Admitted {
                    admitted: vec![(key(3).node_id(), None); HEADS_AUTHORS_MAX + 1],
                })
                .is_err()
        );
    }

    #[test]
    fn a_refused_batch_is_sent_again_when_retried() {
        let k = key(9);
        let mut agg = Session::new(config(
            key(1).node_id(),
            PeerRole::Aggregator,
            BTreeMap::from([(k.node_id(), 2)]),
            PeerStanding::Member,
            vec![],
        ));
        agg.handle(Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Region,
            name: "r".into(),
        })
        .unwrap();
        agg.handle(Message::Charter { id: None }).unwrap();
        agg.handle(Message::Heads {
            heads: vec![],
            admitted: vec![],
        })
        .unwrap();
        let mut entries = Vec::new();
        let mut head = None;
        for seq in 1..=2u64 {
            let h = next_header(
                k.node_id(),
                head,
                seq,
                Kind::Method,
                RecordId([1; 16]),
                None,
            );
            let e = Entry::sign(&k, h);
            head = Some(Head {
                seq,
                hash: e.hash(),
            });
            entries.push(SyncEntry {
                entry: e.to_wire(),
                payload: None,
            });
        }
        while agg.poll().is_some() {}
        agg.loaded(k.node_id(), entries.clone());
        while agg.poll().is_some() {}
        // The peer took seq 1 and refused seq 2 (say, from the future): stalled, nothing more.
        agg.handle(Message::Ack {
            heads: vec![(k.node_id(), 1)],
        })
        .unwrap();
        assert!(std::iter::from_fn(|| agg.poll()).next().is_none());
        agg.retry_stalled();
        assert_eq!(
            agg.poll(),
            Some(Output::Load {
                author: k.node_id(),
                from_seq: 2,
                max: BATCH_ENTRIES_MAX
            })
        );
        // Refused again; the region's membership changes and it asks: sent again at once.
        agg.loaded(k.node_id(), entries[1..].to_vec());
        while agg.poll().is_some() {}
        agg.handle(Message::Ack {
            heads: vec![(k.node_id(), 1)],
        })
        .unwrap();
        assert!(agg.poll().is_none());
        agg.handle(Message::Retry).unwrap();
        assert!(matches!(agg.poll(), Some(Output::Load { from_seq: 2, .. })));
        // A peer that keeps asking is acted on RETRIES_ASKED_MAX times in a session, no more.
        for _ in 1..RETRIES_ASKED_MAX {
            agg.loaded(k.node_id(), entries[1..].to_vec());
            while agg.poll().is_some() {}
            agg.handle(Message::Ack {
                heads: vec![(k.node_id(), 1)],
            })
            .unwrap();
            agg.handle(Message::Retry).unwrap();
            assert!(matches!(agg.poll(), Some(Output::Load { .. })));
        }
        agg.loaded(k.node_id(), entries[1..].to_vec());
        while agg.poll().is_some() {}
        agg.handle(Message::Ack {
            heads: vec![(k.node_id(), 1)],
        })
        .unwrap();
        agg.handle(Message::Retry).unwrap();
        assert!(
            agg.poll().is_none(),
            "past RETRIES_ASKED_MAX a retry is ignored"
        );
    }

    /// A region whose membership changes asks the aggregator it dialed to send again what it
    /// refused; an aggregator never asks a region, and a region that receives one is told off.
    #[test]
    fn a_region_asks_for_a_retry_when_its_membership_changes() {
        let mut region = Session::new(config(
            key(2).node_id(),
            PeerRole::Region,
            BTreeMap::new(),
            PeerStanding::Member,
            vec![],
        ));
        region.admissions_changed(1);
        while region.poll().is_some() {}
        region
            .handle(Message::Hello {
                version: PROTOCOL_VERSION,
                role: PeerRole::Aggregator,
                name: "nationell".into(),
            })
            .unwrap();
        region.handle(Message::Charter { id: None }).unwrap();
        region
            .handle(Message::Heads {
                heads: vec![],
                admitted: vec![],
            })
            .unwrap();
        while region.poll().is_some() {}
        region.admissions_changed(1);
        assert!(region.poll().is_none(), "no change, no retry");
        region.admissions_changed(2);
        assert_eq!(region.poll(), Some(Output::Send(Message::Retry)));
        assert!(region.handle(Message::Retry).is_err());
    }

    /// An aggregator that stops admitting a region stops offering its entries (a batch that
    /// was loading is dropped), resumes where the peer was when it is offered again, and ends
    /// the session of a region it no longer admits with `NotAdmitted`.
    #[test]
    fn a_withdrawn_author_is_no_longer_offered_and_a_disallowed_region_is_closed() {
        let k = key(9);
        let mut agg = syncing_aggregator();
        while agg.poll().is_some() {}
        agg.local_head(k.node_id(), 3);
        assert_eq!(
            agg.poll(),
            Some(Output::Load {
                author: k.node_id(),
                from_seq: 1,
                max: BATCH_ENTRIES_MAX
            })
        );
        agg.withdraw(&k.node_id());
        assert!(!agg.local_heads().contains_key(&k.node_id()));
        let h = next_header(k.node_id(), None, 1, Kind::Method, RecordId([1; 16]), None);
        let e = Entry::sign(&k, h);
        agg.loaded(
            k.node_id(),
            vec![SyncEntry {
                entry: e.to_wire(),
                payload: None,
            }],
        );
        assert!(
            std::iter::from_fn(|| agg.poll()).next().is_none(),
            "a withdrawn author's batch went out"
        );
        agg.retry_stalled();
        assert!(agg.poll().is_none());
        // Offered again (admitted again): from what the peer holds.
        agg.local_head(k.node_id(), 3);
        assert_eq!(
            agg.poll(),
            Some(Output::Load {
                author: k.node_id(),
                from_seq: 1,
                max: BATCH_ENTRIES_MAX
            })
        );
        agg.no_longer_admitted();
        let outs: Vec<Output> = std::iter::from_fn(|| agg.poll()).collect();
        assert!(outs.iter().any(|o| matches!(
            o,
            Output::Send(Message::Error {
                code: ErrorCode::NotAdmitted,
                ..
            })
        )));
        assert!(matches!(
            outs.last(),
            Some(Output::Close {
                code: ErrorCode::NotAdmitted,
                ..
            })
        ));
        assert!(agg.is_closed());
    }

    #[test]
    fn acks_never_grow_the_session_state() {
        let k = key(9);
        let payload = crate::entry::Payload::seal(
            &mut rand::rngs::OsRng,
            r#"{"title":"t","summary":"s"}"#.to_string(),
        );
        let h = next_header(
            k.node_id(),
            None,
            1,
            Kind::Method,
            RecordId([1; 16]),
            Some(&payload),
        );
        let entry = SyncEntry {
            entry: Entry::sign(&k, h).to_wire(),
            payload: Some(payload),
        };
        let mut agg = Session::new(config(
            key(1).node_id(),
            PeerRole::Aggregator,
            BTreeMap::from([(k.node_id(), 1)]),
            PeerStanding::Member,
            vec![],
        ));
        agg.handle(Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Region,
            name: "r".into(),
        })
        .unwrap();
        agg.handle(Message::Charter { id: None }).unwrap();
        agg.handle(Message::Heads {
            heads: vec![],
            admitted: vec![],
        })
        .unwrap();
        while agg.poll().is_some() {}
        agg.loaded(k.node_id(), vec![entry]);
        // An ack naming the batch's author and HEADS_AUTHORS_MAX made-up ones.
        let mut heads: Vec<(NodeId, u64)> = (0..HEADS_AUTHORS_MAX as u32 - 1)
            .map(|i| {
                let mut b = [0u8; 32];
                b[..4].copy_from_slice(&i.to_be_bytes());
                (NodeId(b), 5)
            })
            .collect();
        heads.push((k.node_id(), 1));
        agg.handle(Message::Ack { heads }).unwrap();
        assert_eq!(
            agg.peer_heads().len(),
            1,
            "an ack added authors to the session"
        );
        assert_eq!(agg.peer_heads()[&k.node_id()], 1);
    }

    #[test]
    fn unadmitted_region_and_wrong_version_are_refused() {
        let mut agg = Session::new(config(
            key(1).node_id(),
            PeerRole::Aggregator,
            BTreeMap::new(),
            PeerStanding::Stranger,
            vec![],
        ));
        let hello = Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Region,
            name: "x".into(),
        };
        assert_eq!(agg.handle(hello).unwrap_err().code, ErrorCode::NotAdmitted);
        // An unadmitted peer is told why and learns no heads.
        let sent: Vec<Output> = std::iter::from_fn(|| agg.poll()).collect();
        assert!(
            !sent
                .iter()
                .any(|o| matches!(o, Output::Send(Message::Heads { .. })))
        );
        assert!(sent.iter().any(|o| matches!(
            o,
            Output::Send(Message::Error {
                code: ErrorCode::NotAdmitted,
                ..
            })
        )));
        let mut agg = Session::new(config(
            key(1).node_id(),
            PeerRole::Aggregator,
            BTreeMap::new(),
            PeerStanding::Member,
            vec![],
        ));
        let hello = Message::Hello {
            version: 1,
            role: PeerRole::Region,
            name: "x".into(),
        };
        let refused = agg.handle(hello).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Version);
        assert_eq!(
            refused.reason,
            format!("peer speaks version 1, this node {PROTOCOL_VERSION}")
        );
        let mut agg = Session::new(config(
            key(1).node_id(),
            PeerRole::Aggregator,
            BTreeMap::new(),
            PeerStanding::Member,
            vec![],
        ));
        let hello = Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Aggregator,
            name: "x".into(),
        };
        assert_eq!(agg.handle(hello).unwrap_err().code, ErrorCode::Role);
    }

    /// A one-shot session asks for its tips and forks first, then, caught up, closes with
    /// `Done` and no error frame; a live one stays.
    #[test]
    fn a_one_shot_session_closes_once_caught_up_and_a_live_one_stays() {
        for lifetime in [Lifetime::UntilCaughtUp, Lifetime::Live] {
            let mut region = Session::new(SessionConfig {
                lifetime,
                ..config(
                    key(2).node_id(),
                    PeerRole::Region,
                    BTreeMap::new(),
                    PeerStanding::Member,
                    vec![],
                )
            });
            region
                .handle(Message::Hello {
                    version: PROTOCOL_VERSION,
                    role: PeerRole::Aggregator,
                    name: "agg".into(),
                })
                .unwrap();
            region.handle(Message::Charter { id: None }).unwrap();
            region
                .handle(Message::Heads {
                    heads: vec![],
                    admitted: vec![],
                })
                .unwrap();
            let mut asked = Vec::new();
            while let Some(out) = region.poll() {
                match &out {
                    Output::ReadTips => region.send_tips(vec![]),
                    Output::ReadForks => region.send_forks(vec![]),
                    _ => {}
                }
                asked.push(out);
            }
            let close = Output::Close {
                code: ErrorCode::Done,
                reason: "caught up".into(),
            };
            let kinds: Vec<&Output> = asked
                .iter()
                .filter(|o| !matches!(o, Output::Send(_)))
                .collect();
            let mut want = vec![
                &Output::LinkUp,
                &Output::OwnLogAt(0),
                &Output::ReadTips,
                &Output::ReadHeaderOnly {
                    max: WANT_ENTRIES_MAX,
                },
                &Output::ReadForks,
            ];
            if lifetime == Lifetime::UntilCaughtUp {
                want.push(&close);
            }
            assert_eq!(kinds, want, "{lifetime:?}");
            assert!(
                !asked
                    .iter()
                    .any(|o| matches!(o, Output::Send(Message::Error { .. }))),
                "{lifetime:?}"
            );
            assert_eq!(region.is_closed(), lifetime == Lifetime::UntilCaughtUp);
        }
    }

    /// A session of `standing` on an aggregator, past the hello of an aggregator peer and
    /// its heads (with `admitted`, as an upstream sends them).
    fn aggregator_pair(standing: PeerStanding, admitted: Vec<(NodeId, Option<String>)>) -> Session {
        let mut s = Session::new(config(
            key(1).node_id(),
            PeerRole::Aggregator,
            BTreeMap::new(),
            standing,
            vec![],
        ));
        s.handle(Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Aggregator,
            name: "nationell".into(),
        })
        .unwrap();
        s.handle(Message::Charter { id: None }).unwrap();
        s.handle(Message::Heads {
            heads: vec![],
            admitted,
        })
        .unwrap();
        assert!(s.heads_received());
        s
    }

    /// Aggregator with aggregator: only a mirror its upstream allowed, and its upstream. The
    /// upstream sends the mirror everything and its list, takes any author from it (no
    /// expected author: each is checked as admitted at ingest) and trusts nothing it says of
    /// admissions; the mirror trusts its upstream like a region its pinned aggregator and
    /// sends it every author too, never a list. `disallow` ends the mirror's session.
    #[test]
    fn a_mirror_and_its_upstream_sync_as_aggregators() {
        let list = vec![(key(3).node_id(), Some("ostra".to_string()))];
        let other = key(9).node_id();
        // The upstream's side.
        let mut up = aggregator_pair(PeerStanding::Mirror, vec![]);
        assert_eq!(up.expected_author(), None);
        assert!(!up.peer_is_pinned_aggregator());
        while up.poll().is_some() {}
        up.local_head(other, 2);
        assert_eq!(
            up.poll(),
            Some(Output::Load {
                author: other,
                from_seq: 1,
                max: BATCH_ENTRIES_MAX
            })
        );
        // A changed list goes to the mirror, which is never in it, and the session goes on.
        up.admissions_changed(1);
        while up.poll().is_some() {}
        assert_eq!(up.admission_list(list.clone()), AdmissionOutcome::Sent);
        assert_eq!(
            up.poll(),
            Some(Output::Send(Message::Admitted {
                admitted: list.clone()
            }))
        );
        assert!(!up.is_closed());
        let err = up
            .handle(Message::Admitted {
                admitted: list.clone(),
            })
            .unwrap_err();
        assert_eq!(err.reason, "only an aggregator announces admitted authors");
        let mut up = aggregator_pair(PeerStanding::Mirror, vec![]);
        up.no_longer_mirrored();
        let outs: Vec<Output> = std::iter::from_fn(|| up.poll()).collect();
        assert!(matches!(
            outs.last(),
            Some(Output::Close {
                code: ErrorCode::NotAdmitted,
                ..
            })
        ));
        // The mirror's side: the upstream's list in its heads and later is taken.
        let mut mirror = aggregator_pair(PeerStanding::Upstream, list.clone());
        assert_eq!(mirror.expected_author(), None);
        assert!(mirror.peer_is_pinned_aggregator());
        let outs: Vec<Output> = std::iter::from_fn(|| mirror.poll()).collect();
        assert!(outs.contains(&Output::Admitted(list.clone())));
        assert!(outs.contains(&Output::LinkUp));
        mirror
            .handle(Message::Admitted {
                admitted: list.clone(),
            })
            .unwrap();
        assert_eq!(mirror.poll(), Some(Output::Admitted(list.clone())));
        // It never reads or sends a list of its own (a change of its own asks the upstream
        // to retry what it refused), and sends every author it holds.
        mirror.admissions_changed(7);
        assert_eq!(mirror.poll(), Some(Output::Send(Message::Retry)));
        mirror.send_admitted(list.clone());
        assert!(mirror.poll().is_none());
        mirror.local_head(other, 1);
        assert_eq!(
            mirror.poll(),
            Some(Output::Load {
                author: other,
                from_seq: 1,
                max: BATCH_ENTRIES_MAX
            })
        );
        // Checkpoints go from the upstream to its mirror (who witnesses it), never back: the
        // upstream did not pin the mirror and would end the session.
        let cp = crate::checkpoint::SignedCheckpoint::sign(
            &key(1),
            &crate::checkpoint::Checkpoint {
                aggregator: key(1).node_id(),
                counter: 1,
                time_ms: 1,
                heads: vec![],
            },
        );
        let mut mirror = aggregator_pair(PeerStanding::Upstream, vec![]);
        mirror.offer_checkpoint(Arc::new(cp.clone()));
        let outs: Vec<Output> = std::iter::from_fn(|| mirror.poll()).collect();
        assert!(
            !outs
                .iter()
                .any(|o| matches!(o, Output::Send(Message::Checkpoint { .. }))),
            "{outs:?}"
        );
        mirror
            .handle(Message::Checkpoint {
                checkpoint: cp.signed.clone(),
            })
            .unwrap();
        let mut up = aggregator_pair(PeerStanding::Mirror, vec![]);
        while up.poll().is_some() {}
        up.offer_checkpoint(Arc::new(cp.clone()));
        assert!(
            std::iter::from_fn(|| up.poll())
                .any(|o| matches!(o, Output::Send(Message::Checkpoint { .. })))
        );
        assert!(
            up.handle(Message::Checkpoint {
                checkpoint: cp.signed
            })
            .is_err()
        );
    }

    /// Two nodes sync only under the same charter: another one, or one side without any,
    /// closes the session with `ErrorCode::Charter` and says which, before any heads are read.
    #[test]
    fn a_peer_of_another_charter_is_refused_by_name() {
        let ours = Hash::of(b"our charter");
        let theirs = Hash::of(b"an older charter");
        let refusal = |mine: Option<Hash>, peer: Option<Hash>| {
            let mut region = Session::new(SessionConfig {
                charter: mine,
                ..config(
                    key(2).node_id(),
                    PeerRole::Region,
                    BTreeMap::new(),
                    PeerStanding::Member,
                    vec![],
                )
            });
            region
                .handle(Message::Hello {
                    version: PROTOCOL_VERSION,
                    role: PeerRole::Aggregator,
                    name: "agg".into(),
                })
                .unwrap();
            let result = region.handle(Message::Charter { id: peer });
            (result, region)
        };
        let (ok, mut same) = refusal(Some(ours), Some(ours));
        ok.unwrap();
        same.handle(Message::Heads {
            heads: vec![],
            admitted: vec![],
        })
        .unwrap();
        assert!(same.heads_received());
        for (mine, peer, said) in [
            (
                Some(ours),
                Some(theirs),
                "another network, or one side holds an older charter",
            ),
            (Some(ours), None, "the peer runs without a charter"),
            (
                None,
                Some(theirs),
                "this node has none (spindel charter adopt",
            ),
        ] {
            let (result, mut region) = refusal(mine, peer);
            let e = result.unwrap_err();
            assert_eq!(e.code, ErrorCode::Charter);
            assert!(e.reason.contains(said), "{e}");
            let sent: Vec<Output> = std::iter::from_fn(|| region.poll()).collect();
            assert!(sent.iter().any(|o| matches!(
                o,
                Output::Close {
                    code: ErrorCode::Charter,
                    ..
                }
            )));
            assert!(!region.heads_received());
        }
        // Heads before the charter are out of order.
        let mut agg = Session::new(config(
            key(1).node_id(),
            PeerRole::Aggregator,
            BTreeMap::new(),
            PeerStanding::Member,
            vec![],
        ));
        agg.handle(Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Region,
            name: "r".into(),
        })
        .unwrap();
        let e = agg
            .handle(Message::Heads {
                heads: vec![],
                admitted: vec![],
            })
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Protocol);
    }

    /// Who is refused between aggregators, and why.
    #[test]
    fn aggregators_that_are_no_mirror_pair_are_refused() {
        let hello = |role| Message::Hello {
            version: PROTOCOL_VERSION,
            role,
            name: "x".into(),
        };
        let refusal = |standing, role| {
            let mut s = Session::new(config(
                key(1).node_id(),
                PeerRole::Aggregator,
                BTreeMap::new(),
                standing,
                vec![],
            ));
            s.handle(hello(role)).unwrap_err()
        };
        // An aggregator key nobody allowed: not admitted, and told how.
        let e = refusal(PeerStanding::Stranger, PeerRole::Aggregator);
        assert_eq!(e.code, ErrorCode::NotAdmitted);
        assert!(e.reason.contains("spindel allow NODEID --mirror"), "{e}");
        // A region's key that handed its region over: refused as rotated, the only refusal
        // its node takes as the sign to switch to the new key.
        let e = refusal(PeerStanding::Rotated, PeerRole::Region);
        assert_eq!(e.code, ErrorCode::Rotated);
        assert_eq!(ErrorCode::from_code(8), Some(ErrorCode::Rotated));
        // A region's key that says it is an aggregator, and a mirror's that says region.
        let e = refusal(PeerStanding::Member, PeerRole::Aggregator);
        assert_eq!(e.code, ErrorCode::Role);
        let e = refusal(PeerStanding::Mirror, PeerRole::Region);
        assert_eq!(
            e.reason,
            "this key is allowed as a mirror aggregator, not as a region"
        );
        // An upstream that answers as a region.
        let e = refusal(PeerStanding::Upstream, PeerRole::Region);
        assert_eq!(e.code, ErrorCode::Role);
        // A region never mirrors.
        let mut region = Session::new(config(
            key(2).node_id(),
            PeerRole::Region,
            BTreeMap::new(),
            PeerStanding::Upstream,
            vec![],
        ));
        assert_eq!(
            region.handle(hello(PeerRole::Aggregator)).unwrap_err().code,
            ErrorCode::Role
        );
    }
}
