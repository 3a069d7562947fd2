//! Checkpoints and cosignatures: how an aggregator is kept honest by the regions it serves.
//!
//! An aggregator signs a [`Checkpoint`] whenever its aggregate changed: its key, a counter
//! that only grows, its time, and the head (seq and entry hash) of every author it relays. A
//! region that received one checks it against what it knows ([`crate::witness`]) and, if all
//! holds, signs a [`Cosignature`] naming it, which the aggregator relays to every region.
//!
//! ```text
//! checkpoint bytes  = "spindel/checkpoint" 0x00 | 0x01 | bincode(Checkpoint)
//! Checkpoint        = aggregator [32] | counter varint | time_ms varint | heads: [CheckpointHead]
//! CheckpointHead    = author [32] | seq varint | hash [32]   (sorted by author, each once, seq >= 1)
//! cosignature bytes = "spindel/cosignature" 0x00 | 0x01 | bincode(CosignatureBody)
//! CosignatureBody   = aggregator [32] | counter varint | checkpoint [32] | witness [32] | time_ms varint
//! signature         = ed25519 over the bytes exactly as received (verify_strict)
//! ```
//!
//! The full head list travels, not a Merkle root: membership is by admission, so the list is
//! one line per admitted region (8 today, 74 bytes each), and a witness checks every region's
//! head, not only its own (docs/protocol.md, "Checkpoints").

use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError};
use crate::entry::Hash;
use crate::keys::{NodeId, SIGNATURE_BYTES, SecretKey, VerifyError};

/// The tag the signed bytes of a checkpoint start with.
pub const CHECKPOINT_DOMAIN: &[u8] = b"spindel/checkpoint\0";
/// The tag the signed bytes of a cosignature start with.
pub const COSIGNATURE_DOMAIN: &[u8] = b"spindel/cosignature\0";
/// The format byte after either tag.
pub const CHECKPOINT_FORMAT: u8 = 1;
/// Authors one checkpoint names, at most (as many as a heads message).
pub const CHECKPOINT_AUTHORS_MAX: usize = 10_000;
/// Bytes of one head in a checkpoint, at most (key, varint seq, hash).
const HEAD_BYTES_MAX: usize = 32 + 9 + 32;
/// Bytes of a checkpoint's signed body, at most: the tag, the fixed fields and the heads.
/// Stays under the frame cap (1 MiB), so one checkpoint is one frame.
pub const CHECKPOINT_BYTES_MAX: usize = 128 + CHECKPOINT_AUTHORS_MAX * HEAD_BYTES_MAX;
/// Bytes of a cosignature's signed body, at most.
pub const COSIGNATURE_BYTES_MAX: usize = 160;

/// One author's head in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointHead {
    pub author: NodeId,
    pub seq: u64,
    /// SHA-256 of the header bytes of the author's entry at `seq`.
    pub hash: Hash,
}

/// What an aggregator signs: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub aggregator: NodeId,
    /// Grows with every checkpoint of this aggregator.
    pub counter: u64,
    /// Milliseconds since the Unix epoch, by the aggregator's clock.
    pub time_ms: u64,
    /// Sorted by author, each author once.
    pub heads: Vec<CheckpointHead>,
}

impl Checkpoint {
    /// The head this checkpoint names for `author`, if any.
    pub fn head(&self, author: &NodeId) -> Option<&CheckpointHead> {
        self.heads
            .binary_search_by(|h| h.author.cmp(author))
            .ok()
            .map(|i| &self.heads[i])
    }
}

/// A checkpoint as it travels and is stored: the signed bytes exactly, and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    pub body: Vec<u8>,
    pub signature: Vec<u8>,
}

/// What a witness signs about a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosignatureBody {
    pub aggregator: NodeId,
    pub counter: u64,
    /// The checkpoint's hash ([`SignedCheckpoint::hash`]).
    pub checkpoint: Hash,
    pub witness: NodeId,
    /// When the witness checked it, by the witness's clock.
    pub time_ms: u64,
}

/// A cosignature as it travels and is stored: the signed bytes exactly, and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCosignature {
    pub body: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Why checkpoint or cosignature bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("the bytes do not start with the {0} tag and format 1")]
    BadDomain(&'static str),
    #[error("signature is {0} bytes, not {SIGNATURE_BYTES}")]
    SignatureLength(usize),
    #[error("heads are not sorted by author, each once, with seq 1 or more")]
    UnsortedHeads,
    #[error("signed by {found}, expected aggregator {expected}")]
    WrongSigner { found: String, expected: String },
    #[error("signature does not verify: {0}")]
    Signature(#[from] VerifyError),
}

impl CheckpointError {
    /// The refusal counter's name.
    pub fn reason(&self) -> &'static str {
        match self {
            CheckpointError::Decode(DecodeError::TooLarge { .. }) => "checkpoint_oversize",
            CheckpointError::Decode(_)
            | CheckpointError::BadDomain(_)
            | CheckpointError::SignatureLength(_)
            | CheckpointError::UnsortedHeads => "checkpoint_malformed",
            CheckpointError::WrongSigner { .. } => "checkpoint_wrong_aggregator",
            CheckpointError::Signature(_) => "checkpoint_bad_signature",
        }
    }
}

fn tagged(domain: &[u8], body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(domain.len() + 1 + body.len());
    bytes.extend_from_slice(domain);
    bytes.push(CHECKPOINT_FORMAT);
    bytes.extend_from_slice(body);
    bytes
}

fn untagged<'a>(
    domain: &[u8],
    what: &'static str,
    bytes: &'a [u8],
) -> Result<&'a [u8], CheckpointError> {
    bytes
        .strip_prefix(domain)
        .and_then(|rest| rest.strip_prefix(&[CHECKPOINT_FORMAT]))
        .ok_or(CheckpointError::BadDomain(what))
}

fn signature_of(bytes: &[u8]) -> Result<[u8; SIGNATURE_BYTES], CheckpointError> {
    bytes
        .try_into()
        .map_err(|_| CheckpointError::SignatureLength(bytes.len()))
}

/// A checkpoint whose signature held, with the bytes it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    pub checkpoint: Checkpoint,
    pub signed: SignedCheckpoint,
    pub hash: Hash,
}

impl SignedCheckpoint {
    /// Signs `checkpoint` with `key` (the aggregator's own; heads sorted, each once).
    pub fn sign(key: &SecretKey, checkpoint: &Checkpoint) -> VerifiedCheckpoint {
        assert_eq!(
            checkpoint.aggregator,
            key.node_id(),
            "a checkpoint is signed by its own aggregator"
        );
        assert!(sorted(&checkpoint.heads), "a checkpoint's heads are sorted");
        let body = tagged(CHECKPOINT_DOMAIN, &codec::encode(checkpoint));
        let signature = key.sign(&body).to_vec();
        let hash = Hash::of(&body);
        VerifiedCheckpoint {
            checkpoint: checkpoint.clone(),
            signed: SignedCheckpoint { body, signature },
            hash,
        }
    }

    /// SHA-256 of the signed bytes: what a cosignature names.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.body)
    }

    /// Decodes the bytes as received (size-capped first, canonical), checks the heads' order,
    /// the signer (`expected`, when the sender must be that aggregator) and the signature
    /// with `verify_strict` over exactly these bytes.
    pub fn verify(&self, expected: Option<&NodeId>) -> Result<VerifiedCheckpoint, CheckpointError> {
        let body = untagged(CHECKPOINT_DOMAIN, "checkpoint", &self.body)?;
        let checkpoint = codec::decode::<Checkpoint, CHECKPOINT_BYTES_MAX>("checkpoint", body)?;
        let signature = signature_of(&self.signature)?;
        if !sorted(&checkpoint.heads) {
            return Err(CheckpointError::UnsortedHeads);
        }
        if let Some(expected) = expected
            && *expected != checkpoint.aggregator
        {
            return Err(CheckpointError::WrongSigner {
                found: checkpoint.aggregator.short(),
                expected: expected.short(),
            });
        }
        checkpoint.aggregator.verify(&self.body, &signature)?;
        Ok(VerifiedCheckpoint {
            checkpoint,
            signed: self.clone(),
            hash: self.hash(),
        })
    }
}

fn sorted(heads: &[CheckpointHead]) -> bool {
    heads.len() <= CHECKPOINT_AUTHORS_MAX
        && heads.iter().all(|h| h.seq >= 1)
        && heads.windows(2).all(|w| w[0].author < w[1].author)
}

impl SignedCosignature {
    /// The witness `key` cosigns the checkpoint `of` at `time_ms`.
    pub fn sign(key: &SecretKey, of: &VerifiedCheckpoint, time_ms: u64) -> SignedCosignature {
        let body = CosignatureBody {
            aggregator: of.checkpoint.aggregator,
            counter: of.checkpoint.counter,
            checkpoint: of.hash,
            witness: key.node_id(),
            time_ms,
        };
        let body = tagged(COSIGNATURE_DOMAIN, &codec::encode(&body));
        let signature = key.sign(&body).to_vec();
        SignedCosignature { body, signature }
    }

    /// Decodes the bytes as received and checks the witness's signature over exactly them.
    pub fn verify(&self) -> Result<CosignatureBody, CheckpointError> {
        let body = untagged(COSIGNATURE_DOMAIN, "cosignature", &self.body)?;
        let cosignature =
            codec::decode::<CosignatureBody, COSIGNATURE_BYTES_MAX>("cosignature", body)?;
        let signature = signature_of(&self.signature)?;
        cosignature.witness.verify(&self.body, &signature)?;
        Ok(cosignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes(&[n; 32])
    }

    fn checkpoint(agg: &SecretKey, counter: u64, heads: &[(u8, u64)]) -> Checkpoint {
        let mut heads: Vec<CheckpointHead> = heads
            .iter()
            .map(|(n, seq)| CheckpointHead {
                author: key(*n).node_id(),
                seq: *seq,
                hash: Hash::of(&[*n, *seq as u8]),
            })
            .collect();
        heads.sort_by_key(|h| h.author);
        Checkpoint {
            aggregator: agg.node_id(),
            counter,
            time_ms: 1_700_000_000_000,
            heads,
        }
    }

    /// The bytes of a checkpoint and a cosignature, pinned: another implementation must
    /// produce exactly these (docs/protocol.md shows them).
    #[test]
    fn golden_checkpoint_and_cosignature() {
        let agg = key(7);
        let cp = Checkpoint {
            aggregator: agg.node_id(),
            counter: 3,
            time_ms: 1_700_000_000_000,
            heads: vec![CheckpointHead {
                author: NodeId([0xab; 32]),
                seq: 2,
                hash: Hash([0xcd; 32]),
            }],
        };
        let signed = SignedCheckpoint::sign(&agg, &cp);
        let expected_body = [
            hex::encode(b"spindel/checkpoint\0"),
            "01".into(),
            agg.node_id().to_hex(),
            "03".into(),                 // counter
            "fd0068e5cf8b010000".into(), // time_ms: 253, then u64 LE
            "01".into(),                 // one head
            "ab".repeat(32),
            "02".into(),
            "cd".repeat(32),
        ]
        .concat();
        assert_eq!(hex::encode(&signed.signed.body), expected_body);
        assert_eq!(
            hex::encode(&signed.signed.signature),
            GOLDEN_CHECKPOINT_SIGNATURE,
            "ed25519 is deterministic: the signature is pinned too"
        );
        let witness = key(9);
        let cosig = SignedCosignature::sign(&witness, &signed, 1_700_000_001_000);
        let expected_cosig = [
            hex::encode(b"spindel/cosignature\0"),
            "01".into(),
            agg.node_id().to_hex(),
            "03".into(),
            signed.hash.to_hex(),
            witness.node_id().to_hex(),
            "fde86be5cf8b010000".into(),
        ]
        .concat();
        assert_eq!(hex::encode(&cosig.body), expected_cosig);
        assert_eq!(
            signed.signed.verify(Some(&agg.node_id())),
            Ok(signed.clone())
        );
        assert_eq!(cosig.verify().unwrap().witness, witness.node_id());
    }

    const GOLDEN_CHECKPOINT_SIGNATURE: &str = "91d7f2df3ebe55bf40355b0216c32d51a0ae39391ae0e44be4fd812b7dd0740ef6702785fb6fbb88d6e889d3dc290aa6a416c1b23aaca20f92c426b7875d8901";

    #[test]
    fn bad_signatures_wrong_signers_and_bad_bytes_are_refused_by_name() {
        let agg = key(1);
        let good = SignedCheckpoint::sign(&agg, &checkpoint(&agg, 5, &[(2, 3), (3, 1)]));
        // Every byte of the body and the signature matters.
        for i in 0..good.signed.body.len() + good.signed.signature.len() {
            let mut bad = good.signed.clone();
            if i < bad.body.len() {
                bad.body[i] ^= 0x01;
            } else {
                bad.signature[i - good.signed.body.len()] ^= 0x01;
            }
            assert!(bad.verify(None).is_err(), "flipped byte {i} was accepted");
        }
        let err = good.signed.verify(Some(&key(2).node_id())).unwrap_err();
        assert_eq!(err.reason(), "checkpoint_wrong_aggregator");
        // Signed by another key in the aggregator's name.
        let mut forged = good.signed.clone();
        forged.signature = key(2).sign(&forged.body).to_vec();
        assert_eq!(
            forged.verify(None).unwrap_err().reason(),
            "checkpoint_bad_signature"
        );
        // Unsorted heads are refused even under a good signature.
        let mut cp = checkpoint(&agg, 6, &[(2, 3), (3, 1)]);
        cp.heads.reverse();
        let body = tagged(CHECKPOINT_DOMAIN, &codec::encode(&cp));
        let unsorted = SignedCheckpoint {
            signature: agg.sign(&body).to_vec(),
            body,
        };
        assert_eq!(
            unsorted.verify(None).unwrap_err(),
            CheckpointError::UnsortedHeads
        );
        // A cosignature's bytes are checked the same way.
        let cosig = SignedCosignature::sign(&key(4), &good, 1);
        let mut bad = cosig.clone();
        bad.body[30] ^= 1;
        assert!(bad.verify().is_err());
        let mut short = cosig;
        short.signature.pop();
        assert!(matches!(
            short.verify().unwrap_err(),
            CheckpointError::SignatureLength(63)
        ));
    }

    #[test]
    fn an_oversize_checkpoint_is_refused_before_decoding() {
        let body = tagged(CHECKPOINT_DOMAIN, &vec![0u8; CHECKPOINT_BYTES_MAX + 1]);
        let big = SignedCheckpoint {
            body,
            signature: vec![0; 64],
        };
        assert_eq!(
            big.verify(None).unwrap_err().reason(),
            "checkpoint_oversize"
        );
        // The largest checkpoint there can be fits the cap and one frame.
        let agg = key(1);
        let cp = Checkpoint {
            aggregator: agg.node_id(),
            counter: u64::MAX,
            time_ms: u64::MAX,
            heads: (0..CHECKPOINT_AUTHORS_MAX as u32)
                .map(|i| {
                    let mut a = [0xff; 32];
                    a[..4].copy_from_slice(&i.to_be_bytes());
                    CheckpointHead {
                        author: NodeId(a),
                        seq: u64::MAX,
                        hash: Hash([0xff; 32]),
                    }
                })
                .collect(),
        };
        let signed = SignedCheckpoint::sign(&agg, &cp);
        assert!(signed.signed.body.len() <= CHECKPOINT_BYTES_MAX);
        assert!(signed.signed.body.len() + 128 < crate::sync::FRAME_BYTES_MAX);
        assert!(signed.signed.verify(None).is_ok());
    }
}
