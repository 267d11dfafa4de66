//! LLM limits at the API's edge: a key's models, budget and per-minute
//! limits as `POST /v1/accounts/{id}/keys` takes them, and an account's
//! budget, set with `PUT /v1/accounts/{id}/budget` and cleared with
//! `DELETE`. A budget's amount is a decimal string in the account's
//! currency; models are stored newline-joined, so names hold no control
//! characters.

use std::collections::HashSet;

use axum::Json;
use faregate_core::{Budget, BudgetPeriod, Currency, LlmLimits};
use serde::Deserialize;
use serde_json::Value;

use super::find_account;
use super::views::{self, AccountView};
use crate::amount::positive;
use crate::extract::{JsonBody, PathParam, StoreAccess};
use crate::problem::{Code, Problem};

/// The most models a key may name.
const MAX_MODELS: usize = 256;

/// The longest model name, in characters.
const MAX_MODEL_NAME: usize = 256;

/// The largest per-minute limit: what the store keeps (63 bits).
const MAX_PER_MINUTE: u64 = i64::MAX as u64;

/// `{"amount": "5.00", "period": "day"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewBudget {
    /// A decimal string in the account's currency; read as a JSON value so
    /// that a number is refused as `invalid_budget`.
    amount: Value,
    /// `day` or `month`.
    period: String,
}

impl NewBudget {
    /// The budget, in the account's `currency`.
    pub(super) fn budget(&self, currency: Currency) -> Result<Budget, Problem> {
        let invalid = |detail: String| Problem::new(Code::InvalidBudget, detail);
        let amount = positive(&self.amount, currency)
            .map_err(|p| invalid(format!("budget {}", p.detail)))?;
        let period: BudgetPeriod = self
            .period
            .parse()
            .map_err(|e: faregate_core::BudgetError| invalid(e.to_string()))?;
        Ok(Budget { amount, period })
    }
}

/// A key's LLM limits from the request: each optional.
pub(super) fn key_limits(
    budget: Option<&NewBudget>,
    tpm: Option<u64>,
    rpm: Option<u64>,
    currency: Currency,
) -> Result<LlmLimits, Problem> {
    Ok(LlmLimits {
        budget: budget.map(|b| b.budget(currency)).transpose()?,
        tpm: per_minute("tpm", tpm)?,
        rpm: per_minute("rpm", rpm)?,
    })
}

/// A per-minute limit: 1 to 2^63 - 1.
fn per_minute(name: &str, limit: Option<u64>) -> Result<Option<u64>, Problem> {
    match limit {
        Some(n) if n == 0 || n > MAX_PER_MINUTE => Err(Problem::new(
            Code::InvalidLimit,
            format!("{name} must be 1 to {MAX_PER_MINUTE}; leave it out for no limit"),
        )),
        other => Ok(other),
    }
}

/// `models` if it names 1 to [`MAX_MODELS`] models, once each, with no
/// blank name and no control characters.
pub(super) fn valid_models(models: Vec<String>) -> Result<Vec<String>, Problem> {
    let invalid = |detail: String| Problem::new(Code::InvalidModels, detail);
    if models.is_empty() {
        return Err(invalid(
            "models is empty, so the key could use no model; leave models out to allow every model"
                .into(),
        ));
    }
    if models.len() > MAX_MODELS {
        return Err(invalid(format!(
            "a key may name at most {MAX_MODELS} models"
        )));
    }
    let mut seen = HashSet::new();
    for name in &models {
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_MODEL_NAME || name.chars().any(char::is_control) {
            return Err(invalid(format!(
                "model names must be 1 to {MAX_MODEL_NAME} characters without control characters, not {name:?}"
            )));
        }
        if !seen.insert(name) {
            return Err(invalid(format!("model {name:?} is listed twice")));
        }
    }
    Ok(models)
}

/// `PUT /v1/accounts/{id}/budget`: sets the account's budget, shared by all
/// of its keys; answers with the account.
pub(super) async fn set(
    StoreAccess(credits): StoreAccess,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody<NewBudget>,
) -> Result<Json<AccountView>, Problem> {
    let account = find_account(&credits, &id).await?;
    let budget = body.budget(account.currency)?;
    let account = credits
        .set_account_budget(&account.id, Some(budget))
        .await?;
    tracing::info!(account = %account.id, budget = %budget, "account budget set");
    Ok(Json(views::account(&credits, account).await?))
}

/// `DELETE /v1/accounts/{id}/budget`: the account has no budget from now
/// on (clearing twice is fine); answers with the account.
pub(super) async fn clear(
    StoreAccess(credits): StoreAccess,
    PathParam(id): PathParam<String>,
) -> Result<Json<AccountView>, Problem> {
    let account = find_account(&credits, &id).await?;
    let account = credits.set_account_budget(&account.id, None).await?;
    tracing::info!(account = %account.id, "account budget cleared");
    Ok(Json(views::account(&credits, account).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new_budget(amount: Value, period: &str) -> NewBudget {
        NewBudget {
            amount,
            period: period.to_owned(),
        }
    }

    #[test]
    fn budgets_are_positive_decimals_per_day_or_month() {
        let b = new_budget(json!("5.00"), "day")
            .budget(Currency::USD)
            .unwrap();
        assert_eq!(b.amount.atomic(), 5_000_000);
        assert_eq!(b.period, BudgetPeriod::Day);
        for (amount, period) in [
            (json!("0"), "day"),
            (json!(5), "day"),
            (json!("5.0000001"), "month"),
            (json!("5"), "week"),
            (json!("5"), "Day"),
        ] {
            let p = new_budget(amount, period)
                .budget(Currency::USD)
                .unwrap_err();
            assert_eq!(p.code, Code::InvalidBudget);
        }
    }

    #[test]
    fn per_minute_limits_are_1_to_63_bits() {
        assert_eq!(per_minute("tpm", None).unwrap(), None);
        assert_eq!(per_minute("tpm", Some(1)).unwrap(), Some(1));
        assert_eq!(
            per_minute("rpm", Some(MAX_PER_MINUTE)).unwrap(),
            Some(MAX_PER_MINUTE)
        );
        for bad in [0, MAX_PER_MINUTE + 1, u64::MAX] {
            assert_eq!(
                per_minute("rpm", Some(bad)).unwrap_err().code,
                Code::InvalidLimit
            );
        }
    }

    #[test]
    fn models_are_named_once_each_without_control_characters() {
        let ok = valid_models(vec!["gpt-4o".into(), "claude sonnet".into()]).unwrap();
        assert_eq!(ok.len(), 2);
        let many: Vec<String> = (0..=MAX_MODELS).map(|i| format!("m{i}")).collect();
        for bad in [
            vec![],
            vec![String::new()],
            vec!["a\nb".to_owned()],
            vec!["x".repeat(MAX_MODEL_NAME + 1)],
            vec!["a".to_owned(), "a".to_owned()],
            many,
        ] {
            assert_eq!(valid_models(bad).unwrap_err().code, Code::InvalidModels);
        }
        assert!(valid_models(vec!["é".repeat(MAX_MODEL_NAME)]).is_ok());
    }

    /// The OpenAPI document states these rules, so that schemathesis draws
    /// what the server takes: a model name is refused for control
    /// characters (`char::is_control`), which its pattern excludes.
    #[test]
    fn the_document_states_the_servers_rules() {
        let doc: Value = serde_json::from_str(include_str!("../openapi.json")).expect("JSON");
        let schemas = &doc["components"]["schemas"];
        let models = &schemas["NewKey"]["properties"]["models"];
        assert_eq!(models["maxItems"], MAX_MODELS);
        assert_eq!(models["minItems"], 1);
        assert_eq!(models["uniqueItems"], true);
        assert_eq!(models["items"]["maxLength"], MAX_MODEL_NAME);
        assert_eq!(
            models["items"]["pattern"],
            "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
        );
        // The pattern's two ranges are exactly the control characters.
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let excluded = c <= '\u{1f}' || ('\u{7f}'..='\u{9f}').contains(&c);
            assert_eq!(excluded, c.is_control(), "{c:?}");
        }
        for limit in ["tpm", "rpm"] {
            let schema = &schemas["NewKey"]["properties"][limit];
            assert_eq!(schema["minimum"], 1, "{limit}");
            assert_eq!(schema["maximum"], MAX_PER_MINUTE, "{limit}");
        }
        assert_eq!(
            schemas["NewBudget"]["properties"]["period"]["enum"],
            json!([BudgetPeriod::Day.as_str(), BudgetPeriod::Month.as_str()])
        );
    }
}
