//! The knowledge bank page of a running node (`spindel run --http`): every page route and bad
//! parameter, through a real process and real TCP; what a person can read, and what must never
//! be there (script injection, a deleted researcher's details).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use spindel_tests::{
    NodeProc, http_get, http_request, import_file, init_region_as, s, spindel, spindel_stdin,
};

fn publish(dir: &std::path::Path, kind: &str, json: serde_json::Value) -> String {
    spindel_tests::publish(dir, kind, &json.to_string())["record_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn publish_version(dir: &std::path::Path, id: &str, kind: &str, json: serde_json::Value) {
    spindel_stdin(
        &[
            "publish",
            "--data-dir",
            s(dir),
            "--kind",
            kind,
            "--id",
            id,
            "--file",
            "-",
        ],
        &json.to_string(),
    )
    .ok();
}

/// The hrefs of `<a>` elements whose attribute text starts with `prefix`.
fn hrefs(html: &str, prefix: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|h| h.starts_with(prefix))
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

fn page(http: SocketAddr, path: &str) -> String {
    let (code, head, body) = http_request(http, "GET", path, None);
    assert_eq!(code, 200, "{path}: {body}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(
        body.starts_with("<!doctype html>\n<html lang=\"sv\">"),
        "{body}"
    );
    // minijinja escapes `/` in text and attributes as `&#x2f;`; a browser reads it as `/`.
    body.replace("&#x2f;", "/")
}

fn refused(http: SocketAddr, path: &str, code: u16, says: &str) {
    let (got, head, body) = http_request(http, "GET", path, None);
    assert_eq!(got, code, "{path}: {body}");
    assert!(head.contains("text/html"), "{path}: {head}");
    assert!(body.contains(says), "{path}: {says:?} not in {body}");
}

#[test]
fn every_page_and_bad_parameter() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("skane");
    let author = init_region_as(&dir, "skane", "Nätverket Social Ekonomi Skåne");
    // 24 methods (more than one page of 20), imported in one go.
    let lines: Vec<String> = (0..24)
        .map(|i| {
            serde_json::json!({"title": format!("Studiecirkel {i:02}"), "summary": "Lärande i grupp", "tags": ["folkbildning"]})
                .to_string()
        })
        .collect();
    let jsonl = tmp.path().join("methods.jsonl");
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    import_file(&dir, "method", &jsonl).ok();
    let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0"]);
    let http = node.http.expect("http address printed");
    // The profile made by init, edited to carry a description, members and a website.
    let profile = spindel(&[
        "query",
        "--data-dir",
        s(&dir),
        "--kind",
        "profile",
        "--json",
    ])
    .json()["records"][0]["record_id"]
        .as_str()
        .unwrap()
        .to_string();
    publish_version(
        &dir,
        &profile,
        "profile",
        serde_json::json!({"display_name": "Nätverket Social Ekonomi Skåne",
            "description": "Nätverk för idéburna organisationer i Skåne.",
            "members": ["Coompanion Skåne", "Famna"], "website": "https://example.org/skane"}),
    );
    let integration = publish(
        &dir,
        "innovation",
        serde_json::json!({"title": "Integration i förening", "summary": "Nyanlända möter föreningslivet.",
            "description": "Första stycket.\n\nAndra stycket.", "tags": ["integration", "Föreningsliv"],
            "organisations": ["Partnerskap Skåne"], "links": ["https://example.org/integration"],
            "contact": "Kansliet", "sroi": {"ratio": 3.2, "year": 2011, "report_url": "https://example.org/sroi.pdf"}}),
    );
    for (title, ratio) in [
        ("Arbetsintegrerande café", 2.0),
        ("Kooperativ förskola", 5.5),
    ] {
        publish(
            &dir,
            "innovation",
            serde_json::json!({"title": title, "summary": "Ett socialt företag.", "sroi": {"ratio": ratio}}),
        );
    }
    let hostile = publish(
        &dir,
        "method",
        serde_json::json!({"title": "<script>alert(1)</script> Metod", "summary": "\"><img src=x onerror=alert(1)>"}),
    );
    let researcher = publish(
        &dir,
        "researcher",
        serde_json::json!({"name": "Eva Exempelsson", "affiliation": "Lunds universitet",
            "fields": ["social ekonomi"], "email": "eva@example.org", "phone": "+46 46 123 45", "consent": {"given": true, "date": "2026-03-12", "method": "e-post"}}),
    );

    // The start page: search box with a label, facet counts, newest first.
    let home = page(http, "/");
    assert!(home.contains("<label for=\"q\">Sökord</label>"), "{home}");
    assert!(home.contains("<label for=\"kind\">Typ</label>"));
    assert!(home.contains("30 träffar"), "{home}");
    assert!(home.contains("Metoder (25)"), "{home}");
    assert!(home.contains("Sociala innovationer (3)"), "{home}");
    assert!(
        home.contains("Nätverket Social Ekonomi Skåne – skane (30)"),
        "{home}"
    );
    assert!(home.contains("folkbildning (24)"), "{home}");
    assert_eq!(
        home.matches("<li class=\"record\">").count(),
        20,
        "a page of 20"
    );
    let first = home.find("Eva Exempelsson").unwrap();
    assert!(
        first < home.find("Integration i förening").unwrap(),
        "newest first"
    );
    // The 24 imported methods share one timestamp: the last 14 fill the first page.
    assert_eq!(home.matches("Studiecirkel ").count(), 14);
    // Injection is escaped, never executed.
    assert!(!home.contains("<script>alert"), "script injected");
    assert!(home.contains("&lt;script&gt;alert(1)"), "{home}");
    assert!(!home.contains("<img src=x"));

    // Paging: the next link carries the cursor; the pages together hold everything once.
    let next = hrefs(&home, "/?cursor=");
    assert_eq!(next.len(), 1, "{next:?}");
    let second = page(http, &next[0]);
    assert_eq!(second.matches("<li class=\"record\">").count(), 10);
    assert!(second.contains("← Första sidan"));
    assert!(hrefs(&second, "/?cursor=").is_empty(), "last page");
    for i in 0..24 {
        let t = format!("Studiecirkel {i:02}");
        assert_eq!(
            home.matches(&t).count() + second.matches(&t).count(),
            1,
            "{t} exactly once"
        );
    }

    // Search by an inflected Swedish word, filters, and their combination.
    let found = page(http, "/?q=f%C3%B6reningarna");
    assert!(found.contains("1 träff för ”föreningarna”"), "{found}");
    assert!(found.contains("Integration i förening"));
    let methods = page(http, "/?kind=method&tag=folkbildning");
    assert!(methods.contains("24 träffar"), "{methods}");
    assert!(methods.contains("Avgränsat till:"));
    let tag = page(http, "/?tag=f%C3%B6reningsliv");
    assert!(tag.contains("1 träff"), "{tag}");
    let none = page(http, "/?region=dalarna");
    assert!(none.contains("0 träffar") && none.contains("Inga poster matchar"));
    // A chosen value stays selected in the form, so "Sök" sends it again.
    assert!(
        none.contains("<option value=\"dalarna\" selected>dalarna (0)</option>"),
        "{none}"
    );
    let mixed = page(http, "/?tag=F%C3%B6reningsliv");
    assert!(
        mixed.contains("<option value=\"föreningsliv\" selected>föreningsliv (1)</option>"),
        "{mixed}"
    );
    let facet_links = hrefs(&home, "/?kind=");
    assert!(
        facet_links.contains(&"/?kind=innovation".to_string()),
        "{facet_links:?}"
    );
    let empty = page(http, "/?q=&kind=&region=&tag=");
    assert!(empty.contains("30 träffar"), "empty fields are no filter");

    // Bad parameters: a Swedish page with status 400.
    refused(http, "/?kind=bok", 400, "Okänd posttyp ”bok”");
    refused(http, "/?page=2", 400, "Okänd parameter ”page”");
    refused(http, "/?q=a&q=b", 400, "står flera gånger");
    refused(http, "/?cursor=zz", 400, "Sidmarkören är ogiltig");
    refused(
        http,
        &format!("/?q={}", "a".repeat(501)),
        400,
        "längre än 500 tecken",
    );

    // A record page with every field.
    let rec = page(http, &format!("/post/{author}/{integration}"));
    for seen in [
        "<h1>Integration i förening</h1>",
        "Nyanlända möter föreningslivet.",
        "<p>Första stycket.</p><p>Andra stycket.</p>",
        "Partnerskap Skåne",
        "href=\"https://example.org/integration\"",
        "Kansliet",
        "1 : 3,2</span> (2011)",
        "href=\"https://example.org/sroi.pdf\"",
        "href=\"/?tag=f%C3%B6reningsliv\"",
        &format!("href=\"/region/{author}\""),
        &format!("/api/v1/records/{author}/{integration}"),
    ] {
        assert!(rec.contains(seen), "{seen:?} not on the record page: {rec}");
    }
    let person = page(http, &format!("/post/{author}/{researcher}"));
    for seen in [
        "Eva Exempelsson",
        "Lunds universitet",
        "href=\"mailto:eva@example.org\"",
        "href=\"tel:+464612345\"",
        "2026-03-12, e-post: att listas i kunskapsbanken.",
        "href=\"/integritet#rattelse\"",
    ] {
        assert!(person.contains(seen), "{seen:?}: {person}");
    }
    let hostile_page = page(http, &format!("/post/{author}/{hostile}"));
    assert!(!hostile_page.contains("<script>alert"));
    refused(
        http,
        "/post/nyckel/id",
        400,
        "Adressen till posten är felaktig",
    );
    refused(
        http,
        &format!("/post/{author}/zz"),
        400,
        "Adressen till posten är felaktig",
    );
    refused(
        http,
        &format!("/post/{author}/{}", "0".repeat(32)),
        404,
        "Posten finns inte här",
    );

    // The region page, by NodeId and by name.
    for key in [author.as_str(), "skane"] {
        let region = page(http, &format!("/region/{key}"));
        for seen in [
            "<h1>Nätverket Social Ekonomi Skåne – skane</h1>",
            "Nätverk för idéburna organisationer i Skåne.",
            "Coompanion Skåne",
            "Famna",
            "Senast synkad hit",
            "30: 3 sociala innovationer, 25 metoder, 1 forskarkontakt, 0 mötesplatser, 0 indikatorer, 0 erfarenheter, 1 profil",
            "href=\"/?region=skane\"",
        ] {
            assert!(region.contains(seen), "{seen:?}: {region}");
        }
    }
    refused(http, "/region/dalarna", 404, "Ingen region");
    refused(
        http,
        &format!("/region/{}", "ab".repeat(32)),
        404,
        "Ingen region",
    );

    // The national overview: counts per region and kind, latest additions, SROI statistics.
    let overview = page(http, "/oversikt");
    for seen in [
        "30 poster (profilerna medräknade) från 1 regionala plattformar",
        "3 beräkningar",
        "Median <strong>1 : 3,2</strong>, spridning 1 : 2 till 1 : 5,5",
        &format!("href=\"/post/{author}/{integration}\""),
        "Eva Exempelsson",
    ] {
        assert!(overview.contains(seen), "{seen:?}: {overview}");
    }
    // The SROI table is highest first.
    let (a, b, c) = (
        overview.find("1 : 5,5</td>").unwrap(),
        overview.find("1 : 3,2</td>").unwrap(),
        overview.find("1 : 2</td>").unwrap(),
    );
    assert!(a < b && b < c);
    // Past SROI_FIGURES_SHOWN figures the table lists the highest; count, median and range
    // still cover every figure.
    let many = dir.join("sroi.jsonl");
    let lines: Vec<String> = (0..spindel_node::SROI_FIGURES_SHOWN)
        .map(|i| {
            serde_json::json!({"title": format!("Mätt innovation {i}"), "summary": "s", "sroi": {"ratio": 10.0 + i as f64}})
                .to_string()
        })
        .collect();
    std::fs::write(&many, lines.join("\n")).unwrap();
    import_file(&dir, "innovation", &many).ok();
    let overview = page(http, "/oversikt");
    let shown = spindel_node::SROI_FIGURES_SHOWN;
    for seen in [
        format!("{} beräkningar", shown + 3),
        format!("(de {shown} högsta av {})", shown + 3),
        "spridning 1 : 2 till 1 : 59".to_string(),
        "Mätt innovation 0<".to_string(),
    ] {
        assert!(overview.contains(&seen), "{seen:?}: {overview}");
    }
    assert!(
        !overview.contains("1 : 2</td>"),
        "the lowest figure is past the shown ones"
    );

    // The audit's page, linked from every page: a region alone has no checkpoint, no findings.
    let audit = page(http, "/granskning");
    for seen in [
        "<h1>Granskning</h1>",
        "har inte tagit emot någon kontrollpunkt ännu",
        "Inga fynd",
    ] {
        assert!(audit.contains(seen), "{seen:?}: {audit}");
    }
    assert!(home.contains("href=\"/granskning\""), "{home}");
    refused(http, "/granskning?q=x", 400, "Sidan tar inga parametrar");

    // The style sheet, unknown pages, writes.
    let (code, head, css) = http_request(http, "GET", "/assets/spindel.css", None);
    assert_eq!(code, 200);
    assert!(head.contains("content-type: text/css"), "{head}");
    assert!(css.contains("@media"));
    refused(http, "/finns-inte", 404, "Sidan finns inte");
    let (code, _, body) = http_request(http, "GET", "/api/v1/finns-inte", None);
    assert_eq!(
        (code, body.as_str()),
        (404, "{\"error\":\"no such route\"}")
    );
    let (code, _, _) = http_request(http, "POST", "/", Some("{}"));
    assert_eq!(code, 405);

    // After a deletion nothing personal remains: not the page, the search, the region, the
    // overview, nor the facets.
    for path in [
        "/?q=universitet",
        "/?tag=social+ekonomi",
        "/?kind=researcher",
    ] {
        assert!(
            page(http, path).contains("Eva Exempelsson"),
            "{path} before the deletion"
        );
    }
    spindel(&["delete", "--data-dir", s(&dir), &researcher]).ok();
    refused(
        http,
        &format!("/post/{author}/{researcher}"),
        404,
        "Posten finns inte här",
    );
    for path in [
        "/".to_string(),
        // Words from the deleted record (not its name: a search echoes its own words).
        "/?q=universitet".to_string(),
        "/?tag=social+ekonomi".to_string(),
        "/?kind=researcher".to_string(),
        "/oversikt".to_string(),
        format!("/region/{author}"),
    ] {
        let body = page(http, &path);
        for personal in [
            "Eva",
            "Exempelsson",
            "eva@example.org",
            "123 45",
            "Lunds universitet",
        ] {
            assert!(!body.contains(personal), "{personal:?} still on {path}");
        }
    }
    let (_, body) = http_get(http, "/?kind=researcher");
    assert!(body.contains("0 träffar"), "{body}");
}

/// An address may hold `?`, `&`, `=` and `%` (a valid addr-spec): the page percent-encodes it
/// in the `mailto:` link, so following the link never adds a hidden Bcc or any other header.
#[test]
fn a_mailto_link_carries_the_address_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, author) = spindel_tests::init(tmp.path(), "skane", "region");
    let tricky = "a?bcc=spy%40evil.se&x=@lu.se";
    let researcher = publish(
        &dir,
        "researcher",
        serde_json::json!({"name": "Eva Exempelsson", "affiliation": "Lunds universitet",
            "fields": ["social ekonomi"], "email": tricky, "phone": "+46 (46) 123-45", "consent": {"given": true, "date": "2026-03-12", "method": "e-post"}}),
    );
    let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0"]);
    let person = page(node.http.unwrap(), &format!("/post/{author}/{researcher}"));
    assert!(
        person.contains("href=\"mailto:a%3Fbcc%3Dspy%2540evil.se%26x%3D@lu.se\""),
        "{person}"
    );
    assert!(!person.contains("mailto:a?"), "{person}");
    assert!(person.contains("href=\"tel:+464612345\""), "{person}");
    // What the record says is still shown as it is.
    assert!(
        person.contains(">a?bcc=spy%40evil.se&amp;x=@lu.se<"),
        "{person}"
    );
    // And an address outside the addr-spec is refused at publish.
    let bad = spindel_tests::publish_run(
        &dir,
        "researcher",
        &serde_json::json!({"name": "X", "affiliation": "Y", "fields": ["z"],
            "email": "a..b@lu.se", "consent": {"given": true, "date": "2026-03-12", "method": "e-post"}})
        .to_string(),
    );
    bad.fails(1, "email");
}

/// A researcher record published in the first format (a bare `consent: true`, as signed before
/// the consent object existed), in this node's own log.
fn old_format_researcher(dir: &std::path::Path, name: &str) -> String {
    use spindel_node::store::{ApplyOptions, Incoming};
    use spindel_protocol::entry::{Entry, Payload, RecordId, next_header};
    // Written as a node of the first format did: straight into the store of a stopped node.
    let key = spindel_node::local::node_key(dir).unwrap();
    let store = spindel_node::store::Store::open(dir).unwrap();
    let me = key.node_id();
    let body = serde_json::json!({"name": name, "affiliation": "Umeå universitet",
        "fields": ["social ekonomi"], "consent": true})
    .to_string();
    let payload = spindel_protocol::codec::encode(&Payload {
        salt: [7; 16],
        body,
    });
    let rid = RecordId([0x5a; 16]);
    let now = spindel_node::local::now_ms();
    let head = store.head(&me).unwrap();
    let h = next_header(
        me,
        head,
        now,
        spindel_protocol::Kind::Researcher,
        rid,
        Some(&payload),
    );
    let outcomes = store
        .apply(
            vec![Incoming {
                entry: Entry::sign(&key, h),
                payload: Some(payload),
            }],
            ApplyOptions {
                expected_author: Some(me),
                now_ms: now,
                all_or_nothing: true,
            },
        )
        .unwrap();
    assert_eq!(outcomes, [spindel_node::store::Outcome::Accepted]);
    rid.to_hex()
}

/// Consent that can be shown: a new researcher record needs the consent object (the bare
/// `consent: true` is refused on publish), a record of the first format stays readable and
/// says "samtycke utan detaljer", and `/integritet` says what is stored, who answers for which
/// records with the contact from each region's profile, and how to have a record corrected or
/// removed. Every page links to it.
#[test]
fn consent_is_shown_and_the_privacy_page_names_who_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, author) = spindel_tests::init(tmp.path(), "skane", "region");
    spindel_tests::publish_run(
        &dir,
        "researcher",
        &serde_json::json!({"name": "Ny", "affiliation": "Y", "fields": ["z"], "consent": true})
            .to_string(),
    )
    .fails(1, "consent as an object");
    spindel_stdin(
        &["publish", "--data-dir", s(&dir), "--kind", "profile", "--file", "-"],
        r#"{"display_name":"Nätverket Social Ekonomi Skåne","website":"https://example.org/skane"}"#,
    )
    .ok();
    let new = publish(
        &dir,
        "researcher",
        serde_json::json!({"name": "Eva Exempelsson", "affiliation": "Lunds universitet",
            "fields": ["social ekonomi"], "consent": {"given": true, "date": "2025-11-03",
            "method": "möte", "scope": "att listas och kontaktas om samarbeten"}}),
    );
    let old = old_format_researcher(&dir, "Olle Äldre");
    let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0"]);
    let http = node.http.unwrap();

    let person = page(http, &format!("/post/{author}/{new}"));
    assert!(
        person.contains("2025-11-03, möte: att listas och kontaktas om samarbeten."),
        "{person}"
    );
    assert!(
        person.contains("Insamlat av Nätverket Social Ekonomi Skåne – skane"),
        "{person}"
    );
    let older = page(http, &format!("/post/{author}/{old}"));
    assert!(older.contains("Olle Äldre"), "{older}");
    assert!(older.contains("Samtycke utan detaljer"), "{older}");
    // The API shows both forms as they were signed.
    let (_, json) = http_get(http, &format!("/api/v1/records/{author}/{old}"));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["data"]["consent"], true);

    let privacy = page(http, "/integritet");
    for seen in [
        "<h1>Integritet och personuppgifter</h1>",
        "Vad som sparas och varför",
        "e-postadress och telefonnummer",
        "Nätverket Social Ekonomi Skåne – skane",
        "href=\"https://example.org/skane\"",
        "href=\"/?kind=researcher&amp;region=skane\">2</a>",
        "Rättelse och borttagning",
        "når alla noder i nätverket",
        "raderas det gamla innehållet",
    ] {
        assert!(
            privacy.contains(seen),
            "{seen:?} not on /integritet: {privacy}"
        );
    }
    for path in ["/", "/oversikt", &format!("/post/{author}/{new}")] {
        assert!(page(http, path).contains("href=\"/integritet\""), "{path}");
    }
    assert_eq!(node.terminate(15), 0);
}

/// The records counted on a region's page (`Poster`), its row on `/oversikt` (`Totalt`) and the
/// link to all its records: `(page, overview)`.
fn counts(http: SocketAddr, author: &str, name: &str) -> (u64, u64) {
    let region = page(http, &format!("/region/{author}"));
    let shown = region
        .split("<dt>Poster</dt><dd>")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .unwrap()
        .parse()
        .unwrap();
    let all = region
        .split("poster från")
        .next()
        .and_then(|r| r.rsplit("Alla ").next())
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap();
    assert_eq!(shown, all, "{region}");
    let overview = page(http, "/oversikt");
    let row = overview
        .split(&format!("<a href=\"/region/{author}\">"))
        .nth(1)
        .unwrap();
    let total = row
        .split(&format!("<td class=\"num\"><a href=\"/?region={name}\">"))
        .nth(1)
        .and_then(|cell| cell.split('<').next())
        .unwrap()
        .parse()
        .unwrap();
    (shown, total)
}

/// A region's page tells what it can: on another region's node (a mirror, which never connects
/// to that region) when the region's last record arrived here, not "inte ansluten just nu"; on
/// the aggregator whether the region is connected; on its own node neither. The page and
/// `/oversikt` count the same records (the profile included) on every node.
#[test]
fn a_region_page_on_a_mirror_says_when_records_arrived_and_counts_as_the_overview() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(skane, skane_id), (dalarna, _)]) =
        spindel_tests::init_network(tmp.path(), ["skane", "dalarna"]);
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let a = NodeProc::start(&skane, &["--aggregator", &peer, "--http", "127.0.0.1:0"]);
    let b = NodeProc::start(&dalarna, &["--aggregator", &peer, "--http", "127.0.0.1:0"]);
    for i in 0..3 {
        publish(
            &skane,
            "method",
            serde_json::json!({"title": format!("Studiecirkel {i}"), "summary": "Lärande i grupp"}),
        );
    }
    // Three methods and the profile, everywhere.
    for node in [&agg, &b] {
        let http = node.http.unwrap();
        spindel_tests::eventually(20, "Skåne's records", || {
            page(http, &format!("/region/{skane_id}")).contains("<dt>Poster</dt><dd>4:")
        });
    }
    let mirror = page(b.http.unwrap(), &format!("/region/{skane_id}"));
    assert!(
        mirror.contains("<dt>Senaste post kom hit</dt><dd><time datetime=\"20"),
        "{mirror}"
    );
    assert!(mirror.contains(" kl. "), "{mirror}");
    assert!(!mirror.contains("ansluten"), "{mirror}");
    assert!(!mirror.contains("Förbindelse"), "{mirror}");
    assert!(
        mirror.contains(
            "4: 0 sociala innovationer, 3 metoder, 0 forskarkontakter, 0 mötesplatser, 0 indikatorer, 0 erfarenheter, 1 profil"
        ),
        "{mirror}"
    );
    let at_agg = page(agg.http.unwrap(), &format!("/region/{skane_id}"));
    assert!(
        at_agg.contains("<dt>Förbindelse med den här noden</dt><dd>ansluten nu</dd>"),
        "{at_agg}"
    );
    let own = page(a.http.unwrap(), &format!("/region/{skane_id}"));
    assert!(
        own.contains("Senast synkad hit") && !own.contains("Förbindelse"),
        "{own}"
    );
    for node in [&agg, &a, &b] {
        assert_eq!(counts(node.http.unwrap(), &skane_id, "skane"), (4, 4));
    }
    for p in [b, a, agg] {
        assert_eq!(p.terminate(10), 0);
    }
}
