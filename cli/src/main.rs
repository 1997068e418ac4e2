//! # baton (the binary)
//!
//! The command line of baton, a pluggable leader-election framework. It drives the library
//! crates over TCP:
//!
//! - `baton node` — a node (`baton_core::Node` over `baton_transport_tcp`) that joins its
//!   configured groups, answers routed work like the original demo's `TrackedService` and
//!   logs leadership changes;
//! - `baton status` / `baton work` — a *client* connection to one node (authenticated with the
//!   cluster secret, never a cluster member): what it knows, and work routed to a leader;
//! - `baton exec` — a node that runs a command only while it leads a group;
//! - `baton demo` — a local 3-node cluster that shows election, crash failover, rejoin,
//!   graceful handoff and work routing, with timings.
//!
//! See `cli/README.md` for the flags and the exact semantics of `exec`.

mod cli;
mod client;
mod demo;
mod exec;
mod net;
mod node;
mod procs;
mod settings;

use clap::Parser;
use cli::{Cli, Command};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Nodes log what they do; one-shot commands stay quiet unless RUST_LOG asks.
    let default_level = match cli.command {
        Command::Node(_) | Command::Exec(_) => "info",
        Command::Status(_) | Command::Work(_) | Command::Demo(_) => "warn",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    let result = match cli.command {
        // A node does nothing but network: a small multi-threaded runtime.
        Command::Node(cmd) => runtime(false).and_then(|rt| rt.block_on(node::run(cmd))),
        // Commands that spawn children run everything on the main thread: the kernel's
        // parent-death signal follows the thread that forked, and the main thread lives as
        // long as the process.
        Command::Exec(cmd) => runtime(true).and_then(|rt| rt.block_on(exec::run(cmd))),
        Command::Demo(cmd) => runtime(true).and_then(|rt| rt.block_on(demo::run(cmd))),
        Command::Status(cmd) => runtime(true).and_then(|rt| rt.block_on(client::status(cmd))),
        Command::Work(cmd) => runtime(true).and_then(|rt| rt.block_on(client::work(cmd))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(current_thread: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    Ok(b.enable_all().build()?)
}
