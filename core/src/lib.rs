//! # baton-core
//!
//! The heart of baton, a pluggable leader-election framework. This crate holds:
//!
//! - the data types ([`MemberId`], [`GroupName`], [`Candidate`], [`ElectionInput`], [`Leadership`], …);
//! - the three traits everything else plugs into: [`LeaderPolicy`] (who should lead),
//!   [`Transport`] (how nodes talk) and [`Registry`] (where members are recorded);
//! - the election and membership protocol as a **sans-IO state machine**, [`engine::Engine`]:
//!   `handle(now, input) -> actions`, no tokio inside, so that it can be driven by a
//!   deterministic simulator as easily as by the network;
//! - configuration ([`config::Config`], TOML);
//! - [`Fence`]: the check a write's destination makes with the term (fencing token);
//! - with feature `runtime` (default), the tokio `Node` that drives the engine over a transport.
//!
//! Transports (`baton-transport-memory`, `baton-transport-tcp`), policies (`baton-strategies`)
//! and the `baton` binary depend on this crate; it depends on none of them. A policy plugin
//! depends on it with `default-features = false`: no tokio.
#![warn(missing_docs)]

pub mod config;
pub mod engine;
pub mod fence;
pub mod message;
pub mod plugin;
pub mod policy;
pub mod registry;
pub mod transport;
pub mod types;

#[cfg(feature = "runtime")]
pub mod runtime;

pub use fence::{Fence, StaleTerm};
pub use message::{
    CallError, ControlError, HandedOff, Message, PROTOCOL_VERSION, Served, StatusSnapshot,
};
pub use policy::{ByMemberId, LeaderPolicy, normalize_ranking, ranking_from_tiers};
pub use registry::{Registry, RegistryError, RegistryWatch};
pub use transport::{
    CloseKind, DeathProof, DeathProofMode, Envelope, Fingerprint, FingerprintMismatch, LocalNode,
    Refusal, Transport, TransportError, TransportEvent, proof_counts,
};
pub use types::{
    Candidate, ElectionInput, GroupName, Hardware, Incarnation, Labels, Leadership, MemberId,
    MemberRecord, NodeId, Term, Version,
};

#[cfg(feature = "runtime")]
pub use runtime::{
    CallOptions, CancellationToken, ClusterRegistry, Handler, Node, NodeBuilder, NodeError,
    Service, TransferError, Work,
};

/// The README's Rust examples, compiled and run as doc tests so the quickstart cannot rot.
#[cfg(all(doctest, feature = "runtime"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
