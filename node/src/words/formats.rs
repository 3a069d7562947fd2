//! A kind's and a finding's Swedish names, counts, dates and times (Stockholm time), numbers
//! and waits.

use std::time::Duration;

/// A kind's Swedish words: heading singular and plural, then in running text singular and plural.
pub(crate) fn kind_words(kind: &str) -> [&str; 4] {
    match kind {
        "innovation" => [
            "Social innovation",
            "Sociala innovationer",
            "social innovation",
            "sociala innovationer",
        ],
        "method" => ["Metod", "Metoder", "metod", "metoder"],
        "researcher" => [
            "Forskarkontakt",
            "Forskarkontakter",
            "forskarkontakt",
            "forskarkontakter",
        ],
        "event" => ["Mötesplats", "Mötesplatser", "mötesplats", "mötesplatser"],
        "indicator" => [
            "Indikator med proxy",
            "Indikatorer med proxyer",
            "indikator",
            "indikatorer",
        ],
        "experience" => ["Erfarenhet", "Erfarenheter", "erfarenhet", "erfarenheter"],
        "profile" => [
            "Regional plattform",
            "Regionala plattformar",
            "profil",
            "profiler",
        ],
        "endorsement" => [
            "Stöd för medlemskap",
            "Stöd för medlemskap",
            "stöd för medlemskap",
            "stöd för medlemskap",
        ],
        "revocation" => [
            "Begäran om uteslutning",
            "Begäranden om uteslutning",
            "begäran om uteslutning",
            "begäranden om uteslutning",
        ],
        other => [other; 4],
    }
}

/// A kind in Swedish, as a heading.
pub fn kind_label(kind: &str, plural: bool) -> String {
    kind_words(kind)[usize::from(plural)].to_string()
}

/// "1 metod", "2 metoder": a count of records of a kind, in running text.
pub fn kind_count(kind: &str, n: u64) -> String {
    let w = kind_words(kind);
    format!("{n} {}", if n == 1 { w[2] } else { w[3] })
}

/// A finding of the audit (`spindel audit`'s kind) in Swedish, as `/granskning` names it.
pub(crate) fn finding_kind(kind: &str) -> String {
    match kind {
        "rollback" => "Tillbakarullning",
        "withheld" => "Undanhållet",
        "split-view" => "Olika bilder",
        "stale" => "Tyst aggregator",
        other => other,
    }
    .to_string()
}

/// What a finding about an aggregator means, in one Swedish sentence (the technical detail
/// beside it stays as the witness wrote it).
pub(crate) fn finding_meaning(kind: &str) -> String {
    match kind {
        "rollback" => {
            "Den nationella noden har tappat poster som den redan hade bekräftat eller signerat, till exempel efter att den startats från en gammal kopia."
        }
        "withheld" => {
            "Den nationella noden har signerat poster från regionen men inte skickat dem hit."
        }
        "split-view" => "Den nationella noden har visat regionerna olika bilder av samma läge.",
        "stale" => {
            return format!(
                "Ingen ny kontrollpunkt från den nationella noden på över {} minuter.",
                spindel_protocol::witness::STALE_AFTER_MS / 60_000
            );
        }
        _ => "",
    }
    .to_string()
}

/// A UTC timestamp (`2026-11-28T01:40:12.345Z`) as Swedish local date and time
/// (`("2026-11-28", "02:40:12")`); `None` if it is not one.
pub(crate) fn local(t: &str) -> Option<(String, String)> {
    crate::localtime::parse_rfc3339_utc(t).map(crate::localtime::stockholm)
}

/// `2026-11-28T23:40:12.345Z` as the Swedish date, `2026-11-29`.
pub(crate) fn date(t: &str) -> String {
    local(t).map_or_else(|| t.get(..10).unwrap_or(t).to_string(), |(d, _)| d)
}

/// `2026-11-28T01:40:12.345Z` as `2026-11-28 kl. 02:40`, Swedish time (summer time included).
pub(crate) fn datetime(t: &str) -> String {
    match local(t) {
        Some((d, hms)) => format!("{d} kl. {}", &hms[..5]),
        None => t.to_string(),
    }
}

/// `2026-11-28T01:40:12.345Z` as `2026-11-28 02:40`, Swedish time (tables).
pub(crate) fn short_datetime(t: &str) -> String {
    match local(t) {
        Some((d, hms)) => format!("{d} {}", &hms[..5]),
        None => t.to_string(),
    }
}

/// Milliseconds since the epoch as `2026-11-28 kl. 02:40:12`, Swedish time (the editor's log,
/// where seconds matter).
pub fn datetime_sv(ms: u64) -> String {
    let (d, hms) = crate::localtime::stockholm(i64::try_from(ms).unwrap_or(i64::MAX / 2));
    format!("{d} kl. {hms}")
}

const WEEKDAYS: [&str; 7] = [
    "söndag", "måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag",
];
const MONTHS: [&str; 12] = [
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
];

/// An instant as Stockholm's `fredag 12 mars 2027` and `09:00`.
fn day_and_time(utc_ms: i64) -> (String, String) {
    let local = utc_ms + crate::localtime::stockholm_offset_ms(utc_ms);
    let days = local.div_euclid(86_400_000);
    let (y, m, d) = spindel_protocol::time::civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[(days + 4).rem_euclid(7) as usize];
    let month = MONTHS[(m as usize).clamp(1, 12) - 1];
    let (_, hms) = crate::localtime::stockholm(utc_ms);
    (format!("{weekday} {d} {month} {y}"), hms[..5].to_string())
}

/// When an event is, in Swedish time: `fredag 12 mars 2027 kl. 09:00–16:00`, across days
/// `fredag 12 mars 2027 kl. 09:00 – lördag 13 mars 2027 kl. 16:00`; the text as given if it is
/// not RFC 3339 (`end` may be empty).
pub fn event_when(start: &str, end: &str) -> String {
    let parse = |t: &str| spindel_protocol::time::parse_rfc3339(t).map(|t| t.utc_ms);
    let Some(s) = parse(start) else {
        return start.to_string();
    };
    let (s_day, s_time) = day_and_time(s);
    match parse(end) {
        Some(e) if e > s => {
            let (e_day, e_time) = day_and_time(e);
            if e_day == s_day {
                format!("{s_day} kl. {s_time}–{e_time}")
            } else {
                format!("{s_day} kl. {s_time} – {e_day} kl. {e_time}")
            }
        }
        _ => format!("{s_day} kl. {s_time}"),
    }
}

/// A number the Swedish way: decimal comma, at most two decimals, no trailing zeros.
pub fn sv_number(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.replace('.', ",")
}

/// An amount as Swedes write it: `120 000`, `1 250,5` (thousands apart by a no-break space,
/// at most two decimals).
pub fn sv_amount(v: f64) -> String {
    let text = sv_number(v);
    let (whole, frac) = match text.split_once(',') {
        Some((w, f)) => (w.to_string(), Some(f.to_string())),
        None => (text.clone(), None),
    };
    let (sign, digits) = match whole.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", whole.as_str()),
    };
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push('\u{a0}');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped},{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// "3 minuter", "1 sekund": how long to wait, in Swedish, rounded up.
pub fn wait_sv(wait: Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if secs < 60 {
        let s = secs.max(1);
        format!("{s} {}", if s == 1 { "sekund" } else { "sekunder" })
    } else {
        let m = secs.div_ceil(60);
        format!("{m} {}", if m == 1 { "minut" } else { "minuter" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_time_in_swedish() {
        assert_eq!(
            event_when("2027-03-12T09:00:00+01:00", "2027-03-12T15:00:00Z"),
            "fredag 12 mars 2027 kl. 09:00–16:00"
        );
        assert_eq!(
            event_when("2027-06-30T22:30:00Z", ""),
            "torsdag 1 juli 2027 kl. 00:30"
        );
        assert_eq!(
            event_when("2027-10-30T10:00:00+02:00", "2027-10-31T12:00:00+01:00"),
            "lördag 30 oktober 2027 kl. 10:00 – söndag 31 oktober 2027 kl. 12:00"
        );
        assert_eq!(event_when("i morgon", ""), "i morgon");
    }

    #[test]
    fn swedish_numbers_and_text_helpers() {
        assert_eq!(kind_count("method", 1), "1 metod");
        assert_eq!(kind_count("innovation", 2), "2 sociala innovationer");
        assert_eq!(kind_count("researcher", 0), "0 forskarkontakter");
        assert_eq!(kind_count("indicator", 2), "2 indikatorer");
        assert_eq!(sv_amount(120000.0), "120\u{a0}000");
        assert_eq!(sv_amount(1250.5), "1\u{a0}250,5");
        assert_eq!(sv_amount(999.0), "999");
        assert_eq!(sv_amount(1e9), "1\u{a0}000\u{a0}000\u{a0}000");
        assert_eq!(sv_number(3.0), "3");
        assert_eq!(sv_number(3.25), "3,25");
        assert_eq!(sv_number(7.5), "7,5");
        assert_eq!(datetime("2026-11-28T01:40:12.345Z"), "2026-11-28 kl. 02:40");
        assert_eq!(datetime("2026-07-28T01:40:12Z"), "2026-07-28 kl. 03:40");
        assert_eq!(short_datetime("2026-12-31T23:40:12Z"), "2027-01-01 00:40");
        assert_eq!(date("2026-12-31T23:40:12Z"), "2027-01-01");
        assert_eq!(date("soon"), "soon");
        assert_eq!(datetime_sv(1_796_336_458_123), "2026-12-03 kl. 23:20:58");
    }

    #[test]
    fn waits_are_said_in_swedish_rounded_up() {
        assert_eq!(wait_sv(Duration::from_millis(1500)), "2 sekunder");
        assert_eq!(wait_sv(Duration::from_secs(1)), "1 sekund");
        assert_eq!(wait_sv(Duration::from_secs(61)), "2 minuter");
        assert_eq!(wait_sv(Duration::from_secs(600)), "10 minuter");
    }
}
