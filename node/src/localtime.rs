//! Swedish local time (Europe/Stockholm) for the pages, without a time-zone database.
//!
//! Sweden follows the EU rule since 1996: summer time (UTC+2) from the last Sunday of March
//! 01:00 UTC to the last Sunday of October 01:00 UTC, normal time (UTC+1) otherwise. The rule is
//! exact for every instant the network can hold (its records are from 2026 on), so the pages
//! need no tzdata on the server and no dependency.

/// One hour in milliseconds.
const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
const DAY_MS: i64 = 24 * HOUR_MS;

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of an instant (milliseconds since the epoch, UTC).
fn year_of(ms: i64) -> i64 {
    // The year's first day is at most the instant's day; start from an estimate and correct.
    let days = ms.div_euclid(DAY_MS);
    let mut y = 1970 + days.div_euclid(365);
    while days_from_civil(y, 1, 1) > days {
        y -= 1;
    }
    while days_from_civil(y + 1, 1, 1) <= days {
        y += 1;
    }
    y
}

/// 01:00 UTC on the last Sunday of a 31-day month (March, October) of `year`, in milliseconds.
fn last_sunday_0100_utc(year: i64, month: u32) -> i64 {
    let last = days_from_civil(year, month, 31);
    // 1970-01-01 was a Thursday: (days + 4) mod 7 is 0 on Sundays.
    let sunday = last - (last + 4).rem_euclid(7);
    sunday * DAY_MS + HOUR_MS
}

/// Stockholm's offset from UTC at an instant, in milliseconds: two hours in summer time, one
/// otherwise.
pub fn stockholm_offset_ms(utc_ms: i64) -> i64 {
    let y = year_of(utc_ms);
    let summer = (last_sunday_0100_utc(y, 3)..last_sunday_0100_utc(y, 10)).contains(&utc_ms);
    if summer { 2 * HOUR_MS } else { HOUR_MS }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` (what the records and the store give) as milliseconds since the
/// epoch; `None` for anything else.
pub fn parse_rfc3339_utc(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !t.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = t.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let frac = &t[19..t.len() - 1];
    let millis = match frac.strip_prefix('.') {
        None if frac.is_empty() => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) => {
            let f3 = format!("{:0<3}", &f[..f.len().min(3)]);
            f3.parse::<i64>().ok()?
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    Some(
        days * DAY_MS
            + i64::from(h) * HOUR_MS
            + i64::from(mi) * 60_000
            + i64::from(s) * 1000
            + millis,
    )
}

/// An instant as Stockholm's local date and time: `("2026-11-28", "02:40:12")`.
pub fn stockholm(utc_ms: i64) -> (String, String) {
    let local = utc_ms + stockholm_offset_ms(utc_ms);
    let t = spindel_protocol::time::rfc3339_ms(u64::try_from(local).unwrap_or(0));
    (t[..10].to_string(), t[11..19].to_string())
}

/// Why a Stockholm wall-clock time could not be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTimeError {
    /// Not `YYYY-MM-DDTHH:MM` (seconds allowed) or not a real date and time.
    Unreadable,
    /// In the hour the clocks skip in spring (02:00-02:59 on the last Sunday of March).
    Skipped,
}

/// Stockholm's wall-clock time `YYYY-MM-DDTHH:MM[:SS]` (what a `datetime-local` input sends)
/// as RFC 3339 with the offset of that moment: `2027-03-12T09:00:00+01:00`. A time in the hour
/// the clocks skip in spring is refused; a time in the hour that comes twice in autumn is the
/// first of the two, in summer time (`+02:00`).
pub fn from_stockholm_local(text: &str) -> Result<String, LocalTimeError> {
    let t = text.trim();
    // A full RFC 3339 time (an import's cell) keeps its own offset.
    if spindel_protocol::time::parse_rfc3339(t).is_some() {
        return Ok(t.to_string());
    }
    // A spreadsheet writes a space between date and time.
    let t = &match t.split_at_checked(10) {
        Some((date, rest)) if rest.starts_with(' ') => format!("{date}T{}", &rest[1..]),
        _ => t.to_string(),
    };
    let with_seconds = match t.len() {
        16 => format!("{t}:00"),
        19 => t.to_string(),
        _ => return Err(LocalTimeError::Unreadable),
    };
    // Read as if UTC, then take the offset that puts it back at the same wall-clock time.
    let as_utc = spindel_protocol::time::parse_rfc3339(&format!("{with_seconds}Z"))
        .ok_or(LocalTimeError::Unreadable)?
        .utc_ms;
    let fits = |offset: i64| stockholm_offset_ms(as_utc - offset) == offset;
    let offset = [2 * HOUR_MS, HOUR_MS]
        .into_iter()
        .find(|o| fits(*o))
        .ok_or(LocalTimeError::Skipped)?;
    Ok(format!("{with_seconds}+0{}:00", offset / HOUR_MS))
}

/// An instant as Stockholm's wall-clock time for a `datetime-local` input: `2027-03-12T09:00`.
pub fn to_stockholm_local(utc_ms: i64) -> String {
    let (date, time) = stockholm(utc_ms);
    format!("{date}T{}", &time[..5])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn local(t: &str) -> String {
        let (d, hms) = stockholm(parse_rfc3339_utc(t).unwrap());
        format!("{d} {hms}")
    }

    #[test]
    fn days_and_years() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(year_of(0), 1970);
        assert_eq!(
            year_of(parse_rfc3339_utc("2026-12-31T23:59:59.999Z").unwrap()),
            2026
        );
        assert_eq!(
            year_of(parse_rfc3339_utc("2027-01-01T00:00:00Z").unwrap()),
            2027
        );
        assert_eq!(
            year_of(parse_rfc3339_utc("2028-02-29T12:00:00Z").unwrap()),
            2028
        );
    }

    #[test]
    fn winter_and_summer() {
        assert_eq!(local("2026-11-28T01:40:12.345Z"), "2026-11-28 02:40:12");
        assert_eq!(local("2026-07-01T12:00:00Z"), "2026-07-01 14:00:00");
        // Local midnight moves the date.
        assert_eq!(local("2026-12-31T23:30:00Z"), "2027-01-01 00:30:00");
        assert_eq!(local("2026-06-30T22:15:00Z"), "2026-07-01 00:15:00");
    }

    /// 2026: summer time from Sunday 29 March 01:00 UTC (02:00 becomes 03:00) to Sunday 25
    /// October 01:00 UTC (03:00 becomes 02:00); 2027: 28 March and 31 October.
    #[test]
    fn both_transitions() {
        assert_eq!(local("2026-03-29T00:59:59Z"), "2026-03-29 01:59:59");
        assert_eq!(local("2026-03-29T01:00:00Z"), "2026-03-29 03:00:00");
        assert_eq!(local("2026-10-25T00:59:59Z"), "2026-10-25 02:59:59");
        assert_eq!(local("2026-10-25T01:00:00Z"), "2026-10-25 02:00:00");
        // The Sunday before the last is not a transition.
        assert_eq!(local("2026-03-22T01:30:00Z"), "2026-03-22 02:30:00");
        assert_eq!(local("2026-10-18T01:30:00Z"), "2026-10-18 03:30:00");
        assert_eq!(local("2027-03-28T00:59:00Z"), "2027-03-28 01:59:00");
        assert_eq!(local("2027-03-28T01:00:00Z"), "2027-03-28 03:00:00");
        assert_eq!(local("2027-10-31T00:59:00Z"), "2027-10-31 02:59:00");
        assert_eq!(local("2027-10-31T01:00:00Z"), "2027-10-31 02:00:00");
        // 2021: the last Sunday of March was the 28th, of October the 31st.
        assert_eq!(local("2021-03-28T01:00:00Z"), "2021-03-28 03:00:00");
        assert_eq!(local("2021-10-31T00:59:00Z"), "2021-10-31 02:59:00");
    }

    #[test]
    fn wall_clock_times_get_the_offset_of_their_moment() {
        let f = from_stockholm_local;
        assert_eq!(f("2027-03-12T09:00").unwrap(), "2027-03-12T09:00:00+01:00");
        assert_eq!(
            f("2027-06-12T09:00:30").unwrap(),
            "2027-06-12T09:00:30+02:00"
        );
        assert_eq!(f("2027-06-12 09:00").unwrap(), "2027-06-12T09:00:00+02:00");
        assert_eq!(f("2027-06-12T09:00:00Z").unwrap(), "2027-06-12T09:00:00Z");
        // Spring: 02:00-02:59 does not exist on 28 March 2027.
        assert_eq!(f("2027-03-28T01:59").unwrap(), "2027-03-28T01:59:00+01:00");
        assert_eq!(f("2027-03-28T02:30"), Err(LocalTimeError::Skipped));
        assert_eq!(f("2027-03-28T03:00").unwrap(), "2027-03-28T03:00:00+02:00");
        // Autumn: 02:00-02:59 comes twice on 31 October 2027; the first, in summer time.
        assert_eq!(f("2027-10-31T02:30").unwrap(), "2027-10-31T02:30:00+02:00");
        assert_eq!(f("2027-10-31T03:00").unwrap(), "2027-10-31T03:00:00+01:00");
        for bad in [
            "",
            "2027-03-12",
            "2027-02-30T09:00",
            "2027-03-12T25:00",
            "12/3 09:00",
        ] {
            assert_eq!(f(bad), Err(LocalTimeError::Unreadable), "{bad}");
        }
        let back =
            |t: &str| to_stockholm_local(spindel_protocol::time::parse_rfc3339(t).unwrap().utc_ms);
        assert_eq!(back("2027-03-12T08:00:00Z"), "2027-03-12T09:00");
        assert_eq!(back("2027-10-31T02:30:00+02:00"), "2027-10-31T02:30");
    }

    #[test]
    fn only_utc_timestamps_parse() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_rfc3339_utc("2026-11-28T01:40:12+01:00"), None);
        assert_eq!(parse_rfc3339_utc("2026-11-28"), None);
        assert_eq!(parse_rfc3339_utc("2026-13-28T01:40:12Z"), None);
        assert_eq!(parse_rfc3339_utc("2026-11-28T01:40:12.Z"), None);
        assert_eq!(parse_rfc3339_utc("2026-11-28T0a:40:12Z"), None);
    }
}
