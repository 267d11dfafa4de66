//! LLM scopes and limits through the admin API: a key's `models`, `budget`,
//! `tpm` and `rpm`, an account's budget set and cleared, what the credits
//! rail's key directory then holds, and every refusal.

use faregate_core::{Budget, BudgetPeriod, Currency, Money};
use faregate_rails::KeyDirectory;
use serde_json::{Value, json};

use crate::harness::{Req, each_store};

fn issue(account: &str, body: &Value) -> Req {
    Req::post(&format!("/v1/accounts/{account}/keys")).json(body)
}

fn set_budget(account: &str, body: &Value) -> Req {
    Req::put(&format!("/v1/accounts/{account}/budget")).json(body)
}

fn clear_budget(account: &str) -> Req {
    Req::delete(&format!("/v1/accounts/{account}/budget"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_carry_models_budgets_and_per_minute_limits() {
    each_store(
        "keys_carry_models_budgets_and_per_minute_limits",
        async |admin| {
            let credits = admin.credits.clone().unwrap();
            let account = admin.account("USD").await;
            let body = json!({
                "models": ["gpt-4o", "claude-sonnet-4"],
                "budget": {"amount": "5.00", "period": "day"},
                "tpm": 100000,
                "rpm": 60,
            });
            let issued = admin.ok(issue(&account, &body), 201).await;
            assert_eq!(issued["models"], json!(["gpt-4o", "claude-sonnet-4"]));
            assert_eq!(
                issued["budget"],
                json!({"amount": "5.000000", "currency": "USD", "period": "day"})
            );
            assert_eq!(
                (issued["tpm"].clone(), issued["rpm"].clone()),
                (json!(100000), json!(60))
            );

            let key = issued["key"].as_str().unwrap();
            let found = credits.find(key).expect("the key works at once");
            assert!(found.may_use_model("gpt-4o") && !found.may_use_model("gpt-4o-mini"));
            let five_a_day = Budget {
                amount: Money::from_atomic(5_000_000, Currency::USD),
                period: BudgetPeriod::Day,
            };
            assert_eq!(found.limits.budget, Some(five_a_day));
            assert_eq!(
                (found.limits.tpm, found.limits.rpm),
                (Some(100_000), Some(60))
            );
            let id = issued["id"].as_str().unwrap();
            let stored = admin.store().key(id).await.unwrap().unwrap();
            assert_eq!(stored.limits, found.limits);

            // Unset members are null; a budget alone is fine.
            let plain = admin.ok(issue(&account, &json!({})), 201).await;
            for member in ["models", "budget", "tpm", "rpm"] {
                assert_eq!(plain[member], Value::Null, "{member}");
            }
            let nulls = json!({"models": null, "budget": null, "tpm": null, "rpm": null});
            admin.ok(issue(&account, &nulls), 201).await;
            let monthly = json!({"budget": {"amount": "100", "period": "month"}});
            let m = admin.ok(issue(&account, &monthly), 201).await;
            assert_eq!(m["budget"]["period"], "month");
            assert_eq!(m["tpm"], Value::Null);

            let listed = admin
                .ok(Req::get(&format!("/v1/accounts/{account}/keys")), 200)
                .await;
            let data = listed["data"].as_array().unwrap();
            assert_eq!(data.len(), 4);
            let first = data.iter().find(|k| k["id"] == issued["id"]).unwrap();
            for member in ["models", "budget", "tpm", "rpm"] {
                assert_eq!(first[member], issued[member], "{member}");
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_budgets_are_set_shown_and_cleared() {
    each_store("account_budgets_are_set_shown_and_cleared", async |admin| {
        let credits = admin.credits.clone().unwrap();
        let account = admin.account("EUR").await;
        let shown = admin
            .ok(Req::get(&format!("/v1/accounts/{account}")), 200)
            .await;
        assert_eq!(shown["budget"], Value::Null);

        let body = json!({"amount": "250.5", "period": "month"});
        let set = admin.ok(set_budget(&account, &body), 200).await;
        let budget = json!({"amount": "250.500000", "currency": "EUR", "period": "month"});
        assert_eq!(set["budget"], budget);
        assert_eq!(set["id"], account);
        let shown = admin
            .ok(Req::get(&format!("/v1/accounts/{account}")), 200)
            .await;
        assert_eq!(shown, set);
        let listed = admin.ok(Req::get("/v1/accounts"), 200).await;
        assert_eq!(listed["data"][0]["budget"], budget);
        let held = credits.account_budget(&account).expect("in memory at once");
        assert_eq!(held.amount.atomic(), 250_500_000);
        assert_eq!(held.period, BudgetPeriod::Month);
        let stored = admin.store().account(&account).await.unwrap().unwrap();
        assert_eq!(stored.budget, Some(held));

        // Replacing it.
        let body = json!({"amount": "1", "period": "day"});
        let set = admin.ok(set_budget(&account, &body), 200).await;
        assert_eq!(set["budget"]["period"], "day");
        assert_eq!(
            credits.account_budget(&account).unwrap().period,
            BudgetPeriod::Day
        );

        let cleared = admin.ok(clear_budget(&account), 200).await;
        assert_eq!(cleared["budget"], Value::Null);
        assert_eq!(credits.account_budget(&account), None);
        let again = admin.ok(clear_budget(&account), 200).await;
        assert_eq!(again, cleared);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_llm_limits_are_refused_and_nothing_is_written() {
    each_store(
        "bad_llm_limits_are_refused_and_nothing_is_written",
        async |admin| {
            let account = admin.account("USD").await;
            let many: Vec<String> = (0..257).map(|i| format!("m{i}")).collect();
            let budget = |amount: Value, period: &str| json!({"amount": amount, "period": period});
            for (body, code) in [
                (json!({"models": []}), "invalid_models"),
                (json!({"models": [""]}), "invalid_models"),
                (json!({"models": ["a\nb"]}), "invalid_models"),
                (json!({"models": ["a", "a"]}), "invalid_models"),
                (json!({"models": many}), "invalid_models"),
                (json!({"models": ["x".repeat(257)]}), "invalid_models"),
                (json!({"models": "gpt-4o"}), "invalid_body"),
                (json!({"models": [1]}), "invalid_body"),
                (
                    json!({"budget": budget(json!("0"), "day")}),
                    "invalid_budget",
                ),
                (
                    json!({"budget": budget(json!("-5"), "day")}),
                    "invalid_budget",
                ),
                (json!({"budget": budget(json!(5), "day")}), "invalid_budget"),
                (
                    json!({"budget": budget(json!("5.0000001"), "day")}),
                    "invalid_budget",
                ),
                (
                    json!({"budget": budget(json!("9223372036854.775808"), "day")}),
                    "invalid_budget",
                ),
                (
                    json!({"budget": budget(json!("5"), "week")}),
                    "invalid_budget",
                ),
                (json!({"budget": {"amount": "5"}}), "invalid_body"),
                (
                    json!({"budget": {"amount": "5", "period": "day", "currency": "USD"}}),
                    "invalid_body",
                ),
                (json!({"budget": "5.00/day"}), "invalid_body"),
                (json!({"tpm": 0}), "invalid_limit"),
                (json!({"rpm": 0}), "invalid_limit"),
                (
                    json!({"rpm": 9_223_372_036_854_775_808_u64}),
                    "invalid_limit",
                ),
                (json!({"tpm": -1}), "invalid_body"),
                (json!({"tpm": 1.5}), "invalid_body"),
                (json!({"tpm": "100"}), "invalid_body"),
                (json!({"tpm_limit": 100}), "invalid_body"),
            ] {
                admin.refuses(issue(&account, &body), 422, code).await;
            }

            for (body, code) in [
                (json!({"amount": "0", "period": "day"}), "invalid_budget"),
                (json!({"amount": 5, "period": "day"}), "invalid_budget"),
                (json!({"amount": "1e3", "period": "day"}), "invalid_budget"),
                (json!({"amount": "5", "period": "year"}), "invalid_budget"),
                (json!({"amount": "5", "period": "DAY"}), "invalid_budget"),
                (json!({"amount": "5"}), "invalid_body"),
                (json!({"period": "day"}), "invalid_body"),
                (
                    json!({"amount": "5", "period": "day", "x": 1}),
                    "invalid_body",
                ),
                (json!(null), "invalid_body"),
            ] {
                admin.refuses(set_budget(&account, &body), 422, code).await;
            }
            let ok = json!({"amount": "5", "period": "day"});
            admin
                .refuses(set_budget("acct_nobody", &ok), 404, "account_not_found")
                .await;
            admin
                .refuses(clear_budget("acct_nobody"), 404, "account_not_found")
                .await;
            admin
                .refuses(
                    Req::put(&format!("/v1/accounts/{account}/budget")),
                    415,
                    "unsupported_media_type",
                )
                .await;
            admin
                .refuses(
                    Req::put(&format!("/v1/accounts/{account}/budget"))
                        .raw("application/json", "{\"amount\":"),
                    400,
                    "malformed_body",
                )
                .await;
            // None of it reached the account either.
            let stored = admin.store().account(&account).await.unwrap().unwrap();
            assert_eq!(stored.budget, None);
        },
    )
    .await;
}
