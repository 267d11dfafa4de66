//! Plans, subscriptions, invoices and receipts: `GET /v1/plans`,
//! `POST|GET|DELETE /v1/accounts/{id}/subscription`, `GET /v1/invoices`,
//! `GET /v1/receipts` and one of each, with every refusal.

use faregate_store::{BillingChange, ProcessorObject};
use serde_json::{Value, json};

use crate::harness::{Admin, PLANS, Req, each_store, each_store_with_plans};

fn subscription(account: &str) -> String {
    format!("/v1/accounts/{account}/subscription")
}

fn start(account: &str, body: &Value) -> Req {
    Req::post(&subscription(account)).json(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_are_listed_as_configured() {
    each_store_with_plans("plans_are_listed_as_configured", PLANS, async |admin| {
        let page = admin.ok(Req::get("/v1/plans"), 200).await;
        assert_eq!(page["next"], Value::Null);
        assert_eq!(
            page["data"][0],
            json!({
                "id": "pro", "name": "Pro", "price": "29.00", "currency": "USD",
                "interval": "month", "trial_seconds": 14 * 86_400,
                "grace_seconds": 3 * 86_400, "routes": ["search"],
                "quotas": [{"group": "searches", "routes": ["search"], "included": 10}],
                "overage": {"policy": "from_credits", "unit_price": "0.01"},
            })
        );
        let max = &page["data"][1];
        assert_eq!(max["id"], "max");
        assert_eq!(max["name"], "max", "the name defaults to the id");
        assert_eq!(max["interval"], "year");
        assert_eq!(max["trial_seconds"], Value::Null);
        assert_eq!(
            max["overage"],
            json!({"policy": "hard_stop", "unit_price": null})
        );
        assert_eq!(page["data"].as_array().unwrap().len(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_is_started_shown_and_canceled() {
    each_store_with_plans(
        "a_trial_is_started_shown_and_canceled",
        PLANS,
        async |admin| {
            let account = admin.account("USD").await;
            admin
                .refuses(
                    Req::get(&subscription(&account)),
                    404,
                    "subscription_not_found",
                )
                .await;

            // The trial is the default; the customer is linked with it.
            let body = json!({"plan": "pro", "customer": "cus_admin_1"});
            let started = admin.ok(start(&account, &body), 201).await;
            assert_eq!(started["account"], account);
            assert_eq!(started["plan"], "pro");
            assert_eq!(started["plan_name"], "Pro");
            assert_eq!(started["state"], "trialing");
            assert_eq!(started["price"], "29.00");
            assert!(started["trial_end"].is_string(), "{started}");
            assert_eq!(started["payment_method"], "missing");
            assert_eq!(started["quotas"][0]["remaining"], 10);
            let linked = admin.store().account_for_customer("cus_admin_1").await;
            assert_eq!(linked.unwrap().as_deref(), Some(account.as_str()));
            let shown = admin.ok(Req::get(&subscription(&account)), 200).await;
            assert_eq!(shown, started);

            // The customer is this account's; another account cannot take it,
            // nor this account another customer.
            let other = admin.account("USD").await;
            admin
                .refuses(start(&other, &body), 409, "customer_conflict")
                .await;
            let another = json!({"plan": "pro", "customer": "cus_admin_2"});
            admin
                .refuses(start(&account, &another), 409, "customer_conflict")
                .await;
            admin
                .refuses(
                    Req::get(&subscription(&other)),
                    404,
                    "subscription_not_found",
                )
                .await;

            // Canceling: as the subscriber's own cancel does.
            let canceled = admin.ok(Req::delete(&subscription(&account)), 200).await;
            assert_eq!(canceled["state"], "canceled");
            assert!(canceled["canceled_at"].is_string(), "{canceled}");
            let shown = admin.ok(Req::get(&subscription(&account)), 200).await;
            assert_eq!(shown["state"], "canceled");
            let ended = admin
                .ok(
                    Req::delete(&format!("{}?at_period_end=false", subscription(&account))),
                    200,
                )
                .await;
            assert_eq!(ended["state"], "expired", "{ended}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_start_needs_a_payment_method_and_writes_an_invoice() {
    each_store_with_plans(
        "a_paid_start_needs_a_payment_method_and_writes_an_invoice",
        PLANS,
        async |admin| {
            let account = admin.account("USD").await;
            let paid = json!({"plan": "max", "trial": false});
            admin
                .refuses(start(&account, &paid), 409, "payment_method_required")
                .await;
            attach_payment_method(admin, &account).await;
            let started = admin.ok(start(&account, &paid), 201).await;
            assert_eq!(started["state"], "active");
            let open = &started["open_invoice"];
            assert_eq!(open["amount_due"], "99.00");

            let path = format!("/v1/invoices?account={account}");
            let page = admin.ok(Req::get(&path), 200).await;
            assert_eq!(page["next"], Value::Null);
            let invoice = &page["data"][0];
            assert_eq!(invoice["id"], open["id"]);
            assert_eq!(invoice["object"], "invoice");
            assert_eq!(invoice["account"], account);
            assert_eq!(invoice["status"], "open");
            assert_eq!(invoice["amount"], "99.00");
            assert_eq!(invoice["lines"][0]["type"], "subscription");
            assert_eq!(invoice["lines"][0]["plan"], "max");
            let id = invoice["id"].as_str().unwrap();
            let one = admin.ok(Req::get(&format!("/v1/invoices/{id}")), 200).await;
            assert_eq!(&one, invoice);
            admin
                .refuses(
                    Req::get(&format!("/v1/receipts/{id}")),
                    404,
                    "receipt_not_found",
                )
                .await;
        },
    )
    .await;
}

/// What `payment_method.attached` from the card processor leaves behind.
async fn attach_payment_method(admin: &Admin, account: &str) {
    let change = BillingChange {
        objects: vec![ProcessorObject {
            id: format!("pm_{account}"),
            kind: "payment_method".into(),
            account_id: Some(account.to_owned()),
            state: "attached".into(),
            created: 1,
        }],
        ..BillingChange::default()
    };
    admin.store().commit_billing(&change).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_refusals() {
    each_store_with_plans("subscription_refusals", PLANS, async |admin| {
        let account = admin.account("USD").await;
        let euros = admin.account("EUR").await;
        let pro = json!({"plan": "pro"});
        for (who, body, status, code) in [
            (&account, json!({"plan": "gold"}), 422, "unknown_plan"),
            (&account, json!({"plan": ""}), 422, "unknown_plan"),
            (&account, json!({}), 422, "invalid_body"),
            (
                &account,
                json!({"plan": "pro", "trial": "yes"}),
                422,
                "invalid_body",
            ),
            (
                &account,
                json!({"plan": "pro", "seats": 2}),
                422,
                "invalid_body",
            ),
            (
                &account,
                json!({"plan": "pro", "customer": "acct_1"}),
                422,
                "invalid_customer",
            ),
            (
                &account,
                json!({"plan": "pro", "customer": "cus_"}),
                422,
                "invalid_customer",
            ),
            (&euros, pro.clone(), 422, "currency_mismatch"),
            (
                &"acct_nope".to_owned(),
                pro.clone(),
                404,
                "account_not_found",
            ),
        ] {
            admin.refuses(start(who, &body), status, code).await;
        }
        let malformed = Req::post(&subscription(&account)).raw("application/json", "{");
        admin.refuses(malformed, 400, "malformed_body").await;
        let text = Req::post(&subscription(&account)).raw("text/plain", "{}");
        admin.refuses(text, 415, "unsupported_media_type").await;
        for (req, status, code) in [
            (
                Req::get(&subscription("acct_nope")),
                404,
                "account_not_found",
            ),
            (
                Req::delete(&subscription("acct_nope")),
                404,
                "account_not_found",
            ),
            (
                Req::delete(&subscription(&account)),
                404,
                "subscription_not_found",
            ),
            (
                Req::delete(&format!("{}?at_period_end=soon", subscription(&account))),
                400,
                "invalid_query",
            ),
            (
                Req::get("/v1/plans").token(None),
                401,
                "invalid_admin_token",
            ),
            (
                start(&account, &pro).token(Some("wrong")),
                401,
                "invalid_admin_token",
            ),
        ] {
            admin.refuses(req, status, code).await;
        }
    })
    .await;
}

/// Without the plans rail, or with it selling nothing, every plan endpoint
/// says so; documents are the store's and still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_plans_the_plan_endpoints_refuse() {
    let test = "without_plans_the_plan_endpoints_refuse";
    each_store(test, async |admin| plans_not_configured(admin).await).await;
    each_store_with_plans(test, "", async |admin| plans_not_configured(admin).await).await;
}

async fn plans_not_configured(admin: &Admin) {
    let account = admin.account("USD").await;
    for req in [
        Req::get("/v1/plans"),
        start(&account, &json!({"plan": "pro"})),
        Req::get(&subscription(&account)),
        Req::delete(&subscription(&account)),
    ] {
        admin.refuses(req, 409, "plans_not_configured").await;
    }
    let path = format!("/v1/invoices?account={account}");
    let page = admin.ok(Req::get(&path), 200).await;
    assert_eq!(page, json!({"data": [], "next": null}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_ups_write_receipts() {
    each_store("top_ups_write_receipts", async |admin| {
        let account = admin.account("USD").await;
        let mut credits = Vec::new();
        for n in 1..=3 {
            let body = json!({"amount": format!("{n}.00"), "currency": "USD", "reason": "welcome"});
            let reply = admin
                .send(Req::credit(&account, &format!("k{n}"), &body))
                .await;
            assert_eq!(reply.status, 201, "{}", reply.text());
            credits.push(reply.json());
        }

        let path = format!("/v1/receipts?account={account}&limit=2");
        let first = admin.ok(Req::get(&path), 200).await;
        let newest = &first["data"][0];
        assert_eq!(newest["object"], "receipt");
        assert_eq!(newest["account"], account);
        assert_eq!(newest["status"], "paid");
        assert_eq!(newest["amount"], "3.00");
        assert_eq!(newest["currency"], "USD");
        assert_eq!(newest["reference"], "k3");
        assert_eq!(newest["memo"], "welcome");
        assert_eq!(newest["transaction_id"], credits[2]["transaction_id"]);
        assert_eq!(first["data"][1]["reference"], "k2");
        let next = first["next"].as_str().expect("a second page");
        let rest = admin
            .ok(Req::get(&format!("{path}&before={next}")), 200)
            .await;
        assert_eq!(rest["data"].as_array().unwrap().len(), 1);
        assert_eq!(rest["data"][0]["reference"], "k1");
        assert_eq!(rest["next"], Value::Null);

        let id = newest["id"].as_str().unwrap();
        assert!(id.starts_with("rcpt_"), "{id}");
        let one = admin.ok(Req::get(&format!("/v1/receipts/{id}")), 200).await;
        assert_eq!(&one, newest);
        let invoices = admin
            .ok(Req::get(&format!("/v1/invoices?account={account}")), 200)
            .await;
        assert_eq!(invoices, json!({"data": [], "next": null}));

        for (req, status, code) in [
            (Req::get("/v1/receipts"), 422, "account_required"),
            (Req::get("/v1/invoices?limit=5"), 422, "account_required"),
            (
                Req::get("/v1/receipts?account=acct_nope"),
                404,
                "account_not_found",
            ),
            (
                Req::get(&format!("/v1/invoices/{id}")),
                404,
                "invoice_not_found",
            ),
            (Req::get("/v1/receipts/rcpt_nope"), 404, "receipt_not_found"),
            (Req::get(&format!("{path}&limit=0")), 400, "invalid_query"),
            (
                Req::get(&format!("{path}&colour=red")),
                400,
                "invalid_query",
            ),
        ] {
            admin.refuses(req, status, code).await;
        }
    })
    .await;
}
