//! Key rotation (`spindel rotate-key`): a region hands itself over to a new key it makes, in a
//! rotation entry its old key signs (an endorsement that `replaces` its own author; see
//! `spindel_protocol::membership`). The rotation takes effect where it is replayed, so the old
//! key's entries after it count nowhere; the node keeps signing nothing with the old key and
//! switches to the new one once an aggregator holds the rotation (an aggregator takes only a
//! member key's session, so the old key must carry the rotation there itself).
//!
//! ```text
//! DIR/node.key.next               the new key, written (0600) before the rotation is signed
//! DIR/node.key.retired-<time>     the old key after the switch (0600), never used again
//! ```
//!
//! The steps survive a crash at any point: the new key's file exists before the rotation
//! names it; the switch links the old key to its retired name and then renames the new key
//! over `node.key`, so `node.key` is always one of the two, and a node opened in between is
//! handing over (it signs nothing and switches again).

use std::fs;
use std::path::PathBuf;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use spindel_protocol::SecretKey;
use spindel_protocol::membership::{Endorsement, Standing};
use spindel_protocol::record::Kind;

use super::dir::{KEY_FILE, Role, read_key, write_key};
use super::error::{MembershipRefusal, NodeError, io_err};
use super::node::LocalNode;
use super::reports::Handover;

/// The new key between `rotate-key` and the switch.
pub const NEXT_KEY_FILE: &str = "node.key.next";
/// The old key after the switch: `node.key.retired-<UTC time>`.
pub const RETIRED_KEY_PREFIX: &str = "node.key.retired-";

/// What `spindel rotate-key` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rotated {
    pub region: String,
    pub from: String,
    pub to: String,
    /// The rotation entry in the old key's log.
    pub record_id: String,
    pub seq: u64,
    /// The node runs under the new key already (an aggregator holds the rotation).
    pub switched: bool,
    /// The old key's file after the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
}

fn refused(why: MembershipRefusal) -> NodeError {
    NodeError::Membership(why)
}

impl LocalNode {
    /// The rotation this node's key made, when it is this node's own region's live key no
    /// longer because of it (and the new key's file is here to switch to).
    pub fn handover(&self) -> Option<Handover> {
        let me = self.node_id();
        let (to, seq) = self.store.members()?.membership.rotated_to(&me)?;
        Some(Handover {
            from: me.to_hex(),
            to: to.to_hex(),
            seq,
        })
    }

    /// Under a charter only a live member key signs (records, imports, profile edits,
    /// deletions): a rotated, replaced or revoked key's new entries would reach no one, as no
    /// aggregator takes its session (a deletion included: the member regions' erasure order
    /// removes such a record).
    pub(crate) fn check_signs(&self) -> Result<(), NodeError> {
        let Some(members) = self.store.members() else {
            return Ok(());
        };
        let me = self.node_id();
        let Standing::Former { name, .. } = members.membership.standing(&me) else {
            return Ok(());
        };
        Err(refused(match self.handover() {
            Some(h) if self.dir.join(NEXT_KEY_FILE).exists() => MembershipRefusal::HandingOver {
                to: h.to,
                seq: h.seq,
            },
            Some(h) => MembershipRefusal::KeyRotated {
                region: name,
                to: h.to,
            },
            None => MembershipRefusal::KeyEnded { region: name },
        }))
    }

    /// Signs the rotation to a new key (made here, or the one a rotation that crashed before
    /// signing left in `node.key.next`): checked first, so a rotation that would count nothing
    /// is refused with the reason.
    pub fn rotate_key(
        &self,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
    ) -> Result<Rotated, NodeError> {
        if self.config.role == Role::Aggregator {
            return Err(refused(MembershipRefusal::AggregatorRotates));
        }
        let members = self
            .store
            .members()
            .ok_or(refused(MembershipRefusal::NoCharter))?;
        let me = self.node_id();
        let name = match members.membership.standing(&me) {
            Standing::Member { name } => name,
            _ => {
                self.check_signs()?;
                return Err(refused(MembershipRefusal::NotAMember));
            }
        };
        let _writer = self.own_log_writer()?;
        let next_path = self.dir.join(NEXT_KEY_FILE);
        let next = if next_path.exists() {
            let key = read_key(&next_path)?;
            if members.membership.region_of(&key.node_id()).is_some() || key.node_id() == me {
                return Err(refused(MembershipRefusal::NextKeyUsed {
                    path: next_path,
                    key: key.node_id(),
                }));
            }
            key
        } else {
            let key = SecretKey::generate(rng);
            write_key(&next_path, &key)?;
            fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(&self.dir))?;
            key
        };
        let seq = self.store.head(&me)?.map_or(0, |h| h.seq) + 1;
        let to = next.node_id();
        let record = Endorsement {
            node: to.to_hex(),
            name: name.clone(),
            replaces: Some(me.to_hex()),
            upto: Some(seq),
        };
        let record = self.prepare(Kind::Endorsement, &serde_json::to_string(&record)?)?;
        let record_id = self.target_record(Kind::Endorsement, None, rng)?;
        let (signed, _) = self.sign_and_apply(record_id, record, rng, now_ms)?;
        debug_assert_eq!(signed, seq);
        tracing::info!(region = %name, from = %me.short(), to = %to.short(), seq, "key rotation signed; the node switches once an aggregator holds it");
        Ok(Rotated {
            region: name,
            from: me.to_hex(),
            to: to.to_hex(),
            record_id: record_id.to_hex(),
            seq: signed,
            switched: false,
            retired: None,
        })
    }

    /// Switches the data directory to the new key: the old key's file is kept as
    /// `node.key.retired-<time>` (0600) and `node.key.next` becomes `node.key`. This opened
    /// node keeps the old key in memory and signs nothing; open the directory again to run
    /// under the new key.
    pub fn switch_key(&self, now_ms: u64) -> Result<PathBuf, NodeError> {
        let handover = self
            .handover()
            .ok_or(refused(MembershipRefusal::NoHandover))?;
        let next_path = self.dir.join(NEXT_KEY_FILE);
        let next = read_key(&next_path)?;
        if next.node_id().to_hex() != handover.to {
            return Err(refused(MembershipRefusal::NextKeyUsed {
                path: next_path,
                key: next.node_id(),
            }));
        }
        let key_path = self.dir.join(KEY_FILE);
        let retired = self
            .dir
            .join(format!("{RETIRED_KEY_PREFIX}{}", file_stamp(now_ms)));
        // A switch that crashed after the link left the old key retired already.
        let already = retired_keys(&self.dir)?
            .into_iter()
            .find(|p| read_key(p).is_ok_and(|k| k.node_id() == self.node_id()));
        let retired = match already {
            Some(p) => p,
            None => {
                fs::hard_link(&key_path, &retired).map_err(io_err(&retired))?;
                retired
            }
        };
        fs::rename(&next_path, &key_path).map_err(io_err(&key_path))?;
        // The old key's entries are delivered (the rotation, its last, is held): what the
        // offline marker counted was of its log.
        match fs::remove_file(self.dir.join(super::dir::OFFLINE_MARKER)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&self.dir.join(super::dir::OFFLINE_MARKER))(e)),
        }
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        tracing::info!(from = %handover.from, to = %handover.to, retired = %retired.display(), "switched to the new key");
        Ok(retired)
    }
}

/// A UTC time for a file name: `20261206T074512Z`.
fn file_stamp(ms: u64) -> String {
    let text = spindel_protocol::time::rfc3339_ms(ms);
    let mut stamp: String = text[..19]
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    stamp.push('Z');
    stamp
}

/// The retired key files of a data directory.
fn retired_keys(dir: &std::path::Path) -> Result<Vec<PathBuf>, NodeError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(RETIRED_KEY_PREFIX))
        {
            out.push(entry.path());
        }
    }
    Ok(out)
}
