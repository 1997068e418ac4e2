//! The voter side: one test per reason a voter denies a (pre-)vote, and the grants that
//! show each denial is for that reason alone. The voter is `n1` of voters `n0`, `n1`, `n2`;
//! `n0` (the favourite) and `n2` are fake peers the test speaks for.

use super::harness::{G, Setup, envelope, mismatch, ms, vote_request, vote_responses};
use super::probe::Probe;
use crate::engine::{Action, Input};
use crate::message::{Message, VoteRequest};
use crate::transport::{DeathProof, DeathProofMode, TransportEvent};
use crate::types::Incarnation;
use crate::types::{MemberId, NodeId, Term};

/// Past the voter's restart abstention (one failure timeout).
const SETTLED: std::time::Duration = std::time::Duration::from_millis(600);

#[test]
fn a_voter_grants_the_favourite_once_its_restart_abstention_is_over() {
    let mut p = Probe::voter();
    p.advance(SETTLED);
    assert!(p.grants("n0", 1, true), "pre-vote");
    assert!(p.grants("n0", 1, false), "vote");
}

#[test]
fn a_voter_abstains_for_one_failure_timeout_after_it_starts() {
    let mut p = Probe::voter();
    p.advance(ms(400));
    assert!(!p.grants("n0", 1, true));
    assert!(!p.grants("n0", 1, false));
    p.advance(ms(150));
    assert!(
        p.grants("n0", 1, false),
        "granted once the failure timeout has passed"
    );
}

#[test]
fn a_node_that_is_not_a_voter_grants_no_vote() {
    let mut p = Probe::new("n3", &["n0", "n1", "n2"], &["n0", "n1"]);
    p.advance(SETTLED);
    assert!(!p.grants("n0", 1, true));
    assert!(!p.grants("n0", 1, false));
}

#[test]
fn a_voter_denies_a_candidate_with_a_stale_term() {
    let mut p = Probe::voter();
    p.advance(SETTLED);
    p.claim("n0", Some(5));
    let r = p.ask("n0", vote_request("n0", 4, false));
    assert!(!r.granted, "below the known term");
    assert_eq!(r.known_term, 5, "and the voter says which term it knows");
    assert!(
        !p.grants("n0", 5, false),
        "the known term itself is not above it"
    );
    assert!(p.grants("n0", 6, false), "a term above it is");
}

#[test]
fn a_voter_denies_a_second_candidate_in_a_term_it_already_voted_in() {
    let mut p = Probe::voter();
    p.advance(SETTLED);
    assert!(p.grants("n0", 3, false));
    // Let the promise to n0 run out: what remains is the vote itself.
    p.advance(SETTLED);
    let r = p.ask("n2", vote_request("n2", 3, false));
    assert!(!r.granted, "one vote per term");
    assert_eq!(r.known_term, 3);
    assert!(!p.grants("n0", 2, false), "nor a vote in an earlier term");
    assert!(p.grants("n2", 4, false), "a later term is a new vote");
}

#[test]
fn a_voter_repeats_its_grant_to_the_same_candidate_in_the_same_term() {
    let mut p = Probe::voter();
    p.advance(SETTLED);
    assert!(p.grants("n0", 3, false));
    // n0 won and claims term 3; its request arrives again (a retransmission).
    p.claim("n0", Some(3));
    assert!(p.grants("n0", 3, false), "the same answer again");
    assert!(!p.grants("n2", 3, false), "but no one else's");
}

#[test]
fn a_voter_that_promised_its_vote_denies_another_candidate_until_the_promise_ends() {
    let mut p = Probe::voter();
    p.advance(SETTLED);
    assert!(p.grants("n0", 3, false));
    p.advance(ms(100));
    assert!(
        !p.grants("n2", 4, true),
        "n0 may lead on this vote for a failure timeout"
    );
    assert!(!p.grants("n2", 4, false));
    p.advance(ms(450));
    assert!(p.grants("n2", 4, false), "the promise has run out");
}

#[test]
fn a_voter_denies_a_candidate_while_a_live_leader_holds_a_lease() {
    let mut p = Probe::voter();
    p.advance(SETTLED);
    p.claim("n0", Some(2));
    assert!(!p.grants("n2", 3, true));
    assert!(!p.grants("n2", 3, false));
    p.advance(ms(1000));
    assert!(
        !p.grants("n2", 3, false),
        "a leader that keeps claiming keeps it"
    );
    // n0 goes silent: its claim lapses one failure timeout after its last heartbeat.
    p.silence("n0");
    p.advance(ms(450));
    assert!(!p.grants("n2", 3, false), "not before the claim lapsed");
    p.advance(ms(100));
    assert!(p.grants("n2", 3, false));
}

#[test]
fn a_voter_denies_a_candidate_it_does_not_know() {
    let mut p = Probe::voter();
    p.advance(SETTLED);
    let mut req = vote_request("n2", 1, true);
    req.candidate = MemberId::new("n2", 7);
    assert!(!p.ask("n2", req).granted, "a member n2 never announced");
    assert!(!p.grants("n9", 1, true), "a node nobody announced");
    assert!(p.grants("n2", 1, true), "n2's announced member is known");
}

#[test]
fn a_voter_denies_a_lower_ranked_candidate_until_the_better_ones_had_their_backoff() {
    let mut p = Probe::voter();
    // The abstention ends now; time spent abstaining does not count as waiting.
    p.advance(ms(500));
    assert!(!p.grants("n2", 1, true), "rank 1 waits one backoff (50 ms)");
    assert!(p.grants("n0", 1, true), "the favourite does not wait");
    p.advance(ms(60));
    assert!(
        p.grants("n2", 1, true),
        "one backoff later rank 1 may campaign"
    );
}

#[test]
fn a_leader_denies_votes_to_other_candidates_while_it_leads() {
    let mut p = Probe::voter();
    let term = p.elect_me();
    assert!(p.engine.is_acting_leader(G, p.now));
    assert!(!p.grants("n0", term + 1, true));
    assert!(!p.grants("n0", term + 1, false));
}

#[test]
fn a_node_standing_aside_grants_no_vote() {
    let mut p = Probe::voter();
    p.advance(SETTLED);
    assert!(p.grants("n0", 9, true));
    // n3, n4, n5 (nodes unknown here) are all the voters of another configuration.
    p.handle(Input::Transport(mismatch(
        &["n0", "n1", "n2"],
        &["n3", "n4", "n5"],
    )));
    assert!(!p.grants("n0", 9, true));
    assert!(!p.grants("n0", 9, false));
}

#[test]
fn a_pre_vote_grant_changes_no_state() {
    let mut p = Probe::voter();
    p.advance(SETTLED);
    let before = p.out.len();
    assert!(p.grants("n0", 3, true));
    assert!(
        !p.out[before..]
            .iter()
            .any(|a| matches!(a, Action::Persist(_))),
        "nothing to store: {:?}",
        &p.out[before..]
    );
    assert!(
        p.grants("n2", 3, false),
        "no vote given and no promise made"
    );
}

#[test]
fn a_shutting_down_voter_grants_no_vote() {
    let mut p = Probe::voter();
    p.advance(SETTLED);
    p.handle(Input::Shutdown);
    assert!(!p.grants("n0", 1, true));
    assert!(!p.grants("n0", 1, false));
}

#[test]
fn a_vote_request_with_a_term_that_cannot_grow_gets_no_answer() {
    let mut p = Probe::voter();
    p.advance(SETTLED);
    let actions = p.from(
        "n0",
        Message::VoteRequest(vote_request("n0", Term::MAX, false)),
    );
    assert!(vote_responses(&actions).is_empty(), "{actions:?}");
    assert!(p.grants("n0", 1, false), "a sane term is answered");
}

#[test]
fn a_voter_applies_a_candidates_proof_only_of_a_kind_it_trusts() {
    for (mode, proof, applied) in [
        (
            DeathProofMode::OrderlyClose,
            DeathProof::RefusedAfterOrderlyClose,
            true,
        ),
        (
            DeathProofMode::Timeout,
            DeathProof::RefusedAfterOrderlyClose,
            false,
        ),
        (DeathProofMode::Timeout, DeathProof::Left, true),
    ] {
        let mut c = Setup::new(3).mode(mode).build();
        // n0 tells n1, in a vote request, that n2 is dead.
        let req = VoteRequest {
            dead: vec![(NodeId::new("n2"), Incarnation(1), proof)],
            ..vote_request("n0", 7, true)
        };
        c.event(
            1,
            TransportEvent::Message(envelope("n0", 1, Message::VoteRequest(req))),
        );
        assert_eq!(
            !c.alive_in(1, 2),
            applied,
            "{mode:?} with a proof of kind {proof:?}"
        );
    }
}
