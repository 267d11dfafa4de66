//! LLM scopes and limits in the store (schema version 4): a key's models,
//! budget and per-minute limits, an account's budget, the currency rule,
//! and keys and accounts written before version 4. Every test runs on a
//! SQLite file and, when `FAREGATE_TEST_DATABASE_URL` is set, on a fresh
//! PostgreSQL schema.

use faregate_core::{Budget, BudgetPeriod, Currency, LlmLimits, Money};
use faregate_store::{Account, KeyRecord, LedgerError, StoreError};
use faregate_testkit::TestStore;

fn usd(text: &str) -> Money {
    Money::parse_decimal(text, Currency::USD).unwrap()
}

fn eur_budget() -> Budget {
    Budget::parse("5 EUR/day", None).unwrap()
}

fn account(id: &str) -> Account {
    Account {
        id: id.to_owned(),
        name: format!("name of {id}"),
        currency: Currency::USD,
        created_at: 1_700_000_000_000,
        budget: None,
    }
}

fn key(id: &str, account_id: &str) -> KeyRecord {
    KeyRecord {
        id: id.to_owned(),
        account_id: account_id.to_owned(),
        hash: format!("{id:0>64}"),
        prefix: "fg_test_abcd".to_owned(),
        live: false,
        routes: None,
        models: None,
        limits: LlmLimits::default(),
        expires_at: None,
        revoked_at: None,
        created_at: 7,
    }
}

/// A key scoped to two models with every limit set.
fn limited_key(id: &str, account_id: &str) -> KeyRecord {
    KeyRecord {
        models: Some(vec!["gpt-4o".into(), "claude sonnet 4".into()]),
        limits: LlmLimits {
            budget: Some(Budget {
                amount: usd("5.25"),
                period: BudgetPeriod::Day,
            }),
            tpm: Some(100_000),
            rpm: Some(i64::MAX as u64),
        },
        ..key(id, account_id)
    }
}

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            for test_store in TestStore::each(stringify!($name)).await {
                eprintln!("{}: {}", stringify!($name), test_store.backend);
                suite::$name(&test_store).await;
            }
        }
    )*};
}

on_every_store!(
    keys_keep_their_models_and_limits,
    account_budgets_are_set_read_and_cleared,
    budgets_must_be_in_the_accounts_currency,
    what_63_bits_cannot_hold_is_refused,
    keys_and_accounts_from_version_3_have_no_limits,
    concurrent_budget_and_key_writes_all_commit,
);

mod suite {
    use super::*;

    pub(super) async fn keys_keep_their_models_and_limits(db: &TestStore) {
        let store = db.open().await;
        store.create_account(&account("acct_k")).await.unwrap();
        let limited = limited_key("key_1", "acct_k");
        let open = key("key_2", "acct_k");
        store.create_key(&limited).await.unwrap();
        store.create_key(&open).await.unwrap();
        assert_eq!(store.key("key_1").await.unwrap().as_ref(), Some(&limited));
        assert_eq!(store.key("key_2").await.unwrap().as_ref(), Some(&open));
        assert_eq!(
            store.keys("acct_k").await.unwrap(),
            vec![limited.clone(), open.clone()]
        );
        let mut active = store.active_keys().await.unwrap();
        active.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(active, vec![limited.clone(), open]);
        // One model, a month's budget of one atomic unit, no token limit.
        let mut one = limited_key("key_3", "acct_k");
        one.models = Some(vec!["m".into()]);
        one.limits.budget = Some(Budget {
            amount: usd("0.000001"),
            period: BudgetPeriod::Month,
        });
        one.limits.tpm = None;
        store.create_key(&one).await.unwrap();
        assert_eq!(store.key("key_3").await.unwrap(), Some(one));
        let revoked = store.revoke_key("key_1", 99).await.unwrap().unwrap();
        assert_eq!(revoked.models, limited.models);
        assert_eq!(revoked.limits, limited.limits);
    }

    pub(super) async fn account_budgets_are_set_read_and_cleared(db: &TestStore) {
        let store = db.open().await;
        let monthly = Budget::parse("100 USD/month", None).unwrap();
        let with = Account {
            budget: Some(monthly),
            ..account("acct_a")
        };
        store.create_account(&with).await.unwrap();
        store.create_account(&account("acct_b")).await.unwrap();
        assert_eq!(store.account("acct_a").await.unwrap(), Some(with.clone()));
        assert_eq!(store.account("acct_b").await.unwrap().unwrap().budget, None);

        let r0 = store.revision().await.unwrap();
        let daily = Budget::parse("2.50/day", Some(Currency::USD)).unwrap();
        let set = store
            .set_account_budget("acct_b", Some(daily))
            .await
            .unwrap();
        assert_eq!(set.budget, Some(daily));
        let r1 = store.revision().await.unwrap();
        assert!(r1 > r0, "every node must notice a budget");
        let listed = store.accounts(None, 10).await.unwrap();
        let budgets: Vec<_> = listed.iter().map(|a| a.budget).collect();
        assert_eq!(budgets, [Some(monthly), Some(daily)]);

        let cleared = store.set_account_budget("acct_a", None).await.unwrap();
        assert_eq!(cleared.budget, None);
        assert_eq!(store.account("acct_a").await.unwrap().unwrap().budget, None);
        assert!(store.revision().await.unwrap() > r1);
        // Clearing again is fine.
        store.set_account_budget("acct_a", None).await.unwrap();
        assert!(matches!(
            store.set_account_budget("acct_nope", Some(daily)).await,
            Err(StoreError::NotFound(_))
        ));
    }

    pub(super) async fn budgets_must_be_in_the_accounts_currency(db: &TestStore) {
        let store = db.open().await;
        store.create_account(&account("acct_c")).await.unwrap();
        let r0 = store.revision().await.unwrap();
        let wrong = |e: Result<_, StoreError>| {
            matches!(
                e,
                Err(StoreError::Currency {
                    held: "USD",
                    given: "EUR",
                    ..
                })
            )
        };
        assert!(wrong(
            store
                .set_account_budget("acct_c", Some(eur_budget()))
                .await
                .map(|_| ())
        ));
        let mut k = key("key_c", "acct_c");
        k.limits.budget = Some(eur_budget());
        assert!(wrong(store.create_key(&k).await));
        let a = Account {
            budget: Some(eur_budget()),
            ..account("acct_d")
        };
        assert!(wrong(store.create_account(&a).await));
        // Nothing was written.
        assert_eq!(store.revision().await.unwrap(), r0);
        assert_eq!(store.key("key_c").await.unwrap(), None);
        assert_eq!(store.account("acct_d").await.unwrap(), None);
        assert_eq!(store.account("acct_c").await.unwrap().unwrap().budget, None);
        // A key of a missing account is still not found.
        assert!(matches!(
            store
                .create_key(&limited_key("key_m", "acct_missing"))
                .await,
            Err(StoreError::NotFound(_))
        ));
    }

    pub(super) async fn what_63_bits_cannot_hold_is_refused(db: &TestStore) {
        let store = db.open().await;
        store.create_account(&account("acct_h")).await.unwrap();
        let huge = Budget {
            amount: Money::from_atomic(u64::MAX, Currency::USD),
            period: BudgetPeriod::Day,
        };
        let out_of_range = |e: Result<_, StoreError>| {
            matches!(e, Err(StoreError::Ledger(LedgerError::OutOfRange)))
        };
        let mut k = key("key_h", "acct_h");
        k.limits.budget = Some(huge);
        assert!(out_of_range(store.create_key(&k).await));
        let mut k = key("key_h", "acct_h");
        k.limits.tpm = Some(u64::MAX);
        assert!(out_of_range(store.create_key(&k).await));
        assert!(out_of_range(
            store
                .set_account_budget("acct_h", Some(huge))
                .await
                .map(|_| ())
        ));
        assert_eq!(store.keys("acct_h").await.unwrap(), vec![]);
    }

    /// A store at version 3 with an account and keys (one written by hand,
    /// as version 3 wrote it) migrates to version 4 with no limit on any.
    pub(super) async fn keys_and_accounts_from_version_3_have_no_limits(db: &TestStore) {
        let store = db.open().await;
        store.create_account(&account("acct_v3")).await.unwrap();
        let mut old = key("key_old", "acct_v3");
        old.routes = Some(vec!["search".into()]);
        store.create_key(&old).await.unwrap();
        drop(store);
        back_to_version_3(&db.url).await;
        let raw = Direct(&db.url);
        raw.execute(
            "INSERT INTO api_keys (id, account_id, hash, prefix, live, routes, expires_at, \
             revoked_at, created_at) \
             VALUES ('key_raw', 'acct_v3', 'abc', 'fg_live_abcd', TRUE, NULL, NULL, NULL, 8)",
        )
        .await
        .unwrap();

        let store = db.open().await;
        assert_eq!(store.key("key_old").await.unwrap(), Some(old.clone()));
        let raw_key = store.key("key_raw").await.unwrap().unwrap();
        assert_eq!(raw_key.models, None);
        assert_eq!(raw_key.limits, LlmLimits::default());
        assert_eq!(store.active_keys().await.unwrap().len(), 2);
        assert_eq!(
            store.account("acct_v3").await.unwrap(),
            Some(account("acct_v3"))
        );
        // And the new columns work on the migrated rows.
        let daily = Budget::parse("1/day", Some(Currency::USD)).unwrap();
        let set = store
            .set_account_budget("acct_v3", Some(daily))
            .await
            .unwrap();
        assert_eq!(set.budget, Some(daily));
        store
            .create_key(&limited_key("key_new", "acct_v3"))
            .await
            .unwrap();
        assert_eq!(store.keys("acct_v3").await.unwrap().len(), 3);
        assert!(store.verify().await.unwrap().is_sound());
    }

    /// Writers racing on one account all commit. On SQLite a transaction
    /// that read before writing failed with `SQLITE_BUSY_SNAPSHOT` once
    /// another connection had committed (found by schemathesis).
    pub(super) async fn concurrent_budget_and_key_writes_all_commit(db: &TestStore) {
        let store = db.open().await;
        store.create_account(&account("acct_r")).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let budget = Budget {
                    amount: Money::from_atomic(i + 1, Currency::USD),
                    period: BudgetPeriod::Day,
                };
                store
                    .set_account_budget("acct_r", Some(budget))
                    .await
                    .map(|_| ())?;
                store
                    .create_key(&limited_key(&format!("key_r{i}"), "acct_r"))
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(store.keys("acct_r").await.unwrap().len(), 16);
        assert!(
            store
                .account("acct_r")
                .await
                .unwrap()
                .unwrap()
                .budget
                .is_some()
        );
    }

    /// Undoes migration 4 by hand: its columns and its row.
    async fn back_to_version_3(url: &str) {
        let raw = Direct(url);
        for (table, column) in [
            ("api_keys", "models"),
            ("api_keys", "budget_amount"),
            ("api_keys", "budget_period"),
            ("api_keys", "tpm"),
            ("api_keys", "rpm"),
            ("accounts", "budget_amount"),
            ("accounts", "budget_period"),
        ] {
            raw.execute(&format!("ALTER TABLE {table} DROP COLUMN {column}"))
                .await
                .unwrap();
        }
        raw.execute("DELETE FROM faregate_migrations WHERE version = 4")
            .await
            .unwrap();
    }
}

/// A raw connection to the same database, past the `Store` trait.
struct Direct<'a>(&'a str);

impl Direct<'_> {
    async fn execute(&self, sql: &str) -> Result<(), String> {
        use sqlx::Connection;
        let err = |e: sqlx::Error| format!("{sql}: {e}");
        if self.0.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(self.0).await.map_err(err)?;
            sqlx::query(sql).execute(&mut c).await.map_err(err)?;
        } else {
            let mut c = sqlx::PgConnection::connect(self.0).await.map_err(err)?;
            sqlx::query(sql).execute(&mut c).await.map_err(err)?;
        }
        Ok(())
    }
}
