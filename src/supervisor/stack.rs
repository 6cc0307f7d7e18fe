//! The pure policy of the whole stack: `Stack::step(input, now) -> actions`.
//!
//! Each program has its own [`Machine`]; what spans programs lives here:
//! dependency gating, give-up, the ordered shutdown and its escalation (shutdown
//! timeout, forcing, the final sweep of leftover processes), the signals the
//! supervisor receives and the operator's verbs. Like [`Machine::step`] it does no
//! I/O and reads no clock: the runtime (`supervisor/mod.rs`) decodes events into
//! [`StackInput`]s, calls `step`, and carries out the [`StackAction`]s — every kill
//! of anything goes through [`StackAction::Kill`]. Facts only the runtime can
//! learn are asked for with an action and come back as an input (spawn result,
//! [`StackAction::CheckGroup`], [`StackAction::CheckLeftovers`]).
//!
//! | mode \ input | Program | stop signal (TERM/INT/QUIT) | other signal | Admin | Deadline | Leftovers | Reaped |
//! |---|---|---|---|---|---|---|---|
//! | Up | to its machine; GiveUp → `on_give_up` (exit: Stopping(3)) | Stopping(0) | forwarded to programs declaring it, else noted | to its machine | due machines | – | – |
//! | Stopping | to its machine | first: Stopping keeps its code; again < 1 s: ignored; again ≥ 1 s: force (4) | forwarded / noted | refused | due machines; `shutdown_timeout`: SIGKILL every group | none: Done; some: Sweeping | – |
//! | Sweeping | to its machine | as Stopping | forwarded / noted | refused | SIGKILL leftovers | none: Done | CheckLeftovers |
//! | Done | – | – | – | refused | – | – | – |
//!
//! After every input, [`Stack::settle`] moves things on: in `Up`, every waiting
//! program whose dependencies are met is started (in start order, so one pass
//! sees earlier starts); in `Stopping`, programs are stopped dependants-first
//! (a program is stopped once every program depending on it has no process), and
//! when no program has a process left, the leftovers are checked.
//!
//! With a main program ([`MainRule`]: `selfheal -- CMD`, or `main = true`),
//! every signal the supervisor receives goes to the main program's process group
//! while it lives (rewritten by `--rewrite`; a stop signal may arm `--stop-timeout`,
//! then SIGKILL), a stop signal before it started stops the stack with 128+n, and
//! its end (exited, failed or stopped) begins the shutdown with its code: the
//! sidecars are stopped dependants-first and the supervisor exits with that code.
//!
//! One notion of "stop requested": a give-up and a stop signal both begin the
//! same shutdown; forcing is reserved for a *signal* that repeats a stop signal
//! at least [`FORCE_GRACE`] after the first, so a wrapper and Docker sending TERM
//! a few ms apart do not skip the drain, and a give-up never makes the first
//! signal count as the second.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

mod instances;

pub use instances::{instance_name, Instance, Service, SURGE_TIMEOUT};

use super::notes::Note;
use super::state::{Action, Event, Input, Machine, Pid, State};
use crate::config::{Condition, GiveUp};
use crate::exit::Exit;

/// A stop signal repeated sooner than this after the first is a duplicate
/// (ignored); later, it forces the shutdown.
pub const FORCE_GRACE: Duration = Duration::from_secs(1);

/// How long leftover processes get between SIGTERM and SIGKILL in the sweep.
pub const SWEEP_GRACE: Duration = Duration::from_secs(2);

/// An operator verb on one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminVerb {
    Start,
    Stop,
    Restart,
    /// Send this signal (number) to the program's process group.
    Signal(i32),
}

impl AdminVerb {
    /// The verb as the CLI and the admin API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminVerb::Start => "start",
            AdminVerb::Stop => "stop",
            AdminVerb::Restart => "restart",
            AdminVerb::Signal(_) => "signal",
        }
    }
}

/// One supervised program as the stack sees it.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: Arc<str>,
    pub machine: Machine,
    /// Indices of the programs it depends on, with the condition.
    pub deps: Vec<(usize, Condition)>,
    /// Indices of the programs that depend on it.
    pub dependants: Vec<usize>,
    /// Signals (numbers) forwarded to it when the supervisor receives them.
    pub forward: Vec<i32>,
    /// A spawn was asked for and its result has not come back yet.
    spawn_pending: bool,
    /// Which program and replica it is a process of (see [`instances`]).
    pub instance: Instance,
}

impl Member {
    pub fn new(name: &str, machine: Machine, forward: Vec<i32>) -> Member {
        Member {
            name: Arc::from(name),
            machine,
            deps: Vec::new(),
            dependants: Vec::new(),
            forward,
            spawn_pending: false,
            instance: Instance {
                service: Arc::from(name),
                ..Instance::default()
            },
        }
    }
}

/// Where the stack is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Supervising.
    Up,
    /// Stopping every program, dependants first. `deadline` is `shutdown_timeout`
    /// (cleared once passed); `checking`: all programs are down and the
    /// leftovers were asked for.
    Stopping {
        exit: Exit,
        deadline: Option<Instant>,
        forced: bool,
        checking: bool,
    },
    /// Programs are down; leftover processes got the sweep signal; SIGKILL at `kill_at`.
    Sweeping {
        exit: Exit,
        kill_at: Option<Instant>,
        forced: bool,
    },
    /// Nothing is left: the supervisor exits with this.
    Done(Exit),
}

/// Facts for the stack.
#[derive(Debug, Clone, PartialEq)]
pub enum StackInput {
    /// A fact about one program (exit, spawn result, probe, group emptied…).
    Program { index: usize, input: Input },
    /// The supervisor received this signal (number).
    Signal(i32),
    /// An operator verb.
    Admin { index: usize, verb: AdminVerb },
    /// The earliest of [`Stack::next_deadline`] has come.
    Deadline,
    /// Answer to [`StackAction::CheckLeftovers`]: does the supervisor still have children?
    Leftovers { any: bool },
    /// Children were reaped (orphans among them): leftovers may be gone.
    Reaped,
    /// Changes to the set of programs (reload, `restart`, `scale`), applied in order.
    Apply(Vec<Change>),
}

/// One change to the set of programs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new program: its rule, then `replicas` instances (started by dependencies).
    Add { service: Service, seed: u64 },
    /// A changed program's new rule (instances made from now on use it).
    Update(Service),
    /// A program the config no longer has: every instance is retired.
    Remove(Arc<str>),
    /// Replace these instances one at a time (surge or stop-first).
    Roll {
        service: Arc<str>,
        members: Vec<usize>,
    },
    /// Run this many instances.
    Scale {
        service: Arc<str>,
        replicas: u32,
        seed: u64,
    },
    /// New `[supervisor]` settings.
    Settings {
        on_give_up: GiveUp,
        shutdown_timeout: Duration,
    },
}

/// Who a [`StackAction::Kill`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The process group led by this pid.
    Group(Pid),
    /// Every leftover process: as PID 1 everything in the namespace
    /// (`kill(-1)`), otherwise the supervisor's own children.
    Leftovers,
}

/// Commands for the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum StackAction {
    /// Spawn program `index`; answer with `Program { Spawned | SpawnFailed }`.
    Spawn(usize),
    /// The one way anything is signalled (a signal number: real-time signals
    /// have no `nix` name).
    Kill { target: Target, signal: i32 },
    /// Answer with `Program { GroupGone }` if the group led by `pgid` is empty.
    CheckGroup { index: usize, pgid: Pid },
    /// Answer with [`StackInput::Leftovers`].
    CheckLeftovers,
    /// An event of program `index`.
    Report { index: usize, event: Event },
    /// An event of the supervisor itself.
    Note(Note),
    /// Member `index` was added as replica `replica` of `service`: the
    /// runtime makes its slot (comes before any other action about it).
    NewInstance {
        index: usize,
        service: Arc<str>,
        replica: u32,
    },
    /// Member `index` was retired and has no process left: forget it.
    Gone(usize),
    /// SIGHUP: re-read the config and apply it.
    Reload,
    /// Stop supervising and exit with this.
    Exit(Exit),
}

/// The main program's rules (tini/dumb-init semantics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MainRule {
    /// Its member index.
    pub index: usize,
    /// `(from, to)` signal numbers; `to` = 0 drops the signal.
    pub rewrite: Vec<(i32, i32)>,
    /// SIGKILL its group this long after a stop signal was forwarded to it.
    pub stop_timeout: Option<Duration>,
}

/// The stack: its programs (in start order) and its mode.
#[derive(Debug, Clone)]
pub struct Stack {
    pub members: Vec<Member>,
    pub mode: Mode,
    on_give_up: GiveUp,
    shutdown_timeout: Duration,
    /// When the first stop signal arrived.
    first_stop_signal: Option<Instant>,
    main: Option<MainRule>,
    /// `--stop-timeout` after a stop signal went to the main program.
    kill_main_at: Option<Instant>,
    /// Members an input touched since the last settle, and their dependants.
    /// Up: those whose dependencies may have become met. Stopping: with their
    /// dependencies, those that may now be stopped. Scanning only these keeps
    /// a start (and a stop) of n programs O(n), not O(n²) (it was 13 % of the
    /// supervisor's CPU when starting 1000).
    to_check: Vec<usize>,
    /// How to make instances of each program (see [`instances`]).
    services: std::collections::HashMap<Arc<str>, Service>,
    /// Rolling restarts under way.
    rollouts: Vec<instances::Rollout>,
    /// Members being retired (until gone) and surge members (until their
    /// surge is over): checked after every input without scanning all members.
    retiring: Vec<usize>,
    surges: Vec<usize>,
    /// How each program's last rollout ended (true: every replacement ready).
    rollout_outcomes: std::collections::HashMap<Arc<str>, bool>,
}

/// An exit code as the one byte a process can return.
fn code_byte(code: i32) -> u8 {
    u8::try_from(code & 0xff).unwrap_or(u8::MAX)
}

/// The signals that stop the stack.
pub fn is_stop_signal(signal: i32) -> bool {
    [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT]
        .iter()
        .any(|s| *s as i32 == signal)
}

impl Stack {
    /// `members` in start order, with `deps` filled in by index.
    pub fn new(mut members: Vec<Member>, on_give_up: GiveUp, shutdown_timeout: Duration) -> Stack {
        let n = members.len();
        for i in 0..n {
            let deps: Vec<usize> = members
                .get(i)
                .map_or_else(Vec::new, |m| m.deps.iter().map(|(d, _)| *d).collect());
            for d in deps {
                if let Some(dep) = members.get_mut(d) {
                    dep.dependants.push(i);
                }
            }
        }
        Stack {
            members,
            mode: Mode::Up,
            on_give_up,
            shutdown_timeout,
            first_stop_signal: None,
            main: None,
            kill_main_at: None,
            to_check: (0..n).collect(),
            services: std::collections::HashMap::new(),
            rollouts: Vec::new(),
            retiring: Vec::new(),
            surges: Vec::new(),
            rollout_outcomes: std::collections::HashMap::new(),
        }
    }

    /// Applies changes without starting anything yet (the first actions are
    /// [`Stack::start`]'s): the initial set of programs.
    pub fn configure(&mut self, changes: Vec<Change>, now: Instant) -> Vec<StackAction> {
        let mut out = Vec::new();
        for change in changes {
            self.apply(change, now, &mut out);
        }
        self.relink();
        out
    }

    /// Changes the shutdown settings (on reload).
    pub fn set_settings(&mut self, on_give_up: GiveUp, shutdown_timeout: Duration) {
        self.on_give_up = on_give_up;
        self.shutdown_timeout = shutdown_timeout;
    }

    /// Makes `rule.index` the main program.
    pub fn with_main(mut self, rule: MainRule) -> Stack {
        self.main = Some(rule);
        self
    }

    /// The main program's index, if there is one.
    pub fn main_index(&self) -> Option<usize> {
        self.main.as_ref().map(|m| m.index)
    }

    /// The main program's live process group, if any.
    fn main_pid(&self) -> Option<Pid> {
        let index = self.main_index()?;
        self.members.get(index)?.machine.state.leader()
    }

    /// The first actions: start what has no unmet dependency.
    pub fn start(&mut self, now: Instant) -> Vec<StackAction> {
        let mut out = Vec::new();
        self.settle(now, &mut out);
        out
    }

    /// Whether operator verbs are refused (a shutdown is under way).
    pub fn is_stopping(&self) -> bool {
        !matches!(self.mode, Mode::Up)
    }

    /// When [`StackInput::Deadline`] must be fed.
    pub fn next_deadline(&self) -> Option<Instant> {
        let own = match &self.mode {
            Mode::Stopping { deadline, .. } => *deadline,
            Mode::Sweeping { kill_at, .. } => *kill_at,
            Mode::Up | Mode::Done(_) => None,
        };
        self.members
            .iter()
            .filter_map(|m| m.machine.deadline())
            .chain(own)
            .chain(self.kill_main_at)
            .chain(self.surge_deadline())
            .min()
    }

    pub fn step(&mut self, input: StackInput, now: Instant) -> Vec<StackAction> {
        let mut out = Vec::new();
        match input {
            StackInput::Program { index, input } => self.feed(index, input, now, &mut out),
            StackInput::Signal(signal) => self.on_signal(signal, now, &mut out),
            StackInput::Admin { index, verb } => self.on_admin(index, verb, now, &mut out),
            StackInput::Deadline => self.on_deadline(now, &mut out),
            StackInput::Leftovers { any } => self.on_leftovers(any, now, &mut out),
            StackInput::Reaped => {
                if matches!(self.mode, Mode::Sweeping { .. }) {
                    out.push(StackAction::CheckLeftovers);
                }
            }
            StackInput::Apply(changes) if self.mode == Mode::Up => {
                for change in changes {
                    self.apply(change, now, &mut out);
                }
                self.relink();
            }
            StackInput::Apply(_) => {}
        }
        self.settle(now, &mut out);
        out
    }

    /// One input to one program's machine; its actions become stack actions.
    fn feed(&mut self, index: usize, input: Input, now: Instant, out: &mut Vec<StackAction>) {
        let Some(member) = self.members.get_mut(index) else {
            return;
        };
        if matches!(input, Input::Spawned { .. } | Input::SpawnFailed(_)) {
            member.spawn_pending = false;
        }
        self.to_check.push(index);
        self.to_check.extend_from_slice(&member.dependants);
        let mut give_up = false;
        for action in member.machine.step(input, now) {
            match action {
                Action::Spawn => {
                    member.spawn_pending = true;
                    out.push(StackAction::Spawn(index));
                }
                Action::Signal { pid, signal } => out.push(StackAction::Kill {
                    target: Target::Group(pid),
                    signal: signal as i32,
                }),
                Action::CheckGroup { pgid } => out.push(StackAction::CheckGroup { index, pgid }),
                Action::Report(event) => out.push(StackAction::Report { index, event }),
                Action::GiveUp => give_up = true,
            }
        }
        if give_up {
            self.give_up(index, now, out);
        }
    }

    /// A program will not run again by itself: `on_give_up` decides.
    fn give_up(&mut self, index: usize, now: Instant, out: &mut Vec<StackAction>) {
        let Some(name) = self.members.get(index).map(|m| m.name.clone()) else {
            return;
        };
        let exiting = self.on_give_up == GiveUp::Exit;
        out.push(StackAction::Note(Note::GaveUp {
            program: name,
            exiting,
        }));
        if exiting {
            self.begin_stop(Exit::GaveUp, now);
        }
    }

    /// The one way a shutdown begins; a second request keeps the first's exit code.
    fn begin_stop(&mut self, exit: Exit, now: Instant) {
        if self.mode == Mode::Up {
            self.mode = Mode::Stopping {
                exit,
                deadline: Some(now + self.shutdown_timeout),
                forced: false,
                checking: false,
            };
            self.to_check = (0..self.members.len()).collect(); // each once
        }
    }

    fn on_signal(&mut self, signal: i32, now: Instant, out: &mut Vec<StackAction>) {
        if let Some(pid) = self.main_pid() {
            self.signal_main(signal, pid, now, out);
            return;
        }
        if self.main_not_started() && is_stop_signal(signal) && !self.is_stopping() {
            // As if the main program had been killed by it (128 + n).
            out.push(StackAction::Note(Note::StopSignal {
                signal,
                already: false,
            }));
            self.first_stop_signal = Some(now);
            self.begin_stop(Exit::Program(code_byte(128 + signal)), now);
            return;
        }
        if signal == Signal::SIGHUP as i32 && self.mode == Mode::Up {
            out.push(StackAction::Reload);
        }
        if !is_stop_signal(signal) {
            self.forward(signal, out);
            return;
        }
        match self.first_stop_signal {
            None => {
                self.first_stop_signal = Some(now);
                let already = self.is_stopping();
                out.push(StackAction::Note(Note::StopSignal { signal, already }));
                self.begin_stop(Exit::Clean, now);
            }
            Some(first) if now.saturating_duration_since(first) < FORCE_GRACE => {
                out.push(StackAction::Note(Note::DuplicateSignal {
                    signal,
                    grace: FORCE_GRACE,
                }));
            }
            Some(_) => self.force(signal, out),
        }
    }

    /// Every signal goes to the main program's group (rewritten as asked); the
    /// sidecars that declare it get it too.
    fn signal_main(&mut self, signal: i32, pid: Pid, now: Instant, out: &mut Vec<StackAction>) {
        let sent = self
            .main
            .as_ref()
            .and_then(|m| m.rewrite.iter().find(|(from, _)| *from == signal))
            .map_or(signal, |(_, to)| *to);
        out.push(StackAction::Note(Note::ToMain { signal, sent }));
        if sent == 0 {
            return;
        }
        out.push(StackAction::Kill {
            target: Target::Group(pid),
            signal: sent,
        });
        let timeout = self.main.as_ref().and_then(|m| m.stop_timeout);
        if let (true, Some(t), None) = (is_stop_signal(sent), timeout, self.kill_main_at) {
            self.kill_main_at = Some(now + t);
        }
        for m in self.members.iter().filter(|m| m.forward.contains(&signal)) {
            if let Some(p) = m.machine.state.pid().filter(|p| *p != pid) {
                out.push(StackAction::Kill {
                    target: Target::Group(p),
                    signal,
                });
            }
        }
    }

    fn main_not_started(&self) -> bool {
        self.main_index()
            .and_then(|i| self.members.get(i))
            .is_some_and(|m| matches!(m.machine.state, State::Waiting | State::Backoff { .. }))
    }

    /// The main program ended: the stack stops with its code.
    fn main_ended(&mut self, now: Instant, out: &mut Vec<StackAction>) {
        let Some(m) = self.main_index().and_then(|i| self.members.get(i)) else {
            return;
        };
        if !matches!(
            m.machine.state,
            State::Exited | State::Failed | State::Stopped
        ) {
            return;
        }
        let code = m.machine.last_exit.as_ref().map_or(0, |e| e.code());
        self.kill_main_at = None;
        out.push(StackAction::Note(Note::MainEnded {
            code: code_byte(code),
        }));
        self.begin_stop(Exit::Program(code_byte(code)), now);
    }

    /// Sends `signal` to every live program that declares it in `forward_signals`.
    fn forward(&mut self, signal: i32, out: &mut Vec<StackAction>) {
        let mut programs = 0;
        for m in &self.members {
            if let (true, Some(pid)) = (m.forward.contains(&signal), m.machine.state.pid()) {
                programs += 1;
                out.push(StackAction::Kill {
                    target: Target::Group(pid),
                    signal,
                });
            }
        }
        let reload = signal == Signal::SIGHUP as i32;
        out.push(StackAction::Note(if programs == 0 && reload {
            Note::Reloading
        } else if programs == 0 {
            Note::NotForwarded { signal }
        } else {
            Note::Forwarded { signal, programs }
        }));
    }

    /// No more waiting: SIGKILL to every live group (and the leftovers), exit 4.
    fn force(&mut self, signal: i32, out: &mut Vec<StackAction>) {
        let sweeping = match &mut self.mode {
            Mode::Stopping {
                exit,
                deadline,
                forced,
                ..
            } => {
                (*exit, *deadline, *forced) = (Exit::Forced, None, true);
                false
            }
            Mode::Sweeping {
                exit,
                kill_at,
                forced,
            } => {
                (*exit, *kill_at, *forced) = (Exit::Forced, None, true);
                true
            }
            Mode::Up | Mode::Done(_) => return,
        };
        out.push(StackAction::Note(Note::Forcing { signal }));
        self.kill_all_groups(out);
        if sweeping {
            out.push(StackAction::Kill {
                target: Target::Leftovers,
                signal: Signal::SIGKILL as i32,
            });
        }
    }

    fn kill_all_groups(&self, out: &mut Vec<StackAction>) {
        for m in &self.members {
            if let Some(pid) = m.machine.state.pid() {
                out.push(StackAction::Kill {
                    target: Target::Group(pid),
                    signal: Signal::SIGKILL as i32,
                });
            }
        }
    }

    fn on_admin(
        &mut self,
        index: usize,
        verb: AdminVerb,
        now: Instant,
        out: &mut Vec<StackAction>,
    ) {
        if self.is_stopping() {
            return;
        }
        let Some(m) = self.members.get(index).filter(|m| !m.instance.retiring) else {
            return;
        };
        out.push(StackAction::Note(Note::Operator {
            program: m.name.clone(),
            verb,
        }));
        let input = match verb {
            AdminVerb::Start => Input::Start,
            AdminVerb::Stop => Input::Stop,
            AdminVerb::Restart => {
                let service = m.instance.service.clone();
                self.roll(&service, vec![index], now, out);
                return;
            }
            AdminVerb::Signal(signal) => {
                if let Some(pid) = m.machine.state.pid() {
                    let target = Target::Group(pid);
                    out.push(StackAction::Kill { target, signal });
                }
                return;
            }
        };
        self.feed(index, input, now, out);
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Vec<StackAction>) {
        if self.kill_main_at.is_some_and(|at| at <= now) {
            self.kill_main_at = None;
            if let Some(pid) = self.main_pid() {
                out.push(StackAction::Note(Note::MainKilled));
                out.push(StackAction::Kill {
                    target: Target::Group(pid),
                    signal: Signal::SIGKILL as i32,
                });
            }
        }
        for i in 0..self.members.len() {
            let due = self
                .members
                .get(i)
                .and_then(|m| m.machine.deadline())
                .is_some_and(|d| d <= now);
            if due {
                self.feed(i, Input::Deadline, now, out);
            }
        }
        match &mut self.mode {
            Mode::Stopping { deadline, .. } if deadline.is_some_and(|d| d <= now) => {
                *deadline = None;
                out.push(StackAction::Note(Note::ShutdownTimeout));
                self.kill_all_groups(out);
            }
            Mode::Sweeping { kill_at, .. } if kill_at.is_some_and(|d| d <= now) => {
                *kill_at = None;
                out.push(StackAction::Note(Note::SweepKill));
                out.push(StackAction::Kill {
                    target: Target::Leftovers,
                    signal: Signal::SIGKILL as i32,
                });
            }
            Mode::Up | Mode::Stopping { .. } | Mode::Sweeping { .. } | Mode::Done(_) => {}
        }
    }

    fn on_leftovers(&mut self, any: bool, now: Instant, out: &mut Vec<StackAction>) {
        let (exit, forced) = match &self.mode {
            Mode::Stopping {
                exit,
                forced,
                checking: true,
                ..
            } => (*exit, *forced),
            Mode::Sweeping { exit, forced, .. } if !any => (*exit, *forced),
            Mode::Up | Mode::Stopping { .. } | Mode::Sweeping { .. } | Mode::Done(_) => return,
        };
        if !any {
            self.mode = Mode::Done(exit);
            out.push(StackAction::Note(Note::Exiting { exit }));
            out.push(StackAction::Exit(exit));
            return;
        }
        let signal = if forced {
            Signal::SIGKILL
        } else {
            Signal::SIGTERM
        };
        out.push(StackAction::Note(Note::Sweep { signal }));
        out.push(StackAction::Kill {
            target: Target::Leftovers,
            signal: signal as i32,
        });
        self.mode = Mode::Sweeping {
            exit,
            kill_at: (!forced).then(|| now + SWEEP_GRACE),
            forced,
        };
    }

    /// Moves the stack on after an input (see the module docs).
    fn settle(&mut self, now: Instant, out: &mut Vec<StackAction>) {
        if self.mode == Mode::Up {
            self.main_ended(now, out);
        }
        self.settle_instances(now, out);
        match self.mode {
            Mode::Up => self.start_ready(now, out),
            Mode::Stopping {
                checking: false, ..
            } => self.stop_in_order(now, out),
            Mode::Stopping { checking: true, .. } | Mode::Sweeping { .. } | Mode::Done(_) => {
                self.to_check.clear(); // nothing starts or stops in order any more
            }
        }
    }

    /// Starts every waiting program whose dependencies are met (of those an
    /// input may have changed, in start order).
    fn start_ready(&mut self, now: Instant, out: &mut Vec<StackAction>) {
        let mut candidates = std::mem::take(&mut self.to_check);
        candidates.sort_unstable();
        candidates.dedup();
        for i in candidates {
            let waiting = self
                .members
                .get(i)
                .is_some_and(|m| m.machine.state == State::Waiting && !m.spawn_pending);
            if waiting && self.dependencies_met(i) {
                self.feed(i, Input::DepsReady, now, out);
            }
        }
    }

    fn dependencies_met(&self, i: usize) -> bool {
        let Some(member) = self.members.get(i) else {
            return false;
        };
        let met = |d: usize, condition: Condition| {
            self.members.get(d).is_some_and(|dep| match condition {
                Condition::Started => matches!(
                    dep.machine.state,
                    State::Starting { .. } | State::Running { .. }
                ),
                Condition::Healthy => dep.machine.is_ready(),
            })
        };
        let service = |d: usize| self.members.get(d).map(|m| m.instance.service.clone());
        // A dependency on a program is met by any one of its instances.
        member.deps.iter().all(|(d, condition)| {
            met(*d, *condition)
                || member
                    .deps
                    .iter()
                    .any(|(e, c)| c == condition && service(*e) == service(*d) && met(*e, *c))
        })
    }

    /// Stops programs dependants-first; once none has a process, asks for leftovers.
    /// Only members an input touched, and their dependencies (whose
    /// dependants may have just gone), are examined; a member stopped here is
    /// touched in turn, until nothing more can be stopped.
    fn stop_in_order(&mut self, now: Instant, out: &mut Vec<StackAction>) {
        loop {
            let mut candidates = std::mem::take(&mut self.to_check);
            let deps: Vec<usize> = candidates
                .iter()
                .filter_map(|i| self.members.get(*i))
                .flat_map(|m| m.deps.iter().map(|(d, _)| *d))
                .collect();
            candidates.extend(deps);
            candidates.sort_unstable_by(|a, b| b.cmp(a)); // dependants first
            candidates.dedup();
            let mut stopped_any = false;
            for i in candidates {
                if self.wants_stop(i) {
                    self.feed(i, Input::Stop, now, out);
                    stopped_any = true;
                }
            }
            if !stopped_any {
                break; // nothing was fed, so nothing was touched anew
            }
        }
        let all_down = self.members.iter().all(|m| m.machine.state.pid().is_none());
        if let (true, Mode::Stopping { checking, .. }) = (all_down, &mut self.mode) {
            *checking = true;
            out.push(StackAction::CheckLeftovers);
        }
    }

    fn wants_stop(&self, i: usize) -> bool {
        let Some(m) = self.members.get(i) else {
            return false;
        };
        match &m.machine.state {
            State::Waiting | State::Backoff { .. } => true,
            State::Starting { .. } | State::Running { .. } => m.dependants.iter().all(|d| {
                self.members
                    .get(*d)
                    .is_none_or(|dep| dep.machine.state.pid().is_none())
            }),
            State::Stopping(s) => s.then != super::state::AfterStop::Stay,
            State::Stopped | State::Exited | State::Failed => false,
        }
    }
}

#[cfg(test)]
mod tests;
