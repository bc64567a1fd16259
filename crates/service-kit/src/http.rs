//! The routes and layers every service shares.

use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::error::{AppError, ErrorCode};
use crate::metrics::Metrics;
use crate::ready::Readiness;

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

#[derive(Clone)]
struct Common {
    metrics: Metrics,
    readiness: Readiness,
    timeout: Duration,
}

/// Adds `/api/health`, `/api/ready`, `/metrics`, the body limit, the
/// per-request timeout and request metrics around a service's `routes`.
pub fn wrap(routes: Router, limits: Limits, metrics: Metrics, readiness: Readiness) -> Router {
    let common = Common {
        metrics,
        readiness,
        timeout: limits.request_timeout,
    };
    let shared = Router::new()
        .route("/api/health", get(health))
        .route("/api/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(common.clone());
    routes
        .merge(shared)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(common, observe))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn ready(State(common): State<Common>) -> Response {
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
