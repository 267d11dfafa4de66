//! The data plane on worker threads, as `faregate serve` runs it: accepted
//! connections are spread over the workers, each worker keeps its own warm
//! upstream connections, and shutdown drains requests in flight on them.

use std::time::Duration;

use faregate_testkit::{TestGateway, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(up: &Upstream) -> String {
    format!(
        r#"
[[routes]]
name = "free"
path = "/*"
upstreams = ["{}"]
"#,
        up.url()
    )
}

/// Sends one keep-alive HTTP/1.1 GET and reads its whole response; the status.
async fn get(conn: &mut TcpStream, path: &str) -> u16 {
    send(conn, &format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n")).await
}

/// Sends `request` and reads its whole response; the status.
async fn send(conn: &mut TcpStream, request: &str) -> u16 {
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .expect("a content-length")
            .trim()
            .parse()
            .unwrap();
        if buf.len() >= end + 4 + length {
            assert_eq!(buf.len(), end + 4 + length, "nothing after the response");
            return head[9..12].parse().unwrap();
        }
    }
}

async fn wait_until(what: &str, ok: impl Fn() -> bool) {
    for _ in 0..300 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Opens `n` connections at once, as a load generator does, and waits
/// until every one is on a worker.
async fn open(gw: &TestGateway, n: usize) -> Vec<TcpStream> {
    let workers = gw.workers.clone().unwrap();
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    wait_until("every connection is on a worker", || {
        workers.open_connections().iter().sum::<usize>() == n
    })
    .await;
    conns
}

#[tokio::test]
async fn connections_are_spread_evenly_and_each_worker_reuses_its_own_upstream_connection() {
    let up = Upstream::start().await;
    let gw = TestGateway::start_on_workers(&config(&up), 2).await;
    let workers = gw.workers.clone().unwrap();

    let mut conns = open(&gw, 8).await;
    assert_eq!(workers.open_connections(), [4, 4]);

    // One request at a time: each worker needs a single upstream
    // connection, which it takes back from its own share of the pool.
    for _ in 0..5 {
        for conn in &mut conns {
            assert_eq!(get(conn, "/inspect/x").await, 200);
        }
    }
    assert_eq!(up.requests(), 40);
    assert_eq!(
        up.connections(),
        2,
        "one upstream connection per worker, reused for all 40 requests"
    );

    drop(conns);
    wait_until("the closed connections are counted off", || {
        workers.open_connections() == [0, 0]
    })
    .await;
    gw.shutdown().await;
}

#[tokio::test]
async fn requests_hyper_serves_also_reuse_their_own_workers_upstream_connections() {
    let up = Upstream::start().await;
    let gw = TestGateway::start_on_workers(&config(&up), 2).await;
    // HTTP/1.0 goes to hyper's server and its upstream pool, not the
    // HTTP/1 plane's.
    let request = "GET /inspect/x HTTP/1.0\r\nhost: test\r\nconnection: keep-alive\r\n\r\n";
    let mut conns = open(&gw, 6).await;
    for _ in 0..4 {
        for conn in &mut conns {
            assert_eq!(send(conn, request).await, 200);
        }
    }
    assert_eq!(up.requests(), 24);
    assert_eq!(
        up.connections(),
        2,
        "one upstream connection per worker, reused for all 24 requests"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_a_request_in_flight_on_a_worker_and_stops_accepting() {
    let up = Upstream::start().await;
    let gw = TestGateway::start_on_workers(&config(&up), 2).await;
    let addr = gw.addr;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let in_flight = tokio::spawn(async move { get(&mut conn, "/slow/400").await });
    let workers = gw.workers.clone().unwrap();
    wait_until("the request reaches the upstream", || up.requests() == 1).await;

    let draining = tokio::spawn(gw.shutdown());
    assert_eq!(in_flight.await.unwrap(), 200, "answered during the drain");
    tokio::time::timeout(Duration::from_secs(10), draining)
        .await
        .expect("the drain ends once the request is answered")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
    assert_eq!(workers.open_connections(), [0, 0]);
}
