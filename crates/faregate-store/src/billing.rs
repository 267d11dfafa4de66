//! Subscription state, invoices and receipts, and what the card processor
//! told us, behind the [`Billing`] half of the store.
//!
//! The store keeps a subscription as an opaque JSON document with a version
//! (the rules live in `faregate_core::plans`); quota counters live beside it,
//! one row per account, period and quota group, so the batched writer adds
//! to them without touching the subscription. One [`BillingChange`] commits
//! everything a webhook, a billing call or a period's end does in one
//! database transaction: the processor's event id (so a redelivery is a
//! no-op), the subscription, invoices, ledger transactions and notifications.

use faregate_core::Currency;

use crate::Result;
use crate::ledger::Transaction;
use crate::notify::NewNotification;

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// The subscriber.
    pub account_id: String,
    /// The plan's id.
    pub plan: String,
    /// The state's name (`trialing`, `active`, …), for queries.
    pub state: String,
    /// The whole subscription, usage excepted, as JSON.
    pub body: String,
    /// Grows by one with every write; a write names the version it read.
    pub version: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// Units used of one quota group in one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    /// The subscriber.
    pub account_id: String,
    /// The period's start, unix nanoseconds.
    pub period_start: i64,
    /// The quota group.
    pub group: String,
    /// Units counted against the included quota.
    pub included: i64,
    /// Units past it.
    pub overage: i64,
    /// The highest threshold (percent) already notified this period; 0 for
    /// none.
    pub notified: i32,
}

/// What kind of billing document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// What the customer owes for a period.
    Invoice,
    /// Money the customer paid in.
    Receipt,
}

impl DocumentKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invoice => "invoice",
            Self::Receipt => "receipt",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Invoice, Self::Receipt]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// An invoice or a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingDocument {
    /// Listing order (0 for one not yet written).
    pub seq: i64,
    /// `inv_…` or `rcpt_…`.
    pub id: String,
    /// Whose.
    pub account_id: String,
    /// Invoice or receipt.
    pub kind: DocumentKind,
    /// `open`, `paid`, `void` (invoices) or `paid` (receipts).
    pub status: String,
    /// Amount due (invoices) or paid in (receipts), atomic units.
    pub amount: i64,
    /// Its currency.
    pub currency: Currency,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The whole document as JSON (lines, period, references).
    pub body: String,
}

/// A card-processor event, recorded once by its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorEvent {
    /// The processor's event id (`evt_…`).
    pub id: String,
    /// Its type (`invoice.paid`, …).
    pub kind: String,
    /// When the processor created it, unix seconds.
    pub created: i64,
    /// The account it concerned, once known.
    pub account_id: Option<String>,
    /// What faregate did with it (`applied`, `ignored: …`).
    pub outcome: String,
    /// Unix milliseconds.
    pub received_at: i64,
}

/// The last known state of one processor object (an invoice, a payment
/// method, a subscription), so an older event arriving late changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorObject {
    /// The processor's id (`in_…`, `pm_…`, `sub_…`).
    pub id: String,
    /// `invoice`, `payment_method`, `subscription`.
    pub kind: String,
    /// The account it belongs to.
    pub account_id: Option<String>,
    /// Its state as the last applied event left it (`paid`, `attached`, …).
    pub state: String,
    /// That event's creation time, unix seconds.
    pub created: i64,
}

/// A subscription to write, with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionWrite {
    /// The new row (its `version` is ignored: the store sets it).
    pub row: SubscriptionRow,
    /// The version read, or `None` for a subscription that must be new.
    pub expected_version: Option<i64>,
}

/// Everything one billing action commits, at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingChange {
    /// The processor event being applied; a second delivery of the same id
    /// commits nothing.
    pub event: Option<ProcessorEvent>,
    /// Processor objects whose state moved.
    pub objects: Vec<ProcessorObject>,
    /// Links a processor customer id to an account: `(customer, account)`.
    pub link_customer: Option<(String, String)>,
    /// The subscription's new state.
    pub subscription: Option<SubscriptionWrite>,
    /// Invoices and receipts, new or with a new status.
    pub documents: Vec<BillingDocument>,
    /// Ledger transactions; one whose idempotency key is taken is skipped.
    pub transactions: Vec<Transaction>,
    /// Notifications for the outbox.
    pub notifications: Vec<NewNotification>,
}

/// What committing a [`BillingChange`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingOutcome {
    /// Everything is committed.
    Committed,
    /// The processor event was applied before; nothing was written.
    DuplicateEvent,
    /// The subscription changed since it was read; nothing was written.
    VersionConflict,
}

/// Subscriptions, billing documents and processor events.
#[async_trait::async_trait]
pub trait Billing: Send + Sync {
    /// Commits `change` in one database transaction, or nothing of it.
    async fn commit_billing(&self, change: &BillingChange) -> Result<BillingOutcome>;
    /// One account's subscription.
    async fn subscription(&self, account_id: &str) -> Result<Option<SubscriptionRow>>;
    /// Every subscription, to load the in-memory book.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>>;
    /// Adds units to quota counters (the `notified` marks only grow), with
    /// the notifications they caused, in one database transaction.
    async fn add_quota_usage(
        &self,
        usage: &[QuotaUsage],
        notifications: &[NewNotification],
    ) -> Result<()>;
    /// One account's counters for the period starting at `period_start`.
    async fn quota_usage(&self, account_id: &str, period_start: i64) -> Result<Vec<QuotaUsage>>;
    /// Documents, newest first, older than `before_seq`.
    async fn documents(
        &self,
        account_id: Option<&str>,
        kind: Option<DocumentKind>,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<BillingDocument>>;
    /// One document by id.
    async fn document(&self, id: &str) -> Result<Option<BillingDocument>>;
    /// Links a processor customer id to an account (idempotent; a customer
    /// linked to another account is a [`Duplicate`](crate::StoreError)).
    async fn link_customer(&self, customer_id: &str, account_id: &str) -> Result<()>;
    /// The account a processor customer id belongs to.
    async fn account_for_customer(&self, customer_id: &str) -> Result<Option<String>>;
    /// The processor customer id of an account.
    async fn customer_of(&self, account_id: &str) -> Result<Option<String>>;
    /// A processor object's last applied state.
    async fn processor_object(&self, id: &str) -> Result<Option<ProcessorObject>>;
    /// An account's processor objects of one kind.
    async fn processor_objects_of(
        &self,
        account_id: &str,
        kind: &str,
    ) -> Result<Vec<ProcessorObject>>;
    /// A processor event already received.
    async fn processor_event(&self, id: &str) -> Result<Option<ProcessorEvent>>;
    /// Records a processor event that changed nothing (so its redelivery
    /// is recognised); `false` when it was already recorded.
    async fn record_processor_event(&self, event: &ProcessorEvent) -> Result<bool>;
}
