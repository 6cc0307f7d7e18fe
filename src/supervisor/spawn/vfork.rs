//! The fork itself: `clone(CLONE_VM | CLONE_VFORK)`, as glibc's `posix_spawn`
//! does, instead of std's `fork`.
//!
//! Why: a `fork` copies the supervisor's page tables, and every page the
//! supervisor then touches before the child has exec'd is copied again
//! (copy-on-write faults). With 1000 programs that was most of the supervisor's
//! own CPU at start-up (perf: page-table copy, COW faults and page accounting
//! ≈ 35 % of its samples). With `CLONE_VM` the child borrows the parent's
//! memory and the parent sleeps until the child has called `execve` (or
//! `_exit`), so nothing is copied and nothing races. `posix_spawn` itself cannot
//! be used: it has no `PR_SET_PDEATHSIG`, no `setgroups`, and no way to write
//! the child's own pid into `LISTEN_PID`.
//!
//! The rules that make sharing memory safe are posix_spawn's: every signal is
//! blocked in the parent around `clone` (so no handler of ours can run on the
//! child's side of the shared memory; the child resets every disposition to
//! the default before it unblocks), the child runs on a stack of its own,
//! calls only async-signal-safe functions on memory prepared before, and
//! reports a failure by writing an errno into the shared [`Launch`] and
//! calling `_exit`. The parent then reaps that child itself, at once, on the
//! owner thread, so the one reaper never sees it.
//!
//! The child does not copy the supervisor's descriptor table either. With
//! `CLONE_FILES` it starts on the parent's table, and its first call,
//! `close_range(LOW_FDS_END, ~0, CLOSE_RANGE_UNSHARE)` (Linux 5.9), gives it a
//! table of its own holding only the descriptors below `LOW_FDS_END`: its
//! stdio, listen sockets and state channel, which the parent staged there just
//! before (see [`Staged`]). Without it every spawn copied the whole table (one
//! pipe per running program) and the child's `execve` closed every entry again:
//! with 1000 programs, the largest cost of a respawn in perf (docs/benchmarks.md).
//! When the low range is not all the supervisor's (a launcher's descriptor sits
//! in it, `sockets::low_fds_owned`), nothing is staged and the child copies the
//! whole table as `fork` would.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::ExecImage;
use crate::supervisor::sockets::{self, LOW_FDS_END, STDIO_STAGE};

/// Stack of the child until `execve`: it only runs `Launch::run` and
/// `ExecImage::exec_in_child`, a few hundred bytes deep.
const CHILD_STACK: usize = 64 * 1024;

/// Everything the child needs, shared with it through `CLONE_VM`.
struct Launch<'a> {
    image: &'a mut ExecImage,
    parent: libc::pid_t,
    /// Descriptors for 0, 1, 2; `None` keeps the supervisor's own.
    stdio: [Option<RawFd>; 3],
    /// Written by the child when it fails before or at `execve`.
    error: libc::c_int,
    /// Cloned with `CLONE_FILES`: the child must take a table of its own first.
    shares_table: bool,
}

/// In the child, on the parent's table: replaces it by a copy of the entries
/// below `LOW_FDS_END` only. Falls back to `unshare(CLONE_FILES)` (a copy of
/// the whole table, as without `CLONE_FILES`) on kernels before 5.9.
///
/// # Safety
/// Only in a child cloned with `CLONE_FILES`; async-signal-safe.
unsafe fn own_table() -> bool {
    // SAFETY: plain system calls on integers; they change only this task's
    // descriptor table pointer (the parent's table is left as it was).
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            LOW_FDS_END as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        ) == 0
            || libc::unshare(libc::CLONE_FILES) == 0
    }
}

/// The descriptors one spawn needs, moved into the reserved low range of the
/// supervisor's own table (listen sockets and the state channel onto their
/// numbers in the child, 3 …; stdio onto `STDIO_STAGE` …), each with
/// close-on-exec. Dropping it puts `/dev/null` back into every slot it used, so
/// no pipe stays open through a slot once the child has exec'd.
///
/// Only on the owner thread, the one that spawns: the slots are shared state.
struct Staged {
    null: RawFd,
    slots: Vec<RawFd>,
}

impl Staged {
    /// Stages `image`'s sockets and `stdio`, and rewrites them to their
    /// slots. `None` (nothing rewritten, every slot restored) when the range is
    /// not the supervisor's or a `dup3` failed; then the caller spawns without
    /// `CLONE_FILES`.
    fn stage(image: &mut ExecImage, stdio: &mut [Option<RawFd>; 3], null: RawFd) -> Option<Staged> {
        if !sockets::low_fds_owned() {
            return None;
        }
        let mut staged = Staged {
            null,
            slots: Vec::with_capacity(image.listen_fds.len() + 4),
        };
        let listen = (super::FIRST_LISTEN_FD..)
            .zip(&image.listen_fds)
            .map(|(slot, &fd)| staged.place(fd, slot))
            .collect::<Option<Vec<RawFd>>>()?;
        let state = match image.state_fd {
            Some((fd, target)) => Some((staged.place(fd, target)?, target)),
            None => None,
        };
        let io = staged.stdio(*stdio)?;
        image.listen_fds = listen;
        image.state_fd = state;
        *stdio = io;
        Some(staged)
    }

    /// Stages `[stdin, stdout, stderr]` onto `STDIO_STAGE` …; returns the
    /// slots. Two need no `dup3`: stdin from `/dev/null` (its slot holds a
    /// `/dev/null` already, the reservation's or a restored one, readable
    /// either way) and stderr on stdout's pipe (stdout's slot serves both).
    fn stdio(&mut self, [stdin, out, err]: [Option<RawFd>; 3]) -> Option<[Option<RawFd>; 3]> {
        let stdin = match stdin {
            Some(fd) if fd == self.null => Some(STDIO_STAGE),
            Some(fd) => Some(self.place(fd, STDIO_STAGE)?),
            None => None,
        };
        let out_slot = match out {
            Some(fd) => Some(self.place(fd, STDIO_STAGE + 1)?),
            None => None,
        };
        let err = match err {
            Some(fd) if Some(fd) == out => out_slot,
            Some(fd) => Some(self.place(fd, STDIO_STAGE + 2)?),
            None => None,
        };
        Some([stdin, out_slot, err])
    }

    /// `dup3(fd, slot, O_CLOEXEC)`; the slot from then on.
    fn place(&mut self, fd: RawFd, slot: RawFd) -> Option<RawFd> {
        // A source inside the range would be one of our /dev/null slots or be
        // clobbered by a later one: never staged.
        if fd < LOW_FDS_END || slot >= LOW_FDS_END {
            return None;
        }
        // SAFETY: dup3 onto a slot of the reserved range, which holds only our
        // own /dev/null or an earlier staging (restored in drop).
        if unsafe { libc::dup3(fd, slot, libc::O_CLOEXEC) } != slot {
            return None;
        }
        self.slots.push(slot);
        Some(slot)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for &slot in &self.slots {
            // SAFETY: as in `place`; /dev/null back into our own slot.
            unsafe { libc::dup3(self.null, slot, libc::O_CLOEXEC) };
        }
    }
}

impl Launch<'_> {
    /// Runs in the child. Returns only on failure, with the errno to report.
    fn run(&mut self) -> libc::c_int {
        // SAFETY: close_range, unshare, setpgid, dup2 and fcntl are
        // async-signal-safe system calls on plain integers.
        unsafe {
            // First: nothing below may touch the parent's table.
            if self.shares_table && !own_table() {
                return super::Step::Setup.errno();
            }
            // Its own process group: stop signals go to the whole program.
            if libc::setpgid(0, 0) != 0 {
                return super::Step::Setup.errno();
            }
            for (target, fd) in (0..).zip(self.stdio) {
                let Some(fd) = fd else { continue };
                let ok = if fd == target {
                    libc::fcntl(fd, libc::F_SETFD, 0) == 0
                } else {
                    libc::dup2(fd, target) == target
                };
                if !ok {
                    return super::Step::Setup.errno();
                }
            }
        }
        match self.image.exec_in_child(self.parent) {
            Ok(()) => libc::EINVAL,
            Err(e) => e.raw_os_error().unwrap_or(libc::EINVAL),
        }
    }
}

/// The child's entry point on its own stack.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Launch` that `spawn` passed to clone; under
    // CLONE_VFORK the parent is suspended until we exec or exit, so this is the
    // only access to it.
    let launch = unsafe { &mut *(arg as *mut Launch<'_>) };
    let error = launch.run();
    // SAFETY: a plain store to memory the parent reads after we are gone.
    unsafe { std::ptr::write_volatile(&mut launch.error, error) };
    // SAFETY: _exit is async-signal-safe and never returns; no destructor of
    // the parent's may run in the child.
    unsafe { libc::_exit(127) }
}

/// Starts `image` in a new process; returns its pid once it has exec'd, or the
/// errno (possibly tagged with a [`super::Step`]) that stopped it.
///
/// `null` is the supervisor's `/dev/null`, put back into the staging slots.
/// With `pidfd`, the child is made with `CLONE_PIDFD` and its pidfd
/// (close-on-exec) is returned too.
pub(super) fn spawn(
    image: &mut ExecImage,
    mut stdio: [Option<RawFd>; 3],
    null: RawFd,
    pidfd: bool,
) -> std::io::Result<(i32, Option<OwnedFd>)> {
    let staged = Staged::stage(image, &mut stdio, null);
    let shares_table = staged.is_some();
    // One stack, kept: a fresh 64 KiB per spawn cost page faults and zeroing
    // (≈ 4 % of the supervisor's samples when starting 1000 programs).
    thread_local! {
        static STACK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; CHILD_STACK]);
    }
    let result =
        STACK.with(|stack| spawn_on(&mut stack.borrow_mut(), image, stdio, shares_table, pidfd));
    drop(staged); // the child has exec'd or exited: slots back to /dev/null
    result
}

fn spawn_on(
    stack: &mut [u8],
    image: &mut ExecImage,
    stdio: [Option<RawFd>; 3],
    shares_table: bool,
    want_pidfd: bool,
) -> std::io::Result<(i32, Option<OwnedFd>)> {
    let parent = std::process::id() as libc::pid_t;
    let mut launch = Launch {
        image,
        parent,
        stdio,
        error: 0,
        shares_table,
    };
    let mut flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    if shares_table {
        flags |= libc::CLONE_FILES;
    }
    if want_pidfd {
        flags |= libc::CLONE_PIDFD;
    }
    let mut pidfd: libc::c_int = -1;
    // SAFETY: see the module docs. The stack outlives the child's use of it
    // (the parent sleeps until exec/_exit); the top is 16-byte aligned as the
    // ABI wants; signals are blocked around clone and restored after. With
    // CLONE_PIDFD the kernel writes the new descriptor into `pidfd` (the
    // parent_tid argument), which outlives the call.
    let (pid, clone_errno, error) = unsafe {
        let top = stack.as_mut_ptr().add(stack.len()) as usize & !15;
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(
            child_main,
            top as *mut libc::c_void,
            flags,
            (&mut launch as *mut Launch<'_>).cast(),
            &mut pidfd as *mut libc::c_int,
        );
        let clone_errno = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        (pid, clone_errno, std::ptr::read_volatile(&launch.error))
    };
    if pid < 0 {
        return Err(clone_errno);
    }
    // SAFETY: a pidfd the kernel just made for us; nothing else owns it.
    let pidfd = (want_pidfd && pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    if error != 0 {
        // It _exit'ed: reap it here, on the owner thread, so the reaper never
        // mistakes it for an orphan.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(std::io::Error::from_raw_os_error(error));
    }
    Ok((pid, pidfd))
}
