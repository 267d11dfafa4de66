//! The walk itself: every step of the subscriber's life and what the
//! gateway, the ledger and the outbox must show after it.

use super::*;

pub(super) async fn lifecycle(test_store: &TestStore, signer: Signer) {
    let up = Upstream::start().await;
    let store = test_store.open().await;
    let clock = Arc::new(FakeClock::new(T0));
    let gw = TestGateway::start_subscriptions(&config(&up), store.clone(), clock.clone()).await;
    let credits = gw.credits.clone().unwrap();
    let account = faregate_store::new_id("acct");
    credits
        .create_account(&Account {
            id: account.clone(),
            name: "lifecycle".into(),
            currency: Currency::USD,
            created_at: 0,
            budget: None,
        })
        .await
        .unwrap();
    let (key, _) = credits
        .issue_key(KeyRequest {
            account_id: account.clone(),
            live: false,
            routes: None,
            models: None,
            limits: LlmLimits::default(),
            expires_at: None,
        })
        .await
        .unwrap();
    let admin = AdminApi::start(&gw).await;
    let life = Life {
        gw,
        admin,
        store,
        clock,
        signer: Mutex::new(signer),
        account,
        key,
        client: Client::http1(),
        events: Default::default(),
    };

    // No subscription yet: the plans that include the route.
    let r = life.call("/api/x").await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (402, "upgrade_required".into())
    );
    assert_eq!(r.json()["plans"], json!(["pro", "max"]));

    // Trial, started by the operator, who links the card processor's
    // customer to the account with it.
    let path = format!("/v1/accounts/{}/subscription", life.account);
    let body = json!({"plan": "pro", "trial": true, "customer": CUSTOMER});
    let r = life.admin("POST", &path, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let started = r.json();
    assert_eq!(started["state"], "trialing");
    assert_eq!(
        life.store.account_for_customer(CUSTOMER).await.unwrap(),
        Some(life.account.clone())
    );
    let r = life.call("/api/x").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("quota-remaining"), Some("9"));
    assert_eq!(r.header("quota-group"), Some("calls"));
    // The trial's quota ends with the trial instead of resetting.
    assert_eq!(r.header("quota-reset"), None);
    // A route the plan does not include, which another plan does.
    let r = life.call("/premium").await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (402, "upgrade_required".into())
    );
    assert_eq!(actions(&r), ["upgrade_plan"]);
    assert_eq!(r.json()["plans"], json!(["max"]));

    // Trial ending: a notice three days before, and a warning header.
    life.advance(12 * DAY).await;
    let r = life.call("/api/x").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("subscription-warning")
            .unwrap()
            .starts_with("trial_ending")
    );
    assert!(
        life.notifications()
            .await
            .contains(&"subscription.trial_ending".to_owned())
    );
    // Every event has one envelope, whichever part of faregate wrote it.
    let events = life.admin("GET", "/v1/events", None).await.json();
    let notice = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "subscription.trial_ending")
        .unwrap()["payload"]
        .clone();
    assert_eq!(notice["type"], "subscription.trial_ending");
    assert_eq!(notice["account_id"], life.account);
    assert_eq!(notice["created"], life.now_secs());
    assert!(notice["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(notice["data"]["plan"], "pro");
    let mut keys: Vec<&str> = notice.as_object().unwrap().keys().map(|k| &**k).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["account_id", "created", "data", "id", "type"]);

    // Trial expired.
    life.advance(3 * DAY).await;
    let r = life.call("/api/x").await;
    assert_eq!((r.status.as_u16(), code(&r)), (402, "trial_expired".into()));
    assert!(actions(&r).contains(&"update_payment_method".to_owned()));
    assert!(actions(&r).contains(&"renew".to_owned()));

    // Activating without a payment method.
    let r = life
        .billing("POST", "/billing/subscription/activate", "")
        .await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (402, "payment_method_required".into())
    );
    assert_eq!(actions(&r), ["update_payment_method"]);

    // Forged and stale webhooks change nothing.
    let attach = life.event(
        "payment_method.attached",
        json!({"id": "pm_1", "object": "payment_method", "customer": CUSTOMER}),
        None,
    );
    let forged = life
        .signer
        .lock()
        .unwrap()
        .sign(&attach, "whsec_not_ours", life.now_secs());
    let r = life.deliver_signed(&attach, &forged).await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (400, "invalid_signature".into())
    );
    let stale = life
        .signer
        .lock()
        .unwrap()
        .sign(&attach, SECRET, life.now_secs() - 301);
    let r = life.deliver_signed(&attach, &stale).await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (400, "invalid_signature".into())
    );
    assert_eq!(life.subscription().await["payment_method"], "missing");

    // Payment method attached, then activate: a paid period and its invoice.
    let r = life.deliver(&attach).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["outcome"], "applied");
    let r = life.deliver(&attach).await;
    assert_eq!(r.json()["outcome"], "duplicate", "a replay is a no-op");
    let r = life
        .billing("POST", "/billing/subscription/activate", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sub = r.json();
    assert_eq!(sub["state"], "active");
    assert_eq!(sub["open_invoice"]["amount_due"], "29.00");
    let paid_first = life.event(
        "invoice.paid",
        json!({"id": "in_1", "object": "invoice", "customer": CUSTOMER, "amount_paid": 2900}),
        None,
    );
    let r = life.deliver(&paid_first).await;
    assert_eq!(r.json()["outcome"], "applied", "{}", r.text());
    assert_eq!(life.subscription().await["open_invoice"], Value::Null);
    // A failure of the same invoice, created before it was paid, arriving
    // late: ignored.
    let late_failure = life.event(
        "invoice.payment_failed",
        json!({"id": "in_1", "object": "invoice", "customer": CUSTOMER}),
        Some(15 * 86_400 - 60),
    );
    let r = life.deliver(&late_failure).await;
    assert!(
        r.json()["outcome"].as_str().unwrap().starts_with("ignored"),
        "{}",
        r.text()
    );
    assert_eq!(life.subscription().await["state"], "active");

    // Active with quota: 80 % notified, then exhausted.
    for i in 0..10 {
        let r = life.call("/api/x").await;
        assert_eq!(r.status, 200);
        assert!(r.header("quota-reset").is_some());
        assert_eq!(r.header("quota-remaining"), Some(&*(9 - i).to_string()));
    }
    let types = life.notifications().await;
    assert!(
        types.iter().any(|t| t == "quota.threshold_reached"),
        "{types:?}"
    );
    let r = life.call("/api/x").await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (402, "quota_exhausted".into())
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 25 * 86_400, "retry after {retry} s");
    assert!(r.json()["resets_at"].is_string());
    assert!(actions(&r).contains(&"top_up".to_owned()));
    assert!(actions(&r).contains(&"upgrade_plan".to_owned()));

    // Overage from credits after a checkout top-up.
    let checkout = life.event(
        "checkout.session.completed",
        json!({"id": "cs_1", "object": "checkout.session", "customer": CUSTOMER,
               "client_reference_id": life.account, "payment_status": "paid",
               "amount_total": 500, "currency": "usd"}),
        None,
    );
    let r = life.deliver(&checkout).await;
    assert_eq!(r.json()["outcome"], "applied", "{}", r.text());
    let r = life.call("/api/x").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("quota-remaining"), Some("0"));
    let credits = life.gw.credits.as_ref().unwrap();
    credits.flush().await.unwrap();
    assert_eq!(
        credits.spendable(&life.account),
        Some(Money::parse_decimal("4.99", Currency::USD).unwrap())
    );
    let receipts = life
        .store
        .documents(Some(&life.account), Some(DocumentKind::Receipt), None, 10)
        .await
        .unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].amount, 5_000_000);

    // Period rollover: quota back, the next period invoiced with the
    // overage line.
    life.advance(32 * DAY).await;
    let r = life.call("/api/x").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("quota-remaining"), Some("9"));
    let invoices = life.billing("GET", "/billing/invoices", "").await.json();
    let newest = &invoices["data"][0];
    assert_eq!(newest["status"], "open");
    let lines = newest["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "overage" && l["units"] == 1),
        "{newest}"
    );
    assert!(
        life.notifications()
            .await
            .contains(&"subscription.renewed".to_owned())
    );

    // Payment failed: served in grace, with a warning.
    let failed = life.event(
        "invoice.payment_failed",
        json!({"id": "in_2", "object": "invoice", "customer": CUSTOMER}),
        None,
    );
    let r = life.deliver(&failed).await;
    assert_eq!(r.json()["outcome"], "applied", "{}", r.text());
    let r = life.call("/api/x").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("subscription-warning")
            .unwrap()
            .starts_with("payment_failed")
    );
    assert!(
        life.notifications()
            .await
            .contains(&"invoice.payment_failed".to_owned())
    );

    // Grace over.
    life.advance(4 * DAY).await;
    let r = life.call("/api/x").await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (402, "subscription_past_due".into())
    );
    assert!(actions(&r).contains(&"pay_invoice".to_owned()));
    assert!(
        life.notifications()
            .await
            .contains(&"subscription.past_due".to_owned())
    );

    // Invoice paid: served again.
    let paid = life.event(
        "invoice.paid",
        json!({"id": "in_2", "object": "invoice", "customer": CUSTOMER}),
        None,
    );
    let r = life.deliver(&paid).await;
    assert_eq!(r.json()["outcome"], "applied", "{}", r.text());
    let r = life.call("/api/x").await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Canceled: served to the period's end with a warning, then expired.
    let r = life
        .billing("POST", "/billing/subscription/cancel", "{}")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "canceled");
    let r = life.call("/api/x").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("subscription-warning")
            .unwrap()
            .starts_with("cancel_scheduled")
    );
    life.advance(31 * DAY).await;
    let r = life.call("/api/x").await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (402, "subscription_expired".into())
    );
    assert!(actions(&r).contains(&"renew".to_owned()));

    // The ledger is sound: invoices owed and paid, top-up, overage.
    let report = life.store.verify().await.unwrap();
    assert!(report.is_sound(), "{report:?}");
    // Stop the writers before the store goes (its drop blocks on cleanup).
    life.plans().close().await;
    life.gw.credits.as_ref().unwrap().close().await;
    let Life { gw, admin, .. } = life;
    admin.stop().await;
    gw.shutdown().await;
}
