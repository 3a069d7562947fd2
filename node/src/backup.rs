//! `spindel backup` and `spindel restore`: a node's logs in one file, and a node from it.
//!
//! A backup is logical, not a copy of sled's files: the node's config and key, the admission
//! list, every author's signed log in seq order (each current version with its payload), and
//! the fork proofs. A restore verifies every entry again (`verify_strict`, the ingest rules)
//! as it rebuilds the store, so no entry a region did not sign gets in. The checksum finds
//! damage, not tampering (it has no key; the file holds the node's key anyway): whoever can
//! write the file can change the admission list in it, like whoever holds the key.
//!
//! ```text
//! file  = MAGIC, item*          MAGIC = "spindel-backup/1\n"
//! item  = u32 (BE) length, bincode(Item)      each at most ITEM_BYTES_MAX, size-checked first
//! Items: Node (first), Author*, Entry*, Fork*, End (last: count and SHA-256 of all before)
//! ```
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
use spindel_protocol::codec;
use spindel_protocol::entry::{Entry, Hash, WireEntry};
use spindel_protocol::ingest::check_fork_proof;
use spindel_protocol::sync::SyncEntry;
use spindel_protocol::{NodeId, SecretKey};

use crate::local::{self, KEY_FILE, LocalNode, NodeConfig, NodeError, RESTORED_MARKER, Role};
use crate::store::{ApplyOptions, Incoming, Store};

/// The first bytes of every backup file.
pub const MAGIC: &[u8] = b"spindel-backup/1\n";
/// Largest item in a backup (an entry with a 64 KiB payload is far below it).
pub const ITEM_BYTES_MAX: usize = 1024 * 1024;
/// Entries applied per batch while restoring.
const RESTORE_BATCH: usize = 256;

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
}

/// What `backup` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackedUp {
    pub file: String,
    pub entries: u64,
    pub bytes: u64,
}

/// What `restore` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restored {
    pub node_id: String,
    pub entries: u64,
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
        let write_all = |w: &mut Writer<BufWriter<fs::File>>| -> std::io::Result<u64> {
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
    tracing::info!(file = %to.display(), entries, bytes, "backup written");
    Ok(BackedUp {
        file: to.display().to_string(),
        entries,
        bytes,
    })
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
    loop {
        let (item, before) = reader.item(from)?;
        match item {
            Item::Node { .. } => return Err(bad(from, "a second identity in the middle")),
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
    let mut trailing = [0u8; 1];
    if reader.input.read(&mut trailing).map_err(io_err(from))? != 0 {
        return Err(bad(from, "bytes after its end mark"));
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
    })
}
