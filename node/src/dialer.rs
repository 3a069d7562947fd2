//! The dialer: one task per pinned aggregator keeps the link up, trying again after each
//! failure as [`Backoff`] says (seconds after a lost link, long after a refusal only an
//! operator can lift), and logs one line per transition.

use std::sync::Arc;
use std::time::Instant;

use crate::link::PeerStatus;
use crate::link::{Backoff, LinkError};
use crate::session::{SessionMode, session_with_aggregator};
use crate::shared::Shared;
use crate::transport::{PeerAddr, Transport};

/// Keeps the live link to the aggregator `peer` until the node shuts down.
pub(crate) async fn dial_loop(shared: Arc<Shared>, transport: Transport, peer: PeerAddr) {
    let key = format!("out:{peer}");
    let address = format!("{}:{}", peer.host, peer.port);
    shared.add_peer(
        key.clone(),
        PeerStatus {
            node_id: peer.node_id.to_hex(),
            name: None,
            last_seen_ms: None,
            address: address.clone(),
            role: "aggregator".into(),
            connected: false,
            lag: 0,
            last_error: None,
            retry_in_ms: Some(0),
            own_acked: None,
            own_not_sent: None,
        },
    );
    let mut backoff = Backoff::default();
    let mut shutdown = shared.shutdown_signal();
    let mut last_failure: Option<String> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = Instant::now();
        let result: Result<(), LinkError> =
            session_with_aggregator(&shared, &transport, &peer, &key, SessionMode::Live)
                .await
                .map(|_| ());
        if let Err(e @ LinkError::Closed { reason, .. }) = &result
            && e.code() == Some(spindel_protocol::sync::ErrorCode::OtherCopy)
        {
            shared.gate.refused_as_copy(peer.node_id, reason);
        }
        // A key handing over is refused once the aggregator holds its rotation: expected, and
        // the sign to switch.
        let handed_over = matches!(&result, Err(e) if e.code() == Some(spindel_protocol::sync::ErrorCode::Rotated));
        // A refusal for good (not another copy: that one has its own state) is kept for a
        // restored node's writes, which then fail at once.
        if let Err(e) = &result
            && e.is_permanent()
            && e.code() != Some(spindel_protocol::sync::ErrorCode::OtherCopy)
        {
            let said = match e {
                LinkError::Closed { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            shared.gate.refused_for_good(Some(&said));
        }
        if handed_over {
            shared.note_rotation_held();
        }
        let jitter = rand_core::RngCore::next_u64(&mut rand_core::OsRng);
        let wait = backoff.after(&result, started.elapsed(), jitter);
        let text = result.as_ref().err().map(ToString::to_string);
        let mut was_up = false;
        shared.set_peer(&key, |p| {
            was_up = p.connected;
            p.connected = false;
            p.last_error = text.clone();
            p.retry_in_ms = Some(wait.as_millis() as u64);
        });
        // One line per transition: the link going down, or a new reason it cannot come up.
        // The same failure again while the aggregator stays away is logged at debug.
        let retry_s = format!("{:.1}", wait.as_secs_f64());
        match &result {
            Ok(()) => tracing::info!(peer = %peer.node_id.short(), "link to aggregator closed"),
            Err(_) if handed_over => {
                tracing::info!(peer = %peer.node_id.short(), "the aggregator holds the key rotation and no longer takes the old key");
            }
            Err(e) if e.is_normal_end() => {
                tracing::info!(peer = %peer.node_id.short(), reason = %e, "link to aggregator closed")
            }
            Err(e) if e.is_permanent() && last_failure != text => {
                tracing::error!(peer = %peer.node_id.short(), address = %address, error = %e, retry_in_s = %retry_s, "the aggregator refuses this node; someone must act first (the error says who: an operator's `spindel allow`, the member regions' endorsements under a charter, or the pinned key); trying again later");
            }
            Err(e) if was_up || last_failure != text => {
                tracing::warn!(peer = %peer.node_id.short(), address = %address, error = %e, retry_in_s = %retry_s, "link to aggregator down; reconnecting");
            }
            Err(e) => {
                tracing::debug!(peer = %peer.node_id.short(), error = %e, retry_in_s = %retry_s, "link to aggregator still down")
            }
        }
        last_failure = text;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}
