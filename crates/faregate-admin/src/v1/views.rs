//! What the API answers: stored records turned into JSON, with money as
//! decimal strings and instants as RFC 3339. A key's hash never appears.

use faregate_core::{Budget, Currency};
use faregate_rails::credits::Credits;
use faregate_store::{Account, KeyRecord, LedgerAccount, TransactionRecord, UsageRecord};
use serde::Serialize;

use crate::amount::{fixed, signed};
use crate::problem::Problem;
use crate::time::format_ms;

/// One page of a list and the cursor of the next, if there is one.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    pub(crate) data: Vec<T>,
    pub(crate) next: Option<String>,
}

/// Cuts `items`, fetched with one more than `limit`, to `limit`: the extra
/// one only says that another page exists, and `cursor` of the last item
/// kept says where it starts.
pub(crate) fn paginate<R>(
    mut items: Vec<R>,
    limit: usize,
    cursor: impl Fn(&R) -> String,
) -> (Vec<R>, Option<String>) {
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(cursor) } else { None };
    (items, next)
}

#[derive(Debug, Serialize)]
pub(crate) struct AccountView {
    id: String,
    name: String,
    currency: &'static str,
    created_at: String,
    /// The balance the store holds.
    balance: String,
    /// What the account can spend now: the balance less debits not yet
    /// written and requests in flight; `null` until this gateway knows it.
    spendable: Option<String>,
    /// What its keys together may spend on LLM calls; `null` for no limit.
    budget: Option<BudgetView>,
}

/// A budget: an amount per day or month.
#[derive(Debug, Serialize)]
pub(crate) struct BudgetView {
    amount: String,
    currency: &'static str,
    period: &'static str,
}

impl From<Budget> for BudgetView {
    fn from(b: Budget) -> Self {
        Self {
            amount: fixed(b.amount),
            currency: b.amount.currency().code(),
            period: b.period.as_str(),
        }
    }
}

/// `account` with its stored balance and what it can spend now.
pub(crate) async fn account(credits: &Credits, account: Account) -> Result<AccountView, Problem> {
    let balance = credits
        .store()
        .balance(&LedgerAccount::customer(&account.id), account.currency)
        .await?;
    Ok(AccountView {
        spendable: credits.spendable(&account.id).map(fixed),
        budget: account.budget.map(BudgetView::from),
        balance: signed(balance, account.currency),
        currency: account.currency.code(),
        created_at: format_ms(account.created_at),
        id: account.id,
        name: account.name,
    })
}

#[derive(Debug, Serialize)]
pub(crate) struct KeyView {
    id: String,
    account_id: String,
    prefix: String,
    live: bool,
    routes: Option<Vec<String>>,
    models: Option<Vec<String>>,
    budget: Option<BudgetView>,
    tpm: Option<u64>,
    rpm: Option<u64>,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    created_at: String,
}

impl From<KeyRecord> for KeyView {
    fn from(k: KeyRecord) -> Self {
        Self {
            id: k.id,
            account_id: k.account_id,
            prefix: k.prefix,
            live: k.live,
            routes: k.routes,
            models: k.models,
            budget: k.limits.budget.map(BudgetView::from),
            tpm: k.limits.tpm,
            rpm: k.limits.rpm,
            expires_at: k.expires_at.map(format_ms),
            revoked_at: k.revoked_at.map(format_ms),
            created_at: format_ms(k.created_at),
        }
    }
}

/// A new key: the only answer that carries the key itself.
#[derive(Debug, Serialize)]
pub(crate) struct IssuedKeyView {
    key: String,
    #[serde(flatten)]
    record: KeyView,
}

impl IssuedKeyView {
    pub(crate) fn new(key: String, record: KeyRecord) -> Self {
        Self {
            key,
            record: record.into(),
        }
    }
}

/// Credits added to an account, built from the ledger transaction alone so
/// that a replayed request is answered byte for byte as the first was.
#[derive(Debug, Serialize)]
pub(crate) struct CreditView {
    transaction_id: String,
    account_id: String,
    amount: String,
    currency: &'static str,
    reason: Option<String>,
    created_at: String,
}

impl CreditView {
    pub(crate) fn new(record: TransactionRecord, account: &Account) -> Self {
        let amount = record.tx.amount_on(&LedgerAccount::customer(&account.id));
        Self {
            transaction_id: record.tx.id,
            account_id: account.id.clone(),
            amount: signed(amount, account.currency),
            currency: account.currency.code(),
            reason: record.tx.memo,
            created_at: format_ms(record.tx.created_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct TransactionView {
    id: String,
    seq: i64,
    kind: &'static str,
    reference: String,
    memo: Option<String>,
    created_at: String,
    /// What the transaction moved on the account listed, signed.
    amount: String,
    currency: &'static str,
    postings: Vec<PostingView>,
}

#[derive(Debug, Serialize)]
struct PostingView {
    account: String,
    currency: &'static str,
    amount: String,
}

impl TransactionView {
    /// `record` as seen from `account`, whose ledger is in `currency`.
    pub(crate) fn new(
        record: TransactionRecord,
        account: &LedgerAccount,
        currency: Currency,
    ) -> Self {
        let tx = record.tx;
        let amount = signed(tx.amount_on(account), currency);
        let postings = tx
            .postings
            .into_iter()
            .map(|p| PostingView {
                account: p.account.as_str().to_owned(),
                currency: p.currency.code(),
                amount: signed(p.amount, p.currency),
            })
            .collect();
        Self {
            id: tx.id,
            seq: record.seq,
            kind: tx.kind.as_str(),
            reference: tx.reference,
            memo: tx.memo,
            created_at: format_ms(tx.created_at),
            amount,
            currency: currency.code(),
            postings,
        }
    }
}

/// One request's charge, as part of the batched debit that paid it.
#[derive(Debug, Serialize)]
pub(crate) struct UsageView {
    seq: i64,
    request_id: String,
    /// What the request cost, in the account's currency.
    amount: String,
    currency: &'static str,
    /// The debit transaction that carries it.
    transaction_id: String,
    created_at: String,
}

impl UsageView {
    /// `record`, numbered `seq`, of an account kept in `currency`.
    pub(crate) fn new(seq: i64, record: UsageRecord, currency: Currency) -> Self {
        Self {
            seq,
            request_id: record.reference,
            amount: signed(record.amount, currency),
            currency: currency.code(),
            transaction_id: record.transaction_id,
            created_at: format_ms(record.created_at),
        }
    }
}
