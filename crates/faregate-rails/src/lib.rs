//! Payment rails: every way a caller can pay, behind one trait.
//!
//! The gateway's `authorize` stage asks the route's rails, in the route's
//! order, and never knows what a rail does inside. A new rail is one new
//! module implementing [`Rail`]; it never touches the proxy.

pub mod credits;
pub mod outbox;
pub mod plans;
pub mod signature;
pub mod x402;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use faregate_core::{
    Budget, Challenge, ChargePolicy, Decision, Hold, LlmLimits, Money, Offer, Price, RailKind,
    UnixNanos,
};
use http::{HeaderMap, Method, Uri};

/// An API key the gateway knows, from the config file or from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id (never the key itself), for logs and rate limits.
    pub id: Arc<str>,
    /// The account it spends from; config-file keys have none.
    pub account: Option<Arc<str>>,
    /// The routes it may use; all when `None`.
    pub routes: Option<Vec<Arc<str>>>,
    /// The LLM models it may use; all when `None`.
    pub models: Option<Vec<Arc<str>>>,
    /// Its LLM budget (in its account's currency) and per-minute limits;
    /// the default is no limit.
    pub limits: LlmLimits,
    /// When it stops working.
    pub expires_at: Option<UnixNanos>,
}

impl ApiKey {
    /// Whether the key is scoped to `route`.
    pub fn may_use(&self, route: &str) -> bool {
        self.routes
            .as_ref()
            .is_none_or(|r| r.iter().any(|n| &**n == route))
    }

    /// Whether the key is scoped to LLM model `model`.
    pub fn may_use_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|n| &**n == model))
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: UnixNanos) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Where the `identify` stage looks up presented keys beyond the config
/// file's: an in-memory table, never a database round trip.
pub trait KeyDirectory: Send + Sync + fmt::Debug + 'static {
    /// The key whose SHA-256 is `hash` ([`key_hash`] of what was
    /// presented), if it is known and not revoked.
    fn find_hashed(&self, hash: &[u8; 32]) -> Option<Arc<ApiKey>>;

    /// The key `presented`, if it is known and not revoked.
    fn find(&self, presented: &str) -> Option<Arc<ApiKey>> {
        self.find_hashed(&key_hash(presented))
    }

    /// The LLM budget of account `account`, shared by all of its keys;
    /// `None` when it has none or the directory keeps no accounts. Read
    /// from memory, like [`find`](Self::find).
    fn account_budget(&self, _account: &str) -> Option<Budget> {
        None
    }
}

/// The SHA-256 of a presented key: keys are stored, and looked up, only by
/// it. A key has far more than 128 bits, so a fast hash is enough; looking
/// up by hash also means the time a lookup takes says nothing about how
/// close a guess was.
pub fn key_hash(presented: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(presented.as_bytes()).into()
}

/// A boxed future, so rails can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A credential found on the request by the `identify` stage.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Nothing.
    None,
    /// An account's API key, as sent.
    ApiKey(String),
    /// A per-request payment credential for one rail (the raw header value).
    Payment(RailKind, String),
}

impl fmt::Debug for Credential {
    // Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::None => f.write_str("None"),
            Credential::ApiKey(_) => f.write_str("ApiKey(..)"),
            Credential::Payment(rail, _) => write!(f, "Payment({rail}, ..)"),
        }
    }
}

/// What a rail sees of the request it is asked about.
#[derive(Debug)]
pub struct RailRequest<'a> {
    /// The request id (also the ledger reference of any charge).
    pub request_id: &'a str,
    /// The matched route's name.
    pub route: &'a str,
    /// The method.
    pub method: &'a Method,
    /// The URL the caller asked for, as the caller sees it.
    pub url: &'a Uri,
    /// Scheme and authority the caller reached the gateway at
    /// (`https://api.example.com`), for absolute resource URLs.
    pub origin: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The caller's credential.
    pub credential: &'a Credential,
    /// The account the caller's key belongs to, if any.
    pub account: Option<&'a str>,
    /// What the request costs.
    pub price: Price,
    /// Now, from the gateway's clock.
    pub now: UnixNanos,
}

/// How the request ended, for settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The request id, the ledger reference of a charge.
    pub request_id: String,
    /// What the route charges for.
    pub policy: ChargePolicy,
    /// The status sent to the caller.
    pub status: u16,
    /// Whether the status was the upstream's (false for the gateway's own
    /// 502/503/504, which are never charged).
    pub from_upstream: bool,
    /// The amount actually used, when metering measured one (LLM tokens);
    /// `None` means the price as held.
    pub measured: Option<Money>,
    /// Whether the response body reached the caller whole.
    pub complete: bool,
}

impl Outcome {
    /// Whether this outcome is charged: the route's policy allows the
    /// status, the upstream made it, and the caller got the whole body,
    /// or metering measured what was delivered of it (an LLM stream the
    /// caller left is charged for what it got).
    pub fn chargeable(&self) -> bool {
        (self.complete || self.measured.is_some())
            && self.policy.charges(self.status, self.from_upstream)
    }
}

/// What settling a hold did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settlement {
    /// The amount charged, if any.
    pub charged: Option<Money>,
    /// Headers to add to the response (for rails that settle before
    /// the response head is sent, such as x402's `PAYMENT-RESPONSE`).
    pub headers: Vec<(&'static str, String)>,
}

/// The upstream's answer as the response head is about to be sent, for
/// rails that settle before the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The request id.
    pub request_id: String,
    /// The request's method (`HEAD` is never settled).
    pub method: Method,
    /// The status about to be sent.
    pub status: u16,
    /// Whether the upstream made it (false for the gateway's own answers).
    pub from_upstream: bool,
}

/// What a rail decided before the response head.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadVerdict {
    /// Send the response, with these headers set (replacing any the
    /// upstream sent under the same name).
    Send(Vec<(&'static str, String)>),
    /// Do not serve it: answer this 402 instead (settlement failed).
    Refuse(Challenge),
}

/// One way of paying.
pub trait Rail: Send + Sync + fmt::Debug + 'static {
    /// Which rail this is.
    fn kind(&self) -> RailKind;

    /// Whether this rail handles `credential`.
    fn accepts(&self, credential: &Credential) -> bool;

    /// Verifies the credential and sets aside what the request costs.
    fn authorize<'a>(&'a self, req: &'a RailRequest<'a>) -> BoxFuture<'a, Decision>;

    /// What this rail adds to a 402 for this request, if it can be paid
    /// this way.
    fn offer(&self, req: &RailRequest<'_>) -> Option<Offer>;

    /// Turns `hold` into the final charge, or releases it.
    fn settle<'a>(&'a self, hold: Hold, outcome: &'a Outcome) -> BoxFuture<'a, Settlement>;

    /// Called with the upstream's status before the response head is sent,
    /// for rails whose payment must be final before anything is served
    /// (x402). The default sends the response as it is; `settle` still runs
    /// when the body is done.
    fn before_head<'a>(&'a self, _hold: &'a Hold, _head: &'a Head) -> BoxFuture<'a, HeadVerdict> {
        Box::pin(async { HeadVerdict::Send(Vec::new()) })
    }
}
