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
use crate::message::NoLeader;
use crate::transport::{DeathProof, Fingerprint, FingerprintMismatch, Refusal};
use crate::types::{GroupName, Incarnation, MemberId, NodeId, Term};
use std::fmt;
use std::time::Duration;

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
            | Event::VoteDenied { .. } => Level::Debug,
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
            | Event::Leading { group, .. }
            | Event::TermExhausted { group, .. }
            | Event::Soliciting { group, .. }
            | Event::CampaignLost { group, .. }
            | Event::VoteGranted { group, .. }
            | Event::VoteDenied { group, .. } => Some(group),
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

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::PeerUp { node, incarnation } => {
                write!(f, "peer {node} (incarnation {incarnation}) is up")
            }
            Event::PeerBack { node, incarnation } => {
                write!(f, "peer {node} (incarnation {incarnation}) is up again")
            }
            Event::PeerTakenBack {
                node,
                incarnation,
                proof,
                ago,
            } => write!(
                f,
                "peer {node} (incarnation {incarnation}) was declared dead {ago:?} ago ({proof}) \
                 and is alive again: taken back"
            ),
            Event::PeerSilent { node, after } => {
                write!(f, "peer {node} is down: silent for {after:?}")
            }
            Event::PeerGone {
                node,
                incarnation,
                proof,
            } => write!(
                f,
                "peer {node} (incarnation {incarnation}) is gone: {proof}"
            ),
            Event::ProofApplied {
                from,
                node,
                incarnation,
                proof,
            } => write!(
                f,
                "{from} proved {node} (incarnation {incarnation}) dead: {proof}"
            ),
            Event::InsaneTerm { from, term } => write!(
                f,
                "ignoring a message from {from}: term {term} cannot grow (a corrupt peer?)"
            ),
            Event::Refused { addr, refusal } => write!(f, "refused by {addr}: {refusal}"),
            Event::Reincarnating {
                addr,
                refusal,
                from,
                to,
            } => write!(
                f,
                "refused by {addr}: {refusal}; moving from incarnation {from} to {to}"
            ),
            Event::NoHigherIncarnation { addr, refusal } => {
                write!(f, "refused by {addr}: {refusal}; no higher incarnation")
            }
            Event::KeepingName { refusal } => write!(
                f,
                "another process with this node's name was refused ({refusal}); this one keeps \
                 the name"
            ),
            Event::Halting { refusal } => write!(f, "halting: {refusal}"),
            Event::ConfigMismatch { addr, mismatch } => write!(
                f,
                "the node at {addr} runs other safety settings ({mismatch}); it is refused"
            ),
            Event::StandingAside { theirs } => write!(
                f,
                "standing aside (no leading, no voting): {}; give every node the same [cluster] \
                 and [timing] settings",
                other_settings(theirs)
            ),
            Event::TakingPartAgain => {
                f.write_str("no conflicting configuration can elect any more: taking part again")
            }
            Event::SteppingDown { group, reason } => write!(f, "group {group}: {reason}"),
            Event::Leading { group, term } => write!(f, "group {group}: leading with term {term}"),
            Event::TermExhausted { group, term } => write!(
                f,
                "group {group}: term {term} cannot grow; this group can elect no leader"
            ),
            Event::Soliciting { group, round, term } => {
                let what = match round {
                    Round::Pre => "pre-votes",
                    Round::Real => "votes",
                };
                write!(f, "group {group}: asking for {what} in term {term}")
            }
            Event::CampaignLost { group, retry_in } => {
                write!(f, "group {group}: campaign lost, retrying in {retry_in:?}")
            }
            Event::VoteGranted {
                group,
                round,
                candidate,
                term,
            } => write!(
                f,
                "group {group}: {round} for {candidate} in term {term} granted"
            ),
            Event::VoteDenied {
                group,
                round,
                candidate,
                term,
                denial,
            } => write!(
                f,
                "group {group}: {round} for {candidate} in term {term} denied: {denial}"
            ),
            Event::NoLeader(why) => write!(f, "{why}"),
            Event::NoLeaders { why, more } => write!(f, "{why}; and in {more} more group(s)"),
            Event::UnseenVoters {
                unseen,
                after,
                needed,
                total,
            } => {
                let present = total.saturating_sub(unseen.len());
                let tolerance = if present >= *needed {
                    format!(
                        "the cluster tolerates {} failed voter(s) instead of {}",
                        present - needed,
                        total - needed
                    )
                } else {
                    "the voters seen are no majority: no leader can be elected".to_string()
                };
                let names: Vec<String> =
                    unseen.iter().map(|v| format!("{:?}", v.as_str())).collect();
                write!(
                    f,
                    "cluster.voters names {} that no node has answered for within {after:?} \
                     (never seen); a leader needs {needed} of the {total} voters, so \
                     {tolerance}: check cluster.voters against the nodes' names",
                    names.join(", ")
                )
            }
        }
    }
}
