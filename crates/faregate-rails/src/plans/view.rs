//! What the billing endpoints do and show: a subscriber's subscription,
//! usage, invoices and receipts, and the changes they may make themselves
//! (activate, cancel). The gateway serves these on its own listener under
//! `/billing/`, authenticated with the subscriber's key.

use faregate_core::{
    Action, ActionKind, CancelAt, Event, PaymentMethod, PlanId, Problem, ProblemCode, Subscription,
    TransitionError, rfc3339,
};
use faregate_store::{BillingChange, DocumentKind};
use serde_json::{Value, json};

use super::{Change, Plans, PlansError};

/// Most documents one listing returns.
const LIST_LIMIT: u32 = 100;

impl Plans {
    /// `GET /billing/subscription`.
    pub fn subscription_view(&self, account: &str) -> Result<Value, Problem> {
        self.subscription_of(account)
            .ok_or_else(|| PlansError::NoSubscription(account.to_owned()).to_problem())
    }

    /// `account`'s subscription as the billing endpoints show it, if it
    /// has one.
    pub fn subscription_of(&self, account: &str) -> Option<Value> {
        let sub = self.cell(account)?.entry.lock().sub.clone();
        Some(self.describe(account, &sub))
    }

    fn describe(&self, account: &str, sub: &Subscription) -> Value {
        let plan = self.plan(&sub.plan);
        let quotas: Vec<Value> = plan
            .iter()
            .flat_map(|p| p.spec().quotas.iter())
            .map(|q| {
                let used = sub.usage_of(&q.group);
                json!({
                    "group": q.group,
                    "routes": q.routes,
                    "included": q.included,
                    "used": used.included,
                    "remaining": q.included.saturating_sub(used.included),
                    "overage": used.overage,
                    "resets_at": sub.renews_at_period_end().then(|| rfc3339(sub.period.end)),
                })
            })
            .collect();
        json!({
            "account": account,
            "plan": sub.plan.as_str(),
            "plan_name": plan.as_ref().map(|p| p.spec().name.clone()),
            "price": plan.as_ref().map(|p| p.spec().price.decimal_string()),
            "currency": plan.as_ref().map(|p| p.spec().price.currency().code()),
            "interval": plan.as_ref().map(|p| p.spec().interval.as_str()),
            "state": sub.state.as_str(),
            "current_period": {"start": rfc3339(sub.period.start), "end": rfc3339(sub.period.end)},
            "trial_end": sub.trial_end.map(rfc3339),
            "grace_until": sub.grace_until.map(rfc3339),
            "canceled_at": sub.canceled_at.map(rfc3339),
            "payment_method": match sub.payment_method {
                PaymentMethod::Attached => "attached",
                PaymentMethod::Missing => "missing",
            },
            "open_invoice": sub.open_invoice.map(|i| json!({
                "id": super::codec::invoice_doc_id(account, i.id),
                "amount_due": i.amount_due.decimal_string(),
                "currency": i.amount_due.currency().code(),
                "due_at": rfc3339(i.due_at),
            })),
            "quotas": quotas,
        })
    }

    /// Starts `plan` for `account` (the admin API), with its trial when
    /// `trial` and the plan has one. A `customer` (the card processor's id)
    /// is linked to the account in the same database transaction.
    pub async fn subscribe(
        &self,
        account: &str,
        plan: &str,
        trial: bool,
        customer: Option<&str>,
    ) -> Result<Value, PlansError> {
        let change = Change::Start {
            plan: PlanId::new(plan),
            trial,
        };
        let link = customer.map(|c| BillingChange {
            link_customer: Some((c.to_owned(), account.to_owned())),
            ..BillingChange::default()
        });
        let sub = self
            .change(account, link, change)
            .await?
            .ok_or_else(|| PlansError::NoSubscription(account.to_owned()))?;
        Ok(self.describe(account, &sub))
    }

    /// `POST /billing/subscription/activate` with an optional
    /// `{"plan": "…"}`: starts paying for the current plan (ending a trial,
    /// resuming a cancellation, restarting an ended one) or switches plans.
    pub async fn activate(&self, account: &str, body: &[u8]) -> Result<Value, Problem> {
        let wanted = parse_body(body)?
            .get("plan")
            .map(|p| p.as_str().map(PlanId::new))
            .map(|p| p.ok_or_else(|| bad("plan must be a string")))
            .transpose()?;
        let current = self.cell(account).map(|c| c.entry.lock().sub.plan.clone());
        let change = match (&wanted, current) {
            (Some(plan), Some(current)) if *plan != current => Change::Start {
                plan: plan.clone(),
                trial: false,
            },
            (_, Some(_)) => Change::Events(vec![Event::Activate]),
            (Some(plan), None) => Change::Start {
                plan: plan.clone(),
                trial: false,
            },
            (None, None) => {
                return Err(bad(
                    "the account has no subscription: send {\"plan\": \"<plan id>\"}",
                ));
            }
        };
        match self.change(account, None, change).await {
            Ok(Some(sub)) => Ok(self.describe(account, &sub)),
            Ok(None) => Err(PlansError::Contended.to_problem()),
            Err(PlansError::Transition(TransitionError::PaymentMethodRequired)) => {
                let mut problem = Problem::new(
                    ProblemCode::PaymentMethodRequired,
                    "a paid period cannot start without a payment method on file",
                );
                problem.actions.push(Action {
                    kind: ActionKind::UpdatePaymentMethod,
                    url: self.config.load().payment_method_url.clone(),
                    method: "GET",
                });
                Err(problem)
            }
            Err(e) => Err(e.to_problem()),
        }
    }

    /// `POST /billing/subscription/cancel` with an optional
    /// `{"at_period_end": false}` to end it now.
    pub async fn cancel(&self, account: &str, body: &[u8]) -> Result<Value, Problem> {
        let at_end = match parse_body(body)?.get("at_period_end") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("at_period_end must be true or false")),
        };
        self.cancel_at(account, at_end)
            .await
            .map_err(|e| e.to_problem())
    }

    /// Cancels `account`'s subscription at the end of its period, or now
    /// when `at_period_end` is false (the billing endpoint and the admin
    /// API).
    pub async fn cancel_at(&self, account: &str, at_period_end: bool) -> Result<Value, PlansError> {
        let at = if at_period_end {
            CancelAt::PeriodEnd
        } else {
            CancelAt::Now
        };
        match self
            .change(account, None, Change::Events(vec![Event::Cancel(at)]))
            .await?
        {
            Some(sub) => Ok(self.describe(account, &sub)),
            None => Err(PlansError::Contended),
        }
    }

    /// `GET /billing/usage`: this period's units by quota group, and the
    /// last requests charged to the account's credits.
    pub async fn usage_view(&self, account: &str) -> Result<Value, Problem> {
        let subscription = self
            .cell(account)
            .map(|c| c.entry.lock().sub.clone())
            .map(|sub| self.describe(account, &sub));
        let charges = self
            .store
            .usage(&faregate_store::LedgerAccount::customer(account), None, 100)
            .await
            .map_err(|e| PlansError::from(e).to_problem())?;
        let currency = self.credits.currency_of(account);
        let charges: Vec<Value> = charges
            .iter()
            .map(|(_, u)| {
                json!({
                    "request_id": u.reference,
                    "amount": currency.map(|c| faregate_core::Money::from_atomic(
                        u64::try_from(u.amount).unwrap_or(0), c).decimal_string()),
                    "created_at": rfc3339(u64::try_from(u.created_at).unwrap_or(0) * 1_000_000),
                })
            })
            .collect();
        Ok(json!({
            "account": account,
            "balance": self.credits.spendable(account).map(|m| m.decimal_string()),
            "currency": currency.map(|c| c.code()),
            "period": subscription.as_ref().map(|s| s["current_period"].clone()),
            "quotas": subscription.map_or(Value::Array(Vec::new()), |s| s["quotas"].clone()),
            "charges": charges,
        }))
    }

    /// `GET /billing/invoices` or `/billing/receipts`: newest first.
    pub async fn documents_view(
        &self,
        account: &str,
        kind: DocumentKind,
    ) -> Result<Value, Problem> {
        let docs = self
            .store
            .documents(Some(account), Some(kind), None, LIST_LIMIT)
            .await
            .map_err(|e| PlansError::from(e).to_problem())?;
        let data: Vec<Value> = docs.iter().map(document_json).collect();
        Ok(json!({ "data": data }))
    }
}

/// A stored invoice or receipt as the APIs show it.
pub fn document_json(doc: &faregate_store::BillingDocument) -> Value {
    let mut body: Value = serde_json::from_str(&doc.body).unwrap_or(Value::Null);
    let amount =
        faregate_core::Money::from_atomic(u64::try_from(doc.amount).unwrap_or(0), doc.currency);
    let head = json!({
        "id": doc.id,
        "object": doc.kind.as_str(),
        "account": doc.account_id,
        "status": doc.status,
        "amount": amount.decimal_string(),
        "currency": doc.currency.code(),
        "created_at": rfc3339(u64::try_from(doc.created_at).unwrap_or(0) * 1_000_000),
    });
    if let (Value::Object(b), Value::Object(h)) = (&mut body, head.clone()) {
        b.extend(h);
        return body;
    }
    head
}

fn parse_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(bad("the body must be a JSON object")),
    }
}

fn bad(detail: &str) -> Problem {
    Problem::new(ProblemCode::BadRequest, detail)
}
