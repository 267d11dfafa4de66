//! The admin listener (loopback by default): Prometheus `/metrics`,
//! `/healthz`, the OpenAPI document at `/openapi.json`, and the admin API
//! under `/v1` (config reload, accounts, API keys, credits, the ledger,
//! per-request usage, webhook endpoints and the notification outbox) behind
//! a bearer token that is compared in constant time.
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
    /// What `created_at`, `revoked_at` and expiry checks read.
    clock: Arc<dyn Clock>,
}

impl AdminState {
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> i64 {
        i64::try_from(self.clock.now() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// The admin router.
pub fn router(gw: Arc<Gateway>, reload: Option<Reloader>, credits: Option<Arc<Credits>>) -> Router {
    router_with_outbox(gw, reload, credits, None)
}

/// The admin router, with the notification sender's metrics on `/metrics`.
pub fn router_with_outbox(
    gw: Arc<Gateway>,
    reload: Option<Reloader>,
    credits: Option<Arc<Credits>>,
    outbox: Option<Arc<Outbox>>,
) -> Router {
    let state = AdminState {
        gw,
        reload,
        credits,
        outbox,
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

async fn metrics(State(s): State<AdminState>) -> Response {
    let mut text = s.gw.metrics().render();
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
