//! Experiences: one region answering another's record, through real processes (the built
//! binary, real sled, QUIC on loopback). The answer shows under the record on every node,
//! grouped by region; an answer that arrives before its record shows once the record does; a
//! deleted record leaves its answers readable and nothing of its own content; a region
//! deletes only its own answers and the aggregator authors nothing; Redaktionen answers a
//! record of another region.

use std::path::Path;

use spindel_tests::{
    NodeProc, editor_session, eventually, http_exchange, http_form, http_get, init_network,
    location, publish, publish_run, s, spindel, spindel_stdin,
};

fn answer(dir: &Path, about: &str, text: &str, outcome: &str) -> String {
    let json = serde_json::json!({"about": about, "text": text, "outcome": outcome}).to_string();
    publish(dir, "experience", &json)["record_id"]
        .as_str()
        .expect("record_id")
        .to_string()
}

fn method(dir: &Path, title: &str) -> String {
    let json = serde_json::json!({"title": title, "summary": format!("Om {title}")}).to_string();
    publish(dir, "method", &json)["record_id"]
        .as_str()
        .expect("record_id")
        .to_string()
}

fn page(http: std::net::SocketAddr, path: &str) -> String {
    http_get(http, path).1
}

/// Region B answers region A's record: the answer shows under the record on A's node, B's
/// node and the aggregator's page, grouped by region, newest first; the region pages list what
/// each gave and received; `/oversikt` counts who learns from whom; the API lists answers like
/// every kind.
#[test]
fn an_answer_shows_under_its_record_on_every_node_grouped_by_region() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(sk_dir, sk_id), (dal_dir, dal_id), (sth_dir, _)]) =
        init_network(tmp.path(), ["skane", "dalarna", "stockholm"]);
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let run = |dir: &Path| NodeProc::start(dir, &["--aggregator", &peer, "--http", "127.0.0.1:0"]);
    let (sk, dal, sth) = (run(&sk_dir), run(&dal_dir), run(&sth_dir));
    let rid = method(&sk_dir, "Språkcafé i föreningen");
    let about = format!("{sk_id}/{rid}");
    let dal_answer = answer(
        &dal_dir,
        &about,
        "Dalarna provade språkcaféet\nDet gick bra.",
        "adapted",
    );
    answer(&sth_dir, &about, "Stockholm först", "tried");
    answer(&sth_dir, &about, "Stockholm sedan", "planned");
    let record = format!("/post/{sk_id}/{rid}");
    for (who, http) in [
        ("Skåne", sk.http.unwrap()),
        ("Dalarna", dal.http.unwrap()),
        ("the aggregator", agg.http.unwrap()),
    ] {
        eventually(
            30,
            &format!("three answers under the record at {who}"),
            || page(http, &record).contains("Erfarenheter av posten (3)"),
        );
        let body = page(http, &record);
        let at = |needle: &str| {
            body.find(needle)
                .unwrap_or_else(|| panic!("{needle}: {body}"))
        };
        // Grouped by region, newest group first; within a group newest first.
        assert!(
            at("<h3>stockholm (2)</h3>") < at("Stockholm sedan"),
            "{body}"
        );
        assert!(at("Stockholm sedan") < at("Stockholm först"), "{body}");
        assert!(
            at("<h3>stockholm (2)</h3>") < at("<h3>dalarna (1)</h3>"),
            "{body}"
        );
        assert!(
            at("<h3>dalarna (1)</h3>") < at("Dalarna provade språkcaféet"),
            "{body}"
        );
        assert!(body.contains("Anpassat: Dalarna provade"), "{body}");
    }
    let http = agg.http.unwrap();
    // The answer's own page names the answered record and links it.
    let own = page(http, &format!("/post/{dal_id}/{dal_answer}"));
    assert!(
        own.contains(&format!(
            "Svar på: <a href=\"{record}\">Språkcafé i föreningen</a>"
        )),
        "{own}"
    );
    assert!(own.contains("<dt>Utfall</dt><dd>Anpassat</dd>"), "{own}");
    // The region pages: what Dalarna gave, what Skåne received.
    let region = page(http, &format!("/region/{sk_id}"));
    assert!(
        region.contains("Andra regioners erfarenheter av regionens poster (3)"),
        "{region}"
    );
    let region = page(http, &format!("/region/{dal_id}"));
    assert!(
        region.contains("Erfarenheter regionen har delat (1)"),
        "{region}"
    );
    // Who learns from whom: a table with headers, Stockholm's row counts 2 under Skåne.
    let overview = page(http, "/oversikt");
    let overview = overview
        .split("id=\"vem-lar-av-vem\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{overview}"));
    assert!(
        overview.contains("<caption>Erfarenheter per svarande region"),
        "{overview}"
    );
    let row = overview
        .split("<tr>")
        .find(|r| r.contains("<th scope=\"row\">") && r.contains(">stockholm</a></th>"))
        .unwrap_or_else(|| panic!("{overview}"));
    let cells: Vec<&str> = row
        .split("<td class=\"num\">")
        .skip(1)
        .map(|c| c.split('<').next().unwrap())
        .collect();
    let cols: Vec<&str> = overview
        .split("<thead>")
        .nth(1)
        .unwrap_or_default()
        .split("<th scope=\"col\" class=\"num\">")
        .skip(1)
        .map(|c| c.split('>').nth(1).unwrap().split('<').next().unwrap())
        .collect();
    let skane_col = cols
        .iter()
        .position(|c| *c == "skane")
        .unwrap_or_else(|| panic!("{cols:?}"));
    assert_eq!(cells[skane_col], "2", "{row}");
    assert_eq!(cells.iter().filter(|c| **c != "0").count(), 1, "{row}");
    // The API lists answers like every kind.
    let (_, body) = http_get(http, "/api/v1/records?kind=experience");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["records"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["records"][2]["data"]["about"], about.as_str(), "{v}");
    // The API answers "which experiences answer this record", grouped like the page.
    let (_, body) = http_get(http, &format!("/api/v1/records/{sk_id}/{rid}/answers"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["total"].as_u64(), &v["about"]),
        (Some(3), &about.as_str().into()),
        "{v}"
    );
    assert_eq!(v["groups"][0]["total"], 2, "{v}");
    assert_eq!(
        v["groups"][0]["answers"][0]["data"]["text"], "Stockholm sedan",
        "{v}"
    );
    assert_eq!(v["groups"][1]["author"], dal_id.as_str(), "{v}");
    assert_eq!(http_get(http, "/api/v1/records/x/y/answers").0, 400);
    // The "see all" page parameter is checked like every parameter.
    assert_eq!(http_get(http, &format!("{record}?svar=alla")).0, 200);
    assert_eq!(http_get(http, &format!("{record}?svar=2")).0, 400);
    for p in [sth, dal, sk, agg] {
        assert_eq!(p.terminate(15), 0);
    }
}

/// An answer that arrives before the record it answers (the record published while its
/// region was offline, its id given out of band) shows "not received here yet", and appears
/// under the record on the aggregator and a third region as soon as the record arrives.
#[test]
fn an_answer_that_arrives_before_its_record_shows_once_the_record_does() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(sk_dir, sk_id), (dal_dir, dal_id), (sth_dir, _)]) =
        init_network(tmp.path(), ["skane", "dalarna", "stockholm"]);
    let rid = method(&sk_dir, "Byapeng");
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let run = |dir: &Path| NodeProc::start(dir, &["--aggregator", &peer, "--http", "127.0.0.1:0"]);
    let (dal, sth) = (run(&dal_dir), run(&sth_dir));
    let about = format!("{sk_id}/{rid}");
    let early = answer(&dal_dir, &about, "Vi svarar innan posten kommit", "planned");
    let http = agg.http.unwrap();
    let answer_page = format!("/post/{dal_id}/{early}");
    eventually(30, "the early answer at the aggregator", || {
        http_get(http, &answer_page).0 == 200
    });
    assert!(
        page(http, &answer_page).contains("inte mottagen här ännu"),
        "{}",
        page(http, &answer_page)
    );
    let record = format!("/post/{sk_id}/{rid}");
    assert_eq!(http_get(http, &record).0, 404);
    let sk = run(&sk_dir);
    for (who, at) in [("the aggregator", http), ("Stockholm", sth.http.unwrap())] {
        eventually(
            30,
            &format!("the early answer under the record at {who}"),
            || page(at, &record).contains("Vi svarar innan posten kommit"),
        );
    }
    assert!(page(http, &answer_page).contains("Svar på: <a href="));
    for p in [sk, sth, dal, agg] {
        assert_eq!(p.terminate(15), 0);
    }
}

/// The answered record deleted: the answer stays readable, says "posten är borttagen", and
/// nothing of the deleted record is on its page. An answer deleted by its region is erased
/// from every derived list: under the record, the region pages, the matrix.
#[test]
fn a_deleted_record_leaves_its_answers_readable_and_a_deleted_answer_is_forgotten() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(sk_dir, sk_id), (dal_dir, dal_id)]) =
        init_network(tmp.path(), ["skane", "dalarna"]);
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let run = |dir: &Path| NodeProc::start(dir, &["--aggregator", &peer, "--http", "127.0.0.1:0"]);
    let (sk, dal) = (run(&sk_dir), run(&dal_dir));
    let gone = method(&sk_dir, "Hemligmetod Kvastfening");
    let kept = method(&sk_dir, "Lokal överenskommelse");
    let a1 = answer(&dal_dir, &format!("{sk_id}/{gone}"), "Svar ett", "tried");
    let a2 = answer(
        &dal_dir,
        &format!("{sk_id}/{kept}"),
        "Svar två Pelargonvinda",
        "tried",
    );
    let http = agg.http.unwrap();
    let a1_page = format!("/post/{dal_id}/{a1}");
    eventually(30, "both answers at the aggregator", || {
        page(http, &a1_page).contains("Hemligmetod Kvastfening")
            && page(http, &format!("/post/{sk_id}/{kept}")).contains("Pelargonvinda")
    });
    spindel(&["delete", "--data-dir", s(&sk_dir), &gone, "--json"]).ok();
    eventually(30, "the answered record deleted at the aggregator", || {
        page(http, &a1_page).contains("posten är borttagen")
    });
    let body = page(http, &a1_page);
    assert!(
        !body.contains("Kvastfening") && !body.contains("Hemligmetod"),
        "{body}"
    );
    assert!(body.contains("Svar ett"), "{body}");

    // Dalarna deletes its second answer: every list forgets it, on every node.
    spindel(&["delete", "--data-dir", s(&dal_dir), &a2, "--json"]).ok();
    let kept_page = format!("/post/{sk_id}/{kept}");
    for (who, at) in [("the aggregator", http), ("Skåne", sk.http.unwrap())] {
        eventually(30, &format!("the deleted answer gone at {who}"), || {
            let body = page(at, &kept_page);
            !body.contains("Pelargonvinda") && body.contains("Ingen region har svarat")
        });
        let region = page(at, &format!("/region/{sk_id}"));
        assert!(!region.contains("Pelargonvinda"), "{region}");
        assert!(
            region.contains("Andra regioners erfarenheter av regionens poster (1)"),
            "{region}"
        );
        assert!(!page(at, "/oversikt").contains("Pelargonvinda"));
        assert_eq!(http_get(at, &format!("/post/{dal_id}/{a2}")).0, 404);
    }
    for p in [dal, sk, agg] {
        assert_eq!(p.terminate(15), 0);
    }
}

/// Each region moderates only its own log: a region cannot delete another region's answer
/// (nor any record of another), and the aggregator can neither publish nor delete. A bad
/// `about` is one line naming the field.
#[test]
fn a_region_deletes_only_its_own_answers_and_the_aggregator_authors_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(sk_dir, sk_id), (dal_dir, _)]) =
        init_network(tmp.path(), ["skane", "dalarna"]);
    let agg = NodeProc::start(&agg_dir, &["--listen", "127.0.0.1:0"]);
    let peer = agg.peer(&agg_id);
    let sk = NodeProc::start(&sk_dir, &["--aggregator", &peer]);
    let dal = NodeProc::start(&dal_dir, &["--aggregator", &peer]);
    let rid = method(&sk_dir, "Skånes metod");
    let ans = answer(
        &dal_dir,
        &format!("{sk_id}/{rid}"),
        "Dalarnas svar",
        "tried",
    );
    eventually(30, "Dalarna's answer in Skåne", || {
        spindel(&[
            "query",
            "--data-dir",
            s(&sk_dir),
            "--kind",
            "experience",
            "--json",
        ])
        .json()["records"]
            .as_array()
            .is_some_and(|r| r.len() == 1)
    });
    // Skåne cannot delete Dalarna's answer, nor Dalarna Skåne's record.
    spindel(&["delete", "--data-dir", s(&sk_dir), &ans]).fails(1, &ans);
    spindel(&["delete", "--data-dir", s(&dal_dir), &rid]).fails(1, &rid);
    // The aggregator signs nothing.
    let json = format!(r#"{{"about":"{sk_id}/{rid}","text":"t","outcome":"tried"}}"#);
    let run = spindel_stdin(
        &[
            "publish",
            "--data-dir",
            s(&agg_dir),
            "--kind",
            "experience",
            "--file",
            "-",
        ],
        &json,
    );
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("aggregator"), "{}", run.stderr);
    let run = spindel(&["delete", "--data-dir", s(&agg_dir), &ans]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("aggregator"), "{}", run.stderr);
    // A bad reference, a bad outcome: one line naming the field and the rule.
    let bad = publish_run(
        &dal_dir,
        "experience",
        r#"{"about":"skane/123","text":"t","outcome":"tried"}"#,
    );
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr.contains("about must be NODEID/RECORD_ID"),
        "{}",
        bad.stderr
    );
    assert_eq!(bad.stderr.trim().lines().count(), 1, "{}", bad.stderr);
    let bad = publish_run(
        &dal_dir,
        "experience",
        &format!(r#"{{"about":"{sk_id}/{rid}","text":"t","outcome":"done"}}"#),
    );
    assert!(
        bad.stderr
            .contains("outcome must be tried, adapted, planned or not-suitable"),
        "{}",
        bad.stderr
    );
    // Still all there.
    let v = spindel(&["query", "--data-dir", s(&sk_dir), "--json"]).json();
    let ids: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["record_id"].as_str())
        .collect();
    assert!(
        ids.contains(&rid.as_str()) && ids.contains(&ans.as_str()),
        "{v}"
    );
    for p in [dal, sk, agg] {
        assert_eq!(p.terminate(15), 0);
    }
}

/// Redaktionen: staff find another region's record in the network list, open it, press
/// "Svara med en erfarenhet", see the answered record above the form, get every error beside
/// its field at once, preview and publish; the answer shows under the record on the page.
#[test]
fn staff_answer_another_regions_record_in_redaktionen() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(sk_dir, _), (dal_dir, dal_id)]) =
        init_network(tmp.path(), ["skane", "dalarna"]);
    spindel_stdin(
        &[
            "user",
            "add",
            "--data-dir",
            s(&sk_dir),
            "anna",
            "--role",
            "redaktor",
            "--password-stdin",
        ],
        "ett långt lösenord",
    )
    .ok();
    let agg = NodeProc::start(&agg_dir, &["--listen", "127.0.0.1:0"]);
    let peer = agg.peer(&agg_id);
    let sk = NodeProc::start(
        &sk_dir,
        &[
            "--aggregator",
            &peer,
            "--admin",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ],
    );
    let dal = NodeProc::start(&dal_dir, &["--aggregator", &peer]);
    let rid = method(&dal_dir, "Dalarnas fond");
    let admin = sk.admin.unwrap();
    let (cookie, csrf) = editor_session(admin, "anna", "ett långt lösenord");
    let get = |path: &str| {
        let (status, _, body) = http_exchange(admin, "GET", path, &[("Cookie", &cookie)], None);
        (status, body)
    };
    eventually(30, "Dalarna's record in Skåne's network list", || {
        get("/natverket?q=fond").1.contains("Dalarnas fond")
    });
    let list = get("/natverket?q=fond").1;
    let link = format!("/natverket/{dal_id}/{rid}");
    assert!(list.contains(&format!("href=\"{link}\"")), "{list}");
    let (status, record) = get(&link);
    assert_eq!(status, 200, "{record}");
    let answer_link = format!("/ny/experience?about={dal_id}/{rid}");
    assert!(
        record.contains(&format!("href=\"{answer_link}\">Svara med en erfarenhet")),
        "{record}"
    );
    let (status, form) = get(&answer_link);
    assert_eq!(status, 200, "{form}");
    assert!(form.contains("Posten du svarar på"), "{form}");
    assert!(form.contains(">Dalarnas fond</a>"), "{form}");
    assert!(
        form.contains(&format!("value=\"{dal_id}&#x2f;{rid}\"")),
        "{form}"
    );
    assert!(
        form.contains("<option value=\"adapted\">Anpassat</option>"),
        "{form}"
    );
    // Every error at once, beside its field, in page order; nothing typed is lost.
    let (status, _, body) = http_form(
        admin,
        "/ny/experience",
        &[("Cookie", &cookie)],
        &[
            ("csrf", &csrf),
            ("about", "fel"),
            ("text", ""),
            ("outcome", ""),
            ("links", "inte en adress"),
            ("action", "preview"),
        ],
    );
    assert_eq!(status, 400, "{body}");
    let at = |needle: &str| {
        body.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {body}"))
    };
    assert!(at("id=\"about-fel\"") < at("id=\"text-fel\""));
    assert!(at("id=\"text-fel\"") < at("id=\"outcome-fel\""));
    assert!(at("id=\"outcome-fel\"") < at("id=\"links-fel\""));
    assert!(body.contains("NODID"), "{body}");
    assert!(body.contains("Välj ett av alternativen."), "{body}");
    assert!(body.contains(">inte en adress</textarea>"), "{body}");
    // Preview with the public template, then publish.
    let fields = [
        ("csrf", csrf.as_str()),
        ("about", &format!("{dal_id}/{rid}")),
        ("text", "Skåne provade fonden\nMed tre kommuner."),
        ("outcome", "adapted"),
    ];
    let (status, _, preview) = http_form(
        admin,
        "/ny/experience",
        &[("Cookie", &cookie)],
        &[&fields[..], &[("action", "preview")]].concat(),
    );
    assert_eq!(status, 200, "{preview}");
    assert!(
        preview.contains("<dt>Utfall</dt><dd>Anpassat</dd>"),
        "{preview}"
    );
    let (status, head, body) = http_form(
        admin,
        "/ny/experience",
        &[("Cookie", &cookie)],
        &[&fields[..], &[("action", "publish")]].concat(),
    );
    assert_eq!(status, 303, "{head}{body}");
    let own = location(&head);
    let (status, own_page) = get(own.split('?').next().unwrap());
    assert_eq!(status, 200, "{own_page}");
    assert!(own_page.contains("Skåne provade fonden"), "{own_page}");
    assert!(
        own_page.contains(&format!("Svar på: <a href=\"{link}\">Dalarnas fond</a>")),
        "{own_page}"
    );
    // The answer shows under Dalarna's record, in the network page and the public page.
    assert!(get(&link).1.contains("Skåne provade fonden"));
    let public = page(sk.http.unwrap(), &format!("/post/{dal_id}/{rid}"));
    assert!(public.contains("Skåne provade fonden"), "{public}");
    // An unknown parameter of the answer form is refused like every editor address.
    assert_eq!(get("/ny/experience?om=x").0, 400);
    for p in [dal, sk, agg] {
        assert_eq!(p.terminate(15), 0);
    }
}
