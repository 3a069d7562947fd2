//! Making a node (`init`: key, store, first profile, then the config that marks it complete)
//! and opening one ([`LocalNode::open`]: an interrupted import is dropped or finished first).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use rand_core::CryptoRngCore;
use spindel_protocol::SecretKey;
use spindel_protocol::record::{Kind, SchemaError, validate_region_name};

use super::dir::{
    CONFIG_FILE, KEY_FILE, NodeConfig, RESTORED_MARKER, Role, read_config, read_key,
    read_offline_marker, write_config, write_key,
};
use super::error::{NodeError, io_err};
use super::node::{LocalNode, now_ms};
use super::reports::NodeInfo;
use crate::store::Store;

/// Creates a new node in `dir`. A region's first entry is its signed profile. On any failure
/// everything created is removed again.
pub fn init(
    dir: &Path,
    name: &str,
    role: Role,
    display_name: Option<&str>,
    rng: &mut impl CryptoRngCore,
) -> Result<NodeInfo, NodeError> {
    init_open(dir, name, role, display_name, rng).map(|node| node.info())
}

/// What `init` puts in a region's first profile beyond its name.
#[derive(Debug, Clone, Copy, Default)]
pub struct InitProfile<'a> {
    /// The region's name as people read it (default: its short name).
    pub display_name: Option<&'a str>,
    /// The region's website: `/integritet` names it as the contact for the region's records
    /// (an http or https URL, checked as the profile record checks it).
    pub website: Option<&'a str>,
}

/// [`init`] with the profile's display name and website.
pub fn init_with(
    dir: &Path,
    name: &str,
    role: Role,
    profile: InitProfile<'_>,
    rng: &mut impl CryptoRngCore,
) -> Result<NodeInfo, NodeError> {
    validate_region_name(name).map_err(NodeError::BadName)?;
    if role == Role::Aggregator && profile.website.is_some() {
        return Err(NodeError::Schema(SchemaError::new(
            "an aggregator has no profile: --website is for a region".to_string(),
        )));
    }
    in_new_node_dir(dir, || init_inner(dir, name, role, profile, rng)).map(|node| node.info())
}

/// [`init`], keeping the new node open (no second open that would wait for sled's file lock).
pub fn init_open(
    dir: &Path,
    name: &str,
    role: Role,
    display_name: Option<&str>,
    rng: &mut impl CryptoRngCore,
) -> Result<LocalNode, NodeError> {
    validate_region_name(name).map_err(NodeError::BadName)?;
    let profile = InitProfile {
        display_name,
        website: None,
    };
    in_new_node_dir(dir, || init_inner(dir, name, role, profile, rng))
}

/// Runs `make` to create a node in `dir`: refuses a `dir` that holds a node, creates it (0700)
/// if missing, and on failure removes everything made, so nothing is left half-written.
pub(crate) fn in_new_node_dir<T>(
    dir: &Path,
    make: impl FnOnce() -> Result<T, NodeError>,
) -> Result<T, NodeError> {
    if [CONFIG_FILE, KEY_FILE, "store"]
        .iter()
        .any(|f| dir.join(f).exists())
    {
        return Err(NodeError::AlreadyANode(dir.to_path_buf()));
    }
    let created_dir = !dir.exists();
    if !created_dir && fs::read_dir(dir).map_err(io_err(dir))?.next().is_some() {
        return Err(NodeError::NotEmpty(dir.to_path_buf()));
    }
    if created_dir {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
    } else {
        // An existing (empty) directory may have been made with a umask that lets every
        // local user read it: the node's directory is its owner's alone.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    }
    let result = make();
    if result.is_err() {
        if created_dir {
            let _ = fs::remove_dir_all(dir);
        } else {
            for f in [
                KEY_FILE,
                CONFIG_FILE,
                RESTORED_MARKER,
                "config.toml.tmp",
                crate::users::USERS_FILE,
                crate::users::AUDIT_FILE,
            ] {
                let _ = fs::remove_file(dir.join(f));
            }
            for d in ["store", "index", crate::payloads::PAYLOADS_DIR] {
                let _ = fs::remove_dir_all(dir.join(d));
            }
        }
    }
    result
}

fn init_inner(
    dir: &Path,
    name: &str,
    role: Role,
    profile: InitProfile<'_>,
    rng: &mut impl CryptoRngCore,
) -> Result<LocalNode, NodeError> {
    let display_name = profile.display_name;
    let key = SecretKey::generate(rng);
    write_key(&dir.join(KEY_FILE), &key)?;
    let config = NodeConfig {
        name: name.to_string(),
        role,
        display_name: display_name.map(|d| d.trim().to_string()),
    };
    let store = Store::open(dir)?;
    store.admit(&key.node_id(), Some(name.to_string()))?;
    let node = LocalNode {
        dir: dir.to_path_buf(),
        config: config.clone(),
        key,
        store,
        own_log: std::sync::Mutex::new(()),
        restored: std::sync::atomic::AtomicBool::new(false),
        offline_from: std::sync::Mutex::new(None),
    };
    if role == Role::Region {
        let mut json = serde_json::json!({
            "display_name": display_name.unwrap_or(name),
            "name": name,
        });
        if let Some(website) = profile.website {
            json["website"] = serde_json::Value::String(website.trim().to_string());
        }
        node.publish(Kind::Profile, &json.to_string(), None, rng, now_ms())?;
    }
    node.store.flush()?;
    // The config is written last, atomically: its presence marks a complete node.
    write_config(dir, &config)?;
    Ok(node)
}

impl LocalNode {
    /// Opens the node in `dir`.
    pub fn open(dir: &Path) -> Result<LocalNode, NodeError> {
        let config = read_config(dir)?;
        let key = read_key(&dir.join(KEY_FILE))?;
        let store = Store::open(dir)?;
        // A store made anew beside an existing key (see StoreError::OldFormat) takes its own
        // log back from the aggregator: its own key must be admitted in it.
        if !store.is_admitted(&key.node_id())? {
            store.admit(&key.node_id(), Some(config.name.clone()))?;
        }
        let restored = dir.join(RESTORED_MARKER).exists();
        let node = LocalNode {
            dir: dir.to_path_buf(),
            config,
            key,
            store,
            own_log: std::sync::Mutex::new(()),
            restored: std::sync::atomic::AtomicBool::new(restored),
            offline_from: std::sync::Mutex::new(read_offline_marker(dir)),
        };
        // An import a crash interrupted is dropped or finished before anything reads the
        // store. One that cannot be finished keeps the own log from signing (each write
        // tries again and names the problem) but leaves the node readable.
        if let Err(e) = node.recover_import() {
            tracing::error!(error = %e, "an interrupted import could not be finished; this node signs nothing until it is");
        }
        Ok(node)
    }
}
