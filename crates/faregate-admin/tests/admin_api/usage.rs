//! `GET /v1/accounts/{id}/usage`: one item per request charged, written as
//! the ledger writer writes them (one debit per account per batch and one
//! usage record per request), newest first, in pages.

use faregate_core::{Currency, Money};
use faregate_store::{Transaction, UsageRecord};
use serde_json::{Value, json};

use crate::harness::{Admin, Req, each_store};

/// One request charged `amount` atomic units at `at_ms`.
struct Charge<'a> {
    account: &'a str,
    request: &'a str,
    amount: u64,
    at_ms: i64,
}

/// Writes one batch as the ledger writer does: per account, one debit for
/// the sum of its requests and one usage record per request. Returns the
/// debits' ids, per account in the order first charged.
async fn batch(admin: &Admin, n: u32, currency: Currency, charges: &[Charge<'_>]) -> Vec<String> {
    let mut accounts: Vec<&str> = Vec::new();
    for c in charges {
        if !accounts.contains(&c.account) {
            accounts.push(c.account);
        }
    }
    let (mut txs, mut usage) = (Vec::new(), Vec::new());
    for account in accounts {
        let mine: Vec<&Charge<'_>> = charges.iter().filter(|c| c.account == account).collect();
        let total = mine.iter().map(|c| c.amount).sum();
        let at = mine.last().map_or(0, |c| c.at_ms);
        let tx = Transaction::debit(
            account,
            Money::from_atomic(total, currency),
            format!("debit:test:{n}:{account}"),
            format!("batch:test:{n}"),
            at,
        )
        .unwrap();
        usage.extend(mine.iter().map(|c| UsageRecord {
            transaction_id: tx.id.clone(),
            reference: c.request.to_owned(),
            amount: i64::try_from(c.amount).unwrap(),
            created_at: c.at_ms,
        }));
        txs.push(tx);
    }
    let written = admin.store().post_batch(&txs, &usage).await.unwrap();
    assert_eq!(written, txs.len());
    txs.into_iter().map(|t| t.id).collect()
}

fn charge<'a>(account: &'a str, request: &'a str, amount: u64, at_ms: i64) -> Charge<'a> {
    Charge {
        account,
        request,
        amount,
        at_ms,
    }
}

fn requests(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["request_id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_lists_each_request_with_the_debit_that_paid_it() {
    each_store(
        "usage_lists_each_request_with_the_debit_that_paid_it",
        async |admin| {
            let account = admin.account("USD").await;
            let other = admin.account("USD").await;
            let usd = Currency::USD;
            let first = batch(
                admin,
                1,
                usd,
                &[
                    charge(&account, "req_1", 1_000, 1_000),
                    charge(&other, "req_theirs", 7_000, 1_001),
                    charge(&account, "req_2", 2_500, 1_002),
                ],
            )
            .await;
            let second = batch(admin, 2, usd, &[charge(&account, "req_3", 1, 2_000)]).await;

            let path = format!("/v1/accounts/{account}/usage");
            let page = admin.ok(Req::get(&path), 200).await;
            assert_eq!(
                requests(&page),
                ["req_3", "req_2", "req_1"],
                "newest first, this account only"
            );
            assert_eq!(page["next"], Value::Null);
            let newest = &page["data"][0];
            assert_eq!(
                *newest,
                json!({
                    "seq": newest["seq"],
                    "request_id": "req_3",
                    "amount": "0.000001",
                    "currency": "USD",
                    "transaction_id": second[0],
                    "created_at": "1970-01-01T00:00:02.000Z",
                })
            );
            assert!(newest["seq"].is_i64());
            let req_2 = &page["data"][1];
            assert_eq!(req_2["amount"], "0.002500");
            assert_eq!(req_2["transaction_id"], first[0]);
            assert_eq!(req_2["created_at"], "1970-01-01T00:00:01.002Z");
            assert_eq!(page["data"][2]["transaction_id"], first[0]);
            let seqs: Vec<i64> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["seq"].as_i64().unwrap())
                .collect();
            assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");

            // The ledger holds one debit per batch: the sum of its requests.
            let ledger = admin
                .ok(Req::get(&format!("/v1/accounts/{account}/ledger")), 200)
                .await;
            assert_eq!(ledger["data"][1]["id"], first[0]);
            assert_eq!(ledger["data"][1]["amount"], "-0.003500");
            assert_eq!(ledger["data"][1]["reference"], "batch:test:1");

            let theirs = admin
                .ok(Req::get(&format!("/v1/accounts/{other}/usage")), 200)
                .await;
            assert_eq!(requests(&theirs), ["req_theirs"]);
            assert_eq!(theirs["data"][0]["transaction_id"], first[1]);

            let fresh = admin.account("USD").await;
            let empty = admin
                .ok(Req::get(&format!("/v1/accounts/{fresh}/usage")), 200)
                .await;
            assert_eq!(empty, json!({"data": [], "next": null}));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_amounts_are_in_the_accounts_currency() {
    each_store(
        "usage_amounts_are_in_the_accounts_currency",
        async |admin| {
            let account = admin.account("BTC").await;
            batch(
                admin,
                1,
                Currency::BTC,
                &[charge(&account, "req_sat", 1, 5)],
            )
            .await;
            let page = admin
                .ok(Req::get(&format!("/v1/accounts/{account}/usage")), 200)
                .await;
            assert_eq!(page["data"][0]["amount"], "0.00000000001");
            assert_eq!(page["data"][0]["currency"], "BTC");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_pages_by_seq() {
    each_store("usage_pages_by_seq", async |admin| {
        let account = admin.account("USD").await;
        let names: Vec<String> = (1..=5).map(|i| format!("req_{i}")).collect();
        let charges: Vec<Charge<'_>> = names
            .iter()
            .zip(1..)
            .map(|(r, at)| charge(&account, r, 1_000, at))
            .collect();
        batch(admin, 1, Currency::USD, &charges[..3]).await;
        batch(admin, 2, Currency::USD, &charges[3..]).await;
        let get = async |query: &str| {
            admin
                .ok(
                    Req::get(&format!("/v1/accounts/{account}/usage?{query}")),
                    200,
                )
                .await
        };
        let mut seen = Vec::new();
        let mut page = get("limit=2").await;
        loop {
            assert!(page["data"].as_array().unwrap().len() <= 2);
            seen.extend(requests(&page).into_iter().map(str::to_owned));
            let Some(next) = page["next"].as_str() else {
                break;
            };
            let last = page["data"][1]["seq"].as_i64().unwrap();
            assert_eq!(next, last.to_string(), "the cursor is the last seq shown");
            page = get(&format!("limit=2&before={next}")).await;
        }
        assert_eq!(seen, ["req_5", "req_4", "req_3", "req_2", "req_1"]);
        // A full last page says there is no other.
        assert_eq!(get("limit=5").await["next"], Value::Null);
        assert_eq!(requests(&get("before=1").await), Vec::<&str>::new());
        assert_eq!(requests(&get("before=-5").await), Vec::<&str>::new());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_queries_are_refused() {
    each_store("bad_usage_queries_are_refused", async |admin| {
        let account = admin.account("USD").await;
        for query in [
            "limit=0",
            "limit=501",
            "limit=-1",
            "limit=x",
            "before=abc",
            "before=1.5",
            "before=99999999999999999999",
            "after=x",
            "kind=debit",
        ] {
            let r = Req::get(&format!("/v1/accounts/{account}/usage?{query}"));
            let p = admin.refuses(r, 400, "invalid_query").await;
            assert!(p["detail"].is_string(), "{query}: {p}");
        }
        admin
            .refuses(
                Req::get("/v1/accounts/acct_nobody/usage"),
                404,
                "account_not_found",
            )
            .await;
    })
    .await;
}
