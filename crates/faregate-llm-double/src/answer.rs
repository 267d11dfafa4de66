//! What an endpoint answers, before it becomes an HTTP response: a status,
//! whether to ask for a retry, and a JSON body or an event stream.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use crate::script::Script;

/// An endpoint's answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    /// Adds `retry-after: 1` (rate limits).
    pub(crate) retry_after: bool,
    pub(crate) payload: Payload,
}

/// The body of an answer.
#[derive(Debug)]
pub(crate) enum Payload {
    Json(Value),
    /// Server-sent events, paced by the server.
    Stream(Script),
}

impl Answer {
    /// 200 with a JSON body.
    pub(crate) fn json(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            retry_after: false,
            payload: Payload::Json(body),
        }
    }

    /// 200 with an event stream.
    pub(crate) fn stream(script: Script) -> Self {
        Self {
            status: StatusCode::OK,
            retry_after: false,
            payload: Payload::Stream(script),
        }
    }
}

/// What every endpoint gets besides the body.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// A fresh id for this answer (hex).
    pub(crate) id: String,
    /// Unix seconds now.
    pub(crate) created: u64,
    /// The configured pause before each streamed token.
    pub(crate) token_delay: Duration,
}
