//! `/logg`: the local audit trail, paged and filtered, each line with the post it names.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::{Value, context};

use spindel_protocol::entry::RecordId;

use super::auth::require_admin;
use super::page::{
    AUDIT_PAGE_LINES, Editor, bad_address, field_labels, filter_link, or_page, page_params,
    title_of,
};
use crate::read::Reads;
use crate::users::AuditEntry;
use crate::words::{self, AUDIT_ACTIONS};

/// Query parameters of `/logg`.
const AUDIT_PARAMS: &[&str] = &["fore", "person", "typ"];

fn action_sv(action: &str) -> String {
    AUDIT_ACTIONS
        .iter()
        .find(|(a, _)| *a == action)
        .map_or_else(|| action.to_string(), |(_, sv)| (*sv).to_string())
}

/// What the log page says of a post a line names: its title while it is visible (none once
/// removed: its content is erased), and the post's own version that line made.
#[derive(Debug, Default, Clone)]
pub(super) struct PostFacts {
    title: Option<String>,
    version: Option<u64>,
}

/// An audit line as the pages show it.
pub(super) fn audit_row(e: &AuditEntry, post: Option<&PostFacts>) -> Value {
    let t = |ms: u64| words::datetime_sv(ms);
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

pub(super) async fn audit_page(
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
        Some(Err(_)) => return bad(words::BEFORE_NOT_A_NUMBER.into()),
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
        return bad(words::no_such_action(a));
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
                words::LOG_UNREADABLE,
                words::TRY_AGAIN_OR_READ_THE_LOG,
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
