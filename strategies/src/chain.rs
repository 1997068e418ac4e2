//! `chain`: several policies, the first decides and the later ones break its ties.

use crate::tiers::in_member_order;
use baton_core::{ElectionInput, LeaderPolicy, MemberId};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::Arc;

/// A lexicographic combination of policies, best first.
///
/// The first policy's tiers decide; each later policy only orders candidates *inside* a tier
/// the policies before it left tied; the member id decides what is still tied at the end.
/// Its own [`tiers`](LeaderPolicy::tiers) are the refined tiers, so a chain can itself be an
/// element of another chain.
///
/// Each element's `tiers` is computed once, on the full input; the chain then sorts the
/// candidates by their tuple of tier indices: O(k·n log n) for k policies and n candidates.
/// A policy that does not override `tiers` is taken as a strict order, and leaves nothing for
/// later elements to decide. Candidates an element leaves out of its answer rank after all the
/// ones it does rank (ids it makes up, and repeats, are ignored), so a misbehaving element
/// cannot drop a candidate.
///
/// An empty chain ties everyone: the member id decides.
///
/// ```
/// use std::sync::Arc;
/// use baton_core::{Candidate, ElectionInput, Hardware, LeaderPolicy, MemberId};
/// use baton_strategies::{Chain, HardwareWeight, OldestRunning};
///
/// // `policy = ["hardware-weight", "oldest-running"]`
/// let chain = Chain::new(vec![Arc::new(HardwareWeight), Arc::new(OldestRunning)]);
///
/// let mut input = ElectionInput::default();
/// for (node, cpus, started_at_ms) in [("a", 8, 300), ("b", 8, 100), ("c", 2, 0)] {
///     input.candidates.push(Candidate {
///         member: MemberId::new(node, 0),
///         started_at_ms,
///         incarnation: baton_core::Incarnation(1),
///         hardware: Hardware { cpus, memory_bytes: 0, weight: None },
///         labels: Default::default(),
///         services: [].into(),
///         leads: 0,
///         version: None,
///     });
/// }
/// // a and b tie on hardware; b started earlier. c is oldest, but hardware decides first.
/// let ranking = chain.rank(&input);
/// assert_eq!(ranking, [MemberId::new("b", 0), MemberId::new("a", 0), MemberId::new("c", 0)]);
/// ```
#[derive(Clone, Default)]
pub struct Chain {
    policies: Vec<Arc<dyn LeaderPolicy>>,
}

impl Chain {
    /// The policy's name: `"chain"`. In config a chain is written as a list, not by this name.
    pub const NAME: &'static str = "chain";

    /// A chain of `policies`, best first.
    pub fn new(policies: Vec<Arc<dyn LeaderPolicy>>) -> Self {
        Chain { policies }
    }

    /// Its elements, best first.
    pub fn policies(&self) -> &[Arc<dyn LeaderPolicy>] {
        &self.policies
    }
}

impl FromIterator<Arc<dyn LeaderPolicy>> for Chain {
    fn from_iter<I: IntoIterator<Item = Arc<dyn LeaderPolicy>>>(iter: I) -> Self {
        Chain::new(iter.into_iter().collect())
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Chain")
            .field(&self.policies.iter().map(|p| p.name()).collect::<Vec<_>>())
            .finish()
    }
}

impl Chain {
    /// Whether any of its elements reads other groups' leaderships.
    fn reads_other_groups_of(&self) -> bool {
        self.policies.iter().any(|p| p.reads_other_groups())
    }

    /// Its ranking as tiers of equally good candidates (what `LeaderPolicy::tiers` returns).
    fn tiers_of(&self, input: &ElectionInput) -> Vec<Vec<MemberId>> {
        // Number the distinct candidates. When they come in member-id order (the engine's usual
        // input), that number is also their member-id rank, cheaper to compare than the id.
        let by_index = in_member_order(input);
        let mut index: HashMap<&MemberId, usize> = HashMap::with_capacity(input.candidates.len());
        let mut members: Vec<&MemberId> = Vec::with_capacity(input.candidates.len());
        for c in &input.candidates {
            if let Entry::Vacant(slot) = index.entry(&c.member) {
                slot.insert(members.len());
                members.push(&c.member);
            }
        }
        let n = members.len();
        let k = self.policies.len();

        // keys[i * k + p]: the tier policy p puts candidate i in; usize::MAX when p left it out.
        let mut keys = vec![usize::MAX; n * k];
        // The ids the elements hand back, moved rather than cloned again for the answer.
        let mut owned: Vec<Option<MemberId>> = vec![None; n];
        for (p, policy) in self.policies.iter().enumerate() {
            for (t, tier) in policy.tiers(input).into_iter().enumerate() {
                for m in tier {
                    if let Some(&i) = index.get(&m) {
                        let slot = &mut keys[i * k + p];
                        // A repeated id keeps its first (best) tier.
                        if *slot == usize::MAX {
                            *slot = t;
                        }
                        if owned[i].is_none() {
                            owned[i] = Some(m);
                        }
                    }
                }
            }
        }

        let key = |i: usize| &keys[i * k..(i + 1) * k];
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_unstable_by(|&a, &b| {
            key(a).cmp(key(b)).then_with(|| {
                if by_index {
                    a.cmp(&b)
                } else {
                    members[a].cmp(members[b])
                }
            })
        });

        let mut tiers: Vec<Vec<MemberId>> = Vec::new();
        let mut previous: Option<usize> = None;
        for i in order {
            let id = owned[i].take().unwrap_or_else(|| members[i].clone());
            match (previous, tiers.last_mut()) {
                (Some(p), Some(tier)) if key(p) == key(i) => tier.push(id),
                _ => tiers.push(vec![id]),
            }
            previous = Some(i);
        }
        tiers
    }
}

crate::tiers::tiered_policy!(Chain, reads_other_groups: Chain::reads_other_groups_of);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_deterministic, cand, ids, input, tiers};
    use crate::{AntiAffinity, HardwareWeight, OldestRunning};
    use baton_core::config::AntiAffinityConfig;
    use baton_core::{Hardware, NodeId};
    use baton_core::{LeaderPolicy, ranking_from_tiers};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A policy with fixed tiers (node names), counting how often it is asked.
    struct Fixed {
        tiers: Vec<Vec<MemberId>>,
        calls: AtomicUsize,
    }

    impl Fixed {
        fn new(t: &[&[&str]]) -> Arc<Fixed> {
            Arc::new(Fixed {
                tiers: tiers(t),
                calls: AtomicUsize::new(0),
            })
        }
    }

    impl LeaderPolicy for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
            ranking_from_tiers(self.tiers(input))
        }
        fn tiers(&self, _: &ElectionInput) -> Vec<Vec<MemberId>> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.tiers.clone()
        }
    }

    /// A policy that only implements `rank` (strict order, no tiers): reverse member id.
    struct ReverseId;

    impl LeaderPolicy for ReverseId {
        fn name(&self) -> &str {
            "reverse-id"
        }
        fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
            let mut ids: Vec<MemberId> =
                input.candidates.iter().map(|c| c.member.clone()).collect();
            ids.sort();
            ids.reverse();
            ids
        }
    }

    fn abcd() -> ElectionInput {
        input(vec![cand("a"), cand("b"), cand("c"), cand("d")])
    }

    fn chain(policies: Vec<Arc<dyn LeaderPolicy>>) -> Chain {
        Chain::new(policies)
    }

    #[test]
    fn first_policy_decides() {
        // The second policy prefers the exact opposite; it must not override the first.
        let c = chain(vec![
            Fixed::new(&[&["d"], &["c"], &["b"], &["a"]]),
            Fixed::new(&[&["a"], &["b"], &["c"], &["d"]]),
        ]);
        assert_eq!(c.rank(&abcd()), ids(&["d", "c", "b", "a"]));
    }

    #[test]
    fn second_policy_breaks_ties_of_the_first() {
        let c = chain(vec![
            Fixed::new(&[&["b", "c", "d"], &["a"]]),
            Fixed::new(&[&["a"], &["d"], &["b", "c"]]),
        ]);
        assert_eq!(c.tiers(&abcd()), tiers(&[&["d"], &["b", "c"], &["a"]]));
        assert_eq!(c.rank(&abcd()), ids(&["d", "b", "c", "a"]));
    }

    #[test]
    fn member_id_decides_last() {
        let c = chain(vec![
            Fixed::new(&[&["d", "c", "b", "a"]]),
            Fixed::new(&[&["d", "b"], &["c", "a"]]),
        ]);
        assert_eq!(c.tiers(&abcd()), tiers(&[&["b", "d"], &["a", "c"]]));
        assert_eq!(c.rank(&abcd()), ids(&["b", "d", "a", "c"]));
    }

    #[test]
    fn a_strict_policy_leaves_nothing_to_break() {
        let c = chain(vec![
            Arc::new(ReverseId),
            Fixed::new(&[&["a"], &["b"], &["c"], &["d"]]),
        ]);
        assert_eq!(c.rank(&abcd()), ids(&["d", "c", "b", "a"]));
    }

    #[test]
    fn each_policy_is_asked_once() {
        let p1 = Fixed::new(&[&["a", "b"], &["c", "d"]]);
        let p2 = Fixed::new(&[&["d", "b"], &["c", "a"]]);
        let c = chain(vec![p1.clone(), p2.clone()]);
        c.tiers(&abcd());
        assert_eq!(p1.calls.load(Ordering::Relaxed), 1);
        assert_eq!(p2.calls.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn empty_chain_is_member_id_order() {
        let c = chain(vec![]);
        let mut inp = abcd();
        inp.candidates.reverse();
        assert_eq!(c.tiers(&inp), tiers(&[&["a", "b", "c", "d"]]));
        assert!(c.tiers(&input(vec![])).is_empty());
    }

    #[test]
    fn misbehaving_element_cannot_drop_or_repeat_candidates() {
        // Leaves out a and c, names an unknown "zz", repeats d in a worse tier.
        let c = chain(vec![
            Fixed::new(&[&["zz", "d"], &["b", "d"]]),
            Fixed::new(&[&["c"], &["a"]]),
        ]);
        assert_eq!(c.tiers(&abcd()), tiers(&[&["d"], &["b"], &["c"], &["a"]]));
    }

    #[test]
    fn duplicate_candidates_are_ranked_once() {
        let inp = input(vec![cand("b"), cand("a"), cand("b")]);
        assert_eq!(chain(vec![]).rank(&inp), ids(&["a", "b"]));
    }

    #[test]
    fn nested_chain_refines_like_a_flat_one() {
        let p1 = Fixed::new(&[&["a", "b", "c"], &["d"]]);
        let p2 = Fixed::new(&[&["c", "b"], &["a", "d"]]);
        let p3 = Fixed::new(&[&["b"], &["a", "c", "d"]]);
        let flat = chain(vec![p1.clone(), p2.clone(), p3.clone()]);
        let nested = chain(vec![p1, Arc::new(chain(vec![p2, p3]))]);
        assert_eq!(
            flat.tiers(&abcd()),
            tiers(&[&["b"], &["c"], &["a"], &["d"]])
        );
        assert_eq!(nested.tiers(&abcd()), flat.tiers(&abcd()));
    }

    /// anti-affinity, then hardware-weight, then oldest-running, on real policies.
    #[test]
    fn built_in_chain_is_lexicographic_and_deterministic() {
        let mut cands = Vec::new();
        for i in 0..60u32 {
            let mut c = cand(&format!("n{i:02}"));
            c.hardware = Hardware {
                cpus: i % 3,
                memory_bytes: 0,
                weight: None,
            };
            c.started_at_ms = 1_000 + u64::from(i % 4);
            cands.push(c);
        }
        let mut inp = input(cands);
        std::sync::Arc::make_mut(&mut inp.leaders).insert("ingest".into(), NodeId::new("n02"));
        std::sync::Arc::make_mut(&mut inp.leaders).insert("billing".into(), NodeId::new("n05"));
        let c = chain(vec![
            Arc::new(AntiAffinity::new(AntiAffinityConfig {
                avoid_groups: vec!["ingest".into(), "billing".into()],
                avoid_labels: Default::default(),
            })),
            Arc::new(HardwareWeight),
            Arc::new(OldestRunning),
        ]);
        let ranking = assert_deterministic(&c, &inp);
        // n02 and n05 lead avoided groups: they rank last. Both have 2 cpus; n05 started at
        // 1001, n02 at 1002, so n05 comes first.
        assert_eq!(&ranking[58..], &ids(&["n05", "n02"])[..]);
        // The best: cpus 2 (i % 3 == 2), earliest start (i % 4 == 0), lowest id: i = 8.
        assert_eq!(ranking[0], MemberId::new("n08", 0));
        // Check the whole order against a direct sort on the tuple.
        let aa = ["n02", "n05"];
        let mut expected: Vec<&baton_core::Candidate> = inp.candidates.iter().collect();
        expected.sort_by_key(|c| {
            (
                aa.contains(&c.member.node.as_str()),
                std::cmp::Reverse(c.hardware.cpus),
                c.started_at_ms,
                c.member.clone(),
            )
        });
        let expected: Vec<MemberId> = expected.into_iter().map(|c| c.member.clone()).collect();
        assert_eq!(ranking, expected);
    }

    #[test]
    fn debug_lists_element_names() {
        let c = chain(vec![Arc::new(HardwareWeight), Arc::new(OldestRunning)]);
        assert_eq!(
            format!("{c:?}"),
            r#"Chain(["hardware-weight", "oldest-running"])"#
        );
    }
}
