//! N real [`Node`]s in one process, over one [`MemoryNetwork`] or over loopback TCP: the one
//! in-process cluster harness of core's tests, the reliability suite and the failover benches.
//!
//! Nodes are named by the caller and all vote. A node is (re)started with [`Cluster::start`]
//! (a new incarnation each time) and killed with [`Cluster::kill`] as a crashed process dies:
//! its driver stops at once and its connections close, so peers can prove its death.

use baton_core::config::{Config, GroupConfig, QuorumMode, TimingConfig};
use baton_core::{GroupName, LeaderPolicy, Leadership, Node, Service, Transport};
use baton_transport_memory::MemoryNetwork;
use baton_transport_tcp::{TcpConfig, TcpTransport};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which transport the nodes talk over.
#[derive(Clone)]
pub enum Net {
    /// One in-memory network; a node listens at its name.
    Memory(MemoryNetwork),
    /// Loopback TCP from these settings; each incarnation listens on a fresh `127.0.0.1:0`.
    Tcp(TcpConfig),
}

/// Which leader policies the nodes run.
#[derive(Clone, Default)]
pub enum Policies {
    /// What each group's config names (`baton_strategies::policies_for`).
    #[default]
    FromConfig,
    /// None: the runtime's built-in default.
    Builtin,
    /// This one for every group.
    Fixed(Arc<dyn LeaderPolicy>),
}

/// A cluster of named nodes in this process. Every field is public so that a test can add a
/// node it started by hand, or change how the next node is configured.
pub struct Cluster {
    /// The transport.
    pub net: Net,
    /// Every node's name (all of them vote), running or not.
    pub names: Vec<String>,
    /// Quorum mode.
    pub quorum: QuorumMode,
    /// The groups every node joins on [`Cluster::start`].
    pub groups: Vec<GroupConfig>,
    /// Protocol timings.
    pub timing: TimingConfig,
    /// Leader policies.
    pub policies: Policies,
    /// CPUs and memory every node reports.
    pub hardware: (u32, u64),
    /// Hardware weight per node (none: computed from the hardware).
    pub weights: BTreeMap<String, f64>,
    /// Labels per node.
    pub labels: BTreeMap<String, baton_core::Labels>,
    /// TCP: the address other nodes reach a node at, when not the one it binds (a proxy port).
    pub reach: BTreeMap<String, String>,
    /// Running nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// Joined members by (node, group).
    pub services: BTreeMap<(String, GroupName), Service>,
    /// TCP: each running node's transport (closed on a kill).
    pub tcp: BTreeMap<String, Arc<TcpTransport>>,
    /// When each running node was started.
    pub started: BTreeMap<String, std::time::Instant>,
    /// The services of nodes [`Cluster::take`]n out: kept, since a dropped service of a
    /// running node leaves its group, which would hand off before the caller's shutdown.
    pub retired: Vec<Service>,
}

static INCARNATION: AtomicU64 = AtomicU64::new(0);

/// A fresh incarnation: wall-clock microseconds, strictly increasing within the process.
pub fn next_incarnation() -> u64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1);
    let prev = INCARNATION.fetch_max(wall, Ordering::SeqCst);
    if prev >= wall {
        INCARNATION.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        wall
    }
}

impl Cluster {
    /// Nodes `names` on a [`MemoryNetwork`] seeded with 7, joining `groups`; 4 CPUs and 8 GiB
    /// each, policies from the config. Starts no node.
    pub fn memory(names: &[&str], quorum: QuorumMode, groups: Vec<GroupConfig>) -> Self {
        crate::init_tracing();
        Cluster::new(
            Net::Memory(MemoryNetwork::with_seed(7)),
            names,
            quorum,
            groups,
        )
    }

    /// Nodes `names` over `net`, joining `groups`, with default timings; 4 CPUs and 8 GiB
    /// each, policies from the config. Starts no node.
    pub fn new(net: Net, names: &[&str], quorum: QuorumMode, groups: Vec<GroupConfig>) -> Self {
        Cluster {
            net,
            names: names.iter().map(|s| s.to_string()).collect(),
            quorum,
            groups,
            timing: TimingConfig::default(),
            policies: Policies::FromConfig,
            hardware: (4, 8 << 30),
            weights: BTreeMap::new(),
            labels: BTreeMap::new(),
            reach: BTreeMap::new(),
            nodes: BTreeMap::new(),
            services: BTreeMap::new(),
            tcp: BTreeMap::new(),
            started: BTreeMap::new(),
            retired: Vec::new(),
        }
    }

    /// The memory network. Panics on a TCP cluster.
    pub fn memory_net(&self) -> &MemoryNetwork {
        match &self.net {
            Net::Memory(net) => net,
            Net::Tcp(_) => panic!("not an in-memory cluster"),
        }
    }

    /// The config of node `name`. Seeds: every other node (in memory), or on TCP the address
    /// each other node is reached at: its [`Cluster::reach`] entry, else where it runs now.
    pub fn config(&self, name: &str) -> Config {
        let mut c = Config::new(name);
        c.node.hardware.cpus = Some(self.hardware.0);
        c.node.hardware.memory_bytes = Some(self.hardware.1);
        c.node.hardware.weight = self.weights.get(name).copied();
        c.node.labels = self.labels.get(name).cloned().unwrap_or_default();
        let others = self.names.iter().filter(|n| *n != name);
        match &self.net {
            Net::Memory(_) => {
                c.node.listen = name.to_string();
                c.cluster.seeds = others.map(|n| format!("{n}@{n}")).collect();
            }
            Net::Tcp(tcp) => {
                c.node.listen = "127.0.0.1:0".into();
                c.cluster.name = tcp.cluster.clone();
                c.cluster.seeds = others
                    .filter_map(|n| {
                        let at = self.reach.get(n).cloned();
                        let at = at.or_else(|| Some(self.nodes.get(n)?.addr().to_string()))?;
                        Some(format!("{n}@{at}"))
                    })
                    .collect();
            }
        }
        c.cluster.voters = self.names.clone();
        c.cluster.quorum = self.quorum;
        c.timing = self.timing.clone();
        c.groups = self.groups.clone();
        c.validate().expect("test config is valid");
        c
    }

    /// Names of the configured groups.
    pub fn group_names(&self) -> Vec<GroupName> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    /// Starts (or restarts, as a new incarnation) node `name` and joins every configured group.
    pub async fn start(&mut self, name: &str) -> Node {
        self.start_joining(name, &self.group_names()).await
    }

    /// Starts (or restarts, as a new incarnation) node `name` and joins `groups` on it.
    pub async fn start_joining(&mut self, name: &str, groups: &[GroupName]) -> Node {
        let config = self.config(name);
        let transport: Arc<dyn Transport> = match &self.net {
            Net::Memory(net) => Arc::new(net.transport()),
            Net::Tcp(tcp) => {
                let mut tcp = tcp.clone();
                tcp.advertise = self.reach.get(name).cloned();
                let t = Arc::new(TcpTransport::new(tcp));
                self.tcp.insert(name.to_string(), t.clone());
                t
            }
        };
        let builder = Node::builder(config.clone())
            .transport(transport)
            .incarnation(next_incarnation());
        let builder = match &self.policies {
            Policies::FromConfig => {
                builder.policies(baton_strategies::policies_for(&config).expect("policies build"))
            }
            Policies::Builtin => builder,
            Policies::Fixed(p) => builder.policy(p.clone()),
        };
        self.started
            .insert(name.to_string(), std::time::Instant::now());
        let node = builder.start().await.expect("node starts");
        // Distinct wall-clock join times between nodes, so oldest-running has a clear order;
        // one join for all groups (a thousand joins one by one would rank a thousand times).
        std::thread::sleep(Duration::from_millis(3));
        let joined = node
            .join_all(groups.iter().map(|g| (g.clone(), Default::default())))
            .await
            .expect("join");
        for svc in joined {
            self.services
                .insert((name.to_string(), svc.group().clone()), svc);
        }
        self.nodes.insert(name.to_string(), node.clone());
        node
    }

    /// Where node `name` really listens (TCP), when it runs.
    pub fn bound(&self, name: &str) -> Option<SocketAddr> {
        self.tcp.get(name)?.local_addr()
    }

    /// The member of `group` on node `name`. Panics when there is none.
    pub fn service(&self, name: &str, group: &str) -> &Service {
        &self.services[&(name.to_string(), GroupName::from(group))]
    }

    /// Takes node `name` out of the cluster, still running (for a kind shutdown the caller
    /// runs while it measures what the others see).
    pub fn take(&mut self, name: &str) -> Option<Node> {
        let (theirs, ours) = std::mem::take(&mut self.services)
            .into_iter()
            .partition(|((n, _), _)| n == name);
        self.services = ours;
        let theirs: BTreeMap<(String, GroupName), Service> = theirs;
        self.retired.extend(theirs.into_values());
        self.tcp.remove(name);
        self.started.remove(name);
        self.nodes.remove(name)
    }

    /// Kills node `name` as a crashed process dies: its driver stops at once and its
    /// connections close (the memory network crashes its endpoint; TCP closes its listener and
    /// every socket, so reconnects are refused). Returns what finishes the TCP close.
    pub fn kill(&mut self, name: &str) -> Option<JoinHandle<()>> {
        let tcp = self.tcp.get(name).cloned();
        // Abort before the services are dropped: a dropped service of a running node leaves
        // its group kindly, which is not what a crash does.
        if let Some(node) = self.nodes.get(name) {
            node.abort();
        }
        self.take(name);
        match &self.net {
            Net::Memory(net) => {
                net.crash(name);
                None
            }
            Net::Tcp(_) => Some(tokio::spawn(async move {
                if let Some(t) = tcp {
                    t.shutdown().await;
                }
            })),
        }
    }

    /// The running nodes.
    pub fn live(&self) -> Vec<&Node> {
        self.nodes.values().collect()
    }

    /// Names of the running nodes.
    pub fn live_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// The running node `name`. Panics when it does not run.
    pub fn node(&self, name: &str) -> &Node {
        &self.nodes[name]
    }

    /// Every running node's leadership watch of `group`.
    pub fn watches(&self, group: &str) -> Vec<(String, watch::Receiver<Leadership>)> {
        self.nodes
            .iter()
            .map(|(n, node)| (n.clone(), node.leadership(group)))
            .collect()
    }

    /// Each running node's current view of `group`.
    pub fn views(&self, group: &str) -> BTreeMap<String, Leadership> {
        self.watches(group)
            .into_iter()
            .map(|(n, w)| (n, w.borrow().clone()))
            .collect()
    }

    /// Who acts as leader of `group` right now.
    pub fn acting(&self, group: &str) -> Vec<String> {
        let views = self.views(group);
        views
            .into_iter()
            .filter(|(_, l)| l.is_me)
            .map(|(n, _)| n)
            .collect()
    }

    /// When every one of `names` runs and all agree on one leader and term of `group`, and
    /// exactly that node acts if it is among them (none acts if it is not): the agreed
    /// leadership, with `is_me` false.
    pub fn agreement(&self, group: &str, names: &[String]) -> Option<Leadership> {
        let views: Vec<(&String, Leadership)> = names
            .iter()
            .map(|n| Some((n, self.nodes.get(n)?.leadership(group).borrow().clone())))
            .collect::<Option<_>>()?;
        let first = views.first()?.1.clone();
        let leader = first.leader.clone()?;
        if views
            .iter()
            .any(|(_, l)| l.leader.as_ref() != Some(&leader) || l.term != first.term)
        {
            return None;
        }
        let acting: Vec<&str> = views
            .iter()
            .filter(|(_, l)| l.is_me)
            .map(|(n, _)| n.as_str())
            .collect();
        let leader_here = names.contains(&leader.node.0);
        let expected: &[&str] = if leader_here {
            &[leader.node.as_str()]
        } else {
            &[]
        };
        if acting != expected {
            return None;
        }
        Some(Leadership {
            is_me: false,
            ..first
        })
    }

    /// Waits until [`Cluster::agreement`] holds for `names` on a leadership that satisfies
    /// `pred`; panics with every view after `limit` (of tokio time, virtual when paused).
    pub async fn agreed_on(
        &self,
        group: &str,
        names: &[String],
        limit: Duration,
        pred: impl Fn(&Leadership) -> bool,
    ) -> Leadership {
        let start = tokio::time::Instant::now();
        loop {
            if let Some(l) = self.agreement(group, names).filter(|l| pred(l)) {
                return l;
            }
            if start.elapsed() > limit {
                panic!(
                    "no agreement among {names:?} on group {group} within {limit:?}: {:#?}",
                    self.views(group)
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until all of `names` agree on a leader of `group` that is one of them.
    pub async fn agreed_among(&self, group: &str, names: &[String], limit: Duration) -> Leadership {
        let among = |l: &Leadership| l.leader.as_ref().is_some_and(|m| names.contains(&m.node.0));
        self.agreed_on(group, names, limit, among).await
    }

    /// Waits until every running node agrees on a leader of `group` that runs.
    pub async fn agreed(&self, group: &str, limit: Duration) -> Leadership {
        self.agreed_among(group, &self.live_names(), limit).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values() {
            node.abort();
        }
    }
}
