//! The HTTP/1 data plane on the wire: what a byte-level client sees of
//! pipelining, interim answers, framing the gateway redoes, the hand-over
//! of a connection to hyper, and callers or upstreams that misbehave.

use std::time::Duration;

use faregate_testkit::{TestGateway, Upstream, raw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn config(up: &Upstream, extra: &str) -> String {
    let u = up.url();
    format!(
        r#"
[limits]
max_header_bytes = 4096
max_uri_bytes = 1024
header_read_timeout = "300ms"

[[routes]]
name = "open"
path = "/open/*"
upstreams = ["{u}"]
strip_prefix = "/open"
{extra}"#
    )
}

/// An upstream that answers every request on a connection with `reply`,
/// then closes the connection if `close`.
async fn raw_upstream(reply: &'static [u8], close: bool) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.clear();
                    if s.write_all(reply).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_even_across_the_hand_over_to_hyper() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let host = gw.addr;
    // Served here, here (a problem page), by hyper (x402 discovery), and by
    // hyper again: the connection is hyper's from the third request on.
    let requests = format!(
        "GET /open/inspect/first HTTP/1.1\r\nHost: {host}\r\n\r\n\
         GET /_faregate/problems/rate_limited HTTP/1.1\r\nHost: {host}\r\n\r\n\
         GET /.well-known/x402 HTTP/1.1\r\nHost: {host}\r\n\r\n\
         GET /open/inspect/last HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let out = raw(gw.addr, requests.as_bytes(), Duration::from_secs(5)).await;
    let got = statuses(&out);
    assert_eq!(got.len(), 4, "{out}");
    assert_eq!(got[0], 200);
    assert_eq!(got[1], 200);
    assert_eq!(got[3], 200);
    let (first, last) = (out.find("/inspect/first"), out.find("/inspect/last"));
    assert!(first.is_some() && first < last, "{out}");
    assert!(out.contains("rate_limited"), "{out}");
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /open/echo HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        gw.addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut interim))
        .await
        .expect("the interim answer comes without the body")
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).await.unwrap();
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(rest.contains("hello"), "{rest}");
}

#[tokio::test]
async fn a_close_delimited_upstream_body_reaches_the_caller_chunked() {
    let up = Upstream::start().await;
    let legacy = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello world",
        true,
    )
    .await;
    let extra =
        format!("[[routes]]\nname = \"legacy\"\npath = \"/legacy\"\nupstreams = [\"{legacy}\"]\n");
    let gw = TestGateway::start(&config(&up, &extra)).await;
    let host = gw.addr;
    // Twice on one connection: the first answer's framing must be exact
    // for the second to be read.
    let requests = format!(
        "GET /legacy HTTP/1.1\r\nHost: {host}\r\n\r\nGET /legacy HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let out = raw(gw.addr, requests.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(statuses(&out), [200, 200], "{out}");
    assert_eq!(
        out.matches("transfer-encoding: chunked\r\n").count(),
        2,
        "{out}"
    );
    assert_eq!(
        out.matches("\r\n\r\nb\r\nhello world\r\n0\r\n\r\n").count(),
        2,
        "{out}"
    );
    let line = gw.log_line(|l| l["route"] == "legacy").await;
    assert_eq!(line["bytes_out"], 11);
    assert_eq!(line["complete"], true);
}

#[tokio::test]
async fn head_requests_and_204s_carry_no_body_and_keep_the_connection_in_step() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let host = gw.addr;
    let requests = format!(
        "HEAD /open/inspect/h HTTP/1.1\r\nHost: {host}\r\n\r\n\
         GET /open/status/204 HTTP/1.1\r\nHost: {host}\r\n\r\n\
         GET /open/status/201 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let out = raw(gw.addr, requests.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(statuses(&out), [200, 204, 201], "{out}");
    let head = &out[..out.find("HTTP/1.1 204").unwrap()];
    assert!(head.to_lowercase().contains("content-length: "), "{head}");
    assert!(
        head.ends_with("\r\n\r\n"),
        "no body after a HEAD answer: {head:?}"
    );
    let no_content = &out[out.find("HTTP/1.1 204").unwrap()..out.find("HTTP/1.1 201").unwrap()];
    assert!(
        !no_content.to_lowercase().contains("content-length"),
        "{no_content}"
    );
    assert!(out.ends_with("status 201"), "{out}");
}

#[tokio::test]
async fn a_caller_who_leaves_while_the_upstream_works_is_logged_499_and_its_connection_dropped() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let req = format!("GET /open/slow/600 HTTP/1.1\r\nHost: {}\r\n\r\n", gw.addr);
    s.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    let line = gw.log_line(|l| l["path"] == "/open/slow/600").await;
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(line["complete"], false);
    assert!(
        line["error"].as_str().unwrap().contains("client closed"),
        "{line}"
    );
    // The upstream connection, mid-exchange, was not pooled.
    let c = faregate_testkit::Client::http1();
    assert_eq!(c.get(&gw.url("/open/inspect/after")).await.status, 200);
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn an_upstream_that_answers_garbage_is_a_502_and_a_bad_length_too() {
    let up = Upstream::start().await;
    let garbage = raw_upstream(b"NOT HTTP AT ALL\r\n\r\n", false).await;
    let bad_length = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", false).await;
    let extra = format!(
        "[[routes]]\nname = \"garbage\"\npath = \"/garbage\"\nupstreams = [\"{garbage}\"]\n\
         [[routes]]\nname = \"bad-length\"\npath = \"/bad-length\"\nupstreams = [\"{bad_length}\"]\n"
    );
    let gw = TestGateway::start(&config(&up, &extra)).await;
    let c = faregate_testkit::Client::http1();
    for path in ["/garbage", "/bad-length"] {
        let reply = c.get(&gw.url(path)).await;
        assert_eq!(reply.status, 502, "{path}: {}", reply.text());
        assert_eq!(reply.json()["code"], "upstream_unreachable");
    }
}

#[tokio::test]
async fn heads_that_are_too_large_or_too_slow_are_answered_then_closed() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&config(&up, "")).await;
    let huge = format!(
        "GET /open/x HTTP/1.1\r\nHost: x\r\nX-Big: {}",
        "y".repeat(40_000)
    );
    let out = raw(gw.addr, huge.as_bytes(), Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    assert!(out.contains("\"code\":\"headers_too_large\""), "{out}");
    let started = std::time::Instant::now();
    let slow = raw(
        gw.addr,
        b"GET /open/x HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    assert!(slow.contains("connection: close"), "{slow}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(up.requests(), 0);
}
