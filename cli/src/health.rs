//! `baton exec --health-cmd`: a check run every `--health-interval-ms`; after
//! `--health-failures` failures in a row the member is unhealthy (exec stops CMD, then marks
//! the member unhealthy, which makes a leader hand off), and healthy again after one pass.
//!
//! **What the handoff bound measures.** A check starts every interval (the interval runs from
//! start to start; a check still running when the next is due fails). The K-th failure in a
//! row is acted on as soon as that check *ends*: no tick is waited for. From the start of the
//! K-th failing check, the handoff then costs the check's own run time (its process start
//! included), stopping CMD (SIGTERM; with a CMD that exits at once, the watchdog's reaping),
//! the handoff message and the successor's election: a few ms, measured in
//! docs/PERFORMANCE.md ("Health handoff"). Since the first failing check starts at most one
//! interval after the check begins to fail, a leader whose check starts failing has handed
//! off within `interval × failures` plus that (plus the time CMD takes to exit after SIGTERM,
//! which is CMD's own).
//!
//! **No shell when none is needed.** A check that is plain words — letters, digits and
//! `_-./=:,+@%!` (`!` and `=` not in the first word), no quotes, no `$`, no globs, no redirections — whose first word is an
//! executable file (a path, or found in `PATH` once at start) is executed directly, without
//! `sh -c`: one process start fewer per check. Anything else (`exit 1`, `test -e $F`,
//! `curl … | grep …`) runs as `sh -c CHECK`, as before; both mean the same thing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How the check runs.
#[derive(Clone, Debug)]
pub(crate) struct HealthCheck {
    /// The shell command; exit 0 is a pass.
    pub cmd: String,
    /// Time between the starts of two checks; a check that runs longer fails.
    pub interval: Duration,
    /// Failures in a row that make the member unhealthy.
    pub failures: u32,
}

/// How one check is started: the program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Invocation {
    /// Executed directly.
    Direct(PathBuf, Vec<String>),
    /// `sh -c CMD`.
    Shell(String),
}

/// Characters that mean nothing to `sh` in a word outside quotes (no expansion, globbing,
/// redirection, separation or comment).
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-./=:,+@%!".contains(c)
}

/// The program `word` names: a path (with a `/`), or the first executable of that name in
/// `path` (the `PATH` variable).
fn resolve(word: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if word.contains('/') {
        let p = PathBuf::from(word);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(word))
        .find(|p| executable(p))
}

/// How to run `cmd`: directly when `sh -c` would do nothing but split it into words and find
/// the program (see the module docs), else through `sh`.
fn invocation(cmd: &str, path: Option<&std::ffi::OsStr>) -> Invocation {
    let shell = || Invocation::Shell(cmd.to_string());
    if !cmd.chars().all(|c| plain(c) || c == ' ') {
        return shell();
    }
    let mut words = cmd.split(' ').filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return shell();
    };
    // `A=b prog` is an assignment to sh, `! prog` a negation; neither is a program.
    if first.contains('=') || first.contains('!') {
        return shell();
    }
    match resolve(first, path) {
        Some(program) => Invocation::Direct(program, words.map(str::to_string).collect()),
        // A shell builtin without a program of its name (`exit 1`, `cd`), or not found: sh
        // says what is wrong.
        None => shell(),
    }
}

/// Runs the check for ever; the watch holds whether the member is healthy (true at first).
/// The task ends when every receiver is gone.
pub(crate) fn spawn(check: HealthCheck, group: String) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(true);
    let how = invocation(&check.cmd, std::env::var_os("PATH").as_deref());
    tracing::debug!("{group}: health check `{}` runs as {how:?}", check.cmd);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(check.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed = 0u32;
        loop {
            ticks.tick().await;
            let started = Instant::now();
            let outcome = run_once(&how, check.interval).await;
            match &outcome {
                Ok(()) => failed = 0,
                Err(why) => {
                    failed = failed.saturating_add(1);
                    tracing::warn!(
                        "{group}: health check `{}` failed ({failed} of {} in a row, after {:.2} ms): {why}",
                        check.cmd,
                        check.failures,
                        started.elapsed().as_secs_f64() * 1e3
                    );
                }
            }
            let healthy = failed < check.failures;
            if *tx.borrow() != healthy {
                if healthy {
                    tracing::info!(
                        "{group}: health check `{}` passes again: healthy",
                        check.cmd
                    );
                }
                if tx.send(healthy).is_err() {
                    return;
                }
            } else if tx.is_closed() {
                return;
            }
        }
    });
    rx
}

/// One run of the check: `Ok` on exit 0 within `limit`.
async fn run_once(how: &Invocation, limit: Duration) -> Result<(), String> {
    let mut command = match how {
        Invocation::Direct(program, args) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args);
            c
        }
        Invocation::Shell(cmd) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(cmd);
            c
        }
    };
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = child.map_err(|e| match how {
        Invocation::Direct(p, _) => format!("cannot start {}: {e}", p.display()),
        Invocation::Shell(_) => format!("cannot start sh: {e}"),
    })?;
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(crate::procs::describe_exit(s)),
        Ok(Err(e)) => Err(format!("cannot wait for it: {e}")),
        Err(_) => Err(format!("still running after {limit:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> std::ffi::OsString {
        std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into())
    }

    #[test]
    fn plain_words_run_without_a_shell_and_the_rest_through_sh() {
        let p = path();
        let p = Some(p.as_os_str());
        match invocation("test  ! -e /tmp/x-y_z.sick", p) {
            Invocation::Direct(prog, args) => {
                assert!(prog.ends_with("test"), "{prog:?}");
                assert_eq!(args, vec!["!", "-e", "/tmp/x-y_z.sick"]);
            }
            other => panic!("{other:?}"),
        }
        match invocation("/bin/true", p) {
            Invocation::Direct(prog, args) => {
                assert_eq!(prog, PathBuf::from("/bin/true"));
                assert!(args.is_empty());
            }
            other => panic!("{other:?}"),
        }
        for shell in [
            "exit 1",                      // a builtin without a program
            "test -e $HOME",               // expansion
            "curl -f localhost | grep ok", // a pipe
            "ls *.pid",                    // a glob
            "A=1 true",                    // an assignment
            "! true",                      // a negation
            "true; false",                 // a list
            "echo 'quoted'",               // quotes
            "test -e ~/x",                 // tilde
            "no-such-program-here x",      // not found: sh reports it
            "",
        ] {
            assert_eq!(
                invocation(shell, p),
                Invocation::Shell(shell.to_string()),
                "{shell:?}"
            );
        }
        // Without PATH only paths run directly.
        assert_eq!(
            invocation("true", None),
            Invocation::Shell("true".to_string())
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn both_invocations_report_the_exit() {
        let p = path();
        let limit = Duration::from_secs(10);
        let direct = invocation("false", Some(p.as_os_str()));
        assert!(matches!(direct, Invocation::Direct(..)), "{direct:?}");
        assert_eq!(
            run_once(&direct, limit).await,
            Err("exited with code 1".to_string())
        );
        let ok = invocation("true", Some(p.as_os_str()));
        assert_eq!(run_once(&ok, limit).await, Ok(()));
        let sh = invocation("exit 3", Some(p.as_os_str()));
        assert_eq!(
            run_once(&sh, limit).await,
            Err("exited with code 3".to_string())
        );
        let slow = invocation("sleep 5", Some(p.as_os_str()));
        let e = run_once(&slow, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(e.contains("still running after"), "{e}");
    }
}
