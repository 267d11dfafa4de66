//! Random histories of events on random timestamps: nothing panics and
//! every invariant holds after every step.

use proptest::prelude::*;

use crate::clock::UnixNanos;
use crate::plans::fixtures::{DAY, at, basic_spec, catalog, usd};
use crate::plans::*;

/// Something that happens to a subscription in a random history.
#[derive(Debug, Clone)]
enum Step {
    Event(Event),
    Record(u64),
    Release(u64),
    Admit(&'static str, u64),
}

fn step() -> impl Strategy<Value = Step> {
    let event = prop_oneof![
        3 => Just(Event::Activate),
        2 => Just(Event::PaymentMethodAttached),
        1 => Just(Event::PaymentMethodDetached),
        2 => Just(Event::InvoicePaid),
        3 => Just(Event::PaymentFailed),
        1 => Just(Event::Cancel(CancelAt::PeriodEnd)),
        1 => Just(Event::Cancel(CancelAt::Now)),
        3 => Just(Event::Tick),
    ];
    let route = prop_oneof![
        Just("search"),
        Just("status"),
        Just("export"),
        Just("admin")
    ];
    prop_oneof![
        3 => event.prop_map(Step::Event),
        2 => (0u64..120).prop_map(Step::Record),
        1 => (0u64..50).prop_map(Step::Release),
        2 => (route, 0u64..120).prop_map(|(r, u)| Step::Admit(r, u)),
    ]
}

/// Time between steps: mostly forward, sometimes far, sometimes back.
fn gap() -> impl Strategy<Value = i64> {
    let day = 86_400_000_000_000i64;
    prop_oneof![
        4 => 0..2 * day,
        2 => 0..60 * day,
        1 => 0..800 * day,
        1 => -day..0,
    ]
}

fn plan() -> impl Strategy<Value = Plan> {
    let overage = prop_oneof![
        Just(Overage::HardStop),
        (1u64..1_000).prop_map(|p| Overage::FromCredits { unit_price: usd(p) }),
    ];
    let interval = prop_oneof![Just(Interval::Month), Just(Interval::Year)];
    let trial = proptest::option::of((1u64..40 * 86_400).prop_map(std::time::Duration::from_secs));
    let price = prop_oneof![Just(0u64), 1u64..100_000_000];
    (overage, interval, trial, 0u64..5 * 86_400, price).prop_map(
        |(overage, interval, trial, grace, price)| {
            Plan::try_new(PlanSpec {
                overage,
                interval,
                trial,
                grace: std::time::Duration::from_secs(grace),
                price: usd(price),
                ..basic_spec()
            })
            .unwrap()
        },
    )
}

fn start(plan: &Plan, now: UnixNanos, method: PaymentMethod) -> Option<Transition> {
    Subscription::start_trial(plan, now, method)
        .or_else(|_| Subscription::start(plan, now, method))
        .ok()
}

/// What must hold of a subscription and its plan after every step.
fn check(sub: &Subscription, plan: &Plan) -> Result<(), TestCaseError> {
    prop_assert_eq!(sub.check_invariants(), Ok(()));
    prop_assert!(sub.period.start < sub.period.end);
    for (group, used) in &sub.usage {
        let quota = plan.quota(group).map(|q| q.included);
        prop_assert!(quota.is_some(), "unknown group {group}");
        prop_assert!(used.included <= quota.unwrap_or(0), "{used:?}");
        prop_assert_eq!(used.total(), used.included.saturating_add(used.overage));
    }
    if let Some(open) = sub.open_invoice {
        prop_assert!(open.id.0 <= sub.invoices_issued);
    }
    Ok(())
}

/// Every invoice adds up, and numbers only grow.
fn check_effects(effects: &[Effect], last_id: &mut u64) -> Result<(), TestCaseError> {
    for effect in effects {
        match effect {
            Effect::IssueInvoice(invoice) => {
                prop_assert!(invoice.id.0 > *last_id);
                *last_id = invoice.id.0;
                let due: u64 = invoice
                    .lines
                    .iter()
                    .filter(|l| l.item.settlement() == Settlement::Due)
                    .map(|l| l.amount.atomic())
                    .sum();
                prop_assert_eq!(invoice.amount_due.atomic(), due);
                prop_assert!(!invoice.lines.is_empty());
            }
            Effect::ResetQuota { period } => prop_assert!(period.start < period.end),
            Effect::RetryPayment { .. } | Effect::Notify(_) => {}
        }
    }
    Ok(())
}

fn check_admission(a: &Admission<'_>, plan: &Plan) -> Result<(), TestCaseError> {
    match a {
        Admission::Serve(grant) => {
            if let Some(quota) = grant.quota {
                let included = plan.quota(quota.group).map_or(0, |q| q.included);
                prop_assert!(quota.remaining <= included);
            }
            let charged = grant.overage_units > 0;
            prop_assert_eq!(charged, grant.overage_cost.is_some());
        }
        Admission::Refuse(r) => {
            prop_assert!(matches!(r.status(), 402 | 403), "{r:?}");
            prop_assert!(!r.detail.is_empty());
        }
    }
    Ok(())
}

/// Recording what admission served counts the overage admission priced.
fn check_record_agrees(
    sub: &Subscription,
    plan: &Plan,
    admission: &Admission<'_>,
    units: u64,
) -> Result<(), TestCaseError> {
    let Admission::Serve(Grant {
        quota: Some(quota),
        overage_units,
        ..
    }) = admission
    else {
        return Ok(());
    };
    let recorded = sub.clone().record(plan, quota.group, units);
    prop_assert_eq!(recorded.map(|r| r.overage_units), Ok(*overage_units));
    Ok(())
}

fn run(
    plan: &Plan,
    start_at: UnixNanos,
    method: PaymentMethod,
    steps: &[(i64, Step)],
) -> Result<(), TestCaseError> {
    let plans = catalog();
    let Some(first) = start(plan, start_at, method) else {
        return Ok(());
    };
    let mut last_id = 0;
    check_effects(&first.effects, &mut last_id)?;
    let mut sub = first.subscription;
    let mut now = start_at;
    for (gap, step) in steps {
        now = now.saturating_add_signed(*gap);
        match step {
            Step::Event(event) => {
                if let Ok(t) = sub.apply(plan, *event, now) {
                    check_effects(&t.effects, &mut last_id)?;
                    sub = t.subscription;
                }
            }
            Step::Record(units) => {
                let recorded = sub.record(plan, "calls", *units);
                prop_assert!(recorded.is_ok());
            }
            Step::Release(units) => {
                sub.release("calls", *units);
            }
            Step::Admit(route, units) => {
                let admission = admit(&sub, plan, &plans, route, *units, now);
                check_admission(&admission, plan)?;
                check_record_agrees(&sub, plan, &admission, *units)?;
            }
        }
        check(&sub, plan)?;
    }
    Ok(())
}

fn method() -> impl Strategy<Value = PaymentMethod> {
    prop_oneof![1 => Just(PaymentMethod::Missing), 3 => Just(PaymentMethod::Attached)]
}

proptest! {
    #[test]
    fn random_histories_keep_every_invariant(
        plan in plan(),
        start_at in 0u64..(1 << 62),
        method in method(),
        steps in proptest::collection::vec((gap(), step()), 1..60),
    ) {
        run(&plan, start_at, method, &steps)?;
    }

    #[test]
    fn histories_at_the_edge_of_time_do_not_panic(
        plan in plan(),
        before_end in 0u64..(3_000 * DAY),
        method in method(),
        steps in proptest::collection::vec((gap(), step()), 1..40),
    ) {
        let start_at = at(2554, 7, 1, 0) - before_end;
        run(&plan, start_at, method, &steps)?;
    }
}
