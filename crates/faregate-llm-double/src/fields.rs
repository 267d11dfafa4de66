//! Reading request bodies the way the providers do: typed fields with a 400
//! when they have the wrong shape, the texts a prompt carries, and the model
//! names that change the double's behaviour.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use crate::problem::Problem;

/// The extra pause per token for models whose name contains `slow`.
const SLOW_DELAY: Duration = Duration::from_millis(30);

/// The request's `model`, which must be a non-empty string. A `fail-NNN`
/// model (NNN from 400 to 599) refuses with that status here.
pub(crate) fn model(body: &Value) -> Result<String, Problem> {
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(Problem::bad("you must provide a model parameter"));
        }
        Some(_) => return Err(Problem::bad("model: expected a string")),
    };
    match simulated_failure(&model) {
        Some(status) => Err(Problem::Simulated(status)),
        None => Ok(model),
    }
}

fn simulated_failure(model: &str) -> Option<StatusCode> {
    let code: u16 = model.strip_prefix("fail-")?.parse().ok()?;
    (400..=599)
        .contains(&code)
        .then(|| StatusCode::from_u16(code).ok())
        .flatten()
}

/// The pause before each streamed token for `model`.
pub(crate) fn token_delay(model: &str, base: Duration) -> Duration {
    if model.contains("slow") {
        base.saturating_add(SLOW_DELAY)
    } else {
        base
    }
}

/// A boolean field; absent or null is `false`.
pub(crate) fn flag(body: &Value, name: &str) -> Result<bool, Problem> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Problem::bad(format!("{name}: expected a boolean"))),
    }
}

/// A non-negative integer field; absent or null is `None`.
pub(crate) fn count(body: &Value, name: &str) -> Result<Option<u64>, Problem> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| Problem::bad(format!("{name}: expected a non-negative integer"))),
    }
}

/// Whether `name` is present and not null.
pub(crate) fn present(body: &Value, name: &str) -> bool {
    body.get(name).is_some_and(|v| !v.is_null())
}

/// A required array field.
pub(crate) fn array<'a>(body: &'a Value, name: &str) -> Result<&'a [Value], Problem> {
    match body.get(name) {
        Some(Value::Array(items)) => Ok(items),
        None | Some(Value::Null) => Err(Problem::bad(format!("{name}: field required"))),
        Some(_) => Err(Problem::bad(format!("{name}: expected an array"))),
    }
}

/// Pushes the texts of a message content: a string, or parts (and tool
/// results) carrying `text` or a nested `content`.
pub(crate) fn content_texts<'a>(content: Option<&'a Value>, out: &mut Vec<&'a str>) {
    match content {
        Some(Value::String(s)) => out.push(s),
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(Value::String(s)) = part.get("text") {
                    out.push(s);
                }
                content_texts(part.get("content"), out);
            }
        }
        _ => {}
    }
}

/// The role of a message item (`None` when it has none).
pub(crate) fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fail_models_refuse_with_their_status() {
        assert!(
            matches!(model(&json!({"model": "fail-503"})), Err(Problem::Simulated(s)) if s == 503)
        );
        assert!(matches!(model(&json!({"model": "fail-200"})), Ok(m) if m == "fail-200"));
        assert!(model(&json!({"model": "fail-x"})).is_ok());
        assert!(matches!(model(&json!({})), Err(Problem::BadRequest(_))));
        assert!(matches!(
            model(&json!({"model": 3})),
            Err(Problem::BadRequest(_))
        ));
    }

    #[test]
    fn content_texts_reads_strings_parts_and_tool_results() {
        let content = json!([
            {"type": "text", "text": "a b"},
            {"type": "image_url", "image_url": {"url": "x"}},
            {"type": "tool_result", "content": [{"type": "text", "text": "c"}]},
            {"type": "tool_result", "content": "d"}
        ]);
        let mut out = Vec::new();
        content_texts(Some(&content), &mut out);
        assert_eq!(out, ["a b", "c", "d"]);
    }
}
