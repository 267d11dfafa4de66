//! `/v1/accounts/{id}/subscription`: start a plan for an account (with its
//! trial by default, optionally linking the card processor's customer id),
//! show the subscription, and cancel it. The answers are the subscription as
//! the subscriber's own `GET /billing/subscription` shows it.
//!
//! A gateway without the plans rail, or whose config sells no plan, answers
//! `409 plans_not_configured`: the account is there, the gateway's state
//! refuses. (A 404 would say the account just created is missing; clients,
//! and schemathesis's check that created resources can be read, take it
//! so.)

use axum::Json;
use axum::http::StatusCode;
use faregate_rails::credits::Credits;
use serde::Deserialize;
use serde_json::Value;

use super::find_account;
use crate::extract::{JsonBody, PathParam, PlansAccess, QueryParams, StoreAccess};
use crate::problem::{Code, Problem, customer_conflict, subscription_not_found};

/// The longest processor customer id.
const MAX_CUSTOMER: usize = 255;

/// `POST /v1/accounts/{id}/subscription`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSubscription {
    /// The plan's id.
    plan: String,
    /// Start with the plan's trial, if it has one; true when absent or
    /// null.
    #[serde(default)]
    trial: Option<bool>,
    /// The card processor's customer id (`cus_…`) to link to the account.
    #[serde(default)]
    customer: Option<String>,
}

pub(super) async fn start(
    StoreAccess(credits): StoreAccess,
    PlansAccess(plans): PlansAccess,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody<NewSubscription>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let customer = body.customer.map(valid_customer).transpose()?;
    if !plans.catalog().iter().any(|p| p.id().as_str() == body.plan) {
        return Err(Problem::new(
            Code::UnknownPlan,
            format!(
                "no plan {:?}; GET /v1/plans lists the plans on sale",
                body.plan
            ),
        ));
    }
    let account = find_account(&credits, &id).await?;
    if let Some(customer) = &customer {
        check_link(&credits, customer, &account.id).await?;
    }
    let view = plans
        .subscribe(
            &account.id,
            &body.plan,
            body.trial.unwrap_or(true),
            customer.as_deref(),
        )
        .await?;
    tracing::info!(account = %account.id, plan = %body.plan, "subscription started");
    Ok((StatusCode::CREATED, Json(view)))
}

/// `customer` if it looks like a processor customer id: `cus_` and then
/// letters, digits and `_`.
fn valid_customer(customer: String) -> Result<String, Problem> {
    let rest = customer.strip_prefix("cus_").unwrap_or("");
    if rest.is_empty()
        || customer.len() > MAX_CUSTOMER
        || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Problem::new(
            Code::InvalidCustomer,
            format!(
                "customer must be the card processor's customer id: cus_ and then letters, \
                 digits or _, at most {MAX_CUSTOMER} characters"
            ),
        ));
    }
    Ok(customer)
}

/// Refuses a link that the store would refuse: the customer is another
/// account's, or the account has another customer. (The link is written
/// with the subscription; a race past this check is refused there.)
async fn check_link(credits: &Credits, customer: &str, account: &str) -> Result<(), Problem> {
    let store = credits.store();
    let holder = store.account_for_customer(customer).await?;
    let linked = store.customer_of(account).await?;
    if holder.is_some_and(|a| a != account) || linked.is_some_and(|c| c != customer) {
        return Err(customer_conflict());
    }
    Ok(())
}

/// `GET /v1/accounts/{id}/subscription`.
pub(super) async fn show(
    StoreAccess(credits): StoreAccess,
    PlansAccess(plans): PlansAccess,
    PathParam(id): PathParam<String>,
) -> Result<Json<Value>, Problem> {
    let account = find_account(&credits, &id).await?;
    plans
        .subscription_of(&account.id)
        .map(Json)
        .ok_or_else(|| subscription_not_found(&account.id))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelParams {
    /// False ends the subscription now; true (the default) at the end of
    /// the period already paid.
    at_period_end: Option<bool>,
}

/// `DELETE /v1/accounts/{id}/subscription`: what the subscriber's
/// `POST /billing/subscription/cancel` does.
pub(super) async fn cancel(
    StoreAccess(credits): StoreAccess,
    PlansAccess(plans): PlansAccess,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<CancelParams>,
) -> Result<Json<Value>, Problem> {
    let account = find_account(&credits, &id).await?;
    let view = plans
        .cancel_at(&account.id, q.at_period_end.unwrap_or(true))
        .await?;
    tracing::info!(account = %account.id, "subscription canceled");
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids() {
        assert!(valid_customer("cus_NffrFeUfNV2Hib".into()).is_ok());
        assert!(valid_customer("cus_test_1".into()).is_ok());
        let long = format!("cus_{}", "a".repeat(MAX_CUSTOMER - 4));
        assert!(valid_customer(long.clone()).is_ok());
        for bad in [
            "",
            "cus_",
            "cus",
            "acct_x",
            "cus_a b",
            "cus_é",
            "CUS_abc",
            &format!("{long}a"),
        ] {
            assert_eq!(
                valid_customer(bad.to_owned()).unwrap_err().code,
                Code::InvalidCustomer,
                "{bad:?}"
            );
        }
    }
}
