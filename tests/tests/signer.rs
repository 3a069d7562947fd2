//! One key, one live signer; an aggregator that keeps every region in view; one-shot clients
//! that leave nothing behind. Real `spindel run` processes over QUIC on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use spindel_tests::{
    NodeProc, eventually, http_get, init_network, metric, publish_run, s, spindel,
};

fn publish(dir: &Path, title: &str) -> spindel_tests::Run {
    let json =
        serde_json::json!({"title": title, "summary": "Lärande mellan föreningar i regionen"})
            .to_string();
    publish_run(dir, "method", &json)
}

fn status(dir: &Path) -> serde_json::Value {
    spindel(&["status", "--data-dir", s(dir), "--json"]).json()
}

/// The region in `dir` has a live link to its aggregator.
fn linked(dir: &Path) -> bool {
    status(dir)["peers"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["connected"] == true))
}

fn titles(dir: &Path) -> Vec<String> {
    spindel(&[
        "query",
        "--data-dir",
        s(dir),
        "--json",
        "--limit",
        "1000",
        "--kind",
        "method",
    ])
    .json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"]["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn forks(dir: &Path) -> usize {
    status(dir)["forks"].as_array().map_or(0, Vec::len)
}

/// Two live copies of one region's data directory against one aggregator: the aggregator
/// takes the first copy's session and refuses the second's, naming the first; the second
/// signs nothing (a clear one-line error, and `status` says why), no node sees a fork, and the
/// first keeps publishing. Once the first stops, the second's next session is taken and it
/// signs again after catching up, still without a fork.
#[test]
fn a_second_live_copy_of_a_key_is_refused_and_signs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(a_dir, a_id)]) = init_network(tmp.path(), ["skane"]);
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let a = NodeProc::start(&a_dir, &["--aggregator", &peer]);
    publish(&a_dir, "Före kopian").ok();
    eventually(20, "the first record at the aggregator", || {
        titles(&agg_dir).len() == 1
    });
    assert_eq!(a.terminate(10), 0);
    // The operator's mistake: a copy of the stopped region's directory, then both started.
    let b_dir = tmp.path().join("skane-kopia");
    let cp = std::process::Command::new("cp")
        .args(["-a", s(&a_dir), s(&b_dir)])
        .status()
        .unwrap();
    assert!(cp.success());
    let a = NodeProc::start(&a_dir, &["--aggregator", &peer]);
    eventually(20, "the first copy linked", || linked(&a_dir));
    let started = Instant::now();
    let b = NodeProc::start(&b_dir, &["--aggregator", &peer]);
    eventually(20, "the second copy told of the first", || {
        status(&b_dir)["other_copy"].is_string()
    });
    eprintln!(
        "the second copy was refused {} ms after it was started",
        started.elapsed().as_millis()
    );
    let why = status(&b_dir)["other_copy"].as_str().unwrap().to_string();
    assert!(
        why.contains(
            "another copy of this node's key is connected to the aggregator at 127.0.0.1:"
        ),
        "{why}"
    );
    let text = spindel(&["status", "--data-dir", s(&b_dir)])
        .ok()
        .stdout
        .clone();
    assert!(text.contains("COPY      this node signs nothing"), "{text}");

    // Both publish at the same moment: only the first copy signs.
    let (ra, rb) = std::thread::scope(|sc| {
        let ta = sc.spawn(|| publish(&a_dir, "Från originalet"));
        let tb = sc.spawn(|| publish(&b_dir, "Från kopian"));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    ra.ok();
    rb.fails(
        1,
        "another copy of this node's key is connected to the aggregator at 127.0.0.1:",
    );
    assert!(rb.stderr.contains("since 20"), "{}", rb.stderr);
    // A one-shot query with the same key is no sync session: it is answered.
    let q = spindel(&[
        "query",
        "--from",
        &peer,
        "--data-dir",
        s(&b_dir),
        "--json",
        "--kind",
        "method",
    ]);
    q.json();
    eventually(20, "the first copy's record at the aggregator", || {
        titles(&agg_dir).contains(&"Från originalet".to_string())
    });
    publish(&a_dir, "Originalet igen").ok();
    eventually(20, "the first copy keeps publishing", || {
        titles(&agg_dir).len() == 3
    });
    assert!(!titles(&agg_dir).contains(&"Från kopian".to_string()));
    let (_, m) = http_get(agg.metrics.unwrap(), "/metrics");
    assert!(
        metric(&m, "spindel_sessions_refused_other_copy_total").is_some_and(|n| n >= 1.0),
        "{m}"
    );
    // The first copy's session was never disturbed, and the refusal is logged once.
    let log = agg.log();
    assert_eq!(
        log.matches("this key already has a live session here")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("region linked").count(), 2, "{log}");
    assert!(!log.contains("(code 0)"), "{log}");
    for dir in [&agg_dir, &a_dir, &b_dir] {
        assert_eq!(forks(dir), 0, "a fork at {}", dir.display());
    }

    // The first copy stops: the second's next session is taken, it catches up with what the
    // first signed and then signs after it.
    assert_eq!(a.terminate(10), 0);
    eventually(30, "the second copy signs again", || {
        status(&b_dir).get("other_copy").is_none() && linked(&b_dir)
    });
    let r = publish(&b_dir, "Kopian efter originalet");
    r.ok();
    eventually(20, "the second copy's record at the aggregator", || {
        titles(&agg_dir).len() == 4
    });
    for dir in [&agg_dir, &b_dir] {
        assert_eq!(forks(dir), 0, "a fork at {}", dir.display());
    }
    assert_eq!(
        status(&agg_dir)["heads"][&a_id],
        status(&b_dir)["heads"][&a_id]
    );
    drop(b);
}

/// The aggregator keeps every admitted region in `status` and `/metrics`, connected or not,
/// under its admitted name: a region killed with SIGKILL shows `spindel_peer_connected ... 0`
/// once its link is found dead, with when it was last seen; one never started shows 0 too.
#[test]
fn a_lost_region_stays_in_view_at_the_aggregator() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(a_dir, a_id), (_d_dir, d_id)]) =
        init_network(tmp.path(), ["skane", "dalarna"]);
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"],
    );
    let ops = agg.metrics.expect("metrics listener");
    let a = NodeProc::start(&a_dir, &["--aggregator", &agg.peer(&agg_id)]);
    let series = |id: &str, name: &str| {
        format!(
            "spindel_peer_connected{{peer=\"{}\",name=\"{name}\",role=\"region\"}}",
            &id[..16]
        )
    };
    let connected = |id: &str, name: &str| metric(&http_get(ops, "/metrics").1, &series(id, name));
    eventually(20, "skane connected at the aggregator", || {
        connected(&a_id, "skane") == Some(1.0)
    });
    assert_eq!(connected(&d_id, "dalarna"), Some(0.0));
    let m = http_get(ops, "/metrics").1;
    assert!(
        m.contains(&format!(
            "spindel_peer_last_seen_seconds{{peer=\"{}\",name=\"skane\",role=\"region\"}}",
            &a_id[..16]
        )),
        "{m}"
    );
    let killed = Instant::now();
    a.kill9();
    eventually(20, "skane shown as not connected", || {
        connected(&a_id, "skane") == Some(0.0)
    });
    eprintln!(
        "spindel_peer_connected went to 0 {} ms after kill -9",
        killed.elapsed().as_millis()
    );
    let st = status(&agg_dir);
    let peers = st["peers"].as_array().unwrap();
    let skane = peers
        .iter()
        .find(|p| p["node_id"] == a_id.as_str())
        .expect("skane still listed");
    assert_eq!(skane["connected"], false);
    assert_eq!(skane["name"], "skane");
    assert!(skane["last_seen_ms"].as_u64().is_some(), "{skane}");
    assert!(
        peers
            .iter()
            .any(|p| p["node_id"] == d_id.as_str() && p["connected"] == false),
        "{st}"
    );
    let text = spindel(&["status", "--data-dir", s(&agg_dir)])
        .ok()
        .stdout
        .clone();
    assert!(text.contains("skane"), "{text}");
    let log = agg.log();
    assert!(log.contains("region linked"), "{log}");
    assert!(log.contains("region unlinked"), "{log}");
    // A normal end is no error.
    assert!(!log.contains("(code 0)"), "{log}");

    // A region restarted at once after a crash, before the aggregator noticed its old
    // connection dead, is no second copy: its old, silent session gives way and it publishes.
    let a = NodeProc::start(&a_dir, &["--aggregator", &agg.peer(&agg_id)]);
    eventually(20, "skane connected again", || {
        connected(&a_id, "skane") == Some(1.0)
    });
    a.kill9();
    let restarted = Instant::now();
    let _a = NodeProc::start(&a_dir, &["--aggregator", &agg.peer(&agg_id)]);
    publish(&a_dir, "Efter omstarten").ok();
    eprintln!(
        "a region restarted right after kill -9 published {} ms after its start",
        restarted.elapsed().as_millis()
    );
    assert!(status(&a_dir).get("other_copy").is_none());
    eventually(20, "the record at the aggregator", || {
        titles(&agg_dir).contains(&"Efter omstarten".to_string())
    });
    assert!(
        agg.log().contains("its new session takes its place"),
        "{}",
        agg.log()
    );
}

/// One-shot queries leave nothing behind at the aggregator: 100 `spindel query --from`
/// processes in a row, each as the member whose node runs, all answered (each held one of
/// the key's connection slots until the aggregator noticed it gone before).
#[test]
fn a_hundred_one_shot_queries_in_a_row_are_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(a_dir, _)]) = init_network(tmp.path(), ["skane"]);
    let agg = NodeProc::start(&agg_dir, &["--listen", "127.0.0.1:0"]);
    let peer = agg.peer(&agg_id);
    let _a = NodeProc::start(&a_dir, &["--aggregator", &peer]);
    eventually(20, "the region linked", || linked(&a_dir));
    let started = Instant::now();
    for i in 0..100 {
        let q = spindel(&["query", "--from", &peer, "--data-dir", s(&a_dir), "--json"]);
        assert_eq!(q.code, 0, "query {i} failed: {q:?}");
    }
    let took = started.elapsed();
    eprintln!("100 one-shot queries in {} ms", took.as_millis());
    assert!(took < Duration::from_secs(120), "{took:?}");
    assert!(linked(&a_dir), "the region's own link suffered");
    // The aggregator's log has no refusal for too many connections.
    assert!(
        !agg.log().contains("too many from one key"),
        "{}",
        agg.log()
    );
}
