//! N baton nodes in one process, on the in-memory transport or on loopback TCP, with the
//! faults the failover benches inject: crash (the process dies, its connections close),
//! kind shutdown, and restart of a node as a new incarnation.
//!
//! Every node runs [`OldestRunning`] for one group, and every node is a voter (majority
//! quorum, the default). Timings are the defaults (heartbeat 100 ms, failure timeout 500 ms)
//! unless a bench passes others.

use crate::wait;
use baton_core::config::{GroupConfig, QuorumMode, TimingConfig};
use baton_core::{Incarnation, Leadership, MemberId, Node, NodeId, Term};
use baton_strategies::OldestRunning;
use baton_testkit::cluster::{self as testkit, Policies};
use baton_transport_tcp::TcpConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Errors of the harness (a bench stops on the first one).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The group every node joins.
pub const GROUP: &str = "bench";

pub use baton_testkit::cluster::Net;

/// Loopback TCP with the benches' cluster name and secret.
pub fn tcp() -> Net {
    Net::Tcp(TcpConfig::new("bench", b"bench secret".to_vec()))
}

/// A cluster of `n` nodes in this process (the test kit's harness), addressed by index.
pub struct Cluster {
    inner: testkit::Cluster,
    /// The leader every live node agreed on at the last [`Cluster::steady`].
    pub leader: Option<(MemberId, Term)>,
}

impl Cluster {
    /// Starts `n` nodes, joins each to [`GROUP`] and waits until they are [`steady`](Self::steady).
    pub async fn start(net: Net, n: usize, timing: TimingConfig) -> Result<Cluster, Error> {
        let names: Vec<String> = (0..n).map(|i| format!("n{i:02}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut inner = testkit::Cluster::new(
            net,
            &names,
            QuorumMode::Majority,
            vec![GroupConfig::new(GROUP)],
        );
        inner.timing = timing;
        inner.policies = Policies::Fixed(Arc::new(OldestRunning));
        inner.hardware = (2, 1 << 30);
        let mut c = Cluster {
            inner,
            leader: None,
        };
        for i in 0..n {
            c.start_node(i).await?;
        }
        c.steady().await?;
        Ok(c)
    }

    /// The number of nodes (live or not).
    pub fn len(&self) -> usize {
        self.inner.names.len()
    }

    /// True for a cluster of no nodes.
    pub fn is_empty(&self) -> bool {
        self.inner.names.is_empty()
    }

    /// The failure timeout the nodes run with.
    pub fn failure_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.timing.failure_timeout_ms)
    }

    /// The index of node `id`.
    pub fn index_of(&self, id: &NodeId) -> Option<usize> {
        self.inner.names.iter().position(|n| n == id.as_str())
    }

    /// The index of the leader agreed at the last [`steady`](Self::steady).
    pub fn leader_index(&self) -> Option<usize> {
        let (m, _) = self.leader.as_ref()?;
        self.index_of(&m.node)
    }

    /// Fresh leadership watches of every live node but `except`.
    pub fn watches_except(&self, except: usize) -> Vec<watch::Receiver<Leadership>> {
        let except = &self.inner.names[except];
        self.inner
            .watches(GROUP)
            .into_iter()
            .filter(|(n, _)| n != except)
            .map(|(_, w)| w)
            .collect()
    }

    /// Starts (or restarts, as a new incarnation) node `i` and joins it to [`GROUP`].
    pub async fn start_node(&mut self, i: usize) -> Result<(), Error> {
        let name = self.inner.names[i].clone();
        self.inner.start(&name).await;
        Ok(())
    }

    /// Kills node `i` as a crashed process would die (see the test kit's `Cluster::kill`).
    /// Returns what finishes the TCP close, which the caller may await later.
    pub fn crash(&mut self, i: usize) -> Option<JoinHandle<()>> {
        let name = self.inner.names[i].clone();
        self.inner.kill(&name)
    }

    /// Takes node `i` out of the cluster for a kind shutdown: the caller runs
    /// `node.shutdown()` while it measures what the others see.
    pub fn take(&mut self, i: usize) -> Option<Node> {
        let name = self.inner.names[i].clone();
        self.inner.take(&name)
    }

    /// Waits until every live node agrees on one leader, every node knows every other live
    /// node (right incarnation, member of [`GROUP`]) and no node is still abstaining from
    /// votes after its start. Then a failover measured from here starts from a healthy cluster.
    pub async fn steady(&mut self) -> Result<(MemberId, Term), Error> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut rxs: Vec<_> = self
            .inner
            .watches(GROUP)
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        let agreed = tokio::time::timeout(
            Duration::from_secs(30),
            wait::agreement(&mut rxs, |_, _| true),
        )
        .await
        .map_err(|_| "no agreement on a leader within 30 s")?
        .ok_or("a node stopped while waiting for agreement")?;
        // Everyone sees everyone.
        let expected: Vec<(String, Incarnation)> = self
            .inner
            .nodes
            .iter()
            .map(|(n, node)| (n.clone(), node.incarnation()))
            .collect();
        for (name, node) in &self.inner.nodes {
            loop {
                let st = node.status().await?;
                let ok = expected.iter().all(|(name, inc)| {
                    st.members.iter().any(|s| {
                        s.name.as_str() == name
                            && s.incarnation == *inc
                            && s.alive
                            && s.groups.iter().any(|g| g == GROUP)
                    })
                });
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("{name} does not see every node after 30 s").into());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        // Nobody abstains any more (a restarted node refuses votes for one failure timeout).
        let abstain = self.failure_timeout() + Duration::from_millis(20);
        if let Some(latest) = self.inner.started.values().max() {
            let until = *latest + abstain;
            let now = Instant::now();
            if until > now {
                tokio::time::sleep(until - now).await;
            }
        }
        // The leader may have changed while we waited (it should not have): check again.
        let again = wait::agreement(&mut rxs, |_, _| true)
            .await
            .ok_or("a node stopped while waiting for agreement")?;
        if again != agreed {
            return Err(format!("leadership moved while idle: {agreed:?} → {again:?}").into());
        }
        self.leader = Some(again.clone());
        Ok(again)
    }

    /// Shuts every node down.
    pub async fn stop(mut self) {
        for name in self.inner.live_names() {
            if let Some(node) = self.inner.take(&name) {
                node.shutdown().await;
            }
        }
    }
}

/// The timings of a default config.
pub fn default_timing() -> TimingConfig {
    TimingConfig::default()
}

/// What one failover measured.
#[derive(Clone, Copy, Debug)]
pub struct Failover {
    /// From the fault to the first survivor acting as leader (`is_me`).
    pub first_acting: Duration,
    /// From the fault to every survivor reporting the same new leader.
    pub all_agree: Duration,
    /// When the clock started (just before the fault): with `all_agree`, the window a
    /// profile of the failover alone is cut to (`examples/failover_breakdown.rs`).
    pub started: Instant,
}

/// The leader agreed at the last [`Cluster::steady`]: member, term and index.
fn current_leader(c: &Cluster) -> Result<(MemberId, Term, usize), Error> {
    let (old, term) = c.leader.clone().ok_or("no leader")?;
    let li = c
        .index_of(&old.node)
        .ok_or("leader is not in the cluster")?;
    Ok((old, term, li))
}

/// Kills the current leader (see [`Cluster::crash`]), measures until every survivor agrees on
/// a new one, then restarts the killed node and waits until the cluster is steady again.
pub async fn crash_leader(c: &mut Cluster) -> Result<Failover, Error> {
    let (old, term, li) = current_leader(c)?;
    let (mut rxs, mut acting) = (c.watches_except(li), c.watches_except(li));
    let t0 = Instant::now();
    let closing = c.crash(li);
    let measured = measure(&mut rxs, &mut acting, &old, term, t0).await?;
    if let Some(h) = closing {
        let _ = h.await;
    }
    c.start_node(li).await?;
    c.steady().await?;
    Ok(measured)
}

/// Shuts the current leader down kindly (`Node::shutdown`), measures until its successor acts
/// and until every survivor agrees, then restarts it and waits until the cluster is steady
/// again.
pub async fn handoff_leader(c: &mut Cluster) -> Result<Failover, Error> {
    let (old, term, li) = current_leader(c)?;
    let (mut rxs, mut acting) = (c.watches_except(li), c.watches_except(li));
    let leaving = c.take(li).ok_or("the leader is not running")?;
    // The shutdown runs in this task, next to the measurement (no extra task hop before the
    // node hears of it): `join!` polls the measurement first, then the shutdown, whose first
    // poll hands the node its shutdown command.
    let t0 = Instant::now();
    let (measured, ()) = tokio::join!(
        measure(&mut rxs, &mut acting, &old, term, t0),
        leaving.shutdown()
    );
    let measured = measured?;
    drop(leaving);
    c.start_node(li).await?;
    c.steady().await?;
    Ok(measured)
}

async fn measure(
    rxs: &mut [watch::Receiver<Leadership>],
    acting: &mut [watch::Receiver<Leadership>],
    old: &MemberId,
    term: Term,
    t0: Instant,
) -> Result<Failover, Error> {
    let limit = Duration::from_secs(10);
    let first = tokio::time::timeout(limit, wait::first_acting(acting))
        .await
        .map_err(|_| "no survivor acted as leader within 10 s")?
        .ok_or("a survivor stopped")?;
    let first_acting = t0.elapsed();
    let _ = first;
    tokio::time::timeout(
        limit,
        wait::agreement(rxs, |m, t| m.node != old.node && t > term),
    )
    .await
    .map_err(|_| "survivors did not agree on a new leader within 10 s")?
    .ok_or("a survivor stopped")?;
    let all_agree = t0.elapsed();
    Ok(Failover {
        first_acting,
        all_agree,
        started: t0,
    })
}

/// The `main` of a failover bench target `name`: [`bench_failover`] with criterion's command
/// line, then criterion's summary and the percentiles of every iteration.
pub fn failover_main(name: &str, sizes: &[usize], net: impl Fn() -> Net) {
    let samples = crate::stats::Samples::new();
    let mut c = criterion::Criterion::default().configure_from_args();
    bench_failover(&mut c, name, sizes, net, &samples);
    c.final_summary();
    samples.print(name);
}

/// The failover benchmarks of one transport: for each size `n`, a cluster of `n` nodes, then
/// `crash/n` (kill the leader; until every survivor agrees on a new one) and `graceful/n`
/// (shut the leader down kindly; until its successor acts). Every iteration is also recorded
/// in `samples` (both measures of each).
///
/// Panics when the cluster cannot start or a failover does not complete: inside criterion's
/// routine there is no error to return, and a failover that never happens must fail the
/// bench (and `cargo test --benches`) loudly rather than be timed.
pub fn bench_failover(
    c: &mut criterion::Criterion,
    name: &str,
    sizes: &[usize],
    net: impl Fn() -> Net,
    samples: &crate::stats::Samples,
) {
    // Two workers, as many as the machine the targets were set on has cores;
    // `BATON_BENCH_WORKERS=1` compares with a single-threaded scheduler.
    let workers = std::env::var("BATON_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group(name);
    crate::configure_failover_group(&mut group);
    for &n in sizes {
        let cluster = rt
            .block_on(Cluster::start(net(), n, default_timing()))
            .unwrap_or_else(|e| panic!("a cluster of {n} does not start: {e}"));
        let cluster = tokio::sync::Mutex::new(cluster);
        let cl = &cluster;
        for kind in ["crash", "graceful"] {
            group.bench_function(criterion::BenchmarkId::new(kind, n), |b| {
                b.to_async(&rt).iter_custom(|iters| async move {
                    let mut c = cl.lock().await;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += if kind == "crash" {
                            let f = crash_leader(&mut c).await.expect("crash failover");
                            samples.record(&format!("crash/{n} all agree"), f.all_agree);
                            samples.record(&format!("crash/{n} first acts"), f.first_acting);
                            f.all_agree
                        } else {
                            let f = handoff_leader(&mut c).await.expect("graceful handoff");
                            samples.record(&format!("graceful/{n} successor acts"), f.first_acting);
                            samples.record(&format!("graceful/{n} all agree"), f.all_agree);
                            f.first_acting
                        };
                    }
                    total
                })
            });
        }
        rt.block_on(cluster.into_inner().stop());
    }
    group.finish();
}
