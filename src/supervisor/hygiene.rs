//! A clean slate at startup: whatever the launcher left behind (a blocked
//! signal mask, ignored signals, descriptors without close-on-exec) is undone
//! before the supervisor relies on any of it.
//!
//! A blocked or ignored signal survives `execve` (POSIX `execve`: "the new
//! process image inherits the signal mask"; ignored signals stay ignored), and
//! so does every descriptor without `FD_CLOEXEC`. Left alone, a blocked SIGTERM
//! makes `docker stop` do nothing, a blocked or ignored SIGCHLD leaves dead
//! children as zombies shown `running`, and a launcher's descriptor reaches
//! every program. tini (`restore_signals`) and systemd (`reset_signal_mask`,
//! `close_all_fds`) do the same before they run anything.

use std::io;

/// Signals whose disposition is reset when ignored (1 … 31, the standard ones;
/// real-time signals are not the supervisor's business, and programs get every
/// signal reset anyway, see `spawn`).
const LAST_STANDARD_SIGNAL: libc::c_int = 31;

/// Resets the inherited process state. Call first thing in the supervisor,
/// before any thread exists (the signal mask is per thread and inherited by
/// threads created later) and before any descriptor is opened (every
/// descriptor above 2 open at this point is the launcher's).
///
/// - signal mask: *everything blocked* until the handlers are installed
///   ([`unblock_signals`], called right after): a signal sent in that window
///   (a Ctrl-C at start-up, a `docker stop` racing the start) stays pending and
///   reaches its handler, instead of taking the default action and killing the
///   supervisor. Threads started meanwhile (the output writer) keep the full
///   mask for good: signals are the owner thread's business;
/// - signals 1–31 left ignored: back to `SIG_DFL` (the supervisor installs
///   its own handlers right after), except SIGPIPE, which stays `SIG_IGN` as the
///   Rust runtime sets it (a write to a closed stdout must be an `EPIPE` error,
///   not the supervisor's death);
/// - descriptors ≥ 3: marked close-on-exec, so none reaches a program. They
///   are not closed: the process may still use them (e.g. a descriptor handed
///   over on purpose), and `CLOEXEC` is all the children need. (Those in the
///   reserved low range are then renumbered above it, see
///   `sockets::reserve_low_fds`.)
///
/// Returns what could not be done, one message per failure (the caller prints
/// them; none is fatal).
pub fn reset_inherited_state() -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = set_mask(&nix::sys::signal::SigSet::all()) {
        problems.push(format!("cannot replace the inherited signal mask: {e}"));
    }
    for sig in 1..=LAST_STANDARD_SIGNAL {
        if let Err(e) = reset_disposition(sig) {
            problems.push(format!("cannot reset the disposition of signal {sig}: {e}"));
        }
    }
    if let Err(e) = cloexec_inherited_fds() {
        problems.push(format!(
            "cannot mark inherited descriptors close-on-exec: {e}"
        ));
    }
    problems
}

/// Empties the calling thread's signal mask: call once every handler is installed.
pub fn unblock_signals() -> nix::Result<()> {
    set_mask(&nix::sys::signal::SigSet::empty())
}

fn set_mask(mask: &nix::sys::signal::SigSet) -> nix::Result<()> {
    nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(mask), None)
}

/// `SIG_DFL` for `sig` if the launcher left it ignored. Only "ignored" survives
/// `execve` (handlers are reset by the kernel), so a signal that has a handler
/// now got it from this process: the Rust runtime's SIGSEGV/SIGBUS
/// stack-overflow handlers are kept. SIGPIPE stays ignored (see above).
fn reset_disposition(sig: libc::c_int) -> io::Result<()> {
    if matches!(sig, libc::SIGKILL | libc::SIGSTOP | libc::SIGPIPE) {
        return Ok(());
    }
    // SAFETY: sigaction with a null new action only reads the disposition
    // into `current`, a zeroed (valid) struct on this stack frame.
    let current = unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut current) != 0 {
            return Err(io::Error::last_os_error());
        }
        current
    };
    if current.sa_sigaction != libc::SIG_IGN {
        return Ok(());
    }
    // SAFETY: a zeroed sigaction is a valid value (empty mask, no flags); we
    // install SIG_DFL, which runs no code of ours, and pass no old-action
    // pointer. Single-threaded here, so nothing races with the change.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig, &action, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Marks every descriptor ≥ 3 close-on-exec: `close_range(2)` with
/// `CLOSE_RANGE_CLOEXEC` (Linux ≥ 5.11), else one `fcntl` per entry of
/// `/proc/self/fd`.
fn cloexec_inherited_fds() -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on
    // descriptors; it closes nothing and touches no memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let fds: Vec<libc::c_int> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= 3)
        .collect();
    for fd in fds {
        // SAFETY: fcntl(F_GETFD/F_SETFD) on a number; an already closed one (the
        // read_dir's own descriptor) fails with EBADF, which is ignored.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}
