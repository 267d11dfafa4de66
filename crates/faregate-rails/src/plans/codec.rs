//! Subscriptions and invoices as the JSON the store keeps and the billing
//! endpoints show. Times are unix nanoseconds in storage and RFC 3339 in
//! views; money is atomic units in storage and decimal strings in views.

use faregate_core::{
    AnchorDay, Currency, Invoice, InvoiceId, LineItem, Money, OpenInvoice, PaymentMethod, Period,
    PlanId, Settlement, Subscription, SubscriptionState, UnixNanos, rfc3339,
};
use serde_json::{Value, json};

/// What the book keeps beside the subscription itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Extras {
    /// The trial end a "trial ending" notice was sent for.
    pub(crate) trial_notice_for: Option<UnixNanos>,
}

/// The stored body of `sub` (usage is kept in its own rows).
pub(crate) fn encode(sub: &Subscription, extras: &Extras) -> String {
    json!({
        "plan": sub.plan.as_str(),
        "state": sub.state.as_str(),
        "period": {"start": sub.period.start, "end": sub.period.end},
        "anchor": sub.anchor.get(),
        "trial_end": sub.trial_end,
        "grace_until": sub.grace_until,
        "payment_method": match sub.payment_method {
            PaymentMethod::Attached => "attached",
            PaymentMethod::Missing => "missing",
        },
        "open_invoice": sub.open_invoice.map(|i| json!({
            "id": i.id.0,
            "due_at": i.due_at,
            "amount_due": i.amount_due.atomic(),
            "currency": i.amount_due.currency().code(),
        })),
        "invoices_issued": sub.invoices_issued,
        "billed_through": sub.billed_through,
        "canceled_at": sub.canceled_at,
        "trial_notice_for": extras.trial_notice_for,
    })
    .to_string()
}

/// Reads a stored body back; usage starts empty.
pub(crate) fn decode(body: &str) -> Result<(Subscription, Extras), String> {
    let v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let u64_at = |path: &[&str]| -> Result<u64, String> {
        let mut cur = &v;
        for p in path {
            cur = &cur[*p];
        }
        cur.as_u64()
            .ok_or_else(|| format!("subscription field {} is missing", path.join(".")))
    };
    let opt = |name: &str| v[name].as_u64();
    let state: SubscriptionState = v["state"].as_str().unwrap_or_default().parse()?;
    let anchor = u8::try_from(u64_at(&["anchor"])?)
        .ok()
        .and_then(AnchorDay::try_new)
        .ok_or("subscription anchor day is invalid")?;
    let open_invoice = match &v["open_invoice"] {
        Value::Null => None,
        o => {
            let currency = Currency::from_code(o["currency"].as_str().unwrap_or_default())
                .map_err(|e| e.to_string())?;
            Some(OpenInvoice {
                id: InvoiceId(o["id"].as_u64().ok_or("open invoice id")?),
                due_at: o["due_at"].as_u64().ok_or("open invoice due_at")?,
                amount_due: Money::from_atomic(
                    o["amount_due"].as_u64().ok_or("open invoice amount")?,
                    currency,
                ),
            })
        }
    };
    let sub = Subscription {
        plan: PlanId::new(v["plan"].as_str().ok_or("subscription plan")?),
        state,
        period: Period {
            start: u64_at(&["period", "start"])?,
            end: u64_at(&["period", "end"])?,
        },
        anchor,
        trial_end: opt("trial_end"),
        grace_until: opt("grace_until"),
        payment_method: if v["payment_method"] == "attached" {
            PaymentMethod::Attached
        } else {
            PaymentMethod::Missing
        },
        open_invoice,
        invoices_issued: u64_at(&["invoices_issued"])?,
        billed_through: u64_at(&["billed_through"])?,
        usage: Default::default(),
        canceled_at: opt("canceled_at"),
    };
    sub.check_invariants().map_err(|e| e.to_string())?;
    let extras = Extras {
        trial_notice_for: opt("trial_notice_for"),
    };
    Ok((sub, extras))
}

/// The document id of invoice `id` of `account`.
pub(crate) fn invoice_doc_id(account: &str, id: InvoiceId) -> String {
    format!("inv_{}_{}", account.trim_start_matches("acct_"), id.0)
}

fn money(m: Money) -> Value {
    json!({"amount": m.decimal_string(), "currency": m.currency().code()})
}

fn period(p: Period) -> Value {
    json!({"start": rfc3339(p.start), "end": rfc3339(p.end)})
}

/// An invoice as stored and shown.
pub(crate) fn invoice_body(account: &str, invoice: &Invoice) -> Value {
    let lines: Vec<Value> = invoice
        .lines
        .iter()
        .map(|line| {
            let settled = match line.item.settlement() {
                Settlement::Due => "due",
                Settlement::PaidFromCredits => "paid_from_credits",
            };
            let mut v = match &line.item {
                LineItem::Subscription { plan, period: p } => json!({
                    "type": "subscription", "plan": plan.as_str(), "period": period(*p),
                }),
                LineItem::Overage {
                    group,
                    units,
                    unit_price,
                    period: p,
                } => json!({
                    "type": "overage", "group": group, "units": units,
                    "unit_price": money(*unit_price), "period": period(*p),
                }),
                LineItem::PreviousBalance { invoice } => json!({
                    "type": "previous_balance", "invoice": invoice_doc_id(account, *invoice),
                }),
            };
            v["amount"] = json!(line.amount.decimal_string());
            v["settlement"] = json!(settled);
            v
        })
        .collect();
    json!({
        "number": invoice.id.0,
        "issued_at": rfc3339(invoice.issued_at),
        "due_at": rfc3339(invoice.due_at),
        "amount_due": invoice.amount_due.decimal_string(),
        "currency": invoice.amount_due.currency().code(),
        "supersedes": invoice.supersedes.map(|i| invoice_doc_id(account, i)),
        "lines": lines,
    })
}

/// What an invoice adds to what the customer owes: its due lines, less a
/// previous balance it carries (that one was booked when first issued).
pub(crate) fn newly_due(invoice: &Invoice) -> u64 {
    invoice
        .lines
        .iter()
        .filter(|l| matches!(l.item, LineItem::Subscription { .. }))
        .map(|l| l.amount.atomic())
        .fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faregate_core::{GroupUsage, Interval, Overage, Plan, PlanSpec};
    use std::time::Duration;

    const T0: UnixNanos = 1_767_225_600 * 1_000_000_000; // 2026-01-01

    fn plan() -> Plan {
        Plan::try_new(PlanSpec {
            id: PlanId::new("pro"),
            name: "Pro".into(),
            price: Money::parse_decimal("29", Currency::USD).unwrap(),
            interval: Interval::Month,
            trial: Some(Duration::from_secs(14 * 86_400)),
            grace: Duration::from_secs(3 * 86_400),
            routes: vec!["api".into()],
            quotas: vec![],
            overage: Overage::HardStop,
        })
        .unwrap()
    }

    #[test]
    fn a_subscription_survives_the_round_trip_without_its_usage() {
        let plan = plan();
        let mut sub = Subscription::start_trial(&plan, T0, PaymentMethod::Missing)
            .unwrap()
            .subscription;
        sub.payment_method = PaymentMethod::Attached;
        let activated = sub.activate(&plan, T0 + 5).unwrap().subscription;
        let failed = activated
            .payment_failed(&plan, T0 + 10)
            .unwrap()
            .subscription;
        let extras = Extras {
            trial_notice_for: Some(T0 + 99),
        };
        for s in [sub, activated, failed] {
            let (back, ex) = decode(&encode(&s, &extras)).unwrap();
            assert_eq!(back, s);
            assert_eq!(ex, extras);
        }
        let mut used = plan_sub_with_usage(&plan);
        used.usage.insert("x".into(), GroupUsage::default());
        assert!(decode(&encode(&used, &extras)).unwrap().0.usage.is_empty());
    }

    fn plan_sub_with_usage(plan: &Plan) -> Subscription {
        Subscription::start_trial(plan, T0, PaymentMethod::Missing)
            .unwrap()
            .subscription
    }

    #[test]
    fn a_broken_body_is_an_error_not_a_default() {
        assert!(decode("{}").is_err());
        assert!(decode("not json").is_err());
    }
}
