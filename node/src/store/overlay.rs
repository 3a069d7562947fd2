//! A batch being applied: the store plus what the batch so far changed ([`Overlay`]), what
//! ingest sees of one author through it ([`View`]), and its one atomic write ([`Committed`]).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use spindel_protocol::NodeId;
use spindel_protocol::codec;
use spindel_protocol::entry::{Entry, Hash, Head, Op, PAYLOAD_BYTES_MAX, RecordId, WireEntry};
use spindel_protocol::ingest::{Accepted, AuthorView, RecordState};
use spindel_protocol::record::{Kind, Record};

use spindel_protocol::membership::{Act, Standing};

use super::calendar::Span;
use super::handle::{ProfileName, Store};
use super::keys::{
    K_GENERATION, K_HISTORY, k_author, k_author_counter, k_bytes, k_counter, k_erase, k_fork,
    k_head, k_log, k_pack, k_payload, k_record, k_time, k_version, log_ref, search_key,
};
use super::members::{Members, act_of};
use super::reads::event_span;
use super::tally::Counted;
use super::types::{
    AuthorMeta, ForkProof, HeldPayload, Incoming, PayloadRef, RecordMeta, StoreError, corrupt,
    u64_value,
};
use crate::payloads::Location;
use crate::search::DocChange;

mod members;

/// A record of one author: the unit payloads, tags and full-text documents belong to.
type RecordKey = (NodeId, RecordId);

/// The store plus what the batch so far has changed. `preload` reads everything the ingest
/// check needs for one entry, so the check itself only reads these maps.
pub(super) struct Overlay<'s> {
    store: &'s Store,
    pub(super) batch: sled::Batch,
    heads: HashMap<NodeId, Option<Head>>,
    /// The signed time of each author's head entry.
    head_times: HashMap<NodeId, Option<u64>>,
    hashes: HashMap<(NodeId, u64), Hash>,
    log: HashMap<(NodeId, u64), WireEntry>,
    records: HashMap<RecordKey, Option<RecordMeta>>,
    authors: HashMap<NodeId, AuthorMeta>,
    /// Where each touched record's payload is stored (`None`: nowhere, or purged by this batch).
    refs: HashMap<RecordKey, Option<PayloadRef>>,
    /// Signed payload length of each touched record's current version (0: deleted).
    lens: HashMap<RecordKey, u32>,
    /// Each touched author's payload bytes (the quota's count).
    bytes: HashMap<NodeId, u64>,
    /// Payloads this batch writes: the current version's of each record (seq, hash, bytes).
    new_payloads: BTreeMap<RecordKey, (u64, Hash, Vec<u8>)>,
    /// The entries this batch accepts, encoded as received, in the order accepted: written to
    /// the pack with the payloads, `L` saying where.
    new_log: Vec<(NodeId, u64, Vec<u8>)>,
    /// Stored payload ranges this batch purges.
    purged: Vec<Location>,
    /// Payloads held for an erasure order, as this batch so far has them (`None`: none).
    held: HashMap<RecordKey, Option<HeldPayload>>,
    /// The writer's clock: when a payload began to be held.
    now_ms: u64,
    /// What the tally counts of each touched record (`None`: it no longer shows).
    tally_changes: Vec<(RecordKey, Option<Counted>)>,
    /// New times per event (`None`: it no longer shows).
    calendar_changes: Vec<(RecordKey, Option<Span>)>,
    /// Each touched answer's new target (`None`: it no longer shows).
    answer_changes: Vec<(RecordKey, Option<spindel_protocol::RecordRef>)>,
    /// New profile names per author (`None`: its profile no longer shows).
    name_changes: Vec<(NodeId, Option<ProfileName>)>,
    counters: BTreeMap<&'static str, u64>,
    author_counters: BTreeMap<(NodeId, &'static str), u64>,
    changes: Vec<DocChange>,
    /// The last version number of each record this batch gave a version.
    versions: HashMap<RecordKey, u64>,
    pub(super) accepted: u64,
    pub(super) forked: bool,
    /// A record was taken down (a cut, an erasure order): the batch is written even without
    /// an accepted entry.
    took_down: bool,
    /// Under a charter: the membership as this batch so far changed it (taken from the store
    /// at the first act the batch accepts or withdraws), and whether it changed.
    members: Option<Members>,
    members_changed: bool,
    /// The acts this batch wrote (`N`), by record.
    acts_written: HashMap<RecordKey, Act>,
    /// The standings membership last settled at in this batch, and the author of the acts
    /// not settled yet (see [`Overlay::settle_members`]).
    settled: Option<BTreeMap<NodeId, Standing>>,
    unsettled: Option<NodeId>,
}

pub(super) struct View<'o, 's> {
    pub(super) ov: &'o Overlay<'s>,
    pub(super) author: NodeId,
}

impl AuthorView for View<'_, '_> {
    fn admitted(&self) -> bool {
        self.ov
            .authors
            .get(&self.author)
            .is_some_and(|a| a.admitted)
    }
    fn frozen(&self) -> bool {
        self.ov.authors.get(&self.author).is_some_and(|a| a.frozen)
    }
    fn head(&self) -> Option<Head> {
        self.ov.heads.get(&self.author).copied().flatten()
    }
    fn hash_at(&self, seq: u64) -> Option<Hash> {
        self.ov.hashes.get(&(self.author, seq)).copied()
    }
    fn profile(&self) -> Option<RecordId> {
        self.ov.authors.get(&self.author).and_then(|a| a.profile)
    }
    fn record(&self, record_id: &RecordId) -> Option<RecordState> {
        self.ov
            .records
            .get(&(self.author, *record_id))
            .and_then(Option::as_ref)
            .map(|m| RecordState {
                kind: m.kind,
                deleted: m.deleted,
                seq: m.seq,
                payload_held: m.payload.is_some(),
                payload_len: self
                    .ov
                    .lens
                    .get(&(self.author, *record_id))
                    .copied()
                    .unwrap_or(0),
            })
    }
    fn payload_bytes(&self) -> u64 {
        self.ov.bytes.get(&self.author).copied().unwrap_or(0)
    }
    fn head_time(&self) -> Option<u64> {
        self.ov.head_times.get(&self.author).copied().flatten()
    }
    fn acts(&self, erasures: bool) -> u64 {
        self.ov.acts_of(&self.author, erasures)
    }
}

/// What a committed batch left to do once it is durable.
#[derive(Debug, Default)]
pub(super) struct Committed {
    /// The payload ranges it purged, to erase.
    pub(super) purged: Vec<Location>,
}

impl<'s> Overlay<'s> {
    pub(super) fn new(store: &'s Store, now_ms: u64) -> Self {
        Overlay {
            store,
            held: HashMap::new(),
            now_ms,
            batch: sled::Batch::default(),
            heads: HashMap::new(),
            head_times: HashMap::new(),
            hashes: HashMap::new(),
            log: HashMap::new(),
            records: HashMap::new(),
            authors: HashMap::new(),
            refs: HashMap::new(),
            lens: HashMap::new(),
            bytes: HashMap::new(),
            new_payloads: BTreeMap::new(),
            new_log: Vec::new(),
            purged: Vec::new(),
            tally_changes: Vec::new(),
            calendar_changes: Vec::new(),
            answer_changes: Vec::new(),
            name_changes: Vec::new(),
            counters: BTreeMap::new(),
            author_counters: BTreeMap::new(),
            changes: Vec::new(),
            versions: HashMap::new(),
            accepted: 0,
            forked: false,
            took_down: false,
            members: None,
            members_changed: false,
            acts_written: HashMap::new(),
            settled: None,
            unsettled: None,
        }
    }

    /// The version number the next entry of `key` makes: one more than the last, in this
    /// batch or stored.
    fn next_version(&mut self, key: RecordKey) -> Result<u64, StoreError> {
        let last = match self.versions.get(&key) {
            Some(n) => *n,
            None => self.store.last_version(&key.0, &key.1)?,
        };
        self.versions.insert(key, last + 1);
        Ok(last + 1)
    }

    pub(super) fn preload(
        &mut self,
        author: &NodeId,
        rid: &RecordId,
        seq: u64,
    ) -> Result<(), StoreError> {
        if !self.authors.contains_key(author) {
            // As stored: ingest needs admission and freezing, not names (and this runs under
            // the write lock, which building the names would take).
            let meta = self.store.author_stored(author)?.unwrap_or_default();
            self.authors.insert(*author, meta);
        }
        if !self.heads.contains_key(author) {
            let head = self.store.head(author)?;
            let time = match head {
                Some(h) => self
                    .store
                    .entry(author, h.seq)?
                    .map(|e| e.header().timestamp_ms),
                None => None,
            };
            self.heads.insert(*author, head);
            self.head_times.insert(*author, time);
        }
        let head_seq = self
            .heads
            .get(author)
            .copied()
            .flatten()
            .map_or(0, |h| h.seq);
        if seq <= head_seq
            && !self.hashes.contains_key(&(*author, seq))
            && let Some(entry) = self.store.entry(author, seq)?
        {
            self.hashes.insert((*author, seq), entry.hash());
            self.log.insert((*author, seq), entry.to_wire());
        }
        let key = (*author, *rid);
        if !self.records.contains_key(&key) {
            let meta = self.store.record_meta(author, rid)?;
            self.records.insert(key, meta);
        }
        if !self.refs.contains_key(&key) {
            let r = self.store.payload_ref(author, rid)?;
            self.refs.insert(key, r);
        }
        if !self.lens.contains_key(&key) {
            let len = match self.records.get(&key).cloned().flatten() {
                Some(meta) => {
                    let held = self.refs.get(&key).cloned().flatten();
                    self.store.current_len(author, &meta, held.as_ref())?
                }
                None => 0,
            };
            self.lens.insert(key, len);
        }
        if !self.bytes.contains_key(author) {
            let total = self.store.payload_bytes_of(author)?;
            self.bytes.insert(*author, total);
        }
        Ok(())
    }

    /// Keeps the author's payload bytes as `key`'s current version becomes `len` bytes.
    fn set_len(&mut self, key: RecordKey, len: u32) {
        let old = self.lens.insert(key, len).unwrap_or(0);
        let total = self.bytes.entry(key.0).or_default();
        *total = total.saturating_sub(u64::from(old)) + u64::from(len);
        let total = *total;
        self.batch.insert(k_bytes(&key.0), &total.to_be_bytes()[..]);
    }

    fn put_meta<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.batch.insert(key, codec::encode(value));
    }

    /// Drops the payload `key` holds, whether stored (its range is erased once the batch is
    /// durable) or written earlier in this batch. Only this author's record is touched.
    fn purge_payload(&mut self, key: RecordKey) {
        self.new_payloads.remove(&key);
        if let Some(Some(stored)) = self.refs.insert(key, None) {
            self.purged.push(stored.at);
            self.batch.remove(k_payload(&key.0, &key.1));
        }
    }

    /// A record's content became visible: text, tags, and for a profile the author's names.
    fn show(&mut self, key: RecordKey, updated_ms: u64, record: &Record) {
        self.changes.push(DocChange {
            key: search_key(&key.0, &key.1),
            updated_ms,
            text: Some(record.search_text()),
        });
        self.tally_changes.push((key, Some(Counted::of(record))));
        if let Some(span) = event_span(record, updated_ms) {
            self.calendar_changes.push((key, Some(span)));
        }
        self.answer_changes
            .push((key, super::types::about_of(record)));
        if let Record::Profile(profile) = record {
            let author = self.authors.entry(key.0).or_default();
            author.profile_name.clone_from(&profile.name);
            author.display_name = Some(profile.display_name.clone());
            author.profile = Some(key.1);
            let author = author.clone();
            // The names stay in memory (AuthorMeta skips them when encoded).
            self.put_meta(k_author(&key.0), &author);
            self.name_changes.push((
                key.0,
                Some((profile.name.clone(), profile.display_name.clone())),
            ));
        }
    }

    /// A record's content no longer shows (deleted, or a new version without its payload).
    fn hide(&mut self, key: RecordKey, updated_ms: u64, kind: Kind) {
        self.changes.push(DocChange {
            key: search_key(&key.0, &key.1),
            updated_ms,
            text: None,
        });
        self.tally_changes.push((key, None));
        if kind == Kind::Event {
            self.calendar_changes.push((key, None));
        }
        self.answer_changes.push((key, None));
        if kind == Kind::Profile {
            if let Some(author) = self.authors.get_mut(&key.0) {
                author.profile_name = None;
                author.display_name = None;
            }
            self.name_changes.push((key.0, None));
        }
    }

    pub(super) fn accept(
        &mut self,
        incoming: Incoming,
        accepted: Accepted,
    ) -> Result<(), StoreError> {
        let Incoming { entry, payload } = incoming;
        if accepted.completes {
            return self.complete(&entry, payload, accepted.record);
        }
        let record = accepted.record;
        let h = entry.header().clone();
        let a = h.author;
        let hash = entry.hash();
        let wire = entry.to_wire();
        self.new_log.push((a, h.seq, codec::encode(&wire)));
        let number = self.next_version((a, h.record_id))?;
        self.batch.insert(
            k_version(&a, &h.record_id, h.seq),
            &number.to_be_bytes()[..],
        );
        self.log.insert((a, h.seq), wire);
        self.hashes.insert((a, h.seq), hash);
        let head = Head { seq: h.seq, hash };
        self.heads.insert(a, Some(head));
        self.head_times.insert(a, Some(h.timestamp_ms));
        self.put_meta(k_head(&a), &head);

        let key = (a, h.record_id);
        if h.kind == Kind::Profile {
            // The author's one profile (ingest refuses a second), also when it arrived
            // without its payload.
            let author = self.authors.entry(a).or_default();
            if author.profile.is_none() {
                author.profile = Some(h.record_id);
                let author = author.clone();
                self.put_meta(k_author(&a), &author);
            }
        }
        let old = self.records.get(&key).cloned().flatten();
        if let Some(old) = old.as_ref().filter(|m| m.visible()) {
            self.batch.remove(k_time(old.updated_ms, &a, &h.record_id));
        }
        // Only the current version keeps a payload: the previous one is purged (one held for
        // an erasure order too: a later version replaced it).
        self.purge_payload(key);
        self.drop_held(key)?;
        let created_ms = old.as_ref().map_or(h.timestamp_ms, |m| m.created_ms);
        let meta = match h.op {
            Op::Put => {
                let shows = !self.withheld(&a, &h.record_id, h.seq, h.kind);
                let stored = payload.filter(|_| record.is_some() && shows);
                let held = stored.is_some();
                if let Some(bytes) = stored {
                    debug_assert!(bytes.len() <= PAYLOAD_BYTES_MAX);
                    self.new_payloads
                        .insert(key, (h.seq, h.payload_hash, bytes));
                }
                let meta = RecordMeta {
                    kind: h.kind,
                    seq: h.seq,
                    created_ms,
                    updated_ms: h.timestamp_ms,
                    deleted: false,
                    payload: held.then_some(h.payload_hash),
                };
                match record.as_ref().filter(|_| held) {
                    // A membership act counts; it is not knowledge (no list, search or tag).
                    Some(record) if h.kind.is_membership() => {
                        if let Some(act) = act_of(a, h.seq, h.timestamp_ms, record) {
                            self.note_act(key, Ok(act))?;
                        }
                    }
                    // An act without its payload is not known yet: it counts once it comes.
                    None if h.kind.is_membership() => {}
                    Some(record) => {
                        self.batch.insert(
                            k_time(meta.updated_ms, &a, &h.record_id),
                            &[h.kind.code()][..],
                        );
                        self.show(key, h.timestamp_ms, record);
                    }
                    None => self.hide(key, h.timestamp_ms, h.kind),
                }
                meta
            }
            Op::Tombstone => {
                // A withdrawn act counts no more; a deleted record shows no more.
                if h.kind.is_membership() {
                    self.note_act(key, Err(h.timestamp_ms))?;
                } else {
                    self.hide(key, h.timestamp_ms, h.kind);
                }
                RecordMeta {
                    kind: h.kind,
                    seq: h.seq,
                    created_ms,
                    updated_ms: h.timestamp_ms,
                    deleted: true,
                    payload: None,
                }
            }
        };
        self.put_meta(k_record(&a, &h.record_id), &meta);
        self.records.insert(key, Some(meta));
        self.set_len(key, h.payload_len);
        self.accepted += 1;
        Ok(())
    }

    /// The payload of a stored header-only current version arrived: the record shows.
    fn complete(
        &mut self,
        entry: &Entry,
        payload: Option<Vec<u8>>,
        record: Option<Record>,
    ) -> Result<(), StoreError> {
        let h = entry.header();
        let key = (h.author, h.record_id);
        let (Some(bytes), Some(record)) = (payload, record) else {
            return Err(corrupt("completion", "accepted without its payload"));
        };
        if self.withheld(&h.author, &h.record_id, h.seq, h.kind) {
            // Past its key's cut, or erased by the members: it stays without its payload.
            return Ok(());
        }
        let mut meta = self
            .records
            .get(&key)
            .cloned()
            .flatten()
            .ok_or_else(|| corrupt("completion", "record unknown"))?;
        meta.payload = Some(h.payload_hash);
        self.new_payloads
            .insert(key, (h.seq, h.payload_hash, bytes));
        if h.kind.is_membership() {
            if let Some(act) = act_of(h.author, h.seq, h.timestamp_ms, &record) {
                self.note_act(key, Ok(act))?;
            }
        } else {
            self.batch.insert(
                k_time(meta.updated_ms, &h.author, &h.record_id),
                &[h.kind.code()][..],
            );
            self.show(key, meta.updated_ms, &record);
        }
        self.put_meta(k_record(&h.author, &h.record_id), &meta);
        self.records.insert(key, Some(meta));
        tracing::info!(author = %h.author.short(), seq = h.seq, "a record that arrived without its payload is complete now");
        self.accepted += 1;
        Ok(())
    }

    pub(super) fn record_fork(&mut self, second: &Entry, seq: u64) -> Result<(), StoreError> {
        let a = second.header().author;
        let first = match self.log.get(&(a, seq)) {
            Some(w) => w.clone(),
            None => match self.store.entry(&a, seq)? {
                Some(e) => e.to_wire(),
                None => return Ok(()),
            },
        };
        let name = self
            .authors
            .get(&a)
            .and_then(|m| m.label().map(str::to_string));
        tracing::warn!(author = %a, name = name.as_deref().unwrap_or("-"), seq, "fork proven: two different entries signed with one seq; the author is frozen here");
        self.put_meta(
            k_fork(&a),
            &ForkProof {
                seq,
                first,
                second: second.to_wire(),
            },
        );
        self.forked = true;
        let author = self.authors.entry(a).or_default();
        author.frozen = true;
        let author = author.clone();
        self.put_meta(k_author(&a), &author);
        Ok(())
    }

    pub(super) fn count(&mut self, author: NodeId, reason: &'static str) {
        *self.counters.entry(reason).or_default() += 1;
        *self.author_counters.entry((author, reason)).or_default() += 1;
    }

    /// Writes the batch: payloads first (durable in the packs), then one atomic sled batch
    /// that names them, lists the purged ranges, and moves the log.
    pub(super) fn commit(mut self) -> Result<Committed, StoreError> {
        self.settle_members(None)?;
        if self.accepted == 0 && self.counters.is_empty() && !self.forked && !self.took_down {
            return Ok(Committed::default());
        }
        for (reason, n) in std::mem::take(&mut self.counters) {
            let before = self.store.counter(reason)?;
            self.batch
                .insert(k_counter(reason), &(before + n).to_be_bytes()[..]);
        }
        for ((author, reason), n) in std::mem::take(&mut self.author_counters) {
            let k = k_author_counter(&author, reason);
            let before = match self.store.db.get(&k)? {
                Some(v) => u64_value("counter", &v)?,
                None => 0,
            };
            self.batch.insert(k, &(before + n).to_be_bytes()[..]);
        }
        let generation = self.store.generation()? + self.accepted;
        self.batch
            .insert(K_GENERATION, &generation.to_be_bytes()[..]);
        self.batch.insert(K_HISTORY, &generation.to_be_bytes()[..]);
        let mut appended = None;
        if !self.new_payloads.is_empty() || !self.new_log.is_empty() {
            let total = self.new_payloads.values().map(|p| p.2.len()).sum::<usize>()
                + self.new_log.iter().map(|e| e.2.len()).sum::<usize>();
            let mut buf = Vec::with_capacity(total);
            let mut placed = Vec::with_capacity(self.new_payloads.len());
            for (key, (seq, hash, bytes)) in std::mem::take(&mut self.new_payloads) {
                placed.push((key, seq, hash, buf.len() as u64, bytes.len() as u32));
                buf.extend_from_slice(&bytes);
            }
            let mut logged = Vec::with_capacity(self.new_log.len());
            for (a, seq, bytes) in std::mem::take(&mut self.new_log) {
                logged.push((a, seq, buf.len() as u64, bytes.len() as u32));
                buf.extend_from_slice(&bytes);
            }
            let (segment, start) = self
                .store
                .packs
                .append(&buf)
                .map_err(|e| self.store.packs_error(e))?;
            let at = |offset: u64, len: u32| Location {
                segment,
                offset: start + offset,
                len,
            };
            for ((a, rid), seq, hash, offset, len) in placed {
                let r = PayloadRef {
                    seq,
                    hash,
                    at: at(offset, len),
                };
                self.put_meta(k_payload(&a, &rid), &r);
            }
            for (a, seq, offset, len) in logged {
                self.batch
                    .insert(k_log(&a, seq), &log_ref(&at(offset, len))[..]);
            }
            self.batch.insert(
                k_pack(segment),
                &(start + buf.len() as u64).to_be_bytes()[..],
            );
            appended = Some((segment, start));
        }
        let purged = std::mem::take(&mut self.purged);
        for at in &purged {
            self.batch.insert(k_erase(at), &at.len.to_be_bytes()[..]);
        }
        if let Err(e) = self.store.db.apply_batch(self.batch) {
            if let Some((segment, start)) = appended {
                self.store.packs.abandon(segment, start);
            }
            return Err(e.into());
        }
        if self.members_changed
            && let Some(members) = self.members.take()
        {
            self.store.set_members(members);
        }
        if !self.changes.is_empty() {
            self.store.index.enqueue(self.changes, generation);
        }
        if !self.name_changes.is_empty() {
            let mut names = self
                .store
                .profile_names
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(map) = names.as_mut() {
                for (author, n) in self.name_changes {
                    match n {
                        Some(n) => map.insert(author, n),
                        None => map.remove(&author),
                    };
                }
            }
        }
        if !self.answer_changes.is_empty() {
            let mut answers = self
                .store
                .answers
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(index) = answers.as_mut() {
                for (key, about) in self.answer_changes {
                    index.set(key, about);
                }
            }
        }
        if !self.tally_changes.is_empty() {
            let mut tally = self
                .store
                .tally
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(tally) = tally.as_mut() {
                for (key, counted) in self.tally_changes {
                    tally.set(key, counted);
                }
            }
        }
        if !self.calendar_changes.is_empty() {
            let mut calendar = self
                .store
                .calendar
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(calendar) = calendar.as_mut() {
                for (key, span) in self.calendar_changes {
                    calendar.set(key, span);
                }
            }
        }
        Ok(Committed { purged })
    }
}
