//! What the chain settler asks the node, seen through a recording relay
//! in front of a real anvil (`FAREGATE_ANVIL`; skipped, saying so, when it
//! is not named): the sync send (EIP-7966) and its fallbacks, the fee
//! cache, a fixed gas limit.

mod support;

use std::time::{Duration, Instant};

use alloy_primitives::{B256, U256};
use faregate_x402::reason;
use faregate_x402::settle::Settler as _;
use serde_json::json;
use support::anvil;
use support::chain::{Chain, VALUE};
use support::relay::{Relay, SyncSend, count};

#[tokio::test]
async fn a_node_that_sends_synchronously_is_not_polled_and_fees_are_read_once_a_second() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let relay = Relay::start(chain.anvil.clone(), SyncSend::Served).await;
    let settler = chain.settler_at(&relay.url, 1, Duration::from_secs(10));
    let first = settler.settle(&chain.payment(VALUE, 40)).await;
    assert!(first.success, "{first:?}");
    let methods = relay.take();
    assert_eq!(
        count(&methods, "eth_sendRawTransactionSync"),
        1,
        "{methods:?}"
    );
    assert_eq!(
        count(&methods, "eth_getTransactionReceipt"),
        0,
        "{methods:?}"
    );
    assert_eq!(count(&methods, "eth_sendRawTransaction"), 0, "{methods:?}");

    // The next one, within the second: the gas estimate and the send only.
    let payee_before = chain.balance(&settler, chain.payee).await;
    relay.take();
    let second = settler.settle(&chain.payment(VALUE, 41)).await;
    assert!(second.success, "{second:?}");
    assert_eq!(chain.receipt_status(&second.transaction).await, "0x1");
    assert_eq!(
        relay.take(),
        ["eth_estimateGas", "eth_sendRawTransactionSync"],
        "one call to price the transfer and one to send it"
    );
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        payee_before + U256::from(VALUE)
    );
}

#[tokio::test]
async fn a_fixed_gas_limit_sends_without_an_estimate_and_one_too_low_is_a_failed_transfer() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let relay = Relay::start(chain.anvil.clone(), SyncSend::Served).await;
    let settler = chain.settler_with(&relay.url, 1, Some(200_000), Duration::from_secs(10));
    assert!(settler.settle(&chain.payment(VALUE, 50)).await.success);
    let payee_before = chain.balance(&settler, chain.payee).await;
    relay.take();
    let settled = settler.settle(&chain.payment(VALUE, 51)).await;
    assert!(settled.success, "{settled:?}");
    assert_eq!(
        relay.take(),
        ["eth_sendRawTransactionSync"],
        "the send alone"
    );
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        payee_before + U256::from(VALUE)
    );

    // Too little gas: the transfer runs out on chain, so the payment is
    // not settled, and the authorization stays unused.
    let starved = chain.settler_with(&chain.anvil.url, 1, Some(30_000), Duration::from_secs(10));
    let req = chain.payment(VALUE, 52);
    let failed = starved.settle(&req).await;
    assert!(!failed.success, "{failed:?}");
    assert_eq!(
        failed.error_reason.as_deref(),
        Some(reason::TRANSACTION_FAILED),
        "{failed:?}"
    );
    assert_eq!(chain.receipt_status(&failed.transaction).await, "0x0");
    assert!(
        !settler
            .authorization_used(chain.token, anvil::account(1), B256::repeat_byte(52))
            .await
            .unwrap()
    );
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        payee_before + U256::from(VALUE),
        "a reverted transfer moves nothing"
    );
    // The same authorization, with gas enough, settles.
    assert!(settler.settle(&req).await.success);
}

#[tokio::test]
async fn a_node_without_the_sync_send_is_sent_to_and_polled() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let relay = Relay::start(chain.anvil.clone(), SyncSend::Unknown).await;
    let settler = chain.settler_at(&relay.url, 1, Duration::from_secs(10));
    let first = settler.settle(&chain.payment(VALUE, 42)).await;
    assert!(first.success, "{first:?}");
    assert_eq!(chain.receipt_status(&first.transaction).await, "0x1");
    let methods = relay.take();
    assert_eq!(
        count(&methods, "eth_sendRawTransactionSync"),
        1,
        "{methods:?}"
    );
    assert_eq!(count(&methods, "eth_sendRawTransaction"), 1, "{methods:?}");
    assert!(
        count(&methods, "eth_getTransactionReceipt") >= 1,
        "{methods:?}"
    );

    // Told once: the sync send is not tried again.
    let second = settler.settle(&chain.payment(VALUE, 43)).await;
    assert!(second.success, "{second:?}");
    let methods = relay.take();
    assert_eq!(
        count(&methods, "eth_sendRawTransactionSync"),
        0,
        "{methods:?}"
    );
    assert_eq!(count(&methods, "eth_sendRawTransaction"), 1, "{methods:?}");
}

#[tokio::test]
async fn a_gateway_refusing_the_sync_send_with_a_plain_403_is_sent_to_without_it() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let relay = Relay::start(chain.anvil.clone(), SyncSend::Forbidden).await;
    let settler = chain.settler_at(&relay.url, 1, Duration::from_secs(10));
    let payee_before = chain.balance(&settler, chain.payee).await;
    relay.take();
    let first = settler.settle(&chain.payment(VALUE, 47)).await;
    assert!(first.success, "{first:?}");
    assert_eq!(chain.receipt_status(&first.transaction).await, "0x1");
    let methods = relay.take();
    // Refused, not sent: the node is asked, and the transfer sent plainly.
    for (method, times) in [
        ("eth_sendRawTransactionSync", 1),
        ("eth_getTransactionByHash", 1),
        ("eth_sendRawTransaction", 1),
    ] {
        assert_eq!(count(&methods, method), times, "{method} in {methods:?}");
    }
    let second = settler.settle(&chain.payment(VALUE, 48)).await;
    assert!(second.success, "{second:?}");
    let methods = relay.take();
    assert_eq!(
        count(&methods, "eth_sendRawTransactionSync"),
        0,
        "{methods:?}"
    );
    assert_eq!(
        chain.balance(&settler, chain.payee).await,
        payee_before + U256::from(2 * VALUE),
        "each paid once"
    );
}

#[tokio::test]
async fn a_sync_send_cut_by_the_deadline_is_pending_and_the_retry_waits_for_it() {
    let Some(chain) = Chain::start().await else {
        return;
    };
    let settler = chain.settler(1, Duration::from_millis(800));
    // Warm: the chain id checked, the nonce and fees read.
    assert!(settler.settle(&chain.payment(VALUE, 44)).await.success);
    chain
        .anvil
        .rpc("evm_setAutomine", json!([false]))
        .await
        .unwrap();
    let req = chain.payment(VALUE, 45);
    let started = Instant::now();
    let pending = settler.settle(&req).await;
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
    assert!(!pending.transaction.is_empty(), "{pending:?}");
    // The node had it all along: mined now, the retry finds it.
    chain.anvil.rpc("evm_mine", json!([])).await.unwrap();
    let retried = settler.settle(&req).await;
    assert!(retried.success, "{retried:?}");
    assert_eq!(retried.transaction, pending.transaction);
    assert_eq!(chain.receipt_status(&retried.transaction).await, "0x1");
    // The nonce, read again after the cut, leaves no gap.
    chain
        .anvil
        .rpc("evm_setAutomine", json!([true]))
        .await
        .unwrap();
    let next = settler.settle(&chain.payment(VALUE, 46)).await;
    assert!(next.success, "{next:?}");
}
