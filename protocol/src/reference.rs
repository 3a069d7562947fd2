//! A reference from one record to another, in any region's log: `NODEID/RECORD_ID` (the
//! author's 64 hex characters, a slash, the record's 32). Records that answer or build on
//! another record (an experience's `about`, the indicators an innovation's SROI used) name it
//! so. A reference is only a name: it may point at a record this node has not received yet,
//! or at one its author deleted since, and readers show it as such.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::entry::RecordId;
use crate::keys::NodeId;

/// `author/record`: one record of one region, whichever version is current.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordRef {
    pub author: NodeId,
    pub record: RecordId,
}

/// The length of a reference's text: 64 + 1 + 32.
pub const RECORD_REF_CHARS: usize = 97;

/// Why a reference's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a record reference is NODEID/RECORD_ID (64 and 32 lowercase hex characters), got {0:?}")]
pub struct ParseRecordRefError(pub String);

impl FromStr for RecordRef {
    type Err = ParseRecordRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refused = || ParseRecordRefError(s.chars().take(120).collect());
        let (author, record) = s.split_once('/').ok_or_else(refused)?;
        Ok(RecordRef {
            author: author.parse().map_err(|_| refused())?,
            record: record.parse().map_err(|_| refused())?,
        })
    }
}

impl fmt::Display for RecordRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.author.to_hex(), self.record.to_hex())
    }
}

impl fmt::Debug for RecordRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordRef({self})")
    }
}

/// In JSON a reference is its text, as people type it.
impl Serialize for RecordRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTHOR: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
    const RECORD: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_reference_reads_back_as_it_is_written() {
        let text = format!("{AUTHOR}/{RECORD}");
        let r: RecordRef = text.parse().unwrap();
        assert_eq!(r.to_string(), text);
        assert_eq!(text.len(), RECORD_REF_CHARS);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<RecordRef>(&json).unwrap(), r);
    }

    #[test]
    fn a_malformed_reference_is_refused_with_its_text() {
        for bad in [
            String::new(),
            AUTHOR.to_string(),
            format!("{AUTHOR}/"),
            format!("/{RECORD}"),
            format!("{AUTHOR}/{RECORD}/x"),
            format!("{}/{RECORD}", AUTHOR.to_uppercase()),
            format!("{AUTHOR} /{RECORD}"),
        ] {
            let e = bad.parse::<RecordRef>().unwrap_err();
            assert!(e.to_string().contains("NODEID/RECORD_ID"), "{bad:?}: {e}");
        }
        let e = serde_json::from_str::<RecordRef>("\"nope\"").unwrap_err();
        assert!(e.to_string().contains("NODEID/RECORD_ID"), "{e}");
    }
}
