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
    /// Another sync session of the same key is live at this aggregator: two running copies of
    /// one node would sign the same seqs and fork its log, so the second is refused (the
    /// message names the first's address and since when).
    OtherCopy,
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
            ErrorCode::OtherCopy => 6,
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
            ErrorCode::OtherCopy,
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

    /// Aggregator: the region this session serves is no longer admitted (`spindel
    /// disallow`): the session ends with [`ErrorCode::NotAdmitted`], as a new one would be
    /// refused.
    pub fn no_longer_admitted(&mut self) {
        self.close(
            ErrorCode::NotAdmitted,
            "this region is no longer admitted by the aggregator (spindel disallow)".into(),
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

    /// The authors whose entries this session offers the peer, with this node's heads.
    pub fn local_heads(&self) -> &BTreeMap<NodeId, u64> {
        &self.local
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

    /// The driver applied a batch. `heads` are this node's heads for the batch's authors, after
    /// it was made durable (they go back in the ack). `held_by_peer` is, per author, the highest
    /// seq of an entry of the batch this node now holds as sent (accepted, or a replay of one it
    /// held): what the peer proved it holds. Only that raises what this session believes the
    /// peer has; a refused entry proves nothing, so a peer that sends another author's entry
    /// (or a bad one) is still sent what it lacks.
    pub fn applied(&mut self, heads: Vec<(NodeId, u64)>, held_by_peer: &[(NodeId, u64)]) {
        self.applying = false;
        if self.state != State::Syncing {
            return;
        }
        for (author, seq) in &heads {
            let e = self.local.entry(*author).or_insert(0);
            *e = (*e).max(*seq);
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

    use crate::entry::Op;
    use crate::ingest::{self, Accepted, AuthorView, RecordState, Refusal};

    /// Every clock of a simulation starts here (ms); each step of a run is one second.
    const SIM_T0: u64 = 1_800_000_000_000;

    /// One author's log as a simulated node holds it, with what [`ingest::check`] asks of it.
    #[derive(Default)]
    struct SimLog {
        entries: Vec<SyncEntry>,
        hashes: Vec<Hash>,
        records: BTreeMap<RecordId, RecordState>,
        profile: Option<RecordId>,
    }

    impl SimLog {
        fn head(&self) -> Option<Head> {
            self.hashes.last().map(|hash| Head {
                seq: self.hashes.len() as u64,
                hash: *hash,
            })
        }

        /// Stores an entry [`ingest::check`] accepted, as the store does: appended, or (its
        /// payload completing a current version that arrived without one) completed in place.
        fn accept(&mut self, entry: &Entry, sync: SyncEntry, accepted: &Accepted) {
            let h = entry.header();
            if accepted.completes {
                self.entries[h.seq as usize - 1].payload = sync.payload;
                if let Some(r) = self.records.get_mut(&h.record_id) {
                    r.payload_held = true;
                }
                return;
            }
            if h.kind == Kind::Profile {
                self.profile = Some(h.record_id);
            }
            let held = h.op == Op::Put && sync.payload.is_some();
            self.records.insert(h.record_id, RecordState::of(h, held));
            self.hashes.push(entry.hash());
            self.entries.push(sync);
        }
    }

    /// What [`ingest::check`] sees of one author on a simulated node (the store's `View`).
    struct SimView<'a> {
        node: &'a SimNode,
        author: NodeId,
        log: Option<&'a SimLog>,
    }

    impl AuthorView for SimView<'_> {
        fn admitted(&self) -> bool {
            // Every node admits itself; an aggregator its regions, a region what its pinned
            // aggregator lists or relays.
            self.author == self.node.key.node_id() || self.node.admitted.contains(&self.author)
        }
        fn frozen(&self) -> bool {
            self.node.frozen.contains(&self.author)
        }
        fn head(&self) -> Option<Head> {
            self.log?.head()
        }
        fn hash_at(&self, seq: u64) -> Option<Hash> {
            let i = usize::try_from(seq.checked_sub(1)?).ok()?;
            self.log?.hashes.get(i).copied()
        }
        fn record(&self, record_id: &RecordId) -> Option<RecordState> {
            self.log?.records.get(record_id).copied()
        }
        fn profile(&self) -> Option<RecordId> {
            self.log?.profile
        }
        fn payload_bytes(&self) -> u64 {
            self.log.map_or(0, |l| {
                l.records.values().map(|r| u64::from(r.payload_len)).sum()
            })
        }
    }

    /// What a region does to the batches of its own log it sends.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Tamper {
        Honest,
        /// Puts one bad entry ahead of each batch, chosen by the seq the batch starts at: a
        /// copy of another author's entry, that seq signed by another key, or that seq signed
        /// by itself with a wrong prev.
        Poison,
        /// Puts a second signed entry with this seq (a fork) ahead of every later batch.
        ForkAt(u64),
    }

    /// A node of the simulation: per-author logs; every entry, published or received, is
    /// judged by [`ingest::check`] as the store judges it.
    type Heads = Vec<(NodeId, u64)>;

    struct SimNode {
        key: SecretKey,
        role: PeerRole,
        logs: BTreeMap<NodeId, SimLog>,
        admitted: BTreeSet<NodeId>,
        /// Authors frozen here after a proven fork (the store freezes on a `fork` refusal).
        frozen: BTreeSet<NodeId>,
        /// Refusals by [`Refusal::reason`], as `status` counts them.
        refused: BTreeMap<&'static str, u64>,
        /// This node's clock.
        now_ms: u64,
        tamper: Tamper,
        /// Hashes of the bad entries this node sent (none may be stored anywhere).
        poison: BTreeSet<Hash>,
    }

    impl SimNode {
        fn new(key: SecretKey, role: PeerRole) -> SimNode {
            SimNode {
                key,
                role,
                logs: BTreeMap::new(),
                admitted: BTreeSet::new(),
                frozen: BTreeSet::new(),
                refused: BTreeMap::new(),
                now_ms: SIM_T0,
                tamper: Tamper::Honest,
                poison: BTreeSet::new(),
            }
        }

        fn id(&self) -> NodeId {
            self.key.node_id()
        }

        fn heads(&self) -> BTreeMap<NodeId, u64> {
            self.logs
                .iter()
                .map(|(a, l)| (*a, l.entries.len() as u64))
                .collect()
        }

        fn head_seq(&self, author: &NodeId) -> u64 {
            self.logs.get(author).map_or(0, |l| l.entries.len() as u64)
        }

        /// This node's own log.
        fn own(&self) -> &[SyncEntry] {
            self.logs.get(&self.id()).map_or(&[], |l| &l.entries)
        }

        /// Judges one entry with [`ingest::check`] and stores it if accepted; a refusal is
        /// counted by reason, and a fork freezes its author (as the store does).
        fn ingest(
            &mut self,
            entry: &Entry,
            sync: SyncEntry,
            expected_author: Option<NodeId>,
        ) -> Result<(), Refusal> {
            let author = entry.header().author;
            let view = SimView {
                node: self,
                author,
                log: self.logs.get(&author),
            };
            let verdict = ingest::check(
                &view,
                expected_author,
                self.now_ms,
                entry,
                sync.payload.as_deref(),
            );
            match verdict {
                Ok(accepted) => {
                    self.logs
                        .entry(author)
                        .or_default()
                        .accept(entry, sync, &accepted);
                    Ok(())
                }
                Err(refusal) => {
                    if matches!(refusal, Refusal::Fork { .. }) {
                        self.frozen.insert(author);
                    }
                    *self.refused.entry(refusal.reason()).or_default() += 1;
                    Err(refusal)
                }
            }
        }

        fn publish(&mut self, n: u64) {
            let me = self.id();
            let head = self.logs.get(&me).and_then(SimLog::head);
            let body = format!(r#"{{"title":"Metod {n}","summary":"s"}}"#);
            let payload = crate::codec::encode(&Payload {
                salt: [n as u8; 16],
                body,
            });
            let h = next_header(
                me,
                head,
                self.now_ms,
                Kind::Method,
                RecordId([n as u8; 16]),
                Some(&payload),
            );
            let entry = Entry::sign(&self.key, h);
            let sync = SyncEntry {
                entry: entry.to_wire(),
                payload: Some(payload),
            };
            // A local publish passes the same rules (the node's expected author is itself).
            self.ingest(&entry, sync, Some(me))
                .expect("an honest entry is accepted");
        }

        /// Applies a received batch entry by entry, as the node's `apply_batch` does; returns
        /// this node's heads of the batch's authors (refused ones too), for the ack.
        /// Applies a received batch: this node's heads of its authors, and per author the
        /// highest seq the peer proved it holds.
        fn apply(&mut self, entries: Vec<SyncEntry>, from: NodeId) -> (Heads, Heads) {
            let me = self.id();
            // An aggregator takes from a region only the region's own entries.
            let expected_author = (self.role == PeerRole::Aggregator).then_some(from);
            let mut authors = BTreeSet::new();
            let mut batch = Vec::with_capacity(entries.len());
            for e in entries {
                match Entry::from_wire(e.entry.clone()) {
                    Ok(entry) => {
                        authors.insert(entry.header().author);
                        batch.push((entry, e));
                    }
                    Err(_) => *self.refused.entry("malformed").or_default() += 1,
                }
            }
            if self.role == PeerRole::Region {
                // The pinned aggregator relays only authors it admitted: its sending them
                // vouches for them (each entry must still be signed by its author).
                let vouched = authors.iter().filter(|a| **a != me && a.is_usable());
                self.admitted.extend(vouched);
            }
            let mut held: BTreeMap<NodeId, u64> = BTreeMap::new();
            for (entry, sync) in batch {
                let (author, seq) = (entry.header().author, entry.header().seq);
                if matches!(
                    self.ingest(&entry, sync, expected_author),
                    Ok(()) | Err(Refusal::Replay(_))
                ) {
                    let h = held.entry(author).or_default();
                    *h = (*h).max(seq);
                }
            }
            let heads = authors
                .into_iter()
                .map(|a| (a, self.head_seq(&a)))
                .collect();
            (heads, held.into_iter().collect())
        }

        /// Entries `from_seq..` of `author` to send (a few at a time, so batches stay
        /// small), with the bad entry a tampering node puts ahead of its own.
        fn load(&mut self, author: NodeId, from_seq: u64, max: usize) -> Vec<SyncEntry> {
            let mut batch: Vec<SyncEntry> = self
                .logs
                .get(&author)
                .map_or(&[][..], |l| &l.entries[..])
                .iter()
                .skip(from_seq as usize - 1)
                .take(max.min(7))
                .cloned()
                .collect();
            if author != self.id() || batch.is_empty() {
                return batch;
            }
            let bad = match self.tamper {
                Tamper::Honest => None,
                Tamper::Poison => self.poisoned(from_seq),
                Tamper::ForkAt(seq) if seq < from_seq => {
                    let mut h = self.own_header(seq);
                    h.timestamp_ms += 1;
                    Some(Entry::sign(&self.key, h))
                }
                Tamper::ForkAt(_) => None,
            };
            if let Some(bad) = bad {
                if bad.header().author == self.id() {
                    self.poison.insert(bad.hash());
                }
                batch.insert(
                    0,
                    SyncEntry {
                        entry: bad.to_wire(),
                        payload: None,
                    },
                );
            }
            batch
        }

        fn own_header(&self, seq: u64) -> crate::entry::Header {
            let wire = self.own()[seq as usize - 1].entry.clone();
            Entry::from_wire(wire).unwrap().header().clone()
        }

        /// The bad entry [`Tamper::Poison`] sends ahead of the batch starting at `seq`.
        fn poisoned(&self, seq: u64) -> Option<Entry> {
            let me = self.id();
            let mut h = self.own_header(seq);
            match seq % 3 {
                0 => {
                    // Another author's entry, validly signed by that author: not this region's
                    // to send (an aggregator takes a region's own entries only).
                    let (_, log) = self
                        .logs
                        .iter()
                        .find(|(a, l)| **a != me && !l.entries.is_empty())?;
                    Some(Entry::from_wire(log.entries[0].entry.clone()).unwrap())
                }
                1 => {
                    // This seq, claimed by this region but signed by another key.
                    h.timestamp_ms += 1;
                    let bytes = h.signed_bytes();
                    let signature = key(250).sign(&bytes);
                    Some(Entry::from_parts(bytes, &signature).unwrap())
                }
                _ => {
                    // This seq, signed by this region, naming a prev that is not its head.
                    h.prev = Hash([7; 32]);
                    Some(Entry::sign(&self.key, h))
                }
            }
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
                let peer_id = nodes[peer_idx].id();
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
                        let batch = nodes[node_idx].load(author, from_seq, max);
                        session.loaded(author, batch);
                    }
                    Output::Apply { entries } => {
                        let (heads, held) = nodes[node_idx].apply(entries, peer_id);
                        session.applied(heads, &held);
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

    /// Hands the next message of one direction to its session; a lossy link (`loss` > 0)
    /// sometimes drops one entry of a batch, never its last (so a later entry arrives with a
    /// gap). Returns whether a message moved.
    fn deliver(link: &mut Link, to_aggregator: bool, rng: &mut StdRng, loss: f64) -> bool {
        let (queue, session) = if to_aggregator {
            (&mut link.to_a, &mut link.a)
        } else {
            (&mut link.to_r, &mut link.r)
        };
        let Some(mut m) = queue.pop_front() else {
            return false;
        };
        if loss > 0.0
            && let Message::Entries { entries } = &mut m
            && entries.len() > 1
            && rng.gen_bool(loss)
        {
            let i = rng.gen_range(0..entries.len() - 1);
            entries.remove(i);
        }
        let _ = session.handle(m);
        true
    }

    fn connect(nodes: &[SimNode], region: usize, agg: usize) -> Link {
        let agg_node = &nodes[agg];
        let admitted_list: Vec<(NodeId, Option<String>)> =
            agg_node.admitted.iter().map(|a| (*a, None)).collect();
        let r = Session::new(
            nodes[region].id(),
            PeerRole::Region,
            "r",
            nodes[region].heads(),
            true,
            vec![],
        );
        let a = Session::new(
            agg_node.id(),
            PeerRole::Aggregator,
            "a",
            agg_node.heads(),
            agg_node.admitted.contains(&nodes[region].id()),
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

    /// An aggregator's heads reach its live sessions (entries it accepted from one region go
    /// out to the others).
    fn spread_heads(nodes: &[SimNode], links: &mut [Option<Link>], agg: usize) {
        let heads = nodes[agg].heads();
        for l in links.iter_mut().flatten().filter(|l| l.agg == agg) {
            for (a, s) in &heads {
                l.a.local_head(*a, *s);
            }
        }
    }

    /// Faults a simulation run injects besides disconnects.
    #[derive(Debug, Clone, Copy, Default)]
    struct Faults {
        /// How many regions (the last ones) send poison ([`Tamper::Poison`]).
        hostile: usize,
        /// Chance that a batch in transit loses one entry (see [`deliver`]).
        loss: f64,
        /// How far the first region's clock runs ahead of every other clock.
        skew_ms: u64,
        /// Chance per step that a link's sessions retry what their peer refused; with it,
        /// healing keeps live links (a stall must clear through a retry, not a new session).
        retry: f64,
    }

    /// A finished run: the nodes (aggregators first) and the final links.
    struct SimRun {
        nodes: Vec<SimNode>,
        links: Vec<Option<Link>>,
        aggregators: usize,
    }

    fn simulate(seed: u64, regions: usize, aggregators: usize, faults: Faults) -> SimRun {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut nodes: Vec<SimNode> = Vec::new();
        for i in 0..aggregators {
            nodes.push(SimNode::new(key(200 + i as u8), PeerRole::Aggregator));
        }
        for i in 0..regions {
            let mut node = SimNode::new(key(1 + i as u8), PeerRole::Region);
            if i == 0 {
                node.now_ms += faults.skew_ms;
            }
            if i >= regions - faults.hostile {
                node.tamper = Tamper::Poison;
            }
            nodes.push(node);
        }
        let region_ids: Vec<NodeId> = nodes[aggregators..].iter().map(SimNode::id).collect();
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
            for n in nodes.iter_mut() {
                n.now_ms += 1000;
            }
            let i = rng.gen_range(0..links.len());
            match rng.gen_range(0..100) {
                0..=9 => {
                    // A region publishes; its live sessions hear of the new head.
                    let r = aggregators + rng.gen_range(0..regions);
                    published += 1;
                    nodes[r].publish(published);
                    let me = nodes[r].id();
                    let seq = nodes[r].head_seq(&me);
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
                        if faults.retry > 0.0 && rng.gen_bool(faults.retry) {
                            link.r.retry_stalled();
                            link.a.retry_stalled();
                        }
                        drive(&mut nodes, link);
                        // Deliver one message in one direction (FIFO within a stream).
                        let to_aggregator = rng.gen_bool(0.5);
                        deliver(link, to_aggregator, &mut rng, faults.loss);
                        drive(&mut nodes, link);
                        let agg = link.agg;
                        spread_heads(&nodes, &mut links, agg);
                    }
                }
            }
        }
        // Heal: every clock past every timestamp, no more loss, every link up; without
        // retries every link starts over, with them live links keep their sessions.
        for n in nodes.iter_mut() {
            n.now_ms += 3_600_000;
        }
        for (i, link) in links.iter_mut().enumerate() {
            if faults.retry == 0.0 || link.is_none() {
                let (r, a) = (i / aggregators, i % aggregators);
                *link = Some(connect(&nodes, aggregators + r, a));
            }
        }
        for _round in 0..10_000 {
            let mut moved = false;
            for i in 0..links.len() {
                let link = links[i].as_mut().unwrap();
                if faults.retry > 0.0 {
                    link.r.retry_stalled();
                    link.a.retry_stalled();
                }
                drive(&mut nodes, link);
                moved |= deliver(link, true, &mut rng, 0.0);
                moved |= deliver(link, false, &mut rng, 0.0);
                drive(&mut nodes, link);
                let agg = link.agg;
                spread_heads(&nodes, &mut links, agg);
            }
            if !moved {
                break;
            }
        }
        SimRun {
            nodes,
            links,
            aggregators,
        }
    }

    impl SimRun {
        fn regions(&self) -> &[SimNode] {
            &self.nodes[self.aggregators..]
        }

        /// Every honest node holds every region's log exactly as the region wrote it; a
        /// tampering region holds a prefix of each (it may fall behind, never hold another).
        fn assert_converged(&self, what: &str) {
            for region in self.regions() {
                let truth = region.own();
                for (i, n) in self.nodes.iter().enumerate() {
                    let held = n.logs.get(&region.id()).map_or(&[][..], |l| &l.entries);
                    // The hostile region too: a refused entry proves nothing of what it
                    // holds (`Session::applied`), so it is sent every log whole.
                    let ok = held == truth;
                    let differs = held.iter().zip(truth).position(|(a, b)| a != b);
                    assert!(
                        ok,
                        "{what}: node {i} holds {} entries of region {} (which wrote {}), the \
                         first differing at seq {:?}",
                        held.len(),
                        region.id(),
                        truth.len(),
                        differs.map(|d| d + 1)
                    );
                }
            }
            for link in self.links.iter().flatten() {
                assert!(
                    link.r.is_idle() && link.a.is_idle(),
                    "{what}: sessions not idle"
                );
            }
        }

        /// Refusals summed over the aggregators, or over the regions.
        fn refused(&self, aggregators: bool) -> BTreeMap<&'static str, u64> {
            let mut sum = BTreeMap::new();
            for n in &self.nodes {
                if (n.role == PeerRole::Aggregator) == aggregators {
                    for (r, c) in &n.refused {
                        *sum.entry(*r).or_default() += c;
                    }
                }
            }
            sum
        }
    }

    fn assert_reasons(what: &str, refused: &BTreeMap<&'static str, u64>, allowed: &[&str]) {
        for reason in refused.keys() {
            assert!(
                allowed.contains(reason),
                "{what}: unexpected refusals {refused:?}"
            );
        }
    }

    fn run_sim(seed: u64, regions: usize, aggregators: usize) {
        let run = simulate(seed, regions, aggregators, Faults::default());
        let what = format!("seed {seed}");
        let first = run.nodes[0].heads();
        assert_eq!(first.len(), regions, "{what}: aggregator lacks authors");
        assert!(
            run.regions().iter().any(|r| !r.own().is_empty()),
            "{what}: nothing was published"
        );
        run.assert_converged(&what);
        // Honest peers only: nothing is refused but the second copy a region with several
        // aggregators hears.
        assert_reasons(&what, &run.refused(true), &[]);
        assert_reasons(&what, &run.refused(false), &["replay"]);
    }

    /// Runs `f` for each seed (or `SPINDEL_SIM_SEED` only), naming the seed if it fails.
    fn for_seeds(count: u64, what: &str, f: impl Fn(u64) + std::panic::RefUnwindSafe) {
        let seeds: Vec<u64> = match std::env::var("SPINDEL_SIM_SEED") {
            Ok(s) => vec![s.parse().expect("SPINDEL_SIM_SEED is a number")],
            Err(_) => (0..count).collect(),
        };
        for seed in seeds {
            if let Err(e) = std::panic::catch_unwind(|| f(seed)) {
                eprintln!("{what} failed: seed {seed} (rerun: SPINDEL_SIM_SEED={seed})");
                std::panic::resume_unwind(e);
            }
        }
    }

    #[test]
    fn simulation_converges_under_disconnects() {
        for_seeds(20, "sync simulation", |seed| {
            for (regions, aggs) in [(8, 1), (5, 2), (3, 3)] {
                let r = std::panic::catch_unwind(|| run_sim(seed, regions, aggs));
                if let Err(e) = r {
                    eprintln!("{regions} regions, {aggs} aggregators");
                    std::panic::resume_unwind(e);
                }
            }
        });
    }

    /// A hostile region puts a bad entry ahead of every batch it sends: another region's
    /// entry, its next seq signed by another key, or its next seq with a wrong prev. Each is
    /// refused by the aggregators with its reason and stored nowhere; every log, the hostile
    /// region's good entries included, still reaches every honest node.
    #[test]
    fn simulation_refuses_a_hostile_region() {
        for_seeds(5, "hostile simulation", |seed| {
            let faults = Faults {
                hostile: 1,
                ..Faults::default()
            };
            let run = simulate(seed, 5, 2, faults);
            let what = format!("seed {seed}");
            run.assert_converged(&what);
            let hostile = run.regions().last().unwrap();
            assert!(!hostile.poison.is_empty(), "{what}: no poison was sent");
            for (i, n) in run.nodes.iter().enumerate() {
                for log in n.logs.values() {
                    assert!(
                        log.hashes.iter().all(|h| !hostile.poison.contains(h)),
                        "{what}: node {i} stored a poisoned entry"
                    );
                }
            }
            let agg = run.refused(true);
            let reasons = ["wrong_author", "bad_signature", "prev_mismatch"];
            assert_reasons(&what, &agg, &reasons);
            for reason in reasons {
                assert!(agg.get(reason).is_some_and(|c| *c > 0), "{what}: {agg:?}");
            }
            // The aggregators stored none of it, so no region ever saw any, and every region,
            // the hostile one too, got every log without a gap.
            for n in run.regions() {
                assert_reasons(&what, &n.refused, &["replay"]);
            }
        });
    }

    /// Links lose entries out of batches (the rest of the batch arrives with a gap) and one
    /// region's clock runs 10 minutes ahead (its entries are from the future for 5 minutes).
    /// Both are refused and stall the author in that session; live sessions retry now and
    /// then, and once healed (clocks past, no loss) every node holds every log, through
    /// retries alone on links that stayed up.
    #[test]
    fn simulation_recovers_from_gaps_and_a_fast_clock() {
        for_seeds(5, "lossy simulation", |seed| {
            let faults = Faults {
                loss: 0.3,
                skew_ms: 10 * 60 * 1000,
                retry: 0.05,
                ..Faults::default()
            };
            let run = simulate(seed, 5, 2, faults);
            let what = format!("seed {seed}");
            run.assert_converged(&what);
            let (agg, reg) = (run.refused(true), run.refused(false));
            assert_reasons(&what, &agg, &["gap", "future_timestamp", "replay"]);
            assert_reasons(&what, &reg, &["gap", "replay"]);
            for (refused, reason) in [(&agg, "gap"), (&agg, "future_timestamp"), (&reg, "gap")] {
                assert!(
                    refused.get(reason).is_some_and(|c| *c > 0),
                    "{what}: no {reason}: {agg:?} {reg:?}"
                );
            }
        });
    }

    /// Drives a link until no message moves; `tamper` sees each message to the aggregator.
    fn settle(nodes: &mut [SimNode], link: &mut Link, mut tamper: impl FnMut(&mut Message)) {
        loop {
            drive(nodes, link);
            let mut moved = false;
            if let Some(mut m) = link.to_a.pop_front() {
                tamper(&mut m);
                let _ = link.a.handle(m);
                moved = true;
            }
            if let Some(m) = link.to_r.pop_front() {
                let _ = link.r.handle(m);
                moved = true;
            }
            drive(nodes, link);
            if !moved {
                break;
            }
        }
    }

    /// An aggregator and `regions` regions it admits (aggregator at index 0).
    fn small_world(regions: u8) -> Vec<SimNode> {
        let mut nodes = vec![SimNode::new(key(200), PeerRole::Aggregator)];
        for i in 0..regions {
            nodes.push(SimNode::new(key(1 + i), PeerRole::Region));
        }
        let ids: Vec<NodeId> = nodes[1..].iter().map(SimNode::id).collect();
        nodes[0].admitted.extend(ids);
        nodes
    }

    #[test]
    fn a_gap_stalls_the_author_until_the_sender_retries() {
        let mut nodes = small_world(1);
        for n in 1..=5 {
            nodes[1].publish(n);
        }
        let r = nodes[1].id();
        let mut link = connect(&nodes, 1, 0);
        // The first batch (seq 1..=5) loses seq 2 on the way: 3, 4 and 5 arrive with a gap.
        let mut dropped = false;
        settle(&mut nodes, &mut link, |m| {
            if let Message::Entries { entries } = m
                && !dropped
            {
                entries.remove(1);
                dropped = true;
            }
        });
        assert!(dropped);
        assert_eq!(nodes[0].head_seq(&r), 1);
        assert_eq!(nodes[0].refused, BTreeMap::from([("gap", 3)]));
        assert_eq!(link.r.peer_heads()[&r], 1);
        // Stalled: new entries do not go out in this session.
        nodes[1].publish(6);
        link.r.local_head(r, 6);
        settle(&mut nodes, &mut link, |_| {});
        assert_eq!(nodes[0].head_seq(&r), 1);
        assert!(link.r.is_idle() && !link.a.caught_up());
        // A retry sends again from what the aggregator acknowledged.
        link.r.retry_stalled();
        settle(&mut nodes, &mut link, |_| {});
        assert_eq!(nodes[0].logs[&r].entries, nodes[1].own());
        assert_eq!(nodes[0].refused, BTreeMap::from([("gap", 3)]));
        assert!(link.r.caught_up() && link.a.caught_up());
    }

    #[test]
    fn a_forked_entry_is_refused_and_freezes_its_author() {
        let mut nodes = small_world(2);
        nodes[1].tamper = Tamper::ForkAt(2);
        let h = nodes[1].id();
        for n in 1..=3 {
            nodes[1].publish(n);
        }
        let mut link = connect(&nodes, 1, 0);
        settle(&mut nodes, &mut link, |_| {});
        assert_eq!(nodes[0].head_seq(&h), 3);
        // The next batch carries a second seq 2, signed: a fork. The author is frozen, and
        // the rest of the batch is refused for it.
        nodes[1].publish(4);
        nodes[1].publish(5);
        link.r.local_head(h, 5);
        settle(&mut nodes, &mut link, |_| {});
        assert_eq!(nodes[1].poison.len(), 1);
        assert!(nodes[0].frozen.contains(&h));
        assert_eq!(
            nodes[0].refused,
            BTreeMap::from([("fork", 1), ("frozen", 2)])
        );
        assert_eq!(nodes[0].head_seq(&h), 3);
        // A retry is refused again: a frozen author stays out.
        link.r.retry_stalled();
        settle(&mut nodes, &mut link, |_| {});
        assert_eq!(
            nodes[0].refused,
            BTreeMap::from([("fork", 1), ("frozen", 5)])
        );
        // Another region gets the three entries before the fork, never the second seq 2.
        let mut other = connect(&nodes, 2, 0);
        settle(&mut nodes, &mut other, |_| {});
        assert_eq!(nodes[2].logs[&h].entries, nodes[1].own()[..3]);
        for n in &nodes {
            for log in n.logs.values() {
                assert!(log.hashes.iter().all(|x| !nodes[1].poison.contains(x)));
            }
        }
        assert!(nodes[2].refused.is_empty());
    }
}
