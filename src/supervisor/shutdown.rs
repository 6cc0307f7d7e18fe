//! Ordered shutdown: the owner stops programs dependants-first (see
//! `Supervisor::progress_shutdown`); this tracks the phases around it — the
//! global `shutdown_timeout`, a forced shutdown on a second signal, and the final
//! sweep of leftover processes (orphans, daemons) before exiting.

use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;

use super::logs::Output;
use super::reaper;
use super::Slot;
use crate::exit::Exit;

/// How long leftover processes get between SIGTERM and SIGKILL in the sweep.
const SWEEP_GRACE: Duration = Duration::from_secs(2);

pub struct Shutdown {
    exit: Exit,
    /// `shutdown_timeout`: past it every live group is SIGKILLed.
    deadline: Option<Instant>,
    forced: bool,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Programs are being stopped in order.
    Programs,
    /// All programs are down; leftovers were sent SIGTERM, SIGKILL at `kill_at`.
    Sweep { kill_at: Option<Instant> },
}

impl Shutdown {
    pub fn new(exit: Exit, deadline: Instant) -> Shutdown {
        Shutdown {
            exit,
            deadline: Some(deadline),
            forced: false,
            phase: Phase::Programs,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Programs => self.deadline,
            Phase::Sweep { kill_at } => kill_at,
        }
    }

    pub fn on_deadline(&mut self, now: Instant, slots: &[Slot], output: &Output) {
        match self.phase {
            Phase::Programs if self.deadline.is_some_and(|d| d <= now) => {
                self.deadline = None;
                output.note(
                    "shutdown_timeout reached: sending SIGKILL to every program still running",
                );
                kill_all(slots);
            }
            Phase::Sweep { kill_at: Some(at) } if at <= now => {
                self.phase = Phase::Sweep { kill_at: None };
                output.note("leftover processes did not exit: sending SIGKILL");
                sweep(Signal::SIGKILL);
            }
            Phase::Programs | Phase::Sweep { .. } => {}
        }
    }

    /// A second SIGTERM/SIGINT: no more waiting.
    pub fn force(&mut self, slots: &[Slot]) {
        self.forced = true;
        self.exit = Exit::Forced;
        self.deadline = None;
        kill_all(slots);
        if let Phase::Sweep { .. } = self.phase {
            sweep(Signal::SIGKILL);
        }
    }

    /// Nothing to do here: `progress` checks for children on every turn.
    pub fn children_changed(&mut self) {}

    /// Called after every event; the exit code once nothing is left.
    pub fn progress(&mut self, programs_down: bool, _pid1: bool, output: &Output) -> Option<Exit> {
        if !programs_down {
            return None;
        }
        if !reaper::has_children() {
            output.note(&format!(
                "all programs stopped; exiting with code {}",
                self.exit.code()
            ));
            return Some(self.exit);
        }
        if self.phase == Phase::Programs {
            let signal = if self.forced {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            output.note(&format!(
                "all programs stopped; sending {} to leftover processes",
                signal.as_str()
            ));
            sweep(signal);
            let kill_at = (!self.forced).then(|| Instant::now() + SWEEP_GRACE);
            self.phase = Phase::Sweep { kill_at };
        }
        None
    }
}

fn kill_all(slots: &[Slot]) {
    for slot in slots {
        if let Some(pid) = slot.machine.state.pid() {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Signals every process left: as PID 1, everything in the namespace
/// (`kill(-1)`); otherwise our direct children (orphans re-parented to us as
/// subreaper), found in /proc — never `kill(-1)` on a shared host.
fn sweep(signal: Signal) {
    if std::process::id() == 1 {
        let _ = kill(Pid::from_raw(-1), signal);
        return;
    }
    for pid in children_of(std::process::id()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Pids whose parent is `parent`, from /proc/*/stat.
fn children_of(parent: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit_once(") ")
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                })
                == Some(parent)
        })
        .collect()
}
