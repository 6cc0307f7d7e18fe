//! The one reaper: on SIGCHLD, drain every child event until nothing is left, and
//! type each one. Nothing else in the process waits for children.
//!
//! Each exit is peeked first (`waitid(WNOWAIT)`), so the zombie's process group
//! can still be read from `/proc/PID/stat` before it is reaped: an orphan is then
//! named by the program whose group it belonged to. Stops and continues of a
//! child (`WUNTRACED | WCONTINUED`) are reported too, so a suspended program is
//! shown as suspended, not running.

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid as NixPid;

use super::state::{Pid, Termination};

/// One child event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEvent {
    /// Reaped; `pgid` is the process group it was in (0 if unknown).
    Exited {
        pid: Pid,
        pgid: Pid,
        how: Termination,
    },
    /// Stopped by a signal (`true`) or continued (`false`).
    Suspended { pid: Pid, suspended: bool },
}

/// Every child event since the last call. `leads_group(pid)` tells whether
/// `pid` is a known program leader, whose process group is its own pid: only
/// for the others is the zombie's group read from `/proc` (one file read less
/// on every respawn).
pub fn drain(leads_group: impl Fn(Pid) -> bool) -> Vec<ChildEvent> {
    let mut events = Vec::new();
    let flags = WaitPidFlag::WEXITED
        | WaitPidFlag::WSTOPPED
        | WaitPidFlag::WCONTINUED
        | WaitPidFlag::WNOHANG
        | WaitPidFlag::WNOWAIT;
    loop {
        match waitid(Id::All, flags) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
            Ok(status) => match status.pid().map(|pid| consume(pid, &leads_group)) {
                Some(Consumed::Event(event)) => events.push(event),
                Some(Consumed::Other) => {}
                // Nothing consumed (a race): stop rather than peek the same
                // event forever; the next SIGCHLD resumes.
                Some(Consumed::Nothing) | None => break,
            },
        }
    }
    events
}

enum Consumed {
    Event(ChildEvent),
    /// Something not ours to interpret (a ptrace event).
    Other,
    Nothing,
}

/// Reads what the peek announced, reaping the child if it exited.
fn consume(pid: NixPid, leads_group: &impl Fn(Pid) -> bool) -> Consumed {
    let pgid = if leads_group(pid.as_raw()) {
        pid.as_raw()
    } else {
        group_of(pid.as_raw())
    };
    consume_status(pid, pgid).map_or(Consumed::Nothing, |e| {
        e.map_or(Consumed::Other, Consumed::Event)
    })
}

fn consume_status(pid: NixPid, pgid: Pid) -> Option<Option<ChildEvent>> {
    let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED;
    let raw = pid.as_raw();
    match waitpid(pid, Some(flags)) {
        Ok(WaitStatus::Exited(_, code)) => Some(Some(ChildEvent::Exited {
            pid: raw,
            pgid,
            how: Termination::Exited(code),
        })),
        Ok(WaitStatus::Signaled(_, signal, core_dumped)) => Some(Some(ChildEvent::Exited {
            pid: raw,
            pgid,
            how: Termination::Signaled {
                signal: signal as i32,
                core_dumped,
            },
        })),
        Ok(WaitStatus::Stopped(..)) => Some(Some(ChildEvent::Suspended {
            pid: raw,
            suspended: true,
        })),
        Ok(WaitStatus::Continued(_)) => Some(Some(ChildEvent::Suspended {
            pid: raw,
            suspended: false,
        })),
        Ok(WaitStatus::StillAlive) | Err(_) => None,
        // ptrace events and the like are not ours to interpret.
        Ok(_) => Some(None),
    }
}

/// The process group of `pid` from `/proc/PID/stat` (field 5), 0 if unreadable.
pub fn group_of(pid: Pid) -> Pid {
    stat_fields(pid)
        .and_then(|f| f.get(2).and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// The fields of `/proc/PID/stat` after the command name: state, ppid, pgrp, …
pub fn stat_fields(pid: Pid) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether any process of the group led by `pgid` is alive (zombies count until
/// reaped; a permission error means someone is there).
pub fn group_alive(pgid: Pid) -> bool {
    !matches!(
        nix::sys::signal::killpg(NixPid::from_raw(pgid), None),
        Err(Errno::ESRCH)
    )
}

/// Whether any child (supervised or not) is still alive.
pub fn has_children() -> bool {
    // WNOWAIT leaves a zombie to be reaped by `drain`.
    !matches!(
        waitid(
            Id::All,
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT
        ),
        Err(Errno::ECHILD)
    )
}

/// Pids whose parent is `parent`, from /proc/*/stat.
pub fn children_of(parent: u32) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parent = parent.to_string();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<Pid>().ok())
        .filter(|pid| stat_fields(*pid).is_some_and(|f| f.get(1).is_some_and(|p| *p == parent)))
        .collect()
}

/// Start time of `pid` in clock ticks since boot (`/proc/PID/stat` field 22).
pub fn start_ticks(pid: Pid) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}
