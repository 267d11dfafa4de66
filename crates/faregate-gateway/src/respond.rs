//! Responses the gateway makes itself: problem documents, 402 challenges,
//! and the pages that problem `type` URIs point to. All of them go through
//! here, so every one carries the same headers.

use faregate_core::{Challenge, Problem, ProblemCode};
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ResponseBody;
use crate::config::Route;
use crate::pipeline::Ctx;

/// Where the gateway serves one page per problem code.
pub const PROBLEM_PATH: &str = "/_faregate/problems/";

static PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// A problem+json response for `problem`.
pub(crate) fn problem(ctx: &mut Ctx, problem: Problem) -> Response<ResponseBody> {
    ctx.refusal = Some(problem.code);
    let body = problem.to_json(&ctx.problem_base(), &ctx.request_id);
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() =
        StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, PROBLEM_JSON.clone());
    headers.insert(header::CACHE_CONTROL, NO_STORE.clone());
    if let Some(seconds) = problem.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    match problem.code {
        ProblemCode::MissingCredentials | ProblemCode::InvalidApiKey => {
            let value = if problem.code == ProblemCode::InvalidApiKey {
                "Bearer realm=\"faregate\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"faregate\""
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        ProblemCode::MethodNotAllowed => {
            let allow = problem
                .extensions
                .get("allow")
                .and_then(|v| v.as_array())
                .map(|list| {
                    list.iter()
                        .filter_map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                });
            if let Some(v) = allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
                headers.insert(header::ALLOW, v);
            }
        }
        _ => {}
    }
    response
}

/// A 402 carrying every rail's headers at once.
pub(crate) fn challenge(ctx: &mut Ctx, challenge: Challenge) -> Response<ResponseBody> {
    let mut response = problem(ctx, challenge.problem.clone());
    let headers = response.headers_mut();
    for (name, value) in challenge.headers() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    response
}

/// The request headers a browser may send to a paid route: every rail's
/// credential header.
static ALLOW_HEADERS: HeaderValue = HeaderValue::from_static(
    "PAYMENT-SIGNATURE, Authorization, X-Api-Key, Content-Type, X-Request-Id, Idempotency-Key",
);

/// The answer to a CORS preflight for a paid route: any origin, the
/// route's methods, every payment header.
pub(crate) fn preflight<B>(route: &Route, req: &http::Request<B>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let methods = match &route.methods {
        Some(ms) => ms
            .iter()
            .map(http::Method::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        None => req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("GET")
            .to_owned(),
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if let Ok(v) = HeaderValue::from_str(&methods) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS.clone());
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// A 500 for a request whose pipeline failed outright: no detail, a fresh
/// request id to find it in the operator's log.
pub(crate) fn internal_error() -> Response<ResponseBody> {
    let id = crate::headers::new_request_id();
    tracing::error!(request_id = %id, "the request pipeline panicked; answered 500");
    let body = Problem::from_code(ProblemCode::InternalError).to_json(PROBLEM_PATH, &id);
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, PROBLEM_JSON.clone());
    headers.insert(header::CACHE_CONTROL, NO_STORE.clone());
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(crate::headers::X_REQUEST_ID.clone(), v);
    }
    response
}

/// The HTML page explaining `code`.
pub(crate) fn problem_page(code: ProblemCode) -> Response<ResponseBody> {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code}: {title}</title></head>\n\
         <body><h1>{title}</h1>\n<p>HTTP status <b>{status}</b>, problem code <code>{code}</code>.</p>\n<p>{explain}</p>\n\
         <p>faregate answers every refusal with an <code>application/problem+json</code> document (RFC 9457) whose \
         <code>type</code> is this page.</p></body></html>\n",
        code = code.as_str(),
        title = code.title(),
        status = code.status(),
        explain = code.explanation(),
    );
    let mut response = Response::new(ResponseBody::full(page));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}
