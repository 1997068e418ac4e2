//! A small harness for the engine's rule tests: engines on a virtual clock, driven only through
//! the engine's public surface (`Engine::new`, `handle`, the read-only queries), so the tests do
//! not depend on how the engine is split inside.
//!
//! - [`Cluster`]: `n` engines wired together. Every `Action::Send` is delivered at once, in FIFO
//!   order, unless a cut link, a crashed node or the drop filter eats it. Time moves to the
//!   earliest `next_deadline` of any engine; after every input the harness records which nodes
//!   act as leader, so a test can assert that two never did at once.
//!
//! [`Probe`](super::probe::Probe) drives one engine among fake peers instead.

use crate::engine::{Action, Engine, EngineConfig, GroupSpec, Input, PersistedState, Quorum};
use crate::message::Message;
use crate::policy::{ByMemberId, LeaderPolicy};
use crate::transport::{DeathProofMode, TransportEvent};
use crate::types::{GroupName, Incarnation, NodeId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use super::fixtures::{
    connected, envelope, join, join_group, member, mismatch, ms, name, others, reset,
    the_other_two, vote_request, vote_requests, vote_responses,
};

/// The group every test elects in.
pub(crate) const G: &str = "g";
/// The protocol defaults the tests reason with (`EngineConfig::new`).
pub(crate) const HB: Duration = Duration::from_millis(100);
pub(crate) const FT: Duration = Duration::from_millis(500);
pub(crate) const LEASE: Duration = Duration::from_millis(400);

/// How to build a [`Cluster`]; every field has the protocol's default.
pub(crate) struct Setup {
    n: usize,
    voters: Option<Vec<String>>,
    availability: bool,
    mode: DeathProofMode,
    joined: Option<Vec<usize>>,
    preempt: bool,
    policy: Arc<dyn LeaderPolicy>,
    /// The groups configured with `policy` and `preempt` (besides [`G`]).
    groups: Vec<GroupName>,
}

impl Setup {
    /// `n` nodes, all voters, all joined to [`G`], connected to each other.
    pub(crate) fn new(n: usize) -> Setup {
        Setup {
            n,
            voters: None,
            availability: false,
            mode: DeathProofMode::OrderlyClose,
            joined: None,
            preempt: false,
            policy: Arc::new(ByMemberId),
            groups: Vec::new(),
        }
    }
    /// The voters, by name (names of no node are voters nobody answers for).
    pub(crate) fn voters(mut self, v: &[&str]) -> Setup {
        self.voters = Some(v.iter().map(|s| s.to_string()).collect());
        self
    }
    /// `quorum = "none"`.
    pub(crate) fn availability(mut self) -> Setup {
        self.availability = true;
        self
    }
    pub(crate) fn mode(mut self, mode: DeathProofMode) -> Setup {
        self.mode = mode;
        self
    }
    /// Only these nodes join [`G`] at start.
    pub(crate) fn joined(mut self, who: &[usize]) -> Setup {
        self.joined = Some(who.to_vec());
        self
    }
    /// Every group's policy (member-id order unless set).
    pub(crate) fn policy(mut self, policy: Arc<dyn LeaderPolicy>) -> Setup {
        self.policy = policy;
        self
    }
    /// [`G`] hands off to a better-ranked member when one appears.
    pub(crate) fn preempt(mut self) -> Setup {
        self.preempt = true;
        self
    }
    /// These groups too are configured with the policy and `preempt` (joining them is up to
    /// the test: [`Cluster::join_all`]).
    pub(crate) fn groups(mut self, groups: &[GroupName]) -> Setup {
        self.groups = groups.to_vec();
        self
    }
    /// The config node `i` starts with.
    pub(crate) fn config(&self, i: usize, incarnation: impl Into<Incarnation>) -> EngineConfig {
        let quorum = if self.availability {
            Quorum::None
        } else {
            let names = self
                .voters
                .clone()
                .unwrap_or_else(|| (0..self.n).map(name).collect());
            Quorum::Majority(names.into_iter().map(NodeId::new).collect())
        };
        let mut cfg = EngineConfig::new(name(i), incarnation, quorum);
        cfg.death_proof = self.mode;
        cfg
    }
    /// Node `i`'s engine, started at `now` from `persisted`.
    pub(crate) fn engine(
        &self,
        i: usize,
        inc: Incarnation,
        persisted: Option<PersistedState>,
        now: Instant,
    ) -> Engine {
        let spec = GroupSpec {
            policy: self.policy.clone(),
            preempt: self.preempt,
        };
        let mut groups = BTreeMap::from([(G.into(), spec.clone())]);
        for g in &self.groups {
            groups.insert(g.clone(), spec.clone());
        }
        Engine::new(
            self.config(i, inc),
            self.policy.clone(),
            groups,
            persisted,
            now,
        )
    }
    pub(crate) fn build(self) -> Cluster {
        let now = Instant::now();
        let engines = (0..self.n)
            .map(|i| self.engine(i, Incarnation(1), None, now))
            .collect();
        let n = self.n;
        let mut c = Cluster {
            now,
            engines,
            wire: VecDeque::new(),
            cut: BTreeSet::new(),
            crashed: BTreeSet::new(),
            drop: None,
            log: vec![Vec::new(); n],
            history: Vec::new(),
            setup: self,
        };
        for i in 0..n {
            c.connect_all(i);
            if c.setup.joined.as_ref().is_none_or(|j| j.contains(&i)) {
                c.join(i);
            }
        }
        c
    }

    /// Builds the cluster and runs it until it elects a leader: the cluster and that leader.
    pub(crate) fn elected(self) -> (Cluster, usize) {
        let mut c = self.build();
        let leader = c.elect();
        (c, leader)
    }
}

/// A message filter: true drops a message `(from, to, message)`.
type Drop = Box<dyn FnMut(usize, usize, &Message) -> bool>;

/// `n` engines wired together on one virtual clock.
pub(crate) struct Cluster {
    pub now: Instant,
    pub engines: Vec<Engine>,
    wire: VecDeque<(usize, usize, Message)>,
    /// Directed links that drop everything: (from, to).
    pub cut: BTreeSet<(usize, usize)>,
    /// Stopped nodes: no ticks, nothing delivered to or from them, not counted as leaders.
    pub crashed: BTreeSet<usize>,
    drop: Option<Drop>,
    /// Every action each node emitted, in order.
    pub log: Vec<Vec<Action>>,
    /// (time, the nodes acting as leader) each time that set changed.
    pub history: Vec<(Instant, Vec<usize>)>,
    setup: Setup,
}

impl Cluster {
    /// Feeds node `i` one input; delivers what follows; returns the input's own actions.
    pub(crate) fn input(&mut self, i: usize, input: Input) -> Vec<Action> {
        let actions = self.engines[i].handle(self.now, input);
        for a in &actions {
            if let Action::Send { to, message } = a
                && let Some(j) = (0..self.engines.len()).find(|j| name(*j) == to.as_str())
            {
                self.wire.push_back((i, j, message.clone()));
            }
        }
        self.log[i].extend(actions.iter().cloned());
        self.record();
        self.flush();
        actions
    }

    pub(crate) fn event(&mut self, i: usize, ev: TransportEvent) -> Vec<Action> {
        self.input(i, Input::Transport(ev))
    }

    /// Delivers `message` to `to` as if `from` had sent it.
    pub(crate) fn deliver(&mut self, from: &str, to: usize, message: Message) -> Vec<Action> {
        self.event(to, TransportEvent::Message(envelope(from, 1, message)))
    }

    pub(crate) fn join(&mut self, i: usize) -> Vec<Action> {
        self.input(i, join(1_000 + i as u64))
    }

    /// Every node joins each of `groups` (started when [`Cluster::join`] says), node by node,
    /// as `baton node` does at start.
    pub(crate) fn join_all(&mut self, groups: &[GroupName]) {
        for i in 0..self.engines.len() {
            for group in groups {
                self.input(i, join_group(group.clone(), 1_000 + i as u64));
            }
        }
    }

    /// Node `i` hears of a connection to every other node.
    pub(crate) fn connect_all(&mut self, i: usize) {
        for j in others(self.engines.len(), i) {
            let inc = self.engines[j].config().incarnation;
            self.event(i, connected(j, inc));
        }
    }

    fn flush(&mut self) {
        while let Some((from, to, message)) = self.wire.pop_front() {
            if self.cut.contains(&(from, to))
                || self.crashed.contains(&from)
                || self.crashed.contains(&to)
            {
                continue;
            }
            // The drop filter sees each message of a batch on its own; the survivors travel on.
            let message = match &mut self.drop {
                Some(drop) => {
                    let mut parts: Vec<Message> = match message {
                        Message::Batch(parts) => parts,
                        one => vec![one],
                    };
                    parts.retain(|m| !drop(from, to, m));
                    match parts.len() {
                        0 => continue,
                        1 => parts.remove(0),
                        _ => Message::Batch(parts),
                    }
                }
                None => message,
            };
            let inc = self.engines[from].config().incarnation;
            self.event(
                to,
                TransportEvent::Message(envelope(&name(from), inc, message)),
            );
        }
    }

    /// Drops every message for which `f(from, to, message)` is true.
    pub(crate) fn drop_when(&mut self, f: impl FnMut(usize, usize, &Message) -> bool + 'static) {
        self.drop = Some(Box::new(f));
    }

    fn record(&mut self) {
        let acting = self.acting();
        if self.history.last().is_none_or(|(_, a)| *a != acting) {
            self.history.push((self.now, acting));
        }
    }

    /// The most nodes that ever acted as leader at once.
    pub(crate) fn most_acting_at_once(&self) -> usize {
        self.history.iter().map(|(_, a)| a.len()).max().unwrap_or(0)
    }

    /// Advances the clock to `until`, waking each engine at its deadlines.
    pub(crate) fn run_until(&mut self, until: Instant) {
        loop {
            let next = (0..self.engines.len())
                .filter(|i| !self.crashed.contains(i))
                .filter_map(|i| self.engines[i].next_deadline())
                .min()
                .filter(|t| *t <= until);
            let Some(at) = next else { break };
            self.now = self.now.max(at);
            for i in 0..self.engines.len() {
                if !self.crashed.contains(&i)
                    && self.engines[i]
                        .next_deadline()
                        .is_some_and(|d| d <= self.now)
                {
                    self.input(i, Input::Tick);
                }
            }
        }
        self.now = self.now.max(until);
        self.record();
    }

    pub(crate) fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs in 5 ms steps until `done` holds (true) or `limit` passed (false).
    pub(crate) fn run_until_true(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Cluster) -> bool,
    ) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.run_for(ms(5));
        }
        done(self)
    }

    /// The live nodes acting as leader of [`G`] now.
    pub(crate) fn acting(&self) -> Vec<usize> {
        (0..self.engines.len())
            .filter(|i| !self.crashed.contains(i) && self.engines[*i].is_acting_leader(G, self.now))
            .collect()
    }

    /// Runs until exactly one node acts as leader (at most 3 s); returns it.
    pub(crate) fn elect(&mut self) -> usize {
        let found = self.run_until_true(Duration::from_secs(3), |c| c.acting().len() == 1);
        assert!(found, "no leader elected: acting {:?}", self.acting());
        self.acting()[0]
    }

    /// The node that `i` believes leads [`G`].
    pub(crate) fn leader_seen_by(&self, i: usize) -> Option<String> {
        self.engines[i]
            .leadership(G, self.now)
            .leader
            .map(|m| m.node.0)
    }

    pub(crate) fn alive_in(&self, i: usize, peer: usize) -> bool {
        self.engines[i]
            .status(self.now)
            .members
            .iter()
            .any(|m| m.name.as_str() == name(peer) && m.alive)
    }

    /// Cuts every link to and from `i`.
    pub(crate) fn isolate(&mut self, i: usize) {
        for j in others(self.engines.len(), i) {
            self.cut.insert((i, j));
            self.cut.insert((j, i));
        }
    }

    /// Stops node `i` without a word (a crash or power loss).
    pub(crate) fn crash(&mut self, i: usize) {
        self.crashed.insert(i);
    }

    /// Starts node `i` afresh (a higher incarnation) from `persisted`; it reconnects and joins.
    pub(crate) fn restart(&mut self, i: usize, persisted: Option<PersistedState>) {
        let inc = self.engines[i].config().incarnation.saturating_next();
        self.engines[i] = self.setup.engine(i, inc, persisted, self.now);
        self.crashed.remove(&i);
        for j in others(self.engines.len(), i) {
            self.event(j, connected(i, inc));
        }
        self.connect_all(i);
        self.join(i);
    }

    /// The messages node `i` sent (to whom, what), in order; a batch's parts one by one.
    pub(crate) fn sent(&self, i: usize) -> impl Iterator<Item = (&NodeId, &Message)> {
        self.log[i]
            .iter()
            .filter_map(|a| match a {
                Action::Send { to, message } => Some((to, message)),
                _ => None,
            })
            .flat_map(|(to, message)| message.parts().iter().map(move |m| (to, m)))
    }
}
