//! Instants at the API's edge. The store keeps unix milliseconds; the API
//! writes RFC 3339 in UTC with milliseconds (`2025-01-31T09:30:00.000Z`)
//! and reads either RFC 3339 or unix seconds.
//!
//! Written here rather than taken from a date crate because the workspace
//! has none and this is all the admin API needs: proleptic Gregorian civil
//! dates in UTC, after Howard Hinnant's `days_from_civil` and
//! `civil_from_days`.

use serde_json::Value;

const MS_PER_DAY: i64 = 86_400_000;

/// The last instant the API reads or writes: 9999-12-31T23:59:59Z.
pub(crate) const MAX_SECONDS: i64 = 253_402_300_799;

/// `ms` (unix milliseconds) as RFC 3339 in UTC with milliseconds.
pub(crate) fn format_ms(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (secs, millis) = (in_day / 1000, in_day % 1000);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// An instant in a JSON body: unix seconds (an integer) or RFC 3339 text.
pub(crate) fn instant_from_json(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("{n} is not a whole number of unix seconds"))
            .and_then(from_unix_seconds),
        Value::String(s) => from_rfc3339(s),
        _ => Err("give unix seconds or an RFC 3339 time such as \"2030-01-31T00:00:00Z\"".into()),
    }
}

/// An instant in a query string: unix seconds (digits) or RFC 3339. It
/// only bounds a search and is never written back, so any RFC 3339 time is
/// read, years 0000 to 9999 at any offset, as the document promises.
pub(crate) fn instant_from_text(text: &str) -> Result<i64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = text
            .parse::<i64>()
            .map_err(|_| format!("{text} is out of range"))?;
        return from_unix_seconds(seconds);
    }
    parse_rfc3339(text.as_bytes()).ok_or_else(|| not_rfc3339(text))
}

fn from_unix_seconds(seconds: i64) -> Result<i64, String> {
    if !(0..=MAX_SECONDS).contains(&seconds) {
        return Err(format!(
            "{seconds} is outside 1970-01-01 to 9999-12-31 in unix seconds"
        ));
    }
    Ok(seconds * 1000)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into unix
/// milliseconds, 1970 to 9999 in UTC (what [`format_ms`] writes back);
/// digits past the millisecond are dropped.
pub(crate) fn from_rfc3339(text: &str) -> Result<i64, String> {
    let ms = parse_rfc3339(text.as_bytes()).ok_or_else(|| not_rfc3339(text))?;
    if !(0..=MAX_SECONDS * 1000 + 999).contains(&ms) {
        return Err(format!(
            "{text:?} is outside 1970-01-01 to 9999-12-31 in UTC"
        ));
    }
    Ok(ms)
}

fn not_rfc3339(text: &str) -> String {
    format!("{text:?} is not an RFC 3339 time such as \"2030-01-31T00:00:00Z\"")
}

/// Any RFC 3339 time, in unix milliseconds (negative before 1970).
fn parse_rfc3339(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let (millis, rest) = fraction(&b[19..])?;
    let offset = offset_seconds(rest)?;
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(seconds * 1000 + millis)
}

/// `.123…` at the start of `b`: the milliseconds and what follows.
fn fraction(b: &[u8]) -> Option<(i64, &[u8])> {
    let Some(rest) = b.strip_prefix(b".") else {
        return Some((0, b));
    };
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let mut millis = 0;
    for i in 0..3 {
        millis = millis * 10
            + rest
                .get(i)
                .filter(|_| i < n)
                .map_or(0, |c| i64::from(c - b'0'));
    }
    Some((millis, &rest[n..]))
}

fn offset_seconds(b: &[u8]) -> Option<i64> {
    match b {
        b"Z" | b"z" => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = h * 3600 + m * 60;
            Some(if *sign == b'-' { -offset } else { offset })
        }
        _ => None,
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `z` days after 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            format_ms(MAX_SECONDS * 1000 + 999),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn parses_rfc3339_with_offsets_and_fractions() {
        assert_eq!(from_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(from_rfc3339("1970-01-01t00:00:01.5z"), Ok(1500));
        assert_eq!(from_rfc3339("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(from_rfc3339("1969-12-31T23:00:00-01:00"), Ok(0));
        assert_eq!(
            from_rfc3339("2000-02-29T00:00:00.123456789Z"),
            Ok(951_782_400_123)
        );
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for bad in [
            "",
            "2030-01-31",
            "2030-01-31T00:00:00",
            "2030-02-30T00:00:00Z",
            "2031-02-29T00:00:00Z",
            "2030-13-01T00:00:00Z",
            "2030-01-01T24:00:00Z",
            "2030-01-01T00:00:60Z",
            "2030-01-01T00:00:00.Z",
            "2030-01-01T00:00:00+0100",
            "2030-01-01T00:00:00Z ",
            "1969-12-31T23:59:59Z",
            "+2030-01-01T00:00:00Z",
            "2030-01-01T00:00:00\u{e9}",
        ] {
            assert!(from_rfc3339(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn instants_in_json_and_query_text() {
        assert_eq!(instant_from_json(&serde_json::json!(60)), Ok(60_000));
        assert_eq!(
            instant_from_json(&serde_json::json!("1970-01-01T00:01:00Z")),
            Ok(60_000)
        );
        for bad in [
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(true),
            serde_json::json!(MAX_SECONDS + 1),
            serde_json::json!(u64::MAX),
        ] {
            assert!(instant_from_json(&bad).is_err(), "{bad}");
        }
        assert_eq!(instant_from_text("60"), Ok(60_000));
        assert!(instant_from_text("99999999999999999999").is_err());
        assert!(instant_from_text("-5").is_err());
        assert!(instant_from_text("").is_err());
        assert!(instant_from_text("2030-02-30T00:00:00Z").is_err());
    }

    /// A query filter reads every RFC 3339 time the document allows
    /// (schemathesis draws `date-time`s from year 0001 on, which were
    /// refused); instants that are stored and written back stay 1970 to
    /// 9999.
    #[test]
    fn filters_read_any_rfc3339_year() {
        assert_eq!(instant_from_text("1969-12-31T23:59:59Z"), Ok(-1000));
        assert_eq!(
            instant_from_text("0000-01-01T00:00:00+23:59"),
            Ok(-62_167_305_540_000)
        );
        assert_eq!(
            instant_from_text("9999-12-31T23:59:59.999-23:59"),
            Ok((MAX_SECONDS + 86_340) * 1000 + 999)
        );
        assert!(from_rfc3339("9999-12-31T23:59:59-00:01").is_err());
        assert!(from_rfc3339("0001-01-01T00:00:00Z").is_err());
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(ms in 0..=MAX_SECONDS * 1000 + 999) {
            prop_assert_eq!(from_rfc3339(&format_ms(ms)), Ok(ms));
        }
    }
}
