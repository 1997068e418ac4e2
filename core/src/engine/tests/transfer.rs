//! Transfer and step-down on request, and health: the leader alone decides (and says why
//! not), hands off as on shutdown, and a successor that never takes over costs one failure
//! timeout; an unhealthy member is no candidate and an unhealthy leader hands off.

use super::fixtures::heartbeat;
use super::harness::{FT, G, Setup, join, member, ms};
use super::probe::Probe;
use crate::engine::{Action, EngineConfig, Event, Input, Quorum, StepDownReason};
use crate::message::{
    ControlError, ControlOp, ControlRequest, ControlResponse, HandedOff, MemberAnnounce, Message,
    NotCandidate,
};
use crate::types::{Labels, Leadership, MemberId, NodeId};
use std::time::Duration;

fn transfer(to: &str) -> Input {
    Input::Control {
        id: 7,
        group: G.into(),
        op: ControlOp::Transfer {
            to: NodeId::new(to),
        },
        timeout: None,
    }
}

fn step_down() -> Input {
    Input::Control {
        id: 7,
        group: G.into(),
        op: ControlOp::StepDown,
        timeout: None,
    }
}

/// The answers to control requests made with id 7 among `actions`.
fn answers(actions: &[Action]) -> Vec<Result<HandedOff, ControlError>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ControlDone { id: 7, result } => Some(result.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_transfer_hands_off_to_the_named_member_at_once_and_it_keeps_leading() {
    let (mut c, leader) = Setup::new(3).elected();
    assert_eq!(leader, 0);
    c.run_for(ms(300));
    let t = c.now;
    // n2 ranks last (member-id order): a transfer needs no rank.
    let actions = c.input(0, transfer("n2"));
    assert_eq!(
        answers(&actions),
        vec![Ok(HandedOff {
            from: member(0),
            to: member(2),
            term: 1
        })]
    );
    assert!(
        !c.engines[0].is_acting_leader(G, c.now),
        "stops acting first"
    );
    assert!(c.run_until_true(FT, |c| c.acting() == vec![2]));
    assert!(c.now - t < FT / 2, "took {:?}", c.now - t);
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.acting(), vec![2], "nobody takes it back");
    assert!(c.most_acting_at_once() <= 1, "{:?}", c.history);
}

#[test]
fn a_transfer_asked_at_a_follower_is_routed_to_the_leader() {
    let (mut c, _) = Setup::new(3).elected();
    c.input(1, transfer("n2"));
    assert!(c.run_until_true(FT, |c| c.acting() == vec![2]));
    let got = answers(&c.log[1]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        matches!(&got[0], Ok(h) if h.from == member(0) && h.to == member(2)),
        "{got:?}"
    );
}

/// Elects n0 of `setup`, asks it `input`, and checks it refused with `want` and still leads.
fn refused(
    setup: Setup,
    prepare: impl FnOnce(&mut super::harness::Cluster),
    input: Input,
    want: ControlError,
) {
    let (mut c, leader) = setup.elected();
    assert_eq!(leader, 0);
    prepare(&mut c);
    let actions = c.input(0, input);
    assert_eq!(answers(&actions), vec![Err(want)]);
    assert_eq!(c.acting(), vec![0], "a refused request changes nothing");
}

#[test]
fn a_transfer_to_an_unknown_node_is_refused() {
    let want = ControlError::UnknownTarget {
        node: NodeId::new("zz"),
    };
    refused(Setup::new(3), |_| {}, transfer("zz"), want);
}

#[test]
fn a_transfer_to_a_node_that_is_down_is_refused() {
    let want = ControlError::NotCandidate {
        group: G.into(),
        node: NodeId::new("n2"),
        why: NotCandidate::Down,
    };
    let crash = |c: &mut super::harness::Cluster| {
        c.crash(2);
        c.run_for(FT + ms(100));
    };
    refused(Setup::new(3), crash, transfer("n2"), want);
}

#[test]
fn a_transfer_to_a_node_without_a_member_in_the_group_is_refused() {
    let want = ControlError::NotCandidate {
        group: G.into(),
        node: NodeId::new("n2"),
        why: NotCandidate::NotAMember,
    };
    refused(Setup::new(3).joined(&[0, 1]), |_| {}, transfer("n2"), want);
}

#[test]
fn a_transfer_to_the_leader_itself_is_refused() {
    let want = ControlError::AlreadyLeads {
        group: G.into(),
        node: NodeId::new("n0"),
    };
    refused(Setup::new(3), |_| {}, transfer("n0"), want);
}

#[test]
fn a_step_down_without_another_candidate_is_refused() {
    let want = ControlError::NoOtherCandidate { group: G.into() };
    refused(Setup::new(3).joined(&[0]), |_| {}, step_down(), want);
}

#[test]
fn a_node_that_does_not_lead_refuses_a_control_request_routed_to_it() {
    let (mut c, _) = Setup::new(3).elected();
    let req = ControlRequest {
        id: 3,
        group: G.into(),
        op: ControlOp::StepDown,
    };
    let actions = c.deliver("n1", 2, Message::Control(req));
    let refusal = actions.iter().find_map(|a| match a {
        Action::Send {
            message: Message::ControlResponse(r),
            ..
        } => Some(r.clone()),
        _ => None,
    });
    let r = refusal.expect("an answer");
    assert_eq!(r.id, 3);
    assert_eq!(
        r.result,
        Err(ControlError::NotLeader {
            group: G.into(),
            node: NodeId::new("n2")
        })
    );
    assert_eq!(c.acting(), vec![0]);
}

#[test]
fn a_step_down_hands_off_to_the_next_in_the_leaders_ranking() {
    let (mut c, _) = Setup::new(3).elected();
    let actions = c.input(0, step_down());
    assert!(
        matches!(&answers(&actions)[..], [Ok(h)] if h.to == member(1)),
        "{actions:?}"
    );
    assert!(c.run_until_true(FT / 2, |c| c.acting() == vec![1]));
    c.run_for(Duration::from_secs(2));
    assert_eq!(
        c.acting(),
        vec![1],
        "n0, still the favourite, does not take it back"
    );
}

#[test]
fn a_successor_that_never_takes_over_costs_one_failure_timeout_then_the_group_elects() {
    let (mut c, _) = Setup::new(3).elected();
    // n2's vote requests never arrive: it cannot take over.
    c.drop_when(|from, _, m| from == 2 && matches!(m, Message::VoteRequest(_)));
    let t = c.now;
    c.input(0, transfer("n2"));
    // Nobody, the old leader included, campaigns in the successor's face for one failure
    // timeout (less a generous margin: a retry jitter is at most half a backoff).
    c.run_until(t + FT - ms(100));
    assert!(c.acting().is_empty(), "acting {:?}", c.acting());
    assert!(c.run_until_true(Duration::from_secs(2), |c| c.acting().len() == 1));
    assert!(c.now - t >= FT, "elected after {:?}", c.now - t);
    assert!(c.most_acting_at_once() <= 1, "{:?}", c.history);
}

#[test]
fn a_transfer_works_in_availability_mode() {
    let (mut c, leader) = Setup::new(3).availability().elected();
    // Once the members are known (a declaration can come before the first heartbeats).
    c.run_for(ms(300));
    let a = c.input(leader, transfer("n2"));
    let ok = c.run_until_true(FT / 2, |c| c.acting() == vec![2]);
    assert!(ok, "{leader} {:?} {:?} {a:?}", c.acting(), c.history);
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.acting(), vec![2]);
}

#[test]
fn an_unhealthy_leader_hands_off_and_an_unhealthy_member_is_no_candidate() {
    let (mut c, _) = Setup::new(3).elected();
    let t = c.now;
    c.input(
        0,
        Input::SetHealth {
            group: G.into(),
            healthy: false,
        },
    );
    assert!(c.run_until_true(FT, |c| c.acting() == vec![1]));
    assert!(c.now - t < FT / 2, "took {:?}", c.now - t);
    c.run_for(Duration::from_secs(3));
    assert_eq!(
        c.acting(),
        vec![1],
        "the unhealthy favourite never campaigns"
    );
    for i in 0..3 {
        let s = c.engines[i].status(c.now);
        let (_, ranking) = s.rankings.iter().find(|(g, _)| g == G).expect("ranked");
        assert_eq!(ranking, &vec![member(1), member(2)], "ranked at n{i}");
    }
    // Nor can it be handed to.
    c.input(2, transfer("n0"));
    c.run_for(ms(50));
    assert_eq!(
        answers(&c.log[2]),
        vec![Err(ControlError::NotCandidate {
            group: G.into(),
            node: NodeId::new("n0"),
            why: NotCandidate::Unhealthy
        })]
    );
    // Healthy again, it is a candidate again: a step-down hands it back.
    c.input(
        0,
        Input::SetHealth {
            group: G.into(),
            healthy: true,
        },
    );
    c.run_for(ms(100));
    c.input(1, step_down());
    assert!(c.run_until_true(FT / 2, |c| c.acting() == vec![0]));
    assert!(c.most_acting_at_once() <= 1, "{:?}", c.history);
}

#[test]
fn an_unhealthy_member_never_campaigns_even_alone() {
    let mut c = Setup::new(3).joined(&[0]).build();
    c.input(
        0,
        Input::SetHealth {
            group: G.into(),
            healthy: false,
        },
    );
    c.run_for(Duration::from_secs(3));
    assert!(c.acting().is_empty(), "acting {:?}", c.acting());
}

/// The `Action::Release` among `actions`: its term.
fn release_asked(actions: &[Action]) -> Option<u64> {
    actions.iter().find_map(|a| match a {
        Action::Release { group, term } if group == G => Some(*term),
        _ => None,
    })
}

/// Whether `actions` send a `StepDown` (the successor is told to take over).
fn steps_down(actions: &[Action]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::Send {
                message: Message::StepDown(_),
                ..
            }
        )
    })
}

#[test]
fn with_release_first_a_transfer_waits_for_the_release_and_the_leader_leads_meanwhile() {
    let (mut c, leader) = Setup::new(3).elected();
    assert_eq!(leader, 0);
    for e in &mut c.engines {
        e.cfg.release_first = true;
    }
    // Refused requests are answered at once, with no release.
    let actions = c.input(0, transfer("zz"));
    assert_eq!(answers(&actions).len(), 1);
    assert_eq!(release_asked(&actions), None);

    let actions = c.input(0, transfer("n2"));
    let term = release_asked(&actions).expect("a release is asked first");
    assert!(
        answers(&actions).is_empty(),
        "answered only after the release"
    );
    assert!(!steps_down(&actions), "nobody is told to take over yet");
    // Meanwhile it goes on leading (heartbeats, lease) and a second request waits too.
    c.input(1, step_down());
    c.run_for(ms(400));
    assert_eq!(c.acting(), vec![0], "leads while its work is released");
    let actions = c.input(
        0,
        Input::Released {
            group: G.into(),
            term,
        },
    );
    assert!(steps_down(&actions));
    assert_eq!(
        answers(&actions),
        vec![Ok(HandedOff {
            from: member(0),
            to: member(2),
            term
        })]
    );
    assert!(c.run_until_true(FT, |c| c.acting() == vec![2]));
    // The step-down asked during the release was decided after it: n0 no longer led.
    c.run_for(ms(50));
    let got = answers(&c.log[1]);
    assert!(
        matches!(got.as_slice(), [Err(ControlError::NotLeader { .. })]),
        "{got:?}"
    );
    assert!(c.most_acting_at_once() <= 1, "{:?}", c.history);
}

#[test]
fn with_release_first_an_unhealthy_leader_hands_off_after_the_release() {
    let (mut c, _) = Setup::new(3).elected();
    c.engines[0].cfg.release_first = true;
    let unhealthy = Input::SetHealth {
        group: G.into(),
        healthy: false,
    };
    let actions = c.input(0, unhealthy);
    let term = release_asked(&actions).expect("a release is asked first");
    assert!(!steps_down(&actions));
    c.run_for(ms(200));
    assert_eq!(c.acting(), vec![0]);
    // A late answer for another term changes nothing.
    c.input(
        0,
        Input::Released {
            group: G.into(),
            term: term + 5,
        },
    );
    assert_eq!(c.acting(), vec![0]);
    let actions = c.input(
        0,
        Input::Released {
            group: G.into(),
            term,
        },
    );
    assert!(steps_down(&actions));
    assert!(c.run_until_true(FT, |c| c.acting() == vec![1]));
}

// Groups an elector decides (the etcd backend, `Engine::elected`): the engine holds no
// candidates of them and never leads them by its own role. A request is granted by the
// elector's leadership, handed to the elector (`Action::ElectorHandOff`) and answered with the
// elector's result (`Engine::elector_handed_off`).

/// `n1` with an elector (its external registry stays empty), among fake peers `n0` and `n2`,
/// joined to [`G`], whose elector published `leader`'s member as the leader of [`G`] under
/// term 5, with `is_me`.
fn elector_probe(leader: &str, is_me: bool, release_first: bool) -> Probe {
    let quorum = Quorum::Majority(["n0", "n1", "n2"].into_iter().map(NodeId::new).collect());
    let mut cfg = EngineConfig::new("n1", 1, quorum);
    cfg.external_registry = true;
    cfg.release_first = release_first;
    let mut p = Probe::with(cfg, None, &["n0", "n2"]);
    p.handle(join(1_000));
    let me = p.engine.local_member(G).cloned().expect("n1 joined");
    let member = if leader == "n1" {
        me
    } else {
        MemberId::new(leader, 0)
    };
    let l = Leadership {
        group: G.into(),
        leader: Some(member),
        term: 5,
        is_me,
    };
    let now = p.now;
    p.engine.elected(now, [l]);
    p
}

/// The `Action::ElectorHandOff`s among `actions`.
fn hand_offs(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| matches!(a, Action::ElectorHandOff { .. }))
        .cloned()
        .collect()
}

/// The `ControlResponse`s among `actions`, with whom they go to.
fn control_responses(actions: &[Action]) -> Vec<(NodeId, ControlResponse)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                message: Message::ControlResponse(r),
            } => Some((to.clone(), r.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_elected_leader_hands_a_transfer_to_its_elector_and_answers_with_the_electors_result() {
    let mut p = elector_probe("n1", true, false);
    let actions = p.handle(transfer("n2"));
    assert_eq!(
        hand_offs(&actions),
        vec![Action::ElectorHandOff {
            group: G.into(),
            to: Some(NodeId::new("n2")),
            term: 5,
            release: false,
            reply_to: None,
            id: 7,
        }],
        "{actions:?}"
    );
    assert!(answers(&actions).is_empty(), "answered before the elector");
    let handed = HandedOff {
        from: p.engine.local_member(G).cloned().expect("joined"),
        to: MemberId::new("n2", 0),
        term: 5,
    };
    let now = p.now;
    let actions = p
        .engine
        .elector_handed_off(now, G.into(), None, 7, Ok(handed.clone()));
    assert_eq!(answers(&actions), vec![Ok(handed)]);
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Event(Event::SteppingDown {
                reason: StepDownReason::Requested { .. },
                ..
            })
        )),
        "{actions:?}"
    );
}

#[test]
fn an_elected_leader_hands_a_step_down_to_its_elector_which_picks_the_successor_after_the_release()
{
    let mut p = elector_probe("n1", true, true);
    let actions = p.handle(step_down());
    assert_eq!(
        hand_offs(&actions),
        vec![Action::ElectorHandOff {
            group: G.into(),
            to: None,
            term: 5,
            release: true,
            reply_to: None,
            id: 7,
        }],
        "{actions:?}"
    );
    assert_eq!(
        release_asked(&actions),
        None,
        "the elector's driver releases"
    );
    // The elector's refusal is the answer.
    let refusal = ControlError::NoOtherCandidate { group: G.into() };
    let now = p.now;
    let actions = p
        .engine
        .elector_handed_off(now, G.into(), None, 7, Err(refusal.clone()));
    assert_eq!(answers(&actions), vec![Err(refusal)]);
}

#[test]
fn a_request_routed_to_an_elected_leader_is_answered_to_the_peer_that_routed_it() {
    let mut p = elector_probe("n1", true, false);
    let req = ControlRequest {
        id: 3,
        group: G.into(),
        op: ControlOp::Transfer {
            to: NodeId::new("zz"),
        },
    };
    let actions = p.from("n0", Message::Control(req));
    assert_eq!(
        hand_offs(&actions),
        vec![Action::ElectorHandOff {
            group: G.into(),
            to: Some(NodeId::new("zz")),
            term: 5,
            release: false,
            reply_to: Some(NodeId::new("n0")),
            id: 3,
        }]
    );
    let unknown = ControlError::UnknownTarget {
        node: NodeId::new("zz"),
    };
    let now = p.now;
    let actions = p.engine.elector_handed_off(
        now,
        G.into(),
        Some(NodeId::new("n0")),
        3,
        Err(unknown.clone()),
    );
    assert_eq!(
        control_responses(&actions),
        vec![(
            NodeId::new("n0"),
            ControlResponse {
                id: 3,
                result: Err(unknown)
            }
        )]
    );
}

#[test]
fn a_node_the_elector_does_not_let_act_refuses_not_leader_and_hands_nothing_over() {
    let not_leader = ControlError::NotLeader {
        group: G.into(),
        node: NodeId::new("n1"),
    };
    // Published as the leader but not allowed to act (its claim may have lapsed): a local
    // request is routed to this node and refused here.
    let mut p = elector_probe("n1", false, false);
    let actions = p.handle(step_down());
    assert_eq!(answers(&actions), vec![Err(not_leader.clone())]);
    assert!(hand_offs(&actions).is_empty());
    // Another node leads: a request a peer routed here is refused to it.
    let mut p = elector_probe("n0", false, false);
    let req = ControlRequest {
        id: 3,
        group: G.into(),
        op: ControlOp::StepDown,
    };
    let actions = p.from("n2", Message::Control(req));
    assert!(hand_offs(&actions).is_empty(), "{actions:?}");
    assert_eq!(
        control_responses(&actions),
        vec![(
            NodeId::new("n2"),
            ControlResponse {
                id: 3,
                result: Err(not_leader)
            }
        )]
    );
}

#[test]
fn an_elected_leader_refuses_a_transfer_to_itself_or_to_an_unhealthy_member() {
    let mut p = elector_probe("n1", true, false);
    let actions = p.handle(transfer("n1"));
    assert_eq!(
        answers(&actions),
        vec![Err(ControlError::AlreadyLeads {
            group: G.into(),
            node: NodeId::new("n1"),
        })]
    );
    // n2 announces its member of G unhealthy.
    let mut hb = heartbeat("n2", 100, None);
    if let Some(state) = &mut hb.state {
        state.members = vec![MemberAnnounce {
            id: MemberId::new("n2", 0),
            group: G.into(),
            started_at_ms: 1_000,
            labels: Labels::new(),
            healthy: false,
            version: None,
        }];
    }
    p.from("n2", Message::Heartbeat(hb));
    let actions = p.handle(transfer("n2"));
    assert_eq!(
        answers(&actions),
        vec![Err(ControlError::NotCandidate {
            group: G.into(),
            node: NodeId::new("n2"),
            why: NotCandidate::Unhealthy,
        })]
    );
    assert!(hand_offs(&actions).is_empty());
}
