//! Real `baton node` processes on loopback, for the benchmark programs (`src/bin/failover.rs`,
//! `src/bin/scale.rs`): configs and a secret in a private temporary directory, free ports, one
//! observer [`TcpClient`] per node (the library `baton status` uses), and what `/proc` says
//! about each process (CPU ticks, RSS).
//!
//! Every node is a voter, runs the default timings and joins every group of its config.
//! Children are killed (SIGKILL) and reaped when the [`Procs`] is dropped — on every exit path
//! of a tool, a panic or Ctrl-C included (the tools drop it before they return) — and the
//! directory is removed unless the caller keeps it.

use anyhow::{Context, Result, anyhow, bail};
use baton_core::engine::StatusSnapshot;
use baton_transport_tcp::tls::Tls;
use baton_transport_tcp::{TcpClient, TcpConfig};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The cluster name every node and observer uses.
pub const CLUSTER: &str = "bench";
/// The longest [`Procs::client`] retries connecting, and [`Procs::statuses`] waits for a node
/// to answer, before the tool gives up.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// The name of the tool's own certificate (its observer clients'), beside the nodes' `nI`.
pub const OBSERVER: &str = "observer";

/// What cluster to start.
#[derive(Clone, Debug)]
pub struct Spec {
    /// How many nodes (`n0` … `n{N-1}`), every one a voter.
    pub nodes: usize,
    /// The groups every node's config lists (`baton node` joins each).
    pub groups: Vec<String>,
    /// The `policy` of every group, as TOML: `"\"oldest-running\""` or
    /// `"[\"balanced\", \"oldest-running\"]"`.
    pub policy: String,
    /// Give every node a `data_dir` (fsync'd votes).
    pub data_dir: bool,
    /// Mutual TLS on every connection, with a throwaway CA (see [`write_certificates`]).
    pub tls: bool,
    /// Keep the directory (configs, logs) after the run.
    pub keep: bool,
    /// An `[admin]` listener on every node (a free loopback port, with a token file).
    pub admin: bool,
    /// The tool's name, in the directory's name (`baton-{label}-…`).
    pub label: &'static str,
    /// Run `baton exec --config nI.toml --group G` followed by these arguments instead of
    /// `baton node --config nI.toml` (`{name}` in an argument becomes the node's name, `{dir}`
    /// the working directory). `None`: `baton node`.
    pub exec: Option<(String, Vec<String>)>,
    /// Elections held in etcd (`[cluster] backend = "etcd"`) at these client URLs, with this
    /// `lease_ttl_s`; `None`: baton's own protocol.
    pub etcd: Option<(Vec<String>, u64)>,
}

impl Spec {
    /// `n` nodes joining `groups`, each with `policy` (TOML text), no data dir, no TLS.
    pub fn new(label: &'static str, n: usize, groups: Vec<String>, policy: String) -> Spec {
        Spec {
            nodes: n,
            groups,
            policy,
            data_dir: false,
            tls: false,
            keep: false,
            admin: false,
            label,
            exec: None,
            etcd: None,
        }
    }
}

/// One node: its process when it runs, and the observer's connection. Its config and log are
/// `nI.toml` and `nI.log` in the [`Procs::dir`] ([`node_file`]).
pub struct Proc {
    /// `nI`.
    pub name: String,
    /// `127.0.0.1:PORT`, where it listens.
    pub addr: String,
    /// The running process.
    pub process: Option<Running>,
    /// The observer's connection to it.
    pub client: Option<TcpClient>,
}

/// A node's current process.
pub struct Running {
    /// The child, its stdout and stderr appended to the node's log.
    pub child: Child,
    /// When it was started (it abstains from voting for a failure timeout).
    pub started: Instant,
}

/// A node's file in the cluster's directory: `{name}.{ext}` (`toml`: its config, `log`: its
/// stdout and stderr).
pub fn node_file(dir: &Path, name: &str, ext: &str) -> PathBuf {
    dir.join(format!("{name}.{ext}"))
}

/// The wall-clock time of a log line: its leading RFC 3339 timestamp
/// (`2026-12-02T02:20:29.123456Z`, tracing-subscriber's default), UTC.
pub fn log_time(line: &str) -> Option<std::time::SystemTime> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days since 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = (days * 86_400 + h * 3_600 + min * 60) as f64 + sec;
    Some(std::time::UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// The group a log line says this node now leads: `group G: leading with term T` (the
/// engine's `Leading` event), or, on the etcd backend, `etcd: elected group=G term=T …`
/// (the elector's campaign won: the engine elects nobody there).
fn led_group(line: &str) -> Option<&str> {
    if let Some((_, rest)) = line.split_once("etcd: elected group=") {
        return rest.split_whitespace().next();
    }
    line.split_once("group ")
        .and_then(|(_, rest)| rest.split_once(": leading with term"))
        .map(|(g, _)| g)
}

/// Per group of `groups`, when a node whose log is among `logs` first said it leads it
/// ([`led_group`]) at or after `since`, by the node's own clock.
pub fn leading_times(
    logs: &[PathBuf],
    groups: &[String],
    since: std::time::SystemTime,
) -> Vec<Option<std::time::SystemTime>> {
    let mut first: std::collections::BTreeMap<&str, std::time::SystemTime> = Default::default();
    let wanted: std::collections::BTreeSet<&str> = groups.iter().map(String::as_str).collect();
    for log in logs {
        let Ok(text) = std::fs::read_to_string(log) else {
            continue;
        };
        for line in text.lines() {
            let Some(group) = led_group(line) else {
                continue;
            };
            let Some(at) = log_time(line).filter(|t| *t >= since) else {
                continue;
            };
            if let Some(g) = wanted.get(group).copied() {
                let e = first.entry(g).or_insert(at);
                *e = (*e).min(at);
            }
        }
    }
    groups
        .iter()
        .map(|g| first.get(g.as_str()).copied())
        .collect()
}

/// A cluster of `baton node` processes. Dropping it kills and reaps every child.
pub struct Procs {
    /// The working directory: configs, secret, certificates, logs.
    pub dir: PathBuf,
    /// The `baton` binary.
    pub baton: PathBuf,
    /// How the observer connects (cluster, secret, TLS).
    pub tcp: TcpConfig,
    /// The nodes, by index.
    pub nodes: Vec<Proc>,
    keep: bool,
    /// [`Spec::exec`].
    exec: Option<(String, Vec<String>)>,
}

impl Drop for Procs {
    #[allow(
        clippy::print_stderr,
        reason = "tells the user where the kept files are"
    )]
    fn drop(&mut self) {
        for p in &mut self.nodes {
            if let Some(mut r) = p.process.take() {
                let _ = r.child.kill();
                let _ = r.child.wait();
            }
        }
        if self.keep {
            eprintln!("kept {} (configs, node logs)", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `cargo build --release -p baton-cli`, then `target/release/baton` (of `CARGO_TARGET_DIR`
/// when set): the binary the tools run unless `--baton PATH` names one.
pub fn build_baton() -> Result<PathBuf> {
    let root = crate::plugin::workspace_root();
    let status = cargo()
        .current_dir(root)
        .args(["build", "--quiet", "--release", "-p", "baton-cli"])
        .status()
        .context("cannot run cargo to build the baton binary")?;
    if !status.success() {
        bail!("`cargo build --release -p baton-cli` failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let exe = target.join("release").join("baton");
    if !exe.exists() {
        bail!("{} not found after the build", exe.display());
    }
    Ok(exe)
}

/// A `cargo` command (the one running this program, under `cargo run` or `cargo test`)
/// without the variables cargo sets for the program it runs: some build scripts (ring's)
/// track `CARGO_MANIFEST_DIR`, so a nested build that inherits it would rebuild them, and
/// the next build from a shell would rebuild them again.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let set_for_the_program = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
            || k == "CARGO_PRIMARY_PACKAGE"
            || k == "OUT_DIR";
        if set_for_the_program {
            cmd.env_remove(&*k);
        }
    }
    cmd
}

/// A secret good enough for a loopback benchmark: not guessable by other local users' tools
/// that do not read the directory (which is private to this user).
fn secret() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:032x}{:08x}", t, std::process::id())
}

/// Writes a throwaway CA (`ca.pem`) and a certificate and key for each of `names` (`NAME.pem`,
/// `NAME-key.pem`) into `dir`, all valid for this run only (nothing is kept unless `--keep`).
pub fn write_certificates(dir: &Path, names: &[String]) -> Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().context("CA key")?)
        .context("cannot sign the CA certificate")?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    for name in names {
        let key = KeyPair::generate().with_context(|| format!("{name}'s key"))?;
        let cert = CertificateParams::new(vec![name.clone()])
            .with_context(|| format!("{name}'s certificate parameters"))?
            .signed_by(&key, &ca)
            .with_context(|| format!("cannot sign {name}'s certificate"))?;
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem())?;
        std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem())?;
    }
    Ok(())
}

/// The config of node `name` (listening at `addr`) in a cluster of `names` at `addrs`.
fn config_text(spec: &Spec, name: &str, addr: &str, names: &[String], addrs: &[String]) -> String {
    let seeds: Vec<String> = names
        .iter()
        .zip(addrs)
        .filter(|(n, _)| *n != name)
        .map(|(n, a)| format!("\"{n}@{a}\""))
        .collect();
    let voters: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let data = if spec.data_dir {
        format!("data_dir = \"{name}-data\"\n")
    } else {
        String::new()
    };
    // Relative paths: against the config file's directory (this one).
    let tls_section = if spec.tls {
        format!(
            "\n[cluster.tls]\ncert = \"{name}.pem\"\nkey = \"{name}-key.pem\"\nca = \"ca.pem\"\n"
        )
    } else {
        String::new()
    };
    let admin = if spec.admin {
        "\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n"
    } else {
        ""
    };
    let (backend, etcd) = match &spec.etcd {
        Some((endpoints, ttl)) => {
            let endpoints: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
            (
                "backend = \"etcd\"\n",
                format!(
                    "\n[etcd]\nendpoints = [{}]\nlease_ttl_s = {ttl}\n",
                    endpoints.join(", ")
                ),
            )
        }
        None => ("", String::new()),
    };
    let mut text = format!(
        "[node]\nname = \"{name}\"\nlisten = \"{addr}\"\n{data}\n\
         [cluster]\nname = \"{CLUSTER}\"\nseeds = [{seeds}]\nvoters = [{voters}]\n\
         secret_file = \"cluster.secret\"\n{backend}{tls_section}{admin}{etcd}",
        seeds = seeds.join(", "),
        voters = voters.join(", "),
    );
    for g in &spec.groups {
        text.push_str(&format!(
            "\n[[group]]\nname = \"{g}\"\npolicy = {}\n",
            spec.policy
        ));
    }
    text
}

impl Procs {
    /// Writes every node's config into a fresh private directory and starts every node.
    pub fn create(baton: &Path, spec: &Spec) -> Result<Procs> {
        static RUN: AtomicUsize = AtomicUsize::new(0);
        let n = spec.nodes;
        let dir = std::env::temp_dir().join(format!(
            "baton-{}-{}-{}",
            spec.label,
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let secret = secret();
        std::fs::write(dir.join("cluster.secret"), &secret)?;
        if spec.admin {
            std::fs::write(dir.join("admin.token"), self::secret())?;
        }
        let ports =
            baton_transport_tcp::free_ports(n).context("cannot find free loopback ports")?;
        let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        if spec.tls {
            let mut holders = names.clone();
            holders.push(OBSERVER.to_string());
            write_certificates(&dir, &holders)?;
        }
        let mut nodes = Vec::new();
        for (name, addr) in names.iter().zip(&addrs) {
            let config = node_file(&dir, name, "toml");
            std::fs::write(&config, config_text(spec, name, addr, &names, &addrs))
                .with_context(|| format!("cannot write {}", config.display()))?;
            nodes.push(Proc {
                name: name.clone(),
                addr: addr.clone(),
                process: None,
                client: None,
            });
        }
        let mut tcp = TcpConfig::new(CLUSTER, secret.into_bytes());
        // The observer reads whole status snapshots, which grow with nodes × groups: its own
        // frame limit must not be what fails (the node's sending limit still applies).
        tcp.max_frame = 16 << 20;
        if spec.tls {
            tcp.tls = Some(
                Tls::from_files(
                    &dir.join(format!("{OBSERVER}.pem")),
                    &dir.join(format!("{OBSERVER}-key.pem")),
                    &dir.join("ca.pem"),
                )
                .context("the observer's TLS files")?,
            );
        }
        let mut procs = Procs {
            dir,
            baton: baton.to_path_buf(),
            tcp,
            nodes,
            keep: spec.keep,
            exec: spec.exec.clone(),
        };
        for i in 0..n {
            procs.spawn(i)?;
        }
        Ok(procs)
    }

    /// Starts node `i`'s process (again): `baton node --config nI.toml` (or `baton exec`, see
    /// [`Spec::exec`]), output to its log.
    pub fn spawn(&mut self, i: usize) -> Result<()> {
        let p = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node_file(&self.dir, &p.name, "log"))?;
        let config = node_file(&self.dir, &p.name, "toml");
        let mut command = Command::new(&self.baton);
        match &self.exec {
            None => {
                command.arg("node").arg("--config").arg(&config);
            }
            Some((group, args)) => {
                let dir = self.dir.to_string_lossy();
                command
                    .arg("exec")
                    .arg("--config")
                    .arg(&config)
                    .arg("--group")
                    .arg(group)
                    .args(
                        args.iter()
                            .map(|a| a.replace("{name}", &p.name).replace("{dir}", &dir)),
                    );
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.baton.display()))?;
        p.process = Some(Running {
            child,
            started: Instant::now(),
        });
        p.client = None;
        Ok(())
    }

    /// Node `i`'s process id.
    pub fn pid(&self, i: usize) -> Result<Pid> {
        let r = self.nodes[i]
            .process
            .as_ref()
            .ok_or_else(|| anyhow!("{} is not running", self.nodes[i].name))?;
        Ok(Pid::from_raw(i32::try_from(r.child.id())?))
    }

    /// Fails (naming the exit status and the end of the log) when any node's process has
    /// exited on its own.
    pub fn check_alive(&mut self) -> Result<()> {
        for p in &mut self.nodes {
            if let Some(r) = p.process.as_mut()
                && let Some(status) = r.child.try_wait()?
            {
                let path = node_file(&self.dir, &p.name, "log");
                let log = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "node {} exited unexpectedly ({status}); the end of {}:\n{}",
                    p.name,
                    path.display(),
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }

    /// Reaps node `i`'s process once it has exited.
    pub fn reap(&mut self, i: usize) -> Result<()> {
        if let Some(mut r) = self.nodes[i].process.take() {
            r.child.wait()?;
        }
        self.nodes[i].client = None;
        Ok(())
    }

    /// Closes every observer connection (nothing but the cluster's own traffic afterwards).
    pub fn drop_clients(&mut self) {
        for p in &mut self.nodes {
            p.client = None;
        }
    }

    /// A connected client to node `i`, connecting (with retries) when there is none.
    pub async fn client(&mut self, i: usize) -> Result<&mut TcpClient> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        while self.nodes[i].client.is_none() {
            match TcpClient::connect(&self.nodes[i].addr, &self.tcp, "bench").await {
                Ok(c) => self.nodes[i].client = Some(c),
                Err(e) if Instant::now() > deadline => {
                    bail!(
                        "cannot connect to {}: {e} (log: {})",
                        self.nodes[i].name,
                        node_file(&self.dir, &self.nodes[i].name, "log").display()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        self.nodes[i]
            .client
            .as_mut()
            .ok_or_else(|| anyhow!("no client"))
    }

    /// The status of each of `which`, asked concurrently (one request per node): connects
    /// once where there is no connection, waits at most `limit` for each answer. A node that
    /// does not answer gets an error (and its connection is dropped, to be made again next
    /// time); the others are unaffected.
    pub async fn status_each(
        &mut self,
        which: &[usize],
        limit: Duration,
    ) -> Vec<Result<StatusSnapshot>> {
        let tcp = &self.tcp;
        let mut futs = Vec::new();
        for (i, p) in self.nodes.iter_mut().enumerate() {
            if which.contains(&i) {
                futs.push(async move {
                    let name = p.name.clone();
                    let asked = async {
                        if p.client.is_none() {
                            p.client = Some(
                                TcpClient::connect(&p.addr, tcp, "bench")
                                    .await
                                    .map_err(|e| anyhow!("cannot connect to {name}: {e}"))?,
                            );
                        }
                        let client = p.client.as_mut().ok_or_else(|| anyhow!("no client"))?;
                        client
                            .status()
                            .await
                            .map_err(|e| anyhow!("status of {name}: {e}"))
                    };
                    let r = tokio::time::timeout(limit, asked)
                        .await
                        .map_err(|_| anyhow!("{name} did not answer status within {limit:?}"))
                        .and_then(|r| r);
                    if r.is_err() {
                        p.client = None;
                    }
                    (i, r)
                });
            }
        }
        let mut results = join_all(futs).await;
        // In the order of `which`.
        let mut out = Vec::new();
        for &i in which {
            if let Some(pos) = results.iter().position(|(j, _)| *j == i) {
                out.push(results.swap_remove(pos).1);
            }
        }
        out
    }

    /// The status of each of `which` (connecting with retries first), or the first error.
    pub async fn statuses(&mut self, which: &[usize]) -> Result<Vec<StatusSnapshot>> {
        for &i in which {
            self.client(i).await?;
        }
        self.status_each(which, Duration::from_secs(3))
            .await
            .into_iter()
            .collect()
    }

    /// The process id of every node, by index; fails when one does not run.
    pub fn pids(&self) -> Result<Vec<u32>> {
        self.nodes
            .iter()
            .map(|p| {
                p.process
                    .as_ref()
                    .map(|r| r.child.id())
                    .ok_or_else(|| anyhow!("{} not running", p.name))
            })
            .collect()
    }

    /// The port each node listens on, by index.
    pub fn ports(&self) -> Result<Vec<u16>> {
        self.nodes
            .iter()
            .map(|p| {
                p.addr
                    .rsplit_once(':')
                    .and_then(|(_, port)| port.parse().ok())
                    .ok_or_else(|| anyhow!("{}: no port in {}", p.name, p.addr))
            })
            .collect()
    }
}

/// Polls every future of `futs` until all are done; their outputs in order. (A `join_all`
/// without a dependency for it.)
pub fn join_all<F: std::future::Future>(
    futs: Vec<F>,
) -> impl std::future::Future<Output = Vec<F::Output>> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(out.iter_mut().filter_map(Option::take).collect())
        }
    })
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` writes them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Clock ticks per second (`utime`, `stime` of `/proc/<pid>/stat` count in them).
pub fn clock_ticks() -> Result<f64> {
    Ok(nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?
        .ok_or_else(|| anyhow!("no CLK_TCK"))? as f64)
}

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces: fields after the closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = f.get(11).ok_or_else(|| anyhow!("no utime"))?.parse()?;
    let stime: u64 = f.get(12).ok_or_else(|| anyhow!("no stime"))?.parse()?;
    Ok(utime + stime)
}

/// (VmRSS, VmHWM) of `pid`, in KiB.
pub fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| anyhow!("bad {name}"))?
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_certificates_load_as_a_tls_identity() {
        let dir = std::env::temp_dir().join(format!("baton-procs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let names = vec!["n0".to_string(), OBSERVER.to_string()];
        write_certificates(&dir, &names).unwrap();
        for n in &names {
            let tls = Tls::from_files(
                &dir.join(format!("{n}.pem")),
                &dir.join(format!("{n}-key.pem")),
                &dir.join("ca.pem"),
            );
            assert!(tls.is_ok(), "{n}: {tls:?}");
        }
        // Another run's CA does not go with these keys' certificates: a real check.
        let other = dir.join("other");
        std::fs::create_dir_all(&other).unwrap();
        write_certificates(&other, &names).unwrap();
        let mixed = Tls::from_files(
            &dir.join("n0.pem"),
            &other.join("n0-key.pem"),
            &dir.join("ca.pem"),
        );
        assert!(
            mixed.is_err(),
            "a key of another certificate must be refused"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leading_lines_of_both_backends_name_their_group() {
        assert_eq!(
            led_group("2026-12-02T10:35:22.484194Z  INFO group g7: leading with term 3 node=n1"),
            Some("g7")
        );
        assert_eq!(
            led_group(
                "2026-12-02T10:35:22.484194Z  INFO etcd: elected group=g631 term=491 takeover=false"
            ),
            Some("g631")
        );
        assert_eq!(
            led_group("2026-12-02T10:35:13.721567Z  INFO g999: leader is n4 (term 147)"),
            None
        );
        let dir = std::env::temp_dir().join(format!("baton-procs-lead-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("n1.log");
        std::fs::write(
            &log,
            "2026-12-02T10:35:22.000001Z  INFO etcd: elected group=g1 term=9 takeover=true\n\
             2026-12-02T10:35:23.000001Z  INFO group g0: leading with term 4\n",
        )
        .unwrap();
        let since = log_time("2026-12-02T10:35:21.0Z").unwrap();
        let t = leading_times(&[log], &["g0".into(), "g1".into(), "g2".into()], since);
        assert_eq!(t[1], log_time("2026-12-02T10:35:22.000001Z"));
        assert_eq!(t[0], log_time("2026-12-02T10:35:23.000001Z"));
        assert_eq!(t[2], None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn proc_stat_fields_after_the_command_name() {
        // Our own process: utime + stime is readable and the command name may hold spaces.
        assert!(cpu_ticks(std::process::id()).is_ok());
        let (rss, hwm) = memory_kib(std::process::id()).unwrap();
        assert!(rss > 0 && hwm >= rss);
    }

    #[test]
    fn a_config_lists_every_group_with_the_policy_and_parses() {
        let names: Vec<String> = vec!["n0".into(), "n1".into()];
        let addrs: Vec<String> = vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()];
        let spec = Spec::new(
            "test",
            2,
            vec!["g0".into(), "g1".into()],
            "[\"balanced\", \"oldest-running\"]".into(),
        );
        let text = config_text(&spec, "n1", "127.0.0.1:2", &names, &addrs);
        let c = baton_core::config::Config::from_toml_str(&text, None).unwrap();
        assert_eq!(c.cluster.seeds, vec!["n0@127.0.0.1:1".to_string()]);
        assert_eq!(c.cluster.voters, names);
        let groups: Vec<&str> = c.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, ["g0", "g1"]);
        assert!(matches!(
            c.groups[1].policy,
            Some(baton_core::config::PolicySpec::Chain(ref v)) if v.len() == 2
        ));
    }
}
