//! Entries: one signed step in an author's append-only log.
//!
//! An entry is a [`Header`] signed by its author, plus a payload stored beside it and addressed by
//! its hash. The signature covers the *header bytes* exactly as they travel and are stored:
//!
//! ```text
//! header bytes = HEADER_DOMAIN ("spindel/entry\0") || FORMAT_VERSION (1 byte) || bincode(Header)
//! signature    = ed25519 over the header bytes
//! entry hash   = SHA-256(header bytes)        (what the next header's `prev` names)
//! payload      = bincode(Payload { salt: 16 random bytes, body: record JSON })
//! payload hash = SHA-256(payload bytes)
//! ```
//!
//! Because the signature covers the payload's hash and not the payload, a payload can be purged
//! (a deletion) while the log stays verifiable; the salt means the hash of a purged payload
//! reveals nothing about what it said, even for short, guessable records.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, DecodeError};
use crate::keys::{NodeId, SIGNATURE_BYTES, SecretKey, VerifyError};
use crate::record::Kind;

/// Domain-separation tag at the start of every signed header.
pub const HEADER_DOMAIN: &[u8] = b"spindel/entry\0";
/// The format version byte after the tag. Bumped on any change to [`Header`].
pub const FORMAT_VERSION: u8 = 1;
/// Upper bound of header bytes (tag, version and encoded header); real headers are ~150 bytes.
pub const HEADER_BYTES_MAX: usize = 512;
/// Upper bound of one encoded payload (docs/records.md).
pub const PAYLOAD_BYTES_MAX: usize = 64 * 1024;
/// Length of the random salt inside every payload.
pub const SALT_BYTES: usize = 16;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev` of an author's first entry.
    pub const ZERO: Hash = Hash([0; 32]);

    pub fn of(bytes: &[u8]) -> Hash {
        Hash(Sha256::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", hex::encode(&self.0[..6]))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A record's identity within its author's log, stable across edits: 16 random bytes, written
/// as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId(pub [u8; 16]);

impl RecordId {
    pub fn random(rng: &mut impl CryptoRngCore) -> RecordId {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        RecordId(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({})", self.to_hex())
    }
}

/// Why a record id string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a record id is 32 lowercase hex characters, got {0:?}")]
pub struct ParseRecordIdError(pub String);

impl FromStr for RecordId {
    type Err = ParseRecordIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mut bytes = [0u8; 16];
        if !valid || hex::decode_to_slice(s, &mut bytes).is_err() {
            return Err(ParseRecordIdError(s.chars().take(80).collect()));
        }
        Ok(RecordId(bytes))
    }
}

/// What an entry does to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A new version of the record; the payload holds its content.
    Put,
    /// The record is deleted for ever; no payload (hash zero, length zero).
    Tombstone,
}

/// The signed part of an entry. Field order is the wire order; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub author: NodeId,
    /// Position in the author's log, from 1 up, without gaps.
    pub seq: u64,
    /// Hash of the author's previous header bytes; [`Hash::ZERO`] for seq 1.
    pub prev: Hash,
    /// Milliseconds since the Unix epoch, by the author's clock.
    pub timestamp_ms: u64,
    pub kind: Kind,
    pub record_id: RecordId,
    pub op: Op,
    pub payload_hash: Hash,
    pub payload_len: u32,
}

impl Header {
    /// The exact bytes that are signed: tag, version byte, encoded header.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let body = codec::encode(self);
        let mut bytes = Vec::with_capacity(HEADER_DOMAIN.len() + 1 + body.len());
        bytes.extend_from_slice(HEADER_DOMAIN);
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(&body);
        bytes
    }

    /// Decodes header bytes as received (size-capped, tag and version checked, canonical).
    pub fn decode(bytes: &[u8]) -> Result<Header, EntryError> {
        if bytes.len() > HEADER_BYTES_MAX {
            return Err(EntryError::Decode(DecodeError::TooLarge {
                what: "entry header",
                len: bytes.len(),
                max: HEADER_BYTES_MAX,
            }));
        }
        let rest = bytes
            .strip_prefix(HEADER_DOMAIN)
            .ok_or(EntryError::BadDomain)?;
        let (&version, body) = rest.split_first().ok_or(EntryError::BadDomain)?;
        if version != FORMAT_VERSION {
            return Err(EntryError::UnsupportedVersion(version));
        }
        Ok(codec::decode::<Header, HEADER_BYTES_MAX>(
            "entry header",
            body,
        )?)
    }
}

/// Why an entry's bytes were refused before any ingest rule was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("entry header does not start with the spindel domain tag")]
    BadDomain,
    #[error("entry format version {0} is not supported (this node speaks {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    #[error("signature is {0} bytes, not {SIGNATURE_BYTES}")]
    SignatureLength(usize),
}

/// A signed entry: the header bytes as received, the signature, and the decoded header.
///
/// The decoded header is derived from `header_bytes`; the signature is always checked over
/// `header_bytes`, never over a re-encoding.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    header_bytes: Vec<u8>,
    signature: [u8; SIGNATURE_BYTES],
    header: Header,
}

/// An entry as it travels and is stored: exactly the signed bytes and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    pub header: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Upper bound of one encoded [`WireEntry`].
pub const WIRE_ENTRY_BYTES_MAX: usize = HEADER_BYTES_MAX + SIGNATURE_BYTES + 16;

impl Entry {
    /// Signs `header` with `key`. The header's author must be the key's NodeId.
    pub fn sign(key: &SecretKey, header: Header) -> Entry {
        assert_eq!(
            header.author,
            key.node_id(),
            "an entry is signed by its own author"
        );
        let header_bytes = header.signed_bytes();
        let signature = key.sign(&header_bytes);
        Entry {
            header_bytes,
            signature,
            header,
        }
    }

    /// Builds an entry from received bytes. Checks the form only; [`Entry::verify`] checks the
    /// signature and [`crate::ingest::check`] the rules.
    pub fn from_parts(header_bytes: Vec<u8>, signature: &[u8]) -> Result<Entry, EntryError> {
        let signature: [u8; SIGNATURE_BYTES] = signature
            .try_into()
            .map_err(|_| EntryError::SignatureLength(signature.len()))?;
        let header = Header::decode(&header_bytes)?;
        Ok(Entry {
            header_bytes,
            signature,
            header,
        })
    }

    pub fn from_wire(wire: WireEntry) -> Result<Entry, EntryError> {
        Entry::from_parts(wire.header, &wire.signature)
    }

    /// Decodes a stored or received [`WireEntry`] from bytes.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        let wire: WireEntry = codec::decode::<WireEntry, WIRE_ENTRY_BYTES_MAX>("entry", bytes)?;
        Entry::from_wire(wire)
    }

    pub fn to_wire(&self) -> WireEntry {
        WireEntry {
            header: self.header_bytes.clone(),
            signature: self.signature.to_vec(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode(&self.to_wire())
    }

    /// `verify_strict` of the signature over the received header bytes, by the header's author.
    pub fn verify(&self) -> Result<(), VerifyError> {
        self.header
            .author
            .verify(&self.header_bytes, &self.signature)
    }

    /// [`Entry::verify`] with its author's key decoded already; a verifier of another key
    /// refuses (`BadKey`).
    pub fn verify_with(&self, verifier: &crate::keys::Verifier) -> Result<(), VerifyError> {
        if verifier.node_id() != self.header.author {
            return Err(VerifyError::BadKey);
        }
        verifier.verify(&self.header_bytes, &self.signature)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    pub fn signature(&self) -> &[u8; SIGNATURE_BYTES] {
        &self.signature
    }

    /// The hash that the author's next entry names as `prev`.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.header_bytes)
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("author", &self.header.author)
            .field("seq", &self.header.seq)
            .field("op", &self.header.op)
            .field("record_id", &self.header.record_id)
            .finish_non_exhaustive()
    }
}

/// A record's content as stored: a random salt and the record's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub salt: [u8; SALT_BYTES],
    pub body: String,
}

impl Payload {
    /// Encodes `body` with a fresh salt. Callers check the size against [`PAYLOAD_BYTES_MAX`].
    pub fn seal(rng: &mut impl CryptoRngCore, body: String) -> Vec<u8> {
        let mut salt = [0u8; SALT_BYTES];
        rng.fill_bytes(&mut salt);
        codec::encode(&Payload { salt, body })
    }

    /// Decodes payload bytes (size-capped, canonical).
    pub fn decode(bytes: &[u8]) -> Result<Payload, DecodeError> {
        codec::decode::<Payload, PAYLOAD_BYTES_MAX>("payload", bytes)
    }
}

/// The position of an author's log: its last seq and the hash of that entry's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: Hash,
}

/// Builds the header of the next entry after `head` (`None`: the first entry).
pub fn next_header(
    author: NodeId,
    head: Option<Head>,
    timestamp_ms: u64,
    kind: Kind,
    record_id: RecordId,
    payload: Option<&[u8]>,
) -> Header {
    let (seq, prev) = match head {
        Some(h) => (h.seq + 1, h.hash),
        None => (1, Hash::ZERO),
    };
    let (op, payload_hash, payload_len) = match payload {
        Some(bytes) => (
            Op::Put,
            Hash::of(bytes),
            u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        ),
        None => (Op::Tombstone, Hash::ZERO, 0),
    };
    Header {
        author,
        seq,
        prev,
        timestamp_ms,
        kind,
        record_id,
        op,
        payload_hash,
        payload_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_bytes(&[7u8; 32])
    }

    fn sample_payload() -> Vec<u8> {
        codec::encode(&Payload {
            salt: [9; SALT_BYTES],
            body: r#"{"title":"Läxhjälp"}"#.to_string(),
        })
    }

    fn sample_entry() -> Entry {
        let payload = sample_payload();
        let header = next_header(
            key().node_id(),
            None,
            1_700_000_000_000,
            Kind::Method,
            RecordId([3; 16]),
            Some(&payload),
        );
        Entry::sign(&key(), header)
    }

    #[test]
    fn golden_signed_bytes_and_signature() {
        // Pins the exact signed bytes, the payload encoding and the signature of a fixed entry.
        // If this changes, every stored log and every peer breaks: bump FORMAT_VERSION instead.
        let entry = sample_entry();
        assert_eq!(
            hex::encode(sample_payload()),
            "0909090909090909090909090909090916 7b227469746c65223a224cc3a478686ac3a46c70227d"
                .replace(' ', "")
        );
        assert_eq!(hex::encode(entry.header_bytes()), GOLDEN_HEADER);
        assert_eq!(hex::encode(entry.signature()), GOLDEN_SIGNATURE);
        assert_eq!(entry.hash().to_hex(), GOLDEN_HASH);
        assert!(entry.header_bytes().starts_with(b"spindel/entry\0\x01"));
    }

    // Checked against an independent ed25519/SHA-256 implementation (Python `cryptography`).
    const GOLDEN_HEADER: &str = concat!(
        "7370696e64656c2f656e747279",
        "00",
        "01", // "spindel/entry", NUL, format version
        "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c", // author
        "01", // seq
        "0000000000000000000000000000000000000000000000000000000000000000", // prev
        "fd0068e5cf8b010000", // timestamp_ms (u64 varint)
        "02", // kind: method
        "03030303030303030303030303030303", // record_id
        "00", // op: put
        "a6a9a92f531b339adaa0364d691f64d7d238c52c378fe7f811aca33e667bcfa5", // payload hash
        "27", // payload_len 39
    );
    const GOLDEN_SIGNATURE: &str = "9165eb3e95ebca5b04fc6be381a4156b825af3a849549dd996d02b4e8cc67bf7b907417e59728da0b3425190279181b8d641534331e95cfca8cd283cc4fbe709";
    const GOLDEN_HASH: &str = "0acad6ffe19729175baad6dba37f39416e9fa43ea32a152519530bd01b4a439b";

    #[test]
    fn wire_round_trip() {
        let entry = sample_entry();
        let decoded = Entry::decode(&entry.encode()).unwrap();
        assert_eq!(decoded, entry);
        assert_eq!(decoded.verify(), Ok(()));
    }

    #[test]
    fn flipping_any_header_or_signature_byte_is_refused() {
        let entry = sample_entry();
        for i in 0..entry.header_bytes().len() {
            let mut bytes = entry.header_bytes().to_vec();
            bytes[i] ^= 0x01;
            if let Ok(tampered) = Entry::from_parts(bytes, entry.signature()) {
                assert!(
                    tampered.verify().is_err(),
                    "header byte {i} flipped still verifies"
                );
            }
        }
        for i in 0..SIGNATURE_BYTES {
            let mut sig = *entry.signature();
            sig[i] ^= 0x01;
            let tampered = Entry::from_parts(entry.header_bytes().to_vec(), &sig).unwrap();
            assert!(
                tampered.verify().is_err(),
                "signature byte {i} flipped still verifies"
            );
            let verifier = entry.header().author.verifier().unwrap();
            assert_eq!(
                tampered.verify_with(&verifier),
                tampered.verify(),
                "a decoded key gives the same verdict, byte {i}"
            );
        }
        let author = entry.header().author.verifier().unwrap();
        assert_eq!(entry.verify_with(&author), Ok(()));
        let other = crate::SecretKey::from_bytes(&[9; 32])
            .node_id()
            .verifier()
            .unwrap();
        assert_eq!(
            entry.verify_with(&other),
            Err(VerifyError::BadKey),
            "another key's verifier checks nothing of this entry"
        );
    }

    #[test]
    fn refuses_bad_domain_version_and_signature_length() {
        let entry = sample_entry();
        let mut bytes = entry.header_bytes().to_vec();
        bytes[0] = b'S';
        assert_eq!(
            Entry::from_parts(bytes, entry.signature()).unwrap_err(),
            EntryError::BadDomain
        );
        let mut bytes = entry.header_bytes().to_vec();
        bytes[HEADER_DOMAIN.len()] = 2;
        assert_eq!(
            Entry::from_parts(bytes, entry.signature()).unwrap_err(),
            EntryError::UnsupportedVersion(2)
        );
        assert_eq!(
            Entry::from_parts(entry.header_bytes().to_vec(), &[0; 63]).unwrap_err(),
            EntryError::SignatureLength(63)
        );
        let huge = vec![0u8; HEADER_BYTES_MAX + 1];
        assert!(matches!(
            Entry::from_parts(huge, entry.signature()).unwrap_err(),
            EntryError::Decode(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn salt_hides_equal_bodies() {
        let mut rng = rand::rngs::OsRng;
        let a = Payload::seal(&mut rng, "{}".into());
        let b = Payload::seal(&mut rng, "{}".into());
        assert_ne!(Hash::of(&a), Hash::of(&b));
        assert_eq!(Payload::decode(&a).unwrap().body, "{}");
    }

    #[test]
    fn record_id_parse() {
        let id = RecordId([0xab; 16]);
        assert_eq!(id.to_hex().parse::<RecordId>(), Ok(id));
        assert!("AB".repeat(16).parse::<RecordId>().is_err());
        assert!("ab".repeat(15).parse::<RecordId>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_entry_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700)) {
            crate::fuzz::entry(&bytes);
        }

        /// Valid entries with bytes changed: what still decodes is canonical.
        #[test]
        fn mutated_entries_decode_canonically(
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
        ) {
            let payload = Payload::seal(&mut rand::rngs::OsRng, "{}".into());
            let h = next_header(key().node_id(), None, 1, Kind::Method, RecordId([1; 16]), Some(&payload));
            let entry = Entry::sign(&key(), h);
            for mut bytes in [entry.encode(), entry.header_bytes().to_vec(), payload] {
                let i = at.index(bytes.len());
                bytes[i] = byte;
                crate::fuzz::entry(&bytes);
            }
        }

        #[test]
        fn arbitrary_headers_round_trip(seq in 1u64.., ts in proptest::prelude::any::<u64>(), len in proptest::prelude::any::<u32>(), rid in proptest::prelude::any::<[u8; 16]>()) {
            let header = Header {
                author: key().node_id(), seq, prev: Hash([1; 32]), timestamp_ms: ts,
                kind: Kind::Innovation, record_id: RecordId(rid), op: Op::Put,
                payload_hash: Hash([2; 32]), payload_len: len,
            };
            let entry = Entry::sign(&key(), header.clone());
            let back = Entry::decode(&entry.encode()).unwrap();
            proptest::prop_assert_eq!(back.header(), &header);
            proptest::prop_assert!(back.verify().is_ok());
        }
    }
}
