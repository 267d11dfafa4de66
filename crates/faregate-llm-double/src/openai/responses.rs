//! `POST /v1/responses`, streamed and not. The response object carries every
//! member the real API sends, so SDK models parse it without defaults.

use serde_json::{Value, json};

use crate::answer::{Answer, Ctx};
use crate::fields;
use crate::openai::cached_tokens;
use crate::problem::Problem;
use crate::script::Script;
use crate::turn::{Prompt, Turn};

/// What one response is about: the request, the turn and the ids.
struct Exchange<'a> {
    body: &'a Value,
    model: String,
    turn: Turn,
    created: u64,
    id: String,
    item_id: String,
}

pub(crate) fn answer(body: &Value, ctx: &Ctx) -> Result<Answer, Problem> {
    let model = fields::model(body)?;
    let max_tokens = fields::count(body, "max_output_tokens")?;
    let stream = fields::flag(body, "stream")?;
    let turn = Turn::new(&prompt(body, max_tokens)?);
    let ex = Exchange {
        body,
        model,
        turn,
        created: ctx.created,
        id: format!("resp_{}", ctx.id),
        item_id: format!("msg_{}", ctx.id),
    };
    Ok(if stream {
        streamed(&ex, ctx)
    } else {
        Answer::json(response(&ex, Phase::Done))
    })
}

fn prompt(body: &Value, max_tokens: Option<u64>) -> Result<Prompt<'_>, Problem> {
    let mut texts = Vec::new();
    if let Some(Value::String(instructions)) = body.get("instructions") {
        texts.push(instructions.as_str());
    }
    let mut last_user = String::new();
    match body.get("input") {
        None | Some(Value::Null) => {}
        Some(Value::String(input)) => {
            texts.push(input);
            last_user.clone_from(input);
        }
        Some(Value::Array(items)) => {
            for item in items {
                let start = texts.len();
                fields::content_texts(item.get("content"), &mut texts);
                if let Some(Value::String(output)) = item.get("output") {
                    texts.push(output);
                }
                if fields::role(item) == Some("user") {
                    last_user = texts[start..].join("\n");
                }
            }
        }
        Some(_) => {
            return Err(Problem::bad(
                "input: expected a string or an array of items",
            ));
        }
    }
    Ok(Prompt {
        texts,
        last_user,
        max_tokens,
    })
}

/// How far along a response object is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    InProgress,
    Done,
}

fn status(ex: &Exchange<'_>, phase: Phase) -> &'static str {
    match phase {
        Phase::InProgress => "in_progress",
        Phase::Done if ex.turn.truncated => "incomplete",
        Phase::Done => "completed",
    }
}

fn echo(ex: &Exchange<'_>, name: &str, default: Value) -> Value {
    ex.body
        .get(name)
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or(default)
}

fn response(ex: &Exchange<'_>, phase: Phase) -> Value {
    let done = phase == Phase::Done;
    let incomplete = (done && ex.turn.truncated).then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": ex.id,
        "object": "response",
        "created_at": ex.created,
        "status": status(ex, phase),
        "background": false,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": echo(ex, "instructions", Value::Null),
        "max_output_tokens": echo(ex, "max_output_tokens", Value::Null),
        "max_tool_calls": null,
        "model": ex.model,
        "output": if done { json!([message(ex, true)]) } else { json!([]) },
        "parallel_tool_calls": echo(ex, "parallel_tool_calls", true.into()),
        "previous_response_id": echo(ex, "previous_response_id", Value::Null),
        "prompt_cache_key": echo(ex, "prompt_cache_key", Value::Null),
        "reasoning": {"effort": null, "summary": null},
        "safety_identifier": null,
        "service_tier": "default",
        "store": echo(ex, "store", true.into()),
        "temperature": echo(ex, "temperature", json!(1.0)),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": echo(ex, "tool_choice", "auto".into()),
        "tools": echo(ex, "tools", json!([])),
        "top_logprobs": 0,
        "top_p": echo(ex, "top_p", json!(1.0)),
        "truncation": "disabled",
        "usage": if done { usage(ex) } else { Value::Null },
        "user": null,
        "metadata": echo(ex, "metadata", json!({}))
    })
}

fn usage(ex: &Exchange<'_>) -> Value {
    let (input, output) = (ex.turn.prompt_tokens, ex.turn.output_tokens());
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached_tokens(ex.body, input)},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output
    })
}

/// The output message, finished or just opened.
fn message(ex: &Exchange<'_>, done: bool) -> Value {
    let content = if done {
        json!([text_part(&ex.turn.text())])
    } else {
        json!([])
    };
    let status = if done { "completed" } else { "in_progress" };
    json!({"type": "message", "id": ex.item_id, "status": status, "role": "assistant", "content": content})
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The event sequence of a streamed response, numbered from 0.
fn streamed(ex: &Exchange<'_>, ctx: &Ctx) -> Answer {
    let mut events = Events {
        script: Script::paced(fields::token_delay(&ex.model, ctx.token_delay)),
        seq: 0,
    };
    let at = || json!({"item_id": ex.item_id, "output_index": 0, "content_index": 0});
    let in_progress = json!({"response": response(ex, Phase::InProgress)});
    events.push("response.created", in_progress.clone(), false);
    events.push("response.in_progress", in_progress, false);
    let item = json!({"output_index": 0, "item": message(ex, false)});
    events.push("response.output_item.added", item, false);
    let mut part = at();
    part["part"] = text_part("");
    events.push("response.content_part.added", part.clone(), false);
    for token in &ex.turn.tokens {
        let mut delta = at();
        delta["delta"] = token.as_str().into();
        delta["logprobs"] = json!([]);
        events.push("response.output_text.delta", delta, true);
    }
    let text = ex.turn.text();
    let mut done = at();
    done["text"] = text.as_str().into();
    done["logprobs"] = json!([]);
    events.push("response.output_text.done", done, false);
    part["part"] = text_part(&text);
    events.push("response.content_part.done", part, false);
    let item = json!({"output_index": 0, "item": message(ex, true)});
    events.push("response.output_item.done", item, false);
    let last = if ex.turn.truncated {
        "response.incomplete"
    } else {
        "response.completed"
    };
    events.push(last, json!({"response": response(ex, Phase::Done)}), false);
    Answer::stream(events.script)
}

/// Adds `type` and `sequence_number` to each event.
struct Events {
    script: Script,
    seq: u64,
}

impl Events {
    fn push(&mut self, kind: &str, mut data: Value, token: bool) {
        data["type"] = kind.into();
        data["sequence_number"] = self.seq.into();
        self.seq += 1;
        if token {
            self.script.push_token(Some(kind), &data);
        } else {
            self.script.push(Some(kind), &data);
        }
    }
}
