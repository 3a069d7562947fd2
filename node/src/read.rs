//! The read model: `LocalNode`'s read methods, every question the pages, the API, the sync and
//! the CLI ask of a node. The authors' numbers and the rule that finds a region are computed
//! once, in [`crate::regions`].

use spindel_protocol::NodeId;

use std::collections::BTreeMap;

use spindel_protocol::entry::{Entry, Head, RecordId};

use std::path::Path;
use std::sync::Arc;

use spindel_protocol::record::Kind;

use crate::local::{LocalNode, NodeConfig, NodeError, Status};
use crate::query::{Query, QueryPage};
use crate::regions::{AuthorRow, authors, find_region};
use crate::store::{AuthorMeta, ForkProof, Incoming, RecordMeta, StoreError};

/// The read model as a running node's tasks hold it ([`crate::shared::Shared::node`]): every
/// question the pages, the API, the sync and the control socket ask, and no way to write, by
/// its type. Writes are jobs for [`crate::writer::Writer`], the one holder of the node itself.
#[derive(Clone)]
pub struct ReadModel(Arc<LocalNode>);

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReadModel").field(&self.0).finish()
    }
}

impl ReadModel {
    /// The read model of `node` (the writer holds `node` itself).
    pub fn of(node: &Arc<LocalNode>) -> ReadModel {
        ReadModel(node.clone())
    }

    /// How many handles hold the node (read models, the writer, open reads): 1 once every
    /// task of a stopped node has let go of it, so its last holder closes the store.
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// Checks received entries against the store (signatures, chains, rules) without
    /// writing: the writer applies what this verified.
    pub(crate) fn verify(
        &self,
        incoming: Vec<Incoming>,
        expected_author: Option<NodeId>,
    ) -> Result<crate::store::Verified, StoreError> {
        self.0.store().verify(incoming, expected_author)
    }

    /// This node's own observations, kept in marker files beside the store (never the store):
    /// own entries from `seq` on were signed offline ([`LocalNode::mark_offline`]).
    pub fn mark_offline(&self, seq: u64) -> Result<(), NodeError> {
        self.0.mark_offline(seq)
    }

    /// The aggregator acknowledged the own log up to `acked` ([`LocalNode::own_acked`]).
    pub fn own_acked(&self, acked: u64) -> Result<(), NodeError> {
        self.0.own_acked(acked)
    }

    /// A restored node caught up with itself ([`LocalNode::clear_restored`]).
    pub fn clear_restored(&self) -> Result<(), NodeError> {
        self.0.clear_restored()
    }

    /// `spindel backup` of a running node (a consistent copy of every log and the accounts).
    pub fn backup(&self, to: &Path) -> Result<crate::backup::BackedUp, NodeError> {
        crate::backup::write(&self.0, to)
    }

    /// [`LocalNode::entries_from`].
    pub fn entries_from(
        &self,
        author: &NodeId,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<Incoming>, StoreError> {
        self.0.entries_from(author, from_seq, max)
    }

    /// [`LocalNode::index_health`].
    pub fn index_health(&self) -> crate::search::IndexHealth {
        self.0.index_health()
    }

    /// [`LocalNode::entry`].
    pub fn entry(&self, author: &NodeId, seq: u64) -> Result<Option<Entry>, StoreError> {
        self.0.entry(author, seq)
    }

    /// [`LocalNode::shown_names`].
    pub fn shown_names(&self) -> Result<std::collections::HashMap<String, String>, StoreError> {
        self.0.shown_names()
    }

    /// [`LocalNode::authors`].
    pub fn authors(&self) -> Result<Vec<AuthorRow>, StoreError> {
        self.0.authors()
    }

    /// [`LocalNode::payload_at`].
    pub fn payload_at(
        &self,
        author: &NodeId,
        rid: &RecordId,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.payload_at(author, rid, seq)
    }

    /// [`LocalNode::refusals`].
    pub fn refusals(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.0.refusals()
    }

    /// [`LocalNode::vouchers`].
    pub fn vouchers(&self, author: &NodeId) -> Result<Vec<NodeId>, StoreError> {
        self.0.vouchers(author)
    }

    /// [`LocalNode::admission_list`].
    pub fn admission_list(&self) -> Result<Vec<(NodeId, Option<String>)>, StoreError> {
        self.0.admission_list()
    }

    /// [`LocalNode::author`].
    pub fn author(&self, id: &NodeId) -> Result<Option<AuthorMeta>, StoreError> {
        self.0.author(id)
    }

    /// [`LocalNode::config`].
    pub fn config(&self) -> &NodeConfig {
        self.0.config()
    }

    /// [`LocalNode::controllers`].
    pub fn controllers(&self) -> Result<Vec<crate::bank::Controller>, StoreError> {
        self.0.controllers()
    }

    /// [`LocalNode::dir`].
    pub fn dir(&self) -> &Path {
        self.0.dir()
    }

    /// [`LocalNode::erasures_pending`].
    pub fn erasures_pending(&self) -> bool {
        self.0.erasures_pending()
    }

    /// [`LocalNode::facets`].
    pub fn facets(
        &self,
        q: &crate::query::Query,
    ) -> Result<crate::query::Facets, crate::query::QueryError> {
        self.0.facets(q)
    }

    /// [`LocalNode::find_region`].
    pub fn find_region(&self, key: &str) -> Result<Option<NodeId>, StoreError> {
        self.0.find_region(key)
    }

    /// [`LocalNode::flush`].
    pub fn flush(&self) -> Result<(), NodeError> {
        self.0.flush()
    }

    /// [`LocalNode::forks`].
    pub fn forks(&self) -> Result<Vec<(NodeId, ForkProof)>, StoreError> {
        self.0.forks()
    }

    /// [`LocalNode::generation`].
    pub fn generation(&self) -> Result<u64, StoreError> {
        self.0.generation()
    }

    /// [`LocalNode::head`].
    pub fn head(&self, author: &NodeId) -> Result<Option<Head>, StoreError> {
        self.0.head(author)
    }

    /// [`LocalNode::header_only_current`].
    pub fn header_only_current(&self, max: usize) -> Result<Vec<(NodeId, u64)>, StoreError> {
        self.0.header_only_current(max)
    }

    /// [`LocalNode::heads`].
    pub fn heads(&self) -> Result<BTreeMap<NodeId, Head>, StoreError> {
        self.0.heads()
    }

    /// [`LocalNode::import_allowed`].
    pub fn import_allowed(&self, kind: Kind) -> Result<(), NodeError> {
        self.0.import_allowed(kind)
    }

    /// [`LocalNode::is_member`].
    pub fn is_member(&self, peer: &NodeId) -> Result<bool, StoreError> {
        self.0.is_member(peer)
    }

    /// [`LocalNode::node_id`].
    pub fn node_id(&self) -> NodeId {
        self.0.node_id()
    }

    /// [`LocalNode::offline_from`].
    pub fn offline_from(&self) -> Option<u64> {
        self.0.offline_from()
    }

    /// [`LocalNode::overview`].
    pub fn overview(&self) -> Result<crate::bank::Overview, crate::query::QueryError> {
        self.0.overview()
    }

    /// [`LocalNode::own_head`].
    pub fn own_head(&self) -> Result<Option<Head>, StoreError> {
        self.0.own_head()
    }

    /// A page of the calendar at `now_ms` ([`crate::agenda::list`]).
    pub fn agenda(
        &self,
        q: &crate::agenda::AgendaQuery,
        now_ms: i64,
    ) -> Result<crate::agenda::Agenda, StoreError> {
        crate::agenda::list(self.0.store(), q, now_ms)
    }

    /// What a calendar feed holds at `now_ms` ([`crate::agenda::feed`]).
    pub fn feed(
        &self,
        author: Option<NodeId>,
        now_ms: i64,
    ) -> Result<Vec<crate::agenda::AgendaItem>, StoreError> {
        crate::agenda::feed(self.0.store(), author, now_ms)
    }

    /// [`LocalNode::query`].
    pub fn query(&self, q: &Query) -> Result<QueryPage, NodeError> {
        self.0.query(q)
    }

    /// [`LocalNode::record`].
    pub fn record(
        &self,
        author: &NodeId,
        rid: &spindel_protocol::entry::RecordId,
    ) -> Result<Option<crate::query::RecordView>, StoreError> {
        self.0.record(author, rid)
    }

    /// [`LocalNode::region_count`].
    pub fn region_count(&self) -> Result<usize, StoreError> {
        self.0.region_count()
    }

    /// [`LocalNode::region_page`].
    pub fn region_page(&self, id: &NodeId) -> Result<Option<crate::bank::RegionPage>, StoreError> {
        self.0.region_page(id)
    }

    /// [`LocalNode::relay_heads`].
    pub fn relay_heads(&self) -> Result<BTreeMap<NodeId, Head>, StoreError> {
        self.0.relay_heads()
    }

    /// [`LocalNode::restored`].
    pub fn restored(&self) -> bool {
        self.0.restored()
    }

    /// [`LocalNode::search`].
    pub fn search(
        &self,
        q: &crate::query::Query,
    ) -> Result<crate::query::QueryPage, crate::query::QueryError> {
        self.0.search(q)
    }

    /// [`LocalNode::status`].
    pub fn status(&self) -> Result<Status, NodeError> {
        self.0.status()
    }

    /// [`LocalNode::version_number`].
    pub fn version_number(
        &self,
        author: &NodeId,
        rid: &RecordId,
        seq: u64,
    ) -> Result<u64, StoreError> {
        self.0.version_number(author, rid, seq)
    }

    /// [`LocalNode::versions`].
    pub fn versions(
        &self,
        author: &NodeId,
        rid: &RecordId,
    ) -> Result<Vec<crate::store::Version>, StoreError> {
        self.0.versions(author, rid)
    }

    /// [`LocalNode::visible_count_of`].
    pub fn visible_count_of(&self, id: &NodeId) -> Result<u64, StoreError> {
        self.0.visible_count_of(id)
    }
}

/// The read model as the pages and the API ask it: every answer they need, so they never see
/// the store.
impl crate::local::LocalNode {
    /// See `authors`.
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

    /// See `find_region`.
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
