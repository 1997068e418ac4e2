//! Helpers for the unit tests: candidate builders and a tiny seeded shuffle.

use baton_core::{Candidate, ElectionInput, Hardware, LeaderPolicy, MemberId};

/// A candidate on `node` (seq 0) with nothing special about it.
pub(crate) fn cand(node: &str) -> Candidate {
    Candidate {
        member: MemberId::new(node, 0),
        started_at_ms: 1_000,
        incarnation: 1,
        hardware: Hardware::default(),
        labels: Default::default(),
        services: vec![],
    }
}

/// An input for group `g` with these candidates.
pub(crate) fn input(candidates: Vec<Candidate>) -> ElectionInput {
    ElectionInput {
        group: "g".into(),
        candidates,
        incumbent: None,
        leaders: Default::default(),
    }
}

/// Member ids `node#0` for each name.
pub(crate) fn ids(nodes: &[&str]) -> Vec<MemberId> {
    nodes.iter().map(|n| MemberId::new(*n, 0)).collect()
}

/// Tiers of `node#0` ids.
pub(crate) fn tiers(t: &[&[&str]]) -> Vec<Vec<MemberId>> {
    t.iter().map(|tier| ids(tier)).collect()
}

/// splitmix64: a tiny deterministic RNG, good enough for shuffles.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Fisher–Yates.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Asserts that `policy` gives the same ranking and tiers for several shuffles of `input`
/// (and for the reversed input), and that `rank` is the flattened `tiers`. Returns the ranking.
pub(crate) fn assert_deterministic(
    policy: &dyn LeaderPolicy,
    input: &ElectionInput,
) -> Vec<MemberId> {
    let ranking = policy.rank(input);
    let tiers = policy.tiers(input);
    assert_eq!(ranking, baton_core::ranking_from_tiers(tiers.clone()));
    assert_eq!(ranking.len(), input.candidates.len(), "not a permutation");
    let mut reversed = input.clone();
    reversed.candidates.reverse();
    assert_eq!(policy.rank(&reversed), ranking, "reversed input");
    for seed in 1..=8 {
        let mut shuffled = input.clone();
        Rng::new(seed).shuffle(&mut shuffled.candidates);
        assert_eq!(policy.rank(&shuffled), ranking, "seed {seed}");
        assert_eq!(policy.tiers(&shuffled), tiers, "seed {seed}");
    }
    ranking
}
