//! `spindel`: the command of the social economy's learning network.
//!
//! Thin: argument parsing, reading inputs, printing, exit codes (docs/interface.md, the command
//! line: 0 success, 2 usage error, 1 any other error; every error is one line on stderr).
//! The work is done by `spindel_node`.

mod args;
mod charter;
mod demo;
mod export;
mod logging;
mod node_call;
mod output;
mod serve;
mod settings;
mod users;

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;

use spindel_node::Reads;
use spindel_node::backup::BackedUp;
use spindel_node::control::Request;
use spindel_node::local::{self, Allowed, Deleted, Disallowed, Imported, Published, Role, Status};
use spindel_node::query::QueryPage;
use spindel_node::server::NodeSettings;
use spindel_node::transport::{Limits, PeerAddr};
use spindel_protocol::sync::QueryRequest;

use args::{Cli, Command, DataDir, RoleArg};
use logging::init_tracing;
use node_call::{runtime, with_node, with_node_body};
use serve::{run_demo, run_node, sync_once};
use settings::{Settings, run_file};

/// Largest `--file` accepted by `publish` (a record is at most 64 KiB encoded).
const PUBLISH_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Largest `--file` accepted by `import`.
const IMPORT_FILE_BYTES_MAX: u64 = spindel_node::control::IMPORT_FILE_BYTES_MAX;
/// Standard input is read whole before it is sent: a larger import is given as a file.
const IMPORT_STDIN_BYTES_MAX: u64 = spindel_node::control::IMPORT_BYTES_MAX;

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
        Err(e) if e.downcast_ref::<FindingsFound>().is_some() => ExitCode::from(3),
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

/// `spindel rotate-key`: the rotation signed (by the running node, or here on a stopped
/// one), then, on a running node, the switch to the new key waited for up to `wait`.
fn rotate_key(dir: &args::DataDir, wait: std::time::Duration, json: bool) -> Result<()> {
    let mut running = true;
    let mut rotated: local::Rotated = with_node(dir, &Request::RotateKey, |node| {
        running = false;
        Ok(node.rotate_key(&mut rand_core::OsRng, local::now_ms())?)
    })?;
    if running && !wait.is_zero() {
        let bar = output::spinner("waiting for an aggregator to hold the rotation");
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if local::identity(&dir.data_dir).is_ok_and(|i| i.node_id == rotated.to) {
                rotated.switched = true;
                break;
            }
            std::thread::sleep(node_call::NODE_START_POLL);
        }
        bar.finish_and_clear();
    }
    if rotated.switched {
        rotated.retired = newest_retired(&dir.data_dir);
    }
    output::emit(json, &rotated, || {
        let head = format!(
            "{} hands over from {} to {} (rotation entry {})",
            rotated.region, rotated.from, rotated.to, rotated.seq
        );
        match (&rotated.retired, running) {
            (Some(retired), _) => format!(
                "{head}: the node runs under the new key; the old key is kept as {retired}, never used again"
            ),
            (None, true) if wait.is_zero() => format!(
                "{head}: the node switches once an aggregator holds it, and signs nothing until then (spindel status shows the hand-over)"
            ),
            (None, true) => format!(
                "{head}: no aggregator held it within {} s; the node switches by itself once one does, and signs nothing until then (spindel status shows the hand-over)",
                wait.as_secs()
            ),
            (None, false) => format!(
                "{head}: start the node (spindel run); it switches once an aggregator holds the rotation, and signs nothing until then"
            ),
        }
    })
}

/// The newest `node.key.retired-*` of a data directory.
fn newest_retired(dir: &std::path::Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(local::RETIRED_KEY_PREFIX))
        .collect();
    names.sort();
    names.pop().map(|n| dir.join(n).display().to_string())
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
            charter,
            out,
        } => {
            // The charter is read and checked first: a bad one leaves no node behind.
            let charter = match &charter {
                Some(path) => Some(charter::in_force(path)?),
                None => None,
            };
            let role = match role {
                RoleArg::Region => Role::Region,
                RoleArg::Aggregator => Role::Aggregator,
            };
            let profile = local::InitProfile {
                display_name: display_name.as_deref(),
                website: website.as_deref(),
            };
            let info = local::init_with(&dir.data_dir, &name, role, profile, &mut rng)?;
            let adopted = match &charter {
                Some(signed) => Some(local::LocalNode::open(&dir.data_dir)?.adopt_charter(signed)?),
                None => None,
            };
            #[derive(serde::Serialize)]
            struct Created<'a> {
                #[serde(flatten)]
                info: &'a local::NodeInfo,
                #[serde(skip_serializing_if = "Option::is_none")]
                charter: Option<&'a local::Adopted>,
            }
            let created = Created {
                info: &info,
                charter: adopted.as_ref(),
            };
            output::emit(out.json, &created, || {
                let mut text = format!(
                    "created {} node {:?} in {}\nnode id: {}",
                    info.role.as_str(),
                    info.name,
                    dir.data_dir.display(),
                    info.node_id
                );
                if let Some(a) = &adopted {
                    text.push('\n');
                    text.push_str(&charter::adopted_line(a));
                }
                text
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
                let unchanged = match imported.unchanged {
                    0 => String::new(),
                    n => format!("; {n} unchanged, not published again"),
                };
                if imported.imported == 0 {
                    return format!(
                        "imported nothing: every line holds what its {kind} record holds already{unchanged}"
                    );
                }
                format!(
                    "imported {} {kind} records (seq {}-{}){}{unchanged}",
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
        Command::Export {
            dir,
            kind,
            region,
            format,
            contacts,
        } => export::export(
            &dir,
            spindel_node::ExportFilter {
                kind,
                region,
                contacts,
            },
            format,
        ),
        Command::VerifyExport { file, out } => export::verify_export(&file, out.json),
        Command::Query {
            data_dir,
            from,
            kind,
            region,
            tag,
            text,
            limit,
            cursor,
            from_date,
            to_date,
            out,
        } => {
            // Checked here too, so a bad date is refused before a node is asked.
            let dates = spindel_node::query::DateRange::parse(
                from_date.as_deref(),
                to_date.as_deref(),
                spindel_node::query::DATE_FLAGS,
            )?;
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
                    .block_on(spindel_node::remote_query_as(
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
                let mut query = spindel_node::query::Query::from_request(&request)?;
                query.dates = dates;
                let request = Request::Query {
                    query: request,
                    from_date,
                    to_date,
                };
                with_node(&dir, &request, |node| Ok(node.query(&query)?))?
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
                    erasure_settle: file.erasure_settle,
                    embed_ancestors: file.embed_ancestors,
                },
            )
        }
        Command::Charter { command } => charter::run(command),
        Command::User { command } => users::run(command),
        Command::Allow {
            dir,
            node_id,
            name,
            mirror,
            out,
        } => {
            let request = Request::Allow {
                node_id: node_id.to_hex(),
                name: name.clone(),
                mirror,
            };
            let allowed: Allowed = with_node(&dir, &request, |node| {
                Ok(if mirror {
                    node.allow_mirror(node_id)?
                } else {
                    node.allow(node_id, name)?
                })
            })?;
            output::emit(out.json, &allowed, || {
                if allowed.mirror {
                    return format!(
                        "allowed {} to mirror this aggregator (it dials this one with --aggregator)",
                        allowed.node_id
                    );
                }
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
        Command::Endorse {
            dir,
            node_id,
            name,
            replaces,
            upto,
            out,
        } => charter::act(
            &dir,
            local::ActRequest::Endorse {
                node: node_id.to_hex(),
                name,
                replaces: replaces.map(|r| r.to_hex()),
                upto,
            },
            out.json,
        ),
        Command::Erase {
            dir,
            record,
            reason,
            out,
        } => {
            let Some((author, record)) = record.split_once('/') else {
                bail!(
                    "{record:?}: give the record as AUTHOR/RECORD_ID (the region's node id, a slash, the record id)"
                );
            };
            charter::act(
                &dir,
                local::ActRequest::Erase {
                    author: author.to_string(),
                    record: record.to_string(),
                    reason,
                },
                out.json,
            )
        }
        Command::RotateKey { dir, wait, out } => {
            rotate_key(&dir, std::time::Duration::from_secs(wait), out.json)
        }
        Command::Revoke {
            dir,
            node_id,
            reason,
            out,
        } => charter::act(
            &dir,
            local::ActRequest::Revoke {
                node: node_id.to_hex(),
                reason,
            },
            out.json,
        ),
        Command::Disallow { dir, node_id, out } => {
            let request = Request::Disallow {
                node_id: node_id.to_hex(),
            };
            let gone: Disallowed = with_node(&dir, &request, |node| Ok(node.disallow(node_id)?))?;
            output::emit(out.json, &gone, || {
                if gone.mirror {
                    return format!(
                        "{} may no longer mirror this aggregator; its live session ends",
                        gone.node_id
                    );
                }
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
        Command::Audit {
            dir,
            peer,
            since,
            out,
        } => audit(&dir, peer.as_ref(), since, out.json),
        Command::Status { dir, out } => {
            let status: Status = with_node(&dir, &Request::Status, |node| Ok(node.status()?))?;
            output::emit(out.json, &status, || output::status_text(&status))
        }
    }
}

/// `audit` found something (exit code 3; the findings are printed already).
#[derive(Debug)]
struct FindingsFound(usize);

impl std::fmt::Display for FindingsFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} findings", self.0)
    }
}

impl std::error::Error for FindingsFound {}

/// `spindel audit`: the node's report (through its control socket when it runs), compared
/// with a peer region's checkpoints when `--peer` is given.
fn audit(dir: &DataDir, peer: Option<&PeerAddr>, since: Option<i64>, json: bool) -> Result<()> {
    let now = local::now_ms();
    let mut bundle: local::AuditBundle =
        with_node(dir, &Request::Audit, |node| Ok(node.audit_bundle(now)?))?;
    if let Some(peer) = peer {
        let key = local::node_key(&dir.data_dir)?;
        let (checkpoints, cosignatures) = runtime()?
            .block_on(spindel_node::audit_peer_as(&key, peer, Limits::default()))
            .map_err(|e| anyhow::anyhow!("{peer}: {e}"))?;
        let bad = bundle.compare_with(&peer.node_id, &checkpoints, &cosignatures, now);
        if bad > 0 {
            eprintln!(
                "warning: {bad} checkpoints or cosignatures from {peer} did not verify and were left out"
            );
        }
    }
    let mut report = bundle.report;
    if let Some(since) = since {
        report.findings.retain(|f| {
            spindel_protocol::time::parse_rfc3339(&f.last_seen).is_none_or(|t| t.utc_ms >= since)
        });
    }
    output::emit(json, &report, || output::audit_text(&report))?;
    // Healed findings stay listed (a fact to see), but only open ones fail the audit.
    match report
        .findings
        .iter()
        .filter(|f| f.healed.is_none())
        .count()
    {
        0 => Ok(()),
        n => Err(FindingsFound(n).into()),
    }
}

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
        Ok(ImportInput::Text(
            read_input(path, IMPORT_STDIN_BYTES_MAX).map_err(|e| {
                anyhow::anyhow!("{e:#} (a larger import is read from a file: --file PATH, up to {IMPORT_FILE_BYTES_MAX} bytes)")
            })?,
        ))
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
