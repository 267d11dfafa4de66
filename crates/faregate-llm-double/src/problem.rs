//! Refusals and how each provider spells them. One table maps a refusal to a
//! status and an error type; [`Problem::render`] wraps it in the OpenAI or
//! Anthropic error body.

use http::StatusCode;
use serde_json::{Value, json};

use crate::answer::Answer;

/// Whose wire format an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    OpenAi,
    Anthropic,
}

/// Why a request gets no model answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Problem {
    /// The caller sent something the provider would refuse.
    #[error("{0}")]
    BadRequest(String),
    /// The key is missing or wrong.
    #[error("Incorrect API key provided.")]
    Unauthorized,
    /// Anthropic requires its version header.
    #[error("anthropic-version: header is required")]
    MissingVersion,
    /// No such endpoint.
    #[error("Invalid URL ({method} {path})")]
    NotFound { method: String, path: String },
    /// The body is over the limit.
    #[error("Request exceeds the maximum allowed number of bytes.")]
    TooLarge,
    /// A `fail-NNN` model asked for this status.
    #[error("The double was asked to fail with status {}.", .0.as_u16())]
    Simulated(StatusCode),
}

impl Problem {
    /// A 400 naming what is wrong.
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    /// The status this refusal answers with.
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::MissingVersion => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Simulated(status) => *status,
        }
    }

    /// The refusal as `flavor` sends it.
    pub(crate) fn render(&self, flavor: Flavor) -> Answer {
        let status = self.status();
        let message = self.to_string();
        let body = match flavor {
            Flavor::OpenAi => openai_body(self, status, message),
            Flavor::Anthropic => anthropic_body(status, message),
        };
        let mut answer = Answer::json(body);
        answer.status = status;
        answer.retry_after = status == StatusCode::TOO_MANY_REQUESTS;
        answer
    }
}

fn openai_body(problem: &Problem, status: StatusCode, message: String) -> Value {
    let (kind, code) = match (problem, status.as_u16()) {
        (Problem::Unauthorized, _) => ("invalid_request_error", Some("invalid_api_key")),
        (Problem::NotFound { .. }, _) => ("invalid_request_error", Some("unknown_url")),
        (_, 429) => ("requests", Some("rate_limit_exceeded")),
        (_, 500..) => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

fn anthropic_body(status: StatusCode, message: String) -> Value {
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}
