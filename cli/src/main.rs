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
//! - `baton watch` — follow a node's leadership changes through its admin event stream;
//! - `baton transfer` / `baton step-down` — hand a group's leadership to a named node, or to the
//!   next in line, through any node;
//! - `baton exec` — a node that runs a command only while it leads a group;
//! - `baton demo` — a local 3-node cluster that shows election, crash failover, rejoin,
//!   graceful handoff and work routing, with timings;
//! - `baton completions SHELL` / `baton man` — shell completions and man pages generated
//!   from the command-line definitions, for packagers.
//!
//! See `cli/README.md` for the flags and the exact semantics of `exec`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program: its output is its interface"
)]

mod cli;
mod client;
mod control;
mod demo;
mod errors;
mod exec;
mod health;
mod logging;
mod net;
mod node;
mod packaging;
mod procs;
mod settings;
mod watch;
mod watchdog;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // With --json, errors are JSON objects on stdout too (cli/README.md, "Errors").
    let json = match &cli.command {
        Command::Status(c) => c.json,
        Command::Work(c) => c.json,
        Command::Watch(c) => c.json,
        Command::Transfer(c) => c.json,
        Command::StepDown(c) => c.json,
        _ => false,
    };
    // Nodes log what they do; one-shot commands stay quiet unless RUST_LOG asks.
    let default_level = match cli.command {
        Command::Node(_) | Command::Exec(_) | Command::Watchdog(_) => "info",
        Command::Status(_)
        | Command::Work(_)
        | Command::Watch(_)
        | Command::Demo(_)
        | Command::Completions(_)
        | Command::Man(_) => "warn",
        Command::Transfer(_) | Command::StepDown(_) => "warn",
    };
    logging::init(cli.log_format, default_level);

    let result = match cli.command {
        // Synchronous and single-threaded: it must keep working while `baton exec` cannot.
        Command::Watchdog(cmd) => watchdog::run(cmd),
        // A node does little but idle networking: one thread. On 2 workers, an idle 9-node
        // cluster took ~15 % more CPU and ~0.4 MiB more RSS per node (docs/PERFORMANCE.md,
        // "Idle cost"). The durable state write still runs on tokio's blocking pool, off
        // this thread.
        Command::Node(cmd) => runtime().and_then(|rt| rt.block_on(node::run(cmd))),
        // Commands that spawn children must also run everything on the main thread: the
        // kernel's parent-death signal follows the thread that forked, and the main thread
        // lives as long as the process.
        Command::Exec(cmd) => runtime().and_then(|rt| rt.block_on(exec::run(cmd))),
        Command::Demo(cmd) => runtime().and_then(|rt| rt.block_on(demo::run(cmd))),
        Command::Status(cmd) => runtime().and_then(|rt| rt.block_on(client::status(cmd))),
        Command::Work(cmd) => runtime().and_then(|rt| rt.block_on(client::work(cmd))),
        Command::Watch(cmd) => runtime().and_then(|rt| rt.block_on(watch::run(cmd))),
        Command::Completions(cmd) => packaging::completions(cmd),
        Command::Man(cmd) => packaging::man(cmd),
        Command::Transfer(cmd) => runtime().and_then(|rt| rt.block_on(control::transfer(cmd))),
        Command::StepDown(cmd) => runtime().and_then(|rt| rt.block_on(control::step_down(cmd))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let kind = errors::kind_of(&e);
            let message = errors::render(&e);
            if json {
                println!("{}", errors::json(&message, kind));
            } else {
                eprintln!("baton: error: {message}");
            }
            ExitCode::from(kind.exit_code())
        }
    }
}

/// A command line clap refuses: exit 2 (`--help` and `--version` print and exit 0). With
/// `--json` among the arguments, the error is a JSON object on stdout.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ if json => {
            // clap's message without its usage and help footer, on one line.
            let text = e.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .map(str::trim)
                .skip_while(|l| l.is_empty())
                .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                .collect();
            let message = message.join(" ");
            let message = message.trim_start_matches("error: ");
            println!("{}", errors::json(message, errors::Kind::Usage));
            ExitCode::from(errors::Kind::Usage.exit_code())
        }
        _ => e.exit(),
    }
}

/// Every command runs on a current-thread runtime (see the comments at the call sites).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
