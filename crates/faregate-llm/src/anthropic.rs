//! The Anthropic messages wire format: usage in a `/v1/messages` body and the
//! stream meter.
//!
//! Anthropic's `usage.input_tokens` excludes the prompt-cache parts, which
//! come as `cache_read_input_tokens` and `cache_creation_input_tokens`; they
//! are added into [`Usage::input`] so that both providers share one shape.
//! Cache reads cost the cached-input price; cache writes cost
//! [`crate::TokenPrices::cache_write`] when the catalog gives one, else the
//! plain input price (Anthropic charges a premium for writes, so a catalog for
//! Anthropic models should give it).
//!
//! A stream opens with `message_start`, whose `message.usage` holds the input
//! counts and a first output count, and closes with `message_delta`, whose
//! `usage.output_tokens` is the **cumulative** output (newer API versions may
//! repeat the input counts there too, also cumulative). Every byte passes
//! through unchanged; the meter only watches.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;

use crate::price::Usage;
use crate::sse::{SseEvent, SseParser};
use crate::usage::{Delivered, UsageError};

/// Anthropic's `usage` object; every count is optional in deltas.
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Overwrites the counts this object reports.
    fn apply(&self, parts: &mut Parts) {
        let set = |slot: &mut u64, v: Option<u64>| *slot = v.unwrap_or(*slot);
        set(&mut parts.input, self.input_tokens);
        set(&mut parts.output, self.output_tokens);
        set(&mut parts.cache_read, self.cache_read_input_tokens);
        set(&mut parts.cache_creation, self.cache_creation_input_tokens);
    }
}

/// Usage as Anthropic splits it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Parts {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_creation: u64,
}

impl Parts {
    fn usage(self) -> Usage {
        Usage {
            input: self
                .input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_creation),
            cached_input: self.cache_read,
            cache_creation: self.cache_creation,
            output: self.output,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Body {
    usage: Option<WireUsage>,
}

/// Usage from a non-streamed `/v1/messages` response body.
pub fn usage_from_body(body: &[u8]) -> Result<Usage, UsageError> {
    let body: Body = serde_json::from_slice(body)?;
    let wire = body.usage.ok_or(UsageError::Missing)?;
    if wire.input_tokens.is_none() && wire.output_tokens.is_none() {
        return Err(UsageError::Missing);
    }
    let mut parts = Parts::default();
    wire.apply(&mut parts);
    Ok(parts.usage())
}

/// Watches an Anthropic stream for usage; passes every byte through.
#[derive(Debug, Default)]
pub struct AnthropicStreamMeter {
    parser: SseParser,
    parts: Parts,
    started: bool,
    finished: bool,
    stopped: bool,
    delivered: Delivered,
}

impl AnthropicStreamMeter {
    /// A meter for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk from the provider; it is forwarded as is.
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        self.parser.feed(&chunk);
        while let Some(event) = self.parser.next_event() {
            self.observe(&event);
        }
        chunk
    }

    /// The usage once a `message_delta` has reported the output count (the
    /// latest one wins: server tools can send several, each cumulative).
    pub fn usage(&self) -> Option<Usage> {
        self.finished.then(|| self.parts.usage())
    }

    /// Output seen so far.
    pub fn delivered(&self) -> Delivered {
        self.delivered
    }

    /// What to charge however the stream ended: the usage, once
    /// `message_stop` closed the stream; else the input from `message_start`
    /// (or `estimated_input` before it) with the larger of the reported and
    /// the delivered output.
    pub fn billable(&self, estimated_input: u64) -> Usage {
        if self.stopped {
            return self.parts.usage();
        }
        let mut usage = self.parts.usage();
        if !self.started {
            usage.input = estimated_input;
        }
        usage.output = usage.output.max(self.delivered.tokens());
        usage
    }

    fn observe(&mut self, event: &SseEvent) {
        let Some(data) = event.data() else { return };
        let Ok(msg) = serde_json::from_str::<Event<'_>>(data) else {
            return;
        };
        match msg.kind.as_ref() {
            "message_start" => {
                if let Some(usage) = msg.message.and_then(|m| m.usage) {
                    usage.apply(&mut self.parts);
                    self.started = true;
                }
            }
            "message_delta" => {
                if let Some(usage) = msg.usage {
                    usage.apply(&mut self.parts);
                    self.finished = true;
                }
            }
            "message_stop" => self.stopped = true,
            "content_block_delta" => {
                if let Some(delta) = msg.delta {
                    let text = [delta.text, delta.partial_json, delta.thinking];
                    text.iter().flatten().for_each(|t| self.delivered.add(t));
                }
            }
            _ => {}
        }
    }
}

#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    message: Option<Message>,
    usage: Option<WireUsage>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(Debug, Deserialize)]
struct Message {
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_cache_parts_into_input() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","content":[],
            "usage":{"input_tokens":10,"cache_creation_input_tokens":200,
            "cache_read_input_tokens":300,"output_tokens":5}}"#;
        let usage = usage_from_body(body).unwrap();
        assert_eq!(
            usage,
            Usage {
                input: 510,
                cached_input: 300,
                cache_creation: 200,
                output: 5
            }
        );
        assert_eq!(usage.uncached_input(), 10);
    }

    #[test]
    fn refuses_bodies_without_usage() {
        assert_eq!(usage_from_body(b"{}"), Err(UsageError::Missing));
        assert_eq!(
            usage_from_body(br#"{"usage":{}}"#),
            Err(UsageError::Missing)
        );
        assert!(usage_from_body(b"nope").is_err());
    }

    #[test]
    fn bills_delivered_output_when_cut_short() {
        let mut m = AnthropicStreamMeter::new();
        assert_eq!(
            m.billable(42),
            Usage {
                input: 42,
                ..Usage::default()
            }
        );
        m.feed(Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"));
        m.feed(Bytes::from_static(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello, world\"}}\n\n"));
        assert_eq!(m.usage(), None);
        assert_eq!(
            m.billable(42),
            Usage {
                input: 25,
                output: 3,
                ..Usage::default()
            }
        );
    }
}
