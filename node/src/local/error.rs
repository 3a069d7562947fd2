//! What goes wrong in a node operation: [`NodeError`], and the problems of an import with the
//! limits they name.

use std::path::{Path, PathBuf};

use spindel_protocol::NodeId;
use spindel_protocol::entry::{PAYLOAD_BYTES_MAX, RecordId};
use spindel_protocol::record::{Kind, SchemaError};

use crate::query::QueryError;
use crate::store::StoreError;

/// Lines one import may hold.
pub const IMPORT_RECORDS_MAX: usize = 1_000_000;
/// Invalid lines named in an import error before "and N more".
pub const IMPORT_ERRORS_SHOWN: usize = 5;
/// Largest import read whole in memory or uploaded through a browser: standard input to
/// `spindel import --file -`, and Redaktionen's import form.
pub const IMPORT_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Largest import file (`spindel import --file PATH`), whether or not a node runs. It is read a
/// line at a time (twice: checked, then signed into the staging file), so memory stays bounded
/// whatever its size; the disk holds the staged entries (about the file's size) and, through a
/// running node, the received copy. Past it the region's payload quota (1 GiB of records)
/// would refuse the import anyway.
pub const IMPORT_FILE_BYTES_MAX: u64 = 2 * 1024 * 1024 * 1024;
/// Longest line of an import file (a record is at most 64 KiB encoded; JSON escapes can
/// make its line longer).
pub const IMPORT_LINE_BYTES_MAX: usize = 1024 * 1024;

/// One refused line of an import: its number (1-based) and what is wrong with it.
#[derive(Debug)]
pub struct ImportLineError {
    pub line: usize,
    pub error: LineError,
}

/// What is wrong with one line of an import.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error(
        "a JSON array; import takes JSON Lines, one record object per line \
         (`jq -c '.[]' FILE` turns an array into lines)"
    )]
    JsonArray,
    #[error("record_id {record_id} is also on line {first}")]
    RecordIdTwice { record_id: RecordId, first: usize },
    /// The record itself ([`NodeError::Schema`]), or the record it names.
    #[error(transparent)]
    Record(NodeError),
}

/// What is wrong with an import file as a whole (before its lines are read as records).
#[derive(Debug, thiserror::Error)]
pub enum ImportFileProblem {
    #[error("cannot read it: {0}")]
    Unreadable(std::io::Error),
    #[error("over the limit of {IMPORT_FILE_BYTES_MAX} bytes")]
    TooLarge,
    #[error("line {0} is over the limit of {IMPORT_LINE_BYTES_MAX} bytes")]
    LineTooLong(usize),
    #[error("not UTF-8 text: line {0} holds bytes that are not (save the file as UTF-8)")]
    NotUtf8(usize),
}

/// The lines of an [`NodeError::ImportInvalid`] as one line of text: "line N: why; ...; and
/// K more".
fn import_details(invalid: usize, lines: &[ImportLineError]) -> String {
    let mut details = lines
        .iter()
        .map(|l| format!("line {}: {}", l.line, l.error))
        .collect::<Vec<_>>()
        .join("; ");
    if invalid > lines.len() {
        details.push_str(&format!("; and {} more", invalid - lines.len()));
    }
    details
}

/// A node operation that failed. Every message is one line and names the problem.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("no spindel node in {0} (create one with `spindel init --data-dir {0} --name NAME`)")]
    NotANode(PathBuf),
    #[error("{0} already holds a spindel node; refusing to overwrite it")]
    AlreadyANode(PathBuf),
    #[error("{name}: {reason}")]
    BadInput { name: String, reason: String },
    #[error("{0} is not empty; a new node needs an empty or new directory")]
    NotEmpty(PathBuf),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("key file {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is not a spindel key (64 hex characters)")]
    KeyFormat { path: PathBuf },
    #[error("invalid name: {0}")]
    BadName(String),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("an aggregator authors no records; publish from a region node")]
    AggregatorAuthors,
    #[error("record {0} does not exist in this region")]
    UnknownRecord(RecordId),
    #[error(
        "record {record} was published under this region's earlier key {key}, which signs nothing more: it cannot be edited from this node (publish a new record instead); to remove it, order its erasure (spindel erase {key}/{record} --reason TEXT), which this region's own order does at once"
    )]
    EarlierKeyRecord { record: RecordId, key: NodeId },
    #[error(
        "record {0} was erased by the member regions' order: a new version of it would show nowhere (publish a new record; an erased profile comes back only under a new key, spindel rotate-key)"
    )]
    ErasedByOrder(RecordId),
    #[error("record {0} is deleted; a deleted record cannot be published again")]
    Deleted(RecordId),
    #[error(
        "record {record_id} changed since it was read (version {expected}; now {}); nothing was published",
        current.map_or_else(|| "deleted".to_string(), |c| format!("version {c}"))
    )]
    Stale {
        record_id: RecordId,
        expected: u64,
        current: Option<u64>,
    },
    #[error("record {record_id} is of kind {stored}, not {given}")]
    KindMismatch {
        record_id: RecordId,
        stored: Kind,
        given: Kind,
    },
    #[error("cancelled: nothing was written")]
    Cancelled,
    #[error("the profile is edited with `publish --kind profile`; it cannot be deleted")]
    ProfileDelete,
    #[error("a region has one profile: {0}")]
    ProfileId(String),
    #[error("record is {0} bytes encoded, over the limit of {PAYLOAD_BYTES_MAX}")]
    TooLarge(usize),
    /// Every invalid line counted in `invalid`, the first [`IMPORT_ERRORS_SHOWN`] in `lines`.
    #[error("{invalid} invalid line(s), nothing was imported: {}", import_details(*invalid, lines))]
    ImportInvalid {
        invalid: usize,
        lines: Vec<ImportLineError>,
    },
    /// A line checked in an import's first pass that its second pass refused (the record it
    /// names was deleted since, the author's limits): nothing was imported.
    #[error("{name}: line {line}: {error}; nothing was imported")]
    ImportRefusedAt {
        name: String,
        line: usize,
        error: Box<NodeError>,
    },
    #[error("{name}: {problem}")]
    ImportFile {
        name: String,
        problem: ImportFileProblem,
    },
    #[error("nothing to import: the input holds no records")]
    ImportEmpty,
    #[error("import holds more than {IMPORT_RECORDS_MAX} records")]
    ImportTooLarge,
    #[error(
        "the import is committed but not all of it is applied yet ({reason}); the node finishes \
         it at its next write or start, so do not import the file again"
    )]
    ImportPending { reason: String },
    #[error(transparent)]
    Refused(spindel_protocol::ingest::Refusal),
    /// A task on the blocking pool panicked or was cancelled.
    #[error("a store task failed: {0}")]
    Task(String),
    #[error(
        "this node was restored from a backup and has not caught up with its aggregator yet; \
         run it with `spindel run --aggregator PEER` until it has, then publish"
    )]
    RestoredNotCaughtUp,
    #[error(
        "this node was restored from a backup and its aggregator refuses it ({0}): it cannot catch up, so it signs nothing; nothing was written"
    )]
    RestoredRefused(String),
    #[error("{0}")]
    OwnLogForked(String),
    #[error("{}", if *restored {
        format!("this node was restored from a backup and is still catching up with its aggregator (waited {waited_s} s); nothing was written, try again once `spindel status` shows the link up")
    } else {
        format!("the node is still catching up with its own log at its aggregator (waited {waited_s} s); nothing was written")
    })]
    CatchingUp { waited_s: u64, restored: bool },
    /// The aggregator refused this node's session: another copy of its key holds one there.
    #[error(
        "{0}; this node signs nothing while that copy is connected (two copies of one key fork its log); nothing was written. Stop and disable the copy that should not run and move its node.key away (see deploy/README.md, \"Two copies of one key\"); this node signs again once the aggregator takes its session"
    )]
    OtherCopy(String),
    #[error("the node is shutting down; nothing was written")]
    Stopped,
    #[error("cannot encode the answer: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("only an aggregator admits regions (this node is a region)")]
    NotAggregator,
    #[error("{0} is not a usable ed25519 public key")]
    WeakKey(NodeId),
    #[error("{0} is this node's own key")]
    OwnKey(NodeId),
    #[error("{0} is not admitted here; nothing to disallow")]
    NotAdmittedHere(NodeId),
    #[error(
        "{0} is admitted here as a region; a key is a region or a mirror aggregator, not both (spindel disallow it first)"
    )]
    MirrorIsARegion(NodeId),
    #[error(
        "{0} is allowed here as a mirror aggregator; a key is a region or a mirror aggregator, not both (spindel disallow it first)"
    )]
    RegionIsAMirror(NodeId),
    /// A membership act refused, with the reason (decision 0041).
    #[error(transparent)]
    Membership(#[from] MembershipRefusal),
    #[error("charter: {0}")]
    Charter(spindel_protocol::charter::CharterError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Query(#[from] QueryError),
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |error| NodeError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Why an act (or withdrawing one) was refused: it would count nothing, or it would change
/// what only another act changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipRefusal {
    #[error(
        "this node has no charter, so there is no membership to act on (spindel charter adopt --data-dir DIR FILE; in a network without one, the aggregator's operator runs spindel allow)"
    )]
    NoCharter,
    #[error("this region is not a member of the network: its acts would count nothing")]
    NotAMember,
    #[error("{field}: {text:?} is not a usable node id (64 lowercase hex characters)")]
    BadKey { field: &'static str, text: String },
    #[error("{key} is already the key of the region {region:?}; a key is endorsed once")]
    AlreadyMember { key: NodeId, region: String },
    #[error(
        "{key} was a key of the region {region:?}, and a key never comes back (endorse a new key with --replaces)"
    )]
    FormerKey { key: NodeId, region: String },
    #[error("--replaces {key}: not a key of any region in this network")]
    ReplacesUnknown { key: NodeId },
    #[error(
        "--replaces {key}: that key is the region {region:?}'s, so its new key keeps that name (--name {region})"
    )]
    ReplacesOtherName { key: NodeId, region: String },
    #[error(
        "the name {name:?} is the region of {holder}'s; a name is held for good (a new key for that region is endorsed with --replaces {holder})"
    )]
    NameHeld { name: String, holder: NodeId },
    #[error(
        "this region has endorsed {key} already (a region has one vote for a key, not one a name); it counts once, not as {name:?} too"
    )]
    EndorsedTwice { key: NodeId, name: String },
    #[error("this region has asked to revoke {key} already; it counts once")]
    RevokedTwice { key: NodeId },
    #[error(
        "{key} is no longer a member key of {region:?} (revoked or replaced): nothing to revoke"
    )]
    RevokeFormer { key: NodeId, region: String },
    #[error("{key} is not a member of this network: nothing to revoke")]
    RevokeStranger { key: NodeId },
    #[error(
        "record {record} is a membership act that took effect: withdrawing it now would change nothing, since a withdrawal never undoes a change that happened (spindel revoke ends a membership)"
    )]
    TookEffect { record: RecordId },
    #[error(
        "an aggregator's key is not rotated: its regions pin it (NODEID@HOST:PORT in their settings); start a new aggregator and give the regions its address"
    )]
    AggregatorRotates,
    #[error(
        "this key has handed the region over to {to} (rotation entry {seq}) and signs nothing more; the node switches to the new key once an aggregator holds the rotation (spindel status shows the hand-over)"
    )]
    HandingOver { to: String, seq: u64 },
    #[error(
        "this key handed the region {region:?} over to {to} (spindel rotate-key) and signs nothing more; the node that holds the new key (its node.key) runs the region"
    )]
    KeyRotated { region: String, to: String },
    #[error(
        "this key is no longer a member key of {region:?} (replaced or revoked by the member regions): what it signs reaches no one, deletions included (a record of it is removed by the member regions' erasure order, spindel erase)"
    )]
    KeyEnded { region: String },
    #[error(
        "{path}: holds the key {key}, which is a region's key already; move the file away and run spindel rotate-key again"
    )]
    NextKeyUsed {
        path: std::path::PathBuf,
        key: NodeId,
    },
    #[error("this node's key has no rotation to switch to")]
    NoHandover,
    #[error("--upto is given only with --replaces: the replaced key's last entry that stays")]
    UptoWithoutReplaces,
    #[error(
        "--upto {upto}: this node holds {key}'s log up to entry {held} only; name an entry it holds (every endorser the same)"
    )]
    UptoBeyond { key: NodeId, upto: u64, held: u64 },
    #[error("{text:?} is not a record id (32 lowercase hex characters): give AUTHOR/RECORD_ID")]
    BadRecord { text: String },
    #[error(
        "record {author}/{record} is not held here: an order erases a record the network holds (spindel query shows ids)"
    )]
    EraseUnknown { author: NodeId, record: RecordId },
    #[error(
        "record {record} is a membership act: an act is withdrawn by its author, and an erasure order erases knowledge records"
    )]
    EraseAct { record: RecordId },
    #[error("record {record} is erased already by the member regions' order")]
    ErasedAlready { record: RecordId },
    #[error("this region has ordered record {record} erased already; it counts once")]
    OrderedTwice { record: RecordId },
}
