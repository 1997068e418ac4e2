//! Turning `--config FILE` plus flags into a validated [`Config`] and a secret.
//!
//! Flags win over the file. The merge happens on the TOML table, before the typed parse, so
//! that a flag can supply what the file lacks (`--name` for a file without `[node] name`) and
//! every error still goes through [`Config::from_toml_str`]: it names the file and the field.

use crate::cli::{ClientOpts, NodeOpts, QuorumArg};
use crate::errors::{Kind, fail};
use anyhow::Result;
use baton_core::GroupName;
use baton_core::config::{Config, ConfigError, GroupConfig};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The group a node joins when neither the config nor `--group` names one: the original
/// demo's `TrackedService` pool.
pub(crate) const DEFAULT_GROUP: &str = "tracked";

/// A validated config and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// The config, flags applied.
    pub config: Config,
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
}

impl Loaded {
    /// Attaches this config's file to an error.
    pub(crate) fn err(&self, e: ConfigError) -> ConfigError {
        e.in_file(self.file.as_deref())
    }
}

/// Reads the config file (if any) and applies the flags.
pub(crate) fn load_node_config(opts: &NodeOpts) -> Result<Loaded, ConfigError> {
    let file = opts.config.clone();
    let (mut table, original) = match &file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                file: Some(path.clone()),
                field: None,
                message: format!("cannot read: {e}"),
            })?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError {
                file: Some(path.clone()),
                field: None,
                message: e.to_string().trim_end().to_string(),
            })?;
            (table, Some(text))
        }
        None => (toml::Table::new(), None),
    };
    let mut changed = false;
    let mut set = |path: &[&str], value: toml::Value| -> Result<(), ConfigError> {
        changed = true;
        set_in(&mut table, path, value).map_err(|e| e.in_file(file.as_deref()))
    };
    if let Some(name) = &opts.name {
        set(&["node", "name"], name.clone().into())?;
    }
    if let Some(listen) = &opts.listen {
        set(&["node", "listen"], listen.clone().into())?;
    }
    if !opts.seeds.is_empty() {
        set(&["cluster", "seeds"], strings(&opts.seeds))?;
    }
    if !opts.voters.is_empty() {
        set(&["cluster", "voters"], strings(&opts.voters))?;
    }
    if let Some(cluster) = &opts.cluster {
        set(&["cluster", "name"], cluster.clone().into())?;
    }
    if let Some(p) = &opts.secret_file {
        set(&["cluster", "secret_file"], path_value(p)?)?;
    }
    if let Some(q) = opts.quorum {
        let q = match q {
            QuorumArg::Majority => "majority",
            QuorumArg::None => "none",
        };
        set(&["cluster", "quorum"], q.into())?;
    }
    if let Some(p) = &opts.data_dir {
        set(&["node", "data_dir"], path_value(p)?)?;
    }
    for (k, v) in &opts.labels {
        set(&["node", "labels", k.as_str()], v.clone().into())?;
    }
    if let Some(w) = opts.weight {
        if !w.is_finite() || w < 0.0 {
            return Err(ConfigError::field(
                "node.hardware.weight",
                format!("--weight {w} must be a finite number >= 0"),
            ));
        }
        set(&["node", "hardware", "weight"], w.into())?;
    }
    if file.is_none() && opts.name.is_none() {
        set(&["node", "name"], default_node_name().into())?;
    }
    // Parse the file's own text when no flag changed it, so parse errors point at its lines.
    let text = match original {
        Some(text) if !changed => text,
        _ => toml::to_string(&table).map_err(|e| ConfigError {
            file: file.clone(),
            field: None,
            message: format!("cannot merge flags into the config: {e}"),
        })?,
    };
    let config = Config::from_toml_str(&text, file.as_deref())?;
    Ok(Loaded { config, file })
}

fn strings(items: &[String]) -> toml::Value {
    toml::Value::Array(items.iter().cloned().map(toml::Value::String).collect())
}

/// A path from the command line, made absolute against the working directory (relative paths
/// in the file resolve against the file's directory instead).
fn path_value(p: &Path) -> Result<toml::Value, ConfigError> {
    let abs = std::path::absolute(p)
        .map_err(|e| ConfigError::field("path", format!("cannot resolve {}: {e}", p.display())))?;
    match abs.to_str() {
        Some(s) => Ok(s.to_string().into()),
        None => Err(ConfigError::field(
            "path",
            format!("{} is not valid UTF-8", abs.display()),
        )),
    }
}

fn set_in(table: &mut toml::Table, path: &[&str], value: toml::Value) -> Result<(), ConfigError> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut cur = table;
    let mut walked = Vec::new();
    for p in parents {
        walked.push(*p);
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            other => {
                return Err(ConfigError::field(
                    walked.join("."),
                    format!("must be a table, found {}", other.type_str()),
                ));
            }
        };
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

/// The host name (a node without a config file is named after its machine), else "baton".
fn default_node_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| !matches!(c, '@' | '#') && !c.is_whitespace())
        .collect();
    if name.is_empty() {
        "baton".to_string()
    } else {
        name
    }
}

/// Reads the cluster secret of `config`.
///
/// The rule: a node needs `cluster.secret_file` (or `--secret-file`); the file's content,
/// without its trailing newline, is the secret, and must not be empty. Without a secret file
/// the node refuses to start, unless `insecure` (`--insecure-no-secret`) is given: then the
/// secret is empty and publicly known.
pub(crate) fn load_secret(loaded: &Loaded, insecure: bool) -> Result<Vec<u8>, ConfigError> {
    match &loaded.config.cluster.secret_file {
        Some(path) => read_secret(path).map_err(|e| loaded.err(e)),
        None if insecure => Ok(Vec::new()),
        None => Err(loaded.err(ConfigError::field(
            "cluster.secret_file",
            "not set: a cluster needs a shared secret; set cluster.secret_file in the config or pass --secret-file FILE (or, for a local experiment only, --insecure-no-secret)",
        ))),
    }
}

/// Reads a secret file: its bytes without trailing `\r` / `\n`; empty is an error.
pub(crate) fn read_secret(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let field = || "cluster.secret_file".to_string();
    let mut bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: None,
        field: Some(field()),
        message: format!("cannot read secret file {}: {e}", path.display()),
    })?;
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(ConfigError {
            file: None,
            field: Some(field()),
            message: format!("secret file {} is empty", path.display()),
        });
    }
    Ok(bytes)
}

/// Restricts the config's groups to `only` (adding any that are not configured, with the
/// default policy); with `only` empty, every configured group, or [`DEFAULT_GROUP`] when there
/// is none. Returns the groups to join.
pub(crate) fn select_groups(config: &mut Config, only: &[GroupName]) -> Vec<GroupName> {
    let wanted: Vec<GroupName> = if only.is_empty() {
        if config.groups.is_empty() {
            vec![DEFAULT_GROUP.into()]
        } else {
            config.groups.iter().map(|g| g.name.clone()).collect()
        }
    } else {
        let mut v = Vec::new();
        for g in only {
            if !v.contains(g) {
                v.push(g.clone());
            }
        }
        v
    };
    for g in &wanted {
        if config.group(g).is_none() {
            config.groups.push(GroupConfig::new(g.clone()));
        }
    }
    wanted
}

/// Where and how a client connects.
#[derive(Clone)]
pub(crate) struct Target {
    /// The node's address.
    pub addr: String,
    /// The cluster name.
    pub cluster: String,
    /// The secret.
    pub secret: Vec<u8>,
    /// The config, when one was given.
    pub config: Option<Config>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("cluster", &self.cluster)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Resolves a client's target from `--config` and the overriding flags.
pub(crate) fn client_target(opts: &ClientOpts) -> Result<Target> {
    let loaded = match &opts.config {
        Some(path) => Some(load_node_config(&NodeOpts {
            config: Some(path.clone()),
            ..Default::default()
        })?),
        None => None,
    };
    let addr = match (&opts.connect, &loaded) {
        (Some(a), _) => a.clone(),
        (None, Some(l)) => connectable(&l.config.node.listen),
        (None, None) => {
            return Err(fail(
                Kind::Usage,
                "say which node to ask: --config FILE or --connect ADDR",
            ));
        }
    };
    let cluster = match (&opts.cluster, &loaded) {
        (Some(c), _) => c.clone(),
        (None, Some(l)) => l.config.cluster.name.clone(),
        (None, None) => Config::new("x").cluster.name,
    };
    let secret = match (&opts.secret_file, &loaded) {
        (Some(p), _) => read_secret(p)?,
        (None, Some(l)) => load_secret(l, opts.insecure_no_secret)?,
        (None, None) if opts.insecure_no_secret => Vec::new(),
        (None, None) => {
            return Err(fail(
                Kind::Usage,
                "no cluster secret: pass --secret-file FILE (or --config FILE naming one; --insecure-no-secret for a node started with it)",
            ));
        }
    };
    if opts.timeout_ms == 0 {
        return Err(fail(Kind::Usage, "--timeout-ms must be greater than 0"));
    }
    Ok(Target {
        addr,
        cluster,
        secret,
        config: loaded.map(|l| l.config),
    })
}

/// A listen address turned into one a client can dial: an unspecified IP (`0.0.0.0`, `::`)
/// becomes loopback.
pub(crate) fn connectable(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(mut sa) if sa.ip().is_unspecified() => {
            let ip = match sa.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            sa.set_ip(ip);
            sa.to_string()
        }
        _ => listen.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::config::QuorumMode;

    /// Writes `text` to file `name` in a fresh scratch directory `tag`; returns its path.
    fn config_file(tag: &str, name: &str, text: &str) -> std::path::PathBuf {
        let f = tmpdir(tag).join(name);
        std::fs::write(&f, text).unwrap();
        f
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("baton-cli-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn opts_with(file: &Path) -> NodeOpts {
        NodeOpts {
            config: Some(file.to_path_buf()),
            ..Default::default()
        }
    }

    #[test]
    fn no_file_gives_defaults() {
        let l = load_node_config(&NodeOpts::default()).unwrap();
        assert!(!l.config.node.name.is_empty());
        assert_eq!(l.config.node.listen, "127.0.0.1:7100");
        assert_eq!(l.config.cluster.quorum, QuorumMode::Majority);
        assert!(l.file.is_none());
    }

    #[test]
    fn flags_win_over_the_file() {
        let f = config_file(
            "flags",
            "a.toml",
            "[node]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\nlabels = { zone = \"x\" }\n[cluster]\nname = \"demo\"\nseeds = [\"b@127.0.0.1:2\"]\nvoters = [\"a\", \"b\"]\nsecret_file = \"s\"\n",
        );
        let mut o = opts_with(&f);
        o.name = Some("z".into());
        o.listen = Some("127.0.0.1:9".into());
        o.voters = vec!["z".into(), "b".into()];
        o.labels = vec![("disk".into(), "ssd".into()), ("zone".into(), "y".into())];
        o.weight = Some(2.5);
        o.quorum = Some(QuorumArg::None);
        o.secret_file = Some(PathBuf::from("rel.secret"));
        let l = load_node_config(&o).unwrap();
        let c = &l.config;
        assert_eq!(c.node.name, "z");
        assert_eq!(c.node.listen, "127.0.0.1:9");
        assert_eq!(c.cluster.name, "demo");
        assert_eq!(c.cluster.voters, vec!["z", "b"]);
        assert_eq!(c.cluster.quorum, QuorumMode::None);
        assert_eq!(c.node.labels["zone"], "y");
        assert_eq!(c.node.labels["disk"], "ssd");
        assert_eq!(c.node.hardware.weight, Some(2.5));
        // A flag path is relative to the working directory, not to the file.
        assert_eq!(
            c.cluster.secret_file.as_deref(),
            Some(std::path::absolute("rel.secret").unwrap().as_path())
        );
        // Without the flag, the file's relative path resolves against the file's directory.
        let l = load_node_config(&opts_with(&f)).unwrap();
        assert_eq!(l.config.cluster.secret_file, Some(f.with_file_name("s")));
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let d = tmpdir("errors");
        let f = d.join("bad.toml");
        std::fs::write(&f, "[node]\nname = \"a\"\nlisen = \"x\"\n").unwrap();
        let e = load_node_config(&opts_with(&f)).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("lisen"), "{e}");

        std::fs::write(
            &f,
            "[node]\nname = \"a\"\n[cluster]\nseeds = [\"1.2.3.4:5\"]\n",
        )
        .unwrap();
        let e = load_node_config(&opts_with(&f)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("cluster.voters"));
        assert!(e.to_string().contains("bad.toml"), "{e}");
        // ...and the flag fixes it.
        let mut o = opts_with(&f);
        o.voters = vec!["a".into()];
        assert!(load_node_config(&o).is_ok());

        let e = load_node_config(&opts_with(&d.join("missing.toml"))).unwrap_err();
        assert!(e.to_string().contains("missing.toml"), "{e}");

        std::fs::write(&f, "[node\nname = \"a\"\n").unwrap();
        let e = load_node_config(&opts_with(&f)).unwrap_err();
        assert!(e.to_string().contains("bad.toml"), "{e}");

        std::fs::write(&f, "node = 3\n").unwrap();
        let mut o = opts_with(&f);
        o.name = Some("a".into());
        let e = load_node_config(&o).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("node"));
    }

    #[test]
    fn policy_errors_convert_with_the_file() {
        let f = config_file(
            "policy",
            "p.toml",
            "[node]\nname = \"a\"\n[[group]]\nname = \"g\"\npolicy = \"olderst-running\"\n",
        );
        let l = load_node_config(&opts_with(&f)).unwrap();
        let e = baton_strategies::policies_for(&l.config)
            .map_err(|e| l.err(e.into()))
            .err()
            .unwrap();
        let s = e.to_string();
        assert!(s.contains("p.toml") && s.contains("olderst-running"), "{s}");
    }

    #[test]
    fn secret_rules() {
        let d = tmpdir("secret");
        let mut o = NodeOpts::default();
        let l = load_node_config(&o).unwrap();
        let e = load_secret(&l, false).unwrap_err().to_string();
        assert!(
            e.contains("secret_file") && e.contains("--insecure-no-secret"),
            "{e}"
        );
        assert_eq!(load_secret(&l, true).unwrap(), Vec::<u8>::new());

        let s = d.join("cluster.secret");
        std::fs::write(&s, "hunter2\n").unwrap();
        o.secret_file = Some(s.clone());
        let l = load_node_config(&o).unwrap();
        assert_eq!(load_secret(&l, false).unwrap(), b"hunter2");

        o.secret_file = Some(d.join("nope.secret"));
        let l = load_node_config(&o).unwrap();
        let e = load_secret(&l, true).unwrap_err().to_string();
        assert!(e.contains("nope.secret"), "{e}");

        std::fs::write(&s, "\n").unwrap();
        assert!(read_secret(&s).unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn groups_are_selected() {
        let mut c = Config::new("a");
        assert_eq!(select_groups(&mut c, &[]), vec!["tracked"]);
        assert!(c.group("tracked").is_some());
        let mut c = Config::new("a");
        c.groups.push(GroupConfig::new("x"));
        c.groups.push(GroupConfig::new("y"));
        assert_eq!(select_groups(&mut c, &[]), vec!["x", "y"]);
        assert_eq!(
            select_groups(&mut c, &["y".into(), "z".into()]),
            vec!["y", "z"]
        );
        assert!(c.group("z").is_some());
    }

    #[test]
    fn unspecified_listen_becomes_loopback() {
        assert_eq!(connectable("0.0.0.0:7101"), "127.0.0.1:7101");
        assert_eq!(connectable("[::]:7101"), "[::1]:7101");
        assert_eq!(connectable("10.0.0.1:7101"), "10.0.0.1:7101");
        assert_eq!(connectable("host:1"), "host:1");
    }
}
