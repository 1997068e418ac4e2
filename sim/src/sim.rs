//! The simulator proper: N engines, a virtual clock, an in-memory network, invariant checks.
//!
//! The loop lives here: [`Sim`] holds the nodes and the queue, and each step takes the
//! earliest delivery or timer, hands it to one engine, performs the actions it returns and
//! shows the cluster to the invariants' oracle. Each other concern has its own file of the
//! crate: `config` (what a run is built from), `policies`, `network` (the network model),
//! `faults` and `oracle` (the invariants); their public items are re-exported here and at
//! the crate root.

pub use crate::config::{
    NetConfig, NodeIdx, PolicyKind, SimConfig, SimGroup, SimQuorum, trace_level,
};
pub use crate::faults::ResetWay;
pub use crate::network::{Interceptor, Verdict};
pub use crate::oracle::{Agreed, Agreement, Violation, fmt_time};

use crate::clock::{self, Running};
use crate::network::Queued;
use crate::oracle::Oracle;
use crate::rng::Rng;
use baton_core::engine::{Action, Engine, GroupSpec, Input, Level, PersistedState};
use baton_core::{GroupName, Incarnation, NodeId, TransportEvent};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

/// More steps than this at one virtual instant means an engine keeps asking to be woken now.
const MAX_STEPS_PER_INSTANT: u64 = 100_000;

/// Counters of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Inputs handed to engines.
    pub steps: u64,
    /// Messages sent by engines.
    pub sent: u64,
    /// Messages lost (drop probability, partitions, dead receivers).
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Distinct (group, term) leaderships observed acting.
    pub leaderships: u64,
    /// Messages delivered after a message sent later on the same link (reordered).
    pub reordered: u64,
    /// `Disconnected{how: Orderly}` delivered (a peer's process ended).
    pub orderly_closes: u64,
    /// `Disconnected{how: Abrupt}` delivered (a middlebox reset the connection).
    pub resets: u64,
    /// `Dead` delivered, of any kind.
    pub proofs: u64,
    /// Connections re-established by a fresh handshake after a middlebox reset ended.
    pub reconnects: u64,
}

/// One simulated machine: its process (the engine, while it runs), its disk and its clock.
pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    pub(crate) incarnation: Incarnation,
    pub(crate) engine: Option<Engine>,
    /// The node's "disk": the last `Action::Persist`.
    pub(crate) store: Option<PersistedState>,
    /// When the engine wants its next tick (µs of virtual time).
    pub(crate) wake: Option<u64>,
    /// The node's monotonic clock (it survives restarts: same machine).
    pub(crate) clock: Running,
    /// Groups the application has joined on this node (rejoined on restart).
    pub(crate) joined: BTreeSet<GroupName>,
}

impl SimNode {
    /// What its clock reads at true time `now` (µs), as an instant after `base`.
    pub(crate) fn reads(&self, base: Instant, now: u64) -> Instant {
        base + Duration::from_nanos(self.clock.read_ns(now) as u64)
    }
}

/// A deterministic simulation of a baton cluster: every node runs a real
/// [`Engine`]; the clock, the network and the faults are simulated.
///
/// Every step (one input handed to one engine) is followed by the invariant checks; the first
/// violation is returned as an error by whichever `run_*` method was running.
pub struct Sim {
    pub(crate) cfg: SimConfig,
    pub(crate) base: Instant,
    pub(crate) now: u64,
    pub(crate) rng: Rng,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) by_name: BTreeMap<String, NodeIdx>,
    pub(crate) queue: BinaryHeap<Queued>,
    pub(crate) seq: u64,
    /// Directed links that silently lose everything: (from, to).
    pub(crate) blocked: BTreeSet<(NodeIdx, NodeIdx)>,
    /// Established connections (a < b): who learns of whose crash.
    pub(crate) conns: BTreeSet<(NodeIdx, NodeIdx)>,
    /// Per directed link, the send order (queue `seq`) of the latest message delivered: a
    /// delivery with a lower one was overtaken by a later message — it is reordered.
    pub(crate) delivered_seq: BTreeMap<(NodeIdx, NodeIdx), u64>,
    /// Latest scheduled delivery per directed link, so that a crash's `Dead` comes after the
    /// bytes already in flight (TCP delivers buffered data before the close).
    pub(crate) last_delivery: BTreeMap<(NodeIdx, NodeIdx), u64>,
    /// Middlebox reset rules (`REJECT --reject-with tcp-reset`), directed: packets from `.0`
    /// to `.1` are rejected and `.0` gets the reset. Both processes live on.
    pub(crate) resets: BTreeSet<(NodeIdx, NodeIdx)>,
    /// Links (a < b) whose connection a reset tore down and no handshake has re-established:
    /// whatever is sent on them is lost.
    pub(crate) broken: BTreeSet<(NodeIdx, NodeIdx)>,
    /// (who, peer) on a broken link: `who` was not told of the reset (no rule sends it one)
    /// and still holds the connection it believes open — a later rule the other way resets it.
    pub(crate) half_open: BTreeSet<(NodeIdx, NodeIdx)>,
    /// Per link (a < b), the generation of its connection, bumped by every reset.
    pub(crate) conn_gen: BTreeMap<(NodeIdx, NodeIdx), u64>,
    /// A flaw of the network model itself (a `Dead` for a live process, a proof the
    /// configured mode never reports), turned into a violation by the next check.
    pub(crate) model_error: Option<String>,
    /// Every transport event delivered, when recording ([`Sim::record_transport_events`]).
    pub(crate) transport_log: Option<Vec<(Duration, NodeIdx, TransportEvent)>>,
    pub(crate) specs: BTreeMap<GroupName, GroupSpec>,
    /// The safety invariants, shown the cluster after every step.
    pub(crate) oracle: Oracle,
    pub(crate) last_step_at: u64,
    pub(crate) steps_at_instant: u64,
    pub(crate) stats: SimStats,
    pub(crate) interceptor: Option<Interceptor>,
}

impl Sim {
    /// Builds the cluster and starts every node at virtual time 0; each joins every group.
    pub fn new(cfg: SimConfig) -> Self {
        let specs = cfg
            .groups
            .iter()
            .map(|g| {
                (
                    g.name.clone(),
                    GroupSpec {
                        policy: g.policy.build(),
                        preempt: g.preempt,
                    },
                )
            })
            .collect();
        let nodes = (0..cfg.nodes)
            .map(|i| SimNode {
                id: NodeId::new(format!("n{i}")),
                incarnation: Incarnation(0),
                engine: None,
                store: None,
                wake: None,
                clock: Running::new(cfg.clock(i)),
                joined: cfg.groups.iter().map(|g| g.name.clone()).collect(),
            })
            .collect::<Vec<_>>();
        let by_name = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.0.clone(), i))
            .collect();
        let oracle = Oracle::new(cfg.nodes, cfg.quorum.is_majority());
        let mut sim = Sim {
            rng: Rng::new(cfg.seed ^ 0x005E_ED0F_BA70),
            cfg,
            base: Instant::now(),
            now: 0,
            nodes,
            by_name,
            queue: BinaryHeap::new(),
            seq: 0,
            blocked: BTreeSet::new(),
            conns: BTreeSet::new(),
            delivered_seq: BTreeMap::new(),
            last_delivery: BTreeMap::new(),
            resets: BTreeSet::new(),
            broken: BTreeSet::new(),
            half_open: BTreeSet::new(),
            conn_gen: BTreeMap::new(),
            model_error: None,
            transport_log: None,
            oracle,
            specs,
            last_step_at: 0,
            steps_at_instant: 0,
            stats: SimStats::default(),
            interceptor: None,
        };
        for i in 0..sim.nodes.len() {
            sim.boot(i, None);
        }
        sim
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// True virtual time since the start.
    pub fn now(&self) -> Duration {
        Duration::from_micros(self.now)
    }

    /// What node `i`'s clock reads now: its engine's notion of "now". With perfect clocks
    /// ([`SimConfig::clocks`] empty) every node reads the base instant plus [`Sim::now`].
    pub fn clock_of(&self, i: NodeIdx) -> Instant {
        self.nodes[i].reads(self.base, self.now)
    }

    /// Node `i`'s current clock rate (1.0 keeps true time).
    pub fn clock_rate(&self, i: NodeIdx) -> f64 {
        self.nodes[i].clock.rate_ppm() as f64 / clock::PPM as f64
    }

    /// The largest relative difference between two nodes' current clock rates
    /// (`max / min − 1`).
    pub fn clock_spread(&self) -> f64 {
        let rates: Vec<u64> = self.nodes.iter().map(|n| n.clock.rate_ppm()).collect();
        match (rates.iter().min(), rates.iter().max()) {
            (Some(&lo), Some(&hi)) => hi as f64 / lo as f64 - 1.0,
            _ => 0.0,
        }
    }

    /// True while node `i` runs and acts as leader of `group` (by its own clock).
    pub fn is_acting(&self, i: NodeIdx, group: &str) -> bool {
        self.engine(i)
            .is_some_and(|e| e.is_acting_leader(group, self.clock_of(i)))
    }

    /// Number of nodes (live or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for an empty cluster.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s id.
    pub fn node_id(&self, i: NodeIdx) -> &NodeId {
        &self.nodes[i].id
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> Option<NodeIdx> {
        self.by_name.get(name).copied()
    }

    /// True while node `i` runs.
    pub fn is_live(&self, i: NodeIdx) -> bool {
        self.nodes[i].engine.is_some()
    }

    /// The running nodes.
    pub fn live(&self) -> Vec<NodeIdx> {
        (0..self.nodes.len()).filter(|&i| self.is_live(i)).collect()
    }

    /// Node `i`'s current incarnation.
    pub fn incarnation(&self, i: NodeIdx) -> Incarnation {
        self.nodes[i].incarnation
    }

    /// Node `i`'s engine, while it runs.
    pub fn engine(&self, i: NodeIdx) -> Option<&Engine> {
        self.nodes[i].engine.as_ref()
    }

    /// The groups the application has joined on node `i`.
    pub fn joined(&self, i: NodeIdx) -> &BTreeSet<GroupName> {
        &self.nodes[i].joined
    }

    /// Counters so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The current network behaviour.
    pub fn net(&self) -> &NetConfig {
        &self.cfg.net
    }

    /// Starts (or stops) recording every transport event delivered to an engine — not the
    /// messages — for [`Sim::transport_events`].
    pub fn record_transport_events(&mut self, on: bool) {
        self.transport_log = on.then(Vec::new);
    }

    /// The transport events delivered since recording started: (time, receiver, event).
    pub fn transport_events(&self) -> &[(Duration, NodeIdx, TransportEvent)] {
        self.transport_log.as_deref().unwrap_or(&[])
    }

    /// Runs until virtual time `t` (absolute, since the start).
    pub fn run_until(&mut self, t: Duration) -> Result<(), Violation> {
        let until = t.as_micros() as u64;
        while let Some(at) = self.next_at() {
            if at > until {
                break;
            }
            self.step()?;
        }
        if until > self.now {
            self.now = until;
            self.check()?;
        }
        Ok(())
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) -> Result<(), Violation> {
        self.run_until(self.now() + d)
    }

    /// Runs until `done(self)` holds (checked after every step) or `max` of virtual time has
    /// passed. Returns how long it took, or `None` on timeout.
    pub fn run_until_pred(
        &mut self,
        max: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<Option<Duration>, Violation> {
        let start = self.now;
        let until = start + max.as_micros() as u64;
        if done(self) {
            return Ok(Some(Duration::ZERO));
        }
        while let Some(at) = self.next_at() {
            if at > until {
                break;
            }
            self.step()?;
            if done(self) {
                return Ok(Some(Duration::from_micros(self.now - start)));
            }
        }
        self.now = self.now.max(until);
        self.check()?;
        Ok(done(self).then(|| Duration::from_micros(self.now - start)))
    }

    /// Runs until every live node agrees on every group's leader ([`Sim::agreement`]), at
    /// most `max`. Returns the time it took and the agreement.
    pub fn run_until_agreed(
        &mut self,
        max: Duration,
    ) -> Result<Option<(Duration, Agreement)>, Violation> {
        let took = self.run_until_pred(max, |s| s.agreement().is_some())?;
        Ok(took.and_then(|t| self.agreement().map(|a| (t, a))))
    }

    fn next_at(&self) -> Option<u64> {
        let q = self.queue.peek().map(|e| e.at);
        let w = self.nodes.iter().filter_map(|n| n.wake).min();
        match (q, w) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes the earliest pending event (a delivery or an engine's timer).
    fn step(&mut self) -> Result<(), Violation> {
        let q = self.queue.peek().map(|e| e.at);
        let w = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.wake.map(|t| (t, i)))
            .min();
        let at = match (q, w) {
            (Some(a), Some((b, _))) => a.min(b),
            (Some(a), None) => a,
            (None, Some((b, _))) => b,
            (None, None) => return Ok(()),
        };
        self.advance(at)?;
        if q == Some(at) {
            let ev = self.queue.pop().expect("peeked");
            self.deliver(ev);
        } else if let Some((_, i)) = w {
            self.nodes[i].wake = None;
            self.input(i, Input::Tick);
        }
        self.check()
    }

    fn advance(&mut self, at: u64) -> Result<(), Violation> {
        let at = at.max(self.now);
        if at == self.last_step_at {
            self.steps_at_instant += 1;
            if self.steps_at_instant > MAX_STEPS_PER_INSTANT {
                return Err(self.violation(format!(
                    "livelock: more than {MAX_STEPS_PER_INSTANT} steps at one virtual instant"
                )));
            }
        } else {
            self.last_step_at = at;
            self.steps_at_instant = 0;
        }
        self.now = at;
        Ok(())
    }

    #[allow(
        clippy::print_stderr,
        reason = "`SimConfig::trace`: a debugging aid asked for by the one running the simulation"
    )]
    pub(crate) fn trace(&self, level: u8, line: impl FnOnce() -> String) {
        if self.cfg.trace >= level {
            eprintln!("[{}] {}", fmt_time(self.now()), line());
        }
    }

    /// Hands `input` to node `i`'s engine and performs the actions it returns.
    pub(crate) fn input(&mut self, i: NodeIdx, input: Input) {
        let now = self.clock_of(i);
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return;
        };
        self.stats.steps += 1;
        let actions = engine.handle(now, input);
        self.apply(i, actions);
        self.refresh_wake(i);
    }

    /// Converts the engine's next deadline (on its own clock) to the first true microsecond
    /// at which that clock reaches it.
    pub(crate) fn refresh_wake(&mut self, i: NodeIdx) {
        let base = self.base;
        let now = self.now;
        let n = &mut self.nodes[i];
        n.wake = n.engine.as_ref().and_then(|e| e.next_deadline()).map(|d| {
            let ns = d.saturating_duration_since(base).as_nanos();
            n.clock.true_us_at(ns).max(now)
        });
    }

    fn apply(&mut self, i: NodeIdx, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, message } => self.send(i, &to, message),
                Action::Connect { addr } => self.connect(i, &addr),
                Action::Persist(p) => self.nodes[i].store = Some(p),
                Action::Event(event) => {
                    let level = if event.level() == Level::Debug { 2 } else { 1 };
                    self.trace(level, || format!("{}: {event}", self.nodes[i].id))
                }
                Action::Leadership(l) => self.trace(1, || {
                    format!(
                        "{}: leadership {} leader={} term={} is_me={}",
                        self.nodes[i].id,
                        l.group,
                        l.leader.map_or("-".to_string(), |m| m.to_string()),
                        l.term,
                        l.is_me
                    )
                }),
                // The simulated network never refuses a node (no duplicate names, no clock
                // steps), so neither of these can come; nor a release (the simulated engines
                // run without `release_first`), nor an elector's handoff (nor an elector).
                Action::Reincarnate { .. }
                | Action::Halt(_)
                | Action::Release { .. }
                | Action::ElectorHandOff { .. } => {
                    self.trace(1, || format!("{}: unexpected {a:?}", self.nodes[i].id))
                }
                Action::Members { .. }
                | Action::Serve { .. }
                | Action::CallDone { .. }
                | Action::ControlDone { .. } => {}
            }
        }
    }

    /// Shows every running node to the [`Oracle`] and turns what it found into the stats,
    /// the trace and the first violation (or a flaw of the network model itself).
    fn check(&mut self) -> Result<(), Violation> {
        if let Some(msg) = self.model_error.take() {
            return Err(self.violation(format!("network model error: {msg}")));
        }
        let found = self
            .oracle
            .observe(&self.cfg.groups, &self.nodes, self.base, self.now);
        for (group, member, term) in found.new_leaders {
            self.stats.leaderships += 1;
            self.trace(1, || {
                format!("CHECK {member} acts as leader of {group} in term {term}")
            });
        }
        match found.violation {
            Some(msg) => Err(self.violation(msg)),
            None => Ok(()),
        }
    }
}
