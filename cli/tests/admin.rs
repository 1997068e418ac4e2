//! `[admin]` on real `baton node` processes: `/metrics` and `/readyz` over loopback HTTP, the
//! token on actions, `baton watch --json` through a kill -9 of the leader and until its own
//! node is killed through the admin API, and `--log-format json`.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The value of the sample `series` in a Prometheus text body.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Starts `baton watch --json` on the node of `config`; its stdout lines arrive on the channel.
fn start_watch(config: &std::path::Path) -> (Proc, mpsc::Receiver<String>) {
    let mut watch = Command::new(BATON);
    watch
        .args(["watch", "--json", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut w = Proc::spawn(&mut watch);
    let stdout = w.child.as_mut().unwrap().stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (w, rx)
}

/// The next line `baton watch --json` printed, parsed.
fn next(rx: &mpsc::Receiver<String>, what: &str) -> Value {
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("baton watch printed no line for {what}"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// Reads watch lines until one names a new leader; every line on the way must give `reason`
/// and (for a `no leader` line) name `old` as the previous leader.
fn next_leader(rx: &mpsc::Receiver<String>, reason: &str, old: &str, c: &Cluster) -> Value {
    loop {
        let v = next(rx, reason);
        assert_eq!(v["reason"], reason, "{v}\n{}", c.logs());
        assert_eq!(v["previous"], old, "{v}");
        if v["leader"].is_string() {
            assert_ne!(v["leader"], old, "{v}");
            assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
            return v;
        }
    }
}

fn changes(body: &str, reason: &str) -> Option<f64> {
    sample(
        body,
        &format!("baton_leadership_changes_total{{group=\"tracked\",reason=\"{reason}\"}}"),
    )
}

#[test]
fn admin_endpoints_token_watch_and_json_logs_on_real_processes() {
    let (mut c, admins) = admin_cluster("admin");
    // Started a, b, c in that order: under oldest-running a leads, b is next.
    let (leader, _) = agreed(&c, &ABC, Duration::from_secs(10));
    assert_eq!(leader, "a", "{}", c.logs());

    // Exactly one baton_leader 1, on the leader; every node ready.
    let ones = wait_until(Duration::from_secs(5), "one baton_leader 1", || {
        let mut ones = vec![];
        for n in ABC {
            let (code, body) = http(&admins[n], "GET", "/metrics", None);
            assert_eq!(code, 200, "{body}");
            match sample(&body, "baton_leader{group=\"tracked\"}") {
                Some(1.0) => ones.push(n.to_string()),
                Some(0.0) => {}
                other => panic!("{n}: baton_leader is {other:?}:\n{body}"),
            }
        }
        (ones.len() == 1).then_some(ones)
    });
    assert_eq!(ones, ["a"]);
    for n in ABC {
        assert_eq!(http(&admins[n], "GET", "/readyz", None).0, 200, "{n}");
        assert_eq!(http(&admins[n], "GET", "/healthz", None).0, 200, "{n}");
    }

    // An action without the token (or with a wrong one) is refused and changes nothing.
    let (code, body) = http(&admins["b"], "POST", "/api/actions/kill", None);
    assert_eq!(code, 401, "{body}");
    let (code, _) = http(&admins["b"], "POST", "/api/actions/kill", Some("nope"));
    assert_eq!(code, 401);
    std::thread::sleep(Duration::from_millis(200));
    assert!(c.proc("b").try_exit().is_none(), "a refused kill killed");
    assert!(status(&c.config("b")).is_some());

    // baton watch --json on c: the current leader first.
    let (mut w, rx) = start_watch(&c.config("c"));
    let first = next(&rx, "the current leader");
    assert_eq!(first["reason"], "current", "{first}");
    assert_eq!(first["group"], "tracked");
    assert_eq!(first["leader"], "a", "{first}");

    // SIGTERM of the leader: a handoff to b.
    c.proc("a").signal("TERM");
    let handoff = next_leader(&rx, "handoff", "a", &c);
    assert_eq!(handoff["leader"], "b", "{handoff}");
    assert_eq!(c.proc("a").wait_exit(Duration::from_secs(10)), Some(0));
    // a comes back as a follower, then b is killed: crash proof.
    let cmd = c.command("a", &["--log-format", "json", "node"]);
    c.spawn("a", cmd);
    let (l, _) = agreed(&c, &ABC, Duration::from_secs(10));
    assert_eq!(l, "b");
    c.proc("b").signal("KILL");
    let crash = next_leader(&rx, "crash_proof", "b", &c);
    assert!(crash["term"].as_u64().unwrap() >= 3, "{crash}");

    // The metrics of the survivors count it, with its reason; c saw the handoff too.
    for n in ["a", "c"] {
        let body = wait_until(Duration::from_secs(5), "crash_proof counted", || {
            let (_, body) = http(&admins[n], "GET", "/metrics", None);
            (changes(&body, "crash_proof") == Some(1.0)).then_some(body)
        });
        assert_eq!(
            sample(&body, "baton_peers{state=\"down\"}"),
            Some(1.0),
            "{body}"
        );
        if n == "c" {
            assert_eq!(changes(&body, "handoff"), Some(1.0), "{body}");
        }
    }

    // Killing the watched node through its admin API (with the token): watch exits 1.
    let (code, body) = http(&admins["c"], "POST", "/api/actions/kill", Some(TOKEN));
    assert_eq!(code, 202, "{body}");
    let st = c.proc("c").wait_status(Duration::from_secs(5));
    assert!(!st.success(), "{st:?}");
    let code = w.wait_exit(Duration::from_secs(20));
    let mut err = String::new();
    if let Some(mut e) = w.child.as_mut().and_then(|c| c.stderr.take()) {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(
        code,
        Some(1),
        "baton watch must fail when its node goes away: {err}"
    );

    // a is left alone, cut off from the majority: not ready, still healthy.
    wait_until(Duration::from_secs(5), "readyz 503", || {
        (http(&admins["a"], "GET", "/readyz", None).0 == 503).then_some(())
    });
    assert_eq!(http(&admins["a"], "GET", "/healthz", None).0, 200);

    // A kind shutdown through the admin API: the node exits 0, as after SIGTERM.
    let (code, body) = http(&admins["a"], "POST", "/api/actions/shutdown", Some(TOKEN));
    assert_eq!(code, 202, "{body}");
    let st = c.proc("a").wait_status(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "{st:?}\n{}", c.read_log("a"));
    assert!(c.read_log("a").contains("admin action: shutting down"));

    // Every JSON log line names its node.
    for n in ABC {
        let log = c.read_log(n);
        let lines: Vec<Value> = log
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect();
        assert!(
            lines.iter().any(|v| v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("admin listening on http://"))),
            "{n}: {log}"
        );
        for v in &lines {
            assert_eq!(v["node"], n, "{n}: {v}");
        }
    }
}

#[test]
fn watch_without_an_admin_section_says_what_to_set() {
    let c = Cluster::new("watch-no-admin", &["a"]);
    let err = fails(
        Command::new(BATON)
            .args(["watch", "--config"])
            .arg(c.config("a")),
    );
    assert!(
        err.contains("no [admin] section") && err.contains("listen"),
        "{err}"
    );
    // A bad --admin address names the flag.
    let err = fails(Command::new(BATON).args([
        "node",
        "--insecure-no-secret",
        "--name",
        "x",
        "--admin",
        "nowhere",
    ]));
    assert!(
        err.contains("--admin: \"nowhere\" is not an `ip:port`"),
        "{err}"
    );
}
