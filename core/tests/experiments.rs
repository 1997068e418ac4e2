//! The original demo's experiments, on the in-memory transport: one test each, named for what
//! it checks. Time is tokio's paused clock, so timeouts cost nothing; bounds are generous.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod support;

use baton_core::config::{AntiAffinityConfig, QuorumMode};
use baton_core::{CallError, Work};
use std::time::Duration;
use support::{Cluster, LIMIT, OverlapMonitor, group, join, leader_of, leave};

const G: &str = "tracked";

async fn three(quorum: QuorumMode) -> Cluster {
    let mut c = Cluster::memory(
        &["a", "b", "c"],
        quorum,
        vec![group(G, &["oldest-running"], false)],
    );
    for n in ["a", "b", "c"] {
        c.start(n).await;
    }
    c
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn three_nodes_elect_exactly_one_leader_and_all_agree() {
    let c = three(QuorumMode::Majority).await;
    let l = c.agreed(G, LIMIT).await;
    // oldest-running: a joined first.
    assert_eq!(leader_of(&l), "a");
    assert!(l.term >= 1);
    assert_eq!(c.acting(G), vec!["a".to_string()]);
    // And it stays that way.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = c.agreed(G, Duration::ZERO).await;
    assert_eq!(again, l, "leadership must be stable without faults");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn killing_the_leader_elects_a_new_leader_with_higher_term() {
    let mut c = three(QuorumMode::Majority).await;
    let before = c.agreed(G, LIMIT).await;
    let old = before.leader.clone().unwrap().node.0;
    let t0 = tokio::time::Instant::now();
    c.kill(&old);
    let after = c.agreed(G, LIMIT).await;
    let took = t0.elapsed();
    assert_ne!(after.leader.as_ref().unwrap().node.0, old);
    assert!(after.term > before.term, "{} > {}", after.term, before.term);
    // Proof of death (refused reconnect) is the fast path: no failure timeout is waited.
    assert!(
        took < Duration::from_millis(400),
        "crash failover took {took:?}"
    );
    // oldest-running: b is next.
    assert_eq!(leader_of(&after), "b");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn resetting_the_leaders_links_does_not_fail_over_in_quorum_mode() {
    let c = three(QuorumMode::Majority).await;
    let before = c.agreed(G, LIMIT).await;
    let leader = before.leader.clone().unwrap().node.0;
    let monitor = OverlapMonitor::start(c.watches(G));
    for other in ["a", "b", "c"].into_iter().filter(|n| *n != leader) {
        assert!(c.memory_net().reset_link(leader.as_str(), other));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = c.agreed(G, LIMIT).await;
    assert_eq!(after, before, "a reset connection is not a death");
    assert!(monitor.max() <= 1);
    let changes = monitor.history.lock().unwrap().len();
    assert_eq!(changes, 0, "no leadership change at all");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn killing_a_follower_keeps_the_leader() {
    let mut c = three(QuorumMode::Majority).await;
    let before = c.agreed(G, LIMIT).await;
    let leader = before.leader.clone().unwrap().node.0;
    let follower = ["a", "b", "c"].into_iter().find(|n| *n != leader).unwrap();
    c.kill(follower);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = c.agreed(G, LIMIT).await;
    assert_eq!(after, before);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn kind_shutdown_of_the_leader_hands_off_to_the_ranked_successor_without_overlap() {
    let mut c = three(QuorumMode::Majority).await;
    let before = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&before), "a");
    let monitor = OverlapMonitor::start(c.watches(G));
    let t0 = tokio::time::Instant::now();
    let a = c.nodes.remove("a").unwrap();
    a.shutdown().await;
    let after = c.agreed(G, LIMIT).await;
    let took = t0.elapsed();
    assert_eq!(leader_of(&after), "b", "the ranked successor");
    assert!(after.term > before.term);
    assert!(
        monitor.max() <= 1,
        "two nodes acted as leader at once: {:?}",
        monitor.history
    );
    // Handoff waits for no timeout.
    assert!(took < Duration::from_millis(100), "handoff took {took:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn restarted_node_rejoins_as_a_follower_under_oldest_running() {
    // preempt = true makes the check meaningful: were the restarted node ranked first, it
    // would take over.
    let mut c = Cluster::memory(
        &["a", "b", "c"],
        QuorumMode::Majority,
        vec![group(G, &["oldest-running"], true)],
    );
    for n in ["a", "b", "c"] {
        c.start(n).await;
    }
    let first = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&first), "a");
    c.kill("a");
    let second = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&second), "b");
    c.start("a").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let third = c.agreed(G, LIMIT).await;
    assert_eq!(
        third, second,
        "the restarted node is the youngest and must not take over"
    );
    let members = c.node("b").registry().snapshot();
    let a_member = members[G]
        .iter()
        .find(|m| m.id.node.as_str() == "a")
        .expect("a rejoined");
    assert!(
        members[G]
            .iter()
            .all(|m| m.started_at_ms <= a_member.started_at_ms)
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn service_leaving_while_its_node_lives_fails_over() {
    let mut c = three(QuorumMode::Majority).await;
    let before = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&before), "a");
    let after = leave(&mut c, "a", G).await;
    assert_eq!(leader_of(&after), "b");
    assert!(after.term > before.term);
    // The node itself is still in the cluster.
    let status = c.node("b").status().await.unwrap();
    assert!(
        status
            .members
            .iter()
            .any(|m| m.name.as_str() == "a" && m.alive)
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn one_node_alone_leads_itself() {
    let mut c = Cluster::memory(&["solo"], QuorumMode::Majority, vec![group(G, &[], false)]);
    c.start("solo").await;
    let l = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&l), "solo");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        c.acting(G),
        vec!["solo".to_string()],
        "keeps its lease alone"
    );
}

fn anti_affinity_groups() -> Vec<baton_core::config::GroupConfig> {
    let mut ingest = group("ingest", &["oldest-running"], false);
    ingest.anti_affinity = None;
    // preempt: whichever node happens to lead first, a better-ranked one takes over.
    let mut tracked = group(G, &["anti-affinity", "oldest-running"], true);
    tracked.anti_affinity = Some(AntiAffinityConfig {
        avoid_groups: vec!["ingest".into()],
        ..Default::default()
    });
    vec![ingest, tracked]
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn anti_affinity_puts_two_groups_on_different_nodes_when_it_can() {
    let mut c = Cluster::memory(
        &["a", "b", "c"],
        QuorumMode::Majority,
        anti_affinity_groups(),
    );
    // Let ingest settle on a before tracked is joined anywhere.
    for n in ["a", "b", "c"] {
        c.start_joining(n, &["ingest".into()]).await;
    }
    let ingest = c.agreed("ingest", LIMIT).await;
    assert_eq!(leader_of(&ingest), "a");
    for n in ["a", "b", "c"] {
        join(&mut c, n, G).await;
        std::thread::sleep(Duration::from_millis(3));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tracked = c.agreed(G, LIMIT).await;
    assert_ne!(leader_of(&tracked), "a", "avoids the ingest leader");
    assert_eq!(leader_of(&tracked), "b", "then oldest-running");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn anti_affinity_puts_both_groups_on_the_only_node() {
    let mut c = Cluster::memory(&["solo"], QuorumMode::Majority, anti_affinity_groups());
    c.start("solo").await;
    let ingest = c.agreed("ingest", LIMIT).await;
    let tracked = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&ingest), "solo");
    assert_eq!(leader_of(&tracked), "solo");
}

/// Nodes a, b and c (none started) with hardware weights `weights`, electing by weight.
fn weighted(preempt: bool, weights: [(&str, f64); 3]) -> Cluster {
    let mut c = Cluster::memory(
        &["a", "b", "c"],
        QuorumMode::Majority,
        vec![group(G, &["hardware-weight", "oldest-running"], preempt)],
    );
    for (node, w) in weights {
        c.weights.insert(node.into(), w);
    }
    c
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn hardware_weight_picks_the_heavy_node() {
    let mut c = weighted(false, [("a", 1.0), ("b", 8.0), ("c", 2.0)]);
    for n in ["a", "b", "c"] {
        c.start(n).await;
    }
    let l = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&l), "b");
}

async fn heavier_joins_later(
    preempt: bool,
) -> (
    Cluster,
    baton_core::Leadership,
    baton_core::Leadership,
    usize,
) {
    let mut c = weighted(preempt, [("a", 2.0), ("b", 1.0), ("c", 9.0)]);
    c.start("a").await;
    c.start("b").await;
    let before = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&before), "a");
    let mut watches = c.watches(G);
    c.start("c").await;
    watches.push(("c".into(), c.node("c").leadership(G)));
    let monitor = OverlapMonitor::start(watches);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = c.agreed(G, LIMIT).await;
    let max = monitor.max();
    (c, before, after, max)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_preempt_a_heavier_node_joining_later_takes_over_by_handoff() {
    let (_c, before, after, max) = heavier_joins_later(true).await;
    assert_eq!(leader_of(&after), "c");
    assert!(after.term > before.term);
    assert!(max <= 1, "handoff never overlaps");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn without_preempt_a_heavier_node_joining_later_does_not_take_over() {
    let (_c, before, after, _) = heavier_joins_later(false).await;
    assert_eq!(after, before);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn quorum_partition_2_1_leaves_the_minority_leaderless_and_the_majority_with_one() {
    let c = three(QuorumMode::Majority).await;
    let before = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&before), "a");
    let monitor = OverlapMonitor::start(c.watches(G));
    c.memory_net().partition(&[&["a"], &["b", "c"]]);
    let majority = vec!["b".to_string(), "c".to_string()];
    let after = c.agreed_among(G, &majority, LIMIT).await;
    assert_eq!(leader_of(&after), "b");
    assert!(after.term > before.term);
    // The old leader stepped down on its own and nobody leads on its side.
    let a_view = c.node("a").leadership(G).borrow().clone();
    assert!(!a_view.is_me, "old leader must have stepped down");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.acting(G), vec!["b".to_string()]);
    assert!(!c.node("a").leadership(G).borrow().is_me);
    assert!(
        monitor.max() <= 1,
        "never two leaders at once: {:?}",
        monitor.history
    );
    // Heal: one leader, and the minority node follows it.
    c.memory_net().heal();
    let healed = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&healed), "b");
    assert!(monitor.max() <= 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn availability_mode_both_sides_lead_and_after_heal_exactly_one_remains() {
    let c = three(QuorumMode::None).await;
    let before = c.agreed(G, LIMIT).await;
    c.memory_net().partition(&[&["a"], &["b", "c"]]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut acting = c.acting(G);
    acting.sort();
    assert_eq!(
        acting,
        vec!["a".to_string(), "b".to_string()],
        "each side leads"
    );
    c.memory_net().heal();
    let after = c.agreed(G, LIMIT).await;
    assert_eq!(c.acting(G).len(), 1);
    assert!(after.term > before.term);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn call_leader_from_every_node_reaches_the_leader_and_carries_its_term() {
    let c = three(QuorumMode::Majority).await;
    let l = c.agreed(G, LIMIT).await;
    for ((node, _), svc) in &c.services {
        let name = node.clone();
        svc.serve(move |w: Work| {
            let name = name.clone();
            async move {
                let mut out = format!("{name}:{}:", w.term).into_bytes();
                out.extend(w.payload);
                Ok(out)
            }
        });
    }
    for (name, node) in &c.nodes {
        let served = node
            .call_leader(G, format!("from {name}").into_bytes())
            .await
            .unwrap();
        assert_eq!(served.member, l.leader.clone().unwrap());
        assert_eq!(served.term, l.term);
        assert!(served.leader);
        let text = String::from_utf8(served.payload).unwrap();
        assert_eq!(text, format!("a:{}:from {name}", l.term));
    }
    // A group nobody leads: a typed error, not a hang.
    let err = c
        .node("b")
        .call(
            "nobody",
            vec![],
            baton_core::CallOptions {
                timeout: Some(Duration::from_millis(300)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CallError::NoLeader {
            group: "nobody".into()
        }
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn call_any_is_served_by_members_that_may_not_lead() {
    let c = three(QuorumMode::Majority).await;
    c.agreed(G, LIMIT).await;
    for ((node, _), svc) in &c.services {
        let name = node.clone();
        svc.serve(move |_w: Work| {
            let name = name.clone();
            async move { Ok(name.into_bytes()) }
        });
    }
    let mut servers = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let s = c.node("c").call_any(G, vec![]).await.unwrap();
        assert_eq!(s.leader, s.member.node.as_str() == "a");
        servers.insert(String::from_utf8(s.payload).unwrap());
    }
    assert!(
        servers.len() >= 2,
        "naive routing spreads work: {servers:?}"
    );
}

/// `Node::join_all` joins every group in one request: services come back in the order asked,
/// every group elects, and a request naming a group already joined (or one group twice)
/// is refused whole, joining nothing.
/// `node.join_all(groups)` is refused, with an error that names `named`.
async fn join_all_refused(node: &baton_core::Node, groups: [&str; 2], named: &str) {
    let asked = groups.map(|g| (g.into(), Default::default()));
    match node.join_all(asked).await {
        Ok(_) => panic!("joining {groups:?} was not refused"),
        Err(e) => assert!(e.to_string().contains(named), "{e}"),
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn join_all_joins_every_group_at_once_or_none_of_them() {
    let names: Vec<String> = (0..40).map(|i| format!("g{i:02}")).collect();
    let groups = names
        .iter()
        .map(|n| group(n, &["oldest-running"], false))
        .collect();
    let mut c = Cluster::memory(&["a", "b", "c"], QuorumMode::Majority, groups);
    for n in ["a", "b", "c"] {
        c.start_joining(n, &[]).await;
    }
    let node = c.node("a").clone();
    let asked: Vec<baton_core::GroupName> = names.iter().rev().map(|n| n.as_str().into()).collect();
    let services = node
        .join_all(asked.iter().map(|g| (g.clone(), Default::default())))
        .await
        .unwrap();
    let got: Vec<_> = services.iter().map(|s| s.group().clone()).collect();
    assert_eq!(got, asked, "services in the order asked");
    assert!(services.iter().all(|s| s.member().node.as_str() == "a"));
    for n in &names {
        let l = c.agreed(n, LIMIT).await;
        assert_eq!(leader_of(&l), "a", "the only member leads {n}");
    }
    // Already joined: refused, and nothing new joined.
    join_all_refused(&node, ["fresh", "g00"], "g00").await;
    let fresh = node.join("fresh", Default::default()).await;
    assert!(fresh.is_ok(), "fresh was not joined by the refused request");
    // Named twice: refused too.
    join_all_refused(c.node("b"), ["g01", "g01"], "g01").await;
    drop(services);
}
