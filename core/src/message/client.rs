//! What clients (`baton status`, `baton work`) and nodes tell each other: the status snapshot a
//! node answers with, and why a group has no leader. These are wire types (postcard is
//! positional: add fields only at the end); the engine builds them, they know nothing of it.

use crate::types::{GroupName, Incarnation, Leadership, MemberId, NodeId, Term, Version};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A snapshot of what the engine knows, for `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// This node.
    pub node: NodeId,
    /// Every node known, this one included.
    pub members: Vec<NodeStatus>,
    /// Every group known.
    pub groups: Vec<Leadership>,
    /// Why each group without a leader has none.
    #[serde(default)]
    pub no_leader: Vec<NoLeader>,
    /// Each group's live members in the order this node's policy ranks them now: the
    /// engine's own ranking (last on the wire: postcard is positional).
    #[serde(default)]
    pub rankings: Vec<(GroupName, Vec<MemberId>)>,
    /// Members this node knows to be unhealthy (its own and its live peers'): no candidates
    /// (last on the wire).
    #[serde(default)]
    pub unhealthy: Vec<(GroupName, MemberId)>,
    /// How many times this node extended its lease of each group it leads or led (quorum
    /// mode only; groups never renewed are left out): one per heartbeat a majority acked in
    /// time, so a leader's count grows about once a heartbeat period (last on the wire).
    #[serde(default)]
    pub lease_renewals: Vec<(GroupName, u64)>,
}

/// One node in a [`StatusSnapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its name.
    pub name: NodeId,
    /// Its address, when known.
    pub addr: Option<String>,
    /// Its incarnation.
    pub incarnation: Incarnation,
    /// Whether it is alive in this node's view.
    pub alive: bool,
    /// The groups it has members in.
    pub groups: Vec<GroupName>,
    /// The software version it runs (`[node] version`), when it announced one: a peer's is
    /// learnt from its members, so a peer with none shows none (last on the wire).
    #[serde(default)]
    pub version: Option<Version>,
}

/// A voter's state in this node's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VoterState {
    /// Heard from within the failure timeout (this node itself, unless shutting down).
    Alive,
    /// Alive, but its connection was reset (or redials refused without proof) since it was
    /// last heard from: perhaps cut off by a firewall. Not counted as reachable.
    Reset,
    /// Silent for a failure timeout.
    Silent,
    /// Proven gone (refused reconnect, a newer incarnation, its goodbye).
    Dead,
    /// Never seen: no node of this name has connected or been reached.
    Unknown,
}

impl fmt::Display for VoterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VoterState::Alive => "alive",
            VoterState::Reset => "reset",
            VoterState::Silent => "silent",
            VoterState::Dead => "dead",
            VoterState::Unknown => "unknown",
        })
    }
}

/// One voter in a [`NoLeader`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterView {
    /// Its name.
    pub name: NodeId,
    /// Its state.
    pub state: VoterState,
    /// Whether it is the node that answers.
    pub this_node: bool,
}

/// Why a group has no leader, as one node sees it
/// ([`Engine::why_no_leader`](crate::engine::Engine::why_no_leader)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoLeader {
    /// The group.
    pub group: GroupName,
    /// The highest leadership term known.
    pub term: Term,
    /// Every voter and its state (empty with `quorum = "none"`).
    pub voters: Vec<VoterView>,
    /// The voters counted as reachable (alive, no reset link).
    pub reachable: Vec<NodeId>,
    /// How many voters a leader needs (0 with `quorum = "none"`).
    pub needed: usize,
    /// Live members of the group (candidates).
    pub candidates: usize,
    /// The best-ranked live member: the one an election waits for.
    pub favourite: Option<MemberId>,
    /// Whether the favourite is this node's member.
    pub favourite_is_local: bool,
    /// This node restarted and abstains from voting for this many more milliseconds (promises
    /// made before the restart are not on disk).
    pub abstaining_ms: Option<u64>,
    /// This node stands aside (neither leads nor votes): nodes with other safety settings
    /// could elect a leader of their own. Describes them.
    pub standing_aside: Option<String>,
    /// This node is shutting down.
    pub shutting_down: bool,
}

impl NoLeader {
    /// Whether `other` gives the same reason, remaining times aside (the log repeats a reason
    /// only when it changes).
    pub fn same_reason(&self, other: &NoLeader) -> bool {
        self.group == other.group
            && self.term == other.term
            && self.favourite == other.favourite
            && self.same_reason_in_any_group(other)
    }

    /// Whether `other` gives the same reason, remaining times, group names, terms and
    /// favourites aside (compared field by field: a thousand leaderless groups are compared on
    /// every pass). The favourite's node still counts.
    pub fn same_reason_in_any_group(&self, other: &NoLeader) -> bool {
        self.same_cluster_view(other)
            && self.candidates == other.candidates
            && self.favourite.as_ref().map(|f| &f.node) == other.favourite.as_ref().map(|f| &f.node)
            && self.favourite_is_local == other.favourite_is_local
    }

    /// Whether `other` sees the same of the cluster, whatever the group: voters, quorum,
    /// abstention (not its remaining time), standing aside, shutting down.
    pub fn same_cluster_view(&self, other: &NoLeader) -> bool {
        // Destructured, so that a new field is not forgotten here.
        let NoLeader {
            group: _,
            term: _,
            candidates: _,
            favourite: _,
            favourite_is_local: _,
            voters,
            reachable,
            needed,
            abstaining_ms,
            standing_aside,
            shutting_down,
        } = self;
        *voters == other.voters
            && *reachable == other.reachable
            && *needed == other.needed
            && abstaining_ms.is_some() == other.abstaining_ms.is_some()
            && *standing_aside == other.standing_aside
            && *shutting_down == other.shutting_down
    }

    /// Whether enough voters are reachable for an election.
    pub fn has_quorum(&self) -> bool {
        self.reachable.len() >= self.needed
    }
}

impl NoLeader {
    /// The reasons, one clause each (`quorum: 1 of 3 voters reachable (b), 2 needed`); the
    /// [`Display`](fmt::Display) form joins them after `group G: no leader (term T)`.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.shutting_down {
            out.push("this node is shutting down".to_string());
        }
        if let Some(what) = &self.standing_aside {
            out.push(format!("standing aside (no leading, no voting): {what}"));
        }
        if !self.voters.is_empty() {
            let voters: Vec<String> = self
                .voters
                .iter()
                .map(|v| {
                    let me = if v.this_node { " (this node)" } else { "" };
                    format!("{}{me} {}", v.name, v.state)
                })
                .collect();
            out.push(format!("voters: {}", voters.join(", ")));
            let reachable: Vec<&str> = self.reachable.iter().map(NodeId::as_str).collect();
            out.push(format!(
                "quorum: {} of {} voters reachable ({}), {} needed",
                self.reachable.len(),
                self.voters.len(),
                if reachable.is_empty() {
                    "none".to_string()
                } else {
                    reachable.join(", ")
                },
                self.needed
            ));
        }
        let of = match self.candidates {
            1 => "1 candidate".to_string(),
            n => format!("{n} candidates"),
        };
        out.push(match &self.favourite {
            None => "no live member of the group".to_string(),
            Some(m) if self.favourite_is_local => {
                format!("favourite: {m} (this node's member; {of})")
            }
            Some(m) => format!("waiting for the favourite {m} ({of})"),
        });
        if let Some(ms) = self.abstaining_ms {
            out.push(format!(
                "this node restarted and abstains from voting for {ms} ms more"
            ));
        }
        out
    }
}

impl fmt::Display for NoLeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}: no leader (term {})", self.group, self.term)?;
        for r in self.reasons() {
            write!(f, "; {r}")?;
        }
        Ok(())
    }
}
