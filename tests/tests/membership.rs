//! Membership decided by the regions (decision 0041), through real `spindel run` processes on
//! 127.0.0.1: a charter of three founding regions with threshold 2, an aggregator that
//! carries it, and a fourth region that is refused until two members endorse it, then
//! revoked by two. Nodes of another charter, or of none, are refused by name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use spindel_tests::{
    NodeProc, eventually, files_containing, heads, http_get, init, publish_run, records_by_region,
    s, spindel,
};

/// How long a record or an act may take to travel in these tests (a deadline, not a wait).
const TRAVEL_S: u64 = 30;

fn publish(dir: &Path, title: &str) -> String {
    let json =
        serde_json::json!({"title": title, "summary": "Samverkan mellan regionerna"}).to_string();
    let run = publish_run(dir, "method", &json);
    assert_eq!(run.code, 0, "{run:?}");
    run.json()["record_id"].as_str().unwrap().to_string()
}

/// A charter file of `founders` (dir, id, name) with threshold `k`, signed by every founder.
fn charter(tmp: &Path, file: &str, k: u32, founders: &[(&Path, &str, &str)]) -> PathBuf {
    let path = tmp.join(file);
    let k = k.to_string();
    let named: Vec<String> = founders
        .iter()
        .map(|(_, id, name)| format!("{id}={name}"))
        .collect();
    let mut args = vec!["charter", "new", "--name", "SOUL", "--threshold", &k];
    args.extend(named.iter().map(String::as_str));
    args.extend(["--out", s(&path)]);
    spindel(&args).ok();
    for (dir, _, _) in founders {
        spindel(&["charter", "sign", "--data-dir", s(dir), s(&path)]).ok();
    }
    path
}

fn act(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    spindel(&all).json()
}

/// Three founding regions (skane, dalarna, stockholm) of a charter with threshold 2 that each
/// adopted, and an aggregator made with `init --charter`; none runs yet.
struct Founded {
    dirs: [PathBuf; 3],
    ids: [String; 3],
    file: PathBuf,
    agg_dir: PathBuf,
    agg_id: String,
}

fn founded(t: &Path) -> Founded {
    let names = ["skane", "dalarna", "stockholm"];
    let made = names.map(|name| init(t, name, "region"));
    let founders: Vec<(&Path, &str, &str)> = made
        .iter()
        .zip(names)
        .map(|((dir, id), name)| (dir.as_path(), id.as_str(), name))
        .collect();
    let file = charter(t, "soul.json", 2, &founders);
    for (dir, _, name) in &founders {
        let adopted = act(&["charter", "adopt", "--data-dir", s(dir), s(&file)]);
        assert_eq!(adopted["standing"], "member");
        assert_eq!(adopted["name"], *name);
    }
    let agg_dir = t.join("nationell");
    let agg = act(&[
        "init",
        "--data-dir",
        s(&agg_dir),
        "--name",
        "nationell",
        "--role",
        "aggregator",
        "--charter",
        s(&file),
    ]);
    assert_eq!(agg["charter"]["standing"], "aggregator");
    let [(a, a_id), (b, b_id), (c, c_id)] = made;
    Founded {
        dirs: [a, b, c],
        ids: [a_id, b_id, c_id],
        file,
        agg_dir,
        agg_id: agg["node_id"].as_str().unwrap().to_string(),
    }
}

#[test]
fn regions_admit_and_revoke_a_region_and_other_charters_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Founded {
        dirs: [skane, dalarna, stockholm],
        ids: [skane_id, dalarna_id, stockholm_id],
        file,
        agg_dir,
        agg_id,
    } = founded(t);
    let founders = [
        (skane.as_path(), skane_id.as_str(), "skane"),
        (dalarna.as_path(), dalarna_id.as_str(), "dalarna"),
        (stockholm.as_path(), stockholm_id.as_str(), "stockholm"),
    ];
    // The newcomer takes the charter at init.
    let jamtland = t.join("jamtland");
    let newcomer = act(&[
        "init",
        "--data-dir",
        s(&jamtland),
        "--name",
        "jamtland",
        "--charter",
        s(&file),
    ]);
    assert_eq!(newcomer["charter"]["standing"], "newcomer");
    let jamtland_id = newcomer["node_id"].as_str().unwrap().to_string();

    // Under a charter the aggregator's operator admits nobody.
    spindel(&[
        "allow",
        "--data-dir",
        s(&agg_dir),
        &jamtland_id,
        "--name",
        "jamtland",
    ])
    .fails(1, "spindel endorse");
    // An unsigned charter is not taken, and nothing is left behind.
    let draft = t.join("draft.json");
    let mut args = vec!["charter", "new", "--name", "SOUL", "--threshold", "1"];
    let one = format!("{skane_id}=skane");
    args.extend([one.as_str(), "--out", s(&draft)]);
    spindel(&args).ok();
    let gotland = t.join("gotland");
    spindel(&[
        "init",
        "--data-dir",
        s(&gotland),
        "--name",
        "gotland",
        "--charter",
        s(&draft),
    ])
    .fails(1, "not yet signed by skane");
    assert!(!gotland.exists(), "a refused init leaves no node behind");

    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let _skane = NodeProc::start(&skane, &["--aggregator", &peer]);
    let dalarna_run = NodeProc::start(&dalarna, &["--aggregator", &peer]);
    let stockholm_run = NodeProc::start(
        &stockholm,
        &["--aggregator", &peer, "--http", "127.0.0.1:0"],
    );
    let page = || http_get(stockholm_run.http.unwrap(), "/natverket").1;
    let first = publish(&skane, "Skånes metod");
    eventually(TRAVEL_S, "a founder's record at the other founders", || {
        records_by_region(&stockholm).contains_key(&first)
            && records_by_region(&dalarna).contains_key(&first)
    });

    // The newcomer is refused until two members endorse it.
    let early = publish(&jamtland, "Jämtlands metod");
    let newcomer_run = NodeProc::start(&jamtland, &["--aggregator", &peer]);
    eventually(TRAVEL_S, "the aggregator refusing the newcomer", || {
        agg.log().contains("not a member of the network")
    });
    assert!(!records_by_region(&stockholm).contains_key(&early));
    let warned = |dir: &Path, what: &str| {
        let status = spindel(&["status", "--data-dir", s(dir), "--json"]).json();
        status["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains(what))
    };
    assert!(warned(&jamtland, "not a member of the network yet"));
    // Its own endorsement counts nothing, and it may not even publish one.
    spindel(&[
        "endorse",
        "--data-dir",
        s(&jamtland),
        &jamtland_id,
        "--name",
        "jamtland",
    ])
    .fails(1, "not a member of the network");
    let one = act(&[
        "endorse",
        "--data-dir",
        s(&skane),
        &jamtland_id,
        "--name",
        "jamtland",
    ]);
    assert_eq!(
        (one["counted"].as_u64(), one["done"].as_bool()),
        (Some(1), Some(false))
    );
    // Pending, as status, the API and the page show it (once skåne's act reached stockholm).
    eventually(TRAVEL_S, "the pending endorsement at stockholm", || {
        let status = spindel(&["status", "--data-dir", s(&stockholm), "--json"]).json();
        status["membership"]["pending"][0]["endorsed_by"] == serde_json::json!(["skane"])
    });
    let text = spindel(&["status", "--data-dir", s(&stockholm)])
        .ok()
        .stdout
        .clone();
    assert!(text.contains("charter   \"SOUL\""), "{text}");
    assert!(text.contains("pending   jamtland"), "{text}");
    assert!(text.contains("endorsed by 1 of 2 (skane)"), "{text}");
    assert!(page().contains("stöd från 1 av 2 (skane)"), "{}", page());
    // Twice from one region counts once, and is refused as such.
    spindel(&[
        "endorse",
        "--data-dir",
        s(&skane),
        &jamtland_id,
        "--name",
        "jamtland",
    ])
    .fails(1, "counts once");
    eventually(TRAVEL_S, "skåne's endorsement at dalarna", || {
        heads(&dalarna).get(&skane_id) == heads(&skane).get(&skane_id)
    });
    let two = act(&[
        "endorse",
        "--data-dir",
        s(&dalarna),
        &jamtland_id,
        "--name",
        "jamtland",
    ]);
    assert_eq!(two["done"], true, "{two}");
    assert_eq!(two["name"], "jamtland");
    // An act that took effect stays: deleting it would change who belongs.
    spindel(&[
        "delete",
        "--data-dir",
        s(&dalarna),
        two["record_id"].as_str().unwrap(),
    ])
    .fails(1, "took effect");
    // A refused region waits before it asks again; restarted, it links at once.
    newcomer_run.terminate(30);
    let _jamtland = NodeProc::start(&jamtland, &["--aggregator", &peer]);
    eventually(
        TRAVEL_S,
        "the newcomer's records at every region, under its name",
        || {
            [&skane, &dalarna, &stockholm]
                .iter()
                .all(|d| records_by_region(d).get(&early).map(String::as_str) == Some("jamtland"))
        },
    );
    // The member as every view shows it: endorsed by the two, with its key.
    let (code, network) = http_get(agg.http.unwrap(), "/api/v1/network");
    assert_eq!(code, 200);
    let network: serde_json::Value = serde_json::from_str(&network).unwrap();
    let member = network["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "jamtland")
        .cloned()
        .unwrap();
    assert_eq!(member["state"], "member");
    assert_eq!(member["founder"], false);
    assert_eq!(member["keys"][0]["node"], jamtland_id.as_str());
    let mut by: Vec<String> = serde_json::from_value(member["endorsed_by"].clone()).unwrap();
    by.sort();
    assert_eq!(by, ["dalarna", "skane"]);
    assert_eq!(network["threshold"], 2);
    assert!(network["pending"].as_array().unwrap().is_empty());
    let (_, regions) = http_get(stockholm_run.http.unwrap(), "/api/v1/regions");
    let regions: serde_json::Value = serde_json::from_str(&regions).unwrap();
    assert!(
        regions["regions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["node_id"] == jamtland_id.as_str() && r["membership"]["state"] == "member"),
        "{regions}"
    );
    eventually(TRAVEL_S, "the new member on stockholm's page", || {
        page().contains("Stöd från") && page().contains(">jamtland</a>")
    });
    let later = publish(&jamtland, "Jämtlands andra metod");
    eventually(
        TRAVEL_S,
        "the new member's next record at stockholm",
        || records_by_region(&stockholm).contains_key(&later),
    );

    // Two members revoke it: its session ends and its new records reach nobody.
    let why = "Plattformen har lagts ned";
    act(&[
        "revoke",
        "--data-dir",
        s(&stockholm),
        &jamtland_id,
        "--reason",
        why,
    ]);
    eventually(TRAVEL_S, "stockholm's revocation at skåne", || {
        heads(&skane).get(&stockholm_id) == heads(&stockholm).get(&stockholm_id)
    });
    let done = act(&[
        "revoke",
        "--data-dir",
        s(&skane),
        &jamtland_id,
        "--reason",
        why,
    ]);
    assert_eq!(done["done"], true, "{done}");
    eventually(
        TRAVEL_S,
        "the aggregator ending the revoked region's session",
        || {
            agg.log()
                .contains("ended the session of a region no longer admitted")
        },
    );
    let held = heads(&agg_dir).get(&jamtland_id).copied();
    // Whether the revoked node heard of its revocation before its session ended is a race:
    // if it did, it signs nothing more and says why; if not, what it signs reaches nobody.
    let json = serde_json::json!({"title": "Efter uteslutningen", "summary": "Samverkan"});
    let run = publish_run(&jamtland, "method", &json.to_string());
    let after = match run.code {
        0 => run.json()["record_id"].as_str().unwrap().to_string(),
        _ => {
            assert!(
                run.stderr
                    .contains("no longer a member key of \"jamtland\""),
                "{run:?}"
            );
            String::new()
        }
    };
    let marker = publish(&dalarna, "Dalarnas metod efteråt");
    eventually(TRAVEL_S, "a member's later record at stockholm", || {
        records_by_region(&stockholm).contains_key(&marker)
    });
    eventually(
        TRAVEL_S,
        "the aggregator refusing the revoked region again",
        || agg.log().matches("not a member of the network").count() >= 2,
    );
    assert_eq!(heads(&agg_dir).get(&jamtland_id).copied(), held);
    assert!(!records_by_region(&stockholm).contains_key(&after));
    // The revoked node may not hear of the revocation itself (its session ends first); its
    // status says why the aggregator refuses it.
    let text = spindel(&["status", "--data-dir", s(&jamtland)])
        .ok()
        .stdout
        .clone();
    assert!(text.contains("member of the network"), "{text}");
    // What it published as a member stays.
    assert!(records_by_region(&stockholm).contains_key(&later));
    let html = page();
    assert!(html.contains("Tidigare medlemmar"), "{html}");
    assert!(html.contains("på begäran av"), "{html}");
    let status = spindel(&["status", "--data-dir", s(&stockholm)])
        .ok()
        .stdout
        .clone();
    assert!(status.contains("former    jamtland"), "{status}");
    // Its region page marks it as a former member, with its key's history.
    let (code, region) = http_get(stockholm_run.http.unwrap(), "/region/jamtland");
    assert_eq!(code, 200);
    assert!(
        region.contains("Regionen är inte längre med i nätverket"),
        "{region}"
    );
    assert!(region.contains("Regionens nycklar"), "{region}");
    assert!(region.contains("(utesluten)"), "{region}");
    assert!(region.contains(&jamtland_id), "{region}");

    // Nodes of another charter, or of none, do not sync with this network.
    dalarna_run.terminate(30);
    let older = charter(t, "older.json", 3, &founders);
    let (other_agg, other_id) = init(t, "annan", "aggregator");
    // An aggregator without a charter that admits the region anyway.
    spindel(&[
        "allow",
        "--data-dir",
        s(&other_agg),
        &dalarna_id,
        "--name",
        "dalarna",
    ])
    .ok();
    let other = NodeProc::start(&other_agg, &["--listen", "127.0.0.1:0"]);
    let other_peer = other.peer(&other_id);
    spindel(&[
        "sync",
        "--data-dir",
        s(&dalarna),
        "--aggregator",
        &other_peer,
    ])
    .fails(1, "the peer runs without a charter");
    drop(other);
    spindel(&["charter", "adopt", "--data-dir", s(&other_agg), s(&older)]).ok();
    spindel(&["charter", "adopt", "--data-dir", s(&other_agg), s(&file)])
        .fails(1, "another charter");
    let other = NodeProc::start(&other_agg, &["--listen", "127.0.0.1:0"]);
    let other_peer = other.peer(&other_id);
    spindel(&[
        "sync",
        "--data-dir",
        s(&dalarna),
        "--aggregator",
        &other_peer,
    ])
    .fails(1, "older charter");
}

/// Redaktionen under a charter: staff see the members and the pending acts; an admin endorses
/// a region through a confirmation page that says what the act does, a field's problem is
/// said beside it with what was typed kept, the act is in the audit trail, and a redaktör
/// cannot act.
#[test]
fn an_admin_endorses_a_region_from_redaktionen_after_a_confirmation_page() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (skane, skane_id) = init(t, "skane", "region");
    let (dalarna, dalarna_id) = init(t, "dalarna", "region");
    let founders = [
        (skane.as_path(), skane_id.as_str(), "skane"),
        (dalarna.as_path(), dalarna_id.as_str(), "dalarna"),
    ];
    let file = charter(t, "soul.json", 2, &founders);
    spindel(&["charter", "adopt", "--data-dir", s(&skane), s(&file)]).ok();
    let (_, gotland_id) = init(t, "gotland", "region");
    let password = "ett långt lösenord för redaktionen";
    spindel_tests::user_add(&skane, "anna", "admin", Some(password));
    spindel_tests::user_add(&skane, "bo", "redaktor", Some(password));
    let node = NodeProc::start(&skane, &["--admin", "127.0.0.1:0"]);
    let admin = node.admin.unwrap();
    let (cookie, csrf) = spindel_tests::editor_session(admin, "anna", password);
    let get =
        |path: &str| spindel_tests::http_exchange(admin, "GET", path, &[("Cookie", &cookie)], None);
    let post = |path: &str, fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        spindel_tests::http_form(admin, path, &[("Cookie", &cookie)], &all)
    };

    let (code, _, page) = get("/medlemskap");
    assert_eq!(code, 200);
    assert!(page.contains("Grundande region"), "{page}");
    assert!(
        page.contains("En region blir medlem när 2 medlemmar"),
        "{page}"
    );
    // A bad id is said beside its field, and the name typed stays.
    let (code, _, page) = post(
        "/medlemskap/stod",
        &[("node", "inte-ett-id"), ("name", "gotland")],
    );
    assert_eq!(code, 400);
    assert!(page.contains("id=\"stod-node-fel\""), "{page}");
    assert!(page.contains("aria-invalid=\"true\""), "{page}");
    assert!(page.contains("value=\"gotland\""), "{page}");
    // The confirmation page says what the act does, and publishes nothing yet.
    let fields = [("node", gotland_id.as_str()), ("name", "gotland")];
    let (code, _, page) = post("/medlemskap/stod", &fields);
    assert_eq!(code, 200);
    assert!(page.contains("Ge stöd till gotland"), "{page}");
    assert!(
        page.contains("När 2 medlemmar har gett samma nyckel stöd"),
        "{page}"
    );
    let before = heads(&skane).get(&skane_id).copied();
    let (code, _, page) = post(
        "/medlemskap/stod",
        &[fields[0], fields[1], ("confirm", "ja")],
    );
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Stödet är publicerat: 1 av 2"), "{page}");
    assert_eq!(heads(&skane).get(&skane_id).copied(), before.map(|h| h + 1));
    assert!(page.contains("<strong>gotland</strong>"), "{page}");
    // Twice is refused in Swedish, and nothing more is published.
    let (code, _, page) = post(
        "/medlemskap/stod",
        &[fields[0], fields[1], ("confirm", "ja")],
    );
    assert_eq!(code, 409);
    assert!(page.contains("har redan gett gotland sitt stöd"), "{page}");
    let (_, _, log) = get("/logg");
    assert!(log.contains("gav stöd till en region"), "{log}");
    assert!(log.contains("gotland"), "{log}");
    // The pending endorsement is withdrawn from the page; the audit trail says so.
    let (_, _, page) = get("/medlemskap");
    assert!(page.contains("Era beslut som väntar"), "{page}");
    let act_id = spindel_tests::hidden_field(&page, "record_id").unwrap();
    let (code, _, page) = post(
        "/medlemskap/dra-tillbaka",
        &[("record_id", act_id.as_str())],
    );
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("Stödet för gotland är tillbakadraget"),
        "{page}"
    );
    assert!(!page.contains("Era beslut som väntar"), "{page}");
    let (code, _, _) = post(
        "/medlemskap/dra-tillbaka",
        &[("record_id", act_id.as_str())],
    );
    assert_eq!(code, 409, "withdrawn already");
    let (_, _, log) = get("/logg");
    assert!(log.contains("drog tillbaka ett medlemsbeslut"), "{log}");
    // An erasure order: a bad address is said beside its field; a good one is confirmed first,
    // then published (one of two: pending, with a link for the others to co-sign).
    let record = publish(&skane, "En post om en person");
    let target = format!("{skane_id}/{record}");
    let (code, _, page) = post(
        "/medlemskap/radera",
        &[
            ("record", "inte/en-post"),
            ("reason", "Personen bad om det"),
        ],
    );
    assert_eq!(code, 400);
    assert!(page.contains("id=\"radera-post-fel\""), "{page}");
    assert!(page.contains("Personen bad om det"), "{page}");
    let erase = [
        ("record", target.as_str()),
        ("reason", "Personen har begärt radering"),
    ];
    let (code, _, page) = post("/medlemskap/radera", &erase);
    assert_eq!(code, 200);
    assert!(
        page.contains("Beordra att en post från skane raderas"),
        "{page}"
    );
    let (code, _, page) = post(
        "/medlemskap/radera",
        &[erase[0], erase[1], ("confirm", "ja")],
    );
    assert_eq!(code, 200, "{page}");
    // Skåne's own record, ordered by its own live key: hidden at once everywhere, its bytes
    // erased for good once the order settled.
    assert!(page.contains("posten döljs nu på varje nod"), "{page}");
    assert!(page.contains("raderar dess innehåll för gott"), "{page}");
    assert!(!records_by_region(&skane).contains_key(&record));
    assert!(page.contains("Personen har begärt radering"), "{page}");
    let (_, _, log) = get("/logg");
    assert!(log.contains("beordrade att en post raderas"), "{log}");
    // A redaktör sees the page, but may not act.
    let (bo, bo_csrf) = spindel_tests::editor_session(admin, "bo", password);
    let (code, _, page) =
        spindel_tests::http_exchange(admin, "GET", "/medlemskap", &[("Cookie", &bo)], None);
    assert_eq!(code, 200);
    assert!(page.contains("Bara en administratör"), "{page}");
    let (code, _, _) = spindel_tests::http_form(
        admin,
        "/medlemskap/uteslut",
        &[("Cookie", &bo)],
        &[
            ("csrf", &bo_csrf),
            ("node", &dalarna_id),
            ("reason", "Prov"),
            ("confirm", "ja"),
        ],
    );
    assert_eq!(code, 403);
    // Anna's session ends while she writes a revocation (the node was down past the idle
    // time): what she typed is kept, and comes back in the form after she logs in again.
    assert_eq!(node.terminate(10), 0);
    let path = skane.join("sessions.json");
    let mut sessions: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for s in sessions["sessions"].as_array_mut().unwrap() {
        let ms = s["last_seen_ms"].as_u64().unwrap() - 31 * 60 * 1000;
        s["last_seen_ms"] = ms.into();
        s["started_ms"] = ms.into();
    }
    std::fs::write(&path, sessions.to_string()).unwrap();
    let node = NodeProc::start(&skane, &["--admin", "127.0.0.1:0"]);
    let admin = node.admin.unwrap();
    let reason = "Plattformen har inte svarat på ett år";
    let (code, head, _) = spindel_tests::http_form(
        admin,
        "/medlemskap/uteslut",
        &[("Cookie", &cookie)],
        &[("csrf", &csrf), ("node", &dalarna_id), ("reason", reason)],
    );
    assert_eq!(code, 303);
    assert!(head.contains("/logga-in?sparat=1"), "{head}");
    let (again, _) = spindel_tests::editor_session(admin, "anna", password);
    let (code, _, page) =
        spindel_tests::http_exchange(admin, "GET", "/utkast", &[("Cookie", &again)], None);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(reason) && page.contains(&dalarna_id),
        "{page}"
    );
    assert!(page.contains("inget är publicerat ännu"), "{page}");
}

/// A region whose key is lost is given a new one by two members' endorsements with
/// `--replaces`: the new node, set up from nothing, catches up from the aggregate and holds the
/// region's earlier records under its name, publishes again under it, and the old key is
/// refused from then on.
#[test]
fn a_lost_key_is_replaced_by_endorsement_and_the_new_node_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Founded {
        dirs: [skane, dalarna, stockholm],
        ids: [skane_id, dalarna_id, _],
        file,
        agg_dir,
        agg_id,
    } = founded(t);
    let agg = NodeProc::start(&agg_dir, &["--listen", "127.0.0.1:0"]);
    let peer = agg.peer(&agg_id);
    let old = NodeProc::start(&skane, &["--aggregator", &peer]);
    let _dalarna = NodeProc::start(&dalarna, &["--aggregator", &peer]);
    let _stockholm = NodeProc::start(&stockholm, &["--aggregator", &peer]);
    let before = publish(&skane, "Skånes metod före");
    eventually(TRAVEL_S, "skåne's record at dalarna", || {
        records_by_region(&dalarna).contains_key(&before)
    });
    // The server and its key are gone.
    old.kill9();
    let renewed = t.join("skane-ny");
    let new_id = act(&[
        "init",
        "--data-dir",
        s(&renewed),
        "--name",
        "skane",
        "--charter",
        s(&file),
    ])["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The new key cannot take another name than the region's.
    spindel(&[
        "endorse",
        "--data-dir",
        s(&dalarna),
        &new_id,
        "--name",
        "gotland",
        "--replaces",
        &skane_id,
    ])
    .fails(1, "keeps that name");
    let one = act(&[
        "endorse",
        "--data-dir",
        s(&dalarna),
        &new_id,
        "--name",
        "skane",
        "--replaces",
        &skane_id,
    ]);
    assert_eq!(one["done"], false);
    eventually(TRAVEL_S, "dalarna's endorsement at stockholm", || {
        heads(&stockholm).get(&dalarna_id) == heads(&dalarna).get(&dalarna_id)
    });
    let two = act(&[
        "endorse",
        "--data-dir",
        s(&stockholm),
        &new_id,
        "--name",
        "skane",
        "--replaces",
        &skane_id,
    ]);
    assert_eq!(two["done"], true, "{two}");
    // The new node catches up from the aggregate: the region's earlier record, under its name.
    let _renewed = NodeProc::start(&renewed, &["--aggregator", &peer]);
    eventually(
        TRAVEL_S,
        "the region's earlier record at its new node",
        || records_by_region(&renewed).get(&before).map(String::as_str) == Some("skane"),
    );
    let after = publish(&renewed, "Skånes metod efter");
    eventually(
        TRAVEL_S,
        "the new key's record at dalarna under the region's name",
        || records_by_region(&dalarna).get(&after).map(String::as_str) == Some("skane"),
    );
    assert_eq!(
        records_by_region(&dalarna).get(&before).map(String::as_str),
        Some("skane"),
        "the earlier record stays the region's"
    );
    // The old key, started again from its copy, is refused, and what it signs reaches nobody.
    let stale = publish(&skane, "Från den gamla nyckeln");
    let old = NodeProc::start(&skane, &["--aggregator", &peer]);
    eventually(TRAVEL_S, "the aggregator refusing the old key", || {
        agg.log().contains(&format!("peer={skane_id}"))
            && agg.log().contains("not a member of the network")
    });
    drop(old);
    let marker = publish(&stockholm, "Stockholms metod efteråt");
    eventually(TRAVEL_S, "a member's later record at dalarna", || {
        records_by_region(&dalarna).contains_key(&marker)
    });
    assert!(!records_by_region(&dalarna).contains_key(&stale));
    let status = spindel(&["status", "--data-dir", s(&dalarna), "--json"]).json();
    let region = status["membership"]["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "skane")
        .cloned()
        .unwrap();
    assert_eq!(region["node"], new_id.as_str());
    assert_eq!(region["keys"][0]["ended"], "replaced");
    assert_eq!(region["keys"][1]["node"], new_id.as_str());
}

/// A region frozen by a fork (an old copy of its node signed offline) is given a new key by two
/// members' endorsements: its earlier records stay under its name, and it publishes again
/// under the new key, which every node takes.
#[test]
fn a_region_frozen_by_a_fork_is_replaced_by_endorsement_and_publishes_again() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Founded {
        dirs: [skane, dalarna, stockholm],
        ids: [skane_id, _, _],
        file,
        agg_dir,
        agg_id,
    } = founded(t);
    let agg = NodeProc::start(&agg_dir, &["--listen", "127.0.0.1:0"]);
    let peer = agg.peer(&agg_id);
    let _dalarna = NodeProc::start(&dalarna, &["--aggregator", &peer]);
    let _stockholm = NodeProc::start(&stockholm, &["--aggregator", &peer]);
    let node = NodeProc::start(&skane, &["--aggregator", &peer]);
    let before = publish(&skane, "Före kopian");
    assert_eq!(node.terminate(10), 0);
    let old = t.join("skane-kopia");
    spindel_tests::copy_dir(&skane, &old);
    let node = NodeProc::start(&skane, &["--aggregator", &peer]);
    publish(&skane, "Efter kopian");
    let seq = heads(&skane)[&skane_id];
    eventually(TRAVEL_S, "skåne's log at dalarna", || {
        heads(&dalarna).get(&skane_id) == Some(&seq)
    });
    assert_eq!(node.terminate(10), 0);
    // The old copy signs the same seq again, offline, then goes online: a fork.
    std::fs::remove_dir_all(&skane).unwrap();
    std::fs::rename(&old, &skane).unwrap();
    publish(&skane, "Gaffel");
    let forked = NodeProc::start(&skane, &["--aggregator", &peer]);
    eventually(TRAVEL_S, "dalarna to name the fork", || {
        let status = spindel(&["status", "--data-dir", s(&dalarna), "--json"]).json();
        status["forks"].as_array().is_some_and(|f| !f.is_empty())
    });
    drop(forked);
    // A new key for the region, endorsed by two members.
    let renewed = t.join("skane-ny");
    let new_id = act(&[
        "init",
        "--data-dir",
        s(&renewed),
        "--name",
        "skane",
        "--charter",
        s(&file),
    ])["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (dir, other) in [(&dalarna, &stockholm), (&stockholm, &dalarna)] {
        let done = act(&[
            "endorse",
            "--data-dir",
            s(dir),
            &new_id,
            "--name",
            "skane",
            "--replaces",
            &skane_id,
        ]);
        if done["done"] == false {
            let (author, by) = (dir, other);
            eventually(
                TRAVEL_S,
                "the first endorsement at the second member",
                || {
                    let id = spindel(&["id", "--data-dir", s(author)])
                        .ok()
                        .stdout
                        .trim()
                        .to_string();
                    heads(by).get(&id) == heads(author).get(&id)
                },
            );
        }
    }
    let _renewed = NodeProc::start(&renewed, &["--aggregator", &peer]);
    eventually(
        TRAVEL_S,
        "the region's earlier record at its new node",
        || records_by_region(&renewed).get(&before).map(String::as_str) == Some("skane"),
    );
    let again = publish(&renewed, "Skåne publicerar igen");
    eventually(
        TRAVEL_S,
        "the new key's record at dalarna and stockholm",
        || {
            [&dalarna, &stockholm]
                .iter()
                .all(|d| records_by_region(d).get(&again).map(String::as_str) == Some("skane"))
        },
    );
    assert_eq!(
        records_by_region(&dalarna).get(&before).map(String::as_str),
        Some("skane"),
        "the frozen key's earlier record stays the region's"
    );
}

/// A region rotates its key while its node runs: the node makes the new key, signs the
/// rotation with the old one, switches once the aggregator holds it, and publishes on under
/// the region's name; every node follows. The old key's file is kept 0600 and never used: a
/// copy of the old node, restored from a backup taken before, is refused by the aggregator and
/// what it would sign reaches no one.
#[test]
fn a_region_rotates_its_key_and_publishes_on_under_its_name() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Founded {
        dirs: [skane, dalarna, stockholm],
        ids: [skane_id, _, _],
        agg_dir,
        agg_id,
        ..
    } = founded(t);
    let agg = NodeProc::start(&agg_dir, &["--listen", "127.0.0.1:0"]);
    let peer = agg.peer(&agg_id);
    let node = NodeProc::start(&skane, &["--aggregator", &peer]);
    let dalarna_run = NodeProc::start(&dalarna, &["--aggregator", &peer, "--http", "127.0.0.1:0"]);
    let _stockholm = NodeProc::start(&stockholm, &["--aggregator", &peer]);
    let before = publish(&skane, "Skånes metod före bytet");
    eventually(TRAVEL_S, "skåne's record at dalarna", || {
        records_by_region(&dalarna).contains_key(&before)
    });
    let backup = t.join("skane.backup");
    spindel(&["backup", "--data-dir", s(&skane), "--to", s(&backup)]).ok();
    // An aggregator's key is not rotated: its regions pin it.
    spindel(&["rotate-key", "--data-dir", s(&agg_dir)]).fails(1, "aggregator's key is not rotated");

    let rotated = act(&["rotate-key", "--data-dir", s(&skane)]);
    assert_eq!(rotated["switched"], true, "{rotated}");
    assert_eq!(rotated["from"], skane_id.as_str());
    assert_eq!(rotated["region"], "skane");
    let new_id = rotated["to"].as_str().unwrap().to_string();
    let retired = PathBuf::from(rotated["retired"].as_str().unwrap());
    assert!(
        retired
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("node.key.retired-")
    );
    assert_eq!(
        std::fs::metadata(&retired).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!skane.join("node.key.next").exists());
    assert_eq!(
        act(&["id", "--data-dir", s(&skane)])["node_id"],
        new_id.as_str(),
        "node.key is the new key"
    );
    eventually(TRAVEL_S, "the node running under the new key", || {
        node.log().contains("starting again under the new key")
            && node.log().contains(&format!("node {new_id} running"))
    });
    let after = publish(&skane, "Skånes metod efter bytet");
    eventually(
        TRAVEL_S,
        "the new key's record at dalarna as skåne's",
        || records_by_region(&dalarna).get(&after).map(String::as_str) == Some("skane"),
    );
    assert_eq!(
        records_by_region(&dalarna).get(&before).map(String::as_str),
        Some("skane"),
        "the earlier record stays the region's"
    );
    for dir in [&dalarna, &stockholm, &agg_dir] {
        let status = spindel(&["status", "--data-dir", s(dir), "--json"]).json();
        let region = status["membership"]["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "skane")
            .cloned()
            .unwrap();
        assert_eq!(region["node"], new_id.as_str(), "{}", dir.display());
        assert_eq!(region["state"], "member");
        assert_eq!(region["keys"][0]["ended"], "rotated");
        assert_eq!(region["keys"][1]["node"], new_id.as_str());
    }

    // What the aggregators acknowledged of the old key is not held against the new one.
    assert!(!node.log().contains("rollback"), "{}", node.log());
    assert!(!node.log().contains("ERROR"), "{}", node.log());
    // The old key's records stay as they are: the new key cannot edit or delete them.
    spindel(&["delete", "--data-dir", s(&skane), &before]).fails(1, "earlier key");
    // One region in the API, under its live key, its records counted over both keys.
    let (_, regions) = http_get(dalarna_run.http.unwrap(), "/api/v1/regions");
    let regions: serde_json::Value = serde_json::from_str(&regions).unwrap();
    let skane_rows: Vec<&serde_json::Value> = regions["regions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "skane")
        .collect();
    assert_eq!(skane_rows.len(), 1, "{regions}");
    assert_eq!(skane_rows[0]["node_id"], new_id.as_str());
    assert_eq!(skane_rows[0]["admitted"], true);
    assert_eq!(skane_rows[0]["records"], 3, "the profile and both records");
    // The region page shows both records and the key history.
    let (code, page) = http_get(dalarna_run.http.unwrap(), "/region/skane");
    assert_eq!(code, 200);
    assert!(page.contains("Skånes metod före bytet") && page.contains("Skånes metod efter bytet"));
    assert!(page.contains("regionen bytte nyckel"), "{page}");
    assert!(page.contains(&new_id));

    // The old node, restored from the backup, is refused by the aggregator: it never signs.
    let old = t.join("skane-gammal");
    spindel(&["restore", "--from", s(&backup), "--data-dir", s(&old)]).ok();
    let old_node = NodeProc::start(&old, &["--aggregator", &peer]);
    eventually(TRAVEL_S, "the aggregator refusing the old key", || {
        agg.log().contains(&format!("peer={skane_id}"))
            && agg
                .log()
                .contains("this key handed its region over to a new key")
    });
    // It cannot catch up, so it signs nothing, and says so at once (not after the 30 s a
    // restored node waits to catch up).
    let refused = publish_run(
        &old,
        "method",
        &serde_json::json!({"title": "Från den gamla nyckeln", "summary": "s"}).to_string(),
    );
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains("its aggregator refuses it")
            && refused.stderr.contains("handed its region over"),
        "{refused:?}"
    );
    drop(old_node);
}

/// A person asks that a record about them be removed, and the region that published it has
/// lost its key: two members co-sign an erasure order, and at the threshold every node hides
/// the record at once and erases its bytes once the order settled (here after a second,
/// `erasure_settle_secs = 1`), while the order and its reasons stay on /natverket. One order
/// alone, and an order withdrawn before the second, change nothing.
#[test]
fn members_order_a_record_erased_when_its_region_cannot_act() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Founded {
        dirs: [skane, dalarna, stockholm],
        ids: [skane_id, _, _],
        agg_dir,
        agg_id,
        ..
    } = founded(t);
    for dir in [&dalarna, &stockholm, &agg_dir] {
        std::fs::write(dir.join("spindel.toml"), "erasure_settle_secs = 1\n").unwrap();
    }
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let skane_run = NodeProc::start(&skane, &["--aggregator", &peer]);
    let _dalarna = NodeProc::start(&dalarna, &["--aggregator", &peer]);
    let stockholm_run = NodeProc::start(
        &stockholm,
        &["--aggregator", &peer, "--http", "127.0.0.1:0"],
    );
    let canary = "Zebulonssonska";
    let record = publish(&skane, &format!("Metod med {canary} gården"));
    let kept = publish(&skane, "Skånes andra metod");
    eventually(TRAVEL_S, "skåne's records at stockholm", || {
        let held = records_by_region(&stockholm);
        held.contains_key(&record) && held.contains_key(&kept)
    });
    for dir in [&dalarna, &stockholm, &agg_dir] {
        assert!(
            !files_containing(dir, canary).is_empty(),
            "held on disk first"
        );
    }
    // Skåne's server and key are gone.
    skane_run.kill9();
    let target = format!("{skane_id}/{record}");
    let reason = "Personen i posten har begärt radering; Skåne kan inte längre publicera";
    spindel(&[
        "erase",
        "--data-dir",
        s(&dalarna),
        &skane_id,
        "--reason",
        reason,
    ])
    .fails(1, "AUTHOR/RECORD_ID");
    spindel(&[
        "erase",
        "--data-dir",
        s(&dalarna),
        &format!("{skane_id}/{}", "0".repeat(32)),
        "--reason",
        reason,
    ])
    .fails(1, "not held here");
    // An order withdrawn before the threshold counts nothing.
    let first = act(&[
        "erase",
        "--data-dir",
        s(&dalarna),
        &target,
        "--reason",
        reason,
    ]);
    assert_eq!(first["done"], false, "{first}");
    assert_eq!(first["counted"], 1);
    spindel(&[
        "erase",
        "--data-dir",
        s(&dalarna),
        &target,
        "--reason",
        reason,
    ])
    .fails(1, "counts once");
    spindel(&[
        "delete",
        "--data-dir",
        s(&dalarna),
        first["record_id"].as_str().unwrap(),
    ])
    .ok();
    let again = act(&[
        "erase",
        "--data-dir",
        s(&dalarna),
        &target,
        "--reason",
        reason,
    ]);
    assert_eq!(again["counted"], 1, "{again}");
    let dalarna_id = act(&["id", "--data-dir", s(&dalarna)])["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(TRAVEL_S, "dalarna's order at stockholm", || {
        heads(&stockholm).get(&dalarna_id) == heads(&dalarna).get(&dalarna_id)
    });
    assert!(
        records_by_region(&stockholm).contains_key(&record),
        "one order of two erases nothing"
    );
    let second = act(&[
        "erase",
        "--data-dir",
        s(&stockholm),
        &target,
        "--reason",
        reason,
    ]);
    assert_eq!(second["done"], true, "{second}");
    for dir in [&dalarna, &stockholm, &agg_dir] {
        eventually(TRAVEL_S, "the record erased everywhere", || {
            !records_by_region(dir).contains_key(&record)
        });
        assert!(
            records_by_region(dir).contains_key(&kept),
            "only the ordered record goes"
        );
    }
    for dir in [&dalarna, &stockholm, &agg_dir] {
        eventually(60, "the record's bytes off the disk", || {
            files_containing(dir, canary).is_empty()
        });
    }
    // The order and its reason stay visible, on the page and in the API.
    let (code, page) = http_get(stockholm_run.http.unwrap(), "/natverket");
    assert_eq!(code, 200);
    assert!(page.contains(reason), "{page}");
    let (_, network) = http_get(agg.http.unwrap(), "/api/v1/network");
    let network: serde_json::Value = serde_json::from_str(&network).unwrap();
    let order = &network["erasures"][0];
    assert_eq!(order["state"], "erased", "{network}");
    assert_eq!(order["record"], record.as_str());
    assert_eq!(order["region"], "skane");
    assert_eq!(order["reasons"].as_array().unwrap().len(), 2);
    assert_eq!(network["erasures_total"], 1);
    assert_eq!(network["erasures_pages"], 1);
    let (code, body) = http_get(agg.http.unwrap(), "/api/v1/network?erasures_page=0");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("erasures_page"), "{body}");
    let (code, _) = http_get(agg.http.unwrap(), "/api/v1/network?erasures_page=2");
    assert_eq!(code, 200, "a page past the last is empty");
    let (code, page) = http_get(stockholm_run.http.unwrap(), "/natverket?raderingar=2");
    assert_eq!(code, 200);
    assert!(page.contains("Till första sidan"), "{page}");
    let (code, _) = http_get(stockholm_run.http.unwrap(), "/natverket?raderingar=noll");
    assert_eq!(code, 400);
    // The aggregator cannot issue one.
    spindel(&[
        "erase",
        "--data-dir",
        s(&agg_dir),
        &format!("{skane_id}/{kept}"),
        "--reason",
        reason,
    ])
    .fails(1, "not a member");
}

/// A rotation signed on a stopped node and carried to the aggregator by a one-shot `spindel
/// sync` (the old key's last session): when the node starts, the aggregator refuses the old
/// key as rotated, and that refusal, the only one that counts, makes the node switch to the
/// new key and publish on under the region's name.
#[test]
fn a_node_started_after_its_rotation_reached_the_aggregator_switches_on_the_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Founded {
        dirs: [skane, dalarna, _],
        agg_dir,
        agg_id,
        ..
    } = founded(t);
    let agg = NodeProc::start(&agg_dir, &["--listen", "127.0.0.1:0"]);
    let peer = agg.peer(&agg_id);
    let _dalarna = NodeProc::start(&dalarna, &["--aggregator", &peer]);
    let rotated = act(&["rotate-key", "--data-dir", s(&skane)]);
    assert_eq!(rotated["switched"], false, "{rotated}");
    let new_id = rotated["to"].as_str().unwrap().to_string();
    // Stopped and handing over: it signs nothing.
    let refused = publish_run(
        &skane,
        "method",
        &serde_json::json!({"title": "Under bytet", "summary": "s"}).to_string(),
    );
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains("handed the region over"),
        "{refused:?}"
    );
    spindel(&["sync", "--data-dir", s(&skane), "--aggregator", &peer]).ok();
    let node = NodeProc::start(&skane, &["--aggregator", &peer]);
    eventually(TRAVEL_S, "the node running under the new key", || {
        node.log().contains(&format!("node {new_id} running"))
    });
    assert!(
        node.log()
            .contains("the aggregator holds the key rotation and no longer takes the old key"),
        "{}",
        node.log()
    );
    assert!(!node.log().contains("ERROR"), "{}", node.log());
    let after = publish(&skane, "Skånes metod efter bytet");
    eventually(
        TRAVEL_S,
        "the new key's record at dalarna as skåne's",
        || records_by_region(&dalarna).get(&after).map(String::as_str) == Some("skane"),
    );
}
