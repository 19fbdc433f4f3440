//! Latency recording: microseconds in a plain vector, sorted once at the end. A phase records
//! at most a few hundred thousand requests, so exact percentiles cost a few megabytes at most.

use std::time::Duration;

/// Error messages kept per operation (the first distinct ones).
pub const MAX_ERROR_SAMPLES: usize = 5;

/// What one operation recorded: latencies of the successful requests, and the errors.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    latencies_us: Vec<u32>,
    errors: u64,
    samples: Vec<String>,
}

/// Percentiles of one recorder, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Successful requests.
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Recorder {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            latencies_us: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    pub fn ok(&mut self, latency: Duration) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(us);
    }

    /// Counts an error; the message is built only while samples are still wanted.
    pub fn err(&mut self, message: impl FnOnce() -> String) {
        self.errors += 1;
        if self.samples.len() < MAX_ERROR_SAMPLES {
            let m = message();
            if !self.samples.contains(&m) {
                self.samples.push(m);
            }
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        self.latencies_us.extend_from_slice(&other.latencies_us);
        self.errors += other.errors;
        for s in other.samples {
            if self.samples.len() >= MAX_ERROR_SAMPLES {
                break;
            }
            if !self.samples.contains(&s) {
                self.samples.push(s);
            }
        }
    }

    /// Requests recorded, successful or not.
    pub fn requests(&self) -> u64 {
        self.latencies_us.len() as u64 + self.errors
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    pub fn samples(&self) -> &[String] {
        &self.samples
    }

    /// Sorts the latencies (once is enough: later calls find them sorted).
    pub fn summary(&mut self) -> Summary {
        self.latencies_us.sort_unstable();
        let s = &self.latencies_us;
        Summary {
            ok: s.len() as u64,
            errors: self.errors,
            p50_ms: ms(percentile(s, 50.0)),
            p95_ms: ms(percentile(s, 95.0)),
            p99_ms: ms(percentile(s, 99.0)),
            max_ms: ms(s.last().copied().unwrap_or(0)),
        }
    }
}

fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

/// Nearest-rank percentile of sorted values (0 for none): the smallest value with at least
/// `p` percent of the values at or below it.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
        // 10 values: p95 is the 10th (rank ceil(9.5)), p50 the 5th.
        let w = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(percentile(&w, 50.0), 50);
        assert_eq!(percentile(&w, 95.0), 100);
    }

    #[test]
    fn summary_sorts_merges_and_keeps_a_few_distinct_errors() {
        let mut a = Recorder::default();
        for us in [3000, 1000, 2000] {
            a.ok(Duration::from_micros(us));
        }
        let mut b = Recorder::default();
        b.ok(Duration::from_micros(4000));
        for i in 0..10 {
            b.err(|| format!("e{}", i % 7));
        }
        a.err(|| "e0".to_owned());
        a.merge(b);
        let s = a.summary();
        assert_eq!(s.ok, 4);
        assert_eq!(s.errors, 11);
        assert_eq!(s.p50_ms, 2.0);
        assert_eq!(s.p99_ms, 4.0);
        assert_eq!(s.max_ms, 4.0);
        assert_eq!(a.samples(), ["e0", "e1", "e2", "e3", "e4"]);
    }

    #[test]
    fn huge_latencies_saturate() {
        let mut r = Recorder::default();
        r.ok(Duration::from_secs(10_000));
        assert_eq!(r.summary().max_ms, f64::from(u32::MAX) / 1000.0);
    }
}
