//! Listening sockets owned by the supervisor, bound once and handed to every
//! incarnation of a program, and the descriptor-number hygiene that makes the
//! hand-over safe.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage};

/// Children receive sockets at fd 3 … 3 + this; see [`reserve_low_fds`].
pub const MAX_LISTEN: usize = 16;

/// Backlog of handed-over sockets: while a program restarts, clients wait here.
const BACKLOG: i32 = 1024;

/// Where a child's stdio is staged before a spawn: the three numbers right
/// after the listen range (see `spawn::vfork`).
pub const STDIO_STAGE: RawFd = 3 + MAX_LISTEN as RawFd;

/// End (exclusive) of the reserved low range: 3 … `LOW_FDS_END - 1`. Every
/// descriptor a child needs until its `execve` sits below this number when it
/// is spawned, so the child copies only these from the supervisor's table.
pub const LOW_FDS_END: RawFd = STDIO_STAGE + 3;

/// Whether [`reserve_low_fds`] got the whole range.
static LOW_FDS_OWNED: AtomicBool = AtomicBool::new(false);

/// Occupies every free descriptor number in 3 … `LOW_FDS_END - 1` with a
/// close-on-exec `/dev/null`, for the life of the process. In the child,
/// listen sockets are `dup2`ed onto 3 …; if a descriptor the child still needs
/// until exec (a source socket, its stdio pipe) sat there, it would be
/// clobbered. With the low numbers taken, such descriptors always land above
/// the range. When the whole range is ours ([`low_fds_owned`]), spawning also
/// stages a child's descriptors in it (`spawn::vfork`).
pub fn reserve_low_fds() {
    move_out_of_low_range();
    let mut kept = Vec::new();
    // Each open takes the lowest free number: stop at the first one above the
    // range (at most LOW_FDS_END opens). A closed stdin/out/err would be
    // filled too, which is harmless.
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) if f.as_raw_fd() < LOW_FDS_END => kept.push(f),
            _ => break,
        }
    }
    // Owned only if every number of the range is one of ours: a descriptor
    // that could not be moved out sits in it otherwise.
    let owned = (3..LOW_FDS_END).all(|fd| kept.iter().any(|f| f.as_raw_fd() == fd));
    LOW_FDS_OWNED.store(owned, Ordering::Relaxed);
    // Deliberately leaked: the reservation lasts as long as the process.
    std::mem::forget(kept);
}

/// Renumbers descriptors a launcher left in 3 … `LOW_FDS_END - 1` to the
/// first free number above the range (close-on-exec, as hygiene made every
/// inherited descriptor). selfheal uses none of them by number, and no
/// program receives them, so the range becomes entirely free for the
/// reservation (a `perf record` or a shell leaves such descriptors).
fn move_out_of_low_range() {
    for fd in 3..LOW_FDS_END {
        // SAFETY: fcntl on a plain integer; F_GETFD only reads the flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            continue; // not open
        }
        // SAFETY: as above; the copy gets a new number ≥ LOW_FDS_END, and the
        // original is closed only once the copy exists.
        unsafe {
            if libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, LOW_FDS_END) >= 0 {
                libc::close(fd);
            }
        }
    }
}

/// Whether every number in 3 … `LOW_FDS_END - 1` holds the supervisor's own
/// `/dev/null` reservation (false in unit tests and when a launcher's
/// descriptor sits in the range).
pub fn low_fds_owned() -> bool {
    LOW_FDS_OWNED.load(Ordering::Relaxed)
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

/// The inode numbers of `fds` (sockets), as `/proc/PID/fd/N` shows them
/// (`socket:[INODE]`).
pub fn inodes(fds: &[(std::os::fd::OwnedFd, String)]) -> Vec<u64> {
    fds.iter()
        .filter_map(|(fd, _)| nix::sys::stat::fstat(fd).ok())
        .map(|st| st.st_ino)
        .collect()
}

/// Whether process `pid` waits for connections on one of the sockets
/// `inodes`: it has one of them registered in an epoll set (how tokio, nginx,
/// Node and most servers accept). A surge restart uses it to tell the new
/// process's readiness from the old one's, since a probe of the shared
/// address may be answered by either. False when `/proc` cannot tell (a
/// blocking `accept(2)` server, or a process already gone).
pub fn accepting(pid: i32, inodes: &[u64]) -> bool {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return false;
    };
    let held = |fd: &str| {
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .ok()
            .and_then(|link| {
                let text = link.to_string_lossy().into_owned();
                text.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse::<u64>()
                    .ok()
            })
            .is_some_and(|inode| inodes.contains(&inode))
    };
    entries.flatten().any(|entry| {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            return false;
        };
        // epoll fdinfo lines: "tfd:        3 events:       19 data: …"
        info.lines()
            .filter_map(|l| l.strip_prefix("tfd:"))
            .filter_map(|rest| rest.split_whitespace().next())
            .any(held)
    })
}

#[cfg(test)]
mod accepting_tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_in_an_epoll_set_is_accepting_and_a_bare_one_is_not() {
        let bare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd: std::os::fd::OwnedFd = bare.try_clone().unwrap().into();
        let held = [(fd, "bare".to_string())];
        let pid = std::process::id() as i32;
        assert!(!accepting(pid, &inodes(&held)));
        bare.set_nonblocking(true).unwrap();
        let _registered = tokio::net::TcpListener::from_std(bare).unwrap();
        assert!(accepting(pid, &inodes(&held)));
        assert!(!accepting(i32::MAX, &inodes(&held)));
    }
}
