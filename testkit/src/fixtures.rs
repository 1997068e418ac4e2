//! Fixtures shared by tests: one valid example of every peer message.

use baton_core::engine::{NodeStatus, StatusSnapshot};
use baton_core::message::{
    Claim, Handoff, Heartbeat, HeartbeatAck, MemberAnnounce, PeerAddr, Request, Resignation,
    Response, StepDown, VoteRequest, VoteResponse,
};
use baton_core::{CallError, Hardware, Incarnation, Leadership, MemberId, Message, NodeId, Served};

/// One valid example of every message variant (to send through a transport, to mutate from).
pub fn every_message() -> Vec<Message> {
    let m = MemberId::new("a", 1);
    vec![
        Message::Heartbeat(Heartbeat {
            seq: 1,
            version: 1,
            state: Some(baton_core::message::NodeState {
                addr: "127.0.0.1:7101".into(),
                hardware: Hardware {
                    cpus: 4,
                    memory_bytes: 1 << 30,
                    weight: Some(2.5),
                },
                labels: [("zone".to_string(), "eu-1".to_string())].into(),
                members: vec![MemberAnnounce {
                    id: m.clone(),
                    group: "g".into(),
                    started_at_ms: 123,
                    labels: Default::default(),
                    healthy: true,
                    version: None,
                }],
                claims: vec![Claim {
                    group: "g".into(),
                    term: 3,
                    member: m.clone(),
                }],
            }),
            peers: vec![PeerAddr {
                node: NodeId::new("b"),
                addr: "127.0.0.1:7102".into(),
            }],
        }),
        Message::HeartbeatAck(HeartbeatAck {
            seq: 1,
            rejected: vec![("g".into(), 9)],
            version: 1,
        }),
        Message::VoteRequest(VoteRequest {
            group: "g".into(),
            term: 4,
            candidate: m.clone(),
            handoff: Some(Handoff {
                from: MemberId::new("b", 2),
                term: 3,
            }),
            pre: false,
            dead: vec![(
                NodeId::new("c"),
                Incarnation(4),
                baton_core::DeathProof::RefusedAfterOrderlyClose,
            )],
        }),
        Message::VoteResponse(VoteResponse {
            group: "g".into(),
            term: 4,
            pre: true,
            granted: true,
            known_term: 4,
            retry_in_ms: 120,
        }),
        Message::StepDown(StepDown {
            group: "g".into(),
            term: 4,
            from: m.clone(),
            successor: Some(MemberId::new("b", 1)),
            why: Resignation::Requested,
        }),
        Message::Request(Request {
            id: 7,
            group: "g".into(),
            any: false,
            payload: vec![0, 1, 2, 255],
        }),
        Message::Response(Response {
            id: 7,
            result: Ok(Served {
                member: m.clone(),
                term: 4,
                leader: true,
                payload: b"done".to_vec(),
            }),
        }),
        Message::Response(Response {
            id: 8,
            result: Err(CallError::LeaderChanged { group: "g".into() }),
        }),
        Message::Leave,
        Message::StatusRequest,
        Message::StatusResponse(StatusSnapshot {
            node: NodeId::new("a"),
            members: vec![NodeStatus {
                name: NodeId::new("b"),
                addr: Some("127.0.0.1:2".into()),
                incarnation: Incarnation(3),
                alive: true,
                groups: vec!["g".into()],
                version: None,
            }],
            groups: vec![Leadership {
                group: "g".into(),
                leader: Some(m),
                term: 4,
                is_me: false,
            }],
            no_leader: vec![],
            rankings: vec![],
            unhealthy: vec![],
            lease_renewals: vec![],
        }),
        Message::ClientCall(Request {
            id: 9,
            group: "g".into(),
            any: true,
            payload: vec![42],
        }),
        Message::Batch(vec![
            Message::HeartbeatAck(HeartbeatAck {
                seq: 10,
                rejected: vec![],
                version: 1,
            }),
            Message::StepDown(StepDown {
                group: "g".into(),
                term: 5,
                from: MemberId::new("a", 1),
                successor: None,
                why: Resignation::LeaseLost,
            }),
        ]),
    ]
}

/// A periodic heartbeat numbered `seq` of state version 1 that carries nothing else (no state,
/// no peers): for tests of what a transport queues, coalesces and delivers.
pub fn bare_heartbeat(seq: u64) -> Message {
    Message::Heartbeat(Heartbeat {
        seq,
        version: 1,
        state: None,
        peers: vec![],
    })
}

/// A vote request numbered by its `term` (group `g{term % 200}`, a pre-vote on even terms):
/// for tests that check every one arrives, in order.
pub fn numbered_vote(term: u64) -> Message {
    Message::VoteRequest(VoteRequest {
        group: format!("g{}", term % 200).into(),
        term,
        candidate: MemberId::new("a", 1),
        handoff: None,
        pre: term.is_multiple_of(2),
        dead: vec![],
    })
}
