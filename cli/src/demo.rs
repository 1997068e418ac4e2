//! `baton demo`: the original demo's experiments on a real 3-process cluster on loopback.
//!
//! It writes three configs and a random secret into a fresh temporary directory, starts three
//! `baton node` children (this very executable) on free loopback ports, and then, step by step:
//! shows who leads, kills the leader with SIGKILL and times the failover (from the kill until
//! every survivor reports the same new leader, polling both every ~0.25 ms over client
//! connections), restarts it and shows it rejoin as a follower, shuts the new leader down
//! kindly (SIGTERM) and times the handoff, routes work from every node, and stops everything.
//!
//! Children never outlive the demo: they run in their own process groups with the kernel's
//! parent-death signal set to SIGKILL, and a guard SIGKILLs and reaps every child still running
//! on every exit path (success, error, Ctrl-C).

use crate::cli::{DemoBackend, DemoCmd};
use crate::net::Client;
use crate::node::Signals;
use crate::procs::{describe_exit, die_with_parent, signal_pid};
use crate::settings::Target;
use anyhow::{Context, Result, anyhow, bail};
use baton_core::engine::StatusSnapshot;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const GROUP: &str = "tracked";
const CLUSTER: &str = "demo";
const NAMES: [&str; 3] = ["a", "b", "c"];
/// The longest any step may take before the demo gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// `timing.heartbeat_ms` of the demo's nodes (the default).
const HEARTBEAT_MS: u64 = baton_core::engine::defaults::ms(baton_core::engine::defaults::HEARTBEAT);
/// `timing.failure_timeout_ms` of the demo's nodes (the default).
const FAILURE_TIMEOUT_MS: u64 =
    baton_core::engine::defaults::ms(baton_core::engine::defaults::FAILURE_TIMEOUT);

/// `baton demo`.
pub(crate) async fn run(cmd: DemoCmd) -> Result<()> {
    let mut signals = Signals::new()?;
    let mut cluster = Cluster::create(cmd.backend)?;
    println!(
        "baton demo: a 3-node cluster on loopback (cluster {CLUSTER:?}, group {GROUP:?}, policy oldest-running)"
    );
    if let Some(etcd) = &cluster.etcd {
        println!(
            "  elections in etcd: a local etcd at {} ([cluster] backend = \"etcd\", docs/ETCD.md)",
            etcd.endpoint()
        );
    }
    println!(
        "  directory: {} (configs, secret, node logs)",
        cluster.dir.display()
    );
    println!(
        "  live view: {} (actions need the token in {})",
        cluster.views(),
        cluster.dir.join("admin.token").display()
    );
    let (mut result, mut interrupted) = tokio::select! {
        r = script(&mut cluster) => (r, false),
        sig = signals.recv() => (Err(anyhow!("{sig}: demo interrupted")), true),
    };
    if cmd.explore && result.is_ok() {
        println!();
        println!("Exploring: the three nodes run again until Ctrl-C / SIGTERM");
        (result, interrupted) = tokio::select! {
            r = explore(&mut cluster) => (r, false),
            sig = signals.recv() => {
                println!("  {sig}: stopping the cluster");
                (Ok(()), true)
            }
        };
    }
    cluster.kill_all();
    // etcd after the nodes (and before its directory goes).
    drop(cluster.etcd.take());
    // After a failure the node logs tell why: keep them.
    let keep = cmd.keep || (result.is_err() && !interrupted);
    if keep {
        println!(
            "  kept {} (node logs: a.log, b.log, c.log)",
            cluster.dir.display()
        );
    } else if let Err(e) = std::fs::remove_dir_all(&cluster.dir) {
        println!("  could not remove {}: {e}", cluster.dir.display());
    }
    result
}

/// One node of the demo.
struct DemoNode {
    name: &'static str,
    addr: String,
    /// Its admin listener (the live view).
    admin: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// The demo's nodes, their client connections, and the guard that kills them all.
struct Cluster {
    dir: PathBuf,
    exe: PathBuf,
    secret: Vec<u8>,
    nodes: Vec<DemoNode>,
    clients: BTreeMap<&'static str, Client>,
    /// When the most recent node process was started.
    last_start: Option<Instant>,
    /// `--backend etcd`: the local etcd holding the elections (stopped on drop, after the
    /// nodes: fields drop in order, and `Drop for Cluster` kills the nodes first).
    etcd: Option<baton_backend_etcd::local::LocalEtcd>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// What one node says about the group.
#[derive(Clone, Debug, PartialEq, Eq)]
struct View {
    leader: Option<String>,
    term: u64,
    alive: Vec<String>,
    incarnations: BTreeMap<String, baton_core::Incarnation>,
}

impl View {
    fn of(s: &StatusSnapshot) -> View {
        let g = s.groups.iter().find(|g| g.group == GROUP);
        View {
            leader: g
                .and_then(|g| g.leader.as_ref())
                .map(|m| m.node.to_string()),
            term: g.map_or(0, |g| g.term),
            alive: s
                .members
                .iter()
                .filter(|m| m.alive)
                .map(|m| m.name.to_string())
                .collect(),
            incarnations: s
                .members
                .iter()
                .map(|m| (m.name.to_string(), m.incarnation))
                .collect(),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cluster {
    fn create(backend: DemoBackend) -> Result<Cluster> {
        let exe = std::env::current_exe().context("cannot find the baton executable")?;
        let mut rnd = [0u8; 32];
        getrandom::fill(&mut rnd).map_err(|e| anyhow!("no OS randomness: {e}"))?;
        let dir = std::env::temp_dir().join(format!(
            "baton-demo-{}-{}",
            std::process::id(),
            hex(&rnd[..4])
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        getrandom::fill(&mut rnd).map_err(|e| anyhow!("no OS randomness: {e}"))?;
        let secret = hex(&rnd);
        write_private(
            &dir.join("cluster.secret"),
            format!("{secret}\n").as_bytes(),
        )?;
        getrandom::fill(&mut rnd).map_err(|e| anyhow!("no OS randomness: {e}"))?;
        write_private(
            &dir.join("admin.token"),
            format!("{}\n", hex(&rnd)).as_bytes(),
        )?;
        // One call, so the admin (and etcd) ports differ from the nodes'.
        let mut ports = baton_transport_tcp::free_ports(2 * NAMES.len() + 2)
            .context("cannot find free loopback ports")?;
        let etcd_ports = ports.split_off(2 * NAMES.len());
        let admin_ports = ports.split_off(NAMES.len());
        let (etcd, backend) = match backend {
            DemoBackend::Baton => (None, String::new()),
            DemoBackend::Etcd => {
                let (client, peer) = match etcd_ports[..] {
                    [c, p] => (c, p),
                    _ => bail!("cannot find free loopback ports for etcd"),
                };
                let etcd =
                    baton_backend_etcd::local::LocalEtcd::start(dir.join("etcd"), client, peer)
                        .map_err(|e| anyhow!("baton demo --backend etcd: {e}"))?;
                let section = format!(
                    "backend = \"etcd\"\n\n[etcd]\nendpoints = [\"{}\"]\nlease_ttl_s = 1\n",
                    etcd.endpoint()
                );
                (Some(etcd), section)
            }
        };
        // Each node's address, and how the others name it as a seed.
        let peers: Vec<(String, String)> = NAMES
            .iter()
            .zip(&ports)
            .map(|(n, p)| (format!("127.0.0.1:{p}"), format!("\"{n}@127.0.0.1:{p}\"")))
            .collect();
        let mut nodes = Vec::new();
        for ((name, (addr, _)), admin_port) in NAMES.iter().zip(&peers).zip(admin_ports) {
            let admin = format!("127.0.0.1:{admin_port}");
            let seeds: Vec<&str> = peers
                .iter()
                .filter(|(a, _)| a != addr)
                .map(|(_, seed)| seed.as_str())
                .collect();
            let text = format!(
                "# written by `baton demo`\n\
                 [node]\nname = \"{name}\"\nlisten = \"{addr}\"\ndata_dir = \"{name}-data\"\n\n\
                 [cluster]\nname = \"{CLUSTER}\"\nseeds = [{seeds}]\nvoters = [\"a\", \"b\", \"c\"]\n\
                 secret_file = \"cluster.secret\"\nquorum = \"majority\"\n{backend}\n\
                 [timing]\nheartbeat_ms = {HEARTBEAT_MS}\nfailure_timeout_ms = {FAILURE_TIMEOUT_MS}\n\n\
                 [admin]\nlisten = \"{admin}\"\ntoken_file = \"admin.token\"\n\n\
                 [[group]]\nname = \"{GROUP}\"\npolicy = \"oldest-running\"\n",
                seeds = seeds.join(", "),
            );
            let config = dir.join(format!("{name}.toml"));
            std::fs::write(&config, text)
                .with_context(|| format!("cannot write {}", config.display()))?;
            nodes.push(DemoNode {
                name,
                addr: addr.clone(),
                admin,
                config,
                log: dir.join(format!("{name}.log")),
                child: None,
            });
        }
        Ok(Cluster {
            dir,
            exe,
            secret: secret.into_bytes(),
            nodes,
            clients: BTreeMap::new(),
            last_start: None,
            etcd,
        })
    }

    /// `http://127.0.0.1:P/ (a), …`: where each node's live view is.
    fn views(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("http://{}/ ({})", n.admin, n.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn node(&self, name: &str) -> Result<&DemoNode> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("no demo node {name:?}"))
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut DemoNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("no demo node {name:?}"))
    }

    fn pid(&self, name: &str) -> Result<u32> {
        self.node(name)?
            .child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| anyhow!("node {name} is not running"))
    }

    /// Starts `baton node --config <name>.toml`, logging to `<name>.log`.
    fn spawn(&mut self, name: &str) -> Result<u32> {
        let exe = self.exe.clone();
        let n = self.node_mut(name)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .with_context(|| format!("cannot open {}", n.log.display()))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("node")
            .arg("--config")
            .arg(&n.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Own process group: a Ctrl-C in the terminal reaches only the demo, which then
            // stops its children itself.
            .process_group(0);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start node {name}"))?;
        let pid = child.id();
        n.child = Some(child);
        Ok(pid)
    }

    fn target(&self, name: &str) -> Result<Target> {
        Ok(Target {
            addr: self.node(name)?.addr.clone(),
            cluster: CLUSTER.to_string(),
            secret: self.secret.clone(),
            config: None,
        })
    }

    /// `name`'s status over a kept client connection (reconnecting when needed).
    async fn status(&mut self, name: &'static str) -> Result<StatusSnapshot> {
        if !self.clients.contains_key(name) {
            let target = self.target(name)?;
            let client = Client::connect(&target, Duration::from_secs(1)).await?;
            self.clients.insert(name, client);
        }
        let Some(client) = self.clients.get_mut(name) else {
            bail!("no client for {name}");
        };
        match tokio::time::timeout(Duration::from_secs(2), client.status()).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => {
                self.clients.remove(name);
                Err(e)
            }
            Err(_) => {
                self.clients.remove(name);
                bail!("node {name} did not answer within 2 s")
            }
        }
    }

    /// Polls the views of `names` until `done` accepts them. Returns the views and, per node,
    /// when it first satisfied `each` (measured from `since`).
    async fn poll_until(
        &mut self,
        names: &[&'static str],
        since: Instant,
        each: impl Fn(&View) -> bool,
        done: impl Fn(&BTreeMap<&'static str, View>) -> bool,
        what: &str,
    ) -> Result<(
        BTreeMap<&'static str, View>,
        BTreeMap<&'static str, Duration>,
    )> {
        let mut first: BTreeMap<&'static str, Duration> = BTreeMap::new();
        let mut last_err = None;
        loop {
            let mut views = BTreeMap::new();
            for &n in names {
                match self.status(n).await {
                    Ok(s) => {
                        let v = View::of(&s);
                        if each(&v) {
                            first.entry(n).or_insert_with(|| since.elapsed());
                        }
                        views.insert(n, v);
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            if views.len() == names.len() && done(&views) {
                return Ok((views, first));
            }
            if since.elapsed() > STEP_TIMEOUT {
                let detail = match last_err {
                    Some(e) => format!("; last error: {e:#}"),
                    None => format!("; last views: {views:?}"),
                };
                bail!(
                    "gave up after {} s waiting for {what}{detail}",
                    STEP_TIMEOUT.as_secs()
                );
            }
            // A short *blocking* pause: nothing else runs on this thread, and tokio's timer
            // would round it up to a whole millisecond, blurring the failover measurement.
            std::thread::sleep(Duration::from_micros(250));
        }
    }

    /// Waits until `name`'s process exits (SIGKILL after `timeout`); reaps it.
    async fn wait_exit(&mut self, name: &str, timeout: Duration) -> Result<(ExitStatus, Duration)> {
        let t0 = Instant::now();
        self.clients.retain(|n, _| *n != name);
        let n = self.node_mut(name)?;
        let Some(child) = n.child.as_mut() else {
            bail!("node {name} is not running");
        };
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if t0.elapsed() > timeout {
                let _ = child.kill();
                let st = child.wait()?;
                println!(
                    "  {name} did not exit within {} s: killed",
                    timeout.as_secs()
                );
                break st;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        n.child = None;
        Ok((status, t0.elapsed()))
    }

    fn signal(&self, name: &str, signal: Signal) -> Result<()> {
        let pid = self.pid(name)?;
        signal_pid(pid, signal).with_context(|| format!("cannot send {signal} to {name}"))
    }

    /// SIGKILLs and reaps every child still running.
    fn kill_all(&mut self) {
        self.clients.clear();
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    fn running(&self) -> Vec<&'static str> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.name)
            .collect()
    }

    /// Starts `name` and waits until it answers a client.
    /// When the most recent node process was started (now, if none was).
    fn last_start(&self) -> Instant {
        self.last_start.unwrap_or_else(Instant::now)
    }

    async fn start_and_wait(&mut self, name: &'static str) -> Result<()> {
        let pid = self.spawn(name)?;
        let t0 = Instant::now();
        self.last_start = Some(t0);
        loop {
            match self.status(name).await {
                Ok(_) => break,
                Err(e) if t0.elapsed() > STEP_TIMEOUT => {
                    return Err(e.context(format!(
                        "node {name} did not come up (see {})",
                        self.node(name)?.log.display()
                    )));
                }
                Err(_) => {
                    if let Some(c) = self.node_mut(name)?.child.as_mut()
                        && let Some(st) = c.try_wait()?
                    {
                        bail!(
                            "node {name} {} at start (see {})",
                            describe_exit(st),
                            self.node(name)?.log.display()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        println!(
            "  started {name} (pid {pid}) on {} in {}",
            self.node(name)?.addr,
            ms(t0.elapsed())
        );
        Ok(())
    }

    /// Waits until every running node sees every running node alive and the same leader.
    async fn settled(&mut self, since: Instant) -> Result<View> {
        let running = self.running();
        let names = running.clone();
        let (views, _) = self
            .poll_until(
                &names,
                since,
                |_| true,
                |views| {
                    let Some(first) = views.values().next() else {
                        return false;
                    };
                    first
                        .leader
                        .as_deref()
                        .is_some_and(|l| running.contains(&l))
                        && views.values().all(|v| {
                            v.leader == first.leader
                                && v.term == first.term
                                && running.iter().all(|r| v.alive.iter().any(|a| a == r))
                        })
                },
                "every node to see the others and agree on a leader",
            )
            .await?;
        views
            .into_values()
            .next()
            .ok_or_else(|| anyhow!("no node running"))
    }

    /// Sends `sig` to `leader` (of `term`), waits until the others agree on a new leader of a
    /// higher term and prints who; returns their view, how long that took, when each node
    /// first saw it, and when the signal was sent.
    async fn replace_leader(
        &mut self,
        leader: &str,
        term: u64,
        sig: Signal,
    ) -> Result<(View, Duration, BTreeMap<&'static str, Duration>, Instant)> {
        let survivors = others(&NAMES, leader);
        let t0 = Instant::now();
        self.signal(leader, sig)?;
        let (v, took, first) = self.new_leader(&survivors, leader, term, t0).await?;
        println!(
            "  {} agree: {} leads {GROUP} (term {})",
            survivors.join(" and "),
            leader_of(&v)?,
            v.term
        );
        Ok((v, took, first, t0))
    }

    /// Waits until `survivors` agree on a leader other than `old` with a term above `term`.
    async fn new_leader(
        &mut self,
        survivors: &[&'static str],
        old: &str,
        term: u64,
        since: Instant,
    ) -> Result<(View, Duration, BTreeMap<&'static str, Duration>)> {
        let moved = |v: &View| v.term > term && v.leader.as_deref().is_some_and(|l| l != old);
        let (views, first) = self
            .poll_until(
                survivors,
                since,
                moved,
                |views| {
                    let first = views.values().next();
                    views.values().all(|v| {
                        moved(v) && first.is_some_and(|f| f.leader == v.leader && f.term == v.term)
                    })
                },
                "the survivors to agree on a new leader",
            )
            .await?;
        let took = since.elapsed();
        let view = views
            .into_values()
            .next()
            .ok_or_else(|| anyhow!("no survivor"))?;
        Ok((view, took, first))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn others(all: &[&'static str], but: &str) -> Vec<&'static str> {
    all.iter().copied().filter(|n| *n != but).collect()
}

fn leader_of(v: &View) -> Result<&'static str> {
    let l = v.leader.as_deref().ok_or_else(|| anyhow!("no leader"))?;
    NAMES
        .iter()
        .copied()
        .find(|n| *n == l)
        .ok_or_else(|| anyhow!("unknown leader {l:?}"))
}

fn first_seen(first: &BTreeMap<&'static str, Duration>) -> String {
    first
        .iter()
        .map(|(n, d)| format!("{n} after {}", ms(*d)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--explore`: starts every stopped node again, says where to look, and waits (until a signal
/// ends the demo, or a node exits on its own: then the error says which).
async fn explore(c: &mut Cluster) -> Result<()> {
    for name in NAMES {
        if !c.running().contains(&name) {
            c.start_and_wait(name).await?;
        }
    }
    println!("  live view: {}", c.views());
    println!(
        "  baton status --config {}   baton watch --config {}",
        c.node("a")?.config.display(),
        c.node("a")?.config.display()
    );
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for n in &mut c.nodes {
            if let Some(child) = n.child.as_mut()
                && let Some(st) = child.try_wait()?
            {
                n.child = None;
                println!(
                    "  {} {} (see {})",
                    n.name,
                    describe_exit(st),
                    n.log.display()
                );
            }
        }
    }
}

async fn script(c: &mut Cluster) -> Result<()> {
    println!();
    println!("1. Start three nodes (a first, so under oldest-running a should lead)");
    let t0 = Instant::now();
    for name in NAMES {
        c.start_and_wait(name).await?;
    }
    let view = c.settled(t0).await?;
    let leader = leader_of(&view)?;
    println!(
        "  {leader} leads {GROUP} (term {}); all three agree, {} after the first start",
        view.term,
        ms(t0.elapsed())
    );
    // Every node abstains from voting for one failure timeout after it starts (promises made by
    // an earlier process are not on disk). The last node started just now: let that pass, or
    // the failover below would measure the abstention instead of the failover.
    let last_started = c.last_start();
    let abstain = Duration::from_millis(FAILURE_TIMEOUT_MS + 100);
    tokio::time::sleep(abstain.saturating_sub(last_started.elapsed())).await;

    println!();
    println!("2. Kill the leader {leader} with SIGKILL (a crash: no goodbye, no handoff)");
    let (v2, took, first, _) = c.replace_leader(leader, view.term, Signal::SIGKILL).await?;
    let leader2 = leader_of(&v2)?;
    println!(
        "  failover: {} from the kill until every survivor reports it ({})",
        ms(took),
        first_seen(&first)
    );
    let (st, _) = c.wait_exit(leader, Duration::from_secs(5)).await?;
    println!("  {leader} {}", describe_exit(st));

    println!();
    println!("3. Restart {leader}: it rejoins as a follower (the incumbent keeps leading)");
    let t0 = Instant::now();
    c.start_and_wait(leader).await?;
    let v3 = c.settled(t0).await?;
    if v3.leader.as_deref() != Some(leader2) || v3.term != v2.term {
        println!(
            "  note: leadership moved to {:?} (term {}) meanwhile",
            v3.leader, v3.term
        );
    }
    println!(
        "  {leader} is alive in every node's view {} after its restart; leader is still {} (term {})",
        ms(t0.elapsed()),
        v3.leader.as_deref().unwrap_or("-"),
        v3.term
    );

    // A restarted node abstains from voting for one failure timeout (the lease promises it
    // made before the crash were not on disk); a handoff right now would wait for that.
    let abstain = Duration::from_millis(FAILURE_TIMEOUT_MS + 100);
    println!(
        "  (a restarted node abstains from voting for one failure timeout, {FAILURE_TIMEOUT_MS} ms: waiting that out)"
    );
    tokio::time::sleep(abstain.saturating_sub(t0.elapsed())).await;

    println!();
    let leader3 = leader_of(&v3)?;
    println!("4. Kind shutdown of the leader {leader3} (SIGTERM: it hands off, then leaves)");
    let (_, took, first, t0) = c.replace_leader(leader3, v3.term, Signal::SIGTERM).await?;
    println!(
        "  handoff: {} from SIGTERM until every survivor reports it ({})",
        ms(took),
        first_seen(&first)
    );
    let (st, _) = c.wait_exit(leader3, Duration::from_secs(10)).await?;
    println!(
        "  {leader3} {} ({} after SIGTERM)",
        describe_exit(st),
        ms(t0.elapsed())
    );
    let t0 = Instant::now();
    c.start_and_wait(leader3).await?;
    let v5 = c.settled(t0).await?;
    println!(
        "  {leader3} restarted and rejoined as a follower in {}; leader is {} (term {})",
        ms(t0.elapsed()),
        v5.leader.as_deref().unwrap_or("-"),
        v5.term
    );

    println!();
    println!("5. Route work from every node (the original demo's tracked_work)");
    for name in NAMES {
        let target = c.target(name)?;
        let mut client = Client::connect(&target, Duration::from_secs(2)).await?;
        let t0 = Instant::now();
        let served = client
            .call(GROUP, false, format!("job-via-{name}").into_bytes())
            .await?
            .map_err(|e| anyhow!("work via {name} failed: {e}"))?;
        println!(
            "  via {name}: {} did it under term {}: \"{}\" ({})",
            served.member.node,
            served.term,
            String::from_utf8_lossy(&served.payload),
            ms(t0.elapsed())
        );
    }
    let target = c.target(NAMES[0])?;
    let mut client = Client::connect(&target, Duration::from_secs(2)).await?;
    let served = client
        .call(GROUP, true, b"naive-job".to_vec())
        .await?
        .map_err(|e| anyhow!("naive work failed: {e}"))?;
    println!(
        "  naive (any member, like simple_work) via a: \"{}\"",
        String::from_utf8_lossy(&served.payload)
    );

    stop_all(c).await
}

/// The last step: every node stopped kindly.
async fn stop_all(c: &mut Cluster) -> Result<()> {
    println!();
    println!("6. Stop every node kindly (SIGTERM)");
    let mut line = Vec::new();
    for name in c.running() {
        c.signal(name, Signal::SIGTERM)?;
    }
    for name in c.running() {
        let (st, took) = c.wait_exit(name, Duration::from_secs(10)).await?;
        line.push(format!("{name} {} ({})", describe_exit(st), ms(took)));
    }
    println!("  {}", line.join("; "));
    println!("  no process left behind");
    Ok(())
}
