//! Percentile bookkeeping.
//!
//! All scores ever seen are kept as a fixed 101-bucket histogram (bucket i
//! holds scores rounding to i) in one Redis hash, so it survives restarts,
//! is shared by replicas, and stays a few hundred bytes however many images
//! are scored. One HINCRBY records a score; one HGETALL reads the histogram.

/// Number of buckets: integer scores 0..=100.
pub const BUCKETS: usize = 101;

/// The bucket of a score in 0..100.
pub fn bucket(score: f32) -> usize {
    (score.clamp(0.0, 100.0).round() as usize).min(BUCKETS - 1)
}

/// Percentile (0..100) of `score` in `hist`: the share of scores below its
/// bucket plus half of those in it (the mid-rank convention, so a lone score
/// sits at 50 and ties do not all rank first). `None` on an empty histogram.
pub fn percentile(hist: &[u64; BUCKETS], score: f32) -> Option<f64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let b = bucket(score);
    let below: u64 = hist[..b].iter().sum();
    Some(100.0 * (below as f64 + hist[b] as f64 / 2.0) / total as f64)
}

/// A histogram from Redis HGETALL field/value pairs (unknown fields ignored).
pub fn from_pairs(pairs: impl IntoIterator<Item = (String, u64)>) -> [u64; BUCKETS] {
    let mut hist = [0u64; BUCKETS];
    for (field, count) in pairs {
        if let Ok(i) = field.parse::<usize>() {
            if i < BUCKETS {
                hist[i] = count;
            }
        }
    }
    hist
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mid_rank_percentiles() {
        let mut hist = [0u64; BUCKETS];
        assert_eq!(percentile(&hist, 50.0), None);
        hist[bucket(50.0)] += 1;
        assert_eq!(percentile(&hist, 50.0), Some(50.0));
        for s in [10.0, 20.0, 30.0] {
            hist[bucket(s)] += 1;
        }
        // 3 below, 1 at: (3 + 0.5) / 4
        assert_eq!(percentile(&hist, 50.2), Some(87.5));
        assert_eq!(percentile(&hist, 0.0), Some(0.0));
        assert_eq!(percentile(&hist, 100.0), Some(100.0));
    }

    #[test]
    fn buckets_clamp_and_pairs_parse() {
        assert_eq!(bucket(-5.0), 0);
        assert_eq!(bucket(100.4), 100);
        assert_eq!(bucket(49.5), 50);
        let hist = from_pairs([
            ("3".to_string(), 2),
            ("x".to_string(), 9),
            ("500".to_string(), 1),
        ]);
        assert_eq!(hist[3], 2);
        assert_eq!(hist.iter().sum::<u64>(), 2);
    }
}
