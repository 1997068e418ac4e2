//! The application's side of a group: [`Handler`] (with [`Work`], what it is given) serves
//! calls routed to this node, and [`Service`] is this node's instance in one group — its
//! leadership watch, its fencing token, and where the handler is installed.

use super::driver::Command;
use super::hooks::{CancellationToken, Hooks};
use super::lifecycle;
use super::node::{Node, TransferError, lock};
use crate::message::{ControlOp, HandedOff};
use crate::types::{GroupName, Leadership, MemberId, Term};
use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// One routed request, as a handler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    /// The group.
    pub group: GroupName,
    /// The term this node leads under — the fencing token to attach to side effects.
    /// 0 when served by a non-leader (an `any` call).
    pub term: Term,
    /// Whether this node leads the group.
    pub leader: bool,
    /// Application bytes.
    pub payload: Vec<u8>,
}

/// Serves work routed to a group's leader.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one request; the error string travels back to the caller.
    async fn handle(&self, work: Work) -> Result<Vec<u8>, String>;
}

#[async_trait]
impl<F, Fut> Handler for F
where
    F: Fn(Work) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<u8>, String>> + Send + 'static,
{
    async fn handle(&self, work: Work) -> Result<Vec<u8>, String> {
        (self)(work).await
    }
}

/// This node's instance in one group.
///
/// Dropping it leaves the group (a handoff first when it leads), as [`Service::leave`] does
/// but without waiting: see the runtime's drop semantics in [`Node`]'s docs. A service holds a
/// handle of its node, so the node runs at least as long as its services.
#[must_use = "dropping a Service leaves its group: keep it for as long as the member should stay"]
pub struct Service {
    pub(super) node: Node,
    pub(super) group: GroupName,
    pub(super) member: MemberId,
    pub(super) rx: watch::Receiver<Leadership>,
    hooks: Arc<Hooks>,
    left: bool,
}

impl Service {
    pub(super) fn new(node: Node, group: GroupName, member: MemberId) -> Service {
        let rx = node.shared.watch(&group).subscribe();
        let hooks = Hooks::new(group.clone());
        node.shared.hooks.insert(hooks.clone());
        Service {
            node,
            group,
            member,
            rx,
            hooks,
            left: false,
        }
    }
    /// The group.
    pub fn group(&self) -> &GroupName {
        &self.group
    }
    /// This instance's member id.
    pub fn member(&self) -> &MemberId {
        &self.member
    }
    /// The node it runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }
    /// A watch of the group's leadership as this node sees it.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.rx.clone()
    }
    /// True while this instance leads (and holds its lease).
    pub fn is_leader(&self) -> bool {
        self.rx.borrow().is_me()
    }
    /// The current term when this instance leads — the fencing token.
    pub fn fencing_token(&self) -> Option<Term> {
        let l = self.rx.borrow();
        l.is_me().then_some(l.term)
    }
    /// Calls `f` on every leadership change (the seed's "function to call on a new leader").
    /// Runs until the node shuts down. `f` may keep state (`FnMut`).
    pub fn on_change<F>(&self, mut f: F)
    where
        F: FnMut(&Leadership) + Send + 'static,
    {
        let mut rx = self.rx.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let l = rx.borrow_and_update().clone();
                f(&l);
            }
        });
    }

    /// Runs `f(term, cancel)`'s future each time this instance starts leading — client-go's
    /// `OnStartedLeading`. `cancel` fires when that leadership ends: lost (a lease expired, a
    /// higher term, a preemption) or given up (a shutdown, a leave, a dropped last handle).
    ///
    /// A handoff this node chooses waits — still leading — until every started future has
    /// returned, at most [`NodeBuilder::release_timeout`](super::NodeBuilder::release_timeout)
    /// (past it the future's task is aborted): leadership is released only after the work
    /// stopped. A loss the node does not choose cannot wait: then another node may already
    /// lead when `cancel` fires, so fence side effects with `term`
    /// ([`Fence`](crate::Fence)). Each future runs as its own task; a panic is logged.
    ///
    /// ```no_run
    /// # async fn demo(svc: &baton_core::Service) {
    /// svc.on_started_leading(|term, cancel| async move {
    ///     let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    ///     loop {
    ///         tokio::select! {
    ///             _ = cancel.cancelled() => break,          // leadership is ending: stop
    ///             _ = tick.tick() => { /* do work, fenced with `term` */ let _ = term; }
    ///         }
    ///     }
    /// });
    /// # }
    /// ```
    pub fn on_started_leading<F, Fut>(&self, f: F)
    where
        F: FnMut(Term, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.add_started(&self.rx, f);
    }

    /// Calls `f(term)` when a leadership of this instance has ended — after every
    /// [`on_started_leading`](Service::on_started_leading) future of that term returned.
    /// client-go's `OnStoppedLeading`.
    pub fn on_stopped_leading<F>(&self, f: F)
    where
        F: FnMut(Term) + Send + 'static,
    {
        self.hooks.add_stopped(&self.rx, f);
    }

    /// Calls `f` with the leadership each time the group has a new leader or term (this
    /// instance included), and once at registration when a leader is known. client-go's
    /// `OnNewLeader`.
    pub fn on_new_leader<F>(&self, f: F)
    where
        F: FnMut(&Leadership) + Send + 'static,
    {
        self.hooks.add_new_leader(&self.rx, f);
    }

    /// Serves work routed to this group while this instance leads (and `any` calls always).
    pub fn serve<H: Handler>(&self, handler: H) {
        lock(&self.node.shared.handlers).insert(self.group.clone(), Arc::new(handler));
    }
    /// Hands leadership of the group to the next member of the leader's ranking (routed to the
    /// leader, wherever it runs), as on a kind shutdown. Refused when no other live, healthy
    /// candidate exists. See [`Node::transfer`].
    pub async fn step_down(&self) -> Result<HandedOff, TransferError> {
        self.node
            .control(self.group.clone(), ControlOp::StepDown)
            .await
    }

    /// Marks this instance healthy or not. An unhealthy member is no candidate: the cluster
    /// ranks it nowhere and it does not campaign; if it leads, it hands off at once to the next
    /// healthy member. Announced to the peers with the node's state (within a quarter
    /// heartbeat). Members start healthy.
    pub fn set_healthy(&self, healthy: bool) {
        let _ = self.node.shared.commands.send(Command::SetHealth {
            group: self.group.clone(),
            healthy,
        });
    }

    /// Leaves the group: releases its [`on_started_leading`](Service::on_started_leading)
    /// work (see there), then hands off if this instance leads; returns when it has left.
    pub async fn leave(mut self) {
        self.left = true;
        lifecycle::leave(&self.node.shared, &self.group, &self.member, &self.hooks).await;
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if !self.left {
            lifecycle::leave_on_drop(&self.node.shared, &self.group, &self.member, &self.hooks);
        }
    }
}
