//! [`Elector`]: the seam for elections held outside the engine (an etcd cluster, say).
//!
//! With an elector given to [`NodeBuilder::elector`](super::NodeBuilder::elector) the node still
//! runs its engine over the transport (membership of peers, status, routing plumbing), but the
//! engine takes its candidates from an (empty) external registry, so it never campaigns; each
//! group's [`Leadership`] — the watch behind [`Service::leadership`](super::Service::leadership),
//! `is_me`, the term that is the fencing token — is published by the elector instead.

use crate::message::{ControlError, HandedOff};
use crate::policy::LeaderPolicy;
use crate::registry::RegistryError;
use crate::types::{GroupName, Incarnation, Leadership, MemberRecord, NodeId, Term};
use async_trait::async_trait;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

/// What a group's member stands with: its record, how the group ranks, where to publish.
pub struct Candidacy {
    /// The member (what policies rank by).
    pub record: MemberRecord,
    /// The group's policy.
    pub policy: Arc<dyn LeaderPolicy>,
    /// Hand off to a better-ranked member when one appears.
    pub preempt: bool,
    /// The group's leadership as this node sees it. The elector must set `is_me` only while
    /// this node may act as the leader, and clear it before its claim could have lapsed in the
    /// external store.
    pub leadership: watch::Sender<Leadership>,
}

/// A transfer or step-down of a group this node leads, granted by the node's engine as far as
/// it can judge (this node leads under `term` as the elector published; a transfer's target is
/// not this node and not known unhealthy), for the elector to decide and carry out
/// ([`Elector::hand_off`]).
pub struct HandOff {
    /// The group.
    pub group: GroupName,
    /// The successor's node (a transfer); `None`: a step-down, the elector picks the
    /// best-ranked other live member of its own ranking.
    pub to: Option<NodeId>,
    /// This node (for the errors that name it, `NotLeader`).
    pub node: NodeId,
    /// The term the engine granted the request under: the elector's fencing token.
    pub term: Term,
    release: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl HandOff {
    /// A request whose `release` stops the group's leader work (the node's `on_started_leading`
    /// work: cancelled, waited for, bounded by the release timeout).
    pub fn new(
        group: GroupName,
        to: Option<NodeId>,
        node: NodeId,
        term: Term,
        release: impl Future<Output = ()> + Send + 'static,
    ) -> HandOff {
        HandOff {
            group,
            to,
            node,
            term,
            release: Some(Box::pin(release)),
        }
    }

    /// Stops the group's leader work and returns once it has (at once the second time). The
    /// elector calls this after it has decided to hand off and before it changes anything —
    /// so that the successor's work starts only after this node's ended, and a refused
    /// request (an unknown target) leaves the work running.
    pub async fn release(&mut self) {
        if let Some(r) = self.release.take() {
            r.await;
        }
    }

    /// Whether [`HandOff::release`] ran (the driver then lets the work start again).
    pub fn released(&self) -> bool {
        self.release.is_none()
    }
}

/// An election held outside the engine.
///
/// The node owns the elector: when the node is aborted (its driver dropped) the elector is
/// dropped with it, and should stop renewing anything it holds — like a crashed process.
#[async_trait]
pub trait Elector: Send + Sync + 'static {
    /// Stands a member of this node for election in its group.
    async fn stand(&self, candidacy: Candidacy) -> Result<(), RegistryError>;
    /// Withdraws this node's member of `group`, handing off first if it leads.
    async fn withdraw(&self, group: &GroupName);
    /// Kind shutdown: stops acting, hands off every group this node leads, withdraws all.
    async fn shutdown(&self);
    /// The node's engine holds **proof** that `incarnation` of peer `node` is gone (an orderly
    /// close then a refused reconnect, a newer incarnation, its goodbye — only the kinds that
    /// `[cluster] death_proof` lets count; never a timeout or a reset). An elector may end that
    /// incarnation's claims in the external store at once instead of waiting for them to
    /// expire (etcd: revoke its lease). Called on the node's driver: must not block; the
    /// default does nothing.
    fn peer_gone(&self, node: &NodeId, incarnation: Incarnation) {
        let _ = (node, incarnation);
    }
    /// An operator's transfer or step-down (`baton transfer`, `baton step-down`,
    /// [`Node::transfer`](super::Node::transfer), routed to this node as the group's leader)
    /// that the engine granted: decide it on the elector's view — refusing with the engine's
    /// [`ControlError`]s, naming the node and group (`NotLeader`, `AlreadyLeads`,
    /// `NotCandidate`, `UnknownTarget`, `NoOtherCandidate`, `LeaderChanged`) — then
    /// [`HandOff::release`], then stop acting (clear `is_me`) and name the successor. `Ok` only
    /// once the successor is named in the external store. Runs on a task of its own, never on
    /// the node's driver. The default refuses (`NotLeader`): an elector that cannot hand off.
    async fn hand_off(&self, request: &mut HandOff) -> Result<HandedOff, ControlError> {
        Err(ControlError::NotLeader {
            group: request.group.clone(),
            node: request.node.clone(),
        })
    }
}
