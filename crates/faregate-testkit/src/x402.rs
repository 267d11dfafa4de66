//! x402 for tests: a payer that signs EIP-3009 authorizations as the real
//! clients do (offline, over the EIP-712 digest), and a facilitator double
//! on loopback whose `/settle` answer each test chooses, speaking the
//! facilitator's real wire format.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use bytes::Bytes;
use faregate_x402::evm::{
    Eip3009Domain, chain_id, parse_address, transfer_with_authorization_hash,
};
use faregate_x402::verify::ParsedAuthorization;
use faregate_x402::wire::{
    FacilitatorRequest, PaymentPayload, PaymentRequired, PaymentRequirements, decode_header,
    encode_header,
};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k256::ecdsa::SigningKey;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// Anvil's development account 1 (`test test … junk`), a payer.
pub const PAYER_KEY: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// A key that signs payments.
#[derive(Clone)]
pub struct Payer {
    key: SigningKey,
    nonces: Arc<AtomicU64>,
}

impl std::fmt::Debug for Payer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payer({:#x})", self.address())
    }
}

impl Payer {
    /// A payer with the hex private key `hex_key`.
    pub fn new(hex_key: &str) -> Self {
        let bytes = alloy_primitives::hex::decode(hex_key).expect("hex key");
        Self {
            key: SigningKey::from_slice(&bytes).expect("secp256k1 key"),
            nonces: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Its address.
    pub fn address(&self) -> Address {
        Address::from_private_key(&self.key)
    }

    /// The `PAYMENT-SIGNATURE` for the first offer of a 402's
    /// `PAYMENT-REQUIRED` header, good from `now` for the offer's timeout,
    /// as the reference clients build it. `change` may alter the
    /// authorization before signing (a test's forgery).
    pub fn pay(
        &self,
        payment_required: &str,
        now: u64,
        change: impl FnOnce(&mut ParsedAuthorization),
    ) -> String {
        let required: PaymentRequired = decode_header(payment_required).expect("PAYMENT-REQUIRED");
        let accepted = required.accepts[0].clone();
        let payload = self.payload(&accepted, now, change);
        let document = PaymentPayload {
            x402_version: 2,
            resource: Some(required.resource.clone()),
            accepted,
            payload,
            extensions: None,
        };
        encode_header(&document)
    }

    /// The `payload` member (signature and authorization) for `accepted`.
    pub fn payload(
        &self,
        accepted: &PaymentRequirements,
        now: u64,
        change: impl FnOnce(&mut ParsedAuthorization),
    ) -> Value {
        let n = self.nonces.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; 32];
        nonce[..8].copy_from_slice(&n.to_be_bytes());
        nonce[8..16].copy_from_slice(&now.to_be_bytes());
        let mut auth = ParsedAuthorization {
            from: self.address(),
            to: parse_address(&accepted.pay_to).expect("payTo"),
            value: accepted.amount.parse::<U256>().expect("amount"),
            valid_after: U256::ZERO,
            valid_before: U256::from(now + accepted.max_timeout_seconds),
            nonce: B256::from(nonce),
        };
        change(&mut auth);
        let domain = Eip3009Domain {
            name: accepted.extra["name"].as_str().expect("name").to_owned(),
            version: accepted.extra["version"]
                .as_str()
                .expect("version")
                .to_owned(),
            chain_id: chain_id(&accepted.network).expect("eip155 network"),
            verifying_contract: parse_address(&accepted.asset).expect("asset"),
        };
        let digest = transfer_with_authorization_hash(&domain, &auth);
        let (sig, recid) = self
            .key
            .sign_prehash_recoverable(digest.as_slice())
            .expect("sign");
        let mut bytes = sig.to_bytes().to_vec();
        bytes.push(27 + recid.to_byte());
        json!({
            "signature": format!("0x{}", alloy_primitives::hex::encode(bytes)),
            "authorization": {
                "from": format!("{:#x}", auth.from),
                "to": format!("{:#x}", auth.to),
                "value": auth.value.to_string(),
                "validAfter": auth.valid_after.to_string(),
                "validBefore": auth.valid_before.to_string(),
                "nonce": format!("{:#x}", auth.nonce),
            }
        })
    }
}

/// What the facilitator double answers to `/settle`.
#[derive(Debug, Clone)]
pub enum SettleScript {
    /// `success: true` with a transaction hash made from the payment's nonce.
    Succeed,
    /// Never answers.
    Hang,
    /// This HTTP status and raw body.
    Raw(u16, &'static str),
    /// `success: false` with this reason.
    Fail(&'static str),
    /// A `Content-Length` longer than the body, then the connection closes.
    Truncated,
    /// `settlement_pending` this many times, then success.
    PendingThenSucceed(u32),
    /// Succeeds after this long.
    Slow(Duration),
}

/// A facilitator double on 127.0.0.1:0.
#[derive(Debug, Clone)]
pub struct FacilitatorDouble {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<DoubleState>,
}

#[derive(Debug)]
struct DoubleState {
    script: Mutex<SettleScript>,
    settles: Mutex<Vec<FacilitatorRequest>>,
    pending_left: AtomicU64,
}

impl FacilitatorDouble {
    /// Starts one answering `script`.
    pub async fn start(script: SettleScript) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pending = match script {
            SettleScript::PendingThenSucceed(n) => u64::from(n),
            _ => 0,
        };
        let state = Arc::new(DoubleState {
            script: Mutex::new(script),
            settles: Mutex::new(Vec::new()),
            pending_left: AtomicU64::new(pending),
        });
        let serving = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = serving.clone();
                tokio::spawn(async move {
                    let mut stream = stream;
                    let truncated = matches!(*state.script.lock(), SettleScript::Truncated);
                    if truncated {
                        truncated_answer(&mut stream).await;
                        return;
                    }
                    let service = service_fn(move |req| answer(state.clone(), req));
                    // One request per connection, so each script change
                    // meets a fresh connection (a truncated answer needs one).
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes what `/settle` answers from now on.
    pub fn script(&self, script: SettleScript) {
        if let SettleScript::PendingThenSucceed(n) = script {
            self.state
                .pending_left
                .store(u64::from(n), Ordering::SeqCst);
        }
        *self.state.script.lock() = script;
    }

    /// Every `/settle` request received.
    pub fn settles(&self) -> Vec<FacilitatorRequest> {
        self.state.settles.lock().clone()
    }
}

async fn truncated_answer(stream: &mut tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 65536];
    let _ = stream.read(&mut buf).await;
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{\"success\":tr")
        .await;
    let _ = stream.shutdown().await;
}

async fn answer(
    state: Arc<DoubleState>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json_answer = |status: u16, body: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("response")
    };
    if path.ends_with("/supported") {
        return Ok(json_answer(
            200,
            json!({"kinds": [{"x402Version": 2, "scheme": "exact", "network": "eip155:84532"}],
                   "extensions": [], "signers": {"eip155:*": []}}),
        ));
    }
    let Ok(request) = serde_json::from_slice::<FacilitatorRequest>(&body) else {
        return Ok(json_answer(400, json!({"error": "bad request"})));
    };
    if path.ends_with("/verify") {
        return Ok(json_answer(200, json!({"isValid": true})));
    }
    state.settles.lock().push(request.clone());
    let nonce = request.payment_payload.payload["authorization"]["nonce"]
        .as_str()
        .unwrap_or("0x00")
        .to_owned();
    let payer = request.payment_payload.payload["authorization"]["from"].clone();
    let success = json!({
        "success": true, "transaction": nonce, "network": request.payment_requirements.network,
        "payer": payer,
    });
    let script = state.script.lock().clone();
    Ok(match script {
        SettleScript::Succeed => json_answer(200, success),
        SettleScript::Slow(d) => {
            tokio::time::sleep(d).await;
            json_answer(200, success)
        }
        SettleScript::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        SettleScript::Raw(status, body) => Response::builder()
            .status(status)
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("response"),
        SettleScript::Fail(reason) => json_answer(
            200,
            json!({"success": false, "errorReason": reason, "transaction": "",
                   "network": request.payment_requirements.network}),
        ),
        SettleScript::Truncated => unreachable!("answered on accept"),
        SettleScript::PendingThenSucceed(_) => {
            let left = state.pending_left.load(Ordering::SeqCst);
            if left > 0 {
                state.pending_left.store(left - 1, Ordering::SeqCst);
                json_answer(
                    200,
                    json!({"success": false, "errorReason": "settlement_pending", "transaction": "",
                           "network": request.payment_requirements.network}),
                )
            } else {
                json_answer(200, success)
            }
        }
    })
}
