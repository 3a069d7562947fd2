//! `spindel`: the command of the social economy's learning network.
//!
//! Thin: argument parsing, reading inputs, printing, exit codes (contract.md section 3:
//! 0 success, 2 usage error, 1 any other error; every error is one line on stderr).
//! The work is done by `spindel_node`.

mod output;

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use spindel_node::local::{self, LocalNode, Role};
use spindel_node::query::Query;
use spindel_protocol::entry::RecordId;
use spindel_protocol::record::Kind;

/// Largest `--file` accepted by `publish` (a record is at most 64 KiB encoded).
const PUBLISH_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Largest `--file` accepted by `import`.
const IMPORT_FILE_BYTES_MAX: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "spindel",
    version,
    about = "Regional knowledge of the social economy, signed by its region, shared nationally.",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct DataDir {
    /// The node's data directory.
    #[arg(long, env = "SPINDEL_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,
}

#[derive(Args, Debug, Clone, Copy)]
struct JsonFlag {
    /// Print exactly one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new node: key file (0600), config and store; a region signs its profile.
    Init {
        #[command(flatten)]
        dir: DataDir,
        /// Short name: 1-32 of a-z, 0-9 and -.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "region")]
        role: RoleArg,
        /// The region's name as people read it (default: NAME).
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Print this node's NodeId.
    Id {
        #[command(flatten)]
        dir: DataDir,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Validate, sign and append one record (JSON from a file or stdin).
    Publish {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long, value_parser = parse_kind)]
        kind: Kind,
        /// JSON file of the record, or - for stdin.
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// Publish a new version of this existing record.
        #[arg(long, value_name = "RECORD_ID", value_parser = parse_record_id)]
        id: Option<RecordId>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Bulk publish from JSON Lines, all or nothing.
    Import {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long, value_parser = parse_kind)]
        kind: Kind,
        /// JSON Lines file, one record a line (- for stdin).
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete a record for ever: a signed tombstone; its content is purged.
    Delete {
        #[command(flatten)]
        dir: DataDir,
        #[arg(value_parser = parse_record_id)]
        record_id: RecordId,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Find current records, newest first.
    Query {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long, value_parser = parse_kind)]
        kind: Option<Kind>,
        /// A region's name (or display name).
        #[arg(long, value_name = "NAME")]
        region: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        /// Words to search for (Swedish and English stemming).
        #[arg(long, value_name = "WORDS")]
        text: Option<String>,
        /// Records per page (1-1000, default 20).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// The next_cursor of a previous page.
        #[arg(long, value_name = "C")]
        cursor: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Identity, heads of every known author, counts, refusals and forks.
    Status {
        #[command(flatten)]
        dir: DataDir,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum RoleArg {
    Region,
    Aggregator,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse::<Kind>().map_err(|e| e.to_string())
}

fn parse_record_id(s: &str) -> Result<RecordId, String> {
    s.parse::<RecordId>().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line: clap's first paragraph names the problem (it may list missing
            // arguments on the following lines).
            let rendered = e.render().to_string();
            let first: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{} (see `spindel --help`)", first.join(" "));
            return ExitCode::from(2);
        }
    };
    init_tracing();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPINDEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn open(dir: &DataDir) -> Result<LocalNode> {
    Ok(LocalNode::open(&dir.data_dir)?)
}

fn run(cli: Cli) -> Result<()> {
    let mut rng = rand_core::OsRng;
    match cli.command {
        Command::Init {
            dir,
            name,
            role,
            display_name,
            out,
        } => {
            let role = match role {
                RoleArg::Region => Role::Region,
                RoleArg::Aggregator => Role::Aggregator,
            };
            let info = local::init(
                &dir.data_dir,
                &name,
                role,
                display_name.as_deref(),
                &mut rng,
            )?;
            output::emit(out.json, &info, || {
                format!(
                    "created {} node {:?} in {}\nnode id: {}",
                    info.role.as_str(),
                    info.name,
                    dir.data_dir.display(),
                    info.node_id
                )
            })
        }
        Command::Id { dir, out } => {
            let node = open(&dir)?;
            let info = node.info();
            output::emit(out.json, &info, || info.node_id.clone())
        }
        Command::Publish {
            dir,
            kind,
            file,
            id,
            out,
        } => {
            let node = open(&dir)?;
            let text = read_input(&file, PUBLISH_FILE_BYTES_MAX)?;
            let published = node.publish(kind, &text, id, &mut rng, local::now_ms())?;
            output::emit(out.json, &published, || {
                format!(
                    "published {kind} {} (seq {})",
                    published.record_id, published.seq
                )
            })
        }
        Command::Import {
            dir,
            kind,
            file,
            out,
        } => {
            let node = open(&dir)?;
            let text = read_input(&file, IMPORT_FILE_BYTES_MAX)?;
            let bar = output::progress_bar("signing");
            let imported = node.import(kind, &text, &mut rng, local::now_ms(), &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
                if done == total {
                    bar.set_message("writing");
                }
            });
            bar.finish_and_clear();
            let imported = imported?;
            output::emit(out.json, &imported, || {
                format!(
                    "imported {} {kind} records (seq {}-{})",
                    imported.imported, imported.first_seq, imported.last_seq
                )
            })
        }
        Command::Delete {
            dir,
            record_id,
            out,
        } => {
            let node = open(&dir)?;
            let deleted = node.delete(record_id, local::now_ms())?;
            output::emit(out.json, &deleted, || {
                format!("deleted {} (seq {})", deleted.record_id, deleted.seq)
            })
        }
        Command::Query {
            dir,
            kind,
            region,
            tag,
            text,
            limit,
            cursor,
            out,
        } => {
            let node = open(&dir)?;
            let page = node.query(&Query {
                kind,
                region,
                tag,
                text,
                limit,
                cursor,
            })?;
            output::emit(out.json, &page, || output::records_table(&page))
        }
        Command::Status { dir, out } => {
            let node = open(&dir)?;
            let status = node.status()?;
            output::emit(out.json, &status, || output::status_text(&status))
        }
    }
}

/// Reads a file (or stdin for `-`), refusing more than `max` bytes and non-UTF-8 text.
fn read_input(path: &Path, max: u64) -> Result<String> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        if std::io::stdin().is_terminal() {
            bail!("--file - reads the record from stdin, but stdin is a terminal");
        }
        std::io::stdin()
            .take(max + 1)
            .read_to_end(&mut bytes)
            .context("reading stdin")?;
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    if bytes.len() as u64 > max {
        bail!("{} is over the limit of {max} bytes", path.display());
    }
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}
