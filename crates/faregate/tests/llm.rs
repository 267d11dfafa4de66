//! The LLM gateway end to end: real HTTP through faregate to the provider
//! double (OpenAI and Anthropic wire formats), a real SQLite store, and
//! charges checked against the usage the provider reported × the catalog's
//! prices.

mod llm_support;

use std::time::Duration;

use faregate_core::{Currency, Money};
use faregate_testkit::raw;
use http::StatusCode;
use llm_support::{PRICES, Setup, sse_data};
use serde_json::{Value, json};

#[tokio::test]
async fn a_chat_completion_is_charged_its_reported_usage_and_says_so() {
    let s = Setup::start(1_000_000, "").await;
    let body = json!({"model": "test-model", "messages": [{"role": "user", "content": "Hello there, model!"}], "max_tokens": 50});
    let reply = s.post("/v1/chat/completions", &s.key, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let answer = reply.json();
    let usage = &answer["usage"];
    let expected = PRICES.cost(
        usage["prompt_tokens"].as_u64().unwrap(),
        0,
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(
        reply.header("faregate-cost"),
        Some(
            Money::from_atomic(expected, Currency::USD)
                .to_string()
                .as_str()
        )
    );
    // What the client got is what the provider sent: the double's reply for
    // this prompt (the catalog maps test-model to the same provider name).
    let direct = s.direct("/v1/chat/completions", &body).await;
    assert_eq!(answer["choices"], direct["choices"]);
    assert_eq!(answer["usage"], direct["usage"]);
    assert_eq!(s.charged().await, vec![expected]);
}

#[tokio::test]
async fn a_stream_without_include_usage_is_billed_and_the_usage_chunk_hidden() {
    let s = Setup::start(1_000_000, "").await;
    let body = json!({"model": "test-model", "stream": true, "messages": [{"role": "user", "content": "Stream me a few words"}], "max_tokens": 40});
    let reply = s.post("/v1/chat/completions", &s.key, &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    for e in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(e).unwrap();
        assert!(
            chunk.get("usage").is_none(),
            "the client never asked for usage: {e}"
        );
        assert_eq!(chunk["choices"].as_array().map(Vec::len), Some(1));
    }
    // The provider was asked for it.
    let stats = s.double_stats().await;
    assert_eq!(
        stats["last_body"]["stream_options"]["include_usage"],
        json!(true)
    );
    // Same events as a direct stream without usage (ids and times aside).
    let content: String = events[..events.len() - 1]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let direct = s
        .direct(
            "/v1/chat/completions",
            &json!({"model": "test-model", "messages": body["messages"], "max_tokens": 40}),
        )
        .await;
    assert_eq!(
        content,
        direct["choices"][0]["message"]["content"].as_str().unwrap()
    );
    let usage = &direct["usage"];
    let expected = PRICES.cost(
        usage["prompt_tokens"].as_u64().unwrap(),
        0,
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert!(
        text.ends_with(&format!(
            ": faregate-cost={}\n\n",
            Money::from_atomic(expected, Currency::USD)
        )),
        "{text}"
    );
    assert_eq!(s.charged().await, vec![expected]);
}

/// A stream whose events the provider sent at once (the double waits
/// nowhere between tokens) goes on to the caller in a few HTTP chunks, not
/// one per event: each chunk is a write, and a wake-up of the caller.
#[tokio::test]
async fn a_stream_sent_at_once_is_passed_on_in_a_few_writes() {
    let s = Setup::start(1_000_000, "").await;
    let body = json!({"model": "test-model", "stream": true, "messages": [{"role": "user", "content": "Stream me a few words"}], "max_tokens": 16}).to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        s.key,
        body.len()
    );
    let text = raw(s.gw.addr, request.as_bytes(), Duration::from_secs(10)).await;
    let (head, mut rest) = text.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let mut chunks = 0;
    let mut payload = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size, 16).expect("a hex chunk size");
        if size == 0 {
            break;
        }
        payload.push_str(&after[..size]);
        rest = &after[size + 2..];
        chunks += 1;
    }
    let events = sse_data(&payload);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(events.len() >= 10, "{payload}");
    assert!(
        chunks <= 3,
        "{chunks} chunks for {} events: {payload}",
        events.len()
    );
    assert!(
        payload.ends_with(" USD\n\n"),
        "the cost comment comes last: {payload}"
    );
}

#[tokio::test]
async fn a_stream_with_include_usage_keeps_its_usage_chunk() {
    let s = Setup::start(1_000_000, "").await;
    let body = json!({"model": "test-model", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Count with me"}], "max_tokens": 30, "prompt_cache_key": "k1"});
    let reply = s.post("/v1/chat/completions", &s.key, &body).await;
    let events = sse_data(&reply.text());
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    let usage = &usage_chunk["usage"];
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached > 0, "the double caches half a keyed prompt");
    let expected = PRICES.cost(
        usage["prompt_tokens"].as_u64().unwrap(),
        cached,
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(s.charged().await, vec![expected]);
}

#[tokio::test]
async fn embeddings_and_responses_are_billed_by_their_usage() {
    let s = Setup::start(1_000_000, "").await;
    let reply = s
        .post(
            "/v1/embeddings",
            &s.key,
            &json!({"model": "test-model", "input": ["one two three", "four"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let embedding_cost = PRICES.cost(
        reply.json()["usage"]["prompt_tokens"].as_u64().unwrap(),
        0,
        0,
    );
    let reply = s
        .post(
            "/v1/responses",
            &s.key,
            &json!({"model": "test-model", "input": "Write a line", "max_output_tokens": 20}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let u = &reply.json()["usage"];
    let response_cost = PRICES.cost(
        u["input_tokens"].as_u64().unwrap(),
        0,
        u["output_tokens"].as_u64().unwrap(),
    );
    let mut charged = s.charged().await;
    charged.sort_unstable();
    let mut expected = vec![embedding_cost, response_cost];
    expected.sort_unstable();
    assert_eq!(charged, expected);
}

#[tokio::test]
async fn anthropic_messages_are_billed_streamed_or_not() {
    let s = Setup::start(1_000_000, "").await;
    let body = json!({"model": "claude-test", "max_tokens": 30, "messages": [{"role": "user", "content": "Hi Claude"}]});
    let reply = s.post("/v1/messages", &s.key, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let u = &reply.json()["usage"];
    let whole = PRICES.cost(
        u["input_tokens"].as_u64().unwrap(),
        0,
        u["output_tokens"].as_u64().unwrap(),
    );
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let reply = s.post("/v1/messages", &s.key, &streamed).await;
    let text = reply.text();
    assert!(text.contains("event: message_stop"), "{text}");
    // The same prompt streamed uses the same tokens.
    assert!(
        text.ends_with(&format!(
            ": faregate-cost={}\n\n",
            Money::from_atomic(whole, Currency::USD)
        )),
        "{text}"
    );
    assert_eq!(s.charged().await, vec![whole, whole]);
}

#[tokio::test]
async fn a_failing_provider_is_skipped_before_any_byte_and_the_log_says_so() {
    let s = Setup::start(1_000_000, "").await;
    let body = json!({"model": "fallback-model", "messages": [{"role": "user", "content": "anyone there?"}], "max_tokens": 20});
    let reply = s.post("/v1/chat/completions", &s.key, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let line = s.gw.log_line(|l| l["route"] == "llm").await;
    let tried: Vec<&str> = line["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(tried, ["double/fail-503", "double/test-model"], "{line}");
    // Only one provider, failing: its error reaches the client, uncharged.
    let reply = s
        .post(
            "/v1/chat/completions",
            &s.key,
            &json!({"model": "broken-model", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(s.charged().await.len(), 1);
}

#[tokio::test]
async fn refusals_use_their_own_codes() {
    let s = Setup::start(10, "").await;
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10});
    // Not enough money for the worst case: 402 with the top-up hint.
    let reply = s
        .post("/v1/chat/completions", &s.key, &chat("test-model"))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        reply.text()
    );
    assert_eq!(reply.json()["code"], "insufficient_credits");
    let reply = s
        .post("/v1/chat/completions", &s.key, &chat("no-such-model"))
        .await;
    assert_eq!(
        (reply.status, reply.json()["code"].clone()),
        (StatusCode::NOT_FOUND, json!("model_not_found"))
    );
    let reply = s
        .post("/v1/chat/completions", "fg_live_nope", &chat("test-model"))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = s
        .post("/v1/chat/completions", &s.key, &json!("not an object"))
        .await;
    assert_eq!(
        (reply.status, reply.json()["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_body"))
    );
    let scoped = s
        .key_with(Some(vec!["claude-test".into()]), Default::default())
        .await;
    let reply = s
        .post("/v1/chat/completions", &scoped, &chat("test-model"))
        .await;
    assert_eq!(
        (reply.status, reply.json()["code"].clone()),
        (StatusCode::FORBIDDEN, json!("model_not_allowed"))
    );
    let models = s.get("/v1/models", &scoped).await.json();
    assert_eq!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].clone())
            .collect::<Vec<_>>(),
        [json!("claude-test")]
    );
    assert!(s.charged().await.is_empty());
}

#[tokio::test]
async fn a_prompt_template_is_its_own_priced_endpoint() {
    let extra = r#"
[[routes]]
name = "label"
path = "/api/label"
price = "0.001 USD"
prompt = { model = "test-model", system = "Answer in JSON.", template = 'say:{"label": "{{text}}", "n": {{n}}}', max_tokens = 50 }

[[routes]]
name = "echo"
path = "/api/echo"
price = "0.002 USD"
prompt = { model = "claude-test", template = "say:{{text}}", output = "text" }
"#;
    let s = Setup::start(1_000_000, extra).await;
    let reply = s
        .post("/api/label", &s.key, &json!({"text": "positive", "n": 3}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let answer = reply.json();
    // The model was asked the filled template and its answer is JSON.
    assert_eq!(answer["output"], json!({"label": "positive", "n": 3}));
    assert_eq!(answer["model"], "test-model");
    assert!(answer["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let asked = s.double_stats().await["last_body"].clone();
    assert_eq!(asked["messages"][0]["content"], "Answer in JSON.");
    assert_eq!(
        asked["messages"][1]["content"],
        r#"say:{"label": "positive", "n": 3}"#
    );
    // Through an Anthropic provider, as text.
    let reply = s
        .post("/api/echo", &s.key, &json!({"text": "hello there"}))
        .await;
    assert_eq!(reply.json()["output"], "hello there");
    // A member the template needs is missing: 400, nothing charged.
    let reply = s.post("/api/label", &s.key, &json!({"text": "x"})).await;
    assert_eq!(
        (reply.status, reply.json()["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_body"))
    );
    // Priced like any route: the route's price, not the tokens.
    assert_eq!(s.charged().await, vec![1_000, 2_000]);
    // No key: 401, as on any paid route.
    let anonymous = faregate_testkit::Client::http1()
        .send(
            http::Request::post(s.gw.url("/api/label"))
                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
                .unwrap(),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}
