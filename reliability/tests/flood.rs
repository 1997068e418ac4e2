//! Issue 10's connection flood against the leader of a 3-node cluster over loopback: idle
//! connections reopened as fast as the flooder's rate allows, bounded in count and time.
//!
//! - leadership does not move;
//! - `baton status` (an authenticated `TcpClient` status call) to the flooded node succeeds
//!   (≥ 95 %);
//! - a node restarted mid-flood rejoins within 1 s;
//! - the log grows by less than 100 KB (all three nodes' lines counted: an upper bound for the
//!   flooded one's);
//! - the process RSS is back within 1 MiB of its start 5 s after the flood (the whole test
//!   process: the three nodes and the flooder).
//!
//! The full scenario (2 000 connections reopened at 1 000/s for 20 s) runs 30 s and is
//! `#[ignore]`d: `cargo test -p baton-reliability --test flood -- --ignored`. A 4 s variant
//! runs in the normal suite, flooding from 127.0.0.2 (a stranger's address) and, in a second
//! test, from 127.0.0.1 — the very address the peers and the client use.
#![allow(
    clippy::print_stdout,
    reason = "test code: printing is its log (clippy exempts only #[test] fns)"
)]

use baton_core::Message;
use baton_reliability::cluster::{CLUSTER, SECRET, TcpCluster};
use baton_testkit::logs::Logs;
use baton_transport_tcp::{TcpClient, TcpConfig};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};

const LIMIT: Duration = Duration::from_secs(10);

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Default)]
struct FloodStats {
    opened: AtomicU64,
    failed: AtomicU64,
}

/// Opens idle connections from `source` to `target`: at most `open` at a time, at most `rate`
/// per second, for `during`. Each waits until the node closes it (or the flood ends).
async fn flood(
    source: IpAddr,
    target: SocketAddr,
    open: usize,
    rate: u64,
    during: Duration,
    stats: Arc<FloodStats>,
) {
    let slots = Arc::new(Semaphore::new(open));
    let end = Instant::now() + during;
    let gap = Duration::from_micros(1_000_000 / rate.max(1));
    let mut tick = tokio::time::interval(gap);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < end {
        tick.tick().await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let stats = stats.clone();
        tasks.spawn(async move {
            let _slot = slot;
            let Ok(socket) = TcpSocket::new_v4() else {
                return;
            };
            if socket.bind(SocketAddr::new(source, 0)).is_err() {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            match timeout(Duration::from_secs(1), socket.connect(target)).await {
                Ok(Ok(mut s)) => {
                    stats.opened.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 64];
                    // Idle: never sends; waits for the node to close it.
                    let _ = tokio::time::timeout_at(end, async {
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    })
                    .await;
                }
                _ => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    tasks.shutdown().await;
}

struct Scenario {
    source: IpAddr,
    open: usize,
    rate: u64,
    during: Duration,
}

fn scenario(s: Scenario) {
    let logs = Logs::global();
    baton_reliability::run(async move {
        let names = ["a", "b", "c"];
        let (mut c, before, leader) = TcpCluster::start_agreed(&names, LIMIT).await;
        let target = c.bound(&leader);
        let other = names
            .iter()
            .find(|n| **n != leader)
            .expect("a follower")
            .to_string();
        let client_cfg = TcpConfig::new(CLUSTER, SECRET.to_vec());
        // Warm up what the status path allocates once, then take the baseline.
        for _ in 0..20 {
            let _ = status(&target.to_string(), &client_cfg).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss0 = rss_kib();
        let log0 = logs.len();
        let t0 = Instant::now();

        let stats = Arc::new(FloodStats::default());
        let flooder = tokio::spawn(flood(
            s.source,
            target,
            s.open,
            s.rate,
            s.during,
            stats.clone(),
        ));

        // Status calls every 50 ms; a node restarted at a third of the flood.
        let (mut ok, mut calls) = (0u64, 0u64);
        let mut worst = Duration::ZERO;
        let mut failures = Vec::new();
        let mut restarted: Option<(Instant, Option<Duration>)> = None;
        while t0.elapsed() < s.during {
            let t = Instant::now();
            calls += 1;
            match timeout(
                Duration::from_secs(1),
                status(&target.to_string(), &client_cfg),
            )
            .await
            {
                Ok(Ok(())) => ok += 1,
                Ok(Err(e)) => failures.push(e),
                Err(_) => failures.push("no answer within 1 s".into()),
            }
            worst = worst.max(t.elapsed());
            if restarted.is_none() && t0.elapsed() >= s.during / 3 {
                c.kill(&other).await;
                c.start_node(&other).await;
                restarted = Some((Instant::now(), None));
            }
            if let Some((at, None)) = restarted
                && c.agreement(&names).is_some()
            {
                restarted = Some((at, Some(at.elapsed())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = flooder.await;
        let flood_took = t0.elapsed();
        let rejoined = match restarted {
            Some((at, None)) => {
                c.agreed(LIMIT).await;
                at.elapsed()
            }
            Some((_, Some(d))) => d,
            None => panic!("no restart"),
        };
        let after = c.agreed(LIMIT).await;
        let log_bytes = logs.len() - log0;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rss1 = rss_kib();
        let text = logs.since(log0);
        let changes = c.log.changes_since(t0);
        let leader_changes: Vec<_> = changes
            .iter()
            .filter(|o| {
                o.node != other
                    && o.leadership.leader.as_ref().map(|m| m.node.to_string())
                        != Some(leader.clone())
            })
            .collect();
        println!(
            "flood from {} ({} open at most, {}/s for {:?}): {} connections opened, {} failed; \
             status {ok}/{calls} ok (slowest {worst:.1?}); restarted {other} rejoined in \
             {rejoined:.1?}; log +{log_bytes} bytes ({} lines); RSS {rss0} KiB -> {rss1} KiB 5 s \
             after the flood ({flood_took:.1?})",
            s.source,
            s.open,
            s.rate,
            s.during,
            stats.opened.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed),
            text.lines().count(),
        );
        println!("log lines during the flood:\n{text}");
        if !failures.is_empty() {
            println!("status failures: {failures:?}");
        }
        assert!(
            stats.opened.load(Ordering::Relaxed) as f64
                >= s.rate as f64 * s.during.as_secs_f64() * 0.5,
            "the flood did not flood"
        );
        assert_eq!(
            after.leader.as_ref().map(|m| m.node.to_string()),
            Some(leader.clone())
        );
        assert_eq!(after.term, before.term, "leadership moved");
        assert!(leader_changes.is_empty(), "{leader_changes:#?}");
        assert!(ok * 100 >= calls * 95, "status {ok}/{calls}: {failures:?}");
        assert!(
            rejoined <= Duration::from_secs(1),
            "rejoined in {rejoined:?}"
        );
        assert!(log_bytes < 100_000, "log grew by {log_bytes} bytes");
        assert!(
            rss1 <= rss0 + 1024,
            "RSS {rss0} KiB before, {rss1} KiB 5 s after"
        );
        c.shutdown().await;
    });
}

async fn status(addr: &str, cfg: &TcpConfig) -> Result<(), String> {
    let mut client = TcpClient::connect(addr, cfg, "status")
        .await
        .map_err(|e| e.to_string())?;
    client
        .send(&Message::StatusRequest)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        if let Message::StatusResponse(_) = client.recv().await.map_err(|e| e.to_string())? {
            return Ok(());
        }
    }
}

#[test]
fn a_short_flood_from_a_strangers_address_starves_no_one() {
    scenario(Scenario {
        source: IpAddr::from([127, 0, 0, 2]),
        open: 500,
        rate: 1000,
        during: Duration::from_secs(4),
    });
}

#[test]
fn a_short_flood_from_the_peers_own_address_starves_no_one() {
    scenario(Scenario {
        source: IpAddr::from([127, 0, 0, 1]),
        open: 500,
        rate: 1000,
        during: Duration::from_secs(4),
    });
}

/// Issue 10's acceptance scenario: 2 000 connections reopened at 1 000/s for 20 s.
#[test]
#[ignore = "30 s; run with --ignored"]
fn the_issue_10_flood_starves_no_one() {
    scenario(Scenario {
        source: IpAddr::from([127, 0, 0, 2]),
        open: 2000,
        rate: 1000,
        during: Duration::from_secs(20),
    });
}

/// Issue 10: "A peer down for 60 s costs each survivor at most 10 log lines." A follower is
/// killed (or shut down kindly: departed), stays down for `down`, and is started again; every
/// INFO-or-above line the process writes from the kill until 2 s after the restart is
/// counted, except the restarted node's own (`node=<it>`). Both survivors' lines together must
/// stay within 10 (stricter than 10 each: the transport's lines do not say which survivor
/// wrote them).
fn peer_down(down: Duration, kindly: bool) {
    let logs = Logs::global();
    baton_reliability::run(async move {
        let names = ["a", "b", "c"];
        let (mut c, _, leader) = TcpCluster::start_agreed(&names, LIMIT).await;
        let gone = names
            .iter()
            .find(|n| **n != leader)
            .expect("a follower")
            .to_string();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log0 = logs.len();
        if kindly {
            c.shutdown_node(&gone).await;
        } else {
            c.kill(&gone).await;
        }
        tokio::time::sleep(down).await;
        c.start_node(&gone).await;
        c.agreed(LIMIT).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let text = logs.since(log0);
        let own = format!("node={gone}");
        let survivors: Vec<&str> = text
            .lines()
            .filter(|l| !l.ends_with(&own) && !l.contains(&format!("{own} ")))
            .collect();
        println!(
            "{gone} {} for {down:?}: {} lines from the survivors:\n{}",
            if kindly { "departed" } else { "killed" },
            survivors.len(),
            survivors.join("\n")
        );
        assert!(survivors.len() <= 10, "{} lines", survivors.len());
        c.shutdown().await;
    });
}

#[test]
fn a_peer_killed_for_12_s_costs_the_survivors_at_most_10_lines() {
    peer_down(Duration::from_secs(12), false);
}

#[test]
fn a_peer_departed_for_12_s_costs_the_survivors_at_most_10_lines() {
    peer_down(Duration::from_secs(12), true);
}

/// The issue's 60 s.
#[test]
#[ignore = "65 s; run with --ignored"]
fn a_peer_down_for_60_s_costs_the_survivors_at_most_10_lines() {
    peer_down(Duration::from_secs(60), false);
}
