//! The editor's import page (`/importera`): a JSON Lines or CSV file uploaded from the browser
//! is received into the data directory as it arrives (never held in memory; at most
//! [`IMPORT_BYTES_MAX`]), a CSV file turned into JSON Lines there by the form's own conversion
//! ([`crate::import_csv`]), imported by the node's writer with the all-or-nothing rule of
//! `spindel import`, and erased, every file of it, however the request ends. The form's CSRF
//! token must come before the file. A refused import is said in Swedish, line by line (a CSV
//! file's lines are its spreadsheet rows), with the field's label. `/importera/mall/{kind}.csv`
//! is the CSV template of a kind.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use spindel_protocol::entry::PAYLOAD_BYTES_MAX;
use spindel_protocol::ingest::{AUTHOR_ENTRIES_MAX, AUTHOR_PAYLOAD_BYTES_MAX, Refusal};
use spindel_protocol::record::{Kind, Problem};

use crate::editor::{Editor, ImportView, Session, csrf_matches, forbidden, or_page, require};
use crate::forms;
use crate::import_csv::{
    self, CSV_JSON_BYTES_MAX, CSV_ROW_BYTES_MAX, CsvError, Format, RECORD_ID_COLUMN,
};
use crate::local::{
    IMPORT_BYTES_MAX, IMPORT_LINE_BYTES_MAX, IMPORT_RECORDS_MAX, ImportFileProblem, LineError,
    NodeError,
};
use crate::writer::{ImportJob, ImportProgress};

/// A received upload, erased (zeros first) however the request ends: imported, refused, or
/// dropped because the browser went away mid-upload.
struct Upload {
    dir: std::path::PathBuf,
    name: String,
}

impl Upload {
    /// A new file name for an upload in `dir` (erased at the next start if it is left).
    fn new(dir: &std::path::Path) -> Upload {
        Upload {
            dir: dir.to_path_buf(),
            name: crate::control::upload_name(),
        }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.join(&self.name)
    }

    /// Erases the file now (on a blocking thread).
    fn erase_now(mut self) {
        let name = std::mem::take(&mut self.name);
        if let Err(e) = crate::local::erase_file(&self.dir, &name) {
            tracing::error!(error = %e, "erasing an uploaded import failed; erased at next start");
        }
    }

    /// Erases the file before the answer goes out.
    async fn erase(mut self) {
        let (dir, name) = (self.dir.clone(), std::mem::take(&mut self.name));
        let erased =
            tokio::task::spawn_blocking(move || crate::local::erase_file(&dir, &name)).await;
        if let Ok(Err(e)) = erased {
            tracing::error!(error = %e, "erasing an uploaded import failed; erased at next start");
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let (dir, name) = (self.dir.clone(), std::mem::take(&mut self.name));
        let erase = move || {
            if let Err(e) = crate::local::erase_file(&dir, &name) {
                tracing::error!(error = %e, "erasing an uploaded import failed; erased at next start");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(erase);
            }
            Err(_) => erase(),
        }
    }
}

/// A refused import as the page says it: a sentence, then the bad lines (at most
/// [`crate::local::IMPORT_ERRORS_SHOWN`]), each with what is wrong field by field, and how
/// many more there were.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ImportFailure {
    pub summary: String,
    pub lines: Vec<ShownLine>,
    pub more: usize,
}

/// One bad line (a CSV file's spreadsheet row) of a refused import.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ShownLine {
    pub line: usize,
    pub problems: Vec<ShownProblem>,
}

/// One thing wrong on a line: the field's label (and its name in the file), and why.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ShownProblem {
    pub label: Option<String>,
    pub message: String,
}

impl ImportFailure {
    /// A refusal said in one sentence.
    fn said(summary: impl Into<String>) -> ImportFailure {
        ImportFailure {
            summary: summary.into(),
            lines: Vec::new(),
            more: 0,
        }
    }
}

/// How the page names a field of `kind` given by its name in the file: its form label and
/// the name (`Titel (title)`). A nested name serde gave without its object (`date`) is found
/// by its last part; a name the kind does not have is given as it is.
fn label(kind: Kind, name: &str) -> String {
    if name == RECORD_ID_COLUMN {
        return format!("Postens id ({RECORD_ID_COLUMN})");
    }
    let fields = forms::fields(kind);
    let found = fields.iter().find(|f| f.name == name).or_else(|| {
        fields.iter().find(|f| {
            f.name
                .rsplit_once('.')
                .is_some_and(|(_, last)| last == name)
        })
    });
    match found {
        Some(f) => format!("{} ({})", f.label, f.name),
        None => name.to_string(),
    }
}

/// The names a JSON Lines record of `kind` may have (nested objects by their outer name).
fn json_names(kind: Kind) -> String {
    let mut names: Vec<&str> = Vec::new();
    for f in forms::fields(kind) {
        let outer = f.name.split('.').next().unwrap_or(f.name);
        if !names.contains(&outer) {
            names.push(outer);
        }
    }
    names.push(RECORD_ID_COLUMN);
    names.join(", ")
}

/// A form's error in the import's words: a list's item is "punkt N" (the line is the file's).
fn problem(kind: Kind, e: forms::FormError) -> ShownProblem {
    let message = match e
        .message
        .strip_prefix("Rad ")
        .and_then(|r| r.split_once(": "))
    {
        Some((n, rest)) if n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("Punkt {n} i listan: {rest}")
        }
        _ => e.message,
    };
    ShownProblem {
        label: e.field.as_deref().map(|f| label(kind, f)),
        message,
    }
}

/// What is wrong with one line the node refused, in Swedish.
fn line_problem(kind: Kind, e: &LineError) -> ShownProblem {
    let said = |label: Option<String>, message: String| ShownProblem { label, message };
    let rid = || Some(label(kind, RECORD_ID_COLUMN));
    match e {
        LineError::JsonArray => said(
            None,
            "Raden är en JSON-lista; filen ska ha en post per rad (JSON Lines).".into(),
        ),
        LineError::RecordIdTwice { first, .. } => said(
            rid(),
            format!("Samma post finns också på rad {first}; en post kan bara vara med en gång."),
        ),
        LineError::Record(e) => record_problem(kind, e),
    }
}

/// What is wrong with the record of one line, or with the record it names, in Swedish.
fn record_problem(kind: Kind, e: &NodeError) -> ShownProblem {
    let said = |label: Option<String>, message: String| ShownProblem { label, message };
    let rid = || Some(label(kind, RECORD_ID_COLUMN));
    match e {
        NodeError::Schema(e) => match e.problem {
            Problem::NotJson => said(
                None,
                "Raden är inte JSON. Varje rad ska vara en post, till exempel {\"title\": \"…\", \"summary\": \"…\"}."
                    .into(),
            ),
            Problem::UnknownField => said(
                None,
                format!(
                    "Okänt fält ”{}”. Kända fält: {}.",
                    e.field.as_deref().unwrap_or_default(),
                    json_names(kind)
                ),
            ),
            Problem::Other if e.field.as_deref() == Some(RECORD_ID_COLUMN) => said(
                rid(),
                "Ange postens id som text med 32 tecken 0–9 och a–f (som i postens adress /post/…)."
                    .into(),
            ),
            Problem::Other => said(
                None,
                "Raden kunde inte läsas som en post: ett värde har fel form (till exempel text där en lista ska stå, eller ett tal inom citattecken)."
                    .into(),
            ),
            _ => problem(kind, forms::swedish(e)),
        },
        NodeError::UnknownRecord(_) => said(
            rid(),
            "Posten finns inte bland regionens egna poster; ange id för en av dem, eller lämna det tomt för en ny post."
                .into(),
        ),
        NodeError::Deleted(_) => said(
            rid(),
            "Posten är borttagen och kan inte publiceras igen.".into(),
        ),
        NodeError::KindMismatch { stored, .. } => said(
            rid(),
            format!(
                "Posten är av en annan typ ({}); välj den typen eller lämna id tomt.",
                crate::web::kind_label(stored.as_str(), false)
            ),
        ),
        NodeError::TooLarge(got) => said(
            None,
            format!(
                "Posten blir {got} byte, mer än de {PAYLOAD_BYTES_MAX} en post får vara; korta texterna."
            ),
        ),
        NodeError::Refused(Refusal::PayloadQuota { would }) => said(
            None,
            format!(
                "Regionens poster skulle då bli {would} byte, mer än de \
                 {AUTHOR_PAYLOAD_BYTES_MAX} en region får ha. Ta bort poster som inte behövs, \
                 eller importera färre."
            ),
        ),
        NodeError::Refused(Refusal::AuthorQuota(_)) => said(
            None,
            format!(
                "Regionen har nått gränsen på {AUTHOR_ENTRIES_MAX} publiceringar och kan inte \
                 publicera fler."
            ),
        ),
        other => {
            tracing::warn!(error = %other, "an import line refused");
            said(
                None,
                "Raden kunde inte importeras; den som driver noden ser orsaken i nodens logg."
                    .into(),
            )
        }
    }
}

/// A refused import of `kind` (`format` as uploaded) in Swedish.
fn failure(kind: Kind, format: Format, e: &NodeError) -> ImportFailure {
    let file = match format {
        Format::Csv => "Filen (omvandlad från CSV)",
        Format::JsonLines => "Filen",
    };
    match e {
        NodeError::ImportInvalid { invalid, lines } => ImportFailure {
            summary: format!(
                "Ingenting importerades: {invalid} {} fel.",
                if *invalid == 1 {
                    "rad är"
                } else {
                    "rader är"
                }
            ),
            lines: lines
                .iter()
                .map(|l| ShownLine {
                    line: l.line,
                    problems: vec![line_problem(kind, &l.error)],
                })
                .collect(),
            more: invalid - lines.len(),
        },
        NodeError::ImportFile { problem, .. } => ImportFailure::said(match problem {
            ImportFileProblem::TooLarge => format!(
                "Ingenting importerades: {file} är större än {} MiB; dela upp den.",
                IMPORT_BYTES_MAX / (1024 * 1024)
            ),
            ImportFileProblem::LineTooLong(n) => format!(
                "Ingenting importerades: rad {n} är längre än {} MiB.",
                IMPORT_LINE_BYTES_MAX / (1024 * 1024)
            ),
            ImportFileProblem::NotUtf8(n) => format!(
                "Ingenting importerades: filen är inte sparad som UTF-8-text (rad {n}). Spara den som UTF-8."
            ),
            ImportFileProblem::Unreadable(_) => {
                "Ingenting importerades: filen kunde inte läsas på noden.".into()
            }
        }),
        NodeError::ImportRefusedAt { line, error, .. } => ImportFailure {
            summary: "Ingenting importerades: en rad gick inte att publicera.".into(),
            lines: vec![ShownLine {
                line: *line,
                problems: vec![record_problem(kind, error)],
            }],
            more: 0,
        },
        NodeError::ImportEmpty => {
            ImportFailure::said("Ingenting importerades: filen innehåller inga poster.")
        }
        NodeError::ImportTooLarge => ImportFailure::said(format!(
            "Ingenting importerades: filen har fler än {IMPORT_RECORDS_MAX} poster; dela upp den."
        )),
        NodeError::ImportPending { .. } => ImportFailure::said(
            "Importen är godkänd men inte helt skriven än; noden gör klart den själv. Importera inte filen igen.",
        ),
        NodeError::CatchingUp { .. } | NodeError::RestoredNotCaughtUp => ImportFailure::said(
            "Ingenting importerades: noden kommer just nu ikapp sin egen logg hos aggregatorn. Försök igen om en stund.",
        ),
        NodeError::Cancelled | NodeError::Stopped => {
            ImportFailure::said("Ingenting importerades: noden stängdes av under importen.")
        }
        other => {
            tracing::warn!(error = %other, "an import from the editor failed");
            ImportFailure::said(
                "Ingenting importerades: noden kunde inte göra importen. Den som driver noden ser \
                 orsaken i nodens logg.",
            )
        }
    }
}

/// A CSV file that gave no records, in Swedish.
fn csv_failure(kind: Kind, e: CsvError) -> ImportFailure {
    let known = || import_csv::columns(kind).join(", ");
    match e {
        CsvError::NoHeader => ImportFailure::said(format!(
            "Ingenting importerades: filen har ingen rubrikrad. Första raden ska ha kolumnernas namn: {}.",
            known()
        )),
        CsvError::UnknownColumns(unknown) => ImportFailure::said(format!(
            "Ingenting importerades: {} {} i rubrikraden. Kända kolumner: {}.",
            if unknown.len() == 1 {
                "okänd kolumn"
            } else {
                "okända kolumner"
            },
            unknown
                .iter()
                .map(|u| format!("”{u}”"))
                .collect::<Vec<_>>()
                .join(", "),
            known()
        )),
        CsvError::DuplicateColumn(c) => ImportFailure::said(format!(
            "Ingenting importerades: kolumnen ”{c}” finns två gånger i rubrikraden."
        )),
        CsvError::NotUtf8 { row } => ImportFailure::said(format!(
            "Ingenting importerades: filen är inte sparad som UTF-8-text (rad {row}). Spara den som ”CSV UTF-8” i kalkylprogrammet."
        )),
        CsvError::RowTooLong { row, quoted } => ImportFailure::said(format!(
            "Ingenting importerades: rad {row} är längre än {} MiB; ingen post är så stor.{}",
            CSV_ROW_BYTES_MAX / (1024 * 1024),
            if quoted {
                " Saknas ett avslutande citattecken?"
            } else {
                ""
            }
        )),
        CsvError::TooManyCells { row, max } => ImportFailure::said(format!(
            "Ingenting importerades: rad {row} har fler än {max} celler; typen har {} kolumner.",
            import_csv::columns(kind).len()
        )),
        CsvError::UnclosedQuote { row } => ImportFailure::said(format!(
            "Ingenting importerades: citattecknet som börjar en cell på rad {row} avslutas \
             aldrig, så resten av filen skulle bli en enda cell; lägg till det avslutande \
             citattecknet."
        )),
        CsvError::TooManyRecords => ImportFailure::said(format!(
            "Ingenting importerades: filen har fler än {IMPORT_RECORDS_MAX} poster; dela upp den."
        )),
        CsvError::TooMuchJson => ImportFailure::said(format!(
            "Ingenting importerades: filen blir större än {} MiB när den omvandlas; dela upp den.",
            CSV_JSON_BYTES_MAX / (1024 * 1024)
        )),
        CsvError::Rows { invalid, rows } => ImportFailure {
            summary: format!(
                "Ingenting importerades: {invalid} {} fel.",
                if invalid == 1 { "rad är" } else { "rader är" }
            ),
            more: invalid - rows.len(),
            lines: rows
                .into_iter()
                .map(|r| ShownLine {
                    line: r.row,
                    problems: r.errors.into_iter().map(|e| problem(kind, e)).collect(),
                })
                .collect(),
        },
        CsvError::Io(e) => {
            tracing::warn!(error = %e, "a CSV import could not be read or converted");
            ImportFailure::said("Ingenting importerades: filen kunde inte läsas som CSV.")
        }
    }
}

/// Turns the CSV file at `from` into JSON Lines at `to` (mode 0600).
fn convert(kind: Kind, from: &std::path::Path, to: &std::path::Path) -> Result<u64, CsvError> {
    use std::os::unix::fs::OpenOptionsExt;
    let input = std::fs::File::open(from).map_err(CsvError::Io)?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to)
        .map_err(CsvError::Io)?;
    let mut out = std::io::BufWriter::new(out);
    let n = import_csv::csv_to_json_lines(kind, std::io::BufReader::new(input), &mut out)?;
    std::io::Write::flush(&mut out).map_err(CsvError::Io)?;
    Ok(n)
}

/// What a conversion gives back: its result, the JSON Lines file (none if the conversion
/// failed: erased then), and the permit it held.
type Converted<P> = (Result<u64, CsvError>, Option<Upload>, P);

/// Runs `work` (CSV at `file` into JSON Lines at `lines`) on a blocking thread, holding
/// `permit` until it has ended and `file` is erased, and `lines` too if it failed or nobody
/// waits for it any more (the browser went away): a request dropped meanwhile frees no place
/// for another upload while the conversion still runs.
fn convert_holding<P: Send + 'static>(
    file: Upload,
    lines: Upload,
    permit: P,
    work: impl FnOnce(&std::path::Path, &std::path::Path) -> Result<u64, CsvError> + Send + 'static,
) -> tokio::sync::oneshot::Receiver<Converted<P>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let result = work(&file.path(), &lines.path());
        file.erase_now();
        let lines = match result {
            Ok(_) => Some(lines),
            Err(_) => {
                lines.erase_now();
                None
            }
        };
        if let Err((_, lines, permit)) = tx.send((result, lines, permit)) {
            if let Some(lines) = lines {
                lines.erase_now();
            }
            drop(permit);
        }
    });
    rx
}

/// The first bytes of a received file (to tell its format).
fn head_of(path: &std::path::Path) -> Vec<u8> {
    use std::io::Read;
    let mut head = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(4096).read_to_end(&mut head);
    }
    head
}

/// The kinds a file can be imported as, with a template each.
const TEMPLATE_KINDS: [Kind; 3] = [Kind::Method, Kind::Innovation, Kind::Researcher];

/// The page's links to the templates: each kind's name and its label.
fn template_links() -> Vec<minijinja::Value> {
    TEMPLATE_KINDS
        .iter()
        .map(|k| {
            context! {
                kind => k.as_str(), label => crate::web::kind_label(k.as_str(), true),
            }
        })
        .collect()
}

impl Editor {
    fn import_page(
        &self,
        s: &Session,
        status: StatusCode,
        message: Option<String>,
        error: Option<ImportFailure>,
    ) -> Response {
        self.page(
            status,
            "editor_import.html",
            context! {
                user => s.user.clone(), csrf => s.csrf.clone(), message => message,
                error => error, max_mib => IMPORT_BYTES_MAX / (1024 * 1024),
                kinds => template_links(),
            },
        )
    }
}

pub(crate) async fn import_form(State(editor): State<Arc<Editor>>, headers: HeaderMap) -> Response {
    match require(&editor, &headers) {
        Ok(s) => editor.import_page(&s, StatusCode::OK, None, None),
        Err(r) => *r,
    }
}

/// Why an upload was not received whole (its `Display` is the Swedish the page says).
#[derive(Debug, thiserror::Error)]
enum ReceiveError {
    #[error("Filen kunde inte tas emot: {0}")]
    Create(std::io::Error),
    #[error("Filen kom inte fram hel: {0}")]
    Cut(axum::extract::multipart::MultipartError),
    #[error("Filen är större än {} MiB; dela upp den.", IMPORT_BYTES_MAX / (1024 * 1024))]
    TooLarge,
    #[error("Filen kunde inte sparas: {0}")]
    Write(std::io::Error),
}

/// Receives the file field into `path`, capped at [`IMPORT_BYTES_MAX`].
async fn receive(
    field: &mut axum::extract::multipart::Field<'_>,
    path: &std::path::Path,
) -> Result<u64, ReceiveError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(ReceiveError::Create)?;
    let mut file = tokio::fs::File::from_std(file);
    let mut got = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(ReceiveError::Cut)? {
        got += chunk.len() as u64;
        if got > IMPORT_BYTES_MAX {
            return Err(ReceiveError::TooLarge);
        }
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(ReceiveError::Write)?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(ReceiveError::Write)?;
    Ok(got)
}

pub(crate) async fn import_post(
    State(editor): State<Arc<Editor>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let mut csrf_ok = false;
    let mut kind = None;
    let dir = editor.shared.node.dir().to_path_buf();
    let mut upload: Option<(Upload, String)> = None;
    let mut failed = None;
    let mut permit = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                failed = Some(format!("Formuläret kom inte fram helt: {e}"));
                break;
            }
        };
        match field.name() {
            Some("csrf") => {
                let sent = field.text().await.unwrap_or_default();
                csrf_ok = csrf_matches(&s, &sent);
            }
            Some("kind") => {
                kind = field
                    .text()
                    .await
                    .ok()
                    .and_then(|k| k.parse::<Kind>().ok())
                    .filter(|k| TEMPLATE_KINDS.contains(k));
            }
            Some("file") => {
                // The token first: no byte of a forged upload reaches the disk.
                if !csrf_ok {
                    return forbidden(&editor, Some(&s));
                }
                if upload.is_some() {
                    failed = Some("Välj en fil i taget.".into());
                    break;
                }
                match crate::control::upload_permit() {
                    Ok(p) => permit = Some(p),
                    Err(_) => {
                        failed = Some(
                            "Två importer tas emot just nu; försök igen när de är klara.".into(),
                        );
                        break;
                    }
                }
                let shown = field.file_name().unwrap_or("filen").to_string();
                let file = Upload::new(&dir);
                let path = file.path();
                upload = Some((file, shown));
                let received = receive(&mut field, &path).await;
                if let Err(e) = received {
                    failed = Some(e.to_string());
                    break;
                }
            }
            _ => {}
        }
    }
    if !csrf_ok {
        return forbidden(&editor, Some(&s));
    }
    let (kind, (file, shown)) = match (failed, kind, upload) {
        (Some(e), _, upload) => {
            if let Some((file, _)) = upload {
                file.erase().await;
            }
            return editor.import_page(
                &s,
                StatusCode::BAD_REQUEST,
                None,
                Some(ImportFailure::said(e)),
            );
        }
        (None, None, upload) => {
            if let Some((file, _)) = upload {
                file.erase().await;
            }
            let e = ImportFailure::said("Välj vilken typ av poster filen har.");
            return editor.import_page(&s, StatusCode::BAD_REQUEST, None, Some(e));
        }
        (None, _, None) => {
            let e = ImportFailure::said("Välj en fil att importera.");
            return editor.import_page(&s, StatusCode::BAD_REQUEST, None, Some(e));
        }
        (None, Some(kind), Some(upload)) => (kind, upload),
    };
    let path = file.path();
    let shown2 = shown.clone();
    let format =
        tokio::task::spawn_blocking(move || import_csv::format_of(&shown2, &head_of(&path)))
            .await
            .unwrap_or(Format::JsonLines);
    // A CSV file is turned into JSON Lines beside it, and itself erased at once.
    let file = match format {
        Format::JsonLines => file,
        Format::Csv => {
            // Both files and the permit belong to the conversion until it ends, so a browser
            // that goes away meanwhile leaves no file behind and no third conversion starts.
            let held = permit.take();
            let converted = convert_holding(file, Upload::new(&dir), held, move |from, to| {
                convert(kind, from, to)
            })
            .await;
            match converted {
                Ok((Ok(_), Some(lines), held)) => {
                    permit = held;
                    lines
                }
                Ok((result, lines, _permit)) => {
                    if let Some(lines) = lines {
                        lines.erase().await;
                    }
                    let refused = match result {
                        Err(e) => csv_failure(kind, e),
                        Ok(_) => ImportFailure::said(
                            "Ingenting importerades: filen kunde inte läsas som CSV.",
                        ),
                    };
                    return editor.import_page(&s, StatusCode::BAD_REQUEST, None, Some(refused));
                }
                Err(e) => {
                    tracing::error!(error = %e, "converting a CSV import failed");
                    let e = "Ingenting importerades: filen kunde inte läsas som CSV.";
                    return editor.import_page(
                        &s,
                        StatusCode::BAD_REQUEST,
                        None,
                        Some(ImportFailure::said(e)),
                    );
                }
            }
        }
    };
    // The import runs on; the browser follows it on its progress page.
    let progress = Arc::new(ImportProgress::default());
    let job = ImportJob {
        kind,
        path: file.path(),
        name: shown,
        cancel: Arc::new(AtomicBool::new(false)),
        progress: Some(progress.clone()),
    };
    let id = editor.start_import(&s, progress);
    let (editor2, s2, id2) = (editor.clone(), s.clone(), id.clone());
    tokio::spawn(async move {
        let result = match editor2.shared.writer.import(job).await {
            Ok(done) => {
                editor2.note_import(&s2, kind, &done);
                let mut said = if done.imported == 1 {
                    "1 post importerad och publicerad.".to_string()
                } else {
                    format!("{} poster importerade och publicerade.", done.imported)
                };
                if done.offline {
                    said.push_str(
                        " Ingen aggregator har svarat ännu sedan noden startade: posterna skickas \
                         när förbindelsen är tillbaka. Kan en annan kopia av den här noden vara \
                         igång, be den som driver noden stoppa den först.",
                    );
                }
                Ok(said)
            }
            Err(e) => Err(failure(kind, format, &e)),
        };
        file.erase().await;
        drop(permit);
        editor2.finish_import(&id2, result);
    });
    let to = format!("/importera/{id}");
    (StatusCode::SEE_OTHER, [(axum::http::header::LOCATION, to)]).into_response()
}

/// The CSV template of a kind (`/importera/mall/{kind}.csv`): a download, not a page.
pub(crate) async fn import_template(
    State(editor): State<Arc<Editor>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let kind = file
        .strip_suffix(".csv")
        .and_then(|k| k.parse::<Kind>().ok())
        .filter(|k| TEMPLATE_KINDS.contains(k));
    let Some(kind) = kind else {
        return editor.error(
            StatusCode::NOT_FOUND,
            "Sidan finns inte",
            "Adressen leder ingenstans i redaktionen.",
            Some(&s),
        );
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"spindel-mall-{}.csv\"",
                    kind.as_str()
                ),
            ),
        ],
        import_csv::template(kind),
    )
        .into_response()
}

/// The progress page of an import (`/importera/{id}`): refreshes itself every second until
/// the import has ended, then says how it ended. Only its starter (or an admin) sees it.
pub(crate) async fn import_status(
    State(editor): State<Arc<Editor>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = or_page!(require(&editor, &headers));
    let Some(state) = editor.import_state(&id, &s) else {
        return editor.error(
            StatusCode::NOT_FOUND,
            "Importen finns inte",
            "Den importen är okänd här (sidan kan vara gammal, eller noden har startats om).",
            Some(&s),
        );
    };
    match state {
        ImportView::Running { done, total } => {
            let message = if total == 0 {
                "Raderna kontrolleras…".to_string()
            } else {
                format!("{done} av {total} poster signerade…")
            };
            editor.page(
                StatusCode::OK,
                "editor_import.html",
                context! {
                    user => s.user.clone(), csrf => s.csrf.clone(), running => message,
                    max_mib => IMPORT_BYTES_MAX / (1024 * 1024), kinds => template_links(),
                },
            )
        }
        ImportView::Ended(Ok(message)) => {
            editor.import_page(&s, StatusCode::OK, Some(message), None)
        }
        ImportView::Ended(Err(error)) => {
            editor.import_page(&s, StatusCode::BAD_REQUEST, None, Some(error))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::local::ImportLineError;
    use spindel_protocol::entry::RecordId;

    /// Every way the node refuses an import is said in Swedish, without the CLI's English or
    /// its commands.
    #[test]
    fn every_import_refusal_is_said_in_swedish() {
        let rid = RecordId([1; 16]);
        let file = |problem| NodeError::ImportFile {
            name: "f".into(),
            problem,
        };
        let lines = |errors: Vec<LineError>| NodeError::ImportInvalid {
            invalid: errors.len() + 2,
            lines: errors
                .into_iter()
                .enumerate()
                .map(|(i, error)| ImportLineError { line: i + 1, error })
                .collect(),
        };
        let cases = [
            (file(ImportFileProblem::TooLarge), "större än 64 MiB"),
            (
                file(ImportFileProblem::LineTooLong(7)),
                "rad 7 är längre än 1 MiB",
            ),
            (file(ImportFileProblem::NotUtf8(3)), "UTF-8"),
            (NodeError::ImportEmpty, "inga poster"),
            (NodeError::ImportTooLarge, "fler än 1000000 poster"),
            (
                NodeError::ImportRefusedAt {
                    name: "f".into(),
                    line: 4,
                    error: Box::new(NodeError::Refused(Refusal::PayloadQuota { would: 9 })),
                },
                "mer än de",
            ),
            (
                lines(vec![
                    LineError::JsonArray,
                    LineError::RecordIdTwice {
                        record_id: rid,
                        first: 1,
                    },
                    LineError::Record(NodeError::KindMismatch {
                        record_id: rid,
                        stored: Kind::Innovation,
                        given: Kind::Method,
                    }),
                    LineError::Record(NodeError::Deleted(rid)),
                    LineError::Record(NodeError::TooLarge(70_000)),
                ]),
                "och",
            ),
            (NodeError::AggregatorAuthors, "nodens logg"),
        ];
        for (e, says) in cases {
            let f = failure(Kind::Method, Format::JsonLines, &e);
            let all = format!(
                "{} {:?} och {}",
                f.summary,
                f.lines
                    .iter()
                    .flat_map(|l| l.problems.iter().map(|p| p.message.clone()))
                    .collect::<Vec<_>>(),
                f.more
            );
            assert!(all.contains(says), "{e}: {all}");
            assert!(
                f.summary.starts_with("Ingenting importerades"),
                "{e}: {all}"
            );
            for english in ["line", "record", "spindel", "nothing"] {
                assert!(!all.contains(english), "{e}: {all}");
            }
        }
        let f = failure(
            Kind::Method,
            Format::JsonLines,
            &lines(vec![LineError::Record(NodeError::KindMismatch {
                record_id: rid,
                stored: Kind::Innovation,
                given: Kind::Method,
            })]),
        );
        assert_eq!(f.more, 2);
        assert_eq!(
            f.lines[0].problems[0].label.as_deref(),
            Some("Postens id (record_id)")
        );
    }

    /// A conversion holds its permit until it has ended and erased its files, also when the
    /// request that started it is gone (the browser went away): no place for another upload
    /// is free while it still runs.
    #[tokio::test]
    async fn a_conversion_holds_its_permit_until_it_has_ended_and_erased_its_files() {
        for fails in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let places = Arc::new(tokio::sync::Semaphore::new(1));
            let permit = places.clone().try_acquire_owned().unwrap();
            let (file, lines) = (Upload::new(dir.path()), Upload::new(dir.path()));
            std::fs::write(file.path(), "title;summary\nA;S\n").unwrap();
            let (go, wait) = std::sync::mpsc::channel::<()>();
            let converted = convert_holding(file, lines, permit, move |from, to| {
                wait.recv().unwrap();
                let n = convert(Kind::Method, from, to)?;
                if fails {
                    return Err(CsvError::TooManyRecords);
                }
                Ok(n)
            });
            // The browser goes away while the conversion runs.
            drop(converted);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert_eq!(places.available_permits(), 0, "held while converting");
            go.send(()).unwrap();
            let again = tokio::time::timeout(std::time::Duration::from_secs(10), places.acquire())
                .await
                .unwrap()
                .unwrap();
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert!(left.is_empty(), "fails {fails}: left {left:?}");
            drop(again);
        }
    }

    #[test]
    fn labels_are_the_forms_with_the_name_in_the_file() {
        assert_eq!(
            label(Kind::Innovation, "sroi.ratio"),
            "SROI-kvot (sroi.ratio)"
        );
        assert_eq!(
            label(Kind::Researcher, "date"),
            "Samtyckets datum (consent.date)"
        );
        assert_eq!(label(Kind::Method, "titel"), "titel");
        assert_eq!(
            json_names(Kind::Researcher),
            "name, affiliation, fields, email, phone, consent, record_id"
        );
    }
}
