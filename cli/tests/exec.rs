//! `baton exec` at its edges, with real processes on loopback: a `baton exec` frozen with
//! SIGSTOP (its watchdog must still stop its command inside the lease), a command that
//! cannot be started (the node must resign, log the OS error once, and exit with
//! `--on-exit exit`), and the watchdog (`baton __watchdog`) driven directly.
//!
//! Every child is owned by a guard that SIGKILLs and reaps it on drop; every wait is bounded.
//! The process harness is `tests/common`, shared with `cluster.rs`. `BATON_TEST_KEEP=1` keeps the scratch directories (configs, logs, runs).
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod common;

use common::{BATON, Dir, Proc, running, solo_exec, spawn_solo_sh, wait_until};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Three nodes a, b, c (all voters), heartbeat 50 ms, failure timeout 300 ms (lease 250 ms):
/// the shared process cluster, with the runs file every working node appends to.
struct Cluster(common::Cluster);

const ABC: [&str; 3] = ["a", "b", "c"];

impl std::ops::Deref for Cluster {
    type Target = common::Cluster;
    fn deref(&self) -> &common::Cluster {
        &self.0
    }
}

impl std::ops::DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut common::Cluster {
        &mut self.0
    }
}

impl Cluster {
    fn new(tag: &str) -> Cluster {
        Cluster(common::Cluster::new(tag, &ABC))
    }

    fn runs(&self) -> PathBuf {
        self.dir.0.join("runs.txt")
    }

    /// Starts `baton exec` on node `name` with `extra` flags and `command`, and waits until
    /// the node answers.
    fn exec(&mut self, name: &str, extra: &[&str], command: &[&str]) {
        let mut cmd = self.command(name, &["exec", "--group", "tracked"]);
        cmd.args(extra).arg("--").args(command);
        self.spawn(name, cmd);
    }

    fn logs(&self) -> String {
        let mut out = self.0.logs();
        out += &format!(
            "---- runs.txt\n{}\n",
            std::fs::read_to_string(self.runs()).unwrap_or_default()
        );
        out
    }

    /// The shell script every working node runs: `start NODE TERM PID NS`, then `hb NODE PID
    /// NS` every ~20 ms (wall-clock nanoseconds), and `end NODE PID NS` on SIGTERM.
    fn script(&self) -> String {
        format!(
            "f={f}; echo \"start $BATON_NODE $BATON_TERM $$ $(date +%s%N)\" >> $f; \
             trap 'echo \"end $BATON_NODE $$ $(date +%s%N)\" >> $f; exit 0' TERM; \
             while true; do echo \"hb $BATON_NODE $$ $(date +%s%N)\" >> $f; sleep 0.02; done",
            f = self.runs().display()
        )
    }
}

/// Waits until every node reports the same leader and sees all three alive.
fn agreed(c: &Cluster, timeout: Duration) -> (String, u64) {
    common::agreed(c, &ABC, timeout)
}

/// One line of the shared runs file.
#[derive(Debug, Clone)]
enum Line {
    Start {
        node: String,
        term: u64,
        pid: u32,
        ns: u128,
    },
    Beat {
        node: String,
        pid: u32,
        ns: u128,
    },
    End {
        node: String,
        pid: u32,
        ns: u128,
    },
}

fn parse_lines(text: &str) -> Vec<Line> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                ["start", n, t, p, ns] => Some(Line::Start {
                    node: n.to_string(),
                    term: t.parse().ok()?,
                    pid: p.parse().ok()?,
                    ns: ns.parse().ok()?,
                }),
                ["hb", n, p, ns] => Some(Line::Beat {
                    node: n.to_string(),
                    pid: p.parse().ok()?,
                    ns: ns.parse().ok()?,
                }),
                ["end", n, p, ns] => Some(Line::End {
                    node: n.to_string(),
                    pid: p.parse().ok()?,
                    ns: ns.parse().ok()?,
                }),
                _ => None,
            }
        })
        .collect()
}

/// The distinct leaderships `(node, term)` among `starts`, in order, with the last start of each.
fn runs_by_term(starts: &[(String, u64, u32, u128)]) -> Vec<(String, u64, u32, u128)> {
    let mut out: Vec<(String, u64, u32, u128)> = Vec::new();
    for s in starts {
        match out.last_mut() {
            Some(last) if last.0 == s.0 && last.1 == s.1 => *last = s.clone(),
            _ => out.push(s.clone()),
        }
    }
    out
}

/// The starts `(node, term, pid, ns)`, checking that no two commands ever ran at once: every
/// heartbeat and end line comes from the command that started last, and is not timestamped
/// after a later start.
fn check_no_overlap(text: &str) -> Vec<(String, u64, u32, u128)> {
    let lines = parse_lines(text);
    let mut starts: Vec<(String, u64, u32, u128)> = Vec::new();
    for line in &lines {
        match line {
            Line::Start {
                node,
                term,
                pid,
                ns,
            } => {
                if let Some((last_node, last_term, _, _)) = starts.last() {
                    // A later term, or the same node starting again under its term (after a
                    // watchdog kill on a machine too loaded to confirm the lease in time).
                    assert!(
                        term > last_term || (term == last_term && node == last_node),
                        "terms must grow:\n{text}"
                    );
                }
                starts.push((node.clone(), *term, *pid, *ns));
            }
            Line::Beat { node, pid, .. } | Line::End { node, pid, .. } => {
                let current = starts.last().expect("a line before any start");
                assert_eq!(
                    (&current.0, current.2),
                    (node, *pid),
                    "{node} (pid {pid}) still ran after {} (pid {}) started:\n{text}",
                    current.0,
                    current.2
                );
            }
        }
    }
    // Wall-clock order too: a line of one command timestamped after the next one's start.
    for w in starts.windows(2) {
        let (old_pid, new_start) = (w[0].2, w[1].3);
        for l in &lines {
            if let Line::Beat { pid, ns, .. } | Line::End { pid, ns, .. } = l {
                assert!(
                    !(*pid == old_pid && *ns >= new_start),
                    "pid {old_pid} wrote at {ns} after the next command started at {new_start}:\n{text}"
                );
            }
        }
    }
    starts
}

fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Acceptance: `baton exec` SIGSTOPped for 3 s — the two commands never run at the same time.
/// Without the watchdog the frozen node's command runs the whole 3 s, next to the new
/// leader's.
#[test]
fn a_frozen_baton_exec_loses_its_command_before_another_node_starts_one() {
    let mut c = Cluster::new("sigstop");
    std::fs::write(c.runs(), "").unwrap();
    let script = c.script();
    for n in ABC {
        c.exec(n, &["--grace-ms", "2000"], &["sh", "-c", &script]);
    }
    let runs = |c: &Cluster| std::fs::read_to_string(c.runs()).unwrap();
    wait_until(Duration::from_secs(10), "a first run", || {
        check_no_overlap(&runs(&c)).first().cloned()
    });
    agreed(&c, Duration::from_secs(10));
    let (first, term1, pid1, _) = runs_by_term(&check_no_overlap(&runs(&c)))[0].clone();
    // A few heartbeats, so the command is well under way.
    wait_until(Duration::from_secs(5), "heartbeats", || {
        (parse_lines(&runs(&c))
            .iter()
            .filter(|l| matches!(l, Line::Beat { pid, .. } if *pid == pid1))
            .count()
            >= 5)
            .then_some(())
    });

    // Freeze the leader's `baton exec` (only it: its watchdog and command keep running).
    let stopped_at = (Instant::now(), wall_ns());
    c.proc(&first).signal("STOP");
    // When the old command is gone, watched every millisecond.
    let gone = wait_until(Duration::from_secs(3), "the old command to die", || {
        (!running(pid1)).then(|| (stopped_at.0.elapsed(), wall_ns()))
    });
    let (second, term2, _, start2) =
        wait_until(Duration::from_secs(5), "another node's run", || {
            let starts = check_no_overlap(&runs(&c));
            starts.iter().find(|s| s.1 > term1).cloned()
        });
    assert_ne!(second, first, "{}", c.logs());
    assert!(term2 > term1);
    let gap_ms = (start2 as i128 - gone.1 as i128) as f64 / 1e6;
    println!(
        "SIGSTOP of {first}'s baton exec: its command gone after {:.1} ms; {second}'s command started {gap_ms:.1} ms after that",
        gone.0.as_secs_f64() * 1e3
    );
    assert!(
        gap_ms > 0.0,
        "the new command started before the old one died\n{}",
        c.logs()
    );
    // The watchdog fires 40 ms after the last confirmation (the last one at most ~10 ms
    // before the freeze); generous for a loaded machine, far below the 3 s freeze.
    assert!(
        gone.0 < Duration::from_millis(250),
        "old command outlived the freeze by {:?}",
        gone.0
    );

    // Thaw after 3 s: the old node learns it lost the lease, follows, and the cluster heals
    // with one command running (the new leader's), no overlap at any time.
    let frozen = Duration::from_secs(3).saturating_sub(stopped_at.0.elapsed());
    sleep(frozen);
    c.proc(&first).signal("CONT");
    let (l, t) = agreed(&c, Duration::from_secs(10));
    assert_eq!((l.as_str(), t), (second.as_str(), term2), "{}", c.logs());
    sleep(Duration::from_millis(500));
    let text = runs(&c);
    let leaderships = runs_by_term(&check_no_overlap(&text));
    assert_eq!(leaderships.len(), 2, "{}", c.logs());
    // The new leader's command runs (on a starved machine its own watchdog may have restarted
    // it: its latest start, within a generous bound; overlap is checked on every read).
    wait_until(
        Duration::from_secs(3),
        "the new leader's command to keep running",
        || {
            let now = runs_by_term(&check_no_overlap(&runs(&c)));
            now.last()
                .filter(|l| l.0 == second && l.1 == term2 && running(l.2))
                .map(|_| ())
        },
    );
    let log = c.read_log(&first);
    assert!(
        log.contains("has not confirmed the lease for 40 ms"),
        "the watchdog must say why it killed the command:\n{log}"
    );
    // The frozen node's `baton exec` is alive and well, as a follower.
    assert!(c.proc(&first).try_exit().is_none(), "{log}");
}

/// Acceptance: a command that cannot be started on the first node — another node's command
/// runs within 2 s; the first node logs the OS error once, resigns, and comes back as a
/// follower (default `--on-exit restart`).
#[test]
fn a_command_that_cannot_start_makes_the_node_resign() {
    let mut c = Cluster::new("nostart");
    std::fs::write(c.runs(), "").unwrap();
    let script = c.script();
    // Exists but is not executable: EACCES.
    let not_exec = c.dir.0.join("not-executable.sh");
    std::fs::write(&not_exec, "#!/bin/sh\necho should never run\n").unwrap();
    let not_exec = not_exec.display().to_string();
    c.exec("a", &["--restart-delay-ms", "300"], &[&not_exec]);
    c.exec("b", &[], &["sh", "-c", &script]);
    // a can lead as soon as b is there (2 of 3 voters): it fails at once and resigns.
    let (failed_at, run) = {
        let mut failed_at: Option<Instant> = None;
        wait_until(Duration::from_secs(10), "b's command", || {
            if failed_at.is_none() && c.read_log("a").contains("cannot start") {
                failed_at = Some(Instant::now());
            }
            let starts = check_no_overlap(&std::fs::read_to_string(c.runs()).unwrap());
            match (failed_at, starts.first()) {
                (Some(t), Some(s)) => Some((t, s.clone())),
                _ => None,
            }
        })
    };
    let took = failed_at.elapsed();
    println!(
        "a could not start its command; {}'s command ran within {:.1} ms",
        run.0,
        took.as_secs_f64() * 1e3
    );
    assert_eq!(run.0, "b", "{}", c.logs());
    assert!(took < Duration::from_secs(2), "{took:?}\n{}", c.logs());
    c.exec("c", &[], &["sh", "-c", &script]);
    let (l, _) = agreed(&c, Duration::from_secs(10));
    assert_eq!(l, "b", "{}", c.logs());
    // a rejoined (after 300 ms), as a follower, and said it once.
    sleep(Duration::from_millis(700));
    let log = c.read_log("a");
    assert_eq!(
        log.matches("Permission denied").count(),
        1,
        "the OS error, exactly once:\n{log}"
    );
    assert!(log.contains("resigning leadership"), "{log}");
    assert!(log.contains("rejoined as"), "{log}");
    assert!(c.proc("a").try_exit().is_none(), "{log}");
    let runs = runs_by_term(&check_no_overlap(
        &std::fs::read_to_string(c.runs()).unwrap(),
    ));
    assert_eq!(runs.len(), 1, "{}", c.logs());
}

/// With `--on-exit exit`, a missing command makes the first node hand off and exit non-zero,
/// naming the OS error; another node's command runs within 2 s.
#[test]
fn a_missing_command_with_on_exit_exit_exits_non_zero_naming_the_os_error() {
    let mut c = Cluster::new("missing");
    std::fs::write(c.runs(), "").unwrap();
    let script = c.script();
    let missing = c.dir.0.join("no-such-command").display().to_string();
    c.exec("a", &["--on-exit", "exit"], &[&missing, "arg"]);
    let t0 = Instant::now();
    c.exec("b", &[], &["sh", "-c", &script]);
    c.exec("c", &[], &["sh", "-c", &script]);
    let code = c.proc("a").wait_status(Duration::from_secs(10));
    let exited = Instant::now();
    let run = wait_until(Duration::from_secs(5), "another node's command", || {
        check_no_overlap(&std::fs::read_to_string(c.runs()).unwrap())
            .first()
            .cloned()
    });
    let took = exited.elapsed();
    println!(
        "a exited ({code:?}) {:.0} ms after b started; {}'s command ran {:.1} ms after a's exit was seen",
        (exited - t0).as_secs_f64() * 1e3,
        run.0,
        took.as_secs_f64() * 1e3
    );
    assert_ne!(run.0, "a");
    assert!(took < Duration::from_secs(2), "{took:?}\n{}", c.logs());
    assert_eq!(code.code(), Some(1), "{}", c.logs());
    let log = c.read_log("a");
    assert!(
        log.contains("baton: error:") && log.contains("No such file or directory (os error 2)"),
        "{log}"
    );
    assert_eq!(log.matches("No such file or directory").count(), 1, "{log}");
}

/// A node alone (its own majority) whose command cannot start does not lead and fail in a
/// loop: it resigns and tries again after a doubling delay, logging the error once.
#[test]
fn a_lone_node_with_a_missing_command_backs_off_and_logs_once() {
    let dir = Dir::new("backoff");
    let log = dir.0.join("solo.log");
    let f = std::fs::File::create(&log).unwrap();
    let mut p = Proc::spawn(
        solo_exec(&dir, &["--restart-delay-ms", "200"])
            .arg("/nonexistent/baton-test-command")
            .env("RUST_LOG", "info")
            .stdout(f.try_clone().unwrap())
            .stderr(f),
    );
    // Attempts at about 0, 0.2, 0.6, 1.4 and 3.0 s (plus election time each).
    sleep(Duration::from_millis(2500));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("No such file or directory").count(),
        1,
        "once:\n{text}"
    );
    let rejoins = text.matches("rejoined as").count();
    assert!((2..=4).contains(&rejoins), "{rejoins} rejoins:\n{text}");
    assert!(p.try_exit().is_none(), "{text}");
    p.signal("TERM");
    assert_eq!(p.wait_status(Duration::from_secs(10)).code(), Some(0));
}

/// CLOCK_MONOTONIC in nanoseconds, the watchdog's clock.
fn mono_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// A confirmation from the future counts from its receipt (the watchdog clamps it): a first
/// confirmation that a slow start of the watchdog cannot make stale.
fn far_future() -> u64 {
    mono_ns() + 3_600_000_000_000
}

/// The term the watchdog tests hand their watchdogs.
const TERM: u64 = 7;

/// A `baton __watchdog` with CMD `script` (a shell script), fed through `sock`.
fn watchdog(script: &str, first_confirmation: u64) -> (Proc, UnixStream, u32) {
    watchdog_with_grace(script, first_confirmation, 2000)
}

fn watchdog_with_grace(
    script: &str,
    first_confirmation: u64,
    grace_ms: u64,
) -> (Proc, UnixStream, u32) {
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    // The term first (watchdog.rs, "Standby"), then the first confirmation.
    ours.write_all(&TERM.to_le_bytes()).unwrap();
    ours.write_all(&first_confirmation.to_le_bytes()).unwrap();
    let p = Proc::spawn(
        Command::new(BATON)
            .args([
                "__watchdog",
                "--group",
                "g",
                "--grace-ms",
                &grace_ms.to_string(),
                "--watchdog-ms",
                "40",
                "--",
                "sh",
                "-c",
                script,
            ])
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stderr(Stdio::null()),
    );
    ours.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while ours.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let line = String::from_utf8(line).unwrap();
    let pid = line
        .strip_prefix("S ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("watchdog said {line:?}"));
    (p, ours, pid)
}

/// A watchdog (grace `grace_ms`, first confirmation far ahead) whose CMD runs `prelude`, then
/// forks a straggler into its group and loops; returns the scratch dir, the watchdog, its
/// socket, CMD's pid and the straggler's.
fn watchdog_with_straggler(
    tag: &str,
    prelude: &str,
    grace_ms: u64,
) -> (Dir, Proc, UnixStream, u32, u32) {
    let dir = Dir::new(tag);
    let straggler = dir.0.join("straggler.pid");
    let script = format!(
        "{prelude}sleep 30 & echo $! > {}; while true; do sleep 0.01; done",
        straggler.display()
    );
    let (w, mut sock, pid) = watchdog_with_grace(&script, far_future(), grace_ms);
    let kid: u32 = wait_until(Duration::from_secs(5), "the straggler", || {
        // Still leading while the shell starts: the first confirmation only counts from its
        // arrival, and a loaded machine may take longer than the window to fork.
        sock.write_all(&mono_ns().to_le_bytes()).ok()?;
        std::fs::read_to_string(&straggler)
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    (dir, w, sock, pid, kid)
}

/// The watchdog alone: fed, CMD runs; not fed, CMD's whole process group (a forked
/// straggler too) is SIGKILLed 40 ms after the last confirmation; the socket closing kills
/// at once; a confirmation that has already lapsed starts nothing.
#[test]
fn the_watchdog_kills_the_group_when_the_feeding_stops() {
    // Fed every 10 ms for 300 ms: alive throughout. A feeding gap that this test itself let
    // grow past the 40 ms window (a loaded machine stalling it) proves nothing either way:
    // measured, and the scenario starts again (three times at most).
    let mut attempts = 0;
    let (dir, mut w, mut sock, pid, kid) = loop {
        attempts += 1;
        let (dir, w, mut sock, pid, kid) = watchdog_with_straggler("watchdog", "", 2000);
        let mut stalled = None;
        let mut fed = mono_ns();
        for _ in 0..30 {
            sock.write_all(&mono_ns().to_le_bytes()).unwrap();
            let gap_ms = (mono_ns() - fed) as f64 / 1e6;
            fed = mono_ns();
            sleep(Duration::from_millis(10));
            if gap_ms > 30.0 || (mono_ns() - fed) > 30_000_000 {
                stalled = Some(gap_ms);
                break;
            }
            assert!(running(pid), "killed while fed");
        }
        match stalled {
            None => break (dir, w, sock, pid, kid),
            Some(gap) => {
                println!("watchdog: this test stalled ({gap:.1} ms between feeds): again");
                assert!(
                    attempts < 3,
                    "the test could not feed every 10 ms three times"
                );
                // The socket closing kills CMD's group; then the watchdog goes.
                drop(sock);
                sleep(Duration::from_millis(100));
                drop((dir, w));
            }
        }
    };
    let last = mono_ns();
    sock.write_all(&last.to_le_bytes()).unwrap();
    wait_until(
        Duration::from_secs(2),
        "CMD and its straggler to die",
        || (!running(pid) && !running(kid)).then_some(()),
    );
    let after_ms = (mono_ns() - last) as f64 / 1e6;
    println!("watchdog: the group was gone {after_ms:.1} ms after the last confirmation");
    assert!(after_ms >= 39.0, "killed early: {after_ms} ms");
    // Generous: it is the window (40 ms), not the 2 s grace, that ends it.
    assert!(after_ms < 500.0, "killed late: {after_ms} ms");
    let st = w.wait_status(Duration::from_secs(5));
    assert_eq!(
        st.signal(),
        Some(9),
        "the watchdog mirrors CMD's end: {st:?}"
    );
    let mut rest = String::new();
    let _ = sock.read_to_string(&mut rest);
    assert!(rest.lines().any(|l| l == "K"), "{rest:?}");

    // The socket closing (baton exec gone) kills at once.
    let (mut w, sock, pid) = watchdog("exec sleep 30", far_future());
    let t = Instant::now();
    drop(sock);
    wait_until(Duration::from_secs(2), "CMD to die on EOF", || {
        (!running(pid)).then_some(())
    });
    println!(
        "watchdog: CMD gone {:.1} ms after the socket closed",
        t.elapsed().as_secs_f64() * 1e3
    );
    // Generous: at once, not after the 2 s grace.
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    w.wait_status(Duration::from_secs(5));

    // Already lapsed, and no fresher one within twice the window: nothing starts.
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    ours.write_all(&TERM.to_le_bytes()).unwrap();
    ours.write_all(&(mono_ns() - 100_000_000).to_le_bytes())
        .unwrap();
    let marker = dir.0.join("ran");
    let mut w = Proc::spawn(
        Command::new(BATON)
            .args(["__watchdog", "--group", "g", "--grace-ms", "100"])
            .args(["--watchdog-ms", "40", "--", "touch"])
            .arg(&marker)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stderr(Stdio::null()),
    );
    let st = w.wait_status(Duration::from_secs(5));
    assert!(!st.success());
    let mut said = String::new();
    ours.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = ours.read_to_string(&mut said);
    assert_eq!(said, "L\n");
    assert!(!marker.exists(), "CMD ran outside the lease");
}

/// A standby watchdog (started before its node leads) runs nothing until it gets its term,
/// then starts CMD under that term at once; one whose socket closes first exits 0 and never
/// starts CMD.
#[test]
fn a_standby_watchdog_starts_cmd_only_with_its_term() {
    let dir = Dir::new("standby");
    let out = dir.0.join("term");
    let spawn = |theirs: UnixStream| {
        Proc::spawn(
            Command::new(BATON)
                .args(["__watchdog", "--group", "g", "--grace-ms", "100"])
                .args(["--watchdog-ms", "40", "--", "sh", "-c"])
                .arg(format!(
                    "echo $BATON_TERM > {}.tmp; mv {0}.tmp {0}; exec sleep 30",
                    out.display()
                ))
                .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
                .stderr(Stdio::null()),
        )
    };
    // Closed before any term: nothing runs, exit 0.
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut w = spawn(theirs);
    sleep(Duration::from_millis(300));
    assert!(!out.exists(), "a standby started CMD without a term");
    drop(ours);
    let st = w.wait_status(Duration::from_secs(5));
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert!(!out.exists());

    // Waiting (longer than twice the window: a standby has no deadline), then elected.
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut w = spawn(theirs);
    sleep(Duration::from_millis(300));
    assert!(!out.exists());
    let t = Instant::now();
    ours.write_all(&41u64.to_le_bytes()).unwrap();
    ours.write_all(&far_future().to_le_bytes()).unwrap();
    let term = wait_until(Duration::from_secs(5), "CMD's term", || {
        std::fs::read_to_string(&out).ok()
    });
    println!(
        "standby watchdog: CMD wrote its line {:.1} ms after the term was sent",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(term.trim(), "41");
    drop(ours); // the socket closes: the group is SIGKILLed
    let st = w.wait_status(Duration::from_secs(5));
    assert_eq!(st.signal(), Some(9), "{st:?}");
}

/// `kill -9` of `baton exec`: the watchdog takes CMD's whole group down, what CMD forked
/// included (before, only CMD itself died, by its parent-death signal).
#[test]
fn kill_9_of_baton_exec_takes_the_whole_group_down() {
    let dir = Dir::new("kill9");
    let pids = dir.0.join("pids");
    let script = format!(
        "sleep 30 & echo \"$$ $!\" > {}; while true; do sleep 0.01; done",
        pids.display()
    );
    let mut p = spawn_solo_sh(&dir, &[], &script);
    let (cmd, kid): (u32, u32) = wait_until(Duration::from_secs(10), "CMD", || {
        let t = std::fs::read_to_string(&pids).ok()?;
        let mut f = t.split_whitespace().map(|x| x.parse().ok());
        Some((f.next()??, f.next()??))
    });
    p.signal("KILL");
    p.wait_status(Duration::from_secs(5));
    let t = Instant::now();
    wait_until(Duration::from_secs(2), "CMD and its child to die", || {
        (!running(cmd) && !running(kid)).then_some(())
    });
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

/// A stop while the lease is held (SIGTERM to the watchdog, as `baton exec` sends it): CMD and
/// what it left in its group, both ignoring SIGTERM, get the whole grace period, then the group
/// is SIGKILLed; the watchdog exits as CMD did.
#[test]
fn a_stop_under_the_lease_gives_the_whole_grace_then_kills_the_group() {
    let (_dir, mut w, mut sock, pid, kid) = watchdog_with_straggler("grace", "trap '' TERM; ", 300);
    w.signal("TERM");
    let t0 = Instant::now();
    // Still leading: confirmed every 10 ms throughout.
    while running(pid) || running(kid) {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the group outlived the grace"
        );
        sock.write_all(&mono_ns().to_le_bytes()).unwrap();
        sleep(Duration::from_millis(10));
    }
    let took = t0.elapsed();
    println!(
        "stop under the lease: the group was gone after {:.0} ms (grace 300 ms)",
        took.as_secs_f64() * 1e3
    );
    assert!(took >= Duration::from_millis(280), "{took:?}");
    assert!(took < Duration::from_millis(1000), "{took:?}");
    let st = w.wait_status(Duration::from_secs(5));
    assert_eq!(st.signal(), Some(9), "{st:?}");
}

/// `--on-exit exit`: CMD's own exit ends `baton exec` — 0 after `exit 0`, 1 naming the code
/// otherwise.
#[test]
fn on_exit_exit_follows_the_command() {
    for (code, want) in [(0, 0), (3, 1)] {
        let dir = Dir::new(&format!("onexit{code}"));
        let log = dir.0.join("solo.log");
        let f = std::fs::File::create(&log).unwrap();
        let mut p = Proc::spawn(
            solo_exec(&dir, &["--on-exit", "exit"])
                .args(["sh", "-c", &format!("sleep 0.2; exit {code}")])
                .stdout(f.try_clone().unwrap())
                .stderr(f),
        );
        let st = p.wait_status(Duration::from_secs(10));
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(st.code(), Some(want), "{text}");
        if code != 0 {
            assert!(text.contains("exited with code 3"), "{text}");
        }
    }
}
