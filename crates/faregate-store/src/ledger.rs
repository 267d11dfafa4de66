//! Ledger transactions: balanced postings between ledger accounts.
//!
//! Money flows between three kinds of ledger account. A customer's account
//! (`customer:acct_…`) holds what the customer may spend; `faregate:funding`
//! is where money coming in from outside (a top-up, a card payment) is drawn
//! from; `faregate:revenue` is where spent money goes. A top-up moves money
//! from funding to the customer, a debit from the customer to revenue, a
//! refund back. Funding's balance is therefore minus everything ever paid in.

use std::fmt;

use faregate_core::{Currency, Money};
use rand::Rng;

/// A transaction that cannot be posted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Postings of one currency do not sum to zero.
    #[error("transaction {id}: {currency} postings sum to {sum}, not zero")]
    Unbalanced {
        /// The transaction.
        id: String,
        /// The currency that does not balance.
        currency: &'static str,
        /// What it sums to.
        sum: i128,
    },
    /// Fewer than two postings, or a zero one.
    #[error("transaction {0}: needs at least two non-zero postings")]
    Degenerate(String),
    /// An amount beyond what the store keeps (63 bits).
    #[error("amount out of range")]
    OutOfRange,
}

/// A ledger account's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LedgerAccount(String);

impl LedgerAccount {
    const CUSTOMER: &'static str = "customer:";

    /// What customer `account_id` may spend.
    pub fn customer(account_id: &str) -> Self {
        Self(format!("{}{account_id}", Self::CUSTOMER))
    }

    /// Where spent money goes.
    pub fn revenue() -> Self {
        Self("faregate:revenue".to_owned())
    }

    /// Where money paid in from outside comes from.
    pub fn funding() -> Self {
        Self("faregate:funding".to_owned())
    }

    /// What customer `account_id` owes on invoices (negative while owed).
    pub fn receivable(account_id: &str) -> Self {
        Self(format!("receivable:{account_id}"))
    }

    /// Where money paid per request on `rail` and `network` comes from
    /// (`x402:eip155:8453`): outside the gateway, like funding, but kept
    /// apart so each chain's takings can be reconciled with the chain.
    pub fn settlement(rail: &str, network: &str) -> Self {
        Self(format!("{rail}:{network}"))
    }

    /// A name read back from the store.
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The customer account id, if this is a customer's account.
    pub fn customer_id(&self) -> Option<&str> {
        self.0.strip_prefix(Self::CUSTOMER)
    }
}

impl fmt::Display for LedgerAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why money moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxKind {
    /// Money paid in.
    TopUp,
    /// A request paid for.
    Debit,
    /// A debit given back.
    Refund,
    /// An operator's correction.
    Adjustment,
    /// An invoice issued: the customer owes it.
    Invoice,
    /// An invoice paid through the card processor.
    InvoicePayment,
    /// A request paid on its own through a per-request rail (x402),
    /// referencing the settlement's transaction hash.
    Payment,
}

impl TxKind {
    /// Every kind.
    pub const ALL: [TxKind; 7] = [
        Self::TopUp,
        Self::Debit,
        Self::Refund,
        Self::Adjustment,
        Self::Invoice,
        Self::InvoicePayment,
        Self::Payment,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TxKind::TopUp => "top_up",
            TxKind::Debit => "debit",
            TxKind::Refund => "refund",
            TxKind::Adjustment => "adjustment",
            TxKind::Invoice => "invoice",
            TxKind::InvoicePayment => "invoice_payment",
            TxKind::Payment => "payment",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One leg of a transaction: a signed amount on one ledger account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// The account it moves.
    pub account: LedgerAccount,
    /// The currency.
    pub currency: Currency,
    /// Signed atomic units: positive adds to the account's balance.
    pub amount: i64,
}

/// A transaction to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// `tx_…`
    pub id: String,
    /// Unique: posting the same key twice is a no-op.
    pub idempotency_key: String,
    /// Why money moved.
    pub kind: TxKind,
    /// What it is about: a request id, top-up id, webhook event id or
    /// transaction hash.
    pub reference: String,
    /// A note for people.
    pub memo: Option<String>,
    /// A digest of the request that made it, so a replayed idempotency key
    /// with a different request can be told apart.
    pub fingerprint: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The legs.
    pub postings: Vec<Posting>,
}

/// A committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    /// Commit order.
    pub seq: i64,
    /// What was posted.
    pub tx: Transaction,
}

impl Transaction {
    fn two_legs(
        kind: TxKind,
        from: LedgerAccount,
        to: LedgerAccount,
        amount: Money,
        idempotency_key: String,
        reference: String,
        created_at: i64,
    ) -> Result<Self, LedgerError> {
        let value = i64::try_from(amount.atomic()).map_err(|_| LedgerError::OutOfRange)?;
        let currency = amount.currency();
        Ok(Self {
            id: new_id("tx"),
            idempotency_key,
            kind,
            reference,
            memo: None,
            fingerprint: None,
            created_at,
            postings: vec![
                Posting {
                    account: from,
                    currency,
                    amount: -value,
                },
                Posting {
                    account: to,
                    currency,
                    amount: value,
                },
            ],
        })
    }

    /// Money paid into `account_id` from outside.
    pub fn top_up(
        account_id: &str,
        amount: Money,
        idempotency_key: String,
        reference: String,
        created_at: i64,
    ) -> Result<Self, LedgerError> {
        Self::two_legs(
            TxKind::TopUp,
            LedgerAccount::funding(),
            LedgerAccount::customer(account_id),
            amount,
            idempotency_key,
            reference,
            created_at,
        )
    }

    /// A request served to `account_id`, paid from its balance.
    pub fn debit(
        account_id: &str,
        amount: Money,
        idempotency_key: String,
        reference: String,
        created_at: i64,
    ) -> Result<Self, LedgerError> {
        Self::two_legs(
            TxKind::Debit,
            LedgerAccount::customer(account_id),
            LedgerAccount::revenue(),
            amount,
            idempotency_key,
            reference,
            created_at,
        )
    }

    /// A debit given back to `account_id`.
    pub fn refund(
        account_id: &str,
        amount: Money,
        idempotency_key: String,
        reference: String,
        created_at: i64,
    ) -> Result<Self, LedgerError> {
        Self::two_legs(
            TxKind::Refund,
            LedgerAccount::revenue(),
            LedgerAccount::customer(account_id),
            amount,
            idempotency_key,
            reference,
            created_at,
        )
    }

    /// Invoice `reference` issued to `account_id`: revenue earned, owed by
    /// the customer until paid.
    pub fn invoice(
        account_id: &str,
        amount: Money,
        idempotency_key: String,
        reference: String,
        created_at: i64,
    ) -> Result<Self, LedgerError> {
        Self::two_legs(
            TxKind::Invoice,
            LedgerAccount::receivable(account_id),
            LedgerAccount::revenue(),
            amount,
            idempotency_key,
            reference,
            created_at,
        )
    }

    /// A request paid per request on `rail` and `network`; `reference` is
    /// the settlement's transaction hash.
    pub fn payment(
        rail: &str,
        network: &str,
        amount: Money,
        idempotency_key: String,
        reference: String,
        created_at: i64,
    ) -> Result<Self, LedgerError> {
        Self::two_legs(
            TxKind::Payment,
            LedgerAccount::settlement(rail, network),
            LedgerAccount::revenue(),
            amount,
            idempotency_key,
            reference,
            created_at,
        )
    }

    /// Invoice `reference` of `account_id` paid from outside.
    pub fn invoice_payment(
        account_id: &str,
        amount: Money,
        idempotency_key: String,
        reference: String,
        created_at: i64,
    ) -> Result<Self, LedgerError> {
        Self::two_legs(
            TxKind::InvoicePayment,
            LedgerAccount::funding(),
            LedgerAccount::receivable(account_id),
            amount,
            idempotency_key,
            reference,
            created_at,
        )
    }

    /// Sets the memo.
    #[must_use]
    pub fn with_memo(mut self, memo: Option<String>) -> Self {
        self.memo = memo;
        self
    }

    /// Sets the request fingerprint.
    #[must_use]
    pub fn with_fingerprint(mut self, fingerprint: Option<String>) -> Self {
        self.fingerprint = fingerprint;
        self
    }

    /// Checks that the postings balance per currency.
    pub fn validate(&self) -> Result<(), LedgerError> {
        if self.postings.len() < 2 || self.postings.iter().any(|p| p.amount == 0) {
            return Err(LedgerError::Degenerate(self.id.clone()));
        }
        let mut sums: Vec<(Currency, i128)> = Vec::new();
        for p in &self.postings {
            match sums.iter_mut().find(|(c, _)| *c == p.currency) {
                Some((_, sum)) => *sum += i128::from(p.amount),
                None => sums.push((p.currency, i128::from(p.amount))),
            }
        }
        match sums.into_iter().find(|(_, sum)| *sum != 0) {
            Some((currency, sum)) => Err(LedgerError::Unbalanced {
                id: self.id.clone(),
                currency: currency.code(),
                sum,
            }),
            None => Ok(()),
        }
    }

    /// The amount this transaction moves on `account`, summed.
    pub fn amount_on(&self, account: &LedgerAccount) -> i64 {
        self.postings
            .iter()
            .filter(|p| &p.account == account)
            .map(|p| p.amount)
            .fold(0i64, i64::saturating_add)
    }
}

/// A new random id: `prefix_` and 20 characters of lowercase base32
/// (100 random bits).
pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + 21);
    id.push_str(prefix);
    id.push('_');
    for _ in 0..20 {
        id.push(char::from(ALPHABET[rng.random_range(0..32)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(atomic: u64) -> Money {
        Money::from_atomic(atomic, Currency::USD)
    }

    #[test]
    fn constructed_transactions_balance() {
        for tx in [
            Transaction::top_up("a", usd(5), "k1".into(), "r".into(), 0).unwrap(),
            Transaction::debit("a", usd(5), "k2".into(), "r".into(), 0).unwrap(),
            Transaction::refund("a", usd(5), "k3".into(), "r".into(), 0).unwrap(),
        ] {
            tx.validate().unwrap();
        }
    }

    #[test]
    fn unbalanced_and_degenerate_transactions_are_refused() {
        let mut tx = Transaction::top_up("a", usd(5), "k".into(), "r".into(), 0).unwrap();
        tx.postings[0].amount = -4;
        assert!(matches!(
            tx.validate(),
            Err(LedgerError::Unbalanced { sum: 1, .. })
        ));
        tx.postings.truncate(1);
        assert!(matches!(tx.validate(), Err(LedgerError::Degenerate(_))));
        let zero = Transaction::top_up("a", usd(0), "k".into(), "r".into(), 0).unwrap();
        assert!(zero.validate().is_err());
    }

    #[test]
    fn amounts_beyond_63_bits_are_refused() {
        let huge = usd(u64::MAX);
        assert_eq!(
            Transaction::top_up("a", huge, "k".into(), "r".into(), 0),
            Err(LedgerError::OutOfRange)
        );
    }

    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = new_id("tx");
        assert!(a.starts_with("tx_") && a.len() == 23);
        assert_ne!(a, new_id("tx"));
    }
}
