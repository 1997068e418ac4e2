//! `hardware-weight`: the best-equipped node leads.

use crate::tiers::tiers_by_key;
use baton_core::{ElectionInput, Hardware, MemberId};
use std::cmp::Ordering;

/// Bytes in one GiB.
const GIB: f64 = (1u64 << 30) as f64;

/// Ranks heavier candidates first.
///
/// A candidate's weight is its node's configured `hardware.weight` when set, otherwise a score
/// computed from the detected (or configured) CPUs and memory:
///
/// ```text
/// score = cpus + memory_GiB / 4        (memory_GiB = memory_bytes / 2^30)
/// ```
///
/// so one CPU counts as much as 4 GiB of memory: a 4-CPU / 16 GiB node scores 8, a 2-CPU /
/// 4 GiB node 3, a node with no known memory just its CPU count. Configured weights are compared
/// on the same scale as scores, so either configure a weight on every node of a group or choose
/// weights with this formula in mind. [`HardwareWeight::weight`] computes the value.
///
/// Candidates with equal weight tie and the member id decides. The weights are compared exactly
/// (with [`f64::total_cmp`]); odd values never panic and never make the order depend on the
/// input order:
///
/// - a **NaN** weight ranks below every number (last), and all NaNs tie with each other;
/// - **negative** weights are valid and rank below zero; `-0.0` ties with `0.0`;
/// - `+∞` ranks above every finite weight, `-∞` below every finite one (but above NaN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardwareWeight;

impl HardwareWeight {
    /// The policy's name in config: `"hardware-weight"`.
    pub const NAME: &'static str = "hardware-weight";

    /// The score of CPUs and memory alone: `cpus + memory_bytes / 2^30 / 4`.
    ///
    /// ```
    /// use baton_core::Hardware;
    /// use baton_strategies::HardwareWeight;
    ///
    /// let hw = Hardware { cpus: 4, memory_bytes: 16 << 30, weight: None };
    /// assert_eq!(HardwareWeight::score(&hw), 8.0);
    /// ```
    pub fn score(hardware: &Hardware) -> f64 {
        f64::from(hardware.cpus) + hardware.memory_bytes as f64 / GIB / 4.0
    }

    /// The weight the policy ranks by: the configured `weight` if set (even when NaN or
    /// negative), else [`HardwareWeight::score`].
    pub fn weight(hardware: &Hardware) -> f64 {
        hardware
            .weight
            .unwrap_or_else(|| HardwareWeight::score(hardware))
    }
}

/// A weight as a sort key: smaller is better (heavier), NaN is worst, `-0.0 == 0.0`.
#[derive(Clone, Copy, Debug)]
struct Heaviness(f64);

impl Heaviness {
    fn of(hardware: &Hardware) -> Self {
        let w = HardwareWeight::weight(hardware);
        // Fold every NaN payload into one value and -0.0 into 0.0, so that all of them tie.
        Heaviness(if w.is_nan() {
            f64::NAN
        } else if w == 0.0 {
            0.0
        } else {
            w
        })
    }
}

impl Ord for Heaviness {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.0.is_nan(), other.0.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            // Heavier first: reverse of the numeric order.
            (false, false) => other.0.total_cmp(&self.0),
        }
    }
}

impl PartialOrd for Heaviness {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Heaviness {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Heaviness {}

impl HardwareWeight {
    /// Its ranking as tiers of equally good candidates (what `LeaderPolicy::tiers` returns).
    fn tiers_of(&self, input: &ElectionInput) -> Vec<Vec<MemberId>> {
        tiers_by_key(input, |c| Heaviness::of(&c.hardware))
    }
}

crate::tiers::tiered_policy!(HardwareWeight, reads_other_groups: |_| false);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_deterministic, cand, ids, input, tiers};
    use baton_core::LeaderPolicy;

    fn hw(node: &str, cpus: u32, mem_gib: u64, weight: Option<f64>) -> baton_core::Candidate {
        let mut c = cand(node);
        c.hardware = Hardware {
            cpus,
            memory_bytes: mem_gib << 30,
            weight,
        };
        c
    }

    #[test]
    fn score_formula() {
        assert_eq!(HardwareWeight::score(&Hardware::default()), 0.0);
        assert_eq!(
            HardwareWeight::score(&Hardware {
                cpus: 2,
                memory_bytes: 4 << 30,
                weight: None
            }),
            3.0
        );
        // Memory alone counts: 1 GiB = 0.25.
        assert_eq!(
            HardwareWeight::score(&Hardware {
                cpus: 0,
                memory_bytes: 1 << 30,
                weight: None
            }),
            0.25
        );
    }

    #[test]
    fn heavier_ranks_first_and_memory_counts() {
        let inp = input(vec![
            hw("a", 2, 4, None),  // 3
            hw("b", 8, 32, None), // 16
            hw("c", 2, 8, None),  // 4: same cpus as a, more memory
        ]);
        assert_eq!(HardwareWeight.rank(&inp), ids(&["b", "c", "a"]));
    }

    #[test]
    fn equal_weights_tie_and_member_id_decides() {
        let inp = input(vec![
            hw("d", 4, 0, None),       // 4
            hw("c", 2, 8, None),       // 4
            hw("b", 1, 0, Some(4.0)),  // 4 (configured)
            hw("a", 1, 0, None),       // 1
            hw("e", 0, 0, Some(-0.0)), // 0
            hw("f", 0, 0, None),       // 0
        ]);
        assert_eq!(
            HardwareWeight.tiers(&inp),
            tiers(&[&["b", "c", "d"], &["a"], &["e", "f"]])
        );
        assert_eq!(
            HardwareWeight.rank(&inp),
            ids(&["b", "c", "d", "a", "e", "f"])
        );
    }

    #[test]
    fn configured_weight_beats_detected_score() {
        // "big" has far more hardware but is configured down; "small" is configured up.
        let inp = input(vec![
            hw("big", 64, 256, Some(1.0)),
            hw("small", 1, 1, Some(100.0)),
            hw("plain", 4, 0, None), // score 4
        ]);
        assert_eq!(HardwareWeight.rank(&inp), ids(&["small", "plain", "big"]));
        assert_eq!(
            HardwareWeight::weight(&inp.candidates[0].hardware),
            1.0,
            "configured weight is used, not the score"
        );
    }

    #[test]
    fn nan_ranks_last_and_nans_tie() {
        let other_nan = f64::from_bits(f64::NAN.to_bits() ^ 1); // a different NaN payload
        assert!(other_nan.is_nan());
        let inp = input(vec![
            hw("a", 0, 0, Some(f64::NAN)),
            hw("b", 0, 0, Some(-f64::NAN)),
            hw("c", 0, 0, Some(other_nan)),
            hw("d", 0, 0, Some(-5.0)),
            hw("e", 0, 0, Some(f64::NEG_INFINITY)),
            hw("f", 0, 0, Some(f64::INFINITY)),
            hw("g", 1, 0, None),
        ]);
        assert_eq!(
            HardwareWeight.tiers(&inp),
            tiers(&[&["f"], &["g"], &["d"], &["e"], &["a", "b", "c"]])
        );
        assert_deterministic(&HardwareWeight, &inp);
    }

    #[test]
    fn shuffled_input_ranks_the_same() {
        let inp = input(
            (0..50)
                .map(|i| {
                    let weight = match i % 7 {
                        0 => Some(f64::NAN),
                        1 => Some(2.0),
                        2 => Some(-1.0),
                        _ => None,
                    };
                    hw(&format!("n{i:02}"), i % 3, (i % 4) as u64, weight)
                })
                .collect(),
        );
        assert_deterministic(&HardwareWeight, &inp);
    }
}
