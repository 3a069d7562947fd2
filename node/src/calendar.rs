//! The calendar of meeting places (docs/interface.md, HTTP): `/kalender`, the upcoming events
//! of every region soonest first (an event is upcoming until it ends), `/kalender/tidigare`,
//! the past ones, both by region and tag and paged; and the iCalendar feeds (RFC 5545)
//! `/kalender.ics` and `/region/{key}/kalender.ics`, written by the `icalendar` crate.
//!
//! A feed's event keeps one UID across its versions (the record's address), its `SEQUENCE` is
//! the record's version less one (0 for the first, as RFC 5545 wants), and a deleted event is
//! not in the feed at all (docs/decisions/0035-meeting-places-and-their-feeds.md).

use crate::read::Reads;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use icalendar::{Component, EventLike};
use minijinja::{Value, context};
use serde::Serialize;

use crate::agenda::{AGENDA_PAGES_MAX, AgendaItem, AgendaQuery, When};
use crate::params::Params;
use crate::shared::Shared;
use crate::web::{PageError, PublicUrl, RecordItem, bad_request, internal, items, not_found, page};
use crate::words;

/// Parameters the calendar pages understand.
const CALENDAR_PARAMS: &[&str] = &["region", "tag", "sida"];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An event as the calendar lists it.
#[derive(Debug, Serialize)]
struct EventItem {
    #[serde(flatten)]
    item: RecordItem,
    when: String,
}

/// A calendar page's address with these parameters (empty ones left out).
fn calendar_url(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    match serde_urlencoded::to_string(&pairs) {
        Ok(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

async fn agenda_page(
    shared: &Arc<Shared>,
    when: When,
    raw: Option<&str>,
) -> Result<(&'static str, &'static str, Value), PageError> {
    let params = Params::parse(raw, CALENDAR_PARAMS)
        .map_err(|e| bad_request(words::calendar_param_error(&e)))?;
    let number = match params.get("sida") {
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=AGENDA_PAGES_MAX).contains(n))
            .ok_or_else(|| bad_request(words::bad_page_number(AGENDA_PAGES_MAX)))?,
        None => 1,
    };
    let region = params.get("region").map(str::to_string);
    let tag = params.get("tag").map(str::to_lowercase);
    let (agenda, regions) = {
        let (region, tag) = (region.clone(), tag.clone());
        shared
            .blocking(move |n| {
                let author = match &region {
                    Some(key) => Some(n.find_region(key)?),
                    None => None,
                };
                let q = AgendaQuery {
                    when,
                    author,
                    tag,
                    page: number,
                };
                let agenda = n.agenda(&q, now_ms())?;
                let mut regions: Vec<(String, String)> = n
                    .authors()?
                    .into_iter()
                    .filter(|a| a.is_region())
                    .map(|a| {
                        let name = a.meta.name_or_key(&a.id);
                        let shown = a.meta.display_name.clone().unwrap_or_else(|| name.clone());
                        (name, shown)
                    })
                    .collect();
                regions.sort_by(|a, b| a.1.cmp(&b.1));
                let total = agenda.total;
                let has_next = agenda.has_next;
                let events = event_items(n, agenda.events)?;
                Ok(((events, total, has_next), regions))
            })
            .await
            .map_err(internal)?
    };
    let (events, total, has_next) = agenda;
    let path = match when {
        When::Upcoming => "/kalender",
        When::Past => "/kalender/tidigare",
    };
    let at = |n: usize| {
        let s = n.to_string();
        let sida = (n > 1).then_some(s.as_str());
        calendar_url(
            path,
            &[
                ("region", region.as_deref()),
                ("tag", tag.as_deref()),
                ("sida", sida),
            ],
        )
    };
    let feed = match &region {
        Some(r) => format!("/region/{}/kalender.ics", urlencoding(r)),
        None => "/kalender.ics".to_string(),
    };
    Ok((
        "calendar.html",
        "calendar",
        context! {
            past => when == When::Past,
            events => events,
            total => total,
            number => number,
            next_page => has_next.then(|| at(number + 1)),
            previous_page => (number > 1).then(|| at(number - 1)),
            region => region,
            tag => tag,
            regions => regions,
            feed => feed,
            other => calendar_url(
                if when == When::Past { "/kalender" } else { "/kalender/tidigare" },
                &[("region", region.as_deref()), ("tag", tag.as_deref())],
            ),
        },
    ))
}

/// A region's name as a path segment.
fn urlencoding(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|q| q.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

fn event_items(
    n: &crate::read::ReadModel,
    events: Vec<AgendaItem>,
) -> Result<Vec<EventItem>, crate::local::NodeError> {
    let whens: Vec<String> = events
        .iter()
        .map(|e| {
            let text = |k: &str| e.view.data.get(k).and_then(|v| v.as_str()).unwrap_or("");
            words::event_when(text("start"), text("end"))
        })
        .collect();
    let list = items(n, events.into_iter().map(|e| e.view).collect())?;
    Ok(list
        .into_iter()
        .zip(whens)
        .map(|(item, when)| EventItem { item, when })
        .collect())
}

async fn upcoming(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let r = agenda_page(&shared, When::Upcoming, raw.as_deref()).await;
    page(&shared, r)
}

async fn past(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let r = agenda_page(&shared, When::Past, raw.as_deref()).await;
    page(&shared, r)
}

/// UTC milliseconds as a `chrono` time (an event's times are 2000-2100, always in range).
fn utc(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A record's text as an iCalendar TEXT value takes it: the crate escapes `\`, `,`, `;` and
/// line feeds, but not a carriage return, which a record's text may hold; a bare one could end
/// the line for a lenient reader and let one region's record write lines of its own into the
/// feed (a VEVENT with another region's UID), so every line break becomes a line feed.
fn text_value(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// A value the crate writes as it is (the calendar's name): one line, no control characters.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The feed's PRODID: who made it, in the form RFC 5545 suggests.
pub(crate) const PRODID: &str = "-//spindel//Kunskapsbanken kalender//SV";

/// The feed of `events` as iCalendar text.
pub(crate) fn ics(name: &str, events: &[AgendaItem], public_url: Option<&str>) -> String {
    let mut cal = icalendar::Calendar::new();
    // RFC 5545 3.7.3: the product that made the feed (the crate would name itself).
    for p in cal.properties.iter_mut().filter(|p| p.key() == "PRODID") {
        *p = icalendar::Property::new("PRODID", PRODID);
    }
    cal.name(&one_line(name));
    for e in events {
        let v = &e.view;
        let text = |k: &str| {
            v.data
                .get(k)
                .and_then(|x| x.as_str())
                .filter(|s| !s.is_empty())
                .map(text_value)
        };
        let mut ev = icalendar::Event::new();
        ev.uid(&format!("{}.{}@spindel", v.record_id, v.author))
            .sequence(u32::try_from(v.version.saturating_sub(1)).unwrap_or(u32::MAX))
            .timestamp(
                crate::localtime::parse_rfc3339_utc(&v.updated_at).map_or_else(|| utc(0), utc),
            )
            .starts(utc(e.start_ms))
            // Without an end the event lasts its day: DTEND is exclusive, the next midnight.
            .ends(utc(if text("end").is_some() {
                e.end_ms
            } else {
                e.end_ms + 1
            }))
            .summary(&text("title").unwrap_or_default());
        if let Some(place) = text("place").or(text("online_url")) {
            ev.location(&place);
        }
        if let Some(base) = public_url {
            ev.url(&format!(
                "{}/post/{}/{}",
                base.trim_end_matches('/'),
                v.author,
                v.record_id
            ));
        }
        let mut description: Vec<String> = text("description").into_iter().collect();
        for (label, key) in [
            (words::FEED_ORGANISER, "organiser"),
            (words::FEED_REGISTRATION, "registration_url"),
            (words::FEED_ONLINE, "online_url"),
        ] {
            if let Some(value) = text(key) {
                description.push(format!("{label}: {value}"));
            }
        }
        if !description.is_empty() {
            ev.description(&description.join("\n\n"));
        }
        cal.push(ev.done());
    }
    cal.done().to_string()
}

async fn feed(shared: &Arc<Shared>, public_url: PublicUrl, region: Option<String>) -> Response {
    let found = shared
        .blocking(move |n| {
            let (author, name) = match &region {
                Some(key) => match n.find_region(key)? {
                    Some(id) => {
                        let shown = n
                            .author(&id)?
                            .and_then(|m| m.display_name.clone())
                            .unwrap_or_else(|| key.clone());
                        (Some(id), words::calendar_name(Some(&shown)))
                    }
                    None => return Ok(None),
                },
                None => (None, words::calendar_name(None)),
            };
            let events = n.feed(author, now_ms())?;
            Ok(Some((name, events)))
        })
        .await;
    match found {
        Ok(Some((name, events))) => {
            let body = ics(&name, &events, public_url.0.as_deref());
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/calendar; charset=utf-8"),
            );
            r
        }
        Ok(None) => page(shared, Err(not_found(words::NO_SUCH_REGION))),
        Err(e) => page(shared, Err(internal(e))),
    }
}

async fn national_feed(
    State(shared): State<Arc<Shared>>,
    axum::Extension(public_url): axum::Extension<PublicUrl>,
) -> Response {
    feed(&shared, public_url, None).await
}

async fn region_feed(
    State(shared): State<Arc<Shared>>,
    axum::Extension(public_url): axum::Extension<PublicUrl>,
    Path(key): Path<String>,
) -> Response {
    feed(&shared, public_url, Some(key)).await
}

/// The calendar's routes.
pub fn routes() -> axum::Router<Arc<Shared>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/kalender", get(upcoming))
        .route("/kalender/tidigare", get(past))
        .route("/kalender.ics", get(national_feed))
        .route("/region/{key}/kalender.ics", get(region_feed))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::query::RecordView;

    fn item(data: serde_json::Value) -> AgendaItem {
        AgendaItem {
            view: RecordView {
                record_id: "cd".repeat(16),
                kind: spindel_protocol::Kind::Event,
                region: Some("skane".into()),
                author: "ab".repeat(32),
                seq: 3,
                version: 2,
                updated_at: "2027-01-01T10:00:00.000Z".into(),
                created_at: "2027-01-01T09:00:00.000Z".into(),
                data,
            },
            start_ms: 1_804_838_400_000,
            end_ms: 1_804_892_399_999,
        }
    }

    /// A region's text cannot write lines of its own into a feed: every carriage return in a
    /// title, place or description is a line feed, escaped, and the calendar's name one line.
    #[test]
    fn a_records_text_cannot_add_lines_to_the_feed() {
        let hostile = "Träff\r\nEND:VEVENT\r\nBEGIN:VEVENT\rUID:victim@spindel\nSEQUENCE:99";
        let text = ics(
            "Skåne\r\nX-INJECTED:1",
            &[item(serde_json::json!({
                "title": hostile, "start": "2027-03-12T09:00:00+01:00",
                "place": hostile, "description": hostile,
            }))],
            Some("https://kb.exempel.se/"),
        );
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines.iter().filter(|l| **l == "BEGIN:VEVENT").count(),
            1,
            "{text}"
        );
        for line in text.split("\r\n") {
            assert!(!line.contains('\r') && !line.contains('\n'), "{line:?}");
            assert!(line.len() <= 75, "{line:?}");
            assert!(
                !line.starts_with("UID:victim") && !line.starts_with("SEQUENCE:99"),
                "{text}"
            );
            assert!(!line.starts_with("X-INJECTED"), "{text}");
        }
        assert!(
            text.contains("SEQUENCE:1\r\n"),
            "the version less one: {text}"
        );
        let unfolded = text.replace("\r\n ", "");
        assert!(unfolded.contains(&format!(
            "URL:https://kb.exempel.se/post/{}/",
            "ab".repeat(32)
        )));
        // Without an end, DTEND is the next midnight (exclusive).
        assert!(text.contains("DTEND:20270312T230000Z"), "{text}");
        // The feed names its maker once: spindel, not the crate that writes the text.
        let prodids: Vec<&&str> = lines.iter().filter(|l| l.starts_with("PRODID:")).collect();
        assert_eq!(prodids, [&format!("PRODID:{PRODID}").as_str()], "{text}");
    }
}
