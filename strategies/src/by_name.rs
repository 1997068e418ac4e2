//! The by-name table: turning a group's `policy = …` into a [`LeaderPolicy`].

use crate::{
    AntiAffinity, Balanced, Chain, HardwareWeight, NewestVersion, OldestRunning, OldestVersion,
};
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
    OldestVersion::NAME,
    NewestVersion::NAME,
    Chain::NAME,
];

/// The built-in policy names: `oldest-running`, `hardware-weight`, `anti-affinity`, `balanced`,
/// `oldest-version`, `newest-version`, `chain`.
///
/// `chain` is listed because it is built in, but in config it is written as a list
/// (`policy = ["anti-affinity", "oldest-running"]`), never by name.
pub fn known_policies() -> &'static [&'static str] {
    KNOWN
}

/// A group's policy could not be built. Names the group and the field:
///
/// ```text
/// group "tracked": policy[1]: unknown policy "olderst-running"; known policies: oldest-running, hardware-weight, anti-affinity, balanced, oldest-version, newest-version, chain
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
    /// A name that is neither a built-in policy nor one registered with [`Policies::register`].
    #[error("unknown policy {name:?}; known policies: {}", known.join(", "))]
    UnknownPolicy {
        /// The name as written.
        name: String,
        /// Every name the table knows, in its order (built-ins first, then registered ones).
        known: Vec<String>,
    },
    /// A registered factory ([`Policies::try_register`]) refused the group's config.
    #[error("policy {name:?}: {reason}")]
    Factory {
        /// The registered name.
        name: String,
        /// What the factory said.
        reason: String,
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

/// Makes a registered policy for one group, from the group's config.
type Factory =
    Arc<dyn Fn(&GroupConfig) -> Result<Arc<dyn LeaderPolicy>, String> + Send + Sync + 'static>;

/// The by-name table: which names `policy = "…"` (and a chain's elements) accept, and how each
/// is built. [`Policies::with_builtins`] knows the built-in policies; [`Policies::register`]
/// adds a user's own, which config then names exactly like a built-in — alone, in a chain, in
/// any group:
///
/// ```
/// use baton_core::config::Config;
/// use baton_core::{ElectionInput, LeaderPolicy, MemberId};
/// use baton_strategies::Policies;
///
/// /// Prefers the members labelled `disk = "ssd"`; the rest by member id.
/// struct PreferSsd;
/// impl LeaderPolicy for PreferSsd {
///     fn name(&self) -> &str { "prefer-ssd" }
///     fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
///         let mut c: Vec<_> = input.candidates.iter().collect();
///         c.sort_by_key(|c| (c.labels.get("disk").map(String::as_str) != Some("ssd"), c.member.clone()));
///         c.into_iter().map(|c| c.member.clone()).collect()
///     }
/// }
///
/// let config = Config::from_toml_str(r#"
///     [node]
///     name = "a"
///     [[group]]
///     name = "tracked"
///     policy = ["prefer-ssd", "oldest-running"]
/// "#, None)?;
/// let policies = Policies::with_builtins()
///     .register("prefer-ssd", |_group| PreferSsd)
///     .build_for(&config)?;
/// assert_eq!(policies["tracked"].name(), "chain");
///
/// // A name nobody registered is an error that lists every name the table knows.
/// let bare = Policies::with_builtins().build_for(&config).err().expect("not registered");
/// assert_eq!(
///     bare.to_string(),
///     "group \"tracked\": policy[0]: unknown policy \"prefer-ssd\"; known policies: \
///      oldest-running, hardware-weight, anti-affinity, balanced, oldest-version, newest-version, chain"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Hand the map to [`NodeBuilder::policies`](baton_core::NodeBuilder::policies). A name
/// registered twice keeps its place in the list and the last factory; `chain` is reserved (a
/// list in config is a chain), so a factory registered under it is never used.
#[derive(Clone)]
pub struct Policies {
    /// Name and factory, in the order error messages list them; `None` for `chain`, which is
    /// built from the list it is written as.
    entries: Vec<(String, Option<Factory>)>,
}

impl fmt::Debug for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policies")
            .field("names", &self.names())
            .finish()
    }
}

impl Default for Policies {
    /// The built-ins ([`Policies::with_builtins`]).
    fn default() -> Self {
        Policies::with_builtins()
    }
}

impl Policies {
    /// The built-in policies: `oldest-running`, `hardware-weight`, `anti-affinity` (with the
    /// group's `[group.anti-affinity]` settings), `balanced`, `oldest-version`,
    /// `newest-version`, and `chain`.
    pub fn with_builtins() -> Self {
        fn builtin<P: LeaderPolicy + 'static>(
            f: impl Fn(&GroupConfig) -> P + Send + Sync + 'static,
        ) -> Option<Factory> {
            Some(Arc::new(move |g: &GroupConfig| {
                Ok(Arc::new(f(g)) as Arc<dyn LeaderPolicy>)
            }))
        }
        let entries = KNOWN
            .iter()
            .map(|name| {
                let factory = match *name {
                    OldestRunning::NAME => builtin(|_| OldestRunning),
                    HardwareWeight::NAME => builtin(|_| HardwareWeight),
                    AntiAffinity::NAME => {
                        builtin(|g| AntiAffinity::new(g.anti_affinity.clone().unwrap_or_default()))
                    }
                    Balanced::NAME => builtin(|_| Balanced),
                    OldestVersion::NAME => builtin(|_| OldestVersion),
                    NewestVersion::NAME => builtin(|_| NewestVersion),
                    _ => None,
                };
                (name.to_string(), factory)
            })
            .collect();
        Policies { entries }
    }

    /// Names `factory`'s policy `name`: `policy = "name"` (or a chain element `"name"`) in any
    /// group then builds it, with that group's config. See [`Policies::try_register`] for a
    /// factory that can refuse a config.
    pub fn register<P, F>(self, name: impl Into<String>, factory: F) -> Self
    where
        P: LeaderPolicy + 'static,
        F: Fn(&GroupConfig) -> P + Send + Sync + 'static,
    {
        self.try_register(name, move |g| Ok::<P, std::convert::Infallible>(factory(g)))
    }

    /// Like [`Policies::register`], for a factory that may refuse a group's config: its error
    /// becomes [`PolicyErrorKind::Factory`], naming the group, the field and the policy.
    pub fn try_register<P, E, F>(mut self, name: impl Into<String>, factory: F) -> Self
    where
        P: LeaderPolicy + 'static,
        E: fmt::Display,
        F: Fn(&GroupConfig) -> Result<P, E> + Send + Sync + 'static,
    {
        let name = name.into();
        let factory: Factory = Arc::new(move |g: &GroupConfig| match factory(g) {
            Ok(p) => Ok(Arc::new(p) as Arc<dyn LeaderPolicy>),
            Err(e) => Err(e.to_string()),
        });
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) if entry.0 == Chain::NAME => {}
            Some(entry) => entry.1 = Some(factory),
            None => self.entries.push((name, Some(factory))),
        }
        self
    }

    /// Every name the table knows, in order: the built-ins, then the registered ones.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Whether `policy = "name"` builds something.
    pub fn contains(&self, name: &str) -> bool {
        name != Chain::NAME && self.entries.iter().any(|(n, f)| n == name && f.is_some())
    }

    /// Builds the policy a group's config asks for (see [`build_policy`] for what each form
    /// of `policy` means). Every error names the group and the field.
    pub fn build(&self, group: &GroupConfig) -> Result<Arc<dyn LeaderPolicy>, PolicyError> {
        let field = Field {
            group: &group.name,
            path: "policy".to_string(),
        };
        match &group.policy {
            None => Ok(Arc::new(OldestRunning)),
            Some(spec) => self.build_spec(spec, group, &field),
        }
    }

    /// Builds the policy of every `[[group]]`, keyed by group name. Stops at the first error.
    pub fn build_for(
        &self,
        config: &Config,
    ) -> Result<BTreeMap<GroupName, Arc<dyn LeaderPolicy>>, PolicyError> {
        config
            .groups
            .iter()
            .map(|g| Ok((g.name.clone(), self.build(g)?)))
            .collect()
    }

    fn build_spec(
        &self,
        spec: &PolicySpec,
        group: &GroupConfig,
        field: &Field<'_>,
    ) -> Result<Arc<dyn LeaderPolicy>, PolicyError> {
        match spec {
            PolicySpec::Named(name) => {
                if name == Chain::NAME {
                    return Err(field.error(PolicyErrorKind::ChainByName));
                }
                let factory = self
                    .entries
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, f)| f.as_ref());
                match factory {
                    Some(factory) => factory(group).map_err(|reason| {
                        field.error(PolicyErrorKind::Factory {
                            name: name.to_string(),
                            reason,
                        })
                    }),
                    None => Err(field.error(PolicyErrorKind::UnknownPolicy {
                        name: name.to_string(),
                        known: self.names().into_iter().map(String::from).collect(),
                    })),
                }
            }
            PolicySpec::Chain(items) => {
                if items.is_empty() {
                    return Err(field.error(PolicyErrorKind::EmptyChain));
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.build_spec(item, group, &field.element(i)))
                    .collect::<Result<Chain, _>>()
                    .map(|chain| Arc::new(chain) as Arc<dyn LeaderPolicy>)
            }
            PolicySpec::Plugin(plugin) => build_plugin(plugin, field),
        }
    }
}

/// Builds the policy a group's config asks for, from the built-ins
/// ([`Policies::with_builtins`]; a user's own policies by name: [`Policies::register`]).
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
///      known policies: oldest-running, hardware-weight, anti-affinity, balanced, oldest-version, newest-version, chain"
/// );
/// # Ok::<(), baton_strategies::PolicyError>(())
/// ```
pub fn build_policy(group: &GroupConfig) -> Result<Arc<dyn LeaderPolicy>, PolicyError> {
    Policies::with_builtins().build(group)
}

/// Builds the policy of every `[[group]]` from the built-ins, keyed by group name. Stops at the
/// first error. With policies of your own: [`Policies::build_for`].
pub fn policies_for(
    config: &Config,
) -> Result<BTreeMap<GroupName, Arc<dyn LeaderPolicy>>, PolicyError> {
    Policies::with_builtins().build_for(config)
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
    fn known_policies_are_the_seven_built_ins() {
        assert_eq!(
            known_policies(),
            [
                "oldest-running",
                "hardware-weight",
                "anti-affinity",
                "balanced",
                "oldest-version",
                "newest-version",
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
                name: "olderst-running".into(),
                known: known_policies().iter().map(|n| n.to_string()).collect(),
            }
        );
        assert_eq!(
            e.to_string(),
            "group \"tracked\": policy: unknown policy \"olderst-running\"; known policies: \
             oldest-running, hardware-weight, anti-affinity, balanced, oldest-version, newest-version, chain"
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
             oldest-running, hardware-weight, anti-affinity, balanced, oldest-version, newest-version, chain"
        );
    }

    /// Prefers members whose label `key` is `value`; the rest (and ties) by member id.
    struct PreferLabel {
        key: String,
        value: String,
    }

    impl LeaderPolicy for PreferLabel {
        fn name(&self) -> &str {
            "prefer-label"
        }
        fn rank(&self, input: &baton_core::ElectionInput) -> Vec<baton_core::MemberId> {
            baton_core::ranking_from_tiers(self.tiers(input))
        }
        fn tiers(&self, input: &baton_core::ElectionInput) -> Vec<Vec<baton_core::MemberId>> {
            let (yes, no): (Vec<_>, Vec<_>) = input
                .candidates
                .iter()
                .partition(|c| c.labels.get(&self.key) == Some(&self.value));
            [yes, no]
                .into_iter()
                .filter(|t| !t.is_empty())
                .map(|t| t.into_iter().map(|c| c.member.clone()).collect())
                .collect()
        }
    }

    fn with_prefer_label() -> Policies {
        Policies::with_builtins().register("prefer-label", |_g: &GroupConfig| PreferLabel {
            key: "disk".into(),
            value: "ssd".into(),
        })
    }

    /// a (hdd, oldest), b (ssd, youngest), c (ssd, middle).
    fn labelled_input() -> baton_core::ElectionInput {
        let mut input = baton_core::ElectionInput::of_nodes("tracked", &["a", "b", "c"]);
        for (c, (disk, started)) in
            input
                .candidates
                .iter_mut()
                .zip([("hdd", 1), ("ssd", 30), ("ssd", 20)])
        {
            c.labels.insert("disk".into(), disk.into());
            c.started_at_ms = started;
        }
        input
    }

    fn nodes(r: Vec<baton_core::MemberId>) -> Vec<String> {
        r.into_iter().map(|m| m.node.0).collect()
    }

    #[test]
    fn a_registered_policy_is_named_in_config_like_a_built_in() {
        let p = with_prefer_label()
            .build(&group(Some(named("prefer-label"))))
            .unwrap();
        assert_eq!(p.name(), "prefer-label");
        // ssd first (b, c by member id), then hdd.
        assert_eq!(nodes(p.rank(&labelled_input())), ["b", "c", "a"]);
    }

    #[test]
    fn a_registered_policy_chains_with_built_ins_which_break_its_ties() {
        let spec = PolicySpec::Chain(vec![named("prefer-label"), named("oldest-running")]);
        let p = with_prefer_label().build(&group(Some(spec))).unwrap();
        // ssd first, oldest of them first (c before b), then hdd.
        assert_eq!(nodes(p.rank(&labelled_input())), ["c", "b", "a"]);
    }

    #[test]
    fn a_registered_policy_is_built_from_parsed_toml_per_group() {
        let config = Config::from_toml_str(
            "[node]\nname = \"a\"\n\
             [[group]]\nname = \"x\"\npolicy = \"prefer-label\"\n\
             [[group]]\nname = \"y\"\npolicy = [\"prefer-label\", \"oldest-running\"]\n",
            None,
        )
        .unwrap();
        let map = with_prefer_label().build_for(&config).unwrap();
        assert_eq!(map["x"].name(), "prefer-label");
        assert_eq!(map["y"].name(), "chain");
        // Without the registration the same config is refused, naming the policy.
        let e = policies_for(&config).err().unwrap();
        assert_eq!(e.group, "x");
        assert!(
            matches!(&e.kind, PolicyErrorKind::UnknownPolicy { name, .. } if name == "prefer-label")
        );
    }

    #[test]
    fn the_version_policies_are_built_by_name_alone_and_in_a_chain() {
        let p = build_policy(&group(Some(named("oldest-version")))).unwrap();
        assert_eq!(p.name(), "oldest-version");
        let p = build_policy(&group(Some(named("newest-version")))).unwrap();
        assert_eq!(p.name(), "newest-version");
        let chain = PolicySpec::Chain(vec![named("oldest-version"), named("oldest-running")]);
        assert_eq!(build_policy(&group(Some(chain))).unwrap().name(), "chain");
    }

    #[test]
    fn unknown_name_lists_every_registered_name() {
        let policies =
            with_prefer_label().register("prefer-zone", |_g: &GroupConfig| crate::OldestRunning);
        assert_eq!(
            policies.names(),
            [known_policies(), &["prefer-label", "prefer-zone"]].concat()
        );
        let e = policies
            .build(&group(Some(named("prefer-lable"))))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "group \"tracked\": policy: unknown policy \"prefer-lable\"; known policies: \
             oldest-running, hardware-weight, anti-affinity, balanced, oldest-version, newest-version, chain, prefer-label, \
             prefer-zone"
        );
    }

    #[test]
    fn the_factory_sees_the_group_and_may_refuse_it() {
        let policies = Policies::with_builtins().try_register("only-x", |g: &GroupConfig| {
            if g.name == "x" {
                Ok(crate::OldestRunning)
            } else {
                Err(format!("only group x may use it, not {}", g.name))
            }
        });
        let mut x = group(Some(named("only-x")));
        x.name = "x".into();
        assert!(policies.build(&x).is_ok());
        let e = policies.build(&group(Some(named("only-x")))).err().unwrap();
        assert_eq!(
            e.to_string(),
            "group \"tracked\": policy: policy \"only-x\": only group x may use it, not tracked"
        );
    }

    #[test]
    fn registering_a_name_again_replaces_it_in_place_and_chain_stays_reserved() {
        let policies = Policies::with_builtins()
            .register("oldest-running", |_g: &GroupConfig| PreferLabel {
                key: "k".into(),
                value: "v".into(),
            })
            .register("chain", |_g: &GroupConfig| crate::OldestRunning);
        assert_eq!(policies.names(), known_policies());
        let p = policies
            .build(&group(Some(named("oldest-running"))))
            .unwrap();
        assert_eq!(p.name(), "prefer-label");
        let e = policies.build(&group(Some(named("chain")))).err().unwrap();
        assert_eq!(e.kind, PolicyErrorKind::ChainByName);
        assert!(policies.contains("balanced") && !policies.contains("chain"));
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
