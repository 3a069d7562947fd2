//! Purged payload ranges (`Z` keys): erased for good once the batch that purged them is
//! durable, and on every open. Payloads the members ordered erased (`Y` keys) are held out of
//! every read first, and purged once the order settled ([`Store::purge_settled_erasures`]).

use std::time::Duration;

use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;

use super::handle::Store;
use super::keys::{k_erase, k_held};
use super::types::{HeldPayload, StoreError, corrupt, decode_meta, node_id_at, record_id_at};
use crate::payloads::Location;

/// How long a node holds, hidden, the payload of a record the members ordered erased, after
/// the order's decision (or after it began to hold it, if later), before erasing it for good
/// (settings: `erasure_settle_secs`). An order is decided by the signed times of the acts
/// before it, and an act signed earlier can reach a node later (a withdrawal, a cut of the
/// ordering key): within this time such an act brings the record back from the held bytes, as
/// on a node that never saw the order decide. Three days: a region offline over a long
/// weekend is back within it, and the bytes are gone well inside the month data-protection
/// law allows for an erasure.
pub const ERASURE_SETTLE: Duration = Duration::from_secs(3 * 24 * 60 * 60);

/// Fault injection for crash tests only: when set, the process aborts right after a batch that
/// purged payloads is durable and before they are erased (as a `kill -9` there would). The
/// CLI sets it from `SPINDEL_FAULT_INJECT=abort-before-erase`.
pub static ABORT_BEFORE_ERASE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Held payloads [`Store::purge_settled_erasures`] erases in one pass at most (each is zeroed
/// and synced on the writer's thread): more that fall due at once are erased in later passes,
/// one right after another, so a batch from a peer waits for one pass at most.
pub const HELD_PURGED_PER_PASS: usize = 64;

/// A record whose payload is held: its author and id.
pub type HeldRecord = (NodeId, RecordId);

/// What [`Store::purge_settled_erasures`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettledErasures {
    /// Held payloads erased for good.
    pub purged: usize,
    /// When the next held payload's order settles (ms since the epoch), if one is held.
    pub next_due_ms: Option<u64>,
}

impl Store {
    /// Sets [`ERASURE_SETTLE`] for this node (a test or an operator may shorten it; 0 erases
    /// at once and gives up bringing a record back).
    pub fn set_erasure_settle(&self, settle: Duration) {
        self.erasure_settle_ms.store(
            u64::try_from(settle.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// When a payload held since `since_ms` for an order decided at `decided_ms` is erased
    /// for good.
    pub fn erasure_due_ms(&self, decided_ms: u64, since_ms: u64) -> u64 {
        decided_ms.max(since_ms).saturating_add(
            self.erasure_settle_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The payload of `author`'s record held for an erasure order, if one is.
    pub fn held_payload(
        &self,
        author: &NodeId,
        rid: &RecordId,
    ) -> Result<Option<HeldPayload>, StoreError> {
        self.db
            .get(k_held(author, rid))?
            .map(|v| decode_meta("held payload", &v))
            .transpose()
    }

    /// Every payload held for an erasure order, by its record. An entry that cannot be read
    /// is logged and left out (it is not one this binary wrote; the others go on).
    pub fn held_payloads(&self) -> Result<Vec<(HeldRecord, HeldPayload)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([b'Y']) {
            let (k, v) = item?;
            let read = || -> Result<(HeldRecord, HeldPayload), StoreError> {
                let held: HeldPayload = decode_meta("held payload", &v)?;
                Ok(((node_id_at(&k, 1)?, record_id_at(&k, 33)?), held))
            };
            match read() {
                Ok(h) => out.push(h),
                Err(e) => {
                    tracing::error!(error = %e, key = %hex::encode(&k), "a held payload's entry cannot be read; left as it is");
                }
            }
        }
        Ok(out)
    }

    /// Erases for good the held payloads whose erasure order settled by `now_ms` (see
    /// [`ERASURE_SETTLE`]): their `Y` keys become purged ranges in one durable batch, then
    /// the ranges are erased. A held payload whose order no longer stands is left to the
    /// batch that undid it (which shows the record again).
    pub fn purge_settled_erasures(&self, now_ms: u64) -> Result<SettledErasures, StoreError> {
        let mut ranges = Vec::new();
        let mut next_due_ms: Option<u64> = None;
        {
            let _write = self
                .write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(members) = self.members() else {
                return Ok(SettledErasures::default());
            };
            let decided: std::collections::HashMap<(NodeId, RecordId), u64> = members
                .membership
                .erased
                .iter()
                .map(|e| ((e.author, e.record), e.at_ms))
                .collect();
            let mut batch = sled::Batch::default();
            for ((author, rid), held) in self.held_payloads()? {
                let Some(decided_ms) = decided.get(&(author, rid)) else {
                    continue;
                };
                let due = self.erasure_due_ms(*decided_ms, held.since_ms);
                if ranges.len() == HELD_PURGED_PER_PASS && due <= now_ms {
                    // More are due than one pass erases: the next pass comes at once.
                    next_due_ms = Some(now_ms);
                    break;
                }
                if due > now_ms {
                    next_due_ms = Some(next_due_ms.map_or(due, |n| n.min(due)));
                    continue;
                }
                let at = held.payload.at;
                batch.remove(k_held(&author, &rid));
                batch.insert(k_erase(&at), &at.len.to_be_bytes()[..]);
                ranges.push(at);
            }
            if !ranges.is_empty() {
                self.db.apply_batch(batch)?;
            }
        }
        if !ranges.is_empty() {
            self.db.flush()?;
            tracing::info!(
                payloads = ranges.len(),
                "erased for good the payloads of records the members ordered erased (the orders settled)"
            );
            self.erase(&ranges)?;
        }
        Ok(SettledErasures {
            purged: ranges.len(),
            next_due_ms,
        })
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
