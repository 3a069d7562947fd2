//! Redaktionen: the region's editor, on its own listener (`spindel run --admin HOST:PORT`,
//! loopback by default; contract.md "The editor"). The public page and API stay read-only on
//! theirs; an aggregator has no editor.
//!
//! Staff log in with the accounts of [`crate::users`]. A session is a random token in a cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` when the request came over TLS through a reverse
//! proxy that says so with `X-Forwarded-Proto: https`), kept in memory: it ends when idle for
//! [`SESSION_IDLE`], after [`SESSION_MAX_AGE`], at logout, when the node restarts, and when
//! its account is removed. Every `POST` carries a CSRF token: the session's, or before login
//! one bound to a cookie of the login page; without a valid one it is 403 and writes nothing.
//! Failed logins are limited per account and per address ([`LOGIN_FAILURES_PER_USER`],
//! [`LOGIN_FAILURES_PER_ADDRESS`] within [`LOGIN_WINDOW`]), with a Swedish message saying how
//! long to wait. Logins, failed logins and logouts go to the local audit trail.

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
use rand_core::RngCore;

use spindel_protocol::entry::RecordId;
use spindel_protocol::record::Kind;

use crate::forms::{self, FormError, Input};
use crate::listener::ListenerKind;
use crate::local::{NodeError, Role};
use crate::query::Query;
use crate::shared::Shared;
use crate::users::{AuditEntry, StaffRole, UserError, Users, audit};

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

/// A session unused this long ends.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login, used or not.
pub const SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions held at once; the oldest ends when one more starts.
pub const SESSIONS_MAX: usize = 1000;
/// Failed logins of one account within [`LOGIN_WINDOW`] before it is locked for the rest of it.
pub const LOGIN_FAILURES_PER_USER: usize = 5;
/// Failed logins from one address within [`LOGIN_WINDOW`] (behind a reverse proxy every login
/// comes from its address, so this is higher than the per-account limit).
pub const LOGIN_FAILURES_PER_ADDRESS: usize = 20;
/// Password checks (argon2id, ~19 MiB each) running at once; more logins wait.
pub const LOGIN_CHECKS_MAX: usize = 2;
/// The window failed logins are counted in, and the longest lock.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Accounts and addresses whose failures are remembered at once (the oldest are forgotten).
pub const LOGIN_FAILURE_KEYS_MAX: usize = 10_000;
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

/// A logged-in staff member.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) user: String,
    role: StaffRole,
    /// When the account's password was set at login: a new password (or a new account under
    /// the same name) ends the session.
    password_set_ms: u64,
    pub(crate) csrf: String,
    started: Instant,
    last_seen: Instant,
}

/// Failed logins, per account and per address.
#[derive(Debug, Default)]
struct Failures {
    by_user: HashMap<String, Vec<Instant>>,
    by_address: HashMap<IpAddr, Vec<Instant>>,
}

/// Adds a failure of `key`; a full map forgets the key whose last failure is oldest (a key
/// already known is always counted).
fn remember<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Vec<Instant>>,
    key: K,
    now: Instant,
) {
    if !map.contains_key(&key) && map.len() >= LOGIN_FAILURE_KEYS_MAX {
        let oldest = map
            .iter()
            .min_by_key(|(_, t)| t.last().copied())
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            map.remove(&k);
        }
    }
    let times = map.entry(key).or_default();
    times.retain(|t| now.duration_since(*t) < LOGIN_WINDOW);
    times.push(now);
}

impl Failures {
    /// How long until `user` from `address` may try again, if locked.
    fn locked(&mut self, user: &str, address: IpAddr, now: Instant) -> Option<Duration> {
        let wait = |times: Option<&mut Vec<Instant>>, max: usize| {
            let times = times?;
            times.retain(|t| now.duration_since(*t) < LOGIN_WINDOW);
            (times.len() >= max)
                .then(|| LOGIN_WINDOW - now.duration_since(times[times.len() - max]))
        };
        let u = wait(self.by_user.get_mut(user), LOGIN_FAILURES_PER_USER);
        let a = wait(
            self.by_address.get_mut(&address),
            LOGIN_FAILURES_PER_ADDRESS,
        );
        u.into_iter().chain(a).max()
    }

    fn failed(&mut self, user: &str, address: IpAddr, now: Instant) {
        remember(&mut self.by_user, user.to_string(), now);
        remember(&mut self.by_address, address, now);
    }

    /// A login succeeded: the account's failures are forgotten, and the attempt counted in
    /// advance at `when` is taken back from the address.
    fn succeeded(&mut self, user: &str, address: IpAddr, when: Instant) {
        self.by_user.remove(user);
        if let Some(times) = self.by_address.get_mut(&address)
            && let Some(at) = times.iter().rposition(|t| *t == when)
        {
            times.remove(at);
        }
    }

    /// An admin gave the account a new password: its lock ends.
    fn reset(&mut self, user: &str) {
        self.by_user.remove(user);
    }
}

/// The editor's state.
#[derive(Debug)]
pub struct Editor {
    pub(crate) shared: Arc<Shared>,
    users: Users,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<Failures>,
    /// Password checks running at once ([`LOGIN_CHECKS_MAX`]).
    checks: tokio::sync::Semaphore,
    /// Imports started from the browser, by id, while their progress pages may ask.
    imports: Mutex<HashMap<String, ImportState>>,
}

/// An import started from the browser.
#[derive(Debug)]
struct ImportState {
    user: String,
    progress: Arc<crate::writer::ImportProgress>,
    result: Option<Result<String, String>>,
    started: Instant,
}

/// What an import's progress page shows.
#[derive(Debug)]
pub(crate) enum ImportView {
    Running { done: u64, total: u64 },
    Ended(Result<String, String>),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// 32 random bytes in hex: a session or CSRF token.
fn token() -> String {
    let mut b = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Equal without telling how much of it was (a token compared with what a client sent).
fn same(a: &str, b: &str) -> bool {
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

impl Editor {
    pub fn new(shared: Arc<Shared>) -> Arc<Editor> {
        let users = Users::new(shared.node.dir());
        Arc::new(Editor {
            shared,
            users,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(Failures::default()),
            checks: tokio::sync::Semaphore::new(LOGIN_CHECKS_MAX),
            imports: Mutex::new(HashMap::new()),
        })
    }

    /// The session of this request, if it is live (refreshes its idle time). A session whose
    /// account was removed, or whose role changed, follows the accounts file.
    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        self.session_at(headers, Instant::now())
    }

    /// [`Editor::session`] as of `now`.
    fn session_at(&self, headers: &HeaderMap, now: Instant) -> Option<Session> {
        let token = cookie(headers, SESSION_COOKIE)?;
        let mut sessions = lock(&self.sessions);
        let live = sessions.get(token).is_some_and(|s| {
            now.duration_since(s.last_seen) < SESSION_IDLE
                && now.duration_since(s.started) < SESSION_MAX_AGE
        });
        if !live {
            sessions.remove(token);
            return None;
        }
        let s = sessions.get_mut(token)?;
        match self.users.get(&s.user) {
            Ok(Some(account)) if account.password_set_ms == s.password_set_ms => {
                s.role = account.role;
                s.last_seen = now;
                Some(s.clone())
            }
            _ => {
                sessions.remove(token);
                None
            }
        }
    }

    fn start_session(&self, user: &str, role: StaffRole, password_set_ms: u64) -> String {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= SESSIONS_MAX {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                sessions.remove(&k);
            }
        }
        let t = token();
        sessions.insert(
            t.clone(),
            Session {
                user: user.to_string(),
                role,
                password_set_ms,
                csrf: token(),
                started: now,
                last_seen: now,
            },
        );
        t
    }

    fn note(&self, user: &str, action: &str, detail: Option<String>) {
        let entry = AuditEntry {
            time_ms: crate::local::now_ms(),
            user: user.to_string(),
            action: action.to_string(),
            kind: None,
            record_id: None,
            seq: None,
            detail,
        };
        if let Err(e) = audit(self.shared.node.dir(), &entry) {
            tracing::error!(error = %e, "cannot write the editor's audit trail");
        }
    }

    pub(crate) fn page(&self, status: StatusCode, template: &str, ctx: Value) -> Response {
        // The menu shows accounts and the log to admins (the role as the session holds it).
        let is_admin = ctx
            .get_attr("user")
            .ok()
            .and_then(|u| u.as_str().map(str::to_string))
            .is_some_and(|u| {
                lock(&self.sessions)
                    .values()
                    .any(|x| x.user == u && x.role == StaffRole::Admin)
            });
        let full = context! {
            node_name => self.shared.node.config().name.clone(),
            is_admin => is_admin,
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

    fn login_page(
        &self,
        headers: &HeaderMap,
        status: StatusCode,
        message: Option<String>,
        user_name: &str,
    ) -> Response {
        // The login form's CSRF token, bound to a cookie of this browser.
        let csrf = cookie(headers, LOGIN_COOKIE)
            .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .map_or_else(token, str::to_string);
        let mut r = self.page(
            status,
            "editor_login.html",
            context! { csrf => csrf.clone(), message => message, user_name => user_name },
        );
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(headers, LOGIN_COOKIE, &csrf, None),
        );
        r
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

async fn start(State(editor): State<Arc<Editor>>, headers: HeaderMap) -> Response {
    let Some(s) = editor.session(&headers) else {
        return see_other("/logga-in");
    };
    let me = editor.shared.node.node_id();
    let q = Query {
        author: Some(me),
        limit: Some(START_RECORDS),
        ..Query::default()
    };
    let records = match editor.shared.blocking(move |n| n.query(&q)).await {
        Ok(page) => page.records,
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
    editor.page(
        StatusCode::OK,
        "editor_start.html",
        context! {
            section => "start",
            user => s.user.clone(),
            role_label => s.role.label_sv(),
            csrf => s.csrf.clone(),
            records => records,
        },
    )
}

async fn login_form(State(editor): State<Arc<Editor>>, headers: HeaderMap) -> Response {
    if editor.session(&headers).is_some() {
        return see_other("/");
    }
    editor.login_page(&headers, StatusCode::OK, None, "")
}

async fn login(
    State(editor): State<Arc<Editor>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
    let now = Instant::now();
    // A name no account can have is no account: counted against the address only, never
    // written anywhere at its length.
    let valid_name = crate::users::validate_user_name(&user).is_ok();
    let counted = if valid_name { user.as_str() } else { "" };
    if let Some(wait) = lock(&editor.failures).locked(counted, peer.ip(), now) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        tracing::warn!(address = %peer.ip(), "a locked login was tried");
        return editor.login_page(
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some(format!(
                "För många misslyckade inloggningar. Inloggningen är spärrad i {minutes} {}. Försök igen sedan, eller be en administratör byta lösenord.",
                if minutes == 1 { "minut" } else { "minuter" }
            )),
            &user,
        );
    }
    // Counted before the check: logins sent at once cannot all be tried before the lock.
    lock(&editor.failures).failed(counted, peer.ip(), now);
    let users = editor.users.clone();
    let name = user.clone();
    // argon2 takes ~19 MiB a check: a few at once, the rest wait their turn.
    let Ok(_turn) = editor.checks.acquire().await else {
        return editor.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Inloggningen fungerar inte just nu",
            "Försök igen om en stund.",
            None,
        );
    };
    let checked = tokio::task::spawn_blocking(move || {
        if !valid_name {
            return Err(crate::users::UserError::WrongPassword);
        }
        users.verify(&name, &password)
    })
    .await;
    match checked {
        Ok(Ok(account)) => {
            lock(&editor.failures).succeeded(&account.user, peer.ip(), now);
            editor.note(&account.user, "login", None);
            let t = editor.start_session(&account.user, account.role, account.password_set_ms);
            let mut r = see_other("/");
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(&headers, SESSION_COOKIE, &t, None),
            );
            h.append(
                header::SET_COOKIE,
                set_cookie(&headers, LOGIN_COOKIE, "", Some(0)),
            );
            r
        }
        Ok(Err(crate::users::UserError::WrongPassword)) => {
            let shown = if valid_name {
                user.as_str()
            } else {
                "(ogiltigt namn)"
            };
            editor.note(shown, "login_failed", Some(peer.ip().to_string()));
            editor.login_page(
                &headers,
                StatusCode::UNAUTHORIZED,
                Some("Fel användarnamn eller lösenord.".into()),
                &user,
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the editor cannot read its accounts");
            editor.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Inloggningen fungerar inte just nu",
                "Kontona kunde inte läsas. Be den som driver noden läsa loggen.",
                None,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "a login check failed");
            editor.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Inloggningen fungerar inte just nu",
                "Försök igen om en stund.",
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
        lock(&editor.sessions).remove(t);
    }
    editor.note(&s.user, "logout", None);
    let mut r = see_other("/logga-in");
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", Some(0)),
    );
    r
}

/// The session of a request, or the redirect to the login page.
pub(crate) fn require(editor: &Editor, headers: &HeaderMap) -> Result<Session, Box<Response>> {
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
fn rows(kind: Kind, data: &serde_json::Value) -> Vec<Value> {
    let values = forms::form_from_record(kind, data);
    forms::fields(kind)
        .iter()
        .filter_map(|f| {
            let v = values.get(f.name)?;
            Some(match f.input {
                Input::Lines => {
                    context! { label => f.label, list => v.lines().collect::<Vec<_>>() }
                }
                Input::Checkbox => context! { label => f.label, value => "Ja" },
                _ => context! { label => f.label, value => v },
            })
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
    /// A kind's form, filled with `values`, with `error` beside its field.
    fn form_page(
        &self,
        s: &Session,
        kind: Kind,
        action: &str,
        heading: String,
        values: &HashMap<String, String>,
        error: Option<FormError>,
    ) -> Response {
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
                }
            })
            .collect();
        let error_label = error
            .as_ref()
            .and_then(|e| e.field.as_deref())
            .and_then(|name| forms::fields(kind).iter().find(|f| f.name == name))
            .map(|f| f.label);
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        self.page(
            status,
            "editor_form.html",
            context! {
                user => s.user.clone(), csrf => s.csrf.clone(), heading => heading,
                action => action, fields => fields, error_label => error_label,
                error => error.map(|e| context! { field => e.field, message => e.message }),
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

    pub(crate) fn finish_import(&self, id: &str, result: Result<String, String>) {
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
        let entry = AuditEntry {
            time_ms: crate::local::now_ms(),
            user: s.user.clone(),
            action: "import".to_string(),
            kind: Some(kind.as_str().to_string()),
            record_id: None,
            seq: Some(done.last_seq),
            detail: Some(format!(
                "{} poster, version {}-{}",
                done.imported, done.first_seq, done.last_seq
            )),
        };
        if let Err(e) = audit(self.shared.node.dir(), &entry) {
            tracing::error!(error = %e, "cannot write the editor's audit trail");
        }
    }

    fn note_write(&self, s: &Session, action: &str, kind: Kind, record_id: &str, seq: u64) {
        let entry = AuditEntry {
            time_ms: crate::local::now_ms(),
            user: s.user.clone(),
            action: action.to_string(),
            kind: Some(kind.as_str().to_string()),
            record_id: Some(record_id.to_string()),
            seq: Some(seq),
            detail: None,
        };
        if let Err(e) = audit(self.shared.node.dir(), &entry) {
            tracing::error!(error = %e, "cannot write the editor's audit trail");
        }
    }

    /// A write the node refused, said in Swedish.
    fn write_failed(&self, s: &Session, e: &NodeError) -> Response {
        let message = match e {
            NodeError::CatchingUp { .. } | NodeError::RestoredNotCaughtUp => {
                "Noden kommer just nu ikapp sin egen logg hos aggregatorn; inget sparades. Försök igen om en stund.".to_string()
            }
            NodeError::Deleted(_) => "Posten är borttagen och kan inte publiceras igen.".into(),
            NodeError::OwnLogForked(_) => "Regionens logg har en gaffel (två olika poster med samma nummer); inget kan publiceras förrän den som driver noden har åtgärdat den.".into(),
            other => format!("Posten kunde inte sparas: {other}"),
        };
        self.error(StatusCode::CONFLICT, "Inget sparades", &message, Some(s))
    }

    /// A submitted form of `kind`: back to the form, a preview, or the publish.
    async fn submit(
        &self,
        s: &Session,
        kind: Kind,
        record_id: Option<RecordId>,
        action: &str,
        heading: String,
        f: HashMap<String, String>,
    ) -> Response {
        let wanted = f.get("action").map(String::as_str);
        if wanted == Some("edit") {
            // Back from the preview to the form, as it was filled in.
            return self.form_page(s, kind, action, heading, &f, None);
        }
        match (wanted, forms::record_from_form(kind, &f)) {
            (_, Err(e)) => self.form_page(s, kind, action, heading, &f, Some(e)),
            (Some("publish"), Ok(record)) => {
                let json = record.to_json();
                match self.shared.writer.publish(kind, json, record_id).await {
                    Ok(p) => {
                        let verb = if record_id.is_some() {
                            "edit"
                        } else {
                            "publish"
                        };
                        self.note_write(s, verb, kind, &p.record_id, p.seq);
                        tracing::info!(user = %s.user, kind = %kind.as_str(), record = %p.record_id, seq = p.seq, "published from the editor");
                        let to = format!("/post/{}?publicerad={}", p.record_id, p.seq);
                        (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
                    }
                    Err(e) => self.write_failed(s, &e),
                }
            }
            (_, Ok(record)) => {
                let data = record.to_value();
                let hidden: Vec<Value> = forms::fields(kind)
                    .iter()
                    .filter_map(|fd| {
                        f.get(fd.name)
                            .map(|v| context! { name => fd.name, value => v.clone() })
                    })
                    .collect();
                self.page(
                    StatusCode::OK,
                    "editor_preview.html",
                    context! {
                        user => s.user.clone(), csrf => s.csrf.clone(), action => action,
                        kind => kind.as_str(), title => title_of(&data), rows => rows(kind, &data),
                        hidden => hidden,
                    },
                )
            }
        }
    }
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
    let action = format!("/ny/{}", kind.as_str());
    editor.form_page(&s, kind, &action, new_heading(kind), &HashMap::new(), None)
}

async fn new_post(
    State(editor): State<Arc<Editor>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, f) = or_page!(posted(&editor, &headers, &body));
    let kind = or_page!(kind_of(&editor, &s, &kind));
    let action = format!("/ny/{}", kind.as_str());
    editor
        .submit(&s, kind, None, &action, new_heading(kind), f)
        .await
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
    let (_, view) = or_page!(record_of(&editor, &s, &rid).await);
    let published = query.is_some_and(|q| q.starts_with("publicerad="));
    editor.page(
        StatusCode::OK,
        "editor_record.html",
        context! {
            user => s.user.clone(), csrf => s.csrf.clone(), published => published,
            seq => view.seq, kind => view.kind.as_str(), title => title_of(&view.data),
            rows => rows(view.kind, &view.data), updated_at => view.updated_at.clone(),
            author => view.author.clone(), record_id => view.record_id.clone(),
        },
    )
}

async fn edit_form(
    State(editor): State<Arc<Editor>>,
    Path(rid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let (_, view) = or_page!(record_of(&editor, &s, &rid).await);
    let values = forms::form_from_record(view.kind, &view.data);
    let action = format!("/post/{}/andra", view.record_id);
    let heading = format!("Ändra ”{}”", title_of(&view.data));
    editor.form_page(&s, view.kind, &action, heading, &values, None)
}

async fn edit_post(
    State(editor): State<Arc<Editor>>,
    Path(rid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, f) = or_page!(posted(&editor, &headers, &body));
    let (rid, view) = or_page!(record_of(&editor, &s, &rid).await);
    let action = format!("/post/{}/andra", view.record_id);
    let heading = format!("Ändra ”{}”", title_of(&view.data));
    editor
        .submit(&s, view.kind, Some(rid), &action, heading, f)
        .await
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
            editor.note_write(&s, "delete", view.kind, &d.record_id, d.seq);
            if view.kind == Kind::Researcher && f.contains_key("pa_begaran") {
                editor.note_write(&s, "erase_on_request", view.kind, &d.record_id, d.seq);
            }
            tracing::info!(user = %s.user, record = %d.record_id, seq = d.seq, "deleted from the editor");
            see_other("/")
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
        let users: Vec<Value> = match self.users.list() {
            Ok(list) => list
                .iter()
                .map(|u| context! { user => u.user.clone(), role_label => u.role.label_sv() })
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

    /// Runs an account change that sets a new one-time password (argon2, off the async
    /// threads); the password, or why not (a status and a Swedish sentence).
    async fn with_new_password(
        &self,
        change: impl FnOnce(&Users, &str) -> Result<(), UserError> + Send + 'static,
    ) -> Result<String, (StatusCode, String)> {
        let password = crate::users::generate_password(&mut rand_core::OsRng);
        let (users, pw) = (self.users.clone(), password.clone());
        match tokio::task::spawn_blocking(move || change(&users, &pw)).await {
            Ok(Ok(())) => Ok(password),
            Ok(Err(e)) => Err((StatusCode::BAD_REQUEST, user_error_sv(&e))),
            Err(_) => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "Kontot kunde inte ändras; försök igen.".into(),
            )),
        }
    }

    /// An account change: audited, and said in Swedish.
    fn user_changed(&self, s: &Session, action: &str, name: &str) {
        self.note(&s.user, action, Some(name.to_string()));
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
    let (n, now) = (name.clone(), crate::local::now_ms());
    let added = editor
        .with_new_password(move |users, pw| {
            users
                .add(&n, role, pw, &mut rand_core::OsRng, now)
                .map(drop)
        })
        .await;
    match added {
        Ok(password) => {
            editor.user_changed(&s, "user_add", &name);
            let done = format!("Kontot {name} är skapat.");
            editor.users_page(&s, StatusCode::OK, Some(done), Some((name, password)), None)
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
    match editor.users.remove(&name) {
        Ok(()) => {
            editor.user_changed(&s, "user_remove", &name);
            // Its sessions end now.
            lock(&editor.sessions).retain(|_, x| x.user != name);
            editor.users_page(
                &s,
                StatusCode::OK,
                Some(format!("Kontot {name} är borttaget.")),
                None,
                None,
            )
        }
        Err(e) => editor.users_error(&s, StatusCode::BAD_REQUEST, user_error_sv(&e)),
    }
}

async fn users_reset(
    State(editor): State<Arc<Editor>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, _) = or_page!(admin_posted(&editor, &headers, &body));
    let (n, now) = (name.clone(), crate::local::now_ms());
    let reset = editor
        .with_new_password(move |users, pw| users.set_password(&n, pw, &mut rand_core::OsRng, now))
        .await;
    match reset {
        Ok(password) => {
            editor.user_changed(&s, "password_reset", &name);
            // A locked account gets in again with its new password.
            lock(&editor.failures).reset(&name);
            editor.users_page(&s, StatusCode::OK, None, Some((name, password)), None)
        }
        Err((status, e)) => editor.users_error(&s, status, e),
    }
}

/// Audit lines the log page shows.
const AUDIT_PAGE_LINES: usize = 500;

async fn audit_page(State(editor): State<Arc<Editor>>, headers: HeaderMap) -> Response {
    let s = or_page!(require_admin(&editor, &headers));
    let entries =
        crate::users::read_audit(editor.shared.node.dir(), AUDIT_PAGE_LINES).unwrap_or_default();
    let rows: Vec<Value> = entries
        .iter()
        .rev()
        .map(|e| {
            let t = spindel_protocol::time::rfc3339_ms(e.time_ms);
            context! {
                time => format!("{} {}", t.get(..10).unwrap_or(""), t.get(11..19).unwrap_or("")),
                user => e.user.clone(), action => e.action.clone(), kind => e.kind.clone(),
                record_id => e.record_id.clone(), seq => e.seq, detail => e.detail.clone(),
            }
        })
        .collect();
    editor.page(
        StatusCode::OK,
        "editor_audit.html",
        context! { section => "audit", user => s.user.clone(), csrf => s.csrf.clone(), entries => rows },
    )
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
            axum::routing::post(users_reset),
        )
        .route("/logg", get(audit_page))
        .route(
            "/importera",
            get(crate::editor_import::import_form)
                .post(crate::editor_import::import_post)
                .layer(DefaultBodyLimit::max(IMPORT_FORM_BYTES_MAX)),
        )
        .route("/importera/{id}", get(crate::editor_import::import_status))
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
    let editor = Editor::new(shared.clone());
    let app = router(editor);
    crate::http::serve_on(&shared, ListenerKind::Editor, listener, app).map_err(bind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_lock_per_account_and_per_address_for_the_window() {
        let mut f = Failures::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let t0 = Instant::now();
        for i in 0..LOGIN_FAILURES_PER_USER {
            assert!(f.locked("anna", a, t0).is_none(), "locked after {i}");
            f.failed("anna", a, t0);
        }
        let wait = f
            .locked("anna", b, t0)
            .expect("the account is locked from anywhere");
        assert_eq!(wait, LOGIN_WINDOW);
        assert!(f.locked("bo", b, t0).is_none(), "another account is not");
        assert!(
            f.locked("anna", a, t0 + LOGIN_WINDOW).is_none(),
            "the lock ends"
        );
        // Many accounts from one address.
        let t1 = t0 + LOGIN_WINDOW * 2;
        for i in 0..LOGIN_FAILURES_PER_ADDRESS {
            f.failed(&format!("u{i}"), b, t1);
        }
        assert!(f.locked("ny", b, t1).is_some(), "the address is locked");
        assert!(f.locked("ny", a, t1).is_none());
    }

    /// A session ends when idle for SESSION_IDLE, and SESSION_MAX_AGE after login however
    /// busy; a used one lives on.
    #[tokio::test]
    async fn sessions_end_when_idle_and_at_their_age() {
        let dir = tempfile::tempdir().unwrap();
        let node = crate::local::init_open(
            &dir.path().join("skane"),
            "skane",
            crate::local::Role::Region,
            None,
            &mut rand_core::OsRng,
        )
        .unwrap();
        Users::new(node.dir())
            .add(
                "anna",
                StaffRole::Admin,
                "ett långt lösenord",
                &mut rand_core::OsRng,
                1,
            )
            .unwrap();
        let (_stop, rx) = tokio::sync::watch::channel(false);
        let shared = Shared::new(Arc::new(node), rx).unwrap();
        let editor = Editor::new(shared.clone());
        let token = editor.start_session("anna", StaffRole::Admin, 1);
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
        let token = editor.start_session("anna", StaffRole::Admin, 1);
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

    /// Logins are counted before the check; a successful one takes its count back, so staff
    /// behind one proxy address never lock it by logging in. A full map still counts a known
    /// account.
    #[test]
    fn successful_logins_do_not_lock_an_address_and_a_full_map_still_counts() {
        let mut f = Failures::default();
        let proxy: IpAddr = [10, 0, 0, 1].into();
        let t0 = Instant::now();
        for i in 0..(LOGIN_FAILURES_PER_ADDRESS * 2) {
            let t = t0 + Duration::from_millis(i as u64);
            assert!(
                f.locked("anna", proxy, t).is_none(),
                "locked after {i} good logins"
            );
            f.failed("anna", proxy, t);
            f.succeeded("anna", proxy, t);
        }
        for i in 0..LOGIN_FAILURE_KEYS_MAX {
            f.failed(&format!("x{i}"), proxy, t0);
        }
        for _ in 0..LOGIN_FAILURES_PER_USER {
            f.failed("anna", [10, 0, 0, 2].into(), t0);
        }
        assert!(
            f.locked("anna", [10, 0, 0, 3].into(), t0).is_some(),
            "a full map stopped counting"
        );
        assert!(f.by_user.len() <= LOGIN_FAILURE_KEYS_MAX);
    }

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
}
