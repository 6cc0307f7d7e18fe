//! Every catchable signal the supervisor can receive gets a handler before the
//! first child is spawned: PID 1 ignores signals it has no handler for, and any
//! other process dies of the default action of SIGALRM, SIGPWR, SIGUSR1, a
//! real-time signal… So each one either has a meaning ([`super::stack`]: TERM,
//! INT, QUIT stop the stack; CHLD reaps) or is forwarded to the programs that
//! declare it in `forward_signals` (and otherwise noted and ignored).
//!
//! Left at their default on purpose: SIGSEGV, SIGBUS, SIGFPE, SIGILL (a fault in
//! the supervisor itself: resuming would loop on the faulting instruction) and
//! SIGKILL, SIGSTOP (cannot be caught; as PID 1 they are not even delivered from
//! inside the namespace). SIGPIPE stays ignored (Rust's runtime sets it so): a
//! closed pipe is an error return, never a death.

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// Signals (besides CHLD) the supervisor handles, by number. Job-control signals
/// are caught too, so a TSTP from a terminal cannot freeze PID 1.
const NAMED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGPWR,
    Signal::SIGWINCH,
    Signal::SIGURG,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGSYS,
    Signal::SIGTRAP,
    Signal::SIGABRT,
    Signal::SIGSTKFLT,
];

/// The streams: SIGCHLD apart (it wakes the reaper), everything else as numbers.
pub struct Signals {
    pub child: tokio::signal::unix::Signal,
    pub rx: mpsc::UnboundedReceiver<i32>,
}

/// Installs every handler; must run inside the runtime, before any spawn.
/// Errors only if SIGCHLD or a stop signal cannot be handled; others that fail
/// (none on Linux) are returned as warnings.
pub fn install() -> std::io::Result<(Signals, Vec<String>)> {
    let child = signal(SignalKind::child())?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut warnings = Vec::new();
    let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
    let numbers = NAMED.iter().map(|s| *s as i32).chain(realtime);
    for number in numbers {
        match signal(SignalKind::from_raw(number)) {
            Ok(stream) => relay(stream, number, tx.clone()),
            Err(e) if super::stack::is_stop_signal(number) => return Err(e),
            Err(e) => {
                if ignore(number) {
                    warnings.push(format!(
                        "signal {number} cannot be handled ({e}); it is ignored"
                    ));
                } else {
                    warnings.push(format!("signal {number} cannot be handled: {e}"));
                }
            }
        }
    }
    Ok((Signals { child, rx }, warnings))
}

/// One small task per signal, turning its stream into numbers on one channel.
fn relay(mut stream: tokio::signal::unix::Signal, number: i32, tx: mpsc::UnboundedSender<i32>) {
    tokio::spawn(async move {
        while stream.recv().await.is_some() {
            if tx.send(number).is_err() {
                break;
            }
        }
    });
}

/// Sets SIG_IGN for a signal tokio cannot register (its table ends below
/// SIGRTMAX). Children get every disposition reset to the default at spawn.
fn ignore(number: i32) -> bool {
    // SAFETY: installing SIG_IGN runs no handler code, so it cannot break
    // async-signal safety; nix has no safe way for a raw real-time signal number.
    unsafe { libc::signal(number, libc::SIG_IGN) != libc::SIG_ERR }
}
