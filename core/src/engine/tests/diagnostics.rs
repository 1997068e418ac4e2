//! Read-only diagnostics: why a group has no leader (in `status`), voters nobody answers for
//! (one warning [`Event::UnseenVoters`]), and the status surviving the wire.

use super::harness::{Cluster, G, Setup, mismatch, name, reset, the_other_two};
use crate::engine::{Action, Event, StatusSnapshot, VoterState};
use crate::message::Message;
use crate::types::{MemberId, NodeId};
use std::time::Duration;

/// The warnings node `i` emitted that contain `needle`.
fn warnings(c: &Cluster, i: usize, needle: &str) -> Vec<String> {
    c.log[i]
        .iter()
        .filter_map(|a| match a {
            Action::Event(e @ Event::UnseenVoters { .. }) if e.to_string().contains(needle) => {
                Some(e.to_string())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn why_no_leader_names_voter_states_the_quorum_and_the_favourite() {
    let (mut c, leader) = Setup::new(3).elected();
    assert_eq!(c.engines[leader].why_no_leader(G, c.now), None);
    assert!(c.engines[leader].status(c.now).no_leader.is_empty());
    assert_eq!(c.engines[0].why_no_leader("nosuch", c.now), None);
    // The two others go silent for the survivor: 1 of 3 voters reachable, 2 needed.
    let [b, c2] = the_other_two(leader);
    c.isolate(b);
    c.isolate(c2);
    c.run_for(Duration::from_secs(2));
    let w = c.engines[b]
        .why_no_leader(G, c.now)
        .expect("b has no leader");
    assert_eq!(w.needed, 2);
    assert_eq!(w.reachable, vec![NodeId::new(name(b))]);
    let state = |n: usize| {
        w.voters
            .iter()
            .find(|v| v.name.as_str() == name(n))
            .expect("a voter")
    };
    assert_eq!(state(b).state, VoterState::Alive);
    assert!(state(b).this_node);
    assert_eq!(state(leader).state, VoterState::Silent);
    assert_eq!(state(c2).state, VoterState::Silent);
    assert!(!w.has_quorum());
    assert_eq!(
        w.favourite,
        Some(MemberId::new(name(b), 0)),
        "b is all it sees"
    );
    assert_eq!(w.abstaining_ms, None, "long past the restart abstention");
    let text = w.to_string();
    assert!(
        text.contains(&format!(
            "quorum: 1 of 3 voters reachable ({}), 2 needed",
            name(b)
        )),
        "{text}"
    );
    assert!(text.contains(&format!("{} silent", name(c2))), "{text}");
    // The same reason is in `status` (the CLI shows it).
    assert_eq!(c.engines[b].status(c.now).no_leader, vec![w.clone()]);
}

#[test]
fn a_reset_voter_is_not_counted_as_reachable() {
    let (mut c, leader) = Setup::new(3).elected();
    let [b, c2] = the_other_two(leader);
    c.isolate(leader);
    c.event(b, reset(leader));
    // b still sees the leader's claim until it lapses: no reason yet.
    assert_eq!(c.engines[b].why_no_leader(G, c.now), None);
    c.run_for(Duration::from_millis(200));
    c.event(b, reset(c2));
    if let Some(w) = c.engines[b].why_no_leader(G, c.now) {
        let st = w
            .voters
            .iter()
            .find(|v| v.name.as_str() == name(c2))
            .expect("a voter");
        assert_eq!(st.state, VoterState::Reset);
        assert!(!w.reachable.contains(&NodeId::new(name(c2))));
    }
}

#[test]
fn a_restarted_node_reports_its_abstention_with_the_time_left() {
    let c = Setup::new(3).build();
    // At start every node abstains for one failure timeout (500 ms) and nobody leads yet.
    let w = c.engines[0].why_no_leader(G, c.now).expect("no leader yet");
    assert_eq!(w.abstaining_ms, Some(500));
    assert!(
        w.to_string()
            .contains("abstains from voting for 500 ms more"),
        "{w}"
    );
    let later = c.engines[0]
        .why_no_leader(G, c.now + Duration::from_millis(200))
        .expect("none yet");
    assert_eq!(later.abstaining_ms, Some(300));
    assert!(
        w.same_reason(&later),
        "remaining time alone is no new reason"
    );
}

#[test]
fn standing_aside_is_a_reason() {
    let (mut c, leader) = Setup::new(3).elected();
    c.event(leader, mismatch(&["n0", "n1", "n2"], &["n2", "n3", "n4"]));
    // The others still follow the old leader's claim until it lapses; the leader itself has
    // no leader at once.
    let w = c.engines[leader]
        .why_no_leader(G, c.now)
        .expect("it stepped down");
    let aside = w.standing_aside.clone().expect("standing aside");
    assert!(aside.contains("n2, n3, n4"), "{aside}");
    assert!(w.to_string().contains("standing aside"), "{w}");
}

#[test]
fn voters_never_seen_are_warned_about_once_after_twice_the_failure_timeout() {
    let mut c = Setup::new(3)
        .voters(&["n0", "n1", "n2", "nx", "ny"])
        .build();
    c.run_for(Duration::from_millis(900));
    assert!(warnings(&c, 0, "never seen").is_empty(), "not before 1 s");
    c.run_for(Duration::from_millis(200));
    let lines = warnings(&c, 0, "never seen");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert!(
        l.contains("\"nx\", \"ny\"") && l.contains("cluster.voters"),
        "{l}"
    );
    assert!(l.contains("3 of the 5 voters"), "{l}");
    assert!(
        l.contains("tolerates 0 failed voter(s) instead of 2"),
        "{l}"
    );
    if let Some(w) = c.engines[0].why_no_leader(G, c.now) {
        let nx = w
            .voters
            .iter()
            .find(|v| v.name.as_str() == "nx")
            .expect("a voter");
        assert_eq!(nx.state, VoterState::Unknown);
    }
    c.run_for(Duration::from_secs(3));
    assert_eq!(warnings(&c, 0, "never seen").len(), 1, "once only");
    // With every voter seen there is no warning.
    let mut c = Setup::new(3).build();
    c.run_for(Duration::from_secs(2));
    assert!(warnings(&c, 0, "never seen").is_empty());
}

#[test]
fn a_status_with_reasons_survives_the_wire_and_old_json_without_them() {
    let c = Setup::new(3).build();
    let status = c.engines[0].status(c.now);
    assert_eq!(status.no_leader.len(), 1, "nobody leads yet");
    let msg = Message::StatusResponse(status.clone());
    let bytes = postcard::to_allocvec(&msg).expect("encodes");
    let back: Message = postcard::from_bytes(&bytes).expect("decodes");
    assert_eq!(back, msg);
    // JSON written before the field existed still reads (as no reasons).
    let mut v = serde_json::to_value(&status).expect("to json");
    v.as_object_mut().expect("an object").remove("no_leader");
    let old: StatusSnapshot = serde_json::from_value(v).expect("from json");
    assert!(old.no_leader.is_empty());
    assert_eq!(old.groups, status.groups);
}
