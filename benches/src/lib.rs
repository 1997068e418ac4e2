//! # baton-benches
//!
//! baton's benchmarks, and the helpers they share. The crate has no public API for users; it
//! measures the numbers `docs/ARCHITECTURE.md` ("What the project is measured against") sets
//! targets for, and `docs/PERFORMANCE.md` explains how to run each one and what they showed.
//!
//! | target | what |
//! | --- | --- |
//! | `benches/failover_memory.rs` | crash / graceful failover on the in-memory transport, n = 3, 9, 33 |
//! | `benches/failover_tcp.rs` | the same over loopback TCP in one process, n = 3, 9 |
//! | `benches/policy_ranking.rs` | built-in policies and a chain at 10 … 10 000 candidates; plugin vs static |
//! | `benches/wire.rs` | postcard encode + decode of a heartbeat and a vote request |
//! | `benches/engine.rs` | one `Engine::handle` (a heartbeat, a pre-vote) at n = 3, 9, 33 |
//! | `examples/failover_breakdown.rs` | a timeline of one in-memory failover, from the nodes' own logs |
//! | `src/bin/failover.rs` | real `baton node` processes: SIGKILL / SIGSTOP / SIGTERM the leader; idle cost |
//! | `src/bin/scale.rs` | n nodes × g groups (processes, or in one process): election, idle CPU / RSS / wire, failover |
//! | `etcd-compare.sh` | `etcdctl lock` vs `baton exec` handover after SIGKILL / SIGTERM |
//!
//! This library holds what the criterion benches share: [`cluster::Cluster`], N nodes of one
//! process on either transport with crash / shutdown / restart, the agreement waits in
//! [`wait`], and [`stats::Samples`], which keeps every measured latency so that a bench can
//! print percentiles (criterion reports means and medians of *samples*, not the p99 the
//! targets are written in). The benchmark programs share [`procs`] (real `baton node`
//! processes and what `/proc` says about them), [`sockets`] (wire bytes from the kernel's
//! TCP counters) and [`scale`] (the scale benchmark's measures and report).
#![warn(missing_docs)]

pub mod cluster;
pub mod inputs;
pub mod plugin;
pub mod procs;
pub mod scale;
pub mod sockets;
pub mod stats;
pub mod wait;

/// The arguments every benchmark program takes besides its own: `-h` / `--help` prints
/// `usage` and exits; `--bench` (which `cargo bench` passes to every target it runs) is
/// ignored; anything else is an error that names it.
pub fn common_arg(arg: &str, usage: &str) -> anyhow::Result<()> {
    match arg {
        "-h" | "--help" => {
            #[allow(
                clippy::print_stdout,
                clippy::exit,
                reason = "--help of a benchmark program: the usage, then done"
            )]
            {
                println!("{usage}");
                std::process::exit(0);
            }
        }
        "--bench" => Ok(()),
        other => anyhow::bail!("unknown argument {other:?}\n{usage}"),
    }
}

/// True when the bench binary was started with `--quick` (criterion's fast mode): benches
/// whose iterations are expensive shorten their time budget further.
pub fn quick_mode() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// True when the bench binary runs as a test (`cargo test --benches`, or `--test`): criterion
/// then runs every benchmark once.
pub fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
}

/// Settings for a group whose iterations cost about a second of wall clock (a failover plus
/// the restart that restores the cluster): ten samples, flat sampling, a short warm-up, and a
/// time budget that `--quick` cuts further. (criterion's quick mode doubles the iteration
/// count until its estimate settles or the budget is spent; with iterations this expensive the
/// default 5 s budget would mean up to 15 iterations per benchmark.) criterion budgets in wall
/// clock — `iter_custom` warm-ups count the whole routine, restarts included — so the counts
/// it picks fit the budget even though each iteration reports only the failover itself.
pub fn configure_failover_group(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
) {
    group
        .sample_size(10)
        .sampling_mode(criterion::SamplingMode::Flat)
        .warm_up_time(std::time::Duration::from_millis(500));
    if quick_mode() {
        group.measurement_time(std::time::Duration::from_millis(1500));
    } else {
        group.measurement_time(std::time::Duration::from_secs(8));
    }
}
