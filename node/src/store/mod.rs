//! The store: every author's signed log and everything derived from it, in one sled tree.
//!
//! The signed log is the source of truth; all other keys are derived from it and the full-text
//! index is rebuilt from it whenever it is missing or stale. Keys carry a one-byte prefix:
//!
//! | prefix | key                         | value                                   |
//! |--------|-----------------------------|-----------------------------------------|
//! | `L`    | author, seq (BE)            | where the entry as received ([`WireEntry`](spindel_protocol::entry::WireEntry)) is in the packs: pack, offset, length, 16 bytes BE (format 4); in a store upgraded from format 3 or 2, the older entries themselves |
//! | `P`    | author, record_id           | [`PayloadRef`]: where the current version's payload is in the packs |
//! | `Q`    | pack number (BE)            | u64 (BE): the pack's committed length   |
//! | `Z`    | pack number, offset (BE)    | u32 (BE) length: a purged range still to be erased |
//! | `Y`    | author, record_id           | [`HeldPayload`]: a payload the members ordered erased, out of every read (no `P` key) until the order settles (erase.rs) |
//! | `H`    | author                      | [`Head`](spindel_protocol::entry::Head)                              |
//! | `R`    | author, record_id           | [`RecordMeta`] (current version)        |
//! | `T`    | !updated_ms (BE), author, record_id | kind code: visible records, newest first |
//! | `A`    | author                      | [`AuthorMeta`]                          |
//! | `F`    | author                      | [`ForkProof`]: both signed headers      |
//! | `O`    | aggregator                  | empty: allowed to mirror this aggregator (`allow --mirror`); never an author, never in the admission list |
//! | `C`    | refusal reason              | u64 count                               |
//! | `D`    | author, refusal reason      | u64 count: refusals of that author's entries |
//! | `S`    | author                      | u64 ms (BE): when this node last accepted an entry of the author (local observation, not derived from the log) |
//! | `E`    | author, record_id, seq (BE) | u64 (BE): the record's own version number that entry made (1, 2, 3 ...); its versions are listed and numbered without reading the log (derived; rebuilt on open when `Mhistory` is not the generation) |
//! | `W`    | aggregator, counter (BE), hash | a checkpoint received (a region) or signed (an aggregator), as received (witness.rs) |
//! | `K`    | aggregator, counter (BE), witness | a cosignature of that checkpoint                  |
//! | `G`    | aggregator                  | what this node remembers of the aggregator's checkpoints (`AggregatorView`) |
//! | `X`    | finding kind, aggregator, region | a finding with when it was first and last seen, and healed |
//! | `N`    | author, record_id           | a membership act ([`Act`](spindel_protocol::membership::Act)): what it decides and when, and when it was withdrawn; kept after its payload is purged, so a withdrawal replays at its time |
//! | `M`    | name                        | store metadata (`generation`, `format`, `history`, `charter`: the adopted charter file and this node's key) |
//!
//! **Nothing a record says is written to sled** (it keeps removed values in its files until it
//! happens to rewrite them): payloads live in the packs of `crate::payloads`, which can erase
//! a range for good, and a record's tags are kept in memory only (built from the payloads on
//! first use). Each record keeps the payload of its current version only, owned by its author:
//! a new version or a tombstone purges the previous payload of *that author's* record and
//! nothing else. The answers index (which experiences answer a record, `types.rs`) is in
//! memory too, built the same way. Purged ranges are listed under `Z` in the same atomic batch and erased right
//! after it is durable, and on every open before the store is used.
//!
//! Writes go through [`Store::apply`]: entries are checked one by one with
//! [`spindel_protocol::ingest::check`] against the store plus the batch so far, and everything a
//! batch changes is written with one atomic `apply_batch`, then flushed before `apply` returns.
//! Only one batch is prepared at a time (a mutex), so check-then-write cannot interleave.
//!
//! Its files, each below the ones that use it: `keys.rs` (the key layout) and `types.rs`
//! (errors and stored values); `index_queue.rs` (the full-text commit queue); `handle.rs`
//! ([`Store`] itself); `reads.rs`; `history.rs` (the versions index) and `erase.rs` (purged
//! ranges); `open.rs` (open, format upgrade, rebuilds); `overlay.rs` (a batch being checked)
//! and `apply.rs`; `admissions.rs` (the other writes: admissions, vouches, refusals, forks); `members.rs` (the
//! charter and the membership its acts give, decision 0041);
//! `witness.rs` (checkpoints, cosignatures and findings: this node's own observation).

mod admissions;
mod apply;
mod calendar;
mod erase;
mod handle;
mod history;
mod index_queue;
mod keys;
mod members;
mod open;
mod overlay;
mod reads;
mod tally;
mod types;
mod witness;

pub use apply::{ApplyOptions, Outcome, VERIFY_RUN_MIN, Verified};
pub use calendar::{Calendar, EventKey, Span};
pub use erase::{ABORT_BEFORE_ERASE, ERASURE_SETTLE, HELD_PURGED_PER_PASS, SettledErasures};
pub use handle::Store;
pub use index_queue::{
    EXPUNGE_INTERVAL_MS, INDEX_COMMIT_INTERVAL_MS, INDEX_PENDING_BYTES_MAX, INDEX_RETRY_MAX_MS,
    INDEX_RETRY_MIN_MS, index_retry_wait,
};
pub use keys::{STORE_FORMAT, TimeKey, search_key};
pub use members::Members;
pub use open::SLED_CACHE_BYTES;
pub use tally::{Counted, FacetFilter, FacetTally, SroiSummary, Tally, in_key_order};
pub use types::{
    AdmissionChanges, AnswerKey, Answers, AuthorMeta, ForkProof, HeldPayload, Incoming, PayloadRef,
    RecordMeta, StoreError, TextHit, Version, unnamed_region,
};
pub use witness::{CHECKPOINTS_KEPT, COSIGNATURES_KEPT, KeptCheckpoint, KeptFinding, WitnessWrite};
