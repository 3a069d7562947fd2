//! The calendar index: each visible event's start and end, in memory only (times are content,
//! so never in sled), built from the payloads on first use and kept by every batch: a new
//! version moves its event, a deletion removes it. The calendar page, the iCalendar feeds and
//! the date filter of a query read it, so none of them scans every record.

use std::collections::{BTreeSet, HashMap};

use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;

/// One event of one author.
pub type EventKey = (NodeId, RecordId);

/// When an event is, and when its current version was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Milliseconds since the Unix epoch (UTC).
    pub start_ms: i64,
    /// At or after `start_ms` (an event without an end lasts to the end of its start's day).
    pub end_ms: i64,
    pub updated_ms: u64,
}

/// Every visible event, by record, by start and by end.
#[derive(Debug, Default)]
pub struct Calendar {
    by_record: HashMap<EventKey, Span>,
    by_start: BTreeSet<(i64, NodeId, RecordId)>,
    by_end: BTreeSet<(i64, NodeId, RecordId)>,
}

impl Calendar {
    /// Puts the event `key` at `span`, or takes it out (`None`).
    pub(super) fn set(&mut self, key: EventKey, span: Option<Span>) {
        if let Some(old) = self.by_record.remove(&key) {
            self.by_start.remove(&(old.start_ms, key.0, key.1));
            self.by_end.remove(&(old.end_ms, key.0, key.1));
        }
        if let Some(span) = span {
            self.by_start.insert((span.start_ms, key.0, key.1));
            self.by_end.insert((span.end_ms, key.0, key.1));
            self.by_record.insert(key, span);
        }
    }

    pub fn len(&self) -> usize {
        self.by_record.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_record.is_empty()
    }

    pub fn get(&self, key: &EventKey) -> Option<Span> {
        self.by_record.get(key).copied()
    }

    /// Events that have not ended at `now_ms` (they end at or after it), soonest start first.
    pub fn upcoming(&self, now_ms: i64) -> Vec<(EventKey, Span)> {
        let mut out: Vec<(EventKey, Span)> = self
            .by_end
            .range((now_ms, NodeId([0; 32]), RecordId([0; 16]))..)
            .filter_map(|(_, a, r)| self.by_record.get(&(*a, *r)).map(|s| ((*a, *r), *s)))
            .collect();
        out.sort_by_key(|((a, r), s)| (s.start_ms, *a, *r));
        out
    }

    /// Events that ended before `now_ms`, the last to end first.
    pub fn past(&self, now_ms: i64) -> impl Iterator<Item = (EventKey, Span)> + '_ {
        self.by_end
            .range(..(now_ms, NodeId([0; 32]), RecordId([0; 16])))
            .rev()
            .filter_map(|(_, a, r)| self.by_record.get(&(*a, *r)).map(|s| ((*a, *r), *s)))
    }

    /// Events whose `[start, end]` meets `[from_ms, to_ms]`: from the side that reads fewer.
    pub fn overlapping(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> Vec<(EventKey, Span)> {
        let meets = |s: &Span| {
            from_ms.is_none_or(|f| s.end_ms >= f) && to_ms.is_none_or(|t| s.start_ms <= t)
        };
        let pick = |(_, a, r): &(i64, NodeId, RecordId)| {
            self.by_record
                .get(&(*a, *r))
                .filter(|s| meets(s))
                .map(|s| ((*a, *r), *s))
        };
        match (from_ms, to_ms) {
            (Some(f), _) => self
                .by_end
                .range((f, NodeId([0; 32]), RecordId([0; 16]))..)
                .filter_map(pick)
                .collect(),
            (None, Some(t)) => self
                .by_start
                .range(..=(t, NodeId([0xff; 32]), RecordId([0xff; 16])))
                .filter_map(pick)
                .collect(),
            (None, None) => self.by_start.iter().filter_map(pick).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> EventKey {
        (NodeId([n; 32]), RecordId([n; 16]))
    }

    fn span(start_ms: i64, end_ms: i64) -> Option<Span> {
        Some(Span {
            start_ms,
            end_ms,
            updated_ms: 1,
        })
    }

    #[test]
    fn upcoming_past_and_overlaps_follow_every_change() {
        let mut c = Calendar::default();
        c.set(key(1), span(100, 200));
        c.set(key(2), span(50, 400));
        c.set(key(3), span(10, 20));
        let keys =
            |v: Vec<(EventKey, Span)>| v.into_iter().map(|(k, _)| k.0.0[0]).collect::<Vec<_>>();
        assert_eq!(keys(c.upcoming(150)), [2, 1]);
        assert_eq!(keys(c.past(150).collect()), [3]);
        assert_eq!(keys(c.overlapping(Some(300), None)), [2]);
        assert_eq!(keys(c.overlapping(None, Some(60))), [3, 2]);
        assert_eq!(keys(c.overlapping(Some(15), Some(120))).len(), 3);
        // A new version moves it; a deletion forgets it everywhere.
        c.set(key(2), span(10, 30));
        assert_eq!(keys(c.upcoming(150)), [1]);
        assert_eq!(keys(c.past(150).collect()), [2, 3]);
        c.set(key(1), None);
        c.set(key(2), None);
        assert_eq!(keys(c.upcoming(0)), [3]);
        assert_eq!(c.len(), 1);
        assert!(c.overlapping(Some(25), None).is_empty());
    }
}
