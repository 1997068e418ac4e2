//! [`NodeEvent`]: what the driver did, in order, for observers such as an admin server's
//! metrics and event stream ([`Node::subscribe`](super::Node::subscribe)).
//!
//! The driver publishes only while someone subscribes: with no receiver, nothing is cloned.

use crate::engine::Event;
use crate::message::CallError;
use crate::types::{Leadership, NodeId};
use std::time::Duration;
use tokio::sync::broadcast;

/// How many node events a slow subscriber may fall behind before it misses some (it then
/// gets [`broadcast::error::RecvError::Lagged`] and should re-read [`Node::status`](super::Node::status)).
pub const EVENT_BUFFER: usize = 1024;

/// One thing the driver did, as an observer sees it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A group's leadership was published to its watchers. Published again on changes that do
    /// not move the leader or the term (a lease won or lost: `is_me`): compare with the last.
    Leadership(Leadership),
    /// News from the engine (peers up and down, votes, step-downs, why there is no leader), in
    /// the order the engine reported it relative to the leadership publications. All but
    /// [`Event::ClientCallDone`], published as [`NodeEvent::CallDone`].
    Engine(Event),
    /// A call that entered the cluster at this node was answered: one made through its API
    /// ([`Node::call`](super::Node::call)), or one a client routed through it (`baton work`, a
    /// client connection). Published once per call, by the node it entered at, whichever node
    /// served it; the serving node publishes [`NodeEvent::Served`].
    CallDone {
        /// The group called.
        group: crate::types::GroupName,
        /// `None` when it was served, else why not.
        error: Option<CallError>,
        /// From the call reaching the driver (a client's: the engine) to its answer.
        elapsed: Duration,
        /// The client that sent the call; `None` for a call made through this node's API.
        client: Option<NodeId>,
    },
    /// This node's handler served a routed call (from this node or another).
    Served {
        /// The group.
        group: crate::types::GroupName,
        /// Whether the handler answered without an error.
        ok: bool,
        /// How long the handler took.
        elapsed: Duration,
    },
}

impl NodeEvent {
    /// How the driver publishes an engine event: a client's call answered is a
    /// [`NodeEvent::CallDone`], like the node's own; everything else is [`NodeEvent::Engine`].
    pub(super) fn of_engine(event: Event) -> NodeEvent {
        match event {
            Event::ClientCallDone {
                client,
                group,
                error,
                elapsed,
            } => NodeEvent::CallDone {
                group,
                error,
                elapsed,
                client: Some(client),
            },
            event => NodeEvent::Engine(event),
        }
    }
}

/// The driver's side: a sender that builds the event only when someone listens.
pub(super) fn publish(tx: &broadcast::Sender<NodeEvent>, event: impl FnOnce() -> NodeEvent) {
    if tx.receiver_count() > 0 {
        // An error only means every receiver was dropped since the check.
        let _ = tx.send(event());
    }
}
