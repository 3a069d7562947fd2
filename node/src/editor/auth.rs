//! The editor's doors: cookies, the CSRF token, sessions, login and logout, and the checks
//! every handler starts with (`require*`, `posted*`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use minijinja::context;

use crate::login::same;

use crate::words;

use super::page::{Editor, LOGIN_COOKIE, SESSION_COOKIE, Session, forbidden, form, see_other};
use crate::staff::{LoginOutcome, token};
use crate::users::StaffRole;

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

pub(super) fn set_cookie(
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: Option<u64>,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(s) = max_age {
        c.push_str(&format!("; Max-Age={s}"));
    }
    if over_tls(headers) {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

impl Editor {
    /// The session of this request, if it is live (refreshes its idle time).
    pub(super) fn session(&self, headers: &HeaderMap) -> Option<Session> {
        self.session_at(headers, Instant::now())
    }

    /// [`Editor::session`] as of `now`.
    fn session_at(&self, headers: &HeaderMap, now: Instant) -> Option<Session> {
        self.staff()
            .session_at(cookie(headers, SESSION_COOKIE)?, now)
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
}

pub(super) async fn login_form(
    State(editor): State<Arc<Editor>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if editor.session(&headers).is_some() {
        return see_other("/");
    }
    // Sent here with a form whose session had ended: say that its text is kept.
    let notice = (query.as_deref() == Some("sparat=1")).then_some(words::LOGGED_OUT_TEXT_KEPT);
    editor.login_page(&headers, StatusCode::OK, (None, notice), "")
}

pub(super) async fn login(
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
                (Some(words::WRONG_LOGIN.into()), None),
                &user,
            )
        }
        LoginOutcome::Wait(wait) => {
            metrics.logins_wait.fetch_add(1, Relaxed);
            let mut r = editor.login_page(
                &headers,
                StatusCode::TOO_MANY_REQUESTS,
                (Some(words::logins_wait(&words::wait_sv(wait))), None),
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
                words::LOGIN_BROKEN,
                words::ACCOUNTS_UNREADABLE,
                None,
            )
        }
    }
}

pub(super) async fn logout(
    State(editor): State<Arc<Editor>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
pub(super) fn require_any(editor: &Editor, headers: &HeaderMap) -> Result<Session, Box<Response>> {
    editor
        .session(headers)
        .ok_or_else(|| Box::new(see_other("/logga-in")))
}

/// Whether a form carries the session's CSRF token.
pub(super) fn csrf_ok(s: &Session, f: &HashMap<String, String>) -> bool {
    f.get("csrf").is_some_and(|c| csrf_matches(s, c))
}

/// Whether `sent` is the session's CSRF token.
pub(crate) fn csrf_matches(s: &Session, sent: &str) -> bool {
    same(sent, &s.csrf)
}

/// A POST from a logged-in staff member carrying the session's token: the session and the
/// form, or the login redirect or the 403.
pub(super) fn posted(
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
pub(super) fn posted_keeping(
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

/// The session of an admin, or the page that says only admins may.
pub(super) fn require_admin(
    editor: &Editor,
    headers: &HeaderMap,
) -> Result<Session, Box<Response>> {
    admin_only(editor, require(editor, headers)?)
}

/// `s` if it is an admin's, or the page that says only admins may.
fn admin_only(editor: &Editor, s: Session) -> Result<Session, Box<Response>> {
    if s.role != StaffRole::Admin {
        return Err(Box::new(editor.error(
            StatusCode::FORBIDDEN,
            words::ADMINS_ONLY,
            words::ADMINS_ONLY_WHY,
            Some(&s),
        )));
    }
    Ok(s)
}

/// [`posted_keeping`] by an admin.
pub(super) fn admin_posted_keeping(
    editor: &Editor,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
) -> Result<(Session, HashMap<String, String>), Box<Response>> {
    let (s, f) = posted_keeping(editor, headers, body, path)?;
    Ok((admin_only(editor, s)?, f))
}

/// [`posted`] by an admin.
pub(super) fn admin_posted(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::Shared;
    use std::time::Duration;

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
