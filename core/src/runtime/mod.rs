//! The tokio runtime: a [`Node`] drives one [`Engine`] over a [`Transport`].
//!
//! The node owns a single task (the *driver*) that waits for whichever comes first — a
//! transport event, an API command, or the engine's next deadline — feeds it to the engine and
//! performs the actions it returns. All protocol decisions are the engine's; this module only
//! moves bytes, time and results in and out.

mod registry;

pub use registry::ClusterRegistry;

use crate::config::{Config, ConfigError, PolicySpec, QuorumMode};
use crate::engine::{
    Action, CallRef, Engine, EngineConfig, GroupSpec, Input, PersistedState, Quorum, StatusSnapshot,
};
use crate::message::{CallError, Served};
use crate::policy::{ByMemberId, LeaderPolicy};
use crate::registry::{Registry, RegistryError};
use crate::transport::{LocalNode, Refusal, Transport, TransportError};
use crate::types::{Labels, Leadership, MemberId, MemberRecord, NodeId, Term};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Why a node could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The node already has an instance in this group.
    #[error("this node already has an instance in group {0:?}")]
    AlreadyJoined(String),
    /// The state file under `data_dir` could not be read or written.
    #[error("state file {path}: {message}")]
    StateFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The node has shut down.
    #[error("the node has shut down")]
    ShutDown,
    /// The node stopped itself because it must not run: for example another live process
    /// already runs under its name.
    #[error("this node halted: {0}")]
    Halted(Refusal),
}

/// Whether the driver still runs, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RunState {
    Running,
    Stopped,
    Halted(Refusal),
}

/// One routed request, as a handler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    /// The group.
    pub group: String,
    /// The term this node leads under — the fencing token to attach to side effects.
    /// 0 when served by a non-leader (an `any` call).
    pub term: Term,
    /// Whether this node leads the group.
    pub leader: bool,
    /// Application bytes.
    pub payload: Vec<u8>,
}

/// Serves work routed to a group's leader.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one request; the error string travels back to the caller.
    async fn handle(&self, work: Work) -> Result<Vec<u8>, String>;
}

#[async_trait]
impl<F, Fut> Handler for F
where
    F: Fn(Work) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<u8>, String>> + Send + 'static,
{
    async fn handle(&self, work: Work) -> Result<Vec<u8>, String> {
        (self)(work).await
    }
}

/// Options of a routed call.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// Deadline (default: `timing.call_timeout_ms`).
    pub timeout: Option<Duration>,
    /// Serve at any member, not only the leader (the seed demo's `simple_work`).
    pub any: bool,
    /// On `NoLeader` / `LeaderChanged`, try again until the deadline.
    pub retry: bool,
}

enum Command {
    Join {
        group: String,
        labels: Labels,
        reply: oneshot::Sender<Result<MemberId, NodeError>>,
    },
    Leave {
        group: String,
        reply: oneshot::Sender<()>,
    },
    Call {
        group: String,
        any: bool,
        payload: Vec<u8>,
        timeout: Option<Duration>,
        reply: oneshot::Sender<Result<Served, CallError>>,
    },
    Reply {
        call: CallRef,
        result: Result<Served, CallError>,
    },
    External {
        group: String,
        members: Vec<MemberRecord>,
    },
    Status {
        reply: oneshot::Sender<StatusSnapshot>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

struct Shared {
    id: NodeId,
    addr: String,
    /// Changes only when a peer refused the node as stale and it moved above (`Reincarnate`).
    incarnation: AtomicU64,
    run: watch::Sender<RunState>,
    call_timeout: Duration,
    commands: mpsc::UnboundedSender<Command>,
    watches: Mutex<BTreeMap<String, watch::Sender<Leadership>>>,
    handlers: Mutex<BTreeMap<String, Arc<dyn Handler>>>,
    cluster_registry: ClusterRegistry,
    driver: Mutex<Option<JoinHandle<()>>>,
}

/// Locks a mutex, recovering from poisoning: the data behind these locks (watch senders,
/// handler tables) stays consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn watch(&self, group: &str) -> watch::Sender<Leadership> {
        lock(&self.watches)
            .entry(group.to_string())
            .or_insert_with(|| watch::channel(Leadership::none(group)).0)
            .clone()
    }
}

/// A running baton node: one process's membership in a cluster.
///
/// Cheap to clone; every clone is the same node.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use baton_core::{config::Config, Node, Transport};
/// use std::sync::Arc;
///
/// # struct Alone;
/// # #[async_trait::async_trait]
/// # impl Transport for Alone {
/// #     async fn start(&self, me: &baton_core::LocalNode) -> Result<String, baton_core::TransportError> { Ok(me.listen.clone()) }
/// #     async fn connect(&self, _: &str) {}
/// #     async fn send(&self, to: &baton_core::NodeId, _: baton_core::Message) -> Result<(), baton_core::TransportError> { Err(baton_core::TransportError::Unreachable(to.clone())) }
/// #     async fn recv(&self) -> Option<baton_core::TransportEvent> { std::future::pending().await }
/// #     async fn shutdown(&self) {}
/// # }
/// let mut config = Config::new("solo");
/// config.timing.failure_timeout_ms = 200;          // a lone node waits this long once
/// let node = Node::builder(config).transport(Arc::new(Alone)).start().await.unwrap();
/// let svc = node.join("tracked", Default::default()).await.unwrap();
/// let mut rx = svc.leadership();
/// let l = rx.wait_for(|l| l.is_me()).await.unwrap().clone();
/// assert_eq!(l.term, 1);
/// node.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
}

/// Builds a [`Node`].
pub struct NodeBuilder {
    config: Config,
    transport: Option<Arc<dyn Transport>>,
    registry: Option<Arc<dyn Registry>>,
    policy: Option<Arc<dyn LeaderPolicy>>,
    group_policies: BTreeMap<String, Arc<dyn LeaderPolicy>>,
    incarnation: Option<u64>,
}

impl NodeBuilder {
    /// The transport (required).
    pub fn transport(mut self, t: Arc<dyn Transport>) -> Self {
        self.transport = Some(t);
        self
    }
    /// An external registry instead of the cluster's own replicated table.
    pub fn registry(mut self, r: Arc<dyn Registry>) -> Self {
        self.registry = Some(r);
        self
    }
    /// The policy of groups that have no policy of their own (default: member-id order).
    pub fn policy(mut self, p: Arc<dyn LeaderPolicy>) -> Self {
        self.policy = Some(p);
        self
    }
    /// The policy of one group.
    pub fn group_policy(mut self, group: impl Into<String>, p: Arc<dyn LeaderPolicy>) -> Self {
        self.group_policies.insert(group.into(), p);
        self
    }
    /// Policies of several groups (e.g. `baton_strategies::policies_for(&config)?`).
    pub fn policies(mut self, map: BTreeMap<String, Arc<dyn LeaderPolicy>>) -> Self {
        self.group_policies.extend(map);
        self
    }
    /// Overrides the incarnation (default: wall-clock microseconds at start, so a restarted
    /// process always has a greater one).
    pub fn incarnation(mut self, inc: u64) -> Self {
        self.incarnation = Some(inc);
        self
    }

    /// Validates the config, starts the transport and the driver.
    pub async fn start(self) -> Result<Node, NodeError> {
        let NodeBuilder {
            config,
            transport,
            registry,
            policy,
            group_policies,
            incarnation,
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
                            "names {} but no policy object was given for it; build them with baton_strategies::policies_for(&config) and pass them to NodeBuilder::policies",
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
        let last = persisted.as_ref().map_or(0, |p| p.incarnation);
        let incarnation =
            incarnation.unwrap_or_else(|| wall_clock_us().max(last.saturating_add(1)));
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
        ecfg.backoff = Duration::from_millis(config.timing.election_backoff_ms);
        ecfg.call_timeout = Duration::from_millis(config.timing.call_timeout_ms);
        ecfg.seeds = config.seeds().into_iter().map(|s| s.addr).collect();
        ecfg.external_registry = registry.is_some();
        ecfg.rng_seed = incarnation ^ fnv(config.node.name.as_bytes());
        ecfg.death_proof = config.cluster.death_proof;
        let default_policy = policy.unwrap_or_else(|| Arc::new(ByMemberId));
        let engine = Engine::new(ecfg, default_policy, specs, persisted, now());

        let (tx, rx) = mpsc::unbounded_channel();
        let cluster_registry = ClusterRegistry::new(me.id.clone(), tx.clone());
        let shared = Arc::new(Shared {
            id: me.id.clone(),
            addr,
            incarnation: AtomicU64::new(incarnation),
            run: watch::channel(RunState::Running).0,
            call_timeout: Duration::from_millis(config.timing.call_timeout_ms),
            commands: tx,
            watches: Mutex::new(BTreeMap::new()),
            handlers: Mutex::new(BTreeMap::new()),
            cluster_registry,
            driver: Mutex::new(None),
        });
        if let Some(reg) = &registry {
            spawn_registry_watch(reg.clone(), shared.commands.clone()).await?;
        }
        let driver = Driver {
            engine,
            transport,
            registry,
            shared: shared.clone(),
            commands: rx,
            calls: HashMap::new(),
            next_call: AtomicU64::new(1),
            state_file,
            shutdown_waiters: Vec::new(),
            halt: None,
        };
        let handle = tokio::spawn(driver.run());
        *lock(&shared.driver) = Some(handle);
        Ok(Node { shared })
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

fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

fn wall_clock_ms() -> u64 {
    wall_clock_us() / 1000
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// `data_dir/state.json`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn load_state(path: &Path) -> Result<Option<PersistedState>, NodeError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let state: PersistedState =
                serde_json::from_slice(&bytes).map_err(|e| NodeError::StateFile {
                    path: path.to_path_buf(),
                    message: format!(
                        "corrupt or truncated ({e}); refusing to start with an unknown vote — inspect or remove the file"
                    ),
                })?;
            for (group, g) in &state.groups {
                let highest = g.term.max(g.vote.as_ref().map_or(0, |v| v.0));
                if crate::engine::next_term(highest).is_none() {
                    return Err(NodeError::StateFile {
                        path: path.to_path_buf(),
                        message: format!(
                            "group {group:?} has term {highest}, which cannot grow (terms stop below {}): no leader could ever be elected; the file is corrupt or was edited — inspect or remove it",
                            u64::MAX
                        ),
                    });
                }
            }
            Ok(Some(state))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::StateFile {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        }),
    }
}

/// Writes atomically: temp file, fsync, rename, fsync of the directory.
fn store_state(path: &Path, state: &PersistedState) -> Result<(), NodeError> {
    use std::io::Write;
    let err = |e: std::io::Error| NodeError::StateFile {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| NodeError::StateFile {
        path: path.to_path_buf(),
        message: format!("cannot encode: {e}"),
    })?;
    {
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
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

impl Node {
    /// Starts building a node from a config.
    pub fn builder(config: Config) -> NodeBuilder {
        NodeBuilder {
            config,
            transport: None,
            registry: None,
            policy: None,
            group_policies: BTreeMap::new(),
            incarnation: None,
        }
    }

    /// Starts a node with one default policy (shorthand for the builder).
    pub async fn start(
        config: Config,
        transport: Arc<dyn Transport>,
        registry: Option<Arc<dyn Registry>>,
        policy: Arc<dyn LeaderPolicy>,
    ) -> Result<Node, NodeError> {
        let mut b = Node::builder(config).transport(transport).policy(policy);
        if let Some(r) = registry {
            b = b.registry(r);
        }
        b.start().await
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.shared.id
    }

    /// The address the transport listens on.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// This process's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.shared.incarnation.load(Ordering::Relaxed)
    }

    /// Waits until the node has stopped: `Ok` after a shutdown (or when the transport closed),
    /// [`NodeError::Halted`] when it stopped itself because it must not run (another live
    /// process holds its name). A binary selects on this to exit with the reason.
    pub async fn stopped(&self) -> Result<(), NodeError> {
        let mut rx = self.shared.run.subscribe();
        let state = rx
            .wait_for(|s| *s != RunState::Running)
            .await
            .map(|s| s.clone())
            .unwrap_or(RunState::Stopped);
        match state {
            RunState::Halted(r) => Err(NodeError::Halted(r)),
            _ => Ok(()),
        }
    }

    /// The cluster's replicated member table (the default registry), as this node sees it.
    pub fn registry(&self) -> ClusterRegistry {
        self.shared.cluster_registry.clone()
    }

    /// Joins `group` with one instance of this node.
    pub async fn join(&self, group: &str, labels: Labels) -> Result<Service, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Join {
                group: group.to_string(),
                labels,
                reply,
            })
            .map_err(|_| NodeError::ShutDown)?;
        let member = rx.await.map_err(|_| NodeError::ShutDown)??;
        Ok(Service {
            node: self.clone(),
            group: group.to_string(),
            member,
            rx: self.shared.watch(group).subscribe(),
        })
    }

    /// Watches the leadership of any group, joined or not.
    pub fn leadership(&self, group: &str) -> watch::Receiver<Leadership> {
        self.shared.watch(group).subscribe()
    }

    /// Routes `payload` to the leader of `group` and waits for its answer.
    pub async fn call_leader(&self, group: &str, payload: Vec<u8>) -> Result<Served, CallError> {
        self.call(group, payload, CallOptions::default()).await
    }

    /// Routes `payload` to any member of `group` (the seed demo's naive `simple_work`).
    pub async fn call_any(&self, group: &str, payload: Vec<u8>) -> Result<Served, CallError> {
        self.call(
            group,
            payload,
            CallOptions {
                any: true,
                ..Default::default()
            },
        )
        .await
    }

    /// Routes a call with options.
    pub async fn call(
        &self,
        group: &str,
        payload: Vec<u8>,
        opts: CallOptions,
    ) -> Result<Served, CallError> {
        let timeout = opts.timeout.unwrap_or(self.shared.call_timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(CallError::Timeout);
            }
            let (reply, rx) = oneshot::channel();
            self.shared
                .commands
                .send(Command::Call {
                    group: group.to_string(),
                    any: opts.any,
                    payload: payload.clone(),
                    timeout: Some(remaining),
                    reply,
                })
                .map_err(|_| CallError::ShuttingDown)?;
            let result = rx.await.unwrap_or(Err(CallError::ShuttingDown));
            match result {
                Err(CallError::LeaderChanged { .. } | CallError::NoLeader { .. })
                    if opts.retry && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                other => return other,
            }
        }
    }

    /// What this node knows of the cluster.
    pub async fn status(&self) -> Result<StatusSnapshot, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Status { reply })
            .map_err(|_| NodeError::ShutDown)?;
        rx.await.map_err(|_| NodeError::ShutDown)
    }

    /// Kind shutdown: hands off every group this node leads, tells its peers it is leaving,
    /// closes the transport. Idempotent.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self
            .shared
            .commands
            .send(Command::Shutdown { reply })
            .is_ok()
        {
            let _ = rx.await;
        }
        let handle = lock(&self.shared.driver).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// Stops the node abruptly, as if its process died: no handoff, no goodbye. For tests
    /// and benches; the transport is left as it is (crash it through its own controls).
    pub fn abort(&self) {
        if let Some(h) = lock(&self.shared.driver).take() {
            h.abort();
        }
    }
}

/// This node's instance in one group.
pub struct Service {
    node: Node,
    group: String,
    member: MemberId,
    rx: watch::Receiver<Leadership>,
}

impl Service {
    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }
    /// This instance's member id.
    pub fn member(&self) -> &MemberId {
        &self.member
    }
    /// The node it runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }
    /// A watch of the group's leadership as this node sees it.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.rx.clone()
    }
    /// True while this instance leads (and holds its lease).
    pub fn is_leader(&self) -> bool {
        self.rx.borrow().is_me()
    }
    /// The current term when this instance leads — the fencing token.
    pub fn fencing_token(&self) -> Option<Term> {
        let l = self.rx.borrow();
        l.is_me().then_some(l.term)
    }
    /// Calls `f` on every leadership change (the seed's "function to call on a new leader").
    /// Runs until the node shuts down.
    pub fn on_change<F>(&self, f: F)
    where
        F: Fn(&Leadership) + Send + 'static,
    {
        let mut rx = self.rx.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let l = rx.borrow_and_update().clone();
                f(&l);
            }
        });
    }
    /// Serves work routed to this group while this instance leads (and `any` calls always).
    pub fn serve<H: Handler>(&self, handler: H) {
        lock(&self.node.shared.handlers).insert(self.group.clone(), Arc::new(handler));
    }
    /// Leaves the group (handing off first if this instance leads).
    pub async fn leave(self) {
        let (reply, rx) = oneshot::channel();
        if self
            .node
            .shared
            .commands
            .send(Command::Leave {
                group: self.group.clone(),
                reply,
            })
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

struct Driver {
    engine: Engine,
    transport: Arc<dyn Transport>,
    registry: Option<Arc<dyn Registry>>,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    calls: HashMap<u64, oneshot::Sender<Result<Served, CallError>>>,
    next_call: AtomicU64,
    state_file: Option<PathBuf>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    /// Set by [`Action::Halt`]: the driver stops after the current actions.
    halt: Option<Refusal>,
}

impl Driver {
    async fn run(mut self) {
        // Meet the cluster.
        let first = self.engine.handle(now(), Input::Tick);
        self.perform(first).await;
        loop {
            let deadline = self
                .engine
                .next_deadline()
                .map(tokio::time::Instant::from_std);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let input = tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => match self.command(cmd).await {
                        Some(input) => input,
                        None => continue,
                    },
                    None => Input::Shutdown,
                },
                ev = self.transport.recv() => match ev {
                    Some(ev) => Input::Transport(ev),
                    None => {
                        tracing::warn!(node = %self.shared.id, "transport closed; node stops");
                        break;
                    }
                },
                _ = sleep => Input::Tick,
            };
            let shutting_down = matches!(input, Input::Shutdown);
            let actions = self.engine.handle(now(), input);
            self.perform(actions).await;
            if shutting_down || self.halt.is_some() {
                break;
            }
        }
        self.finish().await;
    }

    async fn finish(&mut self) {
        self.transport.shutdown().await;
        for (_, tx) in self.calls.drain() {
            let _ = tx.send(Err(CallError::ShuttingDown));
        }
        self.shared.cluster_registry.close();
        // Answer whoever waits: anything still queued finds the node gone.
        self.commands.close();
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Join { reply, .. } => {
                    let _ = reply.send(Err(NodeError::ShutDown));
                }
                Command::Call { reply, .. } => {
                    let _ = reply.send(Err(CallError::ShuttingDown));
                }
                Command::Leave { reply, .. } | Command::Shutdown { reply } => {
                    let _ = reply.send(());
                }
                Command::Status { reply } => {
                    let _ = reply.send(self.engine.status(now()));
                }
                Command::Reply { .. } | Command::External { .. } => {}
            }
        }
        for (_, w) in lock(&self.shared.watches).iter() {
            w.send_modify(|l| l.is_me = false);
        }
        for w in self.shutdown_waiters.drain(..) {
            let _ = w.send(());
        }
        let end = match self.halt.take() {
            Some(r) => RunState::Halted(r),
            None => RunState::Stopped,
        };
        self.shared.run.send_replace(end);
    }

    /// Turns a command into an engine input (or answers it directly).
    async fn command(&mut self, cmd: Command) -> Option<Input> {
        match cmd {
            Command::Join {
                group,
                labels,
                reply,
            } => {
                if self.engine.local_member(&group).is_some() {
                    let _ = reply.send(Err(NodeError::AlreadyJoined(group)));
                    return None;
                }
                self.shared.watch(&group);
                let started_at_ms = wall_clock_ms();
                let actions = self.engine.handle(
                    now(),
                    Input::Join {
                        group: group.clone(),
                        labels: labels.clone(),
                        started_at_ms,
                    },
                );
                self.perform(actions).await;
                let Some(member) = self.engine.local_member(&group).cloned() else {
                    let _ = reply.send(Err(NodeError::ShutDown));
                    return None;
                };
                if let Some(reg) = &self.registry {
                    let cfg = self.engine.config();
                    let mut all = cfg.labels.clone();
                    all.extend(labels);
                    let record = MemberRecord {
                        id: member.clone(),
                        group: group.clone(),
                        started_at_ms,
                        incarnation: cfg.incarnation,
                        hardware: cfg.hardware.clone(),
                        labels: all,
                    };
                    if let Err(e) = reg.register(record).await {
                        let _ = reply.send(Err(e.into()));
                        return Some(Input::Leave { group });
                    }
                }
                let _ = reply.send(Ok(member));
                None
            }
            Command::Leave { group, reply } => {
                let member = self.engine.local_member(&group).cloned();
                let actions = self.engine.handle(
                    now(),
                    Input::Leave {
                        group: group.clone(),
                    },
                );
                self.perform(actions).await;
                if let (Some(reg), Some(m)) = (&self.registry, member)
                    && let Err(e) = reg.deregister(&group, &m).await
                {
                    tracing::warn!(%group, error = %e, "registry deregister failed");
                }
                lock(&self.shared.handlers).remove(&group);
                let _ = reply.send(());
                None
            }
            Command::Call {
                group,
                any,
                payload,
                timeout,
                reply,
            } => {
                let id = self.next_call.fetch_add(1, Ordering::Relaxed);
                self.calls.insert(id, reply);
                Some(Input::Call {
                    id,
                    group,
                    any,
                    payload,
                    timeout,
                })
            }
            Command::Reply { call, result } => Some(Input::Reply { call, result }),
            Command::External { group, members } => Some(Input::ExternalMembers { group, members }),
            Command::Status { reply } => {
                let _ = reply.send(self.engine.status(now()));
                None
            }
            Command::Shutdown { reply } => {
                self.shutdown_waiters.push(reply);
                Some(Input::Shutdown)
            }
        }
    }

    async fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    if let Err(e) = self.transport.send(&to, message).await {
                        tracing::trace!(node = %self.shared.id, peer = %to, error = %e, "send failed");
                    }
                }
                Action::Connect { addr } => {
                    let t = self.transport.clone();
                    tokio::spawn(async move { t.connect(&addr).await });
                }
                Action::Leadership(l) => {
                    tracing::debug!(node = %self.shared.id, group = %l.group, leader = ?l.leader.as_ref().map(|m| m.to_string()), term = l.term, is_me = l.is_me, "leadership");
                    self.shared.watch(&l.group).send_replace(l);
                }
                Action::Members { group, members } => {
                    self.shared.cluster_registry.update(group, members);
                }
                Action::Persist(state) => {
                    let Some(path) = self.state_file.clone() else {
                        continue;
                    };
                    // The write (with its fsyncs) runs on the blocking pool and the driver
                    // waits for it — nothing after it may happen first — but other tasks go on:
                    // messages queued just before (a candidate's vote requests) leave now
                    // instead of after the disk.
                    let stored = tokio::task::spawn_blocking(move || store_state(&path, &state))
                        .await
                        .unwrap_or_else(|e| {
                            Err(NodeError::StateFile {
                                path: PathBuf::new(),
                                message: format!("the writer task failed: {e}"),
                            })
                        });
                    if let Err(e) = stored {
                        // Without durable state this node must not keep voting: stop it.
                        tracing::error!(node = %self.shared.id, error = %e, "cannot persist election state; shutting down");
                        let actions = self.engine.handle(now(), Input::Shutdown);
                        Box::pin(self.perform(actions)).await;
                        self.commands.close();
                        return;
                    }
                }
                Action::Serve {
                    call,
                    group,
                    member,
                    term,
                    leader,
                    payload,
                } => {
                    let handler = lock(&self.shared.handlers).get(&group).cloned();
                    let commands = self.shared.commands.clone();
                    match handler {
                        None => {
                            let _ = commands.send(Command::Reply {
                                call,
                                result: Err(CallError::NoHandler { group }),
                            });
                        }
                        Some(h) => {
                            tokio::spawn(async move {
                                let work = Work {
                                    group,
                                    term,
                                    leader,
                                    payload,
                                };
                                let result = match h.handle(work).await {
                                    Ok(payload) => Ok(Served {
                                        member,
                                        term,
                                        leader,
                                        payload,
                                    }),
                                    Err(e) => Err(CallError::Handler(e)),
                                };
                                let _ = commands.send(Command::Reply { call, result });
                            });
                        }
                    }
                }
                Action::CallDone { id, result } => {
                    if let Some(tx) = self.calls.remove(&id) {
                        let _ = tx.send(result);
                    }
                }
                Action::Reincarnate { incarnation } => {
                    if self.transport.reincarnate(incarnation).await {
                        self.shared
                            .incarnation
                            .store(incarnation, Ordering::Relaxed);
                    } else {
                        tracing::warn!(node = %self.shared.id, incarnation, "the transport cannot move to a new incarnation; restart this node to rejoin");
                    }
                }
                Action::Halt(refusal) => {
                    tracing::error!(node = %self.shared.id, "halting: {refusal}");
                    self.halt = Some(refusal);
                }
                Action::Event(event) => log_event(&self.shared.id, &event),
            }
        }
    }
}

/// Turns an engine [`Event`](crate::engine::Event) into a tracing record at the level the event
/// says, with its group and peer as fields (when it has them) and its `Display` as the message.
fn log_event(node: &crate::types::NodeId, event: &crate::engine::Event) {
    use crate::engine::Level;
    let group = event.group();
    let peer = event.peer().map(|p| p.as_str());
    match event.level() {
        Level::Debug => tracing::debug!(node = %node, group, peer, "{event}"),
        Level::Info => tracing::info!(node = %node, group, peer, "{event}"),
        Level::Warn => tracing::warn!(node = %node, group, peer, "{event}"),
    }
}
