//! The chain settler's pipeline: prepare (chain, payload, gas, fees read
//! at most once a [`FEES_FOR`]), send (a local nonce, sign, then
//! `eth_sendRawTransactionSync` (EIP-7966), which answers with the
//! receipt, or `eth_sendRawTransaction` on a node without it), confirm
//! (receipt polls when the send did not bring one, and confirmations), all
//! within the settler's timeout.
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

/// How long fees once read are used again. The fee cap is twice the base
/// fee plus the tip: room for the base fee to rise for several blocks.
const FEES_FOR: Duration = Duration::from_secs(1);

/// The JSON-RPC code of a method the node does not have.
const METHOD_NOT_FOUND: i64 = -32601;

/// EIP-7966's code for a transaction sent whose receipt did not come in time.
const SYNC_TIMEOUT: i64 = 4;

/// The JSON-RPC code of an internal error.
const INTERNAL_ERROR: i64 = -32603;

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
        let (tx, sent_receipt) = match known {
            // Sent before and not confirmed then: wait for it.
            Some(tx) => (tx, None),
            None => {
                let call = timeout_at(deadline, self.prepare(&payment))
                    .await
                    .map_err(|_| late())??;
                let (tx, receipt) = self.send(call, deadline).await.inspect_err(|stop| {
                    // Sent, fate unknown: a retry waits for this one.
                    if let Some(tx) = stop.tx {
                        self.unconfirmed.lock().insert(key, tx);
                    }
                })?;
                self.unconfirmed.lock().insert(key, tx);
                (tx, receipt)
            }
        };
        let receipt = match sent_receipt {
            Some(r) if r.status != 1 || self.confirmations <= 1 => r,
            _ => self.confirm(tx, deadline).await?,
        };
        self.unconfirmed.lock().remove(&key);
        if receipt.status != 1 {
            // Why, read after the fact: a transfer sent without an estimate
            // (`gas_limit`), or raced by another, fails on chain.
            let words = format!("reverted in block {}", receipt.block_number);
            let mut stop = self.diagnose(&payment, &words).await;
            stop.tx = Some(tx);
            return Err(stop);
        }
        Ok((payment, tx))
    }

    /// The unsigned call, nonce 0 for now: chain checked, gas estimated
    /// (a revert is diagnosed), fees read.
    async fn prepare(&self, payment: &Payment) -> Result<Call, Stop> {
        let unexpected = |e: String| Stop::before_send(reason::UNEXPECTED_SETTLE_ERROR, e);
        self.check_chain().await.map_err(unexpected)?;
        let data = payment.transfer_calldata();
        let estimate = async {
            match self.gas_limit {
                Some(limit) => Ok(limit),
                None => {
                    let gas = self.rpc.estimate_gas(self.address, payment.token, &data);
                    gas.await.map(|g| g.saturating_add(g / GAS_MARGIN_DIVISOR))
                }
            }
        };
        let (gas, fees) = tokio::join!(estimate, self.fees());
        let gas = match gas {
            Ok(gas) => gas,
            Err(e @ RpcError::Node { .. }) => {
                let words = e.node_message().unwrap_or_default().to_owned();
                return Err(self.diagnose(payment, &words).await);
            }
            Err(e) => return Err(unexpected(e.to_string())),
        };
        let (tip, base_fee) = fees.map_err(|e| unexpected(e.to_string()))?;
        Ok(Call {
            chain_id: self.chain_id,
            nonce: 0,
            max_priority_fee_per_gas: tip,
            // Room for the base fee to double before inclusion.
            max_fee_per_gas: base_fee.saturating_mul(U256::from(2)).saturating_add(tip),
            gas,
            to: payment.token,
            data,
        })
    }

    /// The priority fee and base fee: those read less than [`FEES_FOR`]
    /// ago, or read now.
    async fn fees(&self) -> Result<(U256, U256), RpcError> {
        if let Some((at, tip, base)) = *self.fees.lock()
            && at.elapsed() < FEES_FOR
        {
            return Ok((tip, base));
        }
        let (tip, base) = tokio::join!(self.rpc.max_priority_fee(), self.rpc.base_fee());
        let (tip, base) = (tip?, base?);
        *self.fees.lock() = Some((Instant::now(), tip, base));
        Ok((tip, base))
    }

    /// Sends `raw` (whose hash is `hash`): what became of it.
    ///
    /// A sync send that ends without a receipt is polled for by
    /// [`Self::confirm`], which waits for it or answers
    /// `settlement_pending` with the hash. When the node's own wait ran
    /// out, it has the transaction. When the call failed, the node is
    /// asked whether it has it: if not, the method is taken as refused (a
    /// gateway in front of the node may answer a plain HTTP error) and the
    /// transaction is sent the classic way. When the deadline came, or the
    /// node cannot say, it may not have it, and the kept nonce is read
    /// again.
    async fn submit(&self, raw: &[u8], hash: B256, deadline: Deadline) -> Result<Sent, RpcError> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.sync_send.load(Relaxed) {
            let Ok(sent) = timeout_at(deadline, self.rpc.send_raw_sync(raw)).await else {
                return Ok(Sent::Unsure);
            };
            match sent {
                Ok(receipt) => return Ok(Sent::Mined(receipt)),
                Err(RpcError::Node { code, message, .. }) if is_sync_timeout(code, &message) => {
                    return Ok(Sent::Pooled);
                }
                Err(RpcError::Node { code, message, .. }) if lacks_method(code, &message) => {
                    tracing::debug!(error = %message, "the node has no eth_sendRawTransactionSync");
                    self.sync_send.store(false, Relaxed);
                }
                Err(e @ RpcError::Transport { .. }) => {
                    let known = timeout_at(deadline, self.rpc.has_transaction(hash)).await;
                    match known {
                        Ok(Ok(false)) => {
                            tracing::debug!(error = %e, "eth_sendRawTransactionSync refused; sending without it");
                            self.sync_send.store(false, Relaxed);
                        }
                        Ok(Ok(true)) => return Ok(Sent::Pooled),
                        Ok(Err(_)) | Err(_) => return Ok(Sent::Unsure),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.rpc.send_raw(raw).await.map(|()| Sent::Pooled)
    }

    /// Why the transfer would revert, or did: the authorization used, the
    /// balance short, or else the node's words.
    async fn diagnose(&self, payment: &Payment, words: &str) -> Stop {
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
    /// node has it, and its receipt when the node gave it with the send. A
    /// send whose fate is unknown (transport trouble) is
    /// `settlement_pending` with the hash: it may yet be mined.
    async fn send(
        &self,
        mut call: Call,
        deadline: Deadline,
    ) -> Result<(B256, Option<Receipt>), Stop> {
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
            let receipt = match self.submit(&signed.raw, signed.hash, deadline).await {
                Ok(Sent::Mined(receipt)) => Some(receipt),
                Ok(Sent::Pooled) => None,
                Ok(Sent::Unsure) => {
                    // Perhaps never sent: the next nonce is the node's count.
                    self.forget_nonce();
                    None
                }
                Err(RpcError::Node { message, .. }) if is_known(&message) => None,
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
            };
            unsent.0 = None;
            return Ok((signed.hash, receipt));
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

/// What became of a transaction handed to the node.
enum Sent {
    /// Mined: the sync send brought its receipt.
    Mined(Receipt),
    /// The node has it; the receipt is to be polled for.
    Pooled,
    /// The call ended without an answer: it may or may not have it.
    Unsure,
}

/// Whether a node refusal says it has no such method.
fn lacks_method(code: i64, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    code == METHOD_NOT_FOUND
        || m.contains("method not found")
        || m.contains("does not exist")
        || m.contains("not supported")
        || m.contains("not available")
}

/// Whether a sync send's error says the transaction was taken and its
/// receipt did not come in time: EIP-7966's code 4, or (anvil) an internal
/// error saying so.
fn is_sync_timeout(code: i64, message: &str) -> bool {
    code == SYNC_TIMEOUT
        || (code == INTERNAL_ERROR && message.to_ascii_lowercase().contains("timeout"))
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
