//! `cargo bench -p spindel-node --bench frames`: mutated frames against a running aggregator.
//!
//! An admitted region's key sends valid query frames with 1-3 bytes changed (sometimes in the
//! length prefix), each on its own stream, from 4 connections at once; a frame that breaks the
//! protocol closes its connection and the sender dials again. Prints frames sent, reconnects,
//! the process's peak and final resident memory (node and sender together: an upper bound for
//! the node), and checks the node still answers a real query. No assertion but "no panic and it
//! still answers". SPINDEL_FRAMES=N sets the count (default 100,000).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/kit/mod.rs"]
mod kit;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use spindel_node::remote_query_as;
use spindel_node::transport::{Limits, Transport};
use spindel_protocol::SecretKey;
use spindel_protocol::sync::{Message, QueryRequest, encode_frame};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A small xorshift: reproducible mutations without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total: u64 = std::env::var("SPINDEL_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let region = SecretKey::from_bytes(&[7; 32]);
    let agg = kit::aggregator(&[(region.node_id(), Some("skane"))]).await;
    let peer = agg.addr();
    let running = agg.running;
    let valid = encode_frame(&Message::Query(QueryRequest {
        kind: Some("method".into()),
        region: Some("skane".into()),
        tag: Some("samverkan".into()),
        text: Some("föreningar".into()),
        limit: Some(20),
        cursor: None,
    }));
    let sent = Arc::new(AtomicU64::new(0));
    let reconnects = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let (peer, valid, sent, reconnects, region) = (
            peer.clone(),
            valid.clone(),
            sent.clone(),
            reconnects.clone(),
            region.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let transport = Transport::client(&region, Limits::default()).unwrap();
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
            let mut conn = transport.connect(&peer).await.unwrap();
            while sent.fetch_add(1, Ordering::Relaxed) < total {
                let mut frame = valid.clone();
                for _ in 0..(1 + rng.next() % 3) {
                    // One change in 16 hits the length prefix.
                    let i = if rng.next().is_multiple_of(16) {
                        (rng.next() % 4) as usize
                    } else {
                        4 + (rng.next() as usize % (frame.len() - 4))
                    };
                    frame[i] = rng.next() as u8;
                }
                let ok = async {
                    let (mut s, mut r) = conn.open_bi().await.ok()?;
                    s.write_all(&frame).await.ok()?;
                    let _ = s.finish();
                    let mut buf = [0u8; 4096];
                    tokio::time::timeout(Duration::from_secs(2), r.read(&mut buf))
                        .await
                        .ok()?
                        .ok()?
                };
                let answered = ok.await.is_some();
                if !answered || conn.close_reason().is_some() {
                    reconnects.fetch_add(1, Ordering::Relaxed);
                    conn = match transport.connect(&peer).await {
                        Ok(c) => c,
                        Err(_) => transport.connect(&peer).await.unwrap(),
                    };
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let answer = remote_query_as(&region, &peer, Default::default(), Limits::default())
        .await
        .expect("the node answers after the flood");
    assert!(answer.contains("records"));
    println!(
        "{total} mutated frames in {secs:.1} s ({:.0} frames/s), {} reconnects; peak RSS {} MiB, now {} MiB (node and sender in one process); the node still answers",
        total as f64 / secs,
        reconnects.load(Ordering::Relaxed),
        status_kib("VmHWM:") / 1024,
        status_kib("VmRSS:") / 1024,
    );
    running.stop().await.unwrap();
}
