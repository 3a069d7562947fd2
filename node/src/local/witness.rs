//! The witness's work on a node (issue: the centre is watched): an aggregator signs
//! checkpoints of what it relays; a region checks every checkpoint its pinned aggregator sends
//! against what it holds and what it saw before ([`spindel_protocol::witness`]), keeps it,
//! cosigns it when all holds, and keeps what it finds; and the audit report every surface
//! shows (`spindel audit`, `/granskning`, `/api/v1/audit`). The writes are writer jobs
//! ([`WitnessJob`]); the report is a read.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use spindel_protocol::NodeId;
use spindel_protocol::checkpoint::{
    Checkpoint, CheckpointHead, SignedCheckpoint, SignedCosignature, VerifiedCheckpoint,
};
use spindel_protocol::sync::{AUDIT_CHECKPOINTS_MAX, AUDIT_COSIGNATURES_MAX};
use spindel_protocol::time::rfc3339_ms;
use spindel_protocol::witness::{
    self, Context, Finding, FindingKind, Held, Verdict, check_cosignature, check_heads, staleness,
};

use super::error::NodeError;
use super::node::LocalNode;
use crate::store::{KeptCheckpoint, StoreError, WitnessWrite};

/// A witness write, run by the node's writer.
#[derive(Debug)]
pub enum WitnessJob {
    /// Region: a checkpoint of the pinned aggregator `from`. `acked` is how far it has
    /// acknowledged this node's own log in the running session; `sent` how far, per author,
    /// it sent entries in that session (an entry it sent that this node refused was not
    /// withheld).
    Checkpoint {
        from: NodeId,
        signed: SignedCheckpoint,
        acked: u64,
        sent: BTreeMap<NodeId, u64>,
    },
    /// Region: the opening heads of a session with the pinned aggregator `from`.
    Heads {
        from: NodeId,
        heads: BTreeMap<NodeId, u64>,
    },
    /// Cosignatures `from` a peer: `relayed` by an aggregator this node pinned (a region's,
    /// or a mirror's upstream), else a region's own, sent to this aggregator.
    Cosignatures {
        from: NodeId,
        list: Vec<SignedCosignature>,
        relayed: bool,
    },
    /// Aggregator: sign a checkpoint if what it relays changed (or always, `force`).
    Sign { force: bool },
    /// Region: this node is about to run under a rotated key; what the aggregators
    /// acknowledged was of the old key's log, which the new key's does not continue.
    KeyRotated,
}

/// What a [`WitnessJob`] did.
#[derive(Debug, Default)]
pub struct WitnessDone {
    /// Region: this node's cosignature of the checkpoint, to send back.
    pub cosignature: Option<SignedCosignature>,
    /// What was found (already kept).
    pub findings: Vec<Finding>,
    /// Why the checkpoint (or how many cosignatures) were refused.
    pub refused: Option<&'static str>,
    /// Aggregator: the cosignatures kept, to relay to every region.
    pub kept: Vec<SignedCosignature>,
    /// Aggregator: the new checkpoint, to offer every session.
    pub signed: Option<Arc<VerifiedCheckpoint>>,
}

impl LocalNode {
    /// Runs one witness job (the writer's).
    pub(crate) fn witness(&self, job: WitnessJob, now_ms: u64) -> Result<WitnessDone, NodeError> {
        Ok(match job {
            WitnessJob::Checkpoint {
                from,
                signed,
                acked,
                sent,
            } => self.take_checkpoint(from, signed, acked, &sent, now_ms)?,
            WitnessJob::Heads { from, heads } => {
                let store = self.store();
                let mut view = store.witness_view(&from)?;
                if view.since_ms == 0 {
                    view.since_ms = now_ms;
                }
                let findings = check_heads(&view, from, &heads, self.node_id());
                store.write_witness(
                    WitnessWrite {
                        aggregator: Some(from),
                        view: Some(view),
                        findings: findings.clone(),
                        ..WitnessWrite::default()
                    },
                    now_ms,
                )?;
                WitnessDone {
                    findings,
                    ..WitnessDone::default()
                }
            }
            WitnessJob::Cosignatures {
                from,
                list,
                relayed,
            } => self.take_cosignatures(from, list, relayed, now_ms)?,
            WitnessJob::KeyRotated => {
                let store = self.store();
                for agg in store.witnessed_aggregators()? {
                    let mut view = store.witness_view(&agg)?;
                    view.acked = 0;
                    store.write_witness(
                        WitnessWrite {
                            aggregator: Some(agg),
                            view: Some(view),
                            ..WitnessWrite::default()
                        },
                        now_ms,
                    )?;
                }
                WitnessDone::default()
            }
            WitnessJob::Sign { force } => WitnessDone {
                signed: self.sign_checkpoint(force, now_ms)?,
                ..WitnessDone::default()
            },
        })
    }

    fn take_checkpoint(
        &self,
        from: NodeId,
        signed: SignedCheckpoint,
        acked: u64,
        sent: &BTreeMap<NodeId, u64>,
        now_ms: u64,
    ) -> Result<WitnessDone, NodeError> {
        let store = self.store();
        let cp = match signed.verify(Some(&from)) {
            Ok(cp) => cp,
            Err(e) => {
                store.count_refusal(e.reason(), 1)?;
                return Ok(WitnessDone {
                    refused: Some(e.reason()),
                    ..WitnessDone::default()
                });
            }
        };
        let me = self.node_id();
        let mut held = BTreeMap::new();
        for h in &cp.checkpoint.heads {
            let head = store.head(&h.author)?.map_or(0, |x| x.seq);
            let meta = store.author(&h.author)?;
            let frozen = meta.as_ref().is_some_and(|m| m.frozen);
            // A proven fork explains another entry at a seq: the author signed both.
            let at_seq = if head >= h.seq && !frozen {
                store.entry(&h.author, h.seq)?.map(|e| e.hash())
            } else {
                None
            };
            let takes = meta.is_some_and(|m| m.admitted && !m.frozen)
                && sent.get(&h.author).copied().unwrap_or(0) < h.seq;
            held.insert(
                h.author,
                Held {
                    head,
                    at_seq,
                    takes,
                },
            );
        }
        let listed = store
            .vouchers_all()?
            .into_iter()
            .filter(|(_, by)| by.contains(&from))
            .map(|(a, _)| a)
            .collect();
        let ctx = Context {
            me,
            now_ms,
            acked,
            same_counter: store.checkpoint_hashes(&from, cp.checkpoint.counter)?,
            held,
            listed,
        };
        let mut view = store.witness_view(&from)?;
        if view.since_ms == 0 {
            view.since_ms = now_ms;
        }
        let (mut findings, doubt) = match witness::witness(&mut view, &cp, &ctx) {
            Verdict::Again => return Ok(WitnessDone::default()),
            Verdict::Refused(reason) => {
                store.count_refusal(reason, 1)?;
                return Ok(WitnessDone {
                    refused: Some(reason),
                    ..WitnessDone::default()
                });
            }
            Verdict::Taken { findings, doubt } => (findings, doubt),
        };
        // Cosignatures relayed before the checkpoint arrived, of another one under its counter.
        for c in store.cosignatures(&from, cp.checkpoint.counter)? {
            if let Ok(body) = c.verify()
                && let Some(f) = check_cosignature(&[cp.hash], &body)
            {
                findings.push(f);
            }
        }
        let cosignature = (findings.is_empty() && !doubt)
            .then(|| SignedCosignature::sign(&self.key, &cp, now_ms));
        let counter = cp.checkpoint.counter;
        store.write_witness(
            WitnessWrite {
                aggregator: Some(from),
                view: Some(view),
                checkpoint: Some((
                    counter,
                    cp.hash,
                    KeptCheckpoint {
                        signed: cp.signed.clone(),
                        received_ms: now_ms,
                    },
                )),
                cosignatures: cosignature
                    .iter()
                    .map(|c| (counter, me, c.clone()))
                    .collect(),
                findings: findings.clone(),
                heal: true,
            },
            now_ms,
        )?;
        Ok(WitnessDone {
            cosignature,
            findings,
            ..WitnessDone::default()
        })
    }

    fn take_cosignatures(
        &self,
        from: NodeId,
        list: Vec<SignedCosignature>,
        relayed: bool,
        now_ms: u64,
    ) -> Result<WitnessDone, NodeError> {
        let store = self.store();
        let me = self.node_id();
        let aggregator = !relayed;
        let mut done = WitnessDone::default();
        let mut write = WitnessWrite {
            aggregator: Some(if aggregator { me } else { from }),
            ..WitnessWrite::default()
        };
        let mut refused = 0;
        for c in list {
            let Ok(body) = c.verify() else {
                refused += 1;
                continue;
            };
            let held = store.checkpoint_hashes(&body.aggregator, body.counter)?;
            let ok = if aggregator {
                // A region's own cosignature of a checkpoint this aggregator signed, the first
                // for that checkpoint: each is relayed to every region, so a region may not
                // have it relayed again and again (re-signed with another time).
                body.witness == from
                    && body.aggregator == me
                    && held.contains(&body.checkpoint)
                    && !store.has_cosignature(&me, body.counter, &from)?
            } else {
                // Relayed by the pinned aggregator, about itself. One by a key not known here
                // (a region this node has not heard of yet) is left out, not counted.
                if store.author(&body.witness)?.is_none() || body.witness == me {
                    continue;
                }
                body.aggregator == from
            };
            if !ok {
                refused += 1;
                continue;
            }
            if !aggregator && let Some(f) = check_cosignature(&held, &body) {
                write.findings.push(f);
            }
            write
                .cosignatures
                .push((body.counter, body.witness, c.clone()));
            done.kept.push(c);
        }
        if refused > 0 {
            store.count_refusal("cosignature_refused", refused)?;
            done.refused = Some("cosignature_refused");
        }
        done.findings = write.findings.clone();
        if !write.cosignatures.is_empty() || !write.findings.is_empty() {
            store.write_witness(write, now_ms)?;
        }
        Ok(done)
    }

    /// Aggregator: a checkpoint of the heads it relays (the regions it admits), when they
    /// changed since the last one or `force`; its counter is above the last one and at least
    /// the time in ms, so an aggregator started from an old copy of its directory never
    /// signs a counter again.
    fn sign_checkpoint(
        &self,
        force: bool,
        now_ms: u64,
    ) -> Result<Option<Arc<VerifiedCheckpoint>>, NodeError> {
        let store = self.store();
        let me = self.node_id();
        let admitted = store.admitted_authors()?;
        let heads: Vec<CheckpointHead> = store
            .heads()?
            .into_iter()
            .filter(|(a, _)| admitted.contains(a))
            .take(spindel_protocol::checkpoint::CHECKPOINT_AUTHORS_MAX)
            .map(|(author, h)| CheckpointHead {
                author,
                seq: h.seq,
                hash: h.hash,
            })
            .collect();
        let last = store
            .kept_checkpoints(&me)?
            .into_iter()
            .find_map(|k| k.signed.verify(Some(&me)).ok());
        if let Some(last) = &last
            && !force
            && last.checkpoint.heads == heads
        {
            return Ok(None);
        }
        let counter = last
            .as_ref()
            .map_or(0, |l| l.checkpoint.counter + 1)
            .max(now_ms);
        let cp = SignedCheckpoint::sign(
            &self.key,
            &Checkpoint {
                aggregator: me,
                counter,
                time_ms: now_ms,
                heads,
            },
        );
        store.write_witness(
            WitnessWrite {
                aggregator: Some(me),
                checkpoint: Some((
                    counter,
                    cp.hash,
                    KeptCheckpoint {
                        signed: cp.signed.clone(),
                        received_ms: now_ms,
                    },
                )),
                ..WitnessWrite::default()
            },
            now_ms,
        )?;
        Ok(Some(Arc::new(cp)))
    }

    /// The audit: every aggregator this node witnessed (or, on an aggregator, itself) with its
    /// newest checkpoint and who cosigned it, and every finding, `stale` included.
    pub(crate) fn audit_report(&self, now_ms: u64) -> Result<AuditReport, StoreError> {
        let store = self.store();
        let me = self.node_id();
        let name_of = |id: &NodeId| -> Result<Option<String>, StoreError> {
            Ok(store.author(id)?.map(|m| m.shown(id)))
        };
        let mut report = AuditReport {
            node: me.to_hex(),
            aggregators: Vec::new(),
            findings: Vec::new(),
        };
        let mut stale = Vec::new();
        for agg in store.witnessed_aggregators()? {
            let view = store.witness_view(&agg)?;
            let kept = store.kept_checkpoints(&agg)?;
            let latest = kept
                .iter()
                .find_map(|k| k.signed.verify(Some(&agg)).ok().map(|v| (v, k.received_ms)));
            let latest = match latest {
                Some((cp, received_ms)) => {
                    let mut cosigned_by = Vec::new();
                    for c in store.cosignatures(&agg, cp.checkpoint.counter)? {
                        if let Ok(body) = c.verify()
                            && body.checkpoint == cp.hash
                        {
                            cosigned_by.push(Cosigner {
                                witness: body.witness.to_hex(),
                                name: name_of(&body.witness)?,
                                time: rfc3339_ms(body.time_ms),
                            });
                        }
                    }
                    let mut heads = Vec::new();
                    for h in &cp.checkpoint.heads {
                        heads.push(AuditHead {
                            region: h.author.to_hex(),
                            name: name_of(&h.author)?,
                            seq: h.seq,
                        });
                    }
                    Some(LatestCheckpoint {
                        counter: cp.checkpoint.counter,
                        time: rfc3339_ms(cp.checkpoint.time_ms),
                        received: rfc3339_ms(received_ms),
                        hash: cp.hash.to_hex(),
                        heads,
                        cosigned_by,
                    })
                }
                None => None,
            };
            if agg != me {
                stale.extend(staleness(&view, agg, now_ms));
            }
            report.aggregators.push(AggregatorAudit {
                aggregator: agg.to_hex(),
                this_node: agg == me,
                latest,
                checkpoints_kept: kept.len(),
                acknowledged: view.acked,
            });
        }
        let mut kept = store.findings()?;
        kept.sort_by_key(|k| std::cmp::Reverse(k.last_ms));
        for k in kept {
            report.findings.push(AuditFinding::of(
                &k.finding,
                &name_of,
                k.first_ms,
                k.last_ms,
                k.healed_ms,
            )?);
        }
        for f in stale {
            report
                .findings
                .push(AuditFinding::of(&f, &name_of, now_ms, now_ms, None)?);
        }
        Ok(report)
    }

    /// The checkpoints and cosignatures this node keeps, newest first, as another region's
    /// `audit --peer` asks for them (bounded, and under one frame).
    pub(crate) fn audit_evidence(
        &self,
    ) -> Result<(Vec<SignedCheckpoint>, Vec<SignedCosignature>), StoreError> {
        let store = self.store();
        let mut checkpoints = Vec::new();
        let mut cosignatures = Vec::new();
        let mut bytes = 0usize;
        for agg in store.witnessed_aggregators()? {
            for k in store.kept_checkpoints(&agg)? {
                bytes += k.signed.body.len() + 80;
                if checkpoints.len() >= AUDIT_CHECKPOINTS_MAX || bytes > AUDIT_ANSWER_BYTES_MAX {
                    break;
                }
                checkpoints.push(k.signed);
            }
            for c in store.all_cosignatures(&agg)? {
                if cosignatures.len() >= AUDIT_COSIGNATURES_MAX {
                    break;
                }
                cosignatures.push(c);
            }
        }
        Ok((checkpoints, cosignatures))
    }
}

/// What `spindel audit` reads of a node: the report, and the checkpoints it keeps (hex of
/// their encoding) to compare with another region's (`--peer`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AuditBundle {
    pub report: AuditReport,
    pub checkpoints: Vec<String>,
}

impl LocalNode {
    /// The report and this node's checkpoints (see [`AuditBundle`]).
    pub(crate) fn audit_bundle(&self, now_ms: u64) -> Result<AuditBundle, StoreError> {
        let (checkpoints, _) = self.audit_evidence()?;
        Ok(AuditBundle {
            report: self.audit_report(now_ms)?,
            checkpoints: checkpoints
                .iter()
                .map(|c| hex::encode(spindel_protocol::codec::encode(c)))
                .collect(),
        })
    }
}

/// Bytes of one checkpoint's encoding in an [`AuditBundle`], at most.
const BUNDLE_CHECKPOINT_BYTES_MAX: usize = spindel_protocol::checkpoint::CHECKPOINT_BYTES_MAX + 128;

impl AuditBundle {
    /// Adds what comparing this node's checkpoints with the region `peer`'s finds
    /// ([`witness::compare`]; a cosignature of that region's own, of another checkpoint than
    /// this node holds under its counter, is a split view too). Checkpoints or cosignatures whose
    /// signature fails are left out and counted in the returned number.
    pub fn compare_with(
        &mut self,
        peer: &NodeId,
        theirs: &[SignedCheckpoint],
        cosignatures: &[SignedCosignature],
        now_ms: u64,
    ) -> usize {
        let label = peer.short();
        let mine: Vec<VerifiedCheckpoint> = self
            .checkpoints
            .iter()
            .filter_map(|h| hex::decode(h).ok())
            .filter_map(|b| {
                spindel_protocol::codec::decode::<SignedCheckpoint, BUNDLE_CHECKPOINT_BYTES_MAX>(
                    "checkpoint",
                    &b,
                )
                .ok()
            })
            .filter_map(|c| c.verify(None).ok())
            .collect();
        let mut bad = 0;
        let theirs: Vec<VerifiedCheckpoint> = theirs
            .iter()
            .filter_map(|c| {
                let v = c.verify(None).ok();
                bad += usize::from(v.is_none());
                v
            })
            .collect();
        let mut found = witness::compare(&mine, &theirs, &label);
        for c in cosignatures {
            let Ok(body) = c.verify() else {
                bad += 1;
                continue;
            };
            // Only the peer's own cosignatures are its word; others it passes on could be
            // anyone's (a key made up to accuse an honest aggregator).
            if body.witness != *peer {
                continue;
            }
            let held: Vec<spindel_protocol::Hash> = mine
                .iter()
                .filter(|m| {
                    m.checkpoint.aggregator == body.aggregator
                        && m.checkpoint.counter == body.counter
                })
                .map(|m| m.hash)
                .collect();
            if let Some(f) = check_cosignature(&held, &body)
                && !found
                    .iter()
                    .any(|g| g.kind == f.kind && g.region == f.region)
            {
                found.push(f);
            }
        }
        let names: BTreeMap<String, Option<String>> = self
            .report
            .aggregators
            .iter()
            .filter_map(|a| a.latest.as_ref())
            .flat_map(|l| l.heads.iter().map(|h| (h.region.clone(), h.name.clone())))
            .collect();
        let name_of = |id: &NodeId| -> Result<Option<String>, StoreError> {
            Ok(names.get(&id.to_hex()).cloned().flatten())
        };
        for f in found {
            if let Ok(f) = AuditFinding::of(&f, &name_of, now_ms, now_ms, None) {
                self.report.findings.push(f);
            }
        }
        bad
    }
}

/// Bytes of checkpoints in one audit answer, at most (the cosignatures, at most
/// [`AUDIT_COSIGNATURES_MAX`] of about 250 bytes, fit beside them under the 1 MiB frame).
pub const AUDIT_ANSWER_BYTES_MAX: usize = 700 * 1024;

/// `spindel audit --json`, `/api/v1/audit`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct AuditReport {
    /// This node's key.
    pub node: String,
    pub aggregators: Vec<AggregatorAudit>,
    pub findings: Vec<AuditFinding>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct AggregatorAudit {
    pub aggregator: String,
    /// The aggregator is this node (its own checkpoints).
    pub this_node: bool,
    pub latest: Option<LatestCheckpoint>,
    pub checkpoints_kept: usize,
    /// How far it acknowledged this node's own log.
    pub acknowledged: u64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct LatestCheckpoint {
    pub counter: u64,
    pub time: String,
    pub received: String,
    pub hash: String,
    pub heads: Vec<AuditHead>,
    pub cosigned_by: Vec<Cosigner>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct AuditHead {
    pub region: String,
    pub name: Option<String>,
    pub seq: u64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Cosigner {
    pub witness: String,
    pub name: Option<String>,
    pub time: String,
}

/// One finding as every surface shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct AuditFinding {
    pub kind: String,
    pub aggregator: String,
    pub region: Option<String>,
    pub region_name: Option<String>,
    pub detail: String,
    pub first_seen: String,
    pub last_seen: String,
    /// When a later checkpoint held again what this one lacked (rollback, withheld).
    pub healed: Option<String>,
}

impl AuditFinding {
    pub(crate) fn of(
        f: &Finding,
        name_of: &dyn Fn(&NodeId) -> Result<Option<String>, StoreError>,
        first_ms: u64,
        last_ms: u64,
        healed_ms: Option<u64>,
    ) -> Result<AuditFinding, StoreError> {
        Ok(AuditFinding {
            kind: f.kind.name().to_string(),
            aggregator: f.aggregator.to_hex(),
            region: f.region.map(|r| r.to_hex()),
            region_name: match &f.region {
                Some(r) => name_of(r)?,
                None => None,
            },
            detail: f.detail.clone(),
            first_seen: rfc3339_ms(first_ms),
            last_seen: rfc3339_ms(last_ms),
            healed: healed_ms.map(rfc3339_ms),
        })
    }

    /// Whether it is of `kind`.
    pub fn is(&self, kind: FindingKind) -> bool {
        self.kind == kind.name()
    }
}
