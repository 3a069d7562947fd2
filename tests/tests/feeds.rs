//! The knowledge bank on other sites, through real processes: the Atom feed `/flode.atom`
//! read with `feed-rs` (a parser independent of the code that writes it), its filters, a new
//! version updating its entry under the same id, a deletion leaving the feed; the embed
//! `/inbaddning`, the one route another site may frame, and only the sites the settings name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use spindel_tests::{
    NodeProc, eventually, http_request, init_network, publish, publish_version, s, spindel,
};

/// The feed at `path`, parsed strictly by `feed-rs`.
fn feed(http: SocketAddr, path: &str) -> feed_rs::model::Feed {
    let (status, head, body) = http_request(http, "GET", path, None);
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(
        spindel_tests::header(&head, "content-type"),
        Some("application/atom+xml; charset=utf-8")
    );
    let parsed = feed_rs::parser::parse(body.as_bytes())
        .unwrap_or_else(|e| panic!("{path} does not parse: {e}\n{body}"));
    assert_eq!(parsed.feed_type, feed_rs::model::FeedType::Atom);
    parsed
}

fn titles(f: &feed_rs::model::Feed) -> Vec<String> {
    f.entries
        .iter()
        .map(|e| {
            e.title
                .as_ref()
                .map(|t| t.content.clone())
                .unwrap_or_default()
        })
        .collect()
}

const METHOD: &str = r#"{"title":"Lokal överenskommelse i Lund","summary":"Hur kommunen & föreningarna skrev en <överenskommelse>.","tags":["Överenskommelsen","Samverkan"]}"#;
const INNOVATION: &str = r#"{"title":"Fixartjänst i Falun","summary":"Äldre får hjälp hemma av unga som söker jobb.","sroi":{"ratio":3.4,"year":2025}}"#;
const RESEARCHER: &str = r#"{"name":"Eva Forskare","affiliation":"Lunds universitet","fields":["social ekonomi"],"email":"eva.forskare@example.se","phone":"070-123 45 67","consent":{"given":true,"date":"2026-01-10","method":"e-post"}}"#;

#[test]
fn the_atom_feed_follows_new_versions_and_deletions_with_the_search_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(sk_dir, sk_id), (dal_dir, dal_id)]) =
        init_network(tmp.path(), ["skane", "dalarna"]);
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let _sk = NodeProc::start(&sk_dir, &["--aggregator", &peer]);
    let _dal = NodeProc::start(&dal_dir, &["--aggregator", &peer]);
    let http = agg.http.unwrap();
    let method = publish(&sk_dir, "method", METHOD);
    let rid = method["record_id"].as_str().unwrap().to_string();
    publish(&dal_dir, "innovation", INNOVATION);
    publish(&dal_dir, "researcher", RESEARCHER);
    eventually(30, "the researcher at the aggregator", || {
        feed(http, "/flode.atom?kind=researcher").entries.len() == 1
    });
    // A researcher is a person: in a feed only when asked for, never with contact details,
    // and marked for no cache and no index.
    assert_eq!(feed(http, "/flode.atom").entries.len(), 2);
    let (_, head, body) = http_request(http, "GET", "/flode.atom?kind=researcher", None);
    assert!(!body.contains("eva.forskare@example.se") && !body.contains("070-123"));
    assert!(
        head.to_lowercase()
            .contains("cache-control: private, no-store"),
        "{head}"
    );
    let all = feed(http, "/flode.atom");
    let id = format!("tag:spindel,2026:post/{sk_id}/{rid}");
    let entry = all
        .entries
        .iter()
        .find(|e| e.id == id)
        .expect("the method's entry");
    assert_eq!(
        entry.title.as_ref().unwrap().content,
        "Lokal överenskommelse i Lund"
    );
    assert_eq!(
        entry.summary.as_ref().unwrap().content,
        "Hur kommunen & föreningarna skrev en <överenskommelse>."
    );
    assert_eq!(entry.authors[0].name, "skane");
    assert!(
        entry.links[0]
            .href
            .ends_with(&format!("/post/{sk_id}/{rid}")),
        "{:?}",
        entry.links
    );
    let first_update = entry.updated.unwrap();
    let categories: Vec<&str> = entry.categories.iter().map(|c| c.term.as_str()).collect();
    assert!(categories.contains(&"method") && categories.contains(&"samverkan"));
    // The search page's filters.
    assert_eq!(
        titles(&feed(http, "/flode.atom?kind=innovation")),
        ["Fixartjänst i Falun"]
    );
    assert_eq!(
        titles(&feed(http, "/flode.atom?region=skane")),
        ["Lokal överenskommelse i Lund"]
    );
    assert_eq!(
        titles(&feed(http, "/flode.atom?tag=samverkan")),
        ["Lokal överenskommelse i Lund"]
    );
    assert_eq!(
        titles(&feed(http, "/flode.atom?q=fixartj%C3%A4nsten")),
        ["Fixartjänst i Falun"]
    );
    assert!(feed(http, "/flode.atom?region=gotland").entries.is_empty());
    for bad in [
        "/flode.atom?kind=roman",
        "/flode.atom?sida=2",
        "/flode.atom?kind=endorsement",
    ] {
        let (status, _, _) = http_request(http, "GET", bad, None);
        assert_eq!(status, 400, "{bad}");
    }
    // The search page links its own feed; a region's page gives the embed's line to paste.
    let (_, _, page) = http_request(http, "GET", "/?kind=method&tag=samverkan", None);
    assert!(
        page.contains("flode.atom?kind=method&amp;tag=samverkan"),
        "{page}"
    );
    let (_, _, page) = http_request(http, "GET", "/region/skane", None);
    assert!(
        page.contains("inbaddning?region=skane&amp;limit=5"),
        "{page}"
    );
    assert!(page.contains("flode.atom?region=skane"), "{page}");
    // A new version: the same entry, updated, first in the feed.
    publish_version(
        &sk_dir,
        "method",
        &rid,
        r#"{"title":"Lokal överenskommelse i Lund, reviderad","summary":"Andra upplagan."}"#,
    )
    .ok();
    eventually(30, "the new version in the feed", || {
        feed(http, "/flode.atom").entries[0]
            .title
            .as_ref()
            .unwrap()
            .content
            == "Lokal överenskommelse i Lund, reviderad"
    });
    let after = feed(http, "/flode.atom");
    assert_eq!(after.entries.len(), 2, "updated, not added");
    assert_eq!(after.entries[0].id, id);
    assert!(after.entries[0].updated.unwrap() > first_update);
    assert_eq!(after.updated, after.entries[0].updated);
    // A deletion leaves the feed.
    spindel(&["delete", "--data-dir", s(&sk_dir), &rid]).ok();
    eventually(30, "the deleted record out of the feed", || {
        feed(http, "/flode.atom").entries.iter().all(|e| e.id != id)
    });
    assert_eq!(feed(http, "/flode.atom").entries.len(), 1);
    let _ = dal_id;
}

/// The embed: a plain page of the newest records, its own stylesheet, no scripts; the one
/// route whose `frame-ancestors` lets another site frame it, any site by default and only the
/// origins `embed_ancestors` names when set; every other page keeps `frame-ancestors 'none'`.
#[test]
fn the_embed_may_be_framed_only_where_the_settings_say() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = spindel_tests::init(tmp.path(), "skane", "region");
    publish(&dir, "method", METHOD);
    publish(&dir, "innovation", INNOVATION);
    let csp = |http: SocketAddr, path: &str| {
        let (status, head, body) = http_request(http, "GET", path, None);
        assert_eq!(status, 200, "{path}: {body}");
        spindel_tests::header(&head, "content-security-policy")
            .unwrap()
            .to_string()
    };
    {
        let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0"]);
        let http = node.http.unwrap();
        assert!(csp(http, "/inbaddning").ends_with("frame-ancestors *"));
        assert!(csp(http, "/").ends_with("frame-ancestors 'none'"));
    }
    std::fs::write(
        dir.join("spindel.toml"),
        "embed_ancestors = [\"https://www.skane.example.se\", \"http://127.0.0.1:8080\"]\n",
    )
    .unwrap();
    let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0"]);
    let http = node.http.unwrap();
    let policy = csp(http, "/inbaddning?limit=1");
    assert!(
        policy.ends_with("frame-ancestors https://www.skane.example.se http://127.0.0.1:8080"),
        "{policy}"
    );
    assert!(!policy.contains("script-src"), "{policy}");
    for path in ["/", "/kalender", "/natverket", "/proxybank", "/flode.atom"] {
        let (_, head, _) = http_request(http, "GET", path, None);
        if let Some(p) = spindel_tests::header(&head, "content-security-policy") {
            assert!(p.ends_with("frame-ancestors 'none'"), "{path}: {p}");
        }
    }
    let (_, _, body) = http_request(http, "GET", "/inbaddning?limit=1", None);
    assert!(body.contains("Fixartjänst i Falun"), "{body}");
    assert!(!body.contains("Lokal överenskommelse"), "limit 1: {body}");
    assert!(!body.contains("<script"), "{body}");
    assert!(body.contains("inbaddning.css"), "{body}");
    let (_, _, body) = http_request(http, "GET", "/inbaddning?kind=method", None);
    assert!(body.contains("Lokal överenskommelse i Lund"), "{body}");
    assert!(!body.contains("Fixartjänst"), "{body}");
    let (status, head, _) = http_request(http, "GET", "/assets/inbaddning.css", None);
    assert_eq!(status, 200);
    assert!(
        spindel_tests::header(&head, "content-type")
            .unwrap()
            .starts_with("text/css")
    );
    // A mistake in the address is said inside the frame (the embed's own policy), so the
    // region's website shows what is wrong, not a browser's refusal or an empty list.
    for (bad, says) in [
        ("/inbaddning?limit=0", "från 1 till 20"),
        ("/inbaddning?limit=21", "från 1 till 20"),
        ("/inbaddning?kind=roman", "roman"),
        ("/inbaddning?q=ord", "q"),
        (
            "/inbaddning?region=gotland",
            "Ingen region heter ”gotland” här",
        ),
    ] {
        let (status, head, body) = http_request(http, "GET", bad, None);
        assert_eq!(status, 400, "{bad}");
        assert!(body.contains(says), "{bad}: {body}");
        let policy = spindel_tests::header(&head, "content-security-policy").unwrap();
        assert!(
            !policy.contains("frame-ancestors 'none'"),
            "{bad}: {policy}"
        );
    }
    drop(node);
    // An origin that is not one stops the start with the file, the line and the key.
    std::fs::write(dir.join("spindel.toml"), "embed_ancestors = []\n").unwrap();
    spindel(&["run", "--data-dir", s(&dir), "--http", "127.0.0.1:0"])
        .fails(1, "embed_ancestors: an empty list: leave the key out");
    std::fs::write(
        dir.join("spindel.toml"),
        "log_level = \"info\"\nembed_ancestors = [\"https://a.se; script-src *\"]\n",
    )
    .unwrap();
    let run = spindel(&["run", "--data-dir", s(&dir), "--http", "127.0.0.1:0"]);
    run.fails(
        1,
        "spindel.toml line 2: embed_ancestors[0]: \"https://a.se; script-src *\" is not an origin",
    );
}
