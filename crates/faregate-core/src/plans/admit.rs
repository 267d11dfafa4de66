//! Whether a subscriber's request is served, as a pure decision over the
//! subscription, its plan and the clock. Counting what was served is apart
//! ([`Subscription::record`]), so the gateway can reserve, then commit or
//! release.

use crate::clock::UnixNanos;
use crate::money::Money;
use crate::problem::ProblemCode;

use super::admission::{
    Admission, Grant, QuotaStatus, Refusal, Remedy, TRIAL_ENDING_NOTICE_NANOS, Warning,
    WarningReason,
};
use super::calendar::{rfc3339, secs_until};
use super::plan::{Overage, Plan, PlanId, Quota};
use super::subscription::{Ending, OpenInvoice, PaymentMethod, Subscription, SubscriptionState};

/// Decides whether `sub`, on `plan`, may spend `units` on `route` at `now`.
/// `all_plans` is the catalog that `upgrade_plan` remedies are drawn from.
///
/// Bring the subscription up to `now` with [`Subscription::tick`] first (it
/// is cheap when nothing is due): quotas are read as stored.
pub fn admit<'p>(
    sub: &Subscription,
    plan: &'p Plan,
    all_plans: &[Plan],
    route: &str,
    units: u64,
    now: UnixNanos,
) -> Admission<'p> {
    if &sub.plan != plan.id() {
        let detail = "The subscription's plan could not be found.".to_owned();
        return Admission::Refuse(Refusal::new(ProblemCode::InternalError, detail));
    }
    let ask = Ask {
        sub,
        plan,
        all_plans,
        route,
        now,
    };
    if !plan.includes(route) {
        return Admission::Refuse(ask.not_included());
    }
    match ask.standing() {
        Ok(warning) => ask.metered(units, warning),
        Err(refusal) => Admission::Refuse(refusal),
    }
}

/// One request being decided.
struct Ask<'a, 'p> {
    sub: &'a Subscription,
    plan: &'p Plan,
    all_plans: &'a [Plan],
    route: &'a str,
    now: UnixNanos,
}

impl<'p> Ask<'_, 'p> {
    /// Whether the subscription is served at all, and with which warning.
    fn standing(&self) -> Result<Option<Warning>, Refusal> {
        let (sub, now) = (self.sub, self.now);
        let trial_over = sub.trial_end.is_none_or(|end| now >= end);
        match sub.state {
            SubscriptionState::Expired => return Err(self.ended()),
            SubscriptionState::Trialing if trial_over => return Err(self.trial_expired()),
            SubscriptionState::Canceled if now >= sub.period.end => {
                return Err(self.subscription_expired());
            }
            SubscriptionState::Unpaid => return Err(past_due(sub)),
            _ => {}
        }
        if let Some(until) = sub.grace_until {
            if now >= until {
                return Err(past_due(sub));
            }
            let reason = WarningReason::PaymentFailed;
            return Ok(Some(Warning { reason, until }));
        }
        if let Some(open) = sub.open_invoice.filter(|i| now >= i.due_at) {
            return Err(overdue(open));
        }
        Ok(soon_ending(sub, now))
    }

    /// Serves or refuses by the quota the route draws from.
    fn metered(&self, units: u64, warning: Option<Warning>) -> Admission<'p> {
        let Some(quota) = self.plan.quota_for_route(self.route) else {
            return serve(None, warning, 0, None);
        };
        let used = self.sub.usage_of(&quota.group).included;
        let remaining = quota.included.saturating_sub(used);
        let resets_at = self
            .sub
            .renews_at_period_end()
            .then_some(self.sub.period.end);
        let status = |remaining| QuotaStatus {
            group: quota.group.as_str(),
            remaining,
            resets_at,
        };
        if units <= remaining {
            return serve(Some(status(remaining - units)), warning, 0, None);
        }
        let over = units - remaining;
        let cost = match self.plan.spec().overage {
            Overage::FromCredits { unit_price } => unit_price.checked_mul(over).ok(),
            Overage::HardStop => None,
        };
        match cost {
            Some(cost) => serve(Some(status(0)), warning, over, Some(cost)),
            None => Admission::Refuse(self.exhausted(quota, remaining, units, resets_at)),
        }
    }

    fn exhausted(
        &self,
        quota: &Quota,
        remaining: u64,
        units: u64,
        resets_at: Option<UnixNanos>,
    ) -> Refusal {
        let when = match resets_at {
            Some(at) => format!("it resets at {}", rfc3339(at)),
            None => "it does not reset before the subscription ends".to_owned(),
        };
        let detail = format!(
            "The {} quota has {remaining} of {} units left this period and the request needs {units}; {when}.",
            quota.group, quota.included
        );
        let mut refusal = Refusal::new(ProblemCode::QuotaExhausted, detail);
        refusal.retry_after_secs = resets_at.map(|at| secs_until(self.now, at));
        refusal.resets_at = resets_at;
        refusal.remedies.extend(self.upgrade());
        refusal
    }

    /// The other plans that include the route, as a remedy, if any do.
    fn upgrade(&self) -> Option<Remedy> {
        let plans: Vec<PlanId> = self
            .all_plans
            .iter()
            .filter(|p| p.id() != self.plan.id() && p.includes(self.route))
            .map(|p| p.id().clone())
            .collect();
        (!plans.is_empty()).then_some(Remedy::UpgradePlan { plans })
    }

    fn not_included(&self) -> Refusal {
        let Some(remedy) = self.upgrade() else {
            let detail = "No plan includes this route.".to_owned();
            return Refusal::new(ProblemCode::Forbidden, detail);
        };
        let detail = format!("Plan {} does not include this route.", self.plan.id());
        let mut refusal = Refusal::new(ProblemCode::UpgradeRequired, detail);
        refusal.remedies.push(remedy);
        refusal
    }

    fn ended(&self) -> Refusal {
        match self.sub.ending() {
            Some(Ending::TrialRanOut) => self.trial_expired(),
            Some(Ending::Canceled) | None => self.subscription_expired(),
        }
    }

    fn trial_expired(&self) -> Refusal {
        let ended_at = self
            .sub
            .trial_end
            .map_or_else(String::new, |t| format!(" at {}", rfc3339(t)));
        let detail = format!("The trial of plan {} ended{ended_at}.", self.plan.id());
        let mut refusal = Refusal::new(ProblemCode::TrialExpired, detail);
        refusal.remedies = self.restart();
        refusal.remedies.extend(self.upgrade());
        refusal
    }

    fn subscription_expired(&self) -> Refusal {
        let sub = self.sub;
        let ended_at = sub
            .canceled_at
            .map_or(sub.period.end, |c| c.min(sub.period.end));
        let detail = format!(
            "The subscription to plan {} ended at {}.",
            self.plan.id(),
            rfc3339(ended_at)
        );
        let mut refusal = Refusal::new(ProblemCode::SubscriptionExpired, detail);
        refusal.remedies = self.restart();
        refusal
    }

    /// What it takes to start paying for the plan again.
    fn restart(&self) -> Vec<Remedy> {
        let sub = self.sub;
        let mut remedies = Vec::new();
        if sub.payment_method == PaymentMethod::Missing && !self.plan.is_free() {
            remedies.push(Remedy::UpdatePaymentMethod);
        }
        if let (Some(_), Some(open)) = (sub.grace_until, sub.open_invoice) {
            remedies.push(Remedy::PayInvoice { invoice: open.id });
        }
        remedies.push(Remedy::Renew {
            plan: self.plan.id().clone(),
        });
        remedies
    }
}

/// The warning of a trial about to end or of a canceled subscription.
fn soon_ending(sub: &Subscription, now: UnixNanos) -> Option<Warning> {
    let (reason, until) = match (sub.state, sub.trial_end) {
        (SubscriptionState::Trialing, Some(end))
            if end.saturating_sub(now) <= TRIAL_ENDING_NOTICE_NANOS =>
        {
            (WarningReason::TrialEnding, end)
        }
        (SubscriptionState::Canceled, _) => (WarningReason::CancelScheduled, sub.period.end),
        _ => return None,
    };
    Some(Warning { reason, until })
}

fn serve(
    quota: Option<QuotaStatus<'_>>,
    warning: Option<Warning>,
    overage_units: u64,
    overage_cost: Option<Money>,
) -> Admission<'_> {
    Admission::Serve(Grant {
        quota,
        warning,
        overage_units,
        overage_cost,
    })
}

fn past_due(sub: &Subscription) -> Refusal {
    if sub.payment_method == PaymentMethod::Missing {
        let detail = "The last payment failed and no payment method is on file.".to_owned();
        let mut refusal = Refusal::new(ProblemCode::PaymentMethodRequired, detail);
        refusal.remedies.push(Remedy::UpdatePaymentMethod);
        return refusal;
    }
    let until = sub
        .grace_until
        .map_or_else(String::new, |t| format!(" at {}", rfc3339(t)));
    let detail = format!("The last payment failed and the grace period ended{until}.");
    let mut refusal = Refusal::new(ProblemCode::SubscriptionPastDue, detail);
    refusal.remedies.push(Remedy::UpdatePaymentMethod);
    if let Some(open) = sub.open_invoice {
        refusal
            .remedies
            .push(Remedy::PayInvoice { invoice: open.id });
    }
    refusal
}

fn overdue(open: OpenInvoice) -> Refusal {
    let detail = format!(
        "Invoice {} for {} was due at {}.",
        open.id,
        open.amount_due,
        rfc3339(open.due_at)
    );
    let mut refusal = Refusal::new(ProblemCode::InvoiceOverdue, detail);
    refusal
        .remedies
        .push(Remedy::PayInvoice { invoice: open.id });
    refusal
}

#[cfg(test)]
mod tests;
