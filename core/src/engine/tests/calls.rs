//! The calls table: every call waiting or in flight has a key the engine gives it, whoever made
//! it — so a local call and a client's call, or two calls a caller made under one id, never
//! take each other's answer — and only the node a call was sent to can answer it.

use super::harness::{Cluster, G, Setup, envelope, ms, name};
use super::routing::{call, done, reply, request, served};
use crate::engine::{Action, CallRef, Event, Input, defaults};
use crate::message::{CallError, ControlOp, ControlRequest, Message, Response};
use crate::transport::TransportEvent;
use crate::types::{GroupName, NodeId};
use std::time::Duration;

/// The id the engine gave its first client call while local and client calls shared one id
/// space (`1 << 63 | 1`): a local call made under it lost its entry to that client call.
const FIRST_CLIENT_ID_BEFORE: u64 = 1 << 63 | 1;

/// Client `cli` asks node `i` to route a call for the leader of [`G`] under its id `id`.
fn client_call(c: &mut Cluster, i: usize, id: u64) {
    client_call_to(c, i, id, G);
}

/// Client `cli` asks node `i` to route a call for the leader of `group` under its id `id`.
fn client_call_to(c: &mut Cluster, i: usize, id: u64, group: &str) {
    let msg = Message::ClientCall(request(id, group, false));
    c.event(i, TransportEvent::ClientMessage(envelope("cli", 0, msg)));
}

/// Client `cli` asks node `i` to have the leader of `group` step down, under its id `id`.
fn client_step_down(c: &mut Cluster, i: usize, id: u64, group: &str) {
    let msg = Message::ClientControl(ControlRequest {
        id,
        group: group.into(),
        op: ControlOp::StepDown,
    });
    c.event(i, TransportEvent::ClientMessage(envelope("cli", 0, msg)));
}

/// The client calls node `i` reported answered: (client, group, error, elapsed).
type ClientCallDone = (NodeId, GroupName, Option<CallError>, Duration);
fn client_calls_done(c: &Cluster, i: usize) -> Vec<ClientCallDone> {
    c.log[i]
        .iter()
        .filter_map(|a| match a {
            Action::Event(Event::ClientCallDone {
                client,
                group,
                error,
                elapsed,
            }) => Some((client.clone(), group.clone(), error.clone(), *elapsed)),
            _ => None,
        })
        .collect()
}

/// The messages node `i` sent to client `cli` so far (a batch's one by one: answers made in
/// one input travel together).
fn sent_to_client(c: &Cluster, i: usize) -> impl Iterator<Item = &Message> {
    c.log[i]
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, message } if to.as_str() == "cli" => Some(message.parts()),
            _ => None,
        })
        .flatten()
}

/// The responses node `i` sent to client `cli` so far.
fn answers_to_client(c: &Cluster, i: usize) -> Vec<Response> {
    sent_to_client(c, i)
        .filter_map(|m| match m {
            Message::Response(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// How many of node `i`'s calls under id `id` ended.
fn done_count(c: &Cluster, i: usize, id: u64) -> usize {
    c.log[i]
        .iter()
        .filter(|a| matches!(a, Action::CallDone { id: d, .. } if *d == id))
        .count()
}

/// The calls node `i` served, in order.
fn served_calls(c: &Cluster, i: usize) -> Vec<CallRef> {
    served(c, i).into_iter().map(|(call, _, _)| call).collect()
}

fn answer(c: &mut Cluster, l: usize, call: &CallRef) {
    let term = c.engines[l].term(G);
    c.input(
        l,
        Input::Reply {
            call: call.clone(),
            result: reply(l, term),
        },
    );
}

#[test]
fn a_local_call_and_a_client_call_under_one_id_are_two_calls_at_the_leader() {
    let (mut c, l) = Setup::new(3).elected();
    let term = c.engines[l].term(G);
    c.input(l, call(FIRST_CLIENT_ID_BEFORE, G, false, None));
    client_call(&mut c, l, FIRST_CLIENT_ID_BEFORE);
    let calls = served_calls(&c, l);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_ne!(calls[0], calls[1], "two calls, two keys");
    answer(&mut c, l, &calls[1]);
    let want = Response {
        id: FIRST_CLIENT_ID_BEFORE,
        result: reply(l, term),
    };
    assert_eq!(answers_to_client(&c, l), vec![want]);
    assert_eq!(
        done(&c, l, FIRST_CLIENT_ID_BEFORE),
        None,
        "the client's answer does not end the local call"
    );
    answer(&mut c, l, &calls[0]);
    assert_eq!(done(&c, l, FIRST_CLIENT_ID_BEFORE), Some(reply(l, term)));
    assert_eq!(answers_to_client(&c, l).len(), 1, "nor the reverse");
}

#[test]
fn a_local_call_and_a_client_call_routed_from_one_node_carry_distinct_request_ids() {
    let (mut c, l) = Setup::new(3).elected();
    let f = (l + 1) % 3;
    c.input(f, call(FIRST_CLIENT_ID_BEFORE, G, false, None));
    client_call(&mut c, f, FIRST_CLIENT_ID_BEFORE);
    let calls = served_calls(&c, l);
    let ids: Vec<u64> = calls
        .iter()
        .map(|call| match call {
            CallRef::Remote { from, id } if *from == NodeId::new(name(f)) => *id,
            other => panic!("not a request from n{f}: {other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "two requests on the wire, two ids");
    answer(&mut c, l, &calls[1]);
    assert_eq!(answers_to_client(&c, f).len(), 1);
    assert_eq!(done(&c, f, FIRST_CLIENT_ID_BEFORE), None);
    answer(&mut c, l, &calls[0]);
    assert!(done(&c, f, FIRST_CLIENT_ID_BEFORE).is_some());
    assert_eq!(answers_to_client(&c, f).len(), 1);
}

#[test]
fn two_calls_a_caller_made_under_one_id_are_each_answered() {
    let (mut c, l) = Setup::new(3).elected();
    c.input(l, call(7, G, false, None));
    c.input(l, call(7, G, false, None));
    let calls = served_calls(&c, l);
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0], calls[1]);
    answer(&mut c, l, &calls[0]);
    answer(&mut c, l, &calls[1]);
    assert_eq!(done_count(&c, l, 7), 2);
}

#[test]
fn a_response_from_a_peer_the_call_was_not_sent_to_is_ignored() {
    let (mut c, l) = Setup::new(3).elected();
    let (f, other) = ((l + 1) % 3, (l + 2) % 3);
    c.input(f, call(7, G, false, None));
    let calls = served_calls(&c, l);
    let [CallRef::Remote { id, .. }] = calls.as_slice() else {
        panic!("one request from n{f}: {calls:?}");
    };
    let forged = Response {
        id: *id,
        result: Err(CallError::Handler("not the leader's answer".into())),
    };
    c.deliver(&name(other), f, Message::Response(forged));
    assert_eq!(done(&c, f, 7), None, "n{other} was not asked");
    answer(&mut c, l, &calls[0]);
    let term = c.engines[l].term(G);
    assert_eq!(done(&c, f, 7), Some(reply(l, term)));
}

#[test]
fn a_client_call_answered_is_reported_once_by_the_node_it_entered_with_its_latency() {
    let (mut c, l) = Setup::new(3).elected();
    let f = (l + 1) % 3;
    client_call(&mut c, f, 5);
    // A call made on the node, and a client's control request: neither is a client call.
    c.input(f, call(6, G, false, None));
    let calls = served_calls(&c, l);
    assert_eq!(calls.len(), 2, "{calls:?}");
    c.run_for(ms(30));
    answer(&mut c, l, &calls[0]);
    answer(&mut c, l, &calls[1]);
    client_step_down(&mut c, f, 7, G);
    c.run_for(ms(50));
    assert!(
        sent_to_client(&c, f).any(|m| matches!(m, Message::ControlResponse(r) if r.id == 7)),
        "the control request was answered"
    );
    assert_eq!(answers_to_client(&c, f).len(), 1);
    assert_eq!(
        done_count(&c, f, 6),
        1,
        "the local call ends once, as before"
    );
    let reported = client_calls_done(&c, f);
    let [(client, group, error, elapsed)] = reported.as_slice() else {
        panic!("one client call reported by n{f}: {reported:?}");
    };
    assert_eq!((client.as_str(), group.as_str()), ("cli", G));
    assert_eq!(*error, None, "served");
    // From the call reaching the engine to its answer, on the test clock.
    assert_eq!(*elapsed, ms(30));
    for i in [l, (l + 2) % 3] {
        assert_eq!(
            client_calls_done(&c, i),
            vec![],
            "n{i} served or saw nothing of it: only n{f}, where it entered, reports it"
        );
    }
}

#[test]
fn a_client_call_that_finds_no_leader_is_reported_with_its_error_at_its_deadline() {
    let (mut c, l) = Setup::new(3).elected();
    let f = (l + 1) % 3;
    // A group nobody joined: no leader, ever.
    client_call_to(&mut c, f, 5, "nobody");
    client_step_down(&mut c, f, 6, "nobody");
    c.run_for(defaults::CALL_TIMEOUT - ms(10));
    assert_eq!(
        client_calls_done(&c, f),
        vec![],
        "it waits until its deadline"
    );
    c.run_for(ms(20));
    let want = CallError::NoLeader {
        group: "nobody".into(),
    };
    assert_eq!(
        client_calls_done(&c, f),
        vec![(
            NodeId::new("cli"),
            GroupName::from("nobody"),
            Some(want.clone()),
            defaults::CALL_TIMEOUT
        )],
        "the call, not the control request that failed with it"
    );
    let answers = answers_to_client(&c, f);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].result, Err(want));
    assert!(
        sent_to_client(&c, f).any(|m| matches!(m, Message::ControlResponse(r) if r.id == 6)),
        "the control request failed at the same deadline"
    );
}

#[test]
fn a_client_call_a_shutting_down_node_refuses_is_reported_too() {
    let (mut c, l) = Setup::new(3).elected();
    c.input(l, Input::Shutdown);
    client_call(&mut c, l, 5);
    assert_eq!(
        client_calls_done(&c, l),
        vec![(
            NodeId::new("cli"),
            GroupName::from(G),
            Some(CallError::ShuttingDown),
            Duration::ZERO
        )]
    );
}

#[test]
fn a_client_call_the_node_it_entered_serves_itself_is_reported_once() {
    let (mut c, l) = Setup::new(3).elected();
    client_call(&mut c, l, 5);
    let calls = served_calls(&c, l);
    assert!(matches!(calls.as_slice(), [CallRef::Local(_)]), "{calls:?}");
    c.run_for(ms(10));
    answer(&mut c, l, &calls[0]);
    assert_eq!(
        client_calls_done(&c, l),
        vec![(NodeId::new("cli"), GroupName::from(G), None, ms(10))]
    );
}
