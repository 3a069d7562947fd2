//! The record fields as people read them: one table per kind, built from the same limits the
//! validation uses ([`crate::record::limits`]). `docs/records.md` is generated from it, and a
//! test checks the file is up to date and that every field listed is one the schema takes.

use crate::experience::limits::*;
use crate::record::Kind;
use crate::record::limits::*;

/// One field of a kind: its JSON name, whether it is required, the rule, and an example value
/// (JSON) that the schema accepts.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub required: bool,
    pub rule: String,
    pub example: &'static str,
}

fn f(name: &'static str, required: bool, rule: String, example: &'static str) -> Field {
    Field {
        name,
        required,
        rule,
        example,
    }
}

fn text(min: usize, max: usize) -> String {
    if min == 0 {
        format!("text, at most {max} characters")
    } else {
        format!("text, {min}-{max} characters")
    }
}

fn list(max_items: usize, max_chars: usize) -> String {
    format!("list of at most {max_items} texts of at most {max_chars} characters")
}

/// The fields of `kind`, in the order the schema lists them.
pub fn fields(kind: Kind) -> Vec<Field> {
    let urls = format!("list of at most {LINKS_MAX} http or https URLs");
    match kind {
        Kind::Profile => vec![
            f("display_name", true, text(1, NAME_CHARS_MAX), r#""Nätverket Social Ekonomi Skåne""#),
            f("name", false, format!("the node's short name (1-{REGION_NAME_CHARS_MAX} of a-z, 0-9, -); filled in by the node"), r#""skane""#),
            f("description", false, text(0, PROFILE_DESCRIPTION_CHARS_MAX), r#""Nätverk för idéburna organisationer""#),
            f("members", false, list(MEMBERS_MAX, ORGANISATION_CHARS_MAX), r#"["Coompanion Skåne"]"#),
            f("website", false, "an http or https URL; shown as the region's contact".into(), r#""https://example.se""#),
        ],
        Kind::Innovation => vec![
            f("title", true, text(1, TITLE_CHARS_MAX), r#""Språkcafé i föreningen""#),
            f("summary", true, text(1, SUMMARY_CHARS_MAX), r#""Nyanlända möter föreningslivet""#),
            f("description", false, text(0, DESCRIPTION_CHARS_MAX), r#""Så gick det till""#),
            f("tags", false, list(TAGS_MAX, TAG_CHARS_MAX), r#"["integration"]"#),
            f("organisations", false, list(ORGANISATIONS_MAX, ORGANISATION_CHARS_MAX), r#"["Studieförbundet"]"#),
            f("links", false, urls.clone(), r#"["https://example.se/rapport"]"#),
            f("contact", false, text(0, CONTACT_CHARS_MAX), r#""Anna, 070-000 00 00""#),
            f("sroi", false, format!("object: `ratio` (required, a number above 0), `year` ({SROI_YEAR_MIN}-{SROI_YEAR_MAX}), `report_url` (http or https), `indicators` (the `indicator` records the figure used, any region's: at most {SROI_INDICATORS_MAX} `NODEID/RECORD_ID` references, none twice)"), r#"{"ratio":3.2,"year":2011,"indicators":["3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29/0123456789abcdef0123456789abcdef"]}"#),
        ],
        Kind::Method => vec![
            f("title", true, text(1, TITLE_CHARS_MAX), r#""Lokal överenskommelse""#),
            f("summary", true, text(1, SUMMARY_CHARS_MAX), r#""Så skrivs en överenskommelse""#),
            f("description", false, text(0, DESCRIPTION_CHARS_MAX), r#""Steg för steg""#),
            f("tags", false, list(TAGS_MAX, TAG_CHARS_MAX), r#"["samverkan"]"#),
            f("links", false, urls, r#"["https://example.se"]"#),
        ],
        Kind::Researcher => vec![
            f("name", true, text(1, NAME_CHARS_MAX), r#""Anna Forskare""#),
            f("affiliation", true, text(1, NAME_CHARS_MAX), r#""Lunds universitet""#),
            f("fields", true, format!("list of 1-{FIELDS_MAX} texts of 1-{FIELD_CHARS_MAX} characters"), r#"["social ekonomi"]"#),
            f("email", false, format!("an e-mail address (addr-spec, dot-atom form, at most {EMAIL_CHARS_MAX} characters); shown only on the record's own page"), r#""anna@example.se""#),
            f("phone", false, "5-20 digits with spaces, - and ( ), one leading + at most; shown only on the record's own page".into(), r#""+46 46-222 00 00""#),
            f("consent", true, format!("object: `given` (must be true), `date` (YYYY-MM-DD, {CONSENT_YEAR_MIN}-{CONSENT_YEAR_MAX}), `method` (how, at most {CONSENT_METHOD_CHARS_MAX} characters), `scope` (for what, at most {CONSENT_SCOPE_CHARS_MAX}; absent: being listed in the knowledge bank). Records with the earlier bare `true` stay readable (\"samtycke utan detaljer\")"), r#"{"given":true,"date":"2026-11-02","method":"e-post"}"#),
        ],
        Kind::Event => vec![
            f("title", true, text(1, TITLE_CHARS_MAX), r#""Regional träff om Överenskommelsen""#),
            f("start", true, format!("RFC 3339 time with an offset (`+01:00`, `+02:00` or `Z`), seconds included; its date in the years {EVENT_YEAR_MIN}-{EVENT_YEAR_MAX}"), r#""2027-03-12T09:00:00+01:00""#),
            f("end", false, "as `start`, not before it; absent: the event lasts to the end of its start's day".into(), r#""2027-03-12T16:00:00+01:00""#),
            f("place", false, format!("{}; `place` or `online_url` (or both) is required", text(0, EVENT_PLACE_CHARS_MAX)), r#""Folkets hus, Storgatan 1, Lund""#),
            f("online_url", false, "an http or https URL to join online".into(), r#""https://exempel.se/mote""#),
            f("organiser", false, text(0, EVENT_ORGANISER_CHARS_MAX), r#""Coompanion Skåne""#),
            f("registration_url", false, "an http or https URL to register".into(), r#""https://exempel.se/anmalan""#),
            f("description", false, text(0, DESCRIPTION_CHARS_MAX), r#""Program och fika""#),
            f("tags", false, list(TAGS_MAX, TAG_CHARS_MAX), r#"["överenskommelsen"]"#),
        ],
        Kind::Indicator => vec![
            f("outcome", true, format!("{}; the proxy bank (`/proxybank`) groups by it (trimmed, case-folded, spaces collapsed)", text(1, OUTCOME_CHARS_MAX)), r#""Fler personer i arbete""#),
            f("indicator", true, format!("{}; what lists show as the record's title", text(1, INDICATOR_CHARS_MAX)), r#""Antal deltagare med anställning efter sex månader""#),
            f("proxy", true, text(1, PROXY_CHARS_MAX), r#""Minskat försörjningsstöd per person och år (exempelvärde)""#),
            f("value_sek", true, format!("a number from 0 to {} (kronor, at the price level of `year`)", VALUE_SEK_MAX as u64), "120000"),
            f("unit", true, text(1, UNIT_CHARS_MAX), r#""per person och år""#),
            f("year", true, format!("the price year of `value_sek`, {INDICATOR_YEAR_MIN}-{INDICATOR_YEAR_MAX}"), "2024"),
            f("source", true, format!("{}: a reference text, or an http or https URL (a text that looks like an address must be one)", text(1, SOURCE_CHARS_MAX)), r#""https://example.se/kalla""#),
            f("deadweight", false, "a fraction from 0 to 1: what would have happened anyway".into(), "0.3"),
            f("attribution", false, "a fraction from 0 to 1: the share due to others".into(), "0.2"),
            f("displacement", false, "a fraction from 0 to 1: the share that moved a problem elsewhere".into(), "0"),
            f("drop_off", false, "a fraction from 0 to 1: how much the effect falls each year after the first".into(), "0.1"),
            f("tags", false, list(TAGS_MAX, TAG_CHARS_MAX), r#"["arbete"]"#),
        ],
        Kind::Experience => vec![
            f("about", true, "the answered record, `NODEID/RECORD_ID` (its author's 64 and its id's 32 lowercase hex characters), of any kind, in any region's log; it may be one this node has not received yet, or one deleted since".into(), r#""3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29/0123456789abcdef0123456789abcdef""#),
            f("text", true, format!("{}; lists show its first line, cut at {EXPERIENCE_TITLE_CHARS} characters", text(1, EXPERIENCE_TEXT_CHARS_MAX)), r#""Vi provade språkcaféet i två föreningar (exempel).""#),
            f("outcome", true, format!("one of {}", crate::experience::Outcome::ALL.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")), r#""adapted""#),
            f("links", false, format!("list of at most {LINKS_MAX} http or https URLs"), r#"["https://example.se/erfarenhet"]"#),
            f("tags", false, list(TAGS_MAX, TAG_CHARS_MAX), r#"["integration"]"#),
        ],
        Kind::Endorsement => vec![
            f("node", true, "the endorsed key: a node id (64 lowercase hex characters of a usable key)".into(), r#""3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29""#),
            f("name", true, format!("the region's name in the network (1-{REGION_NAME_CHARS_MAX} of a-z, 0-9, -); every endorsement of a key must give the same one"), r#""jamtland""#),
            f("replaces", false, "a node id: the lost, leaked or frozen key whose region the endorsed key takes over; needs `upto`. An endorsement in a key's own log that replaces that key is a rotation: its `upto` is its own seq".into(), r#""d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a""#),
            f("upto", false, "with `replaces` only, and then required: the replaced key's last seq that stays (its head as the endorsing region held it)".into(), "12"),
        ],
        Kind::Revocation => vec![
            f("node", true, "the key of the member whose membership should end (a node id)".into(), r#""3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29""#),
            f("reason", true, text(1, crate::membership::limits::REASON_CHARS_MAX), r#""Plattformen har lagts ned""#),
            f("upto", true, "the revoked key's last seq that stays (its head as the revoking region held it)".into(), "40"),
        ],
        Kind::Erasure => vec![
            f("author", true, "the key that published the record to erase (a node id)".into(), r#""3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29""#),
            f("record", true, "the record's id (32 lowercase hex characters)".into(), r#""0123456789abcdef0123456789abcdef""#),
            f("reason", true, format!("{}; shown with the order to every region, so no personal data", text(1, crate::membership::limits::REASON_CHARS_MAX)), r#""Personen har begärt radering och regionen finns inte längre""#),
        ],
    }
}

/// Fields of which a record of `kind` needs at least one (each listed as not required alone).
pub fn one_of(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Event => &["place", "online_url"],
        _ => &[],
    }
}

/// `docs/records.md`, as generated from [`fields`].
pub fn markdown() -> String {
    let mut out = String::from(
        "# Record kinds and their fields\n\n\
         Generated from `protocol/src/fields.rs` (the limits the validation uses); a test keeps\n\
         this file up to date: `SPINDEL_WRITE_DOCS=1 cargo test -p spindel-protocol records_doc`\n\
         writes it again. Unknown fields are an error; strings are trimmed UTF-8; limits count\n\
         characters; a record is at most 64 KiB encoded. `publish --file` takes one record as a\n\
         JSON object, `import --file` one per line (a line may add `\"record_id\"` to publish a\n\
         new version of an own record). `endorsement` and `revocation` are membership acts,\n\
         published with `spindel endorse` and `spindel revoke` (docs/protocol.md, \"Membership\").\n",
    );
    for kind in Kind::ALL {
        out.push_str(&format!(
            "\n## `{}`\n\n| field | required | rule |\n|---|---|---|\n",
            kind.as_str()
        ));
        let all = fields(kind);
        for field in &all {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                field.name,
                if field.required {
                    "yes"
                } else if one_of(kind).contains(&field.name) {
                    "one of these"
                } else {
                    ""
                },
                field.rule
            ));
        }
        out.push_str(&format!("\nExample:\n\n```json\n{}\n```\n", example(&all)));
    }
    out
}

/// A record of every field's example, as one JSON line.
fn example(all: &[Field]) -> String {
    let body: Vec<String> = all
        .iter()
        .map(|f| format!("\"{}\":{}", f.name, f.example))
        .collect();
    format!("{{{}}}", body.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    #[test]
    fn records_doc_is_generated_from_the_schema() {
        for kind in Kind::ALL {
            let all = fields(kind);
            // Every field listed is one the schema takes (unknown fields are refused), with
            // its example; the required ones alone make a valid record.
            Record::from_json(kind, &example(&all))
                .unwrap_or_else(|e| panic!("{kind:?} example: {e:?}"));
            // ... with the first of the fields one of which is required.
            let group = one_of(kind);
            let required: Vec<Field> = all
                .iter()
                .filter(|f| f.required || group.first() == Some(&f.name))
                .cloned()
                .collect();
            Record::from_json(kind, &example(&required))
                .unwrap_or_else(|e| panic!("{kind:?} required only: {e:?}"));
            for f in &required {
                let without: Vec<Field> = required
                    .iter()
                    .filter(|g| g.name != f.name)
                    .cloned()
                    .collect();
                assert!(
                    Record::from_json(kind, &example(&without)).is_err(),
                    "{kind:?}: {} is listed as required but is not",
                    f.name
                );
            }
            for name in group {
                let one: Vec<Field> = all
                    .iter()
                    .filter(|f| f.required || f.name == *name)
                    .cloned()
                    .collect();
                Record::from_json(kind, &example(&one))
                    .unwrap_or_else(|e| panic!("{kind:?} with {name} alone: {e:?}"));
            }
            let none: Vec<Field> = all.iter().filter(|f| f.required).cloned().collect();
            assert!(
                group.is_empty() || Record::from_json(kind, &example(&none)).is_err(),
                "{kind:?}: one of {group:?} is listed as required but is not"
            );
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/records.md");
        let generated = markdown();
        if std::env::var_os("SPINDEL_WRITE_DOCS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "docs/records.md is out of date: run SPINDEL_WRITE_DOCS=1 cargo test -p spindel-protocol records_doc"
        );
    }
}
