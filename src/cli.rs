//! The command-line surface. `main.rs` parses [`Cli`] and dispatches.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{app::AppArgs, proxy::ProxyArgs};

/// selfheal: supervise a stack of programs as PID 1 and bring them back.
///
/// With no subcommand it runs the supervisor (same as `selfheal run`).
#[derive(Debug, Parser)]
#[command(name = "selfheal", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the supervisor (the default when no subcommand is given).
    Run(RunArgs),
    /// Validate a config (and that its programs can start on this host) and print the
    /// resolved start order; exit 0, or 2 with every error (and warning, with --strict).
    Check(CheckArgs),
    /// Show every program: state, pid, uptime, restarts, last exit, health;
    /// exit 3 when not every program is running and ready.
    Status(StatusArgs),
    /// Start a stopped or failed program and wait until it is ready (exit 1
    /// with the reason if it fails first).
    Start(ProgramArg),
    /// Stop a program and wait until it is stopped (it stays stopped until started).
    Stop(ProgramArg),
    /// Restart a program now and wait until the new process is ready.
    Restart(ProgramArg),
    /// Exit 0 when every program is ready (or, with --live, when the supervisor answers).
    Health(HealthArgs),
    /// Re-read the config and apply the difference (as SIGHUP does): unchanged
    /// programs keep running, changed ones are replaced, removed ones stopped,
    /// added ones started. An invalid config changes nothing (exit 2).
    Reload(SocketArg),
    /// Send a signal to a program's process group (every instance, or one: NAME#N).
    Signal(SignalArgs),
    /// Run N instances of a program (each with SELFHEAL_REPLICA=i).
    Scale(ScaleArgs),
    /// Print the programs' recent output lines (kept by the supervisor), and follow them with -f.
    Logs(LogsArgs),
    /// Print the supervisor's events (started, ready, exited, …) as they happen.
    Events(EventsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on stdout, or write one page per command with --out.
    Man(ManArgs),
    /// The demo web app (counts visits in Redis exactly once).
    App(AppArgs),
    /// The built-in reverse proxy (holds and retries through upstream crashes).
    Proxy(ProxyArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// Config file [default: ./supervisor.toml, then /etc/selfheal/supervisor.toml].
    #[arg(short, long, env = "SELFHEAL_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Treat warnings (a binary, interpreter, workdir, user or group missing on
    /// this host) as errors: exit 2.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Log format of the supervisor's own lines and of the programs' output.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, env = "SELFHEAL_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub main: MainArgs,
}

/// `selfheal [OPTIONS] -- CMD [ARGS…]`: run CMD as the main program, as tini or
/// dumb-init would; with `--config`, the config's programs run as its sidecars.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MainArgs {
    /// The main program and its arguments (after `--`). Its exit code (128+n if
    /// killed by signal n) becomes the supervisor's.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
    /// After forwarding a stop signal (TERM, INT, QUIT) to the main program,
    /// SIGKILL its process group if it has not exited within this [default: never].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stop_timeout: Option<std::time::Duration>,
    /// When the main program exits, the rest of its process group gets SIGTERM,
    /// then SIGKILL after this.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub grace: std::time::Duration,
    /// Rewrite a received signal before forwarding it: `FROM:TO` by number or
    /// name (`15:2`, `TERM:INT`); `TO` = 0 drops it. Repeatable.
    #[arg(long, value_name = "FROM:TO", value_parser = parse_rewrite)]
    pub rewrite: Vec<(i32, i32)>,
    /// The signal the main program gets if the supervisor dies (PR_SET_PDEATHSIG).
    #[arg(long, value_name = "SIGNAL", default_value = "KILL", value_parser = parse_signal)]
    pub pdeathsig: i32,
    /// Print the supervisor's own events on stderr (they are silent in this mode).
    #[arg(short, long)]
    pub verbose: bool,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. \"500ms\", \"10s\")"))
}

/// A signal by number (`15`) or name (`TERM`, `SIGTERM`, `RTMIN+3`); 0 only where allowed.
pub fn parse_signal_or_zero(text: &str) -> Result<i32, String> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i32>() {
        if (0..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        return Err(format!("no signal {n}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(offset) = name.strip_prefix("RTMIN+") {
        let n = offset.parse::<i32>().map_err(|e| e.to_string())? + libc::SIGRTMIN();
        return (n <= libc::SIGRTMAX())
            .then_some(n)
            .ok_or(format!("no signal {text}"));
    }
    crate::config::signal_named(text)
        .map(|s| s as i32)
        .ok_or_else(|| format!("no signal named {text:?}"))
}

pub fn parse_signal(text: &str) -> Result<i32, String> {
    match parse_signal_or_zero(text)? {
        0 => Err("signal 0 is not a signal".into()),
        n => Ok(n),
    }
}

fn parse_rewrite(text: &str) -> Result<(i32, i32), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected FROM:TO, e.g. 15:2 or TERM:INT"))?;
    Ok((parse_signal(from)?, parse_signal_or_zero(to)?))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// How the CLI finds the running supervisor's admin socket: `--socket`, env
/// `SELFHEAL_ADMIN_SOCKET`, the `admin_socket` of the config (given, or
/// `./supervisor.toml`), the socket the running supervisor advertises, then
/// `/run/selfheal/admin.sock` (see `admin::client::locate`).
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArg {
    /// Admin socket path [env: SELFHEAL_ADMIN_SOCKET; default: the config's
    /// `admin_socket`, else the one the running supervisor advertises, else
    /// /run/selfheal/admin.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Config file whose `admin_socket` to use [default: ./supervisor.toml when it exists].
    #[arg(short, long, env = "SELFHEAL_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Print the snapshot as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// Only check that the supervisor itself is alive (liveness), not readiness.
    #[arg(long)]
    pub live: bool,
    /// Print `{"ready": bool, "reasons": [...]}` instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SignalArgs {
    /// Program name (or one instance, `NAME#N`).
    pub name: String,
    /// Signal by name (`HUP`, `SIGUSR1`) or number.
    #[arg(value_parser = parse_signal)]
    pub signal: i32,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// Program name.
    pub name: String,
    /// Instances to run.
    #[arg(value_parser = clap::value_parser!(u32).range(0..=i64::from(crate::config::MAX_REPLICAS)))]
    pub replicas: u32,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ProgramArg {
    /// Program name, as in `[programs.NAME]`.
    pub name: String,
    /// Return as soon as the supervisor has accepted the command.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this long (exit 1).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// Programs whose lines to print [default: all].
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Keep printing new lines as they arrive (until Ctrl-C or the supervisor exits).
    #[arg(short, long)]
    pub follow: bool,
    /// The last N lines of each program [default: 100 unless --since is given].
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<u64>,
    /// Only lines since then: a duration ago (`10m`, `1h30m`) or an RFC 3339
    /// time (`2026-11-30T03:00:00Z`).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<std::time::SystemTime>,
    /// Prefix each line with its RFC 3339 time.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Print each line as the supervisor's JSON object (`ts`, `ts_ms`, `program`, `line`, `partial`).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// Print each event as its JSON object.
    #[arg(long)]
    pub json: bool,
    /// First print up to N past events (the supervisor keeps the last 256).
    #[arg(long, value_name = "N")]
    pub recent: Option<u64>,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ManArgs {
    /// Write one page per command (`selfheal.1`, `selfheal-status.1`, …) into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `10m` ago, or an RFC 3339 time.
fn parse_since(text: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return std::time::SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| format!("{text:?} is before the epoch"));
    }
    humantime::parse_rfc3339_weak(text).map_err(|_| {
        format!("{text:?}: expected a duration (\"10m\") or an RFC 3339 time (\"2026-11-30T03:00:00Z\")")
    })
}

impl ConfigArg {
    /// The explicit file, else `./supervisor.toml` when it exists, else the system one.
    pub fn resolve(&self) -> PathBuf {
        if let Some(path) = &self.config {
            return path.clone();
        }
        let local = PathBuf::from("supervisor.toml");
        if local.exists() {
            local
        } else {
            PathBuf::from("/etc/selfheal/supervisor.toml")
        }
    }
}

/// `selfheal completions SHELL`: the completion script, generated from [`Cli`].
pub fn completions_main(args: &CompletionsArgs) -> anyhow::Result<std::process::ExitCode> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "selfheal", &mut std::io::stdout());
    Ok(crate::exit::CliExit::Ok.into())
}

/// `selfheal man [--out DIR]`: the roff manual page on stdout, or one page per
/// command (`selfheal.1`, `selfheal-status.1`, …) written into DIR.
pub fn man_main(args: &ManArgs) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    use clap::CommandFactory;
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("write the pages into {}", dir.display()))?;
        }
        None => match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
            // `selfheal man | head`: the reader has seen enough.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.context("write the page")?,
        },
    }
    Ok(crate::exit::CliExit::Ok.into())
}
