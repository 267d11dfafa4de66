//! The rail itself: admitting a subscriber's request under the
//! subscription's lock, holding quota (and overage credit) until the
//! response is done, and settling it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use faregate_core::{
    Action, Admission, Challenge, Decision, Hold, Plan, PlanId, Problem, ProblemCode, RailKind,
    Refusal, Remedy, UnixNanos, admit, rfc3339, secs_until,
};
use serde_json::json;

use super::{Cell, Change, Held, Plans, deadline};
use crate::{BoxFuture, Credential, Outcome, Rail, RailRequest, Settlement};

impl Rail for Plans {
    fn kind(&self) -> RailKind {
        RailKind::Plans
    }

    fn accepts(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::ApiKey(_))
    }

    fn authorize<'a>(&'a self, req: &'a RailRequest<'a>) -> BoxFuture<'a, Decision> {
        Box::pin(self.decide(req))
    }

    fn offer(&self, _req: &RailRequest<'_>) -> Option<faregate_core::Offer> {
        None
    }

    fn settle<'a>(&'a self, hold: Hold, outcome: &'a Outcome) -> BoxFuture<'a, Settlement> {
        Box::pin(std::future::ready(self.settle_now(&hold, outcome)))
    }
}

impl Plans {
    async fn decide(&self, req: &RailRequest<'_>) -> Decision {
        let Some(account) = req.account else {
            return Decision::Deny(Problem::new(
                ProblemCode::Forbidden,
                "this key belongs to no account, so it has no subscription",
            ));
        };
        let Some(cell) = self.cell(account) else {
            return self.unsubscribed(req, account);
        };
        let due = deadline(&cell.entry.lock().sub) <= req.now;
        if due && let Err(e) = self.change(account, None, Change::Tick).await {
            tracing::warn!(account, error = %e, "plans: bringing a subscription up to date failed");
        }
        self.admit_on(&cell, req)
    }

    /// A caller with no subscription: the route's price from credits when
    /// it has one, else the plans that include the route.
    fn unsubscribed(&self, req: &RailRequest<'_>, account: &str) -> Decision {
        if let Some(price) = req.price.amount() {
            return self.credits.reserve(account, req.route, price);
        }
        let catalog = self.catalog.load();
        let plans: Vec<PlanId> = catalog
            .iter()
            .filter(|p| p.includes(req.route))
            .map(|p| p.id().clone())
            .collect();
        if plans.is_empty() {
            return Decision::Deny(Problem::new(
                ProblemCode::Forbidden,
                "no plan includes this route",
            ));
        }
        let mut refusal = Refusal {
            code: ProblemCode::UpgradeRequired,
            retry_after_secs: None,
            remedies: vec![Remedy::UpgradePlan { plans }],
            resets_at: None,
            detail: "the account has no subscription; subscribe to a plan that includes this route"
                .to_owned(),
        };
        refusal.detail.push('.');
        self.refuse(&refusal, account)
    }

    fn refuse(&self, refusal: &Refusal, account: &str) -> Decision {
        let problem = refusal.to_problem(|r| self.action(r));
        if refusal.status() == 402 {
            let mut challenge = Challenge::new(problem);
            if refusal.code == ProblemCode::QuotaExhausted {
                challenge
                    .problem
                    .actions
                    .extend(self.credits.top_up_action(account));
            }
            Decision::PaymentRequired(challenge)
        } else {
            Decision::Deny(problem)
        }
    }

    fn action(&self, remedy: &Remedy) -> Action {
        let (url, method) = match remedy {
            Remedy::UpgradePlan { .. } | Remedy::Renew { .. } => {
                ("/billing/subscription/activate".to_owned(), "POST")
            }
            Remedy::UpdatePaymentMethod => (self.config.load().payment_method_url.clone(), "GET"),
            Remedy::PayInvoice { .. } => ("/billing/invoices".to_owned(), "GET"),
        };
        Action {
            kind: remedy.kind(),
            url,
            method,
        }
    }

    fn admit_on(&self, cell: &Arc<Cell>, req: &RailRequest<'_>) -> Decision {
        let account = cell.account.as_str();
        let catalog = self.catalog.load();
        let mut entry = cell.entry.lock();
        let Some(plan) = catalog.iter().find(|p| p.id() == &entry.sub.plan) else {
            return Decision::Deny(Problem::new(
                ProblemCode::Forbidden,
                format!("plan {} is no longer offered", entry.sub.plan),
            ));
        };
        let grant = match admit(&entry.sub, plan, &catalog, req.route, 1, req.now) {
            Admission::Refuse(refusal) => return self.refuse(&refusal, account),
            Admission::Serve(grant) => grant,
        };
        let mut headers = Vec::new();
        if let Some(w) = grant.warning {
            headers.push((
                "subscription-warning",
                format!("{}; until=\"{}\"", w.reason.as_str(), rfc3339(w.until)),
            ));
        }
        let mut held = Held {
            cell: cell.clone(),
            period_start: entry.sub.period.start,
            group: None,
            units: 0,
            overage_units: 0,
            credits: None,
        };
        if let Some(q) = grant.quota {
            headers.push(("quota-group", q.group.to_owned()));
            headers.push(("quota-remaining", q.remaining.to_string()));
            if let Some(at) = q.resets_at {
                headers.push(("quota-reset", rfc3339(at)));
            }
            if let Some(cost) = grant.overage_cost {
                match self.credits.reserve(account, req.route, cost) {
                    Decision::Allow(hold) => held.credits = Some(hold),
                    _ => {
                        return self.refuse(
                            &exhausted(plan, q.group, q.resets_at, req.now, &catalog, req.route),
                            account,
                        );
                    }
                }
            }
            let group = q.group.to_owned();
            let Ok(recorded) = entry.sub.record(plan, &group, 1) else {
                return Decision::Deny(Problem::new(
                    ProblemCode::InternalError,
                    "quota group missing",
                ));
            };
            held.units = 1;
            held.overage_units = recorded.overage_units;
            if let Some(top) = recorded.crossed.last() {
                let included = plan.quota(&group).map_or(0, |q| q.included);
                let used = entry.sub.usage_of(&group).total();
                let percent = i32::from(top.percent());
                let note = self.notification(
                    "quota.threshold_reached",
                    account,
                    json!({"plan": plan.id().as_str(), "group": group, "percent": percent,
                           "used": used, "included": included,
                           "resets_at": q.resets_at.map(rfc3339)}),
                );
                let mut pending = self.pending.lock();
                pending.notifications.push(note);
                let slot = pending
                    .usage
                    .entry((account.to_owned(), held.period_start, group.clone()))
                    .or_default();
                slot.2 = slot.2.max(percent);
            }
            held.group = Some(group);
        }
        drop(entry);
        let amount = held.credits.as_ref().and_then(|h| h.amount);
        let reference = self.next_hold.fetch_add(1, Ordering::Relaxed);
        self.holds.lock().insert(reference, held);
        Decision::Allow(Hold {
            rail: Some(RailKind::Plans),
            amount,
            reference,
            headers,
        })
    }

    fn settle_now(&self, hold: &Hold, outcome: &Outcome) -> Settlement {
        let Some(held) = self.holds.lock().remove(&hold.reference) else {
            return Settlement::default();
        };
        let charged = held
            .credits
            .as_ref()
            .and_then(|h| self.credits.settle_now(h, outcome).charged);
        let Some(group) = held.group else {
            return Settlement::default();
        };
        if outcome.chargeable() {
            let mut pending = self.pending.lock();
            let slot = pending
                .usage
                .entry((held.cell.account.clone(), held.period_start, group))
                .or_default();
            slot.0 += held.units - held.overage_units;
            slot.1 += held.overage_units;
        } else {
            let mut entry = held.cell.entry.lock();
            if entry.sub.period.start == held.period_start {
                entry.sub.release(&group, held.units);
            }
        }
        Settlement {
            charged,
            headers: Vec::new(),
        }
    }
}

/// `quota_exhausted` for a plan whose overage could not be paid from
/// credits: wait for the reset, top up, or upgrade.
fn exhausted(
    plan: &Plan,
    group: &str,
    resets_at: Option<UnixNanos>,
    now: UnixNanos,
    catalog: &[Plan],
    route: &str,
) -> Refusal {
    let when = resets_at.map_or_else(
        || "it does not reset before the subscription ends".to_owned(),
        |at| format!("it resets at {}", rfc3339(at)),
    );
    let plans: Vec<PlanId> = catalog
        .iter()
        .filter(|p| p.id() != plan.id() && p.includes(route))
        .map(|p| p.id().clone())
        .collect();
    Refusal {
        code: ProblemCode::QuotaExhausted,
        retry_after_secs: resets_at.map(|at| secs_until(now, at)),
        remedies: if plans.is_empty() {
            Vec::new()
        } else {
            vec![Remedy::UpgradePlan { plans }]
        },
        resets_at,
        detail: format!(
            "The {group} quota of plan {} is used up and the account's credits cannot pay the overage; top up, or wait: {when}.",
            plan.id()
        ),
    }
}
