//! The key layout of the store's one sled tree (the table in the module docs of
//! [`crate::store`]): a one-byte prefix, then the parts in big-endian order.

use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;

use crate::payloads::Location;

pub(super) fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

pub(super) fn k_log(a: &NodeId, seq: u64) -> Vec<u8> {
    key(b'L', &[&a.0, &seq.to_be_bytes()])
}
pub(super) fn k_payload(a: &NodeId, r: &RecordId) -> Vec<u8> {
    key(b'P', &[&a.0, &r.0])
}
pub(super) fn k_pack(segment: u32) -> Vec<u8> {
    key(b'Q', &[&segment.to_be_bytes()])
}
/// A payload held until the members' erasure order settles ([`super::types::HeldPayload`]).
pub(super) fn k_held(a: &NodeId, r: &RecordId) -> Vec<u8> {
    key(b'Y', &[&a.0, &r.0])
}
pub(super) fn k_erase(at: &Location) -> Vec<u8> {
    key(b'Z', &[&at.segment.to_be_bytes(), &at.offset.to_be_bytes()])
}
/// One entry of an author's record: its versions, in log order.
pub(super) fn k_version(a: &NodeId, r: &RecordId, seq: u64) -> Vec<u8> {
    key(b'E', &[&a.0, &r.0, &seq.to_be_bytes()])
}
pub(super) fn k_head(a: &NodeId) -> Vec<u8> {
    key(b'H', &[&a.0])
}
pub(super) fn k_record(a: &NodeId, r: &RecordId) -> Vec<u8> {
    key(b'R', &[&a.0, &r.0])
}
/// Time index key: newest first because the timestamp is inverted.
pub(super) fn k_time(updated_ms: u64, a: &NodeId, r: &RecordId) -> Vec<u8> {
    key(b'T', &[&(u64::MAX - updated_ms).to_be_bytes(), &a.0, &r.0])
}

/// A place in the time index (newest first), what a query's cursor names: callers never see
/// the key's bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeKey(pub(super) Vec<u8>);

/// Bytes of a time key after its prefix: inverted time, author, record.
pub(super) const TIME_KEY_BYTES: usize = 8 + 32 + 16;

impl TimeKey {
    /// The place of `author`'s record last updated at `updated_ms`.
    pub fn of(updated_ms: u64, author: &NodeId, rid: &RecordId) -> TimeKey {
        TimeKey(k_time(updated_ms, author, rid))
    }

    /// (inverted time, author, record), ordered as the key is; `None` for a malformed key.
    pub fn parts(&self) -> Option<(u64, NodeId, RecordId)> {
        let bytes = self.0.get(1..)?;
        let (time, rest) = bytes.split_first_chunk::<8>()?;
        let (author, record) = rest.split_first_chunk::<32>()?;
        Some((
            u64::from_be_bytes(*time),
            NodeId(*author),
            RecordId(<[u8; 16]>::try_from(record).ok()?),
        ))
    }

    /// The opaque cursor that names this place (hex).
    pub fn to_cursor(&self) -> String {
        hex::encode(&self.0[1..])
    }

    /// The place a cursor names; `None` when the text is not one.
    pub fn from_cursor(text: &str) -> Option<TimeKey> {
        let bytes = hex::decode(text).ok()?;
        (bytes.len() == TIME_KEY_BYTES).then(|| {
            let mut k = Vec::with_capacity(1 + TIME_KEY_BYTES);
            k.push(b'T');
            k.extend_from_slice(&bytes);
            TimeKey(k)
        })
    }
}
pub(super) fn k_author(a: &NodeId) -> Vec<u8> {
    key(b'A', &[&a.0])
}
/// A pinned aggregator vouches for an author (a region's record of whose list admits it).
pub(super) fn k_vouch(a: &NodeId, by: &NodeId) -> Vec<u8> {
    key(b'V', &[&a.0, &by.0])
}
/// An aggregator this aggregator's operator allowed to mirror it (`allow --mirror`).
pub(super) fn k_mirror(a: &NodeId) -> Vec<u8> {
    key(b'O', &[&a.0])
}
pub(super) fn k_received(a: &NodeId) -> Vec<u8> {
    key(b'S', &[&a.0])
}
/// A membership act's decision (keys, name, `upto`, times; never a reason's text).
pub(super) fn k_act(a: &NodeId, r: &RecordId) -> Vec<u8> {
    key(b'N', &[&a.0, &r.0])
}
pub(super) fn k_fork(a: &NodeId) -> Vec<u8> {
    key(b'F', &[&a.0])
}
pub(super) fn k_counter(reason: &str) -> Vec<u8> {
    key(b'C', &[reason.as_bytes()])
}
pub(super) fn k_author_counter(a: &NodeId, reason: &str) -> Vec<u8> {
    key(b'D', &[&a.0, reason.as_bytes()])
}
/// Signed payload bytes of the author's current versions (the payload quota's count).
pub(super) fn k_bytes(a: &NodeId) -> Vec<u8> {
    key(b'B', &[&a.0])
}
pub(super) const K_GENERATION: &[u8] = b"Mgeneration";
pub(super) const K_FORMAT: &[u8] = b"Mformat";
/// The charter this node adopted, with its own key (`members.rs`).
pub(super) const K_CHARTER: &[u8] = b"Mcharter";
/// The generation the `E` index (a record's versions) was last complete at. A binary that does
/// not keep the index moves the generation without it; the next open then rebuilds the index,
/// so an older binary in between never leaves it short (no format change needed).
pub(super) const K_HISTORY: &[u8] = b"Mhistory";
/// The store's layout version: 2 keeps payloads out of sled (in packs) and no tags in sled;
/// 3 keeps each author's payload bytes under `B` in every batch; 4 keeps the signed entries
/// in the packs too, `L` saying where ([`log_ref`]). A format-2 store is counted once on open
/// and a format-3 store is only marked, both as 4: their `L` values hold the entries
/// themselves and are read as they are, while new entries go to the packs. A binary that
/// reads format 2 or 3 refuses the store afterwards instead of misreading a log reference or
/// letting the count go stale.
pub const STORE_FORMAT: u64 = 4;
/// The oldest layout this version opens: before the payload count, so it is counted on open
/// and marked [`STORE_FORMAT`].
pub(super) const STORE_FORMAT_UNCOUNTED: u64 = 2;
/// The layout with the entries in sled: opened and marked [`STORE_FORMAT`], nothing rewritten.
pub(super) const STORE_FORMAT_INLINE_LOG: u64 = 3;

/// Bytes of an `L` value that says where its entry is in the packs: pack, offset, length
/// (BE). An entry kept in sled itself (formats 2 and 3) is never this short: its signature
/// alone is 64 bytes.
pub(super) const LOG_REF_BYTES: usize = 4 + 8 + 4;

/// The `L` value of an entry kept in the packs at `at`.
pub(super) fn log_ref(at: &Location) -> [u8; LOG_REF_BYTES] {
    let mut v = [0u8; LOG_REF_BYTES];
    v[..4].copy_from_slice(&at.segment.to_be_bytes());
    v[4..12].copy_from_slice(&at.offset.to_be_bytes());
    v[12..].copy_from_slice(&at.len.to_be_bytes());
    v
}

/// Where an `L` value says its entry is; `None` for an entry kept in sled itself.
pub(super) fn parse_log_ref(v: &[u8]) -> Option<Location> {
    let v: &[u8; LOG_REF_BYTES] = v.try_into().ok()?;
    let (segment, rest) = v.split_first_chunk::<4>()?;
    let (offset, len) = rest.split_first_chunk::<8>()?;
    Some(Location {
        segment: u32::from_be_bytes(*segment),
        offset: u64::from_be_bytes(*offset),
        len: u32::from_be_bytes(len.try_into().ok()?),
    })
}

/// The key a record has in the full-text index.
pub fn search_key(a: &NodeId, r: &RecordId) -> String {
    crate::search::doc_key(a, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_key_orders_newest_first_and_is_named_by_its_cursor() {
        let (a, r) = (NodeId([1; 32]), RecordId([2; 16]));
        let (newer, older) = (TimeKey::of(2_000, &a, &r), TimeKey::of(1_000, &a, &r));
        assert!(newer < older, "the time index runs newest first");
        let cursor = newer.to_cursor();
        assert_eq!(cursor.len(), 2 * TIME_KEY_BYTES);
        assert_eq!(TimeKey::from_cursor(&cursor), Some(newer));
        for bad in ["", "zz", &cursor[2..], &format!("{cursor}00")] {
            assert_eq!(TimeKey::from_cursor(bad), None, "{bad:?}");
        }
    }
}
