//! `GET /v1/accounts/{id}/usage`: what each request cost an account, newest
//! first. The ledger carries per-request charges as one debit per account
//! per batch; the usage records name the request behind each part of it,
//! and the debit (`transaction_id`) it was paid by.

use axum::Json;
use faregate_store::LedgerAccount;
use serde::Deserialize;

use super::views::{Page, UsageView, paginate};
use super::{find_account, page_limit};
use crate::extract::{PathParam, QueryParams, StoreAccess};
use crate::problem::Problem;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageParams {
    limit: Option<u32>,
    /// The `next` of the previous page: usage before this `seq`.
    before: Option<i64>,
}

pub(super) async fn list(
    StoreAccess(credits): StoreAccess,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<UsageParams>,
) -> Result<Json<Page<UsageView>>, Problem> {
    let limit = page_limit(q.limit)?;
    let account = find_account(&credits, &id).await?;
    let records = credits
        .store()
        .usage(
            &LedgerAccount::customer(&account.id),
            q.before,
            u32::try_from(limit + 1).unwrap_or(u32::MAX),
        )
        .await?;
    let (records, next) = paginate(records, limit, |(seq, _)| seq.to_string());
    let data = records
        .into_iter()
        .map(|(seq, r)| UsageView::new(seq, r, account.currency))
        .collect();
    Ok(Json(Page { data, next }))
}
