//! The `event` kind: a meeting place (a seminar, a conference, a meeting), with its time as
//! RFC 3339 with an offset, a place or an online address, and links. The protocol has no clock:
//! whether an event is upcoming is for the node to say, from [`Event::span_ms`].

use serde::{Deserialize, Serialize};

use crate::schema::limits::*;
use crate::schema::{Check, Problem, SchemaError};
use crate::time::{DateTime, days_from_civil, parse_rfc3339};

/// A meeting place: where and when people meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub title: String,
    /// RFC 3339 with an offset: `2027-03-12T09:00:00+01:00` (or `Z`).
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// The address, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organiser: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Event {
    /// When the event starts and ends, in milliseconds since the Unix epoch (UTC), for a valid
    /// record. Without an `end`, the event lasts to the end of its start's day as written (in
    /// the start's own offset).
    pub fn span_ms(&self) -> Option<(i64, i64)> {
        let start = parse_rfc3339(&self.start)?;
        let end = match &self.end {
            Some(end) => parse_rfc3339(end)?.utc_ms,
            None => end_of_day(&start),
        };
        Some((start.utc_ms, end.max(start.utc_ms)))
    }

    pub(crate) fn trim(&mut self, t: fn(&mut String), o: fn(&mut Option<String>)) {
        t(&mut self.title);
        t(&mut self.start);
        o(&mut self.end);
        o(&mut self.place);
        o(&mut self.online_url);
        o(&mut self.organiser);
        o(&mut self.registration_url);
        o(&mut self.description);
        self.tags.iter_mut().for_each(t);
    }

    pub(crate) fn search_parts(&self) -> Vec<&str> {
        let mut parts = vec![self.title.as_str()];
        parts.extend(self.place.as_deref());
        parts.extend(self.organiser.as_deref());
        parts.extend(self.description.as_deref());
        parts.extend(self.tags.iter().map(String::as_str));
        parts
    }

    /// Every problem, in the order of the fields.
    pub(crate) fn problems(&self, c: &Check) -> Vec<Result<(), SchemaError>> {
        let start = time(c, "start", &self.start);
        let end = self.end.as_deref().map(|end| time(c, "end", end));
        let mut out = vec![
            c.text("title", &self.title, 1, TITLE_CHARS_MAX),
            start.as_ref().map(|_| ()).map_err(Clone::clone),
        ];
        if let Some(end) = end {
            let order = match (&start, &end) {
                (Ok(s), Ok(e)) if e.utc_ms < s.utc_ms => Err(c.fail(
                    "end",
                    Problem::EndBeforeStart,
                    format!(
                        "end must not be before start, got start {} and end {}",
                        self.start,
                        self.end.as_deref().unwrap_or_default()
                    ),
                )),
                _ => Ok(()),
            };
            out.push(end.map(|_| ()).and(order));
        }
        let neither = self.place.as_deref().unwrap_or_default().is_empty()
            && self.online_url.as_deref().unwrap_or_default().is_empty();
        out.push(if neither {
            Err(c.fail(
                "place",
                Problem::PlaceOrOnline,
                "place or online_url is required: give at least one".to_string(),
            ))
        } else {
            c.opt_text("place", &self.place, EVENT_PLACE_CHARS_MAX)
        });
        out.push(c.opt_url("online_url", &self.online_url));
        out.push(c.opt_text("organiser", &self.organiser, EVENT_ORGANISER_CHARS_MAX));
        out.push(c.opt_url("registration_url", &self.registration_url));
        out.push(c.opt_text("description", &self.description, DESCRIPTION_CHARS_MAX));
        out.push(c.list("tags", &self.tags, 0, TAGS_MAX, TAG_CHARS_MAX));
        out
    }
}

/// The end of the day of `t` as its writer's clock showed it.
fn end_of_day(t: &DateTime) -> i64 {
    let next_day = days_from_civil(t.year, t.month, t.day) + 1;
    next_day * 86_400_000 - i64::from(t.offset_minutes) * 60_000 - 1
}

/// A start or end: RFC 3339 with an offset, its date in the years the calendar takes.
fn time(c: &Check, field: &str, value: &str) -> Result<DateTime, SchemaError> {
    let t = parse_rfc3339(value).ok_or_else(|| {
        c.fail(
            field,
            Problem::DateTime,
            format!(
                "{field} must be an RFC 3339 time with an offset, like 2027-03-12T09:00:00+01:00 (or Z), got {:?}",
                value.chars().take(40).collect::<String>()
            ),
        )
    })?;
    if !(EVENT_YEAR_MIN..=EVENT_YEAR_MAX).contains(&t.year) {
        return Err(c.fail(
            field,
            Problem::Year {
                min: EVENT_YEAR_MIN,
                max: EVENT_YEAR_MAX,
                got: t.year,
            },
            format!(
                "{field} must be in the years {EVENT_YEAR_MIN}-{EVENT_YEAR_MAX}, got {}",
                t.year
            ),
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use crate::record::{Kind, Problem, Record};

    const OK: &str = r#"{"title":"Regional träff","start":"2027-03-12T09:00:00+01:00","place":"Folkets hus, Lund"}"#;

    fn err(json: &str) -> (String, Option<String>, Problem) {
        let e = Record::from_json(Kind::Event, json).unwrap_err();
        (e.message, e.field, e.problem)
    }

    fn with(extra: &str) -> String {
        format!("{},{extra}}}", OK.trim_end_matches('}'))
    }

    #[test]
    fn a_valid_event_and_its_span() {
        let Record::Event(e) = Record::from_json(Kind::Event, OK).unwrap() else {
            panic!("not an event");
        };
        let start = 1_804_838_400_000; // 2027-03-12T08:00:00Z
        // Without an end it lasts to the end of the start's day, in its own offset.
        assert_eq!(e.span_ms(), Some((start, start + 15 * 3_600_000 - 1)));
        let r = Record::from_json(
            Kind::Event,
            &with(r#""end":"2027-03-12T16:30:00Z","online_url":"https://exempel.se/mote","organiser":"Coompanion","registration_url":"http://exempel.se/anmalan","description":"Om överenskommelsen","tags":["överenskommelsen"]"#),
        )
        .unwrap();
        assert_eq!(r.title(), "Regional träff");
        assert_eq!(r.tags(), ["överenskommelsen".to_string()]);
        for word in [
            "Folkets hus",
            "Coompanion",
            "Om överenskommelsen",
            "överenskommelsen",
        ] {
            assert!(r.search_text().contains(word), "{word}");
        }
        assert!(!r.search_text().contains("exempel.se"));
        let Record::Event(e) = r else { panic!() };
        assert_eq!(
            e.span_ms(),
            Some((start, start + 8 * 3_600_000 + 1_800_000))
        );
        // Online only is enough; Z is allowed; an end equal to the start is fine.
        Record::from_json(
            Kind::Event,
            r#"{"title":"Webbinarium","start":"2027-01-01T10:00:00Z","end":"2027-01-01T10:00:00Z","online_url":"https://exempel.se"}"#,
        )
        .unwrap();
    }

    #[test]
    fn every_event_rule_names_its_field() {
        let cases: &[(&str, &str, Problem, &str)] = &[
            (
                r#"{"start":"2027-03-12T09:00:00Z","place":"x"}"#,
                "title",
                Problem::Required,
                "missing field `title`",
            ),
            (
                r#"{"title":"x","place":"x"}"#,
                "start",
                Problem::Required,
                "missing field `start`",
            ),
            (
                r#"{"title":" ","start":"2027-03-12T09:00:00Z","place":"x"}"#,
                "title",
                Problem::Required,
                "title is required",
            ),
            (
                r#"{"title":"x","start":"2027-03-12T09:00:00","place":"x"}"#,
                "start",
                Problem::DateTime,
                "start must be an RFC 3339 time with an offset",
            ),
            (
                r#"{"title":"x","start":"12 mars","place":"x"}"#,
                "start",
                Problem::DateTime,
                "got \"12 mars\"",
            ),
            (
                r#"{"title":"x","start":"1999-12-31T23:00:00Z","place":"x"}"#,
                "start",
                Problem::Year {
                    min: 2000,
                    max: 2100,
                    got: 1999,
                },
                "start must be in the years 2000-2100, got 1999",
            ),
            (
                r#"{"title":"x","start":"2101-01-01T00:00:00+01:00","place":"x"}"#,
                "start",
                Problem::Year {
                    min: 2000,
                    max: 2100,
                    got: 2101,
                },
                "got 2101",
            ),
            (
                r#"{"title":"x","start":"2027-03-12T09:00:00Z","end":"2027-03-12","place":"x"}"#,
                "end",
                Problem::DateTime,
                "end must be an RFC 3339 time",
            ),
            (
                r#"{"title":"x","start":"2027-03-12T09:00:00Z","end":"2027-03-12T09:59:59+01:00","place":"x"}"#,
                "end",
                Problem::EndBeforeStart,
                "end must not be before start",
            ),
            (
                r#"{"title":"x","start":"2027-03-12T09:00:00Z"}"#,
                "place",
                Problem::PlaceOrOnline,
                "place or online_url is required",
            ),
            (
                r#"{"title":"x","start":"2027-03-12T09:00:00Z","place":"  "}"#,
                "place",
                Problem::PlaceOrOnline,
                "at least one",
            ),
            (
                r#"{"title":"x","start":"2027-03-12T09:00:00Z","online_url":"ftp://x.se"}"#,
                "online_url",
                Problem::Url,
                "online_url must be an http or https URL",
            ),
            (
                r#"{"title":"x","start":"2027-03-12T09:00:00Z","place":"p","registration_url":"javascript:alert(1)"}"#,
                "registration_url",
                Problem::Url,
                "registration_url must be an http or https URL",
            ),
            (
                r#"{"title":"x","start":"2027-03-12T09:00:00Z","place":"p","when":"x"}"#,
                "when",
                Problem::UnknownField,
                "unknown field `when`",
            ),
        ];
        for (json, field, problem, says) in cases {
            let (message, got_field, got_problem) = err(json);
            assert!(
                message.starts_with("event record") || message.starts_with("invalid event record"),
                "{message}"
            );
            assert!(message.contains(says), "{json}: {message}");
            assert!(!message.contains('\n'));
            assert_eq!(got_field.as_deref(), Some(*field), "{json}");
            assert_eq!(&got_problem, problem, "{json}");
        }
    }

    #[test]
    fn text_limits_are_the_named_constants() {
        use crate::schema::limits::*;
        let long = |n: usize| "a".repeat(n);
        let ok = |field: &str, n: usize| {
            Record::from_json(Kind::Event, &with(&format!(r#""{field}":"{}""#, long(n))))
        };
        for (field, max) in [
            ("organiser", EVENT_ORGANISER_CHARS_MAX),
            ("description", DESCRIPTION_CHARS_MAX),
        ] {
            ok(field, max).unwrap();
            let e = ok(field, max + 1).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field));
            assert!(
                e.message
                    .contains(&format!("{field} must be 0-{max} characters"))
            );
        }
        let place = |n: usize| {
            Record::from_json(
                Kind::Event,
                &format!(
                    r#"{{"title":"t","start":"2027-03-12T09:00:00Z","place":"{}"}}"#,
                    long(n)
                ),
            )
        };
        place(EVENT_PLACE_CHARS_MAX).unwrap();
        assert!(
            place(EVENT_PLACE_CHARS_MAX + 1)
                .unwrap_err()
                .message
                .contains("place must be")
        );
        let title = format!(
            r#"{{"title":"{}","start":"2027-03-12T09:00:00Z","place":"p"}}"#,
            long(TITLE_CHARS_MAX + 1)
        );
        assert_eq!(err(&title).1.as_deref(), Some("title"));
        let tags: Vec<String> = (0..=TAGS_MAX).map(|i| format!("\"t{i}\"")).collect();
        assert_eq!(
            err(&with(&format!(r#""tags":[{}]"#, tags.join(","))))
                .1
                .as_deref(),
            Some("tags")
        );
        // All problems at once, in the order of the fields.
        let all = Record::from_json_all(
            Kind::Event,
            r#"{"title":"","start":"x","end":"y","online_url":"","registration_url":"w"}"#,
        )
        .unwrap_err();
        let fields: Vec<_> = all.iter().map(|e| e.field.clone().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "title",
                "start",
                "end",
                "place",
                "online_url",
                "registration_url"
            ]
        );
    }
}
