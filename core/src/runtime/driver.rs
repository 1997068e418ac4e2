//! The driver: the one task per node that owns the [`Engine`]. It waits for whichever comes
//! first — a command from the API, a transport event, or the engine's next deadline — feeds
//! it to the engine and performs the actions it returns (sends, dials, leadership watches,
//! the state file, handler calls, log records).

use super::node::{RunState, Shared, lock};
use super::observe::publish;
use super::state_file::store_state;
use super::{Candidacy, Elector, HandOff, NodeError, NodeEvent, Work};
use crate::engine::{Action, CallRef, Engine, Event, GroupSpec, Input, Joining, StatusSnapshot};
use crate::message::{CallError, ControlError, ControlOp, HandedOff, Message, Served};
use crate::policy::LeaderPolicy;
use crate::registry::Registry;
use crate::transport::{Refusal, Transport};
use crate::types::{GroupName, Labels, MemberId, MemberRecord, NodeId, Term};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// What the API (node, services, the cluster registry) asks of the driver.
pub(super) enum Command {
    /// Join these groups, all in one engine input; the reply lists the members in order.
    Join {
        joins: Vec<(GroupName, Labels)>,
        reply: oneshot::Sender<Result<Vec<MemberId>, NodeError>>,
    },
    Leave {
        group: GroupName,
        /// Leave only if this is still the local member (a dropped service's late leave must
        /// not remove the member that joined after it); `None`: whichever it is.
        member: Option<MemberId>,
        reply: oneshot::Sender<()>,
    },
    Call {
        group: GroupName,
        any: bool,
        payload: Vec<u8>,
        timeout: Option<Duration>,
        reply: oneshot::Sender<Result<Served, CallError>>,
    },
    Reply {
        call: CallRef,
        result: Result<Served, CallError>,
    },
    External {
        group: GroupName,
        members: Vec<MemberRecord>,
    },
    Status {
        reply: oneshot::Sender<StatusSnapshot>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    Control {
        group: GroupName,
        op: ControlOp,
        timeout: Option<Duration>,
        reply: oneshot::Sender<Result<HandedOff, ControlError>>,
    },
    /// An elector published leaderships (`Shared::elected`): the engine routes calls by them.
    Elected,
    /// The leader work of `group` asked for by `Action::Release` has stopped.
    Released {
        group: GroupName,
        term: Term,
    },
    SetHealth {
        group: GroupName,
        healthy: bool,
    },
    /// The elector's answer to an `Action::ElectorHandOff` (`reply_to` and `id` as the action
    /// had them).
    ElectorHandedOff {
        group: GroupName,
        reply_to: Option<NodeId>,
        id: u64,
        result: Result<HandedOff, ControlError>,
    },
}

pub(super) fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

pub(super) fn wall_clock_ms() -> u64 {
    wall_clock_us() / 1000
}

pub(super) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// A call made through the API, waiting for the engine's answer.
pub(super) struct PendingCall {
    pub(super) reply: oneshot::Sender<Result<Served, CallError>>,
    /// For [`NodeEvent::CallDone`].
    pub(super) group: GroupName,
    pub(super) since: std::time::Instant,
}

/// An [`Elector`] and what it needs of the groups' settings.
pub(super) struct ElectorHook {
    pub(super) elector: Arc<dyn Elector>,
    pub(super) specs: BTreeMap<GroupName, GroupSpec>,
    pub(super) default_policy: Arc<dyn LeaderPolicy>,
}

pub(super) struct Driver {
    pub(super) engine: Engine,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) registry: Option<Arc<dyn Registry>>,
    /// Elections held outside the engine: it publishes leadership, the engine's is ignored.
    pub(super) elector: Option<ElectorHook>,
    pub(super) shared: Arc<Shared>,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
    pub(super) calls: HashMap<u64, PendingCall>,
    /// Control requests (transfer, step-down) made through the API, by the id they were given
    /// from the same sequence as calls.
    pub(super) controls: HashMap<u64, oneshot::Sender<Result<HandedOff, ControlError>>>,
    pub(super) next_call: AtomicU64,
    pub(super) state_file: Option<PathBuf>,
    pub(super) shutdown_waiters: Vec<oneshot::Sender<()>>,
    /// Set by [`Action::Halt`]: the driver stops after the current actions.
    pub(super) halt: Option<Refusal>,
}

impl Driver {
    pub(super) async fn run(mut self) {
        // Meet the cluster.
        let first = self.engine.handle(now(), Input::Tick);
        self.perform(first).await;
        loop {
            let deadline = self
                .engine
                .next_deadline()
                .map(tokio::time::Instant::from_std);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let input = tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => match self.command(cmd).await {
                        Some(input) => input,
                        None => continue,
                    },
                    None => Input::Shutdown,
                },
                ev = self.transport.recv() => match ev {
                    Some(ev) => Input::Transport(ev),
                    None => {
                        tracing::warn!(node = %self.shared.id, "transport closed; node stops");
                        break;
                    }
                },
                _ = sleep => Input::Tick,
            };
            let shutting_down = matches!(input, Input::Shutdown);
            let actions = self.engine.handle(now(), input);
            self.perform(actions).await;
            if shutting_down || self.halt.is_some() {
                break;
            }
        }
        self.finish().await;
    }

    async fn finish(&mut self) {
        self.transport.shutdown().await;
        for (_, call) in self.calls.drain() {
            let _ = call.reply.send(Err(CallError::ShuttingDown));
        }
        for (_, reply) in self.controls.drain() {
            let _ = reply.send(Err(ControlError::ShuttingDown));
        }
        self.shared.cluster_registry.close();
        // Answer whoever waits: anything still queued finds the node gone.
        self.commands.close();
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Join { reply, .. } => {
                    let _ = reply.send(Err(NodeError::ShutDown));
                }
                Command::Call { reply, .. } => {
                    let _ = reply.send(Err(CallError::ShuttingDown));
                }
                Command::Leave { reply, .. } | Command::Shutdown { reply } => {
                    let _ = reply.send(());
                }
                Command::Status { reply } => {
                    let _ = reply.send(self.status());
                }
                Command::Control { reply, .. } => {
                    let _ = reply.send(Err(ControlError::ShuttingDown));
                }
                Command::Reply { .. }
                | Command::External { .. }
                | Command::SetHealth { .. }
                | Command::Elected
                | Command::Released { .. }
                | Command::ElectorHandedOff { .. } => {}
            }
        }
        for (_, w) in lock(&self.shared.watches).iter() {
            w.send_modify(|l| l.is_me = false);
        }
        for w in self.shutdown_waiters.drain(..) {
            let _ = w.send(());
        }
        let end = match self.halt.take() {
            Some(r) => RunState::Halted(r),
            None => RunState::Stopped,
        };
        self.shared.run.send_replace(end);
    }

    /// Joins every group of `joins` in one engine input (so a node joining a thousand groups
    /// ranks and announces once), then records the members in the external registry, if
    /// any. All or nothing: a group already joined (or named twice) refuses the whole
    /// request before anything changes, and a registry refusal leaves (and deregisters)
    /// every group of the request again.
    async fn join(
        &mut self,
        joins: Vec<(GroupName, Labels)>,
        reply: oneshot::Sender<Result<Vec<MemberId>, NodeError>>,
    ) {
        let mut seen = std::collections::BTreeSet::new();
        for (group, _) in &joins {
            if self.engine.local_member(group).is_some() || !seen.insert(group) {
                let _ = reply.send(Err(NodeError::AlreadyJoined(group.clone())));
                return;
            }
        }
        let started_at_ms = wall_clock_ms();
        for (group, _) in &joins {
            self.shared.watch(group);
        }
        let input = Input::JoinMany(
            joins
                .iter()
                .map(|(group, labels)| Joining {
                    group: group.clone(),
                    labels: labels.clone(),
                    started_at_ms,
                })
                .collect(),
        );
        let actions = self.engine.handle(now(), input);
        self.perform(actions).await;
        let mut members = Vec::with_capacity(joins.len());
        for (group, _) in &joins {
            let Some(member) = self.engine.local_member(group).cloned() else {
                let _ = reply.send(Err(NodeError::ShutDown));
                return;
            };
            members.push(member);
        }
        let records: Vec<MemberRecord> = {
            let cfg = self.engine.config();
            joins
                .iter()
                .zip(&members)
                .map(|((group, labels), member)| {
                    let mut all = cfg.labels.clone();
                    all.extend(labels.clone());
                    MemberRecord {
                        id: member.clone(),
                        group: group.clone(),
                        started_at_ms,
                        incarnation: cfg.incarnation,
                        hardware: cfg.hardware.clone(),
                        labels: all,
                        version: cfg.version.clone(),
                    }
                })
                .collect()
        };
        // Recorded in the external registry and standing with the elector, each in order;
        // the first refusal undoes the request whole.
        let mut registered = 0;
        let mut stood = 0;
        let mut failure = None;
        for record in &records {
            if let Some(reg) = &self.registry {
                if let Err(e) = reg.register(record.clone()).await {
                    failure = Some(NodeError::from(e));
                    break;
                }
                registered += 1;
            }
            if let Some(hook) = &self.elector {
                let (policy, preempt) = match hook.specs.get(&record.group) {
                    Some(spec) => (spec.policy.clone(), spec.preempt),
                    None => (hook.default_policy.clone(), false),
                };
                let leadership = self.shared.watch(&record.group);
                forward_leadership(&leadership, &self.shared);
                let candidacy = Candidacy {
                    record: record.clone(),
                    policy,
                    preempt,
                    leadership,
                };
                if let Err(e) = hook.elector.stand(candidacy).await {
                    failure = Some(NodeError::from(e));
                    break;
                }
                stood += 1;
            }
        }
        if let Some(e) = failure {
            let _ = reply.send(Err(e));
            if let Some(reg) = &self.registry {
                for r in records.iter().take(registered) {
                    if let Err(e) = reg.deregister(&r.group, &r.id).await {
                        tracing::warn!(group = %r.group, error = %e, "registry deregister failed");
                    }
                }
            }
            if let Some(hook) = &self.elector {
                for r in records.iter().take(stood) {
                    hook.elector.withdraw(&r.group).await;
                }
            }
            for (group, _) in &joins {
                let actions = self.engine.handle(
                    now(),
                    Input::Leave {
                        group: group.clone(),
                    },
                );
                self.perform(actions).await;
            }
            return;
        }
        let _ = reply.send(Ok(members));
    }

    /// Turns a command into an engine input (or answers it directly).
    async fn command(&mut self, cmd: Command) -> Option<Input> {
        match cmd {
            Command::Join { joins, reply } => {
                self.join(joins, reply).await;
                None
            }
            Command::Leave {
                group,
                member: only,
                reply,
            } => {
                let member = self.engine.local_member(&group).cloned();
                if only.is_some() && only != member {
                    let _ = reply.send(());
                    return None;
                }
                if let Some(hook) = &self.elector
                    && member.is_some()
                {
                    hook.elector.withdraw(&group).await;
                }
                let actions = self.engine.handle(
                    now(),
                    Input::Leave {
                        group: group.clone(),
                    },
                );
                self.perform(actions).await;
                if let (Some(reg), Some(m)) = (&self.registry, member)
                    && let Err(e) = reg.deregister(&group, &m).await
                {
                    tracing::warn!(%group, error = %e, "registry deregister failed");
                }
                lock(&self.shared.handlers).remove(&group);
                let _ = reply.send(());
                None
            }
            Command::Call {
                group,
                any,
                payload,
                timeout,
                reply,
            } => {
                let id = self.next_call.fetch_add(1, Ordering::Relaxed);
                self.calls.insert(
                    id,
                    PendingCall {
                        reply,
                        group: group.clone(),
                        since: now(),
                    },
                );
                Some(Input::Call {
                    id,
                    group,
                    any,
                    payload,
                    timeout,
                })
            }
            Command::Reply { call, result } => Some(Input::Reply { call, result }),
            Command::External { group, members } => Some(Input::ExternalMembers { group, members }),
            Command::Status { reply } => {
                let _ = reply.send(self.status());
                None
            }
            Command::Shutdown { reply } => {
                if let Some(hook) = &self.elector {
                    hook.elector.shutdown().await;
                }
                self.shutdown_waiters.push(reply);
                Some(Input::Shutdown)
            }
            Command::Control {
                group,
                op,
                timeout,
                reply,
            } => {
                let id = self.next_call.fetch_add(1, Ordering::Relaxed);
                self.controls.insert(id, reply);
                Some(Input::Control {
                    id,
                    group,
                    op,
                    timeout,
                })
            }
            Command::SetHealth { group, healthy } => Some(Input::SetHealth { group, healthy }),
            Command::Elected => {
                let batch = std::mem::take(&mut *lock(&self.shared.elected));
                if !batch.is_empty() {
                    let actions = self.engine.elected(now(), batch.into_values());
                    self.perform(actions).await;
                }
                None
            }
            Command::Released { group, term } => {
                self.released(group, term).await;
                None
            }
            Command::ElectorHandedOff {
                group,
                reply_to,
                id,
                result,
            } => {
                let actions = self
                    .engine
                    .elector_handed_off(now(), group, reply_to, id, result);
                self.perform(actions).await;
                None
            }
        }
    }

    /// Has the elector carry out a transfer or step-down the engine granted
    /// (`Action::ElectorHandOff`), on a task of its own: the elector's round trips must not
    /// stall the driver. The elector decides, releases the group's leader work (when
    /// `release`) through [`HandOff::release`], then hands off; its answer goes back to the
    /// engine as [`Command::ElectorHandedOff`]. After a release the work may start again when
    /// this node leads once more — at once when the hand-off was refused and the elector still
    /// has this node lead under the same term (as after a refused engine transfer).
    fn elector_hand_off(
        &self,
        group: GroupName,
        to: Option<NodeId>,
        term: Term,
        release: bool,
        reply_to: Option<NodeId>,
        id: u64,
    ) {
        let shared = self.shared.clone();
        let Some(hook) = &self.elector else {
            // Only an elector's leadership makes the engine ask: nothing can hand off here.
            let result = Err(ControlError::NotLeader {
                group: group.clone(),
                node: shared.id.clone(),
            });
            let _ = shared.commands.send(Command::ElectorHandedOff {
                group,
                reply_to,
                id,
                result,
            });
            return;
        };
        let elector = hook.elector.clone();
        tokio::spawn(async move {
            let stop = {
                let (shared, group) = (shared.clone(), group.clone());
                async move {
                    if release {
                        super::hooks::release(&shared, Some(&group)).await;
                    }
                }
            };
            let mut request = HandOff::new(group.clone(), to, shared.id.clone(), term, stop);
            let result = elector.hand_off(&mut request).await;
            if release && request.released() {
                let leads_on = result.is_err()
                    && lock(&shared.watches).get(&group).is_some_and(|w| {
                        let l = w.borrow();
                        l.is_me && l.term == term
                    });
                super::hooks::resume(&shared, Some(&group), leads_on);
            }
            // A closed channel: the driver stopped (its control requests were answered then).
            let _ = shared.commands.send(Command::ElectorHandedOff {
                group,
                reply_to,
                id,
                result,
            });
        });
    }

    /// The group's leader work was released: the waiting handoff goes on, then the work may
    /// start again when this node leads once more — or at once, when it still leads under the
    /// same term (the request was refused after the release: its target went meanwhile).
    async fn released(&mut self, group: GroupName, term: Term) {
        let input = Input::Released {
            group: group.clone(),
            term,
        };
        let actions = self.engine.handle(now(), input);
        Box::pin(self.perform(actions)).await;
        let l = self.engine.leadership(&group, now());
        super::hooks::resume(&self.shared, Some(&group), l.is_me && l.term == term);
    }

    /// The engine's status, with the elector's leaders ([`Driver::elected`]).
    fn status(&self) -> StatusSnapshot {
        self.elected(self.engine.status(now()))
    }

    /// With an elector, the groups' leaders and terms in a status (the API's, a client's such
    /// as `baton status`) are what the elector published — the engine, which never campaigns
    /// then, knows none — and a group it names a leader for has no "no leader" reason.
    fn elected(&self, mut s: StatusSnapshot) -> StatusSnapshot {
        if self.elector.is_none() {
            return s;
        }
        let watches = lock(&self.shared.watches);
        for l in &mut s.groups {
            if let Some(w) = watches.get(&l.group) {
                *l = w.borrow().clone();
            }
        }
        let led: std::collections::BTreeSet<&GroupName> = s
            .groups
            .iter()
            .filter(|l| l.leader.is_some())
            .map(|l| &l.group)
            .collect();
        s.no_leader.retain(|n| !led.contains(&n.group));
        s
    }

    async fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    let message = match message {
                        Message::StatusResponse(s) => Message::StatusResponse(self.elected(s)),
                        m => m,
                    };
                    if let Err(e) = self.transport.send(&to, message).await {
                        tracing::trace!(node = %self.shared.id, peer = %to, error = %e, "send failed");
                    }
                }
                Action::Connect { addr } => {
                    let t = self.transport.clone();
                    tokio::spawn(async move { t.connect(&addr).await });
                }
                // With an elector, leadership is the elector's to publish (`forward_leadership`
                // tells observers); the engine, which never campaigns then, has nothing to say.
                Action::Leadership(_) if self.elector.is_some() => {}
                Action::Leadership(l) => {
                    tracing::debug!(node = %self.shared.id, group = %l.group, leader = ?l.leader.as_ref().map(|m| m.to_string()), term = l.term, is_me = l.is_me, "leadership");
                    publish(&self.shared.events, || NodeEvent::Leadership(l.clone()));
                    self.shared.watch(&l.group).send_replace(l);
                }
                Action::Members { group, members } => {
                    self.shared.cluster_registry.update(group, members);
                }
                Action::Persist(state) => {
                    let Some(path) = self.state_file.clone() else {
                        continue;
                    };
                    // The write (with its fsyncs) runs on the blocking pool and the driver
                    // waits for it — nothing after it may happen first — but other tasks go on:
                    // messages queued just before (a candidate's vote requests) leave now
                    // instead of after the disk.
                    let stored = tokio::task::spawn_blocking(move || store_state(&path, &state))
                        .await
                        .unwrap_or_else(|e| {
                            Err(NodeError::StateFile {
                                path: PathBuf::new(),
                                message: format!("the writer task failed: {e}"),
                            })
                        });
                    if let Err(e) = stored {
                        // Without durable state this node must not keep voting: stop it.
                        tracing::error!(node = %self.shared.id, error = %e, "cannot persist election state; shutting down");
                        let actions = self.engine.handle(now(), Input::Shutdown);
                        Box::pin(self.perform(actions)).await;
                        self.commands.close();
                        return;
                    }
                }
                Action::Serve {
                    call,
                    group,
                    member,
                    term,
                    leader,
                    payload,
                } => {
                    let handler = lock(&self.shared.handlers).get(&group).cloned();
                    let commands = self.shared.commands.clone();
                    let events = self.shared.events.clone();
                    match handler {
                        None => {
                            let _ = commands.send(Command::Reply {
                                call,
                                result: Err(CallError::NoHandler { group }),
                            });
                        }
                        Some(h) => {
                            tokio::spawn(async move {
                                let since = now();
                                let served_group = group.clone();
                                let work = Work {
                                    group,
                                    term,
                                    leader,
                                    payload,
                                };
                                let result = match h.handle(work).await {
                                    Ok(payload) => Ok(Served {
                                        member,
                                        term,
                                        leader,
                                        payload,
                                    }),
                                    Err(e) => Err(CallError::Handler(e)),
                                };
                                publish(&events, || NodeEvent::Served {
                                    group: served_group,
                                    ok: result.is_ok(),
                                    elapsed: since.elapsed(),
                                });
                                let _ = commands.send(Command::Reply { call, result });
                            });
                        }
                    }
                }
                Action::CallDone { id, result } => {
                    if let Some(call) = self.calls.remove(&id) {
                        publish(&self.shared.events, || NodeEvent::CallDone {
                            group: call.group.clone(),
                            error: result.as_ref().err().cloned(),
                            elapsed: call.since.elapsed(),
                            client: None,
                        });
                        let _ = call.reply.send(result);
                    }
                }
                Action::ControlDone { id, result } => {
                    if let Some(reply) = self.controls.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
                Action::Reincarnate { incarnation } => {
                    if self.transport.reincarnate(incarnation).await {
                        self.shared
                            .incarnation
                            .store(incarnation.get(), Ordering::Relaxed);
                    } else {
                        tracing::warn!(node = %self.shared.id, %incarnation, "the transport cannot move to a new incarnation; restart this node to rejoin");
                    }
                }
                Action::Halt(refusal) => {
                    tracing::error!(node = %self.shared.id, "halting: {refusal}");
                    self.halt = Some(refusal);
                }
                Action::Event(event) => {
                    // A proven death ends the peer's claims held outside the engine, too.
                    if let (
                        Some(hook),
                        Event::PeerGone {
                            node, incarnation, ..
                        },
                    ) = (&self.elector, &event)
                    {
                        hook.elector.peer_gone(node, *incarnation);
                    }
                    log_event(&self.shared.id, &event);
                    publish(&self.shared.events, || NodeEvent::of_engine(event));
                }
                Action::ElectorHandOff {
                    group,
                    to,
                    term,
                    release,
                    reply_to,
                    id,
                } => self.elector_hand_off(group, to, term, release, reply_to, id),
                Action::Release { group, term } => {
                    if !super::hooks::busy(&self.shared, &group) {
                        // No leader work runs: nothing to wait for, hand off in this turn.
                        Box::pin(self.released(group, term)).await;
                        continue;
                    }
                    let shared = self.shared.clone();
                    tokio::spawn(async move {
                        super::hooks::release(&shared, Some(&group)).await;
                        let _ = shared.commands.send(Command::Released { group, term });
                    });
                }
            }
        }
    }
}

/// Tells the node's observers ([`NodeEvent::Leadership`]) and its engine (which routes calls
/// by it, [`Engine::elected`]) what an elector publishes on `watch`, until the node stops.
fn forward_leadership(
    watch: &tokio::sync::watch::Sender<crate::types::Leadership>,
    shared: &Arc<Shared>,
) {
    let mut rx = watch.subscribe();
    rx.mark_unchanged();
    // What the elector published before this forwarder subscribed.
    tell_engine(shared, rx.borrow().clone());
    let events = shared.events.clone();
    let engine = shared.clone();
    let node = shared.id.clone();
    let mut run = shared.run.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let l = rx.borrow_and_update().clone();
                    tracing::debug!(node = %node, group = %l.group, leader = ?l.leader.as_ref().map(|m| m.to_string()), term = l.term, is_me = l.is_me, "leadership");
                    tell_engine(&engine, l.clone());
                    publish(&events, || NodeEvent::Leadership(l));
                }
                _ = run.wait_for(|s| *s != RunState::Running) => return,
            }
        }
    });
}

/// Queues an elected leadership for the engine (see `Shared::elected`).
fn tell_engine(shared: &Shared, l: crate::types::Leadership) {
    let mut pending = lock(&shared.elected);
    let first = pending.is_empty();
    pending.insert(l.group.clone(), l);
    drop(pending);
    if first {
        // A closed channel: the driver stopped.
        let _ = shared.commands.send(Command::Elected);
    }
}

/// Turns an engine [`Event`](crate::engine::Event) into a tracing record at the level the event
/// says, with its group and peer as fields (when it has them) and its `Display` as the message.
fn log_event(node: &crate::types::NodeId, event: &crate::engine::Event) {
    use crate::engine::Level;
    let group = event.group();
    let peer = event.peer().map(|p| p.as_str());
    match event.level() {
        Level::Debug => tracing::debug!(node = %node, group, peer, "{event}"),
        Level::Info => tracing::info!(node = %node, group, peer, "{event}"),
        Level::Warn => tracing::warn!(node = %node, group, peer, "{event}"),
    }
}
