//! A second aggregator started from another (decision 0040): real `spindel run` processes on
//! 127.0.0.1. A mirror allowed by its upstream (`allow --mirror`) and started with
//! `--aggregator UPSTREAM` holds the whole aggregate, sends back what only it received, and
//! takes over when the upstream is gone; a third aggregator can be started from it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use spindel_tests::{
    NodeProc, disallow, eventually, heads, init, init_network, publish_run, records_by_region, s,
    spindel,
};

/// How long a record may take to travel in these tests (a deadline, not a wait).
const TRAVEL_S: u64 = 30;

fn publish(dir: &Path, title: &str) -> String {
    let json =
        serde_json::json!({"title": title, "summary": "Samverkan mellan regionerna"}).to_string();
    let run = publish_run(dir, "method", &json);
    assert_eq!(run.code, 0, "{run:?}");
    run.json()["record_id"].as_str().unwrap().to_string()
}

fn status(dir: &Path) -> serde_json::Value {
    spindel(&["status", "--data-dir", s(dir), "--json"]).json()
}

/// `dir` holds the logs of `authors` as far as `reference` does (`reference`'s heads).
fn holds(dir: &Path, reference: &BTreeMap<String, u64>, authors: &[&str]) -> bool {
    let here = heads(dir);
    authors
        .iter()
        .all(|a| reference.get(*a).is_some_and(|h| here.get(*a) == Some(h)))
}

fn allow_mirror(upstream: &Path, id: &str) -> serde_json::Value {
    spindel(&["allow", "--data-dir", s(upstream), id, "--mirror", "--json"]).json()
}

/// The brief's scenario: A1 with regions R1 and R2; A2 started from A1 holds everything and
/// passes on what only it received; A1 is killed and its directory removed; A3 started from A2
/// holds the whole aggregate, and a record R1 publishes reaches A2, A3 and R2.
#[test]
fn a_mirror_holds_the_aggregate_and_takes_over_from_its_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    let (a1_dir, a1_id, [(r1_dir, r1_id), (r2_dir, r2_id)]) =
        init_network(tmp.path(), ["skane", "dalarna"]);
    let a1 = NodeProc::start(&a1_dir, &["--listen", "127.0.0.1:0"]);
    let a1_peer = a1.peer(&a1_id);
    let r1 = NodeProc::start(&r1_dir, &["--aggregator", &a1_peer]);
    let r2 = NodeProc::start(&r2_dir, &["--aggregator", &a1_peer]);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(publish(&r1_dir, &format!("Skåne {i}")));
        ids.push(publish(&r2_dir, &format!("Dalarna {i}")));
    }
    let regions = [r1_id.as_str(), r2_id.as_str()];
    eventually(TRAVEL_S, "R1's and R2's records at A1", || {
        let h = heads(&a1_dir);
        h.get(&r1_id) == Some(&4) && h.get(&r2_id) == Some(&4)
    });

    // A2, allowed by A1's operator as a mirror (while A1 runs), started from A1.
    let (a2_dir, a2_id) = init(tmp.path(), "reserv", "aggregator");
    let allowed = allow_mirror(&a1_dir, &a2_id);
    assert_eq!(allowed["mirror"], true);
    assert_eq!(allowed["name"], serde_json::Value::Null);
    let a2 = NodeProc::start(
        &a2_dir,
        &["--listen", "127.0.0.1:0", "--aggregator", &a1_peer],
    );
    let a2_peer = a2.peer(&a2_id);
    let reference = heads(&a1_dir);
    eventually(TRAVEL_S, "every record of R1 and R2 at A2", || {
        holds(&a2_dir, &reference, &regions)
    });
    // Under the names A1 admitted them with: A2 took A1's list as its own.
    let at_a2 = records_by_region(&a2_dir);
    for id in &ids {
        assert!(at_a2.contains_key(id), "{id} missing at A2");
    }
    assert!(
        at_a2.values().all(|n| n == "skane" || n == "dalarna"),
        "{at_a2:?}"
    );
    assert_eq!(at_a2.values().filter(|n| *n == "skane").count(), 4);
    // A mirror is no region: not in A1's authors (nor the list regions see), a peer of role
    // mirror; A2 names no region of its own.
    let st = status(&a1_dir);
    let authors = st["authors"].as_array().unwrap();
    assert!(!authors.iter().any(|a| a["node_id"] == a2_id.as_str()));
    let peers = st["peers"].as_array().unwrap();
    assert!(
        peers.iter().any(|p| p["node_id"] == a2_id.as_str()
            && p["role"] == "mirror"
            && p["connected"] == true),
        "{peers:?}"
    );
    assert!(!heads(&r1_dir).contains_key(&a2_id));

    // R1 pins both; R2 pins only the mirror, and what it publishes reaches A1 through A2.
    drop(r1);
    drop(r2);
    let r1 = NodeProc::start(
        &r1_dir,
        &["--aggregator", &a1_peer, "--aggregator", &a2_peer],
    );
    let r2 = NodeProc::start(&r2_dir, &["--aggregator", &a2_peer]);
    let via_mirror = publish(&r2_dir, "Bara via reserven");
    eventually(TRAVEL_S, "R2's record at A1 through the mirror", || {
        records_by_region(&a1_dir).contains_key(&via_mirror)
    });
    eventually(TRAVEL_S, "R2's record at R1", || {
        records_by_region(&r1_dir).contains_key(&via_mirror)
    });

    // A1 is gone for good: kill -9, its directory removed.
    a1.kill9();
    std::fs::remove_dir_all(&a1_dir).unwrap();

    // A3, a new aggregator started from A2, holds the whole aggregate.
    let (a3_dir, a3_id) = init(tmp.path(), "reserv-tva", "aggregator");
    assert_eq!(allow_mirror(&a2_dir, &a3_id)["mirror"], true);
    let a3 = NodeProc::start(
        &a3_dir,
        &["--listen", "127.0.0.1:0", "--aggregator", &a2_peer],
    );
    let reference = heads(&a2_dir);
    eventually(TRAVEL_S, "the whole aggregate at A3", || {
        holds(&a3_dir, &reference, &regions)
    });
    assert_eq!(records_by_region(&a3_dir), records_by_region(&a2_dir));

    // R1 publishes: it reaches A2, A3 and R2 (which pinned A2 only).
    let late = publish(&r1_dir, "Efter bytet");
    for (dir, what) in [(&a2_dir, "A2"), (&a3_dir, "A3"), (&r2_dir, "R2")] {
        eventually(TRAVEL_S, &format!("R1's new record at {what}"), || {
            records_by_region(dir).get(&late).map(String::as_str) == Some("skane")
        });
    }
    // Every node's audit stays clean: R1 witnessed both aggregators, A2 its upstream, A3
    // A2; the survivor's newest checkpoint holds the late record, cosigned by both regions.
    eventually(
        TRAVEL_S,
        "A2's checkpoint with the late record cosigned by R1 and R2",
        || {
            let r = audit_json(&r1_dir);
            r["aggregators"].as_array().unwrap().iter().any(|a| {
                a["aggregator"] == a2_id.as_str()
                    && a["latest"]["heads"].as_array().is_some_and(|h| {
                        h.iter()
                            .any(|h| h["region"] == r1_id.as_str() && h["seq"] == 5)
                    })
                    && a["latest"]["cosigned_by"]
                        .as_array()
                        .is_some_and(|c| c.len() == 2)
            })
        },
    );
    let witnessed: Vec<String> = audit_json(&r1_dir)["aggregators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["aggregator"].as_str().unwrap().to_string())
        .collect();
    assert!(
        witnessed.contains(&a1_id) && witnessed.contains(&a2_id),
        "{witnessed:?}"
    );
    for dir in [&r1_dir, &r2_dir, &a2_dir, &a3_dir] {
        let run = spindel(&["audit", "--data-dir", s(dir)]);
        assert_eq!(run.code, 0, "{}: {}", dir.display(), run.stdout);
    }
    for p in [r1, r2, a3, a2] {
        assert_eq!(p.terminate(10), 0);
    }
}

fn audit_json(dir: &Path) -> serde_json::Value {
    let run = spindel(&["audit", "--data-dir", s(dir), "--json"]);
    serde_json::from_str(&run.stdout).unwrap()
}

/// Only an aggregator its upstream's operator allowed mirrors it: another is refused with a
/// clear error and gets nothing; `disallow` ends a mirror; every bad input is one line and a
/// non-zero exit.
#[test]
fn an_aggregator_not_allowed_as_mirror_is_refused_and_disallow_ends_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (a1_dir, a1_id, [(r1_dir, r1_id)]) = init_network(tmp.path(), ["skane"]);
    let (a2_dir, a2_id) = init(tmp.path(), "okand", "aggregator");
    let (a3_dir, a3_id) = init(tmp.path(), "reserv", "aggregator");
    let a1 = NodeProc::start(&a1_dir, &["--listen", "127.0.0.1:0"]);
    let a1_peer = a1.peer(&a1_id);
    let r1 = NodeProc::start(&r1_dir, &["--aggregator", &a1_peer]);
    publish(&r1_dir, "Före");

    // Not allowed: refused at its hello, told how, holds nothing of the region.
    let a2 = NodeProc::start(
        &a2_dir,
        &["--listen", "127.0.0.1:0", "--aggregator", &a1_peer],
    );
    eventually(TRAVEL_S, "A2 refused as a mirror", || {
        status(&a2_dir)["peers"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not allowed to mirror") && e.contains("--mirror"))
    });
    assert!(!heads(&a2_dir).contains_key(&r1_id));
    assert!(
        a1.log()
            .lines()
            .any(|l| l.contains("refused a sync session") && l.contains(&a2_id)),
        "{}",
        a1.log()
    );

    // Allowed: `spindel sync` bootstraps it once (a one-shot mirror session), then it runs.
    allow_mirror(&a1_dir, &a3_id);
    let synced = spindel(&[
        "sync",
        "--data-dir",
        s(&a3_dir),
        "--aggregator",
        &a1_peer,
        "--json",
    ]);
    assert_eq!(synced.code, 0, "{synced:?}");
    assert_eq!(heads(&a3_dir).get(&r1_id), Some(&2));
    // Then disallowed: its session ends, and later records stay away from it.
    let a3 = NodeProc::start(
        &a3_dir,
        &["--listen", "127.0.0.1:0", "--aggregator", &a1_peer],
    );
    eventually(TRAVEL_S, "R1's log at A3", || {
        heads(&a3_dir).get(&r1_id) == Some(&2)
    });
    let gone = disallow(&a1_dir, &a3_id).json();
    assert_eq!(gone["mirror"], true);
    assert_eq!(gone["admitted"], false);
    eventually(TRAVEL_S, "A3's link ended by the disallow", || {
        status(&a3_dir)["peers"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no longer allowed to mirror"))
    });
    publish(&r1_dir, "Efter");
    eventually(TRAVEL_S, "the new record at A1", || {
        heads(&a1_dir).get(&r1_id) == Some(&3)
    });
    assert_eq!(heads(&a3_dir).get(&r1_id), Some(&2));

    // Bad inputs: one line, non-zero exit, nothing changed.
    disallow(&a1_dir, &a3_id).fails(1, "not admitted here");
    spindel(&["allow", "--data-dir", s(&a1_dir), &r1_id, "--mirror"])
        .fails(1, "admitted here as a region");
    allow_mirror(&a1_dir, &a3_id);
    spindel(&[
        "allow",
        "--data-dir",
        s(&a1_dir),
        &a3_id,
        "--name",
        "reserv",
    ])
    .fails(1, "allowed here as a mirror aggregator");
    spindel(&["allow", "--data-dir", s(&r1_dir), &a3_id, "--mirror"])
        .fails(1, "only an aggregator");
    spindel(&["allow", "--data-dir", s(&a1_dir), &a1_id, "--mirror"]).fails(1, "own key");
    let both = spindel(&[
        "allow",
        "--data-dir",
        s(&a1_dir),
        &a3_id,
        "--mirror",
        "--name",
        "x",
    ]);
    assert_eq!(both.code, 2, "{both:?}");
    drop(a3);
    let two = spindel(&[
        "run",
        "--data-dir",
        s(&a3_dir),
        "--listen",
        "127.0.0.1:0",
        "--aggregator",
        &a1_peer,
        "--aggregator",
        &a1_peer,
    ]);
    two.fails(1, "at most one upstream aggregator");
    for p in [a2, r1, a1] {
        assert_eq!(p.terminate(10), 0);
    }
}
