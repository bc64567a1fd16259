//! Serving: connection timeouts and graceful shutdown for rollouts.
//!
//! Connections are served by hyper's HTTP/1 server with a header-read
//! timeout: a connection that does not send a complete request head within
//! `HEADER_READ_TIMEOUT_MS` of opening, or of its previous response (an idle
//! keep-alive connection), is closed, so idle or slow-header connections
//! cannot pile up until health checks starve.
//!
//! On SIGTERM or Ctrl-C: `/api/ready` answers 503 at once (the
//! [`Lifecycle`] flips), the service keeps accepting and serving for
//! `SHUTDOWN_DELAY_SECS` (while load balancers notice), then the listener is
//! closed (new connections are refused), requests in flight finish, and after
//! `SHUTDOWN_DRAIN_SECS` the process gives up waiting so a stuck request
//! cannot block a rollout forever.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// Whether the service is stopping; shared by the server and `/api/ready`.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle(Arc<AtomicBool>);

impl Lifecycle {
    /// A running service.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Marks shutdown as begun: `/api/ready` answers 503 from now on.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// How to serve and stop.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Flipped on SIGTERM; share it with [`crate::http::Options`].
    pub lifecycle: Lifecycle,
    /// Keep accepting this long after SIGTERM.
    pub delay: Duration,
    /// Then wait at most this long for requests in flight.
    pub drain: Duration,
    /// Time allowed for a request head (and idle keep-alive time).
    pub header_read_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            lifecycle: Lifecycle::new(),
            delay: Duration::ZERO,
            drain: Duration::from_secs(20),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for sigterm");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
        () = term => tracing::info!("sigterm received, shutting down"),
    }
}

/// Binds `host:port`.
///
/// # Errors
///
/// [`Error::Serve`] when the address cannot be bound.
pub async fn bind(host: &str, port: u16) -> Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .map_err(|source| Error::Serve {
            addr: format!("{host}:{port}"),
            source,
        })
}

/// Serves `app` until SIGTERM/Ctrl-C, then stops as `options` say.
///
/// # Errors
///
/// [`Error::Serve`] when serving fails.
pub async fn serve(listener: TcpListener, app: Router, options: ServeOptions) -> Result<()> {
    serve_until(listener, app, options, signal()).await
}

/// Like [`serve`] with a custom shutdown trigger.
///
/// # Errors
///
/// [`Error::Serve`] when the listener's address cannot be read.
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    trigger: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr().map_err(|source| Error::Serve {
        addr: "?".into(),
        source,
    })?;
    tracing::info!(%addr, "listening");
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let lifecycle = options.lifecycle.clone();
    let delay = options.delay;
    let stop = async move {
        trigger.await;
        lifecycle.stop();
        if !delay.is_zero() {
            tracing::info!(
                delay_secs = delay.as_secs_f64(),
                "not ready; still serving during the shutdown delay"
            );
            tokio::time::sleep(delay).await;
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let service = TowerToHyperService::new(app.clone());
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors (EMFILE) and the like: wait a
                    // little instead of spinning; header timeouts free some.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    tracing::info!(%addr, "listener closed, draining requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.drain) => tracing::warn!(drain_secs = options.drain.as_secs(), "drain timed out, dropping requests still in flight"),
    }
    tracing::info!(%addr, "stopped");
    Ok(())
}
