//! Structured JSON logs.

use tracing_subscriber::EnvFilter;

/// Installs a JSON subscriber on stdout, filtered by `RUST_LOG` (default `info`).
///
/// Safe to call more than once (tests do): later calls are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .try_init();
}
