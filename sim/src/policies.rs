//! The policies a simulated group can use ([`PolicyKind`]): stand-ins for the strategies
//! crate's, small enough that the simulator depends on `baton-core` alone.

use crate::config::PolicyKind;
use baton_core::{ByMemberId, Candidate, ElectionInput, LeaderPolicy, MemberId};
use std::cmp::Reverse;
use std::sync::Arc;

impl PolicyKind {
    /// The policy object the engines get.
    pub(crate) fn build(self) -> Arc<dyn LeaderPolicy> {
        match self {
            PolicyKind::MemberId => Arc::new(ByMemberId),
            PolicyKind::OldestRunning => Arc::new(OldestRunning),
            PolicyKind::MostCpus => Arc::new(MostCpus),
            PolicyKind::FewestLed => Arc::new(FewestLed),
        }
    }
}

/// The candidates ordered by `key`, ties broken by member id (as every ranking ends).
fn rank_by<K: Ord>(input: &ElectionInput, key: impl Fn(&Candidate) -> K) -> Vec<MemberId> {
    let mut c: Vec<_> = input.candidates.iter().collect();
    c.sort_by(|a, b| key(a).cmp(&key(b)).then(a.member.cmp(&b.member)));
    c.into_iter().map(|c| c.member.clone()).collect()
}

/// Earliest `started_at_ms` first.
struct OldestRunning;

impl LeaderPolicy for OldestRunning {
    fn name(&self) -> &str {
        "sim-oldest-running"
    }
    fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
        rank_by(input, |c| c.started_at_ms)
    }
    // The engine's cached per-group path; `MostCpus` keeps the default (re-ranked with every
    // leader change), so the simulation runs both.
    fn reads_other_groups(&self) -> bool {
        false
    }
}

/// Most CPUs first.
struct MostCpus;

impl LeaderPolicy for MostCpus {
    fn name(&self) -> &str {
        "sim-most-cpus"
    }
    fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
        rank_by(input, |c| Reverse(c.hardware.cpus))
    }
}

/// Fewest groups led first, not counting the group being ranked (what `balanced` does).
struct FewestLed;

impl LeaderPolicy for FewestLed {
    fn name(&self) -> &str {
        "sim-fewest-led"
    }
    fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
        rank_by(input, |c| {
            let this_group = usize::from(input.incumbent.as_ref() == Some(&c.member));
            c.leads.saturating_sub(this_group)
        })
    }
    fn reads_other_groups(&self) -> bool {
        true
    }
}
