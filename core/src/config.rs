//! Configuration: baton's TOML file (the README shows a full one), parsed with
//! `deny_unknown_fields` and validated so that every error names the file, the field and what
//! was wrong.
//!
//! ```
//! let cfg = baton_core::config::Config::from_toml_str(r#"
//!     [node]
//!     name = "a"
//!     listen = "127.0.0.1:7101"
//!     [cluster]
//!     seeds = ["b@127.0.0.1:7102", "c@127.0.0.1:7103"]
//!     voters = ["a", "b", "c"]
//!     [[group]]
//!     name = "tracked"
//!     policy = ["hardware-weight", "oldest-running"]
//! "#, None).unwrap();
//! assert_eq!(cfg.groups[0].name, "tracked");
//! ```

use crate::engine::defaults;
use crate::transport::{DeathProofMode, Fingerprint};
use crate::types::{GroupName, Hardware, Labels, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration error: which file, which field, what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, when the config came from one.
    pub file: Option<PathBuf>,
    /// The field (`cluster.voters`, `group "tracked".policy`), when known.
    pub field: Option<String>,
    /// What was wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            field: Some(field.into()),
            message: message.into(),
        }
    }
    /// Attaches the file the config was read from.
    pub fn in_file(mut self, file: Option<&Path>) -> Self {
        if self.file.is_none() {
            self.file = file.map(Path::to_path_buf);
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}: ", file.display())?,
            None => write!(f, "config: ")?,
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node.
    pub node: NodeConfig,
    /// The cluster it belongs to.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// Protocol timings.
    #[serde(default)]
    pub timing: TimingConfig,
    /// Service pools and how each elects its leader (`[[group]]`).
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupConfig>,
    /// `[admin]`: the HTTP admin listener (metrics, health, status, the live view), off when
    /// absent. Not part of the safety settings: nodes may differ here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminConfig>,
    /// `[etcd]`: the etcd cluster that holds the elections when `cluster.backend = "etcd"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdConfig>,
}

/// Where elections are held (`cluster.backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// baton's own protocol over the transport (votes, leases, heartbeats).
    #[default]
    Baton,
    /// An etcd cluster (`[etcd]`, the `baton-backend-etcd` crate; docs/ETCD.md).
    Etcd,
}

/// `[etcd]`: the etcd cluster of `cluster.backend = "etcd"` (docs/ETCD.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs of the etcd members, e.g. `["http://127.0.0.1:2379"]`.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// The key prefix of this cluster's elections; default `/baton/<cluster.name>/`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// TTL of the node's etcd lease, whole seconds: a node that dies silently loses its
    /// leaderships after this long; a leader that cannot renew stops acting before it runs out.
    #[serde(default = "default_lease_ttl_s")]
    pub lease_ttl_s: u64,
    /// The CA certificate(s) (PEM) etcd's server certificate must chain to: TLS to etcd
    /// (`https://` endpoints). Relative paths resolve against the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) for etcd's `--client-cert-auth`; with `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The private key (PEM) of `cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// An etcd user (etcd's `auth enable`); its password is read from `password_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A file holding the password of `user` (surrounding whitespace ignored), so that the
    /// config itself holds no secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

fn default_lease_ttl_s() -> u64 {
    2
}

impl EtcdConfig {
    /// An `[etcd]` section with these endpoints and the defaults.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: None,
            lease_ttl_s: default_lease_ttl_s(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            user: None,
            password_file: None,
        }
    }
}

/// `[admin]`: where the node serves `/metrics`, `/healthz`, `/readyz`, `/api/…` and its live
/// web view (the `baton-admin` crate; docs/OPERATING.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `ip:port` to listen on (plain HTTP: keep it on loopback or a private network, see
    /// docs/OPERATING.md). Port 0 picks a free port.
    pub listen: String,
    /// A file holding the admin token (a trailing newline is ignored): actions (shut down,
    /// kill) need `Authorization: Bearer <token>`. Without it the admin listener is read-only.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl AdminConfig {
    /// The listen address, parsed; the error names `admin.listen`.
    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, ConfigError> {
        self.listen.trim().parse().map_err(|e| {
            ConfigError::field(
                "admin.listen",
                format!(
                    "{:?} is not an `ip:port` address ({e}); for example \"127.0.0.1:7180\"",
                    self.listen
                ),
            )
        })
    }

    /// The admin token from `token_file` (`None` without one: read-only). The error names
    /// `admin.token_file` and the file.
    pub fn load_token(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::field(
                "admin.token_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let token = text.trim_end_matches(['\n', '\r']);
        if token.trim().is_empty() {
            return Err(ConfigError::field(
                "admin.token_file",
                format!(
                    "{} is empty; put a long random token in it (or remove token_file for a read-only admin listener)",
                    path.display()
                ),
            ));
        }
        Ok(Some(token.to_string()))
    }
}

/// `[node]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Unique in the cluster.
    pub name: String,
    /// Listen address (`127.0.0.1:7101`; for the in-memory transport, any name).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Labels every member of this node carries.
    #[serde(default)]
    pub labels: Labels,
    /// Hardware; unset values are detected.
    #[serde(default)]
    pub hardware: HardwareConfig,
    /// The software version this node runs, a semantic version (`"1.4.2"`, `"2.0.0-rc.1"`):
    /// announced with its members, so that `oldest-version` keeps the leader on the old
    /// release during a rolling upgrade (or `newest-version` moves it to the new one). Checked
    /// when the file is read ([`NodeConfig::version`]); unset, the node announces none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where term and vote are kept across restarts. Without it a restarted node abstains from
    /// voting for one failure timeout.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

impl NodeConfig {
    /// `version` parsed as a semantic version (`None` when unset); an error names
    /// `node.version` and says what a semantic version looks like.
    pub fn version(&self) -> Result<Option<crate::Version>, ConfigError> {
        let Some(text) = &self.version else {
            return Ok(None);
        };
        crate::Version::parse(text.trim()).map(Some).map_err(|e| {
            ConfigError::field(
                "node.version",
                format!(
                    "{text:?} is not a semantic version (MAJOR.MINOR.PATCH, such as \"1.4.2\" \
                     or \"2.0.0-rc.1\"): {e}"
                ),
            )
        })
    }
}

fn default_listen() -> String {
    "127.0.0.1:7100".to_string()
}

/// `[node] hardware = { … }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareConfig {
    /// Logical CPUs (detected when unset).
    pub cpus: Option<u32>,
    /// Memory in bytes (detected when unset).
    pub memory_bytes: Option<u64>,
    /// Explicit weight for `hardware-weight`.
    pub weight: Option<f64>,
}

impl HardwareConfig {
    /// The hardware to announce: configured values over detected ones
    /// ([`runtime::hardware::detect`](crate::runtime::hardware::detect)).
    #[cfg(feature = "runtime")]
    pub fn resolve(&self) -> Hardware {
        self.over(crate::runtime::hardware::detect())
    }

    /// Configured values over `detected` ones.
    pub fn over(&self, detected: Hardware) -> Hardware {
        Hardware {
            cpus: self.cpus.unwrap_or(detected.cpus),
            memory_bytes: self.memory_bytes.unwrap_or(detected.memory_bytes),
            weight: self.weight,
        }
    }
}

/// How many must agree before someone leads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuorumMode {
    /// A leader needs votes from a majority of `cluster.voters` and keeps a lease renewed by a
    /// majority: never two leaders at once.
    #[default]
    Majority,
    /// Every side of a partition elects its own leader; on heal one remains. For 2-node setups
    /// and development only.
    None,
}

/// `[cluster]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster name; peers with another name are refused.
    #[serde(default = "default_cluster_name")]
    pub name: String,
    /// Addresses to meet the cluster through: `"127.0.0.1:7102"` or `"b@127.0.0.1:7102"`.
    #[serde(default)]
    pub seeds: Vec<String>,
    /// Node names that vote. Empty on a node without seeds: the node is its own majority.
    #[serde(default)]
    pub voters: Vec<String>,
    /// File holding the shared secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// `"majority"` (default) or `"none"`.
    #[serde(default)]
    pub quorum: QuorumMode,
    /// What proves a peer dead at once: `"orderly-close"` (default) or `"timeout"` (never
    /// trust a refused connection). See [`DeathProofMode`].
    #[serde(default)]
    pub death_proof: DeathProofMode,
    /// `[cluster.tls]`: mutual TLS for every connection (peers and clients), when set. See
    /// [`TlsFiles`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// Where elections are held: `"baton"` (default, its own protocol) or `"etcd"` (`[etcd]`).
    #[serde(default)]
    pub backend: Backend,
}

/// `[cluster.tls]`: the PEM files of mutual TLS. Relative paths resolve against the config
/// file's directory. With it, every connection of the node — to peers and from clients such
/// as `baton status`, which read the same section — runs TLS 1.3, each side presenting a
/// certificate that must chain to `ca`; baton's own handshake (cluster secret, incarnation,
/// fingerprint) still runs inside it. Every node of the cluster needs it, or none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// This node's certificate chain, its own certificate first.
    pub cert: PathBuf,
    /// This node's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificate(s) peers' (and clients') certificates must chain to.
    pub ca: PathBuf,
}

fn default_cluster_name() -> String {
    "baton".to_string()
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            name: default_cluster_name(),
            seeds: vec![],
            voters: vec![],
            secret_file: None,
            quorum: QuorumMode::Majority,
            death_proof: DeathProofMode::default(),
            tls: None,
            backend: Backend::Baton,
        }
    }
}

/// A seed: an address, optionally with the name of the node expected there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    /// `b` in `b@127.0.0.1:7102`.
    pub name: Option<String>,
    /// The address.
    pub addr: String,
}

impl Seed {
    /// Parses `addr` or `name@addr`.
    pub fn parse(s: &str) -> Seed {
        match s.split_once('@') {
            Some((name, addr)) => Seed {
                name: Some(name.to_string()),
                addr: addr.to_string(),
            },
            None => Seed {
                name: None,
                addr: s.to_string(),
            },
        }
    }
}

/// `[timing]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingConfig {
    /// Heartbeat period.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// A peer silent this long is down.
    #[serde(default = "default_failure_timeout")]
    pub failure_timeout_ms: u64,
    /// Candidates ranked `r` wait `r × election_backoff_ms` before campaigning.
    #[serde(default = "default_backoff")]
    pub election_backoff_ms: u64,
    /// Default deadline of a routed call.
    #[serde(default = "default_call_timeout")]
    pub call_timeout_ms: u64,
}

// The defaults live in one place, `engine::defaults`.
fn default_heartbeat() -> u64 {
    defaults::ms(defaults::HEARTBEAT)
}
fn default_failure_timeout() -> u64 {
    defaults::ms(defaults::FAILURE_TIMEOUT)
}
fn default_backoff() -> u64 {
    defaults::ms(defaults::BACKOFF)
}
fn default_call_timeout() -> u64 {
    defaults::ms(defaults::CALL_TIMEOUT)
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            heartbeat_ms: default_heartbeat(),
            failure_timeout_ms: default_failure_timeout(),
            election_backoff_ms: default_backoff(),
            call_timeout_ms: default_call_timeout(),
        }
    }
}

/// `[[group]]`: one service pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's name.
    pub name: GroupName,
    /// Its policy: a name, a chain (list, best first) or a plugin. Default: oldest-running.
    #[serde(default)]
    pub policy: Option<PolicySpec>,
    /// When true, a better-ranked member joining takes over by graceful handoff.
    #[serde(default)]
    pub preempt: bool,
    /// Settings of the `anti-affinity` policy.
    #[serde(default, rename = "anti-affinity")]
    pub anti_affinity: Option<AntiAffinityConfig>,
}

impl GroupConfig {
    /// A group with the default policy.
    pub fn new(name: impl Into<GroupName>) -> Self {
        GroupConfig {
            name: name.into(),
            policy: None,
            preempt: false,
            anti_affinity: None,
        }
    }
}

/// `[group.anti-affinity]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AntiAffinityConfig {
    /// Prefer nodes not leading any of these groups.
    #[serde(default)]
    pub avoid_groups: Vec<GroupName>,
    /// Prefer members not carrying any of these labels (`key = value`).
    #[serde(default)]
    pub avoid_labels: Labels,
}

/// What a group's `policy` says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "toml::Value", into = "toml::Value")]
pub enum PolicySpec {
    /// A built-in policy by name (`"oldest-running"`).
    Named(String),
    /// A chain, best first: the first decides, later ones break its ties.
    Chain(Vec<PolicySpec>),
    /// A plugin loaded at run time.
    Plugin(PluginSpec),
}

/// `{ plugin = "path/to/libx.so", config = { … } }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PluginSpec {
    /// Path to the shared library (relative paths resolve against the config file's directory).
    pub plugin: PathBuf,
    /// The plugin's own configuration.
    pub config: Option<toml::Value>,
}

impl TryFrom<toml::Value> for PolicySpec {
    type Error = String;
    fn try_from(v: toml::Value) -> Result<Self, String> {
        match v {
            toml::Value::String(s) => Ok(PolicySpec::Named(s)),
            toml::Value::Array(items) => {
                if items.is_empty() {
                    return Err("an empty policy chain; name at least one policy".into());
                }
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        PolicySpec::try_from(item).map_err(|e| format!("chain element {i}: {e}"))
                    })
                    .collect::<Result<_, _>>()
                    .map(PolicySpec::Chain)
            }
            toml::Value::Table(mut t) => {
                let plugin = match t.remove("plugin") {
                    Some(toml::Value::String(p)) => PathBuf::from(p),
                    Some(other) => {
                        return Err(format!(
                            "`plugin` must be a path string, found {}",
                            other.type_str()
                        ));
                    }
                    None => {
                        return Err("a policy table needs `plugin = \"path/to/lib.so\"`".into());
                    }
                };
                let config = t.remove("config");
                if let Some(k) = t.keys().next() {
                    return Err(format!(
                        "unknown key `{k}` in a plugin policy (expected `plugin`, `config`)"
                    ));
                }
                Ok(PolicySpec::Plugin(PluginSpec { plugin, config }))
            }
            other => Err(format!(
                "a policy is a name, a list of policies or {{ plugin = \"…\" }}, found {}",
                other.type_str()
            )),
        }
    }
}

impl From<PolicySpec> for toml::Value {
    fn from(p: PolicySpec) -> toml::Value {
        match p {
            PolicySpec::Named(s) => toml::Value::String(s),
            PolicySpec::Chain(items) => {
                toml::Value::Array(items.into_iter().map(toml::Value::from).collect())
            }
            PolicySpec::Plugin(spec) => {
                let mut t = toml::Table::new();
                t.insert(
                    "plugin".into(),
                    toml::Value::String(spec.plugin.display().to_string()),
                );
                if let Some(c) = spec.config {
                    t.insert("config".into(), c);
                }
                toml::Value::Table(t)
            }
        }
    }
}

impl Config {
    /// A minimal config for a node called `name` (single-node, defaults everywhere).
    pub fn new(name: impl Into<String>) -> Self {
        Config {
            node: NodeConfig {
                name: name.into(),
                listen: default_listen(),
                labels: Labels::new(),
                hardware: HardwareConfig::default(),
                version: None,
                data_dir: None,
            },
            cluster: ClusterConfig::default(),
            timing: TimingConfig::default(),
            groups: vec![],
            admin: None,
            etcd: None,
        }
    }

    /// Parses and validates TOML text; `file` is used in error messages and to resolve
    /// relative paths.
    pub fn from_toml_str(text: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError {
            file: file.map(Path::to_path_buf),
            field: None,
            message: e.to_string().trim_end().to_string(),
        })?;
        if let Some(dir) = file.and_then(Path::parent) {
            cfg.resolve_paths(dir);
        }
        cfg.validate().map_err(|e| e.in_file(file))?;
        cfg.check_named_voters().map_err(|e| e.in_file(file))?;
        Ok(cfg)
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        Config::from_toml_str(&text, Some(path))
    }

    fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if let Some(p) = self.cluster.secret_file.as_mut() {
            fix(p);
        }
        if let Some(tls) = self.cluster.tls.as_mut() {
            fix(&mut tls.cert);
            fix(&mut tls.key);
            fix(&mut tls.ca);
        }
        if let Some(e) = self.etcd.as_mut() {
            for p in [
                &mut e.ca_file,
                &mut e.cert_file,
                &mut e.key_file,
                &mut e.password_file,
            ] {
                if let Some(p) = p.as_mut() {
                    fix(p);
                }
            }
        }
        if let Some(p) = self.node.data_dir.as_mut() {
            fix(p);
        }
        if let Some(p) = self.admin.as_mut().and_then(|a| a.token_file.as_mut()) {
            fix(p);
        }
        fn fix_policy(spec: &mut PolicySpec, dir: &Path) {
            match spec {
                PolicySpec::Named(_) => {}
                PolicySpec::Chain(items) => items.iter_mut().for_each(|i| fix_policy(i, dir)),
                PolicySpec::Plugin(p) => {
                    if p.plugin.is_relative() {
                        p.plugin = dir.join(&p.plugin);
                    }
                }
            }
        }
        for g in &mut self.groups {
            if let Some(p) = g.policy.as_mut() {
                fix_policy(p, dir);
            }
        }
    }

    /// Checks what the types cannot: names, timings, voters, duplicate groups.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node.name.trim().is_empty() {
            return Err(ConfigError::field("node.name", "must not be empty"));
        }
        self.node.version()?;
        if self.node.name.contains('@') || self.node.name.contains('#') {
            return Err(ConfigError::field(
                "node.name",
                format!("{:?} must not contain '@' or '#'", self.node.name),
            ));
        }
        if self.cluster.name.trim().is_empty() {
            return Err(ConfigError::field("cluster.name", "must not be empty"));
        }
        let t = &self.timing;
        if t.heartbeat_ms == 0 {
            return Err(ConfigError::field(
                "timing.heartbeat_ms",
                "must be greater than 0",
            ));
        }
        if t.failure_timeout_ms < 2 * t.heartbeat_ms {
            return Err(ConfigError::field(
                "timing.failure_timeout_ms",
                format!(
                    "{} is less than twice timing.heartbeat_ms ({}); a peer would be declared down between two heartbeats",
                    t.failure_timeout_ms, t.heartbeat_ms
                ),
            ));
        }
        if t.call_timeout_ms == 0 {
            return Err(ConfigError::field(
                "timing.call_timeout_ms",
                "must be greater than 0",
            ));
        }
        for (i, s) in self.cluster.seeds.iter().enumerate() {
            let seed = Seed::parse(s);
            if seed.addr.is_empty() || seed.name.as_deref() == Some("") {
                return Err(ConfigError::field(
                    format!("cluster.seeds[{i}]"),
                    format!("{s:?} is not `addr` or `name@addr`"),
                ));
            }
        }
        let mut voters = BTreeSet::new();
        for v in &self.cluster.voters {
            if v.trim().is_empty() {
                return Err(ConfigError::field(
                    "cluster.voters",
                    "contains an empty name",
                ));
            }
            if !voters.insert(v.as_str()) {
                return Err(ConfigError::field(
                    "cluster.voters",
                    format!("{v:?} is listed twice"),
                ));
            }
        }
        if self.cluster.quorum == QuorumMode::Majority {
            if voters.is_empty() && !self.cluster.seeds.is_empty() {
                return Err(ConfigError::field(
                    "cluster.voters",
                    "is empty, but quorum = \"majority\" with seeds needs the list of voting nodes (or set quorum = \"none\")",
                ));
            }
            if !voters.is_empty() {
                let mut known: BTreeSet<String> = BTreeSet::new();
                known.insert(self.node.name.clone());
                known.extend(
                    self.cluster
                        .seeds
                        .iter()
                        .filter_map(|s| Seed::parse(s).name),
                );
                if !voters.iter().any(|v| known.contains(*v)) {
                    return Err(ConfigError::field(
                        "cluster.voters",
                        format!(
                            "none of {:?} is a known node: this node is {:?} and the named seeds are {:?}; list this node or a seed given as `name@addr`",
                            self.cluster.voters,
                            self.node.name,
                            known
                                .iter()
                                .filter(|k| **k != self.node.name)
                                .collect::<Vec<_>>()
                        ),
                    ));
                }
            }
        }
        if let Some(admin) = &self.admin {
            admin.listen_addr()?;
        }
        self.validate_etcd()?;
        let mut groups = BTreeSet::new();
        for (i, g) in self.groups.iter().enumerate() {
            if g.name.trim().is_empty() {
                return Err(ConfigError::field(
                    format!("group[{i}].name"),
                    "must not be empty",
                ));
            }
            if !groups.insert(g.name.as_str()) {
                return Err(ConfigError::field(
                    format!("group[{i}].name"),
                    format!("group {:?} is defined twice", g.name),
                ));
            }
        }
        Ok(())
    }

    /// `cluster.backend` and `[etcd]` agree, and `[etcd]` is usable.
    fn validate_etcd(&self) -> Result<(), ConfigError> {
        let etcd = match (self.cluster.backend, &self.etcd) {
            (Backend::Baton, None) => return Ok(()),
            (Backend::Baton, Some(_)) => {
                return Err(ConfigError::field(
                    "cluster.backend",
                    "is \"baton\" (the default) but an [etcd] section is given; set backend = \"etcd\" to hold the elections in etcd, or remove [etcd]",
                ));
            }
            (Backend::Etcd, None) => {
                return Err(ConfigError::field(
                    "etcd.endpoints",
                    "cluster.backend = \"etcd\" needs an [etcd] section with endpoints, e.g. endpoints = [\"http://127.0.0.1:2379\"]",
                ));
            }
            (Backend::Etcd, Some(e)) => e,
        };
        if etcd.endpoints.is_empty() {
            return Err(ConfigError::field(
                "etcd.endpoints",
                "is empty; list the client URLs of the etcd members, e.g. [\"http://127.0.0.1:2379\"]",
            ));
        }
        for (i, e) in etcd.endpoints.iter().enumerate() {
            if e.trim().is_empty() || e.chars().any(char::is_whitespace) {
                return Err(ConfigError::field(
                    format!("etcd.endpoints[{i}]"),
                    format!("{e:?} is not an URL like \"http://127.0.0.1:2379\""),
                ));
            }
        }
        if let Some(p) = &etcd.prefix
            && (!p.starts_with('/') || !p.ends_with('/') || p.len() < 2)
        {
            return Err(ConfigError::field(
                "etcd.prefix",
                format!(
                    "{p:?} must start and end with '/' and not be \"/\", e.g. \"/baton/prod/\""
                ),
            ));
        }
        if etcd.lease_ttl_s == 0 || etcd.lease_ttl_s > 3600 {
            return Err(ConfigError::field(
                "etcd.lease_ttl_s",
                format!("{} is not between 1 and 3600 seconds", etcd.lease_ttl_s),
            ));
        }
        match (&etcd.cert_file, &etcd.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::field(
                    "etcd.key_file",
                    "missing: cert_file needs the key_file of its private key",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::field(
                    "etcd.cert_file",
                    "missing: key_file needs the cert_file of its certificate",
                ));
            }
            _ => {}
        }
        match (&etcd.user, &etcd.password_file) {
            (Some(u), _) if u.is_empty() || u.contains(':') => {
                return Err(ConfigError::field(
                    "etcd.user",
                    format!("{u:?} is not an etcd user name (empty, or with ':')"),
                ));
            }
            (Some(_), None) => {
                return Err(ConfigError::field(
                    "etcd.password_file",
                    "missing: user needs the password_file holding its password",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::field(
                    "etcd.user",
                    "missing: password_file is given but no user",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The etcd key prefix of this cluster: `etcd.prefix`, or `/baton/<cluster.name>/`.
    pub fn etcd_prefix(&self) -> String {
        self.etcd
            .as_ref()
            .and_then(|e| e.prefix.clone())
            .unwrap_or_else(|| format!("/baton/{}/", self.cluster.name))
    }

    /// For a config *file* whose seeds all name their nodes (`name@addr`): every voter must be
    /// this node or a seed. Such a file states the whole cluster, so a voter outside it is a
    /// typo that would silently cost the cluster its fault tolerance. With a bare `addr` seed
    /// the node behind it may be the voter; the engine then warns about voters it never sees.
    /// (Configs built in code, which often seed only the nodes started so far, are not held to
    /// this: [`Config::validate`] does not call it.)
    pub fn check_named_voters(&self) -> Result<(), ConfigError> {
        if self.cluster.quorum != QuorumMode::Majority || self.cluster.seeds.is_empty() {
            return Ok(());
        }
        let seeds = self.seeds();
        if seeds.iter().any(|s| s.name.is_none()) {
            return Ok(());
        }
        let known: BTreeSet<&str> = seeds
            .iter()
            .filter_map(|s| s.name.as_deref())
            .chain([self.node.name.as_str()])
            .collect();
        let unknown: Vec<String> = self
            .cluster
            .voters
            .iter()
            .filter(|v| !known.contains(v.as_str()))
            .map(|v| format!("{v:?}"))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(ConfigError::field(
            "cluster.voters",
            format!(
                "{} {} neither this node ({:?}) nor a seed: the seeds name {:?}; fix the name, add the node as a seed `name@addr`, or give its seed as a bare `addr`",
                unknown.join(", "),
                if unknown.len() == 1 { "is" } else { "are" },
                self.node.name,
                seeds
                    .iter()
                    .filter_map(|s| s.name.as_deref())
                    .collect::<Vec<_>>()
            ),
        ))
    }

    /// The voters as node ids (this node alone when the list is empty and there are no seeds).
    pub fn voter_ids(&self) -> BTreeSet<NodeId> {
        if self.cluster.voters.is_empty() {
            [NodeId::new(self.node.name.clone())].into()
        } else {
            self.cluster.voters.iter().map(NodeId::new).collect()
        }
    }

    /// The parsed seeds.
    pub fn seeds(&self) -> Vec<Seed> {
        self.cluster.seeds.iter().map(|s| Seed::parse(s)).collect()
    }

    /// The group named `name`, if configured.
    pub fn group(&self, name: &str) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Heartbeat period.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.timing.heartbeat_ms)
    }

    /// Failure timeout.
    pub fn failure_timeout(&self) -> Duration {
        Duration::from_millis(self.timing.failure_timeout_ms)
    }

    /// What this node's safety depends on, exchanged in the handshake: peers whose
    /// fingerprint differs are refused.
    pub fn fingerprint(&self) -> Fingerprint {
        let (voters, quorum) = match self.cluster.quorum {
            QuorumMode::Majority => (self.voter_ids().into_iter().collect(), "majority"),
            QuorumMode::None => (vec![], "none"),
        };
        Fingerprint {
            voters,
            quorum: quorum.into(),
            heartbeat_ms: self.timing.heartbeat_ms,
            failure_timeout_ms: self.timing.failure_timeout_ms,
            protocol_version: crate::PROTOCOL_VERSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(s, Some(Path::new("/etc/baton/node.toml")))
    }

    #[test]
    fn node_version_is_a_semantic_version_or_an_error_naming_file_and_field() {
        let cfg = parse("[node]\nname = \"a\"\nversion = \"1.4.2\"\n").unwrap();
        assert_eq!(
            cfg.node.version().unwrap(),
            Some(crate::Version::new(1, 4, 2))
        );
        let pre = parse("[node]\nname = \"a\"\nversion = \"2.0.0-rc.1+b7\"\n").unwrap();
        assert_eq!(pre.node.version().unwrap().unwrap().pre.as_str(), "rc.1");
        assert_eq!(
            parse("[node]\nname = \"a\"\n")
                .unwrap()
                .node
                .version()
                .unwrap(),
            None
        );
        for bad in ["1.4", "v1.4.2", "latest", ""] {
            let e = parse(&format!("[node]\nname = \"a\"\nversion = {bad:?}\n")).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("node.version"), "{e}");
            assert_eq!(e.file.as_deref(), Some(Path::new("/etc/baton/node.toml")));
            let text = e.to_string();
            assert!(
                text.starts_with("/etc/baton/node.toml: node.version: ")
                    && text.contains(&format!("{bad:?} is not a semantic version")),
                "{text}"
            );
        }
    }

    #[test]
    fn admin_section_parses_resolves_and_names_its_fields() {
        let base = "[node]\nname = \"a\"\n";
        let cfg = parse(&format!(
            "{base}[admin]\nlisten = \"127.0.0.1:7180\"\ntoken_file = \"admin.token\"\n"
        ))
        .unwrap();
        let admin = cfg.admin.as_ref().unwrap();
        assert_eq!(admin.listen_addr().unwrap().port(), 7180);
        assert_eq!(
            admin.token_file.as_deref(),
            Some(Path::new("/etc/baton/admin.token"))
        );
        assert_eq!(parse(base).unwrap().admin, None);

        let e = parse(&format!("{base}[admin]\nlisten = \"localhost\"\n")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("admin.listen"), "{e}");
        assert!(
            e.to_string().contains("\"localhost\" is not an `ip:port`"),
            "{e}"
        );
        let e = parse(&format!(
            "{base}[admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"x\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `token`"), "{e}");

        let dir = std::env::temp_dir().join(format!("baton-admin-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t");
        std::fs::write(&file, "s3cret\n").unwrap();
        let mut admin = AdminConfig {
            listen: "127.0.0.1:0".into(),
            token_file: Some(file.clone()),
        };
        assert_eq!(admin.load_token().unwrap().as_deref(), Some("s3cret"));
        std::fs::write(&file, "\n").unwrap();
        let e = admin.load_token().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("admin.token_file"));
        assert!(e.message.contains("is empty"), "{e}");
        admin.token_file = Some(dir.join("missing"));
        let e = admin.load_token().unwrap_err();
        assert!(e.message.contains("cannot read"), "{e}");
        admin.token_file = None;
        assert_eq!(admin.load_token().unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn etcd_backend_parses_defaults_and_names_its_fields() {
        let base = "[node]\nname = \"a\"\n[cluster]\nname = \"prod\"\n";
        let cfg = parse(base).unwrap();
        assert_eq!(cfg.cluster.backend, Backend::Baton);
        assert_eq!(cfg.etcd, None);

        let cfg = parse(&format!(
            "{base}backend = \"etcd\"\n[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n"
        ))
        .unwrap();
        assert_eq!(cfg.cluster.backend, Backend::Etcd);
        let etcd = cfg.etcd.as_ref().unwrap();
        assert_eq!(etcd.endpoints, ["http://127.0.0.1:2379"]);
        assert_eq!(etcd.lease_ttl_s, 2);
        assert_eq!(cfg.etcd_prefix(), "/baton/prod/");

        let cfg = parse(&format!(
            "{base}backend = \"etcd\"\n[etcd]\nendpoints = [\"http://e:2379\"]\nprefix = \"/x/\"\nlease_ttl_s = 5\n"
        ))
        .unwrap();
        assert_eq!(cfg.etcd_prefix(), "/x/");
        assert_eq!(cfg.etcd.unwrap().lease_ttl_s, 5);

        let field = |text: String| parse(&text).unwrap_err().field;
        assert_eq!(
            field(format!("{base}backend = \"etcd\"\n")).as_deref(),
            Some("etcd.endpoints")
        );
        assert_eq!(
            field(format!(
                "{base}backend = \"etcd\"\n[etcd]\nendpoints = []\n"
            ))
            .as_deref(),
            Some("etcd.endpoints")
        );
        assert_eq!(
            field(format!(
                "{base}backend = \"etcd\"\n[etcd]\nendpoints = [\"http://e:1\", \" \"]\n"
            ))
            .as_deref(),
            Some("etcd.endpoints[1]")
        );
        assert_eq!(
            field(format!(
                "{base}backend = \"etcd\"\n[etcd]\nendpoints = [\"http://e:1\"]\nprefix = \"x\"\n"
            ))
            .as_deref(),
            Some("etcd.prefix")
        );
        assert_eq!(
            field(format!(
                "{base}backend = \"etcd\"\n[etcd]\nendpoints = [\"http://e:1\"]\nlease_ttl_s = 0\n"
            ))
            .as_deref(),
            Some("etcd.lease_ttl_s")
        );
        assert_eq!(
            field(format!("{base}[etcd]\nendpoints = [\"http://e:1\"]\n")).as_deref(),
            Some("cluster.backend")
        );
        let e = parse(&format!("{base}backend = \"zookeeper\"\n")).unwrap_err();
        assert!(e.to_string().contains("zookeeper"), "{e}");
        let e = parse(&format!(
            "{base}backend = \"etcd\"\n[etcd]\nendpoints = [\"http://e:1\"]\nttl = 3\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `ttl`"), "{e}");
    }

    #[test]
    fn etcd_tls_and_auth_fields_resolve_and_go_in_pairs() {
        let base = "[node]\nname = \"a\"\n[cluster]\nbackend = \"etcd\"\n[etcd]\nendpoints = [\"https://e:2379\"]\n";
        let cfg = Config::from_toml_str(
            &format!("{base}ca_file = \"ca.pem\"\ncert_file = \"/p/c.pem\"\nkey_file = \"k.pem\"\nuser = \"baton\"\npassword_file = \"pw\"\n"),
            Some(Path::new("/etc/baton/baton.toml")),
        )
        .unwrap();
        let e = cfg.etcd.unwrap();
        assert_eq!(e.ca_file.as_deref(), Some(Path::new("/etc/baton/ca.pem")));
        assert_eq!(e.cert_file.as_deref(), Some(Path::new("/p/c.pem")));
        assert_eq!(e.key_file.as_deref(), Some(Path::new("/etc/baton/k.pem")));
        assert_eq!(e.user.as_deref(), Some("baton"));
        assert_eq!(e.password_file.as_deref(), Some(Path::new("/etc/baton/pw")));
        let field = |extra: &str| {
            Config::from_toml_str(&format!("{base}{extra}"), None)
                .unwrap_err()
                .field
        };
        assert_eq!(
            field("cert_file = \"c\"\n").as_deref(),
            Some("etcd.key_file")
        );
        assert_eq!(
            field("key_file = \"k\"\n").as_deref(),
            Some("etcd.cert_file")
        );
        assert_eq!(
            field("user = \"u\"\n").as_deref(),
            Some("etcd.password_file")
        );
        assert_eq!(
            field("password_file = \"p\"\n").as_deref(),
            Some("etcd.user")
        );
        assert_eq!(
            field("user = \"a:b\"\npassword_file = \"p\"\n").as_deref(),
            Some("etcd.user")
        );
    }

    #[test]
    fn full_example_parses() {
        let cfg = parse(
            r#"
            [node]
            name = "a"
            listen = "127.0.0.1:7101"
            labels = { zone = "eu-1", disk = "ssd" }
            hardware = { weight = 2.0 }
            [cluster]
            name = "demo"
            seeds = ["127.0.0.1:7102", "127.0.0.1:7103"]
            voters = ["a", "b", "c"]
            secret_file = "cluster.secret"
            quorum = "majority"
            [timing]
            heartbeat_ms = 100
            failure_timeout_ms = 500
            [[group]]
            name = "tracked"
            policy = ["anti-affinity", "hardware-weight", { plugin = "lib/x.so", config = { zone = "eu-1" } }]
            preempt = false
            [group.anti-affinity]
            avoid_groups = ["ingest"]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.node.labels["zone"], "eu-1");
        assert_eq!(cfg.node.hardware.weight, Some(2.0));
        assert_eq!(
            cfg.cluster.secret_file.as_deref(),
            Some(Path::new("/etc/baton/cluster.secret"))
        );
        let g = &cfg.groups[0];
        assert_eq!(
            g.anti_affinity.as_ref().unwrap().avoid_groups,
            vec!["ingest".to_string()]
        );
        match g.policy.as_ref().unwrap() {
            PolicySpec::Chain(items) => {
                assert_eq!(items[0], PolicySpec::Named("anti-affinity".into()));
                match &items[2] {
                    PolicySpec::Plugin(p) => {
                        assert_eq!(p.plugin, Path::new("/etc/baton/lib/x.so"));
                        assert!(p.config.is_some());
                    }
                    other => panic!("expected plugin, got {other:?}"),
                }
            }
            other => panic!("expected chain, got {other:?}"),
        }
    }

    #[test]
    fn unknown_key_names_the_key_and_file() {
        let e = parse("[node]\nname = \"a\"\nlisen = \"x\"\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("/etc/baton/node.toml"), "{s}");
        assert!(s.contains("lisen"), "{s}");
    }

    #[test]
    fn death_proof_defaults_to_orderly_close_and_takes_timeout() {
        let cfg = parse("[node]\nname = \"a\"\n").unwrap();
        assert_eq!(cfg.cluster.death_proof, DeathProofMode::OrderlyClose);
        let cfg = parse("[node]\nname = \"a\"\n[cluster]\ndeath_proof = \"timeout\"\n").unwrap();
        assert_eq!(cfg.cluster.death_proof, DeathProofMode::Timeout);
        let e = parse("[node]\nname = \"a\"\n[cluster]\ndeath_proof = \"reset\"\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("death_proof") && s.contains("reset"), "{s}");
        assert!(
            s.contains("orderly-close") && s.contains("timeout"),
            "names the choices: {s}"
        );
    }

    #[test]
    fn the_tls_section_resolves_its_paths_and_names_unknown_keys() {
        let text = "[node]\nname = \"a\"\n[cluster.tls]\ncert = \"node.pem\"\nkey = \"/k/node-key.pem\"\nca = \"ca.pem\"\n";
        let cfg = Config::from_toml_str(text, Some(Path::new("/etc/baton/a.toml"))).unwrap();
        let tls = cfg.cluster.tls.unwrap();
        assert_eq!(tls.cert, Path::new("/etc/baton/node.pem"));
        assert_eq!(tls.key, Path::new("/k/node-key.pem"));
        assert_eq!(tls.ca, Path::new("/etc/baton/ca.pem"));
        assert_eq!(parse("[node]\nname = \"a\"\n").unwrap().cluster.tls, None);
        let e = parse("[node]\nname = \"a\"\n[cluster.tls]\ncert = \"c\"\nkey = \"k\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ca"), "{e}");
        let e = parse("[node]\nname = \"a\"\n[cluster.tls]\ncert = \"c\"\nkey = \"k\"\nca = \"a\"\ncrt = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("crt"), "{e}");
    }

    #[test]
    fn the_fingerprint_holds_the_sorted_voters_and_timings() {
        let cfg = parse(
            "[node]\nname = \"b\"\n[cluster]\nseeds = [\"a@127.0.0.1:1\", \"c@127.0.0.1:3\"]\nvoters = [\"c\", \"a\", \"b\"]\n[timing]\nheartbeat_ms = 50\nfailure_timeout_ms = 300\n",
        )
        .unwrap();
        let fp = cfg.fingerprint();
        let voters: Vec<&str> = fp.voters.iter().map(NodeId::as_str).collect();
        assert_eq!(voters, ["a", "b", "c"]);
        assert_eq!((fp.heartbeat_ms, fp.failure_timeout_ms), (50, 300));
        assert_eq!(fp.quorum, "majority");
        assert_eq!(fp.protocol_version, crate::PROTOCOL_VERSION);
    }

    #[test]
    fn unknown_section_is_refused() {
        let e = parse("[node]\nname = \"a\"\n[clustre]\nname = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("clustre"), "{e}");
    }

    /// Parses `toml`, which must fail on `cluster.voters`: the error's text.
    fn voters_error(toml: &str) -> String {
        let e = parse(toml).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("cluster.voters"));
        e.to_string()
    }

    #[test]
    fn voters_naming_no_known_node_name_the_field() {
        let s = voters_error(
            "[node]\nname = \"a\"\n[cluster]\nseeds = [\"127.0.0.1:1\"]\nvoters = [\"x\", \"y\"]\n",
        );
        assert!(s.contains("cluster.voters") && s.contains("\"x\""), "{s}");
    }

    #[test]
    fn voters_may_name_a_named_seed() {
        let cfg = parse(
            "[node]\nname = \"d\"\n[cluster]\nseeds = [\"a@127.0.0.1:1\", \"b@127.0.0.1:2\", \"c@127.0.0.1:3\"]\nvoters = [\"a\", \"b\", \"c\"]\n",
        )
        .unwrap();
        assert!(!cfg.voter_ids().contains(&NodeId::new("d")));
    }

    #[test]
    fn with_every_seed_named_a_voter_no_seed_names_is_an_error() {
        let s = voters_error(
            "[node]\nname = \"n1\"\n[cluster]\nseeds = [\"n2@127.0.0.1:2\", \"n3@127.0.0.1:3\"]\nvoters = [\"n1\", \"n2\", \"nx\"]\n",
        );
        assert!(s.contains("\"nx\" is neither this node"), "{s}");
        assert!(s.contains("/etc/baton/node.toml"), "{s}");
        // A bare seed may lead to the node: accepted (the engine warns if it never shows up).
        parse(
            "[node]\nname = \"n1\"\n[cluster]\nseeds = [\"n2@127.0.0.1:2\", \"127.0.0.1:3\"]\nvoters = [\"n1\", \"n2\", \"nx\"]\n",
        )
        .unwrap();
        // Availability mode has no voters to check.
        parse(
            "[node]\nname = \"n1\"\n[cluster]\nquorum = \"none\"\nseeds = [\"n2@127.0.0.1:2\"]\nvoters = [\"n1\", \"nx\"]\n",
        )
        .unwrap();
    }

    #[test]
    fn majority_with_seeds_needs_voters() {
        let e = parse("[node]\nname = \"a\"\n[cluster]\nseeds = [\"127.0.0.1:1\"]\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("cluster.voters"));
    }

    #[test]
    fn single_node_is_its_own_majority() {
        let cfg = parse("[node]\nname = \"solo\"\n").unwrap();
        assert_eq!(cfg.voter_ids(), [NodeId::new("solo")].into());
    }

    #[test]
    fn bad_policy_shape_names_the_field() {
        let e = parse("[node]\nname = \"a\"\n[[group]]\nname = \"g\"\npolicy = 3\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("policy"), "{s}");
        let e =
            parse("[node]\nname = \"a\"\n[[group]]\nname = \"g\"\npolicy = { plugn = \"x\" }\n")
                .unwrap_err();
        assert!(e.to_string().contains("plugin"), "{e}");
    }

    #[test]
    fn timing_is_checked() {
        let e =
            parse("[node]\nname = \"a\"\n[timing]\nheartbeat_ms = 100\nfailure_timeout_ms = 150\n")
                .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("timing.failure_timeout_ms"));
    }

    #[test]
    fn duplicate_group_is_refused() {
        let e = parse("[node]\nname = \"a\"\n[[group]]\nname = \"g\"\n[[group]]\nname = \"g\"\n")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("group[1].name"));
    }

    #[test]
    fn missing_file_names_the_file() {
        let e = Config::load("/nonexistent/baton.toml").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/baton.toml"), "{e}");
    }
}
