//! Shared code of the settlement tests: x402 requests as a resource server
//! would send them, and a real anvil chain. Each test binary uses a part.
#![allow(dead_code)]

pub(crate) mod anvil;
pub(crate) mod chain;
pub(crate) mod http;
pub(crate) mod relay;

use faregate_x402::wire::{FacilitatorRequest, PaymentRequirements};
use serde_json::{Value, json};

/// Base Sepolia USDC, where the anvil test puts its token.
pub(crate) const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";

/// Base Sepolia.
pub(crate) const NETWORK: &str = "eip155:84532";

/// An `exact` offer of `amount` of the token at `asset` to `pay_to`, with
/// the test token's EIP-712 domain.
pub(crate) fn requirements(asset: &str, pay_to: &str, amount: &str) -> PaymentRequirements {
    serde_json::from_value(json!({
        "scheme": "exact", "network": NETWORK, "amount": amount,
        "asset": asset, "payTo": pay_to, "maxTimeoutSeconds": 60,
        "extra": {"name": "USD Coin", "version": "2"}
    }))
    .expect("requirements")
}

/// The body a resource server posts to `/verify` and `/settle` for
/// `payload` (an `ExactEvmPayload` as JSON) against `requirements`.
pub(crate) fn request(requirements: PaymentRequirements, payload: Value) -> FacilitatorRequest {
    serde_json::from_value(json!({
        "x402Version": 2,
        "paymentPayload": {"x402Version": 2, "accepted": requirements, "payload": payload},
        "paymentRequirements": requirements,
    }))
    .expect("request")
}
