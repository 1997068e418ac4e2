//! Failover on the in-memory transport, n = 3, 9, 33 nodes in one process (a 2-worker
//! multi-thread tokio runtime).
//!
//! - `crash/n`: the leader's node is aborted and its endpoint crashed
//!   (`MemoryNetwork::crash`: peers see `Disconnected` + `Dead`, the proof of death a refused
//!   TCP reconnect gives); measured until **every survivor** reports the same new leader.
//! - `graceful/n`: `Node::shutdown()` of the leader; measured until the successor acts as
//!   leader (`is_me`).
//!
//! Between iterations (not timed) the stopped node is restarted as a new incarnation and the
//! cluster waits until it is steady again, including the one failure timeout (500 ms) during
//! which a restarted node abstains from voting; so an iteration costs about 0.6 s of wall
//! clock whatever it measures (see `baton_benches::configure_failover_group` for how the
//! sample counts are kept small). Default timings (heartbeat 100 ms, failure timeout 500 ms),
//! real clock, every node a voter, policy oldest-running.
//!
//! Besides criterion's report, every measured iteration is kept and min / p50 / p99 / max are
//! printed at the end, for both "first survivor acts" and "all survivors agree".

use baton_benches::cluster::{Net, failover_main};
use baton_transport_memory::MemoryNetwork;

fn main() {
    failover_main("failover_memory", &[3, 9, 33], || {
        Net::Memory(MemoryNetwork::new())
    });
}
