//! `/v1/accounts`: create, show and list accounts (budgets are set in
//! `budget.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use faregate_store::{Account, new_id};
use serde::Deserialize;

use super::views::{self, AccountView, Page, paginate};
use super::{find_account, page_limit};
use crate::AdminState;
use crate::amount::currency;
use crate::extract::{JsonBody, PathParam, QueryParams, StoreAccess};
use crate::problem::{Code, Problem};

/// The longest account name, in characters.
const MAX_NAME: usize = 200;

/// `POST /v1/accounts`. Ids are always generated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewAccount {
    name: String,
    currency: String,
}

pub(super) async fn create(
    StoreAccess(credits): StoreAccess,
    State(s): State<AdminState>,
    JsonBody(body): JsonBody<NewAccount>,
) -> Result<(StatusCode, Json<AccountView>), Problem> {
    let account = Account {
        id: new_id("acct"),
        name: valid_name(body.name)?,
        currency: currency(&body.currency)?,
        created_at: s.now_ms(),
        budget: None,
    };
    credits.create_account(&account).await?;
    tracing::info!(account = %account.id, "account created");
    let view = views::account(&credits, account).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

fn valid_name(name: String) -> Result<String, Problem> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > MAX_NAME || name.chars().any(char::is_control) {
        return Err(Problem::new(
            Code::InvalidName,
            format!(
                "name must be 1 to {MAX_NAME} characters, not blank, without control characters"
            ),
        ));
    }
    Ok(name)
}

/// `GET /v1/accounts/{id}`.
pub(super) async fn show(
    StoreAccess(credits): StoreAccess,
    PathParam(id): PathParam<String>,
) -> Result<Json<AccountView>, Problem> {
    let account = find_account(&credits, &id).await?;
    Ok(Json(views::account(&credits, account).await?))
}

/// `GET /v1/accounts?limit=&after=`, ordered by id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    limit: Option<u32>,
    /// The `next` of the previous page.
    after: Option<String>,
}

pub(super) async fn list(
    StoreAccess(credits): StoreAccess,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<Page<AccountView>>, Problem> {
    let limit = page_limit(q.limit)?;
    let fetched = credits
        .store()
        .accounts(
            q.after.as_deref(),
            u32::try_from(limit + 1).unwrap_or(u32::MAX),
        )
        .await?;
    let (accounts, next) = paginate(fetched, limit, |a| a.id.clone());
    let mut data = Vec::with_capacity(accounts.len());
    for account in accounts {
        data.push(views::account(&credits, account).await?);
    }
    Ok(Json(Page { data, next }))
}
