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
//! - [`services`]: replicas, reload, `restart`/`scale`/`signal` by name.
//! - [`logs`]: prefixed program output and event lines.
//! - [`memory`]: `max_memory`, measured from `/proc`; replacing an unhealthy program.
//! - [`traffic`]: `traffic_health`, from the errors a front reports.
//! - [`channel`]: the state channel to fronts (programs with `upstreams`).
//! - [`metrics`]: Prometheus metrics, updated here, read by the admin API.

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
pub mod metrics;
pub mod notes;
pub mod reaper;
pub mod services;
pub mod signals;
pub mod sockets;
pub mod spawn;
pub mod stack;
pub mod state;
pub mod traffic;

use std::collections::{HashMap, VecDeque};
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
use state::{Input, Leftover, Machine, Pid, State, Termination};

/// A leader that exits 0 sooner than this after its start, leaving a process
/// re-parented to the supervisor, is taken to have daemonized itself.
const DAEMON_WINDOW: Duration = Duration::from_secs(2);

/// How long a surge's new process may pass its probe without being seen
/// accepting on the shared socket (in an epoll set) before its passes count.
const SURGE_ACCEPT_GRACE: Duration = Duration::from_secs(1);

/// Messages to the owner task.
pub enum Msg {
    Probe {
        index: usize,
        generation: u64,
        ok: bool,
        reason: String,
        /// How long the probe took.
        duration: Duration,
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
    /// `selfheal reload`: re-read the config and apply it.
    Reload(oneshot::Sender<Result<Vec<services::Applied>, services::ReloadError>>),
    /// `selfheal scale NAME N`.
    Scale {
        name: String,
        replicas: u32,
        reply: oneshot::Sender<Result<String, AdminError>>,
    },
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
pub(crate) struct Slot {
    /// The config its current (or last) process was started with.
    program: Arc<Program>,
    /// Its replica number (`SELFHEAL_REPLICA`).
    replica: u32,
    /// Bumped at every spawn attempt (a failed exec too), so probe results of a
    /// past incarnation are dropped; the status shows it as `incarnation`.
    generation: u64,
    probe: Option<tokio::task::AbortHandle>,
    listen: services::Listen,
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
    /// The leaders' pidfds: their exits, reaped without a SIGCHLD.
    pidfds: reaper::Leaders,
    tx: mpsc::UnboundedSender<Msg>,
    waiters: ExecWaiters,
    output: Output,
    events: Arc<EventLog>,
    metrics: Arc<metrics::Metrics>,
    started_at_ms: u64,
    exit: Option<Exit>,
    channels: channel::Channels,
    /// Every program's current config and held sockets, by name.
    configs: HashMap<Arc<str>, services::ServiceConfig>,
    /// A reload changed `configs` since the loop last looked (whether the
    /// memory timer is now needed is asked only then, not on every event).
    reloaded: bool,
    /// The file `reload` reads (none in `selfheal -- CMD` without a config).
    config_path: Option<std::path::PathBuf>,
    /// `log_file` writers by path.
    log_files: HashMap<std::path::PathBuf, Arc<logs::Writer>>,
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
    let configs = match services::bind_all(&config) {
        Ok(configs) => configs,
        Err(e) => {
            output.note(&e);
            return Exit::Internal;
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let metrics = Arc::new(metrics::Metrics::new(
        &config.programs,
        output.dropped_lines(),
    ));
    let admin_socket = launch.admin.then(|| config.supervisor.admin_socket.clone());
    let shared = crate::admin::api::Shared {
        tx: tx.clone(),
        events: events.clone(),
        logs: output.book(),
        metrics: metrics.clone(),
    };
    if let Some(socket) = &admin_socket {
        match crate::admin::api::bind(socket) {
            Ok(listener) => {
                tokio::spawn(crate::admin::api::serve(listener, shared.clone()));
            }
            Err(e) => {
                let text = format!("cannot serve the admin API on {}: {e:#}", socket.display());
                output.note(&text);
                eprintln!("selfheal: {text}");
                return Exit::Internal;
            }
        }
    }
    let (stack, instances) = build_stack(&config, pid, &args.main);
    let advertised = admin_socket.as_deref().and_then(|s| {
        crate::admin::advertise::advertise(s)
            .map_err(|e| output.note(&e))
            .ok()
    });
    let admin_tcp = match launch.admin {
        true => match crate::admin::api::bind_tcp(&config.supervisor).await {
            Ok(Some((listener, auth))) => {
                let addr = listener.local_addr().ok();
                tokio::spawn(crate::admin::api::serve_tcp(listener, shared, auth));
                addr
            }
            Ok(None) => None,
            Err(e) => {
                let text = format!("cannot serve the admin API on TCP: {e:#}");
                output.note(&text);
                eprintln!("selfheal: {text}");
                return Exit::Internal;
            }
        },
        false => None,
    };
    let mut sup = Supervisor {
        stack,
        main_death_signal: args.main.pdeathsig,
        slots: Vec::new(),
        leaders: HashMap::new(),
        pidfds: reaper::Leaders::default(),
        tx,
        waiters: ExecWaiters::default(),
        output,
        events,
        metrics,
        started_at_ms: snapshot::now_ms(),
        exit: None,
        channels: channel::Channels::default(),
        configs,
        reloaded: false,
        config_path: services::reload_path(&config),
        log_files: HashMap::new(),
    };
    if let Err(e) = sup.configure_channels() {
        sup.output
            .note(&format!("cannot open the state channel: {e}"));
        return Exit::Internal;
    }
    sup.carry_out(instances);
    sup.publish(Record::text(
        None,
        format!(
            "supervising {} program{} as pid {pid}{}; admin socket {}{}",
            sup.slots.len(),
            if sup.slots.len() == 1 { "" } else { "s" },
            if pid == 1 { " (init)" } else { " (subreaper)" },
            admin_socket
                .as_ref()
                .map_or_else(|| "none".to_string(), |s| s.display().to_string()),
            admin_tcp.map_or_else(String::new, |a| format!(", admin on http://{a}/"))
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
    let leader_exits = sup.pidfds.readiness();
    let exit = loop {
        if let Some(exit) = sup.exit {
            break exit;
        }
        let reloaded = std::mem::take(&mut sup.reloaded);
        if memory_tick.is_none()
            && reloaded
            && sup.configs.values().any(|c| c.program.max_memory.is_some())
        {
            memory_tick = memory::timer(true); // a reload gave a program max_memory
        }
        let deadline = sup.stack.next_deadline();
        tokio::select! {
            biased;
            // Before SIGCHLD: a leader's exit raises both, and its pidfd
            // reaps and respawns it without walking every child first.
            mut exited = reaper::leader_exited(leader_exits.as_ref()) => {
                sup.reap(false);
                exited.clear_ready();
            }
            _ = signals.child.recv() => sup.reap(true),
            Some(signal) = signals.rx.recv() => sup.feed(StackInput::Signal(signal)),
            Some(msg) = rx.recv() => sup.on_message(msg),
            _ = sleep_until(deadline) => sup.feed(StackInput::Deadline),
            _ = memory::tick(&mut memory_tick) => sup.check_memory(),
        }
    };
    if let Some(advertised) = advertised {
        advertised.withdraw();
    }
    if let Some(socket) = &admin_socket {
        let _ = std::fs::remove_file(socket);
    }
    // The programs' last lines: read them before the runtime goes; then the
    // queue (the exit note among it) reaches stdout, within a bound.
    sup.output.finish(logs::FINISH_TIMEOUT).await;
    sup.output.flush(Duration::from_secs(1));
    exit
}

/// The pure stack for `config`: one service per program, its instances
/// added (the actions that make their slots come back with it).
fn build_stack(
    config: &Config,
    pid: u32,
    main: &crate::cli::MainArgs,
) -> (Stack, Vec<StackAction>) {
    let s = &config.supervisor;
    let mut stack = Stack::new(Vec::new(), s.on_give_up, s.shutdown_timeout);
    let seed = u64::from(pid) << 32 ^ snapshot::now_ms();
    let changes = config
        .programs
        .iter()
        .enumerate()
        .map(|(i, p)| stack::Change::Add {
            service: services::service_of(p),
            seed: seed ^ (i as u64) << 16,
        })
        .collect();
    let actions = stack.configure(changes, Instant::now());
    let main_service = config.programs.iter().find(|p| p.main);
    let main_index = main_service.and_then(|p| stack.live_instances(&p.name).first().copied());
    let stack = match main_index {
        Some(index) => stack.with_main(stack::MainRule {
            index,
            rewrite: main.rewrite.clone(),
            stop_timeout: main.stop_timeout,
        }),
        None => stack,
    };
    (stack, actions)
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
        // The member the input is about counts as touched even when its
        // machine reports nothing (a stop during backoff); a structural
        // change may alter any program's combined state.
        let touched = match &input {
            StackInput::Program { index, .. } | StackInput::Admin { index, .. } => vec![*index],
            StackInput::Apply(_) => {
                self.channels.touch_all();
                Vec::new()
            }
            _ => Vec::new(),
        };
        let actions = self.stack.step(input, Instant::now());
        self.carry_out_touching(actions, touched);
    }

    /// Carries out actions; the facts they produce go back to the stack, in order.
    fn carry_out(&mut self, actions: Vec<StackAction>) {
        self.carry_out_touching(actions, Vec::new());
    }

    /// [`Supervisor::carry_out`], with members already known to be touched.
    fn carry_out_touching(&mut self, actions: Vec<StackAction>, mut touched: Vec<usize>) {
        let mut queue = VecDeque::from(actions);
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
                        self.metrics
                            .program_event(index, &m.instance.service, &event);
                    }
                    None
                }
                StackAction::Note(note) => {
                    self.metrics.note(&note);
                    self.publish(Record::of_note(&note));
                    None
                }
                StackAction::Exit(exit) => {
                    self.exit = Some(exit);
                    None
                }
                StackAction::NewInstance {
                    index,
                    service,
                    replica,
                } => {
                    self.new_slot(index, &service, replica);
                    self.channels.touch(&service);
                    None
                }
                StackAction::Gone(index) => {
                    touched.push(index);
                    if let Some(slot) = self.slots.get_mut(index) {
                        slot.listen = Arc::default(); // its sockets' last holder may be it
                        if let Some(probe) = slot.probe.take() {
                            probe.abort();
                        }
                    }
                    None
                }
                StackAction::Reload => {
                    if let Err(e) = self.reload() {
                        let text = format!("reload refused, nothing changed: {e}");
                        self.publish(Record::text(None, text));
                    }
                    None
                }
            };
            if let Some(fact) = fact {
                queue.extend(self.stack.step(fact, Instant::now()));
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for i in &touched {
            self.sync_probe(*i);
        }
        self.sync_channels(&touched);
    }

    /// Member `index`'s output also goes to `config`'s file (one writer per
    /// path, shared by the instances of a program).
    fn attach_log_file(&mut self, index: usize, config: config::LogFile) {
        let Some(name) = self.stack.members.get(index).map(|m| m.name.clone()) else {
            return;
        };
        let writer = match self.log_files.get(&config.path) {
            Some(writer) => writer.clone(),
            None => match logs::file::open(&config) {
                Ok(writer) => {
                    self.log_files.insert(config.path.clone(), writer.clone());
                    writer
                }
                Err(e) => {
                    let text = format!("cannot write its log_file {}: {e}", config.path.display());
                    self.publish(Record::text(Some(name), text));
                    return;
                }
            },
        };
        self.output.attach_file(name, writer);
    }

    /// The slot of member `index`, made from its program's current config.
    fn new_slot(&mut self, index: usize, service: &str, replica: u32) {
        let Some(config) = self.configs.get(service) else {
            return;
        };
        if index != self.slots.len() {
            return;
        }
        if let Some(log_file) = &config.program.log_file {
            self.attach_log_file(index, log_file.clone());
        }
        let Some(config) = self.configs.get(service) else {
            return;
        };
        let mut slot = services::slot_of(config, replica);
        // A surge's new process continues the count of the one it replaces.
        let replaced = self
            .stack
            .members
            .get(index)
            .and_then(|m| m.instance.replaces);
        if let Some(old) = replaced.and_then(|o| self.slots.get(o)) {
            slot.generation = old.generation;
            slot.replacements = old.replacements.clone();
        }
        self.slots.push(slot);
    }

    fn spawn(&mut self, i: usize) -> Input {
        let Some(slot) = self.slots.get_mut(i) else {
            return Input::SpawnFailed(Termination::ExecFailed {
                code: 127,
                error: "no such program".into(),
            });
        };
        // The program's config as of now (a reload may have changed it).
        if let Some(config) = self.configs.get(slot.program.name.as_str()) {
            slot.program = config.program.clone();
            slot.listen = config.listen.clone();
            if slot.traffic.as_ref().map(traffic::Window::rule) != config.program.traffic_health {
                slot.traffic = config.program.traffic_health.map(traffic::Window::new);
            }
        }
        slot.generation += 1;
        let p = &slot.program;
        // Only programs with several replicas get their number (the others'
        // environment stays exactly the supervisor's plus `env`).
        let many = self.stack.members.get(i).is_some_and(|m| {
            m.instance.replica > 0
                || self
                    .stack
                    .service(&m.instance.service)
                    .is_some_and(|s| s.replicas > 1)
        });
        let (argv, env) = with_replica(p, slot.replica, many);
        let spec = spawn::Spec {
            argv: &argv,
            env: &env,
            workdir: p.workdir.as_deref(),
            user: p.user.as_deref(),
            group: p.group.as_deref(),
            listen: &slot.listen,
            state_fd: self.channels.child_fd(&p.name),
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
            pidfd: self.pidfds.enabled(),
        };
        match spawn::spawn(&spec) {
            Ok(child) => {
                slot.started_at_ms = Some(snapshot::now_ms());
                slot.spawned_at = Instant::now();
                slot.spawned_boot = boot_time();
                slot.last_pgid = Some(child.pid);
                self.leaders.insert(child.pid, i);
                self.channels.spawned(&p.name);
                if let Some(pidfd) = child.pidfd {
                    self.pidfds.watch(child.pid, pidfd);
                }
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

    /// A surge's new process whose probe passed while it does not accept on
    /// the shared sockets yet: the answer came from the old process, so the
    /// pass is not its own (it is dropped; the probe goes on).
    fn surge_not_accepting(&self, index: usize) -> bool {
        let (Some(member), Some(slot)) = (self.stack.members.get(index), self.slots.get(index))
        else {
            return false;
        };
        if member.instance.replaces.is_none() || slot.listen.is_empty() {
            return false;
        }
        // A server that accepts without epoll (blocking accept, poll, select)
        // is not seen in /proc: after this long its passes count anyway.
        if slot.spawned_at.elapsed() >= SURGE_ACCEPT_GRACE {
            return false;
        }
        let Some(pid) = member.machine.state.pid() else {
            return false;
        };
        !sockets::accepting(pid, &sockets::inodes(&slot.listen))
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

    /// Takes the children's events: the leaders whose pidfd says they exited,
    /// and with `all` (a SIGCHLD) every child's, orphans' and stops included.
    /// Leaders found by their pidfds are acted on (respawned) before the walk
    /// over every child, which costs the kernel a pass over all of them (with
    /// 1000 programs, a fifth of the supervisor's CPU per respawn): a respawn
    /// never waits for it, whichever of SIGCHLD and the pidfd is seen first.
    fn reap(&mut self, all: bool) {
        let leaders = self.pidfds.drain();
        if !all || !leaders.is_empty() {
            self.take_child_events(leaders);
        }
        if all {
            let others = reaper::drain(|pid| self.leaders.contains_key(&pid));
            for event in &others {
                if let reaper::ChildEvent::Exited { pid, .. } = event {
                    self.pidfds.forget(*pid);
                }
            }
            self.take_child_events(others);
        }
    }

    /// Acts on one batch of the children's events.
    fn take_child_events(&mut self, events: Vec<reaper::ChildEvent>) {
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
        self.metrics.orphan_reaped();
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
                duration,
            } => {
                self.metrics.probe(index, ok, duration);
                let current = self
                    .slots
                    .get(index)
                    .is_some_and(|s| s.generation == generation);
                if current && ok && self.surge_not_accepting(index) {
                    // The old process answered: probe the new one again on
                    // the fast schedule of a start (a fresh probe task), not
                    // after a whole interval.
                    if let Some(probe) = self.slots.get_mut(index).and_then(|s| s.probe.take()) {
                        probe.abort();
                    }
                    self.sync_probe(index);
                } else if current {
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
            Msg::Reload(reply) => {
                let _ = reply.send(self.reload());
            }
            Msg::Scale {
                name,
                replicas,
                reply,
            } => {
                let _ = reply.send(self.scale(&name, replicas));
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let programs = self
            .stack
            .members
            .iter()
            .zip(&self.slots)
            .filter(|(m, _)| !m.instance.gone)
            .map(|(m, s)| {
                let many = self
                    .stack
                    .service(&m.instance.service)
                    .is_some_and(|s| s.replicas > 1);
                let rollout = self.stack.rollout_state(&m.instance.service);
                ProgramStatus {
                    last_restart: self.channels.last_restart(&m.instance.service),
                    replacements_by_cause: s
                        .replacements
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect(),
                    ..status_of(m, s, now, many, rollout)
                }
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

type Argv<'a> = std::borrow::Cow<'a, [String]>;
type Env<'a> = std::borrow::Cow<'a, [(String, String)]>;

/// The argv and `env` of replica `replica` of `p`: `${SELFHEAL_REPLICA}`
/// replaced by its number, and `SELFHEAL_REPLICA=n` added when the program
/// has several (`many`). Borrowed as they are when there is nothing to do.
fn with_replica(p: &Program, replica: u32, many: bool) -> (Argv<'_>, Env<'_>) {
    use std::borrow::Cow;
    let mark = config::REPLICA_PLACEHOLDER;
    let n = replica.to_string();
    let argv = if p.command.iter().any(|a| a.contains(mark)) {
        Cow::Owned(p.command.iter().map(|a| a.replace(mark, &n)).collect())
    } else {
        Cow::Borrowed(p.command.as_slice())
    };
    let env = if many || p.env.iter().any(|(_, v)| v.contains(mark)) {
        let mut env: Vec<(String, String)> = p
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.replace(mark, &n)))
            .collect();
        if many {
            env.push(("SELFHEAL_REPLICA".into(), n));
        }
        Cow::Owned(env)
    } else {
        Cow::Borrowed(p.env.as_slice())
    };
    (argv, env)
}

/// One program's line of the status.
fn status_of(
    member: &Member,
    slot: &Slot,
    now: Instant,
    many: bool,
    rollout: Option<&str>,
) -> ProgramStatus {
    let m = &member.machine;
    let instance = &member.instance;
    let name = match (many, instance.replica) {
        (true, 0) => format!("{}#0", member.name),
        _ => member.name.to_string(),
    };
    ProgramStatus {
        name,
        program: instance.service.to_string(),
        replica: instance.replica,
        retiring: instance.retiring,
        rollout: rollout.map(String::from),
        state: m.state_name().to_string(),
        ready: m.is_ready(),
        // A surge's new process and the one it replaces (or any retiring one)
        // do not make the stack unready: the other serves meanwhile.
        problem: (!instance.retiring && instance.replaces.is_none())
            .then(|| problem(m))
            .flatten(),
        pid: m.state.pid(),
        incarnation: slot.generation,
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
