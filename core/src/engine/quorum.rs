//! Quorum arithmetic, pure: how many voters make a majority, and whether a count of grants
//! (or acks) has won, has lost, or is still pending. No engine state; the election and the lease
//! code ask these questions with their own counts.

use super::Engine;
use super::config::Quorum;
use crate::types::NodeId;

/// Where a vote round stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tally {
    /// A majority granted.
    Won,
    /// Even if every undecided voter granted, no majority would.
    Lost,
    /// Neither yet.
    Pending,
}

/// Voters in a majority of `voters`: more than half.
pub(crate) fn majority_of(voters: usize) -> usize {
    voters / 2 + 1
}

/// Whether `count` votes (or acks) reach `needed`.
pub(crate) fn reaches(count: usize, needed: usize) -> bool {
    count >= needed
}

/// A round with `granted` grants and `undecided` live voters yet to answer, of which `needed`
/// must grant. Won is checked first: a round that has its majority is won whatever follows.
pub(crate) fn tally(granted: usize, undecided: usize, needed: usize) -> Tally {
    if reaches(granted, needed) {
        Tally::Won
    } else if !reaches(granted + undecided, needed) {
        Tally::Lost
    } else {
        Tally::Pending
    }
}

impl Quorum {
    /// Voters a leader needs: a majority of the voters, or 1 (itself) without a quorum.
    pub fn needed(&self) -> usize {
        match self {
            Quorum::Majority(v) => majority_of(v.len()),
            Quorum::None => 1,
        }
    }

    /// Whether `node` is a voter (nobody is without a quorum).
    pub fn is_voter(&self, node: &NodeId) -> bool {
        match self {
            Quorum::Majority(v) => v.contains(node),
            Quorum::None => false,
        }
    }
}

impl Engine {
    /// Voters a leader needs ([`Quorum::needed`]).
    pub(super) fn majority(&self) -> usize {
        self.cfg.quorum.needed()
    }

    /// Whether a majority of the voters is alive in this node's view (this node counts while
    /// it is not shutting down); always without a quorum.
    pub(super) fn majority_alive(&self) -> bool {
        match &self.cfg.quorum {
            Quorum::Majority(v) => {
                v.iter().filter(|n| self.node_alive(n)).count() >= self.majority()
            }
            Quorum::None => true,
        }
    }

    /// Whether `node` is a voter ([`Quorum::is_voter`]).
    pub(super) fn is_voter(&self, node: &NodeId) -> bool {
        self.cfg.quorum.is_voter(node)
    }

    /// Whether leaders need a majority (votes and leases) rather than declaring themselves.
    pub(super) fn quorum_mode(&self) -> bool {
        matches!(self.cfg.quorum, Quorum::Majority(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_is_more_than_half_of_the_voters() {
        for (voters, needed) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)] {
            assert_eq!(majority_of(voters), needed, "{voters} voters");
        }
    }

    #[test]
    fn a_round_is_won_with_a_majority_lost_without_hope_and_pending_otherwise() {
        use Tally::*;
        // (granted, undecided, needed, expected)
        let table = [
            (2, 0, 2, Won),
            (3, 0, 2, Won),
            (2, 1, 2, Won),
            (1, 1, 2, Pending),
            (0, 2, 2, Pending),
            (1, 0, 2, Lost),
            (0, 1, 2, Lost),
            (0, 0, 1, Lost),
            (2, 2, 3, Pending),
            (1, 1, 3, Lost),
        ];
        for (granted, undecided, needed, expected) in table {
            assert_eq!(
                tally(granted, undecided, needed),
                expected,
                "granted {granted}, undecided {undecided}, needed {needed}"
            );
        }
    }

    #[test]
    fn without_a_quorum_nobody_votes_and_one_is_enough() {
        let q = Quorum::None;
        assert_eq!(q.needed(), 1);
        assert!(!q.is_voter(&NodeId::new("a")));
        let q = Quorum::Majority(["a", "b", "c"].into_iter().map(NodeId::new).collect());
        assert_eq!(q.needed(), 2);
        assert!(q.is_voter(&NodeId::new("b")) && !q.is_voter(&NodeId::new("d")));
    }
}
