//! An account's API keys: issue (the key is shown once, in that answer)
//! with its route and LLM model scopes and LLM limits, list (never the key
//! nor its hash) and revoke.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use faregate_gateway::Gateway;
use faregate_rails::credits::KeyRequest;
use faregate_store::Account;
use serde::Deserialize;
use serde_json::Value;

use super::budget::{NewBudget, key_limits, valid_models};
use super::find_account;
use super::views::{IssuedKeyView, KeyView, Page};
use crate::AdminState;
use crate::extract::{JsonBody, PathParam, StoreAccess};
use crate::problem::{Code, Problem};
use crate::time::instant_from_json;

/// `POST /v1/accounts/{id}/keys`; send `{}` for a live key on every route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKey {
    /// `fg_live_…` (the default) or `fg_test_…`.
    #[serde(default = "live_by_default")]
    live: bool,
    /// Route names the key may use; every route when absent.
    #[serde(default)]
    routes: Option<Vec<String>>,
    /// Unix seconds or RFC 3339, in the future.
    #[serde(default)]
    expires_at: Option<Value>,
    /// LLM model names the key may use; every model when absent.
    #[serde(default)]
    models: Option<Vec<String>>,
    /// What the key may spend on LLM calls per day or month, in the
    /// account's currency; no limit when absent.
    #[serde(default)]
    budget: Option<NewBudget>,
    /// LLM tokens per minute; no limit when absent.
    #[serde(default)]
    tpm: Option<u64>,
    /// LLM requests per minute; no limit when absent.
    #[serde(default)]
    rpm: Option<u64>,
}

fn live_by_default() -> bool {
    true
}

pub(super) async fn issue(
    StoreAccess(credits): StoreAccess,
    State(s): State<AdminState>,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody<NewKey>,
) -> Result<(StatusCode, Json<IssuedKeyView>), Problem> {
    let account = find_account(&credits, &id).await?;
    let request = key_request(&s, account, body)?;
    let (key, record) = credits.issue_key(request).await.map_err(Problem::from)?;
    tracing::info!(account = %record.account_id, key_id = %record.id, "API key issued");
    Ok((StatusCode::CREATED, Json(IssuedKeyView::new(key, record))))
}

/// What to issue for `account`, every part of `body` checked.
fn key_request(s: &AdminState, account: Account, body: NewKey) -> Result<KeyRequest, Problem> {
    Ok(KeyRequest {
        live: body.live,
        routes: body.routes.map(|r| known_routes(&s.gw, r)).transpose()?,
        models: body.models.map(valid_models).transpose()?,
        limits: key_limits(body.budget.as_ref(), body.tpm, body.rpm, account.currency)?,
        expires_at: body
            .expires_at
            .map(|at| future_instant(&at, s.now_ms()))
            .transpose()?,
        account_id: account.id,
    })
}

/// `routes` if it lists, once each, routes the current config has.
fn known_routes(gw: &Gateway, routes: Vec<String>) -> Result<Vec<String>, Problem> {
    let invalid = |detail: String| Problem::new(Code::InvalidRoutes, detail);
    if routes.is_empty() {
        return Err(invalid(
            "routes is empty, so the key could use nothing; leave routes out to allow every route"
                .into(),
        ));
    }
    let snapshot = gw.snapshot();
    let configured: HashSet<&str> = snapshot
        .config
        .routes
        .routes()
        .iter()
        .map(|r| &*r.name)
        .collect();
    let mut seen = HashSet::new();
    for name in &routes {
        if !configured.contains(name.as_str()) {
            return Err(invalid(format!("the config has no route named {name:?}")));
        }
        if !seen.insert(name) {
            return Err(invalid(format!("route {name:?} is listed twice")));
        }
    }
    Ok(routes)
}

/// An expiry in unix milliseconds, after `now_ms`.
fn future_instant(at: &Value, now_ms: i64) -> Result<i64, Problem> {
    let at = instant_from_json(at)
        .map_err(|e| Problem::new(Code::InvalidExpiry, format!("expires_at: {e}")))?;
    if at <= now_ms {
        return Err(Problem::new(
            Code::InvalidExpiry,
            "expires_at must be in the future",
        ));
    }
    Ok(at)
}

/// `GET /v1/accounts/{id}/keys`: every key, revoked ones included, on one
/// page (`next` is always null).
pub(super) async fn list(
    StoreAccess(credits): StoreAccess,
    PathParam(id): PathParam<String>,
) -> Result<Json<Page<KeyView>>, Problem> {
    let account = find_account(&credits, &id).await?;
    let keys = credits.store().keys(&account.id).await?;
    Ok(Json(Page {
        data: keys.into_iter().map(KeyView::from).collect(),
        next: None,
    }))
}

/// `DELETE /v1/keys/{key_id}`: revokes the key (revoking twice keeps the
/// first time) and answers with its record.
pub(super) async fn revoke(
    StoreAccess(credits): StoreAccess,
    State(s): State<AdminState>,
    PathParam(key_id): PathParam<String>,
) -> Result<Json<KeyView>, Problem> {
    let Some(record) = credits.revoke_key(&key_id, s.now_ms()).await? else {
        return Err(Problem::new(Code::KeyNotFound, format!("no key {key_id}")));
    };
    tracing::info!(account = %record.account_id, key_id = %record.id, "API key revoked");
    Ok(Json(record.into()))
}
