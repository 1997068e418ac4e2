//! The [`Transport`] trait: how messages and peer events move between nodes.

use crate::message::Message;
use crate::types::NodeId;
use async_trait::async_trait;

/// Who this node is, handed to the transport at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNode {
    /// The node's name.
    pub id: NodeId,
    /// This process's incarnation: greater than any earlier process of the same node.
    pub incarnation: u64,
    /// Where to listen (a socket address for TCP, a name for the in-memory transport).
    pub listen: String,
}

/// A message and who sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Sender node.
    pub from: NodeId,
    /// Sender's incarnation.
    pub incarnation: u64,
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
        incarnation: u64,
        /// Its advertised address.
        addr: String,
    },
    /// The connection closed. This alone proves nothing: the transport reconnects at once and
    /// reports [`TransportEvent::Dead`] or [`TransportEvent::Connected`].
    Disconnected {
        /// The peer.
        node: NodeId,
    },
    /// Proof that this incarnation of `node` is gone (its address refused the reconnect, or a
    /// newer incarnation answered). The millisecond failover path.
    Dead {
        /// The peer.
        node: NodeId,
        /// The incarnation proven dead.
        incarnation: u64,
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
    /// Queues `message` for `to`.
    async fn send(&self, to: &NodeId, message: Message) -> Result<(), TransportError>;
    /// The next event; `None` once the transport is shut down.
    async fn recv(&self) -> Option<TransportEvent>;
    /// Closes every connection; peers see this node's connections close.
    async fn shutdown(&self);
}
