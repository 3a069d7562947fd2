//! One place assembles a running node (like mini-redis's `server::run`): [`NodeHandle::start`]
//! takes an opened node and its [`NodeSettings`], checks the role rules, and starts the writer,
//! the QUIC listener and dialers ([`Running`]), the control socket, and the HTTP listeners it
//! is given (public page and API, operator's metrics, the editor). [`NodeHandle::stop`] stops
//! them in order and flushes the store. `spindel run` parses its flags and settings file and
//! calls these two; the tests start the binary, so they go through them too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::link::LinkError;
use crate::local::{LocalNode, NodeError, Role};
use crate::read::Reads;
use crate::runtime::{RunOptions, Running, StartError};
use crate::session::SyncReport;
use crate::shared::Shared;
use crate::transport::{Limits, PeerAddr, Transport, TransportError};

/// How long a stopping HTTP listener may take to finish its connections.
pub const LISTENER_STOP_WAIT: Duration = Duration::from_secs(5);

/// What a node runs with (`spindel run`'s flags and settings file, merged).
#[derive(Debug, Clone, Default)]
pub struct NodeSettings {
    /// QUIC: where regions reach an aggregator.
    pub listen: Option<SocketAddr>,
    /// Aggregators a region dials.
    pub aggregators: Vec<PeerAddr>,
    /// The public page and read-only API.
    pub http: Option<SocketAddr>,
    /// The operator's `/metrics`, `/healthz` and full status.
    pub metrics: Option<SocketAddr>,
    /// The editor (Redaktionen); a region only.
    pub admin: Option<SocketAddr>,
    pub limits: Limits,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Where readers find the knowledge bank; the editor links to it.
    pub public_url: Option<String>,
    /// How long payloads the members ordered erased are held before they are erased for good
    /// (`None`: [`crate::store::ERASURE_SETTLE`]).
    pub erasure_settle: Option<Duration>,
    /// The sites that may frame `/inbaddning` (origins; empty: any site).
    pub embed_ancestors: Vec<String>,
}

/// A setting the node's role does not allow (each says what to change).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoleError {
    #[error("an aggregator needs --listen HOST:PORT so regions can reach it")]
    AggregatorListens,
    #[error(
        "an aggregator has no editor: a region's records are edited on the region's own node (drop --admin)"
    )]
    AggregatorEditor,
    #[error(
        "an aggregator mirrors at most one upstream aggregator: give one --aggregator (the one it was started from)"
    )]
    AggregatorMirrorsOne,
}

/// The most upstream aggregators an aggregator mirrors (`--aggregator`, decision 0040).
pub const UPSTREAMS_MAX: usize = 1;

impl NodeSettings {
    /// The role rules: an aggregator listens, has no editor and dials at most one upstream
    /// aggregator, which it mirrors. A region without an aggregator is allowed (it shares
    /// nothing; the start warns).
    pub fn check(&self, role: Role) -> Result<(), RoleError> {
        match role {
            Role::Aggregator if self.listen.is_none() => Err(RoleError::AggregatorListens),
            Role::Aggregator if self.admin.is_some() => Err(RoleError::AggregatorEditor),
            Role::Aggregator if self.aggregators.len() > UPSTREAMS_MAX => {
                Err(RoleError::AggregatorMirrorsOne)
            }
            _ => Ok(()),
        }
    }
}

/// Why a node did not start (the role, a part that failed, a listener that could not bind).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Role(#[from] RoleError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("cannot serve {what} on {addr}: {error}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error(transparent)]
    Editor(#[from] crate::editor::EditorError),
    #[error("embed_ancestors: {0}")]
    EmbedAncestors(String),
}

/// Where a started node is reached (the addresses bound, port 0 resolved).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bound {
    pub listen: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

/// Listeners bound before the node starts: the demo binds its page's port first, so a taken
/// port fails before anything is written. A listener given here is used instead of binding
/// the matching address of [`NodeSettings`].
#[derive(Debug, Default)]
pub struct PreBound {
    /// The public page and read-only API.
    pub http: Option<tokio::net::TcpListener>,
}

/// A running node and every task it started.
#[derive(Debug)]
pub struct NodeHandle {
    running: Running,
    control: tokio::task::JoinHandle<()>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
    pub bound: Bound,
}

impl NodeHandle {
    /// Starts `node` with `settings`: nothing is started when a role rule is broken, and what
    /// was started is stopped again when a later part fails (a port in use, say).
    pub async fn start(node: LocalNode, settings: NodeSettings) -> Result<NodeHandle, ServeError> {
        NodeHandle::start_with(Arc::new(node), settings, PreBound::default()).await
    }

    /// [`NodeHandle::start`] with listeners bound beforehand, for a node its caller may hold
    /// too (a test that writes past the writer on purpose keeps it beside the running node).
    pub async fn start_with(
        node: Arc<LocalNode>,
        settings: NodeSettings,
        prebound: PreBound,
    ) -> Result<NodeHandle, ServeError> {
        let role = node.config().role;
        settings.check(role)?;
        if role == Role::Region && settings.aggregators.is_empty() {
            tracing::warn!(
                "no aggregator configured: this region shares nothing with the network (set aggregators in spindel.toml, or --aggregator)"
            );
        }
        let opts = RunOptions {
            listen: settings.listen,
            aggregators: settings.aggregators.clone(),
            limits: settings.limits.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            erasure_settle: settings.erasure_settle,
        };
        let running = Running::start(node, opts).await?;
        let control = match crate::control::serve(running.shared.clone()) {
            Ok(c) => c,
            Err(e) => {
                running.shutdown().await;
                return Err(e.into());
            }
        };
        let mut handle = NodeHandle {
            bound: Bound {
                listen: running.listen_addr,
                ..Bound::default()
            },
            running,
            control,
            listeners: Vec::new(),
        };
        if let Err(e) = handle.serve_http(&settings, prebound).await {
            handle.stop().await?;
            return Err(e);
        }
        // What the pages, `status` and `/metrics` read from the payloads (the tally, the
        // calendar, the answers) is built in one pass (holding back writes meanwhile): at the
        // start, not at the first request.
        let shared = handle.running.shared.clone();
        drop(tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            match shared.node.warm() {
                Ok(records) => tracing::info!(
                    records,
                    seconds = started.elapsed().as_secs_f64(),
                    "counted the records the pages show"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot count the records the pages show"),
            }
        }));
        Ok(handle)
    }

    async fn serve_http(
        &mut self,
        settings: &NodeSettings,
        prebound: PreBound,
    ) -> Result<(), ServeError> {
        let shared = self.running.shared.clone();
        let bind = |what, addr| move |error| ServeError::Bind { what, addr, error };
        let pages =
            crate::http::PageSettings::new(settings.public_url.clone(), &settings.embed_ancestors)
                .map_err(ServeError::EmbedAncestors)?;
        if let Some(listener) = prebound.http {
            let addr = listener
                .local_addr()
                .map_err(bind("http", SocketAddr::from(([0, 0, 0, 0], 0))))?;
            let (at, task) = crate::http::serve_listener(shared.clone(), listener, pages)
                .map_err(bind("http", addr))?;
            self.bound.http = Some(at);
            self.listeners.push(task);
        } else if let Some(addr) = settings.http {
            let (at, task) = crate::http::serve(shared.clone(), addr, pages)
                .await
                .map_err(bind("http", addr))?;
            self.bound.http = Some(at);
            self.listeners.push(task);
        }
        if let Some(addr) = settings.metrics {
            let (at, task) = crate::http::serve_operator(shared.clone(), addr)
                .await
                .map_err(bind("metrics", addr))?;
            self.bound.metrics = Some(at);
            self.listeners.push(task);
        }
        if let Some(addr) = settings.admin {
            let (at, task) =
                crate::editor::serve(shared.clone(), addr, settings.public_url.clone()).await?;
            self.bound.admin = Some(at);
            self.listeners.push(task);
        }
        Ok(())
    }

    /// Becomes true once the node switched to a rotated key: stop it and start the data
    /// directory again, to run under the new key (`spindel run` does).
    pub fn switched(&self) -> tokio::sync::watch::Receiver<bool> {
        self.running.shared.switched.subscribe()
    }

    /// What every task of the node holds.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.running.shared
    }

    /// Where regions reach this node (`NODEID@HOST:PORT`), when it listens.
    pub fn peer_addr(&self) -> Option<PeerAddr> {
        self.running.peer_addr()
    }

    /// Stops the node: the control socket first (no new commands), then the writer, the
    /// network and the HTTP listeners (each given [`LISTENER_STOP_WAIT`]); the socket file is
    /// removed and the store flushed.
    pub async fn stop(self) -> Result<(), NodeError> {
        self.control.abort();
        let shared = self.running.shared.clone();
        self.running.shutdown().await;
        for task in self.listeners {
            let _ = tokio::time::timeout(LISTENER_STOP_WAIT, task).await;
        }
        crate::control::remove_socket(shared.node.dir());
        shared.node.flush()?;
        Ok(())
    }
}

/// Why a one-shot sync ([`sync_once`]) did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("sync with {aggregator}: {error}")]
    Link {
        aggregator: PeerAddr,
        error: LinkError,
    },
    #[error("sync with {aggregator} did not finish within {} s", .within.as_secs())]
    TimedOut {
        aggregator: PeerAddr,
        within: Duration,
    },
}

/// `spindel sync`: a node that is not running catches up with one aggregator over one
/// session, with the writer and a client transport assembled here and stopped again at the
/// end, whether it finished or not.
pub async fn sync_once(
    node: Arc<LocalNode>,
    aggregator: &PeerAddr,
    within: Duration,
) -> Result<SyncReport, SyncError> {
    let key = node.key().clone();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let shared = Shared::new(node, stop_rx)?;
    let transport = Transport::client(&key, Limits::default())?;
    let synced = tokio::time::timeout(
        within,
        crate::session::sync_until_caught_up(&shared, &transport, aggregator, "sync"),
    )
    .await;
    transport.shutdown().await;
    shared.writer.stop().await;
    match synced {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(error)) => Err(SyncError::Link {
            aggregator: aggregator.clone(),
            error,
        }),
        Err(_) => Err(SyncError::TimedOut {
            aggregator: aggregator.clone(),
            within,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aggregator_listens_has_no_editor_and_mirrors_at_most_one_upstream() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let peer: PeerAddr = format!("{}@127.0.0.1:7700", "ab".repeat(32))
            .parse()
            .unwrap();
        let agg = |f: &dyn Fn(&mut NodeSettings)| {
            let mut s = NodeSettings {
                listen: Some(addr),
                ..NodeSettings::default()
            };
            f(&mut s);
            s.check(Role::Aggregator)
        };
        assert_eq!(agg(&|_| {}), Ok(()));
        assert_eq!(agg(&|s| s.listen = None), Err(RoleError::AggregatorListens));
        assert_eq!(
            agg(&|s| s.admin = Some(addr)),
            Err(RoleError::AggregatorEditor)
        );
        // One upstream it mirrors; two are refused.
        assert_eq!(agg(&|s| s.aggregators = vec![peer.clone()]), Ok(()));
        assert_eq!(
            agg(&|s| s.aggregators = vec![peer.clone(), peer.clone()]),
            Err(RoleError::AggregatorMirrorsOne)
        );
        // A region may run without an aggregator (the start warns), or with an editor.
        let region = NodeSettings {
            admin: Some(addr),
            ..NodeSettings::default()
        };
        assert_eq!(region.check(Role::Region), Ok(()));
    }
}
