//! The x402 rail against the reference implementation on a real local
//! chain: anvil with chain id 84532 and the EIP-3009 test token at Base
//! Sepolia's USDC address, faregate settling on it itself (`ChainSettler`,
//! gas from anvil account 0), and the official Python SDK (`x402` 2.25.0)
//! on the other side: its client pays a route, its facilitator judges a
//! corpus of payloads beside faregate, and `x402conf` grades the 402.
//!
//! Skipped, saying how to run them, unless `FAREGATE_ANVIL` and
//! `FAREGATE_X402_PYTHON` are set (`.ci/run` sets both); under `CI` a
//! missing variable is a failure instead.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, U256};
use faregate_core::SystemClock;
use faregate_store::{LedgerQuery, Store, TxKind};
use faregate_testkit::anvil::{self, Anvil};
use faregate_testkit::x402::{FacilitatorDouble, SettleScript};
use faregate_testkit::{Client, Reply, TestGateway, TestStore, Upstream};
use faregate_x402::settle::{ChainConfig, ChainSettler, FacilitatorClient, Settler};
use http::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

mod corpus;

const INTEROP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/x402/");
const NETWORK: &str = "eip155:84532";
/// The route's price, 0.01 USD, in USDC's atomic units.
const PRICE: u64 = 10_000;
/// What the payer holds: 50 USDC.
const MINTED: u64 = 50_000_000;

/// The interpreters the tests need, from the environment.
struct Interop {
    anvil: String,
    python: String,
}

impl Interop {
    /// Both variables, or `None` after saying how to set them (a panic
    /// under `CI`, where skipping would hide the interop suite).
    fn from_env(test: &str) -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let (Some(anvil), Some(python)) = (var(anvil::ENV), var("FAREGATE_X402_PYTHON")) {
            return Some(Self { anvil, python });
        }
        let how = format!(
            "{test} needs {env} and FAREGATE_X402_PYTHON; from the workspace root run \
             {env}=\"$({install})\" FAREGATE_X402_PYTHON=\"$(bash interop/x402/install.sh)\" \
             cargo test -p faregate --test x402_chain",
            env = anvil::ENV,
            install = anvil::INSTALL
        );
        assert!(std::env::var_os("CI").is_none(), "under CI, {how}");
        eprintln!("skipped: {how}");
        None
    }

    /// Runs `script` of `interop/x402/` with the venv's python; its stdout
    /// as JSON, or a panic with its stderr.
    async fn run(&self, script: &str, args: &[&str]) -> Value {
        let output = run(Command::new(&self.python)
            .arg(format!("{INTEROP}{script}"))
            .args(args))
        .await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{script} {args:?}: {}\n{stdout}",
            stderr(&output)
        );
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
    }
}

async fn run(command: &mut Command) -> Output {
    let running = command.kill_on_drop(true).output();
    tokio::time::timeout(Duration::from_secs(180), running)
        .await
        .expect("the script ends within 3 minutes")
        .expect("the script starts")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Anvil on chain 84532 with the token at USDC's address and the payer
/// (account 1) holding 50 USDC.
struct Chain {
    anvil: Anvil,
    token: Address,
}

impl Chain {
    async fn start(binary: &str) -> Self {
        let anvil = Anvil::start(binary, anvil::BASE_SEPOLIA).await;
        let token: Address = anvil::USDC.parse().expect("USDC address");
        anvil.install_token(token).await;
        anvil
            .mint(token, anvil::account(1), U256::from(MINTED))
            .await;
        Self { anvil, token }
    }

    /// faregate's settler: gas from account 0, one confirmation.
    fn settler(&self) -> Arc<dyn Settler> {
        let config = ChainConfig {
            rpc_url: self.anvil.url.clone(),
            network: NETWORK.into(),
            signer_key: anvil::KEYS[0].into(),
            confirmations: 1,
            gas_limit: None,
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(20),
        };
        Arc::new(ChainSettler::new(config).expect("chain settler"))
    }

    /// The payer's and the payee's (account 2) token balances.
    async fn balances(&self) -> (U256, U256) {
        let payer = self.anvil.balance_of(self.token, anvil::account(1)).await;
        let payee = self.anvil.balance_of(self.token, anvil::account(2)).await;
        (payer, payee)
    }
}

/// A route at 0.01 USD paid in the test token to account 2.
fn config(up: &Upstream) -> String {
    let (name, version) = anvil::TOKEN_DOMAIN;
    format!(
        r#"
[[routes]]
name = "paid"
path = "/paid/*"
upstreams = ["{up}"]
strip_prefix = "/paid"
price = "0.01 USD"
access = ["x402"]
[routes.x402]
description = "paid on a local chain"
[[routes.x402.offers]]
network = "{NETWORK}"
asset = "{usdc}"
name = "{name}"
version = "{version}"
pay_to = "{pay_to}"
max_timeout_seconds = 60
"#,
        up = up.url(),
        usdc = anvil::USDC,
        pay_to = anvil::account(2),
    )
}

/// A gateway in front of a loopback upstream, settling with `settler`.
struct Paid {
    gw: TestGateway,
    store: Arc<dyn Store>,
    _up: Upstream,
}

impl Paid {
    async fn start(test_store: &TestStore, settler: Arc<dyn Settler>) -> Self {
        let store = test_store.open().await;
        let up = Upstream::start().await;
        let clock = Arc::new(SystemClock);
        let gw = TestGateway::start_x402(&config(&up), store.clone(), settler, clock).await;
        Self { gw, store, _up: up }
    }

    /// The ledger's payments.
    async fn payments(&self) -> Vec<faregate_store::TransactionRecord> {
        let query = LedgerQuery {
            kind: Some(TxKind::Payment),
            limit: 100,
            ..LedgerQuery::default()
        };
        self.store.ledger(&query).await.expect("ledger")
    }

    async fn send(&self, path: &str, payment: Option<&str>) -> Reply {
        let mut req = http::Request::get(self.gw.url(path));
        if let Some(payment) = payment {
            req = req.header("payment-signature", payment);
        }
        let req = req.body(http_body_util::Full::default()).expect("request");
        Client::http1().send(req).await
    }

    async fn close(self) {
        self.gw.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_pays_a_route_on_chain_and_the_ledger_keeps_the_hash() {
    let test = "the_official_python_client_pays";
    let Some(interop) = Interop::from_env(test) else {
        return;
    };
    let chain = Chain::start(&interop.anvil).await;
    let key = anvil::KEYS[1];
    for test_store in TestStore::each(test).await {
        let paid = Paid::start(&test_store, chain.settler()).await;
        let backend = paid.store.backend();
        let url = paid.gw.url("/paid/weather?city=Lisbon");
        let before = chain.balances().await;
        let reply = interop.run("pay.py", &[&url, "--key", key]).await;
        let hash = assert_paid_on_chain(&chain, &reply, before).await;
        let posted = paid.payments().await;
        assert_eq!(posted.len(), 1, "{backend}");
        assert_eq!(posted[0].tx.reference, hash, "{backend}");
        let memo = posted[0].tx.memo.as_deref().expect("memo");
        let memo: Value = serde_json::from_str(memo).expect("JSON memo");
        assert_eq!(memo["transaction"], hash);
        assert_eq!(memo["payer"], format!("{:#x}", anvil::account(1)));
        assert_eq!(memo["amount"], PRICE.to_string());
        eprintln!("{backend}: paid by the official client in {hash}");

        // One payment sent twice at once: served and settled once.
        let before = chain.balances().await;
        let both = interop
            .run("pay.py", &[&url, "--key", key, "--twice"])
            .await;
        let both = both.as_array().expect("two results");
        let (won, lost): (Vec<&Value>, _) = both.iter().partition(|r| r["status"] == 200);
        assert_eq!((won.len(), lost.len()), (1, 1), "{backend}: {both:?}");
        assert_eq!(lost[0]["status"], 402, "{backend}: {both:?}");
        let hash = assert_paid_on_chain(&chain, won[0], before).await;
        let posted = paid.payments().await;
        assert_eq!(posted.len(), 2, "{backend}");
        assert!(posted.iter().any(|p| p.tx.reference == hash), "{backend}");
        assert!(
            paid.store.verify().await.expect("verify").is_sound(),
            "{backend}"
        );
        paid.close().await;
    }
}

/// `reply` (pay.py's) is a 200 whose `PAYMENT-RESPONSE` names a mined
/// transfer that moved exactly the price from the payer to the payee
/// since `before`; its hash.
async fn assert_paid_on_chain(chain: &Chain, reply: &Value, before: (U256, U256)) -> String {
    assert_eq!(reply["status"], 200, "{reply}");
    let settled = &reply["payment_response"];
    assert_eq!(settled["success"], true, "{reply}");
    assert_eq!(settled["network"], NETWORK);
    let hash = settled["transaction"].as_str().expect("a transaction");
    assert!(hash.len() == 66 && hash.starts_with("0x"), "{hash}");
    let receipt = chain.anvil.receipt(hash).await.expect("mined");
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let after = chain.balances().await;
    let price = U256::from(PRICE);
    assert_eq!(after.0, before.0 - price, "the payer paid the price");
    assert_eq!(after.1, before.1 + price, "the payee got the price");
    hash.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_probe_passes_the_route() {
    let test = "the_conformance_probe_passes_the_route";
    if Interop::from_env(test).is_none() {
        return;
    }
    // One unpaid GET: nothing settles, so a facilitator double will do.
    let double = FacilitatorDouble::start(SettleScript::Succeed).await;
    let settler = FacilitatorClient::new(&double.url(), Duration::from_secs(5)).expect("client");
    let test_store = TestStore::sqlite();
    let paid = Paid::start(&test_store, Arc::new(settler)).await;
    let url = paid.gw.url("/paid/weather");
    let output = run(Command::new("bash")
        .arg(format!("{INTEROP}conformance.sh"))
        .arg(&url))
    .await;
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "x402conf resource {url} --fail-on-error: {report}\n{}",
        stderr(&output)
    );
    let report: Value = serde_json::from_str(&report).expect("x402conf's JSON report");
    let checks: Vec<&Value> = report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["checks"].as_array().into_iter().flatten())
        .collect();
    assert!(checks.len() >= 7, "P1 to P7 ran: {report}");
    for check in checks {
        assert_eq!(check["pass"], true, "{check}");
    }
    assert!(double.settles().is_empty());
    paid.close().await;
}

/// faregate as the facilitator of another x402 server: `/x402/supported`
/// graded by `x402conf live`, `/x402/verify` and `/x402/settle` driven by a
/// facilitator client, settled on chain once; and, with `check_chain`, a
/// payment the chain would refuse (an unfunded payer) refused before the
/// upstream is called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faregate_serves_as_a_facilitator_and_checks_the_chain_before_forwarding() {
    let test = "faregate_serves_as_a_facilitator";
    let Some(interop) = Interop::from_env(test) else {
        return;
    };
    let chain = Chain::start(&interop.anvil).await;
    let up = Upstream::start().await;
    let text = format!(
        "[x402]\nsettlement = \"chain\"\nrpc_url = \"{rpc}\"\nsigner_key = \"{key}\"\n\
         facilitator = true\ncheck_chain = true\n{route}",
        rpc = chain.anvil.url,
        key = anvil::KEYS[0],
        route = config(&up),
    );
    let test_store = TestStore::each(test).await.remove(0);
    let store = test_store.open().await;
    let settler = chain.settler();
    let gw = TestGateway::start_x402_checked(
        &text,
        store.clone(),
        settler.clone(),
        Some(settler),
        Arc::new(SystemClock),
    )
    .await;

    // `/supported`, graded by the conformance suite's facilitator checks.
    let x402conf = Path::new(&interop.python).with_file_name("x402conf");
    let graded =
        run(Command::new(&x402conf).args(["live", &gw.url("/x402"), "--fail-on-error"])).await;
    assert!(
        graded.status.success(),
        "x402conf live: {}\n{}",
        stderr(&graded),
        String::from_utf8_lossy(&graded.stdout)
    );
    let report: Value = serde_json::from_slice(&graded.stdout).expect("x402conf JSON");
    let checks: Vec<&Value> = report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["checks"].as_array().into_iter().flatten())
        .collect();
    assert!(!checks.is_empty(), "{report}");
    assert!(checks.iter().all(|c| c["pass"] == true), "{report}");

    // Another server's payment, verified and settled through faregate.
    let reply = Client::http1().get(&gw.url("/paid/x")).await;
    let required = reply.header("payment-required").expect("402").to_owned();
    let payer = faregate_testkit::x402::Payer::new(anvil::KEYS[1]);
    let header = payer.pay(&required, now(), |_| {});
    let payload: faregate_x402::wire::PaymentPayload =
        faregate_x402::wire::decode_header(&header).unwrap();
    let request = faregate_x402::wire::FacilitatorRequest {
        x402_version: 2,
        payment_requirements: payload.accepted.clone(),
        payment_payload: payload,
    };
    let facilitator =
        FacilitatorClient::new(&gw.url("/x402"), Duration::from_secs(10)).expect("client");
    let verdict = facilitator.verify(&request).await.expect("verify");
    assert!(verdict.is_valid, "{verdict:?}");
    let before = chain.balances().await;
    let settled = facilitator.settle(&request).await;
    assert!(settled.success, "{settled:?}");
    assert!(settled.transaction.starts_with("0x"));
    let after = chain.balances().await;
    assert_eq!(before.0 - after.0, U256::from(PRICE));
    assert_eq!(after.1 - before.1, U256::from(PRICE));
    // Once only: the same payment again is refused, and nothing moves.
    let again = facilitator.settle(&request).await;
    assert!(!again.success);
    assert_eq!(
        again.error_reason.as_deref(),
        Some("invalid_exact_evm_nonce_already_used")
    );
    assert_eq!(chain.balances().await, after);
    // Not our money: the facilitator writes no ledger transaction.
    let payments = store
        .ledger(&LedgerQuery {
            kind: Some(TxKind::Payment),
            limit: 10,
            ..LedgerQuery::default()
        })
        .await
        .unwrap();
    assert!(payments.is_empty());

    // check_chain: an unfunded payer (account 3) is refused before the
    // upstream sees the request.
    let broke = faregate_testkit::x402::Payer::new(anvil::KEYS[3]);
    let header = broke.pay(&required, now(), |_| {});
    let calls = up.requests();
    let reply = Client::http1()
        .send(
            http::Request::get(gw.url("/paid/x"))
                .header("payment-signature", header)
                .body(http_body_util::Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        reply.text()
    );
    assert_eq!(
        reply.json()["reason"],
        "invalid_exact_evm_insufficient_balance"
    );
    assert_eq!(up.requests(), calls, "not forwarded");
    gw.shutdown().await;
    drop(test_store);
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}
