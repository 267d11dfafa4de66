//! What admission answers: serve (with the quota left, a warning, and any
//! overage to charge) or refuse (with the code of the 402 contract and the
//! remedies a program can act on).

use serde_json::{Value, json};

use crate::clock::UnixNanos;
use crate::money::Money;
use crate::problem::{Action, ActionKind, Problem, ProblemCode};

use super::calendar::{NANOS_PER_DAY, rfc3339};
use super::invoice::InvoiceId;
use super::plan::PlanId;

/// How long before a trial ends its responses carry a `trial_ending`
/// warning.
pub const TRIAL_ENDING_NOTICE_NANOS: u64 = 3 * NANOS_PER_DAY;

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Admission<'p> {
    /// Serve it.
    Serve(Grant<'p>),
    /// Refuse it.
    Refuse(Refusal),
}

/// A served request: what to tell the subscriber and what to charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant<'p> {
    /// The quota the route draws from, after this request; `None` for a
    /// route included without limit.
    pub quota: Option<QuotaStatus<'p>>,
    /// Why service may stop soon, and when.
    pub warning: Option<Warning>,
    /// Units of this request past the included quota, to charge from
    /// credits at the plan's overage unit price.
    pub overage_units: u64,
    /// What those units cost (`None` when there are none).
    pub overage_cost: Option<Money>,
}

/// What is left of a quota, sent on every served response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStatus<'p> {
    /// The quota group.
    pub group: &'p str,
    /// Included units left in this period.
    pub remaining: u64,
    /// When the quota resets; `None` when the period ends the trial or the
    /// subscription instead of renewing.
    pub resets_at: Option<UnixNanos>,
}

/// Why a served subscription may stop being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningReason {
    /// The last payment failed; service stops when the grace period ends.
    PaymentFailed,
    /// The free trial ends soon.
    TrialEnding,
    /// The subscription was canceled and ends with its period.
    CancelScheduled,
}

impl WarningReason {
    /// The snake_case word sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentFailed => "payment_failed",
            Self::TrialEnding => "trial_ending",
            Self::CancelScheduled => "cancel_scheduled",
        }
    }
}

/// A warning on a served response: why, and until when service lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warning {
    /// Why.
    pub reason: WarningReason,
    /// When service stops unless the subscriber acts.
    pub until: UnixNanos,
}

/// What fixes a refusal, with what a program needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Subscribe to one of these plans, which include the route.
    UpgradePlan {
        /// The plans, in catalog order.
        plans: Vec<PlanId>,
    },
    /// Start paying for this plan again.
    Renew {
        /// The plan.
        plan: PlanId,
    },
    /// Add or replace the payment method.
    UpdatePaymentMethod,
    /// Pay this invoice.
    PayInvoice {
        /// The invoice.
        invoice: InvoiceId,
    },
}

impl Remedy {
    /// The action kind of the 402 contract.
    pub fn kind(&self) -> ActionKind {
        match self {
            Remedy::UpgradePlan { .. } => ActionKind::UpgradePlan,
            Remedy::Renew { .. } => ActionKind::Renew,
            Remedy::UpdatePaymentMethod => ActionKind::UpdatePaymentMethod,
            Remedy::PayInvoice { .. } => ActionKind::PayInvoice,
        }
    }
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason, with its one HTTP status.
    pub code: ProblemCode,
    /// Seconds until retrying can succeed (a quota reset).
    pub retry_after_secs: Option<u64>,
    /// What fixes it, most direct first.
    pub remedies: Vec<Remedy>,
    /// When the exhausted quota resets.
    pub resets_at: Option<UnixNanos>,
    /// A sentence for the caller.
    pub detail: String,
}

impl Refusal {
    pub(crate) fn new(code: ProblemCode, detail: String) -> Self {
        Self {
            code,
            retry_after_secs: None,
            remedies: Vec::new(),
            resets_at: None,
            detail,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The problem document, with one action per remedy built by `action`
    /// (which knows the URLs), the plans to upgrade to under `plans`, and
    /// the quota reset time under `resets_at`.
    pub fn to_problem(&self, mut action: impl FnMut(&Remedy) -> Action) -> Problem {
        let mut problem = Problem::new(self.code, self.detail.clone());
        problem.retry_after = self.retry_after_secs;
        problem.actions = self.remedies.iter().map(&mut action).collect();
        for remedy in &self.remedies {
            if let Remedy::UpgradePlan { plans } = remedy {
                let ids: Vec<Value> = plans.iter().map(|p| json!(p.as_str())).collect();
                problem.extensions.insert("plans".into(), Value::Array(ids));
            }
        }
        if let Some(at) = self.resets_at {
            problem
                .extensions
                .insert("resets_at".into(), json!(rfc3339(at)));
        }
        problem
    }
}
