//! What a failed command reports: one line (or, with `--json`, one JSON object on stdout) and
//! an exit code from the table in `cli/README.md`.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | runtime error: config, secret, node unreachable, refused handshake, failed work |
//! | 2 | usage: bad flags or arguments (clap's own errors included) |
//! | 3 | no leader, no member of the group, or a timeout |
//! | 4 | the leader refused a transfer or step-down (target unknown, not a live candidate, …) |

use serde_json::{Value, json};
use std::fmt;

/// The kind of a failure: its `"kind"` in JSON and its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Bad flags or arguments.
    Usage,
    /// A config or secret file that cannot be used.
    Config,
    /// Nothing answers at the node's address.
    Unreachable,
    /// The node refused the handshake (wrong cluster, secret or protocol version).
    Auth,
    /// No answer in time.
    Timeout,
    /// The group has members but no leader.
    NoLeader,
    /// No node the asked node knows has joined the group.
    NoMember,
    /// The work reached the group but failed there (handler error, leader changed).
    Call,
    /// The leader refused a transfer or a step-down.
    Refused,
    /// Anything else.
    Runtime,
}

impl Kind {
    /// The `"kind"` field of a JSON error.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::Config => "config",
            Kind::Unreachable => "unreachable",
            Kind::Auth => "auth",
            Kind::Timeout => "timeout",
            Kind::NoLeader => "no-leader",
            Kind::NoMember => "no-member",
            Kind::Call => "call",
            Kind::Refused => "refused",
            Kind::Runtime => "runtime",
        }
    }

    /// The process's exit code (see the module docs).
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Kind::Usage => 2,
            Kind::Timeout | Kind::NoLeader | Kind::NoMember => 3,
            Kind::Refused => 4,
            Kind::Config | Kind::Unreachable | Kind::Auth | Kind::Call | Kind::Runtime => 1,
        }
    }
}

/// An error whose kind is known where it happens.
#[derive(Debug)]
pub(crate) struct CliError {
    /// Its kind.
    pub kind: Kind,
    /// The whole message (one line, hint included).
    pub message: String,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// An error of `kind`.
pub(crate) fn fail(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CliError {
        kind,
        message: message.into(),
    })
}

/// The kind of `e`: the first [`CliError`] in its chain, a config error, else a runtime error.
pub(crate) fn kind_of(e: &anyhow::Error) -> Kind {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<CliError>() {
            return c.kind;
        }
        if cause
            .downcast_ref::<baton_core::config::ConfigError>()
            .is_some()
        {
            return Kind::Config;
        }
    }
    Kind::Runtime
}

/// `e` and its causes, `: `-separated, leaving out a cause whose text the message already
/// holds (errors that print their source, then return it as `source()` too, would otherwise
/// say it twice).
pub(crate) fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The JSON form of an error: `{"error": "…", "kind": "…"}`.
pub(crate) fn json(message: &str, kind: Kind) -> Value {
    json!({ "error": message, "kind": kind.as_str() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_cause_printed_by_its_parent_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl fmt::Display for Wrap {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "cannot connect: {}", self.0)
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Err::<(), _>(Wrap(io)).context("status").unwrap_err();
        let s = render(&e);
        assert_eq!(s.matches("connection refused").count(), 1, "{s}");
        assert!(s.starts_with("status: cannot connect"), "{s}");
    }

    #[test]
    fn kinds_and_exit_codes_follow_the_table() {
        let e = fail(Kind::NoMember, "no member of group \"x\"").context("work");
        assert_eq!(kind_of(&e), Kind::NoMember);
        assert_eq!(kind_of(&e).exit_code(), 3);
        let e = anyhow::Error::new(baton_core::config::ConfigError::field("x", "bad"));
        assert_eq!(kind_of(&e), Kind::Config);
        assert_eq!(kind_of(&anyhow::anyhow!("boom")), Kind::Runtime);
        assert_eq!(Kind::Usage.exit_code(), 2);
        assert_eq!(Kind::Unreachable.exit_code(), 1);
        let v = json("x", Kind::NoLeader);
        assert_eq!(v["kind"], "no-leader");
        assert_eq!(v["error"], "x");
    }
}
