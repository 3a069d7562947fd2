//! Membership under a charter (decision 0041): the charter this node adopted, every live
//! membership act (endorsements and revocations, in memory only, read from the payloads on
//! open and kept by every batch), and the [`Membership`] they give.
//!
//! What membership decides is written into each author's [`AuthorMeta`] (`admitted`, and
//! `admitted_name`) in the same atomic batch as the act that changed it, so ingest, the
//! aggregator's admission list and every page read it as they read `spindel allow`'s
//! admissions in a network without a charter. Under a charter only the acts decide:
//! `allow`, `disallow`, an aggregator's admission list and its vouches change nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use spindel_protocol::NodeId;
use spindel_protocol::charter::VerifiedCharter;
use spindel_protocol::entry::RecordId;
use spindel_protocol::membership::{Act, Membership, Standing, What};
use spindel_protocol::record::Record;

use super::types::AuthorMeta;

/// The charter as kept in the store: the file's text as adopted, and this node's key (it
/// always takes its own entries, member or not yet).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Held {
    pub(super) file: String,
    pub(super) me: NodeId,
}

/// The charter, the live acts and the membership they give.
#[derive(Debug, Clone)]
pub struct Members {
    pub charter: VerifiedCharter,
    pub me: NodeId,
    acts: BTreeMap<(NodeId, RecordId), Act>,
    pub membership: Membership,
}

impl Members {
    /// `record` of `author` is a membership act held here (an erasure order naming one erases
    /// nothing: an act is withdrawn by its author).
    pub fn is_act(&self, author: &NodeId, record: &RecordId) -> bool {
        self.acts.contains_key(&(*author, *record))
    }

    /// The live erasure orders (not withdrawn): the order's record key and the record it
    /// names.
    pub fn erasure_orders(
        &self,
    ) -> impl Iterator<Item = ((NodeId, RecordId), (NodeId, RecordId))> + '_ {
        self.acts.iter().filter_map(|(key, act)| match act.what {
            What::Erase { author, record } if act.withdrawn_ms.is_none() => {
                Some((*key, (author, record)))
            }
            _ => None,
        })
    }

    /// This node's own live acts (not withdrawn): each record id and what it does.
    pub fn own_acts(&self) -> impl Iterator<Item = (RecordId, What)> + '_ {
        self.acts
            .iter()
            .filter(|((author, _), act)| *author == self.me && act.withdrawn_ms.is_none())
            .map(|((_, rid), act)| (*rid, act.what.clone()))
    }

    pub(super) fn new(
        charter: VerifiedCharter,
        me: NodeId,
        acts: BTreeMap<(NodeId, RecordId), Act>,
    ) -> Members {
        let membership = Membership::compute(&charter.charter, acts.values().cloned());
        Members {
            charter,
            me,
            acts,
            membership,
        }
    }

    /// Keeps the act of `key`; `true` when it is new (call [`Members::recompute`] after).
    pub(super) fn put_act(&mut self, key: (NodeId, RecordId), act: Act) -> bool {
        self.acts.insert(key, act.clone()).as_ref() != Some(&act)
    }

    /// Computes membership again from the charter and every act.
    pub(super) fn recompute(&mut self) {
        self.membership = Membership::compute(&self.charter.charter, self.acts.values().cloned());
    }

    /// How many acts `author` has made (withdrawn ones too), its erasure orders or its
    /// other acts: ingest's quotas.
    pub fn acts_of(&self, author: &NodeId, erasures: bool) -> u64 {
        self.acts
            .range((*author, RecordId([0; 16]))..=(*author, RecordId([0xff; 16])))
            .filter(|(_, a)| matches!(a.what, What::Erase { .. }) == erasures)
            .count() as u64
    }

    /// What membership makes of `key` in its author metadata: whether its entries are taken
    /// (a member's, a former member's up to its cut, and this node's own), and its name.
    pub fn admission(&self, key: &NodeId) -> (bool, Option<String>) {
        match self.membership.standing(key) {
            Standing::Member { name } | Standing::Former { name, .. } => (true, Some(name)),
            Standing::Stranger => (*key == self.me, None),
        }
    }

    /// Whether `key` is a member region's live key: what an aggregator admits a connection
    /// of, and a node answers queries of.
    pub fn is_member(&self, key: &NodeId) -> bool {
        matches!(self.membership.standing(key), Standing::Member { .. })
    }

    /// The number of live acts.
    pub fn acts(&self) -> usize {
        self.acts.len()
    }

    /// Whether the act `key` counted in a change that happened (taking it out of the replay
    /// would change who belongs, under which key, or what is taken of a log): withdrawing it
    /// now would change nothing, since a withdrawal is replayed at its own time.
    pub fn took_effect(&self, key: &(NodeId, RecordId)) -> bool {
        if self.acts.get(key).is_none_or(|a| a.withdrawn_ms.is_some()) {
            return false;
        }
        let without = Membership::compute(
            &self.charter.charter,
            self.acts
                .iter()
                .filter(|(k, _)| *k != key)
                .map(|(_, a)| a.clone()),
        );
        without.regions != self.membership.regions
    }
}

/// The act a membership record makes, as its author signed it.
pub(super) fn act_of(author: NodeId, seq: u64, time_ms: u64, record: &Record) -> Option<Act> {
    match record {
        Record::Endorsement(e) => Act::endorsement(author, seq, time_ms, e),
        Record::Revocation(r) => Act::revocation(author, seq, time_ms, r),
        Record::Erasure(o) => Act::erasure(author, seq, time_ms, o),
        _ => None,
    }
}

/// Sets `meta`'s admission and name from membership; `true` when it changed.
pub(super) fn settle(members: &Members, key: &NodeId, meta: &mut AuthorMeta) -> bool {
    let (admitted, name) = members.admission(key);
    // This node's own name is kept when membership gives it none (a newcomer not yet
    // endorsed is known by the name it was set up with).
    let name = match (name, *key == members.me) {
        (None, true) => meta.admitted_name.clone(),
        (name, _) => name,
    };
    if meta.admitted == admitted && meta.admitted_name == name {
        return false;
    }
    meta.admitted = admitted;
    meta.admitted_name = name;
    true
}
