//! `POST /v1/chat/completions`.

use std::time::Duration;

use faregate_llm_double::{Options, count_tokens, reply_tokens};
use serde_json::json;

use crate::client::Double;

#[tokio::test]
async fn completion_usage_is_the_token_count_of_every_text() {
    let double = Double::start(Options::default()).await;
    let body = json!({
        "model": "double-1",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "What is a fare?"}, {"type": "text", "text": "Be brief."}]}
        ]
    });
    let reply = double.post("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let v = reply.json();
    let expected = reply_tokens("What is a fare?\nBe brief.", u64::MAX);
    let prompt = count_tokens("You are terse.")
        + count_tokens("What is a fare?")
        + count_tokens("Be brief.");
    assert_eq!(v["object"], "chat.completion");
    assert!(
        v["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
    assert_eq!(v["model"], "double-1");
    assert_eq!(v["choices"][0]["message"]["content"], expected.concat());
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], prompt);
    assert_eq!(v["usage"]["completion_tokens"], expected.len());
    assert_eq!(v["usage"]["total_tokens"], prompt + expected.len() as u64);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(v["service_tier"], "default");
}

#[tokio::test]
async fn say_fixes_the_reply_and_max_tokens_cuts_it() {
    let double = Double::start(Options::default()).await;
    let ask = |max: &str, n: u64| {
        let mut body =
            json!({"model": "m", "messages": [{"role": "user", "content": "say:one two, three"}]});
        body[max] = n.into();
        body
    };
    let full = double
        .post("/chat/completions", &ask("max_tokens", 10))
        .await
        .json();
    assert_eq!(full["choices"][0]["message"]["content"], "one two, three");
    assert_eq!(full["choices"][0]["finish_reason"], "stop");
    assert_eq!(full["usage"]["completion_tokens"], 4);
    let cut = double
        .post("/v1/chat/completions", &ask("max_completion_tokens", 2))
        .await
        .json();
    assert_eq!(cut["choices"][0]["message"]["content"], "one two");
    assert_eq!(cut["choices"][0]["finish_reason"], "length");
    assert_eq!(cut["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn prompt_cache_key_reports_half_the_prompt_cached() {
    let double = Double::start(Options::default()).await;
    let body = json!({"model": "m", "prompt_cache_key": "k", "messages": [{"role": "user", "content": "a b c d e"}]});
    let v = double.post("/v1/chat/completions", &body).await.json();
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
}

#[tokio::test]
async fn stream_with_usage_ends_with_a_usage_chunk_and_done() {
    let double = Double::start(Options::default()).await;
    let body = json!({
        "model": "double-1", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hello there"}]
    });
    let reply = double.post("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = reply.events();
    let expected = reply_tokens("hello there", u64::MAX);
    assert_eq!(events.len(), expected.len() + 4);
    assert!(events.iter().all(|(name, _)| name.is_none()));
    let chunks: Vec<_> = events.iter().map(|(_, data)| data).collect();
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    let text: String = chunks[1..=expected.len()]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().expect("token"))
        .collect();
    assert_eq!(text, expected.concat());
    let finish = chunks[expected.len() + 1];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    for chunk in &chunks[..=expected.len() + 1] {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert!(chunk["usage"].is_null() && chunk.get("usage").is_some());
    }
    let usage = chunks[expected.len() + 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 2);
    assert_eq!(usage["usage"]["completion_tokens"], expected.len());
    assert_eq!(*chunks[expected.len() + 3], "[DONE]");
}

#[tokio::test]
async fn stream_without_usage_has_no_usage_member() {
    let double = Double::start(Options::default()).await;
    let body = json!({"model": "m", "stream": true, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]});
    let events = double.post("/v1/chat/completions", &body).await.events();
    assert_eq!(events.len(), 3 + 3);
    assert!(events[..5].iter().all(|(_, c)| c.get("usage").is_none()));
    assert_eq!(events[4].1["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn tokens_arrive_one_frame_at_a_time_with_the_delay() {
    let delay = Duration::from_millis(15);
    let double = Double::start(Options {
        api_key: None,
        token_delay: delay,
    })
    .await;
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "say:a b c d"}]});
    let reply = double.post("/v1/chat/completions", &body).await;
    assert!(reply.frames.len() >= 4, "{:?}", reply.frames);
    assert!(
        reply.frames.last().is_some_and(|t| *t >= delay * 4),
        "{:?}",
        reply.frames
    );
    let slow = json!({"model": "double-slow", "stream": true, "messages": [{"role": "user", "content": "say:a b c"}]});
    let reply = double.post("/v1/chat/completions", &slow).await;
    assert!(
        reply
            .frames
            .last()
            .is_some_and(|t| *t >= (delay + Duration::from_millis(30)) * 3)
    );
}
