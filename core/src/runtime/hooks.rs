//! Leadership hooks in the style of client-go's `leaderelection` callbacks:
//! [`Service::on_started_leading`](super::Service::on_started_leading) (work that runs while this
//! instance leads, with a [`CancellationToken`] that fires when leadership is lost),
//! [`on_stopped_leading`](super::Service::on_stopped_leading) and
//! [`on_new_leader`](super::Service::on_new_leader).
//!
//! One *runner* task per [`Service`](super::Service) follows the group's leadership watch and
//! calls that service's hooks in order: a new leader, a loss (cancel the token, wait for every
//! started future to return, then the stopped hooks), a start (a fresh token, the started
//! hooks' futures spawned as tasks). Closures are `FnMut`: the runner owns them.
//!
//! **Release only after the work stopped.** A handoff this node chooses — [`Node::shutdown`],
//! [`Service::leave`], dropping the last handle — first *releases* the leader work of the groups
//! concerned ([`release`]): it cancels their tokens and waits, while the node still leads and
//! heartbeats, until every started future has returned, bounded by the node's release timeout
//! ([`NodeBuilder::release_timeout`]); only then does the driver hand leadership off. Past the
//! timeout the work's tasks are aborted (they end at their next `.await`; that is waited for
//! up to 100 ms more), a warning is logged, and the handoff goes on. A transfer, a step-down
//! and the handoff of a leader that became unhealthy release the same way: the leader's engine
//! asks for it (`Action::Release`) once it has granted the request, and tells the successor to
//! take over only after the release — so the successor's work starts after this one's ended.
//! A lost lease, a higher term or a preemption ends leadership without asking:
//! the token fires as soon as the loss is published, which is when another node may already
//! lead — guard side effects with the term ([`Fence`](crate::Fence)).
//!
//! [`Node::shutdown`]: super::Node::shutdown
//! [`Service::leave`]: super::Service::leave
//! [`NodeBuilder::release_timeout`]: super::NodeBuilder::release_timeout

use super::node::{Shared, lock};
use crate::types::{GroupName, Leadership, MemberId, Term};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

#[doc(no_inline)]
pub use tokio_util::sync::CancellationToken;

/// How long a handoff waits for leader work by default ([`NodeBuilder::release_timeout`]).
///
/// [`NodeBuilder::release_timeout`]: super::NodeBuilder::release_timeout
pub const DEFAULT_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a release waits for aborted work to end.
const ABORT_GRACE: Duration = Duration::from_millis(100);

type Work = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
type StartedFn = Box<dyn FnMut(Term, CancellationToken) -> Work + Send + 'static>;
type StoppedFn = Box<dyn FnMut(Term) + Send + 'static>;
type NewLeaderFn = Box<dyn FnMut(&Leadership) + Send + 'static>;

#[derive(Default)]
struct Table {
    started: Vec<StartedFn>,
    stopped: Vec<StoppedFn>,
    new_leader: Vec<NewLeaderFn>,
}

/// The leader work running now, as [`release`] needs to see it.
#[derive(Default)]
struct WorkState {
    /// The token of the work of the term led now (None when none runs).
    token: Option<CancellationToken>,
    /// Its tasks, to abort past the release timeout.
    aborts: Vec<AbortHandle>,
    /// A handoff is under way: start no new work.
    releasing: bool,
    /// The released work's term goes on (a refused transfer): its runner stops it for good
    /// (the stopped hooks) and starts it again.
    restart: bool,
}

/// One service's hooks and the state its runner shares with [`release`].
pub(super) struct Hooks {
    group: GroupName,
    table: Mutex<Table>,
    work: Mutex<WorkState>,
    /// True while no started-leading future runs.
    idle: watch::Sender<bool>,
    /// The service left or was dropped: the runner ends (after its stopped hooks).
    closed: CancellationToken,
    /// The runner was spawned (at the first hook registered).
    running: AtomicBool,
    /// Wakes the runner for a `restart`.
    kick: tokio::sync::Notify,
}

impl Hooks {
    pub(super) fn new(group: GroupName) -> Arc<Hooks> {
        Arc::new(Hooks {
            group,
            table: Mutex::new(Table::default()),
            work: Mutex::new(WorkState::default()),
            idle: watch::channel(true).0,
            closed: CancellationToken::new(),
            running: AtomicBool::new(false),
            kick: tokio::sync::Notify::new(),
        })
    }

    pub(super) fn add_started<F, Fut>(self: &Arc<Self>, rx: &watch::Receiver<Leadership>, mut f: F)
    where
        F: FnMut(Term, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        lock(&self.table)
            .started
            .push(Box::new(move |term, token| Box::pin(f(term, token))));
        self.ensure_runner(rx);
    }

    pub(super) fn add_stopped(
        self: &Arc<Self>,
        rx: &watch::Receiver<Leadership>,
        f: impl FnMut(Term) + Send + 'static,
    ) {
        lock(&self.table).stopped.push(Box::new(f));
        self.ensure_runner(rx);
    }

    pub(super) fn add_new_leader(
        self: &Arc<Self>,
        rx: &watch::Receiver<Leadership>,
        f: impl FnMut(&Leadership) + Send + 'static,
    ) {
        lock(&self.table).new_leader.push(Box::new(f));
        self.ensure_runner(rx);
    }

    /// Whether leader work runs now.
    pub(super) fn busy(&self) -> bool {
        !*self.idle.borrow()
    }

    /// The service is gone: the runner ends once it has stopped any work it started.
    pub(super) fn close(&self) {
        self.closed.cancel();
    }

    fn ensure_runner(self: &Arc<Self>, rx: &watch::Receiver<Leadership>) {
        if !self.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(run(self.clone(), rx.clone()));
        }
    }

    /// Cancels the running work and waits until it has returned, at most `timeout`; past it,
    /// aborts the work's tasks. Starts no work afterwards until [`Hooks::resume`].
    async fn release(&self, timeout: Duration) {
        let token = {
            let mut w = lock(&self.work);
            w.releasing = true;
            w.token.clone()
        };
        let Some(token) = token else {
            return;
        };
        token.cancel();
        let mut idle = self.idle.subscribe();
        let done = tokio::time::timeout(timeout, idle.wait_for(|idle| *idle))
            .await
            .is_ok();
        if !done {
            let aborts = std::mem::take(&mut lock(&self.work).aborts);
            tracing::warn!(
                group = %self.group,
                "the on_started_leading work did not stop within {timeout:?} of its cancellation; aborting it and handing off"
            );
            for a in aborts {
                a.abort();
            }
            // An aborted task ends at its next `.await`; wait for that, briefly (a future
            // stuck in blocking code never ends: hand off anyway).
            let _ = tokio::time::timeout(ABORT_GRACE, idle.wait_for(|idle| *idle)).await;
        }
    }

    fn resume(&self, restart: bool) {
        let mut w = lock(&self.work);
        w.releasing = false;
        if restart {
            w.restart = true;
            drop(w);
            self.kick.notify_one();
        }
    }

    /// Takes the hooks out of the table while they are called (so a hook may register
    /// another), then puts them back in front of any registered meanwhile.
    fn with_table<R>(&self, f: impl FnOnce(&mut Table) -> R) -> R {
        let mut table = std::mem::take(&mut *lock(&self.table));
        let r = f(&mut table);
        let mut guard = lock(&self.table);
        let added = std::mem::replace(&mut *guard, table);
        guard.started.extend(added.started);
        guard.stopped.extend(added.stopped);
        guard.new_leader.extend(added.new_leader);
        r
    }
}

/// The runner of one service's hooks.
async fn run(hooks: Arc<Hooks>, mut rx: watch::Receiver<Leadership>) {
    let mut announced: Option<(MemberId, Term)> = None;
    // The term whose started hooks ran (until the stopped hooks run).
    let mut leading: Option<Term> = None;
    let mut tasks: JoinSet<()> = JoinSet::new();
    loop {
        let l = rx.borrow_and_update().clone();
        if let Some(m) = &l.leader
            && announced.as_ref() != Some(&(m.clone(), l.term))
        {
            announced = Some((m.clone(), l.term));
            hooks.with_table(|t| {
                for f in &mut t.new_leader {
                    f(&l);
                }
            });
        }
        let restart = std::mem::take(&mut lock(&hooks.work).restart);
        if let Some(term) = leading
            && (!l.is_me || l.term != term || restart)
        {
            stop(&hooks, &mut tasks, term).await;
            leading = None;
        }
        if l.is_me && leading.is_none() && start(&hooks, &mut tasks, l.term) {
            leading = Some(l.term);
        }
        tokio::select! {
            biased;
            _ = hooks.closed.cancelled() => break,
            changed = rx.changed() => if changed.is_err() { break },
            _ = hooks.kick.notified() => {}
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                report(&hooks.group, joined);
                if tasks.is_empty() {
                    set_idle(&hooks);
                }
            }
        }
    }
    if let Some(term) = leading {
        stop(&hooks, &mut tasks, term).await;
    }
}

/// Starts the started hooks' work for `term` (unless a handoff is under way). Returns whether
/// the term now counts as led (its stopped hooks will run).
fn start(hooks: &Hooks, tasks: &mut JoinSet<()>, term: Term) -> bool {
    let mut w = lock(&hooks.work);
    if w.releasing || hooks.closed.is_cancelled() {
        return false;
    }
    let token = CancellationToken::new();
    let futures = hooks.with_table(|t| {
        t.started
            .iter_mut()
            .map(|f| f(term, token.clone()))
            .collect::<Vec<_>>()
    });
    w.aborts = futures.into_iter().map(|fut| tasks.spawn(fut)).collect();
    if !w.aborts.is_empty() {
        w.token = Some(token);
        hooks.idle.send_replace(false);
    }
    true
}

/// Leadership of `term` is over: cancel its work, wait until it has returned, then run the
/// stopped hooks.
async fn stop(hooks: &Hooks, tasks: &mut JoinSet<()>, term: Term) {
    if let Some(token) = lock(&hooks.work).token.clone() {
        token.cancel();
    }
    while let Some(joined) = tasks.join_next().await {
        report(&hooks.group, joined);
    }
    set_idle(hooks);
    hooks.with_table(|t| {
        for f in &mut t.stopped {
            f(term);
        }
    });
}

fn set_idle(hooks: &Hooks) {
    let mut w = lock(&hooks.work);
    w.token = None;
    w.aborts.clear();
    hooks.idle.send_replace(true);
}

fn report(group: &GroupName, joined: Result<(), tokio::task::JoinError>) {
    match joined {
        Err(e) if e.is_panic() => {
            tracing::warn!(%group, "an on_started_leading future panicked: {e}");
        }
        _ => {}
    }
}

/// The hooks of every service of one node, by group.
#[derive(Default)]
pub(super) struct HookRegistry {
    by_group: Mutex<BTreeMap<GroupName, Arc<Hooks>>>,
}

impl HookRegistry {
    pub(super) fn insert(&self, hooks: Arc<Hooks>) {
        lock(&self.by_group).insert(hooks.group.clone(), hooks);
    }

    /// Removes `hooks` (not whatever the group's service has now).
    pub(super) fn remove(&self, hooks: &Arc<Hooks>) {
        let mut all = lock(&self.by_group);
        if all.get(&hooks.group).is_some_and(|h| Arc::ptr_eq(h, hooks)) {
            all.remove(&hooks.group);
        }
    }

    fn select(&self, group: Option<&GroupName>) -> Vec<Arc<Hooks>> {
        let all = lock(&self.by_group);
        match group {
            Some(g) => all.get(g).cloned().into_iter().collect(),
            None => all.values().cloned().collect(),
        }
    }
}

/// Before a handoff this node chooses: cancels the leader work of `group` (every group with
/// `None`) and waits until it has returned, at most the node's release timeout in all, while
/// the node still leads. No new work starts in those groups until [`resume`].
pub(super) async fn release(shared: &Shared, group: Option<&GroupName>) {
    let deadline = tokio::time::Instant::now() + shared.release_timeout;
    for hooks in shared.hooks.select(group) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        hooks.release(left).await;
    }
}

/// [`release`] for one service's hooks.
pub(super) async fn release_one(shared: &Shared, hooks: &Hooks) {
    hooks.release(shared.release_timeout).await;
}

/// Whether leader work of `group` runs now (a release would have something to wait for).
pub(super) fn busy(shared: &Shared, group: &GroupName) -> bool {
    shared.hooks.select(Some(group)).iter().any(|h| h.busy())
}

/// After a handoff that kept the service (a transfer, a step-down, an unhealthy leader's):
/// work may start again when this instance leads once more — with `restart`, at once (the
/// handoff did not happen and the term goes on: the stopped hooks run, then the started ones
/// again).
pub(super) fn resume(shared: &Shared, group: Option<&GroupName>, restart: bool) {
    for hooks in shared.hooks.select(group) {
        hooks.resume(restart);
    }
}
