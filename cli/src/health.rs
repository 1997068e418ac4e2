//! `baton exec --health-cmd`: a check run every `--health-interval-ms`; after
//! `--health-failures` failures in a row the member is unhealthy (exec stops CMD, then marks
//! the member unhealthy, which makes a leader hand off), and healthy again after one pass.

use std::process::Stdio;
use std::time::Duration;
use tokio::sync::watch;

/// How the check runs.
#[derive(Clone, Debug)]
pub(crate) struct HealthCheck {
    /// The shell command (`sh -c`); exit 0 is a pass.
    pub cmd: String,
    /// Time between the starts of two checks; a check that runs longer fails.
    pub interval: Duration,
    /// Failures in a row that make the member unhealthy.
    pub failures: u32,
}

/// Runs the check for ever; the watch holds whether the member is healthy (true at first).
/// The task ends when every receiver is gone.
pub(crate) fn spawn(check: HealthCheck, group: String) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(true);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(check.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed = 0u32;
        loop {
            ticks.tick().await;
            let outcome = run_once(&check).await;
            match &outcome {
                Ok(()) => failed = 0,
                Err(why) => {
                    failed = failed.saturating_add(1);
                    tracing::warn!(
                        "{group}: health check `{}` failed ({failed} of {} in a row): {why}",
                        check.cmd,
                        check.failures
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

/// One run of the check: `Ok` on exit 0 within the interval.
async fn run_once(check: &HealthCheck) -> Result<(), String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&check.cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = child.map_err(|e| format!("cannot start sh: {e}"))?;
    match tokio::time::timeout(check.interval, child.wait()).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(crate::procs::describe_exit(s)),
        Ok(Err(e)) => Err(format!("cannot wait for it: {e}")),
        Err(_) => Err(format!("still running after {:?}", check.interval)),
    }
}
