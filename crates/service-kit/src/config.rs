//! Server settings shared by every service, read from flags or the environment.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::ServiceToken;
use crate::error::Result;
use crate::gate::Gate;
use crate::shutdown::{Lifecycle, ServeOptions};

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

    /// A connection must send a request's headers within this many milliseconds
    /// of opening or of its previous response (idle keep-alive connections are
    /// closed after it too)
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// On SIGTERM/Ctrl-C, how long in-flight requests may take to finish (seconds)
    #[arg(long, env = "SHUTDOWN_DRAIN_SECS", default_value_t = 20)]
    pub shutdown_drain_secs: u64,

    /// On SIGTERM/Ctrl-C, how long to keep accepting and serving (with
    /// /api/ready answering 503) before closing the listener, in seconds
    #[arg(long, env = "SHUTDOWN_DELAY_SECS", default_value_t = 0)]
    pub shutdown_delay_secs: u64,

    /// Largest accepted image side in pixels, checked from the header before decoding
    #[arg(long, env = "MAX_IMAGE_SIDE", default_value_t = 8192)]
    pub max_image_side: u32,

    /// Largest accepted image area in pixels, checked before decoding
    #[arg(long, env = "MAX_IMAGE_PIXELS", default_value_t = 40_000_000)]
    pub max_image_pixels: u64,

    /// Most bytes decoding one image may allocate (bit depth and channels
    /// counted, plus the RGB8 copy), checked from the header before decoding
    #[arg(long, env = "MAX_DECODED_BYTES", default_value_t = crate::imaging::DEFAULT_MAX_DECODED_BYTES)]
    pub max_decoded_bytes: u64,

    /// Requests decoding or running a model at once [default: the CPUs this
    /// process may use, from its cgroup quota]
    #[arg(long, env = "MAX_CONCURRENT_DECODES")]
    pub max_concurrent_decodes: Option<usize>,

    /// Requests waiting for a decode slot; beyond, 503 `overloaded` with Retry-After
    #[arg(long, env = "MAX_QUEUED_DECODES", default_value_t = 16)]
    pub max_queued_decodes: usize,

    /// File holding the shared service token; when set, every route but
    /// /api/health and /api/ready needs `Authorization: Bearer <token>`
    #[arg(long, env = "SERVICE_TOKEN_FILE")]
    pub service_token_file: Option<PathBuf>,

    /// Do not serve: GET http://127.0.0.1:$PORT/api/health (2 s timeout), exit 0 on 200, 1 otherwise
    #[arg(long)]
    pub healthcheck: bool,
}

/// How the ML services size their ONNX Runtime sessions; flattened into
/// their `clap::Parser` beside [`ServerArgs`].
#[derive(Clone, Debug, Default, clap::Args)]
pub struct OrtArgs {
    /// ONNX Runtime intra-op threads per session [default: the CPUs this
    /// process may use, from its cgroup quota]
    #[arg(long, env = "ORT_INTRA_THREADS")]
    pub intra_threads: Option<usize>,
    /// Model sessions, i.e. requests running the model at once [default: the
    /// CPUs this process may use, at most 4]
    #[arg(long, env = "ORT_SESSIONS")]
    pub sessions: Option<usize>,
}

impl OrtArgs {
    /// Sessions and intra-op threads: the flags, else sized for the CPU limit.
    pub fn threads(&self) -> crate::cpu::Threads {
        crate::cpu::Threads::for_cpus(cpus(), self.sessions, self.intra_threads)
    }
}

/// The CPUs this process may use: the cgroup CPU quota (v2 `cpu.max`, v1
/// CFS quota), rounded up, capped by `available_parallelism`
/// ([`crate::cpu`]); a container limited to 2 CPUs on a 64-core host gets 2.
pub fn cpus() -> usize {
    crate::cpu::cpus()
}

/// Everything [`ServerArgs`] describes, with the token file read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// HTTP layer: limits, token, lifecycle.
    pub http: crate::http::Options,
    /// Image limits.
    pub image: crate::imaging::ImageLimits,
    /// The decode/inference gate.
    pub gate: Gate,
    /// Shutdown delay, drain and connection timeouts.
    pub serve: ServeOptions,
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
            max_decoded_bytes: self.max_decoded_bytes,
        }
    }

    /// The drain timeout.
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.shutdown_drain_secs)
    }

    /// All settings; reads `SERVICE_TOKEN_FILE` and warns once when it is unset.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Config`] when the token file is unreadable or empty.
    pub fn settings(&self) -> Result<Settings> {
        let token = match &self.service_token_file {
            Some(p) if !p.as_os_str().is_empty() => Some(ServiceToken::from_file(p)?),
            _ => {
                tracing::warn!("SERVICE_TOKEN_FILE is unset: every route is open to any caller that can reach this port");
                None
            }
        };
        let lifecycle = Lifecycle::new();
        Ok(Settings {
            http: crate::http::Options {
                limits: self.limits(),
                token,
                lifecycle: lifecycle.clone(),
            },
            image: self.image_limits(),
            gate: Gate::new(
                self.max_concurrent_decodes.unwrap_or_else(cpus),
                self.max_queued_decodes,
            ),
            serve: ServeOptions {
                lifecycle,
                delay: Duration::from_secs(self.shutdown_delay_secs),
                drain: self.drain(),
                header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            },
        })
    }
}
