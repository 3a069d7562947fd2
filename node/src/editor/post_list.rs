//! The editor's lists of posts: the start page (the newest) and `/poster` (every post, paged,
//! searchable, filtered), with the removal of many at once.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};

use spindel_protocol::entry::RecordId;
use spindel_protocol::record::Kind;

use super::auth::{posted, require};
use super::page::{
    Editor, POSTS_PAGE, REMOVE_MANY_MAX, bad_address, filter_link, or_page, page_params, see_other,
    title_of,
};
use crate::local::NodeError;
use crate::query::Query;
use crate::read::Reads;
use crate::words;

/// Records on the start page.
const START_RECORDS: usize = 200;

pub(super) async fn start(
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
            let total = n.visible_count_of(&me)?;
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
                words::POSTS_UNREADABLE,
                words::TRY_AGAIN_OR_READ_THE_LOG,
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
    // The line a region's own website frames the embed with (decision 0042), under the name
    // the network knows the region by.
    let me = editor.shared.node.node_id();
    let name = editor.shared.node.author(&me).ok().flatten().map_or_else(
        || editor.shared.node.config().name.clone(),
        |m| m.name_or_key(&me),
    );
    let embed = crate::templates::embed_line(editor.public_url.as_deref(), &name);
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
            embed => embed, public_url => editor.public_url.clone(),
        },
    )
}

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
pub(super) async fn posts_page(
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
        Some(Err(_)) => return bad(words::NO_SUCH_KIND.into()),
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
            return bad(words::page_not_found(&e));
        }
        Err(e) => {
            tracing::error!(error = %e, "the editor's list of posts could not be read");
            return editor.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                words::POSTS_UNREADABLE,
                words::TRY_AGAIN_OR_READ_THE_LOG,
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
    let kinds: Vec<Value> = super::page::POST_KINDS
        .iter()
        .chain([Kind::Profile].iter())
        .map(|k| context! { value => k.as_str(), label => words::kind_label(k.as_str(), true) })
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
pub(super) async fn posts_remove(
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
        let m = words::too_many_chosen(REMOVE_MANY_MAX);
        return editor.error(StatusCode::BAD_REQUEST, words::TOO_MANY_POSTS, &m, Some(&s));
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
