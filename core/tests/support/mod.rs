//! A small harness: N baton nodes on one in-memory network, with helpers to wait for
//! agreement and to watch that no two nodes ever act as leader at once.
#![allow(dead_code)]

use baton_core::config::{Config, GroupConfig, QuorumMode};
use baton_core::{Leadership, MemberId, Node, Service};
use baton_transport_memory::MemoryNetwork;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

static INCARNATION: AtomicU64 = AtomicU64::new(1_000);

pub struct Cluster {
    pub net: MemoryNetwork,
    pub names: Vec<String>,
    pub quorum: QuorumMode,
    pub groups: Vec<GroupConfig>,
    pub nodes: BTreeMap<String, Node>,
    pub services: BTreeMap<(String, String), Service>,
    pub weights: BTreeMap<String, f64>,
    pub labels: BTreeMap<String, baton_core::Labels>,
}

impl Cluster {
    pub fn new(names: &[&str], quorum: QuorumMode, groups: Vec<GroupConfig>) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        Cluster {
            net: MemoryNetwork::with_seed(7),
            names: names.iter().map(|s| s.to_string()).collect(),
            quorum,
            groups,
            nodes: BTreeMap::new(),
            services: BTreeMap::new(),
            weights: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }

    pub fn config(&self, name: &str) -> Config {
        let mut c = Config::new(name);
        c.node.listen = name.to_string();
        c.node.hardware.cpus = Some(4);
        c.node.hardware.memory_bytes = Some(8 << 30);
        c.node.hardware.weight = self.weights.get(name).copied();
        c.node.labels = self.labels.get(name).cloned().unwrap_or_default();
        c.cluster.seeds = self
            .names
            .iter()
            .filter(|n| *n != name)
            .map(|n| format!("{n}@{n}"))
            .collect();
        c.cluster.voters = self.names.clone();
        c.cluster.quorum = self.quorum;
        c.groups = self.groups.clone();
        c.validate().expect("test config is valid");
        c
    }

    /// Starts (or restarts) a node and joins every configured group on it.
    pub async fn start(&mut self, name: &str) -> Node {
        self.start_joining(name, &self.group_names()).await
    }

    pub fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    pub async fn start_joining(&mut self, name: &str, groups: &[String]) -> Node {
        let config = self.config(name);
        let policies = baton_strategies::policies_for(&config).expect("policies build");
        let node = Node::builder(config)
            .transport(Arc::new(self.net.transport()))
            .policies(policies)
            .incarnation(INCARNATION.fetch_add(1, Ordering::Relaxed))
            .start()
            .await
            .expect("node starts");
        for g in groups {
            // Distinct wall-clock join times, so oldest-running has a clear order.
            std::thread::sleep(Duration::from_millis(3));
            let svc = node.join(g, Default::default()).await.expect("join");
            self.services.insert((name.to_string(), g.clone()), svc);
        }
        self.nodes.insert(name.to_string(), node.clone());
        node
    }

    /// Kills a node: its process stops and its connections close (peers can prove it).
    pub fn kill(&mut self, name: &str) {
        if let Some(node) = self.nodes.remove(name) {
            node.abort();
        }
        self.services.retain(|(n, _), _| n != name);
        self.net.crash(name);
    }

    pub fn live(&self) -> Vec<&Node> {
        self.nodes.values().collect()
    }

    pub fn node(&self, name: &str) -> &Node {
        &self.nodes[name]
    }

    pub fn watches(&self, group: &str) -> Vec<(String, watch::Receiver<Leadership>)> {
        self.nodes
            .iter()
            .map(|(n, node)| (n.clone(), node.leadership(group)))
            .collect()
    }

    /// Waits until every live node agrees on one leader of `group` (same member, same term)
    /// and exactly that node acts as leader. Panics after `limit` (virtual time).
    pub async fn agreed(&self, group: &str, limit: Duration) -> Leadership {
        self.agreed_among(
            group,
            &self.nodes.keys().cloned().collect::<Vec<_>>(),
            limit,
        )
        .await
    }

    pub async fn agreed_among(&self, group: &str, names: &[String], limit: Duration) -> Leadership {
        let start = tokio::time::Instant::now();
        loop {
            if let Some(l) = self.agreement(group, names) {
                return l;
            }
            if start.elapsed() > limit {
                let views: Vec<_> = names
                    .iter()
                    .map(|n| (n.clone(), self.nodes[n].leadership(group).borrow().clone()))
                    .collect();
                panic!("no agreement on group {group} within {limit:?}: {views:#?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn agreement(&self, group: &str, names: &[String]) -> Option<Leadership> {
        let views: Vec<(String, Leadership)> = names
            .iter()
            .map(|n| (n.clone(), self.nodes[n].leadership(group).borrow().clone()))
            .collect();
        let first = views.first()?.1.clone();
        let leader = first.leader.clone()?;
        if views
            .iter()
            .any(|(_, l)| l.leader.as_ref() != Some(&leader) || l.term != first.term)
        {
            return None;
        }
        let acting: Vec<&String> = views
            .iter()
            .filter(|(_, l)| l.is_me)
            .map(|(n, _)| n)
            .collect();
        let leader_here = names.contains(&leader.node.0);
        if !leader_here || acting.len() != 1 || *acting[0] != leader.node.0 {
            return None;
        }
        let mut out = first;
        out.is_me = false;
        Some(out)
    }

    /// Who acts as leader of `group` right now.
    pub fn acting(&self, group: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.leadership(group).borrow().is_me)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Samples every node's leadership each time any of them changes and remembers the largest
/// number of nodes that acted as leader at the same moment.
pub struct OverlapMonitor {
    pub max_acting: Arc<AtomicUsize>,
    pub history: Arc<Mutex<Vec<(String, bool, u64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl OverlapMonitor {
    pub fn start(watches: Vec<(String, watch::Receiver<Leadership>)>) -> Self {
        let max_acting = Arc::new(AtomicUsize::new(0));
        let history = Arc::new(Mutex::new(Vec::new()));
        let (m, h) = (max_acting.clone(), history.clone());
        let task = tokio::spawn(async move {
            let mut watches = watches;
            loop {
                let acting = watches.iter().filter(|(_, w)| w.borrow().is_me).count();
                m.fetch_max(acting, Ordering::SeqCst);
                let futs = watches.iter_mut().map(|(_, w)| Box::pin(w.changed()));
                let (res, idx, _) = futures_select_all(futs.collect()).await;
                if res.is_err() {
                    watches.remove(idx);
                    if watches.is_empty() {
                        return;
                    }
                    continue;
                }
                let (name, w) = &watches[idx];
                let l = w.borrow().clone();
                h.lock().unwrap().push((name.clone(), l.is_me, l.term));
            }
        });
        OverlapMonitor {
            max_acting,
            history,
            task,
        }
    }

    pub fn max(&self) -> usize {
        self.max_acting.load(Ordering::SeqCst)
    }
}

impl Drop for OverlapMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A minimal `select_all` over boxed futures (no extra dependency).
async fn futures_select_all<F>(mut futs: Vec<std::pin::Pin<Box<F>>>) -> (F::Output, usize, ())
where
    F: std::future::Future + ?Sized,
{
    std::future::poll_fn(move |cx| {
        for (i, f) in futs.iter_mut().enumerate() {
            if let std::task::Poll::Ready(out) = f.as_mut().poll(cx) {
                return std::task::Poll::Ready((out, i, ()));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

pub fn group(name: &str, policy: &[&str], preempt: bool) -> GroupConfig {
    let mut g = GroupConfig::new(name);
    if !policy.is_empty() {
        g.policy = Some(baton_core::config::PolicySpec::Chain(
            policy
                .iter()
                .map(|p| baton_core::config::PolicySpec::Named(p.to_string()))
                .collect(),
        ));
    }
    g.preempt = preempt;
    g
}

pub fn member(node: &str, l: &Leadership) -> bool {
    l.leader
        .as_ref()
        .is_some_and(|m: &MemberId| m.node.as_str() == node)
}

pub const LIMIT: Duration = Duration::from_secs(10);
