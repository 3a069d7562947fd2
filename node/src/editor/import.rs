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
use std::time::Instant;

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use spindel_protocol::record::Kind;

use super::auth::{csrf_matches, require};
use super::page::{
    Editor, IMPORTS_KEPT, ImportState, ImportView, Session, forbidden, lock, or_page,
};
use crate::import_csv::{self, CsvError, Format};
use crate::local::IMPORT_BYTES_MAX;
use crate::read::Reads;
use crate::staff::token;
use crate::users::{AuditEntry, StaffRole};
use crate::words::{self, ImportFailure, csv_failure, failure};
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

/// The kinds a file can be imported as, with a template each: every kind a region holds
/// many of.
const TEMPLATE_KINDS: [Kind; 6] = super::page::POST_KINDS;

/// The page's links to the templates: each kind's name and its label.
fn template_links() -> Vec<minijinja::Value> {
    TEMPLATE_KINDS
        .iter()
        .map(|k| {
            context! {
                kind => k.as_str(), label => words::kind_label(k.as_str(), true),
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
    #[error("{w}{0}", w = words::UPLOAD_NOT_RECEIVED)]
    Create(std::io::Error),
    #[error("{w}{0}", w = words::UPLOAD_CUT)]
    Cut(axum::extract::multipart::MultipartError),
    #[error("{}", words::upload_too_large(IMPORT_BYTES_MAX / (1024 * 1024)))]
    TooLarge,
    #[error("{w}{0}", w = words::UPLOAD_NOT_SAVED)]
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
                failed = Some(words::form_cut(&e));
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
                    failed = Some(words::ONE_FILE_AT_A_TIME.into());
                    break;
                }
                match editor.shared.uploads.permit() {
                    Ok(p) => permit = Some(p),
                    Err(_) => {
                        failed = Some(words::TWO_IMPORTS_RUNNING.into());
                        break;
                    }
                }
                let shown = field.file_name().unwrap_or(words::THE_FILE).to_string();
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
            let e = ImportFailure::said(words::CHOOSE_KIND);
            return editor.import_page(&s, StatusCode::BAD_REQUEST, None, Some(e));
        }
        (None, _, None) => {
            let e = ImportFailure::said(words::CHOOSE_FILE);
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
                        Ok(_) => ImportFailure::said(words::CSV_UNREADABLE),
                    };
                    return editor.import_page(&s, StatusCode::BAD_REQUEST, None, Some(refused));
                }
                Err(e) => {
                    tracing::error!(error = %e, "converting a CSV import failed");
                    let e = words::CSV_UNREADABLE;
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
                let mut said = words::imported(done.imported);
                if done.unchanged > 0 {
                    said.push_str(&words::imported_unchanged(done.unchanged));
                }
                if done.offline {
                    said.push_str(words::IMPORTED_OFFLINE);
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
            words::NO_SUCH_PAGE,
            words::NOWHERE_IN_THE_EDITOR,
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
            words::NO_SUCH_IMPORT,
            words::IMPORT_UNKNOWN,
            Some(&s),
        );
    };
    match state {
        ImportView::Running { done, total } => {
            let message = if total == 0 {
                words::CHECKING_LINES.to_string()
            } else {
                words::signed_of(done, total)
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

impl Editor {
    /// Registers an import for its progress page; returns its id. The oldest are forgotten
    /// beyond [`IMPORTS_KEPT`].
    pub(crate) fn start_import(
        &self,
        s: &Session,
        progress: Arc<crate::writer::ImportProgress>,
    ) -> String {
        let mut imports = lock(&self.imports);
        while imports.len() >= IMPORTS_KEPT {
            let oldest = imports
                .iter()
                .min_by_key(|(_, st)| st.started)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => imports.remove(&k),
                None => break,
            };
        }
        let id = token()[..32].to_string();
        imports.insert(
            id.clone(),
            ImportState {
                user: s.user.clone(),
                progress,
                result: None,
                started: Instant::now(),
            },
        );
        id
    }

    pub(crate) fn finish_import(&self, id: &str, result: Result<String, ImportFailure>) {
        if let Some(st) = lock(&self.imports).get_mut(id) {
            st.result = Some(result);
        }
    }

    /// How an import stands, for its starter or an admin.
    pub(crate) fn import_state(&self, id: &str, s: &Session) -> Option<ImportView> {
        let imports = lock(&self.imports);
        let st = imports.get(id)?;
        if st.user != s.user && s.role != StaffRole::Admin {
            return None;
        }
        Some(match &st.result {
            Some(r) => ImportView::Ended(r.clone()),
            None => {
                let (done, total) = st.progress.get();
                ImportView::Running { done, total }
            }
        })
    }

    pub(crate) fn note_import(&self, s: &Session, kind: Kind, done: &crate::local::Imported) {
        let mut e = AuditEntry::new(&s.user, "import", crate::local::now_ms());
        e.kind = Some(kind.as_str().to_string());
        e.seq = Some(done.last_seq);
        e.detail = Some(words::import_detail(
            done.imported,
            done.first_seq,
            done.last_seq,
        ));
        self.staff().note(&e);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
}
