//! A real local EVM chain for tests: anvil (Foundry), installed by
//! `interop/x402/anvil.sh` and named by `FAREGATE_ANVIL`, started on a port
//! of its own choosing and killed when dropped, with the EIP-3009 test token
//! (`interop/x402/fixtures/Token3009.json`) deployed and its code moved to
//! any address (Base Sepolia's USDC, for the real clients' spend controls).
//!
//! Everything is plain JSON-RPC over hyper, so what a test sees of the
//! chain does not go through the settler it is testing.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy_primitives::{Address, U256, hex};
use alloy_sol_types::{SolCall as _, sol};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k256::ecdsa::SigningKey;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The environment variable naming the anvil binary.
pub const ENV: &str = "FAREGATE_ANVIL";

/// The command that installs anvil and prints its path.
pub const INSTALL: &str = "bash interop/x402/anvil.sh";

/// Base Sepolia USDC, where tests put the token so that unmodified clients
/// pay it under their default spend controls.
pub const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";

/// Base Sepolia's chain id.
pub const BASE_SEPOLIA: u64 = 84532;

/// The test token's EIP-712 domain name and version.
pub const TOKEN_DOMAIN: (&str, &str) = ("USD Coin", "2");

/// Anvil's development accounts 0, 1, 2 and 3 (mnemonic `test test … junk`),
/// each funded with ether by anvil.
pub const KEYS: [&str; 4] = [
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];

sol! {
    function mint(address to, uint256 v) external;
    function balanceOf(address who) external view returns (uint256);
}

/// Account `i`'s key.
pub fn key(i: usize) -> SigningKey {
    SigningKey::from_slice(&hex::decode(KEYS[i]).expect("hex key")).expect("secp256k1 key")
}

/// Account `i`'s address.
pub fn account(i: usize) -> Address {
    Address::from_private_key(&key(i))
}

/// The anvil binary named by `FAREGATE_ANVIL`, or `None` after saying how
/// to get one.
pub fn binary() -> Option<String> {
    match std::env::var(ENV) {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            eprintln!("skipped: set {ENV}=$({INSTALL})");
            None
        }
    }
}

/// A running anvil and a JSON-RPC client of it.
#[derive(Debug)]
pub struct Anvil {
    _child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    http: Client<HttpConnector, Full<Bytes>>,
    ids: AtomicU64,
}

impl Anvil {
    /// Starts `binary` on a free loopback port with chain id `chain_id`,
    /// automining, and waits until it listens.
    pub async fn start(binary: &str, chain_id: u64) -> Self {
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--chain-id", &chain_id.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let stdout = child.stdout.take().expect("anvil's stdout");
        let mut lines = BufReader::new(stdout).lines();
        let find = async {
            while let Some(line) = lines.next_line().await.expect("anvil's stdout") {
                if let Some(addr) = line.trim().strip_prefix("Listening on ") {
                    return addr.to_owned();
                }
            }
            panic!("anvil exited before listening");
        };
        let addr = tokio::time::timeout(Duration::from_secs(30), find)
            .await
            .expect("anvil listens within 30 s");
        // Anvil logs every call: keep reading so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            _child: child,
            url: format!("http://{addr}"),
            http: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            ids: AtomicU64::new(1),
        }
    }

    /// Calls `method`: its result, or the node's error as text.
    pub async fn rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let request = hyper::Request::post(&self.url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let mut answer: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        match answer.get("error") {
            Some(error) => Err(error.to_string()),
            None => Ok(answer["result"].take()),
        }
    }

    /// Sends `data` from unlocked account `from` to `to` (a deployment when
    /// `None`) and returns the receipt, which automining makes immediate.
    pub async fn transact(&self, from: Address, to: Option<Address>, data: &[u8]) -> Value {
        let mut tx = json!({"from": from.to_string(), "data": hex::encode_prefixed(data)});
        if let Some(to) = to {
            tx["to"] = json!(to.to_string());
        }
        let hash = self
            .rpc("eth_sendTransaction", json!([tx]))
            .await
            .expect("eth_sendTransaction");
        let hash = hash.as_str().expect("a transaction hash");
        for _ in 0..500 {
            if let Some(receipt) = self.receipt(hash).await {
                return receipt;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{hash} not mined within 5 s");
    }

    /// The receipt of `hash`, if mined.
    pub async fn receipt(&self, hash: &str) -> Option<Value> {
        let receipt = self
            .rpc("eth_getTransactionReceipt", json!([hash]))
            .await
            .expect("eth_getTransactionReceipt");
        (!receipt.is_null()).then_some(receipt)
    }

    /// Deploys the test token from account 0 and puts its runtime code at
    /// `at`. Its EIP-712 domain is then [`TOKEN_DOMAIN`] on this chain at
    /// `at` (the domain's name and version are immutables, so they move
    /// with the code; `name()` reads `""` since storage does not).
    pub async fn install_token(&self, at: Address) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../interop/x402/fixtures/Token3009.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let fixture: Value = serde_json::from_str(&text).expect("the token fixture is JSON");
        let bytecode = fixture["bytecode"].as_str().expect("a bytecode member");
        let bytecode = hex::decode(bytecode).expect("hex bytecode");
        let receipt = self.transact(account(0), None, &bytecode).await;
        assert_eq!(receipt["status"], "0x1", "deployment: {receipt}");
        let deployed = receipt["contractAddress"].clone();
        let code = self
            .rpc("eth_getCode", json!([deployed, "latest"]))
            .await
            .expect("eth_getCode");
        self.rpc("anvil_setCode", json!([at.to_string(), code]))
            .await
            .expect("anvil_setCode");
    }

    /// Mints `amount` atomic units of the test token at `token` to `to`
    /// (the fixture lets anyone mint), sent from account 0.
    pub async fn mint(&self, token: Address, to: Address, amount: U256) {
        let data = mintCall { to, v: amount }.abi_encode();
        let receipt = self.transact(account(0), Some(token), &data).await;
        assert_eq!(receipt["status"], "0x1", "mint: {receipt}");
    }

    /// `who`'s balance of `token`, read with `eth_call` at the latest block.
    pub async fn balance_of(&self, token: Address, who: Address) -> U256 {
        let data = balanceOfCall { who }.abi_encode();
        let call = json!({"to": token.to_string(), "data": hex::encode_prefixed(data)});
        let answer = self
            .rpc("eth_call", json!([call, "latest"]))
            .await
            .expect("eth_call balanceOf");
        let bytes = hex::decode(answer.as_str().expect("hex")).expect("hex");
        balanceOfCall::abi_decode_returns(&bytes).expect("a uint256")
    }
}
