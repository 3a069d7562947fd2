//! `cargo bench -p spindel-node --bench import`: prints how fast a region imports, queries,
//! computes the knowledge bank page's facets and overview, serves its pages over HTTP, how much
//! memory and disk it takes, and how fast it rebuilds its index. Figures, not assertions: speed targets live here, never in tests.
//!
//! SPINDEL_BENCH_RECORDS sets the record count (default 100,000).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use spindel_node::Reads;
use spindel_node::local::{self, LocalNode, Role};
use spindel_node::query::Query;
use spindel_node::server::{NodeHandle, NodeSettings, PreBound};
use spindel_protocol::record::Kind;

fn main() {
    let n: usize = std::env::var("SPINDEL_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let words = [
        "förening",
        "kooperativ",
        "integration",
        "läxhjälp",
        "studiecirkel",
        "bygdegård",
    ];
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({
                "title": format!("Innovation {i} om {}", words[i % words.len()]),
                "summary": format!("Erfarenheter från {} i regionen, nummer {i}, om samverkan och lärande", words[(i / 7) % words.len()]),
                "description": "Social ekonomi ".repeat(40),
                "tags": [words[i % words.len()], format!("t{}", i % 100)],
                "sroi": {"ratio": 1.0 + (i % 50) as f64 / 10.0, "year": 2010 + (i % 4) as i64},
            })
            .to_string()
        })
        .collect();
    let text = lines.join("\n");
    let bytes = text.len();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("region");
    local::init(&path, "bench", Role::Region, None, &mut rand_core::OsRng).unwrap();
    let node = LocalNode::open(&path).unwrap();

    let t = Instant::now();
    let out = node
        .import(
            Kind::Innovation,
            local::ImportSource::Text(&text),
            &mut rand_core::OsRng,
            local::now_ms(),
            &|_, _| {},
        )
        .unwrap();
    let import_s = t.elapsed().as_secs_f64();
    assert_eq!(out.imported as usize, n);
    println!(
        "import: {n} records ({:.1} MiB JSON) in {import_s:.2} s = {:.0} records/s",
        bytes as f64 / 1048576.0,
        n as f64 / import_s
    );

    let t = Instant::now();
    let rounds = 200;
    for i in 0..rounds {
        let page = node
            .query(&Query {
                text: Some(format!("{}arna", words[i % words.len()])),
                limit: Some(20),
                ..Query::default()
            })
            .unwrap();
        assert!(!page.records.is_empty() || i % words.len() >= 4);
    }
    println!(
        "query --text (inflected word, {n} records): {:.2} ms each",
        t.elapsed().as_secs_f64() * 1000.0 / rounds as f64
    );

    let t = Instant::now();
    for i in 0..rounds {
        node.query(&Query {
            tag: Some(format!("t{}", i % 100)),
            limit: Some(20),
            ..Query::default()
        })
        .unwrap();
    }
    println!(
        "query --tag (first page): {:.2} ms each",
        t.elapsed().as_secs_f64() * 1000.0 / rounds as f64
    );

    // The knowledge bank page: facet counts of a search (every match's metadata) and the
    // national overview (every innovation's payload: here all of them carry an SROI figure).
    let time = |what: &str, rounds: usize, f: &dyn Fn()| {
        let t = Instant::now();
        for _ in 0..rounds {
            f();
        }
        println!(
            "{what}: {:.0} ms each",
            t.elapsed().as_secs_f64() * 1000.0 / rounds as f64
        );
    };
    time(&format!("page facets, no filter ({n} records)"), 5, &|| {
        let f = node.facets(&Query::default()).unwrap();
        assert_eq!(f.total as usize, n + 1);
    });
    time("page facets, text \"föreningarna\"", 5, &|| {
        let q = Query {
            text: Some("föreningarna".into()),
            ..Query::default()
        };
        assert!(node.facets(&q).unwrap().total > 0);
    });
    time(&format!("page overview with {n} SROI figures"), 3, &|| {
        let o = node.overview().unwrap();
        assert_eq!(o.sroi.count, n);
    });

    time(
        &format!("text facets, a word every record has ({n} hits)"),
        5,
        &|| {
            let q = Query {
                text: Some("ekonomi".into()),
                ..Query::default()
            };
            assert_eq!(node.facets(&q).unwrap().total as usize, n);
        },
    );

    // The pages as a browser gets them: the node assembled as `spindel run` assembles it,
    // each page over HTTP on loopback, the median of 5 after one warm-up request.
    let node = std::sync::Arc::new(node);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt
        .block_on(NodeHandle::start_with(
            node.clone(),
            NodeSettings {
                http: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                ..NodeSettings::default()
            },
            PreBound::default(),
        ))
        .unwrap();
    let http = running.bound.http.unwrap();
    for page in [
        "/",
        "/?q=f%C3%B6reningarna",
        "/?q=ekonomi",
        "/?kind=innovation&tag=t7",
        "/oversikt",
        "/api/v1/records?q=ekonomi",
        "/flode.atom",
        "/api/v1/status",
    ] {
        let (ms, bytes) = page_ms(http, page);
        println!("page {page} ({n} records): {ms:.1} ms median of 5, {bytes} bytes");
    }
    rt.block_on(running.stop()).unwrap();
    println!(
        "peak resident memory of this process: {:.0} MiB",
        peak_rss_kib() as f64 / 1024.0
    );
    drop(rt);
    let node = std::sync::Arc::into_inner(node).unwrap();
    let size: u64 = walk(&path);
    println!(
        "data directory: {:.1} MiB = {:.2} times the {:.1} MiB of JSON imported",
        size as f64 / 1048576.0,
        size as f64 / bytes as f64,
        bytes as f64 / 1048576.0
    );

    drop(node);
    std::fs::remove_dir_all(path.join("index")).unwrap();
    let t = Instant::now();
    let node = LocalNode::open(&path).unwrap();
    println!(
        "full-text index rebuild from the log: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let st = node.status().unwrap();
    println!("records after rebuild: {}", st.records);
}

/// One page over HTTP/1.1: the median time of 5 requests after a warm-up, and its size.
fn page_ms(addr: std::net::SocketAddr, path: &str) -> (f64, usize) {
    use std::io::{Read, Write};
    let get = || {
        let t = Instant::now();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = Vec::new();
        s.read_to_end(&mut body).unwrap();
        assert!(body.starts_with(b"HTTP/1.1 200"), "{path}");
        (t.elapsed().as_secs_f64() * 1000.0, body.len())
    };
    get();
    let mut times: Vec<(f64, usize)> = (0..5).map(|_| get()).collect();
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    times[2]
}

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn walk(p: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() { walk(&e.path()) } else { m.len() };
    }
    total
}
