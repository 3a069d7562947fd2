//! The overlay's membership half: acts noted as a batch takes them, membership computed again
//! once a batch ([`Overlay::settle_members`]), and what a change does to the records held: a
//! key's cut takes records down, the members' erasure orders hide them and hold their
//! payloads until the order settles (`Y`; [`Store::purge_settled_erasures`] erases them
//! then), and an order undone before that shows them again.
//!
//! [`Store::purge_settled_erasures`]: super::super::Store::purge_settled_erasures

use std::collections::{BTreeMap, BTreeSet};

use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;
use spindel_protocol::membership::{Act, Standing};
use spindel_protocol::record::Kind;

use spindel_protocol::entry::{Hash, Payload};
use spindel_protocol::record::Record;

use super::super::keys::{k_act, k_author, k_held, k_payload, k_record, k_time};
use super::super::members::settle;
use super::super::types::{HeldPayload, RecordMeta, corrupt};
use super::{Overlay, RecordKey, StoreError};

impl Overlay<'_> {
    /// The last seq of `author`'s log that shows, once its key was replaced or its region
    /// revoked under a charter (as this batch so far has it).
    fn cut_of(&self, author: &NodeId) -> Option<u64> {
        let standing = match &self.members {
            Some(m) => m.membership.standing(author),
            None => self.store.members()?.membership.standing(author),
        };
        match standing {
            Standing::Former { until, .. } => Some(until),
            _ => None,
        }
    }

    /// A knowledge record of `author` at `seq` is past its key's cut: taken (the log stays
    /// whole on every node) without its payload, so it shows nowhere.
    pub(super) fn past_cut(&self, author: &NodeId, seq: u64, kind: Kind) -> bool {
        !kind.is_membership() && self.cut_of(author).is_some_and(|until| seq > until)
    }

    /// A knowledge record's version is kept without its payload: past its key's cut, or its
    /// record erased by the members' order.
    pub(super) fn withheld(&self, author: &NodeId, rid: &RecordId, seq: u64, kind: Kind) -> bool {
        self.past_cut(author, seq, kind) || (!kind.is_membership() && self.erased(author, rid))
    }

    /// The members ordered `author`'s record `rid` erased (under a charter).
    fn erased(&self, author: &NodeId, rid: &RecordId) -> bool {
        match &self.members {
            Some(m) => m.membership.is_erased(author, rid),
            None => self
                .store
                .members()
                .is_some_and(|m| m.membership.is_erased(author, rid)),
        }
    }

    /// The members' order to erase `author`'s record `rid` took effect: a knowledge record
    /// held here stops showing at once, and its payload is held (out of every read) until the
    /// order settles, then erased as its author's tombstone would erase it. Its log stays
    /// whole.
    fn erase_ordered(&mut self, author: NodeId, rid: RecordId) -> Result<(), StoreError> {
        let key = (author, rid);
        let meta = match self.records.get(&key) {
            Some(m) => m.clone(),
            None => self.store.record_meta(&author, &rid)?,
        };
        if let Some(meta) = meta
            && !meta.kind.is_membership()
            && meta.payload.is_some()
        {
            self.take_down(key, meta, true)?;
        }
        Ok(())
    }

    /// The payload held for an erasure order of `key`, as this batch so far has it.
    fn held_of(&mut self, key: RecordKey) -> Result<Option<HeldPayload>, StoreError> {
        if let Some(h) = self.held.get(&key) {
            return Ok(*h);
        }
        let h = self.store.held_payload(&key.0, &key.1)?;
        self.held.insert(key, h);
        Ok(h)
    }

    /// Keeps the payload `key` holds out of every read until the erasure order settles: a
    /// stored payload moves from `P` to `Y`; one written earlier in this batch is dropped (it
    /// never showed here, and a node that held it shows it again if the order is undone).
    fn hold_payload(&mut self, key: RecordKey) -> Result<(), StoreError> {
        self.new_payloads.remove(&key);
        if let Some(Some(stored)) = self.refs.insert(key, None) {
            self.drop_held(key)?;
            self.batch.remove(k_payload(&key.0, &key.1));
            let held = HeldPayload {
                payload: stored,
                since_ms: self.now_ms,
            };
            self.put_meta(k_held(&key.0, &key.1), &held);
            self.held.insert(key, Some(held));
        }
        Ok(())
    }

    /// The payload held for an erasure order of `key`, if any, is purged (a later version or
    /// a tombstone replaced it).
    pub(super) fn drop_held(&mut self, key: RecordKey) -> Result<(), StoreError> {
        // Only an erased record has one (a batch that undoes an order shows it again).
        if !self.held.contains_key(&key) && !self.erased(&key.0, &key.1) {
            return Ok(());
        }
        if let Some(held) = self.held_of(key)? {
            self.purged.push(held.payload.at);
            self.batch.remove(k_held(&key.0, &key.1));
            self.held.insert(key, None);
            self.took_down = true;
        }
        Ok(())
    }

    /// The erasure order of `author`'s record `rid` was undone before it settled (a
    /// withdrawal or a cut signed earlier arrived): the held payload is its current
    /// version's again and the record shows, as on a node that never saw the order decide.
    /// A held payload that is no longer the current version's is purged.
    fn restore_held(&mut self, author: NodeId, rid: RecordId) -> Result<(), StoreError> {
        let key = (author, rid);
        let Some(held) = self.held_of(key)? else {
            return Ok(());
        };
        self.preload(&author, &rid, 0)?;
        self.batch.remove(k_held(&author, &rid));
        self.held.insert(key, None);
        self.took_down = true;
        let current = self.records.get(&key).cloned().flatten().filter(|m| {
            !m.deleted
                && m.payload.is_none()
                && m.seq == held.payload.seq
                && !self.past_cut(&author, m.seq, m.kind)
        });
        let record = match &current {
            Some(meta) => self.held_record(&held, meta.kind)?,
            None => None,
        };
        let (Some(mut meta), Some(record)) = (current, record) else {
            self.purged.push(held.payload.at);
            return Ok(());
        };
        self.put_meta(k_payload(&author, &rid), &held.payload);
        self.refs.insert(key, Some(held.payload));
        meta.payload = Some(held.payload.hash);
        self.batch.insert(
            k_time(meta.updated_ms, &author, &rid),
            &[meta.kind.code()][..],
        );
        self.show(key, meta.updated_ms, &record);
        self.put_meta(k_record(&author, &rid), &meta);
        self.records.insert(key, Some(meta));
        tracing::info!(author = %author.short(), record = %rid, "an erasure order was undone before it settled: the record shows again");
        Ok(())
    }

    /// The record a held payload holds (`None` when its bytes are gone or not its own).
    fn held_record(&self, held: &HeldPayload, kind: Kind) -> Result<Option<Record>, StoreError> {
        let bytes = self
            .store
            .packs
            .read(held.payload.at)
            .map_err(|e| self.store.packs_error(e))?;
        let Some(bytes) = bytes.filter(|b| Hash::of(b) == held.payload.hash) else {
            return Ok(None);
        };
        let hash = held.payload.hash;
        let payload = Payload::decode(&bytes).map_err(|e| corrupt(format!("payload {hash}"), e))?;
        Record::from_json(kind, &payload.body)
            .map(Some)
            .map_err(|e| corrupt(format!("payload {hash}"), e))
    }

    /// What the store's membership cuts and erases, taken down wherever it still shows: on
    /// open and when a charter is adopted (a node that held records before it knew the acts
    /// that end them).
    pub(in crate::store) fn enforce_all(&mut self) -> Result<(), StoreError> {
        let Some(members) = self.store.members() else {
            return Ok(());
        };
        for (key, standing) in members.membership.keys() {
            if let Standing::Former { until, .. } = standing {
                self.cut(key, until)?;
            }
        }
        for e in &members.membership.erased {
            self.erase_ordered(e.author, e.record)?;
        }
        // A payload held for an order that no longer stands (undone while this node was
        // stopped, or by a store written before it was held): the record shows again.
        for ((author, rid), _) in self.store.held_payloads()? {
            if !members.membership.is_erased(&author, &rid) {
                self.restore_held(author, rid)?;
            }
        }
        Ok(())
    }

    /// A knowledge record stops showing and its payload is purged, or with `hold` held until
    /// the erasure order settles (its meta stays, without a payload: a cut or an erasure
    /// order, not its author's deletion).
    fn take_down(
        &mut self,
        key: RecordKey,
        mut meta: RecordMeta,
        hold: bool,
    ) -> Result<(), StoreError> {
        let (author, rid) = key;
        self.took_down = true;
        self.preload(&author, &rid, meta.seq)?;
        if meta.visible() {
            self.batch.remove(k_time(meta.updated_ms, &author, &rid));
        }
        if hold {
            self.hold_payload(key)?;
        } else {
            self.purge_payload(key);
        }
        self.hide(key, meta.updated_ms, meta.kind);
        meta.payload = None;
        self.put_meta(k_record(&author, &rid), &meta);
        self.records.insert(key, Some(meta));
        Ok(())
    }

    /// `author`'s key was cut at `until`: its knowledge records whose current version is past
    /// it stop showing, and their payloads are purged, as a stripped put's would be.
    fn cut(&mut self, author: NodeId, until: u64) -> Result<(), StoreError> {
        let mut records: BTreeMap<RecordId, RecordMeta> =
            self.store.records_of(&author)?.into_iter().collect();
        for ((a, rid), meta) in &self.records {
            if *a == author
                && let Some(meta) = meta
            {
                records.insert(*rid, meta.clone());
            }
        }
        for (rid, meta) in records {
            if meta.seq <= until || meta.kind.is_membership() || !meta.visible() {
                continue;
            }
            self.take_down((author, rid), meta, false)?;
        }
        Ok(())
    }

    /// A membership act of `key` was accepted (`Some`), or withdrawn at its tombstone's
    /// signed time (`Err(at_ms)`). It is kept under `N` in this batch (a withdrawn one too: a
    /// withdrawal is replayed at its own time). Under a charter the batch's membership is
    /// marked to be computed again ([`Overlay::settle_members`]), once, before an entry of
    /// another author is checked and at the commit.
    pub(super) fn note_act(
        &mut self,
        key: RecordKey,
        act: Result<Act, u64>,
    ) -> Result<(), StoreError> {
        let act = match act {
            Ok(act) => act,
            Err(at_ms) => {
                let known = match self.acts_written.get(&key) {
                    Some(a) => Some(a.clone()),
                    None => self.store.act(&key)?,
                };
                let Some(mut act) = known.filter(|a| a.withdrawn_ms.is_none()) else {
                    return Ok(());
                };
                act.withdrawn_ms = Some(at_ms);
                act
            }
        };
        self.put_meta(k_act(&key.0, &key.1), &act);
        self.acts_written.insert(key, act.clone());
        let Some(mut draft) = self
            .members
            .take()
            .or_else(|| self.store.members().map(|m| (*m).clone()))
        else {
            return Ok(());
        };
        if self.settled.is_none() {
            self.settled = Some(draft.membership.keys().collect());
        }
        if draft.put_act(key, act) {
            self.members_changed = true;
            self.unsettled = Some(key.0);
        }
        self.members = Some(draft);
        Ok(())
    }

    /// Computes the batch's membership again if an act changed it, unless only `author`'s
    /// own acts did and `author`'s entry is next (a batch holds one author's entries: its acts
    /// cannot change its own admission, so one computation a batch does). Every key whose
    /// standing changed gets its admission and name written; a new cut takes down what is
    /// held past it.
    pub(in crate::store) fn settle_members(
        &mut self,
        next: Option<&NodeId>,
    ) -> Result<(), StoreError> {
        let Some(by) = self.unsettled else {
            return Ok(());
        };
        if next == Some(&by) {
            return Ok(());
        }
        let Some(mut draft) = self.members.take() else {
            return Ok(());
        };
        self.unsettled = None;
        let erased_before: BTreeSet<(NodeId, RecordId)> = draft
            .membership
            .erased
            .iter()
            .map(|e| (e.author, e.record))
            .collect();
        draft.recompute();
        let newly_erased: Vec<(NodeId, RecordId)> = draft
            .membership
            .erased
            .iter()
            .map(|e| (e.author, e.record))
            .filter(|k| !erased_before.contains(k))
            .collect();
        let undone: Vec<(NodeId, RecordId)> = erased_before
            .into_iter()
            .filter(|(a, r)| !draft.membership.is_erased(a, r))
            .collect();
        let before = self.settled.take().unwrap_or_default();
        let after: BTreeMap<NodeId, Standing> = draft.membership.keys().collect();
        let touched: BTreeSet<NodeId> = before.keys().chain(after.keys()).copied().collect();
        for (k, standing) in &after {
            // A cut that is new (or moved back): what this batch or the store holds of the
            // key past it no longer shows.
            if let Standing::Former { until, .. } = standing
                && before.get(k) != Some(standing)
            {
                self.cut(*k, *until)?;
            }
        }
        for k in touched {
            if !self.authors.contains_key(&k) {
                let meta = self.store.author_stored(&k)?.unwrap_or_default();
                self.authors.insert(k, meta);
            }
            if let Some(meta) = self.authors.get_mut(&k)
                && settle(&draft, &k, meta)
            {
                let meta = meta.clone();
                self.put_meta(k_author(&k), &meta);
            }
        }
        self.settled = Some(after);
        self.members = Some(draft);
        for (author, rid) in newly_erased {
            self.erase_ordered(author, rid)?;
        }
        for (author, rid) in undone {
            self.restore_held(author, rid)?;
        }
        Ok(())
    }

    /// How many acts `author` has made, its erasure orders or its other acts, as this batch
    /// so far has it (ingest's quotas); none counted without a charter (acts then decide
    /// nothing, and cost nothing).
    pub(super) fn acts_of(&self, author: &NodeId, erasures: bool) -> u64 {
        match &self.members {
            Some(m) => m.acts_of(author, erasures),
            None => self
                .store
                .members()
                .map_or(0, |m| m.acts_of(author, erasures)),
        }
    }
}
