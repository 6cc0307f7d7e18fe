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
    /// Show every program: state, pid, uptime, restarts, last exit, health.
    Status(StatusArgs),
    /// Start a stopped or failed program.
    Start(ProgramArg),
    /// Stop a program (it stays stopped until started).
    Stop(ProgramArg),
    /// Restart a program now.
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

/// How the CLI finds the running supervisor's admin socket.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArg {
    /// Admin socket path [default: the `admin_socket` of the config].
    #[arg(long, env = "SELFHEAL_ADMIN_SOCKET")]
    pub socket: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArg,
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
    #[command(flatten)]
    pub socket: SocketArg,
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
