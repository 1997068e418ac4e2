//! Durable state: a vote is stored before it is sent, a raised term is stored, and a restarted
//! node honours what it stored (and abstains anyway: its promises were not on disk).

use super::harness::{G, ms, vote_request, vote_responses};
use super::probe::Probe;
use crate::engine::{Action, EngineConfig, PersistedState, Quorum};
use crate::message::Message;
use crate::types::{MemberId, NodeId, Term};

/// A stored state: `term` and `vote` for [`G`].
fn stored(term: Term, vote: Option<(Term, &str)>) -> PersistedState {
    let vote = vote.map(|(t, n)| (t, MemberId::new(n, 0)));
    serde_json::from_value(serde_json::json!({ "groups": { G: { "term": term, "vote": vote } } }))
        .expect("a persisted state")
}

/// The voter probe restarted from `state`.
fn restarted(state: PersistedState) -> Probe {
    let quorum = Quorum::Majority(["n0", "n1", "n2"].into_iter().map(NodeId::new).collect());
    Probe::with(
        EngineConfig::new("n1", 2, quorum),
        Some(state),
        &["n0", "n2"],
    )
}

/// The vote stored for [`G`] by the `Persist` actions among `actions`, in order.
fn stored_votes(actions: &[Action]) -> Vec<Option<(Term, MemberId)>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Persist(p) => Some(p.groups.get(G).and_then(|g| g.vote.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_vote_is_persisted_before_it_is_sent() {
    let mut p = Probe::voter();
    p.advance(ms(600));
    let actions = p.from("n0", Message::VoteRequest(vote_request("n0", 3, false)));
    let persisted = actions.iter().position(|a| {
        matches!(a, Action::Persist(s) if s.groups.get(G).is_some_and(|g| g.vote == Some((3, MemberId::new("n0", 0)))))
    });
    let answered = actions.iter().position(
        |a| matches!(a, Action::Send { message: Message::VoteResponse(r), .. } if r.granted),
    );
    assert!(
        matches!((persisted, answered), (Some(p), Some(a)) if p < a),
        "{actions:?}"
    );
}

#[test]
fn a_pre_vote_or_a_denied_vote_persists_nothing() {
    let mut p = Probe::voter();
    p.advance(ms(600));
    let pre = p.from("n0", Message::VoteRequest(vote_request("n0", 3, true)));
    assert!(vote_responses(&pre)[0].1.granted);
    assert!(stored_votes(&pre).is_empty(), "{pre:?}");
    let denied = p.from("n9", Message::VoteRequest(vote_request("n9", 3, false)));
    assert!(!vote_responses(&denied)[0].1.granted);
    assert!(stored_votes(&denied).is_empty(), "{denied:?}");
}

#[test]
fn a_term_raised_by_a_claim_is_persisted() {
    let mut p = Probe::voter();
    p.advance(ms(600));
    let before = p.out.len();
    p.claim("n0", Some(5));
    let terms: Vec<Term> = p.out[before..]
        .iter()
        .filter_map(|a| match a {
            Action::Persist(s) => s.groups.get(G).map(|g| g.term),
            _ => None,
        })
        .collect();
    assert_eq!(terms, vec![5]);
}

#[test]
fn a_won_term_is_persisted() {
    let mut p = Probe::voter();
    let term = p.elect_me();
    let durable = p.out.iter().any(|a| match a {
        Action::Persist(s) => s.groups.get(G).is_some_and(|g| {
            g.term == term
                || g.vote
                    .as_ref()
                    .is_some_and(|(t, m)| *t == term && m.node.as_str() == "n1")
        }),
        _ => false,
    });
    assert!(durable, "term {term} is not on disk: {:?}", p.out);
}

#[test]
fn a_restored_vote_is_honoured_after_a_restart() {
    let mut p = restarted(stored(0, Some((3, "n0"))));
    p.advance(ms(600));
    assert!(
        !p.grants("n2", 3, false),
        "it voted for n0 in term 3 before the restart"
    );
    assert!(p.grants("n0", 3, false), "the same vote again");
    let mut p = restarted(stored(0, Some((3, "n0"))));
    p.advance(ms(600));
    assert!(p.grants("n2", 4, false), "a later term is a new vote");
}

#[test]
fn a_restored_term_puts_new_campaigns_above_it() {
    let mut p = restarted(stored(7, None));
    assert_eq!(p.engine.term(G), 7);
    let term = p.elect_me();
    assert!(term > 7, "won term {term}");
}

#[test]
fn a_restarted_voter_abstains_even_with_its_state_restored() {
    let mut p = restarted(stored(2, Some((2, "n0"))));
    p.advance(ms(400));
    assert!(!p.grants("n0", 3, false), "its promises were not on disk");
    p.advance(ms(200));
    assert!(p.grants("n0", 3, false));
}
