//! `ChainSettler` against a real anvil (`FAREGATE_ANVIL`): the EIP-3009
//! test token at Base Sepolia's USDC address on chain 84532, a payer
//! (account 1) signing authorizations offline, and the settler paying gas
//! from account 0. Skipped, saying so, when anvil is not named.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256, U256, hex};
use alloy_sol_types::{SolCall as _, sol};
use faregate_x402::evm::{Eip3009Domain, parse_address, transfer_with_authorization_hash};
use faregate_x402::reason;
use faregate_x402::settle::{ChainConfig, ChainSettler, Settler};
use faregate_x402::verify::{ParsedAuthorization, verify_exact};
use faregate_x402::wire::FacilitatorRequest;
use serde_json::{Value, json};
use support::anvil::{self, Anvil};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

sol! {
    function mint(address to, uint256 v) external;
}

const CHAIN_ID: u64 = 84532;
/// What the payer holds: 50 USDC.
const MINTED: u64 = 50_000_000;
/// What each authorization pays: 0.01 USDC.
const VALUE: u64 = 10_000;

/// A chain with the token installed and the payer funded.
struct Chain {
    anvil: Arc<Anvil>,
    token: Address,
    payee: Address,
}

impl Chain {
    async fn start() -> Option<Self> {
        let anvil = Anvil::start(&anvil::binary()?, CHAIN_ID).await;
        let token = parse_address(support::USDC).unwrap();
        anvil.install_token(token).await;
        let data = mintCall {
            to: anvil::account(1),
            v: U256::from(MINTED),
        }
        .abi_encode();
        anvil.transact(anvil::account(0), Some(token), &data).await;
        Some(Self {
            anvil: Arc::new(anvil),
            token,
            payee: anvil::account(2),
        })
    }

    fn settler(&self, confirmations: u64, timeout: Duration) -> ChainSettler {
        self.settler_at(&self.anvil.url, confirmations, timeout)
    }

    /// A settler whose JSON-RPC is `url` (a [`Relay`] to this chain).
    fn settler_at(&self, url: &str, confirmations: u64, timeout: Duration) -> ChainSettler {
        self.settler_with(url, confirmations, None, timeout)
    }

    fn settler_with(
        &self,
        url: &str,
        confirmations: u64,
        gas_limit: Option<u64>,
        timeout: Duration,
    ) -> ChainSettler {
        ChainSettler::new(ChainConfig {
            rpc_url: url.to_owned(),
            network: support::NETWORK.into(),
            signer_key: format!("0x{}", anvil::KEYS[0]),
            confirmations,
            gas_limit,
            timeout,
            poll_interval: Duration::from_millis(20),
        })
        .unwrap()
    }

    /// The payer's authorization of `value` to the payee, nonce `nonce`,
    /// signed over EIP-712 as a client would, and verified in process.
    fn payment(&self, value: u64, nonce: u8) -> FacilitatorRequest {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let auth = ParsedAuthorization {
            from: anvil::account(1),
            to: self.payee,
            value: U256::from(value),
            valid_after: U256::ZERO,
            valid_before: U256::from(now + 3600),
            nonce: B256::repeat_byte(nonce),
        };
        let domain = Eip3009Domain {
            name: "USD Coin".into(),
            version: "2".into(),
            chain_id: CHAIN_ID,
            verifying_contract: self.token,
        };
        let digest = transfer_with_authorization_hash(&domain, &auth);
        let (sig, recid) = anvil::key(1)
            .sign_prehash_recoverable(digest.as_slice())
            .unwrap();
        let mut signature = sig.to_bytes().to_vec();
        signature.push(27 + recid.to_byte());
        let payload = json!({
            "signature": hex::encode_prefixed(signature),
            "authorization": {
                "from": auth.from.to_string(), "to": auth.to.to_string(), "value": value.to_string(),
                "validAfter": "0", "validBefore": auth.valid_before.to_string(), "nonce": auth.nonce.to_string(),
            }
        });
        let req = support::request(
            support::requirements(support::USDC, &self.payee.to_string(), &value.to_string()),
            payload,
        );
        verify_exact(&req.payment_payload, &req.payment_requirements, now)
            .expect("verifies in process");
        req
    }

    async fn balance(&self, settler: &ChainSettler, who: Address) -> U256 {
        settler.balance_of(self.token, who).await.unwrap()
    }

    async fn receipt_status(&self, tx: &str) -> String {
        let receipt = self.anvil.receipt(tx).await.expect("a receipt");
        receipt["status"].as_str().unwrap().to_owned()
    }
}

/// How a [`Relay`] answers `eth_sendRawTransactionSync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncSend {
    /// As anvil does: sent, mined, the receipt.
    Served,
    /// As a node without the method: JSON-RPC `-32601`.
    Unknown,
    /// As a gateway that lets through only the methods it lists: a plain
    /// HTTP 403, no JSON.
    Forbidden,
}

/// A JSON-RPC relay to anvil that records the method of every call and
/// answers `eth_sendRawTransactionSync` as [`SyncSend`] says.
struct Relay {
    url: String,
    methods: Arc<parking_lot::Mutex<Vec<String>>>,
}

impl Relay {
    async fn start(anvil: Arc<Anvil>, sync: SyncSend) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let methods = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let seen = methods.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (anvil, seen) = (anvil.clone(), seen.clone());
                tokio::spawn(async move {
                    Self::serve(stream, &anvil, &seen, sync).await;
                });
            }
        });
        Self { url, methods }
    }

    /// Answers the calls on one kept-alive connection.
    async fn serve(
        mut stream: TcpStream,
        anvil: &Anvil,
        seen: &parking_lot::Mutex<Vec<String>>,
        sync: SyncSend,
    ) {
        let mut buf = Vec::new();
        while let Some(body) = read_body(&mut stream, &mut buf).await {
            let call: Value = serde_json::from_slice(&body).unwrap();
            let method = call["method"].as_str().unwrap().to_owned();
            seen.lock().push(method.clone());
            let is_sync = method == "eth_sendRawTransactionSync";
            if is_sync && sync == SyncSend::Forbidden {
                let refusal = "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 18\r\n\r\nmethod not allowed";
                if stream.write_all(refusal.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            let answer = if is_sync && sync == SyncSend::Unknown {
                json!({"code": -32601, "message": "the method eth_sendRawTransactionSync does not exist/is not available"})
            } else {
                match anvil.rpc(&method, call["params"].clone()).await {
                    Ok(result) => json!({"jsonrpc": "2.0", "id": call["id"], "result": result}),
                    Err(error) => json!({
                        "jsonrpc": "2.0", "id": call["id"],
                        "error": serde_json::from_str::<Value>(&error).unwrap(),
                    }),
                }
            };
            let answer = if answer.get("code").is_some() {
                json!({"jsonrpc": "2.0", "id": call["id"], "error": answer})
            } else {
                answer
            }
            .to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                answer.len()
            );
            if stream.write_all(head.as_bytes()).await.is_err()
                || stream.write_all(answer.as_bytes()).await.is_err()
            {
                return;
            }
        }
    }

    /// The methods called since the last take.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.methods.lock())
    }
}

/// The body of the next request on `stream` (`content-length` framed);
/// `buf` keeps what was read past it.
async fn read_body(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    Some(body)
}

fn count(methods: &[String], method: &str) -> usize {
    methods.iter().filter(|m| *m == method).count()
}

#[tokio::test]
async fn a_node_that_sends_synchronously_is_not_polled_and_fees_are_read_once_a_second() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let relay = Relay::start(chain.anvil.clone(), SyncSend::Served).await;
    let settler = chain.settler_at(&relay.url, 1, Duration::from_secs(10));
    let first = settler.settle(&chain.payment(VALUE, 40)).await;
    assert!(first.success, "{first:?}");
    let methods = relay.take();
    assert_eq!(
        count(&methods, "eth_sendRawTransactionSync"),
        1,
        "{methods:?}"
    );
    assert_eq!(
        count(&methods, "eth_getTransactionReceipt"),
        0,
        "{methods:?}"
    );
    assert_eq!(count(&methods, "eth_sendRawTransaction"), 0, "{methods:?}");

    // The next one, within the second: the gas estimate and the send only.
    let payee_before = chain.balance(&settler, chain.payee).await;
    relay.take();
    let second = settler.settle(&chain.payment(VALUE, 41)).await;
    assert!(second.success, "{second:?}");
    assert_eq!(chain.receipt_status(&second.transaction).await, "0x1");
    assert_eq!(
        relay.take(),
        ["eth_estimateGas", "eth_sendRawTransactionSync"],
        "one call to price the transfer and one to send it"
    );
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        payee_before + U256::from(VALUE)
    );
}

#[tokio::test]
async fn a_fixed_gas_limit_sends_without_an_estimate_and_one_too_low_is_a_failed_transfer() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let relay = Relay::start(chain.anvil.clone(), SyncSend::Served).await;
    let settler = chain.settler_with(&relay.url, 1, Some(200_000), Duration::from_secs(10));
    assert!(settler.settle(&chain.payment(VALUE, 50)).await.success);
    let payee_before = chain.balance(&settler, chain.payee).await;
    relay.take();
    let settled = settler.settle(&chain.payment(VALUE, 51)).await;
    assert!(settled.success, "{settled:?}");
    assert_eq!(
        relay.take(),
        ["eth_sendRawTransactionSync"],
        "the send alone"
    );
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        payee_before + U256::from(VALUE)
    );

    // Too little gas: the transfer runs out on chain, so the payment is
    // not settled, and the authorization stays unused.
    let starved = chain.settler_with(&chain.anvil.url, 1, Some(30_000), Duration::from_secs(10));
    let req = chain.payment(VALUE, 52);
    let failed = starved.settle(&req).await;
    assert!(!failed.success, "{failed:?}");
    assert_eq!(
        failed.error_reason.as_deref(),
        Some(reason::TRANSACTION_FAILED),
        "{failed:?}"
    );
    assert_eq!(chain.receipt_status(&failed.transaction).await, "0x0");
    assert!(
        !settler
            .authorization_used(chain.token, anvil::account(1), B256::repeat_byte(52))
            .await
            .unwrap()
    );
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        payee_before + U256::from(VALUE),
        "a reverted transfer moves nothing"
    );
    // The same authorization, with gas enough, settles.
    assert!(settler.settle(&req).await.success);
}

#[tokio::test]
async fn a_node_without_the_sync_send_is_sent_to_and_polled() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let relay = Relay::start(chain.anvil.clone(), SyncSend::Unknown).await;
    let settler = chain.settler_at(&relay.url, 1, Duration::from_secs(10));
    let first = settler.settle(&chain.payment(VALUE, 42)).await;
    assert!(first.success, "{first:?}");
    assert_eq!(chain.receipt_status(&first.transaction).await, "0x1");
    let methods = relay.take();
    assert_eq!(
        count(&methods, "eth_sendRawTransactionSync"),
        1,
        "{methods:?}"
    );
    assert_eq!(count(&methods, "eth_sendRawTransaction"), 1, "{methods:?}");
    assert!(
        count(&methods, "eth_getTransactionReceipt") >= 1,
        "{methods:?}"
    );

    // Told once: the sync send is not tried again.
    let second = settler.settle(&chain.payment(VALUE, 43)).await;
    assert!(second.success, "{second:?}");
    let methods = relay.take();
    assert_eq!(
        count(&methods, "eth_sendRawTransactionSync"),
        0,
        "{methods:?}"
    );
    assert_eq!(count(&methods, "eth_sendRawTransaction"), 1, "{methods:?}");
}

#[tokio::test]
async fn a_gateway_refusing_the_sync_send_with_a_plain_403_is_sent_to_without_it() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let relay = Relay::start(chain.anvil.clone(), SyncSend::Forbidden).await;
    let settler = chain.settler_at(&relay.url, 1, Duration::from_secs(10));
    let payee_before = chain.balance(&settler, chain.payee).await;
    relay.take();
    let first = settler.settle(&chain.payment(VALUE, 47)).await;
    assert!(first.success, "{first:?}");
    assert_eq!(chain.receipt_status(&first.transaction).await, "0x1");
    let methods = relay.take();
    // Refused, not sent: the node is asked, and the transfer sent plainly.
    for (method, times) in [
        ("eth_sendRawTransactionSync", 1),
        ("eth_getTransactionByHash", 1),
        ("eth_sendRawTransaction", 1),
    ] {
        assert_eq!(count(&methods, method), times, "{method} in {methods:?}");
    }
    let second = settler.settle(&chain.payment(VALUE, 48)).await;
    assert!(second.success, "{second:?}");
    let methods = relay.take();
    assert_eq!(
        count(&methods, "eth_sendRawTransactionSync"),
        0,
        "{methods:?}"
    );
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        payee_before + U256::from(2 * VALUE),
        "each paid once"
    );
}

#[tokio::test]
async fn a_sync_send_cut_by_the_deadline_is_pending_and_the_retry_waits_for_it() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let settler = chain.settler(1, Duration::from_millis(800));
    // Warm: the chain id checked, the nonce and fees read.
    assert!(settler.settle(&chain.payment(VALUE, 44)).await.success);
    chain
        .anvil
        .rpc("evm_setAutomine", json!([false]))
        .await
        .unwrap();
    let req = chain.payment(VALUE, 45);
    let started = Instant::now();
    let pending = settler.settle(&req).await;
    assert!(!pending.success, "{pending:?}");
    assert_eq!(
        pending.error_reason.as_deref(),
        Some(reason::SETTLEMENT_PENDING),
        "{pending:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!pending.transaction.is_empty(), "{pending:?}");
    // The node had it all along: mined now, the retry finds it.
    chain.anvil.rpc("evm_mine", json!([])).await.unwrap();
    let retried = settler.settle(&req).await;
    assert!(retried.success, "{retried:?}");
    assert_eq!(retried.transaction, pending.transaction);
    assert_eq!(chain.receipt_status(&retried.transaction).await, "0x1");
    // The nonce, read again after the cut, leaves no gap.
    chain
        .anvil
        .rpc("evm_setAutomine", json!([true]))
        .await
        .unwrap();
    let next = settler.settle(&chain.payment(VALUE, 46)).await;
    assert!(next.success, "{next:?}");
}

#[tokio::test]
async fn an_authorization_settles_once_for_exactly_its_value() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let settler = chain.settler(1, Duration::from_secs(10));
    let (payer, payee) = (anvil::account(1), chain.payee);
    let req = chain.payment(VALUE, 1);
    let verdict = settler.verify(&req).await.unwrap();
    assert!(verdict.is_valid, "{verdict:?}");
    let before = (
        chain.balance(&settler, payer).await,
        chain.balance(&settler, payee).await,
    );

    let started = Instant::now();
    let dyn_settler: &dyn Settler = &settler;
    let settled = dyn_settler.settle(&req).await;
    let first = started.elapsed();
    assert!(settled.success, "{settled:?}");
    assert_eq!(settled.payer.as_deref(), Some(payer.to_string().as_str()));
    assert_eq!(
        (settled.network.as_str(), settled.amount.as_deref()),
        (support::NETWORK, Some("10000"))
    );
    assert_eq!(chain.receipt_status(&settled.transaction).await, "0x1");
    let value = U256::from(VALUE);
    assert_eq!(chain.balance(&settler, payer).await, before.0 - value);
    assert_eq!(chain.balance(&settler, payee).await, before.1 + value);
    let nonce = B256::repeat_byte(1);
    assert!(
        settler
            .authorization_used(chain.token, payer, nonce)
            .await
            .unwrap()
    );

    let verdict = settler.verify(&req).await.unwrap();
    assert_eq!(
        verdict.invalid_reason.as_deref(),
        Some(reason::NONCE_USED),
        "{verdict:?}"
    );
    let replay = settler.settle(&req).await;
    assert!(!replay.success, "{replay:?}");
    assert_eq!(
        replay.error_reason.as_deref(),
        Some(reason::NONCE_USED),
        "{replay:?}"
    );
    assert!(
        replay
            .error_message
            .unwrap()
            .contains("authorization is used")
    );
    assert_eq!(
        chain.balance(&settler, payer).await,
        before.0 - value,
        "a replay moves nothing"
    );

    let mut latencies = Vec::new();
    for nonce in 10..30 {
        let req = chain.payment(VALUE, nonce);
        let started = Instant::now();
        assert!(settler.settle(&req).await.success);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    eprintln!(
        "anvil settle latency: first {:?} (chain id check included); over {} more: p50 {:?}, max {:?}",
        first,
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

#[tokio::test]
async fn concurrent_settlements_take_their_own_nonces_and_resync_after_a_foreign_send() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let settler = chain.settler(1, Duration::from_secs(10));
    let before = chain.balance(&settler, chain.payee).await;
    let (a, b, c) = (
        chain.payment(VALUE, 2),
        chain.payment(VALUE, 3),
        chain.payment(VALUE, 4),
    );
    let (a, b, c) = tokio::join!(settler.settle(&a), settler.settle(&b), settler.settle(&c));
    for settled in [&a, &b, &c] {
        assert!(settled.success, "{settled:?}");
        assert_eq!(chain.receipt_status(&settled.transaction).await, "0x1");
    }
    assert!(
        a.transaction != b.transaction
            && b.transaction != c.transaction
            && a.transaction != c.transaction
    );
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        before + U256::from(3 * VALUE)
    );

    // Account 0 sends outside the settler: its kept nonce is now too low.
    let data = mintCall {
        to: anvil::account(3),
        v: U256::from(1),
    }
    .abi_encode();
    chain
        .anvil
        .transact(anvil::account(0), Some(chain.token), &data)
        .await;
    let settled = settler.settle(&chain.payment(VALUE, 5)).await;
    assert!(settled.success, "{settled:?}");
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        before + U256::from(4 * VALUE)
    );
}

#[tokio::test]
async fn a_transfer_not_confirmed_in_time_is_pending_with_its_hash() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    // Automining makes one block per transaction: three never come.
    let settler = chain.settler(3, Duration::from_millis(800));
    let started = Instant::now();
    let first = chain.payment(VALUE, 6);
    let pending = settler.settle(&first).await;
    assert!(!pending.success, "{pending:?}");
    assert_eq!(
        pending.error_reason.as_deref(),
        Some(reason::SETTLEMENT_PENDING),
        "{pending:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // It was sent and mined, only not deep enough: the hash says where.
    assert_eq!(chain.receipt_status(&pending.transaction).await, "0x1");
    // Settled again (the rail retries `settlement_pending` once), the same
    // payment waits for that transaction instead of sending a second one,
    // which would revert: once deep enough, it is a success with its hash.
    chain.anvil.rpc("anvil_mine", json!(["0x2"])).await.unwrap();
    let retried = settler.settle(&first).await;
    assert!(retried.success, "{retried:?}");
    assert_eq!(retried.transaction, pending.transaction);
    // With two more blocks mined meanwhile, the next one is deep enough.
    let deep = chain.settler(3, Duration::from_secs(5));
    let mine = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        chain.anvil.rpc("anvil_mine", json!(["0x2"])).await.unwrap();
    };
    let req = chain.payment(VALUE, 7);
    let started = Instant::now();
    let (settled, ()) = tokio::join!(deep.settle(&req), mine);
    assert!(settled.success, "{settled:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited for the confirmations"
    );
}

#[tokio::test]
async fn one_authorization_sent_twice_at_once_settles_once_and_the_other_reverts() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let first = chain.settler(1, Duration::from_secs(10));
    // A second settler with its own account (3), so their nonces are apart.
    let second = ChainSettler::new(ChainConfig {
        signer_key: anvil::KEYS[3].into(),
        ..config_of(&chain)
    })
    .unwrap();
    let req = chain.payment(VALUE, 11);
    let before = chain.balance(&first, chain.payee).await;
    // Both transactions wait in the pool, both estimated before either ran.
    chain
        .anvil
        .rpc("evm_setAutomine", json!([false]))
        .await
        .unwrap();
    let mine = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        chain.anvil.rpc("anvil_mine", json!(["0x1"])).await.unwrap();
    };
    let (a, b, ()) = tokio::join!(first.settle(&req), second.settle(&req), mine);
    let (won, lost) = if a.success { (a, b) } else { (b, a) };
    assert!(won.success, "{won:?}");
    assert!(!lost.success, "{lost:?}");
    // Read after the revert: the other transfer used the authorization.
    assert_eq!(
        lost.error_reason.as_deref(),
        Some(reason::NONCE_USED),
        "{lost:?}"
    );
    assert_eq!(
        chain.receipt_status(&lost.transaction).await,
        "0x0",
        "the revert is reported with its hash"
    );
    assert_eq!(
        chain.balance(&first, chain.payee).await,
        before + U256::from(VALUE)
    );
}

#[tokio::test]
async fn short_balances_wrong_networks_and_wrong_chains_are_refused() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let settler = chain.settler(1, Duration::from_secs(10));
    let too_much = chain.payment(MINTED + 1, 8);
    let verdict = settler.verify(&too_much).await.unwrap();
    assert_eq!(
        verdict.invalid_reason.as_deref(),
        Some(reason::INSUFFICIENT_BALANCE),
        "{verdict:?}"
    );
    let refused = settler.settle(&too_much).await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some(reason::INSUFFICIENT_BALANCE),
        "{refused:?}"
    );
    assert_eq!(refused.transaction, "", "nothing was sent");

    let mut elsewhere = chain.payment(VALUE, 9);
    elsewhere.payment_requirements.network = "eip155:8453".into();
    let refused = settler.settle(&elsewhere).await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some(reason::NETWORK_MISMATCH),
        "{refused:?}"
    );

    let wrong_chain = ChainSettler::new(ChainConfig {
        network: "eip155:8453".into(),
        ..config_of(&chain)
    })
    .unwrap();
    let mut base = chain.payment(VALUE, 9);
    base.payment_requirements.network = "eip155:8453".into();
    let refused = wrong_chain.settle(&base).await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some(reason::UNEXPECTED_SETTLE_ERROR),
        "{refused:?}"
    );
    assert!(refused.error_message.unwrap().contains("chain 84532"));

    let supported = settler.supported().await.unwrap();
    assert_eq!(supported.kinds[0].network, support::NETWORK);
    assert_eq!(
        supported.signers["eip155:*"],
        json!([anvil::account(0).to_string()])
    );
    assert_eq!(settler.address(), anvil::account(0));
}

fn config_of(chain: &Chain) -> ChainConfig {
    ChainConfig {
        rpc_url: chain.anvil.url.clone(),
        network: support::NETWORK.into(),
        signer_key: anvil::KEYS[0].into(),
        confirmations: 1,
        gas_limit: None,
        timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
    }
}

#[test]
fn configuration_problems_are_all_reported_and_the_key_is_never_shown() {
    let config = ChainConfig {
        rpc_url: "localhost:8545".into(),
        network: "base".into(),
        signer_key: "0xnot-a-key-but-secret".into(),
        confirmations: 1,
        gas_limit: Some(20_999),
        timeout: Duration::ZERO,
        poll_interval: Duration::ZERO,
    };
    let error = ChainSettler::new(config.clone()).unwrap_err();
    for field in [
        "rpc_url",
        "network",
        "signer_key",
        "gas_limit",
        "timeout",
        "poll_interval",
    ] {
        assert!(error.contains(field), "{field} in {error}");
    }
    assert!(
        !error.contains("secret") && !format!("{config:?}").contains("secret"),
        "{error}"
    );
    let good = ChainConfig {
        rpc_url: "https://user:pw@node.example/v2/apikey".into(),
        network: support::NETWORK.into(),
        signer_key: anvil::KEYS[0].into(),
        timeout: Duration::from_secs(1),
        poll_interval: Duration::from_millis(10),
        gas_limit: Some(21_000),
        ..config
    };
    let shown = format!("{good:?} {:?}", ChainSettler::new(good.clone()).unwrap());
    assert!(
        !shown.contains(anvil::KEYS[0]) && !shown.contains("apikey") && !shown.contains("pw"),
        "{shown}"
    );
}
