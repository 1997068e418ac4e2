//! Faults over real TCP: nodes behind the fault-injecting proxy, default timings
//! (heartbeat 100 ms, failure timeout 500 ms, lease 400 ms).
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "test code: a panic is the failure report, printing is its log (clippy exempts only #[test] fns)"
)]

use baton_core::engine::StatusSnapshot;
use baton_reliability::cluster::{ClusterOptions, TcpCluster};
use baton_reliability::proxy::{Fault, Mode};
use baton_reliability::run;
use std::time::Duration;
use tokio::time::Instant;

/// Generous bound for anything expected within a second or two.
const LIMIT: Duration = Duration::from_secs(10);

fn alive(status: &StatusSnapshot, node: &str) -> bool {
    status
        .members
        .iter()
        .any(|m| m.name.as_str() == node && m.alive)
}

fn leader_name(l: &baton_core::Leadership) -> String {
    l.leader.as_ref().expect("a leader").node.to_string()
}

/// A proxied TCP cluster of `names` once it agreed on a first leader: the cluster, that
/// leadership and its leader's node.
async fn started(names: &[&str]) -> (TcpCluster, baton_core::Leadership, String) {
    let c = TcpCluster::start(ClusterOptions::new(names).proxied()).await;
    let first = c.agreed(LIMIT).await;
    let leader = leader_name(&first);
    (c, first, leader)
}

/// How every test here ends: never did two nodes act as leaders at once; then all shut down.
async fn no_overlap_then_shutdown(mut c: TcpCluster) {
    assert_eq!(c.log.overlaps(), vec![], "two nodes acted at once");
    c.shutdown().await;
}

/// A 5-node quorum cluster is split 3|2 with the leader on the minority side. The old leader
/// must stop acting before anyone on the majority side starts; after the heal, one leader.
async fn partition_with_leader_in_minority(mode: Mode) {
    let names = ["a", "b", "c", "d", "e"];
    let (c, first, old) = started(&names).await;
    let buddy = names.iter().find(|n| **n != old).unwrap().to_string();
    let minority = [old.as_str(), buddy.as_str()];
    let majority: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !minority.contains(n))
        .collect();

    let split = Instant::now();
    c.net.partition(&minority, &majority, mode);
    let new = c
        .agreed_on(&majority, LIMIT, |l| {
            l.leader
                .as_ref()
                .is_some_and(|m| majority.contains(&m.node.as_str()))
        })
        .await;
    let new_leader = leader_name(&new);
    assert!(majority.contains(&new_leader.as_str()), "{new:?}");
    assert!(new.term > first.term, "{first:?} then {new:?}");

    let acting = c.log.acting();
    let old_stint = acting
        .iter()
        .find(|a| a.node == old && a.term == first.term)
        .expect("the old leader's stint");
    let new_stint = acting
        .iter()
        .find(|a| a.node == new_leader && a.term == new.term)
        .expect("the new leader's stint");
    let stepped_down = old_stint
        .until
        .expect("the old leader stepped down on its own");
    println!(
        "{mode:?}: old leader {old} (term {}) stopped acting {:?} after the split; \
         {new_leader} (term {}) started {:?} after it; gap {:?}",
        first.term,
        stepped_down - split,
        new.term,
        new_stint.from - split,
        new_stint.from - stepped_down,
    );
    assert!(
        stepped_down < new_stint.from,
        "overlap: {old} acted until {:?}, {new_leader} from {:?} (after the split)",
        stepped_down - split,
        new_stint.from - split
    );
    // The minority side elected nobody.
    assert!(
        acting
            .iter()
            .filter(|a| a.from > split)
            .all(|a| majority.contains(&a.node.as_str())),
        "{acting:#?}"
    );
    // Still none there a while later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        c.acting_now()
            .iter()
            .all(|n| majority.contains(&n.as_str())),
        "{:?}",
        c.acting_now()
    );

    let heal = Instant::now();
    c.net.heal();
    let healed = c.agreed(LIMIT).await;
    println!(
        "{mode:?}: after the heal all five agree on {} (term {}) within {:?}",
        leader_name(&healed),
        healed.term,
        heal.elapsed()
    );
    assert_eq!(c.acting_now().len(), 1);
    assert!(healed.term >= new.term);
    no_overlap_then_shutdown(c).await;
}

#[test]
fn partition_3_2_black_hole_old_leader_steps_down_before_the_majority_elects() {
    run(partition_with_leader_in_minority(Mode::BlackHole));
}

#[test]
fn partition_3_2_cut_old_leader_steps_down_before_the_majority_elects() {
    run(partition_with_leader_in_minority(Mode::Cut));
}

/// The leader's outgoing traffic is held: its sockets stay open, nothing it sends arrives
/// (a half-open connection: a hung process, a dead NIC queue, a stuck middlebox). Its peers
/// declare it down after the failure timeout, not earlier (no connection closed) and not much
/// later; they elect another leader; it stops acting. After the hold is released its stale
/// frames arrive, and the cluster settles on one leader.
#[test]
fn half_open_connection_is_detected_by_heartbeat_timeout() {
    run(async {
        let names = ["a", "b", "c"];
        let (c, _, silent) = started(&names).await;
        let others: Vec<&str> = names.iter().copied().filter(|n| *n != silent).collect();
        let before: Vec<_> = others.iter().map(|o| c.net.stats(&silent, o)).collect();
        assert!(before.iter().all(|s| s.open >= 1), "{before:?}");

        let held = Instant::now();
        for o in &others {
            c.net.set(&silent, o, Fault::mode(Mode::Hold));
        }
        let mut detected = Vec::new();
        for o in &others {
            let node = c.node(o).clone();
            loop {
                let status = node.status().await.expect("status");
                if !alive(&status, &silent) {
                    detected.push(held.elapsed());
                    break;
                }
                assert!(held.elapsed() < LIMIT, "{o} still sees {silent} alive");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        println!("held {silent}'s traffic; its peers declared it down after {detected:?}");
        let ft = Duration::from_millis(500);
        let hb = Duration::from_millis(100);
        for d in &detected {
            // Silence since the last heartbeat that got through: at least ft - hb after the
            // hold began; at most ft + 2 hb (the bound in docs/ARCHITECTURE.md), plus slack for a busy machine.
            assert!(
                *d >= ft - hb,
                "declared down too early ({d:?}): not by timeout"
            );
            assert!(
                *d <= ft + 2 * hb + Duration::from_millis(400),
                "too late: {d:?}"
            );
        }
        let new = c
            .agreed_on(&others, LIMIT, |l| {
                l.leader.as_ref().is_some_and(|m| m.node.as_str() != silent)
            })
            .await;
        assert_ne!(leader_name(&new), silent);
        assert!(!c.views()[&silent].is_me, "the silent leader still acts");
        for (o, b) in others.iter().zip(&before) {
            let now = c.net.stats(&silent, o);
            assert_eq!(now.cut, 0, "no connection was closed");
            assert_eq!(
                now.connections, b.connections,
                "no reconnect: the old sockets stayed open"
            );
            assert!(now.open >= 1);
        }

        // Release: the held heartbeats (with the old claim) arrive late.
        c.net.heal();
        let settled = c.agreed(LIMIT).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            c.agreement(&names),
            Some(settled.clone()),
            "{:#?}",
            c.views()
        );
        no_overlap_then_shutdown(c).await;
    });
}

/// One peer is slow. With default timings (lease 400 ms, heartbeat 100 ms) a leader keeps its
/// lease while its round trip to a majority stays below `lease - heartbeat` = 300 ms:
///
/// 1. a slow follower (150 ms each way, 300 ms round trips): no change at all;
/// 2. a slow leader at 100 ms each way (200 ms round trips): no change at all;
/// 3. a slow leader at 150 ms each way (300 ms round trips, at the limit): its acks come back
///    just after its lease ends, so it hands over **once** to a fast node, which then keeps
///    leading — no flapping, and never two leaders at once.
#[test]
fn slow_peer_does_not_cause_leadership_flapping() {
    run(async {
        let names = ["a", "b", "c"];
        let (c, first, leader) = started(&names).await;
        let follower = names.iter().copied().find(|n| *n != leader).unwrap();
        let others =
            |me: &str| -> Vec<&str> { names.iter().copied().filter(|n| *n != me).collect() };
        let phase = Duration::from_millis(2500);
        // Let the cluster settle first: every node past its start-up abstention, every peer
        // connected, so that only the slow links can cause a change below.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(c.agreed(LIMIT).await, first);

        // One phase: `who`'s links to the others slowed by `ms` each way; returns its start.
        let slow_phase = async |who: &str, ms: u64| {
            let t = Instant::now();
            c.net.slow(who, &others(who), Duration::from_millis(ms));
            tokio::time::sleep(phase).await;
            t
        };
        // A phase in which leadership must not change at all.
        let no_change = async |role: &str, who: &str, ms: u64| {
            let changes = c.log.changes_since(slow_phase(who, ms).await);
            println!(
                "slow {role} {who} ({ms} ms each way): {} leadership changes in {phase:?}",
                changes.len()
            );
            assert!(changes.is_empty(), "{changes:#?}");
            assert_eq!(c.agreed(LIMIT).await, first);
        };
        no_change("follower", follower, 150).await;
        c.net.heal();
        no_change("leader", &leader, 100).await;

        let t2 = slow_phase(&leader, 150).await;
        let stints: Vec<_> = c
            .log
            .acting()
            .into_iter()
            .filter(|a| a.from >= t2)
            .collect();
        println!(
            "slow leader {leader} (150 ms each way): {} new leadership(s) in {phase:?}: {:?}",
            stints.len(),
            stints
                .iter()
                .map(|a| (a.node.as_str(), a.term, a.from - t2))
                .collect::<Vec<_>>()
        );
        assert!(stints.len() <= 1, "flapping: {stints:#?}");
        let now = c.agreed(LIMIT).await;
        if let Some(s) = stints.first() {
            assert_ne!(s.node, leader, "the slow node took the lead back");
            assert_eq!(leader_name(&now), s.node);
            assert!(s.until.is_none(), "the new leader stopped: {s:?}");
        } else {
            assert_eq!(now, first);
        }
        no_overlap_then_shutdown(c).await;
    });
}

/// Every frame between every pair of nodes is delayed by a random 0–120 ms, so frames overtake
/// each other (acks of older heartbeats after newer ones, a `StepDown` behind a heartbeat). The
/// leader keeps leading, a graceful handoff still elects the successor, never two at once.
#[test]
fn reordered_frames_keep_one_leader_and_handoff_works() {
    run(async {
        let names = ["a", "b", "c"];
        let (mut c, first, leader) = started(&names).await;
        for a in names {
            for b in names {
                if a != b {
                    c.net.set(
                        a,
                        b,
                        Fault::reorder(Duration::ZERO, Duration::from_millis(120)),
                    );
                }
            }
        }
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let changes = c.log.changes_since(t0);
        assert!(changes.is_empty(), "{changes:#?}");

        c.shutdown_node(&leader).await;
        let rest: Vec<&str> = names.iter().copied().filter(|n| *n != leader).collect();
        let next = c.agreed_on(&rest, LIMIT, |l| l.term > first.term).await;
        let reordered: u64 = names
            .iter()
            .flat_map(|a| names.iter().map(move |b| (a, b)))
            .map(|(a, b)| c.net.stats(a, b).reordered)
            .sum();
        println!(
            "with reordering ({reordered} frames overtaken): {leader} handed off to {} (term {}) in {:?}",
            leader_name(&next),
            next.term,
            t0.elapsed() - Duration::from_millis(1500)
        );
        assert!(reordered > 0);
        no_overlap_then_shutdown(c).await;
    });
}
