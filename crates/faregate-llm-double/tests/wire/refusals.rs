//! Simulated failures, auth, bad input, limits, and the control endpoints.

use bytes::Bytes;
use faregate_llm_double::Options;
use serde_json::json;

use crate::client::Double;

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn fail_models_answer_their_status_in_each_format() {
    let double = Double::start(Options::default()).await;
    for code in [500u16, 503, 429, 400] {
        let reply = double
            .post("/v1/chat/completions", &chat(&format!("fail-{code}")))
            .await;
        assert_eq!(reply.status, code);
        let error = &reply.json()["error"];
        assert!(error["message"].is_string() && error["type"].is_string());
        assert!(error.get("param").is_some() && error.get("code").is_some());
        assert_eq!(reply.header("retry-after"), (code == 429).then_some("1"));
    }
    let mut body = chat("fail-529");
    body["max_tokens"] = 10.into();
    let reply = double.post("/v1/messages", &body).await;
    assert_eq!(reply.status, 529);
    assert_eq!(reply.json()["type"], "error");
    assert_eq!(reply.json()["error"]["type"], "overloaded_error");
    let limited = double
        .post(
            "/v1/messages",
            &json!({"model": "fail-429", "max_tokens": 1, "messages": []}),
        )
        .await;
    assert_eq!(limited.json()["error"]["type"], "rate_limit_error");
    assert_eq!(limited.header("retry-after"), Some("1"));
    let embed = double
        .post(
            "/v1/embeddings",
            &json!({"model": "fail-502", "input": "x"}),
        )
        .await;
    assert_eq!(embed.status, 502);
}

#[tokio::test]
async fn keys_are_checked_per_provider() {
    let double = Double::start(Options {
        api_key: Some("sk-test".into()),
        ..Options::default()
    })
    .await;
    let body = Bytes::from(chat("m").to_string());
    let none = double
        .send("POST", "/v1/chat/completions", &[], body.clone())
        .await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["code"], "invalid_api_key");
    let wrong = [("authorization", "Bearer sk-nope")];
    assert_eq!(
        double
            .send("POST", "/v1/chat/completions", &wrong, body.clone())
            .await
            .status,
        401
    );
    let right = [("authorization", "Bearer sk-test")];
    assert_eq!(
        double
            .send("POST", "/v1/chat/completions", &right, body.clone())
            .await
            .status,
        200
    );
    assert_eq!(
        double
            .send("GET", "/v1/models", &right, Bytes::new())
            .await
            .status,
        200
    );
    assert_eq!(
        double
            .send("GET", "/v1/models", &[], Bytes::new())
            .await
            .status,
        401
    );

    let mut message = chat("m");
    message["max_tokens"] = 5.into();
    let message = Bytes::from(message.to_string());
    let refused = double
        .send(
            "POST",
            "/v1/messages",
            &[("x-api-key", "sk-nope")],
            message.clone(),
        )
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["error"]["type"], "authentication_error");
    let good = [
        ("x-api-key", "sk-test"),
        ("anthropic-version", "2023-06-01"),
    ];
    assert_eq!(
        double
            .send("POST", "/v1/messages", &good, message.clone())
            .await
            .status,
        200
    );
    let bearer = [
        ("authorization", "Bearer sk-test"),
        ("anthropic-version", "2023-06-01"),
    ];
    assert_eq!(
        double
            .send("POST", "/v1/messages", &bearer, message)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn bad_input_is_a_400_in_the_providers_format() {
    let double = Double::start(Options::default()).await;
    let garbage = double
        .send(
            "POST",
            "/v1/chat/completions",
            &[],
            Bytes::from_static(b"{nope"),
        )
        .await;
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["error"]["type"], "invalid_request_error");
    let no_model = double
        .post("/v1/chat/completions", &json!({"messages": []}))
        .await;
    assert_eq!(no_model.status, 400);
    let no_messages = double
        .post("/v1/chat/completions", &json!({"model": "m"}))
        .await;
    assert_eq!(no_messages.status, 400);
    let anthropic = double
        .send("POST", "/v1/messages", &[], Bytes::from_static(b"[]"))
        .await;
    assert_eq!(anthropic.status, 400);
    assert_eq!(anthropic.json()["error"]["type"], "invalid_request_error");
    let stream = double
        .post(
            "/v1/chat/completions",
            &json!({"model": "m", "messages": [], "stream": "yes"}),
        )
        .await;
    assert_eq!(stream.status, 400);
}

#[tokio::test]
async fn oversized_bodies_and_unknown_paths() {
    let double = Double::start(Options::default()).await;
    let big = Bytes::from(vec![b' '; 8 * 1024 * 1024 + 1]);
    let reply = double.send("POST", "/v1/chat/completions", &[], big).await;
    assert_eq!(reply.status, 413);
    assert!(reply.json()["error"]["message"].is_string());
    let missing = double.post("/v1/nothing", &json!({})).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn models_list_and_stats() {
    let double = Double::start(Options::default()).await;
    let models = double.get("/v1/models").await.json();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["double-1", "double-2", "double-slow"]);
    assert_eq!(models["data"][0]["object"], "model");

    double.post("/_double/reset", &json!({})).await;
    double.post("/v1/chat/completions", &chat("fail-500")).await;
    let mut last = chat("double-1");
    last["stream"] = true.into();
    last["stream_options"] = json!({"include_usage": true});
    double.post("/chat/completions", &last).await;
    let stats = double.get("/_double/stats").await.json();
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["by_model"], json!({"fail-500": 1, "double-1": 1}));
    assert_eq!(stats["last_body"], last);
    double.post("/_double/reset", &json!({})).await;
    let stats = double.get("/_double/stats").await.json();
    assert_eq!(
        stats,
        json!({"requests": 0, "by_model": {}, "last_body": null})
    );
}

#[tokio::test]
async fn h2c_works_too() {
    let double = Double::with_client(Options::default(), true);
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "say:a b"}]});
    let reply = double.post("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.events().len(), 2 + 3);
}
