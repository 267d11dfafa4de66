//! The payment corpus: the reference facilitator and faregate judge the
//! same payloads, and must agree (or differ only as `MAPPED_REASONS` says).

use super::*;

/// Where faregate's reason for refusing a corpus entry is not the
/// reference facilitator's, and why: (entry, reference, faregate).
const MAPPED_REASONS: [(&str, &str, &str); 2] = [
    // The reference facilitator checks `accepted.network` against the
    // requirements it is handed. A resource server first looks for an
    // offer of its own that `accepted` matches exactly, and none is on
    // another network, so faregate refuses earlier, as the reference
    // server does ("No matching payment requirements").
    (
        "network_changed",
        "network_mismatch",
        "invalid_payment_requirements",
    ),
    // The reference simulates the transfer; OZ's custom revert
    // `ERC20InsufficientBalance` is one it cannot name, and its diagnosis
    // needs Multicall3, which anvil lacks. faregate (no chain check in
    // this setup) forwards, then its settler finds the balance short
    // before sending anything and names it.
    (
        "unfunded_payer",
        "invalid_exact_evm_transaction_simulation_failed",
        "invalid_exact_evm_insufficient_balance",
    ),
];

/// One row of the comparison: the reference facilitator's verdict and
/// faregate's on the same payload.
#[derive(Debug)]
struct Row {
    case: String,
    oracle: (bool, String),
    gateway: (StatusCode, String),
    /// The `PAYMENT-RESPONSE` of a refusal after settling was tried.
    settled: Option<Value>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faregate_judges_a_payment_corpus_as_the_official_facilitator_does() {
    let test = "faregate_judges_a_payment_corpus";
    let Some(interop) = Interop::from_env(test) else {
        return;
    };
    let chain = Chain::start(&interop.anvil).await;
    for test_store in TestStore::each(test).await {
        let paid = Paid::start(&test_store, chain.settler()).await;
        let before = chain.balances().await;
        let rows = judge_corpus(&interop, &chain, &paid).await;
        let backend = paid.store.backend();
        for row in &rows {
            let Row {
                case,
                oracle,
                gateway,
                settled,
            } = row;
            let settled = settled
                .as_ref()
                .map(|s| (&s["errorReason"], &s["transaction"]));
            eprintln!(
                "{backend}: {case} | reference {oracle:?} | faregate {gateway:?}, settlement {settled:?}"
            );
        }
        rows.iter().for_each(assert_agree);
        let required = [
            "valid",
            "wrong_amount",
            "wrong_recipient",
            "expired",
            "not_yet_valid",
            "bad_signature",
            "other_chain",
            "replayed_nonce",
        ];
        for case in required {
            assert!(rows.iter().any(|r| r.case == case), "{case} was judged");
        }
        // Two payments moved: `valid` by faregate, `settled_elsewhere` by
        // the reference; no refused payload moved anything.
        let after = chain.balances().await;
        let two = U256::from(2 * PRICE);
        assert_eq!((after.0, after.1), (before.0 - two, before.1 + two));
        let posted = paid.payments().await;
        assert_eq!(posted.len(), 1, "{backend}: only `valid` is in the ledger");
        assert!(paid.store.verify().await.expect("verify").is_sound());
        paid.close().await;
    }
}

/// Served exactly when the reference says valid; refused with its reason,
/// or with the mapped one. A refusal after a settlement attempt says it
/// failed.
fn assert_agree(row: &Row) {
    let (valid, reason) = &row.oracle;
    let (status, ours) = &row.gateway;
    assert_eq!(*valid, *status == StatusCode::OK, "{row:?}");
    if *valid {
        return;
    }
    assert_eq!(*status, StatusCode::PAYMENT_REQUIRED, "{row:?}");
    let expected = MAPPED_REASONS
        .iter()
        .find(|(case, _, _)| *case == row.case)
        .map_or(reason.as_str(), |(_, theirs, mapped)| {
            assert_eq!(reason, theirs, "the reference changed its mind: {row:?}");
            mapped
        });
    assert_eq!(ours, expected, "{row:?}");
    if let Some(settled) = &row.settled {
        assert_eq!(settled["success"], false, "{row:?}");
        assert_eq!(settled["errorReason"], ours.as_str(), "{row:?}");
    }
}

/// Builds a corpus for the route's offer, has the reference facilitator
/// and faregate judge each payload, and returns their verdicts.
///
/// Order matters twice. The reference judges `valid` before faregate
/// settles it (else it would see a spent nonce); faregate then pays it,
/// and both judge it again as `replayed_nonce`. And `settled_elsewhere`,
/// a second valid payload, is settled by the reference facilitator first
/// (`--settle-first`), so faregate meets a nonce spent on chain that its
/// own store has never seen.
async fn judge_corpus(interop: &Interop, chain: &Chain, paid: &Paid) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = "/paid/corpus";
    let challenge = paid.send(path, None).await;
    assert_eq!(challenge.status, StatusCode::PAYMENT_REQUIRED);
    let header = challenge
        .header("payment-required")
        .expect("PAYMENT-REQUIRED");
    let required: Value = faregate_x402::wire::decode_header(header).expect("PaymentRequired");
    let required = write(dir.path(), "required.json", &required);
    let url = challenge.json()["resource"]["url"].clone();
    let url = url.as_str().expect("resource.url");
    let mut corpus = build_corpus(interop, &required, url).await;
    let mut second = build_corpus(interop, &required, url).await[0].take();
    assert_eq!(second["name"], "valid");
    second["name"] = json!("settled_elsewhere");
    corpus.push(second);

    let rpc = chain.anvil.url.as_str();
    // Not faregate's gas account, so the two never race for nonces.
    let oracle = ["--rpc", rpc, "--key", anvil::KEYS[3], "--corpus"];
    let file = write(dir.path(), "corpus.json", &json!(corpus));
    let first = ["--settle-first", "settled_elsewhere"];
    let verdicts = interop
        .run("oracle.py", &[&oracle[..], &[&file], &first].concat())
        .await;
    let mut rows = Vec::new();
    for entry in &corpus {
        let name = entry["name"].as_str().expect("a name");
        let reply = paid.send(path, entry["header"].as_str()).await;
        rows.push(row(name, &verdicts, &reply));
    }

    let mut replay = corpus[0].clone();
    assert_eq!(replay["name"], "valid");
    replay["name"] = json!("replayed_nonce");
    let file = write(dir.path(), "replay.json", &json!([replay]));
    let verdicts = interop
        .run("oracle.py", &[&oracle[..], &[&file]].concat())
        .await;
    let reply = paid.send(path, replay["header"].as_str()).await;
    rows.push(row("replayed_nonce", &verdicts, &reply));
    rows
}

/// corpus.py's payloads for the offer in `required` (a file), built for
/// now and for the resource `url`.
async fn build_corpus(interop: &Interop, required: &str, url: &str) -> Vec<Value> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = now.to_string();
    let args = ["--key", anvil::KEYS[1], "--requirements", required];
    let args = [&args[..], &["--now", &now, "--resource-url", url]].concat();
    let corpus = interop.run("corpus.py", &args).await;
    serde_json::from_value(corpus).expect("a list")
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).expect("write");
    path.display().to_string()
}

/// `name`'s row: the reference's verdict from `verdicts`, faregate's from
/// `reply` (a refusal carries a fresh `PAYMENT-REQUIRED`).
fn row(name: &str, verdicts: &Value, reply: &Reply) -> Row {
    let verdict = verdicts
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no verdict on {name}: {verdicts}"));
    let is_valid = verdict["isValid"].as_bool().expect("isValid");
    let theirs = verdict["invalidReason"].as_str().unwrap_or("").to_owned();
    let settled: Option<Value> = reply
        .header("payment-response")
        .map(|h| faregate_x402::wire::decode_header(h).expect("PAYMENT-RESPONSE"));
    let ours = if reply.status == StatusCode::OK {
        let settled = settled.as_ref().expect("a paid reply has PAYMENT-RESPONSE");
        assert_eq!(settled["success"], true, "{name}: {settled}");
        String::new()
    } else {
        let fresh = reply.header("payment-required").is_some();
        assert!(fresh, "{name}: a refusal is a fresh 402");
        reply.json()["reason"].as_str().unwrap_or("").to_owned()
    };
    Row {
        case: name.to_owned(),
        oracle: (is_valid, theirs),
        gateway: (reply.status, ours),
        settled: settled.filter(|_| reply.status != StatusCode::OK),
    }
}
