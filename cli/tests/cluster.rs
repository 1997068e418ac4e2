//! Multi-process tests: real `baton` processes on loopback, killed with SIGKILL and SIGTERM.
//!
//! Every child is owned by a [`Proc`] guard that SIGKILLs and reaps it on drop, so a failing
//! assertion leaves nothing running. Timings are asserted only as generous upper bounds.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Waits until every node in `names` reports a leader other than `old` with a term above
/// `term`; returns (leader, term, elapsed).
fn new_leader(
    c: &Cluster,
    names: &[&str],
    old: &str,
    term: u64,
    timeout: Duration,
) -> (String, u64, Duration) {
    let t0 = Instant::now();
    loop {
        let views: Vec<(Option<String>, u64)> = names
            .iter()
            .map(|n| {
                status(&c.config(n))
                    .map(|s| leader(&s))
                    .unwrap_or((None, 0))
            })
            .collect();
        let first = views[0].clone();
        if let (Some(l), t) = &first
            && l != old
            && *t > term
            && views.iter().all(|v| *v == first)
        {
            return (l.clone(), *t, t0.elapsed());
        }
        if t0.elapsed() > timeout {
            panic!(
                "no new leader among {names:?} within {timeout:?} (views {views:?})\n{}",
                c.logs()
            );
        }
        sleep(Duration::from_millis(5));
    }
}

fn others<'a>(all: &[&'a str], but: &str) -> Vec<&'a str> {
    all.iter().copied().filter(|n| *n != but).collect()
}

const ABC: [&str; 3] = ["a", "b", "c"];

fn started_abc(tag: &str) -> (Cluster, String, u64) {
    let mut c = Cluster::new(tag, &ABC);
    for n in ABC {
        c.start(n);
    }
    let (l, t) = agreed(&c, &ABC, Duration::from_secs(10));
    (c, l, t)
}

/// [`started_abc`], then `signal` to the leader: the leader, its term, and the new leader
/// among the survivors (within 3 s) with its term and how long that took.
fn signal_the_leader(tag: &str, signal: &str) -> (Cluster, String, u64, (String, u64, Duration)) {
    let (mut c, l, term) = started_abc(tag);
    let survivors = others(&ABC, &l);
    c.proc(&l).signal(signal);
    let next = new_leader(&c, &survivors, &l, term, Duration::from_secs(3));
    (c, l, term, next)
}

#[test]
fn three_nodes_elect_exactly_one_leader() {
    let (c, l, term) = started_abc("elect");
    // a started first: under oldest-running it leads.
    assert_eq!(l, "a", "{}", c.logs());
    assert!(term >= 1);
    // Exactly one node believes it leads.
    let leaders: Vec<&str> = ABC
        .iter()
        .copied()
        .filter(|n| {
            let s = status(&c.config(n)).expect("status");
            s["groups"][0]["local_is_leader"] == true
        })
        .collect();
    assert_eq!(leaders, vec!["a"]);
    // The text status reads as documented.
    let text = status_text(&c.config("b"));
    assert!(text.contains("tracked: leader a (term"), "{text}");
}

#[test]
fn kill_9_of_the_leader_fails_over_within_3s_and_the_node_rejoins_as_follower() {
    let (mut c, l, term, (l2, term2, took)) = signal_the_leader("kill9", "KILL");
    assert!(took < Duration::from_secs(3));
    assert!(term2 > term);
    assert_eq!(c.proc(&l).wait_exit(Duration::from_secs(5)), None);

    // The killed node restarts, rejoins (alive everywhere) and follows the incumbent.
    c.start(&l);
    let (l3, term3) = agreed(&c, &ABC, Duration::from_secs(10));
    assert_eq!((l3.as_str(), term3), (l2.as_str(), term2), "{}", c.logs());
}

#[test]
fn sigterm_of_the_leader_hands_off_to_the_successor() {
    let (mut c, l, term, (l2, term2, _)) = signal_the_leader("sigterm", "TERM");
    // The successor under oldest-running is the next oldest: b.
    assert_eq!(l2, "b", "{}", c.logs());
    assert!(term2 > term);
    assert_eq!(c.proc(&l).wait_exit(Duration::from_secs(10)), Some(0));

    // Work routed through any node reaches the new leader and names its term.
    for n in &others(&ABC, &l) {
        let out = Command::new(BATON)
            .args(["work", "--json", "--group", "tracked", "--config"])
            .arg(c.config(n))
            .arg(format!("job-{n}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["node"], "b");
        assert_eq!(v["term"], term2);
        assert_eq!(v["reply"], format!("b did job-{n} under term {term2}"));
    }
    // --any is served by whichever member got it (the naive approach).
    let out = Command::new(BATON)
        .args(["work", "--any", "--count", "2", "--config"])
        .arg(c.config("c"))
        .arg("naive")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
}

#[test]
fn a_node_with_the_wrong_secret_can_neither_join_vote_nor_lead() {
    let mut c = Cluster::new("secret", &ABC);
    // c has the wrong secret; a and b are a majority of the voters a, b, c.
    c.write_config("c", &ABC, "bad.secret");
    c.start("a");
    c.start("b");
    c.start("c");
    let (l, term) = agreed(&c, &["a", "b"], Duration::from_secs(10));
    sleep(Duration::from_millis(500));
    for n in ["a", "b"] {
        let s = status(&c.config(n)).unwrap();
        assert!(!members(&s).contains(&"c".to_string()), "{n} lists c: {s}");
    }
    let s = status(&c.config("c")).unwrap();
    assert_eq!(leader(&s).0, None, "the impostor sees a leader: {s}");
    assert_eq!(alive_members(&s), vec!["c".to_string()], "{s}");
    let log = std::fs::read_to_string(c.log("a")).unwrap();
    assert!(
        log.contains("secret"),
        "a must log why it refused c:\n{log}"
    );

    // A client with the wrong secret learns nothing.
    let out = Command::new(BATON)
        .args([
            "status",
            "--json",
            "--connect",
            &c.addrs["a"],
            "--cluster",
            "it",
            "--secret-file",
        ])
        .arg(c.dir.0.join("bad.secret"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["kind"], "auth", "{v}");
    assert!(v.get("members").is_none(), "{v}");

    // Without the leader, the survivor has no majority: c's vote does not count.
    let survivor = if l == "a" { "b" } else { "a" };
    c.proc(&l).signal("KILL");
    sleep(Duration::from_secs(2));
    let s = status(&c.config(survivor)).unwrap();
    let (now, t) = leader(&s);
    assert!(now.is_none(), "{survivor} leads without a majority: {s}");
    assert!(t >= term);
    let s = status(&c.config("c")).unwrap();
    assert_eq!(leader(&s).0, None, "the impostor leads: {s}");
}

#[test]
fn config_errors_name_the_file_and_the_field() {
    let dir = Dir::new("cfg");
    let f = dir.0.join("broken.toml");
    std::fs::write(
        &f,
        "[node]\nname = \"a\"\n[[group]]\nname = \"g\"\npolicy = \"olderst-running\"\n",
    )
    .unwrap();
    let err = fails_with_1(
        Command::new(BATON)
            .args(["node", "--insecure-no-secret", "--config"])
            .arg(&f),
    );
    assert!(
        err.contains("broken.toml") && err.contains("olderst-running"),
        "{err}"
    );

    std::fs::write(
        &f,
        "[node]\nname = \"a\"\n[cluster]\nsecret_file = \"nope.secret\"\n",
    )
    .unwrap();
    let err = fails_with_1(Command::new(BATON).args(["node", "--config"]).arg(&f));
    assert!(err.contains("nope.secret"), "{err}");

    std::fs::write(&f, "[node]\nname = \"a\"\n").unwrap();
    let err = fails_with_1(Command::new(BATON).args(["node", "--config"]).arg(&f));
    assert!(
        err.contains("secret_file") && err.contains("--insecure-no-secret"),
        "{err}"
    );
}

/// Runs `cmd`, asserts that it exits 1, and returns its stderr.
fn fails_with_1(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}

/// One line of the exec test's shared file.
#[derive(Debug)]
enum Line {
    Start { node: String, term: u64, pid: u32 },
    Beat { node: String, pid: u32 },
    End { node: String, pid: u32 },
}

fn parse_lines(text: &str) -> Vec<Line> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                ["start", n, t, p] => Some(Line::Start {
                    node: n.to_string(),
                    term: t.parse().ok()?,
                    pid: p.parse().ok()?,
                }),
                ["hb", n, p] => Some(Line::Beat {
                    node: n.to_string(),
                    pid: p.parse().ok()?,
                }),
                ["end", n, p] => Some(Line::End {
                    node: n.to_string(),
                    pid: p.parse().ok()?,
                }),
                _ => None,
            }
        })
        .collect()
}

/// The starts in the file, checking that lifetimes never overlap: every heartbeat and end
/// line comes from the command that started last.
fn check_no_overlap(text: &str) -> Vec<(String, u64, u32)> {
    let mut starts: Vec<(String, u64, u32)> = Vec::new();
    for line in parse_lines(text) {
        match line {
            Line::Start { node, term, pid } => {
                if let Some((last_node, last_term, _)) = starts.last() {
                    // The same leader may restart its command under the same term (its
                    // watchdog stops it when `baton exec` was not scheduled in time); any
                    // other start needs a newer term.
                    assert!(
                        term > *last_term || (term == *last_term && node == *last_node),
                        "terms must grow:\n{text}"
                    );
                }
                starts.push((node, term, pid));
            }
            Line::Beat { node, pid } | Line::End { node, pid } => {
                let current = starts.last().expect("a line before any start");
                assert_eq!(
                    (&current.0, current.2),
                    (&node, pid),
                    "{node} (pid {pid}) still ran after {} (pid {}) started:\n{text}",
                    current.0,
                    current.2
                );
            }
        }
    }
    starts
}

#[test]
fn exec_runs_the_command_on_one_node_at_a_time_through_failovers() {
    let mut c = Cluster::new("exec", &ABC);
    let file = runs_file(&c);
    let script = runs_script(&file, "echo \"hb $BATON_NODE $$\" >> $f; ");
    let starts =
        |c: &Cluster| check_no_overlap(&std::fs::read_to_string(c.dir.0.join("runs.txt")).unwrap());
    let exec = |c: &mut Cluster, n: &str| {
        let mut cmd = c.command(n, &["exec", "--group", "tracked", "--grace-ms", "2000"]);
        cmd.args(["--", "sh", "-c", &script]);
        c.procs.insert(n.to_string(), Proc::spawn(&mut cmd));
        wait_until(Duration::from_secs(10), "the node to answer", || {
            status(&c.config(n)).map(|_| ())
        });
    };
    for n in ABC {
        exec(&mut c, n);
    }
    let beats_after = |c: &Cluster, pid: u32, n: usize| {
        let text = std::fs::read_to_string(c.dir.0.join("runs.txt")).unwrap();
        let lines = parse_lines(&text);
        let pos = lines
            .iter()
            .position(|l| matches!(l, Line::Start { pid: p, .. } if *p == pid));
        pos.map(|p| {
            lines[p..]
                .iter()
                .filter(|l| matches!(l, Line::Beat { pid: q, .. } if *q == pid))
                .count()
        })
        .unwrap_or(0)
            >= n
    };

    // a leads and runs the command.
    let (first_node, _, first_pid) = wait_until(Duration::from_secs(10), "a first run", || {
        starts(&c).first().cloned()
    });
    assert_eq!(first_node, "a", "{}", c.logs());
    wait_until(Duration::from_secs(5), "heartbeats", || {
        beats_after(&c, first_pid, 3).then_some(())
    });

    // kill -9 of a's `baton exec`: its command dies with it; b takes over and runs it.
    c.proc("a").signal("KILL");
    let (second_node, _, second_pid) = wait_until(Duration::from_secs(5), "a second run", || {
        starts(&c).get(1).cloned()
    });
    assert_eq!(second_node, "b", "{}", c.logs());
    assert!(!running(first_pid), "a's command outlived its baton exec");
    wait_until(Duration::from_secs(5), "heartbeats", || {
        beats_after(&c, second_pid, 3).then_some(())
    });

    // a's `baton exec` comes back (as a follower: the command keeps running on b), so that
    // a majority of the voters survives the next step.
    assert_eq!(c.proc("a").wait_exit(Duration::from_secs(5)), None);
    exec(&mut c, "a");
    agreed(&c, &ABC, Duration::from_secs(10));
    assert_eq!(starts(&c).len(), 2, "{}", c.logs());

    // SIGTERM of b's `baton exec`: the command ends (end line), then c (older than the
    // restarted a) takes over.
    c.proc("b").signal("TERM");
    let (third_node, _, third_pid) = wait_until(Duration::from_secs(5), "a third run", || {
        starts(&c).get(2).cloned()
    });
    assert_eq!(third_node, "c", "{}", c.logs());
    assert_eq!(c.proc("b").wait_exit(Duration::from_secs(10)), Some(0));
    wait_until(Duration::from_secs(5), "heartbeats", || {
        beats_after(&c, third_pid, 3).then_some(())
    });
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&format!("end b {second_pid}")), "{text}");

    // SIGTERM of the last one: its command ends, and it exits 0.
    c.proc("c").signal("TERM");
    assert_eq!(c.proc("c").wait_exit(Duration::from_secs(10)), Some(0));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&format!("end c {third_pid}")), "{text}");
    assert_eq!(check_no_overlap(&text).len(), 3, "{text}");
    assert!(!running(third_pid));
    let log = std::fs::read_to_string(c.log("b")).unwrap();
    assert!(log.contains("exited with code 0"), "{log}");
}

#[test]
fn exec_restarts_a_command_that_exits_while_leading() {
    let dir = Dir::new("restart");
    let file = dir.0.join("runs.txt");
    let script = format!("echo \"run $BATON_TERM\" >> {}; exit 3", file.display());
    let mut p = spawn_solo_sh(&dir, &["--restart-delay-ms", "100"], &script);
    wait_until(Duration::from_secs(10), "three runs", || {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        (text.lines().count() >= 3).then_some(())
    });
    let text = std::fs::read_to_string(&file).unwrap();
    // Same leadership, same term: restarts do not change the fencing token.
    assert!(text.lines().all(|l| l == "run 1"), "{text}");
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Live (non-zombie) processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && running(pid) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

#[test]
fn demo_runs_to_completion_and_leaves_no_process() {
    let mut demo = Proc::spawn(
        Command::new(BATON)
            .arg("demo")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let code = demo.child.as_mut().map(|c| {
        let t0 = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                break st.code();
            }
            assert!(t0.elapsed() < Duration::from_secs(45), "demo took too long");
            sleep(Duration::from_millis(20));
        }
    });
    let child = demo.child.take().unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, Some(Some(0)), "demo failed:\n{stdout}\n{stderr}");
    for needle in [
        "failover:",
        "handoff:",
        "via a:",
        "via b:",
        "via c:",
        "no process left behind",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?}:\n{stdout}");
    }
    let dir = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("directory: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the demo names its directory")
        .to_string();
    assert!(
        processes_mentioning(&dir).is_empty(),
        "left behind: {:?}",
        processes_mentioning(&dir)
    );
    assert!(
        !Path::new(&dir).exists(),
        "the demo's directory must be removed"
    );
}

/// The admin addresses of a `live view:` line of `baton demo`:
/// `  live view: http://127.0.0.1:P/ (a), … (actions need …)`.
fn view_addrs(line: &str) -> Vec<String> {
    line.split("http://")
        .skip(1)
        .filter_map(|s| s.split('/').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn demo_prints_its_live_view_and_explore_keeps_the_cluster_running() {
    use std::io::{BufRead, BufReader};
    let mut demo = Proc::spawn(
        Command::new(BATON)
            .args(["demo", "--explore"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let stdout = demo.child.as_mut().unwrap().stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = String::new();
    let mut next = |what: &str| {
        let line = rx
            .recv_timeout(Duration::from_secs(45))
            .unwrap_or_else(|_| panic!("the demo printed no {what}:\n{out}"));
        out.push_str(&line);
        out.push('\n');
        (line, out.clone())
    };
    // At the start: where the live view of each node will be.
    let (views, dir) = loop {
        let (line, out) = next("live view line");
        if let Some(rest) = line.trim().strip_prefix("live view: ") {
            let dir = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("directory: "))
                .and_then(|l| l.split_whitespace().next())
                .expect("the demo names its directory")
                .to_string();
            break (view_addrs(rest), dir);
        }
    };
    assert_eq!(views.len(), 3, "{views:?}");
    // While the script runs, the view answers (node a is started first).
    wait_until(Duration::from_secs(20), "a's live view to answer", || {
        std::net::TcpStream::connect(&views[0]).ok()?;
        let (code, body) = http(&views[0], "GET", "/", None);
        (code == 200 && body.contains("app.js")).then_some(())
    });
    // After the script, --explore starts every node again and says where to look.
    loop {
        let (line, _) = next("Exploring line");
        if line.starts_with("Exploring") {
            break;
        }
    }
    // (Each node's "started" line first.)
    let (again, out) = loop {
        let (line, out) = next("live view line of --explore");
        if let Some(rest) = line.trim().strip_prefix("live view: ") {
            break (view_addrs(rest), out);
        }
    };
    assert_eq!(again, views, "{out}");
    for addr in &views {
        let (code, body) = http(addr, "GET", "/api/status", None);
        assert_eq!(code, 200, "{addr}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let alive = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["alive"] == true)
            .count();
        assert_eq!(alive, 3, "{addr}: {v}");
    }
    // Restarted nodes abstain from voting for a failure timeout: then they elect.
    wait_until(
        Duration::from_secs(10),
        "a leader in the explored cluster",
        || {
            let (_, body) = http(&views[0], "GET", "/api/status", None);
            let v: Value = serde_json::from_str(&body).ok()?;
            v["groups"][0]["leader"].is_string().then_some(())
        },
    );
    // Still running a while later; SIGTERM ends it cleanly, leaving nothing behind.
    sleep(Duration::from_millis(500));
    assert!(
        demo.try_exit().is_none(),
        "--explore must keep running:\n{out}"
    );
    demo.signal("TERM");
    assert_eq!(demo.wait_exit(Duration::from_secs(20)), Some(0), "{out}");
    assert!(
        processes_mentioning(&dir).is_empty(),
        "left behind: {:?}",
        processes_mentioning(&dir)
    );
    assert!(
        !Path::new(&dir).exists(),
        "the demo's directory must be removed"
    );
}

// ---------------------------------------------------------------- errors and diagnostics

/// Runs `cmd` to completion (killed after `limit`); returns (exit code, stdout, stderr, time).
/// `baton work FLAGS --config (node's config) JOB`, as [`run_bounded`].
fn work_on(
    c: &Cluster,
    node: &str,
    flags: &[&str],
    job: &str,
    limit: Duration,
) -> (Option<i32>, String, String, Duration) {
    let mut cmd = Command::new(BATON);
    cmd.arg("work")
        .args(flags)
        .arg("--config")
        .arg(c.config(node))
        .arg(job);
    run_bounded(&mut cmd, limit)
}

fn run_bounded(cmd: &mut Command, limit: Duration) -> (Option<i32>, String, String, Duration) {
    let t0 = Instant::now();
    let mut p = Proc::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()));
    let code = loop {
        let child = p.child.as_mut().expect("running");
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st.code();
        }
        assert!(
            t0.elapsed() < limit,
            "{cmd:?} did not finish within {limit:?}"
        );
        sleep(Duration::from_millis(10));
    };
    let out = p.child.take().unwrap().wait_with_output().unwrap();
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t0.elapsed(),
    )
}

#[test]
fn status_of_a_node_that_is_down_is_one_line_with_a_hint_and_json_with_json() {
    let addr = format!("127.0.0.1:{}", free_ports(1)[0]);
    let (code, stdout, stderr, _) = run_bounded(
        Command::new(BATON).args(["status", "--insecure-no-secret", "--connect", &addr]),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&format!("is a node running at {addr}?")),
        "{stderr}"
    );
    assert_eq!(
        stderr.to_lowercase().matches("refused").count(),
        1,
        "the OS error once: {stderr}"
    );

    // With --json the error is one JSON object on stdout, and the exit code is the same.
    let (code, stdout, stderr, _) = run_bounded(
        Command::new(BATON).args([
            "status",
            "--json",
            "--insecure-no-secret",
            "--connect",
            &addr,
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1), "{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).expect("a JSON error on stdout");
    assert_eq!(v["kind"], "unreachable", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("is a node running at"),
        "{v}"
    );
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn usage_errors_exit_2_and_are_json_with_json() {
    // clap's own error.
    let (code, stdout, _, _) = run_bounded(
        Command::new(BATON).args(["work", "--json", "--count", "0", "x"]),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2));
    let v: Value = serde_json::from_str(stdout.trim()).expect("a JSON error on stdout");
    assert_eq!(v["kind"], "usage", "{v}");
    assert!(v["error"].as_str().unwrap().contains("--count"), "{v}");
    // baton's own: nothing says which node to ask.
    let (code, stdout, stderr, _) = run_bounded(
        Command::new(BATON).args(["status", "--insecure-no-secret"]),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("--connect ADDR"), "{stderr}");
    let (code, stdout, _, _) = run_bounded(
        Command::new(BATON).args(["status", "--json", "--insecure-no-secret"]),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2));
    let v: Value = serde_json::from_str(stdout.trim()).expect("a JSON error on stdout");
    assert_eq!(v["kind"], "usage", "{v}");
}

/// A single `baton node` named `solo` on a free port, in group `g`; returns it and its flags
/// for a client.
fn solo(dir: &Dir, extra: &[&str]) -> (Proc, Vec<String>) {
    let secret = dir.0.join("s");
    std::fs::write(&secret, "x\n").unwrap();
    let addr = format!("127.0.0.1:{}", free_ports(1)[0]);
    let log = std::fs::File::create(dir.0.join("solo.log")).unwrap();
    let p = Proc::spawn(
        Command::new(BATON)
            .args(["node", "--name", "solo", "--group", "g", "--listen", &addr])
            .args(extra)
            .arg("--secret-file")
            .arg(&secret)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log),
    );
    let client = vec![
        "--connect".to_string(),
        addr,
        "--secret-file".to_string(),
        secret.display().to_string(),
    ];
    wait_until(Duration::from_secs(10), "solo to answer", || {
        let out = Command::new(BATON)
            .arg("status")
            .args(&client)
            .output()
            .ok()?;
        out.status.success().then_some(())
    });
    (p, client)
}

#[test]
fn work_to_a_group_nobody_joined_fails_at_once_and_any_needs_no_leader() {
    let dir = Dir::new("nosuch");
    let (_node, client) = solo(&dir, &[]);
    let (code, stdout, stderr, took) = run_bounded(
        Command::new(BATON)
            .args(["work", "--group", "nosuch"])
            .args(&client)
            .arg("job"),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    assert!(stderr.contains("no member of group \"nosuch\""), "{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?}: it waited");
    let (code, stdout, _, _) = run_bounded(
        Command::new(BATON)
            .args(["work", "--json", "--any", "--group", "nosuch"])
            .args(&client)
            .arg("job"),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(3));
    let v: Value = serde_json::from_str(stdout.trim()).expect("a JSON error on stdout");
    assert_eq!(v["kind"], "no-member", "{v}");
    // The group it joined is served, --any included.
    let (code, stdout, stderr, _) = run_bounded(
        Command::new(BATON)
            .args(["work", "--any", "--group", "g"])
            .args(&client)
            .arg("job"),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("solo did job"), "{stdout}");
}

#[test]
fn a_group_without_quorum_says_why_in_status_work_and_the_log() {
    let (mut c, _, _) = started_abc("why");
    for n in ["a", "b"] {
        c.proc(n).signal("KILL");
    }
    for n in ["a", "b"] {
        c.proc(n).wait_exit(Duration::from_secs(5));
    }
    let why = wait_until(Duration::from_secs(5), "c to see no quorum", || {
        let s = status(&c.config("c"))?;
        let w = s["groups"][0]["no_leader"].clone();
        (w["reachable"] == serde_json::json!(["c"])).then_some(w)
    });
    assert_eq!(why["needed"], 2, "{why}");
    let states: Vec<&str> = why["voters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states[2], "alive", "{why}");
    assert!(
        states[..2].iter().all(|s| *s == "dead" || *s == "silent"),
        "{why}"
    );
    let text = status_text(&c.config("c"));
    assert!(text.contains("tracked: no leader (term"), "{text}");
    assert!(
        text.contains("quorum: 1 of 3 voters reachable (c), 2 needed"),
        "{text}"
    );
    // `work` waits for the node's call timeout, then exits 3 and says why.
    let (code, stdout, _, _) = work_on(&c, "c", &["--json"], "job", Duration::from_secs(15));
    assert_eq!(code, Some(3), "{stdout}");
    let v: Value = serde_json::from_str(stdout.trim()).expect("a JSON error on stdout");
    assert_eq!(v["kind"], "no-leader", "{v}");
    assert!(v["error"].as_str().unwrap().contains("2 needed"), "{v}");
    // --any needs no leader: c serves it itself.
    let (code, stdout, stderr, _) = work_on(&c, "c", &["--any"], "naive", Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("c did naive under term 0 (not the leader)"),
        "{stdout}"
    );
    // The log says it too, once per change (a few changes as a and b go), not per tick.
    let log = std::fs::read_to_string(c.log("c")).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("tracked: no leader (term"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("quorum: 1 of 3 voters reachable (c)")),
        "{log}"
    );
    assert!(lines.len() <= 3, "{lines:#?}");
}

#[test]
fn an_unknown_voter_is_a_config_error_with_named_seeds_and_a_warning_otherwise() {
    let mut c = Cluster::new("voters", &["a", "b"]);
    c.write_config("a", &["a", "b", "nx"], "good.secret");
    let (code, _, stderr, _) = run_bounded(
        Command::new(BATON)
            .args(["node", "--config"])
            .arg(c.config("a")),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cluster.voters") && stderr.contains("\"nx\"") && stderr.contains("a.toml"),
        "{stderr}"
    );

    // A bare seed may lead to nx: the node starts, and warns once it has not seen nx for
    // 2 × failure_timeout (600 ms here).
    let text = std::fs::read_to_string(c.config("a")).unwrap().replace(
        &format!("\"b@{}\"", c.addrs["b"]),
        &format!("\"{}\"", c.addrs["b"]),
    );
    std::fs::write(c.config("a"), text).unwrap();
    c.start("a");
    wait_until(Duration::from_secs(5), "the warning", || {
        let log = std::fs::read_to_string(c.log("a")).unwrap_or_default();
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("\"nx\"") && l.contains("never seen"))
            .then_some(())
    });
}

#[test]
fn a_plugin_that_is_no_library_fails_with_the_loaders_message() {
    let dir = Dir::new("plugin");
    std::fs::write(
        dir.0.join("libnot.so"),
        "this is text, not ELF\n".repeat(100),
    )
    .unwrap();
    let f = dir.0.join("p.toml");
    std::fs::write(
        &f,
        "[node]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n[[group]]\nname = \"g\"\npolicy = { plugin = \"libnot.so\" }\n",
    )
    .unwrap();
    let (code, _, stderr, _) = run_bounded(
        Command::new(BATON)
            .args(["node", "--insecure-no-secret", "--config"])
            .arg(&f),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1), "{stderr}");
    let detail = stderr
        .split("dlopen failed: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no loader message: {stderr}"));
    assert!(detail.trim().len() > 3, "{stderr}");
}

/// Writes a CA and a certificate per node of `c` (each `NAME.pem`, `NAME-key.pem`, `ca.pem`)
/// and a `[cluster.tls]` section into each node's config.
fn enable_tls(c: &Cluster, names: &[&str]) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(c.dir.0.join("ca.pem"), ca.pem()).unwrap();
    for n in names {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![n.to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(c.dir.0.join(format!("{n}.pem")), cert.pem()).unwrap();
        std::fs::write(c.dir.0.join(format!("{n}-key.pem")), key.serialize_pem()).unwrap();
        let mut text = std::fs::read_to_string(c.config(n)).unwrap();
        // Relative paths: against the config file's directory.
        text += &format!(
            "\n[cluster.tls]\ncert = \"{n}.pem\"\nkey = \"{n}-key.pem\"\nca = \"ca.pem\"\n"
        );
        std::fs::write(c.config(n), text).unwrap();
    }
}

#[test]
fn a_tls_cluster_fails_over_on_kill_9_and_status_needs_a_certificate() {
    let mut c = Cluster::new("tls", &ABC);
    enable_tls(&c, &ABC);
    for n in ABC {
        // `start` waits for `baton status --config` to answer: status over TLS works.
        c.start(n);
    }
    let (l, term) = agreed(&c, &ABC, Duration::from_secs(10));
    // kill -9: the kernel closes the TLS connections with a FIN and no close_notify; that must
    // still count as an orderly close (then the refused redial proves death): fast failover.
    c.proc(&l).signal("KILL");
    let survivors = others(&ABC, &l);
    let (l2, term2, took) = new_leader(&c, &survivors, &l, term, Duration::from_secs(5));
    assert!(term2 > term && l2 != l);
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A client without [cluster.tls] is refused, and says why.
    let plain = c.dir.0.join("plain.toml");
    let text = std::fs::read_to_string(c.config(survivors[0])).unwrap();
    let text = text.split("\n[cluster.tls]").next().unwrap().to_string();
    std::fs::write(&plain, text).unwrap();
    let out = Command::new(BATON)
        .args(["status", "--timeout-ms", "2000", "--config"])
        .arg(&plain)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("requires TLS"), "{err}");
    // The node logs the refusal on its own time: the client may have exited first.
    let why = "the dialer speaks plain text and this node requires TLS";
    wait_until(Duration::from_secs(5), why, || {
        let log = std::fs::read_to_string(c.log(survivors[0])).unwrap_or_default();
        log.contains(why).then_some(())
    });
}

#[test]
fn an_unusable_tls_file_names_the_field_and_the_file() {
    let dir = Dir::new("tlsfile");
    let f = dir.0.join("a.toml");
    std::fs::write(dir.0.join("s"), "x\n").unwrap();
    std::fs::write(
        &f,
        "[node]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n[cluster]\nsecret_file = \"s\"\n[cluster.tls]\ncert = \"nope.pem\"\nkey = \"k.pem\"\nca = \"ca.pem\"\n",
    )
    .unwrap();
    let out = Command::new(BATON)
        .args(["node", "--config"])
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cluster.tls.cert") && err.contains("nope.pem") && err.contains("cannot read"),
        "{err}"
    );
}
