//! The store: every author's signed log and everything derived from it, in one sled tree.
//!
//! The signed log is the source of truth; all other keys are derived from it and the full-text
//! index is rebuilt from it whenever it is missing or stale. Keys carry a one-byte prefix:
//!
//! | prefix | key                         | value                                   |
//! |--------|-----------------------------|-----------------------------------------|
//! | `L`    | author, seq (BE)            | the entry as received ([`WireEntry`])   |
//! | `P`    | author, record_id           | [`PayloadRef`]: where the current version's payload is in the packs |
//! | `Q`    | pack number (BE)            | u64 (BE): the pack's committed length   |
//! | `Z`    | pack number, offset (BE)    | u32 (BE) length: a purged range still to be erased |
//! | `H`    | author                      | [`Head`]                                |
//! | `R`    | author, record_id           | [`RecordMeta`] (current version)        |
//! | `T`    | !updated_ms (BE), author, record_id | kind code: visible records, newest first |
//! | `A`    | author                      | [`AuthorMeta`]                          |
//! | `F`    | author                      | [`ForkProof`]: both signed headers      |
//! | `C`    | refusal reason              | u64 count                               |
//! | `D`    | author, refusal reason      | u64 count: refusals of that author's entries |
//! | `S`    | author                      | u64 ms (BE): when this node last accepted an entry of the author (local observation, not derived from the log) |
//! | `E`    | author, record_id, seq (BE) | u64 (BE): the record's own version number that entry made (1, 2, 3 ...); its versions are listed and numbered without reading the log (derived; rebuilt on open when `Mhistory` is not the generation) |
//! | `M`    | name                        | store metadata (`generation`, `format`, `history`) |
//!
//! **Nothing a record says is written to sled** (it keeps removed values in its files until it
//! happens to rewrite them): payloads live in the packs of [`crate::payloads`], which can erase
//! a range for good, and a record's tags are kept in memory only (built from the payloads on
//! first use). Each record keeps the payload of its current version only, owned by its author:
//! a new version or a tombstone purges the previous payload of *that author's* record and
//! nothing else. Purged ranges are listed under `Z` in the same atomic batch and erased right
//! after it is durable, and on every open before the store is used.
//!
//! Writes go through [`Store::apply`]: entries are checked one by one with
//! [`spindel_protocol::ingest::check`] against the store plus the batch so far, and everything a
//! batch changes is written with one atomic `apply_batch`, then flushed before `apply` returns.
//! Only one batch is prepared at a time (a mutex), so check-then-write cannot interleave.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use spindel_protocol::NodeId;
use spindel_protocol::codec::{self, DecodeError};
use spindel_protocol::entry::{
    Entry, EntryError, HEADER_BYTES_MAX, Hash, Head, Op, PAYLOAD_BYTES_MAX, Payload, RecordId,
    WireEntry,
};
use spindel_protocol::ingest::{self, Accepted, AuthorView, RecordState, Refusal};
use spindel_protocol::record::{Kind, Record};
use spindel_protocol::sync::HEADS_AUTHORS_MAX;

use crate::payloads::{Location, PAYLOADS_DIR, Packs};
use crate::search::{DocChange, SearchError, SearchIndex};

/// Upper bound of a stored metadata value (tags make `RecordMeta` the largest).
const META_BYTES_MAX: usize = 16 * 1024;
/// Entries per write (and per progress line) while rebuilding the versions index.
const HISTORY_REBUILD_CHUNK: u64 = 10_000;
/// Records indexed per commit while rebuilding the full-text index.
const REBUILD_CHUNK_RECORDS: usize = 5000;

/// A store failure. Corruption names the key that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {path} is in use by another spindel process (is `spindel run` holding it?)"
    )]
    Locked { path: PathBuf, detail: String },
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot open the store {path}: {error}")]
    Open { path: PathBuf, error: String },
    #[error("payload store {path}: {source}")]
    Payloads {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the store in {path} was written by an older spindel (store format {found}, this one reads {STORE_FORMAT}): \
         it kept record contents where they cannot be erased. Keep node.key and config.toml, move store/ and index/ \
         out of {path}, then `spindel sync --data-dir {path} --aggregator PEER` fetches the node's log back \
         (delete the old store/ once it has)"
    )]
    OldFormat { path: PathBuf, found: u64 },
    #[error(
        "the store in {path} was written by a newer spindel (store format {found}, this one reads {STORE_FORMAT}): \
         run that version, or restore a backup taken before the upgrade"
    )]
    NewerFormat { path: PathBuf, found: u64 },
    #[error("full-text index: {0}")]
    Search(#[from] SearchError),
    #[error("store is corrupt at {what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error(
        "the name {name:?} is already held by {holder}; a region's name is unique in the network"
    )]
    NameTaken { name: String, holder: String },
    #[error(
        "{max} regions are admitted already, as many as an admission list carries; disallow one first"
    )]
    TooManyAdmitted { max: usize },
    #[error("entry {index} of the batch was refused: {refusal}")]
    Refused { index: usize, refusal: Refusal },
}

fn corrupt(what: impl Into<String>, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// The current state of one record (its latest entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordMeta {
    pub kind: Kind,
    /// Seq of the latest entry of this record.
    pub seq: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub deleted: bool,
    /// Hash of the current version's payload when this node holds it; `None` when deleted,
    /// or when the version arrived without its payload.
    pub payload: Option<Hash>,
}

/// One version of a record (see [`Store::versions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// 1 for the record's first entry, then 2, 3, ...
    pub number: u64,
    /// Its entry in the author's log.
    pub seq: u64,
    /// When the author signed it (its clock).
    pub timestamp_ms: u64,
    /// A removal (tombstone) rather than a published version.
    pub removed: bool,
}

/// Where the payload of a record's current version is kept (the `P` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadRef {
    /// The seq of the version this payload belongs to.
    pub seq: u64,
    pub hash: Hash,
    pub at: Location,
}

/// Lower-cased tags (researchers: fields) of every visible record.
pub type TagMap = HashMap<(NodeId, RecordId), Vec<String>>;

impl RecordMeta {
    pub fn visible(&self) -> bool {
        !self.deleted && self.payload.is_some()
    }
}

/// What the store knows of an author.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthorMeta {
    /// Entries of this author are accepted.
    pub admitted: bool,
    /// The region's name in the network: the one its aggregator admitted it under
    /// (`spindel allow --name`), learned by regions from their aggregator. The only name
    /// queries, filters, facets, the API and the pages use for it.
    pub admitted_name: Option<String>,
    /// Frozen after a proven fork: nothing more is accepted.
    pub frozen: bool,
    /// `name` of the author's current profile: what the region calls itself, a description
    /// only (never used to find or label it). Content: never written to sled, filled in from
    /// the profile's payload when read.
    #[serde(skip)]
    pub profile_name: Option<String>,
    /// `display_name` of the author's current profile (like `name`, never in sled).
    #[serde(skip)]
    pub display_name: Option<String>,
    /// The author's profile record.
    pub profile: Option<RecordId>,
}

impl AuthorMeta {
    /// The region's name: the one it was admitted under (never what its profile claims).
    pub fn label(&self) -> Option<&str> {
        self.admitted_name.as_deref()
    }

    /// How pages and lists show the region `id`: its profile's display name with its name in
    /// the network beside it ("Social ekonomi Dalarna – dalarna"), so a profile that copies
    /// another region's display name still reads as the region it is. A region without an
    /// admitted name here shows as `region-<8 hex of its key>`, never by its display name
    /// alone.
    pub fn shown(&self, id: &NodeId) -> String {
        let name = self.name_or_key(id);
        match &self.display_name {
            Some(d) if *d == name => name,
            Some(d) => format!("{d} – {name}"),
            None => name,
        }
    }

    /// The admitted name, else `region-<first 8 hex of the key>` (what `allow` without
    /// `--name` gives).
    pub fn name_or_key(&self, id: &NodeId) -> String {
        self.label()
            .map_or_else(|| unnamed_region(id), str::to_string)
    }
}

/// The name of a region admitted without one: `region-` and the first 8 hex of its key.
pub fn unnamed_region(id: &NodeId) -> String {
    format!("region-{}", &id.to_hex()[..8])
}

/// What a pinned aggregator's admission list changed at a region ([`Store::take_admissions`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdmissionChanges {
    /// Authors whose admitted name changed, with the new one (`None`: it has none now).
    pub renamed: Vec<(NodeId, Option<String>)>,
    /// Authors admitted by this list that were not admitted before.
    pub admitted: Vec<NodeId>,
    /// Authors no longer admitted: no pinned aggregator vouches for them any more.
    pub removed: Vec<NodeId>,
}

/// Proof of a fork: two different signed entries of one author with the same seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkProof {
    pub seq: u64,
    pub first: WireEntry,
    pub second: WireEntry,
}

/// A full-text hit: (update time in ms, author, record).
pub type TextHit = (u64, NodeId, RecordId);

/// An entry arriving at the store, with its payload if it came along.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub entry: Entry,
    pub payload: Option<Vec<u8>>,
}

/// How [`Store::apply`] treats a batch.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Only entries by this author are accepted (a region pushing its own log).
    pub expected_author: Option<NodeId>,
    pub now_ms: u64,
    /// Refuse the whole batch if any entry is refused (local publish and import). Otherwise
    /// accepted entries are stored and refusals counted.
    pub all_or_nothing: bool,
}

/// A batch with its signature checks done ([`Store::verify`]), ready for
/// [`Store::apply_verified`]. Made by the store only: a verdict cannot be forged.
#[derive(Debug)]
pub struct Verified {
    batch: Vec<Incoming>,
    /// Per entry: `verify_strict`'s verdict, or `None` when it was not checked (its author
    /// was not admitted, frozen, or not the expected one).
    verdicts: Vec<Option<Result<(), spindel_protocol::keys::VerifyError>>>,
    expected_author: Option<NodeId>,
}

impl Verified {
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// The (author, seq) of each entry, in order.
    pub fn entries(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.batch
            .iter()
            .map(|i| (i.entry.header().author, i.entry.header().seq))
    }
}

/// The result of one entry of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accepted,
    Refused(Refusal),
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn k_log(a: &NodeId, seq: u64) -> Vec<u8> {
    key(b'L', &[&a.0, &seq.to_be_bytes()])
}
fn k_payload(a: &NodeId, r: &RecordId) -> Vec<u8> {
    key(b'P', &[&a.0, &r.0])
}
fn k_pack(segment: u32) -> Vec<u8> {
    key(b'Q', &[&segment.to_be_bytes()])
}
fn k_erase(at: &Location) -> Vec<u8> {
    key(b'Z', &[&at.segment.to_be_bytes(), &at.offset.to_be_bytes()])
}
/// One entry of an author's record: its versions, in log order.
fn k_version(a: &NodeId, r: &RecordId, seq: u64) -> Vec<u8> {
    key(b'E', &[&a.0, &r.0, &seq.to_be_bytes()])
}
fn k_head(a: &NodeId) -> Vec<u8> {
    key(b'H', &[&a.0])
}
fn k_record(a: &NodeId, r: &RecordId) -> Vec<u8> {
    key(b'R', &[&a.0, &r.0])
}
/// Time index key: newest first because the timestamp is inverted.
fn k_time(updated_ms: u64, a: &NodeId, r: &RecordId) -> Vec<u8> {
    key(b'T', &[&(u64::MAX - updated_ms).to_be_bytes(), &a.0, &r.0])
}

/// A place in the time index (newest first), what a query's cursor names: callers never see
/// the key's bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeKey(Vec<u8>);

/// Bytes of a time key after its prefix: inverted time, author, record.
const TIME_KEY_BYTES: usize = 8 + 32 + 16;

impl TimeKey {
    /// The place of `author`'s record last updated at `updated_ms`.
    pub fn of(updated_ms: u64, author: &NodeId, rid: &RecordId) -> TimeKey {
        TimeKey(k_time(updated_ms, author, rid))
    }

    /// The opaque cursor that names this place (hex).
    pub fn to_cursor(&self) -> String {
        hex::encode(&self.0[1..])
    }

    /// The place a cursor names; `None` when the text is not one.
    pub fn from_cursor(text: &str) -> Option<TimeKey> {
        let bytes = hex::decode(text).ok()?;
        (bytes.len() == TIME_KEY_BYTES).then(|| {
            let mut k = Vec::with_capacity(1 + TIME_KEY_BYTES);
            k.push(b'T');
            k.extend_from_slice(&bytes);
            TimeKey(k)
        })
    }
}
fn k_author(a: &NodeId) -> Vec<u8> {
    key(b'A', &[&a.0])
}
/// A pinned aggregator vouches for an author (a region's record of whose list admits it).
fn k_vouch(a: &NodeId, by: &NodeId) -> Vec<u8> {
    key(b'V', &[&a.0, &by.0])
}
fn k_received(a: &NodeId) -> Vec<u8> {
    key(b'S', &[&a.0])
}
fn k_fork(a: &NodeId) -> Vec<u8> {
    key(b'F', &[&a.0])
}
fn k_counter(reason: &str) -> Vec<u8> {
    key(b'C', &[reason.as_bytes()])
}
fn k_author_counter(a: &NodeId, reason: &str) -> Vec<u8> {
    key(b'D', &[&a.0, reason.as_bytes()])
}
/// Signed payload bytes of the author's current versions (the payload quota's count).
fn k_bytes(a: &NodeId) -> Vec<u8> {
    key(b'B', &[&a.0])
}
const K_GENERATION: &[u8] = b"Mgeneration";
const K_FORMAT: &[u8] = b"Mformat";
/// The generation the `E` index (a record's versions) was last complete at. A binary that does
/// not keep the index moves the generation without it; the next open then rebuilds the index,
/// so an older binary in between never leaves it short (no format change needed).
const K_HISTORY: &[u8] = b"Mhistory";
/// The store's layout version: 2 keeps payloads out of sled (in packs) and no tags in sled;
/// 3 keeps each author's payload bytes under `B` in every batch. A format-2 store is counted
/// once on open and marked 3, so a binary that does not keep the count (format 2) refuses it
/// afterwards instead of letting the count go stale.
pub const STORE_FORMAT: u64 = 3;
/// The oldest layout this version opens (and upgrades in place).
const STORE_FORMAT_UPGRADED: u64 = 2;

/// The key a record has in the full-text index.
pub fn search_key(a: &NodeId, r: &RecordId) -> String {
    format!("{}/{}", a.to_hex(), r.to_hex())
}

fn node_id_at(bytes: &[u8], at: usize) -> Result<NodeId, StoreError> {
    bytes
        .get(at..at + 32)
        .and_then(|b| b.try_into().ok())
        .map(NodeId)
        .ok_or_else(|| corrupt(hex::encode(bytes), "short key"))
}

fn record_id_at(bytes: &[u8], at: usize) -> Result<RecordId, StoreError> {
    bytes
        .get(at..at + 16)
        .and_then(|b| b.try_into().ok())
        .map(RecordId)
        .ok_or_else(|| corrupt(hex::encode(bytes), "short key"))
}

fn decode_meta<T: Serialize + serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::decode::<T, META_BYTES_MAX>("stored value", bytes).map_err(|e| corrupt(what, e))
}

fn u64_value(what: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| corrupt(what, "not 8 bytes"))?;
    Ok(u64::from_be_bytes(arr))
}

/// sled's page cache. sled keeps every page it wrote in memory up to this (its default is
/// 1 GiB): the memory of a node whose store outgrows it stays flat.
pub const SLED_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// How long `open` waits for sled's file lock: sled releases it when its background flusher
/// lets go, a moment after the previous handle in this process was dropped.
const LOCK_WAIT_MS: u64 = 1500;

fn open_sled(dir: &Path, sled_dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(LOCK_WAIT_MS);
    loop {
        match sled::Config::new()
            .path(sled_dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(SLED_CACHE_BYTES)
            .open()
        {
            Ok(db) => return Ok(db),
            // sled reports a held lock as "could not acquire lock on ..." (EWOULDBLOCK).
            Err(sled::Error::Io(io))
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Locked {
                        path: dir.to_path_buf(),
                        detail: io.to_string(),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(other) => {
                return Err(StoreError::Open {
                    path: sled_dir.to_path_buf(),
                    error: other.to_string(),
                });
            }
        }
    }
}

/// Marks a new store with [`STORE_FORMAT`]; refuses one written in another layout, except a
/// format-2 store, which it returns as needing its payload bytes counted (then it is marked 3).
fn check_format(db: &sled::Db, dir: &Path) -> Result<bool, StoreError> {
    let found = match db.get(K_FORMAT)? {
        Some(v) => u64_value("store format", &v)?,
        None if db.scan_prefix([b'L']).next().is_some() => 1,
        None => {
            db.insert(K_FORMAT, &STORE_FORMAT.to_be_bytes()[..])?;
            db.flush()?;
            return Ok(false);
        }
    };
    let path = dir.to_path_buf();
    match found {
        STORE_FORMAT => Ok(false),
        STORE_FORMAT_UPGRADED => Ok(true),
        f if f > STORE_FORMAT => Err(StoreError::NewerFormat { path, found }),
        _ => Err(StoreError::OldFormat { path, found }),
    }
}

/// The node's store: sled for the log and its derived keys, tantivy for full text.
pub struct Store {
    db: sled::Db,
    packs: Packs,
    index: Arc<IndexQueue>,
    committer: Option<std::thread::JoinHandle<()>>,
    write: Mutex<()>,
    /// Serialises erasure passes (after each batch, and on open).
    erasing: Mutex<()>,
    /// Tags of visible records, built from the payloads on first use (never in sled).
    tags: std::sync::RwLock<Option<TagMap>>,
    /// Each author's names from its current profile, built from the payloads on first use
    /// (never in sled).
    profile_names: std::sync::RwLock<Option<ProfileNames>>,
}

/// `name` and `display_name` of an author's current, visible profile.
type ProfileName = (Option<String>, String);
/// Every author's [`ProfileName`].
type ProfileNames = HashMap<NodeId, ProfileName>;

/// How often queued full-text changes are committed in the background.
pub const INDEX_COMMIT_INTERVAL_MS: u64 = 200;
/// Segments of the full-text index holding deleted documents are merged away at most this
/// often (the erasure promise is 60 s; docs/data-protection.md).
pub const EXPUNGE_INTERVAL_MS: u64 = 5_000;

/// The first wait before a failed commit or merge of the full-text index is tried again; it
/// doubles with each failure in a row.
pub const INDEX_RETRY_MIN_MS: u64 = 200;
/// The longest wait between tries of a failing commit or merge: once the cause is gone (the
/// process had run out of descriptors, say), a deletion's words leave the index within this
/// plus [`EXPUNGE_INTERVAL_MS`], well within the 60 s of the erasure promise.
pub const INDEX_RETRY_MAX_MS: u64 = 10_000;

/// The wait after `failures` failed tries in a row: [`INDEX_RETRY_MIN_MS`], doubled for each
/// further failure, at most [`INDEX_RETRY_MAX_MS`].
pub fn index_retry_wait(failures: u32) -> std::time::Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let ms = INDEX_RETRY_MIN_MS.saturating_mul(1 << doublings);
    std::time::Duration::from_millis(ms.min(INDEX_RETRY_MAX_MS))
}

/// When a failing piece of background work is tried next.
#[derive(Debug, Default)]
struct Retry {
    failures: u32,
    next: Option<std::time::Instant>,
}

impl Retry {
    fn due(&self, now: std::time::Instant) -> bool {
        self.next.is_none_or(|t| now >= t)
    }

    /// Notes a failure at `now`: the wait before the next try.
    fn failed(&mut self, now: std::time::Instant) -> std::time::Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = index_retry_wait(self.failures);
        self.next = Some(now + wait);
        wait
    }

    /// Notes a success: how many tries had failed before it.
    fn succeeded(&mut self) -> u32 {
        self.next = None;
        std::mem::take(&mut self.failures)
    }

    /// Logs `outcome` of the work `what`: its first failure at error, later ones at debug
    /// (`/metrics` counts them all), and the success that ends a run of failures.
    fn note<T>(&mut self, what: &str, outcome: Result<T, SearchError>) {
        let now = std::time::Instant::now();
        match outcome {
            Ok(_) => {
                let failed = self.succeeded();
                if failed > 0 {
                    tracing::info!(
                        failed_tries = failed,
                        "full-text index {what} succeeded again"
                    );
                }
            }
            Err(e) => {
                let wait = self.failed(now);
                let retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                if self.failures == 1 {
                    tracing::error!(error = %e, retry_in_ms, "full-text index {what} failed; retried with backoff");
                } else {
                    tracing::debug!(error = %e, retry_in_ms, failures = self.failures, "full-text index {what} failed again");
                }
            }
        }
    }
}

/// The full-text index and the changes waiting to be committed to it. Applying a batch only
/// queues its changes (a tantivy commit costs several fsyncs and is kept off the ack path); a
/// background thread commits them every [`INDEX_COMMIT_INTERVAL_MS`], a text search commits
/// what is pending first (so searches see every applied entry), and dropping the store commits
/// the rest. The index is derived: pending changes lost in a crash leave its generation behind
/// the store's, and the next open rebuilds it. A failed commit or merge is tried again with
/// backoff ([`index_retry_wait`]) and counted for `/metrics`.
struct IndexQueue {
    search: SearchIndex,
    pending: Mutex<(Vec<DocChange>, u64)>,
    /// How many changes wait in `pending` (read by `/metrics` without waiting for a commit).
    pending_count: std::sync::atomic::AtomicU64,
    commit_failures: std::sync::atomic::AtomicU64,
    stop: std::sync::atomic::AtomicBool,
}

impl IndexQueue {
    fn enqueue(&self, changes: Vec<DocChange>, generation: u64) {
        let mut p = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        p.0.extend(changes);
        p.1 = generation;
        self.pending_count
            .store(p.0.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Commits pending changes, if any.
    fn flush(&self) -> Result<(), SearchError> {
        use std::sync::atomic::Ordering;
        let mut p = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if p.0.is_empty() {
            return Ok(());
        }
        let changes = std::mem::take(&mut p.0);
        // Hold the lock while committing so commits stay in order. The changes of a failed
        // commit stay queued (a delete must never be lost while later commits stamp the index
        // as up to date). Applying them again is harmless: each change deletes every earlier
        // document of its record before it adds one.
        match self.search.apply(&changes, p.1) {
            Ok(()) => {
                self.pending_count
                    .store(p.0.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let mut requeued = changes;
                requeued.append(&mut p.0);
                p.0 = requeued;
                self.commit_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn health(&self) -> crate::search::IndexHealth {
        use std::sync::atomic::Ordering;
        crate::search::IndexHealth {
            changes_pending: self.pending_count.load(Ordering::Relaxed),
            commit_failures: self.commit_failures.load(Ordering::Relaxed),
            ..self.search.health()
        }
    }

    fn run(queue: Arc<IndexQueue>) {
        use std::sync::atomic::Ordering;
        let (mut commit, mut merge) = (Retry::default(), Retry::default());
        while !queue.stop.load(Ordering::Acquire) {
            std::thread::park_timeout(std::time::Duration::from_millis(INDEX_COMMIT_INTERVAL_MS));
            let now = std::time::Instant::now();
            if commit.due(now) {
                commit.note("commit", queue.flush());
            }
            // Deleted and replaced documents stay in their segments (terms included) until a
            // merge rewrites them: merge those segments away, at most every
            // EXPUNGE_INTERVAL_MS, well within the erasure promise.
            if merge.due(now) {
                merge.note(
                    "merge of deleted documents",
                    queue.search.expunge_deletes(EXPUNGE_INTERVAL_MS),
                );
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.index
            .stop
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.committer.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if let Err(e) = self.index.flush() {
            tracing::error!(error = %e, "full-text index commit failed; it is rebuilt on next start");
        }
        // A short-lived command (`spindel delete` without a running node) leaves no deleted
        // document in the index either.
        if let Err(e) = self.index.search.expunge_deletes(0) {
            tracing::error!(error = %e, "merging deleted documents out of the full-text index failed; done on next open");
        }
        let _ = self.db.flush();
    }
}

/// Fault injection for crash tests only: when set, the process aborts right after a batch that
/// purged payloads is durable and before they are erased (as a `kill -9` there would). The
/// CLI sets it from `SPINDEL_FAULT_INJECT=abort-before-erase`.
pub static ABORT_BEFORE_ERASE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` (`dir/store` for sled, `dir/index` for tantivy),
    /// rebuilding the full-text index from the log if it is missing or stale.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let sled_dir = dir.join("store");
        let db = open_sled(dir, &sled_dir)?;
        let upgrade = check_format(&db, dir)?;
        let mut committed = BTreeMap::new();
        for item in db.scan_prefix([b'Q']) {
            let (k, v) = item?;
            let segment: [u8; 4] = k[1..]
                .try_into()
                .map_err(|_| corrupt("pack key", "not 4 bytes"))?;
            committed.insert(u32::from_be_bytes(segment), u64_value("pack length", &v)?);
        }
        let packs_dir = dir.join(PAYLOADS_DIR);
        let packs = Packs::open(&packs_dir, &committed).map_err(|source| StoreError::Payloads {
            path: packs_dir.clone(),
            source,
        })?;
        let index_dir = dir.join("index");
        let (search, indexed) = match SearchIndex::open(&index_dir) {
            Ok(opened) => opened,
            Err(e) => {
                tracing::warn!(error = %e, "full-text index unreadable; recreating it");
                std::fs::remove_dir_all(&index_dir).map_err(|io| corrupt("index", io))?;
                SearchIndex::open(&index_dir)?
            }
        };
        let index = Arc::new(IndexQueue {
            search,
            pending: Mutex::new((Vec::new(), 0)),
            pending_count: std::sync::atomic::AtomicU64::new(0),
            commit_failures: std::sync::atomic::AtomicU64::new(0),
            stop: std::sync::atomic::AtomicBool::new(false),
        });
        let committer = {
            let index = index.clone();
            std::thread::Builder::new()
                .name("spindel-index".into())
                .spawn(move || IndexQueue::run(index))
                .map_err(|e| corrupt("index committer thread", e))?
        };
        let store = Store {
            db,
            packs,
            index,
            committer: Some(committer),
            write: Mutex::new(()),
            erasing: Mutex::new(()),
            tags: std::sync::RwLock::new(None),
            profile_names: std::sync::RwLock::new(None),
        };
        // Finish every erasure a crash interrupted before anything reads the store.
        store.erase_pending()?;
        if upgrade {
            store.count_payload_bytes()?;
        }
        let generation = store.generation()?;
        if store.history_generation()? != Some(generation) {
            store.rebuild_history()?;
        }
        if indexed != Some(generation) {
            tracing::info!(
                ?indexed,
                generation,
                "full-text index is stale; rebuilding from the log"
            );
            store.rebuild_index()?;
        }
        // Segments still holding deleted documents (a crash before their merge) go now.
        store.index.search.expunge_deletes(0)?;
        Ok(store)
    }

    fn packs_error(&self, source: std::io::Error) -> StoreError {
        StoreError::Payloads {
            path: PathBuf::from(PAYLOADS_DIR),
            source,
        }
    }

    /// Erases every purged range still listed under `Z` (zeros, durable, blocks released),
    /// then forgets it. Idempotent: a range erased twice stays zeros. Runs on open, and
    /// periodically as a retry; sled is flushed under the write lock first, so every range it
    /// finds belongs to a batch that is durable (erasing the range of a batch a crash could
    /// still undo would lose the payload that batch replaced).
    pub fn erase_pending(&self) -> Result<usize, StoreError> {
        let ranges = {
            let _write = self
                .write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.db.flush()?;
            let mut ranges = Vec::new();
            for item in self.db.scan_prefix([b'Z']) {
                let (k, v) = item?;
                let (segment, offset) = match (k.get(1..5), k.get(5..13)) {
                    (Some(s), Some(o)) => (
                        u32::from_be_bytes(s.try_into().unwrap_or_default()),
                        u64::from_be_bytes(o.try_into().unwrap_or_default()),
                    ),
                    _ => return Err(corrupt("erase key", "short key")),
                };
                let len: [u8; 4] = v[..]
                    .try_into()
                    .map_err(|_| corrupt("erase length", "not 4 bytes"))?;
                ranges.push(Location {
                    segment,
                    offset,
                    len: u32::from_be_bytes(len),
                });
            }
            ranges
        };
        self.erase(&ranges)
    }

    /// Purged ranges are waiting to be erased (a failed erasure, to retry).
    pub fn erasures_pending(&self) -> bool {
        self.db.scan_prefix([b'Z']).next().is_some()
    }

    /// Erases `ranges` (of batches known to be durable) and drops their `Z` keys. A range that
    /// fails is kept for the next try; the others go on.
    fn erase(&self, ranges: &[Location]) -> Result<usize, StoreError> {
        if ranges.is_empty() {
            return Ok(0);
        }
        let _guard = self
            .erasing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut batch = sled::Batch::default();
        let mut done = 0;
        let mut first_error = None;
        for at in ranges {
            match self.packs.erase(*at) {
                Ok(()) => {
                    batch.remove(k_erase(at));
                    done += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, segment = at.segment, offset = at.offset, "erasing a purged payload failed; retried");
                    first_error.get_or_insert(e);
                }
            }
        }
        self.db.apply_batch(batch)?;
        tracing::debug!(ranges = done, "erased purged payloads");
        match first_error {
            Some(e) => Err(self.packs_error(e)),
            None => Ok(done),
        }
    }

    /// Count of entries ever applied; the full-text index records the generation it reflects.
    pub fn generation(&self) -> Result<u64, StoreError> {
        match self.db.get(K_GENERATION)? {
            Some(v) => u64_value("generation", &v),
            None => Ok(0),
        }
    }

    /// The generation the versions index (`E`) is complete at, if it was ever built.
    fn history_generation(&self) -> Result<Option<u64>, StoreError> {
        self.db
            .get(K_HISTORY)?
            .map(|v| u64_value("history generation", &v))
            .transpose()
    }

    /// Builds the versions index (`E`) from the log: a store written before it was kept, or by
    /// a binary that does not keep it. One pass over the headers.
    fn rebuild_history(&self) -> Result<(), StoreError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = std::time::Instant::now();
        // Every key is written again: an entry's `E` key is written with its `L` key and no
        // `L` key is ever removed, so no stale `E` key can be left to clear.
        let mut batch = sled::Batch::default();
        let mut entries = 0u64;
        // The log is in seq order per author, so counting as it goes numbers each version;
        // the counts are one author's at a time.
        let mut author = None;
        let mut counts: HashMap<RecordId, u64> = HashMap::new();
        for item in self.db.scan_prefix([b'L']) {
            let (k, v) = item?;
            let entry = Entry::decode(&v).map_err(|e| corrupt(hex::encode(&k), e))?;
            let h = entry.header();
            if author != Some(h.author) {
                author = Some(h.author);
                counts.clear();
            }
            let n = counts.entry(h.record_id).or_default();
            *n += 1;
            batch.insert(
                k_version(&h.author, &h.record_id, h.seq),
                &n.to_be_bytes()[..],
            );
            entries += 1;
            if entries.is_multiple_of(HISTORY_REBUILD_CHUNK) {
                self.db.apply_batch(std::mem::take(&mut batch))?;
                tracing::info!(entries, "indexing the versions of every record");
            }
        }
        batch.insert(K_HISTORY, &self.generation()?.to_be_bytes()[..]);
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        tracing::info!(
            entries,
            ms = started.elapsed().as_millis() as u64,
            "indexed the versions of every record"
        );
        Ok(())
    }

    /// The number of `author`'s record's version at `seq`: 1 for its first entry, counting
    /// every entry of that record up to and including `seq` (a removal is a version too); 0
    /// when the record has no entry at `seq`.
    pub fn version_number(
        &self,
        author: &NodeId,
        rid: &RecordId,
        seq: u64,
    ) -> Result<u64, StoreError> {
        match self.db.get(k_version(author, rid, seq))? {
            Some(v) => u64_value("version number", &v),
            None => Ok(0),
        }
    }

    /// The number of the latest version of `author`'s record (0: none yet).
    fn last_version(&self, author: &NodeId, rid: &RecordId) -> Result<u64, StoreError> {
        match self
            .db
            .range(k_version(author, rid, 0)..=k_version(author, rid, u64::MAX))
            .next_back()
        {
            Some(item) => u64_value("version number", &item?.1),
            None => Ok(0),
        }
    }

    /// Every version of `author`'s record, oldest first: number, seq, the author's time and
    /// whether it published or removed. Headers only: erased contents stay erased.
    pub fn versions(&self, author: &NodeId, rid: &RecordId) -> Result<Vec<Version>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(key(b'E', &[&author.0, &rid.0])) {
            let (k, number) = item?;
            let number = u64_value("version number", &number)?;
            let seq = k
                .get(49..57)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| corrupt(hex::encode(&k), "short key"))?;
            let Some(entry) = self.entry(author, seq)? else {
                return Err(corrupt(
                    format!("versions of {} seq {seq}", author.short()),
                    "no log entry",
                ));
            };
            let h = entry.header();
            out.push(Version {
                number,
                seq,
                timestamp_ms: h.timestamp_ms,
                removed: h.op == Op::Tombstone,
            });
        }
        Ok(out)
    }

    /// Rebuilds the full-text index from the stored records.
    pub fn rebuild_index(&self) -> Result<(), StoreError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = self.generation()?;
        self.index.flush()?;
        self.index.search.clear()?;
        let mut chunk = Vec::new();
        let mut total = 0usize;
        for item in self.db.scan_prefix([b'R']) {
            let (k, v) = item?;
            let author = node_id_at(&k, 1)?;
            let rid = record_id_at(&k, 33)?;
            let meta: RecordMeta = decode_meta("record", &v)?;
            let Some(record) = self.load_record(&author, &rid, &meta)? else {
                continue;
            };
            chunk.push(DocChange {
                key: search_key(&author, &rid),
                updated_ms: meta.updated_ms,
                text: Some(record.search_text()),
            });
            if chunk.len() >= REBUILD_CHUNK_RECORDS {
                total += chunk.len();
                self.index
                    .search
                    .apply(&std::mem::take(&mut chunk), generation)?;
                tracing::info!(records = total, "rebuilding full-text index");
            }
        }
        self.index.search.apply(&chunk, generation)?;
        Ok(())
    }

    /// Applies a batch of entries (see [`ApplyOptions`]); returns one outcome per entry, in
    /// order. Everything accepted is durable on disk when this returns.
    pub fn apply(
        &self,
        batch: Vec<Incoming>,
        opts: ApplyOptions,
    ) -> Result<Vec<Outcome>, StoreError> {
        let verified = self.verify(batch, opts.expected_author)?;
        self.apply_verified(verified, opts)
    }

    /// The signature checks of a batch, on any thread (a session's, so batches of many
    /// sessions verify on all cores while one writer applies them): `verify_strict` of every
    /// entry whose author is admitted here, not frozen, and `expected_author` when given.
    /// Cheap checks first: an entry another author could not have sent costs no verification.
    pub fn verify(
        &self,
        batch: Vec<Incoming>,
        expected_author: Option<NodeId>,
    ) -> Result<Verified, StoreError> {
        let mut admitted: HashMap<NodeId, bool> = HashMap::new();
        let mut verdicts = Vec::with_capacity(batch.len());
        for i in &batch {
            let a = i.entry.header().author;
            let ok = match admitted.get(&a) {
                Some(ok) => *ok,
                None => {
                    let ok = self
                        .author_stored(&a)?
                        .is_some_and(|m| m.admitted && !m.frozen);
                    admitted.insert(a, ok);
                    ok
                }
            };
            let expected = expected_author.is_none_or(|e| e == a);
            verdicts.push((ok && expected).then(|| i.entry.verify()));
        }
        Ok(Verified {
            batch,
            verdicts,
            expected_author,
        })
    }

    /// Applies a batch [`Store::verify`] checked (see [`Store::apply`]). An entry whose author
    /// was not admitted at verification but is now is verified here, under the lock.
    pub fn apply_verified(
        &self,
        verified: Verified,
        opts: ApplyOptions,
    ) -> Result<Vec<Outcome>, StoreError> {
        let Verified {
            batch,
            mut verdicts,
            expected_author,
        } = verified;
        if expected_author != opts.expected_author {
            // Verified for another author: what was skipped as not expected is decided again.
            verdicts.iter_mut().for_each(|v| *v = None);
        }
        let guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ov = Overlay::new(self);
        let mut outcomes = Vec::with_capacity(batch.len());
        for ((index, incoming), verdict) in batch.into_iter().enumerate().zip(verdicts) {
            let header = incoming.entry.header().clone();
            ov.preload(&header.author, &header.record_id, header.seq)?;
            let view = View {
                ov: &ov,
                author: header.author,
            };
            // Not verified above: refused on its author before the signature is read, unless
            // it was admitted meanwhile (then it is verified now, under the lock).
            let verdict = match verdict {
                Some(v) => v,
                None if view.admitted()
                    && !view.frozen()
                    && opts.expected_author.is_none_or(|e| e == header.author) =>
                {
                    incoming.entry.verify()
                }
                None => Err(spindel_protocol::keys::VerifyError::BadSignature),
            };
            match ingest::check_verified(
                &view,
                opts.expected_author,
                opts.now_ms,
                &incoming.entry,
                incoming.payload.as_deref(),
                verdict,
            ) {
                Ok(accepted) => {
                    ov.batch
                        .insert(k_received(&header.author), &opts.now_ms.to_be_bytes()[..]);
                    ov.accept(incoming, accepted)?;
                    outcomes.push(Outcome::Accepted);
                }
                Err(refusal) => {
                    if opts.all_or_nothing {
                        return Err(StoreError::Refused { index, refusal });
                    }
                    tracing::debug!(author = %header.author.short(), seq = header.seq, %refusal, "refused entry");
                    if let Refusal::Fork { seq, .. } = &refusal {
                        ov.record_fork(&incoming.entry, *seq)?;
                    }
                    // Every refusal is counted, replays too (a region with several aggregators
                    // may see the same entry twice: harmless, and visible in `status`).
                    ov.count(header.author, refusal.reason());
                    outcomes.push(Outcome::Refused(refusal));
                }
            }
        }
        let wrote_entries = ov.accepted > 0 || ov.forked;
        let committed = ov.commit()?;
        // Durable before returning, but flushed outside the write lock: sled's flush covers
        // everything applied so far, so concurrent batches share one fsync. A batch that only
        // counted refusals needs no fsync (nothing is acknowledged on it; the counters reach
        // disk with the next flush).
        drop(guard);
        if wrote_entries {
            self.db.flush()?;
        }
        if !committed.purged.is_empty() {
            if ABORT_BEFORE_ERASE.load(std::sync::atomic::Ordering::Relaxed) {
                std::process::abort();
            }
            // This batch is durable: erase what it purged (only its own ranges; another
            // batch's may not be durable yet).
            self.erase(&committed.purged)?;
        }
        Ok(outcomes)
    }

    /// Marks `author` as admitted (aggregator: `spindel allow`; every node: itself).
    pub fn admit(&self, author: &NodeId, name: Option<String>) -> Result<AuthorMeta, StoreError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut meta = self.author_stored(author)?.unwrap_or_default();
        meta.admitted = true;
        if name.is_some() {
            meta.admitted_name = name;
        }
        self.db.insert(k_author(author), codec::encode(&meta))?;
        self.db.flush()?;
        Ok(meta)
    }

    /// [`Store::admit`] under a name no other key holds here (checked under the write lock, so
    /// two admissions at once cannot both take it). `me` is this node, `reserved` its own name.
    /// At most [`HEADS_AUTHORS_MAX`] regions are admitted: the most one admission list carries.
    pub fn admit_unique(
        &self,
        author: &NodeId,
        name: &str,
        me: &NodeId,
        reserved: &str,
    ) -> Result<AuthorMeta, StoreError> {
        {
            let _guard = self
                .write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if name == reserved {
                return Err(StoreError::NameTaken {
                    name: name.to_string(),
                    holder: "this aggregator".to_string(),
                });
            }
            let mut others_admitted = 0usize;
            for item in self.db.scan_prefix([b'A']) {
                let (k, v) = item?;
                let id = node_id_at(&k, 1)?;
                let meta: AuthorMeta = decode_meta("author", &v)?;
                if id != *author && meta.admitted_name.as_deref() == Some(name) {
                    return Err(StoreError::NameTaken {
                        name: name.to_string(),
                        holder: id.to_hex(),
                    });
                }
                others_admitted += usize::from(id != *author && id != *me && meta.admitted);
            }
            // Every region's session carries the whole list (a truncated one would read as
            // removals at the regions).
            if others_admitted >= HEADS_AUTHORS_MAX {
                return Err(StoreError::TooManyAdmitted {
                    max: HEADS_AUTHORS_MAX,
                });
            }
        }
        self.admit(author, Some(name.to_string()))
    }

    /// A region takes the admission list of `from`, an aggregator it pinned: the list is the
    /// truth for the authors `from` vouches for, removals included. Every listed author is
    /// accepted here, under the name the aggregator admitted it with (this node's own entry
    /// too), and `from` is recorded as vouching for it (`V` keys). An author `from` vouched
    /// for that the list leaves out loses that vouch, and is no longer admitted (its name
    /// goes too) unless another pinned aggregator still vouches for it. An admitted author with
    /// no recorded voucher (a store or a backup from before vouchers were kept) is treated the
    /// same: the first list without it ends its admission. This node is never un-admitted.
    ///
    /// A name is held by one key: another author holding it here loses it. A listed author
    /// without a name has none here; an invalid name counts as a refusal and is not taken.
    ///
    /// Linear in the list and the authors known here: one pass builds the list's set, one the
    /// name-to-holder map, one the vouchers; only reading the authors and writing the changes
    /// happen under the write lock (the flush after it).
    pub fn take_admissions(
        &self,
        list: &[(NodeId, Option<String>)],
        from: &NodeId,
        me: &NodeId,
    ) -> Result<AdmissionChanges, StoreError> {
        // Checked before the lock: which keys are listed, under which (valid) names. A key
        // new here must be a usable public key (a point decompression, so only for new ones;
        // authors are never deleted, so a key known now is known under the lock).
        let mut bad = 0u64;
        let mut listed: HashSet<NodeId> = HashSet::with_capacity(list.len());
        let mut valid: Vec<(NodeId, Option<&str>)> = Vec::with_capacity(list.len());
        for (id, name) in list {
            if !self.db.contains_key(k_author(id))? && !id.is_usable() {
                continue;
            }
            let name = name.as_deref().filter(|n| {
                let ok = spindel_protocol::record::validate_region_name(n).is_ok();
                bad += u64::from(!ok);
                ok
            });
            listed.insert(*id);
            valid.push((*id, name));
        }
        let guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut authors: HashMap<NodeId, AuthorMeta> = HashMap::new();
        // Every key holding a name (more than one only in a store written before names were
        // kept unique).
        let mut holders: HashMap<String, Vec<NodeId>> = HashMap::new();
        for item in self.db.scan_prefix([b'A']) {
            let (k, v) = item?;
            let id = node_id_at(&k, 1)?;
            let meta: AuthorMeta = decode_meta("author", &v)?;
            if let Some(n) = &meta.admitted_name {
                holders.entry(n.clone()).or_default().push(id);
            }
            authors.insert(id, meta);
        }
        let mut vouchers = self.vouchers_all()?;
        let mut changes = AdmissionChanges::default();
        let mut touched = BTreeSet::new();
        let mut batch = sled::Batch::default();
        let mut vouches_changed = false;
        for (id, name) in valid {
            let meta = authors.entry(id).or_default();
            if id != *me {
                if !meta.admitted {
                    meta.admitted = true;
                    touched.insert(id);
                    changes.admitted.push(id);
                }
                let by = vouchers.entry(id).or_default();
                if !by.contains(from) {
                    by.push(*from);
                    batch.insert(k_vouch(&id, from), &b""[..]);
                    vouches_changed = true;
                }
            }
            // The aggregator's list is the truth: a listed author without a name has none
            // (a name kept from elsewhere, such as a profile's claim an older aggregator
            // relayed, must not survive).
            if meta.admitted_name.as_deref() == name {
                continue;
            }
            let old = std::mem::replace(&mut meta.admitted_name, name.map(str::to_string));
            touched.insert(id);
            changes.renamed.push((id, meta.admitted_name.clone()));
            if let Some(old) = old
                && let Some(h) = holders.get_mut(&old)
            {
                h.retain(|x| *x != id);
            }
            let Some(name) = name else { continue };
            let before = holders
                .insert(name.to_string(), vec![id])
                .unwrap_or_default();
            for other in before.into_iter().filter(|o| *o != id) {
                if let Some(m) = authors.get_mut(&other)
                    && m.admitted_name.as_deref() == Some(name)
                {
                    m.admitted_name = None;
                    touched.insert(other);
                    changes.renamed.push((other, None));
                }
            }
        }
        // Removals: `from` no longer vouches for what it does not list.
        for (id, meta) in authors.iter_mut() {
            if *id == *me || listed.contains(id) {
                continue;
            }
            let remaining = match vouchers.get_mut(id) {
                Some(by) => {
                    if by.contains(from) {
                        by.retain(|b| b != from);
                        batch.remove(k_vouch(id, from));
                        vouches_changed = true;
                    }
                    by.len()
                }
                None => 0,
            };
            if meta.admitted && remaining == 0 {
                meta.admitted = false;
                if meta.admitted_name.take().is_some() {
                    changes.renamed.push((*id, None));
                }
                touched.insert(*id);
                changes.removed.push(*id);
            }
        }
        if bad > 0 {
            let before = self.counter("bad_admitted_name")?;
            batch.insert(
                k_counter("bad_admitted_name"),
                &(before + bad).to_be_bytes()[..],
            );
        }
        for id in &touched {
            if let Some(meta) = authors.get(id) {
                batch.insert(k_author(id), codec::encode(meta));
            }
        }
        let wrote = !touched.is_empty() || vouches_changed;
        if wrote || bad > 0 {
            self.db.apply_batch(batch)?;
        }
        drop(guard);
        if wrote {
            self.db.flush()?;
        }
        Ok(changes)
    }

    /// A region accepts the authors its pinned aggregator `by` vouches for (admitted there:
    /// it relays only those), and records `by` as one that vouches for `author` (see
    /// [`Store::take_admissions`]). Keeps the name known; never unfreezes.
    pub fn vouch(&self, author: &NodeId, by: &NodeId) -> Result<(), StoreError> {
        let wrote = {
            let _guard = self
                .write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut batch = sled::Batch::default();
            let mut wrote = false;
            let mut meta = self.author_stored(author)?.unwrap_or_default();
            if !meta.admitted {
                meta.admitted = true;
                batch.insert(k_author(author), codec::encode(&meta));
                wrote = true;
            }
            if !self.db.contains_key(k_vouch(author, by))? {
                batch.insert(k_vouch(author, by), &b""[..]);
                wrote = true;
            }
            if wrote {
                self.db.apply_batch(batch)?;
            }
            wrote
        };
        if wrote {
            self.db.flush()?;
        }
        Ok(())
    }

    /// Aggregator (`spindel disallow`): ends the admission of `author`. Its name is freed and
    /// no aggregator vouches for it any more; its stored entries stay (signed history), new
    /// ones are refused as not admitted. `None` when it was not admitted.
    pub fn disallow(&self, author: &NodeId) -> Result<Option<AuthorMeta>, StoreError> {
        let before = {
            let _guard = self
                .write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(before) = self.author_stored(author)?.filter(|m| m.admitted) else {
                return Ok(None);
            };
            let mut meta = before.clone();
            meta.admitted = false;
            meta.admitted_name = None;
            let mut batch = sled::Batch::default();
            batch.insert(k_author(author), codec::encode(&meta));
            for item in self.db.scan_prefix(key(b'V', &[&author.0])) {
                let (k, _) = item?;
                batch.remove(k);
            }
            self.db.apply_batch(batch)?;
            before
        };
        self.db.flush()?;
        Ok(Some(before))
    }

    /// The pinned aggregators that vouch for `author` here (none: not vouched for, or admitted
    /// before vouchers were kept).
    pub fn vouchers(&self, author: &NodeId) -> Result<Vec<NodeId>, StoreError> {
        self.db
            .scan_prefix(key(b'V', &[&author.0]))
            .map(|item| node_id_at(&item?.0, 33))
            .collect()
    }

    /// Every author's vouchers ([`Store::vouchers`]), in one scan.
    pub fn vouchers_all(&self) -> Result<HashMap<NodeId, Vec<NodeId>>, StoreError> {
        let mut out: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
        for item in self.db.scan_prefix([b'V']) {
            let (k, _) = item?;
            out.entry(node_id_at(&k, 1)?)
                .or_default()
                .push(node_id_at(&k, 33)?);
        }
        Ok(out)
    }

    /// Every admitted author (read as stored: no profile names needed).
    pub fn admitted_authors(&self) -> Result<HashSet<NodeId>, StoreError> {
        let mut out = HashSet::new();
        for item in self.db.scan_prefix([b'A']) {
            let (k, v) = item?;
            let meta: AuthorMeta = decode_meta("author", &v)?;
            if meta.admitted {
                out.insert(node_id_at(&k, 1)?);
            }
        }
        Ok(out)
    }

    /// Adds `n` to the refusal counter `reason` (refusals found before the store saw an entry,
    /// such as malformed bytes).
    pub fn count_refusal(&self, reason: &str, n: u64) -> Result<(), StoreError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = self.counter(reason)?;
        self.db
            .insert(k_counter(reason), &(before + n).to_be_bytes()[..])?;
        Ok(())
    }

    /// The refusal counter `reason` as stored.
    fn counter(&self, reason: &str) -> Result<u64, StoreError> {
        match self.db.get(k_counter(reason))? {
            Some(v) => u64_value("counter", &v),
            None => Ok(0),
        }
    }

    pub fn author(&self, author: &NodeId) -> Result<Option<AuthorMeta>, StoreError> {
        let Some(mut meta) = self.author_stored(author)? else {
            return Ok(None);
        };
        self.with_profile_names(|names| fill_names(&mut meta, names.get(author)))?;
        Ok(Some(meta))
    }

    /// Whether entries of `author` are accepted here (read as stored: no profile names needed).
    pub fn is_admitted(&self, author: &NodeId) -> Result<bool, StoreError> {
        Ok(self.author_stored(author)?.is_some_and(|m| m.admitted))
    }

    /// The author's metadata as stored (without the names of its profile).
    fn author_stored(&self, author: &NodeId) -> Result<Option<AuthorMeta>, StoreError> {
        self.db
            .get(k_author(author))?
            .map(|v| decode_meta("author", &v))
            .transpose()
    }

    /// Every author the store knows of, with its metadata.
    pub fn authors(&self) -> Result<Vec<(NodeId, AuthorMeta)>, StoreError> {
        let mut out: Vec<(NodeId, AuthorMeta)> = self
            .db
            .scan_prefix([b'A'])
            .map(|item| {
                let (k, v) = item?;
                Ok((node_id_at(&k, 1)?, decode_meta("author", &v)?))
            })
            .collect::<Result<_, StoreError>>()?;
        self.with_profile_names(|names| {
            for (id, meta) in &mut out {
                fill_names(meta, names.get(id));
            }
        })?;
        Ok(out)
    }

    /// Runs `f` over every author's profile names, building them from the profile payloads
    /// the first time.
    fn with_profile_names<R>(&self, f: impl FnOnce(&ProfileNames) -> R) -> Result<R, StoreError> {
        self.with_lazy(&self.profile_names, f, || {
            let mut map = ProfileNames::new();
            for item in self.db.scan_prefix([b'A']) {
                let (k, v) = item?;
                let id = node_id_at(&k, 1)?;
                let meta: AuthorMeta = decode_meta("author", &v)?;
                let Some(rid) = meta.profile else { continue };
                let Some(rmeta) = self.record_meta(&id, &rid)? else {
                    continue;
                };
                if let Some(Record::Profile(p)) = self.load_record(&id, &rid, &rmeta)? {
                    map.insert(id, (p.name, p.display_name));
                }
            }
            Ok(map)
        })
    }

    /// When this node last accepted an entry of `author` (ms since the epoch, its own clock).
    pub fn last_received_ms(&self, author: &NodeId) -> Result<Option<u64>, StoreError> {
        match self.db.get(k_received(author))? {
            Some(v) => {
                let bytes: [u8; 8] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| corrupt("last-received time", "not 8 bytes"))?;
                Ok(Some(u64::from_be_bytes(bytes)))
            }
            None => Ok(None),
        }
    }

    pub fn head(&self, author: &NodeId) -> Result<Option<Head>, StoreError> {
        self.db
            .get(k_head(author))?
            .map(|v| decode_meta("head", &v))
            .transpose()
    }

    /// The head of every author with at least one entry.
    pub fn heads(&self) -> Result<BTreeMap<NodeId, Head>, StoreError> {
        self.db
            .scan_prefix([b'H'])
            .map(|item| {
                let (k, v) = item?;
                Ok((node_id_at(&k, 1)?, decode_meta("head", &v)?))
            })
            .collect()
    }

    /// The stored entry of `author` at `seq`.
    pub fn entry(&self, author: &NodeId, seq: u64) -> Result<Option<Entry>, StoreError> {
        match self.db.get(k_log(author, seq))? {
            Some(v) => Entry::decode(&v)
                .map(Some)
                .map_err(|e| corrupt(format!("log {} seq {seq}", author.short()), e)),
            None => Ok(None),
        }
    }

    /// Up to `max` entries of `author` from `from_seq` on, each with its payload if still held.
    pub fn entries_from(
        &self,
        author: &NodeId,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<Incoming>, StoreError> {
        let start = k_log(author, from_seq.max(1));
        let end = k_log(author, u64::MAX);
        let mut out = Vec::new();
        for item in self.db.range(start..=end).take(max) {
            let (k, v) = item?;
            let entry = Entry::decode(&v).map_err(|e| corrupt(hex::encode(&k), e))?;
            let h = entry.header();
            // Only the current version travels with its payload: older ones are purged.
            let payload = match h.op {
                Op::Put => self.payload_at(&h.author, &h.record_id, h.seq)?,
                Op::Tombstone => None,
            };
            out.push(Incoming { entry, payload });
        }
        Ok(out)
    }

    /// Where the payload of `author`'s record is kept, if this node holds it.
    pub fn payload_ref(
        &self,
        author: &NodeId,
        rid: &RecordId,
    ) -> Result<Option<PayloadRef>, StoreError> {
        self.db
            .get(k_payload(author, rid))?
            .map(|v| decode_meta("payload ref", &v))
            .transpose()
    }

    /// The payload bytes of `author`'s record at version `seq`, if held (only the current
    /// version's payload is kept). Bytes that do not match their hash (erased while read) are
    /// treated as gone.
    pub fn payload_at(
        &self,
        author: &NodeId,
        rid: &RecordId,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(r) = self.payload_ref(author, rid)? else {
            return Ok(None);
        };
        if r.seq != seq {
            return Ok(None);
        }
        let bytes = self.packs.read(r.at).map_err(|e| self.packs_error(e))?;
        Ok(bytes.filter(|b| Hash::of(b) == r.hash))
    }

    pub fn record_meta(
        &self,
        author: &NodeId,
        rid: &RecordId,
    ) -> Result<Option<RecordMeta>, StoreError> {
        self.db
            .get(k_record(author, rid))?
            .map(|v| decode_meta("record", &v))
            .transpose()
    }

    /// The signed payload length of `author`'s record `rid` now (0 when it is deleted or
    /// unknown): what a new version of it frees of the author's payload bytes.
    pub fn current_payload_len(&self, author: &NodeId, rid: &RecordId) -> Result<u64, StoreError> {
        let Some(meta) = self.record_meta(author, rid)? else {
            return Ok(0);
        };
        let held = self.payload_ref(author, rid)?;
        Ok(u64::from(self.current_len(author, &meta, held.as_ref())?))
    }

    /// The signed payload length of a record's current version (`meta`): from where its payload
    /// is kept, or from its header when it arrived without one.
    fn current_len(
        &self,
        author: &NodeId,
        meta: &RecordMeta,
        held: Option<&PayloadRef>,
    ) -> Result<u32, StoreError> {
        if meta.deleted {
            return Ok(0);
        }
        if let Some(r) = held.filter(|r| r.seq == meta.seq) {
            return Ok(r.at.len);
        }
        Ok(self
            .entry(author, meta.seq)?
            .map_or(0, |e| e.header().payload_len))
    }

    /// Signed payload bytes of `author`'s current versions (see
    /// [`spindel_protocol::ingest::AUTHOR_PAYLOAD_BYTES_MAX`]).
    pub fn payload_bytes_of(&self, author: &NodeId) -> Result<u64, StoreError> {
        match self.db.get(k_bytes(author))? {
            Some(v) => u64_value("payload bytes", &v),
            None => Ok(0),
        }
    }

    /// Every author's payload bytes, counted from the records (what each batch keeps up to
    /// date under `B`).
    pub fn recount_payload_bytes(&self) -> Result<BTreeMap<NodeId, u64>, StoreError> {
        let mut totals: BTreeMap<NodeId, u64> = BTreeMap::new();
        for item in self.db.scan_prefix([b'R']) {
            let (k, v) = item?;
            let author = node_id_at(&k, 1)?;
            let rid = record_id_at(&k, 33)?;
            let meta: RecordMeta = decode_meta("record", &v)?;
            let held = self.payload_ref(&author, &rid)?;
            let len = self.current_len(&author, &meta, held.as_ref())?;
            *totals.entry(author).or_default() += u64::from(len);
        }
        Ok(totals)
    }

    /// Counts every author's payload bytes once, for a format-2 store (written before the
    /// count was kept; afterwards each batch keeps it), and marks the store format 3 in the
    /// same write.
    fn count_payload_bytes(&self) -> Result<(), StoreError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let totals = self.recount_payload_bytes()?;
        let mut batch = sled::Batch::default();
        for (author, total) in &totals {
            batch.insert(k_bytes(author), &total.to_be_bytes()[..]);
        }
        batch.insert(K_FORMAT, &STORE_FORMAT.to_be_bytes()[..]);
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        if !totals.is_empty() {
            tracing::info!(
                authors = totals.len(),
                "counted each author's payload bytes"
            );
        }
        Ok(())
    }

    /// The current content of a visible record.
    pub fn load_record(
        &self,
        author: &NodeId,
        rid: &RecordId,
        meta: &RecordMeta,
    ) -> Result<Option<Record>, StoreError> {
        let Some(hash) = meta.payload.filter(|_| !meta.deleted) else {
            return Ok(None);
        };
        let Some(bytes) = self.payload_at(author, rid, meta.seq)? else {
            return Ok(None);
        };
        let payload = Payload::decode(&bytes).map_err(|e| corrupt(format!("payload {hash}"), e))?;
        Record::from_json(meta.kind, &payload.body)
            .map(Some)
            .map_err(|e| corrupt(format!("payload {hash}"), e))
    }

    /// Every record of `author` (current state, deleted ones included).
    pub fn records_of(&self, author: &NodeId) -> Result<Vec<(RecordId, RecordMeta)>, StoreError> {
        self.db
            .scan_prefix(key(b'R', &[&author.0]))
            .map(|item| {
                let (k, v) = item?;
                Ok((record_id_at(&k, 33)?, decode_meta("record", &v)?))
            })
            .collect()
    }

    /// Runs `f` over the tags of every visible record, building them from the payloads the
    /// first time (tags are content: they are never written to sled).
    pub fn with_tags<R>(&self, f: impl FnOnce(&TagMap) -> R) -> Result<R, StoreError> {
        self.with_lazy(&self.tags, f, || {
            let mut map = TagMap::new();
            for item in self.db.scan_prefix([b'R']) {
                let (k, v) = item?;
                let author = node_id_at(&k, 1)?;
                let rid = record_id_at(&k, 33)?;
                let meta: RecordMeta = decode_meta("record", &v)?;
                if let Some(record) = self.load_record(&author, &rid, &meta)? {
                    let tags = lower_tags(&record);
                    if !tags.is_empty() {
                        map.insert((author, rid), tags);
                    }
                }
            }
            Ok(map)
        })
    }

    /// Runs `f` over the in-memory map in `cell`, building it with `build` the first time,
    /// under the write lock (so no batch changes what it reads; batches keep it current).
    fn with_lazy<M, R>(
        &self,
        cell: &std::sync::RwLock<Option<M>>,
        f: impl FnOnce(&M) -> R,
        build: impl FnOnce() -> Result<M, StoreError>,
    ) -> Result<R, StoreError> {
        if let Some(map) = cell
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            return Ok(f(map));
        }
        let _write = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut guard = cell
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(build()?);
        }
        match guard.as_ref() {
            Some(map) => Ok(f(map)),
            None => Err(corrupt("in-memory index", "not built")),
        }
    }

    /// Records whose current version is held without its payload (it arrived stripped), at
    /// most `max`, from a random place on (so records that cannot be completed never keep the
    /// others waiting): (author, seq) of that version, to ask an aggregator for. Authors this
    /// node does not take entries of (frozen, not admitted) are left out.
    pub fn header_only_current(&self, max: usize) -> Result<Vec<(NodeId, u64)>, StoreError> {
        let usable: std::collections::HashSet<NodeId> = self
            .authors()?
            .into_iter()
            .filter(|(_, m)| m.admitted && !m.frozen)
            .map(|(id, _)| id)
            .collect();
        let mut start = [0u8; 48];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut start);
        let from = key(b'R', &[&start]);
        let after = self.db.range(from.clone()..key(b'R' + 1, &[]));
        let before = self.db.range(vec![b'R']..from);
        let mut out = Vec::new();
        for item in after.chain(before) {
            if out.len() >= max {
                break;
            }
            let (k, v) = item?;
            let author = node_id_at(&k, 1)?;
            if !usable.contains(&author) {
                continue;
            }
            let meta: RecordMeta = decode_meta("record", &v)?;
            if !meta.deleted && meta.payload.is_none() {
                out.push((author, meta.seq));
            }
        }
        Ok(out)
    }

    /// Visible (current, not deleted) records of one author.
    pub fn visible_count_of(&self, author: &NodeId) -> Result<u64, StoreError> {
        Ok(self
            .records_of(author)?
            .iter()
            .filter(|(_, m)| m.visible())
            .count() as u64)
    }

    /// Visible records in time order (newest first), from just after `after` (a time key).
    pub(crate) fn time_index(
        &self,
        after: Option<&TimeKey>,
    ) -> impl Iterator<Item = Result<(TimeKey, NodeId, RecordId, u8), StoreError>> + '_ {
        let start = match after {
            Some(k) => std::ops::Bound::Excluded(k.0.clone()),
            None => std::ops::Bound::Included(vec![b'T']),
        };
        self.db
            .range::<Vec<u8>, _>((start, std::ops::Bound::Excluded(vec![b'T' + 1])))
            .map(|item| {
                let (k, v) = item?;
                let author = node_id_at(&k, 9)?;
                let rid = record_id_at(&k, 41)?;
                let code = v.first().copied().unwrap_or(u8::MAX);
                Ok((TimeKey(k.to_vec()), author, rid, code))
            })
    }

    /// Full-text search: (update time, author, record) of every match; `None` when the text
    /// has no searchable word.
    /// How the full-text index's commits and merges go (`/metrics`).
    pub fn index_health(&self) -> crate::search::IndexHealth {
        self.index.health()
    }

    /// Whether the full-text index still holds `word`, deleted documents included (see
    /// [`SearchIndex::holds_word`]); pending changes are committed first.
    pub fn index_holds_word(&self, word: &str) -> Result<bool, StoreError> {
        self.index.flush()?;
        Ok(self.index.search.holds_word(word)?)
    }

    pub fn search(&self, text: &str) -> Result<Option<Vec<TextHit>>, StoreError> {
        self.index.flush()?;
        let Some(hits) = self.index.search.search(text)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(hits.len());
        for hit in hits {
            let Some((a, r)) = hit.key.split_once('/') else {
                continue;
            };
            if let (Ok(a), Ok(r)) = (a.parse::<NodeId>(), r.parse::<RecordId>()) {
                out.push((hit.updated_ms, a, r));
            }
        }
        Ok(Some(out))
    }

    /// Visible records, counted.
    pub fn visible_count(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        for item in self.db.scan_prefix([b'T']) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Refusals so far, by reason.
    pub fn refusals(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.db
            .scan_prefix([b'C'])
            .map(|item| {
                let (k, v) = item?;
                let reason = String::from_utf8_lossy(&k[1..]).into_owned();
                Ok((reason, u64_value("counter", &v)?))
            })
            .collect()
    }

    /// Refusals so far, by author and reason.
    pub fn refusals_by_author(
        &self,
    ) -> Result<BTreeMap<NodeId, BTreeMap<String, u64>>, StoreError> {
        let mut out: BTreeMap<NodeId, BTreeMap<String, u64>> = BTreeMap::new();
        for item in self.db.scan_prefix([b'D']) {
            let (k, v) = item?;
            let author = node_id_at(&k, 1)?;
            let reason = String::from_utf8_lossy(&k[33..]).into_owned();
            out.entry(author)
                .or_default()
                .insert(reason, u64_value("counter", &v)?);
        }
        Ok(out)
    }

    /// Keeps a fork proof a peer sent (checked with `ingest::check_fork_proof` by the caller)
    /// and freezes its author. Returns false when a proof for that author is already held.
    pub fn record_fork_proof(&self, first: &Entry, second: &Entry) -> Result<bool, StoreError> {
        let (a, seq) = (first.header().author, first.header().seq);
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.db.get(k_fork(&a))?.is_some() {
            return Ok(false);
        }
        let mut meta = self.author_stored(&a)?.unwrap_or_default();
        meta.frozen = true;
        let mut batch = sled::Batch::default();
        batch.insert(
            k_fork(&a),
            codec::encode(&ForkProof {
                seq,
                first: first.to_wire(),
                second: second.to_wire(),
            }),
        );
        batch.insert(k_author(&a), codec::encode(&meta));
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(true)
    }

    /// Proven forks, by author.
    pub fn forks(&self) -> Result<Vec<(NodeId, ForkProof)>, StoreError> {
        self.db
            .scan_prefix([b'F'])
            .map(|item| {
                let (k, v) = item?;
                let proof = codec::decode::<ForkProof, { 4 * HEADER_BYTES_MAX }>("fork proof", &v)
                    .map_err(|e| corrupt("fork proof", e))?;
                Ok((node_id_at(&k, 1)?, proof))
            })
            .collect()
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// Sets `meta`'s names from its current profile's (or clears them).
fn fill_names(meta: &mut AuthorMeta, names: Option<&ProfileName>) {
    meta.profile_name = names.and_then(|n| n.0.clone());
    meta.display_name = names.map(|n| n.1.clone());
}

/// Lower-cased tags of a record, for the tag filter and facets.
fn lower_tags(record: &Record) -> Vec<String> {
    record.tags().iter().map(|t| t.to_lowercase()).collect()
}

/// A record of one author: the unit payloads, tags and full-text documents belong to.
type RecordKey = (NodeId, RecordId);

/// The store plus what the batch so far has changed. `preload` reads everything the ingest
/// check needs for one entry, so the check itself only reads these maps.
struct Overlay<'s> {
    store: &'s Store,
    batch: sled::Batch,
    heads: HashMap<NodeId, Option<Head>>,
    hashes: HashMap<(NodeId, u64), Hash>,
    log: HashMap<(NodeId, u64), WireEntry>,
    records: HashMap<RecordKey, Option<RecordMeta>>,
    authors: HashMap<NodeId, AuthorMeta>,
    /// Where each touched record's payload is stored (`None`: nowhere, or purged by this batch).
    refs: HashMap<RecordKey, Option<PayloadRef>>,
    /// Signed payload length of each touched record's current version (0: deleted).
    lens: HashMap<RecordKey, u32>,
    /// Each touched author's payload bytes (the quota's count).
    bytes: HashMap<NodeId, u64>,
    /// Payloads this batch writes: the current version's of each record (seq, hash, bytes).
    new_payloads: BTreeMap<RecordKey, (u64, Hash, Vec<u8>)>,
    /// Stored payload ranges this batch purges.
    purged: Vec<Location>,
    /// New tags per record (empty: the record no longer shows).
    tag_changes: Vec<(RecordKey, Vec<String>)>,
    /// New profile names per author (`None`: its profile no longer shows).
    name_changes: Vec<(NodeId, Option<ProfileName>)>,
    counters: BTreeMap<&'static str, u64>,
    author_counters: BTreeMap<(NodeId, &'static str), u64>,
    changes: Vec<DocChange>,
    /// The last version number of each record this batch gave a version.
    versions: HashMap<RecordKey, u64>,
    accepted: u64,
    forked: bool,
}

struct View<'o, 's> {
    ov: &'o Overlay<'s>,
    author: NodeId,
}

impl AuthorView for View<'_, '_> {
    fn admitted(&self) -> bool {
        self.ov
            .authors
            .get(&self.author)
            .is_some_and(|a| a.admitted)
    }
    fn frozen(&self) -> bool {
        self.ov.authors.get(&self.author).is_some_and(|a| a.frozen)
    }
    fn head(&self) -> Option<Head> {
        self.ov.heads.get(&self.author).copied().flatten()
    }
    fn hash_at(&self, seq: u64) -> Option<Hash> {
        self.ov.hashes.get(&(self.author, seq)).copied()
    }
    fn profile(&self) -> Option<RecordId> {
        self.ov.authors.get(&self.author).and_then(|a| a.profile)
    }
    fn record(&self, record_id: &RecordId) -> Option<RecordState> {
        self.ov
            .records
            .get(&(self.author, *record_id))
            .and_then(Option::as_ref)
            .map(|m| RecordState {
                kind: m.kind,
                deleted: m.deleted,
                seq: m.seq,
                payload_held: m.payload.is_some(),
                payload_len: self
                    .ov
                    .lens
                    .get(&(self.author, *record_id))
                    .copied()
                    .unwrap_or(0),
            })
    }
    fn payload_bytes(&self) -> u64 {
        self.ov.bytes.get(&self.author).copied().unwrap_or(0)
    }
}

/// What a committed batch left to do once it is durable.
#[derive(Debug, Default)]
struct Committed {
    /// The payload ranges it purged, to erase.
    purged: Vec<Location>,
}

impl<'s> Overlay<'s> {
    fn new(store: &'s Store) -> Self {
        Overlay {
            store,
            batch: sled::Batch::default(),
            heads: HashMap::new(),
            hashes: HashMap::new(),
            log: HashMap::new(),
            records: HashMap::new(),
            authors: HashMap::new(),
            refs: HashMap::new(),
            lens: HashMap::new(),
            bytes: HashMap::new(),
            new_payloads: BTreeMap::new(),
            purged: Vec::new(),
            tag_changes: Vec::new(),
            name_changes: Vec::new(),
            counters: BTreeMap::new(),
            author_counters: BTreeMap::new(),
            changes: Vec::new(),
            versions: HashMap::new(),
            accepted: 0,
            forked: false,
        }
    }

    /// The version number the next entry of `key` makes: one more than the last, in this
    /// batch or stored.
    fn next_version(&mut self, key: RecordKey) -> Result<u64, StoreError> {
        let last = match self.versions.get(&key) {
            Some(n) => *n,
            None => self.store.last_version(&key.0, &key.1)?,
        };
        self.versions.insert(key, last + 1);
        Ok(last + 1)
    }

    fn preload(&mut self, author: &NodeId, rid: &RecordId, seq: u64) -> Result<(), StoreError> {
        if !self.authors.contains_key(author) {
            // As stored: ingest needs admission and freezing, not names (and this runs under
            // the write lock, which building the names would take).
            let meta = self.store.author_stored(author)?.unwrap_or_default();
            self.authors.insert(*author, meta);
        }
        if !self.heads.contains_key(author) {
            let head = self.store.head(author)?;
            self.heads.insert(*author, head);
        }
        let head_seq = self
            .heads
            .get(author)
            .copied()
            .flatten()
            .map_or(0, |h| h.seq);
        if seq <= head_seq
            && !self.hashes.contains_key(&(*author, seq))
            && let Some(entry) = self.store.entry(author, seq)?
        {
            self.hashes.insert((*author, seq), entry.hash());
            self.log.insert((*author, seq), entry.to_wire());
        }
        let key = (*author, *rid);
        if !self.records.contains_key(&key) {
            let meta = self.store.record_meta(author, rid)?;
            self.records.insert(key, meta);
        }
        if !self.refs.contains_key(&key) {
            let r = self.store.payload_ref(author, rid)?;
            self.refs.insert(key, r);
        }
        if !self.lens.contains_key(&key) {
            let len = match self.records.get(&key).cloned().flatten() {
                Some(meta) => {
                    let held = self.refs.get(&key).cloned().flatten();
                    self.store.current_len(author, &meta, held.as_ref())?
                }
                None => 0,
            };
            self.lens.insert(key, len);
        }
        if !self.bytes.contains_key(author) {
            let total = self.store.payload_bytes_of(author)?;
            self.bytes.insert(*author, total);
        }
        Ok(())
    }

    /// Keeps the author's payload bytes as `key`'s current version becomes `len` bytes.
    fn set_len(&mut self, key: RecordKey, len: u32) {
        let old = self.lens.insert(key, len).unwrap_or(0);
        let total = self.bytes.entry(key.0).or_default();
        *total = total.saturating_sub(u64::from(old)) + u64::from(len);
        let total = *total;
        self.batch.insert(k_bytes(&key.0), &total.to_be_bytes()[..]);
    }

    fn put_meta<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.batch.insert(key, codec::encode(value));
    }

    /// Drops the payload `key` holds, whether stored (its range is erased once the batch is
    /// durable) or written earlier in this batch. Only this author's record is touched.
    fn purge_payload(&mut self, key: RecordKey) {
        self.new_payloads.remove(&key);
        if let Some(Some(stored)) = self.refs.insert(key, None) {
            self.purged.push(stored.at);
            self.batch.remove(k_payload(&key.0, &key.1));
        }
    }

    /// A record's content became visible: text, tags, and for a profile the author's names.
    fn show(&mut self, key: RecordKey, updated_ms: u64, record: &Record) {
        self.changes.push(DocChange {
            key: search_key(&key.0, &key.1),
            updated_ms,
            text: Some(record.search_text()),
        });
        self.tag_changes.push((key, lower_tags(record)));
        if let Record::Profile(profile) = record {
            let author = self.authors.entry(key.0).or_default();
            author.profile_name.clone_from(&profile.name);
            author.display_name = Some(profile.display_name.clone());
            author.profile = Some(key.1);
            let author = author.clone();
            // The names stay in memory (AuthorMeta skips them when encoded).
            self.put_meta(k_author(&key.0), &author);
            self.name_changes.push((
                key.0,
                Some((profile.name.clone(), profile.display_name.clone())),
            ));
        }
    }

    /// A record's content no longer shows (deleted, or a new version without its payload).
    fn hide(&mut self, key: RecordKey, updated_ms: u64, kind: Kind) {
        self.changes.push(DocChange {
            key: search_key(&key.0, &key.1),
            updated_ms,
            text: None,
        });
        self.tag_changes.push((key, Vec::new()));
        if kind == Kind::Profile {
            if let Some(author) = self.authors.get_mut(&key.0) {
                author.profile_name = None;
                author.display_name = None;
            }
            self.name_changes.push((key.0, None));
        }
    }

    fn accept(&mut self, incoming: Incoming, accepted: Accepted) -> Result<(), StoreError> {
        let Incoming { entry, payload } = incoming;
        if accepted.completes {
            return self.complete(&entry, payload, accepted.record);
        }
        let record = accepted.record;
        let h = entry.header().clone();
        let a = h.author;
        let hash = entry.hash();
        let wire = entry.to_wire();
        self.batch.insert(k_log(&a, h.seq), codec::encode(&wire));
        let number = self.next_version((a, h.record_id))?;
        self.batch.insert(
            k_version(&a, &h.record_id, h.seq),
            &number.to_be_bytes()[..],
        );
        self.log.insert((a, h.seq), wire);
        self.hashes.insert((a, h.seq), hash);
        let head = Head { seq: h.seq, hash };
        self.heads.insert(a, Some(head));
        self.put_meta(k_head(&a), &head);

        let key = (a, h.record_id);
        if h.kind == Kind::Profile {
            // The author's one profile (ingest refuses a second), also when it arrived
            // without its payload.
            let author = self.authors.entry(a).or_default();
            if author.profile.is_none() {
                author.profile = Some(h.record_id);
                let author = author.clone();
                self.put_meta(k_author(&a), &author);
            }
        }
        let old = self.records.get(&key).cloned().flatten();
        if let Some(old) = old.as_ref().filter(|m| m.visible()) {
            self.batch.remove(k_time(old.updated_ms, &a, &h.record_id));
        }
        // Only the current version keeps a payload: the previous one is purged.
        self.purge_payload(key);
        let created_ms = old.as_ref().map_or(h.timestamp_ms, |m| m.created_ms);
        let meta = match h.op {
            Op::Put => {
                let stored = payload.filter(|_| record.is_some());
                let held = stored.is_some();
                if let Some(bytes) = stored {
                    debug_assert!(bytes.len() <= PAYLOAD_BYTES_MAX);
                    self.new_payloads
                        .insert(key, (h.seq, h.payload_hash, bytes));
                }
                let meta = RecordMeta {
                    kind: h.kind,
                    seq: h.seq,
                    created_ms,
                    updated_ms: h.timestamp_ms,
                    deleted: false,
                    payload: held.then_some(h.payload_hash),
                };
                match record.as_ref().filter(|_| held) {
                    Some(record) => {
                        self.batch.insert(
                            k_time(meta.updated_ms, &a, &h.record_id),
                            &[h.kind.code()][..],
                        );
                        self.show(key, h.timestamp_ms, record);
                    }
                    None => self.hide(key, h.timestamp_ms, h.kind),
                }
                meta
            }
            Op::Tombstone => {
                self.hide(key, h.timestamp_ms, h.kind);
                RecordMeta {
                    kind: h.kind,
                    seq: h.seq,
                    created_ms,
                    updated_ms: h.timestamp_ms,
                    deleted: true,
                    payload: None,
                }
            }
        };
        self.put_meta(k_record(&a, &h.record_id), &meta);
        self.records.insert(key, Some(meta));
        self.set_len(key, h.payload_len);
        self.accepted += 1;
        Ok(())
    }

    /// The payload of a stored header-only current version arrived: the record shows.
    fn complete(
        &mut self,
        entry: &Entry,
        payload: Option<Vec<u8>>,
        record: Option<Record>,
    ) -> Result<(), StoreError> {
        let h = entry.header();
        let key = (h.author, h.record_id);
        let (Some(bytes), Some(record)) = (payload, record) else {
            return Err(corrupt("completion", "accepted without its payload"));
        };
        let mut meta = self
            .records
            .get(&key)
            .cloned()
            .flatten()
            .ok_or_else(|| corrupt("completion", "record unknown"))?;
        meta.payload = Some(h.payload_hash);
        self.new_payloads
            .insert(key, (h.seq, h.payload_hash, bytes));
        self.batch.insert(
            k_time(meta.updated_ms, &h.author, &h.record_id),
            &[h.kind.code()][..],
        );
        self.show(key, meta.updated_ms, &record);
        self.put_meta(k_record(&h.author, &h.record_id), &meta);
        self.records.insert(key, Some(meta));
        tracing::info!(author = %h.author.short(), seq = h.seq, "a record that arrived without its payload is complete now");
        self.accepted += 1;
        Ok(())
    }

    fn record_fork(&mut self, second: &Entry, seq: u64) -> Result<(), StoreError> {
        let a = second.header().author;
        let first = match self.log.get(&(a, seq)) {
            Some(w) => w.clone(),
            None => match self.store.entry(&a, seq)? {
                Some(e) => e.to_wire(),
                None => return Ok(()),
            },
        };
        let name = self
            .authors
            .get(&a)
            .and_then(|m| m.label().map(str::to_string));
        tracing::warn!(author = %a, name = name.as_deref().unwrap_or("-"), seq, "fork proven: two different entries signed with one seq; the author is frozen here");
        self.put_meta(
            k_fork(&a),
            &ForkProof {
                seq,
                first,
                second: second.to_wire(),
            },
        );
        self.forked = true;
        let author = self.authors.entry(a).or_default();
        author.frozen = true;
        let author = author.clone();
        self.put_meta(k_author(&a), &author);
        Ok(())
    }

    fn count(&mut self, author: NodeId, reason: &'static str) {
        *self.counters.entry(reason).or_default() += 1;
        *self.author_counters.entry((author, reason)).or_default() += 1;
    }

    /// Writes the batch: payloads first (durable in the packs), then one atomic sled batch
    /// that names them, lists the purged ranges, and moves the log.
    fn commit(mut self) -> Result<Committed, StoreError> {
        if self.accepted == 0 && self.counters.is_empty() && !self.forked {
            return Ok(Committed::default());
        }
        for (reason, n) in std::mem::take(&mut self.counters) {
            let before = self.store.counter(reason)?;
            self.batch
                .insert(k_counter(reason), &(before + n).to_be_bytes()[..]);
        }
        for ((author, reason), n) in std::mem::take(&mut self.author_counters) {
            let k = k_author_counter(&author, reason);
            let before = match self.store.db.get(&k)? {
                Some(v) => u64_value("counter", &v)?,
                None => 0,
            };
            self.batch.insert(k, &(before + n).to_be_bytes()[..]);
        }
        let generation = self.store.generation()? + self.accepted;
        self.batch
            .insert(K_GENERATION, &generation.to_be_bytes()[..]);
        self.batch.insert(K_HISTORY, &generation.to_be_bytes()[..]);
        let mut appended = None;
        if !self.new_payloads.is_empty() {
            let total = self.new_payloads.values().map(|p| p.2.len()).sum();
            let mut buf = Vec::with_capacity(total);
            let mut placed = Vec::with_capacity(self.new_payloads.len());
            for (key, (seq, hash, bytes)) in std::mem::take(&mut self.new_payloads) {
                placed.push((key, seq, hash, buf.len() as u64, bytes.len() as u32));
                buf.extend_from_slice(&bytes);
            }
            let (segment, start) = self
                .store
                .packs
                .append(&buf)
                .map_err(|e| self.store.packs_error(e))?;
            for ((a, rid), seq, hash, offset, len) in placed {
                let r = PayloadRef {
                    seq,
                    hash,
                    at: Location {
                        segment,
                        offset: start + offset,
                        len,
                    },
                };
                self.put_meta(k_payload(&a, &rid), &r);
            }
            self.batch.insert(
                k_pack(segment),
                &(start + buf.len() as u64).to_be_bytes()[..],
            );
            appended = Some((segment, start));
        }
        let purged = std::mem::take(&mut self.purged);
        for at in &purged {
            self.batch.insert(k_erase(at), &at.len.to_be_bytes()[..]);
        }
        if let Err(e) = self.store.db.apply_batch(self.batch) {
            if let Some((segment, start)) = appended {
                self.store.packs.abandon(segment, start);
            }
            return Err(e.into());
        }
        if !self.changes.is_empty() {
            self.store.index.enqueue(self.changes, generation);
        }
        if !self.name_changes.is_empty() {
            let mut names = self
                .store
                .profile_names
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(map) = names.as_mut() {
                for (author, n) in self.name_changes {
                    match n {
                        Some(n) => map.insert(author, n),
                        None => map.remove(&author),
                    };
                }
            }
        }
        if !self.tag_changes.is_empty() {
            let mut tags = self
                .store
                .tags
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(map) = tags.as_mut() {
                for (key, t) in self.tag_changes {
                    if t.is_empty() {
                        map.remove(&key);
                    } else {
                        map.insert(key, t);
                    }
                }
            }
        }
        Ok(Committed { purged })
    }
}

impl From<EntryError> for StoreError {
    fn from(e: EntryError) -> Self {
        corrupt("entry", e)
    }
}

impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> Self {
        corrupt("value", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_key_orders_newest_first_and_is_named_by_its_cursor() {
        let (a, r) = (NodeId([1; 32]), RecordId([2; 16]));
        let (newer, older) = (TimeKey::of(2_000, &a, &r), TimeKey::of(1_000, &a, &r));
        assert!(newer < older, "the time index runs newest first");
        let cursor = newer.to_cursor();
        assert_eq!(cursor.len(), 2 * TIME_KEY_BYTES);
        assert_eq!(TimeKey::from_cursor(&cursor), Some(newer));
        for bad in ["", "zz", &cursor[2..], &format!("{cursor}00")] {
            assert_eq!(TimeKey::from_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn index_retries_wait_longer_after_each_failure_up_to_the_maximum() {
        let ms = |n| index_retry_wait(n).as_millis() as u64;
        assert_eq!(ms(1), INDEX_RETRY_MIN_MS);
        assert_eq!(ms(2), 2 * INDEX_RETRY_MIN_MS);
        assert_eq!(ms(3), 4 * INDEX_RETRY_MIN_MS);
        assert_eq!(ms(6), 32 * INDEX_RETRY_MIN_MS);
        assert_eq!(ms(7), INDEX_RETRY_MAX_MS);
        assert_eq!(ms(u32::MAX), INDEX_RETRY_MAX_MS);
        // A merge is tried at least this often while it fails: within the erasure promise.
        const { assert!(INDEX_RETRY_MAX_MS + EXPUNGE_INTERVAL_MS < 60_000) };
        let mut retry = Retry::default();
        let t0 = std::time::Instant::now();
        assert!(retry.due(t0));
        assert_eq!(retry.failed(t0), index_retry_wait(1));
        assert!(!retry.due(t0));
        assert!(retry.due(t0 + index_retry_wait(1)));
        retry.failed(t0);
        assert_eq!(retry.succeeded(), 2);
        assert!(retry.due(t0));
        assert_eq!(
            retry.failed(t0),
            index_retry_wait(1),
            "a new run starts short"
        );
    }
}
