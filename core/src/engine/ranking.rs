//! Who may lead: the live candidates of a group (from heartbeats, or from an external
//! registry) and the group's policy's ranking of them. A policy that panics falls back to
//! member-id order: a policy must never take the node down.

use super::*;
use std::cell::RefCell;

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
    pub(super) fn candidates(&self, group: &GroupName) -> Vec<Candidate> {
        self.group_candidates(group).to_vec()
    }

    /// The live candidates of `group`, from the cache while neither every group's candidates
    /// nor its own members changed since they were found. Their `services` may be older (a
    /// peer joined another group since): only the policies that read other groups read them,
    /// and those are given fresh ones (`build_shared`).
    fn group_candidates(&self, group: &GroupName) -> Arc<[Candidate]> {
        let key = self.ranks.own_key(group);
        if let Some((k, c)) = self.ranks.candidates.borrow().get(group)
            && *k == key
        {
            return c.clone();
        }
        let c: Arc<[Candidate]> = self.find_candidates(group).into();
        self.ranks
            .candidates
            .borrow_mut()
            .insert(group.clone(), (key, c.clone()));
        c
    }

    /// Ranks the live candidates of `group` with its policy, best first.
    ///
    /// A policy that reads no other group's leadership (`reads_other_groups` false: the
    /// built-ins but `balanced` and `anti-affinity`) is asked once per change of the group's
    /// candidates or leader, and its answer kept. The others are ranked together, in one pass
    /// over the groups in name order, at most once per input (see `shared_table`).
    pub(super) fn ranking(&self, group: &GroupName) -> Arc<[MemberId]> {
        let incumbent = self.groups.get(group).and_then(|g| g.leader.as_ref());
        let incumbent = incumbent.map(|l| &l.member);
        if !self.spec(group).policy.reads_other_groups() {
            return self.own_ranking(group, incumbent);
        }
        let table = self.shared_table();
        #[cfg(debug_assertions)]
        self.check_shared(group, &table);
        match table.ranked.get(group) {
            Some((used, r))
                if used.as_ref() == incumbent && self.ranks.own_key(group) <= table.cand_epoch =>
            {
                r.clone()
            }
            // The group's own leader or members changed after the table was built: it is
            // ranked again with the table's view of the other groups, once per change (every
            // vote request, step and retry asks: a cold start asks thousands of times).
            _ => self.kept_ranking(group, incumbent, table.id, || {
                self.rank_with(group, incumbent, &table.leads, &table.leaders)
            }),
        }
    }

    /// `group`'s ranking, but only when it was made from the current leaders and candidates of
    /// every group: what a leader acts on when it hands a group off by itself (`preempt`). A
    /// kept shared table (`shared_table`) lags by up to a backoff, and a preemption on it can
    /// undo itself: a node leading two groups under `balanced` handed both to an idle node in
    /// two steps (the second before the table saw the first move), which then led two and
    /// handed both back, forever (found by baton-sim). `None`: ask again later.
    pub(super) fn current_ranking(&self, group: &GroupName) -> Option<Arc<[MemberId]>> {
        let ranked = self.ranking(group);
        if !self.spec(group).policy.reads_other_groups() {
            return Some(ranked);
        }
        let r = &self.ranks;
        let table = r.table.borrow();
        let current = table
            .as_ref()
            .is_some_and(|(built, _, _)| (built.0, built.1) == (r.cand_epoch, r.lead_epoch));
        current.then_some(ranked)
    }

    /// `group`'s ranking by a policy that reads no other group (see `ranking`), from the cache
    /// when neither the candidates nor the leader changed since it was made.
    fn own_ranking(&self, group: &GroupName, incumbent: Option<&MemberId>) -> Arc<[MemberId]> {
        self.kept_ranking(group, incumbent, 0, || {
            self.rank_with(group, incumbent, &BTreeMap::new(), &no_leaders())
        })
    }

    /// `group`'s ranking as kept in `ranks.own` while its candidates (`own_key`), its leader
    /// and the shared table it was ranked against (`table`; 0: none) are unchanged; else made
    /// by `rank` and kept.
    fn kept_ranking(
        &self,
        group: &GroupName,
        incumbent: Option<&MemberId>,
        table: u64,
        rank: impl FnOnce() -> Arc<[MemberId]>,
    ) -> Arc<[MemberId]> {
        let epoch = self.ranks.own_key(group);
        if let Some(own) = self.ranks.own.borrow().get(group)
            && own.cand_epoch == epoch
            && own.incumbent.as_ref() == incumbent
            && own.table == table
        {
            return own.ranked.clone();
        }
        let ranked = rank();
        self.ranks.own.borrow_mut().insert(
            group.clone(),
            OwnRanking {
                cand_epoch: epoch,
                incumbent: incumbent.cloned(),
                ranked: ranked.clone(),
                table,
            },
        );
        ranked
    }

    /// One policy call: `group`'s live candidates (with `leads`) ranked by its policy,
    /// normalized; a policy that panics falls back to member-id order.
    fn rank_with(
        &self,
        group: &GroupName,
        incumbent: Option<&MemberId>,
        leads: &BTreeMap<NodeId, usize>,
        leaders: &Arc<BTreeMap<GroupName, NodeId>>,
    ) -> Arc<[MemberId]> {
        let mut list = if self.spec(group).policy.reads_other_groups() {
            self.find_candidates(group)
        } else {
            self.group_candidates(group).to_vec()
        };
        for c in list.iter_mut() {
            c.leads = leads.get(&c.member.node).copied().unwrap_or(0);
        }
        let input = ElectionInput {
            group: group.clone(),
            candidates: list,
            incumbent: incumbent.cloned(),
            leaders: leaders.clone(),
        };
        let policy = &self.spec(group).policy;
        // A policy must never take the node down: a panic falls back to member-id order.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| policy.rank(&input)))
            .unwrap_or_else(|_| ByMemberId.rank(&input));
        Arc::from(normalize_ranking(&input, r).0)
    }

    /// The rankings by policies that read other groups, rebuilt at most once per input, and
    /// only when a member or a leader changed since: within one input they see the other
    /// groups as they were when the table was built (a ranking only orders who campaigns and
    /// whom a voter prefers; safety never rests on it).
    ///
    /// When only leaders or some groups' own members changed, a table built less than a wait
    /// per rank (`rank_backoff`: a backoff, more while many groups are leaderless) ago is kept (a group whose members changed since is ranked alone, with the
    /// table's view of the others: `ranking`): during a cold start or the failover of many
    /// groups, leaders and members change with nearly every input, and a table rebuilt for
    /// each ranked every group again each time (at 9 x 300 under `balanced`, 1 488 policy
    /// calls per group; 9 x 1 000 elected nothing). The other groups' leaders and services lag
    /// by at most a backoff, the time a rank waits anyway.
    fn shared_table(&self) -> Arc<SharedTable> {
        let r = &self.ranks;
        let key = (r.cand_epoch, r.lead_epoch, r.input);
        let mut cached = r.table.borrow_mut();
        match &*cached {
            Some((built, at, t))
                if (built.0, built.1) == (key.0, key.1)
                    || built.2 == key.2
                    || (t.all_epoch == r.all_epoch
                        && at
                            .zip(r.now)
                            .is_some_and(|(at, now)| now < at + self.rank_backoff())) =>
            {
                t.clone()
            }
            _ => {
                let t = Arc::new(self.build_shared());
                *cached = Some((key, r.now, t.clone()));
                t
            }
        }
    }

    /// Every group's ranking by a policy that reads other groups, in one pass in name order.
    /// A leaderless group's favourite counts as leading it in the `leads` of the groups ranked
    /// after it, so that nodes ranking many leaderless groups at once (a cold start, the
    /// failover of a node leading many) spread them alike under the `balanced` policy.
    fn build_shared(&self) -> SharedTable {
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
        let settled = leads.clone();
        let mut ranked = BTreeMap::new();
        for (name, g) in &self.groups {
            let incumbent = g.leader.as_ref().map(|l| &l.member);
            let r = if self.spec(name).policy.reads_other_groups() {
                let r = self.rank_with(name, incumbent, &leads, &leaders);
                ranked.insert(name.clone(), (incumbent.cloned(), r.clone()));
                r
            } else {
                self.own_ranking(name, incumbent)
            };
            if g.leader.is_none()
                && let Some(top) = r.first()
            {
                *leads.entry(top.node.clone()).or_default() += 1;
            }
        }
        SharedTable {
            ranked,
            leads: settled,
            leaders,
            cand_epoch: self.ranks.cand_epoch,
            all_epoch: self.ranks.all_epoch,
            id: self.ranks.input,
        }
    }

    /// Debug builds (every test): a shared table built at the current leaders equals one built
    /// afresh — every change a ranking depends on raised an epoch.
    #[cfg(debug_assertions)]
    fn check_shared(&self, group: &GroupName, table: &SharedTable) {
        let r = &self.ranks;
        let current = r.table.borrow().as_ref().map(|(k, _, _)| *k);
        if self.groups.len() > 64 || current.is_none_or(|k| (k.0, k.1) != r.epochs()) {
            return;
        }
        let fresh = self.build_shared();
        debug_assert_eq!(
            fresh.ranked.get(group).map(|(_, r)| r.clone()),
            table.ranked.get(group).map(|(_, r)| r.clone()),
            "stale ranking of {group}: a change did not raise an epoch"
        );
    }

    /// Something every group's candidates depend on changed (a peer's liveness, hardware or
    /// labels, this node's incarnation, its shutdown): the member table is to be published
    /// again, the candidates rebuilt and every group ranked anew.
    pub(super) fn members_changed(&mut self) {
        self.members_dirty = membership::MembersDirty::All;
        self.ranks.cand_epoch += 1;
        self.ranks.all_epoch = self.ranks.cand_epoch;
    }

    /// The members of `group` changed (a join, a leave, a peer's member, a health change):
    /// the member table is to be published again, the candidates rebuilt, `group` ranked anew
    /// (and stepped), and the rankings that read other groups (their `services`) made again.
    pub(super) fn members_changed_in(&mut self, group: &GroupName) {
        self.members_dirty.add(group);
        self.ranks.cand_epoch += 1;
        let v = self.ranks.cand_epoch;
        self.ranks.group_epochs.insert(group.clone(), v);
        self.touch(group);
    }

    /// The leader of some group changed: the rankings that read other groups are stale.
    pub(super) fn leaders_changed(&mut self) {
        self.ranks.lead_epoch += 1;
    }
}

impl Engine {
    /// The live candidates of `group`, sorted by member id: this node's member, and each
    /// live peer's (a binary search in its members), or the external registry's.
    fn find_candidates(&self, group: &GroupName) -> Vec<Candidate> {
        let mut list = Vec::new();
        if self.cfg.external_registry {
            let records = self.external.get(group).map(Vec::as_slice).unwrap_or(&[]);
            for r in records.iter().filter(|r| self.node_alive(&r.id.node)) {
                let mut services: Vec<GroupName> = self
                    .external
                    .iter()
                    .filter(|(_, rs)| rs.iter().any(|o| o.id.node == r.id.node))
                    .map(|(g, _)| g.clone())
                    .collect();
                services.dedup();
                list.push(Candidate {
                    member: r.id.clone(),
                    started_at_ms: r.started_at_ms,
                    incarnation: r.incarnation,
                    hardware: r.hardware.clone(),
                    labels: r.labels.clone(),
                    services: services.into(),
                    leads: 0,
                    version: r.version.clone(),
                });
            }
        } else {
            if !self.shutting_down
                && let Some(m) = self.local.get(group).filter(|m| m.healthy)
            {
                list.push(candidate_from(
                    m,
                    self.cfg.incarnation,
                    &self.cfg.hardware,
                    &self.cfg.labels,
                    self.local_services(),
                ));
            }
            for (_, p) in self.live_peers() {
                if let Some(m) = p.member_in(group).filter(|m| m.healthy) {
                    list.push(candidate_from(
                        m,
                        p.incarnation,
                        &p.hardware,
                        &p.labels,
                        p.services.clone(),
                    ));
                }
            }
        }
        list.sort_by(|a, b| a.member.cmp(&b.member));
        list.dedup_by(|a, b| a.member == b.member);
        list
    }

    /// The groups this node is in, as its candidates' `services` (rebuilt after a join or a
    /// leave: `local_joined_or_left`).
    fn local_services(&self) -> Arc<[GroupName]> {
        let mut cached = self.ranks.local_services.borrow_mut();
        cached
            .get_or_insert_with(|| self.local.keys().cloned().collect())
            .clone()
    }

    /// This node joined or left a group: its `services` changed.
    pub(super) fn local_joined_or_left(&mut self) {
        *self.ranks.local_services.get_mut() = None;
    }
}

/// The rankings and the epochs they were made at (see `Engine::ranking`).
#[derive(Debug, Default)]
pub(super) struct Rankings {
    /// Raised by every change the candidates depend on (`members_changed`: members, their
    /// health, liveness, incarnations, this node shutting down; `members_changed_in`).
    pub(super) cand_epoch: u64,
    /// The `cand_epoch` of the last change of every group's candidates (`members_changed`).
    pub(super) all_epoch: u64,
    /// The `cand_epoch` of the last change of each group's own members (`members_changed_in`).
    group_epochs: BTreeMap<GroupName, u64>,
    /// Raised by every change of any group's leader (`leaders_changed`).
    pub(super) lead_epoch: u64,
    /// Counts the engine's inputs (`Engine::handle`).
    pub(super) input: u64,
    /// Whether some group's policy reads other groups (fixed by the config).
    pub(super) shared: bool,
    /// Each group's candidates as last found, with the `own_key` they were found at.
    candidates: RefCell<BTreeMap<GroupName, Found>>,
    /// The groups this node is in (`local_services`).
    local_services: RefCell<Option<Arc<[GroupName]>>>,
    /// Rankings by policies that read no other group.
    own: RefCell<BTreeMap<GroupName, OwnRanking>>,
    /// Rankings by the others, and the `(cand_epoch, lead_epoch, input)` and time they were
    /// built at.
    table: RefCell<Option<Built>>,
    /// The time of the current input (`Engine::handle`).
    pub(super) now: Option<Instant>,
}

impl Rankings {
    #[cfg(debug_assertions)] // Both epochs, for `check_shared`.
    pub(super) fn epochs(&self) -> (u64, u64) {
        (self.cand_epoch, self.lead_epoch)
    }

    /// What the schedule compares to know which leaderless groups to step again: the last
    /// change of every group's candidates, and a count that moves with any change of
    /// candidates or leaders.
    pub(super) fn step_key(&self) -> (u64, u64) {
        (
            self.all_epoch,
            self.cand_epoch.wrapping_add(self.lead_epoch),
        )
    }

    /// What a ranking of `group` by a policy that reads no other group depends on: the last
    /// change of every group's candidates or of its own, whichever came later.
    fn own_key(&self, group: &GroupName) -> u64 {
        self.all_epoch
            .max(self.group_epochs.get(group).copied().unwrap_or(0))
    }
}

/// A group's candidates as found, with the `own_key` they were found at.
type Found = (u64, Arc<[Candidate]>);

/// What a shared table was built at: `(cand_epoch, lead_epoch, input)`.
type TableKey = (u64, u64, u64);

/// A shared table with what and when (the input's time) it was built at.
type Built = (TableKey, Option<Instant>, Arc<SharedTable>);

/// A ranking by a policy that reads no other group, with what it was made from.
#[derive(Debug)]
struct OwnRanking {
    cand_epoch: u64,
    incumbent: Option<MemberId>,
    ranked: Arc<[MemberId]>,
    /// For a policy that reads other groups: the shared table (`SharedTable::id`) it was
    /// ranked against; 0 for the others.
    table: u64,
}

/// The rankings by policies that read other groups, each with the incumbent it was made with,
/// and the view of the other groups they were made from.
#[derive(Debug, Default)]
pub(super) struct SharedTable {
    ranked: BTreeMap<GroupName, (Option<MemberId>, Arc<[MemberId]>)>,
    leads: BTreeMap<NodeId, usize>,
    leaders: Arc<BTreeMap<GroupName, NodeId>>,
    /// The candidate epochs it was built at (`Rankings::cand_epoch`, `all_epoch`).
    cand_epoch: u64,
    all_epoch: u64,
    /// The input it was built in (at most one table per input): which table a group ranked
    /// alone against it was ranked with (`OwnRanking::table`).
    id: u64,
}

/// The empty `leaders` a policy that reads no other group is given.
fn no_leaders() -> Arc<BTreeMap<GroupName, NodeId>> {
    static EMPTY: std::sync::OnceLock<Arc<BTreeMap<GroupName, NodeId>>> =
        std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(BTreeMap::new())).clone()
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
