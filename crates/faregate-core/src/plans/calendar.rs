//! Calendar arithmetic for billing periods, in UTC, on [`UnixNanos`].
//!
//! We write the civil-date conversion ourselves instead of taking `chrono` or
//! `time`: the core needs only two pure functions (days to a proleptic
//! Gregorian date and back, after Howard Hinnant's public-domain derivation)
//! and keeps its dependency list to serde and thiserror.

use std::fmt;
use std::str::FromStr;

use crate::clock::UnixNanos;

/// Nanoseconds in one second.
pub(crate) const NANOS_PER_SEC: u64 = 1_000_000_000;
/// Nanoseconds in one UTC day (no leap seconds, as in Unix time).
pub(crate) const NANOS_PER_DAY: u64 = 86_400 * NANOS_PER_SEC;

/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const EPOCH_SHIFT: i64 = 719_468;
/// Days in one 400-year era.
const DAYS_PER_ERA: i64 = 146_097;

/// How often a plan renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    /// Every calendar month, on the anchor day.
    Month,
    /// Every year, on the anchor month and day.
    Year,
}

impl Interval {
    /// The word used in config and APIs: `month` or `year`.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }

    fn months(self) -> i64 {
        match self {
            Interval::Month => 1,
            Interval::Year => 12,
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "month" => Ok(Interval::Month),
            "year" => Ok(Interval::Year),
            _ => Err(format!("unknown interval {s:?} (known: month, year)")),
        }
    }
}

/// The day of the month a subscription renews on, 1 to 31. In months that
/// are shorter the period ends on their last day instead, and the next
/// period returns to the anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnchorDay(u8);

impl AnchorDay {
    /// The anchor `day`, or `None` outside 1..=31.
    pub fn try_new(day: u8) -> Option<Self> {
        (1..=31).contains(&day).then_some(Self(day))
    }

    /// The day of the month of `at`, in UTC.
    pub fn of(at: UnixNanos) -> Self {
        Self(CivilDate::of(at).day)
    }

    /// The day of the month, 1 to 31.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// A half-open span of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    /// The first instant in the period.
    pub start: UnixNanos,
    /// The first instant after it.
    pub end: UnixNanos,
}

impl Period {
    /// The billing period starting at `start`, or `None` when its end is
    /// past the representable time (the year 2554).
    pub(crate) fn starting(
        start: UnixNanos,
        anchor: AnchorDay,
        interval: Interval,
    ) -> Option<Self> {
        let end = period_end(start, anchor, interval);
        (end > start && end < UnixNanos::MAX).then_some(Self { start, end })
    }
}

/// The end of the billing period that starts at `start`: one `interval`
/// later, on `anchor` (clamped to the last day of a shorter month), at the
/// same UTC time of day as `start`.
///
/// Saturates at `UnixNanos::MAX` past the year 2554, which callers read as
/// "no such period can be represented".
pub fn period_end(start: UnixNanos, anchor: AnchorDay, interval: Interval) -> UnixNanos {
    let time_of_day = start % NANOS_PER_DAY;
    let date = CivilDate::of(start);
    let (year, month) = add_months(date.year, date.month, interval.months());
    let day = anchor.0.min(days_in_month(year, month));
    let days = days_from_civil(CivilDate { year, month, day });
    u64::try_from(days)
        .ok()
        .and_then(|d| d.checked_mul(NANOS_PER_DAY))
        .and_then(|n| n.checked_add(time_of_day))
        .unwrap_or(UnixNanos::MAX)
}

/// `at` as an RFC 3339 UTC timestamp to the second, such as
/// `2024-02-29T13:05:00Z`, for details shown to callers.
pub fn rfc3339(at: UnixNanos) -> String {
    let date = CivilDate::of(at);
    let secs = (at % NANOS_PER_DAY) / NANOS_PER_SEC;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        date.year,
        date.month,
        date.day,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Seconds from `now` until `at`, rounded up, at least one: a `Retry-After`.
pub fn secs_until(now: UnixNanos, at: UnixNanos) -> u64 {
    at.saturating_sub(now).div_ceil(NANOS_PER_SEC).max(1)
}

/// A date in the proleptic Gregorian calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CivilDate {
    pub(crate) year: i64,
    /// 1 to 12.
    pub(crate) month: u8,
    /// 1 to the month's length.
    pub(crate) day: u8,
}

impl CivilDate {
    /// The UTC date of `at`.
    pub(crate) fn of(at: UnixNanos) -> Self {
        // u64::MAX nanoseconds are about 213,500 days: always fits.
        let days = i64::try_from(at / NANOS_PER_DAY).unwrap_or(i64::MAX);
        civil_from_days(days)
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1 to 12) of `year`.
pub(crate) fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `(year, month)` moved `months` forward.
fn add_months(year: i64, month: u8, months: i64) -> (i64, u8) {
    let index = year * 12 + i64::from(month) - 1 + months;
    let month = u8::try_from(index.rem_euclid(12) + 1).unwrap_or(1);
    (index.div_euclid(12), month)
}

/// Days since 1970-01-01 of `date`. The year is shifted to start in March
/// so that the leap day is the last day of its year; then a year's days
/// before a month follow the linear formula `(153 m + 2) / 5`.
pub(crate) fn days_from_civil(date: CivilDate) -> i64 {
    let month = i64::from(date.month);
    let year = if month <= 2 { date.year - 1 } else { date.year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(date.day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - EPOCH_SHIFT
}

/// The date `days` after 1970-01-01: the inverse of [`days_from_civil`].
pub(crate) fn civil_from_days(days: i64) -> CivilDate {
    let shifted = days + EPOCH_SHIFT;
    let era = shifted.div_euclid(DAYS_PER_ERA);
    let day_of_era = shifted - era * DAYS_PER_ERA;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    CivilDate {
        year,
        // Both are in range by construction (1..=12 and 1..=31).
        month: u8::try_from(month).unwrap_or(1),
        day: u8::try_from(day).unwrap_or(1),
    }
}

#[cfg(test)]
mod tests;
