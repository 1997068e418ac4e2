//! Issue 10: frames after the handshake are authenticated. An on-path attacker (the proxy)
//! alters, injects or replays a frame from the leader to a follower: the follower detects it,
//! closes that connection with a log line that says so, the leader redials, and the cluster
//! keeps its one leader.

use baton_reliability::cluster::{ClusterOptions, TcpCluster};
use baton_reliability::proxy::Tamper;
use baton_testkit::logs::Logs;
use std::time::Duration;
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn altered_injected_and_replayed_frames_are_detected_and_the_leader_stays() {
    let logs = Logs::global();
    baton_reliability::run(async move {
        let names = ["a", "b", "c"];
        let mut c = TcpCluster::start(ClusterOptions::new(&names).proxied()).await;
        let before = c.agreed(LIMIT).await;
        let leader = before.leader.clone().expect("a leader").node.to_string();
        let followers: Vec<String> = names
            .iter()
            .filter(|n| **n != leader)
            .map(|n| n.to_string())
            .collect();
        let t0 = Instant::now();
        // Each follower logs one line per kind of failure and peer per 10 s: alternate them.
        for (action, follower, says) in [
            (Tamper::Alter, &followers[0], "modified or injected frame"),
            (Tamper::Inject, &followers[1], "modified or injected frame"),
            (Tamper::Replay, &followers[0], "replayed frame"),
        ] {
            let from = logs.text().len();
            let stats = c.net.stats(&leader, follower);
            c.net.tamper(&leader, follower, action);
            // Detected and closed: the line says so; the leader dials a fresh connection.
            let deadline = Instant::now() + Duration::from_secs(3);
            let line = loop {
                let text = logs.text();
                if let Some(l) = text[from..]
                    .lines()
                    .find(|l| l.contains("closing connection") && l.contains(says))
                {
                    break l.to_string();
                }
                assert!(
                    Instant::now() < deadline,
                    "{action:?}: no detection; logs:\n{}",
                    &text[from..]
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            let deadline = Instant::now() + Duration::from_secs(3);
            while c.net.stats(&leader, follower).connections <= stats.connections {
                assert!(Instant::now() < deadline, "{action:?}: no fresh connection");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let now = c.net.stats(&leader, follower);
            assert!(line.contains(&format!("node={leader}")), "{line}");
            println!(
                "{action:?} {leader} → {follower}: {line}\n  tampered {} → {}, connections {} → {}",
                stats.tampered, now.tampered, stats.connections, now.connections
            );
            assert_eq!(now.tampered, stats.tampered + 1);
            // Let the link settle before the next action.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let after = c.agreed(LIMIT).await;
        assert_eq!(after, before, "leadership moved");
        let changes = c.log.changes_since(t0);
        assert!(changes.is_empty(), "{changes:#?}");
        assert_eq!(c.log.overlaps(), vec![], "two leaders at once");
        c.shutdown().await;
    });
}
