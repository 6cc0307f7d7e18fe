//! The pure lifecycle of one program: `Machine::step(input, now) -> actions`.
//!
//! No I/O and no clock of its own: inputs are facts (the process exited, a probe
//! passed, a deadline came, an operator asked), actions are commands the runtime
//! carries out (spawn, signal the process group, report, escalate). Deadlines are
//! derived from the state ([`Machine::deadline`]), so there is no timer to forget.
//! Every `(state, input)` pair is matched explicitly — no catch-all arm — so the
//! compiler points at any pair a new state or input leaves unhandled.
//!
//! | state \ input | Spawned | SpawnFailed | Exited (own pid) | Probe ok / fail | Deadline | Start | Stop | Restart | DepsReady |
//! |---|---|---|---|---|---|---|---|---|---|
//! | Waiting  | Starting¹ | restart rule | – | – | – | – | Stopped | – | Spawn |
//! | Starting | – | – | restart rule | Running(ready) / count² | – | – | Stopping(stay) | Stopping(restart) | – |
//! | Running  | – | – | restart rule | ready / count² | – | – | Stopping(stay) | Stopping(restart) | – |
//! | Stopping | – | – | Stopped / Spawn / restart rule³ | – | SIGKILL group | then=restart | then=stay | then=restart | – |
//! | Backoff  | Starting¹ | restart rule | – | – | Spawn | Spawn | Stopped | Spawn | – |
//! | Stopped  | Starting¹ | Stopped | – | – | – | Waiting | – | Waiting | – |
//! | Failed   | Starting¹ | Failed | – | – | – | Waiting | – | Waiting | – |
//!
//! ¹ `Running{ready: true}` at once when the program has no probe.
//! ² a failure counts once the start period is over; `failures` in a row →
//!   Stopping(recover): stop signal to the group, SIGKILL after `stop_timeout`.
//! ³ by what the stop was for: stay → Stopped; operator restart → Spawn at once
//!   (not counted); recover (liveness) → the restart rule, as a failure.
//!
//! The restart rule: `always` restarts on any exit, `on-failure` on a non-zero
//! code, a signal or an exec failure, `never` does not. A run of `reset_after`
//! resets the backoff attempt. More than `restart_limit.max` restarts within
//! `window` → Failed + GiveUp. Otherwise Backoff until `now + delay(attempt)`
//! (at least [`EXEC_RETRY_FLOOR`] after a failed exec).
//! "–" means the input is stale or meaningless there and is ignored.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::backoff::{self, Jitter};
use crate::config::{Backoff, Program, RestartLimit, RestartPolicy};

pub type Pid = i32;

/// Shortest delay before retrying a program whose exec failed.
pub const EXEC_RETRY_FLOOR: Duration = Duration::from_millis(100);

/// How a process ended, kept typed; numbers only at the edge ([`Termination::code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Termination {
    Exited(i32),
    Signaled {
        signal: i32,
        core_dumped: bool,
    },
    /// The program could not be executed: 127 not found, 126 not executable.
    ExecFailed {
        code: i32,
        error: String,
    },
}

impl Termination {
    pub fn success(&self) -> bool {
        matches!(self, Termination::Exited(0))
    }

    /// Shell convention: the exit code, 128 + signal, or 126/127.
    pub fn code(&self) -> i32 {
        match self {
            Termination::Exited(code) => *code,
            Termination::Signaled { signal, .. } => 128 + signal,
            Termination::ExecFailed { code, .. } => *code,
        }
    }
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Termination::Exited(code) => write!(f, "exited with code {code}"),
            Termination::Signaled {
                signal,
                core_dumped,
            } => {
                let name = Signal::try_from(*signal)
                    .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_string());
                write!(
                    f,
                    "was killed by {name}{}",
                    if *core_dumped { " (core dumped)" } else { "" }
                )
            }
            Termination::ExecFailed { error, .. } => write!(f, "could not start: {error}"),
        }
    }
}

/// Why a live process is being stopped, which decides what happens at its exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Operator stop or shutdown: stay stopped.
    Stay,
    /// Operator restart: spawn again at once, not counted as a failure.
    Restart,
    /// Liveness failure: restart per policy, counted as a failure.
    Recover,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not started yet: waiting for its dependencies.
    Waiting,
    /// Spawned; has a probe that has not passed yet.
    Starting { pid: Pid, since: Instant },
    /// Spawned and ready (first probe passed, or no probe); `ready` drops while
    /// probes fail below the threshold.
    Running {
        pid: Pid,
        since: Instant,
        ready: bool,
    },
    /// Stop signal sent; SIGKILL at `deadline` unless it exits first.
    Stopping {
        pid: Pid,
        since: Instant,
        deadline: Option<Instant>,
        then: AfterStop,
    },
    /// Waiting to restart.
    Backoff { until: Instant },
    /// Not running and not going to run until an operator starts it.
    Stopped,
    /// Gave up after too many restarts.
    Failed,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Starting { .. } => "starting",
            State::Running { ready: true, .. } => "running",
            State::Running { ready: false, .. } => "unready",
            State::Stopping { .. } => "stopping",
            State::Backoff { .. } => "backoff",
            State::Stopped => "stopped",
            State::Failed => "failed",
        }
    }

    /// The live process, if any.
    pub fn pid(&self) -> Option<Pid> {
        match self {
            State::Starting { pid, .. }
            | State::Running { pid, .. }
            | State::Stopping { pid, .. } => Some(*pid),
            State::Waiting | State::Backoff { .. } | State::Stopped | State::Failed => None,
        }
    }

    /// When the live process was spawned.
    pub fn since(&self) -> Option<Instant> {
        match self {
            State::Starting { since, .. }
            | State::Running { since, .. }
            | State::Stopping { since, .. } => Some(*since),
            State::Waiting | State::Backoff { .. } | State::Stopped | State::Failed => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Dependencies are satisfied (the runtime checks them).
    DepsReady,
    Spawned {
        pid: Pid,
    },
    SpawnFailed(Termination),
    Exited {
        pid: Pid,
        how: Termination,
    },
    Probe {
        ok: bool,
        reason: String,
    },
    /// The state's deadline has come.
    Deadline,
    Start,
    Stop,
    Restart,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Spawn,
    /// Send `signal` to the process group led by `pid`.
    Signal {
        pid: Pid,
        signal: Signal,
    },
    Report(Event),
    /// The restart limit was exceeded.
    GiveUp,
}

/// What happens after an exit, for the event line.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Restart {
        count: usize,
        window: Duration,
        delay: Duration,
    },
    /// The policy says no restart.
    Stay,
    /// It was stopped on purpose.
    Stopped,
    /// Operator restart: spawned again at once.
    Respawn,
    GiveUp {
        max: u32,
        window: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        pid: Pid,
    },
    Ready {
        pid: Pid,
        after: Duration,
    },
    NotReady {
        pid: Pid,
        reason: String,
    },
    Exited {
        pid: Pid,
        how: Termination,
        ran: Duration,
        next: Next,
    },
    SpawnFailed {
        how: Termination,
        next: Next,
    },
    Unhealthy {
        pid: Pid,
        failures: u32,
        reason: String,
    },
    Stopping {
        pid: Pid,
        signal: Signal,
    },
    Killed {
        pid: Pid,
        after: Duration,
    },
}

impl fmt::Display for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Next::Restart {
                count,
                window,
                delay,
            } => {
                write!(
                    f,
                    "restart {count} within {}; next start in {}",
                    human(*window),
                    human(*delay)
                )
            }
            Next::Stay => write!(f, "restart policy says no restart"),
            Next::Stopped => write!(f, "stopped"),
            Next::Respawn => write!(f, "restarting now"),
            Next::GiveUp { max, window } => {
                write!(
                    f,
                    "more than {max} restarts within {}: giving up",
                    human(*window)
                )
            }
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Started { pid } => write!(f, "started (pid {pid})"),
            Event::Ready { pid, after } => write!(f, "ready (pid {pid}) after {}", human(*after)),
            Event::NotReady { pid, reason } => write!(f, "not ready (pid {pid}): {reason}"),
            Event::Exited { how, ran, next, .. } => {
                write!(f, "{how} after {}; {next}", human(*ran))
            }
            Event::SpawnFailed { how, next } => write!(f, "{how}; {next}"),
            Event::Unhealthy {
                pid,
                failures,
                reason,
            } => {
                write!(f, "unhealthy (pid {pid}): {failures} probe failures in a row, last: {reason}; stopping it")
            }
            Event::Stopping { pid, signal } => {
                write!(f, "stopping (pid {pid}) with {}", signal.as_str())
            }
            Event::Killed { pid, after } => write!(
                f,
                "did not stop within {} (pid {pid}): sent SIGKILL",
                human(*after)
            ),
        }
    }
}

/// Short human durations: `0ms`, `250ms`, `12.3s`, `60s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The parts of a program's config the lifecycle needs.
#[derive(Debug, Clone)]
pub struct Policy {
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    pub limit: RestartLimit,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    /// `(failures, grace)` when the program has a probe: failures before the
    /// first pass count only after `grace` (`start_period`, at least `interval`).
    pub probe: Option<(u32, Duration)>,
}

impl Policy {
    pub fn of(p: &Program) -> Policy {
        Policy {
            restart: p.restart,
            backoff: p.backoff,
            limit: p.restart_limit,
            stop_signal: p.stop_signal,
            stop_timeout: p.stop_timeout,
            // The probe task polls fast (10ms, 20ms, … up to `interval`) until the
            // first pass, to see readiness early; those quick failures must not
            // count, or a program that needs 70ms to listen is killed in a loop.
            // So failures count from one interval after the start at the earliest.
            probe: p
                .health
                .as_ref()
                .map(|h| (h.failures, h.start_period.max(h.interval))),
        }
    }
}

/// The last probe outcome, as the operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub ok: bool,
    pub reason: String,
    pub at: Instant,
}

/// One program's lifecycle and its counters.
#[derive(Debug, Clone)]
pub struct Machine {
    pub state: State,
    policy: Policy,
    /// Restart times within the restart-limit window.
    restarts: VecDeque<Instant>,
    /// Backoff attempt since the last stable run.
    attempt: u32,
    /// Consecutive probe failures of the live process.
    failures: u32,
    pub last_exit: Option<Termination>,
    /// Restarts since the supervisor started (operator restarts included).
    pub total_restarts: u64,
    pub last_probe: Option<ProbeOutcome>,
    jitter: Jitter,
}

impl Machine {
    pub fn new(policy: Policy, seed: u64) -> Machine {
        Machine {
            state: State::Waiting,
            policy,
            restarts: VecDeque::new(),
            attempt: 0,
            failures: 0,
            last_exit: None,
            total_restarts: 0,
            last_probe: None,
            jitter: Jitter::new(seed),
        }
    }

    /// When the runtime must feed [`Input::Deadline`].
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Backoff { until } => Some(*until),
            State::Stopping { deadline, .. } => *deadline,
            State::Waiting
            | State::Starting { .. }
            | State::Running { .. }
            | State::Stopped
            | State::Failed => None,
        }
    }

    /// Whether dependants waiting for `healthy` may start.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Running { ready: true, .. })
    }

    /// Restarts counted in the current window (for the snapshot).
    pub fn recent_restarts(&self, now: Instant) -> usize {
        self.restarts
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < self.policy.limit.window)
            .count()
    }

    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let state = std::mem::replace(&mut self.state, State::Failed);
        self.state = match (state, input) {
            // Spawn results: valid wherever a spawn may have been requested.
            (
                State::Waiting | State::Backoff { .. } | State::Stopped | State::Failed,
                Input::Spawned { pid },
            ) => {
                self.failures = 0;
                self.last_probe = None; // a new incarnation has not been probed yet
                actions.push(Action::Report(Event::Started { pid }));
                if self.policy.probe.is_some() {
                    State::Starting { pid, since: now }
                } else {
                    State::Running {
                        pid,
                        since: now,
                        ready: true,
                    }
                }
            }
            (State::Waiting | State::Backoff { .. }, Input::SpawnFailed(how)) => {
                self.after_exit(None, how, Duration::ZERO, true, now, &mut actions)
            }
            (s @ (State::Stopped | State::Failed), Input::SpawnFailed(_)) => s,
            (
                s @ (State::Starting { .. } | State::Running { .. } | State::Stopping { .. }),
                Input::Spawned { .. } | Input::SpawnFailed(_),
            ) => s,

            // Waiting for dependencies.
            (State::Waiting, Input::DepsReady) => {
                actions.push(Action::Spawn);
                State::Waiting
            }
            (State::Waiting, Input::Stop) => State::Stopped,
            (
                s @ State::Waiting,
                Input::Exited { .. }
                | Input::Probe { .. }
                | Input::Deadline
                | Input::Start
                | Input::Restart,
            ) => s,

            // A live process.
            (
                State::Starting { pid, since } | State::Running { pid, since, .. },
                Input::Exited { pid: dead, how },
            ) if pid == dead => self.after_exit(
                Some(pid),
                how,
                now.saturating_duration_since(since),
                true,
                now,
                &mut actions,
            ),
            (State::Starting { pid, since }, Input::Probe { ok: true, reason }) => {
                self.passed(pid, since, false, reason, now, &mut actions)
            }
            (State::Running { pid, since, ready }, Input::Probe { ok: true, reason }) => {
                self.passed(pid, since, ready, reason, now, &mut actions)
            }
            (State::Starting { pid, since }, Input::Probe { ok: false, reason }) => {
                self.record_probe(false, reason.clone(), now);
                let grace = self.policy.probe.map_or(Duration::ZERO, |(_, grace)| grace);
                if now.saturating_duration_since(since) < grace {
                    State::Starting { pid, since }
                } else {
                    self.count_failure(pid, since, false, reason, now, &mut actions)
                }
            }
            (State::Running { pid, since, ready }, Input::Probe { ok: false, reason }) => {
                self.record_probe(false, reason.clone(), now);
                if ready {
                    actions.push(Action::Report(Event::NotReady {
                        pid,
                        reason: reason.clone(),
                    }));
                }
                self.count_failure(pid, since, true, reason, now, &mut actions)
            }
            (State::Starting { pid, since } | State::Running { pid, since, .. }, Input::Stop) => {
                self.stop(pid, since, AfterStop::Stay, now, &mut actions)
            }
            (
                State::Starting { pid, since } | State::Running { pid, since, .. },
                Input::Restart,
            ) => self.stop(pid, since, AfterStop::Restart, now, &mut actions),
            (
                s @ (State::Starting { .. } | State::Running { .. }),
                Input::Exited { .. } | Input::Deadline | Input::Start | Input::DepsReady,
            ) => s,

            // Stopping: wait for the exit, SIGKILL at the deadline.
            (
                State::Stopping {
                    pid, since, then, ..
                },
                Input::Exited { pid: dead, how },
            ) if pid == dead => {
                let ran = now.saturating_duration_since(since);
                match then {
                    AfterStop::Stay => {
                        self.last_exit = Some(how.clone());
                        actions.push(Action::Report(Event::Exited {
                            pid,
                            how,
                            ran,
                            next: Next::Stopped,
                        }));
                        State::Stopped
                    }
                    AfterStop::Restart => {
                        self.last_exit = Some(how.clone());
                        self.total_restarts += 1;
                        actions.push(Action::Report(Event::Exited {
                            pid,
                            how,
                            ran,
                            next: Next::Respawn,
                        }));
                        actions.push(Action::Spawn);
                        State::Backoff { until: now }
                    }
                    AfterStop::Recover => {
                        self.after_exit(Some(pid), how, ran, false, now, &mut actions)
                    }
                }
            }
            (
                State::Stopping {
                    pid,
                    since,
                    deadline: Some(_),
                    then,
                },
                Input::Deadline,
            ) => {
                actions.push(Action::Signal {
                    pid,
                    signal: Signal::SIGKILL,
                });
                actions.push(Action::Report(Event::Killed {
                    pid,
                    after: self.policy.stop_timeout,
                }));
                State::Stopping {
                    pid,
                    since,
                    deadline: None,
                    then,
                }
            }
            (
                State::Stopping {
                    pid,
                    since,
                    deadline,
                    ..
                },
                Input::Stop,
            ) => State::Stopping {
                pid,
                since,
                deadline,
                then: AfterStop::Stay,
            },
            (
                State::Stopping {
                    pid,
                    since,
                    deadline,
                    then,
                },
                Input::Start | Input::Restart,
            ) => {
                let then = if then == AfterStop::Stay {
                    AfterStop::Restart
                } else {
                    then
                };
                State::Stopping {
                    pid,
                    since,
                    deadline,
                    then,
                }
            }
            (
                s @ State::Stopping { .. },
                Input::Exited { .. } | Input::Probe { .. } | Input::Deadline | Input::DepsReady,
            ) => s,

            // Backoff: spawn at the deadline, or at once when asked.
            (State::Backoff { .. }, Input::Deadline | Input::Start | Input::Restart) => {
                actions.push(Action::Spawn);
                State::Backoff { until: now }
            }
            (State::Backoff { .. }, Input::Stop) => State::Stopped,
            (
                s @ State::Backoff { .. },
                Input::Exited { .. } | Input::Probe { .. } | Input::DepsReady,
            ) => s,

            // At rest: an operator start begins afresh (dependencies first).
            (State::Stopped | State::Failed, Input::Start | Input::Restart) => {
                self.restarts.clear();
                self.attempt = 0;
                State::Waiting
            }
            (
                s @ (State::Stopped | State::Failed),
                Input::Exited { .. }
                | Input::Probe { .. }
                | Input::Deadline
                | Input::Stop
                | Input::DepsReady,
            ) => s,
        };
        actions
    }

    /// A passing probe: ready (reported when it was not), failure count cleared.
    fn passed(
        &mut self,
        pid: Pid,
        since: Instant,
        was_ready: bool,
        reason: String,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        self.record_probe(true, reason, now);
        self.failures = 0;
        if !was_ready {
            let after = now.saturating_duration_since(since);
            actions.push(Action::Report(Event::Ready { pid, after }));
        }
        State::Running {
            pid,
            since,
            ready: true,
        }
    }

    fn record_probe(&mut self, ok: bool, reason: String, now: Instant) {
        self.last_probe = Some(ProbeOutcome {
            ok,
            reason,
            at: now,
        });
    }

    fn count_failure(
        &mut self,
        pid: Pid,
        since: Instant,
        ready_before: bool,
        reason: String,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        self.failures += 1;
        let threshold = self.policy.probe.map_or(u32::MAX, |(n, _)| n);
        if self.failures >= threshold {
            actions.push(Action::Report(Event::Unhealthy {
                pid,
                failures: self.failures,
                reason,
            }));
            return self.stop(pid, since, AfterStop::Recover, now, actions);
        }
        if ready_before {
            State::Running {
                pid,
                since,
                ready: false,
            }
        } else {
            State::Starting { pid, since }
        }
    }

    fn stop(
        &mut self,
        pid: Pid,
        since: Instant,
        then: AfterStop,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        let signal = self.policy.stop_signal;
        actions.push(Action::Report(Event::Stopping { pid, signal }));
        actions.push(Action::Signal { pid, signal });
        State::Stopping {
            pid,
            since,
            deadline: Some(now + self.policy.stop_timeout),
            then,
        }
    }

    /// The restart rule, after an exit (or a failed spawn: `pid` is `None`).
    /// `by_policy`: the exit was the program's own doing, so `on-failure` looks at
    /// its status; a liveness stop always counts as a failure.
    fn after_exit(
        &mut self,
        pid: Option<Pid>,
        how: Termination,
        ran: Duration,
        by_policy: bool,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        self.last_exit = Some(how.clone());
        self.failures = 0;
        if ran >= self.policy.backoff.reset_after {
            self.attempt = 0;
        }
        let failed = !how.success() || !by_policy;
        let restart = match self.policy.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        };
        let window = self.policy.limit.window;
        while self
            .restarts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.restarts.pop_front();
        }
        let mut follow = None;
        let (next, state) = if !restart {
            (Next::Stay, State::Stopped)
        } else if self.restarts.len() >= self.policy.limit.max as usize {
            follow = Some(Action::GiveUp);
            (
                Next::GiveUp {
                    max: self.policy.limit.max,
                    window,
                },
                State::Failed,
            )
        } else {
            self.restarts.push_back(now);
            self.total_restarts += 1;
            self.attempt = self.attempt.saturating_add(1);
            let mut delay =
                backoff::delay(&self.policy.backoff, self.attempt, self.jitter.next_unit());
            if pid.is_none() {
                // A program that cannot even be executed will not fix itself in
                // a hot loop: never retry a failed exec sooner than this.
                delay = delay.max(EXEC_RETRY_FLOOR);
            }
            if delay.is_zero() {
                follow = Some(Action::Spawn);
            }
            (
                Next::Restart {
                    count: self.restarts.len(),
                    window,
                    delay,
                },
                State::Backoff { until: now + delay },
            )
        };
        // The report goes first so the log reads in causal order.
        actions.push(Action::Report(match pid {
            Some(pid) => Event::Exited {
                pid,
                how,
                ran,
                next,
            },
            None => Event::SpawnFailed { how, next },
        }));
        actions.extend(follow);
        state
    }
}

#[cfg(test)]
mod tests;
