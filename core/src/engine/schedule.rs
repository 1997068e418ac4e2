//! Which groups an input steps: only those it changed, those whose timer is due, and — when
//! the rankings changed — the leaderless ones (whose turn to campaign depends on them). A
//! thousand groups cost one input what changed in it, not a visit of every group.
//!
//! - **Dirty groups.** Every change of a group's state marks it (`touch`: `group_mut` does, and
//!   so does every other place that changes a group). `step` steps the groups marked.
//! - **A timer per group.** Stepping a group records the earliest timer it wants (its lease,
//!   its leader's claim lapsing, its round's deadline, its turn to campaign, a preempt check)
//!   in a queue ordered by time. `expire` takes the groups that are due off the queue, fires
//!   their timers and marks them. An entry that a later step superseded is dropped when it is
//!   met (lazy deletion): a group is in the queue once, at its latest wake-up.
//! - **Rankings.** A ranking changes with members, liveness and the leaders of other groups
//!   (a policy may count leaderships: `balanced`). A follower with a leader does not read its
//!   ranking, a candidate and a leader neither (a `preempt` leader re-ranks on its own timer),
//!   so a change of the rankings re-steps only the leaderless groups.
//! - **Global changes** (standing aside, shutting down, a restart's restored state) step every
//!   group once.
//!
//! Groups are stepped in name order, as before. A group marked while the pass is past it (a
//! win earlier in the order ranks the later groups anew, a handoff of another group) is
//! stepped by the next input, exactly as when every input stepped every group.
//!
//! Debug builds check the rule that makes this safe: a group that was not marked has not
//! changed since it was last stepped (up to [`CHECKED_GROUPS`] groups, to keep tests fast).

use super::*;

/// Debug builds check that unmarked groups did not change, up to this many groups.
#[cfg(debug_assertions)]
const CHECKED_GROUPS: usize = 64;

/// The bookkeeping of which groups to step (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Schedule {
    /// Groups changed since they were last stepped.
    dirty: BTreeSet<GroupName>,
    /// Groups changed since the last `publish` (their leadership may have changed).
    changed: BTreeSet<GroupName>,
    /// Step every group at the next step.
    all: bool,
    /// The rankings' epochs (every group's candidates, any candidates or leader) the
    /// leaderless groups were last all stepped at (`None`: not yet).
    ranked_at: Option<(u64, u64)>,
    /// When the leaderless groups whose policy reads other groups were last all stepped
    /// because leaders changed (`step_groups`).
    shared_at: Option<Instant>,
    /// Each group's next wake-up and the timer behind it, and the queue of them by time.
    wake: BTreeMap<GroupName, (Instant, Timer)>,
    queue: BTreeSet<(Instant, GroupName)>,
    /// While a group is stepped: the earliest timer it wanted.
    stepping: Option<Option<(Instant, Timer)>>,
    /// Debug builds: each group's state when it was last stepped.
    #[cfg(debug_assertions)]
    seen: BTreeMap<GroupName, String>,
    /// Marks made (`touch`, `touch_all`), and the marks and candidate epoch when the announced
    /// state was last built: while neither moved, it cannot have changed (`refresh_state`).
    pub(super) marks: u64,
    pub(super) announced_at: Option<(u64, u64)>,
    /// Tests: how many group steps were taken.
    #[cfg(test)]
    pub(super) steps: u64,
}

impl Schedule {
    /// Records that `timer` is wanted at `at` by the group being stepped, if any; false when
    /// no group is being stepped (the timer is the engine's own).
    pub(super) fn want(&mut self, timer: Timer, at: Instant) -> bool {
        let Some(w) = &mut self.stepping else {
            return false;
        };
        if w.is_none_or(|(t, _)| at < t) {
            *w = Some((at, timer));
        }
        true
    }

    /// The earliest wake-up of any group.
    pub(super) fn next(&self) -> Option<(Instant, Timer)> {
        let (at, name) = self.queue.first()?;
        self.wake.get(name).filter(|(t, _)| t == at).copied()
    }

    fn set_wake(&mut self, name: &GroupName, wake: Option<(Instant, Timer)>) {
        let old = match wake {
            Some(w) => self.wake.insert(name.clone(), w),
            None => self.wake.remove(name),
        };
        if let Some((at, _)) = old
            && old != wake
        {
            self.queue.remove(&(at, name.clone()));
        }
        if let Some((at, _)) = wake {
            self.queue.insert((at, name.clone()));
        }
    }

    /// Takes the groups whose wake-up is due at `now` off the queue, in name order.
    fn due(&mut self, now: Instant) -> BTreeSet<GroupName> {
        let mut due = BTreeSet::new();
        while let Some((at, _)) = self.queue.first()
            && *at <= now
        {
            if let Some((_, name)) = self.queue.pop_first() {
                self.wake.remove(&name);
                due.insert(name);
            }
        }
        due
    }
}

/// Which leaderless groups may rank differently since they were last stepped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stale {
    /// None: nothing a ranking depends on changed.
    None,
    /// Those whose policy reads other groups: only leaders changed.
    Shared,
    /// All: the candidates changed.
    All,
}

impl Stale {
    /// What changed between the epochs `ranked_at` and `now` (`Rankings::step_key`; `shared`:
    /// some policy reads other groups).
    fn since(ranked_at: Option<(u64, u64)>, now: (u64, u64), shared: bool) -> Stale {
        match ranked_at {
            Some((c, _)) if c != now.0 => Stale::All,
            None => Stale::All,
            Some((_, l)) if l != now.1 && shared => Stale::Shared,
            Some(_) => Stale::None,
        }
    }
}

impl Engine {
    /// Marks `name` changed: the next step steps it.
    pub(super) fn touch(&mut self, name: &GroupName) {
        self.schedule.marks += 1;
        if !self.schedule.dirty.contains(name) {
            self.schedule.dirty.insert(name.clone());
        }
        if !self.schedule.changed.contains(name) {
            self.schedule.changed.insert(name.clone());
        }
    }

    /// The groups changed since this was last asked (for `publish`).
    pub(super) fn take_changed(&mut self) -> BTreeSet<GroupName> {
        std::mem::take(&mut self.schedule.changed)
    }

    /// Marks every group: the next step steps them all (a change every group depends on).
    pub(super) fn touch_all(&mut self) {
        self.schedule.marks += 1;
        self.schedule.all = true;
    }

    /// Fires the timers of the groups that are due: a remote leader's claim lapses, a leader
    /// whose lease ended steps down (naming no successor: its lease is gone), an unwon round
    /// past its deadline is abandoned. Each group due is stepped after the input.
    pub(super) fn expire_groups(&mut self, now: Instant) {
        let quorum = self.quorum_mode();
        for name in self.schedule.due(now) {
            self.touch(&name);
            let Some(g) = self.groups.get_mut(&name) else {
                continue;
            };
            // A view the renewals of its leader's node cover lapses with them (`views`).
            let ft = self.cfg.failure_timeout;
            if let Some(l) = &g.leader
                && !matches!(g.role, Role::Leader { .. })
                && now >= l.until
                && (self.peers.get(&l.member.node))
                    .and_then(|p| views::renewed_until(p, &name, l, ft))
                    .is_none_or(|until| until <= now)
            {
                g.leader = None;
                self.ranks.lead_epoch += 1;
                g.leaderless_since = Some(now);
            }
            if let Role::Leader { lease_until, term } = g.role
                && quorum
                && now >= self.lease.end(&name, term, lease_until)
            {
                self.emit(Event::SteppingDown {
                    group: name.clone(),
                    reason: StepDownReason::LeaseExpired { term },
                });
                self.resign(now, &name, Resign::LeaseLost);
                continue;
            }
            if let Role::Candidate { deadline, .. } = g.role
                && now >= deadline
            {
                // Undecided at its deadline: answers are missing (`Group::timeouts`).
                g.timeouts = g.timeouts.saturating_add(1);
                self.abandon_campaign(now, &name);
            }
        }
    }

    /// Steps the groups marked, the groups due, and the leaderless groups when the rankings
    /// changed, in name order; records each one's next wake-up (see the module docs).
    pub(super) fn step_groups(&mut self, now: Instant) {
        #[cfg(debug_assertions)]
        self.check_unmarked_unchanged();
        let mut todo = std::mem::take(&mut self.schedule.dirty);
        if std::mem::take(&mut self.schedule.all) {
            todo.extend(self.groups.keys().cloned());
            self.schedule.changed.extend(self.groups.keys().cloned());
        }
        // The leaderless groups whose rankings may have changed join the pass: all of them when
        // every group's candidates changed; when only some groups' members (those groups are
        // marked) or leaders did, those whose policy reads other groups.
        let at_start = self.ranks.step_key();
        let mut stale = Stale::since(self.schedule.ranked_at, at_start, self.ranks.shared);
        // Only leaders changed: the groups whose policy reads other groups are stepped again
        // at most once a wait per rank (as their shared rankings are rebuilt, `shared_table`), not on
        // every input that changed a leader — during a cold start, nearly every one.
        let mut held = false;
        if stale == Stale::Shared {
            match self.schedule.shared_at.map(|at| at + self.rank_backoff()) {
                Some(next) if now < next => {
                    stale = Stale::None;
                    held = true;
                    self.want(Timer::Campaign, next);
                }
                _ => self.schedule.shared_at = Some(now),
            }
        }
        todo.extend(self.leaderless(stale, None));
        let mut added = stale;
        // Marked by a step at or before the cursor: for the next input.
        let mut later = BTreeSet::new();
        while let Some(name) = todo.pop_first() {
            let before = self.ranks.all_epoch;
            self.schedule.stepping = Some(None);
            #[cfg(test)]
            {
                self.schedule.steps += 1;
            }
            self.step_group(now, &name);
            let wake = self.schedule.stepping.take().flatten();
            self.schedule.set_wake(&name, wake);
            #[cfg(debug_assertions)]
            self.remember(&name);
            // What this step changed: the groups after it join this pass; itself and the ones
            // before it are stepped by the next input (as when every input stepped every
            // group: a campaign just started wants its deadline then).
            for m in std::mem::take(&mut self.schedule.dirty) {
                if m > name {
                    todo.insert(m);
                } else {
                    later.insert(m);
                }
            }
            // Every group's candidates changed: every leaderless group after this one sees it
            // now. (Rankings that read other groups see the change at the next input.)
            if self.ranks.all_epoch != before && added != Stale::All {
                todo.extend(self.leaderless(Stale::All, Some(&name)));
                added = Stale::All;
            }
        }
        self.schedule.dirty = later;
        // What moved during the pass is seen by the leaderless groups at the next input.
        let end = self.ranks.step_key();
        if held {
            // The leaders' change is still to be seen (at the wake-up wanted above).
            if end.0 != at_start.0 {
                self.schedule.ranked_at = None;
            }
        } else {
            self.schedule.ranked_at = (end.0 == at_start.0).then_some((end.0, at_start.1));
            if end.1 == at_start.1 {
                self.schedule.ranked_at = Some((end.0, end.1));
            }
        }
        if let Some((at, timer)) = self.schedule.next() {
            self.want(timer, at);
        }
    }

    /// The leaderless groups whose rankings `stale` says may have changed, after `after` if
    /// given, in name order.
    fn leaderless(
        &self,
        stale: Stale,
        after: Option<&GroupName>,
    ) -> impl Iterator<Item = GroupName> + '_ {
        let from = match after {
            Some(a) => std::ops::Bound::Excluded(a.clone()),
            None => std::ops::Bound::Unbounded,
        };
        let groups = match stale {
            Stale::None => None,
            _ => Some(self.groups.range((from, std::ops::Bound::Unbounded))),
        };
        groups
            .into_iter()
            .flatten()
            .filter(move |(name, g)| {
                g.leader.is_none()
                    && (stale == Stale::All || self.spec(name).policy.reads_other_groups())
            })
            .map(|(n, _)| n.clone())
    }

    /// Tests: how many group steps this engine took.
    #[cfg(test)]
    pub(super) fn groups_stepped(&self) -> u64 {
        self.schedule.steps
    }

    /// Debug builds: remembers `name`'s state as stepped.
    #[cfg(debug_assertions)]
    fn remember(&mut self, name: &GroupName) {
        if self.groups.len() > CHECKED_GROUPS {
            self.schedule.seen.clear();
            return;
        }
        if let Some(g) = self.groups.get(name) {
            self.schedule.seen.insert(name.clone(), format!("{g:?}"));
        }
    }

    /// Debug builds: a group not marked has not changed since it was last stepped — the rule
    /// that lets `step` skip it.
    #[cfg(debug_assertions)]
    fn check_unmarked_unchanged(&self) {
        if self.groups.len() > CHECKED_GROUPS || self.schedule.all {
            return;
        }
        for (name, g) in &self.groups {
            if self.schedule.dirty.contains(name) {
                continue;
            }
            if let Some(seen) = self.schedule.seen.get(name) {
                debug_assert_eq!(
                    *seen,
                    format!("{g:?}"),
                    "group {name} changed without being marked (`touch`)"
                );
            }
        }
    }
}
