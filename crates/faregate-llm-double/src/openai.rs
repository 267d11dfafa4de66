//! The OpenAI wire format: chat completions, responses, embeddings and the
//! model list.

pub(crate) mod chat;
pub(crate) mod embeddings;
pub(crate) mod responses;

use serde_json::{Value, json};

use crate::fields;

/// The models `GET /v1/models` lists.
const MODELS: [&str; 3] = ["double-1", "double-2", "double-slow"];
/// When the listed models were "created" (a fixed time keeps the list stable).
const MODELS_CREATED: u64 = 1_700_000_000;
/// The fingerprint every completion reports.
pub(crate) const FINGERPRINT: &str = "fp_double";

/// `GET /v1/models`.
pub(crate) fn models() -> Value {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": MODELS_CREATED, "owned_by": "faregate"}))
        .collect();
    json!({"object": "list", "data": data})
}

/// The cached part of the prompt: half of it when the request names a
/// `prompt_cache_key`, none otherwise.
pub(crate) fn cached_tokens(body: &Value, prompt_tokens: u64) -> u64 {
    if fields::present(body, "prompt_cache_key") {
        prompt_tokens / 2
    } else {
        0
    }
}
