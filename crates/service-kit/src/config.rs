//! Server settings shared by every service, read from flags or the environment.

use std::time::Duration;

/// Limits, timeouts and the healthcheck switch; services flatten this into
/// their own `clap::Parser` next to their `--port` (whose default differs).
#[derive(Clone, Debug, clap::Args)]
pub struct ServerArgs {
    /// Largest accepted request body in bytes; bigger bodies get 413
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Per-request timeout in milliseconds; slower requests get 503 `timeout`
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// On SIGTERM/Ctrl-C, how long in-flight requests may take to finish (seconds)
    #[arg(long, env = "SHUTDOWN_DRAIN_SECS", default_value_t = 20)]
    pub shutdown_drain_secs: u64,

    /// Largest accepted image side in pixels, checked from the header before decoding
    #[arg(long, env = "MAX_IMAGE_SIDE", default_value_t = 8192)]
    pub max_image_side: u32,

    /// Largest accepted image area in pixels, checked before decoding
    #[arg(long, env = "MAX_IMAGE_PIXELS", default_value_t = 40_000_000)]
    pub max_image_pixels: u64,

    /// Do not serve: GET http://127.0.0.1:$PORT/api/health (2 s timeout), exit 0 on 200, 1 otherwise
    #[arg(long)]
    pub healthcheck: bool,
}

impl ServerArgs {
    /// The HTTP limits these settings describe.
    pub fn limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
        }
    }

    /// The image limits these settings describe.
    pub fn image_limits(&self) -> crate::imaging::ImageLimits {
        crate::imaging::ImageLimits {
            max_side: self.max_image_side,
            max_pixels: self.max_image_pixels,
        }
    }

    /// The drain timeout.
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.shutdown_drain_secs)
    }
}
