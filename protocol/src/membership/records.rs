//! The membership records as their authors sign them: an [`Endorsement`] (a rotation too), a
//! [`Revocation`] and an [`ErasureOrder`], each read from its JSON with every problem at once.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::entry::RecordId;
use crate::keys::NodeId;
use crate::schema::{Check, Problem, SchemaError, validate_region_name};

/// The limits of the membership kinds, named.
pub mod limits {
    /// A revocation's or an erasure order's reason, in characters.
    pub const REASON_CHARS_MAX: usize = 2000;
}
use limits::*;

/// A member vouches for `node` under `name`; with `replaces`, as the new key of that key's
/// region, whose entries after `upto` are then refused. An endorsement that `replaces` its
/// own author is a rotation ([`Endorsement::is_rotation_by`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endorsement {
    pub node: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// With `replaces`: the last seq of the replaced key's log that stays (its head as the
    /// endorsing region held it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upto: Option<u64>,
}

/// A member asks that `node`'s region stop being a member; its entries after `upto` (its head
/// as the revoking region held it) are then refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    pub node: String,
    pub reason: String,
    pub upto: u64,
}

/// Members order the record `author`/`record` erased: a person asked for it, and its author
/// cannot act (gone, its key lost). At `threshold` member regions (or at once, ordered by the
/// live key of the record's own region: a region erasing its earlier key's record) every
/// node purges the record's payloads as a tombstone would; the order and its reason stay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureOrder {
    pub author: String,
    pub record: String,
    pub reason: String,
}

fn node_problem(c: &Check, field: &str, value: &str) -> Option<SchemaError> {
    match NodeId::from_str(value) {
        Ok(id) if id.is_usable() => None,
        _ => Some(c.fail(
            field,
            Problem::NodeId,
            format!(
                "{field} must be a node id (64 lowercase hex characters of a usable key), got {:?}",
                value.chars().take(80).collect::<String>()
            ),
        )),
    }
}

/// Reads a membership record's JSON, trimmed, with every problem at once (in field order).
fn read<T: serde::de::DeserializeOwned>(
    kind: &'static str,
    text: &str,
    trim: impl FnOnce(&mut T),
    problems: impl FnOnce(&T, &mut Vec<SchemaError>),
) -> Result<T, Vec<SchemaError>> {
    let mut value: T = serde_json::from_str(text).map_err(|e| {
        vec![SchemaError {
            message: format!("invalid {kind} record: {e}"),
            field: None,
            problem: Problem::NotJson,
        }]
    })?;
    trim(&mut value);
    let mut out = Vec::new();
    problems(&value, &mut out);
    if out.is_empty() { Ok(value) } else { Err(out) }
}

impl Endorsement {
    /// An endorsement from its JSON (see [`read`]).
    pub fn from_json_all(text: &str) -> Result<Endorsement, Vec<SchemaError>> {
        read(
            "endorsement",
            text,
            Endorsement::trim,
            Endorsement::problems,
        )
    }

    pub(crate) fn trim(&mut self) {
        trim(&mut self.node);
        trim(&mut self.name);
        if let Some(r) = &mut self.replaces {
            trim(r);
        }
    }

    pub(crate) fn problems(&self, out: &mut Vec<SchemaError>) {
        let c = Check {
            kind: "endorsement",
        };
        out.extend(node_problem(&c, "node", &self.node));
        if let Err(e) = validate_region_name(&self.name) {
            out.push(c.fail("name", Problem::RegionName, format!("name: {e}")));
        }
        match (&self.replaces, self.upto) {
            (Some(old), upto) => {
                out.extend(node_problem(&c, "replaces", old));
                if *old == self.node {
                    out.push(c.fail(
                        "replaces",
                        Problem::Other,
                        "replaces names the endorsed key itself".into(),
                    ));
                }
                if upto.is_none() {
                    out.push(c.fail(
                        "upto",
                        Problem::Required,
                        "upto is required with replaces: the replaced key's last entry that stays"
                            .into(),
                    ));
                }
            }
            (None, Some(_)) => out.push(c.fail(
                "upto",
                Problem::Other,
                "upto is given only with replaces".into(),
            )),
            (None, None) => {}
        }
    }
}

impl Endorsement {
    /// This endorsement, in `author`'s log, hands `author`'s region over to `node`: a
    /// rotation, which counts alone (see the module docs).
    pub fn is_rotation_by(&self, author: &NodeId) -> bool {
        self.replaces.as_deref() == Some(author.to_hex().as_str())
    }
}

impl ErasureOrder {
    /// An erasure order from its JSON (see [`read`]).
    pub fn from_json_all(text: &str) -> Result<ErasureOrder, Vec<SchemaError>> {
        read("erasure", text, ErasureOrder::trim, ErasureOrder::problems)
    }

    pub(crate) fn trim(&mut self) {
        trim(&mut self.author);
        trim(&mut self.record);
        trim(&mut self.reason);
    }

    pub(crate) fn problems(&self, out: &mut Vec<SchemaError>) {
        let c = Check { kind: "erasure" };
        out.extend(node_problem(&c, "author", &self.author));
        if RecordId::from_str(&self.record).is_err() {
            out.push(c.fail(
                "record",
                Problem::Other,
                format!(
                    "record must be a record id (32 lowercase hex characters), got {:?}",
                    self.record.chars().take(80).collect::<String>()
                ),
            ));
        }
        if let Err(e) = c.text("reason", &self.reason, 1, REASON_CHARS_MAX) {
            out.push(e);
        }
    }
}

impl Revocation {
    /// A revocation from its JSON (see [`read`]).
    pub fn from_json_all(text: &str) -> Result<Revocation, Vec<SchemaError>> {
        read("revocation", text, Revocation::trim, Revocation::problems)
    }

    pub(crate) fn trim(&mut self) {
        trim(&mut self.node);
        trim(&mut self.reason);
    }

    pub(crate) fn problems(&self, out: &mut Vec<SchemaError>) {
        let c = Check { kind: "revocation" };
        out.extend(node_problem(&c, "node", &self.node));
        if let Err(e) = c.text("reason", &self.reason, 1, REASON_CHARS_MAX) {
            out.push(e);
        }
    }
}

fn trim(s: &mut String) {
    let t = s.trim();
    if t.len() != s.len() {
        *s = t.to_string();
    }
}
