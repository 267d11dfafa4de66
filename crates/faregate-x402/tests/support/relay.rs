//! A recording JSON-RPC relay in front of anvil, to see which calls a
//! settlement makes and to play nodes that lack a method.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

use super::anvil::Anvil;
use super::http::read_request;

/// How a [`Relay`] answers `eth_sendRawTransactionSync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncSend {
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
pub(crate) struct Relay {
    pub(crate) url: String,
    methods: Arc<parking_lot::Mutex<Vec<String>>>,
}

impl Relay {
    pub(crate) async fn start(anvil: Arc<Anvil>, sync: SyncSend) -> Self {
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
        while let Some((_, body)) = read_request(&mut stream, &mut buf).await {
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
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.methods.lock())
    }
}

/// How many times `method` was called.
pub(crate) fn count(methods: &[String], method: &str) -> usize {
    methods.iter().filter(|m| *m == method).count()
}
