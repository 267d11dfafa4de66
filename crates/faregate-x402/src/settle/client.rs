//! The HTTP client both settlers talk through: pooled HTTP/1.1 over
//! `http://` or `https://` (system roots), one exchange bounded in time
//! and in the size of the answer it reads.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The most of an answer's body read; a longer one is an error.
pub(super) const MAX_BODY: usize = 64 * 1024;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const AGENT: HeaderValue =
    HeaderValue::from_static(concat!("faregate/", env!("CARGO_PKG_VERSION")));

/// The pooled client.
pub(super) type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `http://` and `https://` trusting the system's roots.
pub(super) fn client() -> HttpClient {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system root rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        tracing::warn!("no system root certificates: https:// settlement endpoints will fail");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(connector)
}

/// Parses `url` as an absolute `http://` or `https://` URL without query
/// or fragment, with any trailing `/` removed, so paths can be appended.
pub(super) fn base_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim_end_matches('/');
    let uri: Uri = trimmed
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!("{url:?} has a query or fragment"));
    }
    Ok(trimmed.to_owned())
}

/// One answer: its status and at most [`MAX_BODY`] bytes of body.
#[derive(Debug)]
pub(super) struct Answer {
    /// The HTTP status.
    pub(super) status: StatusCode,
    /// The whole body.
    pub(super) body: Bytes,
}

/// Sends `body` (JSON) with `method` to `url` and reads the answer, all
/// within `timeout`. A body cut short, longer than [`MAX_BODY`], or late
/// is an error.
pub(super) async fn exchange(
    client: &HttpClient,
    method: Method,
    url: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Answer, String> {
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .header(ACCEPT, JSON)
        .header(USER_AGENT, AGENT);
    if body.is_some() {
        request = request.header(CONTENT_TYPE, JSON);
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| chain(&e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {}", chain(&*e)))?
            .to_bytes();
        Ok(Answer { status, body })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_absolute_http_without_query() {
        assert_eq!(
            base_url("https://x402.org/facilitator/").unwrap(),
            "https://x402.org/facilitator"
        );
        assert_eq!(
            base_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "",
            "x402.org",
            "ftp://x402.org",
            "https://x402.org/?a=1",
            "https://x/#f",
            "http:///p",
        ] {
            assert!(base_url(bad).is_err(), "{bad:?}");
        }
    }
}
