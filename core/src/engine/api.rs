//! The engine's interface: what it is told ([`Input`]) and what it asks its driver to do
//! ([`Action`]), with the typed [`Event`]s it reports.

use super::event::Event;
use super::persist::PersistedState;
use super::routing::CallKey;
use crate::message::{CallError, ControlError, ControlOp, HandedOff, Message, Served};
use crate::transport::{Refusal, TransportEvent};
use crate::types::{
    GroupName, Incarnation, Labels, Leadership, MemberId, MemberRecord, NodeId, Term,
};
use std::time::Duration;

/// Where a call being served came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallRef {
    /// A call of this node's calls table — made here ([`Input::Call`]) or by a client — under
    /// the key the engine gave it (not the caller's id).
    Local(CallKey),
    /// A request from a peer.
    Remote {
        /// The caller.
        from: NodeId,
        /// Its request id.
        id: u64,
    },
}

/// One group to join in [`Input::JoinMany`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joining {
    /// The group.
    pub group: GroupName,
    /// Labels of this instance (merged over the node's).
    pub labels: Labels,
    /// Wall-clock time of the join, ms since the Unix epoch.
    pub started_at_ms: u64,
}

/// What the engine is told.
#[derive(Clone, Debug)]
pub enum Input {
    /// Time passed (the engine asked for it through
    /// [`Engine::next_deadline`](super::Engine::next_deadline)).
    Tick,
    /// Something from the transport.
    Transport(TransportEvent),
    /// Join `group` with one instance of this node.
    Join {
        /// The group.
        group: GroupName,
        /// Labels of this instance (merged over the node's).
        labels: Labels,
        /// Wall-clock time of the join, ms since the Unix epoch.
        started_at_ms: u64,
    },
    /// Joins many groups at once, one instance in each (in order; a group already joined is
    /// skipped). One input for all of them, so a node joining a thousand groups at start-up
    /// ranks and announces once, not a thousand times.
    JoinMany(Vec<Joining>),
    /// This node's instance leaves `group` (handing off if it leads).
    Leave {
        /// The group.
        group: GroupName,
    },
    /// The members of `group` according to an external registry.
    ExternalMembers {
        /// The group.
        group: GroupName,
        /// Its members.
        members: Vec<MemberRecord>,
    },
    /// Route `payload` to the leader of `group` (or, with `any`, to any member).
    Call {
        /// Caller-chosen id, unique on this node; answered by [`Action::CallDone`].
        id: u64,
        /// The group.
        group: GroupName,
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
    /// Ask the leader of `group` — this node or, routed like a call, the leader it knows — to
    /// hand leadership off ([`ControlOp::Transfer`] to a named node, [`ControlOp::StepDown`]
    /// to the next in its ranking). Answered by [`Action::ControlDone`].
    Control {
        /// Caller-chosen id, unique on this node among calls and control requests.
        id: u64,
        /// The group.
        group: GroupName,
        /// What to do.
        op: ControlOp,
        /// Deadline for finding the leader and its answer (default: the call timeout).
        timeout: Option<Duration>,
    },
    /// This node's member of `group` is healthy or not. An unhealthy member is no candidate
    /// (announced with the node's state); an unhealthy leader hands off at once.
    SetHealth {
        /// The group.
        group: GroupName,
        /// Whether the member is healthy.
        healthy: bool,
    },
    /// The driver released the leader work of `group` it was asked to by
    /// [`Action::Release`] (under `term`): the handoff waiting for it goes on.
    Released {
        /// The group.
        group: GroupName,
        /// The term of the [`Action::Release`].
        term: Term,
    },
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
        group: GroupName,
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
        group: GroupName,
        /// The serving member (this node's).
        member: MemberId,
        /// The term this node leads under (the fencing token), 0 if not leading.
        term: Term,
        /// Whether this node leads the group.
        leader: bool,
        /// Application bytes.
        payload: Vec<u8>,
    },
    /// A control request made with [`Input::Control`] ended.
    ControlDone {
        /// The request's id.
        id: u64,
        /// How: the handoff made, or why not.
        result: Result<HandedOff, ControlError>,
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
        incarnation: Incarnation,
    },
    /// Stop this node: it must not run (another live process holds its name). The driver
    /// shuts down and reports the reason.
    Halt(Refusal),
    /// Something worth telling the operator — a peer up or down, an election, a vote denied and
    /// why — as a typed [`Event`]: its [`Event::level`] says how loud, its `Display` the line.
    Event(Event),
    /// Only with [`EngineConfig::release_first`](super::EngineConfig::release_first): this
    /// node leads `group` under `term` and is about to hand it off on request (transfer, step
    /// down) or for ill health. Stop the group's leader work — this node still leads and
    /// heartbeats meanwhile — and answer with [`Input::Released`]; only then is the successor
    /// told to take over.
    Release {
        /// The group.
        group: GroupName,
        /// Its term.
        term: Term,
    },
    /// A transfer or step-down of a group whose leadership an elector outside the engine
    /// decides ([`Engine::elected`](super::Engine::elected)): this node leads it under `term`
    /// as the elector published, and the engine granted the request as far as it can judge
    /// (`transfer.rs`). Have the elector carry it out — with `release`, after the group's
    /// leader work has stopped, as for [`Action::Release`] — without blocking the driver, and
    /// hand its answer back, with `reply_to` and `id` as they are, to
    /// [`Engine::elector_handed_off`](super::Engine::elector_handed_off).
    ElectorHandOff {
        /// The group.
        group: GroupName,
        /// The successor's node (a transfer); `None`: a step-down, the elector picks the
        /// best-ranked other live member of its own ranking.
        to: Option<NodeId>,
        /// The term this node leads under as the elector published it (the fencing token).
        term: Term,
        /// Release the group's leader work before anything changes
        /// ([`EngineConfig::release_first`](super::EngineConfig::release_first)).
        release: bool,
        /// Where the answer goes: `None`, a request made on this node (answered by
        /// [`Action::ControlDone`] with `id`); `Some(node)`, one that peer routed here or its
        /// client made (answered by a `ControlResponse` with `id`).
        reply_to: Option<NodeId>,
        /// The request's id, as `reply_to` knows it.
        id: u64,
    },
}

/// How loud an [`Event`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A detail for debugging (votes asked, granted, denied and why).
    Debug,
    /// Worth a log line (peers up and down, elections, step-downs).
    Info,
    /// Something the operator should fix.
    Warn,
}
