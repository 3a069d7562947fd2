//! `spindel charter ...`: a network's charter file, drawn up, signed by each founding region
//! with its node key, and read. The rules (and the file's format) are
//! `spindel_protocol::charter`'s; this module reads and writes the file.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use spindel_protocol::charter::{
    CHARTER_FILE_BYTES_MAX, Charter, Examined, Founder, SignedCharter,
};
use spindel_protocol::time::rfc3339_ms;

use spindel_node::control::Request;
use spindel_node::local;

use crate::args::{self, CharterCommand};
use crate::node_call::with_node;
use crate::output;

/// A charter as `show` (and the other commands) print it.
#[derive(Debug, Serialize)]
struct Shown {
    network: String,
    /// The charter id: SHA-256 of the signed bytes (64 hex).
    id: String,
    threshold: u32,
    created: String,
    founders: Vec<ShownFounder>,
    /// Every founding region signed: the charter is in force.
    complete: bool,
    /// The names of the founding regions that have not signed.
    missing: Vec<String>,
    /// Where the file is (new and sign).
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
}

#[derive(Debug, Serialize)]
struct ShownFounder {
    node: String,
    name: String,
    signed: bool,
}

fn shown(e: &Examined, file: Option<&Path>) -> Shown {
    Shown {
        network: e.charter.network.clone(),
        id: e.id.to_hex(),
        threshold: e.charter.threshold,
        created: rfc3339_ms(e.charter.created_ms),
        founders: e
            .charter
            .founders
            .iter()
            .map(|f| ShownFounder {
                node: f.node.to_hex(),
                name: f.name.clone(),
                signed: e.signed.contains(&f.node),
            })
            .collect(),
        complete: e.complete(),
        missing: e.missing.iter().map(|f| f.name.clone()).collect(),
        file: file.map(|p| p.display().to_string()),
    }
}

fn table(s: &Shown) -> String {
    let mut out = format!(
        "charter of {:?}\nid         {}\nthreshold  {} of the members endorse a region (or revoke one)\ncreated    {}\n",
        s.network, s.id, s.threshold, s.created
    );
    for f in &s.founders {
        out.push_str(&format!(
            "  {:<32} {}  {}\n",
            f.name,
            f.node,
            if f.signed { "signed" } else { "not signed" }
        ));
    }
    if s.complete {
        out.push_str("every founding region has signed: the charter is in force");
    } else {
        out.push_str(&format!(
            "not in force until signed by: {} (each runs: spindel charter sign --data-dir DIR FILE)",
            s.missing.join(", ")
        ));
    }
    out
}

/// Reads and parses a charter file, size-capped before it is read whole.
pub(crate) fn read(path: &Path) -> Result<SignedCharter> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the charter {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(CHARTER_FILE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the charter {}", path.display()))?;
    SignedCharter::from_file_text(&bytes).with_context(|| format!("{}", path.display()))
}

/// Reads a charter file that is in force (every founder signed), or says what is wrong.
pub(crate) fn in_force(path: &Path) -> Result<SignedCharter> {
    let signed = read(path)?;
    signed
        .verify()
        .with_context(|| format!("{}", path.display()))?;
    Ok(signed)
}

/// One line on a charter just adopted.
pub(crate) fn adopted_line(a: &spindel_node::local::Adopted) -> String {
    let standing = match (a.standing.as_str(), &a.name) {
        ("member", Some(name)) => format!("a member, as {name:?}"),
        ("former", Some(name)) => format!("a former member ({name:?})"),
        ("aggregator", _) => {
            "the aggregator: it takes the sessions of member regions only, as their endorsements decide".to_string()
        }
        _ => "not a member yet: the member regions endorse it (spindel endorse)".to_string(),
    };
    format!(
        "adopted the charter of {:?} ({} founding regions, threshold {}, id {}): this node is {standing}",
        a.network, a.founders, a.threshold, a.id
    )
}

/// Writes the charter file at `path` atomically (`new`: never over an existing file).
fn write(path: &Path, text: &str, new: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let written = if new {
        spindel_node::local::create_file_atomically(dir, name, text.as_bytes())
    } else {
        spindel_node::local::write_file_atomically(dir, name, text.as_bytes())
    };
    written.with_context(|| format!("cannot write the charter {}", path.display()))
}

pub(crate) fn run(command: CharterCommand) -> Result<()> {
    match command {
        CharterCommand::New {
            name,
            threshold,
            founders,
            out,
            json,
        } => {
            if out.exists() {
                bail!(
                    "{} exists: a charter file is never overwritten (choose another --out)",
                    out.display()
                );
            }
            let mut founders: Vec<Founder> = founders
                .into_iter()
                .map(|(node, name)| Founder { node, name })
                .collect();
            founders.sort_by_key(|f| f.node);
            let charter = Charter {
                network: name.trim().to_string(),
                threshold,
                created_ms: spindel_node::local::now_ms(),
                founders,
            };
            let signed = SignedCharter::new(&charter).context("the charter is refused")?;
            write(&out, &signed.to_file_text(), true)?;
            let s = shown(&signed.examine()?, Some(&out));
            output::emit(json.json, &s, || {
                format!("wrote {}\n{}", out.display(), table(&s))
            })
        }
        CharterCommand::Sign { dir, file, out } => {
            let mut signed = read(&file)?;
            let key = spindel_node::local::node_key(&dir.data_dir)?;
            let examined = signed
                .sign(&key)
                .with_context(|| format!("{}: cannot sign", file.display()))?;
            write(&file, &signed.to_file_text(), false)?;
            let s = shown(&examined, Some(&file));
            output::emit(out.json, &s, || {
                format!(
                    "signed {} as {}\n{}",
                    file.display(),
                    key.node_id(),
                    table(&s)
                )
            })
        }
        CharterCommand::Adopt { dir, file, out } => {
            let signed = in_force(&file)?;
            let node = spindel_node::local::LocalNode::open(&dir.data_dir)?;
            let adopted = node.adopt_charter(&signed)?;
            output::emit(out.json, &adopted, || adopted_line(&adopted))
        }
        CharterCommand::Show { file, out } => {
            let signed = read(&file)?;
            let examined = signed
                .examine()
                .with_context(|| format!("{}", file.display()))?;
            let s = shown(&examined, None);
            output::emit(out.json, &s, || table(&s))
        }
    }
}

/// `spindel endorse` and `spindel revoke`: checked against the membership this node holds,
/// then published in its own log like any record.
pub(crate) fn act(dir: &args::DataDir, act: local::ActRequest, json: bool) -> Result<()> {
    let request = Request::Act { act: act.clone() };
    let acted: local::Acted = with_node(dir, &request, |node| {
        let (kind, record) = node.act_record(&act)?;
        let published =
            node.publish(kind, &record, None, &mut rand_core::OsRng, local::now_ms())?;
        Ok(node.acted(&act, &published.record_id, published.seq, published.offline)?)
    })?;
    output::emit(json, &acted, || {
        if acted.kind == "erasure" {
            let record = acted.record.as_deref().unwrap_or_default();
            return if acted.done {
                match acted.held_until.as_deref() {
                    Some(until) => format!(
                        "ordered {}/{record} erased: hidden on every node now, its bytes erased for good once the order settled (here at {until}); the order and its reason stay visible",
                        acted.node
                    ),
                    None => format!(
                        "ordered {}/{record} erased: hidden on every node now, its bytes erased for good once the order settled; the order and its reason stay visible",
                        acted.node
                    ),
                }
            } else {
                format!(
                    "ordered {}/{record} erased: {} of {} member regions so far (spindel delete {} withdraws it until then)",
                    acted.node, acted.counted, acted.threshold, acted.record_id
                )
            };
        }
        let what = if acted.kind == "endorsement" {
            "endorsed"
        } else {
            "asked to revoke"
        };
        let state = match (acted.done, acted.kind.as_str()) {
            (true, "endorsement") => format!("{} is a member now", acted.name),
            (true, _) => format!("{} is no longer a member", acted.name),
            (false, _) => format!(
                "{} of {} member regions so far (spindel delete {} withdraws it until then)",
                acted.counted, acted.threshold, acted.record_id
            ),
        };
        format!("{what} {} ({}): {state}", acted.node, acted.name)
    })
}
