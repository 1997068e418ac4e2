//! What the multi-process tests share: child-process guards, scratch directories, free ports,
//! a cluster of `baton` processes on loopback (configs, logs, start, status) and the waits on
//! `baton status --json`.
//!
//! Every child is owned by a [`Proc`] guard that SIGKILLs and reaps it on drop, so a failing
//! assertion leaves nothing running. `BATON_TEST_KEEP=1` keeps the scratch directories.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "a module shared by several test binaries: each uses part of it, none exports it"
)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const BATON: &str = env!("CARGO_BIN_EXE_baton");

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub child: Option<Child>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        Proc {
            child: Some(cmd.spawn().expect("spawn baton")),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(st.success(), "kill -{sig} {}", self.pid());
    }

    /// The exit status once the process has exited (None while it runs).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        let st = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(st)
    }

    /// Waits for the process to exit; returns its exit status.
    pub fn wait_status(&mut self, timeout: Duration) -> ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.try_exit() {
                return st;
            }
            assert!(
                t0.elapsed() < timeout,
                "process did not exit within {timeout:?}"
            );
            sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process to exit; returns its exit code (None when killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        self.wait_status(timeout).code()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A scratch directory removed on drop.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("baton-cli-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if std::env::var_os("BATON_TEST_KEEP").is_some() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` distinct free loopback ports below the ephemeral range (see `baton_transport_tcp`).
pub fn free_ports(n: usize) -> Vec<u16> {
    baton_transport_tcp::free_ports(n).expect("free loopback ports")
}

/// Configs for nodes `names` (all voters unless `voters` says otherwise) in `dir`.
pub struct Cluster {
    pub dir: Dir,
    pub addrs: BTreeMap<String, String>,
    pub procs: BTreeMap<String, Proc>,
}

impl Cluster {
    pub fn new(tag: &str, names: &[&str]) -> Cluster {
        let dir = Dir::new(tag);
        std::fs::write(dir.0.join("good.secret"), "correct horse battery staple\n").unwrap();
        std::fs::write(dir.0.join("bad.secret"), "wrong secret\n").unwrap();
        let ports = free_ports(names.len());
        let addrs = names
            .iter()
            .zip(ports)
            .map(|(n, p)| (n.to_string(), format!("127.0.0.1:{p}")))
            .collect();
        let c = Cluster {
            dir,
            addrs,
            procs: BTreeMap::new(),
        };
        for n in names {
            c.write_config(n, names, "good.secret");
        }
        c
    }

    pub fn config(&self, name: &str) -> PathBuf {
        self.dir.0.join(format!("{name}.toml"))
    }

    pub fn write_config(&self, name: &str, voters: &[&str], secret: &str) {
        let seeds: Vec<String> = self
            .addrs
            .iter()
            .filter(|(n, _)| *n != name)
            .map(|(n, a)| format!("\"{n}@{a}\""))
            .collect();
        let voters: Vec<String> = voters.iter().map(|v| format!("\"{v}\"")).collect();
        let text = format!(
            "[node]\nname = \"{name}\"\nlisten = \"{}\"\n\n[cluster]\nname = \"it\"\nseeds = [{}]\nvoters = [{}]\nsecret_file = \"{secret}\"\n\n[timing]\nheartbeat_ms = 50\nfailure_timeout_ms = 300\n\n[[group]]\nname = \"tracked\"\n",
            self.addrs[name],
            seeds.join(", "),
            voters.join(", ")
        );
        std::fs::write(self.config(name), text).unwrap();
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.0.join(format!("{name}.log"))
    }

    pub fn command(&self, name: &str, args: &[&str]) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(name))
            .unwrap();
        let mut cmd = Command::new(BATON);
        cmd.args(args)
            .arg("--config")
            .arg(self.config(name))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        cmd
    }

    /// Starts `baton node` on `name`, and waits until it answers.
    pub fn start(&mut self, name: &str) {
        self.spawn(name, self.command(name, &["node"]));
    }

    /// Runs `cmd` as node `name` and waits until the node answers. Start nodes in order, so
    /// oldest-running has a clear favourite.
    pub fn spawn(&mut self, name: &str, mut cmd: Command) {
        let p = Proc::spawn(&mut cmd);
        self.procs.insert(name.to_string(), p);
        wait_until(
            Duration::from_secs(10),
            &format!("{name} to answer"),
            || status(&self.config(name)).map(|_| ()),
        );
    }

    /// What node `name` logged so far.
    pub fn read_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log(name)).unwrap_or_default()
    }

    pub fn proc(&mut self, name: &str) -> &mut Proc {
        self.procs.get_mut(name).expect("started")
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in self.addrs.keys() {
            out += &format!("---- {n}.log\n{}\n", self.read_log(n));
        }
        out
    }
}

/// `baton status --json` of the node of `config`.
pub fn status(config: &Path) -> Option<Value> {
    let out = Command::new(BATON)
        .args(["status", "--json", "--timeout-ms", "1000", "--config"])
        .arg(config)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// `baton status` (text) of the node of `config`; asserts that it succeeds.
pub fn status_text(config: &Path) -> String {
    let out = Command::new(BATON)
        .args(["status", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

/// (leader, term) of group "tracked" in a status.
pub fn leader(s: &Value) -> (Option<String>, u64) {
    let g = s["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["name"] == "tracked"));
    match g {
        Some(g) => (
            g["leader"].as_str().map(String::from),
            g["term"].as_u64().unwrap_or(0),
        ),
        None => (None, 0),
    }
}

pub fn alive_members(s: &Value) -> Vec<String> {
    s["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m["alive"] == true)
                .filter_map(|m| m["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn members(s: &Value) -> Vec<String> {
    s["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        sleep(Duration::from_millis(20));
    }
}

/// Waits until every node in `names` reports the same leader (alive, among `names`) and
/// every node sees all of `names` alive; returns (leader, term).
pub fn agreed(c: &Cluster, names: &[&str], timeout: Duration) -> (String, u64) {
    let t0 = Instant::now();
    loop {
        let views: Vec<Option<Value>> = names.iter().map(|n| status(&c.config(n))).collect();
        if views.iter().all(Option::is_some) {
            let views: Vec<Value> = views.into_iter().flatten().collect();
            let first = leader(&views[0]);
            let all_same = views.iter().all(|v| leader(v) == first);
            let all_alive = views.iter().all(|v| {
                let alive = alive_members(v);
                names.iter().all(|n| alive.iter().any(|a| a == n))
            });
            if let (true, true, (Some(l), term)) = (all_same, all_alive, first.clone())
                && names.contains(&l.as_str())
            {
                return (l, term);
            }
        }
        if t0.elapsed() > timeout {
            panic!(
                "nodes {names:?} did not agree on a leader within {timeout:?}\n{}",
                c.logs()
            );
        }
        sleep(Duration::from_millis(20));
    }
}

/// Whether a process is still running (a zombie counts as gone).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace()
                .next()
                .map(|st| st != "Z" && st != "X")
        })
        .unwrap_or(false)
}

/// `baton exec` of a one-node cluster `solo` in `dir` (group `g`, a free port, secret file
/// `s`) with `extra` flags, up to and including `--`: the caller appends the command.
/// Spawns [`solo_exec`] running the shell script `script` (`sh -c`), its output discarded.
pub fn spawn_solo_sh(dir: &Dir, extra: &[&str], script: &str) -> Proc {
    Proc::spawn(
        solo_exec(dir, extra)
            .args(["sh", "-c", script])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

pub fn solo_exec(dir: &Dir, extra: &[&str]) -> Command {
    std::fs::write(dir.0.join("s"), "x\n").unwrap();
    let port = free_ports(1)[0];
    let mut cmd = Command::new(BATON);
    cmd.args(["exec", "--name", "solo", "--group", "g"])
        .args(extra)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--secret-file"])
        .arg(dir.0.join("s"))
        .arg("--");
    cmd
}

/// The three nodes of [`admin_cluster`].
pub const ABC: [&str; 3] = ["a", "b", "c"];
/// The admin token of [`admin_cluster`].
pub const TOKEN: &str = "admin-token-for-tests";

/// One HTTP/1.1 request (`Connection: close`); returns the status code and the body.
pub fn http(addr: &str, method: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    http_request(addr, method, path, &auth, "", Duration::from_secs(5))
}

/// One HTTP/1.1 request with `headers` (each line ending in `\r\n`) and `body`, answered
/// within `timeout`; returns the status code and the body (which must not be chunked).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
    timeout: Duration,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(timeout)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read the head, then `Content-Length` bytes when given (a server may keep the
    // connection open despite `Connection: close`), else up to EOF.
    let fail = |e: std::io::Error| -> ! { panic!("{method} http://{addr}{path}: {e}") };
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf).unwrap_or_else(|e| fail(e));
        assert!(
            n > 0,
            "{method} {path}: connection closed before the head ended"
        );
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut rest = raw[head_end + 4..].to_vec();
    let lower = head.to_ascii_lowercase();
    assert!(
        !lower.contains("transfer-encoding: chunked"),
        "{method} {path}: a chunked answer: {head}"
    );
    let length = lower.lines().find_map(|l| {
        l.strip_prefix("content-length:")?
            .trim()
            .parse::<usize>()
            .ok()
    });
    match length {
        Some(len) => {
            while rest.len() < len {
                let n = s.read(&mut buf).unwrap_or_else(|e| fail(e));
                assert!(n > 0, "{method} {path}: connection closed mid-body");
                rest.extend_from_slice(&buf[..n]);
            }
            rest.truncate(len);
        }
        None => {
            s.read_to_end(&mut rest).unwrap_or_else(|e| fail(e));
        }
    }
    let body = String::from_utf8_lossy(&rest);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (code, body.to_string())
}

/// A 3-node cluster whose nodes serve `[admin]` (with a token) and log JSON; the admin
/// address of each.
pub fn admin_cluster(tag: &str) -> (Cluster, BTreeMap<String, String>) {
    admin_cluster_timed(tag, 300)
}

/// [`admin_cluster`] with `timing.failure_timeout_ms` = `failure_timeout_ms`.
pub fn admin_cluster_timed(
    tag: &str,
    failure_timeout_ms: u64,
) -> (Cluster, BTreeMap<String, String>) {
    let mut c = Cluster::new(tag, &ABC);
    for n in ABC {
        let text = std::fs::read_to_string(c.config(n)).unwrap();
        let text = text.replace(
            "failure_timeout_ms = 300\n",
            &format!("failure_timeout_ms = {failure_timeout_ms}\n"),
        );
        std::fs::write(c.config(n), text).unwrap();
    }
    std::fs::write(c.dir.0.join("admin.token"), format!("{TOKEN}\n")).unwrap();
    let ports = free_ports(3);
    let mut admins = BTreeMap::new();
    for (n, p) in ABC.iter().zip(ports) {
        let addr = format!("127.0.0.1:{p}");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(c.config(n))
            .unwrap();
        write!(
            f,
            "\n[admin]\nlisten = \"{addr}\"\ntoken_file = \"admin.token\"\n"
        )
        .unwrap();
        admins.insert(n.to_string(), addr);
    }
    for n in ABC {
        let cmd = c.command(n, &["--log-format", "json", "node"]);
        c.spawn(n, cmd);
    }
    (c, admins)
}

/// Runs `cmd` to its end and checks that it failed with exit code 1; returns its stderr.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run baton");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}

/// The log a `baton exec` command writes with [`runs_script`]: `runs.txt` in the cluster's
/// folder, created empty.
pub fn runs_file(c: &Cluster) -> PathBuf {
    let file = c.dir.0.join("runs.txt");
    std::fs::write(&file, "").expect("create runs.txt");
    file
}

/// An `sh -c` script for `baton exec` that logs to `file` (see [`runs_file`]): `start NODE
/// TERM PID` when it starts, `end NODE PID` when SIGTERM ends it, and `tick` (a shell command,
/// `$f` being the file; empty for none) every 20 ms in between.
pub fn runs_script(file: &Path, tick: &str) -> String {
    format!(
        "f={f}; echo \"start $BATON_NODE $BATON_TERM $$\" >> $f; \
         trap 'echo \"end $BATON_NODE $$\" >> $f; exit 0' TERM; \
         while true; do {tick}sleep 0.02; done",
        f = file.display()
    )
}
