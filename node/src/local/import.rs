//! `spindel import`: many records from JSON Lines, all or nothing, in bounded memory.
//!
//! One sled batch of a whole import kept every page version it wrote until it ended (a 50 MB
//! file took 4 GiB), so an import is written in steps, with one commit point:
//!
//! 1. **Validate** every line; nothing is kept but the ids lines name.
//! 2. **Stage**: under the own-log lock each line is parsed again, sealed, signed and appended
//!    to `DIR/import.staging` (`u32` BE length, bincode [`SyncEntry`]; mode 0600). Nothing in
//!    the store changes. A cancel, an error or a crash here leaves the store as it was; the
//!    file is erased (by the failing import, or by the next open).
//! 3. **Commit**: the staged file is synced and renamed to `DIR/import.committed`, and the
//!    directory synced. From here the import happens, whatever comes.
//! 4. **Apply** the committed entries to the store in atomic writes of
//!    [`IMPORT_CHUNK_ENTRIES`], then erase the file. A crash in this step is finished when the
//!    node next opens (entries up to the own head are skipped), and the own log signs nothing
//!    new until it is: its next seq follows the import's last.
//!
//! While step 4 runs, a reader may see part of an import that is already committed; it never
//! sees part of one that could still be undone. The staged file holds the records' content
//! (researcher contacts among them), so it is overwritten with zeros before it is removed,
//! like a purged payload.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rand_core::CryptoRngCore;
use spindel_protocol::codec;
use spindel_protocol::entry::{
    Entry, Head, PAYLOAD_BYTES_MAX, Payload, RecordId, WIRE_ENTRY_BYTES_MAX, next_header,
};
use spindel_protocol::record::{Kind, SchemaError};
use spindel_protocol::sync::SyncEntry;

use super::{
    IMPORT_ERRORS_SHOWN, IMPORT_RECORDS_MAX, Imported, LocalNode, NodeError, Role, io_err,
    split_record_id,
};
use crate::store::Incoming;

/// Signed entries of an import that has not reached its commit point.
pub const IMPORT_STAGING: &str = "import.staging";
/// Signed entries of a committed import, until all are in the store.
pub const IMPORT_COMMITTED: &str = "import.committed";
/// Entries applied to the store per atomic write while an import is applied: the memory of
/// one write is bounded by it, whatever the size of the import.
pub const IMPORT_CHUNK_ENTRIES: usize = 1000;
/// Largest staged item read back (an entry with a full payload, and its framing).
const STAGED_ITEM_BYTES_MAX: usize = PAYLOAD_BYTES_MAX + WIRE_ENTRY_BYTES_MAX + 64;
/// Progress is reported every this many signed records.
const PROGRESS_EVERY: u64 = 1000;
/// Largest import file (`spindel import --file`), whether or not a node runs.
pub const IMPORT_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Longest line of an import file (a record is at most 64 KiB encoded; JSON escapes can
/// make its line longer).
pub const IMPORT_LINE_BYTES_MAX: usize = 1024 * 1024;
/// The file an import through the control channel is received into, with a number added;
/// erased after the import, and on open.
pub const IMPORT_UPLOAD: &str = "import.upload";

/// The lines of an import. They are read twice (validated, then signed), so a file is read
/// from disk each time rather than held in memory.
#[derive(Debug, Clone, Copy)]
pub enum ImportSource<'a> {
    Text(&'a str),
    /// A file on disk, named in errors by `name`.
    File {
        path: &'a Path,
        name: &'a str,
    },
}

impl ImportSource<'_> {
    /// Calls `each(line_number, line)` for every line (1-based; without its line ending, a
    /// leading byte-order mark dropped), stopping at the first error.
    fn for_each_line(
        &self,
        each: &mut dyn FnMut(usize, &str) -> Result<(), NodeError>,
    ) -> Result<(), NodeError> {
        let (path, name) = match *self {
            ImportSource::Text(text) => {
                let text = text.strip_prefix('\u{feff}').unwrap_or(text);
                for (i, line) in text.lines().enumerate() {
                    each(i + 1, line)?;
                }
                return Ok(());
            }
            ImportSource::File { path, name } => (path, name),
        };
        let bad = |reason: String| NodeError::BadInput {
            name: name.to_string(),
            reason,
        };
        let file = File::open(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut read = 0u64;
        for number in 1.. {
            line.clear();
            let n = (&mut reader)
                .take(IMPORT_LINE_BYTES_MAX as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| bad(format!("cannot read it: {e}")))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            if read > IMPORT_BYTES_MAX {
                return Err(bad(format!("over the limit of {IMPORT_BYTES_MAX} bytes")));
            }
            if line.len() > IMPORT_LINE_BYTES_MAX {
                return Err(bad(format!(
                    "line {number} is over the limit of {IMPORT_LINE_BYTES_MAX} bytes"
                )));
            }
            let mut body = line.strip_suffix(b"\n").unwrap_or(&line);
            body = body.strip_suffix(b"\r").unwrap_or(body);
            if number == 1 {
                body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
            }
            let text = std::str::from_utf8(body).map_err(|_| {
                bad(format!(
                    "not UTF-8 text: line {number} holds bytes that are not (save the file as UTF-8)"
                ))
            })?;
            each(number, text)?;
        }
        Ok(())
    }
}

/// Fault injection for the crash tests only: the process aborts at this point of an import
/// (as a `kill -9` there would). The CLI sets it from `SPINDEL_FAULT_INJECT`.
pub static IMPORT_FAULT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// The points of an import where [`IMPORT_FAULT`] aborts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ImportFault {
    /// Everything staged and synced, before the commit point.
    Staged = 1,
    /// Right after the commit point, nothing applied.
    Committed = 2,
    /// After the first chunk was applied.
    Applying = 3,
}

impl ImportFault {
    /// `abort-import-staged`, `abort-import-committed`, `abort-import-applying`.
    pub fn named(name: &str) -> Option<ImportFault> {
        match name {
            "abort-import-staged" => Some(ImportFault::Staged),
            "abort-import-committed" => Some(ImportFault::Committed),
            "abort-import-applying" => Some(ImportFault::Applying),
            _ => None,
        }
    }
}

fn fault(at: ImportFault) {
    if IMPORT_FAULT.load(Ordering::Relaxed) == at as u8 {
        std::process::abort();
    }
}

/// Syncs a directory, so a rename or removal in it is durable.
fn sync_dir(dir: &Path) -> Result<(), NodeError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Overwrites a file with zeros, syncs it and removes it (a missing file is fine).
pub fn erase_file(dir: &Path, name: &str) -> Result<(), NodeError> {
    let path = dir.join(name);
    let mut file = match OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let len = file.metadata().map_err(io_err(&path))?.len();
    let zeros = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n]).map_err(io_err(&path))?;
        left -= n as u64;
    }
    file.sync_data().map_err(io_err(&path))?;
    drop(file);
    fs::remove_file(&path).map_err(io_err(&path))?;
    sync_dir(dir)
}

/// Reads the next staged entry, or `None` at the end of the file.
fn read_staged(reader: &mut impl Read, path: &Path) -> Result<Option<SyncEntry>, NodeError> {
    let bad = |reason: String| NodeError::Config {
        path: path.to_path_buf(),
        reason: format!("a committed import that cannot be read: {reason}"),
    };
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > STAGED_ITEM_BYTES_MAX {
        return Err(bad(format!(
            "an item of {len} bytes, over the limit of {STAGED_ITEM_BYTES_MAX}"
        )));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => bad("it ends inside an item".into()),
        _ => io_err(path)(e),
    })?;
    codec::decode::<SyncEntry, STAGED_ITEM_BYTES_MAX>("staged entry", &body)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

impl LocalNode {
    /// Bulk publish from JSON Lines, all or nothing: every line is validated first and nothing
    /// is written if any is invalid; then all are signed and committed together (see the
    /// module documentation). `progress(done, total)` is called while signing.
    pub fn import(
        &self,
        kind: Kind,
        source: ImportSource<'_>,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Imported, NodeError> {
        self.import_cancellable(kind, source, rng, now_ms, progress, &AtomicBool::new(false))
    }

    /// [`LocalNode::import`] that stops with [`NodeError::Cancelled`], writing nothing, once
    /// `cancel` is set before its commit point (the asker went away: Ctrl-C).
    pub fn import_cancellable(
        &self,
        kind: Kind,
        source: ImportSource<'_>,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
        progress: &dyn Fn(u64, u64),
        cancel: &AtomicBool,
    ) -> Result<Imported, NodeError> {
        if self.config.role == Role::Aggregator {
            return Err(NodeError::AggregatorAuthors);
        }
        if kind == Kind::Profile {
            return Err(NodeError::ProfileId(
                "import cannot create profiles; use `publish --kind profile`".into(),
            ));
        }
        let total = self.validate_import(kind, source, rng)?;
        let _writer = self.own_log_writer()?;
        if cancel.load(Ordering::Acquire) {
            return Err(NodeError::Cancelled);
        }
        let staged = self
            .stage_import(kind, source, total, rng, now_ms, progress, cancel)
            .and_then(|imported| {
                fault(ImportFault::Staged);
                // The commit point: past it a cancel changes nothing.
                if cancel.load(Ordering::Acquire) {
                    return Err(NodeError::Cancelled);
                }
                let from = self.dir.join(IMPORT_STAGING);
                let to = self.dir.join(IMPORT_COMMITTED);
                fs::rename(&from, &to).map_err(io_err(&from))?;
                Ok(imported)
            });
        let imported = match staged {
            Ok(imported) => imported,
            Err(e) => {
                if let Err(erase) = erase_file(&self.dir, IMPORT_STAGING) {
                    tracing::error!(error = %erase, "removing the staged entries of a failed import failed; removed at next open");
                }
                return Err(e);
            }
        };
        sync_dir(&self.dir)?;
        fault(ImportFault::Committed);
        self.apply_committed_import()?;
        Ok(imported)
    }

    /// Step 1: checks every line (schema, consent, sizes, named record ids) and returns the
    /// count of records.
    fn validate_import(
        &self,
        kind: Kind,
        source: ImportSource<'_>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<u64, NodeError> {
        let mut count = 0usize;
        let mut errors = Vec::new();
        let mut invalid = 0usize;
        let mut named: HashMap<RecordId, usize> = HashMap::new();
        source.for_each_line(&mut |number, line| {
            if line.trim().is_empty() {
                return Ok(());
            }
            if count + invalid >= IMPORT_RECORDS_MAX {
                return Err(NodeError::ImportTooLarge);
            }
            let checked = if line.trim_start().starts_with('[') {
                Err(NodeError::Schema(SchemaError(
                    "a JSON array; import takes JSON Lines, one record object per line \
                     (`jq -c '.[]' FILE` turns an array into lines)"
                        .into(),
                )))
            } else {
                // A line may name an own record to publish a new version of it, so running
                // an edited file again updates instead of duplicating.
                split_record_id(line).and_then(|(given, body)| {
                    if let Some(rid) = given
                        && let Some(first) = named.insert(rid, number)
                    {
                        return Err(NodeError::Schema(SchemaError(format!(
                            "record_id {rid} is also on line {first}"
                        ))));
                    }
                    self.prepare(kind, &body)?;
                    if given.is_some() {
                        self.target_record(kind, given, rng)?;
                    }
                    Ok(())
                })
            };
            match checked {
                Ok(()) => count += 1,
                Err(e) => {
                    invalid += 1;
                    if errors.len() < IMPORT_ERRORS_SHOWN {
                        errors.push(format!("line {number}: {e}"));
                    }
                }
            }
            Ok(())
        })?;
        if invalid > 0 {
            let mut details = errors.join("; ");
            if invalid > errors.len() {
                details.push_str(&format!("; and {} more", invalid - errors.len()));
            }
            return Err(NodeError::ImportInvalid { invalid, details });
        }
        if count == 0 {
            return Err(NodeError::ImportEmpty);
        }
        Ok(count as u64)
    }

    /// Step 2 (under the own-log lock): signs every line into `DIR/import.staging`, synced.
    #[allow(clippy::too_many_arguments)]
    fn stage_import(
        &self,
        kind: Kind,
        source: ImportSource<'_>,
        total: u64,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
        progress: &dyn Fn(u64, u64),
        cancel: &AtomicBool,
    ) -> Result<Imported, NodeError> {
        let path = self.dir.join(IMPORT_STAGING);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut out = BufWriter::new(file);
        let me = self.node_id();
        let mut head = self.store.head(&me)?;
        let now_ms = self.own_time(now_ms, head)?;
        let first_seq = head.map_or(0, |h| h.seq) + 1;
        let mut done = 0u64;
        source.for_each_line(&mut |_, line| {
            if line.trim().is_empty() {
                return Ok(());
            }
            if cancel.load(Ordering::Acquire) {
                return Err(NodeError::Cancelled);
            }
            // Validated in step 1; a record named there may have been deleted since.
            let (given, body) = split_record_id(line)?;
            let record = self.prepare(kind, &body)?;
            let rid = self.target_record(kind, given, rng)?;
            let payload = Payload::seal(rng, record.to_json());
            if payload.len() > PAYLOAD_BYTES_MAX {
                return Err(NodeError::TooLarge(payload.len()));
            }
            let header = next_header(me, head, now_ms, kind, rid, Some(&payload));
            let entry = Entry::sign(&self.key, header);
            head = Some(Head {
                seq: entry.header().seq,
                hash: entry.hash(),
            });
            let item = codec::encode(&SyncEntry {
                entry: entry.to_wire(),
                payload: Some(payload),
            });
            out.write_all(&(item.len() as u32).to_be_bytes())
                .and_then(|()| out.write_all(&item))
                .map_err(io_err(&path))?;
            done += 1;
            if done.is_multiple_of(PROGRESS_EVERY) || done == total {
                progress(done, total);
            }
            Ok(())
        })?;
        let file = out
            .into_inner()
            .map_err(|e| io_err(&path)(e.into_error()))?;
        file.sync_all().map_err(io_err(&path))?;
        Ok(Imported {
            imported: done,
            first_seq,
            last_seq: head.map_or(0, |h| h.seq),
        })
    }

    /// Step 4 (under the own-log lock, or while opening): applies a committed import's entries
    /// that are not in the store yet, chunk by chunk, then erases the file. Returns how many
    /// were applied, or `None` when no import was pending.
    pub(super) fn apply_committed_import(&self) -> Result<Option<u64>, NodeError> {
        let path = self.dir.join(IMPORT_COMMITTED);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut reader = BufReader::new(file);
        let me = self.node_id();
        let head = self.store.head(&me)?.map_or(0, |h| h.seq);
        let mut chunk = Vec::with_capacity(IMPORT_CHUNK_ENTRIES);
        let mut applied = 0u64;
        let unusable = |e: &dyn std::fmt::Display| NodeError::Config {
            path: path.clone(),
            reason: format!("a committed import that cannot be applied: {e}"),
        };
        loop {
            let staged = read_staged(&mut reader, &path)?;
            let at_end = staged.is_none();
            if let Some(staged) = staged {
                let entry = Entry::from_wire(staged.entry).map_err(|e| unusable(&e))?;
                if entry.header().author != me {
                    return Err(unusable(&"an entry of another author"));
                }
                // Applied before a crash interrupted this step.
                if entry.header().seq <= head {
                    continue;
                }
                chunk.push(Incoming {
                    entry,
                    payload: staged.payload,
                });
                if chunk.len() < IMPORT_CHUNK_ENTRIES {
                    continue;
                }
            }
            if !chunk.is_empty() {
                // The entries were signed with the clock of their import; a clock that went
                // back since must not refuse them as from the future.
                let newest = chunk
                    .iter()
                    .map(|i| i.entry.header().timestamp_ms)
                    .max()
                    .unwrap_or(0);
                applied += chunk.len() as u64;
                self.apply_own(std::mem::take(&mut chunk), super::now_ms().max(newest))
                    .map_err(|e| unusable(&e))?;
                tracing::debug!(applied, "applied a chunk of a committed import");
                fault(ImportFault::Applying);
            }
            if at_end {
                break;
            }
        }
        drop(reader);
        erase_file(&self.dir, IMPORT_COMMITTED)?;
        Ok(Some(applied))
    }

    /// On open: an import that did not reach its commit point is dropped, one that did is
    /// finished.
    pub(super) fn recover_import(&self) -> Result<(), NodeError> {
        for item in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let name = item.map_err(io_err(&self.dir))?.file_name();
            if let Some(name) = name.to_str().filter(|n| n.starts_with(IMPORT_UPLOAD)) {
                erase_file(&self.dir, name)?;
            }
        }
        if self.dir.join(IMPORT_STAGING).exists() {
            tracing::warn!(
                "an import was interrupted before its commit point; nothing of it was written, its staged entries are removed"
            );
            erase_file(&self.dir, IMPORT_STAGING)?;
        }
        if let Some(applied) = self.apply_committed_import()? {
            tracing::warn!(
                entries = applied,
                "an import was interrupted after its commit point; it is finished now"
            );
        }
        Ok(())
    }
}
