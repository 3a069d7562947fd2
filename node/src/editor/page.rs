//! What the editor's pages share: the [`Editor`] (its state and page rendering), the
//! response helpers, form parsing and the editor's limits. The pages themselves live in the
//! sibling modules by job; the router is in `mod.rs`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};

use spindel_protocol::record::Kind;

use crate::forms;
use crate::read::Reads;
use crate::shared::Shared;
pub use crate::staff::Session;
use crate::staff::Staff;
use crate::users::{AuditEntry, StaffRole};

use crate::words::{self, ImportFailure};

/// The kinds a region holds many of, in the order Redaktionen lists them (the profile is one a
/// region, and comes last where it is listed).
pub(super) const POST_KINDS: [Kind; 6] = [
    Kind::Method,
    Kind::Innovation,
    Kind::Researcher,
    Kind::Event,
    Kind::Indicator,
    Kind::Experience,
];

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
/// Audit lines a page of `/logg` shows.
pub const AUDIT_PAGE_LINES: usize = 100;

/// The editor's state.
#[derive(Debug)]
pub struct Editor {
    pub(crate) shared: Arc<Shared>,
    /// Imports started from the browser, by id, while their progress pages may ask.
    pub(super) imports: Mutex<HashMap<String, ImportState>>,
    /// Where readers find the knowledge bank (settings `public_url`), if the operator said.
    pub(super) public_url: Option<String>,
}

/// An import started from the browser.
#[derive(Debug)]
pub(super) struct ImportState {
    pub(super) user: String,
    pub(super) progress: Arc<crate::writer::ImportProgress>,
    pub(super) result: Option<Result<String, ImportFailure>>,
    pub(super) started: Instant,
}

/// What an import's progress page shows.
#[derive(Debug)]
pub(crate) enum ImportView {
    Running { done: u64, total: u64 },
    Ended(Result<String, ImportFailure>),
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A form body: each field once (a repeated field is refused, like a query string).
pub(super) fn form(body: &[u8]) -> Option<HashMap<String, String>> {
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
    #[cfg(test)]
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

    pub(super) fn staff(&self) -> &Staff {
        &self.shared.staff
    }

    pub(super) fn note(&self, user: &str, action: &str, detail: Option<String>) {
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
        match crate::templates::render_template(template, full) {
            Ok(html) => page_response(status, html),
            Err(e) => {
                tracing::error!(template, error = %e, "editor page failed");
                page_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    words::EDITOR_PAGE_FAILED.into(),
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

    /// The staff's names, for the pages' "who" filters.
    pub(super) fn staff_names(&self) -> Vec<String> {
        self.staff()
            .users()
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(|u| u.user)
            .collect()
    }

    /// The client address of a request (the connection's, or a trusted proxy's word).
    pub(super) fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        self.shared.client_address(peer, headers)
    }

    /// The region as its staff and readers know it: its profile's display name (its node name
    /// until it has a profile).
    pub(super) fn shown_name(&self) -> String {
        let me = self.shared.node.node_id();
        self.shared
            .node
            .author(&me)
            .ok()
            .flatten()
            .and_then(|m| m.display_name)
            .unwrap_or_else(|| self.shared.node.config().name.clone())
    }
}

/// An editor page: the public pages' headers, and never cached, framed, referred or indexed.
pub(super) fn page_response(status: StatusCode, html: String) -> Response {
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

pub(super) fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// The 403 for a POST without a valid CSRF token: nothing was written.
pub(crate) fn forbidden(editor: &Editor, s: Option<&Session>) -> Response {
    editor.error(
        StatusCode::FORBIDDEN,
        words::FORM_NOT_SENT,
        words::FORM_WITHOUT_TOKEN,
        s,
    )
}

/// The Swedish labels of `names` (a field's form label; an unknown name as it is).
pub(super) fn field_labels(kind: Option<&str>, names: &[String]) -> Vec<String> {
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

pub(super) fn title_of(data: &serde_json::Value) -> String {
    // A profile's display name before its node name; a researcher's name; an indicator's indicator.
    ["title", "display_name", "name", "indicator"]
        .iter()
        .find_map(|k| data.get(*k).and_then(|v| v.as_str()))
        .or_else(|| {
            data.get("text")
                .and_then(|v| v.as_str())
                .map(spindel_protocol::experience::title_of)
        })
        .unwrap_or("")
        .to_string()
}

/// The 400 page of an editor page whose address cannot be read.
pub(super) fn bad_address(editor: &Editor, s: &Session, message: &str) -> Response {
    editor.error(
        StatusCode::BAD_REQUEST,
        words::NO_SUCH_PAGE_SO,
        message,
        Some(s),
    )
}

/// The query string of an editor page, with only the `known` parameters, each once.
pub(super) fn page_params(
    editor: &Editor,
    s: &Session,
    query: Option<&str>,
    known: &'static [&'static str],
) -> Result<crate::params::Params, Box<Response>> {
    crate::params::Params::parse(query, known)
        .map_err(|e| Box::new(bad_address(editor, s, &words::unreadable_address(&e))))
}

/// `path` with the filters that have a value, as a link to the next or first page.
pub(super) fn filter_link(path: &str, filters: &[(&str, Option<&String>)]) -> String {
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
