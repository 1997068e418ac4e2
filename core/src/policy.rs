//! The [`LeaderPolicy`] trait: which instance of a group should lead.

use crate::types::{ElectionInput, MemberId};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Decides which candidate of a group leads, by ranking them best-first.
///
/// A policy must be **pure and deterministic**: every node ranks the same input the same way,
/// or nodes disagree about who should lead (elections still stay safe, but slower). It must not
/// block, do I/O or use tokio. Ties must end in a total order — use the member id last.
///
/// The engine returns a ranking to the protocol so that when the favourite is unreachable the
/// next one takes over without another round. A ranking that is not a permutation of the
/// candidates is repaired by [`normalize_ranking`] (unknown ids dropped, duplicates dropped,
/// missing candidates appended in member-id order), so a buggy policy cannot stall an election.
///
/// ```
/// use baton_core::{Candidate, ElectionInput, Incarnation, LeaderPolicy, MemberId};
///
/// /// Prefers the candidate with the most CPUs.
/// struct MostCpus;
///
/// impl LeaderPolicy for MostCpus {
///     fn name(&self) -> &str { "most-cpus" }
///     fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
///         let mut c: Vec<&Candidate> = input.candidates.iter().collect();
///         c.sort_by(|a, b| b.hardware.cpus.cmp(&a.hardware.cpus).then(a.member.cmp(&b.member)));
///         c.into_iter().map(|c| c.member.clone()).collect()
///     }
/// }
///
/// let mut input = ElectionInput::default();
/// for (node, cpus) in [("a", 2), ("b", 8)] {
///     input.candidates.push(Candidate {
///         member: MemberId::new(node, 0),
///         started_at_ms: 0,
///         incarnation: Incarnation(1),
///         hardware: baton_core::Hardware { cpus, memory_bytes: 0, weight: None },
///         labels: Default::default(),
///         services: [].into(),
///         leads: 0,
///         version: None,
///     });
/// }
/// assert_eq!(MostCpus.rank(&input)[0], MemberId::new("b", 0));
/// ```
pub trait LeaderPolicy: Send + Sync {
    /// A short name for logs and errors (`"oldest-running"`).
    fn name(&self) -> &str;

    /// The candidates of `input`, best first. Every candidate should appear exactly once.
    fn rank(&self, input: &ElectionInput) -> Vec<MemberId>;

    /// The ranking as tiers of equally good candidates, best tier first.
    ///
    /// Policies that know about ties (the built-in ones) override this so that a `chain` can let
    /// its next policy break them. The default treats the ranking as a strict order.
    fn tiers(&self, input: &ElectionInput) -> Vec<Vec<MemberId>> {
        self.rank(input).into_iter().map(|m| vec![m]).collect()
    }

    /// Whether the ranking reads other groups' leaderships: [`Candidate::leads`] or
    /// [`ElectionInput::leaders`] (as `balanced` and `anti-affinity` do).
    ///
    /// The default, `true`, is always right. A policy that reads neither may return `false`:
    /// the engine then ranks a group again only when its own candidates or leader change, not
    /// whenever the leader of any group does — at a cold start of a thousand groups, a
    /// thousand policy calls instead of about a million. Such a policy is given `leads = 0`
    /// and an empty `leaders`.
    ///
    /// [`Candidate::leads`]: crate::Candidate::leads
    fn reads_other_groups(&self) -> bool {
        true
    }
}

/// A shared or boxed policy is the policy it points to.
macro_rules! forward_policy {
    ($($pointer:ident),+) => {$(
        impl<P: LeaderPolicy + ?Sized> LeaderPolicy for $pointer<P> {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
                (**self).rank(input)
            }
            fn tiers(&self, input: &ElectionInput) -> Vec<Vec<MemberId>> {
                (**self).tiers(input)
            }
            fn reads_other_groups(&self) -> bool {
                (**self).reads_other_groups()
            }
        }
    )+};
}
forward_policy!(Arc, Box);

/// Flattens tiers into a ranking, ordering each tier by member id.
pub fn ranking_from_tiers(tiers: Vec<Vec<MemberId>>) -> Vec<MemberId> {
    tiers
        .into_iter()
        .flat_map(|mut tier| {
            tier.sort();
            tier
        })
        .collect()
}

/// Repairs a policy's answer into a permutation of the input's candidates: ids that are not
/// candidates and repeats are dropped, candidates the policy left out are appended in member-id
/// order. Returns the ranking and whether anything had to be repaired.
pub fn normalize_ranking(input: &ElectionInput, ranking: Vec<MemberId>) -> (Vec<MemberId>, bool) {
    let known: BTreeSet<&MemberId> = input.candidates.iter().map(|c| &c.member).collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(input.candidates.len());
    let mut repaired = false;
    for m in ranking {
        if known.contains(&m) && !seen.contains(&m) {
            seen.insert(m.clone());
            out.push(m);
        } else {
            repaired = true;
        }
    }
    let mut missing: Vec<&MemberId> = known.into_iter().filter(|m| !seen.contains(*m)).collect();
    if !missing.is_empty() {
        repaired = true;
        missing.sort();
        out.extend(missing.into_iter().cloned());
    }
    (out, repaired)
}

/// The fallback policy: member id order. Used when a group names no policy, and as the rule an
/// election falls back to when a policy misbehaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByMemberId;

impl LeaderPolicy for ByMemberId {
    fn name(&self) -> &str {
        "member-id"
    }
    fn reads_other_groups(&self) -> bool {
        false
    }
    fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
        let mut ids: Vec<MemberId> = input.candidates.iter().map(|c| c.member.clone()).collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An election in group `g` among member 0 of each of `nodes`.
    pub(crate) fn input(nodes: &[&str]) -> ElectionInput {
        ElectionInput::of_nodes("g", nodes)
    }

    #[test]
    fn normalize_drops_unknown_and_duplicates_and_appends_missing() {
        let inp = input(&["a", "b", "c"]);
        let (r, repaired) = normalize_ranking(
            &inp,
            vec![
                MemberId::new("c", 0),
                MemberId::new("zz", 0),
                MemberId::new("c", 0),
            ],
        );
        assert!(repaired);
        assert_eq!(
            r,
            vec![
                MemberId::new("c", 0),
                MemberId::new("a", 0),
                MemberId::new("b", 0)
            ]
        );
        let (r2, repaired2) = normalize_ranking(&inp, r.clone());
        assert!(!repaired2);
        assert_eq!(r2, r);
    }

    #[test]
    fn tiers_flatten_by_member_id() {
        let r = ranking_from_tiers(vec![
            vec![MemberId::new("b", 0), MemberId::new("a", 0)],
            vec![MemberId::new("c", 0)],
        ]);
        assert_eq!(
            r,
            vec![
                MemberId::new("a", 0),
                MemberId::new("b", 0),
                MemberId::new("c", 0)
            ]
        );
    }
}
