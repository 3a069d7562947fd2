//! The one binary encoding of spindel: bincode 2.0.1 with [`config`], always size-capped.
//!
//! bincode is unmaintained (RUSTSEC-2025-0141) and pinned to `=2.0.1`; its format for a fixed
//! configuration is specified and stable. This module is the only place that names it, so it can
//! be replaced; golden byte vectors in `entry.rs` pin what it produces.
//!
//! Decoding rules, for every byte string that came from the network or the disk:
//! 1. the caller's size cap is checked *before* decoding ([`DecodeError::TooLarge`]);
//! 2. bincode itself runs with the same limit, so no length field can make it allocate more;
//! 3. every byte must be consumed ([`DecodeError::TrailingBytes`]);
//! 4. the value must re-encode to exactly the same bytes ([`DecodeError::NotCanonical`]), so a
//!    signed byte string has exactly one meaning.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::{Serialize, de::DeserializeOwned};

/// The configuration every spindel byte string uses: little-endian, variable-length integers.
pub fn config() -> Configuration<LittleEndian, Varint> {
    bincode::config::standard()
}

fn limited<const N: usize>() -> Configuration<LittleEndian, Varint, Limit<N>> {
    config().with_limit::<N>()
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} is {len} bytes, over the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what} is malformed: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("{what} has {extra} trailing bytes")]
    TrailingBytes { what: &'static str, extra: usize },
    #[error("{what} is not in canonical form")]
    NotCanonical { what: &'static str },
}

/// Encodes a value. Encoding in-memory values of spindel's own types cannot fail; a failure is
/// a programming error and panics with the reason.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    match bincode::serde::encode_to_vec(value, config()) {
        Ok(bytes) => bytes,
        Err(e) => panic!("encoding a spindel value failed: {e}"),
    }
}

/// [`encode`] for a value holding secret bytes (a key): the buffer is sized first and allocated
/// once (a growing `Vec` would leave copies of what it held in freed memory), and it is zeroed
/// when dropped.
pub fn encode_secret<T: Serialize>(value: &T) -> zeroize::Zeroizing<Vec<u8>> {
    let mut size = bincode::enc::write::SizeWriter::default();
    if let Err(e) = bincode::serde::encode_into_writer(value, &mut size, config()) {
        panic!("encoding a spindel value failed: {e}");
    }
    let mut buf = zeroize::Zeroizing::new(vec![0u8; size.bytes_written]);
    match bincode::serde::encode_into_slice(value, &mut buf, config()) {
        Ok(n) if n == buf.len() => buf,
        Ok(n) => panic!(
            "encoding a spindel value took {n} bytes, sized {}",
            buf.len()
        ),
        Err(e) => panic!("encoding a spindel value failed: {e}"),
    }
}

/// [`decode`] for a value holding secret bytes: the canonical-form check re-encodes with
/// [`encode_secret`], so no unzeroed copy is left behind. (The value's own fields must zeroize
/// themselves: wrap them in `zeroize::Zeroizing`.)
pub fn decode_secret<T: Serialize + DeserializeOwned, const MAX: usize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    decode_checked::<T, MAX>(what, bytes, |v| *encode_secret(v) == *bytes)
}

/// Decodes `bytes` as a `T`, refusing more than `MAX` bytes, trailing bytes and non-canonical
/// encodings. `what` names the thing in errors ("entry header", "frame", ...).
pub fn decode<T: Serialize + DeserializeOwned, const MAX: usize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    decode_checked::<T, MAX>(what, bytes, |v| encode(v) == bytes)
}

fn decode_checked<T: Serialize + DeserializeOwned, const MAX: usize>(
    what: &'static str,
    bytes: &[u8],
    canonical: impl FnOnce(&T) -> bool,
) -> Result<T, DecodeError> {
    if bytes.len() > MAX {
        return Err(DecodeError::TooLarge {
            what,
            len: bytes.len(),
            max: MAX,
        });
    }
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(bytes, limited::<MAX>())
        .map_err(|e| DecodeError::Malformed {
            what,
            reason: e.to_string(),
        })?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            what,
            extra: bytes.len() - used,
        });
    }
    if !canonical(&value) {
        return Err(DecodeError::NotCanonical { what });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Sample {
        n: u64,
        name: String,
        list: Vec<u32>,
    }

    #[test]
    fn golden_encoding_of_the_configuration() {
        // Pins the configuration: varint integers, little endian, length-prefixed strings.
        let bytes = encode(&Sample {
            n: 300,
            name: "å".into(),
            list: vec![1, 70000],
        });
        assert_eq!(hex::encode(&bytes), "fb2c0102c3a50201fc70110100");
    }

    #[test]
    fn secret_encoding_is_the_same_encoding() {
        let sample = Sample {
            n: 300,
            name: "hemlig".repeat(40),
            list: (0..100).collect(),
        };
        let bytes = encode(&sample);
        assert_eq!(*encode_secret(&sample), bytes);
        assert_eq!(
            decode_secret::<Sample, 4096>("sample", &bytes).unwrap(),
            sample
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_secret::<Sample, 4096>("sample", &longer).is_err());
    }

    #[test]
    fn refuses_oversize_before_decoding() {
        let bytes = vec![0u8; 65];
        let err = decode::<Sample, 64>("sample", &bytes).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::TooLarge {
                len: 65,
                max: 64,
                ..
            }
        ));
    }

    #[test]
    fn length_field_cannot_force_allocation() {
        // A vector claiming u64::MAX elements inside a 16-byte cap.
        let mut bytes = vec![0u8, 0u8];
        bytes.push(0xff);
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = decode::<Sample, 16>("sample", &bytes).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed { .. }), "{err:?}");
    }

    #[test]
    fn refuses_trailing_and_non_canonical() {
        let mut bytes = encode(&Sample {
            n: 5,
            name: "x".into(),
            list: vec![],
        });
        bytes.push(0);
        assert!(matches!(
            decode::<Sample, 64>("sample", &bytes),
            Err(DecodeError::TrailingBytes { extra: 1, .. })
        ));
        // n = 5 written as a u16 varint (0xfb 05 00) instead of the single byte 05.
        let long_form = [0xfb, 0x05, 0x00, 0x01, b'x', 0x00];
        assert!(matches!(
            decode::<Sample, 64>("sample", &long_form),
            Err(DecodeError::NotCanonical { .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(n in any::<u64>(), name in ".{0,40}", list in proptest::collection::vec(any::<u32>(), 0..20)) {
            let value = Sample { n, name, list };
            let bytes = encode(&value);
            prop_assert_eq!(decode::<Sample, 4096>("sample", &bytes).unwrap(), value);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Sample, 128>("sample", &bytes);
        }
    }
}
