use serde_json::json;

use super::*;
use crate::plans::calendar::NANOS_PER_SEC;
use crate::plans::event::CancelAt;
use crate::plans::fixtures::{
    DAY, HOUR, T0, active, at, basic_plan, catalog, metered_plan, trialing, usd,
};
use crate::plans::invoice::InvoiceId;
use crate::problem::Action;
use crate::problem::ActionKind;

/// A paid basic subscription, first invoice settled.
fn paid(plan: &Plan) -> Subscription {
    active(plan, T0)
        .invoice_paid(plan, T0)
        .unwrap()
        .subscription
}

fn refusal(admission: Admission<'_>) -> Refusal {
    match admission {
        Admission::Refuse(refusal) => refusal,
        Admission::Serve(grant) => panic!("served: {grant:?}"),
    }
}

fn grant(admission: Admission<'_>) -> Grant<'_> {
    match admission {
        Admission::Serve(grant) => grant,
        Admission::Refuse(refusal) => panic!("refused: {refusal:?}"),
    }
}

fn kinds(refusal: &Refusal) -> Vec<ActionKind> {
    refusal.remedies.iter().map(Remedy::kind).collect()
}

fn upgrade_to(ids: &[&str]) -> Remedy {
    Remedy::UpgradePlan {
        plans: ids.iter().map(|id| PlanId::new(*id)).collect(),
    }
}

#[test]
fn serves_with_the_quota_left_after_the_request() {
    let plan = basic_plan();
    let mut sub = paid(&plan);
    sub.record(&plan, "calls", 10).unwrap();
    let g = grant(admit(&sub, &plan, &catalog(), "search", 5, T0 + HOUR));
    let status = g.quota.unwrap();
    assert_eq!((status.group, status.remaining), ("calls", 85));
    assert_eq!(status.resets_at, Some(at(2024, 2, 29, 12)));
    assert_eq!(
        (g.warning, g.overage_units, g.overage_cost),
        (None, 0, None)
    );
    let unmetered = grant(admit(&sub, &plan, &catalog(), "status", 1_000, T0));
    assert_eq!(unmetered.quota, None);
}

#[test]
fn a_route_of_another_plan_asks_for_an_upgrade() {
    let plan = basic_plan();
    let r = refusal(admit(&paid(&plan), &plan, &catalog(), "export", 1, T0));
    assert_eq!((r.code, r.status()), (ProblemCode::UpgradeRequired, 402));
    assert_eq!(r.remedies, [upgrade_to(&["pro"])]);
    let problem = r.to_problem(|remedy| Action {
        kind: remedy.kind(),
        url: "https://gw/plans".into(),
        method: "POST",
    });
    assert_eq!(problem.actions[0].kind, ActionKind::UpgradePlan);
    assert_eq!(problem.extensions["plans"], json!(["pro"]));
}

#[test]
fn a_route_no_plan_includes_is_forbidden() {
    let plan = basic_plan();
    let r = refusal(admit(&paid(&plan), &plan, &catalog(), "admin", 1, T0));
    assert_eq!((r.code, r.status()), (ProblemCode::Forbidden, 403));
    assert!(r.remedies.is_empty());
}

#[test]
fn a_hard_stop_quota_refuses_until_it_resets() {
    let plan = basic_plan();
    let mut sub = paid(&plan);
    sub.record(&plan, "calls", 98).unwrap();
    let now = at(2024, 2, 28, 12);
    let r = refusal(admit(&sub, &plan, &catalog(), "summarize", 3, now));
    assert_eq!((r.code, r.status()), (ProblemCode::QuotaExhausted, 402));
    assert_eq!(r.retry_after_secs, Some(86_400));
    assert_eq!(r.resets_at, Some(at(2024, 2, 29, 12)));
    assert_eq!(r.remedies, [upgrade_to(&["metered", "pro"])]);
    assert!(r.detail.contains("2 of 100 units left"), "{}", r.detail);
    let problem = r.to_problem(|remedy| Action {
        kind: remedy.kind(),
        url: String::new(),
        method: "POST",
    });
    assert_eq!(problem.retry_after, Some(86_400));
    assert_eq!(
        problem.extensions["resets_at"],
        json!("2024-02-29T12:00:00Z")
    );
    let fits = grant(admit(&sub, &plan, &catalog(), "summarize", 2, now));
    assert_eq!(fits.quota.unwrap().remaining, 0);
}

#[test]
fn overage_is_served_and_priced_on_a_from_credits_plan() {
    let plan = metered_plan();
    let mut sub = paid(&plan);
    sub.record(&plan, "calls", 99).unwrap();
    let g = grant(admit(&sub, &plan, &catalog(), "search", 4, T0 + DAY));
    assert_eq!(g.quota.unwrap().remaining, 0);
    assert_eq!(g.overage_units, 3);
    assert_eq!(g.overage_cost, Some(usd(30_000)));
}

#[test]
fn a_quota_in_a_last_period_does_not_promise_a_reset() {
    let plan = basic_plan();
    let mut sub = trialing(&plan, T0);
    sub.record(&plan, "calls", 100).unwrap();
    let r = refusal(admit(&sub, &plan, &catalog(), "search", 1, T0 + DAY));
    assert_eq!(r.code, ProblemCode::QuotaExhausted);
    assert_eq!((r.retry_after_secs, r.resets_at), (None, None));
}

#[test]
fn an_ended_trial_is_trial_expired_with_renew_and_upgrade() {
    let plan = basic_plan();
    let sub = trialing(&plan, T0);
    let after = T0 + 14 * DAY;
    let before_tick = refusal(admit(&sub, &plan, &catalog(), "search", 1, after));
    let expired = sub.tick(&plan, after).unwrap().subscription;
    let after_tick = refusal(admit(&expired, &plan, &catalog(), "search", 1, after));
    for r in [before_tick, after_tick] {
        assert_eq!((r.code, r.status()), (ProblemCode::TrialExpired, 402));
        assert_eq!(
            r.remedies,
            [
                Remedy::UpdatePaymentMethod,
                Remedy::Renew {
                    plan: PlanId::new("basic")
                },
                upgrade_to(&["metered", "pro"]),
            ]
        );
        assert!(r.detail.contains("2024-02-14T12:00:00Z"), "{}", r.detail);
    }
}

#[test]
fn a_trial_warns_in_its_last_days() {
    let plan = basic_plan();
    let sub = trialing(&plan, T0);
    let early = grant(admit(&sub, &plan, &catalog(), "search", 1, T0 + 10 * DAY));
    assert_eq!(early.warning, None);
    let late = grant(admit(&sub, &plan, &catalog(), "search", 1, T0 + 11 * DAY));
    assert_eq!(
        late.warning,
        Some(Warning {
            reason: WarningReason::TrialEnding,
            until: T0 + 14 * DAY
        })
    );
}

#[test]
fn a_canceled_subscription_warns_then_is_subscription_expired() {
    let plan = basic_plan();
    let sub = paid(&plan)
        .cancel(&plan, T0 + DAY, CancelAt::PeriodEnd)
        .unwrap()
        .subscription;
    let end = sub.period.end;
    let g = grant(admit(&sub, &plan, &catalog(), "search", 1, end - 1));
    assert_eq!(
        g.warning,
        Some(Warning {
            reason: WarningReason::CancelScheduled,
            until: end
        })
    );
    assert_eq!(g.quota.unwrap().resets_at, None);
    let r = refusal(admit(&sub, &plan, &catalog(), "search", 1, end));
    assert_eq!(
        (r.code, r.status()),
        (ProblemCode::SubscriptionExpired, 402)
    );
    assert_eq!(kinds(&r), [ActionKind::Renew]);
    let expired = sub.tick(&plan, end).unwrap().subscription;
    let r = refusal(admit(&expired, &plan, &catalog(), "search", 1, end));
    assert_eq!(r.code, ProblemCode::SubscriptionExpired);
}

#[test]
fn a_failed_payment_is_served_with_a_warning_until_the_grace_ends() {
    let plan = basic_plan();
    let sub = paid(&plan);
    let sub = sub.tick(&plan, sub.period.end).unwrap().subscription;
    let failed_at = sub.period.start + HOUR;
    let sub = sub.payment_failed(&plan, failed_at).unwrap().subscription;
    let grace_until = failed_at + 3 * DAY;
    let g = grant(admit(&sub, &plan, &catalog(), "search", 1, grace_until - 1));
    assert_eq!(
        g.warning,
        Some(Warning {
            reason: WarningReason::PaymentFailed,
            until: grace_until
        })
    );
    let r = refusal(admit(&sub, &plan, &catalog(), "search", 1, grace_until));
    assert_eq!(
        (r.code, r.status()),
        (ProblemCode::SubscriptionPastDue, 402)
    );
    assert_eq!(
        r.remedies,
        [
            Remedy::UpdatePaymentMethod,
            Remedy::PayInvoice {
                invoice: InvoiceId(2)
            }
        ]
    );
    let unpaid = sub.tick(&plan, grace_until).unwrap().subscription;
    let r = refusal(admit(&unpaid, &plan, &catalog(), "status", 1, grace_until));
    assert_eq!(r.code, ProblemCode::SubscriptionPastDue);

    let no_method = unpaid
        .payment_method_detached(&plan, grace_until)
        .unwrap()
        .subscription;
    let r = refusal(admit(
        &no_method,
        &plan,
        &catalog(),
        "search",
        1,
        grace_until,
    ));
    assert_eq!(
        (r.code, r.status()),
        (ProblemCode::PaymentMethodRequired, 402)
    );
    assert_eq!(kinds(&r), [ActionKind::UpdatePaymentMethod]);
}

#[test]
fn an_overdue_invoice_without_a_failed_payment_is_invoice_overdue() {
    let plan = basic_plan();
    let sub = active(&plan, T0);
    let due_at = sub.open_invoice.unwrap().due_at;
    assert!(matches!(
        admit(&sub, &plan, &catalog(), "search", 1, due_at - 1),
        Admission::Serve(_)
    ));
    let r = refusal(admit(&sub, &plan, &catalog(), "search", 1, due_at));
    assert_eq!((r.code, r.status()), (ProblemCode::InvoiceOverdue, 402));
    assert_eq!(
        r.remedies,
        [Remedy::PayInvoice {
            invoice: InvoiceId(1)
        }]
    );
    assert!(r.detail.contains("10.00 USD"), "{}", r.detail);
}

#[test]
fn the_wrong_plan_is_an_internal_error() {
    let sub = paid(&basic_plan());
    let r = refusal(admit(&sub, &metered_plan(), &catalog(), "search", 1, T0));
    assert_eq!((r.code, r.status()), (ProblemCode::InternalError, 500));
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let plan = basic_plan();
    let mut sub = paid(&plan);
    sub.record(&plan, "calls", 100).unwrap();
    let now = sub.period.end - NANOS_PER_SEC / 2;
    let r = refusal(admit(&sub, &plan, &catalog(), "search", 1, now));
    assert_eq!(r.retry_after_secs, Some(1));
}
