//! Record kinds and their validation: the schemas of docs/records.md.
//!
//! Input is JSON. Unknown fields are refused; strings are trimmed before their limits are
//! checked and are stored trimmed; limits count characters, not bytes. Every refusal is a
//! [`SchemaError`] whose text names the kind, the field and the rule, in one line.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The kinds of record a region authors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Profile,
    Innovation,
    Method,
    Researcher,
    Event,
    Indicator,
    Experience,
    /// A membership act: a member vouches for a key under a name (docs/protocol.md).
    Endorsement,
    /// A membership act: a member asks that a region's membership end.
    Revocation,
    /// A membership act: a member orders a record erased (a person asked, and its author
    /// cannot act).
    Erasure,
}

impl Kind {
    /// Every kind an entry can carry.
    pub const ALL: [Kind; 10] = [
        Kind::Profile,
        Kind::Innovation,
        Kind::Method,
        Kind::Researcher,
        Kind::Event,
        Kind::Indicator,
        Kind::Experience,
        Kind::Endorsement,
        Kind::Revocation,
        Kind::Erasure,
    ];

    /// The knowledge bank's kinds: what forms, imports, lists and searches offer. The
    /// membership kinds are published with `spindel endorse` and `spindel revoke`.
    pub const KNOWLEDGE: [Kind; 7] = [
        Kind::Profile,
        Kind::Innovation,
        Kind::Method,
        Kind::Researcher,
        Kind::Event,
        Kind::Indicator,
        Kind::Experience,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Profile => "profile",
            Kind::Innovation => "innovation",
            Kind::Method => "method",
            Kind::Researcher => "researcher",
            Kind::Event => "event",
            Kind::Indicator => "indicator",
            Kind::Experience => "experience",
            Kind::Endorsement => "endorsement",
            Kind::Revocation => "revocation",
            Kind::Erasure => "erasure",
        }
    }

    /// One byte per kind, for store index keys.
    pub fn code(self) -> u8 {
        match self {
            Kind::Profile => 0,
            Kind::Innovation => 1,
            Kind::Method => 2,
            Kind::Researcher => 3,
            Kind::Event => 4,
            Kind::Indicator => 5,
            Kind::Experience => 6,
            Kind::Endorsement => 7,
            Kind::Revocation => 8,
            Kind::Erasure => 9,
        }
    }

    /// A membership act, not knowledge: never edited (only deleted, which withdraws it),
    /// and counted by [`crate::membership::Membership::compute`].
    pub fn is_membership(self) -> bool {
        matches!(self, Kind::Endorsement | Kind::Revocation | Kind::Erasure)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a kind name was refused; the text lists [`Kind::KNOWLEDGE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?}: expected {kinds}", kinds = Kind::listed())]
pub struct ParseKindError(pub String);

impl Kind {
    /// `profile, innovation, ... or experience`, from [`Kind::KNOWLEDGE`].
    pub fn listed() -> String {
        let names: Vec<&str> = Kind::KNOWLEDGE.iter().map(|k| k.as_str()).collect();
        match names.split_last() {
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl FromStr for Kind {
    type Err = ParseKindError;

    /// Only the knowledge kinds ([`Kind::KNOWLEDGE`]): every name a person types (a form, a
    /// query, `publish --kind`) stays out of the membership kinds.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::KNOWLEDGE
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseKindError(s.chars().take(40).collect()))
    }
}
pub use crate::event::Event;
pub use crate::experience::{Experience, Outcome};
pub use crate::indicator::Indicator;
pub use crate::membership::{Endorsement, ErasureOrder, Revocation};
use crate::reference::RecordRef;
use crate::schema::{Check, is_phone};
pub use crate::schema::{
    Problem, SchemaError, is_email, is_http_url, limits, validate_region_name,
};
use limits::*;

/// A region's profile. `name` is spindel's extension: the short node name given at `init`
/// (1-32 of `a-z 0-9 -`), which `--region` matches; the node fills it in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

/// A documented social innovation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Innovation {
    pub title: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organisations: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sroi: Option<Sroi>,
}

/// A social return on investment figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sroi {
    pub ratio: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_url: Option<String>,
    /// The proxy bank's indicators the figure used (kind `indicator`, any region's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indicators: Vec<RecordRef>,
}

/// A method or an experience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Method {
    pub title: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

/// A researcher who agreed to be listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Researcher {
    pub name: String,
    pub affiliation: String,
    pub fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default)]
    pub consent: Option<Consent>,
}

/// A researcher's consent to be listed. The object form says when, how and for what; the first
/// form, a bare `true`, is still read in records published before it ("samtycke utan
/// detaljer") and never written anew (a node refuses it on publish). The region that collected
/// the consent is the record's author: it signs the record and answers for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Consent {
    Bare(bool),
    Given(ConsentDetails),
}

/// `{"given": true, "date": "YYYY-MM-DD", "method": "...", "scope": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentDetails {
    pub given: bool,
    /// The day consent was given, `YYYY-MM-DD`.
    pub date: String,
    /// How it was given (a form, an e-mail, a meeting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// What it covers; absent means being listed in the knowledge bank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl<'de> Deserialize<'de> for Consent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Through a value, so a bad object names its own problem (an untagged enum would
        // only say that no variant matched).
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(b) => Ok(Consent::Bare(b)),
            v @ serde_json::Value::Object(_) => serde_json::from_value(v)
                .map(Consent::Given)
                .map_err(|e| D::Error::custom(format!("consent: {e}"))),
            _ => Err(D::Error::custom(format!(
                "consent must be an object {CONSENT_FORM}"
            ))),
        }
    }
}

/// The error for a researcher record without given consent.
pub const NEEDS_CONSENT: &str = r#"researcher record needs consent: {"given": true, "date": "YYYY-MM-DD", "method": "...", "scope": "..."}"#;

/// The consent form, as error messages show it.
pub const CONSENT_FORM: &str =
    r#"{"given": true, "date": "YYYY-MM-DD", "method": "...", "scope": "..."}"#;

/// Whether `s` is a calendar date `YYYY-MM-DD` with a year in the consent range.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (CONSENT_YEAR_MIN..=CONSENT_YEAR_MAX).contains(&y) && (1..=days).contains(&d)
}

/// A validated record of one kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Profile(Profile),
    Innovation(Innovation),
    Method(Method),
    Researcher(Researcher),
    Event(Event),
    Indicator(Indicator),
    Experience(Experience),
    Endorsement(Endorsement),
    Revocation(Revocation),
    Erasure(ErasureOrder),
}

impl Record {
    /// Parses and validates JSON text as a record of `kind`; strings come back trimmed.
    pub fn from_json(kind: Kind, text: &str) -> Result<Record, SchemaError> {
        Record::from_json_all(kind, text).map_err(|mut problems| problems.swap_remove(0))
    }

    /// [`Record::from_json`] with every problem of a record that parses (a form shows them
    /// all at once); never an empty list.
    pub fn from_json_all(kind: Kind, text: &str) -> Result<Record, Vec<SchemaError>> {
        let parsed = match kind {
            Kind::Profile => parse(kind, text).map(Record::Profile),
            Kind::Innovation => parse(kind, text).map(Record::Innovation),
            Kind::Method => parse(kind, text).map(Record::Method),
            Kind::Researcher => parse(kind, text).map(Record::Researcher),
            Kind::Event => parse(kind, text).map(Record::Event),
            Kind::Indicator => parse(kind, text).map(Record::Indicator),
            // Read field by field, so a bad reference is said with the rest.
            Kind::Experience => {
                return crate::experience::from_json_all(text).map(Record::Experience);
            }
            Kind::Endorsement => {
                return Endorsement::from_json_all(text).map(Record::Endorsement);
            }
            Kind::Revocation => {
                return Revocation::from_json_all(text).map(Record::Revocation);
            }
            Kind::Erasure => {
                return ErasureOrder::from_json_all(text).map(Record::Erasure);
            }
        };
        let mut record = parsed.map_err(|e| vec![e])?;
        record.trim();
        let problems = record.problems();
        if problems.is_empty() {
            Ok(record)
        } else {
            Err(problems)
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Record::Profile(_) => Kind::Profile,
            Record::Innovation(_) => Kind::Innovation,
            Record::Method(_) => Kind::Method,
            Record::Researcher(_) => Kind::Researcher,
            Record::Event(_) => Kind::Event,
            Record::Indicator(_) => Kind::Indicator,
            Record::Experience(_) => Kind::Experience,
            Record::Endorsement(_) => Kind::Endorsement,
            Record::Revocation(_) => Kind::Revocation,
            Record::Erasure(_) => Kind::Erasure,
        }
    }

    /// The JSON that is stored in the payload and shown as `data`.
    pub fn to_json(&self) -> String {
        let result = match self {
            Record::Profile(r) => serde_json::to_string(r),
            Record::Innovation(r) => serde_json::to_string(r),
            Record::Method(r) => serde_json::to_string(r),
            Record::Researcher(r) => serde_json::to_string(r),
            Record::Event(r) => serde_json::to_string(r),
            Record::Indicator(r) => serde_json::to_string(r),
            Record::Experience(r) => serde_json::to_string(r),
            Record::Endorsement(r) => serde_json::to_string(r),
            Record::Revocation(r) => serde_json::to_string(r),
            Record::Erasure(r) => serde_json::to_string(r),
        };
        // Serializing these plain structs (finite floats only, by validation) cannot fail.
        result.unwrap_or_else(|e| panic!("serializing a validated record failed: {e}"))
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.to_json()).unwrap_or(serde_json::Value::Null)
    }

    /// The line a list shows for this record.
    pub fn title(&self) -> &str {
        match self {
            Record::Profile(r) => &r.display_name,
            Record::Innovation(r) => &r.title,
            Record::Method(r) => &r.title,
            Record::Researcher(r) => &r.name,
            Record::Event(r) => &r.title,
            Record::Indicator(r) => r.title(),
            Record::Experience(r) => r.title(),
            Record::Endorsement(r) => &r.name,
            Record::Revocation(r) => &r.reason,
            Record::Erasure(r) => &r.reason,
        }
    }

    /// Tags used by the tag filter: `tags` of innovations and methods, `fields` of researchers.
    pub fn tags(&self) -> &[String] {
        match self {
            Record::Profile(_) => &[],
            Record::Innovation(r) => &r.tags,
            Record::Method(r) => &r.tags,
            Record::Researcher(r) => &r.fields,
            Record::Event(r) => &r.tags,
            Record::Indicator(r) => &r.tags,
            Record::Experience(r) => &r.tags,
            Record::Endorsement(_) | Record::Revocation(_) | Record::Erasure(_) => &[],
        }
    }

    /// All human text of the record, for the full-text index.
    pub fn search_text(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        match self {
            Record::Profile(r) => {
                parts.push(&r.display_name);
                parts.extend(r.name.as_deref());
                parts.extend(r.description.as_deref());
                parts.extend(r.members.iter().map(String::as_str));
            }
            Record::Innovation(r) => {
                parts.extend([r.title.as_str(), &r.summary]);
                parts.extend(r.description.as_deref());
                parts.extend(r.tags.iter().map(String::as_str));
                parts.extend(r.organisations.iter().map(String::as_str));
                parts.extend(r.contact.as_deref());
            }
            Record::Method(r) => {
                parts.extend([r.title.as_str(), &r.summary]);
                parts.extend(r.description.as_deref());
                parts.extend(r.tags.iter().map(String::as_str));
            }
            Record::Researcher(r) => {
                parts.extend([r.name.as_str(), &r.affiliation]);
                parts.extend(r.fields.iter().map(String::as_str));
            }
            Record::Event(r) => parts.extend(r.search_parts()),
            Record::Indicator(r) => parts.extend(r.search_parts()),
            Record::Experience(r) => return r.search_text(),
            Record::Endorsement(r) => parts.extend([r.name.as_str(), &r.node]),
            Record::Revocation(r) => parts.extend([r.node.as_str(), &r.reason]),
            Record::Erasure(r) => parts.extend([r.author.as_str(), &r.record, &r.reason]),
        }
        parts.join("\n")
    }

    fn trim(&mut self) {
        fn t(s: &mut String) {
            let trimmed = s.trim();
            if trimmed.len() != s.len() {
                *s = trimmed.to_string();
            }
        }
        fn o(s: &mut Option<String>) {
            if let Some(s) = s {
                t(s)
            }
        }
        fn v(list: &mut [String]) {
            list.iter_mut().for_each(t)
        }
        match self {
            Record::Profile(r) => {
                t(&mut r.display_name);
                o(&mut r.name);
                o(&mut r.description);
                v(&mut r.members);
                o(&mut r.website);
            }
            Record::Innovation(r) => {
                t(&mut r.title);
                t(&mut r.summary);
                o(&mut r.description);
                v(&mut r.tags);
                v(&mut r.organisations);
                v(&mut r.links);
                o(&mut r.contact);
                if let Some(s) = &mut r.sroi {
                    o(&mut s.report_url);
                }
            }
            Record::Method(r) => {
                t(&mut r.title);
                t(&mut r.summary);
                o(&mut r.description);
                v(&mut r.tags);
                v(&mut r.links);
            }
            Record::Researcher(r) => {
                t(&mut r.name);
                t(&mut r.affiliation);
                v(&mut r.fields);
                o(&mut r.email);
                o(&mut r.phone);
                if let Some(Consent::Given(c)) = &mut r.consent {
                    t(&mut c.date);
                    o(&mut c.method);
                    o(&mut c.scope);
                }
            }
            Record::Event(r) => r.trim(t, o),
            Record::Indicator(r) => r.trim(),
            Record::Experience(r) => r.trim(),
            Record::Endorsement(r) => r.trim(),
            Record::Revocation(r) => r.trim(),
            Record::Erasure(r) => r.trim(),
        }
    }

    /// Every problem of the record, in the order of its fields (a form shows them all at once).
    pub fn problems(&self) -> Vec<SchemaError> {
        let kind = self.kind().as_str();
        let c = Check { kind };
        let mut out = Vec::new();
        let mut check = |r: Result<(), SchemaError>| {
            if let Err(e) = r {
                out.push(e);
            }
        };
        match self {
            Record::Profile(r) => {
                check(c.text("display_name", &r.display_name, 1, NAME_CHARS_MAX));
                if let Some(name) = &r.name {
                    check(validate_region_name(name).map_err(|e| {
                        SchemaError::at("name", Problem::RegionName, format!("profile name: {e}"))
                    }));
                }
                check(c.opt_text("description", &r.description, PROFILE_DESCRIPTION_CHARS_MAX));
                check(c.list("members", &r.members, 0, MEMBERS_MAX, NAME_CHARS_MAX));
                check(c.opt_url("website", &r.website));
            }
            Record::Innovation(r) => {
                check(c.text("title", &r.title, 1, TITLE_CHARS_MAX));
                check(c.text("summary", &r.summary, 1, SUMMARY_CHARS_MAX));
                check(c.opt_text("description", &r.description, DESCRIPTION_CHARS_MAX));
                check(c.list("tags", &r.tags, 0, TAGS_MAX, TAG_CHARS_MAX));
                check(c.list(
                    "organisations",
                    &r.organisations,
                    0,
                    ORGANISATIONS_MAX,
                    ORGANISATION_CHARS_MAX,
                ));
                check(c.urls("links", &r.links));
                check(c.opt_text("contact", &r.contact, CONTACT_CHARS_MAX));
                if let Some(sroi) = &r.sroi {
                    if !(sroi.ratio.is_finite() && sroi.ratio > 0.0) {
                        check(Err(c.fail(
                            "sroi.ratio",
                            Problem::Positive,
                            format!("sroi.ratio must be a number > 0, got {}", sroi.ratio),
                        )));
                    }
                    if let Some(year) = sroi.year
                        && !(SROI_YEAR_MIN..=SROI_YEAR_MAX).contains(&year)
                    {
                        check(Err(c.fail(
                            "sroi.year",
                            Problem::Year {
                                min: SROI_YEAR_MIN,
                                max: SROI_YEAR_MAX,
                                got: year,
                            },
                            format!(
                                "sroi.year must be between {SROI_YEAR_MIN} and {SROI_YEAR_MAX}, got {year}"
                            ),
                        )));
                    }
                    check(c.opt_url("sroi.report_url", &sroi.report_url));
                    check(crate::indicator::check_references(&c, &sroi.indicators));
                }
            }
            Record::Method(r) => {
                check(c.text("title", &r.title, 1, TITLE_CHARS_MAX));
                check(c.text("summary", &r.summary, 1, SUMMARY_CHARS_MAX));
                check(c.opt_text("description", &r.description, DESCRIPTION_CHARS_MAX));
                check(c.list("tags", &r.tags, 0, TAGS_MAX, TAG_CHARS_MAX));
                check(c.urls("links", &r.links));
            }
            Record::Researcher(r) => {
                match &r.consent {
                    Some(Consent::Bare(true)) => {}
                    Some(Consent::Given(consent)) if consent.given => {
                        if !is_date(&consent.date) {
                            check(Err(c.fail(
                                "consent.date",
                                Problem::Date,
                                format!(
                                    "consent.date must be a date YYYY-MM-DD ({CONSENT_YEAR_MIN}-{CONSENT_YEAR_MAX}), got {:?}",
                                    consent.date.chars().take(40).collect::<String>()
                                ),
                            )));
                        }
                        check(c.opt_text(
                            "consent.method",
                            &consent.method,
                            CONSENT_METHOD_CHARS_MAX,
                        ));
                        check(c.opt_text("consent.scope", &consent.scope, CONSENT_SCOPE_CHARS_MAX));
                    }
                    _ => {
                        check(Err(SchemaError::at(
                            "consent",
                            Problem::Consent,
                            NEEDS_CONSENT.to_string(),
                        )));
                    }
                }
                check(c.text("name", &r.name, 1, NAME_CHARS_MAX));
                check(c.text("affiliation", &r.affiliation, 1, NAME_CHARS_MAX));
                check(c.list("fields", &r.fields, 1, FIELDS_MAX, FIELD_CHARS_MAX));
                if let Some(email) = &r.email
                    && !is_email(email)
                {
                    check(Err(c.fail(
                        "email",
                        Problem::Email,
                        format!("email is not a valid address: {email:?}"),
                    )));
                }
                if let Some(phone) = &r.phone
                    && !is_phone(phone)
                {
                    check(Err(c.fail(
                        "phone",
                        Problem::Phone,
                        format!(
                            "phone must be 5-20 digits with spaces, - and ( ) and one leading + at most, got {phone:?}"
                        ),
                    )));
                }
            }
            Record::Event(r) => r.problems(&c).into_iter().for_each(check),
            Record::Indicator(r) => r.problems(&c, &mut out),
            Record::Experience(r) => r.problems(&mut out),
            Record::Endorsement(r) => r.problems(&mut out),
            Record::Revocation(r) => r.problems(&mut out),
            Record::Erasure(r) => r.problems(&mut out),
        }
        out
    }
}

fn parse<T: DeserializeOwned>(kind: Kind, text: &str) -> Result<T, SchemaError> {
    serde_json::from_str(text).map_err(|e| parse_error(kind, e))
}

/// A record's JSON that serde could not read, with the field it names.
pub(crate) fn parse_error(kind: Kind, e: serde_json::Error) -> SchemaError {
    {
        let msg = e.to_string();
        // serde_json reports a missing consent like any missing field; say what matters.
        if kind == Kind::Researcher && msg.contains("missing field `consent`") {
            return SchemaError::at("consent", Problem::Consent, NEEDS_CONSENT.to_string());
        }
        let message = format!("invalid {kind} record: {msg}");
        let named = |prefix: &str| {
            let rest = msg.strip_prefix(prefix)?;
            rest.split_once('`').map(|(name, _)| name.to_string())
        };
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof => SchemaError {
                message,
                field: None,
                problem: Problem::NotJson,
            },
            // serde_json names the field only in its message; a missing field is a required
            // one left out.
            _ => match (named("unknown field `"), named("missing field `")) {
                (Some(name), _) => SchemaError::at(&name, Problem::UnknownField, message),
                (None, Some(name)) => SchemaError::at(&name, Problem::Required, message),
                (None, None) => SchemaError::new(message),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header carries its kind as bincode's variant index, and the store keys carry
    /// `code()`: the two agree for every kind, so a new kind goes at the end of the enum and an
    /// entry signed by one version reads as the same kind on every other.
    #[test]
    fn a_kinds_wire_index_is_its_store_code() {
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(crate::codec::encode(&kind), vec![kind.code()], "{kind}");
            assert_eq!(usize::from(kind.code()), i, "{kind}: ALL is in code order");
            // A person types only the knowledge kinds.
            assert_eq!(
                kind.as_str().parse::<Kind>().is_ok(),
                Kind::KNOWLEDGE.contains(&kind),
                "{kind}"
            );
            assert_eq!(kind.is_membership(), !Kind::KNOWLEDGE.contains(&kind));
        }
        let e = "meeting".parse::<Kind>().unwrap_err().to_string();
        assert!(
            e.contains("profile, innovation, method, researcher, event, indicator or experience"),
            "{e}"
        );
    }

    fn err(kind: Kind, json: &str) -> String {
        Record::from_json(kind, json).unwrap_err().message
    }

    const SAMPLES: &[(Kind, &str)] = &[
        (
            Kind::Profile,
            r#"{"display_name":"Skåne","website":"https://example.se","members":["A"]}"#,
        ),
        (
            Kind::Innovation,
            r#"{"title":"t","summary":"s","tags":["x"],"sroi":{"ratio":3.2,"year":2011}}"#,
        ),
        (
            Kind::Method,
            r#"{"title":"t","summary":"s","links":["https://example.se"]}"#,
        ),
        (
            Kind::Researcher,
            r#"{"name":"A","affiliation":"B","fields":["c"],"email":"a@b.se","consent":{"given":true,"date":"2026-01-05"}}"#,
        ),
        (
            Kind::Experience,
            r#"{"about":"3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29/0123456789abcdef0123456789abcdef","text":"t","outcome":"tried","tags":["x"]}"#,
        ),
        (
            Kind::Event,
            r#"{"title":"t","start":"2027-03-12T09:00:00+01:00","end":"2027-03-12T12:00:00Z","place":"p"}"#,
        ),
    ];

    /// Not JSON, an unknown field and a missing one say so in their problem and field, so an
    /// interface can say them in its own language; the message stays serde's.
    #[test]
    fn unreadable_records_name_their_problem_and_field() {
        let one = |text: &str| Record::from_json(Kind::Method, text).unwrap_err();
        let e = one("title: x");
        assert_eq!((e.problem, e.field), (Problem::NotJson, None));
        let e = one(r#"{"titel":"T","summary":"S"}"#);
        assert_eq!(e.problem, Problem::UnknownField);
        assert_eq!(e.field.as_deref(), Some("titel"));
        assert!(e.message.contains("unknown field `titel`"), "{}", e.message);
        let e = one(r#"{"summary":"S"}"#);
        assert_eq!(e.problem, Problem::Required);
        assert_eq!(e.field.as_deref(), Some("title"));
        let e = one(r#"{"title":"T","summary":"S","tags":"a"}"#);
        assert_eq!((e.problem, e.field), (Problem::Other, None));
    }

    proptest::proptest! {
        /// Untrusted record JSON (a payload from a peer): arbitrary text and valid records with
        /// bytes changed never panic, and whatever is accepted round-trips unchanged.
    #[test]
        fn arbitrary_and_mutated_record_json_never_panics(
            text in ".{0,300}",
            which in 0usize..SAMPLES.len(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
        ) {
            let (kind, sample) = SAMPLES[which];
            let code = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u8;
            let mut arbitrary = vec![code];
            arbitrary.extend_from_slice(text.as_bytes());
            crate::fuzz::record(&arbitrary);
            let mut bytes = vec![code];
            bytes.extend_from_slice(sample.as_bytes());
            let i = at.index(bytes.len() - 1) + 1;
            bytes[i] = byte;
            crate::fuzz::record(&bytes);
        }
    }

    #[test]
    fn valid_records_of_every_kind() {
        let p = Record::from_json(
            Kind::Profile,
            r#"{"display_name":" Nätverket Social Ekonomi Skåne ","members":["Coompanion Skåne"],"website":"https://example.se"}"#,
        )
        .unwrap();
        assert_eq!(p.title(), "Nätverket Social Ekonomi Skåne");
        let i = Record::from_json(
            Kind::Innovation,
            r#"{"title":"Språkcafé","summary":"Föreningar möts","tags":["integration"],"sroi":{"ratio":3.2,"year":2011,"report_url":"http://x.se/r.pdf"},"links":["https://a.se/b?c=d"]}"#,
        )
        .unwrap();
        assert_eq!(i.tags(), ["integration"]);
        Record::from_json(
            Kind::Method,
            r#"{"title":"Lokal överenskommelse","summary":"Så gör man"}"#,
        )
        .unwrap();
        let r = Record::from_json(
            Kind::Researcher,
            r#"{"name":"Anna","affiliation":"Lunds universitet","fields":["social ekonomi"],"email":"anna@lu.se","phone":"+46 46-222 00 00","consent":true}"#,
        )
        .unwrap();
        assert!(r.search_text().contains("Lunds universitet"));
        // The stored JSON round-trips to the same record.
        assert_eq!(
            Record::from_json(Kind::Researcher, &r.to_json()).unwrap(),
            r
        );
    }

    #[test]
    fn every_rule_is_enforced() {
        assert_eq!(
            err(
                Kind::Researcher,
                r#"{"name":"A","affiliation":"B","fields":["c"]}"#
            ),
            NEEDS_CONSENT
        );
        assert_eq!(
            err(
                Kind::Researcher,
                r#"{"name":"A","affiliation":"B","fields":["c"],"consent":false}"#
            ),
            NEEDS_CONSENT
        );
        // The consent object: given must be true, a real date, known fields, capped texts.
        let consent = |c: &str| {
            err(
                Kind::Researcher,
                &format!(r#"{{"name":"A","affiliation":"B","fields":["c"],"consent":{c}}}"#),
            )
        };
        assert_eq!(
            consent(r#"{"given":false,"date":"2026-01-05"}"#),
            NEEDS_CONSENT
        );
        assert!(consent(r#"{"given":true}"#).contains("missing field `date`"));
        for bad in [
            "2026-02-30",
            "2025-02-29",
            "26-01-05",
            "2026-1-5",
            "1969-12-31",
            "2026-13-01",
        ] {
            assert!(
                consent(&format!(r#"{{"given":true,"date":"{bad}"}}"#)).contains("consent.date"),
                "{bad}"
            );
        }
        assert!(
            consent(r#"{"given":true,"date":"2026-01-05","by":"x"}"#)
                .contains("unknown field `by`")
        );
        assert!(consent(r#""ja""#).contains("consent must be an object"));
        let long = "x".repeat(CONSENT_SCOPE_CHARS_MAX + 1);
        assert!(
            consent(&format!(
                r#"{{"given":true,"date":"2024-02-29","scope":"{long}"}}"#
            ))
            .contains("consent.scope")
        );
        let method = "x".repeat(CONSENT_METHOD_CHARS_MAX + 1);
        assert!(
            consent(&format!(
                r#"{{"given":true,"date":"2024-02-29","method":"{method}"}}"#
            ))
            .contains("consent.method")
        );
        let ok = Record::from_json(
            Kind::Researcher,
            r#"{"name":"A","affiliation":"B","fields":["c"],"consent":{"given":true,"date":" 2024-02-29 ","method":"blankett","scope":"listas i kunskapsbanken"}}"#,
        )
        .unwrap();
        let Record::Researcher(r) = &ok else { panic!() };
        assert_eq!(
            r.consent,
            Some(Consent::Given(ConsentDetails {
                given: true,
                date: "2024-02-29".into(),
                method: Some("blankett".into()),
                scope: Some("listas i kunskapsbanken".into()),
            }))
        );
        assert_eq!(
            Record::from_json(Kind::Researcher, &ok.to_json()).unwrap(),
            ok
        );
        assert!(
            err(
                Kind::Researcher,
                r#"{"name":"A","affiliation":"B","fields":[],"consent":true}"#
            )
            .contains("fields must have 1-20")
        );
        assert!(
            err(
                Kind::Researcher,
                r#"{"name":"A","affiliation":"B","fields":["c"],"email":"nope","consent":true}"#
            )
            .contains("email")
        );
        assert!(
            err(
                Kind::Researcher,
                r#"{"name":"A","affiliation":"B","fields":["c"],"phone":"call me","consent":true}"#
            )
            .contains("phone")
        );
        assert!(
            err(
                Kind::Method,
                r#"{"title":"x","summary":"y","colour":"red"}"#
            )
            .contains("unknown field `colour`")
        );
        assert!(
            err(Kind::Method, r#"{"title":"   ","summary":"y"}"#).contains("title is required")
        );
        assert!(err(Kind::Method, r#"{"summary":"y"}"#).contains("missing field `title`"));
        assert!(
            err(Kind::Method, r#"{"title":"x","summary":"y""#).starts_with("invalid method record")
        );
        let long = "å".repeat(201);
        assert!(
            err(
                Kind::Innovation,
                &format!(r#"{{"title":"{long}","summary":"s"}}"#)
            )
            .contains("title must be 1-200 characters, got 201")
        );
        // 200 multi-byte characters are within the limit: limits count characters.
        let ok = "å".repeat(200);
        Record::from_json(
            Kind::Innovation,
            &format!(r#"{{"title":"{ok}","summary":"s"}}"#),
        )
        .unwrap();
        assert!(
            err(
                Kind::Innovation,
                r#"{"title":"t","summary":"s","links":["ftp://x.se"]}"#
            )
            .contains("links[0] must be an http or https URL")
        );
        assert!(
            err(
                Kind::Innovation,
                r#"{"title":"t","summary":"s","sroi":{"ratio":0}}"#
            )
            .contains("sroi.ratio must be a number > 0")
        );
        assert!(
            err(
                Kind::Innovation,
                r#"{"title":"t","summary":"s","sroi":{"ratio":2,"year":12}}"#
            )
            .contains("sroi.year")
        );
        assert!(
            err(
                Kind::Innovation,
                r#"{"title":"t","summary":"s","sroi":{"year":2012}}"#
            )
            .contains("missing field `ratio`")
        );
        let tags: Vec<String> = (0..21).map(|i| format!("\"t{i}\"")).collect();
        assert!(
            err(
                Kind::Innovation,
                &format!(
                    r#"{{"title":"t","summary":"s","tags":[{}]}}"#,
                    tags.join(",")
                )
            )
            .contains("tags must have 0-20 entries, got 21")
        );
        assert!(
            err(
                Kind::Innovation,
                r#"{"title":"t","summary":"s","tags":[""]}"#
            )
            .contains("tags[0] is required")
        );
        assert!(
            err(
                Kind::Profile,
                r#"{"display_name":"x","website":"javascript:alert(1)"}"#
            )
            .contains("website")
        );
        assert!(
            err(Kind::Profile, r#"{"display_name":"x","name":"Skåne"}"#).contains("profile name")
        );
        assert!(err(Kind::Method, "[]").starts_with("invalid method record"));
    }

    #[test]
    fn url_and_email_rules() {
        for good in [
            "http://a.se",
            "https://a.se/x?y=z#w",
            "https://user@host:8080/p",
            "http://[::1]:80/",
        ] {
            assert!(is_http_url(good), "{good}");
        }
        for bad in [
            "",
            "a.se",
            "https://",
            "https:///path",
            "mailto:a@b.se",
            "https://a .se",
            "https://a.se:x/",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
        for good in [
            "a@b.se",
            "förnamn.efternamn@universitet.se",
            "first+tag@lu.se",
            "o'brien@example.org",
            // Valid addr-spec: the page must percent-encode it in mailto (web.rs test).
            "a?bcc=spy%40evil.se&x=@lu.se",
        ] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "",
            "a@",
            "@b.se",
            "a@b",
            "a@@b.se",
            "a b@c.se",
            "a@-b.se",
            ".a@b.se",
            "a.@b.se",
            "a..b@c.se",
            "\"quoted\"@b.se",
            "a(comment)@b.se",
            "a@[127.0.0.1]",
            "a@b..se",
            "a@b.123",
            "a\n@b.se",
            "a,b@c.se",
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
        for good in [
            "+46 46-222 00 00",
            "046-222 00 00",
            "(08) 123 45",
            "0701234567",
        ] {
            assert!(is_phone(good), "{good}");
        }
        for bad in [
            "",
            "+",
            "123",
            "46+46",
            "++46 70 123 45 67",
            "070 123 45 67 ext 2",
            "1234567890123456789012",
            "+46\u{a0}70",
        ] {
            assert!(!is_phone(bad), "{bad:?}");
        }
    }

    #[test]
    fn kind_and_region_name_parsing() {
        assert_eq!("method".parse::<Kind>(), Ok(Kind::Method));
        assert!("Method".parse::<Kind>().is_err());
        let said = "x".parse::<Kind>().unwrap_err().to_string();
        for kind in Kind::KNOWLEDGE {
            assert!(said.contains(kind.as_str()), "{said}");
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
        }
        assert!(!said.contains("endorsement"), "{said}");
        assert!(
            said.ends_with(&format!(
                " or {}",
                Kind::KNOWLEDGE[Kind::KNOWLEDGE.len() - 1]
            )),
            "{said}"
        );
        let codes: std::collections::BTreeSet<u8> = Kind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), Kind::ALL.len());
        assert_eq!(Kind::Event.code(), 4);
        assert!(validate_region_name("skane-1").is_ok());
        assert!(validate_region_name("").is_err());
        assert!(validate_region_name(&"a".repeat(33)).is_err());
        assert!(validate_region_name("Skåne").is_err());
    }
}
