//! Settling a reserved x402 payment: in a task of its own (a client that
//! leaves cannot cut it in half), once more on `settlement_pending`, and
//! recorded either way: settled with its ledger transaction and any bundle
//! it bought, failed, or given back when nothing was sent.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use faregate_core::{Challenge, ProblemCode, RailKind};
use faregate_store::{Grant, Transaction};
use faregate_x402::reason;
use faregate_x402::wire::{FacilitatorRequest, SettleResponse, encode_header};

use super::offers::{PAYMENT_RESPONSE, refusal};
use super::{ACCESS_EXPIRES, ACCESS_REMAINING, ACCESS_TOKEN, Entry, Inner, Phase, now_ms, token};

impl Inner {
    /// Settles `entry` in a task of its own and waits for it: should the
    /// request go away meanwhile, the task still records the outcome.
    /// `Ok` carries the headers of a paid response; `Err` the 402 to send
    /// instead.
    pub(super) async fn settle_in_task(
        self: Arc<Self>,
        entry: Arc<Entry>,
    ) -> Result<Vec<(&'static str, String)>, Challenge> {
        *entry.phase.lock() = Phase::Settling;
        let task = tokio::spawn({
            let entry = entry.clone();
            async move { self.settle_entry(&entry).await }
        });
        task.await.unwrap_or_else(|e| {
            tracing::error!(payment = %entry.payment_id, error = %e, "an x402 settlement task failed");
            Err(refusal(
                ProblemCode::PaymentFailed,
                reason::UNEXPECTED_SETTLE_ERROR,
                "the settlement failed; nothing was served".to_owned(),
                Some(&entry.required),
                None,
            ))
        })
    }

    /// Asks the settler, once more if it answers `settlement_pending`, and
    /// records the outcome.
    async fn settle_entry(&self, entry: &Entry) -> Result<Vec<(&'static str, String)>, Challenge> {
        let timeout = self.config.load().settle_timeout;
        let mut response = self.settle_once(&entry.request, timeout).await;
        if !response.success && response.error_reason.as_deref() == Some(reason::SETTLEMENT_PENDING)
        {
            response = self.settle_once(&entry.request, timeout).await;
        }
        if response.success && response.transaction.is_empty() {
            response.success = false;
            response.error_reason = Some(reason::UNEXPECTED_SETTLE_ERROR.to_owned());
            response.error_message = Some("the settlement named no transaction".to_owned());
        }
        response.network = entry.request.payment_requirements.network.clone();
        if response.payer.is_none() {
            response.payer = Some(entry.payer.clone());
        }
        let now = now_ms(&*self.clock);
        if !response.success {
            let why = response
                .error_reason
                .clone()
                .unwrap_or_else(|| reason::UNEXPECTED_SETTLE_ERROR.to_owned());
            let tx = (!response.transaction.is_empty()).then_some(response.transaction.as_str());
            // A definite refusal that sent nothing (an unfunded payer, a
            // nonce spent elsewhere) leaves the authorization as it was:
            // give the reservation back, so the same payment can be tried
            // again. A timeout, garbage or a pending answer may have moved
            // money: that nonce stays taken.
            let nothing_sent = tx.is_none()
                && why != reason::UNEXPECTED_SETTLE_ERROR
                && why != reason::SETTLEMENT_PENDING;
            let recorded = if nothing_sent {
                self.store.release_payment(&entry.payment_id).await
            } else {
                self.store
                    .fail_payment(&entry.payment_id, &why, tx, now)
                    .await
            };
            if let Err(e) = recorded {
                tracing::error!(payment = %entry.payment_id, error = %e, "cannot record a failed x402 settlement");
            }
            *entry.phase.lock() = Phase::Failed;
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(payment = %entry.payment_id, reason = %why, "x402 settlement failed; nothing served");
            let detail = format!(
                "the payment verified but was not settled ({why}{}); nothing was served",
                response
                    .error_message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            return Err(refusal(
                ProblemCode::PaymentFailed,
                &why,
                detail,
                Some(&entry.required),
                Some(&response),
            ));
        }
        response.amount = Some(entry.request.payment_requirements.amount.clone());
        let mut headers = vec![
            (PAYMENT_RESPONSE, encode_header(&response)),
            ("cache-control", "private, no-store".to_owned()),
        ];
        let grant = entry.bundle.map(|b| {
            let lifetime = i64::try_from(b.lifetime.as_millis()).unwrap_or(i64::MAX);
            Grant {
                id: faregate_store::new_id("grt"),
                payment_id: entry.payment_id.clone(),
                route: entry.route.clone(),
                // The paying request is the first call of the bundle.
                calls_left: b
                    .calls
                    .map(|n| i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX)),
                expires_at: now.saturating_add(lifetime),
                created_at: now,
            }
        });
        if let Some(g) = &grant {
            let secret = &self.config.load().token_secret;
            headers.push((ACCESS_TOKEN, token::issue(secret, &g.id, g.expires_at)));
            headers.push((
                ACCESS_EXPIRES,
                faregate_core::rfc3339(u64::try_from(g.expires_at).unwrap_or(0) * 1_000_000),
            ));
            if let Some(left) = g.calls_left {
                headers.push((ACCESS_REMAINING, left.to_string()));
            }
        }
        self.record_settlement(entry, &response, grant.as_ref(), now)
            .await;
        *entry.phase.lock() = Phase::Settled;
        self.stats.settled.fetch_add(1, Ordering::Relaxed);
        Ok(headers)
    }

    pub(super) async fn settle_once(
        &self,
        request: &FacilitatorRequest,
        timeout: Duration,
    ) -> SettleResponse {
        match tokio::time::timeout(timeout, self.settler.settle(request)).await {
            Ok(response) => response,
            Err(_) => SettleResponse {
                success: false,
                error_reason: Some(reason::UNEXPECTED_SETTLE_ERROR.to_owned()),
                error_message: Some(format!("no settlement within {} s", timeout.as_secs())),
                payer: None,
                transaction: String::new(),
                network: request.payment_requirements.network.clone(),
                amount: None,
                extensions: None,
            },
        }
    }

    /// Writes the settled payment and its ledger transaction. The money has
    /// moved on chain whatever happens here, so a store that fails is
    /// retried, then logged loudly with everything needed to post by hand.
    async fn record_settlement(
        &self,
        entry: &Entry,
        response: &SettleResponse,
        grant: Option<&Grant>,
        now: i64,
    ) {
        let network = &entry.request.payment_requirements.network;
        let ledger = Transaction::payment(
            RailKind::X402.as_str(),
            network,
            entry.amount,
            format!("x402:{}", entry.payment_id),
            response.transaction.clone(),
            now,
        )
        .map(|tx| {
            tx.with_memo(Some(
                serde_json::json!({
                    "payer": entry.payer,
                    "network": network,
                    "asset": entry.request.payment_requirements.asset,
                    "amount": entry.request.payment_requirements.amount,
                    "transaction": response.transaction,
                    "payment": entry.payment_id,
                })
                .to_string(),
            ))
        });
        let ledger = match ledger {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(payment = %entry.payment_id, error = %e, "an x402 settlement cannot be written to the ledger");
                return;
            }
        };
        for attempt in 1..=3u32 {
            match self
                .store
                .settle_payment(
                    &entry.payment_id,
                    &response.transaction,
                    Some(&ledger),
                    grant,
                    now,
                )
                .await
            {
                Ok(()) => return,
                Err(e) if attempt < 3 => {
                    tracing::warn!(payment = %entry.payment_id, error = %e, attempt, "retrying the record of an x402 settlement");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(e) => tracing::error!(
                    payment = %entry.payment_id,
                    transaction = %response.transaction,
                    payer = %entry.payer,
                    network = %network,
                    amount = %entry.request.payment_requirements.amount,
                    error = %e,
                    "an x402 payment settled on chain but could not be recorded"
                ),
            }
        }
    }
}
