//! The read model: `LocalNode`'s read methods, every question the pages, the API, the sync and
//! the CLI ask of a node. The authors' numbers and the rule that finds a region are computed
//! once, in [`crate::regions`].

use spindel_protocol::NodeId;

use std::collections::BTreeMap;

use spindel_protocol::entry::{Entry, Head, RecordId};

use crate::regions::{AuthorRow, authors, find_region};
use crate::store::{AuthorMeta, ForkProof, Incoming, RecordMeta, StoreError};

/// The read model as the pages and the API ask it: every answer they need, so they never see
/// the store.
impl crate::local::LocalNode {
    /// See [`authors`].
    pub fn authors(&self) -> Result<Vec<AuthorRow>, StoreError> {
        authors(self.store())
    }

    /// How many regions (authors with a profile) this node knows.
    pub fn region_count(&self) -> Result<usize, StoreError> {
        Ok(self
            .store()
            .authors()?
            .iter()
            .filter(|(_, m)| m.profile.is_some())
            .count())
    }

    /// How lists show each author (hex key → display name beside its name in the network).
    pub fn shown_names(&self) -> Result<std::collections::HashMap<String, String>, StoreError> {
        Ok(self
            .store()
            .authors()?
            .into_iter()
            .map(|(id, m)| (id.to_hex(), m.shown(&id)))
            .collect())
    }

    /// See [`find_region`].
    pub fn find_region(&self, key: &str) -> Result<Option<NodeId>, StoreError> {
        find_region(self.store(), key)
    }

    /// One visible record, as every interface shows it.
    pub fn record(
        &self,
        author: &NodeId,
        rid: &spindel_protocol::entry::RecordId,
    ) -> Result<Option<crate::query::RecordView>, StoreError> {
        crate::query::get(self.store(), author, rid)
    }

    /// Every version of `author`'s record, oldest first (see [`crate::store::Store::versions`]).
    pub fn versions(
        &self,
        author: &NodeId,
        rid: &RecordId,
    ) -> Result<Vec<crate::store::Version>, StoreError> {
        self.store().versions(author, rid)
    }

    /// The number of the version at `seq` of `author`'s record (1 for its first entry).
    pub fn version_number(
        &self,
        author: &NodeId,
        rid: &RecordId,
        seq: u64,
    ) -> Result<u64, StoreError> {
        self.store().version_number(author, rid, seq)
    }

    /// A page of records for the search page: like [`crate::local::LocalNode::query`], but a region no
    /// author here holds is zero hits, not an error (the page keeps it in the form).
    pub fn search(
        &self,
        q: &crate::query::Query,
    ) -> Result<crate::query::QueryPage, crate::query::QueryError> {
        crate::query::run(self.store(), q)
    }

    /// Counts per kind, region and tag for a query (each with the other filters kept).
    pub fn facets(
        &self,
        q: &crate::query::Query,
    ) -> Result<crate::query::Facets, crate::query::QueryError> {
        crate::query::facets(self.store(), q)
    }

    /// A region's page: its profile, counts and latest records.
    pub fn region_page(&self, id: &NodeId) -> Result<Option<crate::bank::RegionPage>, StoreError> {
        crate::bank::region_page(self.store(), id)
    }

    /// The national overview.
    pub fn overview(&self) -> Result<crate::bank::Overview, crate::query::QueryError> {
        crate::bank::overview(self.store())
    }

    /// Every region with a profile: the controllers of the records held here.
    pub fn controllers(&self) -> Result<Vec<crate::bank::Controller>, StoreError> {
        crate::bank::controllers(self.store())
    }

    /// The store's generation: a cheap question the store must answer (health).
    pub fn generation(&self) -> Result<u64, StoreError> {
        self.store().generation()
    }

    /// How the full-text index's background commits and merges go (`/metrics`).
    pub fn index_health(&self) -> crate::search::IndexHealth {
        self.store().index_health()
    }

    /// Whether the full-text index still holds `word`, deleted records included: the check of
    /// the erasure promise for the index.
    pub fn index_holds_word(&self, word: &str) -> Result<bool, StoreError> {
        self.store().index_holds_word(word)
    }

    /// This node's own head.
    pub fn own_head(&self) -> Result<Option<Head>, StoreError> {
        self.store().head(&self.node_id())
    }

    /// An author's head here.
    pub fn head(&self, author: &NodeId) -> Result<Option<Head>, StoreError> {
        self.store().head(author)
    }

    /// Every author's head here.
    pub fn heads(&self) -> Result<BTreeMap<NodeId, Head>, StoreError> {
        self.store().heads()
    }

    /// The heads a sync session offers its peer: on an aggregator only those of the regions
    /// it admits (a region it no longer admits is not relayed: its stored entries stay here,
    /// and a region that lacks them does not get them); on a region every head (it sends only
    /// its own log anyway).
    pub fn relay_heads(&self) -> Result<BTreeMap<NodeId, Head>, StoreError> {
        let mut heads = self.store().heads()?;
        if self.config().role == crate::local::Role::Aggregator {
            let admitted = self.store().admitted_authors()?;
            heads.retain(|a, _| admitted.contains(a));
        }
        Ok(heads)
    }

    /// The pinned aggregators whose admission lists vouch for `author` here.
    pub fn vouchers(&self, author: &NodeId) -> Result<Vec<NodeId>, StoreError> {
        self.store().vouchers(author)
    }

    /// What this node knows of an author.
    pub fn author(&self, id: &NodeId) -> Result<Option<AuthorMeta>, StoreError> {
        self.store().author(id)
    }

    /// An author's visible records (current versions, not deleted).
    pub fn visible_count_of(&self, id: &NodeId) -> Result<u64, StoreError> {
        self.store().visible_count_of(id)
    }

    /// Bytes of an author's current payloads (what its quota counts).
    pub fn payload_bytes_of(&self, id: &NodeId) -> Result<u64, StoreError> {
        self.store().payload_bytes_of(id)
    }

    /// Refused entries, counted by reason.
    pub fn refusals(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.store().refusals()
    }

    /// Up to `max` entries of `author` from `from_seq`, as stored (the sync sends these).
    pub fn entries_from(
        &self,
        author: &NodeId,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<Incoming>, StoreError> {
        self.store().entries_from(author, from_seq, max)
    }

    /// One stored entry.
    pub fn entry(&self, author: &NodeId, seq: u64) -> Result<Option<Entry>, StoreError> {
        self.store().entry(author, seq)
    }

    /// Current records held without their payload (a relay stripped it), at most `max`.
    pub fn header_only_current(&self, max: usize) -> Result<Vec<(NodeId, u64)>, StoreError> {
        self.store().header_only_current(max)
    }

    /// Every fork proof held here, by author.
    pub fn forks(&self) -> Result<Vec<(NodeId, ForkProof)>, StoreError> {
        self.store().forks()
    }

    /// Whether `peer` may ask this node's records: itself, or an admitted region that is not
    /// frozen (pinned aggregators are asked about by the caller).
    pub fn is_member(&self, peer: &NodeId) -> Result<bool, StoreError> {
        Ok(*peer == self.node_id()
            || self
                .store()
                .author(peer)?
                .is_some_and(|m| m.admitted && !m.frozen))
    }

    /// Aggregator: every region it admitted, with the name it admitted it under.
    pub fn admission_list(&self) -> Result<Vec<(NodeId, Option<String>)>, StoreError> {
        let me = self.node_id();
        Ok(self
            .store()
            .authors()?
            .into_iter()
            .filter(|(a, m)| m.admitted && *a != me)
            // A region admitted before names were required has none stored: it is known by
            // the name made from its key, here and everywhere (never by what its profile
            // claims).
            .map(|(a, m)| (a, Some(m.name_or_key(&a))))
            .collect())
    }

    /// Purged payloads wait to be erased (an earlier erasure failed).
    pub fn erasures_pending(&self) -> bool {
        self.store().erasures_pending()
    }

    /// The payload stored for an author's record at `seq`, if any is held.
    pub fn payload_at(
        &self,
        author: &NodeId,
        rid: &RecordId,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.store().payload_at(author, rid, seq)
    }

    /// An author's records with what the store knows of each (deleted ones included).
    pub fn records_of(&self, author: &NodeId) -> Result<Vec<(RecordId, RecordMeta)>, StoreError> {
        self.store().records_of(author)
    }

    /// What the store knows of one of an author's records (deleted ones included).
    pub fn record_meta(
        &self,
        author: &NodeId,
        rid: &RecordId,
    ) -> Result<Option<RecordMeta>, StoreError> {
        self.store().record_meta(author, rid)
    }
}
