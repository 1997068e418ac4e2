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
        self.candidates_table()
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// Ranks the live candidates of `group` with its policy, best first.
    pub(super) fn ranking(&self, group: &GroupName) -> Arc<[MemberId]> {
        let table = self.table();
        let ranked = table
            .ranked
            .get(group)
            .cloned()
            .unwrap_or_else(|| Arc::from([]));
        // Every change a ranking depends on — members, liveness, the leader of any group, this
        // node shutting down — raises `rank_epoch`, which makes the table stale: debug builds
        // (every test) check that none was missed.
        #[cfg(debug_assertions)]
        {
            let fresh = self.build_table(true);
            debug_assert_eq!(
                fresh
                    .ranked
                    .get(group)
                    .cloned()
                    .unwrap_or_else(|| Arc::from([])),
                ranked,
                "stale ranking of {group}: a change did not raise rank_epoch"
            );
        }
        ranked
    }

    /// The table of candidates and rankings, rebuilt only when something changed since it
    /// was built: one input costs a lookup, not a ranking of every group.
    fn table(&self) -> Arc<RankTable> {
        let mut cached = self.rank_table.borrow_mut();
        match &*cached {
            Some((epoch, t)) if *epoch == self.rank_epoch => t.clone(),
            _ => {
                let t = Arc::new(self.build_table(false));
                *cached = Some((self.rank_epoch, t.clone()));
                t
            }
        }
    }

    /// Something the candidates depend on changed: the member table is to be published again,
    /// the candidates rebuilt and every group ranked anew.
    pub(super) fn members_changed(&mut self) {
        self.members_dirty = true;
        self.cand_epoch += 1;
        self.rank_epoch += 1;
    }

    /// Every group's live candidates, rebuilt only when something they depend on changed
    /// (`members_changed`), not when a leader did.
    fn candidates_table(&self) -> Arc<Candidates> {
        let mut cached = self.cand_table.borrow_mut();
        match &*cached {
            Some((epoch, c)) if *epoch == self.cand_epoch => c.clone(),
            _ => {
                let c = Arc::new(self.build_candidates());
                *cached = Some((self.cand_epoch, c.clone()));
                c
            }
        }
    }

    /// Every group's live candidates and ranking: the candidates as cached (built fresh when
    /// `fresh`, for the debug check), one policy call per group, however many groups each
    /// node is in.
    ///
    /// Groups are ranked in name order; a leaderless group's favourite counts as leading it
    /// in the candidates' `leads` of the groups ranked after it, so that nodes ranking many
    /// leaderless groups at once (a cold start, the failover of a node leading many) spread
    /// them alike under the `balanced` policy.
    pub(super) fn build_table(&self, fresh: bool) -> RankTable {
        let candidates = if fresh {
            Arc::new(self.build_candidates())
        } else {
            self.candidates_table()
        };
        let leaders: Arc<BTreeMap<GroupName, NodeId>> = Arc::new(
            self.groups
                .iter()
                .filter_map(|(name, g)| {
                    g.leader
                        .as_ref()
                        .map(|l| (name.clone(), l.member.node.clone()))
                })
                .collect(),
        );
        let mut leads: BTreeMap<NodeId, usize> = BTreeMap::new();
        for node in leaders.values() {
            *leads.entry(node.clone()).or_default() += 1;
        }
        let mut ranked = BTreeMap::new();
        for (name, g) in &self.groups {
            let Some(list) = candidates.get(name) else {
                continue;
            };
            let mut list = list.clone();
            for c in list.iter_mut() {
                c.leads = leads.get(&c.member.node).copied().unwrap_or(0);
            }
            let input = ElectionInput {
                group: name.clone(),
                candidates: list,
                incumbent: g.leader.as_ref().map(|l| l.member.clone()),
                leaders: leaders.clone(),
            };
            let policy = &self.spec(name).policy;
            // A policy must never take the node down: a panic falls back to member-id order.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| policy.rank(&input)))
                .unwrap_or_else(|_| ByMemberId.rank(&input));
            let r = normalize_ranking(&input, r).0;
            if g.leader.is_none()
                && let Some(top) = r.first()
            {
                *leads.entry(top.node.clone()).or_default() += 1;
            }
            ranked.insert(name.clone(), Arc::from(r));
        }
        RankTable { ranked }
    }
}

impl Engine {
    /// Every group's live candidates, sorted by member id, from the members: O(members).
    fn build_candidates(&self) -> Candidates {
        let mut candidates: BTreeMap<GroupName, Vec<Candidate>> = BTreeMap::new();
        if self.cfg.external_registry {
            let mut services: BTreeMap<&NodeId, Vec<GroupName>> = BTreeMap::new();
            for (g, rs) in &self.external {
                for r in rs {
                    services.entry(&r.id.node).or_default().push(g.clone());
                }
            }
            let services: BTreeMap<&NodeId, Arc<[GroupName]>> = services
                .into_iter()
                .map(|(n, mut s)| {
                    s.sort();
                    s.dedup();
                    (n, Arc::from(s))
                })
                .collect();
            for (g, rs) in &self.external {
                for r in rs.iter().filter(|r| self.node_alive(&r.id.node)) {
                    candidates.entry(g.clone()).or_default().push(Candidate {
                        member: r.id.clone(),
                        started_at_ms: r.started_at_ms,
                        incarnation: r.incarnation,
                        hardware: r.hardware.clone(),
                        labels: r.labels.clone(),
                        services: services.get(&r.id.node).cloned().unwrap_or(Arc::from([])),
                        leads: 0,
                        version: r.version.clone(),
                    });
                }
            }
        } else {
            if !self.shutting_down {
                let services: Arc<[GroupName]> = self.local.keys().cloned().collect();
                for (g, m) in self.local.iter().filter(|(_, m)| m.healthy) {
                    candidates
                        .entry(g.clone())
                        .or_default()
                        .push(candidate_from(
                            m,
                            self.cfg.incarnation,
                            &self.cfg.hardware,
                            &self.cfg.labels,
                            services.clone(),
                        ));
                }
            }
            for (_, p) in self.live_peers() {
                let services: Arc<[GroupName]> = p.services().into();
                for m in p.members.iter().filter(|m| m.healthy) {
                    candidates
                        .entry(m.group.clone())
                        .or_default()
                        .push(candidate_from(
                            m,
                            p.incarnation,
                            &p.hardware,
                            &p.labels,
                            services.clone(),
                        ));
                }
            }
        }
        for list in candidates.values_mut() {
            list.sort_by(|a, b| a.member.cmp(&b.member));
            list.dedup_by(|a, b| a.member == b.member);
        }
        candidates
    }
}

/// Every group's live candidates, in member-id order.
pub(crate) type Candidates = BTreeMap<GroupName, Vec<Candidate>>;

/// Every group's live candidates and their ranking (see `Engine::build_table`).
#[derive(Debug, Default)]
pub(crate) struct RankTable {
    ranked: BTreeMap<GroupName, Arc<[MemberId]>>,
}

/// A member as a candidate: its node's labels overlaid with the member's own.
fn candidate_from(
    m: &MemberAnnounce,
    incarnation: Incarnation,
    hardware: &Hardware,
    node_labels: &Labels,
    services: Arc<[GroupName]>,
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
        leads: 0,
        version: m.version.clone(),
    }
}
