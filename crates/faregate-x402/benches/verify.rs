//! The in-process x402 verify path for one request: decode the
//! `PAYMENT-SIGNATURE` header the official Python client sent, then
//! `verify_exact` it (EIP-712 hashing and secp256k1 recovery dominate).
//!
//! `cargo bench -p faregate-x402 --bench verify -- --warm-up-time 1 --measurement-time 3`
//!
//! Besides the whole path, the stages are timed on their own (decode, the
//! EIP-712 domain separator, the full signing hash, the key recovery), so
//! that a change of secp256k1 backend or a cached domain shows where it
//! lands. The recovery is timed on both backends alloy-primitives offers:
//! libsecp256k1 (its `secp256k1` feature, which this crate turns on, so
//! `verify_exact` uses it) and the pure-Rust k256.
//!
//! **Rate mode** (what `bench/x402_verify.sh` runs beside the official
//! Python verifier): with `X402_VERIFY_RATE_SECONDS=N` set, criterion is
//! skipped and one thread loops decode + `verify_exact` on one header for
//! N seconds of its own CPU time, then prints one JSON line with
//! verifications per CPU second and per wall-clock second. The CPU figure
//! (from `/proc/thread-self/schedstat`) is the per-core rate; on a shared
//! machine the wall figure also counts the time other processes held the
//! core. `X402_VERIFY_CORPUS=corpus.json` (from `interop/x402/corpus.py`)
//! takes its `valid` entry's header and requirements and checks against
//! the wall clock, exactly as `interop/x402/bench_verify.py` does;
//! without it the fixture's header is used at the fixture's time.

// Rates and averages, for people to read.
#![allow(clippy::float_arithmetic)]

use alloy_primitives::{Address, B256, Signature};
use criterion::{Criterion, criterion_group};
use faregate_x402::evm::{Eip3009Domain, transfer_with_authorization_hash};
use faregate_x402::verify::verify_exact;
use faregate_x402::wire::{PaymentPayload, PaymentRequirements, decode_header};
use serde_json::Value;
use std::hint::black_box;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const FIXTURE: &str = include_str!("../tests/fixtures/verify/cases.json");

/// The bench's input: one header and the offer it pays, at a time.
struct Input {
    header: String,
    requirements: PaymentRequirements,
    /// `None`: the wall clock, read per verification as a server does.
    now: Option<u64>,
}

impl Input {
    fn fixture() -> Self {
        let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture JSON");
        Self {
            header: fixture["official_client_header"]
                .as_str()
                .expect("header")
                .to_owned(),
            requirements: serde_json::from_value(fixture["requirements"].clone())
                .expect("requirements"),
            now: Some(fixture["now"].as_u64().expect("now")),
        }
    }

    /// The `valid` entry of a `corpus.py` corpus.
    fn corpus(path: &str) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let corpus: Vec<Value> = serde_json::from_str(&text).expect("corpus JSON");
        let entry = corpus
            .iter()
            .find(|e| e["name"] == "valid")
            .expect("a corpus entry named valid");
        Self {
            header: entry["header"].as_str().expect("header").to_owned(),
            requirements: serde_json::from_value(entry["requirements"].clone())
                .expect("requirements"),
            now: None,
        }
    }

    fn now(&self) -> u64 {
        self.now.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_secs()
        })
    }

    /// What a server does per request: decode, then verify.
    fn verify_once(&self) -> bool {
        match decode_header::<PaymentPayload>(black_box(&self.header)) {
            Ok(payload) => {
                verify_exact(&payload, black_box(&self.requirements), self.now()).is_ok()
            }
            Err(_) => false,
        }
    }
}

fn bench_verify(c: &mut Criterion) {
    let input = Input::fixture();
    let (header, requirements) = (&input.header, &input.requirements);
    let now = input.now();

    c.bench_function("decode_header + verify_exact", |b| {
        b.iter(|| {
            let payload: PaymentPayload = decode_header(black_box(header)).expect("decodes");
            verify_exact(&payload, black_box(requirements), now).expect("valid")
        })
    });

    let payload: PaymentPayload = decode_header(header).expect("decodes");
    c.bench_function("verify_exact", |b| {
        b.iter(|| verify_exact(black_box(&payload), black_box(requirements), now).expect("valid"))
    });

    c.bench_function("decode_header", |b| {
        b.iter(|| decode_header::<PaymentPayload>(black_box(header)).expect("decodes"))
    });

    let verified = verify_exact(&payload, requirements, now).expect("valid");
    let domain = Eip3009Domain {
        name: requirements.extra["name"]
            .as_str()
            .expect("name")
            .to_owned(),
        version: requirements.extra["version"]
            .as_str()
            .expect("version")
            .to_owned(),
        chain_id: faregate_x402::evm::chain_id(&requirements.network).expect("eip155"),
        verifying_contract: requirements.asset.parse().expect("asset"),
    };
    c.bench_function("eip712 domain separator", |b| {
        b.iter(|| black_box(&domain).eip712_domain().separator())
    });
    c.bench_function("eip712 signing hash (domain + struct)", |b| {
        b.iter(|| transfer_with_authorization_hash(black_box(&domain), &verified.authorization))
    });
    let digest = transfer_with_authorization_hash(&domain, &verified.authorization);
    c.bench_function("secp256k1 recovery to an address", |b| {
        b.iter(|| recover(black_box(&verified.signature), black_box(&digest)))
    });
    c.bench_function("k256 recovery to an address (the pure-Rust backend)", |b| {
        b.iter(|| recover_k256(black_box(&verified.signature), black_box(&digest)))
    });
}

/// What `verify_exact` runs: alloy-primitives' recovery, on libsecp256k1
/// when its `secp256k1` feature is on (as in this crate), else on k256.
fn recover(signature: &Signature, digest: &B256) -> Address {
    signature
        .recover_address_from_prehash(digest)
        .expect("recovers")
}

/// The pure-Rust k256 recovery, which `verify_exact` used before the
/// `secp256k1` feature; it recovers, then verifies the signature against
/// the recovered key (`ecdsa::VerifyingKey::recover_from_prehash`).
fn recover_k256(signature: &Signature, digest: &B256) -> Address {
    let key = k256::ecdsa::VerifyingKey::recover_from_prehash(
        digest.as_slice(),
        &signature.to_k256().expect("a k256 signature"),
        signature.recid(),
    )
    .expect("recovers");
    Address::from_public_key(&key)
}

criterion_group!(benches, bench_verify);

/// Nanoseconds this thread has run on a CPU (the kernel's schedstat).
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("/proc/thread-self/schedstat (Linux)");
    stat.split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .expect("schedstat's first field: CPU nanoseconds")
}

/// Rate mode: see the module doc.
fn rate(seconds: f64) {
    let input = match std::env::var("X402_VERIFY_CORPUS") {
        Ok(path) if !path.is_empty() => Input::corpus(&path),
        _ => Input::fixture(),
    };
    for _ in 0..200 {
        assert!(input.verify_once(), "the payload does not verify as valid");
    }
    let budget_ns = (seconds * 1e9) as u64;
    let (wall0, cpu0) = (Instant::now(), thread_cpu_ns());
    let mut iterations: u64 = 0;
    let cpu_ns = loop {
        for _ in 0..100 {
            assert!(input.verify_once(), "the payload stopped verifying");
        }
        iterations += 100;
        let used = thread_cpu_ns() - cpu0;
        if used >= budget_ns {
            break used;
        }
    };
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = cpu_ns as f64 / 1e9;
    let stages = Stages::measure(&input);
    println!(
        "{{\"impl\": \"faregate-x402\", \"verifications_per_cpu_second\": {:.1}, \
         \"verifications_per_wall_second\": {:.1}, \"cpu_seconds\": {cpu:.3}, \
         \"wall_seconds\": {wall:.3}, \"iterations\": {iterations}, \
         \"micros_per_verification_cpu\": {:.2}, \"stages_micros_cpu\": {{\
         \"decode_header\": {:.2}, \"eip712_domain_separator\": {:.2}, \
         \"eip712_signing_hash\": {:.2}, \"recover_secp256k1\": {:.2}, \
         \"recover_k256\": {:.2}}}}}",
        iterations as f64 / cpu,
        iterations as f64 / wall,
        cpu * 1e6 / iterations as f64,
        stages.decode,
        stages.domain,
        stages.hash,
        stages.recover,
        stages.recover_k256,
    );
}

/// CPU microseconds of each stage of one verification, measured alone.
struct Stages {
    decode: f64,
    domain: f64,
    hash: f64,
    recover: f64,
    recover_k256: f64,
}

impl Stages {
    fn measure(input: &Input) -> Self {
        let payload: PaymentPayload = decode_header(&input.header).expect("decodes");
        let verified = verify_exact(&payload, &input.requirements, input.now()).expect("verifies");
        let extra = &input.requirements.extra;
        let domain = Eip3009Domain {
            name: extra["name"].as_str().expect("extra.name").to_owned(),
            version: extra["version"].as_str().expect("extra.version").to_owned(),
            chain_id: faregate_x402::evm::chain_id(&input.requirements.network)
                .expect("an eip155 network"),
            verifying_contract: input.requirements.asset.parse().expect("asset"),
        };
        let digest = transfer_with_authorization_hash(&domain, &verified.authorization);
        let (signature, auth) = (&verified.signature, &verified.authorization);
        Self {
            decode: cpu_micros(|| {
                black_box(decode_header::<PaymentPayload>(black_box(&input.header)).is_ok());
            }),
            domain: cpu_micros(|| {
                black_box(black_box(&domain).eip712_domain().separator());
            }),
            hash: cpu_micros(|| {
                black_box(transfer_with_authorization_hash(black_box(&domain), auth));
            }),
            recover: cpu_micros(|| {
                black_box(recover(black_box(signature), &digest));
            }),
            recover_k256: cpu_micros(|| {
                black_box(recover_k256(black_box(signature), &digest));
            }),
        }
    }
}

/// CPU microseconds per call of `f`, over about half a CPU second.
fn cpu_micros(mut f: impl FnMut()) -> f64 {
    let start = thread_cpu_ns();
    let mut calls: u64 = 0;
    while thread_cpu_ns() - start < 500_000_000 {
        for _ in 0..50 {
            f();
        }
        calls += 50;
    }
    (thread_cpu_ns() - start) as f64 / 1e3 / calls as f64
}

fn main() {
    if let Ok(seconds) = std::env::var("X402_VERIFY_RATE_SECONDS") {
        let seconds: f64 = seconds.parse().expect("X402_VERIFY_RATE_SECONDS: seconds");
        rate(seconds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
