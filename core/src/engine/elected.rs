//! Leadership decided outside the engine, by an elector (the etcd backend): what routing
//! needs of it. The engine of such a node never campaigns; it learns the leaders only here.

use super::*;

impl Engine {
    /// Leaderships of groups as an elector outside the engine decided them (the etcd backend:
    /// whoever holds the group's leader key; its term is the fencing token). The engine of
    /// such a node never campaigns, so it learns leaders only this way: a call for the
    /// group's leader is routed to `leadership.leader`, and one that reaches this node is
    /// served under `leadership.term` only while `leadership.is_me` — the elector clears it
    /// when the node must stop acting. A transfer or step-down that reaches this node is
    /// granted by the same leadership and carried out by the elector
    /// ([`Action::ElectorHandOff`], `transfer.rs`). Waiting calls are routed now. Returns what
    /// to do, as [`Engine::handle`] does.
    pub fn elected(
        &mut self,
        now: Instant,
        leaderships: impl IntoIterator<Item = Leadership>,
    ) -> Vec<Action> {
        for l in leaderships {
            self.calls.elected.insert(l.group.clone(), l);
        }
        // Every input routes the calls still waiting for a target (`publish`).
        self.handle(now, Input::Tick)
    }

    /// The group's leadership as an elector published it, if one did.
    pub(super) fn elected_leader(&self, group: &GroupName) -> Option<&Leadership> {
        self.calls.elected.get(group)
    }

    /// Whether an elector published a leader of `group` (which then has no "no leader"
    /// reason, `why.rs`).
    pub(super) fn elected_leads(&self, group: &GroupName) -> bool {
        self.elected_leader(group)
            .is_some_and(|l| l.leader.is_some())
    }

    /// A call for any member of `group` with an elector (the engine holds no candidates
    /// then): this node's own member, else the elected leader (a live member too).
    pub(super) fn elected_any_member(&self, group: &GroupName) -> Option<MemberId> {
        let l = self.elected_leader(group)?;
        self.local
            .get(group)
            .map(|m| m.id.clone())
            .or_else(|| l.leader.clone())
    }
}
