//! [`Elector`]: the seam for elections held outside the engine (an etcd cluster, say).
//!
//! With an elector given to [`NodeBuilder::elector`](super::NodeBuilder::elector) the node still
//! runs its engine over the transport (membership of peers, status, routing plumbing), but the
//! engine takes its candidates from an (empty) external registry, so it never campaigns; each
//! group's [`Leadership`] — the watch behind [`Service::leadership`](super::Service::leadership),
//! `is_me`, the term that is the fencing token — is published by the elector instead.

use crate::policy::LeaderPolicy;
use crate::registry::RegistryError;
use crate::types::{GroupName, Leadership, MemberRecord};
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
}
