//! The pure core of faregate: money in atomic units, prices, the problem
//! documents of the 402 contract, authorization decisions, the GCRA
//! arithmetic behind rate limits, and subscription plans.
//!
//! Nothing here does I/O or reads the wall clock: time comes in through
//! [`Clock`], so every rule can be tested on a fake clock.

mod budget;
mod clock;
mod decision;
mod hash;
mod money;
mod plans;
mod problem;
mod ratelimit;

pub use budget::{Budget, BudgetError, BudgetPeriod, LlmLimits};
pub use clock::{Clock, FakeClock, SystemClock, UnixNanos};
pub use decision::{Challenge, ChargePolicy, Decision, Hold, Offer, RailKind};
pub use hash::{Fnv1a, FnvBuild};
pub use money::{Currency, Money, MoneyError, Price};
pub use plans::{
    Admission, AnchorDay, CancelAt, Effect, Ending, Event, Grant, GroupUsage, INVOICE_TERMS_NANOS,
    Interval, InvalidPlan, InvariantViolation, Invoice, InvoiceId, InvoiceLine, LineItem,
    MAX_GRACE, MAX_TRIAL, Notice, OpenInvoice, Overage, PaymentMethod, Period, Plan, PlanId,
    PlanProblem, PlanSpec, Quota, QuotaStatus, QuotaThreshold, RecordError, Recorded, Refusal,
    Remedy, Settlement, Subscription, SubscriptionState, TRIAL_ENDING_NOTICE_NANOS, Transition,
    TransitionError, Warning, WarningReason, admit, period_end, rfc3339, secs_until,
};
pub use problem::{Action, ActionKind, Problem, ProblemCode};
pub use ratelimit::{Gcra, GcraOutcome, RateLimitError};
