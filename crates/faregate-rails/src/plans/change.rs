//! Changing a subscription: one lifecycle transition, its effects turned
//! into invoices, ledger transactions and notifications, committed with
//! whatever else the caller brings (a processor event) in one database
//! transaction, redone when another node moved first.

use faregate_core::{
    Effect, Money, Notice, Plan, PlanId, Subscription, SubscriptionState, Transition,
    TransitionError, rfc3339,
};
use faregate_store::{
    BillingChange, BillingDocument, BillingOutcome, DocumentKind, StoreError, SubscriptionRow,
    SubscriptionWrite, Transaction,
};
use serde_json::{Value, json};

use super::{Entry, Plans, PlansError, codec};

/// A change to a subscription.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Time passed.
    Tick,
    /// Lifecycle events, applied in order as one change.
    Events(Vec<faregate_core::Event>),
    /// Start the plan (a trial when `trial` and the plan has one).
    Start {
        /// The plan.
        plan: PlanId,
        /// Whether to start with the plan's trial.
        trial: bool,
    },
}

impl Plans {
    /// Applies `change` to `account`'s subscription and commits it with
    /// `extra` (a processor event, a top-up …) in one database transaction.
    /// Returns the subscription after it, or `None` when `extra`'s event
    /// was already applied.
    pub(crate) async fn change(
        &self,
        account: &str,
        extra: Option<BillingChange>,
        change: Change,
    ) -> Result<Option<Subscription>, PlansError> {
        let gate_cell = self.cell(account);
        let _gate = match &gate_cell {
            Some(cell) => Some(cell.gate.lock().await),
            None => None,
        };
        for _ in 0..5 {
            let current = self.cell(account).map(|cell| cell.entry.lock().clone());
            let now = self.now();
            let (transition, plan) = match (&change, &current) {
                (Change::Start { plan, trial }, current) => {
                    let plan = self
                        .plan(plan)
                        .ok_or_else(|| PlansError::UnknownPlan(plan.to_string()))?;
                    self.check_currency(account, &plan)?;
                    if let Some(open) = current.as_ref().and_then(|e| e.sub.open_invoice) {
                        return Err(TransitionError::PaymentOutstanding(open.id).into());
                    }
                    let method = self.payment_method(account).await?;
                    let t = if *trial && plan.spec().trial.is_some() {
                        Subscription::start_trial(&plan, now, method)?
                    } else {
                        Subscription::start(&plan, now, method)?
                    };
                    (t, plan)
                }
                (_, None) => return Err(PlansError::NoSubscription(account.to_owned())),
                (Change::Tick, Some(e)) => {
                    let plan = self.plan_of(&e.sub)?;
                    (e.sub.tick(&plan, now)?, plan)
                }
                (Change::Events(events), Some(e)) => {
                    let plan = self.plan_of(&e.sub)?;
                    let mut t = e.sub.tick(&plan, now)?;
                    for event in events {
                        // A payment the processor reports for an invoice
                        // already settled here changes nothing.
                        if *event == faregate_core::Event::InvoicePaid
                            && t.subscription.open_invoice.is_none()
                        {
                            continue;
                        }
                        let next = t.subscription.apply(&plan, *event, now)?;
                        t.effects.extend(next.effects);
                        t.subscription = next.subscription;
                    }
                    (t, plan)
                }
            };
            let mut extras = current
                .as_ref()
                .map(|e| e.extras.clone())
                .unwrap_or_default();
            let mut bill = extra.clone().unwrap_or_default();
            // A new subscription replaces the old one: nothing of the old
            // one is paid or renewed by it.
            let before = match change {
                Change::Start { .. } => None,
                _ => current.as_ref().map(|e| &e.sub),
            };
            if matches!(change, Change::Tick)
                && before.is_some_and(|b| same_state(b, &transition.subscription))
                && transition.effects.is_empty()
                && !current
                    .as_ref()
                    .is_some_and(|e| self.trial_notice_due(e, now))
            {
                return Ok(before.cloned());
            }
            self.effects(account, before, &transition, &plan, &mut bill)
                .await?;
            let after = &transition.subscription;
            if after.state == SubscriptionState::Trialing
                && current
                    .as_ref()
                    .is_some_and(|e| self.trial_notice_due(e, now))
                && after.trial_end != extras.trial_notice_for
            {
                extras.trial_notice_for = after.trial_end;
                bill.notifications.push(self.notification(
                    "subscription.trial_ending",
                    account,
                    json!({
                        "plan": after.plan.as_str(),
                        "trial_end": after.trial_end.map(rfc3339),
                    }),
                ));
            }
            bill.subscription = Some(SubscriptionWrite {
                row: SubscriptionRow {
                    account_id: account.to_owned(),
                    plan: after.plan.to_string(),
                    state: after.state.as_str().to_owned(),
                    body: codec::encode(after, &extras),
                    version: 0,
                    updated_at: self.now_ms(),
                },
                expected_version: current.as_ref().map(|e| e.version),
            });
            match self.store.commit_billing(&bill).await? {
                BillingOutcome::Committed => {}
                BillingOutcome::DuplicateEvent => return Ok(None),
                BillingOutcome::VersionConflict => {
                    self.reload().await?;
                    continue;
                }
            }
            let version = current.as_ref().map_or(1, |e| e.version + 1);
            let mut sub = transition.subscription;
            if let Some(cell) = self.cell(account) {
                let mut entry = cell.entry.lock();
                // Requests counted while the database wrote stay counted.
                if entry.sub.period == sub.period && entry.sub.plan == sub.plan {
                    sub.usage = entry.sub.usage.clone();
                }
                *entry = Entry {
                    sub: sub.clone(),
                    version,
                    extras,
                };
            } else {
                self.install(
                    account,
                    Entry {
                        sub: sub.clone(),
                        version,
                        extras,
                    },
                );
            }
            if bill
                .transactions
                .iter()
                .any(|t| t.kind == faregate_store::TxKind::TopUp)
            {
                let _ = self.credits.reload().await;
            }
            return Ok(Some(sub));
        }
        Err(PlansError::Contended)
    }

    fn plan_of(&self, sub: &Subscription) -> Result<Plan, PlansError> {
        self.plan(&sub.plan)
            .ok_or_else(|| PlansError::UnknownPlan(sub.plan.to_string()))
    }

    fn check_currency(&self, account: &str, plan: &Plan) -> Result<(), PlansError> {
        let Some(held) = self.credits.currency_of(account) else {
            return Err(PlansError::NoAccount(account.to_owned()));
        };
        let price = plan.spec().price.currency();
        if held != price {
            return Err(PlansError::Currency {
                plan: plan.id().to_string(),
                plan_currency: price.code(),
                account_currency: held.code(),
            });
        }
        Ok(())
    }

    async fn payment_method(
        &self,
        account: &str,
    ) -> Result<faregate_core::PaymentMethod, PlansError> {
        let methods = self
            .store
            .processor_objects_of(account, "payment_method")
            .await?;
        Ok(if methods.iter().any(|m| m.state == "attached") {
            faregate_core::PaymentMethod::Attached
        } else {
            faregate_core::PaymentMethod::Missing
        })
    }

    /// Turns a transition's effects into documents, ledger transactions
    /// and notifications.
    async fn effects(
        &self,
        account: &str,
        before: Option<&Subscription>,
        transition: &Transition,
        plan: &Plan,
        bill: &mut BillingChange,
    ) -> Result<(), PlansError> {
        let now_ms = self.now_ms();
        let after = &transition.subscription;
        for effect in &transition.effects {
            match effect {
                Effect::IssueInvoice(invoice) => {
                    if let Some(old) = invoice.supersedes {
                        let old_id = codec::invoice_doc_id(account, old);
                        self.set_document_status(&old_id, "void", bill).await?;
                    }
                    let doc_id = codec::invoice_doc_id(account, invoice.id);
                    let due = invoice.amount_due;
                    bill.documents.push(BillingDocument {
                        seq: 0,
                        id: doc_id.clone(),
                        account_id: account.to_owned(),
                        kind: DocumentKind::Invoice,
                        status: if due.is_zero() { "paid" } else { "open" }.to_owned(),
                        amount: i64::try_from(due.atomic()).unwrap_or(i64::MAX),
                        currency: due.currency(),
                        created_at: now_ms,
                        body: codec::invoice_body(account, invoice).to_string(),
                    });
                    let new_due = codec::newly_due(invoice);
                    if new_due > 0 {
                        bill.transactions.push(
                            Transaction::invoice(
                                account,
                                Money::from_atomic(new_due, due.currency()),
                                format!("invoice:{doc_id}"),
                                doc_id.clone(),
                                now_ms,
                            )
                            .map_err(StoreError::from)?,
                        );
                    }
                    let renewal = before.is_some_and(|b| {
                        b.state != SubscriptionState::Trialing
                            && b.state != SubscriptionState::Expired
                    }) && after.period != before.map_or(after.period, |b| b.period);
                    if renewal {
                        bill.notifications.push(self.notification(
                            "subscription.renewed",
                            account,
                            json!({"plan": plan.id().as_str(), "invoice": doc_id,
                                   "period_end": rfc3339(after.period.end)}),
                        ));
                    }
                }
                Effect::ResetQuota { .. } | Effect::RetryPayment { .. } => {
                    // Counters are per period; the card processor retries
                    // collection itself and tells us by webhook.
                }
                Effect::Notify(notice) => {
                    let (kind, data) = notice_event(notice, after, account);
                    bill.notifications
                        .push(self.notification(kind, account, data));
                }
            }
        }
        // An invoice that was open before or issued now, and is neither
        // open after nor superseded, was paid.
        let superseded: Vec<_> = transition
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::IssueInvoice(i) => i.supersedes,
                _ => None,
            })
            .collect();
        let issued = transition.effects.iter().filter_map(|e| match e {
            Effect::IssueInvoice(i) if !i.amount_due.is_zero() => Some((i.id, i.amount_due)),
            _ => None,
        });
        let candidates: Vec<_> = before
            .and_then(|b| b.open_invoice)
            .map(|o| (o.id, o.amount_due))
            .into_iter()
            .chain(issued)
            .collect();
        for (id, amount) in candidates {
            let still_open = after.open_invoice.is_some_and(|o| o.id == id);
            if still_open || superseded.contains(&id) {
                continue;
            }
            let doc_id = codec::invoice_doc_id(account, id);
            self.set_document_status(&doc_id, "paid", bill).await?;
            bill.transactions.push(
                Transaction::invoice_payment(
                    account,
                    amount,
                    format!("invoice_paid:{doc_id}"),
                    doc_id.clone(),
                    now_ms,
                )
                .map_err(StoreError::from)?,
            );
            bill.notifications.push(self.notification(
                "invoice.paid",
                account,
                json!({"invoice": doc_id, "amount": amount.decimal_string(),
                       "currency": amount.currency().code()}),
            ));
        }
        Ok(())
    }

    async fn set_document_status(
        &self,
        id: &str,
        status: &str,
        bill: &mut BillingChange,
    ) -> Result<(), PlansError> {
        if let Some(doc) = bill.documents.iter_mut().find(|d| d.id == id) {
            doc.status = status.to_owned();
            return Ok(());
        }
        if let Some(mut doc) = self.store.document(id).await? {
            doc.status = status.to_owned();
            bill.documents.push(doc);
        }
        Ok(())
    }
}

/// Whether two subscriptions differ in more than their usage.
fn same_state(a: &Subscription, b: &Subscription) -> bool {
    let mut a = a.clone();
    a.usage = b.usage.clone();
    &a == b
}

fn notice_event(notice: &Notice, sub: &Subscription, account: &str) -> (&'static str, Value) {
    let plan = sub.plan.as_str();
    match notice {
        Notice::TrialEnded => (
            "subscription.trial_ended",
            json!({"plan": plan, "trial_end": sub.trial_end.map(rfc3339)}),
        ),
        Notice::Activated => (
            "subscription.activated",
            json!({"plan": plan, "period_end": rfc3339(sub.period.end)}),
        ),
        Notice::PaymentFailed {
            invoice,
            grace_until,
        } => (
            "invoice.payment_failed",
            json!({"plan": plan, "invoice": codec::invoice_doc_id(account, *invoice),
                   "grace_until": rfc3339(*grace_until)}),
        ),
        Notice::GraceEnded => (
            "subscription.past_due",
            json!({"plan": plan, "grace_until": sub.grace_until.map(rfc3339)}),
        ),
        Notice::Recovered => ("subscription.recovered", json!({"plan": plan})),
        Notice::CancelScheduled { ends_at } => (
            "subscription.expiring",
            json!({"plan": plan, "ends_at": rfc3339(*ends_at)}),
        ),
        Notice::Expired => ("subscription.expired", json!({"plan": plan})),
    }
}
