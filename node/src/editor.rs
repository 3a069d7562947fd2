//! Redaktionen: the region's editor, on its own listener (`spindel run --admin HOST:PORT`,
//! loopback by default; docs/interface.md, "The editor"). The public page and API stay read-only on
//! theirs; an aggregator has no editor.
//!
//! Staff log in with the accounts of [`crate::users`]; sessions, the login guard and the
//! account changes live in [`crate::staff`] (shared with the control channel). A session is a
//! random token in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` when the request came
//! over TLS through a reverse proxy that says so with `X-Forwarded-Proto: https`). Every
//! `POST` carries a CSRF token: the session's, or before login one bound to a cookie of the
//! login page; without a valid one it is 403 and writes nothing. Guessing is slowed as
//! [`crate::login`] says (429 with `Retry-After`), never for a browser where the account has
//! logged in before (its device cookie). A one-time password opens only `/konto`, where its
//! holder chooses their own. Logins (with the client's address), failed logins (aggregated),
//! logouts and every change go to the local audit trail, which `/logg` pages through.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::{Value, context};

use spindel_protocol::entry::RecordId;
use spindel_protocol::record::Kind;

use crate::forms::{self, FormError, Input};
use crate::listener::ListenerKind;
use crate::local::{NodeError, Role};
use crate::query::Query;
use crate::shared::Shared;
pub use crate::staff::Session;
use crate::staff::{LoginOutcome, Staff, token};
use crate::users::{AuditEntry, StaffRole, UserError};

/// The value of a `Result<_, Box<Response>>`, or the page the handler answers with instead.
macro_rules! or_page {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}
pub(crate) use or_page;

/// Largest form body.
pub const FORM_BYTES_MAX: usize = 256 * 1024;
/// Imports whose progress pages are kept (the oldest is forgotten first).
pub const IMPORTS_KEPT: usize = 32;
/// Largest import form: the file ([`crate::local::IMPORT_BYTES_MAX`]) and its framing.
pub const IMPORT_FORM_BYTES_MAX: usize = crate::local::IMPORT_BYTES_MAX as usize + 64 * 1024;
/// The session cookie.
pub const SESSION_COOKIE: &str = "spindel_redaktion";
/// The login page's CSRF cookie (before there is a session).
pub const LOGIN_COOKIE: &str = "spindel_inloggning";
/// Records on the start page.
const START_RECORDS: usize = 200;
/// Audit lines a page of `/logg` shows.
pub const AUDIT_PAGE_LINES: usize = 100;
/// Logins and failed logins `/konto` shows.
const ACCOUNT_RECENT_LOGINS: usize = 10;

/// The editor's state.
#[derive(Debug)]
pub struct Editor {
    pub(crate) shared: Arc<Shared>,
    /// Imports started from the browser, by id, while their progress pages may ask.
    imports: Mutex<HashMap<String, ImportState>>,
    /// Where readers find the knowledge bank (settings `public_url`), if the operator said.
    public_url: Option<String>,
}

/// An import started from the browser.
#[derive(Debug)]
struct ImportState {
    user: String,
    progress: Arc<crate::writer::ImportProgress>,
    result: Option<Result<String, crate::editor_import::ImportFailure>>,
    started: Instant,
}

/// What an import's progress page shows.
#[derive(Debug)]
pub(crate) enum ImportView {
    Running { done: u64, total: u64 },
    Ended(Result<String, crate::editor_import::ImportFailure>),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Equal without telling how much of it was (a token compared with what a client sent).
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the client reached the editor over TLS (a reverse proxy says so).
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(s) = max_age {
        c.push_str(&format!("; Max-Age={s}"));
    }
    if over_tls(headers) {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// A form body: each field once (a repeated field is refused, like a query string).
fn form(body: &[u8]) -> Option<HashMap<String, String>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if out.insert(k, v).is_some() {
            return None;
        }
    }
    Some(out)
}

/// "3 minuter", "1 sekund": how long to wait, in Swedish, rounded up.
fn wait_sv(wait: Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if secs < 60 {
        let s = secs.max(1);
        format!("{s} {}", if s == 1 { "sekund" } else { "sekunder" })
    } else {
        let m = secs.div_ceil(60);
        format!("{m} {}", if m == 1 { "minut" } else { "minuter" })
    }
}

impl Editor {
    pub fn new(shared: Arc<Shared>) -> Arc<Editor> {
        Editor::with_public_url(shared, None)
    }

    /// An editor that links each post to its page under `public_url` (settings: where readers
    /// find the knowledge bank, without a trailing slash).
    pub fn with_public_url(shared: Arc<Shared>, public_url: Option<String>) -> Arc<Editor> {
        Arc::new(Editor {
            shared,
            imports: Mutex::new(HashMap::new()),
            public_url,
        })
    }

    fn staff(&self) -> &Staff {
        &self.shared.staff
    }

    /// The session of this request, if it is live (refreshes its idle time).
    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        self.session_at(headers, Instant::now())
    }

    /// [`Editor::session`] as of `now`.
    fn session_at(&self, headers: &HeaderMap, now: Instant) -> Option<Session> {
        self.staff()
            .session_at(cookie(headers, SESSION_COOKIE)?, now)
    }

    fn note(&self, user: &str, action: &str, detail: Option<String>) {
        let mut e = AuditEntry::new(user, action, crate::local::now_ms());
        e.detail = detail;
        self.staff().note(&e);
    }

    pub(crate) fn page(&self, status: StatusCode, template: &str, ctx: Value) -> Response {
        // The menu shows accounts and the log to admins (the role as the session holds it).
        let account = ctx
            .get_attr("user")
            .ok()
            .and_then(|u| u.as_str().map(str::to_string))
            .and_then(|u| self.staff().users().get(&u).ok().flatten());
        let full = context! {
            node_name => self.shown_name(),
            is_admin => account.as_ref().is_some_and(|a| a.role == StaffRole::Admin),
            must_change => account.as_ref().is_some_and(|a| a.must_change),
            ..ctx
        };
        match crate::web::render_template(template, full) {
            Ok(html) => page_response(status, html),
            Err(e) => {
                tracing::error!(template, error = %e, "editor page failed");
                page_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!doctype html><title>Fel</title><p>Sidan kunde inte visas.</p>".into(),
                )
            }
        }
    }

    pub(crate) fn error(
        &self,
        status: StatusCode,
        heading: &str,
        message: &str,
        s: Option<&Session>,
    ) -> Response {
        self.page(
            status,
            "editor_error.html",
            context! {
                heading => heading,
                message => message,
                user => s.map(|s| s.user.clone()),
                csrf => s.map(|s| s.csrf.clone()),
            },
        )
    }

    /// The login page, with an error `message` or a `notice` (`(message, notice)`).
    fn login_page(
        &self,
        headers: &HeaderMap,
        status: StatusCode,
        (message, notice): (Option<String>, Option<&str>),
        user_name: &str,
    ) -> Response {
        // The login form's CSRF token, bound to a cookie of this browser.
        let csrf = cookie(headers, LOGIN_COOKIE)
            .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .map_or_else(token, str::to_string);
        let mut r = self.page(
            status,
            "editor_login.html",
            context! {
                csrf => csrf.clone(), message => message, notice => notice,
                user_name => user_name,
            },
        );
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(headers, LOGIN_COOKIE, &csrf, None),
        );
        r
    }

    /// The staff's names, for the pages' "who" filters.
    fn staff_names(&self) -> Vec<String> {
        self.staff()
            .users()
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(|u| u.user)
            .collect()
    }

    /// The client address of a request (the connection's, or a trusted proxy's word).
    fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        self.shared.client_address(peer, headers)
    }
}

/// An editor page: the public pages' headers, and never cached, framed, referred or indexed.
fn page_response(status: StatusCode, html: String) -> Response {
    let mut r = crate::web::html(status, html);
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    r
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// The 403 for a POST without a valid CSRF token: nothing was written.
pub(crate) fn forbidden(editor: &Editor, s: Option<&Session>) -> Response {
    editor.error(
        StatusCode::FORBIDDEN,
        "Formuläret gick inte att skicka",
        "Formuläret saknade en giltig säkerhetskod (det kan ha legat öppet för länge). Inget har sparats. Ladda om sidan och försök igen.",
        s,
    )
}

async fn start(
    State(editor): State<Arc<Editor>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    // Back from a removal: say it happened.
    let said = |pair: &str| query.as_deref().unwrap_or("").split('&').any(|p| p == pair);
    let deleted = said("borttagen=1");
    // The removal was signed while no aggregator had confirmed this node.
    let offline_written = deleted && said("offline=1");
    let me = editor.shared.node.node_id();
    let q = Query {
        author: Some(me),
        limit: Some(START_RECORDS),
        ..Query::default()
    };
    // The newest posts, how many the region has, and whether its own log is proven forked
    // (then nothing can be published: said here, before anyone fills in a form).
    let read = editor
        .shared
        .blocking(move |n| {
            let page = n.query(&q)?;
            let total = n
                .authors()?
                .iter()
                .find(|a| a.id == me)
                .map_or(0, |a| a.records);
            let forked = n
                .forks()?
                .into_iter()
                .find(|(a, _)| *a == me)
                .map(|(_, proof)| proof.seq);
            Ok((page, total, forked))
        })
        .await;
    let (records, total, forked) = match read {
        Ok((page, total, forked)) => (page.records, total, forked),
        Err(e) => {
            tracing::error!(error = %e, "the editor's start page could not read the records");
            return editor.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Posterna kunde inte läsas",
                "Försök igen om en stund; står det kvar, be den som driver noden läsa loggen.",
                Some(&s),
            );
        }
    };
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            context! {
                title => title_of(&r.data),
                kind => r.kind.clone(),
                updated_at => r.updated_at.clone(),
                record_id => r.record_id.clone(),
            }
        })
        .collect();
    let other_copy = editor.shared.gate.other_copy();
    let not_sent = other_copy.as_ref().and_then(|_| editor.shared.not_sent());
    let held = editor.shared.gate.other_copy_held();
    editor.page(
        StatusCode::OK,
        "editor_start.html",
        context! {
            section => "start",
            user => s.user.clone(),
            role_label => s.role.label_sv(),
            csrf => s.csrf.clone(),
            total => total, forked => forked,
            records => records,
            other_copy => other_copy.clone(),
            other_copy_address => other_copy.as_deref().and_then(crate::gate::other_copy_address),
            not_sent => not_sent.as_ref().map(|n| context! { first => n.first, last => n.last, count => n.count }),
            collides => not_sent.as_ref().zip(held).is_some_and(|(n, h)| h >= n.first),
            held => held,
            deleted => deleted, offline_written => offline_written,
        },
    )
}

async fn login_form(
    State(editor): State<Arc<Editor>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if editor.session(&headers).is_some() {
        return see_other("/");
    }
    // Sent here with a form whose session had ended: say that its text is kept.
    let notice = (query.as_deref() == Some("sparat=1")).then_some(
        "Du hann bli utloggad. Det du skrev är sparat och kommer tillbaka ifyllt när du har loggat in.",
    );
    editor.login_page(&headers, StatusCode::OK, (None, notice), "")
}

async fn login(
    State(editor): State<Arc<Editor>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    // A second tab's login form, sent after the first tab logged in: already in.
    if editor.session(&headers).is_some() {
        return see_other("/");
    }
    let Some(f) = form(&body) else {
        return forbidden(&editor, None);
    };
    let expected = cookie(&headers, LOGIN_COOKIE);
    let sent = f.get("csrf").map(String::as_str);
    if !matches!((expected, sent), (Some(e), Some(s)) if same(e, s)) {
        return forbidden(&editor, None);
    }
    let user = f
        .get("user")
        .map(|u| u.trim().to_string())
        .unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    let address = editor.client(peer, &headers);
    let device = cookie(&headers, crate::login::DEVICE_COOKIE);
    let metrics = &editor.shared.metrics;
    match editor.staff().login(&user, password, address, device).await {
        LoginOutcome::In {
            session,
            account,
            device_cookie,
        } => {
            metrics.logins_ok.fetch_add(1, Relaxed);
            let to = if account.must_change {
                "/konto"
            } else if editor.staff().has_draft(&account.user) {
                "/utkast"
            } else {
                "/"
            };
            let mut r = see_other(to);
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(&headers, SESSION_COOKIE, &session, None),
            );
            h.append(
                header::SET_COOKIE,
                set_cookie(
                    &headers,
                    crate::login::DEVICE_COOKIE,
                    &device_cookie,
                    Some(crate::login::DEVICE_COOKIE_MAX_AGE.as_secs()),
                ),
            );
            h.append(
                header::SET_COOKIE,
                set_cookie(&headers, LOGIN_COOKIE, "", Some(0)),
            );
            r
        }
        LoginOutcome::Wrong => {
            metrics.logins_wrong.fetch_add(1, Relaxed);
            editor.login_page(
                &headers,
                StatusCode::UNAUTHORIZED,
                (Some("Fel användarnamn eller lösenord.".into()), None),
                &user,
            )
        }
        LoginOutcome::Wait(wait) => {
            metrics.logins_wait.fetch_add(1, Relaxed);
            let mut r = editor.login_page(
                &headers,
                StatusCode::TOO_MANY_REQUESTS,
                (
                    Some(format!(
                        "För många misslyckade inloggningar till kontot eller från din adress. Vänta {} och försök igen. En webbläsare där du har loggat in förut släpps alltid fram; en administratör kan också ge dig ett nytt lösenord.",
                        wait_sv(wait)
                    )),
                    None,
                ),
                &user,
            );
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        LoginOutcome::Failed(e) => {
            tracing::error!(error = %e, "the editor cannot check a login");
            editor.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Inloggningen fungerar inte just nu",
                "Kontona kunde inte läsas. Be den som driver noden läsa loggen.",
                None,
            )
        }
    }
}

async fn logout(State(editor): State<Arc<Editor>>, headers: HeaderMap, body: Bytes) -> Response {
    let s = editor.session(&headers);
    let valid = match (&s, form(&body)) {
        (Some(s), Some(f)) => f.get("csrf").is_some_and(|c| same(c, &s.csrf)),
        _ => false,
    };
    let Some(s) = s.filter(|_| valid) else {
        return forbidden(&editor, None);
    };
    if let Some(t) = cookie(&headers, SESSION_COOKIE) {
        editor.staff().end_session(t);
    }
    editor.note(&s.user, "logout", None);
    let mut r = see_other("/logga-in");
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", Some(0)),
    );
    r
}

/// The session of a request, or the redirect to the login page; a session opened with a
/// one-time password is sent to `/konto`, the only page it opens.
pub(crate) fn require(editor: &Editor, headers: &HeaderMap) -> Result<Session, Box<Response>> {
    let s = require_any(editor, headers)?;
    if s.must_change {
        return Err(Box::new(see_other("/konto")));
    }
    Ok(s)
}

/// The session of a request, one-time password or not (`/konto` and logout).
fn require_any(editor: &Editor, headers: &HeaderMap) -> Result<Session, Box<Response>> {
    editor
        .session(headers)
        .ok_or_else(|| Box::new(see_other("/logga-in")))
}

/// Whether a form carries the session's CSRF token.
fn csrf_ok(s: &Session, f: &HashMap<String, String>) -> bool {
    f.get("csrf").is_some_and(|c| csrf_matches(s, c))
}

/// Whether `sent` is the session's CSRF token.
pub(crate) fn csrf_matches(s: &Session, sent: &str) -> bool {
    same(sent, &s.csrf)
}

/// A kind named in a path, or the 404 page.
fn kind_of(editor: &Editor, s: &Session, kind: &str) -> Result<Kind, Box<Response>> {
    kind.parse::<Kind>().map_err(|_| {
        Box::new(editor.error(
            StatusCode::NOT_FOUND,
            "Sidan finns inte",
            "Det finns ingen sådan typ av post.",
            Some(s),
        ))
    })
}

/// The rows a record shows (its form's fields that have a value, labelled in Swedish).
/// Why the node refused a write, in Swedish.
fn write_failed_sv(e: &NodeError) -> String {
    match e {
        NodeError::CatchingUp { .. } | NodeError::RestoredNotCaughtUp => {
            "Noden kommer just nu ikapp sin egen logg hos aggregatorn; inget sparades. Försök igen om en stund.".to_string()
        }
        NodeError::Deleted(_) => "Posten är borttagen och kan inte publiceras igen.".into(),
        NodeError::Stale { current: None, .. } => "Posten togs bort medan formuläret var öppet, så ändringen publicerades inte. Vill du ha kvar texten: kopiera den till en ny post.".into(),
        NodeError::OtherCopy(_) => "En annan kopia av den här noden (samma nyckel) är ansluten till aggregatorn; den här noden publicerar ingenting så länge. Inget sparades. Be den som driver noden stoppa kopian som inte ska köras.".into(),
        NodeError::OwnLogForked(_) => "Regionens logg har en gaffel (två olika poster med samma nummer); inget kan publiceras förrän den som driver noden har åtgärdat den. Inget sparades.".into(),
        other => {
            tracing::error!(error = %other, "a write from the editor failed");
            "Posten kunde inte sparas på grund av ett fel i noden. Inget sparades; be den som driver noden läsa dess logg.".into()
        }
    }
}

/// A line above a form: something to know, or why the node saved nothing (the form keeps
/// what the person wrote either way).
#[derive(Debug, Clone, Copy)]
enum Banner<'a> {
    Note(&'a str),
    Failed(&'a str),
}

/// The fields an edit changed, by their form names in the form's order (names only).
fn changed_fields(
    kind: Kind,
    before: &serde_json::Value,
    after: &serde_json::Value,
) -> Vec<String> {
    let (old, new) = (
        forms::form_from_record(kind, before),
        forms::form_from_record(kind, after),
    );
    forms::fields(kind)
        .iter()
        .filter(|f| old.get(f.name) != new.get(f.name))
        .map(|f| f.name.to_string())
        .collect()
}

/// The Swedish labels of `names` (a field's form label; an unknown name as it is).
fn field_labels(kind: Option<&str>, names: &[String]) -> Vec<String> {
    let fields = kind
        .and_then(|k| k.parse::<Kind>().ok())
        .map(forms::fields)
        .unwrap_or_default();
    names
        .iter()
        .map(|n| {
            fields
                .iter()
                .find(|f| f.name == n)
                .map_or_else(|| n.clone(), |f| f.label.to_string())
        })
        .collect()
}

fn title_of(data: &serde_json::Value) -> String {
    // A profile's display name before its node name; a researcher's name.
    ["title", "display_name", "name"]
        .iter()
        .find_map(|k| data.get(*k).and_then(|v| v.as_str()))
        .unwrap_or("")
        .to_string()
}

impl Editor {
    /// A kind's form, filled with `values`, with each of `errors` beside its field and all of
    /// them listed above the form, in the form's order, each a link to its field.
    fn form_page(
        &self,
        s: &Session,
        at: &FormAt,
        values: &HashMap<String, String>,
        errors: Vec<FormError>,
        banner: Option<Banner<'_>>,
        conflict: Option<Value>,
    ) -> Response {
        let (kind, action, heading) = (at.kind, at.action.as_str(), at.heading.clone());
        let error_of = |name: &str| {
            errors
                .iter()
                .find(|e| e.field.as_deref() == Some(name))
                .map(|e| e.message.clone())
        };
        let fields: Vec<Value> = forms::fields(kind)
            .iter()
            .map(|f| {
                let (input, html_type) = match f.input {
                    Input::Text => ("text", "text"),
                    Input::Area => ("area", "text"),
                    Input::Lines => ("lines", "text"),
                    Input::Url => ("url", "url"),
                    Input::Email => ("email", "email"),
                    Input::Tel => ("tel", "tel"),
                    Input::Date => ("date", "date"),
                    Input::Number => ("number", "text"),
                    Input::Checkbox => ("checkbox", "checkbox"),
                };
                context! {
                    name => f.name, label => f.label, help => f.help, required => f.required,
                    input => input, html_type => html_type,
                    value => values.get(f.name).cloned().unwrap_or_default(),
                    error => error_of(f.name),
                }
            })
            .collect();
        let summary: Vec<Value> = errors
            .iter()
            .map(|e| {
                let label = e
                    .field
                    .as_deref()
                    .and_then(|name| forms::fields(kind).iter().find(|f| f.name == name))
                    .map(|f| f.label);
                context! { field => e.field.clone(), label => label, message => e.message.clone() }
            })
            .collect();
        let status = if matches!(banner, Some(Banner::Failed(_))) {
            StatusCode::CONFLICT
        } else if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        let (notice, failed) = match banner {
            Some(Banner::Note(n)) => (Some(n), None),
            Some(Banner::Failed(f)) => (None, Some(f)),
            None => (None, None),
        };
        self.page(
            status,
            "editor_form.html",
            context! {
                user => s.user.clone(), csrf => s.csrf.clone(), heading => heading,
                action => action, fields => fields, errors => summary,
                version => values.get("version").cloned(), conflict => conflict,
                notice => notice, failed => failed,
            },
        )
    }

    /// The record of this region with id `rid`, as every interface shows it.
    async fn own_record(&self, rid: RecordId) -> Option<crate::query::RecordView> {
        let me = self.shared.node.node_id();
        self.shared
            .blocking(move |n| Ok(n.record(&me, &rid)?))
            .await
            .ok()
            .flatten()
    }

    /// Registers an import for its progress page; returns its id. The oldest are forgotten
    /// beyond [`IMPORTS_KEPT`].
    pub(crate) fn start_import(
        &self,
        s: &Session,
        progress: Arc<crate::writer::ImportProgress>,
    ) -> String {
        let mut imports = lock(&self.imports);
        while imports.len() >= IMPORTS_KEPT {
            let oldest = imports
                .iter()
                .min_by_key(|(_, st)| st.started)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => imports.remove(&k),
                None => break,
            };
        }
        let id = token()[..32].to_string();
        imports.insert(
            id.clone(),
            ImportState {
                user: s.user.clone(),
                progress,
                result: None,
                started: Instant::now(),
            },
        );
        id
    }

    pub(crate) fn finish_import(
        &self,
        id: &str,
        result: Result<String, crate::editor_import::ImportFailure>,
    ) {
        if let Some(st) = lock(&self.imports).get_mut(id) {
            st.result = Some(result);
        }
    }

    /// How an import stands, for its starter or an admin.
    pub(crate) fn import_state(&self, id: &str, s: &Session) -> Option<ImportView> {
        let imports = lock(&self.imports);
        let st = imports.get(id)?;
        if st.user != s.user && s.role != StaffRole::Admin {
            return None;
        }
        Some(match &st.result {
            Some(r) => ImportView::Ended(r.clone()),
            None => {
                let (done, total) = st.progress.get();
                ImportView::Running { done, total }
            }
        })
    }

    pub(crate) fn note_import(&self, s: &Session, kind: Kind, done: &crate::local::Imported) {
        let mut e = AuditEntry::new(&s.user, "import", crate::local::now_ms());
        e.kind = Some(kind.as_str().to_string());
        e.seq = Some(done.last_seq);
        e.detail = Some(format!(
            "{} poster, regionens logg {}-{}",
            done.imported, done.first_seq, done.last_seq
        ));
        self.staff().note(&e);
    }

    fn note_write(
        &self,
        s: &Session,
        action: &str,
        kind: Kind,
        record_id: &str,
        seq: u64,
        fields: Vec<String>,
    ) {
        let mut e = AuditEntry::new(&s.user, action, crate::local::now_ms());
        e.kind = Some(kind.as_str().to_string());
        e.record_id = Some(record_id.to_string());
        e.seq = Some(seq);
        e.fields = fields;
        self.staff().note(&e);
    }

    /// A write the node refused, said in Swedish.
    fn write_failed(&self, s: &Session, e: &NodeError) -> Response {
        self.error(
            StatusCode::CONFLICT,
            "Inget sparades",
            &write_failed_sv(e),
            Some(s),
        )
    }

    /// A submitted form: back to the form, a preview, or the publish. An edit publishes only
    /// if the record is still at the version its form was opened on (`version`); otherwise
    /// nothing is published and the person sees both versions to merge.
    async fn submit(
        &self,
        s: &Session,
        at: FormAt,
        record_id: Option<RecordId>,
        f: HashMap<String, String>,
    ) -> Response {
        let kind = at.kind;
        let wanted = f.get("action").map(String::as_str);
        if wanted == Some("edit") {
            // Back from the preview to the form, as it was filled in.
            return self.form_page(s, &at, &f, Vec::new(), None, None);
        }
        match (wanted, forms::record_from_form_all(kind, &f)) {
            (_, Err(errors)) => self.form_page(s, &at, &f, errors, None, None),
            (Some("publish"), Ok(record)) => {
                let json = record.to_json();
                let after = record.to_value();
                let before = match record_id {
                    Some(rid) => self.own_record(rid).await,
                    None => None,
                };
                // A form without its version (opened before versions were carried) is stale.
                let expected = record_id.map(|_| {
                    f.get("version")
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                });
                let published = self
                    .shared
                    .writer
                    .publish_expecting(kind, json, record_id, expected)
                    .await;
                match published {
                    Ok(p) => {
                        let verb = if record_id.is_some() {
                            "edit"
                        } else {
                            "publish"
                        };
                        // The version the edit replaced is the one its form was opened on
                        // (anything else was refused as stale).
                        let fields = before
                            .map(|b| changed_fields(kind, &b.data, &after))
                            .unwrap_or_default();
                        self.note_write(s, verb, kind, &p.record_id, p.seq, fields);
                        tracing::info!(user = %s.user, kind = %kind.as_str(), record = %p.record_id, seq = p.seq, "published from the editor");
                        let to = format!(
                            "/post/{}?publicerad={}{}",
                            p.record_id,
                            p.seq,
                            if p.offline { "&offline=1" } else { "" }
                        );
                        (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
                    }
                    Err(NodeError::Stale {
                        record_id: rid,
                        current: Some(_),
                        ..
                    }) => self.merge_page(s, &at, rid, f).await,
                    // Nothing was saved: the form again, with what the person wrote.
                    Err(e) => {
                        let why = write_failed_sv(&e);
                        self.form_page(s, &at, &f, Vec::new(), Some(Banner::Failed(&why)), None)
                    }
                }
            }
            (_, Ok(record)) => {
                let data = record.to_value();
                let mut hidden: Vec<Value> = forms::fields(kind)
                    .iter()
                    .filter_map(|fd| {
                        f.get(fd.name)
                            .map(|v| context! { name => fd.name, value => v.clone() })
                    })
                    .collect();
                if let Some(v) = f.get("version") {
                    hidden.push(context! { name => "version", value => v.clone() });
                }
                self.page(
                    StatusCode::OK,
                    "editor_preview.html",
                    context! {
                        user => s.user.clone(), csrf => s.csrf.clone(), action => at.action,
                        kind => kind.as_str(), title => title_of(&data),
                        r => self.public_item(kind, &data), public_url => self.public_url.clone(),
                        hidden => hidden,
                    },
                )
            }
        }
    }

    /// The record changed since the form was opened: nothing was published. The form again,
    /// with what the person wrote, now at the current version, and beside it every field where
    /// the published version differs (and who changed it, when the audit trail says).
    async fn merge_page(
        &self,
        s: &Session,
        at: &FormAt,
        rid: RecordId,
        mut mine: HashMap<String, String>,
    ) -> Response {
        let Some(current) = self.own_record(rid).await else {
            return self.write_failed(s, &NodeError::Deleted(rid));
        };
        let theirs = forms::form_from_record(at.kind, &current.data);
        let rows: Vec<Value> = forms::fields(at.kind)
            .iter()
            .filter_map(|fd| {
                let a = mine
                    .get(fd.name)
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default();
                let b = theirs.get(fd.name).cloned().unwrap_or_default();
                let (a_on, b_on) = (fd.input == Input::Checkbox, fd.input == Input::Checkbox);
                let differs = if a_on && b_on {
                    a.is_empty() != b.is_empty()
                } else {
                    a != b
                };
                differs.then(
                    || context! { label => fd.label, name => fd.name, mine => a, theirs => b },
                )
            })
            .collect();
        let (dir, id) = (self.shared.node.dir().to_path_buf(), rid.to_hex());
        let last = tokio::task::spawn_blocking(move || {
            crate::users::read_audit_page(&dir, None, 1, |e| {
                e.record_id.as_deref() == Some(id.as_str())
                    && matches!(e.action.as_str(), "edit" | "publish" | "import")
            })
        })
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|p| p.entries.into_iter().next());
        // Named only when the trail's entry is the version now published (a change from the
        // command line is not in the editor's trail).
        let last = last.filter(|e| e.seq == Some(current.seq));
        mine.insert("version".into(), current.seq.to_string());
        let conflict = context! {
            rows => rows,
            by => last.as_ref().map(|e| e.user.clone()),
            when => last.as_ref().map(|e| crate::web::datetime_sv(e.time_ms)),
        };
        let mut r = self.form_page(s, at, &mine, Vec::new(), None, Some(conflict));
        *r.status_mut() = StatusCode::CONFLICT;
        r
    }
}

/// Where a form is: its kind, where it posts, its heading.
#[derive(Debug, Clone)]
struct FormAt {
    kind: Kind,
    action: String,
    heading: String,
}

fn new_heading(kind: Kind) -> String {
    format!(
        "Ny {}",
        crate::web::kind_label(kind.as_str(), false).to_lowercase()
    )
}

async fn new_form(
    State(editor): State<Arc<Editor>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let kind = or_page!(kind_of(&editor, &s, &kind));
    if kind == Kind::Profile {
        // A region has one profile: it is edited, never made anew.
        let me = editor.shared.node.node_id();
        let profile = editor
            .shared
            .blocking(move |n| Ok(n.author(&me)?.and_then(|m| m.profile)))
            .await
            .ok()
            .flatten();
        if let Some(rid) = profile {
            let to = format!("/post/{rid}/andra");
            return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
        }
    }
    let at = FormAt {
        kind,
        action: format!("/ny/{}", kind.as_str()),
        heading: new_heading(kind),
    };
    editor.form_page(&s, &at, &HashMap::new(), Vec::new(), None, None)
}

async fn new_post(
    State(editor): State<Arc<Editor>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/ny/{kind}");
    let (s, f) = or_page!(posted_keeping(&editor, &headers, &body, &path));
    let kind = or_page!(kind_of(&editor, &s, &kind));
    let at = FormAt {
        kind,
        action: format!("/ny/{}", kind.as_str()),
        heading: new_heading(kind),
    };
    editor.submit(&s, at, None, f).await
}

/// A POST from a logged-in staff member carrying the session's token: the session and the
/// form, or the login redirect or the 403.
fn posted(
    editor: &Editor,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Session, HashMap<String, String>), Box<Response>> {
    let s = require(editor, headers)?;
    match form(body).filter(|f| csrf_ok(&s, f)) {
        Some(f) => Ok((s, f)),
        None => Err(Box::new(forbidden(editor, Some(&s)))),
    }
}

/// [`posted`] for a form a person typed into: when its session has ended (idle, age), what
/// they wrote is kept for their account and comes back filled in after they log in again.
fn posted_keeping(
    editor: &Editor,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
) -> Result<(Session, HashMap<String, String>), Box<Response>> {
    if editor.session(headers).is_none()
        && let Some(user) =
            cookie(headers, SESSION_COOKIE).and_then(|t| editor.staff().ended_session_user(t))
        && let Some(fields) = form(body)
    {
        editor.staff().keep_draft(&user, path, fields);
        tracing::info!(user = %user, path, "kept a form sent after its session ended");
        return Err(Box::new(see_other("/logga-in?sparat=1")));
    }
    posted(editor, headers, body)
}

/// `/utkast`: the form a person sent after their session ended, filled in as they left it
/// (an edit keeps the version it was opened on, so a colleague's change in between is still
/// shown to merge, never overwritten).
async fn draft_page(State(editor): State<Arc<Editor>>, headers: HeaderMap) -> Response {
    let s = or_page!(require(&editor, &headers));
    let Some(draft) = editor.staff().take_draft(&s.user) else {
        return see_other("/");
    };
    let at = if let Some(kind) = draft.path.strip_prefix("/ny/") {
        let kind = or_page!(kind_of(&editor, &s, kind));
        FormAt {
            kind,
            action: format!("/ny/{}", kind.as_str()),
            heading: new_heading(kind),
        }
    } else {
        let rid = draft
            .path
            .strip_prefix("/post/")
            .and_then(|p| p.strip_suffix("/andra"))
            .unwrap_or("");
        let (_, view) = or_page!(record_of(&editor, &s, rid).await);
        edit_at(&view)
    };
    let notice = "Du blev utloggad innan formuläret skickades. Det du skrev finns kvar här; inget är publicerat ännu.";
    editor.form_page(
        &s,
        &at,
        &draft.fields,
        Vec::new(),
        Some(Banner::Note(notice)),
        None,
    )
}

/// The record id in a path, and the record, or the 404 page.
async fn record_of(
    editor: &Editor,
    s: &Session,
    rid: &str,
) -> Result<(RecordId, crate::query::RecordView), Box<Response>> {
    let missing = || {
        Box::new(editor.error(
            StatusCode::NOT_FOUND,
            "Posten finns inte",
            "Regionen har ingen sådan post (den kan vara borttagen).",
            Some(s),
        ))
    };
    let rid: RecordId = rid.parse().map_err(|_| missing())?;
    let view = editor.own_record(rid).await.ok_or_else(missing)?;
    Ok((rid, view))
}

async fn record_page(
    State(editor): State<Arc<Editor>>,
    Path(rid): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let (rid, view) = or_page!(record_of(&editor, &s, &rid).await);
    // After a publish: the entry it made (`publicerad=SEQ`), said as the post's own version,
    // and whether it was signed while no aggregator had confirmed this node (`offline=1`,
    // see `Published::offline`).
    let (mut published_seq, mut offline) = (None, false);
    for pair in query.as_deref().unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("publicerad", n)) => published_seq = n.parse::<u64>().ok(),
            Some(("offline", "1")) => offline = true,
            _ => {}
        }
    }
    let published = published_seq.map(|seq| seq == view.seq);
    let offline = published.is_some() && offline;
    let history = editor.history(view.kind, rid).await;
    let public = editor
        .public_url
        .as_ref()
        .map(|base| format!("{base}/post/{}/{}", view.author, view.record_id));
    editor.page(
        StatusCode::OK,
        "editor_record.html",
        context! {
            user => s.user.clone(), csrf => s.csrf.clone(), published => published,
            version => view.version, kind => view.kind.as_str(), title => title_of(&view.data),
            r => editor.public_item(view.kind, &view.data), updated_at => view.updated_at.clone(),
            offline => offline,
            author => view.author.clone(), record_id => view.record_id.clone(),
            public_url => editor.public_url.clone(), public => public, history => history,
        },
    )
}

impl Editor {
    /// The region as its staff and readers know it: its profile's display name (its node name
    /// until it has a profile).
    fn shown_name(&self) -> String {
        let me = self.shared.node.node_id();
        self.shared
            .node
            .author(&me)
            .ok()
            .flatten()
            .and_then(|m| m.display_name)
            .unwrap_or_else(|| self.shared.node.config().name.clone())
    }

    /// An own record as the public page's template (`record_main`) takes it.
    fn public_item(&self, kind: Kind, data: &serde_json::Value) -> Value {
        context! {
            kind => kind.as_str(), region => self.shared.node.config().name.clone(),
            region_display => self.shown_name(), author => self.shared.node.node_id().to_hex(),
            title => title_of(data), data => Value::from_serialize(data),
        }
    }

    /// A post's history, newest first: each version from the region's log (number, time,
    /// published, changed or removed), with who made it and the fields it changed when the
    /// editor's audit trail holds that version (not for the command line or an import).
    async fn history(&self, kind: Kind, rid: RecordId) -> Vec<Value> {
        let me = self.shared.node.node_id();
        let dir = self.shared.node.dir().to_path_buf();
        let hex = rid.to_hex();
        let read = self
            .shared
            .blocking(move |n| {
                let versions = n.versions(&me, &rid)?;
                let trail = crate::users::read_audit_page(&dir, None, usize::MAX, |e| {
                    e.record_id.as_deref() == Some(hex.as_str()) && e.seq.is_some()
                })
                .map(|p| p.entries)
                .unwrap_or_default();
                Ok((versions, trail))
            })
            .await;
        let (versions, trail) = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "a post's history could not be read");
                return Vec::new();
            }
        };
        let kind = Some(kind.as_str());
        versions
            .iter()
            .rev()
            .map(|v| {
                let by = trail.iter().find(|e| e.seq == Some(v.seq));
                let what = if v.removed {
                    "Borttagen"
                } else if v.number == 1 {
                    "Publicerad"
                } else {
                    "Ändrad"
                };
                context! {
                    number => v.number, time => crate::web::datetime_sv(v.timestamp_ms),
                    what => what, who => by.map(|e| e.user.clone()),
                    fields => by.map(|e| field_labels(kind, &e.fields)).unwrap_or_default(),
                }
            })
            .collect()
    }
}

async fn edit_form(
    State(editor): State<Arc<Editor>>,
    Path(rid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let (_, view) = or_page!(record_of(&editor, &s, &rid).await);
    let mut values = forms::form_from_record(view.kind, &view.data);
    // The version this form was opened on: a publish from it is refused once another is out.
    values.insert("version".into(), view.seq.to_string());
    editor.form_page(&s, &edit_at(&view), &values, Vec::new(), None, None)
}

/// The edit form of a record.
fn edit_at(view: &crate::query::RecordView) -> FormAt {
    FormAt {
        kind: view.kind,
        action: format!("/post/{}/andra", view.record_id),
        heading: format!("Ändra ”{}”", title_of(&view.data)),
    }
}

async fn edit_post(
    State(editor): State<Arc<Editor>>,
    Path(rid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/post/{rid}/andra");
    let (s, f) = or_page!(posted_keeping(&editor, &headers, &body, &path));
    let (rid, view) = or_page!(record_of(&editor, &s, &rid).await);
    editor.submit(&s, edit_at(&view), Some(rid), f).await
}

async fn delete_form(
    State(editor): State<Arc<Editor>>,
    Path(rid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let (_, view) = or_page!(record_of(&editor, &s, &rid).await);
    editor.page(
        StatusCode::OK,
        "editor_delete.html",
        context! {
            user => s.user.clone(), csrf => s.csrf.clone(), kind => view.kind.as_str(),
            title => title_of(&view.data), record_id => view.record_id.clone(),
        },
    )
}

async fn delete_post(
    State(editor): State<Arc<Editor>>,
    Path(rid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, f) = or_page!(posted(&editor, &headers, &body));
    let (rid, view) = or_page!(record_of(&editor, &s, &rid).await);
    match editor.shared.writer.delete(rid).await {
        Ok(d) => {
            editor.note_write(&s, "delete", view.kind, &d.record_id, d.seq, Vec::new());
            if view.kind == Kind::Researcher && f.contains_key("pa_begaran") {
                editor.note_write(
                    &s,
                    "erase_on_request",
                    view.kind,
                    &d.record_id,
                    d.seq,
                    Vec::new(),
                );
            }
            tracing::info!(user = %s.user, record = %d.record_id, seq = d.seq, "deleted from the editor");
            if d.offline {
                see_other("/?borttagen=1&offline=1")
            } else {
                see_other("/?borttagen=1")
            }
        }
        Err(e) => editor.write_failed(&s, &e),
    }
}

/// The session of an admin, or the page that says only admins may.
fn require_admin(editor: &Editor, headers: &HeaderMap) -> Result<Session, Box<Response>> {
    let s = require(editor, headers)?;
    if s.role != StaffRole::Admin {
        return Err(Box::new(editor.error(
            StatusCode::FORBIDDEN,
            "Bara för administratörer",
            "Konton och logg hanteras av regionens administratörer.",
            Some(&s),
        )));
    }
    Ok(s)
}

/// [`posted`] by an admin.
fn admin_posted(
    editor: &Editor,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Session, HashMap<String, String>), Box<Response>> {
    let s = require_admin(editor, headers)?;
    match form(body).filter(|f| csrf_ok(&s, f)) {
        Some(f) => Ok((s, f)),
        None => Err(Box::new(forbidden(editor, Some(&s)))),
    }
}

impl Editor {
    fn users_page(
        &self,
        s: &Session,
        status: StatusCode,
        message: Option<String>,
        password: Option<(String, String)>,
        error: Option<String>,
    ) -> Response {
        let users: Vec<Value> = match self.staff().users().list() {
            Ok(list) => list
                .iter()
                .map(|u| {
                    context! {
                        user => u.user.clone(), role_label => u.role.label_sv(),
                        must_change => u.must_change,
                    }
                })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the accounts");
                Vec::new()
            }
        };
        let (password_for, password) = password.unzip();
        self.page(
            status,
            "editor_users.html",
            context! {
                section => "users", user => s.user.clone(), csrf => s.csrf.clone(),
                users => users, message => message, error => error,
                password => password, password_for => password_for,
            },
        )
    }

    /// The accounts page with an error above the form.
    fn users_error(&self, s: &Session, status: StatusCode, error: impl Into<String>) -> Response {
        self.users_page(s, status, None, None, Some(error.into()))
    }

    /// Runs an account change of the staff (argon2, off the async threads).
    async fn account_change<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Staff) -> Result<T, UserError> + Send + 'static,
    ) -> Result<T, (StatusCode, String)> {
        let staff = self.shared.staff.clone();
        match tokio::task::spawn_blocking(move || change(&staff)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err((StatusCode::BAD_REQUEST, user_error_sv(&e))),
            Err(_) => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "Kontot kunde inte ändras; försök igen.".into(),
            )),
        }
    }
}

/// An account error in Swedish.
fn user_error_sv(e: &UserError) -> String {
    match e {
        UserError::BadName(_) => "Användarnamnet: 1–32 tecken, små bokstäver a–z, siffror, punkt, understreck och bindestreck, och det börjar med en bokstav.".into(),
        UserError::BadRole(_) => "Välj rollen redaktör eller administratör.".into(),
        UserError::Exists(n) => format!("Det finns redan ett konto {n}."),
        UserError::Unknown(n) => format!("Det finns inget konto {n}."),
        UserError::TooMany => "Noden har så många konton den kan ha; ta bort ett först.".into(),
        UserError::LastAdmin => "Den sista administratören kan inte tas bort; lägg till en till först.".into(),
        UserError::ShortPassword => format!("Lösenordet måste ha minst {} tecken.", crate::users::PASSWORD_CHARS_MIN),
        UserError::LongPassword => format!("Lösenordet får vara högst {} byte.", crate::users::PASSWORD_BYTES_MAX),
        UserError::WrongCurrentPassword => "Det nuvarande lösenordet stämmer inte.".into(),
        UserError::TooSoon(wait) => format!("För många fel lösenord. Vänta {} och försök igen.", wait_sv(*wait)),
        UserError::SamePassword => "Det nya lösenordet måste skilja sig från det nuvarande.".into(),
        other => format!("Kontot kunde inte ändras: {other}"),
    }
}

async fn users_list(State(editor): State<Arc<Editor>>, headers: HeaderMap) -> Response {
    match require_admin(&editor, &headers) {
        Ok(s) => editor.users_page(&s, StatusCode::OK, None, None, None),
        Err(r) => *r,
    }
}

async fn users_add(State(editor): State<Arc<Editor>>, headers: HeaderMap, body: Bytes) -> Response {
    let (s, f) = or_page!(admin_posted(&editor, &headers, &body));
    let name = f
        .get("name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    let role = match f.get("role").map(|r| r.parse::<StaffRole>()) {
        Some(Ok(r)) => r,
        _ => {
            let e = user_error_sv(&UserError::BadRole(String::new()));
            return editor.users_error(&s, StatusCode::BAD_REQUEST, e);
        }
    };
    let (n, by) = (name.clone(), s.user.clone());
    match editor
        .account_change(move |staff| staff.add(&n, role, None, &by))
        .await
    {
        Ok((_, password)) => {
            let done = format!("Kontot {name} är skapat.");
            let shown = password.map(|p| (name, p));
            editor.users_page(&s, StatusCode::OK, Some(done), shown, None)
        }
        Err((status, e)) => editor.users_error(&s, status, e),
    }
}

async fn users_remove(
    State(editor): State<Arc<Editor>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, _) = or_page!(admin_posted(&editor, &headers, &body));
    if name == s.user {
        let e = "Du kan inte ta bort ditt eget konto här; be en annan administratör.".to_string();
        return editor.users_error(&s, StatusCode::BAD_REQUEST, e);
    }
    let (n, by) = (name.clone(), s.user.clone());
    match editor
        .account_change(move |staff| staff.remove(&n, &by))
        .await
    {
        Ok(()) => editor.users_page(
            &s,
            StatusCode::OK,
            Some(format!("Kontot {name} är borttaget.")),
            None,
            None,
        ),
        Err((status, e)) => editor.users_error(&s, status, e),
    }
}

/// The question before a new password: what it does, and a button that does it.
async fn users_reset_confirm(
    State(editor): State<Arc<Editor>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require_admin(&editor, &headers));
    if !matches!(editor.staff().users().get(&name), Ok(Some(_))) {
        let e = user_error_sv(&UserError::Unknown(name));
        return editor.users_error(&s, StatusCode::NOT_FOUND, e);
    }
    editor.page(
        StatusCode::OK,
        "editor_reset.html",
        context! { section => "users", user => s.user.clone(), csrf => s.csrf.clone(), name => name },
    )
}

async fn users_reset(
    State(editor): State<Arc<Editor>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, _) = or_page!(admin_posted(&editor, &headers, &body));
    let (n, by) = (name.clone(), s.user.clone());
    match editor
        .account_change(move |staff| staff.reset_password(&n, None, &by))
        .await
    {
        // A locked account gets in again with its new password; its sessions have ended.
        Ok((_, password)) => {
            let shown = password.map(|p| (name, p));
            editor.users_page(&s, StatusCode::OK, None, shown, None)
        }
        Err((status, e)) => editor.users_error(&s, status, e),
    }
}

/// The 400 page of an editor page whose address cannot be read.
fn bad_address(editor: &Editor, s: &Session, message: &str) -> Response {
    editor.error(
        StatusCode::BAD_REQUEST,
        "Sidan finns inte så",
        message,
        Some(s),
    )
}

/// The query string of an editor page, with only the `known` parameters, each once.
fn page_params(
    editor: &Editor,
    s: &Session,
    query: Option<&str>,
    known: &'static [&'static str],
) -> Result<crate::params::Params, Box<Response>> {
    crate::params::Params::parse(query, known).map_err(|e| {
        Box::new(bad_address(
            editor,
            s,
            &format!("Adressen går inte att läsa: {e}."),
        ))
    })
}

/// `path` with the filters that have a value, as a link to the next or first page.
fn filter_link(path: &str, filters: &[(&str, Option<&String>)]) -> String {
    let set: Vec<(&str, &str)> = filters
        .iter()
        .filter_map(|(k, v)| v.map(|v| (*k, v.as_str())))
        .collect();
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(set).unwrap_or_default()
    )
}

/// Posts a page of `/poster` lists.
pub const POSTS_PAGE: usize = 50;
/// Posts removed with one confirmation at most.
pub const REMOVE_MANY_MAX: usize = 200;
/// Query parameters of `/poster`.
const POSTS_PARAMS: &[&str] = &["q", "typ", "av", "fore", "borttagna", "offline"];

/// Who last published or changed each record, from the newest part of the audit trail (at
/// most [`crate::users::AUDIT_SCAN_BYTES_MAX`] read): record id → account.
fn last_changers(dir: &std::path::Path) -> HashMap<String, String> {
    let page = crate::users::read_audit_page(dir, None, usize::MAX, |e| {
        e.record_id.is_some() && matches!(e.action.as_str(), "publish" | "edit")
    });
    let mut out = HashMap::new();
    for e in page.map(|p| p.entries).unwrap_or_default() {
        if let Some(rid) = e.record_id {
            out.entry(rid).or_insert(e.user);
        }
    }
    out
}

/// `/poster`: every post of the region, newest change first, 50 a page, searchable and
/// filtered by kind and by who last changed it, each with a box to remove many at once.
async fn posts_page(
    State(editor): State<Arc<Editor>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let bad = |message: String| bad_address(&editor, &s, &message);
    let params = or_page!(page_params(&editor, &s, query.as_deref(), POSTS_PARAMS));
    let get = |k: &str| {
        params
            .get(k)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_string)
    };
    let (q, typ, av, fore) = (get("q"), get("typ"), get("av"), get("fore"));
    let kind = match typ.as_deref().map(str::parse::<Kind>) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(_)) => return bad("Det finns ingen sådan typ av post.".into()),
    };
    let me = editor.shared.node.node_id();
    let query = Query {
        author: Some(me),
        kind,
        text: q.clone(),
        limit: Some(POSTS_PAGE),
        cursor: fore.clone(),
        ..Query::default()
    };
    let dir = editor.shared.node.dir().to_path_buf();
    let found = editor
        .shared
        .blocking(move |n| Ok((n.query(&query)?, last_changers(&dir))))
        .await;
    let (page, changers) = match found {
        Ok(v) => v,
        Err(NodeError::Query(e)) if fore.is_some() => {
            return bad(format!(
                "Sidan går inte att hitta ({e}); börja om från första sidan."
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "the editor's list of posts could not be read");
            return editor.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Posterna kunde inte läsas",
                "Försök igen om en stund; står det kvar, be den som driver noden läsa loggen.",
                Some(&s),
            );
        }
    };
    let rows: Vec<Value> = page
        .records
        .iter()
        .filter_map(|r| {
            let by = changers.get(&r.record_id).cloned();
            if av.is_some() && by != av {
                return None;
            }
            Some(context! {
                title => title_of(&r.data), kind => r.kind.as_str(),
                updated_at => r.updated_at.clone(), record_id => r.record_id.clone(), by => by,
                removable => r.kind != Kind::Profile,
            })
        })
        .collect();
    let link = |cursor: Option<&String>| {
        filter_link(
            "/poster",
            &[
                ("q", q.as_ref()),
                ("typ", typ.as_ref()),
                ("av", av.as_ref()),
                ("fore", cursor),
            ],
        )
    };
    let people = editor.staff_names();
    let kinds: Vec<Value> = [
        Kind::Method,
        Kind::Innovation,
        Kind::Researcher,
        Kind::Profile,
    ]
    .iter()
    .map(|k| context! { value => k.as_str(), label => crate::web::kind_label(k.as_str(), true) })
    .collect();
    editor.page(
        StatusCode::OK,
        "editor_posts.html",
        context! {
            section => "posts", user => s.user.clone(), csrf => s.csrf.clone(),
            rows => rows, q => q, typ => typ, av => av, people => people, kinds => kinds,
            older => page.next_cursor.as_ref().map(|c| link(Some(c))),
            first => fore.is_none(), first_link => link(None),
            removed => params.get("borttagna").map(str::to_string),
            offline_written => params.get("offline") == Some("1"),
        },
    )
}

/// `POST /poster/ta-bort`: the selected posts (`id_RECORDID` fields), first a confirmation
/// listing them, then (`bekrafta`) each removed with the same erasure as one at a time.
async fn posts_remove(
    State(editor): State<Arc<Editor>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, f) = or_page!(posted(&editor, &headers, &body));
    let mut ids: Vec<RecordId> = f
        .keys()
        .filter_map(|k| k.strip_prefix("id_"))
        .filter_map(|id| id.parse().ok())
        .collect();
    ids.sort_by_key(|r: &RecordId| r.to_hex());
    if ids.is_empty() {
        return see_other("/poster");
    }
    if ids.len() > REMOVE_MANY_MAX {
        let m = format!("Högst {REMOVE_MANY_MAX} poster åt gången; välj färre.");
        return editor.error(StatusCode::BAD_REQUEST, "För många poster", &m, Some(&s));
    }
    let mut chosen = Vec::new();
    for rid in &ids {
        if let Some(view) = editor.own_record(*rid).await
            && view.kind != Kind::Profile
        {
            chosen.push((*rid, view));
        }
    }
    if !f.contains_key("bekrafta") {
        let rows: Vec<Value> = chosen
            .iter()
            .map(|(rid, v)| context! { id => rid.to_hex(), title => title_of(&v.data), kind => v.kind.as_str() })
            .collect();
        return editor.page(
            StatusCode::OK,
            "editor_remove_many.html",
            context! { section => "posts", user => s.user.clone(), csrf => s.csrf.clone(), rows => rows },
        );
    }
    let (mut removed, mut offline) = (0usize, false);
    for (rid, view) in chosen {
        match editor.shared.writer.delete(rid).await {
            Ok(d) => {
                removed += 1;
                offline |= d.offline;
                editor.note_write(&s, "delete", view.kind, &d.record_id, d.seq, Vec::new());
            }
            Err(e) => {
                tracing::warn!(error = %e, record = %rid, "a removal of many failed");
                return editor.write_failed(&s, &e);
            }
        }
    }
    tracing::info!(user = %s.user, removed, "removed many posts from the editor");
    let to = format!(
        "/poster?borttagna={removed}{}",
        if offline { "&offline=1" } else { "" }
    );
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// Query parameters of `/logg`.
const AUDIT_PARAMS: &[&str] = &["fore", "person", "typ"];

/// What the audit trail's actions are called on `/logg`.
pub(crate) const AUDIT_ACTIONS: &[(&str, &str)] = &[
    ("publish", "publicerade"),
    ("edit", "ändrade"),
    ("delete", "tog bort"),
    ("erase_on_request", "raderade på begäran"),
    ("import", "importerade"),
    ("login", "loggade in"),
    ("login_failed", "misslyckade inloggningar"),
    ("logout", "loggade ut"),
    ("user_add", "lade till konto"),
    ("user_remove", "tog bort konto"),
    ("password_reset", "gav nytt lösenord"),
    ("password_changed", "bytte sitt lösenord"),
];

fn action_sv(action: &str) -> String {
    AUDIT_ACTIONS
        .iter()
        .find(|(a, _)| *a == action)
        .map_or_else(|| action.to_string(), |(_, sv)| (*sv).to_string())
}

/// What the log page says of a post a line names: its title while it is visible (none once
/// removed: its content is erased), and the post's own version that line made.
#[derive(Debug, Default, Clone)]
struct PostFacts {
    title: Option<String>,
    version: Option<u64>,
}

/// An audit line as the pages show it.
fn audit_row(e: &AuditEntry, post: Option<&PostFacts>) -> Value {
    let t = |ms: u64| crate::web::datetime_sv(ms);
    context! {
        time => t(e.time_ms), until => e.until_ms.map(t),
        user => e.user.clone(), action => action_sv(&e.action), kind => e.kind.clone(),
        record_id => e.record_id.clone(), detail => e.detail.clone(),
        address => e.address.clone(), count => e.count,
        title => post.and_then(|p| p.title.clone()),
        version => post.and_then(|p| p.version),
        fields => field_labels(e.kind.as_deref(), &e.fields),
    }
}

impl Editor {
    /// [`PostFacts`] of every post `entries` name, by record id and seq.
    async fn post_facts(&self, entries: &[AuditEntry]) -> HashMap<(String, u64), PostFacts> {
        let wanted: Vec<(String, u64)> = entries
            .iter()
            .filter_map(|e| Some((e.record_id.clone()?, e.seq?)))
            .collect();
        let me = self.shared.node.node_id();
        self.shared
            .blocking(move |n| {
                let mut out = HashMap::new();
                for (hex, seq) in wanted {
                    let Ok(rid) = hex.parse::<RecordId>() else {
                        continue;
                    };
                    let title = n.record(&me, &rid)?.map(|v| title_of(&v.data));
                    let version = Some(n.version_number(&me, &rid, seq)?).filter(|v| *v > 0);
                    out.insert((hex, seq), PostFacts { title, version });
                }
                Ok(out)
            })
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "the posts of the log page could not be read");
                HashMap::new()
            })
    }
}

async fn audit_page(
    State(editor): State<Arc<Editor>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require_admin(&editor, &headers));
    let bad = |message: String| bad_address(&editor, &s, &message);
    let params = or_page!(page_params(&editor, &s, query.as_deref(), AUDIT_PARAMS));
    let before = match params.get("fore").map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return bad("”fore” ska vara ett tal.".into()),
    };
    let person = params
        .get("person")
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let action = params
        .get("typ")
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    if let Some(a) = &action
        && !AUDIT_ACTIONS.iter().any(|(k, _)| k == a)
    {
        return bad(format!("Det finns ingen händelse av typen {a:?}."));
    }
    let (p, a) = (person.clone(), action.clone());
    let dir = editor.shared.node.dir().to_path_buf();
    let page = tokio::task::spawn_blocking(move || {
        crate::users::read_audit_page(&dir, before, AUDIT_PAGE_LINES, |e| {
            p.as_ref().is_none_or(|p| &e.user == p) && a.as_ref().is_none_or(|a| &e.action == a)
        })
    })
    .await;
    let page = match page {
        Ok(Ok(p)) => p,
        other => {
            tracing::error!(result = ?other.err(), "the audit trail could not be read");
            return editor.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Loggen kunde inte läsas",
                "Försök igen om en stund; står det kvar, be den som driver noden läsa loggen.",
                Some(&s),
            );
        }
    };
    // Failed logins not yet written (their window is open) on top of the first page.
    let open: Vec<Value> =
        if before.is_none() && action.as_deref().is_none_or(|a| a == "login_failed") {
            editor
                .staff()
                .open_failures()
                .iter()
                .filter(|e| person.as_ref().is_none_or(|p| &e.user == p))
                .map(|e| audit_row(e, None))
                .collect()
        } else {
            Vec::new()
        };
    let older = page.older.map(|o| {
        let o = o.to_string();
        filter_link(
            "/logg",
            &[
                ("fore", Some(&o)),
                ("person", person.as_ref()),
                ("typ", action.as_ref()),
            ],
        )
    });
    let facts = editor.post_facts(&page.entries).await;
    let people = editor.staff_names();
    let actions: Vec<Value> = AUDIT_ACTIONS
        .iter()
        .map(|(k, sv)| context! { value => *k, label => *sv })
        .collect();
    editor.page(
        StatusCode::OK,
        "editor_audit.html",
        context! {
            section => "audit", user => s.user.clone(), csrf => s.csrf.clone(),
            entries => page.entries.iter().map(|e| {
                let key = e.record_id.clone().zip(e.seq);
                audit_row(e, key.and_then(|k| facts.get(&k)))
            }).collect::<Vec<_>>(),
            open => open, older => older, first => before.is_none(),
            person => person, typ => action, people => people, actions => actions,
        },
    )
}

/// `/konto`: the signed-in person's own password, and their recent logins.
impl Editor {
    async fn account_page(
        &self,
        s: &Session,
        status: StatusCode,
        message: Option<&str>,
        error: Option<(Option<&str>, String)>,
    ) -> Response {
        let (dir, me) = (self.shared.node.dir().to_path_buf(), s.user.clone());
        let recent = tokio::task::spawn_blocking(move || {
            crate::users::read_audit_page(&dir, None, ACCOUNT_RECENT_LOGINS, |e| {
                e.user == me && matches!(e.action.as_str(), "login" | "login_failed")
            })
        })
        .await;
        let mut rows: Vec<Value> = self
            .staff()
            .open_failures()
            .iter()
            .filter(|e| e.user == s.user)
            .map(|e| audit_row(e, None))
            .collect();
        if let Ok(Ok(page)) = recent {
            rows.extend(page.entries.iter().map(|e| audit_row(e, None)));
        }
        let (error_field, error) = error.unzip();
        self.page(
            status,
            "editor_account.html",
            context! {
                section => "account", user => s.user.clone(), csrf => s.csrf.clone(),
                one_time => s.must_change, message => message, error => error,
                error_field => error_field.flatten(), recent => rows,
                min_chars => crate::users::PASSWORD_CHARS_MIN,
            },
        )
    }
}

async fn account_form(State(editor): State<Arc<Editor>>, headers: HeaderMap) -> Response {
    let s = or_page!(require_any(&editor, &headers));
    editor.account_page(&s, StatusCode::OK, None, None).await
}

async fn account_post(
    State(editor): State<Arc<Editor>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s = or_page!(require_any(&editor, &headers));
    let Some(f) = form(&body).filter(|f| csrf_ok(&s, f)) else {
        return forbidden(&editor, Some(&s));
    };
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    let (current, new, again) = (field("current"), field("new"), field("again"));
    if new != again {
        let e = "De två nya lösenorden är inte lika.".to_string();
        return editor
            .account_page(&s, StatusCode::BAD_REQUEST, None, Some((Some("again"), e)))
            .await;
    }
    let address = editor.client(peer, &headers);
    match editor
        .staff()
        .change_own_password(&s.user, current, new, address)
        .await
    {
        Ok(account) => {
            // Every session of the account ended with the old password; this browser goes on
            // in a new one.
            let token = editor.staff().start_session(&account);
            let Some(fresh) = editor.staff().session_at(&token, Instant::now()) else {
                return see_other("/logga-in");
            };
            let mut r = editor
                .account_page(
                    &fresh,
                    StatusCode::OK,
                    Some("Ditt lösenord är bytt. Andra inloggningar med kontot har avslutats."),
                    None,
                )
                .await;
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&headers, SESSION_COOKIE, &token, None),
            );
            r
        }
        Err(e) => {
            let at = match e {
                UserError::WrongCurrentPassword | UserError::TooSoon(_) => "current",
                UserError::ShortPassword | UserError::LongPassword | UserError::SamePassword => {
                    "new"
                }
                _ => "",
            };
            let status = match e {
                UserError::Io { .. } | UserError::Corrupt { .. } | UserError::Hash(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                UserError::TooSoon(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::BAD_REQUEST,
            };
            let field = (!at.is_empty()).then_some(at);
            let mut r = editor
                .account_page(&s, status, None, Some((field, user_error_sv(&e))))
                .await;
            if let UserError::TooSoon(wait) = e {
                crate::web::retry_after(&mut r, wait);
            }
            r
        }
    }
}

async fn not_found(State(editor): State<Arc<Editor>>, headers: HeaderMap) -> Response {
    let s = editor.session(&headers);
    editor.error(
        StatusCode::NOT_FOUND,
        "Sidan finns inte",
        "Adressen leder ingenstans i redaktionen.",
        s.as_ref(),
    )
}

/// The editor's routes.
pub fn router(editor: Arc<Editor>) -> Router {
    Router::new()
        .route("/", get(start))
        .route("/logga-in", get(login_form).post(login))
        .route("/logga-ut", axum::routing::post(logout))
        .route("/ny/{kind}", get(new_form).post(new_post))
        .route("/post/{record_id}", get(record_page))
        .route("/post/{record_id}/andra", get(edit_form).post(edit_post))
        .route(
            "/post/{record_id}/ta-bort",
            get(delete_form).post(delete_post),
        )
        .route("/anvandare", get(users_list).post(users_add))
        .route(
            "/anvandare/{name}/ta-bort",
            axum::routing::post(users_remove),
        )
        .route(
            "/anvandare/{name}/nytt-losenord",
            get(users_reset_confirm).post(users_reset),
        )
        .route("/logg", get(audit_page))
        .route("/konto", get(account_form).post(account_post))
        .route("/utkast", get(draft_page))
        .route("/poster", get(posts_page))
        .route("/poster/ta-bort", axum::routing::post(posts_remove))
        .route(
            "/importera",
            get(crate::editor_import::import_form)
                .post(crate::editor_import::import_post)
                .layer(DefaultBodyLimit::max(IMPORT_FORM_BYTES_MAX)),
        )
        .route("/importera/{id}", get(crate::editor_import::import_status))
        .route(
            "/importera/mall/{file}",
            get(crate::editor_import::import_template),
        )
        .route("/assets/spindel.css", get(crate::web::style))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(FORM_BYTES_MAX))
        .with_state(editor)
}

/// Why the editor did not start.
#[derive(Debug, thiserror::Error)]
pub enum EditorError {
    #[error("an aggregator has no editor: a region's records are edited on the region's own node")]
    Aggregator,
    #[error("cannot serve the editor on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// Binds `addr` and serves the editor until the node stops.
pub async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    public_url: Option<String>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), EditorError> {
    if shared.node.config().role == Role::Aggregator {
        return Err(EditorError::Aggregator);
    }
    let bind = |error| EditorError::Bind { addr, error };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    if !bound.ip().is_loopback() {
        tracing::warn!(address = %bound, "the editor listens beyond this machine; put it behind a reverse proxy with TLS (see docs/operations.md)");
    }
    let editor = Editor::with_public_url(shared.clone(), public_url);
    let app = router(editor);
    crate::http::serve_on(&shared, ListenerKind::Editor, listener, app).map_err(bind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_refuse_repeated_fields_and_cookies_are_found_by_name() {
        assert!(form(b"csrf=a&csrf=b").is_none());
        assert_eq!(
            form(b"user=anna&password=x%26y").unwrap()["password"],
            "x&y"
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; spindel_redaktion=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn waits_are_said_in_swedish_rounded_up() {
        assert_eq!(wait_sv(Duration::from_millis(1500)), "2 sekunder");
        assert_eq!(wait_sv(Duration::from_secs(1)), "1 sekund");
        assert_eq!(wait_sv(Duration::from_secs(61)), "2 minuter");
        assert_eq!(wait_sv(Duration::from_secs(600)), "10 minuter");
    }

    /// A session ends when idle for SESSION_IDLE, and SESSION_MAX_AGE after login however
    /// busy; a used one lives on.
    #[tokio::test]
    async fn sessions_end_when_idle_and_at_their_age() {
        use crate::staff::{SESSION_IDLE, SESSION_MAX_AGE};
        let dir = tempfile::tempdir().unwrap();
        let node = crate::local::init_open(
            &dir.path().join("skane"),
            "skane",
            crate::local::Role::Region,
            None,
            &mut rand_core::OsRng,
        )
        .unwrap();
        let (_stop, rx) = tokio::sync::watch::channel(false);
        let shared = Shared::new(Arc::new(node), rx).unwrap();
        let (anna, _) = shared
            .staff
            .add("anna", StaffRole::Admin, Some("ett långt lösenord"), "test")
            .unwrap();
        let editor = Editor::new(shared.clone());
        let token = editor.staff().start_session(&anna);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SESSION_COOKIE}={token}")).unwrap(),
        );
        let t0 = Instant::now();
        let step = SESSION_IDLE - Duration::from_secs(1);
        // Used just inside the idle time, again and again: alive until its age.
        let mut t = t0;
        while t + step < t0 + SESSION_MAX_AGE {
            t += step;
            assert!(editor.session_at(&h, t).is_some(), "ended at {:?}", t - t0);
        }
        assert!(
            editor.session_at(&h, t0 + SESSION_MAX_AGE).is_none(),
            "outlived its age"
        );
        // Another, left idle.
        let token = editor.staff().start_session(&anna);
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SESSION_COOKIE}={token}")).unwrap(),
        );
        let later = Instant::now() + SESSION_IDLE;
        assert!(
            editor.session_at(&h, later).is_none(),
            "an idle session lives on"
        );
        shared.writer.stop().await;
    }
}
