//! The peer table's rules, one test each.

use super::*;

const FT: Duration = Duration::from_millis(500);

fn n(s: &str) -> NodeId {
    NodeId::new(s)
}

fn table() -> (PeerTable, Instant) {
    (PeerTable::new(DeathProofMode::OrderlyClose), Instant::now())
}

/// A table that has had one message from b's incarnation `inc`.
fn knowing_b(inc: u64) -> (PeerTable, Instant) {
    let (mut t, now) = table();
    t.contact(now, &n("b"), Incarnation(inc), Contact::Message);
    (t, now)
}

fn up(node: &str, inc: Incarnation, back: Back) -> Change {
    Change::Up {
        node: n(node),
        incarnation: inc,
        back,
    }
}

fn down(node: &str, inc: Incarnation, down: Down) -> Change {
    Change::Down {
        node: n(node),
        incarnation: inc,
        down,
    }
}

#[test]
fn a_first_message_makes_a_new_peer_alive() {
    let (mut t, now) = table();
    assert_eq!(
        t.contact(now, &n("b"), Incarnation(1), Contact::Message),
        Observed::Current(vec![up("b", Incarnation(1), Back::New)])
    );
    assert!(t.is_alive(&n("b")));
    assert_eq!(
        t.contact(now, &n("b"), Incarnation(1), Contact::Message),
        Observed::Current(vec![]),
        "a second message changes nothing"
    );
}

#[test]
fn an_older_incarnation_is_stale() {
    let (mut t, now) = knowing_b(5);
    assert_eq!(
        t.contact(now, &n("b"), Incarnation(4), Contact::Connected),
        Observed::Stale
    );
    assert_eq!(t.get(&n("b")).map(|p| p.incarnation), Some(Incarnation(5)));
}

#[test]
fn a_newer_incarnation_supersedes_the_old_one() {
    let (mut t, now) = knowing_b(1);
    assert_eq!(
        t.contact(now, &n("b"), Incarnation(2), Contact::Connected),
        Observed::Current(vec![
            down("b", Incarnation(1), Down::Dead(DeathProof::Superseded)),
            up("b", Incarnation(2), Back::New)
        ])
    );
    assert_eq!(t.get(&n("b")).map(|p| p.incarnation), Some(Incarnation(2)));
}

#[test]
fn a_trusted_proof_kills_at_once_and_is_attached_to_votes() {
    let (mut t, now) = knowing_b(1);
    let proof = DeathProof::RefusedAfterOrderlyClose;
    assert_eq!(
        t.dead(now, &n("b"), Incarnation(1), proof),
        Some(down("b", Incarnation(1), Down::Dead(proof)))
    );
    assert!(!t.is_alive(&n("b")));
    assert_eq!(t.proofs(), vec![(n("b"), Incarnation(1), proof)]);
    assert_eq!(
        t.dead(now, &n("b"), Incarnation(1), proof),
        None,
        "dead once only"
    );
}

#[test]
fn a_proof_of_another_incarnation_changes_nothing() {
    let (mut t, now) = knowing_b(2);
    assert_eq!(t.dead(now, &n("b"), Incarnation(1), DeathProof::Left), None);
    assert!(t.is_alive(&n("b")));
}

#[test]
fn timeout_mode_distrusts_a_refused_reconnect_but_not_a_goodbye_or_a_new_incarnation() {
    let t = PeerTable::new(DeathProofMode::Timeout);
    assert!(!t.trusts(DeathProof::RefusedAfterOrderlyClose));
    assert!(t.trusts(DeathProof::Left));
    assert!(t.trusts(DeathProof::Superseded));
    let t = PeerTable::new(DeathProofMode::OrderlyClose);
    assert!(t.trusts(DeathProof::RefusedAfterOrderlyClose));
}

#[test]
fn a_reset_marks_the_link_but_keeps_the_peer_alive_until_heard_again() {
    let (mut t, now) = knowing_b(1);
    t.disconnected(&n("b"), CloseKind::Abrupt);
    let b = t.get(&n("b")).expect("known");
    assert!(b.is_alive() && !b.is_reachable());
    t.contact(now, &n("b"), Incarnation(1), Contact::Message);
    assert!(t.get(&n("b")).is_some_and(Peer::is_reachable));
}

#[test]
fn an_orderly_close_alone_is_no_proof() {
    let (mut t, _) = knowing_b(1);
    t.disconnected(&n("b"), CloseKind::Orderly);
    assert!(t.get(&n("b")).is_some_and(Peer::is_reachable));
}

#[test]
fn silence_for_the_failure_timeout_makes_a_peer_silent_and_a_message_brings_it_back() {
    let (mut t, now) = knowing_b(1);
    assert_eq!(t.next_silence(FT), Some(now + FT));
    assert!(t.expire(now + FT / 2, FT).is_empty());
    assert_eq!(
        t.expire(now + FT, FT),
        vec![down("b", Incarnation(1), Down::Silent)]
    );
    assert!(!t.is_alive(&n("b")));
    assert_eq!(t.next_silence(FT), None);
    assert_eq!(
        t.contact(now + FT * 2, &n("b"), Incarnation(1), Contact::Message),
        Observed::Current(vec![up("b", Incarnation(1), Back::AfterSilence)])
    );
}

#[test]
fn a_dead_incarnations_late_messages_are_ignored() {
    let (mut t, now) = knowing_b(1);
    t.dead(now, &n("b"), Incarnation(1), DeathProof::Left);
    assert_eq!(
        t.contact(now, &n("b"), Incarnation(1), Contact::Message),
        Observed::Stale
    );
    assert!(!t.is_alive(&n("b")));
}

#[test]
fn a_connection_alone_does_not_make_a_silent_peer_alive() {
    let (mut t, now) = knowing_b(1);
    t.expire(now + FT, FT);
    assert_eq!(
        t.contact(now + FT, &n("b"), Incarnation(1), Contact::Connected),
        Observed::Current(vec![])
    );
    assert!(!t.is_alive(&n("b")));
}

#[test]
fn a_fresh_connection_of_a_dead_incarnation_lifts_the_verdict_and_its_next_message_revives_it() {
    let (mut t, now) = knowing_b(1);
    let proof = DeathProof::RefusedAfterOrderlyClose;
    t.dead(now, &n("b"), Incarnation(1), proof);
    let later = now + Duration::from_secs(3);
    assert_eq!(
        t.contact(later, &n("b"), Incarnation(1), Contact::Connected),
        Observed::Current(vec![])
    );
    assert!(!t.is_alive(&n("b")) && t.proofs().is_empty());
    assert_eq!(
        t.contact(later, &n("b"), Incarnation(1), Contact::Message),
        Observed::Current(vec![up(
            "b",
            Incarnation(1),
            Back::AfterDeath {
                proof,
                ago: Duration::from_secs(3)
            }
        )])
    );
    assert!(t.is_alive(&n("b")));
    assert!(t.proofs().is_empty());
}

#[test]
fn not_dead_lists_silent_peers_too() {
    let (mut t, now) = knowing_b(1);
    t.contact(now, &n("c"), Incarnation(1), Contact::Message);
    t.contact(now, &n("d"), Incarnation(1), Contact::Message);
    t.dead(now, &n("c"), Incarnation(1), DeathProof::Left);
    t.expire(now + FT, FT);
    let targets: Vec<&NodeId> = t.not_dead().collect();
    assert_eq!(targets, vec![&n("b"), &n("d")]);
}
