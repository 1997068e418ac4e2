//! The etcd backend against a real etcd (Debian's `etcd-server`), started here on loopback
//! with its own data directory and free ports. Without etcd these tests FAIL, naming the
//! package: they are never skipped.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

use baton_backend_etcd::local::LocalEtcd;
use baton_backend_etcd::{EtcdElector, EtcdSettings};
use baton_core::config::{Backend, Config, EtcdConfig};
use baton_core::{Labels, Node, Service, Term};
use baton_transport_memory::MemoryNetwork;
use std::sync::Arc;
use std::time::{Duration, Instant};

const G: &str = "tracked";
/// Generous bound for anything that should take milliseconds.
const LIMIT: Duration = Duration::from_secs(10);

/// The test's etcd: a [`LocalEtcd`] on free loopback ports; fails (never skips) without etcd.
fn etcd() -> LocalEtcd {
    let ports = baton_testkit::free_ports(2).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "baton-etcd-test-{}-{}",
        std::process::id(),
        ports[0]
    ));
    LocalEtcd::start(dir, ports[0], ports[1]).unwrap_or_else(|e| panic!("{e}"))
}

fn config(name: &str, etcd: &LocalEtcd) -> Config {
    let mut c = Config::new(name);
    c.node.listen = name.into();
    c.cluster.backend = Backend::Etcd;
    let mut e = EtcdConfig::new([etcd.endpoint()]);
    e.lease_ttl_s = 1;
    c.etcd = Some(e);
    c
}

async fn start(name: &str, etcd: &LocalEtcd, net: &MemoryNetwork) -> (Node, Service) {
    let cfg = config(name, etcd);
    let elector = EtcdElector::connect(EtcdSettings::from_config(&cfg).unwrap())
        .await
        .unwrap();
    let node = Node::builder(cfg)
        .transport(Arc::new(net.transport()))
        .elector(Arc::new(elector))
        .start()
        .await
        .unwrap();
    let svc = node.join(G, Labels::new()).await.unwrap();
    (node, svc)
}

/// Waits until exactly one of `svcs` leads (and every one agrees who); its index and token.
async fn one_leader(svcs: &[&Service]) -> (usize, Term) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let leading: Vec<usize> = (0..svcs.len()).filter(|i| svcs[*i].is_leader()).collect();
        if let [i] = leading[..] {
            let l = svcs[i].leadership().borrow().clone();
            let agree = svcs
                .iter()
                .all(|s| s.leadership().borrow().leader == l.leader);
            if agree {
                return (i, l.term);
            }
        }
        assert!(leading.len() <= 1, "two leaders at once: {leading:?}");
        assert!(
            Instant::now() < deadline,
            "no single leader within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elects_fails_over_on_crash_and_hands_off_on_shutdown() {
    let etcd = etcd();
    let net = MemoryNetwork::new();
    let a = start("a", &etcd, &net).await;
    let b = start("b", &etcd, &net).await;
    let c = start("c", &etcd, &net).await;
    let nodes = [&a, &b, &c];
    let svcs: Vec<&Service> = nodes.iter().map(|n| &n.1).collect();
    let (first, t1) = one_leader(&svcs).await;
    assert!(t1 > 0);
    assert_eq!(svcs[first].fencing_token(), Some(t1));

    // The holder dies without a word: its lease expires, the next one leads under a greater token.
    let died = Instant::now();
    nodes[first].0.abort();
    let rest: Vec<&Service> = (0..3).filter(|i| *i != first).map(|i| svcs[i]).collect();
    let (second, t2) = one_leader(&rest).await;
    let failover = died.elapsed();
    assert!(t2 > t1, "token {t2} after {t1}");
    // Lease TTL 1 s (+ the watch and a campaign); generous.
    assert!(
        failover < Duration::from_secs(4),
        "failover took {failover:?}"
    );
    eprintln!("failover after an abort: {failover:?}");

    // Kind shutdown: the successor leads at once, long before a lease could expire.
    let third = 1 - second;
    let (leader, other) = (rest[second], rest[third]);
    let leader_node = nodes
        .iter()
        .find(|n| n.1.member() == leader.member())
        .unwrap();
    let handoff = Instant::now();
    leader_node.0.shutdown().await;
    assert!(!leader.is_leader());
    let (_, t3) = one_leader(&[other]).await;
    let took = handoff.elapsed();
    assert!(t3 > t2, "token {t3} after {t2}");
    assert!(took < Duration::from_millis(900), "handoff took {took:?}");
    eprintln!("handoff on shutdown: {took:?}");
    for n in nodes {
        n.0.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_etcd_stops_acting_before_its_lease_could_expire() {
    let mut etcd = etcd();
    let net = MemoryNetwork::new();
    let a = start("a", &etcd, &net).await;
    let b = start("b", &etcd, &net).await;
    let svcs = [&a.1, &b.1];
    let (leader, t1) = one_leader(&svcs).await;
    // Let a keepalive or two pass, then freeze etcd: nothing is renewed from now on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen = Instant::now();
    etcd.signal("STOP").unwrap();
    let mut rx = svcs[leader].leadership();
    tokio::time::timeout(LIMIT, rx.wait_for(|l| !l.is_me))
        .await
        .expect("the leader kept acting without etcd")
        .unwrap();
    let stopped = frozen.elapsed();
    // The lease (TTL 1 s) was last renewed before the freeze: it cannot expire before 1 s.
    assert!(
        stopped < Duration::from_secs(1),
        "stopped acting after {stopped:?}"
    );
    eprintln!("leader stopped acting {stopped:?} after etcd froze");
    // Without etcd there is no leader.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!a.1.is_leader() && !b.1.is_leader());

    // etcd back: a leader again, under a token no smaller.
    let back = Instant::now();
    etcd.signal("CONT").unwrap();
    let (_, t2) = one_leader(&svcs).await;
    eprintln!("led again {:?} after etcd came back", back.elapsed());
    assert!(t2 >= t1);

    // etcd killed and restarted on the same data: elected again, the token never goes back.
    etcd.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!a.1.is_leader() && !b.1.is_leader());
    let restart = Instant::now();
    etcd.spawn().unwrap();
    let (_, t3) = one_leader(&svcs).await;
    eprintln!("led again {:?} after etcd restarted", restart.elapsed());
    assert!(t3 >= t2);
    a.0.shutdown().await;
    b.0.shutdown().await;
}
