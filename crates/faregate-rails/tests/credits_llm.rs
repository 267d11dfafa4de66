//! The credits rail's key directory holds each key's LLM models and limits
//! and each account's LLM budget in memory: at once on the node that made
//! the change, and on another node sharing the store within its poll
//! interval. On a SQLite file and, when `FAREGATE_TEST_DATABASE_URL` is
//! set, on a fresh PostgreSQL schema.

use std::sync::Arc;
use std::time::{Duration, Instant};

use faregate_core::{Budget, BudgetPeriod, Currency, LlmLimits, Money};
use faregate_rails::KeyDirectory;
use faregate_rails::credits::{Credits, CreditsConfig, CreditsError, KeyRequest};
use faregate_store::Account;
use faregate_testkit::TestStore;

/// How often the second node polls the store.
const POLL: Duration = Duration::from_millis(100);

/// How long the second node may take to notice (the poll interval, with
/// room for a loaded machine).
const NOTICE: Duration = Duration::from_secs(3);

fn config() -> CreditsConfig {
    CreditsConfig {
        poll_interval: POLL,
        ..CreditsConfig::default()
    }
}

fn usd_budget(text: &str) -> Budget {
    Budget::parse(text, Some(Currency::USD)).unwrap()
}

fn account(id: &str) -> Account {
    Account {
        id: id.to_owned(),
        name: "llm".into(),
        currency: Currency::USD,
        created_at: 0,
        budget: Some(usd_budget("20/month")),
    }
}

/// Waits until `check` holds, at most [`NOTICE`].
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < NOTICE,
            "{what}: not seen within {NOTICE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_limits_and_budgets_reach_every_node() {
    for db in TestStore::each("models_limits_and_budgets_reach_every_node").await {
        eprintln!("on {}", db.backend);
        let here = Credits::start(db.open().await, config()).await.unwrap();
        let there = Credits::start(db.open().await, config()).await.unwrap();
        scenario(&here, &there).await;
        here.close().await;
        there.close().await;
    }
}

async fn scenario(here: &Arc<Credits>, there: &Arc<Credits>) {
    here.create_account(&account("acct_l")).await.unwrap();
    assert_eq!(here.account_budget("acct_l"), Some(usd_budget("20/month")));
    eventually("the account's budget", || {
        there.account_budget("acct_l") == Some(usd_budget("20/month"))
    })
    .await;

    let limits = LlmLimits {
        budget: Some(usd_budget("5.00/day")),
        tpm: Some(90_000),
        rpm: Some(60),
    };
    let (key, _) = here
        .issue_key(KeyRequest {
            account_id: "acct_l".into(),
            live: true,
            routes: None,
            models: Some(vec!["gpt-4o".into(), "claude-sonnet".into()]),
            limits,
            expires_at: None,
        })
        .await
        .unwrap();
    let found = here.find(&key).expect("the key works at once");
    assert_eq!(found.limits, limits);
    assert!(found.may_use_model("gpt-4o") && found.may_use_model("claude-sonnet"));
    assert!(!found.may_use_model("gpt-4o-mini"));
    eventually("the key's models and limits", || {
        there
            .find(&key)
            .is_some_and(|k| k.limits == limits && k.models == found.models)
    })
    .await;

    // Set here: seen here at once, there after a poll.
    let daily = usd_budget("1.50/day");
    let updated = here
        .set_account_budget("acct_l", Some(daily))
        .await
        .unwrap();
    assert_eq!(updated.budget, Some(daily));
    assert_eq!(here.account_budget("acct_l"), Some(daily));
    eventually("a new budget", || {
        there.account_budget("acct_l") == Some(daily)
    })
    .await;

    // Set on the store alone (as the CLI does): every node polls it in.
    faregate_rails::credits::set_account_budget(&**there.store(), "acct_l", None)
        .await
        .unwrap();
    eventually("a cleared budget", || {
        here.account_budget("acct_l").is_none() && there.account_budget("acct_l").is_none()
    })
    .await;
    assert_eq!(here.account_budget("acct_nobody"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_in_another_currency_are_refused() {
    for db in TestStore::each("budgets_in_another_currency_are_refused").await {
        let credits = Credits::start(db.open().await, config()).await.unwrap();
        credits.create_account(&account("acct_c")).await.unwrap();
        let eur = Budget {
            amount: Money::from_atomic(5, Currency::from_code("EUR").unwrap()),
            period: BudgetPeriod::Day,
        };
        let request = KeyRequest {
            account_id: "acct_c".into(),
            live: false,
            routes: None,
            models: None,
            limits: LlmLimits {
                budget: Some(eur),
                ..LlmLimits::default()
            },
            expires_at: None,
        };
        assert!(matches!(
            credits.issue_key(request).await,
            Err(CreditsError::Currency {
                held: "USD",
                given: "EUR",
                ..
            })
        ));
        assert!(matches!(
            credits.set_account_budget("acct_c", Some(eur)).await,
            Err(CreditsError::Currency { .. })
        ));
        assert!(matches!(
            credits.set_account_budget("acct_nobody", None).await,
            Err(CreditsError::NoAccount(id)) if id == "acct_nobody"
        ));
        assert_eq!(
            credits.account_budget("acct_c"),
            Some(usd_budget("20/month"))
        );
        assert!(credits.store().keys("acct_c").await.unwrap().is_empty());
        credits.close().await;
    }
}
