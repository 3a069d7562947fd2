//! spindel-protocol: the pure, deterministic core of spindel.
//!
//! Everything here is a function of its inputs: time (`now_ms`, a sync session's `Instant`),
//! randomness (an injected `CryptoRngCore`) and storage (the [`ingest::AuthorView`] trait) come
//! in as parameters.
//! This crate never touches the network, the file system or the clock; a test in
//! `spindel-tests` reads `cargo metadata` to keep it so.
//!
//! - [`keys`]: [`NodeId`] and [`SecretKey`] over ed25519-dalek, `verify_strict` only.
//! - [`codec`]: the one bincode configuration, size-capped decoding, canonical form.
//! - [`entry`]: headers, signed entries, payloads, the exact bytes that are signed.
//! - [`record`]: record kinds and their validation (docs/records.md); [`fields`]: the
//!   same fields as people read them (docs/records.md is generated from it).
//! - [`indicator`]: the SROI proxy bank's record (outcome, indicator, proxy, value).
//! - [`experience`]: the `experience` kind, one region's answer to a record.
//! - [`reference`]: `NODEID/RECORD_ID`, one record naming another in any region's log.
//! - [`ingest`]: the single accept/refuse decision for an entry.
//! - [`sync`]: the wire messages, frames, and the sync session that decides every frame.
//! - [`checkpoint`]: an aggregator's signed checkpoints and the regions' cosignatures;
//!   [`witness`]: what a region checks of them and what it finds.
//! - [`charter`]: a network's signed charter (founders, threshold); [`membership`]: who
//!   belongs, replayed from the regions' endorsements and revocations.
//! - [`time`]: RFC 3339 formatting of millisecond timestamps.

pub mod charter;
pub mod checkpoint;
pub mod codec;
pub mod entry;
pub mod event;
pub mod experience;
pub mod fields;
pub mod fuzz;
pub mod indicator;
pub mod ingest;
pub mod keys;
pub mod membership;
pub mod record;
pub mod reference;
pub mod schema;
pub mod sync;
pub mod time;
pub mod witness;

pub use entry::{Entry, Hash, Header, Op, RecordId};
pub use keys::{NodeId, SecretKey};
pub use record::Kind;
pub use reference::RecordRef;
