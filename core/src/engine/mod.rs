//! The election and membership protocol as a **sans-IO state machine**.
//!
//! [`Engine::handle`] takes the current time and one [`Input`] (a transport event, a timer tick
//! or an API call) and returns the [`Action`]s to perform (messages to send, addresses to
//! connect to, leadership changes to publish, state to persist, work to serve).
//! [`Engine::next_deadline`] says when it next wants a [`Input::Tick`]. Nothing in here does I/O
//! or reads a clock, so the same engine runs under the tokio `Node` and under a
//! deterministic simulator with a virtual clock.
//!
//! # Protocol summary
//!
//! - **Membership**: every node heartbeats every peer each `heartbeat` with its own members,
//!   its leadership claims and the peers it knows. A peer is down after `failure_timeout`
//!   without a message, or at once on *proof* of death ([`TransportEvent::Dead`], a newer
//!   incarnation, or a `Leave`).
//! - **Election**: a member of a leaderless group ranks the live candidates with the group's
//!   policy; ranked `r`, it waits `r × backoff` then campaigns. In quorum mode it first asks
//!   for pre-votes (no state change), then for votes in `term + 1`; a majority of the static
//!   voters makes it leader. A voter grants one vote per term, never while it sees a live leader
//!   lease (or has promised its vote to another candidate whose lease may still run), and only
//!   to a candidate its own ranking allows (the favourite at once, rank `r` after `r × backoff`).
//! - **Lease**: a leader acts only while it holds a lease: the send time of a heartbeat
//!   acknowledged by a majority of voters plus `lease` (< `failure_timeout`). A voter that acks
//!   promises not to vote for another candidate for `failure_timeout` after *receiving* it, so
//!   the old leader's lease ends before any new leader can be elected (given bounded clock drift,
//!   see [`EngineConfig::lease`]). A leader that cannot renew steps down on its own.
//! - **Handoff**: a leader that leaves stops acting, then sends `StepDown` naming its successor,
//!   which campaigns at once; voters grant at once because the leader resigned.
//! - **Availability mode** (`quorum = "none"`): no votes, no leases; every side of a partition
//!   elects a leader, and when they meet the higher (term, rank) wins.

mod peers;
mod state;
#[cfg(test)]
mod tests;
mod why;

use crate::message::{
    CallError, Claim, Handoff, Heartbeat, HeartbeatAck, MemberAnnounce, Message, PeerAddr, Request,
    Response, Served, StepDown, VoteRequest, VoteResponse,
};
use crate::policy::{ByMemberId, LeaderPolicy, normalize_ranking};
use crate::transport::{
    CloseKind, DeathProof, DeathProofMode, Envelope, Fingerprint, Refusal, TransportEvent,
};
use crate::types::{
    Candidate, ElectionInput, Hardware, Labels, Leadership, MemberId, MemberRecord, NodeId, Term,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peers::{Back, Change, Contact, Down, Observed, Peer, PeerTable};
pub use state::PersistedState;
use state::{Group, LeaderView, PendingCall, PendingHeartbeat, Role};
pub use why::{NoLeader, VoterState, VoterView};

/// Periodic heartbeats carry the sender's peer list once in this many.
const PEERS_EVERY: u64 = 10;

/// Whether a leader needs a majority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quorum {
    /// Votes and leases from a majority of these voters.
    Majority(BTreeSet<NodeId>),
    /// No votes: every side of a partition elects its own leader.
    None,
}

/// Everything the engine needs to know about its node and the cluster.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This node.
    pub node: NodeId,
    /// This process's incarnation.
    pub incarnation: u64,
    /// The address peers reach this node at.
    pub addr: String,
    /// This node's hardware.
    pub hardware: Hardware,
    /// This node's labels.
    pub labels: Labels,
    /// Quorum mode and voters.
    pub quorum: Quorum,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Silence after which a peer is down.
    pub failure_timeout: Duration,
    /// How long a majority-acknowledged heartbeat lets the leader act. Must be less than
    /// `failure_timeout`; with the default (`failure_timeout − heartbeat`) the protocol stays
    /// safe while clocks run at rates within `(ft − lease) / (ft + lease)` of each other
    /// (11 % at the defaults).
    pub lease: Duration,
    /// Rank `r` waits `r × backoff` before campaigning.
    pub backoff: Duration,
    /// Default deadline for routed calls.
    pub call_timeout: Duration,
    /// Seed addresses.
    pub seeds: Vec<String>,
    /// Take candidates from an external [`Registry`](crate::Registry) (fed with
    /// [`Input::ExternalMembers`]) instead of the heartbeat-gossiped table.
    pub external_registry: bool,
    /// Seed for jitter and `any` routing (the simulator sets it; the runtime derives it).
    pub rng_seed: u64,
    /// Which proofs of death this node trusts (its own transport's and those a candidate
    /// attaches to a vote request).
    pub death_proof: DeathProofMode,
}

impl EngineConfig {
    /// A config with the protocol defaults (100 ms heartbeat, 500 ms failure timeout).
    pub fn new(node: impl Into<String>, incarnation: u64, quorum: Quorum) -> Self {
        let node = NodeId::new(node);
        EngineConfig {
            addr: node.0.clone(),
            node,
            incarnation,
            hardware: Hardware::default(),
            labels: Labels::new(),
            quorum,
            heartbeat: Duration::from_millis(100),
            failure_timeout: Duration::from_millis(500),
            lease: Duration::from_millis(400),
            backoff: Duration::from_millis(50),
            call_timeout: Duration::from_secs(5),
            seeds: vec![],
            external_registry: false,
            rng_seed: incarnation,
            death_proof: DeathProofMode::default(),
        }
    }

    /// Sets heartbeat and failure timeout, and the lease to `failure_timeout − heartbeat`.
    pub fn with_timing(mut self, heartbeat: Duration, failure_timeout: Duration) -> Self {
        self.heartbeat = heartbeat;
        self.failure_timeout = failure_timeout;
        self.lease = failure_timeout.saturating_sub(heartbeat);
        self
    }
}

/// Per-group settings.
#[derive(Clone)]
pub struct GroupSpec {
    /// Who should lead.
    pub policy: Arc<dyn LeaderPolicy>,
    /// Hand off to a better-ranked member when one appears.
    pub preempt: bool,
}

impl std::fmt::Debug for GroupSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSpec")
            .field("policy", &self.policy.name())
            .field("preempt", &self.preempt)
            .finish()
    }
}

/// Where a call being served came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallRef {
    /// A call made on this node ([`Input::Call`] with this id).
    Local(u64),
    /// A request from a peer.
    Remote {
        /// The caller.
        from: NodeId,
        /// Its request id.
        id: u64,
    },
}

/// What the engine is told.
#[derive(Clone, Debug)]
pub enum Input {
    /// Time passed (the engine asked for it through [`Engine::next_deadline`]).
    Tick,
    /// Something from the transport.
    Transport(TransportEvent),
    /// Join `group` with one instance of this node.
    Join {
        /// The group.
        group: String,
        /// Labels of this instance (merged over the node's).
        labels: Labels,
        /// Wall-clock time of the join, ms since the Unix epoch.
        started_at_ms: u64,
    },
    /// This node's instance leaves `group` (handing off if it leads).
    Leave {
        /// The group.
        group: String,
    },
    /// The members of `group` according to an external registry.
    ExternalMembers {
        /// The group.
        group: String,
        /// Its members.
        members: Vec<MemberRecord>,
    },
    /// Route `payload` to the leader of `group` (or, with `any`, to any member).
    Call {
        /// Caller-chosen id, unique on this node; answered by [`Action::CallDone`].
        id: u64,
        /// The group.
        group: String,
        /// Serve at any member, not only the leader.
        any: bool,
        /// Application bytes.
        payload: Vec<u8>,
        /// Deadline (default: now + call timeout).
        timeout: Option<Duration>,
    },
    /// The handler answered a call announced by [`Action::Serve`].
    Reply {
        /// The call.
        call: CallRef,
        /// The handler's answer.
        result: Result<Served, CallError>,
    },
    /// Kind shutdown: hand off every group this node leads, then say goodbye.
    Shutdown,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send a message.
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// Connect to an address.
    Connect {
        /// The address.
        addr: String,
    },
    /// A group's leadership as this node sees it changed.
    Leadership(Leadership),
    /// The live members of a group changed (feeds the cluster registry).
    Members {
        /// The group.
        group: String,
        /// Its live members.
        members: Vec<MemberRecord>,
    },
    /// Durably store this before performing any later action.
    Persist(PersistedState),
    /// Run the group's handler on `payload` and answer with [`Input::Reply`].
    Serve {
        /// Where the answer goes.
        call: CallRef,
        /// The group.
        group: String,
        /// The serving member (this node's).
        member: MemberId,
        /// The term this node leads under (the fencing token), 0 if not leading.
        term: Term,
        /// Whether this node leads the group.
        leader: bool,
        /// Application bytes.
        payload: Vec<u8>,
    },
    /// A call made with [`Input::Call`] ended.
    CallDone {
        /// The call's id.
        id: u64,
        /// How.
        result: Result<Served, CallError>,
    },
    /// Move this process to a new, higher incarnation (a peer refused the current one as
    /// stale after a wall-clock step back): the driver tells the transport
    /// ([`crate::Transport::reincarnate`]).
    Reincarnate {
        /// The new incarnation.
        incarnation: u64,
    },
    /// Stop this node: it must not run (another live process holds its name). The driver
    /// shuts down and reports the reason.
    Halt(Refusal),
    /// Something worth a log line (peer up/down, elections).
    Log(String),
    /// Something the operator should fix (logged as a warning): voters nobody answers for.
    Warn(String),
    /// A detail for debugging (votes asked, granted, denied and why).
    Trace(String),
}

/// A snapshot of what the engine knows, for `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// This node.
    pub node: NodeId,
    /// Every node known, this one included.
    pub members: Vec<NodeStatus>,
    /// Every group known.
    pub groups: Vec<Leadership>,
    /// Why each group without a leader has none (last on the wire: postcard is positional).
    #[serde(default)]
    pub no_leader: Vec<NoLeader>,
}

/// One node in a [`StatusSnapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its name.
    pub name: NodeId,
    /// Its address, when known.
    pub addr: Option<String>,
    /// Its incarnation.
    pub incarnation: u64,
    /// Whether it is alive in this node's view.
    pub alive: bool,
    /// The groups it has members in.
    pub groups: Vec<String>,
}

/// The sans-IO protocol state machine of one node.
pub struct Engine {
    cfg: EngineConfig,
    specs: BTreeMap<String, GroupSpec>,
    default_spec: GroupSpec,
    peers: PeerTable,
    groups: BTreeMap<String, Group>,
    local: BTreeMap<String, MemberAnnounce>,
    next_seq: u32,
    external: BTreeMap<String, Vec<MemberRecord>>,
    hb_seq: u64,
    next_heartbeat: Instant,
    pending_hb: Vec<PendingHeartbeat>,
    calls: BTreeMap<u64, PendingCall>,
    next_client_call: u64,
    dialed: BTreeMap<String, Instant>,
    abstain_until: Instant,
    shutting_down: bool,
    persist_pending: bool,
    /// Something the member table depends on changed since the last `publish`.
    members_dirty: bool,
    rng: u64,
    wake: Option<Instant>,
    out: Vec<Action>,
    published: BTreeMap<String, Leadership>,
    published_members: BTreeMap<String, Vec<MemberRecord>>,
    /// Peers refused this node as a duplicate name since then, with the last refusal; it halts
    /// when that lasts (see `on_refused`).
    refused_as_duplicate: Option<(Instant, Refusal)>,
    halted: bool,
    /// A term that cannot grow was met; logged once per group.
    term_exhausted: BTreeSet<String>,
    /// Fingerprints of authenticated peers that run other safety settings.
    conflicts: Vec<Fingerprint>,
    /// Whether this node stood aside for a conflict at the last check (logged on change).
    standing_aside: bool,
    /// Read-only diagnostics: why there is no leader, voters never seen (`why.rs`).
    diag: why::Diagnostics,
}

/// The next term after `t`, unless `t` cannot grow (terms stop below `u64::MAX`).
pub fn next_term(t: Term) -> Option<Term> {
    t.checked_add(1).filter(|n| *n < Term::MAX)
}

/// Whether a term received from a peer is one a leadership can have.
fn term_ok(t: Term) -> bool {
    t < Term::MAX
}

/// A term in `message` that no leadership can have (it could never be succeeded), if any. Such
/// a message is refused: taking it would stop every election of its group for good.
fn insane_term(message: &Message) -> Option<Term> {
    let terms: Vec<Term> = match message {
        Message::Heartbeat(hb) => hb.claims.iter().map(|c| c.term).collect(),
        Message::HeartbeatAck(ack) => ack.rejected.iter().map(|(_, t)| *t).collect(),
        Message::VoteRequest(req) => {
            let mut t = vec![req.term];
            t.extend(req.handoff.as_ref().map(|h| h.term));
            t
        }
        Message::VoteResponse(resp) => vec![resp.term, resp.known_term],
        Message::StepDown(sd) => vec![sd.term],
        _ => vec![],
    };
    terms.into_iter().find(|t| !term_ok(*t))
}

impl Engine {
    /// A new engine at time `now`. `persisted` is the term/vote state a previous process of
    /// this node stored, if any. Whatever it says, the node abstains from voting for one
    /// `failure_timeout`: promises it made before a restart are not on disk.
    pub fn new(
        cfg: EngineConfig,
        default_policy: Arc<dyn LeaderPolicy>,
        groups: BTreeMap<String, GroupSpec>,
        persisted: Option<PersistedState>,
        now: Instant,
    ) -> Self {
        let rng = cfg.rng_seed ^ 0x9E37_79B9_7F4A_7C15;
        let mut engine = Engine {
            abstain_until: now + cfg.failure_timeout,
            default_spec: GroupSpec {
                policy: default_policy,
                preempt: false,
            },
            specs: groups,
            peers: PeerTable::new(cfg.death_proof),
            groups: BTreeMap::new(),
            local: BTreeMap::new(),
            next_seq: 0,
            external: BTreeMap::new(),
            hb_seq: 0,
            next_heartbeat: now,
            pending_hb: Vec::new(),
            calls: BTreeMap::new(),
            next_client_call: 0,
            dialed: BTreeMap::new(),
            shutting_down: false,
            persist_pending: false,
            members_dirty: true,
            rng: if rng == 0 { 1 } else { rng },
            wake: None,
            out: Vec::new(),
            published: BTreeMap::new(),
            published_members: BTreeMap::new(),
            refused_as_duplicate: None,
            halted: false,
            term_exhausted: BTreeSet::new(),
            conflicts: Vec::new(),
            standing_aside: false,
            diag: why::Diagnostics::new(now),
            cfg,
        };
        if let Some(p) = persisted {
            for (name, g) in p.groups {
                let group = engine.group_mut(&name, now);
                // A vote of term t means no leadership below t can still be accepted (see
                // `on_claim`), so the term need not be stored when it rises with a won vote.
                group.term = g.term.max(g.vote.as_ref().map_or(0, |v| v.0));
                group.max_seen = g.term.max(g.vote.as_ref().map_or(0, |v| v.0));
                group.vote = g.vote;
            }
        }
        engine
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.cfg.node
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Updates the advertised address (known only once the transport has started).
    pub fn set_addr(&mut self, addr: String) {
        self.cfg.addr = addr;
    }

    /// When the engine next needs an [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Instant> {
        self.wake
    }

    /// The leadership of `group` as this node sees it at `now`.
    pub fn leadership(&self, group: &str, now: Instant) -> Leadership {
        match self.groups.get(group) {
            Some(g) => self.leadership_of(group, g, now),
            None => Leadership::none(group),
        }
    }

    /// True while this node leads `group` and may act as its leader.
    pub fn is_acting_leader(&self, group: &str, now: Instant) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| self.acting(g, now).is_some())
    }

    /// This node's member of `group`, if it joined.
    pub fn local_member(&self, group: &str) -> Option<&MemberId> {
        self.local.get(group).map(|m| &m.id)
    }

    /// The highest leadership term this node knows for `group`.
    pub fn term(&self, group: &str) -> Term {
        self.groups.get(group).map_or(0, |g| g.term)
    }

    /// What this node knows, for `status`.
    pub fn status(&self, now: Instant) -> StatusSnapshot {
        let mut members = vec![NodeStatus {
            name: self.cfg.node.clone(),
            addr: Some(self.cfg.addr.clone()),
            incarnation: self.cfg.incarnation,
            alive: !self.shutting_down,
            groups: self.local.keys().cloned().collect(),
        }];
        for (id, p) in self.peers.iter() {
            let mut groups: Vec<String> = p.members.iter().map(|m| m.group.clone()).collect();
            groups.sort();
            groups.dedup();
            members.push(NodeStatus {
                name: id.clone(),
                addr: p.addr.clone(),
                incarnation: p.incarnation,
                alive: p.is_alive(),
                groups,
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
        }
    }

    /// Feeds one input at time `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        self.expire(now);
        match input {
            Input::Tick => {}
            Input::Transport(ev) => self.on_transport(now, ev),
            Input::Join {
                group,
                labels,
                started_at_ms,
            } => self.on_join(now, group, labels, started_at_ms),
            Input::Leave { group } => self.on_leave(now, &group),
            Input::ExternalMembers { group, members } => {
                self.external.insert(group.clone(), members);
                self.members_dirty = true;
                self.group_mut(&group, now);
            }
            Input::Call {
                id,
                group,
                any,
                payload,
                timeout,
            } => self.on_call(now, id, group, any, payload, timeout),
            Input::Reply { call, result } => self.on_reply(now, call, result),
            Input::Shutdown => self.on_shutdown(now),
        }
        self.step(now);
        if self.persist_pending {
            self.persist();
        }
        std::mem::take(&mut self.out)
    }

    // ----------------------------------------------------------------- helpers

    fn majority(&self) -> usize {
        match &self.cfg.quorum {
            Quorum::Majority(v) => v.len() / 2 + 1,
            Quorum::None => 1,
        }
    }

    fn is_voter(&self, node: &NodeId) -> bool {
        match &self.cfg.quorum {
            Quorum::Majority(v) => v.contains(node),
            Quorum::None => false,
        }
    }

    fn quorum_mode(&self) -> bool {
        matches!(self.cfg.quorum, Quorum::Majority(_))
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*: small, deterministic, good enough for jitter.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn jitter(&mut self, max: Duration) -> Duration {
        let max_us = max.as_micros().max(1) as u64;
        Duration::from_micros(self.rand() % max_us)
    }

    fn want(&mut self, at: Instant) {
        self.wake = Some(match self.wake {
            Some(w) if w <= at => w,
            _ => at,
        });
    }

    fn send(&mut self, to: &NodeId, message: Message) {
        self.out.push(Action::Send {
            to: to.clone(),
            message,
        });
    }

    /// Sends `message` to every peer not proven dead.
    fn broadcast(&mut self, message: Message) {
        let targets: Vec<NodeId> = self.peers.not_dead().cloned().collect();
        for to in targets {
            self.send(&to, message.clone());
        }
    }

    fn log(&mut self, msg: String) {
        self.out.push(Action::Log(msg));
    }

    fn trace(&mut self, msg: String) {
        self.out.push(Action::Trace(msg));
    }

    /// The groups whose role on this node satisfies `pick`.
    fn groups_where(&self, pick: impl Fn(&Role) -> bool) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, g)| pick(&g.role))
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn spec(&self, group: &str) -> &GroupSpec {
        self.specs.get(group).unwrap_or(&self.default_spec)
    }

    fn group_mut(&mut self, name: &str, now: Instant) -> &mut Group {
        if !self.groups.contains_key(name) {
            self.members_dirty = true;
        }
        self.groups
            .entry(name.to_string())
            .or_insert_with(|| Group::new(now))
    }

    fn live_peers(&self) -> impl Iterator<Item = (&NodeId, &Peer)> {
        self.peers.alive()
    }

    fn node_alive(&self, node: &NodeId) -> bool {
        if *node == self.cfg.node {
            return !self.shutting_down;
        }
        self.peers.is_alive(node)
    }

    /// The live candidates of `group`, in member-id order.
    fn candidates(&self, group: &str) -> Vec<Candidate> {
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

    fn candidate_from(
        &self,
        m: &MemberAnnounce,
        incarnation: u64,
        hardware: &Hardware,
        node_labels: &Labels,
        services: Vec<String>,
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

    fn services_of(&self, node: &NodeId) -> Vec<String> {
        let mut s: Vec<String> = if *node == self.cfg.node {
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
    fn ranking(&self, group: &str) -> Vec<MemberId> {
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
            group: group.to_string(),
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

    fn leadership_of(&self, name: &str, g: &Group, now: Instant) -> Leadership {
        Leadership {
            group: name.to_string(),
            leader: g.leader.as_ref().map(|l| l.member.clone()),
            term: g.term,
            is_me: self.acting(g, now).is_some(),
        }
    }

    /// `Some(term)` while this node leads `g` and may act.
    fn acting(&self, g: &Group, now: Instant) -> Option<Term> {
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

    fn persisted(&self) -> PersistedState {
        PersistedState {
            incarnation: self.cfg.incarnation,
            groups: self
                .groups
                .iter()
                .filter(|(_, g)| g.term > 0 || g.vote.is_some())
                .map(|(name, g)| {
                    (
                        name.clone(),
                        state::PersistedGroup {
                            term: g.term,
                            vote: g.vote.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Persists now: the actions that follow (a vote's answer) depend on it being durable.
    fn persist(&mut self) {
        self.persist_pending = false;
        let p = self.persisted();
        self.out.push(Action::Persist(p));
    }

    /// Persists at the end of this input's actions: for a raised term, which no message sent
    /// in between depends on. Keeps the disk write off the path of the leadership news.
    fn persist_later(&mut self) {
        self.persist_pending = true;
    }

    // ------------------------------------------------------------ transport

    fn on_transport(&mut self, now: Instant, ev: TransportEvent) {
        match ev {
            TransportEvent::Message(env) => self.on_message(now, env),
            TransportEvent::Connected {
                node,
                incarnation,
                addr,
            } => {
                if node == self.cfg.node {
                    return;
                }
                // Somebody took this node in: whatever refused it as a duplicate was a race.
                self.refused_as_duplicate = None;
                if !self.contact(now, &node, incarnation, Contact::Connected) {
                    return;
                }
                if let Some(peer) = self.peers.get_mut(&node) {
                    peer.addr = Some(addr);
                }
                // Greet at once: the peer learns our members without waiting a period.
                let hb = self.heartbeat_message(None);
                self.send(&node, hb);
            }
            TransportEvent::Disconnected { node, how } => {
                self.peers.disconnected(&node, how);
                if how == CloseKind::Abrupt {
                    self.check_reachable_voters(now);
                }
            }
            TransportEvent::Dead {
                node,
                incarnation,
                proof,
            } => {
                if self.peers.trusts(proof) {
                    let change = self.peers.dead(now, &node, incarnation, proof);
                    self.apply_peer_changes(now, change.into_iter().collect());
                } else {
                    // A proof this node does not trust is a refused connection, nothing more.
                    self.peers.disconnected(&node, CloseKind::Abrupt);
                    self.check_reachable_voters(now);
                }
            }
            TransportEvent::ConnectFailed { .. } => {}
            TransportEvent::Refused { addr, refusal } => self.on_refused(now, addr, refusal),
            TransportEvent::Mismatch {
                addr,
                mismatch,
                theirs,
            } => {
                if !self.conflicts.contains(&theirs) {
                    self.log(format!(
                        "the node at {addr} runs other safety settings ({mismatch}); it is refused"
                    ));
                    self.conflicts.push(theirs);
                }
            }
            TransportEvent::ClientMessage(env) => self.on_client(now, env),
        }
    }

    /// Records contact with `node` in the peer table and acts on what changed; false when the
    /// contact is stale (an older or a dead incarnation's): ignore it.
    fn contact(&mut self, now: Instant, node: &NodeId, incarnation: u64, contact: Contact) -> bool {
        match self.peers.contact(now, node, incarnation, contact) {
            Observed::Stale => false,
            Observed::Current(changes) => {
                self.apply_peer_changes(now, changes);
                true
            }
        }
    }

    /// Acts on what the peer table reports: logs it, and for a peer that went down forgets
    /// its leaderships and fails the calls waiting on it.
    fn apply_peer_changes(&mut self, now: Instant, changes: Vec<Change>) {
        for change in changes {
            self.members_dirty = true;
            match change {
                Change::Up {
                    node,
                    incarnation,
                    back,
                } => self.log(match back {
                    Back::New => format!("peer {node} (incarnation {incarnation}) is up"),
                    Back::AfterSilence => {
                        format!("peer {node} (incarnation {incarnation}) is up again")
                    }
                    Back::AfterDeath { proof, ago } => format!(
                        "peer {node} (incarnation {incarnation}) was declared dead {ago:?} ago \
                         ({proof}) and is alive again: taken back"
                    ),
                }),
                Change::Down {
                    node,
                    incarnation,
                    down,
                } => {
                    self.log(match down {
                        Down::Silent => format!(
                            "peer {node} is down: silent for {:?}",
                            self.cfg.failure_timeout
                        ),
                        Down::Dead(proof) => {
                            format!("peer {node} (incarnation {incarnation}) is gone: {proof}")
                        }
                    });
                    self.forget_node_leadership(now, &node);
                    // Calls waiting on that node will never be answered.
                    self.fail_calls_to(&node);
                }
            }
        }
    }

    /// Defence in depth: a leader whose connections to so many voters were reset (or whose
    /// redials are refused without proof) that the rest are no majority stops acting at once,
    /// rather than when its lease runs out. A firewall that resets its traffic is the usual
    /// cause; the majority side elects a new leader once the old lease has lapsed.
    fn check_reachable_voters(&mut self, now: Instant) {
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
        if reachable >= self.majority() {
            return;
        }
        let leading = self.groups_where(|r| matches!(r, Role::Leader { .. }));
        let total = voters.len();
        for name in leading {
            self.log(format!(
                "group {name}: stepping down at once: only {reachable} of {total} voters are \
                 reachable (connections reset or refused)"
            ));
            self.resign(now, &name, true);
        }
    }

    /// A peer refused this node and said why.
    fn on_refused(&mut self, now: Instant, addr: String, refusal: Refusal) {
        match &refusal {
            Refusal::DuplicateName { .. } => {
                // Another live process runs under this name. Halt — but only when the refusals
                // last: a restart can beat the old process's close to a peer by a moment.
                self.log(format!("refused by {addr}: {refusal}"));
                let since = self.refused_as_duplicate.as_ref().map_or(now, |(t, _)| *t);
                self.refused_as_duplicate = Some((since, refusal));
                self.want(since + self.takeover_grace());
            }
            Refusal::StaleIncarnation { known, .. } if *known >= self.cfg.incarnation => {
                // Move above the incarnation the cluster knows (as SWIM refutes a suspicion);
                // the peer refuses this name outright while that incarnation is connected.
                let Some(new) = known.checked_add(1) else {
                    self.log(format!(
                        "refused by {addr}: {refusal}; no higher incarnation"
                    ));
                    return;
                };
                self.log(format!(
                    "refused by {addr}: {refusal}; moving from incarnation {} to {new}",
                    self.cfg.incarnation
                ));
                self.cfg.incarnation = new;
                self.members_dirty = true;
                self.out.push(Action::Reincarnate { incarnation: new });
                self.persist_later();
            }
            Refusal::StaleIncarnation { .. } | Refusal::Fingerprint(_) | Refusal::ShuttingDown => {
                self.trace(format!("refused by {addr}: {refusal}"));
            }
        }
    }

    /// A peer configuration this node met that could elect a leader of its own, if any: then
    /// this node neither leads nor votes, since two disjoint majorities — one per
    /// configuration — could each elect a leader. A configuration "could elect" when a
    /// majority of *its* voters are nodes not known to run this node's settings (this node and
    /// every peer it connected to, whose fingerprints matched). A single misconfigured node
    /// among correctly configured voters stops nobody but itself.
    fn conflicting_config(&self) -> Option<&Fingerprint> {
        if !self.quorum_mode() {
            return None;
        }
        self.conflicts.iter().find(|fp| {
            if fp.quorum != "majority" {
                // Availability mode leads on its own whatever this node does.
                return false;
            }
            let ours =
                |v: &NodeId| *v == self.cfg.node || self.peers.get(v).is_some_and(|p| !p.is_dead());
            let capable = fp.voters.iter().filter(|v| !ours(v)).count();
            capable > fp.voters.len() / 2
        })
    }

    /// Stands aside (stops leading, campaigning and voting) while a conflicting configuration
    /// could elect; logs each change.
    fn check_conflicts(&mut self, now: Instant) {
        let conflict = self.conflicting_config().cloned();
        if conflict.is_some() != self.standing_aside {
            self.standing_aside = conflict.is_some();
            match conflict {
                Some(fp) => {
                    let voters: Vec<&str> = fp.voters.iter().map(NodeId::as_str).collect();
                    self.log(format!(
                        "standing aside (no leading, no voting): nodes with other safety settings \
                         (voters [{}], quorum {}, heartbeat {} ms, failure timeout {} ms) could \
                         elect a leader of their own; give every node the same [cluster] and \
                         [timing] settings",
                        voters.join(", "),
                        fp.quorum,
                        fp.heartbeat_ms,
                        fp.failure_timeout_ms
                    ));
                }
                None => self.log(
                    "no conflicting configuration can elect any more: taking part again".into(),
                ),
            }
        }
        if self.standing_aside {
            let leading =
                self.groups_where(|r| matches!(r, Role::Leader { .. } | Role::Candidate { .. }));
            for name in leading {
                if let Some(g) = self.groups.get_mut(&name)
                    && matches!(g.role, Role::Candidate { .. })
                {
                    g.role = Role::Follower;
                    continue;
                }
                self.log(format!("group {name}: stepping down: standing aside"));
                self.resign(now, &name, true);
            }
        }
    }

    /// How long duplicate-name refusals must last before this node halts.
    fn takeover_grace(&self) -> Duration {
        self.cfg.failure_timeout + self.cfg.heartbeat
    }

    fn forget_node_leadership(&mut self, now: Instant, node: &NodeId) {
        for g in self.groups.values_mut() {
            if g.leader.as_ref().is_some_and(|l| l.member.node == *node)
                && !matches!(g.role, Role::Leader { .. })
            {
                g.leader = None;
                g.leaderless_since = Some(now);
            }
            if g.promised.as_ref().is_some_and(|(m, _)| m.node == *node) {
                g.promised = None;
            }
        }
    }

    fn fail_calls_to(&mut self, node: &NodeId) {
        let failed: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.target.as_ref().is_some_and(|t| t.node == *node))
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            if let Some(c) = self.calls.remove(&id) {
                let group = c.group.clone();
                self.finish_call(id, c, Err(CallError::LeaderChanged { group }));
            }
        }
    }

    fn on_message(&mut self, now: Instant, env: Envelope) {
        let Envelope {
            from,
            incarnation,
            message,
        } = env;
        if from == self.cfg.node {
            return;
        }
        if let Message::Leave = message {
            let change = self.peers.dead(now, &from, incarnation, DeathProof::Left);
            self.apply_peer_changes(now, change.into_iter().collect());
            return;
        }
        if let Some(term) = insane_term(&message) {
            self.trace(format!(
                "ignoring a message from {from}: term {term} cannot grow (a corrupt peer?)"
            ));
            return;
        }
        if !self.contact(now, &from, incarnation, Contact::Message) {
            return;
        }
        match message {
            Message::Heartbeat(hb) => self.on_heartbeat(now, &from, hb),
            Message::HeartbeatAck(ack) => self.on_ack(now, &from, ack),
            Message::VoteRequest(req) => self.on_vote_request(now, &from, req),
            Message::VoteResponse(resp) => self.on_vote_response(now, &from, resp),
            Message::StepDown(sd) => self.on_step_down(now, sd),
            Message::Request(req) => self.on_request(now, &from, req),
            Message::Response(resp) => self.on_response(resp),
            Message::Leave => {}
            // Client messages only count from clients (see `on_client`); a peer has no business
            // sending them, and answers to clients never travel between peers.
            Message::StatusRequest | Message::StatusResponse(_) | Message::ClientCall(_) => {}
        }
    }

    // ----------------------------------------------------------- membership

    fn heartbeat_message(&self, seq: Option<u64>) -> Message {
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

    fn on_heartbeat(&mut self, now: Instant, from: &NodeId, hb: Heartbeat) {
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

    /// Applies a leadership claim. Returns `Some(higher term)` when refused.
    fn on_claim(&mut self, now: Instant, claim: Claim) -> Option<Term> {
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
        g.leaderless_since = None;
        g.promised = None;
        let group = claim.group.clone();
        g.leader = Some(LeaderView {
            member: claim.member,
            term: claim.term,
            until: now + ft,
        });
        if raised {
            self.persist_later();
        }
        if was_leader {
            self.log(format!(
                "group {group}: stepping down, a leader with term {} exists",
                claim.term
            ));
        }
        None
    }

    fn on_ack(&mut self, now: Instant, from: &NodeId, ack: HeartbeatAck) {
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
                let msg = format!("group {group}: stepping down, {from} knows term {higher}");
                self.log(msg);
            }
        }
        if !self.is_voter(from) {
            return;
        }
        let Some(idx) = self.pending_hb.iter().position(|p| p.seq == ack.seq) else {
            return;
        };
        let rejected: BTreeSet<String> = ack.rejected.into_iter().map(|(g, _)| g).collect();
        self.pending_hb[idx].acks.insert(from.clone(), rejected);
        let pending = self.pending_hb[idx].clone();
        let majority = self.majority();
        let me = self.cfg.node.clone();
        let self_counts = self.is_voter(&me);
        let lease = self.cfg.lease;
        for (name, g) in self.groups.iter_mut() {
            if let Role::Leader { lease_until, .. } = &mut g.role {
                if !pending.claims.contains(name) {
                    continue;
                }
                let n = pending
                    .acks
                    .values()
                    .filter(|rej| !rej.contains(name))
                    .count()
                    + usize::from(self_counts);
                if n >= majority {
                    let until = pending.sent_at + lease;
                    if until > *lease_until {
                        *lease_until = until;
                    }
                }
            }
        }
    }

    fn dial(&mut self, now: Instant, addr: String) {
        if addr == self.cfg.addr {
            return;
        }
        let retry = self.cfg.failure_timeout.max(Duration::from_millis(200));
        match self.dialed.get(&addr) {
            Some(at) if now < *at + retry => {}
            _ => {
                self.dialed.insert(addr.clone(), now);
                self.out.push(Action::Connect { addr });
            }
        }
    }

    // -------------------------------------------------------------- voting

    fn on_vote_request(&mut self, now: Instant, from: &NodeId, req: VoteRequest) {
        for (node, inc, proof) in &req.dead {
            if *node != self.cfg.node && self.peers.trusts(*proof) {
                let change = self.peers.dead(now, node, *inc, *proof);
                if change.is_some() {
                    self.trace(format!(
                        "{from} proved {node} (incarnation {inc}) dead: {proof}"
                    ));
                }
                self.apply_peer_changes(now, change.into_iter().collect());
            }
        }
        let me = self.cfg.node.clone();
        let verdict = if self.is_voter(&me) {
            self.grantable(now, &req)
        } else {
            Err("not a voter")
        };
        let kind = if req.pre { "pre-vote" } else { "vote" };
        self.trace(match verdict {
            Ok(()) => format!(
                "group {}: {kind} for {} in term {} granted",
                req.group, req.candidate, req.term
            ),
            Err(why) => format!(
                "group {}: {kind} for {} in term {} denied: {why}",
                req.group, req.candidate, req.term
            ),
        });
        let granted = verdict.is_ok();
        if granted && !req.pre {
            let ft = self.cfg.failure_timeout;
            let g = self.group_mut(&req.group, now);
            g.vote = Some((req.term, req.candidate.clone()));
            g.max_seen = g.max_seen.max(req.term);
            g.promised = Some((req.candidate.clone(), now + ft));
            if matches!(g.role, Role::Candidate { .. }) {
                g.role = Role::Follower;
            }
            self.persist();
        }
        let g = self.group_mut(&req.group, now);
        let known_term = g.term.max(g.vote.as_ref().map_or(0, |v| v.0));
        self.send(
            from,
            Message::VoteResponse(VoteResponse {
                group: req.group,
                term: req.term,
                pre: req.pre,
                granted,
                known_term,
            }),
        );
    }

    fn grantable(&mut self, now: Instant, req: &VoteRequest) -> Result<(), &'static str> {
        if now < self.abstain_until || self.shutting_down {
            return Err("abstaining or shutting down");
        }
        if self.standing_aside {
            return Err("standing aside: a conflicting configuration could elect");
        }
        let backoff = self.cfg.backoff;
        let abstain_until = self.abstain_until;
        let ranking = self.ranking(&req.group);
        let acting = self
            .groups
            .get(&req.group)
            .and_then(|g| self.acting(g, now));
        let g = self.group_mut(&req.group, now);
        // Only a term above every known leadership — or exactly the term this voter already
        // voted in for this same candidate (a repeated request: the same answer again).
        let repeat = g.vote.as_ref() == Some(&(req.term, req.candidate.clone()));
        if req.term < g.term || (req.term == g.term && !repeat) {
            return Err("term not above the known term");
        }
        if let Some((t, m)) = &g.vote
            && (req.term < *t || (req.term == *t && *m != req.candidate))
        {
            return Err("already voted in that term");
        }
        let handoff_ok = req.handoff.as_ref().is_some_and(|h| {
            h.from != req.candidate
                && (g
                    .leader
                    .as_ref()
                    .is_some_and(|l| l.member == h.from && l.term == h.term)
                    // A remembered resignation counts only while no newer leadership is known:
                    // a late StepDown of an older term of the *same* member must not unlock a
                    // vote against its current leadership, whose lease rests on this node's
                    // acks (found by baton-sim).
                    || (g.resigned.as_ref() == Some(h) && h.term >= g.term)
                    || (g.leader.is_none() && h.term <= g.term))
        });
        if acting.is_some() && !handoff_ok {
            return Err("this node leads");
        }
        if let Some(l) = &g.leader
            && l.member != req.candidate
            && !handoff_ok
        {
            return Err("a live leader holds a lease");
        }
        if let Some((m, until)) = &g.promised
            && *m != req.candidate
            && now < *until
        {
            return Err("vote promised to another candidate");
        }
        if handoff_ok {
            return Ok(());
        }
        let Some(pos) = ranking.iter().position(|m| *m == req.candidate) else {
            return Err("candidate not in this view");
        };
        let since = *g.leaderless_since.get_or_insert(now);
        // Time spent abstaining does not count: the ranking's order must hold after a restart.
        let waited = now.saturating_duration_since(since.max(abstain_until));
        let allowed = if backoff.is_zero() {
            usize::MAX
        } else {
            (waited.as_micros() / backoff.as_micros()) as usize
        };
        if pos <= allowed {
            Ok(())
        } else {
            Err("a better-ranked candidate may still campaign")
        }
    }

    fn on_vote_response(&mut self, now: Instant, from: &NodeId, resp: VoteResponse) {
        if !self.is_voter(from) {
            return;
        }
        let majority = self.majority();
        let voters: BTreeSet<NodeId> = match &self.cfg.quorum {
            Quorum::Majority(v) => v.clone(),
            Quorum::None => return,
        };
        let alive: BTreeSet<NodeId> = voters
            .iter()
            .filter(|v| self.node_alive(v))
            .cloned()
            .collect();
        let g = self.group_mut(&resp.group, now);
        g.max_seen = g.max_seen.max(resp.known_term);
        let Role::Candidate {
            term,
            pre,
            ref mut grants,
            ref mut denials,
            ..
        } = g.role
        else {
            return;
        };
        if resp.term != term || resp.pre != pre {
            return;
        }
        if resp.granted {
            grants.insert(from.clone());
        } else {
            denials.insert(from.clone());
        }
        let won = grants.len() >= majority;
        let undecided = alive
            .iter()
            .filter(|v| !grants.contains(*v) && !denials.contains(*v))
            .count();
        let lost = grants.len() + undecided < majority;
        if won {
            if pre {
                self.start_vote_round(now, &resp.group, None);
            } else {
                self.become_leader(now, &resp.group);
            }
        } else if lost {
            self.abandon_campaign(now, &resp.group);
        }
    }

    // ----------------------------------------------------------- elections

    fn step(&mut self, now: Instant) {
        self.wake = None;
        if !self.conflicts.is_empty() {
            self.check_conflicts(now);
        }
        if now >= self.next_heartbeat {
            self.send_heartbeats(now);
        }
        let hb = self.next_heartbeat;
        self.want(hb);
        if let Some(t) = self.peers.next_silence(self.cfg.failure_timeout) {
            self.want(t);
        }
        if let Some((since, refusal)) = &self.refused_as_duplicate {
            let at = *since + self.takeover_grace();
            if now >= at && self.peers.alive().next().is_some() {
                // Peers accept this process: the other one with this name is the duplicate.
                self.log(format!(
                    "another process with this node's name was refused ({refusal}); this one \
                     keeps the name"
                ));
                self.refused_as_duplicate = None;
            } else if now >= at {
                if !self.halted {
                    self.halted = true;
                    let refusal = refusal.clone();
                    self.log(format!("halting: {refusal}"));
                    self.out.push(Action::Halt(refusal));
                }
            } else {
                self.want(at);
            }
        }
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in &names {
            self.step_group(now, name);
        }
        let deadlines: Vec<Instant> = self.calls.values().map(|c| c.deadline).collect();
        for d in deadlines {
            self.want(d);
        }
        self.publish(now);
        self.diagnose(now);
    }

    /// Applies timeouts: silent peers, expired leader views and leases, campaign deadlines,
    /// call deadlines.
    fn expire(&mut self, now: Instant) {
        let changes = self.peers.expire(now, self.cfg.failure_timeout);
        self.apply_peer_changes(now, changes);
        let quorum = self.quorum_mode();
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let Some(g) = self.groups.get_mut(&name) else {
                continue;
            };
            if let Some(l) = &g.leader
                && !matches!(g.role, Role::Leader { .. })
                && now >= l.until
            {
                g.leader = None;
                g.leaderless_since = Some(now);
            }
            if let Role::Leader { lease_until, term } = g.role
                && quorum
                && now >= lease_until
            {
                self.log(format!(
                    "group {name}: lease of term {term} expired without a majority, stepping down"
                ));
                self.resign(now, &name, true);
                continue;
            }
            if let Role::Candidate { deadline, .. } = g.role
                && now >= deadline
            {
                self.abandon_campaign(now, &name);
            }
        }
        let expired: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| now >= c.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(c) = self.calls.remove(&id) {
                let result = if c.target.is_none() {
                    Err(CallError::NoLeader {
                        group: c.group.clone(),
                    })
                } else {
                    Err(CallError::Timeout)
                };
                self.finish_call(id, c, result);
            }
        }
    }

    fn send_heartbeats(&mut self, now: Instant) {
        self.hb_seq += 1;
        let seq = self.hb_seq;
        let hb = self.heartbeat_message(Some(seq));
        let claims: BTreeSet<String> = match &hb {
            Message::Heartbeat(h) => h.claims.iter().map(|c| c.group.clone()).collect(),
            _ => BTreeSet::new(),
        };
        if !claims.is_empty() {
            self.pending_hb.push(PendingHeartbeat {
                seq,
                sent_at: now,
                claims,
                acks: BTreeMap::new(),
            });
            let keep = (self.cfg.failure_timeout.as_micros()
                / self.cfg.heartbeat.as_micros().max(1)) as usize
                + 2;
            if self.pending_hb.len() > keep {
                let drop = self.pending_hb.len() - keep;
                self.pending_hb.drain(..drop);
            }
        }
        self.broadcast(hb);
        // Re-dial seeds that no live peer answers for (a restarted cluster, a healed link).
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
        if self.quorum_mode() && self.is_voter(&self.cfg.node.clone()) && self.majority() == 1 {
            // A one-voter cluster is its own majority: renew at once.
            let lease = self.cfg.lease;
            for g in self.groups.values_mut() {
                if let Role::Leader { lease_until, .. } = &mut g.role {
                    *lease_until = now + lease;
                }
            }
        }
    }

    fn step_group(&mut self, now: Instant, name: &str) {
        let Some(g) = self.groups.get(name) else {
            return;
        };
        match g.role {
            Role::Leader { lease_until, .. } => {
                let check_at = g.preempt_check_at;
                if self.quorum_mode() {
                    self.want(lease_until);
                }
                if self.spec(name).preempt && now >= check_at {
                    let ranking = self.ranking(name);
                    let me = self.local.get(name).map(|m| m.id.clone());
                    if let (Some(top), Some(me)) = (ranking.first(), me)
                        && *top != me
                        && self.is_acting_leader(name, now)
                    {
                        let top = top.clone();
                        self.log(format!("group {name}: preempted by better-ranked {top}"));
                        self.resign_to(now, name, Some(top));
                        return;
                    }
                    let hb = self.cfg.heartbeat;
                    if let Some(g) = self.groups.get_mut(name) {
                        g.preempt_check_at = now + hb;
                    }
                    self.want(now + hb);
                }
            }
            Role::Candidate { deadline, .. } => self.want(deadline),
            Role::Follower => {
                if let Some(l) = &g.leader {
                    let until = l.until;
                    self.want(until);
                    return;
                }
                if self.shutting_down || self.standing_aside || !self.local.contains_key(name) {
                    return;
                }
                let handoff = g.handoff_to_me.clone();
                if let Some(h) = handoff {
                    if let Some(g) = self.groups.get_mut(name) {
                        g.handoff_to_me = None;
                    }
                    self.campaign(now, name, Some(h));
                    return;
                }
                let since = g.leaderless_since.unwrap_or(now);
                let retry_at = g.next_campaign_at;
                let ranking = self.ranking(name);
                let Some(me) = self.local.get(name).map(|m| m.id.clone()) else {
                    return;
                };
                let pos = ranking
                    .iter()
                    .position(|m| *m == me)
                    .unwrap_or(ranking.len());
                let ready = since + self.cfg.backoff * pos as u32;
                let ready = retry_at.map_or(ready, |r| r.max(ready));
                if let Some(g) = self.groups.get_mut(name)
                    && g.leaderless_since.is_none()
                {
                    g.leaderless_since = Some(since);
                }
                if now >= ready {
                    self.campaign(now, name, None);
                } else {
                    self.want(ready);
                }
            }
        }
    }

    /// The term a new campaign (or declaration) in `name` goes for: above every term known.
    /// `None`, logged once, when that term cannot grow any more.
    fn campaign_term(&mut self, now: Instant, name: &str) -> Option<Term> {
        let quorum = self.quorum_mode();
        let g = self.group_mut(name, now);
        let highest = g.term.max(g.max_seen).max(if quorum {
            g.vote.as_ref().map_or(0, |v| v.0)
        } else {
            0
        });
        let next = next_term(highest);
        if next.is_none() && self.term_exhausted.insert(name.to_string()) {
            self.log(format!(
                "group {name}: term {highest} cannot grow; this group can elect no leader"
            ));
        }
        next
    }

    fn campaign(&mut self, now: Instant, name: &str, handoff: Option<Handoff>) {
        if !self.quorum_mode() {
            // Availability mode: declare.
            let Some(term) = self.campaign_term(now, name) else {
                return;
            };
            let g = self.group_mut(name, now);
            g.max_seen = term;
            g.role = Role::Leader {
                term,
                lease_until: now,
            };
            self.become_leader(now, name);
            return;
        }
        if handoff.is_some() {
            self.start_vote_round(now, name, handoff);
            return;
        }
        let deadline = now + self.election_timeout();
        let Some(term) = self.campaign_term(now, name) else {
            return;
        };
        let g = self.group_mut(name, now);
        g.role = Role::Candidate {
            term,
            pre: true,
            grants: BTreeSet::new(),
            denials: BTreeSet::new(),
            started: now,
            deadline,
        };
        self.solicit(now, name, term, true, None);
    }

    fn election_timeout(&self) -> Duration {
        (self.cfg.failure_timeout / 2).max(self.cfg.heartbeat)
    }

    fn start_vote_round(&mut self, now: Instant, name: &str, handoff: Option<Handoff>) {
        let deadline = now + self.election_timeout();
        let pre_term = match self.group_mut(name, now).role {
            Role::Candidate {
                term, pre: true, ..
            } if handoff.is_none() => Some(term),
            _ => None,
        };
        let Some(term) = pre_term.or_else(|| self.campaign_term(now, name)) else {
            self.group_mut(name, now).role = Role::Follower;
            return;
        };
        let g = self.group_mut(name, now);
        g.max_seen = g.max_seen.max(term);
        g.role = Role::Candidate {
            term,
            pre: false,
            grants: BTreeSet::new(),
            denials: BTreeSet::new(),
            started: now,
            deadline,
        };
        self.solicit(now, name, term, false, handoff);
    }

    /// Asks every voter (and answers for itself) in a (pre-)vote round.
    fn solicit(
        &mut self,
        now: Instant,
        name: &str,
        term: Term,
        pre: bool,
        handoff: Option<Handoff>,
    ) {
        let Some(me) = self.local.get(name).map(|m| m.id.clone()) else {
            self.group_mut(name, now).role = Role::Follower;
            return;
        };
        let dead = self.peers.proofs();
        let req = VoteRequest {
            group: name.to_string(),
            term,
            candidate: me.clone(),
            handoff: handoff.clone(),
            pre,
            dead,
        };
        let voters: Vec<NodeId> = match &self.cfg.quorum {
            Quorum::Majority(v) => v.iter().cloned().collect(),
            Quorum::None => vec![],
        };
        let self_id = self.cfg.node.clone();
        for v in &voters {
            if *v == self_id {
                continue;
            }
            if self.peers.get(v).is_some_and(|p| !p.is_dead()) {
                self.send(v, Message::VoteRequest(req.clone()));
            }
        }
        self.trace(format!(
            "group {name}: asking for {} in term {term}",
            if pre { "pre-votes" } else { "votes" }
        ));
        if voters.contains(&self_id) {
            let granted = self.grantable(now, &req).is_ok();
            if granted && !pre {
                let g = self.group_mut(name, now);
                g.vote = Some((term, me));
                self.persist();
            }
            let response = VoteResponse {
                group: name.to_string(),
                term,
                pre,
                granted,
                known_term: 0,
            };
            self.on_vote_response(now, &self_id.clone(), response);
        } else {
            // Nothing to count yet; check whether the round is already lost.
            let majority = self.majority();
            let alive = voters.iter().filter(|v| self.node_alive(v)).count();
            if alive < majority {
                self.abandon_campaign(now, name);
            }
        }
    }

    fn abandon_campaign(&mut self, now: Instant, name: &str) {
        let pos = {
            let ranking = self.ranking(name);
            let me = self.local.get(name).map(|m| m.id.clone());
            me.and_then(|me| ranking.iter().position(|m| *m == me))
                .unwrap_or(0)
        };
        // Keep the ranking's order on retries: rank r retries after r × backoff plus a little
        // (a fifth of a backoff, and jitter of up to half a backoff so ties do not collide).
        let jitter = self.jitter((self.cfg.backoff / 2).max(Duration::from_millis(1)));
        let delay = self.cfg.backoff * pos as u32 + self.cfg.backoff / 5 + jitter;
        let g = self.group_mut(name, now);
        if matches!(g.role, Role::Candidate { .. }) {
            g.role = Role::Follower;
            g.next_campaign_at = Some(now + delay);
            self.trace(format!(
                "group {name}: campaign lost, retrying in {delay:?}"
            ));
        }
    }

    fn become_leader(&mut self, now: Instant, name: &str) {
        let lease = self.cfg.lease;
        let Some(me) = self.local.get(name).map(|m| m.id.clone()) else {
            return;
        };
        let ft = self.cfg.failure_timeout;
        let g = self.group_mut(name, now);
        let (term, base) = match g.role {
            Role::Candidate { term, started, .. } => (term, started),
            Role::Leader { term, .. } => (term, now),
            Role::Follower => return,
        };
        g.role = Role::Leader {
            term,
            lease_until: base + lease,
        };
        g.term = term;
        g.max_seen = g.max_seen.max(term);
        g.leader = Some(LeaderView {
            member: me,
            term,
            until: now,
        });
        g.leaderless_since = None;
        g.next_campaign_at = None;
        g.promised = None;
        g.resigned = None;
        // A new leader serves at least one failure timeout before it may preempt itself:
        // when the favourite cannot win (it is cut off from the voters), handoffs to it would
        // otherwise churn terms every few milliseconds.
        g.preempt_check_at = now + ft;
        self.persist_later();
        self.log(format!("group {name}: leading with term {term}"));
        // The application learns first (its watch), then everyone else, at once rather than at
        // the next period.
        self.publish(now);
        self.next_heartbeat = now;
        self.send_heartbeats(now);
    }

    /// Stops leading `name` and hands off to the next in the ranking.
    fn resign(&mut self, now: Instant, name: &str, lease_lost: bool) {
        let me = self.local.get(name).map(|m| m.id.clone());
        let successor = if lease_lost {
            None
        } else {
            self.ranking(name)
                .into_iter()
                .find(|m| Some(m) != me.as_ref())
        };
        self.resign_to(now, name, successor);
    }

    fn resign_to(&mut self, now: Instant, name: &str, successor: Option<MemberId>) {
        let Some(g) = self.groups.get_mut(name) else {
            return;
        };
        let Role::Leader { term, .. } = g.role else {
            return;
        };
        let Some(from) = g.leader.as_ref().map(|l| l.member.clone()) else {
            return;
        };
        // Stop acting first; only then tell the others.
        g.role = Role::Follower;
        g.leader = None;
        g.leaderless_since = Some(now);
        g.resigned = Some(Handoff {
            from: from.clone(),
            term,
        });
        g.next_campaign_at = Some(now + self.cfg.backoff);
        self.publish(now);
        let sd = StepDown {
            group: name.to_string(),
            term,
            from,
            successor,
        };
        self.broadcast(Message::StepDown(sd));
    }

    fn on_step_down(&mut self, now: Instant, sd: StepDown) {
        let me = self.local.get(&sd.group).map(|m| m.id.clone());
        let g = self.group_mut(&sd.group, now);
        if sd.term < g.term {
            return;
        }
        let matches_leader = g
            .leader
            .as_ref()
            .is_none_or(|l| l.member == sd.from && l.term == sd.term);
        if !matches_leader {
            return;
        }
        let raised = sd.term > g.term;
        g.term = g.term.max(sd.term);
        g.leader = None;
        g.leaderless_since = Some(now);
        let handoff = Handoff {
            from: sd.from,
            term: sd.term,
        };
        g.resigned = Some(handoff.clone());
        if me.is_some() && sd.successor == me && matches!(g.role, Role::Follower) {
            g.handoff_to_me = Some(handoff);
            g.next_campaign_at = None;
        }
        if raised {
            // Durable, like every rise of the term (see `on_claim`).
            self.persist_later();
        }
    }

    // ----------------------------------------------------------- membership API

    fn on_join(&mut self, now: Instant, group: String, labels: Labels, started_at_ms: u64) {
        if self.local.contains_key(&group) || self.shutting_down {
            return;
        }
        let id = MemberId {
            node: self.cfg.node.clone(),
            seq: self.next_seq,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        self.members_dirty = true;
        self.local.insert(
            group.clone(),
            MemberAnnounce {
                id,
                group: group.clone(),
                started_at_ms,
                labels,
            },
        );
        let g = self.group_mut(&group, now);
        if g.leader.is_none() && g.leaderless_since.is_none() {
            g.leaderless_since = Some(now);
        }
        // Announce at once.
        self.next_heartbeat = now;
    }

    fn on_leave(&mut self, now: Instant, group: &str) {
        if self
            .groups
            .get(group)
            .is_some_and(|g| matches!(g.role, Role::Leader { .. }))
        {
            self.resign(now, group, false);
        }
        if let Some(g) = self.groups.get_mut(group) {
            g.role = Role::Follower;
            g.handoff_to_me = None;
        }
        self.local.remove(group);
        self.members_dirty = true;
        self.next_heartbeat = now;
    }

    fn on_shutdown(&mut self, now: Instant) {
        let leading = self.groups_where(|r| matches!(r, Role::Leader { .. }));
        for name in leading {
            self.resign(now, &name, false);
        }
        self.shutting_down = true;
        self.members_dirty = true;
        for g in self.groups.values_mut() {
            g.role = Role::Follower;
        }
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.calls.remove(&id) {
                self.finish_call(id, c, Err(CallError::ShuttingDown));
            }
        }
        self.broadcast(Message::Leave);
    }

    // -------------------------------------------------------------- routing

    fn on_call(
        &mut self,
        now: Instant,
        id: u64,
        group: String,
        any: bool,
        payload: Vec<u8>,
        timeout: Option<Duration>,
    ) {
        if self.shutting_down {
            self.out.push(Action::CallDone {
                id,
                result: Err(CallError::ShuttingDown),
            });
            return;
        }
        let deadline = now + timeout.unwrap_or(self.cfg.call_timeout);
        self.calls.insert(
            id,
            PendingCall {
                group: group.clone(),
                any,
                payload,
                target: None,
                deadline,
                client: None,
            },
        );
        self.route(now, id);
    }

    /// Sends a waiting call to its target, if one is known now.
    fn route(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.target.is_some() {
            return;
        }
        let group = call.group.clone();
        let target: Option<MemberId> = if call.any {
            let cands = self.candidates(&group);
            if cands.is_empty() {
                None
            } else {
                let i = (self.rand() % cands.len() as u64) as usize;
                cands.get(i).map(|c| c.member.clone())
            }
        } else {
            self.groups
                .get(&group)
                .and_then(|g| g.leader.as_ref())
                .map(|l| l.member.clone())
        };
        let Some(target) = target else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.target = Some(target.clone());
        let any = call.any;
        if target.node == self.cfg.node {
            let payload = std::mem::take(&mut call.payload);
            self.serve_local(now, CallRef::Local(id), &group, any, payload);
        } else {
            let payload = call.payload.clone();
            self.send(
                &target.node,
                Message::Request(Request {
                    id,
                    group,
                    any,
                    payload,
                }),
            );
        }
    }

    fn serve_local(
        &mut self,
        now: Instant,
        call: CallRef,
        group: &str,
        any: bool,
        payload: Vec<u8>,
    ) {
        let Some(member) = self.local.get(group).map(|m| m.id.clone()) else {
            self.answer(
                call,
                Err(CallError::NoHandler {
                    group: group.to_string(),
                }),
            );
            return;
        };
        let acting = self.groups.get(group).and_then(|g| self.acting(g, now));
        match (acting, any) {
            (Some(term), _) => self.out.push(Action::Serve {
                call,
                group: group.to_string(),
                member,
                term,
                leader: true,
                payload,
            }),
            (None, true) => self.out.push(Action::Serve {
                call,
                group: group.to_string(),
                member,
                term: 0,
                leader: false,
                payload,
            }),
            (None, false) => self.answer(
                call,
                Err(CallError::LeaderChanged {
                    group: group.to_string(),
                }),
            ),
        }
    }

    fn answer(&mut self, call: CallRef, result: Result<Served, CallError>) {
        match call {
            CallRef::Local(id) => {
                if let Some(c) = self.calls.remove(&id) {
                    self.finish_call(id, c, result);
                }
            }
            CallRef::Remote { from, id } => {
                self.send(&from, Message::Response(Response { id, result }));
            }
        }
    }

    fn on_request(&mut self, now: Instant, from: &NodeId, req: Request) {
        if self.shutting_down {
            self.send(
                from,
                Message::Response(Response {
                    id: req.id,
                    result: Err(CallError::ShuttingDown),
                }),
            );
            return;
        }
        let call = CallRef::Remote {
            from: from.clone(),
            id: req.id,
        };
        self.serve_local(now, call, &req.group, req.any, req.payload);
    }

    fn on_reply(&mut self, _now: Instant, call: CallRef, result: Result<Served, CallError>) {
        self.answer(call, result);
    }

    fn on_response(&mut self, resp: Response) {
        if let Some(c) = self.calls.remove(&resp.id) {
            self.finish_call(resp.id, c, resp.result);
        }
    }

    /// Ends a call: a local caller gets [`Action::CallDone`], a client gets a [`Response`].
    fn finish_call(&mut self, id: u64, call: PendingCall, result: Result<Served, CallError>) {
        match call.client {
            Some((from, client_id)) => self.send(
                &from,
                Message::Response(Response {
                    id: client_id,
                    result,
                }),
            ),
            None => self.out.push(Action::CallDone { id, result }),
        }
    }

    /// A message from an authenticated client (not a peer): answer it, keep no peer state.
    fn on_client(&mut self, now: Instant, env: Envelope) {
        match env.message {
            Message::StatusRequest => {
                let status = self.status(now);
                self.send(&env.from, Message::StatusResponse(status));
            }
            Message::ClientCall(req) => {
                // Client calls get ids of their own, far above the runtime's.
                self.next_client_call = self.next_client_call.wrapping_add(1);
                let id = (1 << 63) | self.next_client_call;
                let deadline = now + self.cfg.call_timeout;
                if self.shutting_down {
                    let err = Response {
                        id: req.id,
                        result: Err(CallError::ShuttingDown),
                    };
                    self.send(&env.from, Message::Response(err));
                    return;
                }
                self.calls.insert(
                    id,
                    PendingCall {
                        group: req.group,
                        any: req.any,
                        payload: req.payload,
                        target: None,
                        deadline,
                        client: Some((env.from, req.id)),
                    },
                );
                self.route(now, id);
            }
            _ => {}
        }
    }

    // -------------------------------------------------------------- publish

    /// Emits leadership and membership changes, and routes calls waiting for a leader.
    fn publish(&mut self, now: Instant) {
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in &names {
            let Some(g) = self.groups.get(name) else {
                continue;
            };
            let l = self.leadership_of(name, g, now);
            if self.published.get(name) != Some(&l) {
                self.published.insert(name.clone(), l.clone());
                self.out.push(Action::Leadership(l));
            }
            if !self.members_dirty {
                continue;
            }
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
        self.members_dirty = false;
        let waiting: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.target.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.route(now, id);
        }
    }
}
