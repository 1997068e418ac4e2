//! [`MemoryNetwork`]: the hub every [`MemoryTransport`] endpoint is attached to, and the fault
//! controls.

use crate::transport::MemoryTransport;
use baton_core::config::Config;
use baton_core::{
    CloseKind, DeathProof, Envelope, Incarnation, Message, NodeId, TransportError, TransportEvent,
};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

/// How an endpoint leaves the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// A kind shutdown: messages already sent are still delivered, then peers see the close.
    Shutdown,
    /// A crash: its in-flight messages are lost.
    Crash,
}

/// Seed used by [`MemoryNetwork::new`].
pub const DEFAULT_SEED: u64 = 0x6261_746F_6E21; // "baton!"

/// Identifies one endpoint (one [`MemoryTransport`]) for the life of the network. Never reused,
/// so a restarted node (a new endpoint under the same name) is never confused with the old one.
pub(crate) type EndpointId = u64;

/// A directed link: (sender endpoint, receiver endpoint).
type LinkKey = (EndpointId, EndpointId);

/// Anything that names a node: `&str`, `String`, `&String`, [`NodeId`], `&NodeId`.
///
/// The fault controls on [`MemoryNetwork`] take `impl IntoNodeId` so that both
/// `net.crash("a")` and `net.crash(&id)` read naturally.
pub trait IntoNodeId {
    /// The node id.
    fn into_node_id(self) -> NodeId;
}

impl IntoNodeId for NodeId {
    fn into_node_id(self) -> NodeId {
        self
    }
}

impl IntoNodeId for &NodeId {
    fn into_node_id(self) -> NodeId {
        self.clone()
    }
}

impl IntoNodeId for &str {
    fn into_node_id(self) -> NodeId {
        NodeId::new(self)
    }
}

impl IntoNodeId for String {
    fn into_node_id(self) -> NodeId {
        NodeId(self)
    }
}

impl IntoNodeId for &String {
    fn into_node_id(self) -> NodeId {
        NodeId(self.clone())
    }
}

/// Counters kept by a [`MemoryNetwork`], for assertions in tests and numbers in benches.
///
/// Every message accepted by `send` is eventually counted once in `delivered` (twice when
/// duplicated) or once in `dropped`, unless it is still in flight (see
/// [`MemoryNetwork::in_flight`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Messages accepted by `send` (`Ok(())` returned), including ones later dropped.
    pub sent: u64,
    /// Message envelopes handed to a receiving endpoint (duplicates count twice).
    pub delivered: u64,
    /// Messages lost: by the drop rate, by a partition (at send or while in flight), or
    /// discarded in flight by a crash, a link reset or the receiver going away.
    pub dropped: u64,
    /// Messages the duplicate rate sent twice.
    pub duplicated: u64,
}

/// One endpoint's view of a peer it has a connection with.
#[derive(Clone, Debug)]
struct Link {
    endpoint: EndpointId,
    incarnation: Incarnation,
    addr: String,
}

/// A started endpoint.
struct Endpoint {
    node: NodeId,
    incarnation: Incarnation,
    addr: String,
    tx: UnboundedSender<TransportEvent>,
    closed: Arc<AtomicBool>,
    /// Connections this endpoint believes are open, by peer name. A link whose endpoint is no
    /// longer live is *stale*: the peer died where this endpoint could not see it (behind a
    /// partition) and the proof has not reached it yet.
    links: BTreeMap<NodeId, Link>,
    /// The endpoints of `links` (kept with it by [`Endpoint::set_link`] and
    /// [`Endpoint::unlink`]): whether a message's link is open is one integer lookup, not a
    /// search by name.
    linked: HashSet<EndpointId>,
    /// The last process this endpoint had a link with at each address (node, incarnation,
    /// endpoint): what a refused or differently-answered `connect` proves dead.
    known_addrs: HashMap<String, (NodeId, Incarnation, EndpointId)>,
}

impl Endpoint {
    /// Records the link to `node` (replacing any to an older process of it); the old one.
    fn set_link(&mut self, node: NodeId, link: Link) -> Option<Link> {
        let new = link.endpoint;
        let old = self.links.insert(node, link);
        if let Some(o) = &old {
            self.linked.remove(&o.endpoint);
        }
        self.linked.insert(new);
        old
    }

    /// Forgets the link to `node`.
    fn unlink(&mut self, node: &NodeId) {
        if let Some(o) = self.links.remove(node) {
            self.linked.remove(&o.endpoint);
        }
    }
}

/// A delayed event on a directed link, due at `due`.
struct Queued {
    due: Instant,
    event: TransportEvent,
}

/// The FIFO of one directed link while it has delayed traffic; one pump task drains it.
struct LinkQueue {
    /// Which pump owns this queue; a pump that finds another generation exits.
    generation: u64,
    /// The sender's name (the sender endpoint may be gone by delivery time).
    from_node: NodeId,
    items: VecDeque<Queued>,
}

/// Everything behind the lock.
struct State {
    next_id: u64,
    endpoints: BTreeMap<EndpointId, Endpoint>,
    by_addr: HashMap<String, EndpointId>,
    by_node: HashMap<NodeId, EndpointId>,
    /// Node name → partition set index; `None` when there is no partition. Names not in the
    /// map are in the implicit "everyone else" set.
    partition: Option<HashMap<NodeId, usize>>,
    drop_rate: f64,
    duplicate_rate: f64,
    delay: Duration,
    /// Per-link delays, keyed by the two names in sorted order.
    link_delays: HashMap<(NodeId, NodeId), Duration>,
    queues: HashMap<LinkKey, LinkQueue>,
    rng: fastrand::Rng,
    stats: NetworkStats,
}

pub(crate) struct Inner {
    state: Mutex<State>,
}

/// The hub of an in-process cluster: endpoints register here, messages and peer events move
/// through here, and faults are injected here.
///
/// Cheap to clone (an `Arc` inside); every clone is the same network. Create endpoints with
/// [`MemoryNetwork::transport`]. All fault controls take effect at once and name nodes by
/// their [`NodeId`] (see [`IntoNodeId`]).
///
/// Fault decisions (drop, duplicate) come from a seeded RNG ([`MemoryNetwork::with_seed`]):
/// the same seed and the same order of sends give the same outcome.
#[derive(Clone)]
pub struct MemoryNetwork {
    inner: Arc<Inner>,
}

impl Default for MemoryNetwork {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("MemoryNetwork")
            .field(
                "live",
                &st.endpoints
                    .values()
                    .map(|e| (&e.node.0, e.incarnation))
                    .collect::<Vec<_>>(),
            )
            .field("partitioned", &st.partition.is_some())
            .field(
                "drop, duplicate, delay",
                &(st.drop_rate, st.duplicate_rate, st.delay),
            )
            .field("stats", &st.stats)
            .finish_non_exhaustive()
    }
}

impl MemoryNetwork {
    /// A fresh network with no endpoints and no faults, seeded with [`DEFAULT_SEED`].
    pub fn new() -> Self {
        Self::with_seed(DEFAULT_SEED)
    }

    /// A fresh network whose drop and duplicate decisions come from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        MemoryNetwork {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    next_id: 1,
                    endpoints: BTreeMap::new(),
                    by_addr: HashMap::new(),
                    by_node: HashMap::new(),
                    partition: None,
                    drop_rate: 0.0,
                    duplicate_rate: 0.0,
                    delay: Duration::ZERO,
                    link_delays: HashMap::new(),
                    queues: HashMap::new(),
                    rng: fastrand::Rng::with_seed(seed),
                    stats: NetworkStats::default(),
                }),
            }),
        }
    }

    /// A new, unstarted endpoint on this network. It joins the network when
    /// [`Transport::start`](baton_core::Transport::start) registers it under its `listen`
    /// address.
    pub fn transport(&self) -> MemoryTransport {
        let id = {
            let mut st = self.lock();
            st.fresh_id()
        };
        MemoryTransport::new(self.clone(), id)
    }

    /// The config of member `name` of an in-memory cluster of `names`: it listens at its own
    /// name (the address [`MemoryTransport`] registers), seeds every other name and counts
    /// every name as a voter; the rest is [`Config::new`]'s defaults. The starting point of an
    /// in-process cluster (the examples, tests), to adjust before building the node.
    pub fn member_config(name: &str, names: &[impl AsRef<str>]) -> Config {
        let mut config = Config::new(name);
        config.node.listen = name.into();
        let all = names.iter().map(|n| n.as_ref().to_string());
        config.cluster.seeds = all.clone().filter(|n| n != name).collect();
        config.cluster.voters = all.collect();
        config
    }

    // ----- fault controls -------------------------------------------------------------------

    /// Kills `node`'s process: its endpoint is removed without a goodbye, messages in flight
    /// from or to it are dropped, and its `recv()` returns `None`. Every peer with a link to it
    /// (and not partitioned from it) sees `Disconnected { node }` then — the reconnect being
    /// refused — `Dead { node, incarnation }`. A peer behind a partition sees nothing until the
    /// partition heals or it connects to the node's address.
    ///
    /// Returns false when no live endpoint has that name.
    pub fn crash(&self, node: impl IntoNodeId) -> bool {
        let node = node.into_node_id();
        let mut st = self.lock();
        match st.by_node.get(&node).copied() {
            Some(ep) => {
                tracing::debug!(%node, "memory network: crash");
                st.remove_endpoint(ep, Exit::Crash)
            }
            None => false,
        }
    }

    /// Resets the connection between two live nodes, as a middlebox might: both see
    /// `Disconnected { other }`, messages in flight on the link are dropped, then the immediate
    /// reconnect succeeds and both see `Connected { other, same incarnation }`. Never `Dead`:
    /// a reset proves nothing. If the two are partitioned, the reconnect gets no answer: both
    /// see only `Disconnected`.
    ///
    /// Returns false when either node is not live or they have no link.
    pub fn reset_link(&self, a: impl IntoNodeId, b: impl IntoNodeId) -> bool {
        let (a, b) = (a.into_node_id(), b.into_node_id());
        let mut st = self.lock();
        let (Some(ea), Some(eb)) = (st.by_node.get(&a).copied(), st.by_node.get(&b).copied())
        else {
            return false;
        };
        if ea == eb || !st.linked(ea, eb) {
            return false;
        }
        tracing::debug!(%a, %b, "memory network: reset link");
        st.discard_queue((ea, eb));
        st.discard_queue((eb, ea));
        for (x, y, y_node) in [(ea, eb, &b), (eb, ea, &a)] {
            if let Some(e) = st.endpoints.get_mut(&x)
                && e.links.get(y_node).is_some_and(|l| l.endpoint == y)
            {
                e.unlink(y_node);
            }
            st.emit(
                x,
                TransportEvent::Disconnected {
                    node: y_node.clone(),
                    how: CloseKind::Abrupt,
                },
            );
        }
        if !st.partitioned(&a, &b) {
            st.link(ea, eb);
        }
        true
    }

    /// Splits the nodes into `sets`: messages between different sets are dropped silently and
    /// connection attempts across sets get no answer at all (a black hole: no `Connected`, no
    /// `ConnectFailed`, no `Dead`). Within a set, nothing changes.
    ///
    /// Nodes named in no set — including nodes started later — together form one more set.
    /// A node named in several sets belongs to the first. Each call **replaces** the previous
    /// partition (it does not add to it); [`heal`](Self::heal) removes it.
    ///
    /// Existing connections across the cut are not closed (no events); messages in flight
    /// across it are dropped when they arrive. When the cut no longer separates a node from a
    /// peer that died meanwhile, the node gets the proof then (see [`heal`](Self::heal)).
    pub fn partition<N: Clone + IntoNodeId>(&self, sets: &[&[N]]) {
        let mut map = HashMap::new();
        for (i, set) in sets.iter().enumerate() {
            for n in set.iter() {
                map.entry(n.clone().into_node_id()).or_insert(i);
            }
        }
        let mut st = self.lock();
        tracing::debug!(sets = sets.len(), "memory network: partition");
        st.partition = Some(map);
        st.reconcile();
    }

    /// Cuts `node` off from every other node: `partition(&[&[node]])`. Replaces any previous
    /// partition.
    pub fn isolate(&self, node: impl IntoNodeId) {
        self.partition(&[&[node.into_node_id()]]);
    }

    /// Removes the partition **and every other fault**: drop rate, duplicate rate, delays
    /// (global and per link). Messages already in flight keep their delivery time.
    ///
    /// Peers that kept a connection to a node which died behind the partition now get the
    /// proof, as the reset of that dead connection would bring it: `Disconnected { node }`,
    /// `Dead { node, old incarnation }`, and — if a newer process of it listens at the same
    /// address by now — `Connected { node, new incarnation }` (the newer process sees
    /// `Connected` too).
    pub fn heal(&self) {
        let mut st = self.lock();
        tracing::debug!("memory network: heal");
        st.partition = None;
        st.drop_rate = 0.0;
        st.duplicate_rate = 0.0;
        st.delay = Duration::ZERO;
        st.link_delays.clear();
        st.reconcile();
    }

    /// Drops each message with probability `p` (clamped to `0.0..=1.0`; NaN counts as 0).
    /// 1.0 drops everything, 0.0 nothing. Peer events are never dropped.
    pub fn set_drop_rate(&self, p: f64) {
        self.lock().drop_rate = clamp_rate(p);
    }

    /// Delivers each message twice (back to back) with probability `p` (clamped to
    /// `0.0..=1.0`; NaN counts as 0).
    pub fn set_duplicate_rate(&self, p: f64) {
        self.lock().duplicate_rate = clamp_rate(p);
    }

    /// Holds every message for `delay` before delivery (tokio timers; needs a tokio runtime
    /// with time enabled). Order per link is kept: a message is never delivered before one
    /// sent earlier on the same link, even if the delay shrinks meanwhile.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Holds messages between `a` and `b` (both directions) for `delay`; overrides
    /// [`set_delay`](Self::set_delay) for that link.
    pub fn set_link_delay(&self, a: impl IntoNodeId, b: impl IntoNodeId, delay: Duration) {
        let key = pair(a.into_node_id(), b.into_node_id());
        self.lock().link_delays.insert(key, delay);
    }

    // ----- inspection ----------------------------------------------------------------------

    /// The nodes with a live (started, not crashed or shut down) endpoint, sorted.
    pub fn live_nodes(&self) -> Vec<NodeId> {
        let st = self.lock();
        let mut v: Vec<NodeId> = st.by_node.keys().cloned().collect();
        v.sort();
        v
    }

    /// The incarnation of `node`'s live endpoint, if it has one.
    pub fn incarnation(&self, node: impl IntoNodeId) -> Option<Incarnation> {
        let node = node.into_node_id();
        let st = self.lock();
        let ep = st.by_node.get(&node)?;
        st.endpoints.get(ep).map(|e| e.incarnation)
    }

    /// True when the current partition puts `a` and `b` in different sets.
    pub fn is_partitioned(&self, a: impl IntoNodeId, b: impl IntoNodeId) -> bool {
        self.lock()
            .partitioned(&a.into_node_id(), &b.into_node_id())
    }

    /// The counters so far.
    pub fn stats(&self) -> NetworkStats {
        self.lock().stats
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        self.lock().stats = NetworkStats::default();
    }

    /// Messages sent but not yet delivered or dropped (held by a delay).
    pub fn in_flight(&self) -> usize {
        self.lock()
            .queues
            .values()
            .flat_map(|q| q.items.iter())
            .filter(|q| matches!(q.event, TransportEvent::Message(_)))
            .count()
    }

    // ----- used by MemoryTransport ----------------------------------------------------------

    fn lock(&self) -> MutexGuard<'_, State> {
        lock_state(&self.inner)
    }

    pub(crate) fn register(
        &self,
        ep: EndpointId,
        node: NodeId,
        incarnation: Incarnation,
        addr: String,
        tx: UnboundedSender<TransportEvent>,
        closed: Arc<AtomicBool>,
    ) -> Result<(), (TransportError, UnboundedSender<TransportEvent>)> {
        let mut st = self.lock();
        let refuse = |reason: String| TransportError::Start {
            addr: addr.clone(),
            reason,
        };
        if st.endpoints.contains_key(&ep) {
            return Err((refuse("this endpoint is already started".into()), tx));
        }
        if st.by_addr.contains_key(&addr) {
            return Err((refuse("address already in use".into()), tx));
        }
        if st.by_node.contains_key(&node) {
            return Err((
                refuse(format!("node {node} already has a live endpoint")),
                tx,
            ));
        }
        tracing::debug!(%node, incarnation = incarnation.get(), %addr, "memory network: endpoint started");
        st.by_addr.insert(addr.clone(), ep);
        st.by_node.insert(node.clone(), ep);
        st.endpoints.insert(
            ep,
            Endpoint {
                node,
                incarnation,
                addr,
                tx,
                closed,
                links: BTreeMap::new(),
                linked: HashSet::new(),
                known_addrs: HashMap::new(),
            },
        );
        Ok(())
    }

    /// Removes the endpoint as `exit` says; false when it was not live.
    pub(crate) fn unregister(&self, ep: EndpointId, exit: Exit) -> bool {
        self.lock().remove_endpoint(ep, exit)
    }

    pub(crate) fn connect_from(&self, ep: EndpointId, addr: &str) {
        self.lock().connect(ep, addr);
    }

    pub(crate) fn send_from(
        &self,
        ep: EndpointId,
        to: &NodeId,
        message: Message,
    ) -> Result<(), TransportError> {
        let handle = tokio::runtime::Handle::try_current().ok();
        let mut spawns = Vec::new();
        let result = self
            .lock()
            .send(ep, to, message, handle.is_some(), &mut spawns);
        if let Some(handle) = handle {
            for (key, generation) in spawns {
                handle.spawn(pump(Arc::downgrade(&self.inner), key, generation));
            }
        }
        result
    }
}

fn lock_state(inner: &Inner) -> MutexGuard<'_, State> {
    // A panic while the lock was held cannot leave `State` half-updated in a way that matters
    // more than losing the whole network would, so recover the guard instead of propagating.
    inner.state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn clamp_rate(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

/// `now + delay`, saturating at a far future instead of overflowing (`Duration::MAX` is a
/// valid, if unkind, delay).
fn due_after(now: Instant, delay: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(60 * 60 * 24 * 365 * 30);
    now.checked_add(delay)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Drains one directed link's delay queue in order, sleeping until each item is due.
async fn pump(net: Weak<Inner>, key: LinkKey, generation: u64) {
    loop {
        let due = {
            let Some(inner) = net.upgrade() else { return };
            let mut st = lock_state(&inner);
            match st.pump_step(key, generation, Instant::now()) {
                Some(due) => due,
                None => return,
            }
        };
        tokio::time::sleep_until(due).await;
    }
}

impl State {
    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    fn partitioned(&self, a: &NodeId, b: &NodeId) -> bool {
        match &self.partition {
            Some(map) if a != b => map.get(a) != map.get(b),
            _ => false,
        }
    }

    fn delay_for(&self, a: &NodeId, b: &NodeId) -> Duration {
        if self.link_delays.is_empty() {
            return self.delay; // no names to clone for the lookup
        }
        self.link_delays
            .get(&pair(a.clone(), b.clone()))
            .copied()
            .unwrap_or(self.delay)
    }

    /// True when either endpoint has a link to the other.
    fn linked(&self, a: EndpointId, b: EndpointId) -> bool {
        let has = |x: EndpointId, y: EndpointId| {
            self.endpoints.get(&x).is_some_and(|e| {
                self.endpoints
                    .get(&y)
                    .and_then(|ey| e.links.get(&ey.node))
                    .is_some_and(|l| l.endpoint == y)
            })
        };
        has(a, b) || has(b, a)
    }

    /// True when `a` and `b` each hold the link to the other: what [`link`](Self::link) would
    /// leave as it is (it records the peer's address in `known_addrs` whenever it records the
    /// link, and no other live endpoint can have taken that address while the peer lives).
    /// Every message between linked endpoints checks this — two integer lookups, no name
    /// cloned or compared — instead of inserting the link again.
    fn linked_both(&self, a: EndpointId, b: EndpointId) -> bool {
        let (Some(ea), Some(eb)) = (self.endpoints.get(&a), self.endpoints.get(&b)) else {
            return false;
        };
        ea.linked.contains(&b) && eb.linked.contains(&a)
    }

    /// Hands `event` to endpoint `ep` now (if it is live), counting messages.
    fn emit(&mut self, ep: EndpointId, event: TransportEvent) {
        let is_message = matches!(event, TransportEvent::Message(_));
        let sent = match self.endpoints.get(&ep) {
            Some(e) => {
                tracing::trace!(to = %e.node, ?event, "memory network: deliver");
                e.tx.send(event).is_ok()
            }
            None => false,
        };
        if is_message {
            if sent {
                self.stats.delivered += 1;
            } else {
                self.stats.dropped += 1;
            }
        }
    }

    /// Opens the connection between live endpoints `a` and `b` (unless it is open already):
    /// each side sees `Connected` about the other, preceded by `Dead` for an older process of
    /// the same node it was still linked to.
    fn link(&mut self, a: EndpointId, b: EndpointId) {
        if a == b || self.linked_both(a, b) {
            return;
        }
        for (x, y) in [(a, b), (b, a)] {
            let Some(ey) = self.endpoints.get(&y) else {
                return;
            };
            let (y_node, new) = (
                ey.node.clone(),
                Link {
                    endpoint: y,
                    incarnation: ey.incarnation,
                    addr: ey.addr.clone(),
                },
            );
            let Some(ex) = self.endpoints.get_mut(&x) else {
                return;
            };
            ex.known_addrs
                .insert(new.addr.clone(), (y_node.clone(), new.incarnation, y));
            let old = ex.set_link(y_node.clone(), new.clone());
            match old {
                Some(old) if old.endpoint == y => {}
                Some(old) => {
                    self.emit(
                        x,
                        TransportEvent::Dead {
                            node: y_node.clone(),
                            incarnation: old.incarnation,
                            proof: DeathProof::Superseded,
                        },
                    );
                    self.emit(
                        x,
                        TransportEvent::Connected {
                            node: y_node,
                            incarnation: new.incarnation,
                            addr: new.addr,
                        },
                    );
                }
                None => self.emit(
                    x,
                    TransportEvent::Connected {
                        node: y_node,
                        incarnation: new.incarnation,
                        addr: new.addr,
                    },
                ),
            }
        }
    }

    fn connect(&mut self, ep: EndpointId, addr: &str) {
        let Some(me) = self.endpoints.get(&ep) else {
            tracing::debug!(
                addr,
                "memory network: connect from an endpoint that is not live"
            );
            return;
        };
        let my_node = me.node.clone();
        let target = self.by_addr.get(addr).copied();
        if target == Some(ep) {
            tracing::debug!(node = %my_node, addr, "memory network: connect to own address ignored");
            return;
        }
        // Processes this endpoint knew at `addr` that no longer listen there: still-open
        // (stale) links, and the last process it had a link with at that address.
        let mut stale: Vec<(NodeId, Incarnation)> = me
            .links
            .iter()
            .filter(|(_, l)| l.addr == addr && Some(l.endpoint) != target)
            .map(|(n, l)| (n.clone(), l.incarnation))
            .collect();
        if let Some((node, incarnation, old)) = me.known_addrs.get(addr)
            && Some(*old) != target
            && !stale.iter().any(|(n, i)| n == node && i == incarnation)
        {
            stale.push((node.clone(), *incarnation));
        }
        match target {
            Some(t) => {
                let Some(t_node) = self.endpoints.get(&t).map(|e| e.node.clone()) else {
                    return;
                };
                if self.partitioned(&my_node, &t_node) {
                    return; // black hole
                }
                for (node, incarnation) in stale {
                    self.prove_dead(ep, node, incarnation, false);
                }
                self.link(ep, t);
            }
            None if stale.is_empty() => self.emit(
                ep,
                TransportEvent::ConnectFailed {
                    addr: addr.to_string(),
                    reason: format!("connection refused: nothing listens at {addr}"),
                },
            ),
            None => {
                for (node, incarnation) in stale {
                    if !self.partitioned(&my_node, &node) {
                        self.prove_dead(ep, node, incarnation, false);
                    }
                }
            }
        }
    }

    /// Removes `ep`'s link to that process of `node` (if any) and tells it the proof (`Disconnected` first when
    /// `closed`, i.e. it learns of the close at the same time).
    fn prove_dead(&mut self, ep: EndpointId, node: NodeId, incarnation: Incarnation, closed: bool) {
        if let Some(e) = self.endpoints.get_mut(&ep)
            && e.links
                .get(&node)
                .is_some_and(|l| l.incarnation == incarnation)
        {
            e.unlink(&node);
        }
        if closed {
            self.emit(
                ep,
                TransportEvent::Disconnected {
                    node: node.clone(),
                    how: CloseKind::Orderly,
                },
            );
        }
        self.emit(
            ep,
            TransportEvent::Dead {
                node,
                incarnation,
                proof: DeathProof::RefusedAfterOrderlyClose,
            },
        );
    }

    fn send(
        &mut self,
        ep: EndpointId,
        to: &NodeId,
        message: Message,
        can_spawn: bool,
        spawns: &mut Vec<(LinkKey, u64)>,
    ) -> Result<(), TransportError> {
        let Some(me) = self.endpoints.get(&ep) else {
            return Err(TransportError::Closed);
        };
        let envelope = Envelope {
            from: me.node.clone(),
            incarnation: me.incarnation,
            message,
        };
        let Some(dst) = self.by_node.get(to).copied() else {
            return Err(TransportError::Unreachable(to.clone()));
        };
        self.stats.sent += 1;
        if dst == ep {
            // Loopback: no link, no faults.
            self.emit(ep, TransportEvent::Message(envelope));
            return Ok(());
        }
        if self.partitioned(&envelope.from, to) {
            self.stats.dropped += 1;
            return Ok(());
        }
        self.link(ep, dst);
        let drop_rate = self.drop_rate;
        if chance(&mut self.rng, drop_rate) {
            self.stats.dropped += 1;
            return Ok(());
        }
        let duplicate_rate = self.duplicate_rate;
        let copies = if chance(&mut self.rng, duplicate_rate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let delay = self.delay_for(&envelope.from, to);
        if copies == 2 {
            let event = TransportEvent::Message(envelope.clone());
            self.enqueue((ep, dst), event, delay, can_spawn, spawns);
        }
        // The last (usually only) copy takes the envelope itself: no clone per message.
        self.enqueue(
            (ep, dst),
            TransportEvent::Message(envelope),
            delay,
            can_spawn,
            spawns,
        );
        Ok(())
    }

    /// Sends `event` over the directed link `key`: now, or behind the link's queue.
    fn enqueue(
        &mut self,
        key: LinkKey,
        event: TransportEvent,
        delay: Duration,
        can_spawn: bool,
        spawns: &mut Vec<(LinkKey, u64)>,
    ) {
        if delay.is_zero() && !self.queues.contains_key(&key) {
            // The common case: no delay, nothing queued on the link: delivered now.
            self.emit(key.1, event);
            return;
        }
        let now = Instant::now();
        let own_due = due_after(now, delay);
        if let Some(q) = self.queues.get_mut(&key) {
            let due = q.items.back().map_or(own_due, |last| own_due.max(last.due));
            q.items.push_back(Queued { due, event });
            return;
        }
        if delay.is_zero() || !can_spawn {
            if !delay.is_zero() {
                tracing::warn!("memory network: no tokio runtime to time a delay; delivering now");
            }
            self.emit(key.1, event);
            return;
        }
        let Some(from_node) = self.endpoints.get(&key.0).map(|e| e.node.clone()) else {
            // Not reached (only a live endpoint sends); deliver rather than lose it.
            self.emit(key.1, event);
            return;
        };
        let generation = self.fresh_id();
        self.queues.insert(
            key,
            LinkQueue {
                generation,
                from_node,
                items: VecDeque::from([Queued {
                    due: own_due,
                    event,
                }]),
            },
        );
        spawns.push((key, generation));
    }

    /// Delivers what is due on `key`; returns when to wake next, or `None` when the pump is
    /// done (queue empty or taken over by a newer pump).
    fn pump_step(&mut self, key: LinkKey, generation: u64, now: Instant) -> Option<Instant> {
        loop {
            let q = self.queues.get_mut(&key)?;
            if q.generation != generation {
                return None;
            }
            match q.items.front() {
                None => {
                    self.queues.remove(&key);
                    return None;
                }
                Some(item) if item.due > now => return Some(item.due),
                Some(_) => {
                    let from_node = q.from_node.clone();
                    let item = q.items.pop_front()?;
                    let to_node = self.endpoints.get(&key.1).map(|e| e.node.clone());
                    let cut = matches!(item.event, TransportEvent::Message(_))
                        && to_node.is_some_and(|to| self.partitioned(&from_node, &to));
                    if cut {
                        self.stats.dropped += 1;
                    } else {
                        self.emit(key.1, item.event);
                    }
                }
            }
        }
    }

    /// Throws away the delayed traffic on `key`, counting lost messages.
    fn discard_queue(&mut self, key: LinkKey) {
        if let Some(q) = self.queues.remove(&key) {
            let lost = q
                .items
                .iter()
                .filter(|i| matches!(i.event, TransportEvent::Message(_)))
                .count();
            self.stats.dropped += lost as u64;
        }
    }

    /// Removes a live endpoint: a crash ([`Exit::Crash`]) or a kind shutdown. Peers with a
    /// link, and not partitioned from it, see `Disconnected` then `Dead`. On a kind shutdown
    /// those events follow any delayed messages the endpoint had already sent (TCP's FIN
    /// follows the data); on a crash its in-flight messages are lost.
    fn remove_endpoint(&mut self, ep: EndpointId, exit: Exit) -> bool {
        let graceful = exit == Exit::Shutdown;
        let Some(gone) = self.endpoints.remove(&ep) else {
            return false;
        };
        gone.closed.store(true, Ordering::Release);
        if self.by_addr.get(&gone.addr) == Some(&ep) {
            self.by_addr.remove(&gone.addr);
        }
        if self.by_node.get(&gone.node) == Some(&ep) {
            self.by_node.remove(&gone.node);
        }
        let doomed: Vec<LinkKey> = self
            .queues
            .keys()
            .filter(|(from, to)| *to == ep || (!graceful && *from == ep))
            .copied()
            .collect();
        for key in doomed {
            self.discard_queue(key);
        }
        let peers: Vec<EndpointId> = self
            .endpoints
            .iter()
            .filter(|(_, e)| e.links.get(&gone.node).is_some_and(|l| l.endpoint == ep))
            .map(|(id, _)| *id)
            .collect();
        for peer in peers {
            let Some(peer_node) = self.endpoints.get(&peer).map(|e| e.node.clone()) else {
                continue;
            };
            if self.partitioned(&gone.node, &peer_node) {
                continue; // stays stale until the cut heals
            }
            if let Some(e) = self.endpoints.get_mut(&peer) {
                e.unlink(&gone.node);
            }
            let events = [
                TransportEvent::Disconnected {
                    node: gone.node.clone(),
                    how: CloseKind::Orderly,
                },
                TransportEvent::Dead {
                    node: gone.node.clone(),
                    incarnation: gone.incarnation,
                    proof: DeathProof::RefusedAfterOrderlyClose,
                },
            ];
            match self.queues.get_mut(&(ep, peer)) {
                Some(q) => {
                    let due = q.items.back().map_or_else(Instant::now, |last| last.due);
                    for event in events {
                        q.items.push_back(Queued { due, event });
                    }
                }
                None => {
                    for event in events {
                        self.emit(peer, event);
                    }
                }
            }
        }
        tracing::debug!(node = %gone.node, incarnation = gone.incarnation.get(), graceful, "memory network: endpoint removed");
        // `gone.tx` drops here: the endpoint's pending `recv()` returns `None`.
        true
    }

    /// Delivers proofs that were held back by a partition: every live endpoint with a link to
    /// a gone process it can now reach sees `Disconnected`, `Dead`, and — if a newer process
    /// listens at that address and is reachable — `Connected` to it.
    fn reconcile(&mut self) {
        let eps: Vec<EndpointId> = self.endpoints.keys().copied().collect();
        for ep in eps {
            let Some(e) = self.endpoints.get(&ep) else {
                continue;
            };
            let my_node = e.node.clone();
            let stale: Vec<(NodeId, Link)> = e
                .links
                .iter()
                .filter(|(_, l)| !self.endpoints.contains_key(&l.endpoint))
                .map(|(n, l)| (n.clone(), l.clone()))
                .collect();
            for (node, link) in stale {
                if self.partitioned(&my_node, &node) {
                    continue;
                }
                self.prove_dead(ep, node, link.incarnation, true);
                if let Some(t) = self.by_addr.get(&link.addr).copied()
                    && t != ep
                    && let Some(t_node) = self.endpoints.get(&t).map(|e| e.node.clone())
                    && !self.partitioned(&my_node, &t_node)
                {
                    self.link(ep, t);
                }
            }
        }
    }
}

/// True with probability `p`. `p <= 0` (or NaN) is never and `p >= 1` always, and neither
/// draws from `rng`: turning a fault off does not shift the rest of the seeded sequence.
fn chance(rng: &mut fastrand::Rng, p: f64) -> bool {
    p > 0.0 && (p >= 1.0 || rng.f64() < p)
}

#[cfg(test)]
mod tests {
    use super::chance;

    #[test]
    fn chance_bounds_draw_nothing() {
        let mut r = fastrand::Rng::with_seed(1);
        let mut twin = r.clone();
        for p in [0.0, -3.0, f64::NAN, 1.0, 7.0] {
            assert_eq!(chance(&mut r, p), p >= 1.0, "{p}");
        }
        assert_eq!(r.u64(..), twin.u64(..), "a certain outcome drew randomness");
        let hits = (0..10_000).filter(|_| chance(&mut r, 0.5)).count();
        assert!((4_000..6_000).contains(&hits), "{hits}");
    }
}
