//! The supervisor: one owner task on a current-thread runtime owns the process
//! table. Signals (SIGCHLD included), probe results and admin commands arrive in
//! one `select!`; each becomes an [`Input`] for a program's pure state machine
//! ([`state`]); the actions it returns are carried out here. Readers get
//! [`Snapshot`]s through a `watch` channel.
//!
//! - [`state`]: the lifecycle (pure), with its transition table.
//! - [`backoff`]: restart delays.
//! - [`spawn`]: fork/exec with a clean child.
//! - [`reaper`]: the one `waitpid(-1)` drain.
//! - [`health`]: probe tasks.
//! - [`sockets`]: listen sockets kept across restarts.
//! - [`logs`]: prefixed program output and event lines.
//! - [`shutdown`]: ordered stop, force, final sweep.

pub mod backoff;
pub mod health;
pub mod logs;
pub mod reaper;
mod shutdown;
pub mod sockets;
pub mod spawn;
pub mod state;

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::Arc;

use nix::sys::signal::{killpg, Signal};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::admin::snapshot::{self, ExitInfo, HealthInfo, ProgramStatus, Snapshot, SupervisorInfo};
use crate::cli::RunArgs;
use crate::config::{self, Condition, Config, GiveUp, Program};
use crate::exit::Exit;
use health::ExecWaiters;
use logs::Output;
use shutdown::Shutdown;
use state::{Action, Input, Machine, Policy, State};

/// Messages to the owner task.
pub enum Msg {
    Probe {
        index: usize,
        generation: u64,
        ok: bool,
        reason: String,
    },
    Admin {
        verb: AdminVerb,
        name: String,
        reply: oneshot::Sender<Result<String, AdminError>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminVerb {
    Start,
    Stop,
    Restart,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no program named {0:?}")]
    UnknownProgram(String),
    #[error("the supervisor is shutting down")]
    ShuttingDown,
}

/// `selfheal [run]`: load the config (exit 2 on error) and supervise until told to stop.
pub fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    sockets::reserve_low_fds();
    let path = args.config.resolve();
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(err) => {
            eprint!("{err}");
            if matches!(err, config::ConfigError::Read { .. }) {
                eprintln!();
            }
            return Ok(Exit::Config.into());
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let exit = runtime.block_on(run(config, args));
    Ok(exit.into())
}

/// One supervised program: its config, machine and runtime handles.
struct Slot {
    program: Arc<Program>,
    name: Arc<str>,
    machine: Machine,
    /// Bumped at every spawn, so probe results of a past incarnation are dropped.
    generation: u64,
    probe: Option<tokio::task::AbortHandle>,
    listen: Vec<(OwnedFd, String)>,
    started_at_ms: Option<u64>,
}

struct Supervisor {
    config: Config,
    slots: Vec<Slot>,
    tx: mpsc::UnboundedSender<Msg>,
    waiters: ExecWaiters,
    output: Output,
    snapshot: watch::Sender<Snapshot>,
    started_at_ms: u64,
    shutdown: Option<Shutdown>,
}

async fn run(config: Config, args: RunArgs) -> Exit {
    let names: Vec<&str> = config.programs.iter().map(|p| p.name.as_str()).collect();
    let output = Output::new(args.log_format, &names);
    // Handlers first: PID 1 ignores every signal it has no handler for.
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            output.note(&format!("cannot install signal handlers: {e}"));
            return Exit::Internal;
        }
    };
    let pid = std::process::id();
    if pid != 1 {
        // Orphans of our children are re-parented to us instead of to init.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            output.note(&format!("cannot become a child subreaper: {e}"));
        }
    }
    let mut slots = Vec::with_capacity(config.programs.len());
    for (i, program) in config.programs.iter().enumerate() {
        let mut listen = Vec::new();
        for addr in &program.listen {
            match sockets::bind(*addr) {
                Ok(fd) => listen.push((fd, addr.to_string())),
                Err(e) => {
                    output.note(&format!(
                        "cannot listen on {addr} for program {}: {e}",
                        program.name
                    ));
                    return Exit::Internal;
                }
            }
        }
        let seed = u64::from(pid) << 32 ^ i as u64 ^ snapshot::now_ms();
        slots.push(Slot {
            program: Arc::new(program.clone()),
            name: Arc::from(program.name.as_str()),
            machine: Machine::new(Policy::of(program), seed),
            generation: 0,
            probe: None,
            listen,
            started_at_ms: None,
        });
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (snapshot_tx, snapshot_rx) = watch::channel(Snapshot::default());
    let admin_socket = config.supervisor.admin_socket.clone();
    match crate::admin::api::bind(&admin_socket) {
        Ok(listener) => {
            tokio::spawn(crate::admin::api::serve(listener, snapshot_rx, tx.clone()));
        }
        Err(e) => {
            output.note(&format!(
                "cannot serve the admin API on {}: {e:#}",
                admin_socket.display()
            ));
            return Exit::Internal;
        }
    }
    let mut sup = Supervisor {
        config,
        slots,
        tx,
        waiters: ExecWaiters::default(),
        output,
        snapshot: snapshot_tx,
        started_at_ms: snapshot::now_ms(),
        shutdown: None,
    };
    sup.output.note(&format!(
        "supervising {} programs as pid {pid}{}; admin socket {}",
        sup.slots.len(),
        if pid == 1 { " (init)" } else { " (subreaper)" },
        admin_socket.display()
    ));
    for warning in &sup.config.warnings {
        sup.output
            .note(&warning.display(&sup.config.path).to_string());
    }
    sup.start_waiting();
    sup.publish();

    let exit = loop {
        let deadline = sup.next_deadline();
        tokio::select! {
            biased;
            _ = signals.child.recv() => sup.reap(),
            _ = signals.term.recv() => sup.on_stop_signal(Signal::SIGTERM),
            _ = signals.int.recv() => sup.on_stop_signal(Signal::SIGINT),
            _ = signals.quit.recv() => sup.on_stop_signal(Signal::SIGQUIT),
            _ = signals.hup.recv() => sup.forward(Signal::SIGHUP),
            _ = signals.usr1.recv() => sup.forward(Signal::SIGUSR1),
            _ = signals.usr2.recv() => sup.forward(Signal::SIGUSR2),
            Some(msg) = rx.recv() => sup.on_message(msg),
            _ = sleep_until(deadline) => sup.on_deadlines(),
        }
        sup.start_waiting();
        if let Some(exit) = sup.progress_shutdown() {
            break exit;
        }
        sup.publish();
    };
    let _ = std::fs::remove_file(&admin_socket);
    exit
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The signal streams the supervisor handles itself.
struct Signals {
    child: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            child: signal(SignalKind::child())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }
}

impl Supervisor {
    /// Feeds `input` to program `i` and carries out the resulting actions,
    /// feeding spawn results back, until the machine is quiet.
    fn apply(&mut self, i: usize, input: Input) {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let now = Instant::now();
            for action in self.slots[i].machine.step(input, now) {
                match action {
                    Action::Spawn => queue.push_back(self.spawn(i)),
                    Action::Signal { pid, signal } => {
                        // ESRCH: it is already gone; the reaper will tell.
                        let _ = killpg(nix::unistd::Pid::from_raw(pid), signal);
                    }
                    Action::Report(event) => {
                        self.output.event(&self.slots[i].name, &event.to_string())
                    }
                    Action::GiveUp => self.give_up(i),
                }
            }
        }
        self.sync_probe(i);
    }

    fn spawn(&mut self, i: usize) -> Input {
        let slot = &mut self.slots[i];
        let p = &slot.program;
        let spec = spawn::Spec {
            argv: &p.command,
            env: &p.env,
            workdir: p.workdir.as_deref(),
            user: p.user.as_deref(),
            group: p.group.as_deref(),
            listen: &slot.listen,
            capture: true,
        };
        match spawn::spawn(&spec) {
            Ok(child) => {
                slot.generation += 1;
                slot.started_at_ms = Some(snapshot::now_ms());
                if let Some(reader) = child.output {
                    logs::pump(self.output.clone(), slot.name.clone(), reader);
                }
                Input::Spawned { pid: child.pid }
            }
            Err(how) => Input::SpawnFailed(how),
        }
    }

    /// Probes run exactly while the program has a live, not-stopping process.
    fn sync_probe(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let live = matches!(
            slot.machine.state,
            State::Starting { .. } | State::Running { .. }
        );
        match (&slot.probe, live, &slot.program.health) {
            (None, true, Some(health)) => {
                slot.probe = Some(health::start(
                    i,
                    slot.generation,
                    health.clone(),
                    self.tx.clone(),
                    self.waiters.clone(),
                ));
            }
            (Some(handle), false, _) => {
                handle.abort();
                slot.probe = None;
            }
            _ => {}
        }
    }

    fn reap(&mut self) {
        for (pid, how) in reaper::drain() {
            if let Some(i) = self
                .slots
                .iter()
                .position(|s| s.machine.state.pid() == Some(pid))
            {
                // A new incarnation needs a new probe task.
                if let Some(handle) = self.slots[i].probe.take() {
                    handle.abort();
                }
                self.apply(i, Input::Exited { pid, how });
                continue;
            }
            let waiter = self.waiters.lock().ok().and_then(|mut w| w.remove(&pid));
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send(how);
                }
                None => self
                    .output
                    .note(&format!("reaped orphan pid {pid} ({how})")),
            }
        }
        if let Some(shutdown) = &mut self.shutdown {
            shutdown.children_changed();
        }
    }

    fn on_message(&mut self, msg: Msg) {
        match msg {
            Msg::Probe {
                index,
                generation,
                ok,
                reason,
            } => {
                if self
                    .slots
                    .get(index)
                    .is_some_and(|s| s.generation == generation)
                {
                    self.apply(index, Input::Probe { ok, reason });
                }
            }
            Msg::Admin { verb, name, reply } => {
                let result = self.admin(verb, &name);
                let _ = reply.send(result);
            }
        }
    }

    fn admin(&mut self, verb: AdminVerb, name: &str) -> Result<String, AdminError> {
        if self.shutdown.is_some() {
            return Err(AdminError::ShuttingDown);
        }
        let i = self
            .slots
            .iter()
            .position(|s| &*s.name == name)
            .ok_or_else(|| AdminError::UnknownProgram(name.to_string()))?;
        let (input, what) = match verb {
            AdminVerb::Start => (Input::Start, "start"),
            AdminVerb::Stop => (Input::Stop, "stop"),
            AdminVerb::Restart => (Input::Restart, "restart"),
        };
        self.output
            .event(name, &format!("{what} requested by the operator"));
        self.apply(i, input);
        Ok(format!("{name}: {}", self.slots[i].machine.state.name()))
    }

    fn on_deadlines(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].machine.deadline().is_some_and(|d| d <= now) {
                self.apply(i, Input::Deadline);
            }
        }
        if let Some(shutdown) = &mut self.shutdown {
            shutdown.on_deadline(now, &self.slots, &self.output);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let programs = self.slots.iter().filter_map(|s| s.machine.deadline());
        programs
            .chain(self.shutdown.as_ref().and_then(Shutdown::deadline))
            .min()
    }

    /// Starts every waiting program whose dependencies are satisfied. Programs
    /// are in start order, so one pass sees the effect of earlier starts.
    fn start_waiting(&mut self) {
        if self.shutdown.is_some() {
            return;
        }
        for i in 0..self.slots.len() {
            if self.slots[i].machine.state == State::Waiting && self.dependencies_met(i) {
                self.apply(i, Input::DepsReady);
            }
        }
    }

    fn dependencies_met(&self, i: usize) -> bool {
        self.slots[i].program.depends_on.iter().all(|dep| {
            self.slots
                .iter()
                .find(|s| *s.name == *dep.name)
                .is_some_and(|s| match dep.condition {
                    Condition::Started => matches!(
                        s.machine.state,
                        State::Starting { .. } | State::Running { .. }
                    ),
                    Condition::Healthy => s.machine.is_ready(),
                })
        })
    }

    fn give_up(&mut self, i: usize) {
        let name = self.slots[i].name.clone();
        match self.config.supervisor.on_give_up {
            GiveUp::Exit => {
                self.output.event(
                    &name,
                    "failed: stopping everything and exiting with code 3 (on_give_up = \"exit\")",
                );
                self.begin_shutdown(Exit::GaveUp);
            }
            GiveUp::Stay => self.output.event(
                &name,
                "failed: left stopped (on_give_up = \"stay\"); `selfheal start` brings it back",
            ),
        }
    }

    fn on_stop_signal(&mut self, signal: Signal) {
        match &mut self.shutdown {
            None => {
                self.output.note(&format!(
                    "received {}: stopping all programs (dependants first)",
                    signal.as_str()
                ));
                self.begin_shutdown(Exit::Clean);
            }
            Some(shutdown) if matches!(signal, Signal::SIGTERM | Signal::SIGINT) => {
                self.output.note(&format!(
                    "received {} again: forcing (SIGKILL to every program)",
                    signal.as_str()
                ));
                shutdown.force(&self.slots);
            }
            Some(_) => {}
        }
    }

    fn begin_shutdown(&mut self, exit: Exit) {
        if self.shutdown.is_none() {
            self.shutdown = Some(Shutdown::new(
                exit,
                Instant::now() + self.config.supervisor.shutdown_timeout,
            ));
        }
    }

    /// Moves the ordered shutdown on; returns the exit once everything is down.
    fn progress_shutdown(&mut self) -> Option<Exit> {
        self.shutdown.as_ref()?;
        for i in (0..self.slots.len()).rev() {
            let state = &self.slots[i].machine.state;
            let wants_stop = match state {
                State::Waiting | State::Backoff { .. } => true,
                State::Starting { .. } | State::Running { .. } => self.dependants_down(i),
                State::Stopping { then, .. } => *then != state::AfterStop::Stay,
                State::Stopped | State::Failed => false,
            };
            if wants_stop {
                self.apply(i, Input::Stop);
            }
        }
        let all_down = self.slots.iter().all(|s| s.machine.state.pid().is_none());
        let shutdown = self.shutdown.as_mut()?;
        shutdown.progress(all_down, std::process::id() == 1, &self.output)
    }

    fn dependants_down(&self, i: usize) -> bool {
        let name = &self.slots[i].name;
        self.slots
            .iter()
            .all(|s| !s.program.depends_on(name) || s.machine.state.pid().is_none())
    }

    fn forward(&mut self, signal: Signal) {
        let mut sent = 0;
        for slot in &self.slots {
            if let Some(pid) = slot.machine.state.pid() {
                if killpg(nix::unistd::Pid::from_raw(pid), signal).is_ok() {
                    sent += 1;
                }
            }
        }
        self.output.note(&format!(
            "received {}: forwarded to {sent} programs",
            signal.as_str()
        ));
    }

    fn publish(&self) {
        let now = Instant::now();
        let programs = self
            .slots
            .iter()
            .map(|s| {
                let m = &s.machine;
                ProgramStatus {
                    name: s.name.to_string(),
                    state: m.state.name().to_string(),
                    ready: m.is_ready(),
                    pid: m.state.pid(),
                    started_at_ms: m.state.pid().and(s.started_at_ms),
                    uptime_ms: None,
                    restarts: m.total_restarts,
                    recent_restarts: m.recent_restarts(now),
                    last_exit: m.last_exit.as_ref().map(|t| ExitInfo {
                        code: t.code(),
                        description: t.to_string(),
                    }),
                    health: m.last_probe.as_ref().map(|p| HealthInfo {
                        ok: p.ok,
                        reason: p.reason.clone(),
                    }),
                }
            })
            .collect();
        let snapshot = Snapshot {
            supervisor: SupervisorInfo {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at_ms: self.started_at_ms,
                shutting_down: self.shutdown.is_some(),
                uptime_ms: 0,
            },
            programs,
        };
        self.snapshot.send_replace(snapshot);
    }
}
