//! The Anthropic wire format: `POST /v1/messages`, streamed and not, and
//! `POST /v1/messages/count_tokens`. `input_tokens` excludes cache reads, as
//! Anthropic's does: with any `cache_control` in the request, half the prompt
//! is reported as read from the cache.

use serde_json::{Value, json};

use crate::answer::{Answer, Ctx};
use crate::fields;
use crate::problem::Problem;
use crate::script::Script;
use crate::turn::{Prompt, Turn};

/// What one message is about.
struct Exchange {
    model: String,
    turn: Turn,
    id: String,
    /// Prompt tokens reported as cache reads.
    cache_read: u64,
}

pub(crate) fn answer(body: &Value, ctx: &Ctx) -> Result<Answer, Problem> {
    let model = fields::model(body)?;
    let max_tokens = fields::count(body, "max_tokens")?
        .ok_or_else(|| Problem::bad("max_tokens: Field required"))?;
    let stream = fields::flag(body, "stream")?;
    let turn = Turn::new(&prompt(body, Some(max_tokens))?);
    let cache_read = if uses_cache(body) {
        turn.prompt_tokens / 2
    } else {
        0
    };
    let ex = Exchange {
        model,
        turn,
        id: format!("msg_{}", ctx.id),
        cache_read,
    };
    Ok(if stream {
        streamed(&ex, ctx)
    } else {
        Answer::json(message(&ex))
    })
}

/// `POST /v1/messages/count_tokens`.
pub(crate) fn count(body: &Value, _ctx: &Ctx) -> Result<Answer, Problem> {
    fields::model(body)?;
    let turn = Turn::new(&prompt(body, Some(0))?);
    Ok(Answer::json(json!({"input_tokens": turn.prompt_tokens})))
}

fn prompt(body: &Value, max_tokens: Option<u64>) -> Result<Prompt<'_>, Problem> {
    let messages = fields::array(body, "messages")?;
    let mut texts = Vec::new();
    fields::content_texts(body.get("system"), &mut texts);
    let mut last_user = String::new();
    for message in messages {
        let start = texts.len();
        fields::content_texts(message.get("content"), &mut texts);
        if fields::role(message) == Some("user") {
            last_user = texts[start..].join("\n");
        }
    }
    Ok(Prompt {
        texts,
        last_user,
        max_tokens,
    })
}

/// Whether any system or content block (or the request itself) asks for
/// prompt caching.
fn uses_cache(body: &Value) -> bool {
    let marked = |blocks: Option<&Value>| {
        blocks
            .and_then(Value::as_array)
            .is_some_and(|blocks| blocks.iter().any(|b| fields::present(b, "cache_control")))
    };
    fields::present(body, "cache_control")
        || marked(body.get("system"))
        || body
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(|messages| messages.iter().any(|m| marked(m.get("content"))))
}

fn stop_reason(ex: &Exchange) -> &'static str {
    if ex.turn.truncated {
        "max_tokens"
    } else {
        "end_turn"
    }
}

fn usage(ex: &Exchange, output_tokens: u64) -> Value {
    json!({
        "input_tokens": ex.turn.prompt_tokens - ex.cache_read,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": ex.cache_read,
        "output_tokens": output_tokens
    })
}

/// The message, finished (`content` and `stop_reason` set) or just started.
fn envelope(ex: &Exchange, content: Value, stop: Value, usage: Value) -> Value {
    json!({
        "id": ex.id,
        "type": "message",
        "role": "assistant",
        "model": ex.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage
    })
}

fn message(ex: &Exchange) -> Value {
    let content = json!([{"type": "text", "text": ex.turn.text()}]);
    envelope(
        ex,
        content,
        stop_reason(ex).into(),
        usage(ex, ex.turn.output_tokens()),
    )
}

/// The event sequence Anthropic streams: the message starts with one output
/// token counted, then one delta per token, then the final usage.
fn streamed(ex: &Exchange, ctx: &Ctx) -> Answer {
    let mut script = Script::paced(fields::token_delay(&ex.model, ctx.token_delay));
    let start = envelope(ex, json!([]), Value::Null, usage(ex, 1));
    script.push(
        Some("message_start"),
        &json!({"type": "message_start", "message": start}),
    );
    let block = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}});
    script.push(Some("content_block_start"), &block);
    script.push(Some("ping"), &json!({"type": "ping"}));
    for token in &ex.turn.tokens {
        let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}});
        script.push_token(Some("content_block_delta"), &delta);
    }
    script.push(
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    );
    let delta = json!({
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason(ex), "stop_sequence": null},
        "usage": usage(ex, ex.turn.output_tokens())
    });
    script.push(Some("message_delta"), &delta);
    script.push(Some("message_stop"), &json!({"type": "message_stop"}));
    Answer::stream(script)
}
