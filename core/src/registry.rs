//! The [`Registry`] trait: where members of groups are recorded and looked up.

use crate::types::{GroupName, MemberId, MemberRecord};
use async_trait::async_trait;

/// Errors a registry returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the operation.
    #[error("registry refused: {0}")]
    Refused(String),
    /// The registry is gone (its node shut down, its backend closed).
    #[error("registry closed")]
    Closed,
}

/// A stream of changes from a [`Registry`].
#[async_trait]
pub trait RegistryWatch: Send {
    /// Waits for a change and returns the group that changed; `None` when the registry closed.
    async fn changed(&mut self) -> Option<GroupName>;
}

/// Where members of groups are recorded.
///
/// The default is the cluster's own replicated table, kept by the membership protocol over the
/// transport (see `ClusterRegistry` in the runtime). Another backend — an external store, a
/// shared in-process table in tests — can replace it: the node then registers its members there
/// and takes each group's candidates from it (still filtered by the node's own failure detector).
#[async_trait]
pub trait Registry: Send + Sync {
    /// Records a member.
    async fn register(&self, member: MemberRecord) -> Result<(), RegistryError>;
    /// Removes a member.
    async fn deregister(&self, group: &str, member: &MemberId) -> Result<(), RegistryError>;
    /// The members of a group, in member-id order.
    async fn members(&self, group: &str) -> Result<Vec<MemberRecord>, RegistryError>;
    /// Subscribes to changes.
    async fn subscribe(&self) -> Result<Box<dyn RegistryWatch>, RegistryError>;
}
