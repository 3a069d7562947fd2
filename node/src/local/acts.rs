//! Membership under a charter, as a region's operator acts on it: adopting the charter
//! (`init --charter`, `spindel charter adopt`) and the two acts (`spindel endorse`,
//! `spindel revoke`), each an ordinary signed record in the region's own log, checked here
//! first so an act that would count nothing is refused with the reason (decision 0041).

use serde::{Deserialize, Serialize};
use spindel_protocol::NodeId;
use spindel_protocol::charter::{SignedCharter, VerifiedCharter};
use spindel_protocol::entry::RecordId;
use spindel_protocol::membership::{Endorsement, ErasureOrder, Revocation, Standing};
use spindel_protocol::record::Kind;
use spindel_protocol::time::rfc3339_ms;

use super::error::{MembershipRefusal, NodeError};
use super::node::LocalNode;

/// A membership act a region's operator asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "act", rename_all = "lowercase")]
pub enum ActRequest {
    /// `spindel endorse NODEID --name NAME [--replaces OLD [--upto SEQ]]`.
    Endorse {
        node: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<String>,
        /// With `replaces`: the old key's last entry that stays (default: this node's head of
        /// it). A leaked key is cut before the thief's entries this way.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upto: Option<u64>,
    },
    /// `spindel revoke NODEID --reason TEXT`.
    Revoke { node: String, reason: String },
    /// `spindel erase AUTHOR/RECORD_ID --reason TEXT`.
    Erase {
        author: String,
        record: String,
        reason: String,
    },
}

/// What `endorse` and `revoke` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acted {
    /// `endorsement`, `revocation` or `erasure`.
    pub kind: String,
    /// The act's record in this region's log (`spindel delete` withdraws it before it takes
    /// effect).
    pub record_id: String,
    pub seq: u64,
    /// The key acted on (an erasure: the record's author), and the name it is (to be) a
    /// member under (an erasure: its region's name).
    pub node: String,
    pub name: String,
    /// Distinct member regions whose act of this kind on this key counts now (this one
    /// included), and how many the charter needs.
    pub counted: usize,
    pub threshold: usize,
    /// The act took effect: the key is a member now (endorse), its region is not (revoke),
    /// or the record is erased everywhere (erase).
    pub done: bool,
    /// An erasure order: the record it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// An erasure that took effect: when it did (RFC 3339; the record is hidden from then on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<String>,
    /// An erasure that took effect: when this node erases the record's bytes for good, if it
    /// holds them (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<String>,
    #[serde(default)]
    pub offline: bool,
}

/// What `charter adopt` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adopted {
    pub network: String,
    pub id: String,
    pub threshold: u32,
    pub founders: usize,
    /// This node's standing under it: `member` (a founder or endorsed), `newcomer`, or
    /// `aggregator` (it carries the network, admitting member regions only).
    pub standing: String,
    pub name: Option<String>,
}

fn refused(why: MembershipRefusal) -> NodeError {
    NodeError::Membership(why)
}

fn key_of(field: &'static str, text: &str) -> Result<NodeId, NodeError> {
    text.parse::<NodeId>()
        .ok()
        .filter(NodeId::is_usable)
        .ok_or_else(|| {
            refused(MembershipRefusal::BadKey {
                field,
                text: text.chars().take(80).collect(),
            })
        })
}

fn record_of(text: &str) -> Result<RecordId, NodeError> {
    text.parse::<RecordId>().map_err(|_| {
        refused(MembershipRefusal::BadRecord {
            text: text.chars().take(80).collect(),
        })
    })
}

impl LocalNode {
    /// Adopts a charter (complete: every founder signed) as this node's, for good. A node
    /// holding another charter refuses it; the same one again changes nothing.
    pub fn adopt_charter(&self, signed: &SignedCharter) -> Result<Adopted, NodeError> {
        let charter: VerifiedCharter = signed.verify().map_err(NodeError::Charter)?;
        let members = self.store.adopt_charter(&charter, self.node_id())?;
        let aggregator = self.config.role == super::dir::Role::Aggregator;
        let (standing, name) = match members.membership.standing(&self.node_id()) {
            _ if aggregator => ("aggregator", None),
            Standing::Member { name } => ("member", Some(name)),
            Standing::Former { name, .. } => ("former", Some(name)),
            Standing::Stranger => ("newcomer", None),
        };
        tracing::info!(network = %charter.charter.network, id = %charter.id, standing, "charter adopted");
        Ok(Adopted {
            network: charter.charter.network.clone(),
            id: charter.id.to_hex(),
            threshold: charter.charter.threshold,
            founders: charter.charter.founders.len(),
            standing: standing.into(),
            name,
        })
    }

    /// The record an act is published as, after checking it would count: a charter is held,
    /// this region is a member, and the act applies to the key as things stand here.
    pub fn act_record(&self, act: &ActRequest) -> Result<(Kind, String), NodeError> {
        let members = self
            .store
            .members()
            .ok_or(refused(MembershipRefusal::NoCharter))?;
        let me = self.node_id();
        if !members.is_member(&me) {
            return Err(refused(MembershipRefusal::NotAMember));
        }
        let m = &members.membership;
        let head = |id: &NodeId| -> Result<u64, NodeError> {
            Ok(self.store.head(id)?.map_or(0, |h| h.seq))
        };
        match act {
            ActRequest::Endorse {
                node,
                name,
                replaces,
                upto,
            } => {
                let id = key_of("node", node)?;
                if upto.is_some() && replaces.is_none() {
                    return Err(refused(MembershipRefusal::UptoWithoutReplaces));
                }
                if let Some(region) = m.region_of(&id) {
                    let (key, region) = (id, region.name.clone());
                    return Err(refused(match m.standing(&id) {
                        Standing::Member { .. } => MembershipRefusal::AlreadyMember { key, region },
                        _ => MembershipRefusal::FormerKey { key, region },
                    }));
                }
                let replaces = match replaces {
                    Some(old) => {
                        let old = key_of("replaces", old)?;
                        let Some(region) = m.region_of(&old) else {
                            return Err(refused(MembershipRefusal::ReplacesUnknown { key: old }));
                        };
                        if region.name != *name {
                            return Err(refused(MembershipRefusal::ReplacesOtherName {
                                key: old,
                                region: region.name.clone(),
                            }));
                        }
                        let held = head(&old)?;
                        match upto {
                            Some(u) if *u > held => {
                                return Err(refused(MembershipRefusal::UptoBeyond {
                                    key: old,
                                    upto: *u,
                                    held,
                                }));
                            }
                            Some(u) => Some((old, *u)),
                            None => Some((old, held)),
                        }
                    }
                    None => {
                        if let Some(held) = m.regions.iter().find(|r| r.name == *name) {
                            return Err(refused(MembershipRefusal::NameHeld {
                                name: name.clone(),
                                holder: held.key(),
                            }));
                        }
                        None
                    }
                };
                // One vote a region for a key, whatever name it gave.
                if m.pending
                    .iter()
                    .any(|p| p.node == id && p.endorsed_by.contains(&me))
                {
                    return Err(refused(MembershipRefusal::EndorsedTwice {
                        key: id,
                        name: name.clone(),
                    }));
                }
                let record = Endorsement {
                    node: id.to_hex(),
                    name: name.clone(),
                    replaces: replaces.map(|(old, _)| old.to_hex()),
                    upto: replaces.map(|(_, upto)| upto),
                };
                Ok((Kind::Endorsement, serde_json::to_string(&record)?))
            }
            ActRequest::Revoke { node, reason } => {
                let id = key_of("node", node)?;
                match m.standing(&id) {
                    Standing::Member { .. } => {}
                    Standing::Former { name, .. } => {
                        return Err(refused(MembershipRefusal::RevokeFormer {
                            key: id,
                            region: name,
                        }));
                    }
                    Standing::Stranger => {
                        return Err(refused(MembershipRefusal::RevokeStranger { key: id }));
                    }
                }
                if m.pending_revocations
                    .iter()
                    .any(|p| p.node == id && p.revoked_by.contains(&me))
                {
                    return Err(refused(MembershipRefusal::RevokedTwice { key: id }));
                }
                let record = Revocation {
                    node: id.to_hex(),
                    reason: reason.clone(),
                    upto: head(&id)?,
                };
                Ok((Kind::Revocation, serde_json::to_string(&record)?))
            }
            ActRequest::Erase {
                author,
                record,
                reason,
            } => {
                let id = key_of("author", author)?;
                let rid = record_of(record)?;
                match self.store.record_meta(&id, &rid)? {
                    None => {
                        return Err(refused(MembershipRefusal::EraseUnknown {
                            author: id,
                            record: rid,
                        }));
                    }
                    Some(meta) if meta.kind.is_membership() => {
                        return Err(refused(MembershipRefusal::EraseAct { record: rid }));
                    }
                    Some(_) => {}
                }
                if m.is_erased(&id, &rid) {
                    return Err(refused(MembershipRefusal::ErasedAlready { record: rid }));
                }
                if m.pending_erasures
                    .iter()
                    .any(|p| p.author == id && p.record == rid && p.ordered_by.contains(&me))
                {
                    return Err(refused(MembershipRefusal::OrderedTwice { record: rid }));
                }
                let order = ErasureOrder {
                    author: id.to_hex(),
                    record: rid.to_hex(),
                    reason: reason.clone(),
                };
                Ok((Kind::Erasure, serde_json::to_string(&order)?))
            }
        }
    }

    /// What an act published as `record_id` at `seq` counts for now.
    pub fn acted(
        &self,
        act: &ActRequest,
        record_id: &str,
        seq: u64,
        offline: bool,
    ) -> Result<Acted, NodeError> {
        let members = self
            .store
            .members()
            .ok_or(refused(MembershipRefusal::NoCharter))?;
        let m = &members.membership;
        let (kind, node) = match act {
            ActRequest::Endorse { node, .. } => ("endorsement", key_of("node", node)?),
            ActRequest::Revoke { node, .. } => ("revocation", key_of("node", node)?),
            ActRequest::Erase { author, .. } => ("erasure", key_of("author", author)?),
        };
        let region = m.region_of(&node);
        let mut erased_record = None;
        let (mut erased_at, mut held_until) = (None, None);
        let (name, counted, done) = match act {
            ActRequest::Erase { record, .. } => {
                let rid = record_of(record)?;
                erased_record = Some(rid.to_hex());
                let name = region.map(|r| r.name.clone()).unwrap_or_default();
                match m
                    .erased
                    .iter()
                    .find(|e| e.author == node && e.record == rid)
                {
                    Some(e) => {
                        erased_at = Some(rfc3339_ms(e.at_ms));
                        held_until = self
                            .store
                            .held_payload(&node, &rid)?
                            .map(|h| rfc3339_ms(self.store.erasure_due_ms(e.at_ms, h.since_ms)));
                        (name, e.by.len(), true)
                    }
                    None => (
                        name,
                        m.pending_erasures
                            .iter()
                            .find(|p| p.author == node && p.record == rid)
                            .map_or(0, |p| p.ordered_by.len()),
                        false,
                    ),
                }
            }
            ActRequest::Endorse { name, .. } => match region {
                Some(r) => (r.name.clone(), r.endorsed_by.len(), true),
                None => (
                    name.clone(),
                    m.pending
                        .iter()
                        .find(|p| p.node == node && p.name == *name)
                        .map_or(0, |p| p.endorsed_by.len()),
                    false,
                ),
            },
            ActRequest::Revoke { .. } => {
                let name = region.map(|r| r.name.clone()).unwrap_or_default();
                match region.and_then(|r| r.revoked.as_ref()) {
                    Some(revoked) => (name, revoked.by.len(), true),
                    None => (
                        name,
                        m.pending_revocations
                            .iter()
                            .find(|p| p.node == node)
                            .map_or(0, |p| p.revoked_by.len()),
                        false,
                    ),
                }
            }
        };
        Ok(Acted {
            kind: kind.into(),
            record_id: record_id.into(),
            seq,
            node: node.to_hex(),
            name,
            counted,
            threshold: m.threshold,
            done,
            record: erased_record,
            erased_at,
            held_until,
            offline,
        })
    }

    /// Refuses to delete an act that took effect: withdrawing it would change who belongs,
    /// which only another act does (a revocation, a replacement).
    pub(super) fn check_withdrawal(&self, record_id: &RecordId) -> Result<(), NodeError> {
        if let Some(members) = self.store.members()
            && members.took_effect(&(self.node_id(), *record_id))
        {
            return Err(refused(MembershipRefusal::TookEffect {
                record: *record_id,
            }));
        }
        Ok(())
    }
}
