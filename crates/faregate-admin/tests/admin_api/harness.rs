//! The admin listener on 127.0.0.1:0 over a real store, a request builder,
//! and the checks every test repeats: a refusal is a problem document and
//! writes nothing.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use faregate_core::SystemClock;
use faregate_gateway::Gateway;
use faregate_rails::credits::{Credits, CreditsConfig};
use faregate_rails::plans::Plans;
use faregate_store::{LedgerQuery, Store};
use faregate_testkit::{Client, Reply, TestStore};
use http_body_util::Full;
use serde_json::Value;
use tokio::sync::oneshot;

pub(crate) const TOKEN: &str = "admin-token-for-tests";

/// A config with the admin token and two routes keys may be limited to.
pub(crate) fn config(admin: &str) -> String {
    format!(
        r#"{admin}
[store]
url = "sqlite::memory:"

[[routes]]
name = "search"
path = "/search"
upstreams = ["http://127.0.0.1:9"]

[[routes]]
name = "chat"
path = "/chat"
upstreams = ["http://127.0.0.1:9"]
"#
    )
}

/// Two plans over the routes of [`config`]: `pro` with a trial and a
/// quota, `max` without either.
pub(crate) const PLANS: &str = r#"
[[plans]]
id = "pro"
name = "Pro"
price = "29.00 USD"
trial = "14d"
grace = "3d"
routes = ["search"]
overage_unit_price = "0.01 USD"

[[plans.quotas]]
group = "searches"
routes = ["search"]
included = 10

[[plans]]
id = "max"
price = "99.00 USD"
interval = "year"
routes = ["search", "chat"]
"#;

fn compile(config_text: &str) -> faregate_gateway::Config {
    faregate_gateway::config::load(
        config_text,
        Path::new("."),
        &|_| None,
        &[
            faregate_core::RailKind::Credits,
            faregate_core::RailKind::Plans,
        ],
    )
    .unwrap_or_else(|e| panic!("test config: {e}"))
}

fn gateway(config_text: &str) -> Arc<Gateway> {
    Gateway::builder(compile(config_text))
        .build()
        .expect("gateway")
}

/// Runs `scenario` against an admin listener on each database.
pub(crate) async fn each_store(test: &str, scenario: impl AsyncFn(&Admin)) {
    for db in TestStore::each(test).await {
        let admin = Admin::start(&db).await;
        eprintln!("{test} on {}", db.backend);
        scenario(&admin).await;
        admin.stop().await;
    }
}

/// Runs `scenario` against an admin listener with the plans rail selling
/// `plans` (such as [`PLANS`]), on each database.
pub(crate) async fn each_store_with_plans(test: &str, plans: &str, scenario: impl AsyncFn(&Admin)) {
    for db in TestStore::each(test).await {
        let admin = Admin::with_plans(&db, plans).await;
        eprintln!("{test} on {}", db.backend);
        scenario(&admin).await;
        admin.stop().await;
    }
}

/// A running admin listener.
pub(crate) struct Admin {
    base: String,
    client: Client,
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) credits: Option<Arc<Credits>>,
    pub(crate) plans: Option<Arc<Plans>>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Admin {
    /// With the admin token and the credits rail over `db`.
    pub(crate) async fn start(db: &TestStore) -> Self {
        let store = db.open().await;
        let credits = Credits::start(store.clone(), CreditsConfig::default())
            .await
            .expect("start credits");
        let gw = gateway(&config(&format!("[admin]\ntoken = \"{TOKEN}\"")));
        Self::serve(gw, Some(store), Some(credits), None).await
    }

    /// With the admin token, the credits rail and the plans rail selling
    /// `plans` over `db`.
    pub(crate) async fn with_plans(db: &TestStore, plans: &str) -> Self {
        let store = db.open().await;
        let credits = Credits::start(store.clone(), CreditsConfig::default())
            .await
            .expect("start credits");
        let text = format!(
            "{}{plans}",
            config(&format!("[admin]\ntoken = \"{TOKEN}\""))
        );
        let compiled = compile(&text);
        let plans = Plans::start(
            store.clone(),
            credits.clone(),
            Arc::new(SystemClock),
            compiled.plans_config(),
        )
        .await
        .expect("start plans");
        let gw = Gateway::builder(compiled).build().expect("gateway");
        Self::serve(gw, Some(store), Some(credits), Some(plans)).await
    }

    /// Without a store.
    pub(crate) async fn without_store(admin_section: &str) -> Self {
        Self::serve(gateway(&config(admin_section)), None, None, None).await
    }

    async fn serve(
        gw: Arc<Gateway>,
        store: Option<Arc<dyn Store>>,
        credits: Option<Arc<Credits>>,
        plans: Option<Arc<Plans>>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut router = faregate_admin::builder(gw);
        if let Some(credits) = &credits {
            router = router.credits(credits.clone());
        }
        if let Some(plans) = &plans {
            router = router.plans(plans.clone());
        }
        let router = router.build();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(faregate_admin::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            client: Client::http1(),
            store,
            credits,
            plans,
            stop: Some(stop),
            served: Some(served),
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.expect("join").expect("serve");
        }
        if let Some(plans) = &self.plans {
            plans.close().await;
        }
        if let Some(credits) = &self.credits {
            credits.close().await;
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        self.store.as_ref().expect("a store")
    }

    pub(crate) async fn send(&self, r: Req) -> Reply {
        let mut b = http::Request::builder()
            .method(r.method)
            .uri(format!("{}{}", self.base, r.path));
        if let Some(token) = r.token {
            b = b.header("authorization", format!("Bearer {token}"));
        }
        for (k, v) in r.headers {
            b = b.header(k, v);
        }
        if let Some(ct) = r.content_type {
            b = b.header("content-type", ct);
        }
        self.client
            .send(b.body(Full::new(r.body)).expect("request"))
            .await
    }

    /// Sends `r` and checks the answer is `status` JSON.
    pub(crate) async fn ok(&self, r: Req, status: u16) -> Value {
        let what = format!("{} {}", r.method, r.path);
        let reply = self.send(r).await;
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{what}"
        );
        reply.json()
    }

    /// Creates an account in `currency` and returns its id.
    pub(crate) async fn account(&self, currency: &str) -> String {
        let body = serde_json::json!({"name": "Test account", "currency": currency});
        let created = self.ok(Req::post("/v1/accounts").json(&body), 201).await;
        created["id"].as_str().expect("id").to_owned()
    }

    /// Everything the store holds, counted: equal before and after a
    /// refusal means nothing was written.
    pub(crate) async fn written(&self) -> Written {
        let store = self.store();
        let accounts = store.accounts(None, 10_000).await.expect("accounts");
        let mut keys = Vec::new();
        for a in &accounts {
            keys.extend(store.keys(&a.id).await.expect("keys"));
        }
        let query = LedgerQuery {
            limit: 1000,
            ..LedgerQuery::default()
        };
        Written {
            revision: store.revision().await.expect("revision"),
            accounts: accounts.len(),
            keys: keys.len(),
            revoked: keys.iter().filter(|k| k.revoked_at.is_some()).count(),
            transactions: store.ledger(&query).await.expect("ledger").len(),
        }
    }

    /// Sends `r`, checks it is refused with `status` and `code`, and that
    /// the store holds exactly what it held before.
    pub(crate) async fn refuses(&self, r: Req, status: u16, code: &str) -> Value {
        let before = self.written().await;
        let what = format!("{} {}", r.method, r.path);
        let problem = assert_problem(&self.send(r).await, status, code);
        assert_eq!(
            self.written().await,
            before,
            "{what} ({code}) wrote something"
        );
        problem
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Written {
    revision: i64,
    accounts: usize,
    keys: usize,
    revoked: usize,
    transactions: usize,
}

/// Checks `reply` is a problem document with `status` and `code`.
pub(crate) fn assert_problem(reply: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(reply.status, status, "expected {code}: {}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{}",
        reply.text()
    );
    let p = reply.json();
    assert_eq!(p["code"], code, "{p}");
    assert_eq!(p["status"], status, "{p}");
    assert_eq!(p["type"], format!("about:blank#{code}"), "{p}");
    assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
    assert!(p["detail"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
    p
}

/// A request to send.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    method: &'static str,
    path: String,
    token: Option<String>,
    headers: Vec<(String, String)>,
    content_type: Option<String>,
    body: Bytes,
}

impl Req {
    pub(crate) fn new(method: &'static str, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            token: Some(TOKEN.to_owned()),
            headers: Vec::new(),
            content_type: None,
            body: Bytes::new(),
        }
    }

    pub(crate) fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub(crate) fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    pub(crate) fn delete(path: &str) -> Self {
        Self::new("DELETE", path)
    }

    pub(crate) fn put(path: &str) -> Self {
        Self::new("PUT", path)
    }

    /// `POST /v1/accounts/{account}/credits` with an Idempotency-Key.
    pub(crate) fn credit(account: &str, key: &str, body: &Value) -> Self {
        Self::post(&format!("/v1/accounts/{account}/credits"))
            .header("idempotency-key", key)
            .json(body)
    }

    pub(crate) fn json(self, body: &Value) -> Self {
        self.raw("application/json", body.to_string())
    }

    pub(crate) fn raw(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.content_type = Some(content_type.to_owned());
        self.body = body.into();
        self
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }
}
