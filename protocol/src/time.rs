//! Formatting of millisecond timestamps as RFC 3339 UTC (`2026-11-27T22:20:58.123Z`).

/// Formats milliseconds since the Unix epoch as RFC 3339 in UTC with millisecond precision.
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// An RFC 3339 date-time as written with its offset (`2027-03-12T09:00:00+01:00`, or `Z`):
/// the instant, and the date as the writer's clock showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Milliseconds since the Unix epoch (UTC); negative before 1970.
    pub utc_ms: i64,
    /// The offset from UTC as written, in minutes (`+01:00` is 60, `Z` is 0).
    pub offset_minutes: i32,
    /// The year, month and day as written (the writer's local date).
    pub year: i64,
    pub month: u32,
    pub day: u32,
}

/// Parses RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` strictly: upper-case `T`
/// and `Z`, seconds required, a real calendar date, no leap second.
pub fn parse_rfc3339(s: &str) -> Option<DateTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 40 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r.clone())?.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(i64::from(year), month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if at(i, b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        for (n, c) in b[i + 1..i + 1 + digits].iter().take(3).enumerate() {
            frac_ms += i64::from(c - b'0') * [100, 10, 1][n];
        }
        i += 1 + digits;
    }
    let offset_minutes: i32 = match b.get(i) {
        Some(b'Z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && at(i + 3, b':') => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = (h * 60 + m) as i32;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let local_ms = (days * 86_400 + i64::from(hour * 3600 + minute * 60 + second)) * 1000 + frac_ms;
    Some(DateTime {
        utc_ms: local_ms - i64::from(offset_minutes) * 60_000,
        offset_minutes,
        year: i64::from(year),
        month,
        day,
    })
}

/// The days of `month` (1-12) in `year`, leap years counted.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    }
}

/// (year, month, day) to days since 1970-01-01 in the proleptic Gregorian calendar (Howard
/// Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_796_336_458_123), "2026-12-03T22:20:58.123Z");
        assert_eq!(rfc3339_ms(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn rfc3339_with_offsets_is_parsed_strictly() {
        let t = parse_rfc3339("2027-03-12T09:00:00+01:00").unwrap();
        assert_eq!(
            t.utc_ms,
            parse_rfc3339("2027-03-12T08:00:00Z").unwrap().utc_ms
        );
        assert_eq!(
            (t.year, t.month, t.day, t.offset_minutes),
            (2027, 3, 12, 60)
        );
        let t = parse_rfc3339("2000-02-29T00:00:00.5-02:30").unwrap();
        assert_eq!(t.utc_ms, 951_782_400_000 + 500 + 150 * 60_000);
        for day in [-800_000i64, -1, 0, 1, 10_957, 20_000, 47_482] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        for bad in [
            "2027-03-12T09:00:00",
            "2027-03-12T09:00+01:00",
            "2027-03-12 09:00:00+01:00",
            "2027-03-12t09:00:00z",
            "2027-02-29T09:00:00Z",
            "2027-13-01T09:00:00Z",
            "2027-03-12T24:00:00Z",
            "2027-03-12T09:00:60Z",
            "2027-03-12T09:00:00+24:00",
            "2027-03-12T09:00:00.Z",
            "2027-03-12T09:00:00Z ",
            "2027-03-12T09:00:00+0100",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
