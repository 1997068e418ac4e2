//! Leadership under the operator's control: transfer to a named node, step down to the next in
//! the ranking, and health.
//!
//! A control request ([`ControlOp`]) is routed to the group's leader like a call (it waits in
//! the calls table for a leader, fails when the leader's node goes down, times out). The
//! leader alone decides, by these rules in order — the first that fails is the
//! [`ControlError`]:
//!
//! 1. it is not shutting down, and it acts as the group's leader (`NotLeader`);
//! 2. transfer: the target is not this node (`AlreadyLeads`), is a node it knows
//!    (`UnknownTarget`), and has a member among the group's live candidates — alive, a member
//!    of the group, healthy (`NotCandidate`);
//! 3. step down: some other live candidate exists (`NoOtherCandidate`); the successor is the
//!    first other member of the leader's ranking.
//!
//! It then hands off exactly as on shutdown (`handoff.rs`): stops acting, sends `StepDown`
//! naming the successor, which campaigns at once without pre-vote. Every member but the
//! successor — the old leader included — waits one failure timeout for it before its own
//! ranking's schedule starts, so a successor that never takes over costs one failure timeout,
//! after which the group elects as usual. With [`EngineConfig::release_first`] (the tokio
//! runtime) the leader first has its driver release the group's leader work, and hands off
//! only after that (`release.rs`).
//!
//! A group whose leadership an elector outside the engine decides (the etcd backend,
//! `elected.rs`) has no candidates in the engine and is never led by its own role, so its
//! requests go by these rules instead, then to the elector:
//!
//! 1. it is not shutting down (`ShuttingDown`), and the elector published this node as the
//!    group's leader that may act (`NotLeader`) — under the elector's term, the fencing token;
//! 2. transfer: the target is not this node (`AlreadyLeads`), and no live peer of that name
//!    announced its member of the group unhealthy (`NotCandidate`, health being the
//!    engine's); whether the target has a live member in the group is the elector's to judge;
//! 3. step down: the successor is the elector's to pick, from its own ranking.
//!
//! Granted, the request becomes [`Action::ElectorHandOff`]: the driver has the elector carry it
//! out (the leader work released first with [`EngineConfig::release_first`]) and hands the
//! elector's answer — the handoff, or its refusal naming the node and group — back to
//! [`Engine::elector_handed_off`], which answers the request.
//!
//! Health: an unhealthy member ([`Input::SetHealth`]) is announced with the node's state and is
//! no candidate anywhere: it is ranked by nobody, does not campaign, and a leader that becomes
//! unhealthy hands off at once to the next healthy member.

use super::release::ControlReply;
use super::routing::{CallOrigin, PendingCall, Reach};
use super::*;
use crate::message::{
    ControlError, ControlOp, ControlRequest, ControlResponse, HandedOff, NotCandidate,
};

impl Engine {
    /// A control request made on this node ([`Input::Control`]).
    pub(super) fn on_control(
        &mut self,
        now: Instant,
        id: u64,
        group: GroupName,
        op: ControlOp,
        timeout: Option<Duration>,
    ) {
        if self.shutting_down {
            self.out.push(Action::ControlDone {
                id,
                result: Err(ControlError::ShuttingDown),
            });
            return;
        }
        let deadline = now + timeout.unwrap_or(self.cfg.call_timeout);
        self.insert_control(now, CallOrigin::Local(id), group, op, deadline);
    }

    /// A client's control request (`baton transfer`, `baton step-down`): routed like its calls.
    pub(super) fn on_client_control(&mut self, now: Instant, from: NodeId, req: ControlRequest) {
        if self.shutting_down {
            let resp = ControlResponse {
                id: req.id,
                result: Err(ControlError::ShuttingDown),
            };
            self.send(&from, Message::ControlResponse(resp));
            return;
        }
        let deadline = now + self.cfg.call_timeout;
        let origin = CallOrigin::Client { from, id: req.id };
        self.insert_control(now, origin, req.group, req.op, deadline);
    }

    fn insert_control(
        &mut self,
        now: Instant,
        origin: CallOrigin,
        group: GroupName,
        op: ControlOp,
        deadline: Instant,
    ) {
        let key = self.calls.insert(PendingCall {
            origin,
            group,
            reach: Reach::Leader,
            payload: Vec::new(),
            target: None,
            deadline,
            since: now,
            control: Some(op),
        });
        self.route(now, key);
    }

    /// A control request found its target, the leader this node knows: decided here when that
    /// is this node, else sent there.
    pub(super) fn route_control(
        &mut self,
        now: Instant,
        key: CallKey,
        group: &GroupName,
        target: MemberId,
        op: ControlOp,
    ) {
        if target.node == self.cfg.node {
            if let Some(call) = self.calls.remove(key) {
                self.decide(now, group, op, ControlReply::Call(call));
            }
            return;
        }
        let req = ControlRequest {
            id: key.wire(),
            group: group.clone(),
            op,
        };
        self.send(&target.node, Message::Control(req));
    }

    /// A peer routed a control request here, as to the group's leader.
    pub(super) fn on_control_request(&mut self, now: Instant, from: &NodeId, req: ControlRequest) {
        let reply = ControlReply::Peer {
            from: from.clone(),
            id: req.id,
        };
        self.decide(now, &req.group, req.op, reply);
    }

    /// A control request reached this node as the group's leader: one for a group an elector
    /// decides goes to the elector ([`Engine::hand_to_elector`]); any other is decided by the
    /// engine's own rules (`decide_control`, `release.rs`).
    fn decide(&mut self, now: Instant, group: &GroupName, op: ControlOp, reply: ControlReply) {
        if self.elected_leader(group).is_some() {
            self.hand_to_elector(group, &op, reply);
        } else {
            self.decide_control(now, group, op, reply);
        }
    }

    /// A request for a group an elector decides: refused now (the elector rules in the module
    /// docs), or handed to the elector ([`Action::ElectorHandOff`]) and answered when the
    /// driver brings its answer ([`Engine::elector_handed_off`]).
    fn hand_to_elector(&mut self, group: &GroupName, op: &ControlOp, reply: ControlReply) {
        let (to, term) = match self.elector_control_target(group, op) {
            Ok(granted) => granted,
            Err(e) => return self.reply_control(reply, Err(e)),
        };
        let (reply_to, id) = match reply {
            ControlReply::Call(call) => match call.origin {
                CallOrigin::Local(id) => (None, id),
                CallOrigin::Client { from, id } => (Some(from), id),
            },
            ControlReply::Peer { from, id } => (Some(from), id),
        };
        self.out.push(Action::ElectorHandOff {
            group: group.clone(),
            to,
            term,
            release: self.cfg.release_first,
            reply_to,
            id,
        });
    }

    /// The engine's part of a decision on a control request for a group an elector decides
    /// (the elector rules in the module docs), changing nothing: the successor's node (`None`
    /// for a step-down: the elector picks it) and the term this node leads under, or why not.
    fn elector_control_target(
        &self,
        group: &GroupName,
        op: &ControlOp,
    ) -> Result<(Option<NodeId>, Term), ControlError> {
        if self.shutting_down {
            return Err(ControlError::ShuttingDown);
        }
        let term = self
            .elected_leader(group)
            .filter(|l| l.is_me && self.local.contains_key(group))
            .map(|l| l.term)
            .ok_or_else(|| ControlError::NotLeader {
                group: group.clone(),
                node: self.cfg.node.clone(),
            })?;
        let ControlOp::Transfer { to } = op else {
            return Ok((None, term));
        };
        if *to == self.cfg.node {
            return Err(ControlError::AlreadyLeads {
                group: group.clone(),
                node: to.clone(),
            });
        }
        let unhealthy = self.peers.get(to).is_some_and(|p| {
            p.is_alive() && p.members.iter().any(|m| m.group == *group && !m.healthy)
        });
        if unhealthy {
            return Err(ControlError::NotCandidate {
                group: group.clone(),
                node: to.clone(),
                why: NotCandidate::Unhealthy,
            });
        }
        Ok((Some(to.clone()), term))
    }

    /// The elector's answer to an [`Action::ElectorHandOff`], with that action's `group`,
    /// `reply_to` and `id` as they were: the request is answered with it (a handoff made is
    /// also told as [`Event::SteppingDown`]). Returns what to do, as [`Engine::handle`] does.
    pub fn elector_handed_off(
        &mut self,
        now: Instant,
        group: GroupName,
        reply_to: Option<NodeId>,
        id: u64,
        result: Result<HandedOff, ControlError>,
    ) -> Vec<Action> {
        if let Ok(h) = &result {
            self.emit(Event::SteppingDown {
                group,
                reason: StepDownReason::Requested { to: h.to.clone() },
            });
        }
        match reply_to {
            None => self.out.push(Action::ControlDone { id, result }),
            Some(from) => self.send(
                &from,
                Message::ControlResponse(ControlResponse { id, result }),
            ),
        }
        self.handle(now, Input::Tick)
    }

    /// The leader answered a control request this node routed to it (only the node it was sent
    /// to can answer it).
    pub(super) fn on_control_response(&mut self, from: &NodeId, resp: ControlResponse) {
        let key = CallKey::of_wire(resp.id);
        let sent_there = self
            .calls
            .get(key)
            .filter(|c| c.control.is_some())
            .and_then(|c| c.target.as_ref())
            .is_some_and(|t| t.node == *from);
        if sent_there && let Some(c) = self.calls.remove(key) {
            self.finish_control(c, resp.result);
        }
    }

    /// Ends a control request: a local caller gets [`Action::ControlDone`], a client a
    /// [`ControlResponse`].
    pub(super) fn finish_control(
        &mut self,
        call: PendingCall,
        result: Result<HandedOff, ControlError>,
    ) {
        match call.origin {
            CallOrigin::Client { from, id } => self.send(
                &from,
                Message::ControlResponse(ControlResponse { id, result }),
            ),
            CallOrigin::Local(id) => self.out.push(Action::ControlDone { id, result }),
        }
    }

    /// The leader's decision on a control request (the rules in the module docs), and the
    /// handoff when it is granted.
    pub(super) fn hand_off_on_request(
        &mut self,
        now: Instant,
        group: &GroupName,
        op: &ControlOp,
    ) -> Result<HandedOff, ControlError> {
        let (me, to, term) = self.control_target(now, group, op)?;
        self.emit(Event::SteppingDown {
            group: group.clone(),
            reason: StepDownReason::Requested { to: to.clone() },
        });
        self.resign_to(now, group, Some(to.clone()), Resignation::Requested);
        Ok(HandedOff { from: me, to, term })
    }

    /// The leader's decision on a control request (the rules in the module docs), changing
    /// nothing: this node's member, the successor and the term, or why not.
    pub(super) fn control_target(
        &self,
        now: Instant,
        group: &GroupName,
        op: &ControlOp,
    ) -> Result<(MemberId, MemberId, Term), ControlError> {
        if self.shutting_down {
            return Err(ControlError::ShuttingDown);
        }
        let not_leader = || ControlError::NotLeader {
            group: group.clone(),
            node: self.cfg.node.clone(),
        };
        let term = self.acting_in(group, now).ok_or_else(not_leader)?;
        let me = self
            .local
            .get(group)
            .map(|m| m.id.clone())
            .ok_or_else(not_leader)?;
        let to = match op {
            ControlOp::Transfer { to } => self.transfer_target(group, to)?,
            ControlOp::StepDown => self
                .ranking(group)
                .iter()
                .find(|m| **m != me)
                .cloned()
                .ok_or_else(|| ControlError::NoOtherCandidate {
                    group: group.clone(),
                })?,
        };
        Ok((me, to, term))
    }

    /// `to`'s member of `group`, when it is a live candidate; else why not.
    fn transfer_target(&self, group: &GroupName, to: &NodeId) -> Result<MemberId, ControlError> {
        if *to == self.cfg.node {
            return Err(ControlError::AlreadyLeads {
                group: group.clone(),
                node: to.clone(),
            });
        }
        if let Some(c) = self
            .candidates(group)
            .into_iter()
            .find(|c| c.member.node == *to)
        {
            return Ok(c.member);
        }
        let Some(peer) = self.peers.get(to) else {
            return Err(ControlError::UnknownTarget { node: to.clone() });
        };
        let why = if !peer.is_alive() {
            NotCandidate::Down
        } else if peer.members.iter().any(|m| m.group == *group && !m.healthy) {
            NotCandidate::Unhealthy
        } else {
            NotCandidate::NotAMember
        };
        Err(ControlError::NotCandidate {
            group: group.clone(),
            node: to.clone(),
            why,
        })
    }

    /// This node's member of `group` became healthy or unhealthy: announced with the next
    /// heartbeat (within a quarter period), re-ranked everywhere; an unhealthy leader hands off
    /// at once to the next healthy member of its ranking.
    pub(super) fn on_set_health(&mut self, now: Instant, group: &GroupName, healthy: bool) {
        let Some(m) = self.local.get_mut(group) else {
            return;
        };
        if m.healthy == healthy {
            return;
        }
        m.healthy = healthy;
        self.members_changed_in(group);
        self.next_heartbeat = self.next_heartbeat.min(now + self.cfg.heartbeat / 4);
        let led = self.groups.get(group).and_then(|g| match g.role {
            Role::Leader { term, .. } => Some(term),
            _ => None,
        });
        if !healthy && let Some(term) = led {
            self.hand_off_unhealthy(now, group, term);
        }
    }

    /// The members this node knows to be unhealthy: its own and its live peers', for `status`.
    pub(super) fn unhealthy_members(&self) -> Vec<(GroupName, MemberId)> {
        let own = self.local.values();
        let peers = self.live_peers().flat_map(|(_, p)| p.members.iter());
        own.chain(peers)
            .filter(|m| !m.healthy)
            .map(|m| (m.group.clone(), m.id.clone()))
            .collect()
    }

    /// Whether this node's member of `group` is unhealthy (it then never campaigns).
    pub(super) fn locally_unhealthy(&self, group: &str) -> bool {
        self.local.get(group).is_some_and(|m| !m.healthy)
    }
}
