//! What the transport knows about its peers, and the decisions that turn connection facts into
//! [`TransportEvent`]s. Every method runs under the transport's state lock and emits events
//! while holding it, so the event stream is in the order the decisions were made.

use crate::handshake::{HandshakeConfig, PeerInfo};
use crate::queue::{Limits, Queue};
use baton_core::{
    CloseKind, DeathProof, DeathProofMode, Incarnation, NodeId, Refusal, TransportEvent,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Who opened the connection a handshake came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialer {
    /// The peer dialed us (an inbound connection).
    Peer,
    /// We dialed the peer (an outbound connection, our own redial).
    Us,
}

/// Most inbound connections kept per peer; the oldest superseded one is closed beyond this.
pub(crate) const MAX_INBOUND_PER_PEER: usize = 4;

/// An event and, for messages, the slot it holds in its connection's inbound queue.
pub(crate) type Item = (TransportEvent, Option<OwnedSemaphorePermit>);

/// One connection as the state sees it: an id and the token that closes it.
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) token: CancellationToken,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Inbound,
    Outbound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// `Connected` was the last event reported for the peer.
    Up,
    /// `Disconnected` was reported (or a death verdict was lifted by the peer's own handshake);
    /// a reconnect will prove it alive or — after an orderly close — dead.
    Probing,
    /// `Dead` was reported for `incarnation`. No dialer runs; the record stays so that a newer
    /// incarnation is not reported dead twice. A fresh handshake of the same incarnation (it was
    /// not dead after all) lifts the verdict.
    Dead,
}

pub(crate) struct Peer {
    pub(crate) incarnation: Incarnation,
    /// Advertised listen address (from the handshake).
    pub(crate) addr: String,
    pub(crate) status: Status,
    /// Our current connection to it: the one its messages are written on.
    pub(crate) outbound: Option<Conn>,
    /// Its connections to us, oldest first. Only the last one's close counts.
    pub(crate) inbound: Vec<Conn>,
    /// A fresh connection must be dialed even though `outbound` is set (an inbound one closed).
    pub(crate) probe: bool,
    /// Dial without waiting for the backoff.
    pub(crate) dial_now: bool,
    /// A dialer task runs for this peer.
    pub(crate) dialer: bool,
    pub(crate) wake: Arc<Notify>,
    pub(crate) queue: Arc<Queue>,
    /// A current connection of this incarnation ended with EOF (the peer's kernel closed it in
    /// order) since it was last up. Only then does a refused reconnect prove it dead.
    pub(crate) closed_in_order: bool,
    /// When a frame (or a handshake) last arrived from it.
    pub(crate) last_received: Instant,
}

impl Peer {
    fn new(info: &PeerInfo, outbound_queue: Limits) -> Self {
        Peer {
            incarnation: info.incarnation,
            addr: info.addr.clone(),
            status: Status::Up,
            outbound: None,
            inbound: Vec::new(),
            probe: false,
            dial_now: true,
            dialer: true,
            wake: Arc::new(Notify::new()),
            queue: Arc::new(Queue::new(outbound_queue)),
            closed_in_order: false,
            last_received: Instant::now(),
        }
    }

    /// Whether this incarnation still holds the node's name: another process of the same name
    /// is refused while it does. It lets go once proven dead, once its connection closed in
    /// order (unless orderly closes are not trusted), or after `silence` without a frame.
    fn holds_name(&self, now: Instant, silence: Duration, mode: DeathProofMode) -> bool {
        match self.status {
            Status::Dead => false,
            Status::Probing if self.closed_in_order && mode == DeathProofMode::OrderlyClose => {
                false
            }
            _ => now.saturating_duration_since(self.last_received) < silence,
        }
    }

    fn close_all(&mut self) {
        if let Some(c) = self.outbound.take() {
            c.token.cancel();
        }
        for c in self.inbound.drain(..) {
            c.token.cancel();
        }
        self.probe = false;
    }
}

/// Why an outbound handshake stops before sending its `Auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decline {
    /// A connection already exists or another attempt is under way: not an error.
    Redundant,
    /// The peer is refused (a duplicate name, a stale incarnation), and is told why.
    Refused(Refusal),
    /// Another node answered at the address of the node we meant to reach.
    WrongNode(NodeId),
}

impl std::fmt::Display for Decline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decline::Redundant => f.write_str("already connected"),
            Decline::Refused(why) => why.fmt(f),
            Decline::WrongNode(n) => write!(f, "node {n} answers at that address"),
        }
    }
}

/// Failed `connect`s of one address since it last answered.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectFailures {
    pub(crate) count: u64,
    pub(crate) since: Instant,
    pub(crate) backoff: Duration,
    pub(crate) next: Instant,
    /// The first failure was logged at warn level (so its recovery is logged at info).
    pub(crate) warned: bool,
}

/// Most addresses whose failures are remembered.
const MAX_CONNECT_FAILURES: usize = 1024;

/// What a peer dialer does after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    Retry,
    Exit,
}

pub(crate) struct State {
    pub(crate) me: Option<HandshakeConfig>,
    /// How long a silent incarnation keeps its name against a newer process (see
    /// [`baton_core::LocalNode::takeover_silence`]).
    pub(crate) takeover_silence: Duration,
    /// What this node may report as proof of death.
    pub(crate) death_proof: DeathProofMode,
    pub(crate) closed: bool,
    pub(crate) peers: HashMap<NodeId, Peer>,
    /// Addresses with a `connect` attempt in flight.
    pub(crate) pending_addrs: HashSet<String>,
    /// Addresses whose `connect` failed since they last answered: how often, since when, and
    /// when the next attempt may go (earlier ones are skipped quietly).
    pub(crate) connect_failures: HashMap<String, ConnectFailures>,
    /// Connected clients (CLIs), by the id their messages carry: their queue of replies and
    /// the token that closes their connection.
    pub(crate) clients: HashMap<NodeId, (Arc<Queue>, CancellationToken)>,
    /// Outbound handshakes past the reply, per node: at most one at a time.
    claims: HashMap<NodeId, u64>,
    next_id: u64,
    outbound_queue: Limits,
    events: mpsc::UnboundedSender<Item>,
}

impl State {
    pub(crate) fn new(events: mpsc::UnboundedSender<Item>, outbound_queue: Limits) -> Self {
        State {
            me: None,
            takeover_silence: Duration::from_millis(600),
            death_proof: DeathProofMode::OrderlyClose,
            closed: false,
            peers: HashMap::new(),
            pending_addrs: HashSet::new(),
            connect_failures: HashMap::new(),
            clients: HashMap::new(),
            claims: HashMap::new(),
            next_id: 1,
            outbound_queue,
            events,
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn emit(&self, event: TransportEvent) {
        tracing::debug!(?event, "transport event");
        // The receiver lives as long as the transport; after shutdown nobody listens.
        let _ = self.events.send((event, None));
    }

    /// [`State::emit`] unless the transport is shut down: nobody hears of a dial or an accept
    /// that was still under way when it closed.
    pub(crate) fn emit_unless_closed(&self, event: TransportEvent) {
        if !self.closed {
            self.emit(event);
        }
    }

    pub(crate) fn emit_message(&self, event: TransportEvent, slot: OwnedSemaphorePermit) {
        let _ = self.events.send((event, Some(slot)));
    }

    /// Whether `info` may connect as the process it claims to be, judged against what this node
    /// knows of that name. One rule for both directions of a handshake.
    fn judge(&self, info: &PeerInfo) -> Result<(), Refusal> {
        if let Some(me) = self.me.as_ref()
            && me.node == info.node
        {
            // Another process with this node's own name.
            return Err(Refusal::DuplicateName {
                node: me.node.clone(),
                addr: me.addr.clone(),
                incarnation: me.incarnation,
            });
        }
        let Some(p) = self.peers.get(&info.node) else {
            return Ok(());
        };
        if info.incarnation == p.incarnation {
            return Ok(());
        }
        if p.holds_name(Instant::now(), self.takeover_silence, self.death_proof) {
            return Err(Refusal::DuplicateName {
                node: info.node.clone(),
                addr: p.addr.clone(),
                incarnation: p.incarnation,
            });
        }
        if info.incarnation < p.incarnation {
            return Err(Refusal::StaleIncarnation {
                node: info.node.clone(),
                incarnation: info.incarnation,
                known: p.incarnation,
            });
        }
        Ok(())
    }

    /// A handshake proved `info` alive. Reports `Dead{old, Superseded}` when it is a newer
    /// incarnation (admitted only once the old one let go of the name, see [`State::judge`]),
    /// and `Connected` for a peer new to us or a new incarnation.
    ///
    /// A peer under probe (after `Disconnected`, or dead) with the *same* incarnation is
    /// reported `Connected` again only on our own redial ([`Dialer::Us`]): a handshake the peer
    /// started may have been sent just before it died or shut down, and its close may be read
    /// before its `Auth` (they travel on different connections), which would report it back up
    /// for an instant. Returns whether a dialer must be spawned for it.
    fn admit(&mut self, info: &PeerInfo, dialer: Dialer) -> Result<bool, Refusal> {
        self.judge(info)?;
        let outbound_queue = self.outbound_queue;
        // Its address answers (in one direction or the other): connects to it may go at once.
        self.connect_failures.remove(&info.addr);
        let Some(p) = self.peers.get_mut(&info.node) else {
            self.peers
                .insert(info.node.clone(), Peer::new(info, outbound_queue));
            self.emit(TransportEvent::Connected {
                node: info.node.clone(),
                incarnation: info.incarnation,
                addr: info.addr.clone(),
            });
            return Ok(true);
        };
        p.last_received = Instant::now();
        let mut events = Vec::new();
        if info.incarnation > p.incarnation {
            if p.status == Status::Dead {
                // The engine logs the peer up (info); this is the transport's detail.
                tracing::debug!(node = %info.node, incarnation = info.incarnation.get(), addr = %info.addr, "peer {} is back (incarnation {})", info.node, info.incarnation);
            }
            if p.status != Status::Dead {
                events.push(TransportEvent::Dead {
                    node: info.node.clone(),
                    incarnation: p.incarnation,
                    proof: DeathProof::Superseded,
                });
            }
            p.close_all();
            p.queue.clear();
            p.incarnation = info.incarnation;
            p.addr = info.addr.clone();
            p.status = Status::Up;
            p.closed_in_order = false;
            p.dial_now = true;
            events.push(TransportEvent::Connected {
                node: info.node.clone(),
                incarnation: info.incarnation,
                addr: info.addr.clone(),
            });
        } else if p.status != Status::Up && dialer == Dialer::Peer {
            // Alive a moment ago (or not dead after all): redial now rather than wait out a
            // backoff; our own redial reports it.
            if p.status == Status::Dead {
                p.status = Status::Probing;
                p.closed_in_order = false;
            }
            p.dial_now = true;
        } else if p.status != Status::Up {
            if p.status == Status::Dead {
                info!(node = %info.node, incarnation = info.incarnation.get(), "peer {} was declared dead but answers again: taken back", info.node);
            }
            p.status = Status::Up;
            p.closed_in_order = false;
            events.push(TransportEvent::Connected {
                node: info.node.clone(),
                incarnation: info.incarnation,
                addr: p.addr.clone(),
            });
        }
        let spawn = !p.dialer;
        p.dialer = true;
        p.wake.notify_one();
        for e in events {
            self.emit(e);
        }
        Ok(spawn)
    }

    /// The responder side finished a handshake: record the connection (before the `Accept`
    /// goes out, so the peer's older connection it may now close is already superseded).
    pub(crate) fn register_inbound(
        &mut self,
        info: &PeerInfo,
        conn: Conn,
    ) -> Result<bool, Refusal> {
        let spawn = self.admit(info, Dialer::Peer)?;
        if let Some(p) = self.peers.get_mut(&info.node) {
            let redialed = !p.inbound.is_empty();
            p.inbound.push(conn);
            if p.inbound.len() > MAX_INBOUND_PER_PEER {
                let oldest = p.inbound.remove(0);
                oldest.token.cancel();
            }
            if p.outbound.is_none() {
                p.dial_now = true;
                p.wake.notify_one();
            } else if redialed && p.status == Status::Up {
                // The peer dialed us afresh although its connection to us was open: it found
                // us silent (or that connection broke). Our own connection to it may be stuck
                // in TCP's retransmission backoff after loss or a black hole, which only we
                // can see the cure for: dial a fresh one beside it, as the peer did.
                p.probe = true;
                p.dial_now = true;
                p.wake.notify_one();
            }
        }
        Ok(spawn)
    }

    /// The initiator verified the responder (before sending `Auth`): go on, or decline. On
    /// success the caller holds the node's claim until it installs or gives up.
    pub(crate) fn pre_auth(
        &mut self,
        attempt: u64,
        expected: Option<&NodeId>,
        info: &PeerInfo,
    ) -> Result<(), Decline> {
        if let Some(expected) = expected
            && *expected != info.node
        {
            return Err(Decline::WrongNode(info.node.clone()));
        }
        self.judge(info).map_err(Decline::Refused)?;
        if let Some(p) = self.peers.get(&info.node)
            && info.incarnation == p.incarnation
            && p.status != Status::Dead
            && p.outbound.is_some()
            && !p.probe
        {
            return Err(Decline::Redundant);
        }
        match self.claims.get(&info.node) {
            Some(other) if *other != attempt => Err(Decline::Redundant),
            _ => {
                self.claims.insert(info.node.clone(), attempt);
                Ok(())
            }
        }
    }

    pub(crate) fn release_claim(&mut self, node: &NodeId, attempt: u64) {
        if self.claims.get(node) == Some(&attempt) {
            self.claims.remove(node);
        }
    }

    /// The initiator finished a handshake: the connection becomes the peer's outbound one.
    pub(crate) fn install_outbound(
        &mut self,
        attempt: u64,
        info: &PeerInfo,
        conn: Conn,
    ) -> Result<(bool, Arc<Queue>), Refusal> {
        self.release_claim(&info.node, attempt);
        let spawn = self.admit(info, Dialer::Us)?;
        let Some(p) = self.peers.get_mut(&info.node) else {
            // `admit` just inserted or kept it, under this same lock.
            return Err(Refusal::ShuttingDown);
        };
        if let Some(old) = p.outbound.replace(conn) {
            old.token.cancel();
        }
        p.probe = false;
        p.dial_now = false;
        Ok((spawn, p.queue.clone()))
    }

    /// A frame arrived from `node`.
    pub(crate) fn heard(&mut self, node: &NodeId) {
        if let Some(p) = self.peers.get_mut(node) {
            p.last_received = Instant::now();
        }
    }

    /// A connection ended on its own: in order (EOF) or abruptly (reset, error, protocol
    /// violation).
    pub(crate) fn on_closed(&mut self, node: &NodeId, id: u64, dir: Direction, how: CloseKind) {
        let Some(p) = self.peers.get_mut(node) else {
            return;
        };
        let current = match dir {
            Direction::Outbound => {
                let current = p.outbound.as_ref().is_some_and(|c| c.id == id);
                if current {
                    p.outbound = None;
                }
                current
            }
            Direction::Inbound => {
                let current = p.inbound.last().is_some_and(|c| c.id == id);
                p.inbound.retain(|c| c.id != id);
                if current && p.outbound.is_some() {
                    p.probe = true;
                }
                current
            }
        };
        if current {
            self.link_lost(node, how);
        }
    }

    /// The current connection to `node` closed (or lost what it carried): redial it at once
    /// and, for a peer reported up, report `Disconnected { how }`. Nothing for a dead peer.
    fn link_lost(&mut self, node: &NodeId, how: CloseKind) {
        let Some(p) = self.peers.get_mut(node) else {
            return;
        };
        if p.status == Status::Dead {
            return;
        }
        if how == CloseKind::Orderly {
            p.closed_in_order = true;
        }
        p.dial_now = true;
        p.wake.notify_one();
        if p.status == Status::Up {
            p.status = Status::Probing;
            self.emit(TransportEvent::Disconnected {
                node: node.clone(),
                how,
            });
        }
    }

    /// The peer's advertised address refused a connection (or another node answers there).
    /// Proof of death only while probing after an **orderly** close (and when this node trusts
    /// that proof): a firewall that resets connections produces exactly this while the process
    /// lives, so after a reset the peer is merely silent, and the engine waits out its failure
    /// timeout. Otherwise (it is up through its own connection to us) a failed attempt.
    pub(crate) fn on_gone(&mut self, node: &NodeId) -> AfterFailure {
        let mode = self.death_proof;
        let Some(p) = self.peers.get_mut(node) else {
            return AfterFailure::Exit;
        };
        match p.status {
            Status::Up => AfterFailure::Retry,
            Status::Dead => {
                p.dialer = false;
                AfterFailure::Exit
            }
            Status::Probing if !p.closed_in_order || mode != DeathProofMode::OrderlyClose => {
                AfterFailure::Retry
            }
            Status::Probing => {
                p.status = Status::Dead;
                p.dialer = false;
                p.close_all();
                p.queue.clear();
                let incarnation = p.incarnation;
                self.emit(TransportEvent::Dead {
                    node: node.clone(),
                    incarnation,
                    proof: DeathProof::RefusedAfterOrderlyClose,
                });
                AfterFailure::Exit
            }
        }
    }

    /// Registers a client connection; returns the id its messages carry and its reply queue.
    /// Client ids contain `@` and `#`, which node names may not, so they never clash.
    pub(crate) fn register_client(
        &mut self,
        info: &PeerInfo,
        from: std::net::SocketAddr,
        id: u64,
        token: CancellationToken,
    ) -> (NodeId, Arc<Queue>) {
        let client = NodeId::new(format!("{}@{from}#{id}", info.node));
        let queue = Arc::new(Queue::new(self.outbound_queue));
        self.clients.insert(client.clone(), (queue.clone(), token));
        (client, queue)
    }

    /// The outgoing queue of peer `node` overflowed and was emptied (see [`crate::queue`]).
    /// What it held is lost as if its connection had been reset, and is reported the same way:
    /// the current outbound connection (if any) is closed, a peer reported up is reported
    /// `Disconnected { how: Abrupt }` (no proof of death), and its dialer redials at once; the
    /// redial reports it `Connected` again. Returns whether a connection was closed.
    pub(crate) fn overflowed(&mut self, node: &NodeId) -> bool {
        let Some(p) = self.peers.get_mut(node) else {
            return false;
        };
        // The writer returns on the token without reporting the close: it is reported here,
        // also when no connection was open (a peer up through its own connection to us).
        let closed = p.outbound.take().map(|c| c.token.cancel()).is_some();
        self.link_lost(node, CloseKind::Abrupt);
        closed
    }

    /// Records a failed `connect` of `addr`; returns the failures so far (1 for the first) and
    /// whether `addr` is that of a peer known dead (or departed).
    pub(crate) fn connect_failed(
        &mut self,
        addr: &str,
        min: Duration,
        max: Duration,
    ) -> (u64, bool) {
        let now = Instant::now();
        if self.connect_failures.len() >= MAX_CONNECT_FAILURES
            && !self.connect_failures.contains_key(addr)
        {
            self.connect_failures.clear();
        }
        let f = self
            .connect_failures
            .entry(addr.to_string())
            .or_insert(ConnectFailures {
                count: 0,
                since: now,
                backoff: Duration::ZERO,
                next: now,
                warned: false,
            });
        f.count += 1;
        f.backoff = if f.backoff.is_zero() {
            min.max(Duration::from_millis(1))
        } else {
            (f.backoff * 2).min(max.max(min))
        };
        f.next = now + f.backoff;
        let count = f.count;
        let dead = self
            .peers
            .values()
            .any(|p| p.status == Status::Dead && p.addr == addr);
        if count == 1 && !dead {
            f.warned = true;
        }
        (count, dead)
    }

    /// Whether a `connect` of `addr` must wait out its backoff (it is skipped).
    pub(crate) fn connect_backing_off(&self, addr: &str) -> bool {
        self.connect_failures
            .get(addr)
            .is_some_and(|f| Instant::now() < f.next)
    }

    /// Whether some live peer advertises `addr`.
    pub(crate) fn connected_to(&self, addr: &str) -> bool {
        self.peers
            .values()
            .any(|p| p.status != Status::Dead && p.addr == addr)
    }

    /// This node moves to `incarnation`: every connection (bound to the old one by its
    /// handshake) closes, and every live peer is redialed at once with the new one.
    pub(crate) fn reincarnate(&mut self, incarnation: Incarnation) -> bool {
        let Some(me) = self.me.as_mut() else {
            return false;
        };
        me.incarnation = incarnation;
        for p in self.peers.values_mut() {
            p.close_all();
            if p.status != Status::Dead {
                p.dial_now = true;
                p.wake.notify_one();
            }
        }
        true
    }

    /// Cancels every connection (shutdown).
    pub(crate) fn close_all(&mut self) {
        for p in self.peers.values_mut() {
            p.close_all();
        }
    }
}
