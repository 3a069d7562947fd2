//! Who belongs to a network with a charter, decided by the regions' own signed records and
//! the charter alone (docs/protocol.md, "Membership"; decision 0041).
//!
//! Two records carry the acts: an [`Endorsement`] (a member vouches for a key under a name,
//! possibly as the replacement of a lost, leaked or frozen key) and a [`Revocation`] (a
//! member asks that a region's membership end). Each is an ordinary record in its author's
//! own log, signed by it; deleting it withdraws it from the tombstone's time on: a withdrawal
//! takes its vote back only while the change it voted for has not happened.
//! [`Membership::compute`] replays every act in one order every node agrees on, whatever order
//! the records arrived in: by the
//! author's signed timestamp, then author key, then seq. An act counts only if its author's
//! region is a member at that point of the replay (and its key is the region's, its log taken
//! that far), so an act is decided by the acts before it in that order alone, and the same
//! records give the same members on every node.
//!
//! The rules, in replay order:
//! - The charter's founders are members from the start, under their charter names.
//! - An endorsement counts for its triple (key, name, replaced key). Once `threshold`
//!   distinct member regions endorsed the same triple, the key is a member under that name.
//!   A key that ever belonged to a region is never admitted again, and a name once held stays
//!   its region's (a former member's too): a candidate under a held name waits, `blocked`.
//! - A replacement takes the place of the region of the key it replaces: the region keeps its
//!   name and records under its new key, and the old key's log is taken up to the highest
//!   `upto` the counted endorsements named. A revoked region comes back this way too.
//! - A rotation is an endorsement in a member key's own log that `replaces` that very key,
//!   under its region's name: the region's own hand-over to a new key, which needs no other
//!   vote. It takes effect when replayed; the old key's log is taken up to the rotation entry
//!   (its `upto` is its own seq, which ingest checks), and the region keeps its name, its
//!   records and the votes cast on it (a rotation does not escape a pending revocation). A
//!   rotation under another name, or to a key that ever was a region's, counts nothing. A
//!   replacement endorsed by `threshold` members still applies to a region that rotated: the
//!   members' decision ends whichever key is live then (a leaked key's rotation included).
//! - A revocation of a member counts for that member's region. At `threshold` distinct member
//!   regions, the region is a former member, its key's log taken up to the highest `upto` the
//!   counted revocations named.
//! - An erasure order counts for its record while its key's log is taken up to it. At
//!   `threshold` distinct member regions the record is erased. An order of the record's own
//!   region (its live key, for what an earlier key published) also erases it alone, at its
//!   time, unless it was withdrawn or its key's log is cut before it, whenever that cut comes
//!   (the members stop a thief with the region's key that way; a key cut is cut wherever it
//!   is, a key that rotated since included). Nodes hold the record's bytes for a settle time
//!   before erasing them, so a cut that arrives within it shows the record again.
//! - An act that does not apply when it is replayed (endorsing a member, revoking a former
//!   member, an act by a non-member) counts nothing, now or later. Votes of a region that
//!   stops being a member stop counting; a change clears the votes it used.
//!
//! Entries of a key past its cut are not shown. Its acts count by their time: those signed
//! before the change were made while its region was a member and count wherever they are in
//! the log; later ones do not. Nodes take entries from every key that is or was a region's
//! ([`Standing::Former`] included), so every node holds the same logs and replays the same
//! acts: the seeded simulation in the tests shows that refusing entries past a cut lets nodes
//! disagree, as a node may have taken them before it learnt of the change. Only members'
//! connections are taken, so such entries come only from those moments.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::charter::Charter;
use crate::entry::RecordId;
use crate::keys::NodeId;

mod erasure;
mod records;
pub use records::{Endorsement, ErasureOrder, Revocation, limits};

/// One membership act: an endorsement or revocation, with where it is in its author's log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Act {
    /// The author's signed timestamp: the replay's order (then author, then seq).
    pub time_ms: u64,
    pub author: NodeId,
    pub seq: u64,
    pub what: What,
    /// The signed time of the author's tombstone that withdrew it: from then on in the replay
    /// its vote is taken back, unless the change it voted for has happened.
    pub withdrawn_ms: Option<u64>,
}

/// What an act does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum What {
    Endorse {
        node: NodeId,
        name: String,
        /// The key it replaces, and the last seq of that key's log that stays.
        replaces: Option<(NodeId, u64)>,
    },
    Revoke {
        node: NodeId,
        upto: u64,
    },
    /// An order that the record `record` of `author` be erased.
    Erase {
        author: NodeId,
        record: RecordId,
    },
}

impl Act {
    /// The act of a validated endorsement.
    pub fn endorsement(author: NodeId, seq: u64, time_ms: u64, e: &Endorsement) -> Option<Act> {
        let node = NodeId::from_str(&e.node).ok()?;
        let replaces = match (&e.replaces, e.upto) {
            (Some(old), Some(upto)) => Some((NodeId::from_str(old).ok()?, upto)),
            (None, _) => None,
            (Some(_), None) => return None,
        };
        Some(Act {
            time_ms,
            author,
            seq,
            what: What::Endorse {
                node,
                name: e.name.clone(),
                replaces,
            },
            withdrawn_ms: None,
        })
    }

    /// The act of a validated erasure order.
    pub fn erasure(author: NodeId, seq: u64, time_ms: u64, e: &ErasureOrder) -> Option<Act> {
        Some(Act {
            time_ms,
            author,
            seq,
            what: What::Erase {
                author: NodeId::from_str(&e.author).ok()?,
                record: RecordId::from_str(&e.record).ok()?,
            },
            withdrawn_ms: None,
        })
    }

    /// The act of a validated revocation.
    pub fn revocation(author: NodeId, seq: u64, time_ms: u64, r: &Revocation) -> Option<Act> {
        Some(Act {
            time_ms,
            author,
            seq,
            what: What::Revoke {
                node: NodeId::from_str(&r.node).ok()?,
                upto: r.upto,
            },
            withdrawn_ms: None,
        })
    }
}

/// One key of a region, in the order the region held them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionKey {
    pub node: NodeId,
    /// When it became the region's key (0: a founder's, from the charter).
    pub since_ms: u64,
    /// The last seq of its log that is taken; `None` while it is the region's live key.
    pub until: Option<u64>,
    /// Why it ended: `"rotated"`, `"replaced"` or `"revoked"`.
    pub ended: Option<&'static str>,
}

/// A region of the network: its name and keys, and how it came in (and went).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Region {
    pub name: String,
    pub founder: bool,
    /// When it became a member (0 for a founder).
    pub since_ms: u64,
    /// The keys whose endorsements admitted it (or its latest key); empty for a founder.
    pub endorsed_by: Vec<NodeId>,
    pub keys: Vec<RegionKey>,
    pub revoked: Option<Revoked>,
}

impl Region {
    /// The region's newest key.
    pub fn key(&self) -> NodeId {
        self.keys.last().map_or(NodeId([0; 32]), |k| k.node)
    }

    /// A member now (not revoked).
    pub fn active(&self) -> bool {
        self.revoked.is_none()
    }
}

/// How a region's membership ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revoked {
    pub at_ms: u64,
    /// The keys whose revocations counted.
    pub by: Vec<NodeId>,
}

/// Endorsements of a key that have not (yet) made it a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub node: NodeId,
    pub name: String,
    pub replaces: Option<NodeId>,
    /// The endorsing keys of member regions (votes of regions no longer members are left out).
    pub endorsed_by: Vec<NodeId>,
    /// Why it cannot take effect even at the threshold (the name is another region's).
    pub blocked: Option<String>,
}

/// Revocations of a member region that have not (yet) ended it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingRevocation {
    pub node: NodeId,
    pub name: String,
    pub revoked_by: Vec<NodeId>,
}

/// A record the members ordered erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Erased {
    pub author: NodeId,
    pub record: RecordId,
    /// When the order took effect: the deciding order's signed time.
    pub at_ms: u64,
    /// The keys whose orders counted.
    pub by: Vec<NodeId>,
}

/// Erasure orders of a record that have not (yet) taken effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingErasure {
    pub author: NodeId,
    pub record: RecordId,
    /// The ordering keys of member regions.
    pub ordered_by: Vec<NodeId>,
}

/// What a node makes of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// A member region's live key.
    Member { name: String },
    /// A key whose entries are taken only up to `until`: replaced, or its region revoked.
    Former { name: String, until: u64 },
    /// Not a key of any region: its entries are refused.
    Stranger,
}

/// The network's members, from the charter and the acts ([`Membership::compute`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub threshold: usize,
    pub regions: Vec<Region>,
    pub pending: Vec<Pending>,
    pub pending_revocations: Vec<PendingRevocation>,
    /// Records erased by the members' orders, in the order they took effect.
    pub erased: Vec<Erased>,
    pub pending_erasures: Vec<PendingErasure>,
    by_key: BTreeMap<NodeId, usize>,
    /// The records of `erased`, for [`Membership::is_erased`] (asked for every entry taken).
    erased_keys: BTreeSet<(NodeId, RecordId)>,
}

/// An endorsement's target: the key, its name, the key it replaces.
type Candidate = (NodeId, String, Option<NodeId>);

/// A region's standing erasure order: its key, the act's index and the act's seq.
type OrderVote = (NodeId, usize, u64);

/// The replay's state.
struct Replay {
    threshold: usize,
    regions: Vec<Region>,
    by_key: BTreeMap<NodeId, usize>,
    /// Per candidate, each endorsing region's latest vote: (its key, the `upto` it named).
    endorsements: BTreeMap<Candidate, BTreeMap<usize, (NodeId, u64)>>,
    /// Per region, each revoking region's latest vote: (its key, the key named, `upto`).
    revocations: BTreeMap<usize, BTreeMap<usize, (NodeId, NodeId, u64)>>,
    /// Which act cast each standing vote: (candidate, voter) and (target, voter) to the act's
    /// index, so a withdrawal takes back only its own act's vote.
    endorsed_by_act: BTreeMap<(Candidate, usize), usize>,
    revoked_by_act: BTreeMap<(usize, usize), usize>,
    /// Per record, each ordering region's standing order.
    erasures: BTreeMap<(NodeId, RecordId), BTreeMap<usize, OrderVote>>,
    erased: Vec<Erased>,
    erased_keys: BTreeSet<(NodeId, RecordId)>,
    /// Orders of a record's own region, by act index, decided when the replay ends
    /// ([`Replay::own_orders_decide`]).
    own_orders: BTreeMap<usize, (NodeId, RecordId)>,
}

impl Replay {
    /// `key`'s log is taken as far as `seq` (a live key, or one cut at or after it).
    fn covers(&self, key: &NodeId, seq: u64) -> bool {
        self.by_key.get(key).is_some_and(|r| {
            self.regions[*r]
                .keys
                .iter()
                .any(|k| k.node == *key && k.until.is_none_or(|u| seq <= u))
        })
    }

    /// A cut named `until` for `key`, which already ended (it rotated): its log is taken no
    /// further than that either (a thief's rotation after its acts does not keep them).
    fn cut_ended(&mut self, region: usize, key: &NodeId, until: u64) {
        for k in self.regions[region]
            .keys
            .iter_mut()
            .filter(|k| k.node == *key && k.until.is_some())
        {
            k.until = k.until.map(|u| u.min(until));
        }
    }

    /// The region whose key `author` may act at `seq` (a member, and the key's log taken that
    /// far).
    fn voter(&self, author: &NodeId, seq: u64) -> Option<usize> {
        let r = *self.by_key.get(author)?;
        let region = &self.regions[r];
        let key = region.keys.iter().find(|k| k.node == *author)?;
        (region.active() && key.until.is_none_or(|u| seq <= u)).then_some(r)
    }

    /// The votes of regions that are members now, by voting key.
    fn counted<T: Copy + Ord>(&self, votes: &BTreeMap<usize, T>) -> Vec<T> {
        let mut out: Vec<T> = votes
            .iter()
            .filter(|(r, _)| self.regions[**r].active())
            .map(|(_, v)| *v)
            .collect();
        out.sort();
        out
    }

    /// Whose region holds `name` (every region keeps its name, former members too).
    fn holder(&self, name: &str) -> Option<usize> {
        self.regions.iter().position(|r| r.name == name)
    }

    fn endorse(
        &mut self,
        (index, act): (usize, &Act),
        voter: usize,
        node: NodeId,
        name: &str,
        replaces: Option<(NodeId, u64)>,
    ) {
        if self.by_key.contains_key(&node) {
            return;
        }
        if let Some((old, _)) = replaces
            && old == act.author
        {
            self.rotate(act, voter, node, name);
            return;
        }
        let replaced = match replaces {
            Some((old, _)) => match self.by_key.get(&old) {
                Some(r) => Some(*r),
                None => return,
            },
            None => None,
        };
        let candidate = (node, name.to_string(), replaces.map(|(old, _)| old));
        let upto = replaces.map_or(0, |(_, u)| u);
        self.endorsements
            .entry(candidate.clone())
            .or_default()
            .insert(voter, (act.author, upto));
        self.endorsed_by_act
            .insert((candidate.clone(), voter), index);
        let counted = self.counted(&self.endorsements[&candidate]);
        if counted.len() < self.threshold {
            return;
        }
        if self.holder(name).is_some_and(|h| Some(h) != replaced) {
            return;
        }
        let endorsed_by: Vec<NodeId> = counted.iter().map(|(k, _)| *k).collect();
        let key = RegionKey {
            node,
            since_ms: act.time_ms,
            until: None,
            ended: None,
        };
        let index = match replaced {
            Some(r) => {
                let old = candidate.2;
                let until = counted.iter().map(|(_, u)| *u).max().unwrap_or(0);
                if let Some(old) = old {
                    self.cut_ended(r, &old, until);
                }
                let region = &mut self.regions[r];
                for k in region.keys.iter_mut().filter(|k| k.until.is_none()) {
                    // The named key keeps what the endorsements named; any other open key of
                    // the region (one its named key rotated to) keeps nothing.
                    k.until = Some(if Some(k.node) == old { until } else { 0 });
                    k.ended = Some("replaced");
                }
                region.keys.push(key);
                region.name = name.to_string();
                region.endorsed_by = endorsed_by;
                region.revoked = None;
                self.revocations.remove(&r);
                r
            }
            None => {
                self.regions.push(Region {
                    name: name.to_string(),
                    founder: false,
                    since_ms: act.time_ms,
                    endorsed_by,
                    keys: vec![key],
                    revoked: None,
                });
                self.regions.len() - 1
            }
        };
        self.by_key.insert(node, index);
        self.endorsements.retain(|(n, _, _), _| *n != node);
        self.endorsed_by_act.retain(|((n, _, _), _), _| *n != node);
    }

    /// A rotation: the region's live key names its successor in its own log. It takes effect
    /// at once, under the region's name only: the old key's log is taken up to the rotation
    /// entry itself, and nothing else of the region changes (its pending revocations stand).
    fn rotate(&mut self, act: &Act, region: usize, node: NodeId, name: &str) {
        let region_ref = &mut self.regions[region];
        if region_ref.name != name {
            return;
        }
        let Some(old) = region_ref
            .keys
            .iter_mut()
            .find(|k| k.node == act.author && k.until.is_none())
        else {
            return;
        };
        old.until = Some(act.seq);
        old.ended = Some("rotated");
        region_ref.keys.push(RegionKey {
            node,
            since_ms: act.time_ms,
            until: None,
            ended: None,
        });
        self.by_key.insert(node, region);
        self.endorsements.retain(|(n, _, _), _| *n != node);
        self.endorsed_by_act.retain(|((n, _, _), _), _| *n != node);
    }

    fn revoke(&mut self, (index, act): (usize, &Act), voter: usize, node: NodeId, upto: u64) {
        let Some(&target) = self.by_key.get(&node) else {
            return;
        };
        if !self.regions[target].active() {
            return;
        }
        self.revocations
            .entry(target)
            .or_default()
            .insert(voter, (act.author, node, upto));
        self.revoked_by_act.insert((target, voter), index);
        let counted = self.counted(&self.revocations[&target]);
        if counted.len() < self.threshold {
            return;
        }
        // A named key that already ended (rotated) is cut too, at the highest `upto` named.
        let mut ended: BTreeMap<NodeId, u64> = BTreeMap::new();
        for (_, named, upto) in &counted {
            let u = ended.entry(*named).or_default();
            *u = (*u).max(*upto);
        }
        for (named, upto) in ended {
            self.cut_ended(target, &named, upto);
        }
        let region = &mut self.regions[target];
        for k in region.keys.iter_mut().filter(|k| k.until.is_none()) {
            let until = counted
                .iter()
                .filter(|(_, named, _)| *named == k.node)
                .map(|(_, _, u)| *u)
                .max()
                .unwrap_or(0);
            k.until = Some(until);
            k.ended = Some("revoked");
        }
        region.revoked = Some(Revoked {
            at_ms: act.time_ms,
            by: counted.iter().map(|(k, _, _)| *k).collect(),
        });
        self.revocations.remove(&target);
        self.revoked_by_act.retain(|(t, _), _| *t != target);
    }

    /// The act at `index` is withdrawn: its vote, if it still stands (its change has not
    /// happened, and no later act of its region replaced it), is taken back.
    fn withdraw(&mut self, index: usize, act: &Act) {
        match &act.what {
            What::Endorse {
                node,
                name,
                replaces,
            } => {
                let candidate = (*node, name.clone(), replaces.map(|(old, _)| old));
                let cast = self
                    .endorsed_by_act
                    .iter()
                    .find(|((c, _), i)| *c == candidate && **i == index)
                    .map(|((_, voter), _)| *voter);
                if let Some(voter) = cast {
                    self.endorsed_by_act.remove(&(candidate.clone(), voter));
                    if let Some(votes) = self.endorsements.get_mut(&candidate) {
                        votes.remove(&voter);
                        if votes.is_empty() {
                            self.endorsements.remove(&candidate);
                        }
                    }
                }
            }
            What::Erase { author, record } => {
                let target = (*author, *record);
                if let Some(votes) = self.erasures.get_mut(&target) {
                    votes.retain(|_, (_, cast, _)| *cast != index);
                    if votes.is_empty() {
                        self.erasures.remove(&target);
                    }
                }
            }
            What::Revoke { .. } => {
                let cast = self
                    .revoked_by_act
                    .iter()
                    .find(|(_, i)| **i == index)
                    .map(|(k, _)| *k);
                if let Some((target, voter)) = cast {
                    self.revoked_by_act.remove(&(target, voter));
                    if let Some(votes) = self.revocations.get_mut(&target) {
                        votes.remove(&voter);
                        if votes.is_empty() {
                            self.revocations.remove(&target);
                        }
                    }
                }
            }
        }
    }
}

impl Membership {
    /// Replays `acts` (in any order; duplicates of one author and seq are taken once) from
    /// the charter: see the module docs.
    pub fn compute(charter: &Charter, acts: impl IntoIterator<Item = Act>) -> Membership {
        let mut acts: Vec<Act> = acts.into_iter().collect();
        acts.sort();
        acts.dedup_by(|a, b| a.author == b.author && a.seq == b.seq);
        Replay::run(charter, &acts).finish()
    }
}

impl Replay {
    fn run(charter: &Charter, acts: &[Act]) -> Replay {
        let mut replay = Replay {
            threshold: charter.threshold.max(1) as usize,
            regions: Vec::with_capacity(charter.founders.len()),
            by_key: BTreeMap::new(),
            endorsements: BTreeMap::new(),
            revocations: BTreeMap::new(),
            endorsed_by_act: BTreeMap::new(),
            revoked_by_act: BTreeMap::new(),
            erasures: BTreeMap::new(),
            erased: Vec::new(),
            erased_keys: BTreeSet::new(),
            own_orders: BTreeMap::new(),
        };
        for f in &charter.founders {
            replay.by_key.insert(f.node, replay.regions.len());
            replay.regions.push(Region {
                name: f.name.clone(),
                founder: true,
                since_ms: 0,
                endorsed_by: Vec::new(),
                keys: vec![RegionKey {
                    node: f.node,
                    since_ms: 0,
                    until: None,
                    ended: None,
                }],
                revoked: None,
            });
        }
        // Each act at its time, each withdrawal at its own (after the act, at equal times).
        let mut events: Vec<(u64, u8, NodeId, u64, usize)> = Vec::with_capacity(acts.len());
        for (i, act) in acts.iter().enumerate() {
            events.push((act.time_ms, 0, act.author, act.seq, i));
            if let Some(t) = act.withdrawn_ms {
                events.push((t.max(act.time_ms), 1, act.author, act.seq, i));
            }
        }
        events.sort();
        for (_, phase, _, _, i) in events {
            let act = &acts[i];
            if phase == 1 {
                replay.withdraw(i, act);
                continue;
            }
            let Some(voter) = replay.voter(&act.author, act.seq) else {
                continue;
            };
            match &act.what {
                What::Endorse {
                    node,
                    name,
                    replaces,
                } => replay.endorse((i, act), voter, *node, name, *replaces),
                What::Revoke { node, upto } => replay.revoke((i, act), voter, *node, *upto),
                What::Erase { author, record } => replay.erase((i, act), voter, *author, *record),
            }
        }
        replay.own_orders_decide(acts);
        replay
    }

    fn finish(self) -> Membership {
        let replay = self;
        let pending = replay
            .endorsements
            .iter()
            .filter_map(|((node, name, replaces), votes)| {
                let counted = replay.counted(votes);
                let replaced = replaces.and_then(|old| replay.by_key.get(&old).copied());
                (!counted.is_empty()).then(|| Pending {
                    node: *node,
                    name: name.clone(),
                    replaces: *replaces,
                    endorsed_by: counted.iter().map(|(k, _)| *k).collect(),
                    blocked: replay
                        .holder(name)
                        .filter(|h| Some(*h) != replaced)
                        .map(|h| format!("the name is held by {}", replay.regions[h].key())),
                })
            })
            .collect();
        let pending_revocations = replay
            .revocations
            .iter()
            .filter_map(|(target, votes)| {
                let counted = replay.counted(votes);
                let region = &replay.regions[*target];
                (!counted.is_empty() && region.active()).then(|| PendingRevocation {
                    node: region.key(),
                    name: region.name.clone(),
                    revoked_by: counted.iter().map(|(k, _, _)| *k).collect(),
                })
            })
            .collect();
        let pending_erasures = replay
            .erasures
            .keys()
            .filter_map(|target| {
                let counted = replay.ordered_by(target);
                (!counted.is_empty()).then_some(PendingErasure {
                    author: target.0,
                    record: target.1,
                    ordered_by: counted,
                })
            })
            .collect();
        Membership {
            threshold: replay.threshold,
            regions: replay.regions,
            pending,
            pending_revocations,
            erased: replay.erased,
            pending_erasures,
            by_key: replay.by_key,
            erased_keys: replay.erased_keys,
        }
    }
}

impl Membership {
    /// What this network makes of `key`.
    pub fn standing(&self, key: &NodeId) -> Standing {
        let Some(region) = self.region_of(key) else {
            return Standing::Stranger;
        };
        match region.keys.iter().find(|k| k.node == *key) {
            Some(k) if region.active() && k.until.is_none() => Standing::Member {
                name: region.name.clone(),
            },
            Some(k) => Standing::Former {
                name: region.name.clone(),
                until: k.until.unwrap_or(0),
            },
            None => Standing::Stranger,
        }
    }

    /// The members ordered `author`'s record `record` erased.
    pub fn is_erased(&self, author: &NodeId, record: &RecordId) -> bool {
        self.erased_keys.contains(&(*author, *record))
    }

    /// The key `key` handed its region over to by a rotation, and the rotation's seq (the
    /// last of `key`'s log that counts), if it did.
    pub fn rotated_to(&self, key: &NodeId) -> Option<(NodeId, u64)> {
        let region = self.region_of(key)?;
        let at = region.keys.iter().position(|k| k.node == *key)?;
        let old = &region.keys[at];
        let next = region.keys.get(at + 1)?;
        (old.ended == Some("rotated")).then(|| (next.node, old.until.unwrap_or(0)))
    }

    /// The region `key` is (or was) a key of.
    pub fn region_of(&self, key: &NodeId) -> Option<&Region> {
        self.by_key.get(key).map(|i| &self.regions[*i])
    }

    /// The live keys of the member regions, with their names.
    pub fn members(&self) -> impl Iterator<Item = (NodeId, &str)> + '_ {
        self.regions
            .iter()
            .filter(|r| r.active())
            .map(|r| (r.key(), r.name.as_str()))
    }

    /// Every key that ever belonged to a region, with what is taken of its log.
    pub fn keys(&self) -> impl Iterator<Item = (NodeId, Standing)> + '_ {
        self.by_key.keys().map(|k| (*k, self.standing(k)))
    }
}

#[cfg(test)]
mod tests;
