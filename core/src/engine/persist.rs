//! What survives a restart — each group's term and vote, and the incarnation — and when it is
//! written: a granted vote is durable before its answer leaves; a raised term at the end of the
//! input that raised it.

use super::*;
use serde::{Deserialize, Serialize};

/// What must survive a restart: each group's term and vote, and the last incarnation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// Per group.
    pub groups: BTreeMap<GroupName, PersistedGroup>,
    /// The incarnation of the process that wrote it: the next process starts above it, even
    /// when the wall clock was set back in between (0 in files written before it existed).
    #[serde(default)]
    pub incarnation: Incarnation,
}

/// One group's durable election state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedGroup {
    /// Highest leadership term seen.
    pub term: Term,
    /// The last vote granted: (term, candidate).
    pub vote: Option<(Term, MemberId)>,
}

impl Engine {
    /// Takes up the state a previous process of this node stored. A vote of term t means no
    /// leadership below t can still be accepted (see `on_claim`), so the term need not be
    /// stored when it rises with a won vote: the restored term is the higher of the two.
    pub(super) fn restore(&mut self, persisted: PersistedState, now: Instant) {
        for (name, g) in persisted.groups {
            let group = self.group_mut(&name, now);
            let term = g.term.max(g.vote.as_ref().map_or(0, |v| v.0));
            group.term = term;
            group.max_seen = term;
            group.vote = g.vote;
        }
    }

    /// The durable part of the state: groups with a term or a vote.
    pub(super) fn persisted(&self) -> PersistedState {
        PersistedState {
            incarnation: self.cfg.incarnation,
            groups: self
                .groups
                .iter()
                .filter(|(_, g)| g.term > 0 || g.vote.is_some())
                .map(|(name, g)| {
                    (
                        name.clone(),
                        PersistedGroup {
                            term: g.term,
                            vote: g.vote.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Persists now: the actions that follow (a vote's answer) depend on it being durable.
    /// What is stored is filled in at the end of the input (`fill_persists`).
    pub(super) fn persist(&mut self) {
        self.persist_pending = false;
        self.out.push(Action::Persist(PersistedState::default()));
    }

    /// Fills every persist of an input's actions with the state at the end of the input: terms
    /// and votes only grow, so it holds everything each persist was placed to make durable
    /// (and more), and a batch that grants a thousand votes builds it once, not a thousand
    /// times.
    pub(super) fn fill_persists(&self, actions: &mut [Action]) {
        let mut state: Option<PersistedState> = None;
        for a in actions {
            if let Action::Persist(p) = a {
                *p = state.get_or_insert_with(|| self.persisted()).clone();
            }
        }
    }

    /// Persists at the end of this input's actions: for a raised term, which no message sent
    /// in between depends on. Keeps the disk write off the path of the leadership news.
    pub(super) fn persist_later(&mut self) {
        self.persist_pending = true;
    }
}
