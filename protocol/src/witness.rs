//! What a region checks of an aggregator's checkpoints, and what it finds: pure functions of
//! what the region remembers of that aggregator ([`AggregatorView`]), what it holds itself
//! and the time, so the seeded simulation and the node decide alike.
//!
//! A checkpoint is *taken* (kept, and cosigned when nothing is found) or *refused* (a replay,
//! a counter that did not grow, a time out of bounds: counted, never cosigned). What is found
//! is a [`Finding`]:
//!
//! - `rollback`: an author's head in a newer checkpoint (or in the aggregator's opening heads)
//!   is below one it signed before, or this region's own head is below what the aggregator
//!   acknowledged to it;
//! - `withheld`: a checkpoint names an entry this region does not hold although the
//!   aggregator sends a checkpoint only after the entries it covers;
//! - `split-view`: two checkpoints of one aggregator that cannot both be true (one counter,
//!   two bodies; another entry at a seq than this region holds; a cosignature of another
//!   checkpoint under a counter this region holds; across two regions, heads that go back);
//! - `stale`: no checkpoint newer than [`STALE_AFTER_MS`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{CosignatureBody, VerifiedCheckpoint};
use crate::entry::Hash;
use crate::ingest::FUTURE_SKEW_MS_MAX;
use crate::keys::NodeId;

/// An aggregator signs a checkpoint at most this often while its aggregate changes.
pub const CHECKPOINT_INTERVAL_MS: u64 = 2_000;
/// ... and at least this often when nothing changed, so its regions see it is alive.
pub const CHECKPOINT_REFRESH_MS: u64 = 5 * 60 * 1000;
/// A region that has had no checkpoint of an aggregator newer than this finds it `stale`
/// (three refreshes missed).
pub const STALE_AFTER_MS: u64 = 3 * CHECKPOINT_REFRESH_MS;

/// What is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    Rollback,
    Withheld,
    SplitView,
    Stale,
}

impl FindingKind {
    pub const ALL: [FindingKind; 4] = [
        FindingKind::Rollback,
        FindingKind::Withheld,
        FindingKind::SplitView,
        FindingKind::Stale,
    ];

    /// The name in JSON, logs and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Rollback => "rollback",
            FindingKind::Withheld => "withheld",
            FindingKind::SplitView => "split-view",
            FindingKind::Stale => "stale",
        }
    }
}

/// One thing an aggregator did that a witness can show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub aggregator: NodeId,
    /// The region (author) it concerns, when it concerns one.
    pub region: Option<NodeId>,
    pub detail: String,
}

fn finding(
    kind: FindingKind,
    aggregator: NodeId,
    region: Option<NodeId>,
    detail: String,
) -> Finding {
    Finding {
        kind,
        aggregator,
        region,
        detail,
    }
}

/// A checkpoint as a witness remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub counter: u64,
    pub time_ms: u64,
    pub hash: Hash,
}

/// The highest head of an author in any checkpoint taken, and the checkpoint's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct High {
    pub seq: u64,
    pub hash: Hash,
    pub counter: u64,
}

/// What a region remembers of one aggregator: bounded by the authors it relays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatorView {
    /// The newest checkpoint taken.
    pub latest: Option<Seen>,
    /// The highest head each author had in any checkpoint taken.
    pub high: BTreeMap<NodeId, High>,
    /// The highest seq of this node's own log the aggregator acknowledged.
    pub acked: u64,
    /// When this node first had a session with the aggregator (ms): no checkpoint for
    /// [`STALE_AFTER_MS`] since is `stale` too.
    pub since_ms: u64,
}

/// What this node holds of one author a checkpoint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// This node's head of the author (0: none).
    pub head: u64,
    /// The hash of the entry this node holds at the checkpoint's seq, if it holds it.
    pub at_seq: Option<Hash>,
    /// This node takes the author's entries (admitted, not frozen): if it lacks some the
    /// checkpoint names, they were withheld.
    pub takes: bool,
}

/// What a witness decided of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The newest checkpoint taken, once more (a new session offers it): nothing to do, and
    /// nothing to count.
    Again,
    /// Not kept, not cosigned; the refusal counter's name.
    Refused(&'static str),
    /// Kept; cosigned when `findings` is empty and there is no `doubt` (another entry at a
    /// seq than this node holds: its author forked, which the fork proof will show).
    Taken { findings: Vec<Finding>, doubt: bool },
}

/// Everything [`witness`] weighs besides the view and the checkpoint.
#[derive(Debug, Clone)]
pub struct Context {
    pub me: NodeId,
    pub now_ms: u64,
    /// What the aggregator acknowledged of this node's own log in the running session.
    pub acked: u64,
    /// A checkpoint this node keeps under the same counter, by hash.
    pub same_counter: Vec<Hash>,
    /// What this node holds of each author the checkpoint names.
    pub held: BTreeMap<NodeId, Held>,
    /// The authors this aggregator's admission list gives this node (it vouches for them): one
    /// it leaves out of a checkpoint after naming it is a `rollback`.
    pub listed: std::collections::BTreeSet<NodeId>,
}

/// Checks a checkpoint of the aggregator `view` remembers (the signature already held) and,
/// when taken, updates the view.
pub fn witness(view: &mut AggregatorView, cp: &VerifiedCheckpoint, ctx: &Context) -> Verdict {
    let c = &cp.checkpoint;
    let agg = c.aggregator;
    if ctx.same_counter.contains(&cp.hash) {
        if view.latest.is_some_and(|l| l.hash == cp.hash) {
            return Verdict::Again;
        }
        return Verdict::Refused("checkpoint_replayed");
    }
    if !ctx.same_counter.is_empty() {
        return Verdict::Taken {
            doubt: false,
            findings: vec![finding(
                FindingKind::SplitView,
                agg,
                None,
                format!(
                    "two different checkpoints with counter {} (this node holds both)",
                    c.counter
                ),
            )],
        };
    }
    if let Some(latest) = view.latest {
        if c.counter <= latest.counter {
            return Verdict::Refused("checkpoint_counter_not_growing");
        }
        if c.time_ms.saturating_add(FUTURE_SKEW_MS_MAX) < latest.time_ms {
            return Verdict::Refused("checkpoint_time_went_back");
        }
    }
    if c.time_ms > ctx.now_ms.saturating_add(FUTURE_SKEW_MS_MAX) {
        return Verdict::Refused("checkpoint_from_the_future");
    }
    // An honest counter is `max(last + 1, time in ms)`: never below the time, and above it
    // only by a clock that stepped back. A counter far ahead of its time would let an
    // aggregator order one region's checkpoints after another's at will.
    if c.counter < c.time_ms || c.counter > c.time_ms.saturating_add(FUTURE_SKEW_MS_MAX) {
        return Verdict::Refused("checkpoint_counter_not_its_time");
    }
    if c.time_ms.saturating_add(STALE_AFTER_MS) < ctx.now_ms {
        return Verdict::Refused("checkpoint_too_old");
    }
    let mut findings = Vec::new();
    let mut doubt = false;
    for h in &c.heads {
        if let Some(high) = view.high.get(&h.author) {
            if h.seq < high.seq {
                findings.push(finding(
                    FindingKind::Rollback,
                    agg,
                    Some(h.author),
                    format!(
                        "checkpoint {} holds the region up to entry {}, checkpoint {} held it up to {}",
                        c.counter, h.seq, high.counter, high.seq
                    ),
                ));
            } else if h.seq == high.seq && h.hash != high.hash {
                findings.push(finding(
                    FindingKind::SplitView,
                    agg,
                    Some(h.author),
                    format!(
                        "checkpoints {} and {} name different entries {} of the region",
                        high.counter, c.counter, h.seq
                    ),
                ));
            }
        }
        if let Some(held) = ctx.held.get(&h.author) {
            // Another entry at a seq this node holds is its author's fork (the tips and the
            // fork proof show it), not the aggregator's doing: not cosigned, not a finding.
            if held.at_seq.is_some_and(|hash| hash != h.hash) {
                doubt = true;
            }
            if held.takes && held.head < h.seq && h.author != ctx.me {
                findings.push(finding(
                    FindingKind::Withheld,
                    agg,
                    Some(h.author),
                    format!(
                        "checkpoint {} holds the region up to entry {}, this node was sent up to {}",
                        c.counter, h.seq, held.head
                    ),
                ));
            }
        }
    }
    // A region this aggregator still lists, left out of its checkpoint: what it held of it
    // is gone from the picture.
    for (author, high) in &view.high {
        if c.head(author).is_none() && ctx.listed.contains(author) {
            findings.push(finding(
                FindingKind::Rollback,
                agg,
                Some(*author),
                format!(
                    "checkpoint {} leaves out the region it still lists, checkpoint {} held it up to entry {}",
                    c.counter, high.counter, high.seq
                ),
            ));
        }
    }
    let acked = view.acked.max(ctx.acked);
    let own = c.head(&ctx.me).map_or(0, |h| h.seq);
    if own < acked {
        findings.push(finding(
            FindingKind::Rollback,
            agg,
            Some(ctx.me),
            format!(
                "checkpoint {} holds this region up to entry {own}, the aggregator acknowledged {acked}",
                c.counter
            ),
        ));
    }
    view.acked = acked;
    view.latest = Some(Seen {
        counter: c.counter,
        time_ms: c.time_ms,
        hash: cp.hash,
    });
    for h in &c.heads {
        // Only authors this node knows (it holds some of their log, or takes it): a checkpoint
        // of made-up authors does not grow what this node remembers.
        let known = ctx
            .held
            .get(&h.author)
            .is_some_and(|held| held.takes || held.head > 0);
        if !known && !view.high.contains_key(&h.author) {
            continue;
        }
        let high = view.high.entry(h.author).or_insert(High {
            seq: 0,
            hash: Hash::ZERO,
            counter: c.counter,
        });
        if h.seq > high.seq {
            *high = High {
                seq: h.seq,
                hash: h.hash,
                counter: c.counter,
            };
        }
    }
    Verdict::Taken { findings, doubt }
}

/// The aggregator's opening heads (what it serves when asked) against what it signed before
/// and acknowledged: a head below either is a `rollback`. Authors it no longer lists are not
/// judged (an admission can end).
pub fn check_heads(
    view: &AggregatorView,
    aggregator: NodeId,
    heads: &BTreeMap<NodeId, u64>,
    me: NodeId,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (author, high) in &view.high {
        if let Some(seq) = heads.get(author)
            && *seq < high.seq
        {
            findings.push(finding(
                FindingKind::Rollback,
                aggregator,
                Some(*author),
                format!(
                    "the aggregator serves the region up to entry {seq}, checkpoint {} held it up to {}",
                    high.counter, high.seq
                ),
            ));
        }
    }
    let own = heads.get(&me).copied().unwrap_or(0);
    if own < view.acked && !findings.iter().any(|f| f.region == Some(me)) {
        findings.push(finding(
            FindingKind::Rollback,
            aggregator,
            Some(me),
            format!(
                "the aggregator serves this region up to entry {own}, it acknowledged {}",
                view.acked
            ),
        ));
    }
    findings
}

/// `stale` when the newest checkpoint (or, with none, the first session) is older than
/// [`STALE_AFTER_MS`].
pub fn staleness(view: &AggregatorView, aggregator: NodeId, now_ms: u64) -> Option<Finding> {
    let (since, what) = match view.latest {
        Some(seen) => (seen.time_ms, format!("checkpoint {}", seen.counter)),
        None if view.since_ms > 0 => (
            view.since_ms,
            "no checkpoint since the first session".into(),
        ),
        None => return None,
    };
    let age = now_ms.saturating_sub(since);
    (age > STALE_AFTER_MS).then(|| {
        finding(
            FindingKind::Stale,
            aggregator,
            None,
            format!(
                "the newest is {what}, {} minutes old (limit {})",
                age / 60_000,
                STALE_AFTER_MS / 60_000
            ),
        )
    })
}

/// A cosignature relayed by the aggregator, against the checkpoint this node holds under the
/// same counter: another hash is a `split-view`.
pub fn check_cosignature(held: &[Hash], cosignature: &CosignatureBody) -> Option<Finding> {
    (!held.is_empty() && !held.contains(&cosignature.checkpoint)).then(|| {
        finding(
            FindingKind::SplitView,
            cosignature.aggregator,
            Some(cosignature.witness),
            format!(
                "the region cosigned another checkpoint {} than this node received",
                cosignature.counter
            ),
        )
    })
}

/// This node's checkpoints of one aggregator against another region's (`audit --peer`): both
/// cannot be true when one counter has two bodies, or when, in counter order, an author's
/// head goes back or changes its entry from one region's checkpoint to the other's.
pub fn compare(
    mine: &[VerifiedCheckpoint],
    theirs: &[VerifiedCheckpoint],
    peer_name: &str,
) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    let mut push = |f: Finding| {
        if !findings
            .iter()
            .any(|g| g.kind == f.kind && g.region == f.region && g.aggregator == f.aggregator)
        {
            findings.push(f);
        }
    };
    for m in mine {
        for t in theirs {
            let (a, b) = (&m.checkpoint, &t.checkpoint);
            if a.aggregator != b.aggregator {
                continue;
            }
            if a.counter == b.counter {
                if m.hash != t.hash {
                    push(finding(
                        FindingKind::SplitView,
                        a.aggregator,
                        None,
                        format!(
                            "checkpoint {} differs between this node and {peer_name}",
                            a.counter
                        ),
                    ));
                }
                continue;
            }
            let (older, newer, newer_at) = if a.counter < b.counter {
                (a, b, peer_name)
            } else {
                (b, a, "this node")
            };
            for h in &newer.heads {
                let Some(o) = older.head(&h.author) else {
                    continue;
                };
                if h.seq < o.seq || (h.seq == o.seq && h.hash != o.hash) {
                    push(finding(
                        FindingKind::SplitView,
                        a.aggregator,
                        Some(h.author),
                        format!(
                            "checkpoint {} held by {newer_at} has the region at entry {}, after checkpoint {} had {}",
                            newer.counter, h.seq, older.counter, o.seq
                        ),
                    ));
                }
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, CheckpointHead, SignedCheckpoint, SignedCosignature};
    use crate::keys::SecretKey;

    const NOW: u64 = 1_800_000_000_000;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes(&[n; 32])
    }

    fn hash(author: u8, seq: u64) -> Hash {
        Hash::of(&[author, seq as u8])
    }

    fn cp(counter: u64, heads: &[(u8, u64)]) -> VerifiedCheckpoint {
        let agg = key(100);
        let mut heads: Vec<CheckpointHead> = heads
            .iter()
            .map(|(a, s)| CheckpointHead {
                author: key(*a).node_id(),
                seq: *s,
                hash: hash(*a, *s),
            })
            .collect();
        heads.sort_by_key(|h| h.author);
        SignedCheckpoint::sign(
            &agg,
            &Checkpoint {
                aggregator: agg.node_id(),
                counter: T0 + counter,
                time_ms: T0 + counter,
                heads,
            },
        )
    }

    /// Counters and times of the test checkpoints start here (an honest counter is its time).
    const T0: u64 = NOW - 100_000;

    /// This node (key 1) holds authors 1, 2, 3 as far as `heads` says, with the same entries.
    fn ctx(heads: &[(u8, u64)], acked: u64, checkpoint: &VerifiedCheckpoint) -> Context {
        let held = checkpoint
            .checkpoint
            .heads
            .iter()
            .map(|h| {
                let (n, head) = heads
                    .iter()
                    .find(|(n, _)| key(*n).node_id() == h.author)
                    .copied()
                    .unwrap_or((0, 0));
                let at_seq = (h.seq <= head).then(|| hash(n, h.seq));
                (
                    h.author,
                    Held {
                        head,
                        at_seq,
                        takes: true,
                    },
                )
            })
            .collect();
        Context {
            me: key(1).node_id(),
            now_ms: NOW,
            acked,
            same_counter: vec![],
            held,
            listed: Default::default(),
        }
    }

    fn kinds(v: &Verdict) -> Vec<(FindingKind, Option<NodeId>)> {
        match v {
            Verdict::Taken { findings, doubt } => {
                assert!(!doubt, "in doubt");
                findings.iter().map(|f| (f.kind, f.region)).collect()
            }
            Verdict::Refused(r) => panic!("refused: {r}"),
            Verdict::Again => panic!("taken before"),
        }
    }

    #[test]
    fn a_healthy_sequence_is_taken_and_a_replay_or_an_old_counter_refused() {
        let mut view = AggregatorView::default();
        let mine = [(1, 3), (2, 5)];
        let first = cp(1, &[(1, 3), (2, 5)]);
        assert_eq!(
            kinds(&witness(&mut view, &first, &ctx(&mine, 3, &first))),
            vec![]
        );
        let second = cp(2, &[(1, 3), (2, 5), (3, 1)]);
        let mut c = ctx(&[(1, 3), (2, 5), (3, 1)], 3, &second);
        assert_eq!(kinds(&witness(&mut view, &second, &c)), vec![]);
        assert_eq!(view.latest.unwrap().counter, T0 + 2);
        c.same_counter = vec![second.hash];
        assert_eq!(witness(&mut view, &second, &c), Verdict::Again);
        let mut c = ctx(&mine, 3, &first);
        c.same_counter = vec![first.hash];
        assert_eq!(
            witness(&mut view, &first, &c),
            Verdict::Refused("checkpoint_replayed")
        );
        let c = ctx(&mine, 3, &first);
        assert_eq!(
            witness(&mut view, &first, &c),
            Verdict::Refused("checkpoint_counter_not_growing")
        );
    }

    #[test]
    fn a_head_that_goes_back_is_a_rollback_and_an_own_head_below_the_ack_too() {
        let mut view = AggregatorView::default();
        let first = cp(1, &[(1, 4), (2, 5)]);
        witness(&mut view, &first, &ctx(&[(1, 4), (2, 5)], 4, &first));
        let back = cp(2, &[(1, 2), (2, 3)]);
        let found = kinds(&witness(
            &mut view,
            &back,
            &ctx(&[(1, 4), (2, 5)], 4, &back),
        ));
        assert!(found.contains(&(FindingKind::Rollback, Some(key(2).node_id()))));
        assert!(found.contains(&(FindingKind::Rollback, Some(key(1).node_id()))));
        // The high-water mark stays: the next checkpoint is judged against it, and heals
        // once it reaches it again.
        assert_eq!(view.high[&key(2).node_id()].seq, 5);
        let healed = cp(3, &[(1, 4), (2, 5)]);
        assert_eq!(
            kinds(&witness(
                &mut view,
                &healed,
                &ctx(&[(1, 4), (2, 5)], 4, &healed)
            )),
            vec![]
        );
        // The opening heads of a restored aggregator show it before any checkpoint does.
        let heads: BTreeMap<NodeId, u64> = [(key(1).node_id(), 1), (key(2).node_id(), 2)]
            .into_iter()
            .collect();
        let found = check_heads(&view, key(100).node_id(), &heads, key(1).node_id());
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|f| f.kind == FindingKind::Rollback));
    }

    #[test]
    fn entries_named_but_not_sent_are_withheld_and_other_entries_a_split_view() {
        let mut view = AggregatorView::default();
        let c1 = cp(1, &[(1, 2), (2, 6)]);
        // This node holds author 2 only up to 4: the aggregator proved 6 and did not send it.
        let found = kinds(&witness(&mut view, &c1, &ctx(&[(1, 2), (2, 4)], 2, &c1)));
        assert_eq!(found, vec![(FindingKind::Withheld, Some(key(2).node_id()))]);
        // An author this node does not take (not admitted, frozen) is not withheld.
        let c2 = cp(2, &[(1, 2), (2, 6)]);
        let mut c = ctx(&[(1, 2), (2, 4)], 2, &c2);
        c.held.get_mut(&key(2).node_id()).unwrap().takes = false;
        assert_eq!(kinds(&witness(&mut view, &c2, &c)), vec![]);
        // Another entry at a seq this node holds: its author forked (the fork proof shows
        // it); not the aggregator's doing, so no finding, but not cosigned either.
        let c3 = cp(3, &[(1, 2), (2, 6)]);
        let mut c = ctx(&[(1, 2), (2, 6)], 2, &c3);
        c.held.get_mut(&key(2).node_id()).unwrap().at_seq = Some(Hash([9; 32]));
        assert_eq!(
            witness(&mut view, &c3, &c),
            Verdict::Taken {
                findings: vec![],
                doubt: true
            }
        );
        // One counter, two bodies.
        let other = cp(3, &[(1, 2)]);
        let mut c = ctx(&[(1, 2)], 2, &other);
        c.same_counter = vec![c3.hash];
        assert_eq!(
            kinds(&witness(&mut view, &other, &c)),
            vec![(FindingKind::SplitView, None)]
        );
    }

    /// The review's holes: a counter far from its time, a listed region left out, and a
    /// checkpoint of made-up authors.
    #[test]
    fn a_counter_far_from_its_time_a_region_left_out_and_made_up_authors() {
        let agg = key(100);
        let sign = |counter: u64, heads: Vec<CheckpointHead>| {
            SignedCheckpoint::sign(
                &agg,
                &Checkpoint {
                    aggregator: agg.node_id(),
                    counter,
                    time_ms: T0,
                    heads,
                },
            )
        };
        let mut view = AggregatorView::default();
        for counter in [T0 - 1, T0 + FUTURE_SKEW_MS_MAX + 1] {
            let far = sign(counter, vec![]);
            assert_eq!(
                witness(&mut view, &far, &ctx(&[], 0, &far)),
                Verdict::Refused("checkpoint_counter_not_its_time")
            );
        }
        let first = cp(1, &[(1, 2), (2, 5)]);
        witness(&mut view, &first, &ctx(&[(1, 2), (2, 5)], 2, &first));
        // Region 2, still on the aggregator's list, is gone from its next checkpoint.
        let without = cp(2, &[(1, 2)]);
        let mut c = ctx(&[(1, 2), (2, 5)], 2, &without);
        c.listed = [key(2).node_id()].into_iter().collect();
        assert_eq!(
            kinds(&witness(&mut view, &without, &c)),
            vec![(FindingKind::Rollback, Some(key(2).node_id()))]
        );
        // No longer listed (its admission ended): not a finding.
        let again = cp(3, &[(1, 2)]);
        assert_eq!(
            kinds(&witness(&mut view, &again, &ctx(&[(1, 2)], 2, &again))),
            vec![]
        );
        // Authors this node does not know do not grow what it remembers.
        let made_up: Vec<CheckpointHead> = (0..50u8)
            .map(|i| CheckpointHead {
                author: key(150 + i).node_id(),
                seq: 1,
                hash: Hash([i; 32]),
            })
            .collect();
        let mut heads = made_up.clone();
        heads.push(CheckpointHead {
            author: key(1).node_id(),
            seq: 2,
            hash: hash(1, 2),
        });
        heads.sort_by_key(|h| h.author);
        let fake = sign(T0 + 4, heads);
        let mut c = ctx(&[(1, 2)], 2, &fake);
        for (a, h) in c.held.iter_mut() {
            h.takes = *a == key(1).node_id();
        }
        let before = view.high.len();
        assert_eq!(kinds(&witness(&mut view, &fake, &c)), vec![]);
        assert_eq!(view.high.len(), before);
    }

    #[test]
    fn times_out_of_bounds_are_refused_and_silence_is_stale() {
        let mut view = AggregatorView::default();
        let mut future = cp(1, &[(1, 1)]);
        let c = Context {
            now_ms: T0 - FUTURE_SKEW_MS_MAX - 10_000,
            ..ctx(&[(1, 1)], 0, &future)
        };
        assert_eq!(
            witness(&mut view, &future, &c),
            Verdict::Refused("checkpoint_from_the_future")
        );
        let c = Context {
            now_ms: NOW + STALE_AFTER_MS + 1,
            ..ctx(&[(1, 1)], 0, &future)
        };
        assert_eq!(
            witness(&mut view, &future, &c),
            Verdict::Refused("checkpoint_too_old")
        );
        future = cp(1, &[(1, 1)]);
        witness(&mut view, &future, &ctx(&[(1, 1)], 0, &future));
        let agg = key(100).node_id();
        assert_eq!(staleness(&view, agg, NOW), None);
        let stale = staleness(&view, agg, NOW + STALE_AFTER_MS + 1).unwrap();
        assert_eq!(stale.kind, FindingKind::Stale);
        let never = AggregatorView {
            since_ms: NOW,
            ..AggregatorView::default()
        };
        assert!(staleness(&never, agg, NOW + STALE_AFTER_MS + 1).is_some());
        assert_eq!(staleness(&AggregatorView::default(), agg, NOW), None);
    }

    #[test]
    fn two_regions_views_that_cannot_both_be_true_are_a_split_view() {
        let a = cp(5, &[(1, 2), (2, 6)]);
        let b = cp(5, &[(1, 2), (2, 7)]);
        let found = compare(std::slice::from_ref(&a), &[b], "region-b");
        assert_eq!(found[0].kind, FindingKind::SplitView);
        // Interleaved counters: the peer's later checkpoint has author 2 lower.
        let later = cp(6, &[(1, 2), (2, 4)]);
        let found = compare(std::slice::from_ref(&a), &[later], "region-b");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].region, Some(key(2).node_id()));
        // Consistent views find nothing.
        assert!(
            compare(
                std::slice::from_ref(&a),
                &[cp(7, &[(1, 3), (2, 6)]), a.clone()],
                "b"
            )
            .is_empty()
        );
        // A relayed cosignature of another checkpoint under a held counter.
        let cosig = SignedCosignature::sign(&key(3), &cp(5, &[(1, 9)]), NOW)
            .verify()
            .unwrap();
        assert_eq!(
            check_cosignature(&[a.hash], &cosig).unwrap().kind,
            FindingKind::SplitView
        );
        let same = SignedCosignature::sign(&key(3), &a, NOW).verify().unwrap();
        assert_eq!(check_cosignature(&[a.hash], &same), None);
        assert_eq!(check_cosignature(&[], &cosig), None);
    }
}
