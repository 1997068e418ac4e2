//! The sans-IO engine answering clients (`baton status`, `baton work`) without counting them
//! as peers.

use baton_core::engine::{Action, CallRef, Engine, EngineConfig, Input, Quorum};
use baton_core::message::Request;
use baton_core::{ByMemberId, Envelope, Message, NodeId, Served, TransportEvent};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn solo_leader() -> (Engine, Instant) {
    let t0 = Instant::now();
    let cfg = EngineConfig::new("a", 1, Quorum::Majority([NodeId::new("a")].into()));
    let mut e = Engine::new(cfg, Arc::new(ByMemberId), BTreeMap::new(), None, t0);
    e.handle(
        t0,
        Input::Join {
            group: "g".into(),
            labels: Default::default(),
            started_at_ms: 1,
        },
    );
    let mut now = t0;
    for _ in 0..100 {
        now += Duration::from_millis(20);
        e.handle(now, Input::Tick);
        if e.is_acting_leader("g", now) {
            return (e, now);
        }
    }
    panic!("a single voter must lead itself");
}

fn client(message: Message) -> Input {
    Input::Transport(TransportEvent::ClientMessage(Envelope {
        from: NodeId::new("cli-1"),
        incarnation: baton_core::Incarnation(9),
        message,
    }))
}

/// The messages among `actions` sent to the client `cli-1`.
fn to_client(actions: &[Action]) -> impl Iterator<Item = &Message> {
    actions.iter().filter_map(|a| match a {
        Action::Send { to, message } if to.as_str() == "cli-1" => Some(message),
        _ => None,
    })
}

#[test]
fn status_request_is_answered_and_the_client_is_not_a_peer() {
    let (mut e, now) = solo_leader();
    let actions = e.handle(now, client(Message::StatusRequest));
    let status = to_client(&actions)
        .find_map(|m| match m {
            Message::StatusResponse(s) => Some(s.clone()),
            _ => None,
        })
        .expect("a status response to the client");
    assert_eq!(status.node.as_str(), "a");
    assert_eq!(status.groups[0].leader.as_ref().unwrap().node.as_str(), "a");
    assert!(status.members.iter().all(|m| m.name.as_str() != "cli-1"));
    let again = e.status(now);
    assert!(again.members.iter().all(|m| m.name.as_str() != "cli-1"));
}

#[test]
fn client_call_is_served_by_the_leader_and_answered_with_the_clients_id() {
    let (mut e, now) = solo_leader();
    let actions = e.handle(
        now,
        client(Message::ClientCall(Request {
            id: 77,
            group: "g".into(),
            any: false,
            payload: b"hi".to_vec(),
        })),
    );
    let (call, term) = actions
        .iter()
        .find_map(|a| match a {
            Action::Serve {
                call,
                term,
                leader: true,
                payload,
                ..
            } if payload == b"hi" => Some((call.clone(), *term)),
            _ => None,
        })
        .expect("served locally by the leader");
    assert!(matches!(call, CallRef::Local(_)), "{call:?}");
    let served = Served {
        member: e.local_member("g").unwrap().clone(),
        term,
        leader: true,
        payload: b"ok".to_vec(),
    };
    let actions = e.handle(
        now,
        Input::Reply {
            call,
            result: Ok(served.clone()),
        },
    );
    let resp = to_client(&actions)
        .find_map(|m| match m {
            Message::Response(r) => Some(r.clone()),
            _ => None,
        })
        .expect("the response goes to the client");
    assert_eq!(resp.id, 77);
    assert_eq!(resp.result, Ok(served));
    assert!(!actions.iter().any(|a| matches!(a, Action::CallDone { .. })));
}

#[test]
fn a_peer_cannot_pose_as_a_client() {
    let (mut e, now) = solo_leader();
    let actions = e.handle(
        now,
        Input::Transport(TransportEvent::Message(Envelope {
            from: NodeId::new("b"),
            incarnation: baton_core::Incarnation(3),
            message: Message::StatusRequest,
        })),
    );
    assert!(!actions.iter().any(|a| matches!(
        a,
        Action::Send {
            message: Message::StatusResponse(_),
            ..
        }
    )));
}
