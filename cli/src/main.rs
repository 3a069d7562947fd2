//! `spindel`: the command of the social economy's learning network.
//!
//! Thin: argument parsing, reading inputs, printing, exit codes (docs/interface.md, the command
//! line: 0 success, 2 usage error, 1 any other error; every error is one line on stderr).
//! The work is done by `spindel_node`.

mod demo;
mod output;
mod users;

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::sync::Arc;

use spindel_node::backup::BackedUp;
use spindel_node::control::{self, Request};
use spindel_node::local::{
    self, Allowed, Deleted, Disallowed, Imported, LocalNode, Published, Role, Status,
};
use spindel_node::query::QueryPage;
use spindel_node::server::{NodeHandle, NodeSettings};
use spindel_node::transport::{Limits, PeerAddr};
use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;
use spindel_protocol::record::Kind;
use spindel_protocol::sync::QueryRequest;

/// Largest `--file` accepted by `publish` (a record is at most 64 KiB encoded).
const PUBLISH_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Largest `--file` accepted by `import`.
const IMPORT_FILE_BYTES_MAX: u64 = spindel_node::control::IMPORT_BYTES_MAX;

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
        /// The region's website (http or https), in its profile: the privacy page
        /// (/integritet) names it as the contact for the region's records.
        #[arg(long, value_name = "URL")]
        website: Option<String>,
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
        /// The record kind: profile, innovation, method or researcher (fields: docs/records.md).
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
        /// The record kind: profile, innovation, method or researcher (fields: docs/records.md).
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
        /// The record's id (32 hex characters), as `publish` and `query` print it.
        #[arg(value_parser = parse_record_id)]
        record_id: RecordId,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Find current records, newest first (in a local node, or at a remote node with --from).
    Query {
        /// The node's data directory.
        #[arg(
            long,
            env = "SPINDEL_DATA_DIR",
            value_name = "DIR",
            required_unless_present = "from"
        )]
        data_dir: Option<PathBuf>,
        /// Ask a remote node over QUIC instead (NODEID@HOST:PORT), as the node in --data-dir
        /// (nodes answer member nodes only).
        #[arg(long, value_name = "PEER", value_parser = parse_peer)]
        from: Option<PeerAddr>,
        /// Only records of this kind: profile, innovation, method or researcher.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<Kind>,
        /// Only records of the region admitted under this name (or with this NodeId).
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
    /// Run the node until SIGINT/SIGTERM: replicate over QUIC, serve queries and the control
    /// channel.
    Run {
        #[command(flatten)]
        dir: DataDir,
        /// QUIC address to listen on (port 0 picks a free port); an aggregator needs one.
        #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
        listen: Option<SocketAddr>,
        /// An aggregator to replicate with (NODEID@HOST:PORT); repeat for several.
        #[arg(long = "aggregator", value_name = "PEER", value_parser = parse_peer)]
        aggregators: Vec<PeerAddr>,
        /// Serve the read-only HTTP/JSON API on this address (port 0 picks a free port).
        #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
        http: Option<SocketAddr>,
        /// Serve the operator's /metrics (Prometheus), /healthz and full /api/v1/status (with
        /// peers' addresses and errors) on this address; keep it internal.
        #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
        metrics: Option<SocketAddr>,
        /// Serve the editor ("Redaktionen": staff log in and publish from a browser) on this
        /// address; keep it on loopback and reach it through an SSH tunnel or a reverse proxy
        /// with TLS. Off unless given. Accounts: `spindel user add`.
        #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
        admin: Option<SocketAddr>,
        /// Where readers find the knowledge bank (the region's mirror or the national site),
        /// like https://kunskapsbank.example.se: the editor links each post to its public page
        /// there.
        #[arg(long, value_name = "URL", value_parser = parse_public_url)]
        public_url: Option<String>,
        /// Settings file (default: DIR/spindel.toml if it exists): listen, http, metrics, admin,
        /// public_url, aggregators, trusted_proxies, log_level, log_format, [limits]. Flags override it. A file given here must exist.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Aggregator: admit a region (also while the node runs).
    Allow {
        #[command(flatten)]
        dir: DataDir,
        /// The region's NodeId (64 hex characters), as `spindel id` prints it on the region.
        #[arg(value_parser = parse_node_id)]
        node_id: NodeId,
        /// The region's name in the network (1-32 of a-z, 0-9, -), unique.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Aggregator: end a region's admission (also while the node runs): its sessions are
    /// refused, its name is freed, its new records refused; what it published stays.
    Disallow {
        #[command(flatten)]
        dir: DataDir,
        /// The region's NodeId (64 hex characters).
        #[arg(value_parser = parse_node_id)]
        node_id: NodeId,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Catch up with an aggregator once and exit (first-time set-up of a region).
    Sync {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long, value_name = "PEER", value_parser = parse_peer)]
        aggregator: PeerAddr,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// A whole national network on loopback: one aggregator and the eight regions of SOUL's
    /// action plan (or N), each publishing sample records, synced over QUIC.
    Demo {
        /// How many regions (1-64; the first eight are the seed's platforms).
        #[arg(long, default_value_t = 8, value_name = "N")]
        regions: usize,
        /// Where the aggregator serves HTTP (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:7780", value_name = "HOST:PORT", value_parser = parse_addr)]
        http: SocketAddr,
        /// Exit 0 once every region's records are at the aggregator and back in every region.
        #[arg(long)]
        exit_when_synced: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Write a consistent backup of the node (its key, admissions, every signed log, and the
    /// editor's staff accounts and audit trail) to FILE, also while it runs. The file holds
    /// the secret key and personal data about the staff: keep it like the key.
    Backup {
        #[command(flatten)]
        dir: DataDir,
        /// The backup file (replaced atomically if it exists).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Make a node from a backup (every entry is verified again). Refuses a DIR that holds a
    /// node. A restored region signs nothing until it has caught up with its aggregator.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        #[command(flatten)]
        dir: DataDir,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Staff accounts of the editor (`run --admin`): add, list, remove, reset-password, audit.
    User {
        #[command(subcommand)]
        command: users::UserCommand,
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

/// A listen address: `HOST:PORT` with an IP address or a host name (`localhost:7780`).
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?} is not HOST:PORT ({e})"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{s:?} names no address"))
}

fn parse_record_id(s: &str) -> Result<RecordId, String> {
    s.parse::<RecordId>().map_err(|e| e.to_string())
}

fn parse_peer(s: &str) -> Result<PeerAddr, String> {
    s.parse::<PeerAddr>().map_err(|e| e.to_string())
}

fn parse_node_id(s: &str) -> Result<NodeId, String> {
    s.parse::<NodeId>().map_err(|e| e.to_string())
}

/// Sends a request to the node running in `dir`; `None` if no node runs there.
fn via_control<'b, T: serde::de::DeserializeOwned>(
    dir: &Path,
    request: &Request,
    body: &dyn Fn() -> Result<Box<dyn Read + 'b>>,
) -> Result<Option<T>> {
    match control::request_with_body(dir, request, &mut body()?)? {
        Some(v) => Ok(Some(
            serde_json::from_value(v).context("the running node sent an unexpected answer")?,
        )),
        None => Ok(None),
    }
}

/// How long a command waits for a node that is starting: `spindel run` holds the store before
/// its control socket is bound.
const NODE_START_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a write on a restored node that no running node holds waits for one to start
/// (it could not sign by itself).
const RESTORED_START_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How often the socket is looked for meanwhile.
const NODE_START_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs `request` through the node running in `dir`, or `direct` on the store when none runs.
/// A node that is just starting (store held, socket not bound yet) is waited for.
fn with_node<T: serde::de::DeserializeOwned>(
    dir: &DataDir,
    request: &Request,
    direct: impl FnOnce(LocalNode) -> Result<T>,
) -> Result<T> {
    with_node_body(dir, request, &|| Ok(Box::new(std::io::empty())), direct)
}

/// [`with_node`] for a request followed by bytes (an import's file): `body` gives them anew
/// at each try.
fn with_node_body<'b, T: serde::de::DeserializeOwned>(
    dir: &DataDir,
    request: &Request,
    body: &dyn Fn() -> Result<Box<dyn Read + 'b>>,
    direct: impl FnOnce(LocalNode) -> Result<T>,
) -> Result<T> {
    let writes = matches!(
        request,
        Request::Publish { .. } | Request::Import { .. } | Request::Delete { .. }
    );
    check_data_dir(&dir.data_dir)?;
    let deadline = std::time::Instant::now() + NODE_START_WAIT;
    let restored_deadline = std::time::Instant::now() + RESTORED_START_WAIT;
    loop {
        if let Some(answer) = via_control(&dir.data_dir, request, body)? {
            return Ok(answer);
        }
        match LocalNode::open(&dir.data_dir) {
            // A restored node signs nothing until its running self has caught up: if one is
            // starting (`spindel run ... &` just before), wait for it instead of failing.
            Ok(node)
                if writes && node.restored() && std::time::Instant::now() < restored_deadline =>
            {
                drop(node);
                if !wait_for_socket(dir, restored_deadline) {
                    return direct(LocalNode::open(&dir.data_dir)?);
                }
            }
            Ok(node) => return direct(node),
            Err(local::NodeError::Store(spindel_node::store::StoreError::Locked { .. }))
                if std::time::Instant::now() < deadline =>
            {
                // Wait for the starting node's control socket (or for the lock to go).
                wait_for_socket(dir, deadline);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until a starting node's control socket is there, or until `deadline`; says which.
fn wait_for_socket(dir: &DataDir, deadline: std::time::Instant) -> bool {
    let socket = dir.data_dir.join(control::SOCKET_FILE);
    while !socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(NODE_START_POLL);
    }
    socket.exists()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
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
    // `run` reads its settings file first: the log level may come from it.
    let settings = match &cli.command {
        Command::Run { dir, config, .. } => match run_file(&dir.data_dir, config.as_deref()) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
                return ExitCode::from(1);
            }
        },
        _ => None,
    };
    init_tracing(&cli.command, settings.as_ref());
    // Fault injection for the crash tests (tests/tests/integrity.rs); never set in operation.
    match std::env::var("SPINDEL_FAULT_INJECT").as_deref() {
        Ok("abort-before-erase") => spindel_node::store::ABORT_BEFORE_ERASE
            .store(true, std::sync::atomic::Ordering::Relaxed),
        Ok(point) => {
            if let Some(fault) = local::ImportFault::named(point) {
                local::IMPORT_FAULT.store(fault as u8, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Err(_) => {}
    }
    match run(cli, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

/// How `spindel run` logs.
#[derive(Debug, Clone, clap::Args)]
struct LogArgs {
    /// Log level: error, warn, info (the default for `run`), debug or trace. Overrides
    /// RUST_LOG; the libraries' own chatter stays at warn unless RUST_LOG names them.
    #[arg(long, value_name = "LEVEL", value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: Option<String>,
    /// Log line format: text (the default: one line per event; colours only on a terminal)
    /// or json (one JSON object per line, for journald or Loki).
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum LogFormat {
    Text,
    Json,
}

/// Libraries that log their internals at info; kept at warn unless asked for by name.
const QUIET_LIBRARIES: &str = "tantivy=warn,sled=warn,quinn=warn,quinn_proto=warn,rustls=warn";

/// The log filter: `--log-level` (with the libraries kept quiet), else RUST_LOG (or the older
/// SPINDEL_LOG) as given, else `default` (info for `run`, warn for one-shot commands).
fn log_filter(level: Option<&str>, default: &str) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    if let Some(level) = level {
        return EnvFilter::new(format!("{level},{QUIET_LIBRARIES}"));
    }
    for var in ["RUST_LOG", "SPINDEL_LOG"] {
        if let Ok(f) = EnvFilter::try_from_env(var) {
            return f;
        }
    }
    EnvFilter::new(format!("{default},{QUIET_LIBRARIES}"))
}

/// `spindel run`'s settings file (`DIR/spindel.toml` or `--config FILE`). Flags override it.
/// Values are `Spanned` so an error names the line they are on.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    listen: Option<toml::Spanned<String>>,
    http: Option<toml::Spanned<String>>,
    metrics: Option<toml::Spanned<String>>,
    admin: Option<toml::Spanned<String>>,
    #[serde(default)]
    aggregators: Vec<toml::Spanned<String>>,
    log_level: Option<toml::Spanned<String>>,
    log_format: Option<LogFormat>,
    /// Transport limits (`[limits]`); a key left out keeps its default.
    #[serde(default)]
    limits: Limits,
    /// Reverse proxies (addresses) whose `X-Forwarded-For` gives the client's address.
    #[serde(default)]
    trusted_proxies: Vec<toml::Spanned<String>>,
    /// Where readers find the knowledge bank; the editor links to it.
    public_url: Option<toml::Spanned<String>>,
}

/// What a key of the settings file takes, as an error of the wrong type says it.
fn run_file_expects(key: &str) -> &'static str {
    match key {
        "listen" | "http" | "metrics" | "admin" => "a \"HOST:PORT\" string",
        "aggregators" => "a list of \"NODEID@HOST:PORT\" strings",
        "trusted_proxies" => "a list of IP address strings, like [\"127.0.0.1\"]",
        "public_url" => "an http or https URL string, like \"https://kunskapsbank.example.se\"",
        "log_level" => "one of \"error\", \"warn\", \"info\", \"debug\", \"trace\"",
        "log_format" => "\"text\" or \"json\"",
        "limits" => "a table ([limits])",
        k if k.starts_with("limits.") => "a whole number",
        _ => "another value",
    }
}

/// A place in a settings file: the 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The key set on a line of a settings file (`key = value`), with the table it is in
/// (`limits.connections_max`); `None` for a line that sets no key.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let mut table: Option<String> = None;
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix('[') {
            table = rest.split(']').next().map(|t| t.trim().to_string());
        }
        if i + 1 == line {
            let (key, _) = l.split_once('=')?;
            let key = key.trim().trim_matches('"');
            if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
                return None;
            }
            return Some(match table {
                Some(t) => format!("{t}.{key}"),
                None => key.to_string(),
            });
        }
    }
    None
}

/// The key an error on `line` is about: the key set on that line, the table a `[table]` line
/// opens, or, inside a value over several lines (a list), the key above that the value
/// belongs to.
fn key_at(text: &str, line: usize) -> Option<String> {
    let here = text.lines().nth(line.checked_sub(1)?)?.trim();
    if let Some(rest) = here.strip_prefix('[') {
        return rest.split(']').next().map(|t| t.trim().to_string());
    }
    (1..=line).rev().find_map(|n| key_on_line(text, n))
}

/// The line that sets `key` in `table` (`None`: the top level), if a line does.
fn line_of_key(text: &str, table: Option<&str>, key: &str) -> Option<usize> {
    let want = match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    };
    (1..=text.lines().count()).find(|&n| key_on_line(text, n).as_deref() == Some(&want))
}

/// A TOML or serde error of the settings file in one line: the line, the column, the key, and
/// what was wrong in words that name what the key takes.
fn settings_error(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return anyhow::anyhow!("{}: {message}", path.display());
    };
    let (line, column) = line_col(text, span.start);
    let key = key_at(text, line);
    let place = format!("{} line {line}, column {column}", path.display());
    // Unknown key: `unknown field `x`, expected one of `a`, `b`` (the span is the key itself).
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        let known = rest
            .split_once(", expected ")
            .map(|(_, k)| k.trim_start_matches("one of ").replace('`', ""))
            .unwrap_or_default();
        let shown = key.clone().unwrap_or_else(|| name.to_string());
        return anyhow::anyhow!("{place}: {shown}: unknown key `{name}` (the keys are: {known})");
    }
    let Some(key) = key else {
        return anyhow::anyhow!("{place}: {message}");
    };
    // Wrong type: `invalid type: string "x", expected a sequence`.
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let got = if rest.starts_with("string") {
            "a string"
        } else if rest.starts_with("integer") || rest.starts_with("floating point") {
            "a number"
        } else if rest.starts_with("boolean") {
            "true or false"
        } else if rest.starts_with("sequence") {
            "a list"
        } else if rest.starts_with("map") {
            "a table"
        } else {
            "another type"
        };
        let expects = run_file_expects(&key);
        return anyhow::anyhow!("{place}: {key}: expected {expects}, got {got}");
    }
    if message.starts_with("unknown variant") {
        let expects = run_file_expects(&key);
        return anyhow::anyhow!("{place}: {key}: expected {expects} ({message})");
    }
    // A value TOML cannot read, most often text without quotes (`listen = 127.0.0.1:7780`).
    let value = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(_, v)| v.trim())
        .unwrap_or("");
    if value.is_empty() || value.starts_with(['"', '\'', '[', '{']) {
        anyhow::anyhow!("{place}: {key}: {message}")
    } else {
        anyhow::anyhow!(
            "{place}: {key}: text needs quotes, like {key} = \"{}\" ({message})",
            value.split('#').next().unwrap_or("").trim()
        )
    }
}

/// `run`'s settings, read and checked once: every address and peer parsed.
#[derive(Debug, Default)]
struct Settings {
    /// The file they came from, if any.
    path: Option<PathBuf>,
    listen: Option<SocketAddr>,
    http: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    aggregators: Vec<PeerAddr>,
    log_level: Option<String>,
    log_format: Option<LogFormat>,
    limits: Limits,
    trusted_proxies: Vec<std::net::IpAddr>,
    public_url: Option<String>,
}

/// A `public_url`: an absolute http or https URL, kept without a trailing slash so paths
/// (`/post/...`) are appended to it.
fn parse_public_url(s: &str) -> std::result::Result<String, String> {
    let url = s.trim().trim_end_matches('/');
    // Paths are appended to it: a query, a fragment or a user name would break every link
    // (and `"`, `<`, `>` or spaces have no place in an address).
    let host_start = url.find("://").map_or(0, |i| i + 3);
    if !spindel_protocol::record::is_http_url(url)
        || url.contains(['?', '#', '"', '<', '>', ' ', '\''])
        || url[host_start..].contains('@')
    {
        return Err(format!(
            "{s:?} is not an http or https address without a query, fragment or user name (where readers find the knowledge bank, like https://kunskapsbank.example.se)"
        ));
    }
    Ok(url.to_string())
}

/// The settings file of `run`: `--config FILE` (which must exist), else `DIR/spindel.toml` if
/// there is one.
fn run_file(dir: &Path, config: Option<&Path>) -> Result<Settings> {
    let path = match config {
        Some(p) => p.to_path_buf(),
        None => {
            let p = dir.join("spindel.toml");
            if !p.exists() {
                return Ok(Settings::default());
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the settings file {}", path.display()))?;
    parse_run_file(&path, &text)
}

/// The settings in `text` (read from `path`): every value checked; an error is one line naming
/// the file, the line and the key.
fn parse_run_file(path: &Path, text: &str) -> Result<Settings> {
    let file: RunFile = toml::from_str(text).map_err(|e| settings_error(path, text, &e))?;
    let at = |span: std::ops::Range<usize>, key: &str, e: String| {
        let (line, _) = line_col(text, span.start);
        anyhow::anyhow!("{} line {line}: {key}: {e}", path.display())
    };
    let addr = |field: &str, v: Option<toml::Spanned<String>>| {
        v.map(|v| parse_addr(v.get_ref()).map_err(|e| at(v.span(), field, e)))
            .transpose()
    };
    let aggregators = file
        .aggregators
        .iter()
        .enumerate()
        .map(|(i, a)| {
            parse_peer(a.get_ref()).map_err(|e| at(a.span(), &format!("aggregators[{i}]"), e))
        })
        .collect::<Result<Vec<_>>>()?;
    file.limits.check().map_err(|e| {
        let line = line_of_key(text, Some("limits"), e.field)
            .map_or(String::new(), |l| format!(" line {l}"));
        anyhow::anyhow!("{}{line}: {e}", path.display())
    })?;
    let trusted_proxies = file
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.get_ref().parse::<std::net::IpAddr>().map_err(|_| {
                at(
                    a.span(),
                    &format!("trusted_proxies[{i}]"),
                    format!("{:?} is not an IP address (a proxy is named by its address, like \"127.0.0.1\")", a.get_ref()),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(l) = &file.log_level
        && !["error", "warn", "info", "debug", "trace"].contains(&l.get_ref().as_str())
    {
        return Err(at(
            l.span(),
            "log_level",
            format!(
                "{:?} is not one of error, warn, info, debug, trace",
                l.get_ref()
            ),
        ));
    }
    let public_url = file
        .public_url
        .as_ref()
        .map(|u| parse_public_url(u.get_ref()).map_err(|e| at(u.span(), "public_url", e)))
        .transpose()?;
    Ok(Settings {
        public_url,
        listen: addr("listen", file.listen)?,
        http: addr("http", file.http)?,
        metrics: addr("metrics", file.metrics)?,
        admin: addr("admin", file.admin)?,
        aggregators,
        log_level: file.log_level.map(toml::Spanned::into_inner),
        log_format: file.log_format,
        limits: file.limits,
        trusted_proxies,
        path: Some(path.to_path_buf()),
    })
}

fn init_tracing(command: &Command, file: Option<&Settings>) {
    use std::io::IsTerminal;
    let (level, format, default) = match command {
        Command::Run { log, .. } => (
            log.log_level
                .as_deref()
                .or(file.and_then(|f| f.log_level.as_deref())),
            log.log_format
                .or(file.and_then(|f| f.log_format))
                .unwrap_or(LogFormat::Text),
            "info",
        ),
        _ => (None, LogFormat::Text, "warn"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(level, default))
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// A data directory given that is a file (or not a directory) is named as such.
fn check_data_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => bail!("{} is a file, not a data directory", dir.display()),
        _ => Ok(()),
    }
}

fn open(dir: &DataDir) -> Result<LocalNode> {
    check_data_dir(&dir.data_dir)?;
    Ok(LocalNode::open(&dir.data_dir)?)
}

fn run(cli: Cli, settings: Option<Settings>) -> Result<()> {
    let mut rng = rand_core::OsRng;
    match cli.command {
        Command::Init {
            dir,
            name,
            role,
            display_name,
            website,
            out,
        } => {
            let role = match role {
                RoleArg::Region => Role::Region,
                RoleArg::Aggregator => Role::Aggregator,
            };
            let profile = local::InitProfile {
                display_name: display_name.as_deref(),
                website: website.as_deref(),
            };
            let info = local::init_with(&dir.data_dir, &name, role, profile, &mut rng)?;
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
            let info = local::identity(&dir.data_dir)?;
            output::emit(out.json, &info, || info.node_id.clone())
        }
        Command::Publish {
            dir,
            kind,
            file,
            id,
            out,
        } => {
            let text = read_input(&file, PUBLISH_FILE_BYTES_MAX)?;
            let request = Request::Publish {
                kind,
                json: text.clone(),
                record_id: id.map(|r| r.to_hex()),
            };
            let published: Published = with_node(&dir, &request, |node| {
                Ok(node.publish(kind, &text, id, &mut rng, local::now_ms())?)
            })?;
            output::warn_offline(published.offline);
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
            // A file is read from disk (twice: validated, then signed) or sent to the running
            // node as it is read, never held in memory; stdin and pipes are read first.
            let input = ImportInput::open(&file)?;
            let request = Request::Import {
                kind,
                bytes: input.len(),
                name: file.display().to_string(),
            };
            let body = || input.body();
            let mut direct = false;
            let imported: Imported = with_node_body(&dir, &request, &body, |node| {
                direct = true;
                let name = file.display().to_string();
                let bar = output::progress_bar("signing");
                let imported = node.import(
                    kind,
                    input.source(&name),
                    &mut rng,
                    local::now_ms(),
                    &|done, total| {
                        bar.set_length(total);
                        bar.set_position(done);
                        if done == total {
                            bar.set_message("writing");
                        }
                    },
                );
                bar.finish_and_clear();
                Ok(imported?)
            })?;
            output::warn_offline(imported.offline);
            output::emit(out.json, &imported, || {
                format!(
                    "imported {} {kind} records (seq {}-{}){}",
                    imported.imported,
                    imported.first_seq,
                    imported.last_seq,
                    if direct {
                        ""
                    } else {
                        " through the running node"
                    }
                )
            })
        }
        Command::Delete {
            dir,
            record_id,
            out,
        } => {
            let request = Request::Delete {
                record_id: record_id.to_hex(),
            };
            let deleted: Deleted = with_node(&dir, &request, |node| {
                Ok(node.delete(record_id, local::now_ms())?)
            })?;
            output::warn_offline(deleted.offline);
            output::emit(out.json, &deleted, || {
                format!("deleted {} (seq {})", deleted.record_id, deleted.seq)
            })
        }
        Command::Query {
            data_dir,
            from,
            kind,
            region,
            tag,
            text,
            limit,
            cursor,
            out,
        } => {
            let request = QueryRequest {
                kind: kind.map(|k| k.as_str().to_string()),
                region,
                tag,
                text,
                limit: limit.map(|l| u32::try_from(l).unwrap_or(u32::MAX)),
                cursor,
            };
            let page: QueryPage = if let Some(peer) = from {
                // Nodes answer member nodes only: ask as the node in --data-dir when given.
                let key = match &data_dir {
                    Some(dir) => local::node_key(dir)?,
                    None => spindel_protocol::SecretKey::generate(&mut rng),
                };
                let json = runtime()?
                    .block_on(spindel_node::client::remote_query_as(
                        &key,
                        &peer,
                        request,
                        Limits::default(),
                    ))
                    .map_err(|e| anyhow::anyhow!("{peer}: {e}"))?;
                serde_json::from_str(&json).context("the remote node sent an unexpected answer")?
            } else {
                let dir = DataDir {
                    data_dir: data_dir.context("--data-dir or --from is required")?,
                };
                let query = spindel_node::query::Query::from_request(&request)?;
                with_node(&dir, &Request::Query { query: request }, |node| {
                    Ok(node.query(&query)?)
                })?
            };
            output::emit(out.json, &page, || output::records_table(&page))
        }
        Command::Run {
            dir,
            listen,
            aggregators,
            http,
            metrics,
            admin,
            public_url,
            config: _,
            log: _,
        } => {
            // Flags override the settings file, field by field.
            let file = settings.unwrap_or_default();
            let listen = listen.or(file.listen);
            let http = http.or(file.http);
            let metrics = metrics.or(file.metrics);
            let admin = admin.or(file.admin);
            let public_url = public_url.or(file.public_url);
            let aggregators = if aggregators.is_empty() {
                file.aggregators
            } else {
                aggregators
            };
            if let Some(path) = &file.path {
                tracing::info!(file = %path.display(), "settings read");
            }
            run_node(
                &dir,
                NodeSettings {
                    listen,
                    aggregators,
                    http,
                    metrics,
                    admin,
                    limits: file.limits,
                    trusted_proxies: file.trusted_proxies,
                    public_url,
                },
            )
        }
        Command::User { command } => users::run(command),
        Command::Allow {
            dir,
            node_id,
            name,
            out,
        } => {
            let request = Request::Allow {
                node_id: node_id.to_hex(),
                name: name.clone(),
            };
            let allowed: Allowed =
                with_node(&dir, &request, |node| Ok(node.allow(node_id, name)?))?;
            output::emit(out.json, &allowed, || {
                format!(
                    "admitted {}{}",
                    allowed.node_id,
                    allowed
                        .name
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                )
            })
        }
        Command::Disallow { dir, node_id, out } => {
            let request = Request::Disallow {
                node_id: node_id.to_hex(),
            };
            let gone: Disallowed = with_node(&dir, &request, |node| Ok(node.disallow(node_id)?))?;
            output::emit(out.json, &gone, || {
                format!(
                    "{}{} is no longer admitted; its records stay, new ones are refused",
                    gone.node_id,
                    gone.name
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                )
            })
        }
        Command::Sync {
            dir,
            aggregator,
            out,
        } => sync_once(&dir, aggregator, out.json),
        Command::Demo {
            regions,
            http,
            exit_when_synced,
            out,
        } => run_demo(regions, http, exit_when_synced, out.json),
        Command::Backup { dir, to, out } => {
            // The running node writes the file: give it a path that does not depend on our
            // working directory.
            let to = std::path::absolute(&to)
                .with_context(|| format!("cannot use {} as a backup file", to.display()))?;
            let request = Request::Backup {
                to: to.to_string_lossy().into_owned(),
            };
            let done: BackedUp = with_node(&dir, &request, |node| {
                Ok(spindel_node::backup::write(&node, &to)?)
            })?;
            output::emit(out.json, &done, || {
                let staff = if done.staff_accounts {
                    " and the editor's staff accounts"
                } else {
                    ""
                };
                let left_out = if done.audit_bytes_left_out > 0 {
                    format!(
                        "\nthe audit trail is over {} bytes: its oldest {} bytes are not in this backup",
                        spindel_node::backup::AUDIT_BYTES_MAX,
                        done.audit_bytes_left_out
                    )
                } else {
                    String::new()
                };
                format!(
                    "backup of {} entries in {} ({} bytes); it holds the node's secret key{staff}{left_out}",
                    done.entries, done.file, done.bytes
                )
            })
        }
        Command::Restore { from, dir, out } => {
            let done = spindel_node::backup::restore(&from, &dir.data_dir)?;
            output::emit(out.json, &done, || {
                format!(
                    "restored node {} with {} entries and {} staff accounts in {}; start it with \
                     its aggregator: it publishes once it has caught up",
                    done.node_id,
                    done.entries,
                    done.staff_accounts,
                    dir.data_dir.display()
                )
            })
        }
        Command::Status { dir, out } => {
            let status: Status = with_node(&dir, &Request::Status, |node| Ok(node.status()?))?;
            output::emit(out.json, &status, || output::status_text(&status))
        }
    }
}

/// `spindel run`: the node until SIGINT/SIGTERM. The node is assembled by
/// [`NodeHandle::start`]; this only opens it, prints where it is reached and waits.
fn run_node(dir: &DataDir, settings: NodeSettings) -> Result<()> {
    let node = open(dir)?;
    // The role rules before anything starts (NodeHandle::start checks them too).
    settings.check(node.config().role)?;
    let rt = runtime()?;
    rt.block_on(async move {
        // Before anything says the node runs: a SIGTERM right after "running" (systemd, a
        // test) must stop it cleanly, not kill it.
        let mut stop = StopSignals::install()?;
        let handle = NodeHandle::start(node, settings).await?;
        let bound = handle.bound;
        for (what, at) in [
            ("listening on", bound.listen),
            ("http on", bound.http),
            ("metrics on", bound.metrics),
            ("editor on", bound.admin),
        ] {
            if let Some(at) = at {
                eprintln!("{what} {at}");
            }
        }
        eprintln!(
            "node {} running; stop with Ctrl-C",
            handle.shared().node.node_id()
        );
        stop.wait().await;
        tracing::info!("shutting down");
        handle.stop().await?;
        eprintln!("stopped");
        Ok(())
    })
}

/// SIGTERM and SIGINT, caught from the moment they are installed.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// `spindel sync`: catch up with one aggregator and exit.
fn sync_once(dir: &DataDir, aggregator: PeerAddr, json: bool) -> Result<()> {
    if control::request(&dir.data_dir, &Request::Status)?.is_some() {
        bail!(
            "a node is running in {}; it syncs by itself",
            dir.data_dir.display()
        );
    }
    let node = Arc::new(open(dir)?);
    let before = node.generation()?;
    let key = node.key().clone();
    let rt = runtime()?;
    let bar = output::spinner("syncing");
    let result = rt.block_on(async {
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let shared = spindel_node::shared::Shared::new(node.clone(), stop_rx)?;
        let transport = spindel_node::transport::Transport::client(&key, Limits::default())?;
        let progress = {
            let node = node.clone();
            let bar = bar.clone();
            tokio::spawn(async move {
                loop {
                    let now = node.generation().unwrap_or(before);
                    bar.set_message(format!("received {} entries", now.saturating_sub(before)));
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
        };
        let r = tokio::time::timeout(
            SYNC_TIMEOUT,
            spindel_node::session::sync_until_caught_up(&shared, &transport, &aggregator, "sync"),
        )
        .await;
        progress.abort();
        transport.shutdown().await;
        shared.writer.stop().await;
        match r {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(e)) => Err(anyhow::anyhow!("sync with {aggregator}: {e}")),
            Err(_) => Err(anyhow::anyhow!(
                "sync with {aggregator} did not finish within {} s",
                SYNC_TIMEOUT.as_secs()
            )),
        }
    });
    bar.finish_and_clear();
    let report = result?;
    node.flush()?;
    let received = node.generation()? - before;
    let heads: std::collections::BTreeMap<String, u64> = node
        .heads()?
        .into_iter()
        .map(|(a, h)| (a.to_hex(), h.seq))
        .collect();
    let value = serde_json::json!({
        "aggregator": aggregator.to_string(),
        "received": received,
        "heads": heads,
        "traffic": report,
    });
    output::emit(json, &value, || {
        sync_summary(&aggregator.to_string(), received, heads.len())
    })
}

/// `n` and its noun, singular for one: `1 entry`, `2 entries`.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What `spindel sync` prints: the entries received and the logs (authors) now held.
fn sync_summary(aggregator: &str, received: u64, authors: usize) -> String {
    format!(
        "synced with {aggregator}: received {}; holds the logs of {}",
        counted(received, "entry", "entries"),
        counted(authors as u64, "author", "authors")
    )
}

/// How long the demo may take to get in sync.
const DEMO_SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// `spindel demo`.
fn run_demo(regions: usize, http: SocketAddr, exit_when_synced: bool, json: bool) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async move {
        let progress: Arc<dyn Fn(String) + Send + Sync> = Arc::new(|line| eprintln!("{line}"));
        let started = std::time::Instant::now();
        let demo = demo::start(regions, http, progress.clone()).await?;
        let rows = match demo.wait_synced(DEMO_SYNC_TIMEOUT, &*progress).await {
            Ok(rows) => rows,
            Err(e) => {
                demo.shutdown().await;
                bail!("{e}");
            }
        };
        // Caught from before the summary says the network runs (Ctrl-C during the set-up
        // still stops the command at once).
        let mut stop = match StopSignals::install() {
            Ok(stop) => stop,
            Err(e) => {
                demo.shutdown().await;
                return Err(e);
            }
        };
        // A closed stdout (`spindel demo | head`) must not stop the network: errors ignored.
        let took = started.elapsed();
        let text = if json {
            serde_json::json!({
                "regions": rows,
                "records": rows.iter().map(|r| r.records).sum::<u64>(),
                "synced_in_ms": took.as_millis() as u64,
                "page": format!("http://{}/", demo.http),
                "api": format!("http://{}/api/v1/records", demo.http),
            })
            .to_string()
        } else {
            format!(
                "{}\nKunskapsbanken: http://{addr}/\n\
                 HTTP API: http://{addr}/api/v1/records  (regioner: /api/v1/regions)",
                output::demo_summary(&rows, took),
                addr = demo.http
            )
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
        drop(out);
        if exit_when_synced {
            demo.shutdown().await;
            return Ok(());
        }
        eprintln!("nätverket körs; avsluta med Ctrl-C");
        stop.wait().await;
        demo.shutdown().await;
        eprintln!("stopped");
        Ok(())
    })
}

/// How long a one-shot sync may take.
const SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The input of `import`: a regular file, read where it lies, or the text of stdin, a pipe
/// or a device, read first (up to the limit).
enum ImportInput<'a> {
    File { path: &'a Path, len: u64 },
    Text(String),
}

impl<'a> ImportInput<'a> {
    fn open(path: &'a Path) -> Result<ImportInput<'a>> {
        if path.as_os_str() != "-" {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if meta.is_file() {
                if meta.len() > IMPORT_FILE_BYTES_MAX {
                    bail!(
                        "{} is over the limit of {IMPORT_FILE_BYTES_MAX} bytes",
                        path.display()
                    );
                }
                return Ok(ImportInput::File {
                    path,
                    len: meta.len(),
                });
            }
        }
        Ok(ImportInput::Text(read_input(path, IMPORT_FILE_BYTES_MAX)?))
    }

    fn len(&self) -> u64 {
        match self {
            ImportInput::File { len, .. } => *len,
            ImportInput::Text(text) => text.len() as u64,
        }
    }

    /// The bytes a running node is sent.
    fn body(&self) -> Result<Box<dyn Read + '_>> {
        Ok(match self {
            ImportInput::File { path, len } => Box::new(
                std::fs::File::open(path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .take(*len),
            ),
            ImportInput::Text(text) => Box::new(text.as_bytes()),
        })
    }

    fn source<'s>(&'s self, name: &'s str) -> local::ImportSource<'s> {
        match self {
            ImportInput::File { path, .. } => local::ImportSource::File { path, name },
            ImportInput::Text(text) => local::ImportSource::Text(text),
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
    // A byte-order mark (some editors on Windows write one) is not part of the JSON.
    if bytes.starts_with(b"\xef\xbb\xbf") {
        bytes.drain(..3);
    }
    // Taken over without a copy: an import's text is as large as its file.
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..valid]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            bail!(
                "{} is not UTF-8 text: line {line} holds bytes that are not (save the file as UTF-8)",
                path.display()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn error(text: &str) -> String {
        let e = parse_run_file(Path::new("/etc/spindel/skane.toml"), text).unwrap_err();
        let line = format!("{e:#}");
        assert!(!line.contains('\n'), "one line: {line}");
        line
    }

    #[test]
    fn settings_errors_name_the_file_the_line_and_the_key() {
        let e = error("# a comment\nlog_level = \"info\"\naggregators = \"x@y:1\"\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 3, column 15: aggregators: expected a list of \"NODEID@HOST:PORT\" strings, got a string"),
            "{e}"
        );
        let e = error("metrics = \"127.0.0.1:9780\"\nlisten = 127.0.0.1:7700\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 2, column ")
                && e.contains(": listen: text needs quotes, like listen = \"127.0.0.1:7700\""),
            "{e}"
        );
        let e = error("\n\nlisen = \"127.0.0.1:7700\"\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 3, column 1: lisen: unknown key `lisen` (the keys are: listen, http,"),
            "{e}"
        );
        let e = error("[limits]\nconections_max = 5\n");
        assert!(
            e.contains("line 2, column 1: limits.conections_max: unknown key `conections_max` (the keys are: frame_bytes_max, connections_max,"),
            "{e}"
        );
        let e = error("log_level = \"info\"\naggregators = [\n  \"a@b:1\",\n  5,\n]\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 4, column 3: aggregators: expected a list of \"NODEID@HOST:PORT\" strings, got a number"),
            "{e}"
        );
        let e = error("[limitz]\nconnections_max = 5\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 1, column 2: limitz: unknown key `limitz` (the keys are: listen,"),
            "{e}"
        );
        let e = error("log_level = \"info\"\naggregators = [\n  \"a@b:1\",\n]\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 3: aggregators[0]: "),
            "{e}"
        );
        let e = error("log_level = \"loud\"\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 1: log_level: \"loud\" is not one of"),
            "{e}"
        );
        let e = error("log_format = \"xml\"\n");
        assert!(e.starts_with("/etc/spindel/skane.toml line 1, column 14: log_format: expected \"text\" or \"json\""), "{e}");
        let e = error("http = 7780\n");
        assert!(
            e.ends_with("line 1, column 8: http: expected a \"HOST:PORT\" string, got a number"),
            "{e}"
        );
        let e = error(
            "listen = \"127.0.0.1:0\"\n\n[limits]\nidle_timeout_ms = 5000\nconnections_max = 0\n",
        );
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 5: limits.connections_max must be between 1 and 100000, got 0"),
            "{e}"
        );
        let e = error("trusted_proxies = [\"proxy\"]\n");
        assert!(
            e.starts_with(
                "/etc/spindel/skane.toml line 1: trusted_proxies[0]: \"proxy\" is not an IP address"
            ),
            "{e}"
        );
        let e = error("log_level = \"info\"\npublic_url = \"kunskapsbank.example.se\"\n");
        assert!(
            e.starts_with(
                "/etc/spindel/skane.toml line 2: public_url: \"kunskapsbank.example.se\" is not an http or https address"
            ),
            "{e}"
        );
        assert_eq!(
            parse_public_url("https://kunskapsbank.example.se/").as_deref(),
            Ok("https://kunskapsbank.example.se")
        );
        assert_eq!(
            parse_public_url("https://example.se/kunskapsbank").as_deref(),
            Ok("https://example.se/kunskapsbank")
        );
        for bad in [
            "https://example.se/?a=1",
            "https://example.se/#top",
            "https://anna@example.se",
            "https://example.se/\"><script>",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("a\nbc\n", 0), (1, 1));
        assert_eq!(line_col("a\nbc\n", 3), (2, 2));
        assert_eq!(line_col("å\nbc", 4), (2, 2));
    }

    #[test]
    fn sync_summary_says_one_and_many() {
        assert_eq!(
            sync_summary("X", 0, 1),
            "synced with X: received 0 entries; holds the logs of 1 author"
        );
        assert_eq!(
            sync_summary("X", 1, 3),
            "synced with X: received 1 entry; holds the logs of 3 authors"
        );
    }

    /// Every example settings file reads through `run`'s own parser (its commented-out
    /// `http`, `admin` and `trusted_proxies` lines included), and no two nodes of the examples
    /// use the same port, so all of them run side by side on one machine.
    #[test]
    fn the_deploy_examples_parse_and_use_distinct_ports() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
        let mut ports: std::collections::BTreeMap<u16, String> = Default::default();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if !name.ends_with(".toml") || name == "config.toml" {
                continue;
            }
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| {
                    for key in ["http", "admin", "trusted_proxies"] {
                        if let Some(rest) = l.strip_prefix("# ")
                            && rest.starts_with(&format!("{key} = "))
                        {
                            return format!("{rest}\n");
                        }
                    }
                    format!("{l}\n")
                })
                .collect();
            let text = text.replace("AGGREGATOR_NODEID", &"ab".repeat(32));
            let settings = parse_run_file(&path, &text).unwrap_or_else(|e| panic!("{e:#}"));
            let role_ports = [
                settings.listen,
                settings.http,
                settings.metrics,
                settings.admin,
            ];
            if name == "nationell.toml" {
                assert_eq!(settings.http.unwrap().port(), 7780);
                assert_eq!(settings.metrics.unwrap().port(), 9780);
            } else {
                assert!(
                    settings.http.is_some() && settings.admin.is_some(),
                    "{name}"
                );
                assert_eq!(settings.aggregators.len(), 1, "{name}");
                assert_eq!(settings.trusted_proxies.len(), 1, "{name}");
            }
            for addr in role_ports.into_iter().flatten() {
                if let Some(other) = ports.insert(addr.port(), name.clone()) {
                    panic!("port {} in both {other} and {name}", addr.port());
                }
            }
            files += 1;
        }
        assert_eq!(files, 9, "the aggregator and the eight regions");
        assert_eq!(ports.len(), 3 + 8 * 3);
    }
}
