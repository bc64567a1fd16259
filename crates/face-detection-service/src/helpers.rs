//! Helper threads for the CPU-bound part of a detection (the letterbox):
//! a few persistent threads, each steered off the calling thread's CPU
//! before it is handed work.
//!
//! Why not `std::thread::scope`: on the 2-vCPU machine measured (see
//! "Helper threads off the caller's CPU" in docs/benchmarks.md) Linux
//! mostly places a thread that a busy thread spawns or wakes on the busy
//! thread's own CPU, where it waits until that thread blocks: after a model
//! run, a thread spawned while its parent computed for 0.7 ms started after
//! a median 0.87 ms, on the parent's CPU in 54 of 70 tries. The letterbox's
//! second half then ran after the first. A helper whose CPU affinity leaves
//! out the caller's CPU is placed on another one instead.
//!
//! Steering is best effort: when the affinity cannot be read or set (a
//! seccomp profile that refuses it, a single allowed CPU), the helpers run
//! where the scheduler puts them, which is still correct.

use std::sync::Mutex;

use rustix::process::Pid;
use rustix::thread::CpuSet;

/// A pool of helper threads (possibly none).
pub struct Helpers {
    pool: Option<rayon::ThreadPool>,
    /// Each helper's thread id and the CPUs it may use, recorded when it
    /// starts.
    threads: std::sync::Arc<Mutex<Vec<(Pid, CpuSet)>>>,
    count: usize,
    /// Held while a run uses the helpers: a concurrent run goes without
    /// them rather than wait for them to finish another request's work.
    busy: Mutex<()>,
}

impl std::fmt::Debug for Helpers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helpers")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Helpers {
    /// `count` helper threads; none when `count` is 0 or the threads cannot
    /// be started (then [`Helpers::run`] runs on the calling thread alone).
    pub fn new(count: usize) -> Self {
        let threads = std::sync::Arc::new(Mutex::new(Vec::with_capacity(count)));
        let record = threads.clone();
        let pool = (count > 0)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(count)
                    .thread_name(|i| format!("letterbox-{i}"))
                    .start_handler(move |_| {
                        if let Ok(allowed) = rustix::thread::sched_getaffinity(None) {
                            record
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((rustix::thread::gettid(), allowed));
                        }
                    })
                    .build()
            })
            .and_then(|built| {
                built
                    .map_err(|e| tracing::warn!("no letterbox helper threads: {e}"))
                    .ok()
            });
        let count = if pool.is_some() { count } else { 0 };
        Self {
            pool,
            threads,
            count,
            busy: Mutex::new(()),
        }
    }

    /// How many helpers there are.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Runs `work` on the calling thread and on every helper at once and
    /// returns when all have returned. `work` should share its work out
    /// (take items from a common queue), so that a helper that starts late
    /// only does less: the calling thread never waits for a helper to do
    /// its share, only for it to start and find the queue empty. While
    /// another thread's run has the helpers, `work` runs on the calling
    /// thread alone (concurrent requests already keep the CPUs busy).
    pub fn run(&self, work: impl Fn() + Sync) {
        let Some(pool) = &self.pool else {
            return work();
        };
        let _busy = match self.busy.try_lock() {
            Ok(held) => held,
            // a run that panicked leaves the helpers usable
            Err(std::sync::TryLockError::Poisoned(held)) => held.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return work(),
        };
        self.steer(rustix::thread::sched_getcpu());
        pool.in_place_scope(|scope| {
            for _ in 0..self.count {
                scope.spawn(|_| work());
            }
            work();
        });
    }

    /// Sets each helper's affinity to the CPUs it may use but `here`.
    fn steer(&self, here: usize) {
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        for (tid, allowed) in threads.iter() {
            let mut elsewhere = *allowed;
            elsewhere.unset(here);
            if elsewhere.count() > 0 {
                // best effort: on failure the helper stays where it may run
                let _ = rustix::thread::sched_setaffinity(Some(*tid), &elsewhere);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn run_calls_work_on_the_caller_and_each_helper() {
        for count in [0, 1, 3] {
            let helpers = Helpers::new(count);
            assert_eq!(helpers.count(), count);
            let calls = AtomicUsize::new(0);
            helpers.run(|| {
                calls.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(calls.load(Ordering::Relaxed), count + 1);
        }
    }

    #[test]
    fn a_concurrent_run_goes_without_the_busy_helpers() {
        let helpers = Helpers::new(1);
        let (inside, release) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                helpers.run(|| {
                    inside.fetch_add(1, Ordering::SeqCst);
                    while release.load(Ordering::SeqCst) == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                })
            });
            // the first run's caller and helper are both inside
            for _ in 0..5000 {
                if inside.load(Ordering::SeqCst) == 2 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert_eq!(inside.load(Ordering::SeqCst), 2);
            let calls = AtomicUsize::new(0);
            helpers.run(|| {
                calls.fetch_add(1, Ordering::SeqCst);
            });
            assert_eq!(calls.load(Ordering::SeqCst), 1, "ran on the caller alone");
            release.store(1, Ordering::SeqCst);
        });
    }

    #[test]
    fn helpers_are_steered_off_the_callers_cpu() {
        let helpers = Helpers::new(1);
        // the helper records itself when it starts
        for _ in 0..1000 {
            if !helpers.threads.lock().unwrap().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let allowed = rustix::thread::sched_getaffinity(None).unwrap();
        if allowed.count() < 2 {
            return; // nowhere else to go
        }
        let here = (0..CpuSet::MAX_CPU).find(|&c| allowed.is_set(c)).unwrap();
        helpers.steer(here);
        let threads = helpers.threads.lock().unwrap();
        let (tid, _) = threads[0];
        let now = rustix::thread::sched_getaffinity(Some(tid)).unwrap();
        assert!(!now.is_set(here), "the helper may still run on CPU {here}");
        assert!(now.count() > 0);
    }
}
