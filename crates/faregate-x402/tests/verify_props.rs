//! No input makes `decode_header` + `verify_exact` panic: the official
//! client's header mutated byte by byte, each field of its payload replaced
//! by hostile strings or arbitrary JSON, at any clock.

use faregate_x402::verify::verify_exact;
use faregate_x402::wire::{PaymentPayload, PaymentRequirements, decode_header};
use proptest::prelude::*;
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/verify/cases.json");

/// Where a hostile value may go: a JSON pointer into the payload document.
const FIELDS: &[&str] = &[
    "/payload/signature",
    "/payload/authorization/from",
    "/payload/authorization/to",
    "/payload/authorization/value",
    "/payload/authorization/validAfter",
    "/payload/authorization/validBefore",
    "/payload/authorization/nonce",
    "/payload/authorization",
    "/payload",
    "/accepted/payTo",
    "/accepted/amount",
    "/accepted/extra/name",
];

const HOSTILE: &[&str] = &[
    "",
    "0x",
    "0x0",
    "-1",
    "+1",
    "1e999",
    "115792089237316195423570985008687907853269984665640564039457584007913129639936",
    "99999999999999999999999999999999999999999999999999999999999999999999999999999999999",
    "18446744073709551615",
    "18446744073709551616",
    "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "0x\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
    "\u{0}",
    "0x6492649264926492649264926492649264926492649264926492649264926492",
];

struct Base {
    doc: Value,
    header: String,
    requirements: PaymentRequirements,
    now: u64,
}

fn base() -> Base {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    Base {
        doc: fixture["cases"][0]["payload"].clone(),
        header: fixture["official_client_header"]
            .as_str()
            .unwrap()
            .to_owned(),
        requirements: serde_json::from_value(fixture["requirements"].clone()).unwrap(),
        now: fixture["now"].as_u64().unwrap(),
    }
}

/// Verifies `doc` if it is a payment payload at all; only panics matter.
fn verify_doc(doc: Value, requirements: &PaymentRequirements, now: u64) {
    if let Ok(payload) = serde_json::from_value::<PaymentPayload>(doc) {
        let _ = verify_exact(&payload, requirements, now);
    }
}

fn with_field(doc: &Value, pointer: &str, value: Value) -> Value {
    let mut doc = doc.clone();
    if let Some(slot) = doc.pointer_mut(pointer) {
        *slot = value;
    }
    doc
}

fn signature_bytes(len: usize) -> Value {
    format!("0x{}", "ab".repeat(len)).into()
}

#[test]
fn hostile_strings_in_every_field_are_refused_without_panicking() {
    let b = base();
    for now in [0, b.now, u64::MAX - 6, u64::MAX] {
        for field in FIELDS {
            for hostile in HOSTILE {
                verify_doc(
                    with_field(&b.doc, field, (*hostile).into()),
                    &b.requirements,
                    now,
                );
            }
            for value in [
                Value::Null,
                7.into(),
                (-1).into(),
                1.5.into(),
                Value::Array(vec![]),
            ] {
                verify_doc(with_field(&b.doc, field, value), &b.requirements, now);
            }
        }
        for len in 0..=140 {
            let doc = with_field(&b.doc, "/payload/signature", signature_bytes(len));
            verify_doc(doc, &b.requirements, now);
        }
    }
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,70}".prop_map(Value::from),
        "0x[0-9a-fA-F]{0,132}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn a_mutated_header_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 1..6),
        now in any::<u64>(),
    ) {
        let b = base();
        let mut header: Vec<char> = b.header.chars().collect();
        for (at, c) in edits {
            let i = at.index(header.len());
            header[i] = c;
        }
        let header: String = header.into_iter().collect();
        if let Ok(payload) = decode_header::<PaymentPayload>(&header) {
            let _ = verify_exact(&payload, &b.requirements, now);
        }
    }

    #[test]
    fn arbitrary_json_in_any_field_never_panics(
        field in prop::sample::select(FIELDS),
        value in json(),
        now in any::<u64>(),
    ) {
        let b = base();
        verify_doc(with_field(&b.doc, field, value), &b.requirements, now);
    }

    #[test]
    fn arbitrary_signature_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..140)) {
        let b = base();
        let hex: String = bytes.iter().map(|x| format!("{x:02x}")).collect();
        let doc = with_field(&b.doc, "/payload/signature", format!("0x{hex}").into());
        let payload: PaymentPayload = serde_json::from_value(doc).unwrap();
        prop_assert!(verify_exact(&payload, &b.requirements, b.now).is_err());
    }
}
