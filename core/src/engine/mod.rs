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
//!
//! # Where each rule lives
//!
//! `mod.rs` holds the [`Engine`], its dispatch ([`Engine::handle`]) and its small read-only
//! queries; every protocol rule sits in the module of its concern:
//!
//! | module       | concern                                                                  |
//! |--------------|--------------------------------------------------------------------------|
//! | `config`     | [`EngineConfig`], [`Quorum`], [`GroupSpec`], the [`defaults`]            |
//! | `api`        | [`Input`], [`Action`], [`CallRef`]; `event`: the typed [`Event`]s        |
//! | `peers`      | the liveness table (alive, silent, dead; links reset)                    |
//! | `group`      | a group's state: its role, the [`Round`] of a campaign, terms           |
//! | `quorum`     | majority arithmetic: won, lost or pending                                |
//! | `ranking`    | live candidates and the policy's ranking                                 |
//! | `membership` | joins, leaves, shutdown, peers up and down, what is published            |
//! | `heartbeat`  | heartbeats, the members and claims they carry, discovery                 |
//! | `lease`      | claims accepted, acks counted, leases renewed and lost                   |
//! | `views`      | a follower's views renewed as one by heartbeats that change nothing      |
//! | `vote`       | the voter side: one [`Denial`] per rule                                  |
//! | `election`   | the candidate side: one step function per role                           |
//! | `handoff`    | resigning, naming a successor, `StepDown`                                |
//! | `transfer`   | transfer and step-down on request, health: who may be handed to          |
//! | `identity`   | refusals (duplicate names, stale incarnations), conflicting settings     |
//! | `routing`    | the calls table and its [`CallKey`]s, serving and answering calls        |
//! | `elected`    | leaders an elector outside the engine decided (etcd), for routing        |
//! | `outbox`     | sending; one message per destination per input (`Message::Batch`) both ways |
//! | `timers`     | the table of timer kinds, and the passes that fire them and step          |
//! | `schedule`   | which groups an input steps: the changed, the due; a timer queue per group |
//! | `persist`    | what survives a restart, and when it is written                          |
//! | `status`     | the read-only [`StatusSnapshot`] (`baton status`)                        |
//! | `why`        | read-only diagnostics: why there is no leader, voters never seen         |

mod api;
mod config;
mod elected;
mod election;
mod event;
mod group;
mod handoff;
mod heartbeat;
mod identity;
mod lease;
mod membership;
mod outbox;
mod peers;
mod persist;
mod quorum;
mod ranking;
mod release;
mod routing;
mod schedule;
mod status;
#[cfg(test)]
mod tests;
mod timers;
mod transfer;
mod views;
mod vote;
mod why;

use crate::message::{
    CallError, Claim, Handoff, Heartbeat, HeartbeatAck, MemberAnnounce, Message, NodeState,
    PeerAddr, Request, Resignation, Response, Served, StepDown, VoteRequest, VoteResponse,
};
use crate::policy::{ByMemberId, LeaderPolicy, normalize_ranking};
use crate::transport::{
    CloseKind, DeathProof, Envelope, Fingerprint, FingerprintMismatch, Refusal, TransportEvent,
};
use crate::types::{
    Candidate, ElectionInput, GroupName, Hardware, Incarnation, Labels, Leadership, MemberId,
    MemberRecord, NodeId, Term,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use api::{Action, CallRef, Input, Joining, Level};
pub use config::{EngineConfig, GroupSpec, Quorum, defaults};
pub use event::Event;
pub use group::{Round, next_term};
pub use handoff::StepDownReason;
// The status types are wire types: they live in `message`, and are re-exported here for the
// paths (`baton_core::engine::StatusSnapshot`) callers already use.
pub use crate::message::{NoLeader, NodeStatus, StatusSnapshot, VoterState, VoterView};
pub use persist::{PersistedGroup, PersistedState};
pub use vote::Denial;

use group::{Group, LeaderView, Role, insane_term};
use handoff::Resign;
use peers::{Back, Change, Contact, Down, Observed, Peer, PeerTable};
pub use routing::CallKey;
use routing::{Calls, Reach};
use timers::Timer;

/// The sans-IO protocol state machine of one node.
pub struct Engine {
    cfg: EngineConfig,
    specs: BTreeMap<GroupName, GroupSpec>,
    default_spec: GroupSpec,
    peers: PeerTable,
    groups: BTreeMap<GroupName, Group>,
    local: BTreeMap<GroupName, MemberAnnounce>,
    next_seq: u32,
    external: BTreeMap<GroupName, Vec<MemberRecord>>,
    hb_seq: u64,
    /// The announced state last built (`refresh_state`) and its version.
    announced: Option<NodeState>,
    version: u64,
    next_heartbeat: Instant,
    /// The version each claim appeared in, heartbeats awaiting acks, the node's lease.
    lease: lease::NodeLease,
    calls: Calls,
    dialed: BTreeMap<String, Instant>,
    abstain_until: Instant,
    shutting_down: bool,
    persist_pending: bool,
    /// The groups whose member tables changed since the last `publish`.
    members_dirty: membership::MembersDirty,
    /// The candidates and rankings as last made, and what makes them stale (`ranking.rs`).
    ranks: ranking::Rankings,
    /// Seeded from `EngineConfig::rng_seed`: jitter and `any` routing, reproducible in the sim.
    rng: fastrand::Rng,
    /// The retry jitter drawn at this instant, shared by every campaign given up in one input
    /// (see `abandon_campaign`).
    retry_jitter: Option<(Instant, Duration)>,
    /// The wait per rank as computed for input `.0` (`Engine::rank_backoff`).
    rank_backoff: std::cell::Cell<Option<(u64, Duration)>>,
    /// The earliest timer wanted, and its kind.
    wake: Option<(Instant, Timer)>,
    out: Vec<Action>,
    published: BTreeMap<GroupName, Leadership>,
    published_members: BTreeMap<GroupName, Vec<MemberRecord>>,
    /// Peers refused this node as a duplicate name since then, with the last refusal; it halts
    /// when that lasts (see `on_refused`).
    refused_as_duplicate: Option<(Instant, Refusal)>,
    halted: bool,
    /// A term that cannot grow was met; logged once per group.
    term_exhausted: BTreeSet<GroupName>,
    /// Fingerprints of authenticated peers that run other safety settings.
    conflicts: Vec<Fingerprint>,
    /// Whether this node stood aside for a conflict at the last check (logged on change).
    standing_aside: bool,
    /// Read-only diagnostics: why there is no leader, voters never seen (`why.rs`).
    diag: why::Diagnostics,
    /// Groups whose leader work the driver is releasing before a handoff (`release.rs`).
    releasing: BTreeMap<GroupName, release::Releasing>,
    /// Which groups the next step visits, and each group's next timer (`schedule.rs`).
    schedule: schedule::Schedule,
}

impl Engine {
    /// A new engine at time `now`. `persisted` is the term/vote state a previous process of
    /// this node stored, if any. Whatever it says, the node abstains from voting for one
    /// `failure_timeout`: promises it made before a restart are not on disk.
    pub fn new(
        cfg: EngineConfig,
        default_policy: Arc<dyn LeaderPolicy>,
        groups: BTreeMap<GroupName, GroupSpec>,
        persisted: Option<PersistedState>,
        now: Instant,
    ) -> Self {
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
            announced: None,
            version: 0,
            next_heartbeat: now,
            lease: lease::NodeLease::default(),
            calls: Calls::default(),
            dialed: BTreeMap::new(),
            shutting_down: false,
            persist_pending: false,
            members_dirty: membership::MembersDirty::All,
            ranks: ranking::Rankings::default(),
            rng: fastrand::Rng::with_seed(cfg.rng_seed),
            retry_jitter: None,
            rank_backoff: std::cell::Cell::new(None),
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
            releasing: BTreeMap::new(),
            schedule: schedule::Schedule::default(),
            cfg,
        };
        engine.ranks.shared = std::iter::once(&engine.default_spec)
            .chain(engine.specs.values())
            .any(|s| s.policy.reads_other_groups());
        if let Some(p) = persisted {
            engine.restore(p, now);
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
        self.wake.map(|(at, _)| at)
    }

    /// The leadership of `group` as this node sees it at `now`.
    pub fn leadership(&self, group: &str, now: Instant) -> Leadership {
        match self.groups.get_key_value(group) {
            Some((name, g)) => self.leadership_of(name, g, now),
            None => Leadership::none(group),
        }
    }

    /// True while this node leads `group` and may act as its leader.
    pub fn is_acting_leader(&self, group: &str, now: Instant) -> bool {
        self.acting_in(group, now).is_some()
    }

    /// This node's member of `group`, if it joined.
    pub fn local_member(&self, group: &str) -> Option<&MemberId> {
        self.local.get(group).map(|m| &m.id)
    }

    /// The highest leadership term this node knows for `group`.
    pub fn term(&self, group: &str) -> Term {
        self.groups.get(group).map_or(0, |g| g.term)
    }

    /// Feeds one input at time `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        self.ranks.input += 1;
        self.ranks.now = Some(now);
        self.expire(now, matches!(input, Input::Tick));
        match input {
            Input::Tick => {}
            Input::Transport(ev) => self.on_transport(now, ev),
            Input::Join {
                group,
                labels,
                started_at_ms,
            } => self.on_join(now, group, labels, started_at_ms),
            Input::JoinMany(joins) => {
                for j in joins {
                    self.on_join(now, j.group, j.labels, j.started_at_ms);
                }
            }
            Input::Leave { group } => self.on_leave(now, &group),
            Input::ExternalMembers { group, members } => {
                self.on_external_members(now, group, members)
            }
            Input::Call {
                id,
                group,
                any,
                payload,
                timeout,
            } => self.on_call(now, id, group, Reach::of(any), payload, timeout),
            Input::Reply { call, result } => self.on_reply(now, call, result),
            Input::Shutdown => self.on_shutdown(now),
            Input::Control {
                id,
                group,
                op,
                timeout,
            } => self.on_control(now, id, group, op, timeout),
            Input::SetHealth { group, healthy } => self.on_set_health(now, &group, healthy),
            Input::Released { group, term } => self.on_released(now, &group, term),
        }
        self.step(now);
        if self.persist_pending {
            self.persist();
        }
        let mut out = outbox::coalesce(std::mem::take(&mut self.out), |to| {
            self.peers.get(to).is_some()
        });
        self.fill_persists(&mut out);
        out
    }

    /// Dispatches a transport event to the concern it belongs to.
    fn on_transport(&mut self, now: Instant, ev: TransportEvent) {
        match ev {
            TransportEvent::Message(env) => self.on_message(now, env),
            TransportEvent::Connected {
                node,
                incarnation,
                addr,
            } => self.on_connected(now, node, incarnation, addr),
            TransportEvent::Disconnected { node, how } => self.on_disconnected(now, &node, how),
            TransportEvent::Dead {
                node,
                incarnation,
                proof,
            } => self.on_dead(now, &node, incarnation, proof),
            TransportEvent::ConnectFailed { .. } => {}
            TransportEvent::Refused { addr, refusal } => self.on_refused(now, addr, refusal),
            TransportEvent::Mismatch {
                addr,
                mismatch,
                theirs,
            } => self.on_mismatch(addr, mismatch, theirs),
            TransportEvent::ClientMessage(env) => self.on_client(now, env),
        }
    }

    /// Dispatches a peer's message, once the peer table admits it (`admits`).
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
            self.on_left(now, &from, incarnation);
            return;
        }
        if let Message::Batch(messages) = message {
            self.on_batch(now, &from, incarnation, messages);
            return;
        }
        if !self.admits(now, &from, incarnation, &message) {
            return;
        }
        match message {
            Message::Heartbeat(hb) => self.on_heartbeat(now, &from, hb),
            Message::HeartbeatAck(ack) => self.on_ack(now, &from, ack),
            Message::VoteRequest(req) => self.on_vote_request(now, &from, req),
            Message::VoteResponse(resp) => self.on_vote_response(now, &from, resp),
            Message::StepDown(sd) => self.on_step_down(now, sd),
            Message::Request(req) => self.on_request(now, &from, req),
            Message::Response(resp) => self.on_response(now, &from, resp),
            Message::Control(req) => self.on_control_request(now, &from, req),
            Message::ControlResponse(resp) => self.on_control_response(&from, resp),
            Message::Leave | Message::Batch(_) => {}
            // Client messages only count from clients (see `on_client`); a peer has no business
            // sending them, and answers to clients never travel between peers.
            Message::StatusRequest
            | Message::StatusResponse(_)
            | Message::ClientCall(_)
            | Message::ClientControl(_) => {}
        }
    }
}
