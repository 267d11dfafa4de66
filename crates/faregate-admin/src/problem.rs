//! Problem documents (RFC 9457) for every refusal and error of the admin
//! listener, and the one table that gives each stable code its status.
//!
//! Errors say who is at fault: caller mistakes carry a detail that helps fix
//! the request; store and internal failures are logged with their cause and
//! answered with a fixed sentence, so no database detail reaches a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use faregate_core::TransitionError;
use faregate_rails::credits::CreditsError;
use faregate_rails::plans::PlansError;
use faregate_store::StoreError;

macro_rules! codes {
    ($( $variant:ident = ($code:literal, $status:ident), )*) => {
        /// A stable snake_case reason that clients switch on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Code { $( $variant, )* }

        impl Code {
            /// Every code, in table order (the OpenAPI document lists them).
            #[cfg(test)]
            pub(crate) const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as clients see it.
            pub(crate) fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// The one HTTP status the code is sent with.
            pub(crate) fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
            }
        }
    };
}

codes! {
    MalformedBody = ("malformed_body", BAD_REQUEST),
    InvalidPath = ("invalid_path", BAD_REQUEST),
    InvalidQuery = ("invalid_query", BAD_REQUEST),
    IdempotencyKeyRequired = ("idempotency_key_required", BAD_REQUEST),
    InvalidIdempotencyKey = ("invalid_idempotency_key", BAD_REQUEST),
    InvalidAdminToken = ("invalid_admin_token", UNAUTHORIZED),
    AdminTokenUnset = ("admin_token_unset", FORBIDDEN),
    NotFound = ("not_found", NOT_FOUND),
    AccountNotFound = ("account_not_found", NOT_FOUND),
    KeyNotFound = ("key_not_found", NOT_FOUND),
    WebhookEndpointNotFound = ("webhook_endpoint_not_found", NOT_FOUND),
    SubscriptionNotFound = ("subscription_not_found", NOT_FOUND),
    InvoiceNotFound = ("invoice_not_found", NOT_FOUND),
    ReceiptNotFound = ("receipt_not_found", NOT_FOUND),
    MethodNotAllowed = ("method_not_allowed", METHOD_NOT_ALLOWED),
    ReloadUnavailable = ("reload_unavailable", CONFLICT),
    PlansNotConfigured = ("plans_not_configured", CONFLICT),
    CustomerConflict = ("customer_conflict", CONFLICT),
    PaymentMethodRequired = ("payment_method_required", CONFLICT),
    SubscriptionConflict = ("subscription_conflict", CONFLICT),
    PayloadTooLarge = ("payload_too_large", PAYLOAD_TOO_LARGE),
    UnsupportedMediaType = ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE),
    InvalidBody = ("invalid_body", UNPROCESSABLE_ENTITY),
    InvalidName = ("invalid_name", UNPROCESSABLE_ENTITY),
    InvalidCurrency = ("invalid_currency", UNPROCESSABLE_ENTITY),
    InvalidAmount = ("invalid_amount", UNPROCESSABLE_ENTITY),
    CurrencyMismatch = ("currency_mismatch", UNPROCESSABLE_ENTITY),
    InvalidReason = ("invalid_reason", UNPROCESSABLE_ENTITY),
    InvalidRoutes = ("invalid_routes", UNPROCESSABLE_ENTITY),
    InvalidModels = ("invalid_models", UNPROCESSABLE_ENTITY),
    InvalidBudget = ("invalid_budget", UNPROCESSABLE_ENTITY),
    InvalidLimit = ("invalid_limit", UNPROCESSABLE_ENTITY),
    InvalidExpiry = ("invalid_expiry", UNPROCESSABLE_ENTITY),
    InvalidUrl = ("invalid_url", UNPROCESSABLE_ENTITY),
    InvalidEvents = ("invalid_events", UNPROCESSABLE_ENTITY),
    InvalidDescription = ("invalid_description", UNPROCESSABLE_ENTITY),
    IdempotencyKeyReused = ("idempotency_key_reused", UNPROCESSABLE_ENTITY),
    InvalidConfig = ("invalid_config", UNPROCESSABLE_ENTITY),
    UnknownPlan = ("unknown_plan", UNPROCESSABLE_ENTITY),
    InvalidCustomer = ("invalid_customer", UNPROCESSABLE_ENTITY),
    AccountRequired = ("account_required", UNPROCESSABLE_ENTITY),
    InternalError = ("internal_error", INTERNAL_SERVER_ERROR),
    StoreUnavailable = ("store_unavailable", SERVICE_UNAVAILABLE),
}

/// What clients read when the fault is ours; the log has the cause.
const INTERNAL_DETAIL: &str = "the admin API failed; the gateway log says why";

/// A refusal or an error, answered as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) code: Code,
    pub(crate) detail: String,
}

impl Problem {
    /// A problem with `code` and a detail that tells the caller what to fix.
    pub(crate) fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    /// A failure on our side: logs `error` and tells the client nothing of
    /// it.
    pub(crate) fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "admin API request failed");
        Self::new(Code::InternalError, INTERNAL_DETAIL)
    }

    fn body(&self) -> String {
        let status = self.code.status();
        serde_json::json!({
            "type": format!("about:blank#{}", self.code.as_str()),
            "title": status.canonical_reason().unwrap_or(""),
            "status": status.as_u16(),
            "detail": self.detail,
            "code": self.code.as_str(),
        })
        .to_string()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut r = (self.code.status(), self.body()).into_response();
        let headers = r.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.code == Code::InvalidAdminToken {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"faregate-admin\""),
            );
        }
        r
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Currency { .. } => Problem::new(Code::CurrencyMismatch, e.to_string()),
            e => Problem::internal(&e),
        }
    }
}

impl From<CreditsError> for Problem {
    fn from(e: CreditsError) -> Self {
        match e {
            CreditsError::NoAccount(id) => account_not_found(&id),
            CreditsError::Currency {
                account,
                held,
                given,
            } => Problem::new(
                Code::CurrencyMismatch,
                format!("account {account} holds {held}, not {given}"),
            ),
            CreditsError::Stopped => Problem::new(
                Code::StoreUnavailable,
                "the ledger writer has stopped: the gateway is shutting down",
            ),
            CreditsError::Store(e) => e.into(),
        }
    }
}

impl From<PlansError> for Problem {
    fn from(e: PlansError) -> Self {
        match e {
            PlansError::UnknownPlan(plan) => Problem::new(
                Code::UnknownPlan,
                format!("no plan {plan}; GET /v1/plans lists the plans on sale"),
            ),
            PlansError::NoAccount(id) => account_not_found(&id),
            // The one reference a billing change may miss: its account.
            PlansError::Store(e @ StoreError::NotFound(_)) => {
                Problem::new(Code::AccountNotFound, e.to_string())
            }
            PlansError::NoSubscription(id) => subscription_not_found(&id),
            PlansError::Currency { .. } => Problem::new(Code::CurrencyMismatch, e.to_string()),
            PlansError::Transition(TransitionError::PaymentMethodRequired) => Problem::new(
                Code::PaymentMethodRequired,
                "a paid period cannot start without a payment method on file; \
                 start the trial, or attach one through the card processor first",
            ),
            PlansError::Transition(t) => Problem::new(Code::SubscriptionConflict, t.to_string()),
            PlansError::Contended => Problem::new(Code::SubscriptionConflict, e.to_string()),
            // The one unique link a billing change writes.
            PlansError::Store(StoreError::Duplicate(_)) => customer_conflict(),
            PlansError::Store(e) => e.into(),
            PlansError::Corrupt { .. } => Problem::internal(&e),
        }
    }
}

/// `customer_conflict`: a processor customer id names one account, and an
/// account has one.
pub(crate) fn customer_conflict() -> Problem {
    Problem::new(
        Code::CustomerConflict,
        "the customer id is linked to another account, or the account to another customer id",
    )
}

/// `subscription_not_found` for the account `id`.
pub(crate) fn subscription_not_found(id: &str) -> Problem {
    Problem::new(
        Code::SubscriptionNotFound,
        format!("account {id} has no subscription"),
    )
}

/// `account_not_found` for `id`.
pub(crate) fn account_not_found(id: &str) -> Problem {
    Problem::new(Code::AccountNotFound, format!("no account {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_errors() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn internal_problems_hide_their_cause() {
        let p = Problem::from(StoreError::Corrupt("password=hunter2".into()));
        assert_eq!(p.code, Code::InternalError);
        assert!(!p.body().contains("hunter2"));
    }
}
