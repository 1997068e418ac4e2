//! Diagnostics that read the engine's state and change none of the protocol's: why a group has
//! no leader ([`Engine::why_no_leader`], in `status` and logged once per change), and voters
//! that no node answers for (an [`Event::UnseenVoters`]). The types they fill in are wire types,
//! in [`crate::message::client`].

use super::identity::other_settings;
use super::peers::{Liveness, Peer};
use super::timers::Timer;
use super::{Engine, Event, Quorum};
use crate::message::{NoLeader, VoterState, VoterView};
use crate::types::{GroupName, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The engine's bookkeeping for these diagnostics.
#[derive(Clone, Debug)]
pub(super) struct Diagnostics {
    /// When the engine started: unseen voters are reported 2 × failure timeout later.
    started: Instant,
    /// Whether that check ran.
    unseen_checked: bool,
    /// Groups without a leader: since when, and the reason last logged.
    leaderless: BTreeMap<GroupName, (Instant, Option<NoLeader>)>,
    /// No entry of `leaderless` is older than this (a lower bound, made exact by each pass):
    /// an input need not look at a thousand leaderless groups to know none is due yet.
    earliest: Option<Instant>,
    /// When the leaderless groups' reasons are next worked out: at most once a heartbeat, so
    /// a thousand leaderless groups do not cost a thousand diagnoses on every input.
    next_pass: Instant,
}

impl Diagnostics {
    pub(super) fn new(now: Instant) -> Self {
        Diagnostics {
            started: now,
            unseen_checked: false,
            leaderless: BTreeMap::new(),
            earliest: None,
            next_pass: now,
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
        let base = self.cluster_view(now);
        self.why_no_leader_in(&base, group)
    }

    /// [`Engine::why_no_leader`] with what every group shares (`cluster_view`) made once.
    fn why_no_leader_in(&self, base: &NoLeader, group: &str) -> Option<NoLeader> {
        let (group, g) = self.groups.get_key_value(group)?;
        // Led: by the engine's election, or by an elector's (`Engine::elected`).
        if g.leader.is_some() || self.elected_leads(group) {
            return None;
        }
        let ranking = self.ranking(group);
        let favourite = ranking.first().cloned();
        Some(NoLeader {
            group: group.clone(),
            term: g.term,
            candidates: ranking.len(),
            favourite_is_local: favourite.as_ref().is_some_and(|f| f.node == self.cfg.node),
            favourite,
            ..base.clone()
        })
    }

    /// Whether `group`'s reason would be `old` again (`why_no_leader_in` with `base`), built
    /// from nothing: a pass over a thousand leaderless groups whose reasons did not change
    /// allocates nothing. `None`: the group is led (or unknown).
    fn same_reason_as(&self, base: &NoLeader, group: &GroupName, old: &NoLeader) -> Option<bool> {
        let g = self.groups.get(group)?;
        if g.leader.is_some() || self.elected_leads(group) {
            return None;
        }
        let ranking = self.ranking(group);
        let favourite = ranking.first();
        Some(
            old.term == g.term
                && old.candidates == ranking.len()
                && old.favourite.as_ref() == favourite
                && old.favourite_is_local == favourite.is_some_and(|f| f.node == self.cfg.node)
                && old.same_cluster_view(base),
        )
    }

    /// What every group's [`NoLeader`] shares at `now`: the voters and their states, the quorum,
    /// this node's abstention, standing aside, shutting down (group, term and candidates left
    /// empty).
    fn cluster_view(&self, now: Instant) -> NoLeader {
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
        let abstaining_ms = (self.is_voter(me) && now < self.abstain_until)
            .then(|| (self.abstain_until - now).as_millis() as u64);
        let standing_aside = if self.standing_aside {
            self.conflicting_config().map(other_settings)
        } else {
            None
        };
        NoLeader {
            group: GroupName::new(""),
            term: 0,
            needed: if voters.is_empty() {
                0
            } else {
                self.majority()
            },
            voters,
            reachable,
            candidates: 0,
            favourite_is_local: false,
            favourite: None,
            abstaining_ms,
            standing_aside,
            shutting_down: self.shutting_down,
        }
    }

    /// Every group's [`NoLeader`], for `status`.
    pub(super) fn no_leader_all(&self, now: Instant) -> Vec<NoLeader> {
        let base = self.cluster_view(now);
        self.groups
            .keys()
            .filter_map(|name| self.why_no_leader_in(&base, name))
            .collect()
    }

    /// Logs why a group has no leader once it has had none for a failure timeout (a normal
    /// election takes far less), and again only when the reason changes; and, once, voters
    /// that no node answered for within 2 × failure timeout.
    ///
    /// Only the groups `changed` since the last call can have gained or lost a leader; the
    /// leaderless ones are diagnosed together, at most once a heartbeat, and the groups whose
    /// reason changed in one pass for the same reason (a peer went down) make one line
    /// ([`Event::NoLeaders`]), not one per group.
    pub(super) fn diagnose(&mut self, now: Instant, changed: &BTreeSet<GroupName>) {
        let ft = self.cfg.failure_timeout;
        if !self.diag.unseen_checked {
            let at = self.diag.started + ft * 2;
            if now >= at {
                self.diag.unseen_checked = true;
                self.warn_unseen_voters(ft * 2);
            } else {
                self.want(Timer::Diagnose, at);
            }
        }
        if self.shutting_down {
            return;
        }
        for name in changed {
            if self.groups.get(name).is_some_and(|g| g.leader.is_none())
                && !self.elected_leads(name)
            {
                let since = self
                    .diag
                    .leaderless
                    .entry(name.clone())
                    .or_insert((now, None))
                    .0;
                self.diag.earliest = Some(self.diag.earliest.map_or(since, |e| e.min(since)));
            } else {
                self.diag.leaderless.remove(name);
            }
        }
        // A restarted node's abstention delays every election it votes in: count from its
        // end.
        let due = |since: Instant| since.max(self.abstain_until) + ft;
        if self.diag.leaderless.is_empty() {
            self.diag.earliest = None;
        }
        let Some(first) = self.diag.earliest.map(due) else {
            return;
        };
        let at = first.max(self.diag.next_pass);
        if now < at {
            self.want(Timer::Diagnose, at);
            return;
        }
        self.diag.next_pass = now + self.cfg.heartbeat;
        self.diag.earliest = self.diag.leaderless.values().map(|(s, _)| *s).min();
        let names: Vec<GroupName> = self
            .diag
            .leaderless
            .iter()
            .filter(|(_, (since, _))| now >= due(*since))
            .map(|(n, _)| n.clone())
            .collect();
        let mut news: Vec<NoLeader> = Vec::new();
        let base = self.cluster_view(now);
        for name in names {
            let old = self
                .diag
                .leaderless
                .get(&name)
                .and_then(|(_, l)| l.as_ref());
            let same = match old {
                Some(old) => self.same_reason_as(&base, &name, old),
                None => self.groups.get(&name).map(|_| false),
            };
            let why = match same {
                Some(true) => continue,
                Some(false) => self.why_no_leader_in(&base, &name),
                None => None,
            };
            let Some(why) = why else {
                // Led meanwhile (by an elector, which the engine's changes do not show).
                self.diag.leaderless.remove(&name);
                continue;
            };
            #[cfg(debug_assertions)]
            if let Some(old) = old {
                debug_assert!(!old.same_reason(&why), "same_reason_as disagrees on {name}");
            }
            if let Some(entry) = self.diag.leaderless.get_mut(&name) {
                entry.1 = Some(why.clone());
                news.push(why);
            }
        }
        self.want(Timer::Diagnose, self.diag.next_pass);
        self.report_no_leader(news);
    }

    /// One event per distinct reason among `news` (in name order of their first group).
    fn report_no_leader(&mut self, news: Vec<NoLeader>) {
        let mut reasons: Vec<(NoLeader, usize)> = Vec::new();
        for why in news {
            match reasons
                .iter_mut()
                .find(|(r, _)| r.same_reason_in_any_group(&why))
            {
                Some((_, more)) => *more += 1,
                None => reasons.push((why, 0)),
            }
        }
        for (why, more) in reasons {
            self.emit(if more == 0 {
                Event::NoLeader(why)
            } else {
                Event::NoLeaders { why, more }
            });
        }
    }

    /// A warning listing the voters no node has answered for after `after`.
    fn warn_unseen_voters(&mut self, after: Duration) {
        let Quorum::Majority(voters) = &self.cfg.quorum else {
            return;
        };
        let me = &self.cfg.node;
        let unseen: Vec<NodeId> = voters
            .iter()
            .filter(|v| *v != me && self.peers.get(v).is_none())
            .cloned()
            .collect();
        if unseen.is_empty() {
            return;
        }
        let event = Event::UnseenVoters {
            unseen,
            after,
            needed: self.majority(),
            total: voters.len(),
        };
        self.emit(event);
    }
}
