//! Opening the store: sled's lock, the layout's format (and the upgrade from format 2), the
//! packs, then what a crash or an older binary left behind (pending erasures, the versions
//! index, the full-text index) before anything reads it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::handle::Store;
use super::index_queue::IndexQueue;
use super::keys::{
    K_FORMAT, STORE_FORMAT, STORE_FORMAT_INLINE_LOG, STORE_FORMAT_UNCOUNTED, k_bytes, search_key,
};
use super::types::{
    RecordMeta, StoreError, corrupt, decode_meta, node_id_at, record_id_at, u64_value,
};
use crate::payloads::{PAYLOADS_DIR, Packs};
use crate::search::{DocChange, SearchIndex};

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

/// What opening a store of an older layout does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    /// Nothing: the store is this binary's layout.
    None,
    /// Format 3: marked [`STORE_FORMAT`] once it opened (its entries stay in sled and are read
    /// as they are); until then the binary before still opens it.
    Mark,
    /// Format 2: each author's payload bytes are counted, then it is marked.
    Count,
}

/// Marks a new store with [`STORE_FORMAT`]; refuses one written in another layout, except the
/// formats it upgrades ([`Upgrade`]).
fn check_format(db: &sled::Db, dir: &Path) -> Result<Upgrade, StoreError> {
    let found = match db.get(K_FORMAT)? {
        Some(v) => u64_value("store format", &v)?,
        None if db.scan_prefix([b'L']).next().is_some() => 1,
        None => {
            db.insert(K_FORMAT, &STORE_FORMAT.to_be_bytes()[..])?;
            db.flush()?;
            return Ok(Upgrade::None);
        }
    };
    let path = dir.to_path_buf();
    match found {
        STORE_FORMAT => Ok(Upgrade::None),
        STORE_FORMAT_INLINE_LOG => Ok(Upgrade::Mark),
        STORE_FORMAT_UNCOUNTED => Ok(Upgrade::Count),
        f if f > STORE_FORMAT => Err(StoreError::NewerFormat { path, found }),
        _ => Err(StoreError::OldFormat { path, found }),
    }
}

/// Records indexed per commit while rebuilding the full-text index.
const REBUILD_CHUNK_RECORDS: usize = 5000;

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
        let index = Arc::new(IndexQueue::new(search));
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
            tally: std::sync::RwLock::new(None),
            profile_names: std::sync::RwLock::new(None),
            calendar: std::sync::RwLock::new(None),
            answers: std::sync::RwLock::new(None),
            members: std::sync::RwLock::new(None),
            members_generation: std::sync::atomic::AtomicU64::new(0),
            erasure_settle_ms: std::sync::atomic::AtomicU64::new(
                super::erase::ERASURE_SETTLE.as_millis() as u64,
            ),
        };
        // Finish every erasure a crash interrupted before anything reads the store.
        store.erase_pending()?;
        if upgrade == Upgrade::Count {
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
        store.open_members()?;
        if upgrade == Upgrade::Mark {
            store.db.insert(K_FORMAT, &STORE_FORMAT.to_be_bytes()[..])?;
            store.db.flush()?;
            tracing::info!(
                from = STORE_FORMAT_INLINE_LOG,
                to = STORE_FORMAT,
                "store format upgraded: new entries are kept in the packs"
            );
        }
        Ok(store)
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
            if meta.kind.is_membership() {
                continue;
            }
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

    /// Counts every author's payload bytes once, for a format-2 store (written before the
    /// count was kept; afterwards each batch keeps it), and marks the store [`STORE_FORMAT`] in the
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
}
