//! The replay's erasure orders: votes per record, the threshold, and the orders of records'
//! own regions decided once every act is replayed (see the module docs of
//! [`super`]).

use super::{Act, Erased, Replay};
use crate::entry::RecordId;
use crate::keys::NodeId;

impl Replay {
    /// An order that `author`'s record `record` be erased, by `voter`'s region. It takes
    /// effect at `threshold` member regions. An order of the record's own region (its live
    /// key erasing what an earlier key of it published) is also decided alone once the replay
    /// has ended ([`Replay::own_orders_decide`]).
    pub(super) fn erase(
        &mut self,
        (index, act): (usize, &Act),
        voter: usize,
        author: NodeId,
        record: RecordId,
    ) {
        let target = (author, record);
        if self.erased_keys.contains(&target) {
            return;
        }
        self.erasures
            .entry(target)
            .or_default()
            .insert(voter, (act.author, index, act.seq));
        if self.by_key.get(&author) == Some(&voter) {
            self.own_orders.insert(index, target);
        }
        let counted = self.ordered_by(&target);
        if counted.len() >= self.threshold {
            self.decide_erasure(target, act.time_ms, counted);
        }
    }

    /// The keys of the member regions whose orders to erase `target` stand, sorted: an order
    /// of a key whose log has since been cut before it counts no more.
    pub(super) fn ordered_by(&self, target: &(NodeId, RecordId)) -> Vec<NodeId> {
        self.erasures.get(target).map_or_else(Vec::new, |votes| {
            self.counted(votes)
                .into_iter()
                .filter(|(k, _, seq)| self.covers(k, *seq))
                .map(|(k, _, _)| k)
                .collect()
        })
    }

    /// The orders of records' own regions, once every act is replayed: each not withdrawn,
    /// whose key's log is still taken as far as it (however late a cut came), erases its
    /// record at its time, unless the members' orders erased it already.
    pub(super) fn own_orders_decide(&mut self, acts: &[Act]) {
        for (index, target) in std::mem::take(&mut self.own_orders) {
            let act = &acts[index];
            if act.withdrawn_ms.is_some()
                || self.erased_keys.contains(&target)
                || !self.covers(&act.author, act.seq)
            {
                continue;
            }
            self.decide_erasure(target, act.time_ms, vec![act.author]);
        }
        // In the order they took effect (the own orders' decisions come at the end).
        self.erased.sort_by_key(|e| (e.at_ms, e.author, e.record));
    }

    fn decide_erasure(&mut self, target: (NodeId, RecordId), at_ms: u64, by: Vec<NodeId>) {
        self.erased_keys.insert(target);
        self.erased.push(Erased {
            author: target.0,
            record: target.1,
            at_ms,
            by,
        });
        self.erasures.remove(&target);
    }
}
