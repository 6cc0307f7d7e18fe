//! The one reaper: on SIGCHLD, drain every child event until nothing is left, and
//! type each one. Nothing else in the process waits for children.
//!
//! Each exit is peeked first (`waitid(WNOWAIT)`), so the zombie's process group
//! can still be read from `/proc/PID/stat` before it is reaped: an orphan is then
//! named by the program whose group it belonged to. Stops and continues of a
//! child (`WUNTRACED | WCONTINUED`) are reported too, so a suspended program is
//! shown as suspended, not running.
//!
//! Program leaders are also watched through a pidfd each ([`Leaders`]): a
//! leader's exit is read with `waitid(P_PIDFD)`, which looks at that one child,
//! while every `waitid(P_ALL)` walks the kernel's list of all children (perf,
//! 1000 programs running: `wait_consider_task` was 23 % of the supervisor's
//! samples on each respawn, two walks per SIGCHLD). The supervisor takes the
//! pidfds before the SIGCHLD drain, so a leader is reaped and respawned before
//! the one walk that drain still makes (for orphans, exec probes and
//! stops/continues, which only it sees). A leader's exit still raises SIGCHLD:
//! `execve` resets a child's exit signal to SIGCHLD, so clone's exit signal
//! cannot be used to silence it.

use std::collections::HashMap;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid as NixPid;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

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
        Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
            let how = termination(&status)?;
            Some(Some(ChildEvent::Exited {
                pid: raw,
                pgid,
                how,
            }))
        }
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

/// How an exit status ended the child; `None` if it is not an exit.
fn termination(status: &WaitStatus) -> Option<Termination> {
    match *status {
        WaitStatus::Exited(_, code) => Some(Termination::Exited(code)),
        WaitStatus::Signaled(_, signal, core_dumped) => Some(Termination::Signaled {
            signal: signal as i32,
            core_dumped,
        }),
        _ => None,
    }
}

/// Whether this kernel has what [`Leaders`] needs: `pidfd_open` and
/// `CLONE_PIDFD` (Linux 5.3) and `waitid(P_PIDFD)` (5.4). Probed once, on
/// the supervisor itself: `waitid(P_PIDFD)` on its own pidfd says `ECHILD`
/// where `P_PIDFD` is known, `EINVAL` where it is not. Without them every
/// child's exit is found by [`drain`] alone.
pub fn pidfds_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        // SAFETY: pidfd_open takes two integers; a non-negative result is a new
        // descriptor that nothing else owns, so OwnedFd takes it.
        let own = unsafe {
            let fd = libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0);
            if fd < 0 {
                return false;
            }
            OwnedFd::from_raw_fd(fd as RawFd)
        };
        matches!(
            waitid(
                Id::PIDFd(own.as_fd()),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::__WALL
            ),
            Err(Errno::ECHILD)
        )
    })
}

/// Program leaders (and the main program) watched through their pidfds, in one
/// epoll set of its own: readable once any of them has exited. Each is
/// reaped by `waitid(P_PIDFD)`, whose cost does not grow with the number of
/// children; its group is its own pid (a leader made its own group), so no
/// `/proc` read is needed before reaping. [`drain`] may reap a leader first
/// (its SIGCHLD came before the pidfd was read): [`Leaders::forget`] it then.
pub struct Leaders {
    /// `None` when the kernel has no pidfds ([`pidfds_supported`]).
    epoll: Option<Epoll>,
    pidfds: HashMap<Pid, OwnedFd>,
}

impl Default for Leaders {
    /// An empty set; without pidfd support (or an epoll descriptor) it stays
    /// empty and every exit is left to [`drain`].
    fn default() -> Leaders {
        let epoll = pidfds_supported()
            .then(|| Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).ok())
            .flatten();
        Leaders {
            epoll,
            pidfds: HashMap::new(),
        }
    }
}

impl Leaders {
    /// Whether children should be spawned with a pidfd.
    pub fn enabled(&self) -> bool {
        self.epoll.is_some()
    }

    /// Readiness of the set for the runtime: readable when a watched leader
    /// has exited. Registers a duplicate of the epoll descriptor with tokio
    /// (must run inside the runtime). `None`: nothing to wait for.
    pub fn readiness(&self) -> Option<Readiness> {
        let fd = self.epoll.as_ref()?.0.try_clone().ok()?;
        // SAFETY: the OwnedFd is moved into the AsyncFd, which keeps it open
        // (and its number unchanged) until the AsyncFd is dropped.
        unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .ok()
            .map(Readiness)
    }

    /// Watches `pid` through `pidfd` until it is reaped. If the descriptor
    /// cannot be added (no memory), the pidfd is dropped and `false` returned:
    /// the exit is then [`drain`]'s, as without pidfds.
    pub fn watch(&mut self, pid: Pid, pidfd: OwnedFd) -> bool {
        let Some(epoll) = &self.epoll else {
            return false;
        };
        let event = EpollEvent::new(EpollFlags::EPOLLIN, pid as u64);
        if epoll.add(pidfd.as_fd(), event).is_err() {
            return false;
        }
        self.pidfds.insert(pid, pidfd);
        true
    }

    /// Forgets `pid` (reaped by [`drain`]): closing its pidfd removes it from
    /// the epoll set.
    pub fn forget(&mut self, pid: Pid) {
        self.pidfds.remove(&pid);
    }

    /// The exits of watched leaders whose pidfd is readable, each reaped.
    pub fn drain(&mut self) -> Vec<ChildEvent> {
        let mut events = Vec::new();
        let mut ready = [EpollEvent::empty(); 64];
        while let Some(epoll) = &self.epoll {
            let n = match epoll.wait(&mut ready, EpollTimeout::ZERO) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            };
            for event in ready.iter().take(n) {
                let pid = event.data() as Pid;
                events.extend(self.reap(pid));
            }
            if n < ready.len() {
                break;
            }
        }
        events
    }

    /// Reaps the watched leader `pid` if it has exited.
    fn reap(&mut self, pid: Pid) -> Option<ChildEvent> {
        let fd = self.pidfds.get(&pid)?;
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
        let status = loop {
            match waitid(Id::PIDFd(fd.as_fd()), flags) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        };
        match status {
            // Readable but still there cannot happen (readiness means the whole
            // thread group exited); it stays watched.
            Ok(WaitStatus::StillAlive) => None,
            Ok(status) => {
                self.pidfds.remove(&pid);
                termination(&status).map(|how| ChildEvent::Exited {
                    pid,
                    pgid: pid,
                    how,
                })
            }
            // ECHILD: already reaped by [`drain`]; anything else: not waitable.
            Err(_) => {
                self.pidfds.remove(&pid);
                None
            }
        }
    }
}

/// The runtime's view of [`Leaders`]: see [`Readiness::ready`].
pub struct Readiness(AsyncFd<OwnedFd>);

impl Readiness {
    /// Waits until a watched leader may have exited. Call [`Leaders::drain`],
    /// then `clear_ready` on the guard (an exit after the drain sets it again).
    pub async fn ready(&self) -> AsyncFdReadyGuard<'_, OwnedFd> {
        match self.0.readable().await {
            Ok(guard) => guard,
            // Only a driver shut down fails here; nothing more will come.
            Err(_) => std::future::pending().await,
        }
    }
}

/// Waits for [`Readiness::ready`] if there is one, else forever.
pub async fn leader_exited(readiness: Option<&Readiness>) -> AsyncFdReadyGuard<'_, OwnedFd> {
    match readiness {
        Some(r) => r.ready().await,
        None => std::future::pending().await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::spawn::{self, Spec};
    use std::time::{Duration, Instant};

    /// A real child spawned as the supervisor spawns a leader.
    fn leader(pidfd: bool) -> spawn::Child {
        let argv = ["sleep".to_string(), "30".to_string()];
        let spec = Spec {
            pidfd,
            ..Spec::plain(&argv)
        };
        match spawn::spawn(&spec) {
            Ok(child) => child,
            Err(e) => panic!("spawn: {e}"),
        }
    }

    #[test]
    fn a_leader_is_reaped_through_its_pidfd() {
        assert!(
            pidfds_supported(),
            "this kernel has no pidfds (Linux >= 5.4 needed)"
        );
        let mut leaders = Leaders::default();
        assert!(leaders.enabled());
        let child = leader(true);
        let Some(pidfd) = child.pidfd else {
            panic!("no pidfd for {}", child.pid)
        };
        assert!(leaders.watch(child.pid, pidfd));
        assert!(leaders.drain().is_empty(), "alive, so nothing to reap");
        nix::sys::signal::kill(NixPid::from_raw(child.pid), nix::sys::signal::SIGKILL)
            .unwrap_or_else(|e| panic!("kill: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let events = loop {
            let events = leaders.drain();
            if !events.is_empty() || Instant::now() > deadline {
                break events;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let killed = ChildEvent::Exited {
            pid: child.pid,
            pgid: child.pid,
            how: Termination::Signaled {
                signal: libc::SIGKILL,
                core_dumped: false,
            },
        };
        assert_eq!(events, vec![killed]);
        // Reaped, not left a zombie; its pidfd is closed and forgotten.
        assert!(
            stat_fields(child.pid).is_none(),
            "pid {} still listed",
            child.pid
        );
        assert!(leaders.pidfds.is_empty());
    }
}
