//! A bound on concurrent decodes and inferences, and where they run.
//!
//! At most `MAX_CONCURRENT_DECODES` requests decode and run a model at once;
//! up to `MAX_QUEUED_DECODES` more wait their turn; any further request is
//! refused at once with 503 `overloaded` and `Retry-After: 1`, so a burst of
//! large uploads cannot multiply the decode memory or queue without end.
//!
//! [`Gate::run`] runs the work itself on tokio's blocking pool
//! ([`run_blocking`]) while it holds the turn.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::AppError;

/// The gate; clones share it.
#[derive(Clone, Debug)]
pub struct Gate {
    running: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_running: usize,
    max_waiting: usize,
}

/// Held while a request decodes or infers.
#[derive(Debug)]
pub struct Pass(#[allow(dead_code)] OwnedSemaphorePermit);

impl Gate {
    /// `max_running` at once (at least 1), `max_waiting` more queued.
    pub fn new(max_running: usize, max_waiting: usize) -> Self {
        let max_running = max_running.max(1);
        Self {
            running: Arc::new(Semaphore::new(max_running)),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_running,
            max_waiting,
        }
    }

    /// Waits for a turn, or refuses when the queue is full.
    ///
    /// # Errors
    ///
    /// 503 `overloaded` with `Retry-After: 1`.
    pub async fn enter(&self) -> Result<Pass, AppError> {
        if let Ok(p) = self.running.clone().try_acquire_owned() {
            return Ok(Pass(p));
        }
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _leave = Leave(&self.waiting);
        if queued >= self.max_waiting {
            return Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!(
                    "{} images are being processed and {} wait; retry in a second",
                    self.max_running, self.max_waiting
                ),
            )
            .with_header("retry-after", "1"));
        }
        let p = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(AppError::internal)?;
        Ok(Pass(p))
    }

    /// Waits for a turn as [`Gate::enter`] does, then runs the CPU-bound
    /// `work` holding it, through [`run_blocking`].
    ///
    /// # Errors
    ///
    /// As [`Gate::enter`] and [`run_blocking`].
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let pass = self.enter().await?;
        run_blocking(move || {
            let _pass = pass;
            work()
        })
        .await
    }
}

/// Runs CPU-bound `work` (decoding, inference) on tokio's blocking pool,
/// so it does not stall the runtime's async tasks.
///
/// (`block_in_place`, which runs it on the worker thread and saves the two
/// thread hand-offs, was measured slower: a detection's model run took 1.1 to
/// 2.5 ms longer, more than the hand-offs cost; see "Helper threads off the
/// caller's CPU" in docs/benchmarks.md.)
///
/// # Errors
///
/// 500 `internal` when `work` panics.
pub async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(AppError::internal)
}

#[cfg(test)]
mod tests {
    use super::{run_blocking, Gate};

    #[tokio::test]
    async fn queue_is_bounded_then_refuses_with_retry_after() {
        let gate = Gate::new(1, 1);
        let first = gate.enter().await.unwrap();
        let g = gate.clone();
        let second = tokio::spawn(async move { g.enter().await.map(|_| ()) });
        tokio::task::yield_now().await;
        while gate.waiting.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let third = gate.enter().await.unwrap_err();
        assert_eq!(third.status.as_u16(), 503);
        assert_eq!(third.code, "overloaded");
        assert_eq!(third.headers, vec![("retry-after", "1".to_owned())]);
        drop(first);
        second.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn run_holds_a_turn_and_turns_a_panic_into_a_500() {
        let gate = Gate::new(1, 0);
        assert_eq!(gate.run(|| 7).await.unwrap(), 7);
        let err = run_blocking(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert_eq!(err.status.as_u16(), 500);
        // the turn was given back after the panic
        let err = gate.run(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert_eq!(err.status.as_u16(), 500);
        assert_eq!(gate.run(|| 8).await.unwrap(), 8);
    }
}
