//! The plain data types every other part of baton speaks: node and member ids, group names,
//! hardware, candidates and the input a [`LeaderPolicy`](crate::LeaderPolicy) ranks.

pub use semver::Version;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A fencing token: every leadership of a group has a term strictly greater than any before it.
pub type Term = u64;

/// Free-form `key = value` labels attached to a node or a member (`zone = "eu-1"`).
pub type Labels = BTreeMap<String, String>;

/// The name of a node, unique in its cluster (`[node] name`).
///
/// Displays as the bare name: `a`.
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

/// The name of a group (a service pool: `[[service]] group`, `Node::join`).
///
/// Cheap to clone (a shared `Arc<str>`): the engine copies group names into every claim, vote
/// and event. It compares, orders and hashes as the string it holds, and borrows as a `str`, so
/// a `BTreeMap<GroupName, _>` is looked up with a `&str`. On the wire, on disk and in a
/// plugin's JSON it is the bare string (the same postcard bytes as a `String`).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupName(Arc<str>);

impl GroupName {
    /// Builds a group name from anything string-like.
    pub fn new(name: impl Into<GroupName>) -> Self {
        name.into()
    }
    /// The name as a `&str`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Like the string's: `"orders"`.
impl fmt::Debug for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Deref for GroupName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for GroupName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for GroupName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for GroupName {
    fn from(s: &str) -> Self {
        GroupName(Arc::from(s))
    }
}

impl From<String> for GroupName {
    fn from(s: String) -> Self {
        GroupName(Arc::from(s))
    }
}

/// Any string is a group name (so command-line parsers take one as they take a `String`).
impl std::str::FromStr for GroupName {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(GroupName::from(s))
    }
}

impl From<&String> for GroupName {
    fn from(s: &String) -> Self {
        GroupName(Arc::from(s.as_str()))
    }
}

impl From<Arc<str>> for GroupName {
    fn from(s: Arc<str>) -> Self {
        GroupName(s)
    }
}

/// Another handle on the same name (no copy of the string).
impl From<&GroupName> for GroupName {
    fn from(g: &GroupName) -> Self {
        g.clone()
    }
}

impl From<GroupName> for String {
    fn from(g: GroupName) -> Self {
        g.0.to_string()
    }
}

impl PartialEq<str> for GroupName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for GroupName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for GroupName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<GroupName> for str {
    fn eq(&self, other: &GroupName) -> bool {
        self == &*other.0
    }
}

impl PartialEq<GroupName> for &str {
    fn eq(&self, other: &GroupName) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<GroupName> for String {
    fn eq(&self, other: &GroupName) -> bool {
        **self == *other.0
    }
}

/// As a bare string (`serialize_str`), so the wire and plugin JSON are those of a `String`.
impl Serialize for GroupName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for GroupName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = GroupName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a group name (a string)")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<GroupName, E> {
                Ok(GroupName::from(s))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<GroupName, E> {
                Ok(GroupName::from(s))
            }
        }
        deserializer.deserialize_str(Name)
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
///
/// Displays as `node#seq` — `a#0` is the first instance node `a` joined with (the group is not
/// part of the id; a [`Leadership`] shows it in front: `tracked: leader a#0 (term 1)`).
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
    pub group: GroupName,
    /// Wall-clock time the instance joined, in ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Incarnation of the node process that runs it.
    pub incarnation: Incarnation,
    /// Hardware of its node.
    pub hardware: Hardware,
    /// Labels of its node merged with the labels given at join (join labels win).
    pub labels: Labels,
    /// The software version its node runs (`[node] version`), if it announced one.
    #[serde(default)]
    pub version: Option<Version>,
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
    /// Every group its node has a member in, sorted (shared by all of the node's candidates:
    /// a node with a thousand members does not copy a thousand names per candidate).
    pub services: Arc<[GroupName]>,
    /// How many groups its node leads as this node sees it — counting, for a group without a
    /// leader, the favourite of each leaderless group ranked before this one (in group-name
    /// order), so that nodes ranking many leaderless groups at once spread them alike. The
    /// `balanced` policy ranks by it; 0 where nobody counted.
    #[serde(default)]
    pub leads: usize,
    /// The software version its node runs (`[node] version`, semver), if it announced one:
    /// what `oldest-version` and `newest-version` rank by. `None` for a node configured
    /// without a version (and for a peer of a release that did not announce one). In a
    /// plugin's JSON a string (`"1.4.2"`), left out when `None`, so the JSON of an input
    /// without versions is what it was before versions existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
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
            services: Arc::from([]),
            leads: 0,
            version: None,
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
    pub group: GroupName,
    /// Its live candidates, in member-id order.
    pub candidates: Vec<Candidate>,
    /// The current leader, if any.
    pub incumbent: Option<MemberId>,
    /// Leaders of the groups this node knows of: group name → leading node. Shared by every
    /// input of one ranking pass, so it holds this group's entry too (its leader is the
    /// `incumbent`): a policy about *other* groups skips `group`.
    pub leaders: Arc<BTreeMap<GroupName, NodeId>>,
}

impl ElectionInput {
    /// An input for `group` with one [`Candidate::bare`] member (seq 0) on each of `nodes`, in
    /// the order given, no incumbent and no other leaders.
    pub fn of_nodes(group: impl Into<GroupName>, nodes: &[&str]) -> ElectionInput {
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
    pub group: GroupName,
    /// The leading member, if any is known.
    pub leader: Option<MemberId>,
    /// The leader's term (fencing token); the highest known term when there is no leader.
    pub term: Term,
    /// True when this node's own member is the leader *and* may act as one (holds its lease).
    pub is_me: bool,
}

impl Leadership {
    /// No leader known yet.
    pub fn none(group: impl Into<GroupName>) -> Self {
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

/// One line a person reads: `tracked: leader a#0 (term 1)`, with `, this node` inside the
/// parentheses when this node leads and holds its lease (`tracked: leader a#0 (term 1, this
/// node)`), and `tracked: no leader (term 3)` when none is known (the term is then the highest
/// known).
///
/// ```
/// use baton_core::{Leadership, MemberId};
///
/// let mut l = Leadership::none("tracked");
/// assert_eq!(l.to_string(), "tracked: no leader (term 0)");
/// l.leader = Some(MemberId::new("a", 0));
/// l.term = 1;
/// assert_eq!(l.to_string(), "tracked: leader a#0 (term 1)");
/// l.is_me = true;
/// assert_eq!(l.to_string(), "tracked: leader a#0 (term 1, this node)");
/// ```
impl fmt::Display for Leadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.leader {
            Some(m) if self.is_me => {
                write!(
                    f,
                    "{}: leader {m} (term {}, this node)",
                    self.group, self.term
                )
            }
            Some(m) => write!(f, "{}: leader {m} (term {})", self.group, self.term),
            None => write!(f, "{}: no leader (term {})", self.group, self.term),
        }
    }
}

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;
