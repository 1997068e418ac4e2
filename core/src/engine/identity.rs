//! This node's identity and settings among its peers: refusals (a duplicate name, a stale
//! incarnation) and what they make it do (wait, move to a new incarnation, or halt), and
//! standing aside while nodes with other safety settings could elect a leader of their own.

use super::*;

/// Describes a conflicting configuration, for the log and for `status`.
pub(crate) fn other_settings(fp: &Fingerprint) -> String {
    let voters: Vec<&str> = fp.voters.iter().map(NodeId::as_str).collect();
    format!(
        "nodes with other safety settings (voters [{}], quorum {}, heartbeat {} ms, failure \
         timeout {} ms) could elect a leader of their own",
        voters.join(", "),
        fp.quorum,
        fp.heartbeat_ms,
        fp.failure_timeout_ms
    )
}

impl Engine {
    /// A peer refused this node and said why. A duplicate name starts the takeover grace (the
    /// node halts if the refusals last, see `check_duplicate`); a stale incarnation that the
    /// cluster knows moves this node above it; any other refusal needs no action.
    pub(super) fn on_refused(&mut self, now: Instant, addr: String, refusal: Refusal) {
        match &refusal {
            Refusal::DuplicateName { .. } => {
                // Another live process runs under this name. Halt — but only when the refusals
                // last: a restart can beat the old process's close to a peer by a moment.
                self.emit(Event::Refused {
                    addr,
                    refusal: refusal.clone(),
                });
                let since = self.refused_as_duplicate.as_ref().map_or(now, |(t, _)| *t);
                self.refused_as_duplicate = Some((since, refusal));
                let at = since + self.timer_period(Timer::TakeoverGrace);
                self.want(Timer::TakeoverGrace, at);
            }
            Refusal::StaleIncarnation { known, .. } if *known >= self.cfg.incarnation => {
                // Move above the incarnation the cluster knows (as SWIM refutes a suspicion);
                // the peer refuses this name outright while that incarnation is connected.
                let Some(new) = known.checked_next() else {
                    self.emit(Event::NoHigherIncarnation { addr, refusal });
                    return;
                };
                self.emit(Event::Reincarnating {
                    addr,
                    refusal,
                    from: self.cfg.incarnation,
                    to: new,
                });
                self.cfg.incarnation = new;
                self.members_changed();
                self.out.push(Action::Reincarnate { incarnation: new });
                self.persist_later();
            }
            Refusal::StaleIncarnation { .. } | Refusal::Fingerprint(_) | Refusal::ShuttingDown => {
                self.emit(Event::Refused { addr, refusal });
            }
        }
    }

    /// A peer configuration this node met that could elect a leader of its own, if any: then
    /// this node neither leads nor votes, since two disjoint majorities — one per
    /// configuration — could each elect a leader. A configuration "could elect" when a
    /// majority of *its* voters are nodes not known to run this node's settings (this node and
    /// every peer it connected to, whose fingerprints matched). A single misconfigured node
    /// among correctly configured voters stops nobody but itself.
    pub(super) fn conflicting_config(&self) -> Option<&Fingerprint> {
        if !self.quorum_mode() {
            return None;
        }
        self.conflicts.iter().find(|fp| {
            if fp.quorum != "majority" {
                // Availability mode leads on its own whatever this node does.
                return false;
            }
            let ours =
                |v: &NodeId| *v == self.cfg.node || self.peers.get(v).is_some_and(|p| !p.is_dead());
            let capable = fp.voters.iter().filter(|v| !ours(v)).count();
            capable > fp.voters.len() / 2
        })
    }

    /// Stands aside (stops leading, campaigning and voting) while a conflicting configuration
    /// could elect; logs each change.
    pub(super) fn check_conflicts(&mut self, now: Instant) {
        let conflict = self.conflicting_config().cloned();
        if conflict.is_some() != self.standing_aside {
            self.standing_aside = conflict.is_some();
            self.touch_all();
            match conflict {
                Some(theirs) => self.emit(Event::StandingAside { theirs }),
                None => self.emit(Event::TakingPartAgain),
            }
        }
        if self.standing_aside {
            let leading =
                self.groups_where(|r| matches!(r, Role::Leader { .. } | Role::Candidate { .. }));
            for name in leading {
                self.touch(&name);
                if let Some(g) = self.groups.get_mut(&name)
                    && matches!(g.role, Role::Candidate { .. })
                {
                    g.role = Role::Follower;
                    continue;
                }
                self.emit(Event::SteppingDown {
                    group: name.clone(),
                    reason: StepDownReason::StandingAside,
                });
                self.resign(now, &name, Resign::LeaseLost);
            }
        }
    }

    /// Another process with this node's name was reported (`on_refused`). Once the refusals
    /// have lasted the takeover grace: if peers accept this process after all, the other one
    /// is the duplicate and this one keeps the name; otherwise this one halts (once).
    pub(super) fn check_duplicate(&mut self, now: Instant) {
        let Some((since, refusal)) = &self.refused_as_duplicate else {
            return;
        };
        let at = *since + self.timer_period(Timer::TakeoverGrace);
        if now < at {
            self.want(Timer::TakeoverGrace, at);
        } else if self.peers.alive().next().is_some() {
            let refusal = refusal.clone();
            self.emit(Event::KeepingName { refusal });
            self.refused_as_duplicate = None;
        } else if !self.halted {
            self.halted = true;
            let refusal = refusal.clone();
            self.emit(Event::Halting {
                refusal: refusal.clone(),
            });
            self.out.push(Action::Halt(refusal));
        }
    }

    /// A node with other safety settings was met: it is refused (by the transport), and kept
    /// in mind — its configuration could elect a leader of its own (`check_conflicts`).
    pub(super) fn on_mismatch(
        &mut self,
        addr: String,
        mismatch: FingerprintMismatch,
        theirs: Fingerprint,
    ) {
        if !self.conflicts.contains(&theirs) {
            self.emit(Event::ConfigMismatch { addr, mismatch });
            self.conflicts.push(theirs);
        }
    }
}
