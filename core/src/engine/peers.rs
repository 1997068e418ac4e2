//! The peer table: which incarnation of each node this node knows, and whether it is alive,
//! silent or proven dead.
//!
//! Every rule about peer liveness lives here, as a table that applies one update and reports
//! what changed (in the manner of foca's member table), so each rule is unit-tested on its own:
//!
//! - A node unknown so far is **alive** from its first message or connection.
//! - An **older** incarnation than the known one is stale: ignored.
//! - A **newer** incarnation replaces the known one; the old one is dead
//!   ([`DeathProof::Superseded`]). Transports admit a newer incarnation only while the old one
//!   has no live connection (they refuse a duplicate name otherwise).
//! - A peer is **silent** after `failure_timeout` without a message, and alive again with the
//!   next one.
//! - A peer is **dead** at once on a proof this node trusts (see [`proof_counts`]): a refused
//!   reconnect after an orderly close, a newer incarnation, or its goodbye. A reset, a timeout or
//!   an ICMP error is no proof; the transport reports it as an abrupt [`CloseKind`], which marks
//!   the link **reset** until the peer is heard from again.
//! - A dead incarnation's messages are ignored — they may be late copies from before its death —
//!   but a **fresh authenticated connection** of it (`Connected`) lifts the verdict: it is
//!   silent, not dead, and alive again with its next message. The proof was wrong (a proxy
//!   answered in its place), and the cluster must heal without restarts. A connection alone
//!   never makes a silent peer alive: only its messages do.

use crate::message::{Claim, MemberAnnounce};
use crate::transport::{CloseKind, DeathProof, DeathProofMode, proof_counts};
use crate::types::{GroupName, Hardware, Incarnation, Labels, NodeId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether a peer's incarnation is alive in this node's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Heard from within the failure timeout.
    Alive,
    /// Not heard from for a failure timeout: treated as down, alive again with its next message.
    Silent,
    /// Proven gone. Only a fresh connection of it or a newer incarnation comes back.
    Dead {
        /// What proved it.
        proof: DeathProof,
        /// When.
        at: Instant,
    },
}

/// What the transport last said about the links to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// Nothing wrong known.
    Up,
    /// A connection to it was reset (or reconnects were refused without proof) and nothing has
    /// been heard from it since: it may be cut off by a firewall.
    Reset,
}

/// A peer as this node knows it.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub incarnation: Incarnation,
    pub addr: Option<String>,
    pub last_heard: Instant,
    pub liveness: Liveness,
    pub link: Link,
    pub hardware: Hardware,
    pub labels: Labels,
    /// Its members, in group order (`set_members`), and the groups they are in.
    pub members: Vec<MemberAnnounce>,
    pub services: Arc<[GroupName]>,
    /// The claims of its announced state that this node holds, when a heartbeat last renewed
    /// them all unchanged, and the engine's marks then (`views`).
    pub claims: Vec<Claim>,
    pub claims_heard: Option<(Instant, u64)>,
    /// The version of its announced state this node holds (0: none yet).
    pub state_version: u64,
    /// The version of this node's own state last sent to it in full on the current
    /// connection (0: none), and the first periodic heartbeat sequence number an ack must
    /// answer to tell whether it arrived.
    pub sent_version: u64,
    pub sent_seq: u64,
    /// Highest periodic heartbeat sequence number seen from this incarnation.
    pub hb_seq: u64,
    /// Set when a fresh connection lifted a death verdict: the proof and when it was made.
    revived: Option<(DeathProof, Instant)>,
}

impl Peer {
    fn new(incarnation: Incarnation, now: Instant) -> Self {
        Peer {
            incarnation,
            addr: None,
            last_heard: now,
            liveness: Liveness::Alive,
            link: Link::Up,
            hardware: Hardware::default(),
            labels: Labels::new(),
            members: Vec::new(),
            services: Arc::from([]),
            claims: Vec::new(),
            claims_heard: None,
            state_version: 0,
            sent_version: 0,
            sent_seq: 0,
            hb_seq: 0,
            revived: None,
        }
    }

    pub(super) fn is_alive(&self) -> bool {
        self.liveness == Liveness::Alive
    }

    pub(super) fn is_dead(&self) -> bool {
        matches!(self.liveness, Liveness::Dead { .. })
    }

    /// Alive and no reset since it was last heard from.
    pub(super) fn is_reachable(&self) -> bool {
        self.is_alive() && self.link == Link::Up
    }

    /// Takes `members` (from `in_group_order`) as its members.
    pub(super) fn set_members(&mut self, members: Vec<MemberAnnounce>) {
        self.services = members.iter().map(|m| m.group.clone()).collect();
        self.members = members;
    }

    /// Its member in `group`, if any.
    pub(super) fn member_in(&self, group: &str) -> Option<&MemberAnnounce> {
        self.members
            .binary_search_by(|m| m.group.as_str().cmp(group))
            .ok()
            .and_then(|i| self.members.get(i))
    }
}

/// A peer's announced members as the table keeps them: in group order, one per group (the
/// first announced of a group counts), so that `Peer::member_in` is a binary search.
pub(super) fn in_group_order(mut members: Vec<MemberAnnounce>) -> Vec<MemberAnnounce> {
    members.sort_by(|a, b| a.group.cmp(&b.group));
    members.dedup_by(|later, first| later.group == first.group);
    members
}

/// How a peer's incarnation stopped counting as alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Down {
    /// Silent for the failure timeout.
    Silent,
    /// Proven dead.
    Dead(DeathProof),
}

/// Why a peer counts as alive again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Back {
    /// Never seen before (or a new incarnation).
    New,
    /// Heard from again after a silence.
    AfterSilence,
    /// A fresh connection of an incarnation that had been declared dead.
    AfterDeath {
        /// The proof that turned out wrong.
        proof: DeathProof,
        /// How long ago it was declared dead.
        ago: Duration,
    },
}

/// What one update changed, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The incarnation is alive (again).
    Up {
        node: NodeId,
        incarnation: Incarnation,
        back: Back,
    },
    /// The incarnation is down.
    Down {
        node: NodeId,
        incarnation: Incarnation,
        down: Down,
    },
}

/// How this node relates an update to what it knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Observed {
    /// From an incarnation older than the known one, or from a dead one: ignore it.
    Stale,
    /// From the known incarnation (perhaps just created or replaced): what changed.
    Current(Vec<Change>),
}

/// What kind of update makes a peer known or alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Contact {
    /// A message from it.
    Message,
    /// A fresh authenticated connection to or from it.
    Connected,
}

/// Every peer this node knows, by node id.
#[derive(Clone, Debug)]
pub(crate) struct PeerTable {
    peers: BTreeMap<NodeId, Peer>,
    mode: DeathProofMode,
}

impl PeerTable {
    pub(super) fn new(mode: DeathProofMode) -> Self {
        PeerTable {
            peers: BTreeMap::new(),
            mode,
        }
    }

    pub(super) fn get(&self, node: &NodeId) -> Option<&Peer> {
        self.peers.get(node)
    }

    pub(super) fn get_mut(&mut self, node: &NodeId) -> Option<&mut Peer> {
        self.peers.get_mut(node)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&NodeId, &Peer)> {
        self.peers.iter()
    }

    /// Peers alive in this node's view.
    pub(super) fn alive(&self) -> impl Iterator<Item = (&NodeId, &Peer)> {
        self.peers.iter().filter(|(_, p)| p.is_alive())
    }

    /// Peers not proven dead (the ones worth sending to).
    pub(super) fn not_dead(&self) -> impl Iterator<Item = &NodeId> {
        self.peers
            .iter()
            .filter(|(_, p)| !p.is_dead())
            .map(|(id, _)| id)
    }

    pub(super) fn is_alive(&self, node: &NodeId) -> bool {
        self.peers.get(node).is_some_and(Peer::is_alive)
    }

    /// The proofs of death this node holds, to attach to a vote request.
    pub(super) fn proofs(&self) -> Vec<(NodeId, Incarnation, DeathProof)> {
        self.peers
            .iter()
            .filter_map(|(id, p)| match p.liveness {
                Liveness::Dead { proof, .. } => Some((id.clone(), p.incarnation, proof)),
                _ => None,
            })
            .collect()
    }

    /// `node` (of `incarnation`) was heard from, by a message or a fresh connection.
    pub(super) fn contact(
        &mut self,
        now: Instant,
        node: &NodeId,
        incarnation: Incarnation,
        contact: Contact,
    ) -> Observed {
        let mut changes = Vec::new();
        match self.peers.get(node) {
            None => {}
            Some(p) if incarnation < p.incarnation => return Observed::Stale,
            Some(p) if incarnation > p.incarnation => {
                if !p.is_dead() {
                    changes.push(Change::Down {
                        node: node.clone(),
                        incarnation: p.incarnation,
                        down: Down::Dead(DeathProof::Superseded),
                    });
                }
                self.peers.remove(node);
            }
            Some(p) => match (p.liveness, contact) {
                (Liveness::Dead { .. }, Contact::Message) => return Observed::Stale,
                (Liveness::Dead { proof, at }, Contact::Connected) => {
                    if let Some(p) = self.peers.get_mut(node) {
                        p.liveness = Liveness::Silent;
                        p.revived = Some((proof, at));
                    }
                    return Observed::Current(changes);
                }
                (Liveness::Silent, Contact::Connected) => return Observed::Current(changes),
                _ => {}
            },
        }
        let created = !self.peers.contains_key(node);
        let peer = self
            .peers
            .entry(node.clone())
            .or_insert_with(|| Peer::new(incarnation, now));
        let back = match peer.liveness {
            // New to this node (a new incarnation is new, too).
            _ if created => Some(Back::New),
            Liveness::Alive => None,
            Liveness::Silent => Some(match peer.revived.take() {
                Some((proof, at)) => Back::AfterDeath {
                    proof,
                    ago: now.saturating_duration_since(at),
                },
                None => Back::AfterSilence,
            }),
            // Unreachable: handled above; a dead peer's messages are stale.
            Liveness::Dead { .. } => return Observed::Stale,
        };
        peer.last_heard = now;
        peer.liveness = Liveness::Alive;
        peer.link = Link::Up;
        if let Some(back) = back {
            changes.push(Change::Up {
                node: node.clone(),
                incarnation,
                back,
            });
        }
        Observed::Current(changes)
    }

    /// Whether this node's `death_proof` mode trusts `proof`.
    pub(super) fn trusts(&self, proof: DeathProof) -> bool {
        proof_counts(self.mode, proof)
    }

    /// `incarnation` of `node` is proven gone. The caller checks [`PeerTable::trusts`] first.
    /// Reports a change when the peer was alive until now.
    pub(super) fn dead(
        &mut self,
        now: Instant,
        node: &NodeId,
        incarnation: Incarnation,
        proof: DeathProof,
    ) -> Option<Change> {
        let p = self.peers.get_mut(node)?;
        if p.incarnation != incarnation || p.is_dead() {
            return None;
        }
        let was_alive = p.is_alive();
        p.liveness = Liveness::Dead { proof, at: now };
        p.members.clear();
        was_alive.then(|| Change::Down {
            node: node.clone(),
            incarnation,
            down: Down::Dead(proof),
        })
    }

    /// A connection to `node` closed. An abrupt close marks its link reset; neither kind
    /// changes its liveness (the transport's redial proves it dead or alive).
    pub(super) fn disconnected(&mut self, node: &NodeId, how: CloseKind) {
        // What was in flight on the closed connection may be lost: send the state again.
        if let Some(p) = self.peers.get_mut(node) {
            p.sent_version = 0;
        }
        if let Some(p) = self.peers.get_mut(node)
            && how == CloseKind::Abrupt
            && !p.is_dead()
        {
            p.link = Link::Reset;
        }
    }

    /// Peers silent for `timeout` become [`Liveness::Silent`].
    pub(super) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<Change> {
        let mut changes = Vec::new();
        for (id, p) in self.peers.iter_mut() {
            if p.is_alive() && now >= p.last_heard + timeout {
                p.liveness = Liveness::Silent;
                changes.push(Change::Down {
                    node: id.clone(),
                    incarnation: p.incarnation,
                    down: Down::Silent,
                });
            }
        }
        changes
    }

    /// When the next peer falls silent, if one is alive.
    pub(super) fn next_silence(&self, timeout: Duration) -> Option<Instant> {
        self.peers
            .values()
            .filter(|p| p.is_alive())
            .map(|p| p.last_heard + timeout)
            .min()
    }
}

#[cfg(test)]
#[path = "peers_tests.rs"]
mod tests;
