//! The gateway's own billing endpoints, served before routing:
//!
//! - `/billing/…` for subscribers, authenticated with their own API key:
//!   `GET subscription`, `POST subscription/activate`,
//!   `POST subscription/cancel`, `GET usage`, `GET invoices`,
//!   `GET receipts`;
//! - `POST /webhooks/stripe` for the card processor, authenticated by the
//!   signature over the raw body.
//!
//! Both exist only when the gateway runs with the plans rail. Bodies are
//! read whole but bounded; answers are JSON or problem+json.

use std::sync::Arc;

use bytes::Bytes;
use faregate_core::{Problem, ProblemCode};
use faregate_rails::Credential;
use faregate_rails::plans::{MAX_WEBHOOK_BODY, Plans};
use faregate_store::DocumentKind;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use crate::body::ResponseBody;
use crate::pipeline::Ctx;

/// The largest body a subscriber's billing call may send.
const MAX_BILLING_BODY: usize = 64 * 1024;

/// Which endpoint a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    StripeWebhook,
    Subscription,
    Activate,
    Cancel,
    Usage,
    Invoices,
    Receipts,
}

impl Endpoint {
    /// The endpoint at `path`, if it is one.
    pub(crate) fn of(path: &str) -> Option<Self> {
        Some(match path {
            "/webhooks/stripe" => Self::StripeWebhook,
            "/billing/subscription" => Self::Subscription,
            "/billing/subscription/activate" => Self::Activate,
            "/billing/subscription/cancel" => Self::Cancel,
            "/billing/usage" => Self::Usage,
            "/billing/invoices" => Self::Invoices,
            "/billing/receipts" => Self::Receipts,
            _ => return None,
        })
    }

    fn method(self) -> Method {
        match self {
            Self::StripeWebhook | Self::Activate | Self::Cancel => Method::POST,
            _ => Method::GET,
        }
    }
}

pub(crate) async fn serve(
    ctx: &mut Ctx,
    plans: Arc<Plans>,
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
    if endpoint == Endpoint::StripeWebhook {
        let signature = req
            .headers()
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_body(req, MAX_WEBHOOK_BODY).await?;
        let reply = plans.stripe_webhook(signature.as_deref(), &body).await?;
        return Ok(json_response(&reply.to_json()));
    }
    let caller = crate::identify::credentials(ctx, req.headers())?;
    let account = match (&caller.credential, &caller.key) {
        (Credential::ApiKey(_), Some(key)) => {
            if key.expired(ctx.gw.clock.now()) {
                return Err(Problem::new(
                    ProblemCode::ExpiredApiKey,
                    format!("key {} has expired", key.id),
                ));
            }
            key.account.clone().ok_or_else(|| {
                Problem::new(ProblemCode::Forbidden, "this key belongs to no account")
            })?
        }
        (Credential::ApiKey(_), None) => {
            return Err(Problem::new(
                ProblemCode::InvalidApiKey,
                "the API key is not valid",
            ));
        }
        _ => {
            return Err(Problem::new(
                ProblemCode::MissingCredentials,
                "send your API key: Authorization: Bearer <key>",
            ));
        }
    };
    let value = match endpoint {
        Endpoint::Subscription => plans.subscription_view(&account)?,
        Endpoint::Usage => plans.usage_view(&account).await?,
        Endpoint::Invoices => {
            plans
                .documents_view(&account, DocumentKind::Invoice)
                .await?
        }
        Endpoint::Receipts => {
            plans
                .documents_view(&account, DocumentKind::Receipt)
                .await?
        }
        Endpoint::Activate => {
            let body = read_body(req, MAX_BILLING_BODY).await?;
            plans.activate(&account, &body).await?
        }
        Endpoint::Cancel => {
            let body = read_body(req, MAX_BILLING_BODY).await?;
            plans.cancel(&account, &body).await?
        }
        Endpoint::StripeWebhook => unreachable!("answered above"),
    };
    Ok(json_response(&value))
}

pub(crate) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Problem> {
    let too_large = || {
        Problem::new(
            ProblemCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(req.into_body(), limit);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(Problem::new(
            ProblemCode::BadRequest,
            "the body could not be read",
        )),
    }
}

/// A JSON answer that no cache keeps.
pub(crate) fn json_response(value: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(value.to_string()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
