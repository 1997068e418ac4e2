//! `anti-affinity`: keep leaderships apart.

use crate::tiers::tiers_by_key;
use baton_core::config::AntiAffinityConfig;
use baton_core::{Candidate, ElectionInput, MemberId, NodeId};
use std::collections::HashSet;

/// Prefers candidates that are not "in the way": two tiers, best first.
///
/// 1. candidates whose node leads none of `avoid_groups` (per `input.leaders`; the entry for
///    the group being ranked is ignored) **and** that carry none of `avoid_labels` (a label
///    counts when the candidate has the same key with the same value);
/// 2. everyone else.
///
/// It only ever *prefers*: when every candidate is avoided they all share one tier and the
/// group still gets a leader (a single-node setup works). With empty settings nobody is avoided
/// and all candidates tie. Inside a tier the member id decides — or, in a
/// [`Chain`](crate::Chain), the next policy.
///
/// ```
/// use baton_core::config::AntiAffinityConfig;
/// use baton_strategies::AntiAffinity;
///
/// // `[group.anti-affinity] avoid_groups = ["ingest"]`
/// let policy = AntiAffinity::new(AntiAffinityConfig {
///     avoid_groups: vec!["ingest".into()],
///     ..Default::default()
/// });
/// assert_eq!(policy.config().avoid_groups, ["ingest"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AntiAffinity {
    config: AntiAffinityConfig,
}

impl AntiAffinity {
    /// The policy's name in config: `"anti-affinity"`.
    pub const NAME: &'static str = "anti-affinity";

    /// A policy with these settings (a group's `[group.anti-affinity]`).
    pub fn new(config: AntiAffinityConfig) -> Self {
        AntiAffinity { config }
    }

    /// Its settings.
    pub fn config(&self) -> &AntiAffinityConfig {
        &self.config
    }

    /// The nodes leading one of `avoid_groups`, other than the group being ranked.
    fn avoided_nodes<'a>(&self, input: &'a ElectionInput) -> HashSet<&'a NodeId> {
        self.config
            .avoid_groups
            .iter()
            .filter(|g| **g != input.group)
            .filter_map(|g| input.leaders.get(g))
            .collect()
    }

    fn carries_avoided_label(&self, candidate: &Candidate) -> bool {
        self.config
            .avoid_labels
            .iter()
            .any(|(k, v)| candidate.labels.get(k) == Some(v))
    }
}

impl AntiAffinity {
    /// Its ranking as tiers of equally good candidates (what `LeaderPolicy::tiers` returns).
    fn tiers_of(&self, input: &ElectionInput) -> Vec<Vec<MemberId>> {
        let avoided_nodes = self.avoided_nodes(input);
        // `false` (not avoided) sorts before `true`.
        tiers_by_key(input, |c| {
            avoided_nodes.contains(c.node()) || self.carries_avoided_label(c)
        })
    }
}

crate::tiers::tiered_policy!(AntiAffinity, reads_other_groups: |_| true);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_deterministic, cand, ids, input, tiers};
    use baton_core::LeaderPolicy;

    fn avoid_groups(groups: &[&str]) -> AntiAffinity {
        AntiAffinity::new(AntiAffinityConfig {
            avoid_groups: groups.iter().map(|g| (*g).into()).collect(),
            avoid_labels: Default::default(),
        })
    }

    fn leaders(inp: &mut ElectionInput, pairs: &[(&str, &str)]) {
        for (g, n) in pairs {
            std::sync::Arc::make_mut(&mut inp.leaders).insert((*g).into(), NodeId::new(*n));
        }
    }

    #[test]
    fn nodes_leading_avoided_groups_rank_last() {
        let mut inp = input(vec![cand("a"), cand("b"), cand("c"), cand("d")]);
        leaders(
            &mut inp,
            &[("ingest", "a"), ("billing", "c"), ("other", "b")],
        );
        let p = avoid_groups(&["ingest", "billing"]);
        assert_eq!(p.tiers(&inp), tiers(&[&["b", "d"], &["a", "c"]]));
        assert_eq!(p.rank(&inp), ids(&["b", "d", "a", "c"]));
        assert_deterministic(&p, &inp);
    }

    #[test]
    fn the_ranked_groups_own_leader_entry_is_ignored() {
        let mut inp = input(vec![cand("a"), cand("b")]);
        // Group "g" is the one being ranked: its own leader must not be pushed down.
        leaders(&mut inp, &[("g", "a")]);
        let p = avoid_groups(&["g"]);
        assert_eq!(p.tiers(&inp), tiers(&[&["a", "b"]]));
    }

    #[test]
    fn all_excluded_still_ranks_everyone() {
        let mut inp = input(vec![cand("b"), cand("a")]);
        leaders(&mut inp, &[("x", "a"), ("y", "b")]);
        let p = avoid_groups(&["x", "y"]);
        assert_eq!(p.tiers(&inp), tiers(&[&["a", "b"]]));
        assert_eq!(p.rank(&inp), ids(&["a", "b"]));

        // A single node leading the avoided group is still elected.
        let mut solo = input(vec![cand("solo")]);
        leaders(&mut solo, &[("x", "solo")]);
        assert_eq!(p.rank(&solo), ids(&["solo"]));
    }

    #[test]
    fn avoid_labels_match_key_and_value() {
        let mut a = cand("a");
        a.labels.insert("zone".into(), "eu-1".into());
        let mut b = cand("b");
        b.labels.insert("zone".into(), "eu-2".into());
        let mut c = cand("c");
        c.labels.insert("disk".into(), "hdd".into());
        let d = cand("d");
        let inp = input(vec![a, b, c, d]);
        let p = AntiAffinity::new(AntiAffinityConfig {
            avoid_groups: vec![],
            avoid_labels: [
                ("zone".to_string(), "eu-1".to_string()),
                ("disk".to_string(), "hdd".to_string()),
            ]
            .into(),
        });
        // b has the key `zone` but another value: not avoided.
        assert_eq!(p.tiers(&inp), tiers(&[&["b", "d"], &["a", "c"]]));
        assert_deterministic(&p, &inp);
    }

    #[test]
    fn labels_and_groups_combine() {
        let mut a = cand("a");
        a.labels.insert("zone".into(), "eu-1".into());
        let mut inp = input(vec![a, cand("b"), cand("c")]);
        leaders(&mut inp, &[("ingest", "b")]);
        let p = AntiAffinity::new(AntiAffinityConfig {
            avoid_groups: vec!["ingest".into()],
            avoid_labels: [("zone".to_string(), "eu-1".to_string())].into(),
        });
        assert_eq!(p.tiers(&inp), tiers(&[&["c"], &["a", "b"]]));
    }

    #[test]
    fn empty_settings_tie_everyone() {
        let mut inp = input(vec![cand("c"), cand("a"), cand("b")]);
        leaders(&mut inp, &[("ingest", "a")]);
        let p = AntiAffinity::default();
        assert_eq!(p.tiers(&inp), tiers(&[&["a", "b", "c"]]));
    }
}
