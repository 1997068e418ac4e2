//! Time in the engine: one table of the timer kinds ([`Timer`]), each with its period, and the
//! two passes every input runs — `expire` fires what is due (before the input), `step` acts and
//! schedules the next wake-up (after it). The engine reads no clock: the driver feeds `now`,
//! and [`Engine::next_deadline`] is the earliest timer wanted.

use super::*;

/// Every kind of timer the engine sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The next periodic heartbeat. Period: `heartbeat`.
    Heartbeat,
    /// An alive peer falls silent. Period: `failure_timeout` after it was last heard.
    PeerSilence,
    /// Duplicate-name refusals have lasted: keep the name or halt. Period: `failure_timeout +
    /// heartbeat` (a restart can beat the old process's close to a peer by a moment).
    TakeoverGrace,
    /// A leader's lease ends (quorum mode). Period: `lease` from a majority-acked heartbeat.
    Lease,
    /// A (pre-)vote round ends unwon. Period: `max(failure_timeout / 2, heartbeat)`.
    ElectionDeadline,
    /// A remote leader's claim lapses unless renewed. Period: `failure_timeout`.
    LeaderView,
    /// A follower's turn to campaign. Period: `backoff` per rank.
    Campaign,
    /// A leader with `preempt` re-ranks. Period: `heartbeat`.
    Preempt,
    /// A routed call's deadline. Period: `call_timeout` unless the call says otherwise.
    CallDeadline,
    /// Diagnostics: why a group has no leader, voters never seen. Period: `failure_timeout`.
    Diagnose,
    /// No timer of its own: the least time between two dials of one address.
    /// Period: `max(failure_timeout, 200 ms)`.
    Redial,
}

impl Engine {
    /// The period of `timer` under this node's configuration (see [`Timer`]).
    pub(super) fn timer_period(&self, timer: Timer) -> Duration {
        let c = &self.cfg;
        match timer {
            Timer::Heartbeat | Timer::Preempt => c.heartbeat,
            Timer::PeerSilence | Timer::LeaderView | Timer::Diagnose => c.failure_timeout,
            Timer::TakeoverGrace => c.failure_timeout + c.heartbeat,
            Timer::Lease => c.lease,
            Timer::ElectionDeadline => (c.failure_timeout / 2).max(c.heartbeat),
            Timer::Campaign => c.backoff,
            Timer::CallDeadline => c.call_timeout,
            Timer::Redial => c.failure_timeout.max(Duration::from_millis(200)),
        }
    }

    /// Wants a [`Input::Tick`] at `at` for `timer`; the earliest wanted wins.
    pub(super) fn want(&mut self, timer: Timer, at: Instant) {
        // While a group is stepped, its timers go to its own entry in the queue (`schedule`).
        if self.schedule.want(timer, at) {
            return;
        }
        match self.wake {
            Some((w, _)) if w <= at => {}
            _ => self.wake = Some((at, timer)),
        }
    }

    /// The timer of the next wake-up, if any (for tests and debugging).
    #[cfg(test)]
    pub(super) fn next_timer(&self) -> Option<Timer> {
        self.wake.map(|(_, t)| t)
    }

    /// How long a vote round may take before it is abandoned.
    pub(super) fn election_timeout(&self) -> Duration {
        self.timer_period(Timer::ElectionDeadline)
    }

    /// After each input: stands aside if need be, heartbeats when due, checks a duplicate
    /// name, steps the groups that changed or are due (`schedule`) by their role, publishes
    /// what changed and diagnoses — and sets the next wake-up from every timer that is running.
    pub(super) fn step(&mut self, now: Instant) {
        self.wake = None;
        if !self.conflicts.is_empty() {
            self.check_conflicts(now);
        }
        if now >= self.next_heartbeat {
            self.send_heartbeats(now);
        }
        if let Some(t) = self.peers.next_silence(self.cfg.failure_timeout) {
            self.want(Timer::PeerSilence, t);
        }
        self.check_duplicate(now);
        self.step_groups(now);
        // A group won in this step (a declaration, a handoff) tells everyone now, once for all
        // of them, not at the next period.
        if now >= self.next_heartbeat {
            self.send_heartbeats(now);
        }
        self.want(Timer::Heartbeat, self.next_heartbeat);
        if let Some(end) = self.lease.next_end() {
            self.want(Timer::Lease, end);
        }
        if let Some(end) = self.next_renewals_end() {
            self.want(Timer::LeaderView, end);
        }
        for d in self.calls.deadlines() {
            self.want(Timer::CallDeadline, d);
        }
        let changed = self.take_changed();
        self.publish(now, &changed);
        self.diagnose(now, &changed);
    }

    /// Before each input, fires what is due: peers silent for `failure_timeout` go down, the
    /// timers of the groups due fire (`expire_groups`), and calls past their deadline fail
    /// (`NoLeader` while waiting for one, `Timeout` once sent).
    ///
    /// Peers fall silent on a timer input (`tick`), or on any input once silent for twice the
    /// failure timeout. A driver hands over its timer only when no message waits (baton's
    /// does), so a node that fell behind — a long input, a starved process — first reads what
    /// its peers sent meanwhile instead of taking them for silent: at 9 nodes × 1 000 groups
    /// on 2 cores, silences declared ahead of queued heartbeats made peers flap and every flap
    /// re-ranked every group. Later is safe: silence only ever ends a view or a promise.
    pub(super) fn expire(&mut self, now: Instant, tick: bool) {
        let ft = self.cfg.failure_timeout;
        let changes = self.peers.expire(now, if tick { ft } else { ft * 2 });
        self.apply_peer_changes(now, changes);
        self.expire_lease(now);
        self.expire_renewed_views(now);
        self.expire_groups(now);
        self.fail_calls(
            now,
            |c| now >= c.deadline,
            |c| match c.target {
                None => CallError::NoLeader {
                    group: c.group.clone(),
                },
                Some(_) => CallError::Timeout,
            },
        );
    }

    /// A pseudo-random duration below `max` (the seeded engine RNG: reproducible in the sim).
    pub(super) fn jitter(&mut self, max: Duration) -> Duration {
        let max_us = max.as_micros().max(1) as u64;
        Duration::from_micros(self.rng.u64(0..max_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(cfg: EngineConfig, now: Instant) -> Engine {
        Engine::new(cfg, Arc::new(ByMemberId), BTreeMap::new(), None, now)
    }

    #[test]
    fn the_timer_table_derives_every_period_from_the_config() {
        let ms = Duration::from_millis;
        let e = engine(EngineConfig::new("a", 1, Quorum::None), Instant::now());
        let table = [
            (Timer::Heartbeat, ms(100)),
            (Timer::PeerSilence, ms(500)),
            (Timer::TakeoverGrace, ms(600)),
            (Timer::Lease, ms(400)),
            (Timer::ElectionDeadline, ms(250)),
            (Timer::Campaign, ms(50)),
            (Timer::CallDeadline, ms(5_000)),
            (Timer::Redial, ms(500)),
        ];
        for (timer, period) in table {
            assert_eq!(e.timer_period(timer), period, "{timer:?}");
        }
        // Short timings: a round lasts at least a heartbeat, redials wait at least 200 ms.
        let cfg = EngineConfig::new("a", 1, Quorum::None).with_timing(ms(20), ms(30));
        let e = engine(cfg, Instant::now());
        assert_eq!(e.timer_period(Timer::ElectionDeadline), ms(20));
        assert_eq!(e.timer_period(Timer::Redial), ms(200));
    }

    #[test]
    fn the_earliest_wanted_timer_is_the_next_deadline() {
        let now = Instant::now();
        let mut e = engine(EngineConfig::new("a", 1, Quorum::None), now);
        e.wake = None;
        e.want(Timer::Campaign, now + Duration::from_millis(10));
        e.want(Timer::Lease, now + Duration::from_millis(20));
        assert_eq!(e.next_timer(), Some(Timer::Campaign));
        e.want(Timer::Heartbeat, now + Duration::from_millis(5));
        assert_eq!(e.next_timer(), Some(Timer::Heartbeat));
        assert_eq!(e.next_deadline(), Some(now + Duration::from_millis(5)));
    }
}
