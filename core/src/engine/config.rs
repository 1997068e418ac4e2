//! What the engine is configured with: the node, the quorum mode, the timings and the groups'
//! policies — and [`defaults`], the one place the protocol's default timings are written (the
//! TOML config, the transport fingerprint and the CLI take them from here).

use crate::policy::LeaderPolicy;
use crate::transport::DeathProofMode;
use crate::types::{Hardware, Incarnation, Labels, NodeId, Version};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The protocol's default timings. Every other default (the `[timing]` section of the TOML
/// config, [`crate::Fingerprint::default`], the CLI's call timeout) is derived from these.
pub mod defaults {
    use std::time::Duration;

    /// Heartbeat period.
    pub const HEARTBEAT: Duration = Duration::from_millis(100);
    /// Silence after which a peer is down. The lease defaults to `FAILURE_TIMEOUT − HEARTBEAT`.
    pub const FAILURE_TIMEOUT: Duration = Duration::from_millis(500);
    /// Rank `r` waits `r × BACKOFF` before campaigning.
    pub const BACKOFF: Duration = Duration::from_millis(50);
    /// Deadline of a routed call.
    pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

    /// `d` in whole milliseconds, for the config files' `*_ms` fields.
    pub const fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }
}

/// Whether a leader needs a majority. (Its arithmetic: [`Quorum::needed`], [`Quorum::is_voter`].)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quorum {
    /// Votes and leases from a majority of these voters.
    Majority(BTreeSet<NodeId>),
    /// No votes: every side of a partition elects its own leader.
    None,
}

/// Everything the engine needs to know about its node and the cluster.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This node.
    pub node: NodeId,
    /// This process's incarnation.
    pub incarnation: Incarnation,
    /// The address peers reach this node at.
    pub addr: String,
    /// This node's hardware.
    pub hardware: Hardware,
    /// This node's labels.
    pub labels: Labels,
    /// The software version this node runs (`[node] version`), announced with its members.
    pub version: Option<Version>,
    /// Quorum mode and voters.
    pub quorum: Quorum,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Silence after which a peer is down.
    pub failure_timeout: Duration,
    /// How long a majority-acknowledged heartbeat lets the leader act. Must be less than
    /// `failure_timeout`; with the default (`failure_timeout − heartbeat`) the protocol stays
    /// safe while clocks run at rates within `(ft − lease) / (ft + lease)` of each other
    /// (11 % at the defaults).
    pub lease: Duration,
    /// Rank `r` waits `r × backoff` before campaigning.
    pub backoff: Duration,
    /// Default deadline for routed calls.
    pub call_timeout: Duration,
    /// Seed addresses.
    pub seeds: Vec<String>,
    /// Take candidates from an external [`Registry`](crate::Registry) (fed with
    /// [`Input::ExternalMembers`](super::Input::ExternalMembers)) instead of the
    /// heartbeat-gossiped table.
    pub external_registry: bool,
    /// Seed for jitter and `any` routing (the simulator sets it; the runtime derives it).
    pub rng_seed: u64,
    /// Which proofs of death this node trusts (its own transport's and those a candidate
    /// attaches to a vote request).
    pub death_proof: DeathProofMode,
    /// Before a requested handoff (transfer, step-down) or one for ill health, ask the driver
    /// to release the group's leader work ([`Action::Release`](super::Action::Release)) and
    /// hand off only once it answers. Off by default (the engine alone, the simulator); the
    /// tokio runtime turns it on, so that hooks' work stops before a successor starts.
    pub release_first: bool,
}

impl EngineConfig {
    /// A config with the protocol defaults ([`defaults`]: 100 ms heartbeat, 500 ms failure
    /// timeout, a lease of their difference).
    pub fn new(
        node: impl Into<String>,
        incarnation: impl Into<Incarnation>,
        quorum: Quorum,
    ) -> Self {
        let incarnation = incarnation.into();
        let node = NodeId::new(node);
        let config = EngineConfig {
            addr: node.0.clone(),
            node,
            incarnation,
            hardware: Hardware::default(),
            labels: Labels::new(),
            version: None,
            quorum,
            heartbeat: defaults::HEARTBEAT,
            failure_timeout: defaults::FAILURE_TIMEOUT,
            lease: Duration::ZERO,
            backoff: defaults::BACKOFF,
            call_timeout: defaults::CALL_TIMEOUT,
            seeds: vec![],
            external_registry: false,
            rng_seed: incarnation.get(),
            death_proof: DeathProofMode::default(),
            release_first: false,
        };
        config.with_timing(defaults::HEARTBEAT, defaults::FAILURE_TIMEOUT)
    }

    /// Sets heartbeat and failure timeout, and the lease to `failure_timeout − heartbeat`.
    pub fn with_timing(mut self, heartbeat: Duration, failure_timeout: Duration) -> Self {
        self.heartbeat = heartbeat;
        self.failure_timeout = failure_timeout;
        self.lease = failure_timeout.saturating_sub(heartbeat);
        self
    }
}

/// Per-group settings.
#[derive(Clone)]
pub struct GroupSpec {
    /// Who should lead.
    pub policy: Arc<dyn LeaderPolicy>,
    /// Hand off to a better-ranked member when one appears.
    pub preempt: bool,
}

impl std::fmt::Debug for GroupSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSpec")
            .field("policy", &self.policy.name())
            .field("preempt", &self.preempt)
            .finish()
    }
}
