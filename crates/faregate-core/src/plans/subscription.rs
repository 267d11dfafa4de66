//! A subscription's state: which plan, where it stands, its current period
//! and what it used of it. The state changes only through the transitions in
//! `transition.rs`, each driven by one event at one instant.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::clock::UnixNanos;
use crate::money::Money;

use super::calendar::{AnchorDay, Period};
use super::invoice::InvoiceId;
use super::plan::PlanId;
use super::usage::QuotaThreshold;

/// Where a subscription stands. Only `Trialing`, `Active`, `PastDue` (until
/// its grace ends) and `Canceled` (until its period ends) are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionState {
    /// In its free trial, until `trial_end`. Quotas apply; nothing is
    /// invoiced but overage. At `trial_end` it expires unless it was
    /// activated before.
    Trialing,
    /// Paid and in good standing. Each period is invoiced at its start and
    /// renews at its end.
    Active,
    /// The payment of the open invoice failed. Still served, with a warning,
    /// until `grace_until`; still renews. Paying the invoice makes it active
    /// again; the end of the grace makes it unpaid.
    PastDue,
    /// The grace ended without payment. Not served (`subscription_past_due`,
    /// or `payment_method_required` without a payment method). Periods roll
    /// over without a subscription charge. Paying the invoice makes it
    /// active again, in a new period starting then if the paid one is over.
    Unpaid,
    /// Canceled by the customer to end at the end of the current period:
    /// served until then (unless a failed payment's grace runs out first),
    /// never renewed, then expired. Activating it before then resumes it.
    Canceled,
    /// Ended: the trial ran out (`trial_expired`) or the subscription was
    /// canceled (`subscription_expired`). Not served; activating it starts a
    /// new paid period.
    Expired,
}

impl SubscriptionState {
    /// Every state.
    pub const ALL: [SubscriptionState; 6] = [
        Self::Trialing,
        Self::Active,
        Self::PastDue,
        Self::Unpaid,
        Self::Canceled,
        Self::Expired,
    ];

    /// The snake_case name used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Unpaid => "unpaid",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }
}

impl fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SubscriptionState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown subscription state {s:?}"))
    }
}

/// Why an expired subscription ended, which decides the refusal code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The trial ran out without activation: `trial_expired`.
    TrialRanOut,
    /// The customer canceled: `subscription_expired`.
    Canceled,
}

/// Whether the customer has a payment method on file with the processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaymentMethod {
    /// None on file: paid periods cannot start.
    #[default]
    Missing,
    /// One is on file.
    Attached,
}

/// The one invoice the customer still owes. A later invoice issued while it
/// is open carries its balance and supersedes it, so there is never more
/// than one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenInvoice {
    /// Which invoice.
    pub id: InvoiceId,
    /// When it becomes overdue (`invoice_overdue` unless a failed payment's
    /// grace governs instead).
    pub due_at: UnixNanos,
    /// What is owed, never zero.
    pub amount_due: Money,
}

/// What one quota group used in the current period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupUsage {
    /// Units counted against the included quota; never more than it.
    pub included: u64,
    /// Units past the included quota (charged from credits on a
    /// `FromCredits` plan).
    pub overage: u64,
    /// The highest threshold already reported this period.
    pub notified: Option<QuotaThreshold>,
}

impl GroupUsage {
    /// Every unit used this period.
    pub fn total(self) -> u64 {
        self.included.saturating_add(self.overage)
    }
}

/// One customer's subscription to one plan.
///
/// The fields are public so a store can load and save them; the transitions
/// keep them consistent, and [`Subscription::check_invariants`] says whether
/// a loaded one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The plan subscribed to.
    pub plan: PlanId,
    /// Where it stands.
    pub state: SubscriptionState,
    /// The current period: quotas count within it and reset at its end.
    pub period: Period,
    /// The day of the month periods end on.
    pub anchor: AnchorDay,
    /// When the trial ends or ended, if there was one.
    pub trial_end: Option<UnixNanos>,
    /// Until when a failed payment is tolerated; set while one is
    /// outstanding (past due, unpaid, or canceled or expired with it).
    pub grace_until: Option<UnixNanos>,
    /// Whether a payment method is on file.
    pub payment_method: PaymentMethod,
    /// The invoice still owed, if any.
    pub open_invoice: Option<OpenInvoice>,
    /// How many invoices were issued so far; numbers the next one.
    pub invoices_issued: u64,
    /// The end of the last period invoiced for the plan's price: the
    /// current period is paid for when this reaches its end.
    pub billed_through: UnixNanos,
    /// Units used this period, by quota group; absent means none.
    pub usage: BTreeMap<String, GroupUsage>,
    /// When the customer canceled, if they did.
    pub canceled_at: Option<UnixNanos>,
}

/// A way a loaded [`Subscription`] is inconsistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvariantViolation {
    /// The period does not end after it starts.
    #[error("the period does not end after it starts")]
    EmptyPeriod,
    /// A trialing subscription's period runs past its trial, or it has none.
    #[error("a trialing subscription's period must end by its trial end")]
    TrialPeriod,
    /// A past-due or unpaid subscription has no grace deadline.
    #[error("a past-due or unpaid subscription needs a grace deadline")]
    MissingGrace,
    /// A trialing or active subscription has a failed payment outstanding.
    #[error("a trialing or active subscription cannot have a failed payment outstanding")]
    UnexpectedGrace,
    /// A failed payment is outstanding without an open invoice.
    #[error("a failed payment needs an open invoice")]
    GraceWithoutInvoice,
    /// The open invoice owes nothing.
    #[error("an open invoice must owe something")]
    EmptyInvoice,
    /// A canceled subscription has no cancellation time.
    #[error("a canceled subscription needs its cancellation time")]
    MissingCancellation,
}

impl Subscription {
    /// Why it ended, when it is expired. Only a trial running out and a
    /// cancellation lead to `Expired`, and only a cancellation sets
    /// `canceled_at`.
    pub fn ending(&self) -> Option<Ending> {
        match (self.state, self.canceled_at) {
            (SubscriptionState::Expired, None) => Some(Ending::TrialRanOut),
            (SubscriptionState::Expired, Some(_)) => Some(Ending::Canceled),
            _ => None,
        }
    }

    /// Whether the plan's price for the current period was invoiced (it was
    /// not during a trial, nor after a period rolled over unpaid).
    pub fn current_period_billed(&self) -> bool {
        self.billed_through >= self.period.end
    }

    /// Whether the current period renews when it ends (rather than ending
    /// the trial or the subscription): when quotas reset.
    pub fn renews_at_period_end(&self) -> bool {
        match self.state {
            SubscriptionState::Trialing => self.trial_end.is_some_and(|t| self.period.end < t),
            SubscriptionState::Active | SubscriptionState::PastDue | SubscriptionState::Unpaid => {
                true
            }
            SubscriptionState::Canceled | SubscriptionState::Expired => false,
        }
    }

    /// The usage of `group` this period.
    pub fn usage_of(&self, group: &str) -> GroupUsage {
        self.usage.get(group).copied().unwrap_or_default()
    }

    /// Checks the rules every transition keeps.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        use SubscriptionState as S;
        if self.period.start >= self.period.end {
            return Err(InvariantViolation::EmptyPeriod);
        }
        if self.state == S::Trialing && self.trial_end.is_none_or(|t| self.period.end > t) {
            return Err(InvariantViolation::TrialPeriod);
        }
        match (self.state, self.grace_until) {
            (S::PastDue | S::Unpaid, None) => return Err(InvariantViolation::MissingGrace),
            (S::Trialing | S::Active, Some(_)) => {
                return Err(InvariantViolation::UnexpectedGrace);
            }
            _ => {}
        }
        if self.grace_until.is_some() && self.open_invoice.is_none() {
            return Err(InvariantViolation::GraceWithoutInvoice);
        }
        if self.open_invoice.is_some_and(|i| i.amount_due.is_zero()) {
            return Err(InvariantViolation::EmptyInvoice);
        }
        if self.state == S::Canceled && self.canceled_at.is_none() {
            return Err(InvariantViolation::MissingCancellation);
        }
        Ok(())
    }
}
