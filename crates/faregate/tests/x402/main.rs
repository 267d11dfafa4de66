//! The x402 rail end to end over real HTTP: a route priced at 0.01 USD in
//! Base Sepolia USDC, payments signed offline as the real clients sign them,
//! settled through a facilitator double that speaks the facilitator's wire
//! format and misbehaves on demand, on a real store (SQLite, and PostgreSQL
//! when `FAREGATE_TEST_DATABASE_URL` is set). The checks follow the x402
//! conformance probe's R-list: a payment is served only once settled, once
//! at most, and never for a failed or unknown settlement.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use faregate_core::SystemClock;
use faregate_store::{Store, TxKind};
use faregate_testkit::x402::{FacilitatorDouble, PAYER_KEY, Payer, SettleScript};
use faregate_testkit::{Client, Reply, TestGateway, TestStore, Upstream};
use faregate_x402::settle::FacilitatorClient;
use faregate_x402::wire::{PaymentRequired, SettleResponse, decode_header};
use http::{Method, Request, StatusCode};
use http_body_util::Full;

const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const PAY_TO: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

fn config(up: &Upstream) -> String {
    let u = up.url();
    let offer = format!(
        r#"network = "eip155:84532"
asset = "{USDC}"
name = "USDC"
version = "2"
pay_to = "{PAY_TO}"
max_timeout_seconds = 60"#
    );
    format!(
        r#"
[x402]
settle_timeout = "1s"

[[routes]]
name = "paid"
path = "/paid/*"
upstreams = ["{u}"]
strip_prefix = "/paid"
price = "0.01 USD"
access = ["x402"]
[routes.x402]
description = "a paid echo"
bazaar = {{ input = {{ type = "http", method = "GET" }}, output = {{ example = "an echo" }} }}
[[routes.x402.offers]]
{offer}

[[routes]]
name = "upfront"
path = "/upfront/*"
upstreams = ["{u}"]
strip_prefix = "/upfront"
price = "0.01 USD"
access = ["x402"]
[routes.x402]
settle = "before"
[[routes.x402.offers]]
{offer}

[[routes]]
name = "either"
path = "/either/*"
upstreams = ["{u}"]
strip_prefix = "/either"
price = "0.01 USD"
access = ["credits", "x402"]
[routes.x402]
[[routes.x402.offers]]
{offer}

[[routes]]
name = "bundle"
path = "/bundle/*"
upstreams = ["{u}"]
strip_prefix = "/bundle"
price = "0.01 USD"
access = ["x402"]
[routes.x402]
bundle = {{ calls = 3, duration = "1h" }}
[[routes.x402.offers]]
{offer}
"#
    )
}

struct Setup {
    gw: TestGateway,
    facilitator: FacilitatorDouble,
    store: Arc<dyn Store>,
    client: Client,
    payer: Payer,
    _up: Upstream,
}

impl Setup {
    async fn start(test_store: &TestStore) -> Self {
        let store = test_store.open().await;
        let up = Upstream::start().await;
        let facilitator = FacilitatorDouble::start(SettleScript::Succeed).await;
        let settler = Arc::new(
            FacilitatorClient::new(&facilitator.url(), Duration::from_secs(5)).expect("client"),
        );
        let gw =
            TestGateway::start_x402(&config(&up), store.clone(), settler, Arc::new(SystemClock))
                .await;
        Self {
            gw,
            facilitator,
            store,
            client: Client::http1(),
            payer: Payer::new(PAYER_KEY),
            _up: up,
        }
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = Request::builder().method(method).uri(self.gw.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.client
            .send(req.body(Full::new(Bytes::new())).expect("request"))
            .await
    }

    /// The `PAYMENT-REQUIRED` header of an unpaid GET of `path`.
    async fn challenge(&self, path: &str) -> String {
        let reply = self.send(Method::GET, path, &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::PAYMENT_REQUIRED,
            "{}",
            reply.text()
        );
        reply
            .header("payment-required")
            .expect("PAYMENT-REQUIRED")
            .to_owned()
    }

    /// A valid payment for `path`.
    async fn payment(&self, path: &str) -> String {
        let challenge = self.challenge(path).await;
        self.payer.pay(&challenge, now(), |_| {})
    }

    async fn paid(&self, path: &str, payment: &str) -> Reply {
        self.send(Method::GET, path, &[("payment-signature", payment)])
            .await
    }

    async fn close(self) {
        self.gw.shutdown().await;
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn settle_response(reply: &Reply) -> SettleResponse {
    decode_header(reply.header("payment-response").expect("PAYMENT-RESPONSE"))
        .expect("PAYMENT-RESPONSE decodes")
}

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for test_store in TestStore::each(stringify!($name)).await {
                let setup = Setup::start(&test_store).await;
                eprintln!("{}: {}", stringify!($name), setup.store.backend());
                suite::$name(&setup).await;
                setup.close().await;
            }
        }
    )*};
}

on_every_store!(
    an_unpaid_request_gets_the_402_with_the_payment_required_header_and_body,
    a_paid_request_is_settled_served_and_written_to_the_ledger,
    a_payment_is_served_once_even_under_parallel_replays,
    an_upstream_failure_settles_nothing_and_frees_the_payment,
    a_failed_or_unknown_settlement_is_never_served,
    settlement_pending_is_retried_once,
    head_is_never_settled,
    payments_that_do_not_verify_get_a_fresh_402_with_the_reason,
    a_malformed_payment_header_is_a_structured_402_not_a_5xx,
    a_client_leaving_during_settlement_is_charged_once,
    a_route_settling_before_forwarding_keeps_the_payment_on_upstream_failure,
    a_bundle_is_drawn_down_by_its_access_token,
    a_payment_identifier_reused_with_another_payment_is_a_conflict,
    discovery_lists_the_paid_routes_and_cors_exposes_the_payment_headers,
);

mod suite;
