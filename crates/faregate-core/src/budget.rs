//! Spending budgets and token/request limits for LLM callers: a budget is an
//! amount per UTC calendar day or month; limits count tokens and requests
//! per minute. The arithmetic is here; the gateway keeps the counters.

use std::fmt;
use std::str::FromStr;

use crate::clock::UnixNanos;
use crate::money::{Currency, Money, MoneyError};
use crate::plans::calendar::{CivilDate, NANOS_PER_DAY, days_from_civil};

/// The window a budget covers, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetPeriod {
    /// A calendar day, from midnight UTC.
    Day,
    /// A calendar month, from the first at midnight UTC.
    Month,
}

impl BudgetPeriod {
    /// `day` or `month`, as in config and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Month => "month",
        }
    }

    /// The start and end (exclusive) of the window holding `at`.
    pub fn window(self, at: UnixNanos) -> (UnixNanos, UnixNanos) {
        let date = CivilDate::of(at);
        let (start, end) = match self {
            BudgetPeriod::Day => {
                let start = at - at % NANOS_PER_DAY;
                return (start, start.saturating_add(NANOS_PER_DAY));
            }
            BudgetPeriod::Month => {
                let first = CivilDate { day: 1, ..date };
                let next = if date.month == 12 {
                    CivilDate {
                        year: date.year + 1,
                        month: 1,
                        day: 1,
                    }
                } else {
                    CivilDate {
                        month: date.month + 1,
                        ..first
                    }
                };
                (days_from_civil(first), days_from_civil(next))
            }
        };
        let nanos = |days: i64| {
            u64::try_from(days)
                .ok()
                .and_then(|d| d.checked_mul(NANOS_PER_DAY))
                .unwrap_or(UnixNanos::MAX)
        };
        (nanos(start), nanos(end))
    }
}

impl fmt::Display for BudgetPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BudgetPeriod {
    type Err = BudgetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(BudgetPeriod::Day),
            "month" => Ok(BudgetPeriod::Month),
            other => Err(BudgetError::Period(other.to_owned())),
        }
    }
}

/// Why a budget could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// Not `day` or `month`.
    #[error("budget period must be \"day\" or \"month\", not {0:?}")]
    Period(String),
    /// Not `AMOUNT CUR/PERIOD`.
    #[error("budget must look like \"5.00 USD/day\" or \"100 USD/month\", not {0:?}")]
    Shape(String),
    /// The amount is not money.
    #[error("budget amount: {0}")]
    Amount(#[from] MoneyError),
}

/// At most `amount` spent per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The most that may be spent in one window.
    pub amount: Money,
    /// The window.
    pub period: BudgetPeriod,
}

impl Budget {
    /// Reads `"5.00 USD/day"`; the currency may be left out when
    /// `default_currency` is given (`"5.00/day"`).
    pub fn parse(text: &str, default_currency: Option<Currency>) -> Result<Budget, BudgetError> {
        let shape = || BudgetError::Shape(text.to_owned());
        let (money, period) = text.trim().rsplit_once('/').ok_or_else(shape)?;
        let period = period.trim().parse()?;
        let mut parts = money.split_whitespace();
        let amount = parts.next().ok_or_else(shape)?;
        let currency = match (parts.next(), default_currency) {
            (Some(code), _) => Currency::from_code(code)?,
            (None, Some(currency)) => currency,
            (None, None) => return Err(shape()),
        };
        if parts.next().is_some() {
            return Err(shape());
        }
        Ok(Budget {
            amount: Money::parse_decimal(amount, currency)?,
            period,
        })
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.amount.decimal_string(),
            self.amount.currency().code(),
            self.period
        )
    }
}

/// What an LLM caller may use: a spending budget and per-minute limits.
/// Every member is optional; `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LlmLimits {
    /// Spending per day or month.
    pub budget: Option<Budget>,
    /// Tokens (input and output) per minute.
    pub tpm: Option<u64>,
    /// Requests per minute.
    pub rpm: Option<u64>,
}

impl LlmLimits {
    /// These limits, each member falling back to `defaults`'.
    #[must_use]
    pub fn or(self, defaults: LlmLimits) -> LlmLimits {
        LlmLimits {
            budget: self.budget.or(defaults.budget),
            tpm: self.tpm.or(defaults.tpm),
            rpm: self.rpm.or(defaults.rpm),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = NANOS_PER_DAY;

    #[test]
    fn budgets_read_with_or_without_a_currency() {
        let b = Budget::parse("5.00 USD/day", None).unwrap();
        assert_eq!(b.amount, Money::from_atomic(5_000_000, Currency::USD));
        assert_eq!(b.period, BudgetPeriod::Day);
        assert_eq!(
            b.to_string(),
            format!("{} USD/day", b.amount.decimal_string())
        );
        let b = Budget::parse("100/month", Some(Currency::USD)).unwrap();
        assert_eq!(b.period, BudgetPeriod::Month);
        for bad in [
            "5.00 USD",
            "5.00/week",
            "/day",
            "5.00/day",
            "x USD/day",
            "1 USD extra/day",
        ] {
            assert!(Budget::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_day_runs_midnight_to_midnight_utc() {
        // 2026-11-22T15:00:00Z
        let at = 1_795_359_600 * 1_000_000_000;
        let (start, end) = BudgetPeriod::Day.window(at);
        assert_eq!(start % DAY, 0);
        assert!(start <= at && at < end);
        assert_eq!(end - start, DAY);
    }

    #[test]
    fn a_month_runs_from_the_first_to_the_next_first() {
        // 2024-02-29T12:00:00Z: a leap February, 29 days.
        let at = (days_from_civil(CivilDate {
            year: 2024,
            month: 2,
            day: 29,
        }) as u64)
            * DAY
            + DAY / 2;
        let (start, end) = BudgetPeriod::Month.window(at);
        assert_eq!(
            start,
            days_from_civil(CivilDate {
                year: 2024,
                month: 2,
                day: 1
            }) as u64
                * DAY
        );
        assert_eq!(end - start, 29 * DAY);
        // December rolls into January.
        let dec = (days_from_civil(CivilDate {
            year: 2025,
            month: 12,
            day: 31,
        }) as u64)
            * DAY;
        let (start, end) = BudgetPeriod::Month.window(dec);
        assert_eq!(end - start, 31 * DAY);
        assert_eq!(
            CivilDate::of(end),
            CivilDate {
                year: 2026,
                month: 1,
                day: 1
            }
        );
    }

    #[test]
    fn key_limits_fall_back_member_by_member() {
        let defaults = LlmLimits {
            budget: None,
            tpm: Some(1000),
            rpm: Some(10),
        };
        let key = LlmLimits {
            rpm: Some(5),
            ..LlmLimits::default()
        };
        assert_eq!(
            key.or(defaults),
            LlmLimits {
                budget: None,
                tpm: Some(1000),
                rpm: Some(5)
            }
        );
    }
}
