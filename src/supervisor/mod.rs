//! The supervisor's runtime: one owner task on a current-thread runtime owns the
//! process table and interprets the pure [`stack::Stack`]. Signals (SIGCHLD
//! included), probe results, admin requests and deadlines arrive in one
//! `select!`; each becomes a [`StackInput`]; the [`StackAction`]s that come back
//! are carried out here (spawn, kill, check a group, write a line), feeding the
//! facts they produce back in, until the stack is quiet.
//!
//! - [`stack`]: the whole stack's policy (pure), with its transition table.
//! - [`state`]: one program's lifecycle (pure), with its transition table.
//! - [`notes`]: the supervisor's own typed events.
//! - [`events`]: every event as one record (lines, `GET /events`, the page).
//! - [`backoff`]: restart delays.
//! - [`spawn`]: fork/exec with a clean child.
//! - [`reaper`]: the one `waitid`/`waitpid(-1)` drain, plus /proc look-ups.
//! - [`signals`]: a handler for every catchable signal.
//! - [`exec_error`]: why an exec failed, in words.
//! - `hygiene`: undo the launcher's signal mask, dispositions and descriptors.
//! - [`health`]: probe tasks.
//! - [`sockets`]: listen sockets kept across restarts.
//! - [`logs`]: prefixed program output and event lines.
//! - [`memory`]: `max_memory`, measured from `/proc`; replacing an unhealthy program.
//! - [`traffic`]: `traffic_health`, from the errors a front reports.
//! - [`channel`]: the state channel to fronts (programs with `upstreams`).

// PID 1 must not panic: no unwrap/expect/panic/unchecked indexing on runtime
// paths (tests may, where a panic is the failure report).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod backoff;
pub mod channel;
pub mod events;
pub mod exec_error;
pub mod health;
mod hygiene;
pub mod logs;
pub mod memory;
pub mod notes;
pub mod reaper;
pub mod signals;
pub mod sockets;
pub mod spawn;
pub mod stack;
pub mod state;
pub mod traffic;

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid as NixPid;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::admin::snapshot::{self, ExitInfo, HealthInfo, ProgramStatus, Snapshot, SupervisorInfo};
use crate::cli::RunArgs;
use crate::config::{self, Config, Program};
use crate::exit::Exit;
use events::{EventLog, Record};
use health::ExecWaiters;
use logs::Output;
pub use stack::AdminVerb;
use stack::{Member, Stack, StackAction, StackInput, Target};
use state::{Input, Leftover, Machine, Pid, Policy, State, Termination};

/// A leader that exits 0 sooner than this after its start, leaving a process
/// re-parented to the supervisor, is taken to have daemonized itself.
const DAEMON_WINDOW: Duration = Duration::from_secs(2);

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
    /// The current status, built on demand (nothing is built while nobody asks).
    Snapshot(oneshot::Sender<Snapshot>),
    /// A front's report on its state channel.
    Report(crate::statefd::Report),
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
    // First, before any thread or descriptor of ours exists (then the low fds).
    for problem in hygiene::reset_inherited_state() {
        eprintln!("selfheal: {problem}");
    }
    sockets::reserve_low_fds();
    let launch = match Launch::of(&args) {
        Ok(launch) => launch,
        Err(exit) => return Ok(exit.into()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let exit = runtime.block_on(run(launch, args));
    Ok(exit.into())
}

/// What this run supervises and how it talks.
struct Launch {
    config: Config,
    /// Serve the admin API (not in `selfheal -- CMD` without a config).
    admin: bool,
    destination: logs::Destination,
}

/// The name the main program of `selfheal -- CMD` goes by.
const MAIN_NAME: &str = "main";

impl Launch {
    /// A config (exit 2 on error), with `-- CMD` added as the main program. In
    /// that mode only an explicit `--config` is read (never the default path or
    /// `SELFHEAL_CONFIG`: `docker run IMAGE -- CMD` must not start the image's stack).
    fn of(args: &RunArgs) -> Result<Launch, Exit> {
        let init = !args.main.command.is_empty();
        let mut config = match (&args.config.config, init) {
            (None, true) => Config::empty(),
            (Some(path), _) => load(path)?,
            (None, false) => load(&args.config.resolve())?,
        };
        let admin = !init || args.config.config.is_some();
        if init {
            if config
                .programs
                .iter()
                .any(|p| p.name == MAIN_NAME || p.main)
            {
                eprintln!(
                    "selfheal: the config already has a program named {MAIN_NAME:?} or with main = true; \
                     it cannot be combined with -- CMD"
                );
                return Err(Exit::Config);
            }
            let main = main_program(&args.main, &config.programs);
            config.programs.push(main);
        }
        let destination = match (init && !admin, args.main.verbose) {
            (false, _) => logs::Destination::Stdout,
            (true, true) => logs::Destination::Stderr,
            (true, false) => logs::Destination::Nowhere,
        };
        Ok(Launch {
            config,
            admin,
            destination,
        })
    }
}

fn load(path: &std::path::Path) -> Result<Config, Exit> {
    config::load(path).map_err(|err| {
        eprint!("{err}");
        if matches!(err, config::ConfigError::Read { .. }) {
            eprintln!();
        }
        Exit::Config
    })
}

/// `-- CMD ARGS`: run once (never restarted), after every sidecar is ready;
/// when it exits, the rest of its group gets TERM, then KILL after `--grace`.
fn main_program(args: &crate::cli::MainArgs, sidecars: &[Program]) -> Program {
    let mut p = Program::new(
        MAIN_NAME,
        args.command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    );
    p.restart = config::RestartPolicy::Never;
    p.stop_timeout = args.grace;
    p.main = true;
    p.depends_on = sidecars
        .iter()
        .map(|s| config::Dependency {
            name: s.name.clone(),
            condition: config::Condition::Healthy,
        })
        .collect();
    p
}

/// The runtime side of one program: what the pure machine does not hold.
struct Slot {
    program: Arc<Program>,
    /// Bumped at every spawn, so probe results of a past incarnation are dropped.
    generation: u64,
    probe: Option<tokio::task::AbortHandle>,
    listen: Vec<(OwnedFd, String)>,
    started_at_ms: Option<u64>,
    /// When the current (or last) leader was spawned, for daemon detection.
    spawned_at: Instant,
    /// Boot-relative time of that spawn, to compare with `/proc` start times.
    spawned_boot: Duration,
    /// The process group of the current or last incarnation (its leader's pid).
    last_pgid: Option<Pid>,
    /// Replacements by cause (`over_memory`, `traffic`), for the status.
    replacements: std::collections::BTreeMap<&'static str, u64>,
    /// The `traffic_health` window, when it has one.
    traffic: Option<traffic::Window>,
}

struct Supervisor {
    stack: Stack,
    /// `--pdeathsig` for the main program.
    main_death_signal: i32,
    slots: Vec<Slot>,
    /// Live leader pid → program index.
    leaders: HashMap<Pid, usize>,
    tx: mpsc::UnboundedSender<Msg>,
    waiters: ExecWaiters,
    output: Output,
    events: Arc<EventLog>,
    started_at_ms: u64,
    exit: Option<Exit>,
    channels: channel::Channels,
}

async fn run(launch: Launch, args: RunArgs) -> Exit {
    let config = launch.config;
    let names: Vec<&str> = config.programs.iter().map(|p| p.name.as_str()).collect();
    let output = Output::to(
        args.log_format,
        &names,
        launch.destination,
        config.supervisor.log_ring,
    );
    let events = Arc::new(EventLog::default());
    // Handlers first: PID 1 ignores every signal it has no handler for.
    let mut signals = match signals::install() {
        Ok((s, warnings)) => {
            warnings.iter().for_each(|w| output.note(w));
            s
        }
        Err(e) => {
            output.note(&format!("cannot install signal handlers: {e}"));
            return Exit::Internal;
        }
    };
    // Signals sent since start-up were held (hygiene); now they have handlers.
    if let Err(e) = hygiene::unblock_signals() {
        output.note(&format!("cannot unblock signals: {e}"));
        return Exit::Internal;
    }
    let pid = std::process::id();
    if pid != 1 {
        // Orphans of our children are re-parented to us instead of to init.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            output.note(&format!("cannot become a child subreaper: {e}"));
        }
    }
    let slots = match bind_slots(&config, &output) {
        Some(slots) => slots,
        None => return Exit::Internal,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let admin_socket = launch.admin.then(|| config.supervisor.admin_socket.clone());
    if let Some(socket) = &admin_socket {
        match crate::admin::api::bind(socket) {
            Ok(listener) => {
                let shared = crate::admin::api::Shared {
                    tx: tx.clone(),
                    events: events.clone(),
                    logs: output.book(),
                };
                tokio::spawn(crate::admin::api::serve(listener, shared));
            }
            Err(e) => {
                let text = format!("cannot serve the admin API on {}: {e:#}", socket.display());
                output.note(&text);
                eprintln!("selfheal: {text}");
                return Exit::Internal;
            }
        }
    }
    let programs: Vec<Arc<Program>> = slots.iter().map(|s| s.program.clone()).collect();
    let channels = match channel::Channels::open(&programs, &tx) {
        Ok(c) => c,
        Err(e) => {
            output.note(&format!("cannot open the state channel: {e}"));
            return Exit::Internal;
        }
    };
    let mut sup = Supervisor {
        stack: build_stack(&config, pid, &args.main),
        main_death_signal: args.main.pdeathsig,
        slots,
        leaders: HashMap::new(),
        tx,
        waiters: ExecWaiters::default(),
        output,
        events,
        started_at_ms: snapshot::now_ms(),
        exit: None,
        channels,
    };
    sup.publish(Record::text(
        None,
        format!(
            "supervising {} programs as pid {pid}{}; admin socket {}",
            sup.slots.len(),
            if pid == 1 { " (init)" } else { " (subreaper)" },
            admin_socket
                .as_ref()
                .map_or_else(|| "none".to_string(), |s| s.display().to_string())
        ),
    ));
    for warning in &config.warnings {
        sup.publish(Record::text(
            None,
            warning.display(&config.path).to_string(),
        ));
    }
    let first = sup.stack.start(Instant::now());
    sup.carry_out(first);

    let mut memory_tick = memory::timer(config.programs.iter().any(|p| p.max_memory.is_some()));
    let exit = loop {
        if let Some(exit) = sup.exit {
            break exit;
        }
        let deadline = sup.stack.next_deadline();
        tokio::select! {
            biased;
            _ = signals.child.recv() => sup.reap(),
            Some(signal) = signals.rx.recv() => sup.feed(StackInput::Signal(signal)),
            Some(msg) = rx.recv() => sup.on_message(msg),
            _ = sleep_until(deadline) => sup.feed(StackInput::Deadline),
            _ = memory::tick(&mut memory_tick) => sup.check_memory(),
        }
    };
    if let Some(socket) = &admin_socket {
        let _ = std::fs::remove_file(socket);
    }
    // The programs' last lines: read them before the runtime goes; then the
    // queue (the exit note among it) reaches stdout, within a bound.
    sup.output.finish(logs::FINISH_TIMEOUT).await;
    sup.output.flush(Duration::from_secs(1));
    exit
}

/// Binds every program's listen sockets (once, for all its incarnations).
fn bind_slots(config: &Config, output: &Output) -> Option<Vec<Slot>> {
    let mut slots = Vec::with_capacity(config.programs.len());
    for program in &config.programs {
        let mut listen = Vec::new();
        for addr in &program.listen {
            match sockets::bind(*addr) {
                Ok(fd) => listen.push((fd, addr.to_string())),
                Err(e) => {
                    let name = &program.name;
                    output.note(&format!("cannot listen on {addr} for program {name}: {e}"));
                    return None;
                }
            }
        }
        slots.push(Slot {
            program: Arc::new(program.clone()),
            generation: 0,
            probe: None,
            listen,
            started_at_ms: None,
            spawned_at: Instant::now(),
            spawned_boot: Duration::ZERO,
            last_pgid: None,
            replacements: Default::default(),
            traffic: program.traffic_health.map(traffic::Window::new),
        });
    }
    Some(slots)
}

/// The pure stack for `config`: one member per program, dependencies by index.
fn build_stack(config: &Config, pid: u32, main: &crate::cli::MainArgs) -> Stack {
    let index: HashMap<&str, usize> = config
        .programs
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let seed = u64::from(pid) << 32 ^ snapshot::now_ms();
    let members = config
        .programs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let machine = Machine::new(Policy::of(p), seed ^ i as u64);
            let forward = p.forward_signals.iter().map(|s| *s as i32).collect();
            let mut member = Member::new(&p.name, machine, forward);
            member.deps = p
                .depends_on
                .iter()
                .filter_map(|d| Some((*index.get(d.name.as_str())?, d.condition)))
                .collect();
            member
        })
        .collect();
    let s = &config.supervisor;
    let stack = Stack::new(members, s.on_give_up, s.shutdown_timeout);
    match config.programs.iter().position(|p| p.main) {
        Some(index) => stack.with_main(stack::MainRule {
            index,
            rewrite: main.rewrite.clone(),
            stop_timeout: main.stop_timeout,
        }),
        None => stack,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Supervisor {
    /// Writes an event's line and sends it to the event stream.
    fn publish(&self, record: Record) {
        self.output.record(&record);
        self.events.publish(record);
    }

    /// Feeds one input to the stack and carries out everything that follows.
    fn feed(&mut self, input: StackInput) {
        let actions = self.stack.step(input, Instant::now());
        self.carry_out(actions);
    }

    /// Carries out actions; the facts they produce go back to the stack, in order.
    fn carry_out(&mut self, actions: Vec<StackAction>) {
        let mut queue = VecDeque::from(actions);
        let mut touched = Vec::new();
        while let Some(action) = queue.pop_front() {
            let fact = match action {
                StackAction::Spawn(i) => {
                    touched.push(i);
                    Some(StackInput::Program {
                        index: i,
                        input: self.spawn(i),
                    })
                }
                StackAction::Kill { target, signal } => {
                    send(target, signal);
                    None
                }
                StackAction::CheckGroup { index, pgid } => {
                    (!reaper::group_alive(pgid)).then_some(StackInput::Program {
                        index,
                        input: Input::GroupGone { pgid },
                    })
                }
                StackAction::CheckLeftovers => Some(StackInput::Leftovers {
                    any: reaper::has_children(),
                }),
                StackAction::Report { index, event } => {
                    touched.push(index);
                    if let Some(m) = self.stack.members.get(index) {
                        self.publish(Record::of_event(&m.name, &event));
                        if let Some(backoff) = Record::backoff_after(&m.name, &event) {
                            self.events.publish(backoff);
                        }
                    }
                    None
                }
                StackAction::Note(note) => {
                    self.publish(Record::of_note(&note));
                    None
                }
                StackAction::Exit(exit) => {
                    self.exit = Some(exit);
                    None
                }
            };
            if let Some(fact) = fact {
                queue.extend(self.stack.step(fact, Instant::now()));
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for i in touched {
            self.sync_probe(i);
        }
        self.sync_channels();
    }

    /// Tells fronts of every change of the programs they front.
    fn sync_channels(&mut self) {
        let now = Instant::now();
        let now_ms = snapshot::now_ms();
        let (members, slots) = (&self.stack.members, &self.slots);
        self.channels.sync(now, |i| {
            let (m, s) = (members.get(i)?, slots.get(i)?);
            Some(channel::view(&m.machine, s.generation, now, now_ms))
        });
    }

    fn spawn(&mut self, i: usize) -> Input {
        let Some(slot) = self.slots.get_mut(i) else {
            return Input::SpawnFailed(Termination::ExecFailed {
                code: 127,
                error: "no such program".into(),
            });
        };
        let p = &slot.program;
        let spec = spawn::Spec {
            argv: &p.command,
            env: &p.env,
            workdir: p.workdir.as_deref(),
            user: p.user.as_deref(),
            group: p.group.as_deref(),
            listen: &slot.listen,
            state_fd: self.channels.child_fd(i),
            stdio: if p.main {
                spawn::ChildStdio::Inherit
            } else {
                spawn::ChildStdio::Capture
            },
            foreground: p.main,
            death_signal: if p.main {
                self.main_death_signal
            } else {
                libc::SIGKILL
            },
        };
        match spawn::spawn(&spec) {
            Ok(child) => {
                slot.generation += 1;
                slot.started_at_ms = Some(snapshot::now_ms());
                slot.spawned_at = Instant::now();
                slot.spawned_boot = boot_time();
                slot.last_pgid = Some(child.pid);
                self.leaders.insert(child.pid, i);
                self.channels.spawned(i);
                if let (Some(reader), Some(m)) = (child.output, self.stack.members.get(i)) {
                    logs::pump(self.output.clone(), m.name.clone(), reader);
                }
                Input::Spawned { pid: child.pid }
            }
            Err(how) => {
                if p.main {
                    // Silent or not, the reason the command did not run is said.
                    match &how {
                        Termination::ExecFailed { error, .. } => eprintln!("selfheal: {error}"),
                        other => eprintln!("selfheal: {other}"),
                    }
                }
                Input::SpawnFailed(how)
            }
        }
    }

    /// Probes run exactly while the program has a live, not-stopping process.
    fn sync_probe(&mut self, i: usize) {
        let (Some(slot), Some(member)) = (self.slots.get_mut(i), self.stack.members.get(i)) else {
            return;
        };
        let live = matches!(
            member.machine.state,
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
        let events = reaper::drain(|pid| self.leaders.contains_key(&pid));
        let mut exits = Vec::new();
        let mut orphan_groups = Vec::new();
        for event in events {
            match event {
                reaper::ChildEvent::Exited { pid, pgid, how } => match self.leaders.remove(&pid) {
                    Some(i) => exits.push((i, pid, how)),
                    None => orphan_groups.extend(self.reaped_other(pid, pgid, how)),
                },
                reaper::ChildEvent::Suspended { pid, suspended } => {
                    if let Some(&index) = self.leaders.get(&pid) {
                        let input = Input::Suspended { pid, suspended };
                        self.feed(StackInput::Program { index, input });
                    }
                }
            }
        }
        // Leftovers are judged after the whole drain, so orphans reaped in the
        // same batch no longer count as live members of a group.
        for (i, pid, how) in exits {
            if let Some(handle) = self.slots.get_mut(i).and_then(|s| s.probe.take()) {
                handle.abort(); // a new incarnation needs a new probe task
            }
            let left = self.leftover(i, pid, &how);
            self.feed(StackInput::Program {
                index: i,
                input: Input::Exited { pid, how, left },
            });
        }
        // The last member of a program's group may have been among the orphans:
        // its machine takes `GroupGone` only while it waits for that group.
        orphan_groups.sort_unstable();
        orphan_groups.dedup();
        for (index, pgid) in orphan_groups {
            if !reaper::group_alive(pgid) {
                let input = Input::GroupGone { pgid };
                self.feed(StackInput::Program { index, input });
            }
        }
        self.feed(StackInput::Reaped);
    }

    /// An exit that is not a program's leader: an exec probe, or an orphan.
    /// Returns the program (and group) an orphan belonged to.
    fn reaped_other(&mut self, pid: Pid, pgid: Pid, how: Termination) -> Option<(usize, Pid)> {
        let waiter = self.waiters.lock().ok().and_then(|mut w| w.remove(&pid));
        if let Some(waiter) = waiter {
            let _ = waiter.send(how);
            return None;
        }
        let owner = self.slots.iter().position(|s| s.last_pgid == Some(pgid));
        let program = owner
            .and_then(|i| self.stack.members.get(i))
            .map(|m| m.name.clone());
        self.publish(Record::of_note(&notes::Note::OrphanReaped {
            pid,
            program,
            how,
        }));
        owner.map(|i| (i, pgid))
    }

    /// What program `i`'s leader `pid` left behind (see [`Leftover`]).
    fn leftover(&self, i: usize, pid: Pid, how: &Termination) -> Leftover {
        if reaper::group_alive(pid) {
            return Leftover::Group;
        }
        let Some(slot) = self.slots.get(i) else {
            return Leftover::Nothing;
        };
        if slot.program.main || !how.success() || slot.spawned_at.elapsed() >= DAEMON_WINDOW {
            return Leftover::Nothing;
        }
        let daemons = self.new_orphans(slot.spawned_boot);
        if daemons.is_empty() {
            Leftover::Nothing
        } else {
            Leftover::Daemon(daemons)
        }
    }

    /// Children of the supervisor that are no program's leader nor in a live
    /// program's group, started after `since` (boot-relative).
    fn new_orphans(&self, since: Duration) -> Vec<Pid> {
        let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|t| *t > 0)
            .unwrap_or(100) as u64;
        // One tick of slack: /proc start times are in ticks.
        let since_ticks = (since.as_millis() as u64 * tick / 1000).saturating_sub(1);
        reaper::children_of(std::process::id())
            .into_iter()
            .filter(|p| !self.leaders.contains_key(p))
            .filter(|p| !self.leaders.contains_key(&reaper::group_of(*p)))
            .filter(|p| reaper::start_ticks(*p).is_some_and(|t| t >= since_ticks))
            .collect()
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
                    let input = Input::Probe { ok, reason };
                    self.feed(StackInput::Program { index, input });
                }
            }
            Msg::Admin { verb, name, reply } => {
                let result = self.admin(verb, &name);
                let _ = reply.send(result);
            }
            Msg::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Msg::Report(report) => self.on_report(report),
        }
    }

    fn admin(&mut self, verb: AdminVerb, name: &str) -> Result<String, AdminError> {
        if self.stack.is_stopping() {
            return Err(AdminError::ShuttingDown);
        }
        let index = self
            .stack
            .members
            .iter()
            .position(|m| &*m.name == name)
            .ok_or_else(|| AdminError::UnknownProgram(name.to_string()))?;
        self.feed(StackInput::Admin { index, verb });
        let state = self
            .stack
            .members
            .get(index)
            .map_or("unknown", |m| m.machine.state_name());
        Ok(format!("{name}: {state}"))
    }

    fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let programs = self
            .stack
            .members
            .iter()
            .zip(&self.slots)
            .enumerate()
            .map(|(i, (m, s))| ProgramStatus {
                last_restart: self.channels.last_restart(i),
                replacements_by_cause: s
                    .replacements
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
                ..status_of(m, s, now)
            })
            .collect();
        Snapshot {
            supervisor: SupervisorInfo {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at_ms: self.started_at_ms,
                shutting_down: self.stack.is_stopping(),
                uptime_ms: 0,
            },
            programs,
        }
        .with_uptimes()
    }
}

/// One program's line of the status.
fn status_of(member: &Member, slot: &Slot, now: Instant) -> ProgramStatus {
    let m = &member.machine;
    ProgramStatus {
        name: member.name.to_string(),
        state: m.state_name().to_string(),
        ready: m.is_ready(),
        problem: problem(m),
        pid: m.state.pid(),
        started_at_ms: m.state.pid().and(slot.started_at_ms),
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
        last_restart: None,
        replacements_by_cause: Default::default(),
    }
}

/// Why the program keeps the stack from being ready, if it does. A program that
/// ended well and is not meant to restart (`exited`) does not.
fn problem(m: &Machine) -> Option<String> {
    let last_exit = || {
        m.last_exit
            .as_ref()
            .map_or_else(String::new, |e| format!(" (last: {e})"))
    };
    let text = match &m.state {
        State::Running { ready: true, .. } if !m.suspended => return None,
        State::Exited => return None,
        State::Starting { .. } | State::Running { .. } if m.suspended => {
            "suspended by a signal (SIGSTOP/SIGTSTP)".to_string()
        }
        State::Running { .. } => format!(
            "not ready: {}",
            m.last_probe
                .as_ref()
                .map_or("no probe result", |p| &p.reason)
        ),
        State::Starting { .. } => "starting: no probe has passed yet".to_string(),
        State::Waiting => "waiting for its dependencies".to_string(),
        State::Backoff { .. } => format!("restarting{}", last_exit()),
        State::Stopping(_) => "stopping".to_string(),
        State::Stopped => "stopped by the operator".to_string(),
        State::Failed => match &m.failure {
            Some(f) => format!("failed: {f}{}", last_exit()),
            None => format!("failed{}", last_exit()),
        },
    };
    Some(text)
}

/// Carries out the one kill action. Errors are ignored: ESRCH means it is
/// already gone, and the reaper will tell.
fn send(target: Target, signal: i32) {
    match target {
        Target::Group(pid) => raw_kill(-pid, signal),
        // As PID 1, everything in the namespace; on a host, only our children
        // (orphans re-parented to us as subreaper) — never kill(-1) there.
        Target::Leftovers if std::process::id() == 1 => raw_kill(-1, signal),
        Target::Leftovers => {
            for pid in reaper::children_of(std::process::id()) {
                raw_kill(pid, signal);
            }
        }
    }
}

/// `kill(2)` with a signal number, which may be a real-time signal nix cannot name.
fn raw_kill(pid: Pid, signal: i32) {
    match Signal::try_from(signal) {
        Ok(sig) => {
            let _ = kill(NixPid::from_raw(pid), sig);
        }
        // SAFETY: kill(2) takes plain integers and touches no memory.
        Err(_) => unsafe {
            libc::kill(pid, signal);
        },
    }
}

/// Time since boot (CLOCK_BOOTTIME), the clock of `/proc/PID/stat` start times.
fn boot_time() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default()
}
