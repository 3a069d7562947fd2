//! `spindel export` and `spindel verify-export`: the knowledge bank as JSON Lines or CSV, read a
//! chunk at a time (from the running node over its control socket, else from its directory),
//! and a JSON Lines export checked line by line without trusting the node that wrote it.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use spindel_node::control::Request;
use spindel_node::{ExportChunk, ExportFilter, ExportFormat};

use crate::args::DataDir;
use crate::node_call::with_node;

/// Bytes of one line `verify-export` reads: a record's payload (64 KiB) twice over in hex, its
/// data and its entry fit with room to spare; a longer line is refused, not read.
pub(crate) const VERIFY_LINE_BYTES_MAX: usize = 512 * 1024;
/// Failing lines `verify-export` names; the rest are counted.
pub(crate) const VERIFY_ERRORS_SHOWN: usize = 20;

/// `spindel export`: every current record the filter finds, to standard output.
pub(crate) fn export(dir: &DataDir, filter: ExportFilter, format: ExportFormat) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut first = true;
    let mut count = 0usize;
    let mut write = |c: &ExportChunk, first: &mut bool, count: &mut usize| -> Result<()> {
        let mut buf = Vec::new();
        spindel_node::write_lines(&mut buf, format, &c.lines, *first)?;
        *first = false;
        *count += c.lines.len();
        out.write_all(&buf).context("cannot write the export")?;
        Ok(())
    };
    let mut after: Option<String> = None;
    loop {
        let request = Request::Export {
            filter: filter.clone(),
            after: after.clone(),
        };
        // A running node answers one chunk a request; a stopped one is opened once and read
        // to the end here.
        let chunk: ExportChunk = with_node(dir, &request, |node| {
            let mut from = after.clone();
            loop {
                let c = spindel_node::export_chunk(&node, &filter, from)?;
                write(&c, &mut first, &mut count)?;
                match c.next {
                    Some(n) => from = Some(n),
                    None => {
                        return Ok(ExportChunk {
                            lines: Vec::new(),
                            next: None,
                        });
                    }
                }
            }
        })?;
        write(&chunk, &mut first, &mut count)?;
        match chunk.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    if first && format == ExportFormat::Csv {
        // No record at all: the header row still says what the columns are.
        let mut buf = Vec::new();
        spindel_node::write_lines(&mut buf, format, &[], true)?;
        std::io::stdout()
            .write_all(&buf)
            .context("cannot write the export")?;
    }
    eprintln!(
        "exported {count} {}",
        if count == 1 { "record" } else { "records" }
    );
    Ok(())
}

/// What `verify-export` found.
#[derive(Debug, Serialize)]
pub(crate) struct Verified {
    pub lines: usize,
    /// Lines whose signature and fields hold.
    pub signed: usize,
    /// Of those, lines whose payload and data were checked too (the rest carry no payload:
    /// contact details left out, or a payload the exporting node did not hold).
    pub payload_checked: usize,
    pub failed: usize,
    /// The first failing lines, each with what does not hold.
    pub failures: Vec<Failure>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Failure {
    pub line: usize,
    pub error: String,
}

/// `spindel verify-export`: every line of a JSON Lines export checked; exit 1 if one fails.
pub(crate) fn verify_export(file: &Path, json: bool) -> Result<()> {
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file)
            .with_context(|| format!("cannot read the export {}", file.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut v = Verified {
        lines: 0,
        signed: 0,
        payload_checked: 0,
        failed: 0,
        failures: Vec::new(),
    };
    let mut reader = reader;
    let mut buf = Vec::new();
    let mut number = 0usize;
    loop {
        buf.clear();
        // One line at most VERIFY_LINE_BYTES_MAX (+1 to see that it is longer).
        let read = std::io::Read::take(&mut reader, VERIFY_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read the export {}", file.display()))?;
        if read == 0 {
            break;
        }
        number += 1;
        let whole = buf.last() == Some(&b'\n');
        if !whole && buf.len() > VERIFY_LINE_BYTES_MAX {
            bail!(
                "{} line {number}: over {VERIFY_LINE_BYTES_MAX} bytes: not a line of an export",
                file.display()
            );
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() {
            continue;
        }
        if number == 1 && line.starts_with("record_id,") {
            bail!(
                "{}: this is the CSV form of an export, which carries no signatures: verify the JSON Lines form (spindel export --format jsonl)",
                file.display()
            );
        }
        v.lines += 1;
        match spindel_node::verify_line(line) {
            Ok(check) => {
                v.signed += 1;
                v.payload_checked += usize::from(check.payload);
            }
            Err(error) => {
                v.failed += 1;
                if v.failures.len() < VERIFY_ERRORS_SHOWN {
                    v.failures.push(Failure {
                        line: number,
                        error,
                    });
                }
            }
        }
    }
    crate::output::emit(json, &v, || {
        let mut text = format!(
            "{} lines: {} signed by their authors ({} with their content checked too), {} failed",
            v.lines, v.signed, v.payload_checked, v.failed
        );
        for f in &v.failures {
            text.push_str(&format!("\nline {}: {}", f.line, f.error));
        }
        text
    })?;
    if v.failed > 0 {
        bail!(
            "{} of {} lines of {} do not verify (first: line {}: {})",
            v.failed,
            v.lines,
            file.display(),
            v.failures[0].line,
            v.failures[0].error
        );
    }
    Ok(())
}
