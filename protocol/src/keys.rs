//! Node identities: [`NodeId`] (an ed25519 public key) and [`SecretKey`].
//!
//! Verification is always `verify_strict`: it refuses non-canonical `R` and `S` and weak
//! (small-order) public keys, so one message has at most one valid signature per key.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Length of a signature in bytes.
pub const SIGNATURE_BYTES: usize = 64;

/// A node's identity: its ed25519 public key, written as 64 lowercase hex characters.
///
/// Holding a `NodeId` does not mean the key is a valid curve point; [`NodeId::verify`]
/// refuses keys that are not (and weak keys) with [`VerifyError::BadKey`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub [u8; 32]);

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("public key is not a valid ed25519 point or is weak")]
    BadKey,
    #[error("signature does not verify")]
    BadSignature,
}

/// Why a NodeId string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node id is 64 lowercase hex characters, got {0:?}")]
pub struct ParseNodeIdError(pub String);

impl NodeId {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Short form for logs and tables: the first 8 hex characters.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// True if the key decodes to a curve point that is not of small order.
    /// Admission refuses weak keys; `verify_strict` refuses them too.
    pub fn is_usable(&self) -> bool {
        VerifyingKey::from_bytes(&self.0).is_ok_and(|k| !k.is_weak())
    }

    /// Verifies `signature` over exactly `message` with `verify_strict`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
        verify_strict(&self.0, message, signature)
    }

    /// This key decoded once, to check many of its signatures ([`Verifier`]).
    pub fn verifier(&self) -> Result<Verifier, VerifyError> {
        Ok(Verifier {
            id: *self,
            key: VerifyingKey::from_bytes(&self.0).map_err(|_| VerifyError::BadKey)?,
        })
    }
}

/// A node's public key, decoded (the point decompressed) once: a batch checks every entry of
/// an author with one decoding. Each check is still `verify_strict` over the bytes given.
#[derive(Debug, Clone, Copy)]
pub struct Verifier {
    id: NodeId,
    key: VerifyingKey,
}

impl Verifier {
    /// The key this checks signatures of.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// `verify_strict` of `signature` over exactly `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
        let signature = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|_| VerifyError::BadSignature)?;
        self.key
            .verify_strict(message, &signature)
            .map_err(|_| VerifyError::BadSignature)
    }
}

/// `verify_strict` over raw bytes: the one signature check of spindel.
/// Also used directly by the Wycheproof test vectors.
pub fn verify_strict(
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    let key_bytes: &[u8; 32] = public_key.try_into().map_err(|_| VerifyError::BadKey)?;
    NodeId(*key_bytes).verifier()?.verify(message, signature)
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl FromStr for NodeId {
    type Err = ParseNodeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(ParseNodeIdError(s.chars().take(80).collect()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| ParseNodeIdError(s.to_string()))?;
        Ok(NodeId(bytes))
    }
}

/// A node's secret signing key. `Debug` never prints the key material; the bytes are
/// zeroized when dropped (ed25519-dalek's `zeroize` feature).
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the given cryptographic RNG.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        SecretKey(SigningKey::generate(rng))
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(bytes))
    }

    /// The 32 secret bytes, zeroed when dropped. Handle with care.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The secret as 64 lowercase hex characters (the key file's form), zeroed when dropped.
    /// Written into one buffer of the final size: no copy is left behind.
    pub fn to_hex(&self) -> Zeroizing<String> {
        let mut buf = Zeroizing::new(vec![0u8; 64]);
        // 32 bytes always fit 64 hex characters, which are ASCII.
        let secret = self.to_bytes();
        let _ = hex::encode_to_slice(secret.as_slice(), &mut buf);
        let bytes = std::mem::take(&mut *buf);
        Zeroizing::new(String::from_utf8(bytes).unwrap_or_default())
    }

    /// A key from its 64 hex characters (surrounding whitespace is ignored); `None` if they
    /// are not. The decoded bytes are zeroed after use.
    pub fn from_hex(text: &str) -> Option<SecretKey> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; 32]);
        if text.len() != 64 || hex::decode_to_slice(text, &mut *bytes).is_err() {
            return None;
        }
        Some(SecretKey::from_bytes(&bytes))
    }

    pub fn node_id(&self) -> NodeId {
        NodeId(self.0.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_BYTES] {
        self.0.sign(message).to_bytes()
    }

    /// The underlying dalek key, for the TLS layer that presents it as a raw public key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted>, node {})", self.node_id().short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_key() -> SecretKey {
        SecretKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn secret_hex_round_trips_and_refuses_bad_text() {
        let key = fixed_key();
        assert_eq!(key.to_hex().as_str(), "07".repeat(32));
        let back = SecretKey::from_hex(&format!(" {}\n", key.to_hex().as_str())).unwrap();
        assert_eq!(back.node_id(), key.node_id());
        assert!(SecretKey::from_hex(&"0".repeat(63)).is_none());
        assert!(SecretKey::from_hex(&"zz".repeat(32)).is_none());
    }

    #[test]
    fn node_id_golden_hex() {
        // Pins the public key derived from a fixed secret: a change in key derivation or
        // in the hex form would break every stored NodeId.
        assert_eq!(
            fixed_key().node_id().to_hex(),
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
    }

    #[test]
    fn debug_redacts_secret() {
        let key = fixed_key();
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&hex::encode(key.to_bytes())));
        assert!(!shown.contains("7, 7, 7"));
    }

    #[test]
    fn node_id_parse_round_trip_and_refusals() {
        let id = fixed_key().node_id();
        assert_eq!(id.to_hex().parse::<NodeId>(), Ok(id));
        assert!("".parse::<NodeId>().is_err());
        assert!(id.to_hex().to_uppercase().parse::<NodeId>().is_err());
        assert!(id.to_hex()[..63].parse::<NodeId>().is_err());
        assert!(format!("{}0", id.to_hex()).parse::<NodeId>().is_err());
        assert!("zz".repeat(32).parse::<NodeId>().is_err());
    }

    #[test]
    fn sign_verify_and_tamper() {
        let key = fixed_key();
        let sig = key.sign(b"hello");
        assert_eq!(key.node_id().verify(b"hello", &sig), Ok(()));
        assert_eq!(
            key.node_id().verify(b"hellp", &sig),
            Err(VerifyError::BadSignature)
        );
        let mut bad = sig;
        bad[10] ^= 1;
        assert_eq!(
            key.node_id().verify(b"hello", &bad),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            key.node_id().verify(b"hello", &sig[..63]),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn weak_key_is_not_usable() {
        // The identity point (small order) encoded as y = 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(!NodeId(identity).is_usable());
        assert!(fixed_key().node_id().is_usable());
    }
}
