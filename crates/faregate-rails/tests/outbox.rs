//! The notification outbox end to end: real HTTP on loopback ports, a real
//! store (a SQLite file and, when `FAREGATE_TEST_DATABASE_URL` is set, a
//! fresh PostgreSQL schema), and a fake clock moved past the backoff so
//! retries come due without waiting for them.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use faregate_core::{Clock, FakeClock};
use faregate_rails::outbox::{Outbox, OutboxConfig, new_secret};
use faregate_rails::signature::{DEFAULT_TOLERANCE, verify};
use faregate_store::Store;
use faregate_store::notify::{DeliveryQuery, DeliveryState, NewNotification, NotificationEndpoint};
use faregate_testkit::{TestStore, Upstream, dead_port};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;

const START_NANOS: u64 = 1_700_000_000_000_000_000;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One request as the endpoint saw it, and what it answered.
#[derive(Debug, Clone)]
struct Seen {
    headers: http::HeaderMap,
    body: Bytes,
    answered: u16,
}

/// A webhook receiver on a loopback port that answers every POST with the
/// status it is set to, and remembers what came.
#[derive(Clone)]
struct Receiver {
    status: Arc<AtomicU16>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start(addr: SocketAddr, status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind receiver");
        let receiver = Self {
            status: Arc::new(AtomicU16::new(status)),
            seen: Arc::default(),
        };
        let served = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let r = served.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let r = r.clone();
                        async move { Ok::<_, Infallible>(r.handle(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        receiver
    }

    async fn handle(&self, req: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let answered = self.status.load(Ordering::SeqCst);
        assert_eq!(parts.method, http::Method::POST);
        self.seen.lock().push(Seen {
            headers: parts.headers,
            body,
            answered,
        });
        let mut response = http::Response::new(Full::new(Bytes::from_static(b"{\"ok\":1}")));
        *response.status_mut() = http::StatusCode::from_u16(answered).expect("status");
        response
    }

    fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

fn config(max_attempts: u32, timeout: Duration) -> OutboxConfig {
    OutboxConfig {
        poll_interval: Duration::from_millis(20),
        timeout,
        max_attempts: NonZeroU32::new(max_attempts).expect("not zero"),
        base_backoff: Duration::from_secs(10),
        max_backoff: MAX_BACKOFF,
        user_agent: "faregate-test/1".into(),
        batch: NonZeroU32::new(4).expect("not zero"),
    }
}

async fn register(store: &dyn Store, url: String, now_ms: i64) -> NotificationEndpoint {
    let endpoint = NotificationEndpoint {
        id: faregate_store::new_id("we"),
        url,
        secret: new_secret(),
        events: None,
        description: None,
        created_at: now_ms,
        disabled_at: None,
    };
    store
        .create_endpoint(&endpoint)
        .await
        .expect("create endpoint");
    endpoint
}

async fn queue(store: &dyn Store, clock: &FakeClock, n: usize) -> Vec<NewNotification> {
    let now_ms = i64::try_from(clock.now() / 1_000_000).unwrap();
    let events: Vec<NewNotification> = (0..n)
        .map(|i| {
            NewNotification::new(
                "balance.low",
                Some("acct_test"),
                serde_json::json!({"n": i}),
                now_ms,
            )
        })
        .collect();
    store.notify(&events).await.expect("notify");
    events
}

fn all() -> DeliveryQuery {
    DeliveryQuery {
        limit: 1000,
        ..DeliveryQuery::default()
    }
}

/// Waits (in real time) until every delivery has `attempts` attempts.
async fn until_attempts(store: &dyn Store, outbox: &Outbox, attempts: u32) {
    for _ in 0..500 {
        outbox.wake();
        let d = store.deliveries(&all()).await.expect("deliveries");
        if d.iter().all(|d| d.attempts >= attempts) {
            assert!(d.iter().all(|d| d.attempts == attempts), "{d:?}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("deliveries did not reach {attempts} attempts");
}

fn secs(clock: &FakeClock) -> u64 {
    clock.now() / 1_000_000_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_endpoint_receives_every_event_once_it_is_back() {
    for db in TestStore::each("a_down_endpoint_receives_every_event_once_it_is_back").await {
        eprintln!("on {}", db.backend);
        down_then_back(db.open().await).await;
    }
}

async fn down_then_back(store: Arc<dyn Store>) {
    let clock = Arc::new(FakeClock::new(START_NANOS));
    let now_ms = i64::try_from(clock.now() / 1_000_000).unwrap();
    let addr = dead_port().await;
    let endpoint = register(&*store, format!("http://{addr}/hooks"), now_ms).await;
    let outbox = Outbox::start(
        store.clone(),
        clock.clone(),
        config(10, Duration::from_secs(2)),
    );
    let events = queue(&*store, &clock, 6).await;

    // Round 1: nothing listens.
    until_attempts(&*store, &outbox, 1).await;
    let d = store.deliveries(&all()).await.unwrap();
    assert!(
        d.iter()
            .all(|d| d.last_status.is_none() && d.last_error.is_some()),
        "{d:?}"
    );
    assert_eq!(outbox.stats().failed_attempts.load(Ordering::SeqCst), 6);

    // Rounds 2 and 3: it listens and answers 503. Nothing is retried
    // before its backoff has passed.
    let receiver = Receiver::start(addr, 503).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(receiver.seen().is_empty(), "retried before the backoff");
    for round in 2..=3 {
        clock.advance(MAX_BACKOFF);
        until_attempts(&*store, &outbox, round).await;
    }
    let failed = receiver.seen();
    assert_eq!(failed.len(), 12);
    assert!(failed.iter().all(|s| s.answered == 503));
    let d = store.deliveries(&all()).await.unwrap();
    assert!(
        d.iter()
            .all(|d| d.last_status == Some(503) && d.state == DeliveryState::Pending)
    );

    // Back: every event arrives, once each with a 200.
    receiver.set_status(200);
    clock.advance(MAX_BACKOFF);
    let sent_at = secs(&clock);
    until_attempts(&*store, &outbox, 4).await;
    let seen = receiver.seen();
    let ok: Vec<&Seen> = seen.iter().filter(|s| s.answered == 200).collect();
    assert_eq!(ok.len(), events.len());
    let mut by_id: HashMap<String, &Seen> = HashMap::new();
    for s in &ok {
        let id = header(s, "faregate-event-id");
        assert!(
            by_id.insert(id.clone(), s).is_none(),
            "{id} delivered twice"
        );
    }
    for event in &events {
        let s = by_id
            .get(&event.id)
            .unwrap_or_else(|| panic!("{} never came", event.id));
        assert_eq!(
            s.body,
            event.payload.as_bytes(),
            "the body is the payload as stored"
        );
        assert_eq!(header(s, "faregate-event-type"), "balance.low");
        assert_eq!(header(s, "content-type"), "application/json");
        assert_eq!(header(s, "user-agent"), "faregate-test/1");
        let sig = header(s, "faregate-signature");
        let secret = endpoint.secret.as_bytes();
        assert_eq!(
            verify(&sig, &s.body, &[secret], sent_at, DEFAULT_TOLERANCE),
            Ok(sent_at),
            "signed with the endpoint's secret at the clock's time"
        );
        assert!(verify(&sig, &s.body, &[b"whsec_other"], sent_at, DEFAULT_TOLERANCE).is_err());
    }
    // Every failed attempt was signed too.
    for s in &seen {
        let sig = header(s, "faregate-signature");
        let t: u64 = sig[2..sig.find(',').unwrap()].parse().unwrap();
        verify(
            &sig,
            &s.body,
            &[endpoint.secret.as_bytes()],
            t,
            DEFAULT_TOLERANCE,
        )
        .unwrap();
    }
    let ids: HashSet<&String> = events.iter().map(|e| &e.id).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");

    let d = store.deliveries(&all()).await.unwrap();
    assert_eq!(d.len(), events.len());
    for d in &d {
        assert_eq!(d.state, DeliveryState::Delivered, "{d:?}");
        assert_eq!(
            (d.attempts, d.last_status, &d.last_error),
            (4, Some(200), &None)
        );
        assert_eq!(d.delivered_at, Some(i64::try_from(sent_at).unwrap() * 1000));
    }

    // Nothing more is sent, however long we wait.
    clock.advance(MAX_BACKOFF * 100);
    outbox.wake();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(receiver.seen().len(), seen.len());
    let metrics = outbox.render_metrics();
    assert!(
        metrics.contains("faregate_notifications_delivered_total 6\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("faregate_notification_attempts_failed_total 18\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("faregate_notification_backlog 0\n"),
        "{metrics}"
    );
    assert!(!metrics.contains(&endpoint.secret));
    outbox.close().await;
}

fn header(s: &Seen, name: &str) -> String {
    s.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_down_past_max_attempts_ends_failed() {
    for db in TestStore::each("an_endpoint_down_past_max_attempts_ends_failed").await {
        eprintln!("on {}", db.backend);
        down_for_good(db.open().await).await;
    }
}

async fn down_for_good(store: Arc<dyn Store>) {
    let clock = Arc::new(FakeClock::new(START_NANOS));
    let now_ms = i64::try_from(clock.now() / 1_000_000).unwrap();
    // One refuses connections; the other answers too late.
    let dead = register(&*store, format!("http://{}/", dead_port().await), now_ms).await;
    let slow = Upstream::start().await;
    let slow = register(&*store, format!("{}/slow/5000", slow.url()), now_ms).await;
    let timeout = Duration::from_millis(300);
    let outbox = Outbox::start(store.clone(), clock.clone(), config(3, timeout));
    queue(&*store, &clock, 2).await;

    for round in 1..=3 {
        if round > 1 {
            clock.advance(MAX_BACKOFF);
        }
        until_attempts(&*store, &outbox, round).await;
    }
    let d = store.deliveries(&all()).await.unwrap();
    assert_eq!(d.len(), 4);
    for d in &d {
        assert_eq!(
            (d.state, d.attempts, d.last_status),
            (DeliveryState::Failed, 3, None)
        );
        let error = d.last_error.as_deref().unwrap();
        if d.endpoint_id == dead.id {
            assert!(error.to_lowercase().contains("connect"), "{error}");
        } else {
            assert_eq!(d.endpoint_id, slow.id);
            assert_eq!(error, "no answer within 300 ms");
        }
    }
    clock.advance(MAX_BACKOFF * 100);
    outbox.wake();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let d = store.deliveries(&all()).await.unwrap();
    assert!(
        d.iter().all(|d| d.attempts == 3),
        "given up means no more attempts"
    );
    assert_eq!(outbox.stats().given_up.load(Ordering::SeqCst), 4);
    assert_eq!(outbox.stats().delivered.load(Ordering::SeqCst), 0);
    outbox.close().await;
}
