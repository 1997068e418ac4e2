//! Two leaders at once, one SQLite database: a 3-node in-memory cluster in availability mode
//! (`quorum = "none"`) is partitioned, each side elects a leader, both write — and the old
//! leader's write is refused because the new leader's higher term has already written.
//!
//! ```text
//! cargo run -p fencing-sqlite
//! ```
#![allow(
    clippy::print_stdout,
    reason = "an example program: what it prints is what it shows"
)]

use baton_core::config::QuorumMode;
use baton_core::{Node, Service};
use baton_transport_memory::MemoryNetwork;
use fencing_sqlite::FencedStore;
use std::sync::Arc;
use std::time::Duration;

const G: &str = "ledger";

/// Waits until `svc` leads and returns its fencing token.
async fn term_of(svc: &Service) -> Result<u64, Box<dyn std::error::Error>> {
    let mut watch = svc.leadership();
    Ok(watch.wait_for(|l| l.is_me()).await?.term)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let net = MemoryNetwork::new();
    let names = ["a", "b", "c"];
    let mut nodes = Vec::new();
    for name in names {
        let mut config = MemoryNetwork::member_config(name, &names);
        config.cluster.quorum = QuorumMode::None; // availability: each side of a split leads
        let node = Node::builder(config)
            .transport(Arc::new(net.transport()))
            .policy(Arc::new(baton_strategies::OldestRunning))
            .start()
            .await?;
        let svc = node.join(G, Default::default()).await?;
        nodes.push((node, svc));
        tokio::time::sleep(Duration::from_millis(5)).await; // a distinct age each
    }

    let path =
        std::env::temp_dir().join(format!("baton-fencing-demo-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut at_a = FencedStore::open(&path)?;
    let mut at_b = FencedStore::open(&path)?;

    let a_term = term_of(&nodes[0].1).await?;
    at_a.write("owner", "a", a_term)?;
    println!("a leads (term {a_term}) and writes owner = a");

    net.partition(&[&["a"], &["b", "c"]]);
    let b_term = term_of(&nodes[1].1).await?;
    println!(
        "partitioned: b leads too (term {b_term}); a still leads: {}",
        nodes[0].1.is_leader()
    );
    at_b.write("owner", "b", b_term)?;
    println!("b writes owner = b under term {b_term}");
    match at_a.write("owner", "a, stale", a_term) {
        Ok(()) => println!("a's write landed — the fence is broken"),
        Err(e) => println!("a writes under term {a_term}: refused ({e})"),
    }
    let (value, term) = at_a.read("owner")?.unwrap_or_default();
    println!("owner = {value} (written under term {term})");
    assert_eq!(value, "b");

    net.heal();
    for (node, _) in &nodes {
        node.shutdown().await;
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}
