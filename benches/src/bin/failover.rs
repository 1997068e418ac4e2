//! Failover of real `baton node` processes on loopback, and their idle cost.
//!
//! ```text
//! cargo run --release -p baton-benches --bin failover -- --nodes 3 --rounds 20
//! cargo run --release -p baton-benches --bin failover -- --idle           # 9 nodes, 30 s
//! cargo run --release -p baton-benches --bin failover -- --tls --kinds kill,term
//! ```
//!
//! **Failover** (the default): starts `--nodes` `baton node` processes (default 3) on free
//! loopback ports, one group, policy oldest-running, default timings, every node a voter.
//! Then, `--rounds` times for each kind (interleaved: kill, stop, term, kill, …), it signals the
//! current leader's process and measures from just before the `kill(2)` until **every
//! survivor** reports the same new leader (and, separately, until the new leader itself
//! reports that it acts as leader):
//!
//! - `kill`: SIGKILL. The kernel closes the sockets; peers' reconnects are refused (proof of
//!   death). Then the node is started again (same config, same port, a new incarnation).
//! - `stop`: SIGSTOP — the process stops silently, its sockets stay open; peers must wait for
//!   `failure_timeout`. Then SIGCONT, and the old leader rejoins as a follower.
//! - `term`: SIGTERM — `baton node` hands off and exits. Then it is started again.
//! - `transfer` (not in the default kinds): no fault; the leader is asked, over a client
//!   connection, to hand off to the next node (`baton transfer`), and every node, the old
//!   leader included, is watched. Nothing needs restoring.
//! - `health` (not in the default kinds; with it, every node is a `baton exec --health-cmd
//!   "test ! -e DIR/nI.sick" -- sleep 100000`, `--health-interval-ms` 100 and
//!   `--health-failures` 3 unless given): the leader's check is made to fail (its `nI.sick`
//!   file is created). Besides the times from that moment, the tool reads the old leader's log
//!   for the start of the K-th failing check (its `failed (K of K in a row, after X ms)` line,
//!   µs timestamps, minus X) and prints the times from there until the successor's own
//!   `leading with term` line (no polling in that figure), until every node agrees and the
//!   successor acts (as polled), and until the successor's `I lead … started` line: what issue
//!   13's bound (`interval × failures + 10 ms` from the check starting to fail) leaves 10 ms
//!   for; and, from the logs, how that splits into the check's run, stopping CMD, the old
//!   leader's handoff and the successor's election. Then the file is removed and the tool
//!   waits until no node reports the member unhealthy.
//!
//! Between rounds the tool waits until every node agrees on the leader, sees every other node
//! alive, and no restarted node is still abstaining from votes (one failure timeout).
//!
//! Survivors are watched over one [`TcpClient`] connection each — the library `baton status`
//! uses — polled back to back (one request in flight per node), so a view is at most one
//! loopback round trip old. The polling runs in this process, on the same 2 cores as the nodes.
//!
//! **Mutual TLS** (`--tls`, with either mode): the tool generates a throwaway CA (rcgen), one
//! certificate per node and one for its own observer clients in its working directory, writes
//! `[cluster.tls]` (`cert`, `key`, `ca`) into every node's config and gives its clients the
//! same CA (the `baton status --config` path: [`Tls::from_files`]). Every connection, node to
//! node and observer to node, then runs over TLS 1.3; the rest is unchanged. Without `--tls`
//! (the default) nothing about TLS is written or used.
//!
//! **Idle cost** (`--idle`): starts `--idle-nodes` nodes (default 9), waits until they are
//! steady, then reads `/proc/<pid>/stat` (utime + stime) and `/proc/<pid>/status` (VmRSS,
//! VmHWM) of every node over `--idle-secs` (default 30) and prints CPU (percent of one core)
//! and memory per node and in total.
//!
//! The `baton` binary is `target/release/baton`, built first with
//! `cargo build --release -p baton-cli` (a no-op when up to date) unless `--baton PATH` names
//! one. Children are killed (SIGKILL) and reaped on every exit path of this tool, Ctrl-C
//! included; its working directory (configs, secret, node logs) is removed unless `--keep`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::exit,
    reason = "a benchmark program: it prints its report and ends with its status"
)]

use anyhow::{Context, Result, anyhow, bail};
use baton_benches::procs::{
    Procs, STEP_TIMEOUT, Spec, build_baton, clock_ticks, cpu_ticks, loadavg, log_time, memory_kib,
    node_file,
};
use baton_benches::stats::Summary;
use baton_core::engine::StatusSnapshot;
use baton_core::message::ControlOp;
use nix::sys::signal::{Signal, kill};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Kill,
    Stop,
    Term,
    /// No fault: the leader is asked to hand off to the next node (`baton transfer`).
    Transfer,
    /// The leader's `--health-cmd` starts failing (nodes run `baton exec`).
    Health,
}

const GROUP: &str = "bench";
/// The nodes' failure timeout (the default of `[timing]`): how long a restarted node abstains.
const FAILURE_TIMEOUT: Duration = baton_core::engine::defaults::FAILURE_TIMEOUT;

impl Kind {
    fn parse(s: &str) -> Result<Kind> {
        match s {
            "kill" => Ok(Kind::Kill),
            "stop" => Ok(Kind::Stop),
            "term" => Ok(Kind::Term),
            "transfer" => Ok(Kind::Transfer),
            "health" => Ok(Kind::Health),
            other => bail!("unknown kind {other:?} (expected kill, stop, term, transfer, health)"),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill (SIGKILL)",
            Kind::Stop => "stop (SIGSTOP)",
            Kind::Term => "term (SIGTERM)",
            Kind::Transfer => "transfer",
            Kind::Health => "health",
        }
    }
    fn signal(self) -> Option<Signal> {
        match self {
            Kind::Kill => Some(Signal::SIGKILL),
            Kind::Stop => Some(Signal::SIGSTOP),
            Kind::Term => Some(Signal::SIGTERM),
            Kind::Transfer | Kind::Health => None,
        }
    }
}

struct Args {
    nodes: usize,
    rounds: usize,
    kinds: Vec<Kind>,
    baton: Option<PathBuf>,
    idle: bool,
    idle_nodes: usize,
    idle_secs: u64,
    data_dir: bool,
    tls: bool,
    keep: bool,
    /// `--idle --admin`: a second cluster with `[admin]` on every node, measured side by side.
    admin: bool,
    /// `--kinds health`: the nodes' `--health-interval-ms` and `--health-failures`.
    health_interval_ms: u64,
    health_failures: u32,
}

const USAGE: &str = "usage: failover [--nodes N (3)] [--rounds R (20)] [--kinds kill,stop,term,transfer,health] \
[--health-interval-ms MS (100)] [--health-failures K (3)] [--data-dir] [--tls] [--baton PATH] [--keep]\n       failover --idle [--idle-nodes N (9)] [--idle-secs S (30)] [--admin] [--tls] [--baton PATH] [--keep]\n\
--admin (with --idle): also a twin cluster with [admin] on every node, measured in the same window\n\
--tls: mutual TLS ([cluster.tls]) on every connection, with a throwaway CA and certificates";

fn parse_args() -> Result<Args> {
    let mut a = Args {
        nodes: 3,
        rounds: 20,
        kinds: vec![Kind::Kill, Kind::Stop, Kind::Term],
        baton: None,
        idle: false,
        idle_nodes: 9,
        idle_secs: 30,
        data_dir: false,
        tls: false,
        keep: false,
        admin: false,
        health_interval_ms: 100,
        health_failures: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match arg.as_str() {
            "--nodes" => a.nodes = value("--nodes")?.parse().context("--nodes")?,
            "--rounds" => a.rounds = value("--rounds")?.parse().context("--rounds")?,
            "--kinds" => {
                a.kinds = value("--kinds")?
                    .split(',')
                    .map(Kind::parse)
                    .collect::<Result<_>>()?
            }
            "--baton" => a.baton = Some(value("--baton")?.into()),
            "--idle" => a.idle = true,
            "--idle-nodes" => {
                a.idle_nodes = value("--idle-nodes")?.parse().context("--idle-nodes")?
            }
            "--idle-secs" => a.idle_secs = value("--idle-secs")?.parse().context("--idle-secs")?,
            "--data-dir" => a.data_dir = true,
            "--tls" => a.tls = true,
            "--keep" => a.keep = true,
            "--admin" => a.admin = true,
            "--health-interval-ms" => {
                a.health_interval_ms = value("--health-interval-ms")?
                    .parse()
                    .context("--health-interval-ms")?
            }
            "--health-failures" => {
                a.health_failures = value("--health-failures")?
                    .parse()
                    .context("--health-failures")?
            }
            other => baton_benches::common_arg(other, USAGE)?,
        }
    }
    if a.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    if a.admin && !a.idle {
        bail!("--admin compares idle costs: use it with --idle");
    }
    if a.idle_nodes < 1 {
        bail!("--idle-nodes must be at least 1");
    }
    Ok(a)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let baton = match &args.baton {
        Some(p) => p.clone(),
        None => build_baton()?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let n = if args.idle {
            args.idle_nodes
        } else {
            args.nodes
        };
        let mut spec = Spec::new(
            "failover",
            n,
            vec![GROUP.to_string()],
            "\"oldest-running\"".to_string(),
        );
        spec.data_dir = args.data_dir;
        spec.tls = args.tls;
        if !args.idle && args.kinds.contains(&Kind::Health) {
            // Every node a `baton exec` whose check fails while its `nI.sick` exists; CMD a
            // `sleep`, which exits at once on SIGTERM (the drain costs nothing of its own).
            spec.exec = Some((
                GROUP.to_string(),
                [
                    "--health-cmd",
                    "test ! -e {dir}/{name}.sick",
                    "--health-interval-ms",
                    &args.health_interval_ms.to_string(),
                    "--health-failures",
                    &args.health_failures.to_string(),
                    "--",
                    "sleep",
                    "100000",
                ]
                .map(String::from)
                .to_vec(),
            ));
        }
        spec.keep = args.keep;
        let mut cluster = Procs::create(&baton, &spec)?;
        let mut twin = if args.admin {
            spec.admin = true;
            Some(Procs::create(&baton, &spec)?)
        } else {
            None
        };
        let work = async {
            if args.idle {
                let mut clusters = vec![("without [admin]", &mut cluster)];
                if let Some(t) = twin.as_mut() {
                    clusters.push(("with [admin]", t));
                }
                idle(&mut clusters, Duration::from_secs(args.idle_secs)).await
            } else {
                failover(&mut cluster, &args).await
            }
        };
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
        // `cluster` is dropped here: every child is killed and reaped.
    })
}

// ------------------------------------------------------------------------------ steady

/// Waits until every node agrees on one leader, sees every other node alive with its
/// current incarnation, and no node started less than a failure timeout ago. Returns the
/// leader's index and term.
async fn steady(c: &mut Procs) -> Result<(usize, u64)> {
    let all: Vec<usize> = (0..c.nodes.len()).collect();
    let deadline = Instant::now() + STEP_TIMEOUT;
    let agreed = loop {
        match c.statuses(&all).await {
            Ok(st) => {
                if let Some(a) = steady_view(&st) {
                    break a;
                }
            }
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => c.check_alive()?,
        }
        if Instant::now() > deadline {
            bail!("the cluster is not steady after {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    if let Some(latest) = c
        .nodes
        .iter()
        .flat_map(|p| &p.process)
        .map(|r| r.started)
        .max()
    {
        let until = latest + FAILURE_TIMEOUT + Duration::from_millis(50);
        if until > Instant::now() {
            tokio::time::sleep_until(until.into()).await;
        }
    }
    let (leader, term) = agreed;
    let i = c
        .nodes
        .iter()
        .position(|p| p.name == leader)
        .ok_or_else(|| anyhow!("unknown leader {leader}"))?;
    Ok((i, term))
}

/// What one node says about [`GROUP`]: (leader node, term, this node acts as leader).
fn group_view(s: &StatusSnapshot) -> (Option<String>, u64, bool) {
    match s.groups.iter().find(|g| g.group == GROUP) {
        Some(g) => (
            g.leader.as_ref().map(|m| m.node.to_string()),
            g.term,
            g.is_me,
        ),
        None => (None, 0, false),
    }
}

/// `Some((leader, term))` when every status names the same leader and term, exactly that node
/// acts, and every node sees every other alive with the incarnation it reports for itself.
fn steady_view(st: &[StatusSnapshot]) -> Option<(String, u64)> {
    let (leader, term, _) = group_view(st.first()?);
    let leader = leader?;
    let own: BTreeMap<String, baton_core::Incarnation> = st
        .iter()
        .filter_map(|s| {
            let me = s.members.iter().find(|m| m.name == s.node)?;
            Some((s.node.to_string(), me.incarnation))
        })
        .collect();
    for s in st {
        let (l, t, is_me) = group_view(s);
        if l.as_deref() != Some(leader.as_str())
            || t != term
            || is_me != (s.node.as_str() == leader)
        {
            return None;
        }
        for (name, inc) in &own {
            if !s
                .members
                .iter()
                .any(|m| m.name.as_str() == name && m.incarnation == *inc && m.alive)
            {
                return None;
            }
        }
    }
    Some((leader, term))
}

// ------------------------------------------------------------------------------ failover

struct Measured {
    all_agree: Duration,
    leader_acts: Duration,
    /// `--kinds health`: the same, from the start of the K-th failing check (node logs).
    health: Option<HealthTimes>,
}

/// A health handoff timed from the start of the check that made the leader unhealthy.
struct HealthTimes {
    all_agree: Duration,
    leader_acts: Duration,
    /// Until the successor's CMD was started (its `I lead … started` line).
    cmd_started: Option<Duration>,
    /// Until the successor's `leading with term` line: when it leads, by its own clock, with
    /// no polling in the figure.
    successor_leads: Option<Duration>,
    /// The old leader's steps, from its log: the K-th check's run time, stopping CMD (its
    /// `stopping` line to the `killed by` / `exited` line), and from there to its `handing
    /// off` line; then that line to the successor's `leading with term`.
    check: Duration,
    stop_cmd: Option<Duration>,
    after_stop: Option<Duration>,
    handoff: Option<Duration>,
}

async fn failover(c: &mut Procs, args: &Args) -> Result<()> {
    let n = c.nodes.len();
    let what = if args.kinds.contains(&Kind::Health) {
        "`baton exec --health-cmd …`"
    } else {
        "`baton node`"
    };
    println!(
        "failover: {n} {what} processes on loopback ({}), group {GROUP:?}, oldest-running, \
         heartbeat 100 ms, failure timeout 500 ms{}{}",
        c.baton.display(),
        if args.data_dir {
            ", data_dir (fsync'd votes)"
        } else {
            ""
        },
        if args.tls {
            ", mutual TLS ([cluster.tls])"
        } else {
            ""
        }
    );
    println!("  load average before: {}", loadavg());
    let t_start = Instant::now();
    let (mut leader, mut term) = steady(c).await?;
    println!(
        "  steady after {:?}: n{leader} leads (term {term})",
        t_start.elapsed()
    );
    let mut results: Vec<(Kind, Measured)> = Vec::new();
    for round in 0..args.rounds {
        for &kind in &args.kinds {
            let m = fault(c, kind, leader, term).await.with_context(|| {
                format!("round {round}, {} of {}", kind.name(), c.nodes[leader].name)
            })?;
            results.push((kind, m));
            (leader, term) = steady(c).await?;
        }
    }
    println!(
        "  {} rounds in {:.1} s; load average after: {}",
        args.rounds,
        t_start.elapsed().as_secs_f64(),
        loadavg()
    );
    println!("\nfrom the signal until every survivor reports the same new leader:");
    // A survivor that learns of the death by proof (an orderly close, then a refused redial)
    // agrees in milliseconds; one that has to wait out the failure timeout (500 ms) cannot
    // agree before it. Half the timeout tells the two apart.
    let fast = Duration::from_millis(250);
    // One measure of every round of one kind.
    let of_kind = |kind: Kind, measure: fn(&Measured) -> Duration| -> Vec<Duration> {
        results
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, m)| measure(m))
            .collect()
    };
    for &kind in &args.kinds {
        let all = of_kind(kind, |m| m.all_agree);
        if let Some(s) = Summary::of(&all) {
            println!("  {:<16} {s}", kind.name());
            if kind == Kind::Health {
                continue; // the fast path is about proofs of death
            }
            let quick = all.iter().filter(|d| **d < fast).count();
            println!(
                "  {:<16} fast path (agreed < {fast:?}, i.e. by proof of death, not timeout): {quick} of {} rounds ({:.1} %)",
                kind.name(),
                all.len(),
                100.0 * quick as f64 / all.len() as f64
            );
        }
    }
    println!("from the signal until the new leader reports that it acts as leader:");
    for &kind in &args.kinds {
        let acts = of_kind(kind, |m| m.leader_acts);
        if let Some(s) = Summary::of(&acts) {
            println!("  {:<16} {s}", kind.name());
        }
    }
    let health: Vec<&HealthTimes> = results
        .iter()
        .filter_map(|(_, m)| m.health.as_ref())
        .collect();
    if !health.is_empty() {
        let (i, k) = (args.health_interval_ms, args.health_failures);
        println!(
            "health (interval {i} ms × failures {k}; \"signal\" above = the check made to fail, up to \
             one interval before its first failing check): from the start of the {k}th failing \
             check (the failing check's own run time included; node logs, µs) until"
        );
        let pick = |f: fn(&HealthTimes) -> Option<Duration>| -> Vec<Duration> {
            health.iter().filter_map(|h| f(h)).collect()
        };
        for (what, v) in [
            ("successor leads", pick(|h| h.successor_leads)),
            ("all agree", pick(|h| Some(h.all_agree))),
            ("successor acts", pick(|h| Some(h.leader_acts))),
            ("its CMD started", pick(|h| h.cmd_started)),
        ] {
            if let Some(s) = Summary::of(&v) {
                println!("  {what:<16} {s}");
            }
        }
        println!(
            "  (\"successor leads\": its own `leading with term` line, no polling in it; \"all \
             agree\" and \"acts\": seen by this tool's status polls)"
        );
        println!("  of which, from the nodes' logs:");
        for (what, v) in [
            ("the check ran", pick(|h| Some(h.check))),
            ("stopping CMD", pick(|h| h.stop_cmd)),
            ("then handing off", pick(|h| h.after_stop)),
            ("handoff → leads", pick(|h| h.handoff)),
        ] {
            if let Some(s) = Summary::of(&v) {
                println!("  {what:<16} {s}");
            }
        }
        println!(
            "  bound (issue 13): within interval × failures + 10 ms of the check starting to \
             fail, i.e. ≤ 10 ms from the {k}th failing check's start"
        );
    }
    Ok(())
}

/// Signals the leader, measures, and restores the cluster (restart or SIGCONT).
async fn fault(c: &mut Procs, kind: Kind, leader: usize, term: u64) -> Result<Measured> {
    let survivors: Vec<usize> = (0..c.nodes.len())
        .filter(|&i| i != leader || matches!(kind, Kind::Transfer | Kind::Health))
        .collect();
    // Connections are open before the clock starts.
    c.statuses(&survivors).await?;
    let pid = c.pid(leader)?;
    let old = c.nodes[leader].name.clone();
    let t0 = Instant::now();
    let wall0 = std::time::SystemTime::now();
    let sick = c.dir.join(format!("{old}.sick"));
    match kind.signal() {
        Some(signal) => kill(pid, signal).with_context(|| format!("cannot signal {old}"))?,
        None if kind == Kind::Health => {
            std::fs::write(&sick, "").with_context(|| format!("cannot write {}", sick.display()))?
        }
        None => {
            let to = c.nodes[(leader + 1) % c.nodes.len()].name.clone();
            let op = ControlOp::Transfer {
                to: baton_core::NodeId::new(to),
            };
            let client = c.client(leader).await?;
            client
                .control(GROUP, op)
                .await
                .with_context(|| format!("transfer request to {old}"))?
                .map_err(|e| anyhow!("{old} refused the transfer: {e}"))?;
        }
    }
    let mut leader_acts = None;
    let new_leader: String;
    let all_agree = loop {
        let st = c.statuses(&survivors).await?;
        let now = t0.elapsed();
        let views: Vec<_> = st.iter().map(group_view).collect();
        if leader_acts.is_none() && views.iter().any(|(_, t, is_me)| *is_me && *t > term) {
            leader_acts = Some(now);
        }
        let (l, t, _) = &views[0];
        if let Some(l) = l
            && *l != old
            && *t > term
            && views
                .iter()
                .all(|(l2, t2, _)| l2.as_ref() == Some(l) && t2 == t)
        {
            new_leader = l.clone();
            break now;
        }
        if now > STEP_TIMEOUT {
            bail!("no agreement on a new leader after {STEP_TIMEOUT:?}: {views:?}");
        }
    };
    // The new leader may act a moment after the others learned of it (it publishes after its
    // first heartbeats): keep asking it alone.
    let leader_acts = match leader_acts {
        Some(d) => d,
        None => loop {
            let st = c.statuses(&survivors).await?;
            if st
                .iter()
                .map(group_view)
                .any(|(_, t, is_me)| is_me && t > term)
            {
                break t0.elapsed();
            }
            if t0.elapsed() > STEP_TIMEOUT {
                bail!("the new leader never acted");
            }
        },
    };
    match kind {
        Kind::Kill | Kind::Term => {
            c.reap(leader)?;
            c.spawn(leader)?;
        }
        Kind::Transfer => {}
        Kind::Health => {
            std::fs::remove_file(&sick)?;
            healthy_again(c).await?;
        }
        Kind::Stop => {
            kill(pid, Signal::SIGCONT).with_context(|| format!("cannot SIGCONT {old}"))?;
            // Its client connection may have timed out meanwhile: reconnect.
            c.nodes[leader].client = None;
        }
    }
    let health = match kind {
        Kind::Health => {
            let since = |d: Duration| wall0 + d;
            let log = |name: &str| node_file(&c.dir, name, "log");
            let old_log = log(&c.nodes[leader].name);
            let (check, ran) = kth_failure_start(&old_log, wall0)?;
            let after = |t: std::time::SystemTime| t.duration_since(check).unwrap_or_default();
            let between = |a: Option<std::time::SystemTime>, b: Option<std::time::SystemTime>| {
                Some(b?.duration_since(a?).unwrap_or_default())
            };
            let failed_at = check + ran;
            let old_line = |needle: &str| first_line_time(&old_log, failed_at, needle).ok();
            let stopping = old_line(": stopping `");
            let stopped = stopping.and_then(|t| {
                [") killed by", ") exited"]
                    .into_iter()
                    .filter_map(|n| first_line_time(&old_log, t, n).ok())
                    .min()
            });
            let handing = old_line("handing off to the next");
            let succ_log = c
                .nodes
                .iter()
                .find(|p| p.name == new_leader)
                .map(|p| log(&p.name));
            let succ_line = |needle: &str| {
                succ_log
                    .as_ref()
                    .and_then(|l| first_line_time(l, failed_at, needle).ok())
            };
            let leads = succ_line("leading with term");
            let cmd_started = succ_line("): started `");
            Some(HealthTimes {
                all_agree: after(since(all_agree)),
                leader_acts: after(since(leader_acts)),
                cmd_started: cmd_started.map(after),
                successor_leads: leads.map(after),
                check: ran,
                stop_cmd: between(stopping, stopped),
                after_stop: between(stopped, handing),
                handoff: between(handing, leads),
            })
        }
        _ => None,
    };
    Ok(Measured {
        all_agree,
        leader_acts,
        health,
    })
}

/// Waits until no node reports an unhealthy member (the old leader's check passes again).
async fn healthy_again(c: &mut Procs) -> Result<()> {
    let all: Vec<usize> = (0..c.nodes.len()).collect();
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if c.statuses(&all)
            .await?
            .iter()
            .all(|s| s.unhealthy.is_empty())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("a member is still unhealthy after {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The time of the first line of `log` at or after `since` that contains `needle`.
fn first_line_time(
    log: &std::path::Path,
    since: std::time::SystemTime,
    needle: &str,
) -> Result<std::time::SystemTime> {
    let text = std::fs::read_to_string(log)?;
    text.lines()
        .filter(|l| l.contains(needle))
        .filter_map(log_time)
        .find(|t| *t >= since)
        .ok_or_else(|| anyhow!("no {needle:?} line in {} since the fault", log.display()))
}

/// When the check that made the leader unhealthy started, and how long it ran: its `failed (K
/// of K in a row, after X ms)` line's time minus X, and X.
fn kth_failure_start(
    log: &std::path::Path,
    since: std::time::SystemTime,
) -> Result<(std::time::SystemTime, Duration)> {
    let text = std::fs::read_to_string(log)?;
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.split_once("health check ").map(|(_, r)| r) else {
            continue;
        };
        let Some((_, counts)) = rest.split_once(" failed (") else {
            continue;
        };
        let Some((k, rest)) = counts.split_once(" of ") else {
            continue;
        };
        let Some((of, rest)) = rest.split_once(" in a row, after ") else {
            continue;
        };
        let Some((ms, _)) = rest.split_once(" ms)") else {
            continue;
        };
        let (Some(t), Ok(ms)) = (log_time(line), ms.parse::<f64>()) else {
            continue;
        };
        if k == of && t >= since {
            let ran = Duration::from_secs_f64(ms / 1e3);
            found = Some((t - ran, ran));
        }
    }
    found.ok_or_else(|| {
        anyhow!(
            "no \"health check … failed (K of K in a row, after X ms)\" line in {}",
            log.display()
        )
    })
}

// ------------------------------------------------------------------------------ idle cost

/// Measures every cluster of `clusters` (a label and its nodes) over the same window, once
/// each is steady; with two, also the difference of their mean CPU per node.
async fn idle(clusters: &mut [(&str, &mut Procs)], window: Duration) -> Result<()> {
    let tck = clock_ticks()?;
    let mut pids = Vec::new();
    for (label, c) in clusters.iter_mut() {
        println!(
            "idle cost, {label}: {} `baton node` processes on loopback ({}), one group, default \
             timings{}",
            c.nodes.len(),
            c.baton.display(),
            if c.tcp.tls.is_some() {
                ", mutual TLS ([cluster.tls])"
            } else {
                ""
            }
        );
        let (leader, term) = steady(c).await?;
        println!("  steady: {} leads (term {term})", c.nodes[leader].name);
        // Close the client connections: nothing but the cluster's own traffic in the window.
        c.drop_clients();
        pids.push(c.pids()?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("measuring for {window:?}");
    let load_before = loadavg();
    let ticks = |pids: &[Vec<u32>]| -> Result<Vec<Vec<u64>>> {
        pids.iter()
            .map(|ps| ps.iter().map(|&p| cpu_ticks(p)).collect())
            .collect()
    };
    let before = ticks(&pids)?;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64();
    let after = ticks(&pids)?;
    println!(
        "  load average before / after: {load_before} / {}",
        loadavg()
    );
    let mut means = Vec::new();
    for (k, (label, c)) in clusters.iter_mut().enumerate() {
        c.check_alive()?;
        println!(
            "  {label}\n  {:<6} {:>14} {:>12} {:>12}",
            "node", "CPU (% core)", "RSS (MiB)", "peak (MiB)"
        );
        let mut total = 0.0;
        let mut max_rss = 0.0f64;
        for (i, p) in c.nodes.iter().enumerate() {
            let cpu = (after[k][i] - before[k][i]) as f64 / tck / secs * 100.0;
            let (rss, hwm) = memory_kib(pids[k][i])?;
            let (rss, hwm) = (rss as f64 / 1024.0, hwm as f64 / 1024.0);
            total += cpu;
            max_rss = max_rss.max(rss);
            println!("  {:<6} {cpu:>14.2} {rss:>12.1} {hwm:>12.1}", p.name);
        }
        println!(
            "  total CPU over {secs:.1} s: {total:.2} % of one core (target < 2 % for 9 nodes); \
             largest RSS {max_rss:.1} MiB (target < 15 MiB)"
        );
        means.push(total / c.nodes.len() as f64);
    }
    if let [without, with] = means[..] {
        println!(
            "  mean CPU per node: {with:.3} % with [admin], {without:.3} % without: the listener \
             costs {:+.3} % of a core per node (target < 0.2 %)",
            with - without
        );
    }
    println!(
        "  (CPU resolution: 1 clock tick = {:.0} ms per process)",
        1000.0 / tck
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::engine::NodeStatus;
    use baton_core::{Leadership, MemberId, NodeId};

    fn status(me: &str, leader: Option<&str>, term: u64, alive: &[(&str, u64)]) -> StatusSnapshot {
        StatusSnapshot {
            node: NodeId::new(me),
            members: alive
                .iter()
                .map(|(n, inc)| NodeStatus {
                    name: NodeId::new(*n),
                    addr: None,
                    incarnation: baton_core::Incarnation(*inc),
                    alive: true,
                    groups: vec![GROUP.into()],
                    version: None,
                })
                .collect(),
            groups: vec![Leadership {
                group: GROUP.into(),
                leader: leader.map(|l| MemberId::new(l, 0)),
                term,
                is_me: leader == Some(me),
            }],
            no_leader: vec![],
            rankings: vec![],
            unhealthy: vec![],
            lease_renewals: vec![],
        }
    }

    #[test]
    fn steady_needs_one_leader_one_term_and_everyone_alive() {
        let all = [("a", 1), ("b", 2), ("c", 3)];
        let ok = vec![
            status("a", Some("b"), 4, &all),
            status("b", Some("b"), 4, &all),
            status("c", Some("b"), 4, &all),
        ];
        assert_eq!(steady_view(&ok), Some(("b".to_string(), 4)));

        let mut other_term = ok.clone();
        other_term[2] = status("c", Some("b"), 3, &all);
        assert_eq!(steady_view(&other_term), None);

        let mut stale_incarnation = ok.clone();
        stale_incarnation[0] = status("a", Some("b"), 4, &[("a", 1), ("b", 2), ("c", 1)]);
        assert_eq!(steady_view(&stale_incarnation), None);

        let mut no_leader = ok;
        no_leader[1] = status("b", None, 4, &all);
        assert_eq!(steady_view(&no_leader), None);
    }
}
