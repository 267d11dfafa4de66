//! The admin API under `/v1`: config reload, and the accounts (with their
//! LLM budgets), keys, credits, ledger, per-request usage, notifications, subscriptions,
//! invoices and receipts that the store keeps. Every route
//! needs the admin token; every answer is JSON and every refusal a problem
//! document.
//!
//! [`endpoints`] is the one list of routes: the router is built from it, and
//! a test checks the OpenAPI document against it.

mod accounts;
mod budget;
mod documents;
mod hooks;
mod keys;
mod ledger;
mod outbox;
mod plans;
mod reload;
mod subscription;
mod top_up;
mod usage;
mod views;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter, on};
use faregate_rails::credits::Credits;
use faregate_store::Account;

use crate::AdminState;
use crate::auth::require_token;
use crate::problem::{Code, Problem, account_not_found};

/// Items per page when the query names no `limit`.
const DEFAULT_PAGE: u32 = 50;
/// The most items a page holds.
const MAX_PAGE: u32 = 500;

/// A route of the API.
pub(crate) struct Endpoint {
    /// Read by the test that holds the OpenAPI document to this list.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    handler: MethodRouter<AdminState>,
}

fn endpoint<H, T>(method: Method, path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AdminState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
    Endpoint {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every `/v1` route.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        endpoint(Method::POST, "/v1/reload", reload::reload),
        endpoint(Method::POST, "/v1/accounts", accounts::create),
        endpoint(Method::GET, "/v1/accounts", accounts::list),
        endpoint(Method::GET, "/v1/accounts/{id}", accounts::show),
        endpoint(Method::PUT, "/v1/accounts/{id}/budget", budget::set),
        endpoint(Method::DELETE, "/v1/accounts/{id}/budget", budget::clear),
        endpoint(Method::POST, "/v1/accounts/{id}/keys", keys::issue),
        endpoint(Method::GET, "/v1/accounts/{id}/keys", keys::list),
        endpoint(Method::DELETE, "/v1/keys/{key_id}", keys::revoke),
        endpoint(Method::POST, "/v1/accounts/{id}/credits", top_up::create),
        endpoint(Method::GET, "/v1/accounts/{id}/ledger", ledger::list),
        endpoint(Method::GET, "/v1/accounts/{id}/usage", usage::list),
        endpoint(Method::POST, "/v1/webhook_endpoints", hooks::create),
        endpoint(Method::GET, "/v1/webhook_endpoints", hooks::list),
        endpoint(Method::GET, "/v1/webhook_endpoints/{id}", hooks::show),
        endpoint(Method::DELETE, "/v1/webhook_endpoints/{id}", hooks::disable),
        endpoint(Method::GET, "/v1/webhook_deliveries", outbox::deliveries),
        endpoint(Method::GET, "/v1/events", outbox::events),
        endpoint(Method::GET, "/v1/plans", plans::list),
        endpoint(
            Method::POST,
            "/v1/accounts/{id}/subscription",
            subscription::start,
        ),
        endpoint(
            Method::GET,
            "/v1/accounts/{id}/subscription",
            subscription::show,
        ),
        endpoint(
            Method::DELETE,
            "/v1/accounts/{id}/subscription",
            subscription::cancel,
        ),
        endpoint(Method::GET, "/v1/invoices", documents::invoices),
        endpoint(Method::GET, "/v1/invoices/{id}", documents::invoice),
        endpoint(Method::GET, "/v1/receipts", documents::receipts),
        endpoint(Method::GET, "/v1/receipts/{id}", documents::receipt),
    ]
}

/// The `/v1` routes, behind the admin token.
pub(crate) fn router(state: AdminState) -> Router<AdminState> {
    endpoints()
        .into_iter()
        .fold(Router::new(), |r, e| r.route(e.path, e.handler))
        .route_layer(from_fn_with_state(state, require_token))
}

/// A page size from the query: 1 to [`MAX_PAGE`], 50 when absent.
fn page_limit(limit: Option<u32>) -> Result<usize, Problem> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::new(
            Code::InvalidQuery,
            format!("limit must be 1 to {MAX_PAGE}"),
        ));
    }
    usize::try_from(limit).map_err(|e| Problem::internal(&e))
}

/// The account `id`, or `404 account_not_found`.
async fn find_account(credits: &Credits, id: &str) -> Result<Account, Problem> {
    credits
        .store()
        .account(id)
        .await?
        .ok_or_else(|| account_not_found(id))
}
