//! Child processes that never outlive their parent: `PR_SET_PDEATHSIG`, process groups, and a
//! guard that kills what it spawned on every exit path.

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Makes the child of `cmd` receive SIGKILL when the thread that spawned it dies (the kernel's
/// parent-death signal), and fails the spawn if the parent is already gone by then.
///
/// The parent-death signal follows the *thread* that forked: spawn from a thread that lives as
/// long as the process (the binary runs a current-thread tokio runtime on the main thread for
/// every command that spawns children).
pub(crate) fn die_with_parent(cmd: &mut std::process::Command) {
    die_with_parent_by(cmd, Signal::SIGKILL);
}

/// [`die_with_parent`] with another parent-death signal (one the child handles itself).
pub(crate) fn die_with_parent_by(cmd: &mut std::process::Command, signal: Signal) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // operations are allowed. It makes two system calls (prctl, getppid) through nix wrappers
    // that neither allocate nor take locks, and builds its error from a raw errno without
    // allocating.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal)
                .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
            // The parent may have died between fork and prctl: then nobody would kill us.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(io::Error::from_raw_os_error(
                    nix::errno::Errno::ESRCH as i32,
                ));
            }
            Ok(())
        });
    }
}

/// Makes the child of `cmd` start with no signal blocked, whatever its parent blocks.
pub(crate) fn unblock_signals(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; sigprocmask is async-signal-safe and the
    // nix wrapper neither allocates nor locks.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            )
            .map_err(|e| io::Error::from_raw_os_error(e as i32))
        });
    }
}

/// Sends `signal` to the process group `pgid` (a child started with `process_group(0)` leads
/// the group named by its pid). A group that no longer exists is not an error.
pub(crate) fn signal_group(pgid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pgid) {
        match killpg(Pid::from_raw(raw), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => tracing::warn!(pgid, %signal, error = %e, "cannot signal process group"),
        }
    }
}

/// Sends `signal` to one process.
pub(crate) fn signal_pid(pid: u32, signal: Signal) -> io::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    kill(Pid::from_raw(raw), signal).map_err(|e| io::Error::from_raw_os_error(e as i32))
}

/// `exited with code 3` / `killed by SIGTERM`.
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with code {code}")
    } else if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        }
    } else {
        format!("ended ({status})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described() {
        let st = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .status()
            .unwrap();
        assert_eq!(describe_exit(st), "exited with code 3");
        let st = std::process::Command::new("sh")
            .args(["-c", "kill -TERM $$"])
            .status()
            .unwrap();
        assert_eq!(describe_exit(st), "killed by SIGTERM");
    }

    #[test]
    fn pdeathsig_spawn_works() {
        let mut c = std::process::Command::new("true");
        die_with_parent(&mut c);
        assert!(c.status().unwrap().success());
    }
}
