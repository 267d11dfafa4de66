//! The gateway's configuration: parsed from TOML, validated all at once,
//! and compiled into an immutable [`Config`] that the data plane reads
//! through one `ArcSwap` load per request.

mod compile;
pub mod llm;
#[cfg(test)]
mod llm_tests;
mod raw;
mod routes;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faregate_core::{ChargePolicy, Gcra, Price, RailKind};
pub use faregate_rails::ApiKey;
use http::{HeaderName, HeaderValue, Method};

pub use compile::{load, load_file};
pub use routes::{RouteMatch, RouteTable};

/// Default listener when the file names none.
pub const DEFAULT_LISTENER: &str = "127.0.0.1:8402";
/// Default admin listener: loopback only.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8403";
/// Default largest request body: 10 MiB (raise it per route for uploads).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Default largest request head.
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 32 * 1024;
/// Default longest request target.
pub const DEFAULT_MAX_URI_BYTES: u64 = 8 * 1024;
/// Default time to receive a request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest pause in a request body.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time to connect upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time to the upstream's response head.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default longest pause in an upstream response body.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default drain time on shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default store: a SQLite file in `faregate-data` beside where faregate runs.
pub const DEFAULT_STORE_URL: &str = "sqlite://faregate-data/faregate.db";
/// Default interval of the batched ledger writer.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// Default time idle pooled upstream connections are kept.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Every problem found in a config file, each with its field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `(path, message)` pairs, in file order.
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{n} problem{} in the config:",
            if n == 1 { "" } else { "s" }
        )?;
        for (path, message) in &self.problems {
            writeln!(f, "  {path}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A validated, compiled configuration.
#[derive(Debug)]
pub struct Config {
    /// Where callers connect.
    pub listeners: Vec<Listener>,
    /// The admin listener.
    pub admin: Admin,
    /// Gateway-wide limits (routes may override).
    pub limits: Limits,
    /// Base of problem `type` URIs, when fixed by config.
    pub public_url: Option<String>,
    /// Trust settings for HTTPS upstreams.
    pub upstream_tls: UpstreamTls,
    /// API keys from the file.
    pub keys: KeyTable,
    /// Where accounts, keys and the ledger live.
    pub store: StoreSettings,
    /// Where customers top up (`{account}` is replaced by the account id).
    pub top_up: Option<faregate_rails::credits::TopUpLink>,
    /// Subscription plans on sale, in catalog order.
    pub plans: Vec<faregate_core::Plan>,
    /// Webhooks in, notifications out, billing links.
    pub billing: BillingSettings,
    /// The x402 rail's settings and each x402 route's offers.
    pub x402: X402Settings,
    /// The LLM gateway's providers, models and limits.
    pub llm: llm::LlmSettings,
    /// The routes and their matcher.
    pub routes: RouteTable,
}

/// `[x402]` and the routes' `x402` tables, compiled.
#[derive(Clone)]
pub struct X402Settings {
    /// Each x402 route's offers and options, by route name.
    pub routes: std::collections::HashMap<String, faregate_rails::x402::RouteX402>,
    /// How payments settle.
    pub settlement: X402Settlement,
    /// The EVM JSON-RPC (chain settlement, chain checks).
    pub rpc_url: Option<String>,
    /// Ask the chain about each payment before forwarding.
    pub check_chain: bool,
    /// The longest a settlement may take.
    pub settle_timeout: Duration,
    /// HMAC key of bundle access tokens.
    pub token_secret: Option<String>,
    /// Serve `/x402/verify`, `/x402/settle`, `/x402/supported`.
    pub facilitator: bool,
}

impl fmt::Debug for X402Settings {
    // The token secret and signer key stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X402Settings")
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .field("settlement", &self.settlement)
            .field("check_chain", &self.check_chain)
            .field("settle_timeout", &self.settle_timeout)
            .field("facilitator", &self.facilitator)
            .finish_non_exhaustive()
    }
}

/// How x402 payments settle.
#[derive(Clone, PartialEq, Eq)]
pub enum X402Settlement {
    /// Through an x402 facilitator's HTTP API.
    Facilitator {
        /// Its base URL.
        url: String,
    },
    /// Directly, with faregate's own gas-paying key.
    Chain {
        /// The EVM JSON-RPC.
        rpc_url: String,
        /// The chain, `eip155:<id>`.
        network: String,
        /// The gas-paying key (hex).
        signer_key: String,
        /// Blocks that must include the transfer, its own counted.
        confirmations: u64,
        /// A fixed gas limit per transfer instead of an estimate.
        gas_limit: Option<u64>,
    },
}

impl fmt::Debug for X402Settlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Facilitator { url } => f.debug_struct("Facilitator").field("url", url).finish(),
            Self::Chain {
                network,
                confirmations,
                gas_limit,
                ..
            } => f
                .debug_struct("Chain")
                .field("network", network)
                .field("confirmations", confirmations)
                .field("gas_limit", gas_limit)
                .finish_non_exhaustive(),
        }
    }
}

impl Config {
    /// The x402 rail's settings.
    pub fn x402_config(&self) -> faregate_rails::x402::X402Config {
        faregate_rails::x402::X402Config {
            routes: self.x402.routes.clone(),
            settle_timeout: self.x402.settle_timeout,
            token_secret: self
                .x402
                .token_secret
                .clone()
                .map(String::into_bytes)
                .unwrap_or_default(),
        }
    }
}

impl Config {
    /// The plans rail's settings.
    pub fn plans_config(&self) -> faregate_rails::plans::PlansConfig {
        let b = &self.billing;
        faregate_rails::plans::PlansConfig {
            catalog: self.plans.clone(),
            flush_interval: self.store.flush_interval,
            trial_ending_notice: b.trial_ending_notice,
            low_balance: b.low_balance.clone(),
            payment_method_url: b.payment_method_url.clone(),
            webhook_secrets: b.stripe_webhook_secrets.clone(),
            webhook_tolerance: b.webhook_tolerance,
            ..faregate_rails::plans::PlansConfig::default()
        }
    }
}

/// `[billing]`, compiled.
#[derive(Debug, Clone)]
pub struct BillingSettings {
    /// Stripe webhook signing secrets; none turns `/webhooks/stripe` off.
    pub stripe_webhook_secrets: Vec<String>,
    /// How old a webhook signature may be.
    pub webhook_tolerance: std::time::Duration,
    /// Where customers add a payment method.
    pub payment_method_url: String,
    /// Spendable balances that trigger `balance.low`.
    pub low_balance: Vec<faregate_core::Money>,
    /// How long before a trial ends to notify.
    pub trial_ending_notice: std::time::Duration,
}

/// One listener.
#[derive(Clone)]
pub struct Listener {
    /// Address to bind.
    pub address: SocketAddr,
    /// TLS to terminate, with HTTP/2 offered by ALPN.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The store, read once at start (changing it needs a restart).
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
    /// How often per-request debits are written.
    pub flush_interval: Duration,
}

impl fmt::Debug for StoreSettings {
    // The URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &redact_url(&self.url))
            .field("flush_interval", &self.flush_interval)
            .finish()
    }
}

/// `url` with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// The admin listener.
#[derive(Clone)]
pub struct Admin {
    /// Address to bind.
    pub address: SocketAddr,
    /// Bearer token of the admin API.
    pub token: Option<String>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Sizes and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: u64,
    /// Largest request head.
    pub max_header_bytes: u64,
    /// Longest request target.
    pub max_uri_bytes: u64,
    /// Time to receive a request head.
    pub header_read_timeout: Duration,
    /// Longest pause in a request body.
    pub body_idle_timeout: Duration,
    /// Time to connect upstream.
    pub connect_timeout: Duration,
    /// Time to the upstream's response head.
    pub first_byte_timeout: Duration,
    /// Longest pause in the upstream's response body.
    pub idle_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
    /// How long idle upstream connections stay pooled.
    pub pool_idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_idle_timeout: DEFAULT_BODY_IDLE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
        }
    }
}

/// Which roots HTTPS upstreams are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamTls {
    /// Extra roots from a PEM file.
    pub ca_file: Option<PathBuf>,
    /// Whether the system's roots are trusted too.
    pub system_roots: bool,
}

/// Who may pass a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone; the route is free.
    Anyone,
    /// Holders of an API key.
    ApiKey,
    /// Callers who pay through one of these rails, in order.
    Rails(Vec<RailKind>),
}

/// How a route spreads requests over its upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Each in turn, skipping those marked down.
    RoundRobin,
    /// The first that is up.
    Failover,
}

/// What a rate limit counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKey {
    /// The API key when there is one, else the client IP.
    Key,
    /// The client IP.
    Ip,
}

/// A route's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// What it counts by.
    pub per: RateKey,
    /// The arithmetic.
    pub gcra: Gcra,
}

/// One upstream base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// `host:port`.
    pub authority: http::uri::Authority,
    /// Path prefix prepended to forwarded paths (no trailing slash).
    pub base_path: String,
    /// `host:port` as text, for the access log.
    pub name: Arc<str>,
    /// The `Host` header for this upstream, made once (the port left out
    /// when it is the scheme's default).
    pub host_header: HeaderValue,
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Position in the table, used by metrics and limiters.
    pub index: usize,
    /// The path pattern as written (`/a/b` or `/prefix/*`).
    pub path: String,
    /// The route's name.
    pub name: Arc<str>,
    /// Methods matched; any when `None`.
    pub methods: Option<Vec<Method>>,
    /// Where requests go.
    pub upstreams: Vec<Upstream>,
    /// How they are spread.
    pub balance: Balance,
    /// Prefix cut from the path before forwarding.
    pub strip_prefix: Option<String>,
    /// Keep the caller's Host upstream.
    pub preserve_host: bool,
    /// What a call costs.
    pub price: Price,
    /// Who may pass.
    pub access: Access,
    /// What is charged.
    pub charge: ChargePolicy,
    /// Optional rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Limits for this route.
    pub limits: Limits,
    /// Headers added upstream.
    pub upstream_headers: Vec<(HeaderName, HeaderValue)>,
    /// What it serves of the LLM gateway, if anything.
    pub llm: Option<llm::LlmRoute>,
}

impl Route {
    /// Whether the route takes `method`.
    pub fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }
}

/// API keys from the file, found by the SHA-256 of the key.
#[derive(Debug, Default)]
pub struct KeyTable {
    /// Digests are uniform, and come from the config: FNV.
    by_hash: std::collections::HashMap<[u8; 32], Arc<ApiKey>, faregate_core::FnvBuild>,
}

impl KeyTable {
    /// Looks up a presented key. Lookup is by the key's SHA-256, so the
    /// time it takes says nothing about how close a guess was.
    pub fn find(&self, presented: &str) -> Option<&Arc<ApiKey>> {
        self.find_hashed(&sha256(presented.as_bytes()))
    }

    /// Looks up a key by its SHA-256.
    pub fn find_hashed(&self, hash: &[u8; 32]) -> Option<&Arc<ApiKey>> {
        self.by_hash.get(hash)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
