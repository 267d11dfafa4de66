//! An x402 facilitator over HTTP: `POST {base}/verify`, `POST {base}/settle`
//! and `GET {base}/supported`, each under one timeout.
//!
//! Only a 2xx answer whose body is a `SettleResponse` saying
//! `success: true` is a settlement. Anything else (a timeout, a 5xx even
//! with a success body, HTML, a truncated body) is `success: false`,
//! because serving on an unclear answer gives the resource away; a
//! facilitator's own reason (`settlement_pending`, …) is kept.

use std::time::{Duration, Instant};

use hyper::Method;
use serde::de::DeserializeOwned;

use super::client::{self, Answer, HttpClient};
use super::{BoxFuture, Settler, claimed_payer, failure};
use crate::reason;
use crate::wire::{FacilitatorRequest, SettleResponse, Supported, VerifyResponse};

/// An x402 facilitator reached over HTTP.
#[derive(Clone)]
pub struct FacilitatorClient {
    base: String,
    timeout: Duration,
    http: HttpClient,
}

impl std::fmt::Debug for FacilitatorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacilitatorClient")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl FacilitatorClient {
    /// A client of the facilitator at `base_url` (`http://` or `https://`,
    /// possibly with a path such as `/facilitator`), each exchange bounded
    /// by `timeout`. Needs a tokio runtime when used, not when built.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, String> {
        if timeout.is_zero() {
            return Err("the facilitator timeout must be positive".into());
        }
        Ok(Self {
            base: client::base_url(base_url)?,
            timeout,
            http: client::client(),
        })
    }

    /// The facilitator's base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn post(&self, path: &str, req: &FacilitatorRequest) -> Result<Answer, String> {
        let body =
            serde_json::to_vec(req).map_err(|e| format!("cannot encode the request: {e}"))?;
        let url = format!("{}{path}", self.base);
        client::exchange(&self.http, Method::POST, &url, Some(body), self.timeout).await
    }

    async fn settle_inner(&self, req: &FacilitatorRequest) -> SettleResponse {
        let started = Instant::now();
        let answer = match self.post("/settle", req).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(facilitator = %self.base, error = %e, "x402 settle failed");
                let message = format!("facilitator /settle: {e}");
                return failure(req, reason::UNEXPECTED_SETTLE_ERROR, message, String::new());
            }
        };
        let response = settle_answer(req, &answer);
        tracing::debug!(
            facilitator = %self.base,
            status = answer.status.as_u16(),
            success = response.success,
            reason = response.error_reason.as_deref().unwrap_or(""),
            transaction = %response.transaction,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "x402 settle answered"
        );
        response
    }

    async fn verify_inner(&self, req: &FacilitatorRequest) -> Result<VerifyResponse, String> {
        let answer = self
            .post("/verify", req)
            .await
            .map_err(|e| format!("facilitator /verify: {e}"))?;
        let parsed = json::<VerifyResponse>(&answer);
        match parsed {
            Ok(verdict) if answer.status.is_success() => Ok(verdict),
            // A refusal may come with a 4xx, as the TypeScript client
            // accepts; a non-2xx is never a yes.
            Ok(verdict) if !verdict.is_valid => Ok(verdict),
            Ok(_) => Err(format!(
                "facilitator /verify answered HTTP {} with isValid true",
                answer.status
            )),
            Err(e) => Err(format!("facilitator /verify: {e}")),
        }
    }

    async fn supported_inner(&self) -> Result<Supported, String> {
        let url = format!("{}/supported", self.base);
        let answer = client::exchange(&self.http, Method::GET, &url, None, self.timeout)
            .await
            .map_err(|e| format!("facilitator /supported: {e}"))?;
        if !answer.status.is_success() {
            return Err(format!(
                "facilitator /supported answered HTTP {}",
                answer.status
            ));
        }
        json(&answer).map_err(|e| format!("facilitator /supported: {e}"))
    }
}

/// What a `/settle` answer means: success only on a 2xx whose body says
/// so; the facilitator's own failure reason kept; anything else
/// `unexpected_settle_error`.
fn settle_answer(req: &FacilitatorRequest, answer: &Answer) -> SettleResponse {
    let status = answer.status;
    match json::<SettleResponse>(answer) {
        Ok(mut response) if status.is_success() => {
            if response.network.is_empty() {
                response
                    .network
                    .clone_from(&req.payment_requirements.network);
            }
            if response.payer.is_none() {
                response.payer = claimed_payer(req);
            }
            if !response.success {
                let reason = response
                    .error_reason
                    .get_or_insert_with(|| reason::UNEXPECTED_SETTLE_ERROR.to_owned());
                let message = format!("the facilitator did not settle ({reason})");
                response.error_message.get_or_insert(message);
            }
            response
        }
        Ok(response) if !response.success && response.error_reason.is_some() => {
            let reason = response.error_reason.as_deref().unwrap_or_default();
            let message = response
                .error_message
                .unwrap_or_else(|| format!("facilitator /settle answered HTTP {status}"));
            failure(req, reason, message, response.transaction)
        }
        Ok(_) => {
            let message = format!("facilitator /settle answered HTTP {status}");
            failure(req, reason::UNEXPECTED_SETTLE_ERROR, message, String::new())
        }
        Err(e) => {
            let message = format!("facilitator /settle answered HTTP {status}: {e}");
            failure(req, reason::UNEXPECTED_SETTLE_ERROR, message, String::new())
        }
    }
}

/// The answer's body as `T`, or why not (with the start of the body, for
/// the log: an HTML error page says a lot in its first line).
fn json<T: DeserializeOwned>(answer: &Answer) -> Result<T, String> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        let start = String::from_utf8_lossy(&answer.body[..answer.body.len().min(80)]).into_owned();
        format!("the body is not the expected JSON ({e}): {start:?}")
    })
}

impl Settler for FacilitatorClient {
    fn settle<'a>(&'a self, req: &'a FacilitatorRequest) -> BoxFuture<'a, SettleResponse> {
        Box::pin(self.settle_inner(req))
    }

    fn verify<'a>(
        &'a self,
        req: &'a FacilitatorRequest,
    ) -> BoxFuture<'a, Result<VerifyResponse, String>> {
        Box::pin(self.verify_inner(req))
    }

    fn supported<'a>(&'a self) -> BoxFuture<'a, Result<Supported, String>> {
        Box::pin(self.supported_inner())
    }
}
