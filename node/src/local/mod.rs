//! A node's data directory and the operations a person runs on it: init, publish, import,
//! delete, status, query.
//!
//! ```text
//! DIR/config.toml   name, role (written last by init: its presence means "a node lives here")
//! DIR/node.key      the ed25519 secret key, 64 hex characters, mode 0600
//! DIR/node.key.next, node.key.retired-<time>   a key rotation's new and old key (rotation.rs)
//! DIR/store/        sled: the signed logs and everything derived (see `crate::store`)
//! DIR/index/        tantivy full-text index, derived, rebuilt when stale
//! DIR/import.*      an import on its way into the store (see import.rs), erased when in
//! ```
//!
//! Its files, each below the ones that use it: `error.rs` ([`NodeError`] and the import's
//! limits), `dir.rs` (the files of the data directory: config, key, markers), `reports.rs`
//! (what the operations report), `node.rs` ([`LocalNode`], its reads and markers), `writes.rs`
//! (the own log's writes and admissions), `acts.rs` (the charter and the membership acts), `rotation.rs` (`rotate-key`), `import.rs` (`spindel import`), `init.rs` (`init`
//! and [`LocalNode::open`]), `witness.rs` (checkpoints, cosignatures, findings, the audit).

mod acts;
mod dir;
mod error;
mod import;
mod init;
mod node;
mod reports;
mod rotation;
mod witness;
mod writes;

pub use acts::{ActRequest, Acted, Adopted};
pub use dir::{
    CONFIG_FILE, KEY_FILE, KEY_FILE_BYTES_MAX, NodeConfig, OFFLINE_MARKER, RESTORED_MARKER, Role,
    create_file_atomically, node_key, read_config, write_file_atomically,
};
pub(crate) use dir::{write_config, write_key};
pub use error::{
    IMPORT_BYTES_MAX, IMPORT_ERRORS_SHOWN, IMPORT_FILE_BYTES_MAX, IMPORT_LINE_BYTES_MAX,
    IMPORT_RECORDS_MAX, ImportFileProblem, ImportLineError, LineError, MembershipRefusal,
    NodeError,
};
pub use import::{
    IMPORT_APPLIED, IMPORT_CHUNK_ENTRIES, IMPORT_COMMITTED, IMPORT_FAULT, IMPORT_STAGING,
    IMPORT_UPLOAD, ImportFault, ImportSource, erase_file,
};
pub(crate) use init::in_new_node_dir;
pub use init::{InitProfile, init, init_open, init_with};
pub use node::{LocalNode, identity, now_ms};
pub use reports::Handover;
pub use reports::{
    Allowed, AuthorStatus, Deleted, Disallowed, ForkStatus, Imported, NO_WEBSITE_WARNING, NodeInfo,
    NotSent, OFFLINE_WARNING, Published, Status, fork_advice, other_copy_advice,
};
pub use reports::{
    ERASURES_PER_PAGE, ErasureView, KeyView, MembershipReport, OrderReason, OwnAct,
    PendingEndorsement, PendingRevocationView, RegionMembership, RevokedView, membership_report,
    membership_report_in,
};
pub use rotation::{NEXT_KEY_FILE, RETIRED_KEY_PREFIX, Rotated};
pub use witness::{
    AUDIT_ANSWER_BYTES_MAX, AggregatorAudit, AuditBundle, AuditFinding, AuditHead, AuditReport,
    Cosigner, LatestCheckpoint, WitnessDone, WitnessJob,
};
