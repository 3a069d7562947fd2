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
    /// Lines naming an own record whose content they hold already: nothing published for
    /// them (an export imported again unchanged is no new version).
    #[serde(default)]
    pub unchanged: u64,
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
    /// The members' erasure orders, a page of [`ERASURES_PER_PAGE`] at a time: orders still
    /// short of the threshold first, then records erased, newest first, each with the
    /// orders' reasons.
    #[serde(default)]
    pub erasures: Vec<ErasureView>,
    /// How many erasures and pending orders there are, the page listed (from 1), and the
    /// number of pages.
    #[serde(default)]
    pub erasures_total: usize,
    #[serde(default)]
    pub erasures_page: usize,
    #[serde(default)]
    pub erasures_pages: usize,
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
    /// Erased, and this node still holds the record's bytes (hidden from every read, in case
    /// an act signed earlier undoes the order): when they are erased for good (RFC 3339).
    /// Absent once they are, and on a node that never held them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<String>,
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

/// Erasures and pending erasure orders a membership report lists at once (`erasures_page`
/// pages through the rest): each listed order's reasons are read from its record, so a page
/// costs at most this many reads, however many orders the network has signed.
pub const ERASURES_PER_PAGE: usize = 50;

/// The report of `members` (see [`MembershipReport`]), with page `page` (from 1) of its
/// erasures.
pub fn membership_report(members: &crate::store::Members, page: usize) -> MembershipReport {
    use spindel_protocol::time::rfc3339_ms;
    let m = &members.membership;
    // Pending orders first, then erasures, newest first; an order naming a membership act
    // erases nothing (an act is withdrawn by its author) and is left out.
    let erasures = || {
        m.pending_erasures
            .iter()
            .map(|p| (p.author, p.record, "pending", None, &p.ordered_by))
            .chain(
                m.erased
                    .iter()
                    .rev()
                    .map(|e| (e.author, e.record, "erased", Some(e.at_ms), &e.by)),
            )
            .filter(|(author, record, ..)| !members.is_act(author, record))
    };
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
        erasures_total: erasures().count(),
        erasures_page: page.max(1),
        erasures_pages: erasures().count().div_ceil(ERASURES_PER_PAGE),
        erasures: erasures()
            .skip((page.max(1) - 1).saturating_mul(ERASURES_PER_PAGE))
            .take(ERASURES_PER_PAGE)
            .map(|(author, record, state, at, by)| ErasureView {
                author: author.to_hex(),
                record: record.to_hex(),
                region: named(&[author]).remove(0),
                state: state.into(),
                at: at.map(rfc3339_ms),
                ordered_by: named(by),
                reasons: Vec::new(),
                held_until: None,
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

/// [`membership_report`] with each listed erasure order's reasons, read from the orders held
/// in `store`, and whether this node still holds the erased record's bytes. Only the page's
/// orders are read.
pub fn membership_report_in(
    store: &crate::store::Store,
    members: &crate::store::Members,
    page: usize,
) -> Result<MembershipReport, crate::store::StoreError> {
    use spindel_protocol::NodeId;
    use spindel_protocol::entry::RecordId;
    use std::str::FromStr;
    let mut report = membership_report(members, page);
    let m = &members.membership;
    let target = |v: &ErasureView| -> Option<(NodeId, RecordId)> {
        Some((
            NodeId::from_str(&v.author).ok()?,
            RecordId::from_str(&v.record).ok()?,
        ))
    };
    let listed: std::collections::HashMap<(NodeId, RecordId), usize> = report
        .erasures
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((target(v)?, i)))
        .collect();
    for e in &m.erased {
        if let Some(i) = listed.get(&(e.author, e.record))
            && let Some(held) = store.held_payload(&e.author, &e.record)?
        {
            report.erasures[*i].held_until = Some(spindel_protocol::time::rfc3339_ms(
                store.erasure_due_ms(e.at_ms, held.since_ms),
            ));
        }
    }
    // Only the reasons of the orders that count (a non-member's order, or one of a region no
    // longer a member, is no part of the decision).
    let counted = |author: &NodeId, record: &RecordId, by: &NodeId| {
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
        let Some(i) = listed.get(&(author, record)) else {
            continue;
        };
        if !counted(&author, &record, &by) {
            continue;
        }
        let Some(meta) = store.record_meta(&by, &order)? else {
            continue;
        };
        if let Some(spindel_protocol::record::Record::Erasure(o)) =
            store.load_record(&by, &order, &meta)?
        {
            report.erasures[*i].reasons.push(OrderReason {
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
