//! The read model's shared answers: every author with its head and visible records counted
//! once ([`authors`]), and the one rule that finds a region by what a person types
//! ([`region_matches`], [`find_region`]). Status, the API's region list, the pages and queries
//! ask here instead of counting or matching on their own.

use spindel_protocol::NodeId;

use crate::store::{AuthorMeta, Store, StoreError};

/// An author as every list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorRow {
    pub id: NodeId,
    pub meta: AuthorMeta,
    /// Its last entry's seq here (0: none yet).
    pub head: u64,
    /// Its visible records: current versions, not deleted.
    pub records: u64,
}

impl AuthorRow {
    /// A region in the knowledge bank: an author with a profile.
    pub fn is_region(&self) -> bool {
        self.meta.profile.is_some()
    }
}

/// Every author this node knows, in key order.
pub fn authors(store: &Store) -> Result<Vec<AuthorRow>, StoreError> {
    let heads = store.heads()?;
    store
        .authors()?
        .into_iter()
        .map(|(id, meta)| {
            Ok(AuthorRow {
                head: heads.get(&id).map_or(0, |h| h.seq),
                records: store.visible_count_of(&id)?,
                id,
                meta,
            })
        })
        .collect()
}

/// Whether `key` (trimmed) names the region `id`: its name in the network, or its key in hex.
/// Display names never find a region (anyone can copy one).
pub fn region_matches(id: &NodeId, meta: &AuthorMeta, key: &str) -> bool {
    let key = key.trim();
    meta.name_or_key(id) == key || id.to_hex() == key
}

/// The region `key` names, if this node knows it (see [`region_matches`]).
pub fn find_region(store: &Store, key: &str) -> Result<Option<NodeId>, StoreError> {
    Ok(store
        .authors()?
        .into_iter()
        .find(|(id, m)| region_matches(id, m, key))
        .map(|(id, _)| id))
}

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

    /// A page of records for the search page: like [`LocalNode::query`], but a region no
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
}
