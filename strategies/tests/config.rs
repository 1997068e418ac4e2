//! `policies_for` on parsed TOML configs: the table the CLI uses.

use baton_core::config::{Config, ConfigError};
use baton_core::{Candidate, ElectionInput, GroupName, Hardware, LeaderPolicy, MemberId, NodeId};
use baton_strategies::{PolicyErrorKind, policies_for};
use std::path::Path;

const CONFIG: &str = r#"
[node]
name = "a"

[[group]]
name = "plain"

[[group]]
name = "heavy"
policy = "hardware-weight"

[[group]]
name = "tracked"
policy = ["anti-affinity", "hardware-weight", "oldest-running"]

[group.anti-affinity]
avoid_groups = ["ingest"]
avoid_labels = { disk = "hdd" }

[[group]]
name = "nested"
policy = [["hardware-weight"], "oldest-running"]
"#;

fn candidate(node: &str, cpus: u32, started_at_ms: u64, disk: &str) -> Candidate {
    Candidate {
        member: MemberId::new(node, 0),
        started_at_ms,
        incarnation: baton_core::Incarnation(1),
        hardware: Hardware {
            cpus,
            memory_bytes: 0,
            weight: None,
        },
        labels: [("disk".to_string(), disk.to_string())].into(),
        services: [].into(),
        leads: 0,
        version: None,
    }
}

fn ids(nodes: &[&str]) -> Vec<MemberId> {
    nodes.iter().map(|n| MemberId::new(*n, 0)).collect()
}

/// a: big, young, leads "ingest"; b: big, old, hdd; c: small, oldest; d: small, young.
fn input(group: &str) -> ElectionInput {
    ElectionInput {
        group: group.into(),
        candidates: vec![
            candidate("a", 16, 500, "ssd"),
            candidate("b", 16, 100, "hdd"),
            candidate("c", 2, 50, "ssd"),
            candidate("d", 2, 400, "ssd"),
        ],
        incumbent: None,
        leaders: std::sync::Arc::new([("ingest".into(), NodeId::new("a"))].into()),
    }
}

#[test]
fn policies_for_builds_every_group_from_parsed_toml() {
    let cfg = Config::from_toml_str(CONFIG, None).unwrap();
    let policies = policies_for(&cfg).unwrap();
    assert_eq!(
        policies.keys().map(GroupName::as_str).collect::<Vec<_>>(),
        ["heavy", "nested", "plain", "tracked"]
    );
    let name = |g: &str| policies[g].name().to_string();
    assert_eq!(name("plain"), "oldest-running");
    assert_eq!(name("heavy"), "hardware-weight");
    assert_eq!(name("tracked"), "chain");
    assert_eq!(name("nested"), "chain");

    for (group, want) in [
        ("plain", ["c", "b", "d", "a"]),
        ("heavy", ["a", "b", "c", "d"]),
        ("nested", ["b", "a", "c", "d"]),
        // The group's anti-affinity settings reach the policy: a leads "ingest" and b has an
        // hdd, so c and d come first (hardware ties them, c is older); then a and b, b is older.
        ("tracked", ["c", "d", "b", "a"]),
    ] {
        assert_eq!(policies[group].rank(&input(group)), ids(&want), "{group}");
    }
}

#[test]
fn anti_affinity_without_settings_ties_everyone() {
    let cfg = Config::from_toml_str(
        "[node]\nname = \"a\"\n[[group]]\nname = \"g\"\npolicy = [\"anti-affinity\", \"oldest-running\"]\n",
        None,
    )
    .unwrap();
    let policies = policies_for(&cfg).unwrap();
    // Nobody is avoided: oldest-running alone decides.
    assert_eq!(policies["g"].rank(&input("g")), ids(&["c", "b", "d", "a"]));
}

#[test]
fn no_groups_no_policies() {
    let cfg = Config::from_toml_str("[node]\nname = \"a\"\n", None).unwrap();
    assert!(policies_for(&cfg).unwrap().is_empty());
}

#[test]
fn a_typo_in_one_group_names_that_group_and_element() {
    let text = CONFIG.replace(
        "policy = [\"anti-affinity\", \"hardware-weight\", \"oldest-running\"]",
        "policy = [\"anti-affinity\", \"olderst-running\"]",
    );
    let file = Path::new("/etc/baton/node.toml");
    let cfg = Config::from_toml_str(&text, Some(file)).unwrap();
    let e = policies_for(&cfg).err().unwrap();
    assert_eq!(e.group, "tracked");
    assert_eq!(e.field, "policy[1]");
    assert_eq!(
        e.to_string(),
        "group \"tracked\": policy[1]: unknown policy \"olderst-running\"; \
         known policies: oldest-running, hardware-weight, anti-affinity, balanced, oldest-version, newest-version, chain"
    );
    let ce = ConfigError::from(e).in_file(Some(file));
    assert_eq!(ce.field.as_deref(), Some("group \"tracked\".policy[1]"));
    assert!(
        ce.to_string()
            .starts_with("/etc/baton/node.toml: group \"tracked\".policy[1]: unknown policy"),
        "{ce}"
    );
}

#[test]
fn a_plugin_in_config_is_a_clear_error() {
    let cfg = Config::from_toml_str(
        "[node]\nname = \"a\"\n[[group]]\nname = \"p\"\npolicy = { plugin = \"lib/libx.so\" }\n",
        Some(Path::new("/etc/baton/node.toml")),
    )
    .unwrap();
    let e = policies_for(&cfg).err().unwrap();
    assert_eq!(e.field, "policy");
    match &e.kind {
        PolicyErrorKind::Plugin { path, reason } => {
            assert_eq!(path, Path::new("/etc/baton/lib/libx.so"));
            if cfg!(feature = "plugin") {
                assert_eq!(reason, "no such file");
            } else {
                assert!(reason.contains("not built into this binary"), "{reason}");
            }
        }
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

#[test]
fn chain_by_name_in_config_asks_for_a_list() {
    let cfg = Config::from_toml_str(
        "[node]\nname = \"a\"\n[[group]]\nname = \"c\"\npolicy = \"chain\"\n",
        None,
    )
    .unwrap();
    let e = policies_for(&cfg).err().unwrap();
    assert_eq!(e.kind, PolicyErrorKind::ChainByName);
    assert!(e.to_string().contains("list"), "{e}");
}
