//! The decision path: route + identify + price + authorize, per request,
//! without I/O. Run with `cargo bench -p faregate-gateway --bench decide`.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use faregate_core::Decision;
use faregate_gateway::{ConnInfo, Gateway, config, decide};
use http::Request;

const KEY: &str = "fg_test_bench_key_0123456789";

fn gateway() -> std::sync::Arc<Gateway> {
    let mut text =
        String::from("[[api_keys]]\nid = \"bench\"\nkey = \"fg_test_bench_key_0123456789\"\n");
    // A realistic table: exact routes, prefixes and hosts.
    for i in 0..50 {
        text.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\npath = \"/v1/r{i}/*\"\nupstreams = [\"http://127.0.0.1:9\"]\n\
             [[routes]]\nname = \"e{i}\"\nhost = \"api{i}.example.com\"\npath = \"/exact/{i}\"\nupstreams = [\"http://127.0.0.1:9\"]\n"
        ));
    }
    text.push_str(
        "[[routes]]\nname = \"paid\"\npath = \"/paid/*\"\nupstreams = [\"http://127.0.0.1:9\"]\nprice = \"0.001 USD\"\n\
         rate_limit = { per = \"key\", requests = 1000000000, period = \"1s\" }\n",
    );
    let config = config::load(&text, Path::new("."), &|_| None, &[]).expect("bench config");
    Gateway::builder(config).build().expect("gateway")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let gw = gateway();
    let conn = ConnInfo::new(IpAddr::from([127, 0, 0, 1]), false);
    let free = Request::get("/v1/r42/items?limit=10")
        .header("host", "api.example.com")
        .body(())
        .expect("req");
    let paid = Request::get("/paid/items")
        .header("host", "api.example.com")
        .header("authorization", format!("Bearer {KEY}"))
        .body(())
        .expect("req");
    let refused = Request::get("/paid/items")
        .header("host", "api.example.com")
        .body(())
        .expect("req");

    let mut group = c.benchmark_group("decide");
    group.bench_function("free route", |b| {
        b.iter(|| {
            rt.block_on(async {
                assert!(matches!(
                    decide(&gw, black_box(&free), conn.clone()).await.1,
                    Decision::Allow(_)
                ))
            })
        })
    });
    group.bench_function("api key + rate limit", |b| {
        b.iter(|| {
            rt.block_on(async {
                assert!(matches!(
                    decide(&gw, black_box(&paid), conn.clone()).await.1,
                    Decision::Allow(_)
                ))
            })
        })
    });
    group.bench_function("refused (401)", |b| {
        b.iter(|| {
            rt.block_on(async {
                assert!(matches!(
                    decide(&gw, black_box(&refused), conn.clone()).await.1,
                    Decision::Deny(_)
                ))
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
