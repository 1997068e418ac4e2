//! `baton __watchdog`: the process between `baton exec` and CMD that keeps CMD inside this
//! node's lease even when `baton exec` cannot run.
//!
//! `baton exec` starts one watchdog per run of CMD by re-executing its own binary
//! (`/proc/self/exe __watchdog …`; a fork of the multi-threaded-capable tokio process would be
//! unsafe, and `/proc/self/exe` still works after the binary was replaced on disk). It is a
//! separate process so that it keeps running while `baton exec` is stopped (SIGSTOP, `^Z` —
//! it has its own process group), paused or starved. It is synchronous and single-threaded:
//! `ppoll` on two descriptors.
//!
//! **Standby.** The first 8 bytes on the socket are the term CMD runs under (little endian;
//! CMD gets it as `BATON_TERM`). `baton exec` keeps one watchdog started ahead, while its
//! node does not lead, which waits for them without a time limit; on election it writes the
//! term and the first confirmation, so the successor's CMD starts without waiting for this
//! binary to be executed and initialised (fork, exec, dynamic loading, argument parsing: ~1 ms
//! and more on a busy host). A standby runs nothing: its socket closing, SIGTERM, SIGINT or
//! SIGHUP end it with exit code 0.
//!
//! **The feed.** `baton exec` and the watchdog share a Unix socket (the watchdog's stdin).
//! After the term, while this node holds the lease, `baton exec` writes, every `watchdog_ms / 4`, the
//! `CLOCK_MONOTONIC` time (8 bytes, little endian) at which it *confirmed* the lease: it reads
//! the clock, yields once to tokio so that the node's driver handles whatever the same wake-up
//! made ready (an expired lease timer, a backlog after a freeze), and only then reads
//! `Leadership::is_me()`. A confirmation at `t` therefore proves the lease held until at least
//! `t − 1 ms` (tokio's timer granularity). The watchdog keeps `deadline = max(t) +
//! watchdog_ms` over the confirmations it received ([`Lease`]; a time in the future is taken as
//! the receive time), and the clock is the kernel's monotonic clock, the same in both
//! processes — a confirmation that sat in the socket while `baton exec` was stopped confers
//! nothing more than when it was taken.
//!
//! **The bound.** When the monotonic clock passes the deadline, the watchdog SIGKILLs CMD's
//! process group. So CMD ends at most `watchdog_ms + 1 ms` (plus the time the kernel takes to
//! schedule the watchdog and deliver SIGKILL) after the lease ended, however `baton exec` is
//! stopped. The lease ends at least `failure_timeout − lease = heartbeat` before any voter may
//! elect another leader (docs/RELIABILITY.md 1.2), so with `watchdog_ms` below `heartbeat_ms`
//! (40 < 100 by default) CMD is dead before the successor can even be elected.
//!
//! **Starting.** The term and the first confirmation are written together (before the
//! watchdog is started, when there is no standby), and the feeding goes on after them; the watchdog starts CMD only once it holds a confirmation
//! that has not lapsed, and gives up (reports `L`) after twice the window without one, so a
//! `baton exec` stopped or demoted between its check and the spawn cannot start CMD outside
//! the lease.
//! Then it reports `S <pid>` when CMD started or `E <errno>` when it could not be started.
//!
//! **Stopping.** SIGTERM (or SIGINT) from `baton exec`: SIGTERM to CMD's process group, SIGKILL
//! after `grace_ms`, still bounded by the lease deadline. CMD exits on its own: the rest of its
//! group gets SIGTERM, then SIGKILL at the end of the grace. The watchdog then exits with CMD's
//! status (the same exit code, or the same signal). The socket closing (`baton exec` died,
//! even by SIGKILL) or the parent-death signal (SIGHUP, set by `baton exec`): SIGKILL to the
//! group at once — stragglers that CMD forked included. Before it fires the lease deadline it
//! reports `K`, so that `baton exec` can tell a kill for a lost lease from CMD's own exit.
//!
//! **Never an unrelated process.** Only the watchdog signals CMD's process group, and only
//! before it reaps CMD: CMD leads its group (`process_group(0)`), and the watchdog, its parent,
//! learns of its exit with `waitid(WNOWAIT)`, which leaves CMD a zombie. While the zombie
//! exists its pid — the group's id — cannot be given to any other process or group, so every
//! `killpg` reaches CMD's own group or nobody. CMD is reaped only after the last signal.
//!
//! **The sweep, cheaply.** The watchdog is a child subreaper: CMD's orphans are reparented to
//! it (and reaped by it). Once CMD has exited, a watchdog without any other live child knows
//! that nothing CMD started is left, from one read of its own `/proc/…/children`; only when
//! some child lives does it scan `/proc` for the group's members ([`group_alive`]). That scan
//! read every process's `stat` on every stop: ~5 ms with ~100 processes on a loaded 2-core
//! host, most of `baton exec`'s stop time (docs/PERFORMANCE.md, "baton exec on SIGTERM").
//! `baton exec` itself only ever signals the watchdog, its own unreaped child.
#![allow(
    clippy::exit,
    reason = "the watchdog process ends with the exit code of CMD, or its own when CMD could not run"
)]

use crate::cli::WatchdogCmd;
use crate::procs::{die_with_parent, signal_group, unblock_signals};
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

/// The kernel's monotonic clock in nanoseconds (the clock of `std::time::Instant` on Linux),
/// comparable between processes.
pub(crate) fn mono_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    (t.tv_sec() as u64) * 1_000_000_000 + t.tv_nsec() as u64
}

/// One lease confirmation on the wire.
pub(crate) fn encode(confirmed_at_ns: u64) -> [u8; 8] {
    confirmed_at_ns.to_le_bytes()
}

/// The deadline logic: CMD may run until `window` after the latest lease confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    window_ns: u64,
    /// Monotonic time at which CMD must be dead; 0 before any confirmation.
    deadline_ns: u64,
}

impl Lease {
    /// No confirmation yet: expired.
    pub(crate) fn new(window: Duration) -> Lease {
        Lease {
            window_ns: window.as_nanos() as u64,
            deadline_ns: 0,
        }
    }

    /// A confirmation taken at `confirmed_ns`, received at `received_ns`. A confirmation cannot
    /// be younger than its receipt (one clock), so a future time is clamped; an old one (it sat
    /// in the socket) only counts from when it was taken; the deadline never moves back.
    pub(crate) fn confirm(&mut self, confirmed_ns: u64, received_ns: u64) {
        let at = confirmed_ns.min(received_ns);
        self.deadline_ns = self.deadline_ns.max(at.saturating_add(self.window_ns));
    }

    /// Whether CMD must die now.
    pub(crate) fn expired(&self, now_ns: u64) -> bool {
        now_ns >= self.deadline_ns
    }

    /// The deadline (monotonic ns).
    pub(crate) fn deadline_ns(&self) -> u64 {
        self.deadline_ns
    }
}

/// Splits a byte stream into confirmations, keeping a partial one for the next read.
#[derive(Debug, Default)]
pub(crate) struct Feeds {
    partial: Vec<u8>,
}

impl Feeds {
    /// Appends `bytes` and returns the complete confirmations they finish.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<u64> {
        self.partial.extend_from_slice(bytes);
        let whole = self.partial.len() / 8 * 8;
        let out = self.partial[..whole]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        self.partial.drain(..whole);
        out
    }
}

/// Whether process group `pgid` still has a live (not zombie) member. Orphaned zombies count
/// as gone: where PID 1 does not reap (some containers) they would otherwise linger forever.
pub(crate) fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No /proc: ask the kernel (zombies then count as alive).
        return match i32::try_from(pgid) {
            Ok(raw) => nix::sys::signal::killpg(Pid::from_raw(raw), None).is_ok(),
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

/// The cheap answer to [`group_alive`] once CMD (`cmd`, this process's child) has exited:
/// `Some(false)` when this process — a child subreaper, so that every orphaned descendant of
/// CMD is reparented to it — has no live child but CMD's zombie. Every process that CMD
/// started and that still lives then has a live ancestor among this process's children, so
/// none is left (a process that joined the group from outside CMD's descendants, by
/// `setpgid` from elsewhere in the session, is not seen: it is not something CMD started).
/// `None` when some child lives (the full scan decides: it may have left the group) or the
/// kernel has no `/proc/self/task/TID/children`. Reaps the zombies of orphans on the way:
/// one /proc read instead of [`group_alive`]'s read of every process's `stat` (~5 ms with
/// ~100 processes on a loaded host), on the path of every stop.
pub(crate) fn descendants_gone(cmd: u32) -> Option<bool> {
    let me = std::process::id();
    let list = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).ok()?;
    let mut alive = false;
    for kid in list
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
    {
        if kid == cmd {
            continue;
        }
        let zombie = std::fs::read_to_string(format!("/proc/{kid}/stat"))
            .ok()
            .and_then(|st| parse_stat(&st))
            .is_some_and(|(state, _)| matches!(state, 'Z' | 'X' | 'x'));
        if zombie {
            reap(kid);
        } else {
            alive = true;
        }
    }
    (!alive).then_some(false)
}

/// Reaps child `pid` if it has exited (an orphan of CMD's, reparented to this subreaper).
fn reap(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = waitpid(Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG));
    }
}

/// Reaps every exited child but CMD: orphans reparented to this subreaper must not pile up as
/// zombies while CMD runs for days.
fn reap_orphans(cmd: u32) {
    let me = std::process::id();
    if let Ok(list) = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")) {
        for kid in list
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            if kid != cmd {
                reap(kid);
            }
        }
    }
}

/// `(state, pgrp)` from `/proc/PID/stat` (`pid (comm) state ppid pgrp …`; comm may hold
/// spaces and parentheses, so fields are counted from the last `)`).
pub(crate) fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

const MS: u64 = 1_000_000;

/// Reports to `baton exec` (best effort: it may be gone).
fn report(sock: &mut UnixStream, line: &str) {
    let _ = sock.write_all(line.as_bytes());
}

/// `baton __watchdog`: never returns.
pub(crate) fn run(cmd: WatchdogCmd) -> ! {
    match watch(cmd) {
        Ok(status) => exit_like(status),
        Err(e) => {
            tracing::error!("watchdog: {e:#}");
            std::process::exit(125)
        }
    }
}

fn watch(cmd: WatchdogCmd) -> anyhow::Result<WaitStatus> {
    use anyhow::Context;
    let group = cmd.group.clone();
    let shown = cmd.command.join(" ");
    // Signals arrive through a descriptor, in the poll loop.
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        mask.add(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).context("sigprocmask")?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("signalfd")?;
    // SAFETY: `baton exec` hands the socket over as stdin; nothing else in this process uses
    // descriptor 0.
    let mut sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(0) });

    let window = Duration::from_millis(cmd.watchdog_ms);
    let mut lease = Lease::new(window);
    let mut feeds = Feeds::default();
    let mut buf = [0u8; 4096];

    // The term comes first: at once from a `baton exec` that starts CMD now, or, for a standby
    // (started ahead while the node does not lead, so that an election does not wait for this
    // binary to start), when the node is elected. Until then nothing runs, and the socket
    // closing or a signal ends this process quietly.
    let Some(term) = wait_for_term(&mut sock, &sigfd, &mut feeds, &mut lease, &mut buf)? else {
        tracing::debug!("{group}: watchdog: no term came: `{shown}` not started");
        std::process::exit(0);
    };

    // The first confirmation was written before this process started; while it starts,
    // `baton exec` goes on confirming. CMD starts only under a confirmation that has not
    // lapsed (this process may have been slow to start): wait for one for up to twice the
    // window.
    sock.set_read_timeout(Some(window * 2))?;
    while lease.expired(mono_ns()) {
        let n = match sock.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // Not an error: the lease went while this process started; `baton exec`
                // learns it from the report (and from its own leadership watch).
                report(&mut sock, "L\n");
                tracing::debug!(
                    "{group}: watchdog: the lease was not confirmed: `{shown}` not started"
                );
                std::process::exit(125);
            }
            Err(e) => return Err(anyhow::Error::new(e).context("reading lease confirmations")),
        };
        anyhow::ensure!(
            n > 0,
            "baton exec closed the socket before confirming the lease"
        );
        for t in feeds.push(&buf[..n]) {
            lease.confirm(t, mono_ns());
        }
    }
    sock.set_nonblocking(true)?;

    // CMD's orphans become this process's children: what CMD leaves behind is found without
    // scanning /proc ([`descendants_gone`]).
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::debug!("{group}: watchdog: no child subreaper ({e}): the sweep scans /proc");
    }
    let (program, args) = cmd.command.split_first().expect("clap requires CMD");
    let mut c = std::process::Command::new(program);
    c.args(args)
        .env("BATON_TERM", term.to_string())
        .stdin(Stdio::null())
        .process_group(0);
    unblock_signals(&mut c);
    die_with_parent(&mut c);
    let child = match c.spawn() {
        Ok(child) => child,
        Err(e) => {
            match e.raw_os_error() {
                Some(errno) => report(&mut sock, &format!("E {errno}\n")),
                None => report(&mut sock, &format!("M {e}\n")),
            }
            std::process::exit(127);
        }
    };
    let pid = child.id();
    // Never waited for through `child` (that would reap): waitid/waitpid below.
    drop(child);
    report(&mut sock, &format!("S {pid}\n"));
    let cmd_pid = Pid::from_raw(pid as i32);

    let grace = cmd.grace_ms * MS;
    let mut sock_open = true;
    // When the group gets SIGKILL after a SIGTERM (set by a stop or by CMD's own exit).
    let mut stop_at: Option<u64> = None;
    let mut killed = false;
    let mut exited = false;
    loop {
        let now = mono_ns();
        if !exited
            && !matches!(
                waitid(
                    Id::Pid(cmd_pid),
                    WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT
                ),
                Ok(WaitStatus::StillAlive)
            )
        {
            exited = true;
        }
        if exited {
            if killed || descendants_gone(pid) == Some(false) || !group_alive(pid) {
                // The last signal has been sent: only now may the group's id be freed.
                return waitpid(cmd_pid, None).context("waitpid");
            }
            if stop_at.is_none() {
                tracing::info!(
                    "{group}: `{shown}` (pid {pid}) ended; stopping what it left in its process group"
                );
                signal_group(pid, Signal::SIGTERM);
                stop_at = Some(now + grace);
            }
        }
        // SIGKILL once: when the lease expires (baton exec is told first), or the grace after
        // SIGTERM runs out.
        let kill_why = if killed {
            None
        } else if lease.expired(now) {
            report(&mut sock, "K\n");
            Some(format!(
                "watchdog: baton exec has not confirmed the lease for {} ms: SIGKILL to `{shown}` (process group {pid})",
                cmd.watchdog_ms
            ))
        } else if stop_at.is_some_and(|t| now >= t) {
            Some(format!(
                "`{shown}` (process group {pid}) still runs {} ms after SIGTERM: SIGKILL",
                cmd.grace_ms
            ))
        } else {
            None
        };
        if let Some(why) = kill_why {
            tracing::warn!("{group}: {why}");
            signal_group(pid, Signal::SIGKILL);
            killed = true;
            continue;
        }
        let mut until = lease.deadline_ns();
        if let Some(t) = stop_at {
            until = until.min(t);
        }
        if exited || killed {
            // Watching the group empty, or CMD die.
            until = until.min(now + 10 * MS);
        }
        if killed {
            until = now + 10 * MS;
        }
        let wait = until.saturating_sub(now);
        let timeout = TimeSpec::from_duration(Duration::from_nanos(wait));
        let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        if sock_open {
            fds.push(PollFd::new(sock.as_fd(), PollFlags::POLLIN));
        }
        match ppoll(&mut fds, Some(timeout), None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(anyhow::Error::new(e).context("ppoll")),
        }
        let sock_ready = sock_open && fds[1].revents().is_some_and(|r| !r.is_empty());
        drop(fds);
        while let Ok(Some(info)) = sigfd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGTERM | Signal::SIGINT) if stop_at.is_none() && !killed => {
                    signal_group(pid, Signal::SIGTERM);
                    stop_at = Some(mono_ns() + grace);
                }
                Ok(Signal::SIGCHLD) => reap_orphans(pid),
                Ok(Signal::SIGHUP) if !killed => {
                    tracing::warn!(
                        "{group}: watchdog: baton exec died: SIGKILL to `{shown}` (process group {pid})"
                    );
                    signal_group(pid, Signal::SIGKILL);
                    killed = true;
                }
                _ => {}
            }
        }
        if sock_ready {
            loop {
                match sock.read(&mut buf) {
                    Ok(0) => {
                        sock_open = false;
                        if !killed {
                            tracing::warn!(
                                "{group}: watchdog: baton exec is gone: SIGKILL to `{shown}` (process group {pid})"
                            );
                            signal_group(pid, Signal::SIGKILL);
                            killed = true;
                        }
                        break;
                    }
                    Ok(n) => {
                        let now = mono_ns();
                        for t in feeds.push(&buf[..n]) {
                            lease.confirm(t, now);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        sock_open = false;
                        break;
                    }
                }
            }
        }
    }
}

/// Blocks until the term arrives on the socket (the first 8 bytes, little endian); the
/// confirmations that follow it in the same reads go into `lease`. `None` when the socket
/// closes or SIGTERM, SIGINT or SIGHUP arrives first.
fn wait_for_term(
    sock: &mut UnixStream,
    sigfd: &SignalFd,
    feeds: &mut Feeds,
    lease: &mut Lease,
    buf: &mut [u8],
) -> anyhow::Result<Option<u64>> {
    use anyhow::Context;
    loop {
        let mut fds = [
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
        ];
        match ppoll(&mut fds, None, None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(anyhow::Error::new(e).context("ppoll")),
        }
        let sock_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        while let Ok(Some(info)) = sigfd.read_signal() {
            if matches!(
                Signal::try_from(info.ssi_signo as i32),
                Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP)
            ) {
                return Ok(None);
            }
        }
        if !sock_ready {
            continue;
        }
        let n = match sock.read(buf) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the term"),
        };
        let mut values = feeds.push(&buf[..n]).into_iter();
        if let Some(term) = values.next() {
            let now = mono_ns();
            for t in values {
                lease.confirm(t, now);
            }
            return Ok(Some(term));
        }
    }
}

/// Ends this process the way CMD ended: its exit code, or its signal.
fn exit_like(status: WaitStatus) -> ! {
    match status {
        WaitStatus::Exited(_, code) => std::process::exit(code),
        WaitStatus::Signaled(_, sig, _) => {
            // Default action, unblocked, no core file of ours.
            let _ = nix::sys::prctl::set_dumpable(false);
            // SAFETY: restoring the default disposition installs no handler.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
            let mut one = SigSet::empty();
            one.add(sig);
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&one), None);
            let _ = nix::sys::signal::raise(sig);
            std::process::exit(128 + sig as i32)
        }
        _ => std::process::exit(125),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_is_parsed() {
        assert_eq!(parse_stat("12 (sh) S 1 12 12 0 -1"), Some(('S', 12)));
        assert_eq!(parse_stat("13 (a) b) (c) Z 1 99 12"), Some(('Z', 99)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_deadline_follows_the_confirmation_time_not_the_receipt() {
        let mut l = Lease::new(Duration::from_millis(40));
        assert!(l.expired(0), "no confirmation: no lease");
        l.confirm(1_000 * MS, 1_000 * MS);
        assert!(!l.expired(1_039 * MS));
        assert!(l.expired(1_040 * MS));
        // A confirmation that sat in the socket (baton exec stopped right after taking it)
        // counts from when it was taken: it cannot stretch the deadline past 40 ms after it.
        let mut l = Lease::new(Duration::from_millis(40));
        l.confirm(1_000 * MS, 4_000 * MS);
        assert!(l.expired(1_040 * MS));
        // A time from the future (impossible on one clock) counts from its receipt.
        let mut l = Lease::new(Duration::from_millis(40));
        l.confirm(9_000 * MS, 1_000 * MS);
        assert!(l.expired(1_040 * MS));
        // The deadline never moves back: an old confirmation after a new one changes nothing.
        let mut l = Lease::new(Duration::from_millis(40));
        l.confirm(2_000 * MS, 2_000 * MS);
        l.confirm(1_000 * MS, 2_001 * MS);
        assert_eq!(l.deadline_ns(), 2_040 * MS);
        // Feeding stops at 2 000 ms: dead at 2 040 ms, not a nanosecond later.
        assert!(!l.expired(2_040 * MS - 1));
        assert!(l.expired(2_040 * MS));
    }

    #[test]
    fn feeds_are_framed_across_reads() {
        let mut f = Feeds::default();
        let a = encode(7);
        let b = encode(u64::MAX - 1);
        let mut bytes = a.to_vec();
        bytes.extend_from_slice(&b);
        assert_eq!(f.push(&bytes[..3]), Vec::<u64>::new());
        assert_eq!(f.push(&bytes[3..11]), vec![7]);
        assert_eq!(f.push(&bytes[11..]), vec![u64::MAX - 1]);
        assert_eq!(f.push(&[]), Vec::<u64>::new());
    }

    #[test]
    fn the_clock_is_the_one_of_instant() {
        // Instant is CLOCK_MONOTONIC on Linux: both advance together.
        let (a, i) = (mono_ns(), std::time::Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (b, j) = (mono_ns(), std::time::Instant::now());
        let d = (b - a) as i128 - j.duration_since(i).as_nanos() as i128;
        assert!(d.abs() < 5 * MS as i128, "{d}");
    }
}
