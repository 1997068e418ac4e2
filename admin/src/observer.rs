//! The observer: follows the node's [`NodeEvent`]s, counts them into the metrics, works out
//! *why* each leadership changed, keeps a timeline of recent changes and feeds the event
//! stream (`/api/events`).
//!
//! A leadership change's reason is the reason the previous leader went, as this node saw it:
//!
//! | reason | seen as |
//! | --- | --- |
//! | `initial` | the first leader this node learned of (an election at start, or joining a cluster that has one) |
//! | `crash_proof` | the old leader's node was proven dead: its connection closed and its address refused a reconnect, or a newer incarnation replaced it |
//! | `timeout` | the old leader's node fell silent for the failure timeout |
//! | `handoff` | the old leader gave way while its node was alive (`StepDown`, a kind shutdown, a leave; also a successor's claim seen before, or without, the `StepDown`) |
//! | `transfer` | this node led and handed off because it was asked to: a transfer or a step-down (`Node::transfer`, `Node::step_down`, `Service::step_down`, the admin actions). Only the old leader's node knows the handoff was requested (the `StepDown` message does not say so): the other nodes count it as `handoff` |
//! | `preempt` | this node led and handed off to a better-ranked member (`preempt = true`) |
//! | `lease_lost` | this node led and lost its lease (no majority acknowledged in time, voters unreachable) |
//! | `higher_term` | this node led and stepped down for a leader with a higher term |
//! | `standing_aside` | this node stepped down because a conflicting configuration could elect |
//!
//! Nodes see a change from where they stand: the old leader itself says `lease_lost` where its
//! followers say `timeout`.

use crate::metrics::{Metrics, labels};
use baton_core::engine::{Event, Round, StepDownReason};
use baton_core::message::Resignation;
use baton_core::runtime::NodeEvent;
use baton_core::{CallError, DeathProof, Leadership, MemberId, NodeId, Refusal, Term};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How many leadership changes `/api/timeline` keeps.
pub(crate) const TIMELINE: usize = 256;

/// One entry of the event stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// A group's leader changed (or was lost: `leader` is null).
    Leadership {
        /// The group.
        group: baton_core::GroupName,
        /// The new leader's node, if any.
        leader: Option<String>,
        /// The new leader's member (`node#seq`).
        member: Option<String>,
        /// The previous leader's node, if any.
        previous: Option<String>,
        /// The leadership term.
        term: Term,
        /// Why (see the module docs).
        reason: &'static str,
        /// How long the group was without a leader, for a new leader after a loss.
        leaderless_ms: Option<f64>,
        /// When this node saw it, Unix milliseconds.
        time_ms: u64,
    },
    /// A peer's liveness changed.
    Peer {
        /// The peer.
        node: String,
        /// `up`, `back`, `taken_back`, `silent` or `gone`.
        state: &'static str,
        /// The engine's line about it.
        detail: String,
        /// Unix milliseconds.
        time_ms: u64,
    },
    /// A group has had no leader for a failure timeout (again when the reason changes). The
    /// engine folds the groups that lost their leader for the same reason in one pass into one
    /// report ([`Event::NoLeaders`]): `group` is the first of them by name and `more` counts
    /// the others (0 for a single group). Each leaderless group's own reason is in
    /// `/api/status`.
    NoLeader {
        /// The group (the first by name of those reported together).
        group: baton_core::GroupName,
        /// How many other groups have no leader for the same reason.
        more: usize,
        /// Why, one clause per reason.
        reason: String,
        /// Unix milliseconds.
        time_ms: u64,
    },
    /// Something the operator must see: a halt, a configuration conflict, a refusal.
    Notice {
        /// The engine's line.
        detail: String,
        /// Unix milliseconds.
        time_ms: u64,
    },
}

impl Change {
    /// The SSE event name.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Change::Leadership { .. } => "leadership",
            Change::Peer { .. } => "peer",
            Change::NoLeader { .. } => "no_leader",
            Change::Notice { .. } => "notice",
        }
    }
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Default)]
struct GroupTrack {
    leader: Option<MemberId>,
    term: Term,
    /// Since when the group has no leader, why the last one went, and which it was.
    lost: Option<(Instant, &'static str, Option<MemberId>)>,
}

/// The observer's state: what it needs to tell why a leadership changed.
#[derive(Default)]
pub(crate) struct Tracker {
    groups: BTreeMap<baton_core::GroupName, GroupTrack>,
    /// Why each peer last went down (until it is heard from again).
    peer_down: BTreeMap<NodeId, &'static str>,
    /// Why the leader of a group resigned, this node's own or a peer's as its `StepDown` said,
    /// until the next publication.
    stepped_down: BTreeMap<baton_core::GroupName, &'static str>,
    /// Recent leadership changes, oldest first.
    pub(crate) timeline: VecDeque<Change>,
}

fn step_down_reason(r: &StepDownReason) -> &'static str {
    match r {
        StepDownReason::HigherLeader { .. } | StepDownReason::PeerKnowsTerm { .. } => "higher_term",
        StepDownReason::VotersUnreachable { .. } | StepDownReason::LeaseExpired { .. } => {
            "lease_lost"
        }
        StepDownReason::StandingAside => "standing_aside",
        StepDownReason::Preempted { .. } => "preempt",
        // Decided by the engine: this leader handed off because it was asked to.
        StepDownReason::Requested { .. } => "transfer",
        StepDownReason::Unhealthy => "unhealthy",
        // `StepDownReason` may grow: a reason not known here still counts.
        #[allow(unreachable_patterns, reason = "the enum may grow")]
        _ => "other",
    }
}

/// The reason label of a peer's resignation, as its `StepDown` told it: the same label its own
/// node counts.
fn resignation_reason(r: Resignation) -> &'static str {
    match r {
        Resignation::Leaving => "handoff",
        Resignation::Requested => "transfer",
        Resignation::Preempted => "preempt",
        Resignation::Unhealthy => "unhealthy",
        Resignation::LeaseLost => "lease_lost",
    }
}

fn proof_reason(p: DeathProof) -> &'static str {
    match p {
        DeathProof::Left => "handoff",
        DeathProof::RefusedAfterOrderlyClose | DeathProof::Superseded => "crash_proof",
    }
}

fn refusal_reason(r: &Refusal) -> &'static str {
    match r {
        Refusal::DuplicateName { .. } => "duplicate_name",
        Refusal::StaleIncarnation { .. } => "stale_incarnation",
        Refusal::Fingerprint(_) => "config_mismatch",
        Refusal::ShuttingDown => "shutting_down",
    }
}

fn round(r: Round) -> &'static str {
    match r {
        Round::Pre => "pre",
        Round::Real => "real",
    }
}

/// `AlreadyVoted` → `already_voted`.
fn snake(debug: &str) -> String {
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            break;
        }
    }
    out
}

fn call_outcome(e: &Option<CallError>) -> &'static str {
    match e {
        None => "ok",
        Some(CallError::NoLeader { .. }) => "no_leader",
        Some(CallError::LeaderChanged { .. }) => "leader_changed",
        Some(CallError::Timeout) => "timeout",
        Some(CallError::NoHandler { .. }) => "no_handler",
        Some(CallError::Handler(_)) => "handler_error",
        Some(CallError::ShuttingDown) => "shutting_down",
    }
}

impl Tracker {
    /// Takes one node event: counts it, and returns the stream entry it makes, if any.
    pub(crate) fn on(&mut self, m: &Metrics, ev: NodeEvent, now: Instant) -> Option<Change> {
        match ev {
            NodeEvent::Leadership(l) => self.on_leadership(m, l, now),
            NodeEvent::Engine(e) => self.on_engine(m, e),
            NodeEvent::CallDone {
                group,
                error,
                elapsed,
                client,
            } => {
                // Counted where the call entered: made through this node's API, or sent here
                // by a client (the node that served it counts `baton_served_total`).
                let origin = if client.is_some() { "client" } else { "local" };
                m.calls
                    .get_or_create(&labels(&[
                        ("group", &group),
                        ("outcome", call_outcome(&error)),
                        ("origin", origin),
                    ]))
                    .inc();
                m.call_seconds
                    .get_or_create(&labels(&[("group", &group)]))
                    .observe(elapsed.as_secs_f64());
                None
            }
            NodeEvent::Served { group, ok, .. } => {
                let outcome = if ok { "ok" } else { "handler_error" };
                m.served
                    .get_or_create(&labels(&[("group", &group), ("outcome", outcome)]))
                    .inc();
                None
            }
            _ => None,
        }
    }

    fn on_leadership(&mut self, m: &Metrics, l: Leadership, now: Instant) -> Option<Change> {
        let stepped = self.stepped_down.remove(&l.group);
        let g = self.groups.entry(l.group.clone()).or_default();
        if g.leader == l.leader && g.term == l.term {
            return None;
        }
        let mut previous = g.leader.take();
        let loss_reason = previous.as_ref().map(|old| {
            stepped
                .or_else(|| self.peer_down.get(&old.node).copied())
                // Its node is alive in this view: it gave way (a StepDown may arrive after the
                // successor's claim, or not at all when this node was not told).
                .unwrap_or("handoff")
        });
        g.term = l.term;
        g.leader = l.leader.clone();
        let (reason, leaderless_ms) = match (&l.leader, g.lost.take()) {
            (None, lost) => {
                // Lost (or still none): remember since when and why.
                let lost = match (lost, loss_reason) {
                    (Some(earlier), None) => earlier,
                    (_, reason) => (now, reason.unwrap_or("initial"), previous.clone()),
                };
                let why = lost.1;
                g.lost = Some(lost);
                // No leader before either (a term raised by a campaign): no change to show.
                previous.as_ref()?;
                (why, None)
            }
            (Some(_), Some((since, why, before))) => {
                previous = before;
                let secs = now.saturating_duration_since(since).as_secs_f64();
                if why != "initial" {
                    m.election
                        .get_or_create(&labels(&[("group", &l.group)]))
                        .observe(secs);
                }
                (why, Some(secs * 1e3))
            }
            (Some(_), None) => (loss_reason.unwrap_or("initial"), None),
        };
        if l.leader.is_some() {
            m.changes
                .get_or_create(&labels(&[("group", &l.group), ("reason", reason)]))
                .inc();
        }
        let change = Change::Leadership {
            group: l.group.clone(),
            leader: l.leader.as_ref().map(|m| m.node.to_string()),
            member: l.leader.as_ref().map(|m| m.to_string()),
            previous: previous.map(|m| m.node.to_string()),
            term: l.term,
            reason,
            leaderless_ms,
            time_ms: unix_ms(),
        };
        if self.timeline.len() == crate::observer::TIMELINE {
            self.timeline.pop_front();
        }
        self.timeline.push_back(change.clone());
        Some(change)
    }

    fn on_engine(&mut self, m: &Metrics, e: Event) -> Option<Change> {
        let peer = |node: &NodeId, state: &'static str, e: &Event| {
            m.peer_events
                .get_or_create(&labels(&[("event", state)]))
                .inc();
            Some(Change::Peer {
                node: node.to_string(),
                state,
                detail: e.to_string(),
                time_ms: unix_ms(),
            })
        };
        match &e {
            Event::PeerUp { node, .. } => {
                self.peer_down.remove(node);
                peer(node, "up", &e)
            }
            Event::PeerBack { node, .. } => {
                self.peer_down.remove(node);
                peer(node, "back", &e)
            }
            Event::PeerTakenBack { node, .. } => {
                self.peer_down.remove(node);
                peer(node, "taken_back", &e)
            }
            Event::PeerSilent { node, .. } => {
                self.peer_down.insert(node.clone(), "timeout");
                peer(node, "silent", &e)
            }
            Event::PeerGone { node, proof, .. } => {
                self.peer_down.insert(node.clone(), proof_reason(*proof));
                peer(node, "gone", &e)
            }
            Event::SteppingDown { group, reason } => {
                self.stepped_down
                    .insert(group.clone(), step_down_reason(reason));
                None
            }
            Event::PeerResigned { group, why, .. } => {
                self.stepped_down
                    .insert(group.clone(), resignation_reason(*why));
                None
            }
            Event::VoteGranted {
                group, round: r, ..
            } => {
                m.votes_granted
                    .get_or_create(&labels(&[("group", group), ("round", round(*r))]))
                    .inc();
                None
            }
            Event::VoteDenied {
                group,
                round: r,
                denial,
                ..
            } => {
                let reason = snake(&format!("{denial:?}"));
                m.votes_denied
                    .get_or_create(&labels(&[
                        ("group", group),
                        ("round", round(*r)),
                        ("reason", &reason),
                    ]))
                    .inc();
                None
            }
            Event::Refused { refusal, .. }
            | Event::Reincarnating { refusal, .. }
            | Event::NoHigherIncarnation { refusal, .. } => {
                m.refusals
                    .get_or_create(&labels(&[("reason", refusal_reason(refusal))]))
                    .inc();
                matches!(refusal, Refusal::DuplicateName { .. }).then(|| Change::Notice {
                    detail: e.to_string(),
                    time_ms: unix_ms(),
                })
            }
            Event::ConfigMismatch { .. } => {
                m.refusals
                    .get_or_create(&labels(&[("reason", "config_mismatch")]))
                    .inc();
                Some(Change::Notice {
                    detail: e.to_string(),
                    time_ms: unix_ms(),
                })
            }
            // One group, or several folded into one report: both are seen alike.
            Event::NoLeader(why) | Event::NoLeaders { why, .. } => {
                let more = match &e {
                    Event::NoLeaders { more, .. } => *more,
                    _ => 0,
                };
                m.no_leader_reports.inc_by(1 + more as u64);
                Some(Change::NoLeader {
                    group: why.group.clone(),
                    more,
                    reason: why.reasons().join("; "),
                    time_ms: unix_ms(),
                })
            }
            Event::Halting { .. }
            | Event::StandingAside { .. }
            | Event::TakingPartAgain
            | Event::TermExhausted { .. }
            | Event::UnseenVoters { .. } => Some(Change::Notice {
                detail: e.to_string(),
                time_ms: unix_ms(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::Incarnation;
    use std::time::Duration;

    fn lead(group: &str, leader: Option<&str>, term: Term) -> NodeEvent {
        NodeEvent::Leadership(Leadership {
            group: group.into(),
            leader: leader.map(|n| MemberId::new(n, 0)),
            term,
            is_me: false,
        })
    }

    fn reason(c: Option<Change>) -> Option<(&'static str, Option<String>)> {
        match c? {
            Change::Leadership { reason, leader, .. } => Some((reason, leader)),
            other => panic!("{other:?}"),
        }
    }

    /// The reasons given to group g's leader resigning in `term`, then to `to` leading in the
    /// next term.
    fn resign_then(
        t: &mut Tracker,
        m: &Metrics,
        term: Term,
        to: &str,
        now: Instant,
    ) -> [Option<(&'static str, Option<String>)>; 2] {
        [
            reason(t.on(m, lead("g", None, term), now)),
            reason(t.on(m, lead("g", Some(to), term + 1), now)),
        ]
    }

    fn count(m: &Metrics, group: &str, reason: &str) -> u64 {
        m.changes
            .get_or_create(&labels(&[("group", group), ("reason", reason)]))
            .get()
    }

    #[test]
    fn reasons_follow_what_was_seen_before_the_leader_went() {
        let m = Metrics::new();
        let mut t = Tracker::default();
        let t0 = Instant::now();
        assert_eq!(
            reason(t.on(&m, lead("g", Some("a"), 1), t0)),
            Some(("initial", Some("a".into())))
        );
        // A lease renewal (same leader, same term) is no change.
        assert_eq!(t.on(&m, lead("g", Some("a"), 1), t0), None);
        // Killed: proven dead, then the group is leaderless, then b wins.
        let gone = NodeEvent::Engine(Event::PeerGone {
            node: NodeId::new("a"),
            incarnation: Incarnation(1),
            proof: DeathProof::RefusedAfterOrderlyClose,
        });
        assert!(matches!(
            t.on(&m, gone, t0),
            Some(Change::Peer { state: "gone", .. })
        ));
        assert_eq!(
            reason(t.on(&m, lead("g", None, 1), t0)),
            Some(("crash_proof", None))
        );
        let t1 = t0 + Duration::from_millis(250);
        match t.on(&m, lead("g", Some("b"), 2), t1) {
            Some(Change::Leadership {
                reason: "crash_proof",
                leaderless_ms: Some(ms),
                previous: Some(p),
                ..
            }) => {
                assert!((ms - 250.0).abs() < 1.0, "{ms}");
                assert_eq!(p, "a");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(count(&m, "g", "crash_proof"), 1);
        assert_eq!(count(&m, "g", "initial"), 1);
        // A resignation while b's node is alive: a handoff.
        assert_eq!(
            resign_then(&mut t, &m, 2, "c", t1),
            [Some(("handoff", None)), Some(("handoff", Some("c".into())))]
        );
        // Silence, then a direct replacement.
        let silent = NodeEvent::Engine(Event::PeerSilent {
            node: NodeId::new("c"),
            after: Duration::from_millis(300),
        });
        t.on(&m, silent, t1);
        assert_eq!(
            reason(t.on(&m, lead("g", Some("a"), 4), t1)),
            Some(("timeout", Some("a".into())))
        );
        // This node's own step-down reason wins.
        let down = NodeEvent::Engine(Event::SteppingDown {
            group: "g".into(),
            reason: StepDownReason::LeaseExpired { term: 4 },
        });
        t.on(&m, down, t1);
        assert_eq!(
            reason(t.on(&m, lead("g", None, 4), t1)),
            Some(("lease_lost", None))
        );
        // A handoff this node was asked for (transfer, step-down): `transfer`.
        t.on(&m, lead("g", Some("a"), 5), t1);
        let asked = NodeEvent::Engine(Event::SteppingDown {
            group: "g".into(),
            reason: StepDownReason::Requested {
                to: MemberId::new("b", 0),
            },
        });
        t.on(&m, asked, t1);
        assert_eq!(
            resign_then(&mut t, &m, 5, "b", t1),
            [
                Some(("transfer", None)),
                Some(("transfer", Some("b".into())))
            ]
        );
        assert_eq!(count(&m, "g", "transfer"), 1);
        assert_eq!(count(&m, "g", "handoff"), 1);
        assert_eq!(count(&m, "g", "timeout"), 1);
        assert_eq!(t.timeline.len(), 10);
        let text = m.render(None);
        assert!(
            text.contains("baton_leadership_changes_total{group=\"g\",reason=\"crash_proof\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("baton_election_duration_seconds_count{group=\"g\"} 4"),
            "{text}"
        );
    }

    fn no_leader(group: &str) -> baton_core::engine::NoLeader {
        baton_core::engine::NoLeader {
            group: group.into(),
            term: 3,
            voters: vec![],
            reachable: vec![NodeId::new("e")],
            needed: 3,
            candidates: 1,
            favourite: Some(MemberId::new("a", 0)),
            favourite_is_local: false,
            abstaining_ms: None,
            standing_aside: None,
            shutting_down: false,
        }
    }

    /// The value of `series` in `text` (a Prometheus text body).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_folded_no_leader_report_is_seen_as_one_for_each_group() {
        let m = Metrics::new();
        let mut t = Tracker::default();
        let now = Instant::now();
        let one = t.on(&m, NodeEvent::Engine(Event::NoLeader(no_leader("g"))), now);
        match one {
            Some(Change::NoLeader {
                group,
                more: 0,
                reason,
                ..
            }) => {
                assert_eq!(group.as_str(), "g");
                assert_eq!(reason, no_leader("g").reasons().join("; "));
            }
            other => panic!("{other:?}"),
        }
        // The engine folds groups leaderless for the same reason into one `NoLeaders`: the
        // stream still tells it (the view refreshes on it), with how many more groups.
        let folded = NodeEvent::Engine(Event::NoLeaders {
            why: no_leader("h"),
            more: 2,
        });
        let c = t
            .on(&m, folded, now)
            .expect("a NoLeaders event must reach the stream");
        assert_eq!(c.kind(), "no_leader");
        match &c {
            Change::NoLeader { group, more, .. } => {
                assert_eq!((group.as_str(), *more), ("h", 2));
            }
            other => panic!("{other:?}"),
        }
        let json = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(json["more"], 2, "{json}");
        // One group, then three: four reports counted.
        let text = m.render(None);
        assert_eq!(
            sample(&text, "baton_no_leader_reports_total"),
            Some(4.0),
            "{text}"
        );
    }

    #[test]
    fn votes_refusals_and_calls_are_counted_with_their_labels() {
        use baton_core::engine::Denial;
        use baton_core::{FingerprintMismatch, Incarnation};
        let m = Metrics::new();
        let mut t = Tracker::default();
        let now = Instant::now();
        let candidate = MemberId::new("b", 0);
        for (r, n) in [(Round::Pre, 2), (Round::Real, 1)] {
            for _ in 0..n {
                let ev = Event::VoteGranted {
                    group: "g".into(),
                    round: r,
                    candidate: candidate.clone(),
                    term: 2,
                };
                assert_eq!(t.on(&m, NodeEvent::Engine(ev), now), None);
            }
        }
        for denial in [Denial::LiveLeader, Denial::AlreadyVoted, Denial::LiveLeader] {
            let ev = Event::VoteDenied {
                group: "g".into(),
                round: Round::Pre,
                candidate: candidate.clone(),
                term: 2,
                denial,
            };
            t.on(&m, NodeEvent::Engine(ev), now);
        }
        let refused = |refusal| {
            NodeEvent::Engine(Event::Refused {
                addr: "127.0.0.1:1".into(),
                refusal,
            })
        };
        let dup = t.on(
            &m,
            refused(Refusal::DuplicateName {
                node: NodeId::new("a"),
                addr: "127.0.0.1:2".into(),
                incarnation: Incarnation(7),
            }),
            now,
        );
        // A duplicate name is something the operator must see.
        assert!(matches!(dup, Some(Change::Notice { .. })), "{dup:?}");
        t.on(
            &m,
            refused(Refusal::Fingerprint(FingerprintMismatch {
                field: "heartbeat_ms".into(),
                ours: "50".into(),
                theirs: "60".into(),
            })),
            now,
        );
        t.on(&m, refused(Refusal::ShuttingDown), now);
        // Calls made through the node's API, and calls clients routed through it (`baton
        // work`): both counted, told apart by `origin`, in one latency histogram.
        let client = Some(NodeId::new("baton-cli"));
        for (error, ms, client) in [
            (None, 2, None),
            (None, 3, client.clone()),
            (Some(CallError::Timeout), 900, client.clone()),
            (Some(CallError::NoHandler { group: "g".into() }), 1, None),
        ] {
            let ev = NodeEvent::CallDone {
                group: "g".into(),
                error,
                elapsed: Duration::from_millis(ms),
                client,
            };
            t.on(&m, ev, now);
        }
        let text = m.render(None);
        for (series, want) in [
            ("baton_votes_granted_total{group=\"g\",round=\"pre\"}", 2.0),
            ("baton_votes_granted_total{group=\"g\",round=\"real\"}", 1.0),
            (
                "baton_votes_denied_total{group=\"g\",round=\"pre\",reason=\"live_leader\"}",
                2.0,
            ),
            (
                "baton_votes_denied_total{group=\"g\",round=\"pre\",reason=\"already_voted\"}",
                1.0,
            ),
            (
                "baton_handshake_refusals_total{reason=\"duplicate_name\"}",
                1.0,
            ),
            (
                "baton_handshake_refusals_total{reason=\"config_mismatch\"}",
                1.0,
            ),
            (
                "baton_handshake_refusals_total{reason=\"shutting_down\"}",
                1.0,
            ),
            (
                "baton_calls_total{group=\"g\",outcome=\"ok\",origin=\"local\"}",
                1.0,
            ),
            (
                "baton_calls_total{group=\"g\",outcome=\"ok\",origin=\"client\"}",
                1.0,
            ),
            (
                "baton_calls_total{group=\"g\",outcome=\"timeout\",origin=\"client\"}",
                1.0,
            ),
            (
                "baton_calls_total{group=\"g\",outcome=\"no_handler\",origin=\"local\"}",
                1.0,
            ),
            ("baton_call_duration_seconds_count{group=\"g\"}", 4.0),
            // 0.1 ms · 2^k buckets: 2 and 3 ms fall at or under 3.2 ms, 900 ms above it.
            (
                "baton_call_duration_seconds_bucket{le=\"0.0032\",group=\"g\"}",
                3.0,
            ),
            (
                "baton_call_duration_seconds_bucket{le=\"+Inf\",group=\"g\"}",
                4.0,
            ),
        ] {
            assert_eq!(sample(&text, series), Some(want), "{series}:\n{text}");
        }
        let sum = sample(&text, "baton_call_duration_seconds_sum{group=\"g\"}").unwrap_or(0.0);
        assert!((sum - 0.906).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn denials_are_counted_by_rule() {
        assert_eq!(snake("AlreadyVoted"), "already_voted");
        assert_eq!(snake("NotAVoter"), "not_a_voter");
        assert_eq!(snake("StaleTerm { x: 1 }"), "stale_term");
    }
}
