//! `baton status` and `baton work`: a client connects to one node (authenticating with the
//! cluster secret, but never becoming a member) and asks it.

use crate::cli::{StatusCmd, WorkCmd};
use crate::net::Client;
use crate::settings::{DEFAULT_GROUP, client_target};
use anyhow::{Context, Result, bail};
use baton_core::Served;
use baton_core::engine::StatusSnapshot;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// `baton status`.
pub async fn status(cmd: StatusCmd) -> Result<()> {
    let target = client_target(&cmd.client)?;
    let timeout = Duration::from_millis(cmd.client.timeout_ms);
    let mut client = Client::connect(&target, timeout).await?;
    let snap = tokio::time::timeout(timeout, client.status())
        .await
        .with_context(|| format!("{} did not answer within {timeout:?}", target.addr))??;
    if cmd.json {
        println!("{}", status_json(&snap));
    } else {
        print!("{}", status_text(&snap, &target.cluster));
    }
    Ok(())
}

/// The status as one JSON object:
/// `{"node", "members": [{"name", "addr", "incarnation", "alive", "groups"}],
///   "groups": [{"name", "leader", "leader_member", "term", "local_is_leader"}]}`.
pub fn status_json(s: &StatusSnapshot) -> Value {
    json!({
        "node": s.node.as_str(),
        "members": s.members.iter().map(|m| json!({
            "name": m.name.as_str(),
            "addr": m.addr,
            "incarnation": m.incarnation,
            "alive": m.alive,
            "groups": m.groups,
        })).collect::<Vec<_>>(),
        "groups": s.groups.iter().map(|g| json!({
            "name": g.group,
            "leader": g.leader.as_ref().map(|m| m.node.as_str()),
            "leader_member": g.leader.as_ref().map(|m| m.to_string()),
            "term": g.term,
            "local_is_leader": g.is_me,
        })).collect::<Vec<_>>(),
    })
}

/// The status as a small table.
pub fn status_text(s: &StatusSnapshot, cluster: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "node {} (cluster {cluster}) sees:", s.node);
    let _ = writeln!(out, "members:");
    let rows: Vec<[String; 5]> = s
        .members
        .iter()
        .map(|m| {
            [
                m.name.to_string(),
                m.addr.clone().unwrap_or_else(|| "-".into()),
                m.incarnation.to_string(),
                if m.alive { "alive" } else { "down" }.to_string(),
                if m.groups.is_empty() {
                    "-".to_string()
                } else {
                    m.groups.join(",")
                },
            ]
        })
        .collect();
    let header = ["NAME", "ADDRESS", "INCARNATION", "STATE", "GROUPS"].map(String::from);
    let mut widths = [0usize; 5];
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
        match &g.leader {
            Some(m) => {
                let _ = writeln!(out, "  {}: leader {} (term {})", g.group, m.node, g.term);
            }
            None => {
                let _ = writeln!(out, "  {}: no leader (term {})", g.group, g.term);
            }
        }
    }
    out
}

/// `[timing] call_timeout_ms` of a node whose config we do not have (the default).
const DEFAULT_CALL_TIMEOUT_MS: u64 = 5000;

/// `baton work`.
pub async fn work(cmd: WorkCmd) -> Result<()> {
    let target = client_target(&cmd.client)?;
    let group = cmd.group.clone().unwrap_or_else(|| match &target.config {
        Some(c) if c.groups.len() == 1 => c.groups[0].name.clone(),
        _ => DEFAULT_GROUP.to_string(),
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
    for _ in 0..cmd.count {
        let t0 = Instant::now();
        let answer = tokio::time::timeout(
            wait,
            client.call(&group, cmd.any, cmd.payload.clone().into_bytes()),
        )
        .await
        .with_context(|| format!("{} did not answer within {wait:?}", target.addr))??;
        let elapsed = t0.elapsed();
        match answer {
            Ok(served) if cmd.json => println!("{}", served_json(&group, &served, elapsed)),
            Ok(served) => println!("{}", served_text(&served, elapsed)),
            Err(e) => bail!("work in group {group:?} failed: {e}"),
        }
    }
    Ok(())
}

/// `served by b (leader, term 3): b did job under term 3  [1.234 ms]`.
pub fn served_text(s: &Served, elapsed: Duration) -> String {
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
pub fn served_json(group: &str, s: &Served, elapsed: Duration) -> Value {
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
    use baton_core::engine::NodeStatus;
    use baton_core::{Leadership, MemberId, NodeId};

    fn snap() -> StatusSnapshot {
        StatusSnapshot {
            node: NodeId::new("a"),
            members: vec![
                NodeStatus {
                    name: NodeId::new("a"),
                    addr: Some("127.0.0.1:7101".into()),
                    incarnation: 5,
                    alive: true,
                    groups: vec!["tracked".into()],
                },
                NodeStatus {
                    name: NodeId::new("b"),
                    addr: None,
                    incarnation: 6,
                    alive: false,
                    groups: vec![],
                },
            ],
            groups: vec![Leadership {
                group: "tracked".into(),
                leader: Some(MemberId::new("a", 0)),
                term: 3,
                is_me: true,
            }],
            no_leader: vec![],
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

    #[test]
    fn text_lists_members_and_leaders() {
        let t = status_text(&snap(), "demo");
        assert!(t.contains("tracked: leader a (term 3)"), "{t}");
        assert!(t.contains("127.0.0.1:7101"), "{t}");
        assert!(t.contains("down"), "{t}");
    }
}
