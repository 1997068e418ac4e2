//! `baton completions SHELL` and `baton man`: what a package installs beside the binary,
//! generated from the clap definitions in [`crate::cli`] so that they never drift from it.

use crate::cli::{Cli, CompletionsCmd, ManCmd};
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::io::Write;

/// The command line without its hidden (internal) subcommands, which clap_complete would
/// otherwise offer (clap_mangen leaves them out by itself).
fn public_command() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("baton")
        .subcommand_required(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    if let Some(a) = full.get_about() {
        cmd = cmd.about(a.clone());
    }
    cmd
}

/// Prints the completion script of `cmd.shell` to stdout.
pub(crate) fn completions(cmd: CompletionsCmd) -> Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(cmd.shell, &mut public_command(), "baton", &mut out);
    out.flush()
        .context("writing the completion script to stdout")
}

/// Prints baton(1) to stdout, or writes every page into `--out-dir`.
pub(crate) fn man(cmd: ManCmd) -> Result<()> {
    match cmd.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("--out-dir: cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir).with_context(|| {
                format!("--out-dir: cannot write man pages into {}", dir.display())
            })?;
            Ok(())
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .context("writing the man page to stdout")?;
            out.flush().context("writing the man page to stdout")
        }
    }
}
