//! `POST /v1/responses`.

use faregate_llm_double::{Options, count_tokens, reply_tokens};
use serde_json::json;

use crate::client::Double;

#[tokio::test]
async fn response_counts_instructions_and_input() {
    let double = Double::start(Options::default()).await;
    let body = json!({"model": "double-2", "instructions": "Be kind.", "input": "Tell me a story"});
    let v = double.post("/v1/responses", &body).await.json();
    let expected = reply_tokens("Tell me a story", u64::MAX);
    let input = count_tokens("Be kind.") + count_tokens("Tell me a story");
    assert_eq!(v["object"], "response");
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("resp_")));
    assert_eq!(v["status"], "completed");
    assert_eq!(v["incomplete_details"], json!(null));
    assert_eq!(v["instructions"], "Be kind.");
    assert_eq!(v["model"], "double-2");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(v["output"][0]["content"][0]["text"], expected.concat());
    assert_eq!(v["usage"]["input_tokens"], input);
    assert_eq!(v["usage"]["output_tokens"], expected.len());
    assert_eq!(v["usage"]["total_tokens"], input + expected.len() as u64);
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 0);
    for member in [
        "parallel_tool_calls",
        "tool_choice",
        "tools",
        "error",
        "metadata",
        "temperature",
        "top_p",
    ] {
        assert!(v.get(member).is_some(), "{member}");
    }
}

#[tokio::test]
async fn item_input_and_max_output_tokens_make_it_incomplete() {
    let double = Double::start(Options::default()).await;
    let body = json!({
        "model": "m", "max_output_tokens": 2, "prompt_cache_key": "c",
        "input": [
            {"role": "developer", "content": "rules here"},
            {"role": "user", "content": [{"type": "input_text", "text": "say:x y z"}]}
        ]
    });
    let v = double.post("/responses", &body).await.json();
    assert_eq!(v["status"], "incomplete");
    assert_eq!(
        v["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(v["output"][0]["content"][0]["text"], "x y");
    assert_eq!(v["usage"]["input_tokens"], 2 + 5);
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 3);
}

#[tokio::test]
async fn stream_sends_the_event_sequence_and_the_usage() {
    let double = Double::start(Options::default()).await;
    let body = json!({"model": "m", "stream": true, "input": "say:Hello, world"});
    let reply = double.post("/v1/responses", &body).await;
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = reply.events();
    let names: Vec<&str> = events
        .iter()
        .map(|(n, _)| n.as_deref().expect("event name"))
        .collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_deref().expect("name"));
        assert_eq!(data["sequence_number"], i);
    }
    let deltas: String = events[4..7]
        .iter()
        .map(|(_, d)| d["delta"].as_str().expect("delta"))
        .collect();
    assert_eq!(deltas, "Hello, world");
    assert_eq!(events[7].1["text"], "Hello, world");
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    let done = &events[10].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello, world");
    assert_eq!(
        done["usage"]["input_tokens"],
        count_tokens("say:Hello, world")
    );
    assert_eq!(done["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn a_cut_stream_ends_with_response_incomplete() {
    let double = Double::start(Options::default()).await;
    let body = json!({"model": "m", "stream": true, "max_output_tokens": 1, "input": "anything"});
    let events = double.post("/v1/responses", &body).await.events();
    let (name, last) = events.last().expect("events");
    assert_eq!(name.as_deref(), Some("response.incomplete"));
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(last["response"]["usage"]["output_tokens"], 1);
}
