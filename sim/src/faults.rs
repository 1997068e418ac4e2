//! The faults a test or a schedule injects, as methods of [`Sim`]: crash, restart (with or
//! without the persisted state) and kind shutdown of a node, members leaving and joining,
//! partitions and one-way cuts, middlebox resets ([`ResetWay`]), a clock changing rate, a
//! worse network, and the heal of them all. A node's boot (a new incarnation) lives here
//! too, as the other half of a crash.

use crate::clock;
use crate::config::{NetConfig, NodeIdx, SimQuorum};
use crate::network::{NetEvent, link};
use crate::sim::Sim;
use baton_core::engine::{Engine, EngineConfig, Input, PersistedState, Quorum};
use baton_core::{
    ByMemberId, CloseKind, DeathProof, DeathProofMode, GroupName, Hardware, TransportEvent,
};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Wall-clock origin of the simulation (ms since the Unix epoch) for `started_at_ms`.
const EPOCH_MS: u64 = 1_700_000_000_000;

/// How a middlebox reset ([`Sim::middlebox_reset`]) cuts a node off, and who sees the resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetWay {
    /// Both directions, both ends see resets (`REJECT --reject-with tcp-reset` on the router
    /// for traffic to and from the node).
    Both,
    /// A rule in the node's own OUTPUT chain for packets to its peers: only the node sees
    /// resets; its peers just stop hearing from it.
    Outgoing,
    /// A rule in every peer's OUTPUT chain for packets to the node: only the peers see
    /// resets; the node just stops hearing from them.
    Incoming,
}

impl Sim {
    /// True when some link is cut.
    pub fn partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// The middlebox reset rules in force, directed: packets from `.0` to `.1` are rejected
    /// with a reset to `.0`.
    pub fn reset_rules(&self) -> &BTreeSet<(NodeIdx, NodeIdx)> {
        &self.resets
    }

    /// True while some middlebox reset rule is in force.
    pub fn resetting(&self) -> bool {
        !self.resets.is_empty()
    }

    /// From now on node `i`'s clock runs at `rate` × true time (its reading stays continuous
    /// and monotonic); the engine's next wake-up is converted again.
    pub fn set_clock_rate(&mut self, i: NodeIdx, rate: f64) {
        self.set_clock_ppm(i, clock::rate_to_ppm(rate));
    }

    /// [`Sim::set_clock_rate`] in parts per million.
    pub fn set_clock_ppm(&mut self, i: NodeIdx, rate_ppm: u64) {
        self.trace(1, || {
            format!(
                "FAULT clock of {} runs at {:.4}",
                self.nodes[i].id,
                rate_ppm as f64 / clock::PPM as f64
            )
        });
        let now = self.now;
        self.nodes[i].clock.set_rate(now, rate_ppm);
        self.refresh_wake(i);
    }

    /// Kills node `i` (like `kill -9`). Every live peer connected to it and not cut off from
    /// it sees the connection close (`Disconnected`), after the bytes already in flight, then
    /// gets its reconnect refused (`Dead`). Peers cut off see nothing and must time out.
    pub fn crash(&mut self, i: NodeIdx) {
        if !self.is_live(i) {
            return;
        }
        self.trace(1, || format!("FAULT crash {}", self.nodes[i].id));
        self.remove(i);
    }

    fn remove(&mut self, i: NodeIdx) {
        let inc = self.nodes[i].incarnation;
        self.nodes[i].engine = None;
        self.nodes[i].wake = None;
        let peers: Vec<NodeIdx> = self
            .conns
            .iter()
            .filter_map(|&(a, b)| {
                if a == i {
                    Some(b)
                } else if b == i {
                    Some(a)
                } else {
                    None
                }
            })
            .collect();
        self.conns.retain(|&(a, b)| a != i && b != i);
        // Its half-open connections die with it (its peers were already cut off from it).
        self.half_open.retain(|&(w, _)| w != i);
        for j in peers {
            if !self.is_live(j)
                || self.blocked.contains(&(i, j))
                || self.blocked.contains(&(j, i))
                || self.reset_between(i, j)
            {
                continue;
            }
            let in_flight = self.last_delivery.get(&(i, j)).copied().unwrap_or(0);
            let closed = (self.now + self.latency()).max(in_flight + 1);
            let proof = closed + self.proof_delay();
            let id = self.nodes[i].id.clone();
            // The process is gone: its kernel closes its sockets in order (FIN).
            self.push(
                closed,
                j,
                None,
                NetEvent::Transport(TransportEvent::Disconnected {
                    node: id.clone(),
                    how: CloseKind::Orderly,
                }),
            );
            // The redial is refused. Only a transport in orderly-close mode calls that proof.
            if self.cfg.death_proof == DeathProofMode::OrderlyClose {
                self.push(
                    proof,
                    j,
                    None,
                    NetEvent::Transport(TransportEvent::Dead {
                        node: id,
                        incarnation: inc,
                        proof: DeathProof::RefusedAfterOrderlyClose,
                    }),
                );
            }
        }
    }

    /// Restarts a stopped node with a new incarnation, handing it its persisted state when the
    /// simulation has persistence. It dials its seeds (every other node) and rejoins its groups.
    pub fn restart(&mut self, i: NodeIdx) {
        let persist = self.cfg.persistence;
        self.restart_with(i, persist);
    }

    /// Restarts a stopped node, with or without its persisted state.
    pub fn restart_with(&mut self, i: NodeIdx, persistence: bool) {
        if self.is_live(i) {
            return;
        }
        self.trace(1, || {
            format!(
                "FAULT restart {} (persistence: {persistence})",
                self.nodes[i].id
            )
        });
        let persisted = if persistence {
            self.nodes[i].store.clone()
        } else {
            // A blank disk: the term invariant starts over for this node, and terms may repeat
            // in the cluster (`Oracle::forget`).
            self.nodes[i].store = None;
            self.oracle.forget(i);
            None
        };
        self.boot(i, persisted);
    }

    pub(crate) fn boot(&mut self, i: NodeIdx, persisted: Option<PersistedState>) {
        self.nodes[i].incarnation = self.nodes[i].incarnation.saturating_next();
        let inc = self.nodes[i].incarnation;
        let quorum = match &self.cfg.quorum {
            SimQuorum::Majority(v) => {
                Quorum::Majority(v.iter().map(|&j| self.nodes[j].id.clone()).collect())
            }
            SimQuorum::None => Quorum::None,
        };
        let mut c = EngineConfig::new(self.nodes[i].id.0.clone(), inc, quorum)
            .with_timing(self.cfg.heartbeat, self.cfg.failure_timeout);
        c.backoff = self.cfg.backoff;
        c.death_proof = self.cfg.death_proof;
        c.seeds = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n.id.0.clone())
            .collect();
        c.hardware = Hardware {
            cpus: 1 + (i as u32 * 3) % 5,
            memory_bytes: 1 << 30,
            weight: None,
        };
        c.rng_seed = self.rng.next_u64();
        let engine = Engine::new(
            c,
            Arc::new(ByMemberId),
            self.specs.clone(),
            persisted,
            self.clock_of(i),
        );
        self.nodes[i].engine = Some(engine);
        self.input(i, Input::Tick);
        let groups: Vec<GroupName> = self.nodes[i].joined.iter().cloned().collect();
        for g in groups {
            self.join_input(i, g);
        }
    }

    fn join_input(&mut self, i: NodeIdx, group: GroupName) {
        // The node's wall clock: its own (offset, drifting) clock.
        let started_at_ms = EPOCH_MS + (self.nodes[i].clock.read_ns(self.now) / 1_000_000) as u64;
        self.input(
            i,
            Input::Join {
                group,
                labels: Default::default(),
                started_at_ms,
            },
        );
    }

    /// Kind shutdown of node `i`: `Input::Shutdown` (it hands off what it leads and says
    /// goodbye), its actions are performed, then the process is gone like a crash.
    pub fn shutdown(&mut self, i: NodeIdx) {
        if !self.is_live(i) {
            return;
        }
        self.trace(1, || format!("FAULT shutdown {}", self.nodes[i].id));
        self.input(i, Input::Shutdown);
        self.remove(i);
    }

    /// Node `i`'s instance leaves `group` (handing off if it leads).
    pub fn leave(&mut self, i: NodeIdx, group: impl Into<GroupName>) {
        let group = group.into();
        if !self.nodes[i].joined.remove(&group) {
            return;
        }
        self.trace(1, || format!("FAULT {} leaves {group}", self.nodes[i].id));
        self.input(i, Input::Leave { group });
    }

    /// Node `i` joins `group` with a new instance (a new member id).
    pub fn join(&mut self, i: NodeIdx, group: impl Into<GroupName>) {
        let group = group.into();
        if !self.nodes[i].joined.insert(group.clone()) {
            return;
        }
        self.trace(1, || format!("FAULT {} joins {group}", self.nodes[i].id));
        self.join_input(i, group);
    }

    /// Cuts every link between different sides (both ways). Nodes in no side keep their links.
    /// No transport events: the packets just vanish.
    pub fn partition(&mut self, sides: &[Vec<NodeIdx>]) {
        self.trace(1, || format!("FAULT partition {sides:?}"));
        for (a, side_a) in sides.iter().enumerate() {
            for (b, side_b) in sides.iter().enumerate() {
                if a != b {
                    for &x in side_a {
                        for &y in side_b {
                            self.blocked.insert((x, y));
                        }
                    }
                }
            }
        }
    }

    /// Cuts the link from `from` to `to` only (an asymmetric partition).
    pub fn cut(&mut self, from: NodeIdx, to: NodeIdx) {
        self.trace(1, || format!("FAULT cut {from} -> {to}"));
        if from != to {
            self.blocked.insert((from, to));
        }
    }

    /// Restores every link. Links a middlebox reset broke and no rule still resets get their
    /// connection back by a fresh handshake (the transports kept redialing).
    pub fn heal_partitions(&mut self) {
        self.trace(1, || "FAULT heal partitions".to_string());
        self.blocked.clear();
        self.redial_broken();
    }

    /// Starts a middlebox reset around node `i` (`REJECT --reject-with tcp-reset`, see
    /// [`ResetWay`] for where the rule sits): its established connections are reset — every
    /// end that the rule answers gets `Disconnected{how: Abrupt}` when it next sends, about
    /// one latency plus up to one heartbeat later — and from then on everything sent between
    /// it and its peers is lost and every redial is refused (by the side the rule answers; the
    /// other side's redial times out). Every process lives on: no `Dead` is ever reported.
    /// [`Sim::end_resets`] ends it.
    pub fn middlebox_reset(&mut self, i: NodeIdx, way: ResetWay) {
        let others: Vec<NodeIdx> = (0..self.nodes.len()).filter(|&j| j != i).collect();
        let rules: Vec<(NodeIdx, NodeIdx)> = match way {
            ResetWay::Both => others.iter().flat_map(|&j| [(i, j), (j, i)]).collect(),
            ResetWay::Outgoing => others.iter().map(|&j| (i, j)).collect(),
            ResetWay::Incoming => others.iter().map(|&j| (j, i)).collect(),
        };
        self.trace(1, || {
            format!(
                "FAULT middlebox reset around {} ({way:?})",
                self.nodes[i].id
            )
        });
        self.reset_links(&rules);
    }

    /// Adds middlebox reset rules, directed: packets from `.0` to `.1` are rejected with a
    /// reset to `.0` (`(a, b)` alone: a rule in `a`'s OUTPUT chain; both `(a, b)` and `(b, a)`:
    /// a firewall between them). The link's connection is reset as in
    /// [`Sim::middlebox_reset`]; an end no rule answers is not told and just hears nothing.
    pub fn reset_links(&mut self, rules: &[(NodeIdx, NodeIdx)]) {
        self.trace(1, || format!("FAULT reset rules {rules:?}"));
        let n = self.nodes.len();
        for &(a, b) in rules {
            if a != b && a < n && b < n {
                self.resets.insert((a, b));
            }
        }
        let links: BTreeSet<(NodeIdx, NodeIdx)> = rules
            .iter()
            .filter(|(a, b)| a != b && *a < n && *b < n)
            .map(|&(a, b)| link(a, b))
            .collect();
        let hb = self.cfg.heartbeat.as_micros() as u64;
        for key in links {
            // The connection is gone: in-flight bytes and half-done handshakes with it.
            let had = self.conns.remove(&key);
            self.broken.insert(key);
            *self.conn_gen.entry(key).or_insert(0) += 1;
            let (a, b) = key;
            for (who, peer) in [(a, b), (b, a)] {
                if !self.is_live(who) {
                    continue;
                }
                let open = had || self.half_open.contains(&(who, peer));
                if !open {
                    continue;
                }
                if self.resets.contains(&(who, peer)) {
                    // Its next packet to the peer is answered with a reset.
                    self.half_open.remove(&(who, peer));
                    let at = self.now + self.latency() + self.rng.below(hb.max(1));
                    let ev = TransportEvent::Disconnected {
                        node: self.nodes[peer].id.clone(),
                        how: CloseKind::Abrupt,
                    };
                    self.push_on_conn(at, who, peer, ev);
                    if self.cfg.legacy_reset_proofs && self.is_live(peer) {
                        // The wrong transport: its redial is refused, so it calls the peer dead.
                        let ev = TransportEvent::Dead {
                            node: self.nodes[peer].id.clone(),
                            incarnation: self.nodes[peer].incarnation,
                            proof: DeathProof::RefusedAfterOrderlyClose,
                        };
                        let proof_at = at + self.proof_delay();
                        self.push(proof_at, who, None, NetEvent::Transport(ev));
                    }
                } else {
                    self.half_open.insert((who, peer));
                }
            }
        }
    }

    /// Ends every middlebox reset: the rules are gone, and each link they broke between two
    /// live nodes that are not cut off gets a fresh handshake (`Connected` at both ends, with
    /// the same incarnations) — its transports kept redialing. A broken link to a stopped
    /// node heals when it restarts and dials; a partitioned one when the partition heals.
    pub fn end_resets(&mut self) {
        self.trace(1, || "FAULT end middlebox resets".to_string());
        self.resets.clear();
        self.redial_broken();
    }

    fn redial_broken(&mut self) {
        let broken: Vec<(NodeIdx, NodeIdx)> = self.broken.iter().copied().collect();
        for (a, b) in broken {
            if !self.is_live(a)
                || !self.is_live(b)
                || self.reset_between(a, b)
                || self.blocked.contains(&(a, b))
                || self.blocked.contains(&(b, a))
            {
                continue;
            }
            // The end that saw the reset redials (either, when both did or neither).
            let (from, to) = if self.half_open.contains(&(a, b)) {
                (b, a)
            } else if self.half_open.contains(&(b, a)) || self.rng.chance(0.5) {
                (a, b)
            } else {
                (b, a)
            };
            self.trace(1, || {
                format!(
                    "{} redials {} after the reset",
                    self.nodes[from].id, self.nodes[to].id
                )
            });
            self.handshake(from, to);
        }
    }

    /// Changes the network's behaviour from now on (messages in flight keep their latency).
    pub fn set_net(&mut self, net: NetConfig) {
        self.trace(1, || format!("FAULT net {net:?}"));
        self.cfg.net = net;
    }

    /// Ends every fault: calm network, no partitions, no middlebox resets (broken links get a
    /// fresh handshake), every stopped node restarted, every group rejoined on every node.
    pub fn heal_all(&mut self) {
        self.set_net(NetConfig::calm());
        self.resets.clear();
        self.heal_partitions();
        for i in 0..self.nodes.len() {
            self.restart(i);
        }
        let groups: Vec<GroupName> = self.cfg.groups.iter().map(|g| g.name.clone()).collect();
        for i in 0..self.nodes.len() {
            for g in &groups {
                self.join(i, g);
            }
        }
    }

    /// How long after its `Disconnected` a peer gets its reconnect refused: drawn from
    /// [`SimConfig::proof_delay`](crate::SimConfig::proof_delay).
    fn proof_delay(&mut self) -> u64 {
        let (lo, hi) = self.cfg.proof_delay;
        self.rng.range(lo.as_micros() as u64, hi.as_micros() as u64)
    }
}
