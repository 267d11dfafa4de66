//! The gateway's own x402 endpoints, served before routing:
//!
//! - `GET /.well-known/x402`: every x402 route with its offers at its
//!   price, its description and its `bazaar` metadata (discovery);
//! - `POST /x402/verify`, `POST /x402/settle`, `GET /x402/supported` when
//!   `[x402] facilitator = true`: faregate as a facilitator for other x402
//!   servers, with the same verifier and settler as its own routes.

use std::sync::Arc;

use faregate_core::{Problem, ProblemCode};
use faregate_rails::x402::X402;
use faregate_x402::wire::{FacilitatorRequest, VerifyResponse, X402_VERSION};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::billing::{json_response, read_body};
use crate::body::ResponseBody;
use crate::pipeline::Ctx;

/// The largest facilitator request body read.
const MAX_FACILITATOR_BODY: usize = 64 * 1024;

/// Which endpoint a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Discovery,
    Verify,
    Settle,
    Supported,
}

impl Endpoint {
    /// The endpoint at `path`, if it is one.
    pub(crate) fn of(path: &str) -> Option<Self> {
        Some(match path {
            "/.well-known/x402" => Self::Discovery,
            "/x402/verify" => Self::Verify,
            "/x402/settle" => Self::Settle,
            "/x402/supported" => Self::Supported,
            _ => return None,
        })
    }

    fn method(self) -> Method {
        match self {
            Self::Verify | Self::Settle => Method::POST,
            Self::Discovery | Self::Supported => Method::GET,
        }
    }
}

pub(crate) async fn serve(
    ctx: &mut Ctx,
    endpoint: Endpoint,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Problem> {
    if *req.method() != endpoint.method() {
        let allow = endpoint.method().to_string();
        return Err(Problem::new(
            ProblemCode::MethodNotAllowed,
            format!("{} is not allowed here; allowed: {allow}", req.method()),
        )
        .with_extension("allow", vec![Value::from(allow)].into()));
    }
    if endpoint == Endpoint::Discovery {
        return Ok(json_response(&discovery(ctx)));
    }
    let not_found = || {
        Problem::new(
            ProblemCode::RouteNotFound,
            "this gateway is not an x402 facilitator",
        )
    };
    let rail: Arc<X402> = ctx.gw.x402.clone().ok_or_else(not_found)?;
    if !ctx.snap.config.x402.facilitator {
        return Err(not_found());
    }
    let answer = match endpoint {
        Endpoint::Supported => {
            let supported = rail.facilitate_supported().await.map_err(|e| {
                tracing::error!(error = %e, "x402 /supported failed");
                Problem::new(ProblemCode::UpstreamUnreachable, "the chain did not answer")
            })?;
            serde_json::to_value(supported).unwrap_or_default()
        }
        Endpoint::Verify | Endpoint::Settle => {
            let body = read_body(req, MAX_FACILITATOR_BODY).await?;
            let request: FacilitatorRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return Ok(malformed(&e.to_string())),
            };
            if endpoint == Endpoint::Verify {
                serde_json::to_value(rail.facilitate_verify(&request).await)
            } else {
                serde_json::to_value(rail.facilitate_settle(&request).await)
            }
            .unwrap_or_default()
        }
        Endpoint::Discovery => unreachable!("answered above"),
    };
    Ok(json_response(&answer))
}

/// A body that is not a facilitator request: 400 with the `isValid: false`
/// shape clients of a facilitator read.
fn malformed(why: &str) -> Response<ResponseBody> {
    let answer = VerifyResponse {
        is_valid: false,
        invalid_reason: Some(faregate_x402::reason::INVALID_PAYLOAD.to_owned()),
        invalid_message: Some(format!("not a facilitator request: {why}")),
        payer: None,
    };
    let mut response = json_response(&serde_json::to_value(answer).unwrap_or_default());
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

/// `/.well-known/x402`: each x402 route, priced, in file order.
fn discovery(ctx: &Ctx) -> Value {
    let origin = ctx.origin();
    let config = &ctx.snap.config;
    let mut routes: Vec<_> = config.routes.routes().iter().collect();
    routes.sort_by_key(|r| r.index);
    let resources: Vec<Value> = routes
        .iter()
        .filter_map(|route| {
            let x = config.x402.routes.get(&*route.name)?;
            let price = route.price.amount()?;
            let url = format!("{origin}{}", route.path);
            let required = x.payment_required(&url, price, "Payment required")?;
            let methods: Option<Vec<&str>> = route
                .methods
                .as_ref()
                .map(|ms| ms.iter().map(Method::as_str).collect());
            Some(json!({
                "url": url,
                "type": "http",
                "route": &*route.name,
                "methods": methods,
                "price": price.decimal_string(),
                "currency": price.currency().code(),
                "description": x.description,
                "mimeType": x.mime_type,
                "accepts": required.accepts,
                "extensions": required.extensions,
                "bundle": x.bundle.map(|b| json!({
                    "calls": b.calls,
                    "seconds": b.lifetime.as_secs(),
                })),
            }))
        })
        .collect();
    json!({ "x402Version": X402_VERSION, "resources": resources })
}
