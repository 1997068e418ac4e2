//! Peers and members: death only on proof or silence, a wrong death healed by a fresh
//! connection, incarnations, duplicate names, joins and leaves.

use super::fixtures::heartbeat;
use super::harness::{FT, G, Setup, connected, envelope, member, ms, name, others};
use super::probe::Probe;
use crate::engine::{Action, Input};
use crate::message::{Heartbeat, Message, PeerAddr};
use crate::transport::{CloseKind, DeathProof, DeathProofMode, Refusal, TransportEvent};
use crate::types::Incarnation;
use crate::types::NodeId;
use std::time::Duration;

fn dead(j: usize, proof: DeathProof) -> TransportEvent {
    TransportEvent::Dead {
        node: NodeId::new(name(j)),
        incarnation: Incarnation(1),
        proof,
    }
}

fn duplicate(addr: &str) -> Refusal {
    Refusal::DuplicateName {
        node: NodeId::new("n0"),
        addr: addr.into(),
        incarnation: Incarnation(9),
    }
}

fn refused(refusal: Refusal) -> TransportEvent {
    TransportEvent::Refused {
        addr: "n1".into(),
        refusal,
    }
}

fn halted(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Halt(_)))
}

#[test]
fn a_silent_peer_is_down_after_the_failure_timeout_and_not_before() {
    let mut c = Setup::new(3).build();
    c.run_for(ms(100));
    c.crash(2);
    c.run_for(FT - ms(100));
    assert!(c.alive_in(0, 2), "silent for less than the failure timeout");
    c.run_for(ms(200));
    assert!(!c.alive_in(0, 2));
}

#[test]
fn a_reset_alone_is_no_proof_of_death() {
    let mut c = Setup::new(3).build();
    c.event(
        0,
        TransportEvent::Disconnected {
            node: NodeId::new("n1"),
            how: CloseKind::Abrupt,
        },
    );
    assert!(c.alive_in(0, 1));
}

#[test]
fn a_refused_reconnect_in_timeout_mode_is_no_proof_of_death() {
    let (mut c, leader) = Setup::new(3).mode(DeathProofMode::Timeout).elected();
    let b = others(3, leader)[0];
    c.event(b, dead(leader, DeathProof::RefusedAfterOrderlyClose));
    assert!(c.alive_in(b, leader), "the leader stays alive in b's view");
    assert_eq!(c.leader_seen_by(b), Some(name(leader)));
}

#[test]
fn a_goodbye_makes_peers_forget_the_node_at_once() {
    let mut c = Setup::new(3).build();
    c.run_for(ms(100));
    c.input(2, Input::Shutdown);
    assert!(
        !c.alive_in(0, 2) && !c.alive_in(1, 2),
        "no failure timeout to wait for"
    );
}

#[test]
fn a_trusted_proof_of_the_leaders_death_elects_a_successor_without_waiting_for_the_timeout() {
    let (mut c, leader) = Setup::new(3).elected();
    let t0 = c.now;
    c.isolate(leader);
    for j in others(3, leader) {
        c.event(j, dead(leader, DeathProof::RefusedAfterOrderlyClose));
    }
    // The proof lets the survivors forget the dead leader (and their promises to it) at once:
    // a successor leads long before the failure timeout (500 ms) a silent leader costs.
    let found = c.run_until_true(Duration::from_secs(1), |c| {
        c.acting().iter().any(|n| *n != leader)
    });
    assert!(found, "a successor leads");
    assert!(c.now - t0 < ms(250), "took {:?}", c.now - t0);
}

#[test]
fn a_dead_peer_that_reconnects_is_taken_back_and_follows_the_higher_term() {
    let (mut c, old) = Setup::new(3).elected();
    let old_term = c.engines[old].term(G);
    // A middlebox forges the proof (the assumption broken): the others elect a new leader.
    c.isolate(old);
    for j in others(3, old) {
        c.event(j, dead(old, DeathProof::RefusedAfterOrderlyClose));
    }
    c.run_for(ms(1500));
    let acting = c.acting();
    assert_eq!(acting.len(), 1, "{acting:?}");
    let new = acting[0];
    assert_ne!(new, old);
    assert!(c.engines[new].term(G) > old_term);
    // The firewall goes: fresh connections both ways.
    c.cut.clear();
    for j in others(3, old) {
        c.event(j, connected(old, 1));
        c.event(old, connected(j, 1));
    }
    c.run_for(ms(500));
    for i in 0..3 {
        for j in others(3, i) {
            assert!(c.alive_in(i, j), "n{i} sees n{j} alive after the heal");
        }
        assert_eq!(c.leader_seen_by(i), Some(name(new)));
    }
    assert_eq!(c.acting(), vec![new]);
}

#[test]
fn messages_from_an_older_incarnation_are_ignored() {
    let mut p = Probe::voter();
    p.advance(ms(600));
    // n0 restarted: incarnation 2 connects; then a late claim of incarnation 1 arrives.
    p.handle(Input::Transport(TransportEvent::Connected {
        node: NodeId::new("n0"),
        incarnation: Incarnation(2),
        addr: "n0".into(),
    }));
    let hb = heartbeat("n0", 99, Some(3));
    p.handle(Input::Transport(TransportEvent::Message(envelope(
        "n0",
        1,
        Message::Heartbeat(hb),
    ))));
    assert_eq!(p.leader(), None);
    assert_eq!(p.engine.term(G), 0);
}

#[test]
fn a_newer_incarnation_ends_the_old_ones_leadership() {
    let mut p = Probe::following("n0", 2);
    assert!(p.leader().is_some());
    p.handle(Input::Transport(TransportEvent::Connected {
        node: NodeId::new("n0"),
        incarnation: Incarnation(2),
        addr: "n0".into(),
    }));
    assert_eq!(p.leader(), None, "the process that led is gone");
    assert!(p.grants("n2", 3, false), "and the promise to it with it");
}

#[test]
fn a_joined_member_is_announced_to_peers_and_a_left_one_withdrawn() {
    let members_at = |c: &super::harness::Cluster, i: usize| {
        c.log[i].iter().rev().find_map(|a| match a {
            Action::Members { group, members } if group == G => {
                Some(members.iter().map(|m| m.id.clone()).collect::<Vec<_>>())
            }
            _ => None,
        })
    };
    let mut c = Setup::new(3).joined(&[0, 1]).build();
    c.run_for(ms(200));
    assert_eq!(members_at(&c, 0), Some(vec![member(0), member(1)]));
    c.join(2);
    // Within a quarter heartbeat (joins made together are announced together).
    c.run_for(super::harness::HB / 4);
    assert_eq!(
        members_at(&c, 0),
        Some(vec![member(0), member(1), member(2)]),
        "announced within a quarter heartbeat"
    );
    c.input(2, Input::Leave { group: G.into() });
    assert_eq!(members_at(&c, 0), Some(vec![member(0), member(1)]));
    assert!(c.alive_in(0, 2), "the node itself stays");
}

#[test]
fn peers_learned_from_a_heartbeat_are_dialed() {
    let mut p = Probe::voter();
    let hb = Heartbeat {
        peers: vec![PeerAddr {
            node: NodeId::new("n7"),
            addr: "10.0.0.7:7101".into(),
        }],
        ..heartbeat("n0", 50, None)
    };
    let actions = p.from("n0", Message::Heartbeat(hb));
    assert!(
        actions.contains(&Action::Connect {
            addr: "10.0.0.7:7101".into()
        }),
        "{actions:?}"
    );
}

#[test]
fn a_node_that_peers_accept_keeps_its_name_when_a_duplicate_is_refused() {
    let mut c = Setup::new(3).build();
    c.run_for(ms(100));
    c.event(0, refused(duplicate("10.0.0.2:7101")));
    c.run_for(Duration::from_secs(2));
    assert!(!halted(&c.log[0]));
    c.elect();
}

#[test]
fn duplicate_name_refusals_that_last_halt_a_node_no_peer_accepts() {
    let mut c = Setup::new(1).build();
    let refusal = duplicate("10.0.0.1:7101");
    c.event(0, refused(refusal.clone()));
    c.run_for(ms(300));
    assert!(
        !c.log[0].contains(&Action::Halt(refusal.clone())),
        "not yet"
    );
    c.run_for(ms(400));
    assert!(c.log[0].contains(&Action::Halt(refusal)));
}

#[test]
fn a_duplicate_name_refusal_followed_by_a_connection_does_not_halt() {
    // A restart can beat the old process's close to a peer: refused once, admitted soon after.
    let mut c = Setup::new(3).build();
    c.event(0, refused(duplicate("n0")));
    c.run_for(ms(100));
    c.event(0, connected(1, 1));
    c.run_for(Duration::from_secs(2));
    assert!(!halted(&c.log[0]));
}

#[test]
fn a_stale_incarnation_refusal_moves_the_node_above_the_known_incarnation() {
    let mut c = Setup::new(3).build();
    let stale = Refusal::StaleIncarnation {
        node: NodeId::new("n0"),
        incarnation: Incarnation(1),
        known: Incarnation(41),
    };
    c.event(0, refused(stale));
    assert!(
        c.log[0].contains(&Action::Reincarnate {
            incarnation: Incarnation(42)
        }),
        "{:?}",
        c.log[0]
    );
    assert_eq!(c.engines[0].config().incarnation, Incarnation(42));
    assert!(
        c.log[0]
            .iter()
            .any(|a| matches!(a, Action::Persist(p) if p.incarnation == Incarnation(42))),
        "the new incarnation is stored"
    );
}

/// A node that fell behind reads what its peers sent before it takes any of them for silent:
/// a message from one peer, handled past another's failure timeout, does not declare that
/// other silent (its heartbeats may wait behind it); the timer input does — and any input
/// once twice the failure timeout has passed.
#[test]
fn peers_fall_silent_on_the_timer_not_ahead_of_queued_messages() {
    let alive = |p: &Probe, peer: &str| {
        p.engine
            .status(p.now)
            .members
            .iter()
            .any(|m| m.name.as_str() == peer && m.alive)
    };
    let mut p = Probe::voter();
    p.advance(ms(300));
    p.silence("n0");
    p.beat("n0");
    let heard = p.now;
    p.now = heard + FT + ms(10);
    p.beat("n2");
    assert!(
        alive(&p, "n0"),
        "declared silent by a message from another peer"
    );
    p.handle(Input::Tick);
    assert!(
        !alive(&p, "n0"),
        "the timer input did not declare it silent"
    );

    let mut p = Probe::voter();
    p.advance(ms(300));
    p.silence("n0");
    p.beat("n0");
    p.now += FT * 2 + ms(10);
    p.beat("n2");
    assert!(
        !alive(&p, "n0"),
        "silent for twice the failure timeout, still alive"
    );
}
