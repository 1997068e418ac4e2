//! Routed calls: a request for a group's leader (or any member) and its answer. Peers route them
//! to each other, and clients (`baton work`) send them to any node.

use crate::types::{GroupName, MemberId, Term};
use serde::{Deserialize, Serialize};

/// Work routed to a group's leader (or, with `any`, to any member).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Caller-chosen id, echoed in the [`Response`].
    pub id: u64,
    /// The group.
    pub group: GroupName,
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
        group: GroupName,
    },
    /// The call reached a node that no longer leads, or the leader went away mid-call.
    #[error("leadership of group {group:?} changed during the call")]
    LeaderChanged {
        /// The group.
        group: GroupName,
    },
    /// No answer before the deadline.
    #[error("call timed out")]
    Timeout,
    /// The leader has no handler registered for the group.
    #[error("the leader of group {group:?} serves no handler")]
    NoHandler {
        /// The group.
        group: GroupName,
    },
    /// The handler returned an error.
    #[error("handler failed: {0}")]
    Handler(String),
    /// This node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
}
