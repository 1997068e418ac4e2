//! `oldest-running`: the instance that has run longest leads (the seed demo's rule).

use crate::tiers::tiers_by_key;
use baton_core::{ElectionInput, MemberId};

/// Ranks the earliest `started_at_ms` first. Candidates started in the same millisecond tie,
/// and the member id decides between them.
///
/// This is the policy of a group that names none, and the rule of the Elixir demo baton grew
/// from: the longest-running instance leads, so a newcomer never disturbs a settled leader.
///
/// `started_at_ms` is each node's wall clock; clock skew between nodes only changes *who* is
/// considered oldest, never whether nodes agree (they all see the same recorded times).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OldestRunning;

impl OldestRunning {
    /// The policy's name in config: `"oldest-running"`.
    pub const NAME: &'static str = "oldest-running";

    /// Its ranking as tiers of equally good candidates (what `LeaderPolicy::tiers` returns).
    fn tiers_of(&self, input: &ElectionInput) -> Vec<Vec<MemberId>> {
        tiers_by_key(input, |c| c.started_at_ms)
    }
}

crate::tiers::tiered_policy!(OldestRunning, reads_other_groups: |_| false);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_deterministic, assert_tiers, input, started};
    use baton_core::LeaderPolicy;

    /// `(node, started_at_ms)` of each candidate, and the tiers they rank in.
    type Case = (
        &'static [(&'static str, u64)],
        &'static [&'static [&'static str]],
    );

    #[test]
    fn earliest_start_ranks_first_and_equal_start_times_tie_in_member_id_order() {
        let cases: &[Case] = &[
            (
                &[("a", 300), ("b", 100), ("c", 200)],
                &[&["b"], &["c"], &["a"]],
            ),
            (
                &[("d", 100), ("c", 50), ("b", 100), ("a", 100)],
                &[&["c"], &["a", "b", "d"]],
            ),
        ];
        for (starts, expected) in cases {
            let inp = input(starts.iter().map(|&(node, at)| started(node, at)).collect());
            assert_tiers(&OldestRunning, &inp, expected);
        }
    }

    #[test]
    fn member_seq_breaks_ties_on_the_same_node() {
        let mut a1 = started("a", 100);
        a1.member = MemberId::new("a", 1);
        let mut a0 = started("a", 100);
        a0.member = MemberId::new("a", 0);
        let inp = input(vec![a1, a0]);
        assert_eq!(
            OldestRunning.rank(&inp),
            vec![MemberId::new("a", 0), MemberId::new("a", 1)]
        );
    }

    #[test]
    fn shuffled_input_ranks_the_same() {
        let inp = input(
            (0..40)
                .map(|i| started(&format!("n{i:02}"), 1_000 + (i * 7 % 5) as u64))
                .collect(),
        );
        let r = assert_deterministic(&OldestRunning, &inp);
        assert_eq!(r[0], MemberId::new("n00", 0));
    }

    #[test]
    fn empty_input_has_no_tiers() {
        assert!(OldestRunning.tiers(&input(vec![])).is_empty());
        assert!(OldestRunning.rank(&input(vec![])).is_empty());
    }
}
