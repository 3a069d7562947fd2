//! The one writer of a running node: every write announces its new head, own-log writes never
//! interleave (an import holds the own log; a publish that comes meanwhile follows it), a
//! peer's batch is applied while an import runs, and a stopped writer lets go of the node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[path = "kit/mod.rs"]
mod kit;

use kit::method;
use spindel_node::local::{self, LocalNode, NodeError, Role};
use spindel_node::{Gate, Reads};
use spindel_node::{ImportJob, ImportProgress, Received, Writer};
use spindel_protocol::NodeId;
use spindel_protocol::entry::{Entry, Payload, RecordId, next_header};
use spindel_protocol::record::Kind;
use spindel_protocol::sync::SyncEntry;
use tokio::sync::broadcast;

const WITHIN: Duration = Duration::from_secs(10);

/// A new region "skane" in a temporary directory, with its writer started.
fn started() -> (tempfile::TempDir, Arc<LocalNode>, Writer) {
    let tmp = tempfile::tempdir().unwrap();
    let node = Arc::new(kit::new_node(tmp.path(), "skane", Role::Region, &[]));
    let writer = Writer::start(node.clone(), Arc::new(Gate::default())).unwrap();
    (tmp, node, writer)
}

/// Waits until the broadcast tells `author`'s head reached `seq` (or fails after [`WITHIN`]).
async fn announced(rx: &mut broadcast::Receiver<(NodeId, u64)>, author: NodeId, seq: u64) {
    tokio::time::timeout(WITHIN, async {
        loop {
            match rx.recv().await {
                Ok((a, s)) if a == author && s >= seq => return,
                Ok(_) => {}
                Err(e) => panic!("the heads channel failed: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("head {seq} of {} was never announced", author.short()));
}

fn import_file(dir: &std::path::Path, lines: usize) -> std::path::PathBuf {
    let path = dir.join(format!("import-{lines}.jsonl"));
    let body: String = (0..lines)
        .map(|i| method(&format!("Importerad metod {i}")) + "\n")
        .collect();
    std::fs::write(&path, body).unwrap();
    path
}

/// An import running on its own task.
type Importing = tokio::task::JoinHandle<Result<spindel_node::local::Imported, NodeError>>;

/// Starts an import of `path`; returns it and its progress events.
fn spawn_import(
    writer: &Writer,
    path: std::path::PathBuf,
) -> (Importing, tokio::sync::watch::Receiver<(u64, u64)>) {
    let progress = Arc::new(ImportProgress::default());
    let events = progress.subscribe();
    let job = ImportJob {
        progress: Some(progress),
        ..import_job(path)
    };
    let writer = writer.clone();
    (
        tokio::spawn(async move { writer.import(job).await }),
        events,
    )
}

/// Waits until the import has signed its first records (it holds the own log then, and has
/// most of its work ahead: progress comes every 1,000 of 3,000).
async fn signing(mut events: tokio::sync::watch::Receiver<(u64, u64)>) {
    tokio::time::timeout(WITHIN, events.wait_for(|(done, _)| *done > 0))
        .await
        .expect("the import never began signing")
        .expect("the import's progress ended");
}

fn import_job(path: std::path::PathBuf) -> ImportJob {
    ImportJob {
        kind: Kind::Method,
        name: path.display().to_string(),
        path,
        cancel: Arc::new(AtomicBool::new(false)),
        progress: None,
    }
}

/// Publish, import and delete through the writer each announce the new own head: no write
/// path forgets (before the writer, direct writes waited for a 10 s rescan).
#[tokio::test]
async fn every_own_write_announces_its_head() {
    let (tmp, node, writer) = started();
    let me = node.node_id();
    let mut heads = writer.events().subscribe_heads();

    let p = writer
        .publish(Kind::Method, method("Studiecirkel"), None)
        .await
        .unwrap();
    announced(&mut heads, me, p.seq).await;

    let imported = writer
        .import(import_job(import_file(tmp.path(), 20)))
        .await
        .unwrap();
    assert_eq!(imported.first_seq, p.seq + 1);
    announced(&mut heads, me, imported.last_seq).await;

    let d = writer.delete(p.record_id.parse().unwrap()).await.unwrap();
    assert_eq!(d.seq, imported.last_seq + 1);
    announced(&mut heads, me, d.seq).await;
    writer.stop().await;
}

/// An import holds the own log: publishes sent while it runs wait and follow its last entry
/// in the order they came, none signed with a seq the import took. A peer's batch sent while
/// it runs is applied before the import ends.
#[tokio::test]
async fn an_import_holds_the_own_log_and_peers_go_on() {
    let (tmp, node, writer) = started();
    let me = node.node_id();
    let mut heads = writer.events().subscribe_heads();

    // A peer's entry, as an aggregator relays it (vouched).
    let peer = spindel_protocol::SecretKey::from_bytes(&[9; 32]);
    let payload = Payload::seal(&mut rand_core::OsRng, method("Från Dalarna"));
    let header = next_header(
        peer.node_id(),
        None,
        local::now_ms(),
        Kind::Method,
        RecordId::random(&mut rand_core::OsRng),
        Some(&payload),
    );
    let relayed = SyncEntry {
        entry: Entry::sign(&peer, header).to_wire(),
        payload: Some(payload),
    };

    let (import, events) = spawn_import(&writer, import_file(tmp.path(), 3000));
    signing(events).await;
    let publishes: Vec<_> = (0..3)
        .map(|i| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .publish(Kind::Method, method(&format!("Under importen {i}")), None)
                    .await
            })
        })
        .collect();
    let received = Received {
        from: peer.node_id(),
        entries: vec![relayed],
        expected_author: None,
        vouched: true,
    };
    let applied = writer
        .ingest(received.check(&spindel_node::ReadModel::of(&node)).unwrap())
        .await
        .unwrap();
    assert_eq!(applied.accepted, 1);
    assert!(
        !import.is_finished(),
        "the peer's batch waited for the import (3000 records sign for far longer than one \
         batch applies)"
    );
    announced(&mut heads, peer.node_id(), 1).await;

    let imported = import.await.unwrap().unwrap();
    let mut seqs: Vec<u64> = Vec::new();
    for p in publishes {
        seqs.push(p.await.unwrap().unwrap().seq);
    }
    seqs.sort_unstable();
    let imported_seqs = imported.first_seq..=imported.last_seq;
    for s in &seqs {
        assert!(
            !imported_seqs.contains(s),
            "a publish took seq {s} of the import"
        );
    }
    // No seq twice, none missing: the own log is one line.
    let head = node.own_head().unwrap().unwrap().seq;
    let mut all: BTreeMap<u64, ()> = BTreeMap::new();
    for inc in node.entries_from(&me, 1, usize::MAX).unwrap() {
        assert!(all.insert(inc.entry.header().seq, ()).is_none());
    }
    assert_eq!(all.len() as u64, head);
    assert_eq!(
        head,
        1 + 3000 + 3,
        "the profile, the import and three publishes"
    );
    writer.stop().await;
}

/// A stopped writer answers no more writes (nothing half-written) and has let go of the
/// node: its last handle on the store is dropped before `stop` returns.
#[tokio::test]
async fn a_stopped_writer_writes_nothing_and_lets_go() {
    let (_tmp, node, writer) = started();
    writer
        .publish(Kind::Method, method("Före stoppet"), None)
        .await
        .unwrap();
    writer.stop().await;
    let head = node.own_head().unwrap().unwrap().seq;
    let e = writer
        .publish(Kind::Method, method("Efter stoppet"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Stopped), "{e}");
    assert_eq!(node.own_head().unwrap().unwrap().seq, head);
    drop(writer);
    // The writer thread held one reference; only this test's is left.
    assert_eq!(Arc::strong_count(&node), 1);
}

/// Stopping cancels every import before its commit point, the running one and those queued
/// behind it: a queued import never starts after a stop was asked.
#[tokio::test]
async fn a_stop_cancels_queued_imports_too() {
    let (tmp, node, writer) = started();
    let (running, events) = spawn_import(&writer, import_file(tmp.path(), 3000));
    signing(events).await;
    let queued = {
        let writer = writer.clone();
        let path = tmp.path().join("second.jsonl");
        std::fs::copy(import_file(tmp.path(), 10), &path).unwrap();
        tokio::spawn(async move { writer.import(import_job(path)).await })
    };
    writer.stop().await;
    let first = running.await.unwrap();
    let second = queued.await.unwrap();
    let head = node.own_head().unwrap().unwrap().seq;
    match first {
        // Past its commit point before the stop came: it was finished.
        Ok(done) => assert_eq!(head, done.last_seq),
        Err(e) => {
            assert!(matches!(e, NodeError::Cancelled), "{e}");
            assert_eq!(head, 1, "only the profile");
        }
    }
    assert!(second.is_err(), "an import queued behind the stop ran");
    assert!(head <= 1 + 3000, "the queued import ran: head {head}");
    // A second stop returns too.
    writer.stop().await;
}
