//! `spindel import`: many records from JSON Lines, all or nothing, in bounded memory.
//!
//! One sled batch of a whole import kept every page version it wrote until it ended (a 50 MB
//! file took 4 GiB), so an import is written in steps, with one commit point:
//!
//! 1. **Validate** every line; nothing is kept but the ids lines name.
//! 2. **Stage**: under the own-log lock each line is parsed again, sealed, signed and appended
//!    to `DIR/import.staging` (a magic, then per entry a `u32` BE length and the bincode
//!    [`SyncEntry`]; then a `u32` 0 and the
//!    `u64` count of entries, so a cut file is told from a whole one; mode 0600). The author's
//!    limits are checked as the store will check them (payload bytes of current versions,
//!    entries), and the lines must be the ones validated (a digest of both passes). Nothing in
//!    the store changes. A cancel, an error or a crash here leaves the store as it was; the
//!    file is erased (by the failing import, or by the next open).
//! 3. **Commit**: the staged file is synced and renamed to `DIR/import.committed`, and the
//!    directory synced. From here the import happens, whatever comes.
//! 4. **Apply** the committed entries to the store in atomic writes of
//!    [`IMPORT_CHUNK_ENTRIES`], then rename the file to `DIR/import.applied` and erase it. A
//!    crash while applying is finished when the node next opens (entries up to the own head are
//!    skipped), and the own log signs nothing new until it is: its next seq follows the
//!    import's last. A crash while erasing leaves `import.applied`, which the next open erases
//!    without reading.
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
use sha2::{Digest, Sha256};
use spindel_protocol::codec;
use spindel_protocol::entry::{
    Entry, Head, PAYLOAD_BYTES_MAX, Payload, RecordId, WIRE_ENTRY_BYTES_MAX, next_header,
};
use spindel_protocol::ingest::{AUTHOR_ENTRIES_MAX, AUTHOR_PAYLOAD_BYTES_MAX, Refusal};
use spindel_protocol::record::{Kind, Record};
use spindel_protocol::sync::SyncEntry;

use super::dir::Role;
use super::error::{
    IMPORT_ERRORS_SHOWN, IMPORT_FILE_BYTES_MAX, IMPORT_LINE_BYTES_MAX, IMPORT_RECORDS_MAX,
    ImportFileProblem, ImportLineError, LineError, NodeError, io_err,
};
use super::node::{LocalNode, now_ms};
use super::reports::Imported;
use crate::store::Incoming;

mod lines;
use lines::import_line;

/// Signed entries of an import that has not reached its commit point.
pub const IMPORT_STAGING: &str = "import.staging";
/// Signed entries of a committed import, until all are in the store.
pub const IMPORT_COMMITTED: &str = "import.committed";
/// A committed import whose entries are all in the store, while it is erased.
pub const IMPORT_APPLIED: &str = "import.applied";
/// Entries applied to the store per atomic write while an import is applied: the memory of
/// one write is bounded by it, whatever the size of the import.
pub const IMPORT_CHUNK_ENTRIES: usize = 1000;
/// Largest staged item read back (an entry with a full payload, and its framing).
const STAGED_ITEM_BYTES_MAX: usize = PAYLOAD_BYTES_MAX + WIRE_ENTRY_BYTES_MAX + 64;
/// The first bytes of a staged import file (a file of zeros, left by a disk that lost it, is
/// told from an empty import).
const STAGED_MAGIC: &[u8; 8] = b"spndlim1";
/// Progress is reported every this many signed records.
const PROGRESS_EVERY: u64 = 1000;
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
    /// How errors name the input.
    fn name(&self) -> &str {
        match self {
            ImportSource::Text(_) => "the input",
            ImportSource::File { name, .. } => name,
        }
    }

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
        let bad = |problem: ImportFileProblem| NodeError::ImportFile {
            name: name.to_string(),
            problem,
        };
        let file = File::open(path).map_err(|e| bad(ImportFileProblem::Unreadable(e)))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut read = 0u64;
        for number in 1.. {
            line.clear();
            let n = (&mut reader)
                .take(IMPORT_LINE_BYTES_MAX as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| bad(ImportFileProblem::Unreadable(e)))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            if read > IMPORT_FILE_BYTES_MAX {
                return Err(bad(ImportFileProblem::TooLarge));
            }
            if line.len() > IMPORT_LINE_BYTES_MAX {
                return Err(bad(ImportFileProblem::LineTooLong(number)));
            }
            let mut body = line.strip_suffix(b"\n").unwrap_or(&line);
            body = body.strip_suffix(b"\r").unwrap_or(body);
            if number == 1 {
                body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
            }
            let text =
                std::str::from_utf8(body).map_err(|_| bad(ImportFileProblem::NotUtf8(number)))?;
            each(number, text)?;
        }
        Ok(())
    }
}

/// Whether `name` is one [`IMPORT_UPLOAD`] gives a received file (`import.upload.N`).
pub fn is_upload_name(name: &str) -> bool {
    name.strip_prefix(IMPORT_UPLOAD)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
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
    /// Everything applied, the file renamed to [`IMPORT_APPLIED`], not erased yet.
    Erasing = 4,
}

impl ImportFault {
    /// `abort-import-staged`, `abort-import-committed`, `abort-import-applying`,
    /// `abort-import-erasing`.
    pub fn named(name: &str) -> Option<ImportFault> {
        match name {
            "abort-import-staged" => Some(ImportFault::Staged),
            "abort-import-committed" => Some(ImportFault::Committed),
            "abort-import-applying" => Some(ImportFault::Applying),
            "abort-import-erasing" => Some(ImportFault::Erasing),
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

/// One item of a staged import file.
enum Staged {
    Entry(Box<SyncEntry>),
    /// The trailer: how many entries the file holds.
    End(u64),
}

/// Writes the trailer of a staged import file after its `count` entries.
fn write_trailer(out: &mut impl Write, count: u64) -> std::io::Result<()> {
    out.write_all(&0u32.to_be_bytes())?;
    out.write_all(&count.to_be_bytes())
}

/// A committed import file that cannot be read, and the way out.
fn bad_staged(path: &Path, reason: String) -> NodeError {
    NodeError::Config {
        path: path.to_path_buf(),
        reason: format!(
            "a committed import that cannot be read: {reason}. Records of it already applied stay; \
             to give up the rest, remove this file (nothing of it was sent anywhere)"
        ),
    }
}

/// Reads the next item of a staged import file. A file that ends before its trailer was cut.
fn read_staged(reader: &mut impl Read, path: &Path) -> Result<Staged, NodeError> {
    let bad = |reason: String| bad_staged(path, reason);
    let cut = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => bad("it ends before its last item".into()),
        _ => io_err(path)(e),
    };
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).map_err(cut)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        let mut count = [0u8; 8];
        reader.read_exact(&mut count).map_err(cut)?;
        return Ok(Staged::End(u64::from_be_bytes(count)));
    }
    if len > STAGED_ITEM_BYTES_MAX {
        return Err(bad(format!(
            "an item of {len} bytes, over the limit of {STAGED_ITEM_BYTES_MAX}"
        )));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).map_err(cut)?;
    codec::decode::<SyncEntry, STAGED_ITEM_BYTES_MAX>("staged entry", &body)
        .map(|e| Staged::Entry(Box::new(e)))
        .map_err(|e| bad(e.to_string()))
}

/// The digest of an import's lines, so the second pass knows it reads what the first checked.
fn line_digest(digest: &mut Sha256, line: &str) {
    digest.update((line.len() as u64).to_be_bytes());
    digest.update(line.as_bytes());
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
        self.import_allowed(kind)?;
        let (total, unchanged, digest) = self.validate_import(kind, source, rng)?;
        if total == 0 {
            // Every line holds what its record holds already: nothing to sign.
            let head = self.store.head(&self.node_id())?.map_or(0, |h| h.seq);
            return Ok(Imported {
                imported: 0,
                first_seq: head,
                last_seq: head,
                unchanged,
                offline: false,
            });
        }
        let _writer = self.own_log_writer()?;
        self.check_signs()?;
        if cancel.load(Ordering::Acquire) {
            return Err(NodeError::Cancelled);
        }
        let staged = self
            .stage_import(kind, source, (total, digest), rng, now_ms, progress, cancel)
            .map(|imported| Imported {
                unchanged,
                ..imported
            })
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
        // Past the commit point an error does not undo the import: the node finishes it at its
        // next write or start, and says so (running the file again would add it twice).
        let pending = |e: NodeError| NodeError::ImportPending {
            reason: e.to_string(),
        };
        sync_dir(&self.dir).map_err(pending)?;
        fault(ImportFault::Committed);
        self.apply_committed_import().map_err(pending)?;
        Ok(imported)
    }

    /// What refuses an import of `kind` whatever its lines: checked before a file is read or
    /// received.
    pub fn import_allowed(&self, kind: Kind) -> Result<(), NodeError> {
        if self.config.role == Role::Aggregator {
            return Err(NodeError::AggregatorAuthors);
        }
        if kind == Kind::Profile {
            return Err(NodeError::ProfileId(
                "import cannot create profiles; use `publish --kind profile`".into(),
            ));
        }
        self.check_signs()
    }

    /// Step 1: checks every line (schema, consent, sizes, named record ids) and returns the
    /// count of records and the digest of the lines.
    fn validate_import(
        &self,
        kind: Kind,
        source: ImportSource<'_>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(u64, u64, [u8; 32]), NodeError> {
        let mut digest = Sha256::new();
        let mut count = 0usize;
        let mut errors = Vec::new();
        let mut invalid = 0usize;
        let mut named: HashMap<RecordId, usize> = HashMap::new();
        let mut unchanged = 0u64;
        source.for_each_line(&mut |number, line| {
            line_digest(&mut digest, line);
            if line.trim().is_empty() {
                return Ok(());
            }
            if count + invalid + unchanged as usize >= IMPORT_RECORDS_MAX {
                return Err(NodeError::ImportTooLarge);
            }
            let checked = if line.trim_start().starts_with('[') {
                Err(LineError::JsonArray)
            } else {
                // A line may name an own record to publish a new version of it, so running
                // an edited file again updates instead of duplicating.
                import_line(&self.store, &self.node_id(), kind, line)
                    .map_err(LineError::Record)
                    .and_then(|(given, body)| {
                        if let Some(rid) = given
                            && let Some(first) = named.insert(rid, number)
                        {
                            return Err(LineError::RecordIdTwice {
                                record_id: rid,
                                first,
                            });
                        }
                        let record = self.prepare(kind, &body).map_err(LineError::Record)?;
                        if let Some(rid) = given {
                            self.target_record(kind, given, rng)
                                .map_err(LineError::Record)?;
                            return self.holds_already(&rid, &record).map_err(LineError::Record);
                        }
                        Ok(false)
                    })
            };
            match checked {
                Ok(true) => unchanged += 1,
                Ok(false) => count += 1,
                Err(error) => {
                    invalid += 1;
                    if errors.len() < IMPORT_ERRORS_SHOWN {
                        errors.push(ImportLineError {
                            line: number,
                            error,
                        });
                    }
                }
            }
            Ok(())
        })?;
        if invalid > 0 {
            return Err(NodeError::ImportInvalid {
                invalid,
                lines: errors,
            });
        }
        if count == 0 && unchanged == 0 {
            return Err(NodeError::ImportEmpty);
        }
        Ok((count as u64, unchanged, digest.finalize().into()))
    }

    /// This region's record `rid` holds `record` already (its current version, same content):
    /// a line that changes nothing publishes nothing.
    fn holds_already(&self, rid: &RecordId, record: &Record) -> Result<bool, NodeError> {
        let me = self.node_id();
        let Some(meta) = self.store.record_meta(&me, rid)?.filter(|m| !m.deleted) else {
            return Ok(false);
        };
        Ok(self
            .store
            .load_record(&me, rid, &meta)?
            .is_some_and(|held| held.to_json() == record.to_json()))
    }

    /// Step 2 (under the own-log lock): signs every line into `DIR/import.staging`, synced,
    /// refusing what the store would refuse once committed (the author's limits) and lines
    /// that are not the ones step 1 checked (`checked`: their count and digest).
    #[allow(clippy::too_many_arguments)]
    fn stage_import(
        &self,
        kind: Kind,
        source: ImportSource<'_>,
        checked: (u64, [u8; 32]),
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
        progress: &dyn Fn(u64, u64),
        cancel: &AtomicBool,
    ) -> Result<Imported, NodeError> {
        let (total, validated) = checked;
        let changed = || NodeError::BadInput {
            name: source.name().to_string(),
            reason: "it changed while it was imported; nothing was imported, run the import again"
                .into(),
        };
        let path = self.dir.join(IMPORT_STAGING);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut out = BufWriter::new(file);
        out.write_all(STAGED_MAGIC).map_err(io_err(&path))?;
        let me = self.node_id();
        let mut head = self.store.head(&me)?;
        let now_ms = self.own_time(now_ms, head)?;
        let first_seq = head.map_or(0, |h| h.seq) + 1;
        let mut bytes = self.store.payload_bytes_of(&me)?;
        let mut digest = Sha256::new();
        let mut done = 0u64;
        source.for_each_line(&mut |number, line| {
            line_digest(&mut digest, line);
            if line.trim().is_empty() {
                return Ok(());
            }
            if cancel.load(Ordering::Acquire) {
                return Err(NodeError::Cancelled);
            }
            let at_line = |e: NodeError| NodeError::ImportRefusedAt {
                name: source.name().to_string(),
                line: number,
                error: Box::new(e),
            };
            // Validated in step 1; a record named there may have been deleted since.
            let (given, body) = import_line(&self.store, &me, kind, line).map_err(at_line)?;
            let record = self.prepare(kind, &body).map_err(at_line)?;
            // A line that changes nothing was counted so in step 1, and is skipped here alike.
            if let Some(rid) = given
                && self.holds_already(&rid, &record).map_err(at_line)?
            {
                return Ok(());
            }
            if done == total {
                return Err(changed());
            }
            let rid = self.target_record(kind, given, rng).map_err(at_line)?;
            let payload = Payload::seal(rng, record.to_json());
            if payload.len() > PAYLOAD_BYTES_MAX {
                return Err(at_line(NodeError::TooLarge(payload.len())));
            }
            // The author's limits, as the store checks them when the entries are applied: past
            // the commit point a refusal could no longer undo the import.
            let replaced = match given {
                Some(rid) => self.store.current_payload_len(&me, &rid)?,
                None => 0,
            };
            bytes = bytes.saturating_sub(replaced) + payload.len() as u64;
            if bytes > AUTHOR_PAYLOAD_BYTES_MAX {
                return Err(at_line(NodeError::Refused(Refusal::PayloadQuota {
                    would: bytes,
                })));
            }
            let header = next_header(me, head, now_ms, kind, rid, Some(&payload));
            if header.seq > AUTHOR_ENTRIES_MAX {
                return Err(at_line(NodeError::Refused(Refusal::AuthorQuota(
                    header.seq,
                ))));
            }
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
        if done != total || <[u8; 32]>::from(digest.finalize()) != validated {
            return Err(changed());
        }
        write_trailer(&mut out, done).map_err(io_err(&path))?;
        let file = out
            .into_inner()
            .map_err(|e| io_err(&path)(e.into_error()))?;
        file.sync_all().map_err(io_err(&path))?;
        Ok(Imported {
            imported: done,
            first_seq,
            last_seq: head.map_or(0, |h| h.seq),
            unchanged: 0,
            offline: false,
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
        let mut magic = [0u8; STAGED_MAGIC.len()];
        if reader.read_exact(&mut magic).is_err() || &magic != STAGED_MAGIC {
            return Err(bad_staged(&path, "it does not start as one".into()));
        }
        let me = self.node_id();
        let head = self.store.head(&me)?.map_or(0, |h| h.seq);
        let mut chunk = Vec::with_capacity(IMPORT_CHUNK_ENTRIES);
        let mut applied = 0u64;
        let mut read = 0u64;
        let unusable = |e: &dyn std::fmt::Display| NodeError::Config {
            path: path.clone(),
            reason: format!("a committed import that cannot be applied: {e}"),
        };
        loop {
            let staged = match read_staged(&mut reader, &path)? {
                Staged::Entry(staged) => Some(staged),
                Staged::End(count) if count == read => None,
                Staged::End(count) => {
                    return Err(unusable(&format!(
                        "its trailer counts {count} entries, it holds {read}"
                    )));
                }
            };
            let at_end = staged.is_none();
            if let Some(staged) = staged {
                read += 1;
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
                self.apply_own(std::mem::take(&mut chunk), now_ms().max(newest))
                    .map_err(|e| unusable(&e))?;
                tracing::debug!(applied, "applied a chunk of a committed import");
                fault(ImportFault::Applying);
            }
            if at_end {
                break;
            }
        }
        drop(reader);
        // Renamed before it is overwritten: a crash while erasing must not leave a file that
        // reads as a committed import (zeros), nor one that is applied again.
        if let Err(e) = erase_file(&self.dir, IMPORT_APPLIED) {
            tracing::error!(error = %e, "erasing an earlier applied import failed");
        }
        let applied_path = self.dir.join(IMPORT_APPLIED);
        fs::rename(&path, &applied_path).map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        fault(ImportFault::Erasing);
        if let Err(e) = erase_file(&self.dir, IMPORT_APPLIED) {
            tracing::error!(error = %e, "erasing an applied import failed; erased at next open");
        }
        Ok(Some(applied))
    }

    /// On open: an import that did not reach its commit point is dropped, one that did is
    /// finished.
    pub(super) fn recover_import(&self) -> Result<(), NodeError> {
        for item in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let name = item.map_err(io_err(&self.dir))?.file_name();
            if let Some(name) = name.to_str().filter(|n| is_upload_name(n)) {
                erase_file(&self.dir, name)?;
            }
        }
        erase_file(&self.dir, IMPORT_APPLIED)?;
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
