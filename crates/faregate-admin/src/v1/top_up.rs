//! `POST /v1/accounts/{id}/credits`: adds money to an account, exactly once
//! per `Idempotency-Key`, with Stripe's semantics:
//!
//! - the same key with the same request answers what the first answered
//!   (status and body), with `Idempotent-Replayed: true`;
//! - the same key with another request is refused with
//!   `422 idempotency_key_reused`;
//! - a refused request is not remembered, so it may be sent again, fixed,
//!   under the same key.
//!
//! The ledger itself enforces this: the transaction's idempotency key is
//! unique, and its fingerprint (a digest of the request) tells a replay
//! from a reuse. No separate table of answers is kept; the answer is built
//! again from the transaction.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use faregate_core::Money;
use faregate_rails::credits::{Credits, TopUp};
use faregate_store::{Account, LedgerAccount, Posted};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::find_account;
use super::views::CreditView;
use crate::amount::{currency, fixed, positive};
use crate::extract::{IdempotencyKey, JsonBody, PathParam, StoreAccess};
use crate::problem::{Code, Problem};

const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The longest reason, in characters.
const MAX_REASON: usize = 500;

/// Names what the fingerprint covers; bump it if that ever changes.
const FINGERPRINT_VERSION: &str = "admin-credit/v1";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCredit {
    /// A decimal string; read as a JSON value so that a number is refused
    /// as `invalid_amount` rather than as a shapeless body.
    amount: Value,
    currency: String,
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn create(
    StoreAccess(credits): StoreAccess,
    PathParam(id): PathParam<String>,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<NewCredit>,
) -> Result<Response, Problem> {
    let currency = currency(&body.currency)?;
    let amount = positive(&body.amount, currency)?;
    let reason = valid_reason(body.reason)?;
    let account = find_account(&credits, &id).await?;
    if account.currency != currency {
        return Err(Problem::new(
            Code::CurrencyMismatch,
            format!(
                "account {} holds {}, not {}",
                account.id,
                account.currency.code(),
                currency.code()
            ),
        ));
    }
    check_headroom(&credits, &account, amount).await?;
    let request = TopUp {
        fingerprint: Some(fingerprint(&account.id, amount, reason.as_deref())),
        account_id: account.id.clone(),
        amount,
        idempotency_key: format!("admin-credit:{}:{key}", account.id),
        reference: key,
        reason,
    };
    answer(credits.top_up(request).await?, &account)
}

fn answer(posted: Posted, account: &Account) -> Result<Response, Problem> {
    match posted {
        Posted::Created(record) => {
            tracing::info!(account = %account.id, transaction = %record.tx.id, "credits added");
            Ok((StatusCode::CREATED, Json(CreditView::new(record, account))).into_response())
        }
        Posted::Replayed(record) => {
            let mut r =
                (StatusCode::CREATED, Json(CreditView::new(record, account))).into_response();
            r.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            Ok(r)
        }
        Posted::Conflict(record) => Err(Problem::new(
            Code::IdempotencyKeyReused,
            format!(
                "this Idempotency-Key was used for another request (transaction {}); use a new key",
                record.tx.id
            ),
        )),
    }
}

fn valid_reason(reason: Option<String>) -> Result<Option<String>, Problem> {
    match reason {
        Some(r) if r.trim().is_empty() || r.chars().count() > MAX_REASON => Err(Problem::new(
            Code::InvalidReason,
            format!("reason must be 1 to {MAX_REASON} characters and not blank, or absent"),
        )),
        other => Ok(other),
    }
}

/// SHA-256 (hex) of the request in canonical form: the account, the amount
/// normalized through `Money`, its currency, and the reason.
fn fingerprint(account_id: &str, amount: Money, reason: Option<&str>) -> String {
    let canonical = serde_json::json!([
        FINGERPRINT_VERSION,
        account_id,
        fixed(amount),
        amount.currency().code(),
        reason,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Refuses a credit that would take the account's balance, or the funding
/// account's, past the 63 bits the ledger keeps, which the database would
/// refuse (PostgreSQL) or silently turn into a float (SQLite).
async fn check_headroom(
    credits: &Credits,
    account: &Account,
    amount: Money,
) -> Result<(), Problem> {
    let store = credits.store();
    let customer = store
        .balance(&LedgerAccount::customer(&account.id), account.currency)
        .await?;
    let funding = store
        .balance(&LedgerAccount::funding(), account.currency)
        .await?;
    let delta = i64::try_from(amount.atomic()).unwrap_or(i64::MAX);
    if customer.checked_add(delta).is_none() || funding.checked_sub(delta).is_none() {
        return Err(Problem::new(
            Code::InvalidAmount,
            "this credit would take a balance past what the ledger can hold",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use faregate_core::Currency;

    #[test]
    fn fingerprints_normalize_the_amount_and_cover_every_field() {
        let usd = |text| Money::parse_decimal(text, Currency::USD).unwrap();
        let base = fingerprint("acct_a", usd("5"), Some("r"));
        assert_eq!(base.len(), 64);
        assert_eq!(base, fingerprint("acct_a", usd("5.000"), Some("r")));
        assert_ne!(base, fingerprint("acct_b", usd("5"), Some("r")));
        assert_ne!(base, fingerprint("acct_a", usd("5.01"), Some("r")));
        assert_ne!(base, fingerprint("acct_a", usd("5"), Some("s")));
        assert_ne!(base, fingerprint("acct_a", usd("5"), None));
        let eur = Money::parse_decimal("5", Currency::from_code("EUR").unwrap()).unwrap();
        assert_ne!(base, fingerprint("acct_a", eur, Some("r")));
    }

    #[test]
    fn reasons_are_optional_but_not_blank() {
        assert_eq!(valid_reason(None), Ok(None));
        assert_eq!(
            valid_reason(Some("refund".into())),
            Ok(Some("refund".into()))
        );
        for bad in ["", "  ", &"x".repeat(MAX_REASON + 1)] {
            assert_eq!(
                valid_reason(Some(bad.to_owned())).unwrap_err().code,
                Code::InvalidReason
            );
        }
    }
}
