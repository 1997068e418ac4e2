//! The application's side of a group: [`Handler`] (with [`Work`], what it is given) serves
//! calls routed to this node, and [`Service`] is this node's instance in one group — its
//! leadership watch, its fencing token, and where the handler is installed.

use super::driver::Command;
use super::node::{Node, TransferError, lock};
use crate::message::{ControlOp, HandedOff};
use crate::types::{GroupName, Leadership, MemberId, Term};
use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

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
pub struct Service {
    pub(super) node: Node,
    pub(super) group: GroupName,
    pub(super) member: MemberId,
    pub(super) rx: watch::Receiver<Leadership>,
}

impl Service {
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
    /// Runs until the node shuts down.
    pub fn on_change<F>(&self, f: F)
    where
        F: Fn(&Leadership) + Send + 'static,
    {
        let mut rx = self.rx.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let l = rx.borrow_and_update().clone();
                f(&l);
            }
        });
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

    /// Leaves the group (handing off first if this instance leads).
    pub async fn leave(self) {
        let (reply, rx) = oneshot::channel();
        if self
            .node
            .shared
            .commands
            .send(Command::Leave {
                group: self.group.clone(),
                reply,
            })
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}
