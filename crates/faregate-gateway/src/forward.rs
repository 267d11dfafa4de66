//! Stage 5, `forward`: send the request to an upstream and wait for the
//! response head. Bodies stream both ways; headers are cleaned (hop-by-hop
//! removed, the gateway's own credential removed, `Forwarded` and
//! `X-Forwarded-*` set, the request id passed on).
//!
//! An upstream that refuses the connection is marked down for a moment and,
//! when the request has no body to replay, the next one is tried. Refused or
//! broken answers are 502, time-outs 504, no upstream at all 503.

use std::sync::atomic::Ordering;
use std::time::Duration;

use faregate_core::{Problem, ProblemCode};
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::uri::Scheme;
use http::{Request, Response, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::body::{BodyError, RequestBody};
use crate::config::{Balance, Route, Upstream};
use crate::gateway::RouteState;
use crate::headers::{X_REQUEST_ID, set_forwarded, strip_hop_by_hop};
use crate::identify::Caller;
use crate::pipeline::Ctx;
use crate::pool::{Lease, SendError};

/// How long an upstream that refused a connection is skipped.
const DOWN_FOR: Duration = Duration::from_secs(5);

pub(crate) async fn forward(
    ctx: &mut Ctx,
    route: &Route,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<(Response<Incoming>, Option<Lease>), Problem> {
    let (mut parts, body) = req.into_parts();
    let limit = route.limits.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    prepare_headers(ctx, route, caller, &mut parts.headers);
    parts.version = Version::HTTP_11;
    let query = parts.uri.query().map(str::to_owned);
    let mut body = Some(RequestBody::new(
        body,
        limit,
        route.limits.body_idle_timeout,
        ctx.tally.clone(),
    ));
    let replayable = body.as_ref().is_some_and(|b| b.is_end_stream());

    let snap = ctx.snap.clone();
    let state = &snap.routes[route.index];
    let now = ctx.started_unix;
    let order = order(route, state, now);
    let mut last = all_down(state, now);
    for (attempt, &i) in order.iter().enumerate() {
        let upstream = &route.upstreams[i];
        let is_last = attempt + 1 == order.len();
        let Some(target) = upstream_target(upstream, route, &ctx.path, query.as_deref()) else {
            return Err(Problem::new(
                ProblemCode::BadRequest,
                "the request target cannot be forwarded",
            ));
        };
        let pooled = upstream.scheme == Scheme::HTTP;
        let uri = if pooled {
            // HTTP/1.1 to the upstream itself: origin-form.
            Uri::from(target)
        } else {
            let uri = Uri::builder()
                .scheme(upstream.scheme.clone())
                .authority(upstream.authority.clone())
                .path_and_query(target);
            match uri.build() {
                Ok(uri) => uri,
                Err(_) => {
                    return Err(Problem::new(
                        ProblemCode::BadRequest,
                        "the request target cannot be forwarded",
                    ));
                }
            }
        };
        let req_body = body
            .take()
            .unwrap_or_else(|| RequestBody::empty(ctx.tally.clone()));
        let mut upstream_req = Request::new(req_body);
        *upstream_req.method_mut() = parts.method.clone();
        *upstream_req.uri_mut() = uri;
        *upstream_req.version_mut() = Version::HTTP_11;
        *upstream_req.headers_mut() = if replayable && !is_last {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        if !route.preserve_host {
            // Set here rather than left to the client, which would build it
            // from the URI on every request.
            upstream_req
                .headers_mut()
                .insert(header::HOST, upstream.host_header.clone());
        }
        ctx.tried.push(upstream.name.clone());
        let sent = if pooled {
            first_byte(
                ctx,
                route,
                snap.pool.send(&upstream.authority, upstream_req),
            )
            .await
            .map(|r| {
                r.map(|(res, lease)| (res, Some(lease)))
                    .map_err(Failure::pool)
            })
        } else {
            first_byte(ctx, route, snap.client.request(upstream_req))
                .await
                .map(|r| r.map(|res| (res, None)).map_err(|e| Failure::legacy(&e)))
        };
        match sent {
            Ok(Ok((response, lease))) => {
                ctx.upstream_status = Some(response.status().as_u16());
                return Ok((response, lease));
            }
            Err(_) => {
                ctx.gw
                    .metrics
                    .upstream_errors
                    .fetch_add(1, Ordering::Relaxed);
                ctx.error = Some(format!(
                    "{}: no response head within {:?}",
                    upstream.authority, route.limits.first_byte_timeout
                ));
                return Err(Problem::new(
                    ProblemCode::UpstreamTimeout,
                    "the upstream did not answer in time",
                ));
            }
            Ok(Err(failure)) => {
                ctx.gw
                    .metrics
                    .upstream_errors
                    .fetch_add(1, Ordering::Relaxed);
                ctx.error = Some(format!("{}: {}", upstream.authority, failure.text));
                if let Some(problem) = failure.caller {
                    return Err(problem);
                }
                if failure.connect {
                    mark_down(route, state, i, now);
                    last = connect_failed(failure.timed_out);
                    if replayable {
                        continue;
                    }
                    return Err(last);
                }
                return Err(broken());
            }
        }
    }
    Err(last)
}

/// Waits for the response head. The first-byte timeout counts from the end
/// of the request body: while the caller is still uploading, the body's own
/// idle timeout guards against a stall, so a long upload is never a 504.
pub(crate) async fn first_byte<F: std::future::Future>(
    ctx: &Ctx,
    route: &Route,
    response: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::pin!(response);
    loop {
        match tokio::time::timeout(route.limits.first_byte_timeout, &mut response).await {
            Err(_) if !ctx.tally.body_done.load(Ordering::Relaxed) => continue,
            done => return done,
        }
    }
}

fn prepare_headers(ctx: &Ctx, route: &Route, caller: &Caller, headers: &mut http::HeaderMap) {
    strip_hop_by_hop(headers);
    // The gateway reads the body at once; the upstream need not send 100.
    headers.remove(header::EXPECT);
    if let Some(name) = caller.key_header {
        headers.remove(name);
    }
    let authority = ctx.authority.as_deref();
    if route.preserve_host {
        if let Some(v) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
            headers.insert(header::HOST, v);
        }
    } else {
        headers.remove(header::HOST);
    }
    set_forwarded(headers, &ctx.conn.hop, authority);
    if let Some(v) = ctx.request_id_value() {
        headers.insert(X_REQUEST_ID.clone(), v);
    }
    for (name, value) in &route.upstream_headers {
        headers.insert(name.clone(), value.clone());
    }
}

/// Marks upstream `i` down for a moment after it refused a connection
/// (a route with one upstream always tries it, as nginx does).
pub(crate) fn mark_down(route: &Route, state: &RouteState, i: usize, now: u64) {
    if route.upstreams.len() > 1 {
        state.down_until[i].store(now + nanos(DOWN_FOR), Ordering::Relaxed);
    }
}

/// Upstream indexes to try, in balance order, skipping those marked down.
/// A route with one upstream always tries it (as nginx does).
pub(crate) fn order(route: &Route, state: &RouteState, now: u64) -> Vec<usize> {
    let n = route.upstreams.len();
    if n == 1 {
        return vec![0];
    }
    let start = match route.balance {
        Balance::RoundRobin => state.next.fetch_add(1, Ordering::Relaxed) % n,
        Balance::Failover => 0,
    };
    (0..n)
        .map(|k| (start + k) % n)
        .filter(|&i| state.down_until[i].load(Ordering::Relaxed) <= now)
        .collect()
}

/// The 503 for a route whose upstreams are all marked down.
pub(crate) fn all_down(state: &RouteState, now: u64) -> Problem {
    let back = state
        .down_until
        .iter()
        .map(|d| d.load(Ordering::Relaxed))
        .min()
        .unwrap_or(now);
    let secs = back.saturating_sub(now).div_ceil(1_000_000_000).max(1);
    Problem::new(
        ProblemCode::UpstreamUnavailable,
        "every upstream of this route is down",
    )
    .with_retry_after(secs)
}

/// The origin-form target the upstream gets: its base path, the request's
/// path (less any stripped prefix), and the query.
fn upstream_target(
    upstream: &Upstream,
    route: &Route,
    path: &str,
    query: Option<&str>,
) -> Option<PathAndQuery> {
    let rest = rest_of(route, path);
    let rest = if rest.is_empty() { "/" } else { rest };
    let mut pq = String::with_capacity(
        upstream.base_path.len() + rest.len() + query.map_or(0, |q| q.len() + 1),
    );
    pq.push_str(&upstream.base_path);
    pq.push_str(rest);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    PathAndQuery::try_from(pq).ok()
}

/// The request's path less the route's stripped prefix (empty when the
/// prefix was all of it).
pub(crate) fn rest_of<'a>(route: &Route, path: &'a str) -> &'a str {
    match &route.strip_prefix {
        Some(prefix) => path
            .strip_prefix(prefix.as_str())
            .filter(|r| r.is_empty() || r.starts_with('/'))
            .unwrap_or(path),
        None => path,
    }
}

/// The answer when no connection to the upstream could be made.
pub(crate) fn connect_failed(timed_out: bool) -> Problem {
    if timed_out {
        Problem::new(
            ProblemCode::UpstreamTimeout,
            "connecting to the upstream timed out",
        )
    } else {
        Problem::new(
            ProblemCode::UpstreamUnreachable,
            "the upstream refused the connection",
        )
    }
}

/// The answer when the upstream broke the exchange off or answered garbage.
pub(crate) fn broken() -> Problem {
    Problem::new(
        ProblemCode::UpstreamUnreachable,
        "the upstream broke the connection or sent an invalid response",
    )
}

pub(crate) fn too_large(limit: u64) -> Problem {
    Problem::new(
        ProblemCode::PayloadTooLarge,
        format!("the request body is larger than {limit} bytes"),
    )
}

/// What went wrong sending to an upstream, whichever client sent it.
struct Failure {
    /// No connection was made.
    connect: bool,
    /// ... because connecting took too long.
    timed_out: bool,
    /// The caller's body broke the exchange (too large, or stalled).
    caller: Option<Problem>,
    /// For the log.
    text: String,
}

impl Failure {
    fn pool(e: SendError) -> Self {
        match e {
            SendError::Connect(io) => Self {
                connect: true,
                timed_out: io.kind() == std::io::ErrorKind::TimedOut,
                caller: None,
                text: format!("connect: {io}"),
            },
            SendError::Http(e) => Self {
                connect: false,
                timed_out: false,
                caller: caller_fault(&e),
                text: chain(&e),
            },
        }
    }

    fn legacy(e: &hyper_util::client::legacy::Error) -> Self {
        Self {
            connect: e.is_connect(),
            timed_out: timed_out(e),
            caller: caller_fault(e),
            text: chain(e),
        }
    }
}

/// A failure caused by the caller's body, not the upstream.
fn caller_fault(e: &dyn std::error::Error) -> Option<Problem> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(b) = s.downcast_ref::<BodyError>() {
            return Some(match b {
                BodyError::TooLarge(limit) => too_large(*limit),
                BodyError::Idle(d) => Problem::new(
                    ProblemCode::RequestTimeout,
                    format!("the request body paused for more than {d:?}"),
                ),
            });
        }
        source = s.source();
    }
    None
}

fn timed_out(e: &dyn std::error::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
