//! The store's writes besides [`Store::apply`]: admissions (`allow`, an aggregator's list at a
//! region, `disallow`), vouches, refusals counted before the store saw an entry, fork proofs a
//! peer sent, and the charter under which the regions' acts decide instead (`members.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use spindel_protocol::NodeId;
use spindel_protocol::charter::{CHARTER_FILE_BYTES_MAX, SignedCharter, VerifiedCharter};
use spindel_protocol::codec;
use spindel_protocol::entry::Entry;
use spindel_protocol::entry::RecordId;
use spindel_protocol::membership::Act;
use spindel_protocol::sync::HEADS_AUTHORS_MAX;

use super::handle::Store;
use super::keys::{K_CHARTER, k_act, k_author, k_counter, k_fork, k_mirror, k_vouch, key};
use super::members::{Held, Members, settle};
use super::types::{
    AdmissionChanges, AuthorMeta, ForkProof, StoreError, corrupt, decode_meta, node_id_at,
    record_id_at,
};

impl Store {
    /// Marks `author` as admitted (aggregator: `spindel allow`; every node: itself).
    pub fn admit(&self, author: &NodeId, name: Option<String>) -> Result<AuthorMeta, StoreError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut meta = self.author_stored(author)?.unwrap_or_default();
        meta.admitted = true;
        if name.is_some() {
            meta.admitted_name = name;
        }
        self.db.insert(k_author(author), codec::encode(&meta))?;
        self.db.flush()?;
        Ok(meta)
    }

    /// [`Store::admit`] under a name no other key holds here (checked under the write lock, so
    /// two admissions at once cannot both take it). `me` is this node, `reserved` its own name.
    /// At most [`HEADS_AUTHORS_MAX`] regions are admitted: the most one admission list carries.
    pub fn admit_unique(
        &self,
        author: &NodeId,
        name: &str,
        me: &NodeId,
        reserved: &str,
    ) -> Result<AuthorMeta, StoreError> {
        if self.members().is_some() {
            return Err(StoreError::CharterDecides);
        }
        {
            let _guard = self
                .write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if name == reserved {
                return Err(StoreError::NameTaken {
                    name: name.to_string(),
                    holder: "this aggregator".to_string(),
                });
            }
            let mut others_admitted = 0usize;
            for item in self.db.scan_prefix([b'A']) {
                let (k, v) = item?;
                let id = node_id_at(&k, 1)?;
                let meta: AuthorMeta = decode_meta("author", &v)?;
                if id != *author && meta.admitted_name.as_deref() == Some(name) {
                    return Err(StoreError::NameTaken {
                        name: name.to_string(),
                        holder: id.to_hex(),
                    });
                }
                others_admitted += usize::from(id != *author && id != *me && meta.admitted);
            }
            // Every region's session carries the whole list (a truncated one would read as
            // removals at the regions).
            if others_admitted >= HEADS_AUTHORS_MAX {
                return Err(StoreError::TooManyAdmitted {
                    max: HEADS_AUTHORS_MAX,
                });
            }
        }
        self.admit(author, Some(name.to_string()))
    }

    /// A region takes the admission list of `from`, an aggregator it pinned: the list is the
    /// truth for the authors `from` vouches for, removals included. Every listed author is
    /// accepted here, under the name the aggregator admitted it with (this node's own entry
    /// too), and `from` is recorded as vouching for it (`V` keys). An author `from` vouched
    /// for that the list leaves out loses that vouch, and is no longer admitted (its name
    /// goes too) unless another pinned aggregator still vouches for it. An admitted author with
    /// no recorded voucher (a store or a backup from before vouchers were kept) is treated the
    /// same: the first list without it ends its admission. This node is never un-admitted.
    ///
    /// A name is held by one key: another author holding it here loses it. A listed author
    /// without a name has none here; an invalid name counts as a refusal and is not taken.
    ///
    /// Linear in the list and the authors known here: one pass builds the list's set, one the
    /// name-to-holder map, one the vouchers; only reading the authors and writing the changes
    /// happen under the write lock (the flush after it).
    pub fn take_admissions(
        &self,
        list: &[(NodeId, Option<String>)],
        from: &NodeId,
        me: &NodeId,
    ) -> Result<AdmissionChanges, StoreError> {
        // Under a charter the regions' acts decide, never an aggregator's list.
        if self.members().is_some() {
            return Ok(AdmissionChanges::default());
        }
        // Checked before the lock: which keys are listed, under which (valid) names. A key
        // new here must be a usable public key (a point decompression, so only for new ones;
        // authors are never deleted, so a key known now is known under the lock).
        let mut bad = 0u64;
        let mut listed: HashSet<NodeId> = HashSet::with_capacity(list.len());
        let mut valid: Vec<(NodeId, Option<&str>)> = Vec::with_capacity(list.len());
        for (id, name) in list {
            if !self.db.contains_key(k_author(id))? && !id.is_usable() {
                continue;
            }
            let name = name.as_deref().filter(|n| {
                let ok = spindel_protocol::record::validate_region_name(n).is_ok();
                bad += u64::from(!ok);
                ok
            });
            listed.insert(*id);
            valid.push((*id, name));
        }
        let guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut authors: HashMap<NodeId, AuthorMeta> = HashMap::new();
        // Every key holding a name (more than one only in a store written before names were
        // kept unique).
        let mut holders: HashMap<String, Vec<NodeId>> = HashMap::new();
        for item in self.db.scan_prefix([b'A']) {
            let (k, v) = item?;
            let id = node_id_at(&k, 1)?;
            let meta: AuthorMeta = decode_meta("author", &v)?;
            if let Some(n) = &meta.admitted_name {
                holders.entry(n.clone()).or_default().push(id);
            }
            authors.insert(id, meta);
        }
        let mut vouchers = self.vouchers_all()?;
        let mut changes = AdmissionChanges::default();
        let mut touched = BTreeSet::new();
        let mut batch = sled::Batch::default();
        let mut vouches_changed = false;
        for (id, name) in valid {
            let meta = authors.entry(id).or_default();
            if id != *me {
                if !meta.admitted {
                    meta.admitted = true;
                    touched.insert(id);
                    changes.admitted.push(id);
                }
                let by = vouchers.entry(id).or_default();
                if !by.contains(from) {
                    by.push(*from);
                    batch.insert(k_vouch(&id, from), &b""[..]);
                    vouches_changed = true;
                }
            }
            // The aggregator's list is the truth: a listed author without a name has none
            // (a name kept from elsewhere, such as a profile's claim an older aggregator
            // relayed, must not survive).
            if meta.admitted_name.as_deref() == name {
                continue;
            }
            let old = std::mem::replace(&mut meta.admitted_name, name.map(str::to_string));
            touched.insert(id);
            changes.renamed.push((id, meta.admitted_name.clone()));
            if let Some(old) = old
                && let Some(h) = holders.get_mut(&old)
            {
                h.retain(|x| *x != id);
            }
            let Some(name) = name else { continue };
            let before = holders
                .insert(name.to_string(), vec![id])
                .unwrap_or_default();
            for other in before.into_iter().filter(|o| *o != id) {
                if let Some(m) = authors.get_mut(&other)
                    && m.admitted_name.as_deref() == Some(name)
                {
                    m.admitted_name = None;
                    touched.insert(other);
                    changes.renamed.push((other, None));
                }
            }
        }
        // Removals: `from` no longer vouches for what it does not list.
        for (id, meta) in authors.iter_mut() {
            if *id == *me || listed.contains(id) {
                continue;
            }
            let remaining = match vouchers.get_mut(id) {
                Some(by) => {
                    if by.contains(from) {
                        by.retain(|b| b != from);
                        batch.remove(k_vouch(id, from));
                        vouches_changed = true;
                    }
                    by.len()
                }
                None => 0,
            };
            if meta.admitted && remaining == 0 {
                meta.admitted = false;
                if meta.admitted_name.take().is_some() {
                    changes.renamed.push((*id, None));
                }
                touched.insert(*id);
                changes.removed.push(*id);
            }
        }
        if bad > 0 {
            let before = self.counter("bad_admitted_name")?;
            batch.insert(
                k_counter("bad_admitted_name"),
                &(before + bad).to_be_bytes()[..],
            );
        }
        for id in &touched {
            if let Some(meta) = authors.get(id) {
                batch.insert(k_author(id), codec::encode(meta));
            }
        }
        let wrote = !touched.is_empty() || vouches_changed;
        if wrote || bad > 0 {
            self.db.apply_batch(batch)?;
        }
        drop(guard);
        if wrote {
            self.db.flush()?;
        }
        Ok(changes)
    }

    /// A region accepts the authors its pinned aggregator `by` vouches for (admitted there:
    /// it relays only those), and records `by` as one that vouches for `author` (see
    /// [`Store::take_admissions`]). Keeps the name known; never unfreezes.
    pub fn vouch(&self, author: &NodeId, by: &NodeId) -> Result<(), StoreError> {
        if self.members().is_some() {
            return Ok(());
        }
        let wrote = {
            let _guard = self
                .write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut batch = sled::Batch::default();
            let mut wrote = false;
            let mut meta = self.author_stored(author)?.unwrap_or_default();
            if !meta.admitted {
                meta.admitted = true;
                batch.insert(k_author(author), codec::encode(&meta));
                wrote = true;
            }
            if !self.db.contains_key(k_vouch(author, by))? {
                batch.insert(k_vouch(author, by), &b""[..]);
                wrote = true;
            }
            if wrote {
                self.db.apply_batch(batch)?;
            }
            wrote
        };
        if wrote {
            self.db.flush()?;
        }
        Ok(())
    }

    /// Aggregator (`spindel disallow`): ends the admission of `author`. Its name is freed and
    /// no aggregator vouches for it any more; its stored entries stay (signed history), new
    /// ones are refused as not admitted. `None` when it was not admitted.
    pub fn disallow(&self, author: &NodeId) -> Result<Option<AuthorMeta>, StoreError> {
        if self.members().is_some() {
            return Err(StoreError::CharterDecides);
        }
        let before = {
            let _guard = self
                .write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(before) = self.author_stored(author)?.filter(|m| m.admitted) else {
                return Ok(None);
            };
            let mut meta = before.clone();
            meta.admitted = false;
            meta.admitted_name = None;
            let mut batch = sled::Batch::default();
            batch.insert(k_author(author), codec::encode(&meta));
            for item in self.db.scan_prefix(key(b'V', &[&author.0])) {
                let (k, _) = item?;
                batch.remove(k);
            }
            self.db.apply_batch(batch)?;
            before
        };
        self.db.flush()?;
        Ok(Some(before))
    }

    /// Aggregator (`spindel allow NODEID --mirror`): `aggregator` may mirror this one. Refused
    /// (`false`) for a key admitted as a region here: one key is one or the other.
    pub fn allow_mirror(&self, aggregator: &NodeId) -> Result<bool, StoreError> {
        {
            let _guard = self
                .write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if self.author_stored(aggregator)?.is_some_and(|m| m.admitted) {
                return Ok(false);
            }
            self.db.insert(k_mirror(aggregator), &b""[..])?;
        }
        self.db.flush()?;
        Ok(true)
    }

    /// Aggregator (`spindel disallow`): `aggregator` may no longer mirror this one; `false`
    /// when it was not allowed to.
    pub fn disallow_mirror(&self, aggregator: &NodeId) -> Result<bool, StoreError> {
        let was = self.db.remove(k_mirror(aggregator))?.is_some();
        if was {
            self.db.flush()?;
        }
        Ok(was)
    }

    /// Whether `aggregator` is allowed to mirror this one.
    pub fn is_mirror(&self, aggregator: &NodeId) -> Result<bool, StoreError> {
        Ok(self.db.contains_key(k_mirror(aggregator))?)
    }

    /// Adds `n` to the refusal counter `reason` (refusals found before the store saw an entry,
    /// such as malformed bytes).
    pub fn count_refusal(&self, reason: &str, n: u64) -> Result<(), StoreError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = self.counter(reason)?;
        self.db
            .insert(k_counter(reason), &(before + n).to_be_bytes()[..])?;
        Ok(())
    }

    /// Keeps a fork proof a peer sent (checked with `ingest::check_fork_proof` by the caller)
    /// and freezes its author. Returns false when a proof for that author is already held.
    pub fn record_fork_proof(&self, first: &Entry, second: &Entry) -> Result<bool, StoreError> {
        let (a, seq) = (first.header().author, first.header().seq);
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.db.get(k_fork(&a))?.is_some() {
            return Ok(false);
        }
        let mut meta = self.author_stored(&a)?.unwrap_or_default();
        meta.frozen = true;
        let mut batch = sled::Batch::default();
        batch.insert(
            k_fork(&a),
            codec::encode(&ForkProof {
                seq,
                first: first.to_wire(),
                second: second.to_wire(),
            }),
        );
        batch.insert(k_author(&a), codec::encode(&meta));
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(true)
    }
}

impl Store {
    /// The charter's membership, if this node adopted one.
    pub fn members(&self) -> Option<Arc<Members>> {
        self.members
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Moves whenever membership changes (an act took effect or was withdrawn, or a charter
    /// was adopted).
    pub fn members_generation(&self) -> u64 {
        self.members_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keeps `members` as this node's membership (a batch changed it, durably).
    pub(super) fn set_members(&self, members: Members) {
        *self
            .members
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(members));
        self.members_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Reads the adopted charter and every live act (on open).
    pub(super) fn load_members(&self) -> Result<Option<Members>, StoreError> {
        let Some(bytes) = self.db.get(K_CHARTER)? else {
            return Ok(None);
        };
        let held: Held = codec::decode::<Held, { CHARTER_FILE_BYTES_MAX + 64 }>("charter", &bytes)
            .map_err(|e| corrupt("charter", e))?;
        let charter = SignedCharter::from_file_text(held.file.as_bytes())
            .and_then(|s| s.verify())
            .map_err(|e| corrupt("charter", e))?;
        Ok(Some(Members::new(charter, held.me, self.scan_acts()?)))
    }

    /// Every live membership act held here, read from the payloads.
    fn scan_acts(&self) -> Result<BTreeMap<(NodeId, RecordId), Act>, StoreError> {
        let mut acts = BTreeMap::new();
        for item in self.db.scan_prefix([b'N']) {
            let (k, v) = item?;
            let act: Act = decode_meta("membership act", &v)?;
            acts.insert((node_id_at(&k, 1)?, record_id_at(&k, 33)?), act);
        }
        Ok(acts)
    }

    /// The membership act of `key`, as kept (withdrawn or not).
    pub(super) fn act(&self, key: &(NodeId, RecordId)) -> Result<Option<Act>, StoreError> {
        match self.db.get(k_act(&key.0, &key.1))? {
            Some(v) => Ok(Some(decode_meta("membership act", &v)?)),
            None => Ok(None),
        }
    }

    /// Writes into `batch` every author's admission and name as `members` gives them.
    fn settle_all(&self, members: &Members, batch: &mut sled::Batch) -> Result<usize, StoreError> {
        let mut authors: BTreeMap<NodeId, AuthorMeta> = BTreeMap::new();
        for item in self.db.scan_prefix([b'A']) {
            let (k, v) = item?;
            authors.insert(node_id_at(&k, 1)?, decode_meta("author", &v)?);
        }
        for (key, _) in members.membership.keys() {
            authors.entry(key).or_default();
        }
        authors.entry(members.me).or_default();
        let mut changed = 0;
        for (key, meta) in authors.iter_mut() {
            if settle(members, key, meta) {
                batch.insert(k_author(key), codec::encode(meta));
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// On open: the membership the kept charter and acts give, with every author's admission
    /// written to agree with it (whatever an older binary, or a rule since changed, left).
    pub(super) fn open_members(&self) -> Result<(), StoreError> {
        let Some(members) = self.load_members()? else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        if self.settle_all(&members, &mut batch)? > 0 {
            self.db.apply_batch(batch)?;
            self.db.flush()?;
            tracing::info!("author admissions written again from the charter's membership");
        }
        self.set_members(members);
        self.enforce_membership()
    }

    /// Adopts `charter` (verified, complete) as this node's, for good: `me` is this node's
    /// key. Every author's admission is set from the membership it gives, in one atomic write.
    /// Refused when another charter is held; adopting the same one again changes nothing.
    pub fn adopt_charter(
        &self,
        charter: &VerifiedCharter,
        me: NodeId,
    ) -> Result<Arc<Members>, StoreError> {
        let guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = self.members() {
            if held.charter.id == charter.id {
                return Ok(held);
            }
            return Err(StoreError::OtherCharter {
                held: held.charter.id.to_hex(),
            });
        }
        let held = Held {
            file: charter.signed.to_file_text(),
            me,
        };
        let members = Members::new(charter.clone(), me, self.scan_acts()?);
        let mut batch = sled::Batch::default();
        batch.insert(K_CHARTER, codec::encode(&held));
        self.settle_all(&members, &mut batch)?;
        // Vouches of an aggregator's lists decide nothing any more.
        for item in self.db.scan_prefix([b'V']) {
            batch.remove(item?.0);
        }
        self.db.apply_batch(batch)?;
        self.set_members(members);
        drop(guard);
        self.db.flush()?;
        // Records the acts held here cut or erase stop showing now.
        self.enforce_membership()?;
        self.members()
            .ok_or_else(|| corrupt("charter", "not kept after it was adopted"))
    }
}
