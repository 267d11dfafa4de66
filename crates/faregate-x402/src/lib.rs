//! x402 v2 for faregate: the wire format ([`wire`]), EIP-3009 verification
//! in process ([`verify`]), and settlement ([`settle`]) through an x402
//! facilitator's HTTP API or directly on an EVM chain's JSON-RPC.
//!
//! Nothing here knows about the gateway: the rail in `faregate-rails` and
//! the facilitator endpoints in `faregate-gateway` are built on it.

pub mod evm;
pub mod reason;
pub mod settle;
pub mod verify;
pub mod wire;
