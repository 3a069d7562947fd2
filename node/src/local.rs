//! A node's data directory and the operations a person runs on it: init, publish, import,
//! delete, status, query.
//!
//! ```text
//! DIR/config.toml   name, role (written last by init: its presence means "a node lives here")
//! DIR/node.key      the ed25519 secret key, 64 hex characters, mode 0600
//! DIR/store/        sled: the signed logs and everything derived (see store.rs)
//! DIR/index/        tantivy full-text index, derived, rebuilt when stale
//! DIR/import.*      an import on its way into the store (see import.rs), erased when in
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use spindel_protocol::entry::{
    Entry, Hash, Head, PAYLOAD_BYTES_MAX, Payload, RecordId, next_header,
};
use spindel_protocol::record::{
    CONSENT_FORM, Consent, Kind, Record, SchemaError, validate_region_name,
};
use spindel_protocol::{NodeId, SecretKey};

use crate::query::{self, Query, QueryError, QueryPage};
use crate::store::{ApplyOptions, Incoming, Store, StoreError};

mod import;
pub use import::{
    IMPORT_APPLIED, IMPORT_BYTES_MAX, IMPORT_CHUNK_ENTRIES, IMPORT_COMMITTED, IMPORT_FAULT,
    IMPORT_LINE_BYTES_MAX, IMPORT_STAGING, IMPORT_UPLOAD, ImportFault, ImportSource, erase_file,
};

pub const CONFIG_FILE: &str = "config.toml";
/// Marks a data directory `spindel restore` made that has not caught up with its aggregator
/// yet: it signs nothing until it has (a restored old copy must never fork its own log).
pub const RESTORED_MARKER: &str = "restored";
pub const KEY_FILE: &str = "node.key";
/// Holds the first own seq this node signed while no pinned aggregator had confirmed it
/// (published offline), until an aggregator acknowledges the own log up to its head: the
/// entries this copy holds that the network may lack, also across a restart or a copy of the
/// directory.
pub const OFFLINE_MARKER: &str = "offline-from";
/// What a write signed offline says (CLI stderr, `status`), in one line.
pub const OFFLINE_WARNING: &str = "no aggregator has confirmed this node since it started, so \
     this was signed offline: it is sent when the link is up; if another copy of this node's \
     key (an older or restored data directory) may be running, stop it first, or the region's \
     log forks";
/// Lines one import may hold.
pub const IMPORT_RECORDS_MAX: usize = 1_000_000;
/// Invalid lines named in an import error before "and N more".
pub const IMPORT_ERRORS_SHOWN: usize = 5;

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
    #[error("over the limit of {IMPORT_BYTES_MAX} bytes")]
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

/// The two roles of one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Authors records and replicates them to aggregators.
    Region,
    /// Gathers admitted regions' records, serves queries, relays the aggregate back.
    Aggregator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Region => "region",
            Role::Aggregator => "aggregator",
        }
    }
}

/// `DIR/config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Query(#[from] QueryError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |error| NodeError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What `init` and `id` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node_id: String,
    pub name: String,
    pub role: Role,
}

/// What `publish` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub record_id: String,
    pub seq: u64,
    /// Hash of the new entry's header.
    pub entry: String,
    /// Signed while no pinned aggregator had confirmed this node since it started (it
    /// published offline after the catch-up wait): the entry goes out when a link is up, and
    /// if another copy of this key runs, the two fork (see [`OFFLINE_WARNING`]).
    #[serde(default)]
    pub offline: bool,
}

/// What `import` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imported {
    pub imported: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Signed offline (see [`Published::offline`]).
    #[serde(default)]
    pub offline: bool,
}

/// What `allow` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allowed {
    pub node_id: String,
    pub name: Option<String>,
}

/// What `disallow` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disallowed {
    pub node_id: String,
    /// The name it was admitted under, now free.
    pub name: Option<String>,
    /// Always false: the region is no longer admitted.
    pub admitted: bool,
}

/// What `delete` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    pub record_id: String,
    pub seq: u64,
    /// Signed offline (see [`Published::offline`]).
    #[serde(default)]
    pub offline: bool,
}

/// One author as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorStatus {
    pub node_id: String,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub admitted: bool,
    pub frozen: bool,
    pub head: u64,
    pub records: u64,
    /// Signed payload bytes of its current versions (the payload quota's count).
    #[serde(default)]
    pub payload_bytes: u64,
    /// This node itself (on an aggregator: its own key, which authors nothing).
    #[serde(default)]
    pub own: bool,
}

/// A proven fork as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForkStatus {
    pub author: String,
    /// The region's name, when known.
    #[serde(default)]
    pub name: Option<String>,
    pub seq: u64,
    /// Hashes of the two signed entries with this seq (the first is the one kept).
    pub first: String,
    pub second: String,
    /// This node's own log forked.
    #[serde(default)]
    pub own: bool,
    /// What the operator should do, in one sentence.
    #[serde(default)]
    pub advice: String,
}

/// The one sentence `status` gives an operator about a fork.
pub fn fork_advice(own: bool, name: Option<&str>, seq: u64) -> String {
    if own {
        format!(
            "This node's own log forked at seq {seq}: two copies of this key signed entries with \
             the same seq (both running at once, or one that published while it could not reach \
             the aggregator), and nothing this key signs is accepted any more; stop every \
             copy, create a new node with `spindel init` and ask the aggregator's operator to \
             admit its key under this region's name (`spindel allow NEW_NODEID --name NAME`)."
        )
    } else {
        format!(
            "Region {} signed two different entries with seq {seq}: two copies of its key signed \
             (both running at once, or a copy that published while it could not reach the \
             aggregator); nothing more is accepted from that key, and its operator replaces the \
             node with a new key that the aggregator admits.",
            name.unwrap_or("(unnamed)")
        )
    }
}

/// What `status` reports (the keys of docs/interface.md first; more keys are welcome).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub node_id: String,
    pub name: String,
    pub role: Role,
    /// Current, non-deleted records of every author held here.
    pub records: u64,
    pub heads: BTreeMap<String, u64>,
    pub peers: Vec<serde_json::Value>,
    pub authors: Vec<AuthorStatus>,
    pub refused: BTreeMap<String, u64>,
    /// Refusals per author (NodeId) and reason.
    #[serde(default)]
    pub refused_by_author: BTreeMap<String, BTreeMap<String, u64>>,
    pub forks: Vec<ForkStatus>,
    pub generation: u64,
    /// Restored from a backup and not caught up with an aggregator yet: publishing waits.
    #[serde(default)]
    pub restored: bool,
    /// The name the aggregator admitted this region under, when it is not `name`: the
    /// network shows its records under this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_as: Option<String>,
    /// What the operator should see to, one sentence each (e.g. a region's profile without a
    /// website, so `/integritet` names no contact for its records).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// A running node that refuses to sign: a pinned aggregator refused its session because
    /// another copy of its key is connected there (the aggregator's words: where, since when).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_copy: Option<String>,
    /// A running region that dials aggregators and none has taken a session of it since it
    /// started: what it signs now is signed offline ([`OFFLINE_WARNING`]).
    #[serde(default)]
    pub offline: bool,
    /// Own entries this node holds that no pinned aggregator has acknowledged (signed
    /// offline, or not sent yet), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_sent: Option<NotSent>,
    /// While `other_copy`, and this copy holds entries the network lacks: which, and what to
    /// do, in one paragraph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_copy_advice: Option<String>,
}

/// Own entries `first..=last` no pinned aggregator has acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotSent {
    pub first: u64,
    pub last: u64,
    pub count: u64,
}

/// What `status` tells the operator of a copy an aggregator refuses while it holds own
/// entries the network lacks (`deploy/README.md`, "Two copies of one key", says the same).
/// `address`: where the other copy is connected from; `held`: how far the aggregator holds
/// this key's log (the other copy's).
pub fn other_copy_advice(range: &NotSent, address: Option<&str>, held: Option<u64>) -> String {
    let entries = if range.first == range.last {
        format!("entry {}", range.first)
    } else {
        format!("entries {}-{}", range.first, range.last)
    };
    let other = match address {
        Some(a) => format!("the other copy, connected from {a}, is live"),
        None => "the other copy is live".to_string(),
    };
    let before = range.first.saturating_sub(1);
    match held {
        Some(h) if h >= range.first => format!(
            "this copy holds {entries} that the network does not have; {other} and has signed \
             up to entry {h}, so this copy's {entries} can never join the log. Stop this copy, \
             disable it and move its node.key away, keep the other, and publish this copy's \
             records again there (`spindel query --data-dir` on this directory shows them)."
        ),
        _ => format!(
            "this copy holds {entries} that the network does not have; {other}. If this \
             directory is the old one, stop it, disable it and move its node.key away, keep the \
             other, and publish this copy's records again there. If this one is the right one, \
             stop the other copy first (and move its node.key away) before it signs past entry \
             {before}: this copy then links, sends its {entries} and signs again."
        ),
    }
}

/// `status`'s warning while a region's profile has no website.
pub const NO_WEBSITE_WARNING: &str = "the region's profile has no website, so /integritet \
     names no contact for its records: publish the profile with a \"website\" (spindel \
     publish --kind profile, or Profil in the editor)";

/// `DIR/offline-from`, if it holds a seq (an unreadable one counts as absent).
fn read_offline_marker(dir: &Path) -> Option<u64> {
    fs::read_to_string(dir.join(OFFLINE_MARKER))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .filter(|seq| *seq > 0)
}

/// An import line's own `record_id` (if any) and the record's JSON without it.
fn split_record_id(line: &str) -> Result<(Option<RecordId>, std::borrow::Cow<'_, str>), NodeError> {
    if !line.contains("\"record_id\"") {
        return Ok((None, std::borrow::Cow::Borrowed(line)));
    }
    let bad = |m: String| {
        NodeError::Schema(SchemaError {
            message: m,
            field: Some("record_id".into()),
            problem: spindel_protocol::record::Problem::Other,
        })
    };
    let mut value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
        NodeError::Schema(SchemaError {
            message: format!("invalid JSON: {e}"),
            field: None,
            problem: spindel_protocol::record::Problem::NotJson,
        })
    })?;
    let Some(obj) = value.as_object_mut() else {
        return Ok((None, std::borrow::Cow::Borrowed(line)));
    };
    let rid = match obj.remove("record_id") {
        Some(serde_json::Value::String(s)) => s
            .parse::<RecordId>()
            .map_err(|_| bad(format!("record_id must be 32 hex characters, got {s:?}")))?,
        Some(other) => return Err(bad(format!("record_id must be a string, got {other}"))),
        None => return Ok((None, std::borrow::Cow::Borrowed(line))),
    };
    Ok((Some(rid), std::borrow::Cow::Owned(value.to_string())))
}

/// Creates a new node in `dir`. A region's first entry is its signed profile. On any failure
/// everything created is removed again.
pub fn init(
    dir: &Path,
    name: &str,
    role: Role,
    display_name: Option<&str>,
    rng: &mut impl CryptoRngCore,
) -> Result<NodeInfo, NodeError> {
    init_open(dir, name, role, display_name, rng).map(|node| node.info())
}

/// What `init` puts in a region's first profile beyond its name.
#[derive(Debug, Clone, Copy, Default)]
pub struct InitProfile<'a> {
    /// The region's name as people read it (default: its short name).
    pub display_name: Option<&'a str>,
    /// The region's website: `/integritet` names it as the contact for the region's records
    /// (an http or https URL, checked as the profile record checks it).
    pub website: Option<&'a str>,
}

/// [`init`] with the profile's display name and website.
pub fn init_with(
    dir: &Path,
    name: &str,
    role: Role,
    profile: InitProfile<'_>,
    rng: &mut impl CryptoRngCore,
) -> Result<NodeInfo, NodeError> {
    validate_region_name(name).map_err(NodeError::BadName)?;
    if role == Role::Aggregator && profile.website.is_some() {
        return Err(NodeError::Schema(SchemaError::new(
            "an aggregator has no profile: --website is for a region".to_string(),
        )));
    }
    in_new_node_dir(dir, || init_inner(dir, name, role, profile, rng)).map(|node| node.info())
}

/// [`init`], keeping the new node open (no second open that would wait for sled's file lock).
pub fn init_open(
    dir: &Path,
    name: &str,
    role: Role,
    display_name: Option<&str>,
    rng: &mut impl CryptoRngCore,
) -> Result<LocalNode, NodeError> {
    validate_region_name(name).map_err(NodeError::BadName)?;
    let profile = InitProfile {
        display_name,
        website: None,
    };
    in_new_node_dir(dir, || init_inner(dir, name, role, profile, rng))
}

/// Runs `make` to create a node in `dir`: refuses a `dir` that holds a node, creates it (0700)
/// if missing, and on failure removes everything made, so nothing is left half-written.
pub(crate) fn in_new_node_dir<T>(
    dir: &Path,
    make: impl FnOnce() -> Result<T, NodeError>,
) -> Result<T, NodeError> {
    if [CONFIG_FILE, KEY_FILE, "store"]
        .iter()
        .any(|f| dir.join(f).exists())
    {
        return Err(NodeError::AlreadyANode(dir.to_path_buf()));
    }
    let created_dir = !dir.exists();
    if !created_dir && fs::read_dir(dir).map_err(io_err(dir))?.next().is_some() {
        return Err(NodeError::NotEmpty(dir.to_path_buf()));
    }
    if created_dir {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
    } else {
        // An existing (empty) directory may have been made with a umask that lets every
        // local user read it: the node's directory is its owner's alone.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    }
    let result = make();
    if result.is_err() {
        if created_dir {
            let _ = fs::remove_dir_all(dir);
        } else {
            for f in [
                KEY_FILE,
                CONFIG_FILE,
                RESTORED_MARKER,
                "config.toml.tmp",
                crate::users::USERS_FILE,
                crate::users::AUDIT_FILE,
            ] {
                let _ = fs::remove_file(dir.join(f));
            }
            for d in ["store", "index", crate::payloads::PAYLOADS_DIR] {
                let _ = fs::remove_dir_all(dir.join(d));
            }
        }
    }
    result
}

fn init_inner(
    dir: &Path,
    name: &str,
    role: Role,
    profile: InitProfile<'_>,
    rng: &mut impl CryptoRngCore,
) -> Result<LocalNode, NodeError> {
    let display_name = profile.display_name;
    let key = SecretKey::generate(rng);
    write_key(&dir.join(KEY_FILE), &key)?;
    let config = NodeConfig {
        name: name.to_string(),
        role,
        display_name: display_name.map(|d| d.trim().to_string()),
    };
    let store = Store::open(dir)?;
    store.admit(&key.node_id(), Some(name.to_string()))?;
    let node = LocalNode {
        dir: dir.to_path_buf(),
        config: config.clone(),
        key,
        store,
        own_log: std::sync::Mutex::new(()),
        restored: std::sync::atomic::AtomicBool::new(false),
        offline_from: std::sync::Mutex::new(None),
    };
    if role == Role::Region {
        let mut json = serde_json::json!({
            "display_name": display_name.unwrap_or(name),
            "name": name,
        });
        if let Some(website) = profile.website {
            json["website"] = serde_json::Value::String(website.trim().to_string());
        }
        node.publish(Kind::Profile, &json.to_string(), None, rng, now_ms())?;
    }
    node.store.flush()?;
    // The config is written last, atomically: its presence marks a complete node.
    write_config(dir, &config)?;
    Ok(node)
}

/// Writes `DIR/config.toml` atomically (see [`write_file_atomically`]).
pub(crate) fn write_config(dir: &Path, config: &NodeConfig) -> Result<(), NodeError> {
    let text = toml::to_string(config).map_err(|e| NodeError::Config {
        path: dir.join(CONFIG_FILE),
        reason: e.to_string(),
    })?;
    write_file_atomically(dir, CONFIG_FILE, text.as_bytes())
}

/// Writes `DIR/name` atomically, only its owner may read it: a temporary file (0600), synced,
/// renamed over the old one, the directory synced.
pub(crate) fn write_file_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), NodeError> {
    let tmp = dir.join(format!("{name}.tmp"));
    // Created exclusively: never through a link someone left in its place (a stale file or
    // link from a crash is removed first; removing a link does not follow it).
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&tmp)(e)),
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, dir.join(name)).map_err(io_err(dir))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

/// A key file holds 64 hex characters and a newline; anything over this many bytes is not one.
pub const KEY_FILE_BYTES_MAX: usize = 128;

pub(crate) fn write_key(path: &Path, key: &SecretKey) -> Result<(), NodeError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    let hex_text = key.to_hex();
    file.write_all(hex_text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(())
}

fn read_key(path: &Path) -> Result<SecretKey, NodeError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(NodeError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    // Read into one buffer of a fixed size, zeroed after use (a growing buffer would leave
    // copies of the key text in freed memory). A longer file is not a key file.
    let mut text = zeroize::Zeroizing::new(vec![0u8; KEY_FILE_BYTES_MAX + 1]);
    let mut len = 0;
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    loop {
        match file.read(&mut text[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len == text.len() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    let key = (len <= KEY_FILE_BYTES_MAX)
        .then(|| std::str::from_utf8(&text[..len]).ok())
        .flatten()
        .and_then(SecretKey::from_hex);
    key.ok_or_else(|| NodeError::KeyFormat {
        path: path.to_path_buf(),
    })
}

/// Reads `DIR/config.toml`.
pub fn read_config(dir: &Path) -> Result<NodeConfig, NodeError> {
    let path = dir.join(CONFIG_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(NodeError::NotANode(dir.to_path_buf()));
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let config: NodeConfig = toml::from_str(&text).map_err(|e| NodeError::Config {
        path: path.clone(),
        reason: e.message().to_string(),
    })?;
    validate_region_name(&config.name).map_err(|reason| NodeError::Config { path, reason })?;
    Ok(config)
}

/// The node's key from its key file (checked like every open), without opening the store:
/// for asking another node as this one while `spindel run` holds the directory.
pub fn node_key(dir: &Path) -> Result<SecretKey, NodeError> {
    read_config(dir)?;
    read_key(&dir.join(KEY_FILE))
}

/// The node's identity from its config and key file alone, without opening the store (so it
/// works while `spindel run` holds the directory).
pub fn identity(dir: &Path) -> Result<NodeInfo, NodeError> {
    let config = read_config(dir)?;
    let key = read_key(&dir.join(KEY_FILE))?;
    Ok(NodeInfo {
        node_id: key.node_id().to_hex(),
        name: config.name,
        role: config.role,
    })
}

/// An opened node: its config, key and store.
pub struct LocalNode {
    dir: PathBuf,
    config: NodeConfig,
    key: SecretKey,
    store: Store,
    /// The one writer of this node's own log: choosing the next seq, signing and applying are
    /// one critical section, so concurrent publishes never sign two entries with one seq.
    own_log: std::sync::Mutex<()>,
    /// `DIR/restored` exists: a restored node that has not caught up yet.
    restored: std::sync::atomic::AtomicBool,
    /// `DIR/offline-from`: the first own seq signed offline and not yet acknowledged.
    offline_from: std::sync::Mutex<Option<u64>>,
}

impl std::fmt::Debug for LocalNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNode")
            .field("dir", &self.dir)
            .field("name", &self.config.name)
            .field("node_id", &self.key.node_id())
            .finish_non_exhaustive()
    }
}

impl LocalNode {
    /// Opens the node in `dir`.
    pub fn open(dir: &Path) -> Result<LocalNode, NodeError> {
        let config = read_config(dir)?;
        let key = read_key(&dir.join(KEY_FILE))?;
        let store = Store::open(dir)?;
        // A store made anew beside an existing key (see StoreError::OldFormat) takes its own
        // log back from the aggregator: its own key must be admitted in it.
        if !store.is_admitted(&key.node_id())? {
            store.admit(&key.node_id(), Some(config.name.clone()))?;
        }
        let restored = dir.join(RESTORED_MARKER).exists();
        let node = LocalNode {
            dir: dir.to_path_buf(),
            config,
            key,
            store,
            own_log: std::sync::Mutex::new(()),
            restored: std::sync::atomic::AtomicBool::new(restored),
            offline_from: std::sync::Mutex::new(read_offline_marker(dir)),
        };
        // An import a crash interrupted is dropped or finished before anything reads the
        // store. One that cannot be finished keeps the own log from signing (each write
        // tries again and names the problem) but leaves the node readable.
        if let Err(e) = node.recover_import() {
            tracing::error!(error = %e, "an interrupted import could not be finished; this node signs nothing until it is");
        }
        Ok(node)
    }

    pub fn node_id(&self) -> NodeId {
        self.key.node_id()
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes everything written so far durable (sled flushes in the background too).
    pub fn flush(&self) -> Result<(), NodeError> {
        self.store.flush()?;
        Ok(())
    }

    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            node_id: self.node_id().to_hex(),
            name: self.config.name.clone(),
            role: self.config.role,
        }
    }

    /// Validates, signs and appends a record; returns once it is durable on disk.
    /// `record_id`: publish a new version of an existing own record.
    pub fn publish(
        &self,
        kind: Kind,
        json: &str,
        record_id: Option<RecordId>,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
    ) -> Result<Published, NodeError> {
        if self.config.role == Role::Aggregator {
            return Err(NodeError::AggregatorAuthors);
        }
        self.publish_expecting(kind, json, record_id, None, rng, now_ms)
    }

    /// [`LocalNode::publish`] of a new version that is written only if the record's current
    /// version is still `expected` (the entry seq it was read at), checked under the own-log
    /// lock: an edit made on a stale form never overwrites a colleague's ([`NodeError::Stale`]).
    pub fn publish_expecting(
        &self,
        kind: Kind,
        json: &str,
        record_id: Option<RecordId>,
        expected: Option<u64>,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
    ) -> Result<Published, NodeError> {
        if self.config.role == Role::Aggregator {
            return Err(NodeError::AggregatorAuthors);
        }
        let record = self.prepare(kind, json)?;
        let _writer = self.own_log_writer()?;
        if let (Some(expected), Some(rid)) = (expected, record_id) {
            let current = crate::query::get(&self.store, &self.node_id(), &rid)?.map(|v| v.seq);
            if current != Some(expected) {
                return Err(NodeError::Stale {
                    record_id: rid,
                    expected,
                    current,
                });
            }
        }
        let record_id = self.target_record(kind, record_id, rng)?;
        let (seq, hash) = self.sign_and_apply(record_id, record, rng, now_ms)?;
        Ok(Published {
            record_id: record_id.to_hex(),
            seq,
            entry: hash.to_hex(),
            offline: false,
        })
    }

    /// The time the next own entry carries: `now_ms`, or the own head's time if the clock went
    /// back, so an author's entries never go back in time (called under the own-log lock).
    fn own_time(&self, now_ms: u64, head: Option<Head>) -> Result<u64, NodeError> {
        let me = self.node_id();
        let last = match head {
            Some(head) => self
                .store
                .entry(&me, head.seq)?
                .map_or(0, |e| e.header().timestamp_ms),
            None => 0,
        };
        if last > now_ms {
            tracing::warn!(
                behind_ms = last - now_ms,
                "the clock is behind this region's last entry; signing with that entry's time"
            );
        }
        Ok(now_ms.max(last))
    }

    /// Appends a signed tombstone; the record's payloads are purged.
    pub fn delete(&self, record_id: RecordId, now_ms: u64) -> Result<Deleted, NodeError> {
        if self.config.role == Role::Aggregator {
            return Err(NodeError::AggregatorAuthors);
        }
        let me = self.node_id();
        let _writer = self.own_log_writer()?;
        let head = self.store.head(&me)?;
        let now_ms = self.own_time(now_ms, head)?;
        let meta = self
            .store
            .record_meta(&me, &record_id)?
            .ok_or(NodeError::UnknownRecord(record_id))?;
        if meta.deleted {
            return Err(NodeError::Deleted(record_id));
        }
        if meta.kind == Kind::Profile {
            return Err(NodeError::ProfileDelete);
        }
        let header = next_header(me, head, now_ms, meta.kind, record_id, None);
        let entry = Entry::sign(&self.key, header);
        let seq = entry.header().seq;
        self.apply_own(
            vec![Incoming {
                entry,
                payload: None,
            }],
            now_ms,
        )?;
        Ok(Deleted {
            record_id: record_id.to_hex(),
            seq,
            offline: false,
        })
    }

    /// Aggregator: admits a region (persisted). Weak keys are refused.
    pub fn allow(&self, id: NodeId, name: Option<String>) -> Result<Allowed, NodeError> {
        if self.config.role != Role::Aggregator {
            return Err(NodeError::NotAggregator);
        }
        if !id.is_usable() {
            return Err(NodeError::WeakKey(id));
        }
        if id == self.node_id() {
            return Err(NodeError::OwnKey(id));
        }
        // The name is the region's name on every node. Without `--name` a region keeps the
        // name it was admitted under before, or gets one made from its key (never the name
        // its profile claims: anyone can write any profile).
        let name = match name {
            Some(n) => n,
            None => match self.store.author(&id)?.and_then(|m| m.admitted_name) {
                Some(held) => held,
                None => format!("region-{}", &id.to_hex()[..8]),
            },
        };
        validate_region_name(&name).map_err(NodeError::BadName)?;
        let meta = self
            .store
            .admit_unique(&id, &name, &self.node_id(), &self.config.name)?;
        Ok(Allowed {
            node_id: id.to_hex(),
            name: meta.label().map(str::to_string),
        })
    }

    /// Aggregator: ends the admission of a region (persisted): its sessions are refused, its
    /// name is freed, its new entries are refused; its stored entries stay (signed history).
    /// In a running node the writer also ends its live session and sends every connected
    /// region the new list.
    pub fn disallow(&self, id: NodeId) -> Result<Disallowed, NodeError> {
        if self.config.role != Role::Aggregator {
            return Err(NodeError::NotAggregator);
        }
        if id == self.node_id() {
            return Err(NodeError::OwnKey(id));
        }
        let before = self
            .store
            .disallow(&id)?
            .ok_or(NodeError::NotAdmittedHere(id))?;
        Ok(Disallowed {
            node_id: id.to_hex(),
            name: Some(before.name_or_key(&id)),
            admitted: false,
        })
    }

    /// Held while the next entry of the own log is chosen, signed and applied. A restored
    /// node that has not caught up with its aggregator signs nothing.
    fn own_log_writer(&self) -> Result<std::sync::MutexGuard<'_, ()>, NodeError> {
        if self.restored() {
            return Err(NodeError::RestoredNotCaughtUp);
        }
        if let Some((_, proof)) = self
            .store
            .forks()?
            .into_iter()
            .find(|(a, _)| *a == self.node_id())
        {
            return Err(NodeError::OwnLogForked(fork_advice(
                true,
                Some(&self.config.name),
                proof.seq,
            )));
        }
        let guard = self
            .own_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A committed import that a crash or a failed write left unfinished comes first: the
        // next own entry follows its last.
        self.apply_committed_import()?;
        Ok(guard)
    }

    /// This data directory came from `spindel restore` and has not caught up yet.
    pub fn restored(&self) -> bool {
        self.restored.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The restored node caught up with its aggregator: it may sign again.
    pub fn clear_restored(&self) -> Result<(), NodeError> {
        let path = self.dir.join(RESTORED_MARKER);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        self.restored
            .store(false, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The first own seq signed offline that no pinned aggregator has acknowledged yet.
    pub fn offline_from(&self) -> Option<u64> {
        *self
            .offline_from
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Own entry `seq` was signed offline: remembered (`DIR/offline-from`) unless an earlier
    /// one is. Written after the entry is durable; a crash in between forgets the marker, and
    /// `status` then counts from what the aggregators hold.
    pub fn mark_offline(&self, seq: u64) -> Result<(), NodeError> {
        let mut from = self
            .offline_from
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if from.is_some_and(|f| f <= seq) {
            return Ok(());
        }
        write_file_atomically(&self.dir, OFFLINE_MARKER, format!("{seq}\n").as_bytes())?;
        *from = Some(seq);
        Ok(())
    }

    /// A pinned aggregator acknowledged the own log up to `acked`: the offline marker goes
    /// once that covers the own head.
    pub fn own_acked(&self, acked: u64) -> Result<(), NodeError> {
        let mut from = self
            .offline_from
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if from.is_none() {
            return Ok(());
        }
        let here = self.store.head(&self.node_id())?.map_or(0, |h| h.seq);
        if acked < here {
            return Ok(());
        }
        let path = self.dir.join(OFFLINE_MARKER);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        *from = None;
        tracing::info!(
            head = here,
            "the aggregator holds every entry this node signed offline"
        );
        Ok(())
    }

    /// The node's secret key (for the transport's TLS identity).
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// Runs a query against this node's store.
    pub fn query(&self, q: &Query) -> Result<QueryPage, NodeError> {
        Ok(query::run_checked(&self.store, q)?)
    }

    /// Identity, heads, counts, refusals and forks.
    pub fn status(&self) -> Result<Status, NodeError> {
        let heads = self.store.heads()?;
        let mut authors = Vec::new();
        for a in crate::regions::authors(&self.store)? {
            authors.push(AuthorStatus {
                node_id: a.id.to_hex(),
                name: a.meta.label().map(str::to_string),
                display_name: a.meta.display_name.clone(),
                admitted: a.meta.admitted,
                frozen: a.meta.frozen,
                head: a.head,
                records: a.records,
                payload_bytes: self.store.payload_bytes_of(&a.id)?,
                own: a.id == self.node_id(),
            });
        }
        let names: BTreeMap<NodeId, Option<String>> = self
            .store
            .authors()?
            .into_iter()
            .map(|(id, m)| (id, m.label().map(str::to_string)))
            .collect();
        let me = self.node_id();
        let forks = self
            .store
            .forks()?
            .into_iter()
            .map(|(author, proof)| {
                let name = names.get(&author).cloned().flatten();
                ForkStatus {
                    author: author.to_hex(),
                    advice: fork_advice(author == me, name.as_deref(), proof.seq),
                    name,
                    seq: proof.seq,
                    first: Hash::of(&proof.first.header).to_hex(),
                    second: Hash::of(&proof.second.header).to_hex(),
                    own: author == me,
                }
            })
            .collect();
        let refused_by_author = self
            .store
            .refusals_by_author()?
            .into_iter()
            .map(|(a, r)| (a.to_hex(), r))
            .collect();
        Ok(Status {
            node_id: self.node_id().to_hex(),
            name: self.config.name.clone(),
            role: self.config.role,
            records: self.store.visible_count()?,
            heads: heads.iter().map(|(id, h)| (id.to_hex(), h.seq)).collect(),
            peers: Vec::new(),
            authors,
            refused: self.store.refusals()?,
            refused_by_author,
            forks,
            generation: self.store.generation()?,
            restored: self.restored(),
            admitted_as: self
                .store
                .author(&me)?
                .map(|m| m.name_or_key(&me))
                .filter(|n| *n != self.config.name),
            warnings: self.warnings()?,
            other_copy: None,
            offline: false,
            not_sent: None,
            other_copy_advice: None,
        })
    }

    /// What `status` warns about: a region whose profile has no website.
    fn warnings(&self) -> Result<Vec<String>, NodeError> {
        let mut out = Vec::new();
        if self.config.role == Role::Region {
            let me = self.node_id();
            let profile = self.store.author(&me)?.and_then(|m| m.profile);
            let website = match profile {
                Some(id) => match self.store.record_meta(&me, &id)? {
                    Some(m) => match self.store.load_record(&me, &id, &m)? {
                        Some(Record::Profile(p)) => p.website,
                        _ => None,
                    },
                    None => None,
                },
                None => None,
            };
            if website.is_none() {
                out.push(NO_WEBSITE_WARNING.to_string());
            }
        }
        Ok(out)
    }

    /// Validates JSON as a record of `kind`, filling in the profile's `name`.
    fn prepare(&self, kind: Kind, json: &str) -> Result<Record, NodeError> {
        let mut record = Record::from_json(kind, json)?;
        // The bare `consent: true` of the first format stays readable in old records; a new
        // one says when, how and for what.
        if let Record::Researcher(r) = &record
            && matches!(r.consent, Some(Consent::Bare(_)))
        {
            return Err(NodeError::Schema(SchemaError::new(format!(
                "researcher record needs consent as an object {CONSENT_FORM}; the bare \
                 consent: true is read in old records only"
            ))));
        }
        if let Record::Profile(profile) = &mut record {
            match &profile.name {
                None => profile.name = Some(self.config.name.clone()),
                Some(n) if *n == self.config.name => {}
                Some(n) => {
                    return Err(NodeError::ProfileId(format!(
                        "its name is this node's name {:?}, not {n:?}",
                        self.config.name
                    )));
                }
            }
        }
        let encoded = record.to_json().len() + spindel_protocol::entry::SALT_BYTES + 8;
        if encoded > PAYLOAD_BYTES_MAX {
            return Err(NodeError::TooLarge(encoded));
        }
        Ok(record)
    }

    /// The record id a publish writes to: the profile's own for profiles, the given one (which
    /// must be an existing own record of this kind), or a new one.
    fn target_record(
        &self,
        kind: Kind,
        given: Option<RecordId>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<RecordId, NodeError> {
        let me = self.node_id();
        if kind == Kind::Profile {
            let current = self.store.author(&me)?.and_then(|m| m.profile);
            return match (current, given) {
                (Some(p), Some(g)) if p != g => Err(NodeError::ProfileId(format!(
                    "its record id is {p}, not {g}"
                ))),
                (Some(p), _) => Ok(p),
                (None, Some(g)) => Err(NodeError::UnknownRecord(g)),
                (None, None) => Ok(RecordId::random(rng)),
            };
        }
        let Some(rid) = given else {
            return Ok(RecordId::random(rng));
        };
        let meta = self
            .store
            .record_meta(&me, &rid)?
            .ok_or(NodeError::UnknownRecord(rid))?;
        if meta.deleted {
            return Err(NodeError::Deleted(rid));
        }
        if meta.kind != kind {
            return Err(NodeError::KindMismatch {
                record_id: rid,
                stored: meta.kind,
                given: kind,
            });
        }
        Ok(rid)
    }

    /// Seals, signs and appends one record; returns its (seq, entry hash).
    fn sign_and_apply(
        &self,
        record_id: RecordId,
        record: Record,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
    ) -> Result<(u64, Hash), NodeError> {
        let me = self.node_id();
        let head = self.store.head(&me)?;
        let now_ms = self.own_time(now_ms, head)?;
        let payload = Payload::seal(rng, record.to_json());
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(NodeError::TooLarge(payload.len()));
        }
        let header = next_header(me, head, now_ms, record.kind(), record_id, Some(&payload));
        let entry = Entry::sign(&self.key, header);
        let signed = (entry.header().seq, entry.hash());
        self.apply_own(
            vec![Incoming {
                entry,
                payload: Some(payload),
            }],
            now_ms,
        )?;
        Ok(signed)
    }

    /// Applies own entries, all or nothing (in a running node the writer announces them).
    fn apply_own(&self, batch: Vec<Incoming>, now_ms: u64) -> Result<(), NodeError> {
        self.store.apply(
            batch,
            ApplyOptions {
                expected_author: Some(self.node_id()),
                now_ms,
                all_or_nothing: true,
            },
        )?;
        Ok(())
    }
}
