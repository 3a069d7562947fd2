//! The HTTP/JSON API of a running node (`spindel run --http`): every route and bad parameter,
//! through a real process and real TCP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spindel_tests::{NodeProc, http_get, init_region_as, publish, s, spindel};

#[test]
fn every_route_and_bad_parameter() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("skane");
    let author = init_region_as(&dir, "skane", "Social Ekonomi Skåne");
    let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0"]);
    let http = node.http.expect("http address printed");
    let mut ids = Vec::new();
    for (i, title) in [
        "Språkcafé i föreningen",
        "Läxhjälp i kooperativet",
        "Mentorskap för nyanlända",
    ]
    .iter()
    .enumerate()
    {
        let json = serde_json::json!({"title": title, "summary": "Om integration", "tags": [format!("t{i}"), "integration"]}).to_string();
        let v = publish(&dir, "innovation", &json);
        ids.push(v["record_id"].as_str().unwrap().to_string());
    }

    // Records: the same JSON as `query --json`.
    let (code, body) = http_get(http, "/api/v1/records?kind=innovation");
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cli = spindel(&[
        "query",
        "--data-dir",
        s(&dir),
        "--kind",
        "innovation",
        "--json",
    ])
    .json();
    assert_eq!(page, cli);
    assert_eq!(page["records"].as_array().unwrap().len(), 3);
    let (_, body) = http_get(http, "/api/v1/records?q=f%C3%B6reningarna");
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        found["records"][0]["data"]["title"],
        "Språkcafé i föreningen"
    );
    let (_, body) = http_get(http, "/api/v1/records?tag=t1&region=skane");
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        found["records"][0]["data"]["title"],
        "Läxhjälp i kooperativet"
    );
    // Paging with the cursor.
    let (_, body) = http_get(http, "/api/v1/records?kind=innovation&limit=2");
    let p1: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cursor = p1["next_cursor"].as_str().expect("a second page");
    let (_, body) = http_get(
        http,
        &format!("/api/v1/records?kind=innovation&limit=2&cursor={cursor}"),
    );
    let p2: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p2["records"].as_array().unwrap().len(), 1);
    assert_eq!(p2["next_cursor"], serde_json::Value::Null);

    // One record; 404 when unknown or deleted; 400 when malformed.
    let (code, body) = http_get(http, &format!("/api/v1/records/{author}/{}", ids[0]));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Språkcafé"));
    spindel(&["delete", "--data-dir", s(&dir), &ids[0]]);
    let (code, body) = http_get(http, &format!("/api/v1/records/{author}/{}", ids[0]));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"error\""));
    let (code, _) = http_get(
        http,
        &format!("/api/v1/records/{author}/{}", "0".repeat(32)),
    );
    assert_eq!(code, 404);
    let (code, body) = http_get(http, &format!("/api/v1/records/{author}/xyz"));
    assert_eq!(code, 400, "{body}");
    let (code, _) = http_get(http, "/api/v1/records/nope/abc");
    assert_eq!(code, 400);

    // Regions and status.
    let (code, body) = http_get(http, "/api/v1/regions");
    assert_eq!(code, 200);
    let regions: serde_json::Value = serde_json::from_str(&body).unwrap();
    let r = &regions["regions"][0];
    assert_eq!(r["node_id"], author.as_str());
    assert_eq!(r["name"], "skane");
    assert_eq!(r["display_name"], "Social Ekonomi Skåne");
    assert_eq!(r["records"], 3); // profile + two innovations
    assert_eq!(r["head"], 5);
    assert_eq!(r["admitted"], true);
    let (code, body) = http_get(http, "/api/v1/status");
    assert_eq!(code, 200);
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in ["node_id", "role", "records", "heads", "peers"] {
        assert!(st.get(key).is_some(), "status lacks {key}");
    }
    // The audit: the same JSON as `audit --json`; a region alone has witnessed nothing.
    let (code, body) = http_get(http, "/api/v1/audit");
    assert_eq!(code, 200, "{body}");
    let audit: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        audit,
        spindel(&["audit", "--data-dir", s(&dir), "--json"]).json()
    );
    assert_eq!(audit["node"], author.as_str());
    assert_eq!(audit["aggregators"], serde_json::json!([]));
    assert_eq!(audit["findings"], serde_json::json!([]));

    // Bad parameters: 400 with a JSON error naming the problem.
    for (path, needle) in [
        ("/api/v1/records?kind=poem", "unknown kind"),
        ("/api/v1/records?limit=0", "limit"),
        ("/api/v1/records?limit=lots", "limit"),
        ("/api/v1/records?limit=5000", "limit"),
        ("/api/v1/records?cursor=zz", "cursor"),
        ("/api/v1/records?colour=red", "unknown parameter"),
        (
            "/api/v1/audit?since=1",
            "unknown parameter \"since\"; this address takes no parameters",
        ),
        // A repeated parameter is refused, not silently narrowed to its last value.
        (
            "/api/v1/records?kind=method&kind=researcher",
            "\"kind\" is given more than once",
        ),
        (
            "/api/v1/records?q=&q=skola",
            "\"q\" is given more than once",
        ),
    ] {
        let (code, body) = http_get(http, path);
        assert_eq!(code, 400, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
    // Unknown routes are 404; nothing can write.
    assert_eq!(http_get(http, "/api/v2/records").0, 404);
    assert_eq!(http_get(http, "/admin").0, 404);
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    use std::io::{Read, Write};
    write!(stream, "POST /api/v1/records HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
    assert_eq!(node.terminate(10), 0);
}

/// Researcher contacts never leave in bulk: API lists and remote queries leave out e-mail and
/// phone; one record asked for by its address shows them. Responses carrying a person say
/// `Cache-Control: private, no-store` and `X-Robots-Tag: noindex`; `/robots.txt` keeps crawlers
/// away from the API and the researcher listings.
#[test]
fn contact_fields_are_shown_one_record_at_a_time_and_never_cached_or_indexed() {
    use spindel_tests::http_request;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, author) = spindel_tests::init(tmp.path(), "skane", "region");
    let researcher = publish(
        &dir,
        "researcher",
        &serde_json::json!({"name": "Eva Exempelsson", "affiliation": "Lunds universitet",
            "fields": ["social ekonomi"], "email": "eva@example.org", "phone": "+46 46 123 45",
            "consent": {"given": true, "date": "2026-03-12"}})
        .to_string(),
    )["record_id"]
        .as_str()
        .unwrap()
        .to_string();
    let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0", "--listen", "127.0.0.1:0"]);
    let http = node.http.unwrap();
    let private = |head: &str| {
        head.contains("cache-control: private, no-store") && head.contains("x-robots-tag: noindex")
    };

    let (code, head, body) = http_request(http, "GET", "/api/v1/records?kind=researcher", None);
    assert_eq!(code, 200);
    assert!(private(&head), "{head}");
    assert!(body.contains("Eva Exempelsson"), "{body}");
    assert!(
        !body.contains("eva@example.org") && !body.contains("123 45"),
        "{body}"
    );

    let one = format!("/api/v1/records/{author}/{researcher}");
    let (code, head, body) = http_request(http, "GET", &one, None);
    assert_eq!(code, 200);
    assert!(private(&head), "{head}");
    assert!(body.contains("eva@example.org"), "{body}");

    // The record page shows the contact and is private; a page without people is not marked.
    let (code, head, body) =
        http_request(http, "GET", &format!("/post/{author}/{researcher}"), None);
    assert_eq!(code, 200);
    assert!(private(&head), "{head}");
    assert!(body.contains("eva@example.org"));
    let (_, head, _) = http_request(http, "GET", "/?kind=profile", None);
    assert!(!head.contains("x-robots-tag"), "{head}");
    let (_, head, _) = http_request(http, "GET", "/", None);
    assert!(
        private(&head),
        "the start page lists the researcher: {head}"
    );

    let (code, head, robots) = http_request(http, "GET", "/robots.txt", None);
    assert_eq!(code, 200);
    assert!(head.contains("text/plain"), "{head}");
    assert!(robots.contains("Disallow: /api/"), "{robots}");
    assert!(robots.contains("Disallow: /*kind=researcher"), "{robots}");

    // A remote query is a list too.
    let id = spindel(&["id", "--data-dir", s(&dir)])
        .ok()
        .stdout
        .trim()
        .to_string();
    let from = node.peer(&id);
    let answer = spindel(&[
        "query",
        "--from",
        &from,
        "--data-dir",
        s(&dir),
        "--kind",
        "researcher",
        "--json",
    ])
    .json();
    let text = answer.to_string();
    assert!(text.contains("Eva Exempelsson"), "{text}");
    assert!(!text.contains("eva@example.org"), "{text}");
}
