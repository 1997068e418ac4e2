//! A follower's views of remote leaders, renewed by heartbeats that change nothing.
//!
//! A heartbeat announcing the state version this node already holds, whose claims are all
//! followed here as they are (`claims_hold`), renews every one of them at once: the peer's
//! `claims_heard` records when, and the views it covers lapse together a failure timeout
//! after it, on one engine timer per peer (`expire_renewed_views`), instead of each group
//! being stepped and rescheduled on every heartbeat. A view the renewals do not cover keeps
//! its own timer (`view_wake`). Anything that ends the renewals — a heartbeat taking the long
//! way, the timer — steps the groups that followed the peer, so each wants its own timer again.

use super::*;

impl Engine {
    /// Whether a heartbeat of `from` announcing the state this node holds would change
    /// nothing here but renew its claims: every claim in that state is followed as it is (the
    /// same member and term, nothing this node knows refusing it, no campaign or promise
    /// `on_claim` would end), and no group follows `from` without its claim. Then the
    /// heartbeat costs one pass over the groups and their claims side by side — no group is
    /// touched, each view runs on from the peer's last heartbeat (`claims_heard`, applied in
    /// `expire_groups`) — instead of a claim applied and a group stepped per claim. The claims
    /// must come in group order (as `refresh_state` builds them); otherwise the answer is no
    /// and the heartbeat takes the long way.
    pub(super) fn claims_hold(&self, from: &NodeId) -> bool {
        let Some(p) = self.peers.get(from) else {
            return false;
        };
        let quorum = self.quorum_mode();
        let mut claims = p
            .claims
            .iter()
            .filter(|c| c.member.node == *from)
            .peekable();
        for (name, g) in &self.groups {
            if claims.peek().is_some_and(|c| c.group < *name) {
                return false;
            }
            let follows = !matches!(g.role, Role::Leader { .. })
                && g.leader.as_ref().is_some_and(|l| l.member.node == *from);
            let Some(c) = claims.next_if(|c| c.group == *name) else {
                if follows {
                    return false;
                }
                continue;
            };
            let known = g.term.max(if quorum {
                g.vote.as_ref().map_or(0, |v| v.0)
            } else {
                0
            });
            let as_is = follows
                && matches!(g.role, Role::Follower)
                && g.leader
                    .as_ref()
                    .is_some_and(|l| l.member == c.member && l.term == c.term)
                && g.term == c.term
                && known <= c.term
                && g.max_seen >= c.term
                && g.handoff_to_me.is_none()
                && g.next_campaign_at.is_none()
                && g.successor_wait.is_none()
                && g.leaderless_since.is_none()
                && g.promised.is_none();
            if !as_is {
                return false;
            }
        }
        claims.next().is_none()
    }

    /// A heartbeat of `from` announcing the state held renews its claims (`claims_hold`): at
    /// `now`, as one. While no group was marked since the last heartbeat that did, the answer
    /// is the same and the pass is skipped (debug builds check it).
    pub(super) fn renew_claims(&mut self, now: Instant, from: &NodeId) -> bool {
        let marks = self.schedule.marks;
        let cached = self
            .peers
            .get(from)
            .is_some_and(|p| p.claims_heard.is_some_and(|(_, m)| m == marks));
        debug_assert!(!cached || self.claims_hold(from), "claims changed unmarked");
        if !cached && !self.claims_hold(from) {
            return false;
        }
        if let Some(p) = self.peers.get_mut(from) {
            p.claims_heard = Some((now, marks));
        }
        true
    }

    /// When the view `l` of `name` wants to wake on its own: `None` while the renewals of its
    /// leader's node cover it (the engine's timer for that node wakes then).
    pub(super) fn view_wake(&self, name: &GroupName, l: &LeaderView) -> Option<Instant> {
        let covered = self
            .peers
            .get(&l.member.node)
            .and_then(|p| renewed_until(p, name, l, self.cfg.failure_timeout))
            .is_some_and(|until| until >= l.until);
        (!covered).then_some(l.until)
    }

    /// The earliest time the renewals of some peer end (a failure timeout after the heartbeat
    /// that last renewed its claims).
    pub(super) fn next_renewals_end(&self) -> Option<Instant> {
        let ft = self.cfg.failure_timeout;
        self.peers
            .iter()
            .filter_map(|(_, p)| p.claims_heard.map(|(at, _)| at + ft))
            .min()
    }

    /// Before each input: the peers whose renewals ended (no heartbeat renewed their claims for
    /// a failure timeout) lose them; each view they covered lapses unless its own time has not
    /// come, and every group that followed them is stepped.
    pub(super) fn expire_renewed_views(&mut self, now: Instant) {
        if self.next_renewals_end().is_none_or(|end| end > now) {
            return;
        }
        let ft = self.cfg.failure_timeout;
        let ended: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.claims_heard.is_some_and(|(at, _)| at + ft <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for node in ended {
            self.renewals_end(&node);
            let mut lapsed = false;
            for g in self.groups.values_mut() {
                if let Some(l) = &g.leader
                    && l.member.node == node
                    && !matches!(g.role, Role::Leader { .. })
                    && now >= l.until
                {
                    g.leader = None;
                    g.leaderless_since = Some(now);
                    lapsed = true;
                }
            }
            if lapsed {
                self.leaders_changed();
            }
        }
    }

    /// `node`'s claims are no longer renewed as one: the groups that followed it are stepped,
    /// so each wants its own timer again.
    pub(super) fn renewals_end(&mut self, node: &NodeId) {
        let Some(p) = self.peers.get_mut(node) else {
            return;
        };
        if p.claims_heard.take().is_none() {
            return;
        }
        let following: Vec<GroupName> = self
            .groups
            .iter()
            .filter(|(_, g)| g.leader.as_ref().is_some_and(|l| l.member.node == *node))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &following {
            self.touch(name);
        }
    }
}

/// When `peer`'s heartbeats that renewed its claims unchanged (`claims_hold`) make the view
/// `l` of `group` lapse: a failure timeout after the last one, if its claims still hold it.
/// Those claims are in group order: the check that set `claims_heard` saw to it.
pub(super) fn renewed_until(
    peer: &Peer,
    group: &str,
    l: &LeaderView,
    ft: Duration,
) -> Option<Instant> {
    let (heard, _) = peer.claims_heard?;
    let i = peer
        .claims
        .binary_search_by(|c| c.group.as_str().cmp(group))
        .ok()?;
    let c = peer.claims.get(i)?;
    (c.member == l.member && c.term == l.term).then_some(heard + ft)
}
