//! `cargo bench -p spindel-protocol --bench membership`: what one membership replay costs when
//! the network is full of erasure orders.
//!
//! Eight founding regions (threshold 5), each at its erasure-order quota
//! (`ERASURE_ORDERS_PER_AUTHOR_MAX`), orders spread over records so that some reach the
//! threshold and most stay pending, replayed by `Membership::compute` as a node does after
//! every batch that holds an act. Prints the median of the runs, and the same replay without
//! the erasure orders (only the endorsements at their quota) measured in the same run, as the
//! peer the figure is read against. No assertion.

use std::time::{Duration, Instant};

use spindel_protocol::NodeId;
use spindel_protocol::charter::{Charter, Founder};
use spindel_protocol::entry::RecordId;
use spindel_protocol::ingest::{ACTS_PER_AUTHOR_MAX, ERASURE_ORDERS_PER_AUTHOR_MAX};
use spindel_protocol::membership::{Act, Membership, What};

const REGIONS: u8 = 8;
const RUNS: usize = 15;

fn id(b: u8) -> NodeId {
    NodeId([b; 32])
}

fn charter() -> Charter {
    Charter {
        network: "bänk".into(),
        threshold: 5,
        created_ms: 1,
        founders: (1..=REGIONS)
            .map(|i| Founder {
                node: id(i),
                name: format!("region-{i}"),
            })
            .collect(),
    }
}

fn acts(erasures: bool) -> Vec<Act> {
    let mut out = Vec::new();
    for r in 1..=REGIONS {
        let mut seq = 0;
        // Endorsements of candidates that never reach the threshold (one region each).
        for i in 0..ACTS_PER_AUTHOR_MAX {
            seq += 1;
            out.push(Act {
                time_ms: 1_000 + seq,
                author: id(r),
                seq,
                what: What::Endorse {
                    node: NodeId({
                        let mut k = [0u8; 32];
                        k[0] = 100 + r;
                        k[1..9].copy_from_slice(&i.to_be_bytes());
                        k
                    }),
                    name: format!("kandidat-{r}-{i}"),
                    replaces: None,
                },
                withdrawn_ms: None,
            });
        }
        if !erasures {
            continue;
        }
        for i in 0..ERASURE_ORDERS_PER_AUTHOR_MAX {
            seq += 1;
            // Records shared by regions in groups: every fourth record gets orders from every
            // region (erased), the rest from this region alone (pending).
            let shared = i % 4 == 0;
            let record = if shared {
                i
            } else {
                i + u64::from(r) * ERASURE_ORDERS_PER_AUTHOR_MAX
            };
            let mut rid = [0u8; 16];
            rid[..8].copy_from_slice(&record.to_be_bytes());
            out.push(Act {
                time_ms: 1_000 + seq,
                author: id(r),
                seq,
                what: What::Erase {
                    author: if shared { id(1) } else { id(1 + (r % REGIONS)) },
                    record: RecordId(rid),
                },
                withdrawn_ms: None,
            });
        }
    }
    out
}

fn median(acts: &[Act], charter: &Charter) -> (Duration, Membership) {
    let mut times = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let m = Membership::compute(charter, acts.iter().cloned());
        times.push(start.elapsed());
        last = Some(m);
    }
    times.sort();
    (times[RUNS / 2], last.expect("runs"))
}

fn main() {
    let charter = charter();
    let with = acts(true);
    let without = acts(false);
    let (t_with, m) = median(&with, &charter);
    let (t_without, _) = median(&without, &charter);
    println!(
        "membership replay, {} regions: {} acts ({} erasure orders: {} erased, {} pending) in {:.1} ms (median of {RUNS})",
        REGIONS,
        with.len(),
        with.len() - without.len(),
        m.erased.len(),
        m.pending_erasures.len(),
        t_with.as_secs_f64() * 1e3
    );
    println!(
        "peer: the {} endorsements alone in {:.1} ms; ratio {:.1}",
        without.len(),
        t_without.as_secs_f64() * 1e3,
        t_with.as_secs_f64() / t_without.as_secs_f64().max(1e-9)
    );
}
