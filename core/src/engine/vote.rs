//! The voter side of an election: whether to grant a (pre-)vote, by rules checked in order —
//! the first that fails names the [`Denial`] — and what a granted vote promises.

use super::*;
use std::fmt;

/// Why a voter denied a (pre-)vote: one variant per rule the voter side checks, in the order
/// they are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// This node is no voter.
    NotAVoter,
    /// This node restarted less than a failure timeout ago: promises it made before the
    /// restart are not on disk, so it votes for nobody yet.
    Abstaining,
    /// This node is shutting down.
    ShuttingDown,
    /// A conflicting configuration could elect a leader of its own.
    StandingAside,
    /// The term is not above every leadership known (nor a repeat of this voter's vote).
    StaleTerm,
    /// This voter already voted in that term (or a later one) for another candidate.
    AlreadyVoted,
    /// This node leads the group, and the candidate brings no handoff from it.
    ThisNodeLeads,
    /// A live leader holds a lease (resting, perhaps, on this voter's acks).
    LiveLeader,
    /// This voter promised its vote to another candidate, whose lease may still run.
    Promised,
    /// The candidate is no live member of the group in this voter's view.
    NotInView,
    /// A better-ranked candidate may still campaign: rank `r` waits `r × backoff`.
    BetterRanked,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Denial::NotAVoter => "not a voter",
            Denial::Abstaining => "abstaining after a restart",
            Denial::ShuttingDown => "shutting down",
            Denial::StandingAside => "standing aside: a conflicting configuration could elect",
            Denial::StaleTerm => "term not above the known term",
            Denial::AlreadyVoted => "already voted in that term",
            Denial::ThisNodeLeads => "this node leads",
            Denial::LiveLeader => "a live leader holds a lease",
            Denial::Promised => "vote promised to another candidate",
            Denial::NotInView => "candidate not in this view",
            Denial::BetterRanked => "a better-ranked candidate may still campaign",
        })
    }
}

impl Engine {
    /// A candidate asks for a (pre-)vote. The proofs of death it attaches that this node
    /// trusts are applied first; then the request is judged ([`Engine::grantable`]). A granted
    /// vote (not a pre-vote) is recorded, promises the candidate `failure_timeout`, ends this
    /// node's own campaign, and is durable before the answer leaves.
    pub(super) fn on_vote_request(&mut self, now: Instant, from: &NodeId, req: VoteRequest) {
        for (node, inc, proof) in &req.dead {
            if *node != self.cfg.node && self.peers.trusts(*proof) {
                let change = self.peers.dead(now, node, *inc, *proof);
                if change.is_some() {
                    self.emit(Event::ProofApplied {
                        from: from.clone(),
                        node: node.clone(),
                        incarnation: *inc,
                        proof: *proof,
                    });
                }
                self.apply_peer_changes(now, change.into_iter().collect());
            }
        }
        let verdict = if self.is_voter(&self.cfg.node) {
            self.grantable(now, &req)
        } else {
            Err(Denial::NotAVoter)
        };
        let (group, candidate, term) = (req.group.clone(), req.candidate.clone(), req.term);
        let round = Round::of(req.pre);
        self.emit(match verdict {
            Ok(()) => Event::VoteGranted {
                group,
                round,
                candidate,
                term,
            },
            Err(denial) => Event::VoteDenied {
                group,
                round,
                candidate,
                term,
                denial,
            },
        });
        let retry_in_ms = self.retry_hint(now, &req, verdict);
        let granted = verdict.is_ok();
        if granted && !req.pre {
            let ft = self.cfg.failure_timeout;
            let g = self.group_mut(&req.group, now);
            g.vote = Some((req.term, req.candidate.clone()));
            g.max_seen = g.max_seen.max(req.term);
            g.promised = Some((req.candidate.clone(), now + ft));
            if matches!(g.role, Role::Candidate { .. }) {
                g.role = Role::Follower;
            }
            self.persist();
        }
        // Read, not marked: a denial changes nothing (`grantable` marks what it changed).
        let known_term = self
            .groups
            .get(&req.group)
            .map_or(0, |g| g.term.max(g.vote.as_ref().map_or(0, |v| v.0)));
        self.send(
            from,
            Message::VoteResponse(VoteResponse {
                group: req.group,
                term: req.term,
                pre: req.pre,
                granted,
                known_term,
                retry_in_ms,
            }),
        );
    }

    /// A denial's estimate of when this voter could grant the candidate, in milliseconds from
    /// now (`VoteResponse::retry_in_ms`; 0: none). Given for the denials that end by
    /// themselves: abstaining after a restart (then the candidate's rank still waits its
    /// backoffs, as `Ballot::judge` counts them) and a promise to another candidate. A lower
    /// bound only: the candidate may retry then and be denied for another reason. Not for
    /// `BetterRanked`: two nodes that each rank themselves first (a `balanced` policy counting
    /// leaderships a moment apart) would then retry their contested groups in lockstep, and
    /// the first to retry won them all (the spread test found it).
    pub(super) fn retry_hint(
        &self,
        now: Instant,
        req: &VoteRequest,
        verdict: Result<(), Denial>,
    ) -> u32 {
        let Err(denial) = verdict else {
            return 0;
        };
        let g = self.groups.get(&req.group);
        let rank = || {
            self.ranking(&req.group)
                .iter()
                .position(|m| *m == req.candidate)
        };
        let backoff = self.cfg.backoff;
        let at = match denial {
            Denial::Abstaining => Some(self.abstain_until + backoff * rank().unwrap_or(0) as u32),
            Denial::Promised => g.and_then(|g| g.promised.as_ref()).map(|(_, until)| *until),
            _ => None,
        };
        at.map_or(0, |at| {
            let ms = at.saturating_duration_since(now).as_micros().div_ceil(1000);
            u32::try_from(ms).unwrap_or(u32::MAX)
        })
    }

    /// Whether this voter may grant `req`, by these rules in order (the first that fails is
    /// the [`Denial`]):
    ///
    /// 1. not while abstaining after a restart, shutting down or standing aside;
    /// 2. only a term above every known leadership, or a repeat of this voter's own vote;
    /// 3. one vote per term;
    /// 4. not against a leadership that may still act — this node's own, a live leader's, or a
    ///    candidate's this voter promised — unless the request carries that leader's handoff;
    /// 5. with a handoff, at once; otherwise only to a candidate this voter's ranking allows:
    ///    the favourite at once, rank `r` once the group has been leaderless `r × backoff`
    ///    (time spent abstaining does not count).
    ///
    /// Together these keep two leases from overlapping (see the module docs) and let the
    /// ranking's favourite win without a race.
    pub(super) fn grantable(&mut self, now: Instant, req: &VoteRequest) -> Result<(), Denial> {
        if now < self.abstain_until {
            return Err(Denial::Abstaining);
        }
        if self.shutting_down {
            return Err(Denial::ShuttingDown);
        }
        if self.standing_aside {
            return Err(Denial::StandingAside);
        }
        if !self.groups.contains_key(&req.group) {
            self.group_mut(&req.group, now);
        }
        let ranking = self.ranking(&req.group);
        let this_node_acts = self.acting_in(&req.group, now).is_some();
        let (abstain_until, backoff) = (self.abstain_until, self.cfg.backoff);
        let Some(group) = self.groups.get_mut(&req.group) else {
            return Err(Denial::NotInView);
        };
        // Judging only notes since when the group is leaderless: marked when it did, so that a
        // thousand groups' denied requests do not step a thousand groups.
        let before = group.leaderless_since;
        let ballot = Ballot {
            now,
            abstain_until,
            backoff,
            ranking: ranking.to_vec(),
            this_node_acts,
            group,
        };
        let verdict = ballot.judge(req);
        if self.groups.get(&req.group).map(|g| g.leaderless_since) != Some(before) {
            self.touch(&req.group);
        }
        verdict
    }
}

/// A short-lived view of just what the voter side needs to judge one request (rules 2–5 of
/// [`Engine::grantable`]): the group's state, this voter's ranking of the live candidates and
/// its timings. Judging may only note since when the group is leaderless.
pub(crate) struct Ballot<'a> {
    pub now: Instant,
    /// This voter abstains until then (a restart); time before it does not count as waited.
    pub abstain_until: Instant,
    pub backoff: Duration,
    /// This voter's ranking of the group's live candidates, best first.
    pub ranking: Vec<MemberId>,
    /// Whether this node leads the group and may act.
    pub this_node_acts: bool,
    pub group: &'a mut Group,
}

impl Ballot<'_> {
    /// Rules 2–5 of [`Engine::grantable`], in order.
    pub(super) fn judge(self, req: &VoteRequest) -> Result<(), Denial> {
        let now = self.now;
        let g = self.group;
        // Only a term above every known leadership — or exactly the term this voter already
        // voted in for this same candidate (a repeated request: the same answer again).
        let repeat = g.vote.as_ref() == Some(&(req.term, req.candidate.clone()));
        if req.term < g.term || (req.term == g.term && !repeat) {
            return Err(Denial::StaleTerm);
        }
        if let Some((t, m)) = &g.vote
            && (req.term < *t || (req.term == *t && *m != req.candidate))
        {
            return Err(Denial::AlreadyVoted);
        }
        let handoff_ok = req.handoff.as_ref().is_some_and(|h| {
            h.from != req.candidate
                && (g
                        .leader
                        .as_ref()
                        .is_some_and(|l| l.member == h.from && l.term == h.term)
                        // A remembered resignation counts only while no newer leadership is known:
                        // a late StepDown of an older term of the *same* member must not unlock a
                        // vote against its current leadership, whose lease rests on this node's
                        // acks (found by baton-sim).
                        || (g.resigned.as_ref() == Some(h) && h.term >= g.term)
                        || (g.leader.is_none() && h.term <= g.term))
        });
        if self.this_node_acts && !handoff_ok {
            return Err(Denial::ThisNodeLeads);
        }
        if let Some(l) = &g.leader
            && l.member != req.candidate
            && !handoff_ok
        {
            return Err(Denial::LiveLeader);
        }
        if let Some((m, until)) = &g.promised
            && *m != req.candidate
            && now < *until
        {
            return Err(Denial::Promised);
        }
        if handoff_ok {
            return Ok(());
        }
        let Some(pos) = self.ranking.iter().position(|m| *m == req.candidate) else {
            return Err(Denial::NotInView);
        };
        let since = *g.leaderless_since.get_or_insert(now);
        // Time spent abstaining does not count: the ranking's order must hold after a restart.
        let waited = now.saturating_duration_since(since.max(self.abstain_until));
        let allowed = if self.backoff.is_zero() {
            usize::MAX
        } else {
            (waited.as_micros() / self.backoff.as_micros()) as usize
        };
        if pos <= allowed {
            Ok(())
        } else {
            Err(Denial::BetterRanked)
        }
    }
}

#[cfg(test)]
#[path = "vote_tests.rs"]
mod tests;
