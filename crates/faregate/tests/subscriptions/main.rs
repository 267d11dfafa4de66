//! One subscriber's whole life on a fake clock, driven only by webhooks
//! signed with Stripe's own library (npm `stripe`,
//! `webhooks.generateTestHeaderString`), by the subscriber's requests and by
//! the operator's admin API (which starts the trial and links the card
//! processor's customer): trial, trial ending notice, trial expired, payment method attached,
//! activate, quota at 80 %, quota exhausted, overage from credits, period
//! rollover, payment failed (grace, warning header), grace over, invoice
//! paid, canceled, expired. Forged, stale, replayed and reordered webhooks
//! are tried on the way; none changes state.
//!
//! The signer needs node and npm `stripe` (`interop/stripe/install.sh`
//! prints where it puts it; `.ci/run` sets `FAREGATE_STRIPE_NODE_PATH`).
//! Without them the test says it is skipped.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use faregate_core::{Clock, Currency, FakeClock, LlmLimits, Money};
use faregate_rails::credits::KeyRequest;
use faregate_store::{Account, DocumentKind, Store};
use faregate_testkit::{Client, Reply, TestGateway, TestStore, Upstream};
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};

mod walk;

const SECRET: &str = "whsec_lifecycle_test_secret";
const ADMIN_TOKEN: &str = "admin-token-for-the-lifecycle";
const CUSTOMER: &str = "cus_lifecycle";
/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600 * 1_000_000_000;
const DAY: Duration = Duration::from_secs(86_400);

fn config(up: &Upstream) -> String {
    let u = up.url();
    format!(
        r#"
[admin]
token = "{ADMIN_TOKEN}"

[store]
url = "sqlite::memory:"
flush_interval = "5ms"

[credits]
top_up_url = "https://pay.example/top-up/{{account}}"

[billing]
stripe_webhook_secrets = ["{SECRET}"]
trial_ending_notice = "3d"
payment_method_url = "https://pay.example/payment-method"

[[plans]]
id = "pro"
price = "29.00 USD"
trial = "14d"
grace = "3d"
routes = ["api"]
overage_unit_price = "0.01 USD"

[[plans.quotas]]
group = "calls"
routes = ["api"]
included = 10

[[plans]]
id = "max"
price = "99.00 USD"
routes = ["api", "premium"]

[[routes]]
name = "api"
path = "/api/*"
upstreams = ["{u}"]
access = "api_key"

[[routes]]
name = "premium"
path = "/premium"
upstreams = ["{u}"]
access = "api_key"
"#
    )
}

/// npm `stripe` signing payloads, one line in and one line out.
struct Signer {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Signer {
    fn start() -> Option<Self> {
        let node_path = std::env::var("FAREGATE_STRIPE_NODE_PATH").ok()?;
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../interop/stripe/signer.js"
        );
        let mut child = Command::new("node")
            .arg(script)
            .env("NODE_PATH", node_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let stdout = BufReader::new(child.stdout.take()?);
        Some(Self {
            _child: child,
            stdin,
            stdout,
        })
    }

    fn sign(&mut self, payload: &str, secret: &str, timestamp: u64) -> String {
        let line = json!({"payload": payload, "secret": secret, "timestamp": timestamp});
        writeln!(self.stdin, "{line}").expect("write to the signer");
        let mut header = String::new();
        self.stdout.read_line(&mut header).expect("read the signer");
        assert!(header.starts_with("t="), "signer said {header:?}");
        header.trim_end().to_owned()
    }
}

/// The admin listener on a loopback port, over the gateway's rails.
struct AdminApi {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl AdminApi {
    async fn start(gw: &TestGateway) -> Self {
        let router = faregate_admin::builder(gw.gw.clone())
            .credits(gw.credits.clone().unwrap())
            .plans(gw.plans.clone().unwrap())
            .build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(faregate_admin::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Self { base, stop, served }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.served.await.unwrap().unwrap();
    }
}

struct Life {
    gw: TestGateway,
    admin: AdminApi,
    store: Arc<dyn Store>,
    clock: Arc<FakeClock>,
    signer: Mutex<Signer>,
    account: String,
    key: String,
    client: Client,
    events: std::sync::atomic::AtomicU64,
}

impl Life {
    fn now_secs(&self) -> u64 {
        self.clock.now() / 1_000_000_000
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.plans().tick_all().await;
        self.plans().flush().await;
    }

    fn plans(&self) -> &Arc<faregate_rails::plans::Plans> {
        self.gw.plans.as_ref().unwrap()
    }

    async fn call(&self, path: &str) -> Reply {
        let req = Request::get(self.gw.url(path))
            .header("authorization", format!("Bearer {}", self.key))
            .body(Full::default())
            .unwrap();
        self.client.send(req).await
    }

    async fn billing(&self, method: &str, path: &str, body: &str) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(self.gw.url(path))
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        self.client.send(req).await
    }

    /// A new event of `kind` about `object`, created `created` seconds
    /// after T0 (now when `None`).
    fn event(&self, kind: &str, object: Value, created: Option<u64>) -> String {
        let n = self
            .events
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let created = created.map_or(self.now_secs(), |c| T0 / 1_000_000_000 + c);
        json!({
            "id": format!("evt_lifecycle_{n}"),
            "object": "event",
            "type": kind,
            "created": created,
            "data": {"object": object},
        })
        .to_string()
    }

    /// `method path` on the admin API, with the admin token.
    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.admin.base))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        self.client.send(req.body(Full::new(body)).unwrap()).await
    }

    async fn deliver(&self, payload: &str) -> Reply {
        let header = self
            .signer
            .lock()
            .unwrap()
            .sign(payload, SECRET, self.now_secs());
        self.deliver_signed(payload, &header).await
    }

    async fn deliver_signed(&self, payload: &str, header: &str) -> Reply {
        let req = Request::post(self.gw.url("/webhooks/stripe"))
            .header("stripe-signature", header)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload.to_owned())))
            .unwrap();
        self.client.send(req).await
    }

    async fn subscription(&self) -> Value {
        let reply = self.billing("GET", "/billing/subscription", "").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    /// The types of the notifications in the outbox, oldest first.
    async fn notifications(&self) -> Vec<String> {
        self.plans().flush().await;
        outbox_types(&*self.store).await
    }
}

fn code(reply: &Reply) -> String {
    reply.json()["code"].as_str().unwrap_or_default().to_owned()
}

fn actions(reply: &Reply) -> Vec<String> {
    reply.json()["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["kind"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn one_subscriber_from_trial_to_expiry() {
    let Some(signer) = Signer::start() else {
        eprintln!(
            "one_subscriber_from_trial_to_expiry: skipped: FAREGATE_STRIPE_NODE_PATH is not set \
             or node is missing (run `export FAREGATE_STRIPE_NODE_PATH=$(bash interop/stripe/install.sh)`)"
        );
        return;
    };
    for test_store in TestStore::each("subscription_lifecycle").await {
        walk::lifecycle(&test_store, Signer::start().expect("signer")).await;
    }
    drop(signer);
}

async fn outbox_types(store: &dyn Store) -> Vec<String> {
    let mut events = store.notification_events(None, 1000).await.unwrap();
    events.reverse();
    events.into_iter().map(|e| e.kind).collect()
}
