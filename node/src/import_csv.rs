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
//! Rows are numbered as a spreadsheet shows them: a blank line of the file is a row (the `csv`
//! crate would skip it uncounted), and a row whose quoted cell holds line breaks is one row, so
//! a row's number is its line's in a file without such cells. The JSON Lines written have one
//! line per row, the header row's line empty, a skipped row's and a blank one's too, so the
//! node's line numbers are the spreadsheet's row numbers.
//!
//! The file is read by [`Rows`], a streaming reader with memory bounded by the limits: a row of
//! at most [`CSV_ROW_BYTES_MAX`] bytes as written (delimiters, quotes and line breaks inside
//! cells counted) and at most [`cells_max`] cells, a file that does not end inside a quoted
//! cell. The JSON Lines stop at [`IMPORT_RECORDS_MAX`] records or [`CSV_JSON_BYTES_MAX`] bytes.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use spindel_protocol::entry::RecordId;
use spindel_protocol::record::Kind;

use crate::forms::{self, FormError, Input};
use crate::local::{
    IMPORT_BYTES_MAX, IMPORT_ERRORS_SHOWN, IMPORT_LINE_BYTES_MAX, IMPORT_RECORDS_MAX,
};
use crate::words::fields as fields_sv;

/// Longest row of a CSV file as written: its cells, delimiters, quotes and the line breaks
/// inside quoted cells, not the row's own line break (a record is at most 64 KiB encoded; a
/// row over this could never be one).
pub const CSV_ROW_BYTES_MAX: usize = IMPORT_LINE_BYTES_MAX;
/// Cells a row may have beyond the kind's columns (empty cells a spreadsheet adds after the
/// last column); see [`cells_max`].
pub const CSV_SPARE_CELLS: usize = 8;
/// Most bytes of JSON Lines a CSV file is turned into: as much as a JSON Lines file may be,
/// which the node's import would refuse if it were larger.
pub const CSV_JSON_BYTES_MAX: u64 = IMPORT_BYTES_MAX;
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

/// Most cells a row of a CSV file of `kind` may have, the header row's too: the kind's
/// columns and [`CSV_SPARE_CELLS`].
pub fn cells_max(kind: Kind) -> usize {
    columns(kind).len() + CSV_SPARE_CELLS
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
    /// A row over [`CSV_ROW_BYTES_MAX`]; `quoted` if it ended inside a quoted cell.
    RowTooLong { row: usize, quoted: bool },
    /// A row of more than `max` ([`cells_max`]) cells.
    TooManyCells { row: usize, max: usize },
    /// The file ends inside a quoted cell; the quote opened on row `row`.
    UnclosedQuote { row: usize },
    /// More than [`IMPORT_RECORDS_MAX`] records.
    TooManyRecords,
    /// More than [`CSV_JSON_BYTES_MAX`] bytes of JSON Lines.
    TooMuchJson,
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
    let cell = cell.trim().to_lowercase();
    if fields_sv::YES_CELLS.contains(&cell.as_str()) {
        Some(true)
    } else if fields_sv::NO_CELLS.contains(&cell.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// One row of a CSV file as [`Rows`] reads it: its number, and its cells.
#[derive(Debug, Default)]
pub struct Row {
    /// The row's number as a spreadsheet shows it (the first is 1).
    pub number: usize,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Row {
    /// The cells, as written (quotes undone).
    pub fn cells(&self) -> impl Iterator<Item = &[u8]> {
        self.ends.iter().scan(0, |start, &end| {
            let cell = &self.bytes[*start..end];
            *start = end;
            Some(cell)
        })
    }

    fn len(&self) -> usize {
        self.ends.len()
    }
}

/// Where [`Rows`] is within a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a row: line breaks here are blank lines, skipped.
    StartRow,
    StartCell,
    /// In a cell not in quotes: a quote is a quote.
    InCell,
    /// In a quoted cell: delimiters and line breaks are the cell's.
    InQuotes,
    /// A quote in a quoted cell: a second quote is one quote, else the quotes end.
    QuoteInQuotes,
}

/// A streaming CSV reader as spreadsheets write CSV (the `csv` crate's rules: a quote at a
/// cell's start opens quotes, `""` inside is a quote, CR, LF or CRLF ends a row, blank lines
/// give no row) whose memory is bounded: a row of at most [`CSV_ROW_BYTES_MAX`] bytes as
/// written and `cells_max` cells is refused as soon as it grows over either, and a file that
/// ends inside quotes is refused by the row its quote opened on. It numbers rows as a
/// spreadsheet does: a blank line is a row, a row with line breaks in quotes is one.
#[derive(Debug)]
pub struct Rows<R> {
    input: R,
    delimiter: u8,
    cells_max: usize,
    /// The number of the next row.
    next: usize,
    /// The last row ended with CR: an LF now is the rest of its line break.
    after_cr: bool,
}

impl<R: BufRead> Rows<R> {
    pub fn new(input: R, delimiter: u8, cells_max: usize) -> Rows<R> {
        Rows {
            input,
            delimiter,
            cells_max,
            next: 1,
            after_cr: false,
        }
    }

    /// Reads the next row into `row`; false at the end of the file.
    pub fn next_row(&mut self, row: &mut Row) -> Result<bool, CsvError> {
        row.bytes.clear();
        row.ends.clear();
        row.number = self.next;
        let mut state = State::StartRow;
        let mut raw = 0usize;
        loop {
            let chunk = self.input.fill_buf().map_err(CsvError::Io)?;
            if chunk.is_empty() {
                return match state {
                    State::StartRow => Ok(false),
                    State::InQuotes => Err(CsvError::UnclosedQuote { row: row.number }),
                    _ => {
                        self.next += 1;
                        end_cell(row, self.cells_max).map(|()| true)
                    }
                };
            }
            let mut used = 0;
            // How the row ended in this chunk, if it did.
            let mut ended: Option<Result<bool, CsvError>> = None;
            for &b in chunk {
                used += 1;
                if state == State::StartRow {
                    let after_cr = std::mem::take(&mut self.after_cr);
                    match b {
                        b'\n' if after_cr => continue,
                        b'\n' | b'\r' => {
                            // A blank line: a row, empty.
                            self.next += 1;
                            self.after_cr = b == b'\r';
                            continue;
                        }
                        _ => {
                            row.number = self.next;
                            state = State::StartCell;
                        }
                    }
                }
                let line_break = b == b'\n' || b == b'\r';
                if !line_break || state == State::InQuotes {
                    raw += 1;
                    if raw > CSV_ROW_BYTES_MAX {
                        ended = Some(Err(CsvError::RowTooLong {
                            row: row.number,
                            quoted: state == State::InQuotes,
                        }));
                        break;
                    }
                }
                state = match (state, b) {
                    (State::StartCell, b'"') => State::InQuotes,
                    (State::InQuotes, b'"') => State::QuoteInQuotes,
                    (State::InQuotes, _) => {
                        row.bytes.push(b);
                        State::InQuotes
                    }
                    (State::QuoteInQuotes, b'"') => {
                        row.bytes.push(b);
                        State::InQuotes
                    }
                    (_, _) if b == self.delimiter => {
                        if let Err(e) = end_cell(row, self.cells_max) {
                            ended = Some(Err(e));
                            break;
                        }
                        State::StartCell
                    }
                    (_, b'\n' | b'\r') => {
                        self.next += 1;
                        self.after_cr = b == b'\r';
                        ended = Some(end_cell(row, self.cells_max).map(|()| true));
                        break;
                    }
                    (_, _) => {
                        row.bytes.push(b);
                        State::InCell
                    }
                };
            }
            self.input.consume(used);
            if let Some(ended) = ended {
                return ended;
            }
        }
    }
}

/// Ends the cell being read of `row`, unless it would be one more than `cells_max`.
fn end_cell(row: &mut Row, cells_max: usize) -> Result<(), CsvError> {
    if row.ends.len() >= cells_max {
        return Err(CsvError::TooManyCells {
            row: row.number,
            max: cells_max,
        });
    }
    row.ends.push(row.bytes.len());
    Ok(())
}

/// A writer that refuses to write more than `max` bytes in all.
struct Capped<'a, W> {
    out: &'a mut W,
    written: u64,
    max: u64,
}

impl<W: Write> Capped<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), CsvError> {
        self.written += bytes.len() as u64;
        if self.written > self.max {
            return Err(CsvError::TooMuchJson);
        }
        self.out.write_all(bytes).map_err(CsvError::Io)
    }

    /// Empty lines up to line `to`, `lines` written so far.
    fn pad(&mut self, lines: &mut usize, to: usize) -> Result<(), CsvError> {
        while *lines < to {
            self.write(b"\n")?;
            *lines += 1;
        }
        Ok(())
    }
}

/// How much a conversion may give: records, and bytes of JSON Lines.
#[derive(Debug, Clone, Copy)]
struct Limits {
    records: usize,
    bytes: u64,
}

/// The limits of every conversion.
const LIMITS: Limits = Limits {
    records: IMPORT_RECORDS_MAX,
    bytes: CSV_JSON_BYTES_MAX,
};

/// Whether a field's cell is one line (its form input is; prose and lists may have more).
fn one_line(input: Input) -> bool {
    !matches!(input, Input::Area | Input::Lines | Input::Picks)
}

/// Reads CSV of `kind` from `input` and writes it to `out` as JSON Lines (see the module
/// documentation): one line per row of the file, only a record's not empty. Returns the
/// count of records. Every row is read; nothing of a file with a bad row is worth importing,
/// but its first [`IMPORT_ERRORS_SHOWN`] bad rows are all said. Stops at once, `out` half
/// written, when a limit is reached.
pub fn csv_to_json_lines(
    kind: Kind,
    input: impl BufRead,
    out: &mut impl Write,
) -> Result<u64, CsvError> {
    convert(kind, input, out, LIMITS)
}

fn convert(
    kind: Kind,
    mut input: impl BufRead,
    out: &mut impl Write,
    limits: Limits,
) -> Result<u64, CsvError> {
    let head = input.fill_buf().map_err(CsvError::Io)?;
    let head = &head[..head.len().min(SNIFF_BYTES)];
    let delimiter = delimiter(head);
    if head.starts_with(b"\xef\xbb\xbf") {
        input.consume(3);
    }
    let mut out = Capped {
        out,
        written: 0,
        max: limits.bytes,
    };
    let mut reader = Rows::new(input, delimiter, cells_max(kind));
    let mut record = Row::default();
    if !reader.next_row(&mut record)? {
        return Err(CsvError::NoHeader);
    }
    let header_row = record.number;
    let known = columns(kind);
    let mut named: Vec<Option<&'static str>> = Vec::with_capacity(record.len());
    let mut unknown = Vec::new();
    for cell in record.cells() {
        let cell = std::str::from_utf8(cell).map_err(|_| CsvError::NotUtf8 { row: header_row })?;
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
    let fields = forms::fields(kind);
    let mut count = 0u64;
    let mut invalid = 0usize;
    let mut shown = Vec::new();
    // Lines of JSON Lines written: one a row of the file, up to the row being read.
    let mut lines = 0usize;
    out.pad(&mut lines, header_row)?;
    while reader.next_row(&mut record)? {
        let row = record.number;
        let mut form: HashMap<String, String> = HashMap::new();
        let mut errors = Vec::new();
        let mut empty = true;
        // Cells with something in them but no column: said once for the row.
        let (mut homeless, mut first_homeless) = (0usize, 0usize);
        for (i, cell) in record.cells().enumerate() {
            let cell = std::str::from_utf8(cell).map_err(|_| CsvError::NotUtf8 { row })?;
            if cell.trim().is_empty() {
                continue;
            }
            empty = false;
            match named.get(i).copied().flatten() {
                Some(name) => {
                    form.insert(name.to_string(), cell.to_string());
                }
                None => {
                    if homeless == 0 {
                        first_homeless = i + 1;
                    }
                    homeless += 1;
                }
            }
        }
        if empty {
            continue;
        }
        if homeless > 0 {
            errors.push(FormError {
                field: None,
                message: fields_sv::cells_without_column(homeless, first_homeless),
            });
        }
        for field in fields {
            let Some(cell) = form.get_mut(field.name) else {
                continue;
            };
            if one_line(field.input) && cell.contains(['\n', '\r']) {
                errors.push(FormError {
                    field: Some(field.name.to_string()),
                    message: fields_sv::LINE_BREAK_IN_ONE_LINE.into(),
                });
                continue;
            }
            match field.input {
                Input::Lines | Input::Picks => *cell = cell.replace(LIST_SEPARATOR, "\n"),
                Input::Checkbox => match yes(cell) {
                    Some(true) => *cell = "on".into(),
                    Some(false) => *cell = String::new(),
                    None => errors.push(FormError {
                        field: Some(field.name.to_string()),
                        message: fields_sv::YES_OR_NO.into(),
                    }),
                },
                // A choice as its Swedish label (any case) or its value.
                Input::Choice(options) => {
                    let typed = cell.trim().to_lowercase();
                    if let Some((value, _)) = options
                        .iter()
                        .find(|(v, label)| label.to_lowercase() == typed || *v == typed)
                    {
                        *cell = value.to_string();
                    }
                }
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
                        message: fields_sv::BAD_RECORD_ID_CELL.into(),
                    });
                    None
                }
            },
        };
        match forms::record_from_form_all(kind, &form) {
            Ok(record) if errors.is_empty() => {
                count += 1;
                if count > limits.records as u64 {
                    return Err(CsvError::TooManyRecords);
                }
                let mut value = record.to_value();
                if let (Some(rid), Some(obj)) = (record_id, value.as_object_mut()) {
                    obj.insert(RECORD_ID_COLUMN.into(), rid.to_string().into());
                }
                let line = serde_json::to_string(&value)
                    .map_err(|e| CsvError::Io(std::io::Error::other(e)))?;
                out.pad(&mut lines, row - 1)?;
                out.write(line.as_bytes())?;
                out.write(b"\n")?;
                lines += 1;
            }
            checked => {
                if let Err(more) = checked {
                    errors.extend(more);
                }
                // One error a field, the first said.
                let mut seen = std::collections::HashSet::new();
                errors.retain(|e| e.field.is_none() || seen.insert(e.field.clone()));
                invalid += 1;
                if shown.len() < IMPORT_ERRORS_SHOWN {
                    shown.push(RowError { row, errors });
                }
                // Nothing of this file is imported; the rest is read for its errors only.
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
                let choice = forms::fields(kind).iter().find_map(|f| match f.input {
                    Input::Choice(options) if f.name == *name => Some(options),
                    _ => None,
                });
                match (checkbox, value.is_empty(), choice) {
                    (true, false, _) => fields_sv::YES.to_string(),
                    // A choice as a person reads it (Swedish); the import takes both.
                    (_, _, Some(options)) => options
                        .iter()
                        .find(|(v, _)| *v == value)
                        .map_or(value, |(_, label)| label.to_string()),
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
        assert!(
            rows[0].errors[0].message
                == "1 cell utan kolumn (den första är cell 3): rubrikraden har inget namn där.",
            "{rows:?}"
        );
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

    /// An answer's outcome in a cell: its Swedish label in any case, or its JSON value; any
    /// other word is said beside the outcome.
    #[test]
    fn an_experience_outcome_is_read_in_swedish_or_as_its_value() {
        let about = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29/0123456789abcdef0123456789abcdef";
        let text =
            format!("about;text;outcome\n{about};Vi provade;passade INTE\n{about};T;adapted\n");
        let (n, lines) = convert(Kind::Experience, &text).unwrap();
        let lines: Vec<&String> = lines.iter().filter(|l| !l.is_empty()).collect();
        assert_eq!(n, 2);
        assert!(
            lines[0].contains("\"outcome\":\"not-suitable\""),
            "{lines:?}"
        );
        assert!(lines[1].contains("\"outcome\":\"adapted\""), "{lines:?}");
        let Err(CsvError::Rows { rows, .. }) =
            convert(Kind::Experience, "about;text;outcome\nx;T;klart\n")
        else {
            panic!()
        };
        let fields: Vec<_> = rows[0].errors.iter().map(|e| e.field.clone()).collect();
        assert_eq!(
            fields,
            [Some("about".to_string()), Some("outcome".to_string())]
        );
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
            Err(CsvError::RowTooLong {
                row: 2,
                quoted: false
            })
        ));
        let fits = format!("title;summary\nA;{}\n", "x".repeat(100));
        assert!(convert(Kind::Method, &fits).is_ok());
    }

    /// Reads `kind` from `head` followed by `byte` without end: refused without holding it.
    fn endless(kind: Kind, head: &'static str, byte: u8) -> CsvError {
        use std::io::Read;
        let input = std::io::BufReader::new(head.as_bytes().chain(std::io::repeat(byte)));
        csv_to_json_lines(kind, input, &mut std::io::sink()).unwrap_err()
    }

    #[test]
    fn cells_without_a_column_are_one_error_a_row_and_a_row_has_at_most_cells_max() {
        let max = cells_max(Kind::Method);
        assert_eq!(max, columns(Kind::Method).len() + CSV_SPARE_CELLS);
        let extra = format!("A;S{}\n", ";x".repeat(max - 2));
        let text = format!("title;summary\n{extra}{extra}");
        let Err(CsvError::Rows { invalid, rows }) = convert(Kind::Method, &text) else {
            panic!()
        };
        assert_eq!(invalid, 2);
        for (row, n) in [(2, 0), (3, 1)] {
            assert_eq!(rows[n].row, row);
            assert_eq!(rows[n].errors.len(), 1, "{rows:?}");
            assert_eq!(
                rows[n].errors[0].message,
                format!(
                    "{} celler utan kolumn (den första är cell 3): rubrikraden har inget namn där.",
                    max - 2
                )
            );
        }
        // Empty cells past the header's are nothing; one cell more than the most is refused.
        let fits = format!(
            "title;summary{}\nA;S{}\n",
            ";".repeat(max - 2),
            ";".repeat(max - 2)
        );
        assert_eq!(convert(Kind::Method, &fits).unwrap().0, 1);
        let wide = format!("title;summary{}\n", ";".repeat(max - 1));
        assert!(
            matches!(convert(Kind::Method, &wide), Err(CsvError::TooManyCells { row: 1, max: m }) if m == max)
        );
        let wide = format!("title;summary\nA;S{}\n", ";".repeat(max - 1));
        assert!(matches!(
            convert(Kind::Method, &wide),
            Err(CsvError::TooManyCells { row: 2, .. })
        ));
    }

    #[test]
    fn a_row_is_measured_as_written_and_refused_before_it_is_held() {
        // Delimiters count: cells of fewer bytes than the most, the row as written more.
        let text = format!(
            "title;summary;;\nA;;;{}\n",
            "x".repeat(CSV_ROW_BYTES_MAX - 3)
        );
        assert!(matches!(
            convert(Kind::Method, &text),
            Err(CsvError::RowTooLong {
                row: 2,
                quoted: false
            })
        ));
        // Rows without end, of delimiters, of one cell, in quotes: refused as they grow.
        assert!(matches!(
            endless(Kind::Method, "", b';'),
            CsvError::TooManyCells { row: 1, .. }
        ));
        assert!(matches!(
            endless(Kind::Method, "title;summary\n", b';'),
            CsvError::TooManyCells { row: 2, .. }
        ));
        assert!(matches!(
            endless(Kind::Method, "title;summary\nA;", b'x'),
            CsvError::RowTooLong {
                row: 2,
                quoted: false
            }
        ));
        assert!(matches!(
            endless(Kind::Method, "title;summary\nA;\"", b'\n'),
            CsvError::RowTooLong {
                row: 2,
                quoted: true
            }
        ));
    }

    #[test]
    fn a_file_ending_inside_quotes_or_a_line_break_in_a_one_line_field_is_refused() {
        let head = "name;affiliation;fields;email;consent.given;consent.date\n";
        let text = format!(
            "{head}A;\"Uni;f;a@example.se;ja;2026-01-01\nB;Other;f;b@example.se;ja;2026-01-01\n"
        );
        assert!(
            matches!(
                convert(Kind::Researcher, &text),
                Err(CsvError::UnclosedQuote { row: 2 })
            ),
            "{:?}",
            convert(Kind::Researcher, &text)
        );
        let text = format!(
            "{head}A;\"Uni\";f;a@example.se;ja;2026-01-01\n\
             B;\"Uni\nC;Other\";\"f\ng\";b@example.se;ja;2026-01-01\n"
        );
        let Err(CsvError::Rows { invalid, rows }) = convert(Kind::Researcher, &text) else {
            panic!()
        };
        assert_eq!(invalid, 1);
        assert_eq!(rows[0].row, 3);
        assert_eq!(rows[0].errors.len(), 1, "the list may hold lines: {rows:?}");
        assert_eq!(rows[0].errors[0].field.as_deref(), Some("affiliation"));
        assert!(
            rows[0].errors[0]
                .message
                .contains("radbrytning; saknas ett avslutande citattecken?"),
            "{rows:?}"
        );
        // A quote inside a cell not quoted is a quote; "" in quotes is one.
        let text = "title;summary\nA \"B\";\"S \"\"x\"\"\"\n";
        let (_, lines) = convert(Kind::Method, text).unwrap();
        let v: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(
            (v["title"].as_str(), v["summary"].as_str()),
            (Some("A \"B\""), Some("S \"x\""))
        );
    }

    #[test]
    fn rows_are_numbered_as_a_spreadsheet_shows_them_blank_lines_too() {
        // Blank lines (LF and CRLF) are rows; a row with line breaks in quotes is one.
        let text = "\r\ntitle;summary;description\r\n\r\n\nA;S;\"a\r\nb\"\r\n;S;\r\nB;S;\n";
        let Err(CsvError::Rows { rows, .. }) = convert(Kind::Method, text) else {
            panic!()
        };
        assert_eq!(rows[0].row, 6, "{rows:?}");
        let text = "title;summary\n\n\nA;\"S\nS\"\n\nB;S\n";
        let (n, lines) = convert(Kind::Method, text).unwrap();
        assert_eq!(n, 2);
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert!(lines[..3].iter().all(String::is_empty), "{lines:?}");
        assert!(lines[3].contains("\"A\""), "{lines:?}");
        assert_eq!(lines[4], "");
        assert!(lines[5].contains("\"B\""), "{lines:?}");
    }

    #[test]
    fn the_conversion_stops_at_its_limits() {
        assert_eq!(LIMITS.records, IMPORT_RECORDS_MAX);
        assert_eq!(LIMITS.bytes, CSV_JSON_BYTES_MAX);
        let text = "title;summary\nA;S\nB;S\nC;S\n";
        let run = |limits| {
            let mut out = Vec::new();
            let got = super::convert(Kind::Method, text.as_bytes(), &mut out, limits);
            (got, out.len())
        };
        let (got, _) = run(Limits {
            records: 2,
            bytes: 1 << 20,
        });
        assert!(matches!(got, Err(CsvError::TooManyRecords)), "{got:?}");
        let (got, written) = run(Limits {
            records: 3,
            bytes: 40,
        });
        assert!(matches!(got, Err(CsvError::TooMuchJson)), "{got:?}");
        assert!(written <= 40, "{written}");
        let (got, _) = run(Limits {
            records: 3,
            bytes: 1 << 20,
        });
        assert_eq!(got.unwrap(), 3);
    }

    #[test]
    fn every_template_imports_as_is() {
        for kind in Kind::KNOWLEDGE.into_iter().filter(|k| *k != Kind::Profile) {
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
