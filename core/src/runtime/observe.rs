//! [`NodeEvent`]: what the driver did, in order, for observers such as an admin server's
//! metrics and event stream ([`Node::subscribe`](super::Node::subscribe)).
//!
//! The driver publishes only while someone subscribes: with no receiver, nothing is cloned.

use crate::engine::Event;
use crate::message::CallError;
use crate::types::Leadership;
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
    /// the order the engine reported it relative to the leadership publications.
    Engine(Event),
    /// A call made through this node's API ([`Node::call`](super::Node::call)) was answered.
    CallDone {
        /// The group called.
        group: crate::types::GroupName,
        /// `None` when it was served, else why not.
        error: Option<CallError>,
        /// From the call reaching the driver to its answer.
        elapsed: Duration,
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

/// The driver's side: a sender that builds the event only when someone listens.
pub(super) fn publish(tx: &broadcast::Sender<NodeEvent>, event: impl FnOnce() -> NodeEvent) {
    if tx.receiver_count() > 0 {
        // An error only means every receiver was dropped since the check.
        let _ = tx.send(event());
    }
}
