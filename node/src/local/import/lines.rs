//! What one import line says: the record's JSON and the own record it names, if any, from the
//! two forms a line takes (a record with an optional `record_id`, or a line of `spindel
//! export`), with the checks an export line needs before it may touch a record.

use spindel_protocol::entry::RecordId;
use spindel_protocol::record::{Kind, SchemaError};

use super::NodeError;

/// An import line's own record id (if any) and the record's JSON. A line of `spindel export`
/// (it holds `entry` and `data`) names its record and holds it under `data`: it must be this
/// region's own record, of the import's kind, with nothing left out, exported from its
/// current version (an older export would undo what was published since); it then publishes
/// that record's next version with the line's content (the round trip of an edited export).
pub(super) fn import_line<'l>(
    store: &crate::store::Store,
    me: &spindel_protocol::NodeId,
    kind: Kind,
    line: &'l str,
) -> Result<(Option<RecordId>, std::borrow::Cow<'l, str>), NodeError> {
    if !(line.contains("\"entry\"") && line.contains("\"data\"")) {
        return split_record_id(line);
    }
    let value: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(_) => return split_record_id(line),
    };
    let Some(obj) = value.as_object() else {
        return split_record_id(line);
    };
    let (Some(data), Some(serde_json::Value::String(_))) = (obj.get("data"), obj.get("entry"))
    else {
        return split_record_id(line);
    };
    let bad = |field: &str, message: String| {
        NodeError::Schema(SchemaError {
            message,
            field: Some(field.into()),
            problem: spindel_protocol::record::Problem::Other,
        })
    };
    let text = |k: &str| obj.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let author = text("author");
    if author != me.to_hex() {
        return Err(bad(
            "author",
            format!(
                "the record is another region's (author {}): an import publishes this region's own records only",
                author.get(..16).unwrap_or(author)
            ),
        ));
    }
    if text("kind") != kind.as_str() {
        return Err(bad(
            "kind",
            format!(
                "the record is of kind {:?}, the import's kind is {}",
                text("kind"),
                kind.as_str()
            ),
        ));
    }
    if obj.get("contacts_left_out") == Some(&serde_json::Value::Bool(true)) {
        return Err(bad(
            "data",
            "the export left this researcher's e-mail address and phone number out: export with --contacts to import it".into(),
        ));
    }
    let rid = text("record_id").parse::<RecordId>().map_err(|_| {
        bad(
            "record_id",
            format!(
                "record_id must be 32 hex characters, got {:?}",
                text("record_id")
            ),
        )
    })?;
    let exported = obj.get("seq").and_then(serde_json::Value::as_u64);
    let current = store.record_meta(me, &rid)?.filter(|m| !m.deleted);
    // A researcher's contact details are kept only by a line that has them: an export made
    // without them (its marker lost on the way, by a tool or a spreadsheet) would erase them.
    if let Some(meta) = current
        .as_ref()
        .filter(|m| crate::privacy::is_personal(m.kind))
        && let Some(held) = store.load_record(me, &rid, meta)?
    {
        let held: serde_json::Value = serde_json::from_str(&held.to_json()).unwrap_or_default();
        for field in crate::privacy::CONTACT_FIELDS {
            if held.get(field).is_some() && data.get(field).is_none() {
                return Err(bad(
                    field,
                    format!(
                        "the record has a {field} this line does not: an export made without --contacts would erase it; export with --contacts and edit that"
                    ),
                ));
            }
        }
    }
    if let Some(current) = current
        && exported != Some(current.seq)
    {
        return Err(bad(
            "seq",
            format!(
                "the record has a newer version than this export holds (entry {} in the region's log, the export has {}): export it again and edit that",
                current.seq,
                exported.map_or("none".to_string(), |s| s.to_string())
            ),
        ));
    }
    Ok((Some(rid), std::borrow::Cow::Owned(data.to_string())))
}

/// An import line's own `record_id` (if any) and the record's JSON without it.
fn split_record_id(line: &str) -> Result<(Option<RecordId>, std::borrow::Cow<'_, str>), NodeError> {
    if !line.contains("\"record_id\"") {
        return Ok((None, std::borrow::Cow::Borrowed(line)));
    }
    let bad = |m: String| {
        NodeError::Schema(SchemaError {
            message: m,
            field: Some("record_id".into()),
            problem: spindel_protocol::record::Problem::Other,
        })
    };
    let mut value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
        NodeError::Schema(SchemaError {
            message: format!("invalid JSON: {e}"),
            field: None,
            problem: spindel_protocol::record::Problem::NotJson,
        })
    })?;
    let Some(obj) = value.as_object_mut() else {
        return Ok((None, std::borrow::Cow::Borrowed(line)));
    };
    let rid = match obj.remove("record_id") {
        Some(serde_json::Value::String(s)) => s
            .parse::<RecordId>()
            .map_err(|_| bad(format!("record_id must be 32 hex characters, got {s:?}")))?,
        Some(other) => return Err(bad(format!("record_id must be a string, got {other}"))),
        None => return Ok((None, std::borrow::Cow::Borrowed(line))),
    };
    Ok((Some(rid), std::borrow::Cow::Owned(value.to_string())))
}
