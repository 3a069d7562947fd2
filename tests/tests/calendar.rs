//! Meeting places (the `event` kind) through real processes: published in one region, on the
//! calendar and in the iCalendar feeds of another region and of the aggregator; a new version
//! raises SEQUENCE under the same UID; a deletion leaves every page, feed and date query; the
//! date filters of `spindel query` and the API; the feed's cap. The feeds are read with the
//! `ical` crate, a parser independent of the `icalendar` crate that writes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use spindel_tests::{
    NodeProc, eventually, http_get, import_file, init, init_network, publish, publish_version, s,
    spindel,
};

/// One VEVENT as the independent parser reads it: property name to value.
type VEvent = BTreeMap<String, String>;

/// Parses an iCalendar feed strictly (one calendar, every line a property it can read).
fn parse_feed(text: &str) -> Vec<VEvent> {
    let mut calendars = ical::IcalParser::new(std::io::BufReader::new(text.as_bytes()));
    let cal = calendars
        .next()
        .expect("one calendar")
        .unwrap_or_else(|e| panic!("the feed does not parse: {e}\n{text}"));
    assert!(calendars.next().is_none(), "one calendar only");
    let version = cal.properties.iter().find(|p| p.name == "VERSION");
    assert_eq!(version.and_then(|p| p.value.as_deref()), Some("2.0"));
    for line in text.split("\r\n") {
        assert!(line.len() <= 75, "a line over 75 octets: {line:?}");
    }
    cal.events
        .into_iter()
        .map(|e| {
            e.properties
                .into_iter()
                .map(|p| (p.name, p.value.unwrap_or_default()))
                .collect()
        })
        .collect()
}

fn feed(http: std::net::SocketAddr, path: &str) -> Vec<VEvent> {
    let (status, _, body) = spindel_tests::http_request(http, "GET", path, None);
    assert_eq!(status, 200, "{path}: {body}");
    parse_feed(&body)
}

fn feed_type(http: std::net::SocketAddr, path: &str) -> String {
    let (_, head, _) = spindel_tests::http_request(http, "GET", path, None);
    spindel_tests::header(&head, "content-type")
        .unwrap_or_default()
        .to_string()
}

fn with_uid<'a>(events: &'a [VEvent], uid: &str) -> Option<&'a VEvent> {
    events
        .iter()
        .find(|e| e.get("UID").map(String::as_str) == Some(uid))
}

const EVENT: &str = r#"{"title":"Regional träff om Överenskommelsen","start":"2099-03-12T09:00:00+01:00","end":"2099-03-12T16:00:00+01:00","place":"Folkets hus, Storgatan 1, Lund","organiser":"Coompanion Skåne","registration_url":"https://exempel.se/anmalan","description":"Program, fika; och samtal om\növerenskommelsen","tags":["Överenskommelsen"]}"#;

#[test]
fn an_event_reaches_every_calendar_and_feed_and_leaves_them_when_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(sk_dir, sk_id), (dal_dir, _)]) =
        init_network(tmp.path(), ["skane", "dalarna"]);
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let sk = NodeProc::start(&sk_dir, &["--aggregator", &peer, "--http", "127.0.0.1:0"]);
    let dal = NodeProc::start(
        &dal_dir,
        &[
            "--aggregator",
            &peer,
            "--http",
            "127.0.0.1:0",
            "--public-url",
            "https://dalarna.exempel.se/",
        ],
    );
    let (agg_http, sk_http, dal_http) = (agg.http.unwrap(), sk.http.unwrap(), dal.http.unwrap());

    let v = publish(&sk_dir, "event", EVENT);
    let rid = v["record_id"].as_str().unwrap().to_string();
    let uid = format!("{rid}.{sk_id}@spindel");
    // A past event: in the archive, not among the upcoming, and too old for the feeds.
    let old = publish(
        &sk_dir,
        "event",
        r#"{"title":"Konferensen 2001","start":"2001-05-02T09:00:00Z","online_url":"https://exempel.se/2001"}"#,
    );
    let old_rid = old["record_id"].as_str().unwrap().to_string();

    for (http, who) in [
        (dal_http, "dalarna"),
        (agg_http, "the aggregator"),
        (sk_http, "skane"),
    ] {
        eventually(30, &format!("the event on {who}'s calendar"), || {
            http_get(http, "/kalender")
                .1
                .contains("Regional träff om Överenskommelsen")
        });
        let (_, page) = http_get(http, "/kalender");
        assert!(
            page.contains("torsdag 12 mars 2099 kl. 09:00–16:00"),
            "{page}"
        );
        assert!(
            page.contains("href=\"&#x2f;kalender.ics\""),
            "the page links its feed"
        );
        assert!(!page.contains("Konferensen 2001"));
        eventually(30, &format!("the past event on {who}"), || {
            http_get(http, "/kalender/tidigare")
                .1
                .contains("Konferensen 2001")
        });
        assert_eq!(
            feed_type(http, "/kalender.ics"),
            "text/calendar; charset=utf-8"
        );
        for path in ["/kalender.ics", "/region/skane/kalender.ics"] {
            let events = feed(http, path);
            let e = with_uid(&events, &uid).unwrap_or_else(|| panic!("{who} {path}: {events:?}"));
            assert_eq!(e["SUMMARY"], "Regional träff om Överenskommelsen");
            assert_eq!(e["SEQUENCE"], "0");
            assert_eq!(e["DTSTART"], "20990312T080000Z");
            assert_eq!(e["DTEND"], "20990312T150000Z");
            assert!(e.contains_key("DTSTAMP"));
            // The parser leaves RFC 5545's escapes in the value.
            assert_eq!(e["LOCATION"], "Folkets hus\\, Storgatan 1\\, Lund");
            assert!(
                e["DESCRIPTION"].contains("Program\\, fika\\; och samtal om\\növerenskommelsen"),
                "{e:?}"
            );
            assert!(e["DESCRIPTION"].contains("https://exempel.se/anmalan"));
            assert!(!events.iter().any(|e| e["SUMMARY"].contains("2001")));
        }
        // The tag and region filters.
        assert!(
            http_get(http, "/kalender?tag=%C3%B6verenskommelsen")
                .1
                .contains("Regional träff")
        );
        assert!(
            !http_get(http, "/kalender?tag=annat")
                .1
                .contains("Regional träff")
        );
        assert!(
            !http_get(http, "/kalender?region=dalarna")
                .1
                .contains("Regional träff")
        );
        assert!(
            http_get(http, "/kalender?region=skane")
                .1
                .contains("Regional träff")
        );
    }
    // The start page links the calendar.
    assert!(http_get(dal_http, "/").1.contains("<a href=\"/kalender\""));
    // The event's page in Swedish time, with its place and registration.
    let (status, page) = http_get(dal_http, &format!("/post/{sk_id}/{rid}"));
    assert_eq!(status, 200);
    for said in [
        "torsdag 12 mars 2099 kl. 09:00–16:00",
        "Folkets hus",
        "exempel.se&#x2f;anmalan",
        "Coompanion Skåne",
    ] {
        assert!(page.contains(said), "{said}");
    }
    // Only a node that knows its public address links the event's page from the feed.
    let dal_feed = feed(dal_http, "/kalender.ics");
    assert_eq!(
        with_uid(&dal_feed, &uid).unwrap()["URL"],
        format!("https://dalarna.exempel.se/post/{sk_id}/{rid}")
    );
    assert!(
        !with_uid(&feed(agg_http, "/kalender.ics"), &uid)
            .unwrap()
            .contains_key("URL")
    );
    assert_eq!(http_get(dal_http, "/region/okand/kalender.ics").0, 404);
    assert_eq!(http_get(dal_http, "/kalender?sida=0").0, 400);
    assert_eq!(http_get(dal_http, "/kalender?sida=1001").0, 400);
    assert_eq!(http_get(dal_http, "/kalender?fran=1").0, 400);

    // The date filters, through the running node's control socket and the API.
    let days = |dir: &Path, from: &str, to: &str| -> Vec<String> {
        let v = spindel(&[
            "query",
            "--data-dir",
            s(dir),
            "--from-date",
            from,
            "--to-date",
            to,
            "--json",
        ])
        .json();
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["record_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(days(&dal_dir, "2099-03-12", "2099-03-12"), [rid.as_str()]);
    assert!(days(&dal_dir, "2099-03-13", "2099-12-31").is_empty());
    assert_eq!(
        days(&dal_dir, "2001-05-02", "2001-05-02"),
        [old_rid.as_str()]
    );
    spindel(&["query", "--data-dir", s(&dal_dir), "--from-date", "12 mars"])
        .fails(1, "--from-date must be a date YYYY-MM-DD");
    spindel(&[
        "query",
        "--data-dir",
        s(&dal_dir),
        "--to-date",
        "2099-02-30",
    ])
    .fails(1, "--to-date must be a date");
    spindel(&[
        "query",
        "--data-dir",
        s(&dal_dir),
        "--from-date",
        "2099-03-13",
        "--to-date",
        "2099-03-12",
    ])
    .fails(1, "--to-date must not be before --from-date");
    let (status, body) = http_get(
        dal_http,
        "/api/v1/records?from_date=2099-03-01&to_date=2099-03-31",
    );
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["records"][0]["record_id"], rid.as_str());
    assert_eq!(v["records"].as_array().unwrap().len(), 1);
    let (status, body) = http_get(dal_http, "/api/v1/records?from_date=mars");
    assert_eq!(status, 400);
    assert!(
        body.contains("from_date must be a date YYYY-MM-DD"),
        "{body}"
    );

    // A new version: the same UID, SEQUENCE 1, the new title.
    publish_version(
        &sk_dir,
        "event",
        &rid,
        &EVENT.replace("Regional träff", "Flyttad träff"),
    )
    .ok();
    for http in [dal_http, agg_http] {
        eventually(30, "the new version in the feed", || {
            with_uid(&feed(http, "/kalender.ics"), &uid).is_some_and(|e| e["SEQUENCE"] == "1")
        });
        let events = feed(http, "/region/skane/kalender.ics");
        let e = with_uid(&events, &uid).unwrap();
        assert_eq!(e["SUMMARY"], "Flyttad träff om Överenskommelsen");
        assert_eq!(events.iter().filter(|e| e["UID"] == uid).count(), 1);
    }

    // Deletion: gone from every calendar, feed and date query.
    spindel(&["delete", "--data-dir", s(&sk_dir), &rid, "--json"]).ok();
    for http in [dal_http, agg_http, sk_http] {
        eventually(30, "the deleted event gone from the feed", || {
            with_uid(&feed(http, "/kalender.ics"), &uid).is_none()
        });
        assert!(with_uid(&feed(http, "/region/skane/kalender.ics"), &uid).is_none());
        assert!(!http_get(http, "/kalender").1.contains("Flyttad träff"));
        let ics = spindel_tests::http_request(http, "GET", "/kalender.ics", None).2;
        assert!(
            !ics.contains("Flyttad") && !ics.contains(&rid),
            "nothing of it is left"
        );
    }
    assert!(days(&dal_dir, "2099-03-12", "2099-03-12").is_empty());
    drop((agg, sk, dal));
}

/// An RFC 3339 time `days` from now (negative: ago), in UTC.
fn days_from_now(days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let ms = now + days * 86_400_000;
    let t = spindel_protocol::time::rfc3339_ms(ms as u64);
    format!("{}Z", &t[..19])
}

#[test]
fn a_feed_holds_at_most_its_cap_and_the_recent_past() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init(tmp.path(), "skane", "region");
    let cap = spindel_node::FEED_EVENTS_MAX;
    let mut lines = String::new();
    for i in 0..=cap {
        let start = days_from_now(10 + (i as i64 % 300));
        lines.push_str(&format!(
            "{{\"title\":\"Träff {i}\",\"start\":\"{start}\",\"place\":\"Lund\"}}\n"
        ));
    }
    let recent = days_from_now(-10);
    let long_ago = days_from_now(-(spindel_node::FEED_PAST_DAYS + 10));
    lines.push_str(&format!(
        "{{\"title\":\"Nyss\",\"start\":\"{recent}\",\"place\":\"Lund\"}}\n"
    ));
    lines.push_str(&format!(
        "{{\"title\":\"Länge sedan\",\"start\":\"{long_ago}\",\"place\":\"Lund\"}}\n"
    ));
    let file = tmp.path().join("events.jsonl");
    std::fs::write(&file, lines).unwrap();
    import_file(&dir, "event", &file).ok();
    let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0"]);
    let http = node.http.unwrap();
    let events = feed(http, "/kalender.ics");
    assert_eq!(events.len(), cap, "the feed is capped");
    // Upcoming events come first, so the recent past is what the cap leaves out.
    assert!(!events.iter().any(|e| e["SUMMARY"] == "Nyss"));
    assert!(!events.iter().any(|e| e["SUMMARY"] == "Länge sedan"));
    let (_, page) = http_get(http, "/kalender");
    assert!(
        page.contains(&format!("{} mötesplatser", cap + 1)),
        "every upcoming one is listed"
    );
    let last = (cap + 1).div_ceil(20);
    let (status, page) = http_get(http, &format!("/kalender?sida={last}"));
    assert_eq!(status, 200);
    assert_eq!(
        page.matches("class=\"record\"").count(),
        (cap + 1) - (last - 1) * 20
    );
    assert!(page.contains("rel=\"prev\"") && !page.contains("rel=\"next\""));
    // Under the cap, the recent past is in and the long past is not.
    spindel(&["query", "--data-dir", s(&dir), "--json"]).ok();
    drop(node);
    let tmp2 = tempfile::tempdir().unwrap();
    let (dir2, _) = init(tmp2.path(), "dalarna", "region");
    let few = format!(
        "{{\"title\":\"Snart\",\"start\":\"{}\",\"place\":\"Falun\"}}\n{{\"title\":\"Nyss\",\"start\":\"{recent}\",\"place\":\"Falun\"}}\n{{\"title\":\"Länge sedan\",\"start\":\"{long_ago}\",\"place\":\"Falun\"}}\n",
        days_from_now(3)
    );
    std::fs::write(&file, few).unwrap();
    import_file(&dir2, "event", &file).ok();
    let node = NodeProc::start(&dir2, &["--http", "127.0.0.1:0"]);
    let titles: Vec<String> = feed(node.http.unwrap(), "/kalender.ics")
        .into_iter()
        .map(|e| e["SUMMARY"].clone())
        .collect();
    assert_eq!(titles, ["Snart", "Nyss"]);
}

const PASSWORD: &str = "ett långt lösenord för test";

/// Redaktionen's form for a meeting place: Swedish wall-clock times, every error beside its
/// field at once, the hour that does not exist in spring, preview, publish, edit.
#[test]
fn a_coordinator_publishes_and_edits_a_meeting_place_in_swedish_time() {
    use spindel_tests::{
        editor_network, editor_session, hidden_field, http_exchange, http_form, location,
    };
    let tmp = tempfile::tempdir().unwrap();
    let net = editor_network(tmp.path(), "anna", "redaktor", PASSWORD);
    let (admin, http) = (net.region.admin.unwrap(), net.region.http.unwrap());
    let (sc, csrf) = editor_session(admin, "anna", PASSWORD);
    let cookie = [("Cookie", sc.as_str())];

    let (status, _, body) = http_exchange(admin, "GET", "/ny/event", &cookie, None);
    assert_eq!(status, 200);
    for (id, label) in [
        ("title", "Titel"),
        ("start", "Start"),
        ("end", "Slut"),
        ("place", "Plats"),
        ("online_url", "Delta på nätet"),
        ("registration_url", "Anmälan"),
    ] {
        assert!(
            body.contains(&format!("<label for=\"{id}\">{label}")),
            "{id}: {body}"
        );
    }
    assert!(body.contains("type=\"datetime-local\""), "{body}");
    let (_, _, start_page) = http_exchange(admin, "GET", "/", &cookie, None);
    assert!(
        start_page.contains("href=\"/ny/event\""),
        "the editor's start page offers it"
    );

    // Every problem at once, in page order, what was typed kept.
    let (status, _, body) = http_form(
        admin,
        "/ny/event",
        &cookie,
        &[
            ("title", "Träff i Lund"),
            ("start", "2099-03-12T09:00"),
            ("end", "2099-03-12T08:00"),
            ("registration_url", "anmälan hos Anna"),
            ("csrf", &csrf),
            ("action", "preview"),
        ],
    );
    assert_eq!(status, 400);
    let at = |needle: &str| {
        body.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {body}"))
    };
    assert!(
        at("id=\"end-fel\">Slutet kan inte vara före starten.")
            < at("id=\"place-fel\">Ange en plats")
    );
    assert!(
        at("id=\"place-fel\"") < at("id=\"registration_url-fel\">Ange en fullständig webbadress")
    );
    assert!(body.contains("value=\"anmälan hos Anna\""), "{body}");
    // 02:30 on the last Sunday of March does not exist in Sweden.
    let (status, _, body) = http_form(
        admin,
        "/ny/event",
        &cookie,
        &[
            ("title", "Natt"),
            ("start", "2099-03-29T02:30"),
            ("place", "Lund"),
            ("csrf", &csrf),
            ("action", "preview"),
        ],
    );
    assert_eq!(status, 400);
    assert!(
        body.contains("id=\"start-fel\">Den tiden finns inte"),
        "{body}"
    );

    // Preview with the public layout, then publish: stored with the offset of that moment.
    let fields = [
        ("title", "Träff i Lund"),
        ("start", "2099-06-12T09:00"),
        ("end", "2099-06-12T12:30"),
        ("place", "Folkets hus, Lund"),
        ("csrf", csrf.as_str()),
    ];
    let mut preview = fields.to_vec();
    preview.push(("action", "preview"));
    let (status, _, body) = http_form(admin, "/ny/event", &cookie, &preview);
    assert_eq!(status, 200);
    assert!(
        body.contains("fredag 12 juni 2099 kl. 09:00–12:30"),
        "{body}"
    );
    let mut publish = fields.to_vec();
    publish.push(("action", "publish"));
    let (status, head, _) = http_form(admin, "/ny/event", &cookie, &publish);
    assert_eq!(status, 303, "{head}");
    let page = location(&head);
    let rid = page["/post/".len()..page.find('?').unwrap()].to_string();
    let (_, body) = http_get(http, "/api/v1/records?kind=event");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["records"][0]["data"]["start"],
        "2099-06-12T09:00:00+02:00"
    );
    assert_eq!(v["records"][0]["data"]["end"], "2099-06-12T12:30:00+02:00");

    // Edit: the form shows Swedish time again; the new version is on the calendar.
    let (_, _, body) = http_exchange(admin, "GET", &format!("/post/{rid}/andra"), &cookie, None);
    assert!(body.contains("value=\"2099-06-12T09:00\""), "{body}");
    let version = hidden_field(&body, "version").unwrap();
    let edit = [
        ("title", "Träff i Lund, ny tid"),
        ("start", "2099-12-12T10:00"),
        ("place", "Folkets hus, Lund"),
        ("version", version.as_str()),
        ("csrf", csrf.as_str()),
        ("action", "publish"),
    ];
    let (status, head, _) = http_form(admin, &format!("/post/{rid}/andra"), &cookie, &edit);
    assert_eq!(status, 303, "{head}");
    let (_, page) = http_get(http, "/kalender");
    assert!(
        page.contains("lördag 12 december 2099 kl. 10:00") && page.contains("ny tid"),
        "{page}"
    );
    let events = feed(http, "/kalender.ics");
    assert_eq!(events[0]["SEQUENCE"], "1");
    assert_eq!(events[0]["DTSTART"], "20991212T090000Z");
}
