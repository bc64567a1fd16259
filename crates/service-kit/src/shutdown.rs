//! Serving with graceful shutdown.
//!
//! On SIGTERM or Ctrl-C the listener is closed (new connections are
//! refused), requests in flight finish, and after `drain` the process gives
//! up waiting so a stuck request cannot block a rollout forever.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::error::{Error, Result};

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

/// Serves `app` until SIGTERM/Ctrl-C, then drains for at most `drain`.
///
/// # Errors
///
/// [`Error::Serve`] when serving fails.
pub async fn serve(listener: TcpListener, app: Router, drain: Duration) -> Result<()> {
    serve_until(listener, app, drain, signal()).await
}

/// Like [`serve`] with a custom shutdown trigger.
///
/// # Errors
///
/// [`Error::Serve`] when serving fails.
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    drain: Duration,
    trigger: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    tracing::info!(%addr, "listening");
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        trigger.await;
        let _ = tx.send(true);
    });
    let deadline = async move {
        let _ = rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        r = server => r.map_err(|source| Error::Serve { addr: addr.clone(), source })?,
        () = deadline => tracing::warn!(drain_secs = drain.as_secs(), "drain timed out, dropping requests still in flight"),
    }
    tracing::info!(%addr, "stopped");
    Ok(())
}
