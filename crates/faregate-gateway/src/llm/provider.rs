//! Calling a model's providers in order. A provider that refuses the
//! connection, times out before answering, or answers 5xx or 429 is passed
//! over for the next one; nothing has reached the caller yet, so trying
//! again is safe. Every provider tried is named in the access log.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use faregate_core::{Problem, ProblemCode};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri, Version};
use hyper::body::Incoming;

use crate::body::RequestBody;
use crate::config::Route;
use crate::config::llm::{LlmSettings, ModelTarget, Provider, ProviderKind};
use crate::headers::{X_REQUEST_ID, strip_hop_by_hop};
use crate::pipeline::Ctx;
use crate::pool::Lease;

/// Anthropic's API version when the caller names none.
static ANTHROPIC_VERSION: HeaderValue = HeaderValue::from_static("2023-06-01");
static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Request headers never passed to a provider: the caller's credentials
/// (the provider gets the gateway's), and encodings the gateway would have
/// to undo to read usage.
const WITHHELD: &[&str] = &[
    "authorization",
    "x-api-key",
    "cookie",
    "accept-encoding",
    "content-length",
    "content-encoding",
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// What a provider answered.
pub(crate) struct Answer {
    pub(crate) response: Response<Incoming>,
    pub(crate) lease: Option<Lease>,
}

/// Sends the call to each target in turn until one answers with something
/// other than 5xx or 429; the last one's answer is returned whatever it
/// is. `body_for` makes the body for a target (its model name in it).
pub(crate) async fn call(
    ctx: &mut Ctx,
    route: &Route,
    llm: &LlmSettings,
    targets: &[&ModelTarget],
    path: &str,
    caller_headers: &HeaderMap,
    body_for: &(dyn Fn(&ModelTarget) -> Bytes + Sync),
) -> Result<Answer, Problem> {
    let mut last = Problem::new(
        ProblemCode::UpstreamUnreachable,
        "no provider serves this model",
    );
    for (i, target) in targets.iter().enumerate() {
        let is_last = i + 1 == targets.len();
        let provider = &llm.providers[target.provider];
        ctx.tried.push(target.label.clone());
        let request = request(ctx, provider, path, caller_headers, body_for(target))?;
        match send(ctx, route, provider, request).await {
            Ok(answer) => {
                let status = answer.response.status();
                ctx.upstream_status = Some(status.as_u16());
                let retry = status.is_server_error() || status.as_u16() == 429;
                if retry && !is_last {
                    ctx.error = Some(format!("{}: answered {status}", target.label));
                    continue;
                }
                return Ok(answer);
            }
            Err(problem) => {
                ctx.gw
                    .metrics
                    .upstream_errors
                    .fetch_add(1, Ordering::Relaxed);
                last = problem;
            }
        }
    }
    ctx.upstream_status = None;
    Err(last)
}

fn request(
    ctx: &Ctx,
    provider: &Provider,
    path: &str,
    caller_headers: &HeaderMap,
    body: Bytes,
) -> Result<Request<RequestBody>, Problem> {
    let upstream = &provider.upstream;
    let target = PathAndQuery::try_from(format!("{}{path}", upstream.base_path))
        .map_err(|_| Problem::new(ProblemCode::InternalError, "bad provider path"))?;
    let uri = if upstream.scheme == Scheme::HTTP {
        Uri::from(target)
    } else {
        Uri::builder()
            .scheme(upstream.scheme.clone())
            .authority(upstream.authority.clone())
            .path_and_query(target)
            .build()
            .map_err(|_| Problem::new(ProblemCode::InternalError, "bad provider URL"))?
    };
    let mut headers = caller_headers.clone();
    strip_hop_by_hop(&mut headers);
    for name in WITHHELD {
        headers.remove(*name);
    }
    headers.insert(header::HOST, upstream.host_header.clone());
    headers.insert(header::CONTENT_TYPE, APPLICATION_JSON.clone());
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    if let Some(v) = ctx.request_id_value() {
        headers.insert(X_REQUEST_ID.clone(), v);
    }
    if provider.kind == ProviderKind::Anthropic {
        let version = HeaderName::from_static("anthropic-version");
        if !headers.contains_key(&version) {
            headers.insert(version, ANTHROPIC_VERSION.clone());
        }
    }
    for (name, value) in &provider.auth {
        headers.insert(name.clone(), value.clone());
    }
    let mut req = Request::new(RequestBody::full(body, ctx.tally.clone()));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    Ok(req)
}

async fn send(
    ctx: &mut Ctx,
    route: &Route,
    provider: &Provider,
    req: Request<RequestBody>,
) -> Result<Answer, Problem> {
    let upstream = &provider.upstream;
    let snap = ctx.snap.clone();
    let sent = if upstream.scheme == Scheme::HTTP {
        crate::forward::first_byte(ctx, route, snap.pool.send(&upstream.authority, req))
            .await
            .map(|r| {
                r.map(|(response, lease)| Answer {
                    response,
                    lease: Some(lease),
                })
                .map_err(|e| e.to_string())
            })
    } else {
        crate::forward::first_byte(ctx, route, snap.client.request(req))
            .await
            .map(|r| {
                r.map(|response| Answer {
                    response,
                    lease: None,
                })
                .map_err(|e| e.to_string())
            })
    };
    match sent {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => {
            ctx.error = Some(format!("{}: {e}", provider.name));
            Err(Problem::new(
                ProblemCode::UpstreamUnreachable,
                "the model's provider refused the connection or broke it",
            ))
        }
        Err(_) => {
            ctx.error = Some(format!("{}: no answer in time", provider.name));
            Err(Problem::new(
                ProblemCode::UpstreamTimeout,
                "the model's provider did not answer in time",
            ))
        }
    }
}
