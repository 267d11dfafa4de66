//! The 402 contract (DESIGN §3) end to end: every status the gateway makes
//! itself, each with a problem+json body whose `type` resolves to a page.

use std::sync::Arc;
use std::time::Duration;

use faregate_core::RailKind;
use faregate_testkit::{
    Client, Reply, TestGateway, TestRail, Upstream, dead_port, parse_reply, raw,
};
use http::Request;
use http_body_util::Full;

const KEY: &str = "fg_test_contract_key_000000";
const SCOPED: &str = "fg_test_scoped_key_11111111";

fn config(up: &Upstream, extra: &str) -> String {
    let u = up.url();
    format!(
        r#"
[limits]
max_header_bytes = 4096
max_uri_bytes = 1024
header_read_timeout = "300ms"
body_idle_timeout = "300ms"
first_byte_timeout = "300ms"

[[api_keys]]
id = "main"
key = "{KEY}"
[[api_keys]]
id = "scoped"
key = "{SCOPED}"
routes = ["keyed"]

[[routes]]
name = "open"
path = "/open/*"
upstreams = ["{u}"]
strip_prefix = "/open"
limits = {{ max_body_bytes = 1000 }}

[[routes]]
name = "keyed"
path = "/keyed/*"
upstreams = ["{u}"]
strip_prefix = "/keyed"
methods = ["GET"]
access = "api_key"

[[routes]]
name = "other"
path = "/other"
upstreams = ["{u}"]
access = "api_key"

[[routes]]
name = "limited"
path = "/limited"
upstreams = ["{u}"]
rate_limit = {{ per = "ip", requests = 2, period = "1h" }}

[[routes]]
name = "agents"
path = "/agents/*"
upstreams = ["{u}"]
strip_prefix = "/agents"
price = "0.01 USD"
access = ["credits", "x402"]
[routes.x402]
[[routes.x402.offers]]
network = "eip155:84532"
asset = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
name = "USDC"
version = "2"
pay_to = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
{extra}"#
    )
}

/// Asserts the contract's members and that `type` resolves to a page.
async fn assert_problem(
    gw: &TestGateway,
    reply: &Reply,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let p = reply.json();
    assert_eq!(p["status"], status);
    assert_eq!(p["code"], code);
    assert!(p["title"].is_string() && p["detail"].is_string());
    assert_eq!(
        p["instance"].as_str(),
        reply.header("x-request-id"),
        "instance is the request id"
    );
    let type_url = p["type"].as_str().unwrap();
    assert_eq!(type_url, gw.url(&format!("/_faregate/problems/{code}")));
    let page = Client::http1().get(type_url).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains(code), "the type page explains {code}");
    p
}

#[tokio::test]
async fn credentials_401_scope_403_route_404_method_405() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let c = Client::http1();
    let missing = c.get(&gw.url("/keyed/x")).await;
    assert_problem(&gw, &missing, 401, "missing_credentials").await;
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"faregate\"")
    );

    let bad = c
        .send(
            Request::get(gw.url("/keyed/x"))
                .header("authorization", "Bearer fg_test_wrong")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_problem(&gw, &bad, 401, "invalid_api_key").await;
    assert!(
        bad.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );

    let via_header = c
        .send(
            Request::get(gw.url("/keyed/inspect"))
                .header("x-api-key", KEY)
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(via_header.status, 200);

    let scoped = c
        .send(
            Request::get(gw.url("/other"))
                .header("authorization", format!("Bearer {SCOPED}"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_problem(&gw, &scoped, 403, "key_not_allowed").await;

    assert_problem(
        &gw,
        &c.get(&gw.url("/nowhere")).await,
        404,
        "route_not_found",
    )
    .await;

    let post = c
        .send(
            Request::post(gw.url("/keyed/x"))
                .header("authorization", format!("Bearer {KEY}"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    let p = assert_problem(&gw, &post, 405, "method_not_allowed").await;
    assert_eq!(post.header("allow"), Some("GET"));
    assert_eq!(p["allow"], serde_json::json!(["GET"]));
    assert_eq!(up.requests(), 1, "no refused request reached the upstream");
}

#[tokio::test]
async fn bad_targets_and_sizes_400_413_414_431() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let c = Client::http1();
    assert_problem(
        &gw,
        &c.get(&gw.url("/open/a%zz")).await,
        400,
        "invalid_path",
    )
    .await;
    assert_problem(
        &gw,
        &raw_reply(
            &gw,
            "GET /open/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await,
        400,
        "invalid_path",
    )
    .await;
    // `..` is resolved before routing: this is /keyed/x, which needs a key.
    let sneaky = raw_reply(&gw, "GET /open/../keyed/x HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(sneaky.status, 401);
    let two_hosts = raw_reply(&gw, "GET /open/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").await;
    assert_eq!(two_hosts.status, 400);
    assert_eq!(two_hosts.json()["code"], "invalid_host");

    let big = c
        .send(
            Request::post(gw.url("/open/echo"))
                .body(Full::from(vec![0u8; 1001]))
                .unwrap(),
        )
        .await;
    assert_problem(&gw, &big, 413, "payload_too_large").await;
    // Chunked, so the size is only known while streaming.
    let chunked = format!(
        "POST /open/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n{}\r\n3e8\r\n{}\r\n0\r\n\r\n",
        "a".repeat(1000),
        "b".repeat(1000)
    );
    let streamed = raw_reply(&gw, &chunked).await;
    assert_eq!(streamed.status, 413, "{}", streamed.text());

    let long = c.get(&gw.url(&format!("/open/{}", "x".repeat(1100)))).await;
    assert_problem(&gw, &long, 414, "uri_too_long").await;
    let fat = c
        .send(
            Request::get(gw.url("/open/x"))
                .header("x-fat", "y".repeat(5000))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_problem(&gw, &fat, 431, "headers_too_large").await;
    // Only the streamed chunked body may have reached the upstream, cut
    // off: whether its head went up depends on how much of it had arrived
    // when the limit was crossed.
    assert!(up.requests() <= 1, "{}", up.requests());
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers_never_402() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let c = Client::http1();
    let first = c.get(&gw.url("/limited")).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("ratelimit-limit"), Some("2"));
    assert_eq!(first.header("ratelimit-remaining"), Some("1"));
    assert_eq!(
        c.get(&gw.url("/limited"))
            .await
            .header("ratelimit-remaining"),
        Some("0")
    );
    let refused = c.get(&gw.url("/limited")).await;
    let p = assert_problem(&gw, &refused, 429, "rate_limited").await;
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=1800).contains(&retry), "{retry}");
    assert_eq!(p["retry_after"], retry);
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    assert!(refused.header("ratelimit-reset").is_some());
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn upstream_failures_502_503_504_are_the_upstreams_fault() {
    let up = Upstream::start().await;
    let (d1, d2) = (dead_port().await, dead_port().await);
    let extra = format!(
        r#"
[[routes]]
name = "refused"
path = "/refused"
upstreams = ["http://{d1}"]
[[routes]]
name = "all-down"
path = "/down"
upstreams = ["http://{d1}", "http://{d2}"]
[[routes]]
name = "broken"
path = "/broken"
upstreams = ["http://{broken}"]
"#,
        broken = broken_upstream().await
    );
    let gw = TestGateway::start(&config(&up, &extra)).await;
    let c = Client::http1();
    let refused = c.get(&gw.url("/refused")).await;
    let p = assert_problem(&gw, &refused, 502, "upstream_unreachable").await;
    assert!(
        !p["detail"].as_str().unwrap().contains("127.0.0.1"),
        "no internals leak: {p}"
    );
    assert_problem(
        &gw,
        &c.get(&gw.url("/broken")).await,
        502,
        "upstream_unreachable",
    )
    .await;
    // Both refuse, then both are marked down: the next request gets 503.
    assert_eq!(c.get(&gw.url("/down")).await.status, 502);
    let down = c.get(&gw.url("/down")).await;
    assert_problem(&gw, &down, 503, "upstream_unavailable").await;
    assert!(down.header("retry-after").is_some());
    let slow = c.get(&gw.url("/open/slow/2000")).await;
    assert_problem(&gw, &slow, 504, "upstream_timeout").await;
}

#[tokio::test]
async fn slow_clients_408_and_closed_connections() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    // A body that stops halfway.
    let stalled = raw_reply(
        &gw,
        "POST /open/count HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-a-bit",
    )
    .await;
    assert_eq!(stalled.status, 408, "{}", stalled.text());
    assert_eq!(stalled.json()["code"], "request_timeout");
    // A head that never ends: the connection is closed, not kept hanging.
    let started = std::time::Instant::now();
    let out = raw(
        gw.addr,
        b"GET /open/x HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed after the header read timeout"
    );
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains("\"code\":\"request_timeout\""), "{out}");
}

#[tokio::test]
async fn malformed_framing_never_crashes_or_smuggles() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let garbage = raw(
        gw.addr,
        b"GARBAGE\x01 / HTTP/9\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    // Content-Length and Transfer-Encoding together: read as chunked (RFC 9112
    // §6.3), answered, and the connection closed so nothing is smuggled.
    let both = "POST /open/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /open/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let out = raw(gw.addr, both.as_bytes(), Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.ends_with("\r\n3\r\nabc\r\n0\r\n\r\n"),
        "the body was read as chunked: {out}"
    );
    assert!(out.contains("connection: close"), "{out}");
    assert_eq!(
        out.matches("HTTP/1.1").count(),
        1,
        "the trailing request is not served: {out}"
    );
    // Absolute-form targets are routed by their authority.
    let abs = raw_reply(
        &gw,
        &format!(
            "GET http://{}/open/inspect HTTP/1.1\r\nHost: other\r\n\r\n",
            gw.addr
        ),
    )
    .await;
    assert_eq!(abs.status, 200);
    // The gateway is still up.
    assert_eq!(
        Client::http1().get(&gw.url("/open/inspect")).await.status,
        200
    );
}

#[tokio::test]
async fn a_402_carries_every_rails_offer_and_a_paid_request_is_settled() {
    let up = Upstream::start().await;
    let gw = TestGateway::start_with(&config(&up, ""), |b| {
        b.rail(Arc::new(TestRail(RailKind::Credits)))
            .rail(Arc::new(TestRail(RailKind::X402)))
    })
    .await;
    let c = Client::http1();
    let reply = c
        .send(
            Request::get(gw.url("/agents/inspect"))
                .header("origin", "https://app.example")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    let p = assert_problem(&gw, &reply, 402, "payment_required").await;
    assert_eq!(p["price"], "0.01");
    assert_eq!(p["currency"], "USD");
    assert_eq!(p["accepts"][0]["rail"], "x402");
    assert_eq!(reply.header("payment-required"), Some("offer-x402"));
    let www: Vec<_> = reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        www,
        ["Payment offer-credits"],
        "every rail's headers at once"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(
        reply
            .header("access-control-expose-headers")
            .unwrap()
            .contains("PAYMENT-REQUIRED")
    );

    let bad = c
        .send(
            Request::get(gw.url("/agents/inspect"))
                .header("payment-signature", "forged")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_problem(&gw, &bad, 402, "payment_invalid").await;
    assert_eq!(
        bad.header("payment-required"),
        Some("offer-x402"),
        "a fresh challenge comes with the refusal"
    );

    // obs-text: valid HTTP, not text.
    let mut binary = format!(
        "GET /agents/inspect HTTP/1.1\r\nHost: {}\r\nPAYMENT-SIGNATURE: ",
        gw.addr
    )
    .into_bytes();
    binary.extend_from_slice(b"\xff\xfe\r\n\r\n");
    let binary = parse_reply(&raw(gw.addr, &binary, Duration::from_secs(3)).await);
    assert_eq!(binary.status, 400);
    assert_eq!(binary.json()["code"], "malformed_payment");

    let paid = c
        .send(
            Request::get(gw.url("/agents/inspect"))
                .header("payment-signature", "valid")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(paid.status, 200);
    assert_eq!(up.requests(), 1);
    let served = gw
        .log_line(|l| l["status"] == 200 && l["route"] == "agents")
        .await;
    assert_eq!(
        served["charge"], "0.01 USD",
        "settled after the body: {served}"
    );
    let first = gw.log_line(|l| l["route"] == "agents").await;
    assert_eq!(first["decision"], "payment_required");
}

#[tokio::test]
async fn a_panic_in_the_pipeline_is_a_500_without_detail() {
    let up = Upstream::start().await;
    let gw = TestGateway::start_with(&config(&up, ""), |b| {
        b.rail(Arc::new(TestRail(RailKind::X402)))
    })
    .await;
    let c = Client::http1();
    let req = Request::get(gw.url("/agents/inspect"))
        .header("payment-signature", "panic")
        .body(Full::default())
        .unwrap();
    let reply = c.send(req).await;
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let p = reply.json();
    assert_eq!(p["code"], "internal_error");
    assert!(
        !reply.text().contains("a bug in a rail"),
        "no internals leak: {p}"
    );
    assert_eq!(p["instance"].as_str(), reply.header("x-request-id"));
    // The gateway, and the client's pooled connection, carry on.
    assert_eq!(c.get(&gw.url("/open/inspect")).await.status, 200);
    assert_eq!(up.requests(), 1);
}

async fn raw_reply(gw: &TestGateway, request: &str) -> Reply {
    let request = request.replace("Host: x\r\n", &format!("Host: {}\r\n", gw.addr));
    let text = raw(gw.addr, request.as_bytes(), Duration::from_secs(3)).await;
    parse_reply(&text)
}

/// An upstream that accepts, reads, and closes without answering.
async fn broken_upstream() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
        }
    });
    addr
}
