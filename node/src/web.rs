//! The knowledge bank page (docs/interface.md, HTTP): server-rendered Swedish HTML from minijinja
//! templates (`node/templates/`, compiled into the binary, HTML auto-escaped), usable without
//! JavaScript. Read-only like the API.
//!
//! | route | page |
//! |---|---|
//! | `GET /?q=&kind=&region=&tag=&cursor=` | search with facet counts, newest first, 20 a page |
//! | `GET /post/{author}/{record_id}` | one record with every field |
//! | `GET /region/{node_id or name}` | a region: profile, members, counts, last sync, records |
//! | `GET /proxybank?q=&region=&tag=&sida=` | the SROI proxy bank by outcome, 20 outcomes a page |
//! | `GET /oversikt` | national overview: per region and kind, latest additions, SROI |
//! | `GET /assets/spindel.css` | the style sheet |
//!
//! A bad parameter is a 400 page, an unknown record or region a 404 page, each saying why in
//! Swedish. Every page sends a strict Content-Security-Policy (no scripts at all).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use serde::Serialize;
use spindel_protocol::NodeId;
use spindel_protocol::RecordRef;
use spindel_protocol::entry::RecordId;
use spindel_protocol::experience::title_of as experience_title;
use spindel_protocol::record::Kind;

use crate::bank::KINDS;
use crate::params::Params;
use crate::query::{self, Facets, Query, QueryError, RecordView};
use crate::read::{ReadError, ReadModel, Reads};
use crate::shared::Shared;
use crate::templates::{escape, templates};
use crate::words::{self, kind_label};

/// Where readers find the knowledge bank (settings `public_url`): the feeds and the embed link
/// each record's page under it.
#[derive(Debug, Clone)]
pub struct PublicUrl(pub Option<String>);

/// Results per page.
pub const PAGE_SIZE: usize = 20;
/// Latest records on a region's page.
const REGION_RECORDS: usize = 10;
/// Parameters the search page understands.
const SEARCH_PARAMS: &[&str] = &["q", "kind", "region", "tag", "cursor"];

pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";
const STYLE: &str = include_str!("../templates/spindel.css");

/// A page that could not be shown: status, heading and a Swedish sentence saying why.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    heading: &'static str,
    message: String,
}

impl PageError {
    /// Its status and its sentence (the embed shows them inside its own frame).
    pub(crate) fn parts(&self) -> (StatusCode, &str) {
        (self.status, &self.message)
    }
}

pub(crate) fn bad_request(message: impl Into<String>) -> PageError {
    PageError {
        status: StatusCode::BAD_REQUEST,
        heading: words::BAD_ADDRESS,
        message: message.into(),
    }
}

pub(crate) fn not_found(message: impl Into<String>) -> PageError {
    PageError {
        status: StatusCode::NOT_FOUND,
        heading: words::NO_SUCH_PAGE,
        message: message.into(),
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> PageError {
    tracing::error!(error = %e, "page failed");
    PageError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        heading: words::SOMETHING_WENT_WRONG,
        message: words::store_unreadable(&e),
    }
}

pub(crate) fn query_error(e: ReadError) -> PageError {
    match e {
        ReadError::Question(QueryError::BadCursor(_)) => bad_request(words::BAD_CURSOR),
        ReadError::Question(QueryError::TextTooLong) => {
            bad_request(words::search_text_too_long(query::TEXT_CHARS_MAX))
        }
        other => internal(other),
    }
}

/// Renders `template` with the node's name and role and `ctx`; adds the page headers.
fn render(
    shared: &Shared,
    status: StatusCode,
    template: &str,
    section: &str,
    ctx: Value,
) -> Response {
    let config = shared.node.config();
    let role = match config.role {
        crate::local::Role::Region => words::ROLE_REGION,
        crate::local::Role::Aggregator => words::ROLE_AGGREGATOR,
    };
    let full = context! {
        node_name => config.name.clone(),
        node_role => role,
        section => section,
        ..ctx
    };
    let rendered = templates()
        .get_template(template)
        .and_then(|t| t.render(full));
    match rendered {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(template, error = %e, "template failed");
            let body = words::template_failed(&escape(&e.to_string()));
            html(StatusCode::INTERNAL_SERVER_ERROR, body)
        }
    }
}

/// An HTML page with the headers every page sends (type, CSP, nosniff, referrer policy).
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

pub(crate) fn page(shared: &Shared, r: Result<(&str, &str, Value), PageError>) -> Response {
    match r {
        Ok((template, section, ctx)) => {
            let personal = ctx.get_attr("personal").is_ok_and(|v| v.is_true());
            let mut response = render(shared, StatusCode::OK, template, section, ctx);
            if personal {
                crate::privacy::personal_data(&mut response);
            }
            response
        }
        Err(e) => render(
            shared,
            e.status,
            "error.html",
            "",
            context! { heading => e.heading, message => e.message },
        ),
    }
}

/// Whether a list of records shows a person (a researcher contact).
fn shows_people(items: &[RecordItem]) -> bool {
    items
        .iter()
        .any(|i| crate::privacy::is_personal(i.view.kind))
}

/// What crawlers may read: not the API, not the researcher listings (researcher pages say
/// `noindex` themselves).
pub const ROBOTS_TXT: &str = "# spindel: researcher contacts and the API are not for crawlers.\n\
User-agent: *\n\
Disallow: /api/\n\
Disallow: /*kind=researcher\n";

async fn robots() -> Response {
    let mut r = ROBOTS_TXT.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A record as a list shows it: the view plus its title and its region's display name.
#[derive(Debug, Clone, Serialize)]
pub struct RecordItem {
    #[serde(flatten)]
    pub view: RecordView,
    pub title: String,
    pub region_display: Option<String>,
    /// An innovation's page: the indicators its SROI names, found here or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named: Option<Vec<crate::proxybank::Named>>,
    /// An indicator's page: the innovations naming it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<crate::proxybank::User>>,
}

pub(crate) fn items(
    node: &ReadModel,
    views: Vec<RecordView>,
) -> Result<Vec<RecordItem>, ReadError> {
    let names: HashMap<String, String> = node.shown_names()?;
    Ok(views
        .into_iter()
        .map(|view| {
            let d = &view.data;
            let title = ["title", "display_name", "name", "indicator"]
                .iter()
                .find_map(|k| d.get(k).and_then(|v| v.as_str()))
                .or_else(|| d.get("text").and_then(|v| v.as_str()).map(experience_title))
                .unwrap_or("(utan titel)")
                .to_string();
            let region_display = names.get(&view.author).cloned().or(view.region.clone());
            RecordItem {
                view,
                title,
                region_display,
                named: None,
                users: None,
            }
        })
        .collect())
}

/// `/` with these parameters (empty ones left out).
fn search_url(params: &Params) -> String {
    let pairs: Vec<(&str, &str)> = SEARCH_PARAMS
        .iter()
        .filter_map(|k| params.get(k).map(|v| (*k, v)))
        .collect();
    if pairs.is_empty() {
        return "/".to_string();
    }
    match serde_urlencoded::to_string(pairs) {
        Ok(q) => format!("/?{q}"),
        Err(_) => "/".to_string(),
    }
}

#[derive(Debug, Serialize)]
struct FacetLink {
    label: String,
    count: u64,
    href: String,
    active: bool,
}

#[derive(Debug, Serialize)]
struct FacetGroup {
    title: &'static str,
    items: Vec<FacetLink>,
}

#[derive(Debug, Serialize)]
struct ActiveFilter {
    label: String,
    remove: String,
}

/// The search page's parameters; unknown or repeated ones are refused.
pub(crate) fn search_params(raw: Option<&str>) -> Result<Params, PageError> {
    let mut params =
        Params::parse(raw, SEARCH_PARAMS).map_err(|e| bad_request(words::param_error(&e)))?;
    // Tags match without case; one spelling keeps the chosen one selected in the form.
    let tag = params.get("tag").map(str::to_lowercase);
    params.set("tag", tag);
    Ok(params)
}

async fn search_page(
    shared: &Arc<Shared>,
    raw: Option<&str>,
) -> Result<(&'static str, &'static str, Value), PageError> {
    let params = search_params(raw)?;
    let get = |k: &str| params.get(k).map(str::to_string);
    let kind = match get("kind") {
        Some(k) => Some(
            k.parse::<Kind>()
                .map_err(|_| bad_request(words::unknown_kind(&k)))?,
        ),
        None => None,
    };
    let q = Query {
        kind,
        region: get("region"),
        tag: get("tag"),
        text: get("q"),
        author: None,
        limit: Some(PAGE_SIZE),
        cursor: get("cursor"),
        dates: None,
    };
    let (next_cursor, mut facets, records, region_count) = shared
        .read(move |n| {
            // An unknown region shows as zero hits, its name kept in the form.
            let (page, facets) = n.search_and_facets(&q)?;
            let regions = n.region_count()?;
            let records = items(n, page.records)?;
            Ok((page.next_cursor, facets, records, regions))
        })
        .await
        .map_err(query_error)?;
    // A chosen value stays in its list even with no results (or beyond the top tags), so the
    // form sends it again.
    for (list, key) in [
        (&mut facets.kinds, "kind"),
        (&mut facets.regions, "region"),
        (&mut facets.tags, "tag"),
    ] {
        if let Some(v) = get(key)
            && !list.iter().any(|f| f.value == v)
        {
            let count = if key == "tag" { facets.total } else { 0 };
            list.push(query::FacetCount {
                label: v.clone(),
                value: v,
                count,
            });
        }
    }
    let Facets {
        ref kinds,
        ref regions,
        ref tags,
        ..
    } = facets;
    let with = |k: &'static str, v: Option<&str>| {
        let mut p = params.clone();
        p.set("cursor", None);
        p.set(k, v.map(str::to_string));
        search_url(&p)
    };
    let current = |k: &str| params.get(k).unwrap_or_default();
    let group = |title,
                 key: &'static str,
                 list: &[query::FacetCount],
                 label: &dyn Fn(&query::FacetCount) -> String| FacetGroup {
        title,
        items: list
            .iter()
            .map(|f| FacetLink {
                label: label(f),
                count: f.count,
                href: with(key, Some(&f.value)),
                active: current(key) == f.value,
            })
            .collect(),
    };
    let facet_links = vec![
        group(words::FACET_KIND, "kind", kinds, &|f| {
            kind_label(&f.value, true)
        }),
        group(words::FACET_REGION, "region", regions, &|f| f.label.clone()),
        group(words::FACET_TAG, "tag", tags, &|f| f.label.clone()),
    ];
    let mut active = Vec::new();
    for (key, label) in [
        ("kind", get("kind").map(|k| kind_label(&k, true))),
        (
            "region",
            get("region").map(|r| {
                regions
                    .iter()
                    .find(|f| f.value == r)
                    .map_or(r.clone(), |f| f.label.clone())
            }),
        ),
        ("tag", get("tag").map(|t| format!("tagg: {t}"))),
    ] {
        if let Some(label) = label {
            active.push(ActiveFilter {
                label,
                remove: with(key, None),
            });
        }
    }
    let personal = shows_people(&records) || get("kind") == Some("researcher".to_string());
    let next_page = next_cursor.as_ref().map(|c| {
        let mut p = params.clone();
        p.set("cursor", Some(c.clone()));
        search_url(&p)
    });
    let first_page = get("cursor").map(|_| with("cursor", None));
    // The same search as an Atom feed (its filters, not its page).
    let feed = {
        let pairs: Vec<(&str, String)> = ["kind", "region", "tag", "q"]
            .into_iter()
            .filter_map(|k| get(k).filter(|v| !v.is_empty()).map(|v| (k, v)))
            .collect();
        match serde_urlencoded::to_string(&pairs) {
            Ok(q) if !q.is_empty() => format!("/flode.atom?{q}"),
            _ => "/flode.atom".to_string(),
        }
    };
    Ok((
        "search.html",
        "search",
        context! {
            q => current("q"),
            kind => current("kind"),
            region => current("region"),
            tag => current("tag"),
            facets => Value::from_serialize(&facets),
            facet_links => facet_links,
            active => active,
            personal => personal,
            records => records,
            next_page => next_page,
            first_page => first_page,
            region_count => region_count,
            feed => feed,
        },
    ))
}

async fn search(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let r = search_page(&shared, raw.as_deref()).await;
    page(&shared, r)
}

/// The indicators an innovation's page lists, or the innovations an indicator's page lists,
/// added to `item` (the record page's).
fn proxybank_links(n: &ReadModel, item: &mut RecordItem) -> Result<(), ReadError> {
    match item.view.kind {
        Kind::Innovation => {
            let refs: Vec<spindel_protocol::RecordRef> = item.view.data["sroi"]["indicators"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
                .unwrap_or_default();
            if !refs.is_empty() {
                item.named = Some(n.named_indicators(&refs)?);
            }
        }
        Kind::Indicator => {
            if let (Ok(author), Ok(record)) =
                (item.view.author.parse(), item.view.record_id.parse())
            {
                let target = spindel_protocol::RecordRef { author, record };
                item.users = Some(n.indicator_users(&target)?);
            }
        }
        _ => {}
    }
    Ok(())
}

/// An answer's groups by region as the record page shows them.
#[derive(Debug, Serialize)]
struct AnswerGroupItem {
    author: String,
    region_display: String,
    total: usize,
    answers: Vec<RecordItem>,
}

/// The answers to `about` as the record page shows them, at most `per_region` a region.
fn answer_items(
    node: &ReadModel,
    about: &RecordRef,
    per_region: usize,
) -> Result<(usize, bool, Vec<AnswerGroupItem>), ReadError> {
    let answers = node.answers_to(about, per_region)?;
    let names = node.shown_names()?;
    let mut groups = Vec::new();
    for g in answers.groups {
        groups.push(AnswerGroupItem {
            region_display: names.get(&g.author).cloned().unwrap_or_default(),
            author: g.author,
            total: g.total,
            answers: items(node, g.answers)?,
        });
    }
    Ok((answers.total, answers.capped, groups))
}

/// What an answer's page says of the record it answers: `held` with its title and link,
/// `deleted` or `not-held`, and nothing of a deleted record's content.
fn answered(node: &ReadModel, about: &RecordRef) -> Result<Value, ReadError> {
    Ok(match node.answer_target(about)? {
        crate::answers::Target::Held { record } => {
            let item = items(node, vec![*record])?.pop();
            context! { state => "held", r => item }
        }
        crate::answers::Target::Deleted => context! { state => "deleted" },
        crate::answers::Target::NotHeld => context! { state => "not-held" },
    })
}

async fn record_page(
    shared: &Arc<Shared>,
    author: String,
    rid: String,
    raw: Option<String>,
) -> Result<(&'static str, &'static str, Value), PageError> {
    let params = Params::parse(raw.as_deref(), &["svar"])
        .map_err(|e| bad_request(words::param_error(&e)))?;
    let all = match params.get("svar") {
        None => false,
        Some("alla") => true,
        Some(_) => return Err(bad_request(words::BAD_ANSWERS_PARAM)),
    };
    let per_region = if all {
        crate::answers::ANSWERS_PER_REGION_ALL
    } else {
        crate::answers::ANSWERS_PER_REGION
    };
    let author: NodeId = author
        .parse()
        .map_err(|_| bad_request(words::BAD_RECORD_ADDRESS_KEY))?;
    let rid: RecordId = rid
        .parse()
        .map_err(|_| bad_request(words::BAD_RECORD_ADDRESS_ID))?;
    let found = shared
        .blocking(move |n| {
            let Some(v) = n.record(&author, &rid)? else {
                return Ok(None);
            };
            let about = v.data.get("about").and_then(|a| a.as_str());
            let answered = match about.and_then(|a| a.parse::<RecordRef>().ok()) {
                Some(about) if v.kind == Kind::Experience => Some(answered(n, &about)?),
                _ => None,
            };
            let this = RecordRef {
                author,
                record: rid,
            };
            let answers = answer_items(n, &this, per_region)?;
            let mut item = items(n, vec![v])?.pop();
            if let Some(item) = &mut item {
                proxybank_links(n, item)?;
            }
            Ok(item.map(|r| (r, answered, answers)))
        })
        .await
        .map_err(internal)?;
    let Some((r, answered, (total, capped, groups))) = found else {
        return Err(not_found(words::NO_SUCH_RECORD_HERE));
    };
    let personal = crate::privacy::is_personal(r.view.kind);
    Ok((
        "record.html",
        "",
        context! {
            r => r, personal => personal, answered => answered,
            answers => context! { total => total, capped => capped, groups => groups, all => all },
        },
    ))
}

async fn record(
    State(shared): State<Arc<Shared>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    Path((author, rid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let r = record_page(&shared, author, rid, raw).await;
    // A researcher's contact details: a person reading is never slowed, a script harvesting
    // is (crate::ratelimit::CONTACTS).
    if let Ok((_, _, ctx)) = &r
        && ctx.get_attr("personal").is_ok_and(|v| v.is_true())
        && let Err(wait) = shared.contact_view(shared.client_address(peer, &headers))
    {
        let mut response = render(
            &shared,
            StatusCode::TOO_MANY_REQUESTS,
            "error.html",
            "",
            context! {
                heading => words::TOO_MANY_CONTACTS,
                message => words::TOO_MANY_CONTACTS_WAIT,
            },
        );
        retry_after(&mut response, wait);
        return response;
    }
    page(&shared, r)
}

/// `Retry-After` in whole seconds (at least 1) on a 429 or 503.
pub fn retry_after(response: &mut Response, wait: std::time::Duration) {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

async fn region_page(
    shared: &Arc<Shared>,
    key: String,
    public_url: Option<String>,
) -> Result<(&'static str, &'static str, Value), PageError> {
    let found = shared
        .blocking(move |n| {
            let Some(id) = n.find_region(&key)? else {
                return Ok(None);
            };
            let Some(page) = n.region_page(&id)? else {
                return Ok(None);
            };
            // Every key's records: the region keeps them across a rotation or replacement.
            let latest = n.query(&Query {
                region: Some(page.row.name.clone()),
                limit: Some(REGION_RECORDS),
                ..Query::default()
            })?;
            let a = n.region_answers(&id)?;
            let answers = context! {
                given => items(n, a.given)?, given_total => a.given_total,
                received => items(n, a.received)?, received_total => a.received_total,
            };
            Ok(Some((id, page, items(n, latest.records)?, answers)))
        })
        .await
        .map_err(internal)?;
    let Some((id, region, records, answers)) = found else {
        return Err(not_found(words::NO_SUCH_REGION));
    };
    let hex = id.to_hex();
    let connected = shared
        .peers()
        .iter()
        .any(|p| p.connected && p.node_id == hex);
    // What "connected" means depends on where the page is read: a region connects to its
    // aggregator, never to another region, so only the aggregator shows the link; a mirror of
    // another region shows when its last record arrived here instead.
    let here = if id == shared.node.node_id() {
        "own"
    } else if shared.node.config().role == crate::local::Role::Aggregator {
        "aggregator"
    } else {
        "mirror"
    };
    let mut only_region = Params::default();
    only_region.set("region", Some(region.row.name.clone()));
    let all_records = search_url(&only_region);
    let kinds: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
    // How the region's own website shows its newest records: the embed's line to paste, and
    // the feeds, absolute under `public_url` (else the reader adds this site's address).
    let embed = crate::templates::embed_line(public_url.as_deref(), &region.row.name);
    let atom = format!(
        "/flode.atom?{}",
        serde_urlencoded::to_string([("region", &region.row.name)]).unwrap_or_default()
    );
    Ok((
        "region.html",
        "",
        context! {
            row => Value::from_serialize(&region.row),
            profile => Value::from_serialize(&region.profile),
            sroi => Value::from_serialize(&region.sroi),
            fork_seq => region.fork_seq,
            admitted => region.admitted,
            membership => Value::from_serialize(&region.membership),
            personal => shows_people(&records),
            records => records,
            connected => connected,
            here => here,
            all_records => all_records,
            kinds => kinds,
            answers => answers,
            embed => embed,
            atom => atom,
            public_url_known => public_url.is_some(),
        },
    ))
}

async fn region(
    State(shared): State<Arc<Shared>>,
    axum::Extension(public_url): axum::Extension<PublicUrl>,
    Path(key): Path<String>,
) -> Response {
    let r = region_page(&shared, key, public_url.0).await;
    page(&shared, r)
}

async fn overview_page(
    shared: &Arc<Shared>,
) -> Result<(&'static str, &'static str, Value), PageError> {
    let (o, latest, matrix) = shared
        .read(|n| {
            let o = n.overview()?;
            let latest = items(n, o.latest.clone())?;
            Ok((o, latest, answer_matrix(n)?))
        })
        .await
        .map_err(query_error)?;
    let kinds: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
    Ok((
        "overview.html",
        "overview",
        context! {
            o => Value::from_serialize(&o), personal => shows_people(&latest), latest => latest,
            kinds => kinds, matrix => matrix,
        },
    ))
}

/// Who learns from whom, with each region's shown name: rows answer, columns are answered.
fn answer_matrix(n: &ReadModel) -> Result<Value, ReadError> {
    let m = n.answer_matrix()?;
    let names = n.shown_names()?;
    let regions: Vec<Value> = m
        .regions
        .iter()
        .map(|id| context! { id => id, name => names.get(id).cloned().unwrap_or_default() })
        .collect();
    Ok(context! { regions => regions, counts => m.counts, total => m.total })
}

async fn overview(State(shared): State<Arc<Shared>>) -> Response {
    let r = overview_page(&shared).await;
    page(&shared, r)
}

async fn privacy_page(
    shared: &Arc<Shared>,
) -> Result<(&'static str, &'static str, Value), PageError> {
    let controllers = shared
        .blocking(|n| Ok(n.controllers()?))
        .await
        .map_err(internal)?;
    Ok((
        "integritet.html",
        "privacy",
        context! { controllers => Value::from_serialize(&controllers) },
    ))
}

/// `/integritet`: what is stored of researchers, who answers for it, how to have it corrected
/// or removed.
async fn privacy(State(shared): State<Arc<Shared>>) -> Response {
    let r = privacy_page(&shared).await;
    page(&shared, r)
}

pub async fn style() -> Response {
    stylesheet(STYLE)
}

/// A stylesheet compiled into the binary, cached by browsers for an hour.
pub(crate) fn stylesheet(css: &'static str) -> Response {
    let mut r = css.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// A 404 page for a path that is not a page.
pub async fn not_found_page(State(shared): State<Arc<Shared>>) -> Response {
    page(&shared, Err(not_found(words::NOWHERE)))
}

/// The page's routes.
pub fn routes() -> axum::Router<Arc<Shared>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/", get(search))
        .route("/post/{author}/{record_id}", get(record))
        .route("/region/{key}", get(region))
        .route("/oversikt", get(overview))
        .route("/integritet", get(privacy))
        .route("/assets/spindel.css", get(style))
        .route("/robots.txt", get(robots))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_urls_encode_and_drop_empty_parameters() {
        let p = search_params(Some("q=lokal+%C3%B6verenskommelse&tag=&region=skane")).unwrap();
        assert_eq!(
            search_url(&p),
            "/?q=lokal+%C3%B6verenskommelse&region=skane"
        );
        assert_eq!(search_url(&Params::default()), "/");
    }
}
