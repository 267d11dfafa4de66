//! `GET /v1/accounts/{id}/ledger`: the transactions that moved an
//! account's money, newest first, each with its postings and the signed
//! amount it moved on this account.

use axum::Json;
use faregate_store::{LedgerAccount, LedgerQuery, TxKind};
use serde::Deserialize;

use super::views::{Page, TransactionView, paginate};
use super::{find_account, page_limit};
use crate::extract::{PathParam, QueryParams, StoreAccess};
use crate::problem::{Code, Problem};
use crate::time::instant_from_text;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LedgerParams {
    limit: Option<u32>,
    /// The `next` of the previous page: transactions before this `seq`.
    before: Option<i64>,
    /// `top_up`, `debit`, `refund` or `adjustment`.
    kind: Option<String>,
    /// Created at or after (unix seconds or RFC 3339).
    since: Option<String>,
    /// Created before (unix seconds or RFC 3339).
    until: Option<String>,
}

pub(super) async fn list(
    StoreAccess(credits): StoreAccess,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<LedgerParams>,
) -> Result<Json<Page<TransactionView>>, Problem> {
    let limit = page_limit(q.limit)?;
    let mut query = LedgerQuery {
        account: None,
        kind: q.kind.as_deref().map(kind).transpose()?,
        since: q
            .since
            .as_deref()
            .map(|t| instant("since", t))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|t| instant("until", t))
            .transpose()?,
        before_seq: q.before,
        limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
    };
    let account = find_account(&credits, &id).await?;
    let ledger_account = LedgerAccount::customer(&account.id);
    query.account = Some(ledger_account.clone());
    let records = credits.store().ledger(&query).await?;
    let (records, next) = paginate(records, limit, |r| r.seq.to_string());
    let data = records
        .into_iter()
        .map(|r| TransactionView::new(r, &ledger_account, account.currency))
        .collect();
    Ok(Json(Page { data, next }))
}

fn kind(name: &str) -> Result<TxKind, Problem> {
    TxKind::parse(name).ok_or_else(|| {
        let known: Vec<&str> = TxKind::ALL.iter().map(|k| k.as_str()).collect();
        Problem::new(
            Code::InvalidQuery,
            format!("kind must be one of {}", known.join(", ")),
        )
    })
}

fn instant(name: &str, text: &str) -> Result<i64, Problem> {
    instant_from_text(text).map_err(|e| Problem::new(Code::InvalidQuery, format!("{name}: {e}")))
}
