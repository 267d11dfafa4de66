//! An EIP-1559 (type 2) contract call, RLP-encoded and signed with the
//! settler's key: the one transaction shape settlement sends.
//!
//! Pure: no I/O, so the encoding is tested byte for byte. The RLP is
//! `alloy-rlp`'s; the signature is `k256`'s (low-s, with the recovery id as
//! the y parity).

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_rlp::{Encodable as _, Header};
use k256::ecdsa::SigningKey;

/// The EIP-2718 type byte of an EIP-1559 transaction.
const EIP1559_TYPE: u8 = 2;

/// An unsigned EIP-1559 call of `data` on `to`, sending no ether.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Call {
    /// The EIP-155 chain id.
    pub(super) chain_id: u64,
    /// The sender's account nonce.
    pub(super) nonce: u64,
    /// The tip per gas.
    pub(super) max_priority_fee_per_gas: U256,
    /// The most paid per gas, base fee included.
    pub(super) max_fee_per_gas: U256,
    /// The gas limit.
    pub(super) gas: u64,
    /// The contract called.
    pub(super) to: Address,
    /// The calldata.
    pub(super) data: Vec<u8>,
}

/// A signed transaction: its raw bytes for `eth_sendRawTransaction`, and
/// its hash, known before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Signed {
    /// `0x02 ‖ rlp([…, yParity, r, s])`.
    pub(super) raw: Vec<u8>,
    /// `keccak256(raw)`.
    pub(super) hash: B256,
}

impl Call {
    /// Signs the call with `key`.
    pub(super) fn sign(&self, key: &SigningKey) -> Result<Signed, String> {
        let sighash = keccak256(self.envelope(None));
        let (signature, recovery) = key
            .sign_prehash_recoverable(sighash.as_slice())
            .map_err(|e| format!("cannot sign the transaction: {e}"))?;
        let (r, s) = signature.split_bytes();
        let parity = Parity {
            y_odd: recovery.is_y_odd(),
            r: U256::from_be_slice(&r),
            s: U256::from_be_slice(&s),
        };
        let raw = self.envelope(Some(&parity));
        let hash = keccak256(&raw);
        Ok(Signed { raw, hash })
    }

    /// `0x02 ‖ rlp(fields)`, with the signature's fields when given: the
    /// signing payload without, the raw transaction with.
    fn envelope(&self, signature: Option<&Parity>) -> Vec<u8> {
        let mut fields = Vec::with_capacity(128 + self.data.len());
        self.chain_id.encode(&mut fields);
        self.nonce.encode(&mut fields);
        uint(&self.max_priority_fee_per_gas, &mut fields);
        uint(&self.max_fee_per_gas, &mut fields);
        self.gas.encode(&mut fields);
        self.to.as_slice().encode(&mut fields);
        0u8.encode(&mut fields); // value
        self.data.as_slice().encode(&mut fields);
        Header {
            list: true,
            payload_length: 0,
        }
        .encode(&mut fields); // access list
        if let Some(sig) = signature {
            sig.y_odd.encode(&mut fields);
            uint(&sig.r, &mut fields);
            uint(&sig.s, &mut fields);
        }
        let mut out = Vec::with_capacity(fields.len() + 4);
        out.push(EIP1559_TYPE);
        Header {
            list: true,
            payload_length: fields.len(),
        }
        .encode(&mut out);
        out.extend_from_slice(&fields);
        out
    }
}

/// A signature's fields as a typed transaction carries them.
struct Parity {
    y_odd: bool,
    r: U256,
    s: U256,
}

/// An integer as RLP: big-endian bytes without leading zeros.
fn uint(n: &U256, out: &mut Vec<u8>) {
    n.to_be_bytes_trimmed_vec().as_slice().encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Signature, address, hex};

    /// Anvil's account 0.
    const KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    fn call() -> Call {
        Call {
            chain_id: 84532,
            nonce: 7,
            max_priority_fee_per_gas: U256::from(1_000_000_000u64),
            max_fee_per_gas: U256::from(3_000_000_000u64),
            gas: 90_000,
            to: address!("036CbD53842c5426634e7929541eC2318f3dCF7e"),
            data: vec![0xab; 60],
        }
    }

    #[test]
    fn the_signing_payload_is_the_type_byte_and_an_rlp_list_of_nine_fields() {
        let payload = call().envelope(None);
        // 4 + 1 + 5 + 5 + 4 + 21 + 1 + 62 + 1 = 104 = 0x68 bytes of fields.
        let expected = [
            "02f868",                                     // type 2, a list of 0x68 bytes
            "83014a34",                                   // chain id 84532
            "07",                                         // nonce
            "843b9aca00",                                 // tip, 1 gwei
            "84b2d05e00",                                 // max fee, 3 gwei
            "83015f90",                                   // gas 90000
            "94036cbd53842c5426634e7929541ec2318f3dcf7e", // to
            "80",                                         // value 0
            "b83c",                                       // 60 bytes of data follow
            &"ab".repeat(60),
            "c0", // an empty access list
        ]
        .concat();
        assert_eq!(hex::encode(&payload), expected);
    }

    #[test]
    fn the_signed_transaction_recovers_to_the_key_and_hashes_its_raw_bytes() {
        let key = SigningKey::from_slice(&hex::decode(KEY).unwrap()).unwrap();
        let signed = call().sign(&key).unwrap();
        assert_eq!(signed.hash, keccak256(&signed.raw));
        // The last 67 bytes are yParity (1 byte: 0x80 or 0x01), then r and s (0xa0 ‖ 32 bytes each,
        // unless a leading zero byte was trimmed, which is too rare to matter for one fixed key).
        let tail = &signed.raw[signed.raw.len() - 67..];
        let y_odd = match tail[0] {
            0x80 => false,
            0x01 => true,
            other => panic!("yParity byte {other:#x}"),
        };
        assert_eq!((tail[1], tail[34]), (0xa0, 0xa0));
        let r = U256::from_be_slice(&tail[2..34]);
        let s = U256::from_be_slice(&tail[35..67]);
        let signature = Signature::new(r, s, y_odd);
        let sighash = keccak256(call().envelope(None));
        let signer = signature.recover_address_from_prehash(&sighash).unwrap();
        assert_eq!(signer, address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
        // The outer list grew by the three signature fields.
        assert_eq!(signed.raw[..2], [0x02, 0xf8]);
        assert_eq!(signed.raw[2] as usize, signed.raw.len() - 3);
    }
}
