//! Architecture invariants, read from `cargo metadata`:
//! - dependencies point one way: spindel (cli) -> spindel-node -> spindel-protocol;
//! - spindel-protocol depends, directly or transitively, on no I/O crate;
//! - the API and the pages (`http.rs`, `web.rs`) never see the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Crates that do network, disk or async I/O; none may be under spindel-protocol.
const IO_CRATES: &[&str] = &[
    "tokio",
    "quinn",
    "quinn-proto",
    "quinn-udp",
    "sled",
    "tantivy",
    "mio",
    "socket2",
    "rustls",
    "axum",
    "hyper",
    "reqwest",
    "async-std",
    "futures-io",
    "memmap2",
    "fs4",
    "tempfile",
];

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata json")
}

/// Names of every package reachable from `root` through normal (non-dev, non-build) edges.
fn closure(meta: &Value, root: &str) -> BTreeSet<String> {
    let packages: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = packages
        .iter()
        .find(|(_, name)| **name == root)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("package {root} not found"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(packages[dep_id].to_string()) {
                stack.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn protocol_is_pure_and_dependencies_point_one_way() {
    let meta = metadata();
    let protocol = closure(&meta, "spindel-protocol");
    let io: Vec<&&str> = IO_CRATES
        .iter()
        .filter(|c| protocol.contains(**c))
        .collect();
    assert!(io.is_empty(), "spindel-protocol reaches I/O crates {io:?}");
    assert!(!protocol.contains("spindel-node") && !protocol.contains("spindel"));

    let node = closure(&meta, "spindel-node");
    assert!(node.contains("spindel-protocol"));
    assert!(!node.contains("spindel"), "node must not depend on the cli");
    let cli = closure(&meta, "spindel");
    assert!(cli.contains("spindel-node") && cli.contains("spindel-protocol"));
    // The check itself must be able to see I/O crates where they are.
    assert!(node.contains("sled") && node.contains("tantivy"));
}

#[test]
fn protocol_source_uses_no_clock_fs_or_net() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/src");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for banned in [
            "std::fs",
            "std::net",
            "SystemTime",
            "Instant::now",
            "thread_rng",
            "OsRng::default",
        ] {
            // Tests may use OsRng; production code gets randomness injected.
            let production = text.split("#[cfg(test)]").next().unwrap();
            assert!(
                !production.contains(banned),
                "{} uses {banned}",
                path.display()
            );
        }
    }
}

/// The API and the pages ask the read model (`LocalNode`'s read methods, `read.rs`), never the
/// store: they do not open it, name it, or reach into it.
#[test]
fn the_api_and_the_pages_never_see_the_store() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/src");
    for file in ["http.rs", "web.rs"] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let production = text.split("#[cfg(test)]").next().unwrap();
        for banned in [".store()", "crate::store", "Store::", "&Store"] {
            assert!(
                !production.contains(banned),
                "{} uses {banned}: ask the read model (node/src/read.rs) instead",
                path.display()
            );
        }
    }
}
