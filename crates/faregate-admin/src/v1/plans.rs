//! `GET /v1/plans`: the plans on sale, as the config defines them, in
//! catalog order. Prices are shown as the subscription view shows them
//! (`"29.00"`), so that the two compare as text.

use axum::Json;
use faregate_core::{Overage, Plan};
use serde::Serialize;

use super::views::Page;
use crate::extract::PlansAccess;

#[derive(Debug, Serialize)]
pub(super) struct PlanView {
    id: String,
    name: String,
    price: String,
    currency: &'static str,
    /// `month` or `year`.
    interval: &'static str,
    /// The trial's length; null when the plan offers none.
    trial_seconds: Option<u64>,
    /// How long a subscriber is still served after a failed payment.
    grace_seconds: u64,
    routes: Vec<String>,
    quotas: Vec<QuotaView>,
    overage: OverageView,
}

#[derive(Debug, Serialize)]
struct QuotaView {
    group: String,
    routes: Vec<String>,
    included: u64,
}

#[derive(Debug, Serialize)]
struct OverageView {
    /// `hard_stop` or `from_credits`.
    policy: &'static str,
    /// The price of a unit past the quota; null for a hard stop.
    unit_price: Option<String>,
}

impl From<&Plan> for PlanView {
    fn from(plan: &Plan) -> Self {
        let spec = plan.spec();
        let overage = match spec.overage {
            Overage::HardStop => OverageView {
                policy: "hard_stop",
                unit_price: None,
            },
            Overage::FromCredits { unit_price } => OverageView {
                policy: "from_credits",
                unit_price: Some(unit_price.decimal_string()),
            },
        };
        Self {
            id: spec.id.to_string(),
            name: spec.name.clone(),
            price: spec.price.decimal_string(),
            currency: spec.price.currency().code(),
            interval: spec.interval.as_str(),
            trial_seconds: spec.trial.map(|t| t.as_secs()),
            grace_seconds: spec.grace.as_secs(),
            routes: spec.routes.clone(),
            quotas: spec
                .quotas
                .iter()
                .map(|q| QuotaView {
                    group: q.group.clone(),
                    routes: q.routes.clone(),
                    included: q.included,
                })
                .collect(),
            overage,
        }
    }
}

/// `GET /v1/plans`: every plan on one page (`next` is always null).
pub(super) async fn list(PlansAccess(plans): PlansAccess) -> Json<Page<PlanView>> {
    Json(Page {
        data: plans.catalog().iter().map(PlanView::from).collect(),
        next: None,
    })
}
