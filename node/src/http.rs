//! The read-only HTTP/JSON API (docs/interface.md, HTTP), served by `spindel run --http`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/records?kind=&region=&tag=&q=&limit=&cursor=` | same JSON as `query --json`, without researchers' `email` and `phone` |
//! | `GET /api/v1/records/{author}/{record_id}` | one record; 404 if unknown or deleted |
//! | `GET /api/v1/records/{author}/{record_id}/answers` | `{"about","total","capped","groups":[{"author","total","answers":[record]}]}`: the experiences answering it, by region, newest first |
//! | `GET /api/v1/regions` | `{"regions":[{"node_id","name","display_name","records","head","admitted","membership"?}]}`; `membership` under a charter |
//! | `GET /api/v1/network` | under a charter, the membership ([`crate::local::MembershipReport`]); else `{"charter": null}` |
//! | `GET /api/v1/status` | same JSON as `status --json`, without peers' addresses and errors |
//! | `GET /api/v1/audit` | same JSON as `audit --json` ([`crate::local::AuditReport`]): checkpoints, cosigners, findings |
//! | `GET /metrics` | Prometheus text ([`crate::metrics`]) |
//! | `GET /healthz` | 200 `ok` while the node serves |
//!
//! `spindel run --metrics HOST:PORT` serves `/metrics`, `/healthz` and the whole status (with
//! peers' addresses and errors) on a separate listener for the operator ([`operator_router`]).
//!
//! A bad parameter is 400 with `{"error": "..."}`; an unknown route or record is 404. Only GET
//! and HEAD are routed: nothing over HTTP can write. The same server serves the knowledge bank
//! page ([`crate::web`]); unknown paths outside `/api/` get its Swedish 404 page.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;
use spindel_protocol::sync::QueryRequest;

use crate::listener::ListenerKind;
use crate::params::Params;
use crate::read::Reads;
use crate::shared::Shared;

/// Query parameters `GET /api/v1/records` understands.
const RECORD_PARAMS: &[&str] = &[
    "kind",
    "region",
    "tag",
    "q",
    "limit",
    "cursor",
    "from_date",
    "to_date",
];

/// An API error: status and a one-line message, as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

fn internal(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.into())
}

/// One region as `/api/v1/regions` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionView {
    pub node_id: String,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub records: u64,
    pub head: u64,
    /// False for a region whose admission ended (`spindel disallow` at its aggregator): its
    /// records stay, under the name made from its key.
    pub admitted: bool,
    /// Under a charter: the region this key is (or was) a key of: member or former, since
    /// when, endorsed by whom, its keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub membership: Option<crate::local::RegionMembership>,
}

/// What the public listener's pages take from the settings.
#[derive(Debug, Clone)]
pub struct PageSettings {
    /// `public_url`: makes the feeds' and the embed's links absolute.
    pub public_url: Option<String>,
    /// `embed_ancestors`: the sites that may frame `/inbaddning`.
    pub embed_ancestors: crate::feeds::EmbedAncestors,
}

impl PageSettings {
    /// From the settings' `public_url` and `embed_ancestors` (checked: an origin that is not
    /// one is refused, naming it).
    pub fn new(
        public_url: Option<String>,
        embed_ancestors: &[String],
    ) -> Result<PageSettings, String> {
        Ok(PageSettings {
            public_url,
            embed_ancestors: crate::feeds::EmbedAncestors::from_origins(embed_ancestors)?,
        })
    }
}

/// The API's routes over a running node, with the pages' settings.
pub fn router(shared: Arc<Shared>, settings: PageSettings) -> Router {
    Router::new()
        .route("/api/v1/records", get(records))
        .route("/api/v1/records/{author}/{record_id}", get(record))
        .route("/api/v1/records/{author}/{record_id}/answers", get(answers))
        .route("/api/v1/regions", get(regions))
        .route("/api/v1/network", get(network))
        .route("/api/v1/status", get(public_status))
        .route("/api/v1/audit", get(audit))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .merge(crate::web::routes())
        .merge(crate::calendar::routes())
        .merge(crate::proxybank_page::routes())
        .merge(crate::audit_page::routes())
        .merge(crate::network_page::routes())
        .merge(crate::feeds::routes())
        .merge(crate::export::routes())
        .layer(axum::Extension(crate::web::PublicUrl(settings.public_url)))
        .layer(axum::Extension(settings.embed_ancestors))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            HttpLimits::new(HTTP_CONCURRENCY_MAX, HTTP_REQUEST_TIMEOUT),
            limit_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            count_request,
        ))
        .with_state(shared)
}

/// Requests served at once by one listener; more get 503 at once (no queue to fill).
pub const HTTP_CONCURRENCY_MAX: usize = 64;
/// A request not answered within this gets 503.
pub const HTTP_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The limits [`limit_requests`] applies.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    permits: Arc<tokio::sync::Semaphore>,
    timeout: std::time::Duration,
}

impl HttpLimits {
    pub fn new(concurrency: usize, timeout: std::time::Duration) -> Self {
        HttpLimits {
            permits: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            timeout,
        }
    }
}

/// At most `concurrency` requests at once and each within `timeout`; otherwise 503 with a JSON
/// error and `Retry-After`.
pub async fn limit_requests(
    State(limits): State<HttpLimits>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let busy = |msg: &str| {
        let mut r = ApiError(StatusCode::SERVICE_UNAVAILABLE, msg.to_string()).into_response();
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        r
    };
    let Ok(_permit) = limits.permits.clone().try_acquire_owned() else {
        return busy("busy: too many requests at once; try again");
    };
    match tokio::time::timeout(limits.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => busy("the request took too long and was stopped"),
    }
}

/// The operator's listener (`run --metrics`): `/metrics`, `/healthz`, and the whole status
/// with peers' addresses and errors, which the public listener leaves out.
pub fn operator_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/status", get(status))
        .fallback(fallback_json)
        .layer(axum::middleware::from_fn_with_state(
            HttpLimits::new(HTTP_CONCURRENCY_MAX, HTTP_REQUEST_TIMEOUT),
            limit_requests,
        ))
        .with_state(shared)
}

/// Counts each request by its matched route and status for `/metrics`.
async fn count_request(
    State(shared): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    shared
        .metrics
        .http_request(&route, response.status().as_u16());
    response
}

async fn fallback_json() -> Response {
    not_found("no such route").into_response()
}

/// `GET /healthz`: 200 while the node serves (its store answers).
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.blocking(|n| Ok(n.generation()?)).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

/// `GET /metrics` in Prometheus text format.
async fn metrics(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let peers = shared.peers();
    let s2 = shared.clone();
    let text = shared
        .blocking(move |n| crate::metrics::render(n, &s2.metrics, &peers))
        .await
        .map_err(|e| internal(e.to_string()))?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

/// The public `/api/v1/status`: what a visitor needs (identity, heads, counts, forks), without
/// the peers' addresses and errors (nor the address of another copy of the key) (those are for the operator: `spindel status`, or
/// `/api/v1/status` on the `--metrics` listener).
async fn public_status(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let mut status = shared.status().await.map_err(|e| internal(e.to_string()))?;
    for p in &mut status.peers {
        if let Some(o) = p.as_object_mut() {
            o.remove("address");
            o.remove("last_error");
        }
    }
    // It names the other copy's address: a visitor learns only that there is one.
    if status.other_copy.is_some() {
        status.other_copy =
            Some("another copy of this node's key is connected to the aggregator".into());
    }
    // So does the advice; which entries the network lacks (`not_sent`) stays.
    if let Some(range) = &status.not_sent
        && status.other_copy_advice.is_some()
    {
        status.other_copy_advice = Some(crate::local::other_copy_advice(
            range,
            None,
            shared.gate.other_copy_held(),
        ));
    }
    Ok(axum::Json(status).into_response())
}

/// `GET /api/v1/audit`: the same JSON as `spindel audit --json` (no parameters).
async fn audit(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(raw.as_deref(), &[]).map_err(|e| bad(e.to_string()))?;
    let now = crate::shared::now_ms();
    let report = shared
        .read(move |n| n.audit(now))
        .await
        .map_err(|e| internal(e.to_string()))?;
    Ok(axum::Json(report).into_response())
}

/// A method other than GET or HEAD: 405 saying why (JSON under `/api/`).
async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    let mut r = if uri.path().starts_with("/api/") {
        ApiError(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD: nothing over HTTP can write".into(),
        )
        .into_response()
    } else {
        (StatusCode::METHOD_NOT_ALLOWED, crate::words::READ_ONLY_API).into_response()
    };
    r.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("GET, HEAD"),
    );
    r
}

/// An unknown route: JSON under `/api/`, the Swedish 404 page elsewhere.
async fn fallback(state: State<Arc<Shared>>, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        not_found("no such route").into_response()
    } else {
        crate::web::not_found_page(state).await
    }
}

/// Parses the query string of `GET /api/v1/records`; unknown or repeated parameters are
/// refused.
pub fn records_request(raw: Option<&str>) -> Result<QueryRequest, ApiError> {
    let params = Params::parse(raw, RECORD_PARAMS).map_err(|e| bad(e.to_string()))?;
    let get = |k: &str| params.get(k).map(str::to_string);
    let limit = match get("limit") {
        Some(l) => Some(
            l.parse::<u32>()
                .map_err(|_| bad(format!("limit must be a number from 1 to 1000, got {l:?}")))?,
        ),
        None => None,
    };
    Ok(QueryRequest {
        kind: get("kind"),
        region: get("region"),
        tag: get("tag"),
        text: get("q"),
        limit,
        cursor: get("cursor"),
    })
}

async fn records(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let request = records_request(raw.as_deref())?;
    let mut query = crate::query::Query::from_request(&request).map_err(|e| bad(e.to_string()))?;
    let params = Params::parse(raw.as_deref(), RECORD_PARAMS).map_err(|e| bad(e.to_string()))?;
    query.dates = crate::query::DateRange::parse(
        params.get("from_date"),
        params.get("to_date"),
        crate::query::DATE_PARAMS,
    )
    .map_err(|e| bad(e.to_string()))?;
    let page = shared.read(move |n| n.query(&query)).await.map_err(|e| {
        if e.is_bad_question() {
            bad(e.to_string())
        } else {
            internal(e.to_string())
        }
    })?;
    let mut page = page;
    crate::privacy::leave_out_contacts(&mut page);
    let mut response = axum::Json(page).into_response();
    crate::privacy::personal_data(&mut response);
    Ok(response)
}

/// The answers (`experience` records) to one record, grouped by answering region, newest
/// first, at most `answers::ANSWERS_PER_REGION_ALL` a region: known by the answered record's
/// reference, so also while that record is not held here (or deleted).
async fn answers(
    State(shared): State<Arc<Shared>>,
    Path((author, record_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let author: NodeId = author.parse().map_err(|e| bad(format!("{e}")))?;
    let rid: RecordId = record_id.parse().map_err(|e| bad(format!("{e}")))?;
    let about = spindel_protocol::RecordRef {
        author,
        record: rid,
    };
    let answers = shared
        .blocking(move |n| Ok(n.answers_to(&about, crate::answers::ANSWERS_PER_REGION_ALL)?))
        .await
        .map_err(|e| internal(e.to_string()))?;
    Ok(axum::Json(serde_json::json!({
        "about": about.to_string(),
        "total": answers.total,
        "capped": answers.capped,
        "groups": answers.groups,
    }))
    .into_response())
}

async fn record(
    State(shared): State<Arc<Shared>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    Path((author, record_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let author: NodeId = author.parse().map_err(|e| bad(format!("{e}")))?;
    let rid: RecordId = record_id.parse().map_err(|e| bad(format!("{e}")))?;
    let view = shared
        .blocking(move |n| Ok(n.record(&author, &rid)?))
        .await
        .map_err(|e| internal(e.to_string()))?;
    match view {
        Some(v) => {
            let personal = crate::privacy::is_personal(v.kind);
            // A researcher's contact details, per client address (crate::ratelimit::CONTACTS).
            if personal
                && let Err(wait) = shared.contact_view(shared.client_address(peer, &headers))
            {
                let mut r = ApiError(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many researchers' contact details from this address; try again later"
                        .into(),
                )
                .into_response();
                crate::web::retry_after(&mut r, wait);
                return Ok(r);
            }
            let mut response = axum::Json(v).into_response();
            if personal {
                crate::privacy::personal_data(&mut response);
            }
            Ok(response)
        }
        None => Err(not_found(format!("no record {rid} by {author}"))),
    }
}

/// Every region (an author with a profile), with its visible record count and head. Under a
/// charter a region is one entry whatever keys it had: its live key, its records counted over
/// every key, its profile from its newest key that has one.
pub fn region_list(
    node: &crate::read::ReadModel,
) -> Result<Vec<RegionView>, crate::local::NodeError> {
    let mut out = Vec::new();
    let report = node.membership_decisions();
    let authors = node.authors()?;
    let rows: std::collections::BTreeMap<NodeId, &crate::regions::AuthorRow> =
        authors.iter().map(|a| (a.id, a)).collect();
    for a in &authors {
        if !a.is_region() || node.representative(&a.id)? != Some(a.id) {
            continue;
        }
        let keys = node.region_keys(&a.id);
        let live = keys.last().copied().unwrap_or(a.id);
        let records = keys
            .iter()
            .filter_map(|k| rows.get(k))
            .map(|r| r.records)
            .sum();
        let head = rows.get(&live).map_or(0, |r| r.head);
        let key = live.to_hex();
        let membership = report.as_ref().and_then(|m| {
            m.regions
                .iter()
                .find(|r| r.keys.iter().any(|k| k.node == key))
                .cloned()
        });
        out.push(RegionView {
            node_id: key.clone(),
            name: Some(a.meta.name_or_key(&a.id)),
            display_name: a.meta.display_name.clone(),
            records,
            head,
            // Under a charter: a member region's live key (a former member's is not).
            admitted: membership
                .as_ref()
                .map_or(a.meta.admitted, |m| m.state == "member" && m.node == key),
            membership,
        });
    }
    out.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    Ok(out)
}

async fn regions(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let list = shared
        .blocking(region_list)
        .await
        .map_err(|e| internal(e.to_string()))?;
    Ok(axum::Json(serde_json::json!({ "regions": list })).into_response())
}

/// The network's membership under a charter; `{"charter": null}` without one.
/// `?erasures_page=N` (from 1) pages through the erasure orders.
async fn network(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params =
        Params::parse(raw.as_deref(), &["erasures_page"]).map_err(|e| bad(e.to_string()))?;
    let page = match params.get("erasures_page") {
        Some(p) => p.parse::<usize>().ok().filter(|p| *p >= 1).ok_or_else(|| {
            bad(format!(
                "erasures_page: {p:?} is not a page number (1, 2, 3 ...)"
            ))
        })?,
        None => 1,
    };
    let report = shared
        .read(move |n| Ok(n.membership_page(page)))
        .await
        .map_err(|e| internal(e.to_string()))?;
    Ok(match report {
        Some(r) => axum::Json(r).into_response(),
        None => axum::Json(serde_json::json!({ "charter": null })).into_response(),
    })
}

async fn status(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let status = shared.status().await.map_err(|e| internal(e.to_string()))?;
    Ok(axum::Json(status).into_response())
}

/// Binds `addr` and serves the API until the node stops.
pub async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    settings: PageSettings,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = router(shared.clone(), settings);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(&shared, ListenerKind::Public, listener, app)
}

/// Binds `addr` and serves the operator's routes ([`operator_router`]).
pub async fn serve_operator(
    shared: Arc<Shared>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = operator_router(shared.clone());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(&shared, ListenerKind::Operator, listener, app)
}

/// Serves the API and the page on a listener bound beforehand (so a taken port fails before
/// anything else is made).
pub fn serve_listener(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    settings: PageSettings,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = router(shared.clone(), settings);
    serve_on(&shared, ListenerKind::Public, listener, app)
}

/// Serves `app` on `listener` with the limits of [`crate::listener`] until the node stops.
pub fn serve_on(
    shared: &Arc<Shared>,
    kind: ListenerKind,
    listener: tokio::net::TcpListener,
    app: Router,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    crate::listener::serve(
        kind,
        listener,
        app,
        shared.metrics.listener(kind).clone(),
        shared.shutdown_signal(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    proptest::proptest! {
        /// Query strings are untrusted: any parameters never panic the parsing, and what is
        /// accepted becomes a query or a one-line error.
        #[test]
        fn arbitrary_query_parameters_never_panic(
            params in proptest::collection::vec(("[a-z]{1,8}", ".{0,60}"), 0..8),
        ) {
            let raw = serde_urlencoded::to_string(&params).unwrap_or_default();
            if let Ok(request) = records_request(Some(&raw)) {
                let _ = crate::query::Query::from_request(&request);
            }
        }

        /// Raw query strings, as a client sends them (percent escapes, `+`, repeats, bytes
        /// that are not UTF-8), through both the API's and the page's parsing.
        #[test]
        fn arbitrary_query_strings_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            text in "([a-z]{1,6}=[%+a-zA-Z0-9åäö&]{0,20}){0,6}",
        ) {
            crate::fuzz::query_string(&bytes);
            crate::fuzz::query_string(text.as_bytes());
        }
    }

    /// A status line from a plain HTTP/1.1 GET on a real socket.
    fn status_of(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.lines().next().unwrap_or_default().to_string()
    }

    /// The limits hit: with one request in flight and a concurrency of 1, the next gets 503
    /// at once; a request that does not finish within the timeout gets 503.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_and_timeout_limits_answer_503() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let entered = Arc::new(tokio::sync::Notify::new());
        let (g, e) = (gate.clone(), entered.clone());
        let app = Router::new()
            .route(
                "/hold",
                get(move || {
                    let (g, e) = (g.clone(), e.clone());
                    async move {
                        e.notify_one();
                        g.notified().await;
                        "done"
                    }
                }),
            )
            .route("/fast", get(|| async { "fast" }))
            .layer(axum::middleware::from_fn_with_state(
                HttpLimits::new(1, std::time::Duration::from_millis(300)),
                limit_requests,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        // The held request times out: 503.
        let held = tokio::task::spawn_blocking(move || status_of(addr, "/hold"));
        entered.notified().await;
        // Meanwhile the only permit is taken: 503 at once.
        let busy = tokio::task::spawn_blocking(move || status_of(addr, "/fast"))
            .await
            .unwrap();
        assert!(busy.contains("503"), "{busy}");
        assert!(held.await.unwrap().contains("503"));
        // Free again: served.
        let ok = tokio::task::spawn_blocking(move || status_of(addr, "/fast"))
            .await
            .unwrap();
        assert!(ok.contains("200"), "{ok}");
        gate.notify_waiters();
    }
}
