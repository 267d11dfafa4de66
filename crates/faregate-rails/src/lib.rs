//! Payment rails: every way a caller can pay, behind one trait.
//!
//! The gateway's `authorize` stage asks the route's rails, in the route's
//! order, and never knows what a rail does inside. A new rail is one new
//! module implementing [`Rail`]; it never touches the proxy.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use faregate_core::{Decision, Hold, Money, Offer, Price, RailKind, UnixNanos};
use http::{HeaderMap, Method, Uri};

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

/// What settling a hold did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settlement {
    /// The amount charged, if any.
    pub charged: Option<Money>,
    /// Headers to add to the response (for rails that settle before
    /// the response head is sent, such as x402's `PAYMENT-RESPONSE`).
    pub headers: Vec<(&'static str, String)>,
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
}
