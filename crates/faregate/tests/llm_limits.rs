//! The LLM gateway under pressure: parallel streams against a balance that
//! covers only some of their worst cases, callers leaving mid-stream, and
//! the budgets and per-minute limits that answer 429 (never 402).

mod llm_support;

use std::sync::Arc;
use std::time::Duration;

use faregate_core::{Budget, BudgetPeriod, Currency, LlmLimits, Money};
use faregate_testkit::{Client, TestStore};
use http::StatusCode;
use http_body_util::BodyExt as _;
use llm_support::{PRICES, Setup, sse_data};
use serde_json::{Value, json};

/// The reservation of a chat body: its input estimate and `max_tokens`.
fn worst_case(body: &Value) -> u64 {
    let input = faregate_llm::input_tokens(body);
    PRICES.cost(input, 0, body["max_tokens"].as_u64().unwrap())
}

#[tokio::test]
async fn a_hundred_parallel_streams_never_spend_more_than_the_balance() {
    for test_store in TestStore::each("llm_parallel_streams").await {
        let backend = test_store.backend;
        let body = |i: usize| {
            json!({"model": "slow-model", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": format!("parallel request {i:03}")}], "max_tokens": 100})
        };
        // Every body has the same size, so the same worst case.
        let worst = worst_case(&body(0));
        let top_up = 10 * worst;
        let s = Arc::new(Setup::start_on(test_store, top_up, "").await);
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    Client::http1()
                        .send(s.request("/v1/chat/completions", &s.key, &body(i)))
                        .await
                })
            })
            .collect();
        let mut true_charges = 0;
        let (mut served, mut refused) = (0, 0);
        for task in tasks {
            let reply = task.await.unwrap();
            match reply.status {
                StatusCode::OK => {
                    served += 1;
                    let events = sse_data(&reply.text());
                    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
                    let u = &usage["usage"];
                    true_charges += PRICES.cost(
                        u["prompt_tokens"].as_u64().unwrap(),
                        0,
                        u["completion_tokens"].as_u64().unwrap(),
                    );
                }
                StatusCode::PAYMENT_REQUIRED => {
                    refused += 1;
                    assert_eq!(reply.json()["code"], "insufficient_credits");
                }
                other => panic!("{backend}: unexpected {other}: {}", reply.text()),
            }
        }
        assert!(
            served >= 10,
            "{backend}: ten worst cases fit, {served} served"
        );
        assert_eq!(served + refused, 100);
        let charged = s.charged().await;
        assert_eq!(
            charged.len(),
            served,
            "{backend}: one charge per served stream"
        );
        let spent: u64 = charged.iter().sum();
        assert_eq!(
            spent, true_charges,
            "{backend}: each charge is its stream's usage × price"
        );
        assert!(spent <= top_up, "{backend}: spent {spent} of {top_up}");
        assert_eq!(
            s.balance().await,
            i64::try_from(top_up - spent).unwrap(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_caller_leaving_mid_stream_pays_for_what_was_delivered() {
    let s = Setup::start(1_000_000, "").await;
    let body = json!({"model": "slow-model", "stream": true, "messages": [{"role": "user", "content": "a long answer please"}], "max_tokens": 200});
    let response = Client::http1()
        .stream(s.request("/v1/chat/completions", &s.key, &body))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body_stream = response.into_body();
    let mut got = String::new();
    while sse_data(&got).len() < 4 {
        let frame = body_stream.frame().await.unwrap().unwrap();
        if let Ok(data) = frame.into_data() {
            got.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    drop(body_stream);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let charged = s.charged().await;
    assert_eq!(charged.len(), 1, "a delivered stream is never free");
    let input_only = PRICES.cost(faregate_llm::input_tokens(&body), 0, 0);
    assert!(
        charged[0] > input_only,
        "the delivered tokens are charged: {charged:?}"
    );
    assert!(
        charged[0] < worst_case(&body),
        "only what was delivered: {charged:?}"
    );
}

#[tokio::test]
async fn budgets_and_minute_limits_answer_429_with_their_codes() {
    let s = Setup::start(1_000_000, "").await;
    let chat = json!({"model": "test-model", "messages": [{"role": "user", "content": "budget"}], "max_tokens": 100});
    let worst = worst_case(&chat);
    // A key whose daily budget covers one worst case and a unit more.
    let budget = Budget {
        amount: Money::from_atomic(worst + 1, Currency::USD),
        period: BudgetPeriod::Day,
    };
    let key = s
        .key_with(
            None,
            LlmLimits {
                budget: Some(budget),
                ..LlmLimits::default()
            },
        )
        .await;
    let first = s.post("/v1/chat/completions", &key, &chat).await;
    assert_eq!(first.status, StatusCode::OK);
    // Its true cost is below the worst case, but what is left is not a
    // whole worst case: refused before anything is reserved.
    let second = s.post("/v1/chat/completions", &key, &chat).await;
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        second.text()
    );
    assert_eq!(second.json()["code"], "budget_exhausted");
    let retry: u64 = second.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    // Requests per minute.
    let key = s
        .key_with(
            None,
            LlmLimits {
                rpm: Some(2),
                ..LlmLimits::default()
            },
        )
        .await;
    for _ in 0..2 {
        assert_eq!(
            s.post("/v1/chat/completions", &key, &chat).await.status,
            StatusCode::OK
        );
    }
    let third = s.post("/v1/chat/completions", &key, &chat).await;
    assert_eq!(
        (third.status, third.json()["code"].clone()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            json!("requests_per_minute_exceeded")
        )
    );
    assert!(third.header("retry-after").is_some());
    // Tokens per minute: the first call uses more than the limit.
    let key = s
        .key_with(
            None,
            LlmLimits {
                tpm: Some(5),
                ..LlmLimits::default()
            },
        )
        .await;
    assert_eq!(
        s.post("/v1/chat/completions", &key, &chat).await.status,
        StatusCode::OK
    );
    let over = s.post("/v1/chat/completions", &key, &chat).await;
    assert_eq!(
        (over.status, over.json()["code"].clone()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            json!("tokens_per_minute_exceeded")
        )
    );
    // None of the refusals was charged: four calls served.
    assert_eq!(s.charged().await.len(), 4);
}

#[tokio::test]
async fn an_account_budget_from_the_config_binds_every_key() {
    let chat = json!({"model": "test-model", "messages": [{"role": "user", "content": "budget"}], "max_tokens": 100});
    let worst = worst_case(&chat);
    let budget = Money::from_atomic(worst + 1, Currency::USD);
    let extra = format!(
        "\n[llm.limits]\naccount_budget = \"{budget} /month\"\n",
        budget = budget.decimal_string()
    );
    let s = Setup::start(1_000_000, &extra).await;
    let other = s.key_with(None, LlmLimits::default()).await;
    assert_eq!(
        s.post("/v1/chat/completions", &s.key, &chat).await.status,
        StatusCode::OK
    );
    let refused = s.post("/v1/chat/completions", &other, &chat).await;
    assert_eq!(
        refused.json()["code"],
        "budget_exhausted",
        "{}",
        refused.text()
    );
}
