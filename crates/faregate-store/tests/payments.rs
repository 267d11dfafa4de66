//! Per-request payments on every store: a payment is reserved once however
//! many requests race with it, released payments can be used again,
//! settlement writes the ledger in the same commit, failed payments keep
//! their nonce, and grants are drawn down one call at a time. Each test runs
//! on a SQLite file and, when `FAREGATE_TEST_DATABASE_URL` is set, on a
//! fresh PostgreSQL schema.

use std::sync::Arc;

use faregate_core::{Currency, Money};
use faregate_store::{
    Draw, Grant, LedgerAccount, PaymentRecord, PaymentState, Reservation, Store, Transaction,
    TxKind,
};
use faregate_testkit::TestStore;

const T0: i64 = 1_700_000_000_000;

fn payment(id: &str, nonce: &str, identifier: Option<&str>) -> PaymentRecord {
    PaymentRecord {
        id: id.to_owned(),
        rail: "x402".to_owned(),
        network: "eip155:84532".to_owned(),
        asset: "0x036cbd53842c5426634e7929541ec2318f3dcf7e".to_owned(),
        payer: "0x70997970c51812dc3a010c7d01b50e0d17dc79c8".to_owned(),
        nonce: nonce.to_owned(),
        payload_hash: format!("hash-of-{id}"),
        payment_identifier: identifier.map(str::to_owned),
        route: "paid".to_owned(),
        request_id: format!("req-{id}"),
        amount: "10000".to_owned(),
        state: PaymentState::Pending,
        transaction: None,
        error: None,
        created_at: T0,
        updated_at: T0,
    }
}

fn ledger(id: &str, hash: &str) -> Transaction {
    Transaction::payment(
        "x402",
        "eip155:84532",
        Money::from_atomic(10_000, Currency::USD),
        format!("x402:{id}"),
        hash.to_owned(),
        T0,
    )
    .unwrap()
}

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for test_store in TestStore::each(stringify!($name)).await {
                let store = test_store.open().await;
                eprintln!("{}: {}", stringify!($name), store.backend());
                suite::$name(store).await;
            }
        }
    )*};
}

on_every_store!(
    a_nonce_is_reserved_once_among_racing_requests,
    a_released_payment_can_be_used_again_but_a_failed_one_cannot,
    settling_writes_the_payment_the_ledger_and_the_grant_together,
    a_payment_identifier_is_taken_once,
    grants_are_drawn_one_call_at_a_time_until_spent_or_expired,
);

mod suite {
    use super::*;

    pub(super) async fn a_nonce_is_reserved_once_among_racing_requests(store: Arc<dyn Store>) {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .reserve_payment(&payment(&format!("pay_{i}"), "0xabc", None))
                    .await
                    .unwrap()
            }));
        }
        let mut reserved = 0;
        for t in tasks {
            match t.await.unwrap() {
                Reservation::Reserved => reserved += 1,
                Reservation::Taken(first) => assert_eq!(first.nonce, "0xabc"),
            }
        }
        assert_eq!(reserved, 1, "one request of sixteen holds the payment");
    }

    pub(super) async fn a_released_payment_can_be_used_again_but_a_failed_one_cannot(
        store: Arc<dyn Store>,
    ) {
        let first = payment("pay_a", "0x01", None);
        assert_eq!(
            store.reserve_payment(&first).await.unwrap(),
            Reservation::Reserved
        );
        store.release_payment("pay_a").await.unwrap();
        assert_eq!(store.payment("pay_a").await.unwrap(), None);
        let again = payment("pay_b", "0x01", None);
        assert_eq!(
            store.reserve_payment(&again).await.unwrap(),
            Reservation::Reserved
        );
        store
            .fail_payment("pay_b", "unexpected_settle_error", Some("0xfeed"), T0 + 5)
            .await
            .unwrap();
        let failed = store.payment("pay_b").await.unwrap().unwrap();
        assert_eq!(failed.state, PaymentState::Failed);
        assert_eq!(failed.transaction.as_deref(), Some("0xfeed"));
        assert_eq!(failed.error.as_deref(), Some("unexpected_settle_error"));
        // Releasing a failed payment changes nothing: its nonce stays taken.
        store.release_payment("pay_b").await.unwrap();
        match store
            .reserve_payment(&payment("pay_c", "0x01", None))
            .await
            .unwrap()
        {
            Reservation::Taken(p) => assert_eq!(p.id, "pay_b"),
            Reservation::Reserved => panic!("a failed payment's nonce was reused"),
        }
        // Only a pending payment can be finished.
        assert!(
            store
                .fail_payment("pay_b", "again", None, T0)
                .await
                .is_err()
        );
    }

    pub(super) async fn settling_writes_the_payment_the_ledger_and_the_grant_together(
        store: Arc<dyn Store>,
    ) {
        store
            .reserve_payment(&payment("pay_s", "0x02", None))
            .await
            .unwrap();
        let grant = Grant {
            id: "grt_1".to_owned(),
            payment_id: "pay_s".to_owned(),
            route: "paid".to_owned(),
            calls_left: Some(3),
            expires_at: T0 + 60_000,
            created_at: T0,
        };
        let tx = ledger("pay_s", "0xhash");
        store
            .settle_payment("pay_s", "0xhash", Some(&tx), Some(&grant), T0 + 1)
            .await
            .unwrap();
        let settled = store.payment("pay_s").await.unwrap().unwrap();
        assert_eq!(settled.state, PaymentState::Settled);
        assert_eq!(settled.transaction.as_deref(), Some("0xhash"));
        let posted = store
            .transaction_by_key("x402:pay_s")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(posted.tx.kind, TxKind::Payment);
        assert_eq!(posted.tx.reference, "0xhash");
        let revenue = store
            .balance(&LedgerAccount::revenue(), Currency::USD)
            .await
            .unwrap();
        assert_eq!(revenue, 10_000);
        let chain = store
            .balance(
                &LedgerAccount::settlement("x402", "eip155:84532"),
                Currency::USD,
            )
            .await
            .unwrap();
        assert_eq!(chain, -10_000);
        assert_eq!(store.grant("grt_1").await.unwrap(), Some(grant));
        assert!(store.verify().await.unwrap().is_sound());
        // Settling twice is refused and writes nothing more.
        assert!(
            store
                .settle_payment(
                    "pay_s",
                    "0xother",
                    Some(&ledger("pay_s2", "0xother")),
                    None,
                    T0
                )
                .await
                .is_err()
        );
        assert_eq!(store.transaction_by_key("x402:pay_s2").await.unwrap(), None);
    }

    pub(super) async fn a_payment_identifier_is_taken_once(store: Arc<dyn Store>) {
        let first = payment("pay_i", "0x03", Some("order-0000000000000001"));
        assert_eq!(
            store.reserve_payment(&first).await.unwrap(),
            Reservation::Reserved
        );
        // Another payment (another nonce) under the same identifier.
        match store
            .reserve_payment(&payment("pay_j", "0x04", Some("order-0000000000000001")))
            .await
            .unwrap()
        {
            Reservation::Taken(p) => assert_eq!(p.id, "pay_i"),
            Reservation::Reserved => panic!("an identifier was taken twice"),
        }
        // Payments without one never collide on it.
        for (id, nonce) in [("pay_k", "0x05"), ("pay_l", "0x06")] {
            assert_eq!(
                store
                    .reserve_payment(&payment(id, nonce, None))
                    .await
                    .unwrap(),
                Reservation::Reserved
            );
        }
        let old = store.pending_payments(T0 + 1, 10).await.unwrap();
        assert_eq!(old.len(), 3);
    }

    pub(super) async fn grants_are_drawn_one_call_at_a_time_until_spent_or_expired(
        store: Arc<dyn Store>,
    ) {
        store
            .reserve_payment(&payment("pay_g", "0x07", None))
            .await
            .unwrap();
        let calls = Grant {
            id: "grt_calls".to_owned(),
            payment_id: "pay_g".to_owned(),
            route: "paid".to_owned(),
            calls_left: Some(5),
            expires_at: T0 + 60_000,
            created_at: T0,
        };
        store
            .settle_payment(
                "pay_g",
                "0xg",
                Some(&ledger("pay_g", "0xg")),
                Some(&calls),
                T0,
            )
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.draw_grant("grt_calls", T0 + 1).await.unwrap()
            }));
        }
        let mut taken = Vec::new();
        for t in tasks {
            if let Draw::Taken(left) = t.await.unwrap() {
                taken.push(left.unwrap());
            }
        }
        taken.sort_unstable();
        assert_eq!(taken, vec![0, 1, 2, 3, 4], "five calls, each drawn once");
        assert_eq!(
            store.draw_grant("grt_calls", T0 + 2).await.unwrap(),
            Draw::Spent
        );
        assert_eq!(
            store.draw_grant("grt_none", T0).await.unwrap(),
            Draw::Unknown
        );

        store
            .reserve_payment(&payment("pay_t", "0x08", None))
            .await
            .unwrap();
        let time = Grant {
            id: "grt_time".to_owned(),
            payment_id: "pay_t".to_owned(),
            route: "paid".to_owned(),
            calls_left: None,
            expires_at: T0 + 1_000,
            created_at: T0,
        };
        store
            .settle_payment(
                "pay_t",
                "0xt",
                Some(&ledger("pay_t", "0xt")),
                Some(&time),
                T0,
            )
            .await
            .unwrap();
        assert_eq!(
            store.draw_grant("grt_time", T0 + 999).await.unwrap(),
            Draw::Taken(None)
        );
        assert_eq!(
            store.draw_grant("grt_time", T0 + 1_000).await.unwrap(),
            Draw::Spent
        );
    }
}
