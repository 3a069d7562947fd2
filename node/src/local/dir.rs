//! The files of a data directory besides the store: `config.toml`, the key file (0600), the
//! markers `restored` and `offline-from`, and the atomic owner-only write they share.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};
use spindel_protocol::SecretKey;
use spindel_protocol::record::validate_region_name;

use super::error::{NodeError, io_err};

pub const CONFIG_FILE: &str = "config.toml";
/// Marks a data directory `spindel restore` made that has not caught up with its aggregator
/// yet: it signs nothing until it has (a restored old copy must never fork its own log).
pub const RESTORED_MARKER: &str = "restored";
pub const KEY_FILE: &str = "node.key";
/// Holds the first own seq this node signed while no pinned aggregator had confirmed it
/// (published offline), until an aggregator acknowledges the own log up to its head: the
/// entries this copy holds that the network may lack, also across a restart or a copy of the
/// directory.
pub const OFFLINE_MARKER: &str = "offline-from";

/// The two roles of one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Authors records and replicates them to aggregators.
    Region,
    /// Gathers admitted regions' records, serves queries, relays the aggregate back.
    Aggregator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Region => "region",
            Role::Aggregator => "aggregator",
        }
    }
}

/// `DIR/config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `DIR/offline-from`, if it holds a seq (an unreadable one counts as absent).
pub(super) fn read_offline_marker(dir: &Path) -> Option<u64> {
    fs::read_to_string(dir.join(OFFLINE_MARKER))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .filter(|seq| *seq > 0)
}

/// Writes `DIR/config.toml` atomically (see [`write_file_atomically`]).
pub(crate) fn write_config(dir: &Path, config: &NodeConfig) -> Result<(), NodeError> {
    let text = toml::to_string(config).map_err(|e| NodeError::Config {
        path: dir.join(CONFIG_FILE),
        reason: e.to_string(),
    })?;
    write_file_atomically(dir, CONFIG_FILE, text.as_bytes())
}

/// Writes `DIR/name` atomically, only its owner may read it: a temporary file (0600), synced,
/// renamed over the old one, the directory synced.
pub fn write_file_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), NodeError> {
    write_through_temp(dir, name, bytes, false)
}

/// [`write_file_atomically`], but never over an existing file: the temporary file is linked
/// to `name` (which fails if the name is taken) instead of renamed over it.
pub fn create_file_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), NodeError> {
    write_through_temp(dir, name, bytes, true)
}

fn write_through_temp(dir: &Path, name: &str, bytes: &[u8], new: bool) -> Result<(), NodeError> {
    let tmp = dir.join(format!("{name}.tmp"));
    // Created exclusively: never through a link someone left in its place (a stale file or
    // link from a crash is removed first; removing a link does not follow it).
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&tmp)(e)),
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    let target = dir.join(name);
    if new {
        let linked = fs::hard_link(&tmp, &target).map_err(io_err(&target));
        // The temporary name goes either way (the link, if made, holds the bytes).
        let removed = fs::remove_file(&tmp).map_err(io_err(&tmp));
        linked.and(removed)?;
    } else {
        fs::rename(&tmp, &target).map_err(io_err(dir))?;
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

/// A key file holds 64 hex characters and a newline; anything over this many bytes is not one.
pub const KEY_FILE_BYTES_MAX: usize = 128;

pub(crate) fn write_key(path: &Path, key: &SecretKey) -> Result<(), NodeError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    let hex_text = key.to_hex();
    file.write_all(hex_text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(())
}

pub(super) fn read_key(path: &Path) -> Result<SecretKey, NodeError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(NodeError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    // Read into one buffer of a fixed size, zeroed after use (a growing buffer would leave
    // copies of the key text in freed memory). A longer file is not a key file.
    let mut text = zeroize::Zeroizing::new(vec![0u8; KEY_FILE_BYTES_MAX + 1]);
    let mut len = 0;
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    loop {
        match file.read(&mut text[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len == text.len() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    let key = (len <= KEY_FILE_BYTES_MAX)
        .then(|| std::str::from_utf8(&text[..len]).ok())
        .flatten()
        .and_then(SecretKey::from_hex);
    key.ok_or_else(|| NodeError::KeyFormat {
        path: path.to_path_buf(),
    })
}

/// Reads `DIR/config.toml`.
pub fn read_config(dir: &Path) -> Result<NodeConfig, NodeError> {
    let path = dir.join(CONFIG_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(NodeError::NotANode(dir.to_path_buf()));
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let config: NodeConfig = toml::from_str(&text).map_err(|e| NodeError::Config {
        path: path.clone(),
        reason: e.message().to_string(),
    })?;
    validate_region_name(&config.name).map_err(|reason| NodeError::Config { path, reason })?;
    Ok(config)
}

/// The node's key from its key file (checked like every open), without opening the store:
/// for asking another node as this one while `spindel run` holds the directory.
pub fn node_key(dir: &Path) -> Result<SecretKey, NodeError> {
    read_config(dir)?;
    read_key(&dir.join(KEY_FILE))
}
