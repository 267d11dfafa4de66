//! Metering an OpenAI stream on its way to the client.
//!
//! Chat completions stream `chat.completion.chunk` objects as `data:` events
//! and end with `data: [DONE]`; with `include_usage` the last chunk before
//! `[DONE]` has `choices: []` and the `usage`. The responses API streams typed
//! events (`event: response.output_text.delta` …) and reports usage in
//! `response.completed` (or `response.incomplete` / `response.failed`).
//! The meter records usage from either, counts delivered output for a stream
//! cut short, and, when the gateway injected `include_usage`, removes the
//! usage-only chunk so the client sees exactly what it asked for.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{WireUsage, offset};
use crate::price::Usage;
use crate::sse::{SseEvent, SseParser};
use crate::usage::Delivered;

/// Reads an OpenAI stream and decides what of it reaches the client.
#[derive(Debug)]
pub struct OpenAiStreamMeter {
    parser: SseParser,
    injected: bool,
    usage: Option<Usage>,
    delivered: Delivered,
}

impl OpenAiStreamMeter {
    /// A meter for one stream; `injected` as returned by
    /// [`super::request_stream_usage`].
    pub fn new(injected: bool) -> Self {
        Self {
            parser: SseParser::new(),
            injected,
            usage: None,
            delivered: Delivered::default(),
        }
    }

    /// Consumes a chunk from the provider and returns the bytes to send on.
    /// Without an injected option every byte passes at once. With one, whole
    /// events pass once complete, minus the usage-only chunk and minus the
    /// `"usage":null` member that `include_usage` adds to every other chunk,
    /// so the client gets the bytes it would have had without the option.
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        self.parser.feed(&chunk);
        let mut out = BytesMut::new();
        while let Some(event) = self.parser.next_event() {
            let verdict = self.observe(&event);
            if !self.injected {
                continue;
            }
            let raw = event.raw();
            match verdict {
                Verdict::Pass => out.extend_from_slice(raw),
                Verdict::Drop => {}
                Verdict::Strip(cut) => {
                    out.extend_from_slice(&raw[..cut.start]);
                    out.extend_from_slice(&raw[cut.end..]);
                }
            }
        }
        if self.injected { out.freeze() } else { chunk }
    }

    /// The bytes still owed to the client when the provider's stream ends: an
    /// incomplete last event, held back only when events are being filtered.
    pub fn finish(&mut self) -> Bytes {
        let rest = self.parser.take_rest();
        if self.injected { rest } else { Bytes::new() }
    }

    /// The usage the provider reported, once it has.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Output seen so far.
    pub fn delivered(&self) -> Delivered {
        self.delivered
    }

    /// What to charge: the reported usage, or, for a stream that ended
    /// without it, `estimated_input` and the delivered output.
    pub fn billable(&self, estimated_input: u64) -> Usage {
        self.usage.unwrap_or(Usage {
            input: estimated_input,
            output: self.delivered.tokens(),
            ..Usage::default()
        })
    }

    /// Records what the event says and decides what of it the client gets.
    fn observe(&mut self, event: &SseEvent) -> Verdict {
        let Some(data) = event.data().filter(|d| *d != "[DONE]") else {
            return Verdict::Pass;
        };
        let Ok(msg) = serde_json::from_str::<Message<'_>>(data) else {
            return Verdict::Pass; // not ours to judge: pass it on
        };
        self.count_deltas(&msg);
        let reported = match msg.kind.as_deref() {
            Some("response.completed" | "response.incomplete" | "response.failed") => {
                msg.response.and_then(|r| r.usage)
            }
            _ => msg
                .usage
                .0
                .and_then(|raw| serde_json::from_str::<WireUsage>(raw.get()).ok()),
        };
        match reported.and_then(|u| u.usage()) {
            Some(usage) => {
                self.usage = Some(usage);
                if msg.choices.is_some_and(|c| c.is_empty()) {
                    Verdict::Drop
                } else {
                    Verdict::Pass
                }
            }
            None => match msg.usage.0 {
                Some(null) if null.get() == "null" => {
                    null_usage_span(event.raw(), data, null.get())
                        .map_or(Verdict::Pass, Verdict::Strip)
                }
                _ => Verdict::Pass,
            },
        }
    }

    fn count_deltas(&mut self, msg: &Message<'_>) {
        for choice in msg.choices.iter().flatten() {
            let Some(delta) = &choice.delta else { continue };
            for text in [&delta.content, &delta.refusal].into_iter().flatten() {
                self.delivered.add(text);
            }
            for call in delta.tool_calls.iter().flatten() {
                if let Some(args) = call.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                    self.delivered.add(args);
                }
            }
        }
        let is_delta = msg.kind.as_deref().is_some_and(|k| k.ends_with(".delta"));
        if let (true, Some(raw)) = (is_delta, msg.delta)
            && let Ok(text) = serde_json::from_str::<Cow<'_, str>>(raw.get())
        {
            self.delivered.add(&text);
        }
    }
}

/// What of an event reaches a client whose stream had usage injected.
#[derive(Debug)]
enum Verdict {
    Pass,
    Drop,
    /// Pass all but this byte range of the raw event.
    Strip(Range<usize>),
}

/// Where `,"usage":null` (or `"usage":null,` as a first member) sits in the
/// raw event whose single `data` line is `data`; `null` is the value's slice
/// of `data`. `None`, and the event passes whole, for any other layout.
fn null_usage_span(raw: &[u8], data: &str, null: &str) -> Option<Range<usize>> {
    if data.is_empty() {
        return None;
    }
    let start = offset(data, null);
    let end = start + null.len();
    let before = data[..start].trim_end().strip_suffix(':')?;
    let key_start = before.trim_end().strip_suffix("\"usage\"")?.len();
    let lead = data[..key_start].trim_end();
    let span = if let Some(lead) = lead.strip_suffix(',') {
        lead.len()..end
    } else if lead.ends_with('{') {
        let after = data[end..].trim_start().strip_prefix(',')?;
        key_start..data.len() - after.len()
    } else {
        return None;
    };
    // A single-line `data` is a contiguous slice of the raw event, near its start.
    let data_at = raw.windows(data.len()).position(|w| w == data.as_bytes())?;
    Some(data_at + span.start..data_at + span.end)
}

/// The members of a chat chunk or a responses event that billing reads.
#[derive(Debug, Deserialize)]
struct Message<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    choices: Option<Vec<Choice<'a>>>,
    /// Raw so that a `null` keeps its place in the text.
    #[serde(default, borrow)]
    usage: MaybeRaw<'a>,
    response: Option<Response>,
    #[serde(borrow)]
    delta: Option<&'a RawValue>,
}

/// A member's raw text, `null` included; `None` when the member is absent.
#[derive(Debug, Default)]
struct MaybeRaw<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeRaw<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(|raw| MaybeRaw(Some(raw)))
    }
}

#[derive(Debug, Deserialize)]
struct Response {
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Option<ChoiceDelta<'a>>,
}

#[derive(Debug, Deserialize)]
struct ChoiceDelta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Debug, Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow)]
    function: Option<Function<'a>>,
}

#[derive(Debug, Deserialize)]
struct Function<'a> {
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_view(transcript: &str) -> String {
        let mut meter = OpenAiStreamMeter::new(true);
        let mut out = meter
            .feed(Bytes::copy_from_slice(transcript.as_bytes()))
            .to_vec();
        out.extend_from_slice(&meter.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strips_null_usage_wherever_it_sits() {
        let cases = [
            ("data: {\"a\":1,\"usage\":null}\n\n", "data: {\"a\":1}\n\n"),
            (
                "data: {\"a\":1, \"usage\" : null }\n\n",
                "data: {\"a\":1 }\n\n",
            ),
            ("data: {\"usage\":null,\"a\":1}\n\n", "data: {\"a\":1}\n\n"),
            (
                "event: x\r\ndata:{ \"usage\": null, \"a\":1}\r\n\r\n",
                "event: x\r\ndata:{  \"a\":1}\r\n\r\n",
            ),
            // Layouts it does not recognise pass whole.
            ("data: {\"usage\":null}\n\n", "data: {\"usage\":null}\n\n"),
            (
                "data: {\"a\":\n\ndata: 1}\n\n",
                "data: {\"a\":\n\ndata: 1}\n\n",
            ),
            (
                "data: {\"a\":1,\ndata: \"usage\":null}\n\n",
                "data: {\"a\":1,\ndata: \"usage\":null}\n\n",
            ),
            ("data: [DONE]\n\n: ping\n\n", "data: [DONE]\n\n: ping\n\n"),
        ];
        for (input, want) in cases {
            assert_eq!(client_view(input), want, "{input:?}");
        }
    }

    #[test]
    fn a_usage_chunk_with_choices_is_kept() {
        // Some compatible providers put usage on the last content chunk.
        let t = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n";
        let mut meter = OpenAiStreamMeter::new(true);
        assert_eq!(
            meter.feed(Bytes::from_static(t.as_bytes())).as_ref(),
            t.as_bytes()
        );
        assert_eq!(meter.usage().map(|u| (u.input, u.output)), Some((3, 1)));
    }

    #[test]
    fn counts_tool_call_arguments_and_refusals() {
        let t = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,",
            "\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"No\"}}]}\n\n",
        );
        let mut meter = OpenAiStreamMeter::new(false);
        assert_eq!(
            meter.feed(Bytes::from_static(t.as_bytes())).as_ref(),
            t.as_bytes()
        );
        assert_eq!(meter.delivered().tokens(), 3); // 8 + 2 characters, 2 pieces
        assert_eq!(meter.billable(7).input, 7);
    }
}
