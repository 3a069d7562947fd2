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
//!
//! Split by job, one module each: `auth` (cookies, CSRF, sessions, login), `posts` (a post's
//! forms, preview, merge, page, history, removal, drafts), `post_list` (the start page and
//! `/poster`), `accounts` (`/anvandare`, `/konto`), `audit` (`/logg`), `import`
//! (`/importera`), `network` (`/natverket`: every region's records, read-only, to answer) and
//! `members` (`/medlemskap`: who belongs; an admin endorses or revokes). Here: the [`Editor`], its pages, the helpers they share,
//! and the router.

mod accounts;
mod audit;
mod auth;
mod import;
mod members;
mod network;
mod page;
mod post_list;
mod posts;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use crate::listener::ListenerKind;
use crate::local::Role;
use crate::read::Reads;
use crate::shared::Shared;

use accounts::{
    account_form, account_post, users_add, users_list, users_remove, users_reset,
    users_reset_confirm,
};
use audit::audit_page;
use auth::{login, login_form, logout};
use post_list::{posts_page, posts_remove, start};
use posts::{
    delete_form, delete_post, draft_page, edit_form, edit_post, new_form, new_post, record_page,
};

use page::{Editor, FORM_BYTES_MAX, IMPORT_FORM_BYTES_MAX};

async fn not_found(State(editor): State<Arc<Editor>>, headers: HeaderMap) -> Response {
    let s = editor.session(&headers);
    editor.error(
        StatusCode::NOT_FOUND,
        crate::words::NO_SUCH_PAGE,
        crate::words::NOWHERE_IN_THE_EDITOR,
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
        .route("/natverket", get(network::network_page))
        .route("/medlemskap", get(members::members))
        .route(members::ENDORSE_PATH, axum::routing::post(members::endorse))
        .route(members::REVOKE_PATH, axum::routing::post(members::revoke))
        .route(members::ERASE_PATH, axum::routing::post(members::erase))
        .route(
            members::WITHDRAW_PATH,
            axum::routing::post(members::withdraw),
        )
        .route(
            "/natverket/{author}/{record_id}",
            get(network::network_record),
        )
        .route("/poster/ta-bort", axum::routing::post(posts_remove))
        .route(
            "/importera",
            get(import::import_form)
                .post(import::import_post)
                .layer(DefaultBodyLimit::max(IMPORT_FORM_BYTES_MAX)),
        )
        .route("/importera/{id}", get(import::import_status))
        .route("/importera/mall/{file}", get(import::import_template))
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
