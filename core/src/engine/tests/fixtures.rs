//! Hand-made inputs and messages for the rule tests, and readers of what engines answer.

use super::harness::{G, name};
use crate::engine::{Action, Input};
use crate::message::{Message, VoteRequest, VoteResponse};
use crate::transport::{CloseKind, Envelope, Fingerprint, TransportEvent};
use crate::types::{Incarnation, Labels, MemberId, NodeId, Term};

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

pub(crate) fn join(started_at_ms: u64) -> Input {
    Input::Join {
        group: G.into(),
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
