//! The network in Redaktionen: every region's records as this node holds them, searched and
//! paged (`/natverket`), and a read-only page of any record (`/natverket/{author}/{id}`) with
//! its answers and the way to answer it ("Svara med en erfarenhet", which opens
//! `/ny/experience?about=AUTHOR/ID`). Staff read here; they write only their own region's
//! records, in the forms of `posts`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::{Value, context};

use spindel_protocol::entry::RecordId;
use spindel_protocol::{NodeId, RecordRef};

use super::auth::require;
use super::page::{Editor, POSTS_PAGE, filter_link, or_page, page_params, title_of};
use crate::query::{Query, RecordView};
use crate::read::Reads;
use crate::words;

/// A record as the network list and the answer form show it.
pub(super) fn listed(r: &RecordView, names: &std::collections::HashMap<String, String>) -> Value {
    context! {
        title => title_of(&r.data), kind => r.kind.as_str(), author => r.author.clone(),
        record_id => r.record_id.clone(), updated_at => r.updated_at.clone(),
        region_display => names.get(&r.author).cloned().or_else(|| r.region.clone()),
    }
}

/// `/natverket?q=&cursor=`: every region's records held here, newest first, searched.
pub(super) async fn network_page(
    State(editor): State<Arc<Editor>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let params = or_page!(page_params(&editor, &s, query.as_deref(), &["q", "cursor"]));
    let text = params
        .get("q")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let q = Query {
        text: text.clone(),
        cursor: params.get("cursor").map(str::to_string),
        limit: Some(POSTS_PAGE),
        ..Query::default()
    };
    let read = editor
        .shared
        .blocking(move |n| Ok((n.search(&q)?, n.shown_names()?)))
        .await;
    let (page, names) = match read {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = %e, "the network list could not be read");
            return editor.error(
                StatusCode::BAD_REQUEST,
                words::NO_SUCH_PAGE_SO,
                words::NETWORK_UNREADABLE,
                Some(&s),
            );
        }
    };
    let me = editor.shared.node.node_id().to_hex();
    let records: Vec<Value> = page.records.iter().map(|r| listed(r, &names)).collect();
    let next = page
        .next_cursor
        .as_ref()
        .map(|c| filter_link("/natverket", &[("q", text.as_ref()), ("cursor", Some(c))]));
    editor.page(
        StatusCode::OK,
        "editor_network.html",
        context! {
            section => "network", user => s.user.clone(), csrf => s.csrf.clone(),
            records => records, q => text, next => next, me => me,
        },
    )
}

/// `/natverket/{author}/{record_id}`: any record held here, read-only, with its answers.
pub(super) async fn network_record(
    State(editor): State<Arc<Editor>>,
    Path((author, rid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let missing = || {
        editor.error(
            StatusCode::NOT_FOUND,
            words::NO_SUCH_POST,
            words::NO_SUCH_RECORD_HERE,
            Some(&s),
        )
    };
    let (Ok(author), Ok(rid)) = (author.parse::<NodeId>(), rid.parse::<RecordId>()) else {
        return missing();
    };
    let read = editor
        .shared
        .blocking(move |n| {
            let view = n.record(&author, &rid)?;
            let answers = n.answers_to(
                &RecordRef {
                    author,
                    record: rid,
                },
                crate::answers::ANSWERS_PER_REGION,
            )?;
            Ok((view, answers, n.shown_names()?))
        })
        .await;
    let Ok((Some(view), answers, names)) = read else {
        return missing();
    };
    let groups: Vec<Value> = answers
        .groups
        .iter()
        .map(|g| {
            context! {
                region_display => names.get(&g.author).cloned(), total => g.total,
                answers => g.answers.iter().map(|r| listed(r, &names)).collect::<Vec<_>>(),
            }
        })
        .collect();
    let own = view.author == editor.shared.node.node_id().to_hex();
    let region_display = names.get(&view.author).cloned();
    let r = context! {
        kind => view.kind.as_str(), region => view.region.clone(),
        region_display => region_display, author => view.author.clone(),
        title => title_of(&view.data), data => Value::from_serialize(&view.data),
    };
    editor.page(
        StatusCode::OK,
        "editor_network_record.html",
        context! {
            section => "network", user => s.user.clone(), csrf => s.csrf.clone(),
            r => r, title => title_of(&view.data), author => view.author.clone(),
            record_id => view.record_id.clone(), own => own, version => view.version,
            updated_at => view.updated_at.clone(), public_url => editor.public_url.clone(),
            answers => groups, answers_total => answers.total,
        },
    )
}
