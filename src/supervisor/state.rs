//! The pure lifecycle of one program: `Machine::step(input, now) -> actions`.
//!
//! No I/O and no clock of its own: inputs are facts (the process exited, its
//! process group emptied, a probe passed, a deadline came, an operator asked),
//! actions are commands the runtime carries out (spawn, signal the process group,
//! check the group, report, escalate). Deadlines are derived from the state
//! ([`Machine::deadline`]), so there is no timer to forget. Every `(state, input)`
//! pair is matched explicitly — no catch-all arm — so the compiler points at any
//! pair a new state or input leaves unhandled. What spans programs (dependencies,
//! give-up, shutdown, signals) is [`super::stack`]'s.
//!
//! | state \ input | Spawned | SpawnFailed | Exited (own pid) | GroupGone | Probe ok / fail | Deadline | Start | Stop | Restart | DepsReady |
//! |---|---|---|---|---|---|---|---|---|---|---|
//! | Waiting  | Starting¹ | restart rule | – | – | – | – | – | Stopped | – | Spawn |
//! | Starting | – | – | restart rule⁴ | – | Running(ready) / count² | – | – | Stopping(stay) | Stopping(restart) | – |
//! | Running  | – | – | restart rule⁴ | – | ready / count² | – | – | Stopping(stay) | Stopping(restart) | – |
//! | Stopping | – | – | finish³ or wait for the group | finish³ | – | SIGKILL group / check group | then=restart | then=stay | then=restart | – |
//! | Backoff  | Starting¹ | restart rule | – | – | – | Spawn | Spawn | Stopped | Spawn | – |
//! | Stopped, Exited, Failed | Starting¹ | unchanged | – | – | – | – | Waiting | – | Waiting | – |
//!
//! `Replace` (memory limit, traffic health) → Stopping(recover) in Starting and
//! Running, as a liveness failure; ignored ("–") in every other state.
//!
//! `Suspended`/`Continued` (the leader was stopped with SIGSTOP/SIGTSTP, or
//! continued) only flip [`Machine::suspended`], in any state with that pid.
//!
//! ¹ `Running{ready: true}` at once when the program has no probe.
//! ² a failure counts once the start period is over; `failures` in a row →
//!   Stopping(recover): stop signal and SIGCONT to the group, SIGKILL after `stop_timeout`.
//! ³ by what the stop was for: stay → Stopped; operator restart → Spawn at once
//!   (not counted); recover (liveness) → the restart rule, as a failure; crashed
//!   (the leader exited while its group lived on) → the restart rule.
//! ⁴ when the leader exits but its process group lives on, the group gets the stop
//!   signal (SIGKILL after `stop_timeout`) and the restart rule waits until the
//!   group is empty (Stopping(crashed)): the next incarnation never meets the last
//!   one's workers on its port. A leader that exits 0 at once leaving a live
//!   process re-parented to the supervisor daemonized itself: Failed + GiveUp.
//!
//! The restart rule: `always` restarts on any exit, `on-failure` on a non-zero
//! code, a signal or an exec failure, `never` does not (Exited after code 0,
//! Failed otherwise). A run that stayed *ready* for `reset_after` is stable: it
//! resets both the backoff attempt and the restart-limit count (as pm2's
//! `min_uptime` and supervisord's `startsecs` count only unstable runs). More than
//! `restart_limit.max` unstable restarts within `window` → Failed + GiveUp.
//! Otherwise Backoff until `now + delay(attempt)` (at least [`EXEC_RETRY_FLOOR`]
//! after a failed exec). "–" means the input is stale or meaningless there and is
//! ignored.

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

/// How often a process group whose leader is gone is checked for emptiness.
/// Members re-parented to the supervisor are seen at once through SIGCHLD; this
/// bounds the wait for members that are some other live process's children.
pub const GROUP_RECHECK: Duration = Duration::from_millis(100);

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
                write!(
                    f,
                    "was killed by {}{}",
                    signal_name(*signal),
                    if *core_dumped { " (core dumped)" } else { "" }
                )
            }
            Termination::ExecFailed { error, .. } => write!(f, "could not start: {error}"),
        }
    }
}

/// `SIGTERM`, or `signal 42` for numbers nix has no name for (real-time signals).
pub fn signal_name(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().into())
}

/// Why a live process is being stopped, which decides what happens once it and
/// its process group are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Operator stop or shutdown: stay stopped.
    Stay,
    /// Operator restart: spawn again at once, not counted as a failure.
    Restart,
    /// Liveness failure: restart per policy, counted as a failure.
    Recover,
    /// The leader exited on its own but its group lived on: the restart rule
    /// applies to the leader's exit once the group is gone.
    Crashed,
}

/// The leader's end, kept while its process group drains.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderExit {
    pub how: Termination,
    pub ran: Duration,
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
    /// Stop signal sent to the group `pid` leads (see [`Stopping`]).
    Stopping(Stopping),
    /// Waiting to restart.
    Backoff { until: Instant },
    /// Stopped by an operator (or the shutdown); runs again on `selfheal start`.
    Stopped,
    /// Ended on its own with code 0 and its restart policy says no restart: done.
    Exited,
    /// Will not run again by itself: see [`Machine::failure`].
    Failed,
}

impl State {
    /// The program's live process group (led by this pid), if any.
    pub fn pid(&self) -> Option<Pid> {
        match self {
            State::Starting { pid, .. }
            | State::Running { pid, .. }
            | State::Stopping(Stopping { pid, .. }) => Some(*pid),
            State::Waiting
            | State::Backoff { .. }
            | State::Stopped
            | State::Exited
            | State::Failed => None,
        }
    }

    /// When its live process was spawned (starting or running).
    pub fn since(&self) -> Option<Instant> {
        match self {
            State::Starting { since, .. } | State::Running { since, .. } => Some(*since),
            State::Waiting
            | State::Stopping(_)
            | State::Backoff { .. }
            | State::Stopped
            | State::Exited
            | State::Failed => None,
        }
    }

    /// The live leader process (not a group whose leader is already gone).
    pub fn leader(&self) -> Option<Pid> {
        match self {
            State::Stopping(Stopping {
                leader: Some(_), ..
            }) => None,
            other => other.pid(),
        }
    }
}

/// What was left behind when a leader exited (found by the runtime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// Nothing: the process group is empty.
    Nothing,
    /// Members of its process group are still alive.
    Group,
    /// The leader exited 0 at once and these processes, re-parented to the
    /// supervisor and started after it, live on: it daemonized itself.
    Daemon(Vec<Pid>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Dependencies are satisfied (the stack checks them).
    DepsReady,
    Spawned {
        pid: Pid,
    },
    SpawnFailed(Termination),
    Exited {
        pid: Pid,
        how: Termination,
        left: Leftover,
    },
    /// The process group led by `pgid` has no member left.
    GroupGone {
        pgid: Pid,
    },
    /// The leader was stopped (SIGSTOP/SIGTSTP…) or continued.
    Suspended {
        pid: Pid,
        suspended: bool,
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
    /// The live incarnation is unhealthy by another measure than its probe
    /// (memory limit, traffic health): stopped and restarted as after a
    /// liveness failure (counted, per policy). Ignored unless live.
    Replace,
}

impl Input {
    /// An exit that left nothing behind.
    pub fn exited(pid: Pid, how: Termination) -> Input {
        Input::Exited {
            pid,
            how,
            left: Leftover::Nothing,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Spawn,
    /// Send `signal` to the process group led by `pid`.
    Signal {
        pid: Pid,
        signal: Signal,
    },
    /// Find out whether the group led by `pgid` is empty ([`Input::GroupGone`]).
    CheckGroup {
        pgid: Pid,
    },
    Report(Event),
    /// The program will not run again by itself: the stack applies `on_give_up`.
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
    /// Ended well and the policy says no restart.
    Done,
    /// The policy says no restart after a failure.
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

/// Why a program is `failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// More than `max` unstable restarts within `window`.
    GaveUp { max: u32, window: Duration },
    /// It failed and its restart policy says no restart.
    Crashed,
    /// It daemonized itself, leaving these processes.
    Daemonized(Vec<Pid>),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::GaveUp { max, window } => write!(
                f,
                "gave up after more than {max} restarts within {}",
                human(*window)
            ),
            Failure::Crashed => write!(f, "failed and its restart policy says no restart"),
            Failure::Daemonized(pids) => write!(
                f,
                "daemonized itself (left {}); run it in the foreground",
                pid_list(pids)
            ),
        }
    }
}

fn pid_list(pids: &[Pid]) -> String {
    let list: Vec<String> = pids.iter().map(|p| format!("pid {p}")).collect();
    list.join(", ")
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
    /// The leader exited but its process group lives on: it is being stopped.
    GroupLeft {
        pid: Pid,
        how: Termination,
        signal: Signal,
    },
    Daemonized {
        pid: Pid,
        left: Vec<Pid>,
    },
    Suspended {
        pid: Pid,
        suspended: bool,
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
            Next::Done => write!(f, "done (restart policy says no restart)"),
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
                "did not stop within {} (pid {pid}): sent SIGKILL to its process group",
                human(*after)
            ),
            Event::GroupLeft { pid, how, signal } => write!(
                f,
                "(pid {pid}) {how}, but processes of its group live on: sending {} to the group before the next start",
                signal.as_str()
            ),
            Event::Daemonized { pid, left } => write!(
                f,
                "(pid {pid}) exited with code 0 at once, leaving {} running: it daemonized itself, which the supervisor cannot follow; run it in the foreground (e.g. redis-server --daemonize no)",
                pid_list(left)
            ),
            Event::Suspended { pid, suspended: true } => {
                write!(f, "suspended (pid {pid} was stopped by a signal)")
            }
            Event::Suspended { pid, suspended: false } => write!(f, "continued (pid {pid})"),
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
#[derive(Debug, Clone, PartialEq)]
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
    /// Times of unstable restarts within the restart-limit window.
    restarts: VecDeque<Instant>,
    /// Backoff attempt since the last stable run.
    attempt: u32,
    /// Consecutive probe failures of the live process.
    failures: u32,
    /// When the live process first became ready.
    ready_since: Option<Instant>,
    /// The leader is stopped (T state) by a signal.
    pub suspended: bool,
    pub last_exit: Option<Termination>,
    /// Why the program is `failed`, while it is.
    pub failure: Option<Failure>,
    /// Restarts since the supervisor started (operator restarts included).
    pub total_restarts: u64,
    pub last_probe: Option<ProbeOutcome>,
    jitter: Jitter,
}

impl Machine {
    /// Its policy (restart rule, backoff, probe…).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn new(policy: Policy, seed: u64) -> Machine {
        Machine {
            state: State::Waiting,
            policy,
            restarts: VecDeque::new(),
            attempt: 0,
            failures: 0,
            ready_since: None,
            suspended: false,
            last_exit: None,
            failure: None,
            total_restarts: 0,
            last_probe: None,
            jitter: Jitter::new(seed),
        }
    }

    /// The operator-facing state name: waiting, starting, running, unready,
    /// suspended, stopping, backoff, stopped, exited, failed.
    pub fn state_name(&self) -> &'static str {
        match &self.state {
            State::Starting { .. } | State::Running { .. } if self.suspended => "suspended",
            State::Waiting => "waiting",
            State::Starting { .. } => "starting",
            State::Running { ready: true, .. } => "running",
            State::Running { ready: false, .. } => "unready",
            State::Stopping(_) => "stopping",
            State::Backoff { .. } => "backoff",
            State::Stopped => "stopped",
            State::Exited => "exited",
            State::Failed => "failed",
        }
    }

    /// When the runtime must feed [`Input::Deadline`].
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Backoff { until } => Some(*until),
            State::Stopping(Stopping {
                kill_at,
                recheck_at,
                ..
            }) => match (kill_at, recheck_at) {
                (Some(a), Some(b)) => Some(*a.min(b)),
                (a, b) => a.or(*b),
            },
            State::Waiting
            | State::Starting { .. }
            | State::Running { .. }
            | State::Stopped
            | State::Exited
            | State::Failed => None,
        }
    }

    /// Whether dependants waiting for `healthy` may start.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Running { ready: true, .. }) && !self.suspended
    }

    /// Unstable restarts counted in the current window (for the snapshot).
    pub fn recent_restarts(&self, now: Instant) -> usize {
        self.restarts
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < self.policy.limit.window)
            .count()
    }

    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let state = std::mem::replace(&mut self.state, State::Failed);
        self.state = match state {
            State::Waiting => self.waiting(input, now, &mut actions),
            State::Starting { pid, since } => self.live(pid, since, None, input, now, &mut actions),
            State::Running { pid, since, ready } => {
                self.live(pid, since, Some(ready), input, now, &mut actions)
            }
            State::Stopping(s) => self.stopping(s, input, now, &mut actions),
            State::Backoff { until } => self.backoff(until, input, now, &mut actions),
            s @ (State::Stopped | State::Exited | State::Failed) => {
                self.at_rest(s, input, now, &mut actions)
            }
        };
        actions
    }

    /// Waiting for dependencies.
    fn waiting(&mut self, input: Input, now: Instant, actions: &mut Vec<Action>) -> State {
        match input {
            Input::DepsReady => {
                actions.push(Action::Spawn);
                State::Waiting
            }
            Input::Spawned { pid } => self.spawned(pid, now, actions),
            Input::SpawnFailed(how) => {
                self.after_exit(None, how, Duration::ZERO, true, now, actions)
            }
            Input::Stop => State::Stopped,
            Input::Exited { .. }
            | Input::GroupGone { .. }
            | Input::Suspended { .. }
            | Input::Probe { .. }
            | Input::Replace
            | Input::Deadline
            | Input::Start
            | Input::Restart => State::Waiting,
        }
    }

    /// A live process: Starting (`ready` is `None`) or Running.
    fn live(
        &mut self,
        pid: Pid,
        since: Instant,
        ready: Option<bool>,
        input: Input,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        let unchanged = || match ready {
            None => State::Starting { pid, since },
            Some(ready) => State::Running { pid, since, ready },
        };
        match input {
            Input::Exited {
                pid: dead,
                how,
                left,
            } if dead == pid => self.leader_exited(pid, since, how, left, now, actions),
            Input::Probe { ok: true, reason } => {
                self.passed(pid, since, ready == Some(true), reason, now, actions)
            }
            Input::Probe { ok: false, reason } => {
                self.probe_failed(pid, since, ready, reason, now, actions)
            }
            Input::Suspended { pid: p, suspended } if p == pid => {
                self.set_suspended(pid, suspended, actions);
                unchanged()
            }
            Input::Stop => self.stop(pid, since, AfterStop::Stay, now, actions),
            Input::Restart => self.stop(pid, since, AfterStop::Restart, now, actions),
            // The liveness path without the probe count: a signal from
            // elsewhere (memory, traffic) says this incarnation is unhealthy.
            Input::Replace => self.stop(pid, since, AfterStop::Recover, now, actions),
            Input::Exited { .. }
            | Input::Suspended { .. }
            | Input::GroupGone { .. }
            | Input::Spawned { .. }
            | Input::SpawnFailed(_)
            | Input::Deadline
            | Input::Start
            | Input::DepsReady => unchanged(),
        }
    }

    fn set_suspended(&mut self, pid: Pid, suspended: bool, actions: &mut Vec<Action>) {
        if self.suspended != suspended {
            self.suspended = suspended;
            actions.push(Action::Report(Event::Suspended { pid, suspended }));
        }
    }

    /// The leader of a live program exited on its own.
    fn leader_exited(
        &mut self,
        pid: Pid,
        since: Instant,
        how: Termination,
        left: Leftover,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        let ran = now.saturating_duration_since(since);
        match left {
            Leftover::Nothing => self.after_exit(Some(pid), how, ran, true, now, actions),
            Leftover::Daemon(left) => {
                self.last_exit = Some(how);
                self.failure = Some(Failure::Daemonized(left.clone()));
                actions.push(Action::Report(Event::Daemonized { pid, left }));
                actions.push(Action::GiveUp);
                State::Failed
            }
            Leftover::Group => {
                let signal = self.policy.stop_signal;
                actions.push(Action::Report(Event::GroupLeft {
                    pid,
                    how: how.clone(),
                    signal,
                }));
                self.signal_stop(pid, actions);
                State::Stopping(Stopping {
                    pid,
                    since,
                    kill_at: Some(now + self.policy.stop_timeout),
                    then: AfterStop::Crashed,
                    leader: Some(LeaderExit { how, ran }),
                    recheck_at: Some(now + GROUP_RECHECK),
                })
            }
        }
    }

    fn probe_failed(
        &mut self,
        pid: Pid,
        since: Instant,
        ready: Option<bool>,
        reason: String,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        self.record_probe(false, reason.clone(), now);
        match ready {
            None => {
                let grace = self.policy.probe.map_or(Duration::ZERO, |(_, grace)| grace);
                if now.saturating_duration_since(since) < grace {
                    return State::Starting { pid, since };
                }
            }
            Some(true) => actions.push(Action::Report(Event::NotReady {
                pid,
                reason: reason.clone(),
            })),
            Some(false) => {}
        }
        self.count_failure(pid, since, ready.is_some(), reason, now, actions)
    }

    /// Stop signal sent: wait for the leader and its group; SIGKILL at `kill_at`.
    fn stopping(
        &mut self,
        mut s: Stopping,
        input: Input,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        match input {
            Input::Exited { pid, how, left } if pid == s.pid && s.leader.is_none() => {
                let ran = now.saturating_duration_since(s.since);
                if left == Leftover::Group {
                    s.leader = Some(LeaderExit { how, ran });
                    s.recheck_at = Some(now + GROUP_RECHECK);
                    return State::Stopping(s);
                }
                self.finish_stop(s.pid, s.then, LeaderExit { how, ran }, now, actions)
            }
            Input::GroupGone { pgid } if pgid == s.pid => match s.leader.take() {
                Some(leader) => self.finish_stop(s.pid, s.then, leader, now, actions),
                None => State::Stopping(s),
            },
            Input::Deadline => {
                self.stopping_deadline(&mut s, now, actions);
                State::Stopping(s)
            }
            Input::Stop => {
                s.then = AfterStop::Stay;
                State::Stopping(s)
            }
            Input::Start | Input::Restart => {
                if s.then == AfterStop::Stay {
                    s.then = AfterStop::Restart;
                }
                State::Stopping(s)
            }
            Input::Suspended { pid, suspended } if pid == s.pid => {
                self.set_suspended(pid, suspended, actions);
                State::Stopping(s)
            }
            Input::Exited { .. }
            | Input::GroupGone { .. }
            | Input::Suspended { .. }
            | Input::Spawned { .. }
            | Input::SpawnFailed(_)
            | Input::Probe { .. }
            | Input::Replace
            | Input::DepsReady => State::Stopping(s),
        }
    }

    fn stopping_deadline(&mut self, s: &mut Stopping, now: Instant, actions: &mut Vec<Action>) {
        if s.kill_at.is_some_and(|at| at <= now) {
            s.kill_at = None;
            actions.push(Action::Signal {
                pid: s.pid,
                signal: Signal::SIGKILL,
            });
            actions.push(Action::Report(Event::Killed {
                pid: s.pid,
                after: self.policy.stop_timeout,
            }));
        }
        if s.recheck_at.is_some_and(|at| at <= now) {
            s.recheck_at = Some(now + GROUP_RECHECK);
            actions.push(Action::CheckGroup { pgid: s.pid });
        }
    }

    /// The leader and its whole group are gone: what the stop was for decides.
    fn finish_stop(
        &mut self,
        pid: Pid,
        then: AfterStop,
        leader: LeaderExit,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        let LeaderExit { how, ran } = leader;
        self.suspended = false;
        match then {
            AfterStop::Stay => {
                self.last_exit = Some(how.clone());
                let next = Next::Stopped;
                actions.push(Action::Report(Event::Exited {
                    pid,
                    how,
                    ran,
                    next,
                }));
                State::Stopped
            }
            AfterStop::Restart => {
                self.last_exit = Some(how.clone());
                self.total_restarts += 1;
                let next = Next::Respawn;
                actions.push(Action::Report(Event::Exited {
                    pid,
                    how,
                    ran,
                    next,
                }));
                actions.push(Action::Spawn);
                State::Backoff { until: now }
            }
            AfterStop::Recover => self.after_exit(Some(pid), how, ran, false, now, actions),
            AfterStop::Crashed => self.after_exit(Some(pid), how, ran, true, now, actions),
        }
    }

    /// Waiting to restart: spawn at the deadline, or at once when asked.
    fn backoff(
        &mut self,
        until: Instant,
        input: Input,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        match input {
            Input::Deadline | Input::Start | Input::Restart => {
                actions.push(Action::Spawn);
                State::Backoff { until: now }
            }
            Input::Spawned { pid } => self.spawned(pid, now, actions),
            Input::SpawnFailed(how) => {
                self.after_exit(None, how, Duration::ZERO, true, now, actions)
            }
            Input::Stop => State::Stopped,
            Input::Exited { .. }
            | Input::GroupGone { .. }
            | Input::Suspended { .. }
            | Input::Probe { .. }
            | Input::Replace
            | Input::DepsReady => State::Backoff { until },
        }
    }

    /// Stopped, Exited or Failed: an operator start begins afresh (dependencies first).
    fn at_rest(
        &mut self,
        state: State,
        input: Input,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> State {
        match input {
            Input::Start | Input::Restart => {
                self.restarts.clear();
                self.attempt = 0;
                self.failure = None;
                State::Waiting
            }
            // A spawn requested before the stop was decided still produced a process.
            Input::Spawned { pid } => {
                self.failure = None;
                self.spawned(pid, now, actions)
            }
            Input::SpawnFailed(_)
            | Input::Exited { .. }
            | Input::GroupGone { .. }
            | Input::Suspended { .. }
            | Input::Probe { .. }
            | Input::Replace
            | Input::Deadline
            | Input::Stop
            | Input::DepsReady => state,
        }
    }

    fn spawned(&mut self, pid: Pid, now: Instant, actions: &mut Vec<Action>) -> State {
        self.failures = 0;
        self.suspended = false;
        self.last_probe = None; // a new incarnation has not been probed yet
        actions.push(Action::Report(Event::Started { pid }));
        if self.policy.probe.is_some() {
            self.ready_since = None;
            State::Starting { pid, since: now }
        } else {
            self.ready_since = Some(now);
            State::Running {
                pid,
                since: now,
                ready: true,
            }
        }
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
        if self.ready_since.is_none() {
            self.ready_since = Some(now);
        }
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

    /// The stop signal, then SIGCONT so a suspended (T) group can act on it.
    fn signal_stop(&self, pid: Pid, actions: &mut Vec<Action>) {
        let signal = self.policy.stop_signal;
        actions.push(Action::Signal { pid, signal });
        if signal != Signal::SIGKILL && signal != Signal::SIGCONT {
            actions.push(Action::Signal {
                pid,
                signal: Signal::SIGCONT,
            });
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
        self.signal_stop(pid, actions);
        State::Stopping(Stopping {
            pid,
            since,
            kill_at: Some(now + self.policy.stop_timeout),
            then,
            leader: None,
            recheck_at: None,
        })
    }

    /// Whether the run that just ended was stable: ready for `reset_after`.
    fn stable_run(&self, now: Instant) -> bool {
        self.ready_since
            .is_some_and(|at| now.saturating_duration_since(at) >= self.policy.backoff.reset_after)
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
        self.suspended = false;
        if pid.is_some() && self.stable_run(now) {
            // A stable run forgives: backoff and restart limit start over.
            self.attempt = 0;
            self.restarts.clear();
        }
        self.ready_since = None;
        let failed = !how.success() || !by_policy;
        let restart = match self.policy.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        };
        let (next, state, follow) = if restart {
            self.plan_restart(pid.is_none(), now)
        } else if failed {
            self.failure = Some(Failure::Crashed);
            (Next::Stay, State::Failed, None)
        } else {
            (Next::Done, State::Exited, None)
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

    /// A restart is due: within the limit, Backoff (Spawn at once for a zero
    /// delay); past it, Failed and GiveUp.
    fn plan_restart(&mut self, exec_failed: bool, now: Instant) -> (Next, State, Option<Action>) {
        let window = self.policy.limit.window;
        while self
            .restarts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.restarts.pop_front();
        }
        let max = self.policy.limit.max;
        if self.restarts.len() >= max as usize {
            self.failure = Some(Failure::GaveUp { max, window });
            return (
                Next::GiveUp { max, window },
                State::Failed,
                Some(Action::GiveUp),
            );
        }
        self.restarts.push_back(now);
        self.total_restarts += 1;
        self.attempt = self.attempt.saturating_add(1);
        let mut delay = backoff::delay(&self.policy.backoff, self.attempt, self.jitter.next_unit());
        if exec_failed {
            // A program that cannot even be executed will not fix itself in
            // a hot loop: never retry a failed exec sooner than this.
            delay = delay.max(EXEC_RETRY_FLOOR);
        }
        let next = Next::Restart {
            count: self.restarts.len(),
            window,
            delay,
        };
        let follow = delay.is_zero().then_some(Action::Spawn);
        (next, State::Backoff { until: now + delay }, follow)
    }
}

/// A program being stopped: the stop signal went to the group `pid` leads;
/// SIGKILL at `kill_at`. Once the leader has exited (`leader`), the group is
/// checked at `recheck_at` until it is empty; `then` decides what follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Stopping {
    pub pid: Pid,
    pub since: Instant,
    pub kill_at: Option<Instant>,
    pub then: AfterStop,
    pub leader: Option<LeaderExit>,
    pub recheck_at: Option<Instant>,
}

#[cfg(test)]
mod tests;
