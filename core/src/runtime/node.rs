//! [`Node`], the handle an application holds: join groups, watch leaderships, route calls,
//! ask for status, shut down. Every method sends a command to the driver (or reads what the
//! driver publishes in [`Shared`]); none touches the engine itself.

use super::driver::Command;
use super::hooks::HookRegistry;
use super::lifecycle::LastHandle;
use super::{ClusterRegistry, Handler, NodeError, NodeEvent, Service};
use crate::config::Config;
use crate::engine::StatusSnapshot;
use crate::message::{CallError, ControlError, ControlOp, HandedOff, Served};
use crate::policy::LeaderPolicy;
use crate::registry::Registry;
use crate::transport::{Refusal, Transport};
use crate::types::{GroupName, Incarnation, Labels, Leadership, NodeId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Why a transfer or a step-down ([`Node::transfer`], [`Service::step_down`]) was refused or
/// failed: the leader's typed refusal (not the leader, target unknown, target not a live
/// candidate, no other candidate) or a routing failure (no leader, timeout, shutting down).
pub type TransferError = ControlError;

/// Whether the driver still runs, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RunState {
    Running,
    Stopped,
    Halted(Refusal),
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

pub(super) struct Shared {
    pub(super) id: NodeId,
    pub(super) addr: String,
    /// Changes only when a peer refused the node as stale and it moved above (`Reincarnate`).
    pub(super) incarnation: AtomicU64,
    pub(super) run: watch::Sender<RunState>,
    pub(super) call_timeout: Duration,
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) watches: Mutex<BTreeMap<GroupName, watch::Sender<Leadership>>>,
    pub(super) handlers: Mutex<BTreeMap<GroupName, Arc<dyn Handler>>>,
    pub(super) cluster_registry: ClusterRegistry,
    pub(super) driver: Mutex<Option<JoinHandle<()>>>,
    /// What the driver did, for [`Node::subscribe`] (sent only while someone listens).
    pub(super) events: broadcast::Sender<NodeEvent>,
    /// Every service's leadership hooks, for the handoffs that release their work first.
    pub(super) hooks: HookRegistry,
    /// How long such a handoff waits for that work ([`NodeBuilder::release_timeout`](super::NodeBuilder::release_timeout)).
    pub(super) release_timeout: Duration,
    /// With an elector: leaderships it published that the engine has not been told yet, the
    /// latest per group. One `Command::Elected` is queued when this goes from empty to not, so
    /// a thousand groups elected at once cost one engine input, not a thousand.
    pub(super) elected: Mutex<BTreeMap<GroupName, Leadership>>,
}

/// Locks a mutex, recovering from poisoning: the data behind these locks (watch senders,
/// handler tables) stays consistent even if a holder panicked.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(super) fn watch(&self, group: &GroupName) -> watch::Sender<Leadership> {
        let mut watches = lock(&self.watches);
        // A lookup first: the group's name is cloned (for the key) only the first time, not on
        // every leadership the driver publishes.
        if let Some(w) = watches.get(group) {
            return w.clone();
        }
        watches
            .entry(group.clone())
            .or_insert_with(|| watch::channel(Leadership::none(group)).0)
            .clone()
    }
}

/// A running baton node: one process's membership in a cluster.
///
/// Cheap to clone; every clone is the same node. Dropping the last handle (every clone and
/// every [`Service`]) without [`Node::shutdown`] shuts the node down kindly in the background
/// and logs a warning (nothing waits for it: await `shutdown()` where the handoff must be
/// out before the process exits); dropping a [`Service`] leaves its group.
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
    pub(super) shared: Arc<Shared>,
    /// Shared by the clones: its drop is the last handle's ([`super::lifecycle`]).
    _last: Arc<LastHandle>,
}

impl Node {
    pub(super) fn from_shared(shared: Arc<Shared>) -> Node {
        let _last = Arc::new(LastHandle {
            shared: shared.clone(),
        });
        Node { shared, _last }
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
    pub fn incarnation(&self) -> Incarnation {
        Incarnation(self.shared.incarnation.load(Ordering::Relaxed))
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

    /// Follows what the driver does: every leadership publication, every engine
    /// [`Event`](crate::engine::Event), every call answered and served, in order (see
    /// [`NodeEvent`]). For observers — metrics, an admin server's event stream. A receiver
    /// that falls more than [`EVENT_BUFFER`](super::EVENT_BUFFER) events behind misses the
    /// oldest (`RecvError::Lagged`); the channel closes when the node stops.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.shared.events.subscribe()
    }

    /// Whether the node still runs: not shut down, halted, or stopped with [`Node::abort`].
    pub fn is_running(&self) -> bool {
        *self.shared.run.borrow() == RunState::Running
            && lock(&self.shared.driver)
                .as_ref()
                .is_some_and(|h| !h.is_finished())
    }

    /// Joins `group` with one instance of this node.
    pub async fn join(
        &self,
        group: impl Into<GroupName>,
        labels: Labels,
    ) -> Result<Service, NodeError> {
        let mut joined = self.join_all([(group.into(), labels)]).await?;
        joined.pop().ok_or(NodeError::ShutDown)
    }

    /// Joins many groups at once, one instance in each, and returns their services in the
    /// same order. Much cheaper than one [`join`](Self::join) after another when there are
    /// many: the engine ranks and announces all of them once. All or nothing: a group
    /// already joined, or named twice, refuses the whole call before any group is joined.
    pub async fn join_all(
        &self,
        groups: impl IntoIterator<Item = (GroupName, Labels)>,
    ) -> Result<Vec<Service>, NodeError> {
        let joins: Vec<(GroupName, Labels)> = groups.into_iter().collect();
        let names: Vec<GroupName> = joins.iter().map(|(g, _)| g.clone()).collect();
        let (reply, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Join { joins, reply })
            .map_err(|_| NodeError::ShutDown)?;
        let members = rx.await.map_err(|_| NodeError::ShutDown)??;
        Ok(names
            .into_iter()
            .zip(members)
            .map(|(group, member)| Service::new(self.clone(), group, member))
            .collect())
    }

    /// Watches the leadership of any group, joined or not.
    pub fn leadership(&self, group: impl Into<GroupName>) -> watch::Receiver<Leadership> {
        self.shared.watch(&group.into()).subscribe()
    }

    /// Routes `payload` to the leader of `group` and waits for its answer.
    pub async fn call_leader(
        &self,
        group: impl Into<GroupName>,
        payload: Vec<u8>,
    ) -> Result<Served, CallError> {
        self.call(group, payload, CallOptions::default()).await
    }

    /// Routes `payload` to any member of `group` (the seed demo's naive `simple_work`).
    pub async fn call_any(
        &self,
        group: impl Into<GroupName>,
        payload: Vec<u8>,
    ) -> Result<Served, CallError> {
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
        group: impl Into<GroupName>,
        payload: Vec<u8>,
        opts: CallOptions,
    ) -> Result<Served, CallError> {
        let group = group.into();
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
                    group: group.clone(),
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

    /// Asks the leader of `group` — wherever it runs: the request is routed to the leader this
    /// node knows — to hand leadership to node `to`'s member, as on a kind shutdown. `Ok` once
    /// the leader has stopped acting and named `to` its successor; `to` takes over within one
    /// vote round, or, if it has not within one failure timeout, the group elects as usual.
    /// Refused when `to` is unknown, down, no member of the group or unhealthy.
    pub async fn transfer(
        &self,
        group: impl Into<GroupName>,
        to: impl Into<NodeId>,
    ) -> Result<HandedOff, TransferError> {
        let op = ControlOp::Transfer { to: to.into() };
        self.control(group.into(), op).await
    }

    /// Asks the leader of `group` — wherever it runs, routed like [`Node::transfer`] — to step
    /// down in favour of the next member of its ranking: [`Service::step_down`] for a node
    /// that is no member of the group (an admin server, an operator's tool). Refused when
    /// there is no other live candidate.
    pub async fn step_down(&self, group: impl Into<GroupName>) -> Result<HandedOff, TransferError> {
        self.control(group.into(), ControlOp::StepDown).await
    }

    /// Sends a control request to the driver and waits for the leader's answer.
    pub(super) async fn control(
        &self,
        group: GroupName,
        op: ControlOp,
    ) -> Result<HandedOff, TransferError> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Control {
                group,
                op,
                timeout: None,
                reply,
            })
            .map_err(|_| ControlError::ShuttingDown)?;
        rx.await.unwrap_or(Err(ControlError::ShuttingDown))
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

    /// Kind shutdown: releases the services' leader work (see
    /// [`Service::on_started_leading`]), hands off every group this node leads, tells its peers
    /// it is leaving, closes the transport. Idempotent.
    pub async fn shutdown(&self) {
        super::lifecycle::shutdown(&self.shared).await;
    }

    /// Stops the node abruptly, as if its process died: no handoff, no goodbye. For tests
    /// and benches; the transport is left as it is (crash it through its own controls).
    pub fn abort(&self) {
        if let Some(h) = lock(&self.shared.driver).take() {
            h.abort();
        }
    }
}
