//! The candidate side: who campaigns first, pre-vote then vote, majority arithmetic (even
//! sizes too), lost and timed-out campaigns and their jittered retries.

use super::harness::{Cluster, G, Setup, join, ms, name, vote_requests};
use super::probe::Probe;
use crate::engine::{Action, EngineConfig, Quorum};
use crate::message::{Message, VoteRequest, VoteResponse};
use crate::types::{NodeId, Term};
use std::time::{Duration, Instant};

/// Advances `p` in 1 ms steps until it asks for votes (at most `limit`): when, and what.
fn next_round(p: &mut Probe, limit: Duration) -> Option<(Instant, Vec<VoteRequest>)> {
    let end = p.now + limit;
    while p.now < end {
        let reqs: Vec<VoteRequest> = vote_requests(&p.advance(ms(1)))
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        if !reqs.is_empty() {
            return Some((p.now, reqs));
        }
    }
    None
}

/// `n0` answers `req` (and so does `n2`).
fn answer(p: &mut Probe, req: &VoteRequest, granted: bool, known_term: Term) -> Vec<Action> {
    let mut out = Vec::new();
    for v in ["n0", "n2"] {
        let resp = VoteResponse {
            group: G.into(),
            term: req.term,
            pre: req.pre,
            granted,
            known_term,
            retry_in_ms: 0,
        };
        out.extend(p.from(v, Message::VoteResponse(resp)));
    }
    out
}

/// `n1` (rank 1 behind fake `n0`) joined, among fake voters `n0` and `n2`.
fn candidate(seed: u64) -> Probe {
    let quorum = Quorum::Majority(["n0", "n1", "n2"].into_iter().map(NodeId::new).collect());
    let mut cfg = EngineConfig::new("n1", 1, quorum);
    cfg.rng_seed = seed;
    let mut p = Probe::with(cfg, None, &["n0", "n2"]);
    p.handle(join(1_000));
    p
}

#[test]
fn the_favourite_of_the_ranking_is_elected_and_nobody_else_acts_meanwhile() {
    let mut c = Setup::new(3).build();
    assert_eq!(c.elect(), 0, "n0 has the lowest member id");
    assert!(
        c.history.iter().all(|(_, a)| a.is_empty() || *a == vec![0]),
        "{:?}",
        c.history
    );
}

#[test]
fn a_candidate_asks_for_pre_votes_before_it_asks_for_votes_in_the_same_term() {
    let (c, leader) = Setup::new(3).elected();
    let reqs: Vec<&VoteRequest> = c
        .sent(leader)
        .filter_map(|(_, m)| match m {
            Message::VoteRequest(r) => Some(r),
            _ => None,
        })
        .collect();
    let first_real = reqs.iter().position(|r| !r.pre).expect("a real round");
    assert!(
        first_real > 0 && reqs[..first_real].iter().all(|r| r.pre),
        "{reqs:?}"
    );
    assert_eq!(
        reqs[0].term, reqs[first_real].term,
        "the pre-vote asks about the term it then asks for"
    );
    assert_eq!(c.engines[leader].term(G), reqs[first_real].term);
}

#[test]
fn an_isolated_node_does_not_depose_a_healthy_leader_when_it_returns() {
    let (mut c, leader) = Setup::new(3).elected();
    let term = c.engines[leader].term(G);
    c.isolate(2);
    c.run_for(Duration::from_secs(2));
    c.cut.clear();
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.acting(), vec![leader]);
    assert_eq!(
        c.engines[leader].term(G),
        term,
        "its pre-votes raised no term"
    );
    assert_eq!(c.leader_seen_by(2), Some(name(leader)));
}

/// A cluster of `n` voters with `crashed` down: checks that the others elect nobody in 3 s.
fn leaderless_with_crashed(n: usize, crashed: &[usize]) -> Cluster {
    let mut c = Setup::new(n).build();
    for &i in crashed {
        c.crash(i);
    }
    c.run_for(Duration::from_secs(3));
    assert_eq!(
        c.most_acting_at_once(),
        0,
        "{} of {n} voters elect nobody",
        n - crashed.len()
    );
    c
}

#[test]
fn a_majority_of_four_voters_is_three() {
    let mut c = leaderless_with_crashed(4, &[2, 3]);
    c.restart(2, None);
    c.elect();
}

#[test]
fn a_majority_of_five_voters_is_three() {
    let mut c = leaderless_with_crashed(5, &[2, 3, 4]);
    c.restart(4, None);
    assert_eq!(c.elect(), 0);
}

#[test]
fn a_two_voter_cluster_needs_both_voters() {
    leaderless_with_crashed(2, &[1]);
}

#[test]
fn a_single_voter_is_its_own_majority_and_keeps_its_lease() {
    let mut c = Setup::new(1).build();
    assert_eq!(c.elect(), 0);
    let (from, term) = (c.history.len(), c.engines[0].term(G));
    c.run_for(Duration::from_secs(5));
    assert!(
        c.history[from..].iter().all(|(_, a)| *a == vec![0]),
        "it renews its own lease: {:?}",
        c.history
    );
    assert_eq!(c.engines[0].term(G), term, "no re-election");
}

#[test]
fn a_member_on_a_node_that_is_not_a_voter_can_lead() {
    let mut c = Setup::new(4).voters(&["n1", "n2", "n3"]).build();
    assert_eq!(c.elect(), 0, "n0 is the favourite though it has no vote");
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.acting(), vec![0], "the voters' acks keep its lease");
}

#[test]
fn a_candidate_that_a_majority_denies_gives_up_at_once_and_retries_after_its_backoff() {
    let mut p = candidate(1);
    let (t1, reqs) = next_round(&mut p, Duration::from_secs(1)).expect("it campaigns");
    answer(&mut p, &reqs[0], false, 0);
    let (t2, _) = next_round(&mut p, Duration::from_secs(1)).expect("it retries");
    // Rank 1 retries after 1 × backoff (50 ms) + a fifth + jitter (< half a backoff), not
    // after the election timeout (250 ms) a silent round costs.
    let d = t2 - t1;
    assert!(d >= ms(55) && d < ms(200), "retried after {d:?}");
}

#[test]
fn retries_are_jittered_so_that_tied_candidates_do_not_collide_forever() {
    let mut delays = std::collections::BTreeSet::new();
    for seed in 1..=6 {
        let mut p = candidate(seed);
        let (t1, reqs) = next_round(&mut p, Duration::from_secs(1)).expect("it campaigns");
        answer(&mut p, &reqs[0], false, 0);
        let (t2, _) = next_round(&mut p, Duration::from_secs(1)).expect("it retries");
        delays.insert(t2 - t1);
    }
    assert!(
        delays.len() > 1,
        "the same delay for every seed: {delays:?}"
    );
}

#[test]
fn a_candidate_whose_requests_go_unanswered_gives_up_at_the_election_timeout() {
    let mut p = candidate(1);
    let (t1, _) = next_round(&mut p, Duration::from_secs(1)).expect("it campaigns");
    let (t2, reqs) = next_round(&mut p, Duration::from_secs(2)).expect("it retries");
    let d = t2 - t1;
    assert!(d >= ms(250) && d < ms(600), "retried after {d:?}");
    assert!(reqs.iter().all(|r| r.pre), "a new pre-vote round");
}

/// Rounds that run out of time (answers missing: overloaded or unreachable voters) back off:
/// each one in a row adds twice the extra wait of the one before, up to four election
/// timeouts; a round that answers decide ends the doubling. Without it, a cold start of
/// 9 x 1 000 groups retried every group every few tens of milliseconds into voters that were
/// already behind, and elected nothing.
#[test]
fn unanswered_rounds_in_a_row_wait_longer_each_time_until_answers_come() {
    let mut p = candidate(1);
    let (mut at, _) = next_round(&mut p, Duration::from_secs(1)).expect("it campaigns");
    let mut gaps = Vec::new();
    for _ in 0..5 {
        let (t, _) = next_round(&mut p, Duration::from_secs(3)).expect("it retries");
        gaps.push(t - at);
        at = t;
    }
    // Each gap: the 250 ms deadline, rank 1's 50 ms + 10 ms + jitter (< 25 ms), and 250 ms
    // x 1, 2, 4, 4, 4 of extra wait.
    let extra = [250, 500, 1_000, 1_000, 1_000];
    for (gap, extra) in gaps.iter().zip(extra) {
        let least = ms(250 + 60 + extra);
        assert!(
            *gap >= least && *gap < least + ms(30),
            "gaps {gaps:?}: expected about {least:?}"
        );
    }
    // The voters answer (they deny): the next round comes after the usual backoff again.
    let (t1, reqs) = next_round(&mut p, Duration::from_secs(3)).expect("it retries");
    answer(&mut p, &reqs[0], false, 0);
    let (t2, _) = next_round(&mut p, Duration::from_secs(1)).expect("it retries");
    let d = t2 - t1;
    assert!(d >= ms(55) && d < ms(200), "retried after {d:?}");
}

/// Many groups leaderless at once stretch the wait per rank (one more backoff per 100 of
/// them): the favourite's rounds for all of them take longer than one backoff, and a lower
/// rank that campaigns meanwhile splits the votes (at 9 x 1 000 every survivor asked for every
/// group of a killed node; with the stretch, the failover's p50 went from 448 to 219 ms).
#[test]
fn with_many_groups_leaderless_a_lower_rank_waits_longer_for_the_favourite() {
    let first_request_for_g = |others: usize| {
        let mut p = candidate(1);
        let start = p.now;
        for k in 0..others {
            p.handle(super::fixtures::join_group(
                format!("x{k:03}").into(),
                1_000,
            ));
        }
        while p.now < start + Duration::from_secs(2) {
            let asked = vote_requests(&p.advance(ms(1)))
                .into_iter()
                .any(|(_, r)| r.group.as_str() == G);
            if asked {
                return p.now - start;
            }
        }
        panic!("no request for {G} within 2 s");
    };
    let alone = first_request_for_g(0);
    assert!(alone >= ms(50) && alone < ms(60), "rank 1 alone: {alone:?}");
    // 301 groups leaderless: 1 + 3 backoffs per rank.
    let crowded = first_request_for_g(300);
    assert!(
        crowded >= ms(200) && crowded < ms(215),
        "rank 1 among 301 leaderless groups: {crowded:?}"
    );
}

/// A node that sees fewer than a majority of the voters alive holds no round (none could
/// win it): before, it lost each one at once and asked again every few tens of milliseconds
/// (1 000 groups on a node started before its peers did nothing else). It campaigns once a
/// majority is back.
#[test]
fn a_node_that_sees_no_majority_of_voters_alive_asks_nobody_until_one_is_back() {
    let mut c = Setup::new(5).build();
    for i in [2, 3, 4] {
        c.crash(i);
    }
    c.run_for(Duration::from_secs(1));
    assert!(
        !c.alive_in(0, 2) && !c.alive_in(1, 3),
        "the crashed nodes fell silent"
    );
    for log in c.log.iter_mut() {
        log.clear();
    }
    c.run_for(Duration::from_secs(3));
    for i in [0, 1] {
        let asked = c
            .sent(i)
            .filter(|(_, m)| matches!(m, Message::VoteRequest(_)))
            .count();
        assert_eq!(asked, 0, "n{i} asked for votes it could not get");
    }
    assert_eq!(c.most_acting_at_once(), 0);
    c.restart(4, None);
    assert_eq!(c.elect(), 0, "a majority is back: the favourite leads");
}

#[test]
fn vote_responses_for_another_term_or_round_are_ignored() {
    let mut p = candidate(1);
    let (_, reqs) = next_round(&mut p, Duration::from_secs(1)).expect("it campaigns");
    let pre = &reqs[0];
    assert!(pre.pre);
    let other_term = VoteRequest {
        term: pre.term + 5,
        ..pre.clone()
    };
    assert!(vote_requests(&answer(&mut p, &other_term, true, 0)).is_empty());
    let real_round = VoteRequest {
        pre: false,
        ..pre.clone()
    };
    assert!(vote_requests(&answer(&mut p, &real_round, true, 0)).is_empty());
    let next = vote_requests(&answer(&mut p, pre, true, 0));
    assert!(
        !next.is_empty() && next.iter().all(|(_, r)| !r.pre),
        "the pre-vote won: {next:?}"
    );
}

#[test]
fn votes_from_non_voters_do_not_count() {
    let quorum = Quorum::Majority(["n0", "n1", "n2"].into_iter().map(NodeId::new).collect());
    let mut p = Probe::with(
        EngineConfig::new("n1", 1, quorum),
        None,
        &["n0", "n2", "n3"],
    );
    p.handle(join(1_000));
    let (_, reqs) = next_round(&mut p, Duration::from_secs(1)).expect("it campaigns");
    let grant = |from: &str, p: &mut Probe| {
        let resp = VoteResponse {
            group: G.into(),
            term: reqs[0].term,
            pre: true,
            granted: true,
            known_term: 0,
            retry_in_ms: 0,
        };
        vote_requests(&p.from(from, Message::VoteResponse(resp)))
    };
    assert!(grant("n3", &mut p).is_empty(), "n3 has no vote");
    assert!(
        grant("n0", &mut p).is_empty(),
        "one vote of three (its own is still abstaining)"
    );
    assert!(!grant("n2", &mut p).is_empty(), "two of three");
}

#[test]
fn a_candidate_catches_up_with_the_highest_term_a_voter_reports() {
    let mut p = candidate(1);
    let (_, reqs) = next_round(&mut p, Duration::from_secs(1)).expect("it campaigns");
    assert_eq!(reqs[0].term, 1);
    answer(&mut p, &reqs[0], false, 41);
    let (_, reqs) = next_round(&mut p, Duration::from_secs(1)).expect("it retries");
    assert_eq!(reqs[0].term, 42);
}

#[test]
fn in_availability_mode_each_side_of_a_partition_leads_and_one_leader_remains_when_they_meet() {
    let mut c = Setup::new(2).availability().build();
    assert_eq!(c.elect(), 0);
    c.isolate(0);
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.acting(), vec![0, 1], "no quorum: both sides lead");
    let split = c.engines[1].term(G);
    assert!(
        split > c.engines[0].term(G),
        "the new side went above the old term"
    );
    c.cut.clear();
    c.run_for(Duration::from_secs(1));
    let [one] = c.acting()[..] else {
        panic!("acting after the heal: {:?}", c.acting());
    };
    for i in 0..2 {
        assert_eq!(
            c.leader_seen_by(i),
            Some(name(one)),
            "n{i} follows the survivor"
        );
        assert!(c.engines[i].term(G) >= split, "and no term went back");
    }
}
