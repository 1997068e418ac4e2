//! The plugin host against real cdylibs: `cargo test -p baton-core --features plugin-host`.
//!
//! # How the plugins get built
//!
//! The test builds the shared libraries it loads itself: the first test that needs one runs
//! `cargo build -p custom-policy -p baton-test-plugin-…` (the same `cargo` that runs the test,
//! `env!("CARGO")`) in the workspace, with `--target-dir` set to this test's own target
//! directory (the parent of `CARGO_TARGET_TMPDIR`), once per test binary (`OnceLock`), and
//! loads `<target>/debug/lib<name>.so`. `cargo test` does not hold the build lock while the
//! test runs, so the nested build does not wait for it; when nothing changed it is a no-op that
//! takes a fraction of a second. (A `build.rs` could not do this: it would run inside the outer
//! build, under its lock, and a build script building the workspace's own crates is a cycle.)
//!
//! The test plugins live in `tests-support/plugins/`: `misbehaving` (panics and bad rankings on
//! demand), `no-symbol`, `bad-magic` and `abi-mismatch`.
//!
//! The statically linked reference for the equivalence test is `examples/custom-policy`'s
//! `zone.rs`, compiled into this test with `#[path]` (baton-core cannot depend on the example
//! crate: dependencies point inward).
#![cfg(feature = "plugin-host")]
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example crate's module, seen from inside a test: only part of it is used here"
)]
#[path = "../../examples/custom-policy/src/zone.rs"]
mod zone;

use baton_core::config::{Config, PolicySpec};
use baton_core::plugin::abi::ABI_VERSION;
use baton_core::plugin::{LoadedPolicy, PluginError, PluginPolicy, load_policy, load_spec};
use baton_core::{ByMemberId, Candidate, ElectionInput, Hardware, LeaderPolicy, MemberId, NodeId};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use zone::ZonePreference;

const PLUGIN_CRATES: &[&str] = &[
    "custom-policy",
    "baton-test-plugin-misbehaving",
    "baton-test-plugin-no-symbol",
    "baton-test-plugin-bad-magic",
    "baton-test-plugin-abi-mismatch",
];

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core/ has a parent")
}

/// Builds every test plugin once per test binary and returns the directory they are in.
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR is <target>/tmp");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(workspace_root())
            .arg("build")
            .arg("--target-dir")
            .arg(target_dir);
        for krate in PLUGIN_CRATES {
            cargo.args(["-p", krate]);
        }
        let output = cargo.output().expect("cannot run cargo");
        assert!(
            output.status.success(),
            "building the test plugins failed ({:?}):\n{}",
            cargo,
            String::from_utf8_lossy(&output.stderr)
        );
        target_dir.join("debug")
    })
}

/// The path of the cdylib of `lib_name` (`custom_policy`), built if needed.
fn plugin(lib_name: &str) -> PathBuf {
    plugin_dir().join(format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

fn zone_config(zone: &str) -> toml::Value {
    toml::from_str(&format!("zone = {zone:?}")).unwrap()
}

fn mode_config(mode: &str) -> toml::Value {
    toml::from_str(&format!("mode = {mode:?}")).unwrap()
}

fn load_zone(zone: &str) -> LoadedPolicy {
    load_policy(&plugin("custom_policy"), Some(&zone_config(zone))).expect("load custom-policy")
}

fn load_misbehaving(mode: &str) -> LoadedPolicy {
    load_policy(
        &plugin("baton_test_plugin_misbehaving"),
        Some(&mode_config(mode)),
    )
    .expect("load the misbehaving plugin")
}

const ZONES: &[Option<&str>] = &[Some("eu-1"), Some("eu-2"), Some("us-1"), None];
const LOADS: &[Option<&str>] = &[
    None,
    Some("0"),
    Some("-0"),
    Some("0.5"),
    Some("1"),
    Some("1.0"),
    Some("2.5"),
    Some("10"),
    Some("-1"),
    Some(" 3 "),
    Some("1e3"),
    Some("inf"),
    Some("NaN"),
    Some("high"),
    Some(""),
];

fn random_input(rng: &mut baton_testkit::Rng) -> ElectionInput {
    let wanted = rng.u64(..13) as usize;
    let mut members = BTreeSet::new();
    while members.len() < wanted {
        members.insert(MemberId::new(
            format!("n{}", rng.u64(..10)),
            rng.u64(..3) as u32,
        ));
    }
    let candidates: Vec<Candidate> = members
        .into_iter()
        .map(|member| {
            let mut labels = baton_core::Labels::new();
            if let Some(zone) = rng.choice(ZONES).copied().flatten() {
                labels.insert("zone".into(), zone.to_string());
            }
            if let Some(load) = rng.choice(LOADS).copied().flatten() {
                labels.insert("load".into(), load.to_string());
            }
            if rng.u64(..2) == 0 {
                labels.insert("disk".into(), "ssd".into());
            }
            Candidate {
                member,
                started_at_ms: 1_700_000_000_000 + rng.u64(..4) * 1000,
                incarnation: baton_core::Incarnation(rng.u64(..3)),
                hardware: Hardware {
                    cpus: 1 + rng.u64(..16) as u32,
                    memory_bytes: rng.u64(..64) << 30,
                    weight: (rng.u64(..2) == 0).then(|| rng.u64(..100) as f64 / 10.0),
                },
                labels,
                services: ["tracked".into()].into(),
                leads: 0,
                version: None,
            }
        })
        .collect();
    let incumbent = match candidates.len() {
        0 => None,
        n => (rng.u64(..2) == 0).then(|| candidates[rng.u64(..n as u64) as usize].member.clone()),
    };
    let mut leaders = std::collections::BTreeMap::new();
    if rng.u64(..2) == 0 {
        leaders.insert("ingest".into(), NodeId::new(format!("n{}", rng.u64(..10))));
    }
    ElectionInput {
        group: "tracked".into(),
        candidates,
        incumbent,
        leaders: leaders.into(),
    }
}

fn sample_input(nodes: &[&str]) -> ElectionInput {
    let mut input = ElectionInput::of_nodes("g", nodes);
    for c in &mut input.candidates {
        c.incarnation = baton_core::Incarnation(1);
    }
    input
}

#[test]
fn plugin_ranks_like_the_statically_linked_policy() {
    let mut policies = Vec::new();
    for zone in ["eu-1", "us-1"] {
        let loaded = load_zone(zone);
        assert_eq!(loaded.name(), "zone-preference");
        let config = serde_json::json!({ "zone": zone });
        policies.push((loaded, ZonePreference::from_config(config).unwrap()));
    }
    let mut rng = baton_testkit::Rng::with_seed(0xBA70_2024);
    for case in 0..1_000 {
        let input = random_input(&mut rng);
        for (loaded, linked) in &policies {
            assert_eq!(
                loaded.rank(&input),
                linked.rank(&input),
                "case {case}, zone {}: {input:?}",
                linked.zone()
            );
            assert_eq!(
                loaded.tiers(&input),
                linked.tiers(&input),
                "case {case}, zone {}: {input:?}",
                linked.zone()
            );
        }
    }
    for (loaded, _) in &policies {
        assert_eq!(loaded.error_count(), 0, "{:?}", loaded.last_error());
        assert_eq!(loaded.last_error(), None);
    }
}

#[test]
fn rank_is_safe_from_many_threads() {
    let loaded = load_zone("eu-1");
    let linked = ZonePreference::new("eu-1");
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (loaded, linked) = (&loaded, &linked);
            s.spawn(move || {
                let mut rng = baton_testkit::Rng::with_seed(t);
                for _ in 0..100 {
                    let input = random_input(&mut rng);
                    assert_eq!(loaded.rank(&input), linked.rank(&input));
                }
            });
        }
    });
    assert_eq!(loaded.error_count(), 0);
}

#[test]
fn a_dropped_policy_can_be_loaded_again() {
    let input = sample_input(&["a", "b"]);
    let first = load_zone("eu-1");
    let expected = first.rank(&input);
    drop(first);
    assert_eq!(load_zone("eu-1").rank(&input), expected);
}

#[test]
fn config_plugin_spec_loads_in_one_call() {
    let path = plugin("custom_policy");
    let toml = format!(
        "[node]\nname = \"a\"\n[[group]]\nname = \"tracked\"\npolicy = {{ plugin = {:?}, config = {{ zone = \"eu-1\" }} }}\n",
        path.display().to_string()
    );
    let config = Config::from_toml_str(&toml, None).unwrap();
    let Some(PolicySpec::Plugin(spec)) = &config.groups[0].policy else {
        panic!("expected a plugin policy");
    };
    let policy: Box<dyn LeaderPolicy> = Box::new(load_spec(spec).unwrap());
    assert_eq!(policy.name(), "zone-preference");
}

#[test]
fn relative_paths_are_not_searched_for_in_the_library_path() {
    let path = plugin("custom_policy");
    let cwd = std::env::current_dir().unwrap();
    // `cargo test` runs in the package directory, core/; the target dir is usually the
    // workspace's.
    let Ok(inside) = path.strip_prefix(workspace_root()) else {
        return;
    };
    if cwd != Path::new(env!("CARGO_MANIFEST_DIR")) {
        return;
    }
    let relative = Path::new("..").join(inside);
    let loaded = load_policy(&relative, Some(&zone_config("eu-1"))).unwrap();
    assert_eq!(loaded.path(), relative);
}

#[test]
fn not_found() {
    let path = plugin_dir().join("libdoes_not_exist.so");
    let e = load_policy(&path, None).unwrap_err();
    assert_eq!(e, PluginError::NotFound { path: path.clone() });
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

#[test]
fn a_file_that_is_no_library_fails_to_load() {
    let path = workspace_root().join("core/Cargo.toml");
    let e = load_policy(&path, None).unwrap_err();
    assert!(matches!(e, PluginError::Load { .. }), "{e:?}");
    assert!(e.to_string().contains("core/Cargo.toml"), "{e}");
    // The loader's own message (glibc: "invalid ELF header"), not libloading's bare
    // "dlopen failed".
    match &e {
        PluginError::Load { message, .. } => {
            let detail = message.strip_prefix("dlopen failed: ").unwrap_or_default();
            assert!(detail.len() > 3, "no loader message in {message:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_library_without_the_symbol_is_not_a_plugin() {
    let path = plugin("baton_test_plugin_no_symbol");
    let e = load_policy(&path, None).unwrap_err();
    match &e {
        PluginError::NotAPlugin { path: p, reason } => {
            assert_eq!(p, &path);
            assert!(reason.contains("baton_policy_v1"), "{reason}");
        }
        other => panic!("expected NotAPlugin, got {other:?}"),
    }
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

#[test]
fn the_c_library_is_not_a_plugin() {
    let candidates = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib64/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib/libc.so.6",
    ];
    let Some(libc) = candidates.iter().map(Path::new).find(|p| p.exists()) else {
        eprintln!("no libc.so.6 found; skipped");
        return;
    };
    let e = load_policy(libc, None).unwrap_err();
    assert!(matches!(e, PluginError::NotAPlugin { .. }), "{e:?}");
}

#[test]
fn bad_magic_is_not_a_plugin() {
    let path = plugin("baton_test_plugin_bad_magic");
    let e = load_policy(&path, None).unwrap_err();
    match &e {
        PluginError::NotAPlugin { reason, .. } => {
            assert!(
                reason.contains("magic") && reason.contains("NOTBATON"),
                "{reason}"
            )
        }
        other => panic!("expected NotAPlugin, got {other:?}"),
    }
}

#[test]
fn abi_mismatch_names_found_and_expected() {
    let path = plugin("baton_test_plugin_abi_mismatch");
    let e = load_policy(&path, None).unwrap_err();
    assert_eq!(
        e,
        PluginError::AbiMismatch {
            path: path.clone(),
            found: ABI_VERSION + 41,
            expected: ABI_VERSION
        }
    );
    let message = e.to_string();
    assert!(
        message.contains(&format!(
            "rebuild the plugin against baton-core {}.{}",
            env!("CARGO_PKG_VERSION_MAJOR"),
            env!("CARGO_PKG_VERSION_MINOR")
        )),
        "{message}"
    );
}

#[test]
fn create_failed_carries_the_plugins_message() {
    let path = plugin("custom_policy");
    let bad: toml::Value = toml::from_str("zone = 3").unwrap();
    match load_policy(&path, Some(&bad)).unwrap_err() {
        PluginError::CreateFailed { path: p, message } => {
            assert_eq!(p, path);
            assert!(message.contains("`zone` must be a string"), "{message}");
        }
        other => panic!("expected CreateFailed, got {other:?}"),
    }
    let e = load_policy(&path, None).unwrap_err();
    assert!(matches!(e, PluginError::CreateFailed { .. }), "{e:?}");
    assert!(e.to_string().contains("needs `config = { zone"), "{e}");
}

#[test]
fn panic_in_create_is_reported_not_propagated() {
    let path = plugin("baton_test_plugin_misbehaving");
    match load_policy(&path, Some(&mode_config("panic-on-create"))).unwrap_err() {
        PluginError::Panicked { message, .. } => {
            assert!(message.contains("create panics as configured"), "{message}")
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
}

#[test]
fn panic_in_rank_falls_back_to_member_id_order() {
    let policy = load_misbehaving("panic-on-rank");
    let input = sample_input(&["c", "a", "b"]);
    for round in 1..=3 {
        assert_eq!(policy.rank(&input), ByMemberId.rank(&input));
        assert_eq!(policy.error_count(), round);
    }
    match policy.last_error() {
        Some(PluginError::Panicked { message, .. }) => {
            assert!(message.contains("rank panics as configured"), "{message}")
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    // Tiers fall back to "no preference": one tier of everyone, in member-id order.
    assert_eq!(policy.tiers(&input), vec![ByMemberId.rank(&input)]);
    assert_eq!(policy.error_count(), 4);
    assert!(matches!(
        policy.try_rank(&input),
        Err(PluginError::Panicked { .. })
    ));
    // Still alive, and so is the plugin: a well-behaved instance of the same library works.
    let fine = load_misbehaving("ok");
    let mut reversed = ByMemberId.rank(&input);
    reversed.reverse();
    assert_eq!(fine.rank(&input), reversed);
    assert_eq!(fine.error_count(), 0);
}

#[test]
fn bad_rankings_fall_back_to_member_id_order() {
    let input = sample_input(&["c", "a", "b"]);
    for (mode, needle) in [
        ("duplicates", "appears more than once"),
        ("unknown", "nobody#7 is not a candidate"),
        ("missing", "is missing"),
    ] {
        let policy = load_misbehaving(mode);
        assert_eq!(policy.rank(&input), ByMemberId.rank(&input), "{mode}");
        assert_eq!(policy.error_count(), 1, "{mode}");
        match policy.last_error() {
            Some(PluginError::BadRanking { path, reason }) => {
                assert!(reason.contains(needle), "{mode}: {reason}");
                assert_eq!(path, plugin("baton_test_plugin_misbehaving"));
            }
            other => panic!("{mode}: expected BadRanking, got {other:?}"),
        }
        let e = policy.try_rank(&input).unwrap_err();
        assert!(e.to_string().contains("bad ranking"), "{e}");
    }
}

mod support;

/// A 3-node in-memory cluster whose group names the example plugin in its config: the leader
/// is the one the plugin prefers, not the oldest.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_cluster_elects_the_leader_a_plugin_from_config_prefers() {
    use baton_core::config::{GroupConfig, PluginSpec, QuorumMode};
    let path = plugin("custom_policy");
    let mut g = GroupConfig::new("tracked");
    // A chain element, as users write it: plugin first, oldest-running breaks its ties.
    let mut cfg = toml::Table::new();
    cfg.insert("zone".into(), toml::Value::String("us-1".into()));
    g.policy = Some(PolicySpec::Chain(vec![
        PolicySpec::Plugin(PluginSpec {
            plugin: path,
            config: Some(toml::Value::Table(cfg)),
        }),
        PolicySpec::Named("oldest-running".into()),
    ]));
    let mut c = support::Cluster::memory(&["a", "b", "c"], QuorumMode::Majority, vec![g]);
    for (node, zone, load) in [("a", "eu-1", "1"), ("b", "us-1", "5"), ("c", "us-1", "2")] {
        let labels = [
            ("zone".to_string(), zone.to_string()),
            ("load".to_string(), load.to_string()),
        ];
        c.labels.insert(node.into(), labels.into_iter().collect());
    }
    for n in ["a", "b", "c"] {
        c.start(n).await;
    }
    let l = c.agreed("tracked", support::LIMIT).await;
    // zone us-1 first (b, c), then the lowest load: c — although a is the oldest.
    assert_eq!(l.leader.as_ref().unwrap().node.as_str(), "c");
    // Kill it: the plugin's next choice, b, takes over.
    c.kill("c");
    let l2 = c.agreed("tracked", support::LIMIT).await;
    assert_eq!(l2.leader.unwrap().node.as_str(), "b");
}
