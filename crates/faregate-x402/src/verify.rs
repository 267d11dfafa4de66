//! In-process verification of an x402 `exact` payment on EVM: an EIP-3009
//! `transferWithAuthorization` signed by the payer, checked against
//! requirements this server made, without a facilitator round trip.
//!
//! The checks and their order are the official Python facilitator's
//! (`x402/mechanisms/evm/exact/facilitator.py::_verify`, same in TS), so a
//! refusal carries the reason code a client would get from it. Two checks
//! come first that a facilitator leaves to the resource server: the
//! protocol version, and that `accepted` is one of our own offers. What
//! needs state is left to the caller: the nonce (the gateway's cache and the
//! token's `authorizationState`), the balance and the transfer simulation.

mod parse;
#[cfg(test)]
mod tests;

use alloy_primitives::{Address, B256, Signature, U256};
use serde_json::Value;

use crate::evm::{Eip3009Domain, chain_id, parse_address, parse_u256_decimal};
use crate::reason;
use crate::wire::{PaymentPayload, PaymentRequirements, VerifyResponse, X402_VERSION};
use parse::ExactPayload;

/// `validBefore` must be at least this far ahead of now, as in the
/// reference facilitator: time for the settlement to be mined.
pub const VALID_BEFORE_MARGIN_SECS: u64 = 6;

/// The signed `TransferWithAuthorization`, every field typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedAuthorization {
    /// The payer.
    pub from: Address,
    /// The payee (`payTo`).
    pub to: Address,
    /// Atomic units of the token.
    pub value: U256,
    /// Unix seconds after which the transfer may run.
    pub valid_after: U256,
    /// Unix seconds before which the transfer must run.
    pub valid_before: U256,
    /// The EIP-3009 nonce: the payment's identity, used once per payer.
    pub nonce: B256,
}

/// A payment whose signature and terms are good; what settling needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Who pays: `authorization.from`, proven by the signature.
    pub payer: Address,
    /// The authorization to send to the token.
    pub authorization: ParsedAuthorization,
    /// The payer's signature with `s` normalized to the lower half, as
    /// tokens require: `v_byte()`, `r()` and `s()` for the `(v, r, s)`
    /// overload, `as_bytes()` (65 bytes, `v` 27 or 28) for the `bytes` one.
    /// A 64-byte ERC-2098 or a high-`s` signature arrives here expanded.
    pub signature: Signature,
}

/// A refused payment: a reason code from [`reason`] and words for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Invalid {
    /// The x402 reason code.
    pub reason: &'static str,
    /// What exactly was wrong.
    pub message: String,
    /// `authorization.from` when the payload could be read, as the
    /// reference facilitator reports it; not proven to be the signer.
    pub payer: Option<Address>,
}

impl Verified {
    /// The `/verify` answer for this payment.
    pub fn verify_response(&self) -> VerifyResponse {
        VerifyResponse {
            is_valid: true,
            invalid_reason: None,
            invalid_message: None,
            payer: Some(self.payer.to_string()),
        }
    }
}

impl Invalid {
    /// The `/verify` answer for this refusal.
    pub fn verify_response(&self) -> VerifyResponse {
        VerifyResponse {
            is_valid: false,
            invalid_reason: Some(self.reason.to_owned()),
            invalid_message: Some(self.message.clone()),
            payer: self.payer.map(|p| p.to_string()),
        }
    }
}

/// A refusal before the payer is attached.
type Refusal = (&'static str, String);

/// Verifies an `exact` EIP-3009 payment against requirements this server
/// itself made, at unix time `now`. Pure: no I/O. The nonce-reuse and
/// balance checks need the store / the chain and are done by callers.
///
/// Only externally owned accounts can pay: the signature must be a 65-byte
/// (or 64-byte ERC-2098) ECDSA signature that recovers to
/// `authorization.from`. Smart-wallet signatures (EIP-1271, ERC-6492) need a
/// chain to check and are refused with [`reason::SIGNATURE`].
///
/// In order, refusing with the first failure: `x402Version` is 2;
/// `accepted.scheme` is `exact`; `accepted.network` is the requirements';
/// `accepted` is the requirements ([`PaymentRequirements::is_matched_by`]);
/// the network is `eip155:<id>` and `extra` has string `name` and `version`;
/// the payload is an EIP-3009 authorization; `to` is `payTo`; `value` is
/// `amount` exactly; `validBefore >= now + 6`; `validAfter <= now`; the
/// signature recovers to `from`.
pub fn verify_exact(
    payload: &PaymentPayload,
    requirements: &PaymentRequirements,
    now: u64,
) -> Result<Verified, Invalid> {
    let exact = parse::exact_payload(&payload.payload);
    let payer = exact.as_ref().ok().map(|e| e.authorization.from);
    check(payload, requirements, exact, now).map_err(|(reason, message)| Invalid {
        reason,
        message,
        payer,
    })
}

/// The pipeline; each stage refuses with its own reason.
fn check(
    payload: &PaymentPayload,
    requirements: &PaymentRequirements,
    exact: Result<ExactPayload, String>,
    now: u64,
) -> Result<Verified, Refusal> {
    offer(payload, requirements)?;
    let domain = domain(requirements)?;
    let exact = exact.map_err(|message| (reason::INVALID_PAYLOAD, message))?;
    terms(&exact.authorization, requirements)?;
    window(&exact.authorization, now)?;
    let signature = signature(&exact, &domain)?;
    Ok(Verified {
        payer: exact.authorization.from,
        authorization: exact.authorization,
        signature,
    })
}

/// The payment is for this offer, in this protocol.
fn offer(payload: &PaymentPayload, requirements: &PaymentRequirements) -> Result<(), Refusal> {
    let accepted = &payload.accepted;
    if payload.x402_version != X402_VERSION {
        let message = format!(
            "x402Version is {}, not {X402_VERSION}",
            payload.x402_version
        );
        return Err((reason::INVALID_X402_VERSION, message));
    }
    if accepted.scheme != "exact" {
        let message = format!("scheme {:?} is not exact", accepted.scheme);
        return Err((reason::UNSUPPORTED_SCHEME, message));
    }
    if accepted.network != requirements.network {
        let message = format!(
            "paid on {}, asked on {}",
            accepted.network, requirements.network
        );
        return Err((reason::NETWORK_MISMATCH, message));
    }
    if !requirements.is_matched_by(accepted) {
        let message = reason::NO_MATCHING_REQUIREMENTS_MESSAGE.to_owned();
        return Err((reason::NO_MATCHING_REQUIREMENTS, message));
    }
    Ok(())
}

/// The token's EIP-712 domain, from the requirements.
fn domain(requirements: &PaymentRequirements) -> Result<Eip3009Domain, Refusal> {
    let Some(chain_id) = chain_id(&requirements.network) else {
        let message = format!("{:?} is not eip155:<chain id>", requirements.network);
        return Err((reason::FAILED_TO_GET_NETWORK_CONFIG, message));
    };
    let extra = &requirements.extra;
    if let Some(method) = extra.get("assetTransferMethod").filter(|m| *m != "eip3009") {
        let message = format!("assetTransferMethod {method} is not supported, only eip3009");
        return Err((reason::NO_MATCHING_REQUIREMENTS, message));
    }
    let (Some(name), Some(version)) = (text(extra.get("name")), text(extra.get("version"))) else {
        let message = "extra.name and extra.version must be strings".to_owned();
        return Err((reason::MISSING_EIP712_DOMAIN, message));
    };
    let Some(verifying_contract) = parse_address(&requirements.asset) else {
        let message = format!("asset {:?} is not an address", requirements.asset);
        return Err((reason::NO_MATCHING_REQUIREMENTS, message));
    };
    Ok(Eip3009Domain {
        name: name.to_owned(),
        version: version.to_owned(),
        chain_id,
        verifying_contract,
    })
}

fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str)
}

/// Paid to us, exactly the price.
fn terms(auth: &ParsedAuthorization, requirements: &PaymentRequirements) -> Result<(), Refusal> {
    let Some(pay_to) = parse_address(&requirements.pay_to) else {
        let message = format!("payTo {:?} is not an address", requirements.pay_to);
        return Err((reason::NO_MATCHING_REQUIREMENTS, message));
    };
    if auth.to != pay_to {
        let message = format!("authorization.to is {}, not payTo {pay_to}", auth.to);
        return Err((reason::RECIPIENT_MISMATCH, message));
    }
    let Some(amount) = parse_u256_decimal(&requirements.amount) else {
        let message = format!("amount {:?} is not a decimal uint256", requirements.amount);
        return Err((reason::NO_MATCHING_REQUIREMENTS, message));
    };
    if auth.value != amount {
        let message = format!("authorization.value is {}, not {amount}", auth.value);
        return Err((reason::VALUE_MISMATCH, message));
    }
    Ok(())
}

/// Good now, and still good when the transfer is mined.
fn window(auth: &ParsedAuthorization, now: u64) -> Result<(), Refusal> {
    // At the end of time nothing is still valid 6 s later.
    let expired = now
        .checked_add(VALID_BEFORE_MARGIN_SECS)
        .is_none_or(|deadline| auth.valid_before < U256::from(deadline));
    if expired {
        let message = format!(
            "validBefore {} is not {VALID_BEFORE_MARGIN_SECS} s after now ({now})",
            auth.valid_before
        );
        return Err((reason::VALID_BEFORE, message));
    }
    if auth.valid_after > U256::from(now) {
        let message = format!("validAfter {} is after now ({now})", auth.valid_after);
        return Err((reason::VALID_AFTER, message));
    }
    Ok(())
}

/// Signed by `from`, for this token on this chain.
fn signature(exact: &ExactPayload, domain: &Eip3009Domain) -> Result<Signature, Refusal> {
    let refuse = |message: String| (reason::SIGNATURE, message);
    let signature = exact.signature.to_ecdsa().map_err(refuse)?.normalized_s();
    let digest = crate::evm::transfer_with_authorization_hash(domain, &exact.authorization);
    let signer = signature
        .recover_address_from_prehash(&digest)
        .map_err(|e| refuse(format!("no signer recovers from the signature: {e}")))?;
    if signer != exact.authorization.from {
        let from = exact.authorization.from;
        return Err(refuse(format!("signed by {signer}, not by from {from}")));
    }
    Ok(signature)
}
