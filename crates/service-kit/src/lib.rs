//! Shared plumbing of the Aurum Circle services.
//!
//! Every service binary is `main.rs` (parse, dispatch) around a library
//! `app(state) -> Router`. This crate gives them the common parts:
//!
//! - [`config::ServerArgs`]: host, port, limits and timeouts from the
//!   environment (`#[arg(long, env)]`), plus the `--healthcheck` flag;
//!   [`config::ServerArgs::settings`] turns them into [`config::Settings`];
//! - [`auth`]: the shared service token (`SERVICE_TOKEN_FILE`), bearer auth;
//! - [`secrets`]: `*_FILE` secrets and redaction of secrets in output;
//! - [`gate::Gate`]: the bound on concurrent decodes/inferences;
//! - [`cpu::cpus`]: the CPUs this process may use (cgroup quota);
//! - [`logging::init`]: JSON logs on stdout;
//! - [`http::wrap`]: `/api/health`, `/api/ready`, `/metrics`, body limit,
//!   per-request timeout and request metrics around a service's own routes;
//! - [`AppError`]: the one error type handlers return, answered as
//!   `{"error": {"code", "message"}}`;
//! - [`shutdown::serve`]: header-read timeout; on SIGTERM / Ctrl-C, not
//!   ready at once, a shutdown delay, then a bounded drain;
//! - [`imaging::decode`]: JPEG/PNG/WebP decoding that rejects oversized,
//!   over-budget or forged images from their header ([`imaging::check`]),
//!   before any pixel is decoded;
//! - [`upload::read_upload`]: an image as a raw body or multipart field;
//! - [`healthcheck::probe`]: the `--healthcheck` client (images have no curl);
//! - [`bench::paired`]: raw runs and HTTP requests alternated one by one,
//!   the ML services' `--bench-paired` benchmark;
//! - `onnx` (feature): ONNX Runtime session loading, a pool of sessions
//!   sized for the CPU limit;
//! - `testing` (feature, enabled by the services' dev-dependencies only):
//!   `assets`, `testdata` and `parity`, test support kept out of the
//!   production binaries (`parity` shells out to Python and panics).
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use service_kit::{http, metrics::Metrics, ready::Readiness};
//! # async fn run() {
//! let routes = Router::new().route("/hello", get(|| async { "hi" }));
//! let app = http::wrap(routes, http::Limits::default(), Metrics::new("demo"), Readiness::always());
//! # let _ = app;
//! # }
//! ```

#[cfg(any(test, feature = "testing"))]
pub mod assets;
pub mod auth;
pub mod bench;
pub mod config;
pub mod cpu;
pub mod entry;
pub mod error;
pub mod face;
pub mod gate;
pub mod healthcheck;
pub mod http;
pub mod imaging;
pub mod logging;
pub mod metrics;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(any(test, feature = "testing"))]
pub mod parity;
pub mod ready;
pub mod secrets;
pub mod shutdown;
#[cfg(any(test, feature = "testing"))]
pub mod testdata;
pub mod upload;

pub use error::{AppError, Error, Result};
