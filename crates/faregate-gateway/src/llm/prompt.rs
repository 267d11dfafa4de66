//! Prompt APIs and the model list. A route with a `prompt` publishes one
//! template as an endpoint: the caller posts a JSON object, its members fill
//! the template's `{{name}}` placeholders, the model answers, and the caller
//! gets the answer as JSON. The route is priced and paid like any route.

use std::sync::Arc;

use bytes::Bytes;
use faregate_core::{Decision, Problem, ProblemCode};
use faregate_rails::ApiKey;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::provider;
use crate::body::ResponseBody;
use crate::config::Route;
use crate::config::llm::{ModelTarget, Prompt, ProviderKind};
use crate::identify::Caller;
use crate::pipeline::Ctx;

static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// `GET …/models`: the models (and aliases) this key may use, in OpenAI's
/// list shape.
pub(super) fn models(ctx: &Ctx, key: &ApiKey) -> Response<ResponseBody> {
    let data: Vec<Value> = ctx
        .snap
        .config
        .llm
        .models
        .iter()
        .flat_map(|m| std::iter::once(&m.name).chain(&m.aliases))
        .filter(|name| key.may_use_model(name))
        .map(|name| json!({"id": name, "object": "model", "created": 0, "owned_by": "faregate"}))
        .collect();
    json_response(&json!({"object": "list", "data": data}))
}

pub(super) async fn serve(
    ctx: &mut Ctx,
    route: &Arc<Route>,
    prompt: &Prompt,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Problem> {
    if req.method() != Method::POST {
        return Err(
            Problem::new(ProblemCode::MethodNotAllowed, "post a JSON object")
                .with_extension("allow", json!(["POST"])),
        );
    }
    let (parts, body) = req.into_parts();
    let head = Request::from_parts(parts, ());
    // Who pays comes first: a caller without a key learns that before
    // anything about its body. A refused body releases the hold unpaid.
    let price = crate::price::price(route, &head);
    match crate::authorize::authorize(ctx, route, caller, price, &head).await {
        Decision::Allow(hold) => ctx.hold = crate::settle::PendingHold::new(hold, &ctx.gw),
        Decision::PaymentRequired(challenge) => {
            return Ok(crate::respond::challenge(ctx, challenge));
        }
        Decision::Deny(problem) => return Err(problem),
    }
    let body = super::read_body(ctx, route, body).await?;
    let input: Map<String, Value> = serde_json::from_slice(&body)
        .map_err(|e| Problem::new(ProblemCode::InvalidBody, format!("post a JSON object: {e}")))?;
    let filled = fill(prompt, &input)?;
    let snap = ctx.snap.clone();
    let settings = &snap.config.llm;
    let targets: Vec<&ModelTarget> = prompt.model.targets.iter().collect();
    // One endpoint per call: the first provider's kind decides it, and
    // only providers of that kind are tried.
    let kind = settings.providers[targets[0].provider].kind;
    let targets: Vec<&ModelTarget> = targets
        .into_iter()
        .filter(|t| settings.providers[t.provider].kind == kind)
        .collect();
    let body_for = |target: &ModelTarget| request_body(kind, prompt, &target.model, &filled);
    let path = match kind {
        ProviderKind::OpenAi => "/chat/completions",
        ProviderKind::Anthropic => "/messages",
    };
    let answer = provider::call(
        ctx,
        route,
        settings,
        &targets,
        path,
        &head.headers().clone(),
        &body_for,
    )
    .await?;
    let status = answer.response.status();
    if !status.is_success() {
        ctx.upstream_status = None;
        return Err(Problem::new(
            ProblemCode::UpstreamUnreachable,
            format!("the model's provider answered {status}"),
        ));
    }
    let bytes = super::read_answer(ctx, route, answer.response.into_body(), answer.lease).await?;
    let (text, usage) = answer_text(kind, &bytes).ok_or_else(|| {
        ctx.upstream_status = None;
        Problem::new(
            ProblemCode::UpstreamUnreachable,
            "the model's provider sent an answer without text",
        )
    })?;
    let output = if prompt.json {
        parse_json_answer(&text).ok_or_else(|| {
            ctx.upstream_status = None;
            Problem::new(
                ProblemCode::UpstreamUnreachable,
                "the model's answer was not the JSON this endpoint promises; nothing was charged",
            )
        })?
    } else {
        Value::String(text)
    };
    let response = json_response(&json!({
        "output": output,
        "model": &*prompt.model.name,
        "usage": usage,
    }));
    crate::settle::before_head(ctx, response).await
}

/// The template with the caller's members in it.
fn fill(prompt: &Prompt, input: &Map<String, Value>) -> Result<String, Problem> {
    let mut out = prompt.template.clone();
    for name in &prompt.fields {
        let value = input.get(name).ok_or_else(|| {
            Problem::new(
                ProblemCode::InvalidBody,
                format!(
                    "'{name}' is missing; this endpoint takes {:?}",
                    prompt.fields
                ),
            )
        })?;
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // Placeholders may be written with inner spaces: `{{ name }}`.
        out = replace_placeholder(&out, name, &text);
    }
    Ok(out)
}

fn replace_placeholder(template: &str, name: &str, value: &str) -> String {
    let mut out = String::with_capacity(template.len() + value.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        out.push_str(&rest[..open]);
        if after[..close].trim() == name {
            out.push_str(value);
        } else {
            out.push_str(&rest[open..open + 2 + close + 2]);
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

fn request_body(kind: ProviderKind, prompt: &Prompt, model: &str, user: &str) -> Bytes {
    let body = match kind {
        ProviderKind::OpenAi => {
            let mut messages = Vec::new();
            if let Some(system) = &prompt.system {
                messages.push(json!({"role": "system", "content": system}));
            }
            messages.push(json!({"role": "user", "content": user}));
            json!({"model": model, "messages": messages, "max_tokens": prompt.max_tokens})
        }
        ProviderKind::Anthropic => {
            let mut body = json!({
                "model": model,
                "max_tokens": prompt.max_tokens,
                "messages": [{"role": "user", "content": user}],
            });
            if let Some(system) = &prompt.system {
                body["system"] = json!(system);
            }
            body
        }
    };
    Bytes::from(body.to_string())
}

/// The answer's text and a `{input_tokens, output_tokens}` usage.
fn answer_text(kind: ProviderKind, body: &[u8]) -> Option<(String, Value)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    match kind {
        ProviderKind::OpenAi => {
            let text = v["choices"][0]["message"]["content"].as_str()?.to_owned();
            let usage = json!({
                "input_tokens": v["usage"]["prompt_tokens"],
                "output_tokens": v["usage"]["completion_tokens"],
            });
            Some((text, usage))
        }
        ProviderKind::Anthropic => {
            let text: String = v["content"]
                .as_array()?
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect();
            let usage = json!({
                "input_tokens": v["usage"]["input_tokens"],
                "output_tokens": v["usage"]["output_tokens"],
            });
            Some((text, usage))
        }
    }
}

/// The answer as JSON, allowing the Markdown fence models like to add.
fn parse_json_answer(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(inner.trim()).ok()
}

fn json_response(value: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(value.to_string()));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, APPLICATION_JSON.clone());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_with_or_without_inner_spaces() {
        assert_eq!(
            replace_placeholder("Rate {{text}} and {{ text }}; keep {{other}}", "text", "x"),
            "Rate x and x; keep {{other}}"
        );
    }

    #[test]
    fn json_answers_may_come_fenced() {
        assert_eq!(
            parse_json_answer("```json\n{\"a\":1}\n```"),
            Some(json!({"a": 1}))
        );
        assert_eq!(parse_json_answer(" [1,2] "), Some(json!([1, 2])));
        assert_eq!(parse_json_answer("not json"), None);
    }
}
