//! The request's way through the gateway, one stage per module:
//!
//! ```text
//! route -> identify -> price -> authorize -> forward -> meter -> settle -> observe
//! ```
//!
//! The first six run before the response head is sent. `settle` and
//! `observe` run when the response body is finished (or the caller leaves),
//! through the [`Finish`](crate::body::Finish) the `meter` stage attaches.

use std::net::IpAddr;
use std::sync::Arc;

use faregate_core::{Decision, Hold, Problem, ProblemCode};
use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::body::{ResponseBody, Tally};
use crate::config::Route;
use crate::gateway::{Gateway, Snapshot};
use crate::route::Target;
use crate::{authorize, forward, identify, meter, price, respond, route, settle};

/// What the gateway knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: IpAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// What this hop adds to forwarded headers, made once per connection.
    pub(crate) hop: Arc<crate::headers::Hop>,
}

impl ConnInfo {
    /// A connection from `peer`, over TLS or not.
    pub fn new(peer: IpAddr, tls: bool) -> Self {
        Self {
            peer,
            tls,
            hop: Arc::new(crate::headers::Hop::new(peer, tls)),
        }
    }

    /// The client's address as text.
    pub(crate) fn client_text(&self) -> &str {
        self.hop.client.to_str().unwrap_or("unknown")
    }
}

/// Everything one request carries through the stages.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) gw: Arc<Gateway>,
    pub(crate) snap: Arc<Snapshot>,
    pub(crate) request_id: String,
    pub(crate) started: std::time::Instant,
    /// When the request arrived, by the gateway's clock: the `now` of
    /// every decision about it (expiry, rate limits, rails).
    pub(crate) started_unix: u64,
    pub(crate) method: Method,
    /// Normalized path, once `route` has checked it.
    pub(crate) path: String,
    /// The authority the caller addressed (validated, lowercase), once
    /// `route` has checked it.
    pub(crate) authority: Option<String>,
    pub(crate) conn: ConnInfo,
    pub(crate) route: Option<Arc<Route>>,
    /// The caller's key id.
    pub(crate) caller: Option<Arc<str>>,
    pub(crate) hold: crate::settle::PendingHold,
    /// The refusal, when the gateway answered itself.
    pub(crate) refusal: Option<ProblemCode>,
    pub(crate) upstream_status: Option<u16>,
    pub(crate) tried: Tried,
    /// What went wrong, for the log only.
    pub(crate) error: Option<String>,
    pub(crate) tally: Arc<Tally>,
    /// `RateLimit-*` values to send: (limit, remaining, reset seconds).
    pub(crate) rate: Option<(u32, u32, u64)>,
    /// Whether the request carried an `Origin` (CORS headers wanted).
    pub(crate) cors: bool,
    /// An LLM call's bill, read when the request settles.
    pub(crate) llm: Option<Arc<crate::llm::LlmCall>>,
}

/// Runs one request through every stage and returns the response.
pub(crate) async fn pipeline(
    gw: Arc<Gateway>,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<ResponseBody> {
    let mut ctx = Ctx::new(gw, &req, conn);
    let response = match stages(&mut ctx, req).await {
        Ok(response) => response,
        Err(problem) => respond::problem(&mut ctx, problem),
    };
    meter::finish_with(ctx, response)
}

async fn stages(ctx: &mut Ctx, req: Request<Incoming>) -> Result<Response<ResponseBody>, Problem> {
    let route = match route::route(ctx, &req)? {
        Target::Route(route) => route,
        Target::ProblemPage(code) => return Ok(respond::problem_page(code)),
        Target::Billing(endpoint) => {
            let plans = ctx.gw.plans.clone().ok_or_else(|| {
                Problem::new(ProblemCode::RouteNotFound, "billing is not enabled")
            })?;
            return crate::billing::serve(ctx, plans, endpoint, req).await;
        }
        Target::X402(endpoint) => return crate::x402::serve(ctx, endpoint, req).await,
        Target::Preflight(route) => return Ok(respond::preflight(&route, &req)),
    };
    let caller = identify::identify(ctx, &route, req.headers())?;
    if let Some(llm) = &route.llm {
        // Priced by tokens (or a prompt's template): the rest of the
        // stages run in `llm`, with the call's worst case as the price.
        return crate::llm::serve(ctx, &route, llm, &caller, req).await;
    }
    let price = price::price(&route, &req);
    match authorize::authorize(ctx, &route, &caller, price, &req).await {
        Decision::Allow(hold) => ctx.hold = crate::settle::PendingHold::new(hold, &ctx.gw),
        Decision::PaymentRequired(challenge) => return Ok(respond::challenge(ctx, challenge)),
        Decision::Deny(problem) => return Err(problem),
    }
    let upstream = forward::forward(ctx, &route, &caller, req).await?;
    let response = meter::meter(ctx, &route, upstream);
    settle::before_head(ctx, response).await
}

/// Runs `route`, `identify`, `price` and `authorize` on a request head
/// without forwarding it: what the gateway would decide, and for which
/// route. Benchmarks measure the decision path through this.
pub async fn decide<B>(
    gw: &Arc<Gateway>,
    req: &Request<B>,
    conn: ConnInfo,
) -> (Option<Arc<str>>, Decision) {
    let mut ctx = Ctx::new(gw.clone(), req, conn);
    let route = match route::route(&mut ctx, req) {
        Ok(Target::Route(route)) => route,
        Ok(
            Target::ProblemPage(_) | Target::Billing(_) | Target::X402(_) | Target::Preflight(_),
        ) => {
            return (None, Decision::Allow(Hold::NONE));
        }
        Err(problem) => return (None, Decision::Deny(problem)),
    };
    let name = Some(route.name.clone());
    let caller = match identify::identify(&mut ctx, &route, req.headers()) {
        Ok(caller) => caller,
        Err(problem) => return (name, Decision::Deny(problem)),
    };
    let price = price::price(&route, req);
    (
        name,
        authorize::authorize(&mut ctx, &route, &caller, price, req).await,
    )
}

impl Ctx {
    pub(crate) fn new<B>(gw: Arc<Gateway>, req: &Request<B>, conn: ConnInfo) -> Self {
        let request_id = crate::headers::client_request_id(req.headers())
            .map_or_else(crate::headers::new_request_id, str::to_owned);
        let started_unix = gw.clock.now();
        Self {
            snap: gw.snapshot(),
            gw,
            request_id,
            started: std::time::Instant::now(),
            started_unix,
            method: req.method().clone(),
            path: String::new(),
            authority: None,
            conn,
            route: None,
            caller: None,
            hold: crate::settle::PendingHold::NONE,
            refusal: None,
            upstream_status: None,
            tried: Tried::default(),
            error: None,
            tally: Arc::default(),
            rate: None,
            cors: crate::headers::find(req.headers(), &http::header::ORIGIN).is_some(),
            llm: None,
        }
    }

    /// The request id as a header value.
    pub(crate) fn request_id_value(&self) -> Option<http::HeaderValue> {
        http::HeaderValue::from_str(&self.request_id).ok()
    }

    /// Scheme and authority the caller reached us at: the configured public
    /// URL, else the request's own.
    pub(crate) fn origin(&self) -> String {
        match (&self.snap.config.public_url, &self.authority) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(host)) => {
                format!("{}://{host}", if self.conn.tls { "https" } else { "http" })
            }
            (None, None) => String::new(),
        }
    }

    /// The base of problem `type` URIs.
    pub(crate) fn problem_base(&self) -> String {
        format!("{}{}", self.origin(), crate::respond::PROBLEM_PATH)
    }
}

/// The upstreams a request tried, in order; one, the usual case, is held
/// without allocating.
#[derive(Debug, Default)]
pub(crate) struct Tried {
    first: Option<Arc<str>>,
    rest: Vec<Arc<str>>,
}

impl Tried {
    pub(crate) fn push(&mut self, name: Arc<str>) {
        if self.first.is_none() {
            self.first = Some(name);
        } else {
            self.rest.push(name);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
        self.first.iter().chain(&self.rest)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}
