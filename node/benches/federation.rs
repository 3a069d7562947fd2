//! `cargo bench -p spindel-node --bench federation`: prints, in one run on this machine,
//! - the raw `verify_strict` rate and the batch-verify rate (the ceiling);
//! - the aggregator's ingest rate from 8 regions at once (1 KiB records), and its ratio to both;
//! - publish -> visible-at-aggregator latency p50 / p99 over a live link;
//! - bytes and round trips to resume when 1 entry of 100,000 is missing;
//! - a new region's cold join of a 100,000-entry aggregate, as a ratio of the ceiling.
//!
//! Figures, not assertions. SPINDEL_BENCH_SCALE=0.1 runs a smaller version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../tests/kit/mod.rs"]
mod kit;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use spindel_node::local::{self, LocalNode, Role};
use spindel_node::server::NodeHandle;
use spindel_node::sync_until_caught_up;
use spindel_node::transport::{Limits, PeerAddr, Transport};
use spindel_node::{Reads, Shared};
use spindel_protocol::NodeId;
use spindel_protocol::record::Kind;

fn scale(n: usize) -> usize {
    let f: f64 = std::env::var("SPINDEL_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * f) as usize).max(10)
}

fn verify_rates() -> (f64, f64) {
    let keys: Vec<SigningKey> = (0..8u8)
        .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    let n = 20_000;
    let msgs: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("spindel/entry header {i} {}", "x".repeat(120)).into_bytes())
        .collect();
    let sigs: Vec<Signature> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| keys[i % 8].sign(m))
        .collect();
    let vks: Vec<VerifyingKey> = (0..n).map(|i| keys[i % 8].verifying_key()).collect();
    let t = Instant::now();
    for i in 0..n {
        vks[i].verify_strict(&msgs[i], &sigs[i]).unwrap();
    }
    let strict = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let m: Vec<&[u8]> = chunk.iter().map(|&i| msgs[i].as_slice()).collect();
        let s: Vec<Signature> = chunk.iter().map(|&i| sigs[i]).collect();
        let k: Vec<VerifyingKey> = chunk.iter().map(|&i| vks[i]).collect();
        ed25519_dalek::verify_batch(&m, &s, &k).unwrap();
    }
    let batch = n as f64 / t.elapsed().as_secs_f64();
    (strict, batch)
}

fn region(tmp: &std::path::Path, name: &str, records: usize, body_bytes: usize) -> LocalNode {
    let node = kit::new_node(tmp, name, Role::Region, &[]);
    if records > 0 {
        let lines: Vec<String> = (0..records)
            .map(|i| {
                serde_json::json!({"title": format!("Metod {i} i {name}"), "summary": "Lärande", "description": "x".repeat(body_bytes)}).to_string()
            })
            .collect();
        node.import(
            Kind::Method,
            local::ImportSource::Text(&lines.join("\n")),
            &mut rand_core::OsRng,
            local::now_ms(),
            &|_, _| {},
        )
        .unwrap();
    }
    node
}

async fn aggregator(tmp: &std::path::Path, admit: &[NodeId]) -> (NodeHandle, PeerAddr) {
    let admit: Vec<_> = admit.iter().map(|id| (*id, None)).collect();
    let node = kit::new_node(tmp, "agg", Role::Aggregator, &admit);
    let running = kit::run(node, true, vec![], Limits::default()).await;
    let peer = running.peer_addr().unwrap();
    (running, peer)
}

fn total_entries(node: &spindel_node::ReadModel) -> u64 {
    node.heads().unwrap().values().map(|h| h.seq).sum()
}

async fn ingest_rate(strict: f64, batch: f64) {
    let per_region = scale(4000);
    let tmp = tempfile::tempdir().unwrap();
    let regions: Vec<LocalNode> = (0..8)
        .map(|i| region(tmp.path(), &format!("r{i}"), per_region, 900))
        .collect();
    let ids: Vec<NodeId> = regions.iter().map(LocalNode::node_id).collect();
    let (agg, peer) = aggregator(tmp.path(), &ids).await;
    let expected = 8 * (per_region as u64 + 1);
    let t = Instant::now();
    let mut running = Vec::new();
    for r in regions {
        running.push(kit::run(r, false, vec![peer.clone()], Limits::default()).await);
    }
    while total_entries(&agg.shared().node) < expected {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = expected as f64 / t.elapsed().as_secs_f64();
    println!(
        "whole network, 8 regions at once (in this process, each also mirroring the aggregate), 1 KiB records: {expected} entries in {:.2} s = {rate:.0} entries/s \
         ({:.0}% of batch-verify ceiling, {:.0}% of verify_strict rate)",
        t.elapsed().as_secs_f64(),
        100.0 * rate / batch,
        100.0 * rate / strict
    );
    for r in running {
        r.stop().await.unwrap();
    }
    agg.stop().await.unwrap();
}

/// The aggregator's own ingest rate: 8 raw pushers (admitted region keys) speak the protocol,
/// pushing pre-signed 1 KiB entries with 4 batches in flight; they do not acknowledge the
/// relayed aggregate, so after its window the aggregator spends nothing on fan-out.
async fn raw_ingest_rate(strict: f64, batch: f64) {
    use spindel_protocol::entry::{Entry, Head, Payload, RecordId, next_header};
    use spindel_protocol::sync::{Message, SyncEntry};
    let per_region = scale(4000);
    let keys: Vec<spindel_protocol::SecretKey> = (0..8u8)
        .map(|i| spindel_protocol::SecretKey::from_bytes(&[100 + i; 32]))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let ids: Vec<NodeId> = keys.iter().map(|k| k.node_id()).collect();
    let (agg, peer) = aggregator(tmp.path(), &ids).await;
    // Pre-sign every batch (not timed).
    let mut all_batches = Vec::new();
    for key in &keys {
        let mut head: Option<Head> = None;
        let mut batches = Vec::new();
        let mut batch = Vec::new();
        for i in 0..per_region {
            let body = serde_json::json!({"title": format!("Metod {i}"), "summary": "Lärande", "description": "x".repeat(900)}).to_string();
            let payload = Payload::seal(&mut rand_core::OsRng, body);
            let mut rid = [0u8; 16];
            rid[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let h = next_header(
                key.node_id(),
                head,
                local::now_ms(),
                Kind::Method,
                RecordId(rid),
                Some(&payload),
            );
            let e = Entry::sign(key, h);
            head = Some(Head {
                seq: e.header().seq,
                hash: e.hash(),
            });
            batch.push(SyncEntry {
                entry: e.to_wire(),
                payload: Some(payload),
            });
            if batch.len() == 256 {
                batches.push(std::mem::take(&mut batch));
            }
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        all_batches.push(batches);
    }
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (key, batches) in keys.into_iter().zip(all_batches) {
        let peer = peer.clone();
        tasks.push(tokio::spawn(async move {
            let kit::RawPeer {
                mut send,
                mut recv,
                conn,
                transport: _transport,
            } = kit::RawPeer::connect(&key, &peer).await;
            let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel();
            let reader = tokio::spawn(async move {
                while let Ok(Some(m)) = recv.recv().await {
                    if matches!(m, Message::Ack { .. }) && ack_tx.send(()).is_err() {
                        return;
                    }
                }
            });
            let total = batches.len();
            let mut in_flight = 0;
            for b in batches {
                if in_flight == 4 {
                    ack_rx.recv().await.unwrap();
                    in_flight -= 1;
                }
                send.send(&Message::Entries { entries: b }).await.unwrap();
                in_flight += 1;
            }
            while in_flight > 0 {
                ack_rx.recv().await.unwrap();
                in_flight -= 1;
            }
            reader.abort();
            conn.close(0u32.into(), b"done");
            total
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = t.elapsed().as_secs_f64();
    let n = 8 * per_region;
    let rate = n as f64 / elapsed;
    assert_eq!(total_entries(&agg.shared().node), n as u64);
    println!(
        "aggregator ingest alone (8 raw pushers, 1 KiB records, no mirrors): {n} entries in {elapsed:.2} s = {rate:.0} entries/s \
         ({:.0}% of batch-verify ceiling, {:.0}% of verify_strict rate; 2 cores shared with the pushers)",
        100.0 * rate / batch,
        100.0 * rate / strict
    );
    agg.stop().await.unwrap();
}

async fn latency() {
    let tmp = tempfile::tempdir().unwrap();
    let r = region(tmp.path(), "skane", 0, 0);
    let (agg, peer) = aggregator(tmp.path(), &[r.node_id()]).await;
    let me = r.node_id();
    let running = kit::run(r, false, vec![peer], Limits::default()).await;
    while agg.shared().node.head(&me).unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut heads = agg.shared().subscribe_heads();
    let rounds = scale(300);
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let json =
            serde_json::json!({"title": format!("Metod {i}"), "summary": "Kort"}).to_string();
        let t = Instant::now();
        let p = running
            .shared()
            .writer
            .publish(Kind::Method, json, None)
            .await
            .unwrap();
        loop {
            let (a, seq) = heads.recv().await.unwrap();
            if a == me && seq >= p.seq {
                break;
            }
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "publish -> visible at the aggregator ({rounds} publishes, each flushed on both sides): p50 {:.2} ms, p99 {:.2} ms",
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0
    );
    running.stop().await.unwrap();
    agg.stop().await.unwrap();
}

async fn resume() {
    let n = scale(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let r = Arc::new(region(tmp.path(), "skane", n - 2, 0)); // + profile = n - 1 entries
    let (agg, peer) = aggregator(tmp.path(), &[r.node_id()]).await;
    let key = r.key().clone();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let shared = Shared::new(r.clone(), stop_rx).unwrap();
    let transport = Transport::client(&key, Limits::default()).unwrap();
    let t = Instant::now();
    sync_until_caught_up(&shared, &transport, &peer, "bench")
        .await
        .unwrap();
    while agg
        .shared()
        .node
        .head(&r.node_id())
        .unwrap()
        .map_or(0, |h| h.seq)
        < (n - 1) as u64
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "first sync of {} entries: {:.2} s",
        n - 1,
        t.elapsed().as_secs_f64()
    );
    // One more entry, then resume.
    r.publish(
        Kind::Method,
        r#"{"title":"Den saknade","summary":"En enda post"}"#,
        None,
        &mut rand_core::OsRng,
        local::now_ms(),
    )
    .unwrap();
    let entry_bytes: usize = r
        .entries_from(&r.node_id(), n as u64, 1)
        .unwrap()
        .iter()
        .map(|i| i.entry.encode().len() + i.payload.as_ref().map_or(0, Vec::len))
        .sum();
    let report = sync_until_caught_up(&shared, &transport, &peer, "bench")
        .await
        .unwrap();
    let frames = report.frame_bytes_sent + report.frame_bytes_received;
    println!(
        "resume with 1 of {n} entries missing: {} frames / {} bytes sent, {} frames / {} bytes received \
         (frames total {frames} B; the entry is {entry_bytes} B; budget entry + 1 KiB + 40 B/author = {} B); \
         on the wire incl. QUIC handshake: {} B out, {} B in; round trips after the handshake: 1 (hello+heads flight) + 1 (entry, ack); rtt {} us",
        report.frames_sent,
        report.frame_bytes_sent,
        report.frames_received,
        report.frame_bytes_received,
        entry_bytes + 1024 + 40,
        report.udp_bytes_sent,
        report.udp_bytes_received,
        report.rtt_us,
    );
    transport.shutdown().await;
    agg.stop().await.unwrap();
}

/// A new region's first sync of the national aggregate, what `spindel sync` does: 8 regions'
/// logs of 1 KiB records at the aggregator (pushed there first, not timed), taken by a fresh
/// region through real QUIC on loopback; every entry verified with `verify_strict`, stored
/// durably and handed to the full-text index. Printed against the machine's ceiling: the
/// `verify_strict` rate of one core, measured in this run, times its cores.
async fn cold_join(strict: f64) {
    let per_region = scale(12_500);
    let tmp = tempfile::tempdir().unwrap();
    let regions: Vec<Arc<LocalNode>> = (0..8)
        .map(|i| Arc::new(region(tmp.path(), &format!("r{i}"), per_region, 900)))
        .collect();
    let fresh = Arc::new(kit::new_node(tmp.path(), "ny", Role::Region, &[]));
    let mut ids: Vec<NodeId> = regions.iter().map(|r| r.node_id()).collect();
    ids.push(fresh.node_id());
    let (agg, peer) = aggregator(tmp.path(), &ids).await;
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    for r in &regions {
        let shared = Shared::new(r.clone(), stop_rx.clone()).unwrap();
        let transport = Transport::client(r.key(), Limits::default()).unwrap();
        sync_until_caught_up(&shared, &transport, &peer, "bench")
            .await
            .unwrap();
        transport.shutdown().await;
    }
    let aggregate = 8 * (per_region as u64 + 1);
    while total_entries(&agg.shared().node) < aggregate {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(regions);
    let shared = Shared::new(fresh.clone(), stop_rx.clone()).unwrap();
    let transport = Transport::client(fresh.key(), Limits::default()).unwrap();
    let t = Instant::now();
    sync_until_caught_up(&shared, &transport, &peer, "bench")
        .await
        .unwrap();
    let took = t.elapsed().as_secs_f64();
    let held = total_entries(&shared.node) - 1;
    assert_eq!(held, aggregate, "the new region holds the whole aggregate");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ceiling = strict * cores as f64;
    let rate = aggregate as f64 / took;
    println!(
        "cold join: a new region's first sync of {aggregate} entries (8 regions, 1 KiB records) through QUIC: {took:.2} s = {rate:.0} entries/s \
         = {:.2} of the verify_strict ceiling on {cores} cores ({ceiling:.0}/s)",
        rate / ceiling
    );
    transport.shutdown().await;
    agg.stop().await.unwrap();
}

fn main() {
    let (strict, batch) = verify_rates();
    println!("verify_strict: {strict:.0} signatures/s (one core)");
    println!("verify_batch (64 per batch): {batch:.0} signatures/s (one core)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // SPINDEL_BENCH_ONLY=raw|network|latency|resume|join runs one part (for profiling).
    let only = std::env::var("SPINDEL_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    rt.block_on(async {
        if run("raw") {
            raw_ingest_rate(strict, batch).await;
        }
        if run("network") {
            ingest_rate(strict, batch).await;
        }
        if run("latency") {
            latency().await;
        }
        if run("resume") {
            resume().await;
        }
        if run("join") {
            cold_join(strict).await;
        }
    });
}
