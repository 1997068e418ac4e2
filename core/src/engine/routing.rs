//! Routed calls: the calls table, where a call goes (the leader, or with `any` a live member),
//! serving it here, and answering whoever made it.
//!
//! Every call waiting or in flight has one entry in [`Calls`], under a [`CallKey`] the table
//! numbers itself — one sequence for every call, whoever made it — which names the call in
//! [`CallRef::Local`] and, on the wire, in the `Request` sent for it and the `Response` that
//! answers it. Where the call came from, and the id its maker knows it by — this node's
//! [`Input::Call`] id or a client's `ClientCall` id — is its [`CallOrigin`]; those ids are
//! never keys, so calls of different origins (or a caller reusing an id) cannot meet.

use super::*;
use crate::message::{ControlError, ControlOp};

/// A call's key in this node's calls table ([`Calls::insert`] numbers them), and the id of the
/// `Request` it sends to the node that serves it. Opaque: a driver hands back the one it got
/// in [`Action::Serve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey(u64);

impl CallKey {
    /// The call's id on the wire (`Request::id`, echoed by `Response::id`).
    pub(super) fn wire(self) -> u64 {
        self.0
    }

    /// The key a peer's `Response` names.
    pub(super) fn of_wire(id: u64) -> CallKey {
        CallKey(id)
    }
}

/// Who made a call, and so who gets its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CallOrigin {
    /// This node's [`Input::Call`] with this id: answered by [`Action::CallDone`].
    Local(u64),
    /// A client's `ClientCall`: answered by a [`Response`] carrying the client's request id.
    Client {
        /// The client.
        from: NodeId,
        /// Its request id.
        id: u64,
    },
}

/// Who may serve a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Only the group's acting leader (under its term, the fencing token).
    Leader,
    /// Any live member (the wire's and the API's `any`).
    AnyMember,
}

impl Reach {
    /// The reach the wire's and the API's `any` flag names.
    pub(super) fn of(any: bool) -> Reach {
        if any { Reach::AnyMember } else { Reach::Leader }
    }

    /// The `any` flag for the wire.
    pub(super) fn is_any(self) -> bool {
        self == Reach::AnyMember
    }
}

/// A call waiting for a target, or sent to one.
#[derive(Clone, Debug)]
pub(crate) struct PendingCall {
    pub origin: CallOrigin,
    pub group: GroupName,
    pub reach: Reach,
    pub payload: Vec<u8>,
    /// Where it was sent; `None` while waiting for a leader.
    pub target: Option<MemberId>,
    pub deadline: Instant,
    /// When it was made: a client's call ends with [`Event::ClientCallDone`], which says how
    /// long it took from here.
    pub since: Instant,
    /// A control request for the leader (`transfer.rs`) instead of work for its handler.
    pub control: Option<ControlOp>,
}

/// The calls table.
#[derive(Clone, Debug, Default)]
pub(crate) struct Calls {
    pending: BTreeMap<CallKey, PendingCall>,
    /// The last key handed out.
    last: u64,
    /// Leaderships an elector decided ([`Engine::elected`]); empty without one.
    pub(super) elected: BTreeMap<GroupName, Leadership>,
}

impl Calls {
    /// Adds `call` under a key of its own — the next one no call in the table holds, whatever
    /// the call's origin — and returns the key.
    pub(super) fn insert(&mut self, call: PendingCall) -> CallKey {
        // 2^64 calls do not happen; should the count ever wrap, keys still in use are skipped.
        let key = loop {
            self.last = self.last.wrapping_add(1);
            let key = CallKey(self.last);
            if !self.pending.contains_key(&key) {
                break key;
            }
        };
        self.pending.insert(key, call);
        key
    }

    pub(super) fn get(&self, key: CallKey) -> Option<&PendingCall> {
        self.pending.get(&key)
    }

    pub(super) fn get_mut(&mut self, key: CallKey) -> Option<&mut PendingCall> {
        self.pending.get_mut(&key)
    }

    pub(super) fn remove(&mut self, key: CallKey) -> Option<PendingCall> {
        self.pending.remove(&key)
    }

    /// The keys of the calls `pick` selects, in key order (the order they were made).
    pub(super) fn ids_where(&self, pick: impl Fn(&PendingCall) -> bool) -> Vec<CallKey> {
        self.pending
            .iter()
            .filter(|(_, c)| pick(c))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every call's deadline.
    pub(super) fn deadlines(&self) -> Vec<Instant> {
        self.pending.values().map(|c| c.deadline).collect()
    }
}

impl Engine {
    /// Ends every call `pick` selects with the error `why` gives it.
    pub(super) fn fail_calls(
        &mut self,
        now: Instant,
        pick: impl Fn(&PendingCall) -> bool,
        why: impl Fn(&PendingCall) -> CallError,
    ) {
        for id in self.calls.ids_where(pick) {
            if let Some(c) = self.calls.remove(id) {
                let err = why(&c);
                self.finish_call(now, c, Err(err));
            }
        }
    }

    /// A node went down: the calls sent to it will never be answered, and its leadership is
    /// over — they fail with `LeaderChanged`.
    pub(super) fn fail_calls_to(&mut self, now: Instant, node: &NodeId) {
        self.fail_calls(
            now,
            |c| c.target.as_ref().is_some_and(|t| t.node == *node),
            |c| CallError::LeaderChanged {
                group: c.group.clone(),
            },
        );
    }

    /// A call made on this node. Refused at once while shutting down; otherwise routed now, or
    /// as soon as a target is known, until its deadline (default: the call timeout).
    pub(super) fn on_call(
        &mut self,
        now: Instant,
        id: u64,
        group: GroupName,
        reach: Reach,
        payload: Vec<u8>,
        timeout: Option<Duration>,
    ) {
        if self.shutting_down {
            self.out.push(Action::CallDone {
                id,
                result: Err(CallError::ShuttingDown),
            });
            return;
        }
        let deadline = now + timeout.unwrap_or(self.cfg.call_timeout);
        let call = self.calls.insert(PendingCall {
            origin: CallOrigin::Local(id),
            group,
            reach,
            payload,
            target: None,
            deadline,
            since: now,
            control: None,
        });
        self.route(now, call);
    }

    /// Sends a waiting call to its target, if one is known now: the group's leader, or with
    /// `any` a live member picked at random (seeded). Served here when the target is local.
    pub(super) fn route(&mut self, now: Instant, id: CallKey) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        if call.target.is_some() {
            return;
        }
        let group = call.group.clone();
        let target: Option<MemberId> = if call.reach == Reach::AnyMember {
            let cands = self.candidates(&group);
            if cands.is_empty() {
                self.elected_any_member(&group)
            } else {
                let i = self.rng.usize(0..cands.len());
                cands.get(i).map(|c| c.member.clone())
            }
        } else if let Some(elected) = self.elected_leader(&group) {
            elected.leader.clone()
        } else {
            self.groups
                .get(&group)
                .and_then(|g| g.leader.as_ref())
                .map(|l| l.member.clone())
        };
        let Some(target) = target else {
            return;
        };
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        call.target = Some(target.clone());
        let reach = call.reach;
        if let Some(op) = call.control.clone() {
            self.route_control(now, id, &group, target, op);
            return;
        }
        if target.node == self.cfg.node {
            let payload = std::mem::take(&mut call.payload);
            self.serve_local(now, CallRef::Local(id), &group, reach, payload);
        } else {
            let payload = call.payload.clone();
            self.send(
                &target.node,
                Message::Request(Request {
                    id: id.wire(),
                    group,
                    any: reach.is_any(),
                    payload,
                }),
            );
        }
    }

    /// Serves a call here: only this node's member can, and only while it acts as leader —
    /// under its term, the fencing token — or, for an `any` call, as a plain member (term 0).
    /// A call for the leader that reaches a node no longer acting fails with `LeaderChanged`.
    pub(super) fn serve_local(
        &mut self,
        now: Instant,
        call: CallRef,
        group: &GroupName,
        reach: Reach,
        payload: Vec<u8>,
    ) {
        let Some(member) = self.local.get(group).map(|m| m.id.clone()) else {
            self.answer(
                now,
                call,
                Err(CallError::NoHandler {
                    group: group.clone(),
                }),
            );
            return;
        };
        let acting = match self.elected_leader(group) {
            Some(l) => l.is_me.then_some(l.term),
            None => self.acting_in(group, now),
        };
        let (term, leader) = match (acting, reach) {
            (Some(term), _) => (term, true),
            (None, Reach::AnyMember) => (0, false),
            (None, Reach::Leader) => {
                self.answer(
                    now,
                    call,
                    Err(CallError::LeaderChanged {
                        group: group.clone(),
                    }),
                );
                return;
            }
        };
        self.out.push(Action::Serve {
            call,
            group: group.clone(),
            member,
            term,
            leader,
            payload,
        });
    }

    /// Answers a call served here: a call of this node's table ends, a peer's gets a response.
    pub(super) fn answer(
        &mut self,
        now: Instant,
        call: CallRef,
        result: Result<Served, CallError>,
    ) {
        match call {
            CallRef::Local(id) => {
                if let Some(c) = self.calls.remove(id) {
                    self.finish_call(now, c, result);
                }
            }
            CallRef::Remote { from, id } => {
                self.send(&from, Message::Response(Response { id, result }));
            }
        }
    }

    /// A peer routed a call here: serve it, unless shutting down.
    pub(super) fn on_request(&mut self, now: Instant, from: &NodeId, req: Request) {
        if self.shutting_down {
            self.send(
                from,
                Message::Response(Response {
                    id: req.id,
                    result: Err(CallError::ShuttingDown),
                }),
            );
            return;
        }
        let call = CallRef::Remote {
            from: from.clone(),
            id: req.id,
        };
        self.serve_local(now, call, &req.group, Reach::of(req.any), req.payload);
    }

    /// The handler answered a call announced by [`Action::Serve`].
    pub(super) fn on_reply(
        &mut self,
        now: Instant,
        call: CallRef,
        result: Result<Served, CallError>,
    ) {
        self.answer(now, call, result);
    }

    /// A peer answered a call this node routed to it. Only the node the call was sent to can
    /// answer it: a response from any other peer (or naming no call in flight) is ignored.
    pub(super) fn on_response(&mut self, now: Instant, from: &NodeId, resp: Response) {
        let key = CallKey::of_wire(resp.id);
        let sent_there = self
            .calls
            .get(key)
            .and_then(|c| c.target.as_ref())
            .is_some_and(|t| t.node == *from);
        if sent_there && let Some(c) = self.calls.remove(key) {
            self.finish_call(now, c, resp.result);
        }
    }

    /// Ends a call: a local caller gets [`Action::CallDone`], a client gets a [`Response`] —
    /// and the operator an [`Event::ClientCallDone`], so that this node, where the client's call
    /// entered, counts it as it counts its own (the node that served it counts only that). A
    /// control request ends with its own answer (`finish_control`), and is no call.
    pub(super) fn finish_call(
        &mut self,
        now: Instant,
        call: PendingCall,
        result: Result<Served, CallError>,
    ) {
        if call.control.is_some() {
            let err = match result {
                Err(e) => ControlError::of_call(e, &call.group),
                Ok(_) => ControlError::LeaderChanged {
                    group: call.group.clone(),
                },
            };
            self.finish_control(call, Err(err));
            return;
        }
        match call.origin {
            CallOrigin::Client { from, id } => {
                let done = Event::ClientCallDone {
                    client: from.clone(),
                    group: call.group,
                    error: result.as_ref().err().cloned(),
                    elapsed: now.saturating_duration_since(call.since),
                };
                self.send(&from, Message::Response(Response { id, result }));
                self.emit(done);
            }
            CallOrigin::Local(id) => self.out.push(Action::CallDone { id, result }),
        }
    }

    /// A message from an authenticated client (not a peer): answer it, keep no peer state.
    pub(super) fn on_client(&mut self, now: Instant, env: Envelope) {
        match env.message {
            Message::StatusRequest => {
                let status = self.status(now);
                self.send(&env.from, Message::StatusResponse(status));
            }
            Message::ClientCall(req) => {
                if self.shutting_down {
                    // Refused at once, as a local call is: counted all the same.
                    self.emit(Event::ClientCallDone {
                        client: env.from.clone(),
                        group: req.group,
                        error: Some(CallError::ShuttingDown),
                        elapsed: Duration::ZERO,
                    });
                    let err = Response {
                        id: req.id,
                        result: Err(CallError::ShuttingDown),
                    };
                    self.send(&env.from, Message::Response(err));
                    return;
                }
                let call = self.calls.insert(PendingCall {
                    origin: CallOrigin::Client {
                        from: env.from,
                        id: req.id,
                    },
                    group: req.group,
                    reach: Reach::of(req.any),
                    payload: req.payload,
                    target: None,
                    deadline: now + self.cfg.call_timeout,
                    since: now,
                    control: None,
                });
                self.route(now, call);
            }
            Message::ClientControl(req) => self.on_client_control(now, env.from, req),
            _ => {}
        }
    }
}
