//! The tally: every visible knowledge record's kind, tags and SROI ratio, in memory only (tags
//! and ratios are content, so never in sled), built from the payloads on first use and kept by
//! every batch through the overlay's `show` and `hide`, its only doors. It holds the counts the
//! pages ask for (per kind, author and tag) and the SROI ratios in order, so facets, region
//! counts, the overview and the tag filter answer without reading every record.
//!
//! `Store::tally_is_exact` rebuilds it from the store and compares: the tests call it after
//! every kind of change (put, new version, tombstone, purge, cut, erasure, restore).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;
use spindel_protocol::record::{Kind, Record};

/// One record of one author.
pub type RecordKey = (NodeId, RecordId);

/// A tag's number in the tally (tags are interned: a record keeps numbers, not strings).
type TagId = u32;

/// What the tally keeps of one visible record, as the overlay hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub kind: Kind,
    /// Lower-cased, each once.
    pub tags: Vec<String>,
    /// An innovation's SROI ratio.
    pub sroi: Option<f64>,
}

impl Counted {
    /// What the tally keeps of `record`.
    pub fn of(record: &Record) -> Counted {
        let mut tags: Vec<String> = record.tags().iter().map(|t| t.to_lowercase()).collect();
        tags.sort();
        tags.dedup();
        Counted {
            kind: record.kind(),
            tags,
            sroi: match record {
                Record::Innovation(i) => i.sroi.as_ref().map(|s| s.ratio),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Kept {
    kind: Kind,
    tags: Tags,
    sroi: Option<f64>,
}

/// Tags kept inline at most (most records have a few): no allocation, and a facet count reads
/// them with the record, not from a second place in memory.
const TAGS_INLINE: usize = 4;

/// A record's tag numbers, inline up to [`TAGS_INLINE`], on the heap beyond.
#[derive(Debug, Clone, PartialEq)]
enum Tags {
    Inline(u8, [TagId; TAGS_INLINE]),
    Heap(Box<[TagId]>),
}

impl Tags {
    fn of(ids: Vec<TagId>) -> Tags {
        if ids.len() <= TAGS_INLINE {
            let mut inline = [0; TAGS_INLINE];
            inline[..ids.len()].copy_from_slice(&ids);
            Tags::Inline(ids.len() as u8, inline)
        } else {
            Tags::Heap(ids.into_boxed_slice())
        }
    }

    fn iter(&self) -> std::slice::Iter<'_, TagId> {
        match self {
            Tags::Inline(len, ids) => ids[..usize::from(*len)].iter(),
            Tags::Heap(ids) => ids.iter(),
        }
    }

    fn contains(&self, id: &TagId) -> bool {
        self.iter().any(|t| t == id)
    }
}

/// Counts of the records a search's facets would show: what matches, per kind, author and tag
/// (each with the other two filters kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FacetTally {
    pub total: u64,
    pub kinds: HashMap<Kind, u64>,
    pub authors: HashMap<NodeId, u64>,
    pub tags: HashMap<String, u64>,
}

/// The filters of a facet count: kind, the authors (of a region, or one), a tag.
#[derive(Debug, Clone, Copy)]
pub struct FacetFilter<'a> {
    pub kind: Option<Kind>,
    pub authors: Option<&'a HashSet<NodeId>>,
    /// Lower-cased.
    pub tag: Option<&'a str>,
}

impl FacetFilter<'_> {
    fn kind_ok(&self, k: Kind) -> bool {
        self.kind.is_none_or(|want| want == k)
    }
    fn author_ok(&self, a: &NodeId) -> bool {
        self.authors.is_none_or(|set| set.contains(a))
    }
}

/// SROI ratios of visible innovations, summed up: count, median, range and the highest.
#[derive(Debug, Clone, PartialEq)]
pub struct SroiSummary {
    pub count: usize,
    pub median: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The highest ratios first, at most as many as asked for.
    pub top: Vec<(f64, NodeId, RecordId)>,
}

/// Every visible knowledge record, counted (module docs).
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    /// In key order: a search's hits come in runs sorted by key (one run per index segment),
    /// so its facets walk this forward instead of looking each hit up at random ([`Walk`]).
    records: BTreeMap<RecordKey, Kept>,
    /// Visible records per kind and author.
    totals: HashMap<(Kind, NodeId), u64>,
    /// Visible records per kind, author and tag.
    tagged: HashMap<(Kind, NodeId, TagId), u64>,
    /// Tag names by number, with how many records carry each; a number whose count falls to
    /// zero is freed and given to the next new tag.
    names: Vec<(String, u64)>,
    ids: HashMap<String, TagId>,
    free: Vec<TagId>,
    /// Innovations with an SROI ratio, by ratio (as ordered bits), then author and record.
    sroi: BTreeSet<(u64, NodeId, RecordId)>,
}

/// A ratio as bits that order as the numbers do (IEEE 754 total order).
fn ordered(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn unordered(bits: u64) -> f64 {
    f64::from_bits(if bits >> 63 == 1 {
        bits & !(1 << 63)
    } else {
        !bits
    })
}

impl Tally {
    /// Puts `key` as `counted`, or takes it out (`None`: it no longer shows).
    pub(super) fn set(&mut self, key: RecordKey, counted: Option<Counted>) {
        if let Some(old) = self.records.remove(&key) {
            self.forget(key, old);
        }
        let Some(c) = counted else { return };
        let tags = Tags::of(c.tags.into_iter().map(|t| self.intern(t)).collect());
        *self.totals.entry((c.kind, key.0)).or_default() += 1;
        for t in tags.iter() {
            *self.tagged.entry((c.kind, key.0, *t)).or_default() += 1;
        }
        if let Some(r) = c.sroi {
            self.sroi.insert((ordered(r), key.0, key.1));
        }
        self.records.insert(
            key,
            Kept {
                kind: c.kind,
                tags,
                sroi: c.sroi,
            },
        );
    }

    fn forget(&mut self, key: RecordKey, old: Kept) {
        decrement(&mut self.totals, (old.kind, key.0));
        for t in old.tags.iter() {
            decrement(&mut self.tagged, (old.kind, key.0, *t));
            let (name, uses) = &mut self.names[*t as usize];
            *uses -= 1;
            if *uses == 0 {
                self.ids.remove(name.as_str());
                *name = String::new();
                self.free.push(*t);
            }
        }
        if let Some(r) = old.sroi {
            self.sroi.remove(&(ordered(r), key.0, key.1));
        }
    }

    fn intern(&mut self, tag: String) -> TagId {
        if let Some(id) = self.ids.get(&tag) {
            self.names[*id as usize].1 += 1;
            return *id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.names[id as usize] = (tag.clone(), 1);
                id
            }
            None => {
                self.names.push((tag.clone(), 1));
                (self.names.len() - 1) as TagId
            }
        };
        self.ids.insert(tag, id);
        id
    }

    /// Visible records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Visible records of `author` per kind.
    pub fn kinds_of(&self, author: &NodeId) -> HashMap<Kind, u64> {
        let mut out = HashMap::new();
        for ((kind, a), n) in &self.totals {
            if a == author {
                *out.entry(*kind).or_default() += n;
            }
        }
        out
    }

    /// Visible records of `author`.
    pub fn count_of(&self, author: &NodeId) -> u64 {
        self.kinds_of(author).values().sum()
    }

    /// The visible records carrying `tag` (lower-cased).
    pub fn tagged(&self, tag: &str) -> HashSet<RecordKey> {
        let Some(id) = self.ids.get(tag) else {
            return HashSet::new();
        };
        self.records
            .iter()
            .filter(|(_, kept)| kept.tags.contains(id))
            .map(|(key, _)| *key)
            .collect()
    }

    /// Facet counts over every visible record, from the counts alone.
    pub fn facets(&self, f: FacetFilter<'_>) -> FacetTally {
        let mut out = FacetTally::default();
        let tag = match f.tag {
            Some(t) => match self.ids.get(t) {
                Some(id) => Some(*id),
                // No record carries it: nothing matches, and the tags facet stays as it is.
                None => {
                    self.count_tags(f, &mut out);
                    return out;
                }
            },
            None => None,
        };
        let mut add = |kind: Kind, author: &NodeId, n: u64| {
            if f.author_ok(author) {
                *out.kinds.entry(kind).or_default() += n;
            }
            if f.kind_ok(kind) {
                *out.authors.entry(*author).or_default() += n;
            }
            if f.kind_ok(kind) && f.author_ok(author) {
                out.total += n;
            }
        };
        match tag {
            None => self
                .totals
                .iter()
                .for_each(|((kind, author), n)| add(*kind, author, *n)),
            Some(id) => self
                .tagged
                .iter()
                .filter(|((.., t), _)| *t == id)
                .for_each(|((kind, author, _), n)| add(*kind, author, *n)),
        }
        self.count_tags(f, &mut out);
        out
    }

    fn count_tags(&self, f: FacetFilter<'_>, out: &mut FacetTally) {
        let mut by_id: HashMap<TagId, u64> = HashMap::new();
        for ((kind, author, t), n) in &self.tagged {
            if f.kind_ok(*kind) && f.author_ok(author) {
                *by_id.entry(*t).or_default() += n;
            }
        }
        out.tags = by_id
            .into_iter()
            .map(|(id, n)| (self.names[id as usize].0.clone(), n))
            .collect();
    }

    /// Facet counts over the visible records among `hits` (a full-text search's). Counted
    /// into arrays by kind, author and tag number, turned into maps once at the end.
    pub fn facets_of(
        &self,
        hits: impl IntoIterator<Item = RecordKey>,
        f: FacetFilter<'_>,
    ) -> FacetTally {
        let tag = f.tag.map(|t| self.ids.get(t).copied());
        let mut kinds = [0u64; Kind::ALL.len()];
        let mut authors: Vec<(NodeId, u64)> = Vec::new();
        let mut tags = vec![0u64; self.names.len()];
        let mut total = 0;
        let mut walk = Walk::new(&self.records);
        // The index holds one document a record: a hit is never counted twice.
        for key in hits {
            let Some(kept) = walk.get(&key) else {
                continue;
            };
            let (kind_ok, author_ok) = (f.kind_ok(kept.kind), f.author_ok(&key.0));
            let tag_ok = match tag {
                None => true,
                Some(id) => id.is_some_and(|id| kept.tags.contains(&id)),
            };
            if author_ok && tag_ok {
                kinds[usize::from(kept.kind.code())] += 1;
            }
            if kind_ok && tag_ok {
                match authors.iter_mut().find(|(a, _)| *a == key.0) {
                    Some((_, n)) => *n += 1,
                    None => authors.push((key.0, 1)),
                }
            }
            if kind_ok && author_ok {
                for t in kept.tags.iter() {
                    tags[*t as usize] += 1;
                }
            }
            if kind_ok && author_ok && tag_ok {
                total += 1;
            }
        }
        FacetTally {
            total,
            kinds: Kind::ALL
                .into_iter()
                .filter(|k| kinds[usize::from(k.code())] > 0)
                .map(|k| (k, kinds[usize::from(k.code())]))
                .collect(),
            authors: authors.into_iter().collect(),
            tags: tags
                .into_iter()
                .enumerate()
                .filter(|(_, n)| *n > 0)
                .map(|(id, n)| (self.names[id].0.clone(), n))
                .collect(),
        }
    }

    /// The SROI ratios of visible innovations (of `only`'s authors when given): count, median,
    /// range, and the `top` highest (ties: the later author and record first).
    pub fn sroi(&self, only: Option<&HashSet<NodeId>>, top: usize) -> SroiSummary {
        let ok = |a: &NodeId| only.is_none_or(|set| set.contains(a));
        let count = match only {
            None => self.sroi.len(),
            Some(_) => self.sroi.iter().filter(|(_, a, _)| ok(a)).count(),
        };
        let mut ascending = self.sroi.iter().filter(|(_, a, _)| ok(a));
        let median = match count {
            0 => None,
            n if n % 2 == 1 => ascending.nth(n / 2).map(|(r, ..)| unordered(*r)),
            n => {
                let low = ascending.nth(n / 2 - 1).map(|(r, ..)| unordered(*r));
                let high = ascending.next().map(|(r, ..)| unordered(*r));
                low.zip(high).map(|(l, h)| (l + h) / 2.0)
            }
        };
        let min = self
            .sroi
            .iter()
            .find(|(_, a, _)| ok(a))
            .map(|(r, ..)| unordered(*r));
        let top: Vec<(f64, NodeId, RecordId)> = self
            .sroi
            .iter()
            .rev()
            .filter(|(_, a, _)| ok(a))
            .take(top)
            .map(|(r, a, id)| (unordered(*r), *a, *id))
            .collect();
        SroiSummary {
            count,
            median,
            min,
            max: top.first().map(|t| t.0),
            top,
        }
    }
}

impl Tally {
    /// The tally with tags by name, whatever numbers they were given.
    #[allow(clippy::type_complexity)]
    fn by_name(
        &self,
    ) -> (
        BTreeMap<RecordKey, (Kind, Vec<&str>, Option<u64>)>,
        BTreeMap<(Kind, NodeId, &str), u64>,
        BTreeMap<&str, u64>,
    ) {
        let name = |t: &TagId| self.names[*t as usize].0.as_str();
        let records = self
            .records
            .iter()
            .map(|(k, kept)| {
                let mut tags: Vec<&str> = kept.tags.iter().map(name).collect();
                tags.sort_unstable();
                (*k, (kept.kind, tags, kept.sroi.map(ordered)))
            })
            .collect();
        let tagged = self
            .tagged
            .iter()
            .map(|((k, a, t), n)| ((*k, *a, name(t)), *n))
            .collect();
        let uses = self
            .names
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (t.as_str(), *n))
            .collect();
        (records, tagged, uses)
    }

    /// Whether `self` and `other` count the same records the same way (tag numbers aside).
    pub fn same_as(&self, other: &Tally) -> bool {
        self.by_name() == other.by_name()
            && self.totals == other.totals
            && self.sroi == other.sroi
            && self.ids.len() == self.names.len() - self.free.len()
    }
}

/// The keys of `items` in increasing order, from its increasing runs (a search's hits come
/// in one sorted run per index segment): a k-way merge, so a [`Walk`] over them steps through
/// the tally once instead of once per run.
pub fn in_key_order<'h, T>(
    items: &'h [T],
    key: impl Fn(&T) -> RecordKey + 'h,
) -> impl Iterator<Item = RecordKey> + 'h {
    use std::cmp::Reverse;
    let mut heap = std::collections::BinaryHeap::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start + 1;
        let mut prev = key(&items[start]);
        while let Some(next) = items.get(end).map(&key) {
            if next <= prev {
                break;
            }
            prev = next;
            end += 1;
        }
        heap.push(Reverse((key(&items[start]), start, end)));
        start = end;
    }
    std::iter::from_fn(move || {
        let Reverse((k, i, end)) = heap.pop()?;
        if let Some(next) = items.get(i + 1).filter(|_| i + 1 < end) {
            heap.push(Reverse((key(next), i + 1, end)));
        }
        Some(k)
    })
}

/// Entries a [`Walk`] steps forward to reach the next key before it searches afresh.
pub const WALK_STEPS_MAX: usize = 16;

/// Looks up keys that mostly come in increasing runs: each is found by stepping forward from
/// the last one (sequential reads, few cache misses) when it is at most [`WALK_STEPS_MAX`]
/// entries further on, else by a search from the root. Any order gives the same answers.
struct Walk<'t> {
    map: &'t BTreeMap<RecordKey, Kept>,
    iter: Option<std::collections::btree_map::Range<'t, RecordKey, Kept>>,
    /// The entry the walk stands on (`None`: past the end, or not started).
    at: Option<(&'t RecordKey, &'t Kept)>,
    last: Option<RecordKey>,
}

impl<'t> Walk<'t> {
    fn new(map: &'t BTreeMap<RecordKey, Kept>) -> Self {
        Walk {
            map,
            iter: None,
            at: None,
            last: None,
        }
    }

    fn get(&mut self, key: &RecordKey) -> Option<&'t Kept> {
        let forward = self.last.is_some_and(|last| last < *key) && self.iter.is_some();
        self.last = Some(*key);
        if forward {
            for _ in 0..=WALK_STEPS_MAX {
                match self.at {
                    None => return None,
                    Some((k, kept)) => match k.cmp(key) {
                        std::cmp::Ordering::Equal => return Some(kept),
                        std::cmp::Ordering::Greater => return None,
                        std::cmp::Ordering::Less => {
                            self.at = self.iter.as_mut().and_then(Iterator::next);
                        }
                    },
                }
            }
        }
        let mut iter = self.map.range(*key..);
        self.at = iter.next();
        self.iter = Some(iter);
        self.at.filter(|(k, _)| *k == key).map(|(_, kept)| kept)
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: u8, r: u8) -> RecordKey {
        (NodeId([a; 32]), RecordId([r; 16]))
    }

    fn counted(kind: Kind, tags: &[&str], sroi: Option<f64>) -> Option<Counted> {
        Some(Counted {
            kind,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            sroi,
        })
    }

    /// A walk answers as the map does whatever the order of the keys asked: runs in order
    /// with gaps shorter and longer than [`WALK_STEPS_MAX`], keys missing between and past
    /// every entry, a run that starts again lower, repeats, and random order.
    #[test]
    fn a_walk_finds_what_the_map_holds_in_any_order() {
        let mut map = BTreeMap::new();
        for a in [3u8, 7] {
            for r in (0..=250u8).step_by(2) {
                let kept = Kept {
                    kind: Kind::Method,
                    tags: Tags::of(vec![u32::from(r)]),
                    sroi: None,
                };
                map.insert(key(a, r), kept);
            }
        }
        let mut asked: Vec<RecordKey> = Vec::new();
        for a in [1u8, 3, 5, 7, 9] {
            asked.extend((0..=255u8).map(|r| key(a, r)));
        }
        asked.extend((0..=255u8).step_by(3 * WALK_STEPS_MAX).map(|r| key(7, r)));
        asked.extend([key(7, 250), key(7, 250), key(3, 4), key(9, 0), key(0, 0)]);
        let mut shuffled = asked.clone();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        // Merged runs come out sorted, each key as often as it went in.
        let merged: Vec<RecordKey> = in_key_order(&shuffled, |k| *k).collect();
        let mut sorted = shuffled.clone();
        sorted.sort();
        assert_eq!(merged, sorted);
        let runs: Vec<RecordKey> = [key(5, 1), key(5, 9), key(3, 2), key(3, 3), key(4, 0)].into();
        let merged: Vec<RecordKey> = in_key_order(&runs, |k| *k).collect();
        assert_eq!(
            merged,
            [key(3, 2), key(3, 3), key(4, 0), key(5, 1), key(5, 9)]
        );
        for keys in [asked, shuffled, sorted] {
            let mut walk = Walk::new(&map);
            let mut found = 0;
            for k in &keys {
                let got = walk.get(k);
                assert_eq!(got, map.get(k), "{k:?}");
                found += usize::from(got.is_some());
            }
            assert!(found > map.len(), "{found}");
        }
    }

    #[test]
    fn ratios_order_as_numbers() {
        let xs = [-3.5, -0.0, 0.0, 1e-300, 0.5, 1.0, 7.25, 1e300];
        for w in xs.windows(2) {
            assert!(ordered(w[0]) <= ordered(w[1]), "{} {}", w[0], w[1]);
        }
        for x in xs {
            assert_eq!(unordered(ordered(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn a_replaced_record_counts_once_and_a_freed_tag_is_forgotten() {
        let mut t = Tally::default();
        t.set(key(1, 1), counted(Kind::Innovation, &["a", "b"], Some(2.0)));
        t.set(key(1, 1), counted(Kind::Innovation, &["b", "c"], Some(3.0)));
        t.set(key(2, 1), counted(Kind::Method, &["c"], None));
        let all = FacetFilter {
            kind: None,
            authors: None,
            tag: None,
        };
        let f = t.facets(all);
        assert_eq!(f.total, 2);
        assert_eq!(f.tags.get("a"), None);
        assert_eq!(f.tags.get("c"), Some(&2));
        assert_eq!(t.sroi(None, 5).top.len(), 1);
        t.set(key(1, 1), None);
        t.set(key(2, 1), None);
        assert_eq!(
            t,
            Tally {
                names: t.names.clone(),
                free: t.free.clone(),
                ..Tally::default()
            }
        );
        assert_eq!(t.free.len(), t.names.len());
    }

    #[test]
    fn tags_past_the_inline_ones_count_as_the_first() {
        let many: Vec<String> = (0..=TAGS_INLINE).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut t = Tally::default();
        t.set(key(1, 1), counted(Kind::Method, &refs, None));
        t.set(key(1, 2), counted(Kind::Method, &refs[..1], None));
        let f = t.facets(FacetFilter {
            kind: None,
            authors: None,
            tag: Some(refs[TAGS_INLINE]),
        });
        assert_eq!(f.total, 1, "the tag kept on the heap");
        assert_eq!(f.tags.len(), TAGS_INLINE + 1);
        assert_eq!(t.tagged("t0").len(), 2);
        assert_eq!(t.tagged(refs[TAGS_INLINE]).len(), 1);
    }

    #[test]
    fn sroi_median_and_range_of_one_author() {
        let mut t = Tally::default();
        for (i, r) in [3.0, 1.5, 7.25, 2.0].into_iter().enumerate() {
            t.set(key(1, i as u8), counted(Kind::Innovation, &[], Some(r)));
        }
        t.set(key(2, 9), counted(Kind::Innovation, &[], Some(100.0)));
        let one: HashSet<NodeId> = [NodeId([1; 32])].into();
        let s = t.sroi(Some(&one), 2);
        assert_eq!(
            (s.count, s.median, s.min, s.max),
            (4, Some(2.5), Some(1.5), Some(7.25))
        );
        assert_eq!(
            s.top.iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![7.25, 3.0]
        );
        let none = Tally::default().sroi(None, 10);
        assert_eq!(
            (none.count, none.median, none.min, none.max),
            (0, None, None, None)
        );
        let all = t.sroi(None, 10);
        assert_eq!(
            (all.count, all.median, all.max),
            (5, Some(3.0), Some(100.0))
        );
    }
}
