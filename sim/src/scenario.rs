//! Random fault schedules: one per seed, generated up front, then run against a [`Sim`] with
//! the liveness check at the end.

use crate::clock::{self, PPM};
use crate::rng::Rng;
use crate::sim::{
    Agreed, NetConfig, NodeIdx, PolicyKind, ResetWay, Sim, SimConfig, SimGroup, SimQuorum,
    SimStats, Violation, fmt_time,
};
use baton_core::{DeathProofMode, GroupName};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Which quorum mode a random schedule uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// `quorum = "majority"`: all four invariants.
    Quorum,
    /// `quorum = "none"`: invariants (c) and (d) only (split brain during a partition is the
    /// documented behaviour).
    Availability,
}

impl Mode {
    /// The name used in `BATON_SIM_MODE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Quorum => "quorum",
            Mode::Availability => "availability",
        }
    }

    /// Parses `quorum` / `majority` or `availability` / `none`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "quorum" | "majority" => Some(Mode::Quorum),
            "availability" | "none" => Some(Mode::Availability),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a batch of random schedules is drawn from, besides the seed and the mode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Cluster size; `None`: 3–7 nodes, drawn from the seed.
    pub nodes: Option<usize>,
    /// Clock drift: the spread `ρ` of the nodes' clock rates (each in `[1 − ρ/2, 1 + ρ/2]`),
    /// as a fraction of the seed's safe bound `β = (ft − lease)/(ft + lease)`
    /// ([`clock::drift_bound`]). Default [`Params::DEFAULT_DRIFT`] = 0.9: the rates of any
    /// two nodes differ by at most 90 % of `β` (≈ 10 % at the default timing). Leases are
    /// safe up to 2.0 (see [`clock::drift_bound`]); above it invariant (b) may fail.
    pub drift: f64,
    /// Number of groups; `None`: 1–3, drawn from the seed. A many-group schedule has the same
    /// faults as its seed's few-group one: the draw of the seed is made either way.
    pub groups: Option<usize>,
}

impl Params {
    /// The default drift, as a fraction of the safe bound.
    pub const DEFAULT_DRIFT: f64 = 0.9;

    /// Clusters of exactly `nodes` nodes.
    pub fn nodes(nodes: usize) -> Params {
        Params {
            nodes: Some(nodes),
            ..Params::default()
        }
    }

    /// `BATON_SIM_NODES` (a cluster size) and `BATON_SIM_DRIFT` (drift as a fraction of the
    /// bound), where set.
    pub fn from_env() -> Params {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string());
        Params {
            nodes: var("BATON_SIM_NODES").and_then(|v| v.parse().ok()),
            drift: var("BATON_SIM_DRIFT")
                .and_then(|v| v.parse().ok())
                .unwrap_or(Params::DEFAULT_DRIFT),
            groups: var("BATON_SIM_GROUPS").and_then(|v| v.parse().ok()),
        }
    }

    fn env_prefix(&self) -> String {
        let mut out = String::new();
        if let Some(n) = self.nodes {
            out.push_str(&format!("BATON_SIM_NODES={n} "));
        }
        if self.drift != Params::DEFAULT_DRIFT {
            out.push_str(&format!("BATON_SIM_DRIFT={} ", self.drift));
        }
        if let Some(g) = self.groups {
            out.push_str(&format!("BATON_SIM_GROUPS={g} "));
        }
        out
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            nodes: None,
            drift: Params::DEFAULT_DRIFT,
            groups: None,
        }
    }
}

/// Which node a fault hits, resolved when the fault fires (so that "the leader" means the
/// leader at that moment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// The node acting as leader of this group (by index into the config's groups); a random
    /// live node when none acts.
    LeaderOf(usize),
    /// A live node chosen by this number.
    Any(u64),
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// `kill -9`.
    Crash(Pick),
    /// Restart a stopped node (chosen by the number), if any is stopped.
    Restart(u64),
    /// Kind shutdown (`Input::Shutdown`), then the process is gone.
    Shutdown(Pick),
    /// Cut every link between the sides.
    Partition(Vec<Vec<NodeIdx>>),
    /// Cut the picked node off from everyone else.
    Isolate(Pick),
    /// Cut one direction of one link.
    Cut(NodeIdx, NodeIdx),
    /// Restore every link.
    HealPartitions,
    /// Change drop / duplicate / straggler probability and the latency range (reordering).
    Net(NetConfig),
    /// A live member (chosen by the number) leaves the group (by index).
    Leave(u64, usize),
    /// A live node (chosen by the number) that is not in the group (by index) joins it.
    Join(u64, usize),
    /// The node's clock runs at this rate (parts per million of true time) from now on.
    ClockRate(NodeIdx, u64),
    /// A middlebox resets the picked node's connections and refuses its redials while it
    /// lives ([`Sim::middlebox_reset`]).
    MiddleboxReset(Pick, ResetWay),
    /// A middlebox resets one link: `a → b` (a rule in `a`'s OUTPUT chain, only `a` sees
    /// resets), or both ways when the flag is set ([`Sim::reset_links`]).
    ResetLink(NodeIdx, NodeIdx, bool),
    /// Every middlebox reset ends ([`Sim::end_resets`]).
    EndResets,
}

/// A complete random run: cluster, fault schedule, heal, liveness check.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed everything was drawn from.
    pub seed: u64,
    /// The quorum mode.
    pub mode: Mode,
    /// What it was drawn from besides seed and mode.
    pub params: Params,
    /// The spread `ρ` of the clock rates: each in `[1 − ρ/2, 1 + ρ/2]` (0: perfect clocks).
    pub drift: f64,
    /// The cluster.
    pub config: SimConfig,
    /// Faults, by virtual time, in order.
    pub faults: Vec<(Duration, Fault)>,
    /// When every fault is healed ([`Sim::heal_all`]).
    pub heal_at: Duration,
    /// How long after the heal every live node must agree on every group's leader.
    pub bound: Duration,
    /// The stability window after the first agreement: agreement must hold at its middle and
    /// at its end, with the same leaders (and terms) both times.
    pub stable_for: Duration,
}

/// What a successful run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Time from the heal to agreement.
    pub convergence: Duration,
    /// The liveness bound it had to meet.
    pub bound: Duration,
    /// The agreed leaders at the end.
    pub leaders: BTreeMap<GroupName, Agreed>,
    /// Counters.
    pub stats: SimStats,
    /// Virtual time at the end.
    pub end: Duration,
    /// The largest clock-rate spread (`max / min − 1`) during the run.
    pub clock_spread: f64,
    /// The seed's safe bound `β` ([`clock::drift_bound`]).
    pub drift_bound: f64,
    /// What the run's transports reported as proof of death.
    pub death_proof: DeathProofMode,
}

/// The liveness bound for a timing: `3 × failure_timeout + 10 × backoff`.
///
/// Why that much: after the heal, a restarted node abstains from voting for one failure
/// timeout and stale leader views and vote promises expire within one failure timeout; a
/// campaign that split the vote is given up after half a failure timeout and retried after
/// `(rank + 1) × backoff` plus jitter; a leader elected on a view that still missed a node
/// may be superseded once more when the views settle.
pub fn liveness_bound(failure_timeout: Duration, backoff: Duration) -> Duration {
    failure_timeout * 3 + backoff * 10
}

impl Scenario {
    /// The random schedule of `seed`: 3–7 nodes, 1–3 groups, random policies, voters,
    /// persistence and timing, drifting clocks, a reordering network; 2–12 faults over 1–4
    /// virtual seconds (one seed in five: a storm of 10–30 faults with latencies up to
    /// 300 ms); then heal.
    pub fn random(seed: u64, mode: Mode) -> Scenario {
        Scenario::random_with(seed, mode, &Params::default())
    }

    /// [`Scenario::random`], with the cluster size and drift from `params`.
    pub fn random_with(seed: u64, mode: Mode, params: &Params) -> Scenario {
        let mut rng = Rng::new(seed);
        let drawn = rng.range(3, 7) as usize;
        let n = params.nodes.unwrap_or(drawn).max(1);
        let mut cfg = SimConfig::new(rng.next_u64(), n);
        let drawn_groups = match rng.below(10) {
            0..=5 => 1,
            6..=8 => 2,
            _ => 3,
        };
        let ngroups = params.groups.unwrap_or(drawn_groups).max(1);
        cfg.groups = (0..ngroups)
            .map(|g| SimGroup {
                name: format!("g{g}").into(),
                policy: match rng.below(4) {
                    0 => PolicyKind::MemberId,
                    1 => PolicyKind::OldestRunning,
                    2 => PolicyKind::MostCpus,
                    _ => PolicyKind::FewestLed,
                },
                preempt: rng.chance(0.25),
            })
            .collect();
        cfg.quorum = match mode {
            Mode::Availability => SimQuorum::None,
            Mode::Quorum => {
                if rng.chance(0.7) {
                    SimQuorum::Majority((0..n).collect())
                } else {
                    let k = rng.range(1, n as u64) as usize;
                    let mut all: Vec<NodeIdx> = (0..n).collect();
                    // Fisher–Yates, then the first k.
                    for i in (1..all.len()).rev() {
                        let j = rng.below(i as u64 + 1) as usize;
                        all.swap(i, j);
                    }
                    let mut v: Vec<NodeIdx> = all.into_iter().take(k).collect();
                    v.sort();
                    SimQuorum::Majority(v)
                }
            }
        };
        cfg.persistence = rng.chance(0.7);
        let hb = [50u64, 100, 100, 100, 150][rng.below(5) as usize];
        cfg.heartbeat = Duration::from_millis(hb);
        cfg.failure_timeout = Duration::from_millis(hb * rng.range(4, 6));
        cfg.backoff = Duration::from_millis(hb / 2);

        // Clocks: nine seeds in ten drift, at the spread `params.drift × β` (rates at either
        // end or in between, offsets 0–5 s); one in ten keeps perfect clocks.
        let drift = if rng.chance(0.1) {
            0.0
        } else {
            (params.drift * cfg.drift_bound()).clamp(0.0, 1.9)
        };
        cfg.clocks = clock::drifting(&mut rng, n, drift);
        let (slow_ppm, fast_ppm) = clock::rate_range(drift);
        // Reordering from the start: every message gets its own latency in 0.1–(1–20) ms, so
        // messages sent closer together than that overtake each other, also on one link; and
        // 1–5 % of messages straggle, up to 2 heartbeats – 1 s late, so that heartbeats
        // overtake heartbeats too.
        cfg.net = NetConfig {
            max_latency: Duration::from_millis(rng.range(1, 20)),
            straggle: [0.01, 0.02, 0.05][rng.below(3) as usize],
            straggle_max: Duration::from_millis(rng.range(2 * hb, 1000)),
            ..NetConfig::calm()
        };

        // One run in four trusts no refused connection (`death_proof = "timeout"`): crashed
        // peers are then found by their silence only.
        if rng.chance(0.25) {
            cfg.death_proof = DeathProofMode::Timeout;
        }

        // One schedule in five is a storm: many more faults, and latencies far above the
        // heartbeat period (the protocol's safety must not depend on timely delivery).
        let storm = rng.chance(0.2);
        let start = Duration::from_millis(rng.range(0, 1500));
        let span = Duration::from_millis(rng.range(1000, 4000));
        let count = if storm {
            rng.range(10, 30)
        } else {
            rng.range(2, 12)
        };
        let max_latency_ms = if storm { 300 } else { 60 };
        let mut faults = Vec::new();
        for _ in 0..count {
            let at = start + Duration::from_micros(rng.below(span.as_micros() as u64));
            let g = rng.below(ngroups as u64) as usize;
            let fault = match rng.below(112) {
                0..=14 => Fault::Crash(Pick::LeaderOf(g)),
                15..=22 => Fault::Crash(Pick::Any(rng.next_u64())),
                23..=36 => Fault::Restart(rng.next_u64()),
                37..=44 => Fault::Shutdown(Pick::LeaderOf(g)),
                45..=54 => {
                    let mut sides = vec![Vec::new(), Vec::new()];
                    for i in 0..n {
                        sides[rng.below(2) as usize].push(i);
                    }
                    Fault::Partition(sides)
                }
                55..=61 => Fault::Isolate(Pick::LeaderOf(g)),
                62..=65 => {
                    let a = rng.below(n as u64) as usize;
                    let b = (a + 1 + rng.below(n as u64 - 1) as usize) % n;
                    Fault::Cut(a, b)
                }
                66..=72 => Fault::HealPartitions,
                73..=84 => {
                    let max_ms = rng.range(1, max_latency_ms);
                    Fault::Net(NetConfig {
                        min_latency: Duration::from_micros(100),
                        max_latency: Duration::from_millis(max_ms),
                        drop: [0.0, 0.01, 0.05, 0.1, 0.3][rng.below(5) as usize],
                        duplicate: [0.0, 0.05, 0.2][rng.below(3) as usize],
                        straggle: [0.0, 0.0, 0.01, 0.05][rng.below(4) as usize],
                        straggle_max: Duration::from_millis(rng.range(100, 3000)),
                    })
                }
                85..=87 => Fault::Net(NetConfig::calm()),
                88..=92 if drift > 0.0 => {
                    let rate = match rng.below(3) {
                        0 => slow_ppm,
                        1 => fast_ppm,
                        _ => rng.range(slow_ppm, fast_ppm),
                    };
                    Fault::ClockRate(rng.below(n as u64) as usize, rate)
                }
                // Issue 9: resets that no transport may take for a death.
                100..=103 => Fault::MiddleboxReset(Pick::LeaderOf(g), ResetWay::Both),
                104..=105 => Fault::MiddleboxReset(
                    Pick::LeaderOf(g),
                    if rng.chance(0.5) {
                        ResetWay::Outgoing
                    } else {
                        ResetWay::Incoming
                    },
                ),
                106..=107 => Fault::MiddleboxReset(
                    Pick::Any(rng.next_u64()),
                    [ResetWay::Both, ResetWay::Outgoing, ResetWay::Incoming][rng.below(3) as usize],
                ),
                108..=109 => {
                    let a = rng.below(n as u64) as usize;
                    let b = (a + 1 + rng.below((n as u64).max(2) - 1) as usize) % n;
                    Fault::ResetLink(a, b, rng.chance(0.5))
                }
                110..=111 => Fault::EndResets,
                _ => Fault::Leave(rng.next_u64(), g),
            };
            // Most crashes and leaves are followed by a restart / rejoin before the heal.
            let follow = match &fault {
                Fault::Crash(_) | Fault::Shutdown(_) if rng.chance(0.6) => {
                    Some(Fault::Restart(rng.next_u64()))
                }
                Fault::Leave(_, g) if rng.chance(0.7) => Some(Fault::Join(rng.next_u64(), *g)),
                Fault::MiddleboxReset(..) | Fault::ResetLink(..) if rng.chance(0.7) => {
                    Some(Fault::EndResets)
                }
                _ => None,
            };
            if let Some(f) = follow {
                let later = at + Duration::from_micros(rng.range(1_000, 1_500_000));
                faults.push((later, f));
            }
            faults.push((at, fault));
        }
        // Stable order: by time, then by generation order.
        faults.sort_by_key(|(at, _)| *at);
        let heal_at = faults
            .iter()
            .map(|(t, _)| *t)
            .max()
            .unwrap_or(start)
            .max(start + span)
            + Duration::from_millis(1);
        // The engines' timeouts run on their own clocks: the slowest takes 1/rate as long.
        let slowest = slow_ppm as f64 / PPM as f64;
        Scenario {
            seed,
            mode,
            params: *params,
            drift,
            bound: liveness_bound(cfg.failure_timeout, cfg.backoff).div_f64(slowest),
            stable_for: (cfg.failure_timeout * 4).div_f64(slowest),
            config: cfg,
            faults,
            heal_at,
        }
    }

    /// Runs the schedule: faults at their times, the heal, then the liveness check (every live
    /// node agrees on every group's leader within [`Scenario::bound`], and still does
    /// [`Scenario::stable_for`] later). Safety invariants are checked after every step.
    pub fn run(&self) -> Result<Outcome, Violation> {
        let mut sim = Sim::new(self.config.clone());
        let mut clock_spread = sim.clock_spread();
        for (at, fault) in &self.faults {
            sim.run_until(*at)?;
            apply(&mut sim, fault);
            clock_spread = clock_spread.max(sim.clock_spread());
        }
        sim.run_until(self.heal_at)?;
        // Clocks keep their rates: drift is not a fault that heals.
        sim.heal_all();
        let Some((convergence, first)) = sim.run_until_agreed(self.bound)? else {
            return Err(Violation {
                at: sim.now(),
                message: format!(
                    "invariant (d) violated: no agreed leader {} after the heal (bound {}){}",
                    fmt_time(self.bound),
                    fmt_time(self.bound),
                    sim_state(&sim)
                ),
            });
        };
        // Then it must settle: the same agreement at two samples half the stability window
        // apart. The first agreement may still change: a leader whose lease ran out during a
        // partition, or a preempting member, hands over legitimately. Where groups preempt, a
        // group may move more than once, and many may move one after another (each move is
        // decided on the cluster as it was, a leader hands off one group per heartbeat under a
        // policy that reads other groups, and a new leader serves a failure timeout before it
        // preempts again), so a sample may fall in the instant of a handoff: one more sample
        // per preempting group, three at most, and a sample without agreement counts as a
        // change. A group handed back and forth never settles.
        let extra = self
            .config
            .groups
            .iter()
            .filter(|g| g.preempt)
            .count()
            .min(3);
        let mut middle = None;
        for sample in 0..2 + extra {
            sim.run_for(self.stable_for / 2)?;
            let now = sim.agreement();
            if now.is_none() && extra == 0 {
                return Err(Violation {
                    at: sim.now(),
                    message: format!(
                        "invariant (d) violated: agreement reached {} after the heal was lost again{}",
                        fmt_time(convergence),
                        sim_state(&sim)
                    ),
                });
            }
            if now.is_some() && middle == now {
                break;
            }
            if sample == 1 + extra {
                return Err(Violation {
                    at: sim.now(),
                    message: format!(
                        "invariant (d) violated: leadership still changing without faults: {:?} then {:?} (first agreed {:?}){}",
                        middle,
                        now,
                        first,
                        sim_state(&sim)
                    ),
                });
            }
            middle = now;
        }
        // And the heal is complete: every live node counts every other one (its current
        // incarnation) alive — also a node that a reset cut off, without a restart.
        let missing = sim.not_seen_alive();
        if !missing.is_empty() {
            let pairs: Vec<String> = missing
                .iter()
                .map(|&(i, j)| format!("{} does not see {}", sim.node_id(i), sim.node_id(j)))
                .collect();
            return Err(Violation {
                at: sim.now(),
                message: format!(
                    "invariant (d) violated: {} after the heal not every node is alive in every view: {}{}",
                    fmt_time(sim.now().saturating_sub(self.heal_at)),
                    pairs.join(", "),
                    sim_state(&sim)
                ),
            });
        }
        let last = middle.unwrap_or(first);
        Ok(Outcome {
            convergence,
            bound: self.bound,
            leaders: last,
            stats: sim.stats().clone(),
            end: sim.now(),
            clock_spread,
            drift_bound: self.config.drift_bound(),
            death_proof: self.config.death_proof,
        })
    }
}

fn sim_state(sim: &Sim) -> String {
    format!("\ncluster:{}", sim.describe())
}

fn pick(sim: &Sim, p: Pick) -> Option<NodeIdx> {
    let live = sim.live();
    if live.is_empty() {
        return None;
    }
    match p {
        Pick::LeaderOf(g) => {
            let group = &sim.config().groups[g].name;
            sim.acting_leaders(group)
                .first()
                .copied()
                .or_else(|| Some(live[(g as u64 * 7919 % live.len() as u64) as usize]))
        }
        Pick::Any(x) => Some(live[(x % live.len() as u64) as usize]),
    }
}

/// Performs one fault on the simulation.
pub fn apply(sim: &mut Sim, fault: &Fault) {
    match fault {
        Fault::Crash(p) => {
            if let Some(i) = pick(sim, *p) {
                sim.crash(i);
            }
        }
        Fault::Restart(x) => {
            let down: Vec<NodeIdx> = (0..sim.len()).filter(|&i| !sim.is_live(i)).collect();
            if !down.is_empty() {
                sim.restart(down[(x % down.len() as u64) as usize]);
            }
        }
        Fault::Shutdown(p) => {
            if let Some(i) = pick(sim, *p) {
                sim.shutdown(i);
            }
        }
        Fault::Partition(sides) => sim.partition(sides),
        Fault::Isolate(p) => {
            if let Some(i) = pick(sim, *p) {
                let rest: Vec<NodeIdx> = (0..sim.len()).filter(|&j| j != i).collect();
                sim.partition(&[vec![i], rest]);
            }
        }
        Fault::Cut(a, b) => sim.cut(*a, *b),
        Fault::ClockRate(i, ppm) => {
            if *i < sim.len() {
                sim.set_clock_ppm(*i, *ppm);
            }
        }
        Fault::HealPartitions => sim.heal_partitions(),
        Fault::MiddleboxReset(p, way) => {
            if let Some(i) = pick(sim, *p) {
                sim.middlebox_reset(i, *way);
            }
        }
        Fault::ResetLink(a, b, both) => {
            if *a < sim.len() && *b < sim.len() {
                if *both {
                    sim.reset_links(&[(*a, *b), (*b, *a)]);
                } else {
                    sim.reset_links(&[(*a, *b)]);
                }
            }
        }
        Fault::EndResets => sim.end_resets(),
        Fault::Net(net) => sim.set_net(net.clone()),
        Fault::Leave(x, g) => {
            let group = sim.config().groups[*g].name.clone();
            let members: Vec<NodeIdx> = sim
                .live()
                .into_iter()
                .filter(|&i| sim.joined(i).contains(&group))
                .collect();
            if !members.is_empty() {
                sim.leave(members[(x % members.len() as u64) as usize], &group);
            }
        }
        Fault::Join(x, g) => {
            let group = sim.config().groups[*g].name.clone();
            let outside: Vec<NodeIdx> = sim
                .live()
                .into_iter()
                .filter(|&i| !sim.joined(i).contains(&group))
                .collect();
            if !outside.is_empty() {
                sim.join(outside[(x % outside.len() as u64) as usize], &group);
            }
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "seed {} ({}): {} nodes, quorum {:?}, persistence {}, death proof {}, heartbeat {:?}, failure timeout {:?}, backoff {:?}",
            self.seed,
            self.mode,
            c.nodes,
            c.quorum,
            c.persistence,
            c.death_proof,
            c.heartbeat,
            c.failure_timeout,
            c.backoff
        )?;
        for g in &c.groups {
            writeln!(
                f,
                "  group {} policy {:?} preempt {}",
                g.name, g.policy, g.preempt
            )?;
        }
        let clocks: Vec<String> = (0..c.nodes)
            .map(|i| {
                let k = c.clock(i);
                format!("n{i} x{:.4} +{}", k.rate(), fmt_time(k.offset))
            })
            .collect();
        writeln!(
            f,
            "  clocks: spread {:.2} % (safe bound {:.2} %): {}",
            clock::spread(&(0..c.nodes).map(|i| c.clock(i)).collect::<Vec<_>>()) * 100.0,
            c.drift_bound() * 100.0,
            clocks.join(", ")
        )?;
        writeln!(f, "  network at start: {:?}", c.net)?;
        for (at, fault) in &self.faults {
            writeln!(f, "  {} {:?}", fmt_time(*at), fault)?;
        }
        write!(
            f,
            "  {} heal all; agreement within {}, stable for {}",
            fmt_time(self.heal_at),
            fmt_time(self.bound),
            fmt_time(self.stable_for)
        )
    }
}

// ---------------------------------------------------------------- seed runners

/// The command that replays one seed.
pub fn replay_command(seed: u64, mode: Mode, params: &Params) -> String {
    format!(
        "{}BATON_SIM_SEED={seed} BATON_SIM_MODE={mode} cargo test -p baton-sim --test sim replay -- --nocapture",
        params.env_prefix()
    )
}

/// Runs the random schedule of `seed` and turns any failure — an invariant violation or a
/// panic inside an engine — into a message that names the seed, the schedule and the command
/// that replays it.
pub fn check_seed(seed: u64, mode: Mode, params: &Params) -> Result<Outcome, String> {
    let scenario = Scenario::random_with(seed, mode, params);
    let result = std::panic::catch_unwind(|| scenario.run());
    let why = match result {
        Ok(Ok(outcome)) => return Ok(outcome),
        Ok(Err(v)) => v.to_string(),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            format!("panicked: {msg}")
        }
    };
    Err(format!(
        "simulation seed {seed} ({mode}) failed {why}\nschedule:\n{scenario}\nreplay: {}\n(add BATON_SIM_TRACE=1 for an event trace, 2 to include heartbeats)",
        replay_command(seed, mode, params)
    ))
}

/// What a batch of seeds did.
#[derive(Clone, Debug, Default)]
pub struct BatchReport {
    /// Seeds run.
    pub runs: u64,
    /// Failures, by seed, with their messages (sorted by seed).
    pub failures: Vec<(u64, String)>,
    /// The slowest convergence after the heal, and its seed.
    pub max_convergence: (Duration, u64),
    /// The largest convergence time as a fraction of its seed's liveness bound, and its seed.
    pub max_of_bound: (f64, u64),
    /// Sum of convergence times (for the mean).
    pub total_convergence: Duration,
    /// Engine steps, summed.
    pub steps: u64,
    /// Successful seeds whose clocks drifted (rates not all equal).
    pub drifting_seeds: u64,
    /// The largest clock-rate spread (`max / min − 1`) as a fraction of its seed's safe bound
    /// `β`, and its seed.
    pub max_spread_of_bound: (f64, u64),
    /// Successful seeds in which some message was delivered after a later one on its link.
    pub reordered_seeds: u64,
    /// Reordered messages, summed.
    pub reordered: u64,
    /// Successful seeds in which some connection was reset by a middlebox
    /// (`Disconnected{Abrupt}` delivered).
    pub reset_seeds: u64,
    /// Resets delivered, summed.
    pub resets: u64,
    /// Successful seeds run with `death_proof = "timeout"`.
    pub timeout_seeds: u64,
    /// Proofs of death (`Dead`) delivered, summed.
    pub proofs: u64,
    /// Wall-clock time the batch took.
    pub elapsed: Duration,
}

impl BatchReport {
    /// Mean convergence time of the successful runs.
    pub fn mean_convergence(&self) -> Duration {
        let ok = self.runs - self.failures.len() as u64;
        if ok == 0 {
            Duration::ZERO
        } else {
            self.total_convergence / ok as u32
        }
    }

    /// Panics with the first failure (lowest seed) and a count of the others.
    pub fn assert_ok(&self) {
        if let Some((_, first)) = self.failures.first() {
            let others: Vec<u64> = self.failures.iter().skip(1).map(|(s, _)| *s).collect();
            panic!(
                "{} of {} seeds failed; first:\n{first}\nother failing seeds: {others:?}",
                self.failures.len(),
                self.runs
            );
        }
    }
}

impl fmt::Display for BatchReport {
    /// One line: seeds, failures, time | convergence against the bound | drift | reordering |
    /// resets and death proofs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ok = (self.runs - self.failures.len() as u64).max(1) as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "{} seeds, {} failed, {:.1} s | after the heal: mean {:.0} ms, slowest {:.0} ms (seed {}), at most {:.0} % of the bound (seed {}) | clocks drift in {:.0} % of seeds, spread up to {:.0} % of the safe bound | reordering in {:.0} % of seeds ({} messages) | middlebox resets in {:.0} % of seeds ({} resets) | timeout mode in {:.0} % of seeds, {} proofs of death | {} engine steps",
            self.runs,
            self.failures.len(),
            self.elapsed.as_secs_f64(),
            ms(self.mean_convergence()),
            ms(self.max_convergence.0),
            self.max_convergence.1,
            self.max_of_bound.0 * 100.0,
            self.max_of_bound.1,
            self.drifting_seeds as f64 * 100.0 / ok,
            self.max_spread_of_bound.0 * 100.0,
            self.reordered_seeds as f64 * 100.0 / ok,
            self.reordered,
            self.reset_seeds as f64 * 100.0 / ok,
            self.resets,
            self.timeout_seeds as f64 * 100.0 / ok,
            self.proofs,
            self.steps
        )
    }
}

/// Runs seeds `seeds` in `mode` on every available core; deterministic per seed.
pub fn run_seeds(seeds: std::ops::Range<u64>, mode: Mode, params: &Params) -> BatchReport {
    let t0 = std::time::Instant::now();
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = AtomicU64::new(seeds.start);
    let report = Mutex::new(BatchReport::default());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let r = check_seed(seed, mode, params);
                    let mut rep = report.lock().unwrap_or_else(|p| p.into_inner());
                    rep.runs += 1;
                    match r {
                        Ok(o) => {
                            rep.steps += o.stats.steps;
                            rep.total_convergence += o.convergence;
                            if o.convergence >= rep.max_convergence.0 {
                                rep.max_convergence = (o.convergence, seed);
                            }
                            let ratio = o.convergence.as_secs_f64() / o.bound.as_secs_f64();
                            if ratio >= rep.max_of_bound.0 {
                                rep.max_of_bound = (ratio, seed);
                            }
                            if o.clock_spread > 0.0 {
                                rep.drifting_seeds += 1;
                            }
                            let spread = o.clock_spread / o.drift_bound.max(f64::MIN_POSITIVE);
                            if spread >= rep.max_spread_of_bound.0 {
                                rep.max_spread_of_bound = (spread, seed);
                            }
                            if o.stats.reordered > 0 {
                                rep.reordered_seeds += 1;
                            }
                            rep.reordered += o.stats.reordered;
                            if o.stats.resets > 0 {
                                rep.reset_seeds += 1;
                            }
                            rep.resets += o.stats.resets;
                            rep.proofs += o.stats.proofs;
                            if o.death_proof == DeathProofMode::Timeout {
                                rep.timeout_seeds += 1;
                            }
                        }
                        Err(msg) => rep.failures.push((seed, msg)),
                    }
                }
            });
        }
    });
    let mut rep = report.into_inner().unwrap_or_else(|p| p.into_inner());
    rep.failures.sort_by_key(|(s, _)| *s);
    rep.elapsed = t0.elapsed();
    rep
}
