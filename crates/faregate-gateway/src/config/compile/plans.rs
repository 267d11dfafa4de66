//! `[[plans]]` and `[billing]`: checked with the core's own plan rules,
//! every problem reported with its field path.

use std::time::Duration;

use faregate_core::{Interval, MAX_GRACE, Money, Overage, Plan, PlanId, PlanSpec, Quota, RailKind};

use super::Compiler;
use crate::config::raw::{RawAccess, RawBilling, RawPlan};
use crate::config::{Access, BillingSettings};

/// A plan's grace period when the file does not say.
const DEFAULT_GRACE: Duration = Duration::from_secs(3 * 86_400);

impl Compiler<'_> {
    pub(super) fn plans(&mut self, raw: &[RawPlan], route_names: &[&str]) -> Vec<Plan> {
        let mut plans = Vec::new();
        let mut ids = std::collections::HashSet::new();
        if !raw.is_empty() && !self.rails.contains(&RailKind::Plans) {
            self.problem("plans", "this build has no plans rail");
        }
        for (i, p) in raw.iter().enumerate() {
            let path = format!("plans[{i}]");
            if !ids.insert(p.id.as_str()) {
                self.problem(
                    format!("{path}.id"),
                    format!("plan {:?} is defined twice", p.id),
                );
            }
            for (j, route) in p.routes.iter().enumerate() {
                if !route_names.contains(&route.as_str()) {
                    self.problem(
                        format!("{path}.routes[{j}]"),
                        format!("no route is named {route:?}"),
                    );
                }
            }
            if let Some(spec) = self.plan_spec(&path, p) {
                match Plan::try_new(spec) {
                    Ok(plan) => plans.push(plan),
                    Err(invalid) => {
                        for problem in invalid.problems {
                            self.problem(&path, problem);
                        }
                    }
                }
            }
        }
        plans
    }

    fn plan_spec(&mut self, path: &str, p: &RawPlan) -> Option<PlanSpec> {
        let price = self.money(&format!("{path}.price"), &p.price);
        let interval = match p.interval.as_deref().unwrap_or("month").parse::<Interval>() {
            Ok(i) => Some(i),
            Err(e) => {
                self.problem(format!("{path}.interval"), e);
                None
            }
        };
        let trial = match p.trial.as_deref() {
            None => Some(None),
            Some(t) => self.duration(&format!("{path}.trial"), t).map(Some),
        };
        let grace = match p.grace.as_deref() {
            None => Some(DEFAULT_GRACE),
            Some(g) => self.duration(&format!("{path}.grace"), g),
        };
        if grace.is_some_and(|g| g > MAX_GRACE) {
            self.problem(format!("{path}.grace"), "must not exceed 90 days");
        }
        let overage = match p.overage_unit_price.as_deref() {
            None => Some(Overage::HardStop),
            Some(text) => self
                .money(&format!("{path}.overage_unit_price"), text)
                .map(|unit_price| Overage::FromCredits { unit_price }),
        };
        Some(PlanSpec {
            id: PlanId::new(p.id.clone()),
            name: p.name.clone().unwrap_or_else(|| p.id.clone()),
            price: price?,
            interval: interval?,
            trial: trial?,
            grace: grace?,
            routes: p.routes.clone(),
            quotas: p
                .quotas
                .iter()
                .map(|q| Quota {
                    group: q.group.clone(),
                    routes: q.routes.clone(),
                    included: q.included,
                })
                .collect(),
            overage: overage?,
        })
    }

    fn money(&mut self, path: &str, text: &str) -> Option<Money> {
        match text.parse::<Money>() {
            Ok(m) => Some(m),
            Err(e) => {
                self.problem(
                    path,
                    format!("expected an amount such as \"29.00 USD\": {e}"),
                );
                None
            }
        }
    }

    pub(super) fn billing(&mut self, raw: &RawBilling) -> BillingSettings {
        let secrets = raw
            .stripe_webhook_secrets
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.secret(&format!("billing.stripe_webhook_secrets[{i}]"), s))
            .collect();
        let webhook_tolerance = raw
            .webhook_tolerance
            .as_deref()
            .and_then(|t| self.duration("billing.webhook_tolerance", t))
            .unwrap_or(faregate_rails::signature::DEFAULT_TOLERANCE);
        let payment_method_url = raw
            .payment_method_url
            .clone()
            .unwrap_or_else(|| "/billing/subscription".to_owned());
        if !(payment_method_url.starts_with('/')
            || payment_method_url.starts_with("https://")
            || payment_method_url.starts_with("http://"))
        {
            self.problem(
                "billing.payment_method_url",
                "expected an http(s):// URL or a path",
            );
        }
        let low_balance = raw
            .low_balance
            .iter()
            .enumerate()
            .filter_map(|(i, t)| self.money(&format!("billing.low_balance[{i}]"), t))
            .collect();
        let trial_ending_notice = raw
            .trial_ending_notice
            .as_deref()
            .and_then(|t| self.duration("billing.trial_ending_notice", t))
            .unwrap_or(Duration::from_secs(3 * 86_400));
        BillingSettings {
            stripe_webhook_secrets: secrets,
            webhook_tolerance,
            payment_method_url,
            low_balance,
            trial_ending_notice,
        }
    }

    /// The access of route `name`, given that some plan includes it:
    /// subscribers first, then the route's other rails.
    pub(super) fn plan_route_access(
        &mut self,
        path: &str,
        raw: Option<&RawAccess>,
        access: Access,
    ) -> Access {
        if let Some(RawAccess::Word(w)) = raw
            && w == "anyone"
        {
            self.problem(
                format!("{path}.access"),
                "a route a plan includes cannot be open to anyone",
            );
            return access;
        }
        let mut rails = vec![RailKind::Plans];
        if let Access::Rails(list) = access {
            rails.extend(list.into_iter().filter(|r| *r != RailKind::Plans));
        }
        Access::Rails(rails)
    }
}
