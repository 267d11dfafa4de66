//! A conservative input-token estimate and the output cap, for reservations.
//!
//! Before forwarding, the gateway reserves the worst case; it charges only
//! the provider's reported usage afterwards. So this estimate only has to be
//! cheap and **not below** the truth: it counts the bytes of every string in
//! the prompt-bearing members, divides by [`BYTES_PER_TOKEN`] rounding up
//! (real tokenizers average about four bytes of English per token and never
//! fewer than one byte), and adds [`MESSAGE_OVERHEAD`] tokens per message and
//! [`REQUEST_OVERHEAD`] per request for the role markers providers add.
//! Numbers (pre-tokenized embeddings input) count one token each. Images sent
//! as base64 are counted as text, which over-reserves them heavily.

use serde_json::Value;

/// Bytes per token assumed by the estimate; below the real average.
pub const BYTES_PER_TOKEN: u64 = 3;

/// Tokens added per message or input item for role and separator markers.
pub const MESSAGE_OVERHEAD: u64 = 4;

/// Tokens added per request for the reply primer.
pub const REQUEST_OVERHEAD: u64 = 3;

/// Top-level members that carry prompt text across the supported APIs:
/// OpenAI chat `messages`, responses `input` and `instructions`, embeddings
/// `input`, Anthropic `messages` and `system`, and tool definitions.
const PROMPT_MEMBERS: &[&str] = &[
    "messages",
    "input",
    "instructions",
    "system",
    "prompt",
    "tools",
    "functions",
    "tool_choice",
    "response_format",
    "text",
];

/// Members naming the client's output cap, in the order they are honoured:
/// chat `max_completion_tokens` (which replaced `max_tokens`), chat and
/// Anthropic `max_tokens`, responses `max_output_tokens`.
const OUTPUT_CAPS: &[&str] = &["max_completion_tokens", "max_tokens", "max_output_tokens"];

/// Estimated input tokens of a parsed request body; an over-estimate meant
/// only for reserving funds.
pub fn input_tokens(body: &Value) -> u64 {
    let mut counts = Counts::default();
    for member in PROMPT_MEMBERS {
        if let Some(value) = body.get(member) {
            if let Value::Array(items) = value {
                counts.messages = counts.messages.saturating_add(len_u64(items.len()));
            }
            counts.add(value);
        }
    }
    counts
        .bytes
        .div_ceil(BYTES_PER_TOKEN)
        .saturating_add(counts.numbers)
        .saturating_add(counts.messages.saturating_mul(MESSAGE_OVERHEAD))
        .saturating_add(REQUEST_OVERHEAD)
}

/// The most output tokens this request can produce: the client's cap when it
/// set one below `model_limit`, else `model_limit`.
pub fn max_output(body: &Value, model_limit: u64) -> u64 {
    OUTPUT_CAPS
        .iter()
        .find_map(|name| body.get(name).and_then(Value::as_u64))
        .map_or(model_limit, |cap| cap.min(model_limit))
}

#[derive(Debug, Default)]
struct Counts {
    bytes: u64,
    numbers: u64,
    messages: u64,
}

impl Counts {
    fn add(&mut self, value: &Value) {
        match value {
            Value::String(s) => self.bytes = self.bytes.saturating_add(len_u64(s.len())),
            Value::Number(_) => self.numbers = self.numbers.saturating_add(1),
            Value::Array(items) => items.iter().for_each(|v| self.add(v)),
            Value::Object(members) => {
                for (key, v) in members {
                    // Keys such as "role" or "type" cost about as much as text.
                    self.bytes = self.bytes.saturating_add(len_u64(key.len()));
                    self.add(v);
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_chat_messages_with_overhead() {
        let body = json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello there!"}
            ]
        });
        // Keys: role content role content = 4+7+4+7 = 22; values: 6+9+4+12 = 31.
        assert_eq!(input_tokens(&body), 53u64.div_ceil(3) + 2 * 4 + 3);
    }

    #[test]
    fn covers_every_api_shape() {
        let responses = json!({"model": "m", "instructions": "abc", "input": "abcdef"});
        assert_eq!(input_tokens(&responses), 3 + 3);
        let embeddings = json!({"model": "m", "input": [[1, 2, 3], [4]]});
        assert_eq!(input_tokens(&embeddings), 4 + 2 * 4 + 3);
        let anthropic = json!({
            "model": "claude", "max_tokens": 1024, "system": "abc",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        });
        // system 3; keys role content type text 4+7+4+4; values user text hi 4+4+2.
        assert_eq!(input_tokens(&anthropic), 32u64.div_ceil(3) + 4 + 3);
        assert_eq!(input_tokens(&json!({})), REQUEST_OVERHEAD);
    }

    #[test]
    fn never_below_one_token_per_four_bytes_of_text() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(50);
        let body = json!({"messages": [{"role": "user", "content": text}]});
        assert!(input_tokens(&body) >= u64::try_from(text.len()).unwrap() / 4);
    }

    #[test]
    fn output_cap_prefers_the_client_then_the_model() {
        assert_eq!(max_output(&json!({"max_tokens": 100}), 4096), 100);
        assert_eq!(
            max_output(
                &json!({"max_completion_tokens": 50, "max_tokens": 100}),
                4096
            ),
            50
        );
        assert_eq!(max_output(&json!({"max_output_tokens": 9000}), 4096), 4096);
        assert_eq!(max_output(&json!({"max_tokens": -1}), 4096), 4096);
        assert_eq!(max_output(&json!({}), 4096), 4096);
    }
}
