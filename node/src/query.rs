//! Queries over the store: current, non-deleted records, newest first, with filters by kind,
//! region, tag and full text, and an opaque cursor for paging.
//!
//! The cursor is the hex of the last returned record's time-index key (inverted update time,
//! author, record id), so paging is stable while new records arrive: they sort before the
//! cursor and never shift later pages.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;
use spindel_protocol::record::Kind;
use spindel_protocol::time::rfc3339_ms;

use crate::store::{
    AuthorMeta, FacetFilter, FacetTally, RecordMeta, Store, StoreError, TextHit, TimeKey,
};
use spindel_protocol::record::limits::{EVENT_YEAR_MAX, EVENT_YEAR_MIN};

/// Records per page unless `limit` says otherwise.
pub const LIMIT_DEFAULT: usize = 20;
/// The largest page.
pub const LIMIT_MAX: usize = 1000;
/// How the CLI names the date filter (the API: [`DATE_PARAMS`]).
pub const DATE_FLAGS: (&str, &str) = ("--from-date", "--to-date");
/// How `GET /api/v1/records` names the date filter.
pub const DATE_PARAMS: (&str, &str) = ("from_date", "to_date");
/// Longest `--text` / `q` accepted.
pub const TEXT_CHARS_MAX: usize = 500;

/// A query; every filter is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub kind: Option<Kind>,
    /// Matches a region's profile `name`, its admitted name, or its display name (any case).
    pub region: Option<String>,
    /// Matches a tag (researchers: a field), ignoring case.
    pub tag: Option<String>,
    /// Full text: every word must match, by its Swedish or English stem.
    pub text: Option<String>,
    /// Only this author's records (the page of one region).
    pub author: Option<NodeId>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Only events whose `[start, end]` meets these days (Europe/Stockholm); other kinds never.
    pub dates: Option<DateRange>,
}

/// Days in Europe/Stockholm as instants: from the first day's midnight to the last day's end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl DateRange {
    /// The days `from` and `to` (`YYYY-MM-DD`, either may be absent), refused in one line that
    /// names the parameter (`names`: how this interface calls the two, as `--from-date`).
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        names: (&str, &str),
    ) -> Result<Option<DateRange>, QueryError> {
        if from.is_none() && to.is_none() {
            return Ok(None);
        }
        let day = |text: &str, name: &str, next: bool| {
            let bad = || {
                QueryError::BadDate(format!(
                    "{name} must be a date YYYY-MM-DD ({EVENT_YEAR_MIN}-{EVENT_YEAR_MAX}), got {:?}",
                    text.chars().take(40).collect::<String>()
                ))
            };
            let t = text.trim();
            let year: i64 = t.get(..4).and_then(|y| y.parse().ok()).ok_or_else(bad)?;
            if t.len() != 10 || !(EVENT_YEAR_MIN..=EVENT_YEAR_MAX).contains(&year) {
                return Err(bad());
            }
            let midnight = crate::localtime::from_stockholm_local(&format!("{t}T00:00"))
                .ok()
                .and_then(|m| spindel_protocol::time::parse_rfc3339(&m))
                .ok_or_else(bad)?;
            Ok(if next {
                // The day's last millisecond: the next midnight (23 to 25 hours on) less one.
                let next_day = midnight.utc_ms + 36 * 3_600_000;
                let (date, _) = crate::localtime::stockholm(next_day);
                let next_midnight =
                    crate::localtime::from_stockholm_local(&format!("{date}T00:00"))
                        .ok()
                        .and_then(|m| spindel_protocol::time::parse_rfc3339(&m))
                        .ok_or_else(bad)?;
                next_midnight.utc_ms - 1
            } else {
                midnight.utc_ms
            })
        };
        let from_ms = from.map(|f| day(f, names.0, false)).transpose()?;
        let to_ms = to.map(|t| day(t, names.1, true)).transpose()?;
        if let (Some(f), Some(t)) = (from_ms, to_ms)
            && t < f
        {
            return Err(QueryError::BadDate(format!(
                "{} must not be before {}",
                names.1, names.0
            )));
        }
        Ok(Some(DateRange { from_ms, to_ms }))
    }
}

impl Query {
    /// A query as a peer or the control channel sends it, with its kind checked.
    pub fn from_request(
        r: &spindel_protocol::sync::QueryRequest,
    ) -> Result<Query, spindel_protocol::record::ParseKindError> {
        let kind = r.kind.as_deref().map(str::parse).transpose()?;
        Ok(Query {
            kind,
            region: r.region.clone(),
            tag: r.tag.clone(),
            text: r.text.clone(),
            author: None,
            limit: r.limit.map(|l| l as usize),
            cursor: r.cursor.clone(),
            dates: None,
        })
    }
}

/// One record as every interface shows it (the `query --json` and HTTP shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    pub record_id: String,
    pub kind: Kind,
    /// The author region's name, if it has published one.
    pub region: Option<String>,
    pub author: String,
    pub seq: u64,
    /// The record's own version: 1 when first published, one more with each new version.
    /// (`seq` is the entry's place in the region's log.) Absent in answers of older nodes.
    #[serde(default)]
    pub version: u64,
    pub updated_at: String,
    pub created_at: String,
    pub data: serde_json::Value,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryPage {
    pub records: Vec<RecordView>,
    pub next_cursor: Option<String>,
}

/// Why a query was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("limit must be between 1 and {LIMIT_MAX}, got {0}")]
    BadLimit(usize),
    #[error("invalid cursor {0:?}: pass back the next_cursor of a previous page")]
    BadCursor(String),
    #[error("search text is over {TEXT_CHARS_MAX} characters")]
    TextTooLong,
    #[error("{0}")]
    BadDate(String),
    #[error("unknown region {0:?}; known here: {1}")]
    UnknownRegion(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The authors `q.region` names (`None`: no region filter).
fn region_authors(authors: &HashMap<NodeId, AuthorMeta>, q: &Query) -> Option<HashSet<NodeId>> {
    q.region.as_deref().map(|wanted| {
        authors
            .iter()
            .filter(|(id, m)| crate::regions::region_matches(id, m, wanted))
            .map(|(id, _)| *id)
            .collect()
    })
}

/// The records carrying `q.tag` (any case), or `None` without a tag filter.
fn tagged_records(
    store: &Store,
    q: &Query,
) -> Result<Option<HashSet<(NodeId, RecordId)>>, StoreError> {
    let Some(wanted) = q.tag.as_deref().map(|t| t.trim().to_lowercase()) else {
        return Ok(None);
    };
    store.with_tally(|t| t.tagged(&wanted)).map(Some)
}

/// A record in time order: (time-index key, author, record id).
type Candidate = (TimeKey, NodeId, RecordId);

/// [`run`], refusing a `region` no author here holds with [`QueryError::UnknownRegion`]
/// (the CLI, the API and remote queries; the page shows such a filter as zero hits).
pub fn run_checked(store: &Store, q: &Query) -> Result<QueryPage, QueryError> {
    if let Some(wanted) = &q.region {
        let authors: HashMap<NodeId, AuthorMeta> = store.authors()?.into_iter().collect();
        if region_authors(&authors, q).is_some_and(|set| set.is_empty()) {
            let mut known: Vec<String> = authors
                .iter()
                .filter(|(_, m)| m.profile.is_some())
                .map(|(id, m)| m.name_or_key(id))
                .collect();
            known.sort();
            return Err(QueryError::UnknownRegion(
                wanted.trim().chars().take(40).collect(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                },
            ));
        }
    }
    run(store, q)
}

/// The full-text hits of `q` (`None`: it searches no text), searched once for a page and its
/// facets.
pub fn text_hits(store: &Store, q: &Query) -> Result<Option<Vec<TextHit>>, QueryError> {
    match q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) if text.chars().count() > TEXT_CHARS_MAX => Err(QueryError::TextTooLong),
        Some(text) => Ok(Some(store.search(text)?.unwrap_or_default())),
        None => Ok(None),
    }
}

/// Runs `q` against `store`.
pub fn run(store: &Store, q: &Query) -> Result<QueryPage, QueryError> {
    run_with(store, q, text_hits(store, q)?)
}

/// The search page's records and facets, the text searched once.
pub fn page_and_facets(store: &Store, q: &Query) -> Result<(QueryPage, Facets), QueryError> {
    let hits = text_hits(store, q)?;
    let facets = facets_with(store, q, hits.as_deref())?;
    Ok((run_with(store, q, hits)?, facets))
}

/// [`run`] over the text hits `hits` (of [`text_hits`]).
fn run_with(store: &Store, q: &Query, hits: Option<Vec<TextHit>>) -> Result<QueryPage, QueryError> {
    let limit = q.limit.unwrap_or(LIMIT_DEFAULT);
    if limit == 0 || limit > LIMIT_MAX {
        return Err(QueryError::BadLimit(limit));
    }
    let after = match &q.cursor {
        Some(c) => Some(TimeKey::from_cursor(c).ok_or_else(|| QueryError::BadCursor(c.clone()))?),
        None => None,
    };
    let authors: HashMap<NodeId, AuthorMeta> = store.authors()?.into_iter().collect();
    let region = region_authors(&authors, q);
    let tagged = tagged_records(store, q)?;
    // The date filter reads the calendar index: events only, in time order like the rest.
    let dated: Option<Vec<Candidate>> = match q.dates {
        Some(d) => Some(store.with_calendar(|c| {
            c.overlapping(d.from_ms, d.to_ms)
                .into_iter()
                .map(|((a, r), s)| (TimeKey::of(s.updated_ms, &a, &r), a, r))
                .collect()
        })?),
        None => None,
    };
    let dated_set: Option<HashSet<(NodeId, RecordId)>> = dated
        .as_ref()
        .map(|list| list.iter().map(|(_, a, r)| (*a, *r)).collect());
    let keep = |author: &NodeId, rid: &RecordId, meta: &RecordMeta| {
        meta.visible()
            && q.kind.is_none_or(|k| k == meta.kind)
            && dated_set
                .as_ref()
                .is_none_or(|set| set.contains(&(*author, *rid)))
            && tagged
                .as_ref()
                .is_none_or(|set| set.contains(&(*author, *rid)))
    };

    // Candidates in time order (newest first), then one loop loads, filters and pages them.
    let candidates: Box<dyn Iterator<Item = Result<Candidate, StoreError>>> = match hits {
        Some(hits) => {
            // The hits in time-key order by the index's update times (no store reads), as a
            // heap: a page takes its few from the top without sorting them all.
            let after = after.as_ref().and_then(TimeKey::parts);
            let mut heap: BinaryHeap<Reverse<(u64, NodeId, RecordId)>> = hits
                .into_iter()
                .map(|(updated_ms, author, rid)| (u64::MAX - updated_ms, author, rid))
                .filter(|place| after.is_none_or(|a| *place > a))
                .map(Reverse)
                .collect();
            Box::new(std::iter::from_fn(move || {
                heap.pop().map(|Reverse((inverted, author, rid))| {
                    Ok((TimeKey::of(u64::MAX - inverted, &author, &rid), author, rid))
                })
            }))
        }
        None if dated.is_some() => {
            let mut hits = dated.unwrap_or_default();
            hits.retain(|(k, ..)| after.as_ref().is_none_or(|a| k > a));
            hits.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            Box::new(hits.into_iter().map(Ok))
        }
        None => Box::new(
            store
                .time_index(after.as_ref())
                .filter_map(|item| match item {
                    // The time index carries the kind: skip other kinds without a store read.
                    Ok((_, _, _, code)) if q.kind.is_some_and(|kind| kind.code() != code) => None,
                    Ok((k, author, rid, _)) => Some(Ok((k, author, rid))),
                    Err(e) => Some(Err(e)),
                }),
        ),
    };
    let mut found: Vec<(TimeKey, NodeId, RecordId, RecordMeta)> = Vec::new();
    for item in candidates {
        let (k, author, rid) = item?;
        if region.as_ref().is_some_and(|set| !set.contains(&author))
            || q.author.is_some_and(|a| a != author)
        {
            continue;
        }
        let Some(meta) = store.record_meta(&author, &rid)? else {
            continue;
        };
        if keep(&author, &rid, &meta) {
            found.push((k, author, rid, meta));
            if found.len() > limit {
                break;
            }
        }
    }
    let next_cursor = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|(k, ..)| k.to_cursor())
    } else {
        None
    };
    let mut records = Vec::with_capacity(found.len());
    for (_, author, rid, meta) in found {
        if let Some(view) = view(store, &authors, &author, &rid, &meta)? {
            records.push(view);
        }
    }
    Ok(QueryPage {
        records,
        next_cursor,
    })
}

/// One value of a facet and how many records it would give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FacetCount {
    /// What the filter takes (`kind=`, `region=`, `tag=`).
    pub value: String,
    /// What a person reads (a region's display name; the value otherwise).
    pub label: String,
    pub count: u64,
}

/// Counts for a search: how many records match, and per kind, region and tag how many would
/// match with that value chosen (the other filters kept), largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facets {
    pub total: u64,
    pub kinds: Vec<FacetCount>,
    pub regions: Vec<FacetCount>,
    pub tags: Vec<FacetCount>,
}

/// Tags listed in [`Facets::tags`] at most.
pub const FACET_TAGS_MAX: usize = 30;

/// The facet counts of `q` (its limit and cursor are ignored: the counts cover every match).
pub fn facets(store: &Store, q: &Query) -> Result<Facets, QueryError> {
    facets_with(store, q, text_hits(store, q)?.as_deref())
}

/// [`facets`] over the text hits `hits` (of [`text_hits`]).
fn facets_with(store: &Store, q: &Query, hits: Option<&[TextHit]>) -> Result<Facets, QueryError> {
    let authors: HashMap<NodeId, AuthorMeta> = store.authors()?.into_iter().collect();
    // The region's keys, narrowed to one author when the query names one.
    let only: Option<HashSet<NodeId>> = match (region_authors(&authors, q), q.author) {
        (region, None) => region,
        (None, Some(a)) => Some(HashSet::from([a])),
        (Some(region), Some(a)) => Some(region.into_iter().filter(|x| *x == a).collect()),
    };
    let tag = q.tag.as_deref().map(|t| t.trim().to_lowercase());
    let filter = FacetFilter {
        kind: q.kind,
        authors: only.as_ref(),
        tag: tag.as_deref(),
    };
    let counted = match hits {
        Some(hits) => {
            let keys = crate::store::in_key_order(hits, |(_, a, r)| (*a, *r));
            store.with_tally(|t| t.facets_of(keys, filter))?
        }
        None => store.with_tally(|t| t.facets(filter))?,
    };
    Ok(facet_list(&authors, counted))
}

/// The facets as the page lists them: largest first, a region's keys as one region.
fn facet_list(authors: &HashMap<NodeId, AuthorMeta>, counted: FacetTally) -> Facets {
    let FacetTally {
        total,
        kinds,
        authors: regions,
        tags,
    } = counted;
    let sorted = |mut v: Vec<FacetCount>| {
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.label.cmp(&b.label)));
        v
    };
    let kinds = sorted(
        kinds
            .into_iter()
            .map(|(k, count)| FacetCount {
                value: k.as_str().to_string(),
                label: k.as_str().to_string(),
                count,
            })
            .collect(),
    );
    // One entry a region name: a region's keys (rotated, replaced, live) count together,
    // labelled as a key with a profile shows it.
    let mut by_name: BTreeMap<String, (String, bool, u64)> = BTreeMap::new();
    for (id, count) in regions {
        let Some(meta) = authors.get(&id) else {
            continue;
        };
        let entry = by_name
            .entry(meta.name_or_key(&id))
            .or_insert_with(|| (meta.shown(&id), false, 0));
        if meta.profile.is_some() && !entry.1 {
            *entry = (meta.shown(&id), true, entry.2);
        }
        entry.2 += count;
    }
    let regions = sorted(
        by_name
            .into_iter()
            .map(|(value, (label, _, count))| FacetCount {
                value,
                label,
                count,
            })
            .collect(),
    );
    let mut tags = sorted(
        tags.into_iter()
            .map(|(t, count)| FacetCount {
                value: t.clone(),
                label: t,
                count,
            })
            .collect(),
    );
    tags.truncate(FACET_TAGS_MAX);
    Facets {
        total,
        kinds,
        regions,
        tags,
    }
}

/// One current, visible record; `None` if unknown or deleted.
pub fn get(
    store: &Store,
    author: &NodeId,
    rid: &RecordId,
) -> Result<Option<RecordView>, StoreError> {
    let Some(meta) = store.record_meta(author, rid)? else {
        return Ok(None);
    };
    let authors: HashMap<NodeId, AuthorMeta> = store
        .author(author)?
        .map(|m| (*author, m))
        .into_iter()
        .collect();
    view(store, &authors, author, rid, &meta)
}

fn view(
    store: &Store,
    authors: &HashMap<NodeId, AuthorMeta>,
    author: &NodeId,
    rid: &RecordId,
    meta: &RecordMeta,
) -> Result<Option<RecordView>, StoreError> {
    let Some(record) = store.load_record(author, rid, meta)? else {
        return Ok(None);
    };
    Ok(Some(RecordView {
        record_id: rid.to_hex(),
        kind: meta.kind,
        region: authors.get(author).map(|m| m.name_or_key(author)),
        author: author.to_hex(),
        seq: meta.seq,
        version: store.version_number(author, rid, meta.seq)?,
        updated_at: rfc3339_ms(meta.updated_ms),
        created_at: rfc3339_ms(meta.created_ms),
        data: record.to_value(),
    }))
}
