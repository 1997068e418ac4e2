//! [`ClusterRegistry`]: the default [`Registry`], the cluster's own replicated member table.

use super::{Command, lock};
use crate::registry::{Registry, RegistryError, RegistryWatch};
use crate::types::{GroupName, MemberId, MemberRecord, NodeId};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, oneshot};

/// The cluster's own member table, kept by the membership protocol: every node announces its
/// members in its heartbeats, and each node's view holds the members of the live nodes.
///
/// Reads (`members`, `subscribe`) show this node's view. `register` / `deregister` act for the
/// local node only (they join or leave the group, like [`Node::join`](super::Node::join));
/// other nodes announce their own members.
#[derive(Clone)]
pub struct ClusterRegistry {
    node: NodeId,
    table: Arc<Mutex<BTreeMap<GroupName, Vec<MemberRecord>>>>,
    changes: broadcast::Sender<GroupName>,
    commands: mpsc::UnboundedSender<Command>,
}

impl ClusterRegistry {
    pub(super) fn new(node: NodeId, commands: mpsc::UnboundedSender<Command>) -> Self {
        ClusterRegistry {
            node,
            table: Arc::new(Mutex::new(BTreeMap::new())),
            changes: broadcast::channel(256).0,
            commands,
        }
    }

    pub(super) fn update(&self, group: GroupName, members: Vec<MemberRecord>) {
        let mut table = lock(&self.table);
        // Nobody watches: no name to clone for a change notice. Counted under the table's
        // lock, so a watcher that subscribes meanwhile reads the table after this insert.
        if self.changes.receiver_count() == 0 {
            table.insert(group, members);
            return;
        }
        table.insert(group.clone(), members);
        drop(table);
        let _ = self.changes.send(group);
    }

    pub(super) fn close(&self) {
        lock(&self.table).clear();
    }

    /// Every group this node knows, with its live members.
    pub fn snapshot(&self) -> BTreeMap<GroupName, Vec<MemberRecord>> {
        lock(&self.table).clone()
    }
}

struct Watch(broadcast::Receiver<GroupName>);

#[async_trait]
impl RegistryWatch for Watch {
    async fn changed(&mut self) -> Option<GroupName> {
        loop {
            match self.0.recv().await {
                Ok(g) => return Some(g),
                // Missed some changes: the next one still tells the reader to look again.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[async_trait]
impl Registry for ClusterRegistry {
    async fn register(&self, member: MemberRecord) -> Result<(), RegistryError> {
        if member.id.node != self.node {
            return Err(RegistryError::Refused(format!(
                "the cluster registry of node {} records only its own members; node {} announces its own",
                self.node, member.id.node
            )));
        }
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Join {
                joins: vec![(member.group, member.labels)],
                reply,
            })
            .map_err(|_| RegistryError::Closed)?;
        match rx.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(RegistryError::Refused(e.to_string())),
            Err(_) => Err(RegistryError::Closed),
        }
    }

    async fn deregister(&self, group: &str, member: &MemberId) -> Result<(), RegistryError> {
        if member.node != self.node {
            return Err(RegistryError::Refused(format!(
                "the cluster registry of node {} removes only its own members",
                self.node
            )));
        }
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Leave {
                group: group.into(),
                member: Some(member.clone()),
                reply,
            })
            .map_err(|_| RegistryError::Closed)?;
        rx.await.map_err(|_| RegistryError::Closed)
    }

    async fn members(&self, group: &str) -> Result<Vec<MemberRecord>, RegistryError> {
        Ok(lock(&self.table).get(group).cloned().unwrap_or_default())
    }

    async fn subscribe(&self) -> Result<Box<dyn RegistryWatch>, RegistryError> {
        Ok(Box::new(Watch(self.changes.subscribe())))
    }
}
