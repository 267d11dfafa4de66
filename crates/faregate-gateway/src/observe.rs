//! Stage 8, `observe`: one access-log line and the metrics of every request,
//! refused or served.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use faregate_core::{Hold, Money, ProblemCode};
use http::Method;

use crate::access_log::{Entry, Rfc3339};
use crate::body::Tally;
use crate::config::Route;
use crate::gateway::Gateway;
use crate::metrics::RouteMetrics;
use crate::pipeline::Ctx;

/// What is kept of a request once its response head has gone out.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) gw: Arc<Gateway>,
    pub(crate) hold: Hold,
    pub(crate) status: u16,
    pub(crate) upstream_status: Option<u16>,
    pub(crate) request_id: String,
    started: std::time::Instant,
    started_unix: u64,
    method: Method,
    path: String,
    pub(crate) route: Option<Arc<Route>>,
    metrics: Arc<RouteMetrics>,
    caller: Option<Arc<str>>,
    conn: crate::pipeline::ConnInfo,
    refusal: Option<ProblemCode>,
    tried: crate::pipeline::Tried,
    error: Option<String>,
    tally: Arc<Tally>,
    /// An LLM call's bill.
    pub(crate) llm: Option<Arc<crate::llm::LlmCall>>,
}

impl Record {
    pub(crate) fn new(ctx: Ctx, status: u16) -> Self {
        let metrics = match &ctx.route {
            Some(r) => ctx.snap.routes[r.index].metrics.clone(),
            None => ctx.snap.unrouted.clone(),
        };
        Self {
            gw: ctx.gw,
            hold: { ctx.hold }.take(),
            status,
            upstream_status: ctx.upstream_status,
            request_id: ctx.request_id,
            started: ctx.started,
            started_unix: ctx.started_unix,
            method: ctx.method,
            path: ctx.path,
            route: ctx.route,
            metrics,
            caller: ctx.caller,
            conn: ctx.conn,
            llm: ctx.llm,
            refusal: ctx.refusal,
            tried: ctx.tried,
            error: ctx.error,
            tally: ctx.tally,
        }
    }

    /// Logs and counts the finished request.
    pub(crate) fn observe(
        &self,
        bytes_out: u64,
        complete: bool,
        charge: Option<Money>,
        error: Option<String>,
    ) {
        let took = self.started.elapsed();
        let bytes_in = self.tally.bytes_in.load(Relaxed);
        self.metrics
            .record(self.status, self.refusal, took, bytes_in, bytes_out);
        let error = self.error.as_deref().or(error.as_deref());
        if let Some(e) = error {
            tracing::debug!(request_id = %self.request_id, error = e, "request ended with an error");
        }
        self.gw.access_log.write(&Entry {
            time: Rfc3339(self.started_unix),
            request_id: &self.request_id,
            route: self.route.as_ref().map(|r| &*r.name),
            method: self.method.as_str(),
            path: &self.path,
            status: self.status,
            upstream_status: self.upstream_status,
            upstreams: &self.tried,
            duration_us: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            bytes_in,
            bytes_out,
            caller: self.caller.as_deref(),
            client: self.conn.client_text(),
            decision: self.refusal.map_or("allow", ProblemCode::as_str),
            charge,
            complete,
            error,
        });
    }
}
