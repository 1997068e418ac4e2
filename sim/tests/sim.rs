//! Seeded fault schedules and targeted scenarios against the real engine.
//!
//! - `sim_300_seeds_quorum`, `sim_300_seeds_availability`: the normal run.
//! - `sim_10k_seeds` (ignored): `cargo test -p baton-sim --release -- --ignored`;
//!   `BATON_SIM_SEEDS=N` changes the count, `BATON_SIM_SEED_START=S` the first seed.
//! - `replay`: `BATON_SIM_SEED=1234 BATON_SIM_MODE=quorum cargo test -p baton-sim --test sim
//!   replay -- --nocapture` (add `BATON_SIM_TRACE=1` for a trace).

use baton_sim::{
    Mode, NetConfig, Scenario, Sim, SimConfig, SimGroup, SimQuorum, check_seed, run_seeds,
};
use std::time::{Duration, Instant};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn batch(mode: Mode, default_count: u64) {
    let start = env_u64("BATON_SIM_SEED_START").unwrap_or(0);
    let count = env_u64("BATON_SIM_SEEDS").unwrap_or(default_count);
    let t0 = Instant::now();
    let report = run_seeds(start..start + count, mode);
    println!(
        "{mode}: {} seeds in {:?}; convergence after heal: mean {:?}, max {:?} (seed {}), at most {:.0}% of the bound (seed {}); {} engine steps",
        report.runs,
        t0.elapsed(),
        report.mean_convergence(),
        report.max_convergence.0,
        report.max_convergence.1,
        report.max_of_bound.0 * 100.0,
        report.max_of_bound.1,
        report.steps
    );
    report.assert_ok();
}

#[test]
fn sim_300_seeds_quorum() {
    batch(Mode::Quorum, 300);
}

#[test]
fn sim_300_seeds_availability() {
    batch(Mode::Availability, 300);
}

#[test]
#[ignore = "10 000 seeds per mode: run in release with --ignored"]
fn sim_10k_seeds() {
    batch(Mode::Quorum, 10_000);
    batch(Mode::Availability, 10_000);
}

/// Replays `BATON_SIM_SEED` (in `BATON_SIM_MODE`, default quorum); does nothing when unset.
#[test]
fn replay() {
    let Some(seed) = env_u64("BATON_SIM_SEED") else {
        println!("set BATON_SIM_SEED (and BATON_SIM_MODE=quorum|availability) to replay a seed");
        return;
    };
    let mode = std::env::var("BATON_SIM_MODE")
        .ok()
        .map(|m| Mode::parse(&m).expect("BATON_SIM_MODE is quorum or availability"))
        .unwrap_or(Mode::Quorum);
    println!("{}", Scenario::random(seed, mode));
    match check_seed(seed, mode) {
        Ok(o) => println!(
            "seed {seed} ({mode}) passed: converged {:?} after the heal; leaders {:?}; {:?}",
            o.convergence, o.leaders, o.stats
        ),
        Err(msg) => panic!("{msg}"),
    }
}

#[test]
fn same_seed_same_run() {
    for seed in [3, 17, 99] {
        for mode in [Mode::Quorum, Mode::Availability] {
            let a = check_seed(seed, mode).expect("seed passes");
            let b = check_seed(seed, mode).expect("seed passes");
            assert_eq!(a.stats, b.stats, "seed {seed} {mode}");
            assert_eq!(a.convergence, b.convergence);
            assert_eq!(a.leaders, b.leaders);
            assert_eq!(a.end, b.end);
        }
    }
}

// ------------------------------------------------------------------ targeted scenarios

const G: &str = "g0";

fn three(seed: u64) -> Sim {
    Sim::new(SimConfig::new(seed, 3))
}

fn warm(sim: &mut Sim) -> (usize, u64) {
    let (_, agreed) = sim
        .run_until_agreed(Duration::from_secs(3))
        .unwrap()
        .expect("a leader within 3 s of start");
    let (member, term) = agreed[G].clone();
    (sim.index_of(member.node.as_str()).unwrap(), term)
}

#[test]
fn crashing_the_leader_elects_a_higher_term_within_milliseconds() {
    let mut slowest = Duration::ZERO;
    for seed in 0..20 {
        let mut sim = three(seed);
        let (old, term) = warm(&mut sim);
        sim.run_for(Duration::from_millis(300)).unwrap();
        sim.crash(old);
        let (took, agreed) = sim
            .run_until_agreed(Duration::from_secs(2))
            .unwrap()
            .expect("survivors agree");
        let (member, new_term) = &agreed[G];
        assert_ne!(member.node, *sim.node_id(old), "seed {seed}");
        assert!(*new_term > term, "seed {seed}: {new_term} > {term}");
        // Proof of death (the refused reconnect) is the fast path: no timeout is waited.
        assert!(
            took < Duration::from_millis(20),
            "seed {seed}: crash failover took {took:?}"
        );
        slowest = slowest.max(took);
    }
    println!("crash failover (virtual): slowest of 20 seeds {slowest:?}");
}

#[test]
fn a_leader_in_the_minority_steps_down_before_the_majority_elects() {
    for seed in 0..20 {
        let mut sim = three(seed);
        let (old, term) = warm(&mut sim);
        sim.run_for(Duration::from_millis(250)).unwrap();
        let rest: Vec<usize> = (0..3).filter(|&i| i != old).collect();
        sim.partition(&[vec![old], rest.clone()]);
        let t0 = sim.now();
        // The old leader stops acting on its own …
        let stepped_down = sim
            .run_until_pred(Duration::from_secs(2), |s| s.acting_leaders(G).is_empty())
            .unwrap()
            .expect("the isolated leader steps down");
        let down_at = t0 + stepped_down;
        assert!(
            stepped_down <= sim.config().failure_timeout,
            "seed {seed}: stepped down after {stepped_down:?}"
        );
        // … and only then does the majority side elect a new one.
        sim.run_until_pred(Duration::from_secs(3), |s| {
            s.acting_leader(G).is_some_and(|l| l != old)
        })
        .unwrap()
        .expect("the majority elects a new leader");
        assert!(sim.now() > down_at, "seed {seed}");
        let new = sim.acting_leader(G).unwrap();
        assert!(rest.contains(&new));
        assert!(sim.engine(new).unwrap().term(G) > term);
        assert!(!sim.engine(old).unwrap().is_acting_leader(G, sim.instant()));
        // Heal: everyone follows the majority's leader.
        sim.heal_partitions();
        let (_, agreed) = sim
            .run_until_agreed(Duration::from_secs(2))
            .unwrap()
            .expect("agreement after the heal");
        assert_eq!(agreed[G].0.node, *sim.node_id(new), "seed {seed}");
    }
}

#[test]
fn graceful_handoff_has_no_gap_in_timeouts_and_no_overlap() {
    let mut slowest = Duration::ZERO;
    for seed in 0..20 {
        let mut sim = three(seed);
        let (old, term) = warm(&mut sim);
        sim.run_for(Duration::from_millis(330)).unwrap();
        sim.shutdown(old);
        // Invariant (b) is checked after every step: no overlap. The successor must lead
        // within a few network trips, far below any timeout or backoff.
        let took = sim
            .run_until_pred(Duration::from_secs(2), |s| s.acting_leader(G).is_some())
            .unwrap()
            .expect("the successor leads");
        assert!(
            took < sim.config().backoff,
            "seed {seed}: handoff took {took:?}"
        );
        slowest = slowest.max(took);
        let new = sim.acting_leader(G).unwrap();
        assert_ne!(new, old);
        assert!(sim.engine(new).unwrap().term(G) > term);
        let (_, agreed) = sim
            .run_until_agreed(Duration::from_secs(1))
            .unwrap()
            .expect("survivors agree");
        assert_eq!(agreed[G].0.node, *sim.node_id(new));
    }
    println!("graceful handoff (virtual): slowest of 20 seeds {slowest:?}");
}

#[test]
fn leaving_and_rejoining_members_keep_one_leader() {
    let mut cfg = SimConfig::new(5, 5);
    cfg.groups = vec![SimGroup::new("g0"), SimGroup::new("g1")];
    let mut sim = Sim::new(cfg);
    warm(&mut sim);
    for round in 0..6 {
        let leader = sim.acting_leader("g1").expect("g1 has a leader");
        sim.leave(leader, "g1");
        sim.run_for(Duration::from_millis(50)).unwrap();
        let (_, agreed) = sim
            .run_until_agreed(Duration::from_secs(2))
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: no agreement{}", sim.describe()));
        assert_ne!(agreed["g1"].0.node, *sim.node_id(leader));
        sim.join(leader, "g1");
        sim.run_for(Duration::from_millis(200)).unwrap();
    }
}

#[test]
fn restarting_every_node_with_persistence_keeps_terms_growing() {
    let mut sim = Sim::new(SimConfig::new(9, 3));
    let (_, before) = warm(&mut sim);
    for i in 0..3 {
        sim.crash(i);
    }
    sim.run_for(Duration::from_millis(10)).unwrap();
    for i in 0..3 {
        sim.restart(i);
    }
    // Invariant (c) across the restart is checked after every step; the new leadership's
    // term is above the old one because the votes survived.
    let (_, agreed) = sim
        .run_until_agreed(Duration::from_secs(3))
        .unwrap()
        .expect("agreement after a full restart");
    assert!(agreed[G].1 > before);
}

#[test]
fn lossy_reordering_network_still_elects_one_leader() {
    let mut cfg = SimConfig::new(11, 5);
    cfg.net = NetConfig {
        min_latency: Duration::from_micros(100),
        max_latency: Duration::from_millis(40),
        drop: 0.1,
        duplicate: 0.1,
        straggle: 0.02,
        straggle_max: Duration::from_secs(1),
    };
    let mut sim = Sim::new(cfg);
    sim.run_for(Duration::from_secs(5)).unwrap();
    sim.set_net(NetConfig::calm());
    sim.run_until_agreed(Duration::from_secs(2))
        .unwrap()
        .expect("agreement once the network calms down");
}

#[test]
fn availability_mode_split_brain_heals_to_one_leader() {
    let mut cfg = SimConfig::new(13, 4);
    cfg.quorum = SimQuorum::None;
    let mut sim = Sim::new(cfg);
    warm(&mut sim);
    sim.partition(&[vec![0, 1], vec![2, 3]]);
    sim.run_for(Duration::from_secs(2)).unwrap();
    // Both sides lead (the documented behaviour of quorum = "none").
    assert_eq!(sim.acting_leaders(G).len(), 2, "{}", sim.describe());
    sim.heal_partitions();
    sim.run_until_agreed(Duration::from_secs(2))
        .unwrap()
        .expect("one leader after the heal");
}

/// A resignation is about one term. A late copy of an old `StepDown` must not let its
/// successor use it against a newer leadership of the same member: voters that still remember
/// the old resignation would grant "at once" while the new leader holds a lease on their acks.
#[test]
fn a_stale_resignation_does_not_unlock_votes_against_a_newer_leadership() {
    use baton_core::message::Message;
    use baton_sim::{PolicyKind, Verdict};
    use std::cell::Cell;
    use std::rc::Rc;

    let mut cfg = SimConfig::new(21, 4);
    cfg.quorum = SimQuorum::Majority(vec![1, 2, 3]);
    cfg.groups = vec![SimGroup {
        name: G.into(),
        policy: PolicyKind::MemberId,
        preempt: true,
    }];
    let mut sim = Sim::new(cfg);
    // n0 joins late, as the best-ranked member: the leader n1 hands off to it (preemption).
    sim.leave(0, G);
    let (l, t1) = warm(&mut sim);
    assert_eq!(l, 1);
    // A new leader serves one failure timeout before it may preempt itself.
    sim.run_for(Duration::from_millis(600)).unwrap();
    // StepDowns reach n0 2 s late. After the first, nothing passes from n0 to n1, so n1 soon
    // counts n0 down and stops preempting itself (until then it keeps winning and handing
    // off). n0 hears nothing but answers to its vote requests, which are lost until n1 (next
    // in rank) leads for good.
    let muted = Rc::new(Cell::new(true));
    let first = Rc::new(Cell::new(true));
    let (m, f) = (muted.clone(), first.clone());
    sim.intercept(move |_, from, to, msg| match (from, to, msg) {
        (_, 0, Message::StepDown(_)) => {
            f.set(false);
            Verdict::After(Duration::from_secs(2))
        }
        // n0 hears nothing else of the newer terms but the voters' answers.
        (_, 0, Message::VoteResponse(_)) => Verdict::Pass,
        (_, 0, _) => Verdict::Drop,
        (0, 1, _) if !f.get() => Verdict::Drop,
        (0, _, Message::VoteRequest(_)) if m.get() => Verdict::Drop,
        _ => Verdict::Pass,
    });
    sim.join(0, G);
    let delayed_at = sim.now() + Duration::from_secs(2);
    // n1 leads again, in a newer term, for good.
    let mut since = None;
    sim.run_until_pred(Duration::from_millis(1500), |s| {
        if s.acting_leader(G) == Some(1) {
            let at = *since.get_or_insert(s.now());
            s.now() - at > Duration::from_millis(300)
        } else {
            since = None;
            false
        }
    })
    .unwrap()
    .expect("n1 leads again");
    let t2 = sim.engine(1).unwrap().term(G);
    assert!(t2 > t1);
    assert!(sim.now() < delayed_at);
    // n0 now learns of term t2 from the voters' answers, then gets the stale StepDown naming
    // it successor. Invariant (b) is checked after every step.
    muted.set(false);
    sim.run_until(delayed_at + Duration::from_millis(500))
        .unwrap();
    assert_eq!(sim.acting_leader(G), Some(1), "{}", sim.describe());
}
