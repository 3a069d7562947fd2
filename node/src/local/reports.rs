//! What the node's operations report (`init`, `publish`, `import`, `allow`, `delete`,
//! `status`) and the advice `status` gives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::dir::Role;

/// What a write signed offline says (CLI stderr, `status`), in one line.
pub const OFFLINE_WARNING: &str = "no aggregator has confirmed this node since it started, so \
     this was signed offline: it is sent when the link is up; if another copy of this node's \
     key (an older or restored data directory) may be running, stop it first, or the region's \
     log forks";

/// What `init` and `id` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node_id: String,
    pub name: String,
    pub role: Role,
}

/// What `publish` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub record_id: String,
    pub seq: u64,
    /// Hash of the new entry's header.
    pub entry: String,
    /// Signed while no pinned aggregator had confirmed this node since it started (it
    /// published offline after the catch-up wait): the entry goes out when a link is up, and
    /// if another copy of this key runs, the two fork (see [`OFFLINE_WARNING`]).
    #[serde(default)]
    pub offline: bool,
}

/// What `import` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imported {
    pub imported: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Signed offline (see [`Published::offline`]).
    #[serde(default)]
    pub offline: bool,
}

/// What `allow` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allowed {
    pub node_id: String,
    pub name: Option<String>,
    /// An aggregator allowed to mirror this one (`allow --mirror`): it has no name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror: bool,
}

/// What `disallow` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disallowed {
    pub node_id: String,
    /// The name it was admitted under, now free.
    pub name: Option<String>,
    /// Always false: the region is no longer admitted.
    pub admitted: bool,
    /// It was a mirror aggregator, now no longer allowed to mirror this one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror: bool,
}

/// What `delete` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    pub record_id: String,
    pub seq: u64,
    /// Signed offline (see [`Published::offline`]).
    #[serde(default)]
    pub offline: bool,
}

/// One author as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorStatus {
    pub node_id: String,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub admitted: bool,
    pub frozen: bool,
    pub head: u64,
    pub records: u64,
    /// Signed payload bytes of its current versions (the payload quota's count).
    #[serde(default)]
    pub payload_bytes: u64,
    /// This node itself (on an aggregator: its own key, which authors nothing).
    #[serde(default)]
    pub own: bool,
}

/// A proven fork as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForkStatus {
    pub author: String,
    /// The region's name, when known.
    #[serde(default)]
    pub name: Option<String>,
    pub seq: u64,
    /// Hashes of the two signed entries with this seq (the first is the one kept).
    pub first: String,
    pub second: String,
    /// This node's own log forked.
    #[serde(default)]
    pub own: bool,
    /// What the operator should do, in one sentence.
    #[serde(default)]
    pub advice: String,
}

/// The one sentence `status` gives an operator about a fork.
pub fn fork_advice(own: bool, name: Option<&str>, seq: u64) -> String {
    if own {
        format!(
            "This node's own log forked at seq {seq}: two copies of this key signed entries with \
             the same seq (both running at once, or one that published while it could not reach \
             the aggregator), and nothing this key signs is accepted any more; stop every \
             copy, create a new node with `spindel init` and ask the aggregator's operator to \
             admit its key under this region's name (`spindel allow NEW_NODEID --name NAME`)."
        )
    } else {
        format!(
            "Region {} signed two different entries with seq {seq}: two copies of its key signed \
             (both running at once, or a copy that published while it could not reach the \
             aggregator); nothing more is accepted from that key, and its operator replaces the \
             node with a new key that the aggregator admits.",
            name.unwrap_or("(unnamed)")
        )
    }
}

/// What `status` reports (the keys of docs/interface.md first; more keys are welcome).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub node_id: String,
    pub name: String,
    pub role: Role,
    /// Current, non-deleted records of every author held here.
    pub records: u64,
    pub heads: BTreeMap<String, u64>,
    pub peers: Vec<serde_json::Value>,
    pub authors: Vec<AuthorStatus>,
    pub refused: BTreeMap<String, u64>,
    /// Refusals per author (NodeId) and reason.
    #[serde(default)]
    pub refused_by_author: BTreeMap<String, BTreeMap<String, u64>>,
    pub forks: Vec<ForkStatus>,
    pub generation: u64,
    /// Restored from a backup and not caught up with an aggregator yet: publishing waits.
    #[serde(default)]
    pub restored: bool,
    /// The name the aggregator admitted this region under, when it is not `name`: the
    /// network shows its records under this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_as: Option<String>,
    /// What the operator should see to, one sentence each (e.g. a region's profile without a
    /// website, so `/integritet` names no contact for its records).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// A running node that refuses to sign: a pinned aggregator refused its session because
    /// another copy of its key is connected there (the aggregator's words: where, since when).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_copy: Option<String>,
    /// A running region that dials aggregators and none has taken a session of it since it
    /// started: what it signs now is signed offline ([`OFFLINE_WARNING`]).
    #[serde(default)]
    pub offline: bool,
    /// Own entries this node holds that no pinned aggregator has acknowledged (signed
    /// offline, or not sent yet), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_sent: Option<NotSent>,
    /// While `other_copy`, and this copy holds entries the network lacks: which, and what to
    /// do, in one paragraph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_copy_advice: Option<String>,
    /// Under a charter: the network's membership (regions, keys, pending acts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<MembershipReport>,
    /// A key rotation signed and not switched to yet (`spindel rotate-key`): the node signs
    /// nothing until an aggregator holds the rotation and it runs under the new key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
}

/// Own entries `first..=last` no pinned aggregator has acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotSent {
    pub first: u64,
    pub last: u64,
    pub count: u64,
}

/// What `status` tells the operator of a copy an aggregator refuses while it holds own
/// entries the network lacks (`deploy/README.md`, "Two copies of one key", says the same).
/// `address`: where the other copy is connected from; `held`: how far the aggregator holds
/// this key's log (the other copy's).
pub fn other_copy_advice(range: &NotSent, address: Option<&str>, held: Option<u64>) -> String {
    let entries = if range.first == range.last {
        format!("entry {}", range.first)
    } else {
        format!("entries {}-{}", range.first, range.last)
    };
    let other = match address {
        Some(a) => format!("the other copy, connected from {a}, is live"),
        None => "the other copy is live".to_string(),
    };
    let before = range.first.saturating_sub(1);
    match held {
        Some(h) if h >= range.first => format!(
            "this copy holds {entries} that the network does not have; {other} and has signed \
             up to entry {h}, so this copy's {entries} can never join the log. Stop this copy, \
             disable it and move its node.key away, keep the other, and publish this copy's \
             records again there (`spindel query --data-dir` on this directory shows them)."
        ),
        _ => format!(
            "this copy holds {entries} that the network does not have; {other}. If this \
             directory is the old one, stop it, disable it and move its node.key away, keep the \
             other, and publish this copy's records again there. If this one is the right one, \
             stop the other copy first (and move its node.key away) before it signs past entry \
             {before}: this copy then links, sends its {entries} and signs again."
        ),
    }
}

/// `status`'s warning while a region's profile has no website.
pub const NO_WEBSITE_WARNING: &str = "the region's profile has no website, so /integritet \
     names no contact for its records: publish the profile with a \"website\" (spindel \
     publish --kind profile, or Profil in the editor)";

/// A network's membership as `status`, `/api/v1/network` and `/natverket` show it: the
/// charter, each region with its keys, and the acts still pending. Keys are hex; the acting
/// regions are named by their names in the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipReport {
    pub network: String,
    /// The charter id (SHA-256 of its signed bytes).
    pub charter: String,
    pub threshold: usize,
    pub regions: Vec<RegionMembership>,
    pub pending: Vec<PendingEndorsement>,
    pub pending_revocations: Vec<PendingRevocationView>,
    /// The members' erasure orders: records erased, and orders still short of the
    /// threshold, each with the orders' reasons.
    #[serde(default)]
    pub erasures: Vec<ErasureView>,
    /// This node's own acts that have not taken effect: each may still be withdrawn
    /// (`spindel delete RECORD_ID`, or Dra tillbaka in Redaktionen).
    #[serde(default)]
    pub own_pending: Vec<OwnAct>,
}

/// One of this node's acts still pending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnAct {
    /// The act's record in this region's log.
    pub record_id: String,
    /// `endorsement`, `revocation` or `erasure`.
    pub kind: String,
    /// What it is about: the region's name (an erasure: `AUTHOR/RECORD_ID`).
    pub about: String,
}

/// A record the member regions ordered erased, or an order still pending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasureView {
    /// The record's author key and id.
    pub author: String,
    pub record: String,
    /// The name of the author's region (its key's first characters if none).
    pub region: String,
    /// `erased` or `pending`.
    pub state: String,
    /// When it took effect (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The regions whose orders count (took effect: counted).
    pub ordered_by: Vec<String>,
    /// Each order's reason, by the ordering region's name.
    pub reasons: Vec<OrderReason>,
}

/// One region's reason for an erasure order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderReason {
    pub region: String,
    pub reason: String,
}

/// One region of the network, member or former.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionMembership {
    pub name: String,
    /// Its live key (the newest).
    pub node: String,
    /// `member` or `former` (revoked).
    pub state: String,
    pub founder: bool,
    /// When it became a member (RFC 3339): the charter's creation for a founder.
    pub since: String,
    /// The regions whose endorsements admitted it (none for a founder).
    pub endorsed_by: Vec<String>,
    /// When it was revoked, and by which regions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<RevokedView>,
    /// Every key it has had, oldest first.
    pub keys: Vec<KeyView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokedView {
    pub at: String,
    pub by: Vec<String>,
}

/// One key of a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyView {
    pub node: String,
    pub since: String,
    /// The last seq of its log that counts, once the key was replaced or its region revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// Why it ended (`rotated`, `replaced`, `revoked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

/// A key endorsed by fewer member regions than the threshold so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingEndorsement {
    pub node: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    pub endorsed_by: Vec<String>,
    /// Why it cannot take effect even at the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}

/// A member asked to be revoked by fewer member regions than the threshold so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRevocationView {
    pub node: String,
    pub name: String,
    pub revoked_by: Vec<String>,
}

/// The report of `members` (see [`MembershipReport`]).
pub fn membership_report(members: &crate::store::Members) -> MembershipReport {
    use spindel_protocol::time::rfc3339_ms;
    let m = &members.membership;
    let named = |keys: &[spindel_protocol::NodeId]| -> Vec<String> {
        keys.iter()
            .map(|k| {
                m.region_of(k)
                    .map_or_else(|| k.to_hex()[..8].to_string(), |r| r.name.clone())
            })
            .collect()
    };
    MembershipReport {
        network: members.charter.charter.network.clone(),
        charter: members.charter.id.to_hex(),
        threshold: m.threshold,
        regions: m
            .regions
            .iter()
            .map(|r| RegionMembership {
                name: r.name.clone(),
                node: r.key().to_hex(),
                state: if r.active() { "member" } else { "former" }.into(),
                founder: r.founder,
                since: rfc3339_ms(if r.founder {
                    members.charter.charter.created_ms
                } else {
                    r.since_ms
                }),
                endorsed_by: named(&r.endorsed_by),
                revoked: r.revoked.as_ref().map(|v| RevokedView {
                    at: rfc3339_ms(v.at_ms),
                    by: named(&v.by),
                }),
                keys: r
                    .keys
                    .iter()
                    .map(|k| KeyView {
                        node: k.node.to_hex(),
                        since: rfc3339_ms(match k.since_ms {
                            0 => members.charter.charter.created_ms,
                            t => t,
                        }),
                        until: k.until,
                        ended: k.ended.map(str::to_string),
                    })
                    .collect(),
            })
            .collect(),
        pending: m
            .pending
            .iter()
            .map(|p| PendingEndorsement {
                node: p.node.to_hex(),
                name: p.name.clone(),
                replaces: p.replaces.map(|r| r.to_hex()),
                endorsed_by: named(&p.endorsed_by),
                blocked: p.blocked.clone(),
            })
            .collect(),
        pending_revocations: m
            .pending_revocations
            .iter()
            .map(|p| PendingRevocationView {
                node: p.node.to_hex(),
                name: p.name.clone(),
                revoked_by: named(&p.revoked_by),
            })
            .collect(),
        erasures: m
            .erased
            .iter()
            .map(|e| (e.author, e.record, "erased", Some(e.at_ms), &e.by))
            .chain(
                m.pending_erasures
                    .iter()
                    .map(|p| (p.author, p.record, "pending", None, &p.ordered_by)),
            )
            .map(|(author, record, state, at, by)| ErasureView {
                author: author.to_hex(),
                record: record.to_hex(),
                region: named(&[author]).remove(0),
                state: state.into(),
                at: at.map(rfc3339_ms),
                ordered_by: named(by),
                reasons: Vec::new(),
            })
            .collect(),
        own_pending: own_pending(members),
    }
}

/// This node's acts whose vote still stands and has not taken effect.
fn own_pending(members: &crate::store::Members) -> Vec<OwnAct> {
    use spindel_protocol::membership::What;
    let m = &members.membership;
    let me = members.me;
    members
        .own_acts()
        .filter_map(|(rid, what)| {
            let (kind, about) = match what {
                What::Endorse { node, name, .. } => (
                    "endorsement",
                    m.pending
                        .iter()
                        .any(|p| p.node == node && p.name == name && p.endorsed_by.contains(&me))
                        .then_some(name)?,
                ),
                What::Revoke { node, .. } => (
                    "revocation",
                    m.pending_revocations
                        .iter()
                        .find(|p| p.node == node && p.revoked_by.contains(&me))
                        .map(|p| p.name.clone())?,
                ),
                What::Erase { author, record } => (
                    "erasure",
                    m.pending_erasures
                        .iter()
                        .any(|p| {
                            p.author == author && p.record == record && p.ordered_by.contains(&me)
                        })
                        .then(|| format!("{author}/{record}"))?,
                ),
            };
            Some(OwnAct {
                record_id: rid.to_hex(),
                kind: kind.into(),
                about,
            })
        })
        .collect()
}

/// [`membership_report`] with each erasure order's reason, read from the orders held in
/// `store`.
pub fn membership_report_in(
    store: &crate::store::Store,
    members: &crate::store::Members,
) -> Result<MembershipReport, crate::store::StoreError> {
    let mut report = membership_report(members);
    let m = &members.membership;
    // An order naming a membership act erases nothing (an act is withdrawn by its author).
    let mut acts = std::collections::BTreeSet::new();
    for e in m
        .erased
        .iter()
        .map(|e| (e.author, e.record))
        .chain(m.pending_erasures.iter().map(|p| (p.author, p.record)))
    {
        if store
            .record_meta(&e.0, &e.1)?
            .is_some_and(|meta| meta.kind.is_membership())
        {
            acts.insert((e.0.to_hex(), e.1.to_hex()));
        }
    }
    report
        .erasures
        .retain(|v| !acts.contains(&(v.author.clone(), v.record.clone())));
    // Only the reasons of the orders that count (a non-member's order, or one of a region no
    // longer a member, is no part of the decision).
    let counted = |author: &spindel_protocol::NodeId,
                   record: &spindel_protocol::entry::RecordId,
                   by: &spindel_protocol::NodeId| {
        m.erased
            .iter()
            .find(|e| e.author == *author && e.record == *record)
            .map(|e| e.by.contains(by))
            .or_else(|| {
                m.pending_erasures
                    .iter()
                    .find(|p| p.author == *author && p.record == *record)
                    .map(|p| p.ordered_by.contains(by))
            })
            .unwrap_or(false)
    };
    for ((by, order), (author, record)) in members.erasure_orders() {
        if !counted(&author, &record, &by) {
            continue;
        }
        let Some(view) = report
            .erasures
            .iter_mut()
            .find(|v| v.author == author.to_hex() && v.record == record.to_hex())
        else {
            continue;
        };
        let Some(meta) = store.record_meta(&by, &order)? else {
            continue;
        };
        if let Some(spindel_protocol::record::Record::Erasure(o)) =
            store.load_record(&by, &order, &meta)?
        {
            view.reasons.push(OrderReason {
                region: m
                    .region_of(&by)
                    .map_or_else(|| by.to_hex()[..8].to_string(), |r| r.name.clone()),
                reason: o.reason,
            });
        }
    }
    Ok(report)
}

/// A key rotation signed and not yet switched to (`spindel rotate-key`): the node signs
/// nothing until it switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    /// The key handing over (this node's `node.key`).
    pub from: String,
    /// The region's new key (`node.key.next`).
    pub to: String,
    /// The rotation entry: the old key's last.
    pub seq: u64,
}
