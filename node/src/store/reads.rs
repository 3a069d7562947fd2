//! What the store answers: authors and their vouchers, heads and entries, payloads and records,
//! tags, the time index, full-text search, counts, refusal counters and fork proofs.

use std::collections::{BTreeMap, HashMap, HashSet};

use spindel_protocol::NodeId;
use spindel_protocol::codec;
use spindel_protocol::entry::{
    Entry, HEADER_BYTES_MAX, Hash, Head, Op, Payload, RecordId, WIRE_ENTRY_BYTES_MAX,
};
use spindel_protocol::record::{Kind, Record};

use super::calendar::{Calendar, Span};
use super::handle::{ProfileName, ProfileNames, Store};
use super::keys::{
    K_GENERATION, TimeKey, k_author, k_bytes, k_counter, k_head, k_log, k_payload, k_received,
    k_record, key, parse_log_ref,
};
use super::tally::{Counted, Tally};
use super::types::{
    AuthorMeta, ForkProof, Incoming, PayloadRef, RecordMeta, StoreError, TextHit, corrupt,
    decode_meta, node_id_at, record_id_at, u64_value,
};

impl Store {
    /// Count of entries ever applied; the full-text index records the generation it reflects.
    pub fn generation(&self) -> Result<u64, StoreError> {
        match self.db.get(K_GENERATION)? {
            Some(v) => u64_value("generation", &v),
            None => Ok(0),
        }
    }

    pub fn author(&self, author: &NodeId) -> Result<Option<AuthorMeta>, StoreError> {
        let Some(mut meta) = self.author_stored(author)? else {
            return Ok(None);
        };
        self.with_profile_names(|names| fill_names(&mut meta, names.get(author)))?;
        Ok(Some(meta))
    }

    /// Whether entries of `author` are accepted here (read as stored: no profile names needed).
    pub fn is_admitted(&self, author: &NodeId) -> Result<bool, StoreError> {
        Ok(self.author_stored(author)?.is_some_and(|m| m.admitted))
    }

    /// The author's metadata as stored (without the names of its profile).
    pub(super) fn author_stored(&self, author: &NodeId) -> Result<Option<AuthorMeta>, StoreError> {
        self.db
            .get(k_author(author))?
            .map(|v| decode_meta("author", &v))
            .transpose()
    }

    /// Every author the store knows of, with its metadata.
    pub fn authors(&self) -> Result<Vec<(NodeId, AuthorMeta)>, StoreError> {
        let mut out: Vec<(NodeId, AuthorMeta)> = self
            .db
            .scan_prefix([b'A'])
            .map(|item| {
                let (k, v) = item?;
                Ok((node_id_at(&k, 1)?, decode_meta("author", &v)?))
            })
            .collect::<Result<_, StoreError>>()?;
        self.with_profile_names(|names| {
            for (id, meta) in &mut out {
                fill_names(meta, names.get(id));
            }
        })?;
        Ok(out)
    }

    /// Runs `f` over every author's profile names, building them from the profile payloads
    /// the first time.
    fn with_profile_names<R>(&self, f: impl FnOnce(&ProfileNames) -> R) -> Result<R, StoreError> {
        self.with_lazy(&self.profile_names, f, || {
            let mut map = ProfileNames::new();
            for item in self.db.scan_prefix([b'A']) {
                let (k, v) = item?;
                let id = node_id_at(&k, 1)?;
                let meta: AuthorMeta = decode_meta("author", &v)?;
                let Some(rid) = meta.profile else { continue };
                let Some(rmeta) = self.record_meta(&id, &rid)? else {
                    continue;
                };
                if let Some(Record::Profile(p)) = self.load_record(&id, &rid, &rmeta)? {
                    map.insert(id, (p.name, p.display_name));
                }
            }
            Ok(map)
        })
    }

    /// When this node last accepted an entry of `author` (ms since the epoch, its own clock).
    pub fn last_received_ms(&self, author: &NodeId) -> Result<Option<u64>, StoreError> {
        match self.db.get(k_received(author))? {
            Some(v) => {
                let bytes: [u8; 8] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| corrupt("last-received time", "not 8 bytes"))?;
                Ok(Some(u64::from_be_bytes(bytes)))
            }
            None => Ok(None),
        }
    }

    /// The pinned aggregators that vouch for `author` here (none: not vouched for, or admitted
    /// before vouchers were kept).
    pub fn vouchers(&self, author: &NodeId) -> Result<Vec<NodeId>, StoreError> {
        self.db
            .scan_prefix(key(b'V', &[&author.0]))
            .map(|item| node_id_at(&item?.0, 33))
            .collect()
    }

    /// Every author's vouchers ([`Store::vouchers`]), in one scan.
    pub fn vouchers_all(&self) -> Result<HashMap<NodeId, Vec<NodeId>>, StoreError> {
        let mut out: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
        for item in self.db.scan_prefix([b'V']) {
            let (k, _) = item?;
            out.entry(node_id_at(&k, 1)?)
                .or_default()
                .push(node_id_at(&k, 33)?);
        }
        Ok(out)
    }

    /// Every admitted author (read as stored: no profile names needed).
    pub fn admitted_authors(&self) -> Result<HashSet<NodeId>, StoreError> {
        let mut out = HashSet::new();
        for item in self.db.scan_prefix([b'A']) {
            let (k, v) = item?;
            let meta: AuthorMeta = decode_meta("author", &v)?;
            if meta.admitted {
                out.insert(node_id_at(&k, 1)?);
            }
        }
        Ok(out)
    }

    pub fn head(&self, author: &NodeId) -> Result<Option<Head>, StoreError> {
        self.db
            .get(k_head(author))?
            .map(|v| decode_meta("head", &v))
            .transpose()
    }

    /// The head of every author with at least one entry.
    pub fn heads(&self) -> Result<BTreeMap<NodeId, Head>, StoreError> {
        self.db
            .scan_prefix([b'H'])
            .map(|item| {
                let (k, v) = item?;
                Ok((node_id_at(&k, 1)?, decode_meta("head", &v)?))
            })
            .collect()
    }

    /// The stored entry of `author` at `seq`.
    pub fn entry(&self, author: &NodeId, seq: u64) -> Result<Option<Entry>, StoreError> {
        let key = k_log(author, seq);
        match self.db.get(&key)? {
            Some(v) => self.log_entry(&key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// The entry an `L` key's value names: read from the packs where it says (format 4), or
    /// the value itself (an entry written under format 2 or 3).
    pub(super) fn log_entry(&self, key: &[u8], value: &[u8]) -> Result<Entry, StoreError> {
        let what = || format!("log entry {}", hex::encode(key));
        let entry = match parse_log_ref(value) {
            None => Entry::decode(value).map_err(|e| corrupt(what(), e))?,
            Some(at) => {
                if at.len as usize > WIRE_ENTRY_BYTES_MAX {
                    return Err(corrupt(
                        what(),
                        format!("names {} bytes, over {WIRE_ENTRY_BYTES_MAX}", at.len),
                    ));
                }
                let bytes = self
                    .packs
                    .read(at)
                    .map_err(|e| self.packs_error(e))?
                    .ok_or_else(|| corrupt(what(), format!("missing from pack {}", at.segment)))?;
                Entry::decode(&bytes).map_err(|e| corrupt(what(), e))?
            }
        };
        let h = entry.header();
        if key != k_log(&h.author, h.seq).as_slice() {
            return Err(corrupt(what(), "holds another author's or seq's entry"));
        }
        Ok(entry)
    }

    /// Up to `max` entries of `author` from `from_seq` on, each with its payload if still held.
    pub fn entries_from(
        &self,
        author: &NodeId,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<Incoming>, StoreError> {
        let start = k_log(author, from_seq.max(1));
        let end = k_log(author, u64::MAX);
        let mut out = Vec::new();
        for item in self.db.range(start..=end).take(max) {
            let (k, v) = item?;
            let entry = self.log_entry(&k, &v)?;
            let h = entry.header();
            // Only the current version travels with its payload: older ones are purged.
            let payload = match h.op {
                Op::Put => self.payload_at(&h.author, &h.record_id, h.seq)?,
                Op::Tombstone => None,
            };
            out.push(Incoming { entry, payload });
        }
        Ok(out)
    }

    /// Where the payload of `author`'s record is kept, if this node holds it.
    pub fn payload_ref(
        &self,
        author: &NodeId,
        rid: &RecordId,
    ) -> Result<Option<PayloadRef>, StoreError> {
        self.db
            .get(k_payload(author, rid))?
            .map(|v| decode_meta("payload ref", &v))
            .transpose()
    }

    /// The payload bytes of `author`'s record at version `seq`, if held (only the current
    /// version's payload is kept). Bytes that do not match their hash (erased while read) are
    /// treated as gone.
    pub fn payload_at(
        &self,
        author: &NodeId,
        rid: &RecordId,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(r) = self.payload_ref(author, rid)? else {
            return Ok(None);
        };
        if r.seq != seq {
            return Ok(None);
        }
        let bytes = self.packs.read(r.at).map_err(|e| self.packs_error(e))?;
        Ok(bytes.filter(|b| Hash::of(b) == r.hash))
    }

    pub fn record_meta(
        &self,
        author: &NodeId,
        rid: &RecordId,
    ) -> Result<Option<RecordMeta>, StoreError> {
        self.db
            .get(k_record(author, rid))?
            .map(|v| decode_meta("record", &v))
            .transpose()
    }

    /// The signed payload length of `author`'s record `rid` now (0 when it is deleted or
    /// unknown): what a new version of it frees of the author's payload bytes.
    pub fn current_payload_len(&self, author: &NodeId, rid: &RecordId) -> Result<u64, StoreError> {
        let Some(meta) = self.record_meta(author, rid)? else {
            return Ok(0);
        };
        let held = self.payload_ref(author, rid)?;
        Ok(u64::from(self.current_len(author, &meta, held.as_ref())?))
    }

    /// The signed payload length of a record's current version (`meta`): from where its payload
    /// is kept, or from its header when it arrived without one.
    pub(super) fn current_len(
        &self,
        author: &NodeId,
        meta: &RecordMeta,
        held: Option<&PayloadRef>,
    ) -> Result<u32, StoreError> {
        if meta.deleted {
            return Ok(0);
        }
        if let Some(r) = held.filter(|r| r.seq == meta.seq) {
            return Ok(r.at.len);
        }
        Ok(self
            .entry(author, meta.seq)?
            .map_or(0, |e| e.header().payload_len))
    }

    /// Signed payload bytes of `author`'s current versions (see
    /// [`spindel_protocol::ingest::AUTHOR_PAYLOAD_BYTES_MAX`]).
    pub fn payload_bytes_of(&self, author: &NodeId) -> Result<u64, StoreError> {
        match self.db.get(k_bytes(author))? {
            Some(v) => u64_value("payload bytes", &v),
            None => Ok(0),
        }
    }

    /// Every author's payload bytes, counted from the records (what each batch keeps up to
    /// date under `B`).
    pub fn recount_payload_bytes(&self) -> Result<BTreeMap<NodeId, u64>, StoreError> {
        let mut totals: BTreeMap<NodeId, u64> = BTreeMap::new();
        for item in self.db.scan_prefix([b'R']) {
            let (k, v) = item?;
            let author = node_id_at(&k, 1)?;
            let rid = record_id_at(&k, 33)?;
            let meta: RecordMeta = decode_meta("record", &v)?;
            let held = self.payload_ref(&author, &rid)?;
            let len = self.current_len(&author, &meta, held.as_ref())?;
            *totals.entry(author).or_default() += u64::from(len);
        }
        Ok(totals)
    }

    /// The current content of a visible record.
    pub fn load_record(
        &self,
        author: &NodeId,
        rid: &RecordId,
        meta: &RecordMeta,
    ) -> Result<Option<Record>, StoreError> {
        let Some(hash) = meta.payload.filter(|_| !meta.deleted) else {
            return Ok(None);
        };
        let Some(bytes) = self.payload_at(author, rid, meta.seq)? else {
            return Ok(None);
        };
        let payload = Payload::decode(&bytes).map_err(|e| corrupt(format!("payload {hash}"), e))?;
        Record::from_json(meta.kind, &payload.body)
            .map(Some)
            .map_err(|e| corrupt(format!("payload {hash}"), e))
    }

    /// Every record of `author` (current state, deleted ones included).
    pub fn records_of(&self, author: &NodeId) -> Result<Vec<(RecordId, RecordMeta)>, StoreError> {
        self.db
            .scan_prefix(key(b'R', &[&author.0]))
            .map(|item| {
                let (k, v) = item?;
                Ok((record_id_at(&k, 33)?, decode_meta("record", &v)?))
            })
            .collect()
    }

    /// Runs `f` over the tally of every visible record, building it from the payloads the
    /// first time (tags and ratios are content: they are never written to sled).
    pub fn with_tally<R>(&self, f: impl FnOnce(&Tally) -> R) -> Result<R, StoreError> {
        self.with_lazy(&self.tally, f, || {
            Ok(self
                .read_payloads(true, false, false)?
                .0
                .unwrap_or_default())
        })
    }

    /// Runs `f` over the answers index, building it from the payloads the first time.
    pub fn with_answers<R>(
        &self,
        f: impl FnOnce(&super::types::Answers) -> R,
    ) -> Result<R, StoreError> {
        self.with_lazy(&self.answers, f, || {
            Ok(self
                .read_payloads(false, false, true)?
                .2
                .unwrap_or_default())
        })
    }

    /// Runs `f` over the calendar index of every visible event, building it from the events'
    /// payloads the first time (times are content: they are never written to sled).
    pub fn with_calendar<R>(&self, f: impl FnOnce(&Calendar) -> R) -> Result<R, StoreError> {
        self.with_lazy(&self.calendar, f, || {
            Ok(self
                .read_payloads(false, true, false)?
                .1
                .unwrap_or_default())
        })
    }

    /// The maps read from the payloads that are asked for (the tally, the calendar, the
    /// answers), built afresh in one pass over the records.
    #[allow(clippy::type_complexity)]
    fn read_payloads(
        &self,
        tally: bool,
        calendar: bool,
        answers: bool,
    ) -> Result<
        (
            Option<Tally>,
            Option<Calendar>,
            Option<super::types::Answers>,
        ),
        StoreError,
    > {
        let (mut tally, mut calendar, mut answers) = (
            tally.then(Tally::default),
            calendar.then(Calendar::default),
            answers.then(super::types::Answers::default),
        );
        if tally.is_none() && calendar.is_none() && answers.is_none() {
            return Ok((None, None, None));
        }
        for item in self.db.scan_prefix([b'R']) {
            let (k, v) = item?;
            let meta: RecordMeta = decode_meta("record", &v)?;
            let wanted = (tally.is_some() && meta.visible())
                || (calendar.is_some() && meta.kind == Kind::Event)
                || (answers.is_some() && meta.kind == Kind::Experience);
            if !wanted {
                continue;
            }
            let key = (node_id_at(&k, 1)?, record_id_at(&k, 33)?);
            let Some(record) = self.load_record(&key.0, &key.1, &meta)? else {
                continue;
            };
            if let Some(t) = tally.as_mut().filter(|_| meta.visible()) {
                t.set(key, Some(Counted::of(&record)));
            }
            if let Some(c) = calendar.as_mut().filter(|_| meta.kind == Kind::Event) {
                c.set(key, event_span(&record, meta.updated_ms));
            }
            if let Some(a) = answers.as_mut().filter(|_| meta.kind == Kind::Experience) {
                a.set(key, super::types::about_of(&record));
            }
        }
        Ok((tally, calendar, answers))
    }

    /// Builds the in-memory maps read from the payloads that are not built yet, in one pass
    /// ([`Store::read_payloads`]): a node does this as it starts, so no first request waits
    /// for a build.
    pub fn warm(&self) -> Result<(), StoreError> {
        fn unbuilt<M>(cell: &std::sync::RwLock<Option<M>>) -> bool {
            cell.read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_none()
        }
        fn put<M>(cell: &std::sync::RwLock<Option<M>>, built: Option<M>) {
            if let Some(built) = built {
                cell.write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_or_insert(built);
            }
        }
        let _write = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tally, calendar, answers) = self.read_payloads(
            unbuilt(&self.tally),
            unbuilt(&self.calendar),
            unbuilt(&self.answers),
        )?;
        put(&self.tally, tally);
        put(&self.calendar, calendar);
        put(&self.answers, answers);
        Ok(())
    }

    /// Whether the tally every batch keeps holds what a rebuild from the payloads gives
    /// (tests call it after each kind of change; an unbuilt tally is exact).
    pub fn tally_is_exact(&self) -> Result<bool, StoreError> {
        let fresh = self
            .read_payloads(true, false, false)?
            .0
            .unwrap_or_default();
        let kept = self
            .tally
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(kept.as_ref().is_none_or(|kept| kept.same_as(&fresh)))
    }

    /// Runs `f` over the in-memory map in `cell`, building it with `build` the first time,
    /// under the write lock (so no batch changes what it reads; batches keep it current).
    fn with_lazy<M, R>(
        &self,
        cell: &std::sync::RwLock<Option<M>>,
        f: impl FnOnce(&M) -> R,
        build: impl FnOnce() -> Result<M, StoreError>,
    ) -> Result<R, StoreError> {
        if let Some(map) = cell
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            return Ok(f(map));
        }
        let _write = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut guard = cell
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(build()?);
        }
        match guard.as_ref() {
            Some(map) => Ok(f(map)),
            None => Err(corrupt("in-memory index", "not built")),
        }
    }

    /// Records whose current version is held without its payload (it arrived stripped), at
    /// most `max`, from a random place on (so records that cannot be completed never keep the
    /// others waiting): (author, seq) of that version, to ask an aggregator for. Authors this
    /// node does not take entries of (frozen, not admitted) are left out.
    pub fn header_only_current(&self, max: usize) -> Result<Vec<(NodeId, u64)>, StoreError> {
        let usable: std::collections::HashSet<NodeId> = self
            .authors()?
            .into_iter()
            .filter(|(_, m)| m.admitted && !m.frozen)
            .map(|(id, _)| id)
            .collect();
        // Under a charter a record past its key's cut, or erased by the members' order, is
        // kept without its payload on purpose: never asked for.
        let members = self.members();
        let withheld = |author: &NodeId, k: &[u8], meta: &RecordMeta| {
            let Some(m) = &members else {
                return false;
            };
            let past_cut = !meta.kind.is_membership()
                && matches!(
                    m.membership.standing(author),
                    spindel_protocol::membership::Standing::Former { until, .. } if meta.seq > until
                );
            let erased = k
                .get(33..49)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .is_some_and(|rid| {
                    m.membership
                        .is_erased(author, &spindel_protocol::entry::RecordId(rid))
                });
            past_cut || erased
        };
        let mut start = [0u8; 48];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut start);
        let from = key(b'R', &[&start]);
        let after = self.db.range(from.clone()..key(b'R' + 1, &[]));
        let before = self.db.range(vec![b'R']..from);
        let mut out = Vec::new();
        for item in after.chain(before) {
            if out.len() >= max {
                break;
            }
            let (k, v) = item?;
            let author = node_id_at(&k, 1)?;
            if !usable.contains(&author) {
                continue;
            }
            let meta: RecordMeta = decode_meta("record", &v)?;
            if !meta.deleted && meta.payload.is_none() && !withheld(&author, &k, &meta) {
                out.push((author, meta.seq));
            }
        }
        Ok(out)
    }

    /// Visible (current, not deleted) records of one author.
    pub fn visible_count_of(&self, author: &NodeId) -> Result<u64, StoreError> {
        self.with_tally(|t| t.count_of(author))
    }

    /// Visible records in time order (newest first), from just after `after` (a time key).
    pub(crate) fn time_index(
        &self,
        after: Option<&TimeKey>,
    ) -> impl Iterator<Item = Result<(TimeKey, NodeId, RecordId, u8), StoreError>> + '_ {
        let start = match after {
            Some(k) => std::ops::Bound::Excluded(k.0.clone()),
            None => std::ops::Bound::Included(vec![b'T']),
        };
        self.db
            .range::<Vec<u8>, _>((start, std::ops::Bound::Excluded(vec![b'T' + 1])))
            .map(|item| {
                let (k, v) = item?;
                let author = node_id_at(&k, 9)?;
                let rid = record_id_at(&k, 41)?;
                let code = v.first().copied().unwrap_or(u8::MAX);
                Ok((TimeKey(k.to_vec()), author, rid, code))
            })
    }

    /// Full-text search: (update time, author, record) of every match; `None` when the text
    /// has no searchable word.
    pub fn search(&self, text: &str) -> Result<Option<Vec<TextHit>>, StoreError> {
        self.index.flush()?;
        Ok(self.index.search.search(text)?.map(|hits| {
            hits.into_iter()
                .map(|h| (h.updated_ms, h.author, h.record))
                .collect()
        }))
    }

    /// How the full-text index's commits and merges go (`/metrics`).
    pub fn index_health(&self) -> crate::search::IndexHealth {
        self.index.health()
    }

    /// Whether the full-text index still holds `word`, deleted documents included (see
    /// `SearchIndex::holds_word`); pending changes are committed first.
    pub fn index_holds_word(&self, word: &str) -> Result<bool, StoreError> {
        self.index.flush()?;
        Ok(self.index.search.holds_word(word)?)
    }

    /// Visible records, counted.
    pub fn visible_count(&self) -> Result<u64, StoreError> {
        self.with_tally(|t| t.len() as u64)
    }

    /// The refusal counter `reason` as stored.
    pub(super) fn counter(&self, reason: &str) -> Result<u64, StoreError> {
        match self.db.get(k_counter(reason))? {
            Some(v) => u64_value("counter", &v),
            None => Ok(0),
        }
    }

    /// Refusals so far, by reason.
    pub fn refusals(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.db
            .scan_prefix([b'C'])
            .map(|item| {
                let (k, v) = item?;
                let reason = String::from_utf8_lossy(&k[1..]).into_owned();
                Ok((reason, u64_value("counter", &v)?))
            })
            .collect()
    }

    /// Refusals so far, by author and reason.
    pub fn refusals_by_author(
        &self,
    ) -> Result<BTreeMap<NodeId, BTreeMap<String, u64>>, StoreError> {
        let mut out: BTreeMap<NodeId, BTreeMap<String, u64>> = BTreeMap::new();
        for item in self.db.scan_prefix([b'D']) {
            let (k, v) = item?;
            let author = node_id_at(&k, 1)?;
            let reason = String::from_utf8_lossy(&k[33..]).into_owned();
            out.entry(author)
                .or_default()
                .insert(reason, u64_value("counter", &v)?);
        }
        Ok(out)
    }

    /// Proven forks, by author.
    pub fn forks(&self) -> Result<Vec<(NodeId, ForkProof)>, StoreError> {
        self.db
            .scan_prefix([b'F'])
            .map(|item| {
                let (k, v) = item?;
                let proof = codec::decode::<ForkProof, { 4 * HEADER_BYTES_MAX }>("fork proof", &v)
                    .map_err(|e| corrupt("fork proof", e))?;
                Ok((node_id_at(&k, 1)?, proof))
            })
            .collect()
    }
}

/// Sets `meta`'s names from its current profile's (or clears them).
fn fill_names(meta: &mut AuthorMeta, names: Option<&ProfileName>) {
    meta.profile_name = names.and_then(|n| n.0.clone());
    meta.display_name = names.map(|n| n.1.clone());
}

/// An event's times, for the calendar index (`None` for other kinds).
pub(super) fn event_span(record: &Record, updated_ms: u64) -> Option<Span> {
    let Record::Event(event) = record else {
        return None;
    };
    let (start_ms, end_ms) = event.span_ms()?;
    Some(Span {
        start_ms,
        end_ms,
        updated_ms,
    })
}
