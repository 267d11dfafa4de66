//! The chain settler's pipeline: prepare (chain, payload, gas, fees),
//! send (a local nonce, sign, `eth_sendRawTransaction`), confirm (receipt
//! and confirmations), all within the settler's timeout.
//!
//! The account nonce is kept in memory so concurrent settlements take
//! consecutive nonces without asking the node each time; a send that
//! fails forgets it, and "nonce too low" (another sender on the same key,
//! a restart) reads it anew and tries again.

use std::time::{Duration, Instant};

use alloy_primitives::{B256, U256};
use tokio::time::{Instant as Deadline, sleep_until, timeout_at};

use super::chain::ChainSettler;
use super::failure;
use super::rpc::{Receipt, RpcError};
use super::token::Payment;
use super::tx::Call;
use crate::reason;
use crate::wire::{FacilitatorRequest, SettleResponse};

/// How often a send refused for its nonce is retried with a fresh one.
const NONCE_RETRIES: usize = 3;

/// The wait before the second look for a receipt; it doubles up to the
/// configured poll interval.
const FIRST_POLL: Duration = Duration::from_millis(1);

/// Gas estimates are raised by 1/`GAS_MARGIN_DIVISOR` (20 %): the state
/// can change between estimate and inclusion.
const GAS_MARGIN_DIVISOR: u64 = 5;

/// Why settlement stopped: a reason code, words, and the transaction
/// hash when one was sent.
struct Stop {
    reason: &'static str,
    message: String,
    tx: Option<B256>,
}

impl Stop {
    fn before_send(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            tx: None,
        }
    }
}

impl ChainSettler {
    /// Settles `req`; see [`super::Settler::settle`].
    pub(super) async fn settle_on_chain(&self, req: &FacilitatorRequest) -> SettleResponse {
        let started = Instant::now();
        let deadline = Deadline::now() + self.timeout;
        match self.run(req, deadline).await {
            Ok((payment, tx)) => {
                tracing::info!(
                    network = %self.network,
                    transaction = %tx,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "x402 settled on chain"
                );
                SettleResponse {
                    success: true,
                    error_reason: None,
                    error_message: None,
                    payer: Some(payment.from.to_checksum(None)),
                    transaction: tx.to_string(),
                    network: self.network.clone(),
                    amount: Some(payment.value.to_string()),
                    extensions: None,
                }
            }
            Err(stop) => {
                let tx = stop.tx.map(|h| h.to_string()).unwrap_or_default();
                tracing::warn!(
                    network = %self.network,
                    reason = stop.reason,
                    error = %stop.message,
                    transaction = %tx,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "x402 settlement on chain failed"
                );
                failure(req, stop.reason, stop.message, tx)
            }
        }
    }

    async fn run(
        &self,
        req: &FacilitatorRequest,
        deadline: Deadline,
    ) -> Result<(Payment, B256), Stop> {
        let payment = self
            .payment(req)
            .map_err(|(reason, message)| Stop::before_send(reason, message))?;
        let late = || {
            Stop::before_send(
                reason::UNEXPECTED_SETTLE_ERROR,
                "timed out before sending the transaction",
            )
        };
        let key = (payment.from, payment.nonce);
        let known = self.unconfirmed.lock().get(&key).copied();
        let tx = match known {
            // Sent before and not confirmed then: wait for it.
            Some(tx) => tx,
            None => {
                let call = timeout_at(deadline, self.prepare(&payment))
                    .await
                    .map_err(|_| late())??;
                let tx = self.send(call).await.inspect_err(|stop| {
                    // Sent, fate unknown: a retry waits for this one.
                    if let Some(tx) = stop.tx {
                        self.unconfirmed.lock().insert(key, tx);
                    }
                })?;
                self.unconfirmed.lock().insert(key, tx);
                tx
            }
        };
        let receipt = self.confirm(tx, deadline).await?;
        self.unconfirmed.lock().remove(&key);
        if receipt.status != 1 {
            let message = format!("the transfer reverted in block {}", receipt.block_number);
            return Err(Stop {
                reason: reason::TRANSACTION_FAILED,
                message,
                tx: Some(tx),
            });
        }
        Ok((payment, tx))
    }

    /// The unsigned call, nonce 0 for now: chain checked, gas estimated
    /// (a revert is diagnosed), fees read.
    async fn prepare(&self, payment: &Payment) -> Result<Call, Stop> {
        let unexpected = |e: String| Stop::before_send(reason::UNEXPECTED_SETTLE_ERROR, e);
        self.check_chain().await.map_err(unexpected)?;
        let data = payment.transfer_calldata();
        let (gas, tip, base_fee) = tokio::join!(
            self.rpc.estimate_gas(self.address, payment.token, &data),
            self.rpc.max_priority_fee(),
            self.rpc.base_fee(),
        );
        let gas = match gas {
            Ok(gas) => gas,
            Err(e @ RpcError::Node { .. }) => return Err(self.diagnose(payment, e).await),
            Err(e) => return Err(unexpected(e.to_string())),
        };
        let tip = tip.map_err(|e| unexpected(e.to_string()))?;
        let base_fee = base_fee.map_err(|e| unexpected(e.to_string()))?;
        Ok(Call {
            chain_id: self.chain_id,
            nonce: 0,
            max_priority_fee_per_gas: tip,
            // Room for the base fee to double before inclusion.
            max_fee_per_gas: base_fee.saturating_mul(U256::from(2)).saturating_add(tip),
            gas: gas.saturating_add(gas / GAS_MARGIN_DIVISOR),
            to: payment.token,
            data,
        })
    }

    /// Why the transfer would revert: the authorization used, the balance
    /// short, or else the node's words.
    async fn diagnose(&self, payment: &Payment, revert: RpcError) -> Stop {
        let words = revert.node_message().unwrap_or_default().to_owned();
        let (used, balance) = tokio::join!(
            self.authorization_used(payment.token, payment.from, payment.nonce),
            self.balance_of(payment.token, payment.from),
        );
        if used == Ok(true) {
            return Stop::before_send(
                reason::NONCE_USED,
                format!("the authorization was already used ({words})"),
            );
        }
        if balance.is_ok_and(|b| b < payment.value) {
            return Stop::before_send(
                reason::INSUFFICIENT_BALANCE,
                format!("the payer's balance is short ({words})"),
            );
        }
        Stop::before_send(
            reason::TRANSACTION_FAILED,
            format!("the transfer would revert: {words}"),
        )
    }

    /// Takes a nonce, signs and sends `call`; returns its hash once the
    /// node has it. A send whose fate is unknown (transport trouble) is
    /// `settlement_pending` with the hash: it may yet be mined.
    async fn send(&self, mut call: Call) -> Result<B256, Stop> {
        let unexpected = |e: String| Stop::before_send(reason::UNEXPECTED_SETTLE_ERROR, e);
        // Any way out but a sent transaction (an error, or this future
        // dropped mid-send) forgets the kept nonce: a nonce taken and not
        // used is a gap no later transaction could be mined past.
        let mut unsent = ForgetOnDrop(Some(&self.next_nonce));
        for attempt in 1..=NONCE_RETRIES {
            call.nonce = self
                .take_nonce()
                .await
                .map_err(|e| unexpected(e.to_string()))?;
            let signed = call.sign(&self.key).map_err(unexpected)?;
            match self.rpc.send_raw(&signed.raw).await {
                Ok(()) => {}
                Err(RpcError::Node { message, .. }) if is_known(&message) => {}
                Err(RpcError::Node { message, .. })
                    if is_nonce_taken(&message) && attempt < NONCE_RETRIES =>
                {
                    tracing::debug!(nonce = call.nonce, error = %message, "x402 settler nonce resync");
                    self.forget_nonce();
                    continue;
                }
                Err(e @ RpcError::Node { .. }) => return Err(unexpected(e.to_string())),
                Err(e) => {
                    let message = format!("sent, fate unknown: {e}");
                    return Err(Stop {
                        reason: reason::SETTLEMENT_PENDING,
                        message,
                        tx: Some(signed.hash),
                    });
                }
            }
            unsent.0 = None;
            return Ok(signed.hash);
        }
        Err(unexpected("no free account nonce after retries".into()))
    }

    /// The next account nonce: the kept one, or the node's pending count.
    async fn take_nonce(&self) -> Result<u64, RpcError> {
        let kept = bump(&mut self.next_nonce.lock());
        if let Some(nonce) = kept {
            return Ok(nonce);
        }
        let pending = self.rpc.pending_nonce(self.address).await?;
        let mut next = self.next_nonce.lock();
        // Another settlement may have read it meanwhile: take after it.
        next.get_or_insert(pending);
        Ok(bump(&mut next).unwrap_or(pending))
    }

    fn forget_nonce(&self) {
        *self.next_nonce.lock() = None;
    }

    /// Waits until `tx` is mined with enough confirmations, or reverted;
    /// at the deadline it is `settlement_pending` with its hash. The first
    /// polls come quickly ([`FIRST_POLL`], doubling up to the poll
    /// interval): a chain that mines at once answers within milliseconds.
    async fn confirm(&self, tx: B256, deadline: Deadline) -> Result<Receipt, Stop> {
        let mut last_error = String::new();
        let mut wait = FIRST_POLL.min(self.poll_interval);
        loop {
            match timeout_at(deadline, self.confirmed(tx)).await {
                Ok(Ok(Some(receipt))) => return Ok(receipt),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => break,
            }
            let next = Deadline::now() + wait;
            wait = (wait * 2).min(self.poll_interval);
            if next >= deadline {
                sleep_until(deadline).await;
                break;
            }
            sleep_until(next).await;
        }
        let mut message = format!("not confirmed within {} ms", self.timeout.as_millis());
        if !last_error.is_empty() {
            message = format!("{message} (last error: {last_error})");
        }
        Err(Stop {
            reason: reason::SETTLEMENT_PENDING,
            message,
            tx: Some(tx),
        })
    }

    /// The receipt of `tx` if it is final enough: reverted, or mined with
    /// [`ChainSettler::confirmations`] blocks.
    async fn confirmed(&self, tx: B256) -> Result<Option<Receipt>, RpcError> {
        let Some(receipt) = self.rpc.receipt(tx).await? else {
            return Ok(None);
        };
        if receipt.status != 1 || self.confirmations <= 1 {
            return Ok(Some(receipt));
        }
        let head = self.rpc.block_number().await?;
        let depth = head.saturating_add(1).saturating_sub(receipt.block_number);
        Ok((depth >= self.confirmations).then_some(receipt))
    }
}

/// Forgets the kept nonce when dropped still armed (`Some`): see `send`.
struct ForgetOnDrop<'a>(Option<&'a parking_lot::Mutex<Option<u64>>>);

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(next) = self.0 {
            *next.lock() = None;
        }
    }
}

/// Takes the kept nonce and keeps the one after it.
fn bump(next: &mut Option<u64>) -> Option<u64> {
    let nonce = (*next)?;
    *next = Some(nonce + 1);
    Some(nonce)
}

/// The node already has this very transaction.
fn is_known(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("already known") || m.contains("known transaction")
}

/// The nonce is used or held by another transaction of this account.
fn is_nonce_taken(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("nonce too low")
        || m.contains("replacement transaction underpriced")
        || m.contains("nonce is too low")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_handed_out_in_order_once_known() {
        let mut next = None;
        assert_eq!(bump(&mut next), None);
        next = Some(4);
        assert_eq!((bump(&mut next), bump(&mut next)), (Some(4), Some(5)));
        assert_eq!(next, Some(6));
    }

    #[test]
    fn node_refusals_are_classified_by_their_words() {
        assert!(is_nonce_taken("nonce too low: next nonce 5, tx nonce 4"));
        assert!(is_nonce_taken("Nonce too low"));
        assert!(is_nonce_taken("replacement transaction underpriced"));
        assert!(is_known("already known"));
        assert!(!is_nonce_taken(
            "insufficient funds for gas * price + value"
        ));
        assert!(!is_known("execution reverted"));
    }
}
