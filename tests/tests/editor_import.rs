//! `/importera` through the real binary: CSV files as spreadsheets write them, the template of
//! each kind to download, and refused imports said in Swedish line by line with the field's
//! label; nothing of a refused file is imported and no file of it is left in the data
//! directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;

use spindel_node::CSV_ROW_BYTES_MAX;
use spindel_tests::{
    editor_region, editor_session, eventually, header, http_exchange, http_get, location, multipart,
};

const PASSWORD: &str = "ett långt lösenord för importen";

/// The records of `kind` the public API at `http` serves (their `data`).
fn api_records(http: SocketAddr, kind: &str) -> Vec<serde_json::Value> {
    let (status, body) = http_get(http, &format!("/api/v1/records?kind={kind}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"].clone())
        .collect()
}

/// No upload of any import is left in the data directory.
fn no_files_left(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("import."))
        .collect();
    assert!(left.is_empty(), "left in the data directory: {left:?}");
}

/// An editor session on a running region.
struct Editor {
    admin: SocketAddr,
    http: SocketAddr,
    cookie: String,
    csrf: String,
}

impl Editor {
    /// Uploads `content` as `file_name` of `kind`: (status, head, body).
    fn upload(&self, kind: &str, file_name: &str, content: &str) -> (u16, String, String) {
        let (ct, body) = multipart(
            &[("csrf", &self.csrf), ("kind", kind)],
            Some((file_name, content)),
        );
        http_exchange(
            self.admin,
            "POST",
            "/importera",
            &[("Cookie", &self.cookie)],
            Some((&ct, &body)),
        )
    }

    /// Follows an import that was started (a 303 to its progress page) until it has ended:
    /// (status, body) of the page then.
    fn ended(&self, head: &str) -> (u16, String) {
        let page = location(head);
        assert!(page.starts_with("/importera/"), "{page}");
        let mut last = (0, String::new());
        eventually(30, "the import to end", || {
            let (status, _, body) =
                http_exchange(self.admin, "GET", &page, &[("Cookie", &self.cookie)], None);
            let running = body.contains("http-equiv=\"refresh\"");
            last = (status, body);
            !running
        });
        last
    }

    /// Uploads and follows the import to its end: (status, body).
    fn import(&self, kind: &str, file_name: &str, content: &str) -> (u16, String) {
        let (status, head, body) = self.upload(kind, file_name, content);
        assert_eq!(status, 303, "{body}");
        self.ended(&head)
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        http_exchange(self.admin, "GET", path, &[("Cookie", &self.cookie)], None)
    }
}

fn start() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    spindel_tests::NodeProc,
    Editor,
) {
    let (tmp, dir, node) = editor_region(
        &[("anna", "redaktor")],
        PASSWORD,
        &["--admin", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let (admin, http) = (node.admin.unwrap(), node.http.unwrap());
    let (cookie, csrf) = editor_session(admin, "anna", PASSWORD);
    let editor = Editor {
        admin,
        http,
        cookie,
        csrf,
    };
    (tmp, dir, node, editor)
}

/// Each kind's template downloads as a CSV file a spreadsheet opens (BOM, `;`), with every
/// column of the kind, and imports as it is: one record, published.
#[test]
fn every_template_downloads_and_imports_as_it_is() {
    let (_tmp, dir, node, e) = start();
    let (status, _, body) = e.get("/importera");
    assert_eq!(status, 200);
    for kind in [
        "method",
        "innovation",
        "researcher",
        "event",
        "indicator",
        "experience",
    ] {
        assert!(
            body.contains(&format!("href=\"/importera/mall/{kind}.csv\"")),
            "{kind}: no link on the page"
        );
    }
    let expected: [(&str, &[&str]); 6] = [
        (
            "method",
            &[
                "title",
                "summary",
                "description",
                "tags",
                "links",
                "record_id",
            ],
        ),
        (
            "innovation",
            &[
                "title",
                "summary",
                "description",
                "tags",
                "organisations",
                "links",
                "contact",
                "sroi.ratio",
                "sroi.year",
                "sroi.report_url",
                "sroi.indicators",
                "record_id",
            ],
        ),
        (
            "indicator",
            &[
                "outcome",
                "indicator",
                "proxy",
                "value_sek",
                "unit",
                "year",
                "source",
                "deadweight",
                "attribution",
                "displacement",
                "drop_off",
                "tags",
                "record_id",
            ],
        ),
        (
            "researcher",
            &[
                "name",
                "affiliation",
                "fields",
                "email",
                "phone",
                "consent.given",
                "consent.date",
                "consent.method",
                "consent.scope",
                "record_id",
            ],
        ),
        (
            "event",
            &[
                "title",
                "start",
                "end",
                "place",
                "online_url",
                "organiser",
                "registration_url",
                "description",
                "tags",
                "record_id",
            ],
        ),
        (
            "experience",
            &["about", "text", "outcome", "links", "tags", "record_id"],
        ),
    ];
    for (kind, columns) in expected {
        let (status, head, csv_text) = e.get(&format!("/importera/mall/{kind}.csv"));
        assert_eq!(status, 200, "{kind}: {csv_text}");
        assert_eq!(
            header(&head, "content-type"),
            Some("text/csv; charset=utf-8")
        );
        assert_eq!(
            header(&head, "content-disposition").unwrap(),
            format!("attachment; filename=\"spindel-mall-{kind}.csv\"")
        );
        assert!(csv_text.starts_with('\u{feff}'), "{kind}: no BOM");
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .from_reader(csv_text.trim_start_matches('\u{feff}').as_bytes());
        let headers: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(headers, columns, "{kind}");
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1, "{kind}: one example row");
        // Unchanged, it imports: one record.
        let before = api_records(e.http, kind).len();
        let (status, body) = e.import(kind, &format!("spindel-mall-{kind}.csv"), &csv_text);
        assert_eq!(status, 200, "{kind}: {body}");
        assert!(
            body.contains("1 post importerad och publicerad."),
            "{kind}: {body}"
        );
        assert_eq!(api_records(e.http, kind).len(), before + 1, "{kind}");
    }
    // An unknown kind is the editor's 404 page; no template without a session.
    let (status, _, body) = e.get("/importera/mall/profile.csv");
    assert_eq!(status, 404);
    assert!(body.contains("Sidan finns inte"), "{body}");
    let (status, _, _) = e.get("/importera/mall/method.txt");
    assert_eq!(status, 404);
    let (status, _, _) = http_exchange(e.admin, "GET", "/importera/mall/method.csv", &[], None);
    assert_eq!(status, 303, "a template without a session");
    no_files_left(&dir);
    assert_eq!(node.terminate(10), 0);
}

/// What Swedish Excel writes: a BOM, `;`, CRLF, a quoted cell with line breaks; an empty row
/// skipped; a list with ` | ` too; a file name that does not say CSV (told by its content).
#[test]
fn a_spreadsheet_csv_imports_with_its_lists() {
    let (_tmp, dir, node, e) = start();
    let text = "\u{feff}title;summary;tags;links\r\n\
                Språkcafé;Möten varje vecka;\"integration\r\nspråk\";https://a.example.se\r\n\
                ;;;\r\n\
                Läxhjälp;Efter skolan;skola | barn;\r\n";
    let (status, body) = e.import("method", "export.txt", text);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("2 poster importerade"), "{body}");
    let mut got: Vec<(String, serde_json::Value)> = api_records(e.http, "method")
        .into_iter()
        .map(|d| (d["title"].as_str().unwrap().to_string(), d["tags"].clone()))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("Läxhjälp".to_string(), serde_json::json!(["skola", "barn"])),
            (
                "Språkcafé".to_string(),
                serde_json::json!(["integration", "språk"])
            ),
        ]
    );
    // Commas work as well.
    let (status, body) = e.import("method", "k.csv", "title,summary\nMed komma,\"Ett, två\"\n");
    assert_eq!(status, 200, "{body}");
    assert_eq!(api_records(e.http, "method").len(), 3);
    no_files_left(&dir);
    assert_eq!(node.terminate(10), 0);
}

/// A CSV file with bad rows: each said in Swedish with its spreadsheet row number and the
/// field's label, nothing imported; an unknown column says which and what is known.
#[test]
fn bad_csv_rows_are_said_by_row_and_field_and_nothing_is_imported() {
    let (_tmp, dir, node, e) = start();
    let text = "title;summary;links\r\n\
                Bra;S;\r\n\
                ;Saknar titel;\r\n\
                Också bra;S;https://ok.example.se\r\n\
                Fel länk;S;\"https://ok.example.se\r\nwww.utan-schema.se\"\r\n";
    let before = api_records(e.http, "method").len();
    let (status, _, body) = e.upload("method", "fel.csv", text);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("Ingenting importerades: 2 rader är fel."),
        "{body}"
    );
    assert!(body.contains("role=\"alert\""), "{body}");
    assert!(body.contains("Rad 3:"), "{body}");
    assert!(body.contains("Titel (title): Fyll i fältet."), "{body}");
    assert!(body.contains("Rad 5:"), "{body}");
    assert!(
        body.contains("Länkar (links): Punkt 2 i listan: Ange en fullständig webbadress"),
        "{body}"
    );
    assert!(
        !body.contains("Rad 2:") && !body.contains("Rad 4:"),
        "{body}"
    );
    // An unknown column.
    let (status, _, body) = e.upload("method", "fel.csv", "titel;summary\r\nA;S\r\n");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("okänd kolumn ”titel”")
            && body.contains("Kända kolumner: title, summary, description, tags, links, record_id"),
        "{body}"
    );
    // More bad rows than are shown.
    let many: String = std::iter::once("title;summary\r\n".to_string())
        .chain((0..8).map(|_| ";S\r\n".to_string()))
        .collect();
    let (status, _, body) = e.upload("method", "fel.csv", &many);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("Rad 6:") && !body.contains("Rad 7:"),
        "{body}"
    );
    assert!(body.contains("och 3 rader till"), "{body}");
    assert_eq!(api_records(e.http, "method").len(), before);
    no_files_left(&dir);
    assert_eq!(node.terminate(10), 0);
}

/// A JSON Lines file's refusals are Swedish too: an unknown field names its line and itself,
/// and lists the names a record has; a record_id that is not the region's is said.
#[test]
fn jsonl_refusals_are_said_in_swedish_by_line() {
    let (_tmp, dir, node, e) = start();
    let text = "{\"title\":\"Bra\",\"summary\":\"s\"}\n{\"titel\":\"Fel\",\"summary\":\"s\"}\n";
    let (status, body) = e.import("method", "m.jsonl", text);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("Ingenting importerades: 1 rad är fel."),
        "{body}"
    );
    assert!(body.contains("Rad 2:"), "{body}");
    assert!(
        body.contains(
            "Okänt fält ”titel”. Kända fält: title, summary, description, tags, links, record_id."
        ),
        "{body}"
    );
    assert!(
        !body.contains("unknown field"),
        "English on the page: {body}"
    );
    let text = "{\"title\":\"Bra\",\"summary\":\"s\",\"record_id\":\"00000000000000000000000000000001\"}\nnot json\n{\"summary\":\"s\"}\n";
    let (status, body) = e.import("method", "m.jsonl", text);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("3 rader är fel"), "{body}");
    assert!(
        body.contains("Postens id (record_id): Posten finns inte bland regionens egna poster"),
        "{body}"
    );
    assert!(body.contains("Raden är inte JSON"), "{body}");
    assert!(body.contains("Titel (title): Fyll i fältet."), "{body}");
    assert!(api_records(e.http, "method").is_empty());
    no_files_left(&dir);
    assert_eq!(node.terminate(10), 0);
}

/// A CSV row longer than [`CSV_ROW_BYTES_MAX`] is refused, said by its row; one just under
/// the limit is read (and refused for what it says, not for its length).
#[test]
fn a_csv_row_over_its_limit_is_refused() {
    let (_tmp, dir, node, e) = start();
    let long = "x".repeat(CSV_ROW_BYTES_MAX);
    let (status, _, body) = e.upload(
        "method",
        "lång.csv",
        &format!("title;summary\r\nA;{long}\r\n"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("rad 2 är längre än 1 MiB"), "{body}");
    let under = "x".repeat(CSV_ROW_BYTES_MAX - 100);
    let (status, _, body) = e.upload(
        "method",
        "lång.csv",
        &format!("title;summary\r\nA;{under}\r\n"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Sammanfattning (summary): Högst"), "{body}");
    assert!(api_records(e.http, "method").is_empty());
    no_files_left(&dir);
    assert_eq!(node.terminate(10), 0);
}

/// What an attacker's or a careless spreadsheet's CSV does is refused in Swedish by its row:
/// a file ending inside quotes (the rest of the file would be one published cell), a line
/// break in a one-line field, a row of delimiters only, cells past the header's said once a
/// row; blank lines count as rows. Nothing is imported and no file is left.
#[test]
fn broken_csv_is_refused_by_its_row_and_nothing_is_left() {
    let (_tmp, dir, node, e) = start();
    let head = "name;affiliation;fields;email;consent.given;consent.date\r\n";
    let refused = |content: &str, says: &[&str]| {
        let (status, _, body) = e.upload("researcher", "fel.csv", content);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("Ingenting importerades"), "{body}");
        for s in says {
            assert!(body.contains(s), "{s}: {body}");
        }
    };
    refused(
        &format!(
            "{head}A;\"Uni;f;a@example.se;ja;2026-01-01\r\nB;Other;f;b@example.se;ja;2026-01-01\r\n"
        ),
        &["citattecknet som börjar en cell på rad 2 avslutas aldrig"],
    );
    refused(
        &format!("{head}\r\n\r\nA;\"Uni\r\nB;Other\";f;a@example.se;ja;2026-01-01\r\n"),
        &[
            "Rad 4:",
            "Lärosäte eller organisation (affiliation): Fältet är en rad men cellen har en radbrytning; saknas ett avslutande citattecken?",
        ],
    );
    refused(
        &format!("{head}{}\r\n", ";".repeat(CSV_ROW_BYTES_MAX)),
        &["rad 2 har fler än 18 celler"],
    );
    refused(
        &format!("{head}A;B;f;a@example.se;ja;2026-01-01;x;y;z\r\n"),
        &["Rad 2:", "3 celler utan kolumn (den första är cell 7)"],
    );
    assert!(api_records(e.http, "researcher").is_empty());
    no_files_left(&dir);
    assert_eq!(node.terminate(10), 0);
}
