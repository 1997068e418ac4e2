//! baton's test kit, shared by the tests and benches of every crate (never published):
//!
//! - [`Rng`]: the workspace's one seeded PRNG ([`fastrand`]), and [`mutate`] for fuzzing bytes;
//! - [`free_ports`]: distinct free loopback ports below the ephemeral range (the one of
//!   `baton-transport-tcp`, which `baton demo` uses too);
//! - [`cluster`]: N real [`Node`](baton_core::Node)s in one process over the in-memory or the
//!   TCP transport, with agreement waits and crash/restart;
//! - [`fixtures`]: election inputs and one of every peer message;
//! - [`conformance`]: the transport conformance suite both transports run;
//! - [`logs`]: log output captured in memory.
#![warn(missing_docs)]

pub mod cluster;
pub mod conformance;
pub mod fixtures;
pub mod logs;
mod mutate;

pub use baton_transport_tcp::free_ports;
pub use fastrand::Rng;
pub use mutate::mutate;

/// `n` random bytes from `rng`.
pub fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    rng.fill(&mut v);
    v
}

/// Routes `tracing` to the test's output, filtered by `RUST_LOG`; a no-op when a subscriber
/// is already installed.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
