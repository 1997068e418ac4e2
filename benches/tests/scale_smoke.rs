//! The scale tool, run for real at 3 nodes × 2 groups (one short run, ~10 s): its JSON report
//! parses and every figure is in a sane range. And its timeout path: a limit no cluster can
//! meet fails the run with the "no leader in X of G groups" report instead of hanging.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `baton` binary of this build's profile, built (a no-op when up to date) beside the
/// `scale` binary cargo built for this test.
fn baton() -> PathBuf {
    let scale = Path::new(env!("CARGO_BIN_EXE_scale"));
    let dir = scale
        .parent()
        .expect("the scale binary is in a profile directory");
    let target = dir
        .parent()
        .expect("the profile directory is in the target directory");
    let mut build = baton_benches::procs::cargo();
    build
        .args(["build", "--quiet", "-p", "baton-cli"])
        .env("CARGO_TARGET_DIR", target);
    if dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building baton-cli failed: {status}");
    dir.join("baton")
}

/// Runs the scale tool at 3 nodes × 2 groups with `args` besides, killing it after `limit` (a
/// hung tool fails the test); also returns its text report (stderr).
fn scale(args: &[&str], limit: Duration) -> (Output, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scale"))
        .args(["--nodes", "3", "--groups", "2"])
        .args(args)
        .arg("--baton")
        .arg(baton())
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the scale tool starts");
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the scale tool did not finish within {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, text)
}

fn num(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {path} in {v:#}"))
}

#[test]
fn three_nodes_two_groups_report_sane_figures() {
    let (out, text) = scale(
        &["--runs", "1", "--idle-secs", "2"],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}\n{text}", out.status);
    let report: Value = serde_json::from_slice(&out.stdout).expect("the report is JSON");
    assert_eq!(report["nodes"], 3);
    assert_eq!(report["groups"], 2);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert!(run["error"].is_null(), "{text}");

    let led = num(run, "/led_s");
    assert!(led > 0.0 && led < 30.0, "led after {led} s");

    let per_node: Vec<u64> = run["leaders"]["per_node"]
        .as_array()
        .expect("leaders per node")
        .iter()
        .map(|c| c.as_u64().expect("a count"))
        .collect();
    assert_eq!(per_node.len(), 3);
    assert_eq!(
        per_node.iter().sum::<u64>(),
        2,
        "every group has one leader"
    );
    let ratio = num(run, "/leaders/max_over_mean");
    assert!((1.0..=3.0).contains(&ratio), "max/mean {ratio}");

    let idle = &run["idle"];
    let nodes = idle["nodes"].as_array().expect("idle nodes");
    assert_eq!(nodes.len(), 3);
    let mut total = 0.0;
    for n in nodes {
        let cpu = num(n, "/cpu_pct");
        let rss = num(n, "/rss_mib");
        let sent = num(n, "/sent_bytes_per_s");
        // A node that heartbeats its peers sends something, and nowhere near 10 MB/s idle.
        assert!((0.0..200.0).contains(&cpu), "{n}");
        assert!(rss > 1.0 && rss < 500.0, "{n}");
        assert!(sent > 0.0 && sent < 1e7, "{n}");
        total += cpu;
    }
    assert!((num(idle, "/cpu_total_pct") - total).abs() < 1e-6);
    assert_eq!(idle["wire"]["pairs"], 3);
    let pair_mean = num(idle, "/wire/pair_mean_bytes_per_s");
    let pair_max = num(idle, "/wire/pair_max_bytes_per_s");
    assert!(pair_mean > 0.0 && pair_mean <= pair_max, "{idle}");

    let f = &run["failover"];
    let groups = num(f, "/groups");
    assert!((1.0..=2.0).contains(&groups), "{f}");
    assert_eq!(num(f, "/reled"), groups, "{f}");
    let (p50, max) = (num(f, "/p50_ms"), num(f, "/max_ms"));
    assert!(p50 > 0.0 && p50 <= max && max < 60_000.0, "{f}");
    // Timed again by the new leaders' own log lines, with nothing polled meanwhile: every
    // group found there, and no later than the polls saw it.
    let logs = &f["by_logs"];
    assert_eq!(num(logs, "/reled"), groups, "{f}");
    let (lp50, lmax) = (num(logs, "/p50_ms"), num(logs, "/max_ms"));
    assert!(lp50 > 0.0 && lp50 <= lmax && lmax <= max, "{f}");

    let m = &report["medians"];
    assert_eq!(m["runs_led"], 1);
    assert_eq!(num(m, "/led_s"), led);
    assert!(text.contains("all 2 groups led"), "{text}");
}

#[test]
fn a_limit_no_cluster_meets_fails_the_run_with_a_report() {
    // The first poll starts as the processes do: nobody can have elected within 1 ms.
    let (out, text) = scale(
        &["--runs", "3", "--limit-secs", "0.001"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("the report is JSON");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "the remaining runs are skipped: {text}");
    let e = runs[0]["error"].as_str().expect("an error");
    assert!(e.starts_with("no leader in 2 of 2 groups after"), "{e}");
    assert!(runs[0]["led_s"].is_null());
    assert_eq!(report["medians"]["runs_led"], 0);
    assert!(
        text.contains("FAILED: no leader in 2 of 2 groups"),
        "{text}"
    );
}
