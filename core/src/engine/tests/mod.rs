//! The engine's rules, one file per rule area, each test named after the rule it checks.
//! They drive engines only through the public surface (`Engine::new`, `handle`, the read-only
//! queries) with the harness in `harness.rs` (several engines) and `probe.rs` (one engine among
//! fake peers).

mod fixtures;
mod harness;
mod probe;

mod calls;
mod conflicts;
mod diagnostics;
mod election;
mod handoff;
mod lease;
mod membership;
mod persist;
mod routing;
mod scale;
mod terms;
mod transfer;
mod vote;
