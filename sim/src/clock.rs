//! Drifting node clocks.
//!
//! The simulation runs on one true virtual clock (µs since the start). Each node's engine reads
//! its own monotonic clock instead: `base + offset + ∫ rate dt` — an offset (what the clock read
//! when the simulation started) and a rate in parts per million of true time, which a
//! [fault](crate::Fault::ClockRate) may change mid-run. The conversion is exact integer
//! arithmetic both ways: a node's reading at a true instant, and the first true instant at which
//! its clock reaches a deadline its engine asked for (so a node is woken neither early nor a
//! microsecond late).

use crate::rng::Rng;
use std::time::Duration;

/// Parts per million: a rate of `PPM` keeps true time.
pub const PPM: u64 = 1_000_000;

/// A node's clock at the start of a simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Rate in parts per million of true time: 1 000 000 keeps time, 1 050 000 runs 5 % fast.
    pub rate_ppm: u64,
    /// What it reads at true time 0, past the simulation's base instant.
    pub offset: Duration,
}

impl Clock {
    /// Keeps true time, no offset.
    pub const PERFECT: Clock = Clock {
        rate_ppm: PPM,
        offset: Duration::ZERO,
    };

    /// A clock running at `rate` × true time (rounded to a part per million).
    ///
    /// # Panics
    /// Unless `rate` is finite and positive.
    pub fn new(rate: f64, offset: Duration) -> Clock {
        Clock {
            rate_ppm: rate_to_ppm(rate),
            offset,
        }
    }

    /// The rate as a factor of true time.
    pub fn rate(&self) -> f64 {
        self.rate_ppm as f64 / PPM as f64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::PERFECT
    }
}

/// `rate` in parts per million.
///
/// # Panics
/// Unless `rate` is finite and positive.
pub fn rate_to_ppm(rate: f64) -> u64 {
    assert!(
        rate.is_finite() && rate > 0.0,
        "a clock rate must be positive, got {rate}"
    );
    ((rate * PPM as f64).round() as u64).max(1)
}

/// The clock-rate bound under which leases are safe: `(ft − lease) / (ft + lease)`
/// (PROTOCOL.md, "Leases"; 11.1 % at the defaults).
///
/// A voter's promise lasts `failure_timeout` on *its* clock from the moment it received the
/// heartbeat; the leader's lease lasts `lease` on *its* clock from the moment it sent it. The
/// promise outlasts the lease in true time as long as `rate_voter / rate_leader ≤ ft / lease`,
/// which is the same as `(rate_voter − rate_leader) / (rate_voter + rate_leader) ≤ β`: each of
/// the two rates within `β` of their mean. With every rate in `[1 − ρ/2, 1 + ρ/2]` ([`spread`]
/// `ρ`) that holds whenever `ρ ≤ 2β`; the simulator's random schedules stay within the stricter
/// reading `ρ ≤ β` ("the rates of any two nodes differ by at most β").
pub fn drift_bound(failure_timeout: Duration, lease: Duration) -> f64 {
    let ft = failure_timeout.as_secs_f64();
    let lease = lease.as_secs_f64().min(ft);
    if ft <= 0.0 {
        0.0
    } else {
        (ft - lease) / (ft + lease)
    }
}

/// The largest relative difference between two of the rates: `max / min − 1` (0 for one
/// clock or none).
pub fn spread(clocks: &[Clock]) -> f64 {
    let max = clocks.iter().map(|c| c.rate_ppm).max();
    let min = clocks.iter().map(|c| c.rate_ppm).min();
    match (min, max) {
        (Some(min), Some(max)) => max as f64 / min as f64 - 1.0,
        _ => 0.0,
    }
}

/// The rates (ppm) a spread of `rho` allows: `[⌈1 − ρ/2⌉, ⌊1 + ρ/2⌋]`, so that any two differ
/// by at most `ρ` relative to the midpoint (at most `(1 + ρ/2)/(1 − ρ/2) − 1` relative to each
/// other).
///
/// # Panics
/// Unless `0 ≤ rho < 2`.
pub fn rate_range(rho: f64) -> (u64, u64) {
    assert!(
        (0.0..2.0).contains(&rho),
        "a clock spread must be in [0, 2), got {rho}"
    );
    let lo = (PPM as f64 * (1.0 - rho / 2.0)).ceil() as u64;
    let hi = (PPM as f64 * (1.0 + rho / 2.0)).floor() as u64;
    if lo > hi { (PPM, PPM) } else { (lo.max(1), hi) }
}

/// `n` clocks with rates in [`rate_range`]`(rho)` and offsets of 0–5 s. One random node runs
/// at the slow end and another at the fast end (so the whole spread is used); every other
/// rate is the slow end, the fast end or uniform in between (a third each), so that the worst
/// pairs — a slow leader, fast voters — come up often.
pub fn drifting(rng: &mut Rng, n: usize, rho: f64) -> Vec<Clock> {
    let (lo, hi) = rate_range(rho);
    let slow = rng.below(n as u64) as usize;
    let fast = (slow + 1 + rng.below(n.max(2) as u64 - 1) as usize) % n.max(1);
    (0..n)
        .map(|i| {
            let rate_ppm = match rng.below(3) {
                _ if i == slow => lo,
                _ if i == fast => hi,
                0 => lo,
                1 => hi,
                _ => rng.range(lo, hi),
            };
            Clock {
                rate_ppm,
                offset: Duration::from_micros(rng.below(5_000_000)),
            }
        })
        .collect()
}

/// A running clock: from an anchor (a true time and the reading then) on, it advances at
/// `rate_ppm`. Changing the rate re-anchors at the current reading, so readings never go back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Running {
    anchor_us: u64,
    anchor_ns: u128,
    rate_ppm: u64,
}

impl Running {
    pub(crate) fn new(c: Clock) -> Running {
        Running {
            anchor_us: 0,
            anchor_ns: c.offset.as_nanos(),
            rate_ppm: c.rate_ppm.max(1),
        }
    }

    pub(crate) fn rate_ppm(&self) -> u64 {
        self.rate_ppm
    }

    /// The reading (ns past the base instant) at true time `t_us` (not before the anchor).
    pub(crate) fn read_ns(&self, t_us: u64) -> u128 {
        let dt = t_us.saturating_sub(self.anchor_us) as u128;
        self.anchor_ns + dt * self.rate_ppm as u128 / 1_000
    }

    /// The first true time (µs) at which the reading is at least `ns`; the anchor when it
    /// already was then.
    pub(crate) fn true_us_at(&self, ns: u128) -> u64 {
        if ns <= self.anchor_ns {
            return self.anchor_us;
        }
        // read_ns(t) = anchor_ns + ⌊(t − anchor_us) × rate / 1000⌋ ≥ ns
        //   ⟺ (t − anchor_us) × rate ≥ (ns − anchor_ns) × 1000 (the right side is an integer)
        let need = (ns - self.anchor_ns) * 1_000;
        let rate = self.rate_ppm as u128;
        let dt = need.div_ceil(rate);
        self.anchor_us
            .saturating_add(u64::try_from(dt).unwrap_or(u64::MAX))
    }

    /// Runs at `rate_ppm` from true time `t_us` on.
    pub(crate) fn set_rate(&mut self, t_us: u64, rate_ppm: u64) {
        self.anchor_ns = self.read_ns(t_us);
        self.anchor_us = t_us.max(self.anchor_us);
        self.rate_ppm = rate_ppm.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_map_to_the_first_true_microsecond_that_reaches_them() {
        let mut rng = Rng::new(5);
        for _ in 0..20_000 {
            let (lo, hi) = rate_range(rng.unit() * 1.5);
            let mut c = Running::new(Clock {
                rate_ppm: rng.range(lo, hi),
                offset: Duration::from_nanos(rng.below(10_000_000_000)),
            });
            if rng.chance(0.5) {
                c.set_rate(rng.below(5_000_000), rng.range(lo, hi));
            }
            let deadline = c.anchor_ns + rng.below(3_000_000_000) as u128;
            let t = c.true_us_at(deadline);
            assert!(c.read_ns(t) >= deadline);
            if t > c.anchor_us {
                assert!(c.read_ns(t - 1) < deadline);
            }
        }
    }

    #[test]
    fn readings_are_monotonic_across_rate_changes() {
        let mut c = Running::new(Clock::new(1.2, Duration::from_millis(7)));
        let mut last = 0;
        let mut rng = Rng::new(9);
        for t in (0..2_000_000u64).step_by(997) {
            if rng.chance(0.01) {
                c.set_rate(t, rng.range(500_000, 1_500_000));
            }
            let r = c.read_ns(t);
            assert!(r >= last);
            last = r;
        }
    }

    #[test]
    fn spreads_stay_within_their_range() {
        let mut rng = Rng::new(1);
        for rho in [0.0, 0.01, 0.05, 0.1, 0.4] {
            let clocks = drifting(&mut rng, 7, rho);
            let (lo, hi) = rate_range(rho);
            assert!(clocks.iter().all(|c| (lo..=hi).contains(&c.rate_ppm)));
            assert!(spread(&clocks) <= (1.0 + rho / 2.0) / (1.0 - rho / 2.0) - 1.0 + 1e-9);
        }
        // The defaults: failure timeout 500 ms, lease 400 ms.
        let b = drift_bound(Duration::from_millis(500), Duration::from_millis(400));
        assert!((b - 1.0 / 9.0).abs() < 1e-12);
    }
}
