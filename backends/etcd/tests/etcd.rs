//! The etcd backend against a real etcd (Debian's `etcd-server`), started here on loopback
//! with its own data directory and free ports. Without etcd these tests FAIL, naming the
//! package: they are never skipped.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

use baton_backend_etcd::local::LocalEtcd;
use baton_backend_etcd::{EtcdElector, EtcdSettings};
use baton_core::config::{Backend, Config, EtcdConfig, GroupConfig, PolicySpec};
use baton_core::{GroupName, Labels, Node, Service, Term, Work};
use baton_transport_memory::MemoryNetwork;
use std::sync::Arc;
use std::time::{Duration, Instant};

const G: &str = "tracked";
/// Generous bound for anything that should take milliseconds.
const LIMIT: Duration = Duration::from_secs(10);

/// The test's etcd: a [`LocalEtcd`] on free loopback ports; fails (never skips) without etcd.
fn etcd() -> LocalEtcd {
    // RUST_LOG=baton_backend_etcd=debug shows the elector's steps.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let ports = baton_testkit::free_ports(2).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "baton-etcd-test-{}-{}",
        std::process::id(),
        ports[0]
    ));
    LocalEtcd::start(dir, ports[0], ports[1]).unwrap_or_else(|e| panic!("{e}"))
}

fn config(name: &str, etcd: &LocalEtcd) -> Config {
    config_ttl(name, etcd, 1)
}

fn config_ttl(name: &str, etcd: &LocalEtcd, ttl_s: u64) -> Config {
    let mut c = Config::new(name);
    c.node.listen = name.into();
    // Peers over the transport too: proofs of death come from there.
    c.cluster.seeds = ["a", "b", "c"]
        .into_iter()
        .filter(|n| *n != name)
        .map(str::to_string)
        .collect();
    c.cluster.voters = ["a", "b", "c"].map(str::to_string).to_vec();
    c.cluster.backend = Backend::Etcd;
    let mut e = EtcdConfig::new([etcd.endpoint()]);
    e.lease_ttl_s = ttl_s;
    c.etcd = Some(e);
    c
}

async fn start(name: &str, etcd: &LocalEtcd, net: &MemoryNetwork) -> (Node, Service) {
    start_cfg(config(name, etcd), net).await
}

async fn start_cfg(cfg: Config, net: &MemoryNetwork) -> (Node, Service) {
    let node = start_node(cfg, net).await;
    let svc = node.join(G, Labels::new()).await.unwrap();
    (node, svc)
}

/// A node of `cfg` over `net`, its elections in etcd (its groups' policies by name).
async fn start_node(cfg: Config, net: &MemoryNetwork) -> Node {
    let elector = EtcdElector::connect(EtcdSettings::from_config(&cfg).unwrap())
        .await
        .unwrap();
    let policies = baton_strategies::policies_for(&cfg).unwrap();
    Node::builder(cfg)
        .policies(policies)
        .transport(Arc::new(net.transport()))
        .elector(Arc::new(elector))
        .start()
        .await
        .unwrap()
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

/// Aborts `node`, which leads under `t1` as `svcs[first]` (and crashes its endpoint on
/// `net`, if given), then waits for one leader among the other services under a greater
/// token: `(the others, the new leader's index among them, its token, the time it took)`.
async fn kill<'a>(
    node: &Node,
    net: Option<&MemoryNetwork>,
    svcs: &[&'a Service],
    first: usize,
    t1: Term,
) -> (Vec<&'a Service>, usize, Term, Duration) {
    let died = Instant::now();
    // The endpoint crashes first: an abort cancels the node's driver on a worker thread, and
    // once that dropped the transport there is no endpoint left to crash (a race the test
    // lost now and then).
    if let Some(net) = net {
        assert!(net.crash(node.id().clone()));
    }
    node.abort();
    let rest: Vec<&Service> = (0..svcs.len())
        .filter(|i| *i != first)
        .map(|i| svcs[i])
        .collect();
    let (next, t2) = one_leader(&rest).await;
    let took = died.elapsed();
    assert!(t2 > t1, "token {t2} after {t1}");
    (rest, next, t2, took)
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

    // The holder dies without a word. The memory network reports a dropped endpoint as a
    // crash, so its peers hold a proof of death and revoke its lease (the TTL is not waited
    // for; `a_crash_proven_…` shows that against a TTL of 5 s); the next one leads under a
    // greater token.
    let (rest, second, t2, failover) = kill(&nodes[first].0, None, &svcs, first, t1).await;
    // At worst the lease TTL, 1 s (+ the watch and a campaign); generous.
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
async fn a_crash_proven_by_the_transport_revokes_the_holders_lease_at_once() {
    let etcd = etcd();
    let net = MemoryNetwork::new();
    // A 5 s TTL: waiting for the lease to expire would take 4 s or more.
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        nodes.push(start_cfg(config_ttl(n, &etcd, 5), &net).await);
    }
    let svcs: Vec<&Service> = nodes.iter().map(|n| &n.1).collect();
    let (first, t1) = one_leader(&svcs).await;
    let name = nodes[first].0.id().clone();
    // Killed: the process stops, and its peers get the proof (a refused reconnect).
    let (_, _, _, failover) = kill(&nodes[first].0, Some(&net), &svcs, first, t1).await;
    assert!(
        failover < Duration::from_secs(2),
        "failover took {failover:?}: the lease was not revoked on the proof of death"
    );
    eprintln!("failover after a proven crash: {failover:?}");
    // Its member keys went with the lease: a restart of it is a new member, nothing stale.
    let members = etcd_members(&etcd, G);
    assert!(
        !members.iter().any(|k| k.contains(&format!("/{name}#"))),
        "the dead node's member key is still there: {members:?}"
    );
    for (i, n) in nodes.iter().enumerate() {
        if i != first {
            n.0.shutdown().await;
        }
    }
}

/// The member keys of `group` in etcd, read with etcdctl.
fn etcd_members(etcd: &LocalEtcd, group: &str) -> Vec<String> {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd.endpoint(),
            "get",
            "--keys-only",
            "--prefix",
        ])
        .arg(format!(
            "{}members/{group}/",
            config("x", etcd).etcd_prefix()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "etcdctl: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
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

/// A node whose own runtime thread is busy (here: blocked outright, 1.5 s, longer than the
/// acting window of a 1 s TTL) while etcd answers goes on leading: the lease keeper and the
/// acting-deadline guard run on a thread of their own (docs/ETCD.md, "The lease thread"), so
/// keepalives leave and are answered in time, the deadline keeps moving, and the lease is
/// neither revoked nor replaced — same lease, same token, `is_me` never cleared. On the
/// node's thread (as before) the keeper sent nothing during the block, found the deadline
/// passed when it ran again, revoked the lease and the group was elected again.
#[tokio::test(flavor = "current_thread")]
async fn a_busy_node_thread_keeps_its_lease_while_etcd_answers() {
    let etcd = etcd();
    let net = MemoryNetwork::new();
    let (node, svc, elector) = start_with_elector("a", &etcd, &net).await;
    let (_, t1) = one_leader(&[&svc]).await;
    let lease = elector.lease_id();
    // Whoever clears `is_me` (the guard, from its own thread) does it through this watch; a
    // thread of the test's own reads it every 5 ms meanwhile (nothing on this runtime could
    // set it again during the block, so a clearing would stay visible).
    let rx = svc.leadership();
    let watcher = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_millis(1500);
        let mut cleared = false;
        while Instant::now() < until {
            cleared |= !rx.borrow().is_me;
            std::thread::sleep(Duration::from_millis(5));
        }
        cleared
    });
    // The only thread of this runtime does nothing else for 1.5 s.
    std::thread::sleep(Duration::from_millis(1500));
    let cleared = watcher.join().unwrap();
    // Let the node's tasks run what queued meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(svc.is_leader(), "stopped leading after its thread was busy");
    assert_eq!(svc.fencing_token(), Some(t1), "elected again");
    assert_eq!(elector.lease_id(), lease, "the lease was replaced");
    assert!(
        !cleared,
        "is_me was cleared while the node's thread was busy"
    );
    node.shutdown().await;
}

/// A node of `cfg` joined to `groups` groups `g0`, `g1`, ….
async fn start_many(cfg: Config, net: &MemoryNetwork, groups: usize) -> (Node, Vec<Service>) {
    let node = start_node(cfg, net).await;
    let svcs = node
        .join_all((0..groups).map(|i| (GroupName::new(format!("g{i}")), Labels::new())))
        .await
        .unwrap();
    (node, svcs)
}

/// How many of `groups` groups have exactly one leader among `nodes` (checking that none has
/// two).
fn led(nodes: &[(Node, Vec<Service>)], groups: usize) -> usize {
    (0..groups)
        .filter(|g| {
            let n = nodes.iter().filter(|(_, s)| s[*g].is_leader()).count();
            assert!(n <= 1, "group g{g} has {n} leaders");
            n == 1
        })
        .count()
}

/// etcd frozen for 5 s: from the moment any lease could have expired (the TTL after the
/// freeze), no node acts as a leader of any group; after etcd is back, every group is led
/// again within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stopped_5_s_no_leader_past_the_lease_and_all_groups_led_again_within_2_s() {
    const GROUPS: usize = 30;
    let etcd = etcd();
    let net = MemoryNetwork::new();
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        nodes.push(start_many(config(n, &etcd), &net, GROUPS).await);
    }
    let deadline = Instant::now() + LIMIT;
    while led(&nodes, GROUPS) < GROUPS {
        assert!(Instant::now() < deadline, "not all groups led");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen = Instant::now();
    etcd.signal("STOP").unwrap();
    // lease_ttl_s = 1: every lease was last renewed before the freeze, so none can expire
    // before frozen + 1 s — and each could, at any moment after it.
    let expired = frozen + Duration::from_secs(1);
    let mut checks = 0;
    while frozen.elapsed() < Duration::from_secs(5) {
        if Instant::now() >= expired {
            let acting: Vec<String> = nodes
                .iter()
                .flat_map(|(n, s)| {
                    s.iter()
                        .filter(|s| s.is_leader())
                        .map(move |s| format!("{}:{}", n.id(), s.group()))
                })
                .collect();
            assert!(
                acting.is_empty(),
                "acting as leaders {:?} after the freeze, past the lease: {acting:?}",
                frozen.elapsed()
            );
            checks += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(checks > 50, "only {checks} checks");
    let back = Instant::now();
    etcd.signal("CONT").unwrap();
    while led(&nodes, GROUPS) < GROUPS {
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "{} of {GROUPS} groups led 2 s after etcd came back",
            led(&nodes, GROUPS)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "all {GROUPS} groups led again {:?} after etcd came back",
        back.elapsed()
    );
    for (n, _) in &nodes {
        n.shutdown().await;
    }
}

/// 9 nodes × 1 000 groups on one etcd: every group led, each by exactly one node, within 5 s
/// of the start (the nodes' elections, once all have connected). `#[ignore]`d: ~10⁴ keys and
/// a minute of a loaded CI host; run with `--ignored --nocapture` for the figure
/// (docs/PERFORMANCE.md; `scale --backend etcd` runs the same with `baton node` processes).
/// **It fails today** (issue 15): the start works (the prefix is read in pages), but the
/// busy nodes miss their own keepalive deadlines and re-elect over and over (docs/ETCD.md
/// "Not done yet").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "9 x 1 000 groups: a scale run, not for every CI build"]
async fn nine_nodes_by_1000_groups_all_led() {
    const GROUPS: usize = 1000;
    let names: Vec<String> = (0..9).map(|i| format!("n{i}")).collect();
    let etcd = etcd();
    let net = MemoryNetwork::new();
    let started = Instant::now();
    let mut joins = Vec::new();
    for n in &names {
        let mut cfg = config(n, &etcd);
        cfg.cluster.seeds = names.iter().filter(|m| *m != n).cloned().collect();
        cfg.cluster.voters = names.clone();
        let net = net.clone();
        joins.push(tokio::spawn(
            async move { start_many(cfg, &net, GROUPS).await },
        ));
    }
    let mut nodes = Vec::new();
    for j in joins {
        nodes.push(j.await.unwrap());
    }
    let joined = started.elapsed();
    let deadline = started + Duration::from_secs(120);
    loop {
        let n = led(&nodes, GROUPS);
        if n == GROUPS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of {GROUPS} groups led after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = started.elapsed();
    let mut per_node: Vec<usize> = nodes
        .iter()
        .map(|(_, s)| s.iter().filter(|s| s.is_leader()).count())
        .collect();
    per_node.sort();
    eprintln!(
        "9 x {GROUPS}: all joined after {joined:?}, all led after {all:?}; groups led per node {per_node:?}"
    );
    assert!(
        all < Duration::from_secs(5),
        "all {GROUPS} groups led only after {all:?}"
    );
    for (n, _) in &nodes {
        n.shutdown().await;
    }
}

/// An etcd that answers late at start (here: frozen for 1.5 s, past several request
/// deadlines of 250 ms) does not fail the node's start: the node connects once etcd answers,
/// and then leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_while_etcd_is_slow_connects_once_it_answers() {
    let etcd = Arc::new(etcd());
    let net = MemoryNetwork::new();
    let cfg = config("a", &etcd);
    etcd.signal("STOP").unwrap();
    let frozen = etcd.clone();
    let resume = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        frozen.signal("CONT").unwrap();
    });
    let began = Instant::now();
    let elector = EtcdElector::connect(EtcdSettings::from_config(&cfg).unwrap()).await;
    resume.await.unwrap();
    let elector = elector.unwrap_or_else(|e| panic!("the start failed while etcd was slow: {e}"));
    assert!(
        began.elapsed() >= Duration::from_millis(1400),
        "connected while etcd was frozen, after {:?}",
        began.elapsed()
    );
    let node = Node::builder(cfg)
        .transport(Arc::new(net.transport()))
        .elector(Arc::new(elector))
        .start()
        .await
        .unwrap();
    let svc = node.join(G, Labels::new()).await.unwrap();
    one_leader(&[&svc]).await;
    node.shutdown().await;
}

/// `Node::status` (what the admin view's `/api/status` serves, and the snapshot a client's
/// `baton status` gets) names the leader etcd elected and its fencing token, on every node,
/// with no "no leader" reason for the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_etcd_leader_and_its_token_on_every_node() {
    let etcd = etcd();
    let net = MemoryNetwork::new();
    let a = start("a", &etcd, &net).await;
    let b = start("b", &etcd, &net).await;
    let svcs = [&a.1, &b.1];
    let (i, token) = one_leader(&svcs).await;
    let leader = svcs[i].member().clone();
    for (node, _) in [&a, &b] {
        let deadline = Instant::now() + LIMIT;
        loop {
            let s = node.status().await.unwrap();
            let g = s.groups.iter().find(|g| g.group.as_str() == G).cloned();
            if let Some(g) = g.filter(|g| g.leader.is_some()) {
                assert_eq!(g.leader.as_ref(), Some(&leader), "{}: {s:?}", node.id());
                assert_eq!(g.term, token, "{}: {s:?}", node.id());
                assert!(
                    !s.no_leader.iter().any(|n| n.group.as_str() == G),
                    "a led group with a no-leader reason: {s:?}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "{}'s status: {s:?}", node.id());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    a.0.shutdown().await;
    b.0.shutdown().await;
}

fn etcdctl(etcd: &LocalEtcd, args: &[&str]) -> std::process::Output {
    std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd.endpoint()])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("etcdctl (Debian's etcd-client): {e}"))
}

/// With etcd's authentication on, a node configured with `[etcd] user` and `password_file`
/// connects and leads; a wrong password is refused at the start, the error naming etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_file_log_in_to_an_etcd_with_auth_enabled() {
    let etcd = etcd();
    let ok = etcdctl(
        &etcd,
        &["user", "add", "root", "--new-user-password", "s3cret"],
    );
    assert!(ok.status.success(), "user add: {ok:?}");
    // etcd 3.4 wants the root role on root before `auth enable` (granted already on some
    // versions: the answer is not checked, `auth enable` says whether it sufficed).
    let _ = etcdctl(&etcd, &["user", "grant-role", "root", "root"]);
    let ok = etcdctl(&etcd, &["auth", "enable"]);
    assert!(ok.status.success(), "auth enable: {ok:?}");
    let dir = std::env::temp_dir().join(format!("baton-etcd-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("etcd.password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let with = |password_file: &std::path::Path| {
        let mut cfg = config("a", &etcd);
        let e = cfg.etcd.as_mut().unwrap();
        e.user = Some("root".into());
        e.password_file = Some(password_file.to_path_buf());
        cfg
    };

    // No credentials: refused.
    let refused = EtcdElector::connect(EtcdSettings::from_config(&config("a", &etcd)).unwrap())
        .await
        .err()
        .expect("an etcd with auth on accepted a node without credentials");
    eprintln!("without credentials: {refused}");

    let bad = dir.join("bad.password");
    std::fs::write(&bad, "wrong").unwrap();
    let e = EtcdElector::connect(EtcdSettings::from_config(&with(&bad)).unwrap())
        .await
        .err()
        .expect("a wrong password was accepted");
    assert!(e.to_string().contains("etcd at"), "{e}");

    let cfg = with(&pw);
    let net = MemoryNetwork::new();
    let (node, svc) = start_cfg(cfg, &net).await;
    let (_, token) = one_leader(&[&svc]).await;
    assert!(token > 0);
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file of `[etcd]` that cannot be read fails the settings, naming the field and the path.
#[test]
fn unreadable_etcd_files_name_their_field() {
    let mut cfg = Config::new("a");
    cfg.cluster.backend = Backend::Etcd;
    let mut e = EtcdConfig::new(["https://127.0.0.1:2379"]);
    e.ca_file = Some("/nonexistent/ca.pem".into());
    cfg.etcd = Some(e.clone());
    let err = EtcdSettings::from_config(&cfg).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("etcd.ca_file"), "{err}");
    assert!(
        err.to_string()
            .contains("etcd.ca_file: cannot read /nonexistent/ca.pem"),
        "{err}"
    );
    e.ca_file = None;
    e.user = Some("u".into());
    e.password_file = Some("/nonexistent/pw".into());
    cfg.etcd = Some(e);
    let err = EtcdSettings::from_config(&cfg).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("etcd.password_file"), "{err}");
}

/// `call_leader` on the etcd backend: a call made on any node — a follower included — is
/// served by the handler of the member etcd elected, under its fencing token; after a kind
/// shutdown hands the key over, calls reach the successor under its (greater) token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_leader_reaches_the_etcd_leaders_handler_under_its_token() {
    let etcd = etcd();
    let net = MemoryNetwork::new();
    let nodes = [
        start("a", &etcd, &net).await,
        start("b", &etcd, &net).await,
        start("c", &etcd, &net).await,
    ];
    for (node, svc) in &nodes {
        let name = node.id().to_string();
        svc.serve(move |w: Work| {
            let name = name.clone();
            async move { Ok(format!("{name}:{}:{}", w.term, w.leader).into_bytes()) }
        });
    }
    let svcs: Vec<&Service> = nodes.iter().map(|n| &n.1).collect();
    let (first, t1) = one_leader(&svcs).await;
    let leader = svcs[first].member().clone();
    for (node, _) in &nodes {
        let served = tokio::time::timeout(LIMIT, node.call_leader(G, b"x".to_vec()))
            .await
            .expect("call_leader hung")
            .unwrap_or_else(|e| panic!("call on {}: {e}", node.id()));
        assert_eq!(served.member, leader, "call on {}", node.id());
        assert_eq!(served.term, t1, "call on {}", node.id());
        assert!(served.leader);
        assert_eq!(
            String::from_utf8(served.payload).unwrap(),
            format!("{}:{t1}:true", leader.node)
        );
    }
    // The leader shuts down kindly: the next calls reach its successor, under its token.
    nodes[first].0.shutdown().await;
    let rest: Vec<&Service> = (0..3).filter(|i| *i != first).map(|i| svcs[i]).collect();
    let (second, t2) = one_leader(&rest).await;
    assert!(t2 > t1, "token {t2} after {t1}");
    let successor = rest[second].member().clone();
    for (i, (node, _)) in nodes.iter().enumerate() {
        if i == first {
            continue;
        }
        let served = tokio::time::timeout(LIMIT, node.call_leader(G, b"y".to_vec()))
            .await
            .expect("call_leader hung")
            .unwrap_or_else(|e| panic!("call on {}: {e}", node.id()));
        assert_eq!(
            (served.member, served.term),
            (successor.clone(), t2),
            "call on {}",
            node.id()
        );
    }
    for (i, (node, _)) in nodes.iter().enumerate() {
        if i != first {
            node.shutdown().await;
        }
    }
}

/// Preemption on etcd (`preempt = true`): a better-ranked member that joins later (here a
/// newer version under `newest-version`) takes over by a handoff — one transaction that
/// replaces the leader key — never two leaders at once, and the token grows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_better_ranked_member_preempts_by_a_handoff_under_a_greater_token() {
    let etcd = etcd();
    let net = MemoryNetwork::new();
    let cfg = |name: &str, version: &str| {
        let mut c = config(name, &etcd);
        c.node.version = Some(version.into());
        let mut g = GroupConfig::new(G);
        g.policy = Some(PolicySpec::Named("newest-version".into()));
        g.preempt = true;
        c.groups = vec![g];
        c
    };
    let a = start_cfg(cfg("a", "1.0.0"), &net).await;
    let (_, t1) = one_leader(&[&a.1]).await;
    let b = start_cfg(cfg("b", "2.0.0"), &net).await;
    let deadline = Instant::now() + LIMIT;
    let t2 = loop {
        // Never both at once, at any poll.
        assert!(!(a.1.is_leader() && b.1.is_leader()), "two leaders at once");
        if b.1.is_leader() {
            break b.1.fencing_token().unwrap();
        }
        assert!(Instant::now() < deadline, "b never took over");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert!(t2 > t1, "token {t2} after {t1}");
    assert!(!a.1.is_leader());
    // a learns of its successor from etcd's watch, which may reach it after b leads.
    let deadline = Instant::now() + LIMIT;
    while a.1.leadership().borrow().leader.as_ref() != Some(b.1.member()) {
        assert!(!a.1.is_leader(), "a leads again");
        assert!(
            Instant::now() < deadline,
            "a never saw b lead: {:?}",
            a.1.leadership().borrow().leader
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    a.0.shutdown().await;
    b.0.shutdown().await;
}

/// A node that crashed and restarts under its name rejoins as a new member: the survivor
/// keeps leading (under the same token), the restarted node follows it, and when the
/// survivor shuts down the restarted node leads under a greater token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_restarts_rejoins_as_a_follower_and_can_lead_again() {
    let etcd = etcd();
    let net = MemoryNetwork::new();
    let a = start("a", &etcd, &net).await;
    let (_, t1) = one_leader(&[&a.1]).await;
    let b = start("b", &etcd, &net).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.1.is_leader() && !b.1.is_leader());
    // b crashes and comes back (a new process: a new lease, a new member key).
    // The endpoint crashes first (see `crash`): an abort may drop the transport before.
    assert!(net.crash(b.0.id().clone()));
    b.0.abort();
    drop(b);
    let b = start("b", &etcd, &net).await;
    let deadline = Instant::now() + LIMIT;
    while b.1.leadership().borrow().leader.as_ref() != Some(a.1.member()) {
        assert!(
            Instant::now() < deadline,
            "the restarted node never saw the leader"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(a.1.is_leader() && !b.1.is_leader());
    assert_eq!(
        a.1.fencing_token(),
        Some(t1),
        "the leader changed its token"
    );
    // The crashed process's member key goes with its lease (revoked on the proof of death).
    let deadline = Instant::now() + LIMIT;
    loop {
        let members = etcd_members(&etcd, G);
        if members.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "stale member keys: {members:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.0.shutdown().await;
    let (_, t2) = one_leader(&[&b.1]).await;
    assert!(t2 > t1, "token {t2} after {t1}");
    b.0.shutdown().await;
}

/// Waits until `svc` leads under a token greater than `after`; the token.
async fn leads_after(svc: &Service, after: Term) -> Term {
    let mut rx = svc.leadership();
    let l = tokio::time::timeout(LIMIT, rx.wait_for(|l| l.is_me && l.term > after))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} did not lead under a token > {after} within {LIMIT:?}: {:?}",
                svc.member(),
                svc.leadership().borrow()
            )
        })
        .unwrap()
        .clone();
    l.term
}

/// A node of `name` whose elector the test keeps a handle of too (what `Node::abort` then
/// does not drop: shut such nodes down kindly).
async fn start_with_elector(
    name: &str,
    etcd: &LocalEtcd,
    net: &MemoryNetwork,
) -> (Node, Service, Arc<EtcdElector>) {
    let cfg = config(name, etcd);
    let elector = Arc::new(
        EtcdElector::connect(EtcdSettings::from_config(&cfg).unwrap())
            .await
            .unwrap(),
    );
    let policies = baton_strategies::policies_for(&cfg).unwrap();
    let node = Node::builder(cfg)
        .policies(policies)
        .transport(Arc::new(net.transport()))
        .elector(elector.clone())
        .start()
        .await
        .unwrap();
    let svc = node.join(G, Labels::new()).await.unwrap();
    (node, svc, elector)
}

/// The elector's side of `baton transfer` / `baton step-down` (`EtcdElector::transfer`,
/// `step_down`): the leader stops acting and hands the leader key to the named member in one
/// transaction conditioned on the key's revision; that member leads under a greater token
/// (the key's mod revision) and every node agrees; a step-down hands to another member under
/// a greater token again; a non-leader, a transfer to the leader itself and one to an unknown
/// node are refused and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elector_transfers_and_steps_down_by_moving_the_leader_key() {
    use baton_core::ControlError;
    let etcd = etcd();
    let net = MemoryNetwork::new();
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        nodes.push(start_with_elector(n, &etcd, &net).await);
    }
    let svcs: Vec<&Service> = nodes.iter().map(|n| &n.1).collect();
    let (first, t1) = one_leader(&svcs).await;
    let group = GroupName::from(G);
    // Every node's member key is in the leader's view before it is named.
    wait_members(&etcd, 3).await;

    let target = (first + 1) % 3;
    let to = nodes[target].0.id().clone();
    // The old leader's `is_me` must be false from the moment the transfer is answered.
    let started = Instant::now();
    let h = nodes[first].2.transfer(&group, to.clone()).await.unwrap();
    assert!(
        !svcs[first].is_leader(),
        "the old leader still acts after its handoff"
    );
    assert_eq!(
        (&h.from, &h.to.node, h.term),
        (svcs[first].member(), &to, t1)
    );
    let t2 = leads_after(svcs[target], t1).await;
    let took = started.elapsed();
    assert_eq!(one_leader(&svcs).await, (target, t2));
    eprintln!("transfer to {to}: leads under {t2} (was {t1}) {took:?} after the request");

    let started = Instant::now();
    let h = nodes[target].2.step_down(&group).await.unwrap();
    assert!(
        !svcs[target].is_leader(),
        "the leader that stepped down still acts"
    );
    assert_eq!((&h.from, h.term), (svcs[target].member(), t2));
    let next = nodes.iter().position(|n| *n.0.id() == h.to.node).unwrap();
    assert_ne!(next, target);
    let t3 = leads_after(svcs[next], t2).await;
    let took = started.elapsed();
    assert_eq!(one_leader(&svcs).await, (next, t3));
    eprintln!(
        "step-down: {} leads under {t3} {took:?} after the request",
        h.to
    );

    // Refused, and nothing moves.
    let me = nodes[next].0.id().clone();
    let follower = (next + 1) % 3;
    assert!(matches!(
        nodes[follower].2.transfer(&group, me.clone()).await,
        Err(ControlError::NotLeader { .. })
    ));
    assert!(matches!(
        nodes[next].2.transfer(&group, me).await,
        Err(ControlError::AlreadyLeads { .. })
    ));
    assert!(matches!(
        nodes[next].2.transfer(&group, "nobody".into()).await,
        Err(ControlError::UnknownTarget { .. })
    ));
    assert!(matches!(
        nodes[follower].2.step_down(&group).await,
        Err(ControlError::NotLeader { .. })
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(one_leader(&svcs).await, (next, t3));
    for n in &nodes {
        n.0.shutdown().await;
    }
}

/// Waits until `n` member keys of `G` are in etcd.
async fn wait_members(etcd: &LocalEtcd, n: usize) {
    let deadline = Instant::now() + LIMIT;
    while etcd_members(etcd, G).len() < n {
        assert!(
            Instant::now() < deadline,
            "not {n} member keys within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What each node's `on_started_leading` work did, in the order it happened: (node index,
/// started or ended, term).
type WorkLog = Arc<std::sync::Mutex<Vec<(usize, &'static str, Term)>>>;

/// Leader work on `svc` (node `i`) that logs its start and its end, and takes 50 ms to stop
/// once cancelled (as a command would).
fn log_work(svc: &Service, i: usize, log: &WorkLog) {
    let log = log.clone();
    svc.on_started_leading(move |term, token| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push((i, "started", term));
            token.cancelled().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            log.lock().unwrap().push((i, "ended", term));
        }
    });
}

/// Where `(node, what, term)` is in `log` (panics, showing the log, when it is not).
fn at(log: &WorkLog, entry: (usize, &'static str, Term)) -> usize {
    let log = log.lock().unwrap();
    log.iter()
        .position(|e| *e == entry)
        .unwrap_or_else(|| panic!("{entry:?} not in the work log {log:?}"))
}

/// Waits until `entry` is in `log`.
async fn logged(log: &WorkLog, entry: (usize, &'static str, Term)) {
    let deadline = Instant::now() + LIMIT;
    while !log.lock().unwrap().contains(&entry) {
        assert!(
            Instant::now() < deadline,
            "{entry:?} not in the work log within {LIMIT:?}: {:?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `baton transfer` / `baton step-down` through the node (`Node::transfer`, `step_down`: the
/// engine's Control path, routed to the leader, whose engine hands the request to its elector,
/// `Action::ElectorHandOff`) on the etcd backend: the leader key moves to the named node (a
/// step-down: to another node) under a greater token; the old leader's `on_started_leading`
/// work ends before the successor's starts; a refused request (to the leader itself, decided by
/// the engine; to an unknown node, by the elector) names the node, moves nothing and leaves the
/// leader's work running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_and_step_down_through_the_node_move_the_etcd_leader_key() {
    use baton_core::ControlError;
    let etcd = etcd();
    let net = MemoryNetwork::new();
    let log: WorkLog = Arc::default();
    let mut nodes = Vec::new();
    for (i, n) in ["a", "b", "c"].into_iter().enumerate() {
        let node = start(n, &etcd, &net).await;
        log_work(&node.1, i, &log);
        nodes.push(node);
    }
    let svcs: Vec<&Service> = nodes.iter().map(|n| &n.1).collect();
    let (first, t1) = one_leader(&svcs).await;
    logged(&log, (first, "started", t1)).await;
    wait_members(&etcd, 3).await;
    // Asked on a follower: routed to the leader.
    let (target, asker) = ((first + 1) % 3, (first + 2) % 3);
    let to = nodes[target].0.id().clone();
    let started = Instant::now();
    let h = nodes[asker].0.transfer(G, to.clone()).await.unwrap();
    assert_eq!(
        (&h.from, &h.to.node, h.term),
        (svcs[first].member(), &to, t1)
    );
    let t2 = leads_after(svcs[target], t1).await;
    let took = started.elapsed();
    assert!(!svcs[first].is_leader(), "the old leader still acts");
    assert_eq!(one_leader(&svcs).await, (target, t2));
    logged(&log, (target, "started", t2)).await;
    logged(&log, (first, "ended", t1)).await;
    assert!(
        at(&log, (first, "ended", t1)) < at(&log, (target, "started", t2)),
        "the successor's work started before the old leader's ended: {:?}",
        log.lock().unwrap()
    );
    eprintln!("routed transfer to {to}: leads under {t2} (was {t1}) {took:?} after the request");

    // Refused, and nothing moves: the leader's work goes on (never released).
    let before = log.lock().unwrap().len();
    let leader = nodes[target].0.id().clone();
    assert_eq!(
        nodes[asker].0.transfer(G, leader.clone()).await,
        Err(ControlError::AlreadyLeads {
            group: G.into(),
            node: leader.clone()
        })
    );
    assert_eq!(
        nodes[asker].0.transfer(G, "nobody").await,
        Err(ControlError::UnknownTarget {
            node: "nobody".into()
        })
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(one_leader(&svcs).await, (target, t2));
    let after = log.lock().unwrap().clone();
    assert_eq!(
        after.len(),
        before,
        "a refused request stopped or restarted leader work: {after:?}"
    );

    // Step down, asked on the old leader (now a follower): another node leads.
    let started = Instant::now();
    let h = nodes[first].0.step_down(G).await.unwrap();
    assert_eq!((&h.from, h.term), (svcs[target].member(), t2));
    let next = nodes.iter().position(|n| *n.0.id() == h.to.node).unwrap();
    assert_ne!(next, target);
    let t3 = leads_after(svcs[next], t2).await;
    let took = started.elapsed();
    assert!(
        !svcs[target].is_leader(),
        "the leader that stepped down still acts"
    );
    assert_eq!(one_leader(&svcs).await, (next, t3));
    logged(&log, (next, "started", t3)).await;
    logged(&log, (target, "ended", t2)).await;
    assert!(
        at(&log, (target, "ended", t2)) < at(&log, (next, "started", t3)),
        "the successor's work started before the old leader's ended: {:?}",
        log.lock().unwrap()
    );
    eprintln!(
        "routed step-down: {} leads under {t3} {took:?} after the request",
        h.to
    );
    for n in &nodes {
        n.0.shutdown().await;
    }
}
