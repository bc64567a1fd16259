//! Helper threads for the CPU-bound part of a detection (the letterbox):
//! a few persistent threads, each steered off the calling thread's CPU
//! while that thread works through its share.
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rustix::process::Pid;
use rustix::thread::CpuSet;

/// A pool of helper threads (possibly none).
pub struct Helpers {
    pool: Option<rayon::ThreadPool>,
    /// Each helper's thread id, recorded when it starts.
    threads: std::sync::Arc<Mutex<Vec<Pid>>>,
    /// Held while a run uses the helpers: a concurrent run goes without
    /// them rather than wait for them to finish another request's work.
    busy: Mutex<()>,
}

impl std::fmt::Debug for Helpers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helpers")
            .field("count", &self.count())
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
                        record
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(rustix::thread::gettid());
                    })
                    .build()
            })
            .and_then(|built| {
                built
                    .map_err(|e| tracing::warn!("no letterbox helper threads: {e}"))
                    .ok()
            });
        Self {
            pool,
            threads,
            busy: Mutex::new(()),
        }
    }

    /// How many helpers there are.
    pub fn count(&self) -> usize {
        self.pool
            .as_ref()
            .map_or(0, rayon::ThreadPool::current_num_threads)
    }

    /// Runs `work` on the calling thread and on every helper at once and
    /// returns when all have returned. `work` should share its work out
    /// (take items from a common queue), so that a helper that starts late
    /// only does less: the calling thread never waits for a helper to do
    /// its share, only for it to start and find the queue empty. While
    /// another thread's run has the helpers, `work` runs on the calling
    /// thread alone (concurrent requests already keep the CPUs busy).
    ///
    /// The helpers are steered off the calling thread's CPU for the run and
    /// allowed back on it as soon as the calling thread's own `work`
    /// returns: a helper that has not started by then finds nothing to do,
    /// and may as well do that on the CPU the caller leaves idle than wait
    /// for a turn on another one, busy with another request's model run.
    pub fn run(&self, work: impl Fn() + Sync) {
        self.run_beside(&work, |_| work());
    }

    /// Runs `mine` on the calling thread while every helper runs `theirs`,
    /// steered and allowed back as in [`Helpers::run`], and returns `mine`'s
    /// result once all have returned. `theirs` is told through its flag
    /// when `mine` has returned or panicked: it is side work (warming a
    /// cache), and should then stop rather than keep the caller waiting.
    /// The helpers stay taken until `mine` returns, even when `theirs` is
    /// done sooner. While another thread's run has the helpers, only `mine`
    /// runs.
    pub fn run_beside<R>(
        &self,
        mine: impl FnOnce() -> R,
        theirs: impl Fn(&AtomicBool) + Sync,
    ) -> R {
        let Some(pool) = &self.pool else {
            return mine();
        };
        let _busy = match self.busy.try_lock() {
            Ok(held) => held,
            // a run that panicked leaves the helpers usable
            Err(std::sync::TryLockError::Poisoned(held)) => held.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return mine(),
        };
        let allowed = rustix::thread::sched_getaffinity(None).ok();
        let steered = allowed.and_then(|allowed| {
            let elsewhere = elsewhere(&allowed, rustix::thread::sched_getcpu())?;
            self.set_affinity(&elsewhere);
            Some(allowed)
        });
        let finished = AtomicBool::new(false);
        pool.in_place_scope(|scope| {
            for _ in 0..pool.current_num_threads() {
                scope.spawn(|_| theirs(&finished));
            }
            // also when `mine` panics: the scope waits for every helper
            // before it lets the panic go on
            let _told = Told {
                helpers: self,
                finished: &finished,
                steered,
            };
            mine()
        })
    }

    /// Sets every helper's CPU affinity to `cpus`, best effort: on failure
    /// a helper stays where it may run.
    fn set_affinity(&self, cpus: &CpuSet) {
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        for tid in threads.iter() {
            let _ = rustix::thread::sched_setaffinity(Some(*tid), cpus);
        }
    }
}

/// Tells the helpers that the caller's work has ended, and gives them back
/// every CPU they were steered off, when dropped.
struct Told<'a> {
    helpers: &'a Helpers,
    finished: &'a AtomicBool,
    steered: Option<CpuSet>,
}

impl Drop for Told<'_> {
    fn drop(&mut self) {
        self.finished.store(true, Ordering::Release);
        if let Some(allowed) = &self.steered {
            self.helpers.set_affinity(allowed);
        }
    }
}

/// `allowed` without CPU `here`, when `here` is one of them (`sched_getcpu`
/// reports no error: a refused call gives a number that is not) and
/// another one is left.
fn elsewhere(allowed: &CpuSet, here: usize) -> Option<CpuSet> {
    if here >= CpuSet::MAX_CPU || !allowed.is_set(here) || allowed.count() < 2 {
        return None;
    }
    let mut others = *allowed;
    others.unset(here);
    Some(others)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

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
    fn run_beside_runs_theirs_on_each_helper_until_mine_has_returned() {
        for count in [0, 1, 3] {
            let helpers = Helpers::new(count);
            let started = AtomicUsize::new(0);
            let out = helpers.run_beside(
                || 42,
                |finished| {
                    started.fetch_add(1, Ordering::SeqCst);
                    // side work that only ends when told: a run that did
                    // not tell would hang here
                    while !finished.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                },
            );
            assert_eq!(out, 42);
            assert_eq!(started.load(Ordering::SeqCst), count);
        }
    }

    #[test]
    fn a_panic_in_mine_still_tells_the_helpers_and_leaves_them_usable() {
        let helpers = Helpers::new(1);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            helpers.run_beside(
                || -> usize { panic!("mine fails") },
                |finished| {
                    // would hang the caller if a panic left it untold
                    while !finished.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                },
            )
        }));
        assert!(outcome.is_err());
        let calls = AtomicUsize::new(0);
        helpers.run(|| {
            calls.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(calls.load(Ordering::SeqCst), 2, "caller and helper again");
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
    fn elsewhere_leaves_out_the_callers_cpu_only_when_it_can() {
        let mut two = CpuSet::new();
        two.set(0);
        two.set(3);
        let others = elsewhere(&two, 3).unwrap();
        assert!(others.is_set(0) && !others.is_set(3));
        assert_eq!(others.count(), 1);
        // not one of the allowed CPUs, or a garbage number: no steering
        assert!(elsewhere(&two, 1).is_none());
        assert!(elsewhere(&two, usize::MAX).is_none());
        let mut one = CpuSet::new();
        one.set(0);
        assert!(elsewhere(&one, 0).is_none());
    }

    #[test]
    fn helpers_are_steered_during_a_run_and_allowed_back_after_it() {
        let helpers = Helpers::new(1);
        let allowed = rustix::thread::sched_getaffinity(None).unwrap();
        // wait for the helper to record itself
        for _ in 0..1000 {
            if !helpers.threads.lock().unwrap().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let tid = helpers.threads.lock().unwrap()[0];
        let here = (0..CpuSet::MAX_CPU).find(|&c| allowed.is_set(c)).unwrap();
        let Some(others) = elsewhere(&allowed, here) else {
            return; // one CPU: nowhere else to go
        };
        helpers.set_affinity(&others);
        let now = rustix::thread::sched_getaffinity(Some(tid)).unwrap();
        if now.is_set(here) {
            return; // this sandbox refuses sched_setaffinity: best effort
        }
        assert_eq!(now, others);
        // a whole run leaves the helper free to use every allowed CPU
        helpers.run(|| {});
        assert_eq!(
            rustix::thread::sched_getaffinity(Some(tid)).unwrap(),
            allowed
        );
    }
}
