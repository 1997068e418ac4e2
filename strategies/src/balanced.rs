//! `balanced`: spread leaderships over the nodes.

use crate::tiers::tiers_by_key;
use baton_core::{ElectionInput, MemberId};

/// Prefers the candidate whose node leads the fewest groups (`Candidate::leads`), not counting
/// the group being ranked: the incumbent's count leaves this group out, so a leader is only
/// displaced by a node that would then lead fewer than it does now. Equal counts tie — in a
/// [`Chain`](crate::Chain) the next policy decides (`policy = ["balanced", "oldest-running"]`),
/// alone the member id.
///
/// The engine counts, for a group without a leader, the favourite of every leaderless group
/// ranked before it (groups are ranked in name order), so a cold start of a thousand groups or
/// the failover of a node that led hundreds spreads them over the live nodes in one pass,
/// alike on every node that sees the same cluster. Without `preempt` it balances only when a
/// group elects; with `preempt = true` a leader also hands groups off, one after another,
/// while another node leads at least two fewer groups than it does.
///
/// ```
/// use baton_core::{Candidate, ElectionInput, LeaderPolicy, MemberId};
/// use baton_strategies::Balanced;
///
/// let mut input = ElectionInput::of_nodes("g", &["a", "b", "c"]);
/// input.candidates[0].leads = 3;
/// input.candidates[1].leads = 1;
/// input.candidates[2].leads = 1;
/// let ranked = Balanced.rank(&input);
/// assert_eq!(ranked[0], MemberId::new("b", 0)); // b and c tie; the member id decides
/// assert_eq!(ranked[2], MemberId::new("a", 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balanced;

impl Balanced {
    /// The policy's name in config: `"balanced"`.
    pub const NAME: &'static str = "balanced";

    /// Its ranking as tiers of equally good candidates (what `LeaderPolicy::tiers` returns).
    fn tiers_of(&self, input: &ElectionInput) -> Vec<Vec<MemberId>> {
        tiers_by_key(input, |c| {
            let this_group = usize::from(input.incumbent.as_ref() == Some(&c.member));
            c.leads.saturating_sub(this_group)
        })
    }
}

crate::tiers::tiered_policy!(Balanced, reads_other_groups: |_| true);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_tiers, ids, input, leading, tiers};
    use baton_core::LeaderPolicy;

    #[test]
    fn the_node_leading_fewest_groups_ranks_first_and_equal_counts_tie() {
        let inp = input(vec![
            leading("a", 4),
            leading("b", 0),
            leading("c", 2),
            leading("d", 0),
        ]);
        assert_tiers(&Balanced, &inp, &[&["b", "d"], &["c"], &["a"]]);
    }

    #[test]
    fn the_incumbents_count_leaves_this_group_out() {
        // a leads 2 groups, this one among them; b leads 1. Moving this group to b would leave
        // a with 1 and b with 2: no better, so a and b tie and nobody is displaced for it.
        let mut inp = input(vec![leading("a", 2), leading("b", 1)]);
        inp.incumbent = Some(MemberId::new("a", 0));
        assert_eq!(Balanced.tiers(&inp), tiers(&[&["a", "b"]]));
        // With a leading 3 (this one included), b (1) is better.
        let mut inp = input(vec![leading("a", 3), leading("b", 1)]);
        inp.incumbent = Some(MemberId::new("a", 0));
        assert_eq!(Balanced.rank(&inp), ids(&["b", "a"]));
    }
}
