//! The store ingesting other authors' entries (as an aggregator does): admission, refusal
//! counters, fork proofs and freezing, all-or-nothing batches, purged payloads. Real sled and
//! tantivy files on disk; entries built and signed through the protocol library.

#![allow(clippy::unwrap_used, clippy::expect_used)]

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
        let payload = Payload::seal(&mut rand_core::OsRng, body);
        let h = next_header(
            self.key.node_id(),
            self.head,
            NOW,
            Kind::Method,
            rid,
            Some(&payload),
        );
        let entry = Entry::sign(&self.key, h);
        self.head = Some(Head {
            seq: entry.header().seq,
            hash: entry.hash(),
        });
        Incoming {
            entry,
            payload: Some(payload),
        }
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
