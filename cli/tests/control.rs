//! `baton transfer` and `baton step-down` on three real `baton exec` processes on loopback:
//! leadership moves where it is told (its command follows), refusals are clear and exit 4,
//! and a step-down goes to the next in the ranking.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod common;

use common::{BATON, Cluster, agreed, leader, running, status, wait_until};
use std::process::Command;
use std::time::Duration;

const ABC: [&str; 3] = ["a", "b", "c"];

/// `baton <args> --config <node's config>`: (exit code, stdout, stderr).
fn run(c: &Cluster, node: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BATON)
        .args(args)
        .arg("--config")
        .arg(c.config(node))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `start NODE TERM PID` lines of the runs file, in order.
fn starts(c: &Cluster) -> Vec<(String, u64, u32)> {
    let text = std::fs::read_to_string(c.dir.0.join("runs.txt")).unwrap_or_default();
    text.lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["start", n, t, p] => Some((n.to_string(), t.parse().ok()?, p.parse().ok()?)),
            _ => None,
        })
        .collect()
}

/// a, b, c each run `baton exec` (in that order: oldest-running makes a the favourite).
fn exec_abc(tag: &str) -> Cluster {
    let mut c = Cluster::new(tag, &ABC);
    let file = c.dir.0.join("runs.txt");
    std::fs::write(&file, "").unwrap();
    let script = format!(
        "f={f}; echo \"start $BATON_NODE $BATON_TERM $$\" >> $f; \
         trap 'echo \"end $BATON_NODE $$\" >> $f; exit 0' TERM; \
         while true; do sleep 0.02; done",
        f = file.display()
    );
    for n in ABC {
        let mut cmd = c.command(n, &["exec", "--group", "tracked", "--grace-ms", "2000"]);
        cmd.args(["--", "sh", "-c", &script]);
        c.spawn(n, cmd);
    }
    c
}

#[test]
fn transfer_moves_leadership_and_the_command_refusals_are_clear_and_step_down_goes_next() {
    let c = exec_abc("transfer");
    let (first, term) = agreed(&c, &ABC, Duration::from_secs(10));
    assert_eq!(first, "a", "{}", c.logs());
    let (_, _, a_pid) = wait_until(Duration::from_secs(5), "a's command", || {
        starts(&c).first().cloned()
    });

    // Asked through b (not the leader): routed to a, which hands off to c.
    let (code, out, err) = run(&c, "b", &["transfer", "--group", "tracked", "--to", "c"]);
    assert_eq!(code, Some(0), "{out}{err}\n{}", c.logs());
    assert!(out.contains("a handed leadership to c"), "{out}");
    let (l, t) = leader(&status(&c.config("b")).unwrap());
    assert_eq!(l.as_deref(), Some("c"));
    assert!(t > term);
    // c's command starts; a's has stopped.
    let (node, c_term, _) = wait_until(Duration::from_secs(5), "c's command", || {
        starts(&c).get(1).cloned()
    });
    assert_eq!((node.as_str(), c_term), ("c", t), "{:?}", starts(&c));
    wait_until(Duration::from_secs(5), "a's command to stop", || {
        (!running(a_pid)).then_some(())
    });
    let text = std::fs::read_to_string(c.dir.0.join("runs.txt")).unwrap();
    assert!(text.contains(&format!("end a {a_pid}")), "{text}");

    // Refusals: an unknown node, then a node that is down; both exit 4 and say why.
    let (code, out, err) = run(&c, "a", &["transfer", "--group", "tracked", "--to", "zz"]);
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(err.contains("target zz unknown"), "{err}");
    let (code, out, _) = run(
        &c,
        "a",
        &["transfer", "--group", "tracked", "--to", "zz", "--json"],
    );
    assert_eq!(code, Some(4));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["kind"], "refused", "{out}");
    let mut c = c;
    c.proc("b").signal("KILL");
    assert_eq!(c.proc("b").wait_exit(Duration::from_secs(5)), None, "killed");
    wait_until(Duration::from_secs(5), "a to see b down", || {
        let s = status(&c.config("a"))?;
        (!common::alive_members(&s).contains(&"b".to_string())).then_some(())
    });
    let (code, out, err) = run(&c, "a", &["transfer", "--group", "tracked", "--to", "b"]);
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(
        err.contains("target b is not a live candidate") && err.contains("down"),
        "{err}"
    );
    assert_eq!(leader(&status(&c.config("a")).unwrap()).0.as_deref(), Some("c"));

    // Step-down: c hands off to the next in its ranking, a (the oldest running).
    let (code, out, err) = run(&c, "c", &["step-down", "--group", "tracked"]);
    assert_eq!(code, Some(0), "{out}{err}\n{}", c.logs());
    assert!(out.contains("c handed leadership to a"), "{out}");
    let (node, _, _) = wait_until(Duration::from_secs(5), "a's second command", || {
        starts(&c).get(2).cloned()
    });
    assert_eq!(node, "a", "{:?}", starts(&c));
}
