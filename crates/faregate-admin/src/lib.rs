//! The admin listener (loopback by default): Prometheus `/metrics`,
//! `/healthz`, the OpenAPI document at `/openapi.json`, and the admin API
//! under `/v1` (config reload, accounts, API keys, credits, the ledger,
//! per-request usage, webhook endpoints and the notification outbox, plans,
//! subscriptions, invoices and receipts) behind a bearer token that is
//! compared in constant time.
//!
//! Every error it produces is `application/problem+json` with a stable
//! `code`, axum's own rejections (path, query, body, body size, method)
//! included; the codes and their statuses are one table in `problem.rs`.

mod amount;
mod auth;
mod extract;
mod openapi;
mod problem;
mod time;
mod v1;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use faregate_core::{Clock, SystemClock};
use faregate_gateway::Gateway;
use faregate_rails::credits::Credits;
use faregate_rails::outbox::Outbox;
use faregate_rails::plans::Plans;

use crate::problem::{Code, Problem};

/// Reloads the config from wherever it came from; set by the binary.
pub type Reloader = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    gw: Arc<Gateway>,
    reload: Option<Reloader>,
    /// Accounts, keys and credits; `None` when the gateway runs without a
    /// store.
    credits: Option<Arc<Credits>>,
    /// The notification sender, for its metrics; `None` when it does not
    /// run.
    outbox: Option<Arc<Outbox>>,
    /// Plans and subscriptions; `None` when the gateway runs without the
    /// plans rail.
    plans: Option<Arc<Plans>>,
    /// What `created_at`, `revoked_at` and expiry checks read.
    clock: Arc<dyn Clock>,
}

impl AdminState {
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> i64 {
        i64::try_from(self.clock.now() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// An admin router over `gw` to which the rails it serves are added.
pub fn builder(gw: Arc<Gateway>) -> AdminBuilder {
    AdminBuilder {
        gw,
        reload: None,
        credits: None,
        outbox: None,
        plans: None,
    }
}

/// What the admin router serves: each part it is not given answers with a
/// problem that says so.
pub struct AdminBuilder {
    gw: Arc<Gateway>,
    reload: Option<Reloader>,
    credits: Option<Arc<Credits>>,
    outbox: Option<Arc<Outbox>>,
    plans: Option<Arc<Plans>>,
}

impl std::fmt::Debug for AdminBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminBuilder")
            .field("reload", &self.reload.is_some())
            .field("credits", &self.credits.is_some())
            .field("outbox", &self.outbox.is_some())
            .field("plans", &self.plans.is_some())
            .finish_non_exhaustive()
    }
}

impl AdminBuilder {
    /// How `POST /v1/reload` reloads the config.
    pub fn reload(mut self, reload: Reloader) -> Self {
        self.reload = Some(reload);
        self
    }

    /// Accounts, keys, credits and everything else the store keeps.
    pub fn credits(mut self, credits: Arc<Credits>) -> Self {
        self.credits = Some(credits);
        self
    }

    /// The notification sender, for its metrics on `/metrics`.
    pub fn outbox(mut self, outbox: Arc<Outbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// Plans and subscriptions.
    pub fn plans(mut self, plans: Arc<Plans>) -> Self {
        self.plans = Some(plans);
        self
    }

    /// The router.
    pub fn build(self) -> Router {
        let state = AdminState {
            gw: self.gw,
            reload: self.reload,
            credits: self.credits,
            outbox: self.outbox,
            plans: self.plans,
            clock: Arc::new(SystemClock),
        };
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/openapi.json", get(openapi::document))
            .merge(v1::router(state.clone()))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
            .with_state(state)
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let mut text = s.gw.metrics().render();
    text.push_str(&s.gw.render_rail_metrics());
    if let Some(credits) = &s.credits {
        text.push_str(&credits.render_metrics());
    }
    if let Some(outbox) = &s.outbox {
        text.push_str(&outbox.render_metrics());
    }
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

async fn not_found() -> Problem {
    Problem::new(Code::NotFound, "no such admin endpoint")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        Code::MethodNotAllowed,
        "this admin endpoint does not take this method",
    )
}

/// Serves the admin router on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
