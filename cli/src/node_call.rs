//! Asking a node: over its control socket when it runs, else by opening its data directory
//! (and waiting for a node that is just starting).

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use spindel_node::control::{self, Request};
use spindel_node::local::{self, LocalNode};

use crate::args::DataDir;

/// Sends a request to the node running in `dir`; `None` if no node runs there.
pub(crate) fn via_control<'b, T: serde::de::DeserializeOwned>(
    dir: &Path,
    request: &Request,
    body: &dyn Fn() -> Result<Box<dyn Read + 'b>>,
) -> Result<Option<T>> {
    match control::request_with_body(dir, request, &mut body()?)? {
        Some(v) => Ok(Some(
            serde_json::from_value(v).context("the running node sent an unexpected answer")?,
        )),
        None => Ok(None),
    }
}

/// How long a command waits for a node that is starting: `spindel run` holds the store before
/// its control socket is bound.
pub(crate) const NODE_START_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a write on a restored node that no running node holds waits for one to start
/// (it could not sign by itself).
pub(crate) const RESTORED_START_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How often the socket is looked for meanwhile.
pub(crate) const NODE_START_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs `request` through the node running in `dir`, or `direct` on the store when none runs.
/// A node that is just starting (store held, socket not bound yet) is waited for.
pub(crate) fn with_node<T: serde::de::DeserializeOwned>(
    dir: &DataDir,
    request: &Request,
    direct: impl FnOnce(LocalNode) -> Result<T>,
) -> Result<T> {
    with_node_body(dir, request, &|| Ok(Box::new(std::io::empty())), direct)
}

/// [`with_node`] for a request followed by bytes (an import's file): `body` gives them anew
/// at each try.
pub(crate) fn with_node_body<'b, T: serde::de::DeserializeOwned>(
    dir: &DataDir,
    request: &Request,
    body: &dyn Fn() -> Result<Box<dyn Read + 'b>>,
    direct: impl FnOnce(LocalNode) -> Result<T>,
) -> Result<T> {
    let writes = matches!(
        request,
        Request::Publish { .. }
            | Request::Import { .. }
            | Request::Delete { .. }
            | Request::Act { .. }
            | Request::RotateKey
    );
    check_data_dir(&dir.data_dir)?;
    let deadline = std::time::Instant::now() + NODE_START_WAIT;
    let restored_deadline = std::time::Instant::now() + RESTORED_START_WAIT;
    loop {
        if let Some(answer) = via_control(&dir.data_dir, request, body)? {
            return Ok(answer);
        }
        match LocalNode::open(&dir.data_dir) {
            // A restored node signs nothing until its running self has caught up: if one is
            // starting (`spindel run ... &` just before), wait for it instead of failing.
            Ok(node)
                if writes && node.restored() && std::time::Instant::now() < restored_deadline =>
            {
                drop(node);
                if !wait_for_socket(dir, restored_deadline) {
                    return direct(LocalNode::open(&dir.data_dir)?);
                }
            }
            Ok(node) => return direct(node),
            Err(local::NodeError::Store(spindel_node::store::StoreError::Locked { .. }))
                if std::time::Instant::now() < deadline =>
            {
                // Wait for the starting node's control socket (or for the lock to go).
                wait_for_socket(dir, deadline);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until a starting node's control socket is there, or until `deadline`; says which.
pub(crate) fn wait_for_socket(dir: &DataDir, deadline: std::time::Instant) -> bool {
    let socket = dir.data_dir.join(control::SOCKET_FILE);
    while !socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(NODE_START_POLL);
    }
    socket.exists()
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A data directory given that is a file (or not a directory) is named as such.
pub(crate) fn check_data_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => bail!("{} is a file, not a data directory", dir.display()),
        _ => Ok(()),
    }
}

pub(crate) fn open(dir: &DataDir) -> Result<LocalNode> {
    check_data_dir(&dir.data_dir)?;
    Ok(LocalNode::open(&dir.data_dir)?)
}

/// How long shutting down waits for a node's tasks to let go of its store, and how often it
/// looks.
const RELEASE_WITHIN: Duration = Duration::from_secs(10);
const RELEASE_POLL: Duration = Duration::from_millis(5);

/// Waits until `node` is the last handle to its node (the stopped tasks have let go), then
/// drops it on the blocking pool: the store flushes and closes its files.
pub(crate) async fn release(node: spindel_node::ReadModel) {
    let deadline = Instant::now() + RELEASE_WITHIN;
    while node.holders() > 1 {
        if Instant::now() >= deadline {
            tracing::warn!("a stopped node's tasks still hold its store; going on without waiting");
            return;
        }
        tokio::time::sleep(RELEASE_POLL).await;
    }
    let _ = tokio::task::spawn_blocking(move || drop(node)).await;
}
