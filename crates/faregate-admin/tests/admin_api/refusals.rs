//! What every route shares: the token, the store, the body limit, media
//! types, axum's own rejections as problem documents, and the OpenAPI
//! document.

use serde_json::json;

use crate::harness::{Admin, Req, TOKEN, assert_problem, each_store};

/// One request per `/v1` route, each valid but for what a test changes.
fn every_route(account: &str) -> Vec<Req> {
    let credit = json!({"amount": "1", "currency": "USD"});
    vec![
        Req::post("/v1/reload"),
        Req::post("/v1/accounts").json(&json!({"name": "A", "currency": "USD"})),
        Req::get("/v1/accounts"),
        Req::get(&format!("/v1/accounts/{account}")),
        Req::put(&format!("/v1/accounts/{account}/budget"))
            .json(&json!({"amount": "5", "period": "day"})),
        Req::delete(&format!("/v1/accounts/{account}/budget")),
        Req::post(&format!("/v1/accounts/{account}/keys")).json(&json!({})),
        Req::get(&format!("/v1/accounts/{account}/keys")),
        Req::delete("/v1/keys/key_x"),
        Req::credit(account, "k", &credit),
        Req::get(&format!("/v1/accounts/{account}/ledger")),
        Req::get(&format!("/v1/accounts/{account}/usage")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_route_needs_the_token() {
    each_store("every_v1_route_needs_the_token", async |admin| {
        let account = admin.account("USD").await;
        for r in every_route(&account) {
            for token in [None, Some("wrong"), Some("")] {
                let what = format!("{r:?}");
                let p = admin
                    .refuses(r.clone().token(token), 401, "invalid_admin_token")
                    .await;
                assert!(!p.to_string().contains(TOKEN), "{what}");
            }
            let reply = admin.send(r.token(None)).await;
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Bearer realm=\"faregate-admin\"")
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_configured_the_api_is_closed() {
    let admin = Admin::without_store("[admin]").await;
    for r in every_route("acct_x") {
        assert_problem(&admin.send(r).await, 403, "admin_token_unset");
    }
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_account_routes_answer_503() {
    let admin = Admin::without_store(&format!("[admin]\ntoken = \"{TOKEN}\"")).await;
    for r in every_route("acct_x").into_iter().skip(1) {
        assert_problem(&admin.send(r).await, 503, "store_unavailable");
    }
    // Even when the request is bad otherwise.
    let bad = Req::post("/v1/accounts").raw("text/plain", "{");
    assert_problem(&admin.send(bad).await, 503, "store_unavailable");
    // The reload route is not about the store.
    assert_problem(
        &admin.send(Req::post("/v1/reload")).await,
        409,
        "reload_unavailable",
    );
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_json_and_small() {
    each_store("bodies_must_be_json_and_small", async |admin| {
        let account = admin.account("USD").await;
        let huge = json!({"name": "x".repeat(70 * 1024), "currency": "USD"});
        let huge_credit =
            json!({"amount": "1", "currency": "USD", "reason": "x".repeat(70 * 1024)});
        let create = Req::post("/v1/accounts");
        admin
            .refuses(create.clone().json(&huge), 413, "payload_too_large")
            .await;
        admin
            .refuses(
                Req::credit(&account, "big", &huge_credit),
                413,
                "payload_too_large",
            )
            .await;
        let body = json!({"name": "A", "currency": "USD"}).to_string();
        for ct in ["text/plain", "application/x-www-form-urlencoded", "json"] {
            let r = create.clone().raw(ct, body.clone());
            admin.refuses(r, 415, "unsupported_media_type").await;
        }
        admin
            .refuses(create.clone(), 415, "unsupported_media_type")
            .await;
        for text in [
            "",
            "{",
            "{\"name\": \"A\",}",
            "nul",
            "{\"name\": \"A\"} x",
            "\u{feff}{}",
        ] {
            let r = create.clone().raw("application/json", text);
            let p = admin.refuses(r, 400, "malformed_body").await;
            assert!(p["detail"].is_string(), "{text:?}");
        }
        let charset = create.raw("application/json; charset=utf-8", body);
        admin.ok(charset, 201).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_rejections_are_problem_documents() {
    each_store("axum_rejections_are_problem_documents", async |admin| {
        let invalid_utf8 = admin
            .refuses(Req::get("/v1/accounts/%FF%FE"), 400, "invalid_path")
            .await;
        assert!(invalid_utf8["detail"].is_string());
        admin
            .refuses(Req::get("/v1/accounts/%FF/keys"), 400, "invalid_path")
            .await;
        admin
            .refuses(Req::delete("/v1/keys/%C3%28"), 400, "invalid_path")
            .await;
        admin
            .refuses(Req::get("/v1/nothing"), 404, "not_found")
            .await;
        admin
            .refuses(Req::get("/v1/accounts/a/b/c"), 404, "not_found")
            .await;
        admin.refuses(Req::get("/"), 404, "not_found").await;
        admin
            .refuses(Req::new("PUT", "/v1/accounts"), 405, "method_not_allowed")
            .await;
        admin
            .refuses(Req::get("/v1/reload"), 405, "method_not_allowed")
            .await;
        let put = admin.send(Req::new("PUT", "/v1/accounts")).await;
        let mut allowed: Vec<_> = put.header("allow").unwrap().split(',').collect();
        allowed.sort_unstable();
        assert_eq!(allowed, ["GET", "HEAD", "POST"]);
        admin
            .refuses(
                Req::new("PATCH", "/v1/keys/key_x"),
                405,
                "method_not_allowed",
            )
            .await;
        admin
            .refuses(Req::post("/healthz"), 405, "method_not_allowed")
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_public_and_lists_what_is_served() {
    each_store(
        "the_openapi_document_is_public_and_lists_what_is_served",
        async |admin| {
            let reply = admin.send(Req::get("/openapi.json").token(None)).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.header("content-type"), Some("application/json"));
            let doc = reply.json();
            assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
            let paths = doc["paths"].as_object().unwrap();
            for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/v1/")) {
                for method in item.as_object().unwrap().keys() {
                    let concrete = path.replace("{id}", "acct_x").replace("{key_id}", "key_x");
                    let method: &'static str = match method.as_str() {
                        "get" => "GET",
                        "post" => "POST",
                        "put" => "PUT",
                        "delete" => "DELETE",
                        other => panic!("unexpected method {other}"),
                    };
                    let reply = admin.send(Req::new(method, &concrete)).await;
                    let code = reply.json()["code"].clone();
                    assert!(
                        reply.status != 405 && code != "not_found",
                        "{method} {path} is documented but not served: {}",
                        reply.text()
                    );
                }
            }
            for public in ["/healthz", "/metrics"] {
                assert_eq!(admin.send(Req::get(public).token(None)).await.status, 200);
            }
        },
    )
    .await;
}
