//! A baton policy plugin that misbehaves on demand, for baton-core's plugin-host tests.
//!
//! Config `{ mode = "…" }`: `"ok"` (member ids reversed), `"panic-on-create"`,
//! `"panic-on-rank"`, `"duplicates"` (the first candidate twice), `"unknown"` (an id that is no
//! candidate), `"missing"` (the last candidate left out).

use baton_core::plugin::{PluginPolicy, serde_json};
use baton_core::{ElectionInput, LeaderPolicy, MemberId};

/// What to do wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Behave: rank by member id, reversed.
    Ok,
    /// Panic in every `rank`.
    PanicOnRank,
    /// Rank the first candidate twice.
    Duplicates,
    /// Add a member that is not a candidate.
    Unknown,
    /// Leave the last candidate out.
    Missing,
}

/// The misbehaving policy.
#[derive(Debug)]
pub struct Misbehaving(pub Mode);

impl LeaderPolicy for Misbehaving {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
        let mut ids: Vec<MemberId> = input.candidates.iter().map(|c| c.member.clone()).collect();
        ids.sort_by(|a, b| b.cmp(a));
        match self.0 {
            Mode::Ok => {}
            Mode::PanicOnRank => panic!("misbehaving plugin: rank panics as configured"),
            Mode::Duplicates => {
                if let Some(first) = ids.first().cloned() {
                    ids.push(first);
                }
            }
            Mode::Unknown => ids.push(MemberId::new("nobody", 7)),
            Mode::Missing => {
                ids.pop();
            }
        }
        ids
    }
}

impl PluginPolicy for Misbehaving {
    const NAME: &'static str = "misbehaving";

    fn from_config(config: serde_json::Value) -> Result<Self, String> {
        // Keep the expected panics quiet. This plugin has its own copy of std, so this hook is
        // the plugin's only: the host's (and the test harness's) panic hook is untouched.
        static QUIET: std::sync::Once = std::sync::Once::new();
        QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
        let mode = config.get("mode").and_then(|m| m.as_str()).unwrap_or("ok");
        Ok(Misbehaving(match mode {
            "ok" => Mode::Ok,
            "panic-on-create" => panic!("misbehaving plugin: create panics as configured"),
            "panic-on-rank" => Mode::PanicOnRank,
            "duplicates" => Mode::Duplicates,
            "unknown" => Mode::Unknown,
            "missing" => Mode::Missing,
            other => return Err(format!("unknown mode {other:?}")),
        }))
    }
}

baton_core::export_policy!(Misbehaving);
