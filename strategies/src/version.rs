//! `oldest-version` and `newest-version`: rank by the software version each node announces
//! (`[node] version`), for rolling upgrades.

use crate::tiers::tiers_by_key;
use baton_core::{Candidate, ElectionInput, MemberId, Version};
use std::cmp::Reverse;

/// The version as semver *precedence* sees it: build metadata (`+build.5`) does not count, so
/// `1.4.2+a` and `1.4.2+b` are the same release and tie.
fn precedence(v: &Version) -> Version {
    Version {
        build: Default::default(),
        ..v.clone()
    }
}

/// The one ranking of both policies: candidates in tiers by the semver precedence of their
/// version, ordered by `direction` (the identity: lowest first; [`Reverse`]: highest first),
/// and candidates without a version in a last tier of their own whatever the direction.
fn by_version<K: Ord>(
    input: &ElectionInput,
    direction: impl Fn(Version) -> K,
) -> Vec<Vec<MemberId>> {
    // `None` sorts after `Some` through the leading flag.
    tiers_by_key(input, |c: &Candidate| {
        let release = c.version.as_ref().map(|v| direction(precedence(v)));
        (release.is_none(), release)
    })
}

/// Ranks the lowest announced version first: during a rolling upgrade the leader stays on the
/// old release until the last node running it is upgraded (or leaves), and leadership then
/// moves to the new release once.
///
/// Versions compare by semver precedence: `1.9.0 < 1.10.0`, a pre-release below its release
/// (`2.0.0-rc.1 < 2.0.0`), build metadata ignored. Candidates on the same version tie (a
/// chain's next policy breaks the tie — `policy = ["oldest-version", "oldest-running"]` —
/// else the member id). **Candidates without a version rank after every candidate with one**,
/// in one tier of their own: a node not configured with a version is not taken for the oldest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OldestVersion;

impl OldestVersion {
    /// The policy's name in config: `"oldest-version"`.
    pub const NAME: &'static str = "oldest-version";

    /// Its ranking as tiers of equally good candidates (what `LeaderPolicy::tiers` returns).
    fn tiers_of(&self, input: &ElectionInput) -> Vec<Vec<MemberId>> {
        by_version(input, |v| v)
    }
}

crate::tiers::tiered_policy!(OldestVersion, reads_other_groups: |_| false);

/// Ranks the highest announced version first: leadership moves to the new release as soon as
/// one node runs it (for a leader that must run the newest code, e.g. to write a new format).
///
/// The same comparison as [`OldestVersion`] reversed; candidates without a version also rank
/// after every candidate with one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewestVersion;

impl NewestVersion {
    /// The policy's name in config: `"newest-version"`.
    pub const NAME: &'static str = "newest-version";

    /// Its ranking as tiers of equally good candidates (what `LeaderPolicy::tiers` returns).
    fn tiers_of(&self, input: &ElectionInput) -> Vec<Vec<MemberId>> {
        by_version(input, Reverse)
    }
}

crate::tiers::tiered_policy!(NewestVersion, reads_other_groups: |_| false);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_deterministic, cand, ids, input, started, tiers};
    use crate::{Chain, OldestRunning};
    use baton_core::LeaderPolicy;
    use std::sync::Arc;

    fn on(node: &str, version: Option<&str>) -> Candidate {
        Candidate {
            version: version.map(|v| Version::parse(v).unwrap()),
            ..cand(node)
        }
    }

    /// What one case shows, `(node, version)` of each candidate, and the tiers of
    /// [`OldestVersion`] and of [`NewestVersion`] for them.
    type Case = (
        &'static str,
        &'static [(&'static str, Option<&'static str>)],
        &'static [&'static [&'static str]],
        &'static [&'static [&'static str]],
    );

    #[test]
    fn both_directions_rank_by_semver_precedence_with_members_without_a_version_last() {
        let cases: &[Case] = &[
            (
                "the lowest release first, equal releases tie",
                &[
                    ("a", Some("1.1.0")),
                    ("b", Some("1.0.0")),
                    ("c", Some("1.1.0")),
                ],
                &[&["b"], &["a", "c"]],
                &[&["a", "c"], &["b"]],
            ),
            (
                "semver precedence, not text: pre-releases below their release",
                &[
                    ("a", Some("1.10.0")),
                    ("b", Some("1.9.0")),
                    ("c", Some("2.0.0-rc.1")),
                    ("d", Some("2.0.0")),
                    ("e", Some("2.0.0-alpha")),
                ],
                &[&["b"], &["a"], &["e"], &["c"], &["d"]],
                &[&["d"], &["c"], &["e"], &["a"], &["b"]],
            ),
            (
                "build metadata does not split a release",
                &[
                    ("a", Some("1.4.2+build.9")),
                    ("b", Some("1.4.2+build.1")),
                    ("c", Some("1.4.3")),
                ],
                &[&["a", "b"], &["c"]],
                &[&["c"], &["a", "b"]],
            ),
            (
                "members without a version rank after those with one",
                &[
                    ("a", None),
                    ("b", Some("3.0.0")),
                    ("c", None),
                    ("d", Some("1.0.0")),
                ],
                &[&["d"], &["b"], &["a", "c"]],
                &[&["b"], &["d"], &["a", "c"]],
            ),
            (
                "nobody announced one: one tier, member-id order",
                &[("b", None), ("a", None)],
                &[&["a", "b"]],
                &[&["a", "b"]],
            ),
        ];
        for (what, versions, oldest, newest) in cases {
            let inp = input(versions.iter().map(|&(node, v)| on(node, v)).collect());
            assert_eq!(OldestVersion.tiers(&inp), tiers(oldest), "oldest: {what}");
            assert_eq!(NewestVersion.tiers(&inp), tiers(newest), "newest: {what}");
            assert_deterministic(&OldestVersion, &inp);
            assert_deterministic(&NewestVersion, &inp);
        }
    }

    #[test]
    fn in_a_chain_oldest_running_breaks_a_version_tie() {
        let chain = Chain::new(vec![
            Arc::new(OldestVersion) as Arc<dyn LeaderPolicy>,
            Arc::new(OldestRunning),
        ]);
        let with = |node: &str, v: &str, at: u64| Candidate {
            version: Some(Version::parse(v).unwrap()),
            ..started(node, at)
        };
        // The rolling-upgrade story: a (1.0) leads; once it restarts as 1.1 (and so started
        // last), the longest-running 1.1 node leads.
        let before = input(vec![
            with("a", "1.0.0", 100),
            with("b", "1.1.0", 300),
            with("c", "1.1.0", 200),
        ]);
        assert_eq!(chain.rank(&before), ids(&["a", "c", "b"]));
        let after = input(vec![
            with("a", "1.1.0", 900),
            with("b", "1.1.0", 300),
            with("c", "1.1.0", 200),
        ]);
        assert_eq!(chain.rank(&after), ids(&["c", "b", "a"]));
    }

    #[test]
    fn shuffled_input_ranks_the_same() {
        let versions = ["1.0.0", "1.2.0", "0.9.1", "1.2.0-beta.2"];
        let inp = input(
            (0..40)
                .map(|i| {
                    let v = (i % 5 != 4).then(|| versions[i % 4]);
                    on(&format!("n{i:02}"), v)
                })
                .collect(),
        );
        let oldest = assert_deterministic(&OldestVersion, &inp);
        assert_eq!(oldest[0], MemberId::new("n02", 0));
        let newest = assert_deterministic(&NewestVersion, &inp);
        assert_eq!(newest[0], MemberId::new("n01", 0));
    }
}
