//! The [`Transport`] trait: how messages and peer events move between nodes.

use crate::engine::defaults;
use crate::message::Message;
use crate::types::{Incarnation, NodeId};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Who this node is, handed to the transport at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNode {
    /// The node's name.
    pub id: NodeId,
    /// This process's incarnation: greater than any earlier process of the same node.
    pub incarnation: Incarnation,
    /// Where to listen (a socket address for TCP, a name for the in-memory transport).
    pub listen: String,
    /// What the cluster's safety depends on; a transport refuses peers whose fingerprint
    /// differs (see [`Fingerprint::mismatch`]).
    pub fingerprint: Fingerprint,
    /// What the transport may report as proof of death.
    pub death_proof: DeathProofMode,
}

impl LocalNode {
    /// A local node with the default fingerprint and death-proof mode (tests, single nodes).
    pub fn new(
        id: impl Into<String>,
        incarnation: impl Into<Incarnation>,
        listen: impl Into<String>,
    ) -> Self {
        LocalNode {
            id: NodeId::new(id),
            incarnation: incarnation.into(),
            listen: listen.into(),
            fingerprint: Fingerprint::default(),
            death_proof: DeathProofMode::default(),
        }
    }

    /// How long a peer must be silent before another process may take over its name: the
    /// failure timeout plus one heartbeat, so that every node's engine has timed it out too.
    pub fn takeover_silence(&self) -> Duration {
        Duration::from_millis(
            self.fingerprint
                .failure_timeout_ms
                .saturating_add(self.fingerprint.heartbeat_ms),
        )
    }
}

/// What a transport may report as [`TransportEvent::Dead`] (config `[cluster] death_proof`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeathProofMode {
    /// A refused reconnect that follows an **orderly close** (EOF/FIN) of the live connection to
    /// that same incarnation proves it dead: a process that exits, crashes or is killed closes
    /// its sockets in order, a firewall or middlebox resets them. Assumes that nothing but the
    /// peer's own kernel answers at its advertised address (no proxy, NAT or load balancer that
    /// closes connections in order on its behalf).
    #[default]
    OrderlyClose,
    /// Never trust a refused connection: a peer is down only after `failure_timeout` of silence
    /// (or its own goodbye). For networks where even the orderly-close assumption fails.
    Timeout,
}

impl std::fmt::Display for DeathProofMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeathProofMode::OrderlyClose => "orderly-close",
            DeathProofMode::Timeout => "timeout",
        })
    }
}

/// How a connection to a peer ended, as far as the transport can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CloseKind {
    /// The peer closed it in order (EOF after a FIN): its process closed the socket or exited.
    Orderly,
    /// Reset, timed out or failed: proves nothing (a firewall resets live peers' connections).
    Abrupt,
}

/// What proved an incarnation dead. Every kind is something no firewall, NAT or middlebox can
/// produce while the process lives (given the [`DeathProofMode::OrderlyClose`] assumption).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DeathProof {
    /// Its connection closed in order (EOF), then its advertised address refused a reconnect.
    RefusedAfterOrderlyClose,
    /// A newer incarnation of the same node connected while this one had no live connection
    /// (closed in order, or silent for longer than [`LocalNode::takeover_silence`]).
    Superseded,
    /// It said goodbye (a kind shutdown).
    Left,
}

impl std::fmt::Display for DeathProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeathProof::RefusedAfterOrderlyClose => {
                "its connection closed in order and its address refused a reconnect"
            }
            DeathProof::Superseded => "a newer incarnation replaced it",
            DeathProof::Left => "it left the cluster",
        })
    }
}

/// Whether `proof` counts under `mode`.
pub fn proof_counts(mode: DeathProofMode, proof: DeathProof) -> bool {
    match mode {
        DeathProofMode::OrderlyClose => true,
        DeathProofMode::Timeout => proof != DeathProof::RefusedAfterOrderlyClose,
    }
}

/// What the cluster's safety depends on. Every node of one cluster must agree on all of it; a
/// transport refuses a peer whose fingerprint differs, naming the field and both values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The sorted voter names (empty in availability mode).
    pub voters: Vec<NodeId>,
    /// `"majority"` or `"none"`.
    pub quorum: String,
    /// Heartbeat period, ms.
    pub heartbeat_ms: u64,
    /// Failure timeout, ms.
    pub failure_timeout_ms: u64,
    /// [`crate::PROTOCOL_VERSION`].
    pub protocol_version: u16,
}

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint {
            voters: vec![],
            quorum: "majority".into(),
            heartbeat_ms: defaults::ms(defaults::HEARTBEAT),
            failure_timeout_ms: defaults::ms(defaults::FAILURE_TIMEOUT),
            protocol_version: crate::PROTOCOL_VERSION,
        }
    }
}

/// A field in which two [`Fingerprint`]s differ.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FingerprintMismatch {
    /// The field (`voters`, `quorum`, `heartbeat_ms`, `failure_timeout_ms`,
    /// `protocol_version`).
    pub field: String,
    /// This node's value.
    pub ours: String,
    /// The peer's value.
    pub theirs: String,
}

impl std::fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "safety settings differ: {} is {} here but {} at the peer",
            self.field, self.ours, self.theirs
        )
    }
}

impl Fingerprint {
    /// The first field in which `theirs` differs from `self`, if any.
    pub fn mismatch(&self, theirs: &Fingerprint) -> Option<FingerprintMismatch> {
        let show = |v: &[NodeId]| {
            let names: Vec<&str> = v.iter().map(NodeId::as_str).collect();
            format!("[{}]", names.join(", "))
        };
        let fields = [
            ("voters", show(&self.voters), show(&theirs.voters)),
            ("quorum", self.quorum.clone(), theirs.quorum.clone()),
            (
                "heartbeat_ms",
                self.heartbeat_ms.to_string(),
                theirs.heartbeat_ms.to_string(),
            ),
            (
                "failure_timeout_ms",
                self.failure_timeout_ms.to_string(),
                theirs.failure_timeout_ms.to_string(),
            ),
            (
                "protocol_version",
                self.protocol_version.to_string(),
                theirs.protocol_version.to_string(),
            ),
        ];
        fields
            .into_iter()
            .find(|(_, ours, theirs)| ours != theirs)
            .map(|(field, ours, theirs)| FingerprintMismatch {
                field: field.into(),
                ours,
                theirs,
            })
    }
}

/// Why a peer refused this node (sent in the handshake, so both sides log the true reason).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// Another live, connected process already runs under this node name.
    DuplicateName {
        /// The name.
        node: NodeId,
        /// The address of the process already connected.
        addr: String,
        /// Its incarnation.
        incarnation: Incarnation,
    },
    /// This incarnation is older than one the peer knows (a wall-clock step back); that one is
    /// not connected, so this process may move above it.
    StaleIncarnation {
        /// The name.
        node: NodeId,
        /// The refused incarnation.
        incarnation: Incarnation,
        /// The newest incarnation the peer knows.
        known: Incarnation,
    },
    /// The safety fingerprints differ.
    Fingerprint(FingerprintMismatch),
    /// The peer is shutting down.
    ShuttingDown,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::DuplicateName {
                node,
                addr,
                incarnation,
            } => write!(
                f,
                "duplicate node name: {node} is already running at {addr} (incarnation \
                 {incarnation}) and connected"
            ),
            Refusal::StaleIncarnation {
                node,
                incarnation,
                known,
            } => write!(
                f,
                "stale incarnation {incarnation} of {node}: incarnation {known} is known (was \
                 the wall clock set back?)"
            ),
            Refusal::Fingerprint(m) => m.fmt(f),
            Refusal::ShuttingDown => f.write_str("the peer is shutting down"),
        }
    }
}

/// A message and who sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Sender node.
    pub from: NodeId,
    /// Sender's incarnation.
    pub incarnation: Incarnation,
    /// The message.
    pub message: Message,
}

/// What a transport reports to the node.
#[derive(Clone, Debug, PartialEq)]
pub enum TransportEvent {
    /// A message arrived.
    Message(Envelope),
    /// A connection to `node` (of `incarnation`, reachable at `addr`) is up. An incarnation
    /// greater than the one known before proves the earlier process is gone.
    Connected {
        /// The peer.
        node: NodeId,
        /// Its incarnation.
        incarnation: Incarnation,
        /// Its advertised address.
        addr: String,
    },
    /// The connection closed. This alone proves nothing: the transport reconnects at once and
    /// reports [`TransportEvent::Dead`] or [`TransportEvent::Connected`]. An
    /// [`CloseKind::Abrupt`] close (a reset) is a hint that the peer may be cut off: a leader
    /// whose links to a majority of voters were reset stops acting at once.
    Disconnected {
        /// The peer.
        node: NodeId,
        /// How it closed.
        how: CloseKind,
    },
    /// Proof that this incarnation of `node` is gone. The millisecond failover path. A
    /// transport reports it only on proof of the given kind, never for a reset, a timeout or
    /// an ICMP error.
    Dead {
        /// The peer.
        node: NodeId,
        /// The incarnation proven dead.
        incarnation: Incarnation,
        /// What proved it.
        proof: DeathProof,
    },
    /// A message from an authenticated *client* (a CLI such as `baton status`), not a cluster
    /// node: the engine answers it but never counts the client as a peer.
    ClientMessage(Envelope),
    /// A connection attempt to `addr` failed (no node known there yet).
    ConnectFailed {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// An authenticated peer at `addr` runs with other safety settings (its fingerprint
    /// differs); the connection was refused. Its whole fingerprint is given, so that the
    /// engine can tell whether that configuration could elect a leader of its own.
    Mismatch {
        /// The peer's address.
        addr: String,
        /// The first field that differs, with both values.
        mismatch: FingerprintMismatch,
        /// The peer's fingerprint.
        theirs: Fingerprint,
    },
    /// A peer at `addr` refused this node, and said why.
    Refused {
        /// The peer's address.
        addr: String,
        /// Why.
        refusal: Refusal,
    },
}

/// Errors a transport returns.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The transport could not start (e.g. the listen address is taken).
    #[error("transport could not start on {addr}: {reason}")]
    Start {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No connection to that peer.
    #[error("peer {0} is not reachable")]
    Unreachable(NodeId),
    /// The transport is shut down.
    #[error("transport closed")]
    Closed,
}

/// Moves [`Message`]s between nodes and reports peer events.
///
/// Implementations must be object-safe (`Arc<dyn Transport>`), must never block in `send`
/// (queue and return), and must report [`TransportEvent::Dead`] only on proof of death.
///
/// ```
/// # use baton_core::{Transport, LocalNode, Message, NodeId, TransportEvent, TransportError};
/// # use async_trait::async_trait;
/// /// A transport that talks to nobody (a single-node cluster).
/// struct Alone;
///
/// #[async_trait]
/// impl Transport for Alone {
///     async fn start(&self, me: &LocalNode) -> Result<String, TransportError> { Ok(me.listen.clone()) }
///     async fn connect(&self, _addr: &str) {}
///     async fn send(&self, to: &NodeId, _m: Message) -> Result<(), TransportError> {
///         Err(TransportError::Unreachable(to.clone()))
///     }
///     async fn recv(&self) -> Option<TransportEvent> { std::future::pending().await }
///     async fn shutdown(&self) {}
/// }
/// let _t: std::sync::Arc<dyn Transport> = std::sync::Arc::new(Alone);
/// ```
#[async_trait]
pub trait Transport: Send + Sync {
    /// Starts listening as `me`; returns the address peers should use to reach this node.
    async fn start(&self, me: &LocalNode) -> Result<String, TransportError>;
    /// Connects to `addr` (best effort). The outcome arrives as an event.
    async fn connect(&self, addr: &str);
    /// Queues `message` for `to`. While the connection to `to` lives, a transport never drops
    /// a queued message on its own: it may only replace an unsent `Heartbeat` or
    /// `HeartbeatAck` by a newer one of the same kind, and when it cannot hold more it closes
    /// the connection (reported as [`TransportEvent::Disconnected`]) rather than lose a
    /// message unreported.
    async fn send(&self, to: &NodeId, message: Message) -> Result<(), TransportError>;
    /// The next event; `None` once the transport is shut down.
    async fn recv(&self) -> Option<TransportEvent>;
    /// Closes every connection; peers see this node's connections close.
    async fn shutdown(&self);
    /// Moves this node to a new, higher incarnation (after a peer refused it as stale): new
    /// connections carry it, existing ones are closed. Returns false when the transport cannot.
    async fn reincarnate(&self, _incarnation: Incarnation) -> bool {
        false
    }
}
