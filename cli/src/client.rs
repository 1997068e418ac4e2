//! `baton status` and `baton work`: a client connects to one node (authenticating with the
//! cluster secret, but never becoming a member) and asks it.

use crate::cli::{StatusCmd, WorkCmd};
use crate::errors::{Kind, fail};
use crate::net::Client;
use crate::settings::{DEFAULT_GROUP, client_target};
use anyhow::Result;
use baton_admin::{status_json, unhealthy_in};
use baton_core::engine::StatusSnapshot;
use baton_core::{CallError, GroupName, Served};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// `baton status`.
pub(crate) async fn status(cmd: StatusCmd) -> Result<()> {
    let target = client_target(&cmd.client)?;
    let timeout = Duration::from_millis(cmd.client.timeout_ms);
    let mut client = Client::connect(&target, timeout).await?;
    let snap = ask_status(&mut client, &target.addr, timeout).await?;
    if cmd.json {
        println!("{}", status_json(&snap));
    } else {
        print!("{}", status_text(&snap, &target.cluster));
    }
    Ok(())
}

/// The node's status, or a timeout error.
async fn ask_status(client: &mut Client, addr: &str, timeout: Duration) -> Result<StatusSnapshot> {
    match tokio::time::timeout(timeout, client.status()).await {
        Ok(r) => r,
        Err(_) => Err(fail(
            Kind::Timeout,
            format!("{addr} did not answer a status request within {timeout:?}"),
        )),
    }
}

/// Fails at once when no live node the asked node knows has a member in `group` (there is
/// nobody to wait for, leader or not).
pub(crate) fn check_has_members(snap: &StatusSnapshot, group: &str) -> Result<()> {
    if snap
        .members
        .iter()
        .any(|m| m.alive && m.groups.iter().any(|g| g == group))
    {
        return Ok(());
    }
    let mut known: Vec<&str> = snap
        .members
        .iter()
        .filter(|m| m.alive)
        .flat_map(|m| m.groups.iter().map(GroupName::as_str))
        .collect();
    known.sort_unstable();
    known.dedup();
    let known = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    Err(fail(
        Kind::NoMember,
        format!(
            "no member of group {group:?}: no live node that {} knows has joined it (groups with members: {known})",
            snap.node
        ),
    ))
}

/// The status as a small table.
pub(crate) fn status_text(s: &StatusSnapshot, cluster: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "node {} (cluster {cluster}) sees:", s.node);
    let _ = writeln!(out, "members:");
    let rows: Vec<[String; 6]> = s
        .members
        .iter()
        .map(|m| {
            [
                m.name.to_string(),
                m.addr.clone().unwrap_or_else(|| "-".into()),
                m.incarnation.to_string(),
                m.version
                    .as_ref()
                    .map_or_else(|| "-".to_string(), ToString::to_string),
                if m.alive { "alive" } else { "down" }.to_string(),
                if m.groups.is_empty() {
                    "-".to_string()
                } else {
                    m.groups.join(",")
                },
            ]
        })
        .collect();
    let header = [
        "NAME",
        "ADDRESS",
        "INCARNATION",
        "VERSION",
        "STATE",
        "GROUPS",
    ]
    .map(String::from);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(rows.iter()) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::from(" ");
        for (w, cell) in widths.iter().zip(row) {
            let _ = write!(line, " {cell:<w$}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out, "groups:");
    if s.groups.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for g in &s.groups {
        let unhealthy = unhealthy_in(s, &g.group);
        let health = if unhealthy.is_empty() {
            String::new()
        } else {
            format!("; unhealthy: {}", unhealthy.join(", "))
        };
        match &g.leader {
            Some(m) => {
                let _ = writeln!(
                    out,
                    "  {}: leader {} (term {}){health}",
                    g.group, m.node, g.term
                );
            }
            None => {
                let _ = writeln!(out, "  {}: no leader (term {}){health}", g.group, g.term);
                if let Some(w) = s.no_leader.iter().find(|w| w.group == g.group) {
                    for r in w.reasons() {
                        let _ = writeln!(out, "    {r}");
                    }
                }
            }
        }
    }
    out
}

/// `[timing] call_timeout_ms` of a node whose config we do not have (the default).
const DEFAULT_CALL_TIMEOUT_MS: u64 =
    baton_core::engine::defaults::ms(baton_core::engine::defaults::CALL_TIMEOUT);

/// `baton work`.
pub(crate) async fn work(cmd: WorkCmd) -> Result<()> {
    let target = client_target(&cmd.client)?;
    let group = cmd.group.clone().unwrap_or_else(|| match &target.config {
        Some(c) if c.groups.len() == 1 => c.groups[0].name.clone(),
        _ => DEFAULT_GROUP.into(),
    });
    let timeout = Duration::from_millis(cmd.client.timeout_ms);
    let mut client = Client::connect(&target, timeout).await?;
    // The node gives up on a call after its own call timeout and says why (no leader, timed
    // out): wait for that answer rather than guess.
    let node_call_timeout = target
        .config
        .as_ref()
        .map_or(DEFAULT_CALL_TIMEOUT_MS, |c| c.timing.call_timeout_ms);
    let wait = timeout + Duration::from_millis(node_call_timeout);
    // A group nobody joined has nothing to wait for: say so at once, not after the node's
    // call timeout.
    let snap = ask_status(&mut client, &target.addr, timeout).await?;
    check_has_members(&snap, &group)?;
    for _ in 0..cmd.count {
        let t0 = Instant::now();
        let answer = tokio::time::timeout(
            wait,
            client.call(&group, cmd.any, cmd.payload.clone().into_bytes()),
        )
        .await
        .map_err(|_| {
            fail(
                Kind::Timeout,
                format!("{} did not answer within {wait:?}", target.addr),
            )
        })??;
        let elapsed = t0.elapsed();
        match answer {
            Ok(served) if cmd.json => println!("{}", served_json(&group, &served, elapsed)),
            Ok(served) => println!("{}", served_text(&served, elapsed)),
            Err(e) => {
                let kind = match e {
                    CallError::NoLeader { .. } => Kind::NoLeader,
                    CallError::Timeout => Kind::Timeout,
                    _ => Kind::Call,
                };
                let mut message = format!("work in group {group:?} failed: {e}");
                if kind == Kind::NoLeader
                    && let Ok(snap) = ask_status(&mut client, &target.addr, timeout).await
                    && let Some(why) = snap.no_leader.iter().find(|w| w.group == group)
                {
                    message = format!("{message}: {why}");
                }
                return Err(fail(kind, message));
            }
        }
    }
    Ok(())
}

/// `served by b (leader, term 3): b did job under term 3  [1.234 ms]`.
pub(crate) fn served_text(s: &Served, elapsed: Duration) -> String {
    let role = if s.leader {
        format!("leader, term {}", s.term)
    } else {
        "not the leader".to_string()
    };
    format!(
        "served by {} ({role}): {}  [{:.3} ms]",
        s.member.node,
        String::from_utf8_lossy(&s.payload),
        elapsed.as_secs_f64() * 1e3
    )
}

/// One call's answer as JSON.
pub(crate) fn served_json(group: &str, s: &Served, elapsed: Duration) -> Value {
    json!({
        "group": group,
        "node": s.member.node.as_str(),
        "member": s.member.to_string(),
        "term": s.term,
        "leader": s.leader,
        "reply": String::from_utf8_lossy(&s.payload),
        "ms": elapsed.as_secs_f64() * 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::engine::{NoLeader, NodeStatus};
    use baton_core::{Leadership, MemberId, NodeId};

    fn snap() -> StatusSnapshot {
        StatusSnapshot {
            node: NodeId::new("a"),
            members: vec![
                NodeStatus {
                    name: NodeId::new("a"),
                    addr: Some("127.0.0.1:7101".into()),
                    incarnation: baton_core::Incarnation(5),
                    alive: true,
                    groups: vec!["tracked".into()],
                    version: Some(baton_core::Version::new(1, 4, 2)),
                },
                NodeStatus {
                    name: NodeId::new("b"),
                    addr: None,
                    incarnation: baton_core::Incarnation(6),
                    alive: false,
                    groups: vec![],
                    version: None,
                },
            ],
            groups: vec![Leadership {
                group: "tracked".into(),
                leader: Some(MemberId::new("a", 0)),
                term: 3,
                is_me: true,
            }],
            no_leader: vec![],
            rankings: vec![],
            unhealthy: vec![],
            lease_renewals: vec![],
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let v = status_json(&snap());
        assert_eq!(v["groups"][0]["name"], "tracked");
        assert_eq!(v["groups"][0]["leader"], "a");
        assert_eq!(v["groups"][0]["term"], 3);
        assert_eq!(v["members"][1]["name"], "b");
        assert_eq!(v["members"][1]["alive"], false);
    }

    fn leaderless() -> StatusSnapshot {
        use baton_core::engine::{VoterState, VoterView};
        let mut s = snap();
        s.groups.push(Leadership {
            group: "other".into(),
            leader: None,
            term: 2,
            is_me: false,
        });
        s.no_leader.push(NoLeader {
            group: "other".into(),
            term: 2,
            voters: vec![
                VoterView {
                    name: NodeId::new("a"),
                    state: VoterState::Silent,
                    this_node: false,
                },
                VoterView {
                    name: NodeId::new("b"),
                    state: VoterState::Alive,
                    this_node: true,
                },
                VoterView {
                    name: NodeId::new("c"),
                    state: VoterState::Unknown,
                    this_node: false,
                },
            ],
            reachable: vec![NodeId::new("b")],
            needed: 2,
            candidates: 1,
            favourite: Some(MemberId::new("b", 0)),
            favourite_is_local: true,
            abstaining_ms: Some(120),
            standing_aside: None,
            shutting_down: false,
        });
        s
    }

    #[test]
    fn why_there_is_no_leader_is_shown_in_text_and_json() {
        let s = leaderless();
        let t = status_text(&s, "demo");
        assert!(t.contains("  other: no leader (term 2)\n"), "{t}");
        assert!(
            t.contains("    quorum: 1 of 3 voters reachable (b), 2 needed\n"),
            "{t}"
        );
        assert!(
            t.contains("voters: a silent, b (this node) alive, c unknown"),
            "{t}"
        );
        assert!(t.contains("abstains from voting for 120 ms more"), "{t}");
        let v = status_json(&s);
        assert_eq!(v["groups"][0]["no_leader"], Value::Null);
        let w = &v["groups"][1]["no_leader"];
        assert_eq!(w["needed"], 2);
        assert_eq!(w["reachable"][0], "b");
        assert_eq!(w["voters"][2]["state"], "unknown");
        assert_eq!(w["favourite"], "b#0");
        assert_eq!(w["abstaining_ms"], 120);
        assert!(
            w["reason"]
                .as_str()
                .unwrap()
                .contains("quorum: 1 of 3 voters reachable (b), 2 needed"),
            "{w}"
        );
    }

    #[test]
    fn work_to_a_group_nobody_joined_fails_at_once() {
        let s = snap();
        assert!(check_has_members(&s, "tracked").is_ok());
        let e = check_has_members(&s, "nosuch").unwrap_err();
        assert_eq!(crate::errors::kind_of(&e), Kind::NoMember);
        let m = e.to_string();
        assert!(m.starts_with("no member of group \"nosuch\""), "{m}");
        assert!(m.contains("groups with members: tracked"), "{m}");
    }

    #[test]
    fn text_lists_members_and_leaders() {
        let t = status_text(&snap(), "demo");
        assert!(t.contains("tracked: leader a (term 3)"), "{t}");
        assert!(t.contains("127.0.0.1:7101"), "{t}");
        assert!(t.contains("down"), "{t}");
    }

    #[test]
    fn text_and_json_show_each_nodes_version() {
        let t = status_text(&snap(), "demo");
        let header = t.lines().find(|l| l.contains("NAME")).expect("a header");
        assert!(header.contains("VERSION"), "{t}");
        let a = t
            .lines()
            .find(|l| l.trim_start().starts_with("a "))
            .expect("a's row");
        assert!(a.contains(" 1.4.2 "), "{t}");
        let b = t
            .lines()
            .find(|l| l.trim_start().starts_with("b "))
            .expect("b's row");
        assert!(b.contains(" - "), "{t}");
        let v = status_json(&snap());
        assert_eq!(v["members"][0]["version"], "1.4.2");
        assert!(v["members"][1]["version"].is_null());
    }
}
