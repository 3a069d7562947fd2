//! Why a link to a peer ended ([`LinkError`]), and when to try again ([`Backoff`]).
//!
//! A refusal that only an operator can lift (this region is not admitted, the peer is not the
//! pinned key, the roles, protocol versions or charters do not match) is *permanent*: the dialer waits
//! [`REFUSED_BACKOFF_MIN_MS`] and longer before it asks again, instead of retrying every few
//! seconds for ever. Everything else (no answer, a lost connection, a store error) is
//! *transient* and retried within [`BACKOFF_MAX_MS`], so a restarted aggregator is back in
//! seconds.

use std::time::Duration;

use spindel_protocol::sync::ErrorCode;

use crate::local::NodeError;
use crate::transport::TransportError;

/// First wait after a transient failure.
pub const BACKOFF_MIN_MS: u64 = 200;
/// Longest wait after transient failures: a region notices a restarted aggregator within it.
pub const BACKOFF_MAX_MS: u64 = 3_000;
/// A link that lasted this long starts its next backoff from [`BACKOFF_MIN_MS`] again.
pub const BACKOFF_RESET_AFTER_MS: u64 = 10_000;
/// First wait after a permanent refusal (not admitted, wrong key, role, version): an operator
/// must act first, and a region allowed since is linked within it.
pub const REFUSED_BACKOFF_MIN_MS: u64 = 15_000;
/// Longest wait after repeated permanent refusals.
pub const REFUSED_BACKOFF_MAX_MS: u64 = 120_000;

/// Why a sync session or a link ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The session was closed with a protocol error code, by the peer (its `Error` message
    /// or its QUIC close) or by this node (the peer broke the protocol).
    #[error("{reason}")]
    Closed { code: ErrorCode, reason: String },
    #[error("peer closed the stream")]
    StreamEnded,
    #[error(transparent)]
    Node(#[from] NodeError),
}

impl LinkError {
    /// The protocol error code that ended the session, if one did (also when it came as the
    /// QUIC close of the connection rather than an `Error` frame).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            LinkError::Closed { code, .. } => Some(*code),
            LinkError::Transport(TransportError::Connection(
                quinn::ConnectionError::ApplicationClosed(close),
            )) => ErrorCode::from_code(close.error_code.into_inner()),
            _ => None,
        }
    }

    /// A normal end: the peer or this node closed the session with [`ErrorCode::Done`]
    /// (caught up, shutting down), not a failure.
    pub fn is_normal_end(&self) -> bool {
        self.code() == Some(ErrorCode::Done)
    }

    /// Whether asking again soon cannot help: the peer refuses this node until an operator
    /// acts (admits it, or upgrades the node of the older protocol version).
    pub fn is_permanent(&self) -> bool {
        matches!(self, LinkError::Transport(TransportError::WrongPeer { .. }))
            || matches!(
                self.code(),
                Some(
                    ErrorCode::NotAdmitted
                        | ErrorCode::Role
                        | ErrorCode::Version
                        | ErrorCode::Charter
                        | ErrorCode::Rotated
                )
            )
    }
}

/// The dialer's waits between attempts, with jitter (half to all of the current delay).
#[derive(Debug, Clone)]
pub struct Backoff {
    transient_ms: u64,
    refused_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            transient_ms: BACKOFF_MIN_MS,
            refused_ms: REFUSED_BACKOFF_MIN_MS,
        }
    }
}

impl Backoff {
    /// The wait before the next attempt, after a link that ended with `outcome` having lasted
    /// `lasted`; `jitter` is a random number (taken modulo the delay).
    pub fn after(
        &mut self,
        outcome: &Result<(), LinkError>,
        lasted: Duration,
        jitter: u64,
    ) -> Duration {
        if lasted > Duration::from_millis(BACKOFF_RESET_AFTER_MS) {
            *self = Backoff::default();
        }
        if matches!(outcome, Err(e) if e.is_permanent()) {
            // A refusal never waits less than its minimum, jitter included.
            let wait = self.refused_ms;
            self.refused_ms = (wait * 2).min(REFUSED_BACKOFF_MAX_MS);
            return Duration::from_millis(wait + jitter % (wait / 2 + 1));
        }
        let delay = self.transient_ms;
        self.transient_ms = (delay * 2).min(BACKOFF_MAX_MS);
        Duration::from_millis(delay / 2 + jitter % (delay / 2 + 1))
    }
}

/// A peer as `status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PeerStatus {
    pub node_id: String,
    /// An aggregator's regions: the name the region is admitted under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When this node last had a live session with the peer (Unix ms; now while connected),
    /// if it had one since it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<u64>,
    pub address: String,
    pub role: String,
    pub connected: bool,
    /// Entries this node holds that the peer does not (yet), for the authors sent to it.
    pub lag: u64,
    pub last_error: Option<String>,
    /// Dialed peers only: the wait before the next attempt after the last failure (0 while
    /// connected); long after a refusal only an operator can lift (see `link::Backoff`).
    /// Absent for peers this node does not dial (an aggregator's regions): it never retries
    /// them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Dialed aggregators: how far the aggregator holds this node's own log, as its opening
    /// heads and acks (sent once a batch is durable there) said, since this node started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own_acked: Option<u64>,
    /// Dialed aggregators: own entries this node holds beyond `own_acked` (not yet sent or
    /// not yet acknowledged); filled in by `status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own_not_sent: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Result<(), LinkError> {
        Err(LinkError::Closed {
            code: ErrorCode::NotAdmitted,
            reason: "peer closed: this region is not admitted by the aggregator".into(),
        })
    }

    /// Transient failures are retried within a few seconds; a refusal is not retried hot: its
    /// waits start at [`REFUSED_BACKOFF_MIN_MS`] and grow to [`REFUSED_BACKOFF_MAX_MS`]; a link
    /// that lasted resets both.
    #[test]
    fn refusals_back_off_long_and_transient_failures_stay_short() {
        let mut b = Backoff::default();
        let lost = Err(LinkError::StreamEnded);
        let short = Duration::from_millis(10);
        for jitter in [0, u64::MAX / 3, u64::MAX] {
            let mut b = Backoff::default();
            for _ in 0..20 {
                let w = b.after(&lost, short, jitter);
                assert!(w <= Duration::from_millis(BACKOFF_MAX_MS), "{w:?}");
            }
        }
        let mut waits = Vec::new();
        for jitter in [0, 7, u64::MAX] {
            waits.push(b.after(&refused(), short, jitter));
        }
        assert!(
            waits
                .iter()
                .all(|w| *w >= Duration::from_millis(REFUSED_BACKOFF_MIN_MS)),
            "{waits:?}"
        );
        for _ in 0..20 {
            let w = b.after(&refused(), short, u64::MAX);
            assert!(w <= Duration::from_millis(REFUSED_BACKOFF_MAX_MS * 3 / 2));
        }
        assert!(b.after(&refused(), short, 0) >= Duration::from_millis(REFUSED_BACKOFF_MAX_MS));
        // A link that lasted: the next refusal starts from the minimum again.
        let lasted = Duration::from_millis(BACKOFF_RESET_AFTER_MS + 1);
        assert_eq!(
            b.after(&refused(), lasted, 0),
            Duration::from_millis(REFUSED_BACKOFF_MIN_MS)
        );
        assert_eq!(ErrorCode::from_code(3), Some(ErrorCode::NotAdmitted));
        assert_eq!(ErrorCode::from_code(99), None);
        // Another copy's session is refused for as long as it lives, not until an operator
        // acts: asked again within seconds, so the node signs again soon after it is gone.
        assert_eq!(ErrorCode::from_code(6), Some(ErrorCode::OtherCopy));
        let other_copy = LinkError::Closed {
            code: ErrorCode::OtherCopy,
            reason: String::new(),
        };
        assert!(!other_copy.is_permanent() && !other_copy.is_normal_end());
        assert!(!LinkError::StreamEnded.is_permanent());
        assert!(refused().unwrap_err().is_permanent());
        assert!(
            !LinkError::Closed {
                code: ErrorCode::Protocol,
                reason: String::new()
            }
            .is_permanent()
        );
    }
}
