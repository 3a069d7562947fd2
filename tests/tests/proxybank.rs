//! The SROI proxy bank (kind `indicator`) through the real binary: publishing indicators and
//! innovations that name them from the CLI (and bad input refused in one line), the API,
//! replication through real processes to `/proxybank` at the aggregator and at a region (two
//! regions' proxies side by side under one outcome, median and range, the innovation of a
//! third region as their user), deletion, and the caps that keep a hostile region's thousands
//! of proxies or huge values from breaking the page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use spindel_tests::{
    NodeProc, editor_region, editor_session, eventually, hidden_field, http_exchange, http_form,
    http_get, http_request, import_file, init_network, init_region_as, location, publish_run, s,
    spindel,
};

fn page(http: SocketAddr, path: &str) -> String {
    let (code, head, body) = http_request(http, "GET", path, None);
    assert_eq!(code, 200, "{path}: {body}");
    assert!(head.contains("text/html"), "{head}");
    body.replace("&#x2f;", "/")
}

fn indicator(outcome: &str, indicator: &str, value: f64, year: i64) -> serde_json::Value {
    serde_json::json!({
        "outcome": outcome, "indicator": indicator,
        "proxy": format!("Proxy för {indicator} (exempelvärde)"),
        "value_sek": value, "unit": "per person och år", "year": year,
        "source": "https://example.org/kalla", "deadweight": 0.25, "drop_off": 0.1,
        "tags": ["arbete"],
    })
}

fn publish(dir: &std::path::Path, kind: &str, json: &serde_json::Value) -> String {
    spindel_tests::publish(dir, kind, &json.to_string())["record_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The section of `/proxybank` for the outcome headed `heading`.
fn outcome_section<'a>(html: &'a str, heading: &str) -> &'a str {
    let at = html
        .find(&format!("\">{heading}</h3>"))
        .unwrap_or_else(|| panic!("no outcome {heading:?} in {html}"));
    let rest = &html[at..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

#[test]
fn the_cli_publishes_indicators_and_refuses_bad_ones_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("skane");
    let me = init_region_as(&dir, "skane", "Skåne");
    let good = indicator(
        " Fler personer i arbete ",
        "Anställda efter ett år",
        120000.0,
        2024,
    );
    let rid = publish(&dir, "indicator", &good);
    let q = spindel(&[
        "query",
        "--data-dir",
        s(&dir),
        "--kind",
        "indicator",
        "--json",
    ])
    .json();
    assert_eq!(q["records"][0]["data"]["outcome"], "Fler personer i arbete");
    assert_eq!(q["records"][0]["data"]["value_sek"], 120000.0);
    let bad = |field: &str, value: serde_json::Value, says: &str| {
        let mut j = good.clone();
        j[field] = value;
        let run = publish_run(&dir, "indicator", &j.to_string());
        assert_ne!(run.code, 0, "{field}");
        let err = run.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{field}: {says:?} not in {err}");
    };
    bad(
        "value_sek",
        serde_json::json!(-1),
        "value_sek must be a number from 0 to 1000000000",
    );
    bad(
        "value_sek",
        serde_json::json!(2e9),
        "value_sek must be a number from 0 to 1000000000",
    );
    bad(
        "year",
        serde_json::json!(1989),
        "year must be between 1990 and 2100",
    );
    bad(
        "deadweight",
        serde_json::json!(1.5),
        "deadweight must be a fraction from 0 to 1",
    );
    bad(
        "attribution",
        serde_json::json!(-0.5),
        "attribution must be a fraction from 0 to 1",
    );
    bad(
        "source",
        serde_json::json!("javascript:alert(1)"),
        "source looks like an address",
    );
    bad("outcome", serde_json::json!(""), "outcome is required");
    // An innovation names the indicator; a malformed, a repeated or too many references are refused.
    let reference = format!("{me}/{rid}");
    let inn = |refs: serde_json::Value| serde_json::json!({"title": "Arbetsträning", "summary": "S", "sroi": {"ratio": 2.5, "indicators": refs}});
    publish(&dir, "innovation", &inn(serde_json::json!([reference])));
    let run = publish_run(
        &dir,
        "innovation",
        &inn(serde_json::json!(["nope"])).to_string(),
    );
    assert!(
        run.code != 0 && run.stderr.contains("NODEID/RECORD_ID"),
        "{}",
        run.stderr
    );
    let run = publish_run(
        &dir,
        "innovation",
        &inn(serde_json::json!([reference, reference])).to_string(),
    );
    assert!(
        run.code != 0 && run.stderr.contains("sroi.indicators[1] names"),
        "{}",
        run.stderr
    );
    let many: Vec<String> = (0..51).map(|i| format!("{me}/{i:032x}")).collect();
    let run = publish_run(
        &dir,
        "innovation",
        &inn(serde_json::json!(many)).to_string(),
    );
    assert!(
        run.code != 0
            && run
                .stderr
                .contains("sroi.indicators must have at most 50 entries"),
        "{}",
        run.stderr
    );
    let q = spindel(&[
        "query",
        "--data-dir",
        s(&dir),
        "--kind",
        "innovation",
        "--json",
    ])
    .json();
    assert_eq!(
        q["records"][0]["data"]["sroi"]["indicators"][0],
        reference.as_str()
    );
}

#[test]
fn two_regions_proxies_meet_under_one_outcome_everywhere_and_leave_when_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(skane, skane_id), (dalarna, dalarna_id), (sthlm, _)]) =
        init_network(tmp.path(), ["skane", "dalarna", "stockholm"]);
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let nodes: Vec<NodeProc> = [&skane, &dalarna, &sthlm]
        .iter()
        .map(|d| NodeProc::start(d, &["--aggregator", &peer, "--http", "127.0.0.1:0"]))
        .collect();
    let sthlm_dir = sthlm.clone();
    let a = publish(
        &skane,
        "indicator",
        &indicator(
            "Fler personer i arbete",
            "Skånes arbetsindikator",
            100000.0,
            2024,
        ),
    );
    let b = publish(
        &dalarna,
        "indicator",
        &indicator(
            "  fler PERSONER  i arbete",
            "Dalarnas arbetsindikator",
            140000.0,
            2022,
        ),
    );
    publish(
        &dalarna,
        "indicator",
        &indicator(
            "Minskad ensamhet",
            "Dalarnas ensamhetsindikator",
            30000.0,
            2024,
        ),
    );
    // Stockholm's innovation names both, and one no node holds.
    let unknown = format!("{}/{}", "ab".repeat(32), "cd".repeat(16));
    // And a record that is no indicator (Dalarna's profile).
    let profiles = spindel(&[
        "query",
        "--data-dir",
        s(&dalarna),
        "--kind",
        "profile",
        "--json",
    ])
    .json();
    let profile = profiles["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["author"] == dalarna_id.as_str())
        .unwrap()["record_id"]
        .as_str()
        .unwrap()
        .to_string();
    let inn = publish(
        &sthlm,
        "innovation",
        &serde_json::json!({"title": "Stockholms arbetsträning", "summary": "S",
            "sroi": {"ratio": 3.0, "indicators": [format!("{skane_id}/{a}"), format!("{dalarna_id}/{b}"), unknown, format!("{dalarna_id}/{profile}")]}}),
    );
    for node in [&agg, &nodes[1]] {
        let http = node.http.unwrap();
        eventually(30, "both proxies and their user on /proxybank", || {
            let html = page(http, "/proxybank");
            html.contains("Stockholms arbetsträning") && html.contains("Dalarnas arbetsindikator")
        });
        let html = page(http, "/proxybank");
        let arbete = outcome_section(&html, "Fler personer i arbete");
        assert!(arbete.contains("2 indikatorer från 2 regioner"), "{arbete}");
        assert!(
            arbete.contains("Median <strong>120\u{a0}000 kr</strong>"),
            "{arbete}"
        );
        assert!(
            arbete.contains("spridning 100\u{a0}000–140\u{a0}000 kr"),
            "{arbete}"
        );
        assert!(
            arbete.contains("prisår 2022–2024, ej omräknade"),
            "{arbete}"
        );
        assert!(arbete.contains("Skånes arbetsindikator"), "{arbete}");
        assert!(arbete.contains("dödvikt 0,25"), "{arbete}");
        assert_eq!(
            arbete.matches("Stockholms arbetsträning").count(),
            2,
            "{arbete}"
        );
        assert!(!arbete.contains("ensamhet"), "{arbete}");
        // Filters: region, tag and text, as every kind.
        let only = page(http, "/proxybank?region=skane");
        assert!(
            only.contains("1 indikator från 1 region") && !only.contains("Dalarnas"),
            "{only}"
        );
        let text = page(http, "/proxybank?q=ensamhet");
        assert!(
            text.contains("Dalarnas ensamhetsindikator") && !text.contains("Skånes"),
            "{text}"
        );
        assert!(page(http, "/proxybank?tag=ARBETE").contains("Skånes arbetsindikator"));
        // The indicator's page names its user; the innovation's page its indicators.
        let ind = page(http, &format!("/post/{skane_id}/{a}"));
        assert!(
            ind.contains("<dt>Utfall</dt>")
                && ind.contains("100\u{a0}000 kr per person och år, i 2024 års prisnivå"),
            "{ind}"
        );
        assert!(
            ind.contains("<dt>Används i</dt>") && ind.contains("Stockholms arbetsträning"),
            "{ind}"
        );
    }
    let (code, body) = http_get(agg.http.unwrap(), "/api/v1/records?kind=indicator");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["records"].as_array().unwrap().len(), 3, "{body}");
    let inn_id = v["records"][0]["author"].as_str().unwrap().to_string();
    let _ = inn_id;
    let agg_http = agg.http.unwrap();
    let sthlm_id = spindel(&["status", "--data-dir", s(&sthlm), "--json"]).json()["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    let inn_page = || page(agg_http, &format!("/post/{sthlm_id}/{inn}"));
    let html = inn_page();
    assert!(html.contains("<dt>Indikatorer</dt>"), "{html}");
    assert!(
        html.contains("Skånes arbetsindikator") && html.contains("Dalarnas arbetsindikator"),
        "{html}"
    );
    assert!(html.contains("(ej mottagen här)"), "{html}");
    assert!(html.contains("En post som inte är en indikator"), "{html}");
    // Skåne deletes its indicator: it leaves the bank and the innovation's page everywhere.
    spindel(&["delete", "--data-dir", s(&skane), &a]).ok();
    for node in [&agg, &nodes[1], &nodes[2]] {
        let http = node.http.unwrap();
        eventually(30, "the deleted indicator leaves /proxybank", || {
            !page(http, "/proxybank").contains("Skånes arbetsindikator")
        });
        let html = page(http, "/proxybank");
        let arbete = outcome_section(&html, "fler PERSONER i arbete");
        assert!(arbete.contains("1 indikator från 1 region"), "{arbete}");
        let inn_html = page(http, &format!("/post/{sthlm_id}/{inn}"));
        assert!(!inn_html.contains("Skånes arbetsindikator"), "{inn_html}");
        assert!(
            inn_html.contains("En indikator som regionen har tagit bort"),
            "{inn_html}"
        );
        assert!(inn_html.contains("Dalarnas arbetsindikator"), "{inn_html}");
    }
    // Stockholm deletes its innovation: Dalarna's indicator has no user left anywhere.
    spindel(&["delete", "--data-dir", s(&sthlm_dir), &inn]).ok();
    for node in [&agg, &nodes[1]] {
        let http = node.http.unwrap();
        eventually(30, "the deleted innovation leaves the users", || {
            !page(http, "/proxybank").contains("Stockholms arbetsträning")
        });
        let ind = page(http, &format!("/post/{dalarna_id}/{b}"));
        assert!(
            ind.contains("Ingen innovation här anger den ännu."),
            "{ind}"
        );
    }
    for p in nodes.into_iter().rev() {
        assert_eq!(p.terminate(10), 0);
    }
    assert_eq!(agg.terminate(10), 0);
}

/// A region that publishes more proxies than the page can show, with the largest values the
/// schema allows, and more outcomes than one page: the page stays whole and says what it left
/// out; bad parameters are refused.
#[test]
fn thousands_of_proxies_and_huge_values_are_capped_and_paged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("skane");
    init_region_as(&dir, "skane", "Skåne");
    // 1 030 proxies on one outcome (more than the scan's 1 000), then 24 outcomes of one each.
    let many: Vec<String> = (0..1030)
        .map(|i| indicator("Ökad trygghet", &format!("Trygghet {i:04}"), 1e9, 2024).to_string())
        .collect();
    let single: Vec<String> = (0..24)
        .map(|i| {
            indicator(
                &format!("Utfall {i:02}"),
                &format!("Ensam {i:02}"),
                5.0,
                2020,
            )
            .to_string()
        })
        .collect();
    for (name, lines) in [("many.jsonl", many), ("single.jsonl", single)] {
        let file = tmp.path().join(name);
        std::fs::write(&file, lines.join("\n")).unwrap();
        import_file(&dir, "indicator", &file).ok();
    }
    // 25 innovations name the newest single indicator: 20 are listed, and how many more.
    let newest = spindel(&[
        "query",
        "--data-dir",
        s(&dir),
        "--kind",
        "indicator",
        "--limit",
        "1",
        "--json",
    ])
    .json();
    let target = format!(
        "{}/{}",
        newest["records"][0]["author"].as_str().unwrap(),
        newest["records"][0]["record_id"].as_str().unwrap()
    );
    let target_indicator = newest["records"][0]["data"]["indicator"]
        .as_str()
        .unwrap()
        .to_string();
    let users: Vec<String> = (0..25)
        .map(|i| serde_json::json!({"title": format!("Användare {i:02}"), "summary": "S", "sroi": {"ratio": 2, "indicators": [target]}}).to_string())
        .collect();
    let file = tmp.path().join("users.jsonl");
    std::fs::write(&file, users.join("\n")).unwrap();
    import_file(&dir, "innovation", &file).ok();
    const PASSWORD: &str = "ett långt lösenord för test";
    spindel_tests::user_add(&dir, "anna", "redaktor", Some(PASSWORD));
    let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
    let http = node.http.unwrap();
    let found = page(
        http,
        &format!("/proxybank?q={}", target_indicator.replace(' ', "+")),
    );
    let row = found
        .split("<tr>")
        .find(|r| r.contains(&format!(">{target_indicator}</a>")))
        .unwrap_or_else(|| panic!("{target_indicator}: {found}"));
    assert_eq!(row.matches("Användare ").count(), 20, "{row}");
    assert!(row.contains(" och 5 till"), "{row}");
    // The innovation form offers the newest 300 indicators, not all 1 054.
    let admin = node.admin.unwrap();
    let (sc, _) = editor_session(admin, "anna", PASSWORD);
    let (_, _, form) = http_exchange(admin, "GET", "/ny/innovation", &[("Cookie", &sc)], None);
    assert_eq!(
        form.matches("name=\"sroi.indicators:").count(),
        300,
        "choices are capped"
    );
    let html = page(http, "/proxybank");
    assert!(
        html.contains("Banken visar de 1000 senast ändrade indikatorerna"),
        "{html}"
    );
    assert!(
        html.contains("25 utfall, 1000 indikatorer (sida 1 av 2)"),
        "{html}"
    );
    assert!(html.contains("href=\"/proxybank?sida=2\""), "{html}");
    let trygghet = outcome_section(&html, "Ökad trygghet");
    // The newest 1 000 are read: the 24 single ones (imported later) and 976 of the 1 030.
    let count: usize = trygghet
        .split("<p class=\"stats\">")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{trygghet}"));
    assert_eq!(count, 976);
    assert!(trygghet.contains("indikatorer från 1 region"), "{trygghet}");
    assert!(
        trygghet.contains("Median <strong>1\u{a0}000\u{a0}000\u{a0}000 kr</strong>"),
        "{trygghet}"
    );
    assert_eq!(
        trygghet.matches("<tr><td>").count(),
        50,
        "rows per outcome are capped"
    );
    assert!(
        trygghet.contains(&format!("Och {} proxyer till", count - 50)),
        "{trygghet}"
    );
    let second = page(http, "/proxybank?sida=2");
    assert!(
        second.contains("(sida 2 av 2)") && second.contains("href=\"/proxybank\""),
        "{second}"
    );
    // Paging with a filter keeps the filter.
    let ensam = page(http, "/proxybank?q=ensam");
    assert!(
        ensam.contains("24 utfall, 24 indikatorer (sida 1 av 2)"),
        "{ensam}"
    );
    assert!(
        ensam.contains("href=\"/proxybank?q=ensam&amp;sida=2\""),
        "{ensam}"
    );
    for (path, says) in [
        ("/proxybank?sida=0", "sida"),
        ("/proxybank?sida=x", "sida"),
        ("/proxybank?kind=method", "okänd parameter"),
        ("/proxybank?q=a&q=b", "q"),
    ] {
        let (code, _, body) = http_request(http, "GET", path, None);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(body.to_lowercase().contains(says), "{path}: {body}");
    }
    assert_eq!(node.terminate(10), 0);
}

/// Redaktionen: `/ny/indicator` says every error beside its field, all at once in the form's
/// order, keeps what was typed, previews with the public template, publishes, edits and
/// deletes; the innovation form offers the bank's indicators as checkboxes by outcome, keeps the
/// ticked ones through an error and a preview, and publishes them as `sroi.indicators`.
#[test]
fn staff_publish_an_indicator_and_pick_it_for_an_innovation_in_the_editor() {
    const PASSWORD: &str = "ett långt lösenord för test";
    let (_tmp, dir, node) = editor_region(
        &[("anna", "redaktor")],
        PASSWORD,
        &["--admin", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let me = spindel(&["status", "--data-dir", s(&dir), "--json"]).json()["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (admin, http) = (node.admin.unwrap(), node.http.unwrap());
    let (sc, csrf) = editor_session(admin, "anna", PASSWORD);
    let cookie = [("Cookie", sc.as_str())];
    let post = |path: &str, fields: &[(&str, &str)], action: &str| {
        let mut all = fields.to_vec();
        all.push(("csrf", &csrf));
        all.push(("action", action));
        http_form(admin, path, &cookie, &all)
    };
    let (status, _, form) = http_exchange(admin, "GET", "/ny/indicator", &cookie, None);
    assert_eq!(status, 200);
    for label in [
        "Utfall",
        "Indikator",
        "Finansiell proxy",
        "Värde i kronor",
        "Enhet",
        "Prisår",
        "Källa",
        "Dödvikt",
        "Avtagande",
    ] {
        assert!(
            form.contains(&format!(">{label} ")) || form.contains(&format!(">{label}<")),
            "{label}: {form}"
        );
    }
    // Every error at once, in the form's order, each beside its field; nothing typed is lost.
    let bad = [
        ("outcome", ""),
        ("indicator", "Anställda efter ett år"),
        ("proxy", "Minskat försörjningsstöd"),
        ("value_sek", "mycket"),
        ("unit", "per person och år"),
        ("year", "1800"),
        ("source", "javascript:alert(1)"),
        ("deadweight", "1,5"),
    ];
    let (status, _, body) = post("/ny/indicator", &bad, "preview");
    assert_eq!(status, 400, "{body}");
    let summary = &body[body.find("id=\"fel\"").unwrap()..];
    let summary = &summary[..summary.find("</ul>").unwrap()];
    let order: Vec<usize> = ["#outcome", "#value_sek", "#year", "#source", "#deadweight"]
        .iter()
        .map(|a| summary.find(a).unwrap_or_else(|| panic!("{a}: {summary}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{summary}");
    for said in [
        "Fyll i fältet.",
        "Ange ett tal",
        "Ange ett år mellan 1990 och 2100.",
        "webbadress",
        "Ange ett tal från 0 till 1",
    ] {
        assert!(body.contains(said), "{said}: {body}");
    }
    assert!(body.contains("id=\"deadweight-fel\""), "{body}");
    assert!(
        body.contains("value=\"mycket\"") && body.contains("value=\"javascript:alert(1)\""),
        "{body}"
    );
    // A value above the cap is said in Swedish too.
    let mut over = bad.to_vec();
    over[0] = ("outcome", "Fler personer i arbete");
    over[3] = ("value_sek", "2 000 000 000");
    let (_, _, body) = post("/ny/indicator", &over, "preview");
    assert!(
        body.contains("Ange ett belopp från 0 till 1000000000 kronor."),
        "{body}"
    );
    let good = [
        ("outcome", "Fler personer i arbete"),
        ("indicator", "Anställda efter ett år"),
        ("proxy", "Minskat försörjningsstöd (exempelvärde)"),
        ("value_sek", "120 000"),
        ("unit", "per person och år"),
        ("year", "2024"),
        ("source", "SCB, exempelkälla"),
        ("deadweight", "0,25"),
        ("tags", "arbete"),
    ];
    let (status, _, preview) = post("/ny/indicator", &good, "preview");
    assert_eq!(status, 200, "{preview}");
    assert!(
        preview.contains("120\u{a0}000 kr per person och år, i 2024 års prisnivå"),
        "{preview}"
    );
    assert!(preview.contains("dödvikt 0,25"), "{preview}");
    let (status, head, body) = post("/ny/indicator", &good, "publish");
    assert_eq!(status, 303, "{head}{body}");
    let to = location(&head);
    let rid = to
        .trim_start_matches("/post/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let (_, body) = http_get(http, "/api/v1/records?kind=indicator");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["records"][0]["data"]["value_sek"], 120000.0);
    assert_eq!(v["records"][0]["data"]["deadweight"], 0.25);
    // An edit, at the version the form was opened on.
    let (_, _, form) = http_exchange(admin, "GET", &format!("/post/{rid}/andra"), &cookie, None);
    assert!(form.contains("value=\"120000\""), "{form}");
    let version = hidden_field(&form, "version").unwrap();
    let mut edited = good.to_vec();
    edited[3] = ("value_sek", "125000");
    edited.push(("version", &version));
    let (status, head, body) = post(&format!("/post/{rid}/andra"), &edited, "publish");
    assert_eq!(status, 303, "{head}{body}");

    // The innovation form offers it, grouped by its outcome.
    let reference = format!("{me}/{rid}");
    let pick = format!("sroi.indicators:{reference}");
    let (_, _, form) = http_exchange(admin, "GET", "/ny/innovation", &cookie, None);
    assert!(
        form.contains("<legend>Indikatorer ur proxybanken</legend>"),
        "{form}"
    );
    assert!(
        form.contains("<legend>Fler personer i arbete</legend>"),
        "{form}"
    );
    let unticked = format!("name=\"{pick}\">");
    assert!(form.replace("&#x2f;", "/").contains(&unticked), "{form}");
    // Ticked, with an error elsewhere: still ticked.
    let inn = [
        ("title", "Arbetsträning"),
        ("summary", ""),
        ("sroi.ratio", "2,5"),
        (pick.as_str(), "on"),
    ];
    let (status, _, body) = post("/ny/innovation", &inn, "preview");
    assert_eq!(status, 400, "{body}");
    let ticked = format!("name=\"{pick}\" checked>");
    assert!(body.replace("&#x2f;", "/").contains(&ticked), "{body}");
    let mut inn = inn.to_vec();
    inn[1] = ("summary", "Träning i secondhandbutiker");
    let (status, _, preview) = post("/ny/innovation", &inn, "preview");
    assert_eq!(status, 200, "{preview}");
    let preview = preview.replace("&#x2f;", "/");
    assert!(
        preview.contains("<dt>Indikatorer</dt>") && preview.contains("Anställda efter ett år"),
        "{preview}"
    );
    assert_eq!(
        hidden_field(&preview, "sroi.indicators").map(|v| v.replace("&#x2f;", "/")),
        Some(reference.clone())
    );
    // Published from the preview's hidden fields.
    let from_preview = [
        ("title", "Arbetsträning"),
        ("summary", "Träning i secondhandbutiker"),
        ("sroi.ratio", "2,5"),
        ("sroi.indicators", reference.as_str()),
    ];
    let (status, head, body) = post("/ny/innovation", &from_preview, "publish");
    assert_eq!(status, 303, "{head}{body}");
    let (_, body) = http_get(http, "/api/v1/records?kind=innovation");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["records"][0]["data"]["sroi"]["indicators"],
        serde_json::json!([reference])
    );
    let inn_id = location(&head)
        .trim_start_matches("/post/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    // Its edit form has the indicator ticked.
    let (_, _, form) = http_exchange(
        admin,
        "GET",
        &format!("/post/{inn_id}/andra"),
        &cookie,
        None,
    );
    assert!(form.replace("&#x2f;", "/").contains(&ticked), "{form}");
    let public = page(http, &format!("/post/{me}/{rid}"));
    assert!(
        public.contains("Arbetsträning"),
        "the indicator's page names its user: {public}"
    );
    let (_, _, own) = http_exchange(admin, "GET", &format!("/post/{rid}"), &cookie, None);
    assert!(
        own.contains("<dt>Används i</dt>") && own.contains("Arbetsträning"),
        "{own}"
    );

    // Deleted from the editor: gone from the bank and from the innovation's page.
    let (status, head, _) = http_form(
        admin,
        &format!("/post/{rid}/ta-bort"),
        &cookie,
        &[("csrf", &csrf)],
    );
    assert_eq!(status, 303, "{head}");
    let bank = page(http, "/proxybank");
    assert!(
        !bank.contains("Anställda efter ett år") && bank.contains("0 utfall"),
        "{bank}"
    );
    let inn_page = page(http, &format!("/post/{me}/{inn_id}"));
    assert!(
        !inn_page.contains("Anställda efter ett år") && inn_page.contains("tagit bort"),
        "{inn_page}"
    );
    assert_eq!(node.terminate(10), 0);
}
