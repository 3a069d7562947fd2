//! Authors and regions as every list shows them: every author with its head and visible
//! records counted once ([`authors`]), and the one rule that finds a region by what a person
//! types ([`region_matches`], [`find_region`]). Status, the API's region list, the pages and
//! queries ask here instead of counting or matching on their own.

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
/// Under a charter a region's name stands for each key it has had (a replaced key, its new
/// one): the name finds its live key.
pub fn find_region(store: &Store, key: &str) -> Result<Option<NodeId>, StoreError> {
    let found: Vec<NodeId> = store
        .authors()?
        .into_iter()
        .filter(|(id, m)| region_matches(id, m, key))
        .map(|(id, _)| id)
        .collect();
    if found.len() > 1
        && let Some(members) = store.members()
        && let Some(live) = found.iter().find(|id| members.is_member(id))
    {
        return Ok(Some(*live));
    }
    Ok(found.into_iter().next())
}

/// Every key of `id`'s region, oldest first: under a charter the keys the region has had
/// (rotated, replaced and live); otherwise `id` alone. A region keeps its records, pages and
/// counts across its keys.
pub fn region_keys(store: &Store, id: &NodeId) -> Vec<NodeId> {
    store
        .members()
        .and_then(|m| {
            m.membership
                .region_of(id)
                .map(|r| r.keys.iter().map(|k| k.node).collect())
        })
        .unwrap_or_else(|| vec![*id])
}

/// The key that stands for `id`'s region in lists: its newest key with a profile (a region
/// that rotated keeps its old key's profile until it edits it under the new one).
pub fn representative(store: &Store, id: &NodeId) -> Result<Option<NodeId>, StoreError> {
    for key in region_keys(store, id).into_iter().rev() {
        if store.author(&key)?.is_some_and(|m| m.profile.is_some()) {
            return Ok(Some(key));
        }
    }
    Ok(None)
}
