//! [`NodeBuilder`]: validates the config, picks each group's policy, loads the state file,
//! chooses the incarnation, starts the transport and spawns the driver.

use super::driver::ElectorHook;
use super::driver::{Command, Driver, now, wall_clock_us};
use super::node::{Node, RunState, Shared, lock};
use super::state_file::{load_state, state_path, store_state};
use super::{ClusterRegistry, Elector, NodeError};
use crate::config::{Config, ConfigError, PolicySpec, QuorumMode};
use crate::engine::{Engine, EngineConfig, GroupSpec, PersistedState, Quorum};
use crate::policy::{ByMemberId, LeaderPolicy};
use crate::registry::Registry;
use crate::transport::{LocalNode, Transport};
use crate::types::{GroupName, Incarnation, NodeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

impl Node {
    /// Starts building a node from a config.
    pub fn builder(config: Config) -> NodeBuilder {
        NodeBuilder {
            config,
            transport: None,
            registry: None,
            elector: None,
            policy: None,
            group_policies: BTreeMap::new(),
            incarnation: None,
            release_timeout: super::hooks::DEFAULT_RELEASE_TIMEOUT,
        }
    }
}

/// Builds a [`Node`].
pub struct NodeBuilder {
    config: Config,
    transport: Option<Arc<dyn Transport>>,
    registry: Option<Arc<dyn Registry>>,
    elector: Option<Arc<dyn Elector>>,
    policy: Option<Arc<dyn LeaderPolicy>>,
    group_policies: BTreeMap<GroupName, Arc<dyn LeaderPolicy>>,
    incarnation: Option<Incarnation>,
    release_timeout: Duration,
}

/// Setters of the builder's plugged-in parts: each stores `Some(value)` in the field of its
/// name (the last call wins).
macro_rules! part_setters {
    ($($(#[$doc:meta])* $name:ident: $part:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: Arc<$part>) -> Self {
            self.$name = Some(value);
            self
        }
    )*};
}

impl NodeBuilder {
    part_setters! {
        /// The transport (required).
        transport: dyn Transport;
        /// An external registry instead of the cluster's own replicated table.
        registry: dyn Registry;
        /// Elections held outside the engine (e.g. `baton-backend-etcd`): the elector publishes
        /// every group's leadership; the engine never campaigns. Give the node the only handle:
        /// [`Node::abort`] drops it with the driver.
        elector: dyn Elector;
        /// The policy of groups that have no policy of their own (default: member-id order).
        policy: dyn LeaderPolicy;
    }
    /// The policy of one group.
    pub fn group_policy(mut self, group: impl Into<GroupName>, p: Arc<dyn LeaderPolicy>) -> Self {
        self.group_policies.insert(group.into(), p);
        self
    }
    /// Policies of several groups (e.g. `baton_strategies::policies_for(&config)?`, or
    /// `baton_strategies::Policies::with_builtins().register("mine", factory).build_for(&config)?`
    /// when the config names policies of your own).
    pub fn policies(mut self, map: BTreeMap<GroupName, Arc<dyn LeaderPolicy>>) -> Self {
        self.group_policies.extend(map);
        self
    }
    /// Overrides the incarnation (default: wall-clock microseconds at start, so a restarted
    /// process always has a greater one).
    pub fn incarnation(mut self, inc: impl Into<Incarnation>) -> Self {
        self.incarnation = Some(inc.into());
        self
    }

    /// How long a handoff this node chooses (shutdown, leave, a dropped last handle) waits,
    /// still leading, for the [`Service::on_started_leading`](super::Service::on_started_leading)
    /// work it cancelled to return before it releases leadership anyway (aborting that work's
    /// tasks and logging a warning). Default: [`DEFAULT_RELEASE_TIMEOUT`](super::DEFAULT_RELEASE_TIMEOUT)
    /// (5 s). Work that stops when told costs no wait at all.
    pub fn release_timeout(mut self, timeout: Duration) -> Self {
        self.release_timeout = timeout;
        self
    }

    /// Validates the config, starts the transport and the driver.
    pub async fn start(self) -> Result<Node, NodeError> {
        let NodeBuilder {
            config,
            transport,
            registry,
            elector,
            policy,
            group_policies,
            incarnation,
            release_timeout,
        } = self;
        config.validate()?;
        let transport = transport.ok_or_else(|| {
            ConfigError::field("transport", "no transport given to Node::builder")
        })?;
        let mut specs = BTreeMap::new();
        for g in &config.groups {
            let policy = match (group_policies.get(&g.name), &g.policy) {
                (Some(p), _) => p.clone(),
                (None, None) => policy.clone().unwrap_or_else(|| Arc::new(ByMemberId)),
                (None, Some(spec)) => {
                    return Err(ConfigError::field(
                        format!("group {:?}.policy", g.name),
                        format!(
                            "names {} but no policy object was given for it; build them with baton_strategies::policies_for(&config) (or, with policies of your own by name, baton_strategies::Policies::with_builtins().register(name, factory).build_for(&config)) and pass them to NodeBuilder::policies",
                            describe(spec)
                        ),
                    )
                    .into());
                }
            };
            specs.insert(
                g.name.clone(),
                GroupSpec {
                    policy,
                    preempt: g.preempt,
                },
            );
        }
        for (name, p) in &group_policies {
            specs.entry(name.clone()).or_insert_with(|| GroupSpec {
                policy: p.clone(),
                preempt: false,
            });
        }
        let state_file = config.node.data_dir.as_deref().map(state_path);
        let mut persisted = match &state_file {
            Some(path) => load_state(path)?,
            None => None,
        };
        // Above every incarnation an earlier process of this node used, also when the wall
        // clock was set back since: peers refuse an incarnation below one they know.
        let last = persisted.as_ref().map_or(Incarnation(0), |p| p.incarnation);
        let incarnation =
            incarnation.unwrap_or_else(|| Incarnation(wall_clock_us()).max(last.saturating_next()));
        if let (Some(path), Some(state)) = (&state_file, &mut persisted) {
            if state.incarnation != incarnation {
                state.incarnation = incarnation;
                store_state(path, state)?;
            }
        } else if let Some(path) = &state_file {
            let state = PersistedState {
                incarnation,
                ..PersistedState::default()
            };
            store_state(path, &state)?;
        }
        let me = LocalNode {
            id: NodeId::new(config.node.name.clone()),
            incarnation,
            listen: config.node.listen.clone(),
            fingerprint: config.fingerprint(),
            death_proof: config.cluster.death_proof,
        };
        let addr = transport.start(&me).await?;
        let quorum = match config.cluster.quorum {
            QuorumMode::Majority => Quorum::Majority(config.voter_ids()),
            QuorumMode::None => Quorum::None,
        };
        let mut ecfg = EngineConfig::new(config.node.name.clone(), incarnation, quorum)
            .with_timing(config.heartbeat(), config.failure_timeout());
        ecfg.addr = addr.clone();
        ecfg.hardware = config.node.hardware.resolve();
        ecfg.labels = config.node.labels.clone();
        ecfg.version = config.node.version()?;
        ecfg.backoff = Duration::from_millis(config.timing.election_backoff_ms);
        ecfg.call_timeout = Duration::from_millis(config.timing.call_timeout_ms);
        ecfg.seeds = config.seeds().into_iter().map(|s| s.addr).collect();
        // An elector's nodes take candidates from an external registry that stays empty: the
        // engine never campaigns, the elector publishes leadership.
        ecfg.external_registry = registry.is_some() || elector.is_some();
        ecfg.rng_seed = incarnation.get() ^ fnv(config.node.name.as_bytes());
        ecfg.death_proof = config.cluster.death_proof;
        // Transfers, step-downs and unhealthy leaders release their hooks' work first.
        ecfg.release_first = true;
        let default_policy = policy.unwrap_or_else(|| Arc::new(ByMemberId));
        let elector = elector.map(|elector| ElectorHook {
            elector,
            specs: specs.clone(),
            default_policy: default_policy.clone(),
        });
        let engine = Engine::new(ecfg, default_policy, specs, persisted, now());

        let (tx, rx) = mpsc::unbounded_channel();
        let cluster_registry = ClusterRegistry::new(me.id.clone(), tx.clone());
        let shared = Arc::new(Shared {
            id: me.id.clone(),
            addr,
            incarnation: AtomicU64::new(incarnation.get()),
            run: watch::channel(RunState::Running).0,
            call_timeout: Duration::from_millis(config.timing.call_timeout_ms),
            commands: tx,
            watches: Mutex::new(BTreeMap::new()),
            handlers: Mutex::new(BTreeMap::new()),
            cluster_registry,
            driver: Mutex::new(None),
            events: broadcast::channel(super::EVENT_BUFFER).0,
            hooks: Default::default(),
            release_timeout,
            elected: Mutex::new(BTreeMap::new()),
        });
        if let Some(reg) = &registry {
            spawn_registry_watch(reg.clone(), shared.commands.clone()).await?;
        }
        let driver = Driver {
            engine,
            transport,
            registry,
            elector,
            shared: shared.clone(),
            commands: rx,
            calls: HashMap::new(),
            controls: HashMap::new(),
            next_call: AtomicU64::new(1),
            state_file,
            shutdown_waiters: Vec::new(),
            halt: None,
        };
        let handle = tokio::spawn(driver.run());
        *lock(&shared.driver) = Some(handle);
        Ok(Node::from_shared(shared))
    }
}

fn describe(spec: &PolicySpec) -> String {
    match spec {
        PolicySpec::Named(n) => format!("policy {n:?}"),
        PolicySpec::Chain(_) => "a policy chain".into(),
        PolicySpec::Plugin(p) => format!("plugin {}", p.plugin.display()),
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn spawn_registry_watch(
    reg: Arc<dyn Registry>,
    commands: mpsc::UnboundedSender<Command>,
) -> Result<(), NodeError> {
    let mut watch = reg.subscribe().await?;
    tokio::spawn(async move {
        while let Some(group) = watch.changed().await {
            match reg.members(&group).await {
                Ok(members) => {
                    if commands.send(Command::External { group, members }).is_err() {
                        break;
                    }
                }
                Err(e) => tracing::warn!(%group, error = %e, "registry lookup failed"),
            }
        }
    });
    Ok(())
}
