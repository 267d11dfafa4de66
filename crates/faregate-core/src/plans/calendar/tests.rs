use super::*;
use proptest::prelude::*;

/// Nanoseconds at `y-m-d h:00:00Z`.
fn at(year: i64, month: u8, day: u8, hour: u64) -> UnixNanos {
    let days = u64::try_from(days_from_civil(CivilDate { year, month, day })).unwrap();
    days * NANOS_PER_DAY + hour * 3600 * NANOS_PER_SEC
}

fn anchor(day: u8) -> AnchorDay {
    AnchorDay::try_new(day).unwrap()
}

/// The next `n` period ends from `start`.
fn ends(start: UnixNanos, anchor: AnchorDay, interval: Interval, n: usize) -> Vec<UnixNanos> {
    let mut out = Vec::with_capacity(n);
    let mut start = start;
    for _ in 0..n {
        start = period_end(start, anchor, interval);
        out.push(start);
    }
    out
}

#[test]
fn known_days_since_the_epoch() {
    let date = |year, month, day| CivilDate { year, month, day };
    assert_eq!(days_from_civil(date(1970, 1, 1)), 0);
    assert_eq!(days_from_civil(date(2000, 3, 1)), 11_017);
    assert_eq!(days_from_civil(date(2024, 2, 29)), 19_782);
    assert_eq!(civil_from_days(19_782), date(2024, 2, 29));
    assert_eq!(civil_from_days(-1), date(1969, 12, 31));
    assert_eq!(
        rfc3339(at(2024, 2, 29, 13) + 61 * NANOS_PER_SEC),
        "2024-02-29T13:01:01Z"
    );
}

#[test]
fn month_end_anchor_clamps_and_returns() {
    let jan31 = at(2024, 1, 31, 9);
    let expected = [
        at(2024, 2, 29, 9),
        at(2024, 3, 31, 9),
        at(2024, 4, 30, 9),
        at(2024, 5, 31, 9),
    ];
    assert_eq!(ends(jan31, anchor(31), Interval::Month, 4), expected);
    assert_eq!(
        period_end(at(2023, 1, 31, 0), anchor(31), Interval::Month),
        at(2023, 2, 28, 0)
    );
    assert_eq!(
        period_end(at(2024, 12, 15, 0), anchor(15), Interval::Month),
        at(2025, 1, 15, 0),
        "December rolls into the next year"
    );
}

#[test]
fn leap_day_anchor_renews_yearly_on_feb_28_then_29() {
    let expected = [
        at(2025, 2, 28, 0),
        at(2026, 2, 28, 0),
        at(2027, 2, 28, 0),
        at(2028, 2, 29, 0),
    ];
    assert_eq!(
        ends(at(2024, 2, 29, 0), anchor(29), Interval::Year, 4),
        expected
    );
}

#[test]
fn saturates_past_the_representable_range() {
    assert_eq!(
        period_end(UnixNanos::MAX, anchor(1), Interval::Year),
        UnixNanos::MAX
    );
    assert!(AnchorDay::try_new(0).is_none() && AnchorDay::try_new(32).is_none());
    assert_eq!(secs_until(10, 5), 1);
    assert_eq!(secs_until(0, NANOS_PER_SEC + 1), 2);
}

#[test]
fn interval_words_round_trip() {
    for i in [Interval::Month, Interval::Year] {
        assert_eq!(i.as_str().parse::<Interval>().unwrap(), i);
    }
    assert!("week".parse::<Interval>().is_err());
}

/// A start on its anchor day (clamped to the month's length, as every
/// period start after the first is), at any time of day, 1970 to 2199.
fn anchored_start() -> impl Strategy<Value = (UnixNanos, u8)> {
    (1970i64..2200, 1u8..=12, 1u8..=31, 0..NANOS_PER_DAY).prop_map(
        |(year, month, day, time_of_day)| {
            let clamped = day.min(days_in_month(year, month));
            let days = days_from_civil(CivilDate {
                year,
                month,
                day: clamped,
            });
            let start = u64::try_from(days).unwrap() * NANOS_PER_DAY + time_of_day;
            (start, day)
        },
    )
}

proptest! {
    #[test]
    fn civil_conversion_round_trips(days in 0i64..220_000) {
        let date = civil_from_days(days);
        prop_assert_eq!(days_from_civil(date), days);
        prop_assert!(date.day >= 1 && date.day <= days_in_month(date.year, date.month));
        let next = civil_from_days(days + 1);
        let same_month = next.month == date.month && next.day == date.day + 1;
        prop_assert!(same_month || next.day == 1);
    }

    #[test]
    fn monthly_periods_are_contiguous_and_restore_the_anchor(
        (start, day) in anchored_start(),
        count in 1usize..30,
    ) {
        check_periods(start, anchor(day), Interval::Month, count, 28..=31)?;
    }

    #[test]
    fn yearly_periods_are_contiguous_and_restore_the_anchor(
        (start, day) in anchored_start(),
        count in 1usize..8,
    ) {
        check_periods(start, anchor(day), Interval::Year, count, 365..=366)?;
    }

    #[test]
    fn never_panics(start in any::<u64>(), day in 1u8..=31) {
        let end = period_end(start, anchor(day), Interval::Month);
        prop_assert!(end > start || end == UnixNanos::MAX);
    }
}

fn check_periods(
    start: UnixNanos,
    anchor: AnchorDay,
    interval: Interval,
    count: usize,
    days: std::ops::RangeInclusive<u64>,
) -> Result<(), TestCaseError> {
    let mut period_start = start;
    for end in ends(start, anchor, interval, count) {
        prop_assert!(end > period_start, "strictly increasing");
        let length = end - period_start;
        prop_assert_eq!(length % NANOS_PER_DAY, 0, "same time of day");
        prop_assert!(days.contains(&(length / NANOS_PER_DAY)), "length {length}");
        let date = CivilDate::of(end);
        let last_day = days_in_month(date.year, date.month);
        prop_assert_eq!(date.day, anchor.get().min(last_day), "anchor restored");
        // Contiguous: the next period starts where this one ends.
        period_start = end;
    }
    Ok(())
}
