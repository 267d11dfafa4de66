//! Stage 6, `meter`: measure what the response used. The upstream's body is
//! wrapped so its bytes are counted as they stream; when it ends (or the
//! caller leaves), the request's [`Finished`] record runs `settle` and then
//! `observe`.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Waker};

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response};
use hyper::body::Incoming;

use crate::body::{Finish, ResponseBody};
use crate::config::Route;
use crate::headers::{
    RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET, X_REQUEST_ID, strip_hop_by_hop,
};
use crate::observe::Record;
use crate::pipeline::Ctx;
use crate::pool::Lease;
use crate::settle;

static EXPOSE: HeaderValue = HeaderValue::from_static(crate::headers::EXPOSED);

/// Wraps the upstream's response for streaming and counting.
pub(crate) fn meter(
    _ctx: &mut Ctx,
    route: &Route,
    (upstream, lease): (Response<Incoming>, Option<Lease>),
) -> Response<ResponseBody> {
    let (mut parts, body) = upstream.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(
        parts,
        ResponseBody::upstream(body, route.limits.idle_timeout, lease),
    )
}

/// Adds the headers every response carries and attaches the record that
/// settles and logs the request when its body is done.
pub(crate) fn finish_with(
    ctx: Ctx,
    mut response: Response<ResponseBody>,
) -> Response<ResponseBody> {
    common_headers(&ctx, response.headers_mut());
    let record = Record::new(ctx, response.status().as_u16());
    response.body_mut().on_finish(Box::new(Finished(record)));
    response
}

/// The headers every response carries. The HTTP/1 data plane writes the
/// same ones straight onto upstream responses (`h1/response.rs`).
pub(crate) fn common_headers(ctx: &Ctx, headers: &mut HeaderMap) {
    if let Some(v) = ctx.request_id_value() {
        headers.insert(X_REQUEST_ID.clone(), v);
    }
    if let Some((limit, remaining, reset)) = ctx.rate {
        headers.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(limit));
        headers.insert(RATELIMIT_REMAINING.clone(), HeaderValue::from(remaining));
        headers.insert(RATELIMIT_RESET.clone(), HeaderValue::from(reset));
    }
    // Browsers may read our refusals, and the payment headers of a paid
    // response; an upstream's own CORS answer is kept.
    let paid = ctx
        .route
        .as_ref()
        .is_some_and(|r| matches!(r.access, crate::config::Access::Rails(_)));
    if ctx.cors && (ctx.refusal.is_some() || paid) {
        if ctx.refusal.is_some() {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        } else {
            headers
                .entry(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .or_insert_with(|| HeaderValue::from_static("*"));
        }
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE.clone());
    }
}

/// Settles and logs a request whose response the caller wrote itself
/// (the HTTP/1 data plane), as the response body's hook does on hyper's.
pub(crate) fn finish_now(
    ctx: Ctx,
    status: u16,
    bytes_out: u64,
    complete: bool,
    error: Option<String>,
) {
    Finished(Record::new(ctx, status)).run(bytes_out, complete, error);
}

/// The request's record, waiting for its body to end.
struct Finished(Record);

impl Finish for Finished {
    fn finish(self: Box<Self>, bytes_out: u64, complete: bool, error: Option<String>) {
        (*self).run(bytes_out, complete, error);
    }
}

impl Finished {
    fn run(self, bytes_out: u64, complete: bool, error: Option<String>) {
        let Finished(record) = self;
        if record.hold.rail.is_none() {
            record.observe(bytes_out, complete, None, error);
            return;
        }
        // A rail holds money: settling may wait on a store or a chain.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            record.observe(
                bytes_out,
                complete,
                None,
                Some("no runtime to settle on".into()),
            );
            return;
        };
        let mut settling = Box::pin(async move {
            let gw = Arc::clone(&record.gw);
            let charge = settle::after_body(&gw, &record, complete).await;
            record.observe(bytes_out, complete, charge, error);
        });
        // Rails that settle in memory (credits, plans) are done at once;
        // only one that must wait gets a task of its own.
        let mut cx = Context::from_waker(Waker::noop());
        if settling.as_mut().poll(&mut cx).is_pending() {
            runtime.spawn(settling);
        }
    }
}
