//! A network's charter: what the regions agreed to start from. It names the network, the
//! founding regions (key and name) and `threshold`, the number of members whose endorsements
//! admit a region or whose revocations end one ([`crate::membership`]). Every founding region
//! signs the same bytes; a charter missing any founder's signature is not in force.
//!
//! ```text
//! charter bytes = "spindel/charter" 0x00 | 0x01 | bincode(Charter)
//! Charter       = network: string | threshold varint | created_ms varint
//!                 | founders: [Founder]          (sorted by node, each node and name once)
//! Founder       = node [32] | name: string       (a region name: 1-32 of a-z 0-9 -)
//! signature     = ed25519 by a founder over the charter bytes exactly as received (verify_strict)
//! charter id    = SHA-256(charter bytes)
//! ```
//!
//! The file people pass around (`spindel charter new/sign/show/adopt`) is JSON:
//! `{"format": "spindel-charter/1", "charter": "<hex of the charter bytes>",
//! "signatures": [{"node": "<hex>", "signature": "<hex>"}]}`. Signatures are over the bytes in
//! the file, never over a re-encoding.

use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError};
use crate::entry::Hash;
use crate::keys::{NodeId, SIGNATURE_BYTES, SecretKey};
use crate::schema::validate_region_name;

/// The tag the signed bytes of a charter start with.
pub const CHARTER_DOMAIN: &[u8] = b"spindel/charter\0";
/// The format byte after the tag.
pub const CHARTER_FORMAT: u8 = 1;
/// The `format` a charter file names.
pub const CHARTER_FILE_FORMAT: &str = "spindel-charter/1";
/// Founding regions a charter names, at most.
pub const CHARTER_FOUNDERS_MAX: usize = 64;
/// A network's name, in characters.
pub const NETWORK_NAME_CHARS_MAX: usize = 100;
/// Bytes of a charter's signed body, at most (tag, fields, founders).
pub const CHARTER_BYTES_MAX: usize = 1024 + CHARTER_FOUNDERS_MAX * (32 + 1 + 32);
/// Bytes of a charter file, at most: the body in hex and every founder's signature.
pub const CHARTER_FILE_BYTES_MAX: usize =
    1024 + 2 * CHARTER_BYTES_MAX + CHARTER_FOUNDERS_MAX * (64 + 128 + 64);

/// A founding region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Founder {
    pub node: NodeId,
    pub name: String,
}

/// What the founders sign: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charter {
    pub network: String,
    /// Endorsements that admit a region, and revocations that end one: 1 to the founders.
    pub threshold: u32,
    /// When it was drawn up (milliseconds since the Unix epoch); two charters of the same
    /// founders differ by it.
    pub created_ms: u64,
    /// Sorted by node, each node and each name once.
    pub founders: Vec<Founder>,
}

/// Why a charter, or a charter file, was refused. Every message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CharterError {
    #[error("the charter file is {len} bytes, over the limit of {CHARTER_FILE_BYTES_MAX}")]
    FileTooLarge { len: usize },
    #[error("the charter file is not a spindel charter: {0}")]
    File(String),
    #[error("the charter bytes do not start with the charter tag and format 1")]
    BadDomain,
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("network name: {0}")]
    NetworkName(String),
    #[error("a charter names 1-{CHARTER_FOUNDERS_MAX} founding regions, got {0}")]
    FounderCount(usize),
    #[error("founding region {node}: {problem}")]
    FounderName { node: String, problem: String },
    #[error("founding region {0} is named twice")]
    FounderTwice(String),
    #[error("the name {0:?} is given to two founding regions")]
    NameTwice(String),
    #[error("founding regions are not sorted by key")]
    Unsorted,
    #[error("founding region {0} is not a usable ed25519 public key")]
    UnusableKey(String),
    #[error("threshold {threshold} must be from 1 to the {founders} founding regions")]
    Threshold { threshold: u32, founders: usize },
    #[error("signature by {0}, who is not a founding region of this charter")]
    NotAFounder(String),
    #[error("founding region {0} has already signed")]
    SignedTwice(String),
    #[error("the signature of founding region {0} does not verify over the charter")]
    BadSignature(String),
    #[error("not in force: not yet signed by {missing}")]
    Unsigned { missing: String },
}

impl Charter {
    /// Checks the rules of the module docs (names, order, threshold).
    pub fn validate(&self) -> Result<(), CharterError> {
        let chars = self.network.chars().count();
        if self.network.trim() != self.network
            || !(1..=NETWORK_NAME_CHARS_MAX).contains(&chars)
            || self.network.chars().any(char::is_control)
        {
            return Err(CharterError::NetworkName(format!(
                "1-{NETWORK_NAME_CHARS_MAX} characters without control characters or \
                 surrounding spaces, got {:?}",
                self.network.chars().take(40).collect::<String>()
            )));
        }
        let n = self.founders.len();
        if !(1..=CHARTER_FOUNDERS_MAX).contains(&n) {
            return Err(CharterError::FounderCount(n));
        }
        let mut names = std::collections::BTreeSet::new();
        for f in &self.founders {
            validate_region_name(&f.name).map_err(|problem| CharterError::FounderName {
                node: f.node.short(),
                problem,
            })?;
            if !f.node.is_usable() {
                return Err(CharterError::UnusableKey(f.node.to_hex()));
            }
            if !names.insert(f.name.as_str()) {
                return Err(CharterError::NameTwice(f.name.clone()));
            }
        }
        for w in self.founders.windows(2) {
            if w[0].node == w[1].node {
                return Err(CharterError::FounderTwice(w[0].node.short()));
            }
            if w[0].node > w[1].node {
                return Err(CharterError::Unsorted);
            }
        }
        if self.threshold == 0 || self.threshold as usize > n {
            return Err(CharterError::Threshold {
                threshold: self.threshold,
                founders: n,
            });
        }
        Ok(())
    }

    /// The founder with key `node`, if any.
    pub fn founder(&self, node: &NodeId) -> Option<&Founder> {
        self.founders
            .binary_search_by(|f| f.node.cmp(node))
            .ok()
            .map(|i| &self.founders[i])
    }

    /// The bytes the founders sign.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = codec::encode(self);
        let mut bytes = Vec::with_capacity(CHARTER_DOMAIN.len() + 1 + body.len());
        bytes.extend_from_slice(CHARTER_DOMAIN);
        bytes.push(CHARTER_FORMAT);
        bytes.extend_from_slice(&body);
        bytes
    }
}

/// A charter as it travels: the signed bytes exactly, and the founders' signatures so far
/// (sorted by node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCharter {
    pub bytes: Vec<u8>,
    pub signatures: Vec<(NodeId, [u8; SIGNATURE_BYTES])>,
}

/// A charter read and checked so far: which founders signed (each signature verified) and who
/// has not yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Examined {
    pub charter: Charter,
    /// SHA-256 of the charter bytes: the network's charter id.
    pub id: Hash,
    pub signed: Vec<NodeId>,
    pub missing: Vec<Founder>,
}

impl Examined {
    /// In force: every founder signed.
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// A charter in force: every founder's signature verified over the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCharter {
    pub charter: Charter,
    pub id: Hash,
    pub signed: SignedCharter,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CharterFile {
    format: String,
    charter: String,
    signatures: Vec<FileSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSignature {
    node: String,
    signature: String,
}

impl SignedCharter {
    /// A new charter, signed by nobody yet (validated first).
    pub fn new(charter: &Charter) -> Result<SignedCharter, CharterError> {
        charter.validate()?;
        Ok(SignedCharter {
            bytes: charter.to_bytes(),
            signatures: Vec::new(),
        })
    }

    /// The network's charter id.
    pub fn id(&self) -> Hash {
        Hash::of(&self.bytes)
    }

    /// Decodes the bytes as they are (size-capped, canonical), checks the charter's rules and
    /// every signature with `verify_strict` over exactly these bytes. A signature by someone
    /// who is not a founder, or one that does not verify, is an error; founders who have not
    /// signed are listed.
    pub fn examine(&self) -> Result<Examined, CharterError> {
        let body = self
            .bytes
            .strip_prefix(CHARTER_DOMAIN)
            .and_then(|rest| rest.strip_prefix(&[CHARTER_FORMAT]))
            .ok_or(CharterError::BadDomain)?;
        let charter = codec::decode::<Charter, CHARTER_BYTES_MAX>("charter", body)?;
        charter.validate()?;
        let mut signed = Vec::with_capacity(self.signatures.len());
        for (node, signature) in &self.signatures {
            if charter.founder(node).is_none() {
                return Err(CharterError::NotAFounder(node.to_hex()));
            }
            if signed.contains(node) {
                return Err(CharterError::SignedTwice(node.short()));
            }
            node.verify(&self.bytes, signature)
                .map_err(|_| CharterError::BadSignature(founder_label(&charter, node)))?;
            signed.push(*node);
        }
        let missing = charter
            .founders
            .iter()
            .filter(|f| !signed.contains(&f.node))
            .cloned()
            .collect();
        Ok(Examined {
            charter,
            id: self.id(),
            signed,
            missing,
        })
    }

    /// [`SignedCharter::examine`], and every founder must have signed (the error names who
    /// has not).
    pub fn verify(&self) -> Result<VerifiedCharter, CharterError> {
        let examined = self.examine()?;
        if !examined.complete() {
            let missing: Vec<String> = examined
                .missing
                .iter()
                .map(|f| format!("{} ({})", f.name, f.node.short()))
                .collect();
            return Err(CharterError::Unsigned {
                missing: missing.join(", "),
            });
        }
        Ok(VerifiedCharter {
            charter: examined.charter,
            id: examined.id,
            signed: self.clone(),
        })
    }

    /// A founder adds its signature (replacing none: signing twice is refused). The charter
    /// must examine clean first, and `key` must be a founder's.
    pub fn sign(&mut self, key: &SecretKey) -> Result<Examined, CharterError> {
        let examined = self.examine()?;
        let node = key.node_id();
        if examined.charter.founder(&node).is_none() {
            return Err(CharterError::NotAFounder(node.to_hex()));
        }
        if examined.signed.contains(&node) {
            return Err(CharterError::SignedTwice(founder_label(
                &examined.charter,
                &node,
            )));
        }
        self.signatures.push((node, key.sign(&self.bytes)));
        self.signatures.sort_by_key(|(n, _)| *n);
        self.examine()
    }

    /// The charter file's text (pretty JSON, a newline at the end).
    pub fn to_file_text(&self) -> String {
        let file = CharterFile {
            format: CHARTER_FILE_FORMAT.to_string(),
            charter: hex::encode(&self.bytes),
            signatures: self
                .signatures
                .iter()
                .map(|(node, sig)| FileSignature {
                    node: node.to_hex(),
                    signature: hex::encode(sig),
                })
                .collect(),
        };
        let mut text = serde_json::to_string_pretty(&file)
            .unwrap_or_else(|e| panic!("serializing a charter file failed: {e}"));
        text.push('\n');
        text
    }

    /// Reads a charter file (size-capped first). The charter itself is checked by
    /// [`SignedCharter::examine`] or [`SignedCharter::verify`].
    pub fn from_file_text(text: &[u8]) -> Result<SignedCharter, CharterError> {
        if text.len() > CHARTER_FILE_BYTES_MAX {
            return Err(CharterError::FileTooLarge { len: text.len() });
        }
        let file: CharterFile =
            serde_json::from_slice(text).map_err(|e| CharterError::File(e.to_string()))?;
        if file.format != CHARTER_FILE_FORMAT {
            return Err(CharterError::File(format!(
                "format is {:?}, expected {CHARTER_FILE_FORMAT:?}",
                file.format.chars().take(40).collect::<String>()
            )));
        }
        let bytes = hex::decode(&file.charter)
            .map_err(|_| CharterError::File("charter: not hex".into()))?;
        let mut signatures = Vec::with_capacity(file.signatures.len());
        for (i, s) in file.signatures.iter().enumerate() {
            let node: NodeId = s
                .node
                .parse()
                .map_err(|_| CharterError::File(format!("signatures[{i}].node: not a node id")))?;
            let sig: [u8; SIGNATURE_BYTES] = hex::decode(&s.signature)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    CharterError::File(format!("signatures[{i}].signature: not 64 bytes of hex"))
                })?;
            signatures.push((node, sig));
        }
        Ok(SignedCharter { bytes, signatures })
    }
}

fn founder_label(charter: &Charter, node: &NodeId) -> String {
    match charter.founder(node) {
        Some(f) => format!("{} ({})", f.name, node.short()),
        None => node.short(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes(&[n; 32])
    }

    pub(crate) fn charter_of(keys: &[(&SecretKey, &str)], threshold: u32) -> Charter {
        let mut founders: Vec<Founder> = keys
            .iter()
            .map(|(k, name)| Founder {
                node: k.node_id(),
                name: name.to_string(),
            })
            .collect();
        founders.sort_by_key(|f| f.node);
        Charter {
            network: "SOUL".into(),
            threshold,
            created_ms: 1_700_000_000_000,
            founders,
        }
    }

    #[test]
    fn a_charter_is_in_force_once_every_founder_signed() {
        let (a, b, c) = (key(1), key(2), key(3));
        let charter = charter_of(&[(&a, "skane"), (&b, "dalarna"), (&c, "stockholm")], 2);
        let mut signed = SignedCharter::new(&charter).unwrap();
        let e = signed.sign(&a).unwrap();
        assert_eq!(e.signed, [a.node_id()]);
        assert_eq!(e.missing.len(), 2);
        let err = signed.verify().unwrap_err().to_string();
        assert!(
            err.contains("dalarna") && err.contains("stockholm"),
            "{err}"
        );
        assert!(!err.contains("skane"), "{err}");
        signed.sign(&b).unwrap();
        assert!(matches!(
            signed.sign(&b),
            Err(CharterError::SignedTwice(who)) if who.contains("dalarna")
        ));
        assert!(matches!(
            signed.sign(&key(9)),
            Err(CharterError::NotAFounder(_))
        ));
        signed.sign(&c).unwrap();
        let v = signed.verify().unwrap();
        assert_eq!(v.charter, charter);
        assert_eq!(v.id, Hash::of(&charter.to_bytes()));

        // The file round-trips, byte for byte.
        let text = signed.to_file_text();
        let back = SignedCharter::from_file_text(text.as_bytes()).unwrap();
        assert_eq!(back, signed);
        back.verify().unwrap();
    }

    #[test]
    fn forged_and_malformed_charters_are_refused_by_name() {
        let (a, b) = (key(1), key(2));
        let charter = charter_of(&[(&a, "skane"), (&b, "dalarna")], 2);
        let mut signed = SignedCharter::new(&charter).unwrap();
        signed.sign(&a).unwrap();
        signed.sign(&b).unwrap();

        // A signature over other bytes (one flipped signature byte).
        let mut bad = signed.clone();
        bad.signatures[0].1[10] ^= 1;
        assert!(matches!(bad.verify(), Err(CharterError::BadSignature(_))));
        // The bytes changed under the signatures (a higher threshold slipped in).
        let mut other = charter.clone();
        other.threshold = 1;
        let mut swapped = signed.clone();
        swapped.bytes = other.to_bytes();
        assert!(matches!(
            swapped.verify(),
            Err(CharterError::BadSignature(_))
        ));
        // A stranger's signature.
        let mut stranger = signed.clone();
        let s = key(9);
        stranger
            .signatures
            .push((s.node_id(), s.sign(&signed.bytes)));
        assert!(matches!(
            stranger.verify(),
            Err(CharterError::NotAFounder(_))
        ));
        // A signature left out.
        let mut short = signed.clone();
        short.signatures.pop();
        assert!(matches!(short.verify(), Err(CharterError::Unsigned { .. })));
        // Trailing bytes, another tag.
        let mut trailing = signed.clone();
        trailing.bytes.push(0);
        assert!(matches!(trailing.verify(), Err(CharterError::Decode(_))));
        let mut tag = signed.clone();
        tag.bytes[0] = b'x';
        assert_eq!(tag.verify().unwrap_err(), CharterError::BadDomain);

        // The rules of a charter.
        let mut c = charter.clone();
        c.threshold = 3;
        assert!(matches!(
            SignedCharter::new(&c),
            Err(CharterError::Threshold { .. })
        ));
        c.threshold = 0;
        assert!(SignedCharter::new(&c).is_err());
        let mut c = charter.clone();
        c.founders[1].name = c.founders[0].name.clone();
        assert!(matches!(
            SignedCharter::new(&c),
            Err(CharterError::NameTwice(_))
        ));
        let mut c = charter.clone();
        c.founders.swap(0, 1);
        assert_eq!(SignedCharter::new(&c), Err(CharterError::Unsorted));
        let mut c = charter.clone();
        c.founders[0].name = "Skåne".into();
        assert!(matches!(
            SignedCharter::new(&c),
            Err(CharterError::FounderName { .. })
        ));
        let mut c = charter.clone();
        c.network = String::new();
        assert!(matches!(
            SignedCharter::new(&c),
            Err(CharterError::NetworkName(_))
        ));
        let mut c = charter.clone();
        c.founders = (0..=CHARTER_FOUNDERS_MAX as u8)
            .map(|i| Founder {
                node: key(i + 10).node_id(),
                name: format!("r{i}"),
            })
            .collect();
        c.founders.sort_by_key(|f| f.node);
        assert_eq!(
            SignedCharter::new(&c),
            Err(CharterError::FounderCount(CHARTER_FOUNDERS_MAX + 1))
        );
        c.founders.pop();
        SignedCharter::new(&c).unwrap();

        // Files: oversize first, then shape.
        let big = vec![b' '; CHARTER_FILE_BYTES_MAX + 1];
        assert!(matches!(
            SignedCharter::from_file_text(&big),
            Err(CharterError::FileTooLarge { .. })
        ));
        for bad in [
            &b"{}"[..],
            br#"{"format":"x","charter":"","signatures":[]}"#,
            br#"{"format":"spindel-charter/1","charter":"zz","signatures":[]}"#,
            br#"{"format":"spindel-charter/1","charter":"","signatures":[{"node":"1","signature":""}]}"#,
        ] {
            assert!(
                matches!(
                    SignedCharter::from_file_text(bad),
                    Err(CharterError::File(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// The signed bytes of a charter, pinned: another implementation must produce these.
    #[test]
    fn golden_charter_bytes() {
        let charter = Charter {
            network: "SOUL".into(),
            threshold: 2,
            created_ms: 1_700_000_000_000,
            founders: vec![Founder {
                node: NodeId([0xab; 32]),
                name: "skane".into(),
            }],
        };
        let expected = [
            hex::encode(b"spindel/charter\0"),
            "01".into(),
            "04".into(),
            hex::encode(b"SOUL"),
            "02".into(),                 // threshold
            "fd0068e5cf8b010000".into(), // created_ms
            "01".into(),                 // one founder
            "ab".repeat(32),
            "05".into(),
            hex::encode(b"skane"),
        ]
        .concat();
        assert_eq!(hex::encode(charter.to_bytes()), expected);
    }
}
