//! The shared tier builder of the built-in policies.

use baton_core::{Candidate, ElectionInput, MemberId};

/// Ranks `input`'s candidates into tiers by `key` (smaller key = better): candidates with equal
/// keys share a tier, each tier is in member-id order, and no tier is empty.
///
/// The key is computed once per candidate and the candidates are sorted by `(key, member id)`, so
/// the result does not depend on the order of `input.candidates`: O(n log n).
pub(crate) fn tiers_by_key<K: Ord>(
    input: &ElectionInput,
    key: impl Fn(&Candidate) -> K,
) -> Vec<Vec<MemberId>> {
    let mut keyed: Vec<(K, &MemberId)> = input
        .candidates
        .iter()
        .map(|c| (key(c), &c.member))
        .collect();
    if in_member_order(input) {
        // Already in member-id order (the engine's usual input): a stable sort by key keeps it
        // inside equal keys, and saves comparing ids.
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
    } else {
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    }

    let mut tiers: Vec<Vec<MemberId>> = Vec::new();
    let mut previous: Option<&K> = None;
    for (k, member) in &keyed {
        match (previous, tiers.last_mut()) {
            (Some(p), Some(tier)) if p == k => tier.push((*member).clone()),
            _ => tiers.push(vec![(*member).clone()]),
        }
        previous = Some(k);
    }
    tiers
}

/// True when `input.candidates` are in strictly increasing member-id order (so also distinct).
pub(crate) fn in_member_order(input: &ElectionInput) -> bool {
    input.candidates.is_sorted_by(|a, b| a.member < b.member)
}

/// Implements [`LeaderPolicy`](baton_core::LeaderPolicy) for a built-in policy that ranks in
/// tiers: `name` is its `NAME`, `tiers` its inherent `tiers_of`, `rank` the tiers flattened
/// (each tier in member-id order), and `reads_other_groups` what `$reads` says of the policy.
macro_rules! tiered_policy {
    ($ty:ty, reads_other_groups: $reads:expr) => {
        impl baton_core::LeaderPolicy for $ty {
            fn name(&self) -> &str {
                Self::NAME
            }
            fn rank(&self, input: &baton_core::ElectionInput) -> Vec<baton_core::MemberId> {
                baton_core::ranking_from_tiers(self.tiers_of(input))
            }
            fn tiers(&self, input: &baton_core::ElectionInput) -> Vec<Vec<baton_core::MemberId>> {
                self.tiers_of(input)
            }
            fn reads_other_groups(&self) -> bool {
                ($reads)(self)
            }
        }
    };
}
pub(crate) use tiered_policy;
