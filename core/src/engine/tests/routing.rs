//! Routing: a call is served by the leader (locally or through a request), waits for a leader
//! until its deadline, fails when its leader goes away, may go to any member with `any`; a node
//! that cannot serve says why.

use super::harness::{Cluster, G, Setup, envelope, member, ms, name};
use crate::engine::{Action, CallRef, Input};
use crate::message::{CallError, Message, Request, Response, Served};
use crate::transport::{DeathProof, TransportEvent};
use crate::types::Incarnation;
use crate::types::NodeId;
use std::time::Duration;

pub(super) fn call(id: u64, group: &str, any: bool, timeout: Option<Duration>) -> Input {
    Input::Call {
        id,
        group: group.into(),
        any,
        payload: b"ping".to_vec(),
        timeout,
    }
}

/// The `Serve` actions node `i` emitted: (call, term, whether as leader).
pub(super) fn served(c: &Cluster, i: usize) -> Vec<(CallRef, u64, bool)> {
    c.log[i]
        .iter()
        .filter_map(|a| match a {
            Action::Serve {
                call, term, leader, ..
            } => Some((call.clone(), *term, *leader)),
            _ => None,
        })
        .collect()
}

/// The one call node `i` served, as leader: where it came from and the term.
pub(super) fn served_once_as_leader(c: &Cluster, i: usize) -> (CallRef, u64) {
    match served(c, i).as_slice() {
        [(call, term, true)] => (call.clone(), *term),
        other => panic!("n{i} did not serve one call as leader: {other:?}"),
    }
}

/// How call `id` of node `i` ended, if it did.
pub(super) fn done(c: &Cluster, i: usize, id: u64) -> Option<Result<Served, CallError>> {
    c.log[i].iter().find_map(|a| match a {
        Action::CallDone { id: d, result } if *d == id => Some(result.clone()),
        _ => None,
    })
}

pub(super) fn reply(from: usize, term: u64) -> Result<Served, CallError> {
    Ok(Served {
        member: member(from),
        term,
        leader: true,
        payload: b"pong".to_vec(),
    })
}

/// A request `id` for `group` from a peer or a client.
pub(super) fn request(id: u64, group: &str, any: bool) -> Request {
    Request {
        id,
        group: group.into(),
        any,
        payload: vec![],
    }
}

/// Asserts that `actions` answer request `id` of `to` with `result`.
pub(super) fn assert_answered(
    actions: &[Action],
    to: &str,
    id: u64,
    result: Result<Served, CallError>,
) {
    let want = Action::Send {
        to: NodeId::new(to),
        message: Message::Response(Response { id, result }),
    };
    assert!(actions.contains(&want), "no {want:?} in {actions:?}");
}

/// A three-node cluster that elected `l`, and `f`, a node that follows it.
fn with_a_follower() -> (Cluster, usize, usize) {
    let (c, l) = Setup::new(3).elected();
    (c, l, (l + 1) % 3)
}

#[test]
fn a_call_at_the_leader_is_served_locally_under_its_term() {
    let (mut c, l) = Setup::new(3).elected();
    let term = c.engines[l].term(G);
    c.input(l, call(7, G, false, None));
    let (local, t) = served_once_as_leader(&c, l);
    assert!(matches!(local, CallRef::Local(_)), "{local:?}");
    assert_eq!(t, term);
    c.input(
        l,
        Input::Reply {
            call: local,
            result: reply(l, term),
        },
    );
    assert_eq!(done(&c, l, 7), Some(reply(l, term)));
}

#[test]
fn a_call_at_a_follower_is_routed_to_the_leader_and_answered() {
    let (mut c, l, f) = with_a_follower();
    let term = c.engines[l].term(G);
    c.input(f, call(7, G, false, None));
    let (remote, t) = served_once_as_leader(&c, l);
    assert!(
        matches!(&remote, CallRef::Remote { from, .. } if *from == NodeId::new(name(f))),
        "{remote:?}"
    );
    assert_eq!(t, term);
    assert!(served(&c, f).is_empty(), "the follower does not serve it");
    c.input(
        l,
        Input::Reply {
            call: remote,
            result: reply(l, term),
        },
    );
    assert_eq!(done(&c, f, 7), Some(reply(l, term)));
}

#[test]
fn a_call_with_no_leader_fails_with_no_leader_at_its_deadline() {
    let mut c = Setup::new(3).build();
    c.input(1, call(7, G, false, Some(ms(100))));
    c.run_for(ms(90));
    assert_eq!(
        done(&c, 1, 7),
        None,
        "it waits for a leader until the deadline"
    );
    c.run_for(ms(20));
    assert_eq!(
        done(&c, 1, 7),
        Some(Err(CallError::NoLeader { group: G.into() }))
    );
}

#[test]
fn a_call_waiting_for_a_leader_is_routed_once_one_is_elected() {
    let mut c = Setup::new(3).build();
    c.input(1, call(7, G, false, None));
    let l = c.elect();
    let first = served(&c, l).first().map(|s| s.0.clone());
    match first {
        Some(CallRef::Local(_)) => assert_eq!(l, 1, "served locally only by n1 itself"),
        Some(CallRef::Remote { from, .. }) => {
            assert_ne!(l, 1);
            assert_eq!(from, NodeId::new("n1"));
        }
        None => panic!("the waiting call was not served"),
    }
}

#[test]
fn a_call_for_an_unknown_group_fails_with_no_leader() {
    let mut c = Setup::new(3).build();
    c.elect();
    c.input(1, call(7, "nosuch", false, Some(ms(200))));
    c.run_for(ms(300));
    assert_eq!(
        done(&c, 1, 7),
        Some(Err(CallError::NoLeader {
            group: "nosuch".into()
        }))
    );
}

#[test]
fn a_call_whose_leader_dies_mid_call_fails_with_leader_changed() {
    let (mut c, l, f) = with_a_follower();
    c.input(f, call(7, G, false, None));
    assert_eq!(done(&c, f, 7), None, "the leader has not answered");
    c.crash(l);
    let proof = TransportEvent::Dead {
        node: NodeId::new(name(l)),
        incarnation: Incarnation(1),
        proof: DeathProof::Left,
    };
    c.event(f, proof);
    assert_eq!(
        done(&c, f, 7),
        Some(Err(CallError::LeaderChanged { group: G.into() }))
    );
}

#[test]
fn a_call_the_leader_never_answers_times_out() {
    let (mut c, _, f) = with_a_follower();
    c.input(f, call(7, G, false, Some(ms(200))));
    c.run_for(ms(300));
    assert_eq!(done(&c, f, 7), Some(Err(CallError::Timeout)));
}

#[test]
fn an_any_call_may_be_served_by_a_member_that_does_not_lead() {
    let (mut c, l) = Setup::new(3).elected();
    for id in 0..30 {
        c.input(1, call(id, G, true, None));
    }
    let mut by_followers = 0;
    for i in 0..3 {
        for (_, term, leader) in served(&c, i) {
            assert_eq!(leader, i == l, "n{i} serves as leader only if it leads");
            assert_eq!(term == 0, i != l, "a non-leader serves under no term");
            by_followers += usize::from(i != l);
        }
    }
    assert!(by_followers > 0, "30 any calls all went to the leader");
}

#[test]
fn a_request_for_a_group_this_node_has_no_member_of_is_answered_no_handler() {
    let mut c = Setup::new(3).build();
    let req = request(3, "other", true);
    let actions = c.deliver("n1", 0, Message::Request(req));
    assert_answered(
        &actions,
        "n1",
        3,
        Err(CallError::NoHandler {
            group: "other".into(),
        }),
    );
}

#[test]
fn a_request_that_reaches_a_node_that_does_not_lead_fails_with_leader_changed() {
    let (mut c, _, f) = with_a_follower();
    let req = request(3, G, false);
    let actions = c.deliver("n9", f, Message::Request(req));
    assert_answered(
        &actions,
        "n9",
        3,
        Err(CallError::LeaderChanged { group: G.into() }),
    );
}

#[test]
fn a_shutting_down_node_fails_its_calls_and_refuses_new_ones() {
    let (mut c, _, f) = with_a_follower();
    c.input(f, call(7, G, false, None));
    c.input(f, Input::Shutdown);
    assert_eq!(
        done(&c, f, 7),
        Some(Err(CallError::ShuttingDown)),
        "the waiting call"
    );
    c.input(f, call(8, G, false, None));
    assert_eq!(
        done(&c, f, 8),
        Some(Err(CallError::ShuttingDown)),
        "a new call"
    );
    let req = request(3, G, true);
    let actions = c.deliver("n9", f, Message::Request(req));
    assert_answered(&actions, "n9", 3, Err(CallError::ShuttingDown));
}

#[test]
fn a_client_call_is_answered_with_the_clients_own_request_id() {
    let (mut c, l) = Setup::new(3).elected();
    let req = request(5, G, false);
    c.event(
        l,
        TransportEvent::ClientMessage(envelope("cli", 0, Message::ClientCall(req))),
    );
    let (call, term, _) = served(&c, l).pop().expect("served");
    let actions = c.input(
        l,
        Input::Reply {
            call,
            result: reply(l, term),
        },
    );
    assert_answered(&actions, "cli", 5, reply(l, term));
}

#[test]
fn a_client_call_sent_by_a_peer_is_ignored() {
    let (mut c, l) = Setup::new(3).elected();
    let req = request(5, G, false);
    c.deliver(&name((l + 1) % 3), l, Message::ClientCall(req));
    assert!(served(&c, l).is_empty());
}

#[test]
fn a_status_request_from_a_client_is_answered_with_the_status() {
    let (mut c, l) = Setup::new(3).elected();
    let actions = c.event(
        l,
        TransportEvent::ClientMessage(envelope("cli", 0, Message::StatusRequest)),
    );
    let status = c.engines[l].status(c.now);
    let want = Action::Send {
        to: NodeId::new("cli"),
        message: Message::StatusResponse(status),
    };
    assert!(actions.contains(&want), "{actions:?}");
}
