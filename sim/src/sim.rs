//! The simulator proper: N engines, a virtual clock, an in-memory network, invariant checks.

use crate::clock::{self, Clock, Running};
use crate::rng::Rng;
use baton_core::engine::{
    Action, Engine, EngineConfig, GroupSpec, Input, Level, PersistedState, Quorum,
};
use baton_core::message::Message;
use baton_core::{
    ByMemberId, CloseKind, DeathProof, DeathProofMode, ElectionInput, Envelope, Hardware,
    LeaderPolicy, MemberId, NodeId, Term, TransportEvent,
};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Wall-clock origin of the simulation (ms since the Unix epoch) for `started_at_ms`.
const EPOCH_MS: u64 = 1_700_000_000_000;

/// More steps than this at one virtual instant means an engine keeps asking to be woken now.
const MAX_STEPS_PER_INSTANT: u64 = 100_000;

/// Index of a node in the simulation (`n0`, `n1`, …).
pub type NodeIdx = usize;

/// Quorum mode of the simulated cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimQuorum {
    /// `Quorum::Majority` over these nodes (indices).
    Majority(Vec<NodeIdx>),
    /// `Quorum::None`: availability mode.
    None,
}

impl SimQuorum {
    /// True in quorum (majority) mode.
    pub fn is_majority(&self) -> bool {
        matches!(self, SimQuorum::Majority(_))
    }
}

/// Which policy a simulated group uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// [`ByMemberId`]: lowest member id first.
    MemberId,
    /// Earliest `started_at_ms` first, then member id (what `oldest-running` does).
    OldestRunning,
    /// Most CPUs first, then member id (a stand-in for `hardware-weight`).
    MostCpus,
}

impl PolicyKind {
    fn build(self) -> Arc<dyn LeaderPolicy> {
        match self {
            PolicyKind::MemberId => Arc::new(ByMemberId),
            PolicyKind::OldestRunning => Arc::new(OldestRunning),
            PolicyKind::MostCpus => Arc::new(MostCpus),
        }
    }
}

struct OldestRunning;

impl LeaderPolicy for OldestRunning {
    fn name(&self) -> &str {
        "sim-oldest-running"
    }
    fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
        let mut c: Vec<_> = input.candidates.iter().collect();
        c.sort_by(|a, b| {
            a.started_at_ms
                .cmp(&b.started_at_ms)
                .then(a.member.cmp(&b.member))
        });
        c.into_iter().map(|c| c.member.clone()).collect()
    }
}

struct MostCpus;

impl LeaderPolicy for MostCpus {
    fn name(&self) -> &str {
        "sim-most-cpus"
    }
    fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
        let mut c: Vec<_> = input.candidates.iter().collect();
        c.sort_by(|a, b| {
            b.hardware
                .cpus
                .cmp(&a.hardware.cpus)
                .then(a.member.cmp(&b.member))
        });
        c.into_iter().map(|c| c.member.clone()).collect()
    }
}

/// One simulated group (service pool); every node joins it at start.
#[derive(Clone, Debug)]
pub struct SimGroup {
    /// Its name.
    pub name: String,
    /// Its policy.
    pub policy: PolicyKind,
    /// Whether a better-ranked member preempts the incumbent.
    pub preempt: bool,
}

impl SimGroup {
    /// A group with the member-id policy and no preemption.
    pub fn new(name: impl Into<String>) -> Self {
        SimGroup {
            name: name.into(),
            policy: PolicyKind::MemberId,
            preempt: false,
        }
    }
}

/// Network behaviour. Each message independently gets a latency drawn uniformly from
/// `latency`, so a wide range reorders messages.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Minimum one-way latency.
    pub min_latency: Duration,
    /// Maximum one-way latency.
    pub max_latency: Duration,
    /// Probability that a message is silently lost.
    pub drop: f64,
    /// Probability that a message is delivered twice (the copy gets its own latency).
    pub duplicate: f64,
    /// Probability that a message (or a duplicate's copy) is a straggler: delivered up to
    /// `straggle_max` late, long after later messages (a retransmission, a stalled queue).
    pub straggle: f64,
    /// The longest a straggler is held back.
    pub straggle_max: Duration,
}

impl NetConfig {
    /// A healthy LAN: 100 µs – 1 ms, nothing lost or duplicated.
    pub fn calm() -> Self {
        NetConfig {
            min_latency: Duration::from_micros(100),
            max_latency: Duration::from_millis(1),
            drop: 0.0,
            duplicate: 0.0,
            straggle: 0.0,
            straggle_max: Duration::ZERO,
        }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig::calm()
    }
}

/// Everything a simulation is built from.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the network's random decisions and of the engines' jitter.
    pub seed: u64,
    /// Cluster size; nodes are named `n0`, `n1`, ….
    pub nodes: usize,
    /// Quorum mode.
    pub quorum: SimQuorum,
    /// Groups every node joins.
    pub groups: Vec<SimGroup>,
    /// Restarts hand the engine the state it last persisted (`data_dir`). Without it a
    /// restarted node starts blank (and abstains from voting for one failure timeout).
    pub persistence: bool,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Failure timeout (the lease is `failure_timeout − heartbeat`).
    pub failure_timeout: Duration,
    /// Election backoff per rank.
    pub backoff: Duration,
    /// Network behaviour at start.
    pub net: NetConfig,
    /// After a crash, how long (min, max) a connected peer takes to get its reconnect refused
    /// (the [`TransportEvent::Dead`] proof), counted from its `Disconnected`.
    pub proof_delay: (Duration, Duration),
    /// What the nodes' transports may report as proof of death, and what their engines trust
    /// (`EngineConfig::death_proof`). With [`DeathProofMode::Timeout`] the network never
    /// delivers `Dead{RefusedAfterOrderlyClose}`: a crashed peer is found by its silence.
    pub death_proof: DeathProofMode,
    /// A deliberately wrong transport, as before issue 9: after a middlebox reset, the
    /// refused redial is reported as `Dead{RefusedAfterOrderlyClose}` although the peer lives.
    /// Only for showing that the invariant checks catch what such a transport does (the
    /// model's own check that `Dead` is only sent for a stopped process is off then).
    pub legacy_reset_proofs: bool,
    /// Each node's clock (node `i` gets `clocks[i]`; missing entries keep true time). The
    /// engine of node `i` reads `base + offset + elapsed × rate` as its `now`.
    pub clocks: Vec<Clock>,
    /// Print every event to stderr (`BATON_SIM_TRACE=1`; `2` adds heartbeats).
    pub trace: u8,
}

impl SimConfig {
    /// `nodes` nodes, all voters (quorum mode), one group `g0`, persistence on, protocol
    /// default timing (100 ms heartbeat, 500 ms failure timeout, 50 ms backoff), calm network.
    pub fn new(seed: u64, nodes: usize) -> Self {
        SimConfig {
            seed,
            nodes,
            quorum: SimQuorum::Majority((0..nodes).collect()),
            groups: vec![SimGroup::new("g0")],
            persistence: true,
            heartbeat: Duration::from_millis(100),
            failure_timeout: Duration::from_millis(500),
            backoff: Duration::from_millis(50),
            net: NetConfig::calm(),
            proof_delay: (Duration::from_micros(200), Duration::from_millis(2)),
            death_proof: DeathProofMode::OrderlyClose,
            legacy_reset_proofs: false,
            clocks: Vec::new(),
            trace: trace_level(),
        }
    }

    /// Gives the nodes drifting clocks: rates in `[1 − rho/2, 1 + rho/2]` (each the slow end,
    /// the fast end or in between), offsets of 0–5 s, drawn from the seed
    /// ([`clock::drifting`]).
    pub fn with_drift(mut self, rho: f64) -> Self {
        let mut rng = Rng::new(self.seed ^ 0xC10C_D21F);
        self.clocks = clock::drifting(&mut rng, self.nodes, rho);
        self
    }

    /// Sets [`SimConfig::death_proof`].
    pub fn with_death_proof(mut self, mode: DeathProofMode) -> Self {
        self.death_proof = mode;
        self
    }

    /// The lease the engines get: `failure_timeout − heartbeat` (`EngineConfig::with_timing`).
    pub fn lease(&self) -> Duration {
        self.failure_timeout.saturating_sub(self.heartbeat)
    }

    /// The clock-rate bound the protocol states for this timing, `(ft − lease)/(ft + lease)`
    /// ([`clock::drift_bound`]).
    pub fn drift_bound(&self) -> f64 {
        clock::drift_bound(self.failure_timeout, self.lease())
    }

    /// Node `i`'s clock at the start.
    pub fn clock(&self, i: NodeIdx) -> Clock {
        self.clocks.get(i).copied().unwrap_or(Clock::PERFECT)
    }
}

/// `BATON_SIM_TRACE` as a level (0 when unset).
pub fn trace_level() -> u8 {
    std::env::var("BATON_SIM_TRACE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// An invariant violation (or a stuck simulation), with the virtual time it happened at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time since the start.
    pub at: Duration,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at t={}: {}", fmt_time(self.at), self.message)
    }
}

impl std::error::Error for Violation {}

/// Formats a virtual time as seconds with microsecond precision.
pub fn fmt_time(d: Duration) -> String {
    format!("{}.{:06}s", d.as_secs(), d.subsec_micros())
}

/// What an interceptor ([`Sim::intercept`]) decides for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The network's normal treatment (drop / duplicate / latency per [`NetConfig`]).
    Pass,
    /// Lose it.
    Drop,
    /// Deliver it once, this long after it was sent (no drop, no duplicate).
    After(Duration),
    /// The normal treatment, plus one extra copy delivered this long after it was sent.
    AlsoAfter(Duration),
}

/// A message filter for targeted scenarios: `(now, from, to, message) -> verdict`.
pub type Interceptor = Box<dyn FnMut(Duration, NodeIdx, NodeIdx, &Message) -> Verdict>;

/// Counters of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Inputs handed to engines.
    pub steps: u64,
    /// Messages sent by engines.
    pub sent: u64,
    /// Messages lost (drop probability, partitions, dead receivers).
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Distinct (group, term) leaderships observed acting.
    pub leaderships: u64,
    /// Messages delivered after a message sent later on the same link (reordered).
    pub reordered: u64,
    /// `Disconnected{how: Orderly}` delivered (a peer's process ended).
    pub orderly_closes: u64,
    /// `Disconnected{how: Abrupt}` delivered (a middlebox reset the connection).
    pub resets: u64,
    /// `Dead` delivered, of any kind.
    pub proofs: u64,
    /// Connections re-established by a fresh handshake after a middlebox reset ended.
    pub reconnects: u64,
}

/// One group's agreed leadership: the leading member and its term.
pub type Agreed = (MemberId, Term);

/// Every group's agreed leadership, by group name.
pub type Agreement = BTreeMap<String, Agreed>;

struct SimNode {
    id: NodeId,
    incarnation: u64,
    engine: Option<Engine>,
    /// The node's "disk": the last `Action::Persist`.
    store: Option<PersistedState>,
    /// When the engine wants its next tick (µs of virtual time).
    wake: Option<u64>,
    /// The node's monotonic clock (it survives restarts: same machine).
    clock: Running,
    /// The highest term seen per group, for the "terms only grow" invariant.
    terms: BTreeMap<String, Term>,
    /// Groups the application has joined on this node (rejoined on restart).
    joined: BTreeSet<String>,
}

enum NetEvent {
    Message(Envelope),
    Transport(TransportEvent),
}

/// How a middlebox reset ([`Sim::middlebox_reset`]) cuts a node off, and who sees the resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetWay {
    /// Both directions, both ends see resets (`REJECT --reject-with tcp-reset` on the router
    /// for traffic to and from the node).
    Both,
    /// A rule in the node's own OUTPUT chain for packets to its peers: only the node sees
    /// resets; its peers just stop hearing from it.
    Outgoing,
    /// A rule in every peer's OUTPUT chain for packets to the node: only the peers see
    /// resets; the node just stops hearing from them.
    Incoming,
}

/// The undirected key of the link between `a` and `b`.
fn link(a: NodeIdx, b: NodeIdx) -> (NodeIdx, NodeIdx) {
    (a.min(b), a.max(b))
}

struct Queued {
    at: u64,
    seq: u64,
    to: NodeIdx,
    /// The receiver's incarnation when this was sent; a restarted receiver does not get it.
    to_inc: u64,
    from: Option<(NodeIdx, u64)>,
    /// The link (by its other end) whose connection this belongs to, and that connection's
    /// generation (`Sim::conn_gen`) when it was queued: what belongs to a connection that
    /// was reset, or replaced by a fresh handshake, is never delivered.
    conn: Option<(NodeIdx, u64)>,
    ev: NetEvent,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A deterministic simulation of a baton cluster: every node runs a real
/// [`Engine`]; the clock, the network and the faults are simulated.
///
/// Every step (one input handed to one engine) is followed by the invariant checks; the first
/// violation is returned as an error by whichever `run_*` method was running.
pub struct Sim {
    cfg: SimConfig,
    base: Instant,
    now: u64,
    rng: Rng,
    nodes: Vec<SimNode>,
    by_name: BTreeMap<String, NodeIdx>,
    queue: BinaryHeap<Queued>,
    seq: u64,
    /// Directed links that silently lose everything: (from, to).
    blocked: BTreeSet<(NodeIdx, NodeIdx)>,
    /// Established connections (a < b): who learns of whose crash.
    conns: BTreeSet<(NodeIdx, NodeIdx)>,
    /// Per directed link, the send order (queue `seq`) of the latest message delivered: a
    /// delivery with a lower one was overtaken by a later message — it is reordered.
    delivered_seq: BTreeMap<(NodeIdx, NodeIdx), u64>,
    /// Latest scheduled delivery per directed link, so that a crash's `Dead` comes after the
    /// bytes already in flight (TCP delivers buffered data before the close).
    last_delivery: BTreeMap<(NodeIdx, NodeIdx), u64>,
    /// Middlebox reset rules (`REJECT --reject-with tcp-reset`), directed: packets from `.0`
    /// to `.1` are rejected and `.0` gets the reset. Both processes live on.
    resets: BTreeSet<(NodeIdx, NodeIdx)>,
    /// Links (a < b) whose connection a reset tore down and no handshake has re-established:
    /// whatever is sent on them is lost.
    broken: BTreeSet<(NodeIdx, NodeIdx)>,
    /// (who, peer) on a broken link: `who` was not told of the reset (no rule sends it one)
    /// and still holds the connection it believes open — a later rule the other way resets it.
    half_open: BTreeSet<(NodeIdx, NodeIdx)>,
    /// Per link (a < b), the generation of its connection, bumped by every reset.
    conn_gen: BTreeMap<(NodeIdx, NodeIdx), u64>,
    /// A flaw of the network model itself (a `Dead` for a live process, a proof the
    /// configured mode never reports), turned into a violation by the next check.
    model_error: Option<String>,
    /// Every transport event delivered, when recording ([`Sim::record_transport_events`]).
    transport_log: Option<Vec<(Duration, NodeIdx, TransportEvent)>>,
    /// Every (group, term) that ever had an acting leader in quorum mode, and who it was.
    leaders: BTreeMap<(String, Term), MemberId>,
    specs: BTreeMap<String, GroupSpec>,
    /// A node restarted without its persisted state: from then on terms may repeat (nobody
    /// may remember them), so invariant (a) is no longer checked.
    forgetful: bool,
    last_step_at: u64,
    steps_at_instant: u64,
    stats: SimStats,
    interceptor: Option<Interceptor>,
}

impl Sim {
    /// Builds the cluster and starts every node at virtual time 0; each joins every group.
    pub fn new(cfg: SimConfig) -> Self {
        let specs = cfg
            .groups
            .iter()
            .map(|g| {
                (
                    g.name.clone(),
                    GroupSpec {
                        policy: g.policy.build(),
                        preempt: g.preempt,
                    },
                )
            })
            .collect();
        let nodes = (0..cfg.nodes)
            .map(|i| SimNode {
                id: NodeId::new(format!("n{i}")),
                incarnation: 0,
                engine: None,
                store: None,
                wake: None,
                clock: Running::new(cfg.clock(i)),
                terms: BTreeMap::new(),
                joined: cfg.groups.iter().map(|g| g.name.clone()).collect(),
            })
            .collect::<Vec<_>>();
        let by_name = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.0.clone(), i))
            .collect();
        let mut sim = Sim {
            rng: Rng::new(cfg.seed ^ 0x005E_ED0F_BA70),
            cfg,
            base: Instant::now(),
            now: 0,
            nodes,
            by_name,
            queue: BinaryHeap::new(),
            seq: 0,
            blocked: BTreeSet::new(),
            conns: BTreeSet::new(),
            delivered_seq: BTreeMap::new(),
            last_delivery: BTreeMap::new(),
            resets: BTreeSet::new(),
            broken: BTreeSet::new(),
            half_open: BTreeSet::new(),
            conn_gen: BTreeMap::new(),
            model_error: None,
            transport_log: None,
            leaders: BTreeMap::new(),
            specs,
            forgetful: false,
            last_step_at: 0,
            steps_at_instant: 0,
            stats: SimStats::default(),
            interceptor: None,
        };
        for i in 0..sim.nodes.len() {
            sim.boot(i, None);
        }
        sim
    }

    // ------------------------------------------------------------ accessors

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// True virtual time since the start.
    pub fn now(&self) -> Duration {
        Duration::from_micros(self.now)
    }

    /// What node `i`'s clock reads now: its engine's notion of "now". With perfect clocks
    /// ([`SimConfig::clocks`] empty) every node reads the base instant plus [`Sim::now`].
    pub fn clock_of(&self, i: NodeIdx) -> Instant {
        self.base + Duration::from_nanos(self.nodes[i].clock.read_ns(self.now) as u64)
    }

    /// Node `i`'s current clock rate (1.0 keeps true time).
    pub fn clock_rate(&self, i: NodeIdx) -> f64 {
        self.nodes[i].clock.rate_ppm() as f64 / clock::PPM as f64
    }

    /// From now on node `i`'s clock runs at `rate` × true time (its reading stays continuous
    /// and monotonic); the engine's next wake-up is converted again.
    pub fn set_clock_rate(&mut self, i: NodeIdx, rate: f64) {
        self.set_clock_ppm(i, clock::rate_to_ppm(rate));
    }

    /// [`Sim::set_clock_rate`] in parts per million.
    pub fn set_clock_ppm(&mut self, i: NodeIdx, rate_ppm: u64) {
        self.trace(1, || {
            format!(
                "FAULT clock of {} runs at {:.4}",
                self.nodes[i].id,
                rate_ppm as f64 / clock::PPM as f64
            )
        });
        let now = self.now;
        self.nodes[i].clock.set_rate(now, rate_ppm);
        self.refresh_wake(i);
    }

    /// The largest relative difference between two nodes' current clock rates
    /// (`max / min − 1`).
    pub fn clock_spread(&self) -> f64 {
        let rates: Vec<u64> = self.nodes.iter().map(|n| n.clock.rate_ppm()).collect();
        match (rates.iter().min(), rates.iter().max()) {
            (Some(&lo), Some(&hi)) => hi as f64 / lo as f64 - 1.0,
            _ => 0.0,
        }
    }

    /// True while node `i` runs and acts as leader of `group` (by its own clock).
    pub fn is_acting(&self, i: NodeIdx, group: &str) -> bool {
        self.engine(i)
            .is_some_and(|e| e.is_acting_leader(group, self.clock_of(i)))
    }

    /// Number of nodes (live or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for an empty cluster.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s id.
    pub fn node_id(&self, i: NodeIdx) -> &NodeId {
        &self.nodes[i].id
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> Option<NodeIdx> {
        self.by_name.get(name).copied()
    }

    /// True while node `i` runs.
    pub fn is_live(&self, i: NodeIdx) -> bool {
        self.nodes[i].engine.is_some()
    }

    /// The running nodes.
    pub fn live(&self) -> Vec<NodeIdx> {
        (0..self.nodes.len()).filter(|&i| self.is_live(i)).collect()
    }

    /// Node `i`'s current incarnation.
    pub fn incarnation(&self, i: NodeIdx) -> u64 {
        self.nodes[i].incarnation
    }

    /// Node `i`'s engine, while it runs.
    pub fn engine(&self, i: NodeIdx) -> Option<&Engine> {
        self.nodes[i].engine.as_ref()
    }

    /// The groups the application has joined on node `i`.
    pub fn joined(&self, i: NodeIdx) -> &BTreeSet<String> {
        &self.nodes[i].joined
    }

    /// Counters so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The current network behaviour.
    pub fn net(&self) -> &NetConfig {
        &self.cfg.net
    }

    /// True when some link is cut.
    pub fn partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// The middlebox reset rules in force, directed: packets from `.0` to `.1` are rejected
    /// with a reset to `.0`.
    pub fn reset_rules(&self) -> &BTreeSet<(NodeIdx, NodeIdx)> {
        &self.resets
    }

    /// True while some middlebox reset rule is in force.
    pub fn resetting(&self) -> bool {
        !self.resets.is_empty()
    }

    /// Starts (or stops) recording every transport event delivered to an engine — not the
    /// messages — for [`Sim::transport_events`].
    pub fn record_transport_events(&mut self, on: bool) {
        self.transport_log = on.then(Vec::new);
    }

    /// The transport events delivered since recording started: (time, receiver, event).
    pub fn transport_events(&self) -> &[(Duration, NodeIdx, TransportEvent)] {
        self.transport_log.as_deref().unwrap_or(&[])
    }

    /// Whether node `i`'s engine counts node `j` (its current incarnation) alive.
    pub fn sees_alive(&self, i: NodeIdx, j: NodeIdx) -> bool {
        let Some(e) = self.engine(i) else {
            return false;
        };
        if i == j {
            return true;
        }
        let id = &self.nodes[j].id;
        let inc = self.nodes[j].incarnation;
        e.status(self.clock_of(i))
            .members
            .iter()
            .any(|m| m.name == *id && m.incarnation == inc && m.alive)
    }

    /// The pairs (viewer, peer) of live nodes where the viewer does not count the peer's
    /// current incarnation alive; empty once every live node sees every other one alive.
    pub fn not_seen_alive(&self) -> Vec<(NodeIdx, NodeIdx)> {
        let live = self.live();
        let mut out = Vec::new();
        for &i in &live {
            for &j in &live {
                if !self.sees_alive(i, j) {
                    out.push((i, j));
                }
            }
        }
        out
    }

    /// Every (group, term) that had an acting leader (quorum mode), and who led it.
    pub fn leadership_history(&self) -> &BTreeMap<(String, Term), MemberId> {
        &self.leaders
    }

    /// The live nodes acting as leader of `group` right now (each by its own clock).
    pub fn acting_leaders(&self, group: &str) -> Vec<NodeIdx> {
        self.live()
            .into_iter()
            .filter(|&i| self.is_acting(i, group))
            .collect()
    }

    /// The one node acting as leader of `group`, if exactly one does.
    pub fn acting_leader(&self, group: &str) -> Option<NodeIdx> {
        match self.acting_leaders(group).as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The groups some live node has a member in.
    pub fn groups_with_members(&self) -> Vec<String> {
        self.cfg
            .groups
            .iter()
            .map(|g| g.name.clone())
            .filter(|g| {
                self.live()
                    .into_iter()
                    .any(|i| self.engine(i).is_some_and(|e| e.local_member(g).is_some()))
            })
            .collect()
    }

    /// `group`'s leadership if every live node agrees on it: the same member and term, and
    /// that member's node is live and acting as leader.
    pub fn agreed(&self, group: &str) -> Option<Agreed> {
        let mut agreed: Option<Agreed> = None;
        for i in self.live() {
            let e = self.engine(i)?;
            let l = e.leadership(group, self.clock_of(i));
            let view = (l.leader?, l.term);
            match &agreed {
                None => agreed = Some(view),
                Some(a) if *a == view => {}
                Some(_) => return None,
            }
        }
        let (member, term) = agreed?;
        let li = self.index_of(member.node.as_str())?;
        let e = self.engine(li)?;
        (e.local_member(group) == Some(&member) && self.is_acting(li, group))
            .then_some((member, term))
    }

    /// Every group with live members, agreed; `None` unless all of them are.
    pub fn agreement(&self) -> Option<Agreement> {
        let groups = self.groups_with_members();
        if self.live().is_empty() {
            return None;
        }
        groups
            .into_iter()
            .map(|g| self.agreed(&g).map(|a| (g, a)))
            .collect()
    }

    /// A one-line summary of every live node's view of every group, for failure messages.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let now = self.clock_of(i);
            let Some(e) = &n.engine else {
                out.push_str(&format!(
                    "\n  {} (down, last incarnation {})",
                    n.id, n.incarnation
                ));
                continue;
            };
            out.push_str(&format!(
                "\n  {} inc {} clock x{:.4}:",
                n.id,
                n.incarnation,
                n.clock.rate_ppm() as f64 / clock::PPM as f64
            ));
            for g in &self.cfg.groups {
                let l = e.leadership(&g.name, now);
                out.push_str(&format!(
                    " [{} leader={} term={} acting={} member={}]",
                    g.name,
                    l.leader.map_or("-".to_string(), |m| m.to_string()),
                    l.term,
                    e.is_acting_leader(&g.name, now),
                    e.local_member(&g.name)
                        .map_or("-".to_string(), |m| m.to_string()),
                ));
            }
            let cut: Vec<String> = self
                .blocked
                .iter()
                .filter(|(f, _)| *f == i)
                .map(|(_, t)| self.nodes[*t].id.to_string())
                .collect();
            if !cut.is_empty() {
                out.push_str(&format!(" cut-to={cut:?}"));
            }
            let reset: Vec<String> = self
                .resets
                .iter()
                .filter(|(f, _)| *f == i)
                .map(|(_, t)| self.nodes[*t].id.to_string())
                .collect();
            if !reset.is_empty() {
                out.push_str(&format!(" reset-to={reset:?}"));
            }
            let dead_to: Vec<String> = (0..self.nodes.len())
                .filter(|&j| j != i && self.is_live(j) && !self.sees_alive(i, j))
                .map(|j| self.nodes[j].id.to_string())
                .collect();
            if !dead_to.is_empty() {
                out.push_str(&format!(" not-alive={dead_to:?}"));
            }
        }
        out
    }

    // ------------------------------------------------------------ running

    /// Runs until virtual time `t` (absolute, since the start).
    pub fn run_until(&mut self, t: Duration) -> Result<(), Violation> {
        let until = t.as_micros() as u64;
        while let Some(at) = self.next_at() {
            if at > until {
                break;
            }
            self.step()?;
        }
        if until > self.now {
            self.now = until;
            self.check()?;
        }
        Ok(())
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) -> Result<(), Violation> {
        self.run_until(self.now() + d)
    }

    /// Runs until `done(self)` holds (checked after every step) or `max` of virtual time has
    /// passed. Returns how long it took, or `None` on timeout.
    pub fn run_until_pred(
        &mut self,
        max: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<Option<Duration>, Violation> {
        let start = self.now;
        let until = start + max.as_micros() as u64;
        if done(self) {
            return Ok(Some(Duration::ZERO));
        }
        while let Some(at) = self.next_at() {
            if at > until {
                break;
            }
            self.step()?;
            if done(self) {
                return Ok(Some(Duration::from_micros(self.now - start)));
            }
        }
        self.now = self.now.max(until);
        self.check()?;
        Ok(done(self).then(|| Duration::from_micros(self.now - start)))
    }

    /// Runs until every live node agrees on every group's leader ([`Sim::agreement`]), at
    /// most `max`. Returns the time it took and the agreement.
    pub fn run_until_agreed(
        &mut self,
        max: Duration,
    ) -> Result<Option<(Duration, Agreement)>, Violation> {
        let took = self.run_until_pred(max, |s| s.agreement().is_some())?;
        Ok(took.and_then(|t| self.agreement().map(|a| (t, a))))
    }

    fn next_at(&self) -> Option<u64> {
        let q = self.queue.peek().map(|e| e.at);
        let w = self.nodes.iter().filter_map(|n| n.wake).min();
        match (q, w) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes the earliest pending event (a delivery or an engine's timer).
    fn step(&mut self) -> Result<(), Violation> {
        let q = self.queue.peek().map(|e| e.at);
        let w = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.wake.map(|t| (t, i)))
            .min();
        let at = match (q, w) {
            (Some(a), Some((b, _))) => a.min(b),
            (Some(a), None) => a,
            (None, Some((b, _))) => b,
            (None, None) => return Ok(()),
        };
        self.advance(at)?;
        if q == Some(at) {
            let ev = self.queue.pop().expect("peeked");
            self.deliver(ev);
        } else if let Some((_, i)) = w {
            self.nodes[i].wake = None;
            self.input(i, Input::Tick);
        }
        self.check()
    }

    fn advance(&mut self, at: u64) -> Result<(), Violation> {
        let at = at.max(self.now);
        if at == self.last_step_at {
            self.steps_at_instant += 1;
            if self.steps_at_instant > MAX_STEPS_PER_INSTANT {
                return Err(self.violation(format!(
                    "livelock: more than {MAX_STEPS_PER_INSTANT} steps at one virtual instant"
                )));
            }
        } else {
            self.last_step_at = at;
            self.steps_at_instant = 0;
        }
        self.now = at;
        Ok(())
    }

    fn violation(&self, message: String) -> Violation {
        Violation {
            at: self.now(),
            message: format!("{message}\ncluster:{}", self.describe()),
        }
    }

    fn trace(&self, level: u8, line: impl FnOnce() -> String) {
        if self.cfg.trace >= level {
            eprintln!("[{}] {}", fmt_time(self.now()), line());
        }
    }

    /// Hands `input` to node `i`'s engine and performs the actions it returns.
    fn input(&mut self, i: NodeIdx, input: Input) {
        let now = self.clock_of(i);
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return;
        };
        self.stats.steps += 1;
        let actions = engine.handle(now, input);
        self.apply(i, actions);
        self.refresh_wake(i);
    }

    /// Converts the engine's next deadline (on its own clock) to the first true microsecond
    /// at which that clock reaches it.
    fn refresh_wake(&mut self, i: NodeIdx) {
        let base = self.base;
        let now = self.now;
        let n = &mut self.nodes[i];
        n.wake = n.engine.as_ref().and_then(|e| e.next_deadline()).map(|d| {
            let ns = d.saturating_duration_since(base).as_nanos();
            n.clock.true_us_at(ns).max(now)
        });
    }

    fn apply(&mut self, i: NodeIdx, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, message } => self.send(i, &to, message),
                Action::Connect { addr } => self.connect(i, &addr),
                Action::Persist(p) => self.nodes[i].store = Some(p),
                Action::Event(event) => {
                    let level = if event.level() == Level::Debug { 2 } else { 1 };
                    self.trace(level, || format!("{}: {event}", self.nodes[i].id))
                }
                Action::Leadership(l) => self.trace(1, || {
                    format!(
                        "{}: leadership {} leader={} term={} is_me={}",
                        self.nodes[i].id,
                        l.group,
                        l.leader.map_or("-".to_string(), |m| m.to_string()),
                        l.term,
                        l.is_me
                    )
                }),
                // The simulated network never refuses a node (no duplicate names, no clock
                // steps), so neither of these can come.
                Action::Reincarnate { .. } | Action::Halt(_) => {
                    self.trace(1, || format!("{}: unexpected {a:?}", self.nodes[i].id))
                }
                Action::Members { .. } | Action::Serve { .. } | Action::CallDone { .. } => {}
            }
        }
    }

    // ------------------------------------------------------------ network

    fn latency(&mut self) -> u64 {
        let lo = self.cfg.net.min_latency.as_micros() as u64;
        let hi = self.cfg.net.max_latency.as_micros() as u64;
        self.rng.range(lo.max(1), hi.max(lo).max(1))
    }

    fn push(&mut self, at: u64, to: NodeIdx, from: Option<(NodeIdx, u64)>, ev: NetEvent) {
        self.seq += 1;
        let to_inc = self.nodes[to].incarnation;
        let conn = from.map(|(f, _)| (f, self.gen_of(f, to)));
        self.queue.push(Queued {
            at,
            seq: self.seq,
            to,
            to_inc,
            from,
            conn,
            ev,
        });
    }

    /// Queues a transport event about the connection between `to` and `peer` (a reset), to
    /// be dropped if that connection is replaced before it arrives.
    fn push_on_conn(&mut self, at: u64, to: NodeIdx, peer: NodeIdx, ev: TransportEvent) {
        self.seq += 1;
        let to_inc = self.nodes[to].incarnation;
        let conn = Some((peer, self.gen_of(peer, to)));
        self.queue.push(Queued {
            at,
            seq: self.seq,
            to,
            to_inc,
            from: None,
            conn,
            ev: NetEvent::Transport(ev),
        });
    }

    fn gen_of(&self, a: NodeIdx, b: NodeIdx) -> u64 {
        self.conn_gen.get(&link(a, b)).copied().unwrap_or(0)
    }

    /// True while a reset rule stands between `a` and `b`, in either direction.
    fn reset_between(&self, a: NodeIdx, b: NodeIdx) -> bool {
        self.resets.contains(&(a, b)) || self.resets.contains(&(b, a))
    }

    fn connect_pair(&mut self, a: NodeIdx, b: NodeIdx) {
        self.conns.insert(link(a, b));
    }

    fn send(&mut self, from: NodeIdx, to: &NodeId, message: Message) {
        self.stats.sent += 1;
        let Some(&j) = self.by_name.get(to.as_str()) else {
            self.stats.lost += 1;
            return;
        };
        if !self.is_live(j) || j == from {
            self.stats.lost += 1;
            return;
        }
        if self.reset_between(from, j) || self.broken.contains(&link(from, j)) {
            // Reset (or not yet re-established after a reset): the bytes go nowhere.
            self.trace(2, || {
                format!(
                    "{} -> {}: lost on a reset connection: {}",
                    self.nodes[from].id,
                    to,
                    short(&message)
                )
            });
            self.stats.lost += 1;
            return;
        }
        self.trace(
            if matches!(message, Message::Heartbeat(_) | Message::HeartbeatAck(_)) {
                2
            } else {
                1
            },
            || format!("{} -> {}: {}", self.nodes[from].id, to, short(&message)),
        );
        let verdict = match self.interceptor.as_mut() {
            Some(f) => f(Duration::from_micros(self.now), from, j, &message),
            None => Verdict::Pass,
        };
        let from_inc = self.nodes[from].incarnation;
        let schedule = |sim: &mut Sim, at: u64| {
            let last = sim.last_delivery.entry((from, j)).or_insert(0);
            *last = (*last).max(at);
            let env = Envelope {
                from: sim.nodes[from].id.clone(),
                incarnation: from_inc,
                message: message.clone(),
            };
            sim.push(at, j, Some((from, from_inc)), NetEvent::Message(env));
        };
        match verdict {
            Verdict::Pass => {}
            Verdict::Drop => {
                self.stats.lost += 1;
                return;
            }
            Verdict::After(d) => {
                schedule(self, self.now + d.as_micros() as u64);
                return;
            }
            Verdict::AlsoAfter(d) => {
                self.stats.duplicated += 1;
                schedule(self, self.now + d.as_micros() as u64);
            }
        }
        if self.rng.chance(self.cfg.net.drop) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.cfg.net.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = self.now + self.latency();
            if self.rng.chance(self.cfg.net.straggle) {
                at += self
                    .rng
                    .range(1, self.cfg.net.straggle_max.as_micros() as u64);
            }
            schedule(self, at);
        }
    }

    fn connect(&mut self, from: NodeIdx, addr: &str) {
        let Some(&j) = self.by_name.get(addr) else {
            let at = self.now + self.latency();
            let ev = TransportEvent::ConnectFailed {
                addr: addr.to_string(),
                reason: "no such host".into(),
            };
            self.push(at, from, None, NetEvent::Transport(ev));
            return;
        };
        if j == from {
            return;
        }
        self.trace(1, || {
            format!("{} connects to {}", self.nodes[from].id, addr)
        });
        if !self.is_live(j) {
            let at = self.now + 2 * self.latency();
            let ev = TransportEvent::ConnectFailed {
                addr: addr.to_string(),
                reason: "connection refused".into(),
            };
            self.push(at, from, None, NetEvent::Transport(ev));
            return;
        }
        if self.resets.contains(&(from, j)) {
            // The SYN is rejected with a reset: refused, like a closed port — but the process
            // lives, and its last connection (if any) was reset, not closed: no proof.
            let at = self.now + 2 * self.latency();
            let ev = TransportEvent::ConnectFailed {
                addr: addr.to_string(),
                reason: "connection refused".into(),
            };
            self.push(at, from, None, NetEvent::Transport(ev));
            return;
        }
        if self.blocked.contains(&(from, j))
            || self.blocked.contains(&(j, from))
            || self.resets.contains(&(j, from))
        {
            // A partition: the SYN goes nowhere; the dialer's attempt times out. (A reset rule
            // the other way rejects the SYN-ACK: the reset goes to the acceptor, which has no
            // connection yet; the dialer hears nothing.)
            let at = self.now + self.cfg.failure_timeout.as_micros() as u64;
            let ev = TransportEvent::ConnectFailed {
                addr: addr.to_string(),
                reason: "timed out".into(),
            };
            self.push(at, from, None, NetEvent::Transport(ev));
            return;
        }
        self.handshake(from, j);
    }

    /// A connection from `from` to `j`, both live and reachable: the acceptor learns of the
    /// dialer after one trip, the dialer after two. On a link a reset broke, it is a new
    /// connection: whatever still belongs to the old one is void.
    fn handshake(&mut self, from: NodeIdx, j: NodeIdx) {
        if self.broken.contains(&link(from, j)) {
            *self.conn_gen.entry(link(from, j)).or_insert(0) += 1;
        }
        let l1 = self.latency();
        let l2 = self.latency();
        let to_j = TransportEvent::Connected {
            node: self.nodes[from].id.clone(),
            incarnation: self.nodes[from].incarnation,
            addr: self.nodes[from].id.0.clone(),
        };
        let to_from = TransportEvent::Connected {
            node: self.nodes[j].id.clone(),
            incarnation: self.nodes[j].incarnation,
            addr: self.nodes[j].id.0.clone(),
        };
        let (fi, ji) = (self.nodes[from].incarnation, self.nodes[j].incarnation);
        self.push(
            self.now + l1,
            j,
            Some((from, fi)),
            NetEvent::Transport(to_j),
        );
        self.push(
            self.now + l1 + l2,
            from,
            Some((j, ji)),
            NetEvent::Transport(to_from),
        );
    }

    fn deliver(&mut self, q: Queued) {
        let Queued {
            seq,
            to,
            to_inc,
            from,
            conn,
            ev,
            ..
        } = q;
        let stale = conn.is_some_and(|(p, g)| g != self.gen_of(p, to));
        if !self.is_live(to) || self.nodes[to].incarnation != to_inc || stale {
            if matches!(ev, NetEvent::Message(_)) {
                self.stats.lost += 1;
            }
            return;
        }
        if let Some((f, finc)) = from {
            let key = link(f, to);
            let is_message = matches!(ev, NetEvent::Message(_));
            // Cut off; or reset meanwhile (the reset discards what was in flight, and a
            // handshake begun before it never completes); or a reset connection that no
            // handshake has re-established yet.
            if self.blocked.contains(&(f, to))
                || self.reset_between(f, to)
                || (is_message && self.broken.contains(&key))
            {
                if is_message {
                    self.stats.lost += 1;
                }
                return;
            }
            // A connection from a process that is still the one running carries on; bytes
            // from a crashed one are still delivered (they were in the socket buffers).
            if self.is_live(f) && self.nodes[f].incarnation == finc {
                match &ev {
                    NetEvent::Message(_) => self.connect_pair(f, to),
                    NetEvent::Transport(TransportEvent::Connected { .. }) => {
                        if !self.blocked.contains(&(to, f)) {
                            if self.broken.remove(&key) {
                                // A fresh handshake after a reset: the link works again.
                                self.half_open.remove(&(f, to));
                                self.half_open.remove(&(to, f));
                                self.stats.reconnects += 1;
                            }
                            self.connect_pair(f, to)
                        }
                    }
                    NetEvent::Transport(_) => {}
                }
            } else if matches!(ev, NetEvent::Transport(TransportEvent::Connected { .. })) {
                // The handshake's other side died meanwhile: the connection never happened.
                return;
            }
        }
        if let NetEvent::Transport(t) = &ev {
            self.audit_transport_event(to, t);
        }
        if let (Some((f, _)), NetEvent::Message(_)) = (from, &ev) {
            let last = self.delivered_seq.entry((f, to)).or_insert(0);
            if seq < *last {
                self.stats.reordered += 1;
            } else {
                *last = seq;
            }
        }
        let input = match ev {
            NetEvent::Message(env) => {
                self.trace(
                    if matches!(
                        env.message,
                        Message::Heartbeat(_) | Message::HeartbeatAck(_)
                    ) {
                        2
                    } else {
                        1
                    },
                    || {
                        format!(
                            "{} <- {}: {}",
                            self.nodes[to].id,
                            env.from,
                            short(&env.message)
                        )
                    },
                );
                Input::Transport(TransportEvent::Message(env))
            }
            NetEvent::Transport(ev) => {
                self.trace(1, || format!("{} <- transport: {ev:?}", self.nodes[to].id));
                Input::Transport(ev)
            }
        };
        self.input(to, input);
    }

    /// Counts closes and proofs, and checks the model's own promise: `Dead` only for an
    /// incarnation that is really gone, and only of a kind the configured mode reports.
    fn audit_transport_event(&mut self, to: NodeIdx, ev: &TransportEvent) {
        if let Some(log) = self.transport_log.as_mut() {
            log.push((Duration::from_micros(self.now), to, ev.clone()));
        }
        match ev {
            TransportEvent::Disconnected {
                how: CloseKind::Orderly,
                ..
            } => self.stats.orderly_closes += 1,
            TransportEvent::Disconnected {
                how: CloseKind::Abrupt,
                ..
            } => self.stats.resets += 1,
            TransportEvent::Dead {
                node,
                incarnation,
                proof,
            } => {
                self.stats.proofs += 1;
                if let Some(j) = self.index_of(node.as_str())
                    && !self.cfg.legacy_reset_proofs
                    && self.is_live(j)
                    && self.nodes[j].incarnation == *incarnation
                {
                    self.model_error = Some(format!(
                        "{} was told that {node} (incarnation {incarnation}) is dead ({proof}), but it runs",
                        self.nodes[to].id
                    ));
                }
                if *proof == DeathProof::RefusedAfterOrderlyClose
                    && self.cfg.death_proof == DeathProofMode::Timeout
                {
                    self.model_error = Some(format!(
                        "{} got a refused-after-orderly-close proof for {node} in timeout mode",
                        self.nodes[to].id
                    ));
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------ faults

    /// Kills node `i` (like `kill -9`). Every live peer connected to it and not cut off from
    /// it sees the connection close (`Disconnected`), after the bytes already in flight, then
    /// gets its reconnect refused (`Dead`). Peers cut off see nothing and must time out.
    pub fn crash(&mut self, i: NodeIdx) {
        if !self.is_live(i) {
            return;
        }
        self.trace(1, || format!("FAULT crash {}", self.nodes[i].id));
        self.remove(i);
    }

    fn remove(&mut self, i: NodeIdx) {
        let inc = self.nodes[i].incarnation;
        self.nodes[i].engine = None;
        self.nodes[i].wake = None;
        let peers: Vec<NodeIdx> = self
            .conns
            .iter()
            .filter_map(|&(a, b)| {
                if a == i {
                    Some(b)
                } else if b == i {
                    Some(a)
                } else {
                    None
                }
            })
            .collect();
        self.conns.retain(|&(a, b)| a != i && b != i);
        // Its half-open connections die with it (its peers were already cut off from it).
        self.half_open.retain(|&(w, _)| w != i);
        let (plo, phi) = (
            self.cfg.proof_delay.0.as_micros() as u64,
            self.cfg.proof_delay.1.as_micros() as u64,
        );
        for j in peers {
            if !self.is_live(j)
                || self.blocked.contains(&(i, j))
                || self.blocked.contains(&(j, i))
                || self.reset_between(i, j)
            {
                continue;
            }
            let in_flight = self.last_delivery.get(&(i, j)).copied().unwrap_or(0);
            let closed = (self.now + self.latency()).max(in_flight + 1);
            let proof = closed + self.rng.range(plo, phi);
            let id = self.nodes[i].id.clone();
            // The process is gone: its kernel closes its sockets in order (FIN).
            self.push(
                closed,
                j,
                None,
                NetEvent::Transport(TransportEvent::Disconnected {
                    node: id.clone(),
                    how: CloseKind::Orderly,
                }),
            );
            // The redial is refused. Only a transport in orderly-close mode calls that proof.
            if self.cfg.death_proof == DeathProofMode::OrderlyClose {
                self.push(
                    proof,
                    j,
                    None,
                    NetEvent::Transport(TransportEvent::Dead {
                        node: id,
                        incarnation: inc,
                        proof: DeathProof::RefusedAfterOrderlyClose,
                    }),
                );
            }
        }
    }

    /// Restarts a stopped node with a new incarnation, handing it its persisted state when the
    /// simulation has persistence. It dials its seeds (every other node) and rejoins its groups.
    pub fn restart(&mut self, i: NodeIdx) {
        let persist = self.cfg.persistence;
        self.restart_with(i, persist);
    }

    /// Restarts a stopped node, with or without its persisted state.
    pub fn restart_with(&mut self, i: NodeIdx, persistence: bool) {
        if self.is_live(i) {
            return;
        }
        self.trace(1, || {
            format!(
                "FAULT restart {} (persistence: {persistence})",
                self.nodes[i].id
            )
        });
        let persisted = if persistence {
            self.nodes[i].store.clone()
        } else {
            // A blank disk: the term invariant starts over for this node, and terms may repeat
            // in the cluster (see `forgetful`).
            self.nodes[i].store = None;
            self.nodes[i].terms.clear();
            self.forgetful = true;
            None
        };
        self.boot(i, persisted);
    }

    fn boot(&mut self, i: NodeIdx, persisted: Option<PersistedState>) {
        self.nodes[i].incarnation += 1;
        let inc = self.nodes[i].incarnation;
        let quorum = match &self.cfg.quorum {
            SimQuorum::Majority(v) => {
                Quorum::Majority(v.iter().map(|&j| self.nodes[j].id.clone()).collect())
            }
            SimQuorum::None => Quorum::None,
        };
        let mut c = EngineConfig::new(self.nodes[i].id.0.clone(), inc, quorum)
            .with_timing(self.cfg.heartbeat, self.cfg.failure_timeout);
        c.backoff = self.cfg.backoff;
        c.death_proof = self.cfg.death_proof;
        c.seeds = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n.id.0.clone())
            .collect();
        c.hardware = Hardware {
            cpus: 1 + (i as u32 * 3) % 5,
            memory_bytes: 1 << 30,
            weight: None,
        };
        c.rng_seed = self.rng.next_u64();
        let engine = Engine::new(
            c,
            Arc::new(ByMemberId),
            self.specs.clone(),
            persisted,
            self.clock_of(i),
        );
        self.nodes[i].engine = Some(engine);
        self.input(i, Input::Tick);
        let groups: Vec<String> = self.nodes[i].joined.iter().cloned().collect();
        for g in groups {
            self.join_input(i, g);
        }
    }

    fn join_input(&mut self, i: NodeIdx, group: String) {
        // The node's wall clock: its own (offset, drifting) clock.
        let started_at_ms = EPOCH_MS + (self.nodes[i].clock.read_ns(self.now) / 1_000_000) as u64;
        self.input(
            i,
            Input::Join {
                group,
                labels: Default::default(),
                started_at_ms,
            },
        );
    }

    /// Kind shutdown of node `i`: `Input::Shutdown` (it hands off what it leads and says
    /// goodbye), its actions are performed, then the process is gone like a crash.
    pub fn shutdown(&mut self, i: NodeIdx) {
        if !self.is_live(i) {
            return;
        }
        self.trace(1, || format!("FAULT shutdown {}", self.nodes[i].id));
        self.input(i, Input::Shutdown);
        self.remove(i);
    }

    /// Node `i`'s instance leaves `group` (handing off if it leads).
    pub fn leave(&mut self, i: NodeIdx, group: &str) {
        if !self.nodes[i].joined.remove(group) {
            return;
        }
        self.trace(1, || format!("FAULT {} leaves {group}", self.nodes[i].id));
        self.input(
            i,
            Input::Leave {
                group: group.to_string(),
            },
        );
    }

    /// Node `i` joins `group` with a new instance (a new member id).
    pub fn join(&mut self, i: NodeIdx, group: &str) {
        if !self.nodes[i].joined.insert(group.to_string()) {
            return;
        }
        self.trace(1, || format!("FAULT {} joins {group}", self.nodes[i].id));
        self.join_input(i, group.to_string());
    }

    /// Cuts every link between different sides (both ways). Nodes in no side keep their links.
    /// No transport events: the packets just vanish.
    pub fn partition(&mut self, sides: &[Vec<NodeIdx>]) {
        self.trace(1, || format!("FAULT partition {sides:?}"));
        for (a, side_a) in sides.iter().enumerate() {
            for (b, side_b) in sides.iter().enumerate() {
                if a != b {
                    for &x in side_a {
                        for &y in side_b {
                            self.blocked.insert((x, y));
                        }
                    }
                }
            }
        }
    }

    /// Cuts the link from `from` to `to` only (an asymmetric partition).
    pub fn cut(&mut self, from: NodeIdx, to: NodeIdx) {
        self.trace(1, || format!("FAULT cut {from} -> {to}"));
        if from != to {
            self.blocked.insert((from, to));
        }
    }

    /// Restores every link. Links a middlebox reset broke and no rule still resets get their
    /// connection back by a fresh handshake (the transports kept redialing).
    pub fn heal_partitions(&mut self) {
        self.trace(1, || "FAULT heal partitions".to_string());
        self.blocked.clear();
        self.redial_broken();
    }

    /// Starts a middlebox reset around node `i` (`REJECT --reject-with tcp-reset`, see
    /// [`ResetWay`] for where the rule sits): its established connections are reset — every
    /// end that the rule answers gets `Disconnected{how: Abrupt}` when it next sends, about
    /// one latency plus up to one heartbeat later — and from then on everything sent between
    /// it and its peers is lost and every redial is refused (by the side the rule answers; the
    /// other side's redial times out). Every process lives on: no `Dead` is ever reported.
    /// [`Sim::end_resets`] ends it.
    pub fn middlebox_reset(&mut self, i: NodeIdx, way: ResetWay) {
        let others: Vec<NodeIdx> = (0..self.nodes.len()).filter(|&j| j != i).collect();
        let rules: Vec<(NodeIdx, NodeIdx)> = match way {
            ResetWay::Both => others.iter().flat_map(|&j| [(i, j), (j, i)]).collect(),
            ResetWay::Outgoing => others.iter().map(|&j| (i, j)).collect(),
            ResetWay::Incoming => others.iter().map(|&j| (j, i)).collect(),
        };
        self.trace(1, || {
            format!(
                "FAULT middlebox reset around {} ({way:?})",
                self.nodes[i].id
            )
        });
        self.reset_links(&rules);
    }

    /// Adds middlebox reset rules, directed: packets from `.0` to `.1` are rejected with a
    /// reset to `.0` (`(a, b)` alone: a rule in `a`'s OUTPUT chain; both `(a, b)` and `(b, a)`:
    /// a firewall between them). The link's connection is reset as in
    /// [`Sim::middlebox_reset`]; an end no rule answers is not told and just hears nothing.
    pub fn reset_links(&mut self, rules: &[(NodeIdx, NodeIdx)]) {
        self.trace(1, || format!("FAULT reset rules {rules:?}"));
        let n = self.nodes.len();
        for &(a, b) in rules {
            if a != b && a < n && b < n {
                self.resets.insert((a, b));
            }
        }
        let links: BTreeSet<(NodeIdx, NodeIdx)> = rules
            .iter()
            .filter(|(a, b)| a != b && *a < n && *b < n)
            .map(|&(a, b)| link(a, b))
            .collect();
        let hb = self.cfg.heartbeat.as_micros() as u64;
        for key in links {
            // The connection is gone: in-flight bytes and half-done handshakes with it.
            let had = self.conns.remove(&key);
            self.broken.insert(key);
            *self.conn_gen.entry(key).or_insert(0) += 1;
            let (a, b) = key;
            for (who, peer) in [(a, b), (b, a)] {
                if !self.is_live(who) {
                    continue;
                }
                let open = had || self.half_open.contains(&(who, peer));
                if !open {
                    continue;
                }
                if self.resets.contains(&(who, peer)) {
                    // Its next packet to the peer is answered with a reset.
                    self.half_open.remove(&(who, peer));
                    let at = self.now + self.latency() + self.rng.below(hb.max(1));
                    let ev = TransportEvent::Disconnected {
                        node: self.nodes[peer].id.clone(),
                        how: CloseKind::Abrupt,
                    };
                    self.push_on_conn(at, who, peer, ev);
                    if self.cfg.legacy_reset_proofs && self.is_live(peer) {
                        // The wrong transport: its redial is refused, so it calls the peer dead.
                        let (plo, phi) = (
                            self.cfg.proof_delay.0.as_micros() as u64,
                            self.cfg.proof_delay.1.as_micros() as u64,
                        );
                        let ev = TransportEvent::Dead {
                            node: self.nodes[peer].id.clone(),
                            incarnation: self.nodes[peer].incarnation,
                            proof: DeathProof::RefusedAfterOrderlyClose,
                        };
                        let proof_at = at + self.rng.range(plo, phi);
                        self.push(proof_at, who, None, NetEvent::Transport(ev));
                    }
                } else {
                    self.half_open.insert((who, peer));
                }
            }
        }
    }

    /// Ends every middlebox reset: the rules are gone, and each link they broke between two
    /// live nodes that are not cut off gets a fresh handshake (`Connected` at both ends, with
    /// the same incarnations) — its transports kept redialing. A broken link to a stopped
    /// node heals when it restarts and dials; a partitioned one when the partition heals.
    pub fn end_resets(&mut self) {
        self.trace(1, || "FAULT end middlebox resets".to_string());
        self.resets.clear();
        self.redial_broken();
    }

    fn redial_broken(&mut self) {
        let broken: Vec<(NodeIdx, NodeIdx)> = self.broken.iter().copied().collect();
        for (a, b) in broken {
            if !self.is_live(a)
                || !self.is_live(b)
                || self.reset_between(a, b)
                || self.blocked.contains(&(a, b))
                || self.blocked.contains(&(b, a))
            {
                continue;
            }
            // The end that saw the reset redials (either, when both did or neither).
            let (from, to) = if self.half_open.contains(&(a, b)) {
                (b, a)
            } else if self.half_open.contains(&(b, a)) || self.rng.chance(0.5) {
                (a, b)
            } else {
                (b, a)
            };
            self.trace(1, || {
                format!(
                    "{} redials {} after the reset",
                    self.nodes[from].id, self.nodes[to].id
                )
            });
            self.handshake(from, to);
        }
    }

    /// Installs a filter every message passes before the network's normal treatment (for
    /// targeted scenarios: hold back one message, duplicate another late, …).
    pub fn intercept(
        &mut self,
        f: impl FnMut(Duration, NodeIdx, NodeIdx, &Message) -> Verdict + 'static,
    ) {
        self.interceptor = Some(Box::new(f));
    }

    /// Removes the filter.
    pub fn clear_interceptor(&mut self) {
        self.interceptor = None;
    }

    /// Changes the network's behaviour from now on (messages in flight keep their latency).
    pub fn set_net(&mut self, net: NetConfig) {
        self.trace(1, || format!("FAULT net {net:?}"));
        self.cfg.net = net;
    }

    /// Ends every fault: calm network, no partitions, no middlebox resets (broken links get a
    /// fresh handshake), every stopped node restarted, every group rejoined on every node.
    pub fn heal_all(&mut self) {
        self.set_net(NetConfig::calm());
        self.resets.clear();
        self.heal_partitions();
        for i in 0..self.nodes.len() {
            self.restart(i);
        }
        let groups: Vec<String> = self.cfg.groups.iter().map(|g| g.name.clone()).collect();
        for i in 0..self.nodes.len() {
            for g in &groups {
                self.join(i, g);
            }
        }
    }

    // ------------------------------------------------------------ invariants

    /// The safety invariants, checked after every step:
    /// (a) quorum mode: at most one member ever acts as leader per (group, term), and each new
    ///     leadership's term is above every earlier one (the fencing token only grows) —
    ///     until a node restarts without its persisted state, after which terms may repeat;
    /// (b) quorum mode: at most one node acts as leader of a group at any true instant (each
    ///     node judged by its own clock's reading at that instant);
    /// (c) a node's term for a group never decreases (within an incarnation, and across
    ///     restarts when state persists).
    fn check(&mut self) -> Result<(), Violation> {
        if let Some(msg) = self.model_error.take() {
            return Err(self.violation(format!("network model error: {msg}")));
        }
        let quorum = self.cfg.quorum.is_majority();
        for gi in 0..self.cfg.groups.len() {
            let group = self.cfg.groups[gi].name.clone();
            let mut acting: Vec<(NodeIdx, MemberId, Term)> = Vec::new();
            for i in 0..self.nodes.len() {
                let now = self.clock_of(i);
                let Some(e) = &self.nodes[i].engine else {
                    continue;
                };
                let term = e.term(&group);
                let is_acting = e.is_acting_leader(&group, now);
                let member = e.local_member(&group).cloned();
                let lterm = if is_acting {
                    e.leadership(&group, now).term
                } else {
                    0
                };
                let last = self.nodes[i].terms.get(&group).copied().unwrap_or(0);
                if term < last {
                    let msg = format!(
                        "invariant (c) violated: {}'s term for {group} went down from {last} to {term}",
                        self.nodes[i].id
                    );
                    return Err(self.violation(msg));
                }
                if term > last {
                    self.nodes[i].terms.insert(group.clone(), term);
                }
                if is_acting {
                    let Some(member) = member else {
                        let msg = format!(
                            "{} acts as leader of {group} without a member in it",
                            self.nodes[i].id
                        );
                        return Err(self.violation(msg));
                    };
                    acting.push((i, member, lterm));
                }
            }
            if !quorum {
                continue;
            }
            for (i, member, term) in &acting {
                match self.leaders.get(&(group.clone(), *term)) {
                    None if self.forgetful => {
                        self.leaders.insert((group.clone(), *term), member.clone());
                    }
                    None => {
                        // Fencing: a new leadership's term is above every earlier one.
                        let earlier = self
                            .leaders
                            .range((group.clone(), *term)..)
                            .take_while(|((g, _), _)| *g == group)
                            .next()
                            .map(|((_, t), m)| (*t, m.clone()));
                        if let Some((t, m)) = earlier {
                            let msg = format!(
                                "invariant (a) violated: {member} (on {}) leads {group} in term {term}, but {m} already led it in the higher term {t}: terms must only grow",
                                self.nodes[*i].id
                            );
                            return Err(self.violation(msg));
                        }
                        self.leaders.insert((group.clone(), *term), member.clone());
                        self.stats.leaderships += 1;
                        self.trace(1, || {
                            format!("CHECK {member} acts as leader of {group} in term {term}")
                        });
                    }
                    Some(m) if m == member || self.forgetful => {}
                    Some(m) => {
                        let msg = format!(
                            "invariant (a) violated: two leaders of {group} in term {term}: {m} earlier, now {member} (on {})",
                            self.nodes[*i].id
                        );
                        return Err(self.violation(msg));
                    }
                }
            }
            if acting.len() > 1 {
                let who: Vec<String> = acting
                    .iter()
                    .map(|(_, m, t)| format!("{m} (term {t})"))
                    .collect();
                let msg = format!(
                    "invariant (b) violated: {} nodes act as leader of {group} at once: {}",
                    acting.len(),
                    who.join(", ")
                );
                return Err(self.violation(msg));
            }
        }
        Ok(())
    }
}

/// A short description of a message for traces.
fn short(m: &Message) -> String {
    match m {
        Message::Heartbeat(h) => {
            let claims: Vec<String> = h
                .claims
                .iter()
                .map(|c| format!("{}@{}={}", c.group, c.term, c.member))
                .collect();
            format!("Heartbeat seq={} claims={claims:?}", h.seq)
        }
        Message::HeartbeatAck(a) => format!("Ack seq={} rejected={:?}", a.seq, a.rejected),
        Message::VoteRequest(r) => format!(
            "VoteRequest {} term={} cand={} pre={} handoff={:?}",
            r.group,
            r.term,
            r.candidate,
            r.pre,
            r.handoff.as_ref().map(|h| (h.from.to_string(), h.term))
        ),
        Message::VoteResponse(r) => format!(
            "VoteResponse {} term={} pre={} granted={} known={}",
            r.group, r.term, r.pre, r.granted, r.known_term
        ),
        Message::StepDown(s) => format!(
            "StepDown {} term={} from={} successor={:?}",
            s.group,
            s.term,
            s.from,
            s.successor.as_ref().map(|m| m.to_string())
        ),
        Message::Request(r) => format!("Request id={} {}", r.id, r.group),
        Message::Response(r) => format!("Response id={}", r.id),
        Message::Leave => "Leave".to_string(),
        other => format!("{other:?}"),
    }
}
