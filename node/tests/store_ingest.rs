//! The store ingesting other authors' entries (as an aggregator does): admission, refusal
//! counters, fork proofs and freezing, all-or-nothing batches, purged payloads. Real sled and
//! tantivy files on disk; entries built and signed through the protocol library.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spindel_node::Reads;
use spindel_node::store::{ApplyOptions, Incoming, Outcome, Store, StoreError};
use spindel_protocol::SecretKey;
use spindel_protocol::entry::{Entry, Head, Payload, RecordId, next_header};
use spindel_protocol::record::Kind;

const NOW: u64 = 1_800_000_000_000;

fn opts() -> ApplyOptions {
    ApplyOptions {
        expected_author: None,
        now_ms: NOW,
        all_or_nothing: false,
    }
}

struct Author {
    key: SecretKey,
    head: Option<Head>,
}

impl Author {
    fn new(seed: u8) -> Self {
        Author {
            key: SecretKey::from_bytes(&[seed; 32]),
            head: None,
        }
    }

    fn method(&mut self, rid: RecordId, title: &str) -> Incoming {
        let body = serde_json::json!({"title": title, "summary": "s"}).to_string();
        self.entry(Kind::Method, rid, Some(body))
    }

    /// The next entry: `body` put as `kind`, or a tombstone (`None`).
    fn entry(&mut self, kind: Kind, rid: RecordId, body: Option<String>) -> Incoming {
        let payload = body.map(|b| Payload::seal(&mut rand_core::OsRng, b));
        let h = next_header(
            self.key.node_id(),
            self.head,
            NOW,
            kind,
            rid,
            payload.as_deref(),
        );
        let entry = Entry::sign(&self.key, h);
        self.head = Some(Head {
            seq: entry.header().seq,
            hash: entry.hash(),
        });
        Incoming { entry, payload }
    }
}

fn refused(o: &Outcome) -> &'static str {
    match o {
        Outcome::Refused(r) => r.reason(),
        Outcome::Accepted => "accepted",
    }
}

#[test]
fn admission_forks_and_counters_persist() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut a = Author::new(1);
    let mut stranger = Author::new(2);
    store.admit(&a.key.node_id(), Some("skane".into())).unwrap();

    let e1 = a.method(RecordId([1; 16]), "Första");
    let s1 = stranger.method(RecordId([2; 16]), "Okänd");
    let out = store.apply(vec![e1.clone(), s1], opts()).unwrap();
    assert_eq!(refused(&out[0]), "accepted");
    assert_eq!(refused(&out[1]), "not_admitted");

    // A second, different entry with seq 1 is a fork: proof kept, author frozen.
    let mut twin = Author::new(1);
    let fork = twin.method(RecordId([1; 16]), "Annan");
    let e2 = a.method(RecordId([3; 16]), "Andra");
    let out = store.apply(vec![fork.clone(), e2], opts()).unwrap();
    assert_eq!(refused(&out[0]), "fork");
    assert_eq!(refused(&out[1]), "frozen");
    // Replaying the first entry is a replay, not a fork — but the author is frozen now.
    assert_eq!(
        refused(&store.apply(vec![e1.clone()], opts()).unwrap()[0]),
        "frozen"
    );

    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let forks = store.forks().unwrap();
    assert_eq!(forks.len(), 1);
    let (author, proof) = &forks[0];
    assert_eq!(*author, a.key.node_id());
    assert_eq!(proof.seq, 1);
    assert_eq!(proof.first, e1.entry.to_wire());
    assert_eq!(proof.second, fork.entry.to_wire());
    // Both halves of the proof verify: they are really the author's signatures.
    for wire in [&proof.first, &proof.second] {
        Entry::from_wire(wire.clone()).unwrap().verify().unwrap();
    }
    assert!(store.author(&a.key.node_id()).unwrap().unwrap().frozen);
    let refusals = store.refusals().unwrap();
    assert_eq!(refusals.get("not_admitted"), Some(&1));
    assert_eq!(refusals.get("fork"), Some(&1));
    assert_eq!(refusals.get("frozen"), Some(&2));
    assert_eq!(store.head(&a.key.node_id()).unwrap().unwrap().seq, 1);
}

/// The tally (facets, region counts, SROI figures) follows every kind of change exactly as a
/// rebuild from the payloads gives it: put, new version, tombstone, a header-only put and its
/// completion, a fork that freezes its author, and a reopened store.
#[test]
fn the_tally_follows_every_kind_of_change() {
    use spindel_node::query::{Query, facets};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (mut a, mut b) = (Author::new(11), Author::new(12));
    store.admit(&a.key.node_id(), Some("skane".into())).unwrap();
    store
        .admit(&b.key.node_id(), Some("dalarna".into()))
        .unwrap();
    let innovation = |tags: &[&str], ratio: f64| {
        Some(
            serde_json::json!({"title": "I", "summary": "s", "tags": tags, "sroi": {"ratio": ratio}})
                .to_string(),
        )
    };
    // (total, "förening" tagged, SROI count and highest), checked against a rebuild.
    let check = |store: &Store, want: (u64, u64, usize, Option<f64>), step: &str| {
        let all = facets(store, &Query::default()).unwrap();
        let tagged = facets(
            store,
            &Query {
                tag: Some("FÖRENING".into()),
                ..Query::default()
            },
        )
        .unwrap();
        let sroi = store.with_tally(|t| t.sroi(None, 10)).unwrap();
        assert_eq!(
            (all.total, tagged.total, sroi.count, sroi.max),
            want,
            "{step}"
        );
        assert_eq!(store.visible_count().unwrap(), all.total, "{step}");
        assert!(
            store.tally_is_exact().unwrap(),
            "{step}: kept against rebuilt"
        );
    };
    check(&store, (0, 0, 0, None), "empty");
    let (r1, r2, r3) = (RecordId([1; 16]), RecordId([2; 16]), RecordId([3; 16]));
    let put = a.entry(
        Kind::Innovation,
        r1,
        innovation(&["Förening", "kooperativ", "förening"], 2.5),
    );
    let other = b.entry(
        Kind::Method,
        r2,
        Some(r#"{"title":"M","summary":"s","tags":["förening"]}"#.into()),
    );
    store.apply(vec![put, other.clone()], opts()).unwrap();
    check(&store, (2, 2, 1, Some(2.5)), "put");
    let tags = facets(&store, &Query::default()).unwrap().tags;
    assert_eq!(
        tags.iter()
            .map(|t| (t.value.as_str(), t.count))
            .collect::<Vec<_>>(),
        [("förening", 2), ("kooperativ", 1)],
        "a tag counts a record once, in any case"
    );
    let version = a.entry(Kind::Innovation, r1, innovation(&["kooperativ"], 4.0));
    store.apply(vec![version], opts()).unwrap();
    check(&store, (2, 1, 1, Some(4.0)), "new version");
    let gone = b.entry(Kind::Method, r2, None);
    store.apply(vec![gone], opts()).unwrap();
    check(&store, (1, 0, 1, Some(4.0)), "tombstone");
    let mut header_only = a.entry(Kind::Innovation, r3, innovation(&["förening"], 9.0));
    let payload = header_only.payload.take();
    store.apply(vec![header_only.clone()], opts()).unwrap();
    check(&store, (1, 0, 1, Some(4.0)), "header-only put");
    header_only.payload = payload;
    assert_eq!(
        store.apply(vec![header_only], opts()).unwrap(),
        vec![Outcome::Accepted]
    );
    check(&store, (2, 1, 2, Some(9.0)), "completed");
    let mut twin = Author::new(12);
    let fork = twin.method(RecordId([9; 16]), "Tvilling");
    assert_eq!(
        refused(&store.apply(vec![fork], opts()).unwrap()[0]),
        "fork"
    );
    check(&store, (2, 1, 2, Some(9.0)), "fork: its author frozen");
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    store.warm().unwrap();
    check(
        &store,
        (2, 1, 2, Some(9.0)),
        "reopened and warmed in one pass",
    );
    let regions = facets(&store, &Query::default()).unwrap().regions;
    assert_eq!(
        regions
            .iter()
            .map(|r| (r.value.as_str(), r.count))
            .collect::<Vec<_>>(),
        [("skane", 2)]
    );
}

/// A batch large enough to be verified on every core keeps each verdict with its own entry:
/// one bad signature late in the batch, in another run than the first, is refused as such,
/// its author's later entries miss their predecessor, and the other author's all count.
#[test]
fn a_batch_verified_on_every_core_keeps_each_verdict_in_its_place() {
    use spindel_node::store::VERIFY_RUN_MIN;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (mut a, mut b) = (Author::new(21), Author::new(22));
    store.admit(&a.key.node_id(), None).unwrap();
    store.admit(&b.key.node_id(), None).unwrap();
    let n = 2 * VERIFY_RUN_MIN;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.push(a.method(RecordId([i as u8; 16]), "A"));
        batch.push(b.method(RecordId([i as u8; 16]), "B"));
    }
    let bad = 2 * n - 6; // a's entry at seq n - 2, near the end of the batch
    let mut wire = batch[bad].entry.to_wire();
    wire.signature[9] ^= 1;
    batch[bad].entry = Entry::from_wire(wire).unwrap();
    let outcomes = store.apply(batch, opts()).unwrap();
    let reasons: Vec<&str> = outcomes.iter().map(refused).collect();
    assert_eq!(reasons[bad], "bad_signature");
    assert!(
        reasons[..bad].iter().all(|r| *r == "accepted"),
        "{reasons:?}"
    );
    for (i, r) in reasons.iter().enumerate().skip(bad + 1) {
        let want = if i % 2 == 0 { "gap" } else { "accepted" };
        assert_eq!(*r, want, "entry {i}");
    }
    assert_eq!(store.head(&b.key.node_id()).unwrap().unwrap().seq, n as u64);
    assert_eq!(
        store.head(&a.key.node_id()).unwrap().unwrap().seq,
        n as u64 - 3,
        "a's log ends before its bad entry"
    );
}

/// Past INDEX_PENDING_BYTES_MAX of text queued for the full-text index, the batch that passed it
/// commits the index before it returns: the queue's memory stays bounded when indexing falls
/// behind the writer (a join), and the writer slows to the index's pace.
#[test]
fn a_batch_past_the_index_queue_bound_commits_the_index_before_it_returns() {
    use spindel_node::store::INDEX_PENDING_BYTES_MAX;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut a = Author::new(31);
    store.admit(&a.key.node_id(), None).unwrap();
    let description = "samverkan ".repeat(1_990);
    let n = INDEX_PENDING_BYTES_MAX / description.len() + 2;
    let batch: Vec<Incoming> = (0..n)
        .map(|i| {
            let body = serde_json::json!({"title": format!("Innovation {i}"), "summary": "s", "description": description});
            a.entry(Kind::Innovation, RecordId([(i % 251) as u8, (i / 251) as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), Some(body.to_string()))
        })
        .collect();
    let outcomes = store.apply(batch, opts()).unwrap();
    assert!(outcomes.iter().all(|o| *o == Outcome::Accepted));
    assert_eq!(
        store.index_health().changes_pending,
        0,
        "the writer committed what passed the bound"
    );
    assert_eq!(store.search("samverkan").unwrap().unwrap().len(), n);
}

#[test]
fn all_or_nothing_batch_writes_nothing_on_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut a = Author::new(3);
    store.admit(&a.key.node_id(), None).unwrap();
    let good = a.method(RecordId([1; 16]), "Bra");
    let mut bad = a.method(RecordId([2; 16]), "Dålig");
    bad.payload.as_mut().unwrap()[20] ^= 1;
    let err = store
        .apply(
            vec![good, bad],
            ApplyOptions {
                all_or_nothing: true,
                ..opts()
            },
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Refused { index: 1, .. }), "{err}");
    assert_eq!(store.head(&a.key.node_id()).unwrap(), None);
    assert_eq!(store.generation().unwrap(), 0);
    assert!(
        store.refusals().unwrap().is_empty(),
        "local refusals are errors, not counted"
    );
}

#[test]
fn purged_payload_is_kept_as_header_only_and_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut a = Author::new(4);
    store.admit(&a.key.node_id(), None).unwrap();
    let mut e = a.method(RecordId([1; 16]), "Rensad");
    e.payload = None;
    assert_eq!(
        store.apply(vec![e], opts()).unwrap(),
        vec![Outcome::Accepted]
    );
    let meta = store
        .record_meta(&a.key.node_id(), &RecordId([1; 16]))
        .unwrap()
        .unwrap();
    assert!(!meta.visible());
    assert_eq!(store.visible_count().unwrap(), 0);
    assert_eq!(
        store.entries_from(&a.key.node_id(), 1, 10).unwrap()[0].payload,
        None
    );
}

#[test]
fn expected_author_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut a = Author::new(5);
    let b = Author::new(6);
    store.admit(&a.key.node_id(), None).unwrap();
    let e = a.method(RecordId([1; 16]), "x");
    let out = store
        .apply(
            vec![e],
            ApplyOptions {
                expected_author: Some(b.key.node_id()),
                ..opts()
            },
        )
        .unwrap();
    assert_eq!(refused(&out[0]), "wrong_author");
}

/// A region takes its aggregator's admission list as the truth (issue 8): names come from the
/// list, a name moves to the key the list gives it, a listed author without a name (or with an
/// invalid one) has none, and an author without a name shows by the name made from its key,
/// never by its profile's display name alone.
#[test]
fn admission_lists_are_the_truth_for_names() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let me = SecretKey::from_bytes(&[1; 32]).node_id();
    let (a, b) = (
        SecretKey::from_bytes(&[2; 32]).node_id(),
        SecretKey::from_bytes(&[3; 32]).node_id(),
    );
    store.admit(&me, Some("skane".into())).unwrap();
    // An older aggregator relayed what a profile claimed: "dalarna" for b.
    store.admit(&b, Some("dalarna".into())).unwrap();
    let agg = SecretKey::from_bytes(&[9; 32]).node_id();
    let name = |id| store.author(id).unwrap().unwrap().admitted_name;
    let changes = store
        .take_admissions(
            &[
                (a, Some("dalarna".into())),
                (b, None),
                (me, Some("skane".into())),
            ],
            &agg,
            &me,
        )
        .unwrap();
    assert_eq!(name(&a).as_deref(), Some("dalarna"));
    assert_eq!(name(&b), None, "the claimed name survived the list");
    assert!(changes.renamed.contains(&(b, None)), "{changes:?}");
    assert_eq!(changes.admitted, [a]);
    assert!(store.author(&a).unwrap().unwrap().admitted);
    // Shown by the name made from its key, whatever its profile says.
    let mut meta = store.author(&b).unwrap().unwrap();
    meta.display_name = Some("Social ekonomi Dalarna".into());
    let key_name = format!("region-{}", &b.to_hex()[..8]);
    assert_eq!(
        meta.shown(&b),
        format!("Social ekonomi Dalarna – {key_name}")
    );
    // The name moves: the list gives "skane" to a; this node loses it (and can say so).
    store
        .take_admissions(
            &[(a, Some("skane".into())), (b, Some("NOT A NAME".into()))],
            &agg,
            &me,
        )
        .unwrap();
    assert_eq!(name(&a).as_deref(), Some("skane"));
    assert_eq!(name(&me), None);
    assert!(store.is_admitted(&me).unwrap(), "this node was un-admitted");
    assert_eq!(name(&b), None);
    assert_eq!(store.refusals().unwrap().get("bad_admitted_name"), Some(&1));
}

/// A pinned aggregator's list is the truth for the authors it vouches for, removals included:
/// an author it no longer lists loses its admission and its name, unless another pinned
/// aggregator still lists it; an author admitted before vouchers were kept (no source) goes
/// with the first list that leaves it out; entries it signed stay, new ones are refused; this
/// node itself is never un-admitted; a batch's vouch is undone by the next list like any.
#[test]
fn admission_lists_remove_what_they_leave_out_and_two_aggregators_keep_theirs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let id = |n: u8| SecretKey::from_bytes(&[n; 32]).node_id();
    let (me, p, q) = (id(1), id(2), id(3));
    let mut a = Author::new(10);
    let (aid, b, c, legacy, relayed) = (a.key.node_id(), id(11), id(12), id(13), id(14));
    store.admit(&me, Some("skane".into())).unwrap();
    // Admitted by a store from before vouchers were kept: no source recorded.
    store.admit(&legacy, Some("gammal".into())).unwrap();
    let name = |id| store.author(id).unwrap().and_then(|m| m.admitted_name);
    let admitted = |id| store.is_admitted(id).unwrap();

    let ch = store
        .take_admissions(
            &[
                (me, Some("skane".into())),
                (aid, Some("dalarna".into())),
                (b, Some("gotland".into())),
            ],
            &p,
            &me,
        )
        .unwrap();
    assert_eq!(ch.removed, [legacy], "the first list is the truth for it");
    assert!(!admitted(&legacy));
    assert_eq!(name(&legacy), None);
    assert_eq!(store.vouchers(&aid).unwrap(), [p]);
    assert!(store.vouchers(&me).unwrap().is_empty());
    let rid = RecordId([7; 16]);
    let first = a.method(rid, "Före");
    assert_eq!(
        refused(&store.apply(vec![first], opts()).unwrap()[0]),
        "accepted"
    );

    // A second pinned aggregator lists b and c: b is vouched for by both.
    let ch = store
        .take_admissions(&[(b, Some("gotland".into())), (c, None)], &q, &me)
        .unwrap();
    assert!(ch.removed.is_empty(), "{ch:?}");
    assert_eq!(ch.admitted, [c]);
    let mut by_b = store.vouchers(&b).unwrap();
    by_b.sort();
    let mut both = vec![p, q];
    both.sort();
    assert_eq!(by_b, both);
    assert!(admitted(&aid), "q's list removed what only p lists");

    // p leaves out a and b: a goes (only p vouched for it), b stays (q still lists it).
    let ch = store
        .take_admissions(&[(me, Some("skane".into()))], &p, &me)
        .unwrap();
    assert_eq!(ch.removed, [aid]);
    assert!(!admitted(&aid));
    assert_eq!(name(&aid), None, "a removed region keeps its name");
    assert!(admitted(&b) && admitted(&c));
    assert_eq!(name(&b).as_deref(), Some("gotland"));
    assert_eq!(store.vouchers(&b).unwrap(), [q]);
    // What it signed stays; what it signs now is refused.
    assert_eq!(store.head(&aid).unwrap().map(|h| h.seq), Some(1));
    let later = a.method(RecordId([8; 16]), "Efter");
    assert_eq!(
        refused(&store.apply(vec![later], opts()).unwrap()[0]),
        "not_admitted"
    );
    // Its freed name can be given to another key.
    store
        .take_admissions(&[(c, Some("dalarna".into()))], &q, &me)
        .unwrap();
    assert_eq!(name(&c).as_deref(), Some("dalarna"));
    assert!(!admitted(&b), "q left b out: no aggregator vouches for it");

    // A batch's vouch (an author relayed before the list named it) is undone by the next list
    // that leaves it out; an empty list never un-admits this node.
    store.vouch(&relayed, &p).unwrap();
    assert!(admitted(&relayed));
    let ch = store.take_admissions(&[], &p, &me).unwrap();
    assert_eq!(ch.removed, [relayed]);
    assert!(admitted(&me));
    assert!(admitted(&c), "p's empty list removed what only q lists");
    // Nothing changes twice.
    let ch = store.take_admissions(&[], &p, &me).unwrap();
    assert_eq!(ch, Default::default());
}

/// 10,000 listed authors apply in one pass each (no author compared with every other): the
/// first list, the same list again, and one that drops half and moves names. Timings are
/// printed (`--nocapture`), not asserted. 10,000 is also the most an aggregator admits.
#[test]
fn ten_thousand_listed_authors_apply_in_linear_time() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let me = SecretKey::from_bytes(&[1; 32]).node_id();
    let agg = SecretKey::from_bytes(&[2; 32]).node_id();
    store.admit(&me, Some("skane".into())).unwrap();
    let ids: Vec<_> = (0..10_000)
        .map(|_| SecretKey::generate(&mut rand_core::OsRng).node_id())
        .collect();
    let list: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, Some(format!("r-{i}"))))
        .collect();
    let timed = |list: &[(spindel_protocol::NodeId, Option<String>)]| {
        let t = std::time::Instant::now();
        let ch = store.take_admissions(list, &agg, &me).unwrap();
        (ch, t.elapsed())
    };
    let (small, t_small) = timed(&list[..1_000]);
    assert_eq!(small.admitted.len(), 1_000);
    let (first, t_first) = timed(&list);
    assert_eq!(first.admitted.len(), 9_000);
    let (again, t_again) = timed(&list);
    assert_eq!(again, Default::default());
    // As an aggregator: no more regions than one admission list carries (a truncated list
    // would read as removals); one already admitted may be admitted again.
    let one_more = SecretKey::generate(&mut rand_core::OsRng).node_id();
    assert!(matches!(
        store.admit_unique(&one_more, "en-till", &me, "skane"),
        Err(StoreError::TooManyAdmitted { max: 10_000 })
    ));
    store.admit_unique(&ids[0], "r-0", &me, "skane").unwrap();
    // Half removed; every name of the rest moves to its neighbour's key.
    let moved: Vec<_> = (0..5_000)
        .map(|i| (ids[i], Some(format!("r-{}", (i + 1) % 5_000))))
        .collect();
    let (third, t_third) = timed(&moved);
    assert_eq!(third.removed.len(), 5_000);
    let admitted = store.admitted_authors().unwrap();
    assert_eq!(admitted.len(), 5_001);
    for (i, id) in ids.iter().take(5_000).enumerate() {
        let m = store.author(id).unwrap().unwrap();
        assert_eq!(m.admitted_name, Some(format!("r-{}", (i + 1) % 5_000)));
    }
    eprintln!(
        "take_admissions: 1,000 new {t_small:?}; 10,000 (9,000 new) {t_first:?}; 10,000 unchanged {t_again:?}; 5,000 kept with names moved and 5,000 removed {t_third:?}"
    );
}

/// Cheap checks before signatures (issue 9): a batch of entries by an author that is not
/// admitted, or not the expected one, is refused and counted as before; the timing of such a
/// batch is printed with `--nocapture` (a measurement, not an assertion).
#[test]
fn refused_authors_cost_no_verification() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut admitted = Author::new(1);
    store
        .admit(&admitted.key.node_id(), Some("skane".into()))
        .unwrap();
    let mut stranger = Author::new(2);
    let strangers: Vec<Incoming> = (0..256u32)
        .map(|i| {
            let mut rid = [0u8; 16];
            rid[..4].copy_from_slice(&i.to_be_bytes());
            stranger.method(RecordId(rid), "Okänd")
        })
        .collect();
    let t0 = std::time::Instant::now();
    let out = store.apply(strangers, opts()).unwrap();
    let not_admitted = t0.elapsed();
    assert!(out.iter().all(|o| refused(o) == "not_admitted"));
    let own: Vec<Incoming> = (0..256u32)
        .map(|i| {
            let mut rid = [1u8; 16];
            rid[..4].copy_from_slice(&i.to_be_bytes());
            admitted.method(RecordId(rid), "Egen")
        })
        .collect();
    let t0 = std::time::Instant::now();
    let out = store
        .apply(
            own,
            ApplyOptions {
                expected_author: Some(stranger.key.node_id()),
                ..opts()
            },
        )
        .unwrap();
    let wrong_author = t0.elapsed();
    assert!(out.iter().all(|o| refused(o) == "wrong_author"));
    assert_eq!(store.refusals().unwrap().get("not_admitted"), Some(&256));
    assert_eq!(store.refusals().unwrap().get("wrong_author"), Some(&256));
    eprintln!("256 refused entries: not admitted {not_admitted:?}, wrong author {wrong_author:?}");
}

/// An author's own entries never go back in time (issue 9): a region whose clock went back
/// signs with its last entry's time instead, for publishes and deletes alike.
#[test]
fn own_entries_never_go_back_in_time() {
    use spindel_node::local::{self, LocalNode, Role};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("skane");
    local::init(&dir, "skane", Role::Region, None, &mut rand_core::OsRng).unwrap();
    let node = LocalNode::open(&dir).unwrap();
    let me = node.node_id();
    let method = r#"{"title":"t","summary":"s"}"#;
    // After the profile init signed (with the real clock).
    let base = local::now_ms() + 1_000;
    let time_of = |seq: u64| node.entry(&me, seq).unwrap().unwrap().header().timestamp_ms;
    let p = node
        .publish(Kind::Method, method, None, &mut rand_core::OsRng, base)
        .unwrap();
    // The clock goes back an hour.
    let q = node
        .publish(
            Kind::Method,
            method,
            None,
            &mut rand_core::OsRng,
            base - 3_600_000,
        )
        .unwrap();
    assert_eq!(time_of(q.seq), time_of(p.seq));
    let rid: RecordId = q.record_id.parse().unwrap();
    let d = node.delete(rid, base - 7_200_000).unwrap();
    assert_eq!(time_of(d.seq), base);
    // Forward again: its own time.
    let r = node
        .publish(Kind::Method, method, None, &mut rand_core::OsRng, base + 1)
        .unwrap();
    assert_eq!(time_of(r.seq), base + 1);
}

/// The payload quota's count follows new records, new versions (also without their payload:
/// the signed length counts) and tombstones, agrees with a count from the records, and survives
/// a reopen.
#[test]
fn payload_bytes_follow_current_versions() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Author::new(7);
    let mut b = Author::new(8);
    let (ia, ib) = (a.key.node_id(), b.key.node_id());
    let len = |i: &Incoming| u64::from(i.entry.header().payload_len);
    let kept = {
        let store = Store::open(dir.path()).unwrap();
        store.admit(&ia, None).unwrap();
        store.admit(&ib, None).unwrap();
        let r1 = a.method(RecordId([1; 16]), "Första");
        let r2 = a.method(RecordId([2; 16]), "Andra posten med längre titel");
        let rb = b.method(RecordId([1; 16]), "Annan region");
        let (l1, l2, lb) = (len(&r1), len(&r2), len(&rb));
        store.apply(vec![r1, r2, rb], opts()).unwrap();
        assert_eq!(store.payload_bytes_of(&ia).unwrap(), l1 + l2);
        assert_eq!(store.payload_bytes_of(&ib).unwrap(), lb);

        let v2 = a.method(
            RecordId([1; 16]),
            "Första, rättad och mycket längre än förut",
        );
        let l1b = len(&v2);
        let mut v3 = a.method(RecordId([2; 16]), "Andra");
        let l2b = len(&v3);
        v3.payload = None; // arrives without its payload: its signed length counts
        store.apply(vec![v2, v3], opts()).unwrap();
        assert_eq!(store.payload_bytes_of(&ia).unwrap(), l1b + l2b);

        let h = next_header(ia, a.head, NOW, Kind::Method, RecordId([1; 16]), None);
        let t = Entry::sign(&a.key, h);
        a.head = Some(Head {
            seq: t.header().seq,
            hash: t.hash(),
        });
        let outcome = store
            .apply(
                vec![Incoming {
                    entry: t,
                    payload: None,
                }],
                opts(),
            )
            .unwrap();
        assert_eq!(outcome, vec![Outcome::Accepted]);
        assert_eq!(store.payload_bytes_of(&ia).unwrap(), l2b);
        let recount = store.recount_payload_bytes().unwrap();
        assert_eq!(recount.get(&ia), Some(&l2b));
        assert_eq!(recount.get(&ib), Some(&lb));
        (l2b, lb)
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.payload_bytes_of(&ia).unwrap(), kept.0);
    assert_eq!(store.payload_bytes_of(&ib).unwrap(), kept.1);
}

/// A store from before the payload count (format 2, no `B` keys) is counted on open and marked
/// format 4, so a binary that does not keep the count (it reads format 2) cannot open it and
/// let the count go stale; formats older than 2 and newer than this binary's are refused by
/// name.
#[test]
fn a_format_2_store_is_counted_and_upgraded_and_other_formats_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Author::new(9);
    let ia = a.key.node_id();
    let total = {
        let store = Store::open(dir.path()).unwrap();
        store.admit(&ia, None).unwrap();
        let r1 = a.method(RecordId([1; 16]), "Första");
        let r2 = a.method(RecordId([2; 16]), "Andra");
        store.apply(vec![r1, r2], opts()).unwrap();
        store.payload_bytes_of(&ia).unwrap()
    };
    assert!(total > 0);
    let set_format = |format: u64, drop_counts: bool| {
        let db = sled::open(dir.path().join("store")).unwrap();
        db.insert(b"Mformat", &format.to_be_bytes()[..]).unwrap();
        if drop_counts {
            for k in db.scan_prefix([b'B']).keys() {
                db.remove(k.unwrap()).unwrap();
            }
        }
        db.flush().unwrap();
    };
    let format_now = || {
        let db = sled::open(dir.path().join("store")).unwrap();
        let v = db.get(b"Mformat").unwrap().unwrap();
        u64::from_be_bytes(v.as_ref().try_into().unwrap())
    };
    assert_eq!(format_now(), spindel_node::store::STORE_FORMAT);

    set_format(2, true);
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.payload_bytes_of(&ia).unwrap(), total);
    }
    assert_eq!(format_now(), 4);

    set_format(5, false);
    let Err(newer) = Store::open(dir.path()) else {
        panic!("a newer format is refused");
    };
    assert!(
        matches!(newer, StoreError::NewerFormat { found: 5, .. }),
        "{newer}"
    );
    assert!(newer.to_string().contains("newer spindel"), "{newer}");

    set_format(1, false);
    let Err(older) = Store::open(dir.path()) else {
        panic!("an older format is refused");
    };
    assert!(
        matches!(older, StoreError::OldFormat { found: 1, .. }),
        "{older}"
    );
}

/// Format 4 keeps the signed entries in the packs, `L` saying where in 16 bytes; a format-3
/// store (the entries themselves under `L`) is opened and marked 4 without a rewrite, and its
/// old entries are served beside new ones, byte for byte, also by the versions index rebuilt
/// from them.
#[test]
fn entries_live_in_the_packs_and_a_format_3_stores_entries_are_read_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Author::new(12);
    let ia = a.key.node_id();
    let rid = RecordId([1; 16]);
    let first: Vec<Incoming> = (0..3)
        .map(|i| a.method(rid, &format!("Version {i}")))
        .collect();
    let wire = |inc: &Incoming| spindel_protocol::codec::encode(&inc.entry.to_wire());
    {
        let store = Store::open(dir.path()).unwrap();
        store.admit(&ia, None).unwrap();
        store.apply(first.clone(), opts()).unwrap();
    }
    let sled_dir = dir.path().join("store");
    let log_values = || log_values_of(&sled::open(&sled_dir).unwrap());
    // Format 4: sled holds where each entry is, not the entry.
    let refs = log_values();
    assert_eq!(refs.len(), 3);
    assert!(refs.iter().all(|v| v.len() == 16), "{refs:?}");
    // Made a format-3 store: every entry under its `L` key, the versions index gone.
    {
        let db = sled::open(&sled_dir).unwrap();
        for inc in &first {
            let mut k = vec![b'L'];
            k.extend_from_slice(&ia.0);
            k.extend_from_slice(&inc.entry.header().seq.to_be_bytes());
            db.insert(k, wire(inc)).unwrap();
        }
        for k in db.scan_prefix([b'E']).keys() {
            db.remove(k.unwrap()).unwrap();
        }
        db.remove(b"Mhistory").unwrap();
        db.insert(b"Mformat", &3u64.to_be_bytes()[..]).unwrap();
        db.flush().unwrap();
    }
    assert!(log_values().iter().all(|v| v.len() > 16));
    let later = a.method(rid, "Version 3");
    {
        let store = Store::open(dir.path()).unwrap();
        store.apply(vec![later.clone()], opts()).unwrap();
        let served = store.entries_from(&ia, 1, 10).unwrap();
        let all: Vec<&Incoming> = first.iter().chain([&later]).collect();
        assert_eq!(served.len(), 4);
        for (got, sent) in served.iter().zip(&all) {
            assert_eq!(wire(got), wire(sent));
        }
        assert_eq!(
            store.entry(&ia, 2).unwrap().map(|e| e.hash()),
            Some(first[1].entry.hash())
        );
        // The versions index was rebuilt from the old entries and the new one numbered after.
        let versions: Vec<u64> = store
            .versions(&ia, &rid)
            .unwrap()
            .iter()
            .map(|v| v.number)
            .collect();
        assert_eq!(versions, vec![1, 2, 3, 4]);
    }
    let mut db = sled::open(&sled_dir).unwrap();
    let format = db.get(b"Mformat").unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(format.as_ref().try_into().unwrap()), 4);
    assert_eq!(
        log_values_of(&db)
            .iter()
            .map(|v| v.len() == 16)
            .collect::<Vec<_>>(),
        vec![false, false, false, true]
    );
    // A damaged reference is refused by name: one naming more bytes than an entry can have
    // (nothing that long is read), and one naming another seq's entry.
    let mut k4 = vec![b'L'];
    k4.extend_from_slice(&ia.0);
    k4.extend_from_slice(&4u64.to_be_bytes());
    let good = db.get(&k4).unwrap().unwrap().to_vec();
    let mut long = good.clone();
    let over = spindel_protocol::entry::WIRE_ENTRY_BYTES_MAX as u32 + 1;
    long[12..].copy_from_slice(&over.to_be_bytes());
    let mut k3 = k4.clone();
    k3[33..].copy_from_slice(&3u64.to_be_bytes());
    let inline3 = db.get(&k3).unwrap().unwrap().to_vec();
    for (value, at, says) in [
        (long, &k4, "over"),
        (good.clone(), &k3, "another author's or seq's"),
    ] {
        db.insert(at, value).unwrap();
        db.flush().unwrap();
        drop(db);
        let seq = u64::from_be_bytes(at[33..].try_into().unwrap());
        let store = Store::open(dir.path()).unwrap();
        let err = store.entry(&ia, seq).unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
        drop(store);
        let db2 = sled::open(&sled_dir).unwrap();
        db2.insert(&k4, good.clone()).unwrap();
        db2.insert(&k3, inline3.clone()).unwrap();
        db2.flush().unwrap();
        drop(db2);
        db = sled::open(&sled_dir).unwrap();
    }
}

fn log_values_of(db: &sled::Db) -> Vec<Vec<u8>> {
    db.scan_prefix([b'L'])
        .values()
        .map(|v| v.unwrap().to_vec())
        .collect()
}

/// A record's versions are counted from the log: 1, 2, 3 whatever else the author published
/// between them, a removal included. A store written by a binary that does not keep the index
/// (the generation moved without it) has it rebuilt on open.
#[test]
fn a_records_versions_are_its_own_and_rebuilt_after_an_older_binary() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Author::new(11);
    let ia = a.key.node_id();
    let (one, other) = (RecordId([1; 16]), RecordId([2; 16]));
    let versions = |store: &Store| -> Vec<(u64, u64)> {
        store
            .versions(&ia, &one)
            .unwrap()
            .iter()
            .map(|v| (v.number, v.seq))
            .collect()
    };
    {
        let store = Store::open(dir.path()).unwrap();
        store.admit(&ia, None).unwrap();
        let batch = vec![
            a.method(one, "v1"),
            a.method(other, "annan"),
            a.method(one, "v2"),
        ];
        store.apply(batch, opts()).unwrap();
        assert_eq!(versions(&store), [(1, 1), (2, 3)]);
        assert_eq!(store.version_number(&ia, &one, 3).unwrap(), 2);
        assert_eq!(store.version_number(&ia, &other, 2).unwrap(), 1);
    }
    // An older binary writes a third version: it moves the generation, not the index.
    {
        let store = Store::open(dir.path()).unwrap();
        store.apply(vec![a.method(one, "v3")], opts()).unwrap();
    }
    {
        let db = sled::open(dir.path().join("store")).unwrap();
        for k in db.scan_prefix([b'E']).keys() {
            let k = k.unwrap();
            if k.ends_with(&4u64.to_be_bytes()) {
                db.remove(k).unwrap();
            }
        }
        let stale = 3u64.to_be_bytes();
        db.insert(b"Mhistory", &stale[..]).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(versions(&store), [(1, 1), (2, 3), (3, 4)]);
    let removed = store.versions(&ia, &other).unwrap();
    assert_eq!(removed.len(), 1);
    assert!(!removed[0].removed);
}

/// An import that would take its region over the payload quota is refused before its commit
/// point, naming the line, with nothing of it applied (once committed, a refusal of one of its
/// chunks could no longer undo the chunks before); the region can still write (delete frees
/// room).
#[test]
fn an_import_over_the_payload_quota_is_refused_whole_before_its_commit() {
    use spindel_node::local::{ImportSource, LocalNode, NodeError, Role, init_open};
    use spindel_protocol::ingest::AUTHOR_PAYLOAD_BYTES_MAX;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("skane");
    let lines: String = (0..3)
        .map(|i| format!("{{\"title\":\"Metod {i}\",\"summary\":\"Samma längd\"}}\n"))
        .collect();
    let (me, one, first) = {
        let node = init_open(&dir, "skane", Role::Region, None, &mut rand_core::OsRng).unwrap();
        let me = node.node_id();
        let before = node.payload_bytes_of(&me).unwrap();
        node.import(
            Kind::Method,
            ImportSource::Text(&lines),
            &mut rand_core::OsRng,
            NOW,
            &|_, _| {},
        )
        .unwrap();
        let one = (node.payload_bytes_of(&me).unwrap() - before) / 3;
        let first = node
            .records_of(&me)
            .unwrap()
            .into_iter()
            .find(|(_, m)| m.kind == Kind::Method)
            .unwrap()
            .0;
        (me, one, first)
    };
    // The region's current records hold all but one and a half lines' worth of the quota.
    {
        let db = sled::open(dir.join("store")).unwrap();
        let mut k = vec![b'B'];
        k.extend_from_slice(&me.0);
        let near = AUTHOR_PAYLOAD_BYTES_MAX - one - one / 2;
        db.insert(k, &near.to_be_bytes()[..]).unwrap();
        db.flush().unwrap();
    }
    let node = LocalNode::open(&dir).unwrap();
    let head = node.head(&me).unwrap();
    let refused = node
        .import(
            Kind::Method,
            ImportSource::Text(&lines),
            &mut rand_core::OsRng,
            NOW + 1,
            &|_, _| {},
        )
        .unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains("line 2")
            && text.contains("over the limit")
            && text.contains("nothing was imported"),
        "{text}"
    );
    assert!(
        matches!(refused, NodeError::ImportRefusedAt { line: 2, .. }),
        "{refused:?}"
    );
    assert_eq!(node.head(&me).unwrap(), head);
    assert_eq!(node.visible_count_of(&me).unwrap(), 4);
    for name in ["import.staging", "import.committed", "import.applied"] {
        assert!(!dir.join(name).exists(), "{name} left behind");
    }
    node.delete(first, NOW + 2).unwrap();
}

/// The lines signed are the lines validated: a file that changes between the two passes (a
/// line edited, or one added) is refused with nothing written.
#[test]
fn an_import_file_that_changes_while_it_is_imported_is_refused() {
    use spindel_node::local::{ImportSource, init_open};
    let tmp = tempfile::tempdir().unwrap();
    let node = init_open(
        &tmp.path().join("skane"),
        "skane",
        spindel_node::local::Role::Region,
        None,
        &mut rand_core::OsRng,
    )
    .unwrap();
    let me = node.node_id();
    let head = node.head(&me).unwrap();
    let file = tmp.path().join("metoder.jsonl");
    let line =
        |i: usize, word: &str| format!("{{\"title\":\"Metod {i:04}\",\"summary\":\"{word}\"}}\n");
    let lines: String = (0..1500).map(|i| line(i, "Först")).collect();
    let edited = lines.replace(&line(1499, "Först"), &line(1499, "Sedan"));
    let appended = format!("{lines}{}", line(1500, "Extra"));
    for (what, changed) in [("edited", &edited), ("appended", &appended)] {
        std::fs::write(&file, &lines).unwrap();
        let refused = node
            .import(
                Kind::Method,
                ImportSource::File {
                    path: &file,
                    name: "metoder.jsonl",
                },
                &mut rand_core::OsRng,
                NOW,
                &|done, _| {
                    if done == 1000 {
                        std::fs::write(&file, changed).unwrap();
                    }
                },
            )
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("metoder.jsonl: it changed while it was imported"),
            "{what}: {refused}"
        );
        assert_eq!(node.head(&me).unwrap(), head, "{what}");
    }
}
