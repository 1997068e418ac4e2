//! Diagnostics that read the engine's state and change none of the protocol's: why a group has
//! no leader ([`Engine::why_no_leader`], in `status` and logged once per change), and voters
//! that no node answers for (an [`Action::Warn`](super::Action::Warn)).

use super::peers::{Liveness, Peer};
use super::{Engine, Quorum};
use crate::types::{MemberId, NodeId, Term};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

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

/// Why a group has no leader, as one node sees it ([`Engine::why_no_leader`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoLeader {
    /// The group.
    pub group: String,
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
        let strip = |w: &NoLeader| NoLeader {
            abstaining_ms: w.abstaining_ms.map(|_| 0),
            ..w.clone()
        };
        strip(self) == strip(other)
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

/// The engine's bookkeeping for these diagnostics.
#[derive(Clone, Debug)]
pub(super) struct Diagnostics {
    /// When the engine started: unseen voters are reported 2 × failure timeout later.
    started: Instant,
    /// Whether that check ran.
    unseen_checked: bool,
    /// Groups without a leader: since when, and the reason last logged.
    leaderless: BTreeMap<String, (Instant, Option<NoLeader>)>,
}

impl Diagnostics {
    pub(super) fn new(now: Instant) -> Self {
        Diagnostics {
            started: now,
            unseen_checked: false,
            leaderless: BTreeMap::new(),
        }
    }
}

fn voter_state(p: Option<&Peer>) -> VoterState {
    match p {
        None => VoterState::Unknown,
        Some(p) => match p.liveness {
            Liveness::Dead { .. } => VoterState::Dead,
            Liveness::Silent => VoterState::Silent,
            Liveness::Alive if p.is_reachable() => VoterState::Alive,
            Liveness::Alive => VoterState::Reset,
        },
    }
}

impl Engine {
    /// Why `group` has no leader in this node's view at `now`; `None` when it has one (or the
    /// group is unknown). Read-only.
    pub fn why_no_leader(&self, group: &str, now: Instant) -> Option<NoLeader> {
        let g = self.groups.get(group)?;
        if g.leader.is_some() {
            return None;
        }
        let me = &self.cfg.node;
        let voters: Vec<VoterView> = match &self.cfg.quorum {
            Quorum::Majority(v) => v
                .iter()
                .map(|name| VoterView {
                    name: name.clone(),
                    state: if name == me {
                        if self.shutting_down {
                            VoterState::Dead
                        } else {
                            VoterState::Alive
                        }
                    } else {
                        voter_state(self.peers.get(name))
                    },
                    this_node: name == me,
                })
                .collect(),
            Quorum::None => vec![],
        };
        let reachable = voters
            .iter()
            .filter(|v| v.state == VoterState::Alive)
            .map(|v| v.name.clone())
            .collect();
        let ranking = self.ranking(group);
        let favourite = ranking.first().cloned();
        let abstaining_ms = (self.is_voter(me) && now < self.abstain_until)
            .then(|| (self.abstain_until - now).as_millis() as u64);
        let standing_aside = if self.standing_aside {
            self.conflicting_config().map(|fp| {
                let voters: Vec<&str> = fp.voters.iter().map(NodeId::as_str).collect();
                format!(
                    "nodes with other safety settings (voters [{}], quorum {}, heartbeat {} ms, failure timeout {} ms) could elect a leader of their own",
                    voters.join(", "),
                    fp.quorum,
                    fp.heartbeat_ms,
                    fp.failure_timeout_ms
                )
            })
        } else {
            None
        };
        Some(NoLeader {
            group: group.to_string(),
            term: g.term,
            needed: if voters.is_empty() {
                0
            } else {
                self.majority()
            },
            voters,
            reachable,
            candidates: ranking.len(),
            favourite_is_local: favourite.as_ref().is_some_and(|f| f.node == *me),
            favourite,
            abstaining_ms,
            standing_aside,
            shutting_down: self.shutting_down,
        })
    }

    /// Every group's [`NoLeader`], for `status`.
    pub(super) fn no_leader_all(&self, now: Instant) -> Vec<NoLeader> {
        self.groups
            .keys()
            .filter_map(|name| self.why_no_leader(name, now))
            .collect()
    }

    /// Logs why a group has no leader once it has had none for a failure timeout (a normal
    /// election takes far less), and again only when the reason changes; and, once, voters
    /// that no node answered for within 2 × failure timeout.
    pub(super) fn diagnose(&mut self, now: Instant) {
        let ft = self.cfg.failure_timeout;
        if !self.diag.unseen_checked {
            let at = self.diag.started + ft * 2;
            if now >= at {
                self.diag.unseen_checked = true;
                self.warn_unseen_voters(ft * 2);
            } else {
                self.want(at);
            }
        }
        if self.shutting_down {
            return;
        }
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let leaderless = self.groups.get(&name).is_some_and(|g| g.leader.is_none());
            if !leaderless {
                self.diag.leaderless.remove(&name);
                continue;
            }
            let since = self
                .diag
                .leaderless
                .entry(name.clone())
                .or_insert((now, None))
                .0;
            // A restarted node's abstention delays every election it votes in: count from its
            // end.
            let since = since.max(self.abstain_until);
            if now < since + ft {
                self.want(since + ft);
                continue;
            }
            let Some(why) = self.why_no_leader(&name, now) else {
                continue;
            };
            let logged = self
                .diag
                .leaderless
                .get(&name)
                .and_then(|(_, l)| l.as_ref());
            if logged.is_some_and(|l| l.same_reason(&why)) {
                continue;
            }
            self.log(why.to_string());
            if let Some(entry) = self.diag.leaderless.get_mut(&name) {
                entry.1 = Some(why);
            }
        }
    }

    /// A warning listing the voters no node has answered for after `after`.
    fn warn_unseen_voters(&mut self, after: Duration) {
        let Quorum::Majority(voters) = &self.cfg.quorum else {
            return;
        };
        let me = &self.cfg.node;
        let unseen: Vec<&str> = voters
            .iter()
            .filter(|v| *v != me && self.peers.get(v).is_none())
            .map(NodeId::as_str)
            .collect();
        if unseen.is_empty() {
            return;
        }
        let total = voters.len();
        let needed = self.majority();
        let present = total - unseen.len();
        let tolerance = if present >= needed {
            format!(
                "the cluster tolerates {} failed voter(s) instead of {}",
                present - needed,
                total - needed
            )
        } else {
            "the voters seen are no majority: no leader can be elected".to_string()
        };
        let line = format!(
            "cluster.voters names {} that no node has answered for within {after:?} \
             (never seen); a leader needs {needed} of the {total} voters, so {tolerance}: check \
             cluster.voters against the nodes' names",
            unseen
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        self.out.push(super::Action::Warn(line));
    }
}
