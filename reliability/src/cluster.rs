//! N baton [`Node`]s over real TCP in one process (the test kit's [`Cluster`]), optionally each
//! behind a [`FaultNet`] proxy port, and a [`LeadershipLog`] of every leadership change they
//! publish.

use crate::proxy::{FaultNet, ProxyPort};
use baton_core::config::{QuorumMode, TimingConfig};
use baton_core::{Leadership, MemberId, Node, Term, Work};
use baton_testkit::cluster::{Cluster, Net, Policies};
use baton_transport_tcp::TcpConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The one group every test node joins.
pub const GROUP: &str = "g";
/// Cluster name of the test clusters.
pub const CLUSTER: &str = "reliability";
/// Cluster secret of the test clusters.
pub const SECRET: &[u8] = b"reliability test secret, not for production";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One leadership value a node published (or its death), when it was observed.
#[derive(Clone, Debug)]
pub struct Observed {
    /// When the watch delivered it (a few microseconds after the node published it).
    pub at: Instant,
    /// The node.
    pub node: String,
    /// Its incarnation.
    pub incarnation: u64,
    /// What it published. After a kill: `is_me = false`, with `killed` set.
    pub leadership: Leadership,
    /// The node was killed (aborted) at `at`: it stops acting whatever it last published.
    pub killed: bool,
}

/// One stretch of time during which a node acted as leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acting {
    /// The node.
    pub node: String,
    /// Its incarnation.
    pub incarnation: u64,
    /// The term it led.
    pub term: Term,
    /// When it started acting.
    pub from: Instant,
    /// When it stopped (`None`: still acting).
    pub until: Option<Instant>,
}

/// Every leadership value every node of a cluster published, timestamped on arrival.
#[derive(Clone, Default)]
pub struct LeadershipLog {
    events: Arc<Mutex<Vec<Observed>>>,
}

impl LeadershipLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records every value `rx` delivers, until its node is gone.
    pub fn follow(&self, node: &str, incarnation: u64, mut rx: watch::Receiver<Leadership>) {
        let events = self.events.clone();
        let node = node.to_string();
        tokio::spawn(async move {
            loop {
                let l = rx.borrow_and_update().clone();
                lock(&events).push(Observed {
                    at: Instant::now(),
                    node: node.clone(),
                    incarnation,
                    leadership: l,
                    killed: false,
                });
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Records that `node` was killed now.
    pub fn killed(&self, node: &str, incarnation: u64) {
        let mut l = Leadership::none(GROUP);
        l.is_me = false;
        lock(&self.events).push(Observed {
            at: Instant::now(),
            node: node.to_string(),
            incarnation,
            leadership: l,
            killed: true,
        });
    }

    /// Everything observed so far, in order of arrival.
    pub fn events(&self) -> Vec<Observed> {
        lock(&self.events).clone()
    }

    /// Every stretch of acting as leader, per node incarnation, in order of start.
    pub fn acting(&self) -> Vec<Acting> {
        let mut open: BTreeMap<(String, u64), Acting> = BTreeMap::new();
        let mut killed: BTreeSet<(String, u64)> = BTreeSet::new();
        let mut done = Vec::new();
        for e in self.events() {
            let key = (e.node.clone(), e.incarnation);
            if killed.contains(&key) {
                // A value the node published before it was killed, delivered late.
                continue;
            }
            if e.killed {
                killed.insert(key.clone());
            }
            let now_acting = e.leadership.is_me && !e.killed;
            match open.remove(&key) {
                Some(mut a) if !now_acting || a.term != e.leadership.term => {
                    a.until = Some(e.at);
                    done.push(a);
                    if now_acting {
                        open.insert(key, start(&e));
                    }
                }
                Some(a) => {
                    open.insert(key, a);
                }
                None if now_acting => {
                    open.insert(key, start(&e));
                }
                None => {}
            }
        }
        done.extend(open.into_values());
        done.sort_by_key(|a| a.from);
        done
    }

    /// Pairs of stretches of different nodes that overlap in time (should be none in quorum
    /// mode).
    pub fn overlaps(&self) -> Vec<(Acting, Acting)> {
        let acting = self.acting();
        let mut out = Vec::new();
        for (i, a) in acting.iter().enumerate() {
            for b in &acting[i + 1..] {
                if a.node == b.node {
                    continue;
                }
                let a_end = a.until.unwrap_or_else(far_future);
                let b_end = b.until.unwrap_or_else(far_future);
                if a.from < b_end && b.from < a_end {
                    out.push((a.clone(), b.clone()));
                }
            }
        }
        out
    }

    /// Every (term → leading member) the nodes published, from every node's view.
    pub fn terms(&self) -> BTreeMap<Term, BTreeSet<MemberId>> {
        let mut out: BTreeMap<Term, BTreeSet<MemberId>> = BTreeMap::new();
        for e in self.events() {
            if let Some(m) = &e.leadership.leader {
                out.entry(e.leadership.term).or_default().insert(m.clone());
            }
        }
        out
    }

    /// How many times a node started acting as leader at or after `since`.
    pub fn elections_since(&self, since: Instant) -> usize {
        self.acting().iter().filter(|a| a.from >= since).count()
    }

    /// Changes of (leader, term, is_me) observed at or after `since`, any node.
    pub fn changes_since(&self, since: Instant) -> Vec<Observed> {
        let mut last: BTreeMap<(String, u64), (Option<MemberId>, Term, bool)> = BTreeMap::new();
        let mut out = Vec::new();
        for e in self.events() {
            let key = (e.node.clone(), e.incarnation);
            let value = (
                e.leadership.leader.clone(),
                e.leadership.term,
                e.leadership.is_me,
            );
            let changed = last.get(&key).is_some_and(|v| *v != value);
            last.insert(key, value);
            if changed && e.at >= since {
                out.push(e);
            }
        }
        out
    }
}

fn start(e: &Observed) -> Acting {
    Acting {
        node: e.node.clone(),
        incarnation: e.incarnation,
        term: e.leadership.term,
        from: e.at,
        until: None,
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// How to build a [`TcpCluster`].
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Node names; all of them vote.
    pub names: Vec<String>,
    /// Put every node behind a proxy port of the cluster's [`FaultNet`].
    pub proxied: bool,
    /// Transport settings (cluster name, secret, limits) every node starts from.
    pub tcp: TcpConfig,
    /// Protocol timings (defaults: heartbeat 100 ms, failure timeout 500 ms).
    pub timing: TimingConfig,
    /// Quorum mode.
    pub quorum: QuorumMode,
}

impl ClusterOptions {
    /// Nodes `names`, direct TCP, default timings, majority quorum.
    pub fn new(names: &[&str]) -> Self {
        ClusterOptions {
            names: names.iter().map(|s| s.to_string()).collect(),
            proxied: false,
            tcp: TcpConfig::new(CLUSTER, SECRET.to_vec()),
            timing: TimingConfig::default(),
            quorum: QuorumMode::Majority,
        }
    }
    /// Every node behind a proxy port.
    pub fn proxied(mut self) -> Self {
        self.proxied = true;
        self
    }
}

/// Counts of routed work each node's handler served: node → (term → count).
pub type ServedLog = Arc<Mutex<BTreeMap<String, BTreeMap<Term, u64>>>>;

/// Real nodes over TCP in this process: the test kit's [`Cluster`] with every node in
/// [`GROUP`], optionally behind proxy ports, and a log of what they published and served.
pub struct TcpCluster {
    /// How it was built.
    pub opts: ClusterOptions,
    /// The proxies' controls (unused when not proxied).
    pub net: FaultNet,
    /// Proxy ports by node name (empty when not proxied).
    pub ports: BTreeMap<String, ProxyPort>,
    /// The nodes.
    pub inner: Cluster,
    /// Leadership changes of every node ever started.
    pub log: LeadershipLog,
    /// What each node's handler served.
    pub served: ServedLog,
}

impl TcpCluster {
    /// Opens the proxy ports (when proxied) and starts every node, each joining [`GROUP`].
    pub async fn start(opts: ClusterOptions) -> Self {
        let mut cluster = Self::new(opts).await;
        for n in cluster.opts.names.clone() {
            cluster.start_node(&n).await;
        }
        cluster
    }

    /// Starts nodes `names` (direct TCP, default options) and waits until they agree: the
    /// cluster, the agreed leadership and its leader's name.
    pub async fn start_agreed(names: &[&str], limit: Duration) -> (Self, Leadership, String) {
        let c = Self::start(ClusterOptions::new(names)).await;
        let agreed = c.agreed(limit).await;
        let leader = agreed.leader.clone().expect("a leader").node.to_string();
        (c, agreed, leader)
    }

    /// Opens the proxy ports (when proxied); starts no node. Seeds are the proxy ports of
    /// every other node (proxied) or the addresses of the nodes running at a start.
    pub async fn new(opts: ClusterOptions) -> Self {
        let net = FaultNet::new();
        let mut ports = BTreeMap::new();
        let names: Vec<&str> = opts.names.iter().map(String::as_str).collect();
        let mut inner = Cluster::new(Net::Tcp(opts.tcp.clone()), &names, opts.quorum, vec![]);
        inner.timing = opts.timing.clone();
        inner.policies = Policies::Builtin;
        inner.hardware = (2, 1 << 30);
        if opts.proxied {
            for n in &opts.names {
                let port = net.port(n).await.expect("proxy port");
                inner.reach.insert(n.clone(), port.addr().to_string());
                ports.insert(n.clone(), port);
            }
        }
        TcpCluster {
            opts,
            net,
            ports,
            inner,
            log: LeadershipLog::new(),
            served: Arc::default(),
        }
    }

    /// Starts (or restarts, with a new incarnation) node `name` and joins [`GROUP`]; its
    /// handler answers with its name and records what it served.
    pub async fn start_node(&mut self, name: &str) -> Node {
        let node = self.inner.start_joining(name, &[]).await;
        if let (Some(port), Some(bound)) = (self.ports.get(name), self.inner.bound(name)) {
            port.set_target(bound);
        }
        self.log
            .follow(name, node.incarnation().get(), node.leadership(GROUP));
        let service = node.join(GROUP, Default::default()).await.expect("join");
        let served = self.served.clone();
        let me = name.to_string();
        service.serve(move |work: Work| {
            let served = served.clone();
            let me = me.clone();
            async move {
                *lock(&served)
                    .entry(me.clone())
                    .or_default()
                    .entry(work.term)
                    .or_default() += 1;
                Ok(me.into_bytes())
            }
        });
        self.inner
            .services
            .insert((name.to_string(), GROUP.into()), service);
        node
    }

    /// The running node `name`.
    pub fn node(&self, name: &str) -> &Node {
        self.inner.node(name)
    }

    /// Where node `name` really listens. Panics when it does not run.
    pub fn bound(&self, name: &str) -> SocketAddr {
        self.inner.bound(name).expect("the node runs and is bound")
    }

    /// What node `name` advertises (its proxy port, when proxied).
    pub fn advertised(&self, name: &str) -> String {
        self.node(name).addr().to_string()
    }

    /// Names of the running nodes.
    pub fn live(&self) -> Vec<String> {
        self.inner.live_names()
    }

    /// Kills `name` as if its process died: the driver stops mid-flight (no handoff, no
    /// goodbye) and its sockets close.
    pub async fn kill(&mut self, name: &str) {
        if let Some(n) = self.inner.nodes.get(name) {
            self.log.killed(name, n.incarnation().get());
        }
        if let Some(closing) = self.inner.kill(name) {
            let _ = closing.await;
        }
    }

    /// Shuts `name` down kindly: it hands off what it leads, says goodbye, closes.
    pub async fn shutdown_node(&mut self, name: &str) {
        if let Some(node) = self.inner.take(name) {
            node.shutdown().await;
        }
    }

    /// Shuts every node down and stops the proxies.
    pub async fn shutdown(&mut self) {
        for n in self.live() {
            if let Some(closing) = self.inner.kill(&n) {
                let _ = closing.await;
            }
        }
        self.net.shutdown();
    }

    /// Each running node's current view of [`GROUP`].
    pub fn views(&self) -> BTreeMap<String, Leadership> {
        self.inner.views(GROUP)
    }

    /// Nodes acting as leader now.
    pub fn acting_now(&self) -> Vec<String> {
        self.inner.acting(GROUP)
    }

    /// When all of `names` agree on one leader and term, and exactly that node (if among
    /// them) acts: the agreed leadership.
    pub fn agreement(&self, names: &[&str]) -> Option<Leadership> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.inner.agreement(GROUP, &names)
    }

    /// Waits until all of `names` agree on one leader and term, and exactly that node (if
    /// among them) acts; panics with every view after `limit`.
    pub async fn agreed_among(&self, names: &[&str], limit: Duration) -> Leadership {
        self.agreed_on(names, limit, |_| true).await
    }

    /// Like [`TcpCluster::agreed_among`], on a leadership that satisfies `pred`.
    pub async fn agreed_on(
        &self,
        names: &[&str],
        limit: Duration,
        pred: impl Fn(&Leadership) -> bool,
    ) -> Leadership {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let agreed = self.inner.agreed_on(GROUP, &names, limit, pred).await;
        self.logged(&names, &agreed, limit).await;
        agreed
    }

    /// Waits until the log's latest entry for every one of `names` shows `agreed`: the log
    /// follows each node from its own task, which may run after the agreement was seen, and
    /// a test that counts changes from now must not count the late arrival of the old one.
    async fn logged(&self, names: &[String], agreed: &Leadership, limit: Duration) {
        let start = Instant::now();
        loop {
            let events = self.log.events();
            let behind: Vec<&String> = names
                .iter()
                .filter(|n| {
                    let incarnation = self.inner.nodes.get(*n).map(|x| x.incarnation().get());
                    let last = events
                        .iter()
                        .rev()
                        .find(|e| &e.node == *n && Some(e.incarnation) == incarnation);
                    !last.is_some_and(|e| {
                        e.leadership.leader == agreed.leader && e.leadership.term == agreed.term
                    })
                })
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "the leadership log of {behind:?} never showed the agreed {agreed:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until every running node agrees on one leader.
    pub async fn agreed(&self, limit: Duration) -> Leadership {
        let names = self.live();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.agreed_on(&names, limit, |_| true).await
    }
}

impl Drop for TcpCluster {
    fn drop(&mut self) {
        self.net.shutdown();
    }
}
