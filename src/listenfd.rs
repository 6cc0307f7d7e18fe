//! Inherited listening sockets (the systemd socket-activation convention).
//!
//! The supervisor binds each `listen` address of a program once and hands the
//! sockets to every incarnation as descriptors 3, 4, … with `LISTEN_FDS=<n>`,
//! `LISTEN_PID=<pid of the child>` and `LISTEN_FDNAMES=<addr>:<addr>…`. The app and
//! the proxy call [`take`] at start; when they run alone (no `LISTEN_FDS`) they
//! bind the address themselves, so the same binary works in both worlds.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};

/// First inherited descriptor, fixed by the convention.
pub const FIRST_FD: i32 = 3;

/// An inherited listener and the name the supervisor gave it (its address).
#[derive(Debug)]
pub struct Inherited {
    pub name: Option<String>,
    pub listener: TcpListener,
}

/// Takes the listeners passed by a supervisor, at most once per process.
///
/// Returns an empty list when the variables are absent or meant for another
/// process (`LISTEN_PID` differs). The variables are removed so that children
/// of this process do not believe the sockets are theirs.
pub fn take() -> Vec<Inherited> {
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok());
    let pid_matches = match std::env::var("LISTEN_PID") {
        Ok(pid) => pid.parse::<u32>().ok() == Some(std::process::id()),
        Err(_) => true,
    };
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    // SAFETY: single-threaded at this point of start-up (called before any runtime
    // or thread is created), so no other thread reads the environment concurrently.
    unsafe {
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let Some(count) = count.filter(|n| *n > 0 && pid_matches) else {
        return Vec::new();
    };
    (0..count)
        .filter_map(|i| {
            let fd = FIRST_FD + i;
            // Refuse anything that is not an open socket: a wrong LISTEN_FDS must
            // not make us adopt (and later close) an unrelated descriptor.
            let is_socket = nix::sys::stat::fstat(unsafe_borrow(fd)?)
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
                .unwrap_or(false);
            if !is_socket {
                return None;
            }
            // SAFETY: the descriptor is open (fstat succeeded), is a socket, and was
            // handed to this process for it to own by the LISTEN_FDS convention;
            // nothing else in this process refers to it.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let _ = nix::fcntl::fcntl(
                &owned,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            Some(Inherited {
                name: names.get(i as usize).filter(|n| !n.is_empty()).cloned(),
                listener: TcpListener::from(owned),
            })
        })
        .collect()
}

fn unsafe_borrow(fd: i32) -> Option<std::os::fd::BorrowedFd<'static>> {
    if fd < 0 {
        return None;
    }
    // SAFETY: only used for a momentary fstat/fcntl while the descriptor number is
    // not closed by anyone else (start-up, single-threaded).
    Some(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
}

/// The inherited listener for `addr` (by name, else the first unnamed one), or a
/// fresh socket bound to `addr` when none was inherited.
pub fn listener_for(inherited: &mut Vec<Inherited>, addr: &str) -> std::io::Result<TcpListener> {
    let pos = inherited
        .iter()
        .position(|l| l.name.as_deref() == Some(addr))
        .or_else(|| (!inherited.is_empty()).then_some(0));
    let listener = match pos {
        Some(i) => inherited.remove(i).listener,
        None => TcpListener::bind(addr)?,
    };
    listener.set_nonblocking(true)?;
    Ok(listener)
}
