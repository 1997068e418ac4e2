//! Who may lead: the live candidates of a group (from heartbeats, or from an external
//! registry) and the group's policy's ranking of them. A policy that panics falls back to
//! member-id order: a policy must never take the node down.

use super::*;

impl Engine {
    /// Peers alive in this node's view.
    pub(super) fn live_peers(&self) -> impl Iterator<Item = (&NodeId, &Peer)> {
        self.peers.alive()
    }

    /// Whether `node` is alive: this node unless shutting down, a peer when the table says so.
    pub(super) fn node_alive(&self, node: &NodeId) -> bool {
        if *node == self.cfg.node {
            return !self.shutting_down;
        }
        self.peers.is_alive(node)
    }

    /// The live candidates of `group`, in member-id order.
    pub(super) fn candidates(&self, group: &str) -> Vec<Candidate> {
        let mut out = Vec::new();
        if self.cfg.external_registry {
            for r in self.external.get(group).into_iter().flatten() {
                if self.node_alive(&r.id.node) {
                    out.push(Candidate {
                        member: r.id.clone(),
                        started_at_ms: r.started_at_ms,
                        incarnation: r.incarnation,
                        hardware: r.hardware.clone(),
                        labels: r.labels.clone(),
                        services: self.services_of(&r.id.node),
                    });
                }
            }
        } else {
            if !self.shutting_down
                && let Some(m) = self.local.get(group)
            {
                out.push(self.candidate_from(
                    m,
                    self.cfg.incarnation,
                    &self.cfg.hardware,
                    &self.cfg.labels,
                    self.local.keys().cloned().collect(),
                ));
            }
            for (_, p) in self.live_peers() {
                for m in p.members.iter().filter(|m| m.group == group) {
                    out.push(self.candidate_from(
                        m,
                        p.incarnation,
                        &p.hardware,
                        &p.labels,
                        p.services(),
                    ));
                }
            }
        }
        out.sort_by(|a, b| a.member.cmp(&b.member));
        out.dedup_by(|a, b| a.member == b.member);
        out
    }

    /// A member as a candidate: its node's labels overlaid with the member's own.
    pub(super) fn candidate_from(
        &self,
        m: &MemberAnnounce,
        incarnation: Incarnation,
        hardware: &Hardware,
        node_labels: &Labels,
        services: Vec<GroupName>,
    ) -> Candidate {
        let mut labels = node_labels.clone();
        labels.extend(m.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        Candidate {
            member: m.id.clone(),
            started_at_ms: m.started_at_ms,
            incarnation,
            hardware: hardware.clone(),
            labels,
            services,
        }
    }

    /// The groups `node` has members in (sorted), for the policy's view of a candidate.
    pub(super) fn services_of(&self, node: &NodeId) -> Vec<GroupName> {
        let mut s: Vec<GroupName> = if *node == self.cfg.node {
            self.local.keys().cloned().collect()
        } else if self.cfg.external_registry {
            self.external
                .iter()
                .filter(|(_, ms)| ms.iter().any(|m| m.id.node == *node))
                .map(|(g, _)| g.clone())
                .collect()
        } else {
            self.peers.get(node).map(Peer::services).unwrap_or_default()
        };
        s.sort();
        s.dedup();
        s
    }

    /// Ranks the live candidates of `group` with its policy, best first.
    pub(super) fn ranking(&self, group: &GroupName) -> Vec<MemberId> {
        let candidates = self.candidates(group);
        if candidates.is_empty() {
            return vec![];
        }
        let leaders = self
            .groups
            .iter()
            .filter(|(name, _)| name.as_str() != group)
            .filter_map(|(name, g)| {
                g.leader
                    .as_ref()
                    .map(|l| (name.clone(), l.member.node.clone()))
            })
            .collect();
        let input = ElectionInput {
            group: group.clone(),
            candidates,
            incumbent: self
                .groups
                .get(group)
                .and_then(|g| g.leader.as_ref().map(|l| l.member.clone())),
            leaders,
        };
        let policy = &self.spec(group).policy;
        // A policy must never take the node down: a panic falls back to member-id order.
        let ranked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| policy.rank(&input)))
            .unwrap_or_else(|_| ByMemberId.rank(&input));
        normalize_ranking(&input, ranked).0
    }
}
