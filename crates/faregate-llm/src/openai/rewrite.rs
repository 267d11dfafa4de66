//! Asking a chat-completions stream for usage without the client noticing.
//!
//! A streamed chat completion reports usage only when the request sets
//! `stream_options.include_usage: true`; the provider then sends one extra
//! chunk with `choices: []` and the `usage` before `data: [DONE]`. When the
//! client did not ask, the gateway sets the option and later removes that
//! chunk ([`super::OpenAiStreamMeter`] with `injected`). The edit is made in
//! place on the bytes, so every other member stays exactly as the client sent
//! it (order, spacing, number formatting). The responses API always reports
//! usage in `response.completed` and needs no rewrite.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::offset;

/// Why a request body could not be read for the rewrite; the caller is at
/// fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The body is not a UTF-8 JSON object.
    #[error("request body is not a JSON object: {0}")]
    NotAnObject(String),
}

/// The body to forward and whether usage was asked for on the client's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// The request body for the provider.
    pub body: Bytes,
    /// Whether the gateway set `include_usage`, so the usage chunk must be
    /// hidden from the client.
    pub injected: bool,
}

type Members<'a> = BTreeMap<String, &'a RawValue>;

const OPTIONS: &str = r#""stream_options":{"include_usage":true}"#;

/// Sets `stream_options.include_usage` on a streamed chat-completions body
/// that lacks it (absent, `null` or `false`); any other body is returned as is.
pub fn request_stream_usage(body: Bytes) -> Result<StreamRequest, RewriteError> {
    let unchanged = |body| {
        Ok(StreamRequest {
            body,
            injected: false,
        })
    };
    let text = std::str::from_utf8(&body).map_err(|e| RewriteError::NotAnObject(e.to_string()))?;
    let members: Members<'_> =
        serde_json::from_str(text).map_err(|e| RewriteError::NotAnObject(e.to_string()))?;
    if members.get("stream").map(|v| v.get()) != Some("true") {
        return unchanged(body);
    }
    let edit = match members.get("stream_options") {
        None => insert_first(text, object_open(text, text), OPTIONS),
        Some(raw) if raw.get() == "null" => replace(text, raw.get(), r#"{"include_usage":true}"#),
        Some(raw) => match serde_json::from_str::<Members<'_>>(raw.get()) {
            Err(_) => return unchanged(body), // not an object: the provider will say so
            Ok(options) => match options.get("include_usage") {
                Some(v) if v.get() == "true" => return unchanged(body),
                Some(v) => replace(text, v.get(), "true"),
                None => insert_first(
                    text,
                    object_open(text, raw.get()),
                    r#""include_usage":true"#,
                ),
            },
        },
    };
    Ok(StreamRequest {
        body: Bytes::from(edit),
        injected: true,
    })
}

/// The index just past the `{` that opens the object `object` (a slice of
/// `whole`, possibly preceded by whitespace).
fn object_open(whole: &str, object: &str) -> usize {
    let start = offset(whole, object);
    start + object.find('{').map_or(0, |i| i + 1)
}

/// Inserts `member` as the first member of the object opened at `at`.
fn insert_first(text: &str, at: usize, member: &str) -> String {
    let empty = text[at..].trim_start().starts_with('}');
    let sep = if empty { "" } else { "," };
    format!("{}{member}{sep}{}", &text[..at], &text[at..])
}

/// Replaces `old`, a slice of `text`, with `new`.
fn replace(text: &str, old: &str, new: &str) -> String {
    let start = offset(text, old);
    format!("{}{new}{}", &text[..start], &text[start + old.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(body: &str) -> (String, bool) {
        let r = request_stream_usage(Bytes::copy_from_slice(body.as_bytes())).unwrap();
        (String::from_utf8(r.body.to_vec()).unwrap(), r.injected)
    }

    #[test]
    fn injects_when_the_client_did_not_ask() {
        let body = r#" { "model": "gpt-4o-mini", "stream": true, "messages": [] }"#;
        let (out, injected) = rewrite(body);
        assert!(injected);
        assert_eq!(
            out,
            r#" {"stream_options":{"include_usage":true}, "model": "gpt-4o-mini", "stream": true, "messages": [] }"#
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn edits_existing_stream_options_in_place() {
        let cases = [
            (
                r#"{"stream":true,"stream_options":{"include_usage":false},"n":1.0}"#,
                r#"{"stream":true,"stream_options":{"include_usage":true},"n":1.0}"#,
            ),
            (
                r#"{"stream":true,"stream_options": { }}"#,
                r#"{"stream":true,"stream_options": {"include_usage":true }}"#,
            ),
            (
                r#"{"stream":true,"stream_options":{"include_obfuscation":false}}"#,
                r#"{"stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}"#,
            ),
            (
                r#"{"stream_options":null,"stream":true}"#,
                r#"{"stream_options":{"include_usage":true},"stream":true}"#,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(rewrite(body), (want.to_owned(), true), "{body}");
        }
    }

    #[test]
    fn the_rewrite_changes_nothing_else() {
        let body = r#"{
  "model": "gpt-4o",
  "messages": [{"role": "user", "content": "Say \"hi\" {not json}"}],
  "temperature": 0.70,
  "stream": true,
  "stream_options": {"include_obfuscation": false}
}"#;
        let (out, injected) = rewrite(body);
        assert!(injected);
        let mut before: serde_json::Value = serde_json::from_str(body).unwrap();
        let after: serde_json::Value = serde_json::from_str(&out).unwrap();
        before["stream_options"]["include_usage"] = true.into();
        assert_eq!(after, before);
        assert_eq!(out.len(), body.len() + r#""include_usage":true,"#.len());
        assert!(out.contains("0.70"));
    }

    #[test]
    fn leaves_other_bodies_alone() {
        for body in [
            r#"{"stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"stream":false,"model":"x"}"#,
            r#"{"model":"x"}"#,
            r#"{"stream":true,"stream_options":"odd"}"#,
        ] {
            assert_eq!(rewrite(body), (body.to_owned(), false));
        }
        assert!(request_stream_usage(Bytes::from_static(b"[1]")).is_err());
        assert!(request_stream_usage(Bytes::from_static(b"{\"stream\":true")).is_err());
        assert!(request_stream_usage(Bytes::from_static(b"\xff")).is_err());
    }
}
