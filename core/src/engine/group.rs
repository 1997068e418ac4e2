//! A group's protocol state on one node: its terms, its vote, the leader it follows and the
//! role this node plays in it — and the arithmetic of terms.

use super::{Engine, GroupSpec};
use crate::message::Handoff;
use crate::message::Message;
use crate::types::Leadership;
use crate::types::{GroupName, MemberId, NodeId, Term};
use std::collections::BTreeSet;
use std::time::Instant;

/// A leader as seen from here.
#[derive(Clone, Debug)]
pub(crate) struct LeaderView {
    pub member: MemberId,
    pub term: Term,
    /// For a remote leader: when its claim lapses unless renewed by a heartbeat (this node's
    /// promise not to vote for another ends then too).
    pub until: Instant,
}

/// Which round of an election a candidate is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// "Would you vote for me?" — changes no voter's state; the term is bumped only once a
    /// majority would grant, so an isolated node never disrupts a healthy leader.
    Pre,
    /// The vote itself, in the campaigned term.
    Real,
}

impl Round {
    /// The round a request's wire flag (`pre`) names.
    pub fn of(pre: bool) -> Round {
        if pre { Round::Pre } else { Round::Real }
    }

    /// The wire flag (`VoteRequest::pre`, `VoteResponse::pre`) for this round.
    pub fn is_pre(self) -> bool {
        self == Round::Pre
    }
}

impl std::fmt::Display for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Round::Pre => "pre-vote",
            Round::Real => "vote",
        })
    }
}

/// What this node does in a group.
#[derive(Clone, Debug)]
pub(crate) enum Role {
    /// Follows the known leader, or waits its turn to campaign.
    Follower,
    /// Campaigns: asked the voters in `round` for `term`.
    Candidate {
        term: Term,
        round: Round,
        grants: BTreeSet<NodeId>,
        denials: BTreeSet<NodeId>,
        /// The denials' estimates of when each could grant (`VoteResponse::retry_in_ms`), if
        /// given: a lost round retries no sooner than a majority may grant.
        not_before: Vec<Instant>,
        /// When the round's requests went out: a won lease counts from here.
        started: Instant,
        deadline: Instant,
    },
    /// Leads under `term`; acts (in quorum mode) only until `lease_until`.
    Leader { term: Term, lease_until: Instant },
}

/// A group's protocol state on one node.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    /// Highest leadership term known (claimed, won or resigned). Never decreases.
    pub term: Term,
    /// Highest term seen anywhere (campaigns included): new campaigns go above it.
    pub max_seen: Term,
    /// Last vote granted (persisted).
    pub vote: Option<(Term, MemberId)>,
    pub leader: Option<LeaderView>,
    pub role: Role,
    /// Since when no leader is known.
    pub leaderless_since: Option<Instant>,
    /// The last leader's resignation.
    pub resigned: Option<Handoff>,
    /// The previous leader named this node's member its successor.
    pub handoff_to_me: Option<Handoff>,
    /// A candidate this node voted for, which may lead until then.
    pub promised: Option<(MemberId, Instant)>,
    /// Earliest next campaign after a failed one.
    pub next_campaign_at: Option<Instant>,
    /// A leader resigned naming another member its successor: until then this node's member
    /// waits for it, and its ranking's schedule (`r × backoff`) starts only then.
    pub successor_wait: Option<Instant>,
    /// Next time a leader with `preempt` re-ranks.
    pub preempt_check_at: Instant,
    /// The renewals of this node's lease (a majority acked a newer heartbeat) counted while
    /// its earlier claims of the group stood; the current claim's are in `NodeLease`. Only
    /// counted, for `status` (`baton_lease_renewals_total`).
    pub lease_renewals: u64,
    /// This node's place in the group's ranking when it was last stepped leaderless, and
    /// since when it has held it: rank `r`'s `r × backoff` counts from then, so a better
    /// candidate that appears (a peer coming up at a cold start) restarts the wait instead of
    /// finding it long over.
    pub rank_seen: Option<(usize, Instant)>,
    /// Rounds in a row that ended at their deadline with answers missing (no voter decided
    /// them): each doubles the wait before the next one, up to `MAX_TIMEOUT_DOUBLINGS`.
    /// Answers that decide a round, and a leader, end the count.
    pub timeouts: u8,
}

impl Group {
    pub(super) fn new(now: Instant) -> Self {
        Group {
            term: 0,
            max_seen: 0,
            vote: None,
            leader: None,
            role: Role::Follower,
            leaderless_since: Some(now),
            resigned: None,
            handoff_to_me: None,
            promised: None,
            next_campaign_at: None,
            successor_wait: None,
            preempt_check_at: now,
            lease_renewals: 0,
            rank_seen: None,
            timeouts: 0,
        }
    }
}

/// The next term after `t`, unless `t` cannot grow (terms stop below `u64::MAX`).
pub fn next_term(t: Term) -> Option<Term> {
    t.checked_add(1).filter(|n| *n < Term::MAX)
}

/// Whether a term received from a peer is one a leadership can have.
pub(crate) fn term_ok(t: Term) -> bool {
    t < Term::MAX
}

/// A term in `message` that no leadership can have (it could never be succeeded), if any. Such
/// a message is refused: taking it would stop every election of its group for good.
pub(crate) fn insane_term(message: &Message) -> Option<Term> {
    let terms: Vec<Term> = match message {
        Message::Heartbeat(hb) => hb
            .state
            .iter()
            .flat_map(|s| s.claims.iter().map(|c| c.term))
            .collect(),
        Message::HeartbeatAck(ack) => ack.rejected.iter().map(|(_, t)| *t).collect(),
        Message::VoteRequest(req) => {
            let mut t = vec![req.term];
            t.extend(req.handoff.as_ref().map(|h| h.term));
            t
        }
        Message::VoteResponse(resp) => vec![resp.term, resp.known_term],
        Message::StepDown(sd) => vec![sd.term],
        _ => vec![],
    };
    terms.into_iter().find(|t| !term_ok(*t))
}

impl Engine {
    /// The groups whose role on this node satisfies `pick`.
    pub(super) fn groups_where(&self, pick: impl Fn(&Role) -> bool) -> Vec<GroupName> {
        self.groups
            .iter()
            .filter(|(_, g)| pick(&g.role))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The settings of `group` (the default policy when none were given).
    pub(super) fn spec(&self, group: &str) -> &GroupSpec {
        self.specs.get(group).unwrap_or(&self.default_spec)
    }

    /// `name`'s state, created (leaderless since `now`) on first mention.
    pub(super) fn group_mut(&mut self, name: &GroupName, now: Instant) -> &mut Group {
        if !self.groups.contains_key(name) {
            self.members_changed_in(name);
        }
        self.touch(name);
        // No `entry(name.clone())`: the name is cloned only for a new group.
        if !self.groups.contains_key(name) {
            self.groups.insert(name.clone(), Group::new(now));
        }
        self.groups.get_mut(name).expect("the group exists")
    }

    /// `g`'s leadership as this node sees it at `now`.
    pub(super) fn leadership_of(&self, name: &GroupName, g: &Group, now: Instant) -> Leadership {
        Leadership {
            group: name.clone(),
            leader: g.leader.as_ref().map(|l| l.member.clone()),
            term: g.term,
            is_me: self.acting(name, g, now).is_some(),
        }
    }
}
