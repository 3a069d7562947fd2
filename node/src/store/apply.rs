//! [`Store::apply`]: a batch's signatures checked ([`Store::verify`], on any thread), then
//! every entry checked by ingest against the store plus the batch so far and written in one
//! atomic batch under the write lock ([`Store::apply_verified`]).

use std::collections::HashMap;

use spindel_protocol::NodeId;
use spindel_protocol::ingest::{self, AuthorView, Refusal};
use spindel_protocol::keys::{Verifier, VerifyError};

use super::erase::ABORT_BEFORE_ERASE;
use super::handle::Store;
use super::keys::k_received;
use super::overlay::{Overlay, View};
use super::types::{Incoming, StoreError};

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

/// Entries a thread of [`verify_all`] checks at least: below twice this, one thread does all.
pub const VERIFY_RUN_MIN: usize = 32;

/// Threads checking signatures beside the threads that asked, over every batch of every
/// session at once: at most the machine's cores less one, so a peer's batches cannot start
/// more threads than the machine runs.
static VERIFY_HELPERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Helper threads reserved by one [`verify_all`], given back when dropped (a panic too).
struct Helpers(usize);

impl Helpers {
    /// Up to `wanted` helpers, as many as are free.
    fn reserve(wanted: usize) -> Helpers {
        use std::sync::atomic::Ordering;
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let limit = CORES
            .get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
            .saturating_sub(1);
        let mut got = 0;
        let _ = VERIFY_HELPERS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |busy| {
            got = wanted.min(limit.saturating_sub(busy));
            Some(busy + got)
        });
        Helpers(got)
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        VERIFY_HELPERS.fetch_sub(self.0, std::sync::atomic::Ordering::AcqRel);
    }
}

/// `verify_strict` of each entry `batch[i]`, `i` in `which`, in order: split into runs of at
/// least [`VERIFY_RUN_MIN`] entries, one on this thread and the others on free helper threads
/// ([`VERIFY_HELPERS`]), each run decoding an author's key once. A helper that cannot be
/// started leaves its run to this thread.
fn verify_all(batch: &[Incoming], which: &[usize]) -> Vec<Result<(), VerifyError>> {
    let verify_run = |run: &[usize]| -> Vec<Result<(), VerifyError>> {
        let mut keys: HashMap<NodeId, Result<Verifier, VerifyError>> = HashMap::new();
        run.iter()
            .map(|i| {
                let entry = &batch[*i].entry;
                let author = entry.header().author;
                match keys.entry(author).or_insert_with(|| author.verifier()) {
                    Ok(verifier) => entry.verify_with(verifier),
                    Err(e) => Err(*e),
                }
            })
            .collect()
    };
    let helpers = Helpers::reserve((which.len() / VERIFY_RUN_MIN).saturating_sub(1));
    if helpers.0 == 0 {
        return verify_run(which);
    }
    let per_run = which.len().div_ceil(helpers.0 + 1);
    std::thread::scope(|scope| {
        let mut runs = which.chunks(per_run);
        let own = runs.next().unwrap_or_default();
        let started: Vec<_> = runs
            .map(|run| {
                (
                    run,
                    std::thread::Builder::new()
                        .name("spindel-verify".into())
                        .spawn_scoped(scope, move || verify_run(run)),
                )
            })
            .collect();
        let mut out = verify_run(own);
        for (run, thread) in started {
            match thread {
                Ok(t) => out.extend(
                    t.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                ),
                Err(_) => out.extend(verify_run(run)),
            }
        }
        out
    })
}

/// The result of one entry of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accepted,
    Refused(Refusal),
}

impl Store {
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
        let mut checked = Vec::with_capacity(batch.len());
        for (index, i) in batch.iter().enumerate() {
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
            if ok && expected_author.is_none_or(|e| e == a) {
                checked.push(index);
            }
        }
        let mut verdicts: Vec<Option<Result<(), VerifyError>>> = vec![None; batch.len()];
        for (index, verdict) in checked.iter().zip(verify_all(&batch, &checked)) {
            verdicts[*index] = Some(verdict);
        }
        Ok(Verified {
            batch,
            verdicts,
            expected_author,
        })
    }

    /// Takes down what membership cuts and erases wherever it still shows ([`Overlay`]'s
    /// `enforce_all`), durably, then erases the purged payloads.
    pub(super) fn enforce_membership(&self) -> Result<(), StoreError> {
        let guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut ov = Overlay::new(self, now_ms);
        ov.enforce_all()?;
        let committed = ov.commit()?;
        drop(guard);
        self.db.flush()?;
        if !committed.purged.is_empty() {
            tracing::info!(
                payloads = committed.purged.len(),
                "took down records that membership cuts or erases"
            );
            self.erase(&committed.purged)?;
        }
        Ok(())
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
        let mut ov = Overlay::new(self, opts.now_ms);
        let mut outcomes = Vec::with_capacity(batch.len());
        for ((index, incoming), verdict) in batch.into_iter().enumerate().zip(verdicts) {
            let header = incoming.entry.header().clone();
            // Acts of another author earlier in the batch count before this entry is checked.
            ov.settle_members(Some(&header.author))?;
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
        if self.index.is_behind() {
            // Indexing fell behind: this batch waits for the index (a failed commit stays
            // queued and is tried again by the committer).
            if let Err(e) = self.index.flush() {
                tracing::warn!(error = %e, "the full-text index could not keep up; its commit is tried again");
            }
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
}
