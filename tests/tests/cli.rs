//! The real `spindel` binary, every local command and every bad input (docs/interface.md, the
//! command line): JSON shapes, exit codes (0 / 1 / 2), one-line errors, and that a failed
//! command writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use spindel_tests::{
    allow, import_file, import_file_json, init, publish, publish_version, s, spindel, spindel_env,
    spindel_stdin,
};

const INNOVATION: &str = r#"{"title":"Språkcafé i föreningen","summary":"Nyanlända och föreningsaktiva möts varje vecka","tags":["integration","Språk"],"organisations":["Coompanion Skåne"],"sroi":{"ratio":3.4,"year":2012}}"#;
const METHOD: &str = r#"{"title":"Lokal överenskommelse","summary":"Så skrivs en överenskommelse mellan kommun och idéburen sektor","tags":["samverkan"]}"#;
const RESEARCHER: &str = r#"{"name":"Anna Forskare","affiliation":"Lunds universitet","fields":["social ekonomi"],"email":"anna@example.se","consent":{"given":true,"date":"2026-03-12"}}"#;

fn region(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    let run = spindel(&["init", "--data-dir", s(&dir), "--name", name, "--json"]);
    let v = run.json();
    assert_eq!(v["name"], name);
    assert_eq!(v["role"], "region");
    assert_eq!(v["node_id"].as_str().unwrap().len(), 64);
    dir
}

fn query(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["query", "--data-dir", s(dir), "--json"];
    args.extend_from_slice(extra);
    spindel(&args).json()
}

fn titles(page: &serde_json::Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let d = &r["data"];
            d.get("title")
                .or(d.get("name"))
                .or(d.get("display_name"))
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn status(dir: &Path) -> serde_json::Value {
    spindel(&["status", "--data-dir", s(dir), "--json"]).json()
}

#[test]
fn init_makes_a_private_key_and_signed_profile_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = region(tmp.path(), "skane");
    let mode = std::fs::metadata(dir.join("node.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "key file mode");
    let key_before = std::fs::read(dir.join("node.key")).unwrap();

    // The first entry is the signed profile; it shows in queries with kind profile.
    let page = query(&dir, &["--kind", "profile"]);
    assert_eq!(page["records"][0]["data"]["name"], "skane");
    assert_eq!(page["records"][0]["seq"], 1);

    // init never overwrites a node.
    spindel(&["init", "--data-dir", s(&dir), "--name", "other"])
        .fails(1, "already holds a spindel node");
    assert_eq!(std::fs::read(dir.join("node.key")).unwrap(), key_before);

    // id: plain is the hex alone; --json has the keys of docs/interface.md.
    let plain = spindel(&["id", "--data-dir", s(&dir)]);
    assert_eq!(plain.code, 0);
    let id = spindel(&["id", "--data-dir", s(&dir), "--json"]).json();
    assert_eq!(plain.stdout.trim(), id["node_id"].as_str().unwrap());
    assert_eq!(id["name"], "skane");

    // Display name and aggregator role.
    let named = tmp.path().join("dalarna");
    spindel(&[
        "init",
        "--data-dir",
        s(&named),
        "--name",
        "dalarna",
        "--display-name",
        "Social ekonomi Dalarna",
    ])
    .json_or_code0();
    assert_eq!(
        query(&named, &[])["records"][0]["data"]["display_name"],
        "Social ekonomi Dalarna"
    );
    let agg = tmp.path().join("nationell");
    let v = spindel(&[
        "init",
        "--data-dir",
        s(&agg),
        "--name",
        "nationell",
        "--role",
        "aggregator",
        "--json",
    ])
    .json();
    assert_eq!(v["role"], "aggregator");
    assert_eq!(
        query(&agg, &[])["records"].as_array().unwrap().len(),
        0,
        "an aggregator authors nothing"
    );
}

trait Code0 {
    fn json_or_code0(&self);
}
impl Code0 for spindel_tests::Run {
    fn json_or_code0(&self) {
        assert_eq!(self.code, 0, "{self:?}");
    }
}

#[test]
fn init_bad_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x");
    spindel(&["init", "--data-dir", s(&dir), "--name", "Skåne"]).fails(1, "invalid name");
    spindel(&["init", "--data-dir", s(&dir), "--name", &"a".repeat(33)]).fails(1, "invalid name");
    assert!(!dir.exists(), "a failed init leaves nothing behind");
    spindel(&["init", "--data-dir", s(&dir)]).fails(2, "--name");
    spindel(&[
        "init",
        "--data-dir",
        s(&dir),
        "--name",
        "x",
        "--role",
        "king",
    ])
    .fails(2, "king");
    spindel(&["init", "--name", "x"]).fails(2, "--data-dir");
    // An unwritable place.
    spindel(&["init", "--data-dir", "/proc/spindel-test", "--name", "x"])
        .fails(1, "/proc/spindel-test");
}

/// A node's directory is its owner's alone, also when it existed before (made with umask 022),
/// and a non-empty directory that is not a node is refused.
#[test]
fn init_makes_the_directory_private_and_refuses_a_busy_one() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("skane");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    spindel(&["init", "--data-dir", s(&dir), "--name", "skane"]).ok();
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in ["config.toml", "node.key"] {
        assert_eq!(
            std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o077,
            0,
            "{f} is readable by others"
        );
    }
    let busy = tmp.path().join("upptagen");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("anteckning.txt"), "min fil").unwrap();
    spindel(&["init", "--data-dir", s(&busy), "--name", "x"]).fails(1, "is not empty");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
}

#[test]
fn publish_edit_delete_and_find_by_kind_tag_and_swedish_words() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = region(tmp.path(), "skane");
    let inn = publish(&dir, "innovation", INNOVATION);
    assert_eq!(inn["seq"], 2);
    assert_eq!(inn["record_id"].as_str().unwrap().len(), 32);
    assert_eq!(inn["entry"].as_str().unwrap().len(), 64);
    // From a file as well as stdin.
    let file = tmp.path().join("method.json");
    std::fs::write(&file, METHOD).unwrap();
    let m = spindel(&[
        "publish",
        "--data-dir",
        s(&dir),
        "--kind",
        "method",
        "--file",
        s(&file),
        "--json",
    ])
    .json();
    assert_eq!(m["seq"], 3);
    let r = publish(&dir, "researcher", RESEARCHER);
    assert_eq!(r["seq"], 4);

    // Newest first; every record has the keys of docs/interface.md.
    let all = query(&dir, &[]);
    assert_eq!(
        titles(&all),
        [
            "Anna Forskare",
            "Lokal överenskommelse",
            "Språkcafé i föreningen",
            "skane"
        ]
    );
    let first = &all["records"][0];
    for key in [
        "record_id",
        "kind",
        "region",
        "author",
        "seq",
        "updated_at",
        "data",
    ] {
        assert!(first.get(key).is_some(), "record lacks {key}: {first}");
    }
    assert_eq!(first["region"], "skane");
    assert!(first["updated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(all["next_cursor"], serde_json::Value::Null);

    // Filters, case-blind tags, Swedish stemming (an inflected form finds the record).
    for (args, title) in [
        (&["--kind", "method"][..], "Lokal överenskommelse"),
        (&["--tag", "språk"][..], "Språkcafé i föreningen"),
        (&["--tag", "SPRÅK"][..], "Språkcafé i föreningen"),
        (&["--tag", "social ekonomi"][..], "Anna Forskare"),
        (
            &["--region", "skane", "--kind", "innovation"][..],
            "Språkcafé i föreningen",
        ),
        (&["--text", "föreningarna"][..], "Språkcafé i föreningen"),
        (
            &["--text", "överenskommelsen kommunerna"][..],
            "Lokal överenskommelse",
        ),
        (&["--text", "Lunds universitet"][..], "Anna Forskare"),
    ] {
        assert_eq!(titles(&query(&dir, args)), [title], "{args:?}");
    }
    spindel(&["query", "--data-dir", s(&dir), "--region", "dalarna"])
        .fails(1, "unknown region \"dalarna\"");
    assert!(titles(&query(&dir, &["--text", "fotboll"])).is_empty());

    // Edit: a new version keeps the record id and replaces the content everywhere.
    let rid = inn["record_id"].as_str().unwrap();
    let edited = publish_version(
        &dir,
        "innovation",
        rid,
        r#"{"title":"Språkcafé och läxhjälp","summary":"Nu även läxhjälp"}"#,
    )
    .json();
    assert_eq!(edited["record_id"], rid);
    assert_eq!(edited["seq"], 5);
    assert!(
        titles(&query(&dir, &["--text", "föreningarna"])).is_empty(),
        "old text is gone from the index"
    );
    assert_eq!(
        titles(&query(&dir, &["--text", "läxhjälpen"])),
        ["Språkcafé och läxhjälp"]
    );

    // Delete: gone from queries, and it can never come back.
    let d = spindel(&["delete", "--data-dir", s(&dir), rid, "--json"]).json();
    assert_eq!(d["record_id"], rid);
    assert_eq!(d["seq"], 6);
    assert!(titles(&query(&dir, &["--kind", "innovation"])).is_empty());
    assert!(titles(&query(&dir, &["--text", "läxhjälp"])).is_empty());
    publish_version(&dir, "innovation", rid, INNOVATION).fails(1, "is deleted");
    spindel(&["delete", "--data-dir", s(&dir), rid]).fails(1, "is deleted");

    let st = status(&dir);
    assert_eq!(st["records"], 3);
    assert_eq!(st["role"], "region");
    assert_eq!(st["heads"][st["node_id"].as_str().unwrap()], 6);
    assert!(st["peers"].as_array().unwrap().is_empty());

    // Human-readable output exists for every command that prints data.
    let table = spindel(&["query", "--data-dir", s(&dir)]);
    assert!(
        table.stdout.contains("Lokal överenskommelse") && table.stdout.contains("KIND"),
        "{table:?}"
    );
    let text = spindel(&["status", "--data-dir", s(&dir)]);
    assert!(text.stdout.contains("records   3"), "{text:?}");
}

#[test]
fn every_bad_record_is_refused_clearly_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = region(tmp.path(), "skane");
    let before = status(&dir);
    let pub_ = |kind: &str, json: &str| {
        spindel_stdin(
            &[
                "publish",
                "--data-dir",
                s(&dir),
                "--kind",
                kind,
                "--file",
                "-",
            ],
            json,
        )
    };

    pub_(
        "researcher",
        r#"{"name":"A","affiliation":"B","fields":["c"]}"#,
    )
    .fails(1, "researcher record needs consent");
    pub_(
        "researcher",
        r#"{"name":"A","affiliation":"B","fields":["c"],"consent":false}"#,
    )
    .fails(1, "researcher record needs consent");
    pub_("method", r#"{"title":"x","summary":"y""#).fails(1, "invalid method record");
    pub_("method", "").fails(1, "invalid method record");
    pub_("method", r#"{"title":"x","summary":"y","colour":"röd"}"#)
        .fails(1, "unknown field `colour`");
    pub_(
        "method",
        &format!(r#"{{"title":"{}","summary":"y"}}"#, "ö".repeat(201)),
    )
    .fails(1, "title must be 1-200 characters");
    pub_("method", r#"{"summary":"y"}"#).fails(1, "missing field `title`");
    pub_(
        "innovation",
        r#"{"title":"t","summary":"s","links":["ftp://x.se"]}"#,
    )
    .fails(1, "http or https");
    pub_(
        "innovation",
        r#"{"title":"t","summary":"s","sroi":{"ratio":-1}}"#,
    )
    .fails(1, "sroi.ratio");
    pub_(
        "researcher",
        r#"{"name":"A","affiliation":"B","fields":["c"],"email":"inte-en-adress","consent":{"given":true,"date":"2026-03-12"}}"#,
    )
    .fails(1, "email");
    let huge = format!(
        r#"{{"title":"t","summary":"s","description":"{}"}}"#,
        "x".repeat(20_001)
    );
    pub_("innovation", &huge).fails(1, "description must be");
    pub_("profile", r#"{"display_name":"X","name":"annan"}"#).fails(1, "profile");
    pub_("poem", "{}").fails(2, "unknown kind");
    spindel(&[
        "publish",
        "--data-dir",
        s(&dir),
        "--kind",
        "method",
        "--file",
        "/nonexistent.json",
    ])
    .fails(1, "/nonexistent.json");
    let bin = tmp.path().join("bin.json");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    spindel(&[
        "publish",
        "--data-dir",
        s(&dir),
        "--kind",
        "method",
        "--file",
        s(&bin),
    ])
    .fails(1, "not UTF-8");
    let big = tmp.path().join("big.json");
    std::fs::write(&big, vec![b' '; 2 * 1024 * 1024]).unwrap();
    spindel(&[
        "publish",
        "--data-dir",
        s(&dir),
        "--kind",
        "method",
        "--file",
        s(&big),
    ])
    .fails(1, "over the limit");

    // --id: malformed, unknown, wrong kind.
    spindel_stdin(
        &[
            "publish",
            "--data-dir",
            s(&dir),
            "--kind",
            "method",
            "--id",
            "xyz",
            "--file",
            "-",
        ],
        METHOD,
    )
    .fails(2, "record id");
    let unknown = "0".repeat(32);
    publish_version(&dir, "method", &unknown, METHOD).fails(1, "does not exist");
    let after = status(&dir);
    assert_eq!(
        before["heads"], after["heads"],
        "failed publishes wrote nothing"
    );
    assert_eq!(before["generation"], after["generation"]);

    let m = publish(&dir, "method", METHOD);
    let rid = m["record_id"].as_str().unwrap();
    publish_version(&dir, "innovation", rid, INNOVATION)
        .fails(1, "is of kind method, not innovation");

    // delete: unknown, malformed, the profile.
    spindel(&["delete", "--data-dir", s(&dir), &unknown]).fails(1, "does not exist");
    spindel(&["delete", "--data-dir", s(&dir), "nope"]).fails(2, "record id");
    let profile = query(&dir, &["--kind", "profile"]);
    let pid = profile["records"][0]["record_id"].as_str().unwrap();
    spindel(&["delete", "--data-dir", s(&dir), pid]).fails(1, "profile");

    // query: bad limit, bad cursor.
    spindel(&["query", "--data-dir", s(&dir), "--limit", "0"])
        .fails(1, "limit must be between 1 and 1000");
    spindel(&["query", "--data-dir", s(&dir), "--limit", "5000"]).fails(1, "limit");
    spindel(&["query", "--data-dir", s(&dir), "--limit", "many"]).fails(2, "many");
    spindel(&["query", "--data-dir", s(&dir), "--cursor", "abc"]).fails(1, "invalid cursor");
}

#[test]
fn aggregator_and_missing_or_damaged_nodes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("none");
    for cmd in ["id", "status", "query"] {
        spindel(&[cmd, "--data-dir", s(&missing)]).fails(1, "no spindel node");
    }
    spindel(&["delete", "--data-dir", s(&missing), &"a".repeat(32)]).fails(1, "no spindel node");
    spindel_stdin(
        &[
            "publish",
            "--data-dir",
            s(&missing),
            "--kind",
            "method",
            "--file",
            "-",
        ],
        METHOD,
    )
    .fails(1, "no spindel node");

    let agg = tmp.path().join("agg");
    spindel(&[
        "init",
        "--data-dir",
        s(&agg),
        "--name",
        "nationell",
        "--role",
        "aggregator",
    ])
    .json_or_code0();
    spindel_stdin(
        &[
            "publish",
            "--data-dir",
            s(&agg),
            "--kind",
            "method",
            "--file",
            "-",
        ],
        METHOD,
    )
    .fails(1, "an aggregator authors no records");

    // A key file others can read is refused, with the fix named.
    let dir = region(tmp.path(), "skane");
    std::fs::set_permissions(dir.join("node.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    spindel(&["status", "--data-dir", s(&dir)]).fails(1, "chmod 600");
    std::fs::set_permissions(dir.join("node.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // A key file is at most KEY_FILE_BYTES_MAX bytes: the key with trailing space up to the
    // limit is read, one byte more is not a key file.
    let key = std::fs::read_to_string(dir.join("node.key")).unwrap();
    let max = spindel_node::local::KEY_FILE_BYTES_MAX;
    std::fs::write(dir.join("node.key"), format!("{:<max$}", key.trim())).unwrap();
    spindel(&["status", "--data-dir", s(&dir)]).ok();
    std::fs::write(
        dir.join("node.key"),
        format!("{:<w$}", key.trim(), w = max + 1),
    )
    .unwrap();
    spindel(&["status", "--data-dir", s(&dir)]).fails(1, "is not a spindel key");
    std::fs::write(dir.join("node.key"), &key).unwrap();
    std::fs::write(dir.join("config.toml"), "name = 1\n").unwrap();
    spindel(&["status", "--data-dir", s(&dir)]).fails(1, "config.toml");
}

#[test]
fn data_dir_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = region(tmp.path(), "dalarna");
    let run = spindel_env(&["id", "--json"], &[("SPINDEL_DATA_DIR", s(&dir))]);
    assert_eq!(run.json()["name"], "dalarna");
}

#[test]
fn import_is_all_or_nothing_and_names_bad_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = region(tmp.path(), "skane");
    let lines: Vec<String> = (0..250)
        .map(|i| {
            format!(
                r#"{{"title":"Metod {i}","summary":"Studiecirklar i föreningar","tags":["t{}"]}}"#,
                i % 3
            )
        })
        .collect();
    let bad = format!(
        "{}\n{}\n{}\n\n{}\n",
        lines[0],
        r#"{"title":"saknar summary"}"#,
        lines[1],
        r#"{"title":"x","summary":"y","extra":1}"#
    );
    let bad_file = tmp.path().join("bad.jsonl");
    std::fs::write(&bad_file, bad).unwrap();
    let before = status(&dir);
    let run = import_file(&dir, "method", &bad_file);
    run.fails(1, "2 invalid line(s), nothing was imported");
    assert!(
        run.stderr.contains("line 2:") && run.stderr.contains("line 5:"),
        "{run:?}"
    );
    assert_eq!(status(&dir)["heads"], before["heads"]);

    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "\n\n").unwrap();
    import_file(&dir, "method", &empty).fails(1, "nothing to import");
    import_file(&dir, "profile", &empty).fails(1, "profile");

    let good = tmp.path().join("good.jsonl");
    std::fs::write(&good, lines.join("\n")).unwrap();
    let v = import_file_json(&dir, "method", &good).json();
    assert_eq!(v["imported"], 250);
    assert_eq!(v["first_seq"], 2);
    assert_eq!(v["last_seq"], 251);
    assert_eq!(status(&dir)["records"], 251);

    // Paging walks every record exactly once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = vec!["--kind", "method", "--limit", "100"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let page = query(&dir, &args);
        seen.extend(titles(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 250);
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 250);
    assert_eq!(
        titles(&query(&dir, &["--tag", "t1", "--limit", "1000"])).len(),
        83
    );
    assert_eq!(
        titles(&query(
            &dir,
            &["--text", "studiecirklarna", "--limit", "1000"]
        ))
        .len(),
        250
    );
}

/// `allow` refuses a name another key holds (or the aggregator's own): the spoof of issue 8
/// starts with a second key admitted under a taken name.
#[test]
fn allow_refuses_a_name_another_key_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg, _) = spindel_tests::init(tmp.path(), "nationell", "aggregator");
    let (_, dalarna) = spindel_tests::init(tmp.path(), "dalarna", "region");
    let (_, other) = spindel_tests::init(tmp.path(), "ostra", "region");
    allow(&agg, &dalarna, "dalarna").ok();
    // The same key again under its own name is fine; another key under it is not.
    allow(&agg, &dalarna, "dalarna").ok();
    let refused = spindel(&["allow", "--data-dir", s(&agg), &other, "--name", "dalarna"]);
    refused.fails(1, "already held by");
    assert!(refused.stderr.contains(&dalarna), "{}", refused.stderr);
    spindel(&[
        "allow",
        "--data-dir",
        s(&agg),
        &other,
        "--name",
        "nationell",
    ])
    .fails(1, "already held by this aggregator");
    spindel(&["allow", "--data-dir", s(&agg), &other, "--name", "ostra"]).ok();
    let status = spindel(&["status", "--data-dir", s(&agg), "--json"]).json();
    let names: Vec<&str> = status["authors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "dalarna").count(),
        1,
        "{names:?}"
    );
}

/// `disallow` ends an admission on a stopped aggregator: one JSON document, the name freed
/// for another key; refused (exit 1, one line) for a key not admitted, the aggregator's own
/// key and on a region; a malformed NodeId is a usage error (exit 2).
#[test]
fn disallow_ends_an_admission_and_frees_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg, agg_id) = spindel_tests::init(tmp.path(), "nationell", "aggregator");
    let (region_dir, dalarna) = spindel_tests::init(tmp.path(), "dalarna", "region");
    let (_, other) = spindel_tests::init(tmp.path(), "ostra", "region");
    allow(&agg, &dalarna, "dalarna").ok();
    let gone = spindel_tests::disallow(&agg, &dalarna).json();
    assert_eq!(
        gone,
        serde_json::json!({"node_id": dalarna, "name": "dalarna", "admitted": false})
    );
    let status = spindel(&["status", "--data-dir", s(&agg), "--json"]).json();
    let row = status["authors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["node_id"] == dalarna.as_str())
        .cloned()
        .unwrap();
    assert_eq!(row["admitted"], false, "{row}");
    spindel_tests::disallow(&agg, &dalarna).fails(1, "is not admitted here");
    spindel_tests::disallow(&agg, &agg_id).fails(1, "this node's own key");
    spindel_tests::disallow(&region_dir, &other).fails(1, "only an aggregator");
    let bad = spindel(&["disallow", "--data-dir", s(&agg), "not-a-key"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    // The name is free again; the text form says what happened.
    allow(&agg, &other, "dalarna").ok();
    let text = spindel(&["disallow", "--data-dir", s(&agg), &other]);
    assert!(
        text.ok().stdout.contains("(dalarna) is no longer admitted"),
        "{}",
        text.stdout
    );
}

/// Size limits on what the CLI and the control socket take in (issue 9): an import file over
/// `IMPORT_FILE_BYTES_MAX` (2 GiB, read a line at a time) is refused before it is read,
/// standard input over `IMPORT_BYTES_MAX` (read whole) is refused pointing at `--file`, and a
/// running node answers a control request over `REQUEST_BYTES_MAX` with a one-line error
/// instead of buffering more.
#[test]
fn import_files_and_control_requests_are_size_capped() {
    use std::io::{BufRead, Write};
    let tmp = tempfile::tempdir().unwrap();
    let dir = region(tmp.path(), "skane");
    let big = tmp.path().join("big.jsonl");
    let max = spindel_node::control::IMPORT_FILE_BYTES_MAX;
    std::fs::File::create(&big)
        .unwrap()
        .set_len(max + 1)
        .unwrap();
    import_file(&dir, "method", &big).fails(1, &format!("over the limit of {max} bytes"));
    // A file over the old 64 MiB limit is taken, a line at a time (here its first line is
    // bad, so nothing is written).
    let stdin_max = spindel_node::control::IMPORT_BYTES_MAX;
    let mut text = String::from("{\"title\":\"\"}\n");
    let pad = format!("{}\n", " ".repeat(1023));
    while (text.len() as u64) <= stdin_max {
        text.push_str(&pad);
    }
    let over = tmp.path().join("over-64mib.jsonl");
    std::fs::write(&over, &text).unwrap();
    import_file(&dir, "method", &over).fails(1, "line 1");
    spindel_tests::spindel_stdin(
        &[
            "import",
            "--data-dir",
            s(&dir),
            "--kind",
            "method",
            "--file",
            "-",
        ],
        &text,
    )
    .fails(1, "a larger import is read from a file: --file PATH");
    // A line longer than any record could be (a file without newlines, say) is named.
    let long = tmp.path().join("long.jsonl");
    let line_max = spindel_node::local::IMPORT_LINE_BYTES_MAX;
    let mut text = String::from("{\"title\":\"Metod\",\"summary\":\"ok\"}\n");
    text.push_str(&"a".repeat(line_max + 1));
    std::fs::write(&long, &text).unwrap();
    import_file(&dir, "method", &long)
        .fails(1, &format!("line 2 is over the limit of {line_max} bytes"));

    let node = spindel_tests::NodeProc::start(&dir, &[]);
    // Through the running node too, where the file is sent after the request line.
    import_file(&dir, "method", &long)
        .fails(1, &format!("line 2 is over the limit of {line_max} bytes"));
    // An import that announces more bytes than the limit is refused before they are read.
    let mut sock = std::os::unix::net::UnixStream::connect(dir.join("control.sock")).unwrap();
    writeln!(
        sock,
        "{{\"op\":\"import\",\"kind\":\"method\",\"bytes\":{},\"name\":\"x\"}}",
        max + 1
    )
    .unwrap();
    let mut answer = String::new();
    std::io::BufReader::new(&sock)
        .read_line(&mut answer)
        .unwrap();
    assert!(
        answer.contains(&format!("over the limit of {max}")),
        "{answer}"
    );
    // The received files are gone: nothing of an import stays beside the store.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("import."))
        .collect();
    assert!(left.is_empty(), "left in the data directory: {left:?}");

    let mut sock = std::os::unix::net::UnixStream::connect(dir.join("control.sock")).unwrap();
    let chunk = vec![b'a'; 1024 * 1024];
    let limit = spindel_node::control::REQUEST_BYTES_MAX;
    let mut sent = 0u64;
    while sent <= limit {
        if sock.write_all(&chunk).is_err() {
            break; // the node stopped reading: it has answered
        }
        sent += chunk.len() as u64;
    }
    let mut answer = String::new();
    std::io::BufReader::new(&sock)
        .read_line(&mut answer)
        .unwrap();
    assert!(
        answer.contains(&format!("control request over the limit of {limit} bytes")),
        "{answer}"
    );
    // The node goes on serving.
    spindel(&["status", "--data-dir", s(&dir)]).ok();
    assert_eq!(node.terminate(15), 0);
}

/// Messages a new user met (issue 9, part 7), each naming the problem: a data directory that
/// is a file, a byte-order mark (accepted), a JSON array given to import, bytes that are not
/// UTF-8 (by line), an unknown region, `--http` with a host name (accepted), a POST to the
/// API (405 with a JSON error), a record id of another kind, help texts for kinds and ids.
#[test]
fn messages_a_new_user_meets_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = region(tmp.path(), "skane");
    let file = tmp.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    spindel(&["status", "--data-dir", s(&file)]).fails(1, "is a file, not a data directory");
    // A store that cannot be opened is named by its path.
    let broken = region(tmp.path(), "trasig");
    std::fs::remove_dir_all(broken.join("store")).unwrap();
    std::fs::write(broken.join("store"), "x").unwrap();
    spindel(&["status", "--data-dir", s(&broken)]).fails(
        1,
        &format!("cannot open the store {}", broken.join("store").display()),
    );

    let bom = tmp.path().join("bom.json");
    std::fs::write(
        &bom,
        b"\xef\xbb\xbf{\"title\":\"Med BOM\",\"summary\":\"s\"}",
    )
    .unwrap();
    let id = spindel(&[
        "publish",
        "--data-dir",
        s(&dir),
        "--kind",
        "method",
        "--file",
        s(&bom),
        "--json",
    ])
    .json()["record_id"]
        .as_str()
        .unwrap()
        .to_string();

    let arr = tmp.path().join("arr.jsonl");
    std::fs::write(&arr, "[{\"title\":\"t\",\"summary\":\"s\"}]\n").unwrap();
    import_file(&dir, "method", &arr).fails(1, "line 1: a JSON array; import takes JSON Lines");
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        b"{\"title\":\"t\",\"summary\":\"s\"}\n{\"title\":\"\xff\",\"summary\":\"s\"}\n",
    )
    .unwrap();
    import_file(&dir, "method", &bad).fails(1, "line 2 holds bytes that are not");

    spindel(&["query", "--data-dir", s(&dir), "--region", "nowhere"])
        .fails(1, "unknown region \"nowhere\"; known here: skane");
    publish_version(&dir, "innovation", &id, r#"{"title":"t","summary":"s"}"#)
        .fails(1, "is of kind method, not innovation");
    for (cmd, needle) in [
        (
            vec!["publish", "--help"],
            "profile, innovation, method, researcher",
        ),
        (vec!["delete", "--help"], "32 hex characters"),
        (vec!["allow", "--help"], "64 hex characters"),
    ] {
        let out = spindel(&cmd);
        assert!(out.stdout.contains(needle), "{cmd:?}: {}", out.stdout);
    }

    let node = spindel_tests::NodeProc::start(&dir, &["--http", "localhost:0"]);
    let http = node.http.expect("http on a host name");
    let (code, head, body) =
        spindel_tests::http_request(http, "POST", "/api/v1/records", Some("{}"));
    assert_eq!(code, 405, "{body}");
    assert!(head.to_lowercase().contains("allow: get, head"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("nothing over HTTP can write")
    );
    assert_eq!(node.terminate(15), 0);
}

/// `spindel run` reads its settings from `DIR/spindel.toml` or `--config FILE` (issue 9): the
/// file's listen, http, metrics and log format are used, flags override them, and a missing
/// `--config` file, an unknown key or a bad value stops the node with one line naming the file
/// and the field.
#[test]
fn run_reads_its_settings_file_and_flags_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    let agg = tmp.path().join("nationell");
    spindel(&[
        "init",
        "--data-dir",
        s(&agg),
        "--name",
        "nationell",
        "--role",
        "aggregator",
    ])
    .ok();
    std::fs::write(
        agg.join("spindel.toml"),
        "listen = \"127.0.0.1:0\"\nhttp = \"localhost:0\"\nmetrics = \"127.0.0.1:0\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    let node = spindel_tests::NodeProc::start_logging(&agg, &[], None);
    assert!(node.listen.is_some() && node.http.is_some() && node.metrics.is_some());
    assert!(
        node.log()
            .lines()
            .any(|l| l.starts_with('{') && l.contains("settings read")),
        "{}",
        node.log()
    );
    assert_eq!(node.terminate(15), 0);
    // Flags override the file: --http and --log-format given on the command line win.
    let node =
        spindel_tests::NodeProc::start(&agg, &["--http", "127.0.0.1:0", "--log-format", "text"]);
    assert_eq!(node.http.unwrap().ip().to_string(), "127.0.0.1");
    assert!(
        !node.log().lines().any(|l| l.starts_with('{')),
        "{}",
        node.log()
    );
    assert_eq!(node.terminate(15), 0);

    let missing = tmp.path().join("nowhere.toml");
    spindel(&["run", "--data-dir", s(&agg), "--config", s(&missing)])
        .fails(1, "cannot read the settings file");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "log_level = \"loud\"\n").unwrap();
    spindel(&["run", "--data-dir", s(&agg), "--config", s(&bad)])
        .fails(1, "bad.toml line 1: log_level: \"loud\" is not one of");
    // Transport limits: each checked and named; an unknown one refused; good ones taken.
    std::fs::write(&bad, "[limits]\nconnections_max = 0\n").unwrap();
    spindel(&["run", "--data-dir", s(&agg), "--config", s(&bad)]).fails(
        1,
        "bad.toml line 2: limits.connections_max must be between 1 and 100000, got 0",
    );
    std::fs::write(&bad, "[limits]\nconections_max = 5\n").unwrap();
    spindel(&["run", "--data-dir", s(&agg), "--config", s(&bad)]).fails(
        1,
        "bad.toml line 2, column 1: limits.conections_max: unknown key `conections_max` (the keys are: frame_bytes_max, connections_max,",
    );
    let good = tmp.path().join("good.toml");
    std::fs::write(
        &good,
        "listen = \"127.0.0.1:0\"\n[limits]\nconnections_max = 16\nidle_timeout_ms = 6000\n",
    )
    .unwrap();
    let node = spindel_tests::NodeProc::start(&agg, &["--config", s(&good)]);
    assert!(node.listen.is_some());
    assert_eq!(node.terminate(15), 0);
}

/// Runs `spindel run` on an aggregator with the settings file `text`; it must stop at once.
fn run_with_settings(tmp: &Path, text: &str) -> spindel_tests::Run {
    let agg = tmp.join("nationell");
    if !agg.exists() {
        spindel(&[
            "init",
            "--data-dir",
            s(&agg),
            "--name",
            "nationell",
            "--role",
            "aggregator",
        ])
        .ok();
    }
    let file = tmp.join("skane.toml");
    std::fs::write(&file, text).unwrap();
    spindel(&["run", "--data-dir", s(&agg), "--config", s(&file)])
}

/// Every error of the settings file is one line naming the file, the line (and the column when
/// TOML knows it) and the key, in words that say what the key takes (exit 1).
#[test]
fn settings_file_errors_name_the_line_and_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    // A string where a list belongs.
    run_with_settings(
        tmp.path(),
        "# Skåne\nlog_level = \"info\"\naggregators = \"AB@aggregator.example.se:7700\"\n",
    )
    .fails(
        1,
        "skane.toml line 3, column 15: aggregators: expected a list of \"NODEID@HOST:PORT\" strings, got a string",
    );
    // A value without quotes.
    run_with_settings(
        tmp.path(),
        "log_level = \"info\"\n\nmetrics = 127.0.0.1:9781\n",
    )
    .fails(
        1,
        ": metrics: text needs quotes, like metrics = \"127.0.0.1:9781\"",
    );
    let run = run_with_settings(
        tmp.path(),
        "log_level = \"info\"\n\nmetrics = 127.0.0.1:9781\n",
    );
    assert!(
        run.stderr.contains("skane.toml line 3, column "),
        "{}",
        run.stderr
    );
    // A key that does not exist: named, with the keys there are.
    run_with_settings(tmp.path(), "listen = \"127.0.0.1:0\"\nlisen = \"x\"\n").fails(
        1,
        "skane.toml line 2, column 1: lisen: unknown key `lisen` (the keys are: listen, http, metrics, admin, aggregators,",
    );
    // A bad address, in a list over several lines: the line of the element.
    run_with_settings(tmp.path(), "aggregators = [\n  \"nope\",\n]\n")
        .fails(1, "skane.toml line 2: aggregators[0]: ");
    run_with_settings(tmp.path(), "listen = \"127.0.0.1\"\n").fails(
        1,
        "skane.toml line 1: listen: \"127.0.0.1\" is not HOST:PORT",
    );
}

/// Every ready settings file in deploy/examples is one `spindel run` accepts (placeholders
/// filled in, ports moved to free ones by flags, which override the file).
#[test]
fn the_deploy_examples_are_settings_files_run_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg, agg_id) = init(tmp.path(), "nationell", "aggregator");
    let reg = region(tmp.path(), "skane");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".toml") || name == "config.toml" {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("AGGREGATOR_NODEID", &agg_id)
            .replace("aggregator.example.se", "127.0.0.1");
        let file = tmp.path().join(&name);
        std::fs::write(&file, text).unwrap();
        let (dir, free) = if name == "nationell.toml" {
            (
                &agg,
                vec![
                    "--listen",
                    "127.0.0.1:0",
                    "--http",
                    "127.0.0.1:0",
                    "--metrics",
                    "127.0.0.1:0",
                ],
            )
        } else {
            (&reg, vec!["--metrics", "127.0.0.1:0"])
        };
        let mut args = vec!["--config", s(&file)];
        args.extend(free);
        let node = spindel_tests::NodeProc::start(dir, &args);
        assert_eq!(node.terminate(15), 0, "{name}");
        seen += 1;
    }
    assert_eq!(seen, 9, "the aggregator and the eight regions");
}

/// An import line may carry `record_id` (issue 9, part 5): the line then publishes a new
/// version of that own record, so running an edited file again updates instead of
/// duplicating. A record_id given twice, unknown, or malformed refuses the whole file.
#[test]
fn import_lines_with_record_id_update_instead_of_duplicating() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = region(tmp.path(), "skane");
    let file = tmp.path().join("m.jsonl");
    std::fs::write(
        &file,
        "{\"title\":\"Första\",\"summary\":\"s\"}\n{\"title\":\"Andra\",\"summary\":\"s\"}\n",
    )
    .unwrap();
    let import = |f: &Path| import_file_json(&dir, "method", f);
    import(&file).json();
    let methods = || -> Vec<(String, String)> {
        let v = spindel(&["query", "--data-dir", s(&dir), "--kind", "method", "--json"]).json();
        let mut out: Vec<(String, String)> = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["data"]["title"].as_str().unwrap().to_string(),
                    r["record_id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let before = methods();
    assert_eq!(before.len(), 2);
    let edited: String = before
        .iter()
        .map(|(t, id)| {
            format!("{{\"record_id\":\"{id}\",\"title\":\"{t} (ändrad)\",\"summary\":\"s\"}}\n")
        })
        .collect();
    std::fs::write(&file, &edited).unwrap();
    import(&file).json();
    let after = methods();
    assert_eq!(
        after.len(),
        2,
        "the edited file duplicated records: {after:?}"
    );
    assert!(
        after.iter().all(|(t, _)| t.ends_with("(ändrad)")),
        "{after:?}"
    );
    let ids = |v: &[(String, String)]| {
        v.iter()
            .map(|(_, id)| id.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(ids(&before), ids(&after));

    let id = &before[0].1;
    std::fs::write(
        &file,
        format!("{{\"record_id\":\"{id}\",\"title\":\"a\",\"summary\":\"s\"}}\n{{\"record_id\":\"{id}\",\"title\":\"b\",\"summary\":\"s\"}}\n"),
    )
    .unwrap();
    import(&file).fails(1, &format!("line 2: record_id {id} is also on line 1"));
    std::fs::write(
        &file,
        format!(
            "{{\"record_id\":\"{}\",\"title\":\"a\",\"summary\":\"s\"}}\n",
            "0".repeat(32)
        ),
    )
    .unwrap();
    import(&file).fails(1, "line 1");
    std::fs::write(
        &file,
        "{\"record_id\":\"xyz\",\"title\":\"a\",\"summary\":\"s\"}\n",
    )
    .unwrap();
    import(&file).fails(1, "record_id must be 32 hex characters");
    assert_eq!(methods(), after, "a refused file changed something");
}

/// Ctrl-C on an import through a running node cancels it with nothing written (issue 9): the
/// node notices the asker going away and stops before its one atomic write.
#[test]
fn ctrl_c_on_an_import_through_a_running_node_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = region(tmp.path(), "skane");
    let file = tmp.path().join("many.jsonl");
    let lines: String = (0..60_000)
        .map(|i| {
            format!("{{\"title\":\"Metod {i}\",\"summary\":\"Att dela kunskap i regionen\"}}\n")
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let node = spindel_tests::NodeProc::start(&dir, &[]);
    let head_before =
        spindel(&["status", "--data-dir", s(&dir), "--json"]).json()["records"].clone();
    let mut cli = std::process::Command::new(spindel_tests::spindel_bin())
        .args([
            "import",
            "--data-dir",
            s(&dir),
            "--kind",
            "method",
            "--file",
            s(&file),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    spindel_tests::eventually(30, "the node to start the import", || {
        node.log().contains("import through the control socket")
    });
    let _ = std::process::Command::new("kill")
        .args(["-INT", &cli.id().to_string()])
        .status();
    let status = cli.wait().unwrap();
    assert!(!status.success());
    spindel_tests::eventually(60, "the node to cancel", || {
        node.log().contains("cancelling its request")
    });
    // Whatever the node was doing has ended: a status answers after it.
    let after = spindel(&["status", "--data-dir", s(&dir), "--json"]).json();
    assert_eq!(
        after["records"], head_before,
        "the cancelled import wrote records"
    );
    assert_eq!(node.terminate(15), 0);
}

/// `init --website URL` puts the region's website in its first profile (checked as the profile
/// record checks it), `/integritet` names it as the region's contact, and `status` (text and
/// JSON) warns while a region's profile has none.
#[test]
fn init_website_is_the_privacy_contact_and_status_warns_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    // Without a website: a warning in both forms of status.
    let bare = region(tmp.path(), "dalarna");
    let v = status(&bare);
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{v}");
    assert!(
        warnings[0].as_str().unwrap().contains("no website")
            && warnings[0].as_str().unwrap().contains("/integritet"),
        "{v}"
    );
    let text = spindel(&["status", "--data-dir", s(&bare)]);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout
            .contains("WARNING   the region's profile has no website"),
        "{}",
        text.stdout
    );
    // A website that is no http/https URL is refused as the profile refuses it; nothing stays.
    let refused = tmp.path().join("refused");
    spindel(&[
        "init",
        "--data-dir",
        s(&refused),
        "--name",
        "skane",
        "--website",
        "www.skane.example.se",
    ])
    .fails(1, "website must be an http or https URL");
    assert!(!refused.exists(), "a refused init leaves nothing");
    // An aggregator has no profile to put it in.
    spindel(&[
        "init",
        "--data-dir",
        s(&tmp.path().join("agg")),
        "--name",
        "nationell",
        "--role",
        "aggregator",
        "--website",
        "https://example.se",
    ])
    .fails(1, "--website is for a region");
    // With a website: in the signed profile, no warning, and named on /integritet.
    let dir = tmp.path().join("skane");
    spindel(&[
        "init",
        "--data-dir",
        s(&dir),
        "--name",
        "skane",
        "--website",
        "https://skane.example.se/kontakt",
        "--json",
    ])
    .json();
    let page = query(&dir, &["--kind", "profile"]);
    assert_eq!(
        page["records"][0]["data"]["website"],
        "https://skane.example.se/kontakt"
    );
    let v = status(&dir);
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    let text = spindel(&["status", "--data-dir", s(&dir)]);
    assert!(!text.stdout.contains("WARNING"), "{}", text.stdout);
    let node = spindel_tests::NodeProc::start(&dir, &["--http", "127.0.0.1:0"]);
    let (code, body) = spindel_tests::http_get(node.http.unwrap(), "/integritet");
    assert_eq!(code, 200);
    // The page escapes `/` as `&#x2f;`.
    let shown = "https:&#x2f;&#x2f;skane.example.se&#x2f;kontakt";
    assert!(
        body.contains(&format!("href=\"{shown}\"")) && !body.contains("ingen kontakt i profilen"),
        "{body}"
    );
    assert_eq!(node.terminate(15), 0);
    // While it runs, status asks the node and says the same.
    let node = spindel_tests::NodeProc::start(&bare, &[]);
    let v = status(&bare);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(node.terminate(15), 0);
}
