//! A real local EVM chain for tests: anvil (Foundry), installed by
//! `interop/x402/anvil.sh` and named by `FAREGATE_ANVIL`, started on a port
//! of its own choosing and killed when dropped; the EIP-3009 test token
//! (`interop/x402/fixtures/Token3009.json`) deployed and moved to Base
//! Sepolia's USDC address.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy_primitives::{Address, hex};
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
pub(crate) const ENV: &str = "FAREGATE_ANVIL";

/// Anvil's development accounts 0, 1, 2 and 3 (mnemonic `test test … junk`).
pub(crate) const KEYS: [&str; 4] = [
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];

/// Account `i`'s key.
pub(crate) fn key(i: usize) -> SigningKey {
    SigningKey::from_slice(&hex::decode(KEYS[i]).unwrap()).unwrap()
}

/// Account `i`'s address.
pub(crate) fn account(i: usize) -> Address {
    Address::from_private_key(&key(i))
}

/// The anvil binary, or `None` after saying how to get one.
pub(crate) fn binary() -> Option<String> {
    match std::env::var(ENV) {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            eprintln!("skipped: set {ENV}=$(bash interop/x402/anvil.sh)");
            None
        }
    }
}

/// A running anvil and a JSON-RPC client of it.
pub(crate) struct Anvil {
    _child: Child,
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    http: Client<HttpConnector, Full<Bytes>>,
    ids: AtomicU64,
}

impl Anvil {
    /// Starts `binary` on a free loopback port with chain id `chain_id`,
    /// automining, and waits until it listens.
    pub(crate) async fn start(binary: &str, chain_id: u64) -> Self {
        let mut child = Command::new(binary)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--chain-id",
                &chain_id.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let find = async {
            while let Some(line) = lines.next_line().await.unwrap() {
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

    /// Calls `method`: its result, or the node's error message.
    pub(crate) async fn rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let body =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let request = hyper::Request::post(&self.url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
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
    pub(crate) async fn transact(&self, from: Address, to: Option<Address>, data: &[u8]) -> Value {
        let mut tx = json!({"from": from.to_string(), "data": hex::encode_prefixed(data)});
        if let Some(to) = to {
            tx["to"] = json!(to.to_string());
        }
        let hash = self
            .rpc("eth_sendTransaction", json!([tx]))
            .await
            .expect("eth_sendTransaction");
        for _ in 0..500 {
            if let Some(receipt) = self.receipt(hash.as_str().unwrap()).await {
                return receipt;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{hash} not mined within 5 s");
    }

    /// The receipt of `hash`, if mined.
    pub(crate) async fn receipt(&self, hash: &str) -> Option<Value> {
        let receipt = self
            .rpc("eth_getTransactionReceipt", json!([hash]))
            .await
            .unwrap();
        (!receipt.is_null()).then_some(receipt)
    }

    /// Deploys the test token from account 0 and puts its runtime code at
    /// `at`. Its EIP-712 domain is then `("USD Coin", "2", chain, at)`.
    pub(crate) async fn install_token(&self, at: Address) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../interop/x402/fixtures/Token3009.json"
        );
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect(path)).unwrap();
        let bytecode = hex::decode(fixture["bytecode"].as_str().unwrap()).unwrap();
        let receipt = self.transact(account(0), None, &bytecode).await;
        assert_eq!(receipt["status"], "0x1", "deployment: {receipt}");
        let deployed = receipt["contractAddress"].clone();
        let code = self
            .rpc("eth_getCode", json!([deployed, "latest"]))
            .await
            .unwrap();
        self.rpc("anvil_setCode", json!([at.to_string(), code]))
            .await
            .unwrap();
    }
}
