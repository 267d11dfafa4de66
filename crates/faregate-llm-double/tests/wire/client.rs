//! A small real HTTP client for the tests: hyper over HTTP/1.1 or h2c, and a
//! server-sent-events reader.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use faregate_llm_double::Options;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A double on a free port and a client for it.
pub(crate) struct Double {
    pub(crate) addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One answer, read to the end.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// How many body frames arrived, and when each did.
    pub(crate) frames: Vec<Duration>,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The server-sent events: `(event name, data)`, data parsed as JSON
    /// unless it is `[DONE]`.
    pub(crate) fn events(&self) -> Vec<(Option<String>, Value)> {
        let text = std::str::from_utf8(&self.body).expect("utf-8 stream");
        assert!(text.ends_with("\n\n"), "stream ends mid-event: {text:?}");
        text.split_terminator("\n\n")
            .map(|event| {
                let mut name = None;
                let mut data = None;
                for line in event.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = Some(n.to_owned());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(if d == "[DONE]" {
                            Value::from("[DONE]")
                        } else {
                            serde_json::from_str(d).expect("event JSON")
                        });
                    } else {
                        panic!("unexpected line {line:?}");
                    }
                }
                (name, data.expect("event without data"))
            })
            .collect()
    }
}

impl Double {
    pub(crate) async fn start(options: Options) -> Self {
        Self::with_client(options, false)
    }

    pub(crate) fn with_client(options: Options, http2: bool) -> Self {
        let addr = faregate_llm_double::spawn(options).expect("spawn double");
        let client = Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .build_http();
        Self { addr, client }
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, &[], Bytes::from(body.to_string()))
            .await
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], Bytes::new()).await
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("request");
        let started = Instant::now();
        let res = tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .expect("no answer in 20 s")
            .expect("request failed");
        let (parts, mut body) = res.into_parts();
        let mut bytes = Vec::new();
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("body frame").into_data() {
                frames.push(started.elapsed());
                bytes.extend_from_slice(&data);
            }
        }
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: bytes.into(),
            frames,
        }
    }
}
