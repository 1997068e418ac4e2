//! The scale benchmark: N nodes × G groups, every node joining every group.
//!
//! ```text
//! cargo run --release -p baton-benches --bin scale -- --nodes 9 --groups 100 --runs 5
//! cargo run --release -p baton-benches --bin scale -- --nodes 9 --groups 1000 --policy balanced,oldest-running
//! cargo run --release -p baton-benches --bin scale -- --in-process tcp --nodes 65 --groups 10
//! cargo run --release -p baton-benches --bin scale -- --backend etcd --nodes 9 --groups 1000
//! ```
//!
//! **Processes** (the default): `--nodes` real `baton node` processes on free loopback ports
//! (every node a voter, default timings), each config listing `--groups` groups
//! `g0 … g{G-1}` with `--policy` (a chain, comma-separated; default `oldest-running`).
//! Each of `--runs` runs starts a fresh cluster and measures, in order:
//!
//! 1. **Election**: from the moment the last process was started until every group is led —
//!    every node answers `status` (one observer [`TcpClient`](baton_transport_tcp::TcpClient)
//!    connection per node, the library `baton status` uses, polled every `--poll-ms`) and all
//!    name the same leader and term, and exactly the leader says it acts. At most
//!    `--limit-secs` (120): then the run reports how many groups had no leader and how many
//!    nodes did not answer, and the remaining runs are skipped.
//! 2. **Idle**: the observer closes its connections, waits 1 s, then over `--idle-secs` (5)
//!    reads each node's utime + stime (`/proc/<pid>/stat`: CPU in % of one core, resolution
//!    one clock tick per node), its VmRSS at the end (`/proc/<pid>/status`), and the kernel's
//!    `bytes_sent` of every TCP socket of every node (`ss -tinpH`, see
//!    [`baton_benches::sockets`]: TCP payload, both directions of each node pair).
//! 3. **Leaders per node**: the observer checks again that every group is led and counts the
//!    groups each node leads (max, mean, max/mean).
//! 4. **Failover**: SIGKILL of the node leading the most groups; per group of it, the time from
//!    just before `kill(2)` until every survivor agrees on a new leader (another node, a higher
//!    term) that acts: p50 and max (the time until the last), within `--failover-secs` (60).
//!
//! **On etcd** (`--backend etcd`, processes only): the same runs with `[cluster] backend =
//! "etcd"` in every config (`[etcd] lease_ttl_s = --etcd-ttl`, default 2), all on one fresh
//! local etcd per run (the backend's `LocalEtcd`: Debian's `etcd-server` on loopback, its own
//! data directory). The failover's kill -9 is then proven by the survivors' transport, which
//! revokes the dead node's etcd lease (docs/ETCD.md).
//!
//! **In process** (`--in-process memory|tcp`): the same runs with `baton_core::Node`s in this
//! process (the test kit's cluster, on the in-memory transport or loopback TCP, a 2-worker
//! tokio runtime), watched through their leadership watches every 1 ms. CPU and RSS are the
//! whole process's (not per node); no wire figures.
//!
//! Text goes to stdout, or with `--json` to stderr while stdout gets one JSON document (the
//! [`Report`]). The exit status is 1 when a run failed. Children are killed (SIGKILL) and
//! reaped on every exit path, Ctrl-C included; the working directory (configs, logs) is
//! removed unless `--keep`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::exit,
    reason = "a benchmark program: it prints its report and ends with its status"
)]

use anyhow::{Context, Result, anyhow, bail};
use baton_benches::procs::{self, Procs, Spec, leading_times, node_file};
use baton_benches::scale::{
    self, Idle, Medians, NodeIdle, Observe, Report, Run, Setup, Until, View, Wire, failover_of,
};
use baton_benches::sockets;
use baton_core::config::{GroupConfig, PolicySpec, QuorumMode};
use baton_testkit::cluster::{Cluster, Net, Policies};
use baton_transport_memory::MemoryNetwork;
use baton_transport_tcp::TcpConfig;
use nix::sys::signal::{Signal, kill};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Processes,
    Memory,
    Tcp,
}

struct Args {
    nodes: usize,
    groups: usize,
    runs: usize,
    policy: Vec<String>,
    baton: Option<PathBuf>,
    json: bool,
    mode: Mode,
    idle_secs: f64,
    limit: Duration,
    failover_limit: Duration,
    poll: Option<Duration>,
    keep: bool,
    /// `--backend etcd`: elections in a local etcd, with this `lease_ttl_s`.
    etcd: Option<u64>,
}

const USAGE: &str = "usage: scale [--nodes N (3)] [--groups G (10)] [--runs R (1)] \
[--policy P[,P…] (oldest-running)] [--in-process memory|tcp] [--baton PATH] [--json]\n             \
[--idle-secs S (5)] [--limit-secs S (120)] [--failover-secs S (60)] [--poll-ms MS (10; 1 in process)] [--keep]\n             \
[--backend baton|etcd (baton)] [--etcd-ttl S (2)]";

fn parse_args() -> Result<Args> {
    let mut a = Args {
        nodes: 3,
        groups: 10,
        runs: 1,
        policy: vec!["oldest-running".into()],
        baton: None,
        json: false,
        mode: Mode::Processes,
        idle_secs: 5.0,
        limit: Duration::from_secs(120),
        failover_limit: Duration::from_secs(60),
        poll: None,
        keep: false,
        etcd: None,
    };
    let mut etcd_ttl = 2;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| anyhow!("{name} needs a value"));
        let secs = |v: String, name: &str| -> Result<Duration> {
            let s: f64 = v.parse().with_context(|| format!("{name}: {v:?}"))?;
            Duration::try_from_secs_f64(s).with_context(|| format!("{name}: {v:?}"))
        };
        match arg.as_str() {
            "--nodes" => a.nodes = value("--nodes")?.parse().context("--nodes")?,
            "--groups" => a.groups = value("--groups")?.parse().context("--groups")?,
            "--runs" => a.runs = value("--runs")?.parse().context("--runs")?,
            "--policy" => {
                a.policy = value("--policy")?
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .collect()
            }
            "--baton" => a.baton = Some(value("--baton")?.into()),
            "--json" => a.json = true,
            "--in-process" => {
                a.mode = match value("--in-process")?.as_str() {
                    "memory" => Mode::Memory,
                    "tcp" => Mode::Tcp,
                    other => bail!("--in-process {other:?}: expected memory or tcp"),
                }
            }
            "--idle-secs" => {
                a.idle_secs = secs(value("--idle-secs")?, "--idle-secs")?.as_secs_f64()
            }
            "--limit-secs" => a.limit = secs(value("--limit-secs")?, "--limit-secs")?,
            "--failover-secs" => {
                a.failover_limit = secs(value("--failover-secs")?, "--failover-secs")?
            }
            "--poll-ms" => {
                let v = value("--poll-ms")?;
                a.poll = Some(Duration::from_millis(
                    v.parse().with_context(|| format!("--poll-ms {v:?}"))?,
                ))
            }
            "--keep" => a.keep = true,
            "--backend" => {
                a.etcd = match value("--backend")?.as_str() {
                    "baton" => None,
                    "etcd" => Some(0),
                    other => bail!("--backend {other:?}: expected baton or etcd"),
                }
            }
            "--etcd-ttl" => {
                let v = value("--etcd-ttl")?;
                etcd_ttl = v.parse().with_context(|| format!("--etcd-ttl {v:?}"))?;
            }
            other => baton_benches::common_arg(other, USAGE)?,
        }
    }
    if a.etcd.is_some() {
        a.etcd = Some(etcd_ttl);
        if a.mode != Mode::Processes {
            bail!("--backend etcd runs node processes only (not --in-process)");
        }
    }
    if a.nodes < 2 {
        bail!("--nodes must be at least 2 (a failover needs a survivor)");
    }
    if a.groups < 1 || a.runs < 1 {
        bail!("--groups and --runs must be at least 1");
    }
    if a.policy.iter().any(String::is_empty) {
        bail!("--policy: an empty policy name");
    }
    Ok(a)
}

impl Args {
    /// How often the observer polls: `--poll-ms`, else 10 ms for processes (a status
    /// snapshot each) and 1 ms in process (reading watches).
    fn poll(&self) -> Duration {
        self.poll.unwrap_or(match self.mode {
            Mode::Processes => Duration::from_millis(10),
            Mode::Memory | Mode::Tcp => Duration::from_millis(1),
        })
    }
}

/// The group names: `g0 … g{G-1}`, zero-padded so that they sort in order.
fn group_names(g: usize) -> Vec<String> {
    let width = (g - 1).to_string().len();
    (0..g).map(|i| format!("g{i:0width$}")).collect()
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let baton = match (args.mode, &args.baton) {
        (Mode::Processes, Some(p)) => Some(p.clone()),
        (Mode::Processes, None) => Some(procs::build_baton()?),
        _ => None,
    };
    // In process: two workers, as many as the machine the targets were set on has cores.
    // For processes the observer needs one thread (it spawns children from it, too).
    let rt = match args.mode {
        Mode::Processes => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Mode::Memory | Mode::Tcp => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
    };
    let report = rt.block_on(async {
        let work = all_runs(&args, baton.as_deref());
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
        // Whatever a run started is dropped with its future: every child is killed and reaped.
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    std::io::Write::flush(&mut std::io::stdout())?;
    let failed = report.runs.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        bail!("{failed} of {} runs failed", report.runs.len());
    }
    Ok(())
}

/// Prints a line of the text report (to stdout, or to stderr under `--json`).
fn say(args: &Args, text: &str) {
    if args.json {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

async fn all_runs(args: &Args, baton: Option<&std::path::Path>) -> Result<Report> {
    let groups = group_names(args.groups);
    let mode = match args.mode {
        Mode::Processes if args.etcd.is_some() => "processes, backend etcd",
        Mode::Processes => "processes",
        Mode::Memory => "in-process memory",
        Mode::Tcp => "in-process tcp",
    };
    say(
        args,
        &format!(
            "scale: {} nodes × {} groups ({mode}{}), policy {}, default timings, every node a voter; load average {}\n",
            args.nodes,
            args.groups,
            baton
                .map(|b| format!(", {}", b.display()))
                .unwrap_or_default(),
            args.policy.join(" > "),
            procs::loadavg()
        ),
    );
    let mut runs = Vec::new();
    for k in 1..=args.runs {
        let mut run = Run {
            run: k,
            ..Run::default()
        };
        let r = match baton {
            Some(b) => run_processes(args, b, &groups, &mut run).await,
            None => run_in_process(args, &groups, &mut run).await,
        };
        if let Err(e) = r {
            run.error = Some(format!("{e:#}"));
        }
        say(args, &run.text(args.runs, args.groups));
        let failed = run.error.is_some();
        runs.push(run);
        if failed && k < args.runs {
            say(args, "  (the remaining runs are skipped)\n");
            break;
        }
    }
    let report = Report {
        setup: Setup {
            mode: mode.to_string(),
            nodes: args.nodes,
            groups: args.groups,
            policy: args.policy.clone(),
        },
        medians: Medians::of(&runs),
        runs,
    };
    say(args, &report.medians_text());
    Ok(report)
}

/// `"oldest-running"` or `["balanced", "oldest-running"]`, as TOML.
fn policy_toml(policy: &[String]) -> String {
    match policy {
        [one] => format!("{one:?}"),
        chain => format!(
            "[{}]",
            chain
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// "no leader in 37 of 100 groups after 120 s (2 nodes did not answer status)".
fn not_led(what: &str, w: &scale::Waited, of: usize, after: Duration) -> String {
    let mut s = format!("{what} in {} of {of} groups after {after:?}", w.pending());
    if w.silent > 0 {
        s.push_str(&format!(
            " ({} nodes did not answer at the last poll)",
            w.silent
        ));
    }
    s
}

/// The names of nodes `0..n` (the same in both modes).
fn node_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

/// Election, leaders, failover: what both modes measure the same way through `obs`. `idle`
/// runs between the election and the failover; `kill` kills a node by index.
async fn measure<O: Observe>(
    args: &Args,
    groups: &[String],
    obs: &mut O,
    t0: Instant,
    run: &mut Run,
    idle: impl AsyncFnOnce(&mut O) -> Result<Idle>,
    kill: impl FnOnce(&mut O, usize) -> Result<()>,
) -> Result<()> {
    let names = node_names(args.nodes);
    let all: Vec<usize> = (0..args.nodes).collect();
    let poll = args.poll();
    let any = |_: usize, _: usize, _: u64| true;
    // Every group led at one poll, by any leader.
    let all_led = async |obs: &mut O, t0: Instant, limit: Duration| {
        scale::wait(
            obs,
            &names,
            &all,
            groups,
            any,
            Until::AllAtOnce,
            t0,
            limit,
            poll,
        )
        .await
    };
    let w = all_led(obs, t0, args.limit).await?;
    let Some(led) = w.done else {
        bail!("{}", not_led("no leader", &w, groups.len(), args.limit));
    };
    run.led_s = Some(led.as_secs_f64());
    run.idle = Some(idle(obs).await?);
    // Still all led after the idle window? Then these are the leaders the failover starts from.
    let steady = Duration::from_secs(10);
    let w = all_led(obs, Instant::now(), steady).await?;
    if w.done.is_none() {
        bail!(
            "{} (after the idle window)",
            not_led("no leader", &w, groups.len(), steady)
        );
    }
    run.leaders = Some(scale::leaders(args.nodes, &w.leaders));
    let (victim, led_groups) =
        scale::busiest(&w.leaders, args.nodes).ok_or_else(|| anyhow!("no node leads a group"))?;
    let old_terms: Vec<u64> = led_groups
        .iter()
        .map(|&g| w.leaders[g].map(|(_, t)| t).unwrap_or(0))
        .collect();
    let their_names: Vec<String> = led_groups.iter().map(|&g| groups[g].clone()).collect();
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    // Connections to the survivors are open (they just answered) before the clock starts.
    let wall_kill = std::time::SystemTime::now();
    let t_kill = Instant::now();
    kill(obs, victim)?;
    // First by what the new leaders say themselves, asking the nodes nothing; then polled.
    let said = obs
        .leaders_said(&survivors, &their_names, wall_kill, args.failover_limit)
        .await?;
    let reled = |g: usize, leader: usize, term: u64| leader != victim && term > old_terms[g];
    let f = scale::wait(
        obs,
        &names,
        &survivors,
        &their_names,
        reled,
        Until::EachOnce,
        t_kill,
        args.failover_limit,
        poll,
    )
    .await?;
    let mut failover = failover_of(&names[victim], &f.first);
    failover.by_logs = said.as_deref().map(scale::reled_of);
    run.failover = Some(failover);
    if f.done.is_none() {
        bail!(
            "{}",
            not_led(
                &format!("after kill -9 of {}: no new leader", names[victim]),
                &f,
                their_names.len(),
                args.failover_limit
            )
        );
    }
    Ok(())
}

// ------------------------------------------------------------------------------ processes

/// Status snapshots of the node processes.
struct Statuses<'a> {
    c: &'a mut Procs,
}

impl Observe for Statuses<'_> {
    async fn leaders_said(
        &mut self,
        which: &[usize],
        groups: &[String],
        since: std::time::SystemTime,
        limit: Duration,
    ) -> Result<Option<Vec<Option<Duration>>>> {
        let logs: Vec<std::path::PathBuf> = which
            .iter()
            .filter_map(|i| self.c.nodes.get(*i))
            .map(|p| node_file(&self.c.dir, &p.name, "log"))
            .collect();
        let deadline = Instant::now() + limit;
        loop {
            let times = leading_times(&logs, groups, since);
            if times.iter().all(Option::is_some) || Instant::now() > deadline {
                let after = |t: std::time::SystemTime| t.duration_since(since).unwrap_or_default();
                return Ok(Some(times.into_iter().map(|t| t.map(after)).collect()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn views(&mut self, which: &[usize]) -> Result<Vec<Option<View>>> {
        self.c.check_alive()?;
        Ok(self
            .c
            .status_each(which, Duration::from_secs(3))
            .await
            .into_iter()
            .map(|r| r.ok().map(|s| scale::view_of(s.groups)))
            .collect())
    }
}

async fn run_processes(
    args: &Args,
    baton: &std::path::Path,
    groups: &[String],
    run: &mut Run,
) -> Result<()> {
    let mut spec = Spec::new(
        "scale",
        args.nodes,
        groups.to_vec(),
        policy_toml(&args.policy),
    );
    spec.keep = args.keep;
    // `--backend etcd`: one fresh local etcd per run, killed (its data removed) when the run
    // ends — after the nodes, which are dropped first.
    let _etcd = match args.etcd {
        Some(ttl) => {
            let ports = baton_transport_tcp::free_ports(2).context("free ports for etcd")?;
            let dir = std::env::temp_dir().join(format!(
                "baton-scale-etcd-{}-{}",
                std::process::id(),
                run.run
            ));
            let etcd = baton_backend_etcd::local::LocalEtcd::start(dir, ports[0], ports[1])
                .context("cannot start a local etcd")?;
            spec.etcd = Some((vec![etcd.endpoint()], ttl));
            Some(etcd)
        }
        None => None,
    };
    let mut c = Procs::create(baton, &spec)?;
    // `create` returns right after it started the last node.
    let t0 = Instant::now();
    let window = Duration::from_secs_f64(args.idle_secs);
    let idle = async move |o: &mut Statuses<'_>| idle_processes(o.c, window).await;
    let kill = |o: &mut Statuses<'_>, i: usize| -> Result<()> {
        let pid = o.c.pid(i)?;
        kill(pid, Signal::SIGKILL).with_context(|| format!("cannot kill n{i}"))?;
        // Reaped at once, so that `check_alive` does not take it for a crash.
        o.c.reap(i)
    };
    let mut obs = Statuses { c: &mut c };
    measure(args, groups, &mut obs, t0, run, idle, kill).await
    // `c` is dropped here: every child is killed and reaped.
}

async fn idle_processes(c: &mut Procs, window: Duration) -> Result<Idle> {
    let tck = procs::clock_ticks()?;
    // Nothing but the cluster's own traffic during the window.
    c.drop_clients();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pids = c.pids()?;
    let ports = c.ports()?;
    let socks_before = sockets::snapshot()?;
    let before: Vec<u64> = pids
        .iter()
        .map(|&p| procs::cpu_ticks(p))
        .collect::<Result<_>>()?;
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let after: Vec<u64> = pids
        .iter()
        .map(|&p| procs::cpu_ticks(p))
        .collect::<Result<_>>()?;
    let secs = t.elapsed().as_secs_f64();
    let socks_after = sockets::snapshot()?;
    c.check_alive()?;
    let traffic = sockets::traffic(&socks_before, &socks_after, &pids, &ports);
    let mut nodes = Vec::new();
    for (i, p) in c.nodes.iter().enumerate() {
        let (rss, _) = procs::memory_kib(pids[i])?;
        nodes.push(NodeIdle {
            name: p.name.clone(),
            cpu_pct: (after[i] - before[i]) as f64 / tck / secs * 100.0,
            rss_mib: rss as f64 / 1024.0,
            sent_bytes_per_s: Some(traffic.sent[i] as f64 / secs),
        });
    }
    let n = nodes.len();
    let pairs = n * (n - 1) / 2;
    let pair_total: u64 = traffic.pairs.values().sum();
    Ok(Idle {
        secs,
        cpu_total_pct: nodes.iter().map(|n| n.cpu_pct).sum(),
        rss_total_mib: nodes.iter().map(|n| n.rss_mib).sum(),
        nodes,
        wire: Some(Wire {
            pairs,
            pair_mean_bytes_per_s: pair_total as f64 / pairs.max(1) as f64 / secs,
            pair_max_bytes_per_s: traffic.pairs.values().copied().max().unwrap_or(0) as f64 / secs,
            closed_sockets: traffic.closed,
        }),
    })
}

// ------------------------------------------------------------------------------ in process

/// Leadership watches of the nodes in this process.
struct Watches {
    c: Cluster,
    groups: Vec<String>,
}

impl Observe for Watches {
    fn views(&mut self, which: &[usize]) -> impl Future<Output = Result<Vec<Option<View>>>> {
        let views = which
            .iter()
            .map(|&i| {
                let node = self.c.nodes.get(&format!("n{i}"))?;
                Some(
                    self.groups
                        .iter()
                        .map(|g| (g.clone(), node.leadership(g).borrow().clone()))
                        .collect(),
                )
            })
            .collect();
        std::future::ready(Ok(views))
    }
}

fn policy_spec(policy: &[String]) -> PolicySpec {
    match policy {
        [one] => PolicySpec::Named(one.clone()),
        chain => PolicySpec::Chain(chain.iter().cloned().map(PolicySpec::Named).collect()),
    }
}

async fn run_in_process(args: &Args, groups: &[String], run: &mut Run) -> Result<()> {
    let net = match args.mode {
        Mode::Memory => Net::Memory(MemoryNetwork::new()),
        _ => Net::Tcp(TcpConfig::new("bench", b"bench secret".to_vec())),
    };
    let names = node_names(args.nodes);
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let configs = groups
        .iter()
        .map(|g| {
            let mut c = GroupConfig::new(g);
            c.policy = Some(policy_spec(&args.policy));
            c
        })
        .collect();
    let mut c = Cluster::new(net, &name_refs, QuorumMode::Majority, configs);
    c.policies = Policies::FromConfig;
    // An unknown policy is an error here, not a panic in the test kit's start.
    baton_strategies::policies_for(&c.config("n0"))
        .map_err(|e| anyhow!("--policy {}: {e}", args.policy.join(",")))?;
    for n in &names {
        c.start(n).await;
    }
    let t0 = Instant::now();
    let window = Duration::from_secs_f64(args.idle_secs);
    let mut obs = Watches {
        c,
        groups: groups.to_vec(),
    };
    let idle = async move |_: &mut Watches| idle_in_process(window).await;
    let kill = |o: &mut Watches, i: usize| -> Result<()> {
        // As a crashed process dies; the TCP close finishes on its own.
        drop(o.c.kill(&format!("n{i}")));
        Ok(())
    };
    let r = measure(args, groups, &mut obs, t0, run, idle, kill).await;
    // Stop every node before the next run (the runtime is shared).
    for n in obs.c.live_names() {
        if let Some(closing) = obs.c.kill(&n) {
            let _ = closing.await;
        }
    }
    r
}

async fn idle_in_process(window: Duration) -> Result<Idle> {
    let tck = procs::clock_ticks()?;
    let me = std::process::id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = procs::cpu_ticks(me)?;
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let after = procs::cpu_ticks(me)?;
    let secs = t.elapsed().as_secs_f64();
    let (rss, _) = procs::memory_kib(me)?;
    Ok(Idle {
        secs,
        cpu_total_pct: (after - before) as f64 / tck / secs * 100.0,
        nodes: Vec::new(),
        rss_total_mib: rss as f64 / 1024.0,
        wire: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_sort_in_order() {
        assert_eq!(group_names(1), ["g0"]);
        let g = group_names(1000);
        assert_eq!((g[0].as_str(), g[999].as_str()), ("g000", "g999"));
        let mut sorted = g.clone();
        sorted.sort();
        assert_eq!(sorted, g);
    }

    #[test]
    fn policy_chains_as_toml_and_as_config() {
        let one = vec!["oldest-running".to_string()];
        let chain = vec!["balanced".to_string(), "oldest-running".to_string()];
        assert_eq!(policy_toml(&one), "\"oldest-running\"");
        assert_eq!(policy_toml(&chain), "[\"balanced\", \"oldest-running\"]");
        assert_eq!(
            policy_spec(&one),
            PolicySpec::Named("oldest-running".into())
        );
        assert!(matches!(policy_spec(&chain), PolicySpec::Chain(v) if v.len() == 2));
    }
}
