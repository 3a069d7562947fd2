//! The staff's accounts in the editor: `/anvandare` (an admin adds, removes, gives a new
//! password) and `/konto` (one's own password and recent logins).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use minijinja::{Value, context};

use super::audit::audit_row;
use super::auth::{admin_posted, csrf_ok, require_admin, require_any, set_cookie};
use crate::read::Reads;
use crate::words;

use super::page::{Editor, SESSION_COOKIE, Session, forbidden, form, or_page, see_other};
use crate::staff::Staff;
use crate::users::{StaffRole, UserError};

/// Logins and failed logins `/konto` shows.
const ACCOUNT_RECENT_LOGINS: usize = 10;

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
            Ok(Err(e)) => Err((StatusCode::BAD_REQUEST, words::account_error(&e))),
            Err(_) => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                words::ACCOUNT_NOT_CHANGED.into(),
            )),
        }
    }
}

pub(super) async fn users_list(State(editor): State<Arc<Editor>>, headers: HeaderMap) -> Response {
    match require_admin(&editor, &headers) {
        Ok(s) => editor.users_page(&s, StatusCode::OK, None, None, None),
        Err(r) => *r,
    }
}

pub(super) async fn users_add(
    State(editor): State<Arc<Editor>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, f) = or_page!(admin_posted(&editor, &headers, &body));
    let name = f
        .get("name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    let role = match f.get("role").map(|r| r.parse::<StaffRole>()) {
        Some(Ok(r)) => r,
        _ => {
            let e = words::account_error(&UserError::BadRole(String::new()));
            return editor.users_error(&s, StatusCode::BAD_REQUEST, e);
        }
    };
    let (n, by) = (name.clone(), s.user.clone());
    match editor
        .account_change(move |staff| staff.add(&n, role, None, &by))
        .await
    {
        Ok((_, password)) => {
            let done = words::account_made(&name);
            let shown = password.map(|p| (name, p));
            editor.users_page(&s, StatusCode::OK, Some(done), shown, None)
        }
        Err((status, e)) => editor.users_error(&s, status, e),
    }
}

pub(super) async fn users_remove(
    State(editor): State<Arc<Editor>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, _) = or_page!(admin_posted(&editor, &headers, &body));
    if name == s.user {
        let e = words::NOT_YOUR_OWN_ACCOUNT.to_string();
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
            Some(words::account_removed(&name)),
            None,
            None,
        ),
        Err((status, e)) => editor.users_error(&s, status, e),
    }
}

/// The question before a new password: what it does, and a button that does it.
pub(super) async fn users_reset_confirm(
    State(editor): State<Arc<Editor>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require_admin(&editor, &headers));
    if !matches!(editor.staff().users().get(&name), Ok(Some(_))) {
        let e = words::account_error(&UserError::Unknown(name));
        return editor.users_error(&s, StatusCode::NOT_FOUND, e);
    }
    editor.page(
        StatusCode::OK,
        "editor_reset.html",
        context! { section => "users", user => s.user.clone(), csrf => s.csrf.clone(), name => name },
    )
}

pub(super) async fn users_reset(
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

pub(super) async fn account_form(
    State(editor): State<Arc<Editor>>,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require_any(&editor, &headers));
    editor.account_page(&s, StatusCode::OK, None, None).await
}

pub(super) async fn account_post(
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
        let e = words::NEW_PASSWORDS_DIFFER.to_string();
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
                .account_page(&fresh, StatusCode::OK, Some(words::PASSWORD_CHANGED), None)
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
                .account_page(&s, status, None, Some((field, words::account_error(&e))))
                .await;
            if let UserError::TooSoon(wait) = e {
                crate::web::retry_after(&mut r, wait);
            }
            r
        }
    }
}
