//! `[node] version` and `policy = ["oldest-version", "oldest-running"]` on three real `baton
//! node` processes on loopback: during a rolling upgrade the node on the old release leads,
//! and once it is upgraded (restarted as the new release) leadership goes to the
//! longest-running node of the new one. `baton status` shows every node's version.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod common;

use common::{Cluster, agreed, status, status_text};
use std::time::Duration;

const ABC: [&str; 3] = ["a", "b", "c"];

/// Gives node `name`'s config (as `Cluster` wrote it) a version and the group the chain.
fn set_version(c: &Cluster, name: &str, version: &str) {
    let path = c.config(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        &format!("name = \"{name}\"\n"),
        &format!("name = \"{name}\"\nversion = \"{version}\"\n"),
    );
    let text = text.replace(
        "[[group]]\nname = \"tracked\"\n",
        "[[group]]\nname = \"tracked\"\npolicy = [\"oldest-version\", \"oldest-running\"]\npreempt = true\n",
    );
    std::fs::write(&path, text).unwrap();
}

/// The version `baton status --json` of `via` shows for node `name`.
fn version_seen(c: &Cluster, via: &str, name: &str) -> Option<String> {
    let s = status(&c.config(via))?;
    s["members"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["version"].as_str().map(str::to_string))
}

/// Waits until every node of a, b, c reports `who` as the leader; returns its term.
fn all_see(c: &Cluster, who: &str) -> u64 {
    common::wait_until(Duration::from_secs(10), &format!("{who} to lead"), || {
        let views: Vec<(Option<String>, u64)> = ABC
            .iter()
            .map(|n| status(&c.config(n)).map(|s| common::leader(&s)))
            .collect::<Option<_>>()?;
        views
            .iter()
            .all(|(l, t)| l.as_deref() == Some(who) && *t == views[0].1)
            .then_some(views[0].1)
    })
}

#[test]
fn the_oldest_version_leads_and_an_upgrade_moves_leadership_to_the_oldest_new_node() {
    let mut c = Cluster::new("versions", &ABC);
    // c and b run the new release and start first (c the longest-running); a, the last node
    // still on the old release, starts last: the version decides, not the start time. The
    // group preempts, so that a takes over from the leader c and b elected before it came.
    set_version(&c, "a", "1.0.0");
    set_version(&c, "b", "1.1.0");
    set_version(&c, "c", "1.1.0");
    c.start("c");
    c.start("b");
    c.start("a");
    agreed(&c, &ABC, Duration::from_secs(10));
    let term = all_see(&c, "a");

    // Every node's version is shown, in the table and in the JSON.
    common::wait_until(Duration::from_secs(5), "c to learn a's version", || {
        (version_seen(&c, "c", "a").as_deref() == Some("1.0.0")).then_some(())
    });
    assert_eq!(version_seen(&c, "c", "b").as_deref(), Some("1.1.0"));
    assert_eq!(version_seen(&c, "c", "c").as_deref(), Some("1.1.0"));
    let text = status_text(&c.config("c"));
    assert!(text.contains("VERSION"), "{text}");
    let row = |n: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{n} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row("a").contains(" 1.0.0 "), "{text}");
    assert!(row("b").contains(" 1.1.0 "), "{text}");

    // Upgrade a: a kind stop (it hands off), then the same node on 1.1.0.
    c.proc("a").signal("TERM");
    assert_eq!(c.proc("a").wait_exit(Duration::from_secs(10)), Some(0));
    let path = c.config("a");
    let upgraded = std::fs::read_to_string(&path)
        .unwrap()
        .replace("version = \"1.0.0\"", "version = \"1.1.0\"");
    std::fs::write(&path, upgraded).unwrap();
    c.start("a");
    common::wait_until(Duration::from_secs(10), "a to rejoin on 1.1.0", || {
        (version_seen(&c, "b", "a").as_deref() == Some("1.1.0")).then_some(())
    });
    // All on 1.1.0 now: oldest-running breaks the tie, and c has run longest (and a, back on
    // 1.1.0, started last: it does not take leadership back).
    let next_term = all_see(&c, "c");
    assert!(next_term > term);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        all_see(&c, "c"),
        next_term,
        "leadership stays with c\n{}",
        c.logs()
    );
}

#[test]
fn a_bad_version_is_refused_naming_the_file_and_the_field() {
    let c = Cluster::new("badversion", &["a"]);
    set_version(&c, "a", "1.4");
    let out = std::process::Command::new(common::BATON)
        .arg("node")
        .arg("--config")
        .arg(c.config("a"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let file = c.config("a").display().to_string();
    assert!(
        err.contains(&format!(
            "{file}: node.version: \"1.4\" is not a semantic version"
        )),
        "{err}"
    );
}
