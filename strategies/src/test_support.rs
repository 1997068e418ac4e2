//! Helpers for the unit tests: candidate builders and a seeded shuffle check.

use baton_core::{Candidate, ElectionInput, Hardware, LeaderPolicy, MemberId};

/// A candidate on `node` (seq 0) with nothing special about it.
pub(crate) fn cand(node: &str) -> Candidate {
    Candidate {
        member: MemberId::new(node, 0),
        started_at_ms: 1_000,
        incarnation: baton_core::Incarnation(1),
        hardware: Hardware::default(),
        labels: Default::default(),
        services: [].into(),
        leads: 0,
        version: None,
    }
}

/// A candidate on `node` that started at `at` (Unix ms).
pub(crate) fn started(node: &str, at: u64) -> Candidate {
    Candidate {
        started_at_ms: at,
        ..cand(node)
    }
}

/// A candidate on `node` whose node leads `n` groups.
pub(crate) fn leading(node: &str, n: usize) -> Candidate {
    Candidate {
        leads: n,
        ..cand(node)
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
        fastrand::Rng::with_seed(seed).shuffle(&mut shuffled.candidates);
        assert_eq!(policy.rank(&shuffled), ranking, "seed {seed}");
        assert_eq!(policy.tiers(&shuffled), tiers, "seed {seed}");
    }
    ranking
}

/// Asserts that `policy` ranks `input` in exactly the `expected` tiers (of `node#0` ids),
/// `rank` being their flattening, whatever the order of the candidates (see
/// [`assert_deterministic`]).
pub(crate) fn assert_tiers(policy: &dyn LeaderPolicy, input: &ElectionInput, expected: &[&[&str]]) {
    assert_eq!(policy.tiers(input), tiers(expected), "{}", policy.name());
    assert_deterministic(policy, input);
}
