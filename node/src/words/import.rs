//! An import in Swedish: a refused one line by line (a CSV file's lines are its spreadsheet
//! rows), with the field's label; then the upload and the progress page's words.

use spindel_protocol::entry::PAYLOAD_BYTES_MAX;
use spindel_protocol::ingest::{AUTHOR_ENTRIES_MAX, AUTHOR_PAYLOAD_BYTES_MAX, Refusal};
use spindel_protocol::record::{Kind, Problem};

use crate::forms;
use crate::import_csv::{
    self, CSV_JSON_BYTES_MAX, CSV_ROW_BYTES_MAX, CsvError, Format, RECORD_ID_COLUMN,
};
use crate::local::{
    IMPORT_BYTES_MAX, IMPORT_LINE_BYTES_MAX, IMPORT_RECORDS_MAX, ImportFileProblem, LineError,
    NodeError,
};

/// A refused import as the page says it: a sentence, then the bad lines (at most
/// [`crate::local::IMPORT_ERRORS_SHOWN`]), each with what is wrong field by field, and how
/// many more there were.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ImportFailure {
    pub summary: String,
    pub lines: Vec<ShownLine>,
    pub more: usize,
}

/// One bad line (a CSV file's spreadsheet row) of a refused import.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ShownLine {
    pub line: usize,
    pub problems: Vec<ShownProblem>,
}

/// One thing wrong on a line: the field's label (and its name in the file), and why.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ShownProblem {
    pub label: Option<String>,
    pub message: String,
}

impl ImportFailure {
    /// A refusal said in one sentence.
    pub(crate) fn said(summary: impl Into<String>) -> ImportFailure {
        ImportFailure {
            summary: summary.into(),
            lines: Vec::new(),
            more: 0,
        }
    }
}

/// How the page names a field of `kind` given by its name in the file: its form label and
/// the name (`Titel (title)`). A nested name serde gave without its object (`date`) is found
/// by its last part; a name the kind does not have is given as it is.
fn label(kind: Kind, name: &str) -> String {
    if name == RECORD_ID_COLUMN {
        return format!("Postens id ({RECORD_ID_COLUMN})");
    }
    let fields = forms::fields(kind);
    let found = fields.iter().find(|f| f.name == name).or_else(|| {
        fields.iter().find(|f| {
            f.name
                .rsplit_once('.')
                .is_some_and(|(_, last)| last == name)
        })
    });
    match found {
        Some(f) => format!("{} ({})", f.label, f.name),
        None => name.to_string(),
    }
}

/// The names a JSON Lines record of `kind` may have (nested objects by their outer name).
fn json_names(kind: Kind) -> String {
    let mut names: Vec<&str> = Vec::new();
    for f in forms::fields(kind) {
        let outer = f.name.split('.').next().unwrap_or(f.name);
        if !names.contains(&outer) {
            names.push(outer);
        }
    }
    names.push(RECORD_ID_COLUMN);
    names.join(", ")
}

/// A form's error in the import's words: a list's item is "punkt N" (the line is the file's).
fn problem(kind: Kind, e: forms::FormError) -> ShownProblem {
    let message = match e
        .message
        .strip_prefix(super::fields::LINE)
        .and_then(|r| r.split_once(": "))
    {
        Some((n, rest)) if n.bytes().all(|b| b.is_ascii_digit()) => super::fields::on_item(n, rest),
        _ => e.message,
    };
    ShownProblem {
        label: e.field.as_deref().map(|f| label(kind, f)),
        message,
    }
}

/// What is wrong with one line the node refused, in Swedish.
fn line_problem(kind: Kind, e: &LineError) -> ShownProblem {
    let said = |label: Option<String>, message: String| ShownProblem { label, message };
    let rid = || Some(label(kind, RECORD_ID_COLUMN));
    match e {
        LineError::JsonArray => said(
            None,
            "Raden är en JSON-lista; filen ska ha en post per rad (JSON Lines).".into(),
        ),
        LineError::RecordIdTwice { first, .. } => said(
            rid(),
            format!("Samma post finns också på rad {first}; en post kan bara vara med en gång."),
        ),
        LineError::Record(e) => record_problem(kind, e),
    }
}

/// What is wrong with the record of one line, or with the record it names, in Swedish.
fn record_problem(kind: Kind, e: &NodeError) -> ShownProblem {
    let said = |label: Option<String>, message: String| ShownProblem { label, message };
    let rid = || Some(label(kind, RECORD_ID_COLUMN));
    match e {
        NodeError::Schema(e) => match e.problem {
            Problem::NotJson => said(
                None,
                "Raden är inte JSON. Varje rad ska vara en post, till exempel {\"title\": \"…\", \"summary\": \"…\"}."
                    .into(),
            ),
            Problem::UnknownField => said(
                None,
                format!(
                    "Okänt fält ”{}”. Kända fält: {}.",
                    e.field.as_deref().unwrap_or_default(),
                    json_names(kind)
                ),
            ),
            Problem::Other if e.field.as_deref() == Some(RECORD_ID_COLUMN) => said(
                rid(),
                "Ange postens id som text med 32 tecken 0–9 och a–f (som i postens adress /post/…)."
                    .into(),
            ),
            Problem::Other => said(
                None,
                "Raden kunde inte läsas som en post: ett värde har fel form (till exempel text där en lista ska stå, eller ett tal inom citattecken)."
                    .into(),
            ),
            _ => problem(kind, forms::swedish(e)),
        },
        NodeError::UnknownRecord(_) => said(
            rid(),
            "Posten finns inte bland regionens egna poster; ange id för en av dem, eller lämna det tomt för en ny post."
                .into(),
        ),
        NodeError::Deleted(_) => said(
            rid(),
            super::errors::POST_REMOVED_FOR_GOOD.into(),
        ),
        NodeError::KindMismatch { stored, .. } => said(
            rid(),
            format!(
                "Posten är av en annan typ ({}); välj den typen eller lämna id tomt.",
                super::formats::kind_label(stored.as_str(), false)
            ),
        ),
        NodeError::TooLarge(got) => said(
            None,
            format!(
                "Posten blir {got} byte, mer än de {PAYLOAD_BYTES_MAX} en post får vara; korta texterna."
            ),
        ),
        NodeError::Refused(Refusal::PayloadQuota { would }) => said(
            None,
            format!(
                "Regionens poster skulle då bli {would} byte, mer än de \
                 {AUTHOR_PAYLOAD_BYTES_MAX} en region får ha. Ta bort poster som inte behövs, \
                 eller importera färre."
            ),
        ),
        NodeError::Refused(Refusal::AuthorQuota(_)) => said(
            None,
            format!(
                "Regionen har nått gränsen på {AUTHOR_ENTRIES_MAX} publiceringar och kan inte \
                 publicera fler."
            ),
        ),
        other => {
            tracing::warn!(error = %other, "an import line refused");
            said(
                None,
                "Raden kunde inte importeras; den som driver noden ser orsaken i nodens logg."
                    .into(),
            )
        }
    }
}

/// `invalid` lines of a file are wrong.
fn lines_wrong(invalid: usize) -> String {
    let lines = if invalid == 1 { "rad är" } else { "rader är" };
    format!("Ingenting importerades: {invalid} {lines} fel.")
}

/// A file with more records than an import takes.
fn too_many_records() -> String {
    format!("Ingenting importerades: filen har fler än {IMPORT_RECORDS_MAX} poster; dela upp den.")
}

/// A refused import of `kind` (`format` as uploaded) in Swedish.
pub(crate) fn failure(kind: Kind, format: Format, e: &NodeError) -> ImportFailure {
    let file = match format {
        Format::Csv => "Filen (omvandlad från CSV)",
        Format::JsonLines => "Filen",
    };
    match e {
        NodeError::ImportInvalid { invalid, lines } => ImportFailure {
            summary: lines_wrong(*invalid),
            lines: lines
                .iter()
                .map(|l| ShownLine {
                    line: l.line,
                    problems: vec![line_problem(kind, &l.error)],
                })
                .collect(),
            more: invalid - lines.len(),
        },
        NodeError::ImportFile { problem, .. } => ImportFailure::said(match problem {
            ImportFileProblem::TooLarge => format!(
                "Ingenting importerades: {file} är större än {} MiB; dela upp den.",
                IMPORT_BYTES_MAX / (1024 * 1024)
            ),
            ImportFileProblem::LineTooLong(n) => format!(
                "Ingenting importerades: rad {n} är längre än {} MiB.",
                IMPORT_LINE_BYTES_MAX / (1024 * 1024)
            ),
            ImportFileProblem::NotUtf8(n) => format!(
                "Ingenting importerades: filen är inte sparad som UTF-8-text (rad {n}). Spara den som UTF-8."
            ),
            ImportFileProblem::Unreadable(_) => {
                "Ingenting importerades: filen kunde inte läsas på noden.".into()
            }
        }),
        NodeError::ImportRefusedAt { line, error, .. } => ImportFailure {
            summary: "Ingenting importerades: en rad gick inte att publicera.".into(),
            lines: vec![ShownLine {
                line: *line,
                problems: vec![record_problem(kind, error)],
            }],
            more: 0,
        },
        NodeError::ImportEmpty => {
            ImportFailure::said("Ingenting importerades: filen innehåller inga poster.")
        }
        NodeError::ImportTooLarge => ImportFailure::said(too_many_records()),
        NodeError::ImportPending { .. } => ImportFailure::said(
            "Importen är godkänd men inte helt skriven än; noden gör klart den själv. Importera inte filen igen.",
        ),
        NodeError::CatchingUp { .. } | NodeError::RestoredNotCaughtUp => ImportFailure::said(
            "Ingenting importerades: noden kommer just nu ikapp sin egen logg hos aggregatorn. Försök igen om en stund.",
        ),
        NodeError::Cancelled | NodeError::Stopped => {
            ImportFailure::said("Ingenting importerades: noden stängdes av under importen.")
        }
        other => {
            tracing::warn!(error = %other, "an import from the editor failed");
            ImportFailure::said(
                "Ingenting importerades: noden kunde inte göra importen. Den som driver noden ser \
                 orsaken i nodens logg.",
            )
        }
    }
}

/// A CSV file that gave no records, in Swedish.
pub(crate) fn csv_failure(kind: Kind, e: CsvError) -> ImportFailure {
    let known = || import_csv::columns(kind).join(", ");
    match e {
        CsvError::NoHeader => ImportFailure::said(format!(
            "Ingenting importerades: filen har ingen rubrikrad. Första raden ska ha kolumnernas namn: {}.",
            known()
        )),
        CsvError::UnknownColumns(unknown) => ImportFailure::said(format!(
            "Ingenting importerades: {} {} i rubrikraden. Kända kolumner: {}.",
            if unknown.len() == 1 {
                "okänd kolumn"
            } else {
                "okända kolumner"
            },
            unknown
                .iter()
                .map(|u| format!("”{u}”"))
                .collect::<Vec<_>>()
                .join(", "),
            known()
        )),
        CsvError::DuplicateColumn(c) => ImportFailure::said(format!(
            "Ingenting importerades: kolumnen ”{c}” finns två gånger i rubrikraden."
        )),
        CsvError::NotUtf8 { row } => ImportFailure::said(format!(
            "Ingenting importerades: filen är inte sparad som UTF-8-text (rad {row}). Spara den som ”CSV UTF-8” i kalkylprogrammet."
        )),
        CsvError::RowTooLong { row, quoted } => ImportFailure::said(format!(
            "Ingenting importerades: rad {row} är längre än {} MiB; ingen post är så stor.{}",
            CSV_ROW_BYTES_MAX / (1024 * 1024),
            if quoted {
                " Saknas ett avslutande citattecken?"
            } else {
                ""
            }
        )),
        CsvError::TooManyCells { row, max } => ImportFailure::said(format!(
            "Ingenting importerades: rad {row} har fler än {max} celler; typen har {} kolumner.",
            import_csv::columns(kind).len()
        )),
        CsvError::UnclosedQuote { row } => ImportFailure::said(format!(
            "Ingenting importerades: citattecknet som börjar en cell på rad {row} avslutas \
             aldrig, så resten av filen skulle bli en enda cell; lägg till det avslutande \
             citattecknet."
        )),
        CsvError::TooManyRecords => ImportFailure::said(too_many_records()),
        CsvError::TooMuchJson => ImportFailure::said(format!(
            "Ingenting importerades: filen blir större än {} MiB när den omvandlas; dela upp den.",
            CSV_JSON_BYTES_MAX / (1024 * 1024)
        )),
        CsvError::Rows { invalid, rows } => ImportFailure {
            summary: lines_wrong(invalid),
            more: invalid - rows.len(),
            lines: rows
                .into_iter()
                .map(|r| ShownLine {
                    line: r.row,
                    problems: r.errors.into_iter().map(|e| problem(kind, e)).collect(),
                })
                .collect(),
        },
        CsvError::Io(e) => {
            tracing::warn!(error = %e, "a CSV import could not be read or converted");
            ImportFailure::said(CSV_UNREADABLE)
        }
    }
}

/// A CSV file that could not be read or converted.
pub(crate) const CSV_UNREADABLE: &str = "Ingenting importerades: filen kunde inte läsas som CSV.";

// The upload (`/importera`) and its progress page.
pub(crate) const UPLOAD_NOT_RECEIVED: &str = "Filen kunde inte tas emot: ";
pub(crate) const UPLOAD_CUT: &str = "Filen kom inte fram hel: ";
pub(crate) const UPLOAD_NOT_SAVED: &str = "Filen kunde inte sparas: ";

/// An upload larger than `mib` MiB.
pub(crate) fn upload_too_large(mib: u64) -> String {
    format!("Filen är större än {mib} MiB; dela upp den.")
}

/// A form that did not arrive whole; `e` says why.
pub(crate) fn form_cut(e: &dyn std::fmt::Display) -> String {
    format!("Formuläret kom inte fram helt: {e}")
}

pub(crate) const ONE_FILE_AT_A_TIME: &str = "Välj en fil i taget.";
pub(crate) const TWO_IMPORTS_RUNNING: &str =
    "Två importer tas emot just nu; försök igen när de är klara.";
/// The file's name when the browser gave none.
pub(crate) const THE_FILE: &str = "filen";
pub(crate) const CHOOSE_KIND: &str = "Välj vilken typ av poster filen har.";
pub(crate) const CHOOSE_FILE: &str = "Välj en fil att importera.";

/// An import that published `n` posts.
pub(crate) fn imported(n: u64) -> String {
    if n == 1 {
        "1 post importerad och publicerad.".to_string()
    } else {
        format!("{n} poster importerade och publicerade.")
    }
}

/// Added to [`imported`] for lines that held what their record holds already.
pub(crate) fn imported_unchanged(n: u64) -> String {
    if n == 1 {
        " 1 rad var oförändrad och publicerades inte igen.".to_string()
    } else {
        format!(" {n} rader var oförändrade och publicerades inte igen.")
    }
}

/// Added to [`imported`] when no aggregator has answered since the node started.
pub(crate) const IMPORTED_OFFLINE: &str = " Ingen aggregator har svarat ännu sedan noden startade: posterna skickas \
     när förbindelsen är tillbaka. Kan en annan kopia av den här noden vara \
     igång, be den som driver noden stoppa den först.";

/// An import's line in the audit trail: `n` posts, the region's log from `first` to `last`.
pub(crate) fn import_detail(n: u64, first: u64, last: u64) -> String {
    format!("{n} poster, regionens logg {first}-{last}")
}

pub(crate) const NO_SUCH_IMPORT: &str = "Importen finns inte";
pub(crate) const IMPORT_UNKNOWN: &str =
    "Den importen är okänd här (sidan kan vara gammal, eller noden har startats om).";
pub(crate) const CHECKING_LINES: &str = "Raderna kontrolleras…";

/// An import's progress: `done` of `total` posts signed.
pub(crate) fn signed_of(done: u64, total: u64) -> String {
    format!("{done} av {total} poster signerade…")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::local::ImportLineError;
    use spindel_protocol::entry::RecordId;

    /// Every way the node refuses an import is said in Swedish, without the CLI's English or
    /// its commands.
    #[test]
    fn every_import_refusal_is_said_in_swedish() {
        let rid = RecordId([1; 16]);
        let file = |problem| NodeError::ImportFile {
            name: "f".into(),
            problem,
        };
        let lines = |errors: Vec<LineError>| NodeError::ImportInvalid {
            invalid: errors.len() + 2,
            lines: errors
                .into_iter()
                .enumerate()
                .map(|(i, error)| ImportLineError { line: i + 1, error })
                .collect(),
        };
        let cases = [
            (file(ImportFileProblem::TooLarge), "större än 64 MiB"),
            (
                file(ImportFileProblem::LineTooLong(7)),
                "rad 7 är längre än 1 MiB",
            ),
            (file(ImportFileProblem::NotUtf8(3)), "UTF-8"),
            (NodeError::ImportEmpty, "inga poster"),
            (NodeError::ImportTooLarge, "fler än 1000000 poster"),
            (
                NodeError::ImportRefusedAt {
                    name: "f".into(),
                    line: 4,
                    error: Box::new(NodeError::Refused(Refusal::PayloadQuota { would: 9 })),
                },
                "mer än de",
            ),
            (
                lines(vec![
                    LineError::JsonArray,
                    LineError::RecordIdTwice {
                        record_id: rid,
                        first: 1,
                    },
                    LineError::Record(NodeError::KindMismatch {
                        record_id: rid,
                        stored: Kind::Innovation,
                        given: Kind::Method,
                    }),
                    LineError::Record(NodeError::Deleted(rid)),
                    LineError::Record(NodeError::TooLarge(70_000)),
                ]),
                "och",
            ),
            (NodeError::AggregatorAuthors, "nodens logg"),
        ];
        for (e, says) in cases {
            let f = failure(Kind::Method, Format::JsonLines, &e);
            let all = format!(
                "{} {:?} och {}",
                f.summary,
                f.lines
                    .iter()
                    .flat_map(|l| l.problems.iter().map(|p| p.message.clone()))
                    .collect::<Vec<_>>(),
                f.more
            );
            assert!(all.contains(says), "{e}: {all}");
            assert!(
                f.summary.starts_with("Ingenting importerades"),
                "{e}: {all}"
            );
            for english in ["line", "record", "spindel", "nothing"] {
                assert!(!all.contains(english), "{e}: {all}");
            }
        }
        let f = failure(
            Kind::Method,
            Format::JsonLines,
            &lines(vec![LineError::Record(NodeError::KindMismatch {
                record_id: rid,
                stored: Kind::Innovation,
                given: Kind::Method,
            })]),
        );
        assert_eq!(f.more, 2);
        assert_eq!(
            f.lines[0].problems[0].label.as_deref(),
            Some("Postens id (record_id)")
        );
    }

    #[test]
    fn labels_are_the_forms_with_the_name_in_the_file() {
        assert_eq!(
            label(Kind::Innovation, "sroi.ratio"),
            "SROI-kvot (sroi.ratio)"
        );
        assert_eq!(
            label(Kind::Researcher, "date"),
            "Samtyckets datum (consent.date)"
        );
        assert_eq!(label(Kind::Method, "titel"), "titel");
        assert_eq!(
            json_names(Kind::Researcher),
            "name, affiliation, fields, email, phone, consent, record_id"
        );
    }
}
