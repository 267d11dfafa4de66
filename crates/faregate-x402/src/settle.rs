//! Settlement: turning a payment this server has verified into a transfer.
//!
//! Two [`Settler`]s: [`FacilitatorClient`] asks an x402 facilitator over
//! HTTP (`POST /verify`, `POST /settle`, `GET /supported`), and
//! [`ChainSettler`] sends the EIP-3009 `transferWithAuthorization` itself
//! to an EVM JSON-RPC node and waits for its receipt.
//!
//! Settling never errors: every failure is a [`SettleResponse`] with
//! `success: false` and an x402 reason code, because the only question a
//! caller has is "may I serve?", and the answer to anything unclear is no.
//! A transaction sent but not confirmed in time is `settlement_pending`
//! with its hash, never a success.

mod chain;
mod client;
mod facilitator;
mod rpc;
mod send;
mod token;
mod tx;

use std::future::Future;
use std::pin::Pin;

pub use chain::{ChainConfig, ChainSettler};
pub use facilitator::FacilitatorClient;

use crate::wire::{FacilitatorRequest, SettleResponse, Supported, VerifyResponse};

/// A boxed future, so [`Settler`] can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that settles (and optionally verifies remotely) x402 payments.
pub trait Settler: Send + Sync + std::fmt::Debug + 'static {
    /// Settles a payment this server has already verified in process.
    ///
    /// Never errors: every failure (timeout, non-2xx, non-JSON, truncated
    /// body, `success: false`, revert) is a [`SettleResponse`] with
    /// `success: false` and a reason code; `settlement_pending` when the
    /// transfer may still happen.
    fn settle<'a>(&'a self, req: &'a FacilitatorRequest) -> BoxFuture<'a, SettleResponse>;

    /// Remote verification (a facilitator's `/verify`, or checks on
    /// chain): the verdict, or `Err` with a message on transport trouble.
    fn verify<'a>(
        &'a self,
        req: &'a FacilitatorRequest,
    ) -> BoxFuture<'a, Result<VerifyResponse, String>>;

    /// What it settles: `(scheme, network)` kinds and signer addresses.
    fn supported<'a>(&'a self) -> BoxFuture<'a, Result<Supported, String>>;
}

/// A failed settlement of `req`, for `reason` with `message`: the network
/// is the requirements', the payer the authorization's `from` when the
/// payload has one, the transaction `tx` (`""` when none was sent).
fn failure(req: &FacilitatorRequest, reason: &str, message: String, tx: String) -> SettleResponse {
    SettleResponse {
        success: false,
        error_reason: Some(reason.to_owned()),
        error_message: Some(message),
        payer: claimed_payer(req),
        transaction: tx,
        network: req.payment_requirements.network.clone(),
        amount: None,
        extensions: None,
    }
}

/// The `authorization.from` a payload claims, as written.
fn claimed_payer(req: &FacilitatorRequest) -> Option<String> {
    req.payment_payload
        .payload
        .get("authorization")?
        .get("from")?
        .as_str()
        .map(str::to_owned)
}
