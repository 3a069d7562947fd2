//! The `experience` kind: one region answering another region's record (or its own) with what
//! it learnt from it. The answer is signed by the answering region in its own log and names
//! the answered record by [`RecordRef`]; the protocol never sees the answered record, so an
//! answer's title is its own text's first line ([`Experience::title`]).
//!
//! `about` and `outcome` are read as text first, so a bad one is said beside its field
//! together with every other problem of the record (a form shows them all at once).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::reference::RecordRef;
use crate::schema::{Check, Problem, SchemaError};
use limits::*;

/// The limits of an experience, named.
pub mod limits {
    /// The answer's text, in characters.
    pub const EXPERIENCE_TEXT_CHARS_MAX: usize = 10_000;
    /// The title a list shows: the text's first line, cut at this many characters.
    pub const EXPERIENCE_TITLE_CHARS: usize = 80;
}

/// What came of the answered record in the answering region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Tried as it was.
    Tried,
    /// Tried, changed to fit.
    Adapted,
    /// Planned, not yet tried.
    Planned,
    /// Looked at and found not to fit.
    NotSuitable,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Tried,
        Outcome::Adapted,
        Outcome::Planned,
        Outcome::NotSuitable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Tried => "tried",
            Outcome::Adapted => "adapted",
            Outcome::Planned => "planned",
            Outcome::NotSuitable => "not-suitable",
        }
    }

    /// `tried, adapted, planned or not-suitable`, from [`Outcome::ALL`].
    pub fn listed() -> String {
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s).ok_or(())
    }
}

/// An answer to a record: what the answering region did with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experience {
    /// The answered record, of any kind, in any region's log (the answering region's too).
    pub about: RecordRef,
    pub text: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// An experience's title from its text: the first line, cut at [`EXPERIENCE_TITLE_CHARS`]
/// characters (pages that hold the record's JSON use this too).
pub fn title_of(text: &str) -> &str {
    let first = text.trim_start().lines().next().unwrap_or("").trim_end();
    match first.char_indices().nth(EXPERIENCE_TITLE_CHARS) {
        Some((cut, _)) => &first[..cut],
        None => first,
    }
}

/// An experience as its JSON says it, before `about` and `outcome` are read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    about: String,
    text: String,
    outcome: String,
    #[serde(default)]
    links: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

impl Experience {
    /// The line a list shows: the text's first line, cut at [`EXPERIENCE_TITLE_CHARS`]
    /// characters (the answered record's title is not the answer's to carry: that record may
    /// be deleted, and its words must then be nowhere).
    pub fn title(&self) -> &str {
        title_of(&self.text)
    }

    /// The text, then the tags, for the full-text index.
    pub fn search_text(&self) -> String {
        let mut parts = vec![self.text.as_str()];
        parts.extend(self.tags.iter().map(String::as_str));
        parts.join("\n")
    }

    pub(crate) fn trim(&mut self) {
        for s in std::iter::once(&mut self.text)
            .chain(self.links.iter_mut())
            .chain(self.tags.iter_mut())
        {
            let trimmed = s.trim();
            if trimmed.len() != s.len() {
                *s = trimmed.to_string();
            }
        }
    }

    /// The problems of the fields every experience has once read (text, links, tags).
    pub(crate) fn problems(&self, out: &mut Vec<SchemaError>) {
        let c = Check { kind: "experience" };
        let mut check = |r: Result<(), SchemaError>| {
            if let Err(e) = r {
                out.push(e);
            }
        };
        check(c.text("text", &self.text, 1, EXPERIENCE_TEXT_CHARS_MAX));
        check(c.urls("links", &self.links));
        check(c.list(
            "tags",
            &self.tags,
            0,
            crate::schema::limits::TAGS_MAX,
            crate::schema::limits::TAG_CHARS_MAX,
        ));
    }
}

/// An experience from its JSON, with every problem at once in the order of its fields.
pub(crate) fn from_json_all(text: &str) -> Result<Experience, Vec<SchemaError>> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| {
        vec![crate::record::parse_error(
            crate::record::Kind::Experience,
            e,
        )]
    })?;
    let c = Check { kind: "experience" };
    let mut problems = Vec::new();
    let about_text = raw.about.trim();
    let about = match about_text.parse::<RecordRef>() {
        Ok(r) => Some(r),
        Err(_) => {
            problems.push(c.fail(
                "about",
                Problem::Reference,
                format!(
                    "about must be NODEID/RECORD_ID (64 and 32 lowercase hex characters), got {:?}",
                    about_text.chars().take(120).collect::<String>()
                ),
            ));
            None
        }
    };
    let outcome_text = raw.outcome.trim();
    let outcome = match outcome_text.parse::<Outcome>() {
        Ok(o) => Some(o),
        Err(()) => {
            problems.push(c.fail(
                "outcome",
                Problem::Choice {
                    allowed: Outcome::ALL.iter().map(|o| o.as_str()).collect(),
                },
                format!(
                    "outcome must be {}, got {:?}",
                    Outcome::listed(),
                    outcome_text.chars().take(40).collect::<String>()
                ),
            ));
            None
        }
    };
    let mut experience = Experience {
        // Placeholders while a problem is said; never returned then.
        about: about.unwrap_or(RecordRef {
            author: crate::keys::NodeId([0; 32]),
            record: crate::entry::RecordId([0; 16]),
        }),
        text: raw.text,
        outcome: outcome.unwrap_or(Outcome::Tried),
        links: raw.links,
        tags: raw.tags,
    };
    experience.trim();
    experience.problems(&mut problems);
    // In the order of the fields: about, text, outcome, links, tags.
    let order = |e: &SchemaError| {
        let f = e.field.as_deref().unwrap_or("");
        let f = f.split('[').next().unwrap_or(f);
        ["about", "text", "outcome", "links", "tags"]
            .iter()
            .position(|x| *x == f)
            .unwrap_or(usize::MAX)
    };
    problems.sort_by_key(order);
    if problems.is_empty() {
        Ok(experience)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::record::{Kind, Record};

    use super::*;

    const ABOUT: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29/0123456789abcdef0123456789abcdef";

    fn json(about: &str, text: &str, outcome: &str, extra: &str) -> String {
        let text = serde_json::to_string(text).unwrap();
        format!(r#"{{"about":"{about}","text":{text},"outcome":"{outcome}"{extra}}}"#)
    }

    fn all(text: &str) -> Vec<SchemaError> {
        Record::from_json_all(Kind::Experience, text).unwrap_err()
    }

    #[test]
    fn a_valid_experience_reads_back_the_same_and_is_titled_by_its_first_line() {
        let r = Record::from_json(
            Kind::Experience,
            &json(
                ABOUT,
                "  Vi provade språkcaféet i Falun\nDet gick bra.  ",
                "adapted",
                r#","links":[" https://example.se "],"tags":["integration"]"#,
            ),
        )
        .unwrap();
        let Record::Experience(e) = &r else { panic!() };
        assert_eq!(e.about.to_string(), ABOUT);
        assert_eq!(e.outcome, Outcome::Adapted);
        assert_eq!(e.links, ["https://example.se"]);
        assert_eq!(r.title(), "Vi provade språkcaféet i Falun");
        assert_eq!(r.tags(), ["integration"]);
        assert!(r.search_text().contains("Det gick bra."));
        assert_eq!(
            Record::from_json(Kind::Experience, &r.to_json()).unwrap(),
            r
        );
        // Every outcome reads.
        for o in Outcome::ALL {
            Record::from_json(Kind::Experience, &json(ABOUT, "t", o.as_str(), "")).unwrap();
        }
        // The title is cut at EXPERIENCE_TITLE_CHARS characters (not bytes).
        let long = "å".repeat(EXPERIENCE_TITLE_CHARS + 5);
        let r = Record::from_json(Kind::Experience, &json(ABOUT, &long, "tried", "")).unwrap();
        assert_eq!(r.title().chars().count(), EXPERIENCE_TITLE_CHARS);
    }

    #[test]
    fn every_rule_of_an_experience_is_enforced_and_said_at_once() {
        // A bad reference names its field and the form.
        for bad in [
            "",
            "abc",
            "3b6a/0123",
            &format!("{ABOUT}x"),
            &ABOUT.to_uppercase(),
        ] {
            let e = &all(&json(bad, "t", "tried", ""))[0];
            assert_eq!(e.field.as_deref(), Some("about"), "{bad}");
            assert_eq!(e.problem, Problem::Reference);
            assert!(
                e.message.contains("about must be NODEID/RECORD_ID"),
                "{}",
                e.message
            );
        }
        // A bad outcome lists the four.
        let e = &all(&json(ABOUT, "t", "done", ""))[0];
        assert_eq!(e.field.as_deref(), Some("outcome"));
        assert!(
            e.message
                .contains("outcome must be tried, adapted, planned or not-suitable, got \"done\""),
            "{}",
            e.message
        );
        // The text: required, capped at EXPERIENCE_TEXT_CHARS_MAX characters, no control chars.
        let e = &all(&json(ABOUT, "  ", "tried", ""))[0];
        assert_eq!(
            (e.field.as_deref(), &e.problem),
            (Some("text"), &Problem::Required)
        );
        let at_cap = "ö".repeat(EXPERIENCE_TEXT_CHARS_MAX);
        Record::from_json(Kind::Experience, &json(ABOUT, &at_cap, "tried", "")).unwrap();
        let over = "ö".repeat(EXPERIENCE_TEXT_CHARS_MAX + 1);
        let e = &all(&json(ABOUT, &over, "tried", ""))[0];
        assert!(
            e.message
                .contains("text must be 1-10000 characters, got 10001"),
            "{}",
            e.message
        );
        let e = &all(&json(ABOUT, "a\u{7}b", "tried", ""))[0];
        assert_eq!(e.problem, Problem::Control);
        // Links: http or https, at most LINKS_MAX.
        let e = &all(&json(ABOUT, "t", "tried", r#","links":["ftp://x.se"]"#))[0];
        assert!(
            e.message.contains("links[0] must be an http or https URL"),
            "{}",
            e.message
        );
        let many: Vec<String> = (0..=crate::schema::limits::LINKS_MAX)
            .map(|i| format!("\"https://x.se/{i}\""))
            .collect();
        let e = &all(&json(
            ABOUT,
            "t",
            "tried",
            &format!(r#","links":[{}]"#, many.join(",")),
        ))[0];
        assert!(
            e.message
                .contains("links must have at most 20 entries, got 21"),
            "{}",
            e.message
        );
        // Tags: at most TAGS_MAX, none empty.
        let e = &all(&json(ABOUT, "t", "tried", r#","tags":[""]"#))[0];
        assert!(e.message.contains("tags[0] is required"), "{}", e.message);
        let tags: Vec<String> = (0..21).map(|i| format!("\"t{i}\"")).collect();
        let e = &all(&json(
            ABOUT,
            "t",
            "tried",
            &format!(r#","tags":[{}]"#, tags.join(",")),
        ))[0];
        assert!(
            e.message.contains("tags must have 0-20 entries, got 21"),
            "{}",
            e.message
        );
        // Unknown and missing fields, and not JSON, as for every kind.
        let e = &all(&json(ABOUT, "t", "tried", r#","title":"x""#))[0];
        assert_eq!(
            (e.field.as_deref(), &e.problem),
            (Some("title"), &Problem::UnknownField)
        );
        let e = &all(r#"{"text":"t","outcome":"tried"}"#)[0];
        assert_eq!(
            (e.field.as_deref(), &e.problem),
            (Some("about"), &Problem::Required)
        );
        assert_eq!(all("about: x")[0].problem, Problem::NotJson);
        // Everything wrong at once, in the order of the fields.
        let errors = all(&json("x", "", "done", r#","links":["nope"],"tags":[""]"#));
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_deref().unwrap()).collect();
        assert_eq!(fields, ["about", "text", "outcome", "links[0]", "tags[0]"]);
    }

    /// An answer to a record of its own region is allowed: the protocol cannot tell (it does
    /// not know who signs), and a region reporting how its own work went elsewhere in it is
    /// an answer like any other.
    #[test]
    fn an_answer_may_name_any_record_of_any_author() {
        let other = "0000000000000000000000000000000000000000000000000000000000000000/ffffffffffffffffffffffffffffffff";
        Record::from_json(Kind::Experience, &json(other, "t", "planned", "")).unwrap();
    }
}
