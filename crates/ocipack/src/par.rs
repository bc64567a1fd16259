//! A scoped pool of threads over a list of jobs, results in job order
//! (the layer cache's hashing and lookups, `ocipack host`'s planning).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `f(&mut state, i)` for every `i` of `order` (a permutation of
/// `0..order.len()`, the order jobs are taken in) on up to `threads`
/// threads, each with its own `init()` state; returns the results by `i`.
pub fn map<S, R: Send>(
    order: &[usize],
    threads: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = order.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, order.len().max(1)) {
            s.spawn(|| {
                let mut state = init();
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let r = f(&mut state, i);
                    *slots[i].lock().expect("no panics while held") = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .expect("no panics while held")
                .expect("every job ran")
        })
        .collect()
}

/// `0..n`, the natural order of [`map`]'s jobs.
pub fn in_order(n: usize) -> Vec<usize> {
    (0..n).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_back_by_index_whatever_the_order() {
        let order = [3, 0, 2, 1];
        let out = super::map(&order, 3, || 10, |base, i| *base + i);
        assert_eq!(out, [10, 11, 12, 13]);
        assert!(super::map(&[], 4, || (), |(), i| i).is_empty());
    }
}
