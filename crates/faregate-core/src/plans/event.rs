//! The vocabulary of the subscription lifecycle: the events that drive it,
//! the effects a transition asks the caller to carry out, and why an event
//! may not apply.

use std::fmt;

use crate::clock::UnixNanos;
use crate::problem::ProblemCode;

use super::calendar::Period;
use super::invoice::{Invoice, InvoiceId};
use super::plan::PlanId;
use super::subscription::{Subscription, SubscriptionState as State};

/// When a cancellation takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAt {
    /// At the end of the current period, which stays served (and paid).
    PeriodEnd,
    /// Right away; the current period is not refunded.
    Now,
}

/// Something that happens to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The customer starts (or resumes) paying for the plan.
    Activate,
    /// A payment method was added or replaced.
    PaymentMethodAttached,
    /// The payment method was removed.
    PaymentMethodDetached,
    /// The open invoice was paid in full.
    InvoicePaid,
    /// Collecting the open invoice failed.
    PaymentFailed,
    /// The customer canceled.
    Cancel(CancelAt),
    /// Time passed; nothing else happened.
    Tick,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Event::Activate => "activate",
            Event::PaymentMethodAttached => "payment_method_attached",
            Event::PaymentMethodDetached => "payment_method_detached",
            Event::InvoicePaid => "invoice_paid",
            Event::PaymentFailed => "payment_failed",
            Event::Cancel(CancelAt::PeriodEnd) => "cancel_at_period_end",
            Event::Cancel(CancelAt::Now) => "cancel_now",
            Event::Tick => "tick",
        })
    }
}

/// What to tell the customer or the operator (outgoing webhooks, email).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The trial ran out without activation; the subscription expired.
    TrialEnded,
    /// A paid period started, or a canceled subscription was resumed.
    Activated,
    /// Collecting an invoice failed; service continues until `grace_until`.
    PaymentFailed {
        /// The invoice that failed.
        invoice: InvoiceId,
        /// When service stops unless it is paid.
        grace_until: UnixNanos,
    },
    /// The grace period ended unpaid; service stopped.
    GraceEnded,
    /// The failed invoice was paid; service is back.
    Recovered,
    /// The customer canceled; service ends at `ends_at`.
    CancelScheduled {
        /// When the subscription expires.
        ends_at: UnixNanos,
    },
    /// The canceled subscription ended.
    Expired,
}

/// What the caller must do after a transition, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Record this invoice and have its amount due collected; void the one
    /// it supersedes.
    IssueInvoice(Invoice),
    /// Quota counters kept elsewhere start again from zero for `period`.
    ResetQuota {
        /// The new period.
        period: Period,
    },
    /// Retry collecting this failed invoice with the new payment method.
    RetryPayment {
        /// The invoice to retry.
        invoice: InvoiceId,
    },
    /// Send this notice.
    Notify(Notice),
}

/// The outcome of a transition: the new state and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Transition {
    /// The subscription after the event.
    pub subscription: Subscription,
    /// What the caller must carry out, in order.
    pub effects: Vec<Effect>,
}

/// Why an event cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The plan given is not the subscription's.
    #[error("subscription is on plan {subscription}, not {given}")]
    PlanMismatch {
        /// The subscription's plan.
        subscription: PlanId,
        /// The plan passed in.
        given: PlanId,
    },
    /// The event makes no sense in this state (activating an active
    /// subscription, canceling an expired one, …).
    #[error("cannot {event} a subscription that is {state}")]
    Illegal {
        /// The event.
        event: Event,
        /// The state it met.
        state: State,
    },
    /// A paid period cannot start without a payment method.
    #[error("a payment method is required")]
    PaymentMethodRequired,
    /// The plan offers no trial.
    #[error("plan {0} offers no trial")]
    NoTrial(PlanId),
    /// There is no open invoice to pay or to fail.
    #[error("no invoice is open")]
    NoOpenInvoice,
    /// A failed invoice must be paid before the subscription starts again.
    #[error("invoice {0} is unpaid after a failed payment")]
    PaymentOutstanding(InvoiceId),
    /// The period would end past the representable time (year 2554).
    #[error("time out of range")]
    TimeOutOfRange,
}

impl TransitionError {
    /// The refusal code a client should see for this error, where one
    /// fits; the others are the operator's or the caller's mistakes.
    pub fn problem_code(&self) -> Option<ProblemCode> {
        match self {
            Self::PaymentMethodRequired => Some(ProblemCode::PaymentMethodRequired),
            Self::PaymentOutstanding(_) => Some(ProblemCode::SubscriptionPastDue),
            _ => None,
        }
    }
}
