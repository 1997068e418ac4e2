//! Heartbeats: what they carry (this node's address, members, leadership claims and, now and
//! then, the peers it knows), what a received one changes, and discovery (dialing the peers and
//! seeds nobody answers for). Leases and claims are in `lease`.

use super::*;

/// Periodic heartbeats carry the sender's peer list once in this many.
const PEERS_EVERY: u64 = 10;

impl Engine {
    /// This node's announced state as it is now: its claims (the groups it leads), its
    /// members (none while shutting down), address, hardware and labels. Raises the version
    /// when it changed since the last call, and notes the version each claim appeared in
    /// (a voter's ack renews a claim only when it holds that version or a later one).
    pub(super) fn refresh_state(&mut self) {
        // Every change of a claim marks its group, every change of a member the candidates:
        // while neither happened, nothing is compared at all.
        let at = (self.schedule.marks, self.ranks.cand_epoch);
        if self.announced.is_some() && self.schedule.announced_at == Some(at) {
            debug_assert!(
                self.announced_unchanged(),
                "the announced state changed unmarked"
            );
            return;
        }
        self.schedule.announced_at = Some(at);
        // Compared in place: a change elsewhere allocates nothing, whatever the groups.
        if self.announced_unchanged() {
            return;
        }
        let claims: Vec<Claim> = self
            .leading()
            .map(|(group, term, member)| Claim {
                group: group.clone(),
                term,
                member: member.clone(),
            })
            .collect();
        let members = if self.shutting_down {
            vec![]
        } else {
            self.local.values().cloned().collect()
        };
        self.version += 1;
        let version = self.version;
        // A claim keeps the version it appeared in while it stays the same; `claims` and the
        // claims before are both in group order.
        let before = self.announced.take().map(|a| a.claims).unwrap_or_default();
        let mut old = std::mem::take(&mut self.lease.claim_since);
        let rounds = self.lease.rounds;
        for c in &claims {
            let same = before
                .binary_search_by(|b| b.group.cmp(&c.group))
                .is_ok_and(|i| before.get(i) == Some(c));
            let since = match old.remove(&c.group).filter(|_| same) {
                Some(s) if s.term == c.term => s,
                ended => {
                    if let Some(s) = ended {
                        old.insert(c.group.clone(), s);
                    }
                    lease::Since {
                        term: c.term,
                        version,
                        rounds,
                    }
                }
            };
            self.lease.claim_since.insert(c.group.clone(), since);
        }
        // The claims that ended (or changed) keep the renewals counted while they stood.
        for (name, s) in old {
            if let Some(g) = self.groups.get_mut(&name) {
                g.lease_renewals += rounds.saturating_sub(s.rounds);
                self.touch(&name);
            }
        }
        self.announced = Some(NodeState {
            addr: self.cfg.addr.clone(),
            hardware: self.cfg.hardware.clone(),
            labels: self.cfg.labels.clone(),
            members,
            claims,
        });
    }

    /// Whether the announced state is what `refresh_state` would build now.
    fn announced_unchanged(&self) -> bool {
        self.announced.as_ref().is_some_and(|a| {
            a.claims
                .iter()
                .map(|c| (&c.group, c.term, &c.member))
                .eq(self.leading())
                && if self.shutting_down {
                    a.members.is_empty()
                } else {
                    a.members.iter().eq(self.local.values())
                }
                && a.addr == self.cfg.addr
                && a.hardware == self.cfg.hardware
                && a.labels == self.cfg.labels
        })
    }

    /// The groups this node leads, with its term and member in each, in group order.
    fn leading(&self) -> impl Iterator<Item = (&GroupName, Term, &MemberId)> + '_ {
        self.groups.iter().filter_map(|(name, g)| match g.role {
            Role::Leader { term, .. } => self.local.get(name).map(|m| (name, term, &m.id)),
            _ => None,
        })
    }

    /// The heartbeat to `to`: with the state when `to` may not hold this version (`full`:
    /// always, for a greeting), and the peers this node knows on greetings (`seq` `None`) and
    /// every `PEERS_EVERY`-th periodic one. Call `refresh_state` first.
    pub(super) fn heartbeat_to(&mut self, to: &NodeId, seq: Option<u64>, full: bool) -> Message {
        let version = self.version;
        let next_periodic = self.hb_seq + 1;
        let state = match self.peers.get_mut(to) {
            Some(p) if full || p.sent_version != version => {
                p.sent_version = version;
                p.sent_seq = seq.unwrap_or(next_periodic);
                self.announced.clone()
            }
            Some(_) => None,
            None => self.announced.clone(),
        };
        // The peer list is for discovery only: it rides on greetings and on every
        // `PEERS_EVERY`-th heartbeat, not on all of them (it is O(n)).
        let with_peers = seq.is_none_or(|s| s % PEERS_EVERY == 0);
        let mut peers: Vec<PeerAddr> = if with_peers {
            self.live_peers()
                .filter_map(|(id, p)| {
                    p.addr.as_ref().map(|a| PeerAddr {
                        node: id.clone(),
                        addr: a.clone(),
                    })
                })
                .collect()
        } else {
            vec![]
        };
        peers.sort();
        Message::Heartbeat(Heartbeat {
            seq: seq.unwrap_or(0),
            version,
            state,
            peers,
        })
    }

    /// A peer's heartbeat. A periodic one older than the last seen from this incarnation is
    /// stale and changes nothing. A state older than the one held changes nothing either (a
    /// late greeting). A heartbeat without a state, announcing a version this node does not
    /// hold, only proves the peer alive: this node asks for the state (an ack with the version
    /// it holds). Otherwise the state — the one carried, or the one held — updates the peer's
    /// address, members and labels, dials the peers it names that this node has not met, ends
    /// the leaderships of groups the peer no longer claims, applies its claims (`on_claim`) and
    /// acks them (a voter always, anyone when refusing one).
    pub(super) fn on_heartbeat(&mut self, now: Instant, from: &NodeId, hb: Heartbeat) {
        let Heartbeat {
            seq,
            version,
            state,
            peers,
        } = hb;
        // Transports may reorder messages. A periodic heartbeat older than one already seen
        // from this incarnation is stale: its members and claims are out of date, and taking
        // its missing claim as "no longer leads" would drop a live leader's view (and with it
        // this voter's promise) while that leader still holds a lease on this node's ack —
        // two acting leaders (found by baton-sim). It only proves the peer alive.
        let Some(p) = self.peers.get_mut(from) else {
            return;
        };
        if seq > 0 {
            if seq < p.hb_seq {
                return;
            }
            p.hb_seq = seq;
        }
        let held = p.state_version;
        let claims = match state {
            Some(st) if version >= held => {
                p.state_version = version;
                p.claims = st.claims.clone();
                self.renewals_end(from);
                Some(self.take_state(now, from, st))
            }
            // A late greeting with an older state: alive, nothing more.
            Some(_) => return,
            None if version == held && held > 0 => None,
            None => {
                // The state of this version never reached this node (a closed connection, a
                // coalesced heartbeat): ask for it.
                self.send(
                    from,
                    Message::HeartbeatAck(HeartbeatAck {
                        seq,
                        rejected: vec![],
                        version: held,
                    }),
                );
                return;
            }
        };
        // Discovery: dial peers we have not met.
        for pa in peers {
            if pa.node != self.cfg.node && !self.peers.is_alive(&pa.node) {
                self.dial(now, pa.addr);
            }
        }
        // The state held, and every claim in it followed here as it was: the heartbeat renews
        // them all at once (see `claims_hold`).
        let claims = match claims {
            Some(claims) => claims,
            None if seq > 0 && self.renew_claims(now, from) => {
                let Some(p) = self.peers.get(from) else {
                    return;
                };
                if !p.claims.is_empty() && self.is_voter(&self.cfg.node) {
                    let ack = HeartbeatAck {
                        seq,
                        rejected: vec![],
                        version,
                    };
                    self.send(from, Message::HeartbeatAck(ack));
                }
                return;
            }
            None => {
                self.renewals_end(from);
                match self.peers.get(from) {
                    Some(p) => p.claims.clone(),
                    None => return,
                }
            }
        };
        // Groups whose leader was this peer but which it no longer claims: the claim is gone.
        // Only a periodic heartbeat can say so: a greeting (seq 0) is not ordered against them.
        let claimed: BTreeSet<&str> = claims.iter().map(|c| c.group.as_str()).collect();
        let mut lapsed = Vec::new();
        for (name, g) in self.groups.iter_mut() {
            if seq > 0
                && g.leader.as_ref().is_some_and(|l| l.member.node == *from)
                && !matches!(g.role, Role::Leader { .. })
                && !claimed.contains(name.as_str())
            {
                g.leader = None;
                self.ranks.lead_epoch += 1;
                g.leaderless_since = Some(now);
                lapsed.push(name.clone());
            }
        }
        for name in &lapsed {
            self.touch(name);
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
            self.send(
                from,
                Message::HeartbeatAck(HeartbeatAck {
                    seq,
                    rejected,
                    version,
                }),
            );
        }
    }

    /// Takes a peer's announced state: its address, hardware, labels and members (a change
    /// makes the member table dirty). Returns its claims.
    fn take_state(&mut self, now: Instant, from: &NodeId, st: NodeState) -> Vec<Claim> {
        let NodeState {
            addr,
            hardware,
            labels,
            members,
            claims,
        } = st;
        let Some(p) = self.peers.get_mut(from) else {
            return claims;
        };
        p.addr = Some(addr);
        let members =
            peers::in_group_order(members.into_iter().filter(|m| m.id.node == *from).collect());
        if p.hardware == hardware && p.labels == labels && p.members == members {
            return claims;
        }
        // Only the groups whose member of this peer changed rank anew, unless what every
        // member of the peer shares (its hardware, its labels) did.
        let everywhere = p.hardware != hardware || p.labels != labels;
        let changed: Vec<GroupName> = if everywhere {
            vec![]
        } else {
            changed_groups(&p.members, &members)
        };
        p.hardware = hardware;
        p.labels = labels;
        p.set_members(members);
        if everywhere {
            self.members_changed();
        }
        for group in &changed {
            self.group_mut(group, now);
            self.members_changed_in(group);
        }
        claims
    }

    /// Sends the next periodic heartbeat to every peer not proven dead, waits for the voters'
    /// acks to its claims, and re-dials the seeds no live peer answers for (a restarted
    /// cluster, a healed link).
    pub(super) fn send_heartbeats(&mut self, now: Instant) {
        self.refresh_state();
        self.hb_seq += 1;
        let seq = self.hb_seq;
        self.await_acks(now, seq);
        let targets: Vec<NodeId> = self.peers.not_dead().cloned().collect();
        for to in targets {
            let hb = self.heartbeat_to(&to, Some(seq), false);
            self.send(&to, hb);
        }
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

/// The groups in which a peer's member differs between `old` and `new` (joined, left, changed).
fn changed_groups(old: &[MemberAnnounce], new: &[MemberAnnounce]) -> Vec<GroupName> {
    let index = |ms: &[MemberAnnounce]| -> BTreeMap<GroupName, MemberAnnounce> {
        ms.iter().map(|m| (m.group.clone(), m.clone())).collect()
    };
    let (old, new) = (index(old), index(new));
    let mut changed: BTreeSet<GroupName> = BTreeSet::new();
    for (g, m) in &new {
        if old.get(g) != Some(m) {
            changed.insert(g.clone());
        }
    }
    changed.extend(old.keys().filter(|g| !new.contains_key(*g)).cloned());
    changed.into_iter().collect()
}
