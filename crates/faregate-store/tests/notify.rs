//! The notification outbox on every store: endpoints, events fanned out to
//! the endpoints that want them, leased claims, attempts and their
//! outcomes, and the listings. Each test runs on a SQLite file and, when
//! `FAREGATE_TEST_DATABASE_URL` is set, on a fresh PostgreSQL schema.

use std::collections::HashSet;
use std::sync::Arc;

use faregate_store::Store;
use faregate_store::notify::{
    AttemptOutcome, DeliveryQuery, DeliveryState, DueDelivery, NewNotification,
    NotificationEndpoint,
};
use faregate_testkit::TestStore;

const T0: i64 = 1_700_000_000_000;
const LEASE: i64 = 30_000;

fn endpoint(id: &str, events: Option<&[&str]>, created_at: i64) -> NotificationEndpoint {
    NotificationEndpoint {
        id: id.to_owned(),
        url: format!("https://example.com/hooks/{id}"),
        secret: format!("whsec_secret_of_{id}"),
        events: events.map(|e| e.iter().map(|s| (*s).to_owned()).collect()),
        description: Some(format!("endpoint {id}")),
        created_at,
        disabled_at: None,
    }
}

fn event(id: &str, kind: &str, created_at: i64) -> NewNotification {
    NewNotification {
        id: id.to_owned(),
        kind: kind.to_owned(),
        account_id: Some("acct_1".to_owned()),
        payload: format!(r#"{{"id":"{id}","type":"{kind}"}}"#),
        created_at,
    }
}

fn query() -> DeliveryQuery {
    DeliveryQuery {
        limit: 1000,
        ..DeliveryQuery::default()
    }
}

fn retry(at: i64) -> AttemptOutcome {
    AttemptOutcome::Retry {
        status: Some(503),
        error: "HTTP 503".to_owned(),
        next_attempt_at: at,
    }
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
    endpoints_are_created_listed_and_disabled,
    events_reach_the_endpoints_that_want_them_once,
    claims_are_leased_and_attempts_recorded,
    an_expired_lease_is_claimed_again_and_fences_the_old_claim,
    concurrent_claims_never_share_a_delivery,
    disabling_an_endpoint_fails_its_pending_deliveries,
    deliveries_and_events_filter_and_page,
);

mod suite {
    use super::*;

    pub(super) async fn endpoints_are_created_listed_and_disabled(store: Arc<dyn Store>) {
        let a = endpoint("we_a", None, T0 + 1);
        let b = endpoint(
            "we_b",
            Some(&["balance.low", "quota.threshold_reached"]),
            T0,
        );
        store.create_endpoint(&a).await.unwrap();
        store.create_endpoint(&b).await.unwrap();
        assert!(matches!(
            store.create_endpoint(&a).await,
            Err(faregate_store::StoreError::Duplicate(_))
        ));
        assert_eq!(store.endpoint("we_b").await.unwrap(), Some(b.clone()));
        assert_eq!(store.endpoint("we_nope").await.unwrap(), None);
        assert_eq!(store.endpoints().await.unwrap(), vec![b.clone(), a.clone()]);

        let disabled = store
            .disable_endpoint("we_a", T0 + 5)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(disabled.disabled_at, Some(T0 + 5));
        // Disabling again keeps the first time.
        let again = store
            .disable_endpoint("we_a", T0 + 9)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.disabled_at, Some(T0 + 5));
        assert_eq!(store.disable_endpoint("we_nope", T0).await.unwrap(), None);
        assert!(!format!("{again:?}").contains("secret_of"));
    }

    pub(super) async fn events_reach_the_endpoints_that_want_them_once(store: Arc<dyn Store>) {
        store
            .create_endpoint(&endpoint("we_all", None, T0))
            .await
            .unwrap();
        store
            .create_endpoint(&endpoint("we_low", Some(&["balance.low"]), T0))
            .await
            .unwrap();
        store
            .create_endpoint(&endpoint("we_off", None, T0))
            .await
            .unwrap();
        store.disable_endpoint("we_off", T0).await.unwrap();

        let events = [
            event("evt_1", "balance.low", T0 + 1),
            event("evt_2", "invoice.paid", T0 + 2),
            event("evt_3", "balance.low", T0 + 3),
        ];
        store.notify(&events).await.unwrap();
        // The same ids again change nothing.
        store.notify(&events[..2]).await.unwrap();
        // An endpoint registered later gets none of the older events.
        store
            .create_endpoint(&endpoint("we_late", None, T0 + 10))
            .await
            .unwrap();

        let all = store.deliveries(&query()).await.unwrap();
        let pairs: HashSet<(&str, &str)> = all
            .iter()
            .map(|d| (d.endpoint_id.as_str(), d.event_id.as_str()))
            .collect();
        let expected: HashSet<(&str, &str)> = [
            ("we_all", "evt_1"),
            ("we_all", "evt_2"),
            ("we_all", "evt_3"),
            ("we_low", "evt_1"),
            ("we_low", "evt_3"),
        ]
        .into();
        assert_eq!(pairs, expected);
        assert_eq!(all.len(), 5);
        for d in &all {
            assert_eq!(d.state, DeliveryState::Pending);
            assert_eq!(d.attempts, 0);
            assert_eq!(d.next_attempt_at, d.created_at);
            assert_eq!(
                (d.last_status, &d.last_error, d.delivered_at),
                (None, &None, None)
            );
        }
        assert_eq!(store.pending_deliveries().await.unwrap(), 5);

        store
            .notify(&[event("evt_4", "invoice.paid", T0 + 20)])
            .await
            .unwrap();
        let late = DeliveryQuery {
            endpoint_id: Some("we_late".into()),
            ..query()
        };
        let late = store.deliveries(&late).await.unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].event_id, "evt_4");
        assert_eq!(late[0].event_type, "invoice.paid");
    }

    pub(super) async fn claims_are_leased_and_attempts_recorded(store: Arc<dyn Store>) {
        store
            .create_endpoint(&endpoint("we_a", None, T0))
            .await
            .unwrap();
        store
            .notify(&[event("evt_1", "balance.low", T0 + 100)])
            .await
            .unwrap();

        assert!(
            store
                .claim_due(T0 + 99, LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let claimed = store.claim_due(T0 + 100, LEASE, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let first = &claimed[0];
        assert_eq!(first.attempts, 0);
        assert_eq!(first.lease_until, T0 + 100 + LEASE);
        assert_eq!(first.url, "https://example.com/hooks/we_a");
        assert_eq!(first.secret, "whsec_secret_of_we_a");
        assert_eq!(first.event_id, "evt_1");
        assert_eq!(first.event_type, "balance.low");
        assert_eq!(first.payload, r#"{"id":"evt_1","type":"balance.low"}"#);
        assert!(!format!("{first:?}").contains("secret_of"));
        // Held: nobody else gets it.
        assert!(
            store
                .claim_due(T0 + 200, LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );

        assert!(
            store
                .record_attempt(first, &retry(T0 + 5_000))
                .await
                .unwrap()
        );
        // Recording twice on the same claim does nothing.
        assert!(
            !store
                .record_attempt(first, &retry(T0 + 9_000))
                .await
                .unwrap()
        );
        let d = &store.deliveries(&query()).await.unwrap()[0];
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.attempts, 1);
        assert_eq!(d.next_attempt_at, T0 + 5_000);
        assert_eq!(d.last_status, Some(503));
        assert_eq!(d.last_error.as_deref(), Some("HTTP 503"));

        assert!(
            store
                .claim_due(T0 + 4_999, LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let second = store.claim_due(T0 + 5_000, LEASE, 10).await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].attempts, 1);
        let done = AttemptOutcome::Delivered {
            status: 204,
            at: T0 + 5_001,
        };
        assert!(store.record_attempt(&second[0], &done).await.unwrap());
        let d = &store.deliveries(&query()).await.unwrap()[0];
        assert_eq!(d.state, DeliveryState::Delivered);
        assert_eq!(d.attempts, 2);
        assert_eq!(d.last_status, Some(204));
        assert_eq!(d.last_error, None);
        assert_eq!(d.delivered_at, Some(T0 + 5_001));
        assert_eq!(store.pending_deliveries().await.unwrap(), 0);
        assert!(
            store
                .claim_due(i64::MAX / 2, LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Giving up ends a delivery as failed.
        store
            .notify(&[event("evt_2", "balance.low", T0)])
            .await
            .unwrap();
        let third = store.claim_due(T0, LEASE, 10).await.unwrap();
        let long_error = "x".repeat(5_000);
        let gave_up = AttemptOutcome::GaveUp {
            status: None,
            error: long_error,
            at: T0 + 1,
        };
        assert!(store.record_attempt(&third[0], &gave_up).await.unwrap());
        let failed = DeliveryQuery {
            state: Some(DeliveryState::Failed),
            ..query()
        };
        let failed = store.deliveries(&failed).await.unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!((failed[0].attempts, failed[0].last_status), (1, None));
        assert_eq!(failed[0].last_error.as_ref().map(String::len), Some(500));
        assert!(
            store
                .claim_due(i64::MAX / 2, LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub(super) async fn an_expired_lease_is_claimed_again_and_fences_the_old_claim(
        store: Arc<dyn Store>,
    ) {
        store
            .create_endpoint(&endpoint("we_a", None, T0))
            .await
            .unwrap();
        store
            .notify(&[event("evt_1", "balance.low", T0)])
            .await
            .unwrap();
        let old = store.claim_due(T0, LEASE, 10).await.unwrap().remove(0);
        assert!(
            store
                .claim_due(T0 + LEASE - 1, LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // The first node went quiet; its lease ends and another claims it.
        let new = store
            .claim_due(T0 + LEASE, LEASE, 10)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(new.seq, old.seq);
        assert!(new.lease_until > old.lease_until);
        let late = AttemptOutcome::Delivered {
            status: 200,
            at: T0 + LEASE + 1,
        };
        assert!(!store.record_attempt(&old, &late).await.unwrap());
        assert!(
            store
                .record_attempt(&new, &retry(T0 + 99_000))
                .await
                .unwrap()
        );
        let d = &store.deliveries(&query()).await.unwrap()[0];
        assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 1));
    }

    pub(super) async fn concurrent_claims_never_share_a_delivery(store: Arc<dyn Store>) {
        store
            .create_endpoint(&endpoint("we_a", None, T0))
            .await
            .unwrap();
        store
            .create_endpoint(&endpoint("we_b", None, T0))
            .await
            .unwrap();
        let events: Vec<NewNotification> = (0..30)
            .map(|i| event(&format!("evt_{i}"), "balance.low", T0 + i))
            .collect();
        store.notify(&events).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let got = store.claim_due(T0 + 100, LEASE, 4).await.unwrap();
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.into_iter().map(|d: DueDelivery| d.seq));
                    }
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for t in tasks {
            for seq in t.await.unwrap() {
                assert!(seen.insert(seq), "delivery {seq} claimed twice");
            }
        }
        assert_eq!(seen.len(), 60);
    }

    pub(super) async fn disabling_an_endpoint_fails_its_pending_deliveries(store: Arc<dyn Store>) {
        store
            .create_endpoint(&endpoint("we_a", None, T0))
            .await
            .unwrap();
        store
            .create_endpoint(&endpoint("we_b", None, T0))
            .await
            .unwrap();
        store
            .notify(&[event("evt_1", "balance.low", T0)])
            .await
            .unwrap();
        let held = store.claim_due(T0, LEASE, 10).await.unwrap();
        assert_eq!(held.len(), 2);
        store.disable_endpoint("we_a", T0 + 1).await.unwrap();
        let on_a = held.iter().find(|d| d.endpoint_id == "we_a").unwrap();
        let ok = AttemptOutcome::Delivered {
            status: 200,
            at: T0 + 2,
        };
        // The attempt in flight on the disabled endpoint is no longer held.
        assert!(!store.record_attempt(on_a, &ok).await.unwrap());
        let on_b = held.iter().find(|d| d.endpoint_id == "we_b").unwrap();
        assert!(store.record_attempt(on_b, &ok).await.unwrap());

        let a = DeliveryQuery {
            endpoint_id: Some("we_a".into()),
            ..query()
        };
        let a = store.deliveries(&a).await.unwrap();
        assert_eq!(a[0].state, DeliveryState::Failed);
        assert_eq!(
            a[0].last_error.as_deref(),
            Some("the endpoint was disabled")
        );

        // Events after the disabling do not go there at all.
        store
            .notify(&[event("evt_2", "balance.low", T0 + 3)])
            .await
            .unwrap();
        let due = store.claim_due(T0 + 10, LEASE, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].endpoint_id, "we_b");
    }

    pub(super) async fn deliveries_and_events_filter_and_page(store: Arc<dyn Store>) {
        store
            .create_endpoint(&endpoint("we_a", None, T0))
            .await
            .unwrap();
        store
            .create_endpoint(&endpoint("we_b", None, T0))
            .await
            .unwrap();
        let events: Vec<NewNotification> = (0..5)
            .map(|i| event(&format!("evt_{i}"), "balance.low", T0 + i))
            .collect();
        store.notify(&events).await.unwrap();

        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let q = DeliveryQuery {
                before_seq: before,
                limit: 3,
                ..query()
            };
            let page = store.deliveries(&q).await.unwrap();
            let Some(last) = page.last() else { break };
            before = Some(last.seq);
            pages.extend(page.iter().map(|d| d.seq));
        }
        assert_eq!(pages.len(), 10);
        assert!(pages.windows(2).all(|w| w[0] > w[1]), "newest first");

        let q = DeliveryQuery {
            endpoint_id: Some("we_b".into()),
            event_id: Some("evt_3".into()),
            ..query()
        };
        let one = store.deliveries(&q).await.unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            (one[0].endpoint_id.as_str(), one[0].event_id.as_str()),
            ("we_b", "evt_3")
        );
        let q = DeliveryQuery {
            state: Some(DeliveryState::Delivered),
            ..query()
        };
        assert!(store.deliveries(&q).await.unwrap().is_empty());

        let newest = store.notification_events(None, 2).await.unwrap();
        let ids: Vec<&str> = newest.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt_4", "evt_3"]);
        assert_eq!(newest[0].kind, "balance.low");
        assert_eq!(newest[0].account_id.as_deref(), Some("acct_1"));
        assert_eq!(newest[0].created_at, T0 + 4);
        let rest = store
            .notification_events(Some(newest[1].seq), 10)
            .await
            .unwrap();
        let ids: Vec<&str> = rest.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt_2", "evt_1", "evt_0"]);
    }
}
