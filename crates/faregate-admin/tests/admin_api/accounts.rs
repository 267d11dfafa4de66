//! `/v1/accounts`: create, show, list and page, and every refusal.

use serde_json::json;

use crate::harness::{Req, each_store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_created_shown_and_listed() {
    each_store("accounts_are_created_shown_and_listed", async |admin| {
        let body = json!({"name": "Acme Inc.", "currency": "usd"});
        let created = admin.ok(Req::post("/v1/accounts").json(&body), 201).await;
        let id = created["id"].as_str().unwrap();
        assert!(id.starts_with("acct_") && id.len() == 25, "{created}");
        assert_eq!(created["name"], "Acme Inc.");
        assert_eq!(created["currency"], "USD");
        assert_eq!(created["balance"], "0.000000");
        assert_eq!(created["spendable"], "0.000000");
        let at = created["created_at"].as_str().unwrap();
        assert!(
            at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
            "{at}"
        );

        let shown = admin.ok(Req::get(&format!("/v1/accounts/{id}")), 200).await;
        assert_eq!(shown, created);
        let stored = admin.store().account(id).await.unwrap().unwrap();
        assert_eq!(stored.name, "Acme Inc.");

        let listed = admin.ok(Req::get("/v1/accounts"), 200).await;
        assert_eq!(listed, json!({"data": [created], "next": null}));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_lists_page_by_id() {
    each_store("account_lists_page_by_id", async |admin| {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(admin.account("EUR").await);
        }
        ids.sort();
        let first = admin.ok(Req::get("/v1/accounts?limit=2"), 200).await;
        let page: Vec<_> = first["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].clone())
            .collect();
        assert_eq!(page, [json!(ids[0]), json!(ids[1])]);
        assert_eq!(first["next"], ids[1]);
        let next = first["next"].as_str().unwrap();
        let second = admin
            .ok(Req::get(&format!("/v1/accounts?limit=2&after={next}")), 200)
            .await;
        assert_eq!(second["data"].as_array().unwrap().len(), 1);
        assert_eq!(second["data"][0]["id"], ids[2]);
        assert_eq!(second["next"], json!(null));
        // A page that is exactly full has no next page.
        let exact = admin.ok(Req::get("/v1/accounts?limit=3"), 200).await;
        assert_eq!(exact["next"], json!(null));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_accounts_are_refused_and_nothing_is_written() {
    each_store(
        "bad_accounts_are_refused_and_nothing_is_written",
        async |admin| {
            let create = |body: serde_json::Value| Req::post("/v1/accounts").json(&body);
            let p = admin
                .refuses(
                    create(json!({"id": "acct_mine", "name": "A", "currency": "USD"})),
                    422,
                    "invalid_body",
                )
                .await;
            assert!(
                p["detail"].as_str().unwrap().contains("unknown field `id`"),
                "{p}"
            );
            for body in [
                json!({"name": "A"}),
                json!({"name": "A", "currency": 840}),
                json!({"name": ["A"], "currency": "USD"}),
                json!(["A", "USD"]),
            ] {
                admin.refuses(create(body), 422, "invalid_body").await;
            }
            for name in [
                json!(""),
                json!("   "),
                json!("a\u{7}b"),
                json!("x".repeat(201)),
            ] {
                let body = json!({"name": name, "currency": "USD"});
                admin.refuses(create(body), 422, "invalid_name").await;
            }
            for currency in ["XYZ", "", "US D"] {
                let body = json!({"name": "A", "currency": currency});
                admin.refuses(create(body), 422, "invalid_currency").await;
            }
            admin
                .refuses(
                    Req::post("/v1/accounts").raw("application/json", "{\"name\": \"A\","),
                    400,
                    "malformed_body",
                )
                .await;
            admin
                .refuses(
                    Req::get("/v1/accounts/acct_nobody"),
                    404,
                    "account_not_found",
                )
                .await;
            for query in ["limit=0", "limit=501", "limit=abc", "limit=-1", "bogus=1"] {
                admin
                    .refuses(
                        Req::get(&format!("/v1/accounts?{query}")),
                        400,
                        "invalid_query",
                    )
                    .await;
            }
            // A name of exactly the longest length is fine.
            let body = json!({"name": "é".repeat(200), "currency": "USD"});
            admin.ok(create(body), 201).await;
        },
    )
    .await;
}
