//! `baton exec`: a node that runs a command only while it leads a group.
//!
//! - **Start**: when this node gains leadership of the group (term `T`), CMD starts with
//!   `BATON_GROUP`, `BATON_TERM=T` (the fencing token) and `BATON_NODE` in its environment,
//!   stdin from `/dev/null`, stdout/stderr passed through.
//! - **Stop**: when this node loses leadership (or leads again under another term), CMD's whole
//!   process group gets SIGTERM, then SIGKILL after `--grace-ms`; the group is swept with
//!   SIGKILL once CMD is gone, so nothing it started keeps running.
//! - **Never outlives `baton exec`**: CMD runs in its own process group with the kernel's
//!   parent-death signal set to SIGKILL, so even a `kill -9` of `baton exec` kills CMD at once.
//!   (Processes CMD itself forks are not covered by that signal: when `baton exec` is killed
//!   with SIGKILL they lose their parent and keep running unless CMD takes them down; a CMD
//!   that `exec`s its final program, or waits for its children, has no such stragglers.)
//! - **CMD exits on its own while leading**: logged with its exit code, then `--on-exit
//!   restart` (default) starts it again after `--restart-delay-ms` under the same term, while
//!   `--on-exit resign` leaves the group (handing leadership to the next in line) and joins it
//!   again after the same delay, at the back of the line.
//! - **SIGTERM / Ctrl-C**: CMD is stopped first (as above), then the node hands off
//!   leadership and leaves; exit code 0. The successor starts its CMD only after this one's
//!   is gone.

use crate::cli::{ExecCmd, OnExit};
use crate::node::{Signals, serve, start, stopped, warn_if_insecure};
use crate::procs::{describe_exit, die_with_parent, signal_group};
use crate::settings::{load_node_config, load_secret, select_groups};
use anyhow::{Context, Result, bail};
use baton_core::{Labels, Leadership, Service, Term};
use nix::sys::signal::Signal;
use std::os::unix::process::CommandExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// A running CMD.
struct Running {
    child: tokio::process::Child,
    /// Its pid, which is also its process group id.
    pid: u32,
    term: Term,
}

/// Starts and stops CMD.
struct Supervisor {
    argv: Vec<String>,
    group: String,
    node: String,
    grace: Duration,
    child: Option<Running>,
}

impl Supervisor {
    fn display(&self) -> String {
        self.argv.join(" ")
    }

    fn start(&mut self, term: Term) -> Result<()> {
        let Some((program, args)) = self.argv.split_first() else {
            bail!("no command given");
        };
        let mut cmd = std::process::Command::new(program);
        cmd.args(args)
            .env("BATON_GROUP", &self.group)
            .env("BATON_TERM", term.to_string())
            .env("BATON_NODE", &self.node)
            .stdin(Stdio::null())
            .process_group(0);
        die_with_parent(&mut cmd);
        let child = tokio::process::Command::from(cmd)
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.display()))?;
        let Some(pid) = child.id() else {
            bail!("`{}` exited before it could be watched", self.display());
        };
        tracing::info!(
            "{}: I lead (term {term}): started `{}` (pid {pid})",
            self.group,
            self.display()
        );
        self.child = Some(Running { child, pid, term });
        Ok(())
    }

    /// Waits for CMD to exit on its own (pending forever when none runs).
    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self.child.as_mut() {
            Some(r) => r.child.wait().await,
            None => std::future::pending().await,
        }
    }

    /// Stops CMD: SIGTERM to its group, SIGKILL after the grace period, then sweeps the group.
    async fn stop(&mut self, why: &str) {
        let Some(mut r) = self.child.take() else {
            return;
        };
        tracing::info!(
            "{}: stopping `{}` (pid {}): {why}",
            self.group,
            self.display(),
            r.pid
        );
        let deadline = Instant::now() + self.grace;
        signal_group(r.pid, Signal::SIGTERM);
        let status = match tokio::time::timeout_at(deadline, r.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!(
                    "{}: `{}` (pid {}) still runs {} ms after SIGTERM: SIGKILL",
                    self.group,
                    self.display(),
                    r.pid,
                    self.grace.as_millis()
                );
                signal_group(r.pid, Signal::SIGKILL);
                r.child.wait().await
            }
        };
        sweep_group(r.pid, deadline).await;
        self.log_exit(r.pid, status);
    }

    fn log_exit(&self, pid: u32, status: std::io::Result<ExitStatus>) {
        match status {
            Ok(s) => tracing::info!(
                "{}: `{}` (pid {pid}) {}",
                self.group,
                self.display(),
                describe_exit(s)
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
        // Every exit path (errors included) takes CMD down with us.
        if let Some(r) = &self.child {
            signal_group(r.pid, Signal::SIGKILL);
        }
    }
}

/// Whether process group `pgid` still has a live (not zombie) member. Orphaned zombies count
/// as gone: where PID 1 does not reap (some containers) they would otherwise linger forever.
fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No /proc: ask the kernel (zombies then count as alive).
        return match i32::try_from(pgid) {
            Ok(raw) => nix::sys::signal::killpg(nix::unistd::Pid::from_raw(raw), None).is_ok(),
            Err(_) => false,
        };
    };
    entries.flatten().any(|e| {
        let is_pid = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        is_pid
            && std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|stat| parse_stat(&stat))
                .is_some_and(|(state, pgrp)| pgrp == pgid && !matches!(state, 'Z' | 'X' | 'x'))
    })
}

/// `(state, pgrp)` from `/proc/PID/stat` (`pid (comm) state ppid pgrp …`; comm may hold
/// spaces and parentheses, so fields are counted from the last `)`).
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// CMD is gone; what it left in its process group gets until `deadline` to exit, then SIGKILL.
async fn sweep_group(pgid: u32, deadline: Instant) {
    if group_alive(pgid) {
        signal_group(pgid, Signal::SIGTERM);
    }
    while group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal_group(pgid, Signal::SIGKILL);
}

/// What this node's leadership asks for: CMD running under `Some(term)`, or not at all.
fn wanted(l: &Leadership) -> Option<Term> {
    l.is_me().then_some(l.term)
}

/// `baton exec`.
pub async fn run(cmd: ExecCmd) -> Result<()> {
    let mut signals = Signals::new()?;
    let mut loaded = load_node_config(&cmd.opts)?;
    let secret = load_secret(&loaded, cmd.opts.insecure_no_secret)?;
    warn_if_insecure(&loaded, &secret);
    let groups = select_groups(&mut loaded.config, std::slice::from_ref(&cmd.group));
    let name = loaded.config.node.name.clone();
    let started = tokio::select! {
        s = start(&loaded, secret, &groups) => s?,
        sig = signals.recv() => {
            tracing::info!("{sig}: stopping before the node started");
            return Ok(());
        }
    };
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
        child: None,
    };
    let delay = Duration::from_millis(cmd.restart_delay_ms);
    // When CMD may start again (after it exited on its own), or when to rejoin (after resigning).
    let mut restart_at: Option<Instant> = None;
    let mut rejoin_at: Option<Instant> = None;
    loop {
        let l = rx.borrow_and_update().clone();
        let want = wanted(&l);
        if let Some(r) = &sup.child
            && want != Some(r.term)
        {
            let why = match want {
                Some(t) => format!("leading again under a new term ({t})"),
                None => "this node no longer leads".to_string(),
            };
            sup.stop(&why).await;
            continue;
        }
        match want {
            None => restart_at = None,
            Some(term) if sup.child.is_none() && rejoin_at.is_none() => {
                if restart_at.is_none_or(|t| Instant::now() >= t) {
                    restart_at = None;
                    if let Err(e) = sup.start(term) {
                        tracing::error!("{}: {e:#}; trying again in {delay:?}", cmd.group);
                        restart_at = Some(Instant::now() + delay);
                    }
                }
            }
            Some(_) => {}
        }
        let wake_at = restart_at.or(rejoin_at);
        tokio::select! {
            sig = signals.recv() => {
                tracing::info!("{sig}: stopping `{}`, then handing off leadership", sup.display());
                sup.stop(&format!("{sig} received")).await;
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

            status = sup.wait() => {
                let Some(r) = sup.child.take() else { continue };
                sup.log_exit(r.pid, status);
                sweep_group(r.pid, Instant::now() + sup.grace).await;
                if wanted(&rx.borrow()) != Some(r.term) {
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
    fn proc_stat_is_parsed() {
        assert_eq!(parse_stat("12 (sh) S 1 12 12 0 -1"), Some(('S', 12)));
        assert_eq!(parse_stat("13 (a) b) (c) Z 1 99 12"), Some(('Z', 99)));
        assert_eq!(parse_stat("garbage"), None);
    }

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

    #[tokio::test(flavor = "current_thread")]
    async fn stop_terminates_the_whole_group() {
        let dir = std::env::temp_dir().join(format!("baton-exec-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("grandchild.pid");
        let mut sup = Supervisor {
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "trap '' TERM; sleep 30 & echo $! > {}; while true; do sleep 0.05; done",
                    pidfile.display()
                ),
            ],
            group: "g".into(),
            node: "a".into(),
            grace: Duration::from_millis(300),
            child: None,
        };
        sup.start(7).unwrap();
        let pgid = sup.child.as_ref().unwrap().pid;
        let t0 = std::time::Instant::now();
        while !pidfile.exists() && t0.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // CMD (and the child it left, which inherited the ignored SIGTERM) ignore SIGTERM: it
        // takes the grace period, then SIGKILL for the whole group.
        let t0 = std::time::Instant::now();
        sup.stop("test").await;
        assert!(t0.elapsed() >= Duration::from_millis(250));
        assert!(!group_alive(pgid), "the process group must be gone");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
