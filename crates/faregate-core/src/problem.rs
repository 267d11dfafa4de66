//! Problem documents (RFC 9457) for every response the gateway makes itself.
//!
//! Each [`ProblemCode`] has exactly one HTTP status, a title, and a paragraph
//! that the gateway serves as the page its `type` URI points to. The codes are
//! stable: clients switch on them.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::money::Money;

macro_rules! problem_codes {
    ($( $variant:ident = ($code:literal, $status:literal, $title:literal, $explain:literal), )*) => {
        /// A stable, snake_case reason for a refusal or an error.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ProblemCode { $( #[doc = $title] $variant, )* }

        impl ProblemCode {
            /// Every code, in table order.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant,)*];

            /// The snake_case code clients switch on.
            pub fn as_str(self) -> &'static str {
                match self { $(ProblemCode::$variant => $code,)* }
            }

            /// The one HTTP status this code is sent with.
            pub fn status(self) -> u16 {
                match self { $(ProblemCode::$variant => $status,)* }
            }

            /// A short human title.
            pub fn title(self) -> &'static str {
                match self { $(ProblemCode::$variant => $title,)* }
            }

            /// What it means and how the caller fixes it, for the code's page.
            pub fn explanation(self) -> &'static str {
                match self { $(ProblemCode::$variant => $explain,)* }
            }

            /// Looks a code up by its snake_case name.
            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some(ProblemCode::$variant),)* _ => None }
            }
        }
    };
}

problem_codes! {
    BadRequest = ("bad_request", 400, "Malformed request",
        "The request could not be understood: its framing, headers or target are malformed. Fix the request before sending it again."),
    InvalidPath = ("invalid_path", 400, "Invalid request path",
        "The request path has invalid percent-encoding or climbs above the root with '..' segments. Send a normalized path."),
    InvalidHost = ("invalid_host", 400, "Invalid Host header",
        "The request has no Host, several Host headers, or a Host that is not a valid authority. Send exactly one valid Host header."),
    MalformedPayment = ("malformed_payment", 400, "Malformed payment credential",
        "A payment header was present but could not be decoded. Build the credential again from the 402 challenge."),
    InvalidSignature = ("invalid_signature", 400, "Invalid webhook signature",
        "The webhook's signature header is missing, malformed, outside the timestamp tolerance, or made with another secret. Sign the raw body with the endpoint's secret and send it at once."),
    InvalidBody = ("invalid_body", 400, "Invalid request body",
        "The request body is not what this endpoint takes (not JSON, or a required member such as 'model' is missing or of the wrong type). Fix the body; the detail says what is wrong."),
    MissingCredentials = ("missing_credentials", 401, "Credentials required",
        "This route is for API key holders and the request carried no key. Send 'Authorization: Bearer <key>'."),
    InvalidApiKey = ("invalid_api_key", 401, "Invalid API key",
        "The API key is not one this gateway knows. Check the key, or ask the operator for a new one."),
    ExpiredApiKey = ("expired_api_key", 401, "API key expired",
        "The API key has passed its expiry time. Ask the operator for a new key."),
    InsufficientCredits = ("insufficient_credits", 402, "Insufficient credits",
        "The account's prepaid balance does not cover this request. Top up the account (see the top_up action) and retry."),
    SubscriptionExpired = ("subscription_expired", 402, "Subscription expired",
        "The subscription that covered this route has ended. Renew it and retry."),
    SubscriptionPastDue = ("subscription_past_due", 402, "Subscription past due",
        "The subscription's last payment failed and its grace period is over. Update the payment method or pay the invoice."),
    TrialExpired = ("trial_expired", 402, "Trial expired",
        "The free trial has ended. Choose a plan to continue."),
    PaymentMethodRequired = ("payment_method_required", 402, "Payment method required",
        "A valid payment method is needed before this can proceed. Add one and retry."),
    InvoiceOverdue = ("invoice_overdue", 402, "Invoice overdue",
        "An invoice on this account is overdue. Pay it and retry."),
    QuotaExhausted = ("quota_exhausted", 402, "Quota exhausted",
        "The plan's included quota for this period is used up. Wait for the reset (Retry-After), buy credits, or upgrade."),
    UpgradeRequired = ("upgrade_required", 402, "Upgrade required",
        "The current plan does not include this route. Upgrade to one of the plans named in the upgrade_plan action."),
    PaymentInvalid = ("payment_invalid", 402, "Payment invalid",
        "The payment credential did not verify. A fresh challenge is attached: pay again."),
    PaymentExpired = ("payment_expired", 402, "Payment expired",
        "The payment credential is no longer valid in time. A fresh challenge is attached: pay again."),
    PaymentFailed = ("payment_failed", 402, "Payment failed",
        "The payment verified but could not be settled. Nothing was served; pay again."),
    PaymentRequired = ("payment_required", 402, "Payment required",
        "This resource is paid per request. Pay with one of the rails offered in 'accepts' and the headers of this response, then retry."),
    KeyNotAllowed = ("key_not_allowed", 403, "Key not allowed here",
        "The API key is valid but not scoped to this route. Paying more does not change this."),
    CurrencyMismatch = ("currency_mismatch", 403, "Currency mismatch",
        "The route is priced in a currency the account does not hold. Use a key of an account in the route's currency."),
    Forbidden = ("forbidden", 403, "Forbidden",
        "The caller may not use this route, whatever is paid."),
    ModelNotAllowed = ("model_not_allowed", 403, "Model not allowed for this key",
        "The API key is valid but not scoped to this model. GET /v1/models lists the models it may use; paying more does not change this."),
    ModelNotFound = ("model_not_found", 404, "No such model",
        "The model named in the request is not in this gateway's catalog. GET /v1/models lists the models this key may use."),
    RouteNotFound = ("route_not_found", 404, "No such route",
        "No configured route matches this host and path."),
    MethodNotAllowed = ("method_not_allowed", 405, "Method not allowed",
        "The route exists but does not accept this method. The Allow header lists the methods it takes."),
    Conflict = ("conflict", 409, "Conflict",
        "The request does not fit the current state of what it changes (activating an active subscription, canceling an ended one). Read the state and decide again."),
    RequestTimeout = ("request_timeout", 408, "Request timeout",
        "The client took too long to send its request body."),
    PayloadTooLarge = ("payload_too_large", 413, "Request body too large",
        "The request body is larger than this route accepts. Send less."),
    UriTooLong = ("uri_too_long", 414, "URI too long",
        "The request target is longer than the gateway accepts."),
    HeadersTooLarge = ("headers_too_large", 431, "Request headers too large",
        "The request's headers are larger than the gateway accepts. Send fewer or smaller headers."),
    RateLimited = ("rate_limited", 429, "Too many requests",
        "The rate limit for this route and caller is reached. Wait for Retry-After seconds; this is never a money problem."),
    BudgetExhausted = ("budget_exhausted", 429, "Budget exhausted",
        "The key's or the account's spending budget for this day or month would be exceeded by this request's worst case. Wait for Retry-After (the budget's reset) or ask the operator for a larger budget; this is not a balance problem."),
    TokensPerMinuteExceeded = ("tokens_per_minute_exceeded", 429, "Token rate limit reached",
        "The key has used its tokens for this minute. Wait for Retry-After seconds."),
    RequestsPerMinuteExceeded = ("requests_per_minute_exceeded", 429, "Request rate limit reached",
        "The key has made its requests for this minute. Wait for Retry-After seconds."),
    InternalError = ("internal_error", 500, "Internal error",
        "The gateway failed. The error was logged with this request id; nothing was charged."),
    UpstreamUnreachable = ("upstream_unreachable", 502, "Upstream unreachable",
        "The upstream refused or broke the connection, or sent an invalid response. Nothing was charged; retry later."),
    UpstreamUnavailable = ("upstream_unavailable", 503, "Upstream unavailable",
        "Every upstream of this route is marked down after failed connections. Nothing was charged; retry after Retry-After seconds."),
    UpstreamTimeout = ("upstream_timeout", 504, "Upstream timeout",
        "The upstream did not answer in time. Nothing was charged; retry later."),
}

/// What a client can do to fix a 402.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Add prepaid credit.
    TopUp,
    /// Renew a subscription.
    Renew,
    /// Move to a plan that includes the route.
    UpgradePlan,
    /// Add or replace the payment method.
    UpdatePaymentMethod,
    /// Pay an outstanding invoice.
    PayInvoice,
    /// Pay this one request with a per-request rail.
    PayPerRequest,
}

/// One way to fix a 402: `{kind, url, method}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// What the action does.
    pub kind: ActionKind,
    /// Where to do it.
    pub url: String,
    /// With which HTTP method.
    pub method: &'static str,
}

/// A problem the gateway answers with: a code plus what a program needs to act.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The stable reason.
    pub code: ProblemCode,
    /// A sentence about this occurrence, safe to show the caller.
    pub detail: String,
    /// What the request would have cost.
    pub price: Option<Money>,
    /// The caller's balance, where known.
    pub balance: Option<Money>,
    /// What fixes it.
    pub actions: Vec<Action>,
    /// Per-request rails offered for this very request.
    pub accepts: Vec<Value>,
    /// Seconds after which retrying can succeed.
    pub retry_after: Option<u64>,
    /// Further members, such as `allow` on a 405.
    pub extensions: Map<String, Value>,
}

impl Problem {
    /// A problem with `code` and a detail sentence.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            price: None,
            balance: None,
            actions: Vec::new(),
            accepts: Vec::new(),
            retry_after: None,
            extensions: Map::new(),
        }
    }

    /// A problem whose detail is the code's title.
    pub fn from_code(code: ProblemCode) -> Self {
        Self::new(code, code.title())
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// Sets the retry hint.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds a member to the document.
    #[must_use]
    pub fn with_extension(mut self, key: &str, value: Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    /// The `application/problem+json` body. `type_base` is the absolute URL
    /// under which the gateway serves one page per code; `instance` is the
    /// request id.
    pub fn to_json(&self, type_base: &str, instance: &str) -> Vec<u8> {
        let body = Body {
            type_: format!("{type_base}{}", self.code.as_str()),
            title: self.code.title(),
            status: self.code.status(),
            detail: &self.detail,
            instance,
            code: self.code.as_str(),
            price: self.price.map(Money::decimal_string),
            balance: self.balance.map(Money::decimal_string),
            currency: self.price.or(self.balance).map(|m| m.currency().code()),
            actions: &self.actions,
            accepts: &self.accepts,
            retry_after: self.retry_after,
            extensions: &self.extensions,
        };
        // A struct of strings, numbers and JSON values always serializes.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    instance: &'a str,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    balance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'static str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    actions: &'a [Action],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    accepts: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(flatten)]
    extensions: &'a Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for &code in ProblemCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate {s}");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert_eq!(ProblemCode::from_code(s), Some(code));
            assert!((400..600).contains(&code.status()));
        }
    }

    #[test]
    fn only_paying_fixes_a_402() {
        for &code in ProblemCode::ALL {
            let money_word = [
                "credit",
                "payment",
                "subscription",
                "trial",
                "invoice",
                "quota",
                "upgrade",
            ]
            .iter()
            .any(|w| code.as_str().contains(w));
            if code.status() == 402 {
                assert!(
                    money_word,
                    "{} is a 402 without a payment reason",
                    code.as_str()
                );
            }
        }
        assert_eq!(ProblemCode::RateLimited.status(), 429);
        assert_eq!(ProblemCode::KeyNotAllowed.status(), 403);
        assert_eq!(ProblemCode::MalformedPayment.status(), 400);
    }

    #[test]
    fn body_carries_the_contract_members() {
        let mut p = Problem::new(ProblemCode::InsufficientCredits, "balance too low");
        p.price = Some(Money::from_atomic(1_000, Currency::USD));
        p.balance = Some(Money::from_atomic(0, Currency::USD));
        p.actions.push(Action {
            kind: ActionKind::TopUp,
            url: "https://x/top".into(),
            method: "POST",
        });
        let v: Value =
            serde_json::from_slice(&p.to_json("https://gw/_faregate/problems/", "req-1")).unwrap();
        assert_eq!(
            v["type"],
            "https://gw/_faregate/problems/insufficient_credits"
        );
        assert_eq!(v["status"], 402);
        assert_eq!(v["instance"], "req-1");
        assert_eq!(v["code"], "insufficient_credits");
        assert_eq!(v["price"], "0.001");
        assert_eq!(v["balance"], "0.00");
        assert_eq!(v["currency"], "USD");
        assert_eq!(v["actions"][0]["kind"], "top_up");
        assert!(v.get("accepts").is_none());
    }
}
