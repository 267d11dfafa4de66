//! `POST /v1/chat/completions`, streamed and not.

use serde_json::{Value, json};

use crate::answer::{Answer, Ctx};
use crate::fields;
use crate::openai::{FINGERPRINT, cached_tokens};
use crate::problem::Problem;
use crate::script::Script;
use crate::turn::{Prompt, Turn};

/// What the request asked for besides the prompt.
struct Ask {
    model: String,
    stream: bool,
    include_usage: bool,
    cached: u64,
}

pub(crate) fn answer(body: &Value, ctx: &Ctx) -> Result<Answer, Problem> {
    let model = fields::model(body)?;
    let messages = fields::array(body, "messages")?;
    let max_tokens = match fields::count(body, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => fields::count(body, "max_tokens")?,
    };
    let stream = fields::flag(body, "stream")?;
    let include_usage = body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
    let turn = Turn::new(&prompt(messages, max_tokens));
    let ask = Ask {
        cached: cached_tokens(body, turn.prompt_tokens),
        model,
        stream,
        include_usage,
    };
    Ok(if ask.stream {
        streamed(&ask, &turn, ctx)
    } else {
        Answer::json(completion(&ask, &turn, ctx))
    })
}

fn prompt(messages: &[Value], max_tokens: Option<u64>) -> Prompt<'_> {
    let mut texts = Vec::new();
    let mut last_user = String::new();
    for message in messages {
        let start = texts.len();
        fields::content_texts(message.get("content"), &mut texts);
        if fields::role(message) == Some("user") {
            last_user = texts[start..].join("\n");
        }
    }
    Prompt {
        texts,
        last_user,
        max_tokens,
    }
}

fn finish_reason(turn: &Turn) -> &'static str {
    if turn.truncated { "length" } else { "stop" }
}

fn usage(ask: &Ask, turn: &Turn) -> Value {
    let (prompt, completion) = (turn.prompt_tokens, turn.output_tokens());
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": ask.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

fn completion(ask: &Ask, turn: &Turn, ctx: &Ctx) -> Value {
    json!({
        "id": format!("chatcmpl-{}", ctx.id),
        "object": "chat.completion",
        "created": ctx.created,
        "model": ask.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": turn.text(), "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": finish_reason(turn)
        }],
        "usage": usage(ask, turn),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT
    })
}

fn streamed(ask: &Ask, turn: &Turn, ctx: &Ctx) -> Answer {
    let mut script = Script::paced(fields::token_delay(&ask.model, ctx.token_delay));
    let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    let opening = json!({"role": "assistant", "content": "", "refusal": null});
    script.push(
        None,
        &chunk(ask, ctx, choice(opening, Value::Null), Value::Null),
    );
    for token in &turn.tokens {
        let delta = json!({"content": token});
        script.push_token(
            None,
            &chunk(ask, ctx, choice(delta, Value::Null), Value::Null),
        );
    }
    let finish = choice(json!({}), finish_reason(turn).into());
    script.push(None, &chunk(ask, ctx, finish, Value::Null));
    if ask.include_usage {
        script.push(None, &chunk(ask, ctx, json!([]), usage(ask, turn)));
    }
    script.push_raw("[DONE]");
    Answer::stream(script)
}

/// One `chat.completion.chunk`; `usage` appears only when the client asked
/// for it (null on all but the last chunk).
fn chunk(ask: &Ask, ctx: &Ctx, choices: Value, usage: Value) -> Value {
    let mut chunk = json!({
        "id": format!("chatcmpl-{}", ctx.id),
        "object": "chat.completion.chunk",
        "created": ctx.created,
        "model": ask.model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
        "choices": choices
    });
    if ask.include_usage {
        chunk["usage"] = usage;
    }
    chunk
}
