//! The voter's rules 2–5 ([`Ballot::judge`]), one case each, on a bare group state.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn m(node: &str) -> MemberId {
    MemberId::new(node, 0)
}

fn req(term: Term, candidate: &str) -> VoteRequest {
    VoteRequest {
        group: "g".into(),
        term,
        candidate: m(candidate),
        handoff: None,
        pre: false,
        dead: vec![],
    }
}

/// Judges `req` in a group at term 1 leaderless since `start`, at `start + after`, with the
/// ranking a, b, c and a backoff of 50 ms; `setup` changes the state first.
fn judge(
    req: &VoteRequest,
    after: Duration,
    acts: bool,
    setup: impl FnOnce(&mut Group, Instant),
) -> Result<(), Denial> {
    let start = Instant::now();
    let mut g = Group::new(start);
    g.term = 1;
    setup(&mut g, start);
    Ballot {
        now: start + after,
        abstain_until: start,
        backoff: 50 * MS,
        ranking: vec![m("a"), m("b"), m("c")],
        this_node_acts: acts,
        group: &mut g,
    }
    .judge(req)
}

fn leader(g: &mut Group, member: &str, term: Term, now: Instant) {
    g.leader = Some(LeaderView {
        member: m(member),
        term,
        until: now + 500 * MS,
    });
    g.leaderless_since = None;
}

#[test]
fn the_favourite_is_granted_at_once() {
    assert_eq!(
        judge(&req(2, "a"), Duration::ZERO, false, |_, _| {}),
        Ok(())
    );
}

#[test]
fn a_term_not_above_the_known_one_is_denied_unless_it_repeats_this_voters_vote() {
    assert_eq!(
        judge(&req(1, "a"), Duration::ZERO, false, |_, _| {}),
        Err(Denial::StaleTerm)
    );
    let repeat = |g: &mut Group, _| {
        g.term = 2;
        g.vote = Some((2, m("a")));
    };
    assert_eq!(judge(&req(2, "a"), Duration::ZERO, false, repeat), Ok(()));
}

#[test]
fn one_vote_per_term() {
    let voted = |g: &mut Group, _| g.vote = Some((2, m("b")));
    assert_eq!(
        judge(&req(2, "a"), Duration::ZERO, false, voted),
        Err(Denial::AlreadyVoted)
    );
}

#[test]
fn an_acting_leader_denies_unless_it_handed_off() {
    assert_eq!(
        judge(&req(2, "b"), Duration::ZERO, true, |_, _| {}),
        Err(Denial::ThisNodeLeads)
    );
}

#[test]
fn a_live_leader_is_not_voted_against_without_its_handoff() {
    let led = |g: &mut Group, now| leader(g, "c", 1, now);
    assert_eq!(
        judge(&req(2, "a"), Duration::ZERO, false, led),
        Err(Denial::LiveLeader)
    );
    let mut handed = req(2, "a");
    handed.handoff = Some(Handoff {
        from: m("c"),
        term: 1,
    });
    assert_eq!(judge(&handed, Duration::ZERO, false, led), Ok(()));
}

#[test]
fn a_promise_to_another_candidate_holds_until_it_ends() {
    let promised = |g: &mut Group, now: Instant| g.promised = Some((m("b"), now + 100 * MS));
    assert_eq!(
        judge(&req(2, "a"), 10 * MS, false, promised),
        Err(Denial::Promised)
    );
    assert_eq!(judge(&req(2, "a"), 100 * MS, false, promised), Ok(()));
}

#[test]
fn a_candidate_outside_this_voters_view_is_denied() {
    assert_eq!(
        judge(&req(2, "z"), Duration::ZERO, false, |_, _| {}),
        Err(Denial::NotInView)
    );
}

#[test]
fn rank_r_is_granted_only_after_r_backoffs() {
    assert_eq!(
        judge(&req(2, "c"), 99 * MS, false, |_, _| {}),
        Err(Denial::BetterRanked)
    );
    assert_eq!(judge(&req(2, "c"), 100 * MS, false, |_, _| {}), Ok(()));
}
