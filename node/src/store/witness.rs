//! What a node keeps of aggregators' checkpoints (its own observation, not derived from the
//! logs): the checkpoints and cosignatures it received or signed, its view of each aggregator
//! ([`AggregatorView`]) and its findings. Bounded: [`CHECKPOINTS_KEPT`] checkpoints and
//! [`COSIGNATURES_KEPT`] cosignatures per aggregator, findings one per kind, aggregator and
//! region.

use serde::{Deserialize, Serialize};
use spindel_protocol::NodeId;
use spindel_protocol::checkpoint::{CHECKPOINT_BYTES_MAX, SignedCheckpoint, SignedCosignature};
use spindel_protocol::codec;
use spindel_protocol::entry::Hash;
use spindel_protocol::witness::{AggregatorView, Finding, FindingKind};

use super::handle::Store;
use super::keys::key;
use super::types::{StoreError, corrupt, node_id_at};

/// Checkpoints kept per aggregator (the newest by counter).
pub const CHECKPOINTS_KEPT: usize = 32;
/// Cosignatures kept per aggregator (the newest by counter).
pub const COSIGNATURES_KEPT: usize = 512;
/// Bytes of one stored witness value, at most: a checkpoint of the most authors, or a view
/// of that many (an author's high-water mark is 82 bytes against a checkpoint head's 73).
const WITNESS_VALUE_BYTES_MAX: usize = 2 * CHECKPOINT_BYTES_MAX;

fn k_checkpoint(agg: &NodeId, counter: u64, hash: &Hash) -> Vec<u8> {
    key(b'W', &[&agg.0, &counter.to_be_bytes(), &hash.0])
}
fn k_cosignature(agg: &NodeId, counter: u64, witness: &NodeId) -> Vec<u8> {
    key(b'K', &[&agg.0, &counter.to_be_bytes(), &witness.0])
}
fn k_view(agg: &NodeId) -> Vec<u8> {
    key(b'G', &[&agg.0])
}
fn k_finding(kind: FindingKind, agg: &NodeId, region: Option<&NodeId>) -> Vec<u8> {
    let code = FindingKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0) as u8;
    key(b'X', &[&[code], &agg.0, &region.map_or([0; 32], |r| r.0)])
}

/// A checkpoint as kept: the bytes as received and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptCheckpoint {
    pub signed: SignedCheckpoint,
    pub received_ms: u64,
}

/// A finding as kept: when it was first and last seen, and when it healed (a later checkpoint
/// held what it lacked), if it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptFinding {
    pub finding: Finding,
    pub first_ms: u64,
    pub last_ms: u64,
    pub healed_ms: Option<u64>,
}

/// One witness write: everything a checkpoint (or a session's opening heads) changed, applied
/// as one batch.
#[derive(Debug, Default)]
pub struct WitnessWrite {
    pub aggregator: Option<NodeId>,
    pub view: Option<AggregatorView>,
    pub checkpoint: Option<(u64, Hash, KeptCheckpoint)>,
    pub cosignatures: Vec<(u64, NodeId, SignedCosignature)>,
    pub findings: Vec<Finding>,
    /// Findings of the aggregator that a taken checkpoint no longer shows (rollback,
    /// withheld): marked healed.
    pub heal: bool,
}

fn decode<T: Serialize + serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::decode::<T, WITNESS_VALUE_BYTES_MAX>("stored witness value", bytes)
        .map_err(|e| corrupt(what, e))
}

impl Store {
    /// What this node remembers of `aggregator` (default when nothing yet).
    pub fn witness_view(&self, aggregator: &NodeId) -> Result<AggregatorView, StoreError> {
        match self.db.get(k_view(aggregator))? {
            Some(v) => decode("aggregator view", &v),
            None => Ok(AggregatorView::default()),
        }
    }

    /// Every aggregator this node keeps a view or a checkpoint of.
    pub fn witnessed_aggregators(&self) -> Result<Vec<NodeId>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([b'G']) {
            let (k, _) = item?;
            out.push(node_id_at(&k, 1)?);
        }
        for item in self.db.scan_prefix([b'W']) {
            let (k, _) = item?;
            let agg = node_id_at(&k, 1)?;
            if !out.contains(&agg) {
                out.push(agg);
            }
        }
        Ok(out)
    }

    /// The checkpoints kept of `aggregator`, newest first.
    pub fn kept_checkpoints(&self, aggregator: &NodeId) -> Result<Vec<KeptCheckpoint>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(key(b'W', &[&aggregator.0])).rev() {
            let (_, v) = item?;
            out.push(decode("checkpoint", &v)?);
        }
        Ok(out)
    }

    /// The hashes of the checkpoints kept of `aggregator` under `counter` (two: a split view).
    pub fn checkpoint_hashes(
        &self,
        aggregator: &NodeId,
        counter: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .scan_prefix(key(b'W', &[&aggregator.0, &counter.to_be_bytes()]))
        {
            let (k, _) = item?;
            let hash: [u8; 32] = k
                .get(41..73)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt(hex::encode(&k), "short key"))?;
            out.push(Hash(hash));
        }
        Ok(out)
    }

    /// The cosignatures kept of `aggregator`'s checkpoint `counter`.
    pub fn cosignatures(
        &self,
        aggregator: &NodeId,
        counter: u64,
    ) -> Result<Vec<SignedCosignature>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .scan_prefix(key(b'K', &[&aggregator.0, &counter.to_be_bytes()]))
        {
            let (_, v) = item?;
            out.push(decode("cosignature", &v)?);
        }
        Ok(out)
    }

    /// Whether a cosignature of `witness` is kept for `aggregator`'s checkpoint `counter`.
    pub fn has_cosignature(
        &self,
        aggregator: &NodeId,
        counter: u64,
        witness: &NodeId,
    ) -> Result<bool, StoreError> {
        Ok(self
            .db
            .contains_key(k_cosignature(aggregator, counter, witness))?)
    }

    /// Every cosignature kept of `aggregator`, newest counter first.
    pub fn all_cosignatures(
        &self,
        aggregator: &NodeId,
    ) -> Result<Vec<SignedCosignature>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(key(b'K', &[&aggregator.0])).rev() {
            let (_, v) = item?;
            out.push(decode("cosignature", &v)?);
        }
        Ok(out)
    }

    /// Every finding kept.
    pub fn findings(&self) -> Result<Vec<KeptFinding>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([b'X']) {
            let (_, v) = item?;
            out.push(decode("finding", &v)?);
        }
        Ok(out)
    }

    /// Applies one witness write as one batch, made durable before it returns; prunes what is
    /// beyond the bounds.
    pub fn write_witness(&self, w: WitnessWrite, now_ms: u64) -> Result<(), StoreError> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut batch = sled::Batch::default();
        let Some(agg) = w.aggregator else {
            return Ok(());
        };
        if let Some(view) = &w.view {
            batch.insert(k_view(&agg), codec::encode(view));
        }
        if let Some((counter, hash, kept)) = &w.checkpoint {
            batch.insert(k_checkpoint(&agg, *counter, hash), codec::encode(kept));
        }
        for (counter, witness, c) in &w.cosignatures {
            batch.insert(k_cosignature(&agg, *counter, witness), codec::encode(c));
        }
        let found: Vec<Vec<u8>> = w
            .findings
            .iter()
            .map(|f| k_finding(f.kind, &f.aggregator, f.region.as_ref()))
            .collect();
        for (f, k) in w.findings.iter().zip(&found) {
            let kept = match self.db.get(k)? {
                Some(v) => {
                    let mut kept: KeptFinding = decode("finding", &v)?;
                    kept.finding = f.clone();
                    kept.last_ms = now_ms;
                    kept.healed_ms = None;
                    kept
                }
                None => KeptFinding {
                    finding: f.clone(),
                    first_ms: now_ms,
                    last_ms: now_ms,
                    healed_ms: None,
                },
            };
            batch.insert(k.clone(), codec::encode(&kept));
        }
        if w.heal {
            for item in self.db.scan_prefix([b'X']) {
                let (k, v) = item?;
                let mut kept: KeptFinding = decode("finding", &v)?;
                let heals = matches!(
                    kept.finding.kind,
                    FindingKind::Rollback | FindingKind::Withheld
                );
                if heals
                    && kept.finding.aggregator == agg
                    && kept.healed_ms.is_none()
                    && !found.iter().any(|f| *f == *k)
                {
                    kept.healed_ms = Some(now_ms);
                    batch.insert(k, codec::encode(&kept));
                }
            }
        }
        self.db.apply_batch(batch)?;
        self.prune_witness(&agg)?;
        self.db.flush()?;
        Ok(())
    }

    /// Drops the oldest checkpoints and cosignatures of `agg` beyond the bounds.
    fn prune_witness(&self, agg: &NodeId) -> Result<(), StoreError> {
        for (prefix, kept) in [(b'W', CHECKPOINTS_KEPT), (b'K', COSIGNATURES_KEPT)] {
            let keys: Vec<sled::IVec> = self
                .db
                .scan_prefix(key(prefix, &[&agg.0]))
                .keys()
                .collect::<Result<_, _>>()?;
            if keys.len() > kept {
                let mut batch = sled::Batch::default();
                for k in &keys[..keys.len() - kept] {
                    batch.remove(k.clone());
                }
                self.db.apply_batch(batch)?;
            }
        }
        Ok(())
    }
}
