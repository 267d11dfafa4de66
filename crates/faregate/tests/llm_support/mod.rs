//! What the LLM tests share: a gateway with an `llm` route in front of the
//! provider double, an account with a key, and the ledger's charges.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use faregate_core::{Currency, LlmLimits, Money};
use faregate_rails::credits::{Credits, KeyRequest, TopUp};
use faregate_store::{Account, LedgerAccount, Store};
use faregate_testkit::{Client, Reply, TestGateway, TestStore};
use http::Request;
use http_body_util::Full;
use serde_json::Value;

/// The catalog's prices in atomic USD (6 decimals) per token: "1" per
/// million input, "0.5" cached, "2" output.
pub struct Prices;

pub const PRICES: Prices = Prices;

impl Prices {
    /// The exact charge, in atomic units: (uncached + cached/2 + 2·output)
    /// millionths of a dollar per token... which is what the catalog says,
    /// rounded up once.
    pub fn cost(&self, input: u64, cached: u64, output: u64) -> u64 {
        // Sub-atomic: twice the atomic units, so cached halves stay exact.
        let halves = 2 * (input - cached) + cached + 4 * output;
        halves.div_ceil(2)
    }
}

pub fn config(double: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[llm.providers.double]
kind = "openai"
base_url = "http://{double}/v1"
api_key = "sk-double"

[llm.providers.claude]
kind = "anthropic"
base_url = "http://{double}/v1"
api_key = "sk-double"

[[llm.models]]
name = "test-model"
aliases = ["test-alias"]
input = "1"
cached_input = "0.5"
output = "2"
max_output_tokens = 200
providers = [{{ provider = "double" }}]

[[llm.models]]
name = "fallback-model"
input = "1"
cached_input = "0.5"
output = "2"
providers = [{{ provider = "double", model = "fail-503" }}, {{ provider = "double", model = "test-model" }}]

[[llm.models]]
name = "broken-model"
input = "1"
output = "2"
max_output_tokens = 10
providers = [{{ provider = "double", model = "fail-500" }}]

[[llm.models]]
name = "slow-model"
input = "1"
cached_input = "0.5"
output = "2"
max_output_tokens = 200
providers = [{{ provider = "double", model = "double-slow" }}]

[[llm.models]]
name = "claude-test"
input = "1"
cached_input = "0.5"
output = "2"
max_output_tokens = 200
providers = [{{ provider = "claude" }}]

[[llm.models]]
name = "limited-model"
input = "1"
output = "2"
max_output_tokens = 10
providers = [{{ provider = "double", model = "fail-429" }}]

[[llm.models]]
name = "claude-overloaded"
input = "1"
output = "2"
max_output_tokens = 10
providers = [{{ provider = "claude", model = "fail-529" }}]

[[routes]]
name = "llm"
path = "/v1/*"
kind = "llm"
{extra}
"#
    )
}

pub struct Setup {
    pub gw: TestGateway,
    pub double: SocketAddr,
    pub store: Arc<dyn Store>,
    pub account: String,
    pub key: String,
    _test_store: TestStore,
}

impl Setup {
    /// A gateway and an account holding `balance` atomic USD.
    pub async fn start(balance: u64, extra: &str) -> Self {
        Self::start_on(TestStore::sqlite(), balance, extra).await
    }

    pub async fn start_on(test_store: TestStore, balance: u64, extra: &str) -> Self {
        let double = faregate_llm_double::spawn(faregate_llm_double::Options {
            api_key: Some("sk-double".into()),
            ..Default::default()
        })
        .expect("start the double");
        let store = test_store.open().await;
        let gw = TestGateway::start_paid(
            &config(double, extra),
            store.clone(),
            Duration::from_millis(10),
        )
        .await;
        let credits = gw.credits.clone().unwrap();
        let account = faregate_store::new_id("acct");
        credits
            .create_account(&Account {
                id: account.clone(),
                name: "llm".into(),
                currency: Currency::USD,
                created_at: 0,
                budget: None,
            })
            .await
            .unwrap();
        if balance > 0 {
            credits
                .top_up(TopUp {
                    account_id: account.clone(),
                    amount: Money::from_atomic(balance, Currency::USD),
                    idempotency_key: format!("opening:{account}"),
                    reference: "test".into(),
                    reason: None,
                    fingerprint: None,
                })
                .await
                .unwrap();
        }
        let mut s = Self {
            gw,
            double,
            store,
            account,
            key: String::new(),
            _test_store: test_store,
        };
        s.key = s.key_with(None, LlmLimits::default()).await;
        s
    }

    pub fn credits(&self) -> &Arc<Credits> {
        self.gw.credits.as_ref().unwrap()
    }

    /// A new key on the account.
    pub async fn key_with(&self, models: Option<Vec<String>>, limits: LlmLimits) -> String {
        self.credits()
            .issue_key(KeyRequest {
                account_id: self.account.clone(),
                live: true,
                routes: None,
                models,
                limits,
                expires_at: None,
            })
            .await
            .unwrap()
            .0
    }

    pub fn request(&self, path: &str, key: &str, body: &Value) -> Request<Full<Bytes>> {
        Request::post(self.gw.url(path))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Reply {
        Client::http1().send(self.request(path, key, body)).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        let req = Request::get(self.gw.url(path))
            .header("authorization", format!("Bearer {key}"))
            .body(Full::default())
            .unwrap();
        Client::http1().send(req).await
    }

    /// The double's own answer to `body` (the model name as the catalog
    /// maps `test-model`: the same).
    pub async fn direct(&self, path: &str, body: &Value) -> Value {
        let req = Request::post(format!("http://{}{path}", self.double))
            .header("authorization", "Bearer sk-double")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        Client::http1().send(req).await.json()
    }

    pub async fn double_stats(&self) -> Value {
        Client::http1()
            .get(&format!("http://{}/_double/stats", self.double))
            .await
            .json()
    }

    /// The per-request charges the ledger holds for the account, in atomic
    /// units, oldest first.
    pub async fn charged(&self) -> Vec<u64> {
        // Settlement runs when the body ends, a moment after the client has it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.credits().flush().await.unwrap();
        let account = LedgerAccount::customer(&self.account);
        let mut usage = self.store.usage(&account, None, 10_000).await.unwrap();
        usage.reverse();
        usage
            .iter()
            .map(|(_, u)| u64::try_from(u.amount).unwrap())
            .collect()
    }

    pub async fn balance(&self) -> i64 {
        self.credits().flush().await.unwrap();
        self.store
            .balance(&LedgerAccount::customer(&self.account), Currency::USD)
            .await
            .unwrap()
    }
}

/// The `data:` payloads of an SSE text, in order.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}
