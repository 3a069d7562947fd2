//! The editor's forms: which fields each kind has (their Swedish labels and help are
//! `crate::words::fields`'), how a submitted form becomes a record's JSON, and how a record
//! fills a form again for an edit. Validation is the protocol's ([`Record::from_json`]); this
//! module only puts its [`SchemaError`], said in Swedish, beside the field it names. No I/O.
//!
//! Field names are the record's JSON names (`title`, `tags`), nested ones with a dot
//! (`sroi.ratio`, `consent.date`); a list is one item a line (docs/interface.md, the editor).

use std::collections::HashMap;

use serde_json::{Map, Value};
use spindel_protocol::record::{Kind, Problem, Record, SchemaError};

use crate::words::fields as sv;

/// How a field is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Text,
    /// Several lines of prose.
    Area,
    /// One item a line.
    Lines,
    /// Records picked from a list (the editor shows a checkbox each, named `FIELD:REFERENCE`;
    /// [`gather_picks`] makes them one reference a line, as a CSV cell has them).
    Picks,
    Url,
    Email,
    Tel,
    Date,
    /// Stockholm's wall-clock time (`datetime-local`), stored as RFC 3339 with its offset.
    DateTime,
    Number,
    Checkbox,
    /// One of a few values: (JSON value, Swedish label).
    Choice(&'static [(&'static str, &'static str)]),
}

/// One field of a form.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The record's JSON name (nested with a dot).
    pub name: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub input: Input,
    pub required: bool,
}

const fn f(name: &'static str, said: sv::Said, input: Input, required: bool) -> Field {
    Field {
        name,
        label: said.0,
        help: said.1,
        input,
        required,
    }
}

const PROFILE: &[Field] = &[
    f("display_name", sv::DISPLAY_NAME, Input::Text, true),
    f("description", sv::PROFILE_DESCRIPTION, Input::Area, false),
    f("members", sv::MEMBERS, Input::Lines, false),
    f("website", sv::WEBSITE, Input::Url, false),
];

const INNOVATION: &[Field] = &[
    f("title", sv::TITLE, Input::Text, true),
    f("summary", sv::INNOVATION_SUMMARY, Input::Area, true),
    f(
        "description",
        sv::INNOVATION_DESCRIPTION,
        Input::Area,
        false,
    ),
    f("tags", sv::INNOVATION_TAGS, Input::Lines, false),
    f("organisations", sv::ORGANISATIONS, Input::Lines, false),
    f("links", sv::LINKS, Input::Lines, false),
    f("contact", sv::CONTACT, Input::Text, false),
    f("sroi.ratio", sv::SROI_RATIO, Input::Number, false),
    f("sroi.year", sv::SROI_YEAR, Input::Number, false),
    f("sroi.report_url", sv::SROI_REPORT_URL, Input::Url, false),
    f("sroi.indicators", sv::SROI_INDICATORS, Input::Picks, false),
];

const METHOD: &[Field] = &[
    f("title", sv::TITLE, Input::Text, true),
    f("summary", sv::METHOD_SUMMARY, Input::Area, true),
    f("description", sv::METHOD_DESCRIPTION, Input::Area, false),
    f("tags", sv::METHOD_TAGS, Input::Lines, false),
    f("links", sv::LINKS, Input::Lines, false),
];

const RESEARCHER: &[Field] = &[
    f("name", sv::NAME, Input::Text, true),
    f("affiliation", sv::AFFILIATION, Input::Text, true),
    f("fields", sv::FIELDS, Input::Lines, true),
    f("email", sv::EMAIL, Input::Email, false),
    f("phone", sv::PHONE, Input::Tel, false),
    f("consent.given", sv::CONSENT_GIVEN, Input::Checkbox, true),
    f("consent.date", sv::CONSENT_DATE, Input::Date, true),
    f("consent.method", sv::CONSENT_METHOD, Input::Text, false),
    f("consent.scope", sv::CONSENT_SCOPE, Input::Text, false),
];

const EVENT: &[Field] = &[
    f("title", sv::EVENT_TITLE, Input::Text, true),
    f("start", sv::EVENT_START, Input::DateTime, true),
    f("end", sv::EVENT_END, Input::DateTime, false),
    f("place", sv::EVENT_PLACE, Input::Area, false),
    f("online_url", sv::EVENT_ONLINE_URL, Input::Url, false),
    f("organiser", sv::EVENT_ORGANISER, Input::Text, false),
    f(
        "registration_url",
        sv::EVENT_REGISTRATION_URL,
        Input::Url,
        false,
    ),
    f("description", sv::EVENT_DESCRIPTION, Input::Area, false),
    f("tags", sv::EVENT_TAGS, Input::Lines, false),
];

const INDICATOR: &[Field] = &[
    f("outcome", sv::OUTCOME, Input::Text, true),
    f("indicator", sv::INDICATOR, Input::Text, true),
    f("proxy", sv::PROXY, Input::Area, true),
    f("value_sek", sv::VALUE_SEK, Input::Number, true),
    f("unit", sv::UNIT, Input::Text, true),
    f("year", sv::PRICE_YEAR, Input::Number, true),
    f("source", sv::SOURCE, Input::Text, true),
    f("deadweight", sv::DEADWEIGHT, Input::Number, false),
    f("attribution", sv::ATTRIBUTION, Input::Number, false),
    f("displacement", sv::DISPLACEMENT, Input::Number, false),
    f("drop_off", sv::DROP_OFF, Input::Number, false),
    f("tags", sv::INDICATOR_TAGS, Input::Lines, false),
];

const EXPERIENCE: &[Field] = &[
    f("about", sv::ABOUT, Input::Text, true),
    f("text", sv::EXPERIENCE_TEXT, Input::Area, true),
    f(
        "outcome",
        sv::EXPERIENCE_OUTCOME,
        Input::Choice(sv::OUTCOMES),
        true,
    ),
    f("links", sv::LINKS, Input::Lines, false),
    f("tags", sv::EXPERIENCE_TAGS, Input::Lines, false),
];

/// The fields of a kind's form, in order.
pub fn fields(kind: Kind) -> &'static [Field] {
    match kind {
        Kind::Profile => PROFILE,
        Kind::Innovation => INNOVATION,
        Kind::Method => METHOD,
        Kind::Researcher => RESEARCHER,
        Kind::Event => EVENT,
        Kind::Indicator => INDICATOR,
        Kind::Experience => EXPERIENCE,
        // Membership acts have pages of their own, never the record form.
        Kind::Endorsement | Kind::Revocation | Kind::Erasure => &[],
    }
}

/// A form's ticked picks (`FIELD:REFERENCE` = on) added to the field's own lines, each once,
/// in the order given then ticked; the checkboxes' names leave the form.
pub fn gather_picks(kind: Kind, form: &mut HashMap<String, String>) {
    for field in fields(kind).iter().filter(|f| f.input == Input::Picks) {
        let prefix = format!("{}:", field.name);
        let mut ticked: Vec<String> = form
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(str::to_string)
            .collect();
        if ticked.is_empty() {
            continue;
        }
        ticked.sort();
        form.retain(|k, _| !k.starts_with(&prefix));
        let mut lines: Vec<String> = form
            .get(field.name)
            .map(|v| {
                v.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for t in ticked {
            if !lines.contains(&t) {
                lines.push(t);
            }
        }
        form.insert(field.name.to_string(), lines.join("\n"));
    }
}

/// What is wrong with a submitted form: the field (a form field's name) and the Swedish
/// sentence shown beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError {
    pub field: Option<String>,
    pub message: String,
}

/// A submitted form as a record of `kind`, validated by the protocol's rules.
#[cfg(test)]
pub fn record_from_form(kind: Kind, form: &HashMap<String, String>) -> Result<Record, FormError> {
    record_from_form_all(kind, form).map_err(|mut errors| errors.swap_remove(0))
}

/// [`record_from_form`] with every error at once, one per field, in the form's order (a field
/// that is not a number is left out of the record and said once; the record's own rules then
/// say the rest).
pub fn record_from_form_all(
    kind: Kind,
    form: &HashMap<String, String>,
) -> Result<Record, Vec<FormError>> {
    let (json, mut errors) = json_and_errors(kind, form);
    match Record::from_json_all(kind, &json.to_string()) {
        Ok(record) if errors.is_empty() => return Ok(record),
        Ok(_) => {}
        Err(problems) => errors.extend(problems.iter().map(swedish)),
    }
    let order = |e: &FormError| {
        e.field
            .as_deref()
            .and_then(|f| fields(kind).iter().position(|x| x.name == f))
            .unwrap_or(usize::MAX)
    };
    // One error a field: the first said (a number that could not be read before the record's
    // rule that the field is missing).
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.field.clone()));
    errors.sort_by_key(order);
    Err(errors)
}

/// The record JSON of a form, and the errors of fields that could not be read (left out).
fn json_and_errors(kind: Kind, form: &HashMap<String, String>) -> (Value, Vec<FormError>) {
    let mut errors = Vec::new();
    let mut top = Map::new();
    for field in fields(kind) {
        let raw = form.get(field.name).map(String::as_str).unwrap_or("");
        let value = match field.input {
            Input::Lines | Input::Picks => {
                let items: Vec<Value> = raw
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::String(l.to_string()))
                    .collect();
                if items.is_empty() && !field.required {
                    continue;
                }
                Value::Array(items)
            }
            Input::Checkbox => Value::Bool(!raw.is_empty()),
            Input::DateTime => {
                let t = raw.trim();
                if t.is_empty() {
                    continue;
                }
                match crate::localtime::from_stockholm_local(t) {
                    Ok(text) => Value::String(text),
                    Err(e) => {
                        errors.push(FormError {
                            field: Some(field.name.to_string()),
                            message: sv::local_time(e).into(),
                        });
                        continue;
                    }
                }
            }
            Input::Number => {
                let t = raw.trim();
                // A required number that is missing or unreadable is said here, and a stand-in
                // lets the record's own rules still say the other fields' problems at once
                // (its error for this field is dropped: one error a field, the first said).
                let read = match t.is_empty() {
                    true if !field.required => continue,
                    true => Err(FormError {
                        field: Some(field.name.to_string()),
                        message: sv::FILL_IN.into(),
                    }),
                    false => number(field.name, t),
                };
                match read {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(e);
                        if !field.required {
                            continue;
                        }
                        Value::from(0)
                    }
                }
            }
            _ => {
                let t = raw.trim();
                if t.is_empty() && !field.required {
                    continue;
                }
                Value::String(t.to_string())
            }
        };
        match field.name.split_once('.') {
            Some((outer, inner)) => {
                let entry = top
                    .entry(outer.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(inner.to_string(), value);
                }
            }
            None => {
                top.insert(field.name.to_string(), value);
            }
        }
    }
    // An SROI without its ratio is no SROI (the year or report alone say nothing).
    if kind == Kind::Innovation
        && let Some(Value::Object(sroi)) = top.get("sroi")
        && !sroi.contains_key("ratio")
    {
        if !errors
            .iter()
            .any(|e| e.field.as_deref() == Some("sroi.ratio"))
        {
            errors.push(FormError {
                field: Some("sroi.ratio".into()),
                message: sv::SROI_WITHOUT_RATIO.into(),
            });
        }
        // Said; the rest of the record is still checked.
        top.remove("sroi");
    }
    (Value::Object(top), errors)
}

/// A number as a person writes it (`3,4` or `3.4`; a year).
fn number(field: &str, text: &str) -> Result<Value, FormError> {
    let wrong = || FormError {
        field: Some(field.to_string()),
        message: if field.ends_with("year") {
            sv::NOT_A_YEAR.into()
        } else {
            sv::NOT_A_NUMBER.into()
        },
    };
    if field.ends_with("year") {
        return text.parse::<i64>().map(Value::from).map_err(|_| wrong());
    }
    // Spaces between thousands (120 000) as a person writes them.
    let n: f64 = text
        .replace([' ', '\u{a0}'], "")
        .replace(',', ".")
        .parse()
        .map_err(|_| wrong())?;
    serde_json::Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(wrong)
}

/// The form field a validation error is about (`links[2]` is the `links` field).
fn form_field(e: &SchemaError) -> Option<String> {
    e.field
        .as_deref()
        .map(|f| f.split('[').next().unwrap_or(f).to_string())
}

/// The line of a list a validation error is about (`links[2]` is line 3).
fn line_of(e: &SchemaError) -> Option<usize> {
    let f = e.field.as_deref()?;
    let i = f.split_once('[')?.1.strip_suffix(']')?;
    i.parse::<usize>().ok().map(|i| i + 1)
}

/// The protocol's error in Swedish, beside its field.
pub fn swedish(e: &SchemaError) -> FormError {
    let message = sv::problem(e);
    let message = match line_of(e) {
        Some(line) => sv::on_line(line, &message),
        None => message,
    };
    let field = match e.problem {
        // Consent is about the checkbox.
        Problem::Consent => Some("consent.given".to_string()),
        _ => form_field(e),
    };
    FormError { field, message }
}

/// A stored record as form values (for an edit): lists one item a line, nested fields by
/// their dotted names, the consent checkbox as "on".
pub fn form_from_record(kind: Kind, data: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for field in fields(kind) {
        let value = match field.name.split_once('.') {
            Some((outer, inner)) => data.get(outer).and_then(|o| o.get(inner)),
            None => data.get(field.name),
        };
        let text = match (field.input, value) {
            (_, None | Some(Value::Null)) => continue,
            (Input::Checkbox, Some(Value::Bool(true))) => "on".to_string(),
            (Input::Checkbox, Some(_)) => continue,
            (Input::DateTime, Some(Value::String(s))) => {
                match spindel_protocol::time::parse_rfc3339(s) {
                    Some(t) => crate::localtime::to_stockholm_local(t.utc_ms),
                    None => s.clone(),
                }
            }
            (_, Some(Value::Array(items))) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n"),
            (_, Some(Value::String(s))) => s.clone(),
            // A whole number without its `.0` (120000.0 is 120000).
            (_, Some(Value::Number(n))) => match n.as_f64() {
                Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
                _ => n.to_string().replace('.', ","),
            },
            (_, Some(other)) => other.to_string(),
        };
        out.insert(field.name.to_string(), text);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ABOUT: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29/0123456789abcdef0123456789abcdef";

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_kind_maps_from_a_form_and_back() {
        let cases: [(Kind, &[(&str, &str)]); 6] = [
            (
                Kind::Indicator,
                &[
                    ("outcome", "Fler personer i arbete"),
                    ("indicator", "Anställda efter ett år"),
                    ("proxy", "Minskat försörjningsstöd"),
                    ("value_sek", "120 000,5"),
                    ("unit", "per person och år"),
                    ("year", "2024"),
                    ("source", "SCB"),
                    ("drop_off", "0,1"),
                    ("tags", "arbete"),
                ],
            ),
            (
                Kind::Profile,
                &[
                    ("display_name", " Nätverket Social Ekonomi Skåne "),
                    ("members", "Coompanion Skåne\n\n Famna \n"),
                    ("website", "https://skane.example.se"),
                ],
            ),
            (
                Kind::Innovation,
                &[
                    ("title", "Språkcafé"),
                    ("summary", "Möten varje vecka"),
                    ("tags", "integration\nspråk"),
                    ("links", "https://a.example.se"),
                    ("sroi.ratio", "3,4"),
                    ("sroi.year", "2024"),
                ],
            ),
            (
                Kind::Method,
                &[
                    ("title", "Lokal överenskommelse"),
                    ("summary", "Så skrivs den"),
                ],
            ),
            (
                Kind::Researcher,
                &[
                    ("name", "Anna Forskare"),
                    ("affiliation", "Lunds universitet"),
                    ("fields", "social ekonomi"),
                    ("email", "anna@lu.example.se"),
                    ("consent.given", "on"),
                    ("consent.date", "2026-11-01"),
                    ("consent.method", "e-post"),
                ],
            ),
            (
                Kind::Experience,
                &[
                    ("about", ABOUT),
                    ("text", "Vi provade det\nDet gick bra."),
                    ("outcome", "not-suitable"),
                    ("links", "https://a.example.se"),
                    ("tags", "integration"),
                ],
            ),
        ];
        for (kind, pairs) in cases {
            let submitted = form(pairs);
            let record =
                record_from_form(kind, &submitted).unwrap_or_else(|e| panic!("{kind}: {e:?}"));
            let again = form_from_record(kind, &record.to_value());
            let record2 = record_from_form(kind, &again).unwrap();
            assert_eq!(
                record, record2,
                "{kind}: a form filled from the record says the same"
            );
        }
        let inn = record_from_form(Kind::Innovation, &form(cases_innovation())).unwrap();
        let v = inn.to_value();
        assert_eq!(v["sroi"]["ratio"], 3.4);
        assert_eq!(v["tags"], serde_json::json!(["integration", "språk"]));
        assert!(
            v.get("description").is_none(),
            "an empty optional field is left out"
        );
    }

    /// Ticked picks join the field's own lines, each once; nothing ticked leaves them as typed.
    #[test]
    fn picked_indicators_become_one_reference_a_line() {
        let a = format!("{}/{}", "a".repeat(64), "1".repeat(32));
        let b = format!("{}/{}", "b".repeat(64), "2".repeat(32));
        let mut f = form(&[
            ("title", "T"),
            ("summary", "S"),
            ("sroi.ratio", "2"),
            ("sroi.indicators", &a),
        ]);
        f.insert(format!("sroi.indicators:{b}"), "on".into());
        f.insert(format!("sroi.indicators:{a}"), "on".into());
        gather_picks(Kind::Innovation, &mut f);
        assert_eq!(f.get("sroi.indicators"), Some(&format!("{a}\n{b}")));
        assert!(f.keys().all(|k| !k.starts_with("sroi.indicators:")));
        let v = record_from_form(Kind::Innovation, &f).unwrap().to_value();
        assert_eq!(v["sroi"]["indicators"], serde_json::json!([a, b]));
        // A reference that is not one is said beside the field.
        let mut bad = form(&[("title", "T"), ("summary", "S"), ("sroi.ratio", "2")]);
        bad.insert("sroi.indicators:nope".into(), "on".into());
        gather_picks(Kind::Innovation, &mut bad);
        let errors = record_from_form_all(Kind::Innovation, &bad).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.message.contains("NODEID/RECORD_ID")),
            "{errors:?}"
        );
        // A required number left empty or unreadable is said, and the other fields too.
        let errors = record_from_form_all(
            Kind::Indicator,
            &form(&[("outcome", ""), ("value_sek", "mycket"), ("year", "")]),
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().filter_map(|e| e.field.as_deref()).collect();
        assert_eq!(
            fields,
            [
                "outcome",
                "indicator",
                "proxy",
                "value_sek",
                "unit",
                "year",
                "source"
            ]
        );
        assert_eq!(errors[3].message, sv::NOT_A_NUMBER);
        assert_eq!(errors[5].message, sv::FILL_IN);
    }

    fn cases_innovation() -> &'static [(&'static str, &'static str)] {
        &[
            ("title", "Språkcafé"),
            ("summary", "Möten varje vecka"),
            ("tags", "integration\nspråk"),
            ("sroi.ratio", "3,4"),
        ]
    }

    /// Every validation error of every kind comes back in Swedish beside its field.
    #[test]
    fn every_validation_error_is_said_in_swedish_beside_its_field() {
        let long = "x".repeat(201);
        let many_tags = (0..21)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let method = |extra: &[(&str, &str)]| {
            let mut f = form(&[("title", "T"), ("summary", "S")]);
            for (k, v) in extra {
                f.insert(k.to_string(), v.to_string());
            }
            f
        };
        let researcher = |extra: &[(&str, &str)]| {
            let mut f = form(&[
                ("name", "N"),
                ("affiliation", "A"),
                ("fields", "f"),
                ("consent.given", "on"),
                ("consent.date", "2026-01-01"),
            ]);
            for (k, v) in extra {
                f.insert(k.to_string(), v.to_string());
            }
            f
        };
        let cases: Vec<(Kind, HashMap<String, String>, &str, &str)> = vec![
            (
                Kind::Method,
                method(&[("title", " ")]),
                "title",
                "Fyll i fältet.",
            ),
            (
                Kind::Method,
                method(&[("title", &long)]),
                "title",
                "Högst 200 tecken; nu 201.",
            ),
            (
                Kind::Method,
                method(&[("summary", "a\u{7}b")]),
                "summary",
                "styrtecken",
            ),
            (
                Kind::Method,
                method(&[("tags", &many_tags)]),
                "tags",
                "Högst 20 rader; nu 21.",
            ),
            (
                Kind::Method,
                method(&[("links", "https://ok.example.se\nftp://x")]),
                "links",
                "Rad 2: Ange en fullständig webbadress",
            ),
            (
                Kind::Innovation,
                {
                    let mut f = method(&[]);
                    f.insert("sroi.ratio".into(), "-1".into());
                    f
                },
                "sroi.ratio",
                "större än 0",
            ),
            (
                Kind::Innovation,
                {
                    let mut f = method(&[]);
                    f.insert("sroi.ratio".into(), "tre".into());
                    f
                },
                "sroi.ratio",
                "Ange ett tal",
            ),
            (
                Kind::Innovation,
                {
                    let mut f = method(&[]);
                    f.insert("sroi.ratio".into(), "2".into());
                    f.insert("sroi.year".into(), "1800".into());
                    f
                },
                "sroi.year",
                "mellan 1900 och 2200",
            ),
            (
                Kind::Innovation,
                {
                    let mut f = method(&[]);
                    f.insert("sroi.year".into(), "2020".into());
                    f
                },
                "sroi.ratio",
                "Ange SROI-kvoten",
            ),
            (
                Kind::Researcher,
                researcher(&[("consent.given", "")]),
                "consent.given",
                "måste ha samtyckt",
            ),
            (
                Kind::Researcher,
                researcher(&[("consent.date", "1 nov")]),
                "consent.date",
                "ÅÅÅÅ-MM-DD",
            ),
            (
                Kind::Researcher,
                researcher(&[("email", "anna")]),
                "email",
                "e-postadress",
            ),
            (
                Kind::Researcher,
                researcher(&[("phone", "12")]),
                "phone",
                "telefonnummer",
            ),
            (
                Kind::Researcher,
                researcher(&[("fields", "")]),
                "fields",
                "Minst 1 rad.",
            ),
            (
                Kind::Profile,
                form(&[("display_name", "")]),
                "display_name",
                "Fyll i fältet.",
            ),
            (
                Kind::Experience,
                form(&[("about", "skane/123"), ("text", "T"), ("outcome", "tried")]),
                "about",
                "NODID/POSTID",
            ),
            (
                Kind::Experience,
                form(&[("about", ABOUT), ("text", "T"), ("outcome", "")]),
                "outcome",
                "Välj ett av alternativen.",
            ),
            (
                Kind::Experience,
                form(&[("about", ABOUT), ("text", " "), ("outcome", "tried")]),
                "text",
                "Fyll i fältet.",
            ),
            (
                Kind::Profile,
                form(&[("display_name", "P"), ("website", "www.x.se")]),
                "website",
                "https://",
            ),
        ];
        for (kind, submitted, field, says) in cases {
            let e = record_from_form(kind, &submitted).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{kind} {says}: {e:?}");
            assert!(
                e.message.contains(says),
                "{kind}: {:?} does not say {says:?}",
                e.message
            );
        }
    }

    #[test]
    fn the_profile_website_is_said_to_be_the_contact_on_the_privacy_page() {
        let website = fields(Kind::Profile)
            .iter()
            .find(|f| f.name == "website")
            .unwrap();
        assert!(website.help.contains("(/integritet)"), "{}", website.help);
        assert!(website.help.contains("kontakt"), "{}", website.help);
    }

    #[test]
    fn every_field_of_every_kind_is_a_field_of_its_record() {
        // The forms cover the schemas: a record with every field set reads back whole.
        for kind in Kind::KNOWLEDGE {
            for field in fields(kind) {
                assert!(
                    !field.label.is_empty() && !field.help.is_empty(),
                    "{}",
                    field.name
                );
            }
        }
        let full = form(&[
            ("title", "T"),
            ("summary", "S"),
            ("description", "D"),
            ("tags", "a"),
            ("organisations", "O"),
            ("links", "https://l.example.se"),
            ("contact", "C"),
            ("sroi.ratio", "1,5"),
            ("sroi.year", "2020"),
            ("sroi.report_url", "https://r.example.se"),
        ]);
        let v = record_from_form(Kind::Innovation, &full)
            .unwrap()
            .to_value();
        assert_eq!(v.as_object().unwrap().len(), 8, "{v}");
        assert_eq!(v["sroi"].as_object().unwrap().len(), 3, "{v}");
    }

    /// Every error of a form at once, one per field, in the form's order: a number that
    /// cannot be read and the record's own rules alike.
    #[test]
    fn every_error_of_a_form_comes_at_once_in_page_order() {
        let f = form(&[
            ("links", "inte en adress"),
            ("title", " "),
            ("summary", ""),
            ("sroi.ratio", "tre"),
            ("sroi.year", "1800"),
        ]);
        let errors = record_from_form_all(Kind::Innovation, &f).unwrap_err();
        let fields: Vec<&str> = errors
            .iter()
            .map(|e| e.field.as_deref().unwrap_or(""))
            .collect();
        let order: Vec<&str> = super::fields(Kind::Innovation)
            .iter()
            .map(|f| f.name)
            .filter(|n| fields.contains(n))
            .collect();
        assert_eq!(fields, order, "not in page order");
        for want in ["title", "summary", "links", "sroi.ratio"] {
            assert!(fields.contains(&want), "{want} missing: {errors:?}");
        }
        let ratio = errors
            .iter()
            .find(|e| e.field.as_deref() == Some("sroi.ratio"))
            .unwrap();
        assert!(ratio.message.contains("Ange ett tal"), "{ratio:?}");
        // The first of them is what the one-error form says.
        assert_eq!(
            record_from_form(Kind::Innovation, &f).unwrap_err().field,
            errors[0].field
        );
    }
}
