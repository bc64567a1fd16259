//! The routes and layers every service shares.

use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::auth::ServiceToken;
use crate::error::{AppError, ErrorCode};
use crate::metrics::Metrics;
use crate::ready::Readiness;
use crate::shutdown::Lifecycle;

/// Body and time limits applied to every request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Time budget of one request (503 `timeout` above).
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What [`wrap`] applies: limits, the service token, the lifecycle.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Body and time limits.
    pub limits: Limits,
    /// When set, every route but `/api/health` and `/api/ready` needs it.
    pub token: Option<ServiceToken>,
    /// When stopping, `/api/ready` answers 503.
    pub lifecycle: Lifecycle,
}

impl From<Limits> for Options {
    fn from(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }
}

#[derive(Clone)]
struct Common {
    metrics: Metrics,
    readiness: Readiness,
    timeout: Duration,
    lifecycle: Lifecycle,
}

/// Adds `/api/health`, `/api/ready`, `/metrics`, the service-token check,
/// the body limit, the per-request timeout and request metrics around a
/// service's `routes`.
pub fn wrap(
    routes: Router,
    options: impl Into<Options>,
    metrics: Metrics,
    readiness: Readiness,
) -> Router {
    let options = options.into();
    let limits = options.limits;
    let common = Common {
        metrics,
        readiness,
        timeout: limits.request_timeout,
        lifecycle: options.lifecycle,
    };
    let shared = Router::new()
        .route("/api/health", get(health))
        .route("/api/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(common.clone());
    let mut router = routes
        .merge(shared)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    if let Some(token) = options.token {
        router = router.layer(middleware::from_fn_with_state(token, crate::auth::require));
    }
    router.layer(middleware::from_fn_with_state(common, observe))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn ready(State(common): State<Common>) -> Response {
    if common.lifecycle.stopping() {
        let body = serde_json::json!({"status": "stopping", "checks": {}});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let (status, body) = common.readiness.evaluate().await;
    (status, Json(body)).into_response()
}

async fn render_metrics(State(common): State<Common>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        common.metrics.render(),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> AppError {
    AppError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {}", uri.path()),
    )
}

/// Times out, counts and times each request.
async fn observe(State(common): State<Common>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = match tokio::time::timeout(common.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "request took longer than {} ms; retry later",
                common.timeout.as_millis()
            ),
        )
        .into_response(),
    };
    let elapsed = started.elapsed();
    let status = response.status();
    common
        .metrics
        .record_request(&route, status.as_u16(), elapsed);
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        common.metrics.record_error(code);
    }
    if route != "/api/health" && route != "/metrics" {
        tracing::info!(%method, route, status = status.as_u16(), elapsed_ms = elapsed.as_secs_f64() * 1e3, "request");
    }
    response
}

/// A malformed query string as the services' JSON 400 (`invalid_query`),
/// instead of axum's plain-text rejection.
pub fn query_error(e: axum::extract::rejection::QueryRejection) -> AppError {
    AppError::bad_request(
        "invalid_query",
        format!("{}; fix the query string", e.body_text()),
    )
}
