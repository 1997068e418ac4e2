//! `baton exec`: a node that runs a command only while it leads a group.
//!
//! - **Start**: when this node gains leadership of the group (term `T`), CMD starts with
//!   `BATON_GROUP`, `BATON_TERM=T` (the fencing token) and `BATON_NODE` in its environment,
//!   stdin from `/dev/null`, stdout/stderr passed through — as the child of a **watchdog**
//!   process (`baton __watchdog`, see `watchdog.rs`), in a process group of its own. While
//!   this node does not lead, one watchdog is kept started ahead (a *standby*, started
//!   200 ms after CMD last stopped): an election hands it the term and it starts CMD at once,
//!   instead of the successor first executing this binary again.
//! - **Stop**: when this node loses leadership (or leads again under another term), CMD's whole
//!   process group gets SIGTERM, then SIGKILL after `--grace-ms`; the group is swept once CMD
//!   is gone, so nothing it started keeps running. The watchdog does all of that, on a SIGTERM
//!   from `baton exec`.
//! - **Never outlives the lease by more than `--watchdog-ms` (40 ms)**, also when `baton exec`
//!   is frozen. While this node holds the lease, a task here confirms it to the watchdog every
//!   `watchdog_ms / 4` (10 ms): the monotonic time at which it read the clock, then gave the
//!   node's driver a turn, then found `is_me()` still true ([`confirm`]). The watchdog SIGKILLs
//!   CMD's group `watchdog_ms` after the latest confirmation. A confirmation at `t` means the
//!   lease held at `t − 1 ms`, so CMD ends at most `watchdog_ms + 1 ms` (plus the kernel's
//!   scheduling of the watchdog) after the lease ended — however `baton exec` stops: SIGSTOP,
//!   a pause, starvation, a crash. The lease ends at least `failure_timeout − lease =
//!   heartbeat` (100 ms by default) before another node can be elected (docs/RELIABILITY.md
//!   1.2), so with `watchdog_ms < heartbeat_ms` CMD is dead before any successor starts its
//!   own: the two never run at once. A kind stop while still leading (SIGTERM to `baton
//!   exec`, a new term) keeps confirming, so CMD gets its whole `--grace-ms`; after a lost
//!   lease the grace is cut short at the watchdog's deadline.
//!
//!   *Why a separate process*: nothing inside a stopped process runs, so the enforcer must be
//!   another process. It is this binary re-executed (`/proc/self/exe __watchdog`) rather than
//!   a `fork` — forking a process that may run threads (tokio's blocking pool) is unsafe — and
//!   it is CMD's parent, so that it alone can signal CMD's process group while CMD's pid is
//!   still reserved by its unreaped zombie: a group id that has been freed and reused by
//!   an unrelated process is never signalled. `baton exec` itself only signals the watchdog,
//!   its own unreaped child. The watchdog also SIGKILLs the group at once when its socket
//!   closes or its parent-death signal (SIGHUP) arrives: a `kill -9` of `baton exec` takes
//!   down what CMD forked, too.
//!
//!   *The cost*: a `baton exec` that cannot run for about `watchdog_ms − watchdog_ms / 4`
//!   (30 ms) while leading loses CMD although its lease may still be valid (it cannot tell
//!   without running). That is logged (`… by the lease watchdog …`) and CMD starts again
//!   after `--restart-delay-ms` if this node still leads, whatever `--on-exit` says. On a
//!   host that overloaded, raise `--watchdog-ms` (the bound grows with it; keep it below
//!   `heartbeat_ms`, or CMD may overlap a successor's by the difference).
//! - **CMD exits on its own while leading**: logged with its exit code, then `--on-exit
//!   restart` (default) starts it again after `--restart-delay-ms` under the same term,
//!   `--on-exit resign` leaves the group (handing leadership to the next in line) and joins it
//!   again after the same delay, at the back of the line, and `--on-exit exit` hands
//!   leadership off and exits (0 when CMD exited 0, else 1).
//! - **CMD cannot be started** (ENOENT, EACCES, ... — reported by the watchdog's failed
//!   `exec`): the OS error is logged once (the same error again only at debug level), and the
//!   node resigns: it leaves the group, so that another member leads and runs its CMD at once,
//!   and joins again after `--restart-delay-ms`, doubling after every failure up to 30 s. It
//!   never holds a leadership it cannot use. With `--on-exit exit` it hands off and exits 1,
//!   the error (naming the OS error) as its last line.
//! - **SIGTERM / Ctrl-C**: CMD is stopped first (as above), then the node hands off
//!   leadership and leaves; exit code 0. The successor starts its CMD only after this one's
//!   is gone.
//! - **`baton transfer` / `baton step-down`** (and an unhealthy leader's handoff): the leader
//!   stops CMD first, while it still leads, and names its successor only once CMD has exited
//!   ([`hand_off_after_cmd`]), so the successor's CMD starts after this one's is gone.

use crate::cli::{ExecCmd, OnExit};
use crate::node::{Signals, serve, start_unless_signalled, stopped, warn_if_insecure};
use crate::procs::{describe_exit, die_with_parent_by, signal_pid};
use crate::settings::{load_node_config, load_secret, select_groups};
use crate::watchdog::{encode, mono_ns};
use anyhow::{Context, Result, anyhow, bail};
use baton_core::{GroupName, Labels, Leadership, Service, Term};
use nix::sys::signal::Signal;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running CMD, under its watchdog.
struct Running {
    /// The watchdog process (CMD's parent); its exit status is CMD's.
    child: tokio::process::Child,
    /// The watchdog's pid: the only process `baton exec` ever signals.
    watchdog: u32,
    /// CMD's pid, which is also its process group id.
    pid: u32,
    term: Term,
    reports: BufReader<OwnedReadHalf>,
    feeder: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // The feeder owns the socket's writing half: once it is gone the watchdog reads EOF and
        // SIGKILLs CMD's group (it also does when this process dies, by the closed socket and
        // its parent-death signal).
        self.feeder.abort();
    }
}

/// A watchdog started ahead, while this node does not lead: it waits for a term and then
/// starts CMD at once (watchdog.rs, "Standby"), so that an election does not wait for this
/// binary to be executed.
struct Standby {
    child: tokio::process::Child,
    /// `baton exec`'s end of the socket, still blocking (nothing was written yet).
    sock: std::os::unix::net::UnixStream,
}

/// How long after CMD stopped a new standby watchdog is started: not at once, when the
/// successor may be starting its own CMD on the same host.
const STANDBY_DELAY: Duration = Duration::from_millis(200);

/// How a start went.
enum Started {
    Yes,
    /// The lease was not (or no longer) confirmed: nothing started.
    NotLeading,
}

/// Why CMD could not be started.
enum StartError {
    /// The OS refused to start CMD (ENOENT, EACCES, ...): starting it again here is pointless.
    Cmd(std::io::Error),
    /// Something else (the watchdog could not run).
    Other(anyhow::Error),
}

/// How CMD ended.
struct Ended {
    status: std::io::Result<ExitStatus>,
    /// The watchdog killed it because this process had stopped confirming the lease.
    by_watchdog: bool,
}

/// Starts and stops CMD (through its watchdog).
struct Supervisor {
    argv: Vec<String>,
    group: GroupName,
    node: String,
    grace: Duration,
    watchdog: Duration,
    child: Option<Running>,
    /// A watchdog waiting to start CMD (only while CMD does not run).
    standby: Option<Standby>,
    /// Not before then is a standby started ([`STANDBY_DELAY`] after CMD stopped).
    standby_after: Instant,
    /// The term CMD runs under now (`None`: not running), for the release hook
    /// ([`hand_off_after_cmd`]).
    running: Arc<watch::Sender<Option<Term>>>,
}

impl Supervisor {
    /// Tells the release hook whether (and under which term) CMD runs.
    fn publish(&self) {
        let term = self.child.as_ref().map(|r| r.term);
        self.running
            .send_if_modified(|t| std::mem::replace(t, term) != term);
    }
}

/// Makes the node's handoffs on request wait for CMD: a transfer, a step-down or an unhealthy
/// leader's handoff first *releases* the leader work of the service's hooks (see
/// `baton_core::runtime::hooks`), and tells the successor to take over only once that work has
/// returned. This hook's work is CMD: when its token fires it asks the loop of [`run`] to
/// stop CMD of that term (through `released`) and returns once CMD is gone (`running`), so the
/// successor's CMD starts only after this one's has exited. Bounded by the node's release
/// timeout (5 s; CMD's grace beyond it is not waited for).
fn hand_off_after_cmd(
    svc: &Service,
    released: &Arc<watch::Sender<Option<Term>>>,
    running: &Arc<watch::Sender<Option<Term>>>,
) {
    let released = released.clone();
    let running = running.clone();
    svc.on_started_leading(move |term, cancel| {
        // Leading (again) under `term`: a release of this same term is over — the handoff it
        // was for did not happen (a transfer refused after it) — so CMD may run again.
        released.send_if_modified(|r| {
            let again = *r == Some(term);
            if again {
                *r = None;
            }
            again
        });
        let released = released.clone();
        let mut running = running.subscribe();
        async move {
            cancel.cancelled().await;
            released.send_replace(Some(term));
            // Err: the loop is gone, and CMD with it.
            let _ = running.wait_for(|t| *t != Some(term)).await;
        }
    });
}

/// Confirms this node's lease now: `Some((time, term))` when it holds it. The clock is read
/// first, then tokio gets one turn (the node's driver, in this same single-threaded runtime,
/// handles whatever this wake-up made ready — an expired lease, a backlog after a freeze — and
/// withdraws `is_me` if the lease is gone), and only then is `is_me` read: so the lease held at
/// the returned time, to within tokio's 1 ms timer granularity.
async fn confirm(rx: &watch::Receiver<Leadership>) -> Option<(u64, Term)> {
    let t = mono_ns();
    tokio::task::yield_now().await;
    if rx.has_changed().is_err() {
        return None; // the node is gone
    }
    let l = rx.borrow();
    l.is_me().then_some((t, l.term))
}

/// Writes a confirmation every `window / 4` while this node holds the lease, and warns (at
/// most once per 10 s) when this process was not scheduled for more than half the window.
async fn feed(
    w: OwnedWriteHalf,
    rx: watch::Receiver<Leadership>,
    window: Duration,
    group: GroupName,
) {
    let every = window / 4;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: Vec<u8> = Vec::new();
    let mut last = mono_ns();
    let mut late = Lateness::default();
    loop {
        tick.tick().await;
        let now = mono_ns();
        if let Some((n, worst)) = late.record(now, now - last, window) {
            tracing::warn!(
                "{group}: this process was not scheduled for up to {worst} ms ({n} times since the last such warning); the watchdog kills CMD after {} ms without a lease confirmation: is the host overloaded?",
                window.as_millis()
            );
        }
        last = now;
        if let Some((t, _)) = confirm(&rx).await
            && pending.len() < 64 * 1024
        {
            pending.extend_from_slice(&encode(t));
        }
        while !pending.is_empty() {
            match w.try_write(&pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return, // the watchdog is gone
            }
        }
    }
}

/// Late ticks of the feeder, reported at most once per 10 s.
#[derive(Debug, Default)]
struct Lateness {
    count: u64,
    worst_ms: u64,
    reported_at: Option<u64>,
}

impl Lateness {
    /// A tick `gap_ns` after the previous one, at `now_ns`: `Some((count, worst ms))` when a
    /// warning is due.
    fn record(&mut self, now_ns: u64, gap_ns: u64, window: Duration) -> Option<(u64, u64)> {
        if gap_ns <= window.as_nanos() as u64 / 2 {
            return None;
        }
        self.count += 1;
        self.worst_ms = self.worst_ms.max(gap_ns / 1_000_000);
        if self
            .reported_at
            .is_some_and(|t| now_ns.saturating_sub(t) < 10_000_000_000)
        {
            return None;
        }
        self.reported_at = Some(now_ns);
        let out = (self.count, self.worst_ms);
        self.count = 0;
        self.worst_ms = 0;
        Some(out)
    }
}

/// This binary, to run as the watchdog: `/proc/self/exe` still names it after the file was
/// replaced or removed (an upgrade while running).
fn own_binary() -> std::path::PathBuf {
    let proc_exe = std::path::PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        proc_exe
    } else {
        std::env::current_exe().unwrap_or(proc_exe)
    }
}

impl Supervisor {
    fn display(&self) -> String {
        self.argv.join(" ")
    }

    /// Starts a watchdog (this binary) that waits for its term on the returned socket.
    fn spawn_watchdog(
        &self,
    ) -> Result<(tokio::process::Child, std::os::unix::net::UnixStream), StartError> {
        let other = |e: std::io::Error, what: &str| StartError::Other(anyhow!("{what}: {e}"));
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(|e| other(e, "socketpair"))?;
        let mut cmd = std::process::Command::new(own_binary());
        cmd.arg0("baton")
            .arg("__watchdog")
            .arg("--group")
            .arg(self.group.as_str())
            .arg("--grace-ms")
            .arg(self.grace.as_millis().to_string())
            .arg("--watchdog-ms")
            .arg(self.watchdog.as_millis().to_string())
            .arg("--")
            .args(&self.argv)
            .env("BATON_GROUP", self.group.as_str())
            .env("BATON_NODE", &self.node)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            // Its own group: a ^Z or Ctrl-C for `baton exec` does not stop the watchdog.
            .process_group(0);
        // SIGHUP, which the watchdog handles by SIGKILLing CMD's whole group.
        die_with_parent_by(&mut cmd, Signal::SIGHUP);
        let child = tokio::process::Command::from(cmd)
            .spawn()
            .map_err(|e| other(e, "cannot start the watchdog (this binary)"))?;
        Ok((child, ours))
    }

    /// Starts a standby watchdog if none is ready and CMD does not run (failures only delay
    /// the next start: [`start`](Self::start) then spawns one itself and reports the error).
    fn prepare(&mut self) {
        if self.standby.is_some() || self.child.is_some() {
            return;
        }
        match self.spawn_watchdog() {
            Ok((child, sock)) => self.standby = Some(Standby { child, sock }),
            Err(e) => {
                let e = match e {
                    StartError::Other(e) => format!("{e:#}"),
                    StartError::Cmd(e) => e.to_string(),
                };
                tracing::debug!("{}: no standby watchdog: {e}", self.group);
                // Not again at once (the loop would spin on a spawn that fails).
                self.standby_after = Instant::now() + Duration::from_secs(1);
            }
        }
    }

    /// Stops and forgets the standby watchdog (it runs nothing: SIGKILL is safe; tokio reaps
    /// it).
    fn discard_standby(&mut self) {
        if let Some(mut sb) = self.standby.take() {
            let _ = sb.child.start_kill();
        }
    }

    /// Starts CMD under a watchdog if this node holds the lease: the standby one when it is
    /// ready, else a new one.
    async fn start(&mut self, rx: &watch::Receiver<Leadership>) -> Result<Started, StartError> {
        let Some((t0, term)) = confirm(rx).await else {
            return Ok(Started::NotLeading);
        };
        let other = |e: std::io::Error, what: &str| StartError::Other(anyhow!("{what}: {e}"));
        // The term, then the first confirmation (watchdog.rs, "Standby", "The feed").
        let mut first = encode(term).to_vec();
        first.extend_from_slice(&encode(t0));
        let ready = match self.standby.take() {
            Some(mut sb) => {
                // A standby that died meanwhile (killed by someone) is replaced.
                if matches!(sb.child.try_wait(), Ok(None)) && sb.sock.write_all(&first).is_ok() {
                    Some((sb.child, sb.sock))
                } else {
                    let _ = sb.child.start_kill();
                    None
                }
            }
            None => None,
        };
        let (mut child, ours) = match ready {
            Some(ready) => ready,
            None => {
                let (child, mut ours) = self.spawn_watchdog()?;
                ours.write_all(&first)
                    .map_err(|e| other(e, "cannot confirm the lease to the watchdog"))?;
                (child, ours)
            }
        };
        let watchdog = child.id().unwrap_or(0);
        ours.set_nonblocking(true).map_err(|e| other(e, "socket"))?;
        let sock = tokio::net::UnixStream::from_std(ours).map_err(|e| other(e, "socket"))?;
        let (r, w) = sock.into_split();
        let feeder = tokio::spawn(feed(w, rx.clone(), self.watchdog, self.group.clone()));
        let mut reports = BufReader::new(r);
        let mut line = String::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), reports.read_line(&mut line)).await;
        let line = line.trim().to_string();
        let fail = |child: &mut tokio::process::Child| {
            let _ = child.start_kill();
        };
        match line.split_once(' ').unwrap_or((line.as_str(), "")) {
            ("S", pid) if pid.parse::<u32>().is_ok() => {
                let pid: u32 = pid.parse().unwrap_or(0);
                tracing::info!(
                    "{}: I lead (term {term}): started `{}` (pid {pid})",
                    self.group,
                    self.display()
                );
                self.child = Some(Running {
                    child,
                    watchdog,
                    pid,
                    term,
                    reports,
                    feeder,
                });
                Ok(Started::Yes)
            }
            ("E", errno) if errno.parse::<i32>().is_ok() => {
                feeder.abort();
                let _ = child.wait().await;
                Err(StartError::Cmd(std::io::Error::from_raw_os_error(
                    errno.parse().unwrap_or(0),
                )))
            }
            ("M", msg) => {
                feeder.abort();
                let _ = child.wait().await;
                Err(StartError::Cmd(std::io::Error::other(msg.to_string())))
            }
            ("L", _) => {
                feeder.abort();
                let _ = child.wait().await;
                Ok(Started::NotLeading)
            }
            _ => {
                feeder.abort();
                fail(&mut child);
                let status = child.wait().await;
                Err(StartError::Other(anyhow!(
                    "the watchdog did not start `{}` ({}; {})",
                    self.display(),
                    match read {
                        Ok(Ok(_)) => format!("it said {line:?}"),
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "no answer within 10 s".to_string(),
                    },
                    match status {
                        Ok(s) => describe_exit(s),
                        Err(e) => e.to_string(),
                    }
                )))
            }
        }
    }

    /// Waits for CMD (its watchdog) to exit on its own (pending forever when none runs).
    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self.child.as_mut() {
            Some(r) => r.child.wait().await,
            None => std::future::pending().await,
        }
    }

    /// After the watchdog exited: whether it killed CMD for want of lease confirmations.
    async fn ended(r: &mut Running, status: std::io::Result<ExitStatus>) -> Ended {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(200), r.reports.read_to_end(&mut rest))
            .await;
        Ended {
            status,
            by_watchdog: rest.split(|b| *b == b'\n').any(|l| l == b"K"),
        }
    }

    /// Stops CMD: SIGTERM to the watchdog, which SIGTERMs CMD's group, SIGKILLs it after the
    /// grace period (or the lease deadline, whichever comes first) and sweeps it.
    async fn stop(&mut self, why: &str) -> Option<Ended> {
        let mut r = self.child.take()?;
        tracing::info!(
            "{}: stopping `{}` (pid {}): {why}",
            self.group,
            self.display(),
            r.pid
        );
        let _ = signal_pid(r.watchdog, Signal::SIGTERM);
        let limit = self.grace + Duration::from_secs(2);
        let status = match tokio::time::timeout(limit, r.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                // The watchdog itself is stuck: SIGKILL it (CMD dies by its parent-death
                // signal).
                tracing::warn!(
                    "{}: the watchdog of `{}` (pid {}) did not finish within {limit:?}: SIGKILL",
                    self.group,
                    self.display(),
                    r.watchdog
                );
                let _ = r.child.start_kill();
                r.child.wait().await
            }
        };
        let ended = Self::ended(&mut r, status).await;
        self.log_exit(r.pid, &ended);
        self.publish();
        self.standby_after = Instant::now() + STANDBY_DELAY;
        Some(ended)
    }

    fn log_exit(&self, pid: u32, ended: &Ended) {
        match &ended.status {
            Ok(s) if ended.by_watchdog => tracing::warn!(
                "{}: `{}` (pid {pid}) {} by the lease watchdog: this process did not confirm the lease for {} ms (stopped, or starved of CPU)",
                self.group,
                self.display(),
                describe_exit(*s),
                self.watchdog.as_millis()
            ),
            Ok(s) => tracing::info!(
                "{}: `{}` (pid {pid}) {}",
                self.group,
                self.display(),
                describe_exit(*s)
            ),
            Err(e) => tracing::warn!(
                "{}: cannot learn how `{}` (pid {pid}) ended: {e}",
                self.group,
                self.display()
            ),
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // Every exit path (errors included) takes CMD down with us: SIGHUP makes the watchdog
        // SIGKILL CMD's group (as does the socket closing when this process exits).
        if let Some(r) = &self.child {
            let _ = signal_pid(r.watchdog, Signal::SIGHUP);
        }
        self.discard_standby();
    }
}

/// What this node's leadership asks for: CMD running under `Some(term)`, or not at all.
fn wanted(l: &Leadership) -> Option<Term> {
    l.is_me().then_some(l.term)
}

/// The longest pause between attempts to lead with a CMD that cannot be started.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The next pause after `current` (doubling, capped).
fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(MAX_BACKOFF.max(current))
}

/// `baton exec`.
pub(crate) async fn run(cmd: ExecCmd) -> Result<()> {
    let mut signals = Signals::new()?;
    let mut loaded = load_node_config(&cmd.opts)?;
    let secret = load_secret(&loaded, cmd.opts.insecure_no_secret)?;
    warn_if_insecure(&loaded, &secret);
    let groups = select_groups(&mut loaded.config, std::slice::from_ref(&cmd.group));
    let name = loaded.config.node.name.clone();
    let heartbeat_ms = loaded.config.timing.heartbeat_ms;
    if cmd.watchdog_ms >= heartbeat_ms {
        tracing::warn!(
            "--watchdog-ms {} is not below heartbeat_ms {heartbeat_ms}: a frozen `baton exec` may leave CMD running for up to {} ms after another node was elected",
            cmd.watchdog_ms,
            cmd.watchdog_ms + 2 - heartbeat_ms
        );
    }
    let Some(started) = start_unless_signalled(&loaded, secret, &groups, &mut signals).await?
    else {
        return Ok(());
    };
    // `[admin]` serves the same endpoints as under `baton node`; its kind shutdown stops CMD
    // first, as SIGTERM does.
    let (admin_tx, mut admin_shutdown) = tokio::sync::mpsc::unbounded_channel();
    if let Err(e) = crate::node::start_admin(&loaded, &started, admin_tx).await {
        started.node.shutdown().await;
        return Err(e);
    }
    let node = started.node;
    let mut svc: Option<Service> = started.services.into_iter().next();
    let Some(first) = &svc else {
        bail!("joined no group");
    };
    let mut rx = first.leadership();
    let mut sup = Supervisor {
        argv: cmd.command.clone(),
        group: cmd.group.clone(),
        node: name.clone(),
        grace: Duration::from_millis(cmd.grace_ms),
        watchdog: Duration::from_millis(cmd.watchdog_ms),
        child: None,
        standby: None,
        standby_after: Instant::now(),
        running: Arc::new(watch::channel(None).0),
    };
    // The term whose CMD a handoff on request is waiting for: CMD does not run under it.
    let released = Arc::new(watch::channel(None::<Term>).0);
    let mut released_rx = released.subscribe();
    hand_off_after_cmd(first, &released, &sup.running);
    let delay = Duration::from_millis(cmd.restart_delay_ms);
    // When CMD may start again (after it exited on its own), or when to rejoin (after resigning).
    let mut restart_at: Option<Instant> = None;
    let mut rejoin_at: Option<Instant> = None;
    // After a CMD that could not start: the pause before the next attempt, and the error
    // already logged (the same one again is logged at debug level only).
    let mut backoff = delay;
    let mut start_error: Option<String> = None;
    // With --health-cmd: whether the member is healthy (always, without one).
    let mut health = cmd.health_cmd.clone().map(|c| {
        let check = crate::health::HealthCheck {
            cmd: c,
            interval: Duration::from_millis(cmd.health_interval_ms),
            failures: cmd.health_failures,
        };
        crate::health::spawn(check, cmd.group.to_string())
    });
    let mut healthy = true;
    loop {
        sup.publish();
        let l = rx.borrow_and_update().clone();
        let leading = wanted(&l);
        let release = *released_rx.borrow_and_update();
        // An unhealthy member runs no CMD, even while the handoff is on its way; nor does a
        // leader handing off on request (its CMD stops first).
        let want = leading.filter(|_| healthy).filter(|t| release != Some(*t));
        if let Some(r) = &sup.child
            && want != Some(r.term)
        {
            let why = match want {
                Some(t) => format!("leading again under a new term ({t})"),
                None if !healthy => "the health check failed: draining".to_string(),
                None if leading.is_some() => {
                    "handing leadership off (transfer or step-down): CMD stops first".to_string()
                }
                None => "this node no longer leads".to_string(),
            };
            sup.stop(&why).await;
            continue;
        }
        match want {
            None => restart_at = None,
            Some(_) if sup.child.is_none() && rejoin_at.is_none() => {
                if restart_at.is_none_or(|t| Instant::now() >= t) {
                    restart_at = None;
                    match sup.start(&rx).await {
                        Ok(Started::Yes) => {
                            backoff = delay;
                            start_error = None;
                        }
                        // The lease went while starting: the leadership change is on its way.
                        Ok(Started::NotLeading) => {
                            restart_at = Some(Instant::now() + sup.watchdog / 4);
                        }
                        Err(e) => {
                            let msg = match e {
                                StartError::Cmd(e) => {
                                    format!("cannot start `{}`: {e}", sup.display())
                                }
                                StartError::Other(e) => format!("{e:#}"),
                            };
                            if cmd.on_exit == OnExit::Exit {
                                // The error is printed once, by main, as the exit reason.
                                tracing::info!("{}: resigning leadership and exiting", cmd.group);
                                node.shutdown().await;
                                bail!("{}: {msg}", cmd.group);
                            }
                            if start_error.as_deref() == Some(msg.as_str()) {
                                tracing::debug!(
                                    "{}: {msg} (again); resigning leadership, joining again in {backoff:?}",
                                    cmd.group
                                );
                            } else {
                                tracing::error!(
                                    "{}: {msg}; resigning leadership, joining again in {backoff:?}",
                                    cmd.group
                                );
                                start_error = Some(msg);
                            }
                            if let Some(s) = svc.take() {
                                s.leave().await;
                            }
                            rejoin_at = Some(Instant::now() + backoff);
                            backoff = next_backoff(backoff);
                        }
                    }
                    continue;
                }
            }
            Some(_) => {}
        }
        // Not leading (or not wanting CMD): have a watchdog ready for when this node is
        // elected.
        let mut standby_at = (want.is_none() && sup.child.is_none() && sup.standby.is_none())
            .then_some(sup.standby_after);
        if standby_at.is_some_and(|t| Instant::now() >= t) {
            sup.prepare();
            standby_at = None;
        }
        let wake_at = [restart_at, rejoin_at, standby_at]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            changed = health_changed(&mut health) => {
                let Some(now_healthy) = changed else {
                    health = None;
                    continue;
                };
                healthy = now_healthy;
                if !healthy {
                    // Drain first: CMD stops while this node still leads; only then hand off.
                    tracing::warn!("{}: unhealthy: stopping `{}`, then handing off", cmd.group, sup.display());
                    sup.stop("the health check failed").await;
                }
                if let Some(s) = &svc {
                    s.set_healthy(healthy);
                }
            }
            sig = signals.recv() => {
                tracing::info!("{sig}: stopping `{}`, then handing off leadership", sup.display());
                sup.stop(&format!("{sig} received")).await;
                node.shutdown().await;
                tracing::info!("node {name} stopped");
                return Ok(());
            }
            Some(()) = admin_shutdown.recv() => {
                tracing::info!("admin action: stopping `{}`, then handing off leadership", sup.display());
                sup.stop("an admin asked for a kind shutdown").await;
                node.shutdown().await;
                tracing::info!("node {name} stopped");
                return Ok(());
            }
            changed = rx.changed() => {
                if changed.is_err() {
                    sup.stop("the node stopped").await;
                    bail!("node {name} stopped");
                }
            }
            _ = released_rx.changed() => {}

            status = sup.wait() => {
                let Some(mut r) = sup.child.take() else { continue };
                sup.standby_after = Instant::now() + STANDBY_DELAY;
                // CMD is gone: a release (the leave or shutdown below) has nothing to wait for.
                sup.publish();
                let ended = Supervisor::ended(&mut r, status).await;
                sup.log_exit(r.pid, &ended);
                // Not a stale reading: the driver gets its turn first (a frozen process that
                // lost its lease must not take the watchdog's kill for CMD's own exit).
                if confirm(&rx).await.map(|(_, t)| t) != Some(r.term) {
                    continue;
                }
                if ended.by_watchdog {
                    // Not CMD's doing: this process was too slow to confirm a lease it held.
                    tracing::info!("{}: still leading: restarting `{}` in {delay:?}", cmd.group, sup.display());
                    restart_at = Some(Instant::now() + delay);
                    continue;
                }
                match cmd.on_exit {
                    OnExit::Restart => {
                        tracing::info!("{}: still leading: restarting `{}` in {delay:?}", cmd.group, sup.display());
                        restart_at = Some(Instant::now() + delay);
                    }
                    OnExit::Resign => {
                        tracing::info!("{}: resigning leadership (rejoining in {delay:?})", cmd.group);
                        if let Some(s) = svc.take() {
                            s.leave().await;
                        }
                        rejoin_at = Some(Instant::now() + delay);
                    }
                    OnExit::Exit => {
                        tracing::info!("{}: --on-exit exit: handing off leadership", cmd.group);
                        node.shutdown().await;
                        tracing::info!("node {name} stopped");
                        return match ended.status {
                            Ok(s) if s.success() => Ok(()),
                            Ok(s) => Err(anyhow!("{}: `{}` {}", cmd.group, sup.display(), describe_exit(s))),
                            Err(e) => Err(anyhow!("{}: cannot learn how `{}` ended: {e}", cmd.group, sup.display())),
                        };
                    }
                }
            }
            _ = sleep_until(wake_at) => {
                if rejoin_at.is_some_and(|t| Instant::now() >= t) {
                    rejoin_at = None;
                    let s = node
                        .join(&cmd.group, Labels::default())
                        .await
                        .with_context(|| format!("cannot rejoin group {:?}", cmd.group))?;
                    serve(&s, &name);
                    hand_off_after_cmd(&s, &released, &sup.running);
                    s.set_healthy(healthy);
                    tracing::info!("{}: rejoined as {}", cmd.group, s.member());
                    rx = s.leadership();
                    svc = Some(s);
                }
            }
            e = stopped(&node) => {
                sup.stop("the node stopped").await;
                return Err(e);
            }
        }
    }
}

/// The health watch's next value (`None` once its task ended); never, without a check.
async fn health_changed(health: &mut Option<watch::Receiver<bool>>) -> Option<bool> {
    match health {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(*rx.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::MemberId;

    #[test]
    fn only_a_held_lease_asks_for_the_command() {
        let mut l = Leadership::none("g");
        assert_eq!(wanted(&l), None);
        l.leader = Some(MemberId::new("a", 0));
        l.term = 2;
        assert_eq!(wanted(&l), None);
        l.is_me = true;
        assert_eq!(wanted(&l), Some(2));
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let mut b = Duration::from_millis(1000);
        let mut seen = Vec::new();
        for _ in 0..7 {
            seen.push(b.as_secs());
            b = next_backoff(b);
        }
        assert_eq!(seen, vec![1, 2, 4, 8, 16, 30, 30]);
        // A delay above the cap is kept, never shortened.
        assert_eq!(
            next_backoff(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn late_ticks_are_reported_at_most_every_10_s() {
        let w = Duration::from_millis(40);
        let mut l = Lateness::default();
        const MS: u64 = 1_000_000;
        assert_eq!(
            l.record(1_000 * MS, 20 * MS, w),
            None,
            "half the window is fine"
        );
        assert_eq!(l.record(1_100 * MS, 25 * MS, w), Some((1, 25)));
        assert_eq!(l.record(1_200 * MS, 35 * MS, w), None);
        assert_eq!(l.record(5_000 * MS, 30 * MS, w), None);
        assert_eq!(l.record(11_100 * MS, 21 * MS, w), Some((3, 35)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lease_is_confirmed_only_while_held() {
        let (tx, rx) = watch::channel(Leadership::none("g"));
        assert_eq!(confirm(&rx).await, None);
        let mut l = Leadership::none("g");
        l.leader = Some(MemberId::new("a", 0));
        l.term = 3;
        l.is_me = true;
        tx.send_replace(l);
        let before = mono_ns();
        let (t, term) = confirm(&rx).await.expect("held");
        assert_eq!(term, 3);
        assert!(t >= before && t <= mono_ns());
        drop(tx);
        assert_eq!(
            confirm(&rx).await,
            None,
            "a node that is gone holds no lease"
        );
    }
}
