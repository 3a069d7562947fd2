//! The full-text index's background merge when the process runs out of file descriptors (what
//! 1,100 idle HTTP connections once did to a node): a merge that fails is counted, retried
//! with backoff, and succeeds once descriptors are back, so a deleted record's words leave the
//! index. (A failed commit, and the new writer it needs, is tested in `node/src/search.rs`.) Its own test binary with one test: it takes every descriptor of the
//! process for a while.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spindel_node::Reads;
use spindel_node::local::{self, LocalNode, Role};
use spindel_node::query::Query;
use spindel_protocol::entry::RecordId;
use spindel_protocol::record::Kind;
use spindel_protocol::sync::QueryRequest;

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn publish(node: &LocalNode, title: &str) -> RecordId {
    let json = serde_json::json!({"title": title, "summary": "Erfarenheter från föreningar"});
    let published = node
        .publish(
            Kind::Method,
            &json.to_string(),
            None,
            &mut rand_core::OsRng,
            now_ms(),
        )
        .unwrap();
    published.record_id.parse().unwrap()
}

fn titles(node: &LocalNode, words: &str) -> Vec<String> {
    let request = QueryRequest {
        text: Some(words.to_string()),
        ..QueryRequest::default()
    };
    let page = node.query(&Query::from_request(&request).unwrap()).unwrap();
    page.records
        .iter()
        .map(|r| r.data["title"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `cond` every 50 ms until it holds; panics naming `what` after `secs`.
fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Opens files until the process has no descriptor left; dropping them gives them back.
fn take_every_descriptor() -> Vec<std::fs::File> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    // A soft limit of 1,024 at most, so this opens hundreds of files, not a million.
    let limit = getrlimit(Resource::Nofile);
    let lower = rustix::process::Rlimit {
        current: Some(limit.current.map_or(1024, |c| c.min(1024))),
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, lower).unwrap();
    let mut files = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "EMFILE, got {e}");
                return files;
            }
        }
    }
}

#[test]
fn a_merge_that_fails_for_want_of_descriptors_is_retried_until_the_deleted_words_are_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let node = local::init_open(
        &tmp.path().join("skane"),
        "skane",
        Role::Region,
        None,
        &mut rand_core::OsRng,
    )
    .unwrap();
    let gone_word = "Qxzvbnmxqkanarie";
    let gone = publish(&node, &format!("Metod {gone_word}"));
    publish(&node, "Metod som stannar");
    node.delete(gone, now_ms()).unwrap();
    // The deletion is committed (a search commits what is pending first); its words stay in
    // the index until a merge, which the background thread runs at most every 5 s: the first
    // comes after the descriptors are gone.
    assert!(titles(&node, gone_word).is_empty());
    assert!(node.index_holds_word(gone_word).unwrap());
    let before = node.index_health();
    assert_eq!(before.merge_failures, 0);

    let hog = take_every_descriptor();
    let merged_already = node.index_health().merges > before.merges;
    assert!(
        !merged_already,
        "the merge ran before the descriptors were taken (more than 5 s passed): the test saw nothing"
    );
    eventually(30, "failed merges, counted and retried", || {
        node.index_health().merge_failures >= 2
    });
    let failing = node.index_health();
    assert_eq!(failing.merges, before.merges, "{failing:?}");
    drop(hog);

    // Descriptors are back: the next try (at most INDEX_RETRY_MAX_MS later) merges the
    // deleted record's segment away.
    eventually(40, "the deletion merged out of the index", || {
        let h = node.index_health();
        h.merges > before.merges && h.segments_with_deletes == 0
    });
    assert!(
        !node.index_holds_word(gone_word).unwrap(),
        "the deleted record's words left the index"
    );
    assert_eq!(titles(&node, "stannar"), ["Metod som stannar"]);
    let after = node.index_health();
    assert_eq!(after.commit_failures, 0, "{after:?}");
    eprintln!("index health after the retries: {after:?}");
}
