//! A real HTTP upstream on 127.0.0.1:0 whose endpoints exercise the proxy:
//!
//! - `/inspect/…`: a JSON account of what arrived (method, URI, headers, body)
//! - `/echo`: the request body streamed back
//! - `/count`: reads the body as it streams and answers its length
//! - `/status/{code}`: that status
//! - `/slow/{ms}`: waits, then answers
//! - `/big/{n}`: `n` bytes, streamed in 64 KiB chunks
//! - `/sse`: one event, then the rest once the test calls `release_stream`
//! - `/stall`: a response head and a first chunk, then nothing

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{Notify, mpsc};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// The running upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Its address.
    pub addr: SocketAddr,
    requests: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    release: Arc<Notify>,
}

impl Upstream {
    /// Starts one on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let up = Self {
            addr,
            requests: Arc::default(),
            connections: Arc::default(),
            release: Arc::default(),
        };
        let served = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let up = served.clone();
                up.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let up = up.clone();
                        async move { Ok::<_, Infallible>(up.handle(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        up
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Lets `/sse` send the rest of its events.
    pub fn release_stream(&self) {
        self.release.notify_one();
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let path = req.uri().path().to_owned();
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let (head, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        match head {
            "echo" => Response::new(req.into_body().map_err(BoxError::from).boxed()),
            "count" => {
                let mut body = req.into_body();
                let mut n = 0u64;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
                    }
                }
                text(StatusCode::OK, format!("{{\"bytes\":{n}}}"))
            }
            "status" => text(
                StatusCode::from_u16(rest.parse().unwrap_or(500)).unwrap_or(StatusCode::OK),
                format!("status {rest}"),
            ),
            "slow" => {
                tokio::time::sleep(Duration::from_millis(rest.parse().unwrap_or(1000))).await;
                text(StatusCode::OK, "slow".into())
            }
            "big" => {
                let n: usize = rest.parse().unwrap_or(0);
                let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
                tokio::spawn(async move {
                    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                    let mut left = n;
                    while left > 0 {
                        let take = left.min(chunk.len());
                        if tx.send(Ok(Frame::data(chunk.slice(..take)))).await.is_err() {
                            return;
                        }
                        left -= take;
                    }
                });
                Response::new(stream(rx))
            }
            "sse" => {
                let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(8);
                let release = self.release.clone();
                tokio::spawn(async move {
                    let event = |n: u32| Ok(Frame::data(Bytes::from(format!("data: {n}\n\n"))));
                    let _ = tx.send(event(1)).await;
                    release.notified().await;
                    for n in 2..=5 {
                        let _ = tx.send(event(n)).await;
                    }
                });
                let mut r = Response::new(stream(rx));
                r.headers_mut()
                    .insert("content-type", "text/event-stream".parse().expect("static"));
                r
            }
            "stall" => {
                let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
                tokio::spawn(async move {
                    let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"first")))).await;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(tx);
                });
                Response::new(stream(rx))
            }
            _ => inspect(req).await,
        }
    }
}

fn stream(rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>) -> Body {
    BodyExt::boxed(ChannelBody(rx))
}

/// A body fed by a channel: frames arrive when the sender sends them.
struct ChannelBody(mpsc::Receiver<Result<Frame<Bytes>, BoxError>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx)
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

/// A JSON account of the request, for tests to assert on.
async fn inspect(req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let seen = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut r = text(StatusCode::OK, seen.to_string());
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("static"));
    r
}
