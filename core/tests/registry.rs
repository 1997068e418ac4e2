//! A different [`Registry`] plugged into a [`Node`]: candidates come from it, not from the
//! heartbeat-gossiped table.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod support;

use async_trait::async_trait;
use baton_core::config::QuorumMode;
use baton_core::{GroupName, MemberId, MemberRecord, Node, Registry, RegistryError, RegistryWatch};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Cluster, LIMIT, group, join, leader_of, leave};
use tokio::sync::broadcast;

const G: &str = "tracked";

/// An "external store" shared by every node of the test, which can hide some nodes' members
/// (as a store with a stale or filtered view would).
#[derive(Clone)]
struct SharedRegistry {
    table: Arc<Mutex<BTreeMap<GroupName, Vec<MemberRecord>>>>,
    hidden: Arc<Mutex<BTreeSet<String>>>,
    changes: broadcast::Sender<GroupName>,
}

impl SharedRegistry {
    fn new() -> Self {
        SharedRegistry {
            table: Default::default(),
            hidden: Default::default(),
            changes: broadcast::channel(64).0,
        }
    }
    fn hide(&self, node: &str) {
        self.hidden.lock().unwrap().insert(node.to_string());
        let _ = self.changes.send(G.into());
    }
    fn unhide(&self, node: &str) {
        self.hidden.lock().unwrap().remove(node);
        let _ = self.changes.send(G.into());
    }
}

struct Watch(broadcast::Receiver<GroupName>);

#[async_trait]
impl RegistryWatch for Watch {
    async fn changed(&mut self) -> Option<GroupName> {
        self.0.recv().await.ok()
    }
}

#[async_trait]
impl Registry for SharedRegistry {
    async fn register(&self, member: MemberRecord) -> Result<(), RegistryError> {
        let group = member.group.clone();
        self.table
            .lock()
            .unwrap()
            .entry(group.clone())
            .or_default()
            .push(member);
        let _ = self.changes.send(group);
        Ok(())
    }
    async fn deregister(&self, group: &str, member: &MemberId) -> Result<(), RegistryError> {
        if let Some(v) = self.table.lock().unwrap().get_mut(group) {
            v.retain(|m| m.id != *member);
        }
        let _ = self.changes.send(group.into());
        Ok(())
    }
    async fn members(&self, group: &str) -> Result<Vec<MemberRecord>, RegistryError> {
        let hidden = self.hidden.lock().unwrap().clone();
        let mut v: Vec<MemberRecord> = self
            .table
            .lock()
            .unwrap()
            .get(group)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| !hidden.contains(m.id.node.as_str()))
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }
    async fn subscribe(&self) -> Result<Box<dyn RegistryWatch>, RegistryError> {
        Ok(Box::new(Watch(self.changes.subscribe())))
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_node_with_another_registry_elects_from_that_registrys_members() {
    let reg = SharedRegistry::new();
    // The store does not list a: although a is the oldest, it cannot be elected.
    reg.hide("a");
    let mut c = Cluster::memory(
        &["a", "b", "c"],
        QuorumMode::Majority,
        vec![group(G, &["oldest-running"], false)],
    );
    for name in ["a", "b", "c"] {
        let config = c.config(name);
        let policies = baton_strategies::policies_for(&config).unwrap();
        let node = Node::builder(config)
            .transport(Arc::new(c.memory_net().transport()))
            .registry(Arc::new(reg.clone()))
            .policies(policies)
            .start()
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(3));
        c.nodes.insert(name.to_string(), node);
        join(&mut c, name, G).await;
    }
    let l = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&l), "b", "a is not in the registry's view");
    assert_eq!(
        reg.table.lock().unwrap()[G].len(),
        3,
        "every node registered its member"
    );

    // The leader leaves: it deregisters and the next registry member takes over.
    let l2 = leave(&mut c, "b", G).await;
    assert_eq!(leader_of(&l2), "c");
    assert!(
        reg.table.lock().unwrap()[G]
            .iter()
            .all(|m| m.id.node.as_str() != "b")
    );

    // Now the store lists a again; a kill of c lets a (listed, alive) take over.
    reg.unhide("a");
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.kill("c");
    let l3 = c.agreed(G, LIMIT).await;
    assert_eq!(leader_of(&l3), "a");
    assert!(l3.term > l2.term);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_cluster_registry_lists_live_members_and_refuses_foreign_ones() {
    let mut c = Cluster::memory(
        &["a", "b", "c"],
        QuorumMode::Majority,
        vec![group(G, &[], false)],
    );
    for n in ["a", "b", "c"] {
        c.start(n).await;
    }
    c.agreed(G, LIMIT).await;
    let reg = c.node("a").registry();
    let members = reg.members(G).await.unwrap();
    let nodes: Vec<&str> = members.iter().map(|m| m.id.node.as_str()).collect();
    assert_eq!(nodes, vec!["a", "b", "c"]);
    let mut foreign = members[1].clone();
    foreign.group = "other".into();
    let err = reg.register(foreign).await.unwrap_err();
    assert!(err.to_string().contains("only its own members"), "{err}");
    let mut watch = reg.subscribe().await.unwrap();
    c.kill("c");
    let changed = tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .unwrap();
    assert_eq!(changed.as_deref(), Some(G));
    let after = reg.members(G).await.unwrap();
    assert!(after.iter().all(|m| m.id.node.as_str() != "c"));
}
