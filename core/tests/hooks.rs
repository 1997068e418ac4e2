//! Leadership hooks (`on_started_leading` with its cancellation token, `on_stopped_leading`,
//! `on_new_leader`) and what dropping a `Node` or a `Service` does, on the in-memory transport
//! with tokio's paused clock (timeouts cost nothing; bounds are generous).
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod support;

use baton_core::config::QuorumMode;
use baton_core::{Incarnation, MemberId, MemberRecord, Node, Registry};
use baton_testkit::cluster::next_incarnation;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Cluster, LIMIT, group, leader_of};
use tokio::time::Instant;

const G: &str = "tracked";

/// What happened, in the order it happened (pushed by the hooks and the test's watchers).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Instant, String)>>>);

impl Log {
    fn push(&self, what: impl Into<String>) {
        self.0.lock().unwrap().push((Instant::now(), what.into()));
    }
    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }
    fn at(&self, what: &str) -> Option<(usize, Instant)> {
        let log = self.0.lock().unwrap();
        log.iter()
            .position(|(_, s)| s == what)
            .map(|i| (i, log[i].0))
    }
    async fn wait_for(&self, what: &str) -> (usize, Instant) {
        let start = Instant::now();
        loop {
            if let Some(found) = self.at(what) {
                return found;
            }
            assert!(
                start.elapsed() < LIMIT,
                "no {what:?} within {LIMIT:?}: {:?}",
                self.lines()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

fn cluster(quorum: QuorumMode) -> Cluster {
    Cluster::memory(
        &["a", "b", "c"],
        quorum,
        vec![group(G, &["oldest-running"], false)],
    )
}

/// Starts node `name` of `c` by hand (so that its release timeout can be set) and joins `G`.
async fn start_with(c: &mut Cluster, name: &str, release: Duration) -> Node {
    let config = c.config(name);
    let node = Node::builder(config.clone())
        .transport(Arc::new(c.memory_net().transport()))
        .incarnation(next_incarnation())
        .policies(baton_strategies::policies_for(&config).unwrap())
        .release_timeout(release)
        .start()
        .await
        .unwrap();
    std::thread::sleep(Duration::from_millis(3)); // distinct join times for oldest-running
    let svc = node.join(G, Default::default()).await.unwrap();
    c.services.insert((name.to_string(), G.into()), svc);
    c.nodes.insert(name.to_string(), node.clone());
    node
}

/// a (started first: oldest-running's favourite, with `release`), then b and c.
async fn a_leads(quorum: QuorumMode, release: Duration) -> Cluster {
    let mut c = cluster(quorum);
    start_with(&mut c, "a", release).await;
    c.start("b").await;
    c.start("c").await;
    let l = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&l), "a");
    c
}

/// Logs `"<name> leads"` the first time node `name` of `c` acts as leader of `G`.
fn log_first_lead(c: &Cluster, name: &str, log: &Log) {
    let mut w = c.node(name).leadership(G);
    let (name, log) = (name.to_string(), log.clone());
    tokio::spawn(async move {
        if w.wait_for(|l| l.is_me).await.is_ok() {
            log.push(format!("{name} leads"));
        }
    });
}

/// The started-leading hook of the tests: logs its start, waits for its cancellation, logs
/// it, then takes `finish` to wrap up before it logs "work done".
fn log_work(svc: &baton_core::Service, log: &Log, finish: Duration) {
    let log = log.clone();
    svc.on_started_leading(move |term, cancel| {
        let log = log.clone();
        log.push(format!("start {term}"));
        async move {
            cancel.cancelled().await;
            log.push("cancelled");
            tokio::time::sleep(finish).await;
            log.push("work done");
        }
    });
}

/// a's service gets [`log_work`] and a stopped hook logging `"stopped <term>"`, and the log
/// records the first time each of `watched` leads ([`log_first_lead`]); returns the log and
/// a's term once the work of that term has started.
async fn a_works(c: &Cluster, finish: Duration, watched: &[&str]) -> (Log, u64) {
    let log = Log::default();
    let term = c.node("a").leadership(G).borrow().term;
    log_work(c.service("a", G), &log, finish);
    let stopped = log.clone();
    c.service("a", G)
        .on_stopped_leading(move |t| stopped.push(format!("stopped {t}")));
    log.wait_for(&format!("start {term}")).await;
    for name in watched {
        log_first_lead(c, name, &log);
    }
    (log, term)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_kind_shutdown_cancels_the_work_and_releases_only_after_it_stopped() {
    let c = a_leads(QuorumMode::Majority, Duration::from_secs(5)).await;
    let (log, term) = a_works(&c, Duration::from_millis(300), &["b", "c"]).await;

    let t0 = Instant::now();
    c.node("a").shutdown().await;
    let took = t0.elapsed();
    let (done, done_at) = log.wait_for("work done").await;
    let (cancelled, cancelled_at) = log.wait_for("cancelled").await;
    let (b, _) = log.wait_for("b leads").await;
    // Cancellation reached the work at once; the 300 ms of wrapping up were waited for (a
    // broken cancellation would have waited the whole 5 s release timeout).
    assert!(
        cancelled_at - t0 < Duration::from_millis(50),
        "{:?}",
        cancelled_at - t0
    );
    assert!(done_at - cancelled_at >= Duration::from_millis(300));
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    // Released only after the work stopped: the successor leads after "work done".
    assert!(cancelled < done && done < b, "{:?}", log.lines());
    let (stop, _) = log.wait_for(&format!("stopped {term}")).await;
    assert!(done < stop, "{:?}", log.lines());
    assert!(log.at("c leads").is_none(), "{:?}", log.lines());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_lost_lease_cancels_the_work_and_the_stopped_hook_follows_it() {
    let c = a_leads(QuorumMode::Majority, Duration::from_secs(5)).await;
    let (log, term) = a_works(&c, Duration::from_millis(10), &[]).await;

    c.memory_net().isolate("a");
    let (cancelled, _) = log.wait_for("cancelled").await;
    let (done, _) = log.wait_for("work done").await;
    let (stop, _) = log.wait_for(&format!("stopped {term}")).await;
    assert!(cancelled < done && done < stop, "{:?}", log.lines());
    assert!(!c.service("a", G).is_leader());
    // The other side elects, and b's own work would start there.
    let others = ["b".to_string(), "c".to_string()];
    let l = c.agreed_among(G, &others, LIMIT).await;
    assert!(l.term > term);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn work_that_ignores_its_cancellation_is_aborted_after_the_release_timeout() {
    let c = a_leads(QuorumMode::Majority, Duration::from_millis(200)).await;
    let log = Log::default();
    struct Aborted(Log);
    impl Drop for Aborted {
        fn drop(&mut self) {
            self.0.push("aborted");
        }
    }
    let started = log.clone();
    c.service("a", G).on_started_leading(move |_term, _cancel| {
        let guard = Aborted(started.clone());
        started.push("started");
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }
    });
    log.wait_for("started").await;
    log_first_lead(&c, "b", &log);

    let t0 = Instant::now();
    c.node("a").shutdown().await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let (aborted, _) = log.wait_for("aborted").await;
    let (b, _) = log.wait_for("b leads").await;
    assert!(aborted < b, "{:?}", log.lines());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn hooks_take_fnmut_closures_and_see_every_new_leader() {
    let mut c = a_leads(QuorumMode::Majority, Duration::from_secs(5)).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // State kept in the closure itself: no Mutex.
    let mut seen: Vec<String> = Vec::new();
    c.service("b", G).on_new_leader(move |l| {
        seen.push(l.leader.as_ref().unwrap().to_string());
        let _ = tx.send(seen.clone());
    });
    let (ctx, mut crx) = tokio::sync::mpsc::unbounded_channel();
    let mut changes = 0u32;
    c.service("b", G).on_change(move |_| {
        changes += 1;
        let _ = ctx.send(changes);
    });
    let log = Log::default();
    log_work(c.service("b", G), &log, Duration::ZERO);
    // Told at registration: a leads.
    let first = rx.recv().await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(first[0].starts_with("a#"), "{first:?}");

    let before = c.node("b").leadership(G).borrow().term;
    c.kill("a");
    let l = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&l), "b");
    let mut last = first;
    while !last.last().unwrap().starts_with("b#") {
        last = rx.recv().await.unwrap();
    }
    assert!(last[0].starts_with("a#"), "{last:?}");
    // FnMut state counted every change it saw.
    assert!(crx.recv().await.unwrap() >= 1);
    // b's started hook runs under b's term.
    log.wait_for(&format!("start {}", l.term)).await;
    assert!(l.term > before);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_the_last_node_handle_hands_off_promptly() {
    let mut c = cluster(QuorumMode::Majority);
    // a joins through its registry, so no `Service` holds a handle of it: the `Node` is
    // the only one.
    let a = c.start_joining("a", &[]).await;
    a.registry()
        .register(MemberRecord {
            id: MemberId::new("a", 0),
            group: G.into(),
            started_at_ms: 0,
            incarnation: Incarnation(0),
            hardware: Default::default(),
            labels: Default::default(),
            version: None,
        })
        .await
        .unwrap();
    std::thread::sleep(Duration::from_millis(3));
    c.start("b").await;
    c.start("c").await;
    let before = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&before), "a");
    let a_view = a.leadership(G);

    let t0 = Instant::now();
    drop(a);
    drop(c.nodes.remove("a"));
    b_takes_over_promptly(&c, t0, &before).await;
    assert!(!a_view.borrow().is_me, "the dropped node stopped leading");
}

/// b and c agree that b (the ranked successor) leads, above `before`'s term, within 250 ms of
/// `t0`: a handoff, not a failure timeout (500 ms) and a campaign.
async fn b_takes_over_promptly(c: &Cluster, t0: Instant, before: &baton_core::Leadership) {
    let names = ["b".to_string(), "c".to_string()];
    let after = c.agreed_among(G, &names, LIMIT).await;
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(250),
        "new leader after {took:?}"
    );
    assert_eq!(leader_of(&after), "b", "the ranked successor");
    assert!(after.term > before.term);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_a_service_leaves_the_group_while_the_node_runs() {
    let mut c = a_leads(QuorumMode::Majority, Duration::from_secs(5)).await;
    let before = c.agreed(G, LIMIT).await;
    let t0 = Instant::now();
    drop(c.services.remove(&("a".to_string(), G.into())));
    b_takes_over_promptly(&c, t0, &before).await;
    // The node runs on, with no member in the group; it may join again at once.
    let a = c.node("a").clone();
    assert!(a.is_running());
    let members = a.registry().members(G).await.unwrap();
    assert!(
        members.iter().all(|m| m.id.node.as_str() != "a"),
        "{members:?}"
    );
    let again = a.join(G, Default::default()).await.unwrap();
    assert_eq!(again.member().node.as_str(), "a");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_join_right_after_a_drop_finds_the_old_member_gone() {
    let c = a_leads(QuorumMode::Majority, Duration::from_secs(5)).await;
    let a = c.node("a").clone();
    let mut c = c;
    let old = c.services.remove(&("a".to_string(), G.into())).unwrap();
    let old_member = old.member().clone();
    drop(old);
    let new = a.join(G, Default::default()).await.unwrap();
    assert_ne!(new.member(), &old_member);
    // And the old member's late leave does not remove the new one.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let l = c.agreed(G, LIMIT).await;
    assert!(l.leader.is_some());
    let members = a.registry().members(G).await.unwrap();
    assert!(members.iter().any(|m| &m.id == new.member()), "{members:?}");
    c.services.insert(("a".to_string(), G.into()), new);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_transfer_releases_the_work_before_the_successor_is_told_and_work_resumes_later() {
    let c = a_leads(QuorumMode::Majority, Duration::from_secs(5)).await;
    let (log, term) = a_works(&c, Duration::from_millis(300), &["c"]).await;

    let t0 = Instant::now();
    // Asked at b (routed to a): a cancels its work, waits the 300 ms it takes, then hands off.
    let handed = c.node("b").transfer(G, "c").await.unwrap();
    let took = t0.elapsed();
    assert_eq!(handed.to, MemberId::new("c", 0));
    let (cancelled, cancelled_at) = log.wait_for("cancelled").await;
    let (done, done_at) = log.wait_for("work done").await;
    let (c_leads, _) = log.wait_for("c leads").await;
    assert!(cancelled_at - t0 < Duration::from_millis(50));
    assert!(done_at - cancelled_at >= Duration::from_millis(300));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "answered after {took:?}"
    );
    // The successor leads only after a's work stopped.
    assert!(cancelled < done && done < c_leads, "{:?}", log.lines());
    let (stop, _) = log.wait_for(&format!("stopped {term}")).await;
    assert!(done < stop, "{:?}", log.lines());

    // a keeps its service: handed leadership back, its work starts again (not held back by
    // the release).
    let back = c.node("c").transfer(G, "a").await.unwrap();
    let t1 = Instant::now();
    loop {
        let restarted = log.lines().iter().any(|l| {
            l.strip_prefix("start ")
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| t > back.term)
        });
        if restarted {
            break;
        }
        assert!(t1.elapsed() < LIMIT, "no work restarted: {:?}", log.lines());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_step_down_releases_the_work_first_too() {
    let c = a_leads(QuorumMode::Majority, Duration::from_secs(5)).await;
    let (log, _) = a_works(&c, Duration::from_millis(200), &["b"]).await;
    let handed = c.service("a", G).step_down().await.unwrap();
    assert_eq!(handed.to, MemberId::new("b", 0));
    let (done, _) = log.wait_for("work done").await;
    let (b_leads, _) = log.wait_for("b leads").await;
    assert!(done < b_leads, "{:?}", log.lines());
}
