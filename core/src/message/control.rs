//! Leadership under the operator's control: "hand group G to node N" and "step down from G".
//! A client (`baton transfer`, `baton step-down`) sends a [`ControlRequest`] to any node as
//! `Message::ClientControl`; that node routes it to the leader it knows as `Message::Control`,
//! like a routed call; the leader decides (see `core/src/engine/transfer.rs`) and the answer
//! travels back as a [`ControlResponse`]. Wire types: add fields and variants only at the end.

use super::CallError;
use crate::types::{GroupName, MemberId, NodeId, Term};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the leader of a group is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlOp {
    /// Hand leadership to this node's member of the group.
    Transfer {
        /// The node that should lead.
        to: NodeId,
    },
    /// Hand leadership to the next member in the leader's ranking.
    StepDown,
}

/// A control request for the leader of `group`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRequest {
    /// Caller-chosen id, echoed in the [`ControlResponse`].
    pub id: u64,
    /// The group.
    pub group: GroupName,
    /// What to do.
    pub op: ControlOp,
}

/// The answer to a [`ControlRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlResponse {
    /// The request's id.
    pub id: u64,
    /// What happened.
    pub result: Result<HandedOff, ControlError>,
}

/// A leader resigned in favour of a successor. The answer leaves once the leader has stopped
/// acting and sent its `StepDown`; the successor takes over in one vote round. Should it not
/// within one failure timeout, the group elects as usual.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedOff {
    /// The member that led and resigned.
    pub from: MemberId,
    /// The successor it named.
    pub to: MemberId,
    /// The term it resigned (the successor's term will be above it).
    pub term: Term,
}

/// Why a target is no live candidate of the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotCandidate {
    /// The node is down (silent, proven dead or gone) in the leader's view.
    Down,
    /// The node runs, but has no member in the group.
    NotAMember,
    /// Its member is unhealthy (`Service::set_healthy(false)`, a failing `--health-cmd`).
    Unhealthy,
}

impl fmt::Display for NotCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotCandidate::Down => "it is down",
            NotCandidate::NotAMember => "it has no member in the group",
            NotCandidate::Unhealthy => "its member is unhealthy",
        })
    }
}

/// Why a control request was refused or failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ControlError {
    /// The request reached a node that does not lead the group (any more).
    #[error("{node} does not lead group {group:?}")]
    NotLeader {
        /// The group.
        group: GroupName,
        /// The node that answered.
        node: NodeId,
    },
    /// No leader of the group was known before the deadline.
    #[error("group {group:?} has no leader")]
    NoLeader {
        /// The group.
        group: GroupName,
    },
    /// The leader went away while the request was in flight.
    #[error("leadership of group {group:?} changed during the request")]
    LeaderChanged {
        /// The group.
        group: GroupName,
    },
    /// The target is no node the leader knows.
    #[error("target {node} unknown: no node of that name is known to the leader")]
    UnknownTarget {
        /// The target.
        node: NodeId,
    },
    /// The target is known but is no live candidate of the group.
    #[error("target {node} is not a live candidate of group {group:?}: {why}")]
    NotCandidate {
        /// The group.
        group: GroupName,
        /// The target.
        node: NodeId,
        /// Why not.
        why: NotCandidate,
    },
    /// The target already leads the group.
    #[error("{node} already leads group {group:?}")]
    AlreadyLeads {
        /// The group.
        group: GroupName,
        /// The target (the leader).
        node: NodeId,
    },
    /// Stepping down needs another live candidate to hand off to.
    #[error("group {group:?} has no other live candidate to hand off to")]
    NoOtherCandidate {
        /// The group.
        group: GroupName,
    },
    /// No answer before the deadline.
    #[error("no answer before the deadline")]
    Timeout,
    /// The node shuts down.
    #[error("node is shutting down")]
    ShuttingDown,
}

impl ControlError {
    /// The control error for a routed request that failed the way a call fails (no leader,
    /// the leader went away, the deadline, a shutdown).
    pub fn of_call(e: CallError, group: &GroupName) -> ControlError {
        match e {
            CallError::NoLeader { group } => ControlError::NoLeader { group },
            CallError::Timeout => ControlError::Timeout,
            CallError::ShuttingDown => ControlError::ShuttingDown,
            CallError::LeaderChanged { .. }
            | CallError::NoHandler { .. }
            | CallError::Handler(_) => ControlError::LeaderChanged {
                group: group.clone(),
            },
        }
    }
}
