//! The protocol's messages. Transports carry them; the TCP transport encodes them with postcard.
//!
//! postcard is not self-describing: add enum variants and struct fields **only at the end**, and
//! bump [`PROTOCOL_VERSION`] whenever a message changes shape.

use crate::engine::StatusSnapshot;
use crate::transport::DeathProof;
use crate::types::{Hardware, Labels, MemberId, NodeId, Term};
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
    /// From a client (`baton status`): what does this node know?
    StatusRequest,
    /// The answer to [`Message::StatusRequest`].
    StatusResponse(StatusSnapshot),
    /// From a client (`baton work`): route this to the group's leader (or, with `any`, to any
    /// member) and answer with a [`Response`] carrying the request's id.
    ClientCall(Request),
}

/// Sent to every peer each `heartbeat_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Sequence number, echoed by [`HeartbeatAck`].
    pub seq: u64,
    /// The address peers reach the sender at.
    pub addr: String,
    /// Hardware of the sender.
    pub hardware: Hardware,
    /// Labels of the sender.
    pub labels: Labels,
    /// The sender's own members.
    pub members: Vec<MemberAnnounce>,
    /// Groups the sender leads, with their terms.
    pub claims: Vec<Claim>,
    /// Peers the sender knows, so that nodes meeting through one seed find all the others.
    pub peers: Vec<PeerAddr>,
}

/// One of the sender's members, as announced in a heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberAnnounce {
    /// The member.
    pub id: MemberId,
    /// Its group.
    pub group: String,
    /// Wall-clock join time, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Labels given at join (merged over the node's labels).
    pub labels: Labels,
}

/// "I lead `group` with `member` under `term`."
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The group.
    pub group: String,
    /// The leadership's term.
    pub term: Term,
    /// The leading member.
    pub member: MemberId,
}

/// A peer's name and address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerAddr {
    /// The peer.
    pub node: NodeId,
    /// Its address.
    pub addr: String,
}

/// Acknowledges heartbeat `seq`. A voter that acks promises not to vote for another leader of
/// the claimed groups for `failure_timeout` after it received the heartbeat — except for groups
/// listed in `rejected`, whose claims it refused because it knows a higher term.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// The acknowledged heartbeat.
    pub seq: u64,
    /// Claims refused: (group, the higher term the voter knows).
    pub rejected: Vec<(String, Term)>,
}

/// A resignation a successor presents to voters so they need not wait for the old lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    /// The member that resigned.
    pub from: MemberId,
    /// The term it resigned.
    pub term: Term,
}

/// A candidate asks for a vote in `term`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteRequest {
    /// The group.
    pub group: String,
    /// The term campaigned for.
    pub term: Term,
    /// The candidate member.
    pub candidate: MemberId,
    /// Set when the previous leader named this candidate its successor.
    pub handoff: Option<Handoff>,
    /// A pre-vote: "would you vote for me?" — changes no state. A candidate only bumps the
    /// term once a majority would grant, so an isolated node never disrupts a healthy leader.
    pub pre: bool,
    /// Incarnations the candidate has proof are dead, with the kind of proof: voters apply a
    /// proof their own `death_proof` mode trusts at once instead of racing their own detection.
    pub dead: Vec<(NodeId, u64, DeathProof)>,
}

/// A voter's answer to a [`VoteRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteResponse {
    /// The group.
    pub group: String,
    /// The term asked for.
    pub term: Term,
    /// Answer to a pre-vote.
    pub pre: bool,
    /// Whether the vote was granted.
    pub granted: bool,
    /// The highest term the voter has voted in or seen lead, so a candidate can catch up.
    pub known_term: Term,
}

/// A leader resigns `group` at `term`; `successor` should campaign at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepDown {
    /// The group.
    pub group: String,
    /// The resigned term.
    pub term: Term,
    /// The member that resigned.
    pub from: MemberId,
    /// The next in the leader's ranking, if any.
    pub successor: Option<MemberId>,
}

/// Work routed to a group's leader (or, with `any`, to any member).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Caller-chosen id, echoed in the [`Response`].
    pub id: u64,
    /// The group.
    pub group: String,
    /// Serve even when not the leader (the seed demo's `simple_work`).
    pub any: bool,
    /// Application bytes.
    pub payload: Vec<u8>,
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// What happened.
    pub result: Result<Served, CallError>,
}

/// A request served: by whom, under which term, and the handler's reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// The member that served it.
    pub member: MemberId,
    /// The term it led under when it accepted the request (0 for an `any` call by a non-leader).
    pub term: Term,
    /// Whether the server was the leader when it accepted the request.
    pub leader: bool,
    /// The handler's reply.
    pub payload: Vec<u8>,
}

/// Why a routed call failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CallError {
    /// No leader of the group is known.
    #[error("group {group:?} has no leader")]
    NoLeader {
        /// The group.
        group: String,
    },
    /// The call reached a node that no longer leads, or the leader went away mid-call.
    #[error("leadership of group {group:?} changed during the call")]
    LeaderChanged {
        /// The group.
        group: String,
    },
    /// No answer before the deadline.
    #[error("call timed out")]
    Timeout,
    /// The leader has no handler registered for the group.
    #[error("the leader of group {group:?} serves no handler")]
    NoHandler {
        /// The group.
        group: String,
    },
    /// The handler returned an error.
    #[error("handler failed: {0}")]
    Handler(String),
    /// This node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
}
