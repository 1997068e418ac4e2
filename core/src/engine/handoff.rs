//! Handoffs: a leader that resigns stops acting first, then tells everyone (`StepDown`),
//! naming its successor when it can; the successor campaigns at once and voters grant at once,
//! since the leader resigned. A group with `preempt` hands off to a better-ranked member.

use super::*;
use std::fmt;

/// How a leader resigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resign {
    /// On purpose (leave, shutdown, unhealthy): names the next in its ranking as successor;
    /// the others are told why.
    HandOff(Resignation),
    /// Its lease is gone or in doubt (expired, voters unreachable, standing aside): names no
    /// successor — whoever the voters would elect campaigns in its own time.
    LeaseLost,
}

/// Why a leader stopped leading a group (see [`Event::SteppingDown`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepDownReason {
    /// A claim of the group with a term at least as high arrived.
    HigherLeader {
        /// The claim's term.
        term: Term,
    },
    /// A peer refused this node's claim: it knows a higher term.
    PeerKnowsTerm {
        /// The peer.
        peer: NodeId,
        /// The term it knows.
        term: Term,
    },
    /// So many voters' connections were reset or refused that the rest are no majority.
    VotersUnreachable {
        /// Voters still reachable (this node included).
        reachable: usize,
        /// All voters.
        total: usize,
    },
    /// A conflicting configuration could elect a leader of its own.
    StandingAside,
    /// No majority acknowledged a heartbeat within the lease.
    LeaseExpired {
        /// The term led.
        term: Term,
    },
    /// The group preempts, and a better-ranked member appeared.
    Preempted {
        /// The member handed off to.
        by: MemberId,
    },
    /// Asked to (a transfer or a step-down, `Node::transfer`, `Service::step_down`).
    Requested {
        /// The member handed off to.
        to: MemberId,
    },
    /// This node's member became unhealthy (`Service::set_healthy(false)`).
    Unhealthy,
}

impl fmt::Display for StepDownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepDownReason::HigherLeader { term } => {
                write!(f, "stepping down, a leader with term {term} exists")
            }
            StepDownReason::PeerKnowsTerm { peer, term } => {
                write!(f, "stepping down, {peer} knows term {term}")
            }
            StepDownReason::VotersUnreachable { reachable, total } => write!(
                f,
                "stepping down at once: only {reachable} of {total} voters are reachable \
                 (connections reset or refused)"
            ),
            StepDownReason::StandingAside => f.write_str("stepping down: standing aside"),
            StepDownReason::LeaseExpired { term } => {
                write!(
                    f,
                    "lease of term {term} expired without a majority, stepping down"
                )
            }
            StepDownReason::Preempted { by } => write!(f, "preempted by better-ranked {by}"),
            StepDownReason::Requested { to } => write!(f, "handing off to {to} as requested"),
            StepDownReason::Unhealthy => {
                f.write_str("this member is unhealthy, handing off to the next in line")
            }
        }
    }
}

impl Engine {
    /// Stops leading `name`; with [`Resign::HandOff`] names the next in the ranking as its
    /// successor.
    pub(super) fn resign(&mut self, now: Instant, name: &GroupName, how: Resign) {
        let me = self.local.get(name).map(|m| m.id.clone());
        let successor = match how {
            Resign::LeaseLost => None,
            Resign::HandOff(_) => self
                .ranking(name)
                .iter()
                .find(|m| Some(*m) != me.as_ref())
                .cloned(),
        };
        let why = match how {
            Resign::LeaseLost => Resignation::LeaseLost,
            Resign::HandOff(why) => why,
        };
        self.resign_to(now, name, successor, why);
    }

    /// Stops leading `name` and broadcasts the `StepDown` naming `successor`. Stops acting
    /// first (the role, the published leadership), only then tells the others; remembers the
    /// resignation, so this node's voter side may grant the successor at once.
    pub(super) fn resign_to(
        &mut self,
        now: Instant,
        name: &GroupName,
        successor: Option<MemberId>,
        why: Resignation,
    ) {
        self.touch(name);
        let Some(g) = self.groups.get_mut(name) else {
            return;
        };
        let Role::Leader { term, .. } = g.role else {
            return;
        };
        let Some(from) = g.leader.as_ref().map(|l| l.member.clone()) else {
            return;
        };
        // Stop acting first; only then tell the others.
        g.role = Role::Follower;
        g.leader = None;
        self.ranks.lead_epoch += 1;
        g.leaderless_since = Some(now);
        g.resigned = Some(Handoff {
            from: from.clone(),
            term,
        });
        g.next_campaign_at = Some(now + self.cfg.backoff);
        if successor.is_some() {
            // Like every other member, the old leader gives the successor one failure timeout
            // to take over before its own ranking's schedule starts (it is often still the
            // favourite: a transfer or a step-down names someone else on purpose).
            g.successor_wait = Some(now + self.cfg.failure_timeout);
        }
        self.publish_leadership(now, name);
        let sd = StepDown {
            group: name.clone(),
            term,
            from,
            successor,
            why,
        };
        self.broadcast(Message::StepDown(sd));
    }

    /// A leader resigned. Taken only when it is the leadership this node knows (or none is
    /// known) and not below the known term: the group is leaderless, the resignation is
    /// remembered (it unlocks votes for the successor), and a named successor that is this
    /// node's follower member campaigns at once.
    pub(super) fn on_step_down(&mut self, now: Instant, sd: StepDown) {
        let me = self.local.get(&sd.group).map(|m| m.id.clone());
        let hold = now + self.cfg.failure_timeout;
        // The resigned leadership ends (if it is the one known): the rankings change.
        self.ranks.lead_epoch += 1;
        let g = self.group_mut(&sd.group, now);
        if sd.term < g.term {
            return;
        }
        let matches_leader = g
            .leader
            .as_ref()
            .is_none_or(|l| l.member == sd.from && l.term == sd.term);
        if !matches_leader {
            return;
        }
        let raised = sd.term > g.term;
        g.term = g.term.max(sd.term);
        g.leader = None;
        g.leaderless_since = Some(now);
        let handoff = Handoff {
            from: sd.from,
            term: sd.term,
        };
        g.resigned = Some(handoff.clone());
        self.emit(Event::PeerResigned {
            group: sd.group.clone(),
            from: handoff.from.clone(),
            term: sd.term,
            why: sd.why,
        });
        let g = self.group_mut(&sd.group, now);
        if me.is_some() && sd.successor == me && matches!(g.role, Role::Follower) {
            g.handoff_to_me = Some(handoff);
            g.next_campaign_at = None;
        } else if sd.successor.is_some() {
            // Someone else was named: give it one failure timeout to take over before this
            // member campaigns by its own ranking (whose `r × backoff` schedule then starts).
            // Its ranking may not even hold the successor yet (a link still coming up after a
            // heal); without this wait it would declare itself in availability mode, or churn
            // a pre-vote in quorum mode, in the successor's face. A successor that never shows
            // up costs one failure timeout.
            g.successor_wait = Some(hold);
        }
        if raised {
            // Durable, like every rise of the term (see `on_claim`).
            self.persist_later();
        }
    }

    /// With `preempt`, once a leader has served a failure timeout (then every heartbeat): when
    /// its ranking's favourite is another member, it hands off to it while it still acts.
    /// It decides only on a ranking made from every group's current leaders
    /// (`current_ranking`); else it looks again a heartbeat later.
    pub(super) fn maybe_preempt(&mut self, now: Instant, name: &GroupName) {
        let ranking = self.current_ranking(name).unwrap_or_default();
        let me = self.local.get(name).map(|m| m.id.clone());
        if let (Some(top), Some(me)) = (ranking.first(), me)
            && *top != me
            && self.is_acting_leader(name, now)
        {
            let top = top.clone();
            self.emit(Event::SteppingDown {
                group: name.clone(),
                reason: StepDownReason::Preempted { by: top.clone() },
            });
            self.resign_to(now, name, Some(top), Resignation::Preempted);
            return;
        }
        let hb = self.cfg.heartbeat;
        self.touch(name);
        if let Some(g) = self.groups.get_mut(name) {
            g.preempt_check_at = now + hb;
        }
        self.want(Timer::Preempt, now + hb);
    }
}
