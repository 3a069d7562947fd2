//! The accept loop of every HTTP listener: the public one (`run --http`, [`crate::http::serve`]),
//! the editor (`run --admin`, [`crate::editor::serve`]) and the operator's (`run --metrics`,
//! [`crate::http::serve_operator`]). One loop, over hyper's HTTP/1 connection, with the limits
//! a hostile client meets:
//!
//! | limit | what happens |
//! |---|---|
//! | [`HTTP_CONNECTIONS_MAX`], [`HTTP_CONNECTIONS_FILE_SHARE`] | a connection over the listener's cap gets a bare 503 and is closed at once |
//! | [`HTTP_HEADER_TIMEOUT`] | a request head not whole in time: the connection is closed |
//! | [`HTTP_BODY_WINDOW`], [`HTTP_BODY_WINDOW_BYTES`] | a body that stalls or crawls: 408, then the connection is closed |
//! | [`HTTP_IDLE_TIMEOUT`] | a connection with no request and no bytes moving: closed |
//!
//! Each event is counted per listener for `/metrics` ([`ListenerStats`]); refusals at the cap
//! are logged at warn at most once per [`HTTP_WARN_INTERVAL`] per listener, with the count
//! since the line before. Every request carries `ConnectInfo<SocketAddr>` (the editor limits
//! failed logins per address). On the node's shutdown signal the loop stops accepting, lets
//! each connection finish the request it serves (an idle one closes at once) and ends when
//! the last has closed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

/// A request's head (request line and headers) must arrive whole within this, counted from the
/// moment the connection waits for it (its accept, or the end of the previous response);
/// otherwise the connection is closed (hyper's `header_read_timeout`). A client that drips a
/// byte now and then holds its connection no longer than this.
pub const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body must bring at least `HTTP_BODY_WINDOW_BYTES`, or its end, within each
/// window of this length while a handler waits for it; otherwise the request fails with 408
/// and the connection is closed. A rate rule rather than one deadline: the editor's import
/// streams up to 64 MiB, which takes long on a slow line but never stalls.
pub const HTTP_BODY_WINDOW: Duration = Duration::from_secs(10);

/// The least a request body must bring per [`HTTP_BODY_WINDOW`]: 16 KiB per 10 s, 1.6 KB/s (a
/// 64 MiB import at that rate takes 11 hours).
pub const HTTP_BODY_WINDOW_BYTES: u64 = 16 * 1024;

/// A connection with no request in progress, no byte of a next one, and no byte moving either
/// way (a response no one reads counts too) for this long is closed. Shorter than
/// [`HTTP_HEADER_TIMEOUT`], so a kept-alive connection that says nothing goes first.
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most connections one listener keeps open, whatever the open-file limit allows.
pub const HTTP_CONNECTIONS_MAX: usize = 1024;

/// Each listener keeps at most the soft open-file limit divided by this: with three listeners
/// at their caps a quarter of the descriptors is left for the rest of the node (the control
/// socket, sled, tantivy, the payload packs, QUIC). 64 per listener at 256 files, 256 at 1,024.
pub const HTTP_CONNECTIONS_FILE_SHARE: u64 = 4;

/// After a failed accept (the process is out of descriptors, say) the loop waits this long
/// before it accepts again, instead of spinning.
pub const HTTP_ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Refusals at the cap (and failed accepts) are logged at most once per this, per listener,
/// with the count since the line before.
pub const HTTP_WARN_INTERVAL: Duration = Duration::from_secs(60);

/// What a connection over the cap gets before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Which of the node's HTTP listeners (the `listener` label in `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// `run --http`: the API and the knowledge bank page.
    Public,
    /// `run --admin`: Redaktionen.
    Editor,
    /// `run --metrics`: `/metrics`, `/healthz` and the whole status.
    Operator,
}

impl ListenerKind {
    pub const ALL: [ListenerKind; 3] = [
        ListenerKind::Public,
        ListenerKind::Editor,
        ListenerKind::Operator,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ListenerKind::Public => "public",
            ListenerKind::Editor => "editor",
            ListenerKind::Operator => "operator",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            ListenerKind::Public => 0,
            ListenerKind::Editor => 1,
            ListenerKind::Operator => 2,
        }
    }
}

/// Why a connection was closed by a limit (the `kind` label of `spindel_http_timeouts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// [`HTTP_HEADER_TIMEOUT`].
    Header,
    /// [`HTTP_BODY_WINDOW`].
    Body,
    /// [`HTTP_IDLE_TIMEOUT`] between requests (after a response).
    Idle,
    /// [`HTTP_IDLE_TIMEOUT`] on a connection that never sent a byte: a port scan, a browser's
    /// unused preconnect, or a slowloris-style opener holding a descriptor. Counted apart from
    /// `idle` (clients that were served) and `header` (a head that began and did not finish).
    Silent,
}

impl TimeoutKind {
    pub const ALL: [TimeoutKind; 4] = [
        TimeoutKind::Header,
        TimeoutKind::Body,
        TimeoutKind::Idle,
        TimeoutKind::Silent,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TimeoutKind::Header => "header",
            TimeoutKind::Body => "body",
            TimeoutKind::Idle => "idle",
            TimeoutKind::Silent => "silent",
        }
    }

    fn index(self) -> usize {
        match self {
            TimeoutKind::Header => 0,
            TimeoutKind::Body => 1,
            TimeoutKind::Idle => 2,
            TimeoutKind::Silent => 3,
        }
    }
}

/// One listener's counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ListenerStats {
    open: AtomicU64,
    max: AtomicU64,
    refused: AtomicU64,
    accept_errors: AtomicU64,
    timeouts: [AtomicU64; 4],
}

impl ListenerStats {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// The listener's cap; 0 while it does not serve.
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// Connections refused at the cap.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Accepts that failed (out of descriptors, most likely).
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }

    /// Connections closed (or requests failed) by the limit `kind`.
    pub fn timeouts(&self, kind: TimeoutKind) -> u64 {
        self.timeouts[kind.index()].load(Ordering::Relaxed)
    }

    fn timed_out(&self, kind: TimeoutKind) {
        self.timeouts[kind.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts a connection as open while it lives.
struct Open(Arc<ListenerStats>);

impl Open {
    fn new(stats: Arc<ListenerStats>) -> Open {
        stats.open.fetch_add(1, Ordering::Relaxed);
        Open(stats)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The limits one listener applies (the constants above; tests shorten the durations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    pub connections: usize,
    pub header: Duration,
    pub idle: Duration,
    pub body_window: Duration,
    pub body_window_bytes: u64,
}

impl ListenerLimits {
    /// The constants, with the cap derived from this process's open-file limit.
    pub fn for_this_process() -> ListenerLimits {
        ListenerLimits {
            connections: connections_cap(open_file_limit()),
            header: HTTP_HEADER_TIMEOUT,
            idle: HTTP_IDLE_TIMEOUT,
            body_window: HTTP_BODY_WINDOW,
            body_window_bytes: HTTP_BODY_WINDOW_BYTES,
        }
    }
}

/// The soft limit on open files of this process (`RLIMIT_NOFILE`); `None` if unlimited.
pub fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The connection cap of one listener under the soft open-file limit `soft`: a
/// [`HTTP_CONNECTIONS_FILE_SHARE`]th of it, at most [`HTTP_CONNECTIONS_MAX`], at least 1.
pub fn connections_cap(soft: Option<u64>) -> usize {
    let share = soft.map_or(u64::MAX, |n| n / HTTP_CONNECTIONS_FILE_SHARE);
    usize::try_from(share)
        .unwrap_or(usize::MAX)
        .clamp(1, HTTP_CONNECTIONS_MAX)
}

/// Counts events and says when a line is due: the first at once, then at most one per
/// interval, carrying the count since the line before.
#[derive(Debug, Default)]
struct Occasional {
    last: Option<Instant>,
    since: u64,
}

impl Occasional {
    /// Counts one event at `now`; `Some(count)` when a line is due.
    fn note(&mut self, now: Instant, interval: Duration) -> Option<u64> {
        self.since += 1;
        match self.last {
            Some(t) if now.duration_since(t) < interval => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.since))
            }
        }
    }
}

/// Serves `app` on `listener` with the limits of this process until `shutdown` turns true.
/// Returns the bound address and the task, which ends once the last connection closed.
pub fn serve(
    kind: ListenerKind,
    listener: TcpListener,
    app: Router,
    stats: Arc<ListenerStats>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_with(
        kind,
        listener,
        app,
        ListenerLimits::for_this_process(),
        stats,
        shutdown,
    )
}

/// [`serve`] with the given limits.
pub fn serve_with(
    kind: ListenerKind,
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    stats: Arc<ListenerStats>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let bound = listener.local_addr()?;
    stats
        .max
        .store(limits.connections as u64, Ordering::Relaxed);
    tracing::info!(
        listener = kind.label(),
        address = %bound,
        connections_max = limits.connections,
        open_files = ?open_file_limit(),
        "http listener"
    );
    let task = tokio::spawn(accept_loop(kind, listener, app, limits, stats, shutdown));
    Ok((bound, task))
}

async fn accept_loop(
    kind: ListenerKind,
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    stats: Arc<ListenerStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.connections));
    let (mut refusals, mut failures) = (Occasional::default(), Occasional::default());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = failures.note(Instant::now(), HTTP_WARN_INTERVAL) {
                    tracing::warn!(listener = kind.label(), %error, failed = n, "accepting http connections failed (count since the last line); retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(HTTP_ACCEPT_BACKOFF) => continue,
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
            }
        };
        // The permit is taken after the accept: a connection over the cap costs a descriptor
        // for as long as it takes to write 30 bytes, and the client learns why.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            let _ = stream.try_write(REFUSAL);
            drop(stream);
            if let Some(n) = refusals.note(Instant::now(), HTTP_WARN_INTERVAL) {
                tracing::warn!(
                    listener = kind.label(),
                    connections_max = limits.connections,
                    refused = n,
                    "refused http connections at the cap (count since the last line)"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            remote,
            app.clone(),
            limits,
            stats.clone(),
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    // Every connection holds a permit until it closes: all of them back means all closed.
    let all = u32::try_from(limits.connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

/// What one connection has been doing, for the idle rule.
#[derive(Debug)]
struct Activity {
    origin: Instant,
    /// When a byte last moved either way, in ms after `origin`.
    last_ms: AtomicU64,
    /// A request is being handled (from its head to its response's head).
    busy: AtomicBool,
    /// Bytes arrived since the last response: a next request has begun, and its head is
    /// hyper's to time.
    next_request: AtomicBool,
    /// Any byte ever arrived (a connection that never sent one is `silent` when it closes).
    spoke: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            next_request: AtomicBool::new(false),
            spoke: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn read(&self) {
        self.touch();
        self.spoke.store(true, Ordering::Relaxed);
        if !self.busy.load(Ordering::Relaxed) {
            self.next_request.store(true, Ordering::Relaxed);
        }
    }

    /// Since when the connection has been idle; `None` while a request is in progress or
    /// has begun.
    fn idle_since(&self) -> Option<Instant> {
        if self.busy.load(Ordering::Relaxed) || self.next_request.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Marks a request in progress while it lives.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(activity: Arc<Activity>) -> Busy {
        activity.busy.store(true, Ordering::Relaxed);
        activity.next_request.store(false, Ordering::Relaxed);
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.next_request.store(false, Ordering::Relaxed);
        self.0.busy.store(false, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The socket, noting when bytes move.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves one connection until it closes, a limit closes it, or the node stops.
async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    limits: ListenerLimits,
    stats: Arc<ListenerStats>,
    mut shutdown: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    let open = Open::new(stats.clone());
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = ConnService {
        app,
        remote,
        limits,
        stats: stats.clone(),
        activity: activity.clone(),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header);
    let mut conn = std::pin::pin!(builder.serve_connection(io, service));
    let mut draining = false;
    loop {
        // While busy, look again after `idle`: the rule can start to apply only later.
        let check = activity
            .idle_since()
            .map_or_else(|| Instant::now() + limits.idle, |since| since + limits.idle);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    if error.is_timeout() {
                        stats.timed_out(TimeoutKind::Header);
                        tracing::debug!(%remote, "closed a connection: its request head did not arrive in time");
                    } else {
                        tracing::debug!(%remote, %error, "http connection ended with an error");
                    }
                }
                break;
            }
            _ = shutdown.wait_for(|stop| *stop), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(check) => {
                if activity.idle_since().is_some_and(|since| since + limits.idle <= Instant::now()) {
                    if activity.spoke.load(Ordering::Relaxed) {
                        stats.timed_out(TimeoutKind::Idle);
                        tracing::debug!(%remote, "closed an idle http connection");
                    } else {
                        stats.timed_out(TimeoutKind::Silent);
                        tracing::debug!(%remote, "closed an http connection that sent nothing");
                    }
                    break;
                }
            }
        }
    }
    // Counted closed before the permit goes back: the accept loop ends once every permit is
    // back, and by then `open` must already read 0.
    drop(open);
    drop(permit);
}

/// The router, behind what every request of a connection gets: `ConnectInfo`, the paced
/// body, the busy mark for the idle rule, and 408 for a body that did not come.
struct ConnService {
    app: Router,
    remote: SocketAddr,
    limits: ListenerLimits,
    stats: Arc<ListenerStats>,
    activity: Arc<Activity>,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<axum::http::Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: axum::http::Request<Incoming>) -> ResponseFuture {
        let busy = Busy::enter(self.activity.clone());
        let timed_out = Arc::new(AtomicBool::new(false));
        let (window, window_bytes) = (self.limits.body_window, self.limits.body_window_bytes);
        let flag = timed_out.clone();
        let mut request = request
            .map(|body| axum::body::Body::new(PacedBody::new(body, window, window_bytes, flag)));
        request.extensions_mut().insert(ConnectInfo(self.remote));
        let mut app = self.app.clone();
        let (stats, remote) = (self.stats.clone(), self.remote);
        Box::pin(async move {
            let _busy = busy;
            let response = match tower_service::Service::call(&mut app, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if timed_out.load(Ordering::Relaxed) {
                stats.timed_out(TimeoutKind::Body);
                tracing::debug!(%remote, "a request body did not arrive in time: 408");
                return Ok(body_timed_out());
            }
            Ok(response)
        })
    }
}

/// 408, and the connection closes after it (its body was not read to the end).
fn body_timed_out() -> Response {
    let mut response = (
        StatusCode::REQUEST_TIMEOUT,
        "the request body did not arrive in time\n",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Why a paced body failed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// A request body under the window rule ([`HTTP_BODY_WINDOW`]): the clock runs only while the
/// handler waits for a frame; each window must bring `window_bytes` or the end.
struct PacedBody {
    inner: Incoming,
    window: Duration,
    window_bytes: u64,
    /// Start of the current window (set at the first poll) and the bytes it brought.
    started: Option<Instant>,
    got: u64,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl PacedBody {
    fn new(
        inner: Incoming,
        window: Duration,
        window_bytes: u64,
        timed_out: Arc<AtomicBool>,
    ) -> PacedBody {
        PacedBody {
            inner,
            window,
            window_bytes,
            started: None,
            got: 0,
            sleep: None,
            timed_out,
        }
    }
}

impl http_body::Body for PacedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        if this.timed_out.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        let now = Instant::now();
        let started = *this.started.get_or_insert(now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.got = this.got.saturating_add(data.len() as u64);
                    if this.got >= this.window_bytes {
                        this.started = Some(now);
                        this.got = 0;
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = started + this.window;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.timed_out.store(true, Ordering::Relaxed);
                        Poll::Ready(Some(Err(BodyTimeout.into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The durations of these tests: the mechanism is the one the constants drive, only faster.
    const IDLE: Duration = Duration::from_millis(300);
    const HEADER: Duration = Duration::from_millis(600);
    const WINDOW: Duration = Duration::from_millis(300);
    /// Slack for a loaded machine: a limit must hit no earlier than it says, and not much later.
    const SLACK: Duration = Duration::from_secs(2);

    fn limits(connections: usize) -> ListenerLimits {
        ListenerLimits {
            connections,
            header: HEADER,
            idle: IDLE,
            body_window: WINDOW,
            body_window_bytes: 1024,
        }
    }

    struct Served {
        addr: SocketAddr,
        stats: Arc<ListenerStats>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn served(limits: ListenerLimits) -> Served {
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            // A handler that takes longer than the idle timeout (the work it stands for).
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(IDLE * 3).await;
                    "slow"
                }),
            )
            .route(
                "/echo",
                post(|body: Bytes| async move { body.len().to_string() }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stats = Arc::new(ListenerStats::default());
        let (stop, rx) = watch::channel(false);
        let (addr, task) = serve_with(
            ListenerKind::Public,
            listener,
            app,
            limits,
            stats.clone(),
            rx,
        )
        .unwrap();
        Served {
            addr,
            stats,
            stop,
            task,
        }
    }

    /// Reads until the server closes the connection: how long that took from `since`, and
    /// what it sent.
    async fn until_closed(stream: &mut TcpStream, since: Instant) -> (Duration, String) {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
                .await
                .expect("the server closes the connection");
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        (since.elapsed(), String::from_utf8_lossy(&out).into_owned())
    }

    /// Reads one response (its head and a body of Content-Length) from a kept-alive connection.
    async fn response(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&out).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if out.len() >= end + 4 + length {
                    return text;
                }
            }
            let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
                .await
                .expect("a response")
                .unwrap();
            assert!(n > 0, "closed before the response: {text}");
            out.extend_from_slice(&buf[..n]);
        }
    }

    fn within(elapsed: Duration, limit: Duration) {
        assert!(
            elapsed + Duration::from_millis(20) >= limit && elapsed <= limit + SLACK,
            "took {elapsed:?}, the limit is {limit:?}"
        );
    }

    #[test]
    fn the_cap_is_a_share_of_the_open_file_limit_and_at_most_the_maximum() {
        assert_eq!(HTTP_CONNECTIONS_FILE_SHARE, 4);
        assert_eq!(connections_cap(Some(256)), 64);
        assert_eq!(connections_cap(Some(1024)), 256);
        assert_eq!(connections_cap(Some(4096)), HTTP_CONNECTIONS_MAX);
        assert_eq!(connections_cap(Some(1 << 20)), HTTP_CONNECTIONS_MAX);
        assert_eq!(connections_cap(None), HTTP_CONNECTIONS_MAX);
        assert_eq!(
            connections_cap(Some(3)),
            1,
            "never 0: a listener takes one at least"
        );
        // Three listeners at their caps leave a quarter of the descriptors to the node.
        for soft in [64, 256, 1024, 4096, 65536] {
            assert!(3 * connections_cap(Some(soft)) as u64 <= soft * 3 / 4);
        }
        // This process's own limit reads.
        assert!(ListenerLimits::for_this_process().connections >= 1);
    }

    #[test]
    fn the_deadlines_are_ordered() {
        // A silent kept-alive connection goes on the idle rule before the header deadline.
        assert!(HTTP_IDLE_TIMEOUT < HTTP_HEADER_TIMEOUT);
        assert_eq!(HTTP_HEADER_TIMEOUT, Duration::from_secs(10));
        assert_eq!(HTTP_IDLE_TIMEOUT, Duration::from_secs(5));
        assert_eq!(HTTP_BODY_WINDOW, Duration::from_secs(10));
        // The editor's largest upload at the least rate still fits in a day.
        let secs =
            crate::local::IMPORT_BYTES_MAX / HTTP_BODY_WINDOW_BYTES * HTTP_BODY_WINDOW.as_secs();
        assert!(secs < 24 * 3600, "{secs} s");
        let l = ListenerLimits::for_this_process();
        assert_eq!(
            (l.header, l.idle, l.body_window, l.body_window_bytes),
            (
                HTTP_HEADER_TIMEOUT,
                HTTP_IDLE_TIMEOUT,
                HTTP_BODY_WINDOW,
                HTTP_BODY_WINDOW_BYTES
            )
        );
    }

    #[test]
    fn refusals_are_logged_once_per_interval_with_the_count_since_the_last_line() {
        let mut o = Occasional::default();
        let t0 = Instant::now();
        assert_eq!(o.note(t0, HTTP_WARN_INTERVAL), Some(1), "the first at once");
        for i in 1..100 {
            assert_eq!(
                o.note(t0 + Duration::from_millis(i * 100), HTTP_WARN_INTERVAL),
                None
            );
        }
        assert_eq!(
            o.note(t0 + HTTP_WARN_INTERVAL, HTTP_WARN_INTERVAL),
            Some(100),
            "then one line a minute, with the count since the line before"
        );
        assert_eq!(
            o.note(
                t0 + HTTP_WARN_INTERVAL + Duration::from_secs(1),
                HTTP_WARN_INTERVAL
            ),
            None
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_over_the_cap_gets_503_and_is_closed_at_once() {
        let s = served(limits(2)).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut c = TcpStream::connect(s.addr).await.unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            assert!(response(&mut c).await.starts_with("HTTP/1.1 200"));
            held.push(c);
        }
        assert_eq!(s.stats.open(), 2);
        let started = Instant::now();
        let mut over = TcpStream::connect(s.addr).await.unwrap();
        let (elapsed, answer) = until_closed(&mut over, started).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
        assert!(elapsed < SLACK, "refused at once, took {elapsed:?}");
        assert_eq!(s.stats.refused(), 1);
        // A slot comes free when a connection closes.
        drop(held.pop());
        let free = Instant::now();
        while s.stats.open() > 1 {
            assert!(free.elapsed() < SLACK, "the closed connection is let go");
            tokio::task::yield_now().await;
        }
        let mut again = TcpStream::connect(s.addr).await.unwrap();
        again
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(response(&mut again).await.starts_with("HTTP/1.1 200"));
        assert_eq!(s.stats.refused(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_head_not_whole_in_time_closes_the_connection() {
        let s = served(limits(8)).await;
        // Half a head, then nothing.
        let mut half = TcpStream::connect(s.addr).await.unwrap();
        let started = Instant::now();
        half.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        let (elapsed, answer) = until_closed(&mut half, started).await;
        within(elapsed, HEADER);
        assert!(!answer.contains(" 200 "), "{answer:?}");
        // A head that drips in a byte at a time is no better.
        let mut drip = TcpStream::connect(s.addr).await.unwrap();
        let started = Instant::now();
        let dripping = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            for b in
                b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            {
                tick.tick().await;
                if drip.write_all(&[*b]).await.is_err() {
                    break;
                }
            }
            drip
        });
        let mut drip = dripping.await.unwrap();
        let (elapsed, _) = until_closed(&mut drip, started).await;
        assert!(elapsed <= HEADER + SLACK, "took {elapsed:?}");
        assert_eq!(s.stats.timeouts(TimeoutKind::Header), 2);
        assert_eq!(s.stats.timeouts(TimeoutKind::Idle), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_or_crawling_body_gets_408_and_a_steady_one_passes() {
        let s = served(limits(8)).await;
        // Announces 5000 bytes, sends 10.
        let mut stalled = TcpStream::connect(s.addr).await.unwrap();
        let started = Instant::now();
        stalled
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n0123456789")
            .await
            .unwrap();
        let (elapsed, answer) = until_closed(&mut stalled, started).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        within(elapsed, WINDOW);
        // 100 bytes every 50 ms: never a stall, but under 1024 bytes a window.
        let mut crawl = TcpStream::connect(s.addr).await.unwrap();
        crawl
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            .await
            .unwrap();
        let (mut read_half, mut write_half) = crawl.into_split();
        let started = Instant::now();
        let crawling = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            for _ in 0..50 {
                tick.tick().await;
                if write_half.write_all(&[b'a'; 100]).await.is_err() {
                    break;
                }
            }
        });
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), read_half.read_to_end(&mut answer))
            .await
            .expect("closed")
            .ok();
        let elapsed = started.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        within(elapsed, WINDOW);
        crawling.abort();
        // 5000 bytes, 1024 every 150 ms: each window gets its share; served.
        let mut steady = TcpStream::connect(s.addr).await.unwrap();
        steady
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            .await
            .unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(150));
        let mut sent = 0;
        while sent < 5000 {
            tick.tick().await;
            let n = (5000 - sent).min(1024);
            steady.write_all(&vec![b'b'; n]).await.unwrap();
            sent += n;
        }
        let answer = response(&mut steady).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(answer.ends_with("5000"), "{answer:?}");
        assert_eq!(s.stats.timeouts(TimeoutKind::Body), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_connection_is_closed_and_a_slow_handler_is_not() {
        let s = served(limits(8)).await;
        // Kept alive after a request, then nothing.
        let mut kept = TcpStream::connect(s.addr).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(response(&mut kept).await.starts_with("HTTP/1.1 200"));
        let answered = Instant::now();
        let (elapsed, rest) = until_closed(&mut kept, answered).await;
        within(elapsed, IDLE);
        assert!(rest.is_empty(), "{rest:?}");
        // Connected, never a byte.
        let started = Instant::now();
        let mut silent = TcpStream::connect(s.addr).await.unwrap();
        let (elapsed, _) = until_closed(&mut silent, started).await;
        within(elapsed, IDLE);
        // Served once, then idle; never a byte: silent.
        assert_eq!(s.stats.timeouts(TimeoutKind::Idle), 1);
        assert_eq!(s.stats.timeouts(TimeoutKind::Silent), 1);
        // A handler that works for three idle timeouts is answered.
        let mut slow = TcpStream::connect(s.addr).await.unwrap();
        slow.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = response(&mut slow).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(answer.ends_with("slow"));
        assert_eq!(s.stats.timeouts(TimeoutKind::Header), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_carry_the_peer_address_and_shutdown_ends_the_loop() {
        let mut long = limits(8);
        long.idle = Duration::from_secs(30);
        long.header = Duration::from_secs(60);
        let s = served(long).await;
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = response(&mut c).await;
        let local = c.local_addr().unwrap().to_string();
        assert!(answer.ends_with(&local), "{answer:?} names {local}");
        // The node stops: the kept-alive connection closes and the loop ends, long before
        // any deadline.
        let started = Instant::now();
        s.stop.send(true).unwrap();
        let (elapsed, _) = until_closed(&mut c, started).await;
        assert!(elapsed < SLACK, "{elapsed:?}");
        tokio::time::timeout(SLACK, s.task)
            .await
            .expect("the loop ends")
            .unwrap();
        assert_eq!(s.stats.open(), 0);
        assert!(
            TcpStream::connect(s.addr).await.is_err(),
            "no longer accepting"
        );
    }
}
