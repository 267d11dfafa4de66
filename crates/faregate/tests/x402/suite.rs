//! The scenarios, each run on every store by `on_every_store!` in `main.rs`.

use super::*;

pub(super) async fn an_unpaid_request_gets_the_402_with_the_payment_required_header_and_body(
    s: &Setup,
) {
    let reply = s.send(Method::GET, "/paid/hello?x=1", &[]).await;
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let header = reply.header("payment-required").expect("PAYMENT-REQUIRED");
    let required: PaymentRequired = decode_header(header).unwrap();
    assert_eq!(required.x402_version, 2);
    assert_eq!(required.resource.url, s.gw.url("/paid/hello?x=1"));
    let offer = &required.accepts[0];
    assert_eq!(
        (
            offer.scheme.as_str(),
            offer.network.as_str(),
            offer.amount.as_str()
        ),
        ("exact", "eip155:84532", "10000")
    );
    assert_eq!(offer.asset, USDC);
    assert_eq!(offer.extra["name"], "USDC");
    assert_eq!(offer.extra["version"], "2");
    // The body is our problem document carrying the same members.
    let body = reply.json();
    assert_eq!(body["code"], "payment_required");
    assert_eq!(body["status"], 402);
    assert_eq!(body["x402Version"], 2);
    assert_eq!(body["resource"]["url"], required.resource.url);
    assert_eq!(body["accepts"][0]["payTo"], PAY_TO);
    assert!(body["extensions"]["bazaar"]["info"]["input"].is_object());
    assert!(s.facilitator.settles().is_empty());
    // A route that also takes API keys says so in the same 402.
    let either = s.send(Method::GET, "/either/x", &[]).await;
    assert_eq!(either.status, StatusCode::PAYMENT_REQUIRED);
    assert!(either.header("payment-required").is_some());
    assert_eq!(
        either.header("www-authenticate"),
        Some("Bearer realm=\"faregate\"")
    );
    let body = either.json();
    assert_eq!(body["accepts"][0]["scheme"], "exact");
    assert_eq!(body["accepts"][1]["rail"], "credits");
}

pub(super) async fn a_paid_request_is_settled_served_and_written_to_the_ledger(s: &Setup) {
    let payment = s.payment("/paid/status/201").await;
    let reply = s.paid("/paid/status/201", &payment).await;
    // The upstream's own status is kept.
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.text(), "status 201");
    assert_eq!(reply.header("cache-control"), Some("private, no-store"));
    let settled = settle_response(&reply);
    assert!(settled.success);
    assert_eq!(settled.network, "eip155:84532");
    assert_eq!(
        settled.payer.as_deref().map(str::to_lowercase),
        Some(format!("{:#x}", s.payer.address()))
    );
    assert_eq!(s.facilitator.settles().len(), 1);
    // The ledger records the settlement by its transaction hash.
    let posted = s
        .store
        .ledger(&faregate_store::LedgerQuery {
            kind: Some(TxKind::Payment),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].tx.reference, settled.transaction);
    let memo: serde_json::Value =
        serde_json::from_str(posted[0].tx.memo.as_deref().unwrap()).unwrap();
    assert_eq!(memo["amount"], "10000");
    assert_eq!(memo["network"], "eip155:84532");
    assert_eq!(posted[0].tx.postings[1].amount, 10_000);
    assert!(s.store.verify().await.unwrap().is_sound());
    let line = s.gw.log_line(|l| l["status"] == 201).await;
    assert_eq!(line["charge"], "0.01 USD");
}

pub(super) async fn a_payment_is_served_once_even_under_parallel_replays(s: &Setup) {
    s.facilitator
        .script(SettleScript::Slow(Duration::from_millis(100)));
    let payment = s.payment("/paid/once").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url, payment) = (s.client.clone(), s.gw.url("/paid/once"), payment.clone());
        tasks.push(tokio::spawn(async move {
            let req = Request::get(url)
                .header("payment-signature", payment)
                .body(Full::new(Bytes::new()))
                .unwrap();
            client.send(req).await
        }));
    }
    let mut served = 0;
    for t in tasks {
        let reply = t.await.unwrap();
        match reply.status {
            StatusCode::OK => served += 1,
            StatusCode::PAYMENT_REQUIRED => {
                assert_eq!(
                    reply.json()["reason"],
                    "invalid_exact_evm_nonce_already_used"
                );
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!(served, 1, "one of eight parallel replays is served");
    assert_eq!(s.facilitator.settles().len(), 1, "and settled once");
    // A later replay is refused too.
    let again = s.paid("/paid/once", &payment).await;
    assert_eq!(again.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(s.facilitator.settles().len(), 1);
}

pub(super) async fn an_upstream_failure_settles_nothing_and_frees_the_payment(s: &Setup) {
    let challenge = s.challenge("/paid/status/500").await;
    let payment = s.payer.pay(&challenge, now(), |_| {});
    let reply = s.paid("/paid/status/500", &payment).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.header("payment-response").is_none());
    // A redirect is not paid for either.
    let challenge = s.challenge("/paid/status/302").await;
    let redirect = s.payer.pay(&challenge, now(), |_| {});
    assert_eq!(
        s.paid("/paid/status/302", &redirect).await.status,
        StatusCode::FOUND
    );
    assert!(s.facilitator.settles().is_empty(), "nothing settled");
    // Nothing was charged: the same signed payment still pays, once.
    wait_released(s).await;
    let reply = s.paid("/paid/status/500", &payment).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
}

/// Waits until no payment is in flight (releases run when bodies end).
async fn wait_released(s: &Setup) {
    let rail = s.gw.x402.as_ref().unwrap();
    for _ in 0..200 {
        if rail.in_flight() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("payments stayed in flight");
}

pub(super) async fn a_failed_or_unknown_settlement_is_never_served(s: &Setup) {
    let cases: [(SettleScript, &str); 6] = [
        (SettleScript::Hang, "unexpected_settle_error"),
        (
            SettleScript::Raw(
                503,
                r#"{"success":true,"transaction":"0x1","network":"eip155:84532"}"#,
            ),
            "unexpected_settle_error",
        ),
        (
            SettleScript::Raw(502, "<html>bad gateway</html>"),
            "unexpected_settle_error",
        ),
        (
            SettleScript::Raw(200, "this is not json"),
            "unexpected_settle_error",
        ),
        (SettleScript::Truncated, "unexpected_settle_error"),
        (
            SettleScript::Fail("invalid_transaction_state"),
            "invalid_transaction_state",
        ),
    ];
    for (script, reason) in cases {
        s.facilitator.script(script.clone());
        let payment = s.payment("/paid/status/200").await;
        let reply = s.paid("/paid/status/200", &payment).await;
        assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED, "{script:?}");
        assert!(
            !reply.text().contains("status 200"),
            "the upstream answer is served: {}",
            reply.text()
        );
        let body = reply.json();
        assert_eq!(body["code"], "payment_failed", "{script:?}");
        assert_eq!(body["reason"], reason, "{script:?}");
        let settled = settle_response(&reply);
        assert!(!settled.success, "{script:?}");
        assert_eq!(settled.error_reason.as_deref(), Some(reason));
        // A fresh challenge comes with it, to pay again.
        assert!(reply.header("payment-required").is_some());
        // Retried, it is settled again, and again not served.
        let again = s.paid("/paid/status/200", &payment).await;
        assert_eq!(again.status, StatusCode::PAYMENT_REQUIRED);
    }
    let payments = s.store.pending_payments(i64::MAX, 100).await.unwrap();
    assert!(payments.is_empty(), "no payment left pending: {payments:?}");
}

pub(super) async fn settlement_pending_is_retried_once(s: &Setup) {
    s.facilitator.script(SettleScript::PendingThenSucceed(1));
    let payment = s.payment("/paid/a").await;
    let reply = s.paid("/paid/a", &payment).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(s.facilitator.settles().len(), 2);
    s.facilitator.script(SettleScript::PendingThenSucceed(2));
    let payment = s.payment("/paid/b").await;
    let reply = s.paid("/paid/b", &payment).await;
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(reply.json()["reason"], "settlement_pending");
    assert_eq!(s.facilitator.settles().len(), 4, "retried once, not more");
}

pub(super) async fn head_is_never_settled(s: &Setup) {
    let unpaid = s.send(Method::HEAD, "/paid/x", &[]).await;
    assert_eq!(unpaid.status, StatusCode::PAYMENT_REQUIRED);
    assert!(unpaid.header("payment-required").is_some());
    let payment = s.payment("/paid/x").await;
    let reply = s
        .send(Method::HEAD, "/paid/x", &[("payment-signature", &payment)])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("payment-response").is_none());
    assert!(s.facilitator.settles().is_empty());
}

pub(super) async fn payments_that_do_not_verify_get_a_fresh_402_with_the_reason(s: &Setup) {
    let challenge = s.challenge("/paid/v").await;
    let other = Payer::new("7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            s.payer.pay(&challenge, now(), |a| {
                a.value -= alloy_primitives::U256::from(1)
            }),
            "invalid_exact_evm_payload_authorization_value_mismatch",
            "payment_invalid",
        ),
        (
            s.payer.pay(&challenge, now(), |a| a.to = other.address()),
            "invalid_exact_evm_payload_recipient_mismatch",
            "payment_invalid",
        ),
        (
            s.payer.pay(&challenge, now(), |a| {
                a.valid_before = alloy_primitives::U256::from(now() + 2)
            }),
            "invalid_exact_evm_payload_authorization_valid_before",
            "payment_expired",
        ),
        (
            s.payer.pay(&challenge, now(), |a| {
                a.valid_after = alloy_primitives::U256::from(now() + 3600)
            }),
            "invalid_exact_evm_payload_authorization_valid_after",
            "payment_expired",
        ),
        (
            // Signed by another key than `from`.
            s.payer.pay(&challenge, now(), |a| a.from = other.address()),
            "invalid_exact_evm_payload_signature",
            "payment_invalid",
        ),
    ];
    for (payment, reason, code) in cases {
        let reply = s.paid("/paid/v", &payment).await;
        assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED, "{reason}");
        let body = reply.json();
        assert_eq!(body["reason"], reason);
        assert_eq!(body["code"], code);
        let fresh: PaymentRequired =
            decode_header(reply.header("payment-required").unwrap()).unwrap();
        assert_eq!(fresh.error.as_deref(), Some(reason));
    }
    // A payment for another route's price or offer does not pass here.
    let upfront = s.payment("/upfront/v").await;
    let reply = s.paid("/paid/v", &upfront).await;
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        reply.json()["reason"],
        "invalid_payload",
        "bound to its resource"
    );
    assert!(s.facilitator.settles().is_empty());
}

pub(super) async fn a_malformed_payment_header_is_a_structured_402_not_a_5xx(s: &Setup) {
    for garbage in ["%%%", "eyJ4IjoxfQ==", "bm90IGpzb24=", &"A".repeat(20_000)] {
        let reply = s.paid("/paid/m", garbage).await;
        assert!(
            reply.status == StatusCode::PAYMENT_REQUIRED
                || reply.status == StatusCode::BAD_REQUEST
                || reply.status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{}: {}",
            reply.status,
            reply.text()
        );
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
    }
}

pub(super) async fn a_client_leaving_during_settlement_is_charged_once(s: &Setup) {
    s.facilitator
        .script(SettleScript::Slow(Duration::from_millis(400)));
    let payment = s.payment("/paid/leave").await;
    let req = Request::get(s.gw.url("/paid/leave"))
        .header("payment-signature", payment.clone())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(100), s.client.send(req)).await;
    assert!(gave_up.is_err(), "the client left before the answer");
    // The settlement finishes without the client and is recorded.
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if s.store
            .pending_payments(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
    }
    let settled = s
        .store
        .ledger(&faregate_store::LedgerQuery {
            kind: Some(TxKind::Payment),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(settled.len(), 1, "settled and recorded once");
    // Retrying the same payment is not charged again.
    let retry = s.paid("/paid/leave", &payment).await;
    assert_eq!(retry.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(s.facilitator.settles().len(), 1);
}

pub(super) async fn a_route_settling_before_forwarding_keeps_the_payment_on_upstream_failure(
    s: &Setup,
) {
    let payment = s.payment("/upfront/status/500").await;
    let reply = s.paid("/upfront/status/500", &payment).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(settle_response(&reply).success, "settled before forwarding");
    assert_eq!(s.facilitator.settles().len(), 1);
    // And a failed settlement never reaches the upstream.
    s.facilitator
        .script(SettleScript::Fail("insufficient_funds"));
    let before = s._up.requests();
    let payment = s.payment("/upfront/x").await;
    let reply = s.paid("/upfront/x", &payment).await;
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(s._up.requests(), before, "not forwarded");
}

pub(super) async fn a_bundle_is_drawn_down_by_its_access_token(s: &Setup) {
    let payment = s.payment("/bundle/a").await;
    let first = s.paid("/bundle/a", &payment).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let token = first
        .header("x402-access-token")
        .expect("access token")
        .to_owned();
    assert_eq!(first.header("x402-access-remaining"), Some("2"));
    assert!(first.header("x402-access-expires").is_some());
    let bearer = format!("Bearer {token}");
    for left in ["1", "0"] {
        let reply = s
            .send(Method::GET, "/bundle/b", &[("authorization", &bearer)])
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.header("x402-access-remaining"), Some(left));
    }
    let spent = s
        .send(Method::GET, "/bundle/c", &[("authorization", &bearer)])
        .await;
    assert_eq!(spent.status, StatusCode::PAYMENT_REQUIRED);
    assert!(spent.header("payment-required").is_some(), "pay again");
    // A forged token is refused, and the bundle is for its route only.
    let forged = format!("Bearer {}0", token.trim_end_matches(|c| c != '.'));
    let reply = s
        .send(Method::GET, "/bundle/c", &[("authorization", &forged)])
        .await;
    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(reply.json()["reason"], "invalid_access_token");
    let other = s
        .send(Method::GET, "/paid/c", &[("authorization", &bearer)])
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.facilitator.settles().len(),
        1,
        "one payment for the bundle"
    );
}

pub(super) async fn a_payment_identifier_reused_with_another_payment_is_a_conflict(s: &Setup) {
    let with_id = |header: &str, id: &str| {
        let mut doc: serde_json::Value = decode_header(header).unwrap();
        doc["extensions"] = serde_json::json!({"payment-identifier": {"info": {"id": id}}});
        faregate_x402::wire::encode_header(&doc)
    };
    let id = "order_0123456789abcdef";
    let first = with_id(&s.payment("/paid/p").await, id);
    assert_eq!(s.paid("/paid/p", &first).await.status, StatusCode::OK);
    // The same payment again: not charged twice.
    let again = s.paid("/paid/p", &first).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    // Another payment under the same identifier.
    let second = with_id(&s.payment("/paid/p").await, id);
    let reply = s.paid("/paid/p", &second).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(s.facilitator.settles().len(), 1);
    // An identifier breaking the extension's rules is a bad request.
    let bad = with_id(&s.payment("/paid/p").await, "short");
    assert_eq!(
        s.paid("/paid/p", &bad).await.status,
        StatusCode::BAD_REQUEST
    );
}

pub(super) async fn discovery_lists_the_paid_routes_and_cors_exposes_the_payment_headers(
    s: &Setup,
) {
    let reply = s.send(Method::GET, "/.well-known/x402", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    let resources = doc["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 4);
    assert_eq!(resources[0]["url"], s.gw.url("/paid/*"));
    assert_eq!(resources[0]["accepts"][0]["amount"], "10000");
    assert!(resources[0]["extensions"]["bazaar"].is_object());
    assert_eq!(resources[3]["bundle"]["calls"], 3);
    // A browser's preflight may send PAYMENT-SIGNATURE.
    let preflight = s
        .send(
            Method::OPTIONS,
            "/paid/x",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "payment-signature"),
            ],
        )
        .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .contains("PAYMENT-SIGNATURE")
    );
    // And may read the payment headers of the 402 and of a paid answer.
    let unpaid = s
        .send(Method::GET, "/paid/x", &[("origin", "https://app.example")])
        .await;
    let expose = unpaid.header("access-control-expose-headers").unwrap();
    assert!(expose.contains("PAYMENT-REQUIRED") && expose.contains("PAYMENT-RESPONSE"));
    let payment = s.payment("/paid/x").await;
    let paid = s
        .send(
            Method::GET,
            "/paid/x",
            &[
                ("origin", "https://app.example"),
                ("payment-signature", &payment),
            ],
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK);
    assert!(
        paid.header("access-control-expose-headers")
            .unwrap()
            .contains("PAYMENT-RESPONSE")
    );
}
