//! Engine rules tested on a few engines in one thread: a virtual clock, messages delivered at
//! once in FIFO order, and a hand on every transport event (resets, proofs, refusals).

use super::*;
use crate::transport::{CloseKind, DeathProof, DeathProofMode, Fingerprint, Refusal};
use std::collections::VecDeque;

const G: &str = "g";

/// A few engines wired together with instant delivery; nothing is lost unless `cut`.
struct Net {
    now: Instant,
    nodes: Vec<Engine>,
    /// Messages in flight: (from, to, message).
    wire: VecDeque<(usize, usize, Message)>,
    /// Directed links that drop everything: (from, to).
    cut: BTreeSet<(usize, usize)>,
    /// Every action each node emitted, in order.
    log: Vec<Vec<Action>>,
}

fn name(i: usize) -> String {
    format!("n{i}")
}

impl Net {
    /// `n` nodes, all voters, all in group `G`, connected to each other.
    fn new(n: usize, mode: DeathProofMode) -> Net {
        let now = Instant::now();
        let voters: BTreeSet<NodeId> = (0..n).map(|i| NodeId::new(name(i))).collect();
        let nodes = (0..n)
            .map(|i| {
                let mut cfg = EngineConfig::new(name(i), 1, Quorum::Majority(voters.clone()));
                cfg.death_proof = mode;
                Engine::new(cfg, Arc::new(ByMemberId), BTreeMap::new(), None, now)
            })
            .collect();
        let mut net = Net {
            now,
            nodes,
            wire: VecDeque::new(),
            cut: BTreeSet::new(),
            log: vec![Vec::new(); n],
        };
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    net.event(i, connected(j, 1));
                }
            }
            net.input(
                i,
                Input::Join {
                    group: G.into(),
                    labels: Labels::new(),
                    started_at_ms: 1_000 + i as u64,
                },
            );
        }
        net
    }

    fn input(&mut self, i: usize, input: Input) {
        let actions = self.nodes[i].handle(self.now, input);
        for a in &actions {
            if let Action::Send { to, message } = a
                && let Some(j) = (0..self.nodes.len()).find(|j| name(*j) == to.as_str())
            {
                self.wire.push_back((i, j, message.clone()));
            }
        }
        self.log[i].extend(actions);
        self.flush();
    }

    fn event(&mut self, i: usize, ev: TransportEvent) {
        self.input(i, Input::Transport(ev));
    }

    fn flush(&mut self) {
        while let Some((from, to, message)) = self.wire.pop_front() {
            if self.cut.contains(&(from, to)) {
                continue;
            }
            let env = Envelope {
                from: NodeId::new(name(from)),
                incarnation: self.nodes[from].config().incarnation,
                message,
            };
            self.event(to, TransportEvent::Message(env));
        }
    }

    /// Advances the clock to `until`, waking each engine at its deadlines.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next = self
                .nodes
                .iter()
                .filter_map(Engine::next_deadline)
                .min()
                .filter(|t| *t <= until);
            let Some(at) = next else { break };
            self.now = self.now.max(at);
            for i in 0..self.nodes.len() {
                if self.nodes[i].next_deadline().is_some_and(|d| d <= self.now) {
                    self.input(i, Input::Tick);
                }
            }
        }
        self.now = until;
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn acting(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_acting_leader(G, self.now))
            .collect()
    }

    /// Runs until one node acts as leader (at most 3 s); returns it.
    fn elect(&mut self) -> usize {
        for _ in 0..300 {
            if let [one] = self.acting()[..] {
                return one;
            }
            self.run_for(Duration::from_millis(10));
        }
        panic!("no leader elected: acting {:?}", self.acting());
    }

    fn alive_in(&self, i: usize, peer: usize) -> bool {
        self.nodes[i]
            .status(self.now)
            .members
            .iter()
            .any(|m| m.name.as_str() == name(peer) && m.alive)
    }

    fn logged(&self, i: usize, needle: &str) -> bool {
        self.log[i]
            .iter()
            .any(|a| matches!(a, Action::Event(e) if e.to_string().contains(needle)))
    }

    fn isolate(&mut self, i: usize) {
        for j in 0..self.nodes.len() {
            if j != i {
                self.cut.insert((i, j));
                self.cut.insert((j, i));
            }
        }
    }
}

fn connected(j: usize, incarnation: u64) -> TransportEvent {
    TransportEvent::Connected {
        node: NodeId::new(name(j)),
        incarnation,
        addr: name(j),
    }
}

fn reset(j: usize) -> TransportEvent {
    TransportEvent::Disconnected {
        node: NodeId::new(name(j)),
        how: CloseKind::Abrupt,
    }
}

fn dead(j: usize, proof: DeathProof) -> TransportEvent {
    TransportEvent::Dead {
        node: NodeId::new(name(j)),
        incarnation: 1,
        proof,
    }
}

fn others(n: usize, i: usize) -> Vec<usize> {
    (0..n).filter(|j| *j != i).collect()
}

#[test]
fn a_leader_whose_links_to_a_majority_of_voters_are_reset_stops_acting_at_once() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    let leader = net.elect();
    let [b, c] = others(3, leader)[..] else {
        unreachable!()
    };
    net.event(leader, reset(b));
    assert_eq!(
        net.acting(),
        vec![leader],
        "one reset voter of two leaves a majority"
    );
    net.event(leader, reset(c));
    assert!(
        net.acting().is_empty(),
        "no lease wait: it stopped at the second reset"
    );
    assert!(net.logged(leader, "stepping down at once"));
}

#[test]
fn a_reset_link_counts_again_once_the_peer_is_heard_from() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    let leader = net.elect();
    let [b, c] = others(3, leader)[..] else {
        unreachable!()
    };
    net.event(leader, reset(b));
    // b's next heartbeat clears the reset: a later reset of c alone leaves a majority.
    net.run_for(Duration::from_millis(150));
    net.event(leader, reset(c));
    assert_eq!(net.acting(), vec![leader]);
}

#[test]
fn a_refused_reconnect_in_timeout_mode_is_no_proof_of_death() {
    let mut net = Net::new(3, DeathProofMode::Timeout);
    let leader = net.elect();
    let b = others(3, leader)[0];
    net.event(b, dead(leader, DeathProof::RefusedAfterOrderlyClose));
    assert!(
        net.alive_in(b, leader),
        "the leader stays alive in b's view"
    );
    assert!(!net.logged(b, "is gone"));
}

#[test]
fn a_trusted_proof_of_the_leaders_death_elects_a_successor_without_waiting_for_the_timeout() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    let leader = net.elect();
    let t0 = net.now;
    net.isolate(leader);
    for j in others(3, leader) {
        net.event(j, dead(leader, DeathProof::RefusedAfterOrderlyClose));
    }
    // The proof lets the survivors forget the dead leader (and their promises to it) at once:
    // a successor leads long before the failure timeout (500 ms) a silent leader costs.
    let mut new = None;
    for _ in 0..100 {
        net.run_for(Duration::from_millis(5));
        if let Some(n) = net.acting().into_iter().find(|n| *n != leader) {
            new = Some(n);
            break;
        }
    }
    let new = new.expect("a successor leads");
    assert_ne!(new, leader);
    assert!(
        net.now - t0 < Duration::from_millis(250),
        "took {:?}",
        net.now - t0
    );
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
        let mut net = Net::new(3, mode);
        // n0 tells n1, in a vote request, that n2 is dead.
        let req = VoteRequest {
            group: G.into(),
            term: 7,
            candidate: MemberId::new("n0", 0),
            handoff: None,
            pre: true,
            dead: vec![(NodeId::new("n2"), 1, proof)],
        };
        net.event(
            1,
            TransportEvent::Message(Envelope {
                from: NodeId::new("n0"),
                incarnation: 1,
                message: Message::VoteRequest(req),
            }),
        );
        assert_eq!(
            !net.alive_in(1, 2),
            applied,
            "{mode:?} with a proof of kind {proof:?}"
        );
    }
}

#[test]
fn a_dead_peer_that_reconnects_is_taken_back_and_follows_the_higher_term() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    let old = net.elect();
    let old_term = net.nodes[old].term(G);
    // A middlebox forges the proof (the assumption broken): the others elect a new leader.
    net.isolate(old);
    for j in others(3, old) {
        net.event(j, dead(old, DeathProof::RefusedAfterOrderlyClose));
    }
    net.run_for(Duration::from_millis(1500));
    let acting = net.acting();
    assert_eq!(acting.len(), 1, "{acting:?}");
    let new = acting[0];
    assert_ne!(new, old);
    assert!(net.nodes[new].term(G) > old_term);
    // The firewall goes: fresh connections both ways.
    net.cut.clear();
    for j in others(3, old) {
        net.event(j, connected(old, 1));
        net.event(old, connected(j, 1));
    }
    net.run_for(Duration::from_millis(500));
    for i in 0..3 {
        for j in others(3, i) {
            assert!(net.alive_in(i, j), "n{i} sees n{j} alive after the heal");
        }
        let l = net.nodes[i].leadership(G, net.now);
        assert_eq!(
            l.leader.map(|m| m.node.as_str().to_string()),
            Some(name(new))
        );
    }
    assert_eq!(net.acting(), vec![new]);
    assert!(net.logged(others(3, old)[0], "is alive again"));
}

#[test]
fn a_node_that_peers_accept_keeps_its_name_when_a_duplicate_is_refused() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    net.run_for(Duration::from_millis(100));
    let refusal = Refusal::DuplicateName {
        node: NodeId::new("n0"),
        addr: "10.0.0.2:7101".into(),
        incarnation: 9,
    };
    net.event(
        0,
        TransportEvent::Refused {
            addr: "10.0.0.2:7101".into(),
            refusal,
        },
    );
    net.run_for(Duration::from_secs(2));
    assert!(!net.log[0].iter().any(|a| matches!(a, Action::Halt(_))));
    assert!(net.logged(0, "keeps the name"));
}

#[test]
fn duplicate_name_refusals_that_last_halt_a_node_no_peer_accepts() {
    let mut net = Net::new(1, DeathProofMode::OrderlyClose);
    let refusal = Refusal::DuplicateName {
        node: NodeId::new("n0"),
        addr: "10.0.0.1:7101".into(),
        incarnation: 9,
    };
    net.event(
        0,
        TransportEvent::Refused {
            addr: "n1".into(),
            refusal: refusal.clone(),
        },
    );
    net.run_for(Duration::from_millis(300));
    assert!(
        !net.log[0].contains(&Action::Halt(refusal.clone())),
        "not yet"
    );
    net.run_for(Duration::from_millis(400));
    assert!(net.log[0].contains(&Action::Halt(refusal)));
}

#[test]
fn a_duplicate_name_refusal_followed_by_a_connection_does_not_halt() {
    // A restart can beat the old process's close to a peer: refused once, admitted soon after.
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    let refusal = Refusal::DuplicateName {
        node: NodeId::new("n0"),
        addr: "n0".into(),
        incarnation: 9,
    };
    net.event(
        0,
        TransportEvent::Refused {
            addr: "n1".into(),
            refusal,
        },
    );
    net.run_for(Duration::from_millis(100));
    net.event(0, connected(1, 1));
    net.run_for(Duration::from_secs(2));
    assert!(!net.log[0].iter().any(|a| matches!(a, Action::Halt(_))));
}

#[test]
fn a_stale_incarnation_refusal_moves_the_node_above_the_known_incarnation() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    net.event(
        0,
        TransportEvent::Refused {
            addr: "n1".into(),
            refusal: Refusal::StaleIncarnation {
                node: NodeId::new("n0"),
                incarnation: 1,
                known: 41,
            },
        },
    );
    assert!(
        net.log[0].contains(&Action::Reincarnate { incarnation: 42 }),
        "{:?}",
        net.log[0]
    );
    assert_eq!(net.nodes[0].config().incarnation, 42);
    assert!(
        net.log[0]
            .iter()
            .any(|a| matches!(a, Action::Persist(p) if p.incarnation == 42)),
        "the new incarnation is stored"
    );
}

#[test]
fn a_claim_with_a_term_that_cannot_grow_is_ignored() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    net.run_for(Duration::from_millis(50));
    let hb = Heartbeat {
        seq: 5,
        addr: "n2".into(),
        hardware: Hardware::default(),
        labels: Labels::new(),
        members: vec![],
        claims: vec![Claim {
            group: G.into(),
            term: Term::MAX,
            member: MemberId::new("n2", 0),
        }],
        peers: vec![],
    };
    net.event(
        1,
        TransportEvent::Message(Envelope {
            from: NodeId::new("n2"),
            incarnation: 1,
            message: Message::Heartbeat(hb),
        }),
    );
    assert!(net.nodes[1].term(G) < Term::MAX);
    assert!(net.logged(1, "cannot grow"));
    // The cluster still elects.
    net.elect();
}

#[test]
fn a_term_that_cannot_grow_stops_campaigns_with_a_log_line_instead_of_wrapping() {
    let now = Instant::now();
    let mut persisted = PersistedState::default();
    persisted.groups.insert(
        G.into(),
        PersistedGroup {
            term: Term::MAX - 1,
            vote: None,
        },
    );
    let cfg = EngineConfig::new("solo", 1, Quorum::Majority([NodeId::new("solo")].into()));
    let mut e = Engine::new(
        cfg,
        Arc::new(ByMemberId),
        BTreeMap::new(),
        Some(persisted),
        now,
    );
    let mut actions = e.handle(
        now,
        Input::Join {
            group: G.into(),
            labels: Labels::new(),
            started_at_ms: 1,
        },
    );
    let later = now + Duration::from_secs(2);
    actions.extend(e.handle(later, Input::Tick));
    assert!(!e.is_acting_leader(G, later));
    assert_eq!(e.term(G), Term::MAX - 1);
    let lines = actions
        .iter()
        .filter(|a| matches!(a, Action::Event(Event::TermExhausted { .. })))
        .count();
    assert_eq!(lines, 1, "logged once: {actions:?}");
}

#[test]
fn next_term_stops_below_the_largest_u64() {
    assert_eq!(next_term(0), Some(1));
    assert_eq!(next_term(Term::MAX - 2), Some(Term::MAX - 1));
    assert_eq!(next_term(Term::MAX - 1), None);
    assert_eq!(next_term(Term::MAX), None);
}

fn mismatch(net: &mut Net, i: usize, voters: &[&str]) {
    let theirs = Fingerprint {
        voters: voters.iter().map(|v| NodeId::new(*v)).collect(),
        ..Fingerprint::default()
    };
    let ours = Fingerprint {
        voters: (0..3).map(|j| NodeId::new(name(j))).collect(),
        ..Fingerprint::default()
    };
    let m = ours.mismatch(&theirs).expect("they differ");
    net.event(
        i,
        TransportEvent::Mismatch {
            addr: "10.0.0.9:7101".into(),
            mismatch: m,
            theirs,
        },
    );
}

#[test]
fn a_conflicting_configuration_that_could_elect_makes_a_node_stand_aside() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    let leader = net.elect();
    // Nodes unknown here (n3, n4) are a majority of the other configuration's voters.
    mismatch(&mut net, leader, &["n2", "n3", "n4"]);
    assert!(!net.acting().contains(&leader), "the leader stepped down");
    assert!(net.logged(leader, "standing aside"));
    net.run_for(Duration::from_secs(2));
    assert!(
        !net.acting().contains(&leader),
        "and neither leads nor campaigns again"
    );
}

#[test]
fn a_node_standing_aside_grants_no_vote() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    net.run_for(Duration::from_millis(600));
    mismatch(&mut net, 1, &["n3", "n4", "n5"]);
    let req = VoteRequest {
        group: G.into(),
        term: 9,
        candidate: MemberId::new("n0", 0),
        handoff: None,
        pre: true,
        dead: vec![],
    };
    net.nodes[1].cfg.backoff = Duration::ZERO;
    let actions = net.nodes[1].handle(
        net.now,
        Input::Transport(TransportEvent::Message(Envelope {
            from: NodeId::new("n0"),
            incarnation: 1,
            message: Message::VoteRequest(req),
        })),
    );
    assert!(
        actions.iter().any(
            |a| matches!(a, Action::Send { message: Message::VoteResponse(r), .. } if !r.granted)
        ),
        "{actions:?}"
    );
}

#[test]
fn a_single_misconfigured_node_among_correct_voters_stops_nobody_else() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    let leader = net.elect();
    // Its voters are n0, n1 (both known to run this node's settings) and a name nobody has:
    // that configuration can never gather a majority of its own.
    mismatch(&mut net, leader, &["n0", "n1", "nx"]);
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.acting(), vec![leader]);
    assert!(!net.logged(leader, "standing aside"));
}

// ------------------------------------------------- why there is no leader; unseen voters

/// The `Log` lines node `i` emitted that contain `needle`.
fn log_lines(net: &Net, i: usize, needle: &str) -> Vec<String> {
    net.log[i]
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) if e.level() >= Level::Info && e.to_string().contains(needle) => {
                Some(e.to_string())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn why_no_leader_names_voter_states_the_quorum_and_the_favourite() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    let leader = net.elect();
    assert_eq!(net.nodes[leader].why_no_leader(G, net.now), None);
    assert!(net.nodes[leader].status(net.now).no_leader.is_empty());
    assert_eq!(net.nodes[0].why_no_leader("nosuch", net.now), None);
    // The two others go silent for the survivor: 1 of 3 voters reachable, 2 needed.
    let [b, c] = others(3, leader)[..] else {
        unreachable!()
    };
    net.isolate(b);
    net.isolate(c);
    net.run_for(Duration::from_secs(2));
    let w = net.nodes[b]
        .why_no_leader(G, net.now)
        .expect("b has no leader");
    assert_eq!(w.needed, 2);
    assert_eq!(w.reachable, vec![NodeId::new(name(b))]);
    let state = |n: usize| {
        w.voters
            .iter()
            .find(|v| v.name.as_str() == name(n))
            .unwrap()
    };
    assert_eq!(state(b).state, VoterState::Alive);
    assert!(state(b).this_node);
    assert_eq!(state(leader).state, VoterState::Silent);
    assert_eq!(state(c).state, VoterState::Silent);
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
    assert!(text.contains(&format!("{} silent", name(c))), "{text}");
    // The same reason is in `status` (the CLI shows it) and was logged exactly once though
    // the outage lasted 2 s; the log line is the Display.
    assert_eq!(net.nodes[b].status(net.now).no_leader, vec![w.clone()]);
    let lines = log_lines(&net, b, "no leader");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0], text);
}

#[test]
fn a_reset_voter_is_not_counted_as_reachable() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    let leader = net.elect();
    let [b, c] = others(3, leader)[..] else {
        unreachable!()
    };
    net.isolate(leader);
    net.event(b, reset(leader));
    let w = net.nodes[b].why_no_leader(G, net.now);
    // b still sees the leader's claim until it lapses: no reason yet.
    assert_eq!(w, None);
    net.run_for(Duration::from_millis(200));
    net.event(b, reset(c));
    if let Some(w) = net.nodes[b].why_no_leader(G, net.now) {
        let st = w
            .voters
            .iter()
            .find(|v| v.name.as_str() == name(c))
            .unwrap();
        assert_eq!(st.state, VoterState::Reset);
        assert!(!w.reachable.contains(&NodeId::new(name(c))));
    }
}

#[test]
fn a_restarted_node_reports_its_abstention_with_the_time_left() {
    let net = Net::new(3, DeathProofMode::OrderlyClose);
    // At start every node abstains for one failure timeout (500 ms) and nobody leads yet.
    let w = net.nodes[0]
        .why_no_leader(G, net.now)
        .expect("no leader yet");
    assert_eq!(w.abstaining_ms, Some(500));
    assert!(
        w.to_string()
            .contains("abstains from voting for 500 ms more"),
        "{w}"
    );
    let later = net.nodes[0]
        .why_no_leader(G, net.now + Duration::from_millis(200))
        .unwrap();
    assert_eq!(later.abstaining_ms, Some(300));
    assert!(
        w.same_reason(&later),
        "remaining time alone is no new reason"
    );
}

#[test]
fn standing_aside_is_a_reason() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    let leader = net.elect();
    mismatch(&mut net, leader, &["n2", "n3", "n4"]);
    // The others still follow the old leader's claim until it lapses; the leader itself has
    // no leader at once.
    let w = net.nodes[leader]
        .why_no_leader(G, net.now)
        .expect("it stepped down");
    let aside = w.standing_aside.clone().expect("standing aside");
    assert!(aside.contains("n2, n3, n4"), "{aside}");
    assert!(w.to_string().contains("standing aside"), "{w}");
}

#[test]
fn voters_never_seen_are_warned_about_once_after_twice_the_failure_timeout() {
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    let voters: BTreeSet<NodeId> = ["n0", "n1", "n2", "nx", "ny"]
        .into_iter()
        .map(NodeId::new)
        .collect();
    for e in &mut net.nodes {
        e.cfg.quorum = Quorum::Majority(voters.clone());
    }
    net.run_for(Duration::from_millis(900));
    assert!(
        log_lines(&net, 0, "never seen").is_empty(),
        "not before 1 s"
    );
    net.run_for(Duration::from_millis(200));
    let lines = log_lines(&net, 0, "never seen");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert!(
        net.log[0].iter().any(
            |a| matches!(a, Action::Event(e) if e.level() == Level::Warn && e.to_string() == *l)
        ),
        "a warning, not an info line: {l}"
    );
    assert!(
        l.contains("\"nx\", \"ny\"") && l.contains("cluster.voters"),
        "{l}"
    );
    assert!(l.contains("3 of the 5 voters"), "{l}");
    assert!(
        l.contains("tolerates 0 failed voter(s) instead of 2"),
        "{l}"
    );
    let w = net.nodes[0].why_no_leader(G, net.now);
    if let Some(w) = w {
        let nx = w.voters.iter().find(|v| v.name.as_str() == "nx").unwrap();
        assert_eq!(nx.state, VoterState::Unknown);
    }
    net.run_for(Duration::from_secs(3));
    assert_eq!(log_lines(&net, 0, "never seen").len(), 1, "once only");
    // With every voter seen there is no warning.
    let mut net = Net::new(3, DeathProofMode::OrderlyClose);
    net.run_for(Duration::from_secs(2));
    assert!(log_lines(&net, 0, "never seen").is_empty());
}

#[test]
fn a_status_with_reasons_survives_the_wire_and_old_json_without_them() {
    let net = Net::new(3, DeathProofMode::OrderlyClose);
    let status = net.nodes[0].status(net.now);
    assert_eq!(status.no_leader.len(), 1, "nobody leads yet");
    let msg = Message::StatusResponse(status.clone());
    let bytes = postcard::to_allocvec(&msg).unwrap();
    let back: Message = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, msg);
    // JSON written before the field existed still reads (as no reasons).
    let mut v = serde_json::to_value(&status).unwrap();
    v.as_object_mut().unwrap().remove("no_leader");
    let old: StatusSnapshot = serde_json::from_value(v).unwrap();
    assert!(old.no_leader.is_empty());
    assert_eq!(old.groups, status.groups);
}
