//! The state channel's wire format, shared by the supervisor (which writes
//! states) and the proxy (which reads them and reports back).
//!
//! A program with `upstreams = ["app", …]` inherits one end of a
//! `socketpair(AF_UNIX, SOCK_SEQPACKET)` as the descriptor named by
//! `SELFHEAL_STATE_FD=<n>` (the one after its listen sockets). Each packet is
//! one JSON object (no newline framing: a packet is a message).
//!
//! - supervisor → program: a [`StateMsg`] each time a fronted program's
//!   [`Phase`] or incarnation changes, and the state of every fronted program
//!   first on each new incarnation of the reader.
//! - program → supervisor: a [`Report`] (see its variants).
//!
//! See docs/architecture.md, "The state channel".

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

/// The environment variable naming the inherited descriptor.
pub const ENV: &str = "SELFHEAL_STATE_FD";

/// Largest packet either side sends or reads (a state names a handful of addresses).
pub const MAX_PACKET: usize = 64 * 1024;

/// A fronted program's state as its front needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Running and ready: send requests.
    Ready,
    /// Spawned (or about to be) and not ready yet: hold requests.
    Starting,
    /// Waiting to restart until `next_start_ms`.
    Backoff,
    /// Stopped by an operator: nothing will come back by itself.
    Stopped,
    /// Gave up (or ended and will not restart).
    Failed,
    /// This incarnation is being replaced as unhealthy (liveness, memory,
    /// traffic): a new one follows; keyed idempotent requests in flight to it
    /// may be replayed there.
    Draining,
}

/// supervisor → front: one fronted program's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMsg {
    pub program: String,
    pub state: Phase,
    /// Its `listen` addresses (`IP:PORT`), which the front maps its upstreams to.
    pub addresses: Vec<String>,
    /// When the next start is due (ms since the Unix epoch), in `backoff` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start_ms: Option<u64>,
    /// The last observed time from spawn to ready (ms), once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_after_ms: Option<u64>,
    /// The program's incarnation (1 for its first spawn, +1 for each spawn).
    pub incarnation: u64,
}

/// front → supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    /// What an outage of `program` cost, sent when it is ready again as
    /// `incarnation`: requests held while it was not ready, replayed on the new
    /// incarnation, and shed (`503`).
    Cost {
        program: String,
        incarnation: u64,
        held: u64,
        replayed: u64,
        shed: u64,
    },
    /// What the front saw of `program`'s `incarnation` over about one second:
    /// answers relayed (`requests`) and, among them or besides, `5xx` answers
    /// and upstream timeouts (`errors`). Sent only for seconds with traffic.
    Traffic {
        program: String,
        incarnation: u64,
        requests: u64,
        errors: u64,
    },
}

/// Takes the inherited channel descriptor named by [`ENV`] (once per process;
/// the variable is removed so children do not believe it is theirs). `None`
/// when the variable is absent or does not name an open socket.
///
/// Call before any thread exists (it edits the environment).
pub fn take() -> Option<OwnedFd> {
    let fd: RawFd = std::env::var(ENV).ok()?.parse().ok()?;
    // SAFETY: single-threaded at this point of start-up (called before any
    // runtime or thread is created), so no one reads the environment concurrently.
    unsafe { std::env::remove_var(ENV) };
    if fd < 3 {
        return None;
    }
    // SAFETY: fstat only reads the descriptor's metadata; a closed number fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return None;
    }
    // SAFETY: close-on-exec, so the proxy's own children never inherit it.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the descriptor is an open socket handed to this process to own
    // by the convention above, and nothing else in the process owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_message_shape() {
        let m = StateMsg {
            program: "app".into(),
            state: Phase::Backoff,
            addresses: vec!["127.0.0.1:8000".into()],
            next_start_ms: Some(5),
            ready_after_ms: Some(70),
            incarnation: 3,
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"program":"app","state":"backoff","addresses":["127.0.0.1:8000"],"next_start_ms":5,"ready_after_ms":70,"incarnation":3}"#
        );
        assert_eq!(serde_json::from_str::<StateMsg>(&text).unwrap(), m);
    }

    #[test]
    fn report_shape() {
        let r = Report::Cost {
            program: "app".into(),
            incarnation: 2,
            held: 3,
            replayed: 1,
            shed: 0,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"cost","program":"app","incarnation":2,"held":3,"replayed":1,"shed":0}"#
        );
        assert_eq!(serde_json::from_str::<Report>(&text).unwrap(), r);
    }
}
