//! Readiness: which dependencies a service can use right now.
//!
//! `GET /api/ready` answers 200 `ready` when every check passes, 200
//! `degraded` when only optional ones fail (e.g. Redis: scoring still
//! answers, uncached), and 503 `unavailable` when a required one fails
//! (model not loaded, an ML service unreachable).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::StatusCode;
use serde::Serialize;

/// The result of checking one dependency.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Name shown in the body, e.g. `model`, `redis`.
    pub name: &'static str,
    /// Whether it is usable.
    pub ok: bool,
    /// Whether the service is unusable without it.
    pub required: bool,
    /// What was found, e.g. the error.
    pub detail: String,
}

impl Check {
    /// A check outcome.
    pub fn new(name: &'static str, required: bool, result: Result<String, String>) -> Self {
        match result {
            Ok(detail) => Self {
                name,
                ok: true,
                required,
                detail,
            },
            Err(detail) => Self {
                name,
                ok: false,
                required,
                detail,
            },
        }
    }
}

type CheckFuture = Pin<Box<dyn Future<Output = Vec<Check>> + Send>>;

/// The service's set of checks, run on every `GET /api/ready`.
#[derive(Clone)]
pub struct Readiness(Arc<dyn Fn() -> CheckFuture + Send + Sync>);

impl Readiness {
    /// Readiness from an async function returning the checks.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Check>> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(f())))
    }

    /// Always ready, with no checks.
    pub fn always() -> Self {
        Self::new(|| async { Vec::new() })
    }

    /// Runs the checks: the HTTP status and the JSON body.
    pub async fn evaluate(&self) -> (StatusCode, serde_json::Value) {
        let checks = (self.0)().await;
        let required_down = checks.iter().any(|c| c.required && !c.ok);
        let any_down = checks.iter().any(|c| !c.ok);
        let (status, word) = match (required_down, any_down) {
            (true, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            (false, true) => (StatusCode::OK, "degraded"),
            (false, false) => (StatusCode::OK, "ready"),
        };
        let body = serde_json::json!({
            "status": word,
            "checks": checks.iter().map(|c| (c.name, c)).collect::<std::collections::BTreeMap<_, _>>(),
        });
        (status, body)
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readiness")
    }
}
