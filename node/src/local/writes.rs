//! The writes of the own log (publish, delete), each signed under the own-log lock, and an
//! aggregator's admissions (allow, disallow).

use rand_core::CryptoRngCore;
use spindel_protocol::NodeId;
use spindel_protocol::entry::{
    Entry, Hash, Head, PAYLOAD_BYTES_MAX, Payload, RecordId, next_header,
};
use spindel_protocol::record::{
    CONSENT_FORM, Consent, Kind, Record, SchemaError, validate_region_name,
};

use super::dir::Role;
use super::error::NodeError;
use super::node::LocalNode;
use super::reports::{Allowed, Deleted, Disallowed, Published, fork_advice};
use crate::store::{ApplyOptions, Incoming};

impl LocalNode {
    /// Validates, signs and appends a record; returns once it is durable on disk.
    /// `record_id`: publish a new version of an existing own record.
    pub fn publish(
        &self,
        kind: Kind,
        json: &str,
        record_id: Option<RecordId>,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
    ) -> Result<Published, NodeError> {
        if self.config.role == Role::Aggregator {
            return Err(NodeError::AggregatorAuthors);
        }
        self.publish_expecting(kind, json, record_id, None, rng, now_ms)
    }

    /// [`LocalNode::publish`] of a new version that is written only if the record's current
    /// version is still `expected` (the entry seq it was read at), checked under the own-log
    /// lock: an edit made on a stale form never overwrites a colleague's ([`NodeError::Stale`]).
    pub fn publish_expecting(
        &self,
        kind: Kind,
        json: &str,
        record_id: Option<RecordId>,
        expected: Option<u64>,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
    ) -> Result<Published, NodeError> {
        if self.config.role == Role::Aggregator {
            return Err(NodeError::AggregatorAuthors);
        }
        let record = self.prepare(kind, json)?;
        let _writer = self.own_log_writer()?;
        self.check_signs()?;
        if let (Some(expected), Some(rid)) = (expected, record_id) {
            let current = crate::query::get(&self.store, &self.node_id(), &rid)?.map(|v| v.seq);
            if current != Some(expected) {
                return Err(NodeError::Stale {
                    record_id: rid,
                    expected,
                    current,
                });
            }
        }
        let record_id = self.target_record(kind, record_id, rng)?;
        let (seq, hash) = self.sign_and_apply(record_id, record, rng, now_ms)?;
        Ok(Published {
            record_id: record_id.to_hex(),
            seq,
            entry: hash.to_hex(),
            offline: false,
        })
    }

    /// Appends a signed tombstone; the record's payloads are purged.
    pub fn delete(&self, record_id: RecordId, now_ms: u64) -> Result<Deleted, NodeError> {
        if self.config.role == Role::Aggregator {
            return Err(NodeError::AggregatorAuthors);
        }
        let me = self.node_id();
        let _writer = self.own_log_writer()?;
        self.check_signs()?;
        let head = self.store.head(&me)?;
        let now_ms = self.own_time(now_ms, head)?;
        let meta = self
            .store
            .record_meta(&me, &record_id)?
            .ok_or_else(|| self.unknown_record(record_id))?;
        if meta.deleted {
            return Err(NodeError::Deleted(record_id));
        }
        if meta.kind == Kind::Profile {
            return Err(NodeError::ProfileDelete);
        }
        if meta.kind.is_membership() {
            self.check_withdrawal(&record_id)?;
        }
        let header = next_header(me, head, now_ms, meta.kind, record_id, None);
        let entry = Entry::sign(&self.key, header);
        let seq = entry.header().seq;
        self.apply_own(
            vec![Incoming {
                entry,
                payload: None,
            }],
            now_ms,
        )?;
        Ok(Deleted {
            record_id: record_id.to_hex(),
            seq,
            offline: false,
        })
    }

    /// Aggregator: admits a region (persisted). Weak keys are refused.
    pub fn allow(&self, id: NodeId, name: Option<String>) -> Result<Allowed, NodeError> {
        if self.config.role != Role::Aggregator {
            return Err(NodeError::NotAggregator);
        }
        if !id.is_usable() {
            return Err(NodeError::WeakKey(id));
        }
        if id == self.node_id() {
            return Err(NodeError::OwnKey(id));
        }
        // The name is the region's name on every node. Without `--name` a region keeps the
        // name it was admitted under before, or gets one made from its key (never the name
        // its profile claims: anyone can write any profile).
        let name = match name {
            Some(n) => n,
            None => match self.store.author(&id)?.and_then(|m| m.admitted_name) {
                Some(held) => held,
                None => format!("region-{}", &id.to_hex()[..8]),
            },
        };
        validate_region_name(&name).map_err(NodeError::BadName)?;
        if self.store.is_mirror(&id)? {
            return Err(NodeError::RegionIsAMirror(id));
        }
        let meta = self
            .store
            .admit_unique(&id, &name, &self.node_id(), &self.config.name)?;
        Ok(Allowed {
            node_id: id.to_hex(),
            name: meta.label().map(str::to_string),
            mirror: false,
        })
    }

    /// Aggregator: allows the aggregator `id` to mirror this one (persisted; decision 0040):
    /// it is sent every admitted region's log and the admission list, and may send entries of
    /// admitted regions. It gets no name and is never in the admission list.
    pub fn allow_mirror(&self, id: NodeId) -> Result<Allowed, NodeError> {
        if self.config.role != Role::Aggregator {
            return Err(NodeError::NotAggregator);
        }
        if !id.is_usable() {
            return Err(NodeError::WeakKey(id));
        }
        if id == self.node_id() {
            return Err(NodeError::OwnKey(id));
        }
        if !self.store.allow_mirror(&id)? {
            return Err(NodeError::MirrorIsARegion(id));
        }
        Ok(Allowed {
            node_id: id.to_hex(),
            name: None,
            mirror: true,
        })
    }

    /// Aggregator: ends the admission of a region (persisted): its sessions are refused, its
    /// name is freed, its new entries are refused; its stored entries stay (signed history).
    /// In a running node the writer also ends its live session and sends every connected
    /// region the new list.
    pub fn disallow(&self, id: NodeId) -> Result<Disallowed, NodeError> {
        if self.config.role != Role::Aggregator {
            return Err(NodeError::NotAggregator);
        }
        if id == self.node_id() {
            return Err(NodeError::OwnKey(id));
        }
        if self.store.disallow_mirror(&id)? {
            return Ok(Disallowed {
                node_id: id.to_hex(),
                name: None,
                admitted: false,
                mirror: true,
            });
        }
        let before = self
            .store
            .disallow(&id)?
            .ok_or(NodeError::NotAdmittedHere(id))?;
        Ok(Disallowed {
            node_id: id.to_hex(),
            name: Some(before.name_or_key(&id)),
            admitted: false,
            mirror: false,
        })
    }

    /// Held while the next entry of the own log is chosen, signed and applied. A restored
    /// node that has not caught up with its aggregator signs nothing.
    pub(super) fn own_log_writer(&self) -> Result<std::sync::MutexGuard<'_, ()>, NodeError> {
        if self.restored() {
            return Err(NodeError::RestoredNotCaughtUp);
        }
        if let Some((_, proof)) = self
            .store
            .forks()?
            .into_iter()
            .find(|(a, _)| *a == self.node_id())
        {
            return Err(NodeError::OwnLogForked(fork_advice(
                true,
                Some(&self.config.name),
                proof.seq,
            )));
        }
        let guard = self
            .own_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A committed import that a crash or a failed write left unfinished comes first: the
        // next own entry follows its last.
        self.apply_committed_import()?;
        Ok(guard)
    }

    /// The time the next own entry carries: `now_ms`, or the own head's time if the clock went
    /// back, so an author's entries never go back in time (called under the own-log lock).
    pub(super) fn own_time(&self, now_ms: u64, head: Option<Head>) -> Result<u64, NodeError> {
        let me = self.node_id();
        let last = match head {
            Some(head) => self
                .store
                .entry(&me, head.seq)?
                .map_or(0, |e| e.header().timestamp_ms),
            None => 0,
        };
        if last > now_ms {
            tracing::warn!(
                behind_ms = last - now_ms,
                "the clock is behind this region's last entry; signing with that entry's time"
            );
        }
        Ok(now_ms.max(last))
    }

    /// Validates JSON as a record of `kind`, filling in the profile's `name`.
    pub(super) fn prepare(&self, kind: Kind, json: &str) -> Result<Record, NodeError> {
        let mut record = Record::from_json(kind, json)?;
        // The bare `consent: true` of the first format stays readable in old records; a new
        // one says when, how and for what.
        if let Record::Researcher(r) = &record
            && matches!(r.consent, Some(Consent::Bare(_)))
        {
            return Err(NodeError::Schema(SchemaError::new(format!(
                "researcher record needs consent as an object {CONSENT_FORM}; the bare \
                 consent: true is read in old records only"
            ))));
        }
        if let Record::Profile(profile) = &mut record {
            match &profile.name {
                None => profile.name = Some(self.config.name.clone()),
                Some(n) if *n == self.config.name => {}
                Some(n) => {
                    return Err(NodeError::ProfileId(format!(
                        "its name is this node's name {:?}, not {n:?}",
                        self.config.name
                    )));
                }
            }
        }
        let encoded = record.to_json().len() + spindel_protocol::entry::SALT_BYTES + 8;
        if encoded > PAYLOAD_BYTES_MAX {
            return Err(NodeError::TooLarge(encoded));
        }
        Ok(record)
    }

    /// The record id a publish writes to: the profile's own for profiles, the given one (which
    /// must be an existing own record of this kind), or a new one.
    pub(super) fn target_record(
        &self,
        kind: Kind,
        given: Option<RecordId>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<RecordId, NodeError> {
        let me = self.node_id();
        if kind == Kind::Profile {
            let current = self.store.author(&me)?.and_then(|m| m.profile);
            if let Some(p) = current
                && self
                    .store
                    .members()
                    .is_some_and(|m| m.membership.is_erased(&me, &p))
            {
                return Err(NodeError::ErasedByOrder(p));
            }
            return match (current, given) {
                (Some(p), Some(g)) if p != g => Err(NodeError::ProfileId(format!(
                    "its record id is {p}, not {g}"
                ))),
                (Some(p), _) => Ok(p),
                (None, Some(g)) => Err(NodeError::UnknownRecord(g)),
                (None, None) => Ok(RecordId::random(rng)),
            };
        }
        let Some(rid) = given else {
            return Ok(RecordId::random(rng));
        };
        if self
            .store
            .members()
            .is_some_and(|m| m.membership.is_erased(&me, &rid))
        {
            return Err(NodeError::ErasedByOrder(rid));
        }
        let meta = self
            .store
            .record_meta(&me, &rid)?
            .ok_or_else(|| self.unknown_record(rid))?;
        if meta.deleted {
            return Err(NodeError::Deleted(rid));
        }
        if meta.kind != kind {
            return Err(NodeError::KindMismatch {
                record_id: rid,
                stored: meta.kind,
                given: kind,
            });
        }
        Ok(rid)
    }

    /// A record this region's key does not hold: said as one of its earlier key's when it is.
    fn unknown_record(&self, rid: RecordId) -> NodeError {
        let me = self.node_id();
        for key in crate::regions::region_keys(&self.store, &me) {
            if key != me && matches!(self.store.record_meta(&key, &rid), Ok(Some(_))) {
                return NodeError::EarlierKeyRecord { record: rid, key };
            }
        }
        NodeError::UnknownRecord(rid)
    }

    /// Seals, signs and appends one record; returns its (seq, entry hash).
    pub(super) fn sign_and_apply(
        &self,
        record_id: RecordId,
        record: Record,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
    ) -> Result<(u64, Hash), NodeError> {
        let me = self.node_id();
        let head = self.store.head(&me)?;
        let now_ms = self.own_time(now_ms, head)?;
        let payload = Payload::seal(rng, record.to_json());
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(NodeError::TooLarge(payload.len()));
        }
        let header = next_header(me, head, now_ms, record.kind(), record_id, Some(&payload));
        let entry = Entry::sign(&self.key, header);
        let signed = (entry.header().seq, entry.hash());
        self.apply_own(
            vec![Incoming {
                entry,
                payload: Some(payload),
            }],
            now_ms,
        )?;
        Ok(signed)
    }

    /// Applies own entries, all or nothing (in a running node the writer announces them).
    pub(super) fn apply_own(&self, batch: Vec<Incoming>, now_ms: u64) -> Result<(), NodeError> {
        self.store.apply(
            batch,
            ApplyOptions {
                expected_author: Some(self.node_id()),
                now_ms,
                all_or_nothing: true,
            },
        )?;
        Ok(())
    }
}
