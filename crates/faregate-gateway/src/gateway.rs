//! The running gateway: the current config snapshot (swapped whole on
//! reload), the upstream client, rails, limiter, metrics and access log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use faregate_core::{Clock, RailKind, SystemClock};
use faregate_rails::{KeyDirectory, Rail};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::access_log::AccessLog;
use crate::body::RequestBody;
use crate::config::Config;
use crate::limiter::Limiter;
use crate::metrics::{Metrics, RouteMetrics, UNROUTED};
use crate::pool::Http1Pool;

/// The HTTP(S) client that talks to upstreams, with pooled connections.
pub(crate) type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, RequestBody>;

/// Per-route state that lives as long as one config snapshot.
#[derive(Debug)]
pub(crate) struct RouteState {
    pub(crate) metrics: Arc<RouteMetrics>,
    /// Round-robin position.
    pub(crate) next: AtomicUsize,
    /// Per upstream: until when (unix nanos) it is considered down.
    pub(crate) down_until: Box<[AtomicU64]>,
    /// Per upstream: its idle connections on the HTTP/1 data plane
    /// (`http://` upstreams only).
    pub(crate) slots: Box<[Option<Arc<crate::h1::Slot>>]>,
}

/// One immutable generation of configuration and what was built from it.
#[derive(Debug)]
pub struct Snapshot {
    /// The compiled config.
    pub config: Config,
    /// For `https://` upstreams.
    pub(crate) client: UpstreamClient,
    /// For `http://` upstreams of requests hyper serves.
    pub(crate) pool: Arc<Http1Pool>,
    /// For `http://` upstreams of requests the HTTP/1 data plane serves.
    pub(crate) raw: Arc<crate::h1::Pool>,
    pub(crate) routes: Vec<RouteState>,
    pub(crate) unrouted: Arc<RouteMetrics>,
}

/// The gateway.
#[derive(Debug)]
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    pub(crate) rails: Vec<Arc<dyn Rail>>,
    /// Keys beyond the config file's (accounts' keys, in memory).
    pub(crate) keys: Option<Arc<dyn KeyDirectory>>,
    pub(crate) limiter: Limiter,
    /// LLM callers' budgets and token limits.
    pub(crate) llm_limits: Arc<crate::llm::LlmLimiter>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) access_log: AccessLog,
    pub(crate) clock: Arc<dyn Clock>,
    /// Subscriptions, for the billing endpoints and webhooks.
    pub(crate) plans: Option<Arc<faregate_rails::plans::Plans>>,
    /// The x402 rail, for the facilitator endpoints.
    pub(crate) x402: Option<Arc<faregate_rails::x402::X402>>,
}

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The upstream TLS trust could not be loaded.
    #[error("upstream TLS: {0}")]
    UpstreamTls(String),
    /// The new config changes listeners, which needs a restart.
    #[error("listeners changed ({0}); restart faregate to apply that")]
    ListenersChanged(String),
}

/// Builds a [`Gateway`].
#[derive(Debug)]
pub struct GatewayBuilder {
    config: Config,
    rails: Vec<Arc<dyn Rail>>,
    keys: Option<Arc<dyn KeyDirectory>>,
    metrics: Arc<Metrics>,
    access_log: Option<AccessLog>,
    clock: Arc<dyn Clock>,
    plans: Option<Arc<faregate_rails::plans::Plans>>,
    x402: Option<Arc<faregate_rails::x402::X402>>,
}

impl GatewayBuilder {
    /// Adds a payment rail.
    #[must_use]
    pub fn rail(mut self, rail: Arc<dyn Rail>) -> Self {
        self.rails.push(rail);
        self
    }

    /// Adds the plans rail, which also serves `/billing/` and the card
    /// processor's webhook.
    #[must_use]
    pub fn plans(mut self, plans: Arc<faregate_rails::plans::Plans>) -> Self {
        self.rails.push(plans.clone());
        self.plans = Some(plans);
        self
    }

    /// Adds the x402 rail, which also serves the facilitator endpoints
    /// when the config asks for them.
    #[must_use]
    pub fn x402(mut self, x402: Arc<faregate_rails::x402::X402>) -> Self {
        self.rails.push(x402.clone());
        self.x402 = Some(x402);
        self
    }

    /// Sets where accounts' API keys are looked up.
    #[must_use]
    pub fn keys(mut self, keys: Arc<dyn KeyDirectory>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Sets the metrics registry (shared with the admin listener).
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets the access log (off by default).
    #[must_use]
    pub fn access_log(mut self, log: AccessLog) -> Self {
        self.access_log = Some(log);
        self
    }

    /// Replaces the wall clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the gateway.
    pub fn build(self) -> Result<Arc<Gateway>, BuildError> {
        let snapshot = Snapshot::build(self.config, &self.metrics, None)?;
        let access_log = self
            .access_log
            .unwrap_or_else(|| AccessLog::off(self.metrics.clone()));
        Ok(Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            rails: self.rails,
            keys: self.keys,
            limiter: Limiter::default(),
            llm_limits: Arc::default(),
            metrics: self.metrics,
            access_log,
            clock: self.clock,
            plans: self.plans,
            x402: self.x402,
        }))
    }
}

impl Gateway {
    /// A builder for a gateway running `config`.
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder {
            config,
            rails: Vec::new(),
            keys: None,
            metrics: Arc::default(),
            access_log: None,
            clock: Arc::new(SystemClock),
            plans: None,
            x402: None,
        }
    }

    /// The rails' own counters (x402 settlements), in Prometheus text.
    pub fn render_rail_metrics(&self) -> String {
        self.x402
            .as_ref()
            .map(|x| x.render_metrics())
            .unwrap_or_default()
    }

    /// The rails this gateway was built with, for config validation.
    pub fn rail_kinds(&self) -> Vec<RailKind> {
        self.rails.iter().map(|r| r.kind()).collect()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Swaps in `config`. Requests in flight finish on the snapshot they
    /// started with; new requests see the new one.
    pub fn reload(&self, config: Config) -> Result<(), BuildError> {
        let current = self.snapshot();
        let old: Vec<_> = current
            .config
            .listeners
            .iter()
            .map(|l| (l.address, l.tls.is_some()))
            .collect();
        let new: Vec<_> = config
            .listeners
            .iter()
            .map(|l| (l.address, l.tls.is_some()))
            .collect();
        if old != new || current.config.admin.address != config.admin.address {
            self.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
            return Err(BuildError::ListenersChanged(format!("{old:?} -> {new:?}")));
        }
        match Snapshot::build(config, &self.metrics, Some(&current)) {
            Ok(s) => {
                self.snapshot.store(Arc::new(s));
                self.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

impl Snapshot {
    /// Builds a snapshot; the upstream client (and its pool of warm
    /// connections) of `previous` is kept when nothing it depends on changed.
    fn build(
        config: Config,
        metrics: &Metrics,
        previous: Option<&Snapshot>,
    ) -> Result<Self, BuildError> {
        let client = match previous {
            Some(p) if same_client(&p.config, &config) => p.client.clone(),
            _ => Self::client(&config)?,
        };
        let pool = match previous {
            Some(p)
                if p.config.limits.connect_timeout == config.limits.connect_timeout
                    && p.config.limits.pool_idle_timeout == config.limits.pool_idle_timeout =>
            {
                p.pool.clone()
            }
            _ => Http1Pool::new(
                config.limits.pool_idle_timeout,
                config.limits.connect_timeout,
            ),
        };
        let (idle, connect) = (
            config.limits.pool_idle_timeout,
            config.limits.connect_timeout,
        );
        let raw = match previous {
            Some(p) if p.raw.made_with(idle, connect) => p.raw.clone(),
            _ => crate::h1::Pool::new(idle, connect),
        };
        let routes = config
            .routes
            .routes()
            .iter()
            .map(|r| RouteState {
                metrics: metrics.route(&r.name),
                next: AtomicUsize::new(0),
                down_until: r.upstreams.iter().map(|_| AtomicU64::new(0)).collect(),
                slots: r
                    .upstreams
                    .iter()
                    .map(|u| (u.scheme == http::uri::Scheme::HTTP).then(|| raw.slot(&u.authority)))
                    .collect(),
            })
            .collect();
        Ok(Self {
            config,
            client,
            pool,
            raw,
            routes,
            unrouted: metrics.route(UNROUTED),
        })
    }

    fn client(config: &Config) -> Result<UpstreamClient, BuildError> {
        let tls =
            crate::tls::client_config(&config.upstream_tls).map_err(BuildError::UpstreamTls)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.limits.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.limits.pool_idle_timeout)
            .pool_max_idle_per_host(1024)
            .build(connector);
        Ok(client)
    }
}

/// Whether two configs build the same upstream client.
fn same_client(a: &Config, b: &Config) -> bool {
    a.upstream_tls == b.upstream_tls
        && a.limits.connect_timeout == b.limits.connect_timeout
        && a.limits.pool_idle_timeout == b.limits.pool_idle_timeout
        // A configured CA file is re-read on every reload (roots rotate).
        && a.upstream_tls.ca_file.is_none()
}
