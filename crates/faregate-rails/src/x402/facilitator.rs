//! Facilitator mode: faregate verifies and settles x402 payments for other
//! resource servers (`/x402/verify`, `/x402/settle`, `/x402/supported`),
//! with the same verifier and settler as its own routes. The requirements
//! here are the calling server's; the payment is still settled at most
//! once, by the same reservation in the store. The money is not ours, so no
//! ledger transaction is written; the payment row records the settlement.

use faregate_core::RailKind;
use faregate_store::{PaymentRecord, PaymentState, Reservation};
use faregate_x402::reason;
use faregate_x402::wire::{
    FacilitatorRequest, SettleResponse, Supported, VerifyResponse, X402_VERSION,
};
use sha2::{Digest, Sha256};

use super::{X402, now_ms};

impl X402 {
    /// `/verify`: the in-process checks, then the chain's (nonce state and
    /// balance) when a checker is configured.
    pub async fn facilitate_verify(&self, req: &FacilitatorRequest) -> VerifyResponse {
        let inner = &self.inner;
        let now = inner.clock.now() / 1_000_000_000;
        if req.x402_version != X402_VERSION {
            return invalid(reason::INVALID_X402_VERSION, "x402Version must be 2");
        }
        let verified = match faregate_x402::verify::verify_exact(
            &req.payment_payload,
            &req.payment_requirements,
            now,
        ) {
            Ok(v) => v,
            Err(e) => return e.verify_response(),
        };
        let remote = inner.checker.as_ref().unwrap_or(&inner.settler);
        match remote.verify(req).await {
            Ok(answer) if !answer.is_valid => answer,
            Ok(_) => verified.verify_response(),
            Err(e) => invalid(reason::UNEXPECTED_VERIFY_ERROR, &e),
        }
    }

    /// `/settle`: verifies again, reserves the nonce, settles, and records
    /// the outcome. Every failure is a `success: false` answer.
    pub async fn facilitate_settle(&self, req: &FacilitatorRequest) -> SettleResponse {
        let inner = &self.inner;
        let network = req.payment_requirements.network.clone();
        let fail = |why: &str, message: String, payer: Option<String>| SettleResponse {
            success: false,
            error_reason: Some(why.to_owned()),
            error_message: Some(message),
            payer,
            transaction: String::new(),
            network: network.clone(),
            amount: None,
            extensions: None,
        };
        let checked = self.facilitate_verify(req).await;
        if !checked.is_valid {
            let why = checked
                .invalid_reason
                .unwrap_or_else(|| reason::INVALID_PAYLOAD.to_owned());
            return fail(
                &why,
                checked.invalid_message.unwrap_or_default(),
                checked.payer,
            );
        }
        let now = inner.clock.now() / 1_000_000_000;
        let Ok(verified) = faregate_x402::verify::verify_exact(
            &req.payment_payload,
            &req.payment_requirements,
            now,
        ) else {
            return fail(
                reason::INVALID_PAYLOAD,
                "the payment no longer verifies".into(),
                None,
            );
        };
        let auth = &verified.authorization;
        let at = now_ms(&*inner.clock);
        let payload = serde_json::to_vec(&req.payment_payload).unwrap_or_default();
        let record = PaymentRecord {
            id: faregate_store::new_id("pay"),
            rail: RailKind::X402.as_str().to_owned(),
            network: network.clone(),
            asset: req.payment_requirements.asset.to_ascii_lowercase(),
            payer: format!("{:#x}", auth.from),
            nonce: format!("{:#x}", auth.nonce),
            payload_hash: hex::encode(Sha256::digest(&payload)),
            payment_identifier: None,
            route: "(facilitator)".to_owned(),
            request_id: String::new(),
            amount: req.payment_requirements.amount.clone(),
            state: PaymentState::Pending,
            transaction: None,
            error: None,
            created_at: at,
            updated_at: at,
        };
        let payer = Some(record.payer.clone());
        match inner.store.reserve_payment(&record).await {
            Ok(Reservation::Reserved) => {}
            Ok(Reservation::Taken(_)) => {
                return fail(
                    reason::NONCE_USED,
                    "this authorization was already settled or is being settled".into(),
                    payer,
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reserve a facilitated x402 payment");
                return fail(
                    reason::UNEXPECTED_SETTLE_ERROR,
                    "store unavailable".into(),
                    payer,
                );
            }
        }
        let timeout = inner.config.load().settle_timeout;
        let mut answer = inner.settle_once(req, timeout).await;
        if !answer.success && answer.error_reason.as_deref() == Some(reason::SETTLEMENT_PENDING) {
            answer = inner.settle_once(req, timeout).await;
        }
        let at = now_ms(&*inner.clock);
        let recorded = if answer.success && !answer.transaction.is_empty() {
            inner
                .store
                .settle_payment(&record.id, &answer.transaction, None, None, at)
                .await
        } else {
            let why = answer
                .error_reason
                .clone()
                .unwrap_or_else(|| reason::UNEXPECTED_SETTLE_ERROR.to_owned());
            let tx = (!answer.transaction.is_empty()).then_some(answer.transaction.as_str());
            inner.store.fail_payment(&record.id, &why, tx, at).await
        };
        if let Err(e) = recorded {
            tracing::error!(payment = %record.id, error = %e, "cannot record a facilitated x402 settlement");
        }
        answer.network = network;
        answer.payer = answer.payer.or(payer);
        answer
    }

    /// `/supported`: what the settler settles.
    pub async fn facilitate_supported(&self) -> Result<Supported, String> {
        self.inner.settler.supported().await
    }
}

fn invalid(why: &str, message: &str) -> VerifyResponse {
    VerifyResponse {
        is_valid: false,
        invalid_reason: Some(why.to_owned()),
        invalid_message: Some(message.to_owned()),
        payer: None,
    }
}
