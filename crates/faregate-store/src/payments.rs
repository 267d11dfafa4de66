//! Per-request payments (x402 today) from verification to settlement, and
//! the prepaid bundles one payment can buy, behind the [`Payments`] half of
//! the store.
//!
//! A payment is reserved before the request is forwarded: its key (network,
//! asset, payer, nonce) is unique, so a payload is served at most once even
//! when every node of a cluster sees it at the same moment. The reservation
//! then ends one of three ways: released (nothing was served or charged, the
//! row is deleted so the same signed payload may be used again), settled (a
//! transaction hash and the ledger transaction written in one database
//! transaction), or failed (the payment may or may not have moved on chain;
//! its nonce stays taken and it is never served).

use crate::Result;
use crate::ledger::Transaction;

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentState {
    /// Verified and reserved; the request is in flight.
    Pending,
    /// Settled: the money moved and the ledger says so.
    Settled,
    /// Settlement failed or its outcome is unknown; never served.
    Failed,
}

impl PaymentState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Pending => "pending",
            PaymentState::Settled => "settled",
            PaymentState::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Pending, Self::Settled, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// One payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    /// `pay_…`
    pub id: String,
    /// The rail (`x402`).
    pub rail: String,
    /// CAIP-2 network.
    pub network: String,
    /// The token contract, lowercase hex.
    pub asset: String,
    /// The payer, lowercase hex.
    pub payer: String,
    /// The authorization's nonce, lowercase hex.
    pub nonce: String,
    /// SHA-256 of the payload as sent, to tell a retry of the same payment
    /// from another payment with the same identifier.
    pub payload_hash: String,
    /// The client's `payment-identifier`, when it sent one.
    pub payment_identifier: Option<String>,
    /// The route paid for.
    pub route: String,
    /// The request that carried it.
    pub request_id: String,
    /// Atomic units of the asset, decimal.
    pub amount: String,
    /// Where it is.
    pub state: PaymentState,
    /// The settlement's transaction hash, once known.
    pub transaction: Option<String>,
    /// Why settlement failed.
    pub error: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// What reserving a payment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// It is new and now pending.
    Reserved,
    /// Its nonce or its payment identifier is already taken by this record.
    Taken(Box<PaymentRecord>),
}

/// A prepaid bundle bought with one payment: calls, time, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `grt_…`, carried in the access token.
    pub id: String,
    /// The payment that bought it.
    pub payment_id: String,
    /// The route it opens.
    pub route: String,
    /// Calls left; `None` when only time limits it.
    pub calls_left: Option<i64>,
    /// Unix milliseconds after which it is spent.
    pub expires_at: i64,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// What drawing one call from a grant did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// One call taken; this many are left (`None`: limited by time only).
    Taken(Option<i64>),
    /// Nothing left, or expired.
    Spent,
    /// No such grant.
    Unknown,
}

/// The store's record of per-request payments.
#[async_trait::async_trait]
pub trait Payments: Send + Sync {
    /// Reserves `payment` (state pending) unless its nonce or identifier is
    /// taken.
    async fn reserve_payment(&self, payment: &PaymentRecord) -> Result<Reservation>;
    /// Gives a pending payment back: nothing was served, the row goes.
    async fn release_payment(&self, id: &str) -> Result<()>;
    /// Marks a pending payment settled with its transaction hash, posts
    /// `ledger` (none when the money was not ours: facilitator mode) and
    /// creates `grant` (a bundle it bought), all in one database
    /// transaction.
    async fn settle_payment(
        &self,
        id: &str,
        transaction: &str,
        ledger: Option<&Transaction>,
        grant: Option<&Grant>,
        at: i64,
    ) -> Result<()>;
    /// Marks a pending payment failed; its nonce stays taken.
    async fn fail_payment(
        &self,
        id: &str,
        error: &str,
        transaction: Option<&str>,
        at: i64,
    ) -> Result<()>;
    /// One payment.
    async fn payment(&self, id: &str) -> Result<Option<PaymentRecord>>;
    /// Payments still pending that were reserved before `before` (a node
    /// that died mid-request leaves them), oldest first.
    async fn pending_payments(&self, before: i64, limit: u32) -> Result<Vec<PaymentRecord>>;
    /// One grant.
    async fn grant(&self, id: &str) -> Result<Option<Grant>>;
    /// Takes one call from a grant, atomically across nodes.
    async fn draw_grant(&self, id: &str, now: i64) -> Result<Draw>;
}
