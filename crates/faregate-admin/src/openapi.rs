//! `GET /openapi.json`: the admin API described in OpenAPI 3.1. The
//! document is written by hand in `openapi.json` beside this file; the
//! tests hold it to the router (every `/v1` route, and nothing else) and to
//! the problem codes.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The document, embedded at build time.
const DOCUMENT: &str = include_str!("openapi.json");

pub(crate) async fn document() -> Response {
    let mut r = DOCUMENT.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests;
