//! Other safety settings: a node stands aside (neither leads, campaigns nor votes) while a
//! configuration it met could elect a leader of its own, and only then.

use super::harness::{G, Setup, mismatch, name};
use std::time::Duration;

const OURS: [&str; 3] = ["n0", "n1", "n2"];

#[test]
fn a_conflicting_configuration_that_could_elect_makes_a_node_stand_aside() {
    let (mut c, leader) = Setup::new(3).elected();
    // Nodes unknown here (n3, n4) are a majority of the other configuration's voters.
    c.event(leader, mismatch(&OURS, &["n2", "n3", "n4"]));
    assert!(!c.acting().contains(&leader), "the leader stepped down");
    let why = c.engines[leader]
        .why_no_leader(G, c.now)
        .expect("it leads no more");
    assert!(why.standing_aside.is_some(), "{why}");
    c.run_for(Duration::from_secs(2));
    assert!(
        !c.acting().contains(&leader),
        "and neither leads nor campaigns again"
    );
    assert!(
        c.engines[leader]
            .why_no_leader(G, c.now)
            .is_none_or(|w| w.standing_aside.is_some())
    );
}

#[test]
fn a_single_misconfigured_node_among_correct_voters_stops_nobody_else() {
    let (mut c, leader) = Setup::new(3).elected();
    // Its voters are n0, n1 (both known to run this node's settings) and a name nobody has:
    // that configuration can never gather a majority of its own.
    c.event(leader, mismatch(&OURS, &["n0", "n1", "nx"]));
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.acting(), vec![leader]);
    for i in 0..3 {
        assert_eq!(c.leader_seen_by(i), Some(name(leader)));
    }
}
