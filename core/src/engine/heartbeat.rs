//! Heartbeats: what they carry (this node's address, members, leadership claims and, now and
//! then, the peers it knows), what a received one changes, and discovery (dialing the peers and
//! seeds nobody answers for). Leases and claims are in `lease`.

use super::*;

/// Periodic heartbeats carry the sender's peer list once in this many.
const PEERS_EVERY: u64 = 10;

impl Engine {
    /// The heartbeat this node sends: its claims (the groups it leads), its members (none
    /// while shutting down) and — on greetings (`seq` `None`) and every `PEERS_EVERY`-th
    /// periodic one — the peers it knows.
    pub(super) fn heartbeat_message(&self, seq: Option<u64>) -> Message {
        let now_claims = self
            .groups
            .iter()
            .filter_map(|(name, g)| match g.role {
                Role::Leader { term, .. } => Some(Claim {
                    group: name.clone(),
                    term,
                    member: self.local.get(name)?.id.clone(),
                }),
                _ => None,
            })
            .collect();
        // The peer list is for discovery only: it rides on greetings and on every
        // `PEERS_EVERY`-th heartbeat, not on all of them (it is the largest part, O(n)).
        let with_peers = seq.is_none_or(|s| s % PEERS_EVERY == 0);
        let mut peers: Vec<PeerAddr> = self
            .live_peers()
            .filter(|_| with_peers)
            .filter_map(|(id, p)| {
                p.addr.as_ref().map(|a| PeerAddr {
                    node: id.clone(),
                    addr: a.clone(),
                })
            })
            .collect();
        peers.sort();
        Message::Heartbeat(Heartbeat {
            seq: seq.unwrap_or(0),
            addr: self.cfg.addr.clone(),
            hardware: self.cfg.hardware.clone(),
            labels: self.cfg.labels.clone(),
            members: if self.shutting_down {
                vec![]
            } else {
                self.local.values().cloned().collect()
            },
            claims: now_claims,
            peers,
        })
    }

    /// A peer's heartbeat. A periodic one older than the last seen from this incarnation is
    /// stale and changes nothing; otherwise it updates the peer's address, members and labels,
    /// dials the peers it names that this node has not met, ends the leaderships of groups the
    /// peer no longer claims, applies its claims (`on_claim`) and acks them (a voter always,
    /// anyone when refusing one).
    pub(super) fn on_heartbeat(&mut self, now: Instant, from: &NodeId, hb: Heartbeat) {
        let Heartbeat {
            seq,
            addr,
            hardware,
            labels,
            members,
            claims,
            peers,
        } = hb;
        // Transports may reorder messages. A periodic heartbeat older than one already seen
        // from this incarnation is stale: its members and claims are out of date, and taking
        // its missing claim as "no longer leads" would drop a live leader's view (and with it
        // this voter's promise) while that leader still holds a lease on this node's ack —
        // two acting leaders (found by baton-sim). It only proves the peer alive.
        if let Some(p) = self.peers.get_mut(from)
            && seq > 0
        {
            if seq < p.hb_seq {
                return;
            }
            p.hb_seq = seq;
        }
        for m in &members {
            self.group_mut(&m.group, now);
        }
        if let Some(p) = self.peers.get_mut(from) {
            p.addr = Some(addr);
            let members: Vec<MemberAnnounce> =
                members.into_iter().filter(|m| m.id.node == *from).collect();
            // Heartbeats repeat themselves: only a real change makes the member table dirty.
            if p.hardware != hardware || p.labels != labels || p.members != members {
                p.hardware = hardware;
                p.labels = labels;
                p.members = members;
                self.members_dirty = true;
            }
        }
        // Discovery: dial peers we have not met.
        for pa in peers {
            if pa.node != self.cfg.node && !self.peers.is_alive(&pa.node) {
                self.dial(now, pa.addr);
            }
        }
        // Groups whose leader was this peer but which it no longer claims: the claim is gone.
        // Only a periodic heartbeat can say so: a greeting (seq 0) is not ordered against them.
        let claimed: BTreeSet<&str> = claims.iter().map(|c| c.group.as_str()).collect();
        for (name, g) in self.groups.iter_mut() {
            if seq > 0
                && g.leader.as_ref().is_some_and(|l| l.member.node == *from)
                && !matches!(g.role, Role::Leader { .. })
                && !claimed.contains(name.as_str())
            {
                g.leader = None;
                g.leaderless_since = Some(now);
            }
        }
        let mut rejected = Vec::new();
        let has_claims = !claims.is_empty();
        for claim in claims {
            if claim.member.node != *from {
                continue;
            }
            if let Some(higher) = self.on_claim(now, claim.clone()) {
                rejected.push((claim.group, higher));
            }
        }
        // Voters ack every claim (that renews leases). Anyone who refuses a claim says so, voter
        // or not: a leader elected with a term lower than one the cluster already knew (voters
        // restarted without `data_dir`) must learn it, step down and campaign above it, or the
        // nodes that know the higher term never follow it (found by baton-sim).
        if has_claims && seq > 0 && (self.is_voter(&self.cfg.node.clone()) || !rejected.is_empty())
        {
            self.send(from, Message::HeartbeatAck(HeartbeatAck { seq, rejected }));
        }
    }

    /// Sends the next periodic heartbeat to every peer not proven dead, waits for the voters'
    /// acks to its claims, and re-dials the seeds no live peer answers for (a restarted
    /// cluster, a healed link).
    pub(super) fn send_heartbeats(&mut self, now: Instant) {
        self.hb_seq += 1;
        let seq = self.hb_seq;
        let hb = self.heartbeat_message(Some(seq));
        let claims: BTreeSet<GroupName> = match &hb {
            Message::Heartbeat(h) => h.claims.iter().map(|c| c.group.clone()).collect(),
            _ => BTreeSet::new(),
        };
        self.await_acks(now, seq, claims);
        self.broadcast(hb);
        let seeds = self.cfg.seeds.clone();
        for addr in seeds {
            let answered = self
                .peers
                .alive()
                .any(|(_, p)| p.addr.as_deref() == Some(addr.as_str()));
            if !answered {
                self.dial(now, addr);
            }
        }
        while self.next_heartbeat <= now {
            self.next_heartbeat += self.cfg.heartbeat;
        }
        self.renew_alone(now);
    }

    /// Connects to `addr`, at most once per [`Timer::Redial`] period (and never to itself).
    pub(super) fn dial(&mut self, now: Instant, addr: String) {
        if addr == self.cfg.addr {
            return;
        }
        let retry = self.timer_period(Timer::Redial);
        match self.dialed.get(&addr) {
            Some(at) if now < *at + retry => {}
            _ => {
                self.dialed.insert(addr.clone(), now);
                self.out.push(Action::Connect { addr });
            }
        }
    }
}
