//! Leases: a leader acts only while a majority of voters acknowledged one of its heartbeats
//! within `lease`; a voter that accepts a claim promises not to vote for another candidate for
//! `failure_timeout` after receiving it. Here: claims accepted or refused, acks counted, leases
//! renewed, and a leader that can no longer reach a majority stepping down.

use super::quorum::reaches;
use super::*;

/// At most this many heartbeats wait for acks (they are also dropped once a lease old).
const MAX_PENDING_HEARTBEATS: usize = 256;

/// A periodic heartbeat that carried claims, waiting for the voters' acks.
#[derive(Clone, Debug)]
pub(crate) struct PendingHeartbeat {
    pub seq: u64,
    pub sent_at: Instant,
    /// Groups claimed in it, each with the version of this node's state its claim appeared in.
    pub claims: BTreeMap<GroupName, u64>,
    /// Voters that acked: the version of this node's state each holds, and the groups each
    /// refused.
    pub acks: BTreeMap<NodeId, (u64, BTreeSet<GroupName>)>,
}

impl Engine {
    /// `Some(term)` while this node leads `g` and may act: always in availability mode, in
    /// quorum mode only until its lease ends.
    pub(super) fn acting(&self, g: &Group, now: Instant) -> Option<Term> {
        match g.role {
            Role::Leader { term, lease_until } => {
                if !self.quorum_mode() || now < lease_until {
                    Some(term)
                } else {
                    None
                }
            }
            _ => None,
        }
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
    /// refuse, once a majority acked the same heartbeat — to its send time plus `lease`.
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
        let Some(idx) = self.pending_hb.iter().position(|p| p.seq == ack.seq) else {
            return;
        };
        let rejected: BTreeSet<GroupName> = ack.rejected.into_iter().map(|(g, _)| g).collect();
        self.pending_hb[idx]
            .acks
            .insert(from.clone(), (ack.version, rejected));
        let pending = self.pending_hb[idx].clone();
        let majority = self.majority();
        let me = self.cfg.node.clone();
        let self_counts = self.is_voter(&me);
        let lease = self.cfg.lease;
        let mut renewed = Vec::new();
        for (name, g) in self.groups.iter_mut() {
            if let Role::Leader { lease_until, .. } = &mut g.role {
                let Some(since) = pending.claims.get(name) else {
                    continue;
                };
                // A voter renews only a claim it holds: its version includes the claim.
                let n = pending
                    .acks
                    .values()
                    .filter(|(held, rej)| held >= since && !rej.contains(name))
                    .count()
                    + usize::from(self_counts);
                if reaches(n, majority) {
                    let until = pending.sent_at + lease;
                    if until > *lease_until {
                        *lease_until = until;
                        g.lease_renewals += 1;
                        renewed.push(name.clone());
                    }
                }
            }
        }
        for name in &renewed {
            self.touch(name);
        }
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

    /// Remembers a heartbeat that carried `claims`, to count the voters' acks to it, for one
    /// lease: an older ack could renew no lease.
    pub(super) fn await_acks(&mut self, now: Instant, seq: u64, claims: BTreeMap<GroupName, u64>) {
        if claims.is_empty() {
            return;
        }
        self.pending_hb.push(PendingHeartbeat {
            seq,
            sent_at: now,
            claims,
            acks: BTreeMap::new(),
        });
        // By age, not by count: heartbeats sent more often than once a period (a burst of
        // joins, a won election) must not push out the one a slow voter is still acking.
        // An ack to a heartbeat sent more than a lease ago can renew nothing. The count bound
        // only caps memory.
        let lease = self.cfg.lease;
        self.pending_hb.retain(|p| p.sent_at + lease > now);
        if self.pending_hb.len() > MAX_PENDING_HEARTBEATS {
            let drop = self.pending_hb.len() - MAX_PENDING_HEARTBEATS;
            self.pending_hb.drain(..drop);
        }
    }

    /// A one-voter cluster is its own majority: a heartbeat renews its leases at once.
    pub(super) fn renew_alone(&mut self, now: Instant) {
        if !(self.quorum_mode() && self.is_voter(&self.cfg.node) && self.majority() == 1) {
            return;
        }
        let lease = self.cfg.lease;
        let mut renewed = Vec::new();
        for (name, g) in self.groups.iter_mut() {
            if let Role::Leader { lease_until, .. } = &mut g.role {
                *lease_until = now + lease;
                g.lease_renewals += 1;
                renewed.push(name.clone());
            }
        }
        for name in &renewed {
            self.touch(name);
        }
    }
}
