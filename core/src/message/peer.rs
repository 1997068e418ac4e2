//! Messages between peers of one cluster: liveness, membership, leadership claims, votes and
//! handoffs. Only nodes that passed the transport's handshake send these.

use crate::transport::DeathProof;
use crate::types::{GroupName, Hardware, Incarnation, Labels, MemberId, NodeId, Term, Version};
use serde::{Deserialize, Serialize};

/// Sent to every peer each `heartbeat_ms`. Its size does not grow with the number of groups:
/// the sender's announced state travels only when the receiver may not hold its `version`
/// (see `docs/PROTOCOL.md`, *Many groups on one cluster*).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Sequence number, echoed by [`HeartbeatAck`]; 0 for a greeting (not ordered).
    pub seq: u64,
    /// Version of the sender's [`NodeState`], raised whenever any of it changes.
    pub version: u64,
    /// The state of `version`, when the receiver may not hold it: on a greeting, on the first
    /// heartbeat after a change, and after the receiver asked for it.
    pub state: Option<NodeState>,
    /// Peers the sender knows, so that nodes meeting through one seed find all the others.
    pub peers: Vec<PeerAddr>,
}

/// What a node announces about itself: where it is, what it runs on, its members and the
/// groups it leads. A receiver keeps the last one of each peer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
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
}

/// One of the sender's members, as announced in a heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberAnnounce {
    /// The member.
    pub id: MemberId,
    /// Its group.
    pub group: GroupName,
    /// Wall-clock join time, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Labels given at join (merged over the node's labels).
    pub labels: Labels,
    /// Whether the member is healthy: an unhealthy member is no candidate (it is ranked by
    /// nobody and does not campaign; see `core/src/engine/transfer.rs`).
    pub healthy: bool,
    /// The software version of the member's node (`[node] version`); `None` when it has none
    /// configured. Last, so that JSON without it (and a `serde(default)` reader) means "none".
    #[serde(default)]
    pub version: Option<Version>,
}

/// "I lead `group` with `member` under `term`."
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The group.
    pub group: GroupName,
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
/// the claims it holds of the sender (those of state `version`) for `failure_timeout` after it
/// received the heartbeat — except for groups listed in `rejected`, whose claims it refused
/// because it knows a higher term. Any node also acks to ask for the sender's state when it
/// holds another `version` than the heartbeat announced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// The acknowledged heartbeat.
    pub seq: u64,
    /// Claims refused: (group, the higher term the voter knows).
    pub rejected: Vec<(GroupName, Term)>,
    /// The version of the sender's state the acker holds (0: none).
    pub version: u64,
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
    pub group: GroupName,
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
    pub dead: Vec<(NodeId, Incarnation, DeathProof)>,
}

/// A voter's answer to a [`VoteRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteResponse {
    /// The group.
    pub group: GroupName,
    /// The term asked for.
    pub term: Term,
    /// Answer to a pre-vote.
    pub pre: bool,
    /// Whether the vote was granted.
    pub granted: bool,
    /// The highest term the voter has voted in or seen lead, so a candidate can catch up.
    pub known_term: Term,
    /// A denial's estimate: the voter could grant this candidate no sooner than this many
    /// milliseconds from now (it abstains after a restart, promised its vote, or prefers a
    /// better-ranked candidate for a while); 0 when it has none. Only the candidate's retry
    /// time reads it: a round a majority cannot win yet is not asked again before.
    pub retry_in_ms: u32,
}

/// A leader resigns `group` at `term`; `successor` should campaign at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepDown {
    /// The group.
    pub group: GroupName,
    /// The resigned term.
    pub term: Term,
    /// The member that resigned.
    pub from: MemberId,
    /// The next in the leader's ranking, if any.
    pub successor: Option<MemberId>,
    /// Why it resigned, so every node counts the change under the same reason.
    pub why: Resignation,
}

/// Why a leader resigned, as it tells the others in its [`StepDown`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resignation {
    /// Its node or member is leaving (shutdown, leave): a handoff.
    #[default]
    Leaving,
    /// It was asked to (transfer, step-down).
    Requested,
    /// A better-ranked member is live and the group preempts.
    Preempted,
    /// Its member reported itself unhealthy.
    Unhealthy,
    /// Its lease is gone or in doubt; no successor named.
    LeaseLost,
}
