//! Listening sockets owned by the supervisor, bound once and handed to every
//! incarnation of a program, and the descriptor-number hygiene that makes the
//! hand-over safe.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage};

/// Children receive sockets at fd 3 … 3 + this; see [`reserve_low_fds`].
pub const MAX_LISTEN: usize = 16;

/// Backlog of handed-over sockets: while a program restarts, clients wait here.
const BACKLOG: i32 = 1024;

/// Occupies every free descriptor number in 3 … 3 + MAX_LISTEN with a
/// close-on-exec `/dev/null`, for the life of the process. In the child,
/// listen sockets are `dup2`ed onto those numbers; if a descriptor the child
/// still needs until exec (std's exec-error pipe, a source socket) sat there, it
/// would be clobbered. With the low numbers taken, such descriptors always land
/// above the range.
pub fn reserve_low_fds() {
    let mut kept = Vec::new();
    for _ in 0..MAX_LISTEN + 3 {
        match std::fs::File::open("/dev/null") {
            Ok(f) if f.as_raw_fd() < 3 + MAX_LISTEN as i32 => kept.push(f),
            _ => break,
        }
    }
    // Deliberately leaked: the reservation lasts as long as the process.
    std::mem::forget(kept);
}

/// Binds `addr` with SO_REUSEADDR and a deep backlog; close-on-exec.
pub fn bind(addr: SocketAddr) -> std::io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, socket::sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() {
        socket::setsockopt(&fd, socket::sockopt::Ipv6V6Only, &true)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    socket::listen(&fd, Backlog::new(BACKLOG).unwrap_or(Backlog::MAXCONN))?;
    Ok(fd)
}
