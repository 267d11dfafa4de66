//! The admin listener (loopback by default): Prometheus `/metrics`,
//! `/healthz`, and the admin API under `/v1`, behind a bearer token that is
//! compared in constant time.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use faregate_gateway::Gateway;
use faregate_rails::credits::Credits;
use subtle::ConstantTimeEq;

/// Reloads the config from wherever it came from; set by the binary.
pub type Reloader = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    gw: Arc<Gateway>,
    reload: Option<Reloader>,
    /// Accounts, keys and credits; `None` when the gateway runs without a
    /// store.
    credits: Option<Arc<Credits>>,
}

/// The admin router.
pub fn router(gw: Arc<Gateway>, reload: Option<Reloader>, credits: Option<Arc<Credits>>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/reload", post(reload_config))
        .fallback(not_found)
        .with_state(AdminState {
            gw,
            reload,
            credits,
        })
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let mut r = s.gw.metrics().render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

async fn reload_config(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&s.gw, &headers) {
        return r;
    }
    match &s.reload {
        None => problem(
            StatusCode::CONFLICT,
            "reload_unavailable",
            "this gateway was not started from a config file",
        ),
        Some(reload) => match reload() {
            Ok(()) => (
                StatusCode::OK,
                axum::Json(serde_json::json!({"reloaded": true})),
            )
                .into_response(),
            Err(e) => problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", &e),
        },
    }
}

async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
}

/// Checks `Authorization: Bearer <admin token>`.
fn authorized(gw: &Gateway, headers: &HeaderMap) -> Result<(), Response> {
    let Some(expected) = gw.snapshot().config.admin.token.clone() else {
        return Err(problem(
            StatusCode::FORBIDDEN,
            "admin_token_unset",
            "set [admin] token to use the admin API",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        let mut r = problem(
            StatusCode::UNAUTHORIZED,
            "invalid_admin_token",
            "send Authorization: Bearer <admin token>",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"faregate-admin\""),
        );
        Err(r)
    }
}

fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("about:blank#{code}"),
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    r
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
