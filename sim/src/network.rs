//! The network model: in-flight messages and transport events in a queue ordered by delivery
//! time, per-message latency, loss, duplication and stragglers, partitions, connections and
//! their generations (a reset voids what belonged to the connection it tore down), the
//! handshake, and delivery to the engines — with the model's audit of its own promises (no
//! `Dead` for a live process).

use crate::config::NodeIdx;
use crate::sim::Sim;
use baton_core::engine::Input;
use baton_core::message::Message;
use baton_core::{
    CloseKind, DeathProof, DeathProofMode, Envelope, Incarnation, NodeId, TransportEvent,
};
use std::cmp::Ordering;
use std::time::Duration;

/// What an interceptor ([`Sim::intercept`]) decides for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The network's normal treatment (drop / duplicate / latency per [`NetConfig`](crate::NetConfig)).
    Pass,
    /// Lose it.
    Drop,
    /// Deliver it once, this long after it was sent (no drop, no duplicate).
    After(Duration),
    /// The normal treatment, plus one extra copy delivered this long after it was sent.
    AlsoAfter(Duration),
}

/// A message filter for targeted scenarios: `(now, from, to, message) -> verdict`.
pub type Interceptor = Box<dyn FnMut(Duration, NodeIdx, NodeIdx, &Message) -> Verdict>;

pub(crate) enum NetEvent {
    Message(Envelope),
    Transport(TransportEvent),
}

/// The undirected key of the link between `a` and `b`.
pub(crate) fn link(a: NodeIdx, b: NodeIdx) -> (NodeIdx, NodeIdx) {
    (a.min(b), a.max(b))
}

pub(crate) struct Queued {
    pub(crate) at: u64,
    pub(crate) seq: u64,
    pub(crate) to: NodeIdx,
    /// The receiver's incarnation when this was sent; a restarted receiver does not get it.
    pub(crate) to_inc: Incarnation,
    pub(crate) from: Option<(NodeIdx, Incarnation)>,
    /// The link (by its other end) whose connection this belongs to, and that connection's
    /// generation (`Sim::conn_gen`) when it was queued: what belongs to a connection that
    /// was reset, or replaced by a fresh handshake, is never delivered.
    pub(crate) conn: Option<(NodeIdx, u64)>,
    pub(crate) ev: NetEvent,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl Sim {
    pub(crate) fn latency(&mut self) -> u64 {
        let lo = self.cfg.net.min_latency.as_micros() as u64;
        let hi = self.cfg.net.max_latency.as_micros() as u64;
        self.rng.range(lo.max(1), hi.max(lo).max(1))
    }

    /// Queues `ev` for `to`, sent by `from` (node, incarnation) on their connection.
    pub(crate) fn push(
        &mut self,
        at: u64,
        to: NodeIdx,
        from: Option<(NodeIdx, Incarnation)>,
        ev: NetEvent,
    ) {
        let conn = from.map(|(f, _)| (f, self.gen_of(f, to)));
        self.enqueue(at, to, from, conn, ev);
    }

    /// Queues a transport event about the connection between `to` and `peer` (a reset), to
    /// be dropped if that connection is replaced before it arrives.
    pub(crate) fn push_on_conn(&mut self, at: u64, to: NodeIdx, peer: NodeIdx, ev: TransportEvent) {
        let conn = Some((peer, self.gen_of(peer, to)));
        self.enqueue(at, to, None, conn, NetEvent::Transport(ev));
    }

    fn enqueue(
        &mut self,
        at: u64,
        to: NodeIdx,
        from: Option<(NodeIdx, Incarnation)>,
        conn: Option<(NodeIdx, u64)>,
        ev: NetEvent,
    ) {
        self.seq += 1;
        let to_inc = self.nodes[to].incarnation;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            to,
            to_inc,
            from,
            conn,
            ev,
        });
    }

    /// Tells `from` that its dial of `addr` failed, at `at`.
    fn connect_failed(&mut self, at: u64, from: NodeIdx, addr: &str, reason: &str) {
        let ev = TransportEvent::ConnectFailed {
            addr: addr.to_string(),
            reason: reason.into(),
        };
        self.push(at, from, None, NetEvent::Transport(ev));
    }

    fn gen_of(&self, a: NodeIdx, b: NodeIdx) -> u64 {
        self.conn_gen.get(&link(a, b)).copied().unwrap_or(0)
    }

    /// True while a reset rule stands between `a` and `b`, in either direction.
    pub(crate) fn reset_between(&self, a: NodeIdx, b: NodeIdx) -> bool {
        self.resets.contains(&(a, b)) || self.resets.contains(&(b, a))
    }

    fn connect_pair(&mut self, a: NodeIdx, b: NodeIdx) {
        self.conns.insert(link(a, b));
    }

    pub(crate) fn send(&mut self, from: NodeIdx, to: &NodeId, message: Message) {
        self.stats.sent += 1;
        let Some(&j) = self.by_name.get(to.as_str()) else {
            self.stats.lost += 1;
            return;
        };
        if !self.is_live(j) || j == from {
            self.stats.lost += 1;
            return;
        }
        if self.reset_between(from, j) || self.broken.contains(&link(from, j)) {
            // Reset (or not yet re-established after a reset): the bytes go nowhere.
            self.trace(2, || {
                format!(
                    "{} -> {}: lost on a reset connection: {}",
                    self.nodes[from].id,
                    to,
                    short(&message)
                )
            });
            self.stats.lost += 1;
            return;
        }
        let at = Duration::from_micros(self.now);
        let Some(f) = self.interceptor.as_mut() else {
            self.transmit(from, j, message, Verdict::Pass);
            return;
        };
        // A targeted test's interceptor judges the messages it names, not batches: each part
        // of a batch is judged once; a batch whose parts all pass travels whole, otherwise
        // each part travels (or not) by its own verdict.
        let verdicts: Vec<Verdict> = message.parts().iter().map(|m| f(at, from, j, m)).collect();
        match message {
            Message::Batch(parts) if verdicts.iter().any(|v| !matches!(v, Verdict::Pass)) => {
                self.stats.sent += parts.len() as u64 - 1;
                for (m, v) in parts.into_iter().zip(verdicts) {
                    self.transmit(from, j, m, v);
                }
            }
            message => {
                let v = if matches!(message, Message::Batch(_)) {
                    Verdict::Pass
                } else {
                    verdicts.into_iter().next().unwrap_or(Verdict::Pass)
                };
                self.transmit(from, j, message, v);
            }
        }
    }

    /// Puts `message` on the wire from `from` to `j` as `verdict` says.
    fn transmit(&mut self, from: NodeIdx, j: NodeIdx, message: Message, verdict: Verdict) {
        let to = self.nodes[j].id.clone();
        self.trace(trace_level_of(&message), || {
            format!("{} -> {}: {}", self.nodes[from].id, to, short(&message))
        });
        let from_inc = self.nodes[from].incarnation;
        let schedule = |sim: &mut Sim, at: u64| {
            let last = sim.last_delivery.entry((from, j)).or_insert(0);
            *last = (*last).max(at);
            let env = Envelope {
                from: sim.nodes[from].id.clone(),
                incarnation: from_inc,
                message: message.clone(),
            };
            sim.push(at, j, Some((from, from_inc)), NetEvent::Message(env));
        };
        match verdict {
            Verdict::Pass => {}
            Verdict::Drop => {
                self.stats.lost += 1;
                return;
            }
            Verdict::After(d) => {
                schedule(self, self.now + d.as_micros() as u64);
                return;
            }
            Verdict::AlsoAfter(d) => {
                self.stats.duplicated += 1;
                schedule(self, self.now + d.as_micros() as u64);
            }
        }
        if self.rng.chance(self.cfg.net.drop) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.cfg.net.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = self.now + self.latency();
            if self.rng.chance(self.cfg.net.straggle) {
                at += self
                    .rng
                    .range(1, self.cfg.net.straggle_max.as_micros() as u64);
            }
            schedule(self, at);
        }
    }

    pub(crate) fn connect(&mut self, from: NodeIdx, addr: &str) {
        let Some(&j) = self.by_name.get(addr) else {
            let at = self.now + self.latency();
            self.connect_failed(at, from, addr, "no such host");
            return;
        };
        if j == from {
            return;
        }
        self.trace(1, || {
            format!("{} connects to {}", self.nodes[from].id, addr)
        });
        if !self.is_live(j) {
            let at = self.now + 2 * self.latency();
            self.connect_failed(at, from, addr, "connection refused");
            return;
        }
        if self.resets.contains(&(from, j)) {
            // The SYN is rejected with a reset: refused, like a closed port — but the process
            // lives, and its last connection (if any) was reset, not closed: no proof.
            let at = self.now + 2 * self.latency();
            self.connect_failed(at, from, addr, "connection refused");
            return;
        }
        if self.blocked.contains(&(from, j))
            || self.blocked.contains(&(j, from))
            || self.resets.contains(&(j, from))
        {
            // A partition: the SYN goes nowhere; the dialer's attempt times out. (A reset rule
            // the other way rejects the SYN-ACK: the reset goes to the acceptor, which has no
            // connection yet; the dialer hears nothing.)
            let at = self.now + self.cfg.failure_timeout.as_micros() as u64;
            self.connect_failed(at, from, addr, "timed out");
            return;
        }
        self.handshake(from, j);
    }

    /// A connection from `from` to `j`, both live and reachable: the acceptor learns of the
    /// dialer after one trip, the dialer after two. On a link a reset broke, it is a new
    /// connection: whatever still belongs to the old one is void.
    pub(crate) fn handshake(&mut self, from: NodeIdx, j: NodeIdx) {
        if self.broken.contains(&link(from, j)) {
            *self.conn_gen.entry(link(from, j)).or_insert(0) += 1;
        }
        let l1 = self.latency();
        let l2 = self.latency();
        let to_j = TransportEvent::Connected {
            node: self.nodes[from].id.clone(),
            incarnation: self.nodes[from].incarnation,
            addr: self.nodes[from].id.0.clone(),
        };
        let to_from = TransportEvent::Connected {
            node: self.nodes[j].id.clone(),
            incarnation: self.nodes[j].incarnation,
            addr: self.nodes[j].id.0.clone(),
        };
        let (fi, ji) = (self.nodes[from].incarnation, self.nodes[j].incarnation);
        self.push(
            self.now + l1,
            j,
            Some((from, fi)),
            NetEvent::Transport(to_j),
        );
        self.push(
            self.now + l1 + l2,
            from,
            Some((j, ji)),
            NetEvent::Transport(to_from),
        );
    }

    pub(crate) fn deliver(&mut self, q: Queued) {
        let Queued {
            seq,
            to,
            to_inc,
            from,
            conn,
            ev,
            ..
        } = q;
        let stale = conn.is_some_and(|(p, g)| g != self.gen_of(p, to));
        if !self.is_live(to) || self.nodes[to].incarnation != to_inc || stale {
            if matches!(ev, NetEvent::Message(_)) {
                self.stats.lost += 1;
            }
            return;
        }
        if let Some((f, finc)) = from {
            let key = link(f, to);
            let is_message = matches!(ev, NetEvent::Message(_));
            // Cut off; or reset meanwhile (the reset discards what was in flight, and a
            // handshake begun before it never completes); or a reset connection that no
            // handshake has re-established yet.
            if self.blocked.contains(&(f, to))
                || self.reset_between(f, to)
                || (is_message && self.broken.contains(&key))
            {
                if is_message {
                    self.stats.lost += 1;
                }
                return;
            }
            // A connection from a process that is still the one running carries on; bytes
            // from a crashed one are still delivered (they were in the socket buffers).
            if self.is_live(f) && self.nodes[f].incarnation == finc {
                match &ev {
                    NetEvent::Message(_) => self.connect_pair(f, to),
                    NetEvent::Transport(TransportEvent::Connected { .. }) => {
                        if !self.blocked.contains(&(to, f)) {
                            if self.broken.remove(&key) {
                                // A fresh handshake after a reset: the link works again.
                                self.half_open.remove(&(f, to));
                                self.half_open.remove(&(to, f));
                                self.stats.reconnects += 1;
                            }
                            self.connect_pair(f, to)
                        }
                    }
                    NetEvent::Transport(_) => {}
                }
            } else if matches!(ev, NetEvent::Transport(TransportEvent::Connected { .. })) {
                // The handshake's other side died meanwhile: the connection never happened.
                return;
            }
        }
        if let NetEvent::Transport(t) = &ev {
            self.audit_transport_event(to, t);
        }
        if let (Some((f, _)), NetEvent::Message(_)) = (from, &ev) {
            let last = self.delivered_seq.entry((f, to)).or_insert(0);
            if seq < *last {
                self.stats.reordered += 1;
            } else {
                *last = seq;
            }
        }
        let input = match ev {
            NetEvent::Message(env) => {
                self.trace(trace_level_of(&env.message), || {
                    format!(
                        "{} <- {}: {}",
                        self.nodes[to].id,
                        env.from,
                        short(&env.message)
                    )
                });
                Input::Transport(TransportEvent::Message(env))
            }
            NetEvent::Transport(ev) => {
                self.trace(1, || format!("{} <- transport: {ev:?}", self.nodes[to].id));
                Input::Transport(ev)
            }
        };
        self.input(to, input);
    }

    /// Counts closes and proofs, and checks the model's own promise: `Dead` only for an
    /// incarnation that is really gone, and only of a kind the configured mode reports.
    fn audit_transport_event(&mut self, to: NodeIdx, ev: &TransportEvent) {
        if let Some(log) = self.transport_log.as_mut() {
            log.push((Duration::from_micros(self.now), to, ev.clone()));
        }
        match ev {
            TransportEvent::Disconnected {
                how: CloseKind::Orderly,
                ..
            } => self.stats.orderly_closes += 1,
            TransportEvent::Disconnected {
                how: CloseKind::Abrupt,
                ..
            } => self.stats.resets += 1,
            TransportEvent::Dead {
                node,
                incarnation,
                proof,
            } => {
                self.stats.proofs += 1;
                if let Some(j) = self.index_of(node.as_str())
                    && !self.cfg.legacy_reset_proofs
                    && self.is_live(j)
                    && self.nodes[j].incarnation == *incarnation
                {
                    self.model_error = Some(format!(
                        "{} was told that {node} (incarnation {incarnation}) is dead ({proof}), but it runs",
                        self.nodes[to].id
                    ));
                }
                if *proof == DeathProof::RefusedAfterOrderlyClose
                    && self.cfg.death_proof == DeathProofMode::Timeout
                {
                    self.model_error = Some(format!(
                        "{} got a refused-after-orderly-close proof for {node} in timeout mode",
                        self.nodes[to].id
                    ));
                }
            }
            _ => {}
        }
    }

    /// Installs a filter every message passes before the network's normal treatment (for
    /// targeted scenarios: hold back one message, duplicate another late, …).
    pub fn intercept(
        &mut self,
        f: impl FnMut(Duration, NodeIdx, NodeIdx, &Message) -> Verdict + 'static,
    ) {
        self.interceptor = Some(Box::new(f));
    }

    /// Removes the filter.
    pub fn clear_interceptor(&mut self) {
        self.interceptor = None;
    }
}

/// The trace level a message shows at: heartbeats and acks only at 2.
fn trace_level_of(m: &Message) -> u8 {
    // A batch shows at the level of its most interesting part.
    m.parts()
        .iter()
        .map(|m| {
            if matches!(m, Message::Heartbeat(_) | Message::HeartbeatAck(_)) {
                2
            } else {
                1
            }
        })
        .min()
        .unwrap_or(2)
}

/// A short description of a message for traces.
fn short(m: &Message) -> String {
    match m {
        Message::Heartbeat(h) => match &h.state {
            Some(s) => {
                let claims: Vec<String> = s
                    .claims
                    .iter()
                    .map(|c| format!("{}@{}={}", c.group, c.term, c.member))
                    .collect();
                format!("Heartbeat seq={} v{} claims={claims:?}", h.seq, h.version)
            }
            None => format!("Heartbeat seq={} v{} (state unchanged)", h.seq, h.version),
        },
        Message::HeartbeatAck(a) => {
            format!("Ack seq={} v{} rejected={:?}", a.seq, a.version, a.rejected)
        }
        Message::VoteRequest(r) => format!(
            "VoteRequest {} term={} cand={} pre={} handoff={:?}",
            r.group,
            r.term,
            r.candidate,
            r.pre,
            r.handoff.as_ref().map(|h| (h.from.to_string(), h.term))
        ),
        Message::VoteResponse(r) => format!(
            "VoteResponse {} term={} pre={} granted={} known={}",
            r.group, r.term, r.pre, r.granted, r.known_term
        ),
        Message::StepDown(s) => format!(
            "StepDown {} term={} from={} successor={:?}",
            s.group,
            s.term,
            s.from,
            s.successor.as_ref().map(|m| m.to_string())
        ),
        Message::Request(r) => format!("Request id={} {}", r.id, r.group),
        Message::Response(r) => format!("Response id={}", r.id),
        Message::Leave => "Leave".to_string(),
        Message::Batch(parts) => {
            let parts: Vec<String> = parts.iter().map(short).collect();
            format!("Batch[{}]", parts.join("; "))
        }
        other => format!("{other:?}"),
    }
}
