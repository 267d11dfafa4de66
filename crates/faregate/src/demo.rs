//! `faregate demo`: the gateway on 127.0.0.1:8402 in front of an embedded
//! upstream, with free and paid routes, a demo key and an admin token made
//! up on the spot. No config file, no setup.

use std::convert::Infallible;
use std::io::Write as _;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::time::Sleep;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type DemoBody = BoxBody<Bytes, BoxError>;

/// Events in `/demo/stream`.
const STREAM_EVENTS: u32 = 20;
/// Pause between two events.
const STREAM_EVERY: Duration = Duration::from_millis(50);

pub(crate) async fn run(port: u16, admin_port: u16) -> anyhow::Result<ExitCode> {
    let upstream = TcpListener::bind(("127.0.0.1", 0)).await?;
    let upstream_addr = upstream.local_addr()?;
    tokio::spawn(serve_upstream(upstream));

    let key = format!("fg_test_{}", random_token(24));
    let admin_token = random_token(32);
    let text = config_text(
        port,
        admin_port,
        &upstream_addr.to_string(),
        &key,
        &admin_token,
    );
    let config = faregate_gateway::config::load(
        &text,
        std::path::Path::new("."),
        &|_| None,
        crate::run::RAILS,
    )
    .map_err(|e| anyhow::anyhow!("the demo config is invalid: {e}"))?;
    let running = crate::run::start(config).await?;
    let (addrs, admin) = running.addrs();
    let gw = addrs
        .first()
        .copied()
        .unwrap_or(([127, 0, 0, 1], port).into());
    print_banner(&gw.to_string(), &admin.to_string(), &key, &admin_token);
    running.wait(None).await
}

fn config_text(port: u16, admin_port: u16, upstream: &str, key: &str, admin_token: &str) -> String {
    let key_sha256 = hex_sha256(key);
    format!(
        r#"
[[listeners]]
address = "127.0.0.1:{port}"

[admin]
address = "127.0.0.1:{admin_port}"
token = "{admin_token}"

[[api_keys]]
id = "demo"
key_sha256 = "{key_sha256}"

[[routes]]
name = "demo-free"
path = "/demo/free"
methods = ["GET", "HEAD"]
upstreams = ["http://{upstream}"]

[[routes]]
name = "demo-paid"
path = "/demo/paid"
methods = ["GET", "HEAD"]
upstreams = ["http://{upstream}"]
price = "0.001 USD"
access = "api_key"

[[routes]]
name = "demo-stream"
path = "/demo/stream"
methods = ["GET"]
upstreams = ["http://{upstream}"]
price = "0.001 USD"
access = "api_key"

[[routes]]
name = "demo-echo"
path = "/demo/echo"
methods = ["POST", "PUT"]
upstreams = ["http://{upstream}"]
"#
    )
}

fn print_banner(gw: &str, admin: &str, key: &str, admin_token: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "faregate demo: gateway on http://{gw}, admin on http://{admin}\n\
         FAREGATE_DEMO_KEY={key}\n\
         FAREGATE_ADMIN_TOKEN={admin_token}\n\
         \n\
         Try:\n\
         \x20 curl -i http://{gw}/demo/free                                   # free\n\
         \x20 curl -i -H 'Authorization: Bearer {key}' http://{gw}/demo/paid   # a priced route (0.001 USD): the key is checked; charging arrives with the credits ledger\n\
         \x20 curl -i http://{gw}/demo/paid                                   # refused: 401 problem+json, no key\n\
         \x20 curl -N -H 'Authorization: Bearer {key}' http://{gw}/demo/stream # 20 server-sent events\n\
         \x20 curl -i --data 'hello' http://{gw}/demo/echo                    # echoes the body\n\
         \x20 curl -s http://{admin}/metrics                                  # Prometheus metrics\n\
         \n\
         Access log (JSON, one line per request):"
    );
    let _ = out.flush();
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn hex_sha256(text: &str) -> String {
    faregate_gateway::config::sha256(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn serve_upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(upstream))
                .await;
        });
    }
}

async fn upstream(req: Request<Incoming>) -> Result<Response<DemoBody>, Infallible> {
    let json = |body: String| {
        let mut r = Response::new(full(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            "application/json".parse().expect("static"),
        );
        r
    };
    Ok(match req.uri().path() {
        "/demo/free" => json(r#"{"route":"free","message":"this one is on the house"}"#.into()),
        "/demo/paid" => json(r#"{"route":"paid","message":"you paid 0.001 USD for this"}"#.into()),
        "/demo/stream" => {
            let mut r = Response::new(Sse::new().boxed());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                "text/event-stream".parse().expect("static"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, "no-cache".parse().expect("static"));
            r
        }
        "/demo/echo" => {
            let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
            let mut r = Response::new(req.into_body().map_err(BoxError::from).boxed());
            if let Some(ct) = content_type {
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            r
        }
        _ => {
            let mut r = json(r#"{"error":"not found"}"#.into());
            *r.status_mut() = http::StatusCode::NOT_FOUND;
            r
        }
    })
}

fn full(body: String) -> DemoBody {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed()
}

/// Server-sent events, one every [`STREAM_EVERY`].
struct Sse {
    sent: u32,
    sleep: Pin<Box<Sleep>>,
}

impl Sse {
    fn new() -> Self {
        Self {
            sent: 0,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }
}

impl Body for Sse {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.sent == STREAM_EVENTS {
            return Poll::Ready(None);
        }
        ready!(self.sleep.as_mut().poll(cx));
        self.sent += 1;
        let n = self.sent;
        let deadline = tokio::time::Instant::now() + STREAM_EVERY;
        self.sleep.as_mut().reset(deadline);
        let event = format!("id: {n}\nevent: tick\ndata: {{\"n\":{n},\"of\":{STREAM_EVENTS}}}\n\n");
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
    }
}
