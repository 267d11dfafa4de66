//! The adapters against wire captures that follow the OpenAI and Anthropic
//! API references, fed whole, split at every byte offset, and byte by byte.

use bytes::Bytes;
use faregate_core::{Currency, Money};
use faregate_llm::anthropic::{self, AnthropicStreamMeter};
use faregate_llm::openai::{self, OpenAiStreamMeter};
use faregate_llm::{TokenPrices, Usage, cost, cost_comment};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn crlf(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes()
}

/// A stream meter seen from outside: bytes in, bytes out, usage at the end.
trait Meter {
    fn feed(&mut self, chunk: &[u8]) -> Bytes;
    fn finish(&mut self) -> Bytes;
    fn usage(&self) -> Option<Usage>;
}

impl Meter for OpenAiStreamMeter {
    fn feed(&mut self, chunk: &[u8]) -> Bytes {
        OpenAiStreamMeter::feed(self, Bytes::copy_from_slice(chunk))
    }
    fn finish(&mut self) -> Bytes {
        OpenAiStreamMeter::finish(self)
    }
    fn usage(&self) -> Option<Usage> {
        OpenAiStreamMeter::usage(self)
    }
}

impl Meter for AnthropicStreamMeter {
    fn feed(&mut self, chunk: &[u8]) -> Bytes {
        AnthropicStreamMeter::feed(self, Bytes::copy_from_slice(chunk))
    }
    fn finish(&mut self) -> Bytes {
        Bytes::new()
    }
    fn usage(&self) -> Option<Usage> {
        AnthropicStreamMeter::usage(self)
    }
}

fn run<M: Meter>(mut meter: M, chunks: &[&[u8]]) -> (Vec<u8>, Option<Usage>) {
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&meter.feed(c));
    }
    out.extend_from_slice(&meter.finish());
    (out, meter.usage())
}

/// Runs `transcript` whole, at every single split point and byte by byte,
/// asserting the same output and usage each time; returns them.
fn every_split<M: Meter>(new: impl Fn() -> M, transcript: &[u8]) -> (Vec<u8>, Option<Usage>) {
    let whole = run(new(), &[transcript]);
    for i in 0..=transcript.len() {
        let (a, b) = transcript.split_at(i);
        assert_eq!(run(new(), &[a, b]), whole, "split at byte {i}");
    }
    let bytes: Vec<&[u8]> = transcript.chunks(1).collect();
    assert_eq!(run(new(), &bytes), whole, "byte by byte");
    whole
}

const CHAT_USAGE: Usage = Usage {
    input: 19,
    cached_input: 0,
    cache_creation: 0,
    output: 10,
};

#[test]
fn openai_injected_usage_chunk_is_hidden_from_the_client() {
    let transcript = fixture("openai_chat_stream_usage.sse");
    let view = fixture("openai_chat_stream_client_view.sse");
    let (out, usage) = every_split(|| OpenAiStreamMeter::new(true), &transcript);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        String::from_utf8(view.clone()).unwrap()
    );
    assert_eq!(usage, Some(CHAT_USAGE));
    let (out, usage) = every_split(|| OpenAiStreamMeter::new(true), &crlf(&transcript));
    assert_eq!(out, crlf(&view));
    assert_eq!(usage, Some(CHAT_USAGE));
}

#[test]
fn openai_stream_the_client_asked_usage_for_passes_unchanged() {
    let transcript = fixture("openai_chat_stream_usage.sse");
    let (out, usage) = every_split(|| OpenAiStreamMeter::new(false), &transcript);
    assert_eq!(out, transcript);
    assert_eq!(usage, Some(CHAT_USAGE));
}

#[test]
fn openai_stream_cut_short_bills_what_was_delivered() {
    let transcript = fixture("openai_chat_stream_usage.sse");
    let hello = find(&transcript, b"\"Hello\"");
    let hello_delivered = hello + find(&transcript[hello..], b"\n\n") + 2;
    let usage_chunk = find(&transcript, b"\"choices\":[]");
    let mut last = 0;
    for cut in 0..transcript.len() {
        let mut meter = OpenAiStreamMeter::new(true);
        let sent = meter.feed(Bytes::copy_from_slice(&transcript[..cut]));
        let billed = meter.billable(50);
        if meter.usage().is_none() {
            assert_eq!(billed.input, 50);
            assert!(billed.output >= last, "delivered count shrank at {cut}");
            last = billed.output;
            if cut >= hello_delivered {
                assert!(billed.output > 0, "a delivered stream billed zero at {cut}");
            }
            assert!(sent.len() <= cut);
        } else {
            assert!(cut > usage_chunk);
            assert_eq!(billed, CHAT_USAGE);
        }
    }
    assert_eq!(last, 9, "nine content deltas before usage");
}

#[test]
fn openai_responses_stream_reports_usage_in_completed() {
    let transcript = fixture("openai_responses_stream.sse");
    let (out, usage) = every_split(|| OpenAiStreamMeter::new(false), &transcript);
    assert_eq!(out, transcript);
    let expect = Usage {
        input: 37,
        output: 11,
        ..Usage::default()
    };
    assert_eq!(usage, Some(expect));
    let mut cut = OpenAiStreamMeter::new(false);
    cut.feed(Bytes::copy_from_slice(
        &transcript[..find(&transcript, b"response.output_text.done")],
    ));
    // "Hi" and " there!": two deltas, nine characters, so three tokens.
    assert_eq!(cut.delivered().tokens(), 3);
}

#[test]
fn anthropic_stream_passes_every_byte_and_reads_both_events() {
    let transcript = fixture("anthropic_messages_stream.sse");
    let (out, usage) = every_split(AnthropicStreamMeter::new, &transcript);
    assert_eq!(out, transcript);
    let expect = Usage {
        input: 25,
        output: 15,
        ..Usage::default()
    };
    assert_eq!(usage, Some(expect));
    let mut done = AnthropicStreamMeter::new();
    done.feed(Bytes::from(transcript.clone()));
    assert_eq!(done.billable(1_000), expect);
    let (out, usage) = every_split(AnthropicStreamMeter::new, &crlf(&transcript));
    assert_eq!(out, crlf(&transcript));
    assert_eq!(usage, Some(expect));
}

#[test]
fn anthropic_stream_cut_short_bills_what_was_delivered() {
    let transcript = fixture("anthropic_messages_stream.sse");
    let mut last = 0;
    for cut in 0..transcript.len() {
        let mut meter = AnthropicStreamMeter::new();
        meter.feed(Bytes::copy_from_slice(&transcript[..cut]));
        let billed = meter.billable(1_000);
        assert!(billed.input == 1_000 || billed.input == 25, "at {cut}");
        assert!(billed.output >= last, "billed output shrank at {cut}");
        last = billed.output;
    }
    assert_eq!(last, 15);
}

#[test]
fn non_streamed_bodies_give_their_usage() {
    let chat = openai::usage_from_body(&fixture("openai_chat_completion.json")).unwrap();
    assert_eq!(
        chat,
        Usage {
            input: 2006,
            cached_input: 1920,
            cache_creation: 0,
            output: 10
        }
    );
    let responses = openai::usage_from_body(&fixture("openai_responses.json")).unwrap();
    assert_eq!((responses.input, responses.output), (36, 87));
    let embeddings = openai::usage_from_body(&fixture("openai_embeddings.json")).unwrap();
    assert_eq!((embeddings.input, embeddings.output), (8, 0));
    let claude = anthropic::usage_from_body(&fixture("anthropic_message.json")).unwrap();
    assert_eq!(
        claude,
        Usage {
            input: 3895,
            cached_input: 1800,
            cache_creation: 0,
            output: 503
        }
    );
}

#[test]
fn a_chat_completion_costs_exactly_as_documented() {
    // gpt-4.1: 2.00 in, 0.50 cached, 8.00 out per 1M tokens.
    let prices = TokenPrices::parse(Currency::USD, "2.00", "0.50", "8.00").unwrap();
    let usage = openai::usage_from_body(&fixture("openai_chat_completion.json")).unwrap();
    // 86 × 2 + 1920 × 0.5 + 10 × 8 = 172 + 960 + 80 = 1212 micro-dollars.
    let charged = cost(&usage, &prices).unwrap();
    assert_eq!(charged, Money::from_atomic(1_212, Currency::USD));
    assert_eq!(
        cost_comment(charged).as_ref(),
        b": faregate-cost=0.001212 USD\n\n"
    );
}

#[test]
fn the_stream_request_is_rewritten_in_place() {
    let body =
        br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hello!"}],"stream":true}"#;
    let rewritten = openai::request_stream_usage(Bytes::from_static(body)).unwrap();
    assert!(rewritten.injected);
    assert_eq!(
        rewritten.body.as_ref(),
        br#"{"stream_options":{"include_usage":true},"model":"gpt-4o","messages":[{"role":"user","content":"Hello!"}],"stream":true}"#
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}
