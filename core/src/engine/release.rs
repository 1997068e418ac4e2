//! Release before a requested handoff: with [`EngineConfig::release_first`] (the tokio
//! runtime sets it), a leader that grants a transfer or step-down, or that becomes unhealthy,
//! does not hand off at once. It asks its driver to release the group's leader work first
//! ([`Action::Release`]: cancel the `on_started_leading` work, wait — bounded — until it has
//! returned, e.g. until `baton exec`'s command has exited) and goes on leading and heartbeating
//! meanwhile. When the driver answers ([`Input::Released`]) the request is decided again — the
//! leadership or the target may have gone in between — and, when still granted, the handoff is
//! made and answered. So the successor is told to take over only after the old leader's work
//! has stopped: the two never run at once.
//!
//! Requests that arrive during a release wait for it and are decided after it, in order (the
//! first granted one hands off; the others then find this node no longer leading).

use super::routing::PendingCall;
use super::*;
use crate::message::{ControlError, ControlOp, ControlResponse, HandedOff};

/// Where a control request's answer goes.
#[derive(Debug)]
pub(super) enum ControlReply {
    /// A request of this node's calls table (made here or by a client of this node).
    Call(PendingCall),
    /// A request a peer routed here.
    Peer {
        /// The peer.
        from: NodeId,
        /// Its request id.
        id: u64,
    },
}

/// A release under way for one group.
#[derive(Debug)]
pub(super) struct Releasing {
    /// The term the release was asked under.
    term: Term,
    /// Requests waiting for the release, in arrival order.
    waiting: Vec<(ControlOp, ControlReply)>,
    /// The member became unhealthy: hand off after the release (if it still is).
    unhealthy: bool,
}

impl Engine {
    /// Answers a control request.
    pub(super) fn reply_control(
        &mut self,
        reply: ControlReply,
        result: Result<HandedOff, ControlError>,
    ) {
        match reply {
            ControlReply::Call(call) => self.finish_control(call, result),
            ControlReply::Peer { from, id } => {
                self.send(
                    &from,
                    Message::ControlResponse(ControlResponse { id, result }),
                );
            }
        }
    }

    /// A control request reached this node as the group's leader: decided now, or — when it
    /// would be granted and the driver releases leader work first — after the release.
    pub(super) fn decide_control(
        &mut self,
        now: Instant,
        group: &GroupName,
        op: ControlOp,
        reply: ControlReply,
    ) {
        if let Some(r) = self.releasing.get_mut(group) {
            r.waiting.push((op, reply));
            return;
        }
        if self.cfg.release_first {
            match self.control_target(now, group, &op) {
                Ok((_, _, term)) => {
                    self.start_release(group, term).waiting.push((op, reply));
                }
                Err(e) => self.reply_control(reply, Err(e)),
            }
            return;
        }
        let result = self.hand_off_on_request(now, group, &op);
        self.reply_control(reply, result);
    }

    /// This node's unhealthy leader of `group` hands off: at once, or after the release.
    pub(super) fn hand_off_unhealthy(&mut self, now: Instant, group: &GroupName, term: Term) {
        if self.cfg.release_first {
            self.start_release(group, term).unhealthy = true;
            return;
        }
        self.emit(Event::SteppingDown {
            group: group.clone(),
            reason: StepDownReason::Unhealthy,
        });
        self.resign(now, group, Resign::HandOff(Resignation::Unhealthy));
    }

    /// The group's release, asked of the driver when it is new.
    fn start_release(&mut self, group: &GroupName, term: Term) -> &mut Releasing {
        if !self.releasing.contains_key(group) {
            self.out.push(Action::Release {
                group: group.clone(),
                term,
            });
        }
        self.releasing
            .entry(group.clone())
            .or_insert_with(|| Releasing {
                term,
                waiting: Vec::new(),
                unhealthy: false,
            })
    }

    /// The driver released `group`'s leader work ([`Input::Released`]): the waiting requests
    /// are decided now, in order, and an unhealthy leader hands off.
    pub(super) fn on_released(&mut self, now: Instant, group: &GroupName, term: Term) {
        let Some(r) = self.releasing.remove(group) else {
            return;
        };
        if r.term != term {
            // Not the release this was asked for (a late answer): keep waiting for it.
            self.releasing.insert(group.clone(), r);
            return;
        }
        for (op, reply) in r.waiting {
            let result = self.hand_off_on_request(now, group, &op);
            self.reply_control(reply, result);
        }
        let still_leads = self
            .groups
            .get(group)
            .is_some_and(|g| matches!(g.role, Role::Leader { .. }));
        if r.unhealthy && still_leads && self.locally_unhealthy(group) {
            self.emit(Event::SteppingDown {
                group: group.clone(),
                reason: StepDownReason::Unhealthy,
            });
            self.resign(now, group, Resign::HandOff(Resignation::Unhealthy));
        }
    }
}
