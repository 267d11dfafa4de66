//! The plans rail: subscribers pass on their plan's included quota, then
//! pay overage from prepaid credits (or stop), and are refused with the
//! exact code of the 402 contract when their subscription does not cover
//! the request.
//!
//! The rules are `faregate_core::plans` (pure). This module keeps every
//! subscription in memory beside the credits book, admits requests without
//! a database round trip, counts quota units under the subscription's lock
//! (no concurrent request passes a quota), and writes:
//! - quota counters and the notifications they trigger, batched every flush
//!   interval like the credits writer;
//! - every state change (a webhook, a billing call, a period's end) with
//!   its invoices, ledger transactions and notifications in one database
//!   transaction, before answering. A change read at one version and
//!   written at another (another node moved first) is read again and
//!   redone.

mod codec;
mod stripe;
mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use faregate_core::{
    Action, Admission, Challenge, Clock, Decision, Effect, Hold, Money, Notice, Plan, PlanId,
    Problem, ProblemCode, QuotaThreshold, RailKind, Refusal, Remedy, Subscription,
    SubscriptionState, Transition, TransitionError, UnixNanos, WarningReason, admit, rfc3339,
    secs_until,
};
use faregate_store::{
    BillingChange, BillingDocument, BillingOutcome, DocumentKind, QuotaUsage, Store, StoreError,
    SubscriptionRow, SubscriptionWrite, Transaction, new_id, notify::NewNotification,
};
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};

use crate::credits::Credits;
use crate::{BoxFuture, Credential, Outcome, Rail, RailRequest, Settlement};
use codec::Extras;
pub use stripe::{MAX_WEBHOOK_BODY, WebhookReply};
pub use view::document_json;

const NANOS_PER_MS: u64 = 1_000_000;

/// How the plans rail runs.
#[derive(Debug, Clone)]
pub struct PlansConfig {
    /// The plans on sale, in catalog order.
    pub catalog: Vec<Plan>,
    /// How often quota counters are written.
    pub flush_interval: Duration,
    /// How often deadlines (period ends, trials, grace periods) are checked
    /// and the store is read for other nodes' changes.
    pub tick_interval: Duration,
    /// How long before a trial ends its "trial ending" notice goes out.
    pub trial_ending_notice: Duration,
    /// Spendable balances under which a `balance.low` notice goes out.
    pub low_balance: Vec<Money>,
    /// Where a customer adds or replaces a payment method (the card
    /// processor's portal); the `update_payment_method` action.
    pub payment_method_url: String,
    /// The card processor's webhook signing secrets (several during a
    /// rotation).
    pub webhook_secrets: Vec<String>,
    /// How old a webhook signature may be.
    pub webhook_tolerance: Duration,
}

impl Default for PlansConfig {
    fn default() -> Self {
        Self {
            catalog: Vec::new(),
            flush_interval: Duration::from_millis(10),
            tick_interval: Duration::from_secs(1),
            trial_ending_notice: Duration::from_secs(3 * 86_400),
            low_balance: Vec::new(),
            payment_method_url: "/billing/subscription".to_owned(),
            webhook_secrets: Vec::new(),
            webhook_tolerance: crate::signature::DEFAULT_TOLERANCE,
        }
    }
}

/// What went wrong in a billing operation.
#[derive(Debug, thiserror::Error)]
pub enum PlansError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored subscription could not be read.
    #[error("subscription of {account}: {reason}")]
    Corrupt {
        /// The account.
        account: String,
        /// Why.
        reason: String,
    },
    /// No such plan in the catalog.
    #[error("no plan {0}")]
    UnknownPlan(String),
    /// No such account.
    #[error("no account {0}")]
    NoAccount(String),
    /// The account has no subscription.
    #[error("account {0} has no subscription")]
    NoSubscription(String),
    /// The plan's price is in another currency than the account's.
    #[error("plan {plan} is priced in {plan_currency}; the account holds {account_currency}")]
    Currency {
        /// The plan.
        plan: String,
        /// The plan's currency.
        plan_currency: &'static str,
        /// The account's.
        account_currency: &'static str,
    },
    /// The lifecycle refuses the change.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Other nodes kept changing the subscription.
    #[error("the subscription kept changing; try again")]
    Contended,
}

impl PlansError {
    /// The problem a caller sees for this error.
    pub fn to_problem(&self) -> Problem {
        let code = match self {
            Self::UnknownPlan(_) => ProblemCode::BadRequest,
            Self::NoAccount(_) => ProblemCode::Forbidden,
            Self::NoSubscription(_) | Self::Contended => ProblemCode::Conflict,
            Self::Currency { .. } => ProblemCode::CurrencyMismatch,
            Self::Transition(e) => e.problem_code().unwrap_or(ProblemCode::Conflict),
            Self::Store(_) | Self::Corrupt { .. } => {
                return Problem::new(ProblemCode::InternalError, "billing is unavailable");
            }
        };
        Problem::new(code, self.to_string())
    }
}

/// One subscriber: the subscription as this node knows it, with the usage
/// it counted, behind a lock held for microseconds; and a gate that orders
/// the slow changes (a database write) one at a time.
#[derive(Debug)]
struct Cell {
    account: String,
    entry: Mutex<Entry>,
    gate: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
struct Entry {
    sub: Subscription,
    version: i64,
    extras: Extras,
}

/// Quota held for a request in flight.
#[derive(Debug)]
struct Held {
    cell: Arc<Cell>,
    period_start: UnixNanos,
    group: Option<String>,
    units: u64,
    overage_units: u64,
    credits: Option<Hold>,
}

/// Counted units not yet written, by (account, period start, group).
type UsageKey = (String, UnixNanos, String);

#[derive(Debug, Default)]
struct Pending {
    usage: BTreeMap<UsageKey, (u64, u64, i32)>,
    notifications: Vec<NewNotification>,
}

/// The plans rail.
#[derive(Debug)]
pub struct Plans {
    store: Arc<dyn Store>,
    credits: Arc<Credits>,
    clock: Arc<dyn Clock>,
    catalog: ArcSwap<Vec<Plan>>,
    config: ArcSwap<PlansConfig>,
    book: RwLock<HashMap<String, Arc<Cell>>>,
    holds: Mutex<HashMap<u64, Held>>,
    next_hold: AtomicU64,
    pending: Mutex<Pending>,
    /// Accounts already told their balance is under a threshold (the
    /// lowest one crossed), so each crossing is told once.
    low_balance: Mutex<HashMap<String, u64>>,
    stop: tokio::sync::Notify,
    /// The background task, awaited by [`Plans::close`].
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Plans {
    /// Loads every subscription and starts the writer and the ticker.
    pub async fn start(
        store: Arc<dyn Store>,
        credits: Arc<Credits>,
        clock: Arc<dyn Clock>,
        config: PlansConfig,
    ) -> Result<Arc<Self>, PlansError> {
        let plans = Arc::new(Self {
            store,
            credits,
            clock,
            catalog: ArcSwap::from_pointee(config.catalog.clone()),
            config: ArcSwap::from_pointee(config),
            book: RwLock::default(),
            holds: Mutex::default(),
            next_hold: AtomicU64::new(1),
            pending: Mutex::default(),
            low_balance: Mutex::default(),
            stop: tokio::sync::Notify::new(),
            task: Mutex::new(None),
        });
        plans.reload().await?;
        let task = tokio::spawn(plans.clone().run());
        *plans.task.lock() = Some(task);
        Ok(plans)
    }

    /// Replaces the catalog and settings (on config reload).
    pub fn configure(&self, config: PlansConfig) {
        self.catalog.store(Arc::new(config.catalog.clone()));
        self.config.store(Arc::new(config));
    }

    /// The plans on sale.
    pub fn catalog(&self) -> Arc<Vec<Plan>> {
        self.catalog.load_full()
    }

    /// The store behind the rail.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Stops the background task (after the write it may be doing) and
    /// writes what is still counted.
    pub async fn close(&self) {
        // A stored permit: the task stops even if it is not waiting now.
        self.stop.notify_one();
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.flush().await;
    }

    fn now(&self) -> UnixNanos {
        self.clock.now()
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.now() / NANOS_PER_MS).unwrap_or(i64::MAX)
    }

    fn plan(&self, id: &PlanId) -> Option<Plan> {
        self.catalog.load().iter().find(|p| p.id() == id).cloned()
    }

    fn cell(&self, account: &str) -> Option<Arc<Cell>> {
        self.book.read().get(account).cloned()
    }

    async fn run(self: Arc<Self>) {
        let mut flush = tokio::time::interval(self.config.load().flush_interval);
        let mut tick = tokio::time::interval(self.config.load().tick_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.notified() => return,
                _ = flush.tick() => self.flush().await,
                _ = tick.tick() => {
                    if let Err(e) = self.reload().await {
                        tracing::warn!(error = %e, "plans: reading subscriptions failed");
                    }
                    self.tick_all().await;
                }
            }
        }
    }

    /// Writes counted quota usage and the notifications it caused.
    pub async fn flush(&self) {
        let batch = std::mem::take(&mut *self.pending.lock());
        if batch.usage.is_empty() && batch.notifications.is_empty() {
            return;
        }
        let usage: Vec<QuotaUsage> = batch
            .usage
            .iter()
            .map(
                |((account, start, group), (inc, over, notified))| QuotaUsage {
                    account_id: account.clone(),
                    period_start: i64::try_from(*start).unwrap_or(i64::MAX),
                    group: group.clone(),
                    included: i64::try_from(*inc).unwrap_or(i64::MAX),
                    overage: i64::try_from(*over).unwrap_or(i64::MAX),
                    notified: *notified,
                },
            )
            .collect();
        if let Err(e) = self
            .store
            .add_quota_usage(&usage, &batch.notifications)
            .await
        {
            tracing::warn!(error = %e, "plans: writing quota usage failed; kept to retry");
            let mut pending = self.pending.lock();
            for (key, (inc, over, notified)) in batch.usage {
                let slot = pending.usage.entry(key).or_default();
                slot.0 += inc;
                slot.1 += over;
                slot.2 = slot.2.max(notified);
            }
            let mut notes = batch.notifications;
            notes.append(&mut pending.notifications);
            pending.notifications = notes;
        }
    }

    /// Reads every subscription whose version moved (another node or a
    /// first load), with its stored usage plus what this node has not
    /// written yet.
    async fn reload(&self) -> Result<(), PlansError> {
        for row in self.store.subscriptions().await? {
            let current = self.cell(&row.account_id);
            if current
                .as_ref()
                .is_some_and(|c| c.entry.lock().version >= row.version)
            {
                continue;
            }
            let entry = self.load_entry(&row).await?;
            self.install(&row.account_id, entry);
        }
        Ok(())
    }

    async fn load_entry(&self, row: &SubscriptionRow) -> Result<Entry, PlansError> {
        let (mut sub, extras) = codec::decode(&row.body).map_err(|reason| PlansError::Corrupt {
            account: row.account_id.clone(),
            reason,
        })?;
        let start = sub.period.start;
        let stored = self
            .store
            .quota_usage(&row.account_id, i64::try_from(start).unwrap_or(i64::MAX))
            .await?;
        let pending = self.pending.lock();
        for u in stored {
            let used = sub.usage.entry(u.group.clone()).or_default();
            used.included = u64::try_from(u.included).unwrap_or(0);
            used.overage = u64::try_from(u.overage).unwrap_or(0);
            used.notified = match u.notified {
                100.. => Some(QuotaThreshold::Percent100),
                80.. => Some(QuotaThreshold::Percent80),
                _ => None,
            };
        }
        for ((account, period_start, group), (inc, over, _)) in &pending.usage {
            if account == &row.account_id && *period_start == start {
                let used = sub.usage.entry(group.clone()).or_default();
                used.included += inc;
                used.overage += over;
            }
        }
        Ok(Entry {
            sub,
            version: row.version,
            extras,
        })
    }

    fn install(&self, account: &str, entry: Entry) {
        let mut book = self.book.write();
        match book.get(account) {
            Some(cell) => *cell.entry.lock() = entry,
            None => {
                book.insert(
                    account.to_owned(),
                    Arc::new(Cell {
                        account: account.to_owned(),
                        entry: Mutex::new(entry),
                        gate: tokio::sync::Mutex::new(()),
                    }),
                );
            }
        }
    }

    /// Brings every subscription up to now: periods roll over (invoices,
    /// quota resets), trials and grace periods end, notices go out.
    pub async fn tick_all(&self) {
        let cells: Vec<Arc<Cell>> = self.book.read().values().cloned().collect();
        let now = self.now();
        for cell in cells {
            let (due, trial_notice) = {
                let e = cell.entry.lock();
                (deadline(&e.sub) <= now, self.trial_notice_due(&e, now))
            };
            if (due || trial_notice)
                && let Err(e) = self.change(&cell.account, None, Change::Tick).await
            {
                tracing::warn!(account = %cell.account, error = %e, "plans: tick failed");
            }
        }
        self.check_balances().await;
    }

    fn trial_notice_due(&self, e: &Entry, now: UnixNanos) -> bool {
        let notice = codec_nanos(self.config.load().trial_ending_notice);
        e.sub.state == SubscriptionState::Trialing
            && e.sub
                .trial_end
                .is_some_and(|end| end.saturating_sub(now) <= notice && now < end)
            && e.extras.trial_notice_for != e.sub.trial_end
    }

    /// Tells operators once when an account's spendable balance falls
    /// under a configured threshold, and when it is used up.
    async fn check_balances(&self) {
        let thresholds = self.config.load().low_balance.clone();
        let accounts: Vec<String> = self.credits.accounts();
        let mut notes = Vec::new();
        {
            let mut told = self.low_balance.lock();
            for account in accounts {
                let Some(balance) = self.credits.spendable(&account) else {
                    continue;
                };
                // The lowest threshold the balance is under (0 = depleted).
                let under = thresholds
                    .iter()
                    .filter(|t| t.currency() == balance.currency())
                    .map(|t| t.atomic())
                    .filter(|t| balance.atomic() < *t)
                    .min();
                let level = if balance.is_zero() { Some(0) } else { under };
                let Some(level) = level else {
                    told.remove(&account);
                    continue;
                };
                if told.get(&account).is_some_and(|l| *l <= level) {
                    continue;
                }
                told.insert(account.clone(), level);
                let kind = if level == 0 {
                    "balance.depleted"
                } else {
                    "balance.low"
                };
                let threshold = Money::from_atomic(level, balance.currency());
                notes.push(self.notification(
                    kind,
                    &account,
                    json!({
                        "balance": balance.decimal_string(),
                        "currency": balance.currency().code(),
                        "threshold": (level > 0).then(|| threshold.decimal_string()),
                    }),
                ));
            }
        }
        if !notes.is_empty() {
            self.pending.lock().notifications.extend(notes);
        }
    }

    /// A notification for the outbox.
    fn notification(&self, kind: &str, account: &str, data: Value) -> NewNotification {
        let id = new_id("evt");
        let created_at = self.now_ms();
        let payload = json!({
            "id": id,
            "type": kind,
            "created": rfc3339(self.now()),
            "account": account,
            "data": data,
        });
        NewNotification {
            id,
            kind: kind.to_owned(),
            account_id: Some(account.to_owned()),
            payload: payload.to_string(),
            created_at,
        }
    }
}

/// The earliest instant at which `sub` changes by itself.
fn deadline(sub: &Subscription) -> UnixNanos {
    let mut at = sub.period.end;
    if sub.state == SubscriptionState::Trialing {
        at = at.min(sub.trial_end.unwrap_or(at));
    }
    if let Some(g) = sub.grace_until {
        at = at.min(g);
    }
    at
}

fn codec_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

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
            let _ = WarningReason::PaymentFailed;
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
