//! The command line: every command, flag and value parser (clap).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use spindel_node::transport::PeerAddr;
use spindel_node::users::StaffRole;
use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;
use spindel_protocol::record::Kind;

#[derive(Parser, Debug)]
#[command(
    name = "spindel",
    version,
    about = "Regional knowledge of the social economy, signed by its region, shared nationally.",
    long_about = None
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct DataDir {
    /// The node's data directory.
    #[arg(long, env = "SPINDEL_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
}

#[derive(Args, Debug, Clone, Copy)]
pub(crate) struct JsonFlag {
    /// Print exactly one JSON document on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
        /// The network's charter (every founding region signed it): the node adopts it at
        /// once (as `spindel charter adopt` would).
        #[arg(long, value_name = "FILE")]
        charter: Option<PathBuf>,
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
        /// The record kind: profile, innovation, method, researcher, event, indicator or experience (fields: docs/records.md).
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
        /// The record kind: profile, innovation, method, researcher, event, indicator or experience (fields: docs/records.md).
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
        /// Only records of this kind: profile, innovation, method, researcher, event, indicator or experience.
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
        /// Only events that have not ended before this day (Europe/Stockholm); any date filter
        /// selects events only.
        #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "from")]
        from_date: Option<String>,
        /// Only events that start on or before this day (Europe/Stockholm).
        #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "from")]
        to_date: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Write every current record to standard output: JSON Lines with what each author
    /// signed (to verify with verify-export, or import again), or CSV for a spreadsheet.
    Export {
        #[command(flatten)]
        dir: DataDir,
        /// Only records of this kind.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<Kind>,
        /// Only records of the region admitted under this name (or with this NodeId).
        #[arg(long, value_name = "NAME")]
        region: Option<String>,
        /// jsonl (default) or csv.
        #[arg(long, default_value = "jsonl", value_parser = parse_export_format)]
        format: spindel_node::ExportFormat,
        /// Researchers' e-mail addresses and phone numbers too (left out by default: an
        /// export file travels; those are shown one record at a time).
        #[arg(long)]
        contacts: bool,
    },
    /// Check a JSON Lines export without trusting whoever made it: every line's signature,
    /// its payload against the signed header, and its data against the payload.
    VerifyExport {
        /// The export file, or - for standard input.
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
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
    /// Aggregator: admit a region, or with --mirror allow another aggregator to mirror this one
    /// (also while the node runs).
    Allow {
        #[command(flatten)]
        dir: DataDir,
        /// The region's NodeId (64 hex characters), as `spindel id` prints it on the region.
        #[arg(value_parser = parse_node_id)]
        node_id: NodeId,
        /// The region's name in the network (1-32 of a-z, 0-9, -), unique.
        #[arg(long, conflicts_with = "mirror")]
        name: Option<String>,
        /// NODEID is an aggregator that may mirror this one (`spindel run --aggregator` this
        /// one): it gets every admitted region's records and the admission list; it gets no
        /// name and regions never see it.
        #[arg(long)]
        mirror: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Under a charter: vouch, as a member region, for a region's key under its name in the
    /// network. Once as many member regions as the charter's threshold have, every node takes
    /// it as a member. With --replaces, the key is the new key of a region whose key was
    /// lost, leaked or frozen by a fork. Withdrawn with `spindel delete RECORD_ID` before it
    /// takes effect.
    Endorse {
        #[command(flatten)]
        dir: DataDir,
        /// The endorsed key (64 hex characters), as `spindel id` prints it on that node.
        #[arg(value_parser = parse_node_id)]
        node_id: NodeId,
        /// The region's name in the network (1-32 of a-z, 0-9, -), the same in every
        /// endorsement of the key.
        #[arg(long)]
        name: String,
        /// The key this one replaces (its region keeps its name and records).
        #[arg(long, value_name = "OLD_NODEID", value_parser = parse_node_id)]
        replaces: Option<NodeId>,
        /// With --replaces: the replaced key's last entry that stays (default: this node's
        /// head of it). For a leaked key, the last entry before the thief's: every endorser
        /// gives the same, as the highest counts.
        #[arg(long, value_name = "SEQ", requires = "replaces")]
        upto: Option<u64>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Under a charter: ask, as a member region, that a region's membership end. Once as many
    /// member regions as the charter's threshold have, its new entries are refused
    /// everywhere; what it published before stays, marked as a former member's.
    Revoke {
        #[command(flatten)]
        dir: DataDir,
        /// The member's key (64 hex characters).
        #[arg(value_parser = parse_node_id)]
        node_id: NodeId,
        /// Why (1-2000 characters), kept with the act and shown to every region.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Under a charter: order, as a member region, that a record be erased, when a person
    /// asked and its author cannot act (the region is gone or lost its key). Once as many
    /// member regions as the charter's threshold have, every node purges it as a deletion
    /// would; the order and its reason stay visible to every region. A region's own live key
    /// erases what an earlier key of it published, alone. Withdrawn with `spindel delete
    /// RECORD_ID` before it takes effect.
    Erase {
        #[command(flatten)]
        dir: DataDir,
        /// The record, as AUTHOR/RECORD_ID (its region's node id and its id, as in its
        /// address).
        #[arg(value_name = "AUTHOR/RECORD_ID")]
        record: String,
        /// Why (1-2000 characters), kept with the order and shown to every region: no
        /// personal data.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Under a charter: hand this region over to a new key. The node makes the key, signs a
    /// rotation with the old one, and switches once an aggregator holds it; the old key file
    /// is kept as node.key.retired-<time> and never used again. The region keeps its name,
    /// records and pages.
    RotateKey {
        #[command(flatten)]
        dir: DataDir,
        /// How long to wait for the switch on a running node, in seconds (0: do not wait).
        #[arg(long, default_value_t = 30, value_name = "SECONDS")]
        wait: u64,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Aggregator: end a region's admission (also while the node runs): its sessions are
    /// refused, its name is freed, its new records refused; what it published stays. For a
    /// mirror aggregator: it may no longer mirror this one.
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
    /// The network's charter: draw one up, sign it as a founding region, read it.
    Charter {
        #[command(subcommand)]
        command: CharterCommand,
    },
    /// Staff accounts of the editor (`run --admin`): add, list, remove, reset-password, audit.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Checks the aggregators' signed checkpoints and the regions' cosignatures this node
    /// keeps, and its own view: prints each finding (rollback, withheld, split-view, stale).
    /// Exits 3 when there are findings, 0 when clean.
    Audit {
        #[command(flatten)]
        dir: DataDir,
        /// Also compare directly with another region over QUIC (as this node: the peer
        /// answers members only), so an aggregator that shows regions different views is
        /// caught.
        #[arg(long, value_name = "NODEID@HOST:PORT", value_parser = parse_peer)]
        peer: Option<PeerAddr>,
        /// Count only findings last seen at or after this time (RFC 3339, e.g.
        /// 2026-12-06T10:00:00Z): those an operator has dealt with before stay out.
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: Option<i64>,
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
pub(crate) enum RoleArg {
    Region,
    Aggregator,
}

fn parse_export_format(s: &str) -> Result<spindel_node::ExportFormat, String> {
    s.parse()
}

pub(crate) fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse::<Kind>().map_err(|e| e.to_string())
}

/// A listen address: `HOST:PORT` with an IP address or a host name (`localhost:7780`).
pub(crate) fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?} is not HOST:PORT ({e})"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{s:?} names no address"))
}

pub(crate) fn parse_record_id(s: &str) -> Result<RecordId, String> {
    s.parse::<RecordId>().map_err(|e| e.to_string())
}

pub(crate) fn parse_peer(s: &str) -> Result<PeerAddr, String> {
    s.parse::<PeerAddr>().map_err(|e| e.to_string())
}

/// An RFC 3339 time, as Unix milliseconds.
pub(crate) fn parse_since(s: &str) -> Result<i64, String> {
    spindel_protocol::time::parse_rfc3339(s)
        .map(|t| t.utc_ms)
        .ok_or_else(|| format!("{s:?} is not an RFC 3339 time such as 2026-12-06T10:00:00Z"))
}

pub(crate) fn parse_node_id(s: &str) -> Result<NodeId, String> {
    s.parse::<NodeId>().map_err(|e| e.to_string())
}

/// How `spindel run` logs.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LogArgs {
    /// Log level: error, warn, info (the default for `run`), debug or trace. Overrides
    /// RUST_LOG; the libraries' own chatter stays at warn unless RUST_LOG names them.
    #[arg(long, value_name = "LEVEL", value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub(crate) log_level: Option<String>,
    /// Log line format: text (the default: one line per event; colours only on a terminal)
    /// or json (one JSON object per line, for journald or Loki).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// A `public_url`: an absolute http or https URL, kept without a trailing slash so paths
/// (`/post/...`) are appended to it.
pub(crate) fn parse_public_url(s: &str) -> std::result::Result<String, String> {
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

#[derive(Subcommand, Debug)]
pub enum CharterCommand {
    /// Draw up a charter: the network's name, the founding regions and the threshold of
    /// endorsements that admit (or revocations that end) a region. Signed by nobody yet:
    /// each founding region runs `spindel charter sign` on the file.
    New {
        /// The network's name (1-100 characters).
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Endorsements that admit a region, and revocations that end one (1 to the
        /// number of founding regions).
        #[arg(long, value_name = "K")]
        threshold: u32,
        /// A founding region: its node id (`spindel status` shows it) and its name in the
        /// network (1-32 of a-z, 0-9, -).
        #[arg(value_name = "NODEID=NAME", required = true, value_parser = parse_founder)]
        founders: Vec<(NodeId, String)>,
        /// The charter file to write (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Sign a charter as this founding region (with the node's key); the file is rewritten
    /// with the signature added.
    Sign {
        #[command(flatten)]
        dir: DataDir,
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Adopt a charter (signed by every founding region) as this node's network, for good:
    /// from then on the regions' endorsements and revocations decide who belongs, and this
    /// node syncs only with nodes of the same charter. Run it while the node is stopped.
    Adopt {
        #[command(flatten)]
        dir: DataDir,
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// The charter's network, id, threshold and founding regions, and who has signed.
    Show {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
}

fn parse_founder(s: &str) -> Result<(NodeId, String), String> {
    let (id, name) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NODEID=NAME"))?;
    let id: NodeId = id
        .parse()
        .map_err(|_| format!("{id:?} is not a node id (64 lowercase hex characters)"))?;
    Ok((id, name.to_string()))
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a staff account; prints a one-time password unless --password-stdin.
    Add {
        #[command(flatten)]
        dir: DataDir,
        /// 1-32 of a-z, 0-9, '.', '_' and '-', starting with a letter.
        name: String,
        /// redaktor: publishes, edits and deletes; admin: also manages accounts.
        #[arg(long, value_parser = parse_role)]
        role: StaffRole,
        /// Read the password (at least 12 characters) from stdin instead.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Every account, with its role.
    List {
        #[command(flatten)]
        dir: DataDir,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Remove an account (never the last admin); its sessions end at once.
    Remove {
        #[command(flatten)]
        dir: DataDir,
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Give an account a new password (a one-time one unless --password-stdin).
    ResetPassword {
        #[command(flatten)]
        dir: DataDir,
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// What staff did in the editor: who, when, what (the last 100 lines, or --limit).
    Audit {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long, default_value_t = AUDIT_SHOWN)]
        limit: usize,
        #[command(flatten)]
        out: JsonFlag,
    },
}

pub(crate) fn parse_role(s: &str) -> Result<StaffRole, String> {
    s.parse()
        .map_err(|e: spindel_node::users::UserError| e.to_string())
}

/// Audit lines `user audit` prints by default.
pub(crate) const AUDIT_SHOWN: usize = 100;
