//! The engine's bookkeeping types.

use crate::message::Handoff;
use crate::types::{MemberId, NodeId, Term};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// What must survive a restart: each group's term and vote, and the last incarnation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// Per group.
    pub groups: BTreeMap<String, PersistedGroup>,
    /// The incarnation of the process that wrote it: the next process starts above it, even
    /// when the wall clock was set back in between (0 in files written before it existed).
    #[serde(default)]
    pub incarnation: u64,
}

/// One group's durable election state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedGroup {
    /// Highest leadership term seen.
    pub term: Term,
    /// The last vote granted: (term, candidate).
    pub vote: Option<(Term, MemberId)>,
}

/// A leader as seen from here.
#[derive(Clone, Debug)]
pub(crate) struct LeaderView {
    pub member: MemberId,
    pub term: Term,
    /// For a remote leader: when its claim lapses unless renewed by a heartbeat (this node's
    /// promise not to vote for another ends then too).
    pub until: Instant,
}

#[derive(Clone, Debug)]
pub(crate) enum Role {
    Follower,
    Candidate {
        term: Term,
        pre: bool,
        grants: BTreeSet<NodeId>,
        denials: BTreeSet<NodeId>,
        /// When the round's requests went out: a won lease counts from here.
        started: Instant,
        deadline: Instant,
    },
    Leader {
        term: Term,
        lease_until: Instant,
    },
}

/// A group's protocol state on one node.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    /// Highest leadership term known (claimed, won or resigned). Never decreases.
    pub term: Term,
    /// Highest term seen anywhere (campaigns included): new campaigns go above it.
    pub max_seen: Term,
    /// Last vote granted (persisted).
    pub vote: Option<(Term, MemberId)>,
    pub leader: Option<LeaderView>,
    pub role: Role,
    /// Since when no leader is known.
    pub leaderless_since: Option<Instant>,
    /// The last leader's resignation.
    pub resigned: Option<Handoff>,
    /// The previous leader named this node's member its successor.
    pub handoff_to_me: Option<Handoff>,
    /// A candidate this node voted for, which may lead until then.
    pub promised: Option<(MemberId, Instant)>,
    /// Earliest next campaign after a failed one.
    pub next_campaign_at: Option<Instant>,
    /// Next time a leader with `preempt` re-ranks.
    pub preempt_check_at: Instant,
}

impl Group {
    pub fn new(now: Instant) -> Self {
        Group {
            term: 0,
            max_seen: 0,
            vote: None,
            leader: None,
            role: Role::Follower,
            leaderless_since: Some(now),
            resigned: None,
            handoff_to_me: None,
            promised: None,
            next_campaign_at: None,
            preempt_check_at: now,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct PendingHeartbeat {
    pub seq: u64,
    pub sent_at: Instant,
    /// Groups claimed in it.
    pub claims: BTreeSet<String>,
    /// Voters that acked, with the groups each refused.
    pub acks: BTreeMap<NodeId, BTreeSet<String>>,
}

#[derive(Clone, Debug)]
pub(crate) struct PendingCall {
    pub group: String,
    pub any: bool,
    pub payload: Vec<u8>,
    /// Where it was sent; `None` while waiting for a leader.
    pub target: Option<MemberId>,
    pub deadline: Instant,
    /// A client's call: (client, its request id).
    pub client: Option<(NodeId, u64)>,
}
