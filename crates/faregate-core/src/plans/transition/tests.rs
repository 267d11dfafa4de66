use super::*;
use crate::plans::fixtures::{
    DAY, HOUR, T0, active, at, basic_plan, basic_spec, metered_plan, trialing, usd,
};
use crate::plans::invoice::{INVOICE_TERMS_NANOS, LineItem};
use crate::plans::invoice::{Invoice, InvoiceId};
use crate::plans::plan::PlanId;
use crate::plans::subscription::{Ending, OpenInvoice};
use crate::problem::ProblemCode;

fn invoices(effects: &[Effect]) -> Vec<&Invoice> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::IssueInvoice(invoice) => Some(invoice),
            _ => None,
        })
        .collect()
}

fn notices(effects: &[Effect]) -> Vec<Notice> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(notice) => Some(*notice),
            _ => None,
        })
        .collect()
}

/// An active subscription whose first invoice was paid.
fn paid(plan: &Plan, now: UnixNanos) -> Subscription {
    active(plan, now)
        .invoice_paid(plan, now)
        .unwrap()
        .subscription
}

/// A paid subscription whose next invoice failed at its period end.
fn past_due(plan: &Plan) -> Subscription {
    let sub = paid(plan, T0);
    let rolled = sub.tick(plan, sub.period.end).unwrap().subscription;
    rolled
        .payment_failed(plan, rolled.period.start)
        .unwrap()
        .subscription
}

#[test]
fn a_trial_starts_with_its_first_period_cut_at_the_trial_end() {
    let plan = basic_plan();
    let t = Subscription::start_trial(&plan, T0, PaymentMethod::Missing).unwrap();
    let sub = &t.subscription;
    assert_eq!(sub.state, State::Trialing);
    assert_eq!(sub.trial_end, Some(T0 + 14 * DAY));
    assert_eq!(
        sub.period,
        Period {
            start: T0,
            end: T0 + 14 * DAY
        }
    );
    assert_eq!(sub.anchor.get(), 31);
    assert!(t.effects.is_empty());
    assert_eq!(sub.check_invariants(), Ok(()));

    let mut no_trial = basic_spec();
    no_trial.trial = None;
    let no_trial = Plan::try_new(no_trial).unwrap();
    assert_eq!(
        Subscription::start_trial(&no_trial, T0, PaymentMethod::Missing),
        Err(TransitionError::NoTrial(PlanId::new("basic")))
    );
}

#[test]
fn a_long_trial_rolls_its_periods_over_without_charging() {
    let mut spec = basic_spec();
    spec.trial = Some(std::time::Duration::from_secs(45 * 86_400));
    let plan = Plan::try_new(spec).unwrap();
    let sub = trialing(&plan, T0);
    assert_eq!(
        sub.period.end,
        at(2024, 2, 29, 12),
        "the calendar end comes first"
    );
    let t = sub.tick(&plan, at(2024, 3, 1, 0)).unwrap();
    assert_eq!(t.subscription.state, State::Trialing);
    assert_eq!(
        t.subscription.period,
        Period {
            start: at(2024, 2, 29, 12),
            end: T0 + 45 * DAY
        }
    );
    assert_eq!(
        t.effects,
        [Effect::ResetQuota {
            period: t.subscription.period
        }]
    );
}

#[test]
fn starting_without_a_trial_invoices_the_first_period() {
    let plan = basic_plan();
    assert_eq!(
        Subscription::start(&plan, T0, PaymentMethod::Missing),
        Err(TransitionError::PaymentMethodRequired)
    );
    let t = Subscription::start(&plan, T0, PaymentMethod::Attached).unwrap();
    let period = Period {
        start: T0,
        end: at(2024, 2, 29, 12),
    };
    let [
        Effect::ResetQuota { period: reset },
        Effect::IssueInvoice(invoice),
        Effect::Notify(Notice::Activated),
    ] = t.effects.as_slice()
    else {
        panic!("unexpected effects {:?}", t.effects);
    };
    assert_eq!(*reset, period);
    assert_eq!(invoice.id, InvoiceId(1));
    assert_eq!(invoice.amount_due, usd(10_000_000));
    assert_eq!(invoice.due_at, T0 + INVOICE_TERMS_NANOS);
    assert_eq!(
        invoice.lines[0].item,
        LineItem::Subscription {
            plan: PlanId::new("basic"),
            period
        }
    );
    assert_eq!(
        t.subscription.open_invoice,
        Some(OpenInvoice {
            id: InvoiceId(1),
            due_at: invoice.due_at,
            amount_due: usd(10_000_000)
        })
    );
    assert!(t.subscription.current_period_billed());

    let mut free = basic_spec();
    free.price = usd(0);
    let free = Plan::try_new(free).unwrap();
    let t = Subscription::start(&free, T0, PaymentMethod::Missing).unwrap();
    assert_eq!(t.subscription.open_invoice, None, "nothing owed");
    assert_eq!(invoices(&t.effects).len(), 1, "still a statement");
}

#[test]
fn activating_a_trial_ends_it_and_starts_a_paid_period() {
    let plan = basic_plan();
    let sub = trialing(&plan, T0);
    let now = T0 + 3 * DAY;
    let err = sub.activate(&plan, now).unwrap_err();
    assert_eq!(err, TransitionError::PaymentMethodRequired);
    assert_eq!(err.problem_code(), Some(ProblemCode::PaymentMethodRequired));
    let sub = sub
        .payment_method_attached(&plan, now)
        .unwrap()
        .subscription;
    let t = sub.activate(&plan, now).unwrap();
    let sub = t.subscription;
    assert_eq!(sub.state, State::Active);
    assert_eq!(sub.trial_end, Some(now));
    assert_eq!(sub.anchor.get(), 3);
    assert_eq!(
        sub.period,
        Period {
            start: now,
            end: at(2024, 3, 3, 12)
        }
    );
    assert_eq!(notices(&t.effects), [Notice::Activated]);
    assert_eq!(
        sub.activate(&plan, now),
        Err(TransitionError::Illegal {
            event: Event::Activate,
            state: State::Active
        })
    );
}

#[test]
fn an_unactivated_trial_expires_at_its_end() {
    let plan = basic_plan();
    let sub = trialing(&plan, T0);
    let still = sub.tick(&plan, T0 + 14 * DAY - 1).unwrap();
    assert_eq!(still.subscription, sub);
    assert!(still.effects.is_empty());
    let t = sub.tick(&plan, T0 + 20 * DAY).unwrap();
    assert_eq!(t.subscription.state, State::Expired);
    assert_eq!(t.subscription.ending(), Some(Ending::TrialRanOut));
    assert_eq!(notices(&t.effects), [Notice::TrialEnded]);
    assert!(
        invoices(&t.effects).is_empty(),
        "a trial without overage costs nothing"
    );
    let again = t.subscription.tick(&plan, T0 + 400 * DAY).unwrap();
    assert!(
        again.effects.is_empty(),
        "expired subscriptions stand still"
    );
}

#[test]
fn reactivating_after_expiry_starts_a_new_anchor() {
    let plan = basic_plan();
    let expired = trialing(&plan, T0)
        .payment_method_attached(&plan, T0)
        .unwrap()
        .subscription
        .tick(&plan, T0 + 15 * DAY)
        .unwrap()
        .subscription;
    let now = at(2024, 2, 20, 8);
    let t = expired.activate(&plan, now).unwrap();
    assert_eq!(t.subscription.state, State::Active);
    assert_eq!(
        t.subscription.period,
        Period {
            start: now,
            end: at(2024, 3, 20, 8)
        }
    );
    assert_eq!(
        t.subscription.trial_end,
        Some(T0 + 14 * DAY),
        "history kept"
    );
}

#[test]
fn each_period_end_invoices_the_next_period_and_resets_quotas() {
    let plan = metered_plan();
    let mut sub = paid(&plan, T0);
    sub.record(&plan, "calls", 103).unwrap();
    // Three periods pass unseen: Feb 29, Mar 31 and Apr 30 end.
    let t = sub.tick(&plan, at(2024, 5, 1, 0)).unwrap();
    let issued = invoices(&t.effects);
    assert_eq!(issued.len(), 3);
    let first = issued[0];
    assert_eq!(first.issued_at, at(2024, 2, 29, 12));
    assert_eq!(first.lines.len(), 2);
    assert_eq!(
        first.lines[1].item,
        LineItem::Overage {
            group: "calls".into(),
            units: 3,
            unit_price: usd(10_000),
            period: Period {
                start: T0,
                end: at(2024, 2, 29, 12)
            },
        }
    );
    assert_eq!(first.lines[1].amount, usd(30_000));
    assert_eq!(
        first.amount_due,
        usd(10_000_000),
        "overage was paid from credits"
    );
    // Unpaid invoices roll into the next one, keeping the first due date.
    assert_eq!(issued[1].supersedes, Some(first.id));
    assert_eq!(issued[2].amount_due, usd(30_000_000));
    assert_eq!(issued[2].due_at, first.due_at);
    let resets: Vec<_> = t
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::ResetQuota { period } => Some(*period),
            _ => None,
        })
        .collect();
    assert_eq!(resets.len(), 3);
    assert!(resets.windows(2).all(|w| w[0].end == w[1].start));
    assert_eq!(
        resets[2],
        Period {
            start: at(2024, 4, 30, 12),
            end: at(2024, 5, 31, 12)
        }
    );
    assert!(t.subscription.usage.is_empty());
}

#[test]
fn paying_the_open_invoice_clears_it() {
    let plan = basic_plan();
    let sub = active(&plan, T0);
    let t = sub.invoice_paid(&plan, T0 + HOUR).unwrap();
    assert_eq!(t.subscription.open_invoice, None);
    assert_eq!(t.subscription.state, State::Active);
    assert!(t.effects.is_empty());
    assert_eq!(
        t.subscription.invoice_paid(&plan, T0 + HOUR),
        Err(TransitionError::NoOpenInvoice)
    );
}

#[test]
fn a_failed_payment_starts_the_grace_once() {
    let plan = basic_plan();
    let sub = past_due(&plan);
    let failed_at = sub.period.start;
    assert_eq!(sub.state, State::PastDue);
    assert_eq!(sub.grace_until, Some(failed_at + 3 * DAY));
    let again = sub.payment_failed(&plan, failed_at + DAY).unwrap();
    assert_eq!(
        again.subscription.grace_until,
        Some(failed_at + 3 * DAY),
        "not extended"
    );
    assert_eq!(
        notices(&again.effects),
        [Notice::PaymentFailed {
            invoice: InvoiceId(2),
            grace_until: failed_at + 3 * DAY
        }]
    );
    assert_eq!(
        paid(&plan, T0).payment_failed(&plan, T0),
        Err(TransitionError::NoOpenInvoice)
    );
    assert_eq!(
        trialing(&plan, T0).payment_failed(&plan, T0),
        Err(TransitionError::Illegal {
            event: Event::PaymentFailed,
            state: State::Trialing
        })
    );
}

#[test]
fn the_end_of_grace_makes_it_unpaid_and_payment_recovers_it() {
    let plan = basic_plan();
    let sub = past_due(&plan);
    let grace_until = sub.grace_until.unwrap();
    let t = sub.tick(&plan, grace_until).unwrap();
    assert_eq!(t.subscription.state, State::Unpaid);
    assert_eq!(notices(&t.effects), [Notice::GraceEnded]);
    let back = t
        .subscription
        .invoice_paid(&plan, grace_until + DAY)
        .unwrap();
    assert_eq!(back.subscription.state, State::Active);
    assert_eq!(
        back.subscription.period, sub.period,
        "the paid period goes on"
    );
    assert_eq!(back.subscription.grace_until, None);
    assert_eq!(notices(&back.effects), [Notice::Recovered]);
    let recovered = sub.invoice_paid(&plan, grace_until - 1).unwrap();
    assert_eq!(recovered.subscription.state, State::Active);
}

#[test]
fn an_unpaid_period_rolls_over_unbilled_and_payment_renews_from_then() {
    let plan = basic_plan();
    let sub = past_due(&plan);
    let end = sub.period.end;
    // Grace ends first, then the period: no subscription line for it.
    let t = sub.tick(&plan, end + DAY).unwrap();
    assert_eq!(notices(&t.effects), [Notice::GraceEnded]);
    assert!(invoices(&t.effects).is_empty());
    let unpaid = t.subscription;
    assert_eq!(unpaid.state, State::Unpaid);
    assert!(!unpaid.current_period_billed());
    let now = end + 2 * DAY;
    let renewed = unpaid.invoice_paid(&plan, now).unwrap();
    assert_eq!(renewed.subscription.state, State::Active);
    assert_eq!(renewed.subscription.period.start, now);
    assert_eq!(
        notices(&renewed.effects),
        [Notice::Recovered, Notice::Activated]
    );
    assert_eq!(invoices(&renewed.effects)[0].amount_due, usd(10_000_000));
}

#[test]
fn a_new_payment_method_retries_a_failed_invoice() {
    let plan = basic_plan();
    let sub = past_due(&plan);
    let t = sub
        .payment_method_attached(&plan, sub.period.start)
        .unwrap();
    assert_eq!(
        t.effects,
        [Effect::RetryPayment {
            invoice: InvoiceId(2)
        }]
    );
    let t = paid(&plan, T0).payment_method_attached(&plan, T0).unwrap();
    assert!(t.effects.is_empty());
    let t = t.subscription.payment_method_detached(&plan, T0).unwrap();
    assert_eq!(t.subscription.payment_method, PaymentMethod::Missing);
}

#[test]
fn canceling_at_period_end_serves_out_the_period_then_expires() {
    let plan = basic_plan();
    let sub = paid(&plan, T0);
    let t = sub.cancel(&plan, T0 + DAY, CancelAt::PeriodEnd).unwrap();
    let canceled = t.subscription;
    assert_eq!(canceled.state, State::Canceled);
    assert_eq!(canceled.canceled_at, Some(T0 + DAY));
    assert_eq!(
        notices(&t.effects),
        [Notice::CancelScheduled {
            ends_at: sub.period.end
        }]
    );
    assert_eq!(
        canceled.cancel(&plan, T0 + DAY, CancelAt::PeriodEnd),
        Err(TransitionError::Illegal {
            event: Event::Cancel(CancelAt::PeriodEnd),
            state: State::Canceled
        })
    );
    let ended = canceled.tick(&plan, sub.period.end).unwrap();
    assert_eq!(ended.subscription.state, State::Expired);
    assert_eq!(ended.subscription.ending(), Some(Ending::Canceled));
    assert_eq!(
        ended.effects,
        [Effect::Notify(Notice::Expired)],
        "never renewed"
    );
    let resumed = canceled.activate(&plan, T0 + 2 * DAY).unwrap();
    assert_eq!(resumed.subscription.state, State::Active);
    assert_eq!(resumed.subscription.period, sub.period, "already paid for");
    assert!(invoices(&resumed.effects).is_empty());
}

#[test]
fn a_canceled_trial_runs_to_its_end_or_starts_paying_when_activated() {
    let plan = basic_plan();
    let sub = trialing(&plan, T0)
        .payment_method_attached(&plan, T0)
        .unwrap()
        .subscription;
    let canceled = sub
        .cancel(&plan, T0 + DAY, CancelAt::PeriodEnd)
        .unwrap()
        .subscription;
    assert_eq!(canceled.state, State::Canceled);
    assert!(!canceled.current_period_billed());
    let ended = canceled.tick(&plan, T0 + 14 * DAY).unwrap();
    assert_eq!(ended.subscription.ending(), Some(Ending::Canceled));
    assert!(
        invoices(&ended.effects).is_empty(),
        "the trial costs nothing"
    );
    let t = canceled.activate(&plan, T0 + 2 * DAY).unwrap();
    assert_eq!(t.subscription.state, State::Active);
    assert_eq!(
        t.subscription.period.start,
        T0 + 2 * DAY,
        "a paid period, not the trial's"
    );
    assert_eq!(invoices(&t.effects)[0].amount_due, usd(10_000_000));
}

#[test]
fn canceling_now_ends_at_once_and_invoices_the_overage() {
    let plan = metered_plan();
    let mut sub = paid(&plan, T0);
    sub.record(&plan, "calls", 102).unwrap();
    let now = T0 + 5 * DAY;
    let t = sub.cancel(&plan, now, CancelAt::Now).unwrap();
    assert_eq!(t.subscription.state, State::Expired);
    let issued = invoices(&t.effects);
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].amount_due, usd(0), "overage is paid from credits");
    assert_eq!(notices(&t.effects), [Notice::Expired]);
    assert_eq!(
        t.subscription.cancel(&plan, now, CancelAt::Now),
        Err(TransitionError::Illegal {
            event: Event::Cancel(CancelAt::Now),
            state: State::Expired
        })
    );
}

#[test]
fn an_unpaid_subscription_cancels_at_once_and_cannot_restart_owing() {
    let plan = basic_plan();
    let sub = past_due(&plan);
    let unpaid = sub
        .tick(&plan, sub.grace_until.unwrap())
        .unwrap()
        .subscription;
    let now = sub.grace_until.unwrap() + HOUR;
    let t = unpaid.cancel(&plan, now, CancelAt::PeriodEnd).unwrap();
    assert_eq!(t.subscription.state, State::Expired);
    let err = t.subscription.activate(&plan, now).unwrap_err();
    assert_eq!(err, TransitionError::PaymentOutstanding(InvoiceId(2)));
    assert_eq!(err.problem_code(), Some(ProblemCode::SubscriptionPastDue));
}

#[test]
fn events_need_the_subscriptions_own_plan() {
    let sub = trialing(&basic_plan(), T0);
    assert!(matches!(
        sub.tick(&metered_plan(), T0),
        Err(TransitionError::PlanMismatch { .. })
    ));
}

#[test]
fn periods_past_the_representable_time_are_refused() {
    let plan = basic_plan();
    assert_eq!(
        Subscription::start(&plan, UnixNanos::MAX - 1, PaymentMethod::Attached),
        Err(TransitionError::TimeOutOfRange)
    );
    assert_eq!(
        Subscription::start_trial(&plan, UnixNanos::MAX, PaymentMethod::Attached),
        Err(TransitionError::TimeOutOfRange)
    );
}

#[test]
fn states_round_trip_through_their_names() {
    for state in State::ALL {
        assert_eq!(state.as_str().parse::<State>(), Ok(state));
    }
    assert_eq!(State::PastDue.to_string(), "past_due");
    assert!("paused".parse::<State>().is_err());
}

#[test]
fn events_read_as_snake_case() {
    assert_eq!(
        Event::Cancel(CancelAt::PeriodEnd).to_string(),
        "cancel_at_period_end"
    );
    assert_eq!(
        TransitionError::Illegal {
            event: Event::InvoicePaid,
            state: State::PastDue
        }
        .to_string(),
        "cannot invoice_paid a subscription that is past_due"
    );
}
