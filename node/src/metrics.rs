//! `GET /metrics`: the node's health in Prometheus text format (exposition format 0.0.4), for
//! an operator's Prometheus and Grafana (`deploy/prometheus.yml`, `deploy/grafana-dashboard.json`).
//! Counters kept while the node runs live in [`Metrics`]; the rest is read from the store and
//! the process when scraped. No peer addresses or error texts: those are in `spindel status`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::link::PeerStatus;
use crate::listener::{ListenerKind, ListenerStats, TimeoutKind};
use crate::read::{ReadModel, Reads};

/// Counters of a running node.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Entries accepted from peers since the node started.
    entries_accepted: AtomicU64,
    /// Sync sessions ended, and their total duration in microseconds.
    sessions: AtomicU64,
    session_micros: AtomicU64,
    /// HTTP requests by route (the matched pattern), then status.
    http: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    /// Editor logins by outcome: `ok`, `wrong`, `wait` (tried before its wait was over).
    pub logins_ok: AtomicU64,
    pub logins_wrong: AtomicU64,
    pub logins_wait: AtomicU64,
    /// Sync sessions refused because another session of the same key was live here.
    pub sessions_refused_other_copy: AtomicU64,
    /// Pages or answers with a researcher's contact details refused (429) for the rate.
    pub contacts_refused: AtomicU64,
    /// Each HTTP listener's connections, refusals and timeouts (by [`ListenerKind::index`]).
    listeners: [Arc<ListenerStats>; 3],
}

/// Distinct HTTP routes counted; requests beyond this share the label `other`, so no client
/// can grow the table (unmatched paths are `unmatched` anyway).
pub const HTTP_ROUTES_MAX: usize = 64;

impl Metrics {
    pub fn accepted(&self, n: u64) {
        self.entries_accepted.fetch_add(n, Ordering::Relaxed);
    }

    pub fn session_ended(&self, lasted: Duration) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        self.session_micros.fetch_add(
            u64::try_from(lasted.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The counters of one HTTP listener.
    pub fn listener(&self, kind: ListenerKind) -> &Arc<ListenerStats> {
        &self.listeners[kind.index()]
    }

    pub fn http_request(&self, route: &str, status: u16) {
        let mut map = self.http.lock().unwrap_or_else(|e| e.into_inner());
        let route = if map.contains_key(route) || map.len() < HTTP_ROUTES_MAX {
            route
        } else {
            "other"
        };
        *map.entry(route.to_string())
            .or_default()
            .entry(status)
            .or_default() += 1;
    }
}

/// A per-peer gauge: its name, its help text and its value for one peer.
type PeerGauge = (&'static str, &'static str, fn(&PeerStatus) -> u64);

/// A label value with `\`, `"` and newlines escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Bytes of every file under `dir` (0 if it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// The process's resident memory in bytes (Linux), if it can be read.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The whole exposition: the node's counters, its store, its peers and the process.
pub fn render(
    node: &ReadModel,
    metrics: &Metrics,
    peers: &[PeerStatus],
) -> Result<String, crate::local::NodeError> {
    let mut out = String::new();
    let config = node.config();
    head(&mut out, "spindel_up", "gauge", "1 while the node serves.");
    let role = match config.role {
        crate::local::Role::Region => "region",
        crate::local::Role::Aggregator => "aggregator",
    };
    let _ = writeln!(
        out,
        "spindel_up{{name=\"{}\",role=\"{role}\"}} 1",
        esc(&config.name)
    );

    let status = node.status()?;
    head(
        &mut out,
        "spindel_records",
        "gauge",
        "Current, visible records held here.",
    );
    let _ = writeln!(out, "spindel_records {}", status.records);
    head(
        &mut out,
        "spindel_log_entries",
        "gauge",
        "Entries held per author (its head seq), by the name it was admitted under.",
    );
    for a in &status.authors {
        let _ = writeln!(
            out,
            "spindel_log_entries{{author=\"{}\",name=\"{}\"}} {}",
            esc(a.node_id.get(..16).unwrap_or(&a.node_id)),
            esc(a.name.as_deref().unwrap_or("")),
            a.head
        );
    }
    head(
        &mut out,
        "spindel_author_payload_bytes",
        "gauge",
        &format!(
            "Signed payload bytes of each author's current records; entries past {} are refused (payload_quota).",
            spindel_protocol::ingest::AUTHOR_PAYLOAD_BYTES_MAX
        ),
    );
    for a in &status.authors {
        let _ = writeln!(
            out,
            "spindel_author_payload_bytes{{author=\"{}\",name=\"{}\"}} {}",
            esc(a.node_id.get(..16).unwrap_or(&a.node_id)),
            esc(a.name.as_deref().unwrap_or("")),
            a.payload_bytes
        );
    }
    head(
        &mut out,
        "spindel_entries_accepted_total",
        "counter",
        "Entries accepted from peers since the node started.",
    );
    let _ = writeln!(
        out,
        "spindel_entries_accepted_total {}",
        metrics.entries_accepted.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "spindel_entries_refused_total",
        "counter",
        "Entries refused, by reason (kept in the store across restarts).",
    );
    for (reason, n) in &status.refused {
        let _ = writeln!(
            out,
            "spindel_entries_refused_total{{reason=\"{}\"}} {n}",
            esc(reason)
        );
    }
    head(
        &mut out,
        "spindel_forks",
        "gauge",
        "Authors proven to have forked their log (frozen here).",
    );
    let _ = writeln!(out, "spindel_forks {}", status.forks.len());
    head(
        &mut out,
        "spindel_audit_findings",
        "gauge",
        "Findings about an aggregator not healed (spindel audit): rollback, withheld, split-view, stale.",
    );
    let audit = node.audit(crate::local::now_ms())?;
    for kind in spindel_protocol::witness::FindingKind::ALL {
        let n = audit
            .findings
            .iter()
            .filter(|f| f.is(kind) && f.healed.is_none())
            .count();
        let _ = writeln!(
            out,
            "spindel_audit_findings{{kind=\"{}\"}} {n}",
            kind.name()
        );
    }

    let peer_gauges: [PeerGauge; 2] = [
        (
            "spindel_peer_connected",
            "1 if the link to the peer is up; an aggregator lists every region it admits, 0 when not connected.",
            |p| u64::from(p.connected),
        ),
        (
            "spindel_peer_lag_entries",
            "Entries this node holds that the peer does not yet.",
            |p| p.lag,
        ),
    ];
    let labels = |p: &PeerStatus| {
        format!(
            "peer=\"{}\",name=\"{}\",role=\"{}\"",
            esc(p.node_id.get(..16).unwrap_or(&p.node_id)),
            esc(p.name.as_deref().unwrap_or("")),
            esc(&p.role)
        )
    };
    for (name, help, value) in peer_gauges {
        head(&mut out, name, "gauge", help);
        for p in peers {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(p), value(p));
        }
    }
    head(
        &mut out,
        "spindel_peer_own_not_sent_entries",
        "gauge",
        "Dialed aggregators: entries of this node's own log it holds beyond what the aggregator acknowledged since this node started (signed offline, or not sent yet); absent until the aggregator answered once.",
    );
    for p in peers {
        if let Some(n) = p.own_not_sent {
            let _ = writeln!(
                out,
                "spindel_peer_own_not_sent_entries{{{}}} {n}",
                labels(p)
            );
        }
    }
    head(
        &mut out,
        "spindel_peer_last_seen_seconds",
        "gauge",
        "When this node last had a live session with the peer (Unix seconds; now while connected); absent for a peer not seen since the node started.",
    );
    for p in peers {
        if let Some(ms) = p.last_seen_ms {
            let _ = writeln!(
                out,
                "spindel_peer_last_seen_seconds{{{}}} {}",
                labels(p),
                ms / 1000
            );
        }
    }
    head(
        &mut out,
        "spindel_sessions_refused_other_copy_total",
        "counter",
        "Sync sessions refused because another session of the same key was live here (two running copies of one node).",
    );
    let _ = writeln!(
        out,
        "spindel_sessions_refused_other_copy_total {}",
        metrics.sessions_refused_other_copy.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "spindel_sync_session_seconds",
        "summary",
        "Durations of ended sync sessions.",
    );
    let _ = writeln!(
        out,
        "spindel_sync_session_seconds_sum {}",
        metrics.session_micros.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "spindel_sync_session_seconds_count {}",
        metrics.sessions.load(Ordering::Relaxed)
    );

    head(
        &mut out,
        "spindel_disk_bytes",
        "gauge",
        "Bytes on disk per part of the data directory.",
    );
    for part in ["store", "index", "payloads"] {
        let _ = writeln!(
            out,
            "spindel_disk_bytes{{part=\"{part}\"}} {}",
            dir_bytes(&node.dir().join(part))
        );
    }
    head(
        &mut out,
        "spindel_http_requests_total",
        "counter",
        "HTTP requests by route and status.",
    );
    for (route, codes) in metrics
        .http
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        for (code, n) in codes {
            let _ = writeln!(
                out,
                "spindel_http_requests_total{{route=\"{}\",status=\"{code}\"}} {n}",
                esc(route)
            );
        }
    }
    head(
        &mut out,
        "spindel_editor_logins_total",
        "counter",
        "Editor logins by outcome: ok, wrong (name or password), wait (tried before the wait its failures set was over; answered 429).",
    );
    for (outcome, n) in [
        ("ok", &metrics.logins_ok),
        ("wrong", &metrics.logins_wrong),
        ("wait", &metrics.logins_wait),
    ] {
        let _ = writeln!(
            out,
            "spindel_editor_logins_total{{outcome=\"{outcome}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    head(
        &mut out,
        "spindel_contact_views_refused_total",
        "counter",
        "Pages and API answers with a researcher's e-mail or phone refused (429) because one client address asked for too many.",
    );
    let _ = writeln!(
        out,
        "spindel_contact_views_refused_total {}",
        metrics.contacts_refused.load(Ordering::Relaxed)
    );
    http_listeners(&mut out, metrics);
    full_text_index(&mut out, node);
    if let Some(rss) = rss_bytes() {
        head(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the node process.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    Ok(out)
}

/// A per-listener line: its name, its type, its help text and its value for one listener.
type ListenerLine = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ListenerStats) -> u64,
);

/// Connections, refusals and timeouts of each HTTP listener that serves.
fn http_listeners(out: &mut String, metrics: &Metrics) {
    let serving: Vec<(ListenerKind, &ListenerStats)> = ListenerKind::ALL
        .iter()
        .map(|&k| (k, metrics.listener(k).as_ref()))
        .filter(|(_, s)| s.max() > 0)
        .collect();
    let gauges: [ListenerLine; 4] = [
        (
            "spindel_http_connections",
            "gauge",
            "Open connections of each HTTP listener.",
            ListenerStats::open,
        ),
        (
            "spindel_http_connections_max",
            "gauge",
            "The cap of each HTTP listener (a share of the open-file limit); more connections are refused.",
            ListenerStats::max,
        ),
        (
            "spindel_http_connections_refused_total",
            "counter",
            "Connections refused (503, closed at once) because the listener was at its cap.",
            ListenerStats::refused,
        ),
        (
            "spindel_http_accept_errors_total",
            "counter",
            "Accepts that failed (most often: the process is out of file descriptors).",
            ListenerStats::accept_errors,
        ),
    ];
    for (name, kind, help, value) in gauges {
        head(out, name, kind, help);
        for (listener, stats) in &serving {
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\"}} {}",
                listener.label(),
                value(stats)
            );
        }
    }
    use crate::listener::{
        HTTP_BODY_WINDOW, HTTP_BODY_WINDOW_BYTES, HTTP_HEADER_TIMEOUT, HTTP_IDLE_TIMEOUT,
    };
    head(
        out,
        "spindel_http_timeouts_total",
        "counter",
        &format!(
            "Connections closed by a deadline: header (request head not whole in {} s), body (408: under {} KiB per {} s), idle (nothing for {} s between requests), silent (not a byte in {} s after connecting).",
            HTTP_HEADER_TIMEOUT.as_secs(),
            HTTP_BODY_WINDOW_BYTES / 1024,
            HTTP_BODY_WINDOW.as_secs(),
            HTTP_IDLE_TIMEOUT.as_secs(),
            HTTP_IDLE_TIMEOUT.as_secs()
        ),
    );
    for (listener, stats) in &serving {
        for kind in TimeoutKind::ALL {
            let _ = writeln!(
                out,
                "spindel_http_timeouts_total{{listener=\"{}\",kind=\"{}\"}} {}",
                listener.label(),
                kind.label(),
                stats.timeouts(kind)
            );
        }
    }
}

/// The full-text index's background work: what waits, what failed and is being retried.
fn full_text_index(out: &mut String, node: &ReadModel) {
    let index = node.index_health();
    let lines: [(&str, &str, &str, u64); 5] = [
        (
            "spindel_index_changes_pending",
            "gauge",
            "Full-text changes applied to the store and not yet committed to the index (deletions included).",
            index.changes_pending,
        ),
        (
            "spindel_index_merges_pending",
            "gauge",
            "Index segments that still hold deleted documents (their words), as of the last check; merged away within seconds unless merges fail.",
            index.segments_with_deletes,
        ),
        (
            "spindel_index_merges_total",
            "counter",
            "Merges that took deleted documents out of the full-text index.",
            index.merges,
        ),
        (
            "spindel_index_commit_failures_total",
            "counter",
            "Failed commits of the full-text index (retried with backoff, changes kept).",
            index.commit_failures,
        ),
        (
            "spindel_index_merge_failures_total",
            "counter",
            "Failed merges of deleted documents out of the full-text index (retried with backoff).",
            index.merge_failures,
        ),
    ];
    for (name, kind, help, value) in lines {
        head(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_routes_are_bounded() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let m = Metrics::default();
        for i in 0..HTTP_ROUTES_MAX + 10 {
            m.http_request(&format!("/r{i}"), 200);
        }
        m.http_request("/r0", 200);
        let map = m.http.lock().unwrap();
        assert_eq!(map.len(), HTTP_ROUTES_MAX + 1, "the routes and `other`");
        assert_eq!(map["/r0"][&200], 2);
        assert_eq!(map["other"][&200], 10);
    }
}
