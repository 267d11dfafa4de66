//! Where faregate keeps what must survive a restart: accounts, API keys and
//! the double-entry ledger, behind one [`Store`] trait with two
//! implementations: SQLite (the embedded default, one file in WAL mode) and
//! PostgreSQL (the shared store for several nodes).
//!
//! The ledger is append-only: a [`Transaction`]'s postings sum to zero per
//! currency, rows are never updated (triggers refuse it), and every
//! transaction carries a unique idempotency key, so posting it twice is a
//! no-op. Balances are derived from the entries and cached in a table that
//! moves in the same database transaction; [`Store::verify`] recomputes them.
//!
//! Per-request charges are written in batches: one debit transaction per
//! account per batch, and one [`UsageRecord`] per request naming the request
//! and the debit it is part of, so every charge can still be traced to its
//! request while the double-entry rows grow with batches, not requests.
//!
//! Keys may be scoped to LLM models and carry LLM limits (a spending budget
//! and per-minute token and request limits); accounts may carry a budget.
//! Budgets are kept in atomic units of the account's currency.

mod billing;
mod ledger;
mod migrate;
pub mod notify;
mod payments;
mod sql;
mod usage;

use std::sync::Arc;

use faregate_core::{Budget, Currency, LlmLimits};

pub use billing::{
    Billing, BillingChange, BillingDocument, BillingOutcome, DocumentKind, ProcessorEvent,
    ProcessorObject, QuotaUsage, SubscriptionRow, SubscriptionWrite,
};
pub use ledger::{
    LedgerAccount, LedgerError, Posting, Transaction, TransactionRecord, TxKind, new_id,
};
pub use payments::{Draw, Grant, PaymentRecord, PaymentState, Payments, Reservation};

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The URL names no backend faregate has.
    #[error("unsupported store URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// A transaction that does not balance, or another invariant.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A row the store holds is not one faregate wrote.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A record with this id already exists.
    #[error("{0} already exists")]
    Duplicate(String),
    /// The record a change refers to does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A budget in another currency than its account's.
    #[error("account {account} holds {held}, not {given}")]
    Currency {
        /// The account.
        account: String,
        /// Its currency.
        held: &'static str,
        /// The budget's.
        given: &'static str,
    },
}

/// Results of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An account: who holds keys and a balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `acct_…`
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The one currency its balance is kept in.
    pub currency: Currency,
    /// Unix milliseconds.
    pub created_at: i64,
    /// What all of its keys together may spend on LLM calls per day or
    /// month, in its currency; no limit when `None`.
    pub budget: Option<Budget>,
}

/// An API key as stored: its SHA-256, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// `key_…`
    pub id: String,
    /// The account it spends from.
    pub account_id: String,
    /// SHA-256 of the whole key, lowercase hex.
    pub hash: String,
    /// The key's first characters (`fg_live_AbC4`), to tell keys apart.
    pub prefix: String,
    /// `fg_live_` or `fg_test_`.
    pub live: bool,
    /// Route names it may use; all routes when `None`.
    pub routes: Option<Vec<String>>,
    /// LLM model names it may use; all models when `None`.
    pub models: Option<Vec<String>>,
    /// Its LLM budget (in its account's currency) and per-minute limits.
    pub limits: LlmLimits,
    /// Unix milliseconds after which it no longer works.
    pub expires_at: Option<i64>,
    /// When it was revoked, in unix milliseconds.
    pub revoked_at: Option<i64>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// One request's charge, part of a batched debit transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The debit transaction that carries it.
    pub transaction_id: String,
    /// The request id.
    pub reference: String,
    /// Atomic units charged, in the transaction's currency.
    pub amount: i64,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// What posting a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// It was new and is now committed.
    Created(TransactionRecord),
    /// A transaction with the same idempotency key and fingerprint was
    /// already committed: this is it, and nothing new was written.
    Replayed(TransactionRecord),
    /// The idempotency key was used for a different request.
    Conflict(TransactionRecord),
}

/// Which ledger transactions to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerQuery {
    /// Only transactions touching this ledger account.
    pub account: Option<LedgerAccount>,
    /// Only transactions of this kind.
    pub kind: Option<TxKind>,
    /// Created at or after (unix milliseconds).
    pub since: Option<i64>,
    /// Created before (unix milliseconds).
    pub until: Option<i64>,
    /// Only transactions older than this sequence number (paging cursor).
    pub before_seq: Option<i64>,
    /// At most this many (1 to 1000).
    pub limit: u32,
}

/// A cached balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    /// The ledger account.
    pub account: LedgerAccount,
    /// Its currency.
    pub currency: Currency,
    /// Signed atomic units.
    pub amount: i64,
}

/// What [`Store::verify`] found; empty lists mean the ledger is sound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Transactions checked.
    pub transactions: u64,
    /// Entries checked.
    pub entries: u64,
    /// Ledger accounts whose balance was recomputed.
    pub balances: u64,
    /// `(transaction id, currency, sum)` for postings that do not sum to zero.
    pub unbalanced: Vec<(String, String, i64)>,
    /// Transactions with fewer than two entries.
    pub incomplete: Vec<String>,
    /// `(account, currency, cached, recomputed)` where the cache is wrong.
    pub mismatched: Vec<(String, String, i64, i64)>,
    /// `(account, currency, balance)` for customer accounts below zero:
    /// money spent that was never there.
    pub overdrawn: Vec<(String, String, i64)>,
    /// Usage records checked.
    pub usage: u64,
    /// `(transaction id, usage sum, debited)` where a batched debit does not
    /// equal the sum of the requests it carries.
    pub usage_mismatched: Vec<(String, i64, i64)>,
    /// Transactions whose packed usage cannot be read back, or does not
    /// match the count and total stored beside it.
    pub usage_unreadable: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_sound(&self) -> bool {
        self.unbalanced.is_empty()
            && self.incomplete.is_empty()
            && self.mismatched.is_empty()
            && self.overdrawn.is_empty()
            && self.usage_mismatched.is_empty()
            && self.usage_unreadable.is_empty()
    }
}

/// Everything faregate persists.
#[async_trait::async_trait]
pub trait Store:
    Billing + notify::Notifications + Payments + Send + Sync + std::fmt::Debug + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Creates an account.
    async fn create_account(&self, account: &Account) -> Result<()>;
    /// One account.
    async fn account(&self, id: &str) -> Result<Option<Account>>;
    /// Accounts ordered by id, after the cursor `after`.
    async fn accounts(&self, after: Option<&str>, limit: u32) -> Result<Vec<Account>>;

    /// Stores a new key.
    async fn create_key(&self, key: &KeyRecord) -> Result<()>;
    /// One key by id.
    async fn key(&self, id: &str) -> Result<Option<KeyRecord>>;
    /// An account's keys, revoked ones included.
    async fn keys(&self, account_id: &str) -> Result<Vec<KeyRecord>>;
    /// Every key that is not revoked, for the in-memory lookup.
    async fn active_keys(&self) -> Result<Vec<KeyRecord>>;
    /// Revokes a key at `at`; revoking twice keeps the first time.
    async fn revoke_key(&self, id: &str, at: i64) -> Result<Option<KeyRecord>>;
    /// Sets (`Some`) or clears (`None`) an account's LLM budget, which must
    /// be in the account's currency, and moves the revision so every node
    /// sees it. Returns the account as it now is.
    async fn set_account_budget(&self, account_id: &str, budget: Option<Budget>)
    -> Result<Account>;

    /// Commits one transaction before returning, exactly once per
    /// idempotency key.
    async fn post(&self, tx: &Transaction) -> Result<Posted>;
    /// Commits many transactions, with the usage records that belong to
    /// them, in one database transaction (group commit). Transactions whose
    /// idempotency key is already taken are skipped with their usage.
    /// Returns how many transactions were new.
    async fn post_batch(&self, txs: &[Transaction], usage: &[UsageRecord]) -> Result<usize>;
    /// The usage records charged to a ledger account, newest first, older
    /// than the sequence number `before_seq`; each with its sequence number.
    async fn usage(
        &self,
        account: &LedgerAccount,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, UsageRecord)>>;
    /// One transaction by its idempotency key.
    async fn transaction_by_key(&self, idempotency_key: &str) -> Result<Option<TransactionRecord>>;
    /// Transactions, newest first.
    async fn ledger(&self, query: &LedgerQuery) -> Result<Vec<TransactionRecord>>;

    /// The cached balance of one ledger account (zero when it has none).
    async fn balance(&self, account: &LedgerAccount, currency: Currency) -> Result<i64>;
    /// Every cached balance.
    async fn balances(&self) -> Result<Vec<Balance>>;

    /// A number that grows whenever accounts, keys or money coming in
    /// change, so that every process sharing the store can notice.
    async fn revision(&self) -> Result<i64>;

    /// Recomputes every balance and checks every transaction.
    async fn verify(&self) -> Result<VerifyReport>;
}

/// Opens the store at `url` (`sqlite://path/to/file.db`, `sqlite::memory:`
/// or `postgres://…`), creating the SQLite file if needed and running the
/// embedded migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sql::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(sql::PgStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
