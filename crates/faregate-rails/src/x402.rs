//! The x402 v2 rail: agents pay per request with a signed EIP-3009
//! transfer in `PAYMENT-SIGNATURE`.
//!
//! `authorize` decodes the payload, matches what the client says it paid
//! against the offers this gateway makes for this route at this price
//! (never the client's own requirements), verifies the signature and its
//! fields in process, and reserves the payment in the store, whose unique
//! key (network, asset, payer, nonce) lets one request of any number, on
//! any node, hold it. The request is then forwarded; `before_head`
//! settles only when the upstream answered below 400 (never for `HEAD`),
//! and only a settled payment is served, with `PAYMENT-RESPONSE`. A
//! settlement runs in its own task, so a client that leaves while it runs
//! cannot leave it half done: the task records the outcome either way.
//!
//! A route may settle before forwarding instead, and may sell a bundle
//! (N calls or T seconds) for one payment: the paid response then carries
//! an access token that later requests present as `Authorization: Bearer
//! fgx_…`, drawn down in the store like credits.

mod bundle;
mod facilitator;
pub mod offers;
mod settlement;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use faregate_core::{Clock, Decision, Hold, Money, Problem, ProblemCode, RailKind};
use faregate_store::{PaymentRecord, PaymentState, Reservation, Store};
use faregate_x402::reason;
use faregate_x402::settle::Settler;
use faregate_x402::wire::{
    FacilitatorRequest, PaymentPayload, PaymentRequired, X402_VERSION, decode_header,
};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

pub use offers::{Bundle, RouteX402, SettleWhen, TokenOffer};

use crate::{BoxFuture, Credential, Head, HeadVerdict, Outcome, Rail, RailRequest, Settlement};
use offers::refusal;

/// The response header carrying a bundle's access token.
pub const ACCESS_TOKEN: &str = "x402-access-token";
/// The response header saying until when the token is good (RFC 3339).
pub const ACCESS_EXPIRES: &str = "x402-access-expires";
/// The response header counting the calls a token has left.
pub const ACCESS_REMAINING: &str = "x402-access-remaining";

/// How the x402 rail runs.
#[derive(Debug, Clone)]
pub struct X402Config {
    /// Each x402 route's settings, by route name.
    pub routes: HashMap<String, RouteX402>,
    /// The longest a settlement may take before the payment counts as
    /// failed (and nothing is served).
    pub settle_timeout: Duration,
    /// HMAC key of bundle access tokens; every node of a cluster needs the
    /// same one.
    pub token_secret: Vec<u8>,
}

impl Default for X402Config {
    fn default() -> Self {
        Self {
            routes: HashMap::new(),
            settle_timeout: Duration::from_secs(30),
            token_secret: Vec::new(),
        }
    }
}

/// The x402 rail.
#[derive(Debug, Clone)]
pub struct X402 {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    settler: Arc<dyn Settler>,
    checker: Option<Arc<dyn Settler>>,
    clock: Arc<dyn Clock>,
    config: ArcSwap<X402Config>,
    inflight: Mutex<HashMap<u64, Arc<Entry>>>,
    next: AtomicU64,
    stats: Stats,
}

/// What the rail counts, for `/metrics`.
#[derive(Debug, Default)]
struct Stats {
    /// Payments that verified and were reserved.
    reserved: AtomicU64,
    /// Payment credentials refused (did not verify, replayed, spent).
    refused: AtomicU64,
    /// Settlements that succeeded.
    settled: AtomicU64,
    /// Settlements that failed or timed out (nothing served).
    failed: AtomicU64,
    /// Reservations given back (upstream failure, `HEAD`, a redirect).
    released: AtomicU64,
    /// Calls drawn from bundles.
    drawn: AtomicU64,
}

/// A payment between `authorize` and the end of its request.
#[derive(Debug)]
struct Entry {
    payment_id: String,
    request: FacilitatorRequest,
    payer: String,
    amount: Money,
    route: String,
    bundle: Option<Bundle>,
    /// The route's 402, sent again if settlement fails.
    required: PaymentRequired,
    phase: Mutex<Phase>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Verified and reserved.
    Reserved,
    /// A settlement task runs.
    Settling,
    /// The money moved and the store says so.
    Settled,
    /// Not settled; never served.
    Failed,
}

impl X402 {
    /// A rail settling with `settler`; `checker`, when given, is asked to
    /// verify each payment remotely (the chain's `authorizationState` and
    /// balance) before it is forwarded.
    pub fn new(
        store: Arc<dyn Store>,
        settler: Arc<dyn Settler>,
        checker: Option<Arc<dyn Settler>>,
        clock: Arc<dyn Clock>,
        mut config: X402Config,
    ) -> Self {
        if config.token_secret.is_empty() {
            config.token_secret = crate::outbox::new_secret().into_bytes();
        }
        Self {
            inner: Arc::new(Inner {
                store,
                settler,
                checker,
                clock,
                config: ArcSwap::from_pointee(config),
                inflight: Mutex::new(HashMap::new()),
                next: AtomicU64::new(1),
                stats: Stats::default(),
            }),
        }
    }

    /// Replaces the routes and settings (on config reload); payments in
    /// flight finish under the settings they started with.
    pub fn configure(&self, mut config: X402Config) {
        if config.token_secret.is_empty() {
            config.token_secret = self.inner.config.load().token_secret.clone();
        }
        self.inner.config.store(Arc::new(config));
    }

    /// The current settings.
    pub fn config(&self) -> Arc<X402Config> {
        self.inner.config.load_full()
    }

    /// The settler, for the facilitator endpoints.
    pub fn settler(&self) -> &Arc<dyn Settler> {
        &self.inner.settler
    }

    /// Payments in flight on this node.
    pub fn in_flight(&self) -> usize {
        self.inner.inflight.lock().len()
    }

    /// The rail's counters in Prometheus text format.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write as _;
        let s = &self.inner.stats;
        let mut out = String::new();
        for (name, help, value) in [
            (
                "faregate_x402_payments_reserved_total",
                "x402 payments verified and reserved.",
                &s.reserved,
            ),
            (
                "faregate_x402_payments_refused_total",
                "x402 payment credentials refused (invalid, replayed, spent).",
                &s.refused,
            ),
            (
                "faregate_x402_settlements_total",
                "x402 payments settled.",
                &s.settled,
            ),
            (
                "faregate_x402_settlements_failed_total",
                "x402 settlements that failed or timed out; nothing was served.",
                &s.failed,
            ),
            (
                "faregate_x402_payments_released_total",
                "x402 reservations given back unsettled (upstream failure, HEAD, redirect).",
                &s.released,
            ),
            (
                "faregate_x402_bundle_calls_total",
                "Calls drawn from x402 bundles.",
                &s.drawn,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP faregate_x402_payments_in_flight x402 payments between verification and the end of their request.\n# TYPE faregate_x402_payments_in_flight gauge\nfaregate_x402_payments_in_flight {}",
            self.in_flight()
        );
        out
    }
}

/// The URL the caller asked for, as the caller sees it.
fn resource_url(req: &RailRequest<'_>) -> String {
    let path = req.url.path_and_query().map_or("/", |p| p.as_str());
    format!("{}{path}", req.origin)
}

fn now_ms(clock: &dyn Clock) -> i64 {
    i64::try_from(clock.now() / 1_000_000).unwrap_or(i64::MAX)
}

/// The `payment-identifier` extension's id, if the client sent one; an
/// error for one that breaks the extension's rules.
fn payment_identifier(payload: &PaymentPayload) -> Result<Option<String>, String> {
    let Some(ext) = payload
        .extensions
        .as_ref()
        .and_then(|e| e.get("payment-identifier"))
    else {
        return Ok(None);
    };
    let id = ext
        .get("info")
        .and_then(|i| i.get("id"))
        .or_else(|| ext.get("id"))
        .and_then(|v| v.as_str());
    let Some(id) = id else {
        return Ok(None);
    };
    let ok = (16..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(Some(id.to_owned()))
    } else {
        Err("a payment-identifier id is 16 to 128 characters of A-Z, a-z, 0-9, _ and -".to_owned())
    }
}

/// Our code for an x402 verification failure: time-window failures say
/// the payment expired, everything else that it is invalid.
fn code_for(reason: &str) -> ProblemCode {
    if reason == reason::VALID_BEFORE || reason == reason::VALID_AFTER {
        ProblemCode::PaymentExpired
    } else {
        ProblemCode::PaymentInvalid
    }
}

impl Rail for X402 {
    fn kind(&self) -> RailKind {
        RailKind::X402
    }

    fn accepts(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::Payment(RailKind::X402, _))
    }

    fn authorize<'a>(&'a self, req: &'a RailRequest<'a>) -> BoxFuture<'a, Decision> {
        Box::pin(self.inner.clone().authorize(req))
    }

    fn offer(&self, req: &RailRequest<'_>) -> Option<faregate_core::Offer> {
        let config = self.inner.config.load();
        let route = config.routes.get(req.route)?;
        let price = req.price.amount()?;
        let required = route.payment_required(&resource_url(req), price, "Payment required")?;
        Some(offers::offer(&required))
    }

    fn before_head<'a>(&'a self, hold: &'a Hold, head: &'a Head) -> BoxFuture<'a, HeadVerdict> {
        Box::pin(async move {
            let Some(entry) = self.inner.inflight.lock().get(&hold.reference).cloned() else {
                return HeadVerdict::Send(Vec::new());
            };
            let phase = *entry.phase.lock();
            match phase {
                Phase::Settled => {
                    HeadVerdict::Send(vec![("cache-control", "private, no-store".to_owned())])
                }
                // Only an answer that delivers what was paid for: not a
                // failure, not a redirect, not a `HEAD`.
                Phase::Reserved
                    if head.method != http::Method::HEAD
                        && head.from_upstream
                        && head.status < 300 =>
                {
                    match self.inner.clone().settle_in_task(entry).await {
                        Ok(headers) => HeadVerdict::Send(headers),
                        Err(challenge) => HeadVerdict::Refuse(challenge),
                    }
                }
                // Not served, or not worth money: the payment is released
                // when the request ends.
                _ => HeadVerdict::Send(Vec::new()),
            }
        })
    }

    fn settle<'a>(&'a self, hold: Hold, _outcome: &'a Outcome) -> BoxFuture<'a, Settlement> {
        Box::pin(async move {
            let Some(entry) = self.inner.inflight.lock().remove(&hold.reference) else {
                return Settlement::default();
            };
            let phase = *entry.phase.lock();
            match phase {
                Phase::Reserved => {
                    self.inner.stats.released.fetch_add(1, Ordering::Relaxed);
                    // Nothing was served for it: the same signed payment may
                    // be used again.
                    if let Err(e) = self.inner.store.release_payment(&entry.payment_id).await {
                        tracing::error!(payment = %entry.payment_id, error = %e, "cannot release an x402 payment");
                    }
                    Settlement::default()
                }
                Phase::Settled => Settlement {
                    charged: Some(entry.amount),
                    headers: Vec::new(),
                },
                // A settling task records its own outcome.
                Phase::Settling | Phase::Failed => Settlement::default(),
            }
        })
    }
}

impl Inner {
    async fn authorize(self: Arc<Self>, req: &RailRequest<'_>) -> Decision {
        let Credential::Payment(RailKind::X402, raw) = req.credential else {
            return Decision::Deny(Problem::from_code(ProblemCode::InternalError));
        };
        let config = self.config.load_full();
        let Some(route) = config.routes.get(req.route) else {
            return Decision::Deny(Problem::new(
                ProblemCode::Forbidden,
                format!("route {} takes no x402 payments", req.route),
            ));
        };
        let Some(price) = req.price.amount() else {
            return Decision::Allow(Hold::NONE);
        };
        let url = resource_url(req);
        let Some(required) = route.payment_required(&url, price, "Payment required") else {
            return Decision::Deny(Problem::new(
                ProblemCode::Forbidden,
                format!(
                    "the price of route {} cannot be paid in any configured token",
                    req.route
                ),
            ));
        };
        if raw.starts_with(token::PREFIX) {
            return self.redeem(req, &config, raw, &required).await;
        }
        let refuse = |code: ProblemCode, why: &str, detail: String| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            Decision::PaymentRequired(refusal(code, why, detail, Some(&required), None))
        };
        let payload: PaymentPayload = match decode_header(raw) {
            Ok(p) => p,
            Err(e) => {
                return refuse(
                    ProblemCode::PaymentInvalid,
                    reason::INVALID_PAYLOAD,
                    format!("PAYMENT-SIGNATURE: {e}"),
                );
            }
        };
        if payload.x402_version != X402_VERSION {
            return refuse(
                ProblemCode::PaymentInvalid,
                reason::INVALID_X402_VERSION,
                format!("x402Version {} is not 2", payload.x402_version),
            );
        }
        let Some(requirements) = required
            .accepts
            .iter()
            .find(|r| r.is_matched_by(&payload.accepted))
        else {
            return refuse(
                ProblemCode::PaymentInvalid,
                reason::NO_MATCHING_REQUIREMENTS,
                "the payment's `accepted` is not an offer of this route at this price".to_owned(),
            );
        };
        if let Some(resource) = &payload.resource
            && resource.url != url
        {
            return refuse(
                ProblemCode::PaymentInvalid,
                reason::INVALID_PAYLOAD,
                format!("the payment is for {}, not {url}", resource.url),
            );
        }
        let identifier = match payment_identifier(&payload) {
            Ok(id) => id,
            Err(detail) => return Decision::Deny(Problem::new(ProblemCode::BadRequest, detail)),
        };
        let now = req.now / 1_000_000_000;
        let verified = match faregate_x402::verify::verify_exact(&payload, requirements, now) {
            Ok(v) => v,
            Err(invalid) => {
                return refuse(code_for(invalid.reason), invalid.reason, invalid.message);
            }
        };
        let request = FacilitatorRequest {
            x402_version: X402_VERSION,
            payment_payload: payload,
            payment_requirements: requirements.clone(),
        };
        if let Some(checker) = &self.checker {
            match checker.verify(&request).await {
                Ok(v) if !v.is_valid => {
                    let why = v
                        .invalid_reason
                        .as_deref()
                        .unwrap_or(reason::INVALID_PAYLOAD);
                    return refuse(
                        code_for(why),
                        why,
                        v.invalid_message
                            .unwrap_or_else(|| "the chain refuses this payment".to_owned()),
                    );
                }
                Ok(_) => {}
                // Settlement is the final check; a chain that cannot be
                // asked now does not stop a payment that verified.
                Err(e) => tracing::warn!(error = %e, "x402 chain check failed; settling decides"),
            }
        }
        let auth = &verified.authorization;
        let now_ms = now_ms(&*self.clock);
        let record = PaymentRecord {
            id: faregate_store::new_id("pay"),
            rail: RailKind::X402.as_str().to_owned(),
            network: requirements.network.clone(),
            asset: requirements.asset.to_ascii_lowercase(),
            payer: format!("{:#x}", auth.from),
            nonce: format!("{:#x}", auth.nonce),
            payload_hash: hex::encode(Sha256::digest(raw.trim().as_bytes())),
            payment_identifier: identifier.clone(),
            route: req.route.to_owned(),
            request_id: req.request_id.to_owned(),
            amount: requirements.amount.clone(),
            state: PaymentState::Pending,
            transaction: None,
            error: None,
            created_at: now_ms,
            updated_at: now_ms,
        };
        match self.store.reserve_payment(&record).await {
            Ok(Reservation::Reserved) => {
                self.stats.reserved.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Reservation::Taken(first)) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                return taken(&record, &first, &required);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reserve an x402 payment");
                return Decision::Deny(Problem::from_code(ProblemCode::InternalError));
            }
        }
        let entry = Arc::new(Entry {
            payment_id: record.id,
            request,
            payer: record.payer,
            amount: price,
            route: req.route.to_owned(),
            bundle: route.bundle,
            required: required.clone(),
            phase: Mutex::new(Phase::Reserved),
        });
        let reference = self.next.fetch_add(1, Ordering::Relaxed);
        self.inflight.lock().insert(reference, entry.clone());
        let mut hold = Hold {
            rail: Some(RailKind::X402),
            amount: Some(price),
            reference,
            headers: Vec::new(),
        };
        if route.settle == SettleWhen::BeforeForward {
            match self.clone().settle_in_task(entry).await {
                Ok(headers) => hold.headers = headers,
                Err(challenge) => {
                    self.inflight.lock().remove(&reference);
                    return Decision::PaymentRequired(challenge);
                }
            }
        }
        Decision::Allow(hold)
    }
}

/// The answer to a payment whose nonce or identifier another request took.
fn taken(ours: &PaymentRecord, first: &PaymentRecord, required: &PaymentRequired) -> Decision {
    let same_identifier =
        ours.payment_identifier.is_some() && ours.payment_identifier == first.payment_identifier;
    if same_identifier && first.payload_hash != ours.payload_hash {
        return Decision::Deny(Problem::new(
            ProblemCode::Conflict,
            "this payment-identifier was used with another payment",
        ));
    }
    if same_identifier {
        let detail = match (first.state, &first.transaction) {
            (PaymentState::Settled, Some(tx)) => format!(
                "this payment was already settled (transaction {tx}) and served once; it is not charged again"
            ),
            (PaymentState::Pending, _) => {
                "this payment is being served to another request; it is not charged twice"
                    .to_owned()
            }
            _ => "this payment failed before; pay again with a new payment".to_owned(),
        };
        return Decision::Deny(Problem::new(ProblemCode::Conflict, detail));
    }
    Decision::PaymentRequired(refusal(
        ProblemCode::PaymentInvalid,
        reason::NONCE_USED,
        "this authorization's nonce was already used".to_owned(),
        Some(required),
        None,
    ))
}
