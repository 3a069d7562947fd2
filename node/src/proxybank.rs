//! The SROI proxy bank (`/proxybank`): every region's `indicator` records grouped by outcome,
//! with the count, median and range of their values as published, and which innovations (from
//! any region) name each indicator in their `sroi.indicators`. Everything here is derived per
//! request from the current, visible records (a deleted indicator or innovation is gone from it
//! at once) and bounded by the caps below: a request reads at most [`SCAN_MAX`] indicators and
//! [`USERS_SCAN_MAX`] innovations, newest first, whatever other regions publish. No HTML here.
//! Decision 0036 says why the values are not adjusted to one price year.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use spindel_protocol::NodeId;
use spindel_protocol::RecordRef;
use spindel_protocol::indicator::Indicator;
use spindel_protocol::record::{Kind, Record, is_http_url};

use crate::query::{self, Query, QueryError, RecordView};
use crate::store::{AuthorMeta, Store, StoreError};

/// Indicators one request reads at most (newest first): the bank's statistics cover these.
pub const SCAN_MAX: usize = query::LIMIT_MAX;
/// Innovations one request reads at most for the reverse lookup (newest first).
pub const USERS_SCAN_MAX: usize = query::LIMIT_MAX;
/// Outcomes on one page of `/proxybank`.
pub const OUTCOMES_PER_PAGE: usize = 20;
/// Proxies shown under one outcome (the statistics count them all).
pub const PROXIES_SHOWN_MAX: usize = 50;
/// Innovations listed as users of one indicator.
pub const USERS_SHOWN_MAX: usize = 20;
/// Indicators the innovation form offers to pick.
pub const CHOICES_MAX: usize = 300;

/// An innovation that names an indicator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub author: String,
    pub record_id: String,
    pub title: String,
    pub region: String,
}

/// One indicator with its proxy, as the bank shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proxy {
    pub author: String,
    pub record_id: String,
    /// The author region as people read it.
    pub region: String,
    pub outcome: String,
    pub indicator: String,
    pub proxy: String,
    pub value_sek: f64,
    pub unit: String,
    pub year: i64,
    pub source: String,
    /// Whether `source` is a link (an http or https URL).
    pub source_is_url: bool,
    pub deadweight: Option<f64>,
    pub attribution: Option<f64>,
    pub displacement: Option<f64>,
    pub drop_off: Option<f64>,
    pub tags: Vec<String>,
    /// Innovations naming it, at most [`USERS_SHOWN_MAX`].
    pub users: Vec<User>,
    /// How many more name it.
    pub users_more: usize,
}

/// One outcome of the bank.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The most common spelling among its proxies.
    pub outcome: String,
    pub count: usize,
    pub regions: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// The price years its values are stated in (oldest, newest).
    pub year_min: i64,
    pub year_max: i64,
    /// At most [`PROXIES_SHOWN_MAX`], by region, then value.
    pub proxies: Vec<Proxy>,
    pub proxies_more: usize,
}

/// One page of the bank.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bank {
    pub outcomes: Vec<Outcome>,
    /// Outcomes over every page.
    pub outcomes_total: usize,
    /// Indicators the statistics cover.
    pub indicators: usize,
    /// Whether [`SCAN_MAX`] cut the read short (older indicators are left out).
    pub capped: bool,
    pub page: usize,
    pub pages: usize,
}

/// The key outcomes are grouped by: trimmed, case-folded, inner spaces collapsed.
pub fn outcome_key(outcome: &str) -> String {
    outcome
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The median of `values` (not empty) and its range.
fn stats(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    (median, values[0], values[n - 1])
}

fn shown(authors: &HashMap<NodeId, AuthorMeta>, view: &RecordView) -> String {
    view.author
        .parse::<NodeId>()
        .ok()
        .and_then(|id| authors.get(&id).map(|m| m.shown(&id)))
        .unwrap_or_else(|| view.region.clone().unwrap_or_else(|| view.author.clone()))
}

/// The reference of a view.
fn reference(view: &RecordView) -> Option<RecordRef> {
    Some(RecordRef {
        author: view.author.parse().ok()?,
        record: view.record_id.parse().ok()?,
    })
}

/// Which innovations name which indicators: the newest [`USERS_SCAN_MAX`] innovations read.
fn users(
    store: &Store,
    authors: &HashMap<NodeId, AuthorMeta>,
) -> Result<HashMap<RecordRef, Vec<User>>, QueryError> {
    let page = query::run(
        store,
        &Query {
            kind: Some(Kind::Innovation),
            limit: Some(USERS_SCAN_MAX),
            ..Query::default()
        },
    )?;
    let mut out: HashMap<RecordRef, Vec<User>> = HashMap::new();
    for view in page.records {
        let Ok(Record::Innovation(inn)) =
            Record::from_json(Kind::Innovation, &view.data.to_string())
        else {
            continue;
        };
        let Some(sroi) = inn.sroi else { continue };
        for r in sroi.indicators {
            out.entry(r).or_default().push(User {
                author: view.author.clone(),
                record_id: view.record_id.clone(),
                title: inn.title.clone(),
                region: shown(authors, &view),
            });
        }
    }
    Ok(out)
}

fn indicator_of(view: &RecordView) -> Option<Indicator> {
    match Record::from_json(Kind::Indicator, &view.data.to_string()) {
        Ok(Record::Indicator(i)) => Some(i),
        _ => None,
    }
}

fn proxy(view: &RecordView, i: Indicator, region: String, users: Option<&Vec<User>>) -> Proxy {
    let all = users.map(Vec::as_slice).unwrap_or_default();
    Proxy {
        author: view.author.clone(),
        record_id: view.record_id.clone(),
        region,
        source_is_url: is_http_url(&i.source),
        outcome: i.outcome,
        indicator: i.indicator,
        proxy: i.proxy,
        value_sek: i.value_sek,
        unit: i.unit,
        year: i.year,
        source: i.source,
        deadweight: i.deadweight,
        attribution: i.attribution,
        displacement: i.displacement,
        drop_off: i.drop_off,
        tags: i.tags,
        users: all.iter().take(USERS_SHOWN_MAX).cloned().collect(),
        users_more: all.len().saturating_sub(USERS_SHOWN_MAX),
    }
}

/// Page `page` (from 1) of the bank, filtered by region, tag and text as every kind is.
pub fn bank(store: &Store, filter: &Query, page: usize) -> Result<Bank, QueryError> {
    let authors: HashMap<NodeId, AuthorMeta> = store.authors()?.into_iter().collect();
    let read = query::run(
        store,
        &Query {
            kind: Some(Kind::Indicator),
            limit: Some(SCAN_MAX),
            cursor: None,
            author: None,
            ..filter.clone()
        },
    )?;
    let users = users(store, &authors)?;
    let capped = read.next_cursor.is_some();
    let indicators = read.records.len();
    // Outcome key → (spellings and their counts, proxies).
    let mut groups: BTreeMap<String, (HashMap<String, usize>, Vec<Proxy>)> = BTreeMap::new();
    for view in &read.records {
        let Some(i) = indicator_of(view) else {
            continue;
        };
        let spelling = i.outcome.split_whitespace().collect::<Vec<_>>().join(" ");
        let group = groups.entry(outcome_key(&i.outcome)).or_default();
        *group.0.entry(spelling).or_default() += 1;
        let users = reference(view).and_then(|r| users.get(&r));
        group.1.push(proxy(view, i, shown(&authors, view), users));
    }
    let mut outcomes: Vec<Outcome> = groups
        .into_values()
        .map(|(spellings, mut proxies)| {
            let outcome = spellings
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
                .map(|(s, _)| s)
                .unwrap_or_default();
            let mut values: Vec<f64> = proxies.iter().map(|p| p.value_sek).collect();
            let (median, min, max) = stats(&mut values);
            let years = proxies.iter().map(|p| p.year);
            let (year_min, year_max) = (years.clone().min(), years.max());
            let mut regions: Vec<&str> = proxies.iter().map(|p| p.author.as_str()).collect();
            regions.sort_unstable();
            regions.dedup();
            let regions = regions.len();
            proxies.sort_by(|a, b| {
                a.region
                    .cmp(&b.region)
                    .then(a.value_sek.total_cmp(&b.value_sek))
                    .then(a.record_id.cmp(&b.record_id))
            });
            let count = proxies.len();
            proxies.truncate(PROXIES_SHOWN_MAX);
            Outcome {
                outcome,
                count,
                regions,
                median,
                min,
                max,
                year_min: year_min.unwrap_or_default(),
                year_max: year_max.unwrap_or_default(),
                proxies_more: count - proxies.len(),
                proxies,
            }
        })
        .collect();
    // Outcomes with most proxies first: where regions can compare.
    outcomes.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.outcome.cmp(&b.outcome))
    });
    let outcomes_total = outcomes.len();
    let pages = outcomes_total.div_ceil(OUTCOMES_PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let outcomes = outcomes
        .into_iter()
        .skip((page - 1) * OUTCOMES_PER_PAGE)
        .take(OUTCOMES_PER_PAGE)
        .collect();
    Ok(Bank {
        outcomes,
        outcomes_total,
        indicators,
        capped,
        page,
        pages,
    })
}

/// The innovations (newest [`USERS_SCAN_MAX`] read) naming the indicator `target`.
pub fn users_of(store: &Store, target: &RecordRef) -> Result<Vec<User>, QueryError> {
    let authors: HashMap<NodeId, AuthorMeta> = store.authors()?.into_iter().collect();
    let mut all = users(store, &authors)?.remove(target).unwrap_or_default();
    all.truncate(USERS_SHOWN_MAX);
    Ok(all)
}

/// An indicator an innovation names, as its page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Named {
    pub author: String,
    pub record_id: String,
    /// The indicator, if this node holds it (`None`: not received here, or deleted).
    pub found: Option<Proxy>,
    /// Its author deleted it (this node holds its removal).
    pub deleted: bool,
    /// The reference names a record here that is no indicator.
    pub not_indicator: bool,
}

/// The indicators `refs` name, each found or not.
pub fn named(store: &Store, refs: &[RecordRef]) -> Result<Vec<Named>, StoreError> {
    let authors: HashMap<NodeId, AuthorMeta> = store.authors()?.into_iter().collect();
    let mut out = Vec::new();
    for r in refs
        .iter()
        .take(spindel_protocol::record::limits::SROI_INDICATORS_MAX)
    {
        let meta = store.record_meta(&r.author, &r.record)?;
        let deleted = meta.as_ref().is_some_and(|m| m.deleted);
        let not_indicator = meta
            .as_ref()
            .is_some_and(|m| !m.deleted && m.kind != Kind::Indicator);
        let found = match meta.filter(|m| m.kind == Kind::Indicator && m.visible()) {
            Some(m) => match store.load_record(&r.author, &r.record, &m)? {
                Some(Record::Indicator(i)) => {
                    let region = authors
                        .get(&r.author)
                        .map(|a| a.shown(&r.author))
                        .unwrap_or_else(|| r.author.to_hex());
                    let view = RecordView {
                        record_id: r.record.to_hex(),
                        kind: Kind::Indicator,
                        region: None,
                        author: r.author.to_hex(),
                        seq: m.seq,
                        version: 0,
                        updated_at: String::new(),
                        created_at: String::new(),
                        data: serde_json::Value::Null,
                    };
                    Some(proxy(&view, i, region, None))
                }
                _ => None,
            },
            None => None,
        };
        out.push(Named {
            author: r.author.to_hex(),
            record_id: r.record.to_hex(),
            found,
            deleted,
            not_indicator,
        });
    }
    Ok(out)
}

/// Outcomes, each with its indicators as `(reference, what a person reads)`.
pub type Choices = Vec<(String, Vec<(String, String)>)>;

/// What the innovation form offers to pick: the bank's indicators by outcome, at most
/// [`CHOICES_MAX`] (newest first), each `(reference, what a person reads)`.
pub fn choices(store: &Store) -> Result<Choices, QueryError> {
    let authors: HashMap<NodeId, AuthorMeta> = store.authors()?.into_iter().collect();
    let read = query::run(
        store,
        &Query {
            kind: Some(Kind::Indicator),
            limit: Some(CHOICES_MAX),
            ..Query::default()
        },
    )?;
    let mut groups: BTreeMap<String, (String, Vec<(String, String)>)> = BTreeMap::new();
    for view in &read.records {
        let (Some(i), Some(r)) = (indicator_of(view), reference(view)) else {
            continue;
        };
        let g = groups
            .entry(outcome_key(&i.outcome))
            .or_insert_with(|| (i.outcome.clone(), Vec::new()));
        g.1.push((
            r.to_string(),
            format!("{} ({})", i.indicator, shown(&authors, view)),
        ));
    }
    Ok(groups.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_group_by_trimmed_case_folded_collapsed_text() {
        assert_eq!(
            outcome_key("  Fler  personer\ti ARBETE "),
            "fler personer i arbete"
        );
        assert_eq!(outcome_key("Ökad Trygghet"), "ökad trygghet");
    }

    #[test]
    fn median_and_range() {
        assert_eq!(stats(&mut [3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(stats(&mut [4.0, 1.0, 2.0, 10.0]), (3.0, 1.0, 10.0));
        assert_eq!(stats(&mut [5.0]), (5.0, 5.0, 5.0));
    }
}
