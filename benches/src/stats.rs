//! Every latency a bench measured, kept so that it can print min / p50 / p99 / max.

use std::sync::Mutex;
use std::time::Duration;

/// Latencies by name, in the order they were first recorded.
#[derive(Default)]
pub struct Samples {
    inner: Mutex<Vec<(String, Vec<Duration>)>>,
}

impl Samples {
    /// An empty set.
    pub const fn new() -> Self {
        Samples {
            inner: Mutex::new(Vec::new()),
        }
    }

    /// Records one latency under `name`.
    pub fn record(&self, name: &str, d: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(d),
            None => inner.push((name.to_string(), vec![d])),
        }
    }

    /// The summaries, in recording order.
    pub fn summaries(&self) -> Vec<(String, Summary)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .iter()
            .filter_map(|(n, v)| Summary::of(v).map(|s| (n.clone(), s)))
            .collect()
    }

    /// Prints one line per name to stderr (criterion owns stdout).
    #[allow(
        clippy::print_stderr,
        reason = "the report of a benchmark, which has no other output"
    )]
    pub fn print(&self, title: &str) {
        let sums = self.summaries();
        if sums.is_empty() {
            return;
        }
        eprintln!("\n== {title}: every measured iteration (warm-up included)");
        for (name, s) in sums {
            eprintln!("{name:<44} {s}");
        }
    }
}

/// min / p50 / p99 / max of a set of latencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// How many.
    pub n: usize,
    /// Smallest.
    pub min: Duration,
    /// Median (nearest rank).
    pub p50: Duration,
    /// 99th percentile (nearest rank; the max below 100 samples).
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
}

impl Summary {
    /// The summary of `samples`, `None` when empty.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort();
        Some(Summary {
            n: v.len(),
            min: v[0],
            p50: percentile(&v, 50.0),
            p99: percentile(&v, 99.0),
            max: v[v.len() - 1],
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty `v`.
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={:<4} min {:>10}  p50 {:>10}  p99 {:>10}  max {:>10}",
            self.n,
            fmt_duration(self.min),
            fmt_duration(self.p50),
            fmt_duration(self.p99),
            fmt_duration(self.max)
        )
    }
}

/// `412.3 µs`, `1.93 ms`, `1.502 s`.
pub fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Summary::of(&v).unwrap();
        assert_eq!(s.min, Duration::from_millis(1));
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        let one = Summary::of(&[Duration::from_millis(7)]).unwrap();
        assert_eq!(
            (one.p50, one.p99),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
        assert!(Summary::of(&[]).is_none());
    }
}
