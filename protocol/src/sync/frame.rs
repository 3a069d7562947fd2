//! Framing: one message a frame, a 4-byte big-endian length, then the canonical bincode body.

use super::message::{FRAME_BYTES_MAX, FRAME_PREFIX_BYTES, Message};
use crate::codec::{self, DecodeError};

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(#[from] DecodeError),
}

/// Encodes a message as one frame: 4-byte big-endian length, then the bincode body.
pub fn encode_frame(message: &Message) -> Vec<u8> {
    let body = codec::encode(message);
    let mut frame = Vec::with_capacity(FRAME_PREFIX_BYTES + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Reads the length prefix; refuses a frame over `max` before any of it is buffered.
pub fn frame_len(prefix: [u8; FRAME_PREFIX_BYTES], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes one frame body (already size-checked with [`frame_len`]).
pub fn decode_body(body: &[u8]) -> Result<Message, FrameError> {
    Ok(codec::decode::<Message, FRAME_BYTES_MAX>("frame", body)?)
}

/// Decodes the first frame of `buf`: `Ok(None)` when more bytes are needed, else the message
/// and the bytes it used.
pub fn decode_frame(buf: &[u8], max: usize) -> Result<Option<(Message, usize)>, FrameError> {
    let Some(prefix) = buf.get(..FRAME_PREFIX_BYTES) else {
        return Ok(None);
    };
    let len = frame_len(prefix.try_into().unwrap_or([0; 4]), max)?;
    let Some(body) = buf.get(FRAME_PREFIX_BYTES..FRAME_PREFIX_BYTES + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, FRAME_PREFIX_BYTES + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Entry, Hash, RecordId, next_header};
    use crate::keys::SecretKey;
    use crate::record::Kind;
    use crate::sync::{PeerRole, QueryRequest, SyncEntry};

    #[test]
    fn frames_round_trip_and_refuse_oversize_and_garbage() {
        let m = Message::Hello {
            version: 1,
            role: PeerRole::Region,
            name: "skane".into(),
        };
        let frame = encode_frame(&m);
        assert_eq!(decode_frame(&frame[..3], FRAME_BYTES_MAX), Ok(None));
        assert_eq!(
            decode_frame(&frame[..frame.len() - 1], FRAME_BYTES_MAX),
            Ok(None)
        );
        assert_eq!(
            decode_frame(&frame, FRAME_BYTES_MAX),
            Ok(Some((m, frame.len())))
        );
        let huge = (FRAME_BYTES_MAX as u32 + 1).to_be_bytes();
        assert!(matches!(
            decode_frame(&huge, FRAME_BYTES_MAX),
            Err(FrameError::TooLarge { .. })
        ));
        let garbage = [0, 0, 0, 3, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode_frame(&garbage, FRAME_BYTES_MAX),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn golden_frame() {
        // Pins the wire form documented in docs/protocol.md: 4-byte big-endian length, then
        // bincode (variant index 0 = hello, version 4, role 0 = region, name "skane").
        let frame = encode_frame(&Message::Hello {
            version: crate::sync::PROTOCOL_VERSION,
            role: PeerRole::Region,
            name: "skane".into(),
        });
        assert_eq!(hex::encode(frame), "0000000900050005736b616e65");
        let ack = encode_frame(&Message::Ack { heads: vec![] });
        assert_eq!(hex::encode(ack), "000000020300");
        // A checkpoint and a cosignature as they travel: variant 12 and 13, then the signed
        // bytes and the signature, each with its varint length (the bytes themselves are
        // pinned in checkpoint.rs).
        let cp = crate::checkpoint::SignedCheckpoint {
            body: vec![0xaa; 3],
            signature: vec![0xbb; 64],
        };
        let frame = encode_frame(&Message::Checkpoint {
            checkpoint: cp.clone(),
        });
        assert_eq!(
            hex::encode(frame),
            format!("000000460c03aaaaaa40{}", "bb".repeat(64))
        );
        let frame = encode_frame(&Message::Cosignatures {
            cosignatures: vec![crate::checkpoint::SignedCosignature {
                body: cp.body,
                signature: cp.signature,
            }],
        });
        assert_eq!(
            hex::encode(frame),
            format!("000000470d0103aaaaaa40{}", "bb".repeat(64))
        );
        assert_eq!(
            hex::encode(encode_frame(&Message::AuditRequest)),
            "000000010e"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            crate::fuzz::frame(&bytes);
        }

        /// Valid frames of every shape with bytes changed (closer to what a hostile peer
        /// crafts than random bytes): never a panic, and a frame that decodes is canonical.
        #[test]
        fn mutated_frames_never_panic_and_decode_canonically(
            which in 0usize..7,
            flips in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 1..4),
        ) {
            let k = SecretKey::from_bytes(&[3; 32]);
            let payload = crate::entry::Payload::seal(&mut rand::rngs::OsRng, "{}".into());
            let h = next_header(k.node_id(), None, 1, Kind::Method, RecordId([1; 16]), Some(&payload));
            let entry = SyncEntry { entry: Entry::sign(&k, h).to_wire(), payload: Some(payload) };
            let messages = [
                Message::Entries { entries: vec![entry.clone()] },
                Message::Heads { heads: vec![(k.node_id(), 3)], admitted: vec![(k.node_id(), Some("skane".into()))] },
                Message::Tips { tips: vec![(k.node_id(), 1, Hash::ZERO)] },
                Message::Forks { proofs: vec![(entry.entry.clone(), entry.entry.clone())] },
                Message::Query(QueryRequest { kind: Some("method".into()), region: Some("skane".into()), ..Default::default() }),
                Message::Checkpoint { checkpoint: crate::checkpoint::SignedCheckpoint::sign(&k, &crate::checkpoint::Checkpoint { aggregator: k.node_id(), counter: 1, time_ms: 1, heads: vec![] }).signed },
                Message::Cosignatures { cosignatures: vec![crate::checkpoint::SignedCosignature { body: vec![1; 100], signature: vec![2; 64] }] },
            ];
            let mut frame = encode_frame(&messages[which]);
            for (at, byte) in flips {
                let i = at.index(frame.len() - FRAME_PREFIX_BYTES) + FRAME_PREFIX_BYTES;
                frame[i] = byte;
            }
            crate::fuzz::frame(&frame);
        }
    }
}
