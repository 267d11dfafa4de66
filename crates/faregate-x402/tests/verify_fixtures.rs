//! `verify_exact` against payloads signed by the official Python client
//! (`x402` 2.25.0) and by `eth_account` (fixtures/verify/gen.py), and the
//! EIP-712 digest against the one `eth_account` computed.

use alloy_primitives::B256;
use alloy_sol_types::SolStruct as _;
use faregate_x402::evm::{
    Eip3009Domain, TransferWithAuthorization, parse_address, parse_b256, parse_u256_decimal,
    transfer_with_authorization_hash,
};
use faregate_x402::verify::{ParsedAuthorization, verify_exact};
use faregate_x402::wire::{PaymentPayload, PaymentRequirements, decode_header};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/verify/cases.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("cases.json is JSON")
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string"))
}

#[test]
fn every_fixture_case_gets_the_expected_verdict() {
    let fixture = fixture();
    let now = fixture["now"].as_u64().unwrap();
    let payer = parse_address(str_at(&fixture, "payer")).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "the fixture lost cases");
    let mut failures = Vec::new();
    for case in cases {
        let name = str_at(case, "name");
        let requirements = case.get("requirements").unwrap_or(&fixture["requirements"]);
        let requirements: PaymentRequirements =
            serde_json::from_value(requirements.clone()).unwrap();
        let payload: PaymentPayload = serde_json::from_value(case["payload"].clone()).unwrap();
        let verdict = match verify_exact(&payload, &requirements, now) {
            Ok(verified) => {
                assert_eq!(verified.payer, payer, "{name}");
                assert_eq!(verified.authorization.from, payer, "{name}");
                "valid"
            }
            Err(invalid) => invalid.reason,
        };
        if verdict != str_at(case, "expect") {
            failures.push(format!(
                "{name}: got {verdict}, expected {}",
                str_at(case, "expect")
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_official_clients_header_decodes_and_verifies() {
    let fixture = fixture();
    let payload: PaymentPayload =
        decode_header(str_at(&fixture, "official_client_header")).unwrap();
    assert_eq!(
        payload,
        serde_json::from_value(fixture["cases"][0]["payload"].clone()).unwrap()
    );
    let requirements: PaymentRequirements =
        serde_json::from_value(fixture["requirements"].clone()).unwrap();
    let verified = verify_exact(&payload, &requirements, fixture["now"].as_u64().unwrap()).unwrap();
    assert_eq!(verified.payer.to_string(), str_at(&fixture, "payer"));
}

#[test]
fn the_eip712_digest_is_the_one_eth_account_computed() {
    let fixture = fixture();
    let vector = &fixture["digest_vector"];
    let (dom, auth) = (&vector["domain"], &vector["authorization"]);
    let domain = Eip3009Domain {
        name: str_at(dom, "name").to_owned(),
        version: str_at(dom, "version").to_owned(),
        chain_id: dom["chainId"].as_u64().unwrap(),
        verifying_contract: parse_address(str_at(dom, "verifyingContract")).unwrap(),
    };
    let uint = |key| parse_u256_decimal(str_at(auth, key)).unwrap();
    let authorization = ParsedAuthorization {
        from: parse_address(str_at(auth, "from")).unwrap(),
        to: parse_address(str_at(auth, "to")).unwrap(),
        value: uint("value"),
        valid_after: uint("validAfter"),
        valid_before: uint("validBefore"),
        nonce: parse_b256(str_at(auth, "nonce")).unwrap(),
    };
    let hex = |key| parse_b256(str_at(vector, key)).unwrap();
    assert_eq!(domain.eip712_domain().separator(), hex("domain_separator"));
    let message = TransferWithAuthorization::from(&authorization);
    assert_eq!(message.eip712_hash_struct(), hex("struct_hash"));
    let digest: B256 = transfer_with_authorization_hash(&domain, &authorization);
    assert_eq!(digest, hex("digest"));
}
