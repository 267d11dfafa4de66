//! The EIP-3009 token as the chain settler sees it: the payment read from
//! a facilitator request, and the calldata of the three functions it calls
//! (`transferWithAuthorization`, `authorizationState`, `balanceOf`), built
//! and decoded with alloy's `sol!`.

use alloy_primitives::{Address, B256, Signature, U256, hex};
use alloy_sol_types::{SolCall as _, sol};

use crate::evm::{parse_address, parse_b256, parse_u256_decimal};
use crate::wire::{ExactEvmPayload, FacilitatorRequest};

sol! {
    /// The functions of an EIP-3009 token (USDC's `FiatTokenV2_2`) used here.
    interface IEip3009 {
        function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external;
        function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature) external;
        function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);
        function balanceOf(address account) external view returns (uint256);
    }
}

/// A payment to settle: the token and the signed authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Payment {
    /// The token contract (the requirements' `asset`).
    pub(super) token: Address,
    /// The payer.
    pub(super) from: Address,
    /// The payee.
    pub(super) to: Address,
    /// Atomic units.
    pub(super) value: U256,
    /// Unix seconds after which it is valid.
    pub(super) valid_after: U256,
    /// Unix seconds before which it is valid.
    pub(super) valid_before: U256,
    /// The authorization's nonce.
    pub(super) nonce: B256,
    /// The payer's signature (65 bytes from a plain account).
    pub(super) signature: Vec<u8>,
}

impl Payment {
    /// Reads the payment in `req`: the `exact` EVM payload of the client,
    /// paid in the server's `asset`. Says what is wrong otherwise.
    pub(super) fn decode(req: &FacilitatorRequest) -> Result<Self, String> {
        let payload: ExactEvmPayload = serde_json::from_value(req.payment_payload.payload.clone())
            .map_err(|e| format!("the payload is not an EIP-3009 authorization: {e}"))?;
        let auth = &payload.authorization;
        let bad = |name: &str| format!("authorization.{name} is malformed");
        let from = parse_address(&auth.from).ok_or_else(|| bad("from"))?;
        let to = parse_address(&auth.to).ok_or_else(|| bad("to"))?;
        let value = parse_u256_decimal(&auth.value).ok_or_else(|| bad("value"))?;
        let valid_after = parse_u256_decimal(&auth.valid_after).ok_or_else(|| bad("validAfter"))?;
        let valid_before =
            parse_u256_decimal(&auth.valid_before).ok_or_else(|| bad("validBefore"))?;
        let nonce = parse_b256(&auth.nonce).ok_or_else(|| bad("nonce"))?;
        let token = parse_address(&req.payment_requirements.asset)
            .ok_or_else(|| "the requirements' asset is not an address".to_owned())?;
        let signature = payload
            .signature
            .strip_prefix("0x")
            .and_then(|digits| hex::decode(digits).ok())
            .filter(|bytes| !bytes.is_empty())
            .ok_or_else(|| "the signature is not 0x-hex".to_owned())?;
        Ok(Self {
            token,
            from,
            to,
            value,
            valid_after,
            valid_before,
            nonce,
            signature,
        })
    }

    /// The calldata of `transferWithAuthorization`: the `v, r, s` overload
    /// (every EIP-3009 token has it) for an ECDSA signature, with `s`
    /// normalized as the verifier accepted it; the `bytes` overload
    /// (smart-wallet signatures, USDC 2.2) for anything else.
    pub(super) fn transfer_calldata(&self) -> Vec<u8> {
        if let Some(sig) = ecdsa(&self.signature) {
            return IEip3009::transferWithAuthorization_0Call {
                from: self.from,
                to: self.to,
                value: self.value,
                validAfter: self.valid_after,
                validBefore: self.valid_before,
                nonce: self.nonce,
                v: 27 + u8::from(sig.v()),
                r: sig.r().into(),
                s: sig.s().into(),
            }
            .abi_encode();
        }
        IEip3009::transferWithAuthorization_1Call {
            from: self.from,
            to: self.to,
            value: self.value,
            validAfter: self.valid_after,
            validBefore: self.valid_before,
            nonce: self.nonce,
            signature: self.signature.clone().into(),
        }
        .abi_encode()
    }
}

/// `bytes` as an ECDSA signature with low `s`: 65 bytes with `v` 0, 1, 27
/// or 28, or 64 ERC-2098 bytes.
fn ecdsa(bytes: &[u8]) -> Option<Signature> {
    let sig = match bytes {
        [rs @ .., 0 | 27] if rs.len() == 64 => Signature::from_bytes_and_parity(rs, false),
        [rs @ .., 1 | 28] if rs.len() == 64 => Signature::from_bytes_and_parity(rs, true),
        compact if compact.len() == 64 => Signature::from_erc2098(compact),
        _ => return None,
    };
    Some(sig.normalized_s())
}

/// The calldata of `authorizationState(from, nonce)`.
pub(super) fn authorization_state_calldata(from: Address, nonce: B256) -> Vec<u8> {
    IEip3009::authorizationStateCall {
        authorizer: from,
        nonce,
    }
    .abi_encode()
}

/// `authorizationState`'s answer.
pub(super) fn decode_authorization_state(data: &[u8]) -> Result<bool, String> {
    IEip3009::authorizationStateCall::abi_decode_returns(data).map_err(|e| {
        format!(
            "authorizationState answered {}: {e}",
            hex::encode_prefixed(data)
        )
    })
}

/// The calldata of `balanceOf(who)`.
pub(super) fn balance_of_calldata(who: Address) -> Vec<u8> {
    IEip3009::balanceOfCall { account: who }.abi_encode()
}

/// `balanceOf`'s answer.
pub(super) fn decode_balance_of(data: &[u8]) -> Result<U256, String> {
    IEip3009::balanceOfCall::abi_decode_returns(data)
        .map_err(|e| format!("balanceOf answered {}: {e}", hex::encode_prefixed(data)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(signature: &str) -> FacilitatorRequest {
        let requirements = json!({
            "scheme": "exact", "network": "eip155:84532", "amount": "10000",
            "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "payTo": "0x2096d7C1B2D4D4C84a4F7a3bD7bFAC6B1b2F287C",
            "maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2"}
        });
        serde_json::from_value(json!({
            "x402Version": 2,
            "paymentRequirements": requirements,
            "paymentPayload": {"x402Version": 2, "accepted": requirements, "payload": {
                "signature": signature,
                "authorization": {
                    "from": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    "to": "0x2096d7C1B2D4D4C84a4F7a3bD7bFAC6B1b2F287C",
                    "value": "10000", "validAfter": "0", "validBefore": "1795307662",
                    "nonce": format!("0x{}", "11".repeat(32)),
                }
            }}
        }))
        .unwrap()
    }

    #[test]
    fn a_65_byte_signature_goes_to_the_v_r_s_overload_with_v_27_or_28() {
        let sig = format!("0x{}{}01", "22".repeat(32), "33".repeat(32));
        let payment = Payment::decode(&request(&sig)).unwrap();
        assert_eq!(payment.value, U256::from(10000));
        assert_eq!(payment.nonce, B256::repeat_byte(0x11));
        let data = payment.transfer_calldata();
        // transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)
        assert_eq!(data[..4], [0xe3, 0xee, 0x16, 0x0e]);
        assert_eq!(data.len(), 4 + 9 * 32);
        assert_eq!(data[4 + 7 * 32 - 1], 28);
        assert_eq!(data[4 + 7 * 32..4 + 8 * 32], [0x22; 32]);
    }

    #[test]
    fn a_high_s_signature_is_sent_normalized() {
        let high_s = U256::from_be_bytes(
            alloy_primitives::hex!(
                "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140"
            ), // n - 1
        );
        let sig = format!(
            "0x{}{}1b",
            "22".repeat(32),
            hex::encode(high_s.to_be_bytes::<32>())
        );
        let data = Payment::decode(&request(&sig)).unwrap().transfer_calldata();
        assert_eq!(data[4 + 7 * 32 - 1], 28, "the parity flips with s");
        assert_eq!(U256::from_be_slice(&data[4 + 8 * 32..]), U256::from(1));
    }

    #[test]
    fn any_other_signature_goes_to_the_bytes_overload() {
        let data = Payment::decode(&request(&format!("0x{}", "44".repeat(100))))
            .unwrap()
            .transfer_calldata();
        // transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)
        assert_eq!(data[..4], [0xcf, 0x09, 0x29, 0x95]);
    }

    #[test]
    fn malformed_payloads_say_which_field() {
        let mut req = request("0x00");
        req.payment_payload.payload["authorization"]["value"] = json!("-1");
        assert_eq!(
            Payment::decode(&req).unwrap_err(),
            "authorization.value is malformed"
        );
        assert!(Payment::decode(&request("nothex")).is_err());
        let mut req = request("0x00");
        req.payment_payload.payload = json!({"permit2Authorization": {}});
        assert!(Payment::decode(&req).is_err());
    }

    #[test]
    fn read_calls_encode_and_decode() {
        let who = Address::repeat_byte(0x70);
        assert_eq!(balance_of_calldata(who)[..4], [0x70, 0xa0, 0x82, 0x31]);
        assert_eq!(
            authorization_state_calldata(who, B256::ZERO)[..4],
            [0xe9, 0x4a, 0x01, 0x02]
        );
        assert!(decode_authorization_state(&U256::from(1).to_be_bytes::<32>()).unwrap());
        assert_eq!(
            decode_balance_of(&U256::from(7).to_be_bytes::<32>()).unwrap(),
            U256::from(7)
        );
        assert!(decode_balance_of(&[1, 2]).is_err());
    }
}
