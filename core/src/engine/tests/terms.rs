//! Terms: a claim below the known term is refused with that term, a leader that learns a higher
//! term steps down, terms never wrap, and in availability mode a same-term conflict goes to the
//! lower member id.

use super::fixtures::heartbeat;
use super::harness::{G, Setup, envelope, join, ms, name, vote_requests};
use super::probe::Probe;
use crate::engine::{Action, Engine, EngineConfig, Input, PersistedState, Quorum, next_term};
use crate::message::{HeartbeatAck, Message};
use crate::policy::ByMemberId;
use crate::transport::TransportEvent;
use crate::types::{MemberId, NodeId, Term};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn a_claim_below_the_known_term_is_refused_with_the_known_term() {
    let mut p = Probe::following("n0", 5);
    p.claim("n2", Some(3));
    let refusal = p.out.iter().rev().find_map(|a| match a {
        Action::Send {
            to,
            message: Message::HeartbeatAck(ack),
        } if to.as_str() == "n2" => Some(ack.rejected.clone()),
        _ => None,
    });
    assert_eq!(refusal, Some(vec![(G.into(), 5)]));
    let l = p.engine.leadership(G, p.now);
    assert_eq!(
        (l.leader.map(|m| m.node), l.term),
        (Some(NodeId::new("n0")), 5)
    );
}

#[test]
fn a_leader_that_learns_of_a_higher_term_steps_down() {
    let mut p = Probe::voter();
    let term = p.elect_me();
    let ack = HeartbeatAck {
        seq: 1,
        rejected: vec![(G.into(), term + 5)],
        version: 0,
    };
    p.from("n2", Message::HeartbeatAck(ack));
    assert!(!p.engine.is_acting_leader(G, p.now));
    // Its next campaign goes above the term it learned of.
    let reqs = vote_requests(&p.advance(Duration::from_secs(1)));
    assert!(reqs.iter().all(|(_, r)| r.term > term + 5), "{reqs:?}");
}

#[test]
fn a_nodes_known_term_never_decreases_across_failovers() {
    let mut c = Setup::new(3).build();
    let mut seen = vec![0; 3];
    let mut first = None;
    for _ in 0..2 {
        let leader = c.elect();
        first.get_or_insert(c.engines[leader].term(G));
        c.isolate(leader);
        for _ in 0..200 {
            c.run_for(ms(10));
            for (i, s) in seen.iter_mut().enumerate() {
                let t = c.engines[i].term(G);
                assert!(t >= *s, "n{i}'s term went from {s} to {t}");
                *s = t;
            }
        }
        c.cut.clear();
        c.run_for(Duration::from_secs(1));
    }
    assert!(seen.iter().all(|t| *t > first.unwrap_or(0)), "{seen:?}");
}

#[test]
fn in_availability_mode_a_same_term_conflict_goes_to_the_lower_member_id() {
    // Alone in its view of the group, n1 declares itself at once.
    let mut p = Probe::with(EngineConfig::new("n1", 1, Quorum::None), None, &[]);
    p.handle(join(1_000));
    p.advance(ms(10));
    assert!(p.engine.is_acting_leader(G, p.now));
    let term = p.engine.term(G);
    let claim = |who: &str| {
        let hb = Message::Heartbeat(heartbeat(who, 1, Some(term)));
        Input::Transport(TransportEvent::Message(envelope(who, 1, hb)))
    };
    p.handle(claim("n2"));
    assert!(
        p.engine.is_acting_leader(G, p.now),
        "n2/0 is above n1/0: refused"
    );
    p.handle(claim("n0"));
    assert!(
        !p.engine.is_acting_leader(G, p.now),
        "n0/0 is below n1/0: it wins"
    );
    let l = p.engine.leadership(G, p.now);
    assert_eq!(l.leader, Some(MemberId::new("n0", 0)));
}

#[test]
fn a_claim_with_a_term_that_cannot_grow_is_ignored() {
    let mut c = Setup::new(3).build();
    c.run_for(ms(50));
    let hb = heartbeat("n2", 5, Some(Term::MAX));
    c.deliver("n2", 1, Message::Heartbeat(hb));
    assert!(c.engines[1].term(G) < Term::MAX);
    assert_ne!(
        c.leader_seen_by(1),
        Some(name(2)),
        "the claim was not taken"
    );
    // The cluster still elects.
    c.elect();
}

#[test]
fn a_term_that_cannot_grow_stops_campaigns_instead_of_wrapping() {
    let now = Instant::now();
    let persisted: PersistedState = serde_json::from_value(
        serde_json::json!({"groups": {G: {"term": Term::MAX - 1, "vote": null}}}),
    )
    .expect("a persisted state");
    let cfg = EngineConfig::new("solo", 1, Quorum::Majority([NodeId::new("solo")].into()));
    let mut e = Engine::new(
        cfg,
        Arc::new(ByMemberId),
        BTreeMap::new(),
        Some(persisted),
        now,
    );
    let mut actions = e.handle(now, join(1));
    let later = now + Duration::from_secs(2);
    actions.extend(e.handle(later, Input::Tick));
    assert!(!e.is_acting_leader(G, later));
    assert_eq!(e.term(G), Term::MAX - 1);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Leadership(l) if l.is_me || l.term != Term::MAX - 1)),
        "{actions:?}"
    );
}

#[test]
fn next_term_stops_below_the_largest_u64() {
    assert_eq!(next_term(0), Some(1));
    assert_eq!(next_term(Term::MAX - 2), Some(Term::MAX - 1));
    assert_eq!(next_term(Term::MAX - 1), None);
    assert_eq!(next_term(Term::MAX), None);
}
