//! An account's API keys: issue (the key is shown once, in that answer),
//! list (never the key nor its hash) and revoke.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use faregate_gateway::Gateway;
use faregate_rails::credits::KeyRequest;

use serde::Deserialize;
use serde_json::Value;

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
    let request = KeyRequest {
        account_id: account.id,
        live: body.live,
        routes: body.routes.map(|r| known_routes(&s.gw, r)).transpose()?,
        expires_at: body
            .expires_at
            .map(|at| future_instant(&at, s.now_ms()))
            .transpose()?,
    };
    let (key, record) = credits.issue_key(request).await.map_err(Problem::from)?;
    tracing::info!(account = %record.account_id, key_id = %record.id, "API key issued");
    Ok((StatusCode::CREATED, Json(IssuedKeyView::new(key, record))))
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
