//! The config file as written: TOML mapped onto plain structs.
//!
//! Leaf values that need parsing (prices, durations, URLs, addresses,
//! secrets) stay strings here, so that `compile` can check all of them and
//! report every problem at once. Unknown keys are collected by
//! `serde_ignored` and reported as errors too.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawConfig {
    /// Gateway-wide settings.
    #[serde(default)]
    pub(crate) server: RawServer,
    /// Where the gateway listens for callers.
    #[serde(default)]
    pub(crate) listeners: Vec<RawListener>,
    /// The admin listener (metrics, admin API).
    #[serde(default)]
    pub(crate) admin: RawAdmin,
    /// Size limits and timeouts.
    #[serde(default)]
    pub(crate) limits: RawLimits,
    /// The store of accounts, keys and the ledger.
    #[serde(default)]
    pub(crate) store: RawStore,
    /// The credits rail.
    #[serde(default)]
    pub(crate) credits: RawCredits,
    /// Subscription plans on sale.
    #[serde(default)]
    pub(crate) plans: Vec<RawPlan>,
    /// Subscriptions, the card processor's webhooks, notifications.
    #[serde(default)]
    pub(crate) billing: RawBilling,
    /// The x402 rail: how payments settle, facilitator mode.
    #[serde(default)]
    pub(crate) x402: RawX402,
    /// The LLM gateway: providers, models, limits.
    #[serde(default)]
    pub(crate) llm: RawLlm,
    /// API keys allowed on `access = "api_key"` routes.
    #[serde(default)]
    pub(crate) api_keys: Vec<RawApiKey>,
    /// The routes, matched most specific first.
    #[serde(default)]
    pub(crate) routes: Vec<RawRoute>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawServer {
    /// The URL callers reach the gateway at, used for problem `type` URIs;
    /// when unset, it is derived from each request's scheme and Host.
    pub(crate) public_url: Option<String>,
    /// PEM file of extra root certificates for HTTPS upstreams.
    pub(crate) upstream_ca_file: Option<String>,
    /// Whether to trust the system's roots for HTTPS upstreams (default true).
    pub(crate) upstream_system_roots: Option<bool>,
}

/// `[[listeners]]`
#[derive(Debug, Deserialize)]
pub(crate) struct RawListener {
    /// `ip:port` to bind.
    pub(crate) address: String,
    /// Terminate TLS here.
    pub(crate) tls: Option<RawTls>,
}

/// `tls = { cert = "…", key = "…" }`
#[derive(Debug, Deserialize)]
pub(crate) struct RawTls {
    /// PEM certificate chain.
    pub(crate) cert: String,
    /// PEM private key.
    pub(crate) key: String,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawStore {
    /// `sqlite://PATH` (default `sqlite://faregate-data/faregate.db`) or
    /// `postgres://…`; `$ENV_VAR` reads the environment.
    pub(crate) url: Option<String>,
    /// How often per-request debits are written, such as `"10ms"`.
    pub(crate) flush_interval: Option<String>,
}

/// `[credits]`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawCredits {
    /// Where customers top up, in `insufficient_credits` answers;
    /// `{account}` is replaced by the account id.
    pub(crate) top_up_url: Option<String>,
    /// `GET` (default: a page) or `POST` (an API).
    pub(crate) top_up_method: Option<String>,
}

/// `[[plans]]`
#[derive(Debug, Deserialize)]
pub(crate) struct RawPlan {
    /// Stable id, used in APIs and `upgrade_plan` actions.
    pub(crate) id: String,
    /// Name for people (default: the id).
    pub(crate) name: Option<String>,
    /// Price of one period, such as `"29.00 USD"`.
    pub(crate) price: String,
    /// `month` (default) or `year`.
    pub(crate) interval: Option<String>,
    /// Free trial length, such as `"14d"`.
    pub(crate) trial: Option<String>,
    /// How long service lasts after a failed payment (default `"3d"`).
    pub(crate) grace: Option<String>,
    /// The routes the plan includes.
    pub(crate) routes: Vec<String>,
    /// Included units per period, by route group.
    #[serde(default)]
    pub(crate) quotas: Vec<RawQuota>,
    /// Price of one unit past a quota, charged from credits; without it
    /// the quota is a hard stop.
    pub(crate) overage_unit_price: Option<String>,
}

/// `[[plans.quotas]]`
#[derive(Debug, Deserialize)]
pub(crate) struct RawQuota {
    /// The group's name.
    pub(crate) group: String,
    /// The routes drawing from it.
    pub(crate) routes: Vec<String>,
    /// Units included per period.
    pub(crate) included: u64,
}

/// `[billing]`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawBilling {
    /// Stripe webhook signing secrets (`whsec_…`, or `$ENV_VAR`); several
    /// during a rotation. Without one, `/webhooks/stripe` is off.
    #[serde(default)]
    pub(crate) stripe_webhook_secrets: Vec<String>,
    /// How old a webhook signature may be (default `"300s"`).
    pub(crate) webhook_tolerance: Option<String>,
    /// Where customers add a payment method (the processor's portal).
    pub(crate) payment_method_url: Option<String>,
    /// Spendable balances that trigger a `balance.low` notification.
    #[serde(default)]
    pub(crate) low_balance: Vec<String>,
    /// How long before a trial ends to notify (default `"3d"`).
    pub(crate) trial_ending_notice: Option<String>,
}

/// `[admin]`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawAdmin {
    /// `ip:port` of the admin listener (default 127.0.0.1:8403).
    pub(crate) address: Option<String>,
    /// Bearer token for the admin API; `$ENV_VAR` reads the environment.
    pub(crate) token: Option<String>,
}

/// `[limits]`, also usable per route.
#[derive(Debug, Default, Deserialize, Clone)]
pub(crate) struct RawLimits {
    /// Largest request body in bytes.
    pub(crate) max_body_bytes: Option<u64>,
    /// Largest total size of request headers in bytes.
    pub(crate) max_header_bytes: Option<u64>,
    /// Longest request target in bytes.
    pub(crate) max_uri_bytes: Option<u64>,
    /// Time a client has to send its request head.
    pub(crate) header_read_timeout: Option<String>,
    /// Longest pause while a client sends its body.
    pub(crate) body_idle_timeout: Option<String>,
    /// Time to connect to an upstream.
    pub(crate) connect_timeout: Option<String>,
    /// Time from sending the request to the upstream's response head.
    pub(crate) first_byte_timeout: Option<String>,
    /// Longest pause within the upstream's response body.
    pub(crate) idle_timeout: Option<String>,
    /// How long shutdown waits for requests in flight.
    pub(crate) drain_timeout: Option<String>,
    /// How long idle upstream connections are kept in the pool.
    pub(crate) pool_idle_timeout: Option<String>,
}

/// `[[api_keys]]`
#[derive(Debug, Deserialize)]
pub(crate) struct RawApiKey {
    /// A name for logs (never the key itself).
    pub(crate) id: String,
    /// The key; write `$ENV_VAR` to keep it out of the file.
    pub(crate) key: Option<String>,
    /// Or its SHA-256 in hex, so the file holds no secret at all.
    pub(crate) key_sha256: Option<String>,
    /// Routes this key may use; all when absent.
    pub(crate) routes: Option<Vec<String>>,
    /// LLM models this key may use; all when absent.
    pub(crate) models: Option<Vec<String>>,
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
pub(crate) struct RawRoute {
    /// Unique name, used in logs, metrics and key scopes.
    pub(crate) name: String,
    /// Host to match: exact, or `*.example.com`; any when absent.
    pub(crate) host: Option<String>,
    /// Path to match: exact (`/a/b`) or a prefix ending in `/*`.
    pub(crate) path: String,
    /// Methods to match; any when absent.
    pub(crate) methods: Option<Vec<String>>,
    /// Upstream base URLs.
    #[serde(default)]
    pub(crate) upstreams: Vec<String>,
    /// `round_robin` (default) or `failover`.
    pub(crate) balance: Option<String>,
    /// Prefix removed from the path before forwarding.
    pub(crate) strip_prefix: Option<String>,
    /// Send the caller's Host upstream instead of the upstream's.
    pub(crate) preserve_host: Option<bool>,
    /// `"free"` or an amount such as `"0.001 USD"`.
    pub(crate) price: Option<String>,
    /// `"anyone"`, `"api_key"`, or a list of rails.
    pub(crate) access: Option<RawAccess>,
    /// What is charged: `"2xx"` (default), `"non_5xx"` or `"always"`.
    pub(crate) charge: Option<String>,
    /// Per-route rate limit.
    pub(crate) rate_limit: Option<RawRateLimit>,
    /// Per-route overrides of `[limits]`.
    pub(crate) limits: Option<RawLimits>,
    /// Extra headers sent upstream (values may be `$ENV_VAR`).
    #[serde(default)]
    pub(crate) upstream_headers: BTreeMap<String, String>,
    /// What x402 payments the route takes (with `"x402"` in `access`).
    pub(crate) x402: Option<RawRouteX402>,
    /// `"proxy"` (default) or `"llm"`: the OpenAI and Anthropic endpoints
    /// of `[llm]`, billed by tokens.
    pub(crate) kind: Option<String>,
    /// A prompt template served as this route's endpoint.
    pub(crate) prompt: Option<RawPrompt>,
}

/// `[llm]`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawLlm {
    /// Providers by name.
    #[serde(default)]
    pub(crate) providers: BTreeMap<String, RawProvider>,
    /// The model catalog.
    #[serde(default)]
    pub(crate) models: Vec<RawModel>,
    /// Default limits of keys and accounts.
    #[serde(default)]
    pub(crate) limits: RawLlmLimits,
}

/// `[llm.providers.NAME]`
#[derive(Debug, Deserialize)]
pub(crate) struct RawProvider {
    /// `"openai"` (any OpenAI-compatible API) or `"anthropic"`.
    pub(crate) kind: String,
    /// Base URL, such as `https://api.openai.com/v1`.
    pub(crate) base_url: String,
    /// Its API key; write `$ENV_VAR`.
    pub(crate) api_key: Option<String>,
}

/// `[[llm.models]]`
#[derive(Debug, Deserialize)]
pub(crate) struct RawModel {
    /// The name callers use.
    pub(crate) name: String,
    /// Other names for it.
    #[serde(default)]
    pub(crate) aliases: Vec<String>,
    /// The currency of its prices (default `USD`).
    pub(crate) currency: Option<String>,
    /// Per million input tokens.
    pub(crate) input: String,
    /// Per million cached input tokens (default: `input`).
    pub(crate) cached_input: Option<String>,
    /// Per million output tokens.
    pub(crate) output: String,
    /// The most output tokens it gives (default 4096).
    pub(crate) max_output_tokens: Option<u64>,
    /// Where it is served, tried in order.
    pub(crate) providers: Vec<RawModelTarget>,
}

/// `{ provider = "openai", model = "gpt-4o-mini" }`
#[derive(Debug, Deserialize)]
pub(crate) struct RawModelTarget {
    /// The provider's name.
    pub(crate) provider: String,
    /// The provider's name for the model (default: the public name).
    pub(crate) model: Option<String>,
}

/// `[llm.limits]`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawLlmLimits {
    /// Every key's spending budget, `"5.00 USD/day"`.
    pub(crate) key_budget: Option<String>,
    /// Every account's spending budget, `"100 USD/month"`.
    pub(crate) account_budget: Option<String>,
    /// Tokens per minute per key.
    pub(crate) tpm: Option<u64>,
    /// Requests per minute per key.
    pub(crate) rpm: Option<u64>,
}

/// `prompt = { model = "…", template = "…" }`
#[derive(Debug, Deserialize)]
pub(crate) struct RawPrompt {
    /// The model called.
    pub(crate) model: String,
    /// The user message; `{{name}}` is replaced by the caller's `name`.
    pub(crate) template: String,
    /// A system message.
    pub(crate) system: Option<String>,
    /// The cap on the answer's tokens (default 256).
    pub(crate) max_tokens: Option<u64>,
    /// `"json"` (default: the answer parsed as JSON) or `"text"`.
    pub(crate) output: Option<String>,
}

/// `[x402]`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawX402 {
    /// `"facilitator"` (default) or `"chain"`.
    pub(crate) settlement: Option<String>,
    /// The facilitator's base URL (`/verify`, `/settle`, `/supported`).
    pub(crate) facilitator_url: Option<String>,
    /// The EVM JSON-RPC for `settlement = "chain"` and `check_chain`.
    pub(crate) rpc_url: Option<String>,
    /// The key paying gas for `settlement = "chain"` (write `$ENV_VAR`).
    pub(crate) signer_key: Option<String>,
    /// Blocks that must include the transfer, its own counted (default 1:
    /// mined).
    pub(crate) confirmations: Option<u64>,
    /// A fixed gas limit for each transfer of `settlement = "chain"`,
    /// instead of estimating each one (default: estimate).
    pub(crate) gas_limit: Option<u64>,
    /// The longest a settlement may take (default `"30s"`).
    pub(crate) settle_timeout: Option<String>,
    /// Ask the chain for the nonce's state and the payer's balance before
    /// forwarding (needs `rpc_url`).
    pub(crate) check_chain: Option<bool>,
    /// HMAC key of bundle access tokens (write `$ENV_VAR`); the same on
    /// every node. Random per process when unset.
    pub(crate) token_secret: Option<String>,
    /// Serve `/x402/verify`, `/x402/settle` and `/x402/supported` for other
    /// x402 servers (needs `settlement = "chain"`).
    pub(crate) facilitator: Option<bool>,
}

/// `[routes.x402]`
#[derive(Debug, Deserialize)]
pub(crate) struct RawRouteX402 {
    /// The tokens it takes.
    #[serde(default)]
    pub(crate) offers: Vec<RawX402Offer>,
    /// `"after"` a successful answer (default) or `"before"` forwarding.
    pub(crate) settle: Option<String>,
    /// `resource.description`.
    pub(crate) description: Option<String>,
    /// `resource.mimeType`.
    pub(crate) mime_type: Option<String>,
    /// A bundle sold for one payment: `{ calls = 10 }`, `{ duration = "1h" }`
    /// or both.
    pub(crate) bundle: Option<RawBundle>,
    /// `bazaar` discovery metadata: input and output examples.
    pub(crate) bazaar: Option<toml::Value>,
}

/// `[[routes.x402.offers]]`
#[derive(Debug, Deserialize)]
pub(crate) struct RawX402Offer {
    /// CAIP-2 network, `eip155:<chain id>`.
    pub(crate) network: String,
    /// The token contract address.
    pub(crate) asset: String,
    /// The token's EIP-712 domain name.
    pub(crate) name: String,
    /// The token's EIP-712 domain version.
    pub(crate) version: String,
    /// The token's decimals (default 6).
    pub(crate) decimals: Option<u8>,
    /// Who is paid.
    pub(crate) pay_to: String,
    /// How long an authorization may be good for (default 60).
    pub(crate) max_timeout_seconds: Option<u64>,
}

/// `bundle = { calls = 10, duration = "1h" }`
#[derive(Debug, Deserialize)]
pub(crate) struct RawBundle {
    /// Calls one payment buys, the paying one included.
    pub(crate) calls: Option<u64>,
    /// How long the access token lasts (default `"1h"`).
    pub(crate) duration: Option<String>,
}

/// `access = "anyone" | "api_key" | ["credits", "x402", …]`
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawAccess {
    /// A word.
    Word(String),
    /// A rail list.
    Rails(Vec<String>),
}

/// `rate_limit = { per = "key", requests = 100, period = "1m", burst = 10 }`
#[derive(Debug, Deserialize)]
pub(crate) struct RawRateLimit {
    /// `key` (the API key, else the client IP) or `ip`.
    pub(crate) per: Option<String>,
    /// Requests allowed per period.
    pub(crate) requests: u32,
    /// The period, such as `"1s"` or `"1m"`.
    pub(crate) period: String,
    /// Requests that may arrive at once (default: `requests`).
    pub(crate) burst: Option<u32>,
}
