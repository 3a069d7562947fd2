//! The local control channel: `DIR/control.sock`, a Unix socket that only the data
//! directory's owner can use (socket mode 0600, directory 0700, and the peer's uid is checked
//! against the directory's owner).
//!
//! While `spindel run` holds a data directory (sled allows one process), `publish`, `import`,
//! `delete`, `allow`, `disallow`, `status` and `query` go through this socket; when no node runs, the CLI
//! opens the store itself. One JSON request line, one JSON response line; the answers are the
//! same values the direct path returns, so the output is identical either way. An import's
//! line is followed by the file's bytes (`bytes` of them), which the node receives into a file
//! in its data directory (`import.upload.N`, 0600, erased afterwards): its memory does not
//! grow with the file.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spindel_protocol::record::Kind;
use spindel_protocol::sync::QueryRequest;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::local::NodeError;
use crate::query::Query;
use crate::read::Reads;
use crate::shared::Shared;
use crate::writer::ImportJob;

pub const SOCKET_FILE: &str = "control.sock";
pub use crate::local::{IMPORT_BYTES_MAX, IMPORT_FILE_BYTES_MAX};
/// Largest control request line: a publish carries its record (a file of at most 1 MiB) as a
/// JSON string, where a control character takes six bytes. An import's bytes follow its line
/// and are capped by [`IMPORT_FILE_BYTES_MAX`].
pub const REQUEST_BYTES_MAX: u64 = 8 * 1024 * 1024;
/// How long the control socket waits after a failed accept (out of file descriptors).
pub const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
/// Largest response.
pub const RESPONSE_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// A client that sends nothing for this long (no request line, or a stalled import) is
/// dropped, so a stuck or hostile client holds no task or file.
pub const CONTROL_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Bytes of an import read from the socket at a time.
const UPLOAD_CHUNK_BYTES: usize = 64 * 1024;

pub use crate::shared::{CONTROL_UPLOADS_MAX, Uploads, UploadsBusy};

/// Why the node refused or failed a control request (sent to the client as its one line).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("record id: {0}")]
    RecordId(#[from] spindel_protocol::entry::ParseRecordIdError),
    #[error("node id: {0}")]
    NodeId(#[from] spindel_protocol::keys::ParseNodeIdError),
    #[error("query: {0}")]
    Kind(#[from] spindel_protocol::record::ParseKindError),
    #[error(transparent)]
    UploadsBusy(#[from] UploadsBusy),
    #[error("the import is {0} bytes, over the limit of {IMPORT_FILE_BYTES_MAX}")]
    UploadTooLarge(u64),
    #[error(
        "the import stalled after {got} of its {bytes} bytes (nothing for {} s); nothing was imported",
        CONTROL_READ_TIMEOUT.as_secs()
    )]
    UploadStalled { got: u64, bytes: u64 },
    #[error("the import ended after {got} of its {bytes} bytes: the client went away")]
    UploadCut { got: u64, bytes: u64 },
    #[error("{path}: {error}")]
    UploadFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("an import without its bytes")]
    NoUpload,
    #[error(transparent)]
    User(#[from] crate::users::UserError),
}

/// A new name for a received import file (`import.upload.N`, erased after its import and at
/// the next start), unique in this process whichever surface receives it.
pub(crate) fn upload_name() -> String {
    static UPLOADED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = UPLOADED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{n}", crate::local::IMPORT_UPLOAD)
}

/// One control request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Publish {
        kind: Kind,
        json: String,
        record_id: Option<String>,
    },
    /// Followed by `bytes` bytes of JSON Lines; `name` names the file in errors.
    Import {
        kind: Kind,
        bytes: u64,
        name: String,
    },
    Delete {
        record_id: String,
    },
    Allow {
        node_id: String,
        name: Option<String>,
        /// An aggregator allowed to mirror this one (`allow --mirror`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mirror: bool,
    },
    Disallow {
        node_id: String,
    },
    /// `spindel endorse` and `spindel revoke`: checked, then published like any record.
    Act {
        act: crate::local::ActRequest,
    },
    /// `spindel rotate-key`: the rotation signed with the key it retires; the node switches
    /// once an aggregator holds it.
    RotateKey,
    Status,
    /// `spindel audit`: the report and the checkpoints kept ([`crate::local::AuditBundle`]).
    Audit,
    Query {
        query: QueryRequest,
        /// Only events meeting these days (`YYYY-MM-DD`, Europe/Stockholm); the CLI's
        /// `--from-date` and `--to-date`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_date: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_date: Option<String>,
    },
    /// `spindel export`: a chunk of the export from `after` on.
    Export {
        filter: crate::export::ExportFilter,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
    },
    /// Write a backup to this absolute path.
    Backup {
        to: String,
    },
    /// `spindel user add`: a one-time password is made when `password` is `None`.
    #[serde(rename = "user_add")]
    UserAdd {
        name: String,
        role: crate::users::StaffRole,
        password: Option<String>,
    },
    /// `spindel user remove`: the account's sessions end at once.
    #[serde(rename = "user_remove")]
    UserRemove {
        name: String,
    },
    /// `spindel user reset-password`: its sessions end and its lock lifts at once.
    #[serde(rename = "user_reset")]
    UserReset {
        name: String,
        password: Option<String>,
    },
}

/// What `user add` and `user reset-password` answer (the CLI prints it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountAnswer {
    pub user: String,
    pub role: crate::users::StaffRole,
    /// The one-time password, when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// The answer: the command's JSON value, or a one-line error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    Ok(serde_json::Value),
    Error(String),
}

/// A control channel failure on the client side.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control channel {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("control channel {0}: the node sent an unreadable answer")]
    BadAnswer(PathBuf),
    #[error("{0}")]
    Remote(String),
}

/// Sends `request` to the node running in `dir`. `Ok(None)`: no node runs there.
pub fn request(dir: &Path, request: &Request) -> Result<Option<serde_json::Value>, ControlError> {
    request_with_body(dir, request, &mut std::io::empty())
}

/// [`request`], with `body` sent after the request line (an import's file).
pub fn request_with_body(
    dir: &Path,
    request: &Request,
    body: &mut dyn Read,
) -> Result<Option<serde_json::Value>, ControlError> {
    let path = dir.join(SOCKET_FILE);
    let io = |error| ControlError::Io {
        path: path.clone(),
        error,
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(io(e)),
    };
    let mut line = serde_json::to_vec(request).map_err(|e| io(std::io::Error::other(e)))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    // A node that refuses the request early stops reading: its answer says why.
    match std::io::copy(body, &mut &stream) {
        Ok(sent) => {
            if let Request::Import { bytes, name, .. } = request
                && sent != *bytes
            {
                // The node waits for the bytes announced; it drops the connection and erases
                // what it received.
                return Err(ControlError::Remote(format!(
                    "{name}: it changed while it was sent ({sent} of {bytes} bytes); nothing was imported, run the import again"
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(io(e)),
    }
    let mut answer = Vec::new();
    BufReader::new(stream)
        .take(RESPONSE_BYTES_MAX)
        .read_until(b'\n', &mut answer)
        .map_err(io)?;
    match serde_json::from_slice::<Response>(&answer) {
        Ok(Response::Ok(v)) => Ok(Some(v)),
        Ok(Response::Error(e)) => Err(ControlError::Remote(e)),
        Err(_) => Err(ControlError::BadAnswer(path)),
    }
}

/// Binds `DIR/control.sock` and serves requests until the task is dropped.
pub fn serve(shared: Arc<Shared>) -> Result<tokio::task::JoinHandle<()>, NodeError> {
    let dir = shared.node.dir().to_path_buf();
    let path = dir.join(SOCKET_FILE);
    let io = |error| NodeError::Io {
        path: path.clone(),
        error,
    };
    // A socket file left by a killed node: nobody listens (sled's lock says we own DIR now).
    if path.exists() {
        std::fs::remove_file(&path).map_err(io)?;
    }
    let listener = tokio::net::UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    let owner = std::fs::metadata(&dir).map_err(io)?.uid();
    Ok(tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "control socket: accept failed; retrying shortly");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == owner || cred.uid() == 0 => {}
                _ => {
                    tracing::warn!("control connection from another user refused");
                    continue;
                }
            }
            tokio::spawn(handle(shared.clone(), stream));
        }
    }))
}

/// Removes the socket file (on clean shutdown).
pub fn remove_socket(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(SOCKET_FILE));
}

async fn handle(shared: Arc<Shared>, stream: tokio::net::UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = tokio::io::BufReader::new(read);
    let mut limited = (&mut reader).take(REQUEST_BYTES_MAX + 1);
    let first = limited.read_until(b'\n', &mut line);
    match tokio::time::timeout(CONTROL_READ_TIMEOUT, first).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return,
        Err(_) => {
            tracing::warn!("dropped a control client that sent no request");
            return;
        }
    }
    let response = if line.len() as u64 > REQUEST_BYTES_MAX {
        tracing::warn!(
            bytes = line.len(),
            "refused a control request over the limit"
        );
        Response::Error(format!(
            "control request over the limit of {REQUEST_BYTES_MAX} bytes"
        ))
    } else {
        match serde_json::from_slice::<Request>(&line) {
            Ok(request) => answer(&shared, request, &mut reader).await,
            Err(e) => Response::Error(format!("bad control request: {e}")),
        }
    };
    let mut out =
        serde_json::to_vec(&response).unwrap_or_else(|_| b"{\"error\":\"internal\"}".to_vec());
    out.push(b'\n');
    let _ = write.write_all(&out).await;
}

/// Receives an import's bytes into the file `name` in the data directory.
async fn receive_upload(
    dir: &Path,
    name: &str,
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    bytes: u64,
) -> Result<(), RequestError> {
    if bytes > IMPORT_FILE_BYTES_MAX {
        return Err(RequestError::UploadTooLarge(bytes));
    }
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|error| RequestError::UploadFile {
            path: path.clone(),
            error,
        })?;
    let mut file = tokio::fs::File::from_std(file);
    let failed = |error: std::io::Error| RequestError::UploadFile {
        path: path.clone(),
        error,
    };
    let mut buf = vec![0u8; UPLOAD_CHUNK_BYTES];
    let mut got = 0u64;
    while got < bytes {
        let want = (bytes - got).min(buf.len() as u64) as usize;
        let n =
            match tokio::time::timeout(CONTROL_READ_TIMEOUT, reader.read(&mut buf[..want])).await {
                Ok(read) => read.map_err(failed)?,
                Err(_) => return Err(RequestError::UploadStalled { got, bytes }),
            };
        if n == 0 {
            return Err(RequestError::UploadCut { got, bytes });
        }
        file.write_all(&buf[..n]).await.map_err(failed)?;
        got += n as u64;
    }
    file.flush().await.map_err(failed)
}

/// Runs one request; the asker going away (Ctrl-C) cancels what can still be cancelled: an
/// import writes nothing unless it reached its commit point.
async fn answer(
    shared: &Arc<Shared>,
    request: Request,
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Response {
    let dir = shared.node.dir().to_path_buf();
    let mut _permit = None;
    let upload = match &request {
        Request::Import { bytes, kind, .. } => {
            // What refuses an import whatever its lines, before its bytes are received.
            if let Err(e) = shared.node.import_allowed(*kind) {
                return Response::Error(e.to_string());
            }
            match shared.uploads.permit() {
                Ok(p) => _permit = Some(p),
                Err(e) => return Response::Error(RequestError::from(e).to_string()),
            }
            let name = upload_name();
            if let Err(e) = receive_upload(&dir, &name, reader, *bytes).await {
                erase_upload(&dir, name).await;
                return Response::Error(e.to_string());
            }
            Some(name)
        }
        _ => None,
    };
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let work = execute(shared, request, upload.clone(), cancel.clone());
    tokio::pin!(work);
    let mut probe = [0u8; 1];
    let result = tokio::select! {
        r = &mut work => r,
        _ = reader.read(&mut probe) => {
            cancel.store(true, std::sync::atomic::Ordering::Release);
            tracing::info!("the control client went away; cancelling its request");
            work.await
        }
    };
    if let Some(name) = upload {
        erase_upload(&dir, name).await;
    }
    match result {
        Ok(v) => Response::Ok(v),
        Err(e) => Response::Error(e.to_string()),
    }
}

/// Erases a received import file (zeros first: it holds the records' content).
async fn erase_upload(dir: &Path, name: String) {
    let dir = dir.to_path_buf();
    let erased = tokio::task::spawn_blocking(move || crate::local::erase_file(&dir, &name)).await;
    if let Ok(Err(e)) = erased {
        tracing::error!(error = %e, "erasing a received import file failed; erased at next start");
    }
}

fn to_value<T: Serialize>(v: &T) -> Result<serde_json::Value, RequestError> {
    serde_json::to_value(v).map_err(|e| RequestError::Node(e.into()))
}

async fn execute(
    shared: &Arc<Shared>,
    request: Request,
    upload: Option<String>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
) -> Result<serde_json::Value, RequestError> {
    match request {
        Request::Publish {
            kind,
            json,
            record_id,
        } => {
            let rid = record_id.map(|r| r.parse()).transpose()?;
            to_value(&shared.writer.publish(kind, json, rid).await?)
        }
        Request::Import { kind, bytes, name } => {
            tracing::info!(kind = %kind.as_str(), bytes, file = %name, "import through the control socket");
            let upload = upload.ok_or(RequestError::NoUpload)?;
            let job = ImportJob {
                kind,
                path: shared.node.dir().join(&upload),
                name,
                cancel,
                progress: None,
            };
            to_value(&shared.writer.import(job).await?)
        }
        Request::Delete { record_id } => to_value(&shared.writer.delete(record_id.parse()?).await?),
        Request::Allow {
            node_id,
            mirror: true,
            ..
        } => to_value(&shared.writer.allow_mirror(node_id.parse()?).await?),
        Request::Allow { node_id, name, .. } => {
            to_value(&shared.writer.allow(node_id.parse()?, name).await?)
        }
        Request::Disallow { node_id } => to_value(&shared.writer.disallow(node_id.parse()?).await?),
        Request::Act { act } => {
            let asked = act.clone();
            let (kind, json) = shared.blocking(move |n| n.act_record(&asked)).await?;
            let published = shared
                .writer
                .publish_expecting(kind, json, None, None)
                .await?;
            to_value(&shared.blocking(move |n| n.acted(&act, &published)).await?)
        }
        Request::RotateKey => to_value(&shared.writer.rotate_key().await?),
        Request::Status => to_value(&shared.status().await?),
        Request::Audit => {
            let now = crate::shared::now_ms();
            to_value(
                &shared
                    .read(move |n| n.audit_bundle(now))
                    .await
                    .map_err(NodeError::from)?,
            )
        }
        Request::Backup { to } => {
            let to = std::path::PathBuf::from(to);
            to_value(&shared.blocking(move |n| n.backup(&to)).await?)
        }
        Request::Export { filter, after } => to_value(
            &shared
                .blocking(move |n| Ok(crate::export::chunk(n, &filter, after)?))
                .await?,
        ),
        Request::Query {
            query,
            from_date,
            to_date,
        } => {
            let mut q = Query::from_request(&query)?;
            q.dates = crate::query::DateRange::parse(
                from_date.as_deref(),
                to_date.as_deref(),
                crate::query::DATE_FLAGS,
            )
            .map_err(NodeError::Query)?;
            to_value(&shared.blocking(move |n| Ok(n.query(&q)?)).await?)
        }
        Request::UserAdd {
            name,
            role,
            password,
        } => {
            let (info, made) = staff_change(shared, move |staff| {
                staff.add(&name, role, password.as_deref(), crate::staff::COMMAND_LINE)
            })
            .await?;
            to_value(&AccountAnswer {
                user: info.user,
                role: info.role,
                password: made,
            })
        }
        Request::UserRemove { name } => {
            let n = name.clone();
            staff_change(shared, move |staff| {
                staff.remove(&n, crate::staff::COMMAND_LINE)
            })
            .await?;
            Ok(serde_json::json!({ "removed": name }))
        }
        Request::UserReset { name, password } => {
            let (info, made) = staff_change(shared, move |staff| {
                staff.reset_password(&name, password.as_deref(), crate::staff::COMMAND_LINE)
            })
            .await?;
            to_value(&AccountAnswer {
                user: info.user,
                role: info.role,
                password: made,
            })
        }
    }
}

/// An account change of the running node's staff, on the blocking pool (argon2).
async fn staff_change<T: Send + 'static>(
    shared: &Arc<Shared>,
    change: impl FnOnce(&crate::staff::Staff) -> Result<T, crate::users::UserError> + Send + 'static,
) -> Result<T, RequestError> {
    let staff = shared.staff.clone();
    match tokio::task::spawn_blocking(move || change(&staff)).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(RequestError::Node(NodeError::Task(e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// [`CONTROL_UPLOADS_MAX`] imports are received at once; the next is refused by name
    /// until one finishes.
    #[test]
    fn uploads_beyond_the_limit_are_refused_until_one_ends() {
        let uploads = Uploads::default();
        let held: Vec<_> = (0..CONTROL_UPLOADS_MAX)
            .map(|_| uploads.permit().unwrap())
            .collect();
        let refused = uploads.permit().unwrap_err().to_string();
        assert!(
            refused.contains("imports are being received already"),
            "{refused}"
        );
        // The editor's import asks the same places.
        assert!(uploads.clone().permit().is_err());
        drop(held);
        assert!(uploads.permit().is_ok());
    }

    /// An import whose client stops sending is dropped after [`CONTROL_READ_TIMEOUT`] (the
    /// clock is paused, so the test waits for nothing), and one that ends early is named.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_or_cut_upload_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut client, mut node_side) = tokio::io::duplex(1024);
        client.write_all(b"{\"title\":").await.unwrap();
        let started = tokio::time::Instant::now();
        let e = receive_upload(dir.path(), "import.upload.0", &mut node_side, 100)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("stalled after 9 of its 100 bytes"), "{e}");
        assert!(started.elapsed() >= CONTROL_READ_TIMEOUT);

        let (mut client, mut node_side) = tokio::io::duplex(1024);
        client.write_all(b"{}").await.unwrap();
        drop(client);
        let e = receive_upload(dir.path(), "import.upload.1", &mut node_side, 100)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("ended after 2 of its 100 bytes"), "{e}");

        let mut over = tokio::io::empty();
        let e = receive_upload(
            dir.path(),
            "import.upload.2",
            &mut over,
            IMPORT_FILE_BYTES_MAX + 1,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("over the limit"), "{e}");
    }
}
