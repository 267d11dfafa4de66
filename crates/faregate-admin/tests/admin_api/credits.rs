//! `POST /v1/accounts/{id}/credits`: money in, exactly once per
//! Idempotency-Key, and every refusal.

use serde_json::{Value, json};

use crate::harness::{Req, each_store};

fn five() -> Value {
    json!({"amount": "5.00", "currency": "USD", "reason": "welcome credit"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_are_added_once_per_idempotency_key() {
    each_store(
        "credits_are_added_once_per_idempotency_key",
        async |admin| {
            let account = admin.account("USD").await;
            let first = admin.send(Req::credit(&account, "order-1", &five())).await;
            assert_eq!(first.status, 201, "{}", first.text());
            assert_eq!(first.header("idempotent-replayed"), None);
            let credit = first.json();
            assert_eq!(credit["account_id"], account);
            assert_eq!(credit["amount"], "5.000000");
            assert_eq!(credit["currency"], "USD");
            assert_eq!(credit["reason"], "welcome credit");
            assert!(
                credit["transaction_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("tx_")
            );
            let shown = admin
                .ok(Req::get(&format!("/v1/accounts/{account}")), 200)
                .await;
            assert_eq!(shown["balance"], "5.000000");
            assert_eq!(shown["spendable"], "5.000000");

            // The same request again: the same answer, byte for byte, and no
            // new money. The amount may be written differently.
            let before = admin.written().await;
            let same = json!({"amount": "5.000", "currency": "usd", "reason": "welcome credit"});
            let replay = admin.send(Req::credit(&account, "order-1", &same)).await;
            assert_eq!(replay.status, 201);
            assert_eq!(replay.header("idempotent-replayed"), Some("true"));
            assert_eq!(replay.body, first.body);
            assert_eq!(admin.written().await, before);

            // The same key for another request is refused, even for the amount
            // alone or the reason alone, and the first answer still replays.
            for other in [
                json!({"amount": "5.01", "currency": "USD", "reason": "welcome credit"}),
                json!({"amount": "5.00", "currency": "USD", "reason": "other"}),
                json!({"amount": "5.00", "currency": "USD"}),
            ] {
                let p = admin
                    .refuses(
                        Req::credit(&account, "order-1", &other),
                        422,
                        "idempotency_key_reused",
                    )
                    .await;
                assert!(!p["detail"].as_str().unwrap().contains("order-1"), "{p}");
            }
            let again = admin.send(Req::credit(&account, "order-1", &five())).await;
            assert_eq!(again.body, first.body);

            // Keys are per account.
            let other = admin.account("USD").await;
            let theirs = admin.send(Req::credit(&other, "order-1", &five())).await;
            assert_eq!(theirs.status, 201);
            assert_eq!(theirs.header("idempotent-replayed"), None);

            // The ledger refers to the Idempotency-Key.
            let ledger = admin
                .ok(Req::get(&format!("/v1/accounts/{account}/ledger")), 200)
                .await;
            assert_eq!(ledger["data"].as_array().unwrap().len(), 1);
            assert_eq!(ledger["data"][0]["reference"], "order-1");
            assert_eq!(ledger["data"][0]["memo"], "welcome credit");
            assert_eq!(ledger["data"][0]["id"], credit["transaction_id"]);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_add_money_once() {
    each_store("concurrent_retries_add_money_once", async |admin| {
        let account = admin.account("USD").await;
        let replies =
            futures_join((0..8).map(|_| admin.send(Req::credit(&account, "retry-storm", &five()))))
                .await;
        let fresh = replies
            .iter()
            .filter(|r| r.header("idempotent-replayed").is_none());
        assert_eq!(fresh.count(), 1);
        for r in &replies {
            assert_eq!(r.status, 201, "{}", r.text());
            assert_eq!(r.body, replies[0].body);
        }
        let shown = admin
            .ok(Req::get(&format!("/v1/accounts/{account}")), 200)
            .await;
        assert_eq!(shown["balance"], "5.000000");
    })
    .await;
}

/// Runs `futures` at once and waits for all of them.
async fn futures_join<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("done")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credits_are_refused_and_nothing_is_written() {
    each_store(
        "bad_credits_are_refused_and_nothing_is_written",
        async |admin| {
            let account = admin.account("USD").await;
            let credit = |body: Value| Req::credit(&account, "k-1", &body);
            let amount = |a: Value| json!({"amount": a, "currency": "USD"});
            for bad in [
                json!("-5"),
                json!("0"),
                json!("0.000000"),
                json!("1e3"),
                json!("abc"),
                json!("5.0000001"),
                json!(""),
                json!(" 5"),
                json!("5."),
                json!("9223372036854.775808"),
                json!(5),
                json!(5.0),
                json!(-5),
                json!(null),
            ] {
                let p = admin
                    .refuses(credit(amount(bad.clone())), 422, "invalid_amount")
                    .await;
                assert!(p["detail"].is_string(), "{bad}: {p}");
            }
            let p = admin
                .refuses(
                    credit(json!({"amount": "5", "currency": "USD", "note": "x"})),
                    422,
                    "invalid_body",
                )
                .await;
            assert!(
                p["detail"]
                    .as_str()
                    .unwrap()
                    .contains("unknown field `note`"),
                "{p}"
            );
            admin
                .refuses(credit(json!({"currency": "USD"})), 422, "invalid_body")
                .await;
            admin
                .refuses(credit(json!({"amount": "5"})), 422, "invalid_body")
                .await;
            admin
                .refuses(
                    credit(json!({"amount": "5", "currency": "EUR"})),
                    422,
                    "currency_mismatch",
                )
                .await;
            admin
                .refuses(
                    credit(json!({"amount": "5", "currency": "XYZ"})),
                    422,
                    "invalid_currency",
                )
                .await;
            admin
                .refuses(
                    credit(json!({"amount": "5", "currency": "USD", "reason": " "})),
                    422,
                    "invalid_reason",
                )
                .await;
            admin
                .refuses(
                    Req::credit("acct_nobody", "k-1", &five()),
                    404,
                    "account_not_found",
                )
                .await;
            let path = format!("/v1/accounts/{account}/credits");
            admin
                .refuses(
                    Req::post(&path).json(&five()),
                    400,
                    "idempotency_key_required",
                )
                .await;
            for key in ["", &"k".repeat(256), "caf\u{e9}", "tab\there"] {
                let r = Req::post(&path)
                    .header("idempotency-key", key)
                    .json(&five());
                admin.refuses(r, 400, "invalid_idempotency_key").await;
            }
            let twice = Req::credit(&account, "a", &five()).header("idempotency-key", "b");
            admin.refuses(twice, 400, "invalid_idempotency_key").await;

            // A refused request is not remembered: the key is still free.
            let ok = admin.send(credit(five())).await;
            assert_eq!(ok.status, 201, "{}", ok.text());
            assert_eq!(ok.header("idempotent-replayed"), None);
            let longest = Req::credit(&account, &"k".repeat(255), &five());
            assert_eq!(admin.send(longest).await.status, 201);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_past_what_the_ledger_holds_are_refused() {
    each_store(
        "credits_past_what_the_ledger_holds_are_refused",
        async |admin| {
            let account = admin.account("USD").await;
            let most = json!({"amount": "9223372036854.775807", "currency": "USD"});
            assert_eq!(
                admin.send(Req::credit(&account, "max", &most)).await.status,
                201
            );
            let one = json!({"amount": "0.000001", "currency": "USD"});
            admin
                .refuses(
                    Req::credit(&account, "one-more", &one),
                    422,
                    "invalid_amount",
                )
                .await;
            // Funding went down by as much: one more micro-dollar takes it to
            // the lowest balance the ledger holds, and no further.
            let other = admin.account("USD").await;
            assert_eq!(
                admin.send(Req::credit(&other, "last", &one)).await.status,
                201
            );
            admin
                .refuses(Req::credit(&other, "one-more", &one), 422, "invalid_amount")
                .await;
        },
    )
    .await;
}
