//! The read-only [`StatusSnapshot`] a client's `status` request is answered with: every node
//! this one knows, its groups' leaderships, why a group has no leader and each ranking.

use super::Engine;
use crate::message::{NodeStatus, StatusSnapshot};
use crate::types::GroupName;
use std::time::Instant;

impl Engine {
    /// What this node knows, for `status`.
    pub fn status(&self, now: Instant) -> StatusSnapshot {
        let mut members = vec![NodeStatus {
            name: self.cfg.node.clone(),
            addr: Some(self.cfg.addr.clone()),
            incarnation: self.cfg.incarnation,
            alive: !self.shutting_down,
            groups: self.local.keys().cloned().collect(),
            version: self.cfg.version.clone(),
        }];
        for (id, p) in self.peers.iter() {
            let mut groups: Vec<GroupName> = p.members.iter().map(|m| m.group.clone()).collect();
            groups.sort();
            groups.dedup();
            members.push(NodeStatus {
                name: id.clone(),
                addr: p.addr.clone(),
                incarnation: p.incarnation,
                alive: p.is_alive(),
                groups,
                version: p.members.iter().find_map(|m| m.version.clone()),
            });
        }
        let groups = self
            .groups
            .iter()
            .map(|(name, g)| self.leadership_of(name, g, now))
            .collect();
        StatusSnapshot {
            node: self.cfg.node.clone(),
            members,
            groups,
            no_leader: self.no_leader_all(now),
            rankings: self
                .groups
                .keys()
                .map(|name| (name.clone(), self.ranking(name).to_vec()))
                .collect(),
            unhealthy: self.unhealthy_members(),
            lease_renewals: self
                .groups
                .iter()
                .map(|(name, g)| (name, g.lease_renewals + self.lease.renewals_of(name)))
                .filter(|(_, n)| *n > 0)
                .map(|(name, n)| (name.clone(), n))
                .collect(),
        }
    }
}
