//! [`LocalEtcd`]: a single-member etcd on loopback, with its own data directory and free
//! ports — for tests (this crate's, the CLI's) and for trying the backend out. It needs
//! Debian's `etcd-server` (the `etcd` binary) and `etcd-client` (`etcdctl`, to wait for health),
//! and fails naming them when they are missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `spawn` waits for etcd to answer.
const READY: Duration = Duration::from_secs(10);

/// Why a local etcd could not run.
#[derive(Debug, thiserror::Error)]
pub enum LocalEtcdError {
    /// No `etcd` binary.
    #[error(
        "etcd not found (looked in /usr/bin, /usr/local/bin and PATH): install Debian's `etcd-server` package (apt-get install etcd-server etcd-client)"
    )]
    NoEtcd,
    /// Something else, said in full.
    #[error("{0}")]
    Other(String),
}

/// A single-member etcd on loopback; killed (and its data removed) on drop.
pub struct LocalEtcd {
    child: Option<Child>,
    dir: PathBuf,
    client: u16,
    peer: u16,
}

/// The `etcd` binary, if installed.
pub fn etcd_binary() -> Option<PathBuf> {
    let fixed = ["/usr/bin/etcd", "/usr/local/bin/etcd"].map(PathBuf::from);
    let on_path = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("etcd"))
        .collect::<Vec<_>>();
    fixed.into_iter().chain(on_path).find(|p| p.is_file())
}

impl LocalEtcd {
    /// Starts etcd on `client_port` (clients) and `peer_port` (its raft port), its data under
    /// `dir` (created; removed on drop), and waits until it answers. Its heartbeat is 50 ms and
    /// its election timeout 500 ms, which makes its minimum lease TTL 1 s.
    pub fn start(
        dir: impl Into<PathBuf>,
        client_port: u16,
        peer_port: u16,
    ) -> Result<Self, LocalEtcdError> {
        let dir = dir.into();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| LocalEtcdError::Other(format!("cannot create {}: {e}", dir.display())))?;
        let mut e = LocalEtcd {
            child: None,
            dir,
            client: client_port,
            peer: peer_port,
        };
        e.spawn()?;
        Ok(e)
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    /// Its log file (stderr).
    pub fn log(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// Starts (or restarts, on the same data and ports) the etcd process and waits until it
    /// answers.
    pub fn spawn(&mut self) -> Result<(), LocalEtcdError> {
        let binary = etcd_binary().ok_or(LocalEtcdError::NoEtcd)?;
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let other = |e: std::io::Error| LocalEtcdError::Other(e.to_string());
        let log = std::fs::File::create(self.log()).map_err(other)?;
        let child = Command::new(binary)
            .args(["--name", "local", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &self.endpoint()])
            .args(["--advertise-client-urls", &self.endpoint()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("local={peer}")])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                LocalEtcdError::Other(format!("cannot start etcd (package etcd-server): {e}"))
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY;
        loop {
            let ok = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(health_args(&self.endpoint()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| {
                    LocalEtcdError::Other(format!(
                        "cannot run etcdctl: install Debian's `etcd-client` package: {e}"
                    ))
                })?
                .success();
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LocalEtcdError::Other(format!(
                    "etcd did not become healthy within {READY:?}; its log: {}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The etcd process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `sig` (`"STOP"`, `"CONT"`, …) to etcd.
    pub fn signal(&self, sig: &str) -> Result<(), LocalEtcdError> {
        let pid = self
            .pid()
            .ok_or_else(|| LocalEtcdError::Other("etcd is not running".into()))?;
        let ok = Command::new("kill")
            .args(["-s", sig, &pid.to_string()])
            .status()
            .map_err(|e| LocalEtcdError::Other(e.to_string()))?
            .success();
        if ok {
            Ok(())
        } else {
            Err(LocalEtcdError::Other(format!("kill -s {sig} {pid} failed")))
        }
    }

    /// Kills etcd (SIGKILL); its data stays for [`LocalEtcd::spawn`].
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.signal("CONT");
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `etcdctl`'s arguments (with `ETCDCTL_API=3`) that succeed once etcd at `endpoint` is
/// healthy: what [`LocalEtcd::spawn`] waits for, and what a test running etcd elsewhere (in a
/// network namespace) can wait for too.
pub fn health_args(endpoint: &str) -> [&str; 6] {
    [
        "--endpoints",
        endpoint,
        "--dial-timeout",
        "500ms",
        "endpoint",
        "health",
    ]
}
