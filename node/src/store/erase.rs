//! Purged payload ranges (`Z` keys): erased for good once the batch that purged them is
//! durable, and on every open.

use super::handle::Store;
use super::keys::k_erase;
use super::types::{StoreError, corrupt};
use crate::payloads::Location;

/// Fault injection for crash tests only: when set, the process aborts right after a batch that
/// purged payloads is durable and before they are erased (as a `kill -9` there would). The
/// CLI sets it from `SPINDEL_FAULT_INJECT=abort-before-erase`.
pub static ABORT_BEFORE_ERASE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

impl Store {
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
    pub(super) fn erase(&self, ranges: &[Location]) -> Result<usize, StoreError> {
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
}
