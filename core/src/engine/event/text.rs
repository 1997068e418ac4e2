//! The log line of each [`Event`]: its `Display` form.

use super::*;
use std::fmt;

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
            Event::PeerResigned {
                group,
                from,
                term,
                why,
            } => write!(f, "group {group}: {from} resigned term {term} ({why:?})"),
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
            Event::ClientCallDone {
                client,
                group,
                error,
                elapsed,
            } => match error {
                None => write!(
                    f,
                    "group {group}: call from client {client} served in {elapsed:?}"
                ),
                Some(e) => write!(
                    f,
                    "group {group}: call from client {client} failed after {elapsed:?}: {e}"
                ),
            },
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
