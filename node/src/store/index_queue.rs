//! The full-text index's commit queue: applied batches queue their changes, a background
//! thread commits them and merges deleted documents away, failures are retried with backoff.

use std::sync::{Arc, Mutex};

use crate::search::{DocChange, SearchError, SearchIndex};

/// How often queued full-text changes are committed in the background.
pub const INDEX_COMMIT_INTERVAL_MS: u64 = 200;
/// Segments of the full-text index holding deleted documents are merged away at most this
/// often (the erasure promise is 60 s; docs/data-protection.md).
pub const EXPUNGE_INTERVAL_MS: u64 = 5_000;

/// Bytes of text (and keys) queued for the full-text index past which the writer commits them
/// itself, waiting for the index: when indexing falls behind (a join, a large import), the
/// queue's memory stays bounded and the writer slows to the index's pace.
pub const INDEX_PENDING_BYTES_MAX: usize = 8 * 1024 * 1024;

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
pub(super) struct IndexQueue {
    pub(super) search: SearchIndex,
    pending: Mutex<(Vec<DocChange>, u64)>,
    /// Bytes of text and keys in `pending`.
    pending_bytes: std::sync::atomic::AtomicUsize,
    /// Held while a commit runs, so commits stay in order; `pending` is not, so the writer
    /// queues the next batch's changes while tantivy indexes and syncs the last ones.
    committing: Mutex<()>,
    /// How many changes wait in `pending` (read by `/metrics` without waiting for a commit).
    pending_count: std::sync::atomic::AtomicU64,
    commit_failures: std::sync::atomic::AtomicU64,
    pub(super) stop: std::sync::atomic::AtomicBool,
}

/// Bytes of text and keys `changes` hold.
fn bytes_of(changes: &[DocChange]) -> usize {
    changes
        .iter()
        .map(|c| c.key.len() + c.text.as_ref().map_or(0, String::len))
        .sum()
}

impl IndexQueue {
    /// A queue over `search` with nothing pending.
    pub(super) fn new(search: SearchIndex) -> IndexQueue {
        IndexQueue {
            search,
            pending: Mutex::new((Vec::new(), 0)),
            pending_bytes: std::sync::atomic::AtomicUsize::new(0),
            committing: Mutex::new(()),
            pending_count: std::sync::atomic::AtomicU64::new(0),
            commit_failures: std::sync::atomic::AtomicU64::new(0),
            stop: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(super) fn enqueue(&self, changes: Vec<DocChange>, generation: u64) {
        let mut p = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.pending_bytes
            .fetch_add(bytes_of(&changes), std::sync::atomic::Ordering::Relaxed);
        p.0.extend(changes);
        p.1 = generation;
        self.pending_count
            .store(p.0.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether more than [`INDEX_PENDING_BYTES_MAX`] wait to be committed.
    pub(super) fn is_behind(&self) -> bool {
        self.pending_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
            > INDEX_PENDING_BYTES_MAX
    }

    /// Commits pending changes, if any.
    pub(super) fn flush(&self) -> Result<(), SearchError> {
        use std::sync::atomic::Ordering;
        let _commit = self
            .committing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (changes, generation) = {
            let mut p = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if p.0.is_empty() {
                return Ok(());
            }
            self.pending_count.store(0, Ordering::Relaxed);
            self.pending_bytes.store(0, Ordering::Relaxed);
            (std::mem::take(&mut p.0), p.1)
        };
        // The changes of a failed commit go back before any queued since (a delete must never
        // be lost while later commits stamp the index as up to date). Applying them again is
        // harmless: each change deletes every earlier document of its record before it adds
        // one.
        self.search.apply(&changes, generation).inspect_err(|_| {
            let mut p = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut requeued = changes;
            requeued.append(&mut p.0);
            p.0 = requeued;
            self.pending_bytes.store(bytes_of(&p.0), Ordering::Relaxed);
            self.pending_count
                .store(p.0.len() as u64, Ordering::Relaxed);
            self.commit_failures.fetch_add(1, Ordering::Relaxed);
        })
    }

    pub(super) fn health(&self) -> crate::search::IndexHealth {
        use std::sync::atomic::Ordering;
        crate::search::IndexHealth {
            changes_pending: self.pending_count.load(Ordering::Relaxed),
            commit_failures: self.commit_failures.load(Ordering::Relaxed),
            ..self.search.health()
        }
    }

    pub(super) fn run(queue: Arc<IndexQueue>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
