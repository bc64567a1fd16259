//! Shared plumbing of the Aurum Circle services.
//!
//! Every service binary is `main.rs` (parse, dispatch) around a library
//! `app(state) -> Router`. This crate gives them the common parts:
//!
//! - [`config::ServerArgs`]: host, port, limits and timeouts from the
//!   environment (`#[arg(long, env)]`), plus the `--healthcheck` flag;
//! - [`logging::init`]: JSON logs on stdout;
//! - [`http::wrap`]: `/api/health`, `/api/ready`, `/metrics`, body limit,
//!   per-request timeout and request metrics around a service's own routes;
//! - [`AppError`]: the one error type handlers return, answered as
//!   `{"error": {"code", "message"}}`;
//! - [`shutdown::serve`]: graceful shutdown on SIGTERM / Ctrl-C with a
//!   bounded drain;
//! - [`imaging::decode`]: JPEG/PNG/WebP decoding that rejects oversized
//!   images from their header, before any pixel is decoded;
//! - [`upload::read_upload`]: an image as a raw body or multipart field;
//! - [`healthcheck::probe`]: the `--healthcheck` client (images have no curl);
//! - `onnx` (feature): ONNX Runtime session loading.
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

pub mod assets;
pub mod config;
pub mod entry;
pub mod error;
pub mod face;
pub mod healthcheck;
pub mod http;
pub mod imaging;
pub mod logging;
pub mod metrics;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod parity;
pub mod ready;
pub mod shutdown;
pub mod testdata;
pub mod upload;

pub use error::{AppError, Error, Result};
