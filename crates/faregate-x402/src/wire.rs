//! The x402 v2 wire format: the JSON documents carried base64-encoded in the
//! `PAYMENT-REQUIRED`, `PAYMENT-SIGNATURE` and `PAYMENT-RESPONSE` headers,
//! and the bodies of a facilitator's `/verify`, `/settle` and `/supported`.
//!
//! Field names are the spec's camelCase. Members this gateway does not
//! know are kept (`#[serde(flatten)]`) where a client echoes them back, so
//! nothing a client sent is lost on the way to a facilitator.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol version this crate speaks.
pub const X402_VERSION: u32 = 2;

/// The largest `PAYMENT-SIGNATURE` value decoded (base64 text). Real
/// payloads are about 1.5 KB; a larger one is refused before decoding.
pub const MAX_HEADER_LEN: usize = 16 * 1024;

/// What a 402 offers: the `PAYMENT-REQUIRED` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequired {
    /// Always 2 here.
    pub x402_version: u32,
    /// Why payment is required, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The resource being paid for.
    pub resource: Resource,
    /// Every way of paying it.
    pub accepts: Vec<PaymentRequirements>,
    /// Extensions (`bazaar`, `payment-identifier`, …), each `{info, schema}`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extensions: Map<String, Value>,
}

/// The resource a payment is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// Exactly the URL the client requested.
    pub url: String,
    /// What it is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The media type of a paid response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Members added by later spec versions (`serviceName`, `tags`, …).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One offer: pay `amount` atomic units of `asset` on `network` to `pay_to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
    /// `exact` is the only scheme faregate offers.
    pub scheme: String,
    /// CAIP-2 network, such as `eip155:84532`.
    pub network: String,
    /// Atomic units of the asset, as a decimal string.
    pub amount: String,
    /// The token contract (the EIP-712 `verifyingContract`).
    pub asset: String,
    /// Who is paid.
    pub pay_to: String,
    /// How long a signed authorization may be good for.
    pub max_timeout_seconds: u64,
    /// Scheme data; for EIP-3009 the token's EIP-712 `name` and `version`.
    #[serde(default)]
    pub extra: Map<String, Value>,
}

impl PaymentRequirements {
    /// Whether `accepted` (what a client says it paid against) is this
    /// offer: scheme, network, amount, asset, payTo and maxTimeoutSeconds
    /// equal (addresses compared without regard to checksum case), and every
    /// member of this offer's `extra` present and equal in the client's.
    pub fn is_matched_by(&self, accepted: &PaymentRequirements) -> bool {
        self.scheme == accepted.scheme
            && self.network == accepted.network
            && self.amount == accepted.amount
            && self.asset.eq_ignore_ascii_case(&accepted.asset)
            && self.pay_to.eq_ignore_ascii_case(&accepted.pay_to)
            && self.max_timeout_seconds == accepted.max_timeout_seconds
            && self
                .extra
                .iter()
                .all(|(k, v)| accepted.extra.get(k) == Some(v))
    }
}

/// What a client sends in `PAYMENT-SIGNATURE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayload {
    /// 2.
    pub x402_version: u32,
    /// The resource, echoed from the 402.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// The offer the client chose, copied from `accepts`.
    pub accepted: PaymentRequirements,
    /// The scheme's payload; for `exact` on EVM an [`ExactEvmPayload`].
    pub payload: Value,
    /// Extensions echoed (and possibly added to) by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

/// The `exact` scheme's EIP-3009 payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExactEvmPayload {
    /// 65-byte ECDSA signature, `0x`-hex.
    pub signature: String,
    /// The signed `TransferWithAuthorization`.
    pub authorization: Authorization,
}

/// EIP-3009 `TransferWithAuthorization`, every field a string as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// The payer's address.
    pub from: String,
    /// The payee's address.
    pub to: String,
    /// Atomic units, decimal.
    pub value: String,
    /// Unix seconds, decimal.
    pub valid_after: String,
    /// Unix seconds, decimal.
    pub valid_before: String,
    /// 32 bytes, `0x`-hex.
    pub nonce: String,
}

/// The `PAYMENT-RESPONSE` document, and a facilitator's `/settle` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    /// Whether the transfer happened.
    pub success: bool,
    /// A reason code on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    /// Words on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The payer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// The transaction hash; `""` when there is none.
    #[serde(default)]
    pub transaction: String,
    /// CAIP-2 network.
    #[serde(default)]
    pub network: String,
    /// Atomic units settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

/// A facilitator's `/verify` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    /// Whether the payment would settle.
    pub is_valid: bool,
    /// A reason code when it would not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    /// Words when it would not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_message: Option<String>,
    /// The payer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
}

/// The body of `POST /verify` and `POST /settle`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FacilitatorRequest {
    /// 2.
    pub x402_version: u32,
    /// What the client sent.
    pub payment_payload: PaymentPayload,
    /// What the resource server asks for.
    pub payment_requirements: PaymentRequirements,
}

/// A facilitator's `GET /supported` answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Supported {
    /// The (version, scheme, network) kinds it settles.
    pub kinds: Vec<SupportedKind>,
    /// Extension keys it understands.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Its signing addresses per CAIP-2 family, such as `"eip155:*"`.
    #[serde(default)]
    pub signers: Map<String, Value>,
}

/// One kind a facilitator supports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedKind {
    /// 2.
    pub x402_version: u32,
    /// `exact`.
    pub scheme: String,
    /// CAIP-2 network.
    pub network: String,
    /// Scheme data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Map<String, Value>>,
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Longer than [`MAX_HEADER_LEN`].
    #[error("the header is longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    /// Not base64 in either alphabet.
    #[error("the header is not base64")]
    Base64,
    /// Base64 of something that is not the expected JSON.
    #[error("the header is not a valid x402 document: {0}")]
    Json(String),
}

/// Encodes `doc` as a header value: standard base64 (with padding) of its
/// JSON, as the spec and both reference clients expect.
pub fn encode_header<T: Serialize>(doc: &T) -> String {
    // Serializing these types cannot fail: every key is a string.
    let json = serde_json::to_vec(doc).unwrap_or_default();
    STANDARD.encode(json)
}

/// Decodes a header value written by [`encode_header`] or by any client:
/// standard or URL-safe base64, padded or not.
pub fn decode_header<T: DeserializeOwned>(value: &str) -> Result<T, DecodeError> {
    let value = value.trim();
    if value.len() > MAX_HEADER_LEN {
        return Err(DecodeError::TooLong);
    }
    let bytes = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(value).ok())
        .ok_or(DecodeError::Base64)?;
    serde_json::from_slice(&bytes).map_err(|e| DecodeError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> PaymentRequirements {
        serde_json::from_value(serde_json::json!({
            "scheme": "exact", "network": "eip155:84532", "amount": "10000",
            "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "payTo": "0x2096d7C1B2D4D4C84a4F7a3bD7bFAC6B1b2F287C",
            "maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2"}
        }))
        .unwrap()
    }

    #[test]
    fn a_header_round_trips_in_standard_base64_and_reads_url_safe_too() {
        let header = encode_header(&offer());
        assert!(header.ends_with('=') || header.len().is_multiple_of(4));
        assert_eq!(
            decode_header::<PaymentRequirements>(&header).unwrap(),
            offer()
        );
        let json = serde_json::to_vec(&offer()).unwrap();
        let url_safe = URL_SAFE_NO_PAD.encode(json);
        assert_eq!(
            decode_header::<PaymentRequirements>(&url_safe).unwrap(),
            offer()
        );
    }

    #[test]
    fn garbage_headers_are_errors_not_panics() {
        assert_eq!(
            decode_header::<PaymentPayload>("%%%"),
            Err(DecodeError::Base64)
        );
        assert!(matches!(
            decode_header::<PaymentPayload>(&STANDARD.encode("{\"x\":1}")),
            Err(DecodeError::Json(_))
        ));
        let long = "A".repeat(MAX_HEADER_LEN + 1);
        assert_eq!(
            decode_header::<PaymentPayload>(&long),
            Err(DecodeError::TooLong)
        );
    }

    #[test]
    fn matching_is_exact_except_for_address_case_and_extra_may_grow() {
        let ours = offer();
        let mut theirs = offer();
        theirs.pay_to = theirs.pay_to.to_lowercase();
        theirs.extra.insert("more".into(), Value::from(1));
        assert!(ours.is_matched_by(&theirs));
        let changes: [fn(&mut PaymentRequirements); 5] = [
            |o| o.amount = "9999".into(),
            |o| o.network = "eip155:8453".into(),
            |o| o.max_timeout_seconds = 61,
            |o| o.scheme = "upto".into(),
            |o| {
                o.extra.remove("version");
            },
        ];
        for change in changes {
            let mut theirs = offer();
            change(&mut theirs);
            assert!(!ours.is_matched_by(&theirs), "{theirs:?}");
        }
    }
}
