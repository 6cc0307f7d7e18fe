//! The one reaper: on SIGCHLD, drain `waitpid(-1, WNOHANG)` until nothing is left,
//! and type each status. Nothing else in the process waits for children.

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::state::{Pid, Termination};

/// Every child that has ended since the last call.
pub fn drain() -> Vec<(Pid, Termination)> {
    let mut reaped = Vec::new();
    loop {
        match waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                reaped.push((pid.as_raw(), Termination::Exited(code)))
            }
            Ok(WaitStatus::Signaled(pid, signal, core_dumped)) => reaped.push((
                pid.as_raw(),
                Termination::Signaled {
                    signal: signal as i32,
                    core_dumped,
                },
            )),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Err(Errno::EINTR) => continue,
            // Stopped/continued/ptrace events are not exits; keep draining.
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    reaped
}

/// Whether any child (supervised or not) is still alive.
pub fn has_children() -> bool {
    // WNOWAIT leaves a zombie to be reaped by `drain`.
    !matches!(
        nix::sys::wait::waitid(
            nix::sys::wait::Id::All,
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT
        ),
        Err(Errno::ECHILD)
    )
}
