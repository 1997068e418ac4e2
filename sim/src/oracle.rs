//! The invariants. Safety — (a) one leader per (group, term) and terms that only grow,
//! (b) never two acting leaders at one true instant, (c) a node's term never goes down — is
//! judged by the [`Oracle`], which [`Sim`] shows every running node after every step and
//! which reports the first violation. Liveness — (d) agreement on one leader per group, and
//! every live node seen alive by every other — is read by the queries on [`Sim`] below, which
//! the schedules ([`Scenario`](crate::Scenario)) call once the faults have healed.

use crate::clock;
use crate::config::{NodeIdx, SimGroup};
use crate::sim::{Sim, SimNode};
use baton_core::{GroupName, MemberId, NodeId, Term};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

/// An invariant violation (or a stuck simulation), with the virtual time it happened at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time since the start.
    pub at: Duration,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at t={}: {}", fmt_time(self.at), self.message)
    }
}

impl std::error::Error for Violation {}

/// Formats a virtual time as seconds with microsecond precision.
pub fn fmt_time(d: Duration) -> String {
    format!("{}.{:06}s", d.as_secs(), d.subsec_micros())
}

/// One group's agreed leadership: the leading member and its term.
pub type Agreed = (MemberId, Term);

/// Every group's agreed leadership, by group name.
pub type Agreement = BTreeMap<GroupName, Agreed>;

/// The safety invariants as an observer. After every step [`Sim`] shows it every running
/// node, each by its own clock; it judges them against what it has seen before — the
/// highest term each node showed per group, and who led each (group, term) — and reports the
/// first violation:
///
/// - **(a)** quorum mode: at most one member ever acts as leader per (group, term), and each
///   new leadership's term is above every earlier one (the fencing token only grows) — until a
///   node restarts without its persisted state ([`Oracle::forget`]), after which terms may
///   repeat;
/// - **(b)** quorum mode: at most one node acts as leader of a group at any true instant (each
///   node judged by its own clock's reading at that instant);
/// - **(c)** a node's term for a group never decreases (within an incarnation, and across
///   restarts when state persists).
pub(crate) struct Oracle {
    /// Quorum mode: (a) and (b) apply; availability mode checks (c) only.
    quorum: bool,
    /// Every (group, term) that ever had an acting leader in quorum mode, and who it was.
    leaders: BTreeMap<(GroupName, Term), MemberId>,
    /// Per node, the highest term seen per group, for invariant (c).
    terms: Vec<BTreeMap<GroupName, Term>>,
    /// A node restarted without its persisted state: from then on terms may repeat (nobody
    /// may remember them), so invariant (a) is no longer checked.
    forgetful: bool,
}

/// What the oracle found in one step.
pub(crate) struct Findings {
    /// (group, member, term) of each leadership seen acting for the first time, in order.
    pub(crate) new_leaders: Vec<(GroupName, MemberId, Term)>,
    /// The first invariant broken, if one was.
    pub(crate) violation: Option<String>,
}

impl Oracle {
    /// An oracle for `nodes` nodes; `quorum` for majority mode.
    pub(crate) fn new(nodes: usize, quorum: bool) -> Self {
        Oracle {
            quorum,
            leaders: BTreeMap::new(),
            terms: vec![BTreeMap::new(); nodes],
            forgetful: false,
        }
    }

    /// Every (group, term) that had an acting leader (quorum mode), and who led it.
    fn history(&self) -> &BTreeMap<(GroupName, Term), MemberId> {
        &self.leaders
    }

    /// Node `i` restarted on a blank disk: its term invariant starts over, and terms may
    /// repeat in the cluster from now on (invariant (a) is off).
    pub(crate) fn forget(&mut self, i: NodeIdx) {
        self.terms[i].clear();
        self.forgetful = true;
    }

    /// Judges one step: every group, every running node, each by its own clock's reading
    /// at true time `now` (µs after `base`).
    pub(crate) fn observe(
        &mut self,
        groups: &[SimGroup],
        nodes: &[SimNode],
        base: Instant,
        now: u64,
    ) -> Findings {
        let mut new_leaders = Vec::new();
        let violation = self.judge(groups, nodes, base, now, &mut new_leaders).err();
        Findings {
            new_leaders,
            violation,
        }
    }

    fn judge(
        &mut self,
        groups: &[SimGroup],
        nodes: &[SimNode],
        base: Instant,
        true_now: u64,
        new_leaders: &mut Vec<(GroupName, MemberId, Term)>,
    ) -> Result<(), String> {
        for g in groups {
            let group = g.name.clone();
            let mut acting: Vec<(&NodeId, MemberId, Term)> = Vec::new();
            for (i, n) in nodes.iter().enumerate() {
                let now = n.reads(base, true_now);
                let Some(e) = &n.engine else {
                    continue;
                };
                let term = e.term(&group);
                let is_acting = e.is_acting_leader(&group, now);
                let member = e.local_member(&group).cloned();
                let lterm = if is_acting {
                    e.leadership(&group, now).term
                } else {
                    0
                };
                let terms = &mut self.terms[i];
                let last = terms.get(&group).copied().unwrap_or(0);
                if term < last {
                    return Err(format!(
                        "invariant (c) violated: {}'s term for {group} went down from {last} to {term}",
                        n.id
                    ));
                }
                if term > last {
                    terms.insert(group.clone(), term);
                }
                if is_acting {
                    let Some(member) = member else {
                        return Err(format!(
                            "{} acts as leader of {group} without a member in it",
                            n.id
                        ));
                    };
                    acting.push((&n.id, member, lterm));
                }
            }
            if !self.quorum {
                continue;
            }
            for (id, member, term) in &acting {
                match self.leaders.get(&(group.clone(), *term)) {
                    None if self.forgetful => {
                        self.leaders.insert((group.clone(), *term), member.clone());
                    }
                    None => {
                        // Fencing: a new leadership's term is above every earlier one.
                        let earlier = self
                            .leaders
                            .range((group.clone(), *term)..)
                            .take_while(|((g, _), _)| *g == group)
                            .next()
                            .map(|((_, t), m)| (*t, m.clone()));
                        if let Some((t, m)) = earlier {
                            return Err(format!(
                                "invariant (a) violated: {member} (on {id}) leads {group} in term {term}, but {m} already led it in the higher term {t}: terms must only grow"
                            ));
                        }
                        self.leaders.insert((group.clone(), *term), member.clone());
                        new_leaders.push((group.clone(), member.clone(), *term));
                    }
                    Some(m) if m == member || self.forgetful => {}
                    Some(m) => {
                        return Err(format!(
                            "invariant (a) violated: two leaders of {group} in term {term}: {m} earlier, now {member} (on {id})"
                        ));
                    }
                }
            }
            if acting.len() > 1 {
                let who: Vec<String> = acting
                    .iter()
                    .map(|(_, m, t)| format!("{m} (term {t})"))
                    .collect();
                return Err(format!(
                    "invariant (b) violated: {} nodes act as leader of {group} at once: {}",
                    acting.len(),
                    who.join(", ")
                ));
            }
        }
        Ok(())
    }
}

impl Sim {
    /// Whether node `i`'s engine counts node `j` (its current incarnation) alive.
    pub fn sees_alive(&self, i: NodeIdx, j: NodeIdx) -> bool {
        let Some(e) = self.engine(i) else {
            return false;
        };
        if i == j {
            return true;
        }
        let id = &self.nodes[j].id;
        let inc = self.nodes[j].incarnation;
        e.status(self.clock_of(i))
            .members
            .iter()
            .any(|m| m.name == *id && m.incarnation == inc && m.alive)
    }

    /// The pairs (viewer, peer) of live nodes where the viewer does not count the peer's
    /// current incarnation alive; empty once every live node sees every other one alive.
    pub fn not_seen_alive(&self) -> Vec<(NodeIdx, NodeIdx)> {
        let live = self.live();
        let mut out = Vec::new();
        for &i in &live {
            for &j in &live {
                if !self.sees_alive(i, j) {
                    out.push((i, j));
                }
            }
        }
        out
    }

    /// Every (group, term) that had an acting leader (quorum mode), and who led it.
    pub fn leadership_history(&self) -> &BTreeMap<(GroupName, Term), MemberId> {
        self.oracle.history()
    }

    /// The live nodes acting as leader of `group` right now (each by its own clock).
    pub fn acting_leaders(&self, group: &str) -> Vec<NodeIdx> {
        self.live()
            .into_iter()
            .filter(|&i| self.is_acting(i, group))
            .collect()
    }

    /// The one node acting as leader of `group`, if exactly one does.
    pub fn acting_leader(&self, group: &str) -> Option<NodeIdx> {
        match self.acting_leaders(group).as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The groups some live node has a member in.
    pub fn groups_with_members(&self) -> Vec<GroupName> {
        self.cfg
            .groups
            .iter()
            .map(|g| g.name.clone())
            .filter(|g| {
                self.live()
                    .into_iter()
                    .any(|i| self.engine(i).is_some_and(|e| e.local_member(g).is_some()))
            })
            .collect()
    }

    /// `group`'s leadership if every live node agrees on it: the same member and term, and
    /// that member's node is live and acting as leader.
    pub fn agreed(&self, group: &str) -> Option<Agreed> {
        let mut agreed: Option<Agreed> = None;
        for i in self.live() {
            let e = self.engine(i)?;
            let l = e.leadership(group, self.clock_of(i));
            let view = (l.leader?, l.term);
            match &agreed {
                None => agreed = Some(view),
                Some(a) if *a == view => {}
                Some(_) => return None,
            }
        }
        let (member, term) = agreed?;
        let li = self.index_of(member.node.as_str())?;
        let e = self.engine(li)?;
        (e.local_member(group) == Some(&member) && self.is_acting(li, group))
            .then_some((member, term))
    }

    /// Every group with live members, agreed; `None` unless all of them are.
    pub fn agreement(&self) -> Option<Agreement> {
        let groups = self.groups_with_members();
        if self.live().is_empty() {
            return None;
        }
        groups
            .into_iter()
            .map(|g| self.agreed(&g).map(|a| (g, a)))
            .collect()
    }

    /// A one-line summary of every live node's view of every group, for failure messages.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let now = self.clock_of(i);
            let Some(e) = &n.engine else {
                out.push_str(&format!(
                    "\n  {} (down, last incarnation {})",
                    n.id, n.incarnation
                ));
                continue;
            };
            out.push_str(&format!(
                "\n  {} inc {} clock x{:.4}:",
                n.id,
                n.incarnation,
                n.clock.rate_ppm() as f64 / clock::PPM as f64
            ));
            for g in &self.cfg.groups {
                let l = e.leadership(&g.name, now);
                out.push_str(&format!(
                    " [{} leader={} term={} acting={} member={}]",
                    g.name,
                    l.leader.map_or("-".to_string(), |m| m.to_string()),
                    l.term,
                    e.is_acting_leader(&g.name, now),
                    e.local_member(&g.name)
                        .map_or("-".to_string(), |m| m.to_string()),
                ));
            }
            let names = |js: Vec<NodeIdx>| -> Vec<String> {
                js.into_iter()
                    .map(|j| self.nodes[j].id.to_string())
                    .collect()
            };
            let from_i = |rules: &BTreeSet<(NodeIdx, NodeIdx)>| {
                names(
                    rules
                        .iter()
                        .filter(|(f, _)| *f == i)
                        .map(|&(_, t)| t)
                        .collect(),
                )
            };
            let cut = from_i(&self.blocked);
            if !cut.is_empty() {
                out.push_str(&format!(" cut-to={cut:?}"));
            }
            let reset = from_i(&self.resets);
            if !reset.is_empty() {
                out.push_str(&format!(" reset-to={reset:?}"));
            }
            let dead_to = names(
                (0..self.nodes.len())
                    .filter(|&j| j != i && self.is_live(j) && !self.sees_alive(i, j))
                    .collect(),
            );
            if !dead_to.is_empty() {
                out.push_str(&format!(" not-alive={dead_to:?}"));
            }
        }
        out
    }

    /// A violation at the current time, with every node's view appended.
    pub(crate) fn violation(&self, message: String) -> Violation {
        Violation {
            at: self.now(),
            message: format!("{message}\ncluster:{}", self.describe()),
        }
    }
}
