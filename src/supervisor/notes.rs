//! The supervisor's own events (as opposed to one program's [`super::state::Event`]):
//! typed values, formatted only at the edge.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::stack::AdminVerb;
use super::state::{human, signal_name, Termination};
use crate::exit::Exit;

#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// The first TERM/INT/QUIT; `already`: a shutdown (a give-up) was under way.
    StopSignal {
        signal: i32,
        already: bool,
    },
    /// A stop signal repeated within `grace` of the first: ignored.
    DuplicateSignal {
        signal: i32,
        grace: Duration,
    },
    /// A stop signal repeated after the grace: SIGKILL to everything.
    Forcing {
        signal: i32,
    },
    Forwarded {
        signal: i32,
        programs: usize,
    },
    /// No program declares the signal in `forward_signals`.
    NotForwarded {
        signal: i32,
    },
    GaveUp {
        program: Arc<str>,
        exiting: bool,
    },
    Operator {
        program: Arc<str>,
        verb: AdminVerb,
    },
    ShutdownTimeout,
    Sweep {
        signal: Signal,
    },
    SweepKill,
    Exiting {
        exit: Exit,
    },
    /// A signal went to the main program (`sent` after `--rewrite`; 0: dropped).
    ToMain {
        signal: i32,
        sent: i32,
    },
    /// `--stop-timeout` passed after a stop signal: SIGKILL to the main program.
    MainKilled,
    MainEnded {
        code: u8,
    },
    /// SIGHUP with no program declaring it: the config is re-read.
    Reloading,
    /// A surge restart began: the next process starts beside the serving one.
    SurgeStarted {
        program: Arc<str>,
    },
    /// The new process is ready: the old one is being stopped (it drains).
    SurgeDone {
        program: Arc<str>,
    },
    /// The new process did not become ready: it is stopped, the old one serves on.
    SurgeFailed {
        program: Arc<str>,
    },
    /// Every instance of a rolling restart was replaced.
    RolloutDone {
        program: Arc<str>,
    },
    /// A rolling restart stopped at a replacement that failed.
    RolloutFailed {
        program: Arc<str>,
        left: usize,
    },
    /// A process that was no program's leader was reaped; `program` when it
    /// was in that program's process group.
    OrphanReaped {
        pid: i32,
        program: Option<Arc<str>>,
        how: Termination,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::StopSignal { signal, already: false } => write!(
                f,
                "received {}: stopping all programs (dependants first)",
                signal_name(*signal)
            ),
            Note::StopSignal { signal, already: true } => write!(
                f,
                "received {}: the shutdown is already under way",
                signal_name(*signal)
            ),
            Note::DuplicateSignal { signal, grace } => write!(
                f,
                "received {} again within {}: ignored (send it again later to force)",
                signal_name(*signal),
                human(*grace)
            ),
            Note::Forcing { signal } => write!(
                f,
                "received {} again: forcing (SIGKILL to every program)",
                signal_name(*signal)
            ),
            Note::Forwarded { signal, programs } => write!(
                f,
                "received {}: forwarded to {programs} program(s) that declare it",
                signal_name(*signal)
            ),
            Note::NotForwarded { signal } => write!(
                f,
                "received {}: no program declares it in forward_signals; ignored",
                signal_name(*signal)
            ),
            Note::GaveUp {
                program,
                exiting: true,
            } => write!(
                f,
                "{program} failed: stopping everything and exiting with code 3 (on_give_up = \"exit\")"
            ),
            Note::GaveUp {
                program,
                exiting: false,
            } => write!(
                f,
                "{program} failed: left as it is (on_give_up = \"stay\"); `selfheal start {program}` brings it back"
            ),
            Note::Operator { program, verb } => {
                write!(f, "{program}: {} requested by the operator", verb.as_str())
            }
            Note::ShutdownTimeout => write!(
                f,
                "shutdown_timeout reached: sending SIGKILL to every program still running"
            ),
            Note::Sweep { signal } => write!(
                f,
                "all programs stopped; sending {} to leftover processes",
                signal.as_str()
            ),
            Note::SweepKill => write!(f, "leftover processes did not exit: sending SIGKILL"),
            Note::ToMain { signal, sent } if signal == sent => {
                write!(f, "received {}: forwarded to the main program", signal_name(*signal))
            }
            Note::ToMain { signal, sent: 0 } => {
                write!(f, "received {}: dropped (--rewrite)", signal_name(*signal))
            }
            Note::ToMain { signal, sent } => write!(
                f,
                "received {}: sent {} to the main program (--rewrite)",
                signal_name(*signal),
                signal_name(*sent)
            ),
            Note::MainKilled => write!(
                f,
                "the main program did not exit within --stop-timeout: sent SIGKILL to its group"
            ),
            Note::MainEnded { code } => {
                write!(f, "the main program ended (code {code}): stopping the rest")
            }
            Note::Exiting { exit } => write!(
                f,
                "all programs stopped; exiting with code {}",
                exit.code()
            ),
            Note::Reloading => write!(f, "received SIGHUP: reloading the config"),
            Note::SurgeStarted { program } => write!(
                f,
                "{program}: restarting without downtime: the next process starts beside the serving one"
            ),
            Note::SurgeDone { program } => write!(
                f,
                "{program}: the new process is ready; the old one is stopping (it drains)"
            ),
            Note::SurgeFailed { program } => write!(
                f,
                "{program}: the new process did not become ready; it is stopped and the old one keeps serving"
            ),
            Note::RolloutDone { program } => write!(f, "{program}: restart done"),
            Note::RolloutFailed { program, left } => write!(
                f,
                "{program}: restart failed; {left} more instance(s) left as they were"
            ),
            Note::OrphanReaped {
                pid,
                program: Some(program),
                how,
            } => write!(f, "reaped orphan pid {pid} of {program}'s process group ({how})"),
            Note::OrphanReaped {
                pid,
                program: None,
                how,
            } => write!(f, "reaped orphan pid {pid} ({how})"),
        }
    }
}

impl Note {
    /// The machine-readable kind (`events::Record::kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Note::StopSignal { .. } | Note::DuplicateSignal { .. } | Note::Forcing { .. } => {
                "signal"
            }
            Note::Forwarded { .. } | Note::NotForwarded { .. } | Note::ToMain { .. } => "signal",
            Note::GaveUp { .. } => "gave_up",
            Note::Operator { .. } => "operator",
            Note::ShutdownTimeout | Note::Sweep { .. } | Note::SweepKill | Note::MainKilled => {
                "shutdown"
            }
            Note::MainEnded { .. } => "main_ended",
            Note::Exiting { .. } => "exiting",
            Note::OrphanReaped { .. } => "orphan_reaped",
            Note::Reloading => "reload",
            Note::SurgeStarted { .. } | Note::SurgeDone { .. } | Note::SurgeFailed { .. } => {
                "surge"
            }
            Note::RolloutDone { .. } | Note::RolloutFailed { .. } => "rollout",
        }
    }

    /// The program the note is about, if any.
    pub fn program(&self) -> Option<Arc<str>> {
        match self {
            Note::GaveUp { program, .. } | Note::Operator { program, .. } => Some(program.clone()),
            Note::OrphanReaped { program, .. } => program.clone(),
            Note::SurgeStarted { program }
            | Note::SurgeDone { program }
            | Note::SurgeFailed { program }
            | Note::RolloutDone { program }
            | Note::RolloutFailed { program, .. } => Some(program.clone()),
            _ => None,
        }
    }

    /// The note's facts as JSON fields (signals by name, durations in ms).
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let value = match self {
            Note::StopSignal { signal, already } => {
                json!({ "signal": signal_name(*signal), "action": "stop", "already": already })
            }
            Note::DuplicateSignal { signal, grace } => json!({
                "signal": signal_name(*signal), "action": "ignored",
                "grace_ms": grace.as_millis() as u64,
            }),
            Note::Forcing { signal } => {
                json!({ "signal": signal_name(*signal), "action": "force" })
            }
            Note::Forwarded { signal, programs } => json!({
                "signal": signal_name(*signal), "action": "forward", "programs": programs,
            }),
            Note::NotForwarded { signal } => {
                json!({ "signal": signal_name(*signal), "action": "ignored" })
            }
            Note::ToMain { signal, sent } => json!({
                "signal": signal_name(*signal), "action": "forward",
                "sent": (*sent != 0).then(|| signal_name(*sent)),
            }),
            Note::GaveUp { exiting, .. } => json!({ "exiting": exiting }),
            Note::Operator { verb, .. } => json!({ "verb": verb.as_str() }),
            Note::ShutdownTimeout => json!({ "step": "timeout" }),
            Note::Sweep { signal } => json!({ "step": "sweep", "signal": signal.as_str() }),
            Note::SweepKill => json!({ "step": "sweep", "signal": "SIGKILL" }),
            Note::MainKilled => json!({ "step": "main_killed", "signal": "SIGKILL" }),
            Note::MainEnded { code } => json!({ "code": code }),
            Note::Exiting { exit } => json!({ "code": exit.code() }),
            Note::OrphanReaped { pid, how, .. } => json!({ "pid": pid, "code": how.code() }),
            Note::Reloading => json!({ "signal": "SIGHUP" }),
            Note::SurgeStarted { .. } => json!({ "step": "started" }),
            Note::SurgeDone { .. } => json!({ "step": "done", "ok": true }),
            Note::SurgeFailed { .. } => json!({ "step": "done", "ok": false }),
            Note::RolloutDone { .. } => json!({ "ok": true }),
            Note::RolloutFailed { left, .. } => json!({ "ok": false, "left": left }),
        };
        super::events::fields(value)
    }
}
