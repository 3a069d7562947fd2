//! The centre is watched, through the real binary: an aggregator and three regions as
//! processes; checkpoints flow and every region cosigns; the aggregator's directory replaced
//! by an older copy is a rollback every region reports, and the network heals; `spindel
//! audit` and its bad inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use spindel_tests::{NodeProc, eventually, http_get, init_network, publish_run, s, spindel};

/// `audit --json` of the node in `dir`: (exit code, report).
fn audit(dir: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["audit", "--data-dir", s(dir), "--json"];
    args.extend_from_slice(extra);
    let run = spindel(&args);
    let report = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("audit printed no JSON ({e}): {run:?}"));
    (run.code, report)
}

/// The newest checkpoint `dir` holds of its aggregator: (cosigners, sum of the heads).
fn latest(dir: &Path) -> (usize, u64) {
    let (_, r) = audit(dir, &[]);
    let Some(l) = r["aggregators"][0]["latest"].as_object() else {
        return (0, 0);
    };
    let heads = l["heads"].as_array().unwrap();
    (
        l["cosigned_by"].as_array().unwrap().len(),
        heads.iter().map(|h| h["seq"].as_u64().unwrap()).sum(),
    )
}

fn method(dir: &Path, title: &str) {
    let json = serde_json::json!({"title": title, "summary": "Lärande mellan regioner"});
    assert_eq!(publish_run(dir, "method", &json.to_string()).code, 0);
}

fn start_aggregator(dir: &Path, listen: &str) -> NodeProc {
    NodeProc::start(dir, &["--listen", listen])
}

#[test]
fn an_aggregator_restored_from_an_old_copy_is_a_rollback_every_region_reports_and_it_heals() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, regions) = init_network(tmp.path(), ["skane", "dalarna", "stockholm"]);
    let agg = start_aggregator(&agg_dir, "127.0.0.1:0");
    let listen = agg.listen.unwrap().to_string();
    let pinned = agg.peer(&agg_id);
    let procs: Vec<NodeProc> = regions
        .iter()
        .map(|(dir, _)| {
            let args = ["--aggregator", &pinned, "--listen", "127.0.0.1:0"];
            NodeProc::start(dir, &[&args[..], &["--http", "127.0.0.1:0"]].concat())
        })
        .collect();
    // A healthy network: every region cosigns the checkpoint of the three profiles.
    eventually(
        30,
        "every region holds a checkpoint cosigned by all three",
        || regions.iter().all(|(dir, _)| latest(dir) == (3, 3)),
    );
    for (dir, _) in &regions {
        assert_eq!(audit(dir, &[]).0, 0, "a healthy network audits clean");
    }
    let (code, report) = audit(&agg_dir, &[]);
    assert_eq!(code, 0);
    assert_eq!(report["aggregators"][0]["this_node"], true);
    // Two regions compare their checkpoints directly: one picture.
    let dalarna = procs[1].peer(&regions[1].1);
    let (code, report) = audit(&regions[0].0, &["--peer", &dalarna]);
    assert_eq!(code, 0, "{report}");

    // A copy of the aggregator's directory, then entries it acknowledges and checkpoints.
    agg.kill9();
    let old = tmp.path().join("nationell.old");
    let cp = std::process::Command::new("cp")
        .args(["-a", s(&agg_dir), s(&old)])
        .status()
        .unwrap();
    assert!(cp.success());
    let agg = start_aggregator(&agg_dir, &listen);
    for (dir, _) in &regions {
        method(dir, "Metod före återställningen");
    }
    eventually(60, "the three methods checkpointed and cosigned", || {
        regions.iter().all(|(dir, _)| latest(dir) == (3, 6))
    });
    // The aggregator comes back from the old copy: it lost what it acknowledged.
    agg.kill9();
    std::fs::remove_dir_all(&agg_dir).unwrap();
    std::fs::rename(&old, &agg_dir).unwrap();
    let agg = start_aggregator(&agg_dir, &listen);
    let rollbacks = |dir: &Path| -> Vec<serde_json::Value> {
        audit(dir, &[]).1["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "rollback")
            .cloned()
            .collect()
    };
    for (dir, id) in &regions {
        eventually(
            60,
            "the region reports the rollback of its own log, healed",
            || {
                rollbacks(dir).iter().any(|f| {
                    f["aggregator"] == agg_id.as_str()
                        && f["region"] == id.as_str()
                        && f["healed"].is_string()
                })
            },
        );
    }
    // Every finding names the aggregator and an affected region, and the network healed:
    // the lost entries were pushed again and checkpointed, cosigned by all.
    let names: Vec<&str> = regions.iter().map(|(_, id)| id.as_str()).collect();
    for (dir, _) in &regions {
        for f in rollbacks(dir) {
            assert_eq!(f["aggregator"], agg_id.as_str());
            assert!(names.contains(&f["region"].as_str().unwrap()), "{f}");
        }
    }
    eventually(60, "the healed aggregate cosigned by all", || {
        regions.iter().all(|(dir, _)| latest(dir) == (3, 6))
    });
    // A healed rollback stays listed (a fact to see); only open findings fail the audit.
    let (code, report) = audit(&regions[0].0, &[]);
    assert_eq!(code, 0, "{report}");
    assert!(!report["findings"].as_array().unwrap().is_empty());
    let text = spindel(&["audit", "--data-dir", s(&regions[0].0)]);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout.contains("rollback aggregator"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("(healed "), "{}", text.stdout);
    // The region's page says it in Swedish: what happened, and that it healed.
    let (status, page) = http_get(procs[0].http.unwrap(), "/granskning");
    assert_eq!(status, 200);
    for seen in ["Tillbakarullning", "Läkt", "har tappat poster"] {
        assert!(page.contains(seen), "{seen:?} not on the page: {page}");
    }
    // An operator who dealt with it looks from then on: nothing listed.
    let later = spindel_protocol::time::rfc3339_ms(spindel_node::local::now_ms() + 1_000);
    let (code, report) = audit(&regions[0].0, &["--since", &later]);
    assert_eq!(
        (code, report["findings"].clone()),
        (0, serde_json::json!([]))
    );
    // Each region's log says so as a warning.
    for p in &procs {
        assert!(
            p.log().contains("audit finding finding=\"rollback\""),
            "{}",
            p.log()
        );
    }
    drop(agg);
}

#[test]
fn audit_names_every_bad_input_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, _agg_id, regions) = init_network(tmp.path(), ["skane"]);
    let dir = s(&regions[0].0);
    spindel(&["audit", "--data-dir", dir, "--peer", "nonsense"]).fails(2, "--peer");
    spindel(&["audit", "--data-dir", dir, "--since", "igår"]).fails(2, "RFC 3339");
    let missing = tmp.path().join("finns-inte");
    spindel(&["audit", "--data-dir", s(&missing)]).fails(1, "finns-inte");
    // A region that has met no aggregator yet: nothing to find.
    let (code, report) = audit(&regions[0].0, &[]);
    assert_eq!(code, 0);
    assert_eq!(report["findings"], serde_json::json!([]));
    // A peer whose key is not the one named is refused by the handshake, in one line.
    let agg = NodeProc::start(&agg_dir, &["--listen", "127.0.0.1:0"]);
    let wrong = format!("{}@{}", "ab".repeat(32), agg.listen.unwrap());
    let run = spindel(&["audit", "--data-dir", dir, "--peer", &wrong]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains(&wrong[..8]), "{}", run.stderr);
}
