//! The store suite: every test runs on a SQLite file and, when
//! `FAREGATE_TEST_DATABASE_URL` is set, on a fresh PostgreSQL schema.

use std::sync::Arc;

use faregate_core::{Currency, LlmLimits, Money};
use faregate_store::{
    Account, KeyRecord, LedgerAccount, LedgerQuery, Posted, Store, StoreError, Transaction, TxKind,
    UsageRecord, new_id,
};
use faregate_testkit::TestStore;
use proptest::prelude::*;

fn usd(atomic: u64) -> Money {
    Money::from_atomic(atomic, Currency::USD)
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
        routes: Some(vec!["a".into(), "b c".into()]),
        models: None,
        limits: LlmLimits::default(),
        expires_at: Some(42),
        revoked_at: None,
        created_at: 7,
    }
}

fn top_up(account: &str, amount: u64, idem: &str) -> Transaction {
    Transaction::top_up(account, usd(amount), idem.into(), "ref".into(), 1).unwrap()
}

async fn balance(store: &dyn Store, id: &str) -> i64 {
    store
        .balance(&LedgerAccount::customer(id), Currency::USD)
        .await
        .unwrap()
}

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            for test_store in TestStore::each(stringify!($name)).await {
                let store = test_store.open().await;
                eprintln!("{}: {}", stringify!($name), store.backend());
                suite::$name(store, &test_store.url).await;
            }
        }
    )*};
}

on_every_store!(
    accounts_are_created_listed_and_unique,
    keys_are_stored_scoped_and_revoked,
    a_replayed_idempotency_key_is_a_no_op,
    a_reused_idempotency_key_with_another_request_is_a_conflict,
    concurrent_posts_of_one_key_commit_once,
    batches_skip_what_is_already_posted,
    the_ledger_is_append_only,
    verify_finds_a_tampered_balance,
    the_ledger_pages_and_filters,
    the_revision_moves_with_accounts_keys_and_money_in,
    usage_records_trace_a_batched_debit_to_its_requests,
    usage_written_before_packing_is_read_and_verified_with_the_rest,
);

mod suite {
    use super::*;

    pub(super) async fn accounts_are_created_listed_and_unique(store: Arc<dyn Store>, _url: &str) {
        for id in ["acct_b", "acct_a", "acct_c"] {
            store.create_account(&account(id)).await.unwrap();
        }
        assert_eq!(
            store.account("acct_a").await.unwrap(),
            Some(account("acct_a"))
        );
        assert_eq!(store.account("acct_zz").await.unwrap(), None);
        assert!(matches!(
            store.create_account(&account("acct_a")).await,
            Err(StoreError::Duplicate(_))
        ));
        let first = store.accounts(None, 2).await.unwrap();
        assert_eq!(
            first.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["acct_a", "acct_b"]
        );
        let rest = store.accounts(Some("acct_b"), 2).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].id, "acct_c");
    }

    pub(super) async fn keys_are_stored_scoped_and_revoked(store: Arc<dyn Store>, _url: &str) {
        store.create_account(&account("acct_k")).await.unwrap();
        store.create_key(&key("key_1", "acct_k")).await.unwrap();
        let mut open = key("key_22", "acct_k");
        open.routes = None;
        open.expires_at = None;
        store.create_key(&open).await.unwrap();
        assert!(matches!(
            store.create_key(&key("key_3", "acct_missing")).await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(
            store.key("key_1").await.unwrap(),
            Some(key("key_1", "acct_k"))
        );
        assert_eq!(store.keys("acct_k").await.unwrap().len(), 2);
        let revoked = store.revoke_key("key_1", 99).await.unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(99));
        // Revoking again keeps the first time.
        let again = store.revoke_key("key_1", 200).await.unwrap().unwrap();
        assert_eq!(again.revoked_at, Some(99));
        assert_eq!(store.revoke_key("key_nope", 1).await.unwrap(), None);
        let active = store.active_keys().await.unwrap();
        assert_eq!(active, vec![open]);
    }

    pub(super) async fn a_replayed_idempotency_key_is_a_no_op(store: Arc<dyn Store>, _url: &str) {
        store.create_account(&account("acct_r")).await.unwrap();
        let tx = top_up("acct_r", 5_000_000, "topup-1").with_fingerprint(Some("f1".into()));
        let Posted::Created(first) = store.post(&tx).await.unwrap() else {
            panic!("first post creates");
        };
        // The same request again, even with a fresh transaction id.
        let mut again = tx.clone();
        again.id = new_id("tx");
        match store.post(&again).await.unwrap() {
            Posted::Replayed(r) => assert_eq!(r, first),
            other => panic!("expected a replay, got {other:?}"),
        }
        assert_eq!(balance(&*store, "acct_r").await, 5_000_000);
        assert_eq!(
            store
                .balance(&LedgerAccount::funding(), Currency::USD)
                .await
                .unwrap(),
            -5_000_000
        );
        assert!(store.verify().await.unwrap().is_sound());
    }

    pub(super) async fn a_reused_idempotency_key_with_another_request_is_a_conflict(
        store: Arc<dyn Store>,
        _url: &str,
    ) {
        store.create_account(&account("acct_c")).await.unwrap();
        let tx = top_up("acct_c", 100, "k").with_fingerprint(Some("f1".into()));
        store.post(&tx).await.unwrap();
        let other = top_up("acct_c", 200, "k").with_fingerprint(Some("f2".into()));
        assert!(matches!(
            store.post(&other).await.unwrap(),
            Posted::Conflict(r) if r.tx.id == tx.id
        ));
        assert_eq!(balance(&*store, "acct_c").await, 100);
    }

    pub(super) async fn concurrent_posts_of_one_key_commit_once(store: Arc<dyn Store>, _url: &str) {
        store.create_account(&account("acct_p")).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.post(&top_up("acct_p", 7, "same")).await })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            if let Posted::Created(_) = t.await.unwrap().unwrap() {
                created += 1;
            }
        }
        assert_eq!(created, 1);
        assert_eq!(balance(&*store, "acct_p").await, 7);
    }

    pub(super) async fn batches_skip_what_is_already_posted(store: Arc<dyn Store>, _url: &str) {
        store.create_account(&account("acct_b")).await.unwrap();
        store.post(&top_up("acct_b", 1_000, "in")).await.unwrap();
        let debits: Vec<Transaction> = (0..2500)
            .map(|i| {
                Transaction::debit("acct_b", usd(1), format!("d{i}"), format!("req{i}"), 2).unwrap()
            })
            .collect();
        assert_eq!(store.post_batch(&debits[..300], &[]).await.unwrap(), 300);
        // A retried batch that partly committed before writes only the rest.
        assert_eq!(store.post_batch(&debits, &[]).await.unwrap(), 2200);
        assert_eq!(balance(&*store, "acct_b").await, 1_000 - 2500);
        assert_eq!(
            store
                .balance(&LedgerAccount::revenue(), Currency::USD)
                .await
                .unwrap(),
            2500
        );
        let report = store.verify().await.unwrap();
        assert!(report.unbalanced.is_empty() && report.mismatched.is_empty());
        assert_eq!(report.transactions, 2501);
        assert_eq!(report.entries, 5002);
        // The customer spent more than it had: verify says so.
        assert_eq!(
            report.overdrawn,
            vec![("customer:acct_b".to_owned(), "USD".to_owned(), -1500)]
        );
    }

    pub(super) async fn the_ledger_is_append_only(store: Arc<dyn Store>, url: &str) {
        store.create_account(&account("acct_a")).await.unwrap();
        store.post(&top_up("acct_a", 10, "x")).await.unwrap();
        // Straight to the database, past the trait: the triggers refuse.
        let raw = Direct { url };
        for sql in [
            "UPDATE ledger_entries SET amount = amount + 1",
            "DELETE FROM ledger_entries",
            "UPDATE ledger_transactions SET kind = 'refund'",
            "DELETE FROM ledger_transactions",
        ] {
            let err = raw.execute(sql).await.expect_err(sql);
            assert!(err.contains("append-only"), "{sql}: {err}");
        }
        assert!(store.verify().await.unwrap().is_sound());
    }

    pub(super) async fn verify_finds_a_tampered_balance(store: Arc<dyn Store>, url: &str) {
        store.create_account(&account("acct_v")).await.unwrap();
        store.post(&top_up("acct_v", 10, "x")).await.unwrap();
        assert!(store.verify().await.unwrap().is_sound());
        Direct { url }
            .execute("UPDATE balances SET balance = balance + 5 WHERE account = 'customer:acct_v'")
            .await
            .unwrap();
        let report = store.verify().await.unwrap();
        assert!(!report.is_sound());
        assert_eq!(
            report.mismatched,
            vec![("customer:acct_v".to_owned(), "USD".to_owned(), 15, 10)]
        );
    }

    pub(super) async fn the_ledger_pages_and_filters(store: Arc<dyn Store>, _url: &str) {
        store.create_account(&account("acct_l")).await.unwrap();
        store.create_account(&account("acct_o")).await.unwrap();
        store.post(&top_up("acct_l", 100, "t1")).await.unwrap();
        store.post(&top_up("acct_o", 100, "t2")).await.unwrap();
        let debits: Vec<_> = (0..5)
            .map(|i| {
                Transaction::debit("acct_l", usd(3), format!("d{i}"), format!("r{i}"), 10 + i)
                    .unwrap()
            })
            .collect();
        store.post_batch(&debits, &[]).await.unwrap();
        let mut q = LedgerQuery {
            account: Some(LedgerAccount::customer("acct_l")),
            limit: 4,
            ..LedgerQuery::default()
        };
        let page = store.ledger(&q).await.unwrap();
        assert_eq!(page.len(), 4);
        assert!(page.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
        assert_eq!(page[0].tx.postings.len(), 2);
        assert_eq!(page[0].tx.amount_on(&LedgerAccount::customer("acct_l")), -3);
        q.before_seq = Some(page[3].seq);
        let rest = store.ledger(&q).await.unwrap();
        assert_eq!(rest.len(), 2, "one debit and the top-up");
        assert_eq!(rest[1].tx.kind, TxKind::TopUp);
        q.before_seq = None;
        q.kind = Some(TxKind::TopUp);
        assert_eq!(store.ledger(&q).await.unwrap().len(), 1);
        q.kind = None;
        q.since = Some(12);
        q.until = Some(14);
        assert_eq!(store.ledger(&q).await.unwrap().len(), 2);
    }

    pub(super) async fn the_revision_moves_with_accounts_keys_and_money_in(
        store: Arc<dyn Store>,
        _url: &str,
    ) {
        let r0 = store.revision().await.unwrap();
        store.create_account(&account("acct_x")).await.unwrap();
        let r1 = store.revision().await.unwrap();
        assert!(r1 > r0);
        store.create_key(&key("key_x", "acct_x")).await.unwrap();
        let r2 = store.revision().await.unwrap();
        assert!(r2 > r1);
        store.post(&top_up("acct_x", 1, "i")).await.unwrap();
        let r3 = store.revision().await.unwrap();
        assert!(r3 > r2);
        let debit = Transaction::debit("acct_x", usd(1), "d".into(), "r".into(), 0).unwrap();
        store.post_batch(&[debit], &[]).await.unwrap();
        assert_eq!(store.revision().await.unwrap(), r3, "debits are our own");
    }

    pub(super) async fn usage_records_trace_a_batched_debit_to_its_requests(
        store: Arc<dyn Store>,
        url: &str,
    ) {
        store.create_account(&account("acct_u")).await.unwrap();
        store.post(&top_up("acct_u", 100, "in")).await.unwrap();
        let debit =
            Transaction::debit("acct_u", usd(6), "batch-1".into(), "batch:1".into(), 5).unwrap();
        let usage: Vec<UsageRecord> = [1, 2, 3]
            .iter()
            .map(|n| UsageRecord {
                transaction_id: debit.id.clone(),
                reference: format!("req-{n}"),
                amount: *n,
                created_at: 5,
            })
            .collect();
        assert_eq!(
            store
                .post_batch(std::slice::from_ref(&debit), &usage)
                .await
                .unwrap(),
            1
        );
        // A retry of the same batch writes neither the debit nor its usage again.
        assert_eq!(
            store
                .post_batch(std::slice::from_ref(&debit), &usage)
                .await
                .unwrap(),
            0
        );
        let listed = store
            .usage(&LedgerAccount::customer("acct_u"), None, 10)
            .await
            .unwrap();
        let refs: Vec<_> = listed.iter().map(|(_, u)| u.reference.as_str()).collect();
        assert_eq!(refs, ["req-3", "req-2", "req-1"]);
        let page = store
            .usage(&LedgerAccount::customer("acct_u"), Some(listed[0].0), 10)
            .await
            .unwrap();
        assert_eq!(page.len(), 2);
        let report = store.verify().await.unwrap();
        assert!(report.is_sound(), "{report:?}");
        assert_eq!(report.usage, 3);
        // A debit that does not match its requests is found.
        let short =
            Transaction::debit("acct_u", usd(5), "batch-2".into(), "batch:2".into(), 6).unwrap();
        let usage = [UsageRecord {
            transaction_id: short.id.clone(),
            reference: "req-4".into(),
            amount: 7,
            created_at: 6,
        }];
        store
            .post_batch(std::slice::from_ref(&short), &usage)
            .await
            .unwrap();
        let report = store.verify().await.unwrap();
        assert_eq!(report.usage_mismatched, vec![(short.id, 7, 5)]);
        let _ = url;
    }

    pub(super) async fn usage_written_before_packing_is_read_and_verified_with_the_rest(
        store: Arc<dyn Store>,
        url: &str,
    ) {
        store.create_account(&account("acct_o")).await.unwrap();
        store.post(&top_up("acct_o", 100, "in")).await.unwrap();
        let old = Transaction::debit("acct_o", usd(5), "old".into(), "batch:0".into(), 1).unwrap();
        store
            .post_batch(std::slice::from_ref(&old), &[])
            .await
            .unwrap();
        // As schema version 4 wrote them: a row per request.
        let direct = Direct { url };
        for (n, amount) in [(1, 2), (2, 3)] {
            direct
                .execute(&format!(
                    "INSERT INTO usage_records (transaction_id, reference, amount, created_at) \
                     VALUES ('{}', 'req-old-{n}', {amount}, 1)",
                    old.id
                ))
                .await
                .unwrap();
        }
        let new = Transaction::debit("acct_o", usd(4), "new".into(), "batch:1".into(), 2).unwrap();
        let usage = [UsageRecord {
            transaction_id: new.id.clone(),
            reference: "req-new".into(),
            amount: 4,
            created_at: 2,
        }];
        store
            .post_batch(std::slice::from_ref(&new), &usage)
            .await
            .unwrap();
        let customer = LedgerAccount::customer("acct_o");
        let listed = store.usage(&customer, None, 10).await.unwrap();
        let refs: Vec<_> = listed.iter().map(|(_, u)| u.reference.as_str()).collect();
        assert_eq!(refs, ["req-new", "req-old-2", "req-old-1"]);
        assert!(
            listed.windows(2).all(|w| w[0].0 > w[1].0),
            "cursors descend"
        );
        for (i, (cursor, _)) in listed.iter().enumerate() {
            let rest = store.usage(&customer, Some(*cursor), 10).await.unwrap();
            assert_eq!(rest, listed[i + 1..], "after cursor {cursor}");
        }
        assert_eq!(store.usage(&customer, None, 2).await.unwrap(), listed[..2]);
        let report = store.verify().await.unwrap();
        assert!(report.is_sound(), "{report:?}");
        assert_eq!(report.usage, 3);
        // Packed usage is as append-only as the rest.
        assert!(direct.execute("DELETE FROM usage_batches").await.is_err());
        assert!(
            direct
                .execute("UPDATE usage_batches SET total = 0")
                .await
                .is_err()
        );
        // A payload changed behind the store's back is found by verify.
        let _ = direct
            .execute("DROP TRIGGER IF EXISTS usage_batches_no_update")
            .await;
        let _ = direct
            .execute("DROP TRIGGER IF EXISTS usage_batches_append_only ON usage_batches")
            .await;
        direct
            .execute("UPDATE usage_batches SET records = 2")
            .await
            .unwrap();
        let report = store.verify().await.unwrap();
        assert_eq!(report.usage_unreadable, vec![new.id.clone()]);
        assert!(!report.is_sound());
    }
}

/// A raw connection to the same database, past the `Store` trait.
struct Direct<'a> {
    url: &'a str,
}

impl Direct<'_> {
    async fn execute(&self, sql: &str) -> Result<(), String> {
        use sqlx::Connection;
        if self.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(self.url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(sql)
                .execute(&mut c)
                .await
                .map_err(|e| e.to_string())?;
        } else {
            let mut c = sqlx::PgConnection::connect(self.url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(sql)
                .execute(&mut c)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// One step of a random ledger history.
#[derive(Debug, Clone)]
enum Op {
    TopUp(usize, u64),
    Debits(Vec<(usize, u64)>),
    Refund(usize, u64),
    /// Posts an earlier transaction again (same idempotency key, new id).
    Replay(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let acct = 0usize..3;
    let amount = 1u64..5_000_000;
    prop_oneof![
        (acct.clone(), amount.clone()).prop_map(|(a, m)| Op::TopUp(a, m)),
        proptest::collection::vec((acct.clone(), amount.clone()), 1..6).prop_map(Op::Debits),
        (acct, amount).prop_map(|(a, m)| Op::Refund(a, m)),
        (0usize..64).prop_map(Op::Replay),
    ]
}

async fn run_history(store: Arc<dyn Store>, ops: &[Op]) -> Result<(), TestCaseError> {
    let ids = ["acct_0", "acct_1", "acct_2"];
    for id in ids {
        store.create_account(&account(id)).await.unwrap();
    }
    let mut model = [0i64; 3];
    let mut posted: Vec<(Transaction, usize, i64)> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        match op {
            Op::TopUp(a, m) | Op::Refund(a, m) => {
                let key = format!("op{n}");
                let tx = if matches!(op, Op::TopUp(..)) {
                    Transaction::top_up(ids[*a], usd(*m), key, "r".into(), 0)
                } else {
                    Transaction::refund(ids[*a], usd(*m), key, "r".into(), 0)
                }
                .unwrap();
                prop_assert!(matches!(store.post(&tx).await.unwrap(), Posted::Created(_)));
                model[*a] += *m as i64;
                posted.push((tx, *a, *m as i64));
            }
            Op::Debits(list) => {
                let txs: Vec<_> = list
                    .iter()
                    .enumerate()
                    .map(|(i, (a, m))| {
                        Transaction::debit(ids[*a], usd(*m), format!("op{n}.{i}"), "r".into(), 0)
                            .unwrap()
                    })
                    .collect();
                prop_assert_eq!(store.post_batch(&txs, &[]).await.unwrap(), txs.len());
                for (tx, (a, m)) in txs.into_iter().zip(list) {
                    model[*a] -= *m as i64;
                    posted.push((tx, *a, -(*m as i64)));
                }
            }
            Op::Replay(i) if !posted.is_empty() => {
                let (tx, _, _) = &posted[i % posted.len()];
                let mut again = tx.clone();
                again.id = new_id("tx");
                match tx.kind {
                    TxKind::Debit => {
                        prop_assert_eq!(store.post_batch(&[again], &[]).await.unwrap(), 0)
                    }
                    _ => prop_assert!(matches!(
                        store.post(&again).await.unwrap(),
                        Posted::Replayed(_)
                    )),
                }
            }
            Op::Replay(_) => {}
        }
    }
    for (i, id) in ids.iter().enumerate() {
        prop_assert_eq!(balance(&*store, id).await, model[i], "balance of {}", id);
    }
    let report = store.verify().await.unwrap();
    prop_assert!(report.unbalanced.is_empty(), "{:?}", report);
    prop_assert!(report.mismatched.is_empty(), "{:?}", report);
    prop_assert!(report.incomplete.is_empty(), "{:?}", report);
    // Money is neither made nor lost: every balance sums to zero.
    let total: i64 = store
        .balances()
        .await
        .unwrap()
        .iter()
        .map(|b| b.amount)
        .sum();
    prop_assert_eq!(total, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_histories_keep_every_balance_equal_to_its_entries(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            for test_store in TestStore::each("random_histories").await {
                run_history(test_store.open().await, &ops).await?;
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
