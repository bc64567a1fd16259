//! A small Prometheus registry.
//!
//! Hand-written with atomics rather than the `prometheus` crate: the
//! services need four metric families with one or two labels, and the text
//! exposition format is a few lines; a dependency would cost more compile
//! time than this file.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds of the latency histograms, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A cumulative histogram over fixed latency buckets (`BUCKETS`).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (route, status) -> count
    requests: RwLock<BTreeMap<(String, u16), Arc<AtomicU64>>>,
    /// route -> latency
    latency: RwLock<BTreeMap<String, Arc<Histogram>>>,
    /// error code -> count
    errors: RwLock<BTreeMap<&'static str, Arc<AtomicU64>>>,
    inference: Histogram,
}

/// The registry of one service; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    prefix: &'static str,
    inner: Arc<Inner>,
}

fn entry<K: Ord + Clone, V: Default>(map: &RwLock<BTreeMap<K, Arc<V>>>, key: &K) -> Arc<V> {
    if let Some(v) = map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
        return v.clone();
    }
    map.write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key.clone())
        .or_default()
        .clone()
}

impl Metrics {
    /// A registry whose metric names start with `prefix` (e.g. `face_detection`).
    pub fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            inner: Arc::default(),
        }
    }

    /// Counts a finished request and its latency; `route` is the matched path.
    pub fn record_request(&self, route: &str, status: u16, elapsed: Duration) {
        entry(&self.inner.requests, &(route.to_owned(), status)).fetch_add(1, Ordering::Relaxed);
        entry(&self.inner.latency, &route.to_owned()).observe(elapsed);
    }

    /// Counts an error answered with `code`.
    pub fn record_error(&self, code: &'static str) {
        entry(&self.inner.errors, &code).fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time of one model run.
    pub fn record_inference(&self, elapsed: Duration) {
        self.inner.inference.observe(elapsed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let p = self.prefix;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP {p}_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE {p}_http_requests_total counter");
        for ((route, status), n) in self
            .inner
            .requests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{p}_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP {p}_http_request_duration_seconds HTTP request latency by route."
        );
        let _ = writeln!(out, "# TYPE {p}_http_request_duration_seconds histogram");
        for (route, h) in self
            .inner
            .latency
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            h.render(
                &mut out,
                &format!("{p}_http_request_duration_seconds"),
                &format!("route=\"{route}\""),
            );
        }
        let _ = writeln!(
            out,
            "# HELP {p}_errors_total Error responses by error code."
        );
        let _ = writeln!(out, "# TYPE {p}_errors_total counter");
        for (code, n) in self
            .inner
            .errors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{p}_errors_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP {p}_inference_duration_seconds Model run time (or downstream calls, for scoring).");
        let _ = writeln!(out, "# TYPE {p}_inference_duration_seconds histogram");
        self.inner
            .inference
            .render(&mut out, &format!("{p}_inference_duration_seconds"), "");
        out
    }
}

/// Percentiles of `times_ms` as one JSON line, for the `--bench-inference` flags.
pub fn summary_json(what: &str, times_ms: &mut [f64]) -> String {
    times_ms.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        if times_ms.is_empty() {
            0.0
        } else {
            times_ms[((times_ms.len() - 1) as f64 * q).round() as usize]
        }
    };
    serde_json::json!({
        "model": what,
        "runs": times_ms.len(),
        "min_ms": pick(0.0),
        "p50_ms": pick(0.5),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_and_counts() {
        let m = Metrics::new("t");
        m.record_request("/a", 200, Duration::from_millis(7));
        m.record_request("/a", 200, Duration::from_millis(70));
        m.record_error("invalid_image");
        let text = m.render();
        assert!(
            text.contains("t_http_requests_total{route=\"/a\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("t_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.01\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("t_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.1\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("t_http_request_duration_seconds_count{route=\"/a\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("t_errors_total{code=\"invalid_image\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("t_inference_duration_seconds_count 0"),
            "{text}"
        );
    }
}
