//! [`Elector`]: the seam for elections held outside the engine (an etcd cluster, say).
//!
//! With an elector given to [`NodeBuilder::elector`](super::NodeBuilder::elector) the node still
//! runs its engine over the transport (membership of peers, status, routing plumbing), but the
//! engine takes its candidates from an (empty) external registry, so it never campaigns; each
//! group's [`Leadership`] — the watch behind [`Service::leadership`](super::Service::leadership),
//! `is_me`, the term that is the fencing token — is published by the elector instead.

use crate::policy::LeaderPolicy;
use crate::registry::RegistryError;
use crate::types::{GroupName, Incarnation, Leadership, MemberRecord, NodeId};
use async_trait::async_trait;
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
}
