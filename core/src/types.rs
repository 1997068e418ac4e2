//! The plain data types every other part of baton speaks: node and member ids, hardware,
//! candidates and the input a [`LeaderPolicy`](crate::LeaderPolicy) ranks.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A fencing token: every leadership of a group has a term strictly greater than any before it.
pub type Term = u64;

/// Free-form `key = value` labels attached to a node or a member (`zone = "eu-1"`).
pub type Labels = BTreeMap<String, String>;

/// The name of a node, unique in its cluster (`[node] name`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub String);

impl NodeId {
    /// Builds a node id from anything string-like.
    pub fn new(name: impl Into<String>) -> Self {
        NodeId(name.into())
    }
    /// The name as a `&str`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        NodeId(s.to_string())
    }
}

/// The incarnation of a node process: a number every new process of the same node takes above
/// any earlier one (the wall clock in µs by default), so that peers can tell a restarted
/// process from a late message of its predecessor.
///
/// On the wire and on disk it is the bare `u64` (serde transparent).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Incarnation(pub u64);

impl Incarnation {
    /// Builds an incarnation from its number.
    pub const fn new(n: u64) -> Self {
        Incarnation(n)
    }
    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// The next incarnation above this one, saturating at `u64::MAX`.
    pub const fn saturating_next(self) -> Self {
        Incarnation(self.0.saturating_add(1))
    }
    /// The next incarnation above this one; `None` at `u64::MAX`.
    pub const fn checked_next(self) -> Option<Self> {
        match self.0.checked_add(1) {
            Some(n) => Some(Incarnation(n)),
            None => None,
        }
    }
}

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u64> for Incarnation {
    fn from(n: u64) -> Self {
        Incarnation(n)
    }
}

impl From<Incarnation> for u64 {
    fn from(i: Incarnation) -> Self {
        i.0
    }
}

/// One service instance in one group: the node it runs on and a per-node sequence number, so
/// that an instance which leaves and joins again is a different member.
///
/// Member ids are totally ordered (node, then seq): every ranking ends its ties on this order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberId {
    /// The node the instance runs on.
    pub node: NodeId,
    /// Per-node join counter.
    pub seq: u32,
}

impl MemberId {
    /// Builds a member id.
    pub fn new(node: impl Into<String>, seq: u32) -> Self {
        MemberId {
            node: NodeId(node.into()),
            seq,
        }
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.node, self.seq)
    }
}

/// What a node offers: detected (or configured) CPUs and memory and an optional explicit weight.
///
/// A plain value: detection (which reads the operating system) is the runtime's,
/// `baton_core::runtime::hardware::detect`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    /// Logical CPUs.
    pub cpus: u32,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// A configured weight; when set, `hardware-weight` uses it instead of cpus and memory.
    pub weight: Option<f64>,
}

/// A member of a group as the cluster records it: identity, age and the metadata of its node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member.
    pub id: MemberId,
    /// The group (service pool) it is an instance of.
    pub group: String,
    /// Wall-clock time the instance joined, in ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Incarnation of the node process that runs it.
    pub incarnation: Incarnation,
    /// Hardware of its node.
    pub hardware: Hardware,
    /// Labels of its node merged with the labels given at join (join labels win).
    pub labels: Labels,
}

/// A member as a policy sees it: the record plus the services its node runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The member.
    pub member: MemberId,
    /// Wall-clock time the instance joined, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Incarnation of its node process.
    pub incarnation: Incarnation,
    /// Hardware of its node.
    pub hardware: Hardware,
    /// Labels of the member (node labels merged with join labels).
    pub labels: Labels,
    /// Every group its node has a member in, sorted.
    pub services: Vec<String>,
}

impl Candidate {
    /// A candidate `member` with nothing else known: joined at 0 ms, incarnation 0, default
    /// hardware, no labels, no services. A starting point for policy tests and examples.
    pub fn bare(member: MemberId) -> Candidate {
        Candidate {
            member,
            started_at_ms: 0,
            incarnation: Incarnation(0),
            hardware: Hardware::default(),
            labels: Labels::new(),
            services: Vec::new(),
        }
    }

    /// The node the candidate runs on.
    pub fn node(&self) -> &NodeId {
        &self.member.node
    }
}

/// Everything a policy may look at to rank a group's candidates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ElectionInput {
    /// The group being ranked.
    pub group: String,
    /// Its live candidates, in member-id order.
    pub candidates: Vec<Candidate>,
    /// The current leader, if any.
    pub incumbent: Option<MemberId>,
    /// Leaders of the *other* groups this node knows of: group name → leading node.
    pub leaders: BTreeMap<String, NodeId>,
}

impl ElectionInput {
    /// An input for `group` with one [`Candidate::bare`] member (seq 0) on each of `nodes`, in
    /// the order given, no incumbent and no other leaders.
    pub fn of_nodes(group: impl Into<String>, nodes: &[&str]) -> ElectionInput {
        ElectionInput {
            group: group.into(),
            candidates: nodes
                .iter()
                .map(|n| Candidate::bare(MemberId::new(*n, 0)))
                .collect(),
            ..Default::default()
        }
    }
}

/// A group's leadership as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leadership {
    /// The group.
    pub group: String,
    /// The leading member, if any is known.
    pub leader: Option<MemberId>,
    /// The leader's term (fencing token); the highest known term when there is no leader.
    pub term: Term,
    /// True when this node's own member is the leader *and* may act as one (holds its lease).
    pub is_me: bool,
}

impl Leadership {
    /// No leader known yet.
    pub fn none(group: impl Into<String>) -> Self {
        Leadership {
            group: group.into(),
            leader: None,
            term: 0,
            is_me: false,
        }
    }
    /// True when this node leads the group.
    pub fn is_me(&self) -> bool {
        self.is_me
    }
    /// The leading node, if any.
    pub fn leader_node(&self) -> Option<&NodeId> {
        self.leader.as_ref().map(|m| &m.node)
    }
}
