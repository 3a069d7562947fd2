//! The export through real processes: `spindel export` (from a stopped node's directory and
//! through a running one) and `/api/v1/export`, streamed in chunks, as JSON Lines that
//! `spindel verify-export` checks without trusting the node (a changed line fails, named) and
//! as CSV with flat columns for the SROI figures and the indicators; an edited export imported
//! again updates the region's own records, and another region's lines are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use spindel_tests::{
    NodeProc, http_request, import_file, import_file_json, init, publish, s, spindel,
};

const INNOVATION: &str = r#"{"title":"Fixartjänst i Falun","summary":"Äldre får hjälp hemma.","sroi":{"ratio":3.4,"year":2025,"report_url":"https://exempel.se/sroi.pdf"}}"#;
const INDICATOR: &str = r#"{"outcome":"Ökad självständighet","indicator":"Färre hemtjänsttimmar","proxy":"Kostnad per hemtjänsttimme","value_sek":520,"unit":"timme","year":2024,"source":"Kommunens taxa 2024","deadweight":0.25}"#;
const RESEARCHER: &str = r#"{"name":"Eva Forskare","affiliation":"Lunds universitet","fields":["social ekonomi"],"email":"eva.forskare@example.se","phone":"070-123 45 67","consent":{"given":true,"date":"2026-01-10","method":"e-post"}}"#;

fn export(dir: &Path, extra: &[&str]) -> String {
    let mut args = vec!["export", "--data-dir", s(dir)];
    args.extend_from_slice(extra);
    let run = spindel(&args);
    run.ok();
    run.stdout.clone()
}

fn verify(file: &Path) -> spindel_tests::Run {
    spindel(&["verify-export", "--file", s(file), "--json"])
}

#[test]
fn an_export_verifies_streams_in_chunks_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (dir, _) = init(t, "skane", "region");
    publish(&dir, "innovation", INNOVATION);
    publish(&dir, "indicator", INDICATOR);
    publish(&dir, "researcher", RESEARCHER);
    // More methods than one chunk holds.
    let many = spindel_node::EXPORT_CHUNK_RECORDS + 50;
    let lines: String = (0..many)
        .map(|i| format!("{{\"title\":\"Metod {i}\",\"summary\":\"Sammanfattning {i}\"}}\n"))
        .collect();
    let file = t.join("metoder.jsonl");
    std::fs::write(&file, lines).unwrap();
    import_file(&dir, "method", &file).ok();
    let total = many + 4; // and the region's profile

    // From the stopped node's directory: every record, each line verifiable.
    let all = export(&dir, &[]);
    assert_eq!(all.lines().count(), total, "{}", &all[..500.min(all.len())]);
    let path = t.join("export.jsonl");
    std::fs::write(&path, &all).unwrap();
    let run = verify(&path);
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["signed"], total);
    assert_eq!(
        v["payload_checked"],
        total - 1,
        "the researcher's contacts and payload are left out: {v}"
    );
    assert!(!all.contains("eva.forskare@example.se"));
    let with_contacts = export(&dir, &["--contacts", "--kind", "researcher"]);
    assert!(with_contacts.contains("eva.forskare@example.se"));
    let path_c = t.join("forskare.jsonl");
    std::fs::write(&path_c, &with_contacts).unwrap();
    let v: serde_json::Value = serde_json::from_str(&verify(&path_c).stdout).unwrap();
    assert_eq!(v["payload_checked"], 1);

    // A changed line fails, named; so does a changed signature.
    let tampered: String = all
        .lines()
        .map(|l| l.replacen("Fixartjänst i Falun", "Fixartjänst i Mora", 1) + "\n")
        .collect();
    let bad = t.join("andrad.jsonl");
    std::fs::write(&bad, tampered).unwrap();
    let run = verify(&bad);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("data: not what the signed payload holds"),
        "{}",
        run.stderr
    );
    let first = all.lines().next().unwrap();
    let mut line: serde_json::Value = serde_json::from_str(first).unwrap();
    let entry = line["entry"].as_str().unwrap().to_string();
    let flipped = format!(
        "{}{}",
        &entry[..entry.len() - 2],
        if entry.ends_with("00") { "01" } else { "00" }
    );
    line["entry"] = serde_json::Value::String(flipped);
    std::fs::write(&bad, format!("{line}\n")).unwrap();
    let run = verify(&bad);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("entry: the signature does not hold"),
        "{}",
        run.stderr
    );
    // A line without its payload cannot pass off changed data (only a researcher's line with
    // its contacts left out goes without one).
    let innovation = all.lines().find(|l| l.contains("Fixartjänst")).unwrap();
    let mut line: serde_json::Value = serde_json::from_str(innovation).unwrap();
    line["data"]["sroi"]["ratio"] = serde_json::json!(12.0);
    line.as_object_mut().unwrap().remove("payload");
    std::fs::write(&bad, format!("{line}\n")).unwrap();
    let run = verify(&bad);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("payload: missing"), "{}", run.stderr);

    // CSV: flat columns a spreadsheet reads.
    let csv_text = export(&dir, &["--format", "csv", "--kind", "indicator"]);
    let mut rd = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = rd.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][col("value_sek")], "520");
    assert_eq!(&rows[0][col("proxy")], "Kostnad per hemtjänsttimme");
    assert_eq!(&rows[0][col("deadweight")], "0.25");
    let csv_text = export(&dir, &["--format", "csv", "--kind", "innovation"]);
    let mut rd = csv::Reader::from_reader(csv_text.as_bytes());
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(&rows[0][col("sroi_ratio")], "3.4");
    assert_eq!(&rows[0][col("sroi_year")], "2025");
    spindel(&["export", "--data-dir", s(&dir), "--format", "xml"]).fails(2, "jsonl or csv");
    assert!(
        csv_text.starts_with('\u{feff}'),
        "a byte-order mark for spreadsheets"
    );
    let csv_path = t.join("export.csv");
    std::fs::write(&csv_path, &csv_text).unwrap();
    verify(&csv_path).fails(1, "the CSV form of an export, which carries no signatures");
    // A text a spreadsheet would run as a formula is shown as text.
    publish(
        &dir,
        "method",
        r#"{"title":"=HYPERLINK(\"http://exempel.se\";\"klicka\")","summary":"@SUM(A1)"}"#,
    );
    let csv_text = export(&dir, &["--format", "csv", "--kind", "method"]);
    let mut rd = csv::Reader::from_reader(csv_text.as_bytes());
    let row = rd
        .records()
        .map(Result::unwrap)
        .find(|r| r[col("title")].contains("HYPERLINK"))
        .unwrap();
    assert!(row[col("title")].starts_with("'="), "{row:?}");
    assert!(row[col("summary")].starts_with("'@"), "{row:?}");
    let many = many + 1;
    let total = total + 1;

    // Through a running node: the CLI asks it a chunk at a time; the API streams the same.
    let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0"]);
    let http = node.http.unwrap();
    let running = export(&dir, &[]);
    assert_eq!(running.lines().count(), total);
    let (status, head, body) = http_request(http, "GET", "/api/v1/export", None);
    assert_eq!(status, 200);
    assert!(
        head.to_lowercase().contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert!(head.contains("application/x-ndjson"), "{head}");
    assert_eq!(body.lines().count(), total);
    assert!(
        !body.contains("eva.forskare@example.se"),
        "no contacts over HTTP"
    );
    assert!(
        head.to_lowercase()
            .contains("cache-control: private, no-store"),
        "{head}"
    );
    let (status, _, body) = http_request(http, "GET", "/api/v1/export?region=gotland", None);
    assert_eq!(
        status, 400,
        "an unknown region is said, not a broken transfer: {body}"
    );
    assert!(body.contains("gotland"), "{body}");
    let (status, _, body) = http_request(http, "GET", "/api/v1/export?region=", None);
    assert_eq!(status, 200);
    assert_eq!(body.lines().count(), total);
    let (status, _, body) =
        http_request(http, "GET", "/api/v1/export?format=csv&kind=method", None);
    assert_eq!(status, 200);
    assert_eq!(
        body.lines().count(),
        many + 1,
        "a header row and one row a method"
    );
    for bad in [
        "/api/v1/export?format=xml",
        "/api/v1/export?kind=roman",
        "/api/v1/export?contacts=1",
    ] {
        let (status, _, body) = http_request(http, "GET", bad, None);
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // The round trip: an edited export of the region's own methods, imported again, updates
    // those records (no new ones); the others keep their content.
    let methods = export(&dir, &["--kind", "method"]);
    let edited: String = methods
        .lines()
        .map(|l| l.replacen("\"Metod 7\"", "\"Metod 7, reviderad\"", 1) + "\n")
        .collect();
    let edited_path = t.join("metoder-andrade.jsonl");
    std::fs::write(&edited_path, edited).unwrap();
    import_file(&dir, "method", &edited_path).ok();
    // The same file again is an older export now: refused, naming the line, nothing written.
    let run = import_file(&dir, "method", &edited_path);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("newer version than this export holds"),
        "{}",
        run.stderr
    );
    let after = export(&dir, &["--kind", "method"]);
    assert_eq!(after.lines().count(), many, "updated, not added");
    assert!(after.contains("Metod 7, reviderad"));
    let titles = |text: &str| -> std::collections::BTreeMap<String, String> {
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["record_id"].as_str().unwrap().to_string(),
                    v["data"]["title"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (before, now) = (titles(&methods), titles(&after));
    // Only the edited line was published: the others held what their records held already,
    // so they are no new versions (and do not jump to the top of the feeds).
    let versions: Vec<u64> = after
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["version"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        versions.iter().filter(|v| **v == 2).count(),
        1,
        "{versions:?}"
    );
    // An export imported again as it is publishes nothing.
    let unchanged_path = t.join("metoder-oforandrade.jsonl");
    std::fs::write(&unchanged_path, &after).unwrap();
    let run = import_file_json(&dir, "method", &unchanged_path);
    run.ok();
    let done: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(done["imported"], 0, "{done}");
    assert_eq!(done["unchanged"], many, "{done}");
    assert_eq!(before.len(), now.len());
    for (rid, title) in &before {
        if title != "Metod 7" {
            assert_eq!(now.get(rid), Some(title));
        }
    }
    // A deleted record leaves the export.
    let gone = now.keys().next().unwrap().clone();
    spindel(&["delete", "--data-dir", s(&dir), &gone]).ok();
    let after_delete = export(&dir, &["--kind", "method"]);
    assert_eq!(after_delete.lines().count(), many - 1);
    assert!(!after_delete.contains(&gone));
    let (_, _, body) = http_request(http, "GET", "/api/v1/export?kind=method", None);
    assert!(!body.contains(&gone));
    // A researcher exported without contacts is not imported (it would lose them).
    let researcher_path = t.join("forskare-utan.jsonl");
    std::fs::write(&researcher_path, export(&dir, &["--kind", "researcher"])).unwrap();
    let run = import_file(&dir, "researcher", &researcher_path);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("export with --contacts"),
        "{}",
        run.stderr
    );
    // Its marker lost on the way (a tool rewrote the file): still refused, the contacts kept.
    let unmarked: String = export(&dir, &["--kind", "researcher"])
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("contacts_left_out");
            format!("{v}\n")
        })
        .collect();
    std::fs::write(&researcher_path, unmarked).unwrap();
    let run = import_file(&dir, "researcher", &researcher_path);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("would erase it"), "{}", run.stderr);
    assert!(
        export(&dir, &["--kind", "researcher", "--contacts"]).contains("eva.forskare@example.se")
    );
    drop(node);
    // Another region's export is not this region's to publish.
    let (other, _) = init(t, "dalarna", "region");
    let run = import_file(&other, "method", &edited_path);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("another region's"), "{}", run.stderr);
}
