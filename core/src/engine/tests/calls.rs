//! The calls table: every call waiting or in flight has a key the engine gives it, whoever made
//! it — so a local call and a client's call, or two calls a caller made under one id, never
//! take each other's answer — and only the node a call was sent to can answer it.

use super::harness::{Cluster, G, Setup, envelope, name};
use super::routing::{call, done, reply, request, served};
use crate::engine::{Action, CallRef, Input};
use crate::message::{CallError, Message, Response};
use crate::transport::TransportEvent;
use crate::types::NodeId;

/// The id the engine gave its first client call while local and client calls shared one id
/// space (`1 << 63 | 1`): a local call made under it lost its entry to that client call.
const FIRST_CLIENT_ID_BEFORE: u64 = 1 << 63 | 1;

/// Client `cli` asks node `i` to route a call for the leader of [`G`] under its id `id`.
fn client_call(c: &mut Cluster, i: usize, id: u64) {
    let msg = Message::ClientCall(request(id, G, false));
    c.event(i, TransportEvent::ClientMessage(envelope("cli", 0, msg)));
}

/// The responses node `i` sent to client `cli` so far.
fn answers_to_client(c: &Cluster, i: usize) -> Vec<Response> {
    c.log[i]
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                message: Message::Response(r),
            } if to.as_str() == "cli" => Some(r.clone()),
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
