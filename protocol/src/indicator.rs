//! The SROI proxy bank's record, kind `indicator`: an outcome (the change), how it is measured
//! (the indicator), and the financial proxy that values it, with its price year and source, as
//! SROI practitioners share them (outcome → indicator → proxy; deadweight, attribution,
//! displacement and drop-off as fractions). An innovation's `sroi.indicators` names the ones
//! its figure used, by [`RecordRef`]. Validation lives here; `record.rs` only dispatches.

use serde::{Deserialize, Serialize};

use crate::reference::RecordRef;
use crate::schema::limits::*;
use crate::schema::{Check, Problem, SchemaError, is_http_url};

/// One outcome's indicator and its financial proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    /// The change, e.g. "fler personer i arbete".
    pub outcome: String,
    /// How the change is measured.
    pub indicator: String,
    /// What the financial value stands for.
    pub proxy: String,
    /// The value in Swedish kronor, at the price level of `year`.
    pub value_sek: f64,
    /// What one value is for: per person and year, per occasion, ...
    pub unit: String,
    /// The price level (year) of `value_sek`.
    pub year: i64,
    /// Where the value comes from: an http(s) URL or a reference text.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadweight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub displacement: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_off: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// The optional fractions, by their JSON names, in the schema's order.
pub const FRACTIONS: [&str; 4] = ["deadweight", "attribution", "displacement", "drop_off"];

impl Indicator {
    /// What lists show: the indicator (the outcome is its group on `/proxybank`).
    pub fn title(&self) -> &str {
        &self.indicator
    }

    /// The fractions with their JSON names, in [`FRACTIONS`] order.
    pub fn fractions(&self) -> [(&'static str, Option<f64>); 4] {
        [
            (FRACTIONS[0], self.deadweight),
            (FRACTIONS[1], self.attribution),
            (FRACTIONS[2], self.displacement),
            (FRACTIONS[3], self.drop_off),
        ]
    }

    pub(crate) fn search_parts(&self) -> Vec<&str> {
        let mut parts = vec![
            self.outcome.as_str(),
            &self.indicator,
            &self.proxy,
            &self.unit,
            &self.source,
        ];
        parts.extend(self.tags.iter().map(String::as_str));
        parts
    }

    pub(crate) fn trim(&mut self) {
        for s in [
            &mut self.outcome,
            &mut self.indicator,
            &mut self.proxy,
            &mut self.unit,
            &mut self.source,
        ] {
            trim(s);
        }
        self.tags.iter_mut().for_each(trim);
    }

    /// Every problem, in the order of the fields.
    pub(crate) fn problems(&self, c: &Check, out: &mut Vec<SchemaError>) {
        let mut check = |r: Result<(), SchemaError>| {
            if let Err(e) = r {
                out.push(e);
            }
        };
        check(c.text("outcome", &self.outcome, 1, OUTCOME_CHARS_MAX));
        check(c.text("indicator", &self.indicator, 1, INDICATOR_CHARS_MAX));
        check(c.text("proxy", &self.proxy, 1, PROXY_CHARS_MAX));
        let v = self.value_sek;
        if !(v.is_finite() && (0.0..=VALUE_SEK_MAX).contains(&v)) {
            check(Err(c.fail(
                "value_sek",
                Problem::Amount {
                    max: VALUE_SEK_MAX as u64,
                },
                format!("value_sek must be a number from 0 to {VALUE_SEK_MAX}, got {v}"),
            )));
        }
        check(c.text("unit", &self.unit, 1, UNIT_CHARS_MAX));
        if !(INDICATOR_YEAR_MIN..=INDICATOR_YEAR_MAX).contains(&self.year) {
            check(Err(c.fail(
                "year",
                Problem::Year {
                    min: INDICATOR_YEAR_MIN,
                    max: INDICATOR_YEAR_MAX,
                    got: self.year,
                },
                format!(
                    "year must be between {INDICATOR_YEAR_MIN} and {INDICATOR_YEAR_MAX}, got {}",
                    self.year
                ),
            )));
        }
        check(c.text("source", &self.source, 1, SOURCE_CHARS_MAX));
        if looks_like_url(&self.source) && !is_http_url(&self.source) {
            check(Err(c.fail(
                "source",
                Problem::Url,
                format!(
                    "source looks like an address, so it must be an http or https URL (or a reference text), got {:?}",
                    self.source.chars().take(80).collect::<String>()
                ),
            )));
        }
        for (name, value) in self.fractions() {
            if let Some(x) = value
                && !(x.is_finite() && (0.0..=1.0).contains(&x))
            {
                check(Err(c.fail(
                    name,
                    Problem::Fraction,
                    format!("{name} must be a fraction from 0 to 1, got {x}"),
                )));
            }
        }
        check(c.list("tags", &self.tags, 0, TAGS_MAX, TAG_CHARS_MAX));
    }
}

/// Whether a source text is meant as an address: it has `://`, starts with `www.`, or is one
/// word that starts with a scheme (`javascript:`, `data:`, `file:`).
pub fn looks_like_url(source: &str) -> bool {
    if source.contains("://") || source.to_ascii_lowercase().starts_with("www.") {
        return true;
    }
    if source.chars().any(char::is_whitespace) {
        return false;
    }
    match source.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        }
        None => false,
    }
}

/// The rules of an innovation's `sroi.indicators`: at most [`SROI_INDICATORS_MAX`], none twice.
pub(crate) fn check_references(c: &Check, refs: &[RecordRef]) -> Result<(), SchemaError> {
    if refs.len() > SROI_INDICATORS_MAX {
        return Err(c.fail(
            "sroi.indicators",
            Problem::Count {
                min: 0,
                max: SROI_INDICATORS_MAX,
                got: refs.len(),
            },
            format!(
                "sroi.indicators must have at most {SROI_INDICATORS_MAX} entries, got {}",
                refs.len()
            ),
        ));
    }
    for (i, r) in refs.iter().enumerate() {
        if refs[..i].contains(r) {
            return Err(c.fail(
                &format!("sroi.indicators[{i}]"),
                Problem::Duplicate,
                format!("sroi.indicators[{i}] names {r} a second time"),
            ));
        }
    }
    Ok(())
}

fn trim(s: &mut String) {
    let trimmed = s.trim();
    if trimmed.len() != s.len() {
        *s = trimmed.to_string();
    }
}

#[cfg(test)]
mod tests {
    use crate::record::{Kind, Record, limits::*};
    use crate::schema::Problem;

    const OK: &str = r#"{"outcome":" Fler personer i arbete ","indicator":"Antal i arbete efter sex månader","proxy":"Minskat försörjningsstöd (exempelvärde)","value_sek":120000.5,"unit":"per person och år","year":2024,"source":"https://example.se/kalla","deadweight":0.3,"attribution":0,"displacement":1,"drop_off":0.1,"tags":["arbete"]}"#;

    /// `OK` with `field` set to `json` (`None`: left out).
    fn with(field: &str, json: Option<&str>) -> String {
        let mut v: serde_json::Value = serde_json::from_str(OK).unwrap();
        let m = v.as_object_mut().unwrap();
        match json {
            Some(j) => {
                m.insert(field.into(), serde_json::from_str(j).unwrap());
            }
            None => {
                m.remove(field);
            }
        }
        v.to_string()
    }

    fn refused(field: &str, json: Option<&str>) -> crate::schema::SchemaError {
        Record::from_json(Kind::Indicator, &with(field, json)).unwrap_err()
    }

    #[test]
    fn a_valid_indicator_is_trimmed_titled_and_round_trips() {
        let r = Record::from_json(Kind::Indicator, OK).unwrap();
        let Record::Indicator(i) = &r else { panic!() };
        assert_eq!(i.outcome, "Fler personer i arbete");
        assert_eq!(r.title(), "Antal i arbete efter sex månader");
        assert_eq!(r.tags(), ["arbete"]);
        assert!(r.search_text().contains("försörjningsstöd"));
        assert_eq!(Record::from_json(Kind::Indicator, &r.to_json()).unwrap(), r);
        // The optional fractions and tags may be left out; a reference text is a source.
        let mut minimal = with("source", Some(r#""SCB, Lönestrukturstatistik 2024""#));
        for f in [
            "deadweight",
            "attribution",
            "displacement",
            "drop_off",
            "tags",
        ] {
            let mut v: serde_json::Value = serde_json::from_str(&minimal).unwrap();
            v.as_object_mut().unwrap().remove(f);
            minimal = v.to_string();
        }
        let r = Record::from_json(Kind::Indicator, &minimal).unwrap();
        assert!(!r.to_json().contains("deadweight"));
        // The bounds themselves are allowed.
        let max = format!("{VALUE_SEK_MAX}");
        Record::from_json(Kind::Indicator, &with("value_sek", Some(&max))).unwrap();
        Record::from_json(Kind::Indicator, &with("value_sek", Some("0"))).unwrap();
        for y in [INDICATOR_YEAR_MIN, INDICATOR_YEAR_MAX] {
            Record::from_json(Kind::Indicator, &with("year", Some(&y.to_string()))).unwrap();
        }
    }

    #[test]
    fn every_indicator_rule_names_its_field() {
        for f in [
            "outcome",
            "indicator",
            "proxy",
            "value_sek",
            "unit",
            "year",
            "source",
        ] {
            let e = refused(f, None);
            assert_eq!(e.problem, Problem::Required, "{f}");
            assert!(e.message.contains(&format!("missing field `{f}`")), "{e}");
        }
        for (f, max) in [
            ("outcome", OUTCOME_CHARS_MAX),
            ("indicator", INDICATOR_CHARS_MAX),
            ("proxy", PROXY_CHARS_MAX),
            ("unit", UNIT_CHARS_MAX),
            ("source", SOURCE_CHARS_MAX),
        ] {
            let e = refused(f, Some(r#""  ""#));
            assert_eq!(
                (e.problem, e.field.as_deref()),
                (Problem::Required, Some(f))
            );
            let long = format!("\"{}\"", "å ".repeat(max / 2) + "x");
            let e = refused(f, Some(&long));
            assert!(
                e.message
                    .contains(&format!("{f} must be 1-{max} characters, got {}", max + 1)),
                "{e}"
            );
        }
        let big = format!("{}", VALUE_SEK_MAX * 10.0);
        for bad in ["-1", &big, "1e300"] {
            let e = refused("value_sek", Some(bad));
            assert_eq!(e.field.as_deref(), Some("value_sek"), "{bad}");
            assert!(
                e.message
                    .contains("value_sek must be a number from 0 to 1000000000"),
                "{e}"
            );
        }
        for bad in [INDICATOR_YEAR_MIN - 1, INDICATOR_YEAR_MAX + 1] {
            let e = refused("year", Some(&bad.to_string()));
            assert!(
                e.message.contains("year must be between 1990 and 2100"),
                "{e}"
            );
        }
        for bad in [
            "javascript:alert(1)",
            "ftp://example.se/fil",
            "www.example.se",
            "data:text/html,x",
            "https://",
        ] {
            let e = refused("source", Some(&format!("{bad:?}")));
            assert_eq!(e.problem, Problem::Url, "{bad}");
            assert!(e.message.contains("source looks like an address"), "{e}");
        }
        for f in super::FRACTIONS {
            for bad in ["-0.1", "1.5"] {
                let e = refused(f, Some(bad));
                assert_eq!(
                    (e.problem, e.field.as_deref()),
                    (Problem::Fraction, Some(f))
                );
                assert!(
                    e.message
                        .contains(&format!("{f} must be a fraction from 0 to 1"))
                );
            }
        }
        let tags: Vec<String> = (0..=TAGS_MAX).map(|i| format!("\"t{i}\"")).collect();
        let e = refused("tags", Some(&format!("[{}]", tags.join(","))));
        assert!(e.message.contains("tags must have 0-20 entries"), "{e}");
        assert!(
            refused("colour", Some("1"))
                .message
                .contains("unknown field `colour`")
        );
        // Every problem at once, in the order of the fields.
        let all = Record::from_json_all(
            Kind::Indicator,
            r#"{"outcome":"","indicator":"i","proxy":"p","value_sek":-5,"unit":"u","year":1800,"source":"s","drop_off":2}"#,
        )
        .unwrap_err();
        let fields: Vec<_> = all.iter().map(|e| e.field.clone().unwrap()).collect();
        assert_eq!(fields, ["outcome", "value_sek", "year", "drop_off"]);
    }

    const AUTHOR: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

    fn innovation(refs: &[String]) -> String {
        let list: Vec<String> = refs.iter().map(|r| format!("{r:?}")).collect();
        format!(
            r#"{{"title":"t","summary":"s","sroi":{{"ratio":3,"indicators":[{}]}}}}"#,
            list.join(",")
        )
    }

    #[test]
    fn an_innovation_names_its_indicators_capped_and_once_each() {
        let refs: Vec<String> = (0..=SROI_INDICATORS_MAX)
            .map(|i| format!("{AUTHOR}/{i:032x}"))
            .collect();
        let ok =
            Record::from_json(Kind::Innovation, &innovation(&refs[..SROI_INDICATORS_MAX])).unwrap();
        assert!(ok.to_json().contains(&refs[0]));
        let e = Record::from_json(Kind::Innovation, &innovation(&refs)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("sroi.indicators"));
        assert!(
            e.message
                .contains("sroi.indicators must have at most 50 entries, got 51"),
            "{e}"
        );
        let twice = [refs[0].clone(), refs[1].clone(), refs[0].clone()];
        let e = Record::from_json(Kind::Innovation, &innovation(&twice)).unwrap_err();
        assert_eq!(
            (e.problem, e.field.as_deref()),
            (Problem::Duplicate, Some("sroi.indicators[2]"))
        );
        let e = Record::from_json(Kind::Innovation, &innovation(&["nope".into()])).unwrap_err();
        assert!(e.message.contains("NODEID/RECORD_ID"), "{e}");
        // A record from before the list reads back to the same bytes.
        let old = r#"{"title":"t","summary":"s","sroi":{"ratio":3.2,"year":2011}}"#;
        assert_eq!(
            Record::from_json(Kind::Innovation, old).unwrap().to_json(),
            old
        );
        let empty = r#"{"title":"t","summary":"s","sroi":{"ratio":3.2,"indicators":[]}}"#;
        assert!(
            !Record::from_json(Kind::Innovation, empty)
                .unwrap()
                .to_json()
                .contains("indicators")
        );
    }

    #[test]
    fn what_looks_like_an_address() {
        for yes in [
            "https://a.se",
            "www.a.se",
            "javascript:x",
            "mailto:a@b.se",
            "a+b:c",
        ] {
            assert!(super::looks_like_url(yes), "{yes}");
        }
        for no in ["SCB 2024", "Rapport: sid 12", "Socialstyrelsen", "1:2"] {
            assert!(!super::looks_like_url(no), "{no}");
        }
    }
}
