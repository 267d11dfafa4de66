//! A minimal Ethereum JSON-RPC client over the settlers' HTTP client: one
//! `{"jsonrpc":"2.0","id":n,"method":…,"params":[…]}` POST per call, the
//! answer size-capped and the call bounded in time.
//!
//! Written here rather than taken from `alloy-provider`: the settler needs
//! eight methods, and alloy's provider stack would bring reqwest, a second
//! HTTP client and TLS setup beside the one this workspace already runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy_primitives::{Address, B256, U256, hex};
use hyper::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{self, HttpClient};

/// Why a call has no result, by who is at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(super) enum RpcError {
    /// The node could not be reached or answered something that is not
    /// JSON-RPC (timeout, HTTP error, garbage).
    #[error("RPC {method}: {detail}")]
    Transport {
        /// The method called.
        method: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The node answered with a JSON-RPC error (a revert, a refused
    /// transaction, …).
    #[error("RPC {method} error {code}: {message}")]
    Node {
        /// The method called.
        method: &'static str,
        /// The JSON-RPC error code (3 for a revert).
        code: i64,
        /// The node's message.
        message: String,
    },
}

impl RpcError {
    /// The node's message, when the node refused the call.
    pub(super) fn node_message(&self) -> Option<&str> {
        match self {
            Self::Node { message, .. } => Some(message),
            Self::Transport { .. } => None,
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

/// A JSON-RPC endpoint.
pub(super) struct Rpc {
    url: String,
    timeout: Duration,
    http: HttpClient,
    ids: AtomicU64,
}

impl std::fmt::Debug for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL of a hosted node often carries an API key: not shown.
        f.debug_struct("Rpc")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Rpc {
    /// An endpoint at `url` (`http://` or `https://`), each call within `timeout`.
    pub(super) fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            url: client::base_url(url)?,
            timeout,
            http: client::client(),
            ids: AtomicU64::new(1),
        })
    }

    /// Calls `method` with `params` and returns its `result`.
    pub(super) async fn call(
        &self,
        method: &'static str,
        params: Value,
    ) -> Result<Value, RpcError> {
        let transport = |detail: String| RpcError::Transport { method, detail };
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let body = serde_json::to_vec(&body).map_err(|e| transport(e.to_string()))?;
        let answer = client::exchange(
            &self.http,
            Method::POST,
            &self.url,
            Some(body),
            self.timeout,
        )
        .await
        .map_err(transport)?;
        // Some nodes send JSON-RPC errors with a 4xx or 5xx: read the body first.
        let envelope: Envelope = serde_json::from_slice(&answer.body).map_err(|_| {
            transport(format!(
                "HTTP {}, and the body is not JSON-RPC",
                answer.status
            ))
        })?;
        if envelope.id != json!(id) {
            return Err(transport(format!(
                "answer id {} for request id {id}",
                envelope.id
            )));
        }
        if let Some(e) = envelope.error {
            let message = match e.data {
                Some(Value::String(data)) if !e.message.contains(&data) => {
                    format!("{} ({data})", e.message)
                }
                _ => e.message,
            };
            return Err(RpcError::Node {
                method,
                code: e.code,
                message,
            });
        }
        if !answer.status.is_success() {
            return Err(transport(format!("HTTP {}", answer.status)));
        }
        Ok(envelope.result.unwrap_or(Value::Null))
    }

    /// `eth_chainId`.
    pub(super) async fn chain_id(&self) -> Result<u64, RpcError> {
        let v = self.call("eth_chainId", json!([])).await?;
        quantity_u64("eth_chainId", &v)
    }

    /// `eth_call` of `data` on `to` at the latest block.
    pub(super) async fn eth_call(&self, to: Address, data: &[u8]) -> Result<Vec<u8>, RpcError> {
        let tx = json!({"to": to.to_string(), "data": hex::encode_prefixed(data)});
        let v = self.call("eth_call", json!([tx, "latest"])).await?;
        data_bytes("eth_call", &v)
    }

    /// `eth_estimateGas` of `data` sent by `from` to `to`.
    pub(super) async fn estimate_gas(
        &self,
        from: Address,
        to: Address,
        data: &[u8],
    ) -> Result<u64, RpcError> {
        let tx = json!({"from": from.to_string(), "to": to.to_string(), "data": hex::encode_prefixed(data)});
        let v = self.call("eth_estimateGas", json!([tx])).await?;
        quantity_u64("eth_estimateGas", &v)
    }

    /// `eth_getTransactionCount(who, "pending")`: the next nonce to use.
    pub(super) async fn pending_nonce(&self, who: Address) -> Result<u64, RpcError> {
        let v = self
            .call(
                "eth_getTransactionCount",
                json!([who.to_string(), "pending"]),
            )
            .await?;
        quantity_u64("eth_getTransactionCount", &v)
    }

    /// `eth_maxPriorityFeePerGas`.
    pub(super) async fn max_priority_fee(&self) -> Result<U256, RpcError> {
        let v = self.call("eth_maxPriorityFeePerGas", json!([])).await?;
        quantity("eth_maxPriorityFeePerGas", &v)
    }

    /// The latest block's `baseFeePerGas`.
    pub(super) async fn base_fee(&self) -> Result<U256, RpcError> {
        const METHOD: &str = "eth_getBlockByNumber";
        let block = self.call(METHOD, json!(["latest", false])).await?;
        quantity(METHOD, block.get("baseFeePerGas").unwrap_or(&Value::Null))
    }

    /// `eth_sendRawTransaction`.
    pub(super) async fn send_raw(&self, raw: &[u8]) -> Result<(), RpcError> {
        self.call("eth_sendRawTransaction", json!([hex::encode_prefixed(raw)]))
            .await?;
        Ok(())
    }

    /// `eth_sendRawTransactionSync` (EIP-7966): sends and waits for the
    /// receipt, so that no receipt is polled for. Only the transaction is
    /// passed: nodes differ on the optional wait parameter (anvil refuses
    /// it), and the node's own wait is bounded by the caller.
    pub(super) async fn send_raw_sync(&self, raw: &[u8]) -> Result<Receipt, RpcError> {
        const METHOD: &str = "eth_sendRawTransactionSync";
        let v = self
            .call(METHOD, json!([hex::encode_prefixed(raw)]))
            .await?;
        receipt_of(METHOD, &v)?.ok_or_else(|| RpcError::Transport {
            method: METHOD,
            detail: "no receipt in the answer".into(),
        })
    }

    /// `eth_getTransactionByHash`: whether the node has `tx`, pending or
    /// mined.
    pub(super) async fn has_transaction(&self, tx: B256) -> Result<bool, RpcError> {
        let v = self
            .call("eth_getTransactionByHash", json!([tx.to_string()]))
            .await?;
        Ok(!v.is_null())
    }

    /// `eth_getTransactionReceipt`: the block and status once mined.
    pub(super) async fn receipt(&self, tx: B256) -> Result<Option<Receipt>, RpcError> {
        const METHOD: &str = "eth_getTransactionReceipt";
        let v = self.call(METHOD, json!([tx.to_string()])).await?;
        receipt_of(METHOD, &v)
    }

    /// `eth_blockNumber`.
    pub(super) async fn block_number(&self) -> Result<u64, RpcError> {
        let v = self.call("eth_blockNumber", json!([])).await?;
        quantity_u64("eth_blockNumber", &v)
    }
}

/// A receipt object's block and status, or `None` for `null`.
fn receipt_of(method: &'static str, v: &Value) -> Result<Option<Receipt>, RpcError> {
    if v.is_null() {
        return Ok(None);
    }
    let field = |name: &str| quantity_u64(method, v.get(name).unwrap_or(&Value::Null));
    Ok(Some(Receipt {
        block_number: field("blockNumber")?,
        status: field("status")?,
    }))
}

/// The parts of a receipt settlement reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Receipt {
    /// The block it was mined in.
    pub(super) block_number: u64,
    /// 1 success, 0 revert.
    pub(super) status: u64,
}

/// A JSON-RPC quantity: `0x` and hex digits without leading zeros.
fn quantity(method: &'static str, v: &Value) -> Result<U256, RpcError> {
    v.as_str()
        .and_then(|s| s.strip_prefix("0x"))
        .filter(|digits| !digits.is_empty())
        .and_then(|digits| U256::from_str_radix(digits, 16).ok())
        .ok_or_else(|| RpcError::Transport {
            method,
            detail: format!("{v} is not a quantity"),
        })
}

fn quantity_u64(method: &'static str, v: &Value) -> Result<u64, RpcError> {
    let n = quantity(method, v)?;
    u64::try_from(n).map_err(|_| RpcError::Transport {
        method,
        detail: format!("{v} is too large"),
    })
}

/// JSON-RPC data: `0x` and an even number of hex digits.
fn data_bytes(method: &'static str, v: &Value) -> Result<Vec<u8>, RpcError> {
    v.as_str()
        .and_then(|s| s.strip_prefix("0x"))
        .and_then(|digits| hex::decode(digits).ok())
        .ok_or_else(|| RpcError::Transport {
            method,
            detail: format!("{v} is not data"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_data_are_hex() {
        assert_eq!(quantity_u64("m", &json!("0x14a34")).unwrap(), 84532);
        assert_eq!(quantity_u64("m", &json!("0x0")).unwrap(), 0);
        for bad in [
            json!("0x"),
            json!("14a34"),
            json!(1),
            json!(null),
            json!("0xzz"),
        ] {
            assert!(quantity("m", &bad).is_err(), "{bad}");
        }
        assert!(quantity_u64("m", &json!(format!("{:#x}", U256::MAX))).is_err());
        assert_eq!(data_bytes("m", &json!("0x01ff")).unwrap(), vec![1, 0xff]);
        assert_eq!(data_bytes("m", &json!("0x")).unwrap(), Vec::<u8>::new());
        assert!(data_bytes("m", &json!("0x1")).is_err());
    }
}
