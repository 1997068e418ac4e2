//! Seeded fault schedules and targeted scenarios against the real engine.
//!
//! - `sim_300_seeds_quorum`, `sim_300_seeds_availability`: the normal run (3–7 nodes by seed).
//! - `sim_10k_seeds` (ignored), the long run: 10 000 seeds × 3, 5 and 7 nodes × both modes,
//!   `cargo test -p baton-sim --release -- --ignored --nocapture`. `BATON_SIM_SEEDS=N` changes
//!   the count, `BATON_SIM_SEED_START=S` the first seed, `BATON_SIM_SIZES=3,4` the sizes,
//!   `BATON_SIM_DRIFT=F` the clock drift (a fraction of the safe bound, default 0.9).
//! - Issue 9 (orderly closes, middlebox resets, death-proof modes):
//!   `a_leader_isolated_by_a_middlebox_reset_never_overlaps_and_rejoins_after_the_heal`,
//!   `a_middlebox_reset_is_abrupt_never_proves_death_and_ends_with_a_fresh_handshake`,
//!   `a_crash_closes_in_order_and_only_orderly_close_mode_reports_the_refusal`,
//!   `timeout_mode_finds_a_crashed_leader_by_its_silence`, and
//!   `a_transport_that_takes_a_reset_for_a_death_splits_the_brain` (the checks catch the old
//!   transport); ignored: `middlebox_reset_of_the_leader_many_seeds` (3 000 runs of the
//!   leader-isolation scenario) and `a_node_wrongly_proven_dead_rejoins_on_a_fresh_handshake`
//!   (waits for the engine's rejoin rule).
//! - `replay`: `BATON_SIM_SEED=1234 BATON_SIM_MODE=quorum cargo test -p baton-sim --test sim
//!   replay -- --nocapture` (add `BATON_SIM_TRACE=1` for a trace; a failure prints the exact
//!   command, with `BATON_SIM_NODES` / `BATON_SIM_DRIFT` when they matter).
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "test code: a panic is the failure report, printing is its log (clippy exempts only #[test] fns)"
)]

use baton_sim::{
    Agreement, BatchReport, Clock, Mode, NetConfig, Params, Scenario, Sim, SimConfig, SimGroup,
    SimQuorum, Violation, check_seed, run_seeds,
};
use std::time::Duration;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn seeds(default_count: u64) -> std::ops::Range<u64> {
    let start = env_u64("BATON_SIM_SEED_START").unwrap_or(0);
    let count = env_u64("BATON_SIM_SEEDS").unwrap_or(default_count);
    start..start + count
}

/// Drift, reordering, middlebox resets and timeout mode are really on in the random schedules,
/// and drift stays within the bound it was asked for.
fn assert_coverage(report: &BatchReport, params: &Params) {
    let ok = report.runs - report.failures.len() as u64;
    if ok < 50 {
        return;
    }
    // The seeds that did each, and the share of the `ok` ones they must at least be.
    // Issue 9: middlebox resets and timeout-mode runs are really in the schedules, and the
    // orderly-close proof still is too.
    let shares = [
        (report.drifting_seeds, (8, 10), "had drifting clocks"),
        (report.reordered_seeds, (3, 4), "reordered messages"),
        (report.reset_seeds, (1, 4), "reset a connection"),
        (report.timeout_seeds, (15, 100), "ran in timeout mode"),
    ];
    for (seeds, (num, den), what) in shares {
        assert!(seeds * den >= ok * num, "only {seeds} of {ok} seeds {what}");
    }
    assert!(report.proofs > 0, "no proof of death was ever delivered");
    // The spread is max/min − 1; with rates in [1 − ρ/2, 1 + ρ/2] it stays below
    // ρ/(1 − ρ/2), which for ρ = drift × β is a little above drift × β.
    let beta_max = 1.0 / 7.0; // the largest safe bound of the random timings (ft = 4 heartbeats)
    let rho = params.drift * beta_max;
    assert!(
        report.max_spread_of_bound.0 <= params.drift / (1.0 - rho / 2.0) + 1e-9,
        "clock spread {:.3} of the bound exceeds the requested {}",
        report.max_spread_of_bound.0,
        params.drift
    );
}

fn batch(mode: Mode, default_count: u64) {
    let params = Params::from_env();
    let report = run_seeds(seeds(default_count), mode, &params);
    println!("{mode}, 3-7 nodes: {report}");
    report.assert_ok();
    assert_coverage(&report, &params);
}

#[test]
fn sim_300_seeds_quorum() {
    batch(Mode::Quorum, 300);
}

#[test]
fn sim_300_seeds_availability() {
    batch(Mode::Availability, 300);
}

/// The long run: every seed at every size, in both modes; one line per (mode, size).
#[test]
#[ignore = "10 000 seeds x 3 sizes x 2 modes: run in release with --ignored --nocapture"]
fn sim_10k_seeds() {
    let range = seeds(10_000);
    let base = Params::from_env();
    let sizes: Vec<usize> = match (base.nodes, std::env::var("BATON_SIM_SIZES")) {
        (Some(n), _) => vec![n],
        (None, Ok(v)) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("BATON_SIM_SIZES is a list like 3,5,7")
            })
            .collect(),
        (None, Err(_)) => vec![3, 5, 7],
    };
    println!(
        "long run: seeds {}..{} x {sizes:?} nodes x 2 modes; clock drift {} x the safe bound (9 seeds in 10), reordering network",
        range.start, range.end, base.drift
    );
    let variants = sizes.iter().map(|&n| {
        let params = Params {
            nodes: Some(n),
            ..base
        };
        (format!("{n} nodes"), params)
    });
    long_run("long run", range, variants.collect(), assert_coverage);
}

/// Runs the seeds of `range` in both modes for each variant (its label, its params), one line
/// per (mode, variant), and `check`s every report without a failure; then the time taken, every
/// failing seed, and the first failing report's failure.
fn long_run(
    what: &str,
    range: std::ops::Range<u64>,
    variants: Vec<(String, Params)>,
    check: impl Fn(&BatchReport, &Params),
) {
    let t0 = std::time::Instant::now();
    let mut failed = Vec::new();
    for mode in [Mode::Quorum, Mode::Availability] {
        for (label, params) in &variants {
            let report = run_seeds(range.clone(), mode, params);
            println!("{mode:<12} {label}: {report}");
            if report.failures.is_empty() {
                check(&report, params);
            } else {
                failed.push((mode, label, report));
            }
        }
    }
    println!(
        "{what}: {} runs in {:.1} s",
        range.count() * variants.len() * 2,
        t0.elapsed().as_secs_f64()
    );
    for (mode, label, report) in &failed {
        println!(
            "{mode} {label}: failing seeds {:?}",
            report.failures.iter().map(|(s, _)| *s).collect::<Vec<_>>()
        );
    }
    if let Some((_, _, report)) = failed.first() {
        report.assert_ok();
    }
}

/// The long run's many-group schedules (issue 11): the faults of the first seeds, with 50 and
/// 200 groups per cluster (random policies and preemption, each group joined by every node),
/// in both modes; every invariant holds in every group. `BATON_SIM_SEEDS` sets the count
/// (default 100 per size), `BATON_SIM_GROUPS` a single group count.
#[test]
#[ignore = "long: cargo test -p baton-sim --release -- --ignored sim_many_groups"]
fn sim_many_groups() {
    let range = seeds(100);
    let base = Params::from_env();
    let counts: Vec<usize> = base.groups.map_or(vec![50, 200], |g| vec![g]);
    let variants = counts.iter().map(|&g| {
        let params = Params {
            groups: Some(g),
            ..base
        };
        (format!("{g} groups"), params)
    });
    long_run("many groups", range, variants.collect(), |_, _| {});
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
    let params = Params::from_env();
    println!("{}", Scenario::random_with(seed, mode, &params));
    match check_seed(seed, mode, &params) {
        Ok(o) => println!(
            "seed {seed} ({mode}) passed: converged {:?} after the heal; leaders {:?}; {:?}",
            o.convergence, o.leaders, o.stats
        ),
        Err(msg) => panic!("{msg}"),
    }
}

#[test]
fn same_seed_same_run() {
    for (seed, nodes) in [(3, None), (17, Some(3)), (99, Some(7))] {
        let params = Params {
            nodes,
            ..Params::default()
        };
        for mode in [Mode::Quorum, Mode::Availability] {
            let a = check_seed(seed, mode, &params).expect("seed passes");
            let b = check_seed(seed, mode, &params).expect("seed passes");
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

/// Runs `sim` until every node agrees on the leaders, for at most `max`: how long that took
/// and what they agree on. Panics with `what` when they do not, and on any violation.
fn agree(sim: &mut Sim, max: Duration, what: &str) -> (Duration, Agreement) {
    sim.run_until_agreed(max).unwrap().expect(what)
}

/// How long the nodes get to agree again once a fault is over (a crash, a heal, a calm
/// network): far more than the protocol needs, so that only a real failure to agree fails.
const SETTLE: Duration = Duration::from_secs(2);

fn warm(sim: &mut Sim) -> (usize, u64) {
    let (_, agreed) = agree(sim, Duration::from_secs(3), "a leader within 3 s of start");
    let (member, term) = agreed[G].clone();
    (sim.index_of(member.node.as_str()).unwrap(), term)
}

/// [`three`] nodes of `seed` once one leads: the sim, the leader's index and its term, after
/// `steady_ms` more of steady state.
fn three_led(seed: u64, steady_ms: u64) -> (Sim, usize, u64) {
    let mut sim = three(seed);
    let (leader, term) = warm(&mut sim);
    sim.run_for(Duration::from_millis(steady_ms)).unwrap();
    (sim, leader, term)
}

/// Runs `failover`, the check of one seed that returns how long its failover took, for seeds
/// 0 to 19, and prints the slowest as `what`'s.
fn slowest_of_20_seeds(what: &str, failover: impl Fn(u64) -> Duration) {
    let slowest = (0..20).map(failover).max().unwrap_or_default();
    println!("{what} (virtual): slowest of 20 seeds {slowest:?}");
}

#[test]
fn crashing_the_leader_elects_a_higher_term_within_milliseconds() {
    slowest_of_20_seeds("crash failover", |seed| {
        let (mut sim, old, term) = three_led(seed, 300);
        sim.crash(old);
        let (took, agreed) = agree(&mut sim, SETTLE, "survivors agree");
        let (member, new_term) = &agreed[G];
        assert_ne!(member.node, *sim.node_id(old), "seed {seed}");
        assert!(*new_term > term, "seed {seed}: {new_term} > {term}");
        // Proof of death (the refused reconnect) is the fast path: no timeout is waited.
        assert!(
            took < Duration::from_millis(20),
            "seed {seed}: crash failover took {took:?}"
        );
        took
    });
}

#[test]
fn a_leader_in_the_minority_steps_down_before_the_majority_elects() {
    for seed in 0..20 {
        let (mut sim, old, term) = three_led(seed, 250);
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
        assert!(!sim.is_acting(old, G));
        // Heal: everyone follows the majority's leader.
        sim.heal_partitions();
        let (_, agreed) = agree(&mut sim, SETTLE, "agreement after the heal");
        assert_eq!(agreed[G].0.node, *sim.node_id(new), "seed {seed}");
    }
}

#[test]
fn graceful_handoff_has_no_gap_in_timeouts_and_no_overlap() {
    slowest_of_20_seeds("graceful handoff", |seed| {
        let (mut sim, old, term) = three_led(seed, 330);
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
        let new = sim.acting_leader(G).unwrap();
        assert_ne!(new, old);
        assert!(sim.engine(new).unwrap().term(G) > term);
        let (_, agreed) = agree(&mut sim, Duration::from_secs(1), "survivors agree");
        assert_eq!(agreed[G].0.node, *sim.node_id(new));
        took
    });
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
    let (_, agreed) = agree(
        &mut sim,
        Duration::from_secs(3),
        "agreement after a full restart",
    );
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
    agree(&mut sim, SETTLE, "agreement once the network calms down");
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
    agree(&mut sim, SETTLE, "one leader after the heal");
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

// ------------------------------------------------------------------ clock drift

/// Three nodes whose clocks start at random offsets (0–5 s apart) and keep true time until
/// the leader is known; then the leader's clock runs at `leader_rate` and the others' at
/// `others_rate` (the worst case for the lease is a slow leader and fast voters), and after a
/// second at those rates the leader is cut off from the other two. Returns the true times,
/// after the cut, at which the old leader stopped acting and the new one started — or the
/// invariant violation (checked after every step, in true time).
fn isolate_a_drifting_leader(
    seed: u64,
    leader_rate: f64,
    others_rate: f64,
) -> Result<(Duration, Duration), Violation> {
    let mut sim = Sim::new(SimConfig::new(seed, 3).with_drift(0.0));
    let (old, _) = warm(&mut sim);
    for i in 0..3 {
        sim.set_clock_rate(i, if i == old { leader_rate } else { others_rate });
    }
    sim.run_for(Duration::from_millis(1000 + seed * 7))?;
    assert_eq!(
        sim.acting_leader(G),
        Some(old),
        "seed {seed}: {}",
        sim.describe()
    );
    let rest: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    sim.partition(&[vec![old], rest]);
    let down = sim
        .run_until_pred(Duration::from_secs(3), |s| !s.is_acting(old, G))?
        .expect("the isolated leader steps down");
    let up = sim
        .run_until_pred(Duration::from_secs(3), |s| {
            s.acting_leader(G).is_some_and(|l| l != old)
        })?
        .expect("the majority elects a new leader");
    Ok((down, down + up))
}

/// Within the bound, a partition of the leader never gives two acting leaders: the old one
/// stops before the new one starts, at both readings of the bound. At the default timing
/// (ft 500 ms, lease 400 ms, β = 1/9):
/// - rates 0.95 / 1.05 (spread ρ = 0.1 ≈ 0.9 β, what the random schedules use): the lease
///   ends after 400/0.95 = 421 ms of true time, the voters' promises after 500/1.05 = 476 ms;
/// - rates 0.9 / 1.1 (ρ = 0.2 = 1.8 β; each rate within β of the pair's mean, ratio
///   1.22 < ft/lease = 1.25): 444 ms against 455 ms — the margin shrinks to ~10 ms.
#[test]
fn clock_drift_within_the_bound_keeps_one_leader_through_a_partition_of_the_leader() {
    let beta = SimConfig::new(0, 3).drift_bound();
    assert!((beta - 1.0 / 9.0).abs() < 1e-9);
    let (ft, lease) = (Duration::from_millis(500), Duration::from_millis(400));
    for rho in [0.9 * beta, 1.8 * beta] {
        let (slow, fast) = (1.0 - rho / 2.0, 1.0 + rho / 2.0);
        // The voters' promises outlast the lease by at least this much of true time (more
        // when the voters heard the leader after it sent the heartbeat the lease rests on).
        let margin = ft.div_f64(fast) - lease.div_f64(slow);
        let mut gaps = Vec::new();
        for seed in 0..20 {
            let (down, up) = isolate_a_drifting_leader(seed, slow, fast)
                .unwrap_or_else(|v| panic!("seed {seed}, rates {slow}/{fast}: {v}"));
            // The old leader's lease ran its course on the slow clock …
            assert!(
                down <= (lease + Duration::from_millis(100)).div_f64(slow),
                "seed {seed}: stepped down after {down:?}"
            );
            // … and the new one started no earlier than the margin says.
            assert!(
                up >= down + margin - Duration::from_micros(100),
                "seed {seed}: old leader stopped at {down:?}, new one started at {up:?}"
            );
            gaps.push(up - down);
        }
        println!(
            "leader at x{slow:.3}, voters at x{fast:.3}: the new leader started {:?}..{:?} after the old one stopped (margin {margin:?})",
            gaps.iter().min().unwrap(),
            gaps.iter().max().unwrap()
        );
    }
}

/// Documentation of the bound's necessity: with rates 0.8 / 1.2 (ρ = 40 %, far beyond
/// β = 11 %), the voters' promises (500/1.2 = 417 ms of true time) lapse long before the
/// isolated leader's lease (400/0.8 = 500 ms) and the majority elects while the old leader
/// still acts. Deterministic: the same violation on every seed.
#[test]
fn clock_drift_far_beyond_the_bound_breaks_invariant_b() {
    for seed in 0..20 {
        let run = isolate_a_drifting_leader(seed, 0.8, 1.2);
        assert_split_brain(run, &format!("seed {seed}, 40 % drift"));
    }
}

/// Offsets and drift are invisible to a healthy cluster: the random clocks of `with_drift`
/// at the default spread elect, fail over on a crash in milliseconds and hand off kindly.
#[test]
fn drifting_clocks_elect_fail_over_and_hand_off() {
    for seed in 0..10 {
        let mut cfg = SimConfig::new(seed, 5).with_drift(0.1);
        cfg.clocks[0] = Clock::new(0.95, Duration::from_secs(4));
        let mut sim = Sim::new(cfg);
        let (old, term) = warm(&mut sim);
        sim.crash(old);
        let (took, agreed) = agree(&mut sim, SETTLE, "survivors agree");
        assert!(agreed[G].1 > term);
        assert!(took < Duration::from_millis(20), "seed {seed}: {took:?}");
        let (next, _) = warm(&mut sim);
        sim.shutdown(next);
        agree(&mut sim, Duration::from_secs(1), "handoff");
    }
}

// ------------------------------------------------------------------ resets and death proofs

use baton_core::{CloseKind, DeathProofMode, Incarnation, TransportEvent};
use baton_sim::{ResetWay, liveness_bound};

/// What a node's process ending looks like: its links close in order, and (orderly-close mode)
/// the redial is refused — `Dead{RefusedAfterOrderlyClose}` — or (timeout mode) nothing more.
#[test]
fn a_crash_closes_in_order_and_only_orderly_close_mode_reports_the_refusal() {
    for mode in [DeathProofMode::OrderlyClose, DeathProofMode::Timeout] {
        let mut sim = Sim::new(SimConfig::new(1, 3).with_death_proof(mode));
        let (old, _) = warm(&mut sim);
        sim.run_for(Duration::from_millis(200)).unwrap();
        sim.record_transport_events(true);
        sim.crash(old);
        sim.run_for(Duration::from_millis(50)).unwrap();
        let old_id = sim.node_id(old).clone();
        let about: Vec<&TransportEvent> =
            sim.transport_events()
                .iter()
                .map(|(_, _, e)| e)
                .filter(|e| match e {
                    TransportEvent::Disconnected { node, .. }
                    | TransportEvent::Dead { node, .. } => *node == old_id,
                    _ => false,
                })
                .collect();
        let orderly = about
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    TransportEvent::Disconnected {
                        how: CloseKind::Orderly,
                        ..
                    }
                )
            })
            .count();
        let dead = about
            .iter()
            .filter(|e| matches!(e, TransportEvent::Dead { .. }))
            .count();
        assert_eq!(orderly, 2, "{mode}: {about:?}");
        let want = if mode == DeathProofMode::OrderlyClose {
            2
        } else {
            0
        };
        assert_eq!(dead, want, "{mode}: {about:?}");
        assert_eq!(about.len(), orderly + dead, "{mode}: {about:?}");
    }
}

/// In timeout mode a crashed leader is found by its silence only: the survivors elect after
/// about one failure timeout, not within milliseconds.
#[test]
fn timeout_mode_finds_a_crashed_leader_by_its_silence() {
    for seed in 0..10 {
        let mut sim = Sim::new(SimConfig::new(seed, 3).with_death_proof(DeathProofMode::Timeout));
        let (old, term) = warm(&mut sim);
        sim.run_for(Duration::from_millis(300)).unwrap();
        sim.crash(old);
        let (took, agreed) = sim
            .run_until_agreed(liveness_bound(
                sim.config().failure_timeout,
                sim.config().backoff,
            ))
            .unwrap()
            .expect("survivors agree");
        assert!(agreed[G].1 > term);
        assert_ne!(agreed[G].0.node, *sim.node_id(old));
        assert!(
            took >= sim.config().failure_timeout - sim.config().heartbeat,
            "seed {seed}: failover after {took:?} without a proof"
        );
        assert_eq!(sim.stats().proofs, 0, "seed {seed}");
    }
}

/// Who is told of a middlebox reset: the end(s) the rule answers, with `Disconnected{Abrupt}`
/// about each peer; never a `Dead`. After it ends, both ends of each link see `Connected` with
/// the same incarnation (a fresh handshake).
#[test]
fn a_middlebox_reset_is_abrupt_never_proves_death_and_ends_with_a_fresh_handshake() {
    for way in [ResetWay::Both, ResetWay::Outgoing, ResetWay::Incoming] {
        let mut sim = Sim::new(SimConfig::new(2, 5));
        let (l, _) = warm(&mut sim);
        sim.run_for(Duration::from_millis(200)).unwrap();
        sim.record_transport_events(true);
        sim.middlebox_reset(l, way);
        sim.run_for(Duration::from_millis(1200)).unwrap();
        let resets: Vec<(usize, String)> = sim
            .transport_events()
            .iter()
            .filter_map(|(_, to, e)| match e {
                TransportEvent::Disconnected { node, how } => {
                    assert_eq!(*how, CloseKind::Abrupt, "{way:?}");
                    Some((*to, node.to_string()))
                }
                TransportEvent::Dead { .. } => panic!("{way:?}: a Dead for a live process: {e:?}"),
                _ => None,
            })
            .collect();
        let leader_told = resets.iter().filter(|(to, _)| *to == l).count();
        let peers_told = resets.iter().filter(|(to, _)| *to != l).count();
        let (want_leader, want_peers) = match way {
            ResetWay::Both => (4, 4),
            ResetWay::Outgoing => (4, 0),
            ResetWay::Incoming => (0, 4),
        };
        assert_eq!(
            (leader_told, peers_told),
            (want_leader, want_peers),
            "{way:?}: {resets:?}"
        );
        // Nothing passes while the reset lasts.
        assert!(!sim.not_seen_alive().is_empty(), "{way:?}");
        let connected_before = sim.transport_events().len();
        sim.end_resets();
        sim.run_for(Duration::from_millis(50)).unwrap();
        let mut handshakes: Vec<(usize, String, Incarnation)> = sim.transport_events()
            [connected_before..]
            .iter()
            .filter_map(|(_, to, e)| match e {
                TransportEvent::Connected {
                    node, incarnation, ..
                } => Some((*to, node.to_string(), *incarnation)),
                _ => None,
            })
            .collect();
        handshakes.sort();
        handshakes.dedup();
        for j in (0..5).filter(|&j| j != l) {
            assert!(
                handshakes.contains(&(j, sim.node_id(l).to_string(), sim.incarnation(l))),
                "{way:?}: n{j} sees no fresh handshake with the old leader: {handshakes:?}"
            );
            assert!(
                handshakes.contains(&(l, sim.node_id(j).to_string(), sim.incarnation(j))),
                "{way:?}: the old leader sees no fresh handshake with n{j}: {handshakes:?}"
            );
        }
        assert_eq!(sim.stats().proofs, 0);
    }
}

/// Issue 9: the leader cut off by a middlebox that resets its connections and refuses its
/// redials (both directions; one-sided in its own OUTPUT chain; one-sided in every peer's)
/// for 1–2 s, then healed. Invariant (b) — never two acting leaders — is checked after every
/// step; a reset never proves death, so the majority elects only after the failure timeout,
/// when the isolated leader's lease has run out. After the heal: one agreed leader within the
/// liveness bound, the old leader alive again in every engine's view (no restart), and the
/// cluster still fails over when the new leader is killed.
#[test]
fn a_leader_isolated_by_a_middlebox_reset_never_overlaps_and_rejoins_after_the_heal() {
    let mut runs = 0;
    let mut slowest = Duration::ZERO;
    for nodes in [3, 5] {
        for way in [ResetWay::Both, ResetWay::Outgoing, ResetWay::Incoming] {
            for mode in [DeathProofMode::OrderlyClose, DeathProofMode::Timeout] {
                for seed in 0..4u64 {
                    let took = isolate_the_leader_by_a_reset(seed, nodes, way, mode)
                        .unwrap_or_else(|v| {
                            panic!("seed {seed}, {nodes} nodes, {way:?}, {mode}: {v}")
                        });
                    slowest = slowest.max(took);
                    runs += 1;
                }
            }
        }
    }
    println!(
        "middlebox reset of the leader: {runs} runs, slowest agreement after the heal {slowest:?}"
    );
}

/// The same at many seeds (`BATON_SIM_SEEDS`, default 250 per size, way and mode; seeds from
/// `BATON_SIM_SEED_START`): `cargo test -p baton-sim --release -- --ignored --nocapture
/// middlebox_reset_of_the_leader_many_seeds`.
#[test]
#[ignore = "3 000 runs: release, --ignored"]
fn middlebox_reset_of_the_leader_many_seeds() {
    let t0 = std::time::Instant::now();
    let range = seeds(250);
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut slowest = (
        Duration::ZERO,
        0,
        0,
        ResetWay::Both,
        DeathProofMode::OrderlyClose,
    );
    for nodes in [3, 5] {
        for way in [ResetWay::Both, ResetWay::Outgoing, ResetWay::Incoming] {
            for mode in [DeathProofMode::OrderlyClose, DeathProofMode::Timeout] {
                for seed in range.clone() {
                    runs += 1;
                    let r = std::panic::catch_unwind(|| {
                        isolate_the_leader_by_a_reset(seed, nodes, way, mode)
                    });
                    match r {
                        Ok(Ok(took)) => {
                            if took > slowest.0 {
                                slowest = (took, seed, nodes, way, mode);
                            }
                        }
                        Ok(Err(v)) => failures
                            .push(format!("seed {seed}, {nodes} nodes, {way:?}, {mode}: {v}")),
                        Err(_) => failures.push(format!(
                            "seed {seed}, {nodes} nodes, {way:?}, {mode}: panicked"
                        )),
                    }
                }
            }
        }
    }
    println!(
        "middlebox reset of the leader: {runs} runs, {} failed, {:.1} s; slowest agreement with everyone alive after the heal {:?} (seed {}, {} nodes, {:?}, {})",
        failures.len(),
        t0.elapsed().as_secs_f64(),
        slowest.0,
        slowest.1,
        slowest.2,
        slowest.3,
        slowest.4
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn isolate_the_leader_by_a_reset(
    seed: u64,
    nodes: usize,
    way: ResetWay,
    mode: DeathProofMode,
) -> Result<Duration, Violation> {
    let cfg = SimConfig::new(seed, nodes)
        .with_drift(0.1)
        .with_death_proof(mode);
    let bound = liveness_bound(cfg.failure_timeout, cfg.backoff).div_f64(0.95);
    let mut sim = Sim::new(cfg);
    let (old, term) = warm(&mut sim);
    sim.run_for(Duration::from_millis(150 + seed * 37))?;
    let lasting = Duration::from_millis(1000 + (seed * 389) % 1000);
    sim.middlebox_reset(old, way);
    sim.run_for(lasting)?;
    // The majority elected meanwhile (after the old lease ran out: invariant (b)).
    let new = sim
        .acting_leader(G)
        .unwrap_or_else(|| panic!("no leader during the reset{}", sim.describe()));
    assert_ne!(new, old);
    assert!(sim.engine(new).unwrap().term(G) > term);
    assert_eq!(sim.stats().proofs, 0, "a reset proved a death");
    sim.end_resets();
    let took = sim
        .run_until_pred(bound, |s| {
            s.agreement().is_some() && s.not_seen_alive().is_empty()
        })?
        .unwrap_or_else(|| {
            panic!(
                "no agreement with every node alive {bound:?} after the heal: not alive {:?}{}",
                sim.not_seen_alive(),
                sim.describe()
            )
        });
    // Still so a while later, with every node alive in every view.
    sim.run_for(Duration::from_millis(500))?;
    let agreed = sim.agreement().expect("agreement holds");
    assert!(sim.not_seen_alive().is_empty(), "{}", sim.describe());
    assert!(agreed[G].1 > term);
    // The cluster still elects when the new leader is killed after the heal.
    let leader = sim.index_of(agreed[G].0.node.as_str()).unwrap();
    sim.crash(leader);
    sim.run_until_agreed(bound)?
        .unwrap_or_else(|| panic!("no leader after killing the new one{}", sim.describe()));
    Ok(took)
}

/// Asserts that `run` ended on invariant (b): two leaders acted at once (`what`: the case).
fn assert_split_brain<T: std::fmt::Debug>(run: Result<T, Violation>, what: &str) {
    let err = run.expect_err(&format!("{what}: two leaders act at once"));
    assert!(
        err.message.contains("invariant (b) violated"),
        "{what}: {err}"
    );
}

/// `cfg` on the pre-issue-9 transport ([`SimConfig::legacy_reset_proofs`]): elects, runs a
/// little, then a middlebox resets the leader's connections (`way`).
fn reset_the_leader_on_the_legacy_transport(mut cfg: SimConfig, way: ResetWay) -> Sim {
    let seed = cfg.seed;
    cfg.legacy_reset_proofs = true;
    let mut sim = Sim::new(cfg);
    let (old, _) = warm(&mut sim);
    sim.run_for(Duration::from_millis(200 + seed * 13)).unwrap();
    sim.middlebox_reset(old, way);
    sim
}

/// Documentation of what issue 9 fixed, and that the checks catch it: a transport that (as
/// before) takes the refused redial after a *reset* for a death lets the followers elect at
/// once while the isolated leader still holds its lease — invariant (b) fails, on every seed,
/// whenever only the followers see the resets (rules in their own OUTPUT chains). Not a flaw
/// of the engine: no engine can tell that forged proof from a real one; the transport must not
/// make it (the simulator's transport never does unless told to). When the leader sees resets
/// too (`Both`), the engine's defence in depth — a leader whose links to a majority of voters
/// are reset stops acting at once — often, but not always, wins the race against the forged
/// proof, so that way is not asserted here.
#[test]
fn a_transport_that_takes_a_reset_for_a_death_splits_the_brain() {
    for way in [ResetWay::Incoming] {
        for seed in 0..10 {
            let mut sim = reset_the_leader_on_the_legacy_transport(SimConfig::new(seed, 3), way);
            let run = sim.run_for(Duration::from_secs(1));
            assert_split_brain(run, &format!("seed {seed} {way:?}"));
        }
    }
}

/// Issue 9, "rejoin after a heal, without a restart": even a node that was wrongly proven dead
/// (here by the pre-issue-9 transport of [`SimConfig::legacy_reset_proofs`], in availability
/// mode, where two leaders during the cut are the documented behaviour) must be taken back
/// when it reconnects through a fresh handshake after the heal: one agreed leader, and every
/// node alive in every view. On the engine of b33656a it never comes back: the incarnation
/// stays "already proven dead" on both sides and both leaders keep leading (checked 5 s after
/// the heal); with the rejoin rule (core/src/engine/peers.rs) it is taken back.
#[test]
fn a_node_wrongly_proven_dead_rejoins_on_a_fresh_handshake() {
    for seed in 0..10 {
        for way in [ResetWay::Both, ResetWay::Incoming, ResetWay::Outgoing] {
            let cfg = SimConfig {
                quorum: SimQuorum::None,
                ..SimConfig::new(seed, 3)
            };
            let mut sim = reset_the_leader_on_the_legacy_transport(cfg, way);
            sim.run_for(Duration::from_secs(1)).unwrap();
            sim.end_resets();
            let healed = sim
                .run_until_pred(Duration::from_secs(5), |s| {
                    s.agreement().is_some() && s.not_seen_alive().is_empty()
                })
                .unwrap();
            assert!(
                healed.is_some(),
                "seed {seed} {way:?}: not healed 5 s after the heal: not alive {:?}{}",
                sim.not_seen_alive(),
                sim.describe()
            );
        }
    }
}
