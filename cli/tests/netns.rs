//! The real-network fault suite: `baton exec` processes on hosts made of Linux network
//! namespaces, faults made with iptables, conntrack and `tc netem`.
//!
//! Topology (built by each test, removed on drop, leftovers of a crashed run removed first):
//! one router namespace `btn-r` and one namespace per host `btn-hN`, joined by veth pairs;
//! host N is `10.213.N.2/24` with a default route via the router's `10.213.N.1`. Those
//! addresses exist only inside these namespaces, and nothing here sends to any other address.
//!
//! Every node runs `baton exec` with default timings, `quorum = "majority"` and a shared
//! secret; its command appends `start`, a `tick` every ~15 ms and (from a TERM trap) `stop`
//! lines with wall-clock timestamps to a per-host file. The namespaces share CLOCK_REALTIME, so
//! these timestamps compare across hosts: an acting interval is `[start, stop or last tick]`
//! (never longer than the command really ran), and no two hosts' intervals may overlap.
//! Leaders, terms and liveness come from `baton status --json` run inside each host.
//!
//! All tests are `#[ignore]`d (they need root, `ip netns`, iptables, conntrack, tc and
//! faketime): `.ci/run` runs them with
//! `cargo test -p baton-cli --test netns -- --ignored --test-threads=1 --nocapture`.
//! Where any of that is missing they fail, naming what is missing. See docs/RELIABILITY.md.
#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test code: a panic is the failure report, printing is its log (clippy exempts only #[test] fns)"
)]

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BATON: &str = env!("CARGO_BIN_EXE_baton");
/// Every namespace this suite creates starts with this.
const PREFIX: &str = "btn-";
const ROUTER: &str = "btn-r";
const PORT: u16 = 7100;
const GROUP: &str = "tracked";
/// The acceptance bound: this long after a fault is removed, the cluster has healed.
const HEAL: Duration = Duration::from_secs(2);
/// etcd's client port (and + 1, its peer port) on the etcd host of the etcd test.
const ETCD_PORT: u16 = 2379;

// ---------------------------------------------------------------------------------------
// Preconditions: fail loudly, naming what is missing.

/// Absolute paths of the tools the suite runs.
struct Tools {
    ip: PathBuf,
    iptables: PathBuf,
    tc: PathBuf,
    conntrack: PathBuf,
    faketime: PathBuf,
    bash: PathBuf,
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The tools, after checking that this process is root and can create a namespace with a
/// firewall rule in it; panics naming everything that is missing.
fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    let r = TOOLS.get_or_init(|| {
        let mut missing = Vec::new();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1).map(String::from))
            .unwrap_or_default();
        if uid != "0" {
            missing.push(format!(
                "root (effective uid is {uid:?}; network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)"
            ));
        }
        let mut get = |tool: &str, package: &str| {
            find_tool(tool).unwrap_or_else(|| {
                missing.push(format!("`{tool}` (Debian package {package})"));
                PathBuf::from(tool)
            })
        };
        let t = Tools {
            ip: get("ip", "iproute2"),
            iptables: get("iptables", "iptables"),
            tc: get("tc", "iproute2"),
            conntrack: get("conntrack", "conntrack"),
            faketime: get("faketime", "faketime"),
            bash: get("bash", "bash"),
        };
        if !missing.is_empty() {
            return Err(format!("missing: {}", missing.join(", ")));
        }
        // From here on this process owns every `btn-` namespace on the machine.
        machine_lock()?;
        cleanup_leftovers(&t.ip);
        // A throw-away namespace with a firewall rule in it proves the rest works here.
        let probe = format!("{PREFIX}probe");
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), probe.clone()],
            vec![
                "netns".into(),
                "exec".into(),
                probe.clone(),
                t.iptables.display().to_string(),
                "-w".into(),
                "-A".into(),
                "OUTPUT".into(),
                "-p".into(),
                "tcp".into(),
                "-m".into(),
                "conntrack".into(),
                "--ctstate".into(),
                "NEW".into(),
                "-j".into(),
                "REJECT".into(),
                "--reject-with".into(),
                "tcp-reset".into(),
            ],
        ];
        let mut err = None;
        for s in &steps {
            let out = Command::new(&t.ip).args(s).output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    err = Some(format!(
                        "`ip {}` failed: {}",
                        s.join(" "),
                        String::from_utf8_lossy(&o.stderr).trim()
                    ));
                    break;
                }
                Err(e) => {
                    err = Some(format!("cannot run `ip {}`: {e}", s.join(" ")));
                    break;
                }
            }
        }
        let _ = Command::new(&t.ip)
            .args(["netns", "del", &probe])
            .stderr(Stdio::null())
            .status();
        match err {
            Some(e) => Err(format!(
                "cannot create a network namespace with an iptables rule in it: {e}"
            )),
            None => Ok(t),
        }
    });
    match r {
        Ok(t) => t,
        Err(e) => panic!(
            "the network-namespace suite cannot run here: {e}. It needs root, iproute2, iptables, conntrack, faketime and bash (`.ci/run` installs them with apt-get)"
        ),
    }
}

/// Where concurrent runs of the suite (other worktrees, other users) wait for each other:
/// they would share the namespace names.
const LOCK_FILE: &str = "/run/lock/baton-netns-suite.lock";

/// Takes (once per process, held until it exits) an exclusive lock on [`LOCK_FILE`], waiting
/// at most 10 minutes for another run to finish.
fn machine_lock() -> Result<(), String> {
    static LOCK: OnceLock<Result<std::fs::File, String>> = OnceLock::new();
    let r = LOCK.get_or_init(|| {
        use std::os::fd::AsRawFd;
        let path = if Path::new("/run/lock").is_dir() {
            PathBuf::from(LOCK_FILE)
        } else {
            std::env::temp_dir().join("baton-netns-suite.lock")
        };
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
        let t0 = Instant::now();
        let mut told = false;
        loop {
            // SAFETY: flock on a file descriptor we own.
            let r =
                unsafe { nix::libc::flock(f.as_raw_fd(), nix::libc::LOCK_EX | nix::libc::LOCK_NB) };
            if r == 0 {
                return Ok(f);
            }
            if t0.elapsed() > Duration::from_secs(600) {
                return Err(format!(
                    "another run of the suite has held {} for 10 minutes",
                    path.display()
                ));
            }
            if !told {
                eprintln!(
                    "[netns] another run of the suite holds {}: waiting for it",
                    path.display()
                );
                told = true;
            }
            sleep(Duration::from_millis(500));
        }
    });
    r.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// Tests in this process, one at a time (they share the namespace names).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a command; returns its output, or the reason it failed.
fn run_out(cmd: &mut Command) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(o),
        Ok(o) => Err(format!(
            "{what} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {what}: {e}")),
    }
}

/// Runs a command that must succeed.
fn run(cmd: &mut Command) -> Output {
    run_out(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// `ip netns exec NS PROGRAM ARGS...`.
fn in_ns(ns: &str, program: &Path) -> Command {
    let mut c = Command::new(&tools().ip);
    c.args(["netns", "exec", ns]).arg(program);
    c
}

fn iptables(ns: &str, args: &[String]) -> Result<Output, String> {
    run_out(in_ns(ns, &tools().iptables).arg("-w").args(args))
}

/// Kills every process in and deletes every namespace named `btn-…` (a crashed earlier run).
fn cleanup_leftovers(ip: &Path) {
    let out = Command::new(ip).args(["netns", "list"]).output();
    let Ok(out) = out else { return };
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    for ns in names {
        eprintln!("[netns] removing leftover namespace {ns} (an earlier run did not finish)");
        delete_ns(ip, &ns);
    }
    // Scratch directories kept by failed runs whose process is gone.
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let pid = name
            .strip_prefix("btn-netns-")
            .and_then(|rest| rest.rsplit('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// SIGKILLs every process in `ns`, then deletes it.
fn delete_ns(ip: &Path, ns: &str) {
    for _ in 0..3 {
        let pids = Command::new(ip)
            .args(["netns", "pids", ns])
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let pids: Vec<i32> = pids.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.is_empty() {
            break;
        }
        for p in pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        sleep(Duration::from_millis(50));
    }
    let _ = Command::new(ip)
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

// ---------------------------------------------------------------------------------------
// The network: a router and N hosts.

fn host_ns(h: usize) -> String {
    format!("{PREFIX}h{h}")
}

fn host_ip(h: usize) -> String {
    format!("10.213.{h}.2")
}

/// The router's interface towards host `h`.
fn router_if(h: usize) -> String {
    format!("rh{h}")
}

/// The namespaces; every process in them is killed and they are deleted on drop.
struct Net {
    hosts: usize,
}

impl Net {
    fn new(hosts: usize) -> Net {
        let t = tools();
        cleanup_leftovers(&t.ip);
        let net = Net { hosts };
        let ip = |args: &[&str]| {
            run(Command::new(&t.ip).args(args));
        };
        ip(&["netns", "add", ROUTER]);
        ip(&["-n", ROUTER, "link", "set", "lo", "up"]);
        run(in_ns(ROUTER, &t.bash).args(["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]));
        for h in 1..=hosts {
            let ns = host_ns(h);
            let rif = router_if(h);
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n", ROUTER, "link", "add", &rif, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            ip(&[
                "-n",
                ROUTER,
                "addr",
                "add",
                &format!("10.213.{h}.1/24"),
                "dev",
                &rif,
            ]);
            ip(&["-n", ROUTER, "link", "set", &rif, "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", host_ip(h)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &format!("10.213.{h}.1"),
            ]);
        }
        net
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let ip = &tools().ip;
        for h in 1..=self.hosts {
            delete_ns(ip, &host_ns(h));
        }
        delete_ns(ip, ROUTER);
    }
}

// ---------------------------------------------------------------------------------------
// Faults.

/// A fault: iptables rules (inserted, later deleted), netem qdiscs, a conntrack flush.
#[derive(Default, Clone)]
struct Fault {
    what: String,
    /// (namespace, chain, rule) — inserted with `-I`, deleted with `-D`.
    rules: Vec<(String, String, Vec<String>)>,
    /// (namespace, device, netem arguments).
    netem: Vec<(String, String, Vec<String>)>,
    /// Flush the router's connection tracking after inserting the rules (a firewall that lost
    /// its state, or was put in front of live connections).
    flush_conntrack: bool,
    /// Hold every packet the rules send to NFQUEUE [`DELAY_QUEUE`] in the router this long
    /// (the suite's own delayer, where the kernel has no netem).
    router_delay: Option<Duration>,
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

impl Fault {
    fn new(what: impl Into<String>) -> Fault {
        Fault {
            what: what.into(),
            ..Fault::default()
        }
    }

    fn rule(mut self, ns: &str, chain: &str, rule: &str) -> Fault {
        self.rules.push((ns.into(), chain.into(), words(rule)));
        self
    }

    /// On the router, `action` for every packet from and to host `h` (both directions).
    fn router_both(self, h: usize, matches: &str, action: &str) -> Fault {
        let ip = host_ip(h);
        self.rule(ROUTER, "FORWARD", &format!("-s {ip} {matches} -j {action}"))
            .rule(ROUTER, "FORWARD", &format!("-d {ip} {matches} -j {action}"))
    }

    /// Applies the fault; a delayer it needs runs until the returned guard is dropped (after
    /// [`Fault::remove`]).
    fn apply(&self) -> Result<Option<Delayer>, String> {
        // The delayer listens before any rule queues a packet to it.
        let delayer = match self.router_delay {
            Some(d) => Some(Delayer::start(ROUTER, DELAY_QUEUE, d)?),
            None => None,
        };
        for (ns, chain, rule) in &self.rules {
            let mut args = vec!["-I".to_string(), chain.clone()];
            args.extend(rule.iter().cloned());
            iptables(ns, &args)?;
        }
        for (ns, dev, netem) in &self.netem {
            run_out(
                in_ns(ns, &tools().tc)
                    .args(["qdisc", "add", "dev", dev, "root", "netem"])
                    .args(netem),
            )?;
        }
        if self.flush_conntrack {
            // `conntrack -F` says how many entries it deleted on stderr; an empty table is fine.
            let _ = Command::new(&tools().ip)
                .args(["netns", "exec", ROUTER])
                .arg(&tools().conntrack)
                .arg("-F")
                .stdin(Stdio::null())
                .output();
        }
        Ok(delayer)
    }

    fn remove(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        for (ns, chain, rule) in &self.rules {
            let mut args = vec!["-D".to_string(), chain.clone()];
            args.extend(rule.iter().cloned());
            if let Err(e) = iptables(ns, &args) {
                errors.push(e);
            }
        }
        for (ns, dev, _) in &self.netem {
            if let Err(e) =
                run_out(in_ns(ns, &tools().tc).args(["qdisc", "del", "dev", dev, "root"]))
            {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Whether `tc qdisc … netem` works here (else: why not).
fn netem_works() -> Result<(), String> {
    let ns = format!("{PREFIX}netem-probe");
    let ip = &tools().ip;
    run(Command::new(ip).args(["netns", "add", &ns]));
    let out = Command::new(ip)
        .args(["netns", "exec", &ns])
        .arg(&tools().tc)
        .args(["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
        .output();
    delete_ns(ip, &ns);
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(format!("cannot run tc: {e}")),
    }
}

// ---------------------------------------------------------------------------------------
// A packet delayer over NFQUEUE, for kernels without sch_netem.

/// The NFQUEUE number the delayer binds in the router.
const DELAY_QUEUE: u16 = 7;

/// Holds every packet queued to an NFQUEUE of a namespace for a fixed time, then accepts it
/// (in order): `tc netem delay` made in userspace. Runs on its own thread, which enters the
/// namespace (`setns` moves only the calling thread).
struct Delayer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<u64, String>>>,
}

impl Delayer {
    fn start(ns: &str, queue: u16, delay: Duration) -> Result<Delayer, String> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let path = format!("/run/netns/{ns}");
        let flag = stop.clone();
        let thread = std::thread::spawn(move || nfq::run(&path, queue, delay, &flag, &ready_tx));
        let mut d = Delayer {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(d),
            Ok(Err(e)) => {
                let _ = d.join();
                Err(format!("the NFQUEUE delayer could not start: {e}"))
            }
            Err(_) => Err(format!(
                "the NFQUEUE delayer did not start within 5 s ({:?})",
                d.join()
            )),
        }
    }

    fn join(&mut self) -> Result<u64, String> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err("the delayer panicked".into())),
            None => Ok(0),
        }
    }

    /// Accepts what it still holds and stops; returns how many packets it delayed.
    fn finish(mut self) -> u64 {
        self.join()
            .unwrap_or_else(|e| panic!("NFQUEUE delayer: {e}"))
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// Just enough netlink for NFQUEUE (linux/netfilter/nfnetlink_queue.h): bind a queue with
/// metadata-only copies, read packet ids, send verdicts.
mod nfq {
    use nix::libc;
    use std::collections::VecDeque;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::Sender;
    use std::time::{Duration, Instant};

    const NFNL_SUBSYS_QUEUE: u16 = 3;
    const NFQNL_MSG_PACKET: u16 = 0;
    const NFQNL_MSG_VERDICT: u16 = 1;
    const NFQNL_MSG_CONFIG: u16 = 2;
    const NFQA_PACKET_HDR: u16 = 1;
    const NFQA_VERDICT_HDR: u16 = 2;
    const NFQA_CFG_CMD: u16 = 1;
    const NFQA_CFG_PARAMS: u16 = 2;
    const NFQNL_CFG_CMD_BIND: u8 = 1;
    const NFQNL_COPY_META: u8 = 1;
    const NF_ACCEPT: u32 = 1;
    const NLMSG_ERROR: u16 = 2;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;

    fn os_err(what: &str) -> String {
        format!("{what}: {}", std::io::Error::last_os_error())
    }

    /// A netfilter-queue message: nlmsghdr, nfgenmsg (AF_UNSPEC, v0, queue), attributes.
    fn message(kind: u16, queue: u16, flags: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b.extend([libc::AF_UNSPEC as u8, 0]);
        b.extend(queue.to_be_bytes());
        for (ty, payload) in attrs {
            b.extend(((4 + payload.len()) as u16).to_ne_bytes());
            b.extend(ty.to_ne_bytes());
            b.extend(*payload);
            while !b.len().is_multiple_of(4) {
                b.push(0);
            }
        }
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_ne_bytes());
        b[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
        b[6..8].copy_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        b
    }

    fn send(fd: &OwnedFd, msg: &[u8]) -> Result<(), String> {
        // SAFETY: a valid socket and a buffer of msg.len() bytes.
        let n = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 || n as usize != msg.len() {
            return Err(os_err("netlink send"));
        }
        Ok(())
    }

    /// Waits up to `ms` for the socket to be readable.
    fn readable(fd: &OwnedFd, ms: i32) -> bool {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, ms) > 0 }
    }

    /// Reads what is there; returns (packet ids, netlink errors), or None when nothing was.
    fn receive(fd: &OwnedFd, buf: &mut [u8]) -> Option<(Vec<u32>, Vec<i32>)> {
        // SAFETY: a valid socket and a buffer of buf.len() bytes.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            return None;
        }
        let data = &buf[..n as usize];
        let (mut ids, mut errors) = (Vec::new(), Vec::new());
        let mut off = 0;
        while off + 16 <= data.len() {
            let len = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(data[off + 4..off + 6].try_into().unwrap());
            if len < 16 || off + len > data.len() {
                break;
            }
            let body = &data[off + 16..off + len];
            if kind == NLMSG_ERROR && body.len() >= 4 {
                let e = i32::from_ne_bytes(body[0..4].try_into().unwrap());
                errors.push(e);
            } else if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET && body.len() >= 4 {
                let mut a = 4;
                while a + 4 <= body.len() {
                    let alen = u16::from_ne_bytes(body[a..a + 2].try_into().unwrap()) as usize;
                    let aty = u16::from_ne_bytes(body[a + 2..a + 4].try_into().unwrap()) & 0x3fff;
                    if alen < 4 || a + alen > body.len() {
                        break;
                    }
                    if aty == NFQA_PACKET_HDR && alen >= 8 {
                        ids.push(u32::from_be_bytes(body[a + 4..a + 8].try_into().unwrap()));
                    }
                    a += (alen + 3) & !3;
                }
            }
            off += (len + 3) & !3;
        }
        Some((ids, errors))
    }

    /// Sends a request and waits for its acknowledgement.
    fn request(fd: &OwnedFd, msg: &[u8], buf: &mut [u8]) -> Result<(), String> {
        send(fd, msg)?;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if readable(fd, 100)
                && let Some((_, errors)) = receive(fd, buf)
                && let Some(e) = errors.first()
            {
                return match *e {
                    0 => Ok(()),
                    e => Err(format!(
                        "netlink refused the NFQUEUE config: {}",
                        std::io::Error::from_raw_os_error(-e)
                    )),
                };
            }
        }
        Err("no answer from netlink".into())
    }

    fn open(ns_path: &str, queue: u16, buf: &mut [u8]) -> Result<OwnedFd, String> {
        let ns = std::fs::File::open(ns_path).map_err(|e| format!("{ns_path}: {e}"))?;
        // SAFETY: a valid namespace fd; moves only this thread.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(os_err("setns"));
        }
        // SAFETY: plain socket creation; the fd is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(os_err("netlink socket"));
        }
        // SAFETY: raw is a fresh, valid fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_nl is valid (pid 0: the kernel assigns one).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: a valid socket and a sockaddr_nl of the size given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(os_err("netlink bind"));
        }
        let cmd = [NFQNL_CFG_CMD_BIND, 0, 0, 0];
        request(
            &fd,
            &message(NFQNL_MSG_CONFIG, queue, NLM_F_ACK, &[(NFQA_CFG_CMD, &cmd)]),
            buf,
        )?;
        let params = [0, 0, 0xff, 0xff, NFQNL_COPY_META];
        request(
            &fd,
            &message(
                NFQNL_MSG_CONFIG,
                queue,
                NLM_F_ACK,
                &[(NFQA_CFG_PARAMS, &params)],
            ),
            buf,
        )?;
        Ok(fd)
    }

    fn accept(fd: &OwnedFd, queue: u16, id: u32) -> Result<(), String> {
        let mut v = [0u8; 8];
        v[0..4].copy_from_slice(&NF_ACCEPT.to_be_bytes());
        v[4..8].copy_from_slice(&id.to_be_bytes());
        send(
            fd,
            &message(NFQNL_MSG_VERDICT, queue, 0, &[(NFQA_VERDICT_HDR, &v)]),
        )
    }

    /// The delayer's thread: binds, tells `ready`, then holds packets until `stop`.
    pub(crate) fn run(
        ns_path: &str,
        queue: u16,
        delay: Duration,
        stop: &AtomicBool,
        ready: &Sender<Result<(), String>>,
    ) -> Result<u64, String> {
        let mut buf = vec![0u8; 1 << 16];
        let fd = match open(ns_path, queue, &mut buf) {
            Ok(fd) => {
                let _ = ready.send(Ok(()));
                fd
            }
            Err(e) => {
                let _ = ready.send(Err(e.clone()));
                return Err(e);
            }
        };
        let mut held: VecDeque<(Instant, u32)> = VecDeque::new();
        let mut count = 0u64;
        // Bounded: the test stops it within seconds; this is a backstop.
        let t0 = Instant::now();
        while !stop.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(120) {
            let wait = held
                .front()
                .map_or(10, |(due, _)| {
                    due.saturating_duration_since(Instant::now()).as_millis() as i32
                })
                .clamp(0, 10);
            if readable(&fd, wait) {
                // At most 256 reads per wake-up, so that due packets are never starved.
                for _ in 0..256 {
                    let Some((ids, _)) = receive(&fd, &mut buf) else {
                        break;
                    };
                    let due = Instant::now() + delay;
                    count += ids.len() as u64;
                    held.extend(ids.into_iter().map(|id| (due, id)));
                }
            }
            while let Some((due, id)) = held.front().copied() {
                if due > Instant::now() {
                    break;
                }
                held.pop_front();
                accept(&fd, queue, id)?;
            }
        }
        // What is still held goes through: closing the socket would drop it.
        for (_, id) in held {
            accept(&fd, queue, id)?;
        }
        Ok(count)
    }
}

// ---------------------------------------------------------------------------------------
// Acting intervals, from what the commands wrote.

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// One run of a node's command: `[start, end]` in wall-clock seconds.
#[derive(Clone, Debug)]
struct Interval {
    host: String,
    node: String,
    term: u64,
    pid: u32,
    start: f64,
    /// The stop line, else the last tick (never later than the command really ran).
    end: f64,
    stopped: bool,
}

/// Two hosts' commands running at the same time.
#[derive(Clone, Debug)]
struct Overlap {
    a: Interval,
    b: Interval,
    ms: f64,
}

impl Overlap {
    fn key(&self) -> (u32, u32) {
        (self.a.pid, self.b.pid)
    }

    fn describe(&self) -> String {
        format!(
            "{:.1} ms: {} on {} (term {}, pid {}) [{:.3}, {:.3}] and {} on {} (term {}, pid {}) [{:.3}, {:.3}]",
            self.ms,
            self.a.node,
            self.a.host,
            self.a.term,
            self.a.pid,
            self.a.start,
            self.a.end,
            self.b.node,
            self.b.host,
            self.b.term,
            self.b.pid,
            self.b.start,
            self.b.end
        )
    }
}

/// Parses `start|tick|stop HOST NODE TERM PID TIME` lines (a torn last line is ignored).
fn parse_acts(text: &str) -> Vec<Interval> {
    let mut by_pid: BTreeMap<u32, Interval> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [kind, host, node, term, pid, time] = f.as_slice() else {
            continue;
        };
        let (Ok(term), Ok(pid), Ok(t)) = (term.parse(), pid.parse(), time.parse::<f64>()) else {
            continue;
        };
        let e = by_pid.entry(pid).or_insert_with(|| Interval {
            host: host.to_string(),
            node: node.to_string(),
            term,
            pid,
            start: t,
            end: t,
            stopped: false,
        });
        match *kind {
            "start" => e.start = t,
            "tick" if !e.stopped => e.end = e.end.max(t),
            "stop" => {
                e.end = e.end.max(t);
                e.stopped = true;
            }
            _ => {}
        }
    }
    by_pid.into_values().collect()
}

fn overlaps(intervals: &[Interval]) -> Vec<Overlap> {
    let mut out = Vec::new();
    for (i, a) in intervals.iter().enumerate() {
        for b in &intervals[i + 1..] {
            if a.host == b.host {
                continue;
            }
            let ms = (a.end.min(b.end) - a.start.max(b.start)) * 1000.0;
            if ms > 0.0 {
                let (a, b) = if a.start <= b.start { (a, b) } else { (b, a) };
                out.push(Overlap {
                    a: a.clone(),
                    b: b.clone(),
                    ms,
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Status views.

/// What one node's `baton status --json` says.
#[derive(Clone, Debug)]
struct View {
    node: String,
    leader: Option<String>,
    term: u64,
    is_me: bool,
    alive: BTreeSet<String>,
    /// name → (incarnation, alive), for every member known.
    members: BTreeMap<String, (u64, bool)>,
}

impl View {
    fn parse(v: &Value) -> Option<View> {
        let g = v["groups"]
            .as_array()?
            .iter()
            .find(|g| g["name"] == GROUP)
            .cloned()
            .unwrap_or(Value::Null);
        let mut members = BTreeMap::new();
        for m in v["members"].as_array()? {
            members.insert(
                m["name"].as_str()?.to_string(),
                (m["incarnation"].as_u64()?, m["alive"] == true),
            );
        }
        Some(View {
            node: v["node"].as_str()?.to_string(),
            leader: g["leader"].as_str().map(String::from),
            term: g["term"].as_u64().unwrap_or(0),
            is_me: g["local_is_leader"] == true,
            alive: members
                .iter()
                .filter(|(_, (_, a))| *a)
                .map(|(n, _)| n.clone())
                .collect(),
            members,
        })
    }

    fn short(&self) -> String {
        format!(
            "{}: leader {:?} term {}{} alive {:?}",
            self.node,
            self.leader,
            self.term,
            if self.is_me { " (me)" } else { "" },
            self.alive
        )
    }
}

fn short_views(views: &[Option<View>]) -> String {
    views
        .iter()
        .map(|v| v.as_ref().map_or("(no answer)".to_string(), View::short))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Waits for `child` at most `limit`; kills it after that.
fn output_within(mut child: Child, limit: Duration) -> Option<Output> {
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().ok(),
            Ok(None) if t0.elapsed() < limit => sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The cluster.

/// One node's settings.
#[derive(Clone)]
struct Spec {
    name: String,
    host: usize,
    voters: Vec<String>,
    /// (name, host) of its seeds.
    seeds: Vec<(String, usize)>,
    data_dir: bool,
    failure_timeout_ms: Option<u64>,
    /// `[cluster] backend = "etcd"` with the etcd of this host ([`Cluster::start_etcd`]).
    etcd_host: Option<usize>,
}

/// A running `baton exec` (its process group is SIGKILLed on drop).
struct Running {
    name: String,
    host: usize,
    child: Child,
    /// How it ended, once reaped.
    reaped: Option<std::process::ExitStatus>,
}

impl Running {
    fn kill9(&mut self) {
        // Only while the child is unreaped: after that its pid, and so its group id, may
        // belong to someone else. (What it left in the namespace dies with the namespace.)
        if self.reaped.is_none() {
            let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            // A failed wait still counts as reaped: never signal that group again.
            self.reaped = Some(
                self.child
                    .wait()
                    .unwrap_or_else(|_| std::process::ExitStatus::from_raw(9)),
            );
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait().ok().flatten();
        }
        self.reaped
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Nodes on the hosts of a [`Net`], their files in a scratch directory.
struct Cluster {
    tag: String,
    // Field order is drop order: processes first, then the namespaces.
    procs: Vec<Running>,
    net: Net,
    dir: PathBuf,
    specs: BTreeMap<String, Spec>,
    /// When the cluster started (wall clock), for the summary.
    t0: f64,
    /// Dropped last: the next test may build its network only after this one's is gone.
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.procs.clear();
        if std::thread::panicking() {
            eprintln!(
                "[netns] {}: kept {} (node logs, configs, acting logs)",
                self.tag,
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `n` nodes `n1..nN` on hosts `1..N`, all voters, each seeding all the others.
fn full_specs(n: usize, data_dir: bool) -> Vec<Spec> {
    let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
    (1..=n)
        .map(|i| Spec {
            name: names[i - 1].clone(),
            host: i,
            voters: names.clone(),
            seeds: (1..=n)
                .filter(|j| *j != i)
                .map(|j| (names[j - 1].clone(), j))
                .collect(),
            data_dir,
            failure_timeout_ms: None,
            etcd_host: None,
        })
        .collect()
}

/// The command every node runs while it leads: start / tick / stop lines with wall-clock
/// timestamps (bash's `$EPOCHREALTIME`, no fork per line). `sleep & wait` lets the TERM trap
/// run at once.
fn acting_script(host: usize, acts: &Path) -> String {
    format!(
        "f={f}; h=h{host}; \
         echo \"start $h $BATON_NODE $BATON_TERM $$ $EPOCHREALTIME\" >> $f; \
         trap 'echo \"stop $h $BATON_NODE $BATON_TERM $$ $EPOCHREALTIME\" >> $f; exit 0' TERM; \
         while :; do echo \"tick $h $BATON_NODE $BATON_TERM $$ $EPOCHREALTIME\" >> $f; sleep 0.015 & wait $!; done",
        f = acts.display()
    )
}

impl Cluster {
    fn new(tag: &str, hosts: usize, specs: Vec<Spec>) -> Cluster {
        let serial = serial();
        tools();
        let dir = std::env::temp_dir().join(format!("btn-netns-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cluster.secret"), "netns suite secret\n").unwrap();
        let net = Net::new(hosts);
        let c = Cluster {
            tag: tag.to_string(),
            procs: Vec::new(),
            net,
            dir,
            specs: specs.into_iter().map(|s| (s.name.clone(), s)).collect(),
            t0: now_s(),
            _serial: serial,
        };
        for s in c.specs.values() {
            c.write_config(s, &c.config(&s.name));
        }
        c
    }

    fn config(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    fn write_config(&self, s: &Spec, path: &Path) {
        let q = |v: &[String]| {
            v.iter()
                .map(|x| format!("\"{x}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let seeds: Vec<String> = s
            .seeds
            .iter()
            .map(|(n, h)| format!("{n}@{}:{PORT}", host_ip(*h)))
            .collect();
        let mut text = format!(
            "[node]\nname = \"{}\"\nlisten = \"{}:{PORT}\"\n",
            s.name,
            host_ip(s.host)
        );
        if s.data_dir {
            let d = self.dir.join(format!("data-{}-h{}", s.name, s.host));
            text += &format!("data_dir = \"{}\"\n", d.display());
        }
        text += &format!(
            "\n[cluster]\nname = \"netns\"\nseeds = [{}]\nvoters = [{}]\nsecret_file = \"{}\"\nquorum = \"majority\"\n",
            q(&seeds),
            q(&s.voters),
            self.dir.join("cluster.secret").display()
        );
        if let Some(e) = s.etcd_host {
            text += &format!(
                "backend = \"etcd\"\n\n[etcd]\nendpoints = [\"http://{}:{ETCD_PORT}\"]\nlease_ttl_s = 1\n",
                host_ip(e)
            );
        }
        if let Some(ft) = s.failure_timeout_ms {
            text += &format!("\n[timing]\nfailure_timeout_ms = {ft}\n");
        }
        text += &format!("\n[[group]]\nname = \"{GROUP}\"\npolicy = \"oldest-running\"\n");
        std::fs::write(path, text).unwrap();
    }

    /// Starts a single-member etcd (Debian's `etcd-server`) on host `h`, its data in the
    /// scratch directory, and waits until it answers there.
    fn start_etcd(&mut self, h: usize) {
        let t = tools();
        let etcd = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("etcd not found: install Debian's etcd-server and etcd-client packages");
        let ip = host_ip(h);
        let client = format!("http://{ip}:{ETCD_PORT}");
        let peer = format!("http://{ip}:{}", ETCD_PORT + 1);
        let log = std::fs::File::create(self.dir.join(format!("etcd-h{h}.log"))).unwrap();
        let mut cmd = Command::new(&t.ip);
        cmd.args([
            "netns",
            "exec",
            &host_ns(h),
            etcd,
            "--name",
            "netns",
            "--data-dir",
        ])
        .arg(self.dir.join("etcd-data"))
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("netns={peer}")])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0);
        let child = cmd.spawn().expect("spawn ip netns exec etcd");
        self.procs.push(Running {
            name: "etcd".into(),
            host: h,
            child,
            reaped: None,
        });
        let t0 = Instant::now();
        loop {
            let ok = in_ns(&host_ns(h), Path::new("etcdctl"))
                .env("ETCDCTL_API", "3")
                .args(baton_backend_etcd::local::health_args(&client))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("etcdctl: install Debian's etcd-client package")
                .success();
            if ok {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "etcd on h{h} did not answer within 10 s"
            );
            sleep(Duration::from_millis(100));
        }
    }

    fn acts(&self, host: usize) -> PathBuf {
        self.dir.join(format!("acts-h{host}.log"))
    }

    fn stderr_path(&self, name: &str, host: usize) -> PathBuf {
        self.dir.join(format!("{name}-h{host}.log"))
    }

    /// Starts `baton exec` for node `name` on its host (optionally with another config file
    /// and the wall clock 1 h behind), and waits until it answers `status`.
    fn start_with(&mut self, name: &str, host: usize, config: &Path, clock_behind: bool) {
        let t = tools();
        let stderr = self.stderr_path(name, host);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr)
            .unwrap();
        let mut cmd = Command::new(&t.ip);
        cmd.args(["netns", "exec", &host_ns(host)]);
        if clock_behind {
            // Only the wall clock moves; the command undoes the preload so that its
            // timestamps stay comparable with the other hosts'.
            cmd.arg(&t.faketime)
                .args(["-f", "-1h"])
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        cmd.arg(BATON)
            .args(["exec", "--group", GROUP, "--grace-ms", "2000", "--config"])
            .arg(config)
            .arg("--");
        if clock_behind {
            cmd.args(["env", "-u", "LD_PRELOAD", "-u", "FAKETIME"]);
        }
        cmd.arg(&t.bash)
            .arg("-c")
            .arg(acting_script(host, &self.acts(host)))
            .env("RUST_LOG", "info")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        let child = cmd.spawn().expect("spawn ip netns exec baton exec");
        self.procs.push(Running {
            name: name.to_string(),
            host,
            child,
            reaped: None,
        });
    }

    fn start(&mut self, name: &str) {
        let host = self.specs[name].host;
        let config = self.config(name);
        self.start_with(name, host, &config, false);
        self.wait_answers(name, host, &config);
    }

    fn wait_answers(&mut self, name: &str, host: usize, config: &Path) {
        let t0 = Instant::now();
        while self.status_of(host, config).is_none() {
            if t0.elapsed() > Duration::from_secs(10) {
                panic!(
                    "{name} on h{host} did not answer status within 10 s\n{}",
                    self.logs()
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    fn running_mut(&mut self, name: &str, host: usize) -> Option<&mut Running> {
        self.procs
            .iter_mut()
            .find(|r| r.name == name && r.host == host)
    }

    /// SIGKILLs the process group of node `name` on its host (`baton exec` and what it runs).
    fn kill9(&mut self, name: &str) {
        let host = self.specs[name].host;
        self.kill9_host(name, host);
    }

    /// SIGKILLs the process group of node `name` started on `host`.
    fn kill9_host(&mut self, name: &str, host: usize) {
        if let Some(i) = self
            .procs
            .iter()
            .position(|r| r.name == name && r.host == host)
        {
            let mut r = self.procs.remove(i);
            r.kill9();
        }
    }

    fn status_cmd(&self, host: usize, config: &Path) -> Command {
        let mut c = in_ns(&host_ns(host), Path::new(BATON));
        c.args(["status", "--json", "--timeout-ms", "800", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        c
    }

    fn status_of(&self, host: usize, config: &Path) -> Option<View> {
        let child = self.status_cmd(host, config).spawn().ok()?;
        parse_status(output_within(child, Duration::from_secs(3)))
    }

    /// Every named node's view, asked in parallel.
    fn views(&self, names: &[String]) -> Vec<Option<View>> {
        let children: Vec<Option<Child>> = names
            .iter()
            .map(|n| {
                self.status_cmd(self.specs[n].host, &self.config(n))
                    .spawn()
                    .ok()
            })
            .collect();
        children
            .into_iter()
            .map(|c| c.and_then(|c| parse_status(output_within(c, Duration::from_secs(3)))))
            .collect()
    }

    /// Waits (at most `limit`) until every named node names the same leader (one of them)
    /// and term, the leader says it leads, and every node sees all of them alive. Returns
    /// (leader, term, time taken), or the last views.
    fn agreed(&self, names: &[String], limit: Duration) -> Result<(String, u64, Duration), String> {
        let t0 = Instant::now();
        let mut polls = 0;
        loop {
            let views = self.views(names);
            polls += 1;
            if let Some(l) = agreement(names, &views) {
                return Ok((l.0, l.1, t0.elapsed()));
            }
            if t0.elapsed() >= limit || polls > 2000 {
                return Err(format!(
                    "no agreement within {limit:?} ({polls} polls); last views: {}",
                    short_views(&views)
                ));
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Waits (at most `limit`) until every named node names one leader other than `old`, with
    /// a term above `term`.
    fn new_leader(
        &self,
        names: &[String],
        old: &str,
        term: u64,
        limit: Duration,
    ) -> Result<(String, u64, Duration), String> {
        let t0 = Instant::now();
        let mut polls = 0;
        loop {
            let views = self.views(names);
            polls += 1;
            let first = views[0].as_ref().map(|v| (v.leader.clone(), v.term));
            if let Some((Some(l), t)) = &first
                && l != old
                && *t > term
                && views
                    .iter()
                    .all(|v| v.as_ref().map(|v| (v.leader.clone(), v.term)) == first)
            {
                return Ok((l.clone(), *t, t0.elapsed()));
            }
            if t0.elapsed() >= limit || polls > 2000 {
                return Err(format!(
                    "no new leader (other than {old}, term > {term}) within {limit:?}; last views: {}",
                    short_views(&views)
                ));
            }
            sleep(Duration::from_millis(10));
        }
    }

    fn intervals(&self) -> Vec<Interval> {
        let mut all = Vec::new();
        for h in 1..=self.net.hosts {
            let text = std::fs::read_to_string(self.acts(h)).unwrap_or_default();
            all.extend(parse_acts(&text));
        }
        all.sort_by(|a, b| a.start.total_cmp(&b.start));
        all
    }

    fn names(&self) -> Vec<String> {
        self.specs.keys().cloned().collect()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('n') && name.ends_with(".log") {
                let text = std::fs::read_to_string(&f).unwrap_or_default();
                // The last lines say most; whole logs stay in the kept directory.
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                out += &format!(
                    "---- {name} (last {} lines)\n{}\n",
                    tail.len(),
                    tail.join("\n")
                );
            }
        }
        out
    }

    fn say(&self, msg: &str) {
        eprintln!("[netns] {} +{:.1}s: {msg}", self.tag, now_s() - self.t0);
    }
}

fn parse_status(out: Option<Output>) -> Option<View> {
    let out = out?;
    if !out.status.success() {
        return None;
    }
    View::parse(&serde_json::from_slice(&out.stdout).ok()?)
}

/// (leader, term) when all views agree as [`Cluster::agreed`] requires.
fn agreement(names: &[String], views: &[Option<View>]) -> Option<(String, u64)> {
    let views: Vec<&View> = views.iter().map(Option::as_ref).collect::<Option<_>>()?;
    let first = views.first()?;
    let leader = first.leader.clone()?;
    let all_same = views
        .iter()
        .all(|v| v.leader.as_ref() == Some(&leader) && v.term == first.term);
    let all_alive = views
        .iter()
        .all(|v| names.iter().all(|n| v.alive.contains(n)));
    let leader_leads = views.iter().any(|v| v.node == leader && v.is_me);
    (all_same && all_alive && leader_leads && names.contains(&leader))
        .then_some((leader, first.term))
}

// ---------------------------------------------------------------------------------------
// Isolation runs and their figures.

/// What one fault run measured.
struct RunReport {
    label: String,
    leader: String,
    /// From the fault to the old leader's command ending (stop line or last tick).
    old_stopped_ms: Option<f64>,
    /// From the fault to the first command started on another host.
    new_started_ms: Option<f64>,
    new_leader: Option<String>,
    overlaps: Vec<Overlap>,
    /// From removing the fault to agreement with everyone alive (None: not healed in time).
    heal_ms: Option<f64>,
    heal_error: Option<String>,
}

impl RunReport {
    fn line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
        let max = self.overlaps.iter().map(|o| o.ms).fold(0.0f64, f64::max);
        format!(
            "{}: leader {} -> {}; old stopped after {}, new started after {}; overlaps {} (max {:.0} ms); heal {}",
            self.label,
            self.leader,
            self.new_leader.as_deref().unwrap_or("-"),
            ms(self.old_stopped_ms),
            ms(self.new_started_ms),
            self.overlaps.len(),
            max,
            match (self.heal_ms, &self.heal_error) {
                (Some(h), _) => format!("{h:.0} ms"),
                (None, Some(_)) => format!("NOT within {HEAL:?}"),
                (None, None) => "-".to_string(),
            }
        )
    }
}

/// Overlaps not seen before (keyed by the two pids); remembers them.
fn new_overlaps(c: &Cluster, seen: &mut BTreeSet<(u32, u32)>) -> Vec<Overlap> {
    overlaps(&c.intervals())
        .into_iter()
        .filter(|o| seen.insert(o.key()))
        .collect()
}

/// Applies `fault` to the current leader `leader` (elected in agreement) for `hold`, removes
/// it, waits for the heal, and measures.
fn isolation_run(
    c: &Cluster,
    label: &str,
    leader: &str,
    fault: &Fault,
    hold: Duration,
    seen: &mut BTreeSet<(u32, u32)>,
) -> RunReport {
    let leader_host = format!("h{}", c.specs[leader].host);
    c.say(&format!("{label}: {} (leader {leader})", fault.what));
    let t_fault = now_s();
    let delayer = match fault.apply() {
        Ok(d) => d,
        Err(e) => {
            let _ = fault.remove();
            panic!("cannot apply fault {}: {e}", fault.what);
        }
    };
    sleep(hold);
    if let Err(e) = fault.remove() {
        panic!("cannot remove fault {}: {e}", fault.what);
    }
    if let Some(d) = delayer {
        let delayed = d.finish();
        c.say(&format!("  the delayer held {delayed} packets"));
        assert!(
            delayed > 0,
            "the delayer saw no packet: the fault did not happen"
        );
    }
    let healed = c.agreed(&c.names(), HEAL);
    // Let the last ticks and stop lines land before reading the logs.
    sleep(Duration::from_millis(100));
    let ivs = c.intervals();
    let old_stopped_ms = ivs
        .iter()
        .filter(|i| i.host == leader_host && i.start < t_fault && i.end >= t_fault - 0.05)
        .map(|i| i.end)
        .fold(None, |m: Option<f64>, e| Some(m.map_or(e, |m| m.max(e))))
        // Still ticking: it did not stop.
        .filter(|e| *e < now_s() - 0.08)
        .map(|e| (e - t_fault) * 1000.0);
    let first_new = ivs
        .iter()
        .filter(|i| i.host != leader_host && i.start >= t_fault)
        .min_by(|a, b| a.start.total_cmp(&b.start));
    let report = RunReport {
        label: label.to_string(),
        leader: leader.to_string(),
        old_stopped_ms,
        new_started_ms: first_new.map(|i| (i.start - t_fault) * 1000.0),
        new_leader: first_new.map(|i| i.node.clone()),
        overlaps: new_overlaps(c, seen),
        heal_ms: healed.as_ref().ok().map(|h| h.2.as_secs_f64() * 1000.0),
        heal_error: healed.err(),
    };
    c.say(&report.line());
    for o in &report.overlaps {
        c.say(&format!("  OVERLAP {}", o.describe()));
    }
    if let Some(e) = &report.heal_error {
        c.say(&format!("  not healed: {e}"));
    }
    report
}

/// The overlaps of leaderships not in `seen` yet (now added to it), each said and pushed to
/// `failures` as `{prefix}two leaders at once for …`.
fn overlaps_as_failures(
    c: &Cluster,
    seen: &mut BTreeSet<(u32, u32)>,
    prefix: &str,
    failures: &mut Vec<String>,
) -> Vec<Overlap> {
    let ovs = new_overlaps(c, seen);
    for o in &ovs {
        c.say(&format!("  OVERLAP {}", o.describe()));
        failures.push(format!("{prefix}two leaders at once for {}", o.describe()));
    }
    ovs
}

/// Prints the runs' figures and returns the failures.
/// Records run `r`; when it healed, waits for the nodes to agree and returns their leader
/// (`None`: the cluster did not heal, stop making runs).
fn healed_leader(c: &Cluster, r: RunReport, reports: &mut Vec<RunReport>) -> Option<String> {
    let healed = r.heal_ms.is_some();
    reports.push(r);
    if !healed {
        return None;
    }
    c.agreed(&c.names(), HEAL).ok().map(|(l, _, _)| l)
}

/// Fails the test with every failure and the nodes' logs, when there is any.
fn assert_no_failures(c: &Cluster, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n  {}\n{}",
        failures.len(),
        failures.join("\n  "),
        c.logs()
    );
}

fn summarize(c: &Cluster, reports: &[RunReport]) -> Vec<String> {
    let mut failures = Vec::new();
    let overlapping = reports.iter().filter(|r| !r.overlaps.is_empty()).count();
    let max_overlap = reports
        .iter()
        .flat_map(|r| r.overlaps.iter().map(|o| o.ms))
        .fold(0.0f64, f64::max);
    let heals: Vec<f64> = reports.iter().filter_map(|r| r.heal_ms).collect();
    let news: Vec<f64> = reports.iter().filter_map(|r| r.new_started_ms).collect();
    let range = |v: &[f64]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(0.0f64, f64::max);
            format!("{lo:.0}–{hi:.0} ms")
        }
    };
    c.say(&format!(
        "SUMMARY {} runs: {} with overlapping leaders (max {:.0} ms); new leader after {}; healed {} of {} within {HEAL:?} ({})",
        reports.len(),
        overlapping,
        max_overlap,
        range(&news),
        heals.len(),
        reports.len(),
        range(&heals)
    ));
    for r in reports {
        for o in &r.overlaps {
            failures.push(format!(
                "{}: two leaders at once for {}",
                r.label,
                o.describe()
            ));
        }
        if let Some(e) = &r.heal_error {
            failures.push(format!("{}: {e}", r.label));
        }
    }
    failures
}

/// kill -9 of the current leader's `baton exec`: the others must elect a new leader, whose
/// command starts. Returns the failure, if any.
fn kill_leader_check(c: &mut Cluster, seen: &mut BTreeSet<(u32, u32)>) -> Option<String> {
    let names = c.names();
    let views = c.views(&names);
    // The leader most nodes name (the cluster may not have healed).
    let mut votes: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for v in views.iter().flatten() {
        if let Some(l) = &v.leader {
            *votes.entry((l.clone(), v.term)).or_default() += 1;
        }
    }
    let Some(((leader, term), _)) = votes.into_iter().max_by_key(|(_, n)| *n) else {
        return Some(format!(
            "kill -9 check: no leader to kill; views: {}",
            short_views(&views)
        ));
    };
    let survivors: Vec<String> = names.iter().filter(|n| **n != leader).cloned().collect();
    let leader_host = format!("h{}", c.specs[&leader].host);
    c.say(&format!("kill -9 of the leader {leader} (term {term})"));
    let t_kill = now_s();
    c.kill9(&leader);
    let r = c.new_leader(&survivors, &leader, term, Duration::from_secs(5));
    sleep(Duration::from_millis(200));
    let started = c
        .intervals()
        .into_iter()
        .filter(|i| i.host != leader_host && i.start >= t_kill)
        .min_by(|a, b| a.start.total_cmp(&b.start));
    let extra = new_overlaps(c, seen);
    match (&r, &started) {
        (Ok((l, t, took)), Some(i)) => c.say(&format!(
            "after kill -9: {l} leads (term {t}), agreed after {:.0} ms, its command started {:.0} ms after the kill",
            took.as_secs_f64() * 1000.0,
            (i.start - t_kill) * 1000.0
        )),
        _ => c.say(&format!("after kill -9: {r:?}, command started: {started:?}")),
    }
    if !extra.is_empty() {
        return Some(format!(
            "kill -9 check: overlapping leaders: {}",
            extra
                .iter()
                .map(Overlap::describe)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    match (r, started) {
        (Ok(_), Some(_)) => None,
        (Err(e), _) => Some(format!("kill -9 of the leader {leader}: {e}")),
        (Ok(_), None) => Some(format!(
            "kill -9 of the leader {leader}: a new leader was agreed but no command started on another host"
        )),
    }
}

/// Starts a 3-node cluster, waits for agreement.
fn started_cluster(tag: &str, specs: Vec<Spec>, hosts: usize) -> (Cluster, String, u64) {
    let mut c = Cluster::new(tag, hosts, specs);
    for n in c.names() {
        c.start(&n);
    }
    let (l, t, took) = c
        .agreed(&c.names(), Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("the cluster did not form: {e}\n{}", c.logs()));
    c.say(&format!(
        "formed: {l} leads (term {t}), agreed {:.0} ms after the last start",
        took.as_secs_f64() * 1000.0
    ));
    // The harness measures what the commands write: the leader's must be running and ticking
    // under the agreed term, or every later "no overlap" would prove nothing.
    let host = format!("h{}", c.specs[&l].host);
    let t0 = Instant::now();
    loop {
        let ticking = c
            .intervals()
            .iter()
            .any(|i| i.host == host && i.term == t && !i.stopped && i.end - i.start > 0.03);
        if ticking {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the leader {l}'s command is not running (term {t}): the harness cannot measure\n{}",
            c.logs()
        );
        sleep(Duration::from_millis(20));
    }
    (c, l, t)
}

/// `runs` isolations of the leader made by `fault_for(cluster, leader, run)`, then a kill -9
/// of the leader; fails with every failure found.
fn isolation_suite(
    tag: &str,
    runs: usize,
    hold: Duration,
    fault_for: impl Fn(&Cluster, &str) -> Fault,
) {
    let (mut c, mut leader, _) = started_cluster(tag, full_specs(3, true), 3);
    let mut seen = BTreeSet::new();
    let mut reports = Vec::new();
    for run in 1..=runs {
        let fault = fault_for(&c, &leader);
        let r = isolation_run(
            &c,
            &format!("{tag} run {run}/{runs}"),
            &leader,
            &fault,
            hold,
            &mut seen,
        );
        let healed = r.heal_ms.is_some();
        reports.push(r);
        if !healed {
            c.say("the cluster did not heal: no further runs on it");
            break;
        }
        // The leader now (agreed, as the heal checked).
        match c.agreed(&c.names(), HEAL) {
            Ok((l, _, _)) => leader = l,
            Err(e) => {
                c.say(&format!("lost agreement after the heal: {e}"));
                break;
            }
        }
    }
    let mut failures = summarize(&c, &reports);
    if let Some(f) = kill_leader_check(&mut c, &mut seen) {
        failures.push(f);
    }
    if reports.len() < runs {
        failures.push(format!(
            "only {} of {runs} runs could be made (no heal)",
            reports.len()
        ));
    }
    assert!(
        failures.is_empty(),
        "{tag}: {} failure(s):\n  {}\n{}",
        failures.len(),
        failures.join("\n  "),
        c.logs()
    );
}

/// How a fault of [`drop_icmp_reject_one_way_partition_and_loss`] cuts the leader's link on
/// the router.
#[derive(Clone, Copy)]
enum Cut {
    /// Both directions: the iptables matches, then the action.
    Both(&'static str, &'static str),
    /// DROP in one direction: `-s` (what the leader sends) or `-d` (what it receives).
    OneWay(&'static str),
}

impl Cut {
    /// The fault `what`, this cut of the link of `c`'s leader `l`.
    fn fault(self, c: &Cluster, l: &str, what: &str) -> Fault {
        let host = c.specs[l].host;
        match self {
            Cut::Both(matches, action) => Fault::new(what).router_both(host, matches, action),
            Cut::OneWay(dir) => Fault::new(what).rule(
                ROUTER,
                "FORWARD",
                &format!("{dir} {} -j DROP", host_ip(host)),
            ),
        }
    }
}

fn follower(c: &Cluster, leader: &str) -> String {
    c.names()
        .into_iter()
        .find(|n| n != leader)
        .expect("a follower")
}

// ---------------------------------------------------------------------------------------
// 1. REJECT --reject-with tcp-reset (21 isolation runs in all).

const RESET: &str = "REJECT --reject-with tcp-reset";

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run (see docs/RELIABILITY.md)"]
fn reject_tcp_reset_on_the_router_both_directions() {
    isolation_suite("reset-router", 6, Duration::from_millis(1500), |c, l| {
        Fault::new("REJECT tcp-reset on the router, both directions").router_both(
            c.specs[l].host,
            "-p tcp",
            RESET,
        )
    });
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run (see docs/RELIABILITY.md)"]
fn reject_tcp_reset_on_one_link() {
    isolation_suite("reset-link", 5, Duration::from_millis(1500), |c, l| {
        let f = follower(c, l);
        let (li, fi) = (host_ip(c.specs[l].host), host_ip(c.specs[&f].host));
        Fault::new(format!(
            "REJECT tcp-reset on the router, link {l}<->{f} only"
        ))
        .rule(
            ROUTER,
            "FORWARD",
            &format!("-s {li} -d {fi} -p tcp -j {RESET}"),
        )
        .rule(
            ROUTER,
            "FORWARD",
            &format!("-s {fi} -d {li} -p tcp -j {RESET}"),
        )
    });
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run (see docs/RELIABILITY.md)"]
fn reject_tcp_reset_in_one_followers_output_chain() {
    isolation_suite("reset-output", 5, Duration::from_millis(1500), |c, l| {
        let f = follower(c, l);
        let li = host_ip(c.specs[l].host);
        Fault::new(format!(
            "REJECT tcp-reset in {f}'s OUTPUT chain, towards {l}"
        ))
        .rule(
            &host_ns(c.specs[&f].host),
            "OUTPUT",
            &format!("-d {li} -p tcp -j {RESET}"),
        )
    });
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run (see docs/RELIABILITY.md)"]
fn reject_tcp_reset_stateful_new_connections_only() {
    isolation_suite("reset-stateful", 5, Duration::from_millis(1500), |c, l| {
        let mut f = Fault::new(
            "stateful router firewall: REJECT tcp-reset for NEW connections of the leader, state flushed",
        )
        .router_both(c.specs[l].host, "-p tcp -m conntrack --ctstate NEW", RESET);
        f.flush_conntrack = true;
        f
    });
}

// ---------------------------------------------------------------------------------------
// 2. DROP, ICMP rejects, one-way partitions, random loss.

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run (see docs/RELIABILITY.md)"]
fn drop_icmp_reject_one_way_partition_and_loss() {
    let (mut c, mut leader, _) = started_cluster("drop-icmp", full_specs(3, true), 3);
    let mut seen = BTreeSet::new();
    let mut reports = Vec::new();
    let faults = [
        (
            "drop",
            "DROP on the router, both directions",
            Cut::Both("", "DROP"),
        ),
        (
            "icmp",
            "REJECT icmp-port-unreachable on the router, both directions",
            Cut::Both("", "REJECT --reject-with icmp-port-unreachable"),
        ),
        (
            "one-way-out",
            "one-way partition: DROP what the leader sends",
            Cut::OneWay("-s"),
        ),
        (
            "one-way-in",
            "one-way partition: DROP what the leader receives",
            Cut::OneWay("-d"),
        ),
        (
            "loss",
            "30 % random loss both ways on the leader's link (iptables statistic)",
            Cut::Both("-m statistic --mode random --probability 0.3", "DROP"),
        ),
    ];
    'outer: for round in 1..=2 {
        for (name, what, cut) in faults {
            let fault = cut.fault(&c, &leader, what);
            let hold = if name == "loss" {
                Duration::from_secs(3)
            } else {
                Duration::from_millis(1500)
            };
            let r = isolation_run(
                &c,
                &format!("{name} round {round}"),
                &leader,
                &fault,
                hold,
                &mut seen,
            );
            match healed_leader(&c, r, &mut reports) {
                Some(l) => leader = l,
                None => break 'outer,
            }
        }
    }
    let mut failures = summarize(&c, &reports);
    if let Some(f) = kill_leader_check(&mut c, &mut seen) {
        failures.push(f);
    }
    if reports.len() < 2 * faults.len() {
        failures.push(format!(
            "only {} of {} runs could be made",
            reports.len(),
            2 * faults.len()
        ));
    }
    assert_no_failures(&c, &failures);
}

/// DROP for longer than TCP's retransmission backoff takes to reach seconds: a heal must not
/// wait for a stale connection's next retransmission.
#[test]
#[ignore = "needs root and network namespaces: run by .ci/run (see docs/RELIABILITY.md)"]
fn a_long_drop_heals_within_2s_too() {
    let (c, leader, _) = started_cluster("long-drop", full_specs(3, true), 3);
    let mut seen = BTreeSet::new();
    let fault = Fault::new("DROP on the router, both directions, for 8 s").router_both(
        c.specs[&leader].host,
        "",
        "DROP",
    );
    let r = isolation_run(
        &c,
        "long drop",
        &leader,
        &fault,
        Duration::from_secs(8),
        &mut seen,
    );
    let failures = summarize(&c, &[r]);
    assert_no_failures(&c, &failures);
}

// ---------------------------------------------------------------------------------------
// 3. tc netem: delay and loss on the leader's link.

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run (see docs/RELIABILITY.md)"]
fn delay_and_loss_on_the_leaders_link() {
    let (c, mut leader, _) = started_cluster("delay-loss", full_specs(3, true), 3);
    // tc netem where the kernel has it; else the same delays from the suite's NFQUEUE delayer
    // in the router and the same loss from iptables' statistic match (said in the output).
    let netem = netem_works();
    match &netem {
        Ok(()) => c.say("delay and loss made with tc netem"),
        Err(e) => c.say(&format!(
            "tc netem does not work here ({e}: the kernel lacks sch_netem): delay made by the suite's NFQUEUE delayer in the router, loss by iptables -m statistic"
        )),
    }
    let mut seen = BTreeSet::new();
    let mut reports = Vec::new();
    // Every packet from and to the leader: (delay each way, loss each way in %).
    let fault = |c: &Cluster, l: &str, what: &str, delay_ms: u64, loss: u32| {
        let h = c.specs[l].host;
        let what = if what.is_empty() {
            String::new()
        } else {
            format!(" ({what})")
        };
        let mut f = Fault::new(format!(
            "{delay_ms} ms delay and {loss} % loss each way on {l}'s link{what}"
        ));
        if netem.is_ok() {
            // Both ends of the leader's link: its eth0 and the router's side of the veth.
            let mut args = String::new();
            if delay_ms > 0 {
                args += &format!("delay {delay_ms}ms ");
            }
            if loss > 0 {
                args += &format!("loss {loss}%");
            }
            f.netem.push((host_ns(h), "eth0".into(), words(&args)));
            f.netem.push((ROUTER.into(), router_if(h), words(&args)));
        } else {
            if delay_ms > 0 {
                f.router_delay = Some(Duration::from_millis(delay_ms));
                f = f.router_both(h, "", &format!("NFQUEUE --queue-num {DELAY_QUEUE}"));
            }
            if loss > 0 {
                // Inserted last, so matched first: a lost packet is never delayed.
                let p = f64::from(loss) / 100.0;
                f = f.router_both(
                    h,
                    &format!("-m statistic --mode random --probability {p}"),
                    "DROP",
                );
            }
        }
        f
    };
    let cases = [
        ("delay 100", "nothing should change", 100, 0),
        ("delay 200", "round trips beyond the lease's budget", 200, 0),
        ("loss 20", "", 0, 20),
        ("delay 50 + loss 10", "", 50, 10),
    ];
    for (label, what, delay_ms, loss) in cases {
        let fault = fault(&c, &leader, what, delay_ms, loss);
        let r = isolation_run(
            &c,
            label,
            &leader,
            &fault,
            Duration::from_secs(3),
            &mut seen,
        );
        match healed_leader(&c, r, &mut reports) {
            Some(l) => leader = l,
            None => break,
        }
    }
    let failures = summarize(&c, &reports);
    assert_no_failures(&c, &failures);
}

// ---------------------------------------------------------------------------------------
// 4. A duplicate node name.

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run (see docs/RELIABILITY.md)"]
fn duplicate_name_is_refused_and_the_original_keeps_its_role() {
    // Three nodes on h1..h3; the copy comes up on h4.
    let (mut c, leader, term) = started_cluster("dup-name", full_specs(3, true), 4);
    let mut seen = BTreeSet::new();
    let orig_host = c.specs[&leader].host;
    let mut copy = c.specs[&leader].clone();
    copy.host = 4;
    let copy_config = c.dir.join(format!("{leader}-copy.toml"));
    c.write_config(&copy, &copy_config);
    let orig_addr = format!("{}:{PORT}", host_ip(orig_host));
    let copy_addr = format!("{}:{PORT}", host_ip(4));
    c.say(&format!(
        "starting a second {leader} on h4 ({copy_addr}); the original is on h{orig_host} ({orig_addr})"
    ));
    let t_dup = now_s();
    c.start_with(&leader, 4, &copy_config, false);
    // It must give up (exit non-zero) on its own.
    let t0 = Instant::now();
    let mut exit = None;
    while t0.elapsed() < Duration::from_secs(10) {
        if let Some(st) = c.running_mut(&leader, 4).and_then(Running::exited) {
            exit = Some(st);
            break;
        }
        sleep(Duration::from_millis(20));
    }
    let exit_ms = t0.elapsed().as_secs_f64() * 1000.0;
    // Watch a little longer for a change of leader among the originals.
    sleep(Duration::from_millis(1000));
    let names = c.names();
    let views = c.views(&names);
    let stderr = std::fs::read_to_string(c.stderr_path(&leader, 4)).unwrap_or_default();
    c.kill9_host(&leader, 4);
    sleep(Duration::from_millis(100));
    let mut failures = Vec::new();
    let ovs = overlaps_as_failures(&c, &mut seen, "", &mut failures);
    let later_starts: Vec<Interval> = c
        .intervals()
        .into_iter()
        .filter(|i| i.start >= t_dup)
        .collect();
    match exit {
        Some(st) if !st.success() => {
            c.say(&format!("the copy exited after {exit_ms:.0} ms ({st})"))
        }
        Some(st) => failures.push(format!("the copy exited successfully ({st}); it must fail")),
        None => failures.push("the copy was still running 10 s after it started".to_string()),
    }
    for needle in [leader.as_str(), orig_addr.as_str(), copy_addr.as_str()] {
        if exit.is_some() && !stderr.contains(needle) {
            failures.push(format!("the copy's error output does not name {needle:?}"));
        }
    }
    if !later_starts.is_empty() {
        failures.push(format!(
            "commands started after the copy came up (the original must keep its role): {later_starts:?}"
        ));
    }
    match agreement(&names, &views) {
        Some((l, t)) if l == leader && t == term => {
            c.say(&format!("the original {leader} still leads (term {t})"))
        }
        other => failures.push(format!(
            "the original {leader} (term {term}) does not keep its role: agreement {other:?}; views {}",
            short_views(&views)
        )),
    }
    c.say(&format!(
        "SUMMARY duplicate name: overlaps {} (max {:.0} ms), copy exit {:?}, starts after the copy {}",
        ovs.len(),
        ovs.iter().map(|o| o.ms).fold(0.0f64, f64::max),
        exit.map(|s| s.to_string()),
        later_starts.len()
    ));
    assert!(
        failures.is_empty(),
        "{} failure(s):\n  {}\n---- the copy's output:\n{stderr}\n{}",
        failures.len(),
        failures.join("\n  "),
        c.logs()
    );
}

// ---------------------------------------------------------------------------------------
// 5. Mismatched voters and mismatched timings.

/// Polls who claims to lead (local_is_leader) for `how_long`; returns the largest set seen at
/// once.
fn most_claimed_leaders(c: &Cluster, how_long: Duration) -> BTreeSet<String> {
    let names = c.names();
    let t0 = Instant::now();
    let mut most = BTreeSet::new();
    let mut polls = 0;
    while t0.elapsed() < how_long && polls < 1000 {
        polls += 1;
        let claimed: BTreeSet<String> = c
            .views(&names)
            .into_iter()
            .flatten()
            .filter(|v| v.is_me)
            .map(|v| v.node)
            .collect();
        if claimed.len() > most.len() {
            most = claimed;
        }
        sleep(Duration::from_millis(50));
    }
    most
}

/// Starts every node without requiring it to stay up (a node may refuse a mismatched
/// configuration by exiting): waits, bounded, until each answers `status` or has exited, and
/// says which exited.
fn start_all_tolerating_exits(c: &mut Cluster) {
    for n in c.names() {
        let host = c.specs[&n].host;
        let config = c.config(&n);
        c.start_with(&n, host, &config, false);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if c.status_of(host, &config).is_some() {
                break;
            }
            if let Some(st) = c.running_mut(&n, host).and_then(Running::exited) {
                c.say(&format!("{n} exited at start ({st})"));
                break;
            }
            sleep(Duration::from_millis(20));
        }
    }
}

/// Starts the misconfigured cluster `tag` (see [`start_all_tolerating_exits`]) and says the
/// most leaders it claimed at once over `window` before `what`: the cluster, the overlaps seen
/// so far (none) and those leaders.
fn misconfigured(
    tag: &str,
    hosts: usize,
    specs: Vec<Spec>,
    window: Duration,
    what: &str,
) -> (Cluster, BTreeSet<(u32, u32)>, BTreeSet<String>) {
    let mut c = Cluster::new(tag, hosts, specs);
    start_all_tolerating_exits(&mut c);
    let before = most_claimed_leaders(&c, window);
    c.say(&format!(
        "before {what}, most leaders claimed at once: {before:?}"
    ));
    (c, BTreeSet::new(), before)
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run (see docs/RELIABILITY.md)"]
fn mismatched_voters_and_mismatched_timings_never_give_two_leaders() {
    let mut failures = Vec::new();

    // (a) {n1, n2} with voters [n1, n2, n3]; {n3, n4, n5} with voters [n3, n4, n5].
    {
        let mut specs = full_specs(5, true);
        for s in &mut specs {
            s.voters = if s.host <= 2 {
                vec!["n1".into(), "n2".into(), "n3".into()]
            } else {
                vec!["n3".into(), "n4".into(), "n5".into()]
            };
        }
        let (c, mut seen, before) =
            misconfigured("voters", 5, specs, Duration::from_secs(3), "the partition");
        let mut fault = Fault::new("partition {n1,n2} | {n3,n4,n5} (DROP on the router)");
        for a in 1..=2 {
            for b in 3..=5 {
                for (s, d) in [(a, b), (b, a)] {
                    fault = fault.rule(
                        ROUTER,
                        "FORWARD",
                        &format!("-s {} -d {} -j DROP", host_ip(s), host_ip(d)),
                    );
                }
            }
        }
        c.say(&fault.what);
        let _no_delay = fault.apply().expect("partition");
        let during = most_claimed_leaders(&c, Duration::from_secs(3));
        fault.remove().expect("heal");
        c.say(&format!(
            "during the partition, most leaders claimed at once: {during:?}"
        ));
        let after = most_claimed_leaders(&c, Duration::from_secs(2));
        let ovs = overlaps_as_failures(&c, &mut seen, "mismatched voters: ", &mut failures);
        c.say(&format!(
            "SUMMARY mismatched voters: overlaps {} (max {:.0} ms); leaders claimed at once: before {}, during {}, after {}",
            ovs.len(),
            ovs.iter().map(|o| o.ms).fold(0.0f64, f64::max),
            before.len(),
            during.len(),
            after.len()
        ));
        if !failures.is_empty() {
            eprintln!("{}", c.logs());
        }
    }

    // (b) n1 with failure_timeout_ms = 5000 among peers with 500, isolated with DROP.
    {
        let mut specs = full_specs(3, true);
        specs[0].failure_timeout_ms = Some(5000);
        let (c, mut seen, before) =
            misconfigured("timings", 3, specs, Duration::from_secs(6), "isolating n1");
        let fault =
            Fault::new("DROP on the router, both directions, of n1 (failure_timeout_ms = 5000)")
                .router_both(1, "", "DROP");
        c.say(&fault.what);
        let t_fault = now_s();
        let _no_delay = fault.apply().expect("isolate");
        let during = most_claimed_leaders(&c, Duration::from_secs(6));
        fault.remove().expect("heal");
        let after = most_claimed_leaders(&c, Duration::from_secs(2));
        sleep(Duration::from_millis(100));
        let ovs = overlaps_as_failures(&c, &mut seen, "mismatched timings: ", &mut failures);
        let first_new = c
            .intervals()
            .into_iter()
            .filter(|i| i.host != "h1" && i.start >= t_fault)
            .map(|i| (i.start - t_fault) * 1000.0)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
        c.say(&format!(
            "SUMMARY mismatched timings: overlaps {} (max {:.0} ms); new leader after {:?} ms; leaders claimed at once: before {}, during {}, after {}",
            ovs.len(),
            ovs.iter().map(|o| o.ms).fold(0.0f64, f64::max),
            first_new.map(|v| v.round()),
            before.len(),
            during.len(),
            after.len()
        ));
        if !ovs.is_empty() {
            eprintln!("{}", c.logs());
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------
// 6. A restart with the wall clock 1 h behind, with and without data_dir.

/// kill -9 of `node`, restarted at once (with the wall clock 1 h behind if `behind`); waits
/// until it has rejoined: it answers and names the cluster's leader, sees everyone alive, and
/// every other node names the same leader and sees it alive with the incarnation it reports
/// for itself. Returns the time from the restart, or the last views.
fn restart_and_rejoin(c: &mut Cluster, node: &str, behind: bool) -> Result<Duration, String> {
    let host = c.specs[node].host;
    let config = c.config(node);
    c.kill9(node);
    let t0 = Instant::now();
    c.start_with(node, host, &config, behind);
    let others: Vec<String> = c.names().into_iter().filter(|n| n != node).collect();
    let mut last = String::new();
    let mut polls = 0;
    while t0.elapsed() < HEAL && polls < 500 {
        polls += 1;
        let me = c.status_of(host, &config);
        let views = c.views(&others);
        let inc = me.as_ref().and_then(|v| v.members.get(node).map(|m| m.0));
        let leader_now = views.iter().flatten().next().and_then(|v| v.leader.clone());
        let ok = me.as_ref().is_some_and(|m| {
            m.leader.is_some()
                && m.leader == leader_now
                && others.iter().all(|o| m.alive.contains(o))
        }) && views.iter().all(|v| {
            v.as_ref().is_some_and(|v| {
                v.leader == leader_now && v.members.get(node) == inc.map(|i| (i, true)).as_ref()
            })
        });
        if ok {
            return Ok(t0.elapsed());
        }
        last = format!(
            "restarted: {}; others: {}",
            me.map_or("(no answer)".to_string(), |m| m.short()),
            short_views(&views)
        );
        sleep(Duration::from_millis(10));
    }
    Err(format!("not rejoined within {HEAL:?}: {last}"))
}

#[test]
#[ignore = "needs root and network namespaces: run by .ci/run (see docs/RELIABILITY.md)"]
fn restart_with_the_wall_clock_an_hour_behind_rejoins() {
    let mut failures = Vec::new();
    // A fresh cluster for each: every node with a data_dir, then every node without.
    for data_dir in [true, false] {
        let how = if data_dir { "with" } else { "without" };
        let (mut c, leader, _) =
            started_cluster(&format!("clock-{how}-data-dir"), full_specs(3, data_dir), 3);
        let mut seen = BTreeSet::new();
        let node = follower(&c, &leader);
        let mut figures = Vec::new();
        // First with the true clock (the same check must pass), then 1 h behind.
        for behind in [false, true] {
            let clock = if behind {
                "the wall clock 1 h behind"
            } else {
                "the true clock"
            };
            c.say(&format!(
                "kill -9 of {node} (a follower), restarted at once with {clock}, {how} data_dir"
            ));
            match restart_and_rejoin(&mut c, &node, behind) {
                Ok(d) => {
                    let ms = d.as_secs_f64() * 1000.0;
                    c.say(&format!("{node} rejoined {ms:.0} ms after its restart"));
                    figures.push(format!("{clock}: rejoined after {ms:.0} ms"));
                }
                Err(e) => {
                    c.say(&format!("{node} did NOT rejoin: {e}"));
                    figures.push(format!("{clock}: NOT rejoined within {HEAL:?}"));
                    failures.push(format!(
                        "{node} restarted with {clock}, {how} data_dir: {e}"
                    ));
                    eprintln!("{}", c.logs());
                    break;
                }
            }
        }
        sleep(Duration::from_millis(100));
        let ovs = new_overlaps(&c, &mut seen);
        for o in &ovs {
            failures.push(format!(
                "{how} data_dir: two leaders at once for {}",
                o.describe()
            ));
        }
        c.say(&format!(
            "SUMMARY restart {how} data_dir: {}; overlaps {}",
            figures.join("; "),
            ovs.len()
        ));
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------
// The harness's own checks (run with the normal tests: no root needed).

#[test]
fn acting_intervals_and_overlaps_are_computed_from_the_logs() {
    let text = "start h1 n1 1 10 100.000\ntick h1 n1 1 10 100.015\ntick h1 n1 1 10 100.400\n\
                start h2 n2 2 20 100.300\ntick h2 n2 2 20 100.315\nstop h2 n2 2 20 100.350\n\
                tick h2 n2 2 20 100.990\nstart h1 n1 3 11 101.000\nstop h1 n1 3 11 101.\ntick h1";
    let ivs = parse_acts(text);
    assert_eq!(ivs.len(), 3);
    assert_eq!(
        (ivs[0].start, ivs[0].end, ivs[0].stopped),
        (100.0, 100.4, false)
    );
    // A tick after the stop line (the trap ran while a line was being written) does not
    // extend the interval.
    assert_eq!(
        (ivs[2].start, ivs[2].end, ivs[2].stopped),
        (100.3, 100.35, true)
    );
    let ovs = overlaps(&ivs);
    assert_eq!(ovs.len(), 1, "{ovs:?}");
    assert_eq!(ovs[0].a.pid, 10);
    assert!((ovs[0].ms - 50.0).abs() < 1e-6);
    // Same host: never an overlap (one command after the other).
    let same = parse_acts(
        "start h1 n1 1 1 1.0\ntick h1 n1 1 1 2.0\nstart h1 n1 2 2 1.5\ntick h1 n1 2 2 1.6\n",
    );
    assert!(overlaps(&same).is_empty());
}

#[test]
fn agreement_needs_one_leader_one_term_and_everyone_alive() {
    let v = |node: &str, leader: Option<&str>, term: u64, alive: &[&str]| {
        Some(View {
            node: node.into(),
            leader: leader.map(String::from),
            term,
            is_me: leader == Some(node),
            alive: alive.iter().map(|s| s.to_string()).collect(),
            members: BTreeMap::new(),
        })
    };
    let names: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    let all = ["a", "b"];
    assert_eq!(
        agreement(
            &names,
            &[v("a", Some("a"), 2, &all), v("b", Some("a"), 2, &all)]
        ),
        Some(("a".into(), 2))
    );
    assert_eq!(
        agreement(
            &names,
            &[v("a", Some("a"), 2, &all), v("b", Some("a"), 3, &all)]
        ),
        None
    );
    assert_eq!(
        agreement(
            &names,
            &[v("a", Some("a"), 2, &all), v("b", Some("a"), 2, &["b"])]
        ),
        None
    );
    assert_eq!(agreement(&names, &[v("a", Some("a"), 2, &all), None]), None);
}

// ---------------------------------------------------------------------------------------
// etcd in its own namespace (`[cluster] backend = "etcd"`, docs/ETCD.md).

/// Three `baton exec` nodes on hosts 1–3 hold their elections in an etcd on host 4. The
/// leader's host is cut off from etcd's (DROP both ways on the router) while baton's
/// transport between the nodes stays up, so nobody can prove it dead: it must stop its command
/// before its lease can expire (its acting deadline), and only then may another node's start
/// — no two commands at once, in any of the runs — and after the heal every node agrees
/// again.
#[test]
#[ignore = "needs root and network namespaces: run by .ci/run (see docs/RELIABILITY.md)"]
fn etcd_in_its_own_namespace_a_leader_cut_off_from_it_never_overlaps_the_next() {
    let specs = full_specs(3, false)
        .into_iter()
        .map(|s| Spec {
            etcd_host: Some(4),
            ..s
        })
        .collect();
    let mut c = Cluster::new("etcd-cut", 4, specs);
    c.start_etcd(4);
    for n in c.names() {
        c.start(&n);
    }
    let (mut leader, mut term, _) = c
        .agreed(&c.names(), Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("the cluster did not form on etcd: {e}\n{}", c.logs()));
    c.say(&format!("formed on etcd: {leader} leads (token {term})"));
    let mut failures = Vec::new();
    for run in 1..=3 {
        let h = c.specs[&leader].host;
        let fault = Fault::new(format!("the leader {leader} (h{h}) cut off from etcd (h4)"))
            .rule(
                ROUTER,
                "FORWARD",
                &format!("-s {} -d {} -j DROP", host_ip(h), host_ip(4)),
            )
            .rule(
                ROUTER,
                "FORWARD",
                &format!("-s {} -d {} -j DROP", host_ip(4), host_ip(h)),
            );
        let cut = now_s();
        let _delayer = fault.apply().unwrap();
        let others: Vec<String> = c.names().into_iter().filter(|n| *n != leader).collect();
        let moved = c.new_leader(&others, &leader, term, Duration::from_secs(6));
        sleep(Duration::from_millis(1000));
        fault.remove().unwrap();
        let healed = c.agreed(&c.names(), Duration::from_secs(6));
        match (&moved, &healed) {
            (Ok((l, t, took)), Ok((hl, ht, htook))) => c.say(&format!(
                "run {run}: {l} leads (token {t}) {:.0} ms after the cut; healed: {hl} leads (token {ht}) {:.0} ms after",
                took.as_secs_f64() * 1000.0,
                htook.as_secs_f64() * 1000.0
            )),
            _ => failures.push(format!("run {run}: moved {moved:?}, healed {healed:?}")),
        }
        // The cut-off leader's command ended within its lease (1 s; 1.5 s is generous): its
        // acting deadline passed without an answered keepalive.
        for i in c.intervals() {
            if i.host == format!("h{h}") && i.start < cut && i.end > cut && i.end - cut > 1.5 {
                failures.push(format!(
                    "run {run}: the cut-off leader's command ran {:.0} ms past the cut",
                    (i.end - cut) * 1000.0
                ));
            }
        }
        match healed {
            Ok((l, t, _)) => (leader, term) = (l, t),
            Err(_) => break,
        }
    }
    let o = overlaps(&c.intervals());
    for x in &o {
        failures.push(format!("overlap {}", x.describe()));
    }
    assert!(
        failures.is_empty(),
        "etcd-cut: {} failure(s):\n  {}\n{}",
        failures.len(),
        failures.join("\n  "),
        c.logs()
    );
}
