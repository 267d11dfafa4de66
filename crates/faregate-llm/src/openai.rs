//! The OpenAI wire format: usage in non-streamed bodies, the request rewrite
//! that asks a stream for usage, and the stream meter.
//!
//! Shapes, from the API reference: chat completions report
//! `usage.prompt_tokens`, `completion_tokens` and
//! `prompt_tokens_details.cached_tokens`; the responses API reports
//! `usage.input_tokens`, `output_tokens` and
//! `input_tokens_details.cached_tokens`; embeddings report
//! `usage.prompt_tokens` only. Cached tokens are part of the prompt count.

mod rewrite;
mod stream;

pub use rewrite::{RewriteError, StreamRequest, request_stream_usage};
pub use stream::OpenAiStreamMeter;

use serde::Deserialize;

use crate::price::Usage;
use crate::usage::UsageError;

/// The `usage` object of any of the three APIs.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<Details>,
}

#[derive(Debug, Default, Deserialize)]
struct Details {
    cached_tokens: Option<u64>,
}

impl WireUsage {
    /// Normalizes either naming; `None` when neither prompt count is there.
    pub(crate) fn usage(&self) -> Option<Usage> {
        let (input, output, details) = match (self.prompt_tokens, self.input_tokens) {
            (Some(p), _) => (p, self.completion_tokens, &self.prompt_tokens_details),
            (None, Some(i)) => (i, self.output_tokens, &self.input_tokens_details),
            (None, None) => return None,
        };
        Some(Usage {
            input,
            cached_input: details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_creation: 0,
            output: output.unwrap_or(0),
        })
    }
}

#[derive(Debug, Deserialize)]
struct Body {
    usage: Option<WireUsage>,
}

/// Usage from a non-streamed chat completion, response or embedding body.
pub fn usage_from_body(body: &[u8]) -> Result<Usage, UsageError> {
    let body: Body = serde_json::from_slice(body)?;
    body.usage
        .and_then(|u| u.usage())
        .ok_or(UsageError::Missing)
}

/// Where `part`, a slice of `whole`, starts in it.
fn offset(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_api_shape() {
        let chat = br#"{"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,
            "prompt_tokens_details":{"cached_tokens":3}}}"#;
        let expect = Usage {
            input: 19,
            cached_input: 3,
            cache_creation: 0,
            output: 10,
        };
        assert_eq!(usage_from_body(chat), Ok(expect));
        let responses = br#"{"usage":{"input_tokens":19,"input_tokens_details":{"cached_tokens":3},
            "output_tokens":10,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":29}}"#;
        assert_eq!(usage_from_body(responses), Ok(expect));
        let embeddings = br#"{"usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        assert_eq!(
            usage_from_body(embeddings).map(|u| (u.input, u.output)),
            Ok((8, 0))
        );
    }

    #[test]
    fn refuses_bodies_without_usage() {
        assert_eq!(usage_from_body(b"{}"), Err(UsageError::Missing));
        assert_eq!(
            usage_from_body(br#"{"usage":null}"#),
            Err(UsageError::Missing)
        );
        assert_eq!(
            usage_from_body(br#"{"usage":{}}"#),
            Err(UsageError::Missing)
        );
        assert!(matches!(
            usage_from_body(b"<html>"),
            Err(UsageError::NotJson(_))
        ));
    }
}
