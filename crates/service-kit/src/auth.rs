//! Service-to-service authentication: one shared bearer token.
//!
//! `SERVICE_TOKEN_FILE` names a file holding the token (whitespace trimmed).
//! When set, every route but `GET /api/health` and `GET /api/ready` needs
//! `Authorization: Bearer <token>`; a missing or wrong one gets 401
//! `unauthorized` with `WWW-Authenticate: Bearer`. The comparison takes the
//! same time wherever the first difference is, and the token is never
//! logged (its `Debug` is masked and it is registered for redaction).

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header::AUTHORIZATION, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{AppError, Result};

/// The shared token.
#[derive(Clone)]
pub struct ServiceToken(Arc<str>);

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceToken(***)")
    }
}

impl ServiceToken {
    /// Reads the token from `path` (the value of `SERVICE_TOKEN_FILE`).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Config`] when the file is unreadable or empty.
    pub fn from_file(path: &Path) -> Result<Self> {
        crate::secrets::read_file("SERVICE_TOKEN_FILE", path).map(|t| Self(t.into()))
    }

    /// A token from its value (tests, clients).
    pub fn new(token: &str) -> Self {
        crate::secrets::register(token);
        Self(token.into())
    }

    /// The `Authorization` header value for outgoing calls.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `presented` is the token, in time independent of where they
    /// differ (only the length may show).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if presented.len() != expected.len() {
            return false;
        }
        let diff = expected
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

fn open_route(request: &Request) -> bool {
    request.method() == Method::GET && matches!(request.uri().path(), "/api/health" | "/api/ready")
}

/// Middleware: 401 unless the request carries the token (or needs none).
pub async fn require(State(token): State<ServiceToken>, request: Request, next: Next) -> Response {
    if open_route(&request) {
        return next.run(request).await;
    }
    let verdict = request
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.as_bytes())
        .and_then(|v| {
            v.strip_prefix(b"Bearer ")
                .or_else(|| v.strip_prefix(b"bearer "))
        })
        .map(|presented| token.matches(presented));
    match verdict {
        Some(true) => next.run(request).await,
        Some(false) => unauthorized("the bearer token is wrong"),
        None => unauthorized("this route needs Authorization: Bearer <the service token>"),
    }
}

fn unauthorized(message: &str) -> Response {
    AppError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        .with_header("www-authenticate", "Bearer")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::ServiceToken;

    #[test]
    fn compares_whole_token_and_masks_debug() {
        let t = ServiceToken::new("abcdef123456");
        assert!(t.matches(b"abcdef123456"));
        assert!(!t.matches(b"abcdef123457"));
        assert!(!t.matches(b"abcdef12345"));
        assert!(!t.matches(b""));
        assert_eq!(format!("{t:?}"), "ServiceToken(***)");
    }
}
