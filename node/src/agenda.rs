//! The calendar's lists, read from the store's calendar index (never a scan of every record):
//! upcoming events (until they end) soonest first, past ones the last to end first, by region
//! and tag and paged; and what an iCalendar feed holds, capped.

use std::collections::HashSet;

use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;

use crate::query::RecordView;
use crate::store::{Span, Store, StoreError};

/// Events on one page of `/kalender`.
pub const AGENDA_PAGE_SIZE: usize = 20;
/// The last page number a calendar page takes (`sida`).
pub const AGENDA_PAGES_MAX: usize = 1000;
/// Events one iCalendar feed holds at most: the upcoming ones first, soonest first, then the
/// past ones of [`FEED_PAST_DAYS`], the last to end first.
pub const FEED_EVENTS_MAX: usize = 500;
/// How far back a feed keeps events that have ended, in days.
pub const FEED_PAST_DAYS: i64 = 92;

/// Upcoming or past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Not ended yet, soonest start first.
    Upcoming,
    /// Ended, the last to end first.
    Past,
}

/// What a calendar page asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgendaQuery {
    pub when: When,
    /// Only this region's events (`Some(None)`: a region no author here holds, so none).
    pub author: Option<Option<NodeId>>,
    /// Only events with this tag (any case).
    pub tag: Option<String>,
    /// 1 for the first page.
    pub page: usize,
}

/// One event with its times.
#[derive(Debug, Clone, PartialEq)]
pub struct AgendaItem {
    pub view: RecordView,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A page of the calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct Agenda {
    pub events: Vec<AgendaItem>,
    /// Events matching the filters, on every page.
    pub total: usize,
    pub has_next: bool,
}

/// The page `q` asks for, at `now_ms`.
pub fn list(store: &Store, q: &AgendaQuery, now_ms: i64) -> Result<Agenda, StoreError> {
    let tagged: Option<HashSet<(NodeId, RecordId)>> = match &q.tag {
        Some(tag) => {
            let wanted = tag.trim().to_lowercase();
            Some(store.with_tally(|t| t.tagged(&wanted))?)
        }
        None => None,
    };
    let keep = |key: &(NodeId, RecordId)| {
        q.author.is_none_or(|a| a == Some(key.0)) && tagged.as_ref().is_none_or(|t| t.contains(key))
    };
    let matching: Vec<((NodeId, RecordId), Span)> = store.with_calendar(|c| match q.when {
        When::Upcoming => c
            .upcoming(now_ms)
            .into_iter()
            .filter(|(k, _)| keep(k))
            .collect(),
        When::Past => c.past(now_ms).filter(|(k, _)| keep(k)).collect(),
    })?;
    let total = matching.len();
    let first = q.page.saturating_sub(1).saturating_mul(AGENDA_PAGE_SIZE);
    let events = items(
        store,
        matching.into_iter().skip(first).take(AGENDA_PAGE_SIZE),
    )?;
    Ok(Agenda {
        events,
        total,
        has_next: total > first.saturating_add(AGENDA_PAGE_SIZE),
    })
}

/// What a feed holds at `now_ms`: every upcoming event, then those that ended in the last
/// [`FEED_PAST_DAYS`] days, [`FEED_EVENTS_MAX`] at most; `author`'s only if given. In the
/// national feed each region has an equal share of the cap ([`fair_share`]), so no region fills
/// it with its own events and pushes the others' out.
pub fn feed(
    store: &Store,
    author: Option<NodeId>,
    now_ms: i64,
) -> Result<Vec<AgendaItem>, StoreError> {
    let since = now_ms - FEED_PAST_DAYS * 86_400_000;
    let keys: Vec<((NodeId, RecordId), Span)> = store.with_calendar(|c| {
        let mine = |(k, _): &((NodeId, RecordId), Span)| author.is_none_or(|a| a == k.0);
        let all: Vec<((NodeId, RecordId), Span)> = c
            .upcoming(now_ms)
            .into_iter()
            .filter(mine)
            .chain(
                c.past(now_ms)
                    .take_while(|(_, s)| s.end_ms >= since)
                    .filter(mine),
            )
            .collect();
        fair_share(all, FEED_EVENTS_MAX)
    })?;
    items(store, keys.into_iter())
}

/// At most `max` of `events`, in their order, each author's first `max / authors` at most
/// (authors with fewer leave their share unused: the cap is a bound, not a quota to fill).
pub fn fair_share<T>(
    events: Vec<((NodeId, RecordId), T)>,
    max: usize,
) -> Vec<((NodeId, RecordId), T)> {
    let authors: HashSet<NodeId> = events.iter().map(|((a, _), _)| *a).collect();
    let share = (max / authors.len().max(1)).max(1);
    let mut taken: std::collections::HashMap<NodeId, usize> = std::collections::HashMap::new();
    events
        .into_iter()
        .filter(|((a, _), _)| {
            let n = taken.entry(*a).or_default();
            *n += 1;
            *n <= share
        })
        .take(max)
        .collect()
}

/// The records of `keys`, in their order (one deleted since is left out).
fn items(
    store: &Store,
    keys: impl Iterator<Item = ((NodeId, RecordId), Span)>,
) -> Result<Vec<AgendaItem>, StoreError> {
    let mut out = Vec::new();
    for ((author, rid), span) in keys {
        if let Some(view) = crate::query::get(store, &author, &rid)? {
            out.push(AgendaItem {
                view,
                start_ms: span.start_ms,
                end_ms: span.end_ms,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_region_cannot_fill_the_national_feed() {
        let key = |author: u8, n: u8| ((NodeId([author; 32]), RecordId([n; 16])), ());
        // Region 1 publishes 10 events sooner than region 2's 2 and region 3's 1.
        let mut events: Vec<_> = (0..10).map(|n| key(1, n)).collect();
        events.extend([key(2, 0), key(2, 1), key(3, 0)]);
        let authors = |v: Vec<((NodeId, RecordId), ())>| -> Vec<u8> {
            v.into_iter().map(|((a, _), _)| a.0[0]).collect()
        };
        assert_eq!(authors(fair_share(events.clone(), 6)), [1, 1, 2, 2, 3]);
        assert_eq!(authors(fair_share(events.clone(), 100)).len(), 13);
        let one: Vec<_> = (0..10).map(|n| key(1, n)).collect();
        assert_eq!(
            fair_share(one, 4).len(),
            4,
            "alone, a region has the whole cap"
        );
        assert_eq!(
            authors(fair_share(events, 2)),
            [1, 2],
            "a share is at least one"
        );
    }
}
