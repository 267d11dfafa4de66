//! One request on the HTTP/1 data plane: the same stages as
//! [`pipeline`](crate::pipeline), in the same order,
//!
//! ```text
//! route -> identify -> price -> authorize -> forward -> meter -> settle -> observe
//! ```
//!
//! with `forward` and `meter` done here on the wire ([`relay`](super::relay))
//! and `settle` and `observe` through the same record as on hyper's path.
//!
//! Served here: proxy routes whose upstreams are all `http://` and whose
//! rails settle after the body (credits, plans), their refusals, and problem
//! pages. Everything else (LLM routes, x402, the billing and x402
//! endpoints, CORS preflights) goes to hyper.

use faregate_core::{Decision, Problem, RailKind};
use http::Method;
use http::uri::Scheme;

use super::codec::{Framing, RequestHead};
use super::{Conn, Flow};
use crate::config::{Access, Route};
use crate::pipeline::Ctx;
use crate::route::Target;
use crate::settle::PendingHold;
use crate::{authorize, identify, meter, price, respond, route};

/// Whether this plane serves requests of `route` end to end.
fn served_here(route: &Route) -> bool {
    route.llm.is_none()
        && !route.upstreams.is_empty()
        && route.upstreams.iter().all(|u| u.scheme == Scheme::HTTP)
        && match &route.access {
            Access::Anyone | Access::ApiKey => true,
            Access::Rails(kinds) => kinds
                .iter()
                .all(|k| matches!(k, RailKind::Credits | RailKind::Plans)),
        }
}

/// What became of the request's body when the gateway answered itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyState {
    /// Not read: skipped when it is already buffered, else the connection closes.
    Unread,
    /// Read to its end.
    Read,
    /// Read in part: the connection cannot carry another request.
    Broken,
}

/// How a served exchange ended, for the record that settles and logs it.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) status: u16,
    /// Body bytes sent.
    pub(super) sent: u64,
    pub(super) complete: bool,
    pub(super) error: Option<String>,
}

impl Conn {
    pub(super) async fn exchange(&mut self, head: &RequestHead) -> Flow {
        if head.unusual {
            return Flow::Handoff(head.raw.clone());
        }
        let mut ctx = Ctx::new(self.gw.clone(), &head.request, self.info.clone());
        match self.stages(&mut ctx, head).await {
            Some((flow, done)) => {
                meter::finish_now(ctx, done.status, done.sent, done.complete, done.error);
                flow
            }
            None => Flow::Handoff(head.raw.clone()),
        }
    }

    /// The stages before `forward`; `None` hands the request to hyper.
    async fn stages(&mut self, ctx: &mut Ctx, head: &RequestHead) -> Option<(Flow, Done)> {
        let req = &head.request;
        let route = match route::route(ctx, req) {
            Ok(Target::Route(route)) if served_here(&route) => route,
            Ok(Target::ProblemPage(code)) => {
                let page = respond::problem_page(code);
                return Some(self.answer(ctx, head, page, BodyState::Unread).await);
            }
            Ok(_) => return None,
            Err(problem) => return Some(self.refuse(ctx, head, problem, BodyState::Unread).await),
        };
        let caller = match identify::identify(ctx, &route, req.headers()) {
            Ok(caller) => caller,
            Err(problem) => return Some(self.refuse(ctx, head, problem, BodyState::Unread).await),
        };
        let price = price::price(&route, req);
        match authorize::authorize(ctx, &route, &caller, price, req).await {
            Decision::Allow(hold) => ctx.hold = PendingHold::new(hold, &ctx.gw),
            Decision::PaymentRequired(challenge) => {
                let response = respond::challenge(ctx, challenge);
                return Some(self.answer(ctx, head, response, BodyState::Unread).await);
            }
            Decision::Deny(problem) => {
                return Some(self.refuse(ctx, head, problem, BodyState::Unread).await);
            }
        }
        Some(self.forward(ctx, &route, &caller, head).await)
    }

    /// Answers `problem` for the request.
    pub(super) async fn refuse(
        &mut self,
        ctx: &mut Ctx,
        head: &RequestHead,
        problem: Problem,
        body: BodyState,
    ) -> (Flow, Done) {
        let response = respond::problem(ctx, problem);
        self.answer(ctx, head, response, body).await
    }

    /// Sends a response the gateway made.
    pub(super) async fn answer(
        &mut self,
        ctx: &Ctx,
        head: &RequestHead,
        mut response: http::Response<crate::body::ResponseBody>,
        body: BodyState,
    ) -> (Flow, Done) {
        meter::common_headers(ctx, response.headers_mut());
        let status = response.status().as_u16();
        let reusable = match body {
            BodyState::Read => true,
            BodyState::Broken => false,
            BodyState::Unread => self.skip_body(head),
        };
        let keep = reusable && self.keeps_alive(head);
        let head_only = head.request.method() == Method::HEAD;
        let sent = self
            .write_gateway_response(response, head_only, !keep)
            .await;
        let error = sent
            .is_none()
            .then(|| "client closed before the response was written".to_owned());
        let flow = if keep && sent.is_some() {
            Flow::KeepAlive
        } else {
            Flow::Close
        };
        let done = Done {
            status,
            sent: sent.unwrap_or(0),
            complete: sent.is_some(),
            error,
        };
        (flow, done)
    }

    /// Whether the connection may carry another request after this one,
    /// its body aside.
    pub(super) fn keeps_alive(&self, head: &RequestHead) -> bool {
        head.keep_alive && !head.ambiguous && !self.stop.is_set()
    }

    /// Drops an unread request body that is already buffered whole; false
    /// when some of it is still on its way (the connection then closes).
    fn skip_body(&mut self, head: &RequestHead) -> bool {
        match head.body {
            Framing::None => true,
            Framing::Length(n) if !head.expect_continue && (self.buf.len() as u64) >= n => {
                let _ = self.buf.split_to(n as usize);
                true
            }
            _ => false,
        }
    }
}
