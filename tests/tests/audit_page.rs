//! The audit over HTTP: `/api/v1/audit` (the same JSON as `spindel audit --json`) and the
//! Swedish page `/granskning`, on an aggregator and three regions as real processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;

use spindel_tests::{NodeProc, eventually, http_request, init_network, publish, s, spindel};

/// `/api/v1/audit` of `http`, as JSON (asserting 200 and a JSON type).
fn api_audit(http: SocketAddr) -> serde_json::Value {
    let (code, head, body) = http_request(http, "GET", "/api/v1/audit", None);
    assert_eq!(code, 200, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    serde_json::from_str(&body).unwrap()
}

/// The witnesses that cosigned the newest checkpoint of the one aggregator in `report`.
fn cosigners(report: &serde_json::Value) -> BTreeSet<String> {
    report["aggregators"][0]["latest"]["cosigned_by"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["witness"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The aggregators and findings of a report, without what is computed at the moment it is
/// asked for (a silent aggregator's `stale` finding is seen "now").
fn settled(report: &serde_json::Value) -> serde_json::Value {
    let mut findings = report["findings"].clone();
    for f in findings.as_array_mut().into_iter().flatten() {
        if f["kind"] == "stale"
            && let Some(o) = f.as_object_mut()
        {
            o.remove("first_seen");
            o.remove("last_seen");
        }
    }
    serde_json::json!({ "aggregators": report["aggregators"], "findings": findings })
}

/// `spindel audit --data-dir DIR --json` (exit 0: no findings).
fn cli_audit(dir: &std::path::Path) -> serde_json::Value {
    spindel(&["audit", "--data-dir", s(dir), "--json"]).json()
}

#[test]
fn every_region_cosigns_and_the_api_the_page_and_the_command_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, regions) = init_network(tmp.path(), ["skane", "dalarna", "stockholm"]);
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let nodes: Vec<NodeProc> = regions
        .iter()
        .map(|(dir, _)| NodeProc::start(dir, &["--aggregator", &peer, "--http", "127.0.0.1:0"]))
        .collect();
    publish(
        &regions[0].0,
        "method",
        r#"{"title":"Metod X","summary":"Lärande i grupp"}"#,
    );
    let ids: BTreeSet<String> = regions.iter().map(|(_, id)| id.clone()).collect();

    // Every region holds the newest checkpoint, of all three regions' heads, cosigned by all three.
    eventually(
        60,
        "every region's checkpoint cosigned by all three",
        || {
            let reports: Vec<_> = nodes.iter().map(|n| api_audit(n.http.unwrap())).collect();
            let counters: BTreeSet<_> = reports
                .iter()
                .map(|r| r["aggregators"][0]["latest"]["counter"].as_u64())
                .collect();
            counters.len() == 1
                && reports.iter().all(|r| {
                    r["aggregators"].as_array().unwrap().len() == 1
                        && r["aggregators"][0]["aggregator"] == agg_id.as_str()
                        && r["aggregators"][0]["latest"]["heads"]
                            .as_array()
                            .is_some_and(|h| h.len() == 3)
                        && cosigners(r) == ids
                })
        },
    );

    // The page of a region: the aggregator, the checkpoint, its cosigners by name, no findings.
    for node in &nodes {
        let http = node.http.unwrap();
        let report = api_audit(http);
        assert_eq!(report["findings"], serde_json::json!([]), "{report}");
        let (code, head, body) = http_request(http, "GET", "/granskning", None);
        assert_eq!(code, 200, "{body}");
        for h in [
            "content-type: text/html; charset=utf-8",
            "content-security-policy: default-src 'none'",
            "x-content-type-options: nosniff",
        ] {
            assert!(head.contains(h), "{h}: {head}");
        }
        let counter = report["aggregators"][0]["latest"]["counter"].to_string();
        for seen in [
            "<h1>Granskning</h1>",
            &format!("<code>{}</code>", &agg_id[..8]),
            &format!("<td class=\"num\">{counter}</td>"),
            "<td class=\"num\">3</td>",
            "Inga fynd",
        ] {
            assert!(body.contains(seen), "{seen:?}: {body}");
        }
        let row = body.split("Medsignerad av").nth(1).unwrap();
        for name in ["skane", "dalarna", "stockholm"] {
            assert!(row.contains(name), "{name} not among the cosigners: {body}");
        }
        assert!(!body.contains("den här noden"), "{body}");
    }

    // The aggregator's page names itself; its own checkpoints came back cosigned.
    let agg_http = agg.http.unwrap();
    let (code, _, body) = http_request(agg_http, "GET", "/granskning", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("(den här noden)"), "{body}");
    assert!(body.contains("Inga fynd"), "{body}");
    let home = http_request(agg_http, "GET", "/", None).2;
    assert!(home.contains("href=\"/granskning\""), "{home}");

    // `spindel audit` exits 0 on every node and says what the API says.
    let dirs = std::iter::once((&agg_dir, agg_http)).chain(
        regions
            .iter()
            .map(|(d, _)| d)
            .zip(nodes.iter().map(|n| n.http.unwrap())),
    );
    for (dir, http) in dirs {
        let api = api_audit(http);
        let cli = cli_audit(dir);
        assert_eq!(cli["node"], api["node"]);
        // A cosignature may land between the two questions: ask again until they agree.
        eventually(20, "the command and the API to agree", || {
            settled(&cli_audit(dir)) == settled(&api_audit(http))
        });
    }

    // No parameters: an unknown one is refused, in JSON and on the page.
    let http = nodes[0].http.unwrap();
    let (code, _, body) = http_request(http, "GET", "/api/v1/audit?since=1", None);
    assert_eq!(code, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("unknown parameter"),
        "{body}"
    );
    let (code, _, body) = http_request(http, "GET", "/granskning?sida=2", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Okänd parameter ”sida”"), "{body}");
    let (code, _, _) = http_request(http, "POST", "/api/v1/audit", Some("{}"));
    assert_eq!(code, 405);

    for node in nodes {
        assert_eq!(node.terminate(10), 0);
    }
    assert_eq!(agg.terminate(10), 0);
}
