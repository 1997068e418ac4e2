//! The candidate side of an election: when a member campaigns (one step function per role),
//! the pre-vote and vote rounds, counting the answers, and winning or losing.
//!
//! In quorum mode a campaign first asks for pre-votes in `term + 1` (no voter changes state),
//! and only with a majority of them asks for the votes; a majority of votes makes it leader,
//! with a lease counted from when the round's requests went out. With `quorum = "none"` a
//! member declares itself leader. A successor named in a handoff skips the pre-vote.

use super::quorum::{Tally, tally};
use super::*;

/// Rounds in a row that ran out of time double the extra wait before the next one at most
/// this many times minus one (`Group::timeouts`): up to 4 election timeouts (1 s at the
/// defaults).
pub(super) const MAX_TIMEOUT_DOUBLINGS: u8 = 3;

/// Each this many groups leaderless at once add one `backoff` to the wait per rank
/// (`Engine::rank_backoff`).
pub(super) const LEADERLESS_PER_BACKOFF: usize = 100;

impl Engine {
    /// Steps one group by the role this node plays in it.
    pub(super) fn step_group(&mut self, now: Instant, name: &GroupName) {
        let Some(g) = self.groups.get(name) else {
            return;
        };
        match g.role {
            Role::Leader { lease_until, term } => {
                // A claim the node's lease covers wakes with it (`expire_lease`).
                let own = (!self.lease.covers(name, term, lease_until)).then_some(lease_until);
                self.step_leader(now, name, own, g.preempt_check_at);
            }
            Role::Candidate { deadline, .. } => {
                // A candidate may still hold a leader's claim, which lapses as any view does.
                if let Some(at) = g.leader.as_ref().and_then(|l| self.view_wake(name, l)) {
                    self.want(Timer::LeaderView, at);
                }
                self.want(Timer::ElectionDeadline, deadline);
            }
            Role::Follower => self.step_follower(now, name),
        }
    }

    /// A leader wakes when its own lease would end (`lease_until`: none while the node's lease
    /// covers it), and with `preempt` re-ranks every heartbeat once it has served a failure
    /// timeout (see `maybe_preempt`).
    fn step_leader(&mut self, now: Instant, name: &GroupName, lease: Option<Instant>, at: Instant) {
        if let Some(end) = lease
            && self.quorum_mode()
        {
            self.want(Timer::Lease, end);
        }
        if self.spec(name).preempt {
            if now >= at {
                self.maybe_preempt(now, name);
            } else {
                self.want(Timer::Preempt, at);
            }
        }
    }

    /// A follower waits while it sees a leader (until that leader's claim lapses). Without one,
    /// a member of the group that neither shuts down nor stands aside campaigns: at once when
    /// the last leader named it successor; otherwise when its rank `r` has waited
    /// `r × backoff` since the group became leaderless (and no earlier than a failed
    /// campaign's retry time).
    fn step_follower(&mut self, now: Instant, name: &GroupName) {
        let Some(g) = self.groups.get(name) else {
            return;
        };
        if let Some(l) = &g.leader {
            if let Some(at) = self.view_wake(name, l) {
                self.want(Timer::LeaderView, at);
            }
            return;
        }
        if self.shutting_down
            || self.standing_aside
            || !self.local.contains_key(name)
            || self.locally_unhealthy(name)
        {
            return;
        }
        if let Some(h) = g.handoff_to_me.clone() {
            self.touch(name);
            if let Some(g) = self.groups.get_mut(name) {
                g.handoff_to_me = None;
            }
            self.campaign(now, name, Some(h));
            return;
        }
        let since = g.leaderless_since.unwrap_or(now);
        let retry_at = g.next_campaign_at;
        let wait = g.successor_wait;
        let ranking = self.ranking(name);
        let Some(me) = self.local.get(name).map(|m| m.id.clone()) else {
            return;
        };
        // Not a live candidate in this node's own view (an elector's groups, whose candidates
        // the engine does not hold): it does not campaign.
        let Some(pos) = ranking.iter().position(|m| *m == me) else {
            return;
        };
        // No round that cannot be won: while fewer than a majority of the voters are alive in
        // this node's view, none could grant it (a node that starts before its peers, one cut
        // off). A peer coming up changes every group's candidates and steps this one again.
        if !self.majority_alive() {
            return;
        }
        // Rank `r` waits `r × backoff` from when it took that place: a better candidate that
        // appeared since the group became leaderless (a cold start: the peers come up one by
        // one) restarts the wait, instead of every node finding its wait long over and
        // campaigning at once.
        let held_since = match g.rank_seen {
            Some((p, at)) if p == pos => at,
            _ => now,
        };
        let start = wait.map_or(since, |w| w.max(since)).max(held_since);
        let ready = start + self.rank_backoff() * pos as u32;
        let ready = retry_at.map_or(ready, |r| r.max(ready));
        if let Some(g) = self.groups.get_mut(name) {
            g.rank_seen = Some((pos, held_since));
            if g.leaderless_since.is_none() {
                g.leaderless_since = Some(since);
                self.touch(name);
            }
        }
        if now >= ready {
            self.campaign(now, name, None);
        } else {
            self.want(Timer::Campaign, ready);
        }
    }

    /// The wait per rank before a campaign (or its retry): `backoff`, plus one `backoff` for
    /// each [`LEADERLESS_PER_BACKOFF`] groups this node sees leaderless (counted once per
    /// input). *Why:* the favourite's round for a thousand groups failing over at once takes
    /// far longer than one backoff (each voter answers a thousand requests, the favourite
    /// counts eight thousand answers), and every rank whose wait ended before it was done
    /// campaigned too and split the votes: at 9 x 1 000 all eight survivors asked for every
    /// group. The voters keep the plain backoff (they only grant earlier, never later).
    pub(super) fn rank_backoff(&self) -> Duration {
        let input = self.ranks.input;
        if let Some((at, d)) = self.rank_backoff.get()
            && at == input
        {
            return d;
        }
        let leaderless = self.groups.values().filter(|g| g.leader.is_none()).count();
        let steps = u32::try_from(1 + leaderless / LEADERLESS_PER_BACKOFF).unwrap_or(u32::MAX);
        let d = self.cfg.backoff.saturating_mul(steps);
        self.rank_backoff.set(Some((input, d)));
        d
    }

    /// The term a new campaign (or declaration) in `name` goes for: above every term known.
    /// `None`, logged once, when that term cannot grow any more.
    pub(super) fn campaign_term(&mut self, now: Instant, name: &GroupName) -> Option<Term> {
        let quorum = self.quorum_mode();
        let g = self.group_mut(name, now);
        let highest = g.term.max(g.max_seen).max(if quorum {
            g.vote.as_ref().map_or(0, |v| v.0)
        } else {
            0
        });
        let next = next_term(highest);
        if next.is_none() && self.term_exhausted.insert(name.clone()) {
            self.emit(Event::TermExhausted {
                group: name.clone(),
                term: highest,
            });
        }
        next
    }

    /// Starts a campaign: a declaration without a quorum, the vote round at once with a
    /// handoff, otherwise a pre-vote round in a term above every term known.
    pub(super) fn campaign(&mut self, now: Instant, name: &GroupName, handoff: Option<Handoff>) {
        if !self.quorum_mode() {
            // Availability mode: declare.
            let Some(term) = self.campaign_term(now, name) else {
                return;
            };
            let g = self.group_mut(name, now);
            g.max_seen = term;
            g.role = Role::Leader {
                term,
                lease_until: now,
            };
            self.become_leader(now, name);
            return;
        }
        if handoff.is_some() {
            self.start_vote_round(now, name, handoff);
            return;
        }
        let deadline = now + self.election_timeout();
        let Some(term) = self.campaign_term(now, name) else {
            return;
        };
        let g = self.group_mut(name, now);
        g.role = Role::Candidate {
            term,
            round: Round::Pre,
            grants: BTreeSet::new(),
            denials: BTreeSet::new(),
            not_before: Vec::new(),
            started: now,
            deadline,
        };
        self.solicit(now, name, term, Round::Pre, None);
    }

    /// Starts the vote round: in the pre-vote's term after a won pre-vote, or — for a successor
    /// named in a handoff, which skips the pre-vote — in a new term above every term known.
    pub(super) fn start_vote_round(
        &mut self,
        now: Instant,
        name: &GroupName,
        handoff: Option<Handoff>,
    ) {
        let deadline = now + self.election_timeout();
        let pre_term = match self.group_mut(name, now).role {
            Role::Candidate {
                term,
                round: Round::Pre,
                ..
            } if handoff.is_none() => Some(term),
            _ => None,
        };
        let Some(term) = pre_term.or_else(|| self.campaign_term(now, name)) else {
            self.group_mut(name, now).role = Role::Follower;
            return;
        };
        let g = self.group_mut(name, now);
        g.max_seen = g.max_seen.max(term);
        g.role = Role::Candidate {
            term,
            round: Round::Real,
            grants: BTreeSet::new(),
            denials: BTreeSet::new(),
            not_before: Vec::new(),
            started: now,
            deadline,
        };
        self.solicit(now, name, term, Round::Real, handoff);
    }

    /// Asks every voter not proven dead (and answers for itself, if a voter) in a round. A
    /// round that cannot reach a majority of live voters is abandoned at once.
    pub(super) fn solicit(
        &mut self,
        now: Instant,
        name: &GroupName,
        term: Term,
        round: Round,
        handoff: Option<Handoff>,
    ) {
        let Some(me) = self.local.get(name).map(|m| m.id.clone()) else {
            self.group_mut(name, now).role = Role::Follower;
            return;
        };
        let dead = self.peers.proofs();
        let req = VoteRequest {
            group: name.clone(),
            term,
            candidate: me.clone(),
            handoff: handoff.clone(),
            pre: round.is_pre(),
            dead,
        };
        let voters: Vec<NodeId> = match &self.cfg.quorum {
            Quorum::Majority(v) => v.iter().cloned().collect(),
            Quorum::None => vec![],
        };
        let self_id = self.cfg.node.clone();
        for v in &voters {
            if *v == self_id {
                continue;
            }
            if self.peers.get(v).is_some_and(|p| !p.is_dead()) {
                self.send(v, Message::VoteRequest(req.clone()));
            }
        }
        self.emit(Event::Soliciting {
            group: name.clone(),
            round,
            term,
        });
        if voters.contains(&self_id) {
            let verdict = self.grantable(now, &req);
            let retry_in_ms = self.retry_hint(now, &req, verdict);
            let granted = verdict.is_ok();
            if granted && round == Round::Real {
                let g = self.group_mut(name, now);
                g.vote = Some((term, me));
                self.persist();
            }
            let response = VoteResponse {
                group: name.clone(),
                term,
                pre: round.is_pre(),
                granted,
                known_term: 0,
                retry_in_ms,
            };
            self.on_vote_response(now, &self_id.clone(), response);
        } else {
            // Nothing to count yet; check whether the round is already lost.
            let majority = self.majority();
            let alive = voters.iter().filter(|v| self.node_alive(v)).count();
            if tally(0, alive, majority) == Tally::Lost {
                self.abandon_campaign(now, name);
            }
        }
    }

    /// A voter's answer to this node's current round (others are stale and ignored): counted
    /// once per voter. A won pre-vote starts the vote; a won vote makes this node leader; a
    /// round that can no longer win (too few live voters left undecided) is abandoned.
    pub(super) fn on_vote_response(&mut self, now: Instant, from: &NodeId, resp: VoteResponse) {
        if !self.is_voter(from) {
            return;
        }
        if !self.quorum_mode() {
            return;
        }
        let majority = self.majority();
        // A peer's estimate is bounded: a wrong one may delay a retry, never stall it.
        let cap = self.cfg.failure_timeout * 2;
        // Marked only when the answer changes something: stale answers to a thousand groups'
        // rounds step none of them.
        let Some(g) = self.groups.get_mut(&resp.group) else {
            return;
        };
        if resp.known_term > g.max_seen {
            g.max_seen = resp.known_term;
            self.touch(&resp.group);
        }
        let Some(g) = self.groups.get_mut(&resp.group) else {
            return;
        };
        let Role::Candidate {
            term,
            round,
            ref mut grants,
            ref mut denials,
            ref mut not_before,
            ..
        } = g.role
        else {
            return;
        };
        if resp.term != term || Round::of(resp.pre) != round {
            return;
        }
        if resp.granted {
            grants.insert(from.clone());
        } else if denials.insert(from.clone()) && resp.retry_in_ms > 0 {
            not_before.push(now + Duration::from_millis(resp.retry_in_ms.into()).min(cap));
        }
        // Counted in place: a thousand groups' answers copy no voter set.
        let granted = grants.len();
        self.touch(&resp.group);
        let undecided = match (
            &self.cfg.quorum,
            self.groups.get(&resp.group).map(|g| &g.role),
        ) {
            (
                Quorum::Majority(voters),
                Some(Role::Candidate {
                    grants, denials, ..
                }),
            ) => voters
                .iter()
                .filter(|v| !grants.contains(*v) && !denials.contains(*v) && self.node_alive(v))
                .count(),
            _ => 0,
        };
        match (tally(granted, undecided, majority), round) {
            (Tally::Won, Round::Pre) => self.start_vote_round(now, &resp.group, None),
            (Tally::Won, Round::Real) => self.become_leader(now, &resp.group),
            (Tally::Lost, _) => {
                // Answers decided it: the voters are reachable, the timeouts' doubling ends.
                if let Some(g) = self.groups.get_mut(&resp.group) {
                    g.timeouts = 0;
                }
                let at = self.majority_may_grant_at(&resp.group, granted + undecided);
                self.abandon_campaign(now, &resp.group);
                if let Some(at) = at
                    && let Some(g) = self.groups.get_mut(&resp.group)
                    && let Some(retry) = &mut g.next_campaign_at
                {
                    // The usual spacing and jitter, counted from when a majority may grant.
                    let spacing = retry.saturating_duration_since(now);
                    *retry = (*retry).max(at + spacing);
                }
            }
            (Tally::Pending, _) => {}
        }
    }

    /// When a majority of voters may grant `name`'s next round, by the estimates its lost round
    /// was given: the voters that granted or did not answer (`open`) and the denials without an
    /// estimate may grant at once; the others at their estimates. `None` when a majority may at
    /// once, or when even every estimate would not make one (the usual retry then).
    fn majority_may_grant_at(&self, name: &GroupName, open: usize) -> Option<Instant> {
        let Some(Role::Candidate {
            denials,
            not_before,
            ..
        }) = self.groups.get(name).map(|g| &g.role)
        else {
            return None;
        };
        let at_once = open + denials.len().saturating_sub(not_before.len());
        let needed = self.majority().checked_sub(at_once).filter(|n| *n > 0)?;
        let mut later = not_before.clone();
        later.sort_unstable();
        later.get(needed - 1).copied()
    }

    /// Gives up the current round. The retry keeps the ranking's order: rank `r` retries after
    /// `r × backoff` plus a fifth of a backoff and jitter of up to half a backoff (so ties do
    /// not collide). The jitter is drawn once per input, not per group: ties are between
    /// *nodes*, and the groups one node gives up together (one batch of denials, one deadline)
    /// then retry together, in one batch (`outbox`), instead of drifting apart into one message
    /// each.
    pub(super) fn abandon_campaign(&mut self, now: Instant, name: &GroupName) {
        let pos = {
            let ranking = self.ranking(name);
            let me = self.local.get(name).map(|m| m.id.clone());
            me.and_then(|me| ranking.iter().position(|m| *m == me))
                .unwrap_or(0)
        };
        let jitter = match self.retry_jitter {
            Some((at, j)) if at == now => j,
            _ => {
                let j = self.jitter((self.cfg.backoff / 2).max(Duration::from_millis(1)));
                self.retry_jitter = Some((now, j));
                j
            }
        };
        let mut delay = self.rank_backoff() * pos as u32 + self.cfg.backoff / 5 + jitter;
        let timeouts = self.groups.get(name).map_or(0, |g| g.timeouts);
        if timeouts > 0 {
            // Rounds that ran out of time with answers missing: the voters (or the way to
            // them) are slow or overloaded, and asking again at once only adds to their queue
            // (a cold start of 9 x 1 000 did nothing else). Each such round in a row doubles
            // an election timeout of extra wait, up to `2^MAX_TIMEOUT_DOUBLINGS` of them.
            let doublings = u32::from(timeouts.min(MAX_TIMEOUT_DOUBLINGS) - 1);
            delay += self.election_timeout() * (1 << doublings);
        }
        let g = self.group_mut(name, now);
        if matches!(g.role, Role::Candidate { .. }) {
            g.role = Role::Follower;
            g.next_campaign_at = Some(now + delay);
            self.emit(Event::CampaignLost {
                group: name.clone(),
                retry_in: delay,
            });
        }
    }

    /// This node leads `name`: its lease counts from when the won round's requests went out
    /// (a declaration in availability mode counts from now). Made durable, published to the
    /// application first, then heartbeated to everyone at once.
    pub(super) fn become_leader(&mut self, now: Instant, name: &GroupName) {
        let lease = self.cfg.lease;
        let Some(me) = self.local.get(name).map(|m| m.id.clone()) else {
            return;
        };
        let ft = self.cfg.failure_timeout;
        // It leads now: the rankings see a new leader.
        self.leaders_changed();
        let g = self.group_mut(name, now);
        let (term, base) = match g.role {
            Role::Candidate { term, started, .. } => (term, started),
            Role::Leader { term, .. } => (term, now),
            Role::Follower => return,
        };
        g.role = Role::Leader {
            term,
            lease_until: base + lease,
        };
        g.term = term;
        g.max_seen = g.max_seen.max(term);
        g.leader = Some(LeaderView {
            member: me,
            term,
            until: now,
        });
        g.leaderless_since = None;
        g.rank_seen = None;
        g.timeouts = 0;
        g.next_campaign_at = None;
        g.successor_wait = None;
        g.promised = None;
        g.resigned = None;
        // A new leader serves at least one failure timeout before it may preempt itself:
        // when the favourite cannot win (it is cut off from the voters), handoffs to it would
        // otherwise churn terms every few milliseconds.
        g.preempt_check_at = now + ft;
        self.persist_later();
        self.emit(Event::Leading {
            group: name.clone(),
            term,
        });
        // The application learns first (its watch), then everyone else, at once rather than at
        // the next period: the heartbeat goes out at the end of this input (`step`), once for
        // every group won in it.
        self.publish_leadership(now, name);
        self.next_heartbeat = now;
    }
}
