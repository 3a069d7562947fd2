//! The wire messages of the sync protocol, the limits a peer is held to, and the roles.

use serde::{Deserialize, Serialize};

use crate::checkpoint::{SignedCheckpoint, SignedCosignature};
use crate::entry::{Hash, PAYLOAD_BYTES_MAX, WIRE_ENTRY_BYTES_MAX, WireEntry};
use crate::keys::NodeId;

/// QUIC ALPN: the framing and the messages. It stays while only `PROTOCOL_VERSION` moves, so
/// a peer of another version still reaches `Hello` and is refused by name ("peer speaks
/// version 1, this node 2") instead of failing the TLS handshake without a reason.
pub const ALPN: &[u8] = b"spindel/1";
/// The version a `Hello` carries; peers of another version are refused (`ErrorCode::Version`).
/// 2: entries may hold the kinds event, indicator and experience, which a node of version 1
/// cannot decode (docs/decisions/0038-protocol-version-2-for-new-kinds.md).
/// 3: checkpoints, cosignatures and the audit request (messages 12-15), which a node of
/// version 2 cannot decode (docs/decisions/0039-checkpoints-and-witnesses.md).
/// 4: the charter message after the hello (message 16), and the membership kinds endorsement
/// and revocation, which a node of version 3 cannot decode
/// (docs/decisions/0041-membership-decided-by-the-regions.md).
/// 5: the membership kind erasure (code 9), the members' order that a record be erased, and
/// message 17 (retry), which a node of version 4 cannot decode.
pub const PROTOCOL_VERSION: u16 = 5;
/// [`Message::Retry`]s an aggregator acts on in one session; later ones are ignored (each
/// may resend a batch per author the peer refused, so a peer cannot loop it).
pub const RETRIES_ASKED_MAX: u32 = 64;
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
/// Cosignatures in one message, at most (a region sends its own; an aggregator relays those
/// of one checkpoint, one per region).
pub const COSIGNATURES_MAX: usize = 256;
/// Checkpoints in one audit answer, at most (the answer also stays under the frame cap).
pub const AUDIT_CHECKPOINTS_MAX: usize = 128;
/// Cosignatures in one audit answer, at most.
pub const AUDIT_COSIGNATURES_MAX: usize = 1024;
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
    /// The two nodes hold different charters (or one holds none): they are not one network,
    /// or one holds an older charter.
    Charter,
    /// The key handed its region over to a new key (a rotation this node holds): its sessions
    /// are refused, and the node that holds the new key runs the region.
    Rotated,
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
            ErrorCode::Charter => 7,
            ErrorCode::Rotated => 8,
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
            ErrorCode::Charter,
            ErrorCode::Rotated,
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
    /// An aggregator's signed checkpoint (aggregator to region), sent only once the session
    /// has sent the region every entry it names that the region lacked.
    Checkpoint {
        checkpoint: SignedCheckpoint,
    },
    /// Cosignatures: a region's own of a checkpoint it witnessed (region to aggregator), or
    /// those the aggregator relays from every region (aggregator to region).
    Cosignatures {
        cosignatures: Vec<SignedCosignature>,
    },
    /// `spindel audit --peer`: asks a region for the checkpoints and cosignatures it keeps
    /// (on a stream of its own, like a query; members only).
    AuditRequest,
    /// The answer to an [`Message::AuditRequest`]: the newest checkpoints first.
    AuditAnswer {
        checkpoints: Vec<SignedCheckpoint>,
        cosignatures: Vec<SignedCosignature>,
    },
    /// The id of the charter the sender's network runs under (SHA-256 of its signed bytes),
    /// or none (a network of `spindel allow`), sent once right after the hello: two nodes of
    /// different charters do not sync ([`ErrorCode::Charter`]).
    Charter {
        id: Option<Hash>,
    },
    /// A region (or mirror) to the aggregator it dialed: its membership changed, so it may now
    /// take authors it refused earlier in this session; send them again from what it
    /// acknowledged (at most [`RETRIES_ASKED_MAX`] a session are acted on).
    Retry,
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
            Message::Checkpoint { .. } => "checkpoint",
            Message::Cosignatures { .. } => "cosignatures",
            Message::AuditRequest => "audit-request",
            Message::AuditAnswer { .. } => "audit-answer",
            Message::Charter { .. } => "charter",
            Message::Retry => "retry",
        }
    }
}

/// An entry within the size limits of the wire.
pub(crate) fn entry_within_limits(e: &SyncEntry) -> bool {
    e.entry.header.len() + e.entry.signature.len() <= WIRE_ENTRY_BYTES_MAX
        && e.payload
            .as_ref()
            .is_none_or(|p| p.len() <= PAYLOAD_BYTES_MAX)
}
