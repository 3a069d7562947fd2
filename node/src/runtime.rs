//! The running node (`spindel run`): starts its parts and stops them.
//!
//! [`Running::start`] starts the node's [`crate::writer::Writer`] (every write, and the
//! announcement of what it changed), the QUIC listener whose connections
//! [`crate::accept::serve_connection`] serves, one [`crate::dialer`] per aggregator, the
//! catch-up gate's offline timer and the erasure retry. [`Running::shutdown`] stops them and
//! returns once the writer has let go of the node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use spindel_protocol::sync::ErrorCode;
use tokio::sync::watch;

use crate::gate::CATCH_UP_WAIT;
use crate::local::{LocalNode, NodeError, Role};
use crate::read::Reads;
use crate::shared::Shared;
use crate::transport::{Limits, PeerAddr, Transport, TransportError};

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// How often purged payloads whose erasure failed are tried again.
pub const ERASE_RETRY: Duration = Duration::from_secs(30);

/// How often a region handing over to a rotated key looks whether an aggregator holds the
/// rotation.
pub const HANDOVER_POLL: Duration = Duration::from_millis(250);

/// A region whose key signed a rotation switches to the new key once an aggregator holds the
/// rotation (the old key must carry it there: an aggregator takes only a member key's
/// session), then says so through [`Shared::switched`] and ends.
async fn handover_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(HANDOVER_POLL);
    let mut failed = false;
    loop {
        tick.tick().await;
        let Some(handover) = shared.node.handover() else {
            continue;
        };
        if !shared.node.dir().join(crate::local::NEXT_KEY_FILE).exists()
            || !shared.own_log_delivered(handover.seq)
        {
            continue;
        }
        let now = crate::shared::now_ms();
        // The aggregators' acknowledgements were of the old key's log.
        if let Err(e) = shared
            .writer
            .witness(crate::local::WitnessJob::KeyRotated)
            .await
        {
            tracing::warn!(error = %e, "cannot reset what the aggregators acknowledged");
        }
        match shared.blocking(move |n| n.switch_key(now)).await {
            Ok(retired) => {
                tracing::info!(to = %handover.to, retired = %retired.display(), "an aggregator holds the key rotation: running under the new key");
                shared.switched.send_replace(true);
                return;
            }
            Err(e) if !failed => {
                tracing::error!(error = %e, "cannot switch to the rotated key; trying again");
                failed = true;
            }
            Err(_) => {}
        }
    }
}

/// What `spindel run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub listen: Option<SocketAddr>,
    pub aggregators: Vec<PeerAddr>,
    pub limits: Limits,
    /// Reverse proxies whose `X-Forwarded-For` names the client (settings: `trusted_proxies`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How long payloads the members ordered erased are held before they are erased for good
    /// (settings: `erasure_settle_secs`; `None`: [`crate::store::ERASURE_SETTLE`]).
    pub erasure_settle: Option<Duration>,
}

/// A running node's tasks.
#[derive(Debug)]
pub struct Running {
    pub shared: Arc<Shared>,
    pub listen_addr: Option<SocketAddr>,
    transport: Option<Transport>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Where peers reach this node (`NODEID@ADDR`), when it listens.
    pub fn peer_addr(&self) -> Option<PeerAddr> {
        self.listen_addr.map(|addr| PeerAddr {
            node_id: self.shared.node.node_id(),
            host: addr.ip().to_string(),
            port: addr.port(),
        })
    }

    /// Starts the writer, the QUIC listener (when `opts.listen`) and a dialer per aggregator
    /// of `node`, with its own key.
    pub async fn start(node: Arc<LocalNode>, opts: RunOptions) -> Result<Running, StartError> {
        let key = node.key().clone();
        if let Some(settle) = opts.erasure_settle {
            node.set_erasure_settle(settle);
        }
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Shared::with_proxies(node, shutdown_rx, opts.trusted_proxies.clone())?;
        let mut tasks = Vec::new();
        let transport = match opts.listen {
            Some(addr) => Transport::bind(&key, addr, opts.limits.clone())?,
            None => Transport::client(&key, opts.limits.clone())?,
        };
        let listen_addr = match opts.listen {
            Some(_) => transport.local_addr().ok(),
            None => None,
        };
        if opts.listen.is_some() {
            let shared = shared.clone();
            let t = transport.clone();
            let limits = opts.limits.clone();
            let connections = Arc::new(tokio::sync::Semaphore::new(opts.limits.connections_max));
            tasks.push(tokio::spawn(async move {
                while let Some(incoming) = t.accept().await {
                    // Each connection holds a permit for as long as it lives: at most
                    // `connections_max` at once, handshakes included; more are refused.
                    let Ok(permit) = connections.clone().try_acquire_owned() else {
                        tracing::warn!(address = %incoming.remote_address(), "refused a connection: at the connection limit");
                        incoming.refuse();
                        continue;
                    };
                    // Each handshake in a task of its own: a peer that never completes one holds
                    // up nobody else.
                    let (shared, t, limits) = (shared.clone(), t.clone(), limits.clone());
                    tokio::spawn(async move {
                        match t.handshake(incoming).await {
                            Ok((conn, peer)) => {
                                let Some(_per_peer) = shared.peer_connection(peer) else {
                                    tracing::warn!(peer = %peer.short(), "refused a connection: too many from one key");
                                    conn.close(ErrorCode::Protocol.code().into(), b"too many connections");
                                    return;
                                };
                                crate::accept::serve_connection(shared, conn, peer, limits).await;
                            }
                            Err(e) => tracing::debug!(error = %e, "incoming connection failed"),
                        }
                        drop(permit);
                    });
                }
            }));
        }
        {
            // Payloads held for erasure orders are erased for good once the orders settle
            // (looked at again when membership changes, and when the next one is due); a
            // purged payload whose erasure failed (a full disk, an I/O error) is retried.
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                let mut members = shared.writer.events().subscribe_admissions();
                loop {
                    let mut wait = ERASE_RETRY;
                    match shared.writer.purge_settled().await {
                        Ok(settled) => {
                            if let Some(due) = settled.next_due_ms {
                                let ms = due.saturating_sub(crate::local::now_ms());
                                wait = wait.min(Duration::from_millis(ms));
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "erasing the payloads of settled erasure orders failed; retried");
                        }
                    }
                    if shared.node.erasures_pending()
                        && let Err(e) = shared.writer.erase_pending().await
                    {
                        tracing::error!(error = %e, "erasing purged payloads failed; retried");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        changed = members.changed() => {
                            if changed.is_err() {
                                return;
                            }
                        }
                    }
                }
            }));
        }
        {
            // Failed logins are written one line per window, when the window closes.
            let staff = shared.staff.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(crate::staff::FAILURE_FLUSH_EVERY);
                loop {
                    tick.tick().await;
                    let staff = staff.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        staff.flush_failures(false);
                        staff.save_sessions();
                    })
                    .await;
                }
            }));
        }
        shared.gate.pin(opts.aggregators.iter().map(|p| p.node_id));
        let is_region = shared.node.config().role == Role::Region;
        if is_region {
            tasks.push(tokio::spawn(handover_loop(shared.clone())));
        }
        tasks.push(if is_region {
            tokio::spawn(crate::checkpoints::stale_loop(shared.clone()))
        } else {
            tokio::spawn(crate::checkpoints::sign_loop(shared.clone()))
        });
        if is_region && (!opts.aggregators.is_empty() || shared.node.restored()) {
            shared.gate.close();
            let restored = shared.node.restored();
            let gate = shared.clone();
            tasks.push(tokio::spawn(async move {
                if restored {
                    tracing::warn!("this node was restored from a backup: it publishes once it has caught up with its aggregator");
                }
                tokio::time::sleep(CATCH_UP_WAIT).await;
                gate.gate.offline_wait_passed(&gate.node);
            }));
        }
        for peer in opts.aggregators {
            tasks.push(tokio::spawn(crate::dialer::dial_loop(
                shared.clone(),
                transport.clone(),
                peer,
            )));
        }
        Ok(Running {
            shared,
            listen_addr,
            transport: Some(transport),
            shutdown_tx,
            tasks,
        })
    }

    /// Stops every task and closes the endpoint.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(t) = self.transport.take() {
            t.shutdown().await;
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let staff = self.shared.staff.clone();
        let _ = tokio::task::spawn_blocking(move || {
            staff.flush_failures(true);
            staff.save_sessions();
        })
        .await;
        self.shared.writer.stop().await;
    }
}
