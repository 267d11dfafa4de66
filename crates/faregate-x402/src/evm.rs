//! EVM facts the `exact` scheme needs: CAIP-2 `eip155:<id>` networks,
//! addresses as x402 writes them, and the EIP-712 message an EIP-3009
//! `transferWithAuthorization` is signed over.
//!
//! The hashing is alloy's (`sol!` and `SolStruct::eip712_signing_hash`);
//! only the string parsing is ours, strict so that one value has one
//! spelling: no sign, no whitespace, no missing `0x`.

use alloy_primitives::{Address, B256, U256, hex};
use alloy_sol_types::{Eip712Domain, SolStruct as _, sol};
use std::borrow::Cow;

use crate::verify::ParsedAuthorization;

/// The CAIP-2 namespace of EVM chains.
pub const EIP155_PREFIX: &str = "eip155:";

sol! {
    /// EIP-3009's signed message, as USDC and every EIP-3009 token hash it:
    /// `TransferWithAuthorization(address from,address to,uint256 value,
    /// uint256 validAfter,uint256 validBefore,bytes32 nonce)`.
    #[derive(Debug, PartialEq, Eq)]
    struct TransferWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }
}

/// The token's EIP-712 domain: `name` and `version` from the requirements'
/// `extra`, the chain from the network, the token contract from `asset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eip3009Domain {
    /// The token's EIP-712 name (`"USDC"` on Base Sepolia, `"USD Coin"` on Base).
    pub name: String,
    /// The token's EIP-712 version (`"2"` for USDC).
    pub version: String,
    /// The EIP-155 chain id.
    pub chain_id: u64,
    /// The token contract.
    pub verifying_contract: Address,
}

impl Eip3009Domain {
    /// The domain as alloy hashes it, with all four fields present, as the
    /// token contract and both reference clients build it.
    pub fn eip712_domain(&self) -> Eip712Domain {
        Eip712Domain::new(
            Some(Cow::Owned(self.name.clone())),
            Some(Cow::Owned(self.version.clone())),
            Some(U256::from(self.chain_id)),
            Some(self.verifying_contract),
            None,
        )
    }
}

impl From<&ParsedAuthorization> for TransferWithAuthorization {
    fn from(auth: &ParsedAuthorization) -> Self {
        Self {
            from: auth.from,
            to: auth.to,
            value: auth.value,
            validAfter: auth.valid_after,
            validBefore: auth.valid_before,
            nonce: auth.nonce,
        }
    }
}

/// The EIP-712 signing hash of `auth` under `domain`:
/// `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(auth))`, the prehash a
/// payer's signature recovers from.
pub fn transfer_with_authorization_hash(
    domain: &Eip3009Domain,
    auth: &ParsedAuthorization,
) -> B256 {
    TransferWithAuthorization::from(auth).eip712_signing_hash(&domain.eip712_domain())
}

/// The chain id of a CAIP-2 EVM network: `"eip155:84532"` gives 84532.
/// `None` for another namespace, a reference that is not a plain decimal
/// (sign, leading zero, spaces) or does not fit a `u64`, and chain 0.
pub fn chain_id(network: &str) -> Option<u64> {
    let digits = network.strip_prefix(EIP155_PREFIX)?;
    if digits.starts_with('0') || !is_decimal(digits) {
        return None;
    }
    digits.parse().ok()
}

/// An address written `0x` and 40 hex digits, in any case; the EIP-55
/// checksum is not enforced (the reference implementations compare
/// addresses case-insensitively).
pub fn parse_address(s: &str) -> Option<Address> {
    parse_hex_array::<20>(s).map(Address::from)
}

/// 32 bytes written `0x` and 64 hex digits, in any case.
pub fn parse_b256(s: &str) -> Option<B256> {
    parse_hex_array::<32>(s).map(B256::from)
}

/// A `uint256` written in decimal digits only, as x402 writes amounts and
/// times: no sign, no `0x`, no spaces; leading zeros are allowed.
pub fn parse_u256_decimal(s: &str) -> Option<U256> {
    if !is_decimal(s) {
        return None;
    }
    U256::from_str_radix(s, 10).ok()
}

/// Whether `s` is one or more ASCII decimal digits.
fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `0x` followed by exactly `2 * N` hex digits.
fn parse_hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s.strip_prefix("0x")?;
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_eip155_with_a_plain_nonzero_decimal_id() {
        assert_eq!(chain_id("eip155:84532"), Some(84532));
        assert_eq!(chain_id("eip155:1"), Some(1));
        assert_eq!(chain_id("eip155:18446744073709551615"), Some(u64::MAX));
        for bad in [
            "eip155:",
            "eip155:0",
            "eip155:084532",
            "eip155:+1",
            "eip155: 1",
            "eip155:1 ",
            "eip155:0x1",
            "eip155:18446744073709551616",
            "EIP155:1",
            "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
            "base-sepolia",
            "",
        ] {
            assert_eq!(chain_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn addresses_need_0x_and_40_hex_digits_in_any_case() {
        let checksummed = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
        let a = parse_address(checksummed).unwrap();
        assert_eq!(parse_address(&checksummed.to_lowercase()), Some(a));
        assert_eq!(
            parse_address(&checksummed.to_uppercase().replace("0X", "0x")),
            Some(a)
        );
        assert_eq!(a.to_string(), checksummed);
        for bad in [
            "036CbD53842c5426634e7929541eC2318f3dCF7e",
            "0X036CbD53842c5426634e7929541eC2318f3dCF7e",
            "0x036CbD53842c5426634e7929541eC2318f3dCF7",
            "0x036CbD53842c5426634e7929541eC2318f3dCF7e0",
            "0x036CbD53842c5426634e7929541eC2318f3dCF7g",
            " 0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "0x",
            "",
            "0x036CbD53842c5426634e7929541eC2318f3dCF\u{e9}",
        ] {
            assert_eq!(parse_address(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn amounts_are_decimal_uint256() {
        assert_eq!(parse_u256_decimal("10000"), Some(U256::from(10000)));
        assert_eq!(parse_u256_decimal("007"), Some(U256::from(7)));
        assert_eq!(parse_u256_decimal(&U256::MAX.to_string()), Some(U256::MAX));
        let too_big =
            "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        for bad in ["", "-1", "+1", "1_000", " 1", "1.0", "0x10", "1e3", too_big] {
            assert_eq!(parse_u256_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nonces_are_32_bytes() {
        let hex64 = format!("0x{}", "ab".repeat(32));
        assert_eq!(parse_b256(&hex64), Some(B256::repeat_byte(0xab)));
        assert_eq!(parse_b256("0x1234"), None);
        assert_eq!(parse_b256(&format!("{hex64}00")), None);
    }
}
