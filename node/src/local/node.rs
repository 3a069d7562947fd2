//! [`LocalNode`]: an opened node (config, key, store) and its markers (`restored`,
//! `offline-from`); what it answers is the trait [`crate::Reads`] (read.rs).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use spindel_protocol::{NodeId, SecretKey};

use super::dir::{
    KEY_FILE, NodeConfig, OFFLINE_MARKER, RESTORED_MARKER, read_config, read_key,
    write_file_atomically,
};
use super::error::{NodeError, io_err};
use super::reports::NodeInfo;
use crate::store::Store;

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
    pub(super) dir: PathBuf,
    pub(super) config: NodeConfig,
    pub(super) key: SecretKey,
    pub(super) store: Store,
    /// The one writer of this node's own log: choosing the next seq, signing and applying are
    /// one critical section, so concurrent publishes never sign two entries with one seq.
    pub(super) own_log: std::sync::Mutex<()>,
    /// `DIR/restored` exists: a restored node that has not caught up yet.
    pub(super) restored: std::sync::atomic::AtomicBool,
    /// `DIR/offline-from`: the first own seq signed offline and not yet acknowledged.
    pub(super) offline_from: std::sync::Mutex<Option<u64>>,
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

    /// Erases for good the payloads held for erasure orders that settled by `now_ms` (a
    /// running node's writer does this as orders come due; see [`crate::store::ERASURE_SETTLE`]).
    pub fn purge_settled_erasures(
        &self,
        now_ms: u64,
    ) -> Result<crate::store::SettledErasures, NodeError> {
        Ok(self.store.purge_settled_erasures(now_ms)?)
    }

    /// How long payloads the members ordered erased are held before they are erased for good.
    pub fn set_erasure_settle(&self, settle: std::time::Duration) {
        self.store.set_erasure_settle(settle);
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

    /// The node's secret key (for the transport's TLS identity).
    pub fn key(&self) -> &SecretKey {
        &self.key
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
}
