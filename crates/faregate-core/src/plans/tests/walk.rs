//! The whole life of one subscription, on explicit timestamps: trial,
//! expiry, activation, quota, overage, rollover, failed payment, grace,
//! recovery, cancellation.

use crate::clock::UnixNanos;
use crate::plans::fixtures::{at, basic_spec, catalog, usd};
use crate::plans::*;
use crate::problem::ActionKind;
use crate::problem::ProblemCode;

/// The new state, after checking it is consistent.
fn next(t: Result<Transition, TransitionError>, expected: &[Effect]) -> Subscription {
    let t = t.unwrap();
    assert_eq!(t.effects, expected);
    assert_eq!(t.subscription.check_invariants(), Ok(()));
    t.subscription
}

fn served<'p>(a: Admission<'p>) -> Grant<'p> {
    match a {
        Admission::Serve(grant) => grant,
        Admission::Refuse(r) => panic!("refused: {r:?}"),
    }
}

fn refused(a: Admission<'_>, code: ProblemCode, kinds: &[ActionKind]) -> Refusal {
    let Admission::Refuse(r) = a else {
        panic!("served, expected {code:?}");
    };
    assert_eq!((r.code, r.status()), (code, 402));
    assert_eq!(
        r.remedies.iter().map(Remedy::kind).collect::<Vec<_>>(),
        kinds
    );
    r
}

/// Admission of `units` on `search`, with the test catalog.
fn admit<'p>(sub: &Subscription, plan: &'p Plan, units: u64, now: UnixNanos) -> Admission<'p> {
    crate::plans::admit(sub, plan, &catalog(), "search", units, now)
}

#[test]
fn one_subscription_from_trial_to_expiry() {
    use ActionKind as A;
    let plans = catalog();
    let plan = &plans[0];
    let basic = PlanId::new("basic");

    // Trial: served with the quota left.
    let t0 = at(2024, 1, 31, 12);
    let trial_end = at(2024, 2, 14, 12);
    let mut sub = next(
        Subscription::start_trial(plan, t0, PaymentMethod::Missing),
        &[],
    );
    let g = served(admit(&sub, plan, 1, at(2024, 2, 1, 12)));
    assert_eq!((g.quota.unwrap().remaining, g.warning), (99, None));
    sub.record(plan, "calls", 1).unwrap();

    // Trial ending: a warning with its end.
    let g = served(admit(&sub, plan, 1, at(2024, 2, 12, 12)));
    let ending = Warning {
        reason: WarningReason::TrialEnding,
        until: trial_end,
    };
    assert_eq!(g.warning, Some(ending));

    // Trial expired, before and after the tick that records it.
    let now = at(2024, 2, 14, 13);
    let trial_expired = [A::UpdatePaymentMethod, A::Renew, A::UpgradePlan];
    refused(
        admit(&sub, plan, 1, now),
        ProblemCode::TrialExpired,
        &trial_expired,
    );
    let sub = next(sub.tick(plan, now), &[Effect::Notify(Notice::TrialEnded)]);
    assert_eq!(sub.state, SubscriptionState::Expired);
    refused(
        admit(&sub, plan, 1, now),
        ProblemCode::TrialExpired,
        &trial_expired,
    );

    // Payment method, then activation: a period anchored on the 15th.
    let now = at(2024, 2, 15, 9);
    assert_eq!(
        sub.activate(plan, now),
        Err(TransitionError::PaymentMethodRequired)
    );
    let sub = next(sub.payment_method_attached(plan, now), &[]);
    let first = Period {
        start: now,
        end: at(2024, 3, 15, 9),
    };
    let t = sub.activate(plan, now).unwrap();
    let Effect::IssueInvoice(invoice) = &t.effects[1] else {
        panic!("{:?}", t.effects)
    };
    assert_eq!(
        (invoice.id, invoice.amount_due),
        (InvoiceId(1), usd(10_000_000))
    );
    assert_eq!(invoice.due_at, at(2024, 2, 22, 9));
    let activated = [
        Effect::ResetQuota { period: first },
        Effect::IssueInvoice(invoice.clone()),
        Effect::Notify(Notice::Activated),
    ];
    let sub = next(Ok(t), &activated);
    assert_eq!((sub.state, sub.period), (SubscriptionState::Active, first));
    let mut sub = next(sub.invoice_paid(plan, at(2024, 2, 15, 10)), &[]);

    // Active with quota; 80 % crossed once.
    let g = served(admit(&sub, plan, 1, at(2024, 2, 20, 9)));
    let status = g.quota.unwrap();
    assert_eq!((status.remaining, status.resets_at), (99, Some(first.end)));
    assert!(sub.record(plan, "calls", 79).unwrap().crossed.is_empty());
    let crossed = sub.record(plan, "calls", 1).unwrap().crossed;
    assert_eq!(crossed, [QuotaThreshold::Percent80]);

    // Quota exhausted: 402 until the period ends, two weeks later.
    let crossed = sub.record(plan, "calls", 20).unwrap().crossed;
    assert_eq!(crossed, [QuotaThreshold::Percent100]);
    let now = at(2024, 3, 1, 9);
    let r = refused(
        admit(&sub, plan, 1, now),
        ProblemCode::QuotaExhausted,
        &[A::UpgradePlan],
    );
    assert_eq!(
        (r.retry_after_secs, r.resets_at),
        (Some(14 * 86_400), Some(first.end))
    );

    // The operator moves the plan to overage from credits (a config
    // reload: same id); the next calls are charged per unit.
    let unit_price = usd(10_000);
    let plan = &Plan::try_new(PlanSpec {
        overage: Overage::FromCredits { unit_price },
        ..basic_spec()
    })
    .unwrap();
    let g = served(admit(&sub, plan, 3, at(2024, 3, 2, 9)));
    assert_eq!((g.overage_units, g.overage_cost), (3, Some(usd(30_000))));
    assert_eq!(sub.record(plan, "calls", 3).unwrap().overage_units, 3);

    // Rollover: the next period's subscription line plus this period's
    // overage (already paid from credits), and a fresh quota.
    let now = at(2024, 3, 15, 9);
    let second = Period {
        start: now,
        end: at(2024, 4, 15, 9),
    };
    let lines = vec![
        InvoiceLine {
            item: LineItem::Subscription {
                plan: basic.clone(),
                period: second,
            },
            amount: usd(10_000_000),
        },
        InvoiceLine {
            item: LineItem::Overage {
                group: "calls".into(),
                units: 3,
                unit_price,
                period: first,
            },
            amount: usd(30_000),
        },
    ];
    let invoice = Invoice {
        id: InvoiceId(2),
        issued_at: now,
        lines,
        amount_due: usd(10_000_000),
        due_at: at(2024, 3, 22, 9),
        supersedes: None,
    };
    let rolled = [
        Effect::IssueInvoice(invoice),
        Effect::ResetQuota { period: second },
    ];
    let sub = next(sub.tick(plan, now), &rolled);
    assert_eq!(
        served(admit(&sub, plan, 1, now)).quota.unwrap().remaining,
        99
    );

    // The payment fails: still served, with a warning until the grace ends.
    let grace_until = at(2024, 3, 19, 9);
    let failed = Notice::PaymentFailed {
        invoice: InvoiceId(2),
        grace_until,
    };
    let sub = next(
        sub.payment_failed(plan, at(2024, 3, 16, 9)),
        &[Effect::Notify(failed)],
    );
    let g = served(admit(&sub, plan, 1, at(2024, 3, 17, 9)));
    let grace = Warning {
        reason: WarningReason::PaymentFailed,
        until: grace_until,
    };
    assert_eq!(g.warning, Some(grace));

    // Grace over: 402 subscription_past_due, before and after the tick.
    let now = at(2024, 3, 19, 10);
    let past_due = [A::UpdatePaymentMethod, A::PayInvoice];
    refused(
        admit(&sub, plan, 1, now),
        ProblemCode::SubscriptionPastDue,
        &past_due,
    );
    let sub = next(sub.tick(plan, now), &[Effect::Notify(Notice::GraceEnded)]);
    assert_eq!(sub.state, SubscriptionState::Unpaid);
    refused(
        admit(&sub, plan, 1, now),
        ProblemCode::SubscriptionPastDue,
        &past_due,
    );

    // The invoice is paid: served again in the period it paid for.
    let now = at(2024, 3, 20, 9);
    let sub = next(
        sub.invoice_paid(plan, now),
        &[Effect::Notify(Notice::Recovered)],
    );
    assert_eq!((sub.state, sub.period), (SubscriptionState::Active, second));
    assert!(served(admit(&sub, plan, 1, now)).warning.is_none());

    // Canceled: served until the period ends, then expired.
    let scheduled = Notice::CancelScheduled {
        ends_at: second.end,
    };
    let sub = next(
        sub.cancel(plan, at(2024, 3, 25, 9), CancelAt::PeriodEnd),
        &[Effect::Notify(scheduled)],
    );
    let g = served(admit(&sub, plan, 1, at(2024, 4, 1, 9)));
    let canceled = Warning {
        reason: WarningReason::CancelScheduled,
        until: second.end,
    };
    assert_eq!(g.warning, Some(canceled));
    let now = at(2024, 4, 15, 10);
    refused(
        admit(&sub, plan, 1, now),
        ProblemCode::SubscriptionExpired,
        &[A::Renew],
    );
    let sub = next(sub.tick(plan, now), &[Effect::Notify(Notice::Expired)]);
    assert_eq!(sub.ending(), Some(Ending::Canceled));
    refused(
        admit(&sub, plan, 1, now),
        ProblemCode::SubscriptionExpired,
        &[A::Renew],
    );
}
