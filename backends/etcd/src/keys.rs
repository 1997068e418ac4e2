//! The key layout under the cluster's prefix, and the JSON values stored there.
//!
//! - `prefix/members/<group>/<node>#<seq>` → [`MemberValue`], attached to the node's lease;
//! - `prefix/leader/<group>` → [`LeaderValue`], attached to the leader's lease, created only if
//!   absent, or replaced by a handoff or a takeover: its mod revision is the fencing token;
//! - `prefix/handoff/<group>` → [`HandoffValue`], attached to the successor's lease: the member a
//!   resigning leader named, whom the others let campaign first (written by earlier versions,
//!   which handed off by deleting the leader key; still honored).
//!
//! Group and node names are escaped (`%` → `%25`, `/` → `%2F`) so a key always has this shape.

use baton_core::{GroupName, MemberId, MemberRecord};
use serde::{Deserialize, Serialize};

/// A member key's value: what policies rank by, and the lease it lives on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct MemberValue {
    pub(crate) record: MemberRecord,
    pub(crate) lease: i64,
}

/// The leader key's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct LeaderValue {
    pub(crate) member: MemberId,
}

/// The handoff key's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct HandoffValue {
    pub(crate) successor: MemberId,
}

/// What a key under the prefix names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    Member(GroupName, MemberId),
    Leader(GroupName),
    Handoff(GroupName),
}

/// The keys of one cluster.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "2F" => '/',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

impl Keys {
    pub(crate) fn new(prefix: impl Into<String>) -> Self {
        Keys {
            prefix: prefix.into(),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn member(&self, group: &str, member: &MemberId) -> String {
        format!(
            "{}members/{}/{}#{}",
            self.prefix,
            escape(group),
            escape(member.node.as_str()),
            member.seq
        )
    }

    pub(crate) fn leader(&self, group: &str) -> String {
        format!("{}leader/{}", self.prefix, escape(group))
    }

    pub(crate) fn handoff(&self, group: &str) -> String {
        format!("{}handoff/{}", self.prefix, escape(group))
    }

    /// What `key` names; `None` for a key of another shape (written by something else: ignored).
    pub(crate) fn parse(&self, key: &[u8]) -> Option<Parsed> {
        let key = std::str::from_utf8(key).ok()?.strip_prefix(&self.prefix)?;
        let mut parts = key.split('/');
        let kind = parts.next()?;
        let group = GroupName::new(unescape(parts.next()?)?);
        let parsed = match (kind, parts.next()) {
            ("members", Some(member)) => {
                let (node, seq) = member.rsplit_once('#')?;
                Parsed::Member(group, MemberId::new(unescape(node)?, seq.parse().ok()?))
            }
            ("leader", None) => Parsed::Leader(group),
            ("handoff", None) => Parsed::Handoff(group),
            _ => return None,
        };
        parts.next().is_none().then_some(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_escaping() {
        let k = Keys::new("/baton/c/");
        let m = MemberId::new("node/1%#x", 7);
        let key = k.member("a/b%", &m);
        assert_eq!(key, "/baton/c/members/a%2Fb%25/node%2F1%25#x#7");
        assert_eq!(
            k.parse(key.as_bytes()),
            Some(Parsed::Member(GroupName::new("a/b%"), m))
        );
        assert_eq!(
            k.parse(k.leader("g/1").as_bytes()),
            Some(Parsed::Leader(GroupName::new("g/1")))
        );
        assert_eq!(
            k.parse(k.handoff("g").as_bytes()),
            Some(Parsed::Handoff(GroupName::new("g")))
        );
    }

    #[test]
    fn foreign_keys_are_ignored() {
        let k = Keys::new("/baton/c/");
        for bad in [
            "/other/members/g/a#0",
            "/baton/c/members/g/a",
            "/baton/c/members/g/a#x",
            "/baton/c/members/g/a#0/more",
            "/baton/c/leader/g/x",
            "/baton/c/leader/%zz",
            "/baton/c/unknown/g",
            "/baton/c/",
        ] {
            assert_eq!(k.parse(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(k.parse(&[0xff, 0xfe]), None);
    }
}
