//! The store: every author's signed log and everything derived from it, in one sled tree.
//!
//! The signed log is the source of truth; all other keys are derived from it and the full-text
//! index is rebuilt from it whenever it is missing or stale. Keys carry a one-byte prefix:
//!
//! | prefix | key                         | value                                   |
//! |--------|-----------------------------|-----------------------------------------|
//! | `L`    | author, seq (BE)            | the entry as received ([`WireEntry`])   |
//! | `P`    | payload hash                | payload bytes as received               |
//! | `H`    | author                      | [`Head`]                                |
//! | `R`    | author, record_id           | [`RecordMeta`] (current version)        |
//! | `V`    | author, record_id, seq (BE) | payload hash of that version (purge)    |
//! | `T`    | !updated_ms (BE), author, record_id | kind code: visible records, newest first |
//! | `A`    | author                      | [`AuthorMeta`]                          |
//! | `F`    | author                      | [`ForkProof`]: both signed headers      |
//! | `C`    | refusal reason              | u64 count                               |
//! | `S`    | author                      | u64 ms (BE): when this node last accepted an entry of the author (local observation, not derived from the log) |
//! | `M`    | name                        | store metadata (`generation`)           |
//!
//! Writes go through [`Store::apply`]: entries are checked one by one with
//! [`spindel_protocol::ingest::check`] against the store plus the batch so far, and everything a
//! batch changes is written with one atomic `apply_batch`, then flushed before `apply` returns.
//! Only one batch is prepared at a time (a mutex), so check-then-write cannot interleave.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use spindel_protocol::NodeId;
use spindel_protocol::codec::{self, DecodeError};
use spindel_protocol::entry::{
    Entry, EntryError, HEADER_BYTES_MAX, Hash, Head, Op, PAYLOAD_BYTES_MAX, Payload, RecordId,
    WireEntry,
};
use spindel_protocol::ingest::{self, AuthorView, RecordState, Refusal};
use spindel_protocol::record::{Kind, Record};

use crate::search::{DocChange, SearchError, SearchIndex};

/// Upper bound of a stored metadata value (tags make `RecordMeta` the largest).
const META_BYTES_MAX: usize = 16 * 1024;
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
    #[error("full-text index: {0}")]
    Search(#[from] SearchError),
    #[error("store is corrupt at {what}: {reason}")]
    Corrupt { what: String, reason: String },
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
    /// Hash of the current payload; `None` when deleted or purged at the source.
    pub payload: Option<Hash>,
    /// Lower-cased tags, for the tag filter.
    pub tags: Vec<String>,
}

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
    /// The name given when admitting (`spindel allow --name`).
    pub admitted_name: Option<String>,
    /// Frozen after a proven fork: nothing more is accepted.
    pub frozen: bool,
    /// `name` of the author's current profile.
    pub name: Option<String>,
    /// `display_name` of the author's current profile.
    pub display_name: Option<String>,
    /// The author's profile record.
    pub profile: Option<RecordId>,
}

impl AuthorMeta {
    /// The best short name to show: profile name, else the admitted name.
    pub fn label(&self) -> Option<&str> {
        self.name.as_deref().or(self.admitted_name.as_deref())
    }
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
fn k_payload(h: &Hash) -> Vec<u8> {
    key(b'P', &[&h.0])
}
fn k_head(a: &NodeId) -> Vec<u8> {
    key(b'H', &[&a.0])
}
fn k_record(a: &NodeId, r: &RecordId) -> Vec<u8> {
    key(b'R', &[&a.0, &r.0])
}
fn k_version(a: &NodeId, r: &RecordId, seq: u64) -> Vec<u8> {
    key(b'V', &[&a.0, &r.0, &seq.to_be_bytes()])
}
/// Time index key: newest first because the timestamp is inverted.
pub(crate) fn k_time(updated_ms: u64, a: &NodeId, r: &RecordId) -> Vec<u8> {
    key(b'T', &[&(u64::MAX - updated_ms).to_be_bytes(), &a.0, &r.0])
}
fn k_author(a: &NodeId) -> Vec<u8> {
    key(b'A', &[&a.0])
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
const K_GENERATION: &[u8] = b"Mgeneration";

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

/// How long `open` waits for sled's file lock: sled releases it when its background flusher
/// lets go, a moment after the previous handle in this process was dropped.
const LOCK_WAIT_MS: u64 = 1500;

fn open_sled(dir: &Path, sled_dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(LOCK_WAIT_MS);
    loop {
        match sled::Config::new()
            .path(sled_dir)
            .mode(sled::Mode::HighThroughput)
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
            Err(other) => return Err(StoreError::Sled(other)),
        }
    }
}

/// The node's store: sled for the log and its derived keys, tantivy for full text.
pub struct Store {
    db: sled::Db,
    index: Arc<IndexQueue>,
    committer: Option<std::thread::JoinHandle<()>>,
    write: Mutex<()>,
}

/// How often queued full-text changes are committed in the background.
pub const INDEX_COMMIT_INTERVAL_MS: u64 = 200;

/// The full-text index and the changes waiting to be committed to it. Applying a batch only
/// queues its changes (a tantivy commit costs several fsyncs and is kept off the ack path); a
/// background thread commits them every [`INDEX_COMMIT_INTERVAL_MS`], a text search commits
/// what is pending first (so searches see every applied entry), and dropping the store commits
/// the rest. The index is derived: pending changes lost in a crash leave its generation behind
/// the store's, and the next open rebuilds it.
struct IndexQueue {
    search: SearchIndex,
    pending: Mutex<(Vec<DocChange>, u64)>,
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
    }

    /// Commits pending changes, if any.
    fn flush(&self) -> Result<(), SearchError> {
        let mut p = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if p.0.is_empty() {
            return Ok(());
        }
        let changes = std::mem::take(&mut p.0);
        // Hold the lock while committing so commits stay in order.
        self.search.apply(&changes, p.1)
    }

    fn run(queue: Arc<IndexQueue>) {
        use std::sync::atomic::Ordering;
        while !queue.stop.load(Ordering::Acquire) {
            std::thread::park_timeout(std::time::Duration::from_millis(INDEX_COMMIT_INTERVAL_MS));
            if let Err(e) = queue.flush() {
                tracing::error!(error = %e, "full-text index commit failed; it is rebuilt on next start");
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
        let _ = self.db.flush();
    }
}

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
            index,
            committer: Some(committer),
            write: Mutex::new(()),
        };
        let generation = store.generation()?;
        if indexed != Some(generation) {
            tracing::info!(
                ?indexed,
                generation,
                "full-text index is stale; rebuilding from the log"
            );
            store.rebuild_index()?;
        }
        Ok(store)
    }

    /// Count of entries ever applied; the full-text index records the generation it reflects.
    pub fn generation(&self) -> Result<u64, StoreError> {
        match self.db.get(K_GENERATION)? {
            Some(v) => u64_value("generation", &v),
            None => Ok(0),
        }
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
            let Some(record) = self.load_record(&meta)? else {
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
        // verify_strict of every signature, before the write lock: concurrent batches verify
        // on all cores. The verdicts go into the same ingest rules.
        let verdicts: Vec<_> = batch.iter().map(|i| i.entry.verify()).collect();
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
                    ov.accept(incoming, accepted.record)?;
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
                    ov.count(refusal.reason());
                    outcomes.push(Outcome::Refused(refusal));
                }
            }
        }
        ov.commit()?;
        // Durable before returning, but flushed outside the write lock: sled's flush covers
        // everything applied so far, so concurrent batches share one fsync.
        drop(guard);
        self.db.flush()?;
        Ok(outcomes)
    }

    /// Marks `author` as admitted (aggregator: `spindel allow`; every node: itself).
    pub fn admit(&self, author: &NodeId, name: Option<String>) -> Result<AuthorMeta, StoreError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut meta = self.author(author)?.unwrap_or_default();
        meta.admitted = true;
        if name.is_some() {
            meta.admitted_name = name;
        }
        self.db.insert(k_author(author), codec::encode(&meta))?;
        self.db.flush()?;
        Ok(meta)
    }

    /// A region accepts the authors its aggregator vouches for (admitted there). Keeps what is
    /// already known; never unfreezes.
    pub fn vouch(&self, author: &NodeId, name: Option<String>) -> Result<(), StoreError> {
        match self.author(author)? {
            Some(meta) if meta.admitted => Ok(()),
            _ => self.admit(author, name).map(|_| ()),
        }
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
        self.db
            .get(k_author(author))?
            .map(|v| decode_meta("author", &v))
            .transpose()
    }

    /// Every author the store knows of, with its metadata.
    pub fn authors(&self) -> Result<Vec<(NodeId, AuthorMeta)>, StoreError> {
        self.db
            .scan_prefix([b'A'])
            .map(|item| {
                let (k, v) = item?;
                Ok((node_id_at(&k, 1)?, decode_meta("author", &v)?))
            })
            .collect()
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
            let payload = match entry.header().op {
                Op::Put => self.payload(&entry.header().payload_hash)?,
                Op::Tombstone => None,
            };
            out.push(Incoming { entry, payload });
        }
        Ok(out)
    }

    pub fn payload(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(k_payload(hash))?.map(|v| v.to_vec()))
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

    /// The current content of a visible record.
    pub fn load_record(&self, meta: &RecordMeta) -> Result<Option<Record>, StoreError> {
        let Some(hash) = meta.payload.filter(|_| !meta.deleted) else {
            return Ok(None);
        };
        let Some(bytes) = self.payload(&hash)? else {
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
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, NodeId, RecordId, u8), StoreError>> + '_ {
        let start = match after {
            Some(k) => std::ops::Bound::Excluded(k.to_vec()),
            None => std::ops::Bound::Included(vec![b'T']),
        };
        self.db
            .range::<Vec<u8>, _>((start, std::ops::Bound::Excluded(vec![b'T' + 1])))
            .map(|item| {
                let (k, v) = item?;
                let author = node_id_at(&k, 9)?;
                let rid = record_id_at(&k, 41)?;
                let code = v.first().copied().unwrap_or(u8::MAX);
                Ok((k.to_vec(), author, rid, code))
            })
    }

    /// Full-text search: (update time, author, record) of every match; `None` when the text
    /// has no searchable word.
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

/// The store plus what the batch so far has changed. `preload` reads everything the ingest
/// check needs for one entry, so the check itself only reads these maps.
struct Overlay<'s> {
    store: &'s Store,
    batch: sled::Batch,
    heads: HashMap<NodeId, Option<Head>>,
    hashes: HashMap<(NodeId, u64), Hash>,
    log: HashMap<(NodeId, u64), WireEntry>,
    records: HashMap<(NodeId, RecordId), Option<RecordMeta>>,
    authors: HashMap<NodeId, AuthorMeta>,
    versions: HashMap<(NodeId, RecordId), Vec<Hash>>,
    counters: BTreeMap<&'static str, u64>,
    changes: Vec<DocChange>,
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
    fn record(&self, record_id: &RecordId) -> Option<RecordState> {
        self.ov
            .records
            .get(&(self.author, *record_id))
            .and_then(Option::as_ref)
            .map(|m| RecordState {
                kind: m.kind,
                deleted: m.deleted,
            })
    }
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
            versions: HashMap::new(),
            counters: BTreeMap::new(),
            changes: Vec::new(),
            accepted: 0,
            forked: false,
        }
    }

    fn preload(&mut self, author: &NodeId, rid: &RecordId, seq: u64) -> Result<(), StoreError> {
        if !self.authors.contains_key(author) {
            let meta = self.store.author(author)?.unwrap_or_default();
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
        if !self.records.contains_key(&(*author, *rid)) {
            let meta = self.store.record_meta(author, rid)?;
            self.records.insert((*author, *rid), meta);
        }
        Ok(())
    }

    fn put_meta<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.batch.insert(key, codec::encode(value));
    }

    fn accept(&mut self, incoming: Incoming, record: Option<Record>) -> Result<(), StoreError> {
        let Incoming { entry, payload } = incoming;
        let h = entry.header().clone();
        let a = h.author;
        let hash = entry.hash();
        let wire = entry.to_wire();
        self.batch.insert(k_log(&a, h.seq), codec::encode(&wire));
        self.log.insert((a, h.seq), wire);
        self.hashes.insert((a, h.seq), hash);
        let head = Head { seq: h.seq, hash };
        self.heads.insert(a, Some(head));
        self.put_meta(k_head(&a), &head);

        let old = self.records.get(&(a, h.record_id)).cloned().flatten();
        if let Some(old) = old.as_ref().filter(|m| m.visible()) {
            self.batch.remove(k_time(old.updated_ms, &a, &h.record_id));
        }
        let skey = search_key(&a, &h.record_id);
        let meta = match h.op {
            Op::Put => {
                self.batch
                    .insert(k_version(&a, &h.record_id, h.seq), &h.payload_hash.0[..]);
                self.versions
                    .entry((a, h.record_id))
                    .or_default()
                    .push(h.payload_hash);
                let stored_payload = payload.filter(|_| record.is_some());
                if let Some(bytes) = &stored_payload {
                    debug_assert!(bytes.len() <= PAYLOAD_BYTES_MAX);
                    self.batch
                        .insert(k_payload(&h.payload_hash), bytes.as_slice());
                }
                let tags = record
                    .as_ref()
                    .map(|r| r.tags().iter().map(|t| t.to_lowercase()).collect())
                    .unwrap_or_default();
                let meta = RecordMeta {
                    kind: h.kind,
                    seq: h.seq,
                    created_ms: old.as_ref().map_or(h.timestamp_ms, |m| m.created_ms),
                    updated_ms: h.timestamp_ms,
                    deleted: false,
                    payload: stored_payload.as_ref().map(|_| h.payload_hash),
                    tags,
                };
                if meta.visible() {
                    self.batch.insert(
                        k_time(meta.updated_ms, &a, &h.record_id),
                        &[h.kind.code()][..],
                    );
                }
                self.changes.push(DocChange {
                    key: skey,
                    updated_ms: h.timestamp_ms,
                    text: record.as_ref().map(Record::search_text),
                });
                if let Some(Record::Profile(profile)) = &record {
                    let author = self.authors.entry(a).or_default();
                    author.name.clone_from(&profile.name);
                    author.display_name = Some(profile.display_name.clone());
                    author.profile = Some(h.record_id);
                    let author = author.clone();
                    self.put_meta(k_author(&a), &author);
                }
                meta
            }
            Op::Tombstone => {
                // Purge every version's payload: stored ones and those of this batch.
                let mut hashes = self.versions.remove(&(a, h.record_id)).unwrap_or_default();
                for item in self
                    .store
                    .db
                    .scan_prefix(key(b'V', &[&a.0, &h.record_id.0]))
                {
                    let (k, v) = item?;
                    let hash: [u8; 32] = v[..]
                        .try_into()
                        .map_err(|_| corrupt("version", "not 32 bytes"))?;
                    hashes.push(Hash(hash));
                    self.batch.remove(k);
                }
                for hash in hashes {
                    self.batch.remove(k_payload(&hash));
                }
                self.changes.push(DocChange {
                    key: skey,
                    updated_ms: h.timestamp_ms,
                    text: None,
                });
                RecordMeta {
                    kind: h.kind,
                    seq: h.seq,
                    created_ms: old.as_ref().map_or(h.timestamp_ms, |m| m.created_ms),
                    updated_ms: h.timestamp_ms,
                    deleted: true,
                    payload: None,
                    tags: Vec::new(),
                }
            }
        };
        self.put_meta(k_record(&a, &h.record_id), &meta);
        self.records.insert((a, h.record_id), Some(meta));
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
        tracing::warn!(author = %a, seq, "fork proven: two signed entries with one seq; author frozen");
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

    fn count(&mut self, reason: &'static str) {
        *self.counters.entry(reason).or_default() += 1;
    }

    fn commit(mut self) -> Result<(), StoreError> {
        if self.accepted == 0 && self.counters.is_empty() && !self.forked {
            return Ok(());
        }
        for (reason, n) in std::mem::take(&mut self.counters) {
            let before = self.store.counter(reason)?;
            self.batch
                .insert(k_counter(reason), &(before + n).to_be_bytes()[..]);
        }
        let generation = self.store.generation()? + self.accepted;
        self.batch
            .insert(K_GENERATION, &generation.to_be_bytes()[..]);
        self.store.db.apply_batch(self.batch)?;
        if !self.changes.is_empty() {
            self.store.index.enqueue(self.changes, generation);
        }
        Ok(())
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
