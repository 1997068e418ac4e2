//! What a simulation is built from: the cluster ([`SimConfig`]: size, quorum, groups,
//! timing, persistence, clocks), its groups ([`SimGroup`], [`PolicyKind`]) and the network's
//! behaviour ([`NetConfig`]).

use crate::clock::{self, Clock};
use crate::rng::Rng;
use baton_core::{DeathProofMode, GroupName};
use std::time::Duration;

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
    /// [`ByMemberId`](baton_core::ByMemberId): lowest member id first.
    MemberId,
    /// Earliest `started_at_ms` first, then member id (what `oldest-running` does).
    OldestRunning,
    /// Most CPUs first, then member id (a stand-in for `hardware-weight`).
    MostCpus,
    /// The node leading the fewest other groups first, then member id (a stand-in for
    /// `balanced`): leadership spreads over the nodes, so every node leads some groups and
    /// claims are contested group by group, and the engine's shared rankings run.
    FewestLed,
}

/// One simulated group (service pool); every node joins it at start.
#[derive(Clone, Debug)]
pub struct SimGroup {
    /// Its name.
    pub name: GroupName,
    /// Its policy.
    pub policy: PolicyKind,
    /// Whether a better-ranked member preempts the incumbent.
    pub preempt: bool,
}

impl SimGroup {
    /// A group with the member-id policy and no preemption.
    pub fn new(name: impl Into<GroupName>) -> Self {
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
    /// (the [`TransportEvent::Dead`](baton_core::TransportEvent::Dead) proof), counted from its `Disconnected`.
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
