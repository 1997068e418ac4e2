//! What the engine reports to the operator, typed: one [`Event`] variant per kind of news, each
//! with the fields a log record needs, a [`Level`], and a `Display` form (the log line).
//!
//! The engine never formats a string on its own behalf: a driver that drops debug events pays
//! nothing for them, and a test matches on a variant rather than on the wording of a line.

use super::api::Level;
use super::group::Round;
use super::handoff::StepDownReason;
use super::identity::other_settings;
use super::vote::Denial;
use crate::message::{CallError, NoLeader, Resignation};
use crate::transport::{DeathProof, Fingerprint, FingerprintMismatch, Refusal};
use crate::types::{GroupName, Incarnation, MemberId, NodeId, Term};
use std::time::Duration;

mod text;

/// One piece of news from the engine ([`super::Action::Event`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A peer's incarnation was met for the first time.
    PeerUp {
        /// The peer.
        node: NodeId,
        /// Its incarnation.
        incarnation: Incarnation,
    },
    /// A silent peer was heard from again.
    PeerBack {
        /// The peer.
        node: NodeId,
        /// Its incarnation.
        incarnation: Incarnation,
    },
    /// A peer declared dead connected afresh and spoke: the proof was wrong.
    PeerTakenBack {
        /// The peer.
        node: NodeId,
        /// Its incarnation.
        incarnation: Incarnation,
        /// The proof that turned out wrong.
        proof: DeathProof,
        /// How long ago it was declared dead.
        ago: Duration,
    },
    /// A peer fell silent for the failure timeout.
    PeerSilent {
        /// The peer.
        node: NodeId,
        /// The failure timeout.
        after: Duration,
    },
    /// A peer's incarnation is proven gone.
    PeerGone {
        /// The peer.
        node: NodeId,
        /// Its incarnation.
        incarnation: Incarnation,
        /// The proof.
        proof: DeathProof,
    },
    /// A candidate's proof of a peer's death was applied.
    ProofApplied {
        /// The candidate that attached it.
        from: NodeId,
        /// The dead peer.
        node: NodeId,
        /// Its incarnation.
        incarnation: Incarnation,
        /// The proof.
        proof: DeathProof,
    },
    /// A message carried a term no leadership can have; it was ignored.
    InsaneTerm {
        /// The sender.
        from: NodeId,
        /// The term.
        term: Term,
    },
    /// A peer refused this node (a duplicate name, or something that needs no action).
    Refused {
        /// The peer's address.
        addr: String,
        /// Why.
        refusal: Refusal,
    },
    /// A peer refused this incarnation as stale: the node moves above it.
    Reincarnating {
        /// The peer's address.
        addr: String,
        /// Why.
        refusal: Refusal,
        /// The incarnation left.
        from: Incarnation,
        /// The new one.
        to: Incarnation,
    },
    /// A peer refused this incarnation as stale, and none is higher.
    NoHigherIncarnation {
        /// The peer's address.
        addr: String,
        /// Why.
        refusal: Refusal,
    },
    /// Duplicate-name refusals lasted, but peers accept this process: it keeps the name.
    KeepingName {
        /// The last refusal.
        refusal: Refusal,
    },
    /// Duplicate-name refusals lasted: this node halts.
    Halting {
        /// The last refusal.
        refusal: Refusal,
    },
    /// A node with other safety settings was met; it is refused.
    ConfigMismatch {
        /// Its address.
        addr: String,
        /// The first difference.
        mismatch: FingerprintMismatch,
    },
    /// A conflicting configuration could elect: this node neither leads nor votes.
    StandingAside {
        /// That configuration.
        theirs: Fingerprint,
    },
    /// No conflicting configuration can elect any more.
    TakingPartAgain,
    /// This node stopped leading a group.
    SteppingDown {
        /// The group.
        group: GroupName,
        /// Why.
        reason: StepDownReason,
    },
    /// Another node's leader of a group resigned (its `StepDown` arrived and ended the
    /// leadership this node knew).
    PeerResigned {
        /// The group.
        group: GroupName,
        /// The member that resigned.
        from: MemberId,
        /// The term it resigned.
        term: Term,
        /// Why, as it said.
        why: Resignation,
    },
    /// This node leads a group.
    Leading {
        /// The group.
        group: GroupName,
        /// The term.
        term: Term,
    },
    /// A group's term cannot grow: it can elect no leader.
    TermExhausted {
        /// The group.
        group: GroupName,
        /// The highest term.
        term: Term,
    },
    /// This node asks the voters for (pre-)votes.
    Soliciting {
        /// The group.
        group: GroupName,
        /// Pre-votes or votes.
        round: Round,
        /// The term campaigned for.
        term: Term,
    },
    /// A campaign was lost; it is retried later.
    CampaignLost {
        /// The group.
        group: GroupName,
        /// When the next campaign may start.
        retry_in: Duration,
    },
    /// This node granted a (pre-)vote.
    VoteGranted {
        /// The group.
        group: GroupName,
        /// Pre-vote or vote.
        round: Round,
        /// The candidate.
        candidate: MemberId,
        /// The term asked for.
        term: Term,
    },
    /// This node denied a (pre-)vote, by one rule.
    VoteDenied {
        /// The group.
        group: GroupName,
        /// Pre-vote or vote.
        round: Round,
        /// The candidate.
        candidate: MemberId,
        /// The term asked for.
        term: Term,
        /// The rule that denied it.
        denial: Denial,
    },
    /// A group has had no leader for a failure timeout (reported again when the reason changes).
    NoLeader(NoLeader),
    /// `why` (its group first by name) in `more` other groups as well: one line, not one per group.
    #[allow(missing_docs, reason = "the fields are described above")]
    NoLeaders { why: NoLeader, more: usize },
    /// A call a client routed through this node (`Message::ClientCall`: `baton work`, a client
    /// connection) was answered — the counterpart, for the operator, of the
    /// [`Action::CallDone`](super::Action::CallDone) that ends a call made on this node. Only
    /// the node the client sent it to reports it, whichever node served it (a peer's routed
    /// request is answered without one); a control request (`ClientControl`) is no call. The
    /// tokio runtime publishes it as `NodeEvent::CallDone` with its `client`, so it is counted
    /// in the same metrics as the node's own calls.
    ClientCallDone {
        /// The client.
        client: NodeId,
        /// The group called.
        group: GroupName,
        /// `None` when it was served, else why not.
        error: Option<CallError>,
        /// From the call reaching this node's engine to its answer.
        elapsed: Duration,
    },
    /// Voters that no node answered for within `after`.
    UnseenVoters {
        /// The voters never seen.
        unseen: Vec<NodeId>,
        /// How long they were waited for.
        after: Duration,
        /// Voters a leader needs.
        needed: usize,
        /// All voters.
        total: usize,
    },
}

impl Event {
    /// How loud this event is.
    pub fn level(&self) -> Level {
        match self {
            Event::ProofApplied { .. }
            | Event::InsaneTerm { .. }
            | Event::Soliciting { .. }
            | Event::CampaignLost { .. }
            | Event::VoteGranted { .. }
            | Event::VoteDenied { .. }
            | Event::PeerResigned { .. }
            | Event::ClientCallDone { .. } => Level::Debug,
            Event::Refused { refusal, .. } => match refusal {
                Refusal::DuplicateName { .. } => Level::Info,
                _ => Level::Debug,
            },
            Event::UnseenVoters { .. } => Level::Warn,
            _ => Level::Info,
        }
    }

    /// The group it is about, if one.
    pub fn group(&self) -> Option<&str> {
        match self {
            Event::SteppingDown { group, .. }
            | Event::PeerResigned { group, .. }
            | Event::Leading { group, .. }
            | Event::TermExhausted { group, .. }
            | Event::Soliciting { group, .. }
            | Event::CampaignLost { group, .. }
            | Event::VoteGranted { group, .. }
            | Event::VoteDenied { group, .. }
            | Event::ClientCallDone { group, .. } => Some(group),
            Event::NoLeader(why) | Event::NoLeaders { why, .. } => Some(&why.group),
            _ => None,
        }
    }

    /// The peer it is about, if one.
    pub fn peer(&self) -> Option<&NodeId> {
        match self {
            Event::PeerUp { node, .. }
            | Event::PeerBack { node, .. }
            | Event::PeerTakenBack { node, .. }
            | Event::PeerSilent { node, .. }
            | Event::PeerGone { node, .. }
            | Event::ProofApplied { node, .. } => Some(node),
            Event::InsaneTerm { from, .. } => Some(from),
            Event::VoteGranted { candidate, .. } | Event::VoteDenied { candidate, .. } => {
                Some(&candidate.node)
            }
            _ => None,
        }
    }
}
