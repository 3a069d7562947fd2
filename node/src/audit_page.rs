//! `/granskning`, the audit's page: every aggregator's newest checkpoint and who cosigned it,
//! and the findings, from the same [`crate::local::AuditReport`] as `/api/v1/audit` and
//! `spindel audit`, rendered by the public page's templates (its own route, merged by the
//! HTTP router as the proxy bank's is).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use minijinja::{Value, context};
use serde::Serialize;

use crate::local::AuditReport;
use crate::params::Params;
use crate::read::Reads;
use crate::shared::Shared;
use crate::web::{PageError, bad_request, internal, page};
use crate::words;

/// The audit's page.
pub fn routes() -> axum::Router<Arc<Shared>> {
    axum::Router::new().route("/granskning", axum::routing::get(audit))
}

/// One aggregator as the page shows it.
#[derive(Debug, Serialize)]
struct AggregatorRow {
    /// The first 8 hex characters of its key.
    short: String,
    this_node: bool,
    /// The newest checkpoint's number and time (RFC 3339), if one came.
    counter: Option<u64>,
    time: Option<String>,
    /// Regions whose heads the checkpoint holds.
    regions: usize,
    /// The cosigners' shown names (the key's start for one without a name).
    cosigners: Vec<String>,
}

/// One finding as the page shows it.
#[derive(Debug, Serialize)]
struct FindingRow {
    kind: String,
    aggregator: String,
    region: Option<String>,
    /// What the kind means, in Swedish.
    meaning: String,
    detail: String,
    first_seen: String,
    last_seen: String,
    healed: Option<String>,
}

/// The first 8 characters of a key in hex.
fn short(key: &str) -> String {
    key.get(..8).unwrap_or(key).to_string()
}

/// The report as the page's rows.
fn rows(report: AuditReport) -> (Vec<AggregatorRow>, Vec<FindingRow>) {
    let aggregators = report
        .aggregators
        .into_iter()
        .map(|a| {
            let latest = a.latest.as_ref();
            AggregatorRow {
                short: short(&a.aggregator),
                this_node: a.this_node,
                counter: latest.map(|l| l.counter),
                time: latest.map(|l| l.time.clone()),
                regions: latest.map_or(0, |l| l.heads.len()),
                cosigners: latest
                    .map(|l| {
                        l.cosigned_by
                            .iter()
                            .map(|c| c.name.clone().unwrap_or_else(|| short(&c.witness)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let findings = report
        .findings
        .into_iter()
        .map(|f| FindingRow {
            kind: words::finding_kind(&f.kind),
            meaning: words::finding_meaning(&f.kind),
            aggregator: short(&f.aggregator),
            region: f.region_name.or_else(|| f.region.as_deref().map(short)),
            detail: f.detail,
            first_seen: f.first_seen,
            last_seen: f.last_seen,
            healed: f.healed,
        })
        .collect();
    (aggregators, findings)
}

async fn audit_page(
    shared: &Arc<Shared>,
    raw: Option<&str>,
) -> Result<(&'static str, &'static str, Value), PageError> {
    Params::parse(raw, &[]).map_err(|e| bad_request(words::param_error(&e)))?;
    let now = crate::shared::now_ms();
    let report = shared.read(move |n| n.audit(now)).await.map_err(internal)?;
    let (aggregators, findings) = rows(report);
    Ok((
        "granskning.html",
        "audit",
        context! { aggregators => aggregators, findings => findings },
    ))
}

/// `/granskning`: what the regions checked of the aggregators' checkpoints, and what they found.
async fn audit(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let r = audit_page(&shared, raw.as_deref()).await;
    page(&shared, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::{AggregatorAudit, AuditFinding, Cosigner, LatestCheckpoint};

    /// The page's rows: short keys, the cosigners by name (or key), the kinds in Swedish,
    /// and the page renders them with no template error.
    #[test]
    fn the_report_becomes_rows_and_renders() {
        let key = |c: char| c.to_string().repeat(64);
        let report = AuditReport {
            node: key('a'),
            aggregators: vec![AggregatorAudit {
                aggregator: key('b'),
                this_node: false,
                latest: Some(LatestCheckpoint {
                    counter: 7,
                    time: "2026-12-06T01:00:00.000Z".into(),
                    received: "2026-12-06T01:00:01.000Z".into(),
                    hash: key('c'),
                    heads: vec![],
                    cosigned_by: vec![
                        Cosigner {
                            witness: key('d'),
                            name: Some("skane".into()),
                            time: "2026-12-06T01:00:02.000Z".into(),
                        },
                        Cosigner {
                            witness: key('e'),
                            name: None,
                            time: "2026-12-06T01:00:02.000Z".into(),
                        },
                    ],
                }),
                checkpoints_kept: 1,
                acknowledged: 3,
            }],
            findings: vec![AuditFinding {
                kind: "withheld".into(),
                aggregator: key('b'),
                region: Some(key('d')),
                region_name: None,
                detail: "head 3 missing".into(),
                first_seen: "2026-07-01T10:00:00.000Z".into(),
                last_seen: "2026-07-01T11:00:00.000Z".into(),
                healed: Some("2026-07-01T12:00:00.000Z".into()),
            }],
        };
        let (aggregators, findings) = rows(report);
        assert_eq!(aggregators[0].short, "bbbbbbbb");
        assert_eq!(aggregators[0].cosigners, ["skane", "eeeeeeee"]);
        assert_eq!(findings[0].kind, "Undanhållet");
        assert_eq!(findings[0].region.as_deref(), Some("dddddddd"));
        let html = crate::templates::render_template(
            "granskning.html",
            context! {
                node_name => "x", node_role => "region", section => "audit",
                aggregators => aggregators, findings => findings,
            },
        )
        .unwrap();
        for seen in [
            "skane, eeeeeeee",
            "Undanhållet",
            "2026-12-06 kl. 02:00",
            "Läkt <time datetime=\"2026-07-01T12:00:00.000Z\">2026-07-01 kl. 14:00</time>",
        ] {
            assert!(html.contains(seen), "{seen:?}: {html}");
        }
    }
}
