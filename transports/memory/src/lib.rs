//! # baton-transport-memory
//!
//! An in-process implementation of [`baton_core::Transport`] with fault injection, for tests,
//! benches, simulations and embedding several baton nodes in one process.
//!
//! A [`MemoryNetwork`] is the hub; each node gets an endpoint from
//! [`MemoryNetwork::transport`], a [`MemoryTransport`], and hands it to the node like any other
//! transport. Addresses are plain names: [`Transport::start`](baton_core::Transport::start)
//! registers the endpoint under `LocalNode::listen` (normally the node's name) and
//! `connect(addr)` looks that name up; `send` finds the peer by node id.
//! Messages are moved, not encoded, over unbounded channels: `send` never blocks.
//!
//! ## No queue bound, so no drops on a full queue
//!
//! Nothing bounds what waits for a peer (the event channel and the per-link delay queues are
//! unbounded), so a peer that reads slowly or not at all loses nothing: every message arrives,
//! in the order sent, however many wait. Nor are heartbeats coalesced (the TCP transport
//! coalesces superseded ones, see `baton-transport-tcp`'s *Outgoing queues*): tests and the
//! simulator see every message the engine sent. A message is lost only to a fault injected on
//! purpose (drop rate, partition, crash, link reset; each counted in
//! [`NetworkStats::dropped`]). The price is memory: a receiver that never reads grows its queue
//! without bound, which in-process tests and benches accept.
//!
//! ## Faults, and how they mirror TCP's proof of death
//!
//! baton treats a closed connection as *no proof* (a middlebox may reset a live one): the
//! transport reconnects at once, and only a **refused** reconnect, or a **new incarnation**
//! answering, proves the old process is gone. This network produces exactly the events a TCP
//! transport would in each situation:
//!
//! | fault | what each peer that had a link sees |
//! | --- | --- |
//! | [`MemoryNetwork::crash`] (process killed) | `Disconnected{n}`, `Dead{n, inc}` — the reconnect is refused; messages in flight from or to it are lost |
//! | [`Transport::shutdown`](baton_core::Transport::shutdown) (kind exit) | messages it already sent, then `Disconnected{n}`, `Dead{n, inc}` |
//! | [`MemoryNetwork::reset_link`] (reset of a live connection) | `Disconnected{n}`, `Connected{n, same inc}` — never `Dead`; in-flight messages on the link are lost |
//! | restart (a new endpoint, same name, higher incarnation) | nothing until someone connects or sends. When the new process does: `Connected{n, new inc}`. When an old peer connects to the address: `Dead{n, old inc}`, `Connected{n, new inc}` |
//! | [`MemoryNetwork::partition`] / [`MemoryNetwork::isolate`] | nothing: messages across the cut vanish, connects get no answer; the failure detector's timeout must notice |
//! | [`MemoryNetwork::heal`] | for a peer that died behind the cut: `Disconnected`, `Dead` (and `Connected` to a newer process at its address) |
//!
//! `connect(addr)`: a live endpoint there → both sides see `Connected` about each other (once
//! per new link; connecting an open link is a no-op). Nothing there → `ConnectFailed`, unless
//! the caller ever had a link to a process at that address: then `Dead` for the last such
//! process (refused = proof; repeated on every refused attempt). Another process there than
//! the last one the caller knew → `Dead{old}` then `Connected{new}`. Connecting to one's own
//! address is ignored.
//!
//! Message-level faults — [`set_drop_rate`](MemoryNetwork::set_drop_rate),
//! [`set_duplicate_rate`](MemoryNetwork::set_duplicate_rate) (seeded, see
//! [`MemoryNetwork::with_seed`]), [`set_delay`](MemoryNetwork::set_delay) and
//! [`set_link_delay`](MemoryNetwork::set_link_delay) (tokio timers, FIFO per link; delays
//! need a tokio runtime with time enabled) — touch only messages, never peer events (except
//! that a kind shutdown's `Disconnected`/`Dead` queue behind the data it already sent).
//! [`MemoryNetwork::heal`] clears every fault.
//! [`MemoryNetwork::stats`] counts messages sent, delivered, dropped and duplicated.
//!
//! ## Example
//!
//! ```
//! use baton_core::{CloseKind, DeathProof, LocalNode, Message, NodeId, Transport, TransportEvent};
//! use baton_transport_memory::MemoryNetwork;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let net = MemoryNetwork::new();
//! let (a, b) = (net.transport(), net.transport());
//! let local = |name: &str| LocalNode::new(name, 1, name);
//! a.start(&local("a")).await.unwrap();
//! b.start(&local("b")).await.unwrap();
//!
//! a.connect("b").await;
//! assert!(matches!(b.recv().await, Some(TransportEvent::Connected { node, .. }) if node.as_str() == "a"));
//!
//! a.send(&NodeId::new("b"), Message::Leave).await.unwrap();
//! match b.recv().await {
//!     Some(TransportEvent::Message(env)) => {
//!         assert_eq!(env.from, NodeId::new("a"));
//!         assert_eq!(env.message, Message::Leave);
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//!
//! a.shutdown().await;
//! // The process went away: its connections closed in order, then its address refused.
//! let a_id = NodeId::new("a");
//! assert_eq!(b.recv().await, Some(TransportEvent::Disconnected { node: a_id.clone(), how: CloseKind::Orderly }));
//! let proof = DeathProof::RefusedAfterOrderlyClose;
//! assert_eq!(b.recv().await, Some(TransportEvent::Dead { node: a_id, incarnation: baton_core::Incarnation(1), proof }));
//! assert_eq!(a.recv().await, None);
//! # }
//! ```
#![warn(missing_docs)]

mod network;
mod transport;

pub use network::{DEFAULT_SEED, IntoNodeId, MemoryNetwork, NetworkStats};
pub use transport::MemoryTransport;
