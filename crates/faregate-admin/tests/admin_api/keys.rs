//! An account's API keys: issued once in clear, listed without secrets,
//! revoked; and every refusal.

use std::time::{SystemTime, UNIX_EPOCH};

use faregate_rails::KeyDirectory;
use serde_json::{Value, json};

use crate::harness::{Req, each_store};

fn now_secs() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_secs()).unwrap()
}

fn issue(account: &str, body: &Value) -> Req {
    Req::post(&format!("/v1/accounts/{account}/keys")).json(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_issued_listed_and_revoked() {
    each_store("keys_are_issued_listed_and_revoked", async |admin| {
        let credits = admin.credits.clone().unwrap();
        let account = admin.account("USD").await;

        let live = admin.ok(issue(&account, &json!({})), 201).await;
        let key = live["key"].as_str().unwrap().to_owned();
        assert!(key.starts_with("fg_live_") && key.len() == 40, "{live}");
        assert_eq!(live["prefix"], key[..12]);
        assert_eq!(live["account_id"], account);
        assert_eq!(live["live"], true);
        assert_eq!(live["routes"], Value::Null);
        assert_eq!(live["expires_at"], Value::Null);
        assert_eq!(live["revoked_at"], Value::Null);
        assert!(live.get("hash").is_none(), "{live}");
        assert!(credits.find(&key).is_some(), "the key works at once");

        let expires = now_secs() + 3600;
        let body = json!({"live": false, "routes": ["search"], "expires_at": expires});
        let test = admin.ok(issue(&account, &body), 201).await;
        assert!(test["key"].as_str().unwrap().starts_with("fg_test_"));
        assert_eq!(test["routes"], json!(["search"]));
        let id = test["id"].as_str().unwrap();
        let stored = admin.store().key(id).await.unwrap().unwrap();
        assert_eq!(stored.expires_at, Some(expires * 1000));
        assert_eq!(stored.routes.as_deref(), Some(&["search".to_owned()][..]));

        let body = json!({"expires_at": "2999-01-31T12:00:00+01:00", "routes": ["search", "chat"]});
        let dated = admin.ok(issue(&account, &body), 201).await;
        assert_eq!(dated["expires_at"], "2999-01-31T11:00:00.000Z");

        let listed = admin
            .ok(Req::get(&format!("/v1/accounts/{account}/keys")), 200)
            .await;
        let data = listed["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        assert_eq!(listed["next"], Value::Null);
        let text = listed.to_string();
        assert!(
            !text.contains(&key) && !text.contains(&stored.hash),
            "{text}"
        );
        assert!(
            data.iter()
                .all(|k| k.get("key").is_none() && k.get("hash").is_none())
        );

        let live_id = live["id"].as_str().unwrap();
        let revoked = admin
            .ok(Req::delete(&format!("/v1/keys/{live_id}")), 200)
            .await;
        assert_eq!(revoked["id"], live_id);
        let revoked_at = revoked["revoked_at"].as_str().unwrap().to_owned();
        assert!(revoked.get("key").is_none() && revoked.get("hash").is_none());
        assert!(credits.find(&key).is_none(), "a revoked key stops working");
        // Revoking again keeps the first time.
        let again = admin
            .ok(Req::delete(&format!("/v1/keys/{live_id}")), 200)
            .await;
        assert_eq!(again["revoked_at"], revoked_at);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_are_refused_and_nothing_is_written() {
    each_store(
        "bad_keys_are_refused_and_nothing_is_written",
        async |admin| {
            let account = admin.account("USD").await;
            let past = now_secs() - 1;
            for (body, code) in [
                (json!({"account_id": account}), "invalid_body"),
                (json!({"live": "yes"}), "invalid_body"),
                (json!({"routes": "search"}), "invalid_body"),
                (json!({"routes": []}), "invalid_routes"),
                (json!({"routes": ["nope"]}), "invalid_routes"),
                (json!({"routes": ["search", "search"]}), "invalid_routes"),
                (json!({"expires_at": past}), "invalid_expiry"),
                (json!({"expires_at": 1}), "invalid_expiry"),
                (
                    json!({"expires_at": "2000-01-01T00:00:00Z"}),
                    "invalid_expiry",
                ),
                (json!({"expires_at": "tomorrow"}), "invalid_expiry"),
                (json!({"expires_at": 1.5e9}), "invalid_expiry"),
                (json!({"expires_at": true}), "invalid_expiry"),
                (json!({"expires_at": -5}), "invalid_expiry"),
            ] {
                admin.refuses(issue(&account, &body), 422, code).await;
            }
            admin
                .refuses(issue("acct_nobody", &json!({})), 404, "account_not_found")
                .await;
            admin
                .refuses(
                    Req::get("/v1/accounts/acct_nobody/keys"),
                    404,
                    "account_not_found",
                )
                .await;
            admin
                .refuses(Req::delete("/v1/keys/key_nobody"), 404, "key_not_found")
                .await;
            // A key needs a JSON body, `{}` at least.
            admin
                .refuses(
                    Req::post(&format!("/v1/accounts/{account}/keys")),
                    415,
                    "unsupported_media_type",
                )
                .await;
        },
    )
    .await;
}
