//! The test kit's cluster harness ([`Cluster::memory`]: N baton nodes on one in-memory
//! network), and a monitor that watches that no two nodes ever act as leader at once.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    reason = "shared by the core test binaries (each uses part, none exports it); a panic is the failure report"
)]

use baton_core::config::GroupConfig;
use baton_core::{Leadership, MemberId};
pub use baton_testkit::cluster::Cluster;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Samples every node's leadership each time any of them changes and remembers the largest
/// number of nodes that acted as leader at the same moment.
pub struct OverlapMonitor {
    pub max_acting: Arc<AtomicUsize>,
    pub history: Arc<Mutex<Vec<(String, bool, u64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl OverlapMonitor {
    pub fn start(watches: Vec<(String, watch::Receiver<Leadership>)>) -> Self {
        let max_acting = Arc::new(AtomicUsize::new(0));
        let history = Arc::new(Mutex::new(Vec::new()));
        let (m, h) = (max_acting.clone(), history.clone());
        let task = tokio::spawn(async move {
            let mut watches = watches;
            loop {
                let acting = watches.iter().filter(|(_, w)| w.borrow().is_me).count();
                m.fetch_max(acting, Ordering::SeqCst);
                let futs = watches.iter_mut().map(|(_, w)| Box::pin(w.changed()));
                let (res, idx, _) = futures_select_all(futs.collect()).await;
                if res.is_err() {
                    watches.remove(idx);
                    if watches.is_empty() {
                        return;
                    }
                    continue;
                }
                let (name, w) = &watches[idx];
                let l = w.borrow().clone();
                h.lock().unwrap().push((name.clone(), l.is_me, l.term));
            }
        });
        OverlapMonitor {
            max_acting,
            history,
            task,
        }
    }

    pub fn max(&self) -> usize {
        self.max_acting.load(Ordering::SeqCst)
    }
}

impl Drop for OverlapMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A minimal `select_all` over boxed futures (no extra dependency).
async fn futures_select_all<F>(mut futs: Vec<std::pin::Pin<Box<F>>>) -> (F::Output, usize, ())
where
    F: std::future::Future + ?Sized,
{
    std::future::poll_fn(move |cx| {
        for (i, f) in futs.iter_mut().enumerate() {
            if let std::task::Poll::Ready(out) = f.as_mut().poll(cx) {
                return std::task::Poll::Ready((out, i, ()));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

pub fn group(name: &str, policy: &[&str], preempt: bool) -> GroupConfig {
    let mut g = GroupConfig::new(name);
    if !policy.is_empty() {
        g.policy = Some(baton_core::config::PolicySpec::Chain(
            policy
                .iter()
                .map(|p| baton_core::config::PolicySpec::Named(p.to_string()))
                .collect(),
        ));
    }
    g.preempt = preempt;
    g
}

pub fn member(node: &str, l: &Leadership) -> bool {
    l.leader
        .as_ref()
        .is_some_and(|m: &MemberId| m.node.as_str() == node)
}

/// The name of the node whose member leads in `l`; panics if none does.
pub fn leader_of(l: &Leadership) -> &str {
    l.leader.as_ref().expect("a leader").node.as_str()
}

pub const LIMIT: Duration = Duration::from_secs(10);

/// `node`'s service in `group` leaves (the node keeps running); the leadership the others then
/// agree on.
pub async fn leave(c: &mut Cluster, node: &str, group: &str) -> Leadership {
    let svc = c
        .services
        .remove(&(node.to_string(), group.into()))
        .unwrap_or_else(|| panic!("{node} has no service in {group}"));
    svc.leave().await;
    c.agreed(group, LIMIT).await
}

/// `node`'s service joins `group` and is kept in `c.services`.
pub async fn join(c: &mut Cluster, node: &str, group: &str) {
    let svc = c.node(node).join(group, Default::default()).await.unwrap();
    c.services.insert((node.to_string(), group.into()), svc);
}
