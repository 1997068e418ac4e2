//! # baton-strategies
//!
//! The built-in leader policies of baton, and the by-name table the config and the `baton`
//! binary use to turn `policy = …` into one.
//!
//! `baton-core` defines the [`LeaderPolicy`] trait (rank a group's candidates best-first) and
//! the config types; this crate provides the policies everyone gets without writing one:
//!
//! | name | type | best first |
//! | --- | --- | --- |
//! | `oldest-running` (default) | [`OldestRunning`] | earliest `started_at_ms` |
//! | `hardware-weight` | [`HardwareWeight`] | configured weight, else CPUs + memory |
//! | `anti-affinity` | [`AntiAffinity`] | nodes not leading `avoid_groups`, without `avoid_labels` |
//! | `balanced` | [`Balanced`] | the node leading the fewest groups |
//! | `oldest-version` | [`OldestVersion`] | the lowest `[node] version` (semver); none last |
//! | `newest-version` | [`NewestVersion`] | the highest `[node] version` (semver); none last |
//! | a list `[…]` | [`Chain`] | the first decides, the next break its ties |
//!
//! and [`build_policy`] / [`policies_for`], which build them from a group's config with errors
//! that name the group and field ([`PolicyError`]).
//!
//! Every policy here is pure and deterministic: the same input, in any candidate order, gives
//! the same ranking on every node. Each reports its ties through
//! [`LeaderPolicy::tiers`] so a [`Chain`] can let the next policy break them; what is still
//! tied at the end is ordered by member id.
//!
//! Custom policies (a user's crate or a plugin) implement the same trait; they can be put in a
//! [`Chain`] next to these.
#![warn(missing_docs)]

mod anti_affinity;
mod balanced;
mod by_name;
mod chain;
mod hardware_weight;
mod oldest_running;
mod tiers;
mod version;

#[cfg(test)]
mod test_support;

pub use anti_affinity::AntiAffinity;
pub use balanced::Balanced;
pub use by_name::{
    Policies, PolicyError, PolicyErrorKind, build_policy, known_policies, policies_for,
};
pub use chain::Chain;
pub use hardware_weight::HardwareWeight;
pub use oldest_running::OldestRunning;
pub use version::{NewestVersion, OldestVersion};

#[doc(no_inline)]
pub use baton_core::LeaderPolicy;
