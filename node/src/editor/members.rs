//! `/medlemskap`: the network's membership in Redaktionen (decision 0041). Every member of
//! staff sees the charter, the member regions and the pending acts; an admin endorses a region,
//! asks that one's membership end, or orders (co-signs) a record's erasure. Each act goes
//! through a confirmation page that says what it does, is checked as `spindel
//! endorse`/`revoke`/`erase` check it, is published in the region's own log through the
//! writer, and is written to the audit trail.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::{Value, context};
use spindel_protocol::NodeId;
use spindel_protocol::membership::limits::REASON_CHARS_MAX;
use spindel_protocol::record::validate_region_name;

use super::auth::{admin_posted_keeping, require};
use super::page::{Editor, Session, or_page};
use crate::local::ActRequest;
use crate::read::Reads;
use crate::users::AuditEntry;
use crate::words;

/// What a person typed into one of the three forms, kept to show again.
#[derive(Debug, Default)]
struct Typed {
    node: String,
    name: String,
    reason: String,
    /// An erasure order's record, `AUTHOR/RECORD_ID`.
    record: String,
}

/// Which of the three acts a form asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Endorse,
    Revoke,
    Erase,
}

impl Which {
    /// The form's name in the page and the audit trail's action.
    fn name(self) -> &'static str {
        match self {
            Which::Endorse => "endorse",
            Which::Revoke => "revoke",
            Which::Erase => "erase",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Which::Endorse => ENDORSE_PATH,
            Which::Revoke => REVOKE_PATH,
            Which::Erase => ERASE_PATH,
        }
    }

    fn of_path(path: &str) -> Which {
        [Which::Endorse, Which::Revoke, Which::Erase]
            .into_iter()
            .find(|w| w.path() == path)
            .unwrap_or(Which::Endorse)
    }
}

impl Typed {
    fn of(f: &HashMap<String, String>) -> Typed {
        let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        Typed {
            node: get("node"),
            name: get("name"),
            reason: get("reason"),
            record: get("record"),
        }
    }
}

/// The act a form asks for, or each field's problem in Swedish.
fn act_of(which: Which, t: &Typed) -> Result<(ActRequest, NodeId), HashMap<&'static str, String>> {
    let mut errors = HashMap::new();
    if which == Which::Erase {
        let parsed = t.record.split_once('/').and_then(|(a, r)| {
            let author = a.parse::<NodeId>().ok().filter(NodeId::is_usable)?;
            r.parse::<spindel_protocol::entry::RecordId>().ok()?;
            Some((author, r.to_string()))
        });
        if parsed.is_none() {
            errors.insert("record", words::ERASE_RECORD.to_string());
        }
        let chars = t.reason.chars().count();
        if chars == 0 || chars > REASON_CHARS_MAX {
            errors.insert("reason", words::act_reason(REASON_CHARS_MAX));
        }
        return match parsed {
            Some((author, record)) if errors.is_empty() => Ok((
                ActRequest::Erase {
                    author: author.to_hex(),
                    record,
                    reason: t.reason.clone(),
                },
                author,
            )),
            _ => Err(errors),
        };
    }
    let revoke = which == Which::Revoke;
    let node = t.node.parse::<NodeId>().ok().filter(NodeId::is_usable);
    if node.is_none() {
        errors.insert("node", words::ACT_NODE_ID.to_string());
    }
    if revoke {
        let chars = t.reason.chars().count();
        if chars == 0 || chars > REASON_CHARS_MAX {
            errors.insert("reason", words::act_reason(REASON_CHARS_MAX));
        }
    } else if validate_region_name(&t.name).is_err() {
        errors.insert("name", words::ACT_NAME.to_string());
    }
    match node {
        Some(id) if errors.is_empty() => Ok((
            if revoke {
                ActRequest::Revoke {
                    node: id.to_hex(),
                    reason: t.reason.clone(),
                }
            } else {
                ActRequest::Endorse {
                    node: id.to_hex(),
                    name: t.name.clone(),
                    replaces: None,
                    upto: None,
                }
            },
            id,
        )),
        _ => Err(errors),
    }
}

impl Editor {
    /// The membership page, with what was typed and its problems (or a page-level message).
    async fn members_page(
        &self,
        s: &Session,
        status: StatusCode,
        form: Option<(&str, &Typed, HashMap<&'static str, String>)>,
        message: Option<String>,
        error: Option<String>,
    ) -> Response {
        self.members_page_at(s, status, form, message, error, 1)
            .await
    }

    /// [`Editor::members_page`] with page `page` of the erasure orders.
    async fn members_page_at(
        &self,
        s: &Session,
        status: StatusCode,
        form: Option<(&str, &Typed, HashMap<&'static str, String>)>,
        message: Option<String>,
        error: Option<String>,
        page: usize,
    ) -> Response {
        let report = self.shared.node.membership_page(page);
        let (erasures_prev, erasures_next) =
            crate::network_page::erasure_links("/medlemskap", report.as_ref());
        let (which, typed, errors) = match form {
            Some((which, t, errors)) => (
                Some(which.to_string()),
                context! {
                    node => t.node.clone(), name => t.name.clone(), reason => t.reason.clone(),
                    record => t.record.clone(),
                },
                errors,
            ),
            None => (None, Value::UNDEFINED, HashMap::new()),
        };
        self.page(
            status,
            "editor_members.html",
            context! {
                section => "members", user => s.user.clone(), csrf => s.csrf.clone(),
                is_admin => s.role == crate::users::StaffRole::Admin,
                report => report, which => which, typed => typed,
                erasures_prev => erasures_prev, erasures_next => erasures_next,
                errors => Value::from_serialize(&errors), message => message, error => error,
                reason_max => REASON_CHARS_MAX,
            },
        )
    }

    /// An act, confirmed: checked against the membership this node holds, published, noted.
    async fn act(&self, s: &Session, act: ActRequest, which: &str, t: &Typed) -> Response {
        let asked = act.clone();
        let record = self.shared.blocking(move |n| n.act_record(&asked)).await;
        let published = match record {
            Ok((kind, json)) => self.shared.writer.publish(kind, json, None).await,
            Err(e) => Err(e),
        };
        let done = match published {
            Ok(p) => {
                let (asked, published) = (act.clone(), p.clone());
                self.shared
                    .blocking(move |n| n.acted(&asked, &published))
                    .await
                    .map(|a| (p, a))
            }
            Err(e) => Err(e),
        };
        match done {
            Ok((p, acted)) => {
                let mut e = AuditEntry::new(&s.user, which, crate::local::now_ms());
                e.kind = Some(acted.kind.clone());
                e.record_id = Some(p.record_id.clone());
                e.seq = Some(p.seq);
                e.detail = Some(match &acted.record {
                    Some(record) => format!("{}/{record}", acted.node),
                    None => format!("{} ({})", acted.name, &acted.node[..16]),
                });
                self.staff().note(&e);
                let message = words::act_done(&acted);
                self.members_page(s, StatusCode::OK, None, Some(message), None)
                    .await
            }
            Err(e) => {
                let form = Some((which, t, HashMap::new()));
                let error = Some(words::write_refused(&e));
                self.members_page(s, StatusCode::CONFLICT, form, None, error)
                    .await
            }
        }
    }

    /// A posted act form: back with its problems, to the confirmation page, or (confirmed)
    /// the act.
    async fn act_posted(&self, headers: &HeaderMap, body: &[u8], asked: Which) -> Response {
        let which = asked.name();
        // A form sent after its session ended comes back filled in after the login.
        let (s, f) = or_page!(admin_posted_keeping(self, headers, body, asked.path()));
        let t = Typed::of(&f);
        let (act, id) = match act_of(asked, &t) {
            Ok(a) => a,
            Err(errors) => {
                let form = Some((which, &t, errors));
                return self
                    .members_page(&s, StatusCode::BAD_REQUEST, form, None, None)
                    .await;
            }
        };
        if f.get("confirm").map(String::as_str) == Some("ja") {
            return self.act(&s, act, which, &t).await;
        }
        let report = self.shared.node.membership();
        let region = report.as_ref().and_then(|m| {
            m.regions
                .iter()
                .find(|r| r.keys.iter().any(|k| k.node == id.to_hex()))
                .map(|r| r.name.clone())
        });
        self.page(
            StatusCode::OK,
            "editor_act_confirm.html",
            context! {
                section => "members", user => s.user.clone(), csrf => s.csrf.clone(),
                which => which, node => id.to_hex(), name => t.name.clone(),
                reason => t.reason.clone(), region => region, report => report,
                record => t.record.clone(),
            },
        )
    }
}

/// `POST` addresses of the three forms (also the paths their kept drafts carry).
pub(super) const ENDORSE_PATH: &str = "/medlemskap/stod";
pub(super) const REVOKE_PATH: &str = "/medlemskap/uteslut";
pub(super) const ERASE_PATH: &str = "/medlemskap/radera";
/// `POST` address of a pending act's withdrawal.
pub(super) const WITHDRAW_PATH: &str = "/medlemskap/dra-tillbaka";

impl Editor {
    /// The membership page with a form kept when its session ended (`/utkast`), filled in
    /// again; nothing is published.
    pub(super) async fn members_draft(
        &self,
        s: &Session,
        path: &str,
        fields: &HashMap<String, String>,
    ) -> Response {
        let which = Which::of_path(path).name();
        let typed = Typed::of(fields);
        let note = Some(words::LOGGED_OUT_BEFORE_SENDING.to_string());
        self.members_page(
            s,
            StatusCode::OK,
            Some((which, &typed, HashMap::new())),
            note,
            None,
        )
        .await
    }
}

/// `GET /medlemskap`: the charter, the members, the pending acts, and (for an admin) the forms.
/// `?radera=AUTHOR/RECORD_ID` fills in the erasure form (a pending order's "co-sign" link).
pub(super) async fn members(
    State(editor): State<Arc<Editor>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let pairs: Vec<(String, String)> = raw
        .as_deref()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let record = pairs
        .iter()
        .find(|(k, _)| k == "radera")
        .map(|(_, v)| v.chars().take(200).collect::<String>());
    // A page number that is not one shows the first page.
    let page = pairs
        .iter()
        .find(|(k, _)| k == "raderingar")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let form = record.map(|record| Typed {
        record,
        ..Typed::default()
    });
    let form = form.as_ref().map(|t| ("erase", t, HashMap::new()));
    editor
        .members_page_at(&s, StatusCode::OK, form, None, None, page)
        .await
}

/// `POST /medlemskap/stod`: endorse a region (after its confirmation page).
pub(super) async fn endorse(
    State(editor): State<Arc<Editor>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    editor.act_posted(&headers, &body, Which::Endorse).await
}

/// `POST /medlemskap/uteslut`: ask that a member's membership end (after its confirmation page).
pub(super) async fn revoke(
    State(editor): State<Arc<Editor>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    editor.act_posted(&headers, &body, Which::Revoke).await
}

/// `POST /medlemskap/dra-tillbaka`: withdraw one of this region's pending acts (`record_id`),
/// as `spindel delete` does; refused, with the reason, once it took effect.
pub(super) async fn withdraw(
    State(editor): State<Arc<Editor>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, f) = or_page!(admin_posted_keeping(
        &editor,
        &headers,
        &body,
        WITHDRAW_PATH
    ));
    let own = editor
        .shared
        .node
        .membership()
        .map(|m| m.own_pending)
        .unwrap_or_default();
    let asked = f
        .get("record_id")
        .map(|r| r.trim().to_string())
        .unwrap_or_default();
    let Some(act) = own.into_iter().find(|a| a.record_id == asked) else {
        let error = Some(words::WITHDRAW_UNKNOWN.to_string());
        return editor
            .members_page(&s, StatusCode::CONFLICT, None, None, error)
            .await;
    };
    let rid = match asked.parse() {
        Ok(rid) => rid,
        Err(_) => {
            let error = Some(words::WITHDRAW_UNKNOWN.to_string());
            return editor
                .members_page(&s, StatusCode::BAD_REQUEST, None, None, error)
                .await;
        }
    };
    match editor.shared.writer.delete(rid).await {
        Ok(d) => {
            let mut e = AuditEntry::new(&s.user, "withdraw", crate::local::now_ms());
            e.kind = Some(act.kind.clone());
            e.record_id = Some(d.record_id.clone());
            e.seq = Some(d.seq);
            e.detail = Some(act.about.clone());
            editor.staff().note(&e);
            let message = Some(words::withdrawn(&act.kind, &act.about));
            editor
                .members_page(&s, StatusCode::OK, None, message, None)
                .await
        }
        Err(e) => {
            let error = Some(words::write_refused(&e));
            editor
                .members_page(&s, StatusCode::CONFLICT, None, None, error)
                .await
        }
    }
}

/// `POST /medlemskap/radera`: order (co-sign) a record's erasure (after its confirmation page).
pub(super) async fn erase(
    State(editor): State<Arc<Editor>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    editor.act_posted(&headers, &body, Which::Erase).await
}
