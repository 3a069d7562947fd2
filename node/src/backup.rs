//! `spindel backup` and `spindel restore`: a node's logs in one file, and a node from it.
//!
//! A backup is logical, not a copy of sled's files: the node's config and key, the admission
//! list (with, on a region, the pinned aggregators that vouch for each author), every author's
//! signed log in seq order (each current version with its payload), the fork proofs, and the
//! editor's staff accounts (`users.json`) and audit trail (`audit.jsonl`), which exist nowhere
//! else (they are never replicated). A restore verifies every entry again (`verify_strict`, the ingest rules)
//! as it rebuilds the store, so no entry a region did not sign gets in. The checksum finds
//! damage, not tampering (it has no key; the file holds the node's key anyway): whoever can
//! write the file can change the admission list in it, like whoever holds the key.
//!
//! ```text
//! file  = MAGIC, item*          MAGIC = "spindel-backup/1\n"
//! item  = u32 (BE) length, bincode(Item)      each at most ITEM_BYTES_MAX, size-checked first
//! Items: Node (first), Author*, Vouched*, Entry*, Fork*, Users*, Audit*,
//!        End (last: count and SHA-256 of all before)
//! ```
//!
//! `Users` and `Audit` carry the two files in parts of at most [`FILE_PART_BYTES`], in order.
//! The accounts file is at most [`USERS_FILE_BYTES_MAX`] (as every reader of it requires);
//! the audit trail at most [`AUDIT_BYTES_MAX`]: a longer trail is backed up from its newest
//! whole line back to that size and the backup says how many of its oldest bytes it left out.
//! Only whole lines are taken (a line being appended meanwhile waits for the next backup). A
//! restore refuses a file whose parts pass either cap. A backup from before these items (or of
//! a node without staff) restores with no accounts and no trail, as before; the item kinds are
//! numbered after `End`, so older backups read unchanged (an older binary refuses a newer
//! backup as unusable).
//!
//! The file holds the node's secret key: it is written with mode 0600 (through a temporary
//! file, synced, then renamed) and must be kept like the key itself.
//!
//! While the node runs, the backup is taken by the node (through the control channel): each
//! author's log is read up to the head it had when the backup began, so every log in the file
//! is a consistent prefix. A payload purged while the backup is written is left out (a
//! deletion is never undone by a backup).
//!
//! A restored region starts with a `restored` marker and signs nothing until it has caught up
//! with its aggregator, so an old backup never forks its log (see `runtime::CatchUp`).

use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spindel_protocol::charter::SignedCharter;
use spindel_protocol::codec;
use spindel_protocol::entry::{Entry, Hash, WireEntry};
use spindel_protocol::ingest::check_fork_proof;
use spindel_protocol::sync::SyncEntry;
use spindel_protocol::{NodeId, SecretKey};

use crate::local::{self, KEY_FILE, LocalNode, NodeConfig, NodeError, RESTORED_MARKER, Role};
use crate::store::{ApplyOptions, Incoming, Store};
use crate::users::{AUDIT_FILE, USERS_FILE, USERS_FILE_BYTES_MAX};

/// The first bytes of every backup file.
pub const MAGIC: &[u8] = b"spindel-backup/1\n";
/// Largest item in a backup (an entry with a 64 KiB payload is far below it).
pub const ITEM_BYTES_MAX: usize = 1024 * 1024;
/// Entries applied per batch while restoring.
const RESTORE_BATCH: usize = 256;
/// Bytes of the accounts file or the audit trail in one item.
pub const FILE_PART_BYTES: usize = 512 * 1024;
/// The most of the audit trail a backup holds: its newest whole lines up to this size (about
/// a million editor actions; a region writes a few a day).
pub const AUDIT_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// One item of a backup file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Item {
    Node {
        config_toml: String,
        /// The node's secret key as hex: zeroed when dropped (encoded and decoded with the
        /// codec's secret functions, which leave no copy behind).
        key_hex: zeroize::Zeroizing<String>,
    },
    Author {
        id: NodeId,
        admitted: bool,
        admitted_name: Option<String>,
    },
    Entry(SyncEntry),
    Fork {
        first: WireEntry,
        second: WireEntry,
    },
    End {
        entries: u64,
        sha256: Hash,
    },
    // Numbered after `End`: the items above keep their numbers, so older backups read as before.
    /// The pinned aggregators whose admission lists vouch for an admitted author (a region's).
    Vouched {
        id: NodeId,
        by: Vec<NodeId>,
    },
    /// The next part of the editor's accounts file (`users.json`).
    Users(Vec<u8>),
    /// The next part of the audit trail (`audit.jsonl`).
    Audit(Vec<u8>),
    /// The charter the node adopted (its file's text): adopted again once the entries are in.
    Charter {
        file: String,
    },
}

/// What `backup` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackedUp {
    pub file: String,
    pub entries: u64,
    pub bytes: u64,
    /// The editor's staff accounts are in it.
    #[serde(default)]
    pub staff_accounts: bool,
    /// Bytes of the audit trail in it.
    #[serde(default)]
    pub audit_bytes: u64,
    /// Oldest bytes of the audit trail left out (over [`AUDIT_BYTES_MAX`]).
    #[serde(default)]
    pub audit_bytes_left_out: u64,
}

/// What `restore` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restored {
    pub node_id: String,
    pub entries: u64,
    /// Staff accounts of the editor restored.
    #[serde(default)]
    pub staff_accounts: usize,
    /// Bytes of the audit trail restored.
    #[serde(default)]
    pub audit_bytes: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |error| NodeError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> NodeError {
    NodeError::Config {
        path: path.to_path_buf(),
        reason: format!("not a usable spindel backup: {}", reason.into()),
    }
}

/// Writes items, hashing every byte.
struct Writer<W: Write> {
    out: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Writer<W> {
    fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    fn item(&mut self, item: &Item) -> std::io::Result<()> {
        let body = codec::encode(item);
        self.raw(&(body.len() as u32).to_be_bytes())?;
        self.raw(&body)
    }
}

impl Writer<BufWriter<fs::File>> {
    /// An item holding the secret key: encoded into a zeroed-on-drop buffer and written to
    /// the file past the buffered writer (whose buffer would keep a copy).
    fn secret_item(&mut self, item: &Item) -> std::io::Result<()> {
        let body = codec::encode_secret(item);
        self.raw(&(body.len() as u32).to_be_bytes())?;
        self.out.flush()?;
        self.hash.update(&body[..]);
        self.bytes += body.len() as u64;
        self.out.get_mut().write_all(&body)
    }
}

/// Writes a backup of `node` to `to` (replacing it atomically).
pub fn write(node: &LocalNode, to: &Path) -> Result<BackedUp, NodeError> {
    let store = node.store();
    let mut staff = Staff::of(node.dir())?;
    // Each log up to the head it has now: a consistent prefix per author.
    let heads = store.heads()?;
    let tmp = PathBuf::from(format!("{}.tmp-{}", to.display(), std::process::id()));
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    let result = (|| {
        let mut w = Writer {
            out: BufWriter::new(file),
            hash: Sha256::new(),
            bytes: 0,
        };
        let io = io_err(&tmp);
        let mut write_all = |w: &mut Writer<BufWriter<fs::File>>| -> std::io::Result<u64> {
            w.raw(MAGIC)?;
            let config_toml = toml::to_string(node.config()).map_err(std::io::Error::other)?;
            w.secret_item(&Item::Node {
                config_toml,
                key_hex: node.key().to_hex(),
            })?;
            let authors = store.authors().map_err(std::io::Error::other)?;
            for (id, meta) in &authors {
                w.item(&Item::Author {
                    id: *id,
                    admitted: meta.admitted,
                    admitted_name: meta.admitted_name.clone(),
                })?;
            }
            let mut vouched: Vec<_> = store
                .vouchers_all()
                .map_err(std::io::Error::other)?
                .into_iter()
                .collect();
            vouched.sort();
            for (id, by) in vouched {
                w.item(&Item::Vouched { id, by })?;
            }
            if let Some(members) = store.members() {
                w.item(&Item::Charter {
                    file: members.charter.signed.to_file_text(),
                })?;
            }
            let mut entries = 0u64;
            for (author, head) in &heads {
                let mut from = 1;
                while from <= head.seq {
                    let chunk = store
                        .entries_from(author, from, RESTORE_BATCH)
                        .map_err(std::io::Error::other)?;
                    if chunk.is_empty() {
                        break;
                    }
                    for inc in chunk {
                        let seq = inc.entry.header().seq;
                        if seq > head.seq {
                            break;
                        }
                        from = seq + 1;
                        entries += 1;
                        w.item(&Item::Entry(SyncEntry {
                            entry: inc.entry.to_wire(),
                            payload: inc.payload,
                        }))?;
                    }
                }
            }
            for (_, proof) in store.forks().map_err(std::io::Error::other)? {
                w.item(&Item::Fork {
                    first: proof.first,
                    second: proof.second,
                })?;
            }
            if let Some(accounts) = &staff.accounts {
                for part in accounts.chunks(FILE_PART_BYTES) {
                    w.item(&Item::Users(part.to_vec()))?;
                }
            }
            if let Some((file, span)) = &mut staff.audit {
                copy_parts(file, span.clone(), |part| w.item(&Item::Audit(part)))?;
            }
            let sha256 = Hash(w.hash.clone().finalize().into());
            w.item(&Item::End { entries, sha256 })?;
            Ok(entries)
        };
        let entries = write_all(&mut w).map_err(io_err(&tmp))?;
        let bytes = w.bytes;
        let file = w.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io_err(&tmp))?;
        Ok((entries, bytes))
    })();
    let (entries, bytes) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = fs::rename(&tmp, to) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(to)(e));
    }
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(parent))?;
    }
    let (audit_bytes, audit_bytes_left_out) = match &staff.audit {
        Some((_, span)) => (span.end - span.start, span.start),
        None => (0, 0),
    };
    if audit_bytes_left_out > 0 {
        tracing::warn!(
            left_out = audit_bytes_left_out,
            kept = audit_bytes,
            "the audit trail is over {AUDIT_BYTES_MAX} bytes: the backup holds its newest lines only"
        );
    }
    tracing::info!(file = %to.display(), entries, bytes, staff_accounts = staff.accounts.is_some(), audit_bytes, "backup written");
    Ok(BackedUp {
        file: to.display().to_string(),
        entries,
        bytes,
        staff_accounts: staff.accounts.is_some(),
        audit_bytes,
        audit_bytes_left_out,
    })
}

/// The editor's files a backup takes, read when it begins.
struct Staff {
    /// `users.json`, whole.
    accounts: Option<Vec<u8>>,
    /// `audit.jsonl` open, and the range of it the backup takes.
    audit: Option<(fs::File, std::ops::Range<u64>)>,
}

impl Staff {
    fn of(dir: &Path) -> Result<Staff, NodeError> {
        let accounts = crate::users::accounts_file_bytes(dir).map_err(|e| NodeError::Config {
            path: dir.join(USERS_FILE),
            reason: format!("the staff accounts cannot be backed up: {e}"),
        })?;
        let path = dir.join(AUDIT_FILE);
        let audit = match fs::File::open(&path) {
            Ok(mut f) => {
                let len = f.metadata().map_err(io_err(&path))?.len();
                let span = audit_span(&mut f, len, AUDIT_BYTES_MAX).map_err(io_err(&path))?;
                Some((f, span))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(Staff { accounts, audit })
    }
}

/// The part of an audit trail of `len` bytes a backup takes: whole lines only (one being
/// appended right now is left for the next backup), the newest of them within `cap` bytes.
fn audit_span(file: &mut fs::File, len: u64, cap: u64) -> std::io::Result<std::ops::Range<u64>> {
    let end = match rfind_newline(file, len)? {
        Some(at) => at + 1,
        None => return Ok(0..0),
    };
    if end <= cap {
        return Ok(0..end);
    }
    // The first line that begins at or after `end - cap`: after the first line end at or
    // after `end - cap - 1` (there is one: the byte at `end - 1`).
    let start = match find_newline(file, end - cap - 1, end)? {
        Some(at) => at + 1,
        None => end,
    };
    Ok(start..end)
}

/// Bytes read at a time while looking for a line end.
const SCAN_BYTES: u64 = 64 * 1024;

/// The position of the last `\n` before `len`.
fn rfind_newline(file: &mut fs::File, len: u64) -> std::io::Result<Option<u64>> {
    use std::io::{Seek, SeekFrom};
    let mut buf = vec![0u8; SCAN_BYTES as usize];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(SCAN_BYTES);
        let part = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|b| *b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// The position of the first `\n` in `from..end`.
fn find_newline(file: &mut fs::File, from: u64, end: u64) -> std::io::Result<Option<u64>> {
    use std::io::{Seek, SeekFrom};
    let mut buf = vec![0u8; SCAN_BYTES as usize];
    let mut start = from;
    while start < end {
        let part = &mut buf[..(end - start).min(SCAN_BYTES) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = part.iter().position(|b| *b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        start += part.len() as u64;
    }
    Ok(None)
}

/// Reads `span` of `file` and hands it on in parts of at most [`FILE_PART_BYTES`].
fn copy_parts(
    file: &mut fs::File,
    span: std::ops::Range<u64>,
    mut part: impl FnMut(Vec<u8>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(span.start))?;
    let mut left = span.end - span.start;
    while left > 0 {
        let mut buf = vec![0u8; left.min(FILE_PART_BYTES as u64) as usize];
        file.read_exact(&mut buf)?;
        left -= buf.len() as u64;
        part(buf)?;
    }
    Ok(())
}

/// Adds a part of `n` bytes to `total`, refusing to pass `cap`.
fn within_cap(total: &mut u64, n: usize, cap: u64) -> Result<(), u64> {
    let next = total.saturating_add(n as u64);
    if next > cap {
        return Err(cap);
    }
    *total = next;
    Ok(())
}

/// Reads items, hashing every byte before the end item.
struct Reader<R: Read> {
    input: R,
    hash: Sha256,
}

impl<R: Read> Reader<R> {
    fn exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.input.read_exact(buf)?;
        self.hash.update(&*buf);
        Ok(())
    }

    /// The next item and the hash of everything before it.
    fn item(&mut self, path: &Path) -> Result<(Item, Hash), NodeError> {
        let before = Hash(self.hash.clone().finalize().into());
        let mut prefix = [0u8; 4];
        self.exact(&mut prefix)
            .map_err(|_| bad(path, "it ends before its end mark (cut short?)"))?;
        let len = u32::from_be_bytes(prefix) as usize;
        if len > ITEM_BYTES_MAX {
            return Err(bad(
                path,
                format!("an item of {len} bytes is over the limit of {ITEM_BYTES_MAX}"),
            ));
        }
        // Zeroed after use: the first item holds the secret key.
        let mut body = zeroize::Zeroizing::new(vec![0u8; len]);
        self.exact(&mut body)
            .map_err(|_| bad(path, "it ends in the middle of an item (cut short?)"))?;
        let item = codec::decode_secret::<Item, ITEM_BYTES_MAX>("backup item", &body)
            .map_err(|e| bad(path, e.to_string()))?;
        Ok((item, before))
    }
}

/// Makes a node in `dir` from the backup `from`. Refuses a `dir` that holds a node; on any
/// failure removes everything it made.
pub fn restore(from: &Path, dir: &Path) -> Result<Restored, NodeError> {
    local::in_new_node_dir(dir, || {
        let file = fs::File::open(from).map_err(io_err(from))?;
        // The mark and the identity item (which holds the secret key) are read straight from
        // the file into zeroing buffers: a buffered reader's buffer would keep a copy.
        let mut reader = Reader {
            input: file,
            hash: Sha256::new(),
        };
        let mut magic = vec![0u8; MAGIC.len()];
        reader
            .exact(&mut magic)
            .map_err(|_| bad(from, "it is too short"))?;
        if magic != MAGIC {
            return Err(bad(from, "it does not start with the spindel backup mark"));
        }
        let (first, _) = reader.item(from)?;
        let Item::Node {
            config_toml,
            key_hex,
        } = first
        else {
            return Err(bad(from, "it does not start with the node's identity"));
        };
        let config: NodeConfig = toml::from_str(&config_toml)
            .map_err(|e| bad(from, format!("config: {}", e.message())))?;
        spindel_protocol::record::validate_region_name(&config.name)
            .map_err(|e| bad(from, format!("node name: {e}")))?;
        let key = SecretKey::from_hex(&key_hex)
            .ok_or_else(|| bad(from, "the key is not 64 hex characters"))?;
        let mut reader = Reader {
            input: BufReader::new(reader.input),
            hash: reader.hash,
        };
        restore_into(from, dir, &mut reader, &config, &key)
    })
}

fn restore_into(
    from: &Path,
    dir: &Path,
    reader: &mut Reader<BufReader<fs::File>>,
    config: &NodeConfig,
    key: &SecretKey,
) -> Result<Restored, NodeError> {
    local::write_key(&dir.join(KEY_FILE), key)?;
    let store = Store::open(dir)?;
    store.admit(&key.node_id(), Some(config.name.clone()))?;
    let mut batch: Vec<Incoming> = Vec::new();
    let apply = |store: &Store, batch: &mut Vec<Incoming>| -> Result<(), NodeError> {
        if batch.is_empty() {
            return Ok(());
        }
        store.apply(
            std::mem::take(batch),
            ApplyOptions {
                expected_author: None,
                now_ms: local::now_ms(),
                all_or_nothing: true,
            },
        )?;
        Ok(())
    };
    let mut entries = 0u64;
    let mut accounts: Option<Vec<u8>> = None;
    let mut accounts_bytes = 0u64;
    let mut audit: Option<fs::File> = None;
    let mut audit_bytes = 0u64;
    let audit_path = dir.join(AUDIT_FILE);
    let mut charter = None;
    loop {
        let (item, before) = reader.item(from)?;
        match item {
            Item::Node { .. } => return Err(bad(from, "a second identity in the middle")),
            Item::Charter { file } => {
                let verified = SignedCharter::from_file_text(file.as_bytes())
                    .and_then(|s| s.verify())
                    .map_err(|e| bad(from, format!("its charter: {e}")))?;
                charter = Some(verified);
            }
            Item::Vouched { id, by } => {
                // Only for authors the backup admits (a region's record of whose list did).
                if id != key.node_id() && store.is_admitted(&id)? {
                    for b in by.iter().filter(|b| b.is_usable()) {
                        store.vouch(&id, b)?;
                    }
                }
            }
            Item::Users(part) => {
                within_cap(&mut accounts_bytes, part.len(), USERS_FILE_BYTES_MAX).map_err(
                    |cap| {
                        bad(
                            from,
                            format!("its staff accounts are over the limit of {cap} bytes"),
                        )
                    },
                )?;
                accounts
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&part);
            }
            Item::Audit(part) => {
                within_cap(&mut audit_bytes, part.len(), AUDIT_BYTES_MAX).map_err(|cap| {
                    bad(
                        from,
                        format!("its audit trail is over the limit of {cap} bytes"),
                    )
                })?;
                let file = match &mut audit {
                    Some(f) => f,
                    None => audit.insert(private_file(&audit_path)?),
                };
                file.write_all(&part).map_err(io_err(&audit_path))?;
            }
            Item::Author {
                id,
                admitted,
                admitted_name,
            } => {
                if let Some(name) = &admitted_name {
                    spindel_protocol::record::validate_region_name(name)
                        .map_err(|e| bad(from, format!("admitted name: {e}")))?;
                }
                if admitted && id != key.node_id() && id.is_usable() {
                    store.admit(&id, admitted_name)?;
                }
            }
            Item::Entry(e) => {
                let entry = Entry::from_wire(e.entry).map_err(|err| {
                    bad(from, format!("entry {} is malformed: {err}", entries + 1))
                })?;
                batch.push(Incoming {
                    entry,
                    payload: e.payload,
                });
                entries += 1;
                if batch.len() >= RESTORE_BATCH {
                    apply(&store, &mut batch)?;
                }
            }
            Item::Fork { first, second } => {
                apply(&store, &mut batch)?;
                let (Ok(first), Ok(second)) = (Entry::from_wire(first), Entry::from_wire(second))
                else {
                    return Err(bad(from, "a fork proof is malformed"));
                };
                check_fork_proof(&first, &second)
                    .map_err(|e| bad(from, format!("a fork proof does not hold: {e}")))?;
                store.record_fork_proof(&first, &second)?;
            }
            Item::End {
                entries: count,
                sha256,
            } => {
                if sha256 != before {
                    return Err(bad(from, "its checksum does not match (damaged?)"));
                }
                if count != entries {
                    return Err(bad(
                        from,
                        format!("it says {count} entries but holds {entries}"),
                    ));
                }
                break;
            }
        }
    }
    apply(&store, &mut batch)?;
    // The charter last: the entries went in under the admissions the backup holds, and the
    // acts among them now decide them again.
    if let Some(charter) = &charter {
        store.adopt_charter(charter, key.node_id())?;
    }
    let mut trailing = [0u8; 1];
    if reader.input.read(&mut trailing).map_err(io_err(from))? != 0 {
        return Err(bad(from, "bytes after its end mark"));
    }
    let staff_accounts = match accounts {
        Some(bytes) => {
            let n = crate::users::check_accounts_file(&bytes)
                .map_err(|e| bad(from, format!("its staff accounts: {e}")))?;
            let path = dir.join(USERS_FILE);
            let mut file = private_file(&path)?;
            file.write_all(&bytes)
                .and_then(|()| file.sync_all())
                .map_err(io_err(&path))?;
            n
        }
        None => 0,
    };
    if let Some(file) = audit {
        file.sync_all().map_err(io_err(&audit_path))?;
    }
    store.flush()?;
    drop(store);
    if config.role == Role::Region {
        // Signs nothing until it has caught up with its aggregator.
        let marker = dir.join(RESTORED_MARKER);
        fs::write(&marker, b"restored from a backup; removed once caught up\n")
            .map_err(io_err(&marker))?;
    }
    local::write_config(dir, config)?;
    Ok(Restored {
        node_id: key.node_id().to_hex(),
        entries,
        staff_accounts,
        audit_bytes,
    })
}

/// A new file only its owner can read or write (the staff's personal data).
fn private_file(path: &Path) -> Result<fs::File, NodeError> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::read::Reads;
    use crate::users::{StaffRole, Users};
    use std::os::unix::fs::PermissionsExt;

    fn region(tmp: &Path) -> (PathBuf, LocalNode) {
        let dir = tmp.join("skane");
        local::init(&dir, "skane", Role::Region, None, &mut rand_core::OsRng).unwrap();
        let node = LocalNode::open(&dir).unwrap();
        (dir, node)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The staff's accounts and audit trail go into the backup and come back, private; a node
    /// without them restores without them.
    #[test]
    fn staff_accounts_and_the_audit_trail_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, node) = region(tmp.path());
        let bare = tmp.path().join("utan.backup");
        let done = write(&node, &bare).unwrap();
        assert!(!done.staff_accounts);
        assert_eq!(done.audit_bytes, 0);
        let r = restore(&bare, &tmp.path().join("utan")).unwrap();
        assert_eq!((r.staff_accounts, r.audit_bytes), (0, 0));
        assert!(!tmp.path().join("utan").join(USERS_FILE).exists());
        assert!(!tmp.path().join("utan").join(AUDIT_FILE).exists());

        Users::new(&dir)
            .add(
                "anna",
                StaffRole::Admin,
                crate::users::Password::Chosen("ett långt lösenord"),
                &mut rand_core::OsRng,
                1,
            )
            .unwrap();
        // A region's record of which pinned aggregator vouches for whom comes back too.
        let agg = SecretKey::from_bytes(&[7; 32]).node_id();
        let other = SecretKey::from_bytes(&[8; 32]).node_id();
        node.store()
            .take_admissions(&[(other, Some("dalarna".into()))], &agg, &node.node_id())
            .unwrap();
        let line = |i: u64| {
            let mut e = crate::users::AuditEntry::new("anna", "publish", i);
            e.kind = Some("method".into());
            e.seq = Some(i);
            e
        };
        for i in 0..3 {
            crate::users::audit(&dir, &line(i)).unwrap();
        }
        // A line being appended while the backup is taken waits for the next one.
        let trail = fs::read(dir.join(AUDIT_FILE)).unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(dir.join(AUDIT_FILE))
            .unwrap()
            .write_all(b"{\"time_ms\":9,\"us")
            .unwrap();
        let file = tmp.path().join("med.backup");
        let done = write(&node, &file).unwrap();
        assert!(done.staff_accounts);
        assert_eq!(done.audit_bytes, trail.len() as u64);
        assert_eq!(done.audit_bytes_left_out, 0);
        let to = tmp.path().join("med");
        let r = restore(&file, &to).unwrap();
        assert_eq!(r.staff_accounts, 1);
        assert_eq!(fs::read(to.join(AUDIT_FILE)).unwrap(), trail);
        assert_eq!(
            fs::read(to.join(USERS_FILE)).unwrap(),
            fs::read(dir.join(USERS_FILE)).unwrap()
        );
        assert_eq!(mode(&to.join(USERS_FILE)), 0o600);
        assert_eq!(mode(&to.join(AUDIT_FILE)), 0o600);
        let users = Users::new(&to);
        assert_eq!(
            users.verify("anna", "ett långt lösenord").unwrap().role,
            StaffRole::Admin
        );
        assert_eq!(crate::users::read_audit(&to, 10).unwrap().len(), 3);
        let back = LocalNode::open(&to).unwrap();
        assert_eq!(back.vouchers(&other).unwrap(), [agg]);
        assert_eq!(
            back.author(&other).unwrap().unwrap().label(),
            Some("dalarna")
        );
    }

    /// Only whole lines, the newest within the cap; a trail without a line end holds none.
    #[test]
    fn the_audit_span_is_whole_lines_within_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(AUDIT_FILE);
        let span = |bytes: &[u8], cap: u64| {
            fs::write(&path, bytes).unwrap();
            let mut f = fs::File::open(&path).unwrap();
            audit_span(&mut f, bytes.len() as u64, cap).unwrap()
        };
        assert_eq!(span(b"", 100), 0..0);
        assert_eq!(span(b"no line end yet", 100), 0..0);
        assert_eq!(span(b"aa\nbb\ncc", 100), 0..6);
        // Cap 7 of "aaaa\nbbb\ncc\n" (12 bytes): "bbb\ncc\n" fits exactly.
        assert_eq!(span(b"aaaa\nbbb\ncc\n", 7), 5..12);
        assert_eq!(span(b"aaaa\nbbb\ncc\n", 6), 9..12);
        // A single line longer than the cap: nothing of it.
        assert_eq!(span(b"aaaaaaaaaa\n", 4), 11..11);
    }

    /// The real cap on a trail just over it (a sparse file: only the bytes around the cut
    /// and the end are read): the oldest lines are left out, the newest kept whole.
    #[test]
    fn a_trail_over_audit_bytes_max_keeps_its_newest_lines() {
        use std::io::{Seek, SeekFrom};
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(AUDIT_FILE);
        let len = AUDIT_BYTES_MAX + 1000;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        f.set_len(len).unwrap();
        // Line ends 10 bytes before the cut and 10 after it, and at the very end.
        let cut = len - AUDIT_BYTES_MAX;
        for at in [cut - 10, cut + 10, len - 1] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(b"\n").unwrap();
        }
        let span = audit_span(&mut f, len, AUDIT_BYTES_MAX).unwrap();
        assert_eq!(span, cut + 11..len);
        assert!(span.end - span.start <= AUDIT_BYTES_MAX);
    }

    /// Users and audit parts past their caps are refused; up to them they are taken.
    #[test]
    fn parts_are_refused_past_their_caps() {
        let mut total = 0;
        within_cap(
            &mut total,
            USERS_FILE_BYTES_MAX as usize,
            USERS_FILE_BYTES_MAX,
        )
        .unwrap();
        assert_eq!(
            within_cap(&mut total, 1, USERS_FILE_BYTES_MAX),
            Err(USERS_FILE_BYTES_MAX)
        );
        let mut total = AUDIT_BYTES_MAX - FILE_PART_BYTES as u64;
        within_cap(&mut total, FILE_PART_BYTES, AUDIT_BYTES_MAX).unwrap();
        assert_eq!(total, AUDIT_BYTES_MAX);
        assert!(within_cap(&mut total, 1, AUDIT_BYTES_MAX).is_err());
    }

    /// An accounts file over `USERS_FILE_BYTES_MAX` is not backed up (the backup fails and
    /// says why); a backup whose accounts pass the cap, or are not accounts, restores nothing.
    #[test]
    fn accounts_over_their_cap_are_refused_both_ways() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, node) = region(tmp.path());
        let big = vec![b' '; USERS_FILE_BYTES_MAX as usize + 1];
        fs::write(dir.join(USERS_FILE), &big).unwrap();
        let err = write(&node, &tmp.path().join("x.backup")).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("over the limit of {USERS_FILE_BYTES_MAX} bytes")),
            "{err}"
        );
        assert!(!tmp.path().join("x.backup").exists());

        // A backup made by hand: the node's identity, then accounts parts.
        let forge = |name: &str, parts: &[Vec<u8>]| {
            let path = tmp.path().join(name);
            let mut w = Writer {
                out: BufWriter::new(fs::File::create(&path).unwrap()),
                hash: Sha256::new(),
                bytes: 0,
            };
            w.raw(MAGIC).unwrap();
            w.secret_item(&Item::Node {
                config_toml: toml::to_string(node.config()).unwrap(),
                key_hex: node.key().to_hex(),
            })
            .unwrap();
            for p in parts {
                w.item(&Item::Users(p.clone())).unwrap();
            }
            let sha256 = Hash(w.hash.clone().finalize().into());
            w.item(&Item::End { entries: 0, sha256 }).unwrap();
            w.out.flush().unwrap();
            path
        };
        let over = forge(
            "over.backup",
            &[
                vec![b' '; FILE_PART_BYTES],
                vec![b' '; FILE_PART_BYTES],
                vec![b' '; 1],
            ],
        );
        let to = tmp.path().join("over");
        let err = restore(&over, &to).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "staff accounts are over the limit of {USERS_FILE_BYTES_MAX} bytes"
            )),
            "{err}"
        );
        assert!(!to.exists());
        let junk = forge("junk.backup", &[b"{\"users\":[{\"name\":1}]}".to_vec()]);
        let err = restore(&junk, &to).unwrap_err();
        assert!(err.to_string().contains("its staff accounts:"), "{err}");
        assert!(!to.exists());
    }
}
