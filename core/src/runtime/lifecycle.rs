//! How a node and its services end: [`Node::shutdown`](super::Node::shutdown) and
//! [`Service::leave`](super::Service::leave) (leader work released first, then the handoff),
//! and what dropping them does.
//!
//! **Dropping the last [`Node`](super::Node) handle shuts the node down kindly**, in the
//! background: `Drop` cannot wait, so it spawns the same shutdown `shutdown()` runs (leader work
//! released, every led group handed off, peers told) on the current tokio runtime, and logs a
//! warning, since nothing waits for it. Outside a runtime it sends the driver the shutdown
//! command directly (a handoff without waiting for leader work). A process that exits right
//! after the drop may end before the handoff is out — peers then see a dying process — so
//! call `shutdown().await` where the handoff must complete. Every [`Service`](super::Service)
//! holds a handle of its node: the last handle is gone when the last clone and the last service
//! are. A node already shut down, aborted or halted does nothing on drop.
//!
//! **Dropping a [`Service`](super::Service) leaves its group**: the leave command is queued at
//! once (a `join` of the group right after the drop finds the old member gone), or — when its
//! `on_started_leading` work runs — in the background on the current runtime, after releasing
//! that work as [`Service::leave`](super::Service::leave) does.

use super::driver::Command;
use super::hooks::{self, Hooks};
use super::node::{RunState, Shared, lock};
use crate::types::{GroupName, MemberId};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Whether the driver still runs (not shut down, aborted or halted).
pub(super) fn driver_runs(shared: &Shared) -> bool {
    *shared.run.borrow() == RunState::Running
        && lock(&shared.driver)
            .as_ref()
            .is_some_and(|h| !h.is_finished())
}

/// Kind shutdown: leader work released, then every led group handed off, peers told, the
/// transport closed; returns when the driver has ended. Idempotent.
pub(super) async fn shutdown(shared: &Shared) {
    if driver_runs(shared) {
        hooks::release(shared, None).await;
    }
    let (reply, rx) = oneshot::channel();
    if shared.commands.send(Command::Shutdown { reply }).is_ok() {
        let _ = rx.await;
    }
    let handle = lock(&shared.driver).take();
    if let Some(h) = handle {
        let _ = h.await;
    }
}

/// A service leaves: its leader work released, then the leave (a handoff when it leads) of
/// `member` if it is still the group's local member; its hooks end after their stopped hooks.
pub(super) async fn leave(
    shared: &Shared,
    group: &GroupName,
    member: &MemberId,
    hooks: &Arc<Hooks>,
) {
    if driver_runs(shared) {
        hooks::release_one(shared, hooks).await;
        let (reply, rx) = oneshot::channel();
        if shared
            .commands
            .send(Command::Leave {
                group: group.clone(),
                member: Some(member.clone()),
                reply,
            })
            .is_ok()
        {
            let _ = rx.await;
        }
    }
    close_hooks(shared, hooks);
}

fn close_hooks(shared: &Shared, hooks: &Arc<Hooks>) {
    shared.hooks.remove(hooks);
    hooks.close();
}

/// A dropped service that had not left: leave. With leader work running, in the background on
/// the current runtime (released first, as [`leave`] does); else, and outside a runtime, the
/// leave command is queued at once — so a `join` of the same group right after the drop
/// finds the old member gone.
pub(super) fn leave_on_drop(
    shared: &Arc<Shared>,
    group: &GroupName,
    member: &MemberId,
    hooks: &Arc<Hooks>,
) {
    if !driver_runs(shared) {
        close_hooks(shared, hooks);
        return;
    }
    tracing::debug!(node = %shared.id, %group, "service {member} dropped: leaving the group");
    if hooks.busy()
        && let Ok(rt) = tokio::runtime::Handle::try_current()
    {
        let (shared, group, member, hooks) =
            (shared.clone(), group.clone(), member.clone(), hooks.clone());
        rt.spawn(async move { leave(&shared, &group, &member, &hooks).await });
        return;
    }
    let (reply, _) = oneshot::channel();
    let _ = shared.commands.send(Command::Leave {
        group: group.clone(),
        member: Some(member.clone()),
        reply,
    });
    close_hooks(shared, hooks);
}

/// Held by every [`Node`](super::Node) clone (and so by every service): when the last one is
/// dropped, the node shuts down kindly in the background.
pub(super) struct LastHandle {
    pub(super) shared: Arc<Shared>,
}

impl Drop for LastHandle {
    fn drop(&mut self) {
        if !driver_runs(&self.shared) {
            return;
        }
        tracing::warn!(
            node = %self.shared.id,
            "the last handle of node {} was dropped without shutdown(): shutting down kindly in the background (await Node::shutdown to wait for the handoff)",
            self.shared.id
        );
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let shared = self.shared.clone();
                rt.spawn(async move { shutdown(&shared).await });
            }
            Err(_) => {
                let (reply, _) = oneshot::channel();
                let _ = self.shared.commands.send(Command::Shutdown { reply });
            }
        }
    }
}
