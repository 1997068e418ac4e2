//! [`Probe`]: one engine under test among *fake* peers that the test speaks for. The test sends
//! the engine hand-made messages and reads what it answers: the voter side of a rule, a lease
//! renewed by exactly the acks the test sends.

use super::fixtures::{ack, heartbeat};
use super::harness::{G, HB, envelope, join, ms, vote_request, vote_requests, vote_responses};
use crate::engine::{Action, Engine, EngineConfig, Input, PersistedState, Quorum};
use crate::message::{Claim, Heartbeat, MemberAnnounce, Message, VoteRequest, VoteResponse};
use crate::policy::ByMemberId;
use crate::transport::TransportEvent;
use crate::types::Incarnation;
use crate::types::{Labels, MemberId, NodeId, Term};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fake peer of a [`Probe`].
struct Fake {
    seq: u64,
    /// Beats (heartbeats) every [`HB`].
    beating: bool,
    /// Claims to lead [`G`] with this term.
    claim: Option<Term>,
}

/// One engine under test; the test speaks for every other node.
pub(crate) struct Probe {
    pub now: Instant,
    pub engine: Engine,
    /// Every action the engine emitted, in order.
    pub out: Vec<Action>,
    fakes: BTreeMap<String, Fake>,
    next_beat: Instant,
}

impl Probe {
    /// Node `me` with these voters, among fake `peers` that are connected, beat every [`HB`]
    /// and each announce member 0 of [`G`].
    pub(crate) fn new(me: &str, voters: &[&str], peers: &[&str]) -> Probe {
        let quorum = Quorum::Majority(voters.iter().map(|v| NodeId::new(*v)).collect());
        Probe::with(EngineConfig::new(me, 1, quorum), None, peers)
    }

    /// `n1` among voters `n0`, `n1`, `n2`; `n0` and `n2` are fake (`n0` is the favourite).
    pub(crate) fn voter() -> Probe {
        Probe::new("n1", &["n0", "n1", "n2"], &["n0", "n2"])
    }

    pub(crate) fn with(
        cfg: EngineConfig,
        persisted: Option<PersistedState>,
        peers: &[&str],
    ) -> Probe {
        let now = Instant::now();
        let engine = Engine::new(cfg, Arc::new(ByMemberId), BTreeMap::new(), persisted, now);
        let mut p = Probe {
            now,
            engine,
            out: Vec::new(),
            fakes: BTreeMap::new(),
            next_beat: now + HB,
        };
        for peer in peers {
            let fake = Fake {
                seq: 0,
                beating: true,
                claim: None,
            };
            p.fakes.insert(peer.to_string(), fake);
            p.handle(Input::Transport(TransportEvent::Connected {
                node: NodeId::new(*peer),
                incarnation: Incarnation(1),
                addr: peer.to_string(),
            }));
            p.beat(peer);
        }
        p
    }

    pub(crate) fn handle(&mut self, input: Input) -> Vec<Action> {
        let actions = self.engine.handle(self.now, input);
        self.out.extend(actions.iter().cloned());
        actions
    }

    /// A settled voter probe (past its abstention) following `peer`'s claim of `term`.
    pub(crate) fn following(peer: &str, term: Term) -> Probe {
        let mut p = Probe::voter();
        p.advance(ms(600));
        p.claim(peer, Some(term));
        p
    }

    /// The member the engine believes leads [`G`] now.
    pub(crate) fn leader(&self) -> Option<MemberId> {
        self.engine.leadership(G, self.now).leader
    }

    /// `from` sends the engine `message`.
    pub(crate) fn from(&mut self, from: &str, message: Message) -> Vec<Action> {
        self.handle(Input::Transport(TransportEvent::Message(envelope(
            from, 1, message,
        ))))
    }

    /// `peer` sends its next periodic heartbeat; returns its sequence number.
    pub(crate) fn beat(&mut self, peer: &str) -> u64 {
        let Some(f) = self.fakes.get_mut(peer) else {
            panic!("{peer} is no fake peer");
        };
        f.seq += 1;
        let mut hb = heartbeat(peer, f.seq, f.claim);
        if let Some(state) = &mut hb.state {
            state.members = vec![MemberAnnounce {
                id: MemberId::new(peer, 0),
                group: G.into(),
                started_at_ms: 1_000,
                labels: Labels::new(),
                healthy: true,
                version: None,
            }];
        }
        let seq = f.seq;
        self.from(peer, Message::Heartbeat(hb));
        seq
    }

    /// From now on `peer` claims to lead [`G`] with `term` (`None`: no longer), and says so.
    pub(crate) fn claim(&mut self, peer: &str, term: Option<Term>) {
        if let Some(f) = self.fakes.get_mut(peer) {
            f.claim = term;
        }
        self.beat(peer);
    }

    /// `peer` stops sending heartbeats.
    pub(crate) fn silence(&mut self, peer: &str) {
        if let Some(f) = self.fakes.get_mut(peer) {
            f.beating = false;
        }
    }

    /// Advances the clock by `d`: fake peers beat, the engine ticks at its deadlines. Returns
    /// what the engine did meanwhile.
    pub(crate) fn advance(&mut self, d: Duration) -> Vec<Action> {
        let until = self.now + d;
        let start = self.out.len();
        loop {
            let tick = self.engine.next_deadline().filter(|t| *t <= until);
            let beat = Some(self.next_beat).filter(|t| *t <= until);
            let Some(at) = tick.into_iter().chain(beat).min() else {
                break;
            };
            self.now = self.now.max(at);
            if self.next_beat <= self.now {
                self.next_beat += HB;
                let beating: Vec<String> = self
                    .fakes
                    .iter()
                    .filter(|(_, f)| f.beating)
                    .map(|(n, _)| n.clone())
                    .collect();
                for peer in beating {
                    self.beat(&peer);
                }
            }
            if self.engine.next_deadline().is_some_and(|t| t <= self.now) {
                self.handle(Input::Tick);
            }
        }
        self.now = until;
        self.out[start..].to_vec()
    }

    /// `from` asks for a vote; the engine's answer to it.
    pub(crate) fn ask(&mut self, from: &str, req: VoteRequest) -> VoteResponse {
        let actions = self.from(from, Message::VoteRequest(req));
        vote_responses(&actions)
            .into_iter()
            .find(|(to, _)| to.as_str() == from)
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("no answer to {from}: {actions:?}"))
    }

    /// Whether `from`'s request for a vote is granted.
    pub(crate) fn grants(&mut self, from: &str, term: Term, pre: bool) -> bool {
        self.ask(from, vote_request(from, term, pre)).granted
    }

    /// Answers every vote request in `actions` (and in what the answers lead to) from its fake
    /// voter with a grant.
    pub(crate) fn grant_all(&mut self, actions: &[Action]) {
        let mut todo = vote_requests(actions);
        while let Some((to, req)) = todo.pop() {
            let resp = VoteResponse {
                group: req.group,
                term: req.term,
                pre: req.pre,
                granted: true,
                known_term: 0,
                retry_in_ms: 0,
            };
            let more = self.from(to.as_str(), Message::VoteResponse(resp));
            todo.extend(vote_requests(&more));
        }
    }

    /// Joins [`G`] and runs, granting every vote it asks for, until it acts as leader (at most
    /// 2 s); returns its term.
    pub(crate) fn elect_me(&mut self) -> Term {
        self.handle(join(1_000));
        for _ in 0..400 {
            let actions = self.advance(ms(5));
            self.grant_all(&actions);
            if self.engine.is_acting_leader(G, self.now) {
                return self.engine.term(G);
            }
        }
        panic!("the probe was not elected: {:?}", self.out);
    }

    /// Every heartbeat the engine sent, alone or in a batch, with whom it went to, in order.
    fn heartbeats(&self) -> impl Iterator<Item = (&NodeId, &Heartbeat)> + '_ {
        self.out
            .iter()
            .filter_map(|a| match a {
                Action::Send { to, message } => Some((to, message)),
                _ => None,
            })
            .flat_map(|(to, m)| m.parts().iter().map(move |m| (to, m)))
            .filter_map(|(to, m)| match m {
                Message::Heartbeat(h) => Some((to, h)),
                _ => None,
            })
    }

    /// The periodic heartbeats the engine sent to `peer`: their sequence numbers and claims.
    pub(crate) fn heartbeats_to(&self, peer: &str) -> Vec<(u64, Vec<Claim>)> {
        self.heartbeats()
            .filter(|(to, h)| to.as_str() == peer && h.seq > 0)
            .map(|(_, h)| (h.seq, self.claims_in(h)))
            .collect()
    }

    /// The claims a heartbeat renews: those of its state, or of the last state sent before it
    /// (the engine sends its state only when it changed).
    fn claims_in(&self, h: &Heartbeat) -> Vec<Claim> {
        if let Some(s) = &h.state {
            return s.claims.clone();
        }
        let states: Vec<_> = self
            .heartbeats()
            .filter_map(|(_, h2)| h2.state.as_ref().filter(|_| h2.version == h.version))
            .collect();
        states.last().map(|s| s.claims.clone()).unwrap_or_default()
    }

    /// The state version heartbeat `seq` to `peer` announced (0: none sent).
    pub(crate) fn heartbeat_version(&self, peer: &str, seq: u64) -> u64 {
        self.heartbeats()
            .find(|(to, h)| to.as_str() == peer && h.seq == seq)
            .map_or(0, |(_, h)| h.version)
    }

    /// `peer` acknowledges heartbeat `seq`, holding the state version that heartbeat announced.
    pub(crate) fn ack(&mut self, peer: &str, seq: u64) {
        let version = self.heartbeat_version(peer, seq);
        self.from(peer, ack(seq, version));
    }
}
