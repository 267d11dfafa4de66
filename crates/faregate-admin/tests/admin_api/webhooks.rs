//! Webhook endpoints (registered, shown without their secret, disabled),
//! the outbox's events and deliveries with their outcomes, and every
//! refusal; then one event delivered for real by the sender and seen
//! through the API and `/metrics`.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use faregate_core::SystemClock;
use faregate_rails::outbox::{Outbox, OutboxConfig};
use faregate_store::Store;
use faregate_store::notify::{AttemptOutcome, NewNotification};
use faregate_testkit::{Client, TestStore, Upstream};
use serde_json::{Value, json};

use crate::harness::{Admin, Req, TOKEN, assert_problem, config, each_store};

const HOOKS: &str = "/v1/webhook_endpoints";

fn register(body: &Value) -> Req {
    Req::post(HOOKS).json(body)
}

fn event(kind: &str, n: u32) -> NewNotification {
    NewNotification::new(kind, Some("acct_x"), json!({"n": n}), 1_700_000_000_000)
}

async fn endpoint_count(admin: &Admin) -> usize {
    admin.store().endpoints().await.unwrap().len()
}

fn ids(page: &Value, field: &str) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[field].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_endpoints_are_registered_shown_and_disabled() {
    each_store(
        "webhook_endpoints_are_registered_shown_and_disabled",
        async |admin| {
            let body = json!({
                "url": "https://hooks.example.com/faregate?src=1",
                "events": ["balance.low", "quota.threshold_reached"],
                "description": "billing team",
            });
            let low = admin.ok(register(&body), 201).await;
            let secret = low["secret"].as_str().unwrap().to_owned();
            assert!(secret.starts_with("whsec_") && secret.len() == 70, "{low}");
            let id = low["id"].as_str().unwrap().to_owned();
            assert!(id.starts_with("we_"), "{low}");
            assert_eq!(low["url"], body["url"]);
            assert_eq!(low["events"], body["events"]);
            assert_eq!(low["description"], "billing team");
            assert_eq!(low["disabled_at"], Value::Null);
            assert!(low["created_at"].as_str().unwrap().ends_with('Z'));

            let all = admin
                .ok(
                    register(&json!({"url": "http://127.0.0.1:9/x", "events": null})),
                    201,
                )
                .await;
            assert_eq!(
                (&all["events"], &all["description"]),
                (&Value::Null, &Value::Null)
            );

            let listed = admin.ok(Req::get(HOOKS), 200).await;
            assert_eq!(ids(&listed, "id").len(), 2);
            assert_eq!(listed["next"], Value::Null);
            let shown = admin.ok(Req::get(&format!("{HOOKS}/{id}")), 200).await;
            assert_eq!(shown["url"], body["url"]);
            for text in [listed.to_string(), shown.to_string()] {
                assert!(
                    !text.contains(&secret) && !text.contains("secret"),
                    "{text}"
                );
            }

            // The types each wants decide where an event goes.
            let store = admin.store();
            store
                .notify(&[event("balance.low", 1), event("invoice.paid", 2)])
                .await
                .unwrap();
            let page = admin
                .ok(
                    Req::get(&format!("/v1/webhook_deliveries?endpoint={id}")),
                    200,
                )
                .await;
            assert_eq!(ids(&page, "event_type"), ["balance.low"]);

            let gone = admin.ok(Req::delete(&format!("{HOOKS}/{id}")), 200).await;
            assert!(
                gone["disabled_at"].as_str().unwrap().ends_with('Z'),
                "{gone}"
            );
            assert!(gone.get("secret").is_none());
            // Deleted: the API knows it no more; the store keeps the record.
            for r in [
                Req::get(&format!("{HOOKS}/{id}")),
                Req::delete(&format!("{HOOKS}/{id}")),
            ] {
                admin.refuses(r, 404, "webhook_endpoint_not_found").await;
            }
            let listed = admin.ok(Req::get(HOOKS), 200).await;
            assert_eq!(ids(&listed, "id"), [all["id"].as_str().unwrap()]);
            assert!(
                store
                    .endpoint(&id)
                    .await
                    .unwrap()
                    .unwrap()
                    .disabled_at
                    .is_some()
            );
            // Its pending delivery failed; later events do not go there.
            let page = admin
                .ok(
                    Req::get(&format!("/v1/webhook_deliveries?endpoint={id}")),
                    200,
                )
                .await;
            assert_eq!(page["data"][0]["state"], "failed");
            store.notify(&[event("balance.low", 3)]).await.unwrap();
            let page = admin
                .ok(
                    Req::get(&format!("/v1/webhook_deliveries?endpoint={id}")),
                    200,
                )
                .await;
            assert_eq!(page["data"].as_array().unwrap().len(), 1);

            for r in [
                Req::get(&format!("{HOOKS}/we_nope")),
                Req::delete(&format!("{HOOKS}/we_nope")),
            ] {
                admin.refuses(r, 404, "webhook_endpoint_not_found").await;
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhook_endpoints_are_refused_and_nothing_is_written() {
    each_store(
        "bad_webhook_endpoints_are_refused_and_nothing_is_written",
        async |admin| {
            let url = "https://example.com/hook";
            let cases = [
                (json!({"url": "ftp://example.com/"}), "invalid_url"),
                (json!({"url": "example.com/hook"}), "invalid_url"),
                (
                    json!({"url": "https://user:pw@example.com/"}),
                    "invalid_url",
                ),
                (json!({"url": "https://example.com:99999/"}), "invalid_url"),
                (json!({"url": "https://example.com/#x"}), "invalid_url"),
                (json!({"url": ""}), "invalid_url"),
                (
                    json!({"url": format!("https://e.com/{}", "a".repeat(3000))}),
                    "invalid_url",
                ),
                (json!({"url": url, "events": []}), "invalid_events"),
                (
                    json!({"url": url, "events": ["Balance.Low"]}),
                    "invalid_events",
                ),
                (json!({"url": url, "events": ["a", "a"]}), "invalid_events"),
                (
                    json!({"url": url, "description": "x".repeat(501)}),
                    "invalid_description",
                ),
                (json!({"url": url, "events": "balance.low"}), "invalid_body"),
                (json!({"url": url, "secret": "whsec_mine"}), "invalid_body"),
                (json!({"events": ["a"]}), "invalid_body"),
                (json!({"url": 5}), "invalid_body"),
            ];
            for (body, code) in cases {
                admin.refuses(register(&body), 422, code).await;
            }
            admin
                .refuses(
                    Req::post(HOOKS).raw("application/json", "{\"url\":"),
                    400,
                    "malformed_body",
                )
                .await;
            admin
                .refuses(
                    Req::post(HOOKS).raw("text/plain", "{}"),
                    415,
                    "unsupported_media_type",
                )
                .await;
            assert_eq!(endpoint_count(admin).await, 0, "nothing was written");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_and_events_are_listed_with_their_outcomes() {
    each_store(
        "deliveries_and_events_are_listed_with_their_outcomes",
        async |admin| {
            let hook = admin
                .ok(register(&json!({"url": "https://example.com/h"})), 201)
                .await;
            let hook = hook["id"].as_str().unwrap().to_owned();
            let store = admin.store();
            let events = [
                event("balance.low", 1),
                event("invoice.paid", 2),
                event("balance.low", 3),
            ];
            store.notify(&events).await.unwrap();
            // The first is delivered, the second retried, the third given up.
            let due = store
                .claim_due(1_700_000_000_000, 60_000, 10)
                .await
                .unwrap();
            let t = 1_700_000_001_000;
            let outcomes = [
                AttemptOutcome::Delivered { status: 204, at: t },
                AttemptOutcome::Retry {
                    status: Some(503),
                    error: "HTTP 503".into(),
                    next_attempt_at: t + 10_000,
                },
                AttemptOutcome::GaveUp {
                    status: None,
                    error: "refused".into(),
                    at: t,
                },
            ];
            for (d, outcome) in due.iter().zip(&outcomes) {
                assert!(store.record_attempt(d, outcome).await.unwrap());
            }

            let page = admin.ok(Req::get("/v1/webhook_deliveries"), 200).await;
            assert_eq!(
                ids(&page, "event_id"),
                [&*events[2].id, &events[1].id, &events[0].id]
            );
            let [failed, retried, delivered] =
                [&page["data"][0], &page["data"][1], &page["data"][2]];
            assert_eq!(delivered["state"], "delivered");
            assert_eq!(delivered["attempts"], 1);
            assert_eq!(delivered["last_status"], 204);
            assert_eq!(delivered["last_error"], Value::Null);
            assert_eq!(delivered["delivered_at"], "2023-11-14T22:13:21.000Z");
            assert_eq!(delivered["next_attempt_at"], Value::Null);
            assert_eq!(delivered["endpoint_id"], hook.as_str());
            assert_eq!(delivered["event_type"], "balance.low");
            assert_eq!(delivered["created_at"], "2023-11-14T22:13:20.000Z");
            assert_eq!(retried["state"], "pending");
            assert_eq!(retried["last_status"], 503);
            assert_eq!(retried["last_error"], "HTTP 503");
            assert_eq!(retried["next_attempt_at"], "2023-11-14T22:13:31.000Z");
            assert_eq!(failed["state"], "failed");
            assert_eq!(
                (&failed["last_status"], &failed["last_error"]),
                (&Value::Null, &json!("refused"))
            );

            for (query, expected) in [
                ("state=pending", vec![&*events[1].id]),
                (&format!("event={}", events[2].id), vec![&*events[2].id]),
                ("endpoint=we_other", vec![]),
            ] {
                let page = admin
                    .ok(Req::get(&format!("/v1/webhook_deliveries?{query}")), 200)
                    .await;
                assert_eq!(ids(&page, "event_id"), expected, "{query}");
            }
            let first = admin
                .ok(Req::get("/v1/webhook_deliveries?limit=2"), 200)
                .await;
            let next = first["next"].as_str().unwrap();
            let rest = admin
                .ok(
                    Req::get(&format!(
                        "/v1/webhook_deliveries?limit=2&starting_after={next}"
                    )),
                    200,
                )
                .await;
            assert_eq!(ids(&rest, "event_id"), [&*events[0].id]);
            assert_eq!(rest["next"], Value::Null);

            let page = admin.ok(Req::get("/v1/events?limit=2"), 200).await;
            assert_eq!(ids(&page, "id"), [&*events[2].id, &events[1].id]);
            let newest = &page["data"][0];
            assert_eq!(newest["type"], "balance.low");
            assert_eq!(newest["account_id"], "acct_x");
            let payload: Value = serde_json::from_str(&events[2].payload).unwrap();
            assert_eq!(newest["payload"], payload);
            let next = page["next"].as_str().unwrap();
            let rest = admin
                .ok(Req::get(&format!("/v1/events?starting_after={next}")), 200)
                .await;
            assert_eq!(ids(&rest, "id"), [&*events[0].id]);

            for path in [
                "/v1/webhook_deliveries?state=lost",
                "/v1/webhook_deliveries?limit=0",
                "/v1/webhook_deliveries?starting_after=x",
                "/v1/webhook_deliveries?nope=1",
                "/v1/events?limit=501",
                "/v1/events?starting_after=1.5",
            ] {
                admin.refuses(Req::get(path), 400, "invalid_query").await;
            }
        },
    )
    .await;
}

/// One request per webhook route.
fn every_route() -> Vec<Req> {
    vec![
        register(&json!({"url": "https://example.com/"})),
        Req::get(HOOKS),
        Req::get(&format!("{HOOKS}/we_x")),
        Req::delete(&format!("{HOOKS}/we_x")),
        Req::get("/v1/webhook_deliveries"),
        Req::get("/v1/events"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_routes_need_the_token_and_a_store() {
    each_store("webhook_routes_need_the_token_and_a_store", async |admin| {
        for r in every_route() {
            admin
                .refuses(r.clone().token(None), 401, "invalid_admin_token")
                .await;
            admin
                .refuses(r.token(Some("wrong")), 401, "invalid_admin_token")
                .await;
        }
        assert_eq!(endpoint_count(admin).await, 0);
    })
    .await;
    let admin = Admin::without_store(&format!("[admin]\ntoken = \"{TOKEN}\"")).await;
    for r in every_route() {
        assert_problem(&admin.send(r).await, 503, "store_unavailable");
    }
    admin.stop().await;
}

/// Registered through the API, sent by the real sender to a real server,
/// listed as delivered, and counted on `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_delivered_and_shows_up_everywhere() {
    for db in TestStore::each("an_event_is_delivered_and_shows_up_everywhere").await {
        eprintln!(
            "an_event_is_delivered_and_shows_up_everywhere on {}",
            db.backend
        );
        let store = db.open().await;
        let outbox = Outbox::start(
            store.clone(),
            Arc::new(SystemClock),
            OutboxConfig {
                poll_interval: Duration::from_millis(20),
                batch: NonZeroU32::new(8).unwrap(),
                ..OutboxConfig::default()
            },
        );
        let (base, stop, served) = serve(store.clone(), outbox.clone()).await;
        let client = Client::http1();
        let send = async |method: &str, path: &str, body: Option<Value>| {
            let mut r = http::Request::builder()
                .method(method)
                .uri(format!("{base}{path}"))
                .header("authorization", format!("Bearer {TOKEN}"));
            if body.is_some() {
                r = r.header("content-type", "application/json");
            }
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            client
                .send(r.body(http_body_util::Full::new(body.into())).unwrap())
                .await
        };
        let upstream = Upstream::start().await;
        let url = format!("{}/status/200", upstream.url());
        let created = send("POST", HOOKS, Some(json!({"url": url}))).await;
        assert_eq!(created.status, 201, "{}", created.text());

        store.notify(&[event("balance.low", 1)]).await.unwrap();
        outbox.wake();
        let mut delivered = Value::Null;
        for _ in 0..250 {
            let page = send("GET", "/v1/webhook_deliveries?state=delivered", None)
                .await
                .json();
            if let Some(d) = page["data"].get(0) {
                delivered = d.clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(delivered["attempts"], 1, "{delivered}");
        assert_eq!(delivered["last_status"], 200);
        assert_eq!(upstream.requests(), 1);
        let metrics = send("GET", "/metrics", None).await.text();
        assert!(
            metrics.contains("faregate_notifications_delivered_total 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("faregate_notification_backlog"),
            "{metrics}"
        );

        let _ = stop.send(());
        served.await.unwrap().unwrap();
        outbox.close().await;
    }
}

type Served = tokio::task::JoinHandle<std::io::Result<()>>;

/// The admin router with the sender's metrics, on a loopback port.
async fn serve(
    store: Arc<dyn Store>,
    outbox: Arc<Outbox>,
) -> (String, tokio::sync::oneshot::Sender<()>, Served) {
    let credits = faregate_rails::credits::Credits::start(store, Default::default())
        .await
        .unwrap();
    let text = config(&format!("[admin]\ntoken = \"{TOKEN}\""));
    let cfg = faregate_gateway::config::load(
        &text,
        Path::new("."),
        &|_| None,
        &[faregate_core::RailKind::Credits],
    )
    .unwrap();
    let gw = faregate_gateway::Gateway::builder(cfg).build().unwrap();
    let router = faregate_admin::builder(gw)
        .credits(credits)
        .outbox(outbox)
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(faregate_admin::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    (base, stop, served)
}
