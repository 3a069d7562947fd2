//! The running node's part in keeping the centre watched: an aggregator signs a checkpoint
//! whenever what it relays changed (at most every [`CHECKPOINT_INTERVAL_MS`], at least every
//! [`CHECKPOINT_REFRESH_MS`], and at start) and offers it to every session; a region audits
//! continuously: every finding is a warning in the log when it is made (session.rs), and an
//! aggregator gone silent (`stale`) is one too, checked every [`STALE_CHECK`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use spindel_protocol::witness::{CHECKPOINT_INTERVAL_MS, CHECKPOINT_REFRESH_MS, FindingKind};

use crate::local::WitnessJob;
use crate::read::Reads;
use crate::shared::{Shared, now_ms};

/// How often a region looks for aggregators gone silent.
pub const STALE_CHECK: Duration = Duration::from_secs(60);

/// Aggregator: signs checkpoints for as long as the node runs.
pub(crate) async fn sign_loop(shared: Arc<Shared>) {
    let mut heads = shared.writer.events().subscribe_heads();
    let mut admissions = shared.writer.events().subscribe_admissions();
    let mut refresh = tokio::time::interval(Duration::from_millis(CHECKPOINT_REFRESH_MS));
    refresh.tick().await;
    // The first is signed at start, changed or not: regions that connect see at once what
    // this aggregator holds now (an old copy of its directory shows as a rollback).
    let mut force = true;
    loop {
        let began = tokio::time::Instant::now();
        match shared.writer.witness(WitnessJob::Sign { force }).await {
            Ok(done) => {
                if let Some(cp) = done.signed {
                    tracing::debug!(
                        counter = cp.checkpoint.counter,
                        regions = cp.checkpoint.heads.len(),
                        "signed a checkpoint"
                    );
                    shared.checkpoint.send_replace(Some(cp));
                }
            }
            Err(crate::local::NodeError::Stopped) => return,
            Err(e) => {
                tracing::error!(error = %e, "signing a checkpoint failed; tried again at the next change")
            }
        }
        force = false;
        tokio::select! {
            head = heads.recv() => {
                if matches!(head, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
            changed = admissions.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = refresh.tick() => force = true,
        }
        // At most one checkpoint per interval: the changes meanwhile go into the next.
        tokio::time::sleep_until(began + Duration::from_millis(CHECKPOINT_INTERVAL_MS)).await;
        while heads.try_recv().is_ok() {}
    }
}

/// Region: logs an aggregator that has gone silent (once when it goes stale, once when it is
/// back).
pub(crate) async fn stale_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(STALE_CHECK);
    let mut stale: BTreeSet<String> = BTreeSet::new();
    loop {
        tick.tick().await;
        let report = shared.read(|n| n.audit(now_ms())).await;
        let Ok(report) = report else {
            continue;
        };
        let now: BTreeSet<String> = report
            .findings
            .iter()
            .filter(|f| f.is(FindingKind::Stale))
            .map(|f| {
                if !stale.contains(&f.aggregator) {
                    tracing::warn!(finding = "stale", aggregator = %f.aggregator.get(..8).unwrap_or(&f.aggregator), detail = %f.detail, "audit finding");
                }
                f.aggregator.clone()
            })
            .collect();
        for back in stale.difference(&now) {
            tracing::info!(aggregator = %back.get(..8).unwrap_or(back), "a fresh checkpoint arrived from an aggregator that had gone silent");
        }
        stale = now;
    }
}
