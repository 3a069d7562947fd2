//! Printing: exactly one JSON document with `--json`, readable text otherwise.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use spindel_node::local::{Role, Status};
use spindel_node::query::QueryPage;

/// Prints `value` as one JSON document, or the text `human` makes.
pub fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        println!("{}", human());
    }
    Ok(())
}

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal.
pub fn progress_bar(message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

/// A spinner with a message on stderr (hidden when stderr is not a terminal).
pub fn spinner(message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn cut(s: &str, width: usize) -> String {
    let one_line = s.replace(['\n', '\t'], " ");
    if one_line.chars().count() <= width {
        one_line
    } else {
        let mut t: String = one_line.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}

fn title_of(data: &serde_json::Value) -> &str {
    ["title", "display_name", "name"]
        .iter()
        .find_map(|k| data.get(*k).and_then(|v| v.as_str()))
        // An experience: its text's first line (the protocol's title).
        .or_else(|| {
            data.get("text")
                .and_then(|v| v.as_str())
                .map(spindel_protocol::experience::title_of)
        })
        .unwrap_or("")
}

/// The table `spindel query` prints.
pub fn records_table(page: &QueryPage) -> String {
    if page.records.is_empty() {
        return "no records found".to_string();
    }
    let mut out = format!(
        "{:<17} {:<10} {:<20} {:<32} {}\n",
        "UPDATED (UTC)", "KIND", "REGION", "RECORD", "TITLE"
    );
    for r in &page.records {
        let updated = r
            .updated_at
            .get(..16)
            .unwrap_or(&r.updated_at)
            .replace('T', " ");
        out.push_str(&format!(
            "{:<17} {:<10} {:<20} {:<32} {}\n",
            updated,
            r.kind.as_str(),
            cut(r.region.as_deref().unwrap_or("-"), 20),
            r.record_id,
            cut(title_of(&r.data), 60)
        ));
    }
    out.push_str(&format!("{} record(s)", page.records.len()));
    if let Some(c) = &page.next_cursor {
        out.push_str(&format!("; more with --cursor {c}"));
    }
    out
}

/// The table `spindel demo` prints once the network is in sync.
pub fn demo_summary(rows: &[crate::demo::SummaryRow], took: std::time::Duration) -> String {
    let mut out = format!(
        "{:<48} {:>7} {:>6} {:>12} {:>14}\n",
        "REGION", "POSTER", "LOGG", "AGGREGATORN", "ALLA REGIONER"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<48} {:>7} {:>6} {:>12} {:>14}\n",
            cut(&r.display_name, 48),
            r.records,
            r.head,
            r.at_aggregator,
            r.in_every_region
        ));
    }
    let records: u64 = rows.iter().map(|r| r.records).sum();
    out.push_str(&format!(
        "{} regioner, {records} poster: allt finns hos aggregatorn och i varje region ({:.1} s)",
        rows.len(),
        took.as_secs_f64()
    ));
    out
}

/// A write signed offline says so on stderr, whatever the output format (`--json` carries
/// `"offline": true` as well).
pub fn warn_offline(offline: bool) {
    if offline {
        eprintln!("warning: {}", spindel_node::local::OFFLINE_WARNING);
    }
}

/// The membership lines of `spindel status` under a charter: the charter, then each pending
/// act and each former member.
fn membership_text(m: &spindel_node::local::MembershipReport) -> String {
    let members = m.regions.iter().filter(|r| r.state == "member").count();
    let mut out = format!(
        "\ncharter   {:?} ({}…): {members} member regions, {} endorsements admit a region",
        m.network,
        &m.charter[..16],
        m.threshold
    );
    let by = |names: &[String]| {
        if names.is_empty() {
            "none yet".to_string()
        } else {
            names.join(", ")
        }
    };
    for p in &m.pending {
        out.push_str(&format!(
            "\npending   {} {}…: endorsed by {} of {} ({}){}",
            p.name,
            &p.node[..16],
            p.endorsed_by.len(),
            m.threshold,
            by(&p.endorsed_by),
            p.blocked
                .as_deref()
                .map(|b| format!("; blocked: {b}"))
                .unwrap_or_default()
        ));
    }
    for p in &m.pending_revocations {
        out.push_str(&format!(
            "\nrevoking  {} {}…: asked by {} of {} ({})",
            p.name,
            &p.node[..16],
            p.revoked_by.len(),
            m.threshold,
            by(&p.revoked_by)
        ));
    }
    for r in m.regions.iter().filter(|r| r.state != "member") {
        out.push_str(&format!(
            "\nformer    {} {}…: revoked{}",
            r.name,
            &r.node[..16],
            r.revoked
                .as_ref()
                .map(|v| format!(" by {}", v.by.join(", ")))
                .unwrap_or_default()
        ));
    }
    out.push('\n');
    out
}

/// The text `spindel status` prints.
pub fn status_text(s: &Status) -> String {
    let mut out = format!(
        "node      {} ({}, {})\nrecords   {}\n",
        s.node_id,
        s.name,
        s.role.as_str(),
        s.records
    );
    out.push_str(&format!(
        "\n{:<20} {:<18} {:>6} {:>8}  {}\n",
        "AUTHOR", "NODE", "HEAD", "RECORDS", "STATE"
    ));
    for a in &s.authors {
        // Under a charter the regions' acts say what a key is.
        let region = s.membership.as_ref().map(|m| {
            m.regions
                .iter()
                .find(|r| r.keys.iter().any(|k| k.node == a.node_id))
        });
        let state = match (a.frozen, a.admitted, region) {
            _ if a.own && s.role == Role::Aggregator => "this node (authors nothing)",
            (true, _, _) => "frozen (fork)",
            (_, _, Some(Some(r))) if r.state == "member" && r.node == a.node_id => "member",
            // An earlier key of a region: how it ended.
            (_, _, Some(Some(r))) => match r
                .keys
                .iter()
                .find(|k| k.node == a.node_id)
                .and_then(|k| k.ended.as_deref())
            {
                Some("rotated") => "earlier key (rotated)",
                Some("replaced") => "earlier key (replaced)",
                _ => "former member",
            },
            (_, _, Some(None)) => "not a member",
            (false, true, None) => "admitted",
            (false, false, None) => "known",
        };
        out.push_str(&format!(
            "{:<20} {:<18} {:>6} {:>8}  {}\n",
            cut(a.name.as_deref().unwrap_or("-"), 20),
            format!("{}…", &a.node_id[..16]),
            a.head,
            a.records,
            state
        ));
    }
    if let Some(m) = &s.membership {
        out.push_str(&membership_text(m));
    }
    if let Some(h) = &s.handover {
        out.push_str(&format!(
            "
handover  this key hands the region over to {}… (rotation entry {}): the node signs nothing until an aggregator holds it, then runs under the new key
",
            &h.to[..16],
            h.seq
        ));
    }
    for p in &s.peers {
        let get = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_string();
        let connected = p
            .get("connected")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let lag = p.get("lag").and_then(|v| v.as_u64()).unwrap_or(0);
        let name = p
            .get("name")
            .and_then(|v| v.as_str())
            .map(|n| format!("{n} "))
            .unwrap_or_default();
        let address = match get("address").as_str() {
            "" => "no address yet".to_string(),
            a => a.to_string(),
        };
        out.push_str(&format!(
            "\npeer      {} {name}{}… at {}: {}, lag {lag}{}",
            get("role"),
            get("node_id").get(..16).unwrap_or("-"),
            address,
            if connected {
                "connected"
            } else {
                "not connected"
            },
            p.get("last_error")
                .and_then(|v| v.as_str())
                .map(|e| match p.get("retry_in_ms").and_then(|v| v.as_u64()) {
                    // Only a peer this node dials is tried again.
                    Some(retry) => format!(" ({e}; next try within {} s)", retry.div_ceil(1000)),
                    None => format!(" ({e})"),
                })
                .unwrap_or_default()
        ));
        if let Some(acked) = p.get("own_acked").and_then(|v| v.as_u64()) {
            let not_sent = p.get("own_not_sent").and_then(|v| v.as_u64()).unwrap_or(0);
            out.push_str(&format!(
                "
          own log: {}, at this aggregator: {acked} ({not_sent} {} not yet sent)",
                acked + not_sent,
                if not_sent == 1 { "entry" } else { "entries" }
            ));
        }
    }
    if let Some(n) = &s.not_sent {
        let range = if n.first == n.last {
            format!("entry {}", n.first)
        } else {
            format!("entries {}-{}", n.first, n.last)
        };
        out.push_str(&format!(
            "
NOT SENT  own {range} ({}): no aggregator has acknowledged {}",
            n.count,
            if n.count == 1 { "it" } else { "them" }
        ));
    }
    if s.offline {
        out.push_str(&format!(
            "
OFFLINE   no aggregator has confirmed this node since it started: {}",
            "what it publishes now is signed offline and sent when the link is up; if another \
             copy of this node's key may be running, stop it first"
        ));
    }
    if s.refused.is_empty() {
        out.push_str("\nrefused   none");
    } else {
        let list: Vec<String> = s.refused.iter().map(|(r, n)| format!("{r} {n}")).collect();
        out.push_str(&format!("\nrefused   {}", list.join(", ")));
    }
    for (author, reasons) in &s.refused_by_author {
        let name = s
            .authors
            .iter()
            .find(|a| &a.node_id == author)
            .and_then(|a| a.name.as_deref())
            .unwrap_or("-");
        let list: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
        out.push_str(&format!(
            "\n          from {name} ({}…): {}",
            author.get(..16).unwrap_or(author),
            list.join(", ")
        ));
    }
    if let Some(admitted) = &s.admitted_as {
        out.push_str(&format!(
            "\nNAME      the aggregator admitted this region as {admitted:?}, not {:?}: the \
             network shows its records under {admitted:?}",
            s.name
        ));
    }
    for w in &s.warnings {
        out.push_str(&format!("\nWARNING   {w}"));
    }
    if s.restored {
        out.push_str(
            "\nRESTORED  this node was restored from a backup: it publishes once it has caught up \
             with its aggregator (run it with --aggregator)",
        );
    }
    if let Some(copy) = &s.other_copy {
        out.push_str(&format!(
            "\nCOPY      this node signs nothing: {copy}; stop and disable the copy that should \
             not run and move its node.key away (deploy/README.md, \"Two copies of one key\")"
        ));
        if let Some(advice) = &s.other_copy_advice {
            out.push_str(&format!("\nAHEAD     {advice}"));
        }
    }
    for f in &s.forks {
        out.push_str(&format!(
            "\nFORK      {} ({}…) at seq {}: entries {} and {}\n          {}",
            f.name.as_deref().unwrap_or("-"),
            f.author.get(..16).unwrap_or(&f.author),
            f.seq,
            f.first,
            f.second,
            f.advice
        ));
    }
    out
}

/// `spindel audit` for a person: each aggregator with its newest checkpoint and who cosigned
/// it, then each finding on a line of its own.
pub fn audit_text(r: &spindel_node::local::AuditReport) -> String {
    let mut out = String::new();
    if r.aggregators.is_empty() {
        out.push_str("no checkpoint of any aggregator yet\n");
    }
    for a in &r.aggregators {
        let who = if a.this_node { " (this node)" } else { "" };
        match &a.latest {
            Some(l) => {
                let names: Vec<String> = l
                    .cosigned_by
                    .iter()
                    .map(|c| {
                        c.name
                            .clone()
                            .unwrap_or_else(|| short(&c.witness).to_string())
                    })
                    .collect();
                out.push_str(&format!(
                    "aggregator {}{who}: checkpoint {} of {} ({} regions), cosigned by {}\n",
                    short(&a.aggregator),
                    l.counter,
                    l.time,
                    l.heads.len(),
                    if names.is_empty() {
                        "nobody yet".to_string()
                    } else {
                        names.join(", ")
                    }
                ));
            }
            None => out.push_str(&format!(
                "aggregator {}{who}: no checkpoint yet\n",
                short(&a.aggregator)
            )),
        }
    }
    if r.findings.is_empty() {
        out.push_str("no findings");
    }
    for f in &r.findings {
        let region = f
            .region_name
            .clone()
            .or_else(|| f.region.as_deref().map(|r| short(r).to_string()))
            .map_or_else(String::new, |r| format!(" region {r}:"));
        let healed = f
            .healed
            .as_ref()
            .map_or_else(String::new, |h| format!(" (healed {h})"));
        out.push_str(&format!(
            "{} aggregator {}:{region} {} (last seen {}){healed}\n",
            f.kind,
            short(&f.aggregator),
            f.detail,
            f.last_seen
        ));
    }
    out.trim_end().to_string()
}

/// The first 8 characters of a key in hex (the whole text if it is shorter).
fn short(hex: &str) -> &str {
    hex.get(..8).unwrap_or(hex)
}
