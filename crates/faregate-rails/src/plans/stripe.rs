//! Webhooks in from a Stripe-compatible card processor.
//!
//! A delivery is answered 2xx only once its effect is committed, so the
//! processor retries anything that failed. Each event id is applied once
//! (the id is stored in the same database transaction as the effect), and
//! an event older than the last one applied to the same object (an invoice,
//! a payment method, a processor subscription) changes nothing, whatever
//! order deliveries arrive in. Customers map to accounts by the
//! processor's customer id.

use faregate_core::{CancelAt, Currency, Event, Money, Problem, ProblemCode, SubscriptionState};
use faregate_store::{BillingChange, ProcessorEvent, ProcessorObject, StoreError, Transaction};
use serde_json::{Value, json};

use super::{Change, Plans, PlansError};
use crate::signature;

/// The largest webhook body read.
pub const MAX_WEBHOOK_BODY: usize = 1 << 20;

/// The answer to a webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookReply {
    /// What was done: `applied`, `duplicate` or `ignored: why`.
    pub outcome: String,
}

impl WebhookReply {
    /// The JSON body sent back.
    pub fn to_json(&self) -> Value {
        json!({"received": true, "outcome": self.outcome})
    }
}

/// The parts of an event every handler needs.
struct Incoming<'a> {
    id: &'a str,
    kind: &'a str,
    created: i64,
    object: &'a Value,
}

impl Plans {
    /// Verifies, deduplicates and applies one webhook delivery.
    pub async fn stripe_webhook(
        &self,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookReply, Problem> {
        let config = self.config.load();
        if config.webhook_secrets.is_empty() {
            return Err(Problem::new(
                ProblemCode::Forbidden,
                "no webhook signing secret is configured",
            ));
        }
        let Some(header) = signature_header else {
            return Err(Problem::new(
                ProblemCode::InvalidSignature,
                "the Stripe-Signature header is missing",
            ));
        };
        let secrets: Vec<&[u8]> = config
            .webhook_secrets
            .iter()
            .map(|s| s.as_bytes())
            .collect();
        let now_secs = self.now() / 1_000_000_000;
        if let Err(e) =
            signature::verify(header, body, &secrets, now_secs, config.webhook_tolerance)
        {
            return Err(Problem::new(ProblemCode::InvalidSignature, e.to_string()));
        }
        let event: Value = serde_json::from_slice(body)
            .map_err(|_| Problem::new(ProblemCode::BadRequest, "the body is not JSON"))?;
        let incoming = Incoming {
            id: event["id"].as_str().unwrap_or_default(),
            kind: event["type"].as_str().unwrap_or_default(),
            created: event["created"].as_i64().unwrap_or(-1),
            object: &event["data"]["object"],
        };
        if incoming.id.is_empty() || incoming.kind.is_empty() || incoming.created < 0 {
            return Err(Problem::new(
                ProblemCode::BadRequest,
                "an event needs an id, a type, a created time and data.object",
            ));
        }
        let result = match self.store.processor_event(incoming.id).await {
            Ok(Some(_)) => Ok(reply("duplicate")),
            Ok(None) => self.apply_event(&incoming).await,
            Err(e) => Err(PlansError::from(e)),
        };
        match result {
            Ok(reply) => {
                tracing::info!(event = incoming.id, kind = incoming.kind, outcome = %reply.outcome, "stripe webhook");
                Ok(reply)
            }
            Err(e) => {
                tracing::warn!(event = incoming.id, kind = incoming.kind, error = %e, "stripe webhook failed; the processor will retry");
                Err(Problem::new(
                    ProblemCode::InternalError,
                    "the event could not be applied",
                ))
            }
        }
    }

    async fn apply_event(&self, ev: &Incoming<'_>) -> Result<WebhookReply, PlansError> {
        match ev.kind {
            "checkout.session.completed" => self.checkout_completed(ev).await,
            "invoice.paid" => self.invoice_event(ev, true).await,
            "invoice.payment_failed" => self.invoice_event(ev, false).await,
            "customer.subscription.updated" => self.subscription_event(ev, false).await,
            "customer.subscription.deleted" => self.subscription_event(ev, true).await,
            "payment_method.attached" => self.payment_method_event(ev, true).await,
            "payment_method.detached" => self.payment_method_event(ev, false).await,
            _ => self.ignore(ev, None, "event type not handled").await,
        }
    }

    fn record(&self, ev: &Incoming<'_>, account: Option<&str>, outcome: &str) -> ProcessorEvent {
        ProcessorEvent {
            id: ev.id.to_owned(),
            kind: ev.kind.to_owned(),
            created: ev.created,
            account_id: account.map(str::to_owned),
            outcome: outcome.to_owned(),
            received_at: self.now_ms(),
        }
    }

    /// Records an event that changes nothing, so a redelivery is known.
    async fn ignore(
        &self,
        ev: &Incoming<'_>,
        account: Option<&str>,
        why: &str,
    ) -> Result<WebhookReply, PlansError> {
        let outcome = format!("ignored: {why}");
        if self
            .store
            .record_processor_event(&self.record(ev, account, &outcome))
            .await?
        {
            Ok(reply(&outcome))
        } else {
            Ok(reply("duplicate"))
        }
    }

    async fn account_of(&self, object: &Value) -> Result<Option<String>, PlansError> {
        match object["customer"].as_str() {
            Some(customer) => Ok(self.store.account_for_customer(customer).await?),
            None => Ok(None),
        }
    }

    /// Commits `bill` with the event, applying `change` to the account's
    /// subscription when it has one; a change the lifecycle refuses is
    /// recorded as ignored (the objects still move).
    async fn commit(
        &self,
        ev: &Incoming<'_>,
        account: &str,
        mut bill: BillingChange,
        change: Option<Change>,
    ) -> Result<WebhookReply, PlansError> {
        bill.event = Some(self.record(ev, Some(account), "applied"));
        let has_sub = self.cell(account).is_some();
        if let (Some(change), true) = (change, has_sub) {
            match self.change(account, Some(bill.clone()), change).await {
                Ok(Some(_)) => return Ok(reply("applied")),
                Ok(None) => return Ok(reply("duplicate")),
                Err(PlansError::Transition(e)) => {
                    let outcome = format!("ignored: {e}");
                    bill.event = Some(self.record(ev, Some(account), &outcome));
                }
                Err(e) => return Err(e),
            }
        }
        let outcome = bill
            .event
            .as_ref()
            .map(|e| e.outcome.clone())
            .unwrap_or_default();
        match self.store.commit_billing(&bill).await? {
            faregate_store::BillingOutcome::DuplicateEvent => Ok(reply("duplicate")),
            _ => {
                if !bill.transactions.is_empty() {
                    let _ = self.credits.reload().await;
                }
                Ok(reply(&outcome))
            }
        }
    }

    /// A paid checkout session tops up the account's credits (and links
    /// the customer to the account named by `client_reference_id`).
    async fn checkout_completed(&self, ev: &Incoming<'_>) -> Result<WebhookReply, PlansError> {
        let o = ev.object;
        let by_reference = o["client_reference_id"]
            .as_str()
            .filter(|a| self.credits.currency_of(a).is_some());
        let account = match by_reference {
            Some(a) => a.to_owned(),
            None => match self.account_of(o).await? {
                Some(a) => a,
                None => return self.ignore(ev, None, "unknown customer").await,
            },
        };
        if o["payment_status"].as_str() != Some("paid") {
            return self.ignore(ev, Some(&account), "checkout not paid").await;
        }
        let Some(amount) = stripe_amount(&o["amount_total"], &o["currency"]) else {
            return self
                .ignore(ev, Some(&account), "amount or currency not understood")
                .await;
        };
        if self.credits.currency_of(&account) != Some(amount.currency()) {
            return self
                .ignore(ev, Some(&account), "currency differs from the account's")
                .await;
        }
        let mut bill = BillingChange::default();
        if let (Some(customer), Some(_)) = (o["customer"].as_str(), by_reference)
            && self.store.customer_of(&account).await?.is_none()
        {
            bill.link_customer = Some((customer.to_owned(), account.clone()));
        }
        let session = o["id"].as_str().unwrap_or(ev.id);
        bill.transactions.push(
            Transaction::top_up(
                &account,
                amount,
                format!("stripe:{}", ev.id),
                ev.id.to_owned(),
                self.now_ms(),
            )
            .map_err(StoreError::from)?
            .with_memo(Some(format!("checkout session {session}"))),
        );
        self.commit(ev, &account, bill, None).await
    }

    async fn invoice_event(
        &self,
        ev: &Incoming<'_>,
        paid: bool,
    ) -> Result<WebhookReply, PlansError> {
        let o = ev.object;
        let Some(invoice) = o["id"].as_str() else {
            return self.ignore(ev, None, "invoice without id").await;
        };
        let Some(account) = self.account_of(o).await? else {
            return self.ignore(ev, None, "unknown customer").await;
        };
        let known = self.store.processor_object(invoice).await?;
        if known.as_ref().is_some_and(|k| k.state == "paid") {
            return self
                .ignore(ev, Some(&account), "invoice already paid")
                .await;
        }
        if !paid && known.as_ref().is_some_and(|k| k.created > ev.created) {
            return self
                .ignore(ev, Some(&account), "older than the invoice's last event")
                .await;
        }
        let bill = BillingChange {
            objects: vec![ProcessorObject {
                id: invoice.to_owned(),
                kind: "invoice".to_owned(),
                account_id: Some(account.clone()),
                state: if paid { "paid" } else { "payment_failed" }.to_owned(),
                created: ev.created,
            }],
            ..BillingChange::default()
        };
        let change = self.cell(&account).map(|cell| {
            let sub = cell.entry.lock().sub.clone();
            match (paid, sub.open_invoice, sub.state) {
                (true, Some(_), _) => Change::Events(vec![Event::InvoicePaid]),
                (true, None, SubscriptionState::Active | SubscriptionState::PastDue) => {
                    Change::Events(Vec::new())
                }
                (true, None, _) => Change::Events(vec![
                    Event::PaymentMethodAttached,
                    Event::Activate,
                    Event::InvoicePaid,
                ]),
                (false, _, _) => Change::Events(vec![Event::PaymentFailed]),
            }
        });
        self.commit(ev, &account, bill, change).await
    }

    async fn subscription_event(
        &self,
        ev: &Incoming<'_>,
        deleted: bool,
    ) -> Result<WebhookReply, PlansError> {
        let o = ev.object;
        let Some(id) = o["id"].as_str() else {
            return self.ignore(ev, None, "subscription without id").await;
        };
        let Some(account) = self.account_of(o).await? else {
            return self.ignore(ev, None, "unknown customer").await;
        };
        if let Some(known) = self.store.processor_object(id).await? {
            if known.state == "deleted" {
                return self
                    .ignore(ev, Some(&account), "subscription already deleted")
                    .await;
            }
            if known.created > ev.created {
                return self
                    .ignore(
                        ev,
                        Some(&account),
                        "older than the subscription's last event",
                    )
                    .await;
            }
        }
        let cancel_at_end = o["cancel_at_period_end"].as_bool().unwrap_or(false);
        let bill = BillingChange {
            objects: vec![ProcessorObject {
                id: id.to_owned(),
                kind: "subscription".to_owned(),
                account_id: Some(account.clone()),
                state: if deleted {
                    "deleted".to_owned()
                } else {
                    o["status"].as_str().unwrap_or("unknown").to_owned()
                },
                created: ev.created,
            }],
            ..BillingChange::default()
        };
        let state = self.cell(&account).map(|c| c.entry.lock().sub.state);
        let events = match (deleted, cancel_at_end, state) {
            (_, _, None | Some(SubscriptionState::Expired)) => Vec::new(),
            (true, _, _) => vec![Event::Cancel(CancelAt::Now)],
            (false, true, Some(SubscriptionState::Canceled)) => Vec::new(),
            (false, true, _) => vec![Event::Cancel(CancelAt::PeriodEnd)],
            (false, false, Some(SubscriptionState::Canceled)) => vec![Event::Activate],
            (false, false, _) => Vec::new(),
        };
        self.commit(ev, &account, bill, Some(Change::Events(events)))
            .await
    }

    async fn payment_method_event(
        &self,
        ev: &Incoming<'_>,
        attached: bool,
    ) -> Result<WebhookReply, PlansError> {
        let o = ev.object;
        let Some(id) = o["id"].as_str() else {
            return self.ignore(ev, None, "payment method without id").await;
        };
        let known = self.store.processor_object(id).await?;
        // A detached method has no customer any more: use the one it had.
        let account = match self.account_of(o).await? {
            Some(a) => a,
            None => match known.as_ref().and_then(|k| k.account_id.clone()) {
                Some(a) => a,
                None => return self.ignore(ev, None, "unknown customer").await,
            },
        };
        if known.as_ref().is_some_and(|k| k.created > ev.created) {
            return self
                .ignore(
                    ev,
                    Some(&account),
                    "older than the payment method's last event",
                )
                .await;
        }
        let others_attached = self
            .store
            .processor_objects_of(&account, "payment_method")
            .await?
            .iter()
            .any(|m| m.id != id && m.state == "attached");
        let bill = BillingChange {
            objects: vec![ProcessorObject {
                id: id.to_owned(),
                kind: "payment_method".to_owned(),
                account_id: Some(account.clone()),
                state: if attached { "attached" } else { "detached" }.to_owned(),
                created: ev.created,
            }],
            ..BillingChange::default()
        };
        let event = match (attached, others_attached) {
            (true, _) => vec![Event::PaymentMethodAttached],
            (false, false) => vec![Event::PaymentMethodDetached],
            (false, true) => Vec::new(),
        };
        self.commit(ev, &account, bill, Some(Change::Events(event)))
            .await
    }
}

fn reply(outcome: &str) -> WebhookReply {
    WebhookReply {
        outcome: outcome.to_owned(),
    }
}

/// A Stripe amount (an integer in the currency's minor unit, two decimals
/// for the currencies faregate keeps) as money.
fn stripe_amount(amount: &Value, currency: &Value) -> Option<Money> {
    let minor = amount.as_u64()?;
    let currency = Currency::from_code(&currency.as_str()?.to_ascii_uppercase()).ok()?;
    if currency.decimals() < 2 {
        return None;
    }
    Money::parse_decimal(&format!("{}.{:02}", minor / 100, minor % 100), currency).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_minor_units_become_atomic_units() {
        let m = stripe_amount(&json!(1234), &json!("usd")).unwrap();
        assert_eq!(m.atomic(), 12_340_000);
        assert_eq!(m.currency(), Currency::USD);
        assert!(stripe_amount(&json!(-5), &json!("usd")).is_none());
        assert!(stripe_amount(&json!(5), &json!("xyz")).is_none());
        assert!(stripe_amount(&json!("5"), &json!("usd")).is_none());
    }
}
