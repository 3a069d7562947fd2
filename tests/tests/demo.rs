//! `spindel demo`: a whole national network on loopback, through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::process::{Command, Stdio};

use spindel_tests::{http_get, spindel, spindel_bin};

const SEED_REGIONS: [&str; 8] = [
    "Nätverket Social Ekonomi Skåne",
    "PLUS Östra Mellansverige",
    "Föreningen Social Ekonomi i Dalarna",
    "Stockholms läns utvecklingspartnerskap (SLUP)",
    "Social Ekonomi Mellersta Norrland",
    "Social ekonomi Övre Norrland",
    "Region Småland och Öarna",
    "Västra Götalandsplattformen",
];

/// The ninth platform, endorsed into the network by the eight founders' majority.
const NEWCOMER: &str = "Social ekonomi Värmland (exempel)";

#[test]
fn demo_syncs_the_eight_regions_and_the_ninth_they_endorse_and_exits_when_asked() {
    let run = spindel(&["demo", "--http", "127.0.0.1:0", "--exit-when-synced"]);
    assert_eq!(run.code, 0, "{run:?}");
    for region in SEED_REGIONS.iter().chain([&NEWCOMER]) {
        assert!(
            run.stdout.contains(region),
            "summary lacks {region}: {}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("9 regioner, 53 poster"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("synkat: 9/9"), "{}", run.stderr);
    // The charter, the endorsements and the newcomer's admission are said as they happen.
    for said in [
        "stadga för SOUL: 8 grundande regioner har signerat; stöd från 5 tar in en ny region",
        &format!("{NEWCOMER} ansöker om att gå med i nätverket; stöd från 5 av 8 regioner"),
        &format!("{NEWCOMER} är medlem"),
    ] {
        assert!(run.stderr.contains(said), "{said:?}: {}", run.stderr);
    }
    // The temporary network is removed afterwards.
    let dir = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("data i "))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        !std::path::Path::new(&dir).exists(),
        "{dir} was left behind"
    );

    let three = spindel(&[
        "demo",
        "--regions",
        "3",
        "--http",
        "127.0.0.1:0",
        "--exit-when-synced",
    ]);
    assert_eq!(three.code, 0, "{three:?}");
    assert!(three.stdout.contains("4 regioner"), "{}", three.stdout);
    let json = spindel(&[
        "demo",
        "--regions",
        "3",
        "--http",
        "127.0.0.1:0",
        "--exit-when-synced",
        "--json",
    ])
    .json();
    let regions = json["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 4, "{json}");
    for r in regions {
        assert_eq!(r["head"], r["at_aggregator"], "{r}");
        assert_eq!(r["head"], r["in_every_region"], "{r}");
    }
    let sum: u64 = regions.iter().map(|r| r["records"].as_u64().unwrap()).sum();
    assert_eq!(json["records"], sum);
    assert!(
        json["page"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    spindel(&["demo", "--regions", "0", "--http", "127.0.0.1:0"])
        .fails(1, "--regions must be between 1 and 64");
    spindel(&["demo", "--regions", "many"]).fails(2, "many");
}

#[test]
fn running_demo_serves_the_aggregate_over_http_and_stops_on_sigterm() {
    let mut child = Command::new(spindel_bin())
        .args(["demo", "--regions", "8", "--http", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep the demo's stderr so a failure can show it.
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut http = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("HTTP API: http://") {
            http = Some(rest.split('/').next().unwrap().parse().unwrap());
            break;
        }
    }
    let Some(http) = http else {
        let _ = child.wait();
        panic!(
            "the demo never printed its HTTP address; stderr:\n{}",
            stderr.join().unwrap()
        );
    };
    let http: std::net::SocketAddr = http;
    let (code, body) = http_get(http, "/api/v1/regions");
    assert_eq!(code, 200);
    let regions: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(regions["regions"].as_array().unwrap().len(), 9);
    // The charter's members: eight founders and the ninth, endorsed by five of them.
    let (code, body) = http_get(http, "/api/v1/network");
    assert_eq!(code, 200);
    let network: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(network["threshold"], 5);
    let members = network["regions"].as_array().unwrap();
    assert_eq!(members.iter().filter(|r| r["founder"] == true).count(), 8);
    let ninth = members.iter().find(|r| r["name"] == "varmland").unwrap();
    assert_eq!(ninth["state"], "member");
    assert_eq!(ninth["endorsed_by"].as_array().unwrap().len(), 5);
    let (code, page) = http_get(http, "/natverket");
    assert_eq!(code, 200);
    assert!(page.contains(">varmland</a>"), "{page}");
    let (_, body) = http_get(http, "/api/v1/records?q=f%C3%B6reningarna&limit=50");
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        found["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["data"]["title"] == "Integration i förening"),
        "{body}"
    );
    let (_, body) = http_get(http, "/api/v1/records?kind=researcher&limit=50");
    let researchers: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(researchers["records"].as_array().unwrap().len(), 7);
    let status = spindel_tests::sigterm_and_wait(&mut child, std::time::Duration::from_secs(10))
        .expect("demo stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// A demo whose page port is taken stops at once, saying so, and leaves nothing behind (its
/// directory would hold the nodes' keys).
#[test]
fn a_demo_whose_port_is_taken_leaves_nothing_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(spindel_bin())
        .args([
            "demo",
            "--regions",
            "2",
            "--http",
            &addr,
            "--exit-when-synced",
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot serve http on {addr}")),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
