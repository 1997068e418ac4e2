//! The zone-preference policy itself. Only `baton_core` paths are used here, so that this file
//! can also be compiled into baton-core's plugin tests as the "statically linked" reference.

use baton_core::plugin::{PluginPolicy, serde_json};
use baton_core::{Candidate, ElectionInput, LeaderPolicy, MemberId};
use std::cmp::Ordering;

/// Prefers candidates in a configured zone, then the least loaded, then the oldest.
///
/// The ranking, best first:
///
/// 1. candidates whose `zone` label equals the configured zone;
/// 2. then the lowest `load` label, parsed as a number (`"0.25"`, `"3"`); a missing or
///    unparsable `load` (or `NaN`) counts as the worst load;
/// 3. then the oldest instance (smallest `started_at_ms`);
/// 4. then the member id, so that the order is total.
///
/// [`tiers`](LeaderPolicy::tiers) groups candidates equal on 1–3, so that in a chain the next
/// policy breaks those ties instead of the member id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZonePreference {
    zone: String,
}

impl ZonePreference {
    /// The label holding a member's zone.
    pub const ZONE_LABEL: &'static str = "zone";
    /// The label holding a member's load.
    pub const LOAD_LABEL: &'static str = "load";

    /// A policy preferring `zone`.
    pub fn new(zone: impl Into<String>) -> Self {
        ZonePreference { zone: zone.into() }
    }

    /// The preferred zone.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Compares two candidates on everything but the member id.
    fn compare(&self, a: &Candidate, b: &Candidate) -> Ordering {
        let in_zone = |c: &Candidate| {
            c.labels.get(Self::ZONE_LABEL).map(String::as_str) == Some(self.zone.as_str())
        };
        in_zone(b)
            .cmp(&in_zone(a))
            .then_with(|| compare_load(load(a), load(b)))
            .then_with(|| a.started_at_ms.cmp(&b.started_at_ms))
    }

    /// The candidates sorted best first, member id last.
    fn sorted<'a>(&self, input: &'a ElectionInput) -> Vec<&'a Candidate> {
        let mut candidates: Vec<&Candidate> = input.candidates.iter().collect();
        candidates.sort_by(|a, b| self.compare(a, b).then_with(|| a.member.cmp(&b.member)));
        candidates
    }
}

/// A candidate's load: `None` when missing, unparsable or NaN. `-0` reads as `0`.
fn load(c: &Candidate) -> Option<f64> {
    let value: f64 = c
        .labels
        .get(ZonePreference::LOAD_LABEL)?
        .trim()
        .parse()
        .ok()?;
    if value.is_nan() {
        None
    } else {
        Some(value + 0.0)
    }
}

/// Lower load first; no load last.
fn compare_load(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

impl LeaderPolicy for ZonePreference {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn rank(&self, input: &ElectionInput) -> Vec<MemberId> {
        self.sorted(input)
            .into_iter()
            .map(|c| c.member.clone())
            .collect()
    }

    fn tiers(&self, input: &ElectionInput) -> Vec<Vec<MemberId>> {
        let mut tiers: Vec<Vec<MemberId>> = Vec::new();
        let mut previous: Option<&Candidate> = None;
        for c in self.sorted(input) {
            match (previous, tiers.last_mut()) {
                (Some(p), Some(tier)) if self.compare(p, c) == Ordering::Equal => {
                    tier.push(c.member.clone())
                }
                _ => tiers.push(vec![c.member.clone()]),
            }
            previous = Some(c);
        }
        tiers
    }
}

impl PluginPolicy for ZonePreference {
    const NAME: &'static str = "zone-preference";

    /// Reads `{ zone = "eu-1" }`.
    fn from_config(config: serde_json::Value) -> Result<Self, String> {
        const USAGE: &str = "zone-preference needs `config = { zone = \"eu-1\" }`";
        let serde_json::Value::Object(map) = config else {
            return Err(format!("{USAGE}, got {config}"));
        };
        if let Some(key) = map.keys().find(|k| k.as_str() != "zone") {
            return Err(format!("unknown key `{key}`; {USAGE}"));
        }
        match map.get("zone") {
            Some(serde_json::Value::String(zone)) if !zone.trim().is_empty() => {
                Ok(ZonePreference::new(zone.clone()))
            }
            Some(serde_json::Value::String(_)) => Err(format!("`zone` is empty; {USAGE}")),
            Some(other) => Err(format!("`zone` must be a string, got {other}; {USAGE}")),
            None => Err(format!("`zone` is missing; {USAGE}")),
        }
    }
}
