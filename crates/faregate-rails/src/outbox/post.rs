//! One attempt at one delivery: the signed POST, its answer read and
//! classified, and when to try again.
//!
//! The body is the stored payload byte for byte; the signature covers
//! exactly those bytes (`signature::sign`, Stripe's scheme). The answer's
//! body is drained up to [`MAX_DRAIN`] bytes so the connection can be kept
//! and is otherwise ignored; redirects are not followed (a 3xx is a
//! failure, as with Stripe). Nothing here logs the URL or the secret.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rand::Rng;

use faregate_store::notify::{AttemptOutcome, DueDelivery};

use crate::signature;

/// The client every attempt goes through: pooled, HTTP/1.1, `http://` and
/// `https://` (system roots).
pub(super) type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The most of an answer's body read before the connection is dropped.
const MAX_DRAIN: usize = 64 * 1024;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

const SIGNATURE: HeaderName = HeaderName::from_static("faregate-signature");
const EVENT_ID: HeaderName = HeaderName::from_static("faregate-event-id");
const EVENT_TYPE: HeaderName = HeaderName::from_static("faregate-event-type");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A client that connects within `connect_timeout`.
pub(super) fn client(connect_timeout: Duration) -> HttpClient {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A system root rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        tracing::warn!("no system root certificates: https:// notification endpoints will fail");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(4)
        .build(connector)
}

/// What one attempt got: the status, or why there was none.
pub(super) type Answer = Result<u16, String>;

/// Sends `d` signed at `unix_seconds`, within `timeout` in all.
pub(super) async fn post(
    client: &HttpClient,
    d: &DueDelivery,
    unix_seconds: u64,
    user_agent: &HeaderValue,
    timeout: Duration,
) -> Answer {
    let body = Bytes::from(d.payload.clone().into_bytes());
    let signed = signature::sign(&body, d.secret.as_bytes(), unix_seconds);
    let request = Request::post(d.url.as_str())
        .header(CONTENT_TYPE, JSON)
        .header(USER_AGENT, user_agent)
        .header(SIGNATURE, signed)
        .header(EVENT_ID, d.event_id.as_str())
        .header(EVENT_TYPE, d.event_type.as_str())
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| chain(&e))?;
        let status = response.status().as_u16();
        drain(response.into_body()).await;
        Ok(status)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
}

/// Reads and drops up to [`MAX_DRAIN`] bytes of `body`.
async fn drain(mut body: hyper::body::Incoming) {
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, Bytes::len);
        if read > MAX_DRAIN {
            return;
        }
    }
}

/// An error with its causes, which is where hyper says what happened
/// (`client error (Connect): tcp connect error: Connection refused`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// When to try again and how often to try: the retry policy.
#[derive(Debug, Clone, Copy)]
pub(super) struct Backoff {
    /// The wait after the first failure.
    pub(super) base: Duration,
    /// The longest wait.
    pub(super) max: Duration,
    /// Attempts in all before giving up.
    pub(super) max_attempts: u32,
}

impl Backoff {
    /// The wait after the `attempt`-th failure (1-based): `base` doubled
    /// per earlier failure, capped at `max`, less up to a quarter at
    /// random, so endpoints that failed together are not retried together.
    pub(super) fn delay(&self, attempt: u32) -> Duration {
        let base = millis(self.base).max(1);
        let doubling = 1u64
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u64::MAX);
        let full = base.saturating_mul(doubling).min(millis(self.max).max(1));
        let jitter = rand::rng().random_range(0..=full / 4);
        Duration::from_millis(full - jitter)
    }

    /// What an attempt that got `answer` at `now` (unix milliseconds)
    /// leaves behind, for a delivery that had `attempts` before it.
    pub(super) fn outcome(&self, answer: Answer, attempts: u32, now: i64) -> AttemptOutcome {
        let (status, error) = match answer {
            Ok(status) if (200..300).contains(&status) => {
                return AttemptOutcome::Delivered { status, at: now };
            }
            Ok(status) => (Some(status), format!("HTTP {status}")),
            Err(error) => (None, error),
        };
        let attempt = attempts.saturating_add(1);
        if attempt >= self.max_attempts {
            return AttemptOutcome::GaveUp {
                status,
                error,
                at: now,
            };
        }
        let wait = i64::try_from(self.delay(attempt).as_millis()).unwrap_or(i64::MAX);
        AttemptOutcome::Retry {
            status,
            error,
            next_attempt_at: now.saturating_add(wait),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff {
        base: Duration::from_secs(10),
        max: Duration::from_secs(3600),
        max_attempts: 5,
    };

    #[test]
    fn backoff_doubles_is_capped_and_jitters_down_only() {
        for (attempt, full) in [(1, 10_000), (2, 20_000), (3, 40_000), (9, 2_560_000)] {
            for _ in 0..50 {
                let d = millis(POLICY.delay(attempt));
                assert!((full * 3 / 4..=full).contains(&d), "{attempt}: {d}");
            }
        }
        for attempt in [10, 11, 64, 65, u32::MAX] {
            let d = millis(POLICY.delay(attempt));
            assert!((2_700_000..=3_600_000).contains(&d), "{attempt}: {d}");
        }
    }

    #[test]
    fn outcomes_follow_the_answer_and_the_attempt_count() {
        assert_eq!(
            POLICY.outcome(Ok(204), 3, 7),
            AttemptOutcome::Delivered { status: 204, at: 7 }
        );
        let AttemptOutcome::Retry {
            status,
            error,
            next_attempt_at,
        } = POLICY.outcome(Ok(503), 0, 1_000)
        else {
            panic!("a first failure is retried");
        };
        assert_eq!((status, error.as_str()), (Some(503), "HTTP 503"));
        assert!((8_500..=11_000).contains(&next_attempt_at));
        assert!(matches!(
            POLICY.outcome(Ok(302), 3, 0),
            AttemptOutcome::Retry { .. }
        ));
        assert_eq!(
            POLICY.outcome(Err("refused".into()), 4, 9),
            AttemptOutcome::GaveUp {
                status: None,
                error: "refused".into(),
                at: 9
            }
        );
    }
}
