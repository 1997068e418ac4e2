//! The elector's task: one per node. It owns the view of the prefix (members, leaders, handoffs;
//! a watch resumed from the last revision seen), this node's candidacies, and every write.

use crate::EtcdSettings;
use crate::keys::{HandoffValue, Keys, LeaderValue, MemberValue, Parsed};
use crate::lease::{LeaseState, LeaseTiming};
use baton_core::message::{ControlError, HandedOff, NotCandidate};
use baton_core::runtime::Candidacy;
use baton_core::{
    Candidate, ElectionInput, GroupName, Incarnation, Leadership, MemberId, NodeId, Term,
    normalize_ranking,
};
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    WatchOptions, WatchStream, Watcher,
};
use futures::{FutureExt, StreamExt, stream};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, timeout};

/// How many etcd requests of one kind (member puts, campaigns) the task has in flight at once.
const IN_FLIGHT: usize = 128;

/// Member puts written in one transaction (etcd's `--max-txn-ops` defaults to 128).
const PUTS_PER_TXN: usize = 64;

/// Groups campaigned for in one transaction: each adds two compares and two operations, so
/// 32 stay well within etcd's default `--max-txn-ops` of 128.
const CAMPAIGNS_PER_TXN: usize = 32;

/// Keys per page of [`Task::sync`]'s read of the prefix (~400 bytes each: well within a
/// gRPC message, and one page is quick for etcd to serve).
const PAGE: i64 = 1000;

/// The end of the range of keys that start with `prefix` (etcd's prefix range end: the last
/// byte below 0xff incremented, what follows it dropped; all 0xff: every key after).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(b) = end.pop() {
        if b < 0xff {
            end.push(b + 1);
            return end;
        }
    }
    vec![0]
}

/// What the [`EtcdElector`](crate::EtcdElector) handle asks of its task.
pub(crate) enum Cmd {
    Stand(Candidacy),
    Withdraw(GroupName, oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
    /// The node's engine proved this incarnation of a peer dead: revoke its lease.
    PeerGone(NodeId, Incarnation),
    /// An operator's transfer (`Some(node)`) or step-down (`None`) of a group this node leads
    /// ([`Task::hand_off`]).
    HandOff(
        GroupName,
        Option<NodeId>,
        oneshot::Sender<Result<HandedOff, ControlError>>,
    ),
    /// Whether [`Cmd::HandOff`] would be refused now, and why ([`Task::hand_off_target`]),
    /// changing nothing: asked before the node releases the group's leader work.
    CheckHandOff(
        GroupName,
        Option<NodeId>,
        oneshot::Sender<Result<(), ControlError>>,
    ),
}

/// How a [`Task::resign`] ended.
#[derive(Debug)]
enum Resigned {
    /// The leader key now names the successor, on its lease (the successor's key as written).
    HandedTo(LeaderKv),
    /// The key was deleted: the group is elected as after a crash.
    Deleted,
    /// The key was not this node's (any more), or etcd did not answer: nothing written.
    NotHeld,
}

/// The leader key as last seen. Its **mod revision is the fencing token**: the key is written
/// only when leadership changes (created by a campaign, or replaced by a handoff that names
/// the successor in the same transaction), so its mod revision changes exactly then — and,
/// being an etcd revision, only grows.
#[derive(Clone, Debug)]
struct LeaderKv {
    member: MemberId,
    mod_rev: i64,
    lease: i64,
}

#[derive(Default)]
struct Group {
    members: BTreeMap<MemberId, MemberValue>,
    leader: Option<LeaderKv>,
    handoff: Option<MemberId>,
    /// The highest leader-key mod revision seen: the term published while leaderless.
    term: Term,
    /// The leader key's mod revision when its holder was proven dead ([`Task::peer_gone`]):
    /// the next campaign replaces that very key (conditioned on this revision) instead of
    /// waiting for the revocation to delete it — one etcd write on the way, not two.
    takeover: Option<i64>,
}

impl Group {
    /// The member the leader key names, if there is one.
    fn leader_member(&self) -> Option<&MemberId> {
        self.leader.as_ref().map(|l| &l.member)
    }
}

struct Local {
    c: Candidacy,
    campaign_at: Option<Instant>,
    /// After a lost campaign: not again before this (the view catches up through the watch).
    not_before: Option<Instant>,
    /// The lease its member key was last written under (0: to write).
    registered: i64,
}

/// The cluster-wide inputs of a ranking ([`Task::ctx`]).
struct Ctx {
    leaders: Arc<BTreeMap<GroupName, NodeId>>,
    services: BTreeMap<NodeId, Arc<[GroupName]>>,
    /// How many groups each node leads.
    leads: BTreeMap<NodeId, usize>,
}

pub(crate) struct Task {
    client: Client,
    keys: Keys,
    timing: LeaseTiming,
    backoff: Duration,
    node: NodeId,
    lease_rx: watch::Receiver<LeaseState>,
    lease: LeaseState,
    groups: BTreeMap<GroupName, Group>,
    local: BTreeMap<GroupName, Local>,
    rev: i64,
    watch: Option<(Watcher, WatchStream)>,
    resync: bool,
    reconnect_at: Instant,
    dirty: BTreeSet<GroupName>,
    /// Revocations of dead peers' leases, answered: `(lease, revoked or gone already)`.
    revoked_tx: mpsc::UnboundedSender<(i64, bool)>,
    revoked_rx: mpsc::UnboundedReceiver<(i64, bool)>,
}

fn json<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Option<T> {
    match serde_json::from_slice(kv.value()) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key = %String::from_utf8_lossy(kv.key()), error = %e, "etcd: ignoring a value baton cannot read");
            None
        }
    }
}

impl Task {
    /// The task of the node `settings` name, on `client`, its lease kept under `timing`.
    pub(crate) fn new(
        client: Client,
        settings: &EtcdSettings,
        timing: LeaseTiming,
        lease_rx: watch::Receiver<LeaseState>,
    ) -> Self {
        let lease = *lease_rx.borrow();
        let (revoked_tx, revoked_rx) = mpsc::unbounded_channel();
        Task {
            client,
            keys: Keys::new(settings.prefix.clone()),
            timing,
            backoff: settings.backoff,
            node: settings.node.clone(),
            lease_rx,
            lease,
            groups: BTreeMap::new(),
            local: BTreeMap::new(),
            rev: 0,
            watch: None,
            resync: true,
            reconnect_at: Instant::now(),
            dirty: BTreeSet::new(),
            revoked_tx,
            revoked_rx,
        }
    }

    /// Reads the whole prefix — in pages of [`PAGE`] keys, every page at the revision of the
    /// first, so the pages make one snapshot — and starts the watch after it.
    ///
    /// Paged because 9 nodes × 1 000 groups are 9 000 member keys (~3 MB of values): in one
    /// response that is a single request that has to fit one deadline on a busy etcd, and is
    /// close to gRPC's default 4 MiB message limit, past which the read fails whatever the
    /// deadline. Each page has its own deadline.
    pub(crate) async fn sync(&mut self) -> Result<(), etcd_client::Error> {
        let prefix = self.keys.prefix().as_bytes().to_vec();
        let end = prefix_end(&prefix);
        let mut from = prefix;
        let mut rev = 0;
        let mut kvs = Vec::new();
        loop {
            let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if rev != 0 {
                opts = opts.with_revision(rev);
            }
            let mut r = timeout(
                self.timing.request * 4,
                self.client.get(from.clone(), Some(opts)),
            )
            .await
            .map_err(|_| crate::lease::timed_out("reading the prefix"))??;
            if rev == 0 {
                rev = r.header().map_or(0, |h| h.revision());
            }
            let more = r.more();
            let page = r.take_kvs();
            let Some(last) = page.last() else { break };
            // The next page starts just after the last key of this one.
            from = last.key().to_vec();
            from.push(0);
            kvs.extend(page);
            if !more {
                break;
            }
        }
        let before: BTreeSet<GroupName> = self.groups.keys().cloned().collect();
        for g in self.groups.values_mut() {
            g.members.clear();
            g.leader = None;
            g.handoff = None;
            g.takeover = None;
        }
        for kv in &kvs {
            self.apply_put(kv);
        }
        self.dirty.extend(before);
        self.rev = rev;
        self.resync = false;
        self.start_watch().await
    }

    async fn start_watch(&mut self) -> Result<(), etcd_client::Error> {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(self.rev + 1);
        let w = timeout(
            self.timing.request,
            self.client.watch(self.keys.prefix(), Some(opts)),
        )
        .await
        .map_err(|_| crate::lease::timed_out("opening the watch"))??;
        self.watch = Some(w);
        Ok(())
    }

    fn apply_put(&mut self, kv: &KeyValue) {
        let Some(parsed) = self.keys.parse(kv.key()) else {
            return;
        };
        match parsed {
            Parsed::Member(group, id) => {
                if let Some(v) = json::<MemberValue>(kv) {
                    if v.record.id != id || v.record.group != group {
                        tracing::warn!(key = %String::from_utf8_lossy(kv.key()), "etcd: a member value that does not match its key; ignored");
                        return;
                    }
                    self.groups
                        .entry(group.clone())
                        .or_default()
                        .members
                        .insert(id, v);
                    self.dirty.insert(group);
                }
            }
            Parsed::Leader(group) => {
                if let Some(v) = json::<LeaderValue>(kv) {
                    let g = self.groups.entry(group.clone()).or_default();
                    // Not a write older than the leader already known (read by a lost
                    // campaign, or written by this node, ahead of the watch).
                    if g.leader
                        .as_ref()
                        .is_some_and(|l| l.mod_rev > kv.mod_revision())
                    {
                        return;
                    }
                    g.term = g.term.max(u64::try_from(kv.mod_revision()).unwrap_or(0));
                    g.leader = Some(LeaderKv {
                        member: v.member,
                        mod_rev: kv.mod_revision(),
                        lease: kv.lease(),
                    });
                    // A handoff names its successor in the leader key itself.
                    g.handoff = None;
                    g.takeover = None;
                    self.dirty.insert(group);
                }
            }
            Parsed::Handoff(group) => {
                if let Some(v) = json::<HandoffValue>(kv) {
                    self.groups.entry(group.clone()).or_default().handoff = Some(v.successor);
                    self.dirty.insert(group);
                }
            }
        }
    }

    fn apply_delete(&mut self, kv: &KeyValue) {
        let Some(parsed) = self.keys.parse(kv.key()) else {
            return;
        };
        let group = match parsed {
            Parsed::Member(group, id) => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.members.remove(&id);
                }
                group
            }
            Parsed::Leader(group) => {
                if let Some(g) = self.groups.get_mut(&group) {
                    // Not a delete older than the leader already known (read by a lost
                    // campaign ahead of the watch).
                    if g.leader
                        .as_ref()
                        .is_none_or(|l| l.mod_rev <= kv.mod_revision())
                    {
                        g.leader = None;
                    }
                }
                group
            }
            Parsed::Handoff(group) => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.handoff = None;
                }
                group
            }
        };
        self.dirty.insert(group);
    }

    /// Handles one command; `false` after a shutdown.
    async fn command(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Stand(c) => self.stand(c),
            Cmd::Withdraw(group, reply) => {
                self.withdraw(&group).await;
                let _ = reply.send(());
            }
            Cmd::Shutdown(reply) => {
                self.shutdown().await;
                let _ = reply.send(());
                return false;
            }
            Cmd::PeerGone(node, incarnation) => self.peer_gone(&node, incarnation),
            Cmd::HandOff(group, to, reply) => {
                let r = self.hand_off(&group, to).await;
                let _ = reply.send(r);
            }
            Cmd::CheckHandOff(group, to, reply) => {
                let r = self.hand_off_target(&group, to.as_ref()).map(|_| ());
                let _ = reply.send(r);
            }
        }
        true
    }

    /// Runs until the handle is dropped or shut down.
    pub(crate) async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            let wake = self.next_wake();
            let lease_changed;
            tokio::select! {
                cmd = cmds.recv() => {
                    lease_changed = false;
                    let Some(cmd) = cmd else { return };
                    if !self.command(cmd).await {
                        return;
                    }
                    // Whatever queued behind it (a thousand candidacies of one join) is
                    // handled before the writes, which then go together.
                    while let Ok(cmd) = cmds.try_recv() {
                        if !self.command(cmd).await {
                            return;
                        }
                    }
                }
                Some((lease, gone)) = self.revoked_rx.recv() => {
                    lease_changed = false;
                    if gone {
                        self.forget_lease(lease);
                    }
                }
                changed = self.lease_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    lease_changed = true;
                }
                msg = next_message(&mut self.watch) => {
                    lease_changed = false;
                    self.on_watch(msg);
                    // Every message already here is applied before the step: a burst of
                    // thousands of member keys costs a few steps, not one per message.
                    while let Some(msg) = next_message(&mut self.watch).now_or_never() {
                        self.on_watch(msg);
                    }
                }
                _ = tokio::time::sleep_until(wake) => { lease_changed = false; }
            }
            if lease_changed {
                let before = self.lease;
                self.lease = *self.lease_rx.borrow_and_update();
                // Every answered keepalive moves the deadline (5 a TTL): that changes nothing
                // a group publishes unless the lease itself changed or the node starts or
                // stops being able to act (`lease_changes_that_matter`). Stepping every group
                // on each answer cost a node of 1 000 groups a full step per keepalive.
                if lease_changes_that_matter(&before, &self.lease, Instant::now()) {
                    self.dirty.extend(self.local.keys().cloned());
                }
            }
            if self.watch.is_none() && Instant::now() >= self.reconnect_at {
                let r = if self.resync {
                    self.sync().await
                } else {
                    self.start_watch().await
                };
                if let Err(e) = r {
                    tracing::debug!(error = %e, "etcd: watch not restored yet");
                    self.reconnect_at = Instant::now() + self.timing.period;
                } else {
                    tracing::debug!(revision = self.rev, "etcd: watching again");
                }
            }
            self.register().await;
            self.step().await;
        }
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let mut at = now + Duration::from_secs(3600);
        for l in self.local.values() {
            if let Some(c) = l.campaign_at {
                at = at.min(c);
            }
            if l.registered != self.lease.id {
                at = at.min(now + self.timing.period);
            }
            if l.c.leadership.borrow().is_me
                && let Some(t) = self.lease.acting_until
            {
                at = at.min(t);
            }
        }
        if self.watch.is_none() {
            at = at.min(self.reconnect_at.max(now));
        }
        at
    }

    fn on_watch(&mut self, msg: Result<Option<etcd_client::WatchResponse>, etcd_client::Error>) {
        match msg {
            Ok(Some(resp)) => {
                if resp.compact_revision() > 0 || resp.canceled() {
                    tracing::info!(
                        compacted = resp.compact_revision(),
                        reason = resp.cancel_reason(),
                        "etcd: watch cancelled; reading the prefix again"
                    );
                    self.watch = None;
                    self.resync = true;
                    return;
                }
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    self.rev = self.rev.max(kv.mod_revision());
                    match ev.event_type() {
                        EventType::Put => self.apply_put(kv),
                        EventType::Delete => self.apply_delete(kv),
                    }
                }
                if let Some(h) = resp.header() {
                    // Progress: nothing below it is still to come.
                    if resp.events().is_empty() && !resp.created() {
                        self.rev = self.rev.max(h.revision());
                    }
                }
            }
            Ok(None) | Err(_) => {
                tracing::debug!(
                    revision = self.rev,
                    "etcd: watch lost; resuming after the last revision"
                );
                self.watch = None;
                self.reconnect_at = Instant::now() + self.timing.period;
            }
        }
    }

    /// A new candidacy: its member key is written by the next [`Task::register`] (with every
    /// other candidacy that arrived meanwhile: a node joining a thousand groups writes them
    /// together).
    fn stand(&mut self, c: Candidacy) {
        let group = c.record.group.clone();
        if self.local.contains_key(&group) {
            tracing::warn!(node = %self.node, %group, "etcd: this node already stands in the group; ignored");
            return;
        }
        self.local.insert(
            group.clone(),
            Local {
                c,
                campaign_at: None,
                not_before: None,
                registered: 0,
            },
        );
        self.dirty.insert(group);
    }

    /// Writes the member keys not written under the current lease (new members, or all after
    /// a new lease), up to [`IN_FLIGHT`] at a time.
    async fn register(&mut self) {
        let lease = self.lease.id;
        if lease == 0 {
            return;
        }
        let mut puts = Vec::new();
        for (g, l) in &self.local {
            if l.registered == lease {
                continue;
            }
            let rec = &l.c.record;
            match serde_json::to_vec(&MemberValue {
                record: rec.clone(),
                lease,
            }) {
                Ok(value) => puts.push((g.clone(), self.keys.member(g.as_str(), &rec.id), value)),
                Err(e) => tracing::warn!(group = %g, error = %e, "etcd: cannot encode the member"),
            }
        }
        if puts.is_empty() {
            return;
        }
        let request = self.timing.request;
        let client = self.client.clone();
        // Many puts per transaction (etcd allows 128 operations by default): a node joining a
        // thousand groups writes 16 transactions, not a thousand puts — fewer raft entries,
        // and every other node's watch brings them in 16 messages.
        let chunks: Vec<Vec<(GroupName, String, Vec<u8>)>> =
            puts.chunks(PUTS_PER_TXN).map(<[_]>::to_vec).collect();
        let results: Vec<(GroupName, Result<(), String>)> = stream::iter(chunks)
            .map(|chunk| {
                let mut client = client.clone();
                async move {
                    let (groups, ops): (Vec<GroupName>, Vec<TxnOp>) = chunk
                        .into_iter()
                        .map(|(g, key, value)| {
                            let op =
                                TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease)));
                            (g, op)
                        })
                        .unzip();
                    let r = timeout(request, client.txn(Txn::new().and_then(ops))).await;
                    let r = match r {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("timed out".to_string()),
                    };
                    groups
                        .into_iter()
                        .map(|g| (g, r.clone()))
                        .collect::<Vec<_>>()
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .flat_map(stream::iter)
            .collect()
            .await;
        for (g, r) in results {
            match r {
                Ok(()) => {
                    if let Some(l) = self.local.get_mut(&g) {
                        l.registered = lease;
                    }
                }
                Err(e) => {
                    tracing::debug!(group = %g, error = %e, "etcd: member not registered yet")
                }
            }
            self.dirty.insert(g);
        }
    }

    /// Publishes leadership of the dirty groups, schedules and runs campaigns, preempts —
    /// again while that made groups dirty (a loop, not a recursion: a long chain of lost
    /// campaigns must not grow the stack).
    async fn step(&mut self) {
        self.step_once().await;
        while !self.dirty.is_empty() {
            self.step_once().await;
        }
    }

    async fn step_once(&mut self) {
        let now = Instant::now();
        // An acting deadline that passed makes every led group dirty.
        if !self.lease.acting(now) {
            for (g, l) in &self.local {
                if l.c.leadership.borrow().is_me {
                    self.dirty.insert(g.clone());
                }
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        let ctx = self.ctx();
        let mut handoffs = Vec::new();
        for group in dirty {
            let Some(local) = self.local.get(&group) else {
                continue;
            };
            let g = self.groups.get(&group);
            let acting = self.lease.acting(now);
            let me = local.c.record.id.clone();
            let leadership = match g.and_then(|g| g.leader.as_ref()) {
                Some(l) => {
                    let mine = l.member == me && l.lease == self.lease.id;
                    if mine && acting && local.c.preempt {
                        let ranking = self.ranking(&group, &ctx);
                        if let Some(top) = ranking.first()
                            && *top != me
                        {
                            handoffs.push((group.clone(), top.clone()));
                        }
                    }
                    Leadership {
                        group: group.clone(),
                        leader: Some(l.member.clone()),
                        term: u64::try_from(l.mod_rev).unwrap_or(0),
                        is_me: mine && acting,
                    }
                }
                None => Leadership {
                    group: group.clone(),
                    leader: None,
                    term: g.map_or(0, |g| g.term),
                    is_me: false,
                },
            };
            let leaderless = leadership.leader.is_none();
            let campaign_at = if leaderless && acting {
                let ranking = self.ranking(&group, &ctx);
                let rank = ranking
                    .iter()
                    .position(|m| *m == me)
                    .unwrap_or(ranking.len());
                let at = now + self.backoff * u32::try_from(rank).unwrap_or(u32::MAX);
                let at = local.campaign_at.map_or(at, |c| c.min(at));
                Some(local.not_before.map_or(at, |nb| at.max(nb)))
            } else {
                None
            };
            if let Some(local) = self.local.get_mut(&group) {
                local.campaign_at = campaign_at;
                let lease_rx = &self.lease_rx;
                local.c.leadership.send_if_modified(|l| {
                    // Checked again at the moment of publishing, against the freshest lease
                    // state: the deadline guard may have just cleared `is_me`.
                    let mut leadership = leadership;
                    leadership.is_me &= lease_rx.borrow().acting(Instant::now());
                    let changed = *l != leadership;
                    if changed {
                        *l = leadership;
                    }
                    changed
                });
            }
        }
        for (group, successor) in handoffs {
            tracing::info!(%group, %successor, "etcd: preempted by a better-ranked member; handing off");
            let _ = self.resign(&group, Some(successor), false).await;
        }
        let due: Vec<GroupName> = self
            .local
            .iter()
            .filter(|(_, l)| l.campaign_at.is_some_and(|t| t <= now))
            .map(|(g, _)| g.clone())
            .collect();
        self.campaign(due).await;
    }

    fn leaders(&self) -> BTreeMap<GroupName, NodeId> {
        self.groups
            .iter()
            .filter_map(|(n, g)| Some((n.clone(), g.leader_member()?.node.clone())))
            .collect()
    }

    /// The group's live candidates (its member keys, and this node's own member) ranked by its
    /// policy; a named successor first.
    fn ranking(&self, group: &GroupName, ctx: &Ctx) -> Vec<MemberId> {
        let Ctx {
            leaders,
            services,
            leads,
        } = ctx;
        let Some(local) = self.local.get(group) else {
            return vec![];
        };
        let empty = Group::default();
        let g = self.groups.get(group).unwrap_or(&empty);
        let mut records: BTreeMap<MemberId, &baton_core::MemberRecord> = g
            .members
            .iter()
            .map(|(id, v)| (id.clone(), &v.record))
            .collect();
        records.insert(local.c.record.id.clone(), &local.c.record);
        let candidates = records
            .values()
            .map(|r| Candidate {
                member: r.id.clone(),
                started_at_ms: r.started_at_ms,
                incarnation: r.incarnation,
                hardware: r.hardware.clone(),
                labels: r.labels.clone(),
                services: services
                    .get(&r.id.node)
                    .cloned()
                    .unwrap_or_else(|| Arc::from(Vec::new())),
                leads: leads.get(&r.id.node).copied().unwrap_or(0),
                version: r.version.clone(),
            })
            .collect();
        let input = ElectionInput {
            group: group.clone(),
            candidates,
            incumbent: g.leader_member().cloned(),
            leaders: leaders.clone(),
        };
        let (mut ranking, _) = normalize_ranking(&input, local.c.policy.rank(&input));
        if let Some(s) = &g.handoff
            && let Some(i) = ranking.iter().position(|m| m == s)
        {
            let s = ranking.remove(i);
            ranking.insert(0, s);
        }
        ranking
    }

    /// What every ranking of one step reads, computed once per step (not once per group: a
    /// thousand groups would make each step quadratic).
    fn ctx(&self) -> Ctx {
        let leaders = Arc::new(self.leaders());
        let mut leads: BTreeMap<NodeId, usize> = BTreeMap::new();
        for n in leaders.values() {
            *leads.entry(n.clone()).or_default() += 1;
        }
        Ctx {
            leaders,
            services: self.services(),
            leads,
        }
    }

    /// Every node's groups (what `Candidate::services` says), computed once per step.
    fn services(&self) -> BTreeMap<NodeId, Arc<[GroupName]>> {
        let mut by_node: BTreeMap<NodeId, Vec<GroupName>> = BTreeMap::new();
        for (n, g) in &self.groups {
            let nodes: BTreeSet<&NodeId> = g.members.keys().map(|m| &m.node).collect();
            for node in nodes {
                by_node.entry(node.clone()).or_default().push(n.clone());
            }
        }
        by_node.into_iter().map(|(n, gs)| (n, gs.into())).collect()
    }

    /// Creates the leader keys of `groups` where absent (or replaces a dead holder's, see
    /// `Group::takeover`), on this node's lease. Up to [`CAMPAIGNS_PER_TXN`] groups go in one
    /// transaction — a node that ranks first in a thousand groups writes 32 transactions, not
    /// a thousand (each a raft entry: on a busy etcd a thousand of them take seconds, and
    /// delay every keepalive meanwhile). A transaction succeeds only whole: when one of its
    /// groups has a leader already, the answer reads every key of it, and the groups whose key
    /// is absent campaign again at once, one per transaction.
    async fn campaign(&mut self, groups: Vec<GroupName>) {
        let again = self.campaign_in(groups, CAMPAIGNS_PER_TXN).await;
        if !again.is_empty() {
            self.campaign_in(again, 1).await;
        }
    }

    /// [`Task::campaign`] with `per_txn` groups per transaction, up to [`IN_FLIGHT`]
    /// transactions at a time; returns the groups of a lost multi-group transaction that
    /// found their own key absent.
    async fn campaign_in(&mut self, groups: Vec<GroupName>, per_txn: usize) -> Vec<GroupName> {
        let lease = self.lease.id;
        let acting = self.lease.acting(Instant::now());
        // (group, me, takeover, compares, puts, the read of its key on a loss)
        let mut each = Vec::new();
        for group in groups {
            let Some(local) = self.local.get_mut(&group) else {
                continue;
            };
            local.campaign_at = None;
            if !acting {
                continue;
            }
            let me = local.c.record.id.clone();
            let Ok(value) = serde_json::to_vec(&LeaderValue { member: me.clone() }) else {
                continue;
            };
            let leader_key = self.keys.leader(group.as_str());
            // After a proof of death: the dead holder's key, by its revision; else: absent.
            let takeover = self.groups.get_mut(&group).and_then(|g| g.takeover.take());
            let free = match takeover {
                Some(rev) => Compare::mod_revision(leader_key.clone(), CompareOp::Equal, rev),
                None => Compare::create_revision(leader_key.clone(), CompareOp::Equal, 0),
            };
            let compares = [
                free,
                // Our member key lives on the current lease: the lease is alive in etcd.
                Compare::lease(
                    self.keys.member(group.as_str(), &me),
                    CompareOp::Equal,
                    lease,
                ),
            ];
            let puts = [
                TxnOp::put(
                    leader_key.clone(),
                    value,
                    Some(PutOptions::new().with_lease(lease)),
                ),
                TxnOp::delete(self.keys.handoff(group.as_str()), None),
            ];
            // Lost: learn the leader from the answer rather than campaign again before the
            // watch brings it.
            let get = TxnOp::get(leader_key, None);
            each.push((group, me, takeover.is_some(), compares, puts, get));
        }
        if each.is_empty() {
            return vec![];
        }
        let mut txns = Vec::new();
        let mut it = each.into_iter().peekable();
        while it.peek().is_some() {
            let chunk: Vec<_> = it.by_ref().take(per_txn.max(1)).collect();
            let mut who = Vec::new();
            let (mut compares, mut puts, mut gets) = (Vec::new(), Vec::new(), Vec::new());
            for (group, me, takeover, c, p, g) in chunk {
                who.push((group, me, takeover));
                compares.extend(c);
                puts.extend(p);
                gets.push(g);
            }
            let txn = Txn::new().when(compares).and_then(puts).or_else(gets);
            txns.push((who, txn));
        }
        let request = self.timing.request;
        let client = self.client.clone();
        let results: Vec<_> = stream::iter(txns)
            .map(|(who, txn)| {
                let mut client = client.clone();
                async move { (who, timeout(request, client.txn(txn)).await) }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut again = Vec::new();
        for (who, result) in results {
            let many = who.len() > 1;
            // The keys the answer to a lost transaction read, by key.
            let mut read: BTreeMap<Vec<u8>, KeyValue> = BTreeMap::new();
            if let Ok(Ok(r)) = &result
                && !r.succeeded()
            {
                for op in r.op_responses() {
                    if let etcd_client::TxnOpResponse::Get(get) = op {
                        for kv in get.kvs() {
                            read.insert(kv.key().to_vec(), kv.clone());
                        }
                    }
                }
            }
            for (group, me, takeover) in who {
                let held = read.get(self.keys.leader(group.as_str()).as_bytes());
                if let Some(kv) = held {
                    self.apply_put(kv);
                }
                let lost_txn = matches!(&result, Ok(Ok(r)) if !r.succeeded());
                // A lost transaction that found this group's key absent: another group of it
                // (or, for a takeover, the revocation, which was first) made it lose — this
                // group campaigns again at once.
                let absent = lost_txn && held.is_none() && (many || takeover);
                if absent && many {
                    again.push(group.clone());
                }
                let lost = !matches!(&result, Ok(Ok(r)) if r.succeeded()) && !absent;
                if let Some(local) = self.local.get_mut(&group) {
                    local.not_before =
                        lost.then(|| Instant::now() + self.backoff.max(self.timing.period / 4));
                }
                match &result {
                    Ok(Ok(r)) if r.succeeded() => {
                        let rev = r.header().map_or(0, |h| h.revision());
                        tracing::info!(%group, term = rev, takeover, "etcd: elected");
                        let g = self.groups.entry(group.clone()).or_default();
                        g.term = g.term.max(u64::try_from(rev).unwrap_or(0));
                        g.leader = Some(LeaderKv {
                            member: me,
                            mod_rev: rev,
                            lease,
                        });
                        g.handoff = None;
                    }
                    Ok(Ok(_)) => {
                        tracing::debug!(%group, absent, "etcd: campaign lost (a leader exists, or this node's lease changed)")
                    }
                    Ok(Err(e)) => tracing::debug!(%group, error = %e, "etcd: campaign failed"),
                    Err(_) => tracing::debug!(%group, "etcd: campaign timed out"),
                }
                self.dirty.insert(group);
            }
        }
        again
    }

    /// Stops acting in `group`, then hands the leader key, if it is still ours (by revision),
    /// to `successor` (default: the best-ranked other candidate) in **one transaction**: the
    /// key is replaced by one naming the successor, attached to the successor's lease — on
    /// condition that its member key still lives on that lease, i.e. that the lease is alive
    /// in etcd. The successor acts on the watch event alone (no campaign, no second write);
    /// the key's new mod revision is its fencing token. Without a live successor the key is
    /// deleted, and the group is elected as after a crash. With `leave`, this node's member
    /// key is deleted in the same transaction.
    async fn resign(
        &mut self,
        group: &GroupName,
        successor: Option<MemberId>,
        leave: bool,
    ) -> Resigned {
        let Some(local) = self.local.get(group) else {
            return Resigned::NotHeld;
        };
        let me = local.c.record.id.clone();
        let mine = self
            .groups
            .get(group)
            .and_then(|g| g.leader.clone())
            .filter(|l| l.member == me && l.lease == self.lease.id);
        // Stop acting before anyone else may start.
        local
            .c
            .leadership
            .send_if_modified(|l| std::mem::replace(&mut l.is_me, false));
        let member_key = self.keys.member(group.as_str(), &me);
        let mut ops = Vec::new();
        if leave {
            ops.push(TxnOp::delete(member_key.clone(), None));
        }
        let Some(held) = mine else {
            if !ops.is_empty() {
                let _ = timeout(
                    self.timing.request,
                    self.client.txn(Txn::new().and_then(ops)),
                )
                .await;
            }
            return Resigned::NotHeld;
        };
        let successor = successor.or_else(|| {
            self.ranking(group, &self.ctx())
                .into_iter()
                .find(|m| *m != me)
        });
        let leader_key = self.keys.leader(group.as_str());
        let ours = Compare::mod_revision(leader_key.clone(), CompareOp::Equal, held.mod_rev);
        // The successor, with the lease its member key lives on (0: not known here).
        let named = successor.and_then(|s| {
            let lease = self
                .groups
                .get(group)
                .and_then(|g| g.members.get(&s))
                .map_or(0, |v| v.lease);
            let value = serde_json::to_vec(&LeaderValue { member: s.clone() }).ok()?;
            (lease != 0).then_some((s, lease, value))
        });
        let mut handed = None;
        if let Some((s, lease, value)) = named {
            let mut put = vec![TxnOp::put(
                leader_key.clone(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )];
            put.extend(ops.iter().cloned());
            let txn = Txn::new()
                .when([
                    ours.clone(),
                    Compare::lease(
                        self.keys.member(group.as_str(), &s),
                        CompareOp::Equal,
                        lease,
                    ),
                ])
                .and_then(put);
            match timeout(self.timing.request, self.client.txn(txn)).await {
                Ok(Ok(r)) if r.succeeded() => {
                    let rev = r.header().map_or(0, |h| h.revision());
                    tracing::info!(%group, successor = %s, term = rev, "etcd: handed off");
                    handed = Some(LeaderKv {
                        member: s,
                        mod_rev: rev,
                        lease,
                    });
                }
                Ok(Ok(_)) => {
                    tracing::info!(%group, successor = %s, "etcd: the leader key or the successor changed before the handoff")
                }
                Ok(Err(e)) => tracing::warn!(%group, error = %e, "etcd: handoff failed"),
                Err(_) => tracing::warn!(%group, "etcd: handoff timed out"),
            }
        }
        if let Some(l) = handed {
            if let Some(g) = self.groups.get_mut(group) {
                g.term = g.term.max(u64::try_from(l.mod_rev).unwrap_or(0));
                g.leader = Some(l.clone());
                g.handoff = None;
            }
            self.dirty.insert(group.clone());
            return Resigned::HandedTo(l);
        }
        // No live successor (or the handoff did not go through): give the key up, if still ours.
        ops.push(TxnOp::delete(leader_key, None));
        let txn = Txn::new().when([ours]).and_then(ops);
        let outcome = match timeout(self.timing.request, self.client.txn(txn)).await {
            Ok(Ok(r)) if r.succeeded() => {
                tracing::info!(%group, "etcd: resigned (no successor to hand to)");
                if let Some(g) = self.groups.get_mut(group) {
                    g.leader = None;
                }
                Resigned::Deleted
            }
            Ok(Ok(_)) => {
                tracing::info!(%group, "etcd: the leader key changed before the resignation");
                Resigned::NotHeld
            }
            Ok(Err(e)) => {
                tracing::warn!(%group, error = %e, "etcd: resigning failed; the lease expiry ends it");
                Resigned::NotHeld
            }
            Err(_) => {
                tracing::warn!(%group, "etcd: resigning timed out; the lease expiry ends it");
                Resigned::NotHeld
            }
        };
        self.dirty.insert(group.clone());
        outcome
    }

    /// An operator's transfer to node `to` (`None`: a step-down) of `group`, decided here — by
    /// the rules of the engine's own (`core/src/engine/transfer.rs`), on this elector's view —
    /// and carried out as a kind shutdown's handoff ([`Task::resign`]): this node stops acting,
    /// then one transaction, conditioned on the leader key's revision being still ours and on
    /// the successor's member key living on the successor's lease, replaces the key by one
    /// naming the successor on that lease. The successor acts on the watch event, under the
    /// key's new mod revision. `Ok` only when that transaction succeeded.
    ///
    /// Refused (`NotLeader`) unless this node holds the key and may act; a transfer to this
    /// node is `AlreadyLeads`; to a node with no live member key in the group, `NotCandidate`
    /// (`UnknownTarget` when no group here has a member of it); a step-down with no other live
    /// member, `NoOtherCandidate`. Health is the engine's, not the elector's: not checked here.
    pub(crate) async fn hand_off(
        &mut self,
        group: &GroupName,
        to: Option<NodeId>,
    ) -> Result<HandedOff, ControlError> {
        let (me, successor, held) = self.hand_off_target(group, to.as_ref())?;
        let op = if to.is_some() {
            "transfer"
        } else {
            "step-down"
        };
        tracing::info!(%group, successor = %successor, op, "etcd: handing off on request");
        match self.resign(group, Some(successor.clone()), false).await {
            Resigned::HandedTo(l) if l.member == successor => Ok(HandedOff {
                from: me,
                to: successor,
                term: u64::try_from(held.mod_rev).unwrap_or(0),
            }),
            // The successor's member key changed meanwhile (the key was given up: the group
            // elects as after a crash), or the key was no longer ours.
            _ => Err(ControlError::LeaderChanged {
                group: group.clone(),
            }),
        }
    }

    /// [`Task::hand_off`]'s decision, changing nothing: this node's member, the successor's and
    /// the leader key this node holds; or why not (the refusals of [`Task::hand_off`]).
    fn hand_off_target(
        &self,
        group: &GroupName,
        to: Option<&NodeId>,
    ) -> Result<(MemberId, MemberId, LeaderKv), ControlError> {
        let not_leader = || ControlError::NotLeader {
            group: group.clone(),
            node: self.node.clone(),
        };
        let Some(local) = self.local.get(group) else {
            return Err(not_leader());
        };
        let me = local.c.record.id.clone();
        let acting = self.lease.acting(Instant::now()) && local.c.leadership.borrow().is_me;
        let held = self
            .groups
            .get(group)
            .and_then(|g| g.leader.clone())
            .filter(|l| l.member == me && l.lease == self.lease.id && acting);
        let Some(held) = held else {
            return Err(not_leader());
        };
        let successor = match to {
            Some(node) if *node == self.node => {
                return Err(ControlError::AlreadyLeads {
                    group: group.clone(),
                    node: node.clone(),
                });
            }
            Some(node) => {
                let found = self
                    .groups
                    .get(group)
                    .and_then(|g| g.members.keys().find(|m| m.node == *node).cloned());
                match found {
                    Some(m) => m,
                    None => {
                        let known = self
                            .groups
                            .values()
                            .any(|g| g.members.keys().any(|m| m.node == *node));
                        return Err(if known {
                            ControlError::NotCandidate {
                                group: group.clone(),
                                node: node.clone(),
                                why: NotCandidate::NotAMember,
                            }
                        } else {
                            ControlError::UnknownTarget { node: node.clone() }
                        });
                    }
                }
            }
            None => self
                .ranking(group, &self.ctx())
                .into_iter()
                .find(|m| *m != me)
                .ok_or_else(|| ControlError::NoOtherCandidate {
                    group: group.clone(),
                })?,
        };
        Ok((me, successor, held))
    }

    /// A proof of death of `incarnation` of `node` (from this node's engine): forgets the
    /// keys of the leases its member keys live on (of that incarnation or older) at once, so
    /// that the next-ranked member campaigns in this very step — replacing the dead holder's
    /// leader key by revision (`Group::takeover`) — and revokes those leases, so that every
    /// key of the dead node vanishes now instead of after the TTL. Another survivor revoking
    /// first ("lease not found") counts the same.
    fn peer_gone(&mut self, node: &NodeId, incarnation: Incarnation) {
        let leases: BTreeSet<i64> = self
            .groups
            .values()
            .flat_map(|g| g.members.iter())
            .filter(|(id, v)| {
                id.node == *node
                    && v.record.incarnation <= incarnation
                    && v.lease != 0
                    && v.lease != self.lease.id
            })
            .map(|(_, v)| v.lease)
            .collect();
        // The dead node's keys leave this node's view now. The groups it led here get a
        // takeover: the next-ranked member campaigns at once (this same step) with a
        // transaction that replaces the dead holder's leader key, conditioned on its
        // revision — it need not wait for the revocation to delete the key first.
        for (name, g) in &mut self.groups {
            if let Some(l) = &g.leader
                && leases.contains(&l.lease)
                && self.local.contains_key(name)
            {
                g.takeover = Some(l.mod_rev);
            }
        }
        for lease in &leases {
            self.forget_lease(*lease);
        }
        // Not awaited here: the task goes on meanwhile (every survivor revokes; the keys of a
        // revoked lease are gone whoever was first).
        for lease in leases {
            let mut client = self.client.clone();
            let request = self.timing.request;
            let done = self.revoked_tx.clone();
            let node = node.clone();
            tokio::spawn(async move {
                let since = Instant::now();
                let gone = match timeout(request, client.lease_revoke(lease)).await {
                    Ok(Ok(_)) => {
                        tracing::info!(peer = %node, %incarnation, lease, took = ?since.elapsed(), "etcd: revoked the lease of a peer proven dead");
                        true
                    }
                    Ok(Err(e)) if e.to_string().contains("lease not found") => {
                        tracing::debug!(peer = %node, lease, "etcd: the dead peer's lease is gone already");
                        true
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(peer = %node, lease, error = %e, "etcd: cannot revoke the dead peer's lease; it expires after its TTL");
                        false
                    }
                    Err(_) => {
                        tracing::warn!(peer = %node, lease, "etcd: revoking the dead peer's lease timed out; it expires after its TTL");
                        false
                    }
                };
                // A closed channel: the elector stopped.
                let _ = done.send((lease, gone));
            });
        }
    }

    /// Drops every key of `lease` from the view (etcd deleted them with the lease).
    fn forget_lease(&mut self, lease: i64) {
        for (name, g) in &mut self.groups {
            let before = g.members.len();
            g.members.retain(|_, v| v.lease != lease);
            let mut changed = g.members.len() != before;
            if g.leader.as_ref().is_some_and(|l| l.lease == lease) {
                g.leader = None;
                changed = true;
            }
            if g.handoff
                .as_ref()
                .is_some_and(|s| !g.members.contains_key(s) && s.node != self.node)
            {
                g.handoff = None;
                changed = true;
            }
            if changed {
                self.dirty.insert(name.clone());
            }
        }
    }

    async fn withdraw(&mut self, group: &GroupName) {
        let _ = self.resign(group, None, true).await;
        if let Some(l) = self.local.remove(group) {
            l.c.leadership.send_modify(|l| l.is_me = false);
        }
    }

    async fn shutdown(&mut self) {
        for l in self.local.values() {
            l.c.leadership
                .send_if_modified(|l| std::mem::replace(&mut l.is_me, false));
        }
        let groups: Vec<GroupName> = self.local.keys().cloned().collect();
        for g in &groups {
            let _ = self.resign(g, None, true).await;
        }
        if self.lease.id != 0 {
            let _ = timeout(self.timing.request, self.client.lease_revoke(self.lease.id)).await;
        }
        self.local.clear();
    }
}

/// Whether the lease moving from `before` to `after` (seen at `now`) changes what any group
/// publishes or does: another lease (members to write again, keys no longer ours), or the node
/// able to act on one side and not on the other. A deadline that only moved on — what every
/// answered keepalive does — changes nothing.
fn lease_changes_that_matter(before: &LeaseState, after: &LeaseState, now: Instant) -> bool {
    before.id != after.id || before.acting(now) != after.acting(now)
}

async fn next_message(
    w: &mut Option<(Watcher, WatchStream)>,
) -> Result<Option<etcd_client::WatchResponse>, etcd_client::Error> {
    match w {
        Some((_, s)) => s.message().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::{LeaseState, lease_changes_that_matter, prefix_end};
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn only_a_new_lease_or_a_change_of_acting_makes_every_group_step() {
        let now = Instant::now();
        let s = |id, until: Option<Duration>| LeaseState {
            id,
            acting_until: until.map(|d| now + d),
        };
        let ms = Duration::from_millis;
        // A keepalive answered: the deadline moves on.
        assert!(!lease_changes_that_matter(
            &s(7, Some(ms(800))),
            &s(7, Some(ms(1200))),
            now
        ));
        // The deadline had passed (the guard stopped the node acting), then an answer came.
        assert!(lease_changes_that_matter(
            &LeaseState {
                id: 7,
                acting_until: Some(now - ms(1))
            },
            &s(7, Some(ms(800))),
            now
        ));
        // Lost, and a new lease.
        assert!(lease_changes_that_matter(
            &s(7, Some(ms(800))),
            &s(0, None),
            now
        ));
        assert!(lease_changes_that_matter(
            &s(0, None),
            &s(9, Some(ms(800))),
            now
        ));
    }

    #[test]
    fn the_prefix_range_ends_after_every_key_that_starts_with_it() {
        assert_eq!(prefix_end(b"/baton/c/"), b"/baton/c0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        let end = prefix_end(b"/baton/c/");
        assert!(b"/baton/c/members/g/n#0".as_slice() < end.as_slice());
        assert!(b"/baton/c0".as_slice() >= end.as_slice());
    }
}
