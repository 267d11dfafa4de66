//! The data plane end to end: a real gateway on a loopback port in front of
//! a real upstream, spoken to by real HTTP/1.1 and HTTP/2 clients.

use std::time::Duration;

use bytes::Bytes;
use faregate_testkit::{Client, TestGateway, Upstream, dead_port};
use http::Request;
use http_body_util::{BodyExt, Full};

const KEY: &str = "fg_test_proxy_key_0123456789";

fn config(up: &Upstream) -> String {
    let u = up.url();
    format!(
        r#"
[[api_keys]]
id = "tester"
key = "{KEY}"

[[routes]]
name = "open"
path = "/*"
upstreams = ["{u}"]
upstream_headers = {{ "x-upstream-token" = "internal" }}

[[routes]]
name = "keyed"
path = "/keyed/*"
upstreams = ["{u}"]
strip_prefix = "/keyed"
access = "api_key"

[[routes]]
name = "hosted"
host = "api.example.com"
path = "/inspect/hosted"
upstreams = ["{u}"]
preserve_host = true

[[routes]]
name = "uploads"
path = "/count"
methods = ["POST"]
upstreams = ["{u}"]
limits = {{ max_body_bytes = 1073741824 }}
"#
    )
}

fn header<'a>(seen: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    seen["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == name)
        .map(|h| h[1].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_method_and_the_query_reach_the_upstream() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up)).await;
    let client = Client::http1();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let req = Request::builder()
            .method(method)
            .uri(gw.url("/inspect/m?a=1&b=%20x"))
            .body(Full::from("payload"))
            .unwrap();
        let reply = client.send(req).await;
        assert_eq!(reply.status, 200, "{method}");
        let seen = reply.json();
        assert_eq!(seen["method"], method);
        assert_eq!(seen["uri"], "/inspect/m?a=1&b=%20x");
        assert_eq!(seen["body"], "payload");
    }
    let head = client
        .send(
            Request::head(gw.url("/inspect/h"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn headers_are_cleaned_and_forwarded_hops_recorded() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up)).await;
    let req = Request::get(gw.url("/keyed/inspect/k"))
        .header("authorization", format!("Bearer {KEY}"))
        .header("connection", "x-hop-secret")
        .header("x-hop-secret", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-custom", "kept")
        .body(Full::default())
        .unwrap();
    let reply = Client::http1().send(req).await;
    assert_eq!(reply.status, 200);
    let seen = reply.json();
    assert_eq!(seen["uri"], "/inspect/k", "strip_prefix applied");
    assert!(
        header(&seen, "x-hop-secret").is_empty(),
        "a header named by Connection is hop-by-hop"
    );
    assert!(header(&seen, "keep-alive").is_empty());
    assert!(
        header(&seen, "authorization").is_empty(),
        "the gateway's own credential stays at the gateway"
    );
    assert_eq!(header(&seen, "x-custom"), ["kept"]);
    assert_eq!(header(&seen, "x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
    assert_eq!(header(&seen, "x-forwarded-proto"), ["http"]);
    assert_eq!(
        header(&seen, "x-forwarded-host"),
        [gw.addr.to_string().as_str()]
    );
    assert_eq!(
        header(&seen, "forwarded"),
        [format!("for=127.0.0.1;proto=http;host={}", gw.addr).as_str()]
    );
    assert_eq!(
        header(&seen, "host"),
        [up.addr.to_string().as_str()],
        "Host is the upstream's by default"
    );
    let id = reply
        .header("x-request-id")
        .expect("a request id is echoed");
    assert_eq!(header(&seen, "x-request-id"), [id]);

    // An open route takes no credential: the caller's own reaches the upstream.
    let req = Request::get(gw.url("/inspect/o"))
        .header("authorization", "Bearer upstream-own-token")
        .body(Full::default())
        .unwrap();
    let open = Client::http1().send(req).await.json();
    assert_eq!(header(&open, "x-upstream-token"), ["internal"]);
    assert_eq!(
        header(&open, "authorization"),
        ["Bearer upstream-own-token"]
    );
}

#[tokio::test]
async fn a_client_request_id_is_kept_and_the_host_can_be_preserved() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up)).await;
    let req = Request::get(gw.url("/inspect/hosted"))
        .header("host", "api.example.com")
        .header("x-request-id", "client-chosen-42")
        .body(Full::default())
        .unwrap();
    let reply = Client::http1().send(req).await;
    assert_eq!(reply.header("x-request-id"), Some("client-chosen-42"));
    let seen = reply.json();
    assert_eq!(header(&seen, "host"), ["api.example.com"]);
    assert_eq!(header(&seen, "x-request-id"), ["client-chosen-42"]);
}

#[tokio::test]
async fn chunked_and_large_bodies_stream_both_ways() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up)).await;
    let client = Client::http1();
    // A chunked upload of 256 MiB that the upstream counts as it streams:
    // the gateway never holds it whole.
    let (mut tx, body) = channel_body();
    let req = Request::post(gw.url("/count")).body(body).unwrap();
    let sender = tokio::spawn(async move {
        let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
        for _ in 0..256 {
            tx.send(chunk.clone()).await;
        }
    });
    let reply = raw_client().request(req).await.unwrap();
    let body = reply.into_body().collect().await.unwrap().to_bytes();
    sender.await.unwrap();
    assert_eq!(
        body,
        Bytes::from(format!("{{\"bytes\":{}}}", 256 * 1024 * 1024))
    );

    // 64 MiB down, streamed in chunks.
    let reply = client.get(&gw.url("/big/67108864")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 64 * 1024 * 1024);

    let echoed = client
        .send(
            Request::post(gw.url("/echo"))
                .body(Full::from(vec![b'z'; 3_000_000]))
                .unwrap(),
        )
        .await;
    assert_eq!(echoed.body.len(), 3_000_000);
    let lines = gw.log_lines(3).await;
    let echo_line = lines
        .iter()
        .find(|l| l["path"] == "/echo")
        .expect("echo logged");
    assert_eq!(echo_line["bytes_in"], 3_000_000);
    assert_eq!(echo_line["bytes_out"], 3_000_000);
}

#[tokio::test]
async fn server_sent_events_arrive_as_they_are_sent() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up)).await;
    let res = Client::http1()
        .stream(Request::get(gw.url("/sse")).body(Full::default()).unwrap())
        .await;
    let mut body = res.into_body();
    // The upstream sends event 1 and then waits for us: if the gateway
    // buffered, this would never arrive.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first event streamed")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "data: 1\n\n");
    up.release_stream();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "data: 2\n\ndata: 3\n\ndata: 4\n\ndata: 5\n\n");
}

#[tokio::test]
async fn http2_clients_are_served() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up)).await;
    let client = Client::http2();
    let reply = client
        .send(
            Request::post(gw.url("/inspect/h2"))
                .body(Full::from("over h2"))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = reply.json();
    assert_eq!(
        seen["version"], "HTTP/1.1",
        "upstreams are spoken to in HTTP/1.1"
    );
    assert_eq!(seen["body"], "over h2");
    assert_eq!(
        header(&seen, "x-forwarded-host"),
        [gw.addr.to_string().as_str()]
    );
    let problem = client.get(&gw.url("/keyed/x")).await;
    assert_eq!(problem.status, 401);
    assert_eq!(
        problem.header("content-type"),
        Some("application/problem+json")
    );
}

#[tokio::test]
async fn round_robin_spreads_and_failover_skips_a_dead_upstream() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    let dead = dead_port().await;
    let cfg = format!(
        r#"
[[routes]]
name = "rr"
path = "/rr/*"
upstreams = ["{}", "{}"]
[[routes]]
name = "fo"
path = "/fo/*"
balance = "failover"
upstreams = ["http://{dead}", "{}"]
"#,
        a.url(),
        b.url(),
        a.url()
    );
    let gw = TestGateway::start(&cfg).await;
    let client = Client::http1();
    for _ in 0..10 {
        assert_eq!(client.get(&gw.url("/rr/x")).await.status, 200);
    }
    assert_eq!((a.requests(), b.requests()), (5, 5));
    assert_eq!(
        client.get(&gw.url("/fo/x")).await.status,
        200,
        "refused by the first, served by the second"
    );
    assert_eq!(a.requests(), 6);
    let lines = gw.log_lines(11).await;
    let fo = lines.iter().find(|l| l["route"] == "fo").unwrap();
    assert_eq!(
        fo["upstreams"].as_array().unwrap().len(),
        2,
        "both attempts are in the access log: {fo}"
    );
}

#[tokio::test]
async fn the_access_log_has_one_line_per_request_with_every_field() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up)).await;
    let client = Client::http1();
    let req = Request::get(gw.url("/keyed/inspect/x?secret=1"))
        .header("authorization", format!("Bearer {KEY}"))
        .body(Full::default())
        .unwrap();
    client.send(req).await;
    client.get(&gw.url("/keyed/inspect/x")).await;
    let lines = gw.log_lines(2).await;
    assert_eq!(lines.len(), 2);
    let ok = &lines[0];
    for field in [
        "time",
        "request_id",
        "route",
        "method",
        "path",
        "status",
        "upstream_status",
        "duration_us",
        "bytes_in",
        "bytes_out",
        "caller",
        "decision",
        "charge",
    ] {
        assert!(ok.get(field).is_some(), "missing {field} in {ok}");
    }
    assert_eq!(ok["route"], "keyed");
    assert_eq!(ok["caller"], "tester");
    assert_eq!(ok["decision"], "allow");
    assert_eq!(ok["path"], "/keyed/inspect/x", "no query in the log");
    assert!(!ok.to_string().contains(KEY), "no secret in the log");
    assert_eq!(lines[1]["status"], 401);
    assert_eq!(lines[1]["decision"], "missing_credentials");
    assert!(lines[1]["upstream_status"].is_null());
}

type Chunks =
    tokio::sync::mpsc::Sender<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>;

struct ChunkSender(Chunks);

impl ChunkSender {
    async fn send(&mut self, b: Bytes) {
        self.0.send(Ok(hyper::body::Frame::data(b))).await.unwrap();
    }
}

struct ChannelBody(
    tokio::sync::mpsc::Receiver<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>,
);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx)
    }
}

fn channel_body() -> (ChunkSender, ChannelBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (ChunkSender(tx), ChannelBody(rx))
}

fn raw_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    ChannelBody,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

#[tokio::test]
async fn a_reload_does_not_drop_a_request_in_flight() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up)).await;
    let url = gw.url("/slow/700");
    let slow = tokio::spawn(async move { Client::http1().get(&url).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The new config drops every route but one; the request in flight keeps
    // the snapshot it started with.
    let text = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\nname = \"only\"\npath = \"/only\"\nupstreams = [\"{}\"]\n",
        up.url()
    );
    let config =
        faregate_gateway::config::load(&text, std::path::Path::new("."), &|_| None, &[]).unwrap();
    gw.gw.reload(config).unwrap();
    assert_eq!(
        Client::http1().get(&gw.url("/slow/1")).await.status,
        404,
        "new requests see the new config"
    );
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "slow");
}

#[tokio::test]
async fn an_upstream_that_stalls_mid_body_is_cut_off_after_the_idle_timeout() {
    let up = Upstream::start().await;
    let text = format!(
        "[limits]\nidle_timeout = \"300ms\"\n[[routes]]\nname = \"all\"\npath = \"/*\"\nupstreams = [\"{}\"]\n",
        up.url()
    );
    let gw = TestGateway::start(&text).await;
    let res = Client::http1()
        .stream(
            Request::get(gw.url("/stall"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), 200, "the head had already gone out");
    let started = std::time::Instant::now();
    let body = tokio::time::timeout(Duration::from_secs(5), res.into_body().collect())
        .await
        .expect("not left hanging");
    assert!(
        body.is_err(),
        "the body is aborted, not ended as if complete"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let line = gw.log_line(|l| l["path"] == "/stall").await;
    assert_eq!(line["complete"], false);
    assert!(
        line["error"].as_str().unwrap_or("").contains("idle"),
        "{line}"
    );
}

#[tokio::test]
async fn upstream_connections_are_reused_and_only_whole_exchanges_return_to_the_pool() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up)).await;
    let c = Client::http1();
    for _ in 0..10 {
        assert_eq!(c.get(&gw.url("/inspect/x")).await.status, 200);
    }
    assert_eq!(
        up.connections(),
        1,
        "ten requests in turn share one connection"
    );
    // A body the caller walks away from leaves its connection unusable:
    // it is not given back, and the next request gets a fresh one.
    let partial = c
        .stream(
            Request::get(gw.url("/stall"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(partial.status(), 200);
    drop(partial);
    assert_eq!(c.get(&gw.url("/inspect/y")).await.status, 200);
    assert_eq!(up.connections(), 2, "the stalled one was the reused first");
    assert_eq!(c.get(&gw.url("/big/200000")).await.body.len(), 200_000);
    assert_eq!(c.get(&gw.url("/inspect/z")).await.status, 200);
    assert_eq!(
        up.connections(),
        2,
        "a body read to its end returns its connection"
    );
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_not_used() {
    // An upstream that answers one request per connection and then closes
    // it, without saying so (no `Connection: close`).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    let gw = TestGateway::start(&format!(
        "[[routes]]\nname = \"once\"\npath = \"/*\"\nupstreams = [\"http://{addr}\"]\n"
    ))
    .await;
    let c = Client::http1();
    for i in 0..5 {
        let reply = c.get(&gw.url("/x")).await;
        assert_eq!(reply.status, 200, "request {i}: {}", reply.text());
        assert_eq!(reply.text(), "ok");
        // Let the close reach the gateway.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 5);
}
