//! # baton-reliability
//!
//! The harness behind baton's reliability and security claims (`docs/RELIABILITY.md`). It is a
//! test-support crate (`publish = false`): nothing in a baton deployment links it.
//!
//! - [`proxy`]: a fault-injecting TCP proxy that sits in front of each node. It reads the
//!   length-delimited frames of baton's wire format, learns from the handshake's `Hello` which
//!   node dialed, and applies a [`Fault`] per *directed* link: cut (close), hold (stop
//!   forwarding, socket open), black-hole (swallow frames, socket open), delay and reorder.
//!   Nodes advertise the proxy's address through [`TcpConfig::advertise`], so every peer
//!   reaches them through it.
//! - [`cluster`]: N real [`Node`]s over [`TcpTransport`] in one process, optionally behind the
//!   proxy, with a [`LeadershipLog`] that timestamps every leadership change each node
//!   publishes, to check that no two nodes ever act as leader at once.
//! - [`fuzzing`]: the entry points the cargo-fuzz targets in `fuzz/` and the seeded corpus test
//!   (`tests/fuzz_corpus.rs`) both drive: frame decoding, the handshake machines, config parsing.
//!
//! Tests run one at a time per test binary ([`run`]): they measure timings on a shared
//! machine and must not starve each other.
//!
//! [`Node`]: baton_core::Node
//! [`TcpTransport`]: baton_transport_tcp::TcpTransport
//! [`TcpConfig::advertise`]: baton_transport_tcp::TcpConfig::advertise
//! [`Fault`]: proxy::Fault
//! [`LeadershipLog`]: cluster::LeadershipLog
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod cluster;
pub mod fuzzing;
pub mod proxy;

use std::future::Future;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `test` on a fresh 2-worker tokio runtime, one test at a time in this process (timing
/// tests must not compete with each other for the CPU). Logs go to the test writer, filtered
/// by `RUST_LOG`.
pub fn run<F: Future>(test: F) -> F::Output {
    init_logs();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(test)
}

/// Installs a `RUST_LOG`-filtered subscriber writing to the test output (once).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
