//! Checkpoints in the simulation: aggregators sign them (honestly, or as one of the
//! [`AggregatorBehaviour`]s), regions witness them as a node does ([`witness::witness`],
//! [`witness::check_heads`], [`witness::check_cosignature`]) and cosign the clean ones, and
//! the aggregators keep and relay the cosignatures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::Rng;
use rand::rngs::StdRng;

use super::{Link, SimNode, SimRun, connect, deliver, drive};
use crate::checkpoint::{
    Checkpoint, CheckpointHead, CosignatureBody, SignedCheckpoint, SignedCosignature,
    VerifiedCheckpoint,
};
use crate::entry::{Entry, Hash};
use crate::keys::NodeId;
use crate::sync::PeerRole;
use crate::witness::{
    self, AggregatorView, CHECKPOINT_INTERVAL_MS, CHECKPOINT_REFRESH_MS, Context, Finding, Held,
    Verdict,
};

/// What a simulated aggregator does with its checkpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum AggregatorBehaviour {
    #[default]
    Honest,
    /// Never relays this region's entries to the other regions (leaves it out of the heads
    /// it serves them, and its store "lacks" them when loading), yet checkpoints it.
    Withhold(NodeId),
    /// At this step of the run its disk is restored from an old copy: some regions' logs
    /// lose their last entries, the checkpoint counter goes on growing, and it restarts.
    Rollback { step: usize },
    /// Signs two checkpoints under every counter (one leaves a region's latest entry out)
    /// and sends one to half its regions (`half_b`), the other to the rest; relays a
    /// cosignature only within its half.
    SplitView,
}

/// An aggregator's checkpoints and the cosignatures it keeps.
#[derive(Default)]
pub(super) struct Signer {
    pub(super) behaviour: AggregatorBehaviour,
    counter: u64,
    pub(super) latest: Option<Arc<VerifiedCheckpoint>>,
    /// [`AggregatorBehaviour::SplitView`]: the other body under the latest counter, the
    /// regions it goes to, and the region whose latest entry it leaves out.
    other: Option<Arc<VerifiedCheckpoint>>,
    pub(super) half_b: BTreeSet<NodeId>,
    victim: Option<NodeId>,
    /// Hashes of every checkpoint signed.
    signed: BTreeSet<Hash>,
    /// Cosignatures that verified, by the region that sent them, in arrival order.
    pub(super) cosignatures: Vec<(SignedCosignature, CosignatureBody)>,
    /// Cosignatures refused.
    pub(super) refused: u64,
}

/// What a region witnessed of one aggregator.
#[derive(Default)]
pub(super) struct Witnessed {
    pub(super) view: AggregatorView,
    /// Every checkpoint taken, in arrival order.
    pub(super) kept: Vec<VerifiedCheckpoint>,
    /// The checkpoints this region cosigned, by counter.
    pub(super) cosigned: BTreeMap<u64, Hash>,
    /// Checkpoints refused, by reason.
    pub(super) refused: BTreeMap<&'static str, u64>,
    /// Relayed cosignatures that verified.
    pub(super) relayed: u64,
}

/// A region's witness state.
#[derive(Default)]
pub(super) struct Witness {
    pub(super) of: BTreeMap<NodeId, Witnessed>,
    pub(super) findings: Vec<Finding>,
    /// Authors of which this region refused an entry (a replay aside) in the run: it may lack
    /// their entries through its own doing, so it does not take them as withheld.
    pub(super) refused_authors: BTreeSet<NodeId>,
}

impl SimNode {
    /// The heads an aggregator signs: every author it holds, with seq and hash.
    fn checkpoint_heads(&self) -> Vec<CheckpointHead> {
        self.logs
            .iter()
            .filter_map(|(a, l)| {
                l.head().map(|h| CheckpointHead {
                    author: *a,
                    seq: h.seq,
                    hash: h.hash,
                })
            })
            .collect()
    }

    /// Aggregator: signs a checkpoint when its heads changed since the last one and that is
    /// [`CHECKPOINT_INTERVAL_MS`] old, or the last is [`CHECKPOINT_REFRESH_MS`] old. True when
    /// it signed.
    pub(super) fn sign_if_due(&mut self) -> bool {
        if self.role != PeerRole::Aggregator {
            return false;
        }
        let heads = self.checkpoint_heads();
        let due = match &self.signer.latest {
            None => !heads.is_empty(),
            Some(l) => {
                let age = self.now_ms.saturating_sub(l.checkpoint.time_ms);
                (l.checkpoint.heads != heads && age >= CHECKPOINT_INTERVAL_MS)
                    || age >= CHECKPOINT_REFRESH_MS
            }
        };
        if !due {
            return false;
        }
        // As a node's: above the last one, and at least the time.
        self.signer.counter = (self.signer.counter + 1).max(self.now_ms);
        let checkpoint = Checkpoint {
            aggregator: self.id(),
            counter: self.signer.counter,
            time_ms: self.now_ms,
            heads,
        };
        let signed = SignedCheckpoint::sign(&self.key, &checkpoint);
        self.signer.signed.insert(signed.hash);
        self.signer.other = None;
        if self.signer.behaviour == AggregatorBehaviour::SplitView {
            self.signer.other = self.split(checkpoint).map(Arc::new);
        }
        self.signer.latest = Some(Arc::new(signed));
        true
    }

    /// [`AggregatorBehaviour::SplitView`]: the same counter with the victim's latest entry
    /// left out (the victim, once chosen, is a region of the first half that has entries).
    fn split(&mut self, mut checkpoint: Checkpoint) -> Option<VerifiedCheckpoint> {
        let half_b = &self.signer.half_b;
        if self.signer.victim.is_none() {
            self.signer.victim = checkpoint
                .heads
                .iter()
                .find(|h| !half_b.contains(&h.author))
                .map(|h| h.author);
        }
        let victim = self.signer.victim?;
        let i = checkpoint.heads.iter().position(|h| h.author == victim)?;
        let seq = checkpoint.heads[i].seq;
        if seq == 1 {
            checkpoint.heads.remove(i);
        } else {
            checkpoint.heads[i].seq = seq - 1;
            checkpoint.heads[i].hash = self.logs[&victim].hashes[seq as usize - 2];
        }
        let signed = SignedCheckpoint::sign(&self.key, &checkpoint);
        self.signer.signed.insert(signed.hash);
        Some(signed)
    }

    /// Aggregator: the newest checkpoint for `region` (its half's, under split view).
    pub(super) fn checkpoint_for(&self, region: &NodeId) -> Option<Arc<VerifiedCheckpoint>> {
        match &self.signer.other {
            Some(other) if self.signer.half_b.contains(region) => Some(other.clone()),
            _ => self.signer.latest.clone(),
        }
    }

    /// Aggregator: whether it keeps `author`'s entries from `region`.
    pub(super) fn withholds(&self, author: &NodeId, region: &NodeId) -> bool {
        matches!(self.signer.behaviour, AggregatorBehaviour::Withhold(w) if w == *author && w != *region)
    }

    /// Aggregator: the cosignatures of `region` (the session's peer): kept when they verify
    /// and name a checkpoint this aggregator signed.
    pub(super) fn keep_cosignatures(
        &mut self,
        region: NodeId,
        cosignatures: Vec<SignedCosignature>,
    ) {
        let me = self.id();
        for c in cosignatures {
            match c.verify() {
                Ok(body)
                    if body.witness == region
                        && body.aggregator == me
                        && self.signer.signed.contains(&body.checkpoint) =>
                {
                    self.signer.cosignatures.push((c, body));
                }
                _ => self.signer.refused += 1,
            }
        }
    }

    /// Region: what it holds of the author a checkpoint head names.
    fn held(&self, h: &CheckpointHead) -> Held {
        let me = self.id();
        let log = self.logs.get(&h.author);
        let head = log.map_or(0, |l| l.hashes.len() as u64);
        let mut at_seq = log.and_then(|l| l.hashes.get(h.seq as usize - 1).copied());
        // A fork proof of the author holds a second signed entry at its seq: an aggregator
        // that names either one is not to blame for the fork.
        if let Some((a, b)) = self.proofs.get(&h.author) {
            let named = [a, b].into_iter().any(|w| {
                Entry::from_wire(w.clone())
                    .is_ok_and(|e| e.header().seq == h.seq && e.hash() == h.hash)
            });
            if named {
                at_seq = Some(h.hash);
            }
        }
        let takes = (h.author == me || self.admitted.contains(&h.author))
            && !self.frozen.contains(&h.author)
            && !self.witness.refused_authors.contains(&h.author);
        Held {
            head,
            at_seq,
            takes,
        }
    }

    /// Region: a checkpoint from the pinned aggregator `agg`, whose running session
    /// acknowledged `acked` of this region's log. Verified, witnessed, kept when taken; the
    /// cosignature to send when nothing was found.
    pub(super) fn witness_checkpoint(
        &mut self,
        agg: NodeId,
        signed: SignedCheckpoint,
        acked: u64,
    ) -> Option<SignedCosignature> {
        let me = self.id();
        let w = self.witness.of.entry(agg).or_default();
        let cp = match signed.verify(Some(&agg)) {
            Ok(cp) => cp,
            Err(e) => {
                *w.refused.entry(e.reason()).or_default() += 1;
                return None;
            }
        };
        let same_counter = w
            .kept
            .iter()
            .filter(|k| k.checkpoint.counter == cp.checkpoint.counter)
            .map(|k| k.hash)
            .collect();
        let held = cp
            .checkpoint
            .heads
            .iter()
            .map(|h| (h.author, self.held(h)))
            .collect();
        let ctx = Context {
            me,
            now_ms: self.now_ms,
            acked,
            same_counter,
            held,
            // As the node's vouches: what the aggregators' lists gave this region.
            listed: self.admitted.clone(),
        };
        let w = self.witness.of.get_mut(&agg).expect("made above");
        match witness::witness(&mut w.view, &cp, &ctx) {
            Verdict::Again => None,
            Verdict::Refused(reason) => {
                *w.refused.entry(reason).or_default() += 1;
                None
            }
            Verdict::Taken { findings, doubt } => {
                let clean = findings.is_empty() && !doubt;
                self.witness.findings.extend(findings);
                let cosignature = clean.then(|| {
                    w.cosigned.insert(cp.checkpoint.counter, cp.hash);
                    SignedCosignature::sign(&self.key, &cp, self.now_ms)
                });
                w.kept.push(cp);
                cosignature
            }
        }
    }

    /// Region: cosignatures the pinned aggregator `agg` relays, against the checkpoints
    /// this region keeps under the same counter.
    pub(super) fn check_relayed(&mut self, agg: NodeId, cosignatures: Vec<SignedCosignature>) {
        let w = self.witness.of.entry(agg).or_default();
        for c in cosignatures {
            let Ok(body) = c.verify() else {
                *w.refused.entry("cosignature_bad").or_default() += 1;
                continue;
            };
            if body.aggregator != agg {
                *w.refused.entry("cosignature_wrong_aggregator").or_default() += 1;
                continue;
            }
            w.relayed += 1;
            let held: Vec<Hash> = w
                .kept
                .iter()
                .filter(|k| k.checkpoint.counter == body.counter)
                .map(|k| k.hash)
                .collect();
            self.witness
                .findings
                .extend(witness::check_cosignature(&held, &body));
        }
    }
}

/// Region side of a link, each time it is driven: once the aggregator's opening heads are in,
/// they are checked against what the region remembers ([`witness::check_heads`]); from then
/// on what the session was acknowledged is remembered (as a node keeps `acked`).
pub(super) fn watch_link(nodes: &mut [SimNode], link: &mut Link) {
    if !link.r.heads_received() {
        return;
    }
    let agg = nodes[link.agg].id();
    let region = &mut nodes[link.region];
    let me = region.id();
    let w = region.witness.of.entry(agg).or_default();
    if !link.heads_checked {
        link.heads_checked = true;
        let found = witness::check_heads(&w.view, agg, link.r.peer_heads(), me);
        region.witness.findings.extend(found);
    }
    let acked = link.r.peer_heads().get(&me).copied().unwrap_or(0);
    w.view.acked = w.view.acked.max(acked);
}

/// Aggregator side of a link: offers its newest checkpoint if the session has not had it,
/// and relays the cosignatures of it kept since (not the region's own; under split view
/// only those of the region's half): one of an older checkpoint is superseded.
pub(super) fn offer_and_relay(nodes: &[SimNode], link: &mut Link) {
    let (agg, region) = (&nodes[link.agg], nodes[link.region].id());
    if let Some(cp) = agg.checkpoint_for(&region)
        && cp.checkpoint.counter > link.offered
    {
        link.offered = cp.checkpoint.counter;
        link.a.offer_checkpoint(cp);
    }
    let split = agg.signer.behaviour == AggregatorBehaviour::SplitView;
    let half = |r: &NodeId| agg.signer.half_b.contains(r);
    if !link.a.heads_received() {
        return;
    }
    let relay: Vec<SignedCosignature> = agg.signer.cosignatures[link.relayed..]
        .iter()
        .filter(|(_, b)| {
            b.counter == agg.signer.counter
                && b.witness != region
                && (!split || half(&b.witness) == half(&region))
        })
        .map(|(c, _)| c.clone())
        .collect();
    link.relayed = agg.signer.cosignatures.len();
    if !relay.is_empty() {
        link.a.send_cosignatures(relay);
    }
}

/// What an [`AggregatorBehaviour::Rollback`] took, and who must find it.
pub(super) struct RolledBack {
    pub(super) aggregator: NodeId,
    /// The new head of each region whose log lost entries.
    pub(super) heads: BTreeMap<NodeId, u64>,
    /// (region, author): the region had a checkpoint naming more of the author, or (its own
    /// log) an acknowledgement of more, so it must find a rollback of the author.
    pub(super) expected: BTreeSet<(NodeId, NodeId)>,
}

impl SimNode {
    /// Keeps the first `keep` entries of `author`'s log, as a disk restored from an old copy.
    fn truncate(&mut self, author: NodeId, keep: u64) {
        let log = self.logs.remove(&author).unwrap_or_default();
        for sync in log.entries.into_iter().take(keep as usize) {
            let entry = Entry::from_wire(sync.entry.clone()).expect("stored entries decode");
            self.ingest(&entry, sync, Some(author))
                .expect("a prefix of a log is accepted again");
        }
    }
}

/// The first aggregator's disk is restored from an old copy: each region with two entries
/// or more loses its last half with chance one half (at least one region
/// does); the aggregator signs its new heads under a still growing counter and restarts, and
/// every region redials at once and reads its opening heads.
pub(super) fn roll_back(
    nodes: &mut [SimNode],
    links: &mut [Option<Link>],
    aggregators: usize,
    rng: &mut StdRng,
) -> RolledBack {
    let aggregator = nodes[0].id();
    let candidates: Vec<(NodeId, u64)> = nodes[0]
        .heads()
        .into_iter()
        .filter(|(_, seq)| *seq >= 2)
        .collect();
    let mut heads = BTreeMap::new();
    for (i, (author, seq)) in candidates.iter().enumerate() {
        let last = i + 1 == candidates.len();
        if rng.gen_bool(0.5) || (last && heads.is_empty()) {
            heads.insert(*author, seq / 2);
        }
    }
    let mut expected = BTreeSet::new();
    for n in nodes.iter().filter(|n| n.role == PeerRole::Region) {
        let Some(w) = n.witness.of.get(&aggregator) else {
            continue;
        };
        for (author, new) in &heads {
            let high = w.view.high.get(author).map_or(0, |h| h.seq);
            let acked = if *author == n.id() { w.view.acked } else { 0 };
            if high.max(acked) > *new {
                expected.insert((n.id(), *author));
            }
        }
    }
    for (author, keep) in &heads {
        nodes[0].truncate(*author, *keep);
    }
    nodes[0].sign_if_due();
    for (i, link) in links.iter_mut().enumerate() {
        if i % aggregators != 0 {
            continue;
        }
        let l = link.insert(connect(nodes, aggregators + i / aggregators, 0));
        drive(nodes, l);
        while !l.r.heads_received() && deliver(l, false, rng, 0.0) {
            drive(nodes, l);
        }
        assert!(l.heads_checked, "the region never read the opening heads");
    }
    RolledBack {
        aggregator,
        heads,
        expected,
    }
}

/// Checkpoints of one aggregator a region compares with a peer's (`audit --peer`): its last.
const COMPARED: usize = 16;

impl SimRun {
    /// The last checkpoints region `a` kept of `agg` against region `b`'s.
    fn compared(&self, agg: &NodeId, a: usize, b: usize) -> Vec<Finding> {
        let last = |i: usize| -> &[VerifiedCheckpoint] {
            self.regions()[i]
                .witness
                .of
                .get(agg)
                .map_or(&[], |w| &w.kept[w.kept.len().saturating_sub(COMPARED)..])
        };
        witness::compare(last(a), last(b), "peer")
    }

    /// An honest run: no region found anything or had a checkpoint or cosignature refused
    /// but a replay (or, with `late_allowed`, a checkpoint too old: under loss and retries a
    /// link's backlog can hold one in transit for more than [`witness::STALE_AFTER_MS`] of
    /// simulated time, each step moving one message on one link); every region cosigned the final checkpoint of each aggregator it is
    /// linked to, which keeps the cosignature, and heard of others' cosignatures; any two
    /// regions' checkpoints compare clean.
    pub(super) fn assert_witnessed(&self, what: &str, late_allowed: bool) {
        for (i, n) in self.regions().iter().enumerate() {
            assert!(
                n.witness.findings.is_empty(),
                "{what}: region {i} found {:#?}",
                n.witness.findings
            );
            for w in n.witness.of.values() {
                assert!(
                    w.refused.keys().all(|r| *r == "checkpoint_replayed"
                        || (late_allowed && *r == "checkpoint_too_old")),
                    "{what}: region {i} refused {:?}",
                    w.refused
                );
            }
        }
        for agg in &self.nodes[..self.aggregators] {
            assert_eq!(agg.signer.refused, 0, "{what}: cosignatures refused");
        }
        for link in self.links.iter().flatten() {
            let (agg, region) = (&self.nodes[link.agg], &self.nodes[link.region]);
            let cp = agg.checkpoint_for(&region.id()).expect("no checkpoint");
            let w = &region.witness.of[&agg.id()];
            assert_eq!(
                w.cosigned.get(&cp.checkpoint.counter),
                Some(&cp.hash),
                "{what}: region {} did not cosign checkpoint {} of aggregator {}",
                link.region,
                cp.checkpoint.counter,
                link.agg
            );
            assert!(
                agg.signer
                    .cosignatures
                    .iter()
                    .any(|(_, b)| b.witness == region.id() && b.checkpoint == cp.hash),
                "{what}: aggregator {} lacks the final cosignature of region {}",
                link.agg,
                link.region
            );
            assert!(w.relayed > 0, "{what}: no cosignature was relayed");
        }
        let n = self.regions().len();
        for agg in self.nodes[..self.aggregators].iter().map(SimNode::id) {
            for a in 0..n {
                for b in a + 1..n {
                    let found = self.compared(&agg, a, b);
                    assert!(found.is_empty(), "{what}: regions {a}, {b}: {found:#?}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Faults, connect, for_seeds, key, settle, simulate, small_world};
    use super::*;
    use crate::witness::FindingKind;

    /// Every finding of every region, as (region index, kind, aggregator, region named).
    fn findings(run: &SimRun) -> Vec<(usize, FindingKind, NodeId, Option<NodeId>)> {
        run.regions()
            .iter()
            .enumerate()
            .flat_map(|(i, n)| {
                n.witness
                    .findings
                    .iter()
                    .map(move |f| (i, f.kind, f.aggregator, f.region))
            })
            .collect()
    }

    /// An aggregator that never relays one region's entries yet checkpoints them: every
    /// other region finds them `withheld`, naming the aggregator and that region, and
    /// nothing else; the region itself finds nothing.
    #[test]
    fn a_withholding_aggregator_is_found_by_every_other_region() {
        for_seeds(12, "withholding aggregator", |seed| {
            let withheld = key(2).node_id();
            let faults = Faults {
                aggregator0: AggregatorBehaviour::Withhold(withheld),
                ..Faults::default()
            };
            let run = simulate(seed, 5, 1, faults);
            let what = format!("seed {seed}");
            let agg = run.nodes[0].id();
            assert!(
                run.nodes[0].head_seq(&withheld) > 0,
                "{what}: nothing to withhold"
            );
            let found = findings(&run);
            for (i, kind, aggregator, region) in &found {
                assert_eq!(
                    (*kind, *aggregator, *region),
                    (FindingKind::Withheld, agg, Some(withheld)),
                    "{what}: region {i}"
                );
            }
            for (i, n) in run.regions().iter().enumerate() {
                let named = found.iter().any(|f| f.0 == i);
                if n.id() == withheld {
                    assert!(!named, "{what}: the withheld region found something");
                } else {
                    assert!(named, "{what}: region {i} did not find the withholding");
                    assert_eq!(n.head_seq(&withheld), 0, "{what}: region {i} got entries");
                }
            }
        });
    }

    /// An aggregator restored from an old disk: every region that had a checkpoint naming
    /// more of a region's log, or (its own) an acknowledgement of more, finds a `rollback`
    /// naming the aggregator and that region; nothing names the honest aggregator or a
    /// region that lost nothing.
    #[test]
    fn a_rolled_back_aggregator_is_found_by_the_regions_that_saw_more() {
        for_seeds(12, "rolled-back aggregator", |seed| {
            let faults = Faults {
                aggregator0: AggregatorBehaviour::Rollback { step: 1500 },
                ..Faults::default()
            };
            let run = simulate(seed, 5, 2, faults);
            let what = format!("seed {seed}");
            let rb = run.rollback.as_ref().expect("rolled back");
            assert_eq!(rb.aggregator, run.nodes[0].id());
            assert!(
                rb.expected.iter().any(|(r, a)| r == a),
                "{what}: no region had its own log acknowledged beyond the rollback"
            );
            let found = findings(&run);
            for (i, kind, aggregator, region) in &found {
                assert_eq!((*kind, *aggregator), (FindingKind::Rollback, rb.aggregator));
                assert!(
                    region.is_some_and(|r| rb.heads.contains_key(&r)),
                    "{what}: region {i} names a region that lost nothing"
                );
            }
            for (region, author) in &rb.expected {
                let i = run
                    .regions()
                    .iter()
                    .position(|n| n.id() == *region)
                    .unwrap();
                assert!(
                    found.contains(&(i, FindingKind::Rollback, rb.aggregator, Some(*author))),
                    "{what}: region {i} did not find the rollback of {author}"
                );
            }
        });
    }

    /// An aggregator that shows two halves of its regions two different checkpoints under
    /// each counter: no region can tell alone, but comparing any region of one half with any
    /// of the other (`audit --peer`) finds a `split-view` of that aggregator; within a half,
    /// and for the honest aggregator, the checkpoints compare clean.
    #[test]
    fn a_split_view_is_found_by_comparing_the_halves() {
        for_seeds(12, "split-view aggregator", |seed| {
            let faults = Faults {
                aggregator0: AggregatorBehaviour::SplitView,
                ..Faults::default()
            };
            let run = simulate(seed, 5, 2, faults);
            let what = format!("seed {seed}");
            assert_eq!(findings(&run), vec![], "{what}");
            let (split, honest) = (run.nodes[0].id(), run.nodes[1].id());
            let half_b = &run.nodes[0].signer.half_b;
            let regions = run.regions();
            for a in 0..regions.len() {
                for b in 0..regions.len() {
                    if a == b {
                        continue;
                    }
                    assert_eq!(run.compared(&honest, a, b), vec![], "{what}");
                    let found = run.compared(&split, a, b);
                    let across =
                        half_b.contains(&regions[a].id()) != half_b.contains(&regions[b].id());
                    if across {
                        assert!(
                            found
                                .iter()
                                .any(|f| f.kind == FindingKind::SplitView && f.aggregator == split),
                            "{what}: regions {a} and {b} found no split view"
                        );
                        assert!(found.iter().all(|f| f.aggregator == split), "{what}");
                    } else {
                        assert_eq!(found, vec![], "{what}: regions {a} and {b}");
                    }
                }
            }
        });
    }

    /// A split-view aggregator that lets a cosignature cross the halves is caught at once:
    /// the region holds another checkpoint under that counter ([`witness::check_cosignature`]).
    #[test]
    fn a_relayed_cosignature_of_the_other_half_is_a_split_view() {
        let mut nodes = small_world(2);
        let (r1, r2) = (nodes[1].id(), nodes[2].id());
        nodes[0].signer.behaviour = AggregatorBehaviour::SplitView;
        nodes[0].signer.half_b = BTreeSet::from([r2]);
        nodes[1].publish(1);
        nodes[1].publish(2);
        let mut first = connect(&nodes, 1, 0);
        settle(&mut nodes, &mut first, |_| {});
        let mut second = connect(&nodes, 2, 0);
        settle(&mut nodes, &mut second, |_| {});
        let agg = nodes[0].id();
        let counter = nodes[0].signer.counter;
        for (n, r) in [(1, r1), (2, r2)] {
            let w = &nodes[n].witness.of[&agg];
            assert!(
                w.cosigned.contains_key(&counter),
                "region {n} did not cosign"
            );
            assert!(
                nodes[0]
                    .signer
                    .cosignatures
                    .iter()
                    .any(|(_, b)| b.witness == r)
            );
        }
        assert!(nodes.iter().all(|n| n.witness.findings.is_empty()));
        // Region 2's cosignature, of the other body, reaches region 1.
        let theirs: Vec<SignedCosignature> = nodes[0]
            .signer
            .cosignatures
            .iter()
            .filter(|(_, b)| b.witness == r2 && b.counter == counter)
            .map(|(c, _)| c.clone())
            .collect();
        first.a.send_cosignatures(theirs);
        settle(&mut nodes, &mut first, |_| {});
        let found: Vec<_> = nodes[1]
            .witness
            .findings
            .iter()
            .map(|f| (f.kind, f.aggregator, f.region))
            .collect();
        assert_eq!(found, vec![(FindingKind::SplitView, agg, Some(r2))]);
    }
}
