//! The editor's import page (`/importera`): a JSON Lines file uploaded from the browser is
//! received into the data directory as it arrives (never held in memory; at most
//! [`IMPORT_BYTES_MAX`]), imported by the node's writer with the all-or-nothing rule of
//! `spindel import`, and erased. The form's CSRF token must come before the file.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use spindel_protocol::record::Kind;
use tokio::io::AsyncWriteExt;

use crate::editor::{Editor, ImportView, Session, csrf_matches, forbidden, or_page, require};
use crate::local::IMPORT_BYTES_MAX;
use crate::writer::{ImportJob, ImportProgress};

/// A received upload, erased (zeros first) however the request ends: imported, refused, or
/// dropped because the browser went away mid-upload.
struct Upload {
    dir: std::path::PathBuf,
    name: String,
}

impl Upload {
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

impl Editor {
    fn import_page(
        &self,
        s: &Session,
        status: StatusCode,
        message: Option<String>,
        error: Option<String>,
    ) -> Response {
        self.page(
            status,
            "editor_import.html",
            context! {
                user => s.user.clone(), csrf => s.csrf.clone(), message => message,
                error => error, max_mib => IMPORT_BYTES_MAX / (1024 * 1024),
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

/// Receives the file field into `path`, capped; `Err` says why in Swedish.
async fn receive(
    field: &mut axum::extract::multipart::Field<'_>,
    path: &std::path::Path,
) -> Result<u64, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("Filen kunde inte tas emot: {e}"))?;
    let mut file = tokio::fs::File::from_std(file);
    let mut got = 0u64;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| format!("Filen kom inte fram hel: {e}"))?
    {
        got += chunk.len() as u64;
        if got > IMPORT_BYTES_MAX {
            return Err(format!(
                "Filen är större än {} MiB; dela upp den.",
                IMPORT_BYTES_MAX / (1024 * 1024)
            ));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("Filen kunde inte sparas: {e}"))?;
    }
    file.flush()
        .await
        .map_err(|e| format!("Filen kunde inte sparas: {e}"))?;
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
    let mut _permit = None;
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
                kind = field.text().await.ok().and_then(|k| k.parse::<Kind>().ok());
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
                    Ok(p) => _permit = Some(p),
                    Err(_) => {
                        failed = Some(
                            "Två importer tas emot just nu; försök igen när de är klara.".into(),
                        );
                        break;
                    }
                }
                let shown = field.file_name().unwrap_or("filen").to_string();
                let name = crate::control::upload_name();
                let path = dir.join(&name);
                upload = Some((
                    Upload {
                        dir: dir.clone(),
                        name,
                    },
                    shown,
                ));
                let received = receive(&mut field, &path).await;
                if let Err(e) = received {
                    failed = Some(e);
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
            return editor.import_page(&s, StatusCode::BAD_REQUEST, None, Some(e));
        }
        (None, None, upload) => {
            if let Some((file, _)) = upload {
                file.erase().await;
            }
            let e = "Välj vilken typ av poster filen har.".to_string();
            return editor.import_page(&s, StatusCode::BAD_REQUEST, None, Some(e));
        }
        (None, _, None) => {
            let e = "Välj en fil att importera.".to_string();
            return editor.import_page(&s, StatusCode::BAD_REQUEST, None, Some(e));
        }
        (None, Some(kind), Some(upload)) => (kind, upload),
    };
    // The import runs on; the browser follows it on its progress page.
    let progress = Arc::new(ImportProgress::default());
    let job = ImportJob {
        kind,
        path: dir.join(&file.name),
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
                Ok(format!(
                    "{} poster importerade och publicerade (version {}–{}).",
                    done.imported, done.first_seq, done.last_seq
                ))
            }
            Err(e) => Err(format!("Ingenting importerades: {e}")),
        };
        file.erase().await;
        drop(_permit);
        editor2.finish_import(&id2, result);
    });
    let to = format!("/importera/{id}");
    (StatusCode::SEE_OTHER, [(axum::http::header::LOCATION, to)]).into_response()
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
                    max_mib => IMPORT_BYTES_MAX / (1024 * 1024),
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
