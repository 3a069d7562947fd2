//! The sync protocol: wire messages, framing, and the sync session as a sans-IO state machine.
//!
//! A connection carries one sync stream. Both sides send [`Message::Hello`], then
//! [`Message::Heads`] (per-author heads; an aggregator adds the admitted authors). Each side then
//! sends exactly what the other lacks, in [`Message::Entries`] batches, each answered by one
//! [`Message::Ack`] after the receiver has made it durable. The stream stays open: every new
//! local entry is pushed at once. A new connection starts over with heads, so sync resumes from
//! any point against any aggregator.
//!
//! [`Session`] holds no I/O: the driver feeds it messages and local events and carries out its
//! [`Output`]s (send a message, load entries from the store, apply received entries).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError};
use crate::entry::{Hash, PAYLOAD_BYTES_MAX, WIRE_ENTRY_BYTES_MAX, WireEntry};
use crate::keys::NodeId;

/// QUIC ALPN of this protocol version; bumped on a breaking change.
pub const ALPN: &[u8] = b"spindel/1";
/// The version a `Hello` carries.
pub const PROTOCOL_VERSION: u16 = 1;
/// Default cap of one frame (length prefix excluded).
pub const FRAME_BYTES_MAX: usize = 1024 * 1024;
/// Entries in one batch, at most.
pub const BATCH_ENTRIES_MAX: usize = 256;
/// Bytes of entries and payloads in one batch, at most (stays well under the frame cap).
pub const BATCH_BYTES_MAX: usize = 512 * 1024;
/// Unacknowledged batches in flight per session.
pub const BATCHES_IN_FLIGHT_MAX: usize = 4;
/// Authors in one heads message, at most.
pub const HEADS_AUTHORS_MAX: usize = 10_000;
/// Fork proofs in one forks message, at most (one per author can exist).
pub const FORK_PROOFS_MAX: usize = 1_000;
/// Entries one want (and its answer) names, at most.
pub const WANT_ENTRIES_MAX: usize = 64;
/// Wants a peer may send in one session (one for differing tips, one for records held
/// without their payload, and a margin); more is a protocol violation.
pub const WANTS_PER_SESSION_MAX: u32 = 4;
/// Bytes of the length prefix of a frame.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// What a peer says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRole {
    Region,
    Aggregator,
    /// Queries only (`spindel query --from`), no sync.
    Client,
}

/// Why a session was closed; sent in [`Message::Error`] and used as the QUIC close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Orderly close.
    Done,
    /// The peer broke the protocol (message out of order, bad frame, oversize).
    Protocol,
    /// Protocol versions differ.
    Version,
    /// The region is not admitted by this aggregator.
    NotAdmitted,
    /// The roles cannot sync with each other.
    Role,
    /// This node failed internally.
    Internal,
}

impl ErrorCode {
    /// The QUIC application close code.
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::Done => 0,
            ErrorCode::Protocol => 1,
            ErrorCode::Version => 2,
            ErrorCode::NotAdmitted => 3,
            ErrorCode::Role => 4,
            ErrorCode::Internal => 5,
        }
    }

    /// The error code a QUIC application close code stands for, if any.
    pub fn from_code(code: u64) -> Option<ErrorCode> {
        [
            ErrorCode::Done,
            ErrorCode::Protocol,
            ErrorCode::Version,
            ErrorCode::NotAdmitted,
            ErrorCode::Role,
            ErrorCode::Internal,
        ]
        .into_iter()
        .find(|c| u64::from(c.code()) == code)
    }
}

/// One entry as it travels: the signed bytes, and the payload unless it was purged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncEntry {
    pub entry: WireEntry,
    pub payload: Option<Vec<u8>>,
}

impl SyncEntry {
    /// Bytes this entry adds to a batch.
    pub fn size(&self) -> usize {
        self.entry.header.len()
            + self.entry.signature.len()
            + self.payload.as_ref().map_or(0, Vec::len)
            + 16
    }
}

/// A remote query, as `spindel query --from` sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRequest {
    pub kind: Option<String>,
    pub region: Option<String>,
    pub tag: Option<String>,
    pub text: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    Hello {
        version: u16,
        role: PeerRole,
        name: String,
    },
    /// The sender's head per author; an aggregator also lists the authors it admits.
    Heads {
        heads: Vec<(NodeId, u64)>,
        admitted: Vec<(NodeId, Option<String>)>,
    },
    Entries {
        entries: Vec<SyncEntry>,
    },
    /// The receiver's heads for the authors of one batch, after it is durable.
    Ack {
        heads: Vec<(NodeId, u64)>,
    },
    Query(QueryRequest),
    /// A query answer: the same JSON as `query --json`, or an error text.
    QueryResult {
        json: Result<String, String>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// Proofs of forks the sender holds: two different entries one author signed with one seq.
    /// Each proof is checked by the receiver ([`crate::ingest::check_fork_proof`]); a valid one
    /// freezes that author there too, so every node names the fork.
    Forks {
        proofs: Vec<(WireEntry, WireEntry)>,
    },
    /// The hash of the sender's head entry per author, sent once after the heads: two nodes
    /// at the same seq with different hashes hold a fork that seq numbers alone never show.
    Tips {
        tips: Vec<(NodeId, u64, Hash)>,
    },
    /// Asks for these entries (author, seq) as the sender holds them: a tip that differs.
    Want {
        entries: Vec<(NodeId, u64)>,
    },
    /// The answer to a [`Message::Want`]: entries (with their payload if still held), applied
    /// by the receiver like any others (so a differing one proves the fork); not acknowledged.
    Wanted {
        entries: Vec<SyncEntry>,
    },
    /// An aggregator's admitted regions and the names it admitted them under, sent again
    /// while a session runs whenever an admission changes: the names regions show.
    Admitted {
        admitted: Vec<(NodeId, Option<String>)>,
    },
}

impl Message {
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Heads { .. } => "heads",
            Message::Entries { .. } => "entries",
            Message::Ack { .. } => "ack",
            Message::Query(_) => "query",
            Message::QueryResult { .. } => "query-result",
            Message::Error { .. } => "error",
            Message::Forks { .. } => "forks",
            Message::Tips { .. } => "tips",
            Message::Want { .. } => "want",
            Message::Wanted { .. } => "wanted",
            Message::Admitted { .. } => "admitted",
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(#[from] DecodeError),
}

/// Encodes a message as one frame: 4-byte big-endian length, then the bincode body.
pub fn encode_frame(message: &Message) -> Vec<u8> {
    let body = codec::encode(message);
    let mut frame = Vec::with_capacity(FRAME_PREFIX_BYTES + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Reads the length prefix; refuses a frame over `max` before any of it is buffered.
pub fn frame_len(prefix: [u8; FRAME_PREFIX_BYTES], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes one frame body (already size-checked with [`frame_len`]).
pub fn decode_body(body: &[u8]) -> Result<Message, FrameError> {
    Ok(codec::decode::<Message, FRAME_BYTES_MAX>("frame", body)?)
}

/// Decodes the first frame of `buf`: `Ok(None)` when more bytes are needed, else the message
/// and the bytes it used.
pub fn decode_frame(buf: &[u8], max: usize) -> Result<Option<(Message, usize)>, FrameError> {
    let Some(prefix) = buf.get(..FRAME_PREFIX_BYTES) else {
        return Ok(None);
    };
    let len = frame_len(prefix.try_into().unwrap_or([0; 4]), max)?;
    let Some(body) = buf.get(FRAME_PREFIX_BYTES..FRAME_PREFIX_BYTES + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, FRAME_PREFIX_BYTES + len)))
}

/// An entry within the size limits of the wire.
fn entry_within_limits(e: &SyncEntry) -> bool {
    e.entry.header.len() + e.entry.signature.len() <= WIRE_ENTRY_BYTES_MAX
        && e.payload
            .as_ref()
            .is_none_or(|p| p.len() <= PAYLOAD_BYTES_MAX)
}

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
    /// The peer's head hashes: want every entry whose hash differs from the one held here.
    Tips(Vec<(NodeId, u64, Hash)>),
    /// Load these entries and answer with [`Session::send_wanted`].
    Want(Vec<(NodeId, u64)>),
    /// Apply these entries (no acknowledgement).
    Wanted(Vec<SyncEntry>),
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
    AwaitHeads,
    Syncing,
    Closed,
}

/// Which of its authors a side sends to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendPolicy {
    /// A region sends only its own log to an aggregator.
    Own,
    /// An aggregator sends every author it holds (the aggregate) to a region.
    All,
}

/// One side of a sync session.
#[derive(Debug)]
pub struct Session {
    me: NodeId,
    role: PeerRole,
    peer_admitted: bool,
    policy: SendPolicy,
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
    applying: bool,
    /// The peer's tips arrived (one message a session).
    tips_received: bool,
    /// Wants the peer sent this session.
    wants_received: u32,
    out: VecDeque<Output>,
}

impl Session {
    /// Starts a session. `local`: this node's heads. `peer_admitted`: an aggregator says whether
    /// the peer's key is admitted (a region trusts the aggregator it pinned: `true`).
    /// `admitted`: an aggregator's admitted authors, announced to regions.
    pub fn new(
        me: NodeId,
        role: PeerRole,
        name: &str,
        local: BTreeMap<NodeId, u64>,
        peer_admitted: bool,
        admitted: Vec<(NodeId, Option<String>)>,
    ) -> Session {
        let policy = match role {
            PeerRole::Aggregator => SendPolicy::All,
            PeerRole::Region | PeerRole::Client => SendPolicy::Own,
        };
        let mut out = VecDeque::new();
        out.push_back(Output::Send(Message::Hello {
            version: PROTOCOL_VERSION,
            role,
            name: name.to_string(),
        }));
        // Heads go out in the same flight as the hello (one round trip to resume), except to a
        // peer that is not admitted: it learns nothing but the refusal.
        if peer_admitted {
            out.push_back(Output::Send(Message::Heads {
                heads: local.iter().map(|(a, s)| (*a, *s)).collect(),
                admitted,
            }));
        }
        Session {
            me,
            role,
            peer_admitted,
            policy,
            state: State::AwaitHello,
            local,
            peer: BTreeMap::new(),
            sent: BTreeMap::new(),
            loading: BTreeSet::new(),
            stalled: BTreeSet::new(),
            in_flight: VecDeque::new(),
            applying: false,
            tips_received: false,
            wants_received: 0,
            out,
        }
    }

    /// The next thing to do, if any.
    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True once heads are exchanged and nothing is in flight or waiting to be sent.
    pub fn is_idle(&self) -> bool {
        self.state == State::Syncing
            && self.in_flight.is_empty()
            && self.loading.is_empty()
            && !self.applying
            && self.out.is_empty()
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
                );
                if !pair_ok {
                    return Err(SessionError {
                        code: ErrorCode::Role,
                        reason: format!("a {:?} does not sync with a {role:?}", self.role),
                    });
                }
                if !self.peer_admitted {
                    let reason = match self.role {
                        PeerRole::Aggregator => {
                            "this region is not admitted by the aggregator (spindel allow)"
                        }
                        _ => "a region syncs only with the aggregators it pinned (--aggregator)",
                    };
                    return Err(SessionError {
                        code: ErrorCode::NotAdmitted,
                        reason: reason.into(),
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
                    if self.role != PeerRole::Region {
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
                if self.applying {
                    return Err(violation(
                        "entries before the previous batch was acknowledged",
                    ));
                }
                if entries.is_empty() || entries.len() > BATCH_ENTRIES_MAX {
                    return Err(violation(format!("batch of {} entries", entries.len())));
                }
                if !entries.iter().all(entry_within_limits) {
                    return Err(violation("entry over its size limit"));
                }
                self.applying = true;
                self.out.push_back(Output::Apply { entries });
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
                if self.role != PeerRole::Region {
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
    /// clock has caught up. The driver calls this now and then (not on every message: a
    /// refusal that lasts costs one batch a call).
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
        if self.state == State::Syncing && self.role == PeerRole::Aggregator {
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

    /// A new local head (a publish, or entries accepted from elsewhere).
    pub fn local_head(&mut self, author: NodeId, seq: u64) {
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

    /// The driver applied a batch; `heads` are this node's heads for the batch's authors, after
    /// it was made durable.
    pub fn applied(&mut self, heads: Vec<(NodeId, u64)>) {
        self.applying = false;
        if self.state != State::Syncing {
            return;
        }
        for (author, seq) in &heads {
            let e = self.local.entry(*author).or_insert(0);
            *e = (*e).max(*seq);
            // What we just received, the peer evidently holds.
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
mod tests {
    use super::*;
    use crate::entry::{Entry, Hash, Head, Payload, RecordId, next_header};
    use crate::keys::SecretKey;
    use crate::record::Kind;

    #[test]
    fn frames_round_trip_and_refuse_oversize_and_garbage() {
        let m = Message::Hello {
            version: 1,
            role: PeerRole::Region,
            name: "skane".into(),
        };
        let frame = encode_frame(&m);
        assert_eq!(decode_frame(&frame[..3], FRAME_BYTES_MAX), Ok(None));
        assert_eq!(
            decode_frame(&frame[..frame.len() - 1], FRAME_BYTES_MAX),
            Ok(None)
        );
        assert_eq!(
            decode_frame(&frame, FRAME_BYTES_MAX),
            Ok(Some((m, frame.len())))
        );
        let huge = (FRAME_BYTES_MAX as u32 + 1).to_be_bytes();
        assert!(matches!(
            decode_frame(&huge, FRAME_BYTES_MAX),
            Err(FrameError::TooLarge { .. })
        ));
        let garbage = [0, 0, 0, 3, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode_frame(&garbage, FRAME_BYTES_MAX),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn golden_frame() {
        // Pins the wire form documented in docs/protocol.md: 4-byte big-endian length, then
        // bincode (variant index 0 = hello, version 1, role 0 = region, name "skane").
        let frame = encode_frame(&Message::Hello {
            version: 1,
            role: PeerRole::Region,
            name: "skane".into(),
        });
        assert_eq!(hex::encode(frame), "0000000900010005736b616e65");
        let ack = encode_frame(&Message::Ack { heads: vec![] });
        assert_eq!(hex::encode(ack), "000000020300");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            crate::fuzz::frame(&bytes);
        }

        /// Valid frames of every shape with bytes changed (closer to what a hostile peer
        /// crafts than random bytes): never a panic, and a frame that decodes is canonical.
        #[test]
        fn mutated_frames_never_panic_and_decode_canonically(
            which in 0usize..5,
            flips in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 1..4),
        ) {
            let k = SecretKey::from_bytes(&[3; 32]);
            let payload = crate::entry::Payload::seal(&mut rand::rngs::OsRng, "{}".into());
            let h = next_header(k.node_id(), None, 1, Kind::Method, RecordId([1; 16]), Some(&payload));
            let entry = SyncEntry { entry: Entry::sign(&k, h).to_wire(), payload: Some(payload) };
            let messages = [
                Message::Entries { entries: vec![entry.clone()] },
                Message::Heads { heads: vec![(k.node_id(), 3)], admitted: vec![(k.node_id(), Some("skane".into()))] },
                Message::Tips { tips: vec![(k.node_id(), 1, Hash::ZERO)] },
                Message::Forks { proofs: vec![(entry.entry.clone(), entry.entry.clone())] },
                Message::Query(QueryRequest { kind: Some("method".into()), region: Some("skane".into()), ..Default::default() }),
            ];
            let mut frame = encode_frame(&messages[which]);
            for (at, byte) in flips {
                let i = at.index(frame.len() - FRAME_PREFIX_BYTES) + FRAME_PREFIX_BYTES;
                frame[i] = byte;
            }
            crate::fuzz::frame(&frame);
        }
    }

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes(&[n; 32])
    }

    #[test]
    fn out_of_order_messages_close_the_session() {
        let mut s = Session::new(
            key(1).node_id(),
            PeerRole::Aggregator,
            "agg",
            BTreeMap::new(),
            true,
            vec![],
        );
        assert!(matches!(
            s.poll(),
            Some(Output::Send(Message::Hello { .. }))
        ));
        // Heads go out in the same flight as the hello.
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
        let mut agg = Session::new(
            key(1).node_id(),
            PeerRole::Aggregator,
            "agg",
            BTreeMap::new(),
            true,
            vec![],
        );
        agg.handle(Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Region,
            name: "r".into(),
        })
        .unwrap();
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

    #[test]
    fn admission_lists_flow_from_aggregator_to_region_only() {
        // A region's session, past hello and heads: a later list reaches its driver.
        let mut region = Session::new(
            key(2).node_id(),
            PeerRole::Region,
            "r",
            BTreeMap::new(),
            true,
            vec![],
        );
        region
            .handle(Message::Hello {
                version: PROTOCOL_VERSION,
                role: PeerRole::Aggregator,
                name: "agg".into(),
            })
            .unwrap();
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
        let mut region2 = Session::new(
            key(2).node_id(),
            PeerRole::Region,
            "r",
            BTreeMap::new(),
            true,
            vec![],
        );
        region2
            .handle(Message::Hello {
                version: PROTOCOL_VERSION,
                role: PeerRole::Aggregator,
                name: "agg".into(),
            })
            .unwrap();
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
        let mut agg = Session::new(
            key(1).node_id(),
            PeerRole::Aggregator,
            "agg",
            BTreeMap::from([(k.node_id(), 2)]),
            true,
            vec![],
        );
        agg.handle(Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Region,
            name: "r".into(),
        })
        .unwrap();
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
        agg.loaded(k.node_id(), entries);
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
        let mut agg = Session::new(
            key(1).node_id(),
            PeerRole::Aggregator,
            "agg",
            BTreeMap::from([(k.node_id(), 1)]),
            true,
            vec![],
        );
        agg.handle(Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Region,
            name: "r".into(),
        })
        .unwrap();
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
        let mut agg = Session::new(
            key(1).node_id(),
            PeerRole::Aggregator,
            "agg",
            BTreeMap::new(),
            false,
            vec![],
        );
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
        let mut agg = Session::new(
            key(1).node_id(),
            PeerRole::Aggregator,
            "agg",
            BTreeMap::new(),
            true,
            vec![],
        );
        let hello = Message::Hello {
            version: 99,
            role: PeerRole::Region,
            name: "x".into(),
        };
        assert_eq!(agg.handle(hello).unwrap_err().code, ErrorCode::Version);
        let mut agg = Session::new(
            key(1).node_id(),
            PeerRole::Aggregator,
            "agg",
            BTreeMap::new(),
            true,
            vec![],
        );
        let hello = Message::Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::Aggregator,
            name: "x".into(),
        };
        assert_eq!(agg.handle(hello).unwrap_err().code, ErrorCode::Role);
    }

    // ---- In-memory simulation: many regions, one or more aggregators, seeded faults. ----

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A node of the simulation: per-author logs of entries, applied in order with verification.
    struct SimNode {
        key: SecretKey,
        role: PeerRole,
        logs: BTreeMap<NodeId, Vec<SyncEntry>>,
        admitted: BTreeSet<NodeId>,
    }

    impl SimNode {
        fn heads(&self) -> BTreeMap<NodeId, u64> {
            self.logs
                .iter()
                .map(|(a, l)| (*a, l.len() as u64))
                .collect()
        }

        fn publish(&mut self, n: u64) {
            let me = self.key.node_id();
            let log = self.logs.entry(me).or_default();
            let head = log.last().map(|e| {
                let entry = Entry::from_wire(e.entry.clone()).unwrap();
                Head {
                    seq: entry.header().seq,
                    hash: entry.hash(),
                }
            });
            let body = format!(r#"{{"title":"Metod {n}","summary":"s"}}"#);
            let payload = crate::codec::encode(&Payload {
                salt: [n as u8; 16],
                body,
            });
            let h = next_header(
                me,
                head,
                1,
                Kind::Method,
                RecordId([n as u8; 16]),
                Some(&payload),
            );
            let entry = Entry::sign(&self.key, h);
            log.push(SyncEntry {
                entry: entry.to_wire(),
                payload: Some(payload),
            });
        }

        /// Appends entries that continue a log, verifying each; returns heads of touched authors.
        fn apply(&mut self, entries: Vec<SyncEntry>, from: NodeId) -> Vec<(NodeId, u64)> {
            let mut touched = BTreeSet::new();
            for e in entries {
                let entry = Entry::from_wire(e.entry.clone()).unwrap();
                entry.verify().unwrap();
                let author = entry.header().author;
                let allowed = match self.role {
                    PeerRole::Aggregator => author == from && self.admitted.contains(&author),
                    _ => self.admitted.contains(&author) || author == self.key.node_id(),
                };
                touched.insert(author);
                let log = self.logs.entry(author).or_default();
                if allowed && entry.header().seq == log.len() as u64 + 1 {
                    log.push(e);
                }
            }
            touched
                .into_iter()
                .map(|a| (a, self.logs.get(&a).map_or(0, |l| l.len() as u64)))
                .collect()
        }
    }

    /// A live connection between a region and an aggregator: two sessions, two FIFO queues.
    struct Link {
        region: usize,
        agg: usize,
        r: Session,
        a: Session,
        to_a: VecDeque<Message>,
        to_r: VecDeque<Message>,
    }

    fn drive(nodes: &mut [SimNode], link: &mut Link) {
        for side_is_region in [true, false] {
            loop {
                let (session, node_idx, peer_idx) = if side_is_region {
                    (&mut link.r, link.region, link.agg)
                } else {
                    (&mut link.a, link.agg, link.region)
                };
                let Some(out) = session.poll() else { break };
                let peer_id = nodes[peer_idx].key.node_id();
                match out {
                    Output::Send(m) => {
                        if side_is_region {
                            link.to_a.push_back(m)
                        } else {
                            link.to_r.push_back(m)
                        }
                    }
                    Output::Load {
                        author,
                        from_seq,
                        max,
                    } => {
                        let log = nodes[node_idx]
                            .logs
                            .get(&author)
                            .cloned()
                            .unwrap_or_default();
                        let batch: Vec<SyncEntry> = log
                            .into_iter()
                            .skip(from_seq as usize - 1)
                            .take(max.min(7))
                            .collect();
                        session.loaded(author, batch);
                    }
                    Output::Apply { entries } => {
                        let heads = nodes[node_idx].apply(entries, peer_id);
                        session.applied(heads);
                    }
                    Output::Admitted(list) => {
                        for (a, _) in list {
                            nodes[node_idx].admitted.insert(a);
                        }
                    }
                    Output::Forks(_) | Output::Tips(_) | Output::Want(_) | Output::Wanted(_) => {}
                    Output::Close { code, reason } => panic!("unexpected close {code:?}: {reason}"),
                }
            }
        }
    }

    fn connect(nodes: &[SimNode], region: usize, agg: usize) -> Link {
        let agg_node = &nodes[agg];
        let admitted_list: Vec<(NodeId, Option<String>)> =
            agg_node.admitted.iter().map(|a| (*a, None)).collect();
        let r = Session::new(
            nodes[region].key.node_id(),
            PeerRole::Region,
            "r",
            nodes[region].heads(),
            true,
            vec![],
        );
        let a = Session::new(
            agg_node.key.node_id(),
            PeerRole::Aggregator,
            "a",
            agg_node.heads(),
            agg_node.admitted.contains(&nodes[region].key.node_id()),
            admitted_list,
        );
        Link {
            region,
            agg,
            r,
            a,
            to_a: VecDeque::new(),
            to_r: VecDeque::new(),
        }
    }

    fn run_sim(seed: u64, regions: usize, aggregators: usize) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut nodes: Vec<SimNode> = Vec::new();
        for i in 0..aggregators {
            nodes.push(SimNode {
                key: key(200 + i as u8),
                role: PeerRole::Aggregator,
                logs: BTreeMap::new(),
                admitted: BTreeSet::new(),
            });
        }
        for i in 0..regions {
            nodes.push(SimNode {
                key: key(1 + i as u8),
                role: PeerRole::Region,
                logs: BTreeMap::new(),
                admitted: BTreeSet::new(),
            });
        }
        let region_ids: Vec<NodeId> = nodes[aggregators..]
            .iter()
            .map(|n| n.key.node_id())
            .collect();
        for agg in nodes.iter_mut().take(aggregators) {
            agg.admitted.extend(region_ids.iter().copied());
        }
        let mut links: Vec<Option<Link>> = Vec::new();
        for r in 0..regions {
            for a in 0..aggregators {
                links.push(Some(connect(&nodes, aggregators + r, a)));
            }
        }
        let mut published = 0u64;
        for _ in 0..3000 {
            let i = rng.gen_range(0..links.len());
            match rng.gen_range(0..100) {
                0..=9 => {
                    // A region publishes; its live sessions hear of the new head.
                    let r = aggregators + rng.gen_range(0..regions);
                    published += 1;
                    nodes[r].publish(published);
                    let me = nodes[r].key.node_id();
                    let seq = nodes[r].logs[&me].len() as u64;
                    for link in links.iter_mut().flatten().filter(|l| l.region == r) {
                        link.r.local_head(me, seq);
                    }
                }
                10..=12 => links[i] = None, // disconnect: in-flight messages are lost
                13..=17 if links[i].is_none() => {
                    let (r, a) = (i / aggregators, i % aggregators);
                    links[i] = Some(connect(&nodes, aggregators + r, a));
                }
                _ => {
                    if let Some(link) = links[i].as_mut() {
                        drive(&mut nodes, link);
                        // Deliver one message in one direction (FIFO within a stream).
                        if rng.gen_bool(0.5) {
                            if let Some(m) = link.to_a.pop_front() {
                                let _ = link.a.handle(m);
                            }
                        } else if let Some(m) = link.to_r.pop_front() {
                            let _ = link.r.handle(m);
                        }
                        drive(&mut nodes, link);
                        // An aggregator's new heads reach its other live sessions.
                        let agg = link.agg;
                        let heads = nodes[agg].heads();
                        for l in links.iter_mut().flatten().filter(|l| l.agg == agg) {
                            for (a, s) in &heads {
                                l.a.local_head(*a, *s);
                            }
                        }
                    }
                }
            }
        }
        // Heal: reconnect everything and run until quiet.
        for (i, link) in links.iter_mut().enumerate() {
            let (r, a) = (i / aggregators, i % aggregators);
            *link = Some(connect(&nodes, aggregators + r, a));
        }
        for _round in 0..10_000 {
            let mut moved = false;
            for i in 0..links.len() {
                let link = links[i].as_mut().unwrap();
                drive(&mut nodes, link);
                if let Some(m) = link.to_a.pop_front() {
                    let _ = link.a.handle(m);
                    moved = true;
                }
                if let Some(m) = link.to_r.pop_front() {
                    let _ = link.r.handle(m);
                    moved = true;
                }
                drive(&mut nodes, link);
                let agg = link.agg;
                let heads = nodes[agg].heads();
                for l in links.iter_mut().flatten().filter(|l| l.agg == agg) {
                    for (a, s) in &heads {
                        l.a.local_head(*a, *s);
                    }
                }
            }
            if !moved {
                break;
            }
        }
        let expected = region_ids.len();
        let first = nodes[0].heads();
        assert_eq!(
            first.len(),
            expected,
            "seed {seed}: aggregator lacks authors"
        );
        let total: u64 = first.values().sum();
        assert_eq!(
            total, published,
            "seed {seed}: not every entry reached the aggregator"
        );
        for (i, n) in nodes.iter().enumerate() {
            assert_eq!(n.heads(), first, "seed {seed}: node {i} did not converge");
        }
        for link in links.iter().flatten() {
            assert!(
                link.r.is_idle() && link.a.is_idle(),
                "seed {seed}: sessions not idle"
            );
        }
    }

    #[test]
    fn simulation_converges_under_disconnects() {
        let seeds: Vec<u64> = match std::env::var("SPINDEL_SIM_SEED") {
            Ok(s) => vec![s.parse().expect("SPINDEL_SIM_SEED is a number")],
            Err(_) => (0..20).collect(),
        };
        for seed in seeds {
            for (regions, aggs) in [(8, 1), (5, 2), (3, 3)] {
                let r = std::panic::catch_unwind(|| run_sim(seed, regions, aggs));
                if let Err(e) = r {
                    eprintln!(
                        "sync simulation failed: seed {seed}, {regions} regions, {aggs} aggregators (rerun: SPINDEL_SIM_SEED={seed})"
                    );
                    std::panic::resume_unwind(e);
                }
            }
        }
    }
}
