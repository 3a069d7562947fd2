//! A post in the editor: its form (new or an edit), the preview, the publish, the merge page
//! when a colleague changed it meanwhile, its page with its history, its removal, and the
//! draft kept when a session ended before its form was sent.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};

use spindel_protocol::RecordRef;
use spindel_protocol::entry::RecordId;
use spindel_protocol::record::Kind;

use super::auth::{posted, posted_keeping, require};
use super::page::{Editor, Session, field_labels, or_page, page_params, see_other, title_of};
use crate::forms::{self, FormError, Input};
use crate::local::NodeError;
use crate::read::Reads;
use crate::users::AuditEntry;
use crate::words;

/// A kind named in a path, or the 404 page.
fn kind_of(editor: &Editor, s: &Session, kind: &str) -> Result<Kind, Box<Response>> {
    kind.parse::<Kind>().map_err(|_| {
        Box::new(editor.error(
            StatusCode::NOT_FOUND,
            words::NO_SUCH_PAGE,
            words::NO_SUCH_KIND,
            Some(s),
        ))
    })
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

impl Editor {
    /// A kind's form, filled with `values`, with each of `errors` beside its field and all of
    /// them listed above the form, in the form's order, each a link to its field.
    async fn form_page(
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
        let choices = if forms::fields(kind).iter().any(|f| f.input == Input::Picks) {
            self.shared
                .blocking(|n| Ok(n.indicator_choices()?))
                .await
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let fields: Vec<Value> = forms::fields(kind)
            .iter()
            .map(|f| {
                let (input, html_type) = match f.input {
                    Input::Text => ("text", "text"),
                    Input::Area => ("area", "text"),
                    Input::Lines => ("lines", "text"),
                    Input::Picks => ("picks", "checkbox"),
                    Input::Url => ("url", "url"),
                    Input::Email => ("email", "email"),
                    Input::Tel => ("tel", "tel"),
                    Input::Date => ("date", "date"),
                    Input::DateTime => ("datetime", "datetime-local"),
                    Input::Number => ("number", "text"),
                    Input::Checkbox => ("checkbox", "checkbox"),
                    Input::Choice(_) => ("choice", "text"),
                };
                let options: Vec<Value> = match f.input {
                    Input::Choice(options) => options
                        .iter()
                        .map(|(value, label)| context! { value => value, label => label })
                        .collect(),
                    _ => Vec::new(),
                };
                let value = values.get(f.name).cloned().unwrap_or_default();
                let picks = (f.input == Input::Picks).then(|| picks_of(&value, &choices));
                context! {
                    name => f.name, label => f.label, help => f.help, required => f.required,
                    input => input, html_type => html_type, options => options, value => value,
                    error => error_of(f.name), picks => picks,
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
                answering => at.answering.clone(),
                version => values.get("version").cloned(), conflict => conflict,
                notice => notice, failed => failed,
            },
        )
    }

    /// The record of this region with id `rid`, as every interface shows it.
    pub(super) async fn own_record(&self, rid: RecordId) -> Option<crate::query::RecordView> {
        let me = self.shared.node.node_id();
        self.shared
            .blocking(move |n| Ok(n.record(&me, &rid)?))
            .await
            .ok()
            .flatten()
    }

    pub(super) fn note_write(
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
    pub(super) fn write_failed(&self, s: &Session, e: &NodeError) -> Response {
        self.error(
            StatusCode::CONFLICT,
            words::NOTHING_SAVED,
            &words::write_refused(e),
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
        mut f: HashMap<String, String>,
    ) -> Response {
        let kind = at.kind;
        forms::gather_picks(kind, &mut f);
        let wanted = f.get("action").map(String::as_str);
        if wanted == Some("edit") {
            // Back from the preview to the form, as it was filled in.
            return self.form_page(s, &at, &f, Vec::new(), None, None).await;
        }
        match (wanted, forms::record_from_form_all(kind, &f)) {
            (_, Err(errors)) => self.form_page(s, &at, &f, errors, None, None).await,
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
                        let why = words::write_refused(&e);
                        self.form_page(s, &at, &f, Vec::new(), Some(Banner::Failed(&why)), None)
                            .await
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
                        r => self.public_item(kind, &data, None).await, public_url => self.public_url.clone(),
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
            when => last.as_ref().map(|e| words::datetime_sv(e.time_ms)),
        };
        let mut r = self
            .form_page(s, at, &mine, Vec::new(), None, Some(conflict))
            .await;
        *r.status_mut() = StatusCode::CONFLICT;
        r
    }
}

/// A picks field's checkboxes: the offered choices by outcome, each ticked when `value` (one
/// reference a line) names it, then the references named but not offered (not received
/// here, or beyond the offer's cap), ticked.
fn picks_of(value: &str, choices: &crate::proxybank::Choices) -> Value {
    let named: Vec<&str> = value
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut offered = std::collections::HashSet::new();
    let groups: Vec<Value> = choices
        .iter()
        .map(|(outcome, items)| {
            let items: Vec<Value> = items
                .iter()
                .map(|(r, label)| {
                    offered.insert(r.as_str());
                    context! { value => r, label => label, checked => named.contains(&r.as_str()) }
                })
                .collect();
            context! { outcome => outcome, items => items }
        })
        .collect();
    let others: Vec<&str> = named.into_iter().filter(|r| !offered.contains(r)).collect();
    context! { groups => groups, others => others }
}

/// Where a form is: its kind, where it posts, its heading.
#[derive(Debug, Clone)]
struct FormAt {
    kind: Kind,
    action: String,
    heading: String,
    /// An answer's form: the record it answers, shown above the form.
    answering: Option<Value>,
}

/// The form of a new post of `kind`.
fn new_at(kind: Kind) -> FormAt {
    FormAt {
        kind,
        action: format!("/ny/{}", kind.as_str()),
        heading: words::new_post(&words::kind_label(kind.as_str(), false).to_lowercase()),
        answering: None,
    }
}

impl Editor {
    /// An answer's form (`about` filled in): what this node can say of the answered record,
    /// for the box above the form (its title and region, or that it is deleted or not here).
    async fn answering(&self, at: &mut FormAt, values: &HashMap<String, String>) {
        let about = values
            .get("about")
            .and_then(|a| a.trim().parse::<RecordRef>().ok());
        let (Kind::Experience, Some(about)) = (at.kind, about) else {
            return;
        };
        let read = self
            .shared
            .blocking(move |n| Ok((n.answer_target(&about)?, n.shown_names()?)))
            .await;
        at.answering = match read {
            Ok((crate::answers::Target::Held { record }, names)) => Some(context! {
                state => "held", r => super::network::listed(&record, &names),
            }),
            Ok((crate::answers::Target::Deleted, _)) => Some(context! { state => "deleted" }),
            Ok((crate::answers::Target::NotHeld, _)) => Some(context! { state => "not-held" }),
            Err(e) => {
                tracing::error!(error = %e, "the answered record could not be read");
                None
            }
        };
    }
}

pub(super) async fn new_form(
    State(editor): State<Arc<Editor>>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let kind = or_page!(kind_of(&editor, &s, &kind));
    // `?about=AUTHOR/RECORD_ID`: an answer to that record ("Svara med en erfarenhet").
    let params = or_page!(page_params(&editor, &s, query.as_deref(), &["about"]));
    if let (Kind::Experience, Some(about)) = (kind, params.get("about")) {
        let mut values = HashMap::new();
        values.insert("about".to_string(), about.to_string());
        let mut at = new_at(kind);
        editor.answering(&mut at, &values).await;
        return editor
            .form_page(&s, &at, &values, Vec::new(), None, None)
            .await;
    }
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
    editor
        .form_page(&s, &new_at(kind), &HashMap::new(), Vec::new(), None, None)
        .await
}

pub(super) async fn new_post(
    State(editor): State<Arc<Editor>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/ny/{kind}");
    let (s, f) = or_page!(posted_keeping(&editor, &headers, &body, &path));
    let kind = or_page!(kind_of(&editor, &s, &kind));
    let mut at = new_at(kind);
    editor.answering(&mut at, &f).await;
    editor.submit(&s, at, None, f).await
}

/// `/utkast`: the form a person sent after their session ended, filled in as they left it
/// (an edit keeps the version it was opened on, so a colleague's change in between is still
/// shown to merge, never overwritten).
pub(super) async fn draft_page(State(editor): State<Arc<Editor>>, headers: HeaderMap) -> Response {
    let s = or_page!(require(&editor, &headers));
    let Some(draft) = editor.staff().take_draft(&s.user) else {
        return see_other("/");
    };
    if draft.path.starts_with("/medlemskap/") {
        return editor.members_draft(&s, &draft.path, &draft.fields).await;
    }
    let mut at = if let Some(kind) = draft.path.strip_prefix("/ny/") {
        new_at(or_page!(kind_of(&editor, &s, kind)))
    } else {
        let rid = draft
            .path
            .strip_prefix("/post/")
            .and_then(|p| p.strip_suffix("/andra"))
            .unwrap_or("");
        let (_, view) = or_page!(record_of(&editor, &s, rid).await);
        edit_at(&view)
    };
    editor.answering(&mut at, &draft.fields).await;
    let notice = words::LOGGED_OUT_BEFORE_SENDING;
    editor
        .form_page(
            &s,
            &at,
            &draft.fields,
            Vec::new(),
            Some(Banner::Note(notice)),
            None,
        )
        .await
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
            words::NO_SUCH_POST,
            words::REGION_HAS_NO_SUCH_POST,
            Some(s),
        ))
    };
    let rid: RecordId = rid.parse().map_err(|_| missing())?;
    let view = editor.own_record(rid).await.ok_or_else(missing)?;
    Ok((rid, view))
}

pub(super) async fn record_page(
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
    // An answer: the record it answers, as its form shows it.
    let mut at = edit_at(&view);
    editor
        .answering(&mut at, &forms::form_from_record(view.kind, &view.data))
        .await;
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
            r => editor.public_item(view.kind, &view.data, Some(rid)).await, updated_at => view.updated_at.clone(),
            offline => offline,
            author => view.author.clone(), record_id => view.record_id.clone(),
            public_url => editor.public_url.clone(), public => public, history => history,
            answering => at.answering,
        },
    )
}

impl Editor {
    /// An own record as the public page's template (`record_main`) takes it.
    /// An innovation's named indicators come with it, found here or not, as on the page.
    /// An own indicator's page (`rid`) lists the innovations naming it.
    async fn public_item(
        &self,
        kind: Kind,
        data: &serde_json::Value,
        rid: Option<RecordId>,
    ) -> Value {
        let refs: Vec<spindel_protocol::RecordRef> = data["sroi"]["indicators"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        let named = match kind == Kind::Innovation && !refs.is_empty() {
            true => self
                .shared
                .blocking(move |n| Ok(n.named_indicators(&refs)?))
                .await
                .ok(),
            false => None,
        };
        let me = self.shared.node.node_id();
        let users = match (kind, rid) {
            (Kind::Indicator, Some(record)) => self
                .shared
                .blocking(move |n| {
                    let target = spindel_protocol::RecordRef { author: me, record };
                    Ok(n.indicator_users(&target)?)
                })
                .await
                .ok(),
            _ => None,
        };
        context! {
            kind => kind.as_str(), region => self.shared.node.config().name.clone(),
            region_display => self.shown_name(), author => me.to_hex(),
            title => title_of(data), data => Value::from_serialize(data), named => named,
            users => users,
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
                    words::VERSION_REMOVED
                } else if v.number == 1 {
                    words::VERSION_PUBLISHED
                } else {
                    words::VERSION_CHANGED
                };
                context! {
                    number => v.number, time => words::datetime_sv(v.timestamp_ms),
                    what => what, who => by.map(|e| e.user.clone()),
                    fields => by.map(|e| field_labels(kind, &e.fields)).unwrap_or_default(),
                }
            })
            .collect()
    }
}

pub(super) async fn edit_form(
    State(editor): State<Arc<Editor>>,
    Path(rid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let (_, view) = or_page!(record_of(&editor, &s, &rid).await);
    let mut values = forms::form_from_record(view.kind, &view.data);
    // The version this form was opened on: a publish from it is refused once another is out.
    values.insert("version".into(), view.seq.to_string());
    let mut at = edit_at(&view);
    editor.answering(&mut at, &values).await;
    editor
        .form_page(&s, &at, &values, Vec::new(), None, None)
        .await
}

/// The edit form of a record.
fn edit_at(view: &crate::query::RecordView) -> FormAt {
    FormAt {
        kind: view.kind,
        action: format!("/post/{}/andra", view.record_id),
        heading: words::edit_post(&title_of(&view.data)),
        answering: None,
    }
}

pub(super) async fn edit_post(
    State(editor): State<Arc<Editor>>,
    Path(rid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/post/{rid}/andra");
    let (s, f) = or_page!(posted_keeping(&editor, &headers, &body, &path));
    let (rid, view) = or_page!(record_of(&editor, &s, &rid).await);
    let mut at = edit_at(&view);
    editor.answering(&mut at, &f).await;
    editor.submit(&s, at, Some(rid), f).await
}

pub(super) async fn delete_form(
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

pub(super) async fn delete_post(
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
