//! What the pages show of answers (`experience` records): the answers to a record grouped by
//! region, newest first; what a region answered and what others answered it; the matrix of
//! who learns from whom; and what an answer can say of the record it answers (held, deleted,
//! or not received here yet). Read from the store's in-memory answers index, never a scan of
//! the records; every list is capped by a named constant.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use spindel_protocol::{NodeId, RecordRef};

use crate::query::{self, RecordView};
use crate::store::{AnswerKey, Store, StoreError};

/// Answers a record page shows per answering region (the newest).
pub const ANSWERS_PER_REGION: usize = 5;
/// Answering regions a record page shows (those with the newest answers).
pub const ANSWER_REGIONS: usize = 20;
/// Answers of one region to one record on the page that shows them all (`?svar=alla`).
pub const ANSWERS_PER_REGION_ALL: usize = 200;
/// Answers a region page lists each way (given, received).
pub const REGION_ANSWERS: usize = 20;

/// One answering region's answers to a record, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerGroup {
    pub author: String,
    /// How many it has answered with; `answers` holds at most the cap.
    pub total: usize,
    pub answers: Vec<RecordView>,
}

/// The answers to a record.
#[derive(Debug, Clone, Serialize)]
pub struct AnswersTo {
    pub total: usize,
    /// Regions with the newest answer first.
    pub groups: Vec<AnswerGroup>,
    /// Whether a cap left some out.
    pub capped: bool,
}

/// The answers to `about`, grouped by answering region: at most `per_region` of each and
/// [`ANSWER_REGIONS`] regions.
pub fn answers_to(
    store: &Store,
    about: &RecordRef,
    per_region: usize,
) -> Result<AnswersTo, StoreError> {
    let keys = store.with_answers(|a| a.to(about))?;
    let newest = newest_first(store, keys)?;
    let total = newest.len();
    let mut order: Vec<NodeId> = Vec::new();
    let mut by_author: HashMap<NodeId, Vec<AnswerKey>> = HashMap::new();
    for key in newest {
        if !by_author.contains_key(&key.0) {
            order.push(key.0);
        }
        by_author.entry(key.0).or_default().push(key);
    }
    let mut capped = order.len() > ANSWER_REGIONS;
    let mut groups = Vec::new();
    for author in order.into_iter().take(ANSWER_REGIONS) {
        let keys = by_author.remove(&author).unwrap_or_default();
        capped |= keys.len() > per_region;
        let answers = views(store, keys.iter().take(per_region))?;
        groups.push(AnswerGroup {
            author: author.to_hex(),
            total: keys.len(),
            answers,
        });
    }
    Ok(AnswersTo {
        total,
        groups,
        capped,
    })
}

/// What a region answered and what other regions answered it, newest first, at most
/// [`REGION_ANSWERS`] each.
#[derive(Debug, Clone, Serialize)]
pub struct RegionAnswers {
    pub given: Vec<RecordView>,
    pub given_total: usize,
    pub received: Vec<RecordView>,
    pub received_total: usize,
}

pub fn region_answers(store: &Store, id: &NodeId) -> Result<RegionAnswers, StoreError> {
    let (given, received) = store.with_answers(|a| {
        let mut given = Vec::new();
        let mut received = Vec::new();
        for (key, about) in a.all() {
            if key.0 == *id {
                given.push(*key);
            } else if about.author == *id {
                received.push(*key);
            }
        }
        (given, received)
    })?;
    let (given, received) = (newest_first(store, given)?, newest_first(store, received)?);
    Ok(RegionAnswers {
        given_total: given.len(),
        given: views(store, given.iter().take(REGION_ANSWERS))?,
        received_total: received.len(),
        received: views(store, received.iter().take(REGION_ANSWERS))?,
    })
}

/// Who learns from whom: visible answers counted by answering region (rows) and answered
/// region (columns), for the regions this node knows (an answer naming an author that is no
/// region here adds no row or column).
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    /// Hex keys, in the order of rows and columns.
    pub regions: Vec<String>,
    /// `counts[row][column]`.
    pub counts: Vec<Vec<u64>>,
    pub total: u64,
}

pub fn matrix(store: &Store) -> Result<Matrix, StoreError> {
    let known: Vec<NodeId> = store
        .authors()?
        .into_iter()
        .filter(|(_, m)| m.profile.is_some())
        .map(|(id, _)| id)
        .collect();
    let at: HashMap<NodeId, usize> = known.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let pairs: BTreeMap<(usize, usize), u64> = store.with_answers(|a| {
        let mut pairs = BTreeMap::new();
        for (key, about) in a.all() {
            if let (Some(&row), Some(&col)) = (at.get(&key.0), at.get(&about.author)) {
                *pairs.entry((row, col)).or_insert(0u64) += 1;
            }
        }
        pairs
    })?;
    let mut counts = vec![vec![0u64; known.len()]; known.len()];
    let mut total = 0;
    for ((row, col), n) in pairs {
        counts[row][col] = n;
        total += n;
    }
    Ok(Matrix {
        regions: known.iter().map(NodeId::to_hex).collect(),
        counts,
        total,
    })
}

/// What this node can say of an answered record.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Target {
    /// Held and visible: its current version.
    Held { record: Box<RecordView> },
    /// Its author deleted it: nothing of it is left to show.
    Deleted,
    /// Not received here (yet), or received without its content.
    NotHeld,
}

pub fn target(store: &Store, about: &RecordRef) -> Result<Target, StoreError> {
    match store.record_meta(&about.author, &about.record)? {
        Some(meta) if meta.deleted => Ok(Target::Deleted),
        Some(_) => Ok(match query::get(store, &about.author, &about.record)? {
            Some(view) => Target::Held {
                record: Box::new(view),
            },
            None => Target::NotHeld,
        }),
        None => Ok(Target::NotHeld),
    }
}

/// `keys` newest first (by the time of their current version), those still visible.
fn newest_first(store: &Store, keys: Vec<AnswerKey>) -> Result<Vec<AnswerKey>, StoreError> {
    let mut timed = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(meta) = store.record_meta(&key.0, &key.1)?
            && !meta.deleted
        {
            // Within one millisecond, the later entry of an author first.
            timed.push((meta.updated_ms, meta.seq, key));
        }
    }
    timed.sort_by(|a, b| b.cmp(a));
    Ok(timed.into_iter().map(|(_, _, k)| k).collect())
}

fn views<'a>(
    store: &Store,
    keys: impl Iterator<Item = &'a AnswerKey>,
) -> Result<Vec<RecordView>, StoreError> {
    let mut out = Vec::new();
    for key in keys {
        if let Some(v) = query::get(store, &key.0, &key.1)? {
            out.push(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::local::{self, Role};
    use spindel_protocol::Kind;

    /// Every cap of the record page and the region page is hit: the newest of one region's
    /// answers, all of them on request, the region page's 20; a new version that names
    /// another record moves the answer; a deleted answer leaves every list and the matrix.
    #[test]
    fn the_caps_hold_and_an_answer_moves_and_leaves() {
        let tmp = tempfile::tempdir().unwrap();
        let node = local::init_open(
            &tmp.path().join("skane"),
            "skane",
            Role::Region,
            None,
            &mut rand_core::OsRng,
        )
        .unwrap();
        let mut now = crate::local::now_ms();
        let mut publish = |kind: Kind, json: String, id: Option<&str>| {
            now += 1000;
            let id = id.map(|i| i.parse().unwrap());
            node.publish(kind, &json, id, &mut rand_core::OsRng, now)
                .unwrap()
                .record_id
        };
        let target = publish(Kind::Method, r#"{"title":"T","summary":"S"}"#.into(), None);
        let other = publish(Kind::Method, r#"{"title":"U","summary":"S"}"#.into(), None);
        let me = node.node_id();
        let about = |rid: &str| RecordRef {
            author: me,
            record: rid.parse().unwrap(),
        };
        let answer = |n: usize, rid: &str| {
            format!(
                r#"{{"about":"{}","text":"svar {n}","outcome":"tried"}}"#,
                about(rid)
            )
        };
        let count = REGION_ANSWERS + 1;
        let mut ids = Vec::new();
        for n in 0..count {
            ids.push(publish(Kind::Experience, answer(n, &target), None));
        }
        let store = node.store();
        let page = answers_to(store, &about(&target), ANSWERS_PER_REGION).unwrap();
        assert_eq!((page.total, page.capped), (count, true));
        assert_eq!(page.groups[0].answers.len(), ANSWERS_PER_REGION);
        assert_eq!(
            page.groups[0].answers[0].data["text"],
            format!("svar {}", count - 1),
            "newest first"
        );
        let all = answers_to(store, &about(&target), ANSWERS_PER_REGION_ALL).unwrap();
        assert_eq!((all.groups[0].answers.len(), all.capped), (count, false));
        let region = region_answers(store, &me).unwrap();
        assert_eq!(
            (region.given.len(), region.given_total),
            (REGION_ANSWERS, count)
        );
        assert_eq!(region.received_total, 0, "its own answers are not received");
        assert_eq!(matrix(store).unwrap().total, count as u64);

        // A new version naming the other record moves the answer.
        publish(Kind::Experience, answer(0, &other), Some(&ids[0]));
        assert_eq!(
            answers_to(store, &about(&target), 1).unwrap().total,
            count - 1
        );
        assert_eq!(answers_to(store, &about(&other), 1).unwrap().total, 1);
        // Deleted: gone from every list and the matrix.
        node.delete(ids[0].parse().unwrap(), now + 1000).unwrap();
        assert_eq!(answers_to(store, &about(&other), 1).unwrap().total, 0);
        assert_eq!(matrix(store).unwrap().total, (count - 1) as u64);
        assert!(matches!(
            target_of(store, &about(&other)),
            Target::Held { .. }
        ));
    }

    fn target_of(store: &Store, about: &RecordRef) -> Target {
        target(store, about).unwrap()
    }
}
