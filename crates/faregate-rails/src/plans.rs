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

mod admit;
mod change;
mod codec;
mod stripe;
mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use arc_swap::ArcSwap;
use faregate_core::{
    Clock, Hold, Money, Plan, PlanId, Problem, ProblemCode, QuotaThreshold, Subscription,
    SubscriptionState, TransitionError, UnixNanos,
};
use faregate_store::{QuotaUsage, Store, StoreError, SubscriptionRow, notify::NewNotification};
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};

use crate::credits::Credits;
pub(crate) use change::Change;
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
    /// Held across a flush's take and write, so a flush that finds the
    /// queue empty while another one writes waits for that write to land.
    flushing: tokio::sync::Mutex<()>,
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
            flushing: tokio::sync::Mutex::new(()),
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
        let _flushing = self.flushing.lock().await;
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

    /// A notification for the outbox, in the one envelope every event
    /// has (`NewNotification::new`).
    fn notification(&self, kind: &str, account: &str, data: Value) -> NewNotification {
        NewNotification::new(kind, Some(account), data, self.now_ms())
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
