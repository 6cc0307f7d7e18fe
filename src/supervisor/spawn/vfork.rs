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

use std::os::fd::RawFd;

use super::ExecImage;

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
}

impl Launch<'_> {
    /// Runs in the child. Returns only on failure, with the errno to report.
    fn run(&mut self) -> libc::c_int {
        // SAFETY: setpgid, dup2 and fcntl are async-signal-safe system calls on
        // plain integers.
        unsafe {
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
pub(super) fn spawn(image: &mut ExecImage, stdio: [Option<RawFd>; 3]) -> std::io::Result<i32> {
    // One stack, kept: a fresh 64 KiB per spawn cost page faults and zeroing
    // (≈ 4 % of the supervisor's samples when starting 1000 programs).
    thread_local! {
        static STACK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; CHILD_STACK]);
    }
    STACK.with(|stack| spawn_on(&mut stack.borrow_mut(), image, stdio))
}

fn spawn_on(
    stack: &mut [u8],
    image: &mut ExecImage,
    stdio: [Option<RawFd>; 3],
) -> std::io::Result<i32> {
    let parent = std::process::id() as libc::pid_t;
    let mut launch = Launch {
        image,
        parent,
        stdio,
        error: 0,
    };
    // SAFETY: see the module docs. The stack outlives the child's use of it
    // (the parent sleeps until exec/_exit); the top is 16-byte aligned as the
    // ABI wants; signals are blocked around clone and restored after.
    let (pid, clone_errno, error) = unsafe {
        let top = stack.as_mut_ptr().add(stack.len()) as usize & !15;
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut launch as *mut Launch<'_>).cast(),
        );
        let clone_errno = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        (pid, clone_errno, std::ptr::read_volatile(&launch.error))
    };
    if pid < 0 {
        return Err(clone_errno);
    }
    if error != 0 {
        // It _exit'ed: reap it here, on the owner thread, so the reaper never
        // mistakes it for an orphan.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(std::io::Error::from_raw_os_error(error));
    }
    Ok(pid)
}
