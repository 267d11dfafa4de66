//! The in-process x402 verify path for one request: decode the
//! `PAYMENT-SIGNATURE` header the official Python client sent, then
//! `verify_exact` it (EIP-712 hashing and secp256k1 recovery dominate).
//!
//! `cargo bench -p faregate-x402 --bench verify -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_group, criterion_main};
use faregate_x402::verify::verify_exact;
use faregate_x402::wire::{PaymentPayload, PaymentRequirements, decode_header};
use serde_json::Value;
use std::hint::black_box;

const FIXTURE: &str = include_str!("../tests/fixtures/verify/cases.json");

fn bench_verify(c: &mut Criterion) {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture JSON");
    let header = fixture["official_client_header"]
        .as_str()
        .expect("header")
        .to_owned();
    let requirements: PaymentRequirements =
        serde_json::from_value(fixture["requirements"].clone()).expect("requirements");
    let now = fixture["now"].as_u64().expect("now");

    c.bench_function("decode_header + verify_exact", |b| {
        b.iter(|| {
            let payload: PaymentPayload = decode_header(black_box(&header)).expect("decodes");
            verify_exact(&payload, black_box(&requirements), now).expect("valid")
        })
    });

    let payload: PaymentPayload = decode_header(&header).expect("decodes");
    c.bench_function("verify_exact", |b| {
        b.iter(|| verify_exact(black_box(&payload), black_box(&requirements), now).expect("valid"))
    });
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
