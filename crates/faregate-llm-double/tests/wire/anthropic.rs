//! `POST /v1/messages` and `/v1/messages/count_tokens`.

use faregate_llm_double::{Options, count_tokens, reply_tokens};
use serde_json::json;

use crate::client::Double;

#[tokio::test]
async fn message_counts_system_and_messages() {
    let double = Double::start(Options::default()).await;
    let body = json!({
        "model": "claude-double", "max_tokens": 100, "system": "Be terse.",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": [{"type": "text", "text": "What now?"}]}
        ]
    });
    let v = double.post("/v1/messages", &body).await.json();
    let expected = reply_tokens("What now?", 100);
    let input = ["Be terse.", "Hi", "Hello!", "What now?"]
        .map(count_tokens)
        .iter()
        .sum::<u64>();
    assert_eq!(v["type"], "message");
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-double");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": expected.concat()}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], json!(null));
    assert_eq!(
        v["usage"],
        json!({
            "input_tokens": input, "output_tokens": expected.len(),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0
        })
    );
}

#[tokio::test]
async fn cache_control_moves_half_the_prompt_to_cache_reads() {
    let double = Double::start(Options::default()).await;
    let body = json!({
        "model": "c", "max_tokens": 2,
        "system": [{"type": "text", "text": "a b c d e f g", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "say:one two three"}]
    });
    let v = double.post("/messages", &body).await.json();
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["content"][0]["text"], "one two");
    assert_eq!(v["usage"]["cache_read_input_tokens"], 6);
    assert_eq!(v["usage"]["input_tokens"], 12 - 6);
    assert_eq!(v["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn stream_sends_anthropics_event_sequence() {
    let double = Double::start(Options::default()).await;
    let body = json!({"model": "c", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "say:Hi there"}]});
    let reply = double.post("/v1/messages", &body).await;
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = reply.events();
    let names: Vec<&str> = events
        .iter()
        .map(|(n, _)| n.as_deref().expect("event name"))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_deref().expect("name"));
    }
    let start = &events[0].1["message"];
    assert_eq!(start["usage"]["input_tokens"], 4);
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(start["content"], json!([]));
    assert_eq!(
        events[3].1["delta"],
        json!({"type": "text_delta", "text": "Hi"})
    );
    assert_eq!(events[4].1["delta"]["text"], " there");
    let delta = &events[6].1;
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(delta["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn count_tokens_and_missing_max_tokens() {
    let double = Double::start(Options::default()).await;
    let body =
        json!({"model": "c", "system": "x y", "messages": [{"role": "user", "content": "a b c"}]});
    let v = double.post("/v1/messages/count_tokens", &body).await.json();
    assert_eq!(v, json!({"input_tokens": 5}));
    let refused = double.post("/v1/messages", &body).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["type"], "error");
    assert_eq!(refused.json()["error"]["type"], "invalid_request_error");
}
