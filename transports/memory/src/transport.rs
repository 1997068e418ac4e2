//! [`MemoryTransport`]: one endpoint on a [`MemoryNetwork`], implementing
//! [`baton_core::Transport`].

use crate::network::{EndpointId, Exit, MemoryNetwork};
use async_trait::async_trait;
use baton_core::{LocalNode, Message, NodeId, Transport, TransportError, TransportEvent};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

/// One node's endpoint on a [`MemoryNetwork`]; made by [`MemoryNetwork::transport`].
///
/// Unstarted until [`Transport::start`] registers it under `LocalNode::listen`. An endpoint is
/// single-use: after [`Transport::shutdown`] (or [`MemoryNetwork::crash`]) it stays closed; a
/// restarted node is a new endpoint (normally with a higher incarnation). Dropping a started
/// endpoint shuts it down kindly.
///
/// `send` never blocks (unbounded queues). `recv` before `start` waits for events like after
/// it; `recv` after `shutdown` or a crash returns `None` at once, even if events were pending.
pub struct MemoryTransport {
    net: MemoryNetwork,
    id: EndpointId,
    closed: Arc<AtomicBool>,
    /// The sending half of the event queue until `start` hands it to the network.
    pending_tx: Mutex<Option<UnboundedSender<TransportEvent>>>,
    rx: tokio::sync::Mutex<UnboundedReceiver<TransportEvent>>,
}

impl fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("endpoint", &self.id)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl MemoryTransport {
    pub(crate) fn new(net: MemoryNetwork, id: EndpointId) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        MemoryTransport {
            net,
            id,
            closed: Arc::new(AtomicBool::new(false)),
            pending_tx: Mutex::new(Some(tx)),
            rx: tokio::sync::Mutex::new(rx),
        }
    }

    /// The network this endpoint belongs to.
    pub fn network(&self) -> &MemoryNetwork {
        &self.net
    }

    /// True once the endpoint was shut down or crashed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn take_pending_tx(&self) -> Option<UnboundedSender<TransportEvent>> {
        // The guarded value is a plain `Option`; a poisoned lock cannot leave it inconsistent.
        self.pending_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn put_back_tx(&self, tx: UnboundedSender<TransportEvent>) {
        *self
            .pending_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tx);
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    /// Registers this endpoint under `me.listen` and returns that address.
    ///
    /// Fails with [`TransportError::Start`] when the address is in use by a live endpoint,
    /// when `me.id` already has a live endpoint, or when this endpoint was started or closed
    /// before.
    async fn start(&self, me: &LocalNode) -> Result<String, TransportError> {
        let refuse = |reason: &str| TransportError::Start {
            addr: me.listen.clone(),
            reason: reason.to_string(),
        };
        if self.is_closed() {
            return Err(refuse("this endpoint was shut down"));
        }
        let Some(tx) = self.take_pending_tx() else {
            return Err(refuse("this endpoint is already started"));
        };
        match self.net.register(
            self.id,
            me.id.clone(),
            me.incarnation,
            me.listen.clone(),
            tx,
            self.closed.clone(),
        ) {
            Ok(()) => Ok(me.listen.clone()),
            Err((e, tx)) => {
                self.put_back_tx(tx);
                Err(e)
            }
        }
    }

    /// Connects to whoever listens at `addr`; the outcome arrives as events (see the crate
    /// docs): `Connected` on both sides, `ConnectFailed`, `Dead` for a process proven gone,
    /// or nothing across a partition. A no-op when not started or closed.
    async fn connect(&self, addr: &str) {
        self.net.connect_from(self.id, addr);
    }

    /// Queues `message` for the live endpoint of node `to`, opening the link first if needed.
    ///
    /// `Err(Unreachable)` when `to` has no live endpoint; `Err(Closed)` when this endpoint is
    /// not started or is closed. A message lost to a fault still returns `Ok(())`.
    async fn send(&self, to: &NodeId, message: Message) -> Result<(), TransportError> {
        self.net.send_from(self.id, to, message)
    }

    async fn recv(&self) -> Option<TransportEvent> {
        if self.is_closed() {
            return None;
        }
        let mut rx = self.rx.lock().await;
        if self.is_closed() {
            return None;
        }
        let event = rx.recv().await;
        if self.is_closed() {
            return None;
        }
        event
    }

    /// Kind exit: the endpoint leaves the network. Messages it already sent (even delayed)
    /// are still delivered; then each peer with a link sees `Disconnected` and `Dead`.
    async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.net.unregister(self.id, Exit::Shutdown);
        drop(self.take_pending_tx());
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        if !self.is_closed() {
            self.closed.store(true, Ordering::Release);
            self.net.unregister(self.id, Exit::Shutdown);
        }
    }
}
