//! Issuing account keys, with their route and LLM model scopes and LLM
//! limits, and setting an account's LLM budget: on the store alone (for
//! the CLI), or through [`Credits`](super::Credits), which also makes the
//! change visible in memory at once.

use faregate_core::{Budget, LlmLimits};
use faregate_store::{Account, KeyRecord, Store, StoreError};
use rand::Rng;

use super::{CreditsError, book, now_ms};

/// A key to issue.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    /// The account it spends from.
    pub account_id: String,
    /// `fg_live_…` (true) or `fg_test_…`.
    pub live: bool,
    /// Route names it may use; all when `None`.
    pub routes: Option<Vec<String>>,
    /// LLM model names it may use; all when `None`.
    pub models: Option<Vec<String>>,
    /// Its LLM budget (in the account's currency) and per-minute limits.
    pub limits: LlmLimits,
    /// Unix milliseconds after which it stops working.
    pub expires_at: Option<i64>,
}

/// Random characters after the key's `fg_live_` / `fg_test_` prefix:
/// 32 of base62, about 190 bits.
const KEY_CHARS: usize = 32;

/// How many characters of a key are kept to tell keys apart.
const SHOWN_PREFIX: usize = 12;

/// Issues a key on `store` alone (for the CLI, when no gateway runs here):
/// returns the key, shown only this once, and its stored record.
pub async fn issue_key(
    store: &dyn Store,
    request: KeyRequest,
) -> Result<(String, KeyRecord), CreditsError> {
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let Some(account) = store.account(&request.account_id).await? else {
        return Err(CreditsError::NoAccount(request.account_id));
    };
    same_currency(&account, request.limits.budget.as_ref())?;
    let mut key = String::from(if request.live { "fg_live_" } else { "fg_test_" });
    {
        // The thread-local generator must not live across an await.
        let mut rng = rand::rng();
        for _ in 0..KEY_CHARS {
            key.push(char::from(BASE62[rng.random_range(0..62)]));
        }
    }
    let record = KeyRecord {
        id: faregate_store::new_id("key"),
        account_id: request.account_id,
        hash: hex::encode(book::key_hash(&key)),
        prefix: key[..SHOWN_PREFIX].to_owned(),
        live: request.live,
        routes: request.routes,
        models: request.models,
        limits: request.limits,
        expires_at: request.expires_at,
        revoked_at: None,
        created_at: now_ms(),
    };
    store.create_key(&record).await.map_err(refused)?;
    Ok((key, record))
}

/// Sets (`Some`) or clears (`None`) an account's LLM budget on `store`
/// alone (for the CLI); gateways sharing the store see it at their next
/// poll. The budget must be in the account's currency.
pub async fn set_account_budget(
    store: &dyn Store,
    account_id: &str,
    budget: Option<Budget>,
) -> Result<Account, CreditsError> {
    store
        .set_account_budget(account_id, budget)
        .await
        .map_err(refused)
}

/// Refuses a budget in another currency than `account`'s.
fn same_currency(account: &Account, budget: Option<&Budget>) -> Result<(), CreditsError> {
    match budget.map(|b| b.amount.currency()) {
        Some(given) if given != account.currency => Err(CreditsError::Currency {
            account: account.id.clone(),
            held: account.currency.code(),
            given: given.code(),
        }),
        _ => Ok(()),
    }
}

/// The store's refusals as the rail's: a missing account, a budget in
/// another currency.
fn refused(e: StoreError) -> CreditsError {
    match e {
        StoreError::NotFound(what) => CreditsError::NoAccount(
            what.strip_prefix("account ")
                .map_or(what.clone(), str::to_owned),
        ),
        StoreError::Currency {
            account,
            held,
            given,
        } => CreditsError::Currency {
            account,
            held,
            given,
        },
        other => CreditsError::Store(other),
    }
}
