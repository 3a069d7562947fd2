//! The membership rules one by one, then a seeded simulation: nodes that take the same logs in
//! random orders (and refuse what their membership of the moment refuses) end with the same
//! members.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::*;
use crate::keys::SecretKey;
use crate::schema::Problem;

fn id(n: u8) -> NodeId {
    SecretKey::from_bytes(&[n; 32]).node_id()
}

fn charter(founders: &[(u8, &str)], threshold: u32) -> Charter {
    let keys: Vec<(SecretKey, &str)> = founders
        .iter()
        .map(|(n, name)| (SecretKey::from_bytes(&[*n; 32]), *name))
        .collect();
    let refs: Vec<(&SecretKey, &str)> = keys.iter().map(|(k, n)| (k, *n)).collect();
    crate::charter::tests::charter_of(&refs, threshold)
}

fn endorse(by: u8, seq: u64, t: u64, node: u8, name: &str) -> Act {
    Act {
        time_ms: t,
        author: id(by),
        seq,
        what: What::Endorse {
            node: id(node),
            name: name.into(),
            replaces: None,
        },
        withdrawn_ms: None,
    }
}

fn replace(by: u8, seq: u64, t: u64, node: u8, name: &str, old: u8, upto: u64) -> Act {
    Act {
        time_ms: t,
        author: id(by),
        seq,
        what: What::Endorse {
            node: id(node),
            name: name.into(),
            replaces: Some((id(old), upto)),
        },
        withdrawn_ms: None,
    }
}

fn revoke(by: u8, seq: u64, t: u64, node: u8, upto: u64) -> Act {
    Act {
        time_ms: t,
        author: id(by),
        seq,
        what: What::Revoke {
            node: id(node),
            upto,
        },
        withdrawn_ms: None,
    }
}

fn three() -> Charter {
    charter(&[(1, "skane"), (2, "dalarna"), (3, "stockholm")], 2)
}

fn member(name: &str) -> Standing {
    Standing::Member { name: name.into() }
}

#[test]
fn founders_are_members_and_threshold_endorsements_admit() {
    let c = three();
    let m = Membership::compute(&c, []);
    assert_eq!(m.standing(&id(1)), member("skane"));
    assert_eq!(m.standing(&id(9)), Standing::Stranger);
    assert_eq!(m.members().count(), 3);

    let one = Membership::compute(&c, [endorse(1, 5, 10, 4, "gotland")]);
    assert_eq!(one.standing(&id(4)), Standing::Stranger);
    assert_eq!(one.pending.len(), 1);
    assert_eq!(one.pending[0].endorsed_by, [id(1)]);

    let acts = [
        endorse(1, 5, 10, 4, "gotland"),
        endorse(2, 3, 20, 4, "gotland"),
    ];
    let two = Membership::compute(&c, acts.clone());
    assert_eq!(two.standing(&id(4)), member("gotland"));
    assert!(two.pending.is_empty());
    let region = two.region_of(&id(4)).unwrap();
    assert_eq!(region.since_ms, 20);
    let mut want = vec![id(1), id(2)];
    want.sort();
    assert_eq!(region.endorsed_by, want);
    // Any order of the same acts, and a duplicate, give the same members.
    let mut rev = acts.to_vec();
    rev.reverse();
    rev.push(acts[0].clone());
    assert_eq!(Membership::compute(&c, rev), two);
}

/// A withdrawal is replayed at its own time: before the change it takes the vote back; after
/// it, the change stands (one member cannot expel a region it helped admit by deleting its
/// endorsement, nor bring a revoked one back by deleting its revocation).
#[test]
fn a_withdrawal_takes_a_vote_back_only_until_its_change_happens() {
    let c = three();
    let withdrawn = |mut a: Act, at: u64| {
        a.withdrawn_ms = Some(at);
        a
    };
    // Withdrawn at 15, before the second endorsement at 20: no admission.
    let early = Membership::compute(
        &c,
        [
            withdrawn(endorse(1, 5, 10, 4, "gotland"), 15),
            endorse(2, 3, 20, 4, "gotland"),
        ],
    );
    assert_eq!(early.standing(&id(4)), Standing::Stranger);
    assert_eq!(early.pending[0].endorsed_by, [id(2)]);
    // Withdrawn at 25, after the admission at 20: it stands.
    let late = Membership::compute(
        &c,
        [
            withdrawn(endorse(1, 5, 10, 4, "gotland"), 25),
            endorse(2, 3, 20, 4, "gotland"),
        ],
    );
    assert_eq!(late.standing(&id(4)), member("gotland"));
    // A revocation withdrawn after it took effect: the region stays revoked.
    let revoked = Membership::compute(
        &c,
        [
            withdrawn(revoke(1, 6, 30, 3, 7), 50),
            revoke(2, 4, 40, 3, 7),
        ],
    );
    assert!(matches!(revoked.standing(&id(3)), Standing::Former { .. }));
    // ... and withdrawn before the second one: the region stays a member.
    let kept = Membership::compute(
        &c,
        [
            withdrawn(revoke(1, 6, 30, 3, 7), 35),
            revoke(2, 4, 40, 3, 7),
        ],
    );
    assert_eq!(kept.standing(&id(3)), member("stockholm"));
    assert_eq!(kept.pending_revocations[0].revoked_by, [id(2)]);
}

#[test]
fn acts_of_non_members_and_acts_that_do_not_apply_count_nothing() {
    let c = three();
    // 9 is no member: its endorsement is no vote, now or later.
    let m = Membership::compute(
        &c,
        [
            endorse(9, 1, 5, 4, "gotland"),
            endorse(1, 1, 10, 4, "gotland"),
        ],
    );
    assert_eq!(m.standing(&id(4)), Standing::Stranger);
    // An act signed before its author was a member counts nothing either: 4 endorsed 5 at
    // t=5, and was admitted at t=20.
    let m = Membership::compute(
        &c,
        [
            endorse(4, 1, 5, 5, "halland"),
            endorse(1, 1, 10, 4, "gotland"),
            endorse(2, 1, 20, 4, "gotland"),
            endorse(1, 2, 30, 5, "halland"),
        ],
    );
    assert_eq!(m.standing(&id(4)), member("gotland"));
    assert_eq!(m.standing(&id(5)), Standing::Stranger);
    assert_eq!(m.pending[0].endorsed_by, [id(1)]);
    // Revoking a region that is not a member yet is no vote.
    let m = Membership::compute(
        &c,
        [
            revoke(1, 1, 5, 4, 0),
            endorse(2, 1, 10, 4, "gotland"),
            endorse(3, 1, 20, 4, "gotland"),
            revoke(2, 2, 30, 4, 7),
        ],
    );
    assert_eq!(m.standing(&id(4)), member("gotland"));
    assert_eq!(m.pending_revocations[0].revoked_by, [id(2)]);
    // Endorsements that differ in name are different votes.
    let m = Membership::compute(
        &c,
        [
            endorse(1, 1, 10, 4, "gotland"),
            endorse(2, 1, 20, 4, "oland"),
        ],
    );
    assert_eq!(m.standing(&id(4)), Standing::Stranger);
    assert_eq!(m.pending.len(), 2);
}

#[test]
fn revocation_ends_a_region_at_the_highest_point_named() {
    let c = three();
    let m = Membership::compute(&c, [revoke(1, 1, 10, 3, 40), revoke(2, 1, 20, 3, 42)]);
    assert_eq!(
        m.standing(&id(3)),
        Standing::Former {
            name: "stockholm".into(),
            until: 42
        }
    );
    let region = m.region_of(&id(3)).unwrap();
    let mut want = vec![id(1), id(2)];
    want.sort();
    assert_eq!(region.revoked.as_ref().unwrap().by, want);
    assert_eq!(region.keys[0].ended, Some("revoked"));
    // Its later acts count nothing; acts before the cut counted while it was a member.
    let m = Membership::compute(
        &c,
        [
            endorse(3, 5, 5, 4, "gotland"),
            revoke(1, 1, 10, 3, 40),
            revoke(2, 1, 20, 3, 42),
            endorse(1, 2, 30, 4, "gotland"),
            endorse(3, 43, 35, 5, "halland"),
        ],
    );
    assert_eq!(
        m.standing(&id(4)),
        Standing::Stranger,
        "3's vote stopped counting"
    );
    assert_eq!(m.pending[0].endorsed_by, [id(1)]);
    // A revoked key is never admitted again; its name stays its region's.
    let m = Membership::compute(
        &c,
        [
            revoke(1, 1, 10, 3, 40),
            revoke(2, 1, 20, 3, 42),
            endorse(1, 2, 30, 3, "stockholm"),
            endorse(2, 2, 40, 3, "stockholm"),
            endorse(1, 3, 50, 6, "stockholm"),
            endorse(2, 3, 60, 6, "stockholm"),
        ],
    );
    assert!(matches!(m.standing(&id(3)), Standing::Former { .. }));
    assert_eq!(m.standing(&id(6)), Standing::Stranger);
    assert!(m.pending[0].blocked.is_some(), "{:?}", m.pending);
    // ... but the region comes back under a new key endorsed as its replacement.
    let m = Membership::compute(
        &c,
        [
            revoke(1, 1, 10, 3, 40),
            revoke(2, 1, 20, 3, 42),
            replace(1, 2, 30, 6, "stockholm", 3, 42),
            replace(2, 2, 40, 6, "stockholm", 3, 42),
        ],
    );
    assert_eq!(m.standing(&id(6)), member("stockholm"));
    assert_eq!(m.region_of(&id(3)).unwrap().keys.len(), 2);
}

#[test]
fn a_replacement_takes_the_region_and_ends_the_old_key() {
    let c = three();
    let m = Membership::compute(
        &c,
        [
            replace(1, 1, 10, 7, "dalarna", 2, 12),
            replace(3, 1, 20, 7, "dalarna", 2, 15),
        ],
    );
    assert_eq!(m.standing(&id(7)), member("dalarna"));
    assert_eq!(
        m.standing(&id(2)),
        Standing::Former {
            name: "dalarna".into(),
            until: 15
        }
    );
    let region = m.region_of(&id(7)).unwrap();
    assert!(
        region.founder,
        "the region is the founder, under its new key"
    );
    assert_eq!(region.keys[0].ended, Some("replaced"));
    assert_eq!(m.members().count(), 3);
    // Another region's name is not taken by a replacement.
    let m = Membership::compute(
        &c,
        [
            replace(1, 1, 10, 7, "skane", 2, 12),
            replace(3, 1, 20, 7, "skane", 2, 15),
        ],
    );
    assert_eq!(m.standing(&id(7)), Standing::Stranger);
    assert!(m.pending[0].blocked.is_some());
}

/// A region hands itself over to a new key: `by` rotates to `node` at its own `seq`.
fn rotate(by: u8, seq: u64, t: u64, node: u8, name: &str) -> Act {
    replace(by, seq, t, node, name, by, seq)
}

#[test]
fn a_rotation_hands_the_region_over_at_once_and_ends_the_old_key_at_it() {
    let c = three();
    let m = Membership::compute(&c, [rotate(2, 5, 10, 7, "dalarna")]);
    assert_eq!(m.standing(&id(7)), member("dalarna"));
    assert_eq!(
        m.standing(&id(2)),
        Standing::Former {
            name: "dalarna".into(),
            until: 5
        }
    );
    let region = m.region_of(&id(7)).unwrap();
    assert!(region.founder && region.endorsed_by.is_empty());
    assert_eq!(region.keys[0].ended, Some("rotated"));
    assert_eq!(region.keys[1].since_ms, 10);
    // The new key acts for the region; the old key's acts after the rotation count nothing.
    let m = Membership::compute(
        &c,
        [
            rotate(2, 5, 10, 7, "dalarna"),
            endorse(2, 6, 11, 4, "gotland"),
            endorse(1, 1, 12, 4, "gotland"),
        ],
    );
    assert_eq!(m.standing(&id(4)), Standing::Stranger);
    let m = Membership::compute(
        &c,
        [
            rotate(2, 5, 10, 7, "dalarna"),
            endorse(7, 1, 11, 4, "gotland"),
            endorse(1, 1, 12, 4, "gotland"),
        ],
    );
    assert_eq!(m.standing(&id(4)), member("gotland"));
    // Under another name, to a key that is a region's, by a stranger: nothing.
    for act in [
        rotate(2, 5, 10, 7, "gotland"),
        rotate(2, 5, 10, 1, "dalarna"),
        rotate(9, 5, 10, 7, "dalarna"),
    ] {
        let m = Membership::compute(&c, [act.clone()]);
        assert_eq!(m.standing(&id(2)), member("dalarna"), "{act:?}");
        assert_eq!(m.members().count(), 3, "{act:?}");
    }
    // Twice in a row: each key ends at its own rotation.
    let m = Membership::compute(
        &c,
        [
            rotate(2, 5, 10, 7, "dalarna"),
            rotate(7, 3, 20, 8, "dalarna"),
        ],
    );
    assert_eq!(m.standing(&id(8)), member("dalarna"));
    let keys: Vec<_> = m
        .region_of(&id(8))
        .unwrap()
        .keys
        .iter()
        .map(|k| k.until)
        .collect();
    assert_eq!(keys, [Some(5), Some(3), None]);
}

#[test]
fn a_rotation_racing_a_revocation_is_decided_by_the_replay_order() {
    let c = three();
    // The revocation first: the revoked key's rotation counts nothing.
    let m = Membership::compute(
        &c,
        [
            revoke(1, 1, 10, 2, 4),
            revoke(3, 1, 11, 2, 4),
            rotate(2, 5, 12, 7, "dalarna"),
        ],
    );
    assert_eq!(m.standing(&id(7)), Standing::Stranger);
    assert!(!m.region_of(&id(2)).unwrap().active());
    // The rotation first: the revocation's votes stand on the region, and at the threshold
    // they end it, whichever key they named; the new key keeps only what they named of it.
    let m = Membership::compute(
        &c,
        [
            revoke(1, 1, 10, 2, 4),
            rotate(2, 5, 11, 7, "dalarna"),
            revoke(3, 1, 12, 7, 2),
        ],
    );
    let region = m.region_of(&id(7)).unwrap();
    assert!(!region.active());
    assert_eq!(
        m.standing(&id(7)),
        Standing::Former {
            name: "dalarna".into(),
            until: 2
        }
    );
    assert_eq!(
        region.keys[0].until,
        Some(4),
        "a cut named for the old key reaches back past its rotation, as the revoker named it"
    );
    // A replacement the members endorse still ends a key that rotated (a leaked key's
    // rotation does not keep the region from the members' decision).
    let m = Membership::compute(
        &c,
        [
            rotate(2, 5, 10, 7, "dalarna"),
            replace(1, 1, 11, 6, "dalarna", 2, 4),
            replace(3, 1, 12, 6, "dalarna", 2, 4),
        ],
    );
    assert_eq!(m.standing(&id(6)), member("dalarna"));
    assert_eq!(
        m.standing(&id(7)),
        Standing::Former {
            name: "dalarna".into(),
            until: 0
        }
    );
}

fn erase(by: u8, seq: u64, t: u64, author: u8, record: u8) -> Act {
    Act {
        time_ms: t,
        author: id(by),
        seq,
        what: What::Erase {
            author: id(author),
            record: RecordId([record; 16]),
        },
        withdrawn_ms: None,
    }
}

#[test]
fn an_erasure_takes_effect_at_the_threshold_or_from_the_records_own_region_unless_its_key_is_cut() {
    let c = three();
    let r = RecordId([5; 16]);
    // One order of two: pending; a non-member's order counts nothing.
    let m = Membership::compute(&c, [erase(1, 1, 10, 2, 5), erase(9, 1, 11, 2, 5)]);
    assert!(!m.is_erased(&id(2), &r));
    assert_eq!(m.pending_erasures[0].ordered_by, [id(1)]);
    // Two members: erased, and the order is kept with who gave it.
    let m = Membership::compute(&c, [erase(1, 1, 10, 2, 5), erase(3, 1, 20, 2, 5)]);
    assert!(m.is_erased(&id(2), &r));
    assert_eq!(m.erased[0].at_ms, 20);
    assert!(m.pending_erasures.is_empty());
    // A withdrawn order before the second counts nothing; after it, the erasure stands.
    let mut first = erase(1, 1, 10, 2, 5);
    first.withdrawn_ms = Some(15);
    let m = Membership::compute(&c, [first.clone(), erase(3, 1, 20, 2, 5)]);
    assert!(!m.is_erased(&id(2), &r));
    first.withdrawn_ms = Some(25);
    let m = Membership::compute(&c, [first, erase(3, 1, 20, 2, 5)]);
    assert!(m.is_erased(&id(2), &r));
    // The region's live key erases what its earlier key published, alone, at its time.
    let rotated = rotate(2, 5, 10, 7, "dalarna");
    let thief = erase(7, 2, 11, 2, 5);
    let m = Membership::compute(&c, [rotated.clone(), thief.clone()]);
    assert!(m.is_erased(&id(2), &r));
    assert_eq!(m.erased[0].by, [id(7)]);
    assert_eq!(m.erased[0].at_ms, 11);
    // Another member's order with it reaches the threshold.
    let m = Membership::compute(&c, [rotated.clone(), thief.clone(), erase(1, 1, 30, 2, 5)]);
    assert_eq!(m.erased[0].at_ms, 30);
    assert_eq!(m.erased[0].by, [id(1), id(7)]);
    // A stolen key's order: the members cut its log before it, however late the cut is
    // signed, and the record stays (in any arrival order). A cut that keeps the order does
    // not.
    let cut = |old: u8, t: u64, upto: u64| {
        [
            replace(1, 1, t, 8, "dalarna", old, upto),
            replace(3, 1, t + 1, 8, "dalarna", old, upto),
        ]
    };
    for t in [12, 1_000_000_000] {
        let mut acts = vec![rotated.clone(), thief.clone()];
        acts.extend(cut(7, t, 1));
        let m = Membership::compute(&c, acts.iter().rev().cloned());
        assert!(!m.is_erased(&id(2), &r), "a cut at {t}");
        assert_eq!(m.standing(&id(8)), member("dalarna"));
    }
    let mut acts = vec![rotated.clone(), thief.clone()];
    acts.extend(cut(7, 12, 2));
    assert!(Membership::compute(&c, acts).is_erased(&id(2), &r));
    // The thief rotates after its order: the cut naming the stolen key still reaches back
    // before the order, and the key it rotated to keeps nothing.
    let mut acts = vec![
        rotated.clone(),
        thief.clone(),
        rotate(7, 3, 12, 9, "dalarna"),
    ];
    acts.extend(cut(7, 13, 1));
    let m = Membership::compute(&c, acts);
    assert!(!m.is_erased(&id(2), &r));
    assert_eq!(m.standing(&id(8)), member("dalarna"));
    assert_eq!(
        m.standing(&id(7)),
        Standing::Former {
            name: "dalarna".into(),
            until: 1
        }
    );
    // Its vote no longer counts toward the threshold either: a member's later order is one
    // of two.
    let mut acts = vec![rotated.clone(), thief.clone()];
    acts.extend(cut(7, 12, 1));
    acts.push(erase(1, 2, 40, 2, 5));
    let m = Membership::compute(&c, acts);
    assert!(!m.is_erased(&id(2), &r));
    assert_eq!(m.pending_erasures[0].ordered_by, [id(1)]);
    // Revoked with its log cut before the order: nothing.
    let m = Membership::compute(
        &c,
        [
            rotated.clone(),
            thief.clone(),
            revoke(1, 1, 12, 7, 1),
            revoke(3, 1, 13, 7, 1),
        ],
    );
    assert!(!m.is_erased(&id(2), &r));
    // Withdrawn: nothing.
    let mut withdrawn = thief.clone();
    withdrawn.withdrawn_ms = Some(20);
    assert!(!Membership::compute(&c, [rotated, withdrawn]).is_erased(&id(2), &r));
    // Another region alone does not.
    let m = Membership::compute(&c, [erase(3, 1, 11, 2, 5)]);
    assert!(!m.is_erased(&id(2), &r));
}

#[test]
fn two_keys_wanting_one_name_the_first_to_the_threshold_wins() {
    let c = three();
    let acts = [
        endorse(1, 1, 10, 4, "gotland"),
        endorse(1, 2, 11, 5, "gotland"),
        endorse(2, 1, 30, 5, "gotland"),
        endorse(3, 1, 40, 4, "gotland"),
    ];
    let m = Membership::compute(&c, acts);
    assert_eq!(m.standing(&id(5)), member("gotland"));
    assert_eq!(m.standing(&id(4)), Standing::Stranger);
    assert!(m.pending[0].blocked.is_some());
}

/// One log entry of the simulation.
#[derive(Debug, Clone)]
enum Step {
    /// Any other record.
    Plain,
    Act(What),
    /// A tombstone of the act at this seq (withdrawn).
    Withdraw(u64),
}

/// One author's log: (time, step) per seq (seq = index + 1).
type Log = Vec<(u64, Step)>;

/// A node of the simulation: what it holds of each log, and the members it computes.
struct SimNode {
    held: BTreeMap<NodeId, usize>,
}

impl SimNode {
    fn acts(&self, logs: &BTreeMap<NodeId, Log>) -> Vec<Act> {
        let mut out = Vec::new();
        for (author, n) in &self.held {
            let log = &logs[author][..*n];
            for (i, (t, step)) in log.iter().enumerate() {
                let seq = i as u64 + 1;
                // A withdrawal takes the vote back from its own time on.
                let withdrawn_ms = log.iter().find_map(|(wt, s)| match s {
                    Step::Withdraw(w) if *w == seq => Some(*wt),
                    _ => None,
                });
                if let Step::Act(what) = step {
                    out.push(Act {
                        time_ms: *t,
                        author: *author,
                        seq,
                        what: what.clone(),
                        withdrawn_ms,
                    });
                }
            }
        }
        out
    }

    fn membership(&mut self, c: &Charter, logs: &BTreeMap<NodeId, Log>) -> Membership {
        Membership::compute(c, self.acts(logs))
    }

    /// Takes the next entry of `author` if it is (or was) a region's key: entries past a
    /// cut are held (so every node holds the same log) and count nothing.
    fn offer(&mut self, c: &Charter, logs: &BTreeMap<NodeId, Log>, author: NodeId) -> bool {
        let held = self.held.get(&author).copied().unwrap_or(0);
        if held >= logs[&author].len() {
            return false;
        }
        let takes = self.membership(c, logs).standing(&author) != Standing::Stranger;
        if takes {
            self.held.insert(author, held + 1);
        }
        takes
    }
}

fn scenario(rng: &mut StdRng) -> (Charter, BTreeMap<NodeId, Log>) {
    const NAMES: [&str; 6] = [
        "gotland", "oland", "halland", "varmland", "skane", "blekinge",
    ];
    let founders = rng.gen_range(2..=5u8);
    let threshold = rng.gen_range(1..=u32::from(founders));
    let list: Vec<(u8, String)> = (1..=founders).map(|n| (n, format!("f{n}"))).collect();
    let refs: Vec<(u8, &str)> = list.iter().map(|(n, s)| (*n, s.as_str())).collect();
    let c = charter(&refs, threshold);
    let keys: Vec<u8> = (1..=founders + rng.gen_range(2..=5u8)).collect();
    let mut logs = BTreeMap::new();
    for &k in &keys {
        let mut log: Log = Vec::new();
        for _ in 0..rng.gen_range(0..10) {
            let t = rng.gen_range(0..1000u64);
            let target = keys[rng.gen_range(0..keys.len())];
            let step = match rng.gen_range(0..12) {
                11 => Step::Act(What::Erase {
                    author: id(target),
                    record: RecordId([rng.gen_range(0..3u8); 16]),
                }),
                // A rotation of this key's region, mostly under its own (founder's) name.
                10 => Step::Act(What::Endorse {
                    node: id(target),
                    name: if rng.gen_bool(0.8) {
                        format!("f{k}")
                    } else {
                        NAMES[rng.gen_range(0..NAMES.len())].into()
                    },
                    replaces: Some((id(k), log.len() as u64 + 1)),
                }),
                0..=2 => Step::Plain,
                3..=5 => Step::Act(What::Endorse {
                    node: id(target),
                    name: NAMES[rng.gen_range(0..NAMES.len())].into(),
                    replaces: None,
                }),
                6 => {
                    let old = keys[rng.gen_range(0..keys.len())];
                    Step::Act(What::Endorse {
                        node: id(target),
                        name: NAMES[rng.gen_range(0..NAMES.len())].into(),
                        replaces: Some((id(old), rng.gen_range(0..6))),
                    })
                }
                7 | 8 => Step::Act(What::Revoke {
                    node: id(target),
                    upto: rng.gen_range(0..8),
                }),
                _ => match log.iter().position(|(_, s)| matches!(s, Step::Act(_))) {
                    Some(i) => Step::Withdraw(i as u64 + 1),
                    None => Step::Plain,
                },
            };
            log.push((t, step));
        }
        logs.insert(id(k), log);
    }
    (c, logs)
}

/// Nodes take the same logs in random orders, each refusing what its membership of the
/// moment refuses and dropping what a cut it learns leaves out; every node ends with the same
/// members, and holds every log as far as the members take it.
#[test]
fn nodes_that_take_the_same_records_in_any_order_agree_on_the_members() {
    let seeds = std::env::var("SPINDEL_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300u64);
    let mut admitted_somewhere = 0;
    let mut revoked_somewhere = 0;
    let mut rotated_somewhere = 0;
    let mut erased_somewhere = 0;
    for seed in 0..seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let (c, logs) = scenario(&mut rng);
        let authors: Vec<NodeId> = logs.keys().copied().collect();
        let mut results = Vec::new();
        for _node in 0..3 {
            let mut node = SimNode {
                held: BTreeMap::new(),
            };
            // Random offers until a full round changes nothing (takes nothing, cuts nothing).
            loop {
                let before = node.held.clone();
                let mut order = authors.clone();
                order.shuffle(&mut rng);
                for a in order {
                    for _ in 0..rng.gen_range(1..4) {
                        node.offer(&c, &logs, a);
                    }
                }
                node.membership(&c, &logs);
                if node.held == before {
                    break;
                }
            }
            let m = node.membership(&c, &logs);
            // Every key that is or was a region's is held whole (a former key's entries past
            // its cut too: they count nothing, and the log stays one chain everywhere).
            for (key, standing) in m.keys() {
                let held = node.held.get(&key).copied().unwrap_or(0);
                let want = match standing {
                    Standing::Stranger => 0,
                    _ => logs[&key].len(),
                };
                assert_eq!(held, want, "seed {seed}: {key:?} is {standing:?}");
            }
            results.push((m, node.held));
        }
        for r in &results[1..] {
            assert_eq!(r.0, results[0].0, "seed {seed}: members differ");
            // Every key that is or was a region's is held whole everywhere (a key only one
            // node took while it looked admitted, and that turned out a stranger, counts
            // nothing: its acts are no votes).
            let known = |held: &BTreeMap<NodeId, usize>| -> BTreeMap<NodeId, usize> {
                held.iter()
                    .filter(|(k, _)| r.0.standing(k) != Standing::Stranger)
                    .map(|(k, n)| (*k, *n))
                    .collect()
            };
            assert_eq!(
                known(&r.1),
                known(&results[0].1),
                "seed {seed}: held logs differ"
            );
        }
        let m = &results[0].0;
        admitted_somewhere += usize::from(m.regions.iter().any(|r| !r.founder));
        revoked_somewhere += usize::from(m.regions.iter().any(|r| r.revoked.is_some()));
        erased_somewhere += usize::from(!m.erased.is_empty());
        rotated_somewhere += usize::from(
            m.regions
                .iter()
                .any(|r| r.keys.iter().any(|k| k.ended == Some("rotated"))),
        );
    }
    assert!(erased_somewhere > seeds as usize / 20, "{erased_somewhere}");
    assert!(
        rotated_somewhere > seeds as usize / 20,
        "{rotated_somewhere}"
    );
    // The scenarios reach both kinds of change, not only the charter.
    assert!(
        admitted_somewhere > seeds as usize / 10,
        "{admitted_somewhere}"
    );
    assert!(
        revoked_somewhere > seeds as usize / 20,
        "{revoked_somewhere}"
    );
}

#[test]
fn membership_records_are_checked_field_by_field() {
    let node = id(4).to_hex();
    let ok = format!(r#"{{"node":"{node}","name":"gotland"}}"#);
    assert!(Endorsement::from_json_all(&ok).is_ok());
    let problems = |kind: &str, json: String| {
        let errs = match kind {
            "endorsement" => Endorsement::from_json_all(&json).map(drop),
            "erasure" => ErasureOrder::from_json_all(&json).map(drop),
            _ => Revocation::from_json_all(&json).map(drop),
        };
        errs.unwrap_err()
            .into_iter()
            .map(|e| (e.field.unwrap_or_default(), e.problem))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        problems(
            "endorsement",
            r#"{"node":"abc","name":"Gotland","extra":1}"#.into()
        ),
        [(String::new(), Problem::NotJson)]
    );
    assert_eq!(
        problems("endorsement", r#"{"node":"abc","name":"Gotland"}"#.into()),
        [
            ("node".to_string(), Problem::NodeId),
            ("name".to_string(), Problem::RegionName)
        ]
    );
    assert_eq!(
        problems(
            "endorsement",
            format!(r#"{{"node":"{node}","name":"gotland","replaces":"{node}"}}"#)
        ),
        [
            ("replaces".to_string(), Problem::Other),
            ("upto".to_string(), Problem::Required)
        ]
    );
    assert_eq!(
        problems(
            "endorsement",
            format!(r#"{{"node":"{node}","name":"gotland","upto":3}}"#)
        ),
        [("upto".to_string(), Problem::Other)]
    );
    // An erasure order names a key, a record id and a reason, each checked.
    let rid = "0123456789abcdef0123456789abcdef";
    assert!(
        ErasureOrder::from_json_all(&format!(
            r#"{{"author":"{node}","record":"{rid}","reason":"Personen bad om det"}}"#
        ))
        .is_ok()
    );
    assert_eq!(
        problems(
            "erasure",
            r#"{"author":"abc","record":"xyz","reason":""}"#.into()
        ),
        [
            ("author".to_string(), Problem::NodeId),
            ("record".to_string(), Problem::Other),
            ("reason".to_string(), Problem::Required)
        ]
    );
    let long_reason = "x".repeat(limits::REASON_CHARS_MAX + 1);
    assert!(matches!(
        problems(
            "erasure",
            format!(r#"{{"author":"{node}","record":"{rid}","reason":"{long_reason}"}}"#)
        )[..],
        [(_, Problem::Length { .. })]
    ));
    // A key that is not a point on the curve is not a node id.
    let unusable = format!("01{}", "00".repeat(31));
    assert_eq!(
        problems(
            "revocation",
            format!(r#"{{"node":"{unusable}","reason":"x","upto":1}}"#)
        ),
        [("node".to_string(), Problem::NodeId)]
    );
    assert_eq!(
        problems(
            "revocation",
            format!(r#"{{"node":"{node}","reason":"","upto":1}}"#)
        ),
        [("reason".to_string(), Problem::Required)]
    );
    let long = "x".repeat(limits::REASON_CHARS_MAX + 1);
    assert!(matches!(
        problems(
            "revocation",
            format!(r#"{{"node":"{node}","reason":"{long}","upto":1}}"#)
        )[..],
        [(_, Problem::Length { .. })]
    ));
    let r = Revocation::from_json_all(&format!(
        r#"{{"node":" {node} ","reason":" nedlagd ","upto":9}}"#
    ))
    .expect("a revocation with spaces around its fields is read, trimmed");
    assert_eq!(r.reason, "nedlagd");
    let act = Act::revocation(id(1), 3, 50, &r).unwrap();
    assert_eq!(
        act.what,
        What::Revoke {
            node: id(4),
            upto: 9
        }
    );
}
