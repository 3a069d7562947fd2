//! The knowledge bank exported (docs/interface.md; decision 0042): every current record, with
//! its author, region and what its author signed, as JSON Lines (one record a line, to
//! verify and to import again) or as CSV (flat columns for spreadsheets: the SROI figures and
//! the indicators' proxies). `spindel export` writes it from a data directory, and
//! `/api/v1/export` streams it, a chunk of [`EXPORT_CHUNK_RECORDS`] read at a time, so neither
//! holds the whole bank in memory.
//!
//! A JSON line carries the signed entry (`entry`, hex of its wire bytes: header and signature)
//! and the payload its header names (`payload`, hex), so a reader checks the record without
//! trusting the node: the signature with `verify_strict` over the header, the payload against
//! the header's hash and length, and `data` against the payload's body (`spindel verify-export`
//! does all three). A researcher's line in a public export leaves the contact details and the
//! payload out (`contacts_left_out`): its entry still proves who published which version.

use serde::{Deserialize, Serialize};
use spindel_protocol::Kind;
use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;

use crate::query::{Query, RecordView};
use crate::read::{ReadError, Reads};

/// Records read (and sent) at a time: a chunk is at most this many records with their payloads
/// (64 KiB each at most), written out before the next is read.
pub const EXPORT_CHUNK_RECORDS: usize = 200;

/// The two forms of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            other => Err(format!("format must be jsonl or csv, got {other:?}")),
        }
    }
}

/// Which records an export holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFilter {
    pub kind: Option<Kind>,
    /// A region's name (as the search's `region`).
    pub region: Option<String>,
    /// Researchers' e-mail addresses and phone numbers too (the operator's own export; never
    /// over HTTP).
    #[serde(default)]
    pub contacts: bool,
}

/// One record of an export: as every interface shows it, with what its author signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportLine {
    #[serde(flatten)]
    pub view: RecordView,
    /// The signed entry of the current version: hex of its wire bytes (header and signature,
    /// docs/protocol.md).
    pub entry: String,
    /// The payload the entry's header names: hex of its bytes. Absent when the node does not
    /// hold it, or when the contact details were left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// A researcher's e-mail address and phone number were left out of `data` (and so the
    /// payload): the line cannot be checked against its payload, nor imported.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub contacts_left_out: bool,
}

/// A chunk of an export, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportChunk {
    pub lines: Vec<ExportLine>,
    /// The cursor of the next chunk; `None` after the last.
    pub next: Option<String>,
}

/// The chunk of the export `filter` asks for from `after` on (newest records first).
pub fn chunk<R: Reads>(
    n: &R,
    filter: &ExportFilter,
    after: Option<String>,
) -> Result<ExportChunk, ReadError> {
    let q = Query {
        kind: filter.kind,
        region: filter.region.clone(),
        limit: Some(EXPORT_CHUNK_RECORDS),
        cursor: after,
        ..Query::default()
    };
    let page = n.query(&q)?;
    let mut lines = Vec::with_capacity(page.records.len());
    for mut view in page.records {
        if view.kind.is_membership() {
            continue;
        }
        let (Ok(author), Ok(rid)) = (
            view.author.parse::<NodeId>(),
            view.record_id.parse::<RecordId>(),
        ) else {
            continue;
        };
        let Some(entry) = n.entry(&author, view.seq)? else {
            continue;
        };
        let mut payload = n.payload_at(&author, &rid, view.seq)?.map(hex::encode);
        let mut contacts_left_out = false;
        if crate::privacy::is_personal(view.kind) && !filter.contacts {
            if let Some(data) = view.data.as_object_mut() {
                for field in crate::privacy::CONTACT_FIELDS {
                    contacts_left_out |= data.remove(field).is_some();
                }
            }
            if contacts_left_out {
                payload = None;
            }
        }
        lines.push(ExportLine {
            view,
            entry: hex::encode(entry.encode()),
            payload,
            contacts_left_out,
        });
    }
    Ok(ExportChunk {
        lines,
        next: page.next_cursor,
    })
}

/// The columns of the CSV form, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "record_id",
    "kind",
    "region",
    "author",
    "version",
    "updated_at",
    "title",
    "summary",
    "tags",
    "sroi_ratio",
    "sroi_year",
    "sroi_report_url",
    "sroi_indicators",
    "outcome",
    "indicator",
    "proxy",
    "value_sek",
    "unit",
    "year",
    "source",
    "deadweight",
    "attribution",
    "displacement",
    "drop_off",
    "start",
    "end",
    "place",
    "affiliation",
    "fields",
    "organisations",
    "links",
    "email",
    "phone",
];

/// A JSON value as one CSV cell: text as it is, numbers as JSON writes them (a point for the
/// decimals; a whole number without one), lists joined with "; ", nothing for what is absent.
fn cell(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| cell(Some(x)))
            .collect::<Vec<_>>()
            .join("; "),
        // A whole number as one (520, not 520.0): what a spreadsheet reads back.
        Some(serde_json::Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// A cell a spreadsheet would take for a formula (it starts with `=`, `+`, `-`, `@`, a tab or
/// a carriage return) gets a leading `'`, so a record's text is shown, never run.
fn inert(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// One record as a CSV row of [`CSV_COLUMNS`], every cell [`inert`].
pub fn csv_row(line: &ExportLine) -> Vec<String> {
    csv_cells(line).into_iter().map(inert).collect()
}

fn csv_cells(line: &ExportLine) -> Vec<String> {
    let v = &line.view;
    let d = &v.data;
    let title = ["title", "display_name", "name", "indicator"]
        .iter()
        .find_map(|k| d.get(k).and_then(|x| x.as_str()))
        .unwrap_or_default();
    let summary = ["summary", "text", "description"]
        .iter()
        .find_map(|k| d.get(k).and_then(|x| x.as_str()))
        .unwrap_or_default();
    let sroi = d.get("sroi");
    let field = |k: &str| cell(d.get(k));
    let of_sroi = |k: &str| cell(sroi.and_then(|s| s.get(k)));
    vec![
        v.record_id.clone(),
        v.kind.as_str().to_string(),
        v.region.clone().unwrap_or_default(),
        v.author.clone(),
        v.version.to_string(),
        v.updated_at.clone(),
        title.to_string(),
        summary.to_string(),
        field("tags"),
        of_sroi("ratio"),
        of_sroi("year"),
        of_sroi("report_url"),
        of_sroi("indicators"),
        field("outcome"),
        if v.kind == Kind::Indicator {
            field("indicator")
        } else {
            String::new()
        },
        field("proxy"),
        field("value_sek"),
        field("unit"),
        field("year"),
        field("source"),
        field("deadweight"),
        field("attribution"),
        field("displacement"),
        field("drop_off"),
        field("start"),
        field("end"),
        field("place"),
        field("affiliation"),
        field("fields"),
        field("organisations"),
        field("links"),
        // Only in an export with --contacts.
        field("email"),
        field("phone"),
    ]
}

/// Writes `lines` in `format` (CSV with its header row when `first`).
pub fn write_lines(
    out: &mut Vec<u8>,
    format: ExportFormat,
    lines: &[ExportLine],
    first: bool,
) -> Result<(), std::io::Error> {
    match format {
        ExportFormat::Jsonl => {
            for l in lines {
                serde_json::to_writer(&mut *out, l)?;
                out.push(b'\n');
            }
        }
        ExportFormat::Csv => {
            if first {
                // UTF-8 with a byte-order mark: how a spreadsheet (Excel) knows å, ä and ö.
                out.extend_from_slice("\u{feff}".as_bytes());
            }
            let mut w = csv::WriterBuilder::new().from_writer(&mut *out);
            if first {
                w.write_record(CSV_COLUMNS)?;
            }
            for l in lines {
                w.write_record(csv_row(l))?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

/// What [`verify_line`] found of one line of a JSON Lines export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineCheck {
    /// The signature, with `verify_strict`, over the entry's header.
    pub signed: bool,
    /// The payload matches the header's hash and length, and `data` matches the payload.
    pub payload: bool,
}

/// Checks one line of a JSON Lines export without trusting whoever wrote it: the entry's
/// signature, that the line's author, seq, record and kind are the entry's, and (when the line
/// carries it) that the payload is the one the header names and `data` is what it holds. An
/// error names the field that does not hold.
pub fn verify_line(line: &str) -> Result<LineCheck, String> {
    use spindel_protocol::entry::{Entry, Hash, PAYLOAD_BYTES_MAX, Payload, WIRE_ENTRY_BYTES_MAX};
    use spindel_protocol::record::Record;
    let l: ExportLine =
        serde_json::from_str(line).map_err(|e| format!("not an export line: {e}"))?;
    if l.entry.len() > 2 * WIRE_ENTRY_BYTES_MAX {
        return Err(format!("entry: over {WIRE_ENTRY_BYTES_MAX} bytes"));
    }
    let wire_bytes = hex::decode(&l.entry).map_err(|e| format!("entry: not hex: {e}"))?;
    let entry = Entry::decode(&wire_bytes).map_err(|e| format!("entry: {e}"))?;
    entry
        .verify()
        .map_err(|e| format!("entry: the signature does not hold: {e}"))?;
    let h = entry.header();
    if h.op != spindel_protocol::entry::Op::Put {
        return Err("entry: a deletion, not a version of the record".into());
    }
    let same = [
        ("author", h.author.to_hex() == l.view.author),
        ("seq", h.seq == l.view.seq),
        ("record_id", h.record_id.to_hex() == l.view.record_id),
        ("kind", h.kind == l.view.kind),
        (
            "updated_at",
            spindel_protocol::time::rfc3339_ms(h.timestamp_ms) == l.view.updated_at,
        ),
    ];
    if let Some((field, _)) = same.iter().find(|(_, ok)| !ok) {
        return Err(format!("{field}: not the signed entry's"));
    }
    let Some(payload_hex) = &l.payload else {
        // Only a researcher's line whose contact details were left out goes without its
        // payload; its data is then unchecked (the rest of it is the author's claim).
        if l.contacts_left_out && crate::privacy::is_personal(h.kind) {
            return Ok(LineCheck {
                signed: true,
                payload: false,
            });
        }
        return Err("payload: missing, so data cannot be checked (only a researcher's line with its contacts left out may leave it out)".into());
    };
    if payload_hex.len() > 2 * PAYLOAD_BYTES_MAX {
        return Err(format!("payload: over {PAYLOAD_BYTES_MAX} bytes"));
    }
    let bytes = hex::decode(payload_hex).map_err(|e| format!("payload: not hex: {e}"))?;
    if bytes.len() != h.payload_len as usize || Hash::of(&bytes) != h.payload_hash {
        return Err("payload: not the one the signed header names (hash or length)".into());
    }
    let body = Payload::decode(&bytes).map_err(|e| format!("payload: {e}"))?;
    let record = Record::from_json(h.kind, &body.body).map_err(|e| format!("payload: {e}"))?;
    let signed: serde_json::Value =
        serde_json::from_str(&record.to_json()).map_err(|e| format!("payload: {e}"))?;
    if signed != l.view.data {
        return Err("data: not what the signed payload holds".into());
    }
    Ok(LineCheck {
        signed: true,
        payload: true,
    })
}

/// Exports streamed at once over HTTP by one node; one more is answered 503 (each holds a
/// reader of the store for each chunk, and a connection for as long as its client reads).
pub const EXPORTS_AT_ONCE_MAX: usize = 4;
/// How long a chunk waits for the client to take the one before it: a client that stops
/// reading loses its export (and its place among [`EXPORTS_AT_ONCE_MAX`]).
pub const EXPORT_SEND_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// The longest one export over HTTP may take, however steadily its client reads.
pub const EXPORT_TIME_MAX: std::time::Duration = std::time::Duration::from_secs(30 * 60);

static EXPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(EXPORTS_AT_ONCE_MAX);

/// A body sent as the chunks come: a read that fails ends the response with an error, so the
/// client sees a broken transfer, never a short export that looks whole.
struct Chunks(tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>);

impl http_body::Body for Chunks {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|c| c.map(|r| r.map(|b| http_body::Frame::data(axum::body::Bytes::from(b)))))
    }
}

/// `GET /api/v1/export?format=jsonl|csv&kind=&region=`: every current record the filters
/// find, streamed a chunk at a time; researchers' contact details left out.
async fn export(
    axum::extract::State(shared): axum::extract::State<std::sync::Arc<crate::shared::Shared>>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    let bad = |m: String| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": m })),
        )
            .into_response()
    };
    let params = match crate::params::Params::parse(raw.as_deref(), &["format", "kind", "region"]) {
        Ok(p) => p,
        Err(e) => return bad(e.to_string()),
    };
    let format = match params
        .get("format")
        .unwrap_or("jsonl")
        .parse::<ExportFormat>()
    {
        Ok(f) => f,
        Err(e) => return bad(e),
    };
    let kind = match params.get("kind") {
        Some(k) => match k.parse::<Kind>() {
            Ok(k) if !k.is_membership() => Some(k),
            _ => return bad(format!("kind: unknown kind {k:?}")),
        },
        None => None,
    };
    let filter = ExportFilter {
        kind,
        region: params
            .get("region")
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        contacts: false,
    };
    let Ok(permit) = EXPORTS.try_acquire() else {
        let mut r = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": format!("busy: {EXPORTS_AT_ONCE_MAX} exports are running; try again")
            })),
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    };
    // The first chunk before the answer: a filter that finds no region is a 400 with its
    // reason, not a broken transfer.
    let f = filter.clone();
    let first_chunk = match shared.read(move |n| chunk(n, &f, None)).await {
        Ok(c) => c,
        Err(crate::read::ReadError::Question(e)) => return bad(e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "an export could not start");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({ "error": e.to_string() })),
            )
                .into_response();
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let _permit = permit;
        let started = tokio::time::Instant::now();
        let mut next = Some(first_chunk);
        let mut first = true;
        while let Some(c) = next.take() {
            let mut buf = Vec::new();
            if let Err(e) = write_lines(&mut buf, format, &c.lines, first) {
                let _ = tx.send(Err(e)).await;
                return;
            }
            first = false;
            match tokio::time::timeout(EXPORT_SEND_WAIT, tx.send(Ok(buf))).await {
                Ok(Ok(())) => {}
                // The client went away.
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::info!("an export stopped: its client stopped reading");
                    return;
                }
            }
            let Some(after) = c.next else {
                return;
            };
            if started.elapsed() > EXPORT_TIME_MAX {
                tracing::info!("an export stopped: it took longer than EXPORT_TIME_MAX");
                let _ = tx
                    .send(Err(std::io::Error::other("the export took too long")))
                    .await;
                return;
            }
            let f = filter.clone();
            match shared.read(move |n| chunk(n, &f, Some(after))).await {
                Ok(c) => next = Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "an export stopped: a chunk could not be read");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            }
        }
    });
    let (content_type, name) = match format {
        ExportFormat::Jsonl => (
            "application/x-ndjson; charset=utf-8",
            "kunskapsbanken.jsonl",
        ),
        ExportFormat::Csv => ("text/csv; charset=utf-8", "kunskapsbanken.csv"),
    };
    let mut r = axum::response::Response::new(axum::body::Body::new(Chunks(rx)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // Researchers are in it (without their contact details): kept by no cache, indexed by no
    // search engine.
    crate::privacy::personal_data(&mut r);
    r
}

/// The export's route.
pub fn routes() -> axum::Router<std::sync::Arc<crate::shared::Shared>> {
    axum::Router::new().route("/api/v1/export", axum::routing::get(export))
}
