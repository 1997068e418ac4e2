//! Failover over loopback TCP (`baton-transport-tcp`), n = 3 and 9 nodes in one process (a
//! 2-worker multi-thread tokio runtime).
//!
//! - `crash/n`: the leader's node is aborted and its transport shut down, so that its
//!   listener and sockets close as a killed process's would: peers see the connection close,
//!   redial at once, are refused (proof of death) and elect. Measured until **every
//!   survivor** reports the same new leader.
//! - `graceful/n`: `Node::shutdown()` of the leader; measured until the successor acts as
//!   leader (`is_me`).
//!
//! As in `failover_memory`, the stopped node is restarted (a new incarnation on a new port)
//! and the cluster left to settle between iterations, untimed; default timings, real clock.
//! Every iteration is kept and min / p50 / p99 / max printed at the end.

use baton_benches::cluster::failover_main;

fn main() {
    failover_main("failover_tcp", &[3, 9], baton_benches::cluster::tcp);
}
