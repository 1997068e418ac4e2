//! Fencing: where a write lands, refuse it when its term is lower than one already seen.
//!
//! A leader's term (its *fencing token*: [`Service::fencing_token`], [`Work::term`],
//! `BATON_TERM` under `baton exec`) is strictly greater than any earlier leader's of its group.
//! Leases keep two leaders from *acting* at once in quorum mode, but a write can still arrive
//! late — a paused process, a slow network, availability mode during a partition. Only the
//! place the write lands can tell it is stale: it remembers the highest term that wrote and
//! refuses any lower one. [`Fence`] is that check for state in this process; the same rule in a
//! database is one conditional statement in the write's transaction (`UPDATE fence SET term =
//! ?1 WHERE term <= ?1` — see the `fencing-sqlite` example and the README's fencing section).
//!
//! [`Service::fencing_token`]: crate::Service::fencing_token
//! [`Work::term`]: crate::Work::term

use crate::types::Term;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A write carried a term below the highest one already seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleTerm {
    /// The write's term.
    pub term: Term,
    /// The highest term seen before it.
    pub highest: Term,
}

impl fmt::Display for StaleTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stale leader: a write under term {} was refused, term {} has already written",
            self.term, self.highest
        )
    }
}

impl std::error::Error for StaleTerm {}

/// Whether a write under `term` may land where `highest` is the highest term seen: the one
/// rule of fencing, `term >= highest` (the same leader writes again under its own term).
pub const fn admits(highest: Term, term: Term) -> bool {
    term >= highest
}

/// The highest term that wrote to one resource, and the check every write passes first.
///
/// Lock-free and shareable (`&self`): [`Fence::check`] raises the highest term atomically, so
/// of two writers racing with terms 3 and 4, once 4 passed, 3 is refused.
///
/// ```
/// use baton_core::{Fence, StaleTerm};
///
/// let fence = Fence::new();
/// assert_eq!(fence.check(3), Ok(()));      // leader of term 3 writes
/// assert_eq!(fence.check(4), Ok(()));      // a new leader, term 4
/// assert_eq!(fence.check(4), Ok(()));      // it writes again
/// assert_eq!(fence.check(3), Err(StaleTerm { term: 3, highest: 4 })); // the old one, late
/// assert_eq!(fence.highest(), 4);
/// ```
#[derive(Debug, Default)]
pub struct Fence {
    highest: AtomicU64,
}

impl Fence {
    /// A fence that has seen no write (every term passes the first time).
    pub const fn new() -> Self {
        Fence {
            highest: AtomicU64::new(0),
        }
    }

    /// A fence that has seen `term` already (restored from storage).
    pub const fn starting_at(term: Term) -> Self {
        Fence {
            highest: AtomicU64::new(term),
        }
    }

    /// Admits a write under `term` — raising the highest term seen to it — or refuses it
    /// because a higher term has written.
    pub fn check(&self, term: Term) -> Result<(), StaleTerm> {
        let before = self.highest.fetch_max(term, Ordering::AcqRel);
        if admits(before, term) {
            Ok(())
        } else {
            Err(StaleTerm {
                term,
                highest: before,
            })
        }
    }

    /// The highest term seen.
    pub fn highest(&self) -> Term {
        self.highest.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_terms_are_refused_once_a_higher_one_wrote_and_equal_ones_pass() {
        let f = Fence::starting_at(5);
        assert_eq!(
            f.check(4),
            Err(StaleTerm {
                term: 4,
                highest: 5
            })
        );
        assert_eq!(f.highest(), 5, "a refused write does not lower the fence");
        assert_eq!(f.check(5), Ok(()));
        assert_eq!(f.check(9), Ok(()));
        assert_eq!(
            f.check(6),
            Err(StaleTerm {
                term: 6,
                highest: 9
            })
        );
        assert!(
            f.check(8)
                .unwrap_err()
                .to_string()
                .contains("term 8 was refused, term 9")
        );
    }

    #[test]
    fn racing_writers_end_at_the_highest_term_which_always_passes() {
        let f = std::sync::Arc::new(Fence::new());
        let threads: Vec<_> = (1..=8u64)
            .map(|t| {
                let f = f.clone();
                std::thread::spawn(move || (t, f.check(t).is_ok()))
            })
            .collect();
        let results: Vec<(u64, bool)> = threads.into_iter().map(|h| h.join().unwrap()).collect();
        // The highest term always passes; the fence ends at it.
        assert!(results.contains(&(8, true)));
        assert_eq!(f.highest(), 8);
    }
}
