//! Hand-made inputs and messages for the rule tests, and readers of what engines answer.

use super::harness::G;
use crate::engine::{Action, Input};
use crate::message::{
    Claim, Heartbeat, HeartbeatAck, Message, NodeState, StepDown, VoteRequest, VoteResponse,
};
use crate::transport::{CloseKind, Envelope, Fingerprint, TransportEvent};
use crate::types::{GroupName, Incarnation, Labels, MemberId, NodeId, Term};
use std::time::Duration;

/// Node `i`'s name: `n{i}`.
pub(crate) fn name(i: usize) -> String {
    format!("n{i}")
}

/// Node `i`'s member of [`G`] (each node joins once, so its sequence number is 0).
pub(crate) fn member(i: usize) -> MemberId {
    MemberId::new(name(i), 0)
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The other nodes of `0..n`.
pub(crate) fn others(n: usize, i: usize) -> Vec<usize> {
    (0..n).filter(|j| *j != i).collect()
}

/// The two nodes of a three-node cluster other than `i`.
pub(crate) fn the_other_two(i: usize) -> [usize; 2] {
    [(i + 1) % 3, (i + 2) % 3]
}

/// A message from `from` (of `incarnation`).
pub(crate) fn envelope(
    from: &str,
    incarnation: impl Into<Incarnation>,
    message: Message,
) -> Envelope {
    Envelope {
        from: NodeId::new(from),
        incarnation: incarnation.into(),
        message,
    }
}

/// A join of [`G`] by a member started at `started_at_ms`.
pub(crate) fn join(started_at_ms: u64) -> Input {
    join_group(G.into(), started_at_ms)
}

/// A join of `group` by a member started at `started_at_ms`.
pub(crate) fn join_group(group: GroupName, started_at_ms: u64) -> Input {
    Input::Join {
        group,
        labels: Labels::new(),
        started_at_ms,
    }
}

pub(crate) fn connected(j: usize, incarnation: impl Into<Incarnation>) -> TransportEvent {
    TransportEvent::Connected {
        node: NodeId::new(name(j)),
        incarnation: incarnation.into(),
        addr: name(j),
    }
}

/// `from`'s heartbeat number `seq`, carrying its state of version `seq`: no member, no
/// peer, and a claim of [`G`] in `claim`'s term for `from`'s member 0, if any.
pub(crate) fn heartbeat(from: &str, seq: u64, claim: Option<Term>) -> Heartbeat {
    Heartbeat {
        seq,
        version: seq,
        state: Some(NodeState {
            addr: from.into(),
            hardware: Default::default(),
            labels: Default::default(),
            members: vec![],
            claims: claim
                .map(|term| Claim {
                    group: G.into(),
                    term,
                    member: MemberId::new(from, 0),
                })
                .into_iter()
                .collect(),
        }),
        peers: vec![],
    }
}

/// An ack of heartbeat `seq`, holding the sender's state of `version`, rejecting no claim.
pub(crate) fn ack(seq: u64, version: u64) -> Message {
    Message::HeartbeatAck(HeartbeatAck {
        seq,
        rejected: vec![],
        version,
    })
}

/// A (pre-)vote request of `candidate`'s member 0 in [`G`].
pub(crate) fn vote_request(candidate: &str, term: Term, pre: bool) -> VoteRequest {
    VoteRequest {
        group: G.into(),
        term,
        candidate: MemberId::new(candidate, 0),
        handoff: None,
        pre,
        dead: vec![],
    }
}

/// The messages among `actions` that `pick` keeps, with whom each goes to.
fn sent<T>(actions: &[Action], pick: impl Fn(&Message) -> Option<&T>) -> Vec<(NodeId, T)>
where
    T: Clone,
{
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, message } => Some((to, message)),
            _ => None,
        })
        .flat_map(|(to, message)| message.parts().iter().map(move |m| (to, m)))
        .filter_map(|(to, m)| pick(m).map(|m| (to.clone(), m.clone())))
        .collect()
}

/// The vote answers among `actions`.
pub(crate) fn vote_responses(actions: &[Action]) -> Vec<(NodeId, VoteResponse)> {
    sent(actions, |m| match m {
        Message::VoteResponse(r) => Some(r),
        _ => None,
    })
}

/// The `StepDown`s among `actions`.
pub(crate) fn step_downs(actions: &[Action]) -> Vec<StepDown> {
    let sds = sent(actions, |m| match m {
        Message::StepDown(sd) => Some(sd),
        _ => None,
    });
    sds.into_iter().map(|(_, sd)| sd).collect()
}

/// The vote requests among `actions`.
pub(crate) fn vote_requests(actions: &[Action]) -> Vec<(NodeId, VoteRequest)> {
    sent(actions, |m| match m {
        Message::VoteRequest(r) => Some(r),
        _ => None,
    })
}

/// A peer at a made-up address runs another configuration: voters `theirs` instead of `ours`.
pub(crate) fn mismatch(ours: &[&str], theirs: &[&str]) -> TransportEvent {
    let fp = |v: &[&str]| Fingerprint {
        voters: v.iter().map(|v| NodeId::new(*v)).collect(),
        ..Fingerprint::default()
    };
    let theirs = fp(theirs);
    let mismatch = fp(ours).mismatch(&theirs).expect("they differ");
    TransportEvent::Mismatch {
        addr: "10.0.0.9:7101".into(),
        mismatch,
        theirs,
    }
}

/// The transport saw the connection to node `j` reset (no proof of anything).
pub(crate) fn reset(j: usize) -> TransportEvent {
    TransportEvent::Disconnected {
        node: NodeId::new(name(j)),
        how: CloseKind::Abrupt,
    }
}
