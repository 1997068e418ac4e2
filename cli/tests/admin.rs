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

/// The nodes of `live` whose `/metrics` say `baton_leader{group="tracked"} 1`, in one round of
/// scrapes.
fn leader_ones(admins: &std::collections::BTreeMap<String, String>, live: &[&str]) -> Vec<String> {
    let mut ones = vec![];
    for n in live {
        let (code, body) = http(&admins[*n], "GET", "/metrics", None);
        assert_eq!(code, 200, "{body}");
        match sample(&body, "baton_leader{group=\"tracked\"}") {
            Some(1.0) => ones.push(n.to_string()),
            Some(0.0) => {}
            other => panic!("{n}: baton_leader is {other:?}:\n{body}"),
        }
    }
    ones
}

/// Waits until exactly one node of `live` says `baton_leader 1`; then, outside a failover,
/// every round of scrapes for 1 s must say the same. Returns that node.
fn one_leader(admins: &std::collections::BTreeMap<String, String>, live: &[&str]) -> String {
    let ones = wait_until(Duration::from_secs(10), "one baton_leader 1", || {
        let ones = leader_ones(admins, live);
        (ones.len() == 1).then_some(ones)
    });
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(1) {
        assert_eq!(leader_ones(admins, live), ones, "outside a failover");
        std::thread::sleep(Duration::from_millis(20));
    }
    ones[0].clone()
}

/// Every change `body` counts for group `tracked`, whatever the reason.
fn all_changes(body: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with("baton_leadership_changes_total{group=\"tracked\","))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
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

    // Exactly one baton_leader 1, on the leader, scrape after scrape; every node ready.
    assert_eq!(one_leader(&admins, &ABC), "a");
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
    let scrape = |n: &str| http(&admins[n], "GET", "/metrics", None).1;
    let before: Vec<(f64, f64)> = ["b", "c"]
        .iter()
        .map(|n| {
            let body = scrape(n);
            (changes(&body, "handoff").unwrap_or(0.0), all_changes(&body))
        })
        .collect();
    c.proc("a").signal("TERM");
    let handoff = next_leader(&rx, "handoff", "a", &c);
    assert_eq!(handoff["leader"], "b", "{handoff}");
    assert_eq!(c.proc("a").wait_exit(Duration::from_secs(10)), Some(0));
    // One baton_leader 1 again, and one more change on each survivor, a `handoff`.
    assert_eq!(one_leader(&admins, &["b", "c"]), "b");
    for (n, (handoffs, all)) in ["b", "c"].iter().zip(before) {
        let body = wait_until(Duration::from_secs(5), "the handoff counted", || {
            let body = scrape(n);
            (changes(&body, "handoff") == Some(handoffs + 1.0)).then_some(body)
        });
        assert_eq!(all_changes(&body), all + 1.0, "{n}:\n{body}");
    }
    // a comes back as a follower, then b is killed: crash proof.
    let cmd = c.command("a", &["--log-format", "json", "node"]);
    c.spawn("a", cmd);
    let (l, _) = agreed(&c, &ABC, Duration::from_secs(10));
    assert_eq!(l, "b");
    assert_eq!(one_leader(&admins, &ABC), "b");
    let before: Vec<f64> = ["a", "c"].iter().map(|n| all_changes(&scrape(n))).collect();
    c.proc("b").signal("KILL");
    let crash = next_leader(&rx, "crash_proof", "b", &c);
    assert!(crash["term"].as_u64().unwrap() >= 3, "{crash}");
    let new_leader = one_leader(&admins, &["a", "c"]);
    assert_eq!(crash["leader"], new_leader.as_str(), "{crash}");

    // The metrics of the survivors count it, with its reason; c saw the handoff too.
    for n in ["a", "c"] {
        let body = wait_until(Duration::from_secs(5), "crash_proof counted", || {
            let (_, body) = http(&admins[n], "GET", "/metrics", None);
            (changes(&body, "crash_proof") == Some(1.0)).then_some(body)
        });
        // One change for the kill, and only that one.
        let all = before[usize::from(n == "c")];
        assert_eq!(all_changes(&body), all + 1.0, "{n}:\n{body}");
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

#[test]
fn a_node_with_other_settings_is_refused_and_counted_on_both_sides() {
    let (mut c, admins) = admin_cluster("admin-mismatch");
    let (leader, _) = agreed(&c, &ABC, Duration::from_secs(10));
    assert_eq!(leader, "a", "{}", c.logs());
    // x: the right secret and cluster, but another heartbeat: the handshakes refuse it.
    let ports = free_ports(2);
    let seeds: Vec<String> = ABC
        .iter()
        .map(|n| format!("\"{n}@{}\"", c.addrs[*n]))
        .collect();
    std::fs::write(
        c.config("x"),
        format!(
            "[node]\nname = \"x\"\nlisten = \"127.0.0.1:{}\"\n\n[cluster]\nname = \"it\"\nseeds = [{}]\nvoters = [\"a\", \"b\", \"c\"]\nsecret_file = \"good.secret\"\n\n[timing]\nheartbeat_ms = 60\nfailure_timeout_ms = 300\n\n[[group]]\nname = \"tracked\"\n\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
            ports[0],
            seeds.join(", "),
            ports[1]
        ),
    )
    .unwrap();
    let x_admin = format!("127.0.0.1:{}", ports[1]);
    let cmd = c.command("x", &["node"]);
    c.spawn("x", cmd);
    let series = "baton_handshake_refusals_total{reason=\"config_mismatch\"}";
    for (n, addr) in [("a", &admins["a"]), ("x", &x_admin)] {
        wait_until(Duration::from_secs(10), "the refusal counted", || {
            let (_, body) = http(addr, "GET", "/metrics", None);
            (sample(&body, series).unwrap_or(0.0) >= 1.0).then_some(())
        });
        let (_, body) = http(addr, "GET", "/metrics", None);
        assert!(sample(&body, series).unwrap() >= 1.0, "{n}:\n{body}");
    }
    // x reaches no voter: not ready, and it says why; the cluster keeps its one leader.
    let (code, body) = http(&x_admin, "GET", "/readyz", None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("reaches 0 of 3 voters"), "{body}");
    assert_eq!(one_leader(&admins, &ABC), "a");
}
