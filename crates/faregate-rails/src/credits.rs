//! The credits rail: account holders spend a prepaid balance with their API
//! keys.
//!
//! `authorize` reserves the price in memory under the account's lock (no
//! database round trip, no concurrent overspend); `settle` commits the
//! charge when the route's charge policy says so and releases it otherwise;
//! committed debits reach the ledger through one batched writer (see
//! [`writer`]). Money coming in goes the other way: it is committed to the
//! store first and only then shows up in the book.

mod book;
mod keys;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use faregate_core::{
    Action, ActionKind, Budget, Challenge, Decision, Hold, Money, Offer, Problem, ProblemCode,
    RailKind,
};
use faregate_store::{
    Account, KeyRecord, Posted, Store, StoreError, Transaction, TransactionRecord,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::{ApiKey, BoxFuture, Credential, KeyDirectory, Outcome, Rail, RailRequest, Settlement};
use book::Book;
pub use keys::{KeyRequest, issue_key, set_account_budget};
pub use writer::WriterStats;
use writer::{Command, Debit, Writer};

/// How the credits rail runs.
#[derive(Debug, Clone)]
pub struct CreditsConfig {
    /// How often queued debits are written (the most the gateway can lose
    /// on a crash is what it served in about this long).
    pub flush_interval: Duration,
    /// How often the store is asked whether another process changed keys,
    /// accounts or balances.
    pub poll_interval: Duration,
    /// Where customers top up, offered as the `top_up` action of an
    /// `insufficient_credits` answer.
    pub top_up: Option<TopUpLink>,
}

impl Default for CreditsConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(10),
            poll_interval: Duration::from_millis(250),
            top_up: None,
        }
    }
}

/// Where customers top up: `{account}` in the URL is replaced by the
/// account id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopUpLink {
    /// The URL.
    pub url: String,
    /// `GET` (a page) or `POST` (an API).
    pub method: &'static str,
}

/// The credits rail, and the in-memory key directory that goes with it.
#[derive(Debug)]
pub struct Credits {
    store: Arc<dyn Store>,
    book: Arc<Book>,
    queue: Arc<Mutex<Vec<Debit>>>,
    commands: mpsc::Sender<Command>,
    stats: Arc<WriterStats>,
    top_up: ArcSwapOption<TopUpLink>,
    flush_interval: Duration,
}

/// What went wrong in an account operation.
#[derive(Debug, thiserror::Error)]
pub enum CreditsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The account does not exist.
    #[error("no account {0}")]
    NoAccount(String),
    /// The amount is in another currency than the account's.
    #[error("account {account} holds {held}, not {given}")]
    Currency {
        /// The account.
        account: String,
        /// Its currency.
        held: &'static str,
        /// The amount's.
        given: &'static str,
    },
    /// The writer task is gone (the gateway is shutting down).
    #[error("the ledger writer has stopped")]
    Stopped,
}

impl Credits {
    /// Loads every account and key from `store` and starts the writer.
    pub async fn start(
        store: Arc<dyn Store>,
        config: CreditsConfig,
    ) -> Result<Arc<Self>, StoreError> {
        let book = Arc::new(Book::default());
        let queue = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(WriterStats::default());
        let mut writer = Writer::new(
            store.clone(),
            book.clone(),
            queue.clone(),
            stats.clone(),
            config.flush_interval,
            config.poll_interval,
        );
        writer.reload().await?;
        let (commands, rx) = mpsc::channel(64);
        tokio::spawn(writer.run(rx));
        Ok(Arc::new(Self {
            store,
            book,
            queue,
            commands,
            stats,
            top_up: ArcSwapOption::from(config.top_up.map(Arc::new)),
            flush_interval: config.flush_interval,
        }))
    }

    /// The store behind the rail.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The configured flush interval.
    pub fn flush_interval(&self) -> Duration {
        self.flush_interval
    }

    /// Sets where customers top up (on config reload).
    pub fn set_top_up(&self, link: Option<TopUpLink>) {
        self.top_up.store(link.map(Arc::new));
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// The ledger writer's counters in Prometheus text format.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.stats;
        let mut out = String::new();
        for (name, kind, help, value) in [
            (
                "faregate_ledger_batches_total",
                "counter",
                "Database transactions that wrote debits.",
                s.batches.load(Relaxed),
            ),
            (
                "faregate_ledger_debits_total",
                "counter",
                "Requests' charges written (usage records).",
                s.debits.load(Relaxed),
            ),
            (
                "faregate_ledger_rows_total",
                "counter",
                "Rows written by the batched writer: debit transactions, entries, balance upserts, packed usage records.",
                s.rows.load(Relaxed),
            ),
            (
                "faregate_ledger_batch_failures_total",
                "counter",
                "Batches that failed and were kept to retry.",
                s.failures.load(Relaxed),
            ),
            (
                "faregate_ledger_backlog",
                "gauge",
                "Debits waiting to be written.",
                s.backlog.load(Relaxed),
            ),
            (
                "faregate_ledger_max_commit_microseconds",
                "gauge",
                "The longest batch commit so far.",
                s.max_commit_micros.load(Relaxed),
            ),
            (
                "faregate_api_keys",
                "gauge",
                "Active account keys held in memory.",
                self.book.key_count() as u64,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }

    /// How many keys the in-memory directory holds.
    pub fn key_count(&self) -> usize {
        self.book.key_count()
    }

    /// What `account_id` can spend now, in its currency: the stored balance
    /// less debits not yet written and holds in flight.
    pub fn spendable(&self, account_id: &str) -> Option<Money> {
        let cell = self.book.account(account_id)?;
        let available = cell.funds().available().max(0);
        Some(Money::from_atomic(
            u64::try_from(available).unwrap_or(u64::MAX),
            cell.currency,
        ))
    }

    /// Every account id the book holds.
    pub fn accounts(&self) -> Vec<String> {
        self.book
            .accounts()
            .iter()
            .map(|cell| cell.id.to_string())
            .collect()
    }

    /// The currency `account_id` holds, if the account is known.
    pub fn currency_of(&self, account_id: &str) -> Option<faregate_core::Currency> {
        self.book.account(account_id).map(|cell| cell.currency)
    }

    /// Writes every queued debit now and waits for it.
    pub async fn flush(&self) -> Result<(), CreditsError> {
        let (done, wait) = oneshot::channel();
        self.send(Command::Flush(done)).await?;
        wait.await.map_err(|_| CreditsError::Stopped)
    }

    /// Reloads accounts, balances and keys from the store now.
    pub async fn reload(&self) -> Result<(), CreditsError> {
        let (done, wait) = oneshot::channel();
        self.send(Command::Reload(done)).await?;
        wait.await
            .map_err(|_| CreditsError::Stopped)?
            .map_err(|e| CreditsError::Store(StoreError::Corrupt(e)))
    }

    /// Writes every queued debit and stops the writer; requests settled
    /// after this are not recorded, so call it once the server has drained.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.send(Command::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    async fn send(&self, command: Command) -> Result<(), CreditsError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| CreditsError::Stopped)
    }

    /// Creates an account and adds it to the book.
    pub async fn create_account(&self, account: &Account) -> Result<(), CreditsError> {
        self.store.create_account(account).await?;
        self.book
            .add_account(&account.id, account.currency)
            .set_budget(account.budget);
        Ok(())
    }

    /// Sets (`Some`) or clears (`None`) an account's LLM budget, in its
    /// currency; this node sees it at once, others at their next poll.
    pub async fn set_account_budget(
        &self,
        account_id: &str,
        budget: Option<Budget>,
    ) -> Result<Account, CreditsError> {
        let account = set_account_budget(&*self.store, account_id, budget).await?;
        self.book
            .add_account(&account.id, account.currency)
            .set_budget(account.budget);
        Ok(account)
    }

    /// Issues a key for an account (the key is returned once, here) and
    /// makes it usable at once.
    pub async fn issue_key(
        &self,
        request: KeyRequest,
    ) -> Result<(String, KeyRecord), CreditsError> {
        let issued = issue_key(&*self.store, request).await?;
        self.book.put_key(&issued.1);
        Ok(issued)
    }

    /// Revokes a key; every request path refuses it from now on.
    pub async fn revoke_key(
        &self,
        key_id: &str,
        at_ms: i64,
    ) -> Result<Option<KeyRecord>, CreditsError> {
        let record = self.store.revoke_key(key_id, at_ms).await?;
        self.book.remove_key(key_id);
        Ok(record)
    }

    /// Commits money paid into an account, then makes it spendable. The
    /// store has it on disk before this returns.
    pub async fn top_up(&self, request: TopUp) -> Result<Posted, CreditsError> {
        let posted = top_up(&*self.store, request).await?;
        if let Posted::Created(_) = posted {
            self.reload().await?;
        }
        Ok(posted)
    }

    fn challenge(&self, account: &str, price: Money, available: i128) -> Challenge {
        let mut problem = Problem::new(
            ProblemCode::InsufficientCredits,
            format!(
                "this request costs {} {}; the account can spend {} {}",
                price.decimal_string(),
                price.currency().code(),
                balance_money(available, price).decimal_string(),
                price.currency().code(),
            ),
        );
        problem.price = Some(price);
        problem.balance = Some(balance_money(available, price));
        problem.actions.extend(self.top_up_action(account));
        Challenge::new(problem)
    }

    /// The `top_up` action for `account`, when the operator configured one.
    pub(crate) fn top_up_action(&self, account: &str) -> Option<Action> {
        self.top_up.load().as_deref().map(|link| Action {
            kind: ActionKind::TopUp,
            url: link.url.replace("{account}", account),
            method: link.method,
        })
    }
}

fn balance_money(available: i128, price: Money) -> Money {
    Money::from_atomic(
        u64::try_from(available.max(0)).unwrap_or(u64::MAX),
        price.currency(),
    )
}

impl KeyDirectory for Credits {
    fn find_hashed(&self, hash: &[u8; 32]) -> Option<Arc<ApiKey>> {
        self.book.find_key_hashed(hash)
    }

    fn account_budget(&self, account: &str) -> Option<Budget> {
        self.book.account(account)?.budget()
    }
}

impl Rail for Credits {
    fn kind(&self) -> RailKind {
        RailKind::Credits
    }

    fn accepts(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::ApiKey(_))
    }

    fn authorize<'a>(&'a self, req: &'a RailRequest<'a>) -> BoxFuture<'a, Decision> {
        Box::pin(std::future::ready(self.decide(req)))
    }

    fn offer(&self, _req: &RailRequest<'_>) -> Option<Offer> {
        // Credits are not bought per request: beside a per-request rail's
        // offer, this says an account's key would do too (alone, the
        // gateway answers 401, not 402).
        Some(Offer {
            rail: RailKind::Credits,
            headers: vec![("www-authenticate", "Bearer realm=\"faregate\"".to_owned())],
            accepts: vec![serde_json::json!({
                "rail": "credits",
                "scheme": "bearer",
                "description": "an API key of an account holding prepaid credits: Authorization: Bearer <key>",
            })],
            members: serde_json::Map::new(),
        })
    }

    fn settle<'a>(&'a self, hold: Hold, outcome: &'a Outcome) -> BoxFuture<'a, Settlement> {
        Box::pin(std::future::ready(self.settle_now(&hold, outcome)))
    }
}

impl Credits {
    fn decide(&self, req: &RailRequest<'_>) -> Decision {
        let Some(price) = req.price.amount() else {
            return Decision::Allow(Hold::NONE);
        };
        let Some(account) = req.account else {
            return Decision::Deny(Problem::new(
                ProblemCode::Forbidden,
                "this key belongs to no account, so it cannot pay for this route",
            ));
        };
        self.reserve(account, req.route, price)
    }

    /// Sets `price` aside from `account`'s spendable balance for a request
    /// on `route`: a hold, a 402 `insufficient_credits`, or a 403.
    pub(crate) fn reserve(&self, account: &str, route: &str, price: Money) -> Decision {
        let Some(cell) = self.book.account(account) else {
            return Decision::Deny(Problem::new(
                ProblemCode::Forbidden,
                "the key's account is not known to this gateway",
            ));
        };
        if cell.currency != price.currency() {
            return Decision::Deny(Problem::new(
                ProblemCode::CurrencyMismatch,
                format!(
                    "route {} is priced in {}; account {} holds {}",
                    route,
                    price.currency().code(),
                    cell.id,
                    cell.currency.code()
                ),
            ));
        }
        match cell.reserve(price.atomic()) {
            Ok(()) => Decision::Allow(Hold {
                rail: Some(RailKind::Credits),
                amount: Some(price),
                reference: cell.index as u64,
                headers: Vec::new(),
            }),
            Err(available) => Decision::PaymentRequired(self.challenge(account, price, available)),
        }
    }

    pub(crate) fn settle_now(&self, hold: &Hold, outcome: &Outcome) -> Settlement {
        let (Some(cell), Some(held)) = (self.book.by_index(hold.reference), hold.amount) else {
            return Settlement::default();
        };
        let held = held.atomic();
        let charge = outcome.measured.map_or(held, |m| m.atomic().min(held));
        if !outcome.chargeable() || charge == 0 {
            cell.release(held);
            return Settlement::default();
        }
        cell.commit(held, charge);
        self.queue.lock().push(Debit {
            cell: cell.clone(),
            amount: charge,
            request_id: outcome.request_id.clone(),
        });
        Settlement {
            charged: Some(Money::from_atomic(charge, cell.currency)),
            headers: Vec::new(),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Money paid into an account.
#[derive(Debug, Clone)]
pub struct TopUp {
    /// The account.
    pub account_id: String,
    /// How much, in the account's currency.
    pub amount: Money,
    /// Unique per top-up; the same key is never applied twice.
    pub idempotency_key: String,
    /// What it refers to (a top-up id, a webhook event id).
    pub reference: String,
    /// Why, for people.
    pub reason: Option<String>,
    /// A digest of the request, to tell a replay from a reuse of the key.
    pub fingerprint: Option<String>,
}

/// Commits a top-up on `store` alone (for the CLI).
pub async fn top_up(store: &dyn Store, request: TopUp) -> Result<Posted, CreditsError> {
    let Some(account) = store.account(&request.account_id).await? else {
        return Err(CreditsError::NoAccount(request.account_id));
    };
    if account.currency != request.amount.currency() {
        return Err(CreditsError::Currency {
            account: account.id,
            held: account.currency.code(),
            given: request.amount.currency().code(),
        });
    }
    let tx = Transaction::top_up(
        &account.id,
        request.amount,
        request.idempotency_key,
        request.reference,
        now_ms(),
    )
    .map_err(StoreError::from)?
    .with_memo(request.reason)
    .with_fingerprint(request.fingerprint);
    Ok(store.post(&tx).await?)
}

/// The record of a posted transaction, whatever happened.
pub fn posted_record(posted: &Posted) -> &TransactionRecord {
    match posted {
        Posted::Created(r) | Posted::Replayed(r) | Posted::Conflict(r) => r,
    }
}
