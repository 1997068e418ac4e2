//! What one status snapshot says, for `/api/status`, `/readyz` and the gauges of `/metrics`:
//! readiness, voters reachable, and each group's members in ranking order.

use baton_core::engine::{NoLeader, StatusSnapshot};
use baton_core::{MemberId, NodeId};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The parts of the node's config the admin server needs.
#[derive(Clone, Debug)]
pub(crate) struct Cluster {
    /// `cluster.quorum = "majority"`.
    pub(crate) majority: bool,
    /// The voters (this node alone when the list is empty).
    pub(crate) voters: BTreeSet<NodeId>,
    /// Whether the node has seeds (then it must meet a peer to count as joined).
    pub(crate) has_seeds: bool,
}

/// A snapshot and what follows from it.
pub(crate) struct View {
    pub(crate) snap: StatusSnapshot,
    pub(crate) incarnation: u64,
    pub(crate) cluster: Cluster,
    /// `Ok` when ready, else why not.
    pub(crate) ready: Result<(), String>,
}

impl View {
    pub(crate) fn new(snap: StatusSnapshot, incarnation: u64, cluster: Cluster) -> View {
        let mut v = View {
            snap,
            incarnation,
            cluster,
            ready: Ok(()),
        };
        v.ready = v.readiness();
        v
    }

    fn alive(&self) -> BTreeSet<&NodeId> {
        self.snap
            .members
            .iter()
            .filter(|m| m.alive)
            .map(|m| &m.name)
            .collect()
    }

    /// Voters alive in this node's view.
    pub(crate) fn voters_reachable(&self) -> usize {
        let alive = self.alive();
        self.cluster
            .voters
            .iter()
            .filter(|v| alive.contains(v))
            .count()
    }

    /// Voters a leader needs (0 without a quorum).
    pub(crate) fn voters_needed(&self) -> usize {
        if self.cluster.majority {
            self.cluster.voters.len() / 2 + 1
        } else {
            0
        }
    }

    /// Joined (a peer met, when there are seeds) and, in quorum mode, a majority of voters
    /// reachable.
    fn readiness(&self) -> Result<(), String> {
        let me = &self.snap.node;
        let peers_alive = self
            .snap
            .members
            .iter()
            .filter(|m| m.alive && m.name != *me)
            .count();
        if !self.snap.members.iter().any(|m| m.name == *me && m.alive) {
            return Err(format!("node {me} is shutting down"));
        }
        if self.cluster.majority {
            let alive = self.alive();
            let reachable: Vec<&str> = self
                .cluster
                .voters
                .iter()
                .filter(|v| alive.contains(v))
                .map(NodeId::as_str)
                .collect();
            let needed = self.voters_needed();
            if reachable.len() < needed {
                return Err(format!(
                    "node {me} reaches {} of {} voters ({}), {needed} needed for a majority",
                    reachable.len(),
                    self.cluster.voters.len(),
                    if reachable.is_empty() {
                        "none".to_string()
                    } else {
                        reachable.join(", ")
                    }
                ));
            }
        }
        if self.cluster.has_seeds && peers_alive == 0 {
            return Err(format!("node {me} has not joined: no peer reached yet"));
        }
        Ok(())
    }

    /// Unix seconds of this node's incarnation (wall-clock microseconds at start by default).
    pub(crate) fn incarnation_time_s(&self) -> f64 {
        self.incarnation as f64 / 1e6
    }

    /// `/api/status`: [`status_json`] (what `baton status --json` prints), plus this node's
    /// incarnation, readiness and voters, whether each member is this node, and each group's
    /// members in ranking order.
    pub(crate) fn json(&self) -> Value {
        let s = &self.snap;
        let mut v = status_json(s);
        merge(
            &mut v,
            json!({
                "incarnation": self.incarnation,
                "ready": self.ready.is_ok(),
                "ready_reason": self.ready.as_ref().err(),
                "quorum": if self.cluster.majority { "majority" } else { "none" },
                "voters": self.cluster.voters.iter().map(NodeId::as_str).collect::<Vec<_>>(),
                "voters_reachable": self.voters_reachable(),
                "voters_needed": self.voters_needed(),
            }),
        );
        if let Some(Value::Array(members)) = v.get_mut("members") {
            for (j, m) in members.iter_mut().zip(&s.members) {
                merge(j, json!({ "this_node": m.name == s.node }));
            }
        }
        if let Some(Value::Array(groups)) = v.get_mut("groups") {
            for (j, g) in groups.iter_mut().zip(&s.groups) {
                let ranking: &[MemberId] = s
                    .rankings
                    .iter()
                    .find(|(name, _)| *name == g.group)
                    .map_or(&[], |(_, r)| r);
                let ranking: Vec<String> = ranking.iter().map(|m| m.to_string()).collect();
                merge(j, json!({ "ranking": ranking }));
            }
        }
        v
    }
}

/// Adds `extra`'s fields to the object `v` (both are objects where this is called).
fn merge(v: &mut Value, extra: Value) {
    if let (Value::Object(v), Value::Object(extra)) = (v, extra) {
        v.extend(extra);
    }
}

/// A node's status as one JSON object — what `baton status --json` prints, and the base of
/// `/api/status`:
/// `{"node", "members": [{"name", "addr", "incarnation", "alive", "groups", "version"}],
///   "groups": [{"name", "leader", "leader_member", "term", "local_is_leader", "no_leader"}]}`
/// (`no_leader`: [`no_leader_json`], or `null` while the group has a leader).
pub fn status_json(s: &StatusSnapshot) -> Value {
    json!({
        "node": s.node.as_str(),
        "members": s.members.iter().map(|m| json!({
            "name": m.name.as_str(),
            "addr": m.addr,
            "incarnation": m.incarnation,
            "alive": m.alive,
            "groups": m.groups,
            "version": m.version.as_ref().map(ToString::to_string),
        })).collect::<Vec<_>>(),
        "groups": s.groups.iter().map(|g| json!({
            "name": g.group,
            "leader": g.leader.as_ref().map(|m| m.node.as_str()),
            "leader_member": g.leader.as_ref().map(|m| m.to_string()),
            "term": g.term,
            "local_is_leader": g.is_me,
            "no_leader": s.no_leader.iter().find(|w| w.group == g.group).map(no_leader_json),
            "unhealthy": unhealthy_in(s, &g.group),
        })).collect::<Vec<_>>(),
    })
}

/// The nodes whose member of `group` is unhealthy in `s`, sorted.
pub fn unhealthy_in<'a>(s: &'a StatusSnapshot, group: &str) -> Vec<&'a str> {
    let mut nodes: Vec<&str> = s
        .unhealthy
        .iter()
        .filter(|(g, _)| g == group)
        .map(|(_, m)| m.node.as_str())
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

/// Why a group has no leader, as JSON: `{"reason", "voters": [{"name", "state",
/// "this_node"}], "reachable", "needed", "candidates", "favourite", "favourite_is_local",
/// "abstaining_ms", "standing_aside", "shutting_down"}` (`baton status --json` prints the same).
pub fn no_leader_json(w: &NoLeader) -> Value {
    json!({
        "reason": w.reasons().join("; "),
        "voters": w.voters.iter().map(|v| json!({
            "name": v.name.as_str(),
            "state": v.state.to_string(),
            "this_node": v.this_node,
        })).collect::<Vec<_>>(),
        "reachable": w.reachable.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "needed": w.needed,
        "candidates": w.candidates,
        "favourite": w.favourite.as_ref().map(|m| m.to_string()),
        "favourite_is_local": w.favourite_is_local,
        "abstaining_ms": w.abstaining_ms,
        "standing_aside": w.standing_aside,
        "shutting_down": w.shutting_down,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::engine::NodeStatus;
    use baton_core::{Incarnation, Leadership};

    fn snap(alive: &[(&str, bool)]) -> StatusSnapshot {
        StatusSnapshot {
            node: NodeId::new(alive[0].0),
            members: alive
                .iter()
                .map(|(n, a)| NodeStatus {
                    name: NodeId::new(*n),
                    addr: None,
                    incarnation: Incarnation(1),
                    alive: *a,
                    groups: vec!["g".into()],
                    version: None,
                })
                .collect(),
            groups: vec![Leadership::none("g")],
            no_leader: vec![],
            rankings: vec![],
            unhealthy: vec![],
            lease_renewals: vec![],
        }
    }

    fn cluster(majority: bool) -> Cluster {
        Cluster {
            majority,
            voters: ["a", "b", "c"].into_iter().map(NodeId::new).collect(),
            has_seeds: true,
        }
    }

    #[test]
    fn ready_needs_a_majority_of_voters_in_quorum_mode_only() {
        let v = View::new(
            snap(&[("a", true), ("b", true), ("c", false)]),
            1,
            cluster(true),
        );
        assert_eq!(v.ready, Ok(()));
        assert_eq!((v.voters_reachable(), v.voters_needed()), (2, 2));
        let v = View::new(
            snap(&[("a", true), ("b", false), ("c", false)]),
            1,
            cluster(true),
        );
        let why = v.ready.unwrap_err();
        assert!(why.contains("reaches 1 of 3 voters (a), 2 needed"), "{why}");
        // Without a quorum, one peer met is enough…
        let v = View::new(
            snap(&[("a", true), ("b", true), ("c", false)]),
            1,
            cluster(false),
        );
        assert_eq!(v.ready, Ok(()));
        // …but a node with seeds that met nobody has not joined.
        let v = View::new(snap(&[("a", true), ("b", false)]), 1, cluster(false));
        assert!(v.ready.unwrap_err().contains("has not joined"));
    }
}
