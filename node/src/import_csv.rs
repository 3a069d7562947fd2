//! CSV for the editor's import (`/importera`): the rows of a spreadsheet become JSON Lines
//! through the editor's own form conversion ([`forms::record_from_form_all`]), so a row
//! follows the form's rules and its errors are the form's, beside the column's label; and the
//! template of each kind to download. No I/O but the reader and writer given.
//!
//! A file is what spreadsheets write: UTF-8 (a byte-order mark is dropped), `;` or `,` between
//! cells (whichever the header row holds more of; Swedish Excel writes `;`), CRLF or LF, cells
//! in quotes that may hold line breaks. The header row names the columns by the record's JSON
//! names as the form has them (`title`, `sroi.ratio`, `consent.date`), in any order, each at
//! most once; a missing column is an empty field. An optional `record_id` column publishes a
//! new version of an own record. A list (tags, links, ...) is one item a line in its cell, as
//! in the form, or items separated by ` | `. The consent checkbox is `ja` or `nej` (also `x`,
//! `1`, `true`; empty is no). A row whose cells are all empty is skipped.
//!
//! The JSON Lines written have one line per row of the file, the header row's line empty and a
//! skipped row's too, so the node's line numbers are the spreadsheet's row numbers.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use spindel_protocol::entry::RecordId;
use spindel_protocol::record::Kind;

use crate::forms::{self, FormError, Input};
use crate::local::{IMPORT_ERRORS_SHOWN, IMPORT_LINE_BYTES_MAX};

/// Longest row of a CSV file, all its cells (a record is at most 64 KiB encoded; a row over
/// this could never be one).
pub const CSV_ROW_BYTES_MAX: usize = IMPORT_LINE_BYTES_MAX;
/// Items of a list in one cell, besides one a line.
pub const LIST_SEPARATOR: &str = " | ";
/// The column that names an own record to publish a new version of.
pub const RECORD_ID_COLUMN: &str = "record_id";
/// Bytes of a file looked at to tell CSV from JSON Lines, and to find the delimiter.
const SNIFF_BYTES: usize = 8 * 1024;

/// The two formats `/importera` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    Csv,
}

/// The format of an uploaded file: by its name's extension (`.csv`; `.jsonl`, `.ndjson`,
/// `.json`), else by its first bytes (`{` or `[` is JSON).
pub fn format_of(file_name: &str, head: &[u8]) -> Format {
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".csv") {
        return Format::Csv;
    }
    if [".jsonl", ".ndjson", ".json"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        return Format::JsonLines;
    }
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => Format::JsonLines,
        _ => Format::Csv,
    }
}

/// The columns a CSV of `kind` may have, in the form's order, `record_id` last.
pub fn columns(kind: Kind) -> Vec<&'static str> {
    forms::fields(kind)
        .iter()
        .map(|f| f.name)
        .chain([RECORD_ID_COLUMN])
        .collect()
}

/// One refused row: its number as a spreadsheet shows it (the header is row 1) and what is
/// wrong, one error per field (the field is the column's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: usize,
    pub errors: Vec<FormError>,
}

/// Why a CSV file gave no JSON Lines.
#[derive(Debug)]
pub enum CsvError {
    /// No header row.
    NoHeader,
    /// Header cells that are no column of the kind (as written).
    UnknownColumns(Vec<String>),
    /// A column named twice.
    DuplicateColumn(String),
    /// A row that is not UTF-8.
    NotUtf8 { row: usize },
    /// A row over [`CSV_ROW_BYTES_MAX`].
    RowTooLong { row: usize },
    /// Rows that are no records: `invalid` of them, the first [`IMPORT_ERRORS_SHOWN`] here.
    Rows { invalid: usize, rows: Vec<RowError> },
    /// The file could not be read, or the JSON Lines not written.
    Io(std::io::Error),
}

/// The delimiter of a header row: `;` or `,`, whichever it holds more of (`;` on a tie, as
/// Swedish spreadsheets write it; a one-column file has neither).
fn delimiter(head: &[u8]) -> u8 {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    let count = |d: u8| line.iter().filter(|&&b| b == d).count();
    if count(b',') > count(b';') {
        b','
    } else {
        b';'
    }
}

/// Whether a consent cell says yes; `None` if it says neither yes nor no.
fn yes(cell: &str) -> Option<bool> {
    match cell.trim().to_lowercase().as_str() {
        "ja" | "j" | "x" | "1" | "true" | "sant" | "yes" | "on" => Some(true),
        "" | "nej" | "n" | "0" | "false" | "falskt" | "no" => Some(false),
        _ => None,
    }
}

/// Reads CSV of `kind` from `input` and writes it to `out` as JSON Lines (see the module
/// documentation): one line per row, the header's and skipped rows' empty. Returns the count
/// of records. Every row is read; nothing of a file with a bad row is worth importing, but
/// its first [`IMPORT_ERRORS_SHOWN`] bad rows are all said.
pub fn csv_to_json_lines(
    kind: Kind,
    mut input: impl BufRead,
    out: &mut impl Write,
) -> Result<u64, CsvError> {
    let head = input.fill_buf().map_err(CsvError::Io)?;
    let head = &head[..head.len().min(SNIFF_BYTES)];
    let delimiter = delimiter(head);
    if head.starts_with(b"\xef\xbb\xbf") {
        input.consume(3);
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let io = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => CsvError::Io(e),
        other => CsvError::Io(std::io::Error::other(format!("{other:?}"))),
    };
    let mut record = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut record).map_err(io)? {
        return Err(CsvError::NoHeader);
    }
    if record.as_slice().len() > CSV_ROW_BYTES_MAX {
        return Err(CsvError::RowTooLong { row: 1 });
    }
    let known = columns(kind);
    let mut named: Vec<Option<&'static str>> = Vec::with_capacity(record.len());
    let mut unknown = Vec::new();
    for cell in &record {
        let cell = std::str::from_utf8(cell).map_err(|_| CsvError::NotUtf8 { row: 1 })?;
        let cell = cell.trim();
        if cell.is_empty() {
            named.push(None);
            continue;
        }
        match known.iter().find(|k| **k == cell) {
            Some(k) if named.contains(&Some(*k)) => {
                return Err(CsvError::DuplicateColumn(cell.to_string()));
            }
            Some(k) => named.push(Some(*k)),
            None => {
                unknown.push(cell.to_string());
                named.push(None);
            }
        }
    }
    if !unknown.is_empty() {
        return Err(CsvError::UnknownColumns(unknown));
    }
    if named.iter().all(Option::is_none) {
        return Err(CsvError::NoHeader);
    }
    out.write_all(b"\n").map_err(CsvError::Io)?;
    let fields = forms::fields(kind);
    let mut count = 0u64;
    let mut invalid = 0usize;
    let mut shown = Vec::new();
    // The header is row 1.
    let mut row = 1usize;
    while reader.read_byte_record(&mut record).map_err(io)? {
        row += 1;
        if record.as_slice().len() > CSV_ROW_BYTES_MAX {
            return Err(CsvError::RowTooLong { row });
        }
        let mut form: HashMap<String, String> = HashMap::new();
        let mut errors = Vec::new();
        let mut empty = true;
        for (i, cell) in record.iter().enumerate() {
            let cell = std::str::from_utf8(cell).map_err(|_| CsvError::NotUtf8 { row })?;
            if cell.trim().is_empty() {
                continue;
            }
            empty = false;
            match named.get(i).copied().flatten() {
                Some(name) => {
                    form.insert(name.to_string(), cell.to_string());
                }
                None => errors.push(FormError {
                    field: None,
                    message: format!(
                        "Cell {} har ingen kolumn: rubrikraden har inget namn där.",
                        i + 1
                    ),
                }),
            }
        }
        if empty {
            out.write_all(b"\n").map_err(CsvError::Io)?;
            continue;
        }
        for field in fields {
            let Some(cell) = form.get_mut(field.name) else {
                continue;
            };
            match field.input {
                Input::Lines => *cell = cell.replace(LIST_SEPARATOR, "\n"),
                Input::Checkbox => match yes(cell) {
                    Some(true) => *cell = "on".into(),
                    Some(false) => *cell = String::new(),
                    None => errors.push(FormError {
                        field: Some(field.name.to_string()),
                        message: "Skriv ja eller nej.".into(),
                    }),
                },
                _ => {}
            }
        }
        let record_id = match form.remove(RECORD_ID_COLUMN) {
            None => None,
            Some(given) => match given.trim().parse::<RecordId>() {
                Ok(rid) => Some(rid),
                Err(_) => {
                    errors.push(FormError {
                        field: Some(RECORD_ID_COLUMN.to_string()),
                        message: "Ange postens id, 32 tecken 0–9 och a–f (som i postens adress \
                                  /post/…), eller lämna cellen tom för en ny post."
                            .into(),
                    });
                    None
                }
            },
        };
        match forms::record_from_form_all(kind, &form) {
            Ok(record) if errors.is_empty() => {
                let mut value = record.to_value();
                if let (Some(rid), Some(obj)) = (record_id, value.as_object_mut()) {
                    obj.insert(RECORD_ID_COLUMN.into(), rid.to_string().into());
                }
                let line = serde_json::to_string(&value)
                    .map_err(|e| CsvError::Io(std::io::Error::other(e)))?;
                out.write_all(line.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(CsvError::Io)?;
                count += 1;
            }
            checked => {
                if let Err(more) = checked {
                    errors.extend(more);
                }
                invalid += 1;
                if shown.len() < IMPORT_ERRORS_SHOWN {
                    shown.push(RowError { row, errors });
                }
                // Nothing of this file is imported; the rest is read for its errors only.
                out.write_all(b"\n").map_err(CsvError::Io)?;
            }
        }
    }
    if invalid > 0 {
        return Err(CsvError::Rows {
            invalid,
            rows: shown,
        });
    }
    Ok(count)
}

/// The example of each field of `kind`, as a form holds it: the protocol's examples
/// (`protocol/src/fields.rs`), which its tests keep valid.
fn example(kind: Kind) -> HashMap<String, String> {
    let mut record = serde_json::Map::new();
    for f in spindel_protocol::fields::fields(kind) {
        if let Ok(value) = serde_json::from_str(f.example) {
            record.insert(f.name.to_string(), value);
        }
    }
    forms::form_from_record(kind, &serde_json::Value::Object(record))
}

/// The CSV template of `kind`: a byte-order mark, the header row of every column, and one
/// example row that imports as is; `;` between cells and CRLF after rows, as Swedish Excel
/// writes them.
pub fn template(kind: Kind) -> Vec<u8> {
    let example = example(kind);
    let mut out = b"\xef\xbb\xbf".to_vec();
    {
        let mut w = csv::WriterBuilder::new()
            .delimiter(b';')
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut out);
        let names = columns(kind);
        let cells: Vec<String> = names
            .iter()
            .map(|name| {
                let value = example.get(*name).cloned().unwrap_or_default();
                let checkbox = forms::fields(kind)
                    .iter()
                    .any(|f| f.name == *name && f.input == Input::Checkbox);
                match (checkbox, value.is_empty()) {
                    (true, false) => "ja".to_string(),
                    _ => value,
                }
            })
            .collect();
        // Writing to memory does not fail.
        let _ = w.write_record(&names);
        let _ = w.write_record(&cells);
        let _ = w.flush();
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn convert(kind: Kind, text: &str) -> Result<(u64, Vec<String>), CsvError> {
        let mut out = Vec::new();
        let n = csv_to_json_lines(kind, text.as_bytes(), &mut out)?;
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        Ok((n, lines))
    }

    #[test]
    fn the_format_is_told_by_name_then_content() {
        assert_eq!(format_of("a.CSV", b"{"), Format::Csv);
        assert_eq!(format_of("a.jsonl", b"title;summary"), Format::JsonLines);
        assert_eq!(
            format_of("a.txt", b"\xef\xbb\xbf {\"title\""),
            Format::JsonLines
        );
        assert_eq!(format_of("a.txt", b"title;summary"), Format::Csv);
        assert_eq!(format_of("", b"["), Format::JsonLines);
    }

    #[test]
    fn a_spreadsheet_file_becomes_json_lines_numbered_as_its_rows() {
        let text = "\u{feff}title;summary;tags;sroi.ratio\r\n\
                    Språkcafé;Möten;\"integration\r\nspråk\";3,4\r\n\
                    ;;;\r\n\
                    Två;S;a | b;\r\n";
        let (n, lines) = convert(Kind::Innovation, text).unwrap();
        assert_eq!(n, 2);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[0], "", "the header's line");
        let first: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(first["tags"], serde_json::json!(["integration", "språk"]));
        assert_eq!(first["sroi"]["ratio"], 3.4);
        assert_eq!(lines[2], "", "an empty row is skipped");
        let second: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
        assert_eq!(second["tags"], serde_json::json!(["a", "b"]));
        // Commas, LF, no BOM.
        let (n, _) = convert(Kind::Method, "title,summary\nT,\"S, med komma\"\n").unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn bad_rows_are_said_by_row_number_and_column() {
        let text = "title;summary;links\nA;S;\n;S;\nB;S;\nC;S;ftp://x\n";
        let Err(CsvError::Rows { invalid, rows }) = convert(Kind::Method, text) else {
            panic!()
        };
        assert_eq!(invalid, 2);
        assert_eq!(rows[0].row, 3);
        assert_eq!(rows[0].errors[0].field.as_deref(), Some("title"));
        assert_eq!(rows[1].row, 5);
        assert_eq!(rows[1].errors[0].field.as_deref(), Some("links"));
        let Err(CsvError::UnknownColumns(u)) = convert(Kind::Method, "titel;summary\nA;S\n") else {
            panic!()
        };
        assert_eq!(u, ["titel"]);
        assert!(matches!(
            convert(Kind::Method, "title;title\n"),
            Err(CsvError::DuplicateColumn(_))
        ));
        assert!(matches!(convert(Kind::Method, ""), Err(CsvError::NoHeader)));
        let Err(CsvError::Rows { rows, .. }) = convert(Kind::Method, "title;summary\nA;S;extra\n")
        else {
            panic!()
        };
        assert!(rows[0].errors[0].message.contains("Cell 3"), "{rows:?}");
        let Err(CsvError::Rows { rows, .. }) = convert(
            Kind::Researcher,
            "name;affiliation;fields;consent.given;consent.date\nA;B;c;kanske;2026-01-01\n",
        ) else {
            panic!()
        };
        assert_eq!(rows[0].errors[0].field.as_deref(), Some("consent.given"));
        let Err(CsvError::Rows { rows, .. }) =
            convert(Kind::Method, "title;summary;record_id\nA;S;abc\n")
        else {
            panic!()
        };
        assert_eq!(rows[0].errors[0].field.as_deref(), Some("record_id"));
    }

    #[test]
    fn a_file_not_saved_as_utf8_is_refused_by_its_row() {
        // "Kål" as Windows-1252 (Excel's plain "CSV" in Sweden).
        let mut out = Vec::new();
        let got = csv_to_json_lines(Kind::Method, &b"title;summary\nK\xe5l;S\n"[..], &mut out);
        assert!(matches!(got, Err(CsvError::NotUtf8 { row: 2 })), "{got:?}");
    }

    #[test]
    fn a_row_over_the_limit_is_refused() {
        let long = "x".repeat(CSV_ROW_BYTES_MAX);
        let text = format!("title;summary\nA;{long}\n");
        assert!(matches!(
            convert(Kind::Method, &text),
            Err(CsvError::RowTooLong { row: 2 })
        ));
        let fits = format!("title;summary\nA;{}\n", "x".repeat(100));
        assert!(convert(Kind::Method, &fits).is_ok());
    }

    #[test]
    fn every_template_imports_as_is() {
        for kind in [Kind::Method, Kind::Innovation, Kind::Researcher] {
            let t = template(kind);
            assert!(t.starts_with(b"\xef\xbb\xbf"));
            let text = String::from_utf8(t).unwrap();
            assert!(text.contains("\r\n"));
            let header = text.trim_start_matches('\u{feff}').lines().next().unwrap();
            assert_eq!(header, columns(kind).join(";"), "{kind}");
            let (n, lines) = convert(kind, &text).unwrap_or_else(|e| panic!("{kind}: {e:?}"));
            assert_eq!(n, 1, "{kind}: {lines:?}");
        }
    }
}
