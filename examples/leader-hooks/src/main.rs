//! Leadership hooks in the style of client-go's `leaderelection` callbacks, on a 3-node
//! in-memory cluster:
//!
//! - `on_started_leading(|term, cancel| async { … })`: work that runs only while this instance
//!   leads; `cancel` fires when that leadership ends;
//! - `on_stopped_leading(|term| …)`, after that work has returned;
//! - `on_new_leader(|leadership| …)`, on every node, for every new leader;
//!
//! and the guarantee that matters: a kind shutdown of the leader cancels its work and waits
//! (still leading, bounded by `NodeBuilder::release_timeout`) until the work has stopped —
//! here it flushes for 200 ms — before the successor may lead. The closures are `FnMut`: the
//! per-node tick counter needs no `Mutex`.
//!
//! ```text
//! cargo run -p leader-hooks
//! ```
#![allow(
    clippy::print_stdout,
    reason = "an example program: what it prints is what it shows"
)]

use baton_core::{CancellationToken, Node, Term};
use baton_transport_memory::MemoryNetwork;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The leader's work: a tick every 50 ms until `cancel` fires, then a 200 ms flush.
async fn lead(node: String, term: Term, cancel: CancellationToken, since: Instant) {
    let mut ticks = 0u32;
    let mut every = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = every.tick() => ticks += 1,
        }
    }
    println!(
        "[{:>5} ms] {node}: leadership of term {term} is ending after {ticks} ticks: flushing",
        since.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!(
        "[{:>5} ms] {node}: flushed; work of term {term} stopped",
        since.elapsed().as_millis()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let since = Instant::now();
    let net = MemoryNetwork::new();
    let names = ["a", "b", "c"];
    let mut nodes = Vec::new();
    for name in names {
        let config = MemoryNetwork::member_config(name, &names);
        let node = Node::builder(config)
            .transport(Arc::new(net.transport()))
            .policy(Arc::new(baton_strategies::OldestRunning))
            .release_timeout(Duration::from_secs(2))
            .start()
            .await?;
        let svc = node.join("tracked", Default::default()).await?;
        let me = name.to_string();
        svc.on_started_leading(move |term, cancel| {
            println!(
                "[{:>5} ms] {me}: started leading (term {term})",
                since.elapsed().as_millis()
            );
            lead(me.clone(), term, cancel, since)
        });
        let me = name.to_string();
        svc.on_stopped_leading(move |term| {
            println!(
                "[{:>5} ms] {me}: stopped leading (term {term})",
                since.elapsed().as_millis()
            );
        });
        let me = name.to_string();
        let mut leaders_seen = 0u32; // FnMut: state of its own
        svc.on_new_leader(move |l| {
            leaders_seen += 1;
            println!(
                "[{:>5} ms] {me}: new leader #{leaders_seen}: {l}",
                since.elapsed().as_millis()
            );
        });
        nodes.push((node, svc));
    }

    let mut watch = nodes[0].1.leadership();
    watch.wait_for(|l| l.is_me()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!(
        "[{:>5} ms] shutting a down kindly",
        since.elapsed().as_millis()
    );
    let t0 = Instant::now();
    nodes[0].0.shutdown().await;
    println!(
        "[{:>5} ms] a shut down ({} ms: its work's flush was waited for)",
        since.elapsed().as_millis(),
        t0.elapsed().as_millis()
    );
    let mut watch = nodes[1].1.leadership();
    let l = watch.wait_for(|l| l.is_me()).await?.clone();
    assert_eq!(l.leader_node().map(|n| n.as_str()), Some("b"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (node, _) in &nodes[1..] {
        node.shutdown().await;
    }
    Ok(())
}
