//! `ChainSettler` against a real anvil (`FAREGATE_ANVIL`): the EIP-3009
//! test token at Base Sepolia's USDC address on chain 84532, a payer
//! (account 1) signing authorizations offline, and the settler paying gas
//! from account 0. Skipped, saying so, when anvil is not named. The calls
//! each settlement makes are in `settle_chain_rpc.rs`.

mod support;

use std::time::{Duration, Instant};

use alloy_primitives::{B256, U256};
use alloy_sol_types::SolCall as _;
use faregate_x402::reason;
use faregate_x402::settle::{ChainConfig, ChainSettler, Settler};
use serde_json::json;
use support::anvil;
use support::chain::{Chain, MINTED, VALUE, config_of, mintCall};

#[tokio::test]
async fn an_authorization_settles_once_for_exactly_its_value() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let settler = chain.settler(1, Duration::from_secs(10));
    let (payer, payee) = (anvil::account(1), chain.payee);
    let req = chain.payment(VALUE, 1);
    let verdict = settler.verify(&req).await.unwrap();
    assert!(verdict.is_valid, "{verdict:?}");
    let before = (
        chain.balance(&settler, payer).await,
        chain.balance(&settler, payee).await,
    );

    let started = Instant::now();
    let dyn_settler: &dyn Settler = &settler;
    let settled = dyn_settler.settle(&req).await;
    let first = started.elapsed();
    assert!(settled.success, "{settled:?}");
    assert_eq!(settled.payer.as_deref(), Some(payer.to_string().as_str()));
    assert_eq!(
        (settled.network.as_str(), settled.amount.as_deref()),
        (support::NETWORK, Some("10000"))
    );
    assert_eq!(chain.receipt_status(&settled.transaction).await, "0x1");
    let value = U256::from(VALUE);
    assert_eq!(chain.balance(&settler, payer).await, before.0 - value);
    assert_eq!(chain.balance(&settler, payee).await, before.1 + value);
    let nonce = B256::repeat_byte(1);
    assert!(
        settler
            .authorization_used(chain.token, payer, nonce)
            .await
            .unwrap()
    );

    let verdict = settler.verify(&req).await.unwrap();
    assert_eq!(
        verdict.invalid_reason.as_deref(),
        Some(reason::NONCE_USED),
        "{verdict:?}"
    );
    let replay = settler.settle(&req).await;
    assert!(!replay.success, "{replay:?}");
    assert_eq!(
        replay.error_reason.as_deref(),
        Some(reason::NONCE_USED),
        "{replay:?}"
    );
    assert!(
        replay
            .error_message
            .unwrap()
            .contains("authorization is used")
    );
    assert_eq!(
        chain.balance(&settler, payer).await,
        before.0 - value,
        "a replay moves nothing"
    );

    let mut latencies = Vec::new();
    for nonce in 10..30 {
        let req = chain.payment(VALUE, nonce);
        let started = Instant::now();
        assert!(settler.settle(&req).await.success);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    eprintln!(
        "anvil settle latency: first {:?} (chain id check included); over {} more: p50 {:?}, max {:?}",
        first,
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

#[tokio::test]
async fn concurrent_settlements_take_their_own_nonces_and_resync_after_a_foreign_send() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let settler = chain.settler(1, Duration::from_secs(10));
    let before = chain.balance(&settler, chain.payee).await;
    let (a, b, c) = (
        chain.payment(VALUE, 2),
        chain.payment(VALUE, 3),
        chain.payment(VALUE, 4),
    );
    let (a, b, c) = tokio::join!(settler.settle(&a), settler.settle(&b), settler.settle(&c));
    for settled in [&a, &b, &c] {
        assert!(settled.success, "{settled:?}");
        assert_eq!(chain.receipt_status(&settled.transaction).await, "0x1");
    }
    assert!(
        a.transaction != b.transaction
            && b.transaction != c.transaction
            && a.transaction != c.transaction
    );
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        before + U256::from(3 * VALUE)
    );

    // Account 0 sends outside the settler: its kept nonce is now too low.
    let data = mintCall {
        to: anvil::account(3),
        v: U256::from(1),
    }
    .abi_encode();
    chain
        .anvil
        .transact(anvil::account(0), Some(chain.token), &data)
        .await;
    let settled = settler.settle(&chain.payment(VALUE, 5)).await;
    assert!(settled.success, "{settled:?}");
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        before + U256::from(4 * VALUE)
    );
}

#[tokio::test]
async fn a_transfer_not_confirmed_in_time_is_pending_with_its_hash() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    // Automining makes one block per transaction: three never come.
    let settler = chain.settler(3, Duration::from_millis(800));
    let started = Instant::now();
    let first = chain.payment(VALUE, 6);
    let pending = settler.settle(&first).await;
    assert!(!pending.success, "{pending:?}");
    assert_eq!(
        pending.error_reason.as_deref(),
        Some(reason::SETTLEMENT_PENDING),
        "{pending:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // It was sent and mined, only not deep enough: the hash says where.
    assert_eq!(chain.receipt_status(&pending.transaction).await, "0x1");
    // Settled again (the rail retries `settlement_pending` once), the same
    // payment waits for that transaction instead of sending a second one,
    // which would revert: once deep enough, it is a success with its hash.
    chain.anvil.rpc("anvil_mine", json!(["0x2"])).await.unwrap();
    let retried = settler.settle(&first).await;
    assert!(retried.success, "{retried:?}");
    assert_eq!(retried.transaction, pending.transaction);
    // With two more blocks mined meanwhile, the next one is deep enough.
    let deep = chain.settler(3, Duration::from_secs(5));
    let mine = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        chain.anvil.rpc("anvil_mine", json!(["0x2"])).await.unwrap();
    };
    let req = chain.payment(VALUE, 7);
    let started = Instant::now();
    let (settled, ()) = tokio::join!(deep.settle(&req), mine);
    assert!(settled.success, "{settled:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited for the confirmations"
    );
}

#[tokio::test]
async fn one_authorization_sent_twice_at_once_settles_once_and_the_other_reverts() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let first = chain.settler(1, Duration::from_secs(10));
    // A second settler with its own account (3), so their nonces are apart.
    let second = ChainSettler::new(ChainConfig {
        signer_key: anvil::KEYS[3].into(),
        ..config_of(&chain)
    })
    .unwrap();
    let req = chain.payment(VALUE, 11);
    let before = chain.balance(&first, chain.payee).await;
    // Both transactions wait in the pool, both estimated before either ran.
    chain
        .anvil
        .rpc("evm_setAutomine", json!([false]))
        .await
        .unwrap();
    let mine = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        chain.anvil.rpc("anvil_mine", json!(["0x1"])).await.unwrap();
    };
    let (a, b, ()) = tokio::join!(first.settle(&req), second.settle(&req), mine);
    let (won, lost) = if a.success { (a, b) } else { (b, a) };
    assert!(won.success, "{won:?}");
    assert!(!lost.success, "{lost:?}");
    // Read after the revert: the other transfer used the authorization.
    assert_eq!(
        lost.error_reason.as_deref(),
        Some(reason::NONCE_USED),
        "{lost:?}"
    );
    assert_eq!(
        chain.receipt_status(&lost.transaction).await,
        "0x0",
        "the revert is reported with its hash"
    );
    assert_eq!(
        chain.balance(&first, chain.payee).await,
        before + U256::from(VALUE)
    );
}

#[tokio::test]
async fn short_balances_wrong_networks_and_wrong_chains_are_refused() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let settler = chain.settler(1, Duration::from_secs(10));
    let too_much = chain.payment(MINTED + 1, 8);
    let verdict = settler.verify(&too_much).await.unwrap();
    assert_eq!(
        verdict.invalid_reason.as_deref(),
        Some(reason::INSUFFICIENT_BALANCE),
        "{verdict:?}"
    );
    let refused = settler.settle(&too_much).await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some(reason::INSUFFICIENT_BALANCE),
        "{refused:?}"
    );
    assert_eq!(refused.transaction, "", "nothing was sent");

    let mut elsewhere = chain.payment(VALUE, 9);
    elsewhere.payment_requirements.network = "eip155:8453".into();
    let refused = settler.settle(&elsewhere).await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some(reason::NETWORK_MISMATCH),
        "{refused:?}"
    );

    let wrong_chain = ChainSettler::new(ChainConfig {
        network: "eip155:8453".into(),
        ..config_of(&chain)
    })
    .unwrap();
    let mut base = chain.payment(VALUE, 9);
    base.payment_requirements.network = "eip155:8453".into();
    let refused = wrong_chain.settle(&base).await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some(reason::UNEXPECTED_SETTLE_ERROR),
        "{refused:?}"
    );
    assert!(refused.error_message.unwrap().contains("chain 84532"));

    let supported = settler.supported().await.unwrap();
    assert_eq!(supported.kinds[0].network, support::NETWORK);
    assert_eq!(
        supported.signers["eip155:*"],
        json!([anvil::account(0).to_string()])
    );
    assert_eq!(settler.address(), anvil::account(0));
}

#[test]
fn configuration_problems_are_all_reported_and_the_key_is_never_shown() {
    let config = ChainConfig {
        rpc_url: "localhost:8545".into(),
        network: "base".into(),
        signer_key: "0xnot-a-key-but-secret".into(),
        confirmations: 1,
        gas_limit: Some(20_999),
        timeout: Duration::ZERO,
        poll_interval: Duration::ZERO,
    };
    let error = ChainSettler::new(config.clone()).unwrap_err();
    for field in [
        "rpc_url",
        "network",
        "signer_key",
        "gas_limit",
        "timeout",
        "poll_interval",
    ] {
        assert!(error.contains(field), "{field} in {error}");
    }
    assert!(
        !error.contains("secret") && !format!("{config:?}").contains("secret"),
        "{error}"
    );
    let good = ChainConfig {
        rpc_url: "https://user:pw@node.example/v2/apikey".into(),
        network: support::NETWORK.into(),
        signer_key: anvil::KEYS[0].into(),
        timeout: Duration::from_secs(1),
        poll_interval: Duration::from_millis(10),
        gas_limit: Some(21_000),
        ..config
    };
    let shown = format!("{good:?} {:?}", ChainSettler::new(good.clone()).unwrap());
    assert!(
        !shown.contains(anvil::KEYS[0]) && !shown.contains("apikey") && !shown.contains("pw"),
        "{shown}"
    );
}
