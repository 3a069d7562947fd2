//! What the knowledge bank page shows beyond a search, computed from the store: the national
//! overview (records per region and kind, the latest additions, SROI figures gathered across
//! regions) and a region's own page. No HTML here: `web.rs` renders these.

use std::collections::HashSet;

use serde::Serialize;
use spindel_protocol::NodeId;
use spindel_protocol::record::{Kind, Record};
use spindel_protocol::time::rfc3339_ms;

use crate::query::{self, Query, QueryError, RecordView};
use crate::store::{AuthorMeta, Store, StoreError};

/// The kinds in the order the page lists them.
pub const KINDS: [Kind; 7] = [
    Kind::Innovation,
    Kind::Method,
    Kind::Researcher,
    Kind::Event,
    Kind::Indicator,
    Kind::Experience,
    Kind::Profile,
];

/// Latest additions on the overview.
pub const LATEST: usize = 10;

/// One region's line in the overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionRow {
    pub node_id: String,
    pub name: String,
    pub display_name: String,
    /// Visible records per kind, in [`KINDS`] order.
    pub counts: Vec<u64>,
    pub total: u64,
    /// When this node last accepted an entry of the region (RFC 3339), if ever.
    pub last_received: Option<String>,
}

/// One SROI figure, with the record it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SroiFigure {
    pub ratio: f64,
    pub year: Option<i64>,
    pub report_url: Option<String>,
    pub title: String,
    pub region: Option<String>,
    pub region_display: Option<String>,
    pub author: String,
    pub record_id: String,
}

/// SROI figures across regions: how many, median and range of the ratios, and the highest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SroiStats {
    pub count: usize,
    pub median: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The [`SROI_FIGURES_SHOWN`] highest ratios, highest first.
    pub figures: Vec<SroiFigure>,
}

/// SROI figures a page lists (the highest; count, median and range cover them all).
pub const SROI_FIGURES_SHOWN: usize = 50;

/// The national overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub regions: Vec<RegionRow>,
    /// Visible records per kind over every region, in [`KINDS`] order.
    pub totals: Vec<u64>,
    pub total: u64,
    pub latest: Vec<RecordView>,
    pub sroi: SroiStats,
}

fn region_row(store: &Store, id: &NodeId, meta: &AuthorMeta) -> Result<RegionRow, StoreError> {
    let mut counts = vec![0u64; KINDS.len()];
    let mut last_received = None;
    // Counted over every key the region has had.
    for key in crate::regions::region_keys(store, id) {
        for (kind, n) in store.with_tally(|t| t.kinds_of(&key))? {
            if let Some(i) = KINDS.iter().position(|k| *k == kind) {
                counts[i] += n;
            }
        }
        last_received = last_received.max(store.last_received_ms(&key)?);
    }
    let name = meta.name_or_key(id);
    Ok(RegionRow {
        node_id: id.to_hex(),
        display_name: meta.shown(id),
        name,
        total: counts.iter().sum(),
        counts,
        last_received: last_received.map(rfc3339_ms),
    })
}

/// The SROI figures of visible innovations (of `only` when given), from the tally: the
/// payloads read are those of the figures shown.
fn sroi_stats(store: &Store, only: Option<&[NodeId]>) -> Result<SroiStats, StoreError> {
    let only: Option<HashSet<NodeId>> = only.map(|o| o.iter().copied().collect());
    let summary = store.with_tally(|t| t.sroi(only.as_ref(), SROI_FIGURES_SHOWN))?;
    let mut figures = Vec::with_capacity(summary.top.len());
    let mut authors: std::collections::HashMap<NodeId, Option<AuthorMeta>> = Default::default();
    for (_, id, rid) in summary.top {
        let meta = match authors.get(&id) {
            Some(meta) => meta.clone(),
            None => authors.entry(id).or_insert(store.author(&id)?).clone(),
        };
        let (Some(meta), Some(m)) = (meta, store.record_meta(&id, &rid)?) else {
            continue;
        };
        if let Some(Record::Innovation(inn)) = store.load_record(&id, &rid, &m)?
            && let Some(sroi) = inn.sroi
        {
            figures.push(SroiFigure {
                ratio: sroi.ratio,
                year: sroi.year,
                report_url: sroi.report_url,
                title: inn.title,
                region: meta.label().map(str::to_string),
                region_display: Some(meta.shown(&id)),
                author: id.to_hex(),
                record_id: rid.to_hex(),
            });
        }
    }
    Ok(SroiStats {
        count: summary.count,
        median: summary.median,
        min: summary.min,
        max: summary.max,
        figures,
    })
}

/// The national overview of everything this node holds.
pub fn overview(store: &Store) -> Result<Overview, QueryError> {
    let mut regions = Vec::new();
    for (id, meta) in store.authors()? {
        // One row a region: its newest key with a profile stands for it.
        if meta.profile.is_none() || crate::regions::representative(store, &id)? != Some(id) {
            continue;
        }
        regions.push(region_row(store, &id, &meta)?);
    }
    regions.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    let mut totals = vec![0u64; KINDS.len()];
    for r in &regions {
        for (t, c) in totals.iter_mut().zip(&r.counts) {
            *t += c;
        }
    }
    let latest = query::run(
        store,
        &Query {
            limit: Some(LATEST),
            ..Query::default()
        },
    )?
    .records;
    Ok(Overview {
        total: totals.iter().sum(),
        totals,
        regions,
        latest,
        sroi: sroi_stats(store, None)?,
    })
}

/// A region's page: its line in the overview, its profile and its SROI figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionPage {
    pub row: RegionRow,
    pub profile: Option<RecordView>,
    pub sroi: SroiStats,
    /// The seq at which this region's log is proven forked, if it is.
    pub fork_seq: Option<u64>,
    /// False once its admission ended (`spindel disallow` at its aggregator; under a charter,
    /// once its region was revoked or this key replaced): its records stay, new ones are
    /// refused.
    pub admitted: bool,
    /// Under a charter: the region this key is (or was) a key of, with its key history.
    pub membership: Option<crate::local::RegionMembership>,
}

/// The region page of `id`; `None` if this node knows no profile of it.
pub fn region_page(store: &Store, id: &NodeId) -> Result<Option<RegionPage>, StoreError> {
    let Some(meta) = store.author(id)? else {
        return Ok(None);
    };
    // The profile of the region's newest key that has one (a rotated region's old key's).
    let Some(shown_by) = crate::regions::representative(store, id)? else {
        return Ok(None);
    };
    let Some(profile_id) = store.author(&shown_by)?.and_then(|m| m.profile) else {
        return Ok(None);
    };
    let keys = crate::regions::region_keys(store, id);
    let members = store.members();
    let key = id.to_hex();
    let membership = members.as_ref().and_then(|m| {
        crate::local::membership_report(m, 1)
            .regions
            .into_iter()
            .find(|r| r.keys.iter().any(|k| k.node == key))
    });
    Ok(Some(RegionPage {
        admitted: members.map_or(meta.admitted, |m| m.is_member(id)),
        membership,
        row: {
            let mut row = region_row(store, id, &meta)?;
            if let Some(m) = store.author(&shown_by)? {
                row.display_name = m.shown(&shown_by);
            }
            row
        },
        profile: query::get(store, &shown_by, &profile_id)?,
        sroi: sroi_stats(store, Some(&keys))?,
        fork_seq: store
            .forks()?
            .into_iter()
            .find(|(a, _)| a == id)
            .map(|(_, p)| p.seq),
    }))
}

/// One region on the privacy page: who answers for the researcher contacts it published.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Controller {
    pub node_id: String,
    pub name: String,
    /// The profile's display name with the admitted name ([`AuthorMeta::shown`]).
    pub shown: String,
    /// The contact the region gives in its profile (its website), if any.
    pub website: Option<String>,
    /// Researcher records of the region held here.
    pub researchers: u64,
}

/// Every region with a profile, for the privacy page: the controllers of the records held here.
pub fn controllers(store: &Store) -> Result<Vec<Controller>, StoreError> {
    let mut out = Vec::new();
    for (id, meta) in store.authors()? {
        let Some(profile_id) = meta.profile else {
            continue;
        };
        let website = match store.record_meta(&id, &profile_id)? {
            Some(m) => match store.load_record(&id, &profile_id, &m)? {
                Some(Record::Profile(p)) => p.website,
                _ => None,
            },
            None => None,
        };
        let researchers = store
            .records_of(&id)?
            .into_iter()
            .filter(|(_, m)| m.kind == Kind::Researcher && m.visible())
            .count() as u64;
        let name = meta.name_or_key(&id);
        out.push(Controller {
            node_id: id.to_hex(),
            shown: meta.shown(&id),
            name,
            website,
            researchers,
        });
    }
    out.sort_by(|a, b| a.shown.cmp(&b.shown));
    Ok(out)
}
