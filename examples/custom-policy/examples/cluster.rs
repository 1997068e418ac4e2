//! A 3-node in-memory cluster electing with the zone-preference policy — linked statically, or,
//! with `--plugin PATH`, loaded from the group's config as a plugin (the same code either way).
//!
//! ```text
//! cargo run -p custom-policy --example cluster
//! cargo build -p custom-policy --release
//! cargo run -p custom-policy --example cluster -- --plugin target/release/libcustom_policy.so
//! ```
#![allow(
    clippy::print_stdout,
    reason = "an example program: what it prints is what it shows"
)]

use baton_core::Node;
use baton_core::config::{GroupConfig, PluginSpec, PolicySpec};
use baton_transport_memory::MemoryNetwork;
use custom_policy::ZonePreference;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let plugin = args
        .iter()
        .position(|a| a == "--plugin")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);

    let net = MemoryNetwork::new();
    let nodes = [
        ("a", "eu-1", "0.1"),
        ("b", "us-1", "0.9"),
        ("c", "us-1", "0.3"),
    ];
    let names: Vec<String> = nodes.iter().map(|(n, _, _)| n.to_string()).collect();
    let mut running = Vec::new();
    for (name, zone, load) in nodes {
        let mut config = MemoryNetwork::member_config(name, &names);
        config.node.labels.insert("zone".into(), zone.into());
        config.node.labels.insert("load".into(), load.into());
        let mut group = GroupConfig::new("tracked");
        let builder = match &plugin {
            Some(path) => {
                // From config, as `policy = { plugin = "…", config = { zone = "us-1" } }`.
                let mut cfg = toml::Table::new();
                cfg.insert("zone".into(), toml::Value::String("us-1".into()));
                group.policy = Some(PolicySpec::Plugin(PluginSpec {
                    plugin: path.clone(),
                    config: Some(toml::Value::Table(cfg)),
                }));
                config.groups.push(group);
                let policies = baton_strategies::policies_for(&config)?;
                Node::builder(config).policies(policies)
            }
            None => {
                // Named in config like a built-in, `policy = "zone-preference"`, and linked in
                // by registering that name.
                group.policy = Some(PolicySpec::Named("zone-preference".into()));
                config.groups.push(group);
                let policies = baton_strategies::Policies::with_builtins()
                    .register("zone-preference", |_group: &GroupConfig| {
                        ZonePreference::new("us-1")
                    })
                    .build_for(&config)?;
                Node::builder(config).policies(policies)
            }
        };
        let node = builder.transport(Arc::new(net.transport())).start().await?;
        // Kept: dropping a `Service` leaves its group.
        let service = node.join("tracked", Default::default()).await?;
        running.push((node, service));
    }
    let mut watch = running[0].0.leadership("tracked");
    let l = watch.wait_for(|l| l.leader.is_some()).await?.clone();
    let how = if plugin.is_some() { "plugin" } else { "static" };
    println!(
        "zone-preference ({how}) for us-1: leader is {} (term {}) — c: in us-1 with the lowest load",
        l.leader
            .as_ref()
            .map(|m| m.node.to_string())
            .unwrap_or_default(),
        l.term
    );
    assert_eq!(l.leader.expect("a leader was elected").node.as_str(), "c");
    for (n, _) in &running {
        n.shutdown().await;
    }
    Ok(())
}
