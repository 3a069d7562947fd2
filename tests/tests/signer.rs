//! One key, one live signer; an aggregator that keeps every region in view; one-shot clients
//! that leave nothing behind. Real `spindel run` processes over QUIC on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use spindel_tests::{
    NodeProc, eventually, http_get, init_network, metric, publish_run, s, spindel, spindel_stdin,
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

const PASSWORD: &str = "ett långt lösenord för test";

/// Redaktionen's start page, logged in as "anna".
fn start_page(admin: std::net::SocketAddr) -> String {
    use spindel_tests::{csrf_field, http_exchange, http_form, set_cookie};
    let (_, head, body) = http_exchange(admin, "GET", "/logga-in", &[], None);
    let login = format!(
        "spindel_inloggning={}",
        set_cookie(&head, "spindel_inloggning").unwrap()
    );
    let (status, head, _) = http_form(
        admin,
        "/logga-in",
        &[("Cookie", &login)],
        &[
            ("user", "anna"),
            ("password", PASSWORD),
            ("csrf", &csrf_field(&body)),
        ],
    );
    assert_eq!(status, 303, "{head}");
    let session = format!(
        "spindel_redaktion={}",
        set_cookie(&head, "spindel_redaktion").unwrap()
    );
    let (status, _, body) = http_exchange(admin, "GET", "/", &[("Cookie", &session)], None);
    assert_eq!(status, 200, "{body}");
    body
}

/// The aggregator of a network, started once to learn its address and stopped again: a
/// later `NodeProc::start(dir, &["--listen", ADDR])` brings it back at the same address.
fn aggregator_down(agg_dir: &Path, agg_id: &str) -> (String, String) {
    let agg = NodeProc::start(agg_dir, &["--listen", "127.0.0.1:0"]);
    let listen = agg.listen.expect("listening").to_string();
    let peer = agg.peer(agg_id);
    assert_eq!(agg.terminate(10), 0);
    (listen, peer)
}

fn own_aggregator_row(st: &serde_json::Value) -> serde_json::Value {
    st["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "aggregator")
        .cloned()
        .unwrap_or_default()
}

/// A region started while its aggregator is down publishes offline after the catch-up wait,
/// and says so: a warning line on stderr with text and JSON output, `"offline": true`, and
/// `status` names the entries no aggregator has. Once the aggregator is back, the region's
/// status shows 0 not sent at it, and publishes are no longer offline. The aggregator's
/// status offers no retry times for the regions it does not dial, and labels itself.
#[test]
fn a_region_publishing_while_no_aggregator_answers_says_it_is_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(a_dir, a_id)]) = init_network(tmp.path(), ["skane"]);
    let (listen, peer) = aggregator_down(&agg_dir, &agg_id);
    let a = NodeProc::start(&a_dir, &["--aggregator", &peer, "--metrics", "127.0.0.1:0"]);
    let r = publish(&a_dir, "Utan förbindelse");
    let v = r.json();
    assert_eq!(v["offline"], true, "{v}");
    assert!(
        r.stderr
            .starts_with("warning: no aggregator has confirmed this node since it started"),
        "{r:?}"
    );
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    let json = serde_json::json!({"title": "Också utan", "summary": "Lärande mellan föreningar"})
        .to_string();
    let text = spindel_stdin(
        &[
            "publish",
            "--data-dir",
            s(&a_dir),
            "--kind",
            "method",
            "--file",
            "-",
        ],
        &json,
    );
    text.ok();
    assert!(text.stdout.starts_with("published method"), "{text:?}");
    assert!(text.stderr.contains("stop it first"), "{text:?}");
    let st = status(&a_dir);
    assert_eq!(st["offline"], true, "{st}");
    let head = st["heads"][&a_id].as_u64().unwrap();
    assert_eq!(st["not_sent"]["first"], head - 1, "{st}");
    assert_eq!(st["not_sent"]["last"], head, "{st}");
    let shown = spindel(&["status", "--data-dir", s(&a_dir)])
        .ok()
        .stdout
        .clone();
    assert!(shown.contains("NOT SENT  own entries"), "{shown}");
    assert!(shown.contains("OFFLINE"), "{shown}");

    // The aggregator comes back at its address: everything goes out and is acknowledged.
    let up = Instant::now();
    let _agg = NodeProc::start(&agg_dir, &["--listen", &listen]);
    eventually(30, "0 not sent at the aggregator", || {
        let row = own_aggregator_row(&status(&a_dir));
        row["connected"] == true && row["own_not_sent"] == 0 && row["own_acked"] == head
    });
    eprintln!(
        "the offline entries were acknowledged {} ms after the aggregator was started",
        up.elapsed().as_millis()
    );
    let (_, m) = http_get(a.metrics.unwrap(), "/metrics");
    let series = format!(
        "spindel_peer_own_not_sent_entries{{peer=\"{}\",name=\"\",role=\"aggregator\"}}",
        &agg_id[..16]
    );
    assert_eq!(metric(&m, &series), Some(0.0), "{m}");
    let st = status(&a_dir);
    assert!(st.get("not_sent").is_none(), "{st}");
    assert_eq!(st["offline"], false, "{st}");
    assert!(!a_dir.join("offline-from").exists());
    let shown = spindel(&["status", "--data-dir", s(&a_dir)])
        .ok()
        .stdout
        .clone();
    assert!(
        shown.contains(&format!(
            "own log: {head}, at this aggregator: {head} (0 entries not yet sent)"
        )),
        "{shown}"
    );
    let r = publish(&a_dir, "Med förbindelse");
    assert_eq!(r.json()["offline"], false);
    assert!(r.stderr.is_empty(), "{r:?}");

    // The aggregator only listens: no retry times for its regions, and itself labelled.
    let st = status(&agg_dir);
    for p in st["peers"].as_array().unwrap() {
        assert!(p.get("retry_in_ms").is_none(), "{p}");
    }
    let me = st["authors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["node_id"] == agg_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(me["own"], true, "{me}");
    let shown = spindel(&["status", "--data-dir", s(&agg_dir)])
        .ok()
        .stdout
        .clone();
    assert!(!shown.contains("next try within"), "{shown}");
    assert!(shown.contains("this node (authors nothing)"), "{shown}");
}

/// An old copy of a region's directory started while the aggregator is down publishes
/// offline; the live copy links first once the aggregator is back. The old copy is refused,
/// and its status names the entries it holds that the network does not have and the other
/// copy's address; the live copy is undisturbed and nothing forks.
#[test]
fn a_copy_that_published_offline_is_told_which_entries_the_network_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(a_dir, a_id)]) = init_network(tmp.path(), ["skane"]);
    let agg = NodeProc::start(&agg_dir, &["--listen", "127.0.0.1:0"]);
    let listen = agg.listen.unwrap().to_string();
    let peer = agg.peer(&agg_id);
    let a = NodeProc::start(&a_dir, &["--aggregator", &peer]);
    publish(&a_dir, "Före kopian").ok();
    eventually(20, "the first record at the aggregator", || {
        titles(&agg_dir).len() == 1
    });
    assert_eq!(a.terminate(10), 0);
    let synced = status(&a_dir)["heads"][&a_id].as_u64().unwrap();
    spindel_tests::user_add(&a_dir, "anna", "redaktor", Some(PASSWORD));
    let b_dir = tmp.path().join("skane-gammal");
    let cp = std::process::Command::new("cp")
        .args(["-a", s(&a_dir), s(&b_dir)])
        .status()
        .unwrap();
    assert!(cp.success());
    assert_eq!(agg.terminate(10), 0);

    // The old copy runs while the aggregator is down, and publishes offline.
    let b = NodeProc::start(&b_dir, &["--aggregator", &peer]);
    let r = publish(&b_dir, "Från den gamla kopian");
    assert_eq!(r.json()["offline"], true);
    assert_eq!(b.terminate(10), 0);

    // The aggregator is back; the live copy links first, then the old one starts again.
    let agg = NodeProc::start(&agg_dir, &["--listen", &listen]);
    let _a = NodeProc::start(&a_dir, &["--aggregator", &peer]);
    eventually(20, "the live copy linked", || linked(&a_dir));
    let started = Instant::now();
    let b = NodeProc::start(&b_dir, &["--aggregator", &peer, "--admin", "127.0.0.1:0"]);
    eventually(
        20,
        "the old copy told which entries the network lacks",
        || status(&b_dir)["other_copy_advice"].is_string(),
    );
    eprintln!(
        "the old copy named its unsent entries {} ms after it was started",
        started.elapsed().as_millis()
    );
    let st = status(&b_dir);
    let first = synced + 1;
    assert_eq!(
        st["not_sent"],
        serde_json::json!({"first": first, "last": first, "count": 1}),
        "{st}"
    );
    let advice = st["other_copy_advice"].as_str().unwrap();
    assert!(
        advice.starts_with(&format!(
            "this copy holds entry {first} that the network does not have; the other copy, connected from 127.0.0.1:"
        )),
        "{advice}"
    );
    assert!(
        advice.contains("If this one is the right one, stop the other copy first"),
        "{advice}"
    );
    let shown = spindel(&["status", "--data-dir", s(&b_dir)])
        .ok()
        .stdout
        .clone();
    assert!(shown.contains("AHEAD     this copy holds entry"), "{shown}");
    // Redaktionen's start page says the same, in Swedish.
    let page = start_page(b.admin.unwrap());
    for said in [
        format!("Den här kopian har post nummer {first} i regionens logg, som nätverket inte har."),
        "Den andra kopian, ansluten från 127.0.0.1:".to_string(),
        "den andra kopian ska stoppas först".to_string(),
    ] {
        assert!(page.contains(&said), "{said} not in {page}");
    }

    // The live copy is undisturbed; the old copy's entry reaches nobody; nothing forks.
    let r = publish(&a_dir, "Från den levande kopian");
    assert_eq!(r.json()["offline"], false);
    eventually(20, "the live copy's record at the aggregator", || {
        titles(&agg_dir).contains(&"Från den levande kopian".to_string())
    });
    // The aggregator now holds the live copy's entry with that seq: the old copy's can never
    // join, and its status says so once a refusal names the new head.
    eventually(20, "the old copy told its entry collides", || {
        status(&b_dir)["other_copy_advice"]
            .as_str()
            .is_some_and(|a| a.contains("can never join the log"))
    });
    assert!(!titles(&agg_dir).contains(&"Från den gamla kopian".to_string()));
    for dir in [&agg_dir, &a_dir, &b_dir] {
        assert_eq!(forks(dir), 0, "a fork at {}", dir.display());
    }
    assert!(linked(&a_dir));
    drop(agg);
}
