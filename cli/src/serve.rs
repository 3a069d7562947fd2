//! The long-running commands: `run` (a node until a stop signal), `sync` (one round with an
//! aggregator) and `demo` (a whole network on this machine).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use spindel_node::Reads;
use spindel_node::control::{self, Request};
use spindel_node::server::{NodeHandle, NodeSettings};
use spindel_node::transport::PeerAddr;

use crate::args::DataDir;
use crate::node_call::{open, runtime};
use crate::{demo, output};

/// `spindel run`: the node until SIGINT/SIGTERM. The node is assembled by
/// [`NodeHandle::start`]; this only opens it, prints where it is reached and waits.
/// A node that switched to a rotated key (`spindel rotate-key`) is stopped and started again
/// from its directory, under the new key.
pub(crate) fn run_node(dir: &DataDir, settings: NodeSettings) -> Result<()> {
    let mut node = open(dir)?;
    // The role rules before anything starts (NodeHandle::start checks them too).
    settings.check(node.config().role)?;
    let rt = runtime()?;
    rt.block_on(async move {
        // Before anything says the node runs: a SIGTERM right after "running" (systemd, a
        // test) must stop it cleanly, not kill it.
        let mut stop = StopSignals::install()?;
        loop {
            let handle = NodeHandle::start(node, settings.clone()).await?;
            let bound = handle.bound;
            for (what, at) in [
                ("listening on", bound.listen),
                ("http on", bound.http),
                ("metrics on", bound.metrics),
                ("editor on", bound.admin),
            ] {
                if let Some(at) = at {
                    eprintln!("{what} {at}");
                }
            }
            eprintln!(
                "node {} running; stop with Ctrl-C",
                handle.shared().node.node_id()
            );
            let mut switched = handle.switched();
            tokio::select! {
                _ = stop.wait() => {
                    tracing::info!("shutting down");
                    handle.stop().await?;
                    eprintln!("stopped");
                    return Ok(());
                }
                _ = switched.wait_for(|s| *s) => {
                    eprintln!("an aggregator holds the key rotation: starting again under the new key");
                    let held = handle.shared().node.clone();
                    handle.stop().await?;
                    crate::node_call::release(held).await;
                    node = open(dir)?;
                }
            }
        }
    })
}

/// SIGTERM and SIGINT, caught from the moment they are installed.
pub(crate) struct StopSignals {
    pub(crate) term: tokio::signal::unix::Signal,
    pub(crate) int: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub(crate) fn install() -> Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// `spindel sync`: catch up with one aggregator and exit.
pub(crate) fn sync_once(dir: &DataDir, aggregator: PeerAddr, json: bool) -> Result<()> {
    if control::request(&dir.data_dir, &Request::Status)?.is_some() {
        bail!(
            "a node is running in {}; it syncs by itself",
            dir.data_dir.display()
        );
    }
    let node = Arc::new(open(dir)?);
    let before = node.generation()?;
    let rt = runtime()?;
    let bar = output::spinner("syncing");
    let result = rt.block_on(async {
        let progress = {
            let node = node.clone();
            let bar = bar.clone();
            tokio::spawn(async move {
                loop {
                    let now = node.generation().unwrap_or(before);
                    bar.set_message(format!("received {} entries", now.saturating_sub(before)));
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
        };
        let r = spindel_node::server::sync_once(node.clone(), &aggregator, SYNC_TIMEOUT).await;
        progress.abort();
        r
    });
    bar.finish_and_clear();
    let report = result?;
    node.flush()?;
    let received = node.generation()? - before;
    let heads: std::collections::BTreeMap<String, u64> = node
        .heads()?
        .into_iter()
        .map(|(a, h)| (a.to_hex(), h.seq))
        .collect();
    let value = serde_json::json!({
        "aggregator": aggregator.to_string(),
        "received": received,
        "heads": heads,
        "traffic": report,
    });
    output::emit(json, &value, || {
        sync_summary(&aggregator.to_string(), received, heads.len())
    })
}

/// `n` and its noun, singular for one: `1 entry`, `2 entries`.
pub(crate) fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What `spindel sync` prints: the entries received and the logs (authors) now held.
pub(crate) fn sync_summary(aggregator: &str, received: u64, authors: usize) -> String {
    format!(
        "synced with {aggregator}: received {}; holds the logs of {}",
        counted(received, "entry", "entries"),
        counted(authors as u64, "author", "authors")
    )
}

/// How long the demo may take to get in sync.
pub(crate) const DEMO_SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// `spindel demo`.
pub(crate) fn run_demo(
    regions: usize,
    http: SocketAddr,
    exit_when_synced: bool,
    json: bool,
) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async move {
        let progress: Arc<dyn Fn(String) + Send + Sync> = Arc::new(|line| eprintln!("{line}"));
        let started = std::time::Instant::now();
        let demo = demo::start(regions, http, progress.clone()).await?;
        let rows = match demo.wait_synced(DEMO_SYNC_TIMEOUT, &*progress).await {
            Ok(rows) => rows,
            Err(e) => {
                demo.shutdown().await;
                bail!("{e}");
            }
        };
        // Caught from before the summary says the network runs (Ctrl-C during the set-up
        // still stops the command at once).
        let mut stop = match StopSignals::install() {
            Ok(stop) => stop,
            Err(e) => {
                demo.shutdown().await;
                return Err(e);
            }
        };
        // A closed stdout (`spindel demo | head`) must not stop the network: errors ignored.
        let took = started.elapsed();
        let text = if json {
            serde_json::json!({
                "regions": rows,
                "records": rows.iter().map(|r| r.records).sum::<u64>(),
                "synced_in_ms": took.as_millis() as u64,
                "page": format!("http://{}/", demo.http),
                "api": format!("http://{}/api/v1/records", demo.http),
                "feed": format!("http://{}/flode.atom", demo.http),
                "embed": format!("http://{}/inbaddning", demo.http),
            })
            .to_string()
        } else {
            format!(
                "{}\nKunskapsbanken: http://{addr}/\n\
                 HTTP API: http://{addr}/api/v1/records  (regioner: /api/v1/regions)\n\
                 På en egen webbplats: http://{addr}/inbaddning  (flöde: /flode.atom, export: /api/v1/export)",
                output::demo_summary(&rows, took),
                addr = demo.http
            )
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
        drop(out);
        if exit_when_synced {
            demo.shutdown().await;
            return Ok(());
        }
        eprintln!("nätverket körs; avsluta med Ctrl-C");
        stop.wait().await;
        demo.shutdown().await;
        eprintln!("stopped");
        Ok(())
    })
}

/// How long a one-shot sync may take.
pub(crate) const SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_summary_says_one_and_many() {
        assert_eq!(
            sync_summary("X", 0, 1),
            "synced with X: received 0 entries; holds the logs of 1 author"
        );
        assert_eq!(
            sync_summary("X", 1, 3),
            "synced with X: received 1 entry; holds the logs of 3 authors"
        );
    }
}
