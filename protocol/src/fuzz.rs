//! One check per decoder of bytes a peer or a client controls. Each takes any bytes and
//! panics only if a promise breaks: decoding never panics, and whatever decodes is canonical
//! (encoding it again gives the same bytes) or round-trips unchanged. The property tests run
//! them in CI for a bounded count; the `cargo fuzz` targets in `fuzz/` run the same functions
//! for as long as one likes (`fuzz/README.md`).

use crate::checkpoint::{SignedCheckpoint, SignedCosignature};
use crate::entry::{Entry, Header, Payload};
use crate::record::{Kind, Record};
use crate::sync::{FRAME_BYTES_MAX, decode_frame, encode_frame};

/// A sync frame as it arrives on a QUIC stream (length prefix included).
pub fn frame(bytes: &[u8]) {
    if let Ok(Some((message, used))) = decode_frame(bytes, FRAME_BYTES_MAX) {
        assert_eq!(
            encode_frame(&message),
            bytes[..used],
            "a decoded frame is not canonical"
        );
    }
}

/// A stored or received entry, its header alone, and a payload.
pub fn entry(bytes: &[u8]) {
    if let Ok(entry) = Entry::decode(bytes) {
        assert_eq!(entry.encode(), bytes, "a decoded entry is not canonical");
    }
    if let Ok(header) = Header::decode(bytes) {
        assert_eq!(
            header.signed_bytes(),
            bytes,
            "a decoded header is not canonical"
        );
    }
    let _ = Payload::decode(bytes);
}

/// A record's JSON (a payload's body from a peer, or a line of an import): the first byte
/// picks the kind, the rest is the text. What validates round-trips unchanged.
pub fn record(bytes: &[u8]) {
    let Some((&which, rest)) = bytes.split_first() else {
        return;
    };
    let kind = Kind::ALL[usize::from(which) % Kind::ALL.len()];
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(record) = Record::from_json(kind, text) {
        let again = Record::from_json(kind, &record.to_json());
        assert_eq!(
            again.as_ref(),
            Ok(&record),
            "a valid record does not round-trip"
        );
    }
}

/// A checkpoint's or a cosignature's signed bytes as a peer sends them (the last 64 bytes, if
/// there are as many, as the signature): checking never panics, and what verifies is exactly
/// the bytes given.
pub fn checkpoint(bytes: &[u8]) {
    let cut = bytes.len().saturating_sub(64);
    let (body, signature) = bytes.split_at(cut);
    let signed = SignedCheckpoint {
        body: body.to_vec(),
        signature: signature.to_vec(),
    };
    if let Ok(v) = signed.verify(None) {
        assert_eq!(
            v.signed, signed,
            "a verified checkpoint is not the bytes received"
        );
    }
    let _ = SignedCosignature {
        body: body.to_vec(),
        signature: signature.to_vec(),
    }
    .verify();
}
