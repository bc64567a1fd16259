//! What every service binary's `main` does, once: answer `--healthcheck`
//! without starting anything, else set up JSON logs, run, and turn an error
//! into a log line, a message on stderr and a failing exit code (secrets
//! redacted, see [`crate::secrets`]).

use std::fmt::Display;
use std::process::ExitCode;

use axum::Router;

use crate::error::{Error, Result};
use crate::shutdown::ServeOptions;

/// Runs a service binary. `run` does the work; its error is printed with its
/// whole chain (`{:#}`), passwords and registered secrets redacted.
pub fn main<E: Display>(
    name: &str,
    healthcheck: bool,
    port: u16,
    run: impl FnOnce() -> std::result::Result<(), E>,
) -> ExitCode {
    if healthcheck {
        return ExitCode::from(u8::try_from(crate::healthcheck::run(port)).unwrap_or(1));
    }
    crate::logging::init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = crate::secrets::redact(&format!("{e:#}"));
            tracing::error!(error = message, "{name} failed");
            eprintln!("{name}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `host:port` and serves `app` on a new multi-threaded runtime until
/// SIGTERM or Ctrl-C, then stops as `options` say.
///
/// # Errors
///
/// [`Error::Serve`] when the runtime cannot start, the address cannot be
/// bound, or serving fails.
pub fn serve_blocking(host: &str, port: u16, app: Router, options: ServeOptions) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().map_err(|source| Error::Serve {
        addr: format!("{host}:{port}"),
        source,
    })?;
    runtime.block_on(async {
        let listener = crate::shutdown::bind(host, port).await?;
        crate::shutdown::serve(listener, app, options).await
    })
}
