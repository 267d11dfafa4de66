//! The credits rail end to end: real HTTP through the gateway, a real store
//! (SQLite file, and PostgreSQL when `FAREGATE_TEST_DATABASE_URL` is set),
//! money reserved before forwarding and never overspent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use faregate_core::{Currency, LlmLimits, Money};
use faregate_rails::credits::{Credits, KeyRequest, TopUp};
use faregate_store::{Account, LedgerAccount, Store, TxKind};
use faregate_testkit::{Client, TestGateway, TestStore, Upstream};
use http::Request;
use http_body_util::Full;

/// Every route costs 0.001 USD.
const PRICE: u64 = 1_000;

fn config(up: &Upstream, extra: &str) -> String {
    let u = up.url();
    format!(
        r#"
[credits]
top_up_url = "https://billing.example.com/top-up?account={{account}}"

[[routes]]
name = "paid"
path = "/paid/*"
upstreams = ["{u}"]
strip_prefix = "/paid"
price = "0.001 USD"

[[routes]]
name = "lenient"
path = "/lenient/*"
upstreams = ["{u}"]
strip_prefix = "/lenient"
price = "0.001 USD"
charge = "non_5xx"

[[routes]]
name = "strict"
path = "/always/*"
upstreams = ["{u}"]
strip_prefix = "/always"
price = "0.001 USD"
charge = "always"

[[routes]]
name = "euro"
path = "/euro"
upstreams = ["{u}"]
price = "0.001 EUR"
{extra}"#
    )
}

struct Setup {
    gw: TestGateway,
    up: Upstream,
    store: Arc<dyn Store>,
    account: String,
    key: String,
    _test_store: TestStore,
}

impl Setup {
    async fn start(test_store: TestStore, balance: u64, extra: &str) -> Self {
        Self::start_on(test_store, balance, extra, None).await
    }

    /// Serving on `workers` data-plane threads, or where accepted.
    async fn start_on(
        test_store: TestStore,
        balance: u64,
        extra: &str,
        workers: Option<usize>,
    ) -> Self {
        let up = Upstream::start().await;
        let store = test_store.open().await;
        let (config, flush) = (config(&up, extra), Duration::from_millis(10));
        let gw = match workers {
            None => TestGateway::start_paid(&config, store.clone(), flush).await,
            Some(n) => TestGateway::start_paid_on_workers(&config, store.clone(), flush, n).await,
        };
        let credits = gw.credits.clone().unwrap();
        let account = new_account(&credits, balance).await;
        let key = key_for(&credits, &account, None, None).await;
        Self {
            gw,
            up,
            store,
            account,
            key,
            _test_store: test_store,
        }
    }

    fn credits(&self) -> &Arc<Credits> {
        self.gw.credits.as_ref().unwrap()
    }

    fn get(&self, path: &str, key: &str) -> Request<Full<Bytes>> {
        Request::get(self.gw.url(path))
            .header("authorization", format!("Bearer {key}"))
            .body(Full::default())
            .unwrap()
    }

    async fn stored_balance(&self) -> i64 {
        self.credits().flush().await.unwrap();
        self.store
            .balance(&LedgerAccount::customer(&self.account), Currency::USD)
            .await
            .unwrap()
    }

    /// Requests charged to the account, as the ledger records them.
    async fn debits(&self) -> usize {
        self.credits().flush().await.unwrap();
        let account = LedgerAccount::customer(&self.account);
        let usage = self.store.usage(&account, None, 10_000).await.unwrap();
        let q = faregate_store::LedgerQuery {
            account: Some(account),
            kind: Some(TxKind::Debit),
            limit: 1000,
            ..Default::default()
        };
        // Batched debits carry exactly the requests' charges.
        let debited: i64 = self
            .store
            .ledger(&q)
            .await
            .unwrap()
            .iter()
            .map(|r| -r.tx.amount_on(&LedgerAccount::customer(&self.account)))
            .sum();
        assert_eq!(debited, usage.iter().map(|(_, u)| u.amount).sum::<i64>());
        usage.len()
    }
}

async fn new_account(credits: &Credits, balance: u64) -> String {
    new_account_in(credits, balance, Currency::USD).await
}

async fn new_account_in(credits: &Credits, balance: u64, currency: Currency) -> String {
    let id = faregate_store::new_id("acct");
    credits
        .create_account(&Account {
            id: id.clone(),
            name: "test".into(),
            currency,
            created_at: 0,
            budget: None,
        })
        .await
        .unwrap();
    if balance > 0 {
        credits
            .top_up(TopUp {
                account_id: id.clone(),
                amount: Money::from_atomic(balance, currency),
                idempotency_key: format!("opening:{id}"),
                reference: "test".into(),
                reason: None,
                fingerprint: None,
            })
            .await
            .unwrap();
    }
    id
}

async fn key_for(
    credits: &Credits,
    account: &str,
    routes: Option<Vec<String>>,
    expires_at: Option<i64>,
) -> String {
    credits
        .issue_key(KeyRequest {
            account_id: account.to_owned(),
            live: true,
            routes,
            models: None,
            limits: LlmLimits::default(),
            expires_at,
        })
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn two_hundred_parallel_requests_against_37_calls_admit_exactly_37() {
    // Served on the test's runtime, and spread over two worker threads as
    // the binary serves them.
    for workers in [None, Some(2)] {
        for test_store in TestStore::each("parallel_overspend").await {
            let backend = format!("{}, workers {workers:?}", test_store.backend);
            let s = Arc::new(Setup::start_on(test_store, 37 * PRICE, "", workers).await);
            let tasks: Vec<_> = (0..200)
                .map(|_| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        // A connection each, and an upstream slow enough that
                        // the requests are all in flight together.
                        Client::http1().send(s.get("/paid/slow/50", &s.key)).await
                    })
                })
                .collect();
            let (mut ok, mut refused) = (0, 0);
            for t in tasks {
                let reply = t.await.unwrap();
                match reply.status.as_u16() {
                    200 => ok += 1,
                    402 => {
                        assert_eq!(reply.json()["code"], "insufficient_credits");
                        refused += 1;
                    }
                    other => panic!("{backend}: unexpected {other}: {}", reply.text()),
                }
            }
            assert_eq!((ok, refused), (37, 163), "{backend}");
            assert_eq!(
                s.up.requests(),
                37,
                "{backend}: refused requests never reach the upstream"
            );
            assert_eq!(s.stored_balance().await, 0, "{backend}");
            assert_eq!(s.debits().await, 37, "{backend}");
            let report = s.store.verify().await.unwrap();
            assert!(report.is_sound(), "{backend}: {report:?}");
        }
    }
}

#[tokio::test]
async fn the_402_says_what_it_costs_what_is_left_and_where_to_top_up() {
    let s = Setup::start(TestStore::sqlite(), 1_500, "").await;
    let c = Client::http1();
    assert_eq!(c.send(s.get("/paid/x", &s.key)).await.status, 200);
    let refused = c.send(s.get("/paid/x", &s.key)).await;
    assert_eq!(refused.status, 402);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(refused.header("cache-control"), Some("no-store"));
    let p = refused.json();
    assert_eq!(p["code"], "insufficient_credits");
    assert_eq!(p["price"], "0.001");
    assert_eq!(p["balance"], "0.0005");
    assert_eq!(p["currency"], "USD");
    assert_eq!(p["actions"][0]["kind"], "top_up");
    assert_eq!(
        p["actions"][0]["url"],
        format!("https://billing.example.com/top-up?account={}", s.account)
    );
    // Paying fixes it: a top-up makes the same request pass.
    s.credits()
        .top_up(TopUp {
            account_id: s.account.clone(),
            amount: Money::from_atomic(PRICE, Currency::USD),
            idempotency_key: "more".into(),
            reference: "t".into(),
            reason: None,
            fingerprint: None,
        })
        .await
        .unwrap();
    assert_eq!(c.send(s.get("/paid/x", &s.key)).await.status, 200);
    assert_eq!(s.stored_balance().await, 500);
}

#[tokio::test]
async fn charge_policies_decide_what_is_charged_and_gateway_failures_never_are() {
    let dead = faregate_testkit::dead_port().await;
    let extra = format!(
        "\n[[routes]]\nname = \"down\"\npath = \"/down\"\nupstreams = [\"http://{dead}\"]\nprice = \"0.001 USD\"\ncharge = \"always\"\n"
    );
    let s = Setup::start(TestStore::sqlite(), 100 * PRICE, &extra).await;
    let c = Client::http1();
    let mut expected_charges = 0;
    for (path, status, charged) in [
        ("/paid/status/200", 200, true),
        ("/paid/status/404", 404, false),
        ("/paid/status/500", 500, false),
        ("/lenient/status/404", 404, true),
        ("/lenient/status/503", 503, false),
        ("/always/status/500", 500, true),
        ("/down", 502, false),
    ] {
        let reply = c.send(s.get(path, &s.key)).await;
        assert_eq!(reply.status, status, "{path}");
        if charged {
            expected_charges += 1;
        }
        let log = s.gw.log_line(|l| l["path"] == path).await;
        assert_eq!(log["charge"].is_string(), charged, "{path}: {log}");
    }
    assert_eq!(s.debits().await, expected_charges);
    assert_eq!(
        s.stored_balance().await,
        (100 - expected_charges as i64) * PRICE as i64
    );
    assert!(s.store.verify().await.unwrap().is_sound());
}

#[tokio::test]
async fn revocation_takes_effect_at_once_here_and_within_a_second_from_elsewhere() {
    let s = Setup::start(TestStore::sqlite(), 100 * PRICE, "").await;
    let c = Client::http1();
    assert_eq!(c.send(s.get("/paid/x", &s.key)).await.status, 200);
    // Through this gateway (the admin API's path): the very next request.
    let key_id = s.store.keys(&s.account).await.unwrap()[0].id.clone();
    s.credits().revoke_key(&key_id, 1).await.unwrap();
    let refused = c.send(s.get("/paid/x", &s.key)).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["code"], "invalid_api_key");

    // Through the store alone, as `faregate keys revoke` does from another
    // process: the gateway notices within a second.
    let second = key_for(s.credits(), &s.account, None, None).await;
    assert_eq!(c.send(s.get("/paid/x", &second)).await.status, 200);
    let other_id = s
        .store
        .keys(&s.account)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.revoked_at.is_none())
        .unwrap()
        .id;
    let revoked_at = Instant::now();
    s.store.revoke_key(&other_id, 2).await.unwrap();
    loop {
        let status = c.send(s.get("/paid/x", &second)).await.status;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "a revoked key still passes after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn money_paid_in_by_another_process_is_spendable_within_a_second() {
    let s = Setup::start(TestStore::sqlite(), 0, "").await;
    let c = Client::http1();
    assert_eq!(c.send(s.get("/paid/x", &s.key)).await.status, 402);
    let paid_in = Instant::now();
    faregate_rails::credits::top_up(
        &*s.store,
        TopUp {
            account_id: s.account.clone(),
            amount: Money::from_atomic(PRICE, Currency::USD),
            idempotency_key: "cli".into(),
            reference: "cli".into(),
            reason: None,
            fingerprint: None,
        },
    )
    .await
    .unwrap();
    while c.send(s.get("/paid/x", &s.key)).await.status == 402 {
        assert!(paid_in.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.stored_balance().await, 0);
}

#[tokio::test]
async fn scoped_expired_and_foreign_currency_keys_are_refused_without_charge() {
    let s = Setup::start(TestStore::sqlite(), 100 * PRICE, "").await;
    let c = Client::http1();
    let scoped = key_for(s.credits(), &s.account, Some(vec!["lenient".into()]), None).await;
    let refused = c.send(s.get("/paid/x", &scoped)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["code"], "key_not_allowed");
    assert_eq!(c.send(s.get("/lenient/x", &scoped)).await.status, 200);

    let expired = key_for(s.credits(), &s.account, None, Some(1_000)).await;
    let refused = c.send(s.get("/paid/x", &expired)).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["code"], "expired_api_key");

    let euro_account = new_account_in(s.credits(), 0, Currency::from_code("EUR").unwrap()).await;
    let euro_key = key_for(s.credits(), &euro_account, None, None).await;
    let refused = c.send(s.get("/paid/x", &euro_key)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["code"], "currency_mismatch");
    // A USD account on a EUR route: the same.
    let refused = c.send(s.get("/euro", &s.key)).await;
    assert_eq!(refused.json()["code"], "currency_mismatch");
    assert_eq!(s.debits().await, 1, "only the lenient call was charged");
}

#[tokio::test]
async fn a_caller_who_leaves_mid_response_is_not_charged() {
    let s = Setup::start(TestStore::sqlite(), 100 * PRICE, "").await;
    let response = Client::http1().stream(s.get("/paid/stall", &s.key)).await;
    assert_eq!(response.status(), 200);
    drop(response);
    let line = s.gw.log_line(|l| l["path"] == "/paid/stall").await;
    assert!(line["charge"].is_null(), "{line}");
    assert_eq!(s.debits().await, 0);
    assert_eq!(
        s.credits().spendable(&s.account).unwrap().atomic(),
        100 * PRICE
    );
}

#[tokio::test]
async fn a_second_node_on_the_same_store_sees_the_first_ones_spending_within_seconds() {
    for test_store in TestStore::each("two_nodes").await {
        let backend = test_store.backend;
        let first = Setup::start(test_store, 10 * PRICE, "").await;
        let second = TestGateway::start_paid(
            &config(&first.up, ""),
            first._test_store.open().await,
            Duration::from_millis(10),
        )
        .await;
        let c = Client::http1();
        for _ in 0..6 {
            assert_eq!(c.send(first.get("/paid/x", &first.key)).await.status, 200);
        }
        first.credits().flush().await.unwrap();
        let spent_at = Instant::now();
        let second_credits = second.credits.clone().unwrap();
        while second_credits.spendable(&first.account).unwrap().atomic() != 4 * PRICE {
            assert!(
                spent_at.elapsed() < Duration::from_secs(7),
                "{backend}: the second node never saw the first one's debits"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The second node now admits only what is left.
        let key = first.key.clone();
        let second_get = |path: &str| {
            Request::get(second.url(path))
                .header("authorization", format!("Bearer {key}"))
                .body(Full::<Bytes>::default())
                .unwrap()
        };
        for _ in 0..4 {
            assert_eq!(c.send(second_get("/paid/x")).await.status, 200);
        }
        assert_eq!(c.send(second_get("/paid/x")).await.status, 402, "{backend}");
        second.shutdown().await;
    }
}
