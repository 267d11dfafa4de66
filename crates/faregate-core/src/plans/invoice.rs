//! Invoices a subscription issues: the subscription line of a period that
//! starts (plans are paid in advance) and the overage lines of the period
//! that ended (already charged from credits as it happened, listed so the
//! invoice is the period's full statement).

use std::fmt;

use crate::clock::UnixNanos;
use crate::money::Money;

use super::calendar::{NANOS_PER_DAY, Period};
use super::plan::{Overage, Plan, PlanId};
use super::subscription::{OpenInvoice, Subscription};

/// How long after it is issued an invoice falls due.
pub const INVOICE_TERMS_NANOS: u64 = 7 * NANOS_PER_DAY;

/// An invoice's number within its subscription, counting from 1. The store
/// makes it globally unique by pairing it with the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvoiceId(pub u64);

impl fmt::Display for InvoiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What an invoice line is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineItem {
    /// The plan's price for a period that starts.
    Subscription {
        /// The plan.
        plan: PlanId,
        /// The period paid for.
        period: Period,
    },
    /// Units past a group's quota in a period that ended.
    Overage {
        /// The quota group.
        group: String,
        /// Units past the quota.
        units: u64,
        /// The price of one.
        unit_price: Money,
        /// The period they were used in.
        period: Period,
    },
    /// What an earlier, still unpaid invoice owed; this invoice supersedes it.
    PreviousBalance {
        /// The superseded invoice.
        invoice: InvoiceId,
    },
}

/// Whether a line is still to be paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Owed on this invoice.
    Due,
    /// Already charged from prepaid credits when the units were used.
    PaidFromCredits,
}

impl LineItem {
    /// Whether this kind of line is owed or already paid.
    pub fn settlement(&self) -> Settlement {
        match self {
            LineItem::Overage { .. } => Settlement::PaidFromCredits,
            LineItem::Subscription { .. } | LineItem::PreviousBalance { .. } => Settlement::Due,
        }
    }
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    /// What it is for.
    pub item: LineItem,
    /// Its amount.
    pub amount: Money,
}

/// An invoice the caller must record and have collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// Its number within the subscription.
    pub id: InvoiceId,
    /// When it was issued.
    pub issued_at: UnixNanos,
    /// Its lines: the subscription line first, then overage, then any
    /// previous balance.
    pub lines: Vec<InvoiceLine>,
    /// The sum of the lines still due.
    pub amount_due: Money,
    /// When it falls due.
    pub due_at: UnixNanos,
    /// The unpaid invoice this one replaces (void it; its balance is here).
    pub supersedes: Option<InvoiceId>,
}

/// The subscription line for `period`.
pub(crate) fn subscription_line(plan: &Plan, period: Period) -> InvoiceLine {
    InvoiceLine {
        item: LineItem::Subscription {
            plan: plan.id().clone(),
            period,
        },
        amount: plan.spec().price,
    }
}

/// One line per quota group with overage in `period`, on plans that charge
/// for it.
pub(crate) fn overage_lines(sub: &Subscription, plan: &Plan, period: Period) -> Vec<InvoiceLine> {
    let Overage::FromCredits { unit_price } = plan.spec().overage else {
        return Vec::new();
    };
    sub.usage
        .iter()
        .filter(|(_, used)| used.overage > 0)
        .map(|(group, used)| InvoiceLine {
            item: LineItem::Overage {
                group: group.clone(),
                units: used.overage,
                unit_price,
                period,
            },
            amount: saturating_mul(unit_price, used.overage),
        })
        .collect()
}

/// Issues an invoice with `lines` (none issued when there are none) and, if
/// it owes anything, makes it the subscription's open invoice, carrying the
/// balance of the one it supersedes.
pub(crate) fn issue(
    sub: &mut Subscription,
    plan: &Plan,
    mut lines: Vec<InvoiceLine>,
    at: UnixNanos,
) -> Option<Invoice> {
    if lines.is_empty() {
        return None;
    }
    let id = InvoiceId(sub.invoices_issued.saturating_add(1));
    sub.invoices_issued = id.0;
    let mut due_at = at.saturating_add(INVOICE_TERMS_NANOS);
    let mut supersedes = None;
    // A statement owing nothing leaves the open invoice alone.
    let owes = !due_total(&lines, plan).is_zero();
    if let Some(previous) = sub.open_invoice.filter(|_| owes) {
        lines.push(InvoiceLine {
            item: LineItem::PreviousBalance {
                invoice: previous.id,
            },
            amount: previous.amount_due,
        });
        // The debt keeps its age: service stops when the oldest part is due.
        due_at = due_at.min(previous.due_at);
        supersedes = Some(previous.id);
    }
    let amount_due = due_total(&lines, plan);
    if !amount_due.is_zero() {
        sub.open_invoice = Some(OpenInvoice {
            id,
            due_at,
            amount_due,
        });
    }
    Some(Invoice {
        id,
        issued_at: at,
        lines,
        amount_due,
        due_at,
        supersedes,
    })
}

fn due_total(lines: &[InvoiceLine], plan: &Plan) -> Money {
    lines
        .iter()
        .filter(|line| line.item.settlement() == Settlement::Due)
        .fold(Money::zero(plan.spec().price.currency()), |sum, line| {
            saturating_add(sum, line.amount)
        })
}

/// `price × units`; a product past `u64::MAX` atomic units (some 18 trillion
/// dollars) is capped rather than wrapped.
pub(crate) fn saturating_mul(price: Money, units: u64) -> Money {
    Money::from_atomic(price.atomic().saturating_mul(units), price.currency())
}

fn saturating_add(a: Money, b: Money) -> Money {
    Money::from_atomic(a.atomic().saturating_add(b.atomic()), a.currency())
}
