//! Who is in the cluster: this node's joins and leaves, its shutdown, peers coming up and going
//! down (as the peer table reports), external registries, and what is published to the driver.

use super::*;

impl Engine {
    /// A fresh authenticated connection. Somebody took this node in, so whatever refused it as
    /// a duplicate name was a race; the peer is greeted at once (it learns this node's members
    /// without waiting a heartbeat period).
    pub(super) fn on_connected(
        &mut self,
        now: Instant,
        node: NodeId,
        incarnation: Incarnation,
        addr: String,
    ) {
        if node == self.cfg.node {
            return;
        }
        self.refused_as_duplicate = None;
        let seen = self
            .peers
            .contact(now, &node, incarnation, Contact::Connected);
        if !self.observed(now, seen) {
            return;
        }
        if let Some(peer) = self.peers.get_mut(&node) {
            peer.addr = Some(addr);
        }
        self.refresh_state();
        let hb = self.heartbeat_to(&node, None, true);
        self.send(&node, hb);
    }

    /// A connection closed: an abrupt close marks the link reset (no proof of death), and a
    /// leader checks it still reaches a majority of voters.
    pub(super) fn on_disconnected(&mut self, now: Instant, node: &NodeId, how: CloseKind) {
        self.peers.disconnected(node, how);
        if how == CloseKind::Abrupt {
            self.check_reachable_voters(now);
        }
    }

    /// The transport's proof that a peer's incarnation is gone. A proof this node's
    /// `death_proof` mode does not trust is a refused connection, nothing more.
    pub(super) fn on_dead(
        &mut self,
        now: Instant,
        node: &NodeId,
        incarnation: Incarnation,
        proof: DeathProof,
    ) {
        if self.peers.trusts(proof) {
            let change = self.peers.dead(now, node, incarnation, proof);
            self.apply_peer_changes(now, change.into_iter().collect());
        } else {
            self.peers.disconnected(node, CloseKind::Abrupt);
            self.check_reachable_voters(now);
        }
    }

    /// A peer's goodbye (`Leave`): proof of its death, always trusted.
    pub(super) fn on_left(&mut self, now: Instant, from: &NodeId, incarnation: Incarnation) {
        let change = self.peers.dead(now, from, incarnation, DeathProof::Left);
        self.apply_peer_changes(now, change.into_iter().collect());
    }

    /// Whether a peer's message is taken: not when it carries a term no leadership can have
    /// (taking it would stop every election of its group for good), nor when it comes from an
    /// older or a dead incarnation. Records the contact otherwise.
    pub(super) fn admits(
        &mut self,
        now: Instant,
        from: &NodeId,
        incarnation: Incarnation,
        message: &Message,
    ) -> bool {
        if let Some(term) = insane_term(message) {
            self.emit(Event::InsaneTerm {
                from: from.clone(),
                term,
            });
            return false;
        }
        let seen = self.peers.contact(now, from, incarnation, Contact::Message);
        self.observed(now, seen)
    }

    /// An external registry's members of `group` replace what it said before.
    pub(super) fn on_external_members(
        &mut self,
        now: Instant,
        group: GroupName,
        members: Vec<MemberRecord>,
    ) {
        self.external.insert(group.clone(), members);
        self.group_mut(&group, now);
        self.members_changed_in(&group);
    }

    /// Acts on what the peer table observed of a contact (`PeerTable::contact`); false when
    /// the contact is stale (an older or a dead incarnation's): ignore it.
    pub(super) fn observed(&mut self, now: Instant, seen: Observed) -> bool {
        match seen {
            Observed::Stale => false,
            Observed::Current(changes) => {
                self.apply_peer_changes(now, changes);
                true
            }
        }
    }

    /// Acts on what the peer table reports: logs it, and for a peer that went down forgets
    /// its leaderships and fails the calls waiting on it.
    pub(super) fn apply_peer_changes(&mut self, now: Instant, changes: Vec<Change>) {
        for change in changes {
            self.members_changed();
            match change {
                Change::Up {
                    node,
                    incarnation,
                    back,
                } => self.emit(match back {
                    Back::New => Event::PeerUp { node, incarnation },
                    Back::AfterSilence => Event::PeerBack { node, incarnation },
                    Back::AfterDeath { proof, ago } => Event::PeerTakenBack {
                        node,
                        incarnation,
                        proof,
                        ago,
                    },
                }),
                Change::Down {
                    node,
                    incarnation,
                    down,
                } => {
                    self.emit(match down {
                        Down::Silent => Event::PeerSilent {
                            node: node.clone(),
                            after: self.cfg.failure_timeout,
                        },
                        Down::Dead(proof) => Event::PeerGone {
                            node: node.clone(),
                            incarnation,
                            proof,
                        },
                    });
                    self.forget_node_leadership(now, &node);
                    // Calls waiting on that node will never be answered.
                    self.fail_calls_to(now, &node);
                }
            }
        }
    }

    /// A node went down: the leaderships it held end here (unless this node leads: a claim
    /// of its own is not a peer's to end), and so do the promises this voter made it.
    pub(super) fn forget_node_leadership(&mut self, now: Instant, node: &NodeId) {
        let mut changed = Vec::new();
        for (name, g) in self.groups.iter_mut() {
            let mut change = false;
            if g.leader.as_ref().is_some_and(|l| l.member.node == *node)
                && !matches!(g.role, Role::Leader { .. })
            {
                g.leader = None;
                self.ranks.lead_epoch += 1;
                g.leaderless_since = Some(now);
                change = true;
            }
            if g.promised.as_ref().is_some_and(|(m, _)| m.node == *node) {
                g.promised = None;
                change = true;
            }
            if change {
                changed.push(name.clone());
            }
        }
        for name in &changed {
            self.touch(name);
        }
    }

    /// This node joins `group` with a new member (ids count up per node). Ignored when already
    /// a member or shutting down. Announced at once.
    pub(super) fn on_join(
        &mut self,
        now: Instant,
        group: GroupName,
        labels: Labels,
        started_at_ms: u64,
    ) {
        if self.local.contains_key(&group) || self.shutting_down {
            return;
        }
        let id = MemberId {
            node: self.cfg.node.clone(),
            seq: self.next_seq,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        self.members_changed_in(&group);
        self.local_joined_or_left();
        self.local.insert(
            group.clone(),
            MemberAnnounce {
                id,
                group: group.clone(),
                started_at_ms,
                labels,
                healthy: true,
                version: self.cfg.version.clone(),
            },
        );
        let g = self.group_mut(&group, now);
        if g.leader.is_none() && g.leaderless_since.is_none() {
            g.leaderless_since = Some(now);
        }
        // Announce soon: within a quarter heartbeat, so that a node joining a thousand groups
        // at start-up announces them in a few heartbeats, not in a thousand (each one carrying
        // the whole state to every peer, which then re-ranks: quadratic in the groups).
        self.next_heartbeat = self.next_heartbeat.min(now + self.cfg.heartbeat / 4);
    }

    /// This node's member leaves `group`: a leader hands off first (stops acting, then names
    /// its successor); the member's absence is announced at once.
    pub(super) fn on_leave(&mut self, now: Instant, group: &GroupName) {
        if self
            .groups
            .get(group)
            .is_some_and(|g| matches!(g.role, Role::Leader { .. }))
        {
            self.resign(now, group, Resign::HandOff(Resignation::Leaving));
        }
        self.touch(group);
        if let Some(g) = self.groups.get_mut(group) {
            g.role = Role::Follower;
            g.handoff_to_me = None;
        }
        self.local.remove(group);
        self.members_changed_in(group);
        self.local_joined_or_left();
        self.next_heartbeat = now;
    }

    /// Kind shutdown: hand off every group led, stop every role, fail the calls in flight and
    /// say goodbye (`Leave`), so peers forget this node at once instead of after a timeout.
    pub(super) fn on_shutdown(&mut self, now: Instant) {
        let leading = self.groups_where(|r| matches!(r, Role::Leader { .. }));
        for name in leading {
            self.resign(now, &name, Resign::HandOff(Resignation::Leaving));
        }
        self.shutting_down = true;
        self.members_changed();
        self.touch_all();
        for g in self.groups.values_mut() {
            g.role = Role::Follower;
        }
        self.fail_calls(now, |_| true, |_| CallError::ShuttingDown);
        self.broadcast(Message::Leave);
    }

    /// Publishes `name`'s leadership if it changed since last published.
    pub(super) fn publish_leadership(&mut self, now: Instant, name: &GroupName) {
        let Some(g) = self.groups.get(name) else {
            return;
        };
        // Compared field by field first: most inputs change no group's leadership, and
        // building one clones its leader's id (a thousand groups, a thousand allocations).
        let is_me = self.acting(name, g, now).is_some();
        if let Some(p) = self.published.get(name)
            && p.term == g.term
            && p.is_me == is_me
            && p.leader.as_ref() == g.leader.as_ref().map(|l| &l.member)
        {
            return;
        }
        let l = self.leadership_of(name, g, now);
        if self.published.get(name) != Some(&l) {
            self.published.insert(name.clone(), l.clone());
            self.out.push(Action::Leadership(l));
        }
    }

    /// Emits leadership and membership changes — each only when it differs from what was
    /// published last — and routes calls waiting for a leader. Only the groups changed since
    /// the last time (`schedule`) can have another leadership; every group's members are
    /// compared only when something they depend on changed.
    pub(super) fn publish(&mut self, now: Instant, changed: &BTreeSet<GroupName>) {
        for name in changed {
            self.publish_leadership(now, name);
        }
        let names: Vec<GroupName> = match std::mem::take(&mut self.members_dirty) {
            MembersDirty::All => self.groups.keys().cloned().collect(),
            MembersDirty::Groups(g) => g.into_iter().collect(),
        };
        for name in &names {
            let members: Vec<MemberRecord> = self
                .candidates(name)
                .into_iter()
                .map(|c| MemberRecord {
                    id: c.member,
                    group: name.clone(),
                    started_at_ms: c.started_at_ms,
                    incarnation: c.incarnation,
                    hardware: c.hardware,
                    labels: c.labels,
                    version: c.version,
                })
                .collect();
            if self.published_members.get(name) != Some(&members) {
                self.published_members.insert(name.clone(), members.clone());
                self.out.push(Action::Members {
                    group: name.clone(),
                    members,
                });
            }
        }
        for id in self.calls.ids_where(|c| c.target.is_none()) {
            self.route(now, id);
        }
    }
}

/// The groups whose member tables may differ from what `publish` last emitted.
#[derive(Debug)]
pub(super) enum MembersDirty {
    /// These (none: nothing changed).
    Groups(BTreeSet<GroupName>),
    /// Every group (a change all candidates depend on).
    All,
}

impl Default for MembersDirty {
    fn default() -> Self {
        MembersDirty::Groups(BTreeSet::new())
    }
}

impl MembersDirty {
    /// `group`'s members changed.
    pub(super) fn add(&mut self, group: &GroupName) {
        if let MembersDirty::Groups(g) = self
            && !g.contains(group)
        {
            g.insert(group.clone());
        }
    }
}
