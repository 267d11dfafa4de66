//! The pipeline's order and edges, on the official client's payload from
//! the fixture (`tests/fixtures/verify/`); every signed case is in
//! `tests/verify_fixtures.rs`.

use super::*;
use crate::wire::decode_header;

const FIXTURE: &str = include_str!("../../tests/fixtures/verify/cases.json");

struct Base {
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    now: u64,
}

fn base() -> Base {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let header = fixture["official_client_header"].as_str().unwrap();
    Base {
        payload: decode_header(header).unwrap(),
        requirements: serde_json::from_value(fixture["requirements"].clone()).unwrap(),
        now: fixture["now"].as_u64().unwrap(),
    }
}

fn auth_mut(payload: &mut PaymentPayload) -> &mut Value {
    &mut payload.payload["authorization"]
}

#[test]
fn the_official_clients_payment_is_verified_with_its_terms() {
    let b = base();
    let v = verify_exact(&b.payload, &b.requirements, b.now).unwrap();
    assert_eq!(v.payer, v.authorization.from);
    assert_eq!(v.authorization.to.to_string(), b.requirements.pay_to);
    assert_eq!(v.authorization.value, U256::from(10_000));
    assert_eq!(v.authorization.valid_before, U256::from(b.now + 60));
    let resp = v.verify_response();
    assert!(resp.is_valid);
    assert_eq!(
        resp.payer.as_deref(),
        Some("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
    );
}

#[test]
fn the_first_failure_in_the_reference_order_is_reported() {
    let b = base();
    let mut p = b.payload.clone();
    auth_mut(&mut p)["value"] = "1".into();
    auth_mut(&mut p)["validBefore"] = "1".into();
    p.payload["signature"] = "0x00".into();
    let refuse = |p: &PaymentPayload| verify_exact(p, &b.requirements, b.now).unwrap_err().reason;
    assert_eq!(refuse(&p), reason::VALUE_MISMATCH);
    auth_mut(&mut p)["to"] = "0x0000000000000000000000000000000000000001".into();
    assert_eq!(refuse(&p), reason::RECIPIENT_MISMATCH);
    p.payload["signature"] = "not hex".into();
    assert_eq!(refuse(&p), reason::INVALID_PAYLOAD);
    p.accepted.amount = "1".into();
    assert_eq!(refuse(&p), reason::NO_MATCHING_REQUIREMENTS);
    p.accepted.network = "eip155:1".into();
    assert_eq!(refuse(&p), reason::NETWORK_MISMATCH);
    p.accepted.scheme = "upto".into();
    assert_eq!(refuse(&p), reason::UNSUPPORTED_SCHEME);
    p.x402_version = 1;
    assert_eq!(refuse(&p), reason::INVALID_X402_VERSION);
}

#[test]
fn a_refusal_names_the_claimed_payer_once_the_payload_is_read() {
    let b = base();
    let mut p = b.payload.clone();
    p.x402_version = 3;
    let invalid = verify_exact(&p, &b.requirements, b.now).unwrap_err();
    let from = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
    assert_eq!(invalid.payer.map(|a| a.to_string()).as_deref(), Some(from));
    let resp = invalid.verify_response();
    assert!(!resp.is_valid);
    assert_eq!(
        resp.invalid_reason.as_deref(),
        Some(reason::INVALID_X402_VERSION)
    );
    assert_eq!(resp.payer.as_deref(), Some(from));
    p.payload = Value::Null;
    assert_eq!(
        verify_exact(&p, &b.requirements, b.now).unwrap_err().payer,
        None
    );
}

#[test]
fn the_window_is_inclusive_at_both_edges_and_safe_at_the_end_of_time() {
    let b = base();
    let before = b.now + 60;
    let at = |now| verify_exact(&b.payload, &b.requirements, now).map(|_| ());
    assert_eq!(at(before - VALID_BEFORE_MARGIN_SECS), Ok(()));
    let late = at(before - VALID_BEFORE_MARGIN_SECS + 1).unwrap_err();
    assert_eq!(late.reason, reason::VALID_BEFORE);
    assert_eq!(at(0), Ok(()), "validAfter 0 <= 0");
    assert_eq!(at(u64::MAX).unwrap_err().reason, reason::VALID_BEFORE);
    assert_eq!(at(u64::MAX - 5).unwrap_err().reason, reason::VALID_BEFORE);
}

#[test]
fn a_valid_before_beyond_u64_is_fine_and_valid_after_beyond_u64_is_early() {
    // The signature no longer matches, but the window is judged first.
    let b = base();
    let mut p = b.payload.clone();
    auth_mut(&mut p)["validBefore"] = U256::MAX.to_string().into();
    let err = verify_exact(&p, &b.requirements, u64::MAX - 6).unwrap_err();
    assert_eq!(err.reason, reason::SIGNATURE);
    auth_mut(&mut p)["validAfter"] = "18446744073709551616".into();
    let err = verify_exact(&p, &b.requirements, u64::MAX - 6).unwrap_err();
    assert_eq!(err.reason, reason::VALID_AFTER);
}

#[test]
fn malformed_requirements_of_our_own_are_refused_not_trusted() {
    let b = base();
    let check = |change: &dyn Fn(&mut PaymentRequirements)| {
        let (mut r, mut p) = (b.requirements.clone(), b.payload.clone());
        change(&mut r);
        p.accepted = r.clone();
        verify_exact(&p, &r, b.now)
            .map(|_| ())
            .map_err(|e| e.reason)
    };
    let extra = |key: &'static str, value: Value| {
        move |r: &mut PaymentRequirements| {
            r.extra.insert(key.to_owned(), value.clone());
        }
    };
    let no_config = Err(reason::FAILED_TO_GET_NETWORK_CONFIG);
    assert_eq!(check(&|r| r.network = "solana:x".into()), no_config);
    assert_eq!(check(&|r| r.network = "eip155:0".into()), no_config);
    let no_version = |r: &mut PaymentRequirements| {
        r.extra.remove("version");
    };
    assert_eq!(check(&no_version), Err(reason::MISSING_EIP712_DOMAIN));
    assert_eq!(
        check(&extra("name", 2.into())),
        Err(reason::MISSING_EIP712_DOMAIN)
    );
    let bad = Err(reason::NO_MATCHING_REQUIREMENTS);
    assert_eq!(check(&extra("assetTransferMethod", "permit2".into())), bad);
    assert_eq!(check(&|r| r.asset = "USDC".into()), bad);
    assert_eq!(check(&|r| r.pay_to = "me".into()), bad);
    assert_eq!(check(&|r| r.amount = "$0.01".into()), bad);
    assert_eq!(
        check(&extra("assetTransferMethod", "eip3009".into())),
        Ok(())
    );
}

#[test]
fn the_settler_gets_a_low_s_signature_that_round_trips() {
    let b = base();
    let v = verify_exact(&b.payload, &b.requirements, b.now).unwrap();
    assert!(v.signature.normalize_s().is_none());
    let sent = b.payload.payload["signature"].as_str().unwrap();
    let bytes = v.signature.as_bytes();
    assert_eq!(format!("0x{}", alloy_primitives::hex::encode(bytes)), sent);
    assert!(matches!(v.signature.v_byte(), 27 | 28));
}
