//! Subscription plans, as pure rules: calendar periods, plans and their
//! checks, the subscription lifecycle as event-driven transitions that
//! return the effects to carry out, and the admission of a subscriber's
//! request with the exact refusal code of the 402 contract.
//!
//! Billing is in advance: a paid period is invoiced when it starts, and the
//! invoice that closes a period carries the next period's subscription line
//! plus the closed period's overage lines (overage is charged from credits
//! as it happens, so those lines are a statement, not a debt).
//!
//! Nothing here stores, sends or reads the clock: the caller passes `now`,
//! persists the returned [`Subscription`], and carries out each [`Effect`].

mod admission;
mod admit;
pub(crate) mod calendar;
mod event;
mod invoice;
mod plan;
mod subscription;
mod tick;
mod transition;
mod usage;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use admission::{
    Admission, Grant, QuotaStatus, Refusal, Remedy, TRIAL_ENDING_NOTICE_NANOS, Warning,
    WarningReason,
};
pub use admit::admit;
pub use calendar::{AnchorDay, Interval, Period, period_end, rfc3339, secs_until};
pub use event::{CancelAt, Effect, Event, Notice, Transition, TransitionError};
pub use invoice::{INVOICE_TERMS_NANOS, Invoice, InvoiceId, InvoiceLine, LineItem, Settlement};
pub use plan::{
    InvalidPlan, MAX_GRACE, MAX_TRIAL, Overage, Plan, PlanId, PlanProblem, PlanSpec, Quota,
};
pub use subscription::{
    Ending, GroupUsage, InvariantViolation, OpenInvoice, PaymentMethod, Subscription,
    SubscriptionState,
};
pub use usage::{QuotaThreshold, RecordError, Recorded};
