//! The single accept/refuse decision for an entry, used by local publish, the store and sync.
//!
//! [`check`] is pure: the author's stored state comes in through [`AuthorView`], time as
//! `now_ms`. It returns what to store ([`Accepted`]) or a [`Refusal`] whose [`Refusal::reason`]
//! is the counter name shown in `status`.

use crate::entry::{Entry, Hash, Head, Op, PAYLOAD_BYTES_MAX, Payload, RecordId};
use crate::keys::NodeId;
use crate::record::{Kind, Record, SchemaError};

/// How far an entry's timestamp may be ahead of the receiver's clock.
pub const FUTURE_SKEW_MS_MAX: u64 = 5 * 60 * 1000;

/// Entries one author's log may hold on any node: versions and tombstones included, so no
/// region can fill every node's disk with headers (each about 200 bytes: at most ~400 MB of
/// headers per author). Far above what a region writes in decades (a busy region: a few
/// thousand entries a year).
pub const AUTHOR_ENTRIES_MAX: u64 = 2_000_000;

/// Signed payload bytes of one author's current versions (deleted records and older versions
/// count nothing) that a node takes: with [`AUTHOR_ENTRIES_MAX`] it bounds what one region can
/// make every node store. Counted from the signed headers' `payload_len`, so every node with the
/// same log counts the same and refuses the same entry. A busy region's whole knowledge bank is
/// a few tens of MB.
pub const AUTHOR_PAYLOAD_BYTES_MAX: u64 = 1 << 30;

/// Membership acts (endorsements and revocations, withdrawn ones too) one author may make:
/// every act is replayed by every node whenever membership changes, so one member cannot make
/// that cost grow without bound. A region acts a few times a year.
pub const ACTS_PER_AUTHOR_MAX: u64 = 500;

/// Erasure orders (withdrawn ones too) one author may sign, a quota apart from
/// [`ACTS_PER_AUTHOR_MAX`]: a region gone with its key may leave hundreds of records about
/// people behind, each needing its own order, and those must not use up the votes that admit
/// and revoke regions. An order costs the replay a map insert: at this bound eight regions'
/// 16,000 orders replay in about 13 ms, four times their 4,000 endorsements at their quota
/// (`cargo bench -p spindel-protocol --bench membership`).
pub const ERASURE_ORDERS_PER_AUTHOR_MAX: u64 = 2000;

/// What the receiver knows of one record of the author.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordState {
    pub kind: Kind,
    pub deleted: bool,
    /// Seq of the record's current (latest) entry.
    pub seq: u64,
    /// The current version's payload is held (false: it arrived without one).
    pub payload_held: bool,
    /// The current version's signed payload length (0 for a tombstone).
    pub payload_len: u32,
}

impl RecordState {
    /// The record's state once `header` is its current entry.
    pub fn of(header: &crate::entry::Header, payload_held: bool) -> RecordState {
        RecordState {
            kind: header.kind,
            deleted: header.op == Op::Tombstone,
            seq: header.seq,
            payload_held,
            payload_len: header.payload_len,
        }
    }
}

/// The receiver's view of the entry's author, as stored.
pub trait AuthorView {
    /// May this node accept entries of the author at all (admitted region, own key, or known
    /// through the aggregate)?
    fn admitted(&self) -> bool;
    /// The author is frozen after a proven fork.
    fn frozen(&self) -> bool;
    fn head(&self) -> Option<Head>;
    /// The stored entry hash at `seq` (`seq <= head.seq`).
    fn hash_at(&self, seq: u64) -> Option<Hash>;
    fn record(&self, record_id: &RecordId) -> Option<RecordState>;
    /// The record id of the author's profile, once one was accepted (a region has one).
    fn profile(&self) -> Option<RecordId>;
    /// Sum of the signed payload lengths of the author's current versions.
    fn payload_bytes(&self) -> u64;
    /// The signed time of the author's head entry: a log's times never go back.
    fn head_time(&self) -> Option<u64>;
    /// How many membership acts the author has made: with `erasures`, its erasure orders
    /// (see [`ERASURE_ORDERS_PER_AUTHOR_MAX`]); without, its other acts (see
    /// [`ACTS_PER_AUTHOR_MAX`]).
    fn acts(&self, erasures: bool) -> u64;
}

/// Why an entry was refused. Every variant is reached by a test in this module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("author {0} is not admitted here")]
    NotAdmitted(NodeId),
    #[error("entry is by {got}, but only entries by {expected} are accepted here")]
    WrongAuthor { expected: NodeId, got: NodeId },
    #[error("author {0} is frozen after a fork")]
    Frozen(NodeId),
    #[error("signature does not verify (verify_strict) over the received header bytes")]
    BadSignature,
    #[error("seq {got} leaves a gap: the next seq is {expected}")]
    Gap { expected: u64, got: u64 },
    #[error("seq {0} is already stored (replay)")]
    Replay(u64),
    #[error("prev does not match the stored head at seq {0}")]
    PrevMismatch(u64),
    #[error("fork: a different entry with seq {seq} is already stored")]
    Fork { seq: u64, existing: Hash },
    #[error("timestamp {timestamp_ms} is more than 5 minutes ahead of now ({now_ms})")]
    FromTheFuture { timestamp_ms: u64, now_ms: u64 },
    #[error("record {0} is deleted; a deleted record never comes back")]
    Tombstoned(RecordId),
    #[error("record {record_id} is of kind {stored}, not {got}")]
    KindChanged {
        record_id: RecordId,
        stored: Kind,
        got: Kind,
    },
    #[error("tombstone for unknown record {0}")]
    UnknownRecord(RecordId),
    #[error("record {0} is a membership act: it is never edited, only deleted (withdrawn)")]
    ActEdited(RecordId),
    #[error(
        "the author has made {0} membership acts, the most one author may (ACTS_PER_AUTHOR_MAX)"
    )]
    ActQuota(u64),
    #[error(
        "the author has signed {0} erasure orders, the most one author may (ERASURE_ORDERS_PER_AUTHOR_MAX)"
    )]
    ErasureQuota(u64),
    #[error("a membership act sent by its author without its payload counts nowhere")]
    ActWithoutPayload,
    #[error(
        "timestamp {got} is before the author's previous entry's ({previous}): a log's times never go back"
    )]
    TimeWentBack { previous: u64, got: u64 },
    #[error(
        "a rotation (an endorsement replacing its own author) names upto {upto:?}, not its own seq {seq}: the rotation entry is the old key's last"
    )]
    RotationUpto { seq: u64, upto: Option<u64> },
    #[error("tombstone carries a payload hash or length")]
    TombstoneWithPayload,
    #[error("payload is {len} bytes, over the limit of {PAYLOAD_BYTES_MAX}")]
    PayloadTooLarge { len: u64 },
    #[error("payload length {got} does not match the signed length {signed}")]
    PayloadSizeMismatch { signed: u32, got: usize },
    #[error("payload does not match the signed hash")]
    PayloadHashMismatch,
    #[error("payload is malformed: {0}")]
    PayloadMalformed(String),
    #[error("payload breaks the schema: {0}")]
    Schema(#[from] SchemaError),
    #[error("a region has one profile ({existing}); record {got} would be a second")]
    SecondProfile { existing: RecordId, got: RecordId },
    #[error("profile {0} cannot be deleted; a region's profile is edited, never removed")]
    ProfileDeleted(RecordId),
    #[error("seq {0} is over the limit of {AUTHOR_ENTRIES_MAX} entries per author")]
    AuthorQuota(u64),
    #[error(
        "the author's current records would hold {would} payload bytes, over the limit of \
         {AUTHOR_PAYLOAD_BYTES_MAX} per author (deleting records frees room)"
    )]
    PayloadQuota { would: u64 },
}

impl Refusal {
    /// A stable snake_case name, used as the refusal counter key.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotAdmitted(_) => "not_admitted",
            Refusal::WrongAuthor { .. } => "wrong_author",
            Refusal::Frozen(_) => "frozen",
            Refusal::BadSignature => "bad_signature",
            Refusal::Gap { .. } => "gap",
            Refusal::Replay(_) => "replay",
            Refusal::PrevMismatch(_) => "prev_mismatch",
            Refusal::Fork { .. } => "fork",
            Refusal::FromTheFuture { .. } => "future_timestamp",
            Refusal::Tombstoned(_) => "tombstoned",
            Refusal::KindChanged { .. } => "kind_changed",
            Refusal::UnknownRecord(_) => "unknown_record",
            Refusal::ActEdited(_) => "act_edited",
            Refusal::ActQuota(_) => "act_quota",
            Refusal::ErasureQuota(_) => "erasure_quota",
            Refusal::ActWithoutPayload => "act_without_payload",
            Refusal::TimeWentBack { .. } => "time_went_back",
            Refusal::RotationUpto { .. } => "rotation_upto",
            Refusal::TombstoneWithPayload => "tombstone_with_payload",
            Refusal::PayloadTooLarge { .. } => "payload_too_large",
            Refusal::PayloadSizeMismatch { .. } => "payload_size_mismatch",
            Refusal::PayloadHashMismatch => "payload_hash_mismatch",
            Refusal::PayloadMalformed(_) => "payload_malformed",
            Refusal::Schema(_) => "schema",
            Refusal::SecondProfile { .. } => "second_profile",
            Refusal::ProfileDeleted(_) => "profile_deleted",
            Refusal::AuthorQuota(_) => "author_quota",
            Refusal::PayloadQuota { .. } => "payload_quota",
        }
    }
}

/// Why a fork proof was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForkProofError {
    #[error("an entry of the proof is malformed: {0}")]
    Malformed(String),
    #[error("a signature of the proof does not verify")]
    BadSignature,
    #[error("the two entries are by different authors or have different seqs")]
    NotTwins,
    #[error("the two entries are the same entry")]
    Same,
}

/// Checks a fork proof: two entries, each signed (`verify_strict`) by the same author over
/// its received header bytes, with the same seq and different hashes. Only the key holder can
/// make one, so a valid proof from anyone freezes that author. Returns the author and seq.
pub fn check_fork_proof(first: &Entry, second: &Entry) -> Result<(NodeId, u64), ForkProofError> {
    let (a, b) = (first.header(), second.header());
    if a.author != b.author || a.seq != b.seq {
        return Err(ForkProofError::NotTwins);
    }
    if first.hash() == second.hash() {
        return Err(ForkProofError::Same);
    }
    first
        .verify()
        .and_then(|()| second.verify())
        .map_err(|_| ForkProofError::BadSignature)?;
    Ok((a.author, a.seq))
}

/// An accepted entry, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The validated record of a `Put` whose payload came along; `None` for a tombstone or a
    /// put whose payload was purged at the source (the header stays verifiable without it).
    pub record: Option<Record>,
    /// The entry is already stored without its payload and is still its record's current
    /// version: this payload completes it (the log does not grow).
    pub completes: bool,
}

/// Decides whether `entry` (with its `payload`, if it came along) may be appended.
///
/// `expected_author`: when set, only that author's entries are accepted (a region pushing its
/// own log). Checks run in this order: author, signature, seq and prev, time, record, payload.
pub fn check(
    view: &impl AuthorView,
    expected_author: Option<NodeId>,
    now_ms: u64,
    entry: &Entry,
    payload: Option<&[u8]>,
) -> Result<Accepted, Refusal> {
    check_verified(
        view,
        expected_author,
        now_ms,
        entry,
        payload,
        entry.verify(),
    )
}

/// [`check`] with the signature verdict computed beforehand: `signature` must be
/// `entry.verify()` (`verify_strict` over the received header bytes). This lets a store verify
/// a batch's signatures in parallel, outside its write lock; the rules are the same.
pub fn check_verified(
    view: &impl AuthorView,
    expected_author: Option<NodeId>,
    now_ms: u64,
    entry: &Entry,
    payload: Option<&[u8]>,
    signature: Result<(), crate::keys::VerifyError>,
) -> Result<Accepted, Refusal> {
    let header = entry.header();
    if let Some(expected) = expected_author
        && expected != header.author
    {
        return Err(Refusal::WrongAuthor {
            expected,
            got: header.author,
        });
    }
    if !view.admitted() {
        return Err(Refusal::NotAdmitted(header.author));
    }
    if view.frozen() {
        return Err(Refusal::Frozen(header.author));
    }
    if header.seq > AUTHOR_ENTRIES_MAX {
        return Err(Refusal::AuthorQuota(header.seq));
    }
    signature.map_err(|_| Refusal::BadSignature)?;

    let (next, prev) = match view.head() {
        Some(head) => (head.seq + 1, head.hash),
        None => (1, Hash::ZERO),
    };
    if header.seq < next {
        return match view.hash_at(header.seq) {
            Some(existing) if existing == entry.hash() => match (header.op, payload) {
                // The same signed entry again, now with its payload: it completes a put that
                // arrived without one, but only while that put is the record's current version
                // (a superseded or deleted version is never completed).
                (Op::Put, Some(bytes))
                    if view
                        .record(&header.record_id)
                        .is_some_and(|r| r.seq == header.seq && !r.deleted && !r.payload_held) =>
                {
                    let record = check_payload(header, bytes)?;
                    Ok(Accepted {
                        record: Some(record),
                        completes: true,
                    })
                }
                _ => Err(Refusal::Replay(header.seq)),
            },
            Some(existing) => Err(Refusal::Fork {
                seq: header.seq,
                existing,
            }),
            None => Err(Refusal::Replay(header.seq)),
        };
    }
    if header.seq > next {
        return Err(Refusal::Gap {
            expected: next,
            got: header.seq,
        });
    }
    if header.prev != prev {
        return Err(Refusal::PrevMismatch(header.seq));
    }
    if header.timestamp_ms > now_ms.saturating_add(FUTURE_SKEW_MS_MAX) {
        return Err(Refusal::FromTheFuture {
            timestamp_ms: header.timestamp_ms,
            now_ms,
        });
    }
    // Times only go forward, so an act cannot be dated back past entries signed before it
    // (a replaced or revoked key cannot vote as of a time before its last entry).
    if let Some(previous) = view.head_time()
        && header.timestamp_ms < previous
    {
        return Err(Refusal::TimeWentBack {
            previous,
            got: header.timestamp_ms,
        });
    }

    let stored = view.record(&header.record_id);
    if let Some(state) = stored {
        if state.deleted {
            return Err(Refusal::Tombstoned(header.record_id));
        }
        if state.kind != header.kind {
            return Err(Refusal::KindChanged {
                record_id: header.record_id,
                stored: state.kind,
                got: header.kind,
            });
        }
        if header.kind.is_membership() && header.op == Op::Put {
            return Err(Refusal::ActEdited(header.record_id));
        }
    }

    match header.op {
        Op::Tombstone => {
            if header.payload_hash != Hash::ZERO || header.payload_len != 0 {
                return Err(Refusal::TombstoneWithPayload);
            }
            match stored {
                None => return Err(Refusal::UnknownRecord(header.record_id)),
                Some(state) if state.kind == Kind::Profile => {
                    return Err(Refusal::ProfileDeleted(header.record_id));
                }
                Some(_) => {}
            }
            Ok(Accepted {
                record: None,
                completes: false,
            })
        }
        Op::Put => {
            if header.kind.is_membership() {
                if header.kind == Kind::Erasure {
                    let made = view.acts(true);
                    if made >= ERASURE_ORDERS_PER_AUTHOR_MAX {
                        return Err(Refusal::ErasureQuota(made));
                    }
                } else {
                    let made = view.acts(false);
                    if made >= ACTS_PER_AUTHOR_MAX {
                        return Err(Refusal::ActQuota(made));
                    }
                }
                // From its author an act comes whole: one sent without its payload to some
                // aggregators would count on some nodes and not others.
                if payload.is_none() && expected_author == Some(header.author) {
                    return Err(Refusal::ActWithoutPayload);
                }
            }
            if header.kind == Kind::Profile
                && let Some(existing) = view.profile()
                && existing != header.record_id
            {
                return Err(Refusal::SecondProfile {
                    existing,
                    got: header.record_id,
                });
            }
            if header.payload_len as usize > PAYLOAD_BYTES_MAX {
                return Err(Refusal::PayloadTooLarge {
                    len: u64::from(header.payload_len),
                });
            }
            // A new version replaces the current one's bytes.
            let replaced = stored.map_or(0, |s| u64::from(s.payload_len));
            let would =
                view.payload_bytes().saturating_sub(replaced) + u64::from(header.payload_len);
            if would > AUTHOR_PAYLOAD_BYTES_MAX {
                return Err(Refusal::PayloadQuota { would });
            }
            let record = match payload {
                Some(bytes) => Some(check_payload(header, bytes)?),
                None => None,
            };
            Ok(Accepted {
                record,
                completes: false,
            })
        }
    }
}

/// The payload of a put: signed length and hash, then its form and its kind's schema.
fn check_payload(header: &crate::entry::Header, bytes: &[u8]) -> Result<Record, Refusal> {
    if bytes.len() != header.payload_len as usize {
        return Err(Refusal::PayloadSizeMismatch {
            signed: header.payload_len,
            got: bytes.len(),
        });
    }
    if Hash::of(bytes) != header.payload_hash {
        return Err(Refusal::PayloadHashMismatch);
    }
    let decoded = Payload::decode(bytes).map_err(|e| Refusal::PayloadMalformed(e.to_string()))?;
    let record = Record::from_json(header.kind, &decoded.body)?;
    // A rotation says where the old key's log ends: at the rotation entry itself.
    if let Record::Endorsement(e) = &record
        && e.is_rotation_by(&header.author)
        && e.upto != Some(header.seq)
    {
        return Err(Refusal::RotationUpto {
            seq: header.seq,
            upto: e.upto,
        });
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::entry::{Header, next_header};
    use crate::keys::SecretKey;

    const NOW: u64 = 1_800_000_000_000;

    /// An in-memory author log, the model the store must agree with.
    #[derive(Default)]
    struct Log {
        admitted: bool,
        frozen: bool,
        entries: Vec<Entry>,
        records: BTreeMap<RecordId, RecordState>,
        profile: Option<RecordId>,
        /// Payload bytes of records this log does not list (to bring it near the quota).
        base_bytes: u64,
        /// Acts this log does not hold (to bring it near the acts quota).
        acts: u64,
        /// Erasure orders this log does not hold (to bring it near their quota).
        erasures: u64,
    }

    impl AuthorView for Log {
        fn admitted(&self) -> bool {
            self.admitted
        }
        fn frozen(&self) -> bool {
            self.frozen
        }
        fn head(&self) -> Option<Head> {
            self.entries.last().map(|e| Head {
                seq: e.header().seq,
                hash: e.hash(),
            })
        }
        fn hash_at(&self, seq: u64) -> Option<Hash> {
            self.entries
                .get(seq.checked_sub(1)? as usize)
                .map(Entry::hash)
        }
        fn record(&self, id: &RecordId) -> Option<RecordState> {
            self.records.get(id).copied()
        }
        fn profile(&self) -> Option<RecordId> {
            self.profile
        }
        fn payload_bytes(&self) -> u64 {
            self.base_bytes
                + self
                    .records
                    .values()
                    .map(|r| u64::from(r.payload_len))
                    .sum::<u64>()
        }
        fn head_time(&self) -> Option<u64> {
            self.entries.last().map(|e| e.header().timestamp_ms)
        }
        fn acts(&self, erasures: bool) -> u64 {
            (if erasures { self.erasures } else { self.acts })
                + self
                    .entries
                    .iter()
                    .filter(|e| {
                        let h = e.header();
                        h.kind.is_membership()
                            && h.op == Op::Put
                            && (h.kind == Kind::Erasure) == erasures
                    })
                    .count() as u64
        }
    }

    impl Log {
        fn apply(&mut self, entry: Entry) {
            let held = entry.header().op == Op::Put;
            self.apply_held(entry, held);
        }

        fn apply_held(&mut self, entry: Entry, payload_held: bool) {
            let h = entry.header();
            if h.kind == Kind::Profile {
                self.profile = Some(h.record_id);
            }
            self.records
                .insert(h.record_id, RecordState::of(h, payload_held));
            self.entries.push(entry);
        }
    }

    fn key() -> SecretKey {
        SecretKey::from_bytes(&[1; 32])
    }

    fn payload(body: &str) -> Vec<u8> {
        crate::codec::encode(&Payload {
            salt: [5; 16],
            body: body.to_string(),
        })
    }

    const METHOD: &str = r#"{"title":"Metod","summary":"Kort"}"#;

    fn put(log: &Log, rid: RecordId, body: &str) -> (Entry, Vec<u8>) {
        let p = payload(body);
        let h = next_header(
            key().node_id(),
            log.head(),
            NOW,
            Kind::Method,
            rid,
            Some(&p),
        );
        (Entry::sign(&key(), h), p)
    }

    /// The author's tombstone of `rid`, next in its log.
    fn tombstone(log: &Log, rid: RecordId) -> Entry {
        resign(next_header(
            key().node_id(),
            log.head(),
            NOW,
            Kind::Method,
            rid,
            None,
        ))
    }

    fn admitted_log() -> Log {
        Log {
            admitted: true,
            ..Log::default()
        }
    }

    fn refuse(log: &Log, entry: &Entry, payload: Option<&[u8]>) -> &'static str {
        check(log, None, NOW, entry, payload).unwrap_err().reason()
    }

    fn resign(header: Header) -> Entry {
        Entry::sign(&key(), header)
    }

    /// The acts `log`'s own entries hold.
    fn log_acts(log: &Log) -> u64 {
        log.acts(false) - log.acts
    }

    #[test]
    fn accepts_a_valid_chain_and_tombstone() {
        let mut log = admitted_log();
        let rid = RecordId([1; 16]);
        let (e1, p1) = put(&log, rid, METHOD);
        let accepted = check(&log, Some(key().node_id()), NOW, &e1, Some(&p1)).unwrap();
        assert_eq!(accepted.record.unwrap().title(), "Metod");
        log.apply(e1);
        let (e2, p2) = put(&log, rid, METHOD);
        check(&log, None, NOW, &e2, Some(&p2)).unwrap();
        log.apply(e2);
        let t = tombstone(&log, rid);
        assert_eq!(check(&log, None, NOW, &t, None).unwrap().record, None);
        log.apply(t);
        // A put after the tombstone is refused for ever.
        let (e4, p4) = put(&log, rid, METHOD);
        assert_eq!(refuse(&log, &e4, Some(&p4)), "tombstoned");
    }

    #[test]
    fn every_refusal_reason_is_reached() {
        let mut reached = std::collections::BTreeSet::new();
        let mut note = |r: &'static str| {
            reached.insert(r);
            r
        };
        let rid = RecordId([1; 16]);
        let mut log = admitted_log();
        let (e1, p1) = put(&log, rid, METHOD);

        // Not admitted, frozen, wrong author.
        assert_eq!(
            note(refuse(&Log::default(), &e1, Some(&p1))),
            "not_admitted"
        );
        let frozen = Log {
            admitted: true,
            frozen: true,
            ..Log::default()
        };
        assert_eq!(note(refuse(&frozen, &e1, Some(&p1))), "frozen");
        let other = SecretKey::from_bytes(&[2; 32]).node_id();
        assert_eq!(
            note(
                check(&log, Some(other), NOW, &e1, Some(&p1))
                    .unwrap_err()
                    .reason()
            ),
            "wrong_author"
        );

        // Bad signature: another key's signature over this header.
        let forged = Entry::from_parts(
            e1.header_bytes().to_vec(),
            &SecretKey::from_bytes(&[2; 32]).sign(e1.header_bytes()),
        )
        .unwrap();
        assert_eq!(note(refuse(&log, &forged, Some(&p1))), "bad_signature");

        // Payload checks.
        let mut short = p1.clone();
        short.pop();
        assert_eq!(
            note(refuse(&log, &e1, Some(&short))),
            "payload_size_mismatch"
        );
        // The per-author quota, on seq alone (before the signature is even looked at).
        let mut h = e1.header().clone();
        h.seq = AUTHOR_ENTRIES_MAX + 1;
        assert_eq!(note(refuse(&log, &resign(h), Some(&p1))), "author_quota");
        // The payload quota: an author whose current records hold all but a few bytes of it.
        let len = u64::from(e1.header().payload_len);
        let full = Log {
            base_bytes: AUTHOR_PAYLOAD_BYTES_MAX - len + 1,
            ..admitted_log()
        };
        assert_eq!(note(refuse(&full, &e1, Some(&p1))), "payload_quota");
        let room = Log {
            base_bytes: AUTHOR_PAYLOAD_BYTES_MAX - len,
            ..admitted_log()
        };
        check(&room, None, NOW, &e1, Some(&p1)).unwrap();
        let mut flipped = p1.clone();
        flipped[3] ^= 1;
        assert_eq!(
            note(refuse(&log, &e1, Some(&flipped))),
            "payload_hash_mismatch"
        );
        let garbage = vec![0xffu8; 10];
        let mut h = e1.header().clone();
        h.payload_hash = Hash::of(&garbage);
        h.payload_len = 10;
        assert_eq!(
            note(refuse(&log, &resign(h), Some(&garbage))),
            "payload_malformed"
        );
        let bad_schema = payload(r#"{"title":"x"}"#);
        let mut h = e1.header().clone();
        h.payload_hash = Hash::of(&bad_schema);
        h.payload_len = bad_schema.len() as u32;
        assert_eq!(note(refuse(&log, &resign(h), Some(&bad_schema))), "schema");
        let mut h = e1.header().clone();
        h.payload_len = PAYLOAD_BYTES_MAX as u32 + 1;
        assert_eq!(note(refuse(&log, &resign(h), None)), "payload_too_large");

        // Time.
        let mut h = e1.header().clone();
        h.timestamp_ms = NOW + FUTURE_SKEW_MS_MAX + 1;
        assert_eq!(
            note(refuse(&log, &resign(h.clone()), Some(&p1))),
            "future_timestamp"
        );
        h.timestamp_ms = NOW + FUTURE_SKEW_MS_MAX;
        check(&log, None, NOW, &resign(h), Some(&p1)).unwrap();

        // Tombstone rules on an empty log.
        let t = resign(next_header(
            key().node_id(),
            None,
            NOW,
            Kind::Method,
            rid,
            None,
        ));
        assert_eq!(note(refuse(&log, &t, None)), "unknown_record");

        // Sequence rules.
        let mut h = e1.header().clone();
        h.seq = 2;
        assert_eq!(note(refuse(&log, &resign(h), Some(&p1))), "gap");
        let mut h = e1.header().clone();
        h.prev = Hash([9; 32]);
        assert_eq!(note(refuse(&log, &resign(h), Some(&p1))), "prev_mismatch");

        log.apply(e1.clone());
        assert_eq!(note(refuse(&log, &e1, Some(&p1))), "replay");
        let mut h = e1.header().clone();
        h.timestamp_ms += 1;
        match check(&log, None, NOW, &resign(h), Some(&p1)).unwrap_err() {
            Refusal::Fork { seq: 1, existing } => assert_eq!(existing, e1.hash()),
            other => panic!("expected a fork, got {other:?}"),
        }
        note("fork");

        // Kind change, tombstone with payload, tombstoned.
        let p = payload(r#"{"title":"t","summary":"s"}"#);
        let h = next_header(
            key().node_id(),
            log.head(),
            NOW,
            Kind::Innovation,
            rid,
            Some(&p),
        );
        assert_eq!(note(refuse(&log, &resign(h), Some(&p))), "kind_changed");
        let mut h = next_header(key().node_id(), log.head(), NOW, Kind::Method, rid, None);
        h.payload_len = 1;
        assert_eq!(
            note(refuse(&log, &resign(h), None)),
            "tombstone_with_payload"
        );
        let t = tombstone(&log, rid);
        log.apply(t);
        let (e3, p3) = put(&log, rid, METHOD);
        assert_eq!(note(refuse(&log, &e3, Some(&p3))), "tombstoned");

        // Profile rules: one profile per author, never deleted (also when it arrived without
        // its payload: the header's kind is enough).
        let profile_body = payload(r#"{"display_name":"Skåne"}"#);
        let first = RecordId([7; 16]);
        let h = next_header(
            key().node_id(),
            log.head(),
            NOW,
            Kind::Profile,
            first,
            Some(&profile_body),
        );
        let e = resign(h);
        check(&log, None, NOW, &e, None).unwrap();
        log.apply_held(e, false);
        let h = next_header(
            key().node_id(),
            log.head(),
            NOW,
            Kind::Profile,
            RecordId([8; 16]),
            Some(&profile_body),
        );
        assert_eq!(
            note(refuse(&log, &resign(h), Some(&profile_body))),
            "second_profile"
        );
        let h = next_header(
            key().node_id(),
            log.head(),
            NOW,
            Kind::Profile,
            first,
            Some(&profile_body),
        );
        check(&log, None, NOW, &resign(h), Some(&profile_body)).unwrap();
        let t = resign(next_header(
            key().node_id(),
            log.head(),
            NOW,
            Kind::Profile,
            first,
            None,
        ));
        assert_eq!(note(refuse(&log, &t, None)), "profile_deleted");

        // A membership act is never edited, only deleted (withdrawn).
        let act = payload(&format!(
            r#"{{"node":"{}","name":"jamtland"}}"#,
            SecretKey::from_bytes(&[2; 32]).node_id()
        ));
        let act_id = RecordId([9; 16]);
        let at = |log: &Log, body: Option<&Vec<u8>>| {
            resign(next_header(
                key().node_id(),
                log.head(),
                NOW,
                Kind::Endorsement,
                act_id,
                body.map(Vec::as_slice),
            ))
        };
        let e = at(&log, Some(&act));
        assert!(
            check(&log, None, NOW, &e, Some(&act))
                .unwrap()
                .record
                .is_some()
        );
        log.apply(e);
        let again = at(&log, Some(&act));
        assert_eq!(note(refuse(&log, &again, Some(&act))), "act_edited");
        let withdrawn = at(&log, None);
        check(&log, None, NOW, &withdrawn, None).unwrap();
        // From its author an act comes whole; at the quota no more acts are taken.
        let fresh = |log: &Log, rid: u8| {
            resign(next_header(
                key().node_id(),
                log.head(),
                NOW,
                Kind::Endorsement,
                RecordId([rid; 16]),
                Some(&act),
            ))
        };
        let fresh_with = |log: &Log, rid: u8, body: &Vec<u8>| {
            resign(next_header(
                key().node_id(),
                log.head(),
                NOW,
                Kind::Endorsement,
                RecordId([rid; 16]),
                Some(body),
            ))
        };
        let bare = fresh(&log, 10);
        assert_eq!(
            check(&log, Some(key().node_id()), NOW, &bare, None)
                .unwrap_err()
                .reason(),
            note("act_without_payload")
        );
        check(&log, None, NOW, &bare, None).unwrap();
        log.acts = ACTS_PER_AUTHOR_MAX - log_acts(&log);
        assert_eq!(
            note(refuse(&log, &fresh(&log, 11), Some(&act))),
            "act_quota"
        );
        // Erasure orders have a quota of their own: a full acts quota does not stop one, a
        // full erasure quota does (and leaves the other acts alone).
        let order = payload(&format!(
            r#"{{"author":"{}","record":"{}","reason":"Den registrerade har begärt radering."}}"#,
            SecretKey::from_bytes(&[3; 32]).node_id(),
            RecordId([7; 16])
        ));
        let erase = |log: &Log, rid: u8| {
            resign(next_header(
                key().node_id(),
                log.head(),
                NOW,
                Kind::Erasure,
                RecordId([rid; 16]),
                Some(&order),
            ))
        };
        check(&log, None, NOW, &erase(&log, 11), Some(&order)).unwrap();
        log.acts = 0;
        log.erasures = ERASURE_ORDERS_PER_AUTHOR_MAX;
        assert_eq!(
            note(refuse(&log, &erase(&log, 11), Some(&order))),
            "erasure_quota"
        );
        check(&log, None, NOW, &fresh(&log, 11), Some(&act)).unwrap();
        log.erasures = 0;
        // A log's times never go back.
        let mut h = fresh(&log, 12).header().clone();
        h.timestamp_ms = NOW - 1;
        assert_eq!(note(refuse(&log, &resign(h), Some(&act))), "time_went_back");
        // A rotation names its own seq as the old key's last.
        let rotation = |upto: u64| {
            payload(&format!(
                r#"{{"node":"{}","name":"jamtland","replaces":"{}","upto":{upto}}}"#,
                SecretKey::from_bytes(&[2; 32]).node_id(),
                key().node_id()
            ))
        };
        let next = log.head().map_or(1, |h| h.seq + 1);
        let wrong = rotation(next - 1);
        assert_eq!(
            note(refuse(&log, &fresh_with(&log, 13, &wrong), Some(&wrong))),
            "rotation_upto"
        );
        let right = rotation(next);
        check(&log, None, NOW, &fresh_with(&log, 13, &right), Some(&right)).unwrap();

        let all = [
            "not_admitted",
            "wrong_author",
            "frozen",
            "bad_signature",
            "gap",
            "replay",
            "prev_mismatch",
            "fork",
            "future_timestamp",
            "tombstoned",
            "kind_changed",
            "unknown_record",
            "act_edited",
            "act_quota",
            "erasure_quota",
            "act_without_payload",
            "time_went_back",
            "rotation_upto",
            "tombstone_with_payload",
            "payload_too_large",
            "payload_size_mismatch",
            "payload_hash_mismatch",
            "payload_malformed",
            "schema",
            "second_profile",
            "profile_deleted",
            "author_quota",
            "payload_quota",
        ];
        assert_eq!(reached.len(), all.len(), "reached {reached:?}");
        for r in all {
            assert!(reached.contains(r), "reason {r} not reached");
        }
    }

    /// A new version replaces its record's bytes and a tombstone frees them: an author at its
    /// payload quota can still correct and delete, and deleting makes room.
    #[test]
    fn the_payload_quota_counts_current_versions_only() {
        let mut log = admitted_log();
        let rid = RecordId([1; 16]);
        let (e1, p1) = put(&log, rid, METHOD);
        let len = u64::from(e1.header().payload_len);
        log.base_bytes = AUTHOR_PAYLOAD_BYTES_MAX - len;
        check(&log, None, NOW, &e1, Some(&p1)).unwrap();
        log.apply(e1);
        // Full: a new record does not fit, a new version of the same size does.
        let (other, po) = put(&log, RecordId([2; 16]), METHOD);
        assert_eq!(refuse(&log, &other, Some(&po)), "payload_quota");
        let (e2, p2) = put(&log, rid, METHOD);
        check(&log, None, NOW, &e2, Some(&p2)).unwrap();
        log.apply(e2);
        // A tombstone frees the record's bytes; then the new record fits.
        let t = tombstone(&log, rid);
        check(&log, None, NOW, &t, None).unwrap();
        log.apply(t);
        assert_eq!(log.payload_bytes(), AUTHOR_PAYLOAD_BYTES_MAX - len);
        let (e4, p4) = put(&log, RecordId([2; 16]), METHOD);
        check(&log, None, NOW, &e4, Some(&p4)).unwrap();
    }

    #[test]
    fn flipping_any_payload_byte_is_refused() {
        let log = admitted_log();
        let (e1, p1) = put(&log, RecordId([1; 16]), METHOD);
        for i in 0..p1.len() {
            let mut p = p1.clone();
            p[i] ^= 0x01;
            assert_eq!(
                refuse(&log, &e1, Some(&p)),
                "payload_hash_mismatch",
                "byte {i}"
            );
        }
    }

    #[test]
    fn fork_proofs_hold_only_for_two_signed_twins() {
        let log = admitted_log();
        let rid = RecordId([1; 16]);
        let (e1, _) = put(&log, rid, METHOD);
        let mut h = e1.header().clone();
        h.timestamp_ms += 1;
        let twin = resign(h);
        assert_eq!(check_fork_proof(&e1, &twin), Ok((key().node_id(), 1)));
        assert_eq!(check_fork_proof(&e1, &e1), Err(ForkProofError::Same));
        // Another seq, another author, a forged signature: no proof.
        let mut later = log_after(&e1);
        let (e2, _) = put(&later, rid, METHOD);
        later.apply(e2.clone());
        assert_eq!(check_fork_proof(&e1, &e2), Err(ForkProofError::NotTwins));
        let other = SecretKey::from_bytes(&[2; 32]);
        let mut h = e1.header().clone();
        h.author = other.node_id();
        let theirs = Entry::sign(&other, h);
        assert_eq!(
            check_fork_proof(&e1, &theirs),
            Err(ForkProofError::NotTwins)
        );
        let forged = Entry::from_parts(
            twin.header_bytes().to_vec(),
            &other.sign(twin.header_bytes()),
        )
        .unwrap();
        assert_eq!(
            check_fork_proof(&e1, &forged),
            Err(ForkProofError::BadSignature)
        );
    }

    fn log_after(e: &Entry) -> Log {
        let mut log = admitted_log();
        log.apply(e.clone());
        log
    }

    #[test]
    fn purged_payload_is_accepted_without_record() {
        let log = admitted_log();
        let (e1, _) = put(&log, RecordId([1; 16]), METHOD);
        assert_eq!(check(&log, None, NOW, &e1, None).unwrap().record, None);
    }

    #[test]
    fn a_stripped_current_version_is_completed_by_its_payload_and_nothing_else() {
        let rid = RecordId([1; 16]);
        let mut log = admitted_log();
        let (e1, p1) = put(&log, rid, METHOD);
        // It arrived without its payload (stripped by a relay): header only.
        log.apply_held(e1.clone(), false);
        let done = check(&log, None, NOW, &e1, Some(&p1)).unwrap();
        assert!(done.completes);
        assert_eq!(done.record.unwrap().title(), "Metod");
        // Wrong bytes never complete it.
        let mut flipped = p1.clone();
        flipped[3] ^= 1;
        assert_eq!(refuse(&log, &e1, Some(&flipped)), "payload_hash_mismatch");
        // Without a payload it is a replay.
        assert_eq!(refuse(&log, &e1, None), "replay");
        // Once superseded, the old version is never completed.
        let (e2, _) = put(&log, rid, METHOD);
        log.apply_held(e2.clone(), false);
        assert_eq!(refuse(&log, &e1, Some(&p1)), "replay");
        // A held current version is a plain replay.
        let mut held = admitted_log();
        held.apply(e1.clone());
        assert_eq!(refuse(&held, &e1, Some(&p1)), "replay");
        // A deleted record is never completed.
        let t = tombstone(&log, rid);
        log.apply(t);
        assert_eq!(refuse(&log, &e2, Some(&p1)), "replay");
    }
}
