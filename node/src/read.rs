//! The read model: every question the pages, the API, the sync and the CLI ask of a node,
//! written once in the trait [`Reads`] for both handles that answer it: a [`LocalNode`] (the
//! CLI's commands on a stopped node, the writer) and a running node's [`ReadModel`], which
//! cannot write, by its type. Every read answers with a [`ReadError`]. The authors' numbers
//! and the rule that finds a region are computed once, in [`crate::regions`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use spindel_protocol::NodeId;
use spindel_protocol::entry::{Entry, Head, RecordId};
use spindel_protocol::record::Kind;

use crate::local::{
    AuthorStatus, ForkStatus, LocalNode, NO_WEBSITE_WARNING, NodeConfig, NodeError, Role, Status,
    fork_advice,
};
use crate::query::{Query, QueryError, QueryPage};
use crate::regions::{AuthorRow, authors, find_region};
use crate::store::{AuthorMeta, ForkProof, Incoming, RecordMeta, StoreError};
use spindel_protocol::entry::Hash;
use spindel_protocol::record::Record;

/// Why a read could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The question cannot be answered as asked (a limit, a cursor, a search text, an unknown
    /// region): the asker can fix it (the API answers 400, the page says what to change).
    #[error(transparent)]
    Question(QueryError),
    /// The store could not be read (the asker cannot fix this: 500, logged).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The read's task on the blocking pool failed (it panicked, or the runtime stopped).
    #[error("a read of the node failed: {0}")]
    Task(String),
}

impl ReadError {
    /// Whether the asker can fix this by asking differently.
    pub fn is_bad_question(&self) -> bool {
        matches!(self, ReadError::Question(_))
    }
}

impl From<QueryError> for ReadError {
    fn from(e: QueryError) -> ReadError {
        match e {
            QueryError::Store(e) => ReadError::Store(e),
            question => ReadError::Question(question),
        }
    }
}

/// A read that failed inside a node's own work keeps its meaning there: a bad question is
/// [`NodeError::Query`], a store that failed [`NodeError::Store`].
impl From<ReadError> for NodeError {
    fn from(e: ReadError) -> NodeError {
        match e {
            ReadError::Question(q) => NodeError::Query(q),
            ReadError::Store(s) => NodeError::Store(s),
            ReadError::Task(t) => NodeError::Task(t),
        }
    }
}

mod sealed {
    /// The handles [`super::Reads`] is written for; nothing outside this crate adds one.
    pub trait Sealed {
        fn local(&self) -> &crate::local::LocalNode;
    }
}

impl sealed::Sealed for LocalNode {
    fn local(&self) -> &LocalNode {
        self
    }
}

impl sealed::Sealed for ReadModel {
    fn local(&self) -> &LocalNode {
        &self.0
    }
}

impl Reads for LocalNode {}
impl Reads for ReadModel {}

/// Every question asked of a node, written once for both of its handles (sealed: a
/// [`LocalNode`] and a [`ReadModel`]). Bring it into scope to ask (`use spindel_node::Reads`).
pub trait Reads: sealed::Sealed {
    /// The node's key as others know it.
    fn node_id(&self) -> NodeId {
        self.local().node_id()
    }

    /// The node's settings from `init`.
    fn config(&self) -> &NodeConfig {
        self.local().config()
    }

    /// The data directory.
    fn dir(&self) -> &Path {
        self.local().dir()
    }

    /// This data directory came from `spindel restore` and has not caught up yet.
    fn restored(&self) -> bool {
        self.local().restored()
    }

    /// The first own seq signed offline that no pinned aggregator has acknowledged yet.
    fn offline_from(&self) -> Option<u64> {
        self.local().offline_from()
    }

    /// The answers to `about`, grouped by region (see [`crate::answers::answers_to`]).
    fn answers_to(
        &self,
        about: &spindel_protocol::RecordRef,
        per_region: usize,
    ) -> Result<crate::answers::AnswersTo, ReadError> {
        Ok(crate::answers::answers_to(
            self.local().store(),
            about,
            per_region,
        )?)
    }

    /// What `id` answered and what others answered it.
    fn region_answers(&self, id: &NodeId) -> Result<crate::answers::RegionAnswers, ReadError> {
        Ok(crate::answers::region_answers(self.local().store(), id)?)
    }

    /// Who learns from whom.
    fn answer_matrix(&self) -> Result<crate::answers::Matrix, ReadError> {
        Ok(crate::answers::matrix(self.local().store())?)
    }

    /// What this node can say of an answered record.
    fn answer_target(
        &self,
        about: &spindel_protocol::RecordRef,
    ) -> Result<crate::answers::Target, ReadError> {
        Ok(crate::answers::target(self.local().store(), about)?)
    }

    /// Identity, heads, counts, refusals and forks.
    fn status(&self) -> Result<Status, ReadError> {
        status_of(self.local())
    }

    /// A page of the calendar at `now_ms` ([`crate::agenda::list`]).
    fn agenda(
        &self,
        q: &crate::agenda::AgendaQuery,
        now_ms: i64,
    ) -> Result<crate::agenda::Agenda, ReadError> {
        Ok(crate::agenda::list(self.local().store(), q, now_ms)?)
    }

    /// What a calendar feed holds at `now_ms` ([`crate::agenda::feed`]).
    fn feed(
        &self,
        author: Option<NodeId>,
        now_ms: i64,
    ) -> Result<Vec<crate::agenda::AgendaItem>, ReadError> {
        Ok(crate::agenda::feed(self.local().store(), author, now_ms)?)
    }

    /// A page of records: the query's filters, checked (an unknown region is a bad question).
    fn query(&self, q: &Query) -> Result<QueryPage, ReadError> {
        Ok(crate::query::run_checked(self.local().store(), q)?)
    }

    /// Every key of `id`'s region, oldest first ([`crate::regions::region_keys`]).
    fn region_keys(&self, id: &NodeId) -> Vec<NodeId> {
        crate::regions::region_keys(self.local().store(), id)
    }

    /// The key that stands for `id`'s region in lists ([`crate::regions::representative`]).
    fn representative(&self, id: &NodeId) -> Result<Option<NodeId>, ReadError> {
        Ok(crate::regions::representative(self.local().store(), id)?)
    }

    /// See `authors`.
    fn authors(&self) -> Result<Vec<AuthorRow>, ReadError> {
        Ok(authors(self.local().store())?)
    }

    /// How many regions (authors with a profile) this node knows.
    fn region_count(&self) -> Result<usize, ReadError> {
        Ok(self
            .local()
            .store()
            .authors()?
            .iter()
            .filter(|(_, m)| m.profile.is_some())
            .count())
    }

    /// How lists show each author (hex key → display name beside its name in the network).
    fn shown_names(&self) -> Result<std::collections::HashMap<String, String>, ReadError> {
        Ok(self
            .local()
            .store()
            .authors()?
            .into_iter()
            .map(|(id, m)| (id.to_hex(), m.shown(&id)))
            .collect())
    }

    /// See `find_region`.
    fn find_region(&self, key: &str) -> Result<Option<NodeId>, ReadError> {
        Ok(find_region(self.local().store(), key)?)
    }

    /// One visible record, as every interface shows it.
    fn record(
        &self,
        author: &NodeId,
        rid: &spindel_protocol::entry::RecordId,
    ) -> Result<Option<crate::query::RecordView>, ReadError> {
        Ok(crate::query::get(self.local().store(), author, rid)?)
    }

    /// Every version of `author`'s record, oldest first (see [`crate::store::Store::versions`]).
    fn versions(
        &self,
        author: &NodeId,
        rid: &RecordId,
    ) -> Result<Vec<crate::store::Version>, ReadError> {
        Ok(self.local().store().versions(author, rid)?)
    }

    /// The number of the version at `seq` of `author`'s record (1 for its first entry).
    fn version_number(&self, author: &NodeId, rid: &RecordId, seq: u64) -> Result<u64, ReadError> {
        Ok(self.local().store().version_number(author, rid, seq)?)
    }

    /// A page of records for the search page: like [`crate::local::LocalNode::query`], but a region no
    /// author here holds is zero hits, not an error (the page keeps it in the form).
    fn search(&self, q: &crate::query::Query) -> Result<crate::query::QueryPage, ReadError> {
        Ok(crate::query::run(self.local().store(), q)?)
    }

    /// [`Reads::search`] and [`Reads::facets`] of one query, its text searched once.
    fn search_and_facets(
        &self,
        q: &crate::query::Query,
    ) -> Result<(crate::query::QueryPage, crate::query::Facets), ReadError> {
        Ok(crate::query::page_and_facets(self.local().store(), q)?)
    }

    /// Counts per kind, region and tag for a query (each with the other filters kept).
    fn facets(&self, q: &crate::query::Query) -> Result<crate::query::Facets, ReadError> {
        Ok(crate::query::facets(self.local().store(), q)?)
    }

    /// A region's page: its profile, counts and latest records.
    fn region_page(&self, id: &NodeId) -> Result<Option<crate::bank::RegionPage>, ReadError> {
        Ok(crate::bank::region_page(self.local().store(), id)?)
    }

    /// The national overview.
    fn overview(&self) -> Result<crate::bank::Overview, ReadError> {
        Ok(crate::bank::overview(self.local().store())?)
    }

    /// A page of the SROI proxy bank, by outcome.
    fn proxybank(&self, filter: &Query, page: usize) -> Result<crate::proxybank::Bank, ReadError> {
        Ok(crate::proxybank::bank(self.local().store(), filter, page)?)
    }

    /// The innovations naming an indicator.
    fn indicator_users(
        &self,
        target: &spindel_protocol::RecordRef,
    ) -> Result<Vec<crate::proxybank::User>, ReadError> {
        Ok(crate::proxybank::users_of(self.local().store(), target)?)
    }

    /// The indicators an innovation names, each found here or not.
    fn named_indicators(
        &self,
        refs: &[spindel_protocol::RecordRef],
    ) -> Result<Vec<crate::proxybank::Named>, ReadError> {
        Ok(crate::proxybank::named(self.local().store(), refs)?)
    }

    /// The indicators the innovation form offers.
    fn indicator_choices(&self) -> Result<crate::proxybank::Choices, ReadError> {
        Ok(crate::proxybank::choices(self.local().store())?)
    }

    /// Every region with a profile: the controllers of the records held here.
    fn controllers(&self) -> Result<Vec<crate::bank::Controller>, ReadError> {
        Ok(crate::bank::controllers(self.local().store())?)
    }

    /// The store's generation: a cheap question the store must answer (health).
    fn generation(&self) -> Result<u64, ReadError> {
        Ok(self.local().store().generation()?)
    }

    /// How the full-text index's background commits and merges go (`/metrics`).
    fn index_health(&self) -> crate::search::IndexHealth {
        self.local().store().index_health()
    }

    /// Whether the full-text index still holds `word`, deleted records included: the check of
    /// the erasure promise for the index.
    fn index_holds_word(&self, word: &str) -> Result<bool, ReadError> {
        Ok(self.local().store().index_holds_word(word)?)
    }

    /// This node's own head.
    fn own_head(&self) -> Result<Option<Head>, ReadError> {
        Ok(self.local().store().head(&self.local().node_id())?)
    }

    /// An author's head here.
    fn head(&self, author: &NodeId) -> Result<Option<Head>, ReadError> {
        Ok(self.local().store().head(author)?)
    }

    /// Every author's head here.
    fn heads(&self) -> Result<BTreeMap<NodeId, Head>, ReadError> {
        Ok(self.local().store().heads()?)
    }

    /// The heads a sync session offers its peer: on an aggregator only those of the regions
    /// it admits (a region it no longer admits is not relayed: its stored entries stay here,
    /// and a region that lacks them does not get them); on a region every head (it sends only
    /// its own log anyway).
    fn relay_heads(&self) -> Result<BTreeMap<NodeId, Head>, ReadError> {
        let mut heads = self.local().store().heads()?;
        if self.local().config().role == crate::local::Role::Aggregator {
            let admitted = self.local().store().admitted_authors()?;
            heads.retain(|a, _| admitted.contains(a));
        }
        Ok(heads)
    }

    /// The audit: aggregators witnessed, their newest checkpoints and cosigners, findings.
    fn audit(&self, now_ms: u64) -> Result<crate::local::AuditReport, ReadError> {
        Ok(self.local().audit_report(now_ms)?)
    }

    /// `spindel audit`: the report, and the checkpoints kept to compare with a peer's.
    fn audit_bundle(&self, now_ms: u64) -> Result<crate::local::AuditBundle, ReadError> {
        Ok(self.local().audit_bundle(now_ms)?)
    }

    /// The checkpoints and cosignatures kept, as another region's `audit --peer` asks.
    fn audit_evidence(
        &self,
    ) -> Result<
        (
            Vec<spindel_protocol::checkpoint::SignedCheckpoint>,
            Vec<spindel_protocol::checkpoint::SignedCosignature>,
        ),
        ReadError,
    > {
        Ok(self.local().audit_evidence()?)
    }

    /// The pinned aggregators whose admission lists vouch for `author` here.
    fn vouchers(&self, author: &NodeId) -> Result<Vec<NodeId>, ReadError> {
        Ok(self.local().store().vouchers(author)?)
    }

    /// What this node knows of an author.
    fn author(&self, id: &NodeId) -> Result<Option<AuthorMeta>, ReadError> {
        Ok(self.local().store().author(id)?)
    }

    /// An author's visible records (current versions, not deleted).
    fn visible_count_of(&self, id: &NodeId) -> Result<u64, ReadError> {
        Ok(self.local().store().visible_count_of(id)?)
    }

    /// Bytes of an author's current payloads (what its quota counts).
    fn payload_bytes_of(&self, id: &NodeId) -> Result<u64, ReadError> {
        Ok(self.local().store().payload_bytes_of(id)?)
    }

    /// Refused entries, counted by reason.
    fn refusals(&self) -> Result<BTreeMap<String, u64>, ReadError> {
        Ok(self.local().store().refusals()?)
    }

    /// Up to `max` entries of `author` from `from_seq`, as stored (the sync sends these).
    fn entries_from(
        &self,
        author: &NodeId,
        from_seq: u64,
        max: usize,
    ) -> Result<Vec<Incoming>, ReadError> {
        Ok(self.local().store().entries_from(author, from_seq, max)?)
    }

    /// One stored entry.
    fn entry(&self, author: &NodeId, seq: u64) -> Result<Option<Entry>, ReadError> {
        Ok(self.local().store().entry(author, seq)?)
    }

    /// Current records held without their payload (a relay stripped it), at most `max`.
    fn header_only_current(&self, max: usize) -> Result<Vec<(NodeId, u64)>, ReadError> {
        Ok(self.local().store().header_only_current(max)?)
    }

    /// Every fork proof held here, by author.
    fn forks(&self) -> Result<Vec<(NodeId, ForkProof)>, ReadError> {
        Ok(self.local().store().forks()?)
    }

    /// Whether `peer` may ask this node's records: itself, or an admitted region that is not
    /// frozen (pinned aggregators are asked about by the caller). Under a charter, admitted
    /// means a member region's live key (a revoked or replaced key is not).
    fn is_member(&self, peer: &NodeId) -> Result<bool, ReadError> {
        Ok(*peer == self.local().node_id()
            || self.connects(peer)?
            || self.local().store().is_mirror(peer)?)
    }

    /// Whether an aggregator takes a sync session of the region `peer`: one it admitted
    /// (`spindel allow`), or under a charter a member region's live key. A frozen region
    /// still gets its session (it learns of its fork there); ingest refuses its entries.
    fn admits_session(&self, peer: &NodeId) -> Result<bool, ReadError> {
        let store = self.local().store();
        Ok(match store.members() {
            Some(members) => members.is_member(peer),
            None => store.author(peer)?.is_some_and(|m| m.admitted),
        })
    }

    /// [`Reads::admits_session`], and not frozen.
    fn connects(&self, peer: &NodeId) -> Result<bool, ReadError> {
        Ok(self.admits_session(peer)?
            && !self.local().store().author(peer)?.is_some_and(|m| m.frozen))
    }

    /// Under a charter: `key` handed its region over to a new key (a rotation held here).
    fn handed_over(&self, key: &NodeId) -> bool {
        self.local()
            .store()
            .members()
            .is_some_and(|m| m.membership.rotated_to(key).is_some())
    }

    /// Under a charter: who belongs, with their keys and the pending acts (the first page of
    /// the erasure orders).
    fn membership(&self) -> Option<crate::local::MembershipReport> {
        self.membership_page(1)
    }

    /// [`Reads::membership`] without the orders' reasons (nothing read from the store): who
    /// belongs, for a list of regions.
    fn membership_decisions(&self) -> Option<crate::local::MembershipReport> {
        self.local()
            .store()
            .members()
            .map(|m| crate::local::membership_report(&m, 1))
    }

    /// [`Reads::membership`] with page `page` (from 1) of the erasure orders.
    fn membership_page(&self, page: usize) -> Option<crate::local::MembershipReport> {
        let store = self.local().store();
        store.members().map(|m| {
            // The orders' reasons, when the store answers; the decisions without them else.
            crate::local::membership_report_in(store, &m, page)
                .unwrap_or_else(|_| crate::local::membership_report(&m, page))
        })
    }

    /// The id of the charter this node adopted, if any (sent after every hello).
    fn charter_id(&self) -> Option<spindel_protocol::entry::Hash> {
        self.local().store().members().map(|m| m.charter.id)
    }

    /// Aggregator: whether `peer` is an aggregator allowed to mirror this one.
    fn is_mirror(&self, peer: &NodeId) -> Result<bool, ReadError> {
        Ok(self.local().store().is_mirror(peer)?)
    }

    /// Aggregator: every region it admitted, with the name it admitted it under.
    fn admission_list(&self) -> Result<Vec<(NodeId, Option<String>)>, ReadError> {
        let me = self.local().node_id();
        // Under a charter this is every key whose log is taken (a former member's too, so live
        // sessions keep relaying it whole); who may hold a session is `admits_session`.
        Ok(self
            .local()
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
    fn erasures_pending(&self) -> bool {
        self.local().store().erasures_pending()
    }

    /// The payload stored for an author's record at `seq`, if any is held.
    fn payload_at(
        &self,
        author: &NodeId,
        rid: &RecordId,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self.local().store().payload_at(author, rid, seq)?)
    }

    /// An author's records with what the store knows of each (deleted ones included).
    fn records_of(&self, author: &NodeId) -> Result<Vec<(RecordId, RecordMeta)>, ReadError> {
        Ok(self.local().store().records_of(author)?)
    }

    /// What the store knows of one of an author's records (deleted ones included).
    fn record_meta(
        &self,
        author: &NodeId,
        rid: &RecordId,
    ) -> Result<Option<RecordMeta>, ReadError> {
        Ok(self.local().store().record_meta(author, rid)?)
    }
}

/// Identity, heads, counts, refusals and forks ([`Reads::status`]).
fn status_of(node: &LocalNode) -> Result<Status, ReadError> {
    let heads = node.store().heads()?;
    let mut authors = Vec::new();
    for a in crate::regions::authors(node.store())? {
        authors.push(AuthorStatus {
            node_id: a.id.to_hex(),
            name: a.meta.label().map(str::to_string),
            display_name: a.meta.display_name.clone(),
            admitted: a.meta.admitted,
            frozen: a.meta.frozen,
            head: a.head,
            records: a.records,
            payload_bytes: node.store().payload_bytes_of(&a.id)?,
            own: a.id == node.node_id(),
        });
    }
    let names: BTreeMap<NodeId, Option<String>> = node
        .store()
        .authors()?
        .into_iter()
        .map(|(id, m)| (id, m.label().map(str::to_string)))
        .collect();
    let me = node.node_id();
    let forks = node
        .store()
        .forks()?
        .into_iter()
        .map(|(author, proof)| {
            let name = names.get(&author).cloned().flatten();
            ForkStatus {
                author: author.to_hex(),
                advice: fork_advice(author == me, name.as_deref(), proof.seq),
                name,
                seq: proof.seq,
                first: Hash::of(&proof.first.header).to_hex(),
                second: Hash::of(&proof.second.header).to_hex(),
                own: author == me,
            }
        })
        .collect();
    let refused_by_author = node
        .store()
        .refusals_by_author()?
        .into_iter()
        .map(|(a, r)| (a.to_hex(), r))
        .collect();
    Ok(Status {
        node_id: node.node_id().to_hex(),
        name: node.config().name.clone(),
        role: node.config().role,
        records: node.store().visible_count()?,
        heads: heads.iter().map(|(id, h)| (id.to_hex(), h.seq)).collect(),
        peers: Vec::new(),
        authors,
        refused: node.store().refusals()?,
        refused_by_author,
        forks,
        generation: node.store().generation()?,
        restored: node.restored(),
        admitted_as: node
            .store()
            .author(&me)?
            .map(|m| m.name_or_key(&me))
            .filter(|n| *n != node.config().name),
        warnings: warnings_of(node)?,
        other_copy: None,
        offline: false,
        not_sent: None,
        other_copy_advice: None,
        membership: match node.store().members() {
            Some(m) => Some(crate::local::membership_report_in(node.store(), &m, 1)?),
            None => None,
        },
        handover: node.handover(),
    })
}

/// What `status` warns about: a region whose profile has no website.
fn warnings_of(node: &LocalNode) -> Result<Vec<String>, ReadError> {
    let mut out = Vec::new();
    if node.config().role == Role::Region {
        let me = node.node_id();
        let profile = node.store().author(&me)?.and_then(|m| m.profile);
        let website = match profile {
            Some(id) => match node.store().record_meta(&me, &id)? {
                Some(m) => match node.store().load_record(&me, &id, &m)? {
                    Some(Record::Profile(p)) => p.website,
                    _ => None,
                },
                None => None,
            },
            None => None,
        };
        if website.is_none() {
            out.push(NO_WEBSITE_WARNING.to_string());
        }
        // Under a charter: a region that is no member signs what reaches no one.
        if let Some(members) = node.store().members() {
            match members.membership.standing(&me) {
                spindel_protocol::membership::Standing::Member { .. } => {}
                spindel_protocol::membership::Standing::Former { .. } => {
                    if let Err(e) = node.check_signs() {
                        out.push(e.to_string());
                    }
                }
                spindel_protocol::membership::Standing::Stranger => out.push(format!(
                    "this region is not a member of the network yet: what it publishes reaches the others once enough member regions endorse it (send them its node id {me}; restart the node once they have, to link at once)"
                )),
            }
        }
    }
    Ok(out)
}

/// The read model as a running node's tasks hold it ([`crate::shared::Shared::node`]): every
/// question of [`Reads`], the check of received entries, a backup and the node's own marker
/// files, and no way to write to the store, by its type. Writes are jobs for
/// [`crate::writer::Writer`], the one holder of the node itself.
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

    /// Builds what the pages read from the payloads (`Store::warm`); the records they show.
    pub(crate) fn warm(&self) -> Result<u64, StoreError> {
        self.0.store().warm()?;
        self.0.store().visible_count()
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

    /// A key rotation signed and not switched to yet ([`LocalNode::handover`]).
    pub fn handover(&self) -> Option<crate::local::Handover> {
        self.0.handover()
    }

    /// The data directory switches to the rotation's new key ([`LocalNode::switch_key`]).
    pub fn switch_key(&self, now_ms: u64) -> Result<std::path::PathBuf, NodeError> {
        self.0.switch_key(now_ms)
    }

    /// A restored node caught up with itself ([`LocalNode::clear_restored`]).
    pub fn clear_restored(&self) -> Result<(), NodeError> {
        self.0.clear_restored()
    }

    /// `spindel backup` of a running node (a consistent copy of every log and the accounts).
    pub fn backup(&self, to: &Path) -> Result<crate::backup::BackedUp, NodeError> {
        crate::backup::write(&self.0, to)
    }

    /// Makes everything written so far durable, at a node's stop ([`LocalNode::flush`]).
    pub fn flush(&self) -> Result<(), NodeError> {
        self.0.flush()
    }

    /// The record a membership act is published as, once checked
    /// ([`LocalNode::act_record`]).
    pub fn act_record(&self, act: &crate::local::ActRequest) -> Result<(Kind, String), NodeError> {
        self.0.act_record(act)
    }

    /// What a published act counts for now ([`LocalNode::acted`]).
    pub fn acted(
        &self,
        act: &crate::local::ActRequest,
        published: &crate::local::Published,
    ) -> Result<crate::local::Acted, NodeError> {
        self.0
            .acted(act, &published.record_id, published.seq, published.offline)
    }

    /// What refuses an import of `kind` whatever its lines, as the writer would refuse it
    /// ([`LocalNode::import_allowed`]).
    pub fn import_allowed(&self, kind: Kind) -> Result<(), NodeError> {
        self.0.import_allowed(kind)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Both handles answer through the one trait; a question the asker can fix is told apart
    /// from a store that failed, and keeps its meaning inside the node's own work.
    #[test]
    fn a_bad_question_is_told_apart_and_both_handles_answer_alike() {
        let dir = tempfile::tempdir().unwrap();
        let node = Arc::new(
            crate::local::init_open(
                &dir.path().join("skane"),
                "skane",
                crate::local::Role::Region,
                None,
                &mut rand_core::OsRng,
            )
            .unwrap(),
        );
        let model = ReadModel::of(&node);
        assert_eq!(model.node_id(), node.node_id());
        assert_eq!(
            model.status().unwrap().node_id,
            Reads::status(&*node).unwrap().node_id
        );
        let unknown = Query {
            region: Some("atlantis".into()),
            ..Query::default()
        };
        let e = model.query(&unknown).unwrap_err();
        assert!(e.is_bad_question(), "{e}");
        assert!(e.to_string().contains("atlantis"), "{e}");
        assert!(matches!(
            NodeError::from(e),
            NodeError::Query(QueryError::UnknownRegion(..))
        ));
        let too_many = Query {
            limit: Some(usize::MAX),
            ..Query::default()
        };
        assert!(node.query(&too_many).unwrap_err().is_bad_question());
        let store = ReadError::from(QueryError::Store(StoreError::Corrupt {
            what: "test".into(),
            reason: "test".into(),
        }));
        assert!(!store.is_bad_question());
        assert!(matches!(NodeError::from(store), NodeError::Store(_)));
    }
}
