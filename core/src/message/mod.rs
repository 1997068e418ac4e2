//! The protocol's messages. Transports carry them; the TCP transport encodes them with postcard.
//!
//! postcard is not self-describing: add enum variants and struct fields **only at the end**, and
//! bump [`PROTOCOL_VERSION`] whenever a message changes shape.
//!
//! One wire enum, [`Message`], frames everything; its payloads live by who sends them:
//!
//! - [`peer`]: between nodes of one cluster (heartbeats, votes, handoffs);
//! - [`client`]: what a client asks a node and is told (status, why no leader);
//! - [`call`]: routed work, which peers route and clients send alike;
//! - [`control`]: transfer and step-down requests for a group's leader, routed like work.
//!
//! This module depends on no engine type: the engine imports from here, never the reverse.

pub mod call;
pub mod client;
pub mod control;
pub mod peer;

pub use call::{CallError, Request, Response, Served};
pub use client::{NoLeader, NodeStatus, StatusSnapshot, VoterState, VoterView};
pub use control::{
    ControlError, ControlOp, ControlRequest, ControlResponse, HandedOff, NotCandidate,
};
pub use peer::{
    Claim, Handoff, Heartbeat, HeartbeatAck, MemberAnnounce, NodeState, PeerAddr, Resignation,
    StepDown, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

/// Version of the message set below; peers with another version are refused at the handshake.
pub const PROTOCOL_VERSION: u16 = 2;

/// Every message one node sends another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Periodic liveness + membership + leadership claims.
    Heartbeat(Heartbeat),
    /// A voter's acknowledgement of a heartbeat that carried leadership claims (renews leases).
    HeartbeatAck(HeartbeatAck),
    /// A candidate asks for a vote.
    VoteRequest(VoteRequest),
    /// A voter's answer.
    VoteResponse(VoteResponse),
    /// A leader resigns a group, naming its successor.
    StepDown(StepDown),
    /// Work routed to a group's leader.
    Request(Request),
    /// The answer to a [`Request`].
    Response(Response),
    /// The node leaves the cluster on purpose (kind shutdown): forget it now.
    Leave,
    // ---- client messages (from `baton status` / `baton work`, never between peers) ----
    /// From a client (`baton status`): what does this node know?
    StatusRequest,
    /// The answer to [`Message::StatusRequest`].
    StatusResponse(StatusSnapshot),
    /// From a client (`baton work`): route this to the group's leader (or, with `any`, to any
    /// member) and answer with a [`Response`] carrying the request's id.
    ClientCall(Request),
    /// Several peer messages to one destination, made in one step of the sender's engine and
    /// meant to be handled in this order (see `core/src/engine/outbox.rs`): a cold start or the
    /// failover of many groups costs one message per destination, not one per group. Never
    /// nested, never carries [`Message::Leave`] or client messages; a receiver ignores those
    /// inside one.
    Batch(Vec<Message>),
    /// From a client (`baton transfer`, `baton step-down`): route this control request to the
    /// group's leader and answer with a [`ControlResponse`] carrying the request's id.
    ClientControl(ControlRequest),
    /// A control request routed to the group's leader (by the node a client or the API asked).
    Control(ControlRequest),
    /// The answer to a [`Message::Control`] or [`Message::ClientControl`].
    ControlResponse(ControlResponse),
}

impl Message {
    /// The messages this one carries: a [`Message::Batch`]'s parts, in order, or itself.
    pub fn parts(&self) -> &[Message] {
        match self {
            Message::Batch(parts) => parts,
            other => std::slice::from_ref(other),
        }
    }

    /// Whether this is a client message ([`Message::StatusRequest`], [`Message::StatusResponse`],
    /// [`Message::ClientCall`], [`Message::ClientControl`]): those count only from clients, never
    /// from peers.
    pub fn is_client(&self) -> bool {
        matches!(
            self,
            Message::StatusRequest
                | Message::StatusResponse(_)
                | Message::ClientCall(_)
                | Message::ClientControl(_)
        )
    }
}
