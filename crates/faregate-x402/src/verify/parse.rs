//! Reading the `exact` scheme's EIP-3009 payload out of untrusted JSON into
//! typed values, borrowing from the JSON rather than copying it. Every
//! failure is a message for `invalid_payload`; nothing here panics.

use alloy_primitives::{Address, Signature, hex};
use serde_json::Value;

use super::ParsedAuthorization;
use crate::evm::{parse_address, parse_b256, parse_u256_decimal};

/// The `exact` payload, parsed: the authorization and the signature bytes.
#[derive(Debug)]
pub(super) struct ExactPayload {
    pub(super) authorization: ParsedAuthorization,
    pub(super) signature: RawSignature,
}

/// A signature as sent, before any ECDSA check.
#[derive(Debug)]
pub(super) enum RawSignature {
    /// `r ‖ s ‖ v`, the usual 65 bytes.
    Rsv([u8; 65]),
    /// ERC-2098 `r ‖ (yParity << 255 | s)`.
    Compact([u8; 64]),
    /// Any other length, in bytes: a smart-wallet signature (EIP-1271,
    /// ERC-6492) or garbage; refused either way.
    Other(usize),
}

impl RawSignature {
    /// The ECDSA signature, if these bytes can be one: 65 bytes with `v` of
    /// 0, 1, 27 or 28 (no EIP-155 `v`, which a token's `ecrecover` refuses),
    /// or 64 ERC-2098 bytes.
    pub(super) fn to_ecdsa(&self) -> Result<Signature, String> {
        match self {
            Self::Rsv(bytes) => {
                let parity = match bytes[64] {
                    0 | 27 => false,
                    1 | 28 => true,
                    v => return Err(format!("v is {v}, not 27 or 28 (or 0 or 1)")),
                };
                Ok(Signature::from_bytes_and_parity(&bytes[..64], parity))
            }
            Self::Compact(bytes) => Ok(Signature::from_erc2098(bytes)),
            Self::Other(len) => Err(format!(
                "the signature is {len} bytes, not 65 (or 64); smart-wallet signatures are not accepted"
            )),
        }
    }
}

/// Parses `payload.payload` as an [`ExactEvmPayload`](crate::wire::ExactEvmPayload).
pub(super) fn exact_payload(payload: &Value) -> Result<ExactPayload, String> {
    let auth = payload
        .get("authorization")
        .filter(|a| a.is_object())
        .ok_or("the payload has no EIP-3009 authorization object")?;
    let authorization = ParsedAuthorization {
        from: address(auth, "from")?,
        to: address(auth, "to")?,
        value: uint(auth, "value")?,
        valid_after: uint(auth, "validAfter")?,
        valid_before: uint(auth, "validBefore")?,
        nonce: parse_b256(field(auth, "nonce")?)
            .ok_or("authorization.nonce is not 0x and 64 hex digits")?,
    };
    let signature = raw_signature(field(payload, "signature")?)?;
    Ok(ExactPayload {
        authorization,
        signature,
    })
}

fn field<'a>(object: &'a Value, key: &str) -> Result<&'a str, String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{key} is missing or not a string"))
}

fn address(auth: &Value, key: &str) -> Result<Address, String> {
    parse_address(field(auth, key)?)
        .ok_or_else(|| format!("authorization.{key} is not 0x and 40 hex digits"))
}

fn uint(auth: &Value, key: &str) -> Result<alloy_primitives::U256, String> {
    parse_u256_decimal(field(auth, key)?)
        .ok_or_else(|| format!("authorization.{key} is not a decimal uint256"))
}

/// Hex, `0x` optional as in the reference facilitator; the length is
/// judged later, by the signature check.
fn raw_signature(s: &str) -> Result<RawSignature, String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if !digits.len().is_multiple_of(2) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the signature is not hex".into());
    }
    let mut rsv = [0u8; 65];
    let mut compact = [0u8; 64];
    Ok(match digits.len() / 2 {
        65 if hex::decode_to_slice(digits, &mut rsv).is_ok() => RawSignature::Rsv(rsv),
        64 if hex::decode_to_slice(digits, &mut compact).is_ok() => RawSignature::Compact(compact),
        len => RawSignature::Other(len),
    })
}
