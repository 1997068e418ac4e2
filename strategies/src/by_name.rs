//! The by-name table: turning a group's `policy = …` into a [`LeaderPolicy`].

use crate::{AntiAffinity, Balanced, Chain, HardwareWeight, OldestRunning};
use baton_core::config::{Config, ConfigError, GroupConfig, PluginSpec, PolicySpec};
use baton_core::{GroupName, LeaderPolicy};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// The names `policy = "…"` accepts, in the order error messages list them.
const KNOWN: &[&str] = &[
    OldestRunning::NAME,
    HardwareWeight::NAME,
    AntiAffinity::NAME,
    Balanced::NAME,
    Chain::NAME,
];

/// The built-in policy names: `oldest-running`, `hardware-weight`, `anti-affinity`, `balanced`,
/// `chain`.
///
/// `chain` is listed because it is built in, but in config it is written as a list
/// (`policy = ["anti-affinity", "oldest-running"]`), never by name.
pub fn known_policies() -> &'static [&'static str] {
    KNOWN
}

/// A group's policy could not be built. Names the group and the field:
///
/// ```text
/// group "tracked": policy[1]: unknown policy "olderst-running"; known policies: oldest-running, hardware-weight, anti-affinity, balanced, chain
/// ```
///
/// Converts into a [`ConfigError`] (field `group "tracked".policy[1]`) so callers can attach the
/// config file with [`ConfigError::in_file`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("group {group:?}: {field}: {kind}")]
pub struct PolicyError {
    /// The group's name.
    pub group: GroupName,
    /// The field inside the group: `policy`, `policy[1]` for a chain element, `policy[1][0]`
    /// inside a nested chain.
    pub field: String,
    /// What was wrong.
    pub kind: PolicyErrorKind,
}

impl PolicyError {
    /// The field as a config path: `group "tracked".policy[1]`.
    pub fn config_field(&self) -> String {
        format!("group {:?}.{}", self.group, self.field)
    }
}

impl From<PolicyError> for ConfigError {
    fn from(e: PolicyError) -> ConfigError {
        ConfigError::field(e.config_field(), e.kind.to_string())
    }
}

/// What was wrong with a policy spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyErrorKind {
    /// A name that is not a built-in policy.
    #[error("unknown policy {name:?}; known policies: {}", KnownList)]
    UnknownPolicy {
        /// The name as written.
        name: String,
    },
    /// `policy = "chain"`: a chain needs its elements.
    #[error(
        "\"chain\" needs a list of policies, not the name alone: write e.g. policy = [\"anti-affinity\", \"oldest-running\"] (best first)"
    )]
    ChainByName,
    /// A chain with no elements.
    #[error("an empty policy chain; name at least one policy")]
    EmptyChain,
    /// A plugin policy that could not be provided.
    #[error("plugin {}: {reason}", path.display())]
    Plugin {
        /// The plugin's path.
        path: PathBuf,
        /// Why it could not be loaded.
        reason: String,
    },
}

/// Displays [`KNOWN`] comma-separated.
struct KnownList;

impl fmt::Display for KnownList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&KNOWN.join(", "))
    }
}

/// Where in the config a spec sits, for error messages.
struct Field<'a> {
    group: &'a GroupName,
    path: String,
}

impl Field<'_> {
    fn error(&self, kind: PolicyErrorKind) -> PolicyError {
        PolicyError {
            group: self.group.clone(),
            field: self.path.clone(),
            kind,
        }
    }

    fn element(&self, i: usize) -> Self {
        Field {
            group: self.group,
            path: format!("{}[{i}]", self.path),
        }
    }
}

/// Builds the policy a group's config asks for.
///
/// - no `policy`: [`OldestRunning`];
/// - `policy = "name"`: that built-in (`anti-affinity` takes the group's
///   `[group.anti-affinity]` settings; without them nobody is avoided and all candidates tie);
/// - `policy = [ … ]`: a [`Chain`] of the elements, best first (elements may be lists too);
/// - `policy = { plugin = "…" }`: the plugin, loaded with baton-core's plugin host (feature
///   `plugin`, on by default; without it an error that says so).
///
/// Every error names the group and the field.
///
/// ```
/// use baton_core::LeaderPolicy;
/// use baton_core::config::{GroupConfig, PolicySpec};
/// use baton_strategies::build_policy;
///
/// let mut group = GroupConfig::new("tracked");
/// assert_eq!(build_policy(&group)?.name(), "oldest-running");
///
/// group.policy = Some(PolicySpec::Chain(vec![
///     PolicySpec::Named("anti-affinity".into()),
///     PolicySpec::Named("hardware-weight".into()),
/// ]));
/// assert_eq!(build_policy(&group)?.name(), "chain");
///
/// group.policy = Some(PolicySpec::Chain(vec![
///     PolicySpec::Named("anti-affinity".into()),
///     PolicySpec::Named("olderst-running".into()),
/// ]));
/// let err = build_policy(&group).err().expect("a typo is an error");
/// assert_eq!(
///     err.to_string(),
///     "group \"tracked\": policy[1]: unknown policy \"olderst-running\"; \
///      known policies: oldest-running, hardware-weight, anti-affinity, balanced, chain"
/// );
/// # Ok::<(), baton_strategies::PolicyError>(())
/// ```
pub fn build_policy(group: &GroupConfig) -> Result<Arc<dyn LeaderPolicy>, PolicyError> {
    let field = Field {
        group: &group.name,
        path: "policy".to_string(),
    };
    match &group.policy {
        None => Ok(Arc::new(OldestRunning)),
        Some(spec) => build_spec(spec, group, &field),
    }
}

/// Builds the policy of every `[[group]]`, keyed by group name. Stops at the first error.
pub fn policies_for(
    config: &Config,
) -> Result<BTreeMap<GroupName, Arc<dyn LeaderPolicy>>, PolicyError> {
    config
        .groups
        .iter()
        .map(|g| Ok((g.name.clone(), build_policy(g)?)))
        .collect()
}

fn build_spec(
    spec: &PolicySpec,
    group: &GroupConfig,
    field: &Field<'_>,
) -> Result<Arc<dyn LeaderPolicy>, PolicyError> {
    match spec {
        PolicySpec::Named(name) => build_named(name, group, field),
        PolicySpec::Chain(items) => {
            if items.is_empty() {
                return Err(field.error(PolicyErrorKind::EmptyChain));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| build_spec(item, group, &field.element(i)))
                .collect::<Result<Chain, _>>()
                .map(|chain| Arc::new(chain) as Arc<dyn LeaderPolicy>)
        }
        PolicySpec::Plugin(plugin) => build_plugin(plugin, field),
    }
}

fn build_named(
    name: &str,
    group: &GroupConfig,
    field: &Field<'_>,
) -> Result<Arc<dyn LeaderPolicy>, PolicyError> {
    Ok(match name {
        OldestRunning::NAME => Arc::new(OldestRunning),
        HardwareWeight::NAME => Arc::new(HardwareWeight),
        AntiAffinity::NAME => Arc::new(AntiAffinity::new(
            group.anti_affinity.clone().unwrap_or_default(),
        )),
        Balanced::NAME => Arc::new(Balanced),
        Chain::NAME => return Err(field.error(PolicyErrorKind::ChainByName)),
        _ => {
            return Err(field.error(PolicyErrorKind::UnknownPolicy {
                name: name.to_string(),
            }));
        }
    })
}

/// `policy = { plugin = "…", config = … }`.
///
/// Loads `spec.plugin` with baton-core's plugin host (feature `plugin`), handing it
/// `spec.config`; its errors become [`PolicyErrorKind::Plugin`] naming the field and the path.
fn build_plugin(
    spec: &PluginSpec,
    field: &Field<'_>,
) -> Result<Arc<dyn LeaderPolicy>, PolicyError> {
    #[cfg(feature = "plugin")]
    {
        match baton_core::plugin::load_spec(spec) {
            Ok(policy) => Ok(Arc::new(policy)),
            Err(e) => {
                // The host's messages start with "policy plugin <path>: "; this error already
                // names the path, so keep only the reason.
                let text = e.to_string();
                let prefix = format!("policy plugin {}: ", spec.plugin.display());
                let reason = text.strip_prefix(&prefix).unwrap_or(&text).to_string();
                Err(field.error(PolicyErrorKind::Plugin {
                    path: spec.plugin.clone(),
                    reason,
                }))
            }
        }
    }
    #[cfg(not(feature = "plugin"))]
    {
        Err(field.error(PolicyErrorKind::Plugin {
            path: spec.plugin.clone(),
            reason: "plugin policies are not built into this binary (enable feature `plugin` of baton-strategies)".to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(policy: Option<PolicySpec>) -> GroupConfig {
        GroupConfig {
            policy,
            ..GroupConfig::new("tracked")
        }
    }

    fn named(n: &str) -> PolicySpec {
        PolicySpec::Named(n.into())
    }

    #[test]
    fn known_policies_are_the_five_built_ins() {
        assert_eq!(
            known_policies(),
            [
                "oldest-running",
                "hardware-weight",
                "anti-affinity",
                "balanced",
                "chain"
            ]
        );
    }

    #[test]
    fn every_known_name_but_chain_builds_itself() {
        for name in known_policies().iter().filter(|n| **n != "chain") {
            let p = build_policy(&group(Some(named(name)))).expect(name);
            assert_eq!(p.name(), *name);
        }
    }

    #[test]
    fn no_policy_is_oldest_running() {
        assert_eq!(build_policy(&group(None)).unwrap().name(), "oldest-running");
    }

    #[test]
    fn unknown_name_names_the_field_and_lists_known_ones() {
        let e = build_policy(&group(Some(named("olderst-running"))))
            .err()
            .unwrap();
        assert_eq!(e.group, "tracked");
        assert_eq!(e.field, "policy");
        assert_eq!(
            e.kind,
            PolicyErrorKind::UnknownPolicy {
                name: "olderst-running".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "group \"tracked\": policy: unknown policy \"olderst-running\"; known policies: \
             oldest-running, hardware-weight, anti-affinity, balanced, chain"
        );
    }

    #[test]
    fn chain_element_errors_name_the_index() {
        let spec = PolicySpec::Chain(vec![
            named("anti-affinity"),
            PolicySpec::Chain(vec![named("hardware-weight"), named("nope")]),
        ]);
        let e = build_policy(&group(Some(spec))).err().unwrap();
        assert_eq!(e.field, "policy[1][1]");
        assert!(
            e.to_string()
                .starts_with("group \"tracked\": policy[1][1]: unknown policy \"nope\""),
            "{e}"
        );
    }

    #[test]
    fn chain_by_name_asks_for_a_list() {
        let e = build_policy(&group(Some(named("chain")))).err().unwrap();
        assert_eq!(e.kind, PolicyErrorKind::ChainByName);
        let s = e.to_string();
        assert!(
            s.starts_with("group \"tracked\": policy: \"chain\" needs a list"),
            "{s}"
        );
    }

    #[test]
    fn empty_chain_is_an_error() {
        let e = build_policy(&group(Some(PolicySpec::Chain(vec![]))))
            .err()
            .unwrap();
        assert_eq!(e.kind, PolicyErrorKind::EmptyChain);
    }

    #[test]
    fn a_missing_plugin_names_the_field_and_the_path() {
        let spec = PolicySpec::Chain(vec![
            named("oldest-running"),
            PolicySpec::Plugin(PluginSpec {
                plugin: "/opt/libx.so".into(),
                config: None,
            }),
        ]);
        let e = build_policy(&group(Some(spec))).err().unwrap();
        assert_eq!(e.field, "policy[1]");
        assert!(
            matches!(&e.kind, PolicyErrorKind::Plugin { path, .. } if path == &PathBuf::from("/opt/libx.so"))
        );
        let text = e.to_string();
        assert!(
            text.starts_with("group \"tracked\": policy[1]: plugin /opt/libx.so: "),
            "{text}"
        );
        // With the `plugin` feature the host looks for the file; without it, it says so.
        if cfg!(feature = "plugin") {
            assert!(text.ends_with(": no such file"), "{text}");
        } else {
            assert!(text.contains("not built into this binary"), "{text}");
        }
    }

    #[test]
    fn converts_into_a_config_error_with_the_field() {
        let e = build_policy(&group(Some(PolicySpec::Chain(vec![
            named("x"),
            named("y"),
        ]))))
        .err()
        .unwrap();
        let ce = ConfigError::from(e).in_file(Some(std::path::Path::new("/etc/baton.toml")));
        assert_eq!(ce.field.as_deref(), Some("group \"tracked\".policy[0]"));
        assert_eq!(
            ce.to_string(),
            "/etc/baton.toml: group \"tracked\".policy[0]: unknown policy \"x\"; known policies: \
             oldest-running, hardware-weight, anti-affinity, balanced, chain"
        );
    }

    #[test]
    fn one_element_chain_is_a_chain_of_one() {
        let p = build_policy(&group(Some(PolicySpec::Chain(vec![named(
            "hardware-weight",
        )]))))
        .unwrap();
        assert_eq!(p.name(), "chain");
    }
}
