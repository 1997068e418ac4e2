//! Leases: a leader acts only while a majority of voters acknowledged one of its heartbeats
//! within `lease`; a voter that accepts a claim promises not to vote for another candidate for
//! `failure_timeout` after receiving it. Here: claims accepted or refused, acks counted, leases
//! renewed, and a leader that can no longer reach a majority stepping down.

use super::quorum::reaches;
use super::*;

/// At most this many heartbeats wait for acks (they are also dropped once a lease old).
const MAX_PENDING_HEARTBEATS: usize = 256;

/// A periodic heartbeat sent while this node led some group, waiting for the voters' acks.
#[derive(Clone, Debug)]
pub(crate) struct PendingHeartbeat {
    pub seq: u64,
    pub sent_at: Instant,
    /// Voters that acked: the version of this node's state each holds.
    pub acks: BTreeMap<NodeId, u64>,
    /// The groups whose claims some acking voter refused, in order: those claims are held by
    /// no count of these acks (see `Renewal::excluded`).
    pub refused: Vec<GroupName>,
}

/// A renewal of this node's lease: every claim that appeared in version `covered` or before
/// runs until `until`, except those of the groups in `excluded`.
#[derive(Clone, Debug)]
pub(crate) struct Renewal {
    pub until: Instant,
    pub covered: u64,
    /// Groups whose claims a voter counted here refused (in order; empty in steady state).
    /// An ack refusing one claim still holds every other: one contested group must not cost
    /// the node the lease of every group it leads (with leadership spread, every node leads
    /// ~g/n groups and some are always being contested).
    pub excluded: Vec<GroupName>,
}

impl Renewal {
    /// Whether this renewal holds the claim of `name` that appeared in version `since`.
    fn holds(&self, name: &GroupName, since: u64) -> bool {
        self.covered >= since && self.excluded.binary_search(name).is_err()
    }

    /// Whether this renewal is at least as good as `other` for every claim.
    fn dominates(&self, other: &Renewal) -> bool {
        self.until >= other.until
            && self.covered >= other.covered
            && self
                .excluded
                .iter()
                .all(|g| other.excluded.binary_search(g).is_ok())
    }
}

/// One lease per node, not per group (docs/PROTOCOL.md, "Many groups"): a majority's acks
/// of one heartbeat renew every group whose claim the acking voters hold. A voter holds a
/// claim when the version of this node's state it holds is at least the version the claim
/// appeared in and it did not refuse it, so the renewal is one entry (`Renewal`) — "every
/// claim that appeared in version `covered` or before, but those refused, runs until
/// `until`" — instead of a write per group.
#[derive(Debug, Default)]
pub(crate) struct NodeLease {
    /// Each current claim's term, the state version it appeared in, and `rounds` then
    /// (`refresh_state`).
    pub claim_since: BTreeMap<GroupName, Since>,
    pub pending: Vec<PendingHeartbeat>,
    /// The renewals not yet ended, none at least as good as another for every claim (at most
    /// a few: a newer heartbeat's renewal replaces the older ones in steady state).
    pub renewed: Vec<Renewal>,
    /// Renewals counted: a group's lease renewals are those counted while its claim stood
    /// (`status`, `baton_lease_renewals_total`).
    pub rounds: u64,
}

/// When a claim appeared (see `NodeLease::claim_since`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Since {
    pub term: Term,
    pub version: u64,
    pub rounds: u64,
}

impl NodeLease {
    /// When the lease of `name`, led in `term` with its own lease (the vote round's) ending at
    /// `own`, ends: the later of `own` and every renewal covering its claim.
    pub(super) fn end(&self, name: &GroupName, term: Term, own: Instant) -> Instant {
        match self.claim_since.get(name) {
            Some(since) if since.term == term => self
                .renewed
                .iter()
                .filter(|r| r.holds(name, since.version))
                .map(|r| r.until)
                .fold(own, Instant::max),
            _ => own,
        }
    }

    /// The renewals counted for `name` while its current claim stood.
    pub(super) fn renewals_of(&self, name: &GroupName) -> u64 {
        self.claim_since
            .get(name)
            .map_or(0, |s| self.rounds.saturating_sub(s.rounds))
    }

    /// Whether a renewal covers the claim of `name` in `term` beyond `own`.
    pub(super) fn covers(&self, name: &GroupName, term: Term, own: Instant) -> bool {
        self.end(name, term, own) > own
    }

    /// Records `renewal` unless one already held is at least as good for every claim.
    fn renew(&mut self, renewal: Renewal) {
        if self.renewed.iter().any(|r| r.dominates(&renewal)) {
            return;
        }
        self.renewed.retain(|r| !renewal.dominates(r));
        self.renewed.push(renewal);
        self.rounds += 1;
    }

    /// The end of the earliest renewal still held (the engine wakes then: see `expire_lease`).
    pub(super) fn next_end(&self) -> Option<Instant> {
        self.renewed.iter().map(|r| r.until).min()
    }
}

impl Engine {
    /// `Some(term)` while this node leads `name` and may act: always in availability mode, in
    /// quorum mode only until its lease ends (its own, or a renewal of the node's lease).
    pub(super) fn acting(&self, name: &GroupName, g: &Group, now: Instant) -> Option<Term> {
        match g.role {
            Role::Leader { term, lease_until } => {
                if !self.quorum_mode() || now < self.lease.end(name, term, lease_until) {
                    Some(term)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// `acting` for the group named `group`.
    pub(super) fn acting_in(&self, group: &str, now: Instant) -> Option<Term> {
        let (name, g) = self.groups.get_key_value(group)?;
        self.acting(name, g, now)
    }

    /// Applies a leadership claim; `Some(higher term)` when refused. A claim below the term
    /// this node knows (or, in quorum mode, voted in) is refused: accepting it would let a
    /// leadership go backwards. A second claim of the same term (availability mode only) is
    /// refused unless its member id is lower. An accepted claim makes this node follow, and
    /// its view of the leader — this voter's promise — lasts `failure_timeout`.
    pub(super) fn on_claim(&mut self, now: Instant, claim: Claim) -> Option<Term> {
        let quorum = self.quorum_mode();
        let ft = self.cfg.failure_timeout;
        let g = self.group_mut(&claim.group, now);
        let known = g.term.max(if quorum {
            g.vote.as_ref().map_or(0, |v| v.0)
        } else {
            0
        });
        if claim.term < known {
            return Some(known);
        }

        // Same term, another leader: only possible in availability mode. The lower member id
        // wins — not the better rank: ranks depend on each node's view (the incumbent, other
        // groups' leaders), so two leaders could each rank themselves first and never settle.
        if claim.term == g.term
            && let Some(current) = &g.leader
            && current.member < claim.member
        {
            return Some(g.term);
        }
        let was_leader = matches!(g.role, Role::Leader { .. });
        if was_leader
            && let Role::Leader { term, .. } = g.role
            && term == claim.term
            && g.leader.as_ref().is_some_and(|l| l.member == claim.member)
        {
            return None;
        }
        // The term is durable state (`PersistedGroup::term`): a restarted node must not forget
        // a leadership it learned of, or its term would go backwards (found by baton-sim).
        let raised = claim.term > g.term;
        g.term = claim.term;
        g.max_seen = g.max_seen.max(claim.term);
        g.role = Role::Follower;
        g.handoff_to_me = None;
        g.next_campaign_at = None;
        g.successor_wait = None;
        g.leaderless_since = None;
        g.promised = None;
        g.rank_seen = None;
        g.timeouts = 0;
        let group = claim.group.clone();
        let new_leader = g.leader.as_ref().is_none_or(|l| l.member != claim.member);
        g.leader = Some(LeaderView {
            member: claim.member,
            term: claim.term,
            until: now + ft,
        });
        if new_leader {
            self.leaders_changed();
        }
        if raised {
            self.persist_later();
        }
        if was_leader {
            self.emit(Event::SteppingDown {
                group,
                reason: StepDownReason::HigherLeader { term: claim.term },
            });
        }
        None
    }

    /// A heartbeat's ack. A refused claim makes a leader with a lower term step down (from
    /// anyone: see `on_heartbeat`); a voter's ack renews the lease of every group it did not
    /// refuse, once a majority acked the same heartbeat — to its send time plus `lease`. A
    /// claim refused by any voter counted is left out of that renewal (a voter's ack lists
    /// every claim of the state it holds that it refused, so the others it holds).
    pub(super) fn on_ack(&mut self, now: Instant, from: &NodeId, ack: HeartbeatAck) {
        // A refusal counts from anyone (see `on_heartbeat`); a lease renewal only from voters.
        for (group, higher) in &ack.rejected {
            let g = self.group_mut(group, now);
            g.max_seen = g.max_seen.max(*higher);
            if let Role::Leader { term, .. } = g.role
                && term < *higher
            {
                g.role = Role::Follower;
                g.leader = None;
                g.leaderless_since = Some(now);
                self.leaders_changed();
                self.emit(Event::SteppingDown {
                    group: group.clone(),
                    reason: StepDownReason::PeerKnowsTerm {
                        peer: from.clone(),
                        term: *higher,
                    },
                });
            }
        }
        // The peer holds another version than was sent to it, in answer to a heartbeat sent
        // after it: the state was lost (or coalesced) on the way. Send it again.
        let version = self.version;
        if let Some(p) = self.peers.get_mut(from)
            && ack.seq >= p.sent_seq
            && ack.version != p.sent_version
            && ack.version != version
        {
            p.sent_version = 0;
        }
        if !self.is_voter(from) {
            return;
        }
        // The claims a majority holds: the `need`-th highest version among the acks that
        // refused nothing (this node counts itself when it is a voter).
        let need = self
            .majority()
            .saturating_sub(usize::from(self.is_voter(&self.cfg.node)));
        let Some(p) = self.lease.pending.iter_mut().find(|p| p.seq == ack.seq) else {
            return;
        };
        p.acks.insert(from.clone(), ack.version);
        for (group, _) in &ack.rejected {
            if let Err(i) = p.refused.binary_search(group) {
                p.refused.insert(i, group.clone());
            }
        }
        if need == 0 || p.acks.len() < need {
            return;
        }
        let mut versions: Vec<u64> = p.acks.values().copied().collect();
        versions.sort_unstable_by(|a, b| b.cmp(a));
        let renewal = Renewal {
            until: p.sent_at + self.cfg.lease,
            covered: versions[need - 1],
            excluded: p.refused.clone(),
        };
        self.lease.renew(renewal);
    }

    /// Defence in depth: a leader whose connections to so many voters were reset (or whose
    /// redials are refused without proof) that the rest are no majority stops acting at once,
    /// rather than when its lease runs out. A firewall that resets its traffic is the usual
    /// cause; the majority side elects a new leader once the old lease has lapsed.
    pub(super) fn check_reachable_voters(&mut self, now: Instant) {
        let Quorum::Majority(voters) = &self.cfg.quorum else {
            return;
        };
        let me = &self.cfg.node;
        let reachable = voters
            .iter()
            .filter(|v| {
                if *v == me {
                    !self.shutting_down
                } else {
                    self.peers.get(v).is_some_and(Peer::is_reachable)
                }
            })
            .count();
        if reaches(reachable, self.majority()) {
            return;
        }
        let leading = self.groups_where(|r| matches!(r, Role::Leader { .. }));
        let total = voters.len();
        for name in leading {
            self.emit(Event::SteppingDown {
                group: name.clone(),
                reason: StepDownReason::VotersUnreachable { reachable, total },
            });
            self.resign(now, &name, Resign::LeaseLost);
        }
    }

    /// Remembers a heartbeat sent while this node led some group, to count the voters' acks
    /// to it, for one lease: an older ack could renew no lease.
    pub(super) fn await_acks(&mut self, now: Instant, seq: u64) {
        if self.lease.claim_since.is_empty() {
            return;
        }
        let pending = &mut self.lease.pending;
        pending.push(PendingHeartbeat {
            seq,
            sent_at: now,
            acks: BTreeMap::new(),
            refused: Vec::new(),
        });
        // By age, not by count: heartbeats sent more often than once a period (a burst of
        // joins, a won election) must not push out the one a slow voter is still acking.
        // An ack to a heartbeat sent more than a lease ago can renew nothing. The count bound
        // only caps memory.
        let lease = self.cfg.lease;
        pending.retain(|p| p.sent_at + lease > now);
        if pending.len() > MAX_PENDING_HEARTBEATS {
            let drop = pending.len() - MAX_PENDING_HEARTBEATS;
            pending.drain(..drop);
        }
    }

    /// A one-voter cluster is its own majority: a heartbeat renews its leases at once.
    pub(super) fn renew_alone(&mut self, now: Instant) {
        if self.quorum_mode() && self.is_voter(&self.cfg.node) && self.majority() == 1 {
            self.lease.renew(Renewal {
                until: now + self.cfg.lease,
                covered: self.version,
                excluded: Vec::new(),
            });
        }
    }

    /// Before each input: the renewals that ended are dropped. A group they covered whose lease
    /// has now ended steps down (naming no successor: its lease is gone); one still within its
    /// own lease is stepped, to wake at its end. Rare — in steady state a newer renewal replaces
    /// the older — so it may visit every group.
    pub(super) fn expire_lease(&mut self, now: Instant) {
        if !self.quorum_mode() || self.lease.next_end().is_none_or(|end| end > now) {
            return;
        }
        let before = std::mem::take(&mut self.lease.renewed);
        let (ended, kept): (Vec<_>, Vec<_>) = before.into_iter().partition(|r| r.until <= now);
        self.lease.renewed = kept;
        let mut lost = Vec::new();
        let mut wake = Vec::new();
        for (name, g) in &self.groups {
            let Role::Leader { term, lease_until } = g.role else {
                continue;
            };
            let Some(since) = self.lease.claim_since.get(name) else {
                continue;
            };
            if since.term != term || !ended.iter().any(|r| r.holds(name, since.version)) {
                continue;
            }
            let end = self.lease.end(name, term, lease_until);
            if now >= end {
                lost.push((name.clone(), term));
            } else if end == lease_until {
                wake.push(name.clone());
            }
        }
        for name in &wake {
            self.touch(name);
        }
        for (name, term) in lost {
            self.emit(Event::SteppingDown {
                group: name.clone(),
                reason: StepDownReason::LeaseExpired { term },
            });
            self.resign(now, &name, Resign::LeaseLost);
        }
    }
}
