//! Extractors whose every rejection is a problem document. axum's own
//! `Json`, `Path`, `Query` and body-limit rejections answer in plain text,
//! which an admin client cannot switch on; these wrap them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use faregate_rails::credits::Credits;
use faregate_rails::plans::Plans;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::AdminState;
use crate::problem::{Code, Problem};

/// The largest request body the admin API reads.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A JSON request body (`Content-Type: application/json` or `…+json`).
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        if !is_json(req.headers()) {
            return Err(Problem::new(
                Code::UnsupportedMediaType,
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_rejection(rejection: BytesRejection) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            Code::PayloadTooLarge,
            format!("the body is larger than {} KiB", MAX_BODY_BYTES / 1024),
        )
    } else {
        Problem::new(Code::MalformedBody, "the body could not be read")
    }
}

/// Text that is not JSON is a malformed request (400); JSON that is not an
/// object of the expected shape, unknown fields included, is invalid input
/// (422). Both say where. The syntax is checked on its own first, so that
/// trailing garbage is not reported as a missing field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice::<IgnoredAny>(bytes)
        .map_err(|e| Problem::new(Code::MalformedBody, e.to_string()))?;
    // serde would also take a struct from an array of its fields, in order.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::new(
            Code::InvalidBody,
            "the body must be a JSON object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| Problem::new(Code::InvalidBody, e.to_string()))
}

/// Path parameters.
#[derive(Debug)]
pub(crate) struct PathParam<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(e) => Err(Problem::new(Code::InvalidPath, e.body_text())),
        }
    }
}

/// Query parameters.
#[derive(Debug)]
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(value)) => Ok(Self(value)),
            Err(e) => Err(Problem::new(Code::InvalidQuery, e.body_text())),
        }
    }
}

/// The credits rail and its store, or `503 store_unavailable` when the
/// gateway runs without one. Extract it first, so that a gateway without a
/// store says so whatever else is wrong with the request.
#[derive(Debug)]
pub(crate) struct StoreAccess(pub(crate) Arc<Credits>);

impl FromRequestParts<AdminState> for StoreAccess {
    type Rejection = Problem;

    async fn from_request_parts(_: &mut Parts, state: &AdminState) -> Result<Self, Problem> {
        state.credits.clone().map(Self).ok_or_else(|| {
            Problem::new(
                Code::StoreUnavailable,
                "this gateway runs without a store, so it keeps no accounts",
            )
        })
    }
}

/// The plans rail selling at least one plan, or `409 plans_not_configured`
/// when the gateway runs without it or its config has no `[[plans]]`.
/// Extract it after [`StoreAccess`].
#[derive(Debug)]
pub(crate) struct PlansAccess(pub(crate) Arc<Plans>);

impl FromRequestParts<AdminState> for PlansAccess {
    type Rejection = Problem;

    async fn from_request_parts(_: &mut Parts, state: &AdminState) -> Result<Self, Problem> {
        match &state.plans {
            Some(plans) if !plans.catalog().is_empty() => Ok(Self(plans.clone())),
            _ => Err(Problem::new(
                Code::PlansNotConfigured,
                "this gateway sells no plans: add [[plans]] to its config",
            )),
        }
    }
}

/// A valid `Idempotency-Key` header: 1 to 255 printable ASCII characters.
#[derive(Debug)]
pub(crate) struct IdempotencyKey(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(if parts.headers.contains_key(IDEMPOTENCY_KEY) {
                invalid_key("send one Idempotency-Key header, not several")
            } else {
                Problem::new(
                    Code::IdempotencyKeyRequired,
                    "send an Idempotency-Key header so that a retry cannot add money twice",
                )
            });
        };
        valid_idempotency_key(value.as_bytes()).map(Self)
    }
}

fn valid_idempotency_key(bytes: &[u8]) -> Result<String, Problem> {
    if bytes.is_empty() || bytes.len() > MAX_IDEMPOTENCY_KEY {
        return Err(invalid_key(
            "the Idempotency-Key must be 1 to 255 characters",
        ));
    }
    if !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(invalid_key(
            "the Idempotency-Key must be printable ASCII characters",
        ));
    }
    // Printable ASCII is UTF-8.
    String::from_utf8(bytes.to_vec())
        .map_err(|_| invalid_key("the Idempotency-Key must be printable ASCII characters"))
}

fn invalid_key(detail: &str) -> Problem {
    Problem::new(Code::InvalidIdempotencyKey, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn json_media_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for (value, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("text/json+xml", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_json(&h), ok, "{value}");
        }
    }

    #[test]
    fn syntax_is_400_and_shape_is_422() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            name: String,
        }
        let code = |text: &str| parse_json::<Body>(text.as_bytes()).unwrap_err().code;
        assert_eq!(code("{"), Code::MalformedBody);
        assert_eq!(code(""), Code::MalformedBody);
        assert_eq!(code("{\"name\": \"a\"} x"), Code::MalformedBody);
        assert_eq!(code("{\"name\": 1}"), Code::InvalidBody);
        assert_eq!(code("[\"a\"]"), Code::InvalidBody);
        assert_eq!(code("\"a\""), Code::InvalidBody);
        let unknown = parse_json::<Body>(br#"{"name":"a","id":"b"}"#).unwrap_err();
        assert_eq!(unknown.code, Code::InvalidBody);
        assert!(unknown.detail.contains("unknown field `id`"), "{unknown:?}");
    }

    #[test]
    fn idempotency_keys() {
        assert!(valid_idempotency_key(b"a").is_ok());
        assert!(valid_idempotency_key(b"order 42/retry-1").is_ok());
        assert!(valid_idempotency_key(&[b'k'; 255]).is_ok());
        for bad in [
            &b""[..],
            &[b'k'; 256],
            b"tab\there",
            b"caf\xc3\xa9",
            b"nul\0",
        ] {
            assert_eq!(
                valid_idempotency_key(bad).unwrap_err().code,
                Code::InvalidIdempotencyKey
            );
        }
    }
}
