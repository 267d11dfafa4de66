//! Plans, instants and subscriptions shared by the tests of this module.

use std::time::Duration;

use crate::clock::UnixNanos;
use crate::money::{Currency, Money};

use super::calendar::{CivilDate, Interval, NANOS_PER_DAY, NANOS_PER_SEC, days_from_civil};
use super::plan::{Overage, Plan, PlanId, PlanSpec, Quota};
use super::subscription::{PaymentMethod, Subscription};

/// One day.
pub(crate) const DAY: u64 = NANOS_PER_DAY;
/// One hour.
pub(crate) const HOUR: u64 = 3_600 * NANOS_PER_SEC;
/// 2024-01-31T12:00:00Z: a month-end anchor in a leap year.
pub(crate) const T0: UnixNanos = 19_753 * DAY + 12 * HOUR;

/// `y-m-d` at `hour`:00 UTC.
pub(crate) fn at(year: i64, month: u8, day: u8, hour: u64) -> UnixNanos {
    let days = days_from_civil(CivilDate { year, month, day });
    u64::try_from(days).unwrap() * DAY + hour * HOUR
}

/// `atomic` micro-dollars.
pub(crate) fn usd(atomic: u64) -> Money {
    Money::from_atomic(atomic, Currency::USD)
}

fn quota(group: &str, routes: &[&str], included: u64) -> Quota {
    Quota {
        group: group.into(),
        routes: routes.iter().map(|r| (*r).into()).collect(),
        included,
    }
}

/// A valid spec to vary: $10 a month, 14-day trial, 3 days of grace,
/// `search` and `summarize` sharing 100 calls, `status` unmetered.
pub(crate) fn basic_spec() -> PlanSpec {
    PlanSpec {
        id: PlanId::new("basic"),
        name: "Basic".into(),
        price: usd(10_000_000),
        interval: Interval::Month,
        trial: Some(Duration::from_secs(14 * 86_400)),
        grace: Duration::from_secs(3 * 86_400),
        routes: vec!["search".into(), "summarize".into(), "status".into()],
        quotas: vec![quota("calls", &["search", "summarize"], 100)],
        overage: Overage::HardStop,
    }
}

/// The basic plan: hard stop at 100 calls.
pub(crate) fn basic_plan() -> Plan {
    Plan::try_new(basic_spec()).unwrap()
}

/// The basic plan with overage at $0.01 a call from credits.
pub(crate) fn metered_plan() -> Plan {
    Plan::try_new(PlanSpec {
        id: PlanId::new("metered"),
        overage: Overage::FromCredits {
            unit_price: usd(10_000),
        },
        ..basic_spec()
    })
    .unwrap()
}

/// A yearly plan that also includes `export`, 10 a year.
pub(crate) fn pro_plan() -> Plan {
    let mut spec = basic_spec();
    spec.id = PlanId::new("pro");
    spec.name = "Pro".into();
    spec.price = usd(500_000_000);
    spec.interval = Interval::Year;
    spec.routes.push("export".into());
    spec.quotas.push(quota("exports", &["export"], 10));
    Plan::try_new(spec).unwrap()
}

/// Every plan of the test catalog.
pub(crate) fn catalog() -> Vec<Plan> {
    vec![basic_plan(), metered_plan(), pro_plan()]
}

/// A subscription to `plan` whose trial starts at `now`, with no payment
/// method.
pub(crate) fn trialing(plan: &Plan, now: UnixNanos) -> Subscription {
    Subscription::start_trial(plan, now, PaymentMethod::Missing)
        .unwrap()
        .subscription
}

/// A subscription to `plan` paid from `now`, with a payment method.
pub(crate) fn active(plan: &Plan, now: UnixNanos) -> Subscription {
    Subscription::start(plan, now, PaymentMethod::Attached)
        .unwrap()
        .subscription
}
