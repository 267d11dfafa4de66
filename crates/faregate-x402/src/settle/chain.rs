//! Settling on an EVM chain directly: this server is its own facilitator,
//! sending `transferWithAuthorization` from its own account (which pays
//! the gas) to a JSON-RPC node.
//!
//! The settle pipeline itself is in `send.rs`; this file holds the
//! settler, its configuration, and the read-only checks (`verify`,
//! `supported`, [`ChainSettler::authorization_used`],
//! [`ChainSettler::balance_of`]).

use std::time::Duration;

use alloy_primitives::{Address, B256, U256, hex};
use k256::ecdsa::SigningKey;
use serde_json::{Map, Value};

use super::rpc::{Rpc, RpcError};
use super::token::{self, Payment};
use super::{BoxFuture, Settler};
use crate::reason;
use crate::wire::{
    FacilitatorRequest, SettleResponse, Supported, SupportedKind, VerifyResponse, X402_VERSION,
};

/// How a [`ChainSettler`] reaches its chain and pays for gas.
#[derive(Clone)]
pub struct ChainConfig {
    /// The JSON-RPC node, `http://` or `https://`.
    pub rpc_url: String,
    /// The CAIP-2 network settled, `eip155:<chain id>`; the node must
    /// report the same chain id.
    pub network: String,
    /// The settling account's secret key, 64 hex digits (`0x` optional).
    /// It pays the gas; it is never logged or shown by `Debug`.
    pub signer_key: String,
    /// Blocks that must include the transfer, its own counted, before it
    /// is a success: 0 and 1 both mean "mined".
    pub confirmations: u64,
    /// A fixed gas limit for every transfer instead of an estimate: one
    /// RPC call and one EVM execution fewer per settlement (about half of
    /// a local node's work per paid request, `docs/BENCHMARKS.md` §6b).
    /// The estimate is also the check that the transfer would succeed;
    /// without it, a transfer that reverts (an authorization used
    /// meanwhile, a balance gone short) is found on chain and pays its gas,
    /// so pair it with `check_chain`, which reads both before forwarding.
    pub gas_limit: Option<u64>,
    /// The most one settlement may take, from the first RPC call to the
    /// last confirmation; also the bound of each RPC call.
    pub timeout: Duration,
    /// How often the receipt is asked for while waiting.
    pub poll_interval: Duration,
}

impl std::fmt::Debug for ChainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainConfig")
            .field("rpc_url", &redact_url(&self.rpc_url))
            .field("network", &self.network)
            .field("signer_key", &"<redacted>")
            .field("confirmations", &self.confirmations)
            .field("gas_limit", &self.gas_limit)
            .field("timeout", &self.timeout)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

/// Settles x402 `exact` payments on one EVM chain with its own account.
pub struct ChainSettler {
    pub(super) rpc: Rpc,
    pub(super) network: String,
    pub(super) chain_id: u64,
    pub(super) key: SigningKey,
    pub(super) address: Address,
    pub(super) confirmations: u64,
    pub(super) gas_limit: Option<u64>,
    pub(super) timeout: Duration,
    pub(super) poll_interval: Duration,
    /// Set once `eth_chainId` has answered [`Self::chain_id`].
    pub(super) chain_checked: tokio::sync::OnceCell<()>,
    /// The next account nonce to use; `None` until read from the node, and
    /// again after a send failed (so it is read anew).
    pub(super) next_nonce: parking_lot::Mutex<Option<u64>>,
    /// Transactions sent whose outcome is not known yet, by (payer,
    /// authorization nonce): settling the same payment again (after a
    /// `settlement_pending`) waits for that transaction instead of sending
    /// a second one, which would revert once the first is mined.
    pub(super) unconfirmed: parking_lot::Mutex<
        std::collections::HashMap<(Address, alloy_primitives::B256), alloy_primitives::B256>,
    >,
    /// Whether the node is still believed to take `eth_sendRawTransactionSync`
    /// (EIP-7966); cleared the first time it says it does not.
    pub(super) sync_send: std::sync::atomic::AtomicBool,
    /// The last fees read (priority fee, base fee) and when.
    pub(super) fees: parking_lot::Mutex<Option<(std::time::Instant, U256, U256)>>,
}

impl std::fmt::Debug for ChainSettler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSettler")
            .field("network", &self.network)
            .field("address", &self.address)
            .field("confirmations", &self.confirmations)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ChainSettler {
    /// A settler for `config`, or every problem with it at once. Talks to
    /// no node: the chain id is checked at the first settlement.
    pub fn new(config: ChainConfig) -> Result<Self, String> {
        let mut problems = Vec::new();
        let rpc = Rpc::new(&config.rpc_url, config.timeout)
            .map_err(|e| problems.push(format!("rpc_url: {e}")))
            .ok();
        let chain_id = crate::evm::chain_id(&config.network);
        if chain_id.is_none() {
            problems.push(format!(
                "network: {:?} is not eip155:<chain id>",
                config.network
            ));
        }
        let key = parse_key(&config.signer_key)
            .map_err(|e| problems.push(e))
            .ok();
        if config.timeout.is_zero() {
            problems.push("timeout: must be positive".into());
        }
        if config.gas_limit.is_some_and(|g| g < 21_000) {
            problems.push("gas_limit: below the 21,000 of any transaction".into());
        }
        if config.poll_interval.is_zero() {
            problems.push("poll_interval: must be positive".into());
        }
        match (rpc, chain_id, key) {
            (Some(rpc), Some(chain_id), Some(key)) if problems.is_empty() => Ok(Self {
                rpc,
                network: config.network,
                chain_id,
                address: Address::from_private_key(&key),
                key,
                confirmations: config.confirmations,
                gas_limit: config.gas_limit,
                timeout: config.timeout,
                poll_interval: config.poll_interval,
                chain_checked: tokio::sync::OnceCell::new(),
                next_nonce: parking_lot::Mutex::new(None),
                unconfirmed: parking_lot::Mutex::default(),
                sync_send: std::sync::atomic::AtomicBool::new(true),
                fees: parking_lot::Mutex::new(None),
            }),
            _ => Err(format!(
                "invalid chain settler configuration: {}",
                problems.join("; ")
            )),
        }
    }

    /// The account that sends settlements and pays their gas.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The CAIP-2 network settled.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Whether `from`'s authorization `nonce` on `token` has been used (or
    /// cancelled): EIP-3009 `authorizationState`.
    pub async fn authorization_used(
        &self,
        token: Address,
        from: Address,
        nonce: B256,
    ) -> Result<bool, String> {
        let data = token::authorization_state_calldata(from, nonce);
        let answer = self
            .rpc
            .eth_call(token, &data)
            .await
            .map_err(|e| e.to_string())?;
        token::decode_authorization_state(&answer)
    }

    /// `who`'s balance of `token`.
    pub async fn balance_of(&self, token: Address, who: Address) -> Result<U256, String> {
        let answer = self
            .rpc
            .eth_call(token, &token::balance_of_calldata(who))
            .await
            .map_err(|e| e.to_string())?;
        token::decode_balance_of(&answer)
    }

    /// Checks once that the node is on [`Self::chain_id`]; a wrong chain
    /// is an error every time, a node that cannot be reached is retried.
    pub(super) async fn check_chain(&self) -> Result<(), String> {
        let check = || async {
            let reported = self
                .rpc
                .chain_id()
                .await
                .map_err(|e: RpcError| e.to_string())?;
            if reported != self.chain_id {
                return Err(format!(
                    "the RPC node is on chain {reported}, not {}",
                    self.network
                ));
            }
            Ok(())
        };
        self.chain_checked.get_or_try_init(check).await.map(|_| ())
    }

    /// The on-chain checks of `req`: the authorization unused and the
    /// payer's balance enough.
    async fn verify_on_chain(&self, req: &FacilitatorRequest) -> Result<VerifyResponse, String> {
        let payment = match self.payment(req) {
            Ok(payment) => payment,
            Err((reason, message)) => return Ok(invalid(reason, message, None)),
        };
        self.check_chain().await?;
        let (used, balance) = tokio::join!(
            self.authorization_used(payment.token, payment.from, payment.nonce),
            self.balance_of(payment.token, payment.from),
        );
        let payer = Some(payment.from.to_checksum(None));
        if used? {
            return Ok(invalid(
                reason::NONCE_USED,
                "the authorization was already used".into(),
                payer,
            ));
        }
        if balance? < payment.value {
            return Ok(invalid(
                reason::INSUFFICIENT_BALANCE,
                "the payer's balance is below the value".into(),
                payer,
            ));
        }
        Ok(VerifyResponse {
            is_valid: true,
            invalid_reason: None,
            invalid_message: None,
            payer,
        })
    }

    /// The payment in `req`, or the reason code and words of why there is
    /// none this settler can settle.
    pub(super) fn payment(
        &self,
        req: &FacilitatorRequest,
    ) -> Result<Payment, (&'static str, String)> {
        if req.payment_requirements.network != self.network {
            let message = format!(
                "this settler settles {}, not {}",
                self.network, req.payment_requirements.network
            );
            return Err((reason::NETWORK_MISMATCH, message));
        }
        Payment::decode(req).map_err(|e| (reason::INVALID_PAYLOAD, e))
    }

    fn supported_kinds(&self) -> Supported {
        let kind = SupportedKind {
            x402_version: X402_VERSION,
            scheme: "exact".into(),
            network: self.network.clone(),
            extra: None,
        };
        let address = Value::String(self.address.to_checksum(None));
        let signers = Map::from_iter([("eip155:*".to_owned(), Value::Array(vec![address]))]);
        Supported {
            kinds: vec![kind],
            extensions: Vec::new(),
            signers,
        }
    }
}

fn invalid(reason: &str, message: String, payer: Option<String>) -> VerifyResponse {
    VerifyResponse {
        is_valid: false,
        invalid_reason: Some(reason.to_owned()),
        invalid_message: Some(message),
        payer,
    }
}

/// A secret key written as 64 hex digits, `0x` optional. The error never
/// repeats the input.
fn parse_key(text: &str) -> Result<SigningKey, String> {
    let text = text.trim();
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(digits, &mut bytes)
        .map_err(|_| "signer_key: not 64 hex digits".to_owned())?;
    SigningKey::from_slice(&bytes)
        .map_err(|_| "signer_key: not a valid secp256k1 secret key".to_owned())
}

/// `scheme://host[:port]` of `url`: hosted nodes put API keys in paths.
fn redact_url(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(uri) => {
            let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}/…",
                uri.scheme_str().unwrap_or("?"),
                uri.host().unwrap_or("?")
            )
        }
        Err(_) => "<unparsable>".into(),
    }
}

impl Settler for ChainSettler {
    fn settle<'a>(&'a self, req: &'a FacilitatorRequest) -> BoxFuture<'a, SettleResponse> {
        Box::pin(self.settle_on_chain(req))
    }

    fn verify<'a>(
        &'a self,
        req: &'a FacilitatorRequest,
    ) -> BoxFuture<'a, Result<VerifyResponse, String>> {
        Box::pin(self.verify_on_chain(req))
    }

    fn supported<'a>(&'a self) -> BoxFuture<'a, Result<Supported, String>> {
        Box::pin(std::future::ready(Ok(self.supported_kinds())))
    }
}
