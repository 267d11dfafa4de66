//! The LLM gateway with the official SDKs as its clients: `openai` and
//! `anthropic` from PyPI (pinned in `interop/llm/requirements.txt`) call
//! faregate in front of the provider double, and `interop/llm/sdk.py` makes
//! the same call straight to the double beside it. The double answers
//! deterministically, so what each SDK parsed through faregate must equal
//! what it parsed from the provider, ids and timestamps aside (the double
//! numbers each answer and stamps it with the current second), and the
//! ledger must hold usage × price exactly.
//!
//! Skipped, saying how to run them, unless `FAREGATE_LLM_PYTHON` is set
//! (`.ci/run` sets it); under `CI` a missing variable is a failure instead.

mod llm_support;

use std::time::Duration;

use faregate_core::{Currency, Money};
use llm_support::{PRICES, Setup};
use serde_json::Value;
use tokio::process::Command;

const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/llm/sdk.py");
const PYTHON: &str = "FAREGATE_LLM_PYTHON";
/// The double's key (what `Setup` gives it).
const DOUBLE_KEY: &str = "sk-double";
/// What the SDKs (and httpx) read from the environment that would send
/// them somewhere else.
const UNSET: [&str; 12] = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_CUSTOM_HEADERS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];
/// Members that differ between two answers to the same request.
const VOLATILE: [&str; 4] = ["id", "item_id", "created", "created_at"];

/// The venv's python, or `None` after saying how to get one (a panic under
/// `CI`, where skipping would hide the suite).
fn python() -> Option<String> {
    if let Some(python) = std::env::var(PYTHON).ok().filter(|v| !v.is_empty()) {
        return Some(python);
    }
    let how = format!("{PYTHON} is not set (bash interop/llm/install.sh prints it)");
    assert!(std::env::var_os("CI").is_none(), "under CI, {how}");
    eprintln!("skipped: {how}");
    None
}

/// Runs one scenario of `sdk.py` against `s`; its JSON, or a panic with
/// its stderr.
async fn sdk(python: &str, s: &Setup, scenario: &str) -> Value {
    let mut command = Command::new(python);
    command
        .arg(SDK)
        .args([
            "--gateway",
            &s.gw.url(""),
            "--double",
            &format!("http://{}", s.double),
        ])
        .args([
            "--key",
            &s.key,
            "--double-key",
            DOUBLE_KEY,
            "--scenario",
            scenario,
        ])
        .kill_on_drop(true);
    // A developer's own settings must not steer the SDKs elsewhere.
    for var in UNSET {
        command.env_remove(var);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("sdk.py ends within 2 minutes")
        .expect("sdk.py starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "sdk.py {scenario}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("sdk.py {scenario} printed no JSON ({e}): {stdout}"))
}

/// `v` without its [`VOLATILE`] members, at any depth.
fn steady(v: &Value) -> Value {
    match v {
        Value::Object(members) => members
            .iter()
            .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), steady(v)))
            .collect(),
        Value::Array(items) => Value::Array(items.iter().map(steady).collect()),
        other => other.clone(),
    }
}

/// Asserts that the SDK parsed the same through faregate as from the provider.
#[track_caller]
fn assert_same(gateway: &Value, direct: &Value, what: &str) {
    assert!(!gateway.is_null(), "{what}: nothing parsed");
    assert_eq!(
        steady(gateway),
        steady(direct),
        "{what}: through faregate ≠ direct"
    );
}

fn n(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no count at {pointer} in {v}"))
}

/// The count at `pointer`, 0 where the API leaves it out.
fn or_zero(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// The charge for a chat completion's or an embedding's `usage`.
fn chat_cost(u: &Value) -> u64 {
    let cached = or_zero(u, "/prompt_tokens_details/cached_tokens");
    PRICES.cost(
        n(u, "/prompt_tokens"),
        cached,
        or_zero(u, "/completion_tokens"),
    )
}

/// The charge for a responses-API `usage`.
fn responses_cost(u: &Value) -> u64 {
    PRICES.cost(
        n(u, "/input_tokens"),
        n(u, "/input_tokens_details/cached_tokens"),
        n(u, "/output_tokens"),
    )
}

/// The charge for an Anthropic `usage`, whose `input_tokens` leaves out
/// the cache reads and writes.
fn anthropic_cost(u: &Value) -> u64 {
    let (read, written) = (
        n(u, "/cache_read_input_tokens"),
        n(u, "/cache_creation_input_tokens"),
    );
    PRICES.cost(
        n(u, "/input_tokens") + read + written,
        read,
        n(u, "/output_tokens"),
    )
}

fn text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/content")?.as_str())
        .collect()
}

fn array<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no array at {pointer} in {v}"))
}

#[tokio::test]
async fn the_openai_sdk_gets_the_providers_chat_completion_and_pays_its_usage() {
    let Some(py) = python() else { return };
    let s = Setup::start(1_000_000, "").await;
    let out = sdk(&py, &s, "chat").await;
    let got = &out["gateway"];
    assert_same(got, &out["direct"], "chat completion");
    let content = got
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str);
    assert!(content.is_some_and(|c| !c.is_empty()), "{got}");
    let expected = chat_cost(&got["usage"]);
    let header = Money::from_atomic(expected, Currency::USD).to_string();
    assert_eq!(out["cost_header"].as_str(), Some(header.as_str()));
    assert_eq!(s.charged().await, vec![expected]);
}

#[tokio::test]
async fn a_stream_without_include_usage_reaches_the_sdk_as_sent_and_is_billed() {
    let Some(py) = python() else { return };
    let s = Setup::start(1_000_000, "").await;
    let out = sdk(&py, &s, "stream_plain").await;
    let chunks = array(&out, "/gateway");
    assert_same(&out["gateway"], &out["direct"], "chunks");
    // faregate asked the provider for usage; the SDK never sees it.
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );
    assert!(!text(chunks).is_empty());
    assert!(chunks.last().unwrap()["choices"][0]["finish_reason"].is_string());
    assert_eq!(s.charged().await, vec![chat_cost(&out["direct_usage"])]);
}

#[tokio::test]
async fn a_stream_with_include_usage_hands_the_sdk_its_usage_which_is_the_bill() {
    let Some(py) = python() else { return };
    let s = Setup::start(1_000_000, "").await;
    let out = sdk(&py, &s, "stream_usage").await;
    let chunks = array(&out, "/gateway");
    assert_same(&out["gateway"], &out["direct"], "chunks");
    let usage = &chunks.last().unwrap()["usage"];
    assert!(
        n(usage, "/prompt_tokens_details/cached_tokens") > 0,
        "a keyed prompt is half cached: {usage}"
    );
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["usage"].is_null())
    );
    assert_eq!(s.charged().await, vec![chat_cost(usage)]);
}

#[tokio::test]
async fn base64_embeddings_decode_in_the_sdk_and_are_billed() {
    let Some(py) = python() else { return };
    let s = Setup::start(1_000_000, "").await;
    let out = sdk(&py, &s, "embeddings").await;
    assert_eq!(
        out["sent_encoding_format"], "base64",
        "the SDK's default reached the provider"
    );
    let got = &out["gateway"];
    assert_same(got, &out["direct"], "embeddings");
    for item in array(got, "/data") {
        let vector = array(item, "/embedding");
        assert!(
            !vector.is_empty() && vector.iter().all(Value::is_f64),
            "decoded floats: {item}"
        );
    }
    assert_eq!(s.charged().await, vec![chat_cost(&got["usage"])]);
}

#[tokio::test]
async fn a_provider_refusal_is_the_sdks_typed_error_and_costs_nothing() {
    let Some(py) = python() else { return };
    let s = Setup::start(1_000_000, "").await;
    let out = sdk(&py, &s, "errors").await;
    let cases = array(&out, "/cases");
    let raised: Vec<(&str, u64)> = cases
        .iter()
        .map(|c| {
            (
                c["gateway"]["error"].as_str().unwrap_or("none"),
                n(c, "/gateway/status"),
            )
        })
        .collect();
    assert_eq!(
        raised,
        [
            ("InternalServerError", 500),
            ("RateLimitError", 429),
            ("OverloadedError", 529)
        ]
    );
    for case in cases {
        // Class, status, body and retry-after: as the provider sent them.
        assert_eq!(case["gateway"], case["direct"], "{}", case["request"]);
    }
    assert!(s.charged().await.is_empty());
}

#[tokio::test]
async fn an_sdk_closing_a_stream_early_pays_for_what_was_delivered() {
    let Some(py) = python() else { return };
    let s = Setup::start(1_000_000, "").await;
    let out = sdk(&py, &s, "disconnect").await;
    let chunks = array(&out, "/gateway");
    assert!(chunks.len() >= 2 && !text(chunks).is_empty(), "{chunks:?}");
    assert_same(&out["gateway"], &out["direct"], "the chunks read");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let charged = s.charged().await;
    let request = &out["request"];
    let input = faregate_llm::input_tokens(request);
    let worst = PRICES.cost(input, 0, n(request, "/max_tokens"));
    assert_eq!(charged.len(), 1, "a delivered stream is never free");
    assert!(
        charged[0] > PRICES.cost(input, 0, 0),
        "the delivered tokens are charged: {charged:?}"
    );
    assert!(
        charged[0] < worst,
        "only what was delivered: {charged:?} of {worst}"
    );
}

#[tokio::test]
async fn the_responses_api_streamed_or_not_is_the_providers_and_billed() {
    let Some(py) = python() else { return };
    let s = Setup::start(1_000_000, "").await;
    let out = sdk(&py, &s, "responses").await;
    let (got, direct) = (&out["gateway"], &out["direct"]);
    assert_same(&got["whole"], &direct["whole"], "response");
    assert_same(
        &got["stream"]["events"],
        &direct["stream"]["events"],
        "events",
    );
    assert_same(
        &got["stream"]["final"],
        &direct["stream"]["final"],
        "final response",
    );
    let final_text = got
        .pointer("/stream/final/output/0/content/0/text")
        .and_then(Value::as_str);
    assert!(final_text.is_some_and(|t| !t.is_empty()), "{got}");
    let expected = vec![
        responses_cost(&got["whole"]["usage"]),
        responses_cost(&got["stream"]["final"]["usage"]),
    ];
    assert_eq!(s.charged().await, expected);
}

#[tokio::test]
async fn the_anthropic_sdk_gets_the_providers_messages_and_pays_their_usage() {
    let Some(py) = python() else { return };
    let s = Setup::start(1_000_000, "").await;
    let out = sdk(&py, &s, "messages").await;
    let (got, direct) = (&out["gateway"], &out["direct"]);
    assert_same(&got["whole"], &direct["whole"], "message");
    assert_same(&got["final"], &direct["final"], "streamed message");
    assert_eq!(got["text"], direct["text"]);
    assert_eq!(
        got["text"], got["final"]["content"][0]["text"],
        "the text stream builds the message"
    );
    assert!(
        n(got, "/whole/usage/cache_read_input_tokens") > 0,
        "the cached block is read: {got}"
    );
    // The key as X-Api-Key works too.
    assert_same(
        &out["gateway_x_api_key"],
        &got["whole"],
        "message by X-Api-Key",
    );
    let (whole, streamed) = (
        anthropic_cost(&got["whole"]["usage"]),
        anthropic_cost(&got["final"]["usage"]),
    );
    assert_eq!(s.charged().await, vec![whole, streamed, whole]);
}

#[tokio::test]
async fn faregates_own_refusals_reach_each_sdk_as_its_typed_error() {
    let Some(py) = python() else { return };
    // Ten atomic units: less than any call's worst case.
    let s = Setup::start(10, "").await;
    let out = sdk(&py, &s, "refusals").await;
    let expect = [
        ("openai_402", "APIStatusError", 402, "insufficient_credits"),
        ("openai_404", "NotFoundError", 404, "model_not_found"),
        ("openai_401", "AuthenticationError", 401, "invalid_api_key"),
        (
            "anthropic_402",
            "PaymentRequiredError",
            402,
            "insufficient_credits",
        ),
        (
            "anthropic_401",
            "AuthenticationError",
            401,
            "invalid_api_key",
        ),
    ];
    for (case, class, status, code) in expect {
        let got = &out[case];
        assert_eq!(
            (got["error"].as_str(), n(got, "/status")),
            (Some(class), status),
            "{case}: {got}"
        );
        // faregate's problem code, in the body the SDK kept.
        assert_eq!(got["body"]["code"], code, "{case}: {got}");
    }
    // openai reads `code` from the body when it has no `error` object.
    for case in ["openai_402", "openai_404", "openai_401"] {
        assert_eq!(out[case]["code"], out[case]["body"]["code"], "{case}");
    }
    assert!(s.charged().await.is_empty());
}
