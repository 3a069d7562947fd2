//! [`Store`] itself: the sled tree, the payload packs, the full-text queue, the locks and the
//! in-memory maps built from payloads; dropping it commits the index and flushes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use spindel_protocol::NodeId;

use super::index_queue::IndexQueue;
use super::types::StoreError;
use crate::payloads::{PAYLOADS_DIR, Packs};

/// The node's store: sled for the log and its derived keys, tantivy for full text.
pub struct Store {
    pub(super) db: sled::Db,
    pub(super) packs: Packs,
    pub(super) index: Arc<IndexQueue>,
    pub(super) committer: Option<std::thread::JoinHandle<()>>,
    pub(super) write: Mutex<()>,
    /// Serialises erasure passes (after each batch, and on open).
    pub(super) erasing: Mutex<()>,
    /// Every visible record's kind, tags and SROI ratio, counted; built from the payloads on
    /// first use (never in sled).
    pub(super) tally: std::sync::RwLock<Option<super::tally::Tally>>,
    /// Each author's names from its current profile, built from the payloads on first use
    /// (never in sled).
    pub(super) profile_names: std::sync::RwLock<Option<ProfileNames>>,
    /// Visible events by start and end, built from the payloads on first use (never in sled).
    pub(super) calendar: std::sync::RwLock<Option<super::calendar::Calendar>>,
    /// The answers index, built from the payloads on first use (never in sled).
    pub(super) answers: std::sync::RwLock<Option<super::types::Answers>>,
    /// The adopted charter and the membership its acts give (`None`: no charter).
    pub(super) members: std::sync::RwLock<Option<Arc<super::members::Members>>>,
    /// Moves whenever membership changes (the writer tells sessions, as after `allow`).
    pub(super) members_generation: std::sync::atomic::AtomicU64,
    /// How long a payload the members ordered erased is held after the order's decision (or
    /// after this node held it, if later) before it is erased for good (erase.rs).
    pub(super) erasure_settle_ms: std::sync::atomic::AtomicU64,
}

/// `name` and `display_name` of an author's current, visible profile.
pub(super) type ProfileName = (Option<String>, String);
/// Every author's [`ProfileName`].
pub(super) type ProfileNames = HashMap<NodeId, ProfileName>;

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

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    pub(super) fn packs_error(&self, source: std::io::Error) -> StoreError {
        StoreError::Payloads {
            path: PathBuf::from(PAYLOADS_DIR),
            source,
        }
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}
