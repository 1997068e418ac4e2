//! Where the time of one in-memory failover goes: runs a cluster of N nodes (default 33),
//! kills the leader (or, with `graceful`, shuts it down kindly) R times (default 5) and prints,
//! for each round, a timeline of what the nodes logged (deaths noticed, the new leader's
//! election, each survivor learning of it), in µs since the fault.
//!
//! ```text
//! cargo run --release -p baton-benches --example failover_breakdown -- 33 5 [crash|graceful]
//! ```
//!
//! The timeline comes from the nodes' own `tracing` events (the runtime logs every leadership
//! change at debug level and every engine log line at info), captured with their timestamps.
//!
//! `BATON_WINDOWS=FILE` writes each round's failover window (`start,end` in `CLOCK_MONOTONIC`
//! seconds, the clock of `perf record -k mono`) to FILE, space separated: `perf report --time
//! "$(cat FILE)"` then shows the failovers alone, without the steady heartbeats and restarts
//! around them (docs/PERFORMANCE.md, "In-memory failover").
#![allow(
    clippy::print_stdout,
    reason = "an example program: what it prints is what it shows"
)]

use baton_benches::cluster::{self, Cluster, Net};
use baton_benches::stats::fmt_duration;
use baton_transport_memory::MemoryNetwork;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(Instant, String)>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let now = Instant::now();
        let mut f = Fields(String::new());
        event.record(&mut f);
        if let Ok(mut v) = self.0.lock() {
            v.push((now, f.0));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(33);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let graceful = args.get(3).is_some_and(|s| s == "graceful");
    let capture = Capture::default();
    // BATON_NO_TRACE=1: no capture (for profiling the failover itself, e.g. under `perf`).
    if std::env::var_os("BATON_NO_TRACE").is_none() {
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with(capture.clone())
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut windows: Vec<String> = Vec::new();
    let (instant_base, mono_base) = (Instant::now(), mono_secs());
    rt.block_on(async {
        let mut c = Cluster::start(
            Net::Memory(MemoryNetwork::new()),
            n,
            cluster::default_timing(),
        )
        .await
        .expect("cluster starts");
        for round in 0..rounds {
            let old = c.leader.clone().expect("a leader");
            if let Ok(mut v) = capture.0.lock() {
                v.clear();
            }
            let t0 = Instant::now();
            let f = if graceful {
                cluster::handoff_leader(&mut c).await.expect("handoff")
            } else {
                cluster::crash_leader(&mut c).await.expect("failover")
            };
            let events: Vec<(Instant, String)> =
                capture.0.lock().map(|v| v.clone()).unwrap_or_default();
            println!(
                "round {round}: {} {} (term {}); first acts {}, all agree {}",
                if graceful { "shut down" } else { "killed" },
                old.0.node,
                old.1,
                fmt_duration(f.first_acting),
                fmt_duration(f.all_agree)
            );
            let start = mono_base + (f.started - instant_base).as_secs_f64();
            windows.push(format!(
                "{start:.6},{:.6}",
                start + f.all_agree.as_secs_f64()
            ));
            let horizon = t0 + f.all_agree + Duration::from_millis(1);
            for (at, line) in events
                .iter()
                .filter(|(at, _)| *at >= t0 && *at <= horizon)
                .take(200)
            {
                println!("  +{:>9}  {line}", fmt_duration(*at - t0));
            }
        }
        c.stop().await;
    });
    if let Some(path) = std::env::var_os("BATON_WINDOWS") {
        std::fs::write(&path, windows.join(" ")).expect("BATON_WINDOWS is writable");
    }
}

/// `CLOCK_MONOTONIC` now, in seconds (perf's `-k mono` timestamps).
fn mono_secs() -> f64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9
}
