//! The versions index (`E` keys): each record's versions numbered 1, 2, 3 ... without reading
//! the log, and its rebuild from the log when an older binary left it behind.

use std::collections::HashMap;

use spindel_protocol::NodeId;
use spindel_protocol::entry::{Op, RecordId};

use super::handle::Store;
use super::keys::{K_HISTORY, k_version, key};
use super::types::{StoreError, Version, corrupt, u64_value};

/// Entries per write (and per progress line) while rebuilding the versions index.
const HISTORY_REBUILD_CHUNK: u64 = 10_000;

impl Store {
    /// The generation the versions index (`E`) is complete at, if it was ever built.
    pub(super) fn history_generation(&self) -> Result<Option<u64>, StoreError> {
        self.db
            .get(K_HISTORY)?
            .map(|v| u64_value("history generation", &v))
            .transpose()
    }

    /// Builds the versions index (`E`) from the log: a store written before it was kept, or by
    /// a binary that does not keep it. One pass over the headers.
    pub(super) fn rebuild_history(&self) -> Result<(), StoreError> {
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
            let entry = self.log_entry(&k, &v)?;
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
    pub(super) fn last_version(&self, author: &NodeId, rid: &RecordId) -> Result<u64, StoreError> {
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
}
