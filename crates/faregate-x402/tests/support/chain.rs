//! A real anvil for the chain settler's tests (`FAREGATE_ANVIL`): the
//! EIP-3009 test token at Base Sepolia's USDC address on chain 84532, a
//! payer (account 1) signing authorizations offline, and settlers paying gas
//! from account 0.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256, U256, hex};
use alloy_sol_types::{SolCall as _, sol};
use faregate_x402::evm::{Eip3009Domain, parse_address, transfer_with_authorization_hash};
use faregate_x402::settle::{ChainConfig, ChainSettler};
use faregate_x402::verify::{ParsedAuthorization, verify_exact};
use faregate_x402::wire::FacilitatorRequest;
use serde_json::json;

use super::anvil::{self, Anvil};

sol! {
    function mint(address to, uint256 v) external;
}

pub(crate) const CHAIN_ID: u64 = 84532;
/// What the payer holds: 50 USDC.
pub(crate) const MINTED: u64 = 50_000_000;
/// What each authorization pays: 0.01 USDC.
pub(crate) const VALUE: u64 = 10_000;

/// A chain with the token installed and the payer funded.
pub(crate) struct Chain {
    pub(crate) anvil: Arc<Anvil>,
    pub(crate) token: Address,
    pub(crate) payee: Address,
}

impl Chain {
    pub(crate) async fn start() -> Option<Self> {
        let anvil = Anvil::start(&anvil::binary()?, CHAIN_ID).await;
        let token = parse_address(super::USDC).unwrap();
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

    pub(crate) fn settler(&self, confirmations: u64, timeout: Duration) -> ChainSettler {
        self.settler_at(&self.anvil.url, confirmations, timeout)
    }

    /// A settler whose JSON-RPC is `url` (a [`Relay`] to this chain).
    pub(crate) fn settler_at(
        &self,
        url: &str,
        confirmations: u64,
        timeout: Duration,
    ) -> ChainSettler {
        self.settler_with(url, confirmations, None, timeout)
    }

    pub(crate) fn settler_with(
        &self,
        url: &str,
        confirmations: u64,
        gas_limit: Option<u64>,
        timeout: Duration,
    ) -> ChainSettler {
        ChainSettler::new(ChainConfig {
            rpc_url: url.to_owned(),
            network: super::NETWORK.into(),
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
    pub(crate) fn payment(&self, value: u64, nonce: u8) -> FacilitatorRequest {
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
        let req = super::request(
            super::requirements(super::USDC, &self.payee.to_string(), &value.to_string()),
            payload,
        );
        verify_exact(&req.payment_payload, &req.payment_requirements, now)
            .expect("verifies in process");
        req
    }

    pub(crate) async fn balance(&self, settler: &ChainSettler, who: Address) -> U256 {
        settler.balance_of(self.token, who).await.unwrap()
    }

    pub(crate) async fn receipt_status(&self, tx: &str) -> String {
        let receipt = self.anvil.receipt(tx).await.expect("a receipt");
        receipt["status"].as_str().unwrap().to_owned()
    }
}

/// The settings of a settler on `chain`, for tests that vary one.
pub(crate) fn config_of(chain: &Chain) -> ChainConfig {
    ChainConfig {
        rpc_url: chain.anvil.url.clone(),
        network: super::NETWORK.into(),
        signer_key: anvil::KEYS[0].into(),
        confirmations: 1,
        gas_limit: None,
        timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
    }
}
