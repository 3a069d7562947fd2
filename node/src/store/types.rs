//! What the store says and keeps: [`StoreError`], the values stored under its keys
//! ([`RecordMeta`], [`AuthorMeta`], [`PayloadRef`], [`ForkProof`]) and their decoding; the
//! in-memory maps built from payloads ([`Answers`]; the tally is `tally.rs`).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use spindel_protocol::codec::{self, DecodeError};
use spindel_protocol::entry::{Entry, EntryError, Hash, RecordId, WireEntry};
use spindel_protocol::ingest::Refusal;
use spindel_protocol::record::{Kind, Record};
use spindel_protocol::{NodeId, RecordRef};

use super::keys::STORE_FORMAT;
use crate::payloads::Location;
use crate::search::SearchError;

/// Upper bound of a stored metadata value (tags make `RecordMeta` the largest).
pub(super) const META_BYTES_MAX: usize = 16 * 1024;

/// A store failure. Corruption names the key that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {path} is in use by another spindel process (is `spindel run` holding it?)"
    )]
    Locked { path: PathBuf, detail: String },
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot open the store {path}: {error}")]
    Open { path: PathBuf, error: String },
    #[error("payload store {path}: {source}")]
    Payloads {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the store in {path} was written by an older spindel (store format {found}, this one reads {STORE_FORMAT}): \
         it kept record contents where they cannot be erased. Keep node.key and config.toml, move store/, index/ and payloads/ \
         out of {path}, then `spindel sync --data-dir {path} --aggregator PEER` fetches the node's log back \
         (delete the old store/ once it has)"
    )]
    OldFormat { path: PathBuf, found: u64 },
    #[error(
        "the store in {path} was written by a newer spindel (store format {found}, this one reads {STORE_FORMAT}): \
         run that version, or restore a backup taken before the upgrade"
    )]
    NewerFormat { path: PathBuf, found: u64 },
    #[error("full-text index: {0}")]
    Search(#[from] SearchError),
    #[error("store is corrupt at {what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error(
        "the name {name:?} is already held by {holder}; a region's name is unique in the network"
    )]
    NameTaken { name: String, holder: String },
    #[error(
        "{max} regions are admitted already, as many as an admission list carries; disallow one first"
    )]
    TooManyAdmitted { max: usize },
    #[error("this node holds another charter ({held}); a node adopts one charter, for good")]
    OtherCharter { held: String },
    #[error(
        "this network has a charter: its regions decide who belongs, not an operator (spindel endorse NODEID --name NAME, spindel revoke NODEID --reason TEXT)"
    )]
    CharterDecides,
    #[error("entry {index} of the batch was refused: {refusal}")]
    Refused { index: usize, refusal: Refusal },
}

pub(super) fn corrupt(what: impl Into<String>, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// The current state of one record (its latest entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordMeta {
    pub kind: Kind,
    /// Seq of the latest entry of this record.
    pub seq: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub deleted: bool,
    /// Hash of the current version's payload when this node holds it; `None` when deleted,
    /// or when the version arrived without its payload.
    pub payload: Option<Hash>,
}

/// One version of a record (see [`Store::versions`](super::Store::versions)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// 1 for the record's first entry, then 2, 3, ...
    pub number: u64,
    /// Its entry in the author's log.
    pub seq: u64,
    /// When the author signed it (its clock).
    pub timestamp_ms: u64,
    /// A removal (tombstone) rather than a published version.
    pub removed: bool,
}

/// Where the payload of a record's current version is kept (the `P` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadRef {
    /// The seq of the version this payload belongs to.
    pub seq: u64,
    pub hash: Hash,
    pub at: Location,
}

/// A payload the members ordered erased, hidden from every read and held (the `Y` key) until
/// the order settles: erased for good then, shown again if the order is undone before (a
/// withdrawal or a cut signed earlier that arrives late).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldPayload {
    pub payload: PayloadRef,
    /// When this node began to hold it (its clock).
    pub since_ms: u64,
}

impl RecordMeta {
    /// The knowledge bank shows it: current, held, and knowledge (a membership act is shown
    /// on the network's pages only).
    pub fn visible(&self) -> bool {
        !self.deleted && self.payload.is_some() && !self.kind.is_membership()
    }
}

/// What the store knows of an author.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthorMeta {
    /// Entries of this author are accepted.
    pub admitted: bool,
    /// The region's name in the network: the one its aggregator admitted it under
    /// (`spindel allow --name`), learned by regions from their aggregator. The only name
    /// queries, filters, facets, the API and the pages use for it.
    pub admitted_name: Option<String>,
    /// Frozen after a proven fork: nothing more is accepted.
    pub frozen: bool,
    /// `name` of the author's current profile: what the region calls itself, a description
    /// only (never used to find or label it). Content: never written to sled, filled in from
    /// the profile's payload when read.
    #[serde(skip)]
    pub profile_name: Option<String>,
    /// `display_name` of the author's current profile (like `name`, never in sled).
    #[serde(skip)]
    pub display_name: Option<String>,
    /// The author's profile record.
    pub profile: Option<RecordId>,
}

impl AuthorMeta {
    /// The region's name: the one it was admitted under (never what its profile claims).
    pub fn label(&self) -> Option<&str> {
        self.admitted_name.as_deref()
    }

    /// How pages and lists show the region `id`: its profile's display name with its name in
    /// the network beside it ("Social ekonomi Dalarna – dalarna"), so a profile that copies
    /// another region's display name still reads as the region it is. A region without an
    /// admitted name here shows as `region-<8 hex of its key>`, never by its display name
    /// alone.
    pub fn shown(&self, id: &NodeId) -> String {
        let name = self.name_or_key(id);
        match &self.display_name {
            Some(d) if *d == name => name,
            Some(d) => format!("{d} – {name}"),
            None => name,
        }
    }

    /// The admitted name, else `region-<first 8 hex of the key>` (what `allow` without
    /// `--name` gives).
    pub fn name_or_key(&self, id: &NodeId) -> String {
        self.label()
            .map_or_else(|| unnamed_region(id), str::to_string)
    }
}

/// The name of a region admitted without one: `region-` and the first 8 hex of its key.
pub fn unnamed_region(id: &NodeId) -> String {
    format!("region-{}", &id.to_hex()[..8])
}

/// What a pinned aggregator's admission list changed at a region ([`Store::take_admissions`](super::Store::take_admissions)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdmissionChanges {
    /// Authors whose admitted name changed, with the new one (`None`: it has none now).
    pub renamed: Vec<(NodeId, Option<String>)>,
    /// Authors admitted by this list that were not admitted before.
    pub admitted: Vec<NodeId>,
    /// Authors no longer admitted: no pinned aggregator vouches for them any more.
    pub removed: Vec<NodeId>,
}

impl AdmissionChanges {
    /// Whether the list changed anything here.
    pub fn changed(&self) -> bool {
        !(self.admitted.is_empty() && self.removed.is_empty() && self.renamed.is_empty())
    }
}

/// Proof of a fork: two different signed entries of one author with the same seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkProof {
    pub seq: u64,
    pub first: WireEntry,
    pub second: WireEntry,
}

/// A full-text hit: (update time in ms, author, record).
pub type TextHit = (u64, NodeId, RecordId);

/// An entry arriving at the store, with its payload if it came along.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub entry: Entry,
    pub payload: Option<Vec<u8>>,
}

pub(super) fn node_id_at(bytes: &[u8], at: usize) -> Result<NodeId, StoreError> {
    bytes
        .get(at..at + 32)
        .and_then(|b| b.try_into().ok())
        .map(NodeId)
        .ok_or_else(|| corrupt(hex::encode(bytes), "short key"))
}

pub(super) fn record_id_at(bytes: &[u8], at: usize) -> Result<RecordId, StoreError> {
    bytes
        .get(at..at + 16)
        .and_then(|b| b.try_into().ok())
        .map(RecordId)
        .ok_or_else(|| corrupt(hex::encode(bytes), "short key"))
}

pub(super) fn decode_meta<T: Serialize + serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::decode::<T, META_BYTES_MAX>("stored value", bytes).map_err(|e| corrupt(what, e))
}

pub(super) fn u64_value(what: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| corrupt(what, "not 8 bytes"))?;
    Ok(u64::from_be_bytes(arr))
}

impl From<EntryError> for StoreError {
    fn from(e: EntryError) -> Self {
        corrupt("entry", e)
    }
}

impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> Self {
        corrupt("value", e)
    }
}

/// An answer: its author and record id.
pub type AnswerKey = (NodeId, RecordId);

/// The answers index: which visible `experience` records answer a record (their `about`),
/// found without scanning the store. Keyed by the answered record's reference, whether this
/// node holds that record or not, so an answer that arrives first shows once its record does.
/// In memory only, like the tags (a reference is something a record says, and sled keeps
/// removed values in its files): built from the payloads on first use
/// ([`Store::with_answers`](super::Store::with_answers)), kept current by every batch; a new
/// version that changes `about` moves the answer, and a deleted answer (or one whose new
/// version arrived without its payload) leaves it. Decision 0037.
#[derive(Debug, Default)]
pub struct Answers {
    by_target: HashMap<RecordRef, BTreeSet<AnswerKey>>,
    target_of: HashMap<AnswerKey, RecordRef>,
}

impl Answers {
    /// `answer` now answers `about` (`None`: it no longer shows); its earlier target forgets it.
    pub(super) fn set(&mut self, answer: AnswerKey, about: Option<RecordRef>) {
        if let Some(old) = self.target_of.remove(&answer)
            && let Some(set) = self.by_target.get_mut(&old)
        {
            set.remove(&answer);
            if set.is_empty() {
                self.by_target.remove(&old);
            }
        }
        if let Some(about) = about {
            self.target_of.insert(answer, about);
            self.by_target.entry(about).or_default().insert(answer);
        }
    }

    /// The answers to `about` (in key order; the reader sorts by time).
    pub fn to(&self, about: &RecordRef) -> Vec<AnswerKey> {
        self.by_target
            .get(about)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The record `answer` answers, if it is a visible answer.
    pub fn target(&self, answer: &AnswerKey) -> Option<RecordRef> {
        self.target_of.get(answer).copied()
    }

    /// Every visible answer and what it answers.
    pub fn all(&self) -> impl Iterator<Item = (&AnswerKey, &RecordRef)> {
        self.target_of.iter()
    }
}

/// The answer a record makes, if it is one: what a batch tells the index.
pub(super) fn about_of(record: &Record) -> Option<RecordRef> {
    match record {
        Record::Experience(e) => Some(e.about),
        _ => None,
    }
}

#[cfg(test)]
mod answers_tests {
    use super::*;

    #[test]
    fn an_answer_moves_with_its_about_and_leaves_when_hidden() {
        let mut a = Answers::default();
        let t1 = RecordRef {
            author: NodeId([1; 32]),
            record: RecordId([1; 16]),
        };
        let t2 = RecordRef {
            author: NodeId([2; 32]),
            record: RecordId([2; 16]),
        };
        let ans = (NodeId([3; 32]), RecordId([3; 16]));
        a.set(ans, Some(t1));
        assert_eq!(a.to(&t1), [ans]);
        a.set(ans, Some(t2));
        assert!(a.to(&t1).is_empty());
        assert_eq!(a.to(&t2), [ans]);
        assert_eq!(a.target(&ans), Some(t2));
        a.set(ans, None);
        assert!(a.to(&t2).is_empty() && a.target(&ans).is_none());
        assert!(a.by_target.is_empty(), "nothing is left of a hidden answer");
    }
}
