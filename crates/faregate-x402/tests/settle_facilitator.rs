//! `FacilitatorClient` against a facilitator double on a loopback port: a
//! raw TCP server, so it can misbehave as real ones do (hang, answer HTML,
//! cut a body short). Only a 2xx `success: true` may ever be a success.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use faregate_x402::reason;
use faregate_x402::settle::{FacilitatorClient, Settler};
use faregate_x402::wire::{FacilitatorRequest, SettleResponse};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

const TX: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const PAYER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const PAY_TO: &str = "0x2096d7C1B2D4D4C84a4F7a3bD7bFAC6B1b2F287C";

/// What the double answers on one path.
#[derive(Clone)]
enum Reply {
    /// These bytes, then the connection is closed.
    Raw(String),
    /// Nothing, for a minute.
    Hang,
}

/// An answer with `status`, of `content_type`, whose body is `body`.
fn reply(status: &str, content_type: &str, body: &str) -> Reply {
    Reply::Raw(format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// A JSON answer with `status`.
fn json_reply(status: &str, body: &Value) -> Reply {
    reply(status, "application/json", &body.to_string())
}

/// A request the double received: method, path and body.
type Seen = (String, String, Vec<u8>);

/// The facilitator double: replies by path, requests recorded.
struct Double {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Double {
    async fn start(routes: HashMap<&'static str, Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (routes, log) = (Arc::new(routes), seen.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, routes.clone(), log.clone()));
            }
        });
        Self { base, seen }
    }
}

async fn serve(
    mut stream: TcpStream,
    routes: Arc<HashMap<&'static str, Reply>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let Some((method, path, body)) = read_request(&mut stream).await else {
        return;
    };
    let reply = routes.get(path.as_str()).cloned();
    seen.lock().push((method, path, body));
    match reply {
        Some(Reply::Raw(bytes)) => {
            let _ = stream.write_all(bytes.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Some(Reply::Hang) => tokio::time::sleep(Duration::from_secs(60)).await,
        None => {
            let _ = stream
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    }
}

/// Reads one HTTP/1.1 request: method, path and body.
async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let (head, body) = support::http::read_request(stream, &mut Vec::new()).await?;
    let mut words = head.split_whitespace();
    let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
    Some((method, path, body))
}

fn payment() -> FacilitatorRequest {
    let payload = json!({
        "signature": format!("0x{}1b", "22".repeat(64)),
        "authorization": {"from": PAYER, "to": PAY_TO, "value": "10000", "validAfter": "0",
            "validBefore": "1795307662", "nonce": format!("0x{}", "33".repeat(32))}
    });
    support::request(
        support::requirements(support::USDC, PAY_TO, "10000"),
        payload,
    )
}

fn settled() -> Value {
    json!({"success": true, "payer": PAYER, "transaction": TX, "network": support::NETWORK, "amount": "10000"})
}

fn client(base: &str) -> FacilitatorClient {
    FacilitatorClient::new(base, Duration::from_millis(500)).unwrap()
}

#[tokio::test]
async fn a_2xx_success_is_a_settlement_and_the_request_is_the_spec_body() {
    let double = Double::start(HashMap::from([(
        "/facilitator/settle",
        json_reply("200 OK", &settled()),
    )]))
    .await;
    let req = payment();
    let response = client(&format!("{}/facilitator/", double.base))
        .settle(&req)
        .await;
    assert!(response.success, "{response:?}");
    assert_eq!(response.transaction, TX);
    assert_eq!(response.payer.as_deref(), Some(PAYER));
    let seen = double.seen.lock().clone();
    assert_eq!(seen.len(), 1);
    let (method, path, body) = &seen[0];
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("POST", "/facilitator/settle")
    );
    let sent: FacilitatorRequest = serde_json::from_slice(body).unwrap();
    assert_eq!(sent, req);
    let sent: Value = serde_json::from_slice(body).unwrap();
    assert!(
        sent["paymentPayload"]["accepted"]["payTo"].is_string(),
        "camelCase on the wire: {sent}"
    );
}

/// Every answer that is not a clear 2xx success, and the reason expected.
fn misbehaviours() -> Vec<(&'static str, Reply, &'static str)> {
    let truncated = r#"{"success":true,"transaction":"0x11"#;
    let long = "x".repeat(70 * 1024);
    vec![
        ("/hang/settle", Reply::Hang, reason::UNEXPECTED_SETTLE_ERROR),
        (
            "/500/settle",
            json_reply("500 Internal Server Error", &settled()),
            reason::UNEXPECTED_SETTLE_ERROR,
        ),
        (
            "/503/settle",
            json_reply("503 Service Unavailable", &settled()),
            reason::UNEXPECTED_SETTLE_ERROR,
        ),
        (
            "/html/settle",
            reply(
                "502 Bad Gateway",
                "text/html",
                "<html><body>502 Bad Gateway</body></html>",
            ),
            reason::UNEXPECTED_SETTLE_ERROR,
        ),
        (
            "/garbage/settle",
            reply("200 OK", "application/json", "not json!"),
            reason::UNEXPECTED_SETTLE_ERROR,
        ),
        (
            "/truncated/settle",
            Reply::Raw(format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{truncated}"
            )),
            reason::UNEXPECTED_SETTLE_ERROR,
        ),
        (
            "/long/settle",
            reply("200 OK", "application/json", &long),
            reason::UNEXPECTED_SETTLE_ERROR,
        ),
        (
            "/pending/settle",
            json_reply(
                "200 OK",
                &json!({"success": false, "errorReason": "settlement_pending", "transaction": TX}),
            ),
            reason::SETTLEMENT_PENDING,
        ),
        (
            "/state/settle",
            json_reply(
                "200 OK",
                &json!({"success": false, "errorReason": "invalid_transaction_state", "transaction": ""}),
            ),
            reason::INVALID_TRANSACTION_STATE,
        ),
        (
            "/refused/settle",
            json_reply(
                "400 Bad Request",
                &json!({"success": false, "errorReason": "invalid_payload", "transaction": ""}),
            ),
            reason::INVALID_PAYLOAD,
        ),
        (
            "/no-reason/settle",
            json_reply("200 OK", &json!({"success": false})),
            reason::UNEXPECTED_SETTLE_ERROR,
        ),
    ]
}

#[tokio::test]
async fn anything_but_a_2xx_success_is_a_failure_with_a_reason() {
    let cases = misbehaviours();
    let routes = cases
        .iter()
        .map(|(path, reply, _)| (*path, reply.clone()))
        .collect();
    let double = Double::start(routes).await;
    let req = payment();
    for (path, _, expected) in &cases {
        let prefix = path.trim_end_matches("/settle");
        let started = std::time::Instant::now();
        let response: SettleResponse = client(&format!("{}{prefix}", double.base))
            .settle(&req)
            .await;
        assert!(!response.success, "{path}: {response:?}");
        assert_eq!(
            response.error_reason.as_deref(),
            Some(*expected),
            "{path}: {response:?}"
        );
        assert!(
            response
                .error_message
                .as_deref()
                .is_some_and(|m| !m.is_empty()),
            "{path}"
        );
        assert_eq!(response.network, support::NETWORK, "{path}");
        assert_eq!(response.payer.as_deref(), Some(PAYER), "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    let pending = client(&format!("{}/pending", double.base))
        .settle(&req)
        .await;
    assert_eq!(
        pending.transaction, TX,
        "the pending transaction is reported"
    );
}

#[tokio::test]
async fn an_unreachable_facilitator_is_a_failure() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let response = client(&format!("http://127.0.0.1:{port}"))
        .settle(&payment())
        .await;
    assert!(!response.success);
    assert_eq!(
        response.error_reason.as_deref(),
        Some(reason::UNEXPECTED_SETTLE_ERROR)
    );
}

#[tokio::test]
async fn verify_and_supported_read_the_facilitator_answers() {
    let valid = json!({"isValid": true, "payer": PAYER});
    let refused = json!({"isValid": false, "invalidReason": reason::NONCE_USED, "payer": PAYER});
    let supported = json!({
        "kinds": [{"x402Version": 2, "scheme": "exact", "network": support::NETWORK}],
        "extensions": [], "signers": {"eip155:*": [PAYER]}
    });
    let double = Double::start(HashMap::from([
        ("/ok/verify", json_reply("200 OK", &valid)),
        ("/ok/supported", json_reply("200 OK", &supported)),
        ("/refused/verify", json_reply("400 Bad Request", &refused)),
        (
            "/yes500/verify",
            json_reply("500 Internal Server Error", &valid),
        ),
        ("/hang/verify", Reply::Hang),
    ]))
    .await;
    let req = payment();
    let verdict = client(&format!("{}/ok", double.base))
        .verify(&req)
        .await
        .unwrap();
    assert!(verdict.is_valid);
    assert_eq!(verdict.payer.as_deref(), Some(PAYER));
    let kinds = client(&format!("{}/ok", double.base))
        .supported()
        .await
        .unwrap();
    assert_eq!(kinds.kinds[0].network, support::NETWORK);
    assert_eq!(kinds.signers["eip155:*"], json!([PAYER]));
    let verdict = client(&format!("{}/refused", double.base))
        .verify(&req)
        .await
        .unwrap();
    assert_eq!(verdict.invalid_reason.as_deref(), Some(reason::NONCE_USED));
    assert!(
        client(&format!("{}/yes500", double.base))
            .verify(&req)
            .await
            .is_err()
    );
    assert!(
        client(&format!("{}/hang", double.base))
            .verify(&req)
            .await
            .is_err()
    );
    assert!(
        client(&format!("{}/nothing", double.base))
            .supported()
            .await
            .is_err()
    );
    let seen = double.seen.lock().clone();
    assert!(
        seen.iter()
            .any(|(m, p, b)| m == "GET" && p == "/ok/supported" && b.is_empty())
    );
}

#[test]
fn bad_base_urls_are_refused_at_construction() {
    for bad in ["", "localhost:4021", "ftp://x", "http://x/?q=1"] {
        assert!(
            FacilitatorClient::new(bad, Duration::from_secs(1)).is_err(),
            "{bad:?}"
        );
    }
    assert!(FacilitatorClient::new("http://x", Duration::ZERO).is_err());
}
